//! The stored history the pages read: the app's warm history
//! ([`crate::warm`]), shared with the API's metric endpoints. A request
//! reads the store's marks and applies only the rows new or updated since,
//! so a page never waits for the whole history to be read again.

use std::sync::Arc;

use axum::http::StatusCode;
use tandem_core::metrics::index::HistoryIndex;
use tandem_core::metrics::waterfall::Replay;
use tandem_core::playbook::Playbook;
use tandem_core::sla::SlaIndex;
use tandem_core::Timestamp;
use tandem_store::query::KeptGroups;
use tandem_store::repo::Snapshot;
use tandem_store::warm::Marks;

use super::WebError;
use crate::warm::WarmError;

/// The history the pages read from (the app's [`crate::warm::Warm`]).
pub type SnapshotCache = crate::warm::Warm;

/// What a page computes from, read-locked while it renders.
pub type View = crate::warm::View;

impl From<WarmError> for WebError {
    fn from(e: WarmError) -> Self {
        match e {
            WarmError::Store(e) => e.into(),
            WarmError::Task(m) => WebError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("reading the history failed: {m}"),
            ),
        }
    }
}

/// The group keys kept for this history and playbook (filled as pages ask
/// for dimensions): people's segment, source and first-touch channel and
/// campaign do not depend on the instant asked for. When the history only
/// grew since they were kept, they are brought up to it
/// ([`KeptGroups::grown`]); after an update in place they start empty.
pub(crate) fn kept_groups(
    cache: &SnapshotCache,
    snap: &Snapshot,
    marks: Marks,
    pb: &Arc<Playbook>,
) -> Arc<KeptGroups> {
    const KEY: &str = "people-groups";
    let kept = match cache.recall_latest::<KeptGroups>(KEY, pb) {
        Some((at, kept)) if at == marks => return kept,
        Some((at, kept)) if marks.appended_since(&at) => {
            Arc::new(kept.grown(pb, snap, at.people, at.touches))
        }
        _ => Arc::new(KeptGroups::default()),
    };
    cache.keep(KEY.into(), marks, pb.clone(), kept.clone());
    kept
}

/// A value derived from this exact history and playbook, kept under `key`
/// and built again when the history changed.
fn kept_for<T: std::any::Any + Send + Sync>(
    cache: &SnapshotCache,
    key: &str,
    marks: Marks,
    pb: &Arc<Playbook>,
    build: impl FnOnce() -> T,
) -> Arc<T> {
    if let Some(kept) = cache.recall::<T>(key, marks, pb) {
        return kept;
    }
    let built = Arc::new(build());
    cache.keep(key.into(), marks, pb.clone(), built.clone());
    built
}

/// This history's index ([`HistoryIndex`]): every page that counts stage
/// entries, touches or activities in a window (scorecard, indicators, gaps,
/// the weekly report) reads it instead of scanning the history. Indexed
/// again when the history changed.
pub(crate) fn kept_index(
    cache: &SnapshotCache,
    snap: &Snapshot,
    marks: Marks,
    pb: &Arc<Playbook>,
) -> Arc<HistoryIndex> {
    kept_for(cache, "history-index", marks, pb, || {
        HistoryIndex::build(&snap.transitions)
    })
}

const SLA_INDEX: &str = "sla-index";

/// This history's SLA clocks apart from the instant asked for
/// ([`SlaIndex`]): the SLA endpoint settles them at its `as_of` instead of
/// grouping every person handed off and computing their deadlines on each
/// call. Indexed again when the history changed.
pub(crate) fn kept_sla(
    cache: &SnapshotCache,
    snap: &Snapshot,
    marks: Marks,
    pb: &Arc<Playbook>,
) -> Arc<SlaIndex> {
    kept_for(cache, SLA_INDEX, marks, pb, || {
        SlaIndex::build(pb, &snap.people, &snap.transitions, &snap.activities)
    })
}

/// The [`kept_sla`] index if one is kept for exactly this history, without
/// building one: a week's SLA computes only that week's people directly,
/// which is cheaper than indexing every handoff of a history that has
/// changed since.
pub(crate) fn sla_if_kept(
    cache: &SnapshotCache,
    marks: Marks,
    pb: &Arc<Playbook>,
) -> Option<Arc<SlaIndex>> {
    cache.recall(SLA_INDEX, marks, pb)
}

