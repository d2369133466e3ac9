//! Reading a fact row column by column, in the order of its table's column
//! list (`PERSON_COLS`, `TOUCH_COLS`, … in [`crate::repo`]).
//!
//! The warm history and snapshots read millions of rows; looking each
//! column up by name (a hash of the name per value) cost more than decoding
//! it. A row reader walks the columns with a [`Cols`] cursor instead, naming
//! each column as it takes it: debug builds (every test) check that name
//! against the statement's column, so a reader that drifts from its column
//! list fails loudly; release builds only advance an index.
//!
//! [`ReadRow`] is what a reader needs of a row, implemented for sqlx's rows
//! and for a row packed as a JSON array ([`JsonRow`], the full reads of
//! [`crate::warm`] on SQLite), so one reader per table serves both.

use std::borrow::Cow;

use serde::de::{DeserializeSeed, Deserializer, Error as _, SeqAccess, Visitor};
use serde_json::value::RawValue;
use sqlx::{Column, ColumnIndex, Decode, Row, Type};

use tandem_core::Sym;

use crate::StoreError;

/// Typed values of a row by position.
pub(crate) trait ReadRow {
    fn int(&self, i: usize) -> Result<i64, sqlx::Error>;
    fn opt_int(&self, i: usize) -> Result<Option<i64>, sqlx::Error>;
    fn text(&self, i: usize) -> Result<String, sqlx::Error>;
    fn opt_text(&self, i: usize) -> Result<Option<String>, sqlx::Error>;
    /// Text borrowed from the row where it can be, for values parsed
    /// rather than kept.
    fn str(&self, i: usize) -> Result<Cow<'_, str>, sqlx::Error>;
    /// [`ReadRow::str`] of a column that may be null.
    fn opt_str(&self, i: usize) -> Result<Option<Cow<'_, str>>, sqlx::Error>;
    /// The name of column `i` (for the debug check of [`Cols`]).
    fn column_name(&self, i: usize) -> &str;
    /// Why column `i` could not be read, naming the column.
    fn column_error(
        &self,
        i: usize,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> sqlx::Error {
        sqlx::Error::ColumnDecode {
            index: self.column_name(i).to_string(),
            source: source.into(),
        }
    }
    /// `v`, the value of column `i`, where a null is an error.
    fn not_null<T>(&self, i: usize, v: Option<T>) -> Result<T, sqlx::Error> {
        v.ok_or_else(|| self.column_error(i, "unexpected null"))
    }
    /// A text column of few distinct values, interned.
    fn sym(&self, i: usize) -> Result<Sym, sqlx::Error> {
        Ok(Sym::new(&self.str(i)?))
    }
    /// [`ReadRow::sym`] of a column that may be null.
    fn opt_sym(&self, i: usize) -> Result<Option<Sym>, sqlx::Error> {
        Ok(self.opt_str(i)?.map(|s| Sym::new(&s)))
    }
}

impl<R> ReadRow for R
where
    R: Row,
    usize: ColumnIndex<R>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> &'r str: Decode<'r, R::Database> + Type<R::Database>,
{
    fn int(&self, i: usize) -> Result<i64, sqlx::Error> {
        self.try_get(i)
    }
    fn opt_int(&self, i: usize) -> Result<Option<i64>, sqlx::Error> {
        self.try_get(i)
    }
    fn text(&self, i: usize) -> Result<String, sqlx::Error> {
        self.try_get(i)
    }
    fn opt_text(&self, i: usize) -> Result<Option<String>, sqlx::Error> {
        self.try_get(i)
    }
    fn str(&self, i: usize) -> Result<Cow<'_, str>, sqlx::Error> {
        self.try_get(i).map(Cow::Borrowed)
    }
    fn opt_str(&self, i: usize) -> Result<Option<Cow<'_, str>>, sqlx::Error> {
        self.try_get::<Option<&str>, _>(i)
            .map(|s| s.map(Cow::Borrowed))
    }
    fn column_name(&self, i: usize) -> &str {
        self.try_column(i).map_or("", |c| c.name())
    }
}

