//! Entries into each stage, sorted by time: an index of the history's
//! transitions for the window counts ([`super::waterfall::stage_entries`]).
//!
//! A page asks for stage entries many times per request (MQLs and SALs in
//! this week and the last, the quarter's MQLs by source, campaign and
//! segment, every MQL by channel). Each scan of a 300k-transition history
//! reads every transition (about 160 bytes each) and compares its stage id
//! behind a pointer; the index is built in one pass and a window is then
//! two binary searches.

use std::collections::BTreeMap;

use crate::domain::{Subject, Transition};
use crate::fxhash::{FxHashMap, FxHashSet};
use crate::time::Timestamp;

use super::{Grouping, Window};

/// One entry into a stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Entry {
    /// When the stage was entered.
    pub at: Timestamp,
    /// Who entered it.
    pub subject: Subject,
    /// The subject's cycle.
    pub cycle: i64,
}

/// Every transition of a history as an entry into its `to` stage, per stage
/// and sorted by time. Built from one slice of transitions; it answers for
/// exactly that slice.
#[derive(Clone, Debug, Default)]
pub struct StageEntries {
    by_stage: FxHashMap<String, Vec<Entry>>,
}

impl StageEntries {
    /// Indexes `transitions` (any order).
    pub fn build(transitions: &[Transition]) -> Self {
        let mut by_stage: FxHashMap<String, Vec<Entry>> = FxHashMap::default();
        for t in transitions {
            let e = Entry {
                at: t.at,
                subject: t.subject,
                cycle: t.cycle,
            };
            match by_stage.get_mut(t.to.as_str()) {
                Some(v) => v.push(e),
                None => {
                    by_stage.insert(t.to.clone(), vec![e]);
                }
            }
        }
        for v in by_stage.values_mut() {
            v.sort_unstable();
        }
        StageEntries { by_stage }
    }

    /// Entries into `stage` within `window` and not after `as_of`, by time.
    pub fn within(&self, stage: &str, window: Window, as_of: Timestamp) -> &[Entry] {
        let Some(v) = self.by_stage.get(stage) else {
            return &[];
        };
        let lo = v.partition_point(|e| e.at < window.from);
        let hi = v.partition_point(|e| e.at < window.to && e.at <= as_of);
        &v[lo..hi.max(lo)]
    }

    /// How many entries the index holds.
    pub fn len(&self) -> usize {
        self.by_stage.values().map(Vec::len).sum()
    }

    /// True when it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Distinct units among `entries` per group: cycles `(subject, cycle)`, or
/// subjects with `unique`. A unit's group is a function of its subject, so
/// each unit is counted once, into its group, and a group key is copied
/// once per group rather than per entry.
pub(crate) fn count_units(
    entries: impl Iterator<Item = (Subject, i64)>,
    unique: bool,
    grouping: Grouping<'_>,
) -> BTreeMap<String, u64> {
    let mut seen: FxHashSet<(Subject, i64)> = FxHashSet::default();
    let mut out: BTreeMap<String, u64> = BTreeMap::new();
    for (subject, cycle) in entries {
        let cycle = if unique { 0 } else { cycle };
        if seen.insert((subject, cycle)) {
            let g = grouping.subject_key(subject);
            match out.get_mut(g.as_ref()) {
                Some(n) => *n += 1,
                None => {
                    out.insert(g.into_owned(), 1);
                }
            }
        }
    }
    out
}
