//! `tandem backup` / `tandem restore`: a portable archive of every table.
//!
//! The archive is one UTF-8 file of JSON lines, written from one consistent
//! snapshot ([`crate::export::Snapshot`]) while the server may keep writing:
//!
//! ```text
//! {"tandem_archive":1,"backend":"sqlite","migrations":[1,2,…],"created_at":…}
//! {"table":"accounts","columns":[{"name":"id","type":"int","nullable":false},…]}
//! [1,"acme","Acme Inc",…]                      one JSON array per row
//! {"end":"accounts","rows":120,"sha256":"…"}   hash of the table's row lines
//! …
//! {"end_archive":true,"tables":17,"rows":…,"sha256":"…"}   hash of every line before
//! ```
//!
//! Values are the stored ones (times in epoch ms, money in minor units), so
//! an archive from SQLite restores into PostgreSQL and back. A restore runs
//! in one transaction into an empty store (or, with `force`, one it empties
//! first): it is committed only after the trailer and every checksum have
//! been verified, so a truncated, corrupt or tampered archive leaves the
//! target exactly as it was. Ids are preserved; PostgreSQL sequences are
//! moved past the restored ids.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::AnyConnection;

use crate::export::{
    catalog, migrations, ColType, Column, ExportError, Snapshot, TableSpec, Value,
};
use crate::{Backend, Store};

/// The archive format version written in the header.
pub const ARCHIVE_VERSION: i64 = 1;

#[derive(Serialize, Deserialize)]
struct Header {
    tandem_archive: i64,
    backend: String,
    migrations: Vec<i64>,
    created_at: i64,
}

#[derive(Serialize, Deserialize)]
struct ColumnDef {
    name: String,
    #[serde(rename = "type")]
    ty: String,
    nullable: bool,
}

#[derive(Serialize, Deserialize)]
struct TableStart {
    table: String,
    columns: Vec<ColumnDef>,
}

#[derive(Serialize, Deserialize)]
struct TableEnd {
    end: String,
    rows: u64,
    sha256: String,
}

#[derive(Serialize, Deserialize)]
struct Trailer {
    end_archive: bool,
    tables: u64,
    rows: u64,
    sha256: String,
}

/// What a backup or restore did, per table in archive order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub tables: Vec<(String, u64)>,
    pub migrations: Vec<i64>,
}

impl Summary {
    pub fn rows(&self) -> u64 {
        self.tables.iter().map(|t| t.1).sum()
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Writes lines to the archive and keeps the running whole-file hash.
struct LineWriter<'p> {
    out: BufWriter<File>,
    path: &'p Path,
    all: Sha256,
}

impl LineWriter<'_> {
    fn line(&mut self, bytes: &[u8]) -> Result<(), ExportError> {
        self.all.update(bytes);
        self.out
            .write_all(bytes)
            .map_err(|e| ExportError::io(self.path, e))
    }

    fn json(&mut self, v: &impl Serialize) -> Result<(), ExportError> {
        let mut buf = serde_json::to_vec(v)
            .map_err(|e| ExportError::io(self.path, std::io::Error::other(e)))?;
        buf.push(b'\n');
        self.line(&buf)
    }
}

