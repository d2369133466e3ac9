//! Every table, read inside one consistent snapshot and streamed row by row
//! (`tandem export`, `tandem backup`).
//!
//! The tables and their columns come from the database's own catalog, so a
//! table added by a later migration is exported without touching this file.
//! Tables are visited parents first (foreign keys), which is also the order a
//! restore must insert them in. Rows are streamed in primary-key order; no
//! table is ever held in memory.
//!
//! Formats for peers (DuckDB, spreadsheets, pandas), one file per table:
//! - `csv`: a header row, empty cell = NULL;
//! - `jsonl`: one JSON object per row;
//! - `parquet` (cargo feature `parquet`): one row group per 64k rows.
//!
//! Times are stored as UTC epoch milliseconds. CSV and JSONL keep that number
//! under the column's own name and add `<name>_utc` (ISO-8601, `…Z`) right
//! after it; Parquet types the column itself as a UTC millisecond timestamp.
//! Money stays in integer minor units (`amount`+`currency` on deals; campaign
//! and touch costs and account revenue are in the company currency). A
//! foreign key to a table with an `external_id` gets a companion column
//! (`person_id` → `person_external_id`), so an exported file can be imported
//! again and read without a join.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use futures_util::TryStreamExt;
use sqlx::{Any, AnyConnection, Connection, Row, Transaction};

use crate::{Backend, Store, StoreError};

/// What can go wrong exporting, backing up or restoring.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("table {table}, column {column}: unsupported column type {ty:?} (tandem exports integers and text)")]
    ColumnType {
        table: String,
        column: String,
        ty: String,
    },
    #[error("unknown table `{0}`; tables: {1}")]
    UnknownTable(String, String),
    #[error("the foreign keys between tables {0} form a cycle")]
    Cycle(String),
    #[error("{path}:{line}: {reason}")]
    Archive {
        path: String,
        line: u64,
        reason: String,
    },
    #[error("{0}")]
    Refused(String),
    #[cfg(feature = "parquet")]
    #[error("{path}: parquet: {source}")]
    Parquet {
        path: String,
        #[source]
        source: parquet::errors::ParquetError,
    },
}

impl ExportError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> ExportError {
        ExportError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

impl From<sqlx::Error> for ExportError {
    fn from(e: sqlx::Error) -> Self {
        ExportError::Store(StoreError::Db(e))
    }
}

/// How a column's values are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColType {
    /// 64-bit integer (ids, counts, flags, money in minor units, epoch ms).
    Int,
    /// UTF-8 text.
    Text,
}

impl ColType {
    pub fn as_str(self) -> &'static str {
        match self {
            ColType::Int => "int",
            ColType::Text => "text",
        }
    }

    pub fn parse(s: &str) -> Option<ColType> {
        match s {
            "int" => Some(ColType::Int),
            "text" => Some(ColType::Text),
            _ => None,
        }
    }
}

/// One column of a table, as the catalog describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub ty: ColType,
    pub nullable: bool,
}

impl Column {
    /// Integer columns named `at` or `…_at` hold UTC epoch milliseconds.
    pub fn is_time(&self) -> bool {
        self.ty == ColType::Int && (self.name == "at" || self.name.ends_with("_at"))
    }
}

/// A foreign key from one column to a table's key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForeignKey {
    pub column: String,
    pub table: String,
    pub to: String,
}

/// One table: its columns in catalog order, primary key, foreign keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableSpec {
    pub name: String,
    pub columns: Vec<Column>,
    pub key: Vec<String>,
    pub refs: Vec<ForeignKey>,
}

impl TableSpec {
    fn order_by(&self) -> String {
        let cols: Vec<&str> = if self.key.is_empty() {
            self.columns.iter().map(|c| c.name.as_str()).collect()
        } else {
            self.key.iter().map(String::as_str).collect()
        };
        cols.iter()
            .map(|c| format!("t.\"{c}\""))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// One stored value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    Null,
    Int(i64),
    Text(String),
}

impl serde::Serialize for Value {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Null => s.serialize_unit(),
            Value::Int(i) => s.serialize_i64(*i),
            Value::Text(t) => s.serialize_str(t),
        }
    }
}

