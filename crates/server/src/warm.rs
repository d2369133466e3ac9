//! The warm history: one [`tandem_store::warm::Warm`] per app, shared by
//! the API's metric endpoints and the dashboard. Read once (at `tandem
//! serve` start, or by the first request), then brought up to date by
//! deltas: each request reads the store's marks (eight index lookups) and,
//! when they moved, only the new and updated rows, applied in place.
//!
//! Requests compute under a read guard ([`View`]); a refresh reads its
//! delta without blocking them and takes the write lock only to apply it.
//! One refresh runs at a time; the others wait for it and then read.
//! A handler must take at most one [`View`] at a time (a second [`Warm::get`]
//! while holding one could wait on a refresh that waits on the first view).

use std::any::Any;
use std::collections::VecDeque;
use std::sync::Arc;

use tandem_core::playbook::Playbook;
use tandem_store::repo::Snapshot;
use tandem_store::warm::{self as kept, Marks};
use tandem_store::{Store, StoreError};
use tokio::sync::{Mutex, OwnedRwLockReadGuard, RwLock};

/// The kept history, read-locked for the duration of a request.
pub type View = OwnedRwLockReadGuard<Option<kept::Warm>, Snapshot>;

/// The warm history of one app (cheap to clone: shared).
#[derive(Clone, Default)]
pub struct Warm {
    kept: Arc<RwLock<Option<kept::Warm>>>,
    refresh: Arc<Mutex<()>>,
    memo: Arc<std::sync::Mutex<VecDeque<Kept>>>,
}

/// Results kept by [`Warm::keep`]: the most recent first.
const MEMO_ENTRIES: usize = 16;

/// One kept result and what it was computed from.
struct Kept {
    key: String,
    marks: Marks,
    /// Held so the playbook cannot be freed and another one allocated at
    /// its address while the result is kept: identity is the pointer.
    playbook: Arc<Playbook>,
    value: Arc<dyn Any + Send + Sync>,
}

/// Why the history could not be read.
#[derive(Debug, thiserror::Error)]
pub enum WarmError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("reading the history stopped: {0}")]
    Task(String),
}

impl Warm {
    /// The current history: the kept one brought up to date.
    ///
    /// The refresh runs in its own task, so a request that times out while
    /// a large history is first read still leaves it for the next one.
    pub async fn get(&self, store: &Store) -> Result<View, WarmError> {
        Ok(self.get_marked(store).await?.0)
    }

    /// [`Warm::get`], with the marks of the history the view holds: what a
    /// result computed from it is valid for ([`Warm::recall`]).
    pub async fn get_marked(&self, store: &Store) -> Result<(View, Marks), WarmError> {
        let me = self.clone();
        let store = store.clone();
        tokio::spawn(async move { me.refresh(&store).await })
            .await
            .map_err(|e| WarmError::Task(e.to_string()))??;
        let guard = self.kept.clone().read_owned().await;
        let marks = guard.as_ref().map(|w| w.marks).unwrap_or_default();
        let view = OwnedRwLockReadGuard::try_map(guard, |w| w.as_ref().map(|w| &w.snap))
            .map_err(|_| WarmError::Task("the history was not read".into()))?;
        Ok((view, marks))
    }

    /// A result kept under `key` for exactly this history (`marks`) and
    /// playbook, if any. Analytics are pure functions of the history, the
    /// playbook and what the key names (the as-of instant included), so a
    /// kept result is the one a new computation would give.
    pub fn recall<T: Any + Send + Sync>(
        &self,
        key: &str,
        marks: Marks,
        playbook: &Arc<Playbook>,
    ) -> Option<Arc<T>> {
        let memo = self.memo.lock().unwrap_or_else(|e| e.into_inner());
        memo.iter()
            .find(|k| k.key == key && k.marks == marks && Arc::ptr_eq(&k.playbook, playbook))
            .and_then(|k| k.value.clone().downcast::<T>().ok())
    }

    /// The newest result kept under `key` for `playbook`, whatever history
    /// it was computed from, with that history's marks: for a result that
    /// can be brought up to date (e.g. extended with the rows appended
    /// since, [`Marks::appended_since`]) instead of computed again.
    pub fn recall_latest<T: Any + Send + Sync>(
        &self,
        key: &str,
        playbook: &Arc<Playbook>,
    ) -> Option<(Marks, Arc<T>)> {
        let memo = self.memo.lock().unwrap_or_else(|e| e.into_inner());
        memo.iter()
            .find(|k| k.key == key && Arc::ptr_eq(&k.playbook, playbook))
            .and_then(|k| Some((k.marks, k.value.clone().downcast::<T>().ok()?)))
    }

