//! tandem-store: persistence on SQLite (embedded default) and PostgreSQL.
//!
//! One schema and one migration set ([`migrate`]) serve both backends through
//! sqlx's `Any` driver; every statement is parameterised and written in the
//! SQL both backends accept. Reads and writes are free functions over a
//! connection (`&mut AnyConnection`), so the same code runs inside a
//! transaction ([`Store::begin`]) and on a pooled connection.

pub mod accounts;
pub mod alerts;
pub mod backup;
mod bind;
mod bulk;
mod error;
pub mod events;
pub mod export;
pub mod feedback;
pub mod fill;
pub mod lifecycle;
mod migrate;
pub mod numbers;
pub mod pages;
pub mod query;
pub mod repo;
pub mod report_sends;
mod rows;
pub mod stamp;
pub mod testing;
pub mod tokens;
pub mod warm;
pub mod weekly;
pub mod write;

use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyPool, Connection, Executor, Transaction};

pub use bind::{Table, Val};
pub use error::StoreError;
pub use migrate::MIGRATIONS;
pub use sqlx::AnyConnection;

/// Default database URL: `tandem.db` in the working directory.
pub const DEFAULT_URL: &str = "sqlite://tandem.db?mode=rwc";

/// The database engine behind a [`Store`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Where the database is. `Debug` hides any password in the URL.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    /// Accepts `sqlite:…`, `postgres://…`/`postgresql://…`, or a plain file
    /// path (read as an SQLite file, created if missing).
    pub fn parse(s: &str) -> Result<DatabaseUrl, StoreError> {
        let s = s.trim();
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            Ok(DatabaseUrl(s.to_string()))
        } else if s.starts_with("sqlite:") {
            Ok(DatabaseUrl(if s.contains("mode=") {
                s.to_string()
            } else if s.contains('?') {
                format!("{s}&mode=rwc")
            } else {
                format!("{s}?mode=rwc")
            }))
        } else if s.is_empty() || s.contains("://") {
            Err(StoreError::BadUrl(redact(s)))
        } else {
            Ok(DatabaseUrl(format!("sqlite://{s}?mode=rwc")))
        }
    }

    /// The backend this URL names.
    pub fn backend(&self) -> Backend {
        if self.0.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            Backend::Postgres
        }
    }

    /// The full URL (with password). Never log this.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

fn redact(url: &str) -> String {
    // postgres://user:secret@host → postgres://user:***@host
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme + 3],
                    &creds[..colon],
                    &url[at..]
                ),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({})", redact(&self.0))
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact(&self.0))
    }
}

/// A connection pool to one tandem database.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// The database file of an SQLite store (not of an in-memory one):
    /// what full reads open a connection of their own to ([`bulk`]).
    file: Option<Arc<Path>>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend)
            .finish()
    }
}

/// The file an SQLite URL names, made absolute (so a later change of the
/// working directory does not move it); `None` for an in-memory database.
fn sqlite_file(url: &str) -> Option<Arc<Path>> {
    if url.contains(":memory:") || url.contains("mode=memory") {
        return None;
    }
    let opts = sqlx::sqlite::SqliteConnectOptions::from_str(url).ok()?;
    std::path::absolute(opts.get_filename()).ok().map(Arc::from)
}

/// A write transaction. Dropped without [`Tx::commit`], it rolls back.
/// `'c` is the connection it runs on: `'static` for a pooled one
/// ([`Store::begin`]), a borrow for a [`SoleWriter`]'s own.
pub struct Tx<'c>(Transaction<'c, Any>);

impl Tx<'_> {
    /// The connection to run reads and writes on.
    pub fn conn(&mut self) -> &mut AnyConnection {
        &mut self.0
    }

    /// Makes every write of this transaction durable at once.
    pub async fn commit(self) -> Result<(), StoreError> {
        Ok(self.0.commit().await?)
    }
}

impl Store {
    /// Connects and brings the schema up to date.
    #[tracing::instrument(skip_all, fields(db.url = %url))]
    pub async fn open(url: &DatabaseUrl) -> Result<Store, StoreError> {
        let store = Store::connect(url).await?;
        migrate::run(&store).await?;
        Ok(store)
    }