/// Identifiers come from the catalog; they are quoted, and anything but
/// `[a-z0-9_]` is refused so no catalog name can change a statement.
fn ident(name: &str) -> Result<&str, ExportError> {
    if !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        Ok(name)
    } else {
        Err(ExportError::Store(StoreError::Corrupt(format!(
            "unexpected identifier {name:?} in the schema"
        ))))
    }
}

fn col_type(table: &str, column: &str, declared: &str) -> Result<ColType, ExportError> {
    let d = declared.to_ascii_lowercase();
    if d.contains("int") {
        Ok(ColType::Int)
    } else if d == "text" || d.contains("char") {
        Ok(ColType::Text)
    } else {
        Err(ExportError::ColumnType {
            table: table.to_string(),
            column: column.to_string(),
            ty: declared.to_string(),
        })
    }
}

/// Tables `tandem export` leaves out unless named with `--tables`: API
/// token hashes are credentials' fingerprints, not data for peers. Backups
/// include them (a restored server keeps accepting its tokens).
pub const PRIVATE: &[&str] = &["api_tokens"];

/// Bookkeeping tables that are not data: the migration log.
const SKIP: &[&str] = &["tandem_migrations"];

/// Every data table of the database, parents before children (foreign
/// keys), ties by name.
pub async fn catalog(
    conn: &mut AnyConnection,
    backend: Backend,
) -> Result<Vec<TableSpec>, ExportError> {
    let names: Vec<String> = match backend {
        Backend::Sqlite => sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
        )
        .fetch_all(&mut *conn)
        .await?,
        Backend::Postgres => sqlx::query_scalar(
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY table_name",
        )
        .fetch_all(&mut *conn)
        .await?,
    };
    let mut specs = BTreeMap::new();
    for name in names.into_iter().filter(|n| !SKIP.contains(&n.as_str())) {
        ident(&name)?;
        let spec = describe(conn, backend, &name).await?;
        specs.insert(name, spec);
    }
    topo(specs)
}