/// The person funnel's [`Replay`] of the transitions up to an instant, with
/// how many transitions it replayed.
pub(crate) struct KeptReplay {
    upto: usize,
    pub(crate) replay: Replay,
}

/// The replay of this history's transitions at or before `as_of`: the
/// API's waterfall and the waterfall page answer any grouping, window,
/// cohort stage or unit from it instead of sorting every transition again.
///
/// Transitions are only ever appended, so the same largest `seq` is the
/// same transitions, whatever else changed: touches and activities coming
/// in keep the replay. The history keeps transitions in (at, seq) order,
/// so those at or before an instant are a prefix, named by its length: a
/// request whose `as_of` includes the same transitions as the kept replay
/// (every "now", until a transition is appended) reuses it. Only the
/// latest is kept, since each is about as large as the transitions' sort
/// keys.
pub(crate) fn kept_replay(
    cache: &SnapshotCache,
    snap: &Snapshot,
    marks: Marks,
    pb: &Arc<Playbook>,
    as_of: Timestamp,
) -> Arc<KeptReplay> {
    const KEY: &str = "waterfall-replay";
    let upto = snap.transitions.ats().partition_point(|&at| at <= as_of);
    if let Some((at, kept)) = cache.recall_latest::<KeptReplay>(KEY, pb) {
        if at.transitions == marks.transitions && kept.upto == upto {
            // Kept again under the current marks: the newest stays kept.
            cache.keep(KEY.into(), marks, pb.clone(), kept.clone());
            return kept;
        }
    }
    let built = Arc::new(KeptReplay {
        upto,
        // The replay reads only the transitions up to `as_of`: `upto`.
        replay: Replay::new(pb, &snap.transitions, as_of),
    });
    cache.keep(KEY.into(), marks, pb.clone(), built.clone());
    built
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use tandem_core::domain::{Subject, Transition};
    use tandem_core::playbook::STARTER;

    fn mql(id: i64, seq: i64, hour: i64) -> Transition {
        Transition {
            seq,
            subject: Subject::Person(id),
            from: None,
            to: "mql".into(),
            at: Timestamp::from_millis(hour * 3_600_000),
            actor: "system".into(),
            reason: None,
            note: None,
            cycle: 1,
            skipped: false,
        }
    }

    #[test]
    fn a_replay_is_kept_while_the_transitions_it_read_are_the_same() {
        let cache = SnapshotCache::default();
        let pb = Arc::new(Playbook::load(STARTER).playbook.unwrap());
        let mut snap = Snapshot {
            transitions: vec![mql(1, 1, 1), mql(2, 2, 2), mql(3, 3, 3)].into(),
            ..Snapshot::default()
        };
        let m1 = Marks {
            transitions: 3,
            touches: 10,
            ..Marks::default()
        };
        let at = |h: i64| Timestamp::from_millis(h * 3_600_000);
        let first = kept_replay(&cache, &snap, m1, &pb, at(5));
        // The same transitions: at another as-of including all three, and
        // after a touch came in.
        let m2 = Marks { touches: 11, ..m1 };
        assert!(Arc::ptr_eq(
            &first,
            &kept_replay(&cache, &snap, m1, &pb, at(4))
        ));
        assert!(Arc::ptr_eq(
            &first,
            &kept_replay(&cache, &snap, m2, &pb, at(5))
        ));
        // Fewer transitions (an earlier as-of), then all three again.
        let early = kept_replay(&cache, &snap, m2, &pb, at(2));
        assert!(!Arc::ptr_eq(&first, &early));
        assert_eq!(early.upto, 2);
        let again = kept_replay(&cache, &snap, m2, &pb, at(5));
        assert!(!Arc::ptr_eq(&early, &again));
        assert_eq!(again.upto, 3);
        // A transition appended: replayed again.
        snap.transitions.push(mql(4, 4, 4));
        let m3 = Marks {
            transitions: 4,
            ..m2
        };
        let grown = kept_replay(&cache, &snap, m3, &pb, at(5));
        assert!(!Arc::ptr_eq(&again, &grown));
        assert_eq!(grown.upto, 4);
    }
}
