//! The history's stage entries by stage, sorted by time: an index for the
//! window counts (touches and activities of a kind are counted from their
//! kept columns, which are in time order).
//!
//! A page asks for such counts many times per request (MQLs and SALs in
//! this week and the last, the quarter's MQLs by source, campaign and
//! segment, every MQL by channel, web visits and calls this week). Each
//! scan of a 300k-transition or 850k-touch history reads every row (over a
//! hundred bytes each) and compares its kind behind a pointer; the index is
//! built in one pass and a window is then two binary searches.

use std::collections::BTreeMap;
use std::hash::Hash;

use crate::columns::{Codes, Ids};
use crate::domain::Subject;
use crate::fxhash::{FxHashMap, FxHashSet};
use crate::sym::Sym;
use crate::time::Timestamp;
use crate::transitions::Transitions;

use super::{Grouping, Window};

/// One entry into a stage, as [`HistoryIndex::entries_within`] reads it
/// back (the index keeps its entries by column, see [`Entries`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Entry {
    /// When the stage was entered.
    pub at: Timestamp,
    /// The subject's id; `account` says which kind.
    id: i64,
    /// The subject's cycle.
    cycle: u32,
    account: bool,
}

impl Entry {
    /// An entry of `subject` in its `cycle` at `at`.
    pub fn new(at: Timestamp, subject: Subject, cycle: u32) -> Self {
        let (id, account) = match subject {
            Subject::Person(id) => (id, false),
            Subject::Account(id) => (id, true),
        };
        Entry {
            at,
            id,
            cycle,
            account,
        }
    }

    /// Who entered the stage.
    pub fn subject(&self) -> Subject {
        Subject::of(self.id, self.account)
    }

    /// The subject's cycle.
    pub fn cycle(&self) -> u32 {
        self.cycle
    }
}

/// The entries into one stage by column, sorted by time (then id, cycle
/// and kind): 13 bytes an entry (time 8, id 4 while ids fit, and the
/// cycle with the subject's kind as a one-byte code), where an [`Entry`]
/// is 24. The large history's index holds 3.6M entries.
#[derive(Clone, Debug, Default)]
struct Entries {
    at: Vec<Timestamp>,
    id: Ids,
    /// The cycle, and whether the subject is an account.
    unit: Codes<(u32, bool)>,
}

impl Entries {
    /// `rows` (sorted) by column.
    fn of(rows: &[Entry]) -> Self {
        let mut out = Entries {
            at: Vec::with_capacity(rows.len()),
            id: Ids::with_capacity(rows.len()),
            unit: Codes::with_capacity(rows.len()),
        };
        for e in rows {
            out.at.push(e.at);
            out.id.push(e.id);
            out.unit.push((e.cycle, e.account));
        }
        out
    }

    fn get(&self, i: usize) -> Entry {
        let (cycle, account) = self.unit.get(i);
        Entry {
            at: self.at[i],
            id: self.id.get(i),
            cycle,
            account,
        }
    }

    fn heap_bytes(&self) -> usize {
        self.at.capacity() * std::mem::size_of::<Timestamp>()
            + self.id.heap_bytes()
            + self.unit.heap_bytes()
    }
}

/// Every transition of a history as an entry into its `to` stage, per
/// stage and sorted by time. Built from one history's transitions; it
/// answers for exactly that history. Touches and activities need no
/// index: a kept history's are in time order, by column
/// ([`crate::timeline::Timeline::count_code_within`]).
#[derive(Clone, Debug, Default)]
pub struct HistoryIndex {
    entries: FxHashMap<Sym, Entries>,
}

impl HistoryIndex {
    /// Indexes a history's transitions (any order).
    pub fn build(transitions: &Transitions) -> Self {
        let lists = sorted_lists(
            transitions
                .iter()
                .map(|t| (t.to, Entry::new(t.at, t.subject, t.cycle))),
        );
        // Each stage's rows go by column and are freed before the next
        // stage's: at most one stage is held twice.
        HistoryIndex {
            entries: lists
                .into_iter()
                .map(|(stage, rows)| (stage, Entries::of(&rows)))
                .collect(),
        }
    }

    /// Entries into `stage` within `window` and not after `as_of`, by time.
    pub fn entries_within(
        &self,
        stage: &str,
        window: Window,
        as_of: Timestamp,
    ) -> impl Iterator<Item = Entry> + '_ {
        self.entries
            .get(stage)
            .into_iter()
            .flat_map(move |v| window.positions_in(&v.at, as_of).map(|i| v.get(i)))
    }

    /// How many transitions the index holds.
    pub fn len(&self) -> usize {
        self.entries.values().map(|v| v.at.len()).sum()
    }

    /// True when it holds no transition.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of its entries' buffers.
    pub fn heap_bytes(&self) -> usize {
        self.entries.values().map(Entries::heap_bytes).sum()
    }
}

/// The values of `rows` listed by key, each list sorted. Counted first so
/// that every list is allocated at its length: grown by doubling, the
/// lists of the large history held a third more than their values.
fn sorted_lists<K: Copy + Eq + Hash, V: Ord>(
    rows: impl Iterator<Item = (K, V)> + Clone,
) -> FxHashMap<K, Vec<V>> {
    let mut counts: FxHashMap<K, usize> = FxHashMap::default();
    for (k, _) in rows.clone() {
        *counts.entry(k).or_default() += 1;
    }
    let mut lists: FxHashMap<K, Vec<V>> = counts
        .into_iter()
        .map(|(k, n)| (k, Vec::with_capacity(n)))
        .collect();
    for (k, v) in rows {
        if let Some(list) = lists.get_mut(&k) {
            list.push(v);
        }
    }
    lists.values_mut().for_each(|v| v.sort_unstable());
    lists
}

/// Distinct units among `entries` per group: cycles `(subject, cycle)`, or
/// subjects with `unique`. A unit's group is a function of its subject, so
/// each unit is counted once, into its group, and a group key is copied
/// once per group rather than per entry.
pub(crate) fn count_units(
    entries: impl Iterator<Item = (Subject, u32)>,
    unique: bool,
    grouping: Grouping<'_>,
) -> BTreeMap<String, u64> {
    let mut seen: FxHashSet<(Subject, u32)> = FxHashSet::default();
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
