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
//! [`ReadRow`] is what a reader needs of a row, implemented for sqlx's `Any`
//! row and SQLite's native row alike, so one reader per table serves the
//! `Any` path and the native SQLite bulk path ([`crate::warm`]).

use sqlx::{Column, ColumnIndex, Decode, Row, Type};

use crate::StoreError;

/// Typed values of a row by position.
pub(crate) trait ReadRow {
    fn int(&self, i: usize) -> Result<i64, sqlx::Error>;
    fn opt_int(&self, i: usize) -> Result<Option<i64>, sqlx::Error>;
    fn text(&self, i: usize) -> Result<String, sqlx::Error>;
    fn opt_text(&self, i: usize) -> Result<Option<String>, sqlx::Error>;
    /// Text borrowed from the row, for values parsed rather than kept.
    fn str(&self, i: usize) -> Result<&str, sqlx::Error>;
    /// The name of column `i` (for the debug check of [`Cols`]).
    fn column_name(&self, i: usize) -> &str;
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
    fn str(&self, i: usize) -> Result<&str, sqlx::Error> {
        self.try_get(i)
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

    pub(crate) fn str(&mut self, name: &str) -> Result<&'r str, StoreError> {
        let i = self.take(name);
        Ok(self.row.str(i)?)
    }

    /// A 0/1 integer column as a flag.
    pub(crate) fn flag(&mut self, name: &str) -> Result<bool, StoreError> {
        Ok(self.int(name)? != 0)
    }
}