    /// Connects without migrating.
    pub async fn connect(url: &DatabaseUrl) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = url.backend();
        let opts = AnyConnectOptions::from_str(url.expose()).map_err(|e| StoreError::Connect {
            url: url.to_string(),
            source: e,
        })?;
        let pool = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 4 } else { 10 })
            .acquire_timeout(Duration::from_secs(30))
            // A ping before handing out an idle connection guards against a
            // server that dropped it; an SQLite connection lives in this
            // process, so there the ping is only a round trip to its thread
            // on every acquire (one per ingest call, for its write key).
            .test_before_acquire(backend != Backend::Sqlite)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL lets readers run beside the writer; FULL sync keeps
                        // every acknowledged commit across a crash or power loss.
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA synchronous = FULL").await?;
                        conn.execute("PRAGMA foreign_keys = ON").await?;
                        conn.execute("PRAGMA busy_timeout = 10000").await?;
                    }
                    Ok(())
                })
            })
            .connect_with(opts)
            .await
            .map_err(|e| StoreError::Connect {
                url: url.to_string(),
                source: e,
            })?;
        let file = match backend {
            Backend::Sqlite => sqlite_file(url.expose()),
            Backend::Postgres => None,
        };
        Ok(Store {
            pool,
            backend,
            file,
        })
    }

    /// The database file of an SQLite store in a file.
    pub(crate) fn file(&self) -> Option<&Arc<Path>> {
        self.file.as_ref()
    }

    /// The backend in use.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A pooled connection for reads.
    pub async fn conn(&self) -> Result<PoolConnection<Any>, StoreError> {
        Ok(self.pool.acquire().await?)
    }

    /// Starts a write transaction.
    pub async fn begin(&self) -> Result<Tx<'static>, StoreError> {
        let tx = if self.backend == Backend::Sqlite {
            // Take the write lock up front so two writers queue on busy_timeout
            // instead of failing when a read lock cannot be upgraded.
            self.pool.begin_with("BEGIN IMMEDIATE").await?
        } else {
            self.pool.begin().await?
        };
        Ok(Tx(tx))
    }

    /// [`Store::begin`] for one of a long series of large write
    /// transactions (an import's batches). On SQLite the connection's page
    /// cache is raised to 64 MiB first: the default 2 MB holds a small part
    /// of the indexes a large import inserts into, so every batch read and
    /// wrote the same index pages through the kernel again (a 1M-row
    /// import: 10 s of system time, 5 s with this cache, 18 MB more peak
    /// RSS). The setting stays with the pooled connection; SQLite takes the
    /// memory only for pages it reads.
    pub async fn begin_bulk(&self) -> Result<Tx<'static>, StoreError> {
        let mut tx = self.begin().await?;
        if self.backend == Backend::Sqlite {
            sqlx::query("PRAGMA cache_size = -65536")
                .execute(tx.conn())
                .await?;
        }
        Ok(tx)
    }

    /// A connection of its own for one long-lived writer ([`SoleWriter`]),
    /// on an SQLite file; `None` on PostgreSQL and for an in-memory
    /// database (where another connection is another database).
    pub async fn sole_writer(&self) -> Result<Option<SoleWriter>, StoreError> {
        if self.backend != Backend::Sqlite || self.file.is_none() {
            return Ok(None);
        }
        // Detached: the pool opens another in its place, and closing the
        // store does not wait for this one.
        let conn = self.pool.acquire().await?.detach();
        Ok(Some(SoleWriter { conn, seen: None }))
    }

    /// Closes the pool's connections that are idle or come back to it
    /// within `wait` (the pool opens new ones when asked): on SQLite a
    /// connection that is only open still keeps the file's journal mode
    /// from changing. A connection dropped just before is still on its way
    /// back (sqlx returns it on a task), and the pool opens a new one
    /// rather than wait for it: so this takes connections until it holds
    /// every one the pool has open, or waited `wait` in vain.
    pub(crate) async fn close_connections(&self, wait: Duration) -> Result<(), StoreError> {
        let mut held = Vec::new();
        while held.len() < self.pool.size() as usize {
            match tokio::time::timeout(wait, self.pool.acquire()).await {
                Ok(c) => held.push(c?),
                Err(_) => break,
            }
        }
        for c in held {
            c.close().await?;
        }
        Ok(())
    }

    /// True when a trivial query answers (readiness).
    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut c = self.conn().await?;
        c.ping().await?;
        Ok(())
    }

    /// Closes every connection.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// One writer's own connection to an SQLite file, outside the pool, that
/// knows whether anyone else wrote between its transactions: what a writer
/// needs to keep what it read and wrote in memory (the ingest committer's
/// facts of recent people) and trust it only while nobody else wrote.
///
/// SQLite's `PRAGMA data_version` changes on a connection when another
/// connection (of this process or any other) commits, and never for the
/// connection's own commits; read inside `BEGIN IMMEDIATE`, which holds the
/// write lock, nobody else can commit until this transaction ends.
pub struct SoleWriter {
    conn: AnyConnection,
    /// `data_version` at the previous [`SoleWriter::begin`].
    seen: Option<i64>,
}

impl SoleWriter {
    /// Starts a write transaction on the writer's connection. The flag is
    /// true when every commit since the writer's previous `begin` was its
    /// own (false the first time).
    pub async fn begin(&mut self) -> Result<(Tx<'_>, bool), StoreError> {
        let mut tx = Tx(Connection::begin_with(&mut self.conn, "BEGIN IMMEDIATE").await?);
        let version: i64 = sqlx::query_scalar("PRAGMA data_version")
            .fetch_one(tx.conn())
            .await?;
        let alone = self.seen == Some(version);
        self.seen = Some(version);
        Ok((tx, alone))
    }
}