/// Writes a portable archive of every table to `path` (via a temporary file
/// renamed at the end, so `path` is either the whole archive or untouched).
pub async fn backup(
    store: &Store,
    path: &Path,
    progress: &mut dyn FnMut(&str, u64),
) -> Result<Summary, ExportError> {
    let tmp = {
        let mut s = path.as_os_str().to_owned();
        s.push(".partial");
        std::path::PathBuf::from(s)
    };
    let file = File::create(&tmp).map_err(|e| ExportError::io(&tmp, e))?;
    let mut w = LineWriter {
        out: BufWriter::with_capacity(1 << 20, file),
        path,
        all: Sha256::new(),
    };
    let mut conn = store.conn().await?;
    let mut snap = Snapshot::begin(&mut conn, store.backend()).await?;
    let result = write_archive(&mut snap, &mut w, progress).await;
    snap.finish().await?;
    let summary = match result {
        Ok(s) => s,
        Err(e) => {
            drop(w);
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    let file = w
        .out
        .into_inner()
        .map_err(|e| ExportError::io(path, e.into_error()))?;
    file.sync_all().map_err(|e| ExportError::io(path, e))?;
    std::fs::rename(&tmp, path).map_err(|e| ExportError::io(path, e))?;
    Ok(summary)
}

async fn write_archive(
    snap: &mut Snapshot<'_>,
    w: &mut LineWriter<'_>,
    progress: &mut dyn FnMut(&str, u64),
) -> Result<Summary, ExportError> {
    w.json(&Header {
        tandem_archive: ARCHIVE_VERSION,
        backend: match snap.backend {
            Backend::Sqlite => "sqlite".into(),
            Backend::Postgres => "postgres".into(),
        },
        migrations: snap.migrations.clone(),
        created_at: now_ms(),
    })?;
    let mut summary = Summary {
        tables: Vec::new(),
        migrations: snap.migrations.clone(),
    };
    let tables = snap.tables.clone();
    for table in &tables {
        w.json(&TableStart {
            table: table.name.clone(),
            columns: table
                .columns
                .iter()
                .map(|c| ColumnDef {
                    name: c.name.clone(),
                    ty: c.ty.as_str().into(),
                    nullable: c.nullable,
                })
                .collect(),
        })?;
        let mut hash = Sha256::new();
        let mut buf = Vec::new();
        let name = table.name.clone();
        let mut count = 0u64;
        let rows = snap
            .rows(table, &[], |row| {
                buf.clear();
                serde_json::to_writer(&mut buf, row)
                    .map_err(|e| ExportError::io(w.path, std::io::Error::other(e)))?;
                buf.push(b'\n');
                hash.update(&buf);
                w.line(&buf)?;
                count += 1;
                if count.is_multiple_of(100_000) {
                    progress(&name, count);
                }
                Ok(())
            })
            .await?;
        progress(&table.name, rows);
        w.json(&TableEnd {
            end: table.name.clone(),
            rows,
            sha256: hex::encode(hash.finalize()),
        })?;
        summary.tables.push((table.name.clone(), rows));
    }
    let all = hex::encode(w.all.clone().finalize());
    w.json(&Trailer {
        end_archive: true,
        tables: tables.len() as u64,
        rows: summary.rows(),
        sha256: all,
    })?;
    Ok(summary)
}

/// Reads archive lines, counting them and hashing everything read.
struct LineReader<'p> {
    input: Box<dyn BufRead + 'p>,
    path: &'p Path,
    line_no: u64,
    all: Sha256,
    buf: Vec<u8>,
}

impl LineReader<'_> {
    fn bad(&self, reason: impl Into<String>) -> ExportError {
        ExportError::Archive {
            path: self.path.display().to_string(),
            line: self.line_no,
            reason: reason.into(),
        }
    }

    /// The next line (without its newline), or `None` at end of file. The
    /// whole-file hash is updated *before* the caller sees the line, so take
    /// [`LineReader::hash_so_far`] before reading the trailer.
    fn next(&mut self) -> Result<Option<&[u8]>, ExportError> {
        self.buf.clear();
        let n = self
            .input
            .read_until(b'\n', &mut self.buf)
            .map_err(|e| ExportError::io(self.path, e))?;
        if n == 0 {
            return Ok(None);
        }
        self.line_no += 1;
        if self.buf.last() != Some(&b'\n') {
            return Err(self.bad("the archive is truncated (last line is incomplete)"));
        }
        Ok(Some(&self.buf[..self.buf.len() - 1]))
    }

    fn parse<T: for<'de> Deserialize<'de>>(&self, what: &str) -> Result<T, ExportError> {
        serde_json::from_slice(&self.buf[..self.buf.len() - 1])
            .map_err(|e| self.bad(format!("expected {what}: {e}")))
    }
}

