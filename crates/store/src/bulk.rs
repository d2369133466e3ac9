//! Full reads of a table on SQLite, straight from the database file, and
//! the bulk load of a fresh file ([`Writer`]).
//!
//! sqlx's SQLite driver copies every value of every row and hands each row
//! over from its database thread; the packed pages of [`crate::warm`]
//! avoid the hand-over, but then SQLite spends as long writing the rows as
//! JSON as the reader spends parsing them again (the large demo's 3.6 M
//! transitions: 3.8 s to pack, about as long to parse). A [`Reader`] is a
//! connection of its own to the same file, stepped on a blocking thread:
//! the row readers of [`crate::repo`] take each value where SQLite keeps
//! it, and text that is interned is never copied.
//!
//! SQLite only, and only for a database in a file (an in-memory database
//! is private to its connection).

use std::borrow::Cow;
use std::cell::RefCell;
use std::path::Path;
use std::time::Duration;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, InterruptHandle, OpenFlags};
use tandem_core::Sym;

use crate::bind::Table;
use crate::repo::{
    drop_index_sql, indexes_to_rebuild, rows_per_statement, values_sql, BULK_CACHE_KIB,
    SQLITE_INDEXES,
};
use crate::rows::ReadRow;
use crate::StoreError;

/// A connection that only reads, to the file of a store.
pub(crate) struct Reader {
    conn: Connection,
}

impl Reader {
    /// Opens `path` (an existing database: never created here).
    pub(crate) fn open(path: &Path) -> Result<Reader, StoreError> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        // As the pool's connections: wait for a writer's lock rather than
        // fail; and refuse any write, whatever a caller runs.
        conn.busy_timeout(Duration::from_secs(10))?;
        conn.pragma_update(None, "query_only", true)?;
        Ok(Reader { conn })
    }

    /// Stops the statement running on this connection (from another
    /// thread): it then fails with SQLite's "interrupted".
    pub(crate) fn interrupt_handle(&self) -> InterruptHandle {
        self.conn.get_interrupt_handle()
    }

    /// The number of rows of `table` (for the capacity of a full read).
    pub(crate) fn count(&self, table: &str) -> Result<usize, StoreError> {
        let n: i64 = self
            .conn
            .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    /// Runs `sql` with one bound integer and hands each row to `each`.
    pub(crate) fn each(
        &self,
        sql: &str,
        bind: i64,
        mut each: impl FnMut(&FileRow) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut stmt = self.conn.prepare(sql)?;
        let syms = RefCell::new(Syms::default());
        let mut rows = stmt.query([bind])?;
        while let Some(row) = rows.next()? {
            each(&FileRow { row, syms: &syms })?;
        }
        Ok(())
    }
}

/// A bulk load into an SQLite file in one transaction, on a connection of
/// its own: [`Table`] rows bound straight into SQLite's prepared
/// statements. Through sqlx every value was first copied into its
/// argument list and every statement handed to its database thread and
/// back; that was about half of the large demo's write time.
///
/// Like [`crate::repo::BulkLoad`], it drops the secondary indexes (but
/// those it is told to keep) when it begins and builds each once in
/// [`Writer::finish`], which commits.
/// Dropped before that, the connection closes and SQLite rolls the whole
/// load back, indexes included.
pub(crate) struct Writer {
    conn: Connection,
    /// `CREATE INDEX` statements to run at the end, in schema order.
    indexes: Vec<String>,
    /// The file was in WAL mode, switched to a rollback journal for the
    /// load: switched back after it.
    wal: bool,
}

impl Writer {
    /// Opens `path` (an existing database: never created here) and starts
    /// the load's transaction.
    pub(crate) fn begin(path: &Path, keep: &[&str]) -> Result<Writer, StoreError> {
        match Writer::open(path, keep, None)? {
            Some(w) => Ok(w),
            None => Err(StoreError::Corrupt("the bulk load did not begin".into())),
        }
    }

    /// [`Writer::begin`] when `table` is empty once the write lock is held;
    /// else `None`, and nothing was changed.
    pub(crate) fn begin_if_empty(
        path: &Path,
        keep: &[&str],
        table: &str,
    ) -> Result<Option<Writer>, StoreError> {
        Writer::open(path, keep, Some(table))
    }