async fn describe(
    conn: &mut AnyConnection,
    backend: Backend,
    table: &str,
) -> Result<TableSpec, ExportError> {
    let mut columns = Vec::new();
    let mut key: Vec<(i64, String)> = Vec::new();
    let mut refs = Vec::new();
    match backend {
        Backend::Sqlite => {
            let rows = sqlx::query(
                "SELECT name, type, \"notnull\", pk FROM pragma_table_info($1) ORDER BY cid",
            )
            .bind(table)
            .fetch_all(&mut *conn)
            .await?;
            for r in rows {
                let name: String = r.try_get(0)?;
                let declared: String = r.try_get(1)?;
                let notnull: i64 = r.try_get(2)?;
                let pk: i64 = r.try_get(3)?;
                ident(&name)?;
                if pk > 0 {
                    key.push((pk, name.clone()));
                }
                columns.push(Column {
                    ty: col_type(table, &name, &declared)?,
                    // A primary key column is never NULL, even when SQLite
                    // does not say NOT NULL (INTEGER PRIMARY KEY is the rowid).
                    nullable: notnull == 0 && pk == 0,
                    name,
                });
            }
            let rows =
                sqlx::query("SELECT \"from\", \"table\", \"to\" FROM pragma_foreign_key_list($1)")
                    .bind(table)
                    .fetch_all(&mut *conn)
                    .await?;
            for r in rows {
                let to: Option<String> = r.try_get(2)?;
                refs.push(ForeignKey {
                    column: r.try_get(0)?,
                    table: r.try_get(1)?,
                    to: to.unwrap_or_else(|| "id".to_string()),
                });
            }
        }
        Backend::Postgres => {
            let rows = sqlx::query(
                "SELECT column_name::text, data_type::text, is_nullable::text FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
            )
            .bind(table)
            .fetch_all(&mut *conn)
            .await?;
            for r in rows {
                let name: String = r.try_get(0)?;
                let declared: String = r.try_get(1)?;
                let nullable: String = r.try_get(2)?;
                ident(&name)?;
                columns.push(Column {
                    ty: col_type(table, &name, &declared)?,
                    nullable: nullable == "YES",
                    name,
                });
            }
            let rows = sqlx::query(
                "SELECT kcu.column_name::text, kcu.ordinal_position::bigint FROM information_schema.table_constraints tc JOIN information_schema.key_column_usage kcu ON kcu.constraint_name = tc.constraint_name AND kcu.table_schema = tc.table_schema WHERE tc.constraint_type = 'PRIMARY KEY' AND tc.table_schema = current_schema() AND tc.table_name = $1",
            )
            .bind(table)
            .fetch_all(&mut *conn)
            .await?;
            for r in rows {
                key.push((r.try_get(1)?, r.try_get(0)?));
            }
            let rows = sqlx::query(
                "SELECT kcu.column_name::text, ccu.table_name::text, ccu.column_name::text FROM information_schema.table_constraints tc JOIN information_schema.key_column_usage kcu ON kcu.constraint_name = tc.constraint_name AND kcu.table_schema = tc.table_schema JOIN information_schema.constraint_column_usage ccu ON ccu.constraint_name = tc.constraint_name AND ccu.table_schema = tc.table_schema WHERE tc.constraint_type = 'FOREIGN KEY' AND tc.table_schema = current_schema() AND tc.table_name = $1 ORDER BY kcu.column_name",
            )
            .bind(table)
            .fetch_all(&mut *conn)
            .await?;
            for r in rows {
                refs.push(ForeignKey {
                    column: r.try_get(0)?,
                    table: r.try_get(1)?,
                    to: r.try_get(2)?,
                });
            }
        }
    }
    for fk in &refs {
        ident(&fk.column)?;
        ident(&fk.table)?;
        ident(&fk.to)?;
    }
    key.sort();
    Ok(TableSpec {
        name: table.to_string(),
        columns,
        key: key.into_iter().map(|(_, c)| c).collect(),
        refs,
    })
}

/// Kahn's algorithm; ready tables are taken by name so the order is stable.
fn topo(mut specs: BTreeMap<String, TableSpec>) -> Result<Vec<TableSpec>, ExportError> {
    let mut out = Vec::with_capacity(specs.len());
    let mut done = BTreeSet::new();
    while !specs.is_empty() {
        let ready = specs
            .values()
            .find(|s| {
                // A reference to itself or to a table outside the set (the
                // migration log) does not hold a table back.
                s.refs.iter().all(|r| {
                    r.table == s.name || done.contains(&r.table) || !specs.contains_key(&r.table)
                })
            })
            .map(|s| s.name.clone());
        let Some(name) = ready else {
            return Err(ExportError::Cycle(
                specs.keys().cloned().collect::<Vec<_>>().join(", "),
            ));
        };
        if let Some(spec) = specs.remove(&name) {
            done.insert(name);
            out.push(spec);
        }
    }
    Ok(out)
}

/// The versions recorded in `tandem_migrations`, ascending.
pub async fn migrations(conn: &mut AnyConnection) -> Result<Vec<i64>, ExportError> {
    Ok(
        sqlx::query_scalar("SELECT version FROM tandem_migrations ORDER BY version")
            .fetch_all(conn)
            .await?,
    )
}

/// A read-only transaction that sees one instant of the database: every
/// table read through it is consistent with every other, while writers go
/// on (SQLite WAL snapshot; PostgreSQL REPEATABLE READ).
pub struct Snapshot<'c> {
    tx: Transaction<'c, Any>,
    pub backend: Backend,
    pub tables: Vec<TableSpec>,
    pub migrations: Vec<i64>,
}