/// Restores the archive at `path` into `store` (already migrated).
///
/// Refuses a store that holds any row unless `force`, in which case the
/// existing rows are deleted inside the same transaction. Everything is
/// verified before the commit; on any error nothing changes.
pub async fn restore(
    store: &Store,
    path: &Path,
    force: bool,
    progress: &mut dyn FnMut(&str, u64),
) -> Result<Summary, ExportError> {
    let file = File::open(path).map_err(|e| ExportError::io(path, e))?;
    let mut head = [0u8; 16];
    {
        use std::io::Read;
        let mut f = File::open(path).map_err(|e| ExportError::io(path, e))?;
        let n = f.read(&mut head).map_err(|e| ExportError::io(path, e))?;
        if n == 16 && &head == b"SQLite format 3\0" {
            return Err(ExportError::Refused(format!(
                "{} is an SQLite database, not a tandem archive: use it directly with --database-url {}, or make an archive of it with `tandem --database-url {} backup FILE`",
                path.display(),
                path.display(),
                path.display()
            )));
        }
    }
    let mut r = LineReader {
        input: Box::new(BufReader::with_capacity(1 << 20, file)),
        path,
        line_no: 0,
        all: Sha256::new(),
        buf: Vec::new(),
    };
    if r.next()?.is_none() {
        return Err(r.bad("the file is empty, not a tandem archive"));
    }
    r.all.update(&r.buf);
    let header: Header = r.parse("the archive header {\"tandem_archive\":1,…}")?;
    if header.tandem_archive != ARCHIVE_VERSION {
        return Err(r.bad(format!(
            "archive format version {} is not supported (this tandem reads version {ARCHIVE_VERSION})",
            header.tandem_archive
        )));
    }

    let mut tx = store.begin().await?;
    let conn = tx.conn();
    let known = migrations(conn).await?;
    let unknown: Vec<i64> = header
        .migrations
        .iter()
        .copied()
        .filter(|v| !known.contains(v))
        .collect();
    if !unknown.is_empty() {
        return Err(ExportError::Refused(format!(
            "{}: the archive was made by a newer tandem (schema migrations {unknown:?} are unknown here); upgrade tandem to restore it",
            path.display()
        )));
    }
    let tables = catalog(conn, store.backend()).await?;
    let mut nonempty = Vec::new();
    for t in &tables {
        let n = count(conn, t).await?;
        if n > 0 {
            nonempty.push(format!("{} ({n} rows)", t.name));
        }
    }
    if !nonempty.is_empty() {
        if !force {
            return Err(ExportError::Refused(format!(
                "the target database is not empty: {}; restore into an empty database, or pass --force to replace its contents",
                nonempty.join(", ")
            )));
        }
        // Children before parents.
        for t in tables.iter().rev() {
            let sql = format!("DELETE FROM \"{}\"", t.name);
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&mut *conn)
                .await?;
        }
    }

    let mut summary = Summary {
        tables: Vec::new(),
        migrations: header.migrations.clone(),
    };
    loop {
        let hash_before = r.all.clone();
        if r.next()?.is_none() {
            return Err(r.bad(format!(
                "the archive is truncated: it ends after {} table(s) without its closing line",
                summary.tables.len()
            )));
        }
        let value: serde_json::Value = r.parse("a table header or the closing line")?;
        if value.get("end_archive").is_some() {
            let trailer: Trailer = r.parse("the closing line")?;
            let expected = hex::encode(hash_before.finalize());
            if trailer.sha256 != expected {
                return Err(r.bad(format!(
                    "checksum mismatch for the whole archive (closing line says {}, content hashes to {expected}): the file was changed",
                    trailer.sha256
                )));
            }
            if trailer.tables != summary.tables.len() as u64 || trailer.rows != summary.rows() {
                return Err(r.bad(format!(
                    "the closing line counts {} tables and {} rows, the archive holds {} and {}",
                    trailer.tables,
                    trailer.rows,
                    summary.tables.len(),
                    summary.rows()
                )));
            }
            if r.next()?.is_some() {
                return Err(r.bad("unexpected content after the closing line"));
            }
            break;
        }
        r.all.update(&r.buf);
        let start: TableStart = r.parse("a table header {\"table\":…,\"columns\":[…]}")?;
        let Some(target) = tables.iter().find(|t| t.name == start.table) else {
            return Err(r.bad(format!(
                "table `{}` does not exist in the target database",
                start.table
            )));
        };
        let mut columns = Vec::with_capacity(start.columns.len());
        for c in &start.columns {
            let Some(ty) = ColType::parse(&c.ty) else {
                return Err(r.bad(format!("column `{}`: unknown type {:?}", c.name, c.ty)));
            };
            if !target.columns.iter().any(|t| t.name == c.name) {
                return Err(r.bad(format!(
                    "column `{}.{}` does not exist in the target database",
                    start.table, c.name
                )));
            }
            columns.push(Column {
                name: c.name.clone(),
                ty,
                nullable: c.nullable,
            });
        }
        let rows = restore_table(conn, &mut r, target, &columns, progress).await?;
        summary.tables.push((start.table.clone(), rows));
    }
    if store.backend() == Backend::Postgres {
        for t in &tables {
            reset_sequence(conn, t).await?;
        }
    }
    tx.commit().await?;
    Ok(summary)
}

async fn count(conn: &mut AnyConnection, t: &TableSpec) -> Result<i64, ExportError> {
    let sql = format!("SELECT COUNT(*) FROM \"{}\"", t.name);
    Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .fetch_one(conn)
        .await?)
}

/// Moves a BIGSERIAL's sequence past the largest restored id.
async fn reset_sequence(conn: &mut AnyConnection, t: &TableSpec) -> Result<(), ExportError> {
    let [key] = t.key.as_slice() else {
        return Ok(());
    };
    let seq: Option<String> = sqlx::query_scalar("SELECT pg_get_serial_sequence($1, $2)")
        .bind(format!("\"{}\"", t.name))
        .bind(key.as_str())
        .fetch_one(&mut *conn)
        .await?;
    if let Some(seq) = seq {
        let sql = format!(
            "SELECT setval($1::regclass, COALESCE((SELECT MAX(\"{key}\") FROM \"{}\"), 0) + 1, false)",
            t.name
        );
        let _: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(seq)
            .fetch_one(conn)
            .await?;
    }
    Ok(())
}