/// A cursor over a row's columns: each call takes the next column, which
/// must be the one named (checked in debug builds).
pub(crate) struct Cols<'r, R> {
    row: &'r R,
    next: usize,
}

impl<'r, R: ReadRow> Cols<'r, R> {
    pub(crate) fn new(row: &'r R) -> Self {
        Cols { row, next: 0 }
    }

    /// The position of the next column, `name`, and moves past it.
    fn take(&mut self, name: &str) -> usize {
        let i = self.next;
        debug_assert_eq!(
            self.row.column_name(i),
            name,
            "column {i} is not the one the row reader expects: reader and column list disagree"
        );
        self.next += 1;
        i
    }

    pub(crate) fn int(&mut self, name: &str) -> Result<i64, StoreError> {
        let i = self.take(name);
        Ok(self.row.int(i)?)
    }

    pub(crate) fn opt_int(&mut self, name: &str) -> Result<Option<i64>, StoreError> {
        let i = self.take(name);
        Ok(self.row.opt_int(i)?)
    }

    pub(crate) fn text(&mut self, name: &str) -> Result<String, StoreError> {
        let i = self.take(name);
        Ok(self.row.text(i)?)
    }

    pub(crate) fn opt_text(&mut self, name: &str) -> Result<Option<String>, StoreError> {
        let i = self.take(name);
        Ok(self.row.opt_text(i)?)
    }

    pub(crate) fn str(&mut self, name: &str) -> Result<Cow<'r, str>, StoreError> {
        let i = self.take(name);
        Ok(self.row.str(i)?)
    }

    /// A text column of few distinct values, interned without copying the
    /// row's text first.
    pub(crate) fn sym(&mut self, name: &str) -> Result<Sym, StoreError> {
        let i = self.take(name);
        Ok(self.row.sym(i)?)
    }

    /// [`Cols::sym`] of a column that may be null.
    pub(crate) fn opt_sym(&mut self, name: &str) -> Result<Option<Sym>, StoreError> {
        let i = self.take(name);
        Ok(self.row.opt_sym(i)?)
    }

    /// A 0/1 integer column as a flag.
    pub(crate) fn flag(&mut self, name: &str) -> Result<bool, StoreError> {
        Ok(self.int(name)? != 0)
    }
}

/// A row packed by SQLite's `json_array(cols…)`: its values as JSON texts
/// (numbers, strings or `null`), named by the column list they were packed
/// from.
pub(crate) struct JsonRow<'a> {
    names: &'a [&'a str],
    values: &'a [&'a RawValue],
}

impl<'a> JsonRow<'a> {
    /// The values of a page packed by `json_group_array(json_array(…))`
    /// of rows of `width` values, each row's after the one before's in one
    /// list (one vector per page, not one per row), borrowed from `text`.
    pub(crate) fn page(text: &str, width: usize) -> Result<Vec<&RawValue>, StoreError> {
        let corrupt = |e: serde_json::Error| StoreError::Corrupt(format!("a packed page: {e}"));
        let mut values = Vec::new();
        let mut de = serde_json::Deserializer::from_str(text);
        Flat {
            into: &mut values,
            width,
            row: false,
        }
        .deserialize(&mut de)
        .map_err(corrupt)?;
        de.end().map_err(corrupt)?;
        Ok(values)
    }