impl<'c> Snapshot<'c> {
    /// Opens the snapshot on `conn` and reads the catalog inside it.
    pub async fn begin(
        conn: &'c mut AnyConnection,
        backend: Backend,
    ) -> Result<Snapshot<'c>, ExportError> {
        let mut tx = match backend {
            // A deferred transaction's snapshot starts at its first read
            // (the catalog query below) and holds until it ends.
            Backend::Sqlite => conn.begin().await?,
            Backend::Postgres => {
                conn.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                    .await?
            }
        };
        let tables = catalog(&mut tx, backend).await?;
        let migrations = migrations(&mut tx).await?;
        Ok(Snapshot {
            tx,
            backend,
            tables,
            migrations,
        })
    }

    /// The tables named in `only` (when empty: all but [`PRIVATE`]), in
    /// catalog order.
    pub fn select(&self, only: &[String]) -> Result<Vec<TableSpec>, ExportError> {
        for name in only {
            if !self.tables.iter().any(|t| &t.name == name) {
                return Err(ExportError::UnknownTable(
                    name.clone(),
                    self.tables
                        .iter()
                        .map(|t| t.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                ));
            }
        }
        Ok(self
            .tables
            .iter()
            .filter(|t| {
                if only.is_empty() {
                    !PRIVATE.contains(&t.name.as_str())
                } else {
                    only.contains(&t.name)
                }
            })
            .cloned()
            .collect())
    }

    /// The companion `<x>_external_id` columns of `table`: one per foreign
    /// key into a table that has an `external_id`.
    pub fn companions(&self, table: &TableSpec) -> Vec<Companion> {
        table
            .refs
            .iter()
            .filter(|fk| fk.table != table.name)
            .filter(|fk| {
                self.tables.iter().any(|t| {
                    t.name == fk.table && t.columns.iter().any(|c| c.name == "external_id")
                })
            })
            .filter_map(|fk| {
                let base = fk.column.strip_suffix("_id")?;
                let name = format!("{base}_external_id");
                (!table.columns.iter().any(|c| c.name == name)).then(|| Companion {
                    name,
                    fk: fk.clone(),
                })
            })
            .collect()
    }

    /// Streams `table`'s rows in key order into `f`, with the values of
    /// `companions` appended to each row. Returns the row count.
    pub async fn rows(
        &mut self,
        table: &TableSpec,
        companions: &[Companion],
        mut f: impl FnMut(&[Value]) -> Result<(), ExportError>,
    ) -> Result<u64, ExportError> {
        let mut select: Vec<String> = table
            .columns
            .iter()
            .map(|c| format!("t.\"{}\"", c.name))
            .collect();
        let mut joins = String::new();
        for (i, c) in companions.iter().enumerate() {
            select.push(format!("j{i}.\"external_id\""));
            joins.push_str(&format!(
                " LEFT JOIN \"{}\" j{i} ON j{i}.\"{}\" = t.\"{}\"",
                c.fk.table, c.fk.to, c.fk.column
            ));
        }
        let sql = format!(
            "SELECT {} FROM \"{}\" t{joins} ORDER BY {}",
            select.join(", "),
            table.name,
            table.order_by()
        );
        let types: Vec<ColType> = table
            .columns
            .iter()
            .map(|c| c.ty)
            .chain(companions.iter().map(|_| ColType::Text))
            .collect();
        let mut stream = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch(&mut *self.tx);
        let mut values = Vec::with_capacity(types.len());
        let mut n = 0u64;
        while let Some(row) = stream.try_next().await? {
            values.clear();
            for (i, ty) in types.iter().enumerate() {
                values.push(match ty {
                    ColType::Int => row
                        .try_get::<Option<i64>, _>(i)?
                        .map_or(Value::Null, Value::Int),
                    ColType::Text => row
                        .try_get::<Option<String>, _>(i)?
                        .map_or(Value::Null, Value::Text),
                });
            }
            f(&values)?;
            n += 1;
        }
        Ok(n)
    }

    /// Ends the read transaction.
    pub async fn finish(self) -> Result<(), ExportError> {
        self.tx.rollback().await?;
        Ok(())
    }
}