    fn open(
        path: &Path,
        keep: &[&str],
        needs_empty: Option<&str>,
    ) -> Result<Option<Writer>, StoreError> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(Duration::from_secs(10))?;
        // Per table a full statement and up to 8 power-of-two shorter
        // ones ([`Writer::insert`]), for the dozen tables a load may fill.
        conn.set_prepared_statement_cache_capacity(128);
        // In WAL mode every page of the load is written twice: into the
        // log, then into the file by the checkpoint at the commit (7 s and
        // 1.9 GB more for the large demo). A rollback journal keeps only
        // the pages the load changes that existed before it (a few, for a
        // fresh database), so the load is as atomic and written once.
        // SQLite switches only when this is the file's sole connection
        // (`Store::close_connections`); otherwise it stays in WAL, which
        // is only slower. Connections opened later by the pool switch back.
        let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
        let wal = mode.eq_ignore_ascii_case("wal")
            && match conn.query_row("PRAGMA journal_mode = DELETE", [], |r| {
                r.get::<_, String>(0)
            }) {
                Ok(now) => now.eq_ignore_ascii_case("delete"),
                Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy) => false,
                Err(e) => return Err(e.into()),
            };
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", true)?;
        conn.pragma_update(None, "cache_size", -BULK_CACHE_KIB)?;
        conn.execute_batch("BEGIN IMMEDIATE")?;
        if let Some(table) = needs_empty {
            if has_rows(&conn, table)? {
                conn.execute_batch("ROLLBACK")?;
                if wal {
                    conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))?;
                }
                return Ok(None);
            }
        }
        let all = {
            let mut stmt = conn.prepare(SQLITE_INDEXES)?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect::<Result<Vec<(String, String)>, _>>()?
        };
        let indexes = indexes_to_rebuild(all, keep)?;
        for (name, _) in &indexes {
            conn.execute_batch(&drop_index_sql(name))?;
        }
        Ok(Some(Writer {
            conn,
            indexes: indexes.into_iter().map(|(_, sql)| sql).collect(),
            wal,
        }))
    }

    /// Inserts `rows` with `table`'s insert, in multi-row statements as
    /// [`crate::repo::insert`] does.
    ///
    /// The statements are kept between calls, and a chunk shorter than a
    /// full statement goes in as statements of power-of-two rows, so a load
    /// of many calls parses each statement text once: SQLite parsing the
    /// statements again on every call was a twentieth of the demo
    /// writer's time.
    pub(crate) fn insert<'r, T: 'r>(
        &mut self,
        table: &Table<T>,
        rows: impl IntoIterator<Item = &'r T>,
    ) -> Result<(), StoreError> {
        let per = rows_per_statement(table.cols);
        let mut full = self
            .conn
            .prepare_cached(&values_sql(table.head, table.cols, per, true))?;
        let mut vals = Vec::with_capacity(table.cols);
        let mut rows = rows.into_iter().peekable();
        let mut chunk: Vec<&T> = Vec::with_capacity(per);
        while rows.peek().is_some() {
            chunk.clear();
            chunk.extend(rows.by_ref().take(per));
            let mut rest = chunk.as_slice();
            while !rest.is_empty() {
                let mut short;
                let (stmt, n) = match rest.len() {
                    n if n == per => (&mut full, n),
                    n => {
                        let n = 1 << n.ilog2();
                        short = self
                            .conn
                            .prepare_cached(&values_sql(table.head, table.cols, n, true))?;
                        (&mut short, n)
                    }
                };
                let (now, later) = rest.split_at(n);
                let mut i = 1;
                for row in now {
                    table.row(row, &mut vals);
                    for v in vals.drain(..) {
                        stmt.raw_bind_parameter(i, v)?;
                        i += 1;
                    }
                }
                stmt.raw_execute()?;
                rest = later;
            }
        }
        Ok(())
    }

    /// Builds the indexes again and commits the load.
    pub(crate) fn finish(self) -> Result<(), StoreError> {
        let started = std::time::Instant::now();
        for sql in &self.indexes {
            self.conn.execute_batch(sql)?;
        }
        let built = started.elapsed();
        self.conn.execute_batch("COMMIT")?;
        if self.wal {
            self.conn
                .query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))?;
        }
        tracing::info!(
            index_ms = built.as_millis() as u64,
            commit_ms = (started.elapsed() - built).as_millis() as u64,
            "bulk load committed"
        );
        Ok(())
    }
}

/// Whether `table` has any row, as `conn` sees it.
fn has_rows(conn: &Connection, table: &str) -> Result<bool, StoreError> {
    if !table
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err(StoreError::Corrupt(format!("not a table name: `{table}`")));
    }
    let sql = format!("SELECT EXISTS (SELECT 1 FROM {table})");
    Ok(conn.query_row(&sql, [], |r| r.get(0))?)
}

/// A row of a [`Reader`], read by the same row readers as sqlx's rows.
pub(crate) struct FileRow<'a, 'stmt> {
    row: &'a rusqlite::Row<'stmt>,
    syms: &'a RefCell<Syms>,
}

/// The symbols of a statement's rows so far, per column: the few values
/// of a categorical column are found by comparing bytes, where interning
/// each one again (hash, lock of the process-wide table, UTF-8 check) was
/// a seventh of a cold read of the large demo.
#[derive(Default)]
pub(crate) struct Syms {
    cols: Vec<Vec<Sym>>,
}

/// Values remembered per column: beyond it, a column is not categorical
/// and its values are interned as they come.
const SYMS_PER_COLUMN: usize = 32;

impl Syms {
    /// The symbol of `text`, the value of column `col`.
    fn get(&mut self, col: usize, text: &[u8]) -> Result<Sym, std::str::Utf8Error> {
        if self.cols.len() <= col {
            self.cols.resize_with(col + 1, Vec::new);
        }
        let seen = &mut self.cols[col];
        if let Some(s) = seen.iter().find(|s| s.as_bytes() == text) {
            return Ok(*s);
        }
        let s = Sym::new(std::str::from_utf8(text)?);
        if seen.len() < SYMS_PER_COLUMN {
            seen.push(s);
        }
        Ok(s)
    }
}