/// Inserts one table's rows (up to its end line) in multi-row statements,
/// checking each row's shape and the table's count and hash.
async fn restore_table(
    conn: &mut AnyConnection,
    r: &mut LineReader<'_>,
    target: &TableSpec,
    columns: &[Column],
    progress: &mut dyn FnMut(&str, u64),
) -> Result<u64, ExportError> {
    // Multi-row statements of ~2,000 parameters: sqlx binds the parameters
    // of a statement in time that grows faster than their number (1,000
    // rows of 14 columns took seconds), so statements stay small.
    let per_stmt = (2_000 / columns.len().max(1)).clamp(1, 200);
    let mut hash = Sha256::new();
    let mut batch: Vec<Vec<Value>> = Vec::with_capacity(per_stmt);
    let mut rows = 0u64;
    loop {
        if r.next()?.is_none() {
            return Err(r.bad(format!(
                "the archive is truncated: table `{}` ends after {rows} rows without its end line",
                target.name
            )));
        }
        r.all.update(&r.buf);
        if r.buf.first() == Some(&b'{') {
            let end: TableEnd = r.parse("the table's end line")?;
            if end.end != target.name {
                return Err(r.bad(format!(
                    "end line names table `{}` inside table `{}`",
                    end.end, target.name
                )));
            }
            if end.rows != rows {
                return Err(r.bad(format!(
                    "table `{}`: the end line counts {} rows, the archive holds {rows}",
                    target.name, end.rows
                )));
            }
            let got = hex::encode(hash.clone().finalize());
            if end.sha256 != got {
                return Err(r.bad(format!(
                    "checksum mismatch in table `{}` (end line says {}, rows hash to {got}): the archive was changed or damaged",
                    target.name, end.sha256
                )));
            }
            insert(conn, target, columns, &batch)
                .await
                .map_err(|e| refused(r, target, e))?;
            progress(&target.name, rows);
            return Ok(rows);
        }
        hash.update(&r.buf);
        let raw: Vec<serde_json::Value> = r.parse("a row (a JSON array)")?;
        if raw.len() != columns.len() {
            return Err(r.bad(format!(
                "table `{}`: a row has {} values, the header names {} columns",
                target.name,
                raw.len(),
                columns.len()
            )));
        }
        let mut row = Vec::with_capacity(raw.len());
        for (v, c) in raw.into_iter().zip(columns) {
            row.push(match (v, c.ty) {
                (serde_json::Value::Null, _) if c.nullable => Value::Null,
                (serde_json::Value::Number(n), ColType::Int) if n.as_i64().is_some() => {
                    Value::Int(n.as_i64().unwrap_or_default())
                }
                (serde_json::Value::String(s), ColType::Text) => Value::Text(s),
                (v, ty) => {
                    return Err(r.bad(format!(
                        "table `{}`, column `{}`: {v} is not a valid {} value",
                        target.name,
                        c.name,
                        if c.nullable {
                            format!("nullable {}", ty.as_str())
                        } else {
                            ty.as_str().to_string()
                        }
                    )))
                }
            });
        }
        batch.push(row);
        rows += 1;
        if batch.len() == per_stmt {
            insert(conn, target, columns, &batch)
                .await
                .map_err(|e| refused(r, target, e))?;
            batch.clear();
            if rows % 100_000 < per_stmt as u64 {
                progress(&target.name, rows);
            }
        }
    }
}

/// A database error while inserting rows, with the archive line reached.
fn refused(r: &LineReader<'_>, target: &TableSpec, e: ExportError) -> ExportError {
    r.bad(format!(
        "table `{}`: the target database refused rows read so far: {e}",
        target.name
    ))
}

async fn insert(
    conn: &mut AnyConnection,
    target: &TableSpec,
    columns: &[Column],
    batch: &[Vec<Value>],
) -> Result<(), ExportError> {
    if batch.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = columns.iter().map(|c| format!("\"{}\"", c.name)).collect();
    let mut sql = format!(
        "INSERT INTO \"{}\" ({}) VALUES ",
        target.name,
        names.join(", ")
    );
    let mut p = 0usize;
    for (i, _) in batch.iter().enumerate() {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for j in 0..columns.len() {
            if j > 0 {
                sql.push_str(", ");
            }
            p += 1;
            sql.push('$');
            sql.push_str(&p.to_string());
        }
        sql.push(')');
    }
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for row in batch {
        for (v, c) in row.iter().zip(columns) {
            q = match (v, c.ty) {
                (Value::Int(i), _) => q.bind(*i),
                (Value::Text(s), _) => q.bind(s.clone()),
                (Value::Null, ColType::Int) => q.bind(None::<i64>),
                (Value::Null, ColType::Text) => q.bind(None::<String>),
            };
        }
    }
    q.execute(conn).await?;
    Ok(())
}
