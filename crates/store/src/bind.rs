//! Values bound to a statement, whichever driver runs it.
//!
//! A bulk insert's columns and a row's values for them are written once, as
//! a [`Table`]; sqlx binds them on either backend ([`bind_all`]), and on an
//! SQLite file the demo's writer binds them straight into SQLite's own
//! prepared statement (`bulk::Writer`), without sqlx's owned copy of every
//! value and the hand-over to its database thread.

use std::borrow::Cow;

use rusqlite::types::{ToSqlOutput, ValueRef};

/// A query being bound with sqlx.
pub(crate) type AnyQuery = sqlx::query::Query<'static, sqlx::Any, sqlx::any::AnyArguments>;

/// One bound value. A null keeps its type: PostgreSQL types every
/// parameter, and a null integer cannot go into a text column.
#[derive(Clone, Debug, PartialEq)]
pub enum Val<'a> {
    Int(Option<i64>),
    Text(Option<Cow<'a, str>>),
}

impl From<i64> for Val<'_> {
    fn from(v: i64) -> Self {
        Val::Int(Some(v))
    }
}

impl From<Option<i64>> for Val<'_> {
    fn from(v: Option<i64>) -> Self {
        Val::Int(v)
    }
}

impl From<bool> for Val<'_> {
    fn from(v: bool) -> Self {
        Val::Int(Some(i64::from(v)))
    }
}

impl<'a> From<&'a str> for Val<'a> {
    fn from(v: &'a str) -> Self {
        Val::Text(Some(Cow::Borrowed(v)))
    }
}

impl<'a> From<Option<&'a str>> for Val<'a> {
    fn from(v: Option<&'a str>) -> Self {
        Val::Text(v.map(Cow::Borrowed))
    }
}

impl From<String> for Val<'_> {
    fn from(v: String) -> Self {
        Val::Text(Some(Cow::Owned(v)))
    }
}

impl Val<'_> {
    /// Binds this value as the query's next parameter.
    pub(crate) fn bind_to(self, q: AnyQuery) -> AnyQuery {
        match self {
            Val::Int(v) => q.bind(v),
            Val::Text(v) => q.bind(v.map(Cow::into_owned)),
        }
    }
}

impl rusqlite::ToSql for Val<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self {
            Val::Int(Some(v)) => ValueRef::Integer(*v),
            Val::Text(Some(s)) => ValueRef::Text(s.as_bytes()),
            Val::Int(None) | Val::Text(None) => ValueRef::Null,
        }))
    }
}

/// Binds `vals` in order as the query's next parameters.
pub(crate) fn bind_all<'a>(q: AnyQuery, vals: impl IntoIterator<Item = Val<'a>>) -> AnyQuery {
    vals.into_iter().fold(q, |q, v| v.bind_to(q))
}

/// A table's bulk insert: `INSERT INTO table (columns)`, and the values of
/// a row for those columns, in their order.
pub struct Table<T: 'static> {
    pub(crate) head: &'static str,
    pub(crate) cols: usize,
    /// Pushes a row's `cols` values onto the buffer (cleared by the caller).
    pub(crate) values: for<'a> fn(&'a T, &mut Vec<Val<'a>>),
}

impl<T> Table<T> {
    /// The values of `row`, in column order.
    pub(crate) fn row<'a>(&self, row: &'a T, out: &mut Vec<Val<'a>>) {
        out.clear();
        (self.values)(row, out);
        debug_assert_eq!(out.len(), self.cols, "{}", self.head);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use rusqlite::ToSql;

    #[test]
    fn nulls_keep_their_type_and_values_reach_sqlite_unchanged() {
        assert_eq!(Val::from(None::<i64>), Val::Int(None));
        assert_eq!(Val::from(None::<&str>), Val::Text(None));
        assert_eq!(Val::from(true), Val::Int(Some(1)));
        let c = rusqlite::Connection::open_in_memory().unwrap();
        let vals = [
            Val::from(-7),
            Val::from("ﬁ'x"),
            Val::from(String::from("owned")),
            Val::from(None::<i64>),
            Val::from(None::<&str>),
        ];
        let params: Vec<&dyn ToSql> = vals.iter().map(|v| v as &dyn ToSql).collect();
        let got: (i64, String, String, Option<i64>, Option<String>, String) = c
            .query_row(
                "SELECT ?1, ?2, ?3, ?4, ?5, typeof(?4) || typeof(?2)",
                params.as_slice(),
                |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                    ))
                },
            )
            .unwrap();
        assert_eq!(
            got,
            (
                -7,
                "ﬁ'x".into(),
                "owned".into(),
                None,
                None,
                "nulltext".into()
            )
        );
    }
}