/// An extra `<x>_external_id` column resolved through a foreign key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Companion {
    pub name: String,
    pub fk: ForeignKey,
}

/// File formats for `tandem export`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Csv,
    Jsonl,
    Parquet,
}

impl Format {
    pub fn extension(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Jsonl => "jsonl",
            Format::Parquet => "parquet",
        }
    }
}

/// One exported table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exported {
    pub table: String,
    pub rows: u64,
    pub path: PathBuf,
}

/// An output column: a stored column, its `_utc` twin, or a companion.
#[derive(Clone, Debug)]
#[cfg_attr(not(feature = "parquet"), allow(dead_code))]
pub(crate) enum OutCol {
    Stored { index: usize, time: bool },
    Utc { index: usize },
    Companion { index: usize },
}

pub(crate) struct Layout {
    pub names: Vec<String>,
    pub cols: Vec<OutCol>,
}

fn layout(table: &TableSpec, companions: &[Companion], utc_twins: bool) -> Layout {
    let mut names = Vec::new();
    let mut cols = Vec::new();
    for (index, c) in table.columns.iter().enumerate() {
        names.push(c.name.clone());
        cols.push(OutCol::Stored {
            index,
            time: c.is_time(),
        });
        if utc_twins && c.is_time() {
            names.push(format!("{}_utc", c.name));
            cols.push(OutCol::Utc { index });
        }
    }
    for (i, c) in companions.iter().enumerate() {
        names.push(c.name.clone());
        cols.push(OutCol::Companion {
            index: table.columns.len() + i,
        });
    }
    Layout { names, cols }
}

/// `2024-03-01T09:30:00.000Z` for epoch milliseconds.
pub fn iso_utc(ms: i64) -> String {
    match jiff::Timestamp::from_millisecond(ms) {
        Ok(ts) => ts.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        Err(_) => String::new(),
    }
}

/// Writes every selected table of one snapshot into `dir` as
/// `<table>.<ext>`. Files are written under a temporary name and renamed
/// only when every table succeeded, so a failed export leaves no partial
/// file behind. `progress` gets (table, rows so far) every 100k rows.
pub async fn export_dir(
    store: &Store,
    format: Format,
    dir: &Path,
    only: &[String],
    progress: &mut dyn FnMut(&str, u64),
) -> Result<Vec<Exported>, ExportError> {
    #[cfg(not(feature = "parquet"))]
    if format == Format::Parquet {
        return Err(ExportError::Refused(
            "this tandem was built without Parquet support (cargo feature `parquet`)".into(),
        ));
    }
    std::fs::create_dir_all(dir).map_err(|e| ExportError::io(dir, e))?;
    let mut conn = store.conn().await?;
    let mut snap = Snapshot::begin(&mut conn, store.backend()).await?;
    let tables = snap.select(only)?;
    let mut written: Vec<(PathBuf, Exported)> = Vec::new();
    let result = async {
        for table in &tables {
            let companions = snap.companions(table);
            let path = dir.join(format!("{}.{}", table.name, format.extension()));
            let tmp = dir.join(format!(".{}.{}.partial", table.name, format.extension()));
            let rows = match format {
                Format::Csv | Format::Jsonl => {
                    let layout = layout(table, &companions, true);
                    let file = File::create(&tmp).map_err(|e| ExportError::io(&tmp, e))?;
                    let mut w = TextWriter::new(format, file, &layout, &tmp)?;
                    let name = table.name.clone();
                    let mut count = 0u64;
                    let rows = snap
                        .rows(table, &companions, |row| {
                            w.row(&layout, row)?;
                            count += 1;
                            if count.is_multiple_of(100_000) {
                                progress(&name, count);
                            }
                            Ok(())
                        })
                        .await?;
                    w.finish()?;
                    rows
                }
                Format::Parquet => {
                    #[cfg(feature = "parquet")]
                    {
                        let layout = layout(table, &companions, false);
                        let mut w = parquet_out::ParquetWriter::create(&tmp, table, &layout)?;
                        let name = table.name.clone();
                        let mut count = 0u64;
                        let rows = snap
                            .rows(table, &companions, |row| {
                                w.row(row)?;
                                count += 1;
                                if count.is_multiple_of(100_000) {
                                    progress(&name, count);
                                }
                                Ok(())
                            })
                            .await?;
                        w.finish()?;
                        rows
                    }
                    #[cfg(not(feature = "parquet"))]
                    unreachable!("refused above")
                }
            };
            progress(&table.name, rows);
            written.push((
                tmp,
                Exported {
                    table: table.name.clone(),
                    rows,
                    path,
                },
            ));
        }
        Ok::<(), ExportError>(())
    }
    .await;
    snap.finish().await?;
    if let Err(e) = result {
        for (tmp, _) in &written {
            let _ = std::fs::remove_file(tmp);
        }
        for table in &tables {
            let _ = std::fs::remove_file(dir.join(format!(
                ".{}.{}.partial",
                table.name,
                format.extension()
            )));
        }
        return Err(e);
    }
    let mut out = Vec::with_capacity(written.len());
    for (tmp, e) in written {
        std::fs::rename(&tmp, &e.path).map_err(|err| ExportError::io(&e.path, err))?;
        out.push(e);
    }
    Ok(out)
}