    /// Keeps `value`, computed from the history at `marks` with `playbook`,
    /// for [`Warm::recall`]; the oldest of [`MEMO_ENTRIES`] is dropped.
    pub fn keep<T: Any + Send + Sync>(
        &self,
        key: String,
        marks: Marks,
        playbook: Arc<Playbook>,
        value: Arc<T>,
    ) {
        let mut memo = self.memo.lock().unwrap_or_else(|e| e.into_inner());
        memo.retain(|k| k.key != key);
        memo.push_front(Kept {
            key,
            marks,
            playbook,
            value,
        });
        memo.truncate(MEMO_ENTRIES);
    }

    /// Reads the history if it was never read, else applies what changed.
    /// Returns how many rows were read.
    pub async fn refresh(&self, store: &Store) -> Result<usize, StoreError> {
        let _one = self.refresh.lock().await;
        let mut c = store.conn().await?;
        let to = kept::marks(&mut c).await?;
        let have: Option<Marks> = self.kept.read().await.as_ref().map(|w| w.marks);
        match have {
            Some(m) if m == to => Ok(0),
            Some(_) => {
                // Read outside the write lock: requests keep computing.
                let delta = {
                    let r = self.kept.read().await;
                    match r.as_ref() {
                        Some(w) => w.delta(&mut c, to).await?,
                        None => return Ok(0),
                    }
                };
                let n = delta.len();
                let started = std::time::Instant::now();
                if let Some(w) = self.kept.write().await.as_mut() {
                    w.apply(delta);
                }
                tracing::debug!(
                    rows = n,
                    apply_ms = started.elapsed().as_millis() as u64,
                    "warm history refreshed"
                );
                Ok(n)
            }
            None => {
                let started = std::time::Instant::now();
                drop(c);
                let w = kept::Warm::load_from(store).await?;
                let s = &w.snap;
                let n = s.people.len()
                    + s.accounts.len()
                    + s.transitions.len()
                    + s.account_transitions.len()
                    + s.touches.len()
                    + s.activities.len()
                    + s.deals.len()
                    + s.campaigns.len();
                tracing::info!(
                    rows = n,
                    load_ms = started.elapsed().as_millis() as u64,
                    "warm history loaded"
                );
                *self.kept.write().await = Some(w);
                Ok(n)
            }
        }
    }

    /// Starts reading the history in the background (at server start), so
    /// the first request finds it loaded. Abort the returned handle when
    /// the server stops: the read holds pooled connections, which the
    /// store's close would otherwise wait for (half a minute on large).
    pub fn preload(&self, store: &Store) -> tokio::task::AbortHandle {
        let me = self.clone();
        let store = store.clone();
        tokio::spawn(async move {
            if let Err(e) = me.refresh(&store).await {
                tracing::warn!(error = %e, "cannot read the history ahead of requests");
            }
        })
        .abort_handle()
    }
}

impl From<WarmError> for crate::error::ApiError {
    fn from(e: WarmError) -> Self {
        match e {
            WarmError::Store(e) => e.into(),
            other => crate::error::ApiError::Internal(Box::new(other)),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use tandem_core::playbook::STARTER;

    fn playbook() -> Arc<Playbook> {
        Arc::new(Playbook::load(STARTER).playbook.expect("starter loads"))
    }

    #[test]
    fn a_kept_result_is_recalled_only_for_the_same_key_history_and_playbook() {
        let warm = Warm::default();
        let (pb, other_pb) = (playbook(), playbook());
        let m1 = Marks {
            touches: 10,
            ..Marks::default()
        };
        let m2 = Marks { touches: 11, ..m1 };
        warm.keep("k".into(), m1, pb.clone(), Arc::new(42_u64));
        assert_eq!(warm.recall::<u64>("k", m1, &pb).as_deref(), Some(&42));
        // New rows, another playbook (even with the same text), another key
        // or another type: computed again.
        assert!(warm.recall::<u64>("k", m2, &pb).is_none());
        assert!(warm.recall::<u64>("k", m1, &other_pb).is_none());
        assert!(warm.recall::<u64>("j", m1, &pb).is_none());
        assert!(warm.recall::<String>("k", m1, &pb).is_none());
        // The latest kept under a key, whatever its history: with its marks.
        let (at, v) = warm.recall_latest::<u64>("k", &pb).unwrap();
        assert_eq!((at, *v), (m1, 42));
        assert!(warm.recall_latest::<u64>("k", &other_pb).is_none());
        assert!(warm.recall_latest::<String>("k", &pb).is_none());
        // Keeping under the same key replaces; only the newest 16 stay.
        warm.keep("k".into(), m2, pb.clone(), Arc::new(43_u64));
        assert!(warm.recall::<u64>("k", m1, &pb).is_none());
        assert_eq!(warm.recall::<u64>("k", m2, &pb).as_deref(), Some(&43));
        for i in 0..MEMO_ENTRIES {
            warm.keep(format!("n{i}"), m1, pb.clone(), Arc::new(i as u64));
        }
        assert!(
            warm.recall::<u64>("k", m2, &pb).is_none(),
            "the oldest went"
        );
        assert_eq!(warm.recall::<u64>("n0", m1, &pb).as_deref(), Some(&0));
    }
}