impl FileRow<'_, '_> {
    fn value(&self, i: usize) -> Result<ValueRef<'_>, sqlx::Error> {
        self.row.get_ref(i).map_err(|e| self.column_error(i, e))
    }
}

impl ReadRow for FileRow<'_, '_> {
    fn int(&self, i: usize) -> Result<i64, sqlx::Error> {
        self.row.get(i).map_err(|e| self.column_error(i, e))
    }
    fn opt_int(&self, i: usize) -> Result<Option<i64>, sqlx::Error> {
        self.row.get(i).map_err(|e| self.column_error(i, e))
    }
    fn text(&self, i: usize) -> Result<String, sqlx::Error> {
        self.str(i).map(Cow::into_owned)
    }
    fn opt_text(&self, i: usize) -> Result<Option<String>, sqlx::Error> {
        Ok(self.opt_str(i)?.map(Cow::into_owned))
    }
    fn str(&self, i: usize) -> Result<Cow<'_, str>, sqlx::Error> {
        let v = self.value(i)?;
        v.as_str()
            .map(Cow::Borrowed)
            .map_err(|e| self.column_error(i, e))
    }
    fn opt_str(&self, i: usize) -> Result<Option<Cow<'_, str>>, sqlx::Error> {
        let v = self.value(i)?;
        v.as_str_or_null()
            .map(|s| s.map(Cow::Borrowed))
            .map_err(|e| self.column_error(i, e))
    }
    fn column_name(&self, i: usize) -> &str {
        self.row.as_ref().column_name(i).unwrap_or("")
    }
    fn sym(&self, i: usize) -> Result<Sym, sqlx::Error> {
        let v = self.opt_sym(i)?;
        self.not_null(i, v)
    }
    fn opt_sym(&self, i: usize) -> Result<Option<Sym>, sqlx::Error> {
        match self.value(i)? {
            ValueRef::Null => Ok(None),
            ValueRef::Text(t) => {
                let s = self.syms.borrow_mut().get(i, t);
                s.map(Some).map_err(|e| self.column_error(i, e))
            }
            _ => self.str(i).map(|s| Some(Sym::new(&s))),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_file_row_reads_ints_texts_and_nulls_and_names_a_bad_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let c = Connection::open(&path).unwrap();
        c.execute_batch(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, n INTEGER);
             INSERT INTO t VALUES (1, 'a', NULL), (2, NULL, 7), (3, 'c', 9);",
        )
        .unwrap();
        drop(c);
        let r = Reader::open(&path).unwrap();
        assert_eq!(r.count("t").unwrap(), 3);
        let mut seen = Vec::new();
        r.each("SELECT id, name, n FROM t WHERE id <= ?1", 2, |row| {
            seen.push((
                row.int(0)?,
                row.opt_text(1)?,
                row.opt_int(2)?,
                row.column_name(1).to_string(),
            ));
            Ok(())
        })
        .unwrap();
        assert_eq!(
            seen,
            [
                (1, Some("a".into()), None, "name".into()),
                (2, None, Some(7), "name".into())
            ]
        );
        // A null where a value must be, and text where a number must be,
        // name their column.
        let err = r
            .each("SELECT id, name, n FROM t WHERE id = ?1", 2, |row| {
                row.text(1).map(drop).map_err(StoreError::from)
            })
            .unwrap_err();
        assert!(err.to_string().contains("column name:"), "{err}");
        let err = r
            .each("SELECT name AS n FROM t WHERE id = ?1", 1, |row| {
                row.int(0).map(drop).map_err(StoreError::from)
            })
            .unwrap_err();
        assert!(err.to_string().contains("column n:"), "{err}");
        // Symbols: the same text is the same symbol, whichever row it
        // comes from and however many values its column has.
        let mut got = Vec::new();
        r.each(
            "WITH RECURSIVE s(value) AS (SELECT 1 UNION ALL SELECT value + 1 FROM s WHERE value < 40) \
             SELECT name, 'k' || (id % 2), 'v' || value FROM t, s WHERE id <= ?1 ORDER BY value, id",
            3,
            |row| {
                got.push((row.opt_sym(0)?, row.sym(1)?, row.sym(2)?));
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(got.len(), 120);
        for (k, (name, parity, v)) in got.iter().enumerate() {
            let (value, id) = (k / 3 + 1, k % 3 + 1);
            let want = [Some("a"), None, Some("c")][id - 1].map(Sym::new);
            assert_eq!(*name, want);
            assert_eq!(*parity, Sym::new(&format!("k{}", id % 2)));
            assert_eq!(*v, Sym::new(&format!("v{value}")));
        }
        let err = r
            .each("SELECT n FROM t WHERE id = ?1", 2, |row| {
                row.sym(0).map(drop).map_err(StoreError::from)
            })
            .unwrap_err();
        assert!(err.to_string().contains("column n:"), "{err}");
        // It only reads.
        assert!(r.conn.execute("DELETE FROM t", []).is_err());
    }
}