/// CSV and JSONL output of one table.
struct TextWriter {
    format: Format,
    csv: Option<csv::Writer<BufWriter<File>>>,
    json: Option<BufWriter<File>>,
    path: PathBuf,
    record: Vec<String>,
    line: Vec<u8>,
}

impl TextWriter {
    fn new(format: Format, file: File, layout: &Layout, path: &Path) -> Result<Self, ExportError> {
        let buf = BufWriter::with_capacity(1 << 20, file);
        let mut w = TextWriter {
            format,
            csv: None,
            json: None,
            path: path.to_path_buf(),
            record: Vec::new(),
            line: Vec::new(),
        };
        if format == Format::Csv {
            let mut c = csv::Writer::from_writer(buf);
            c.write_record(&layout.names).map_err(|e| w.csv_err(e))?;
            w.csv = Some(c);
        } else {
            w.json = Some(buf);
        }
        Ok(w)
    }

    fn csv_err(&self, e: csv::Error) -> ExportError {
        ExportError::io(&self.path, std::io::Error::other(e))
    }

    fn row(&mut self, layout: &Layout, row: &[Value]) -> Result<(), ExportError> {
        if self.format == Format::Csv {
            self.record.clear();
            for col in &layout.cols {
                self.record.push(match col {
                    OutCol::Stored { index, .. } | OutCol::Companion { index } => {
                        match &row[*index] {
                            Value::Null => String::new(),
                            Value::Int(i) => i.to_string(),
                            Value::Text(t) => t.clone(),
                        }
                    }
                    OutCol::Utc { index } => match &row[*index] {
                        Value::Int(ms) => iso_utc(*ms),
                        _ => String::new(),
                    },
                });
            }
            let rec = std::mem::take(&mut self.record);
            let res = match self.csv.as_mut() {
                Some(c) => c.write_record(&rec),
                None => Ok(()),
            };
            self.record = rec;
            res.map_err(|e| self.csv_err(e))
        } else {
            let mut obj = serde_json::Map::with_capacity(layout.cols.len());
            for (name, col) in layout.names.iter().zip(&layout.cols) {
                let v = match col {
                    OutCol::Stored { index, .. } | OutCol::Companion { index } => {
                        match &row[*index] {
                            Value::Null => serde_json::Value::Null,
                            Value::Int(i) => serde_json::Value::from(*i),
                            Value::Text(t) => serde_json::Value::from(t.as_str()),
                        }
                    }
                    OutCol::Utc { index } => match &row[*index] {
                        Value::Int(ms) => serde_json::Value::from(iso_utc(*ms)),
                        _ => serde_json::Value::Null,
                    },
                };
                obj.insert(name.clone(), v);
            }
            self.line.clear();
            serde_json::to_writer(&mut self.line, &obj)
                .map_err(|e| ExportError::io(&self.path, std::io::Error::other(e)))?;
            self.line.push(b'\n');
            if let Some(w) = self.json.as_mut() {
                w.write_all(&self.line)
                    .map_err(|e| ExportError::io(&self.path, e))?;
            }
            Ok(())
        }
    }

