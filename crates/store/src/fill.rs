//! Filling a fresh database with millions of rows in one transaction (the
//! demo generator): on an SQLite file through SQLite's own statements on a
//! connection of its own ([`crate::bulk::Writer`]), elsewhere (PostgreSQL,
//! an in-memory SQLite) through sqlx with [`BulkLoad`]. Either way the
//! rows are those of [`repo::insert`], the secondary indexes are built once
//! at the end, and nothing is stored unless [`Fill::commit`] succeeds.

use tokio::runtime::RuntimeFlavor;

use crate::bind::Table;
use crate::repo::{self, BulkLoad};
use crate::{bulk, Backend, Store, StoreError, Tx};

/// A bulk load in progress; dropped without [`Fill::commit`], it rolls
/// back.
pub struct Fill(How);

enum How {
    Pool {
        tx: Tx<'static>,
        load: BulkLoad,
        backend: Backend,
    },
    File(bulk::Writer),
}

impl Fill {
    /// Starts the load's transaction (on SQLite it holds the write lock
    /// until the commit).
    ///
    /// On SQLite the secondary indexes are dropped and each is built once
    /// at the commit, one sort instead of millions of b-tree inserts at
    /// random places; but an index named in `keep` stays and takes its
    /// rows as they come. That is cheaper for an index whose key order is
    /// the order the rows are inserted in (each insert lands next to the
    /// previous one, on pages already in the cache), and it is done while
    /// the writer would otherwise wait for the caller's next rows. An
    /// unknown name is an error.
    pub async fn begin(store: &Store, keep: &[&str]) -> Result<Fill, StoreError> {
        if let Some(file) = store.file() {
            store
                .close_connections(std::time::Duration::from_millis(100))
                .await?;
            return Ok(Fill(How::File(blocking(|| {
                bulk::Writer::begin(file, keep)
            })?)));
        }
        let mut tx = store.begin().await?;
        let load = BulkLoad::begin(tx.conn(), store.backend(), keep).await?;
        Ok(Fill(How::Pool {
            tx,
            load,
            backend: store.backend(),
        }))
    }

    /// Inserts `rows` with `table`'s insert (each table's note says which
    /// ids it keeps and which the store assigns).
    pub async fn insert<'r, T: 'r>(
        &mut self,
        table: &Table<T>,
        rows: impl IntoIterator<Item = &'r T>,
    ) -> Result<(), StoreError> {
        match &mut self.0 {
            How::Pool { tx, .. } => repo::insert(tx.conn(), table, rows).await,
            How::File(w) => blocking(|| w.insert(table, rows)),
        }
    }

    /// Builds the indexes and commits; on PostgreSQL the id sequences are
    /// moved past the ids given first.
    pub async fn commit(self) -> Result<(), StoreError> {
        match self.0 {
            How::Pool {
                mut tx,
                load,
                backend,
            } => {
                load.finish(tx.conn()).await?;
                if backend == Backend::Postgres {
                    repo::sync_id_sequences(tx.conn()).await?;
                }
                tx.commit().await
            }
            How::File(w) => blocking(|| w.finish()),
        }
    }
}

/// Runs `f`, which blocks on SQLite, without stalling the other tasks of
/// a multi-threaded runtime. A single-threaded runtime (tests) has no
/// other thread to hand its tasks to, so there it just runs.
fn blocking<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// A bulk load into an SQLite file whose inserts run on a thread of their
/// own: the caller prepares the next rows while SQLite writes these (a
/// first import of a CRM export parses, checks and evaluates each row on
/// one core while the other writes). Like [`Fill`], nothing is stored
/// unless [`FillBehind::commit`] succeeds; dropped before, the thread ends
/// after the inserts already queued and the load rolls back.
pub struct FillBehind {
    jobs: tokio::sync::mpsc::Sender<Job>,
    /// Taken when the thread is joined (it stopped at an error).
    thread: Option<std::thread::JoinHandle<Result<bulk::Writer, StoreError>>>,
}

/// An insert queued for the writer's thread.
type Job = Box<dyn FnOnce(&mut bulk::Writer) -> Result<(), StoreError> + Send>;

/// Inserts queued at most: enough to keep the writer busy while the next
/// rows are prepared, few enough that memory stays a few batches.
const QUEUED: usize = 2;

impl FillBehind {
    /// Starts the load's transaction on an SQLite file (the secondary
    /// indexes but `keep` dropped, as [`Fill::begin`]). `None` when the
    /// store is not a file (PostgreSQL, in-memory SQLite), or when
    /// `needs_empty` has rows once the load holds the write lock: then
    /// nothing was changed.
    pub async fn begin(
        store: &Store,
        keep: &[&str],
        needs_empty: &str,
    ) -> Result<Option<FillBehind>, StoreError> {
        let Some(file) = store.file() else {
            return Ok(None);
        };
        store
            .close_connections(std::time::Duration::from_millis(100))
            .await?;
        let Some(mut writer) = blocking(|| bulk::Writer::begin_if_empty(file, keep, needs_empty))?
        else {
            return Ok(None);
        };
        let (jobs, mut queue) = tokio::sync::mpsc::channel::<Job>(QUEUED);
        let thread = std::thread::Builder::new()
            .name("tandem-fill".into())
            .spawn(move || {
                while let Some(job) = queue.blocking_recv() {
                    job(&mut writer)?;
                }
                Ok(writer)
            })
            .map_err(|e| StoreError::Corrupt(format!("cannot start the writer thread: {e}")))?;
        Ok(Some(FillBehind {
            jobs,
            thread: Some(thread),
        }))
    }

    /// Queues `rows` for `table`'s insert ([`Fill::insert`]); waits while
    /// the queue is full. An earlier insert's error is returned here, and
    /// the load is then over.
    pub async fn insert<T: Send + Sync + 'static>(
        &mut self,
        table: &'static Table<T>,
        rows: Vec<T>,
    ) -> Result<(), StoreError> {
        let job: Job = Box::new(move |w| w.insert(table, &rows));
        if self.jobs.send(job).await.is_ok() {
            return Ok(());
        }
        // The queue closes only when the thread stopped at an error.
        match self.thread.take().map(|t| blocking(|| join(t))) {
            Some(Err(e)) => Err(e),
            _ => Err(StoreError::Corrupt("the bulk load already ended".into())),
        }
    }

    /// Waits for the queued inserts, builds the indexes and commits.
    pub async fn commit(self) -> Result<(), StoreError> {
        let FillBehind { jobs, thread } = self;
        drop(jobs);
        let thread =
            thread.ok_or_else(|| StoreError::Corrupt("the bulk load already ended".into()))?;
        let writer = blocking(|| join(thread))?;
        blocking(|| writer.finish())
    }
}

/// The result of the writer thread; its panic is re-raised.
fn join(
    thread: std::thread::JoinHandle<Result<bulk::Writer, StoreError>>,
) -> Result<bulk::Writer, StoreError> {
    match thread.join() {
        Ok(r) => r,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}
