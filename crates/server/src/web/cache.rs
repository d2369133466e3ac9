//! The stored history the pages read, kept between requests: reading every
//! row of a medium-sized company takes longer than a page may. A request
//! first reads the store's [`Stamp`] (largest id per table, an index lookup
//! each); the kept snapshot is reused while the stamp is unchanged and it is
//! younger than [`MAX_AGE`] (which bounds how stale an in-place update of a
//! field, which changes no id, can be); every stage move appends a transition
//! and so changes the stamp. One request reads at a time; the others wait for it and reuse it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tandem_store::repo::{self, Snapshot};
use tandem_store::stamp::{self, Stamp};
use tandem_store::{Store, StoreError};
use tokio::sync::Mutex;

use super::WebError;
use axum::http::StatusCode;

/// Longest a snapshot is reused without reading it again.
pub const MAX_AGE: Duration = Duration::from_secs(30);

struct Entry {
    stamp: Stamp,
    read: Instant,
    snap: Arc<Snapshot>,
}

/// The kept snapshot (one per app).
#[derive(Clone, Default)]
pub struct SnapshotCache(Arc<Mutex<Option<Entry>>>);

impl SnapshotCache {
    /// The current history: the kept one if nothing changed, else read anew.
    /// The read runs in its own task, so a request that times out while it
    /// runs (a large store on a busy machine) still leaves the snapshot for
    /// the next one.
    pub async fn get(&self, store: &Store) -> Result<Arc<Snapshot>, WebError> {
        let kept = self.0.clone();
        let store = store.clone();
        let task = tokio::spawn(async move {
            let r: Result<Arc<Snapshot>, StoreError> = async {
                let mut kept = kept.lock().await;
                let mut c = store.conn().await?;
                let now = stamp::stamp(&mut c).await?;
                if let Some(e) = kept.as_ref() {
                    if e.stamp == now && e.read.elapsed() < MAX_AGE {
                        return Ok(e.snap.clone());
                    }
                }
                // Drop the old one first so two full copies never live at once.
                *kept = None;
                let snap = Arc::new(repo::snapshot(&mut c).await?);
                *kept = Some(Entry {
                    stamp: now,
                    read: Instant::now(),
                    snap: snap.clone(),
                });
                Ok(snap)
            }
            .await;
            r
        });
        match task.await {
            Ok(r) => Ok(r?),
            Err(e) => Err(WebError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("reading the history failed: {e}"),
            )),
        }
    }
}