    fn finish(self) -> Result<(), ExportError> {
        let path = self.path.clone();
        let mut buf = match (self.csv, self.json) {
            (Some(c), _) => c
                .into_inner()
                .map_err(|e| ExportError::io(&path, std::io::Error::other(e.to_string())))?,
            (None, Some(j)) => j,
            (None, None) => return Ok(()),
        };
        buf.flush().map_err(|e| ExportError::io(&path, e))?;
        buf.get_ref()
            .sync_all()
            .map_err(|e| ExportError::io(&path, e))
    }
}

#[cfg(feature = "parquet")]
mod parquet_out {
    //! Parquet through the crate's low-level column writers (no Arrow):
    //! INT64 (timestamps as `TIMESTAMP(MILLIS, UTC)`) and UTF-8 BYTE_ARRAY,
    //! OPTIONAL where the column is nullable.

    use std::fs::File;
    use std::path::{Path, PathBuf};
    use std::sync::Arc;

    use parquet::basic::{LogicalType, Repetition, TimeUnit, Type as Physical};
    use parquet::column::writer::ColumnWriter;
    use parquet::data_type::ByteArray;
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    use parquet::schema::types::Type;

    use super::{ExportError, Layout, OutCol, TableSpec, Value};
    use crate::export::ColType;

    const ROW_GROUP: usize = 65_536;

    enum Buf {
        Int(Vec<i64>),
        Text(Vec<ByteArray>),
    }

    struct Col {
        index: usize,
        nullable: bool,
        buf: Buf,
        defs: Vec<i16>,
    }

    pub(crate) struct ParquetWriter {
        path: PathBuf,
        writer: SerializedFileWriter<File>,
        cols: Vec<Col>,
        pending: usize,
    }

    impl ParquetWriter {
        pub(crate) fn create(
            path: &Path,
            table: &TableSpec,
            layout: &Layout,
        ) -> Result<ParquetWriter, ExportError> {
            let err = |source| ExportError::Parquet {
                path: path.display().to_string(),
                source,
            };
            let mut fields = Vec::new();
            let mut cols = Vec::new();
            for (name, col) in layout.names.iter().zip(&layout.cols) {
                let (index, ty, nullable, time) = match col {
                    OutCol::Stored { index, time } => {
                        let c = &table.columns[*index];
                        (*index, c.ty, c.nullable, *time)
                    }
                    OutCol::Companion { index } => (*index, ColType::Text, true, false),
                    OutCol::Utc { .. } => continue,
                };
                let builder = match ty {
                    ColType::Int => Type::primitive_type_builder(name, Physical::INT64)
                        .with_logical_type(
                            time.then(|| LogicalType::timestamp(true, TimeUnit::MILLIS)),
                        ),
                    ColType::Text => Type::primitive_type_builder(name, Physical::BYTE_ARRAY)
                        .with_logical_type(Some(LogicalType::String)),
                };
                let field = builder
                    .with_repetition(if nullable {
                        Repetition::OPTIONAL
                    } else {
                        Repetition::REQUIRED
                    })
                    .build()
                    .map_err(err)?;
                fields.push(Arc::new(field));
                cols.push(Col {
                    index,
                    nullable,
                    buf: match ty {
                        ColType::Int => Buf::Int(Vec::with_capacity(ROW_GROUP)),
                        ColType::Text => Buf::Text(Vec::with_capacity(ROW_GROUP)),
                    },
                    defs: Vec::with_capacity(if nullable { ROW_GROUP } else { 0 }),
                });
            }
            let schema = Type::group_type_builder(&table.name)
                .with_fields(fields)
                .build()
                .map_err(err)?;
            let file = File::create(path).map_err(|e| ExportError::io(path, e))?;
            let props = WriterProperties::builder()
                .set_created_by("tandem".to_string())
                .build();
            let writer =
                SerializedFileWriter::new(file, Arc::new(schema), Arc::new(props)).map_err(err)?;
            Ok(ParquetWriter {
                path: path.to_path_buf(),
                writer,
                cols,
                pending: 0,
            })
        }