    pub(crate) fn new(names: &'a [&'a str], values: &'a [&'a RawValue]) -> Self {
        JsonRow { names, values }
    }

    fn value(&self, i: usize) -> Result<&'a str, sqlx::Error> {
        match self.values.get(i) {
            Some(v) => Ok(v.get()),
            None => Err(sqlx::Error::ColumnIndexOutOfBounds {
                index: i,
                len: self.values.len(),
            }),
        }
    }

    /// The value of column `i` parsed as JSON, `None` for `null`.
    fn parse<T: serde::de::Deserialize<'a>>(&self, i: usize) -> Result<Option<T>, sqlx::Error> {
        let v = self.value(i)?;
        if v == "null" {
            return Ok(None);
        }
        serde_json::from_str(v)
            .map(Some)
            .map_err(|e| self.column_error(i, e))
    }
}

impl ReadRow for JsonRow<'_> {
    fn int(&self, i: usize) -> Result<i64, sqlx::Error> {
        let v = self.parse(i)?;
        self.not_null(i, v)
    }
    fn opt_int(&self, i: usize) -> Result<Option<i64>, sqlx::Error> {
        self.parse(i)
    }
    fn text(&self, i: usize) -> Result<String, sqlx::Error> {
        let v = self.parse(i)?;
        self.not_null(i, v)
    }
    fn opt_text(&self, i: usize) -> Result<Option<String>, sqlx::Error> {
        self.parse(i)
    }
    fn str(&self, i: usize) -> Result<Cow<'_, str>, sqlx::Error> {
        // A JSON string borrows only when it has no escapes.
        if let Ok(Some(s)) = self.parse::<&str>(i) {
            return Ok(Cow::Borrowed(s));
        }
        let v = self.parse(i)?;
        self.not_null(i, v).map(Cow::Owned)
    }
    fn opt_str(&self, i: usize) -> Result<Option<Cow<'_, str>>, sqlx::Error> {
        if let Ok(s) = self.parse::<&str>(i) {
            return Ok(s.map(Cow::Borrowed));
        }
        Ok(self.parse::<String>(i)?.map(Cow::Owned))
    }
    fn column_name(&self, i: usize) -> &str {
        self.names.get(i).copied().unwrap_or("")
    }
}

/// Reads a packed page (an array of rows) or, with `row`, one row (an array
/// of exactly `width` values) into one flat list of values.
struct Flat<'v, 't> {
    into: &'v mut Vec<&'t RawValue>,
    width: usize,
    row: bool,
}

impl<'de> DeserializeSeed<'de> for Flat<'_, 'de> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Flat<'_, 'de> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(if self.row { "a row's values" } else { "rows" })
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if !self.row {
            let (into, width) = (self.into, self.width);
            let row = true;
            while seq
                .next_element_seed(Flat {
                    into: &mut *into,
                    width,
                    row,
                })?
                .is_some()
            {}
            return Ok(());
        }
        let start = self.into.len();
        while let Some(v) = seq.next_element()? {
            self.into.push(v);
        }
        let n = self.into.len() - start;
        if n != self.width {
            return Err(A::Error::custom(format!(
                "a row of {n} values, not {}",
                self.width
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::{JsonRow, ReadRow};

    #[test]
    fn a_packed_page_is_split_into_rows_of_its_width() {
        let names = ["id", "name"];
        let text = r#"[[1,"a \"b\""],[2,null]]"#;
        let values = JsonRow::page(text, 2).unwrap();
        let rows: Vec<JsonRow> = values
            .chunks_exact(2)
            .map(|v| JsonRow::new(&names, v))
            .collect();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].int(0).unwrap(), 1);
        assert_eq!(rows[0].text(1).unwrap(), "a \"b\"");
        assert_eq!(rows[0].str(1).unwrap(), "a \"b\"");
        assert_eq!(rows[1].opt_text(1).unwrap(), None);
        assert!(rows[1].text(1).is_err(), "null is not text");
        assert!(JsonRow::page("[]", 2).unwrap().is_empty());
        assert!(JsonRow::page("[[1]]", 2).is_err(), "short row");
        assert!(JsonRow::page("[[1,2,3]]", 2).is_err(), "long row");
        assert!(JsonRow::page("[[1,2]] x", 2).is_err(), "trailing text");
    }
}