        pub(crate) fn row(&mut self, row: &[Value]) -> Result<(), ExportError> {
            for col in &mut self.cols {
                let v = &row[col.index];
                let present = !matches!(v, Value::Null);
                if col.nullable {
                    col.defs.push(i16::from(present));
                } else if !present {
                    return Err(ExportError::Refused(format!(
                        "{}: NULL in a NOT NULL column",
                        self.path.display()
                    )));
                }
                match (&mut col.buf, v) {
                    (Buf::Int(b), Value::Int(i)) => b.push(*i),
                    (Buf::Text(b), Value::Text(t)) => {
                        b.push(ByteArray::from(t.as_bytes().to_vec()))
                    }
                    (_, Value::Null) => {}
                    (Buf::Int(b), Value::Text(t)) => b.push(t.parse().map_err(|_| {
                        ExportError::Refused(format!(
                            "{}: text {t:?} in an integer column",
                            self.path.display()
                        ))
                    })?),
                    (Buf::Text(b), Value::Int(i)) => {
                        b.push(ByteArray::from(i.to_string().into_bytes()))
                    }
                }
            }
            self.pending += 1;
            if self.pending >= ROW_GROUP {
                self.flush()?;
            }
            Ok(())
        }

        fn flush(&mut self) -> Result<(), ExportError> {
            if self.pending == 0 {
                return Ok(());
            }
            let path = self.path.display().to_string();
            let err = |source| ExportError::Parquet {
                path: path.clone(),
                source,
            };
            let mut rg = self.writer.next_row_group().map_err(err)?;
            for col in &mut self.cols {
                let Some(mut cw) = rg.next_column().map_err(err)? else {
                    break;
                };
                let defs = col.nullable.then_some(col.defs.as_slice());
                match (cw.untyped(), &col.buf) {
                    (ColumnWriter::Int64ColumnWriter(w), Buf::Int(b)) => {
                        w.write_batch(b, defs, None).map_err(err)?;
                    }
                    (ColumnWriter::ByteArrayColumnWriter(w), Buf::Text(b)) => {
                        w.write_batch(b, defs, None).map_err(err)?;
                    }
                    _ => {
                        return Err(err(parquet::errors::ParquetError::General(
                            "column type mismatch".into(),
                        )))
                    }
                }
                cw.close().map_err(err)?;
                match &mut col.buf {
                    Buf::Int(b) => b.clear(),
                    Buf::Text(b) => b.clear(),
                }
                col.defs.clear();
            }
            rg.close().map_err(err)?;
            self.pending = 0;
            Ok(())
        }

        pub(crate) fn finish(mut self) -> Result<(), ExportError> {
            self.flush()?;
            let path = self.path;
            let file = self
                .writer
                .into_inner()
                .map_err(|source| ExportError::Parquet {
                    path: path.display().to_string(),
                    source,
                })?;
            file.sync_all().map_err(|e| ExportError::io(&path, e))
        }
    }
}
