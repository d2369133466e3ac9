//! The shared numbers of DESIGN §5: demand waterfall (cohort and flow views,
//! velocity, leakage), scorecard pacing, reverse-waterfall plan and alignment
//! gaps.
//!
//! Every function here is a pure function of stored history ([`History`]),
//! an `as_of` instant and a [`Window`]. Nothing after `as_of` is ever read:
//! records with `at > as_of` are ignored (`as_of` itself is included), so a
//! report for a past `as_of` is reproducible. Windows are
//! half-open, `[from, to)`: an entry exactly at `from` is inside, one exactly
//! at `to` is not.
//!
//! Grouping ([`Grouping`]) maps a person id to a group key (segment, persona,
//! source, channel, campaign, owner, account tier — whatever the caller
//! computes); without grouping everything is in the group [`ALL`]. Output is
//! deterministic: groups and stages are sorted, maps are `BTreeMap`s.

pub mod gaps;
pub mod index;
pub mod plan;
pub mod retention;
pub mod scorecard;
pub mod waterfall;

use std::borrow::Cow;
use std::collections::BTreeMap;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::Span;
use serde::Serialize;

use crate::activities::Activities;
use crate::domain::{Deal, Subject};
use crate::fxhash::{FxHashMap, Interner};
use crate::playbook::{Period, Playbook, StageKind};
use crate::time::Timestamp;
use crate::touches::Touches;
use crate::transitions::Transitions;

#[cfg(test)]
mod tests;

/// The group key used when no grouping is asked for.
pub const ALL: &str = "(all)";

/// The group key of a subject the grouping function has no group for
/// (including account subjects and deals without a person).
pub const NONE: &str = "(none)";

/// Why a metric could not be computed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MetricsError {
    /// A stage id that is not a funnel stage of the playbook.
    #[error("unknown funnel stage `{0}`")]
    UnknownStage(String),
    /// A metric name not in [`crate::playbook::METRICS`].
    #[error("unknown metric `{0}`")]
    UnknownMetric(String),
    /// A window whose end is not after its start.
    #[error("empty window: {from} is not before {to}")]
    EmptyWindow {
        /// Start of the window.
        from: Timestamp,
        /// End of the window.
        to: Timestamp,
    },
    /// The playbook has no funnel stages.
    #[error("the playbook has no funnel stages")]
    NoFunnel,
    /// A conversion rate outside (0, 1].
    #[error("conversion rate {rate} at position {index} must be in (0, 1]")]
    InvalidRate {
        /// Position in the rate list (0 = first → second stage).
        index: usize,
        /// The offending value.
        rate: f64,
    },
    /// Stage and rate lists that do not fit together.
    #[error("{stages} stages need {} rates, got {rates}", stages.saturating_sub(1))]
    RateCount {
        /// Number of stages given.
        stages: usize,
        /// Number of rates given.
        rates: usize,
    },
    /// A non-positive deal size or revenue target.
    #[error("{what} must be positive, got {value}")]
    NotPositive {
        /// Which input.
        what: &'static str,
        /// The offending value.
        value: i64,
    },
    /// A calendar computation failed (instant outside the supported range).
    #[error("calendar error: {0}")]
    Calendar(String),
}

/// A half-open time window `[from, to)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Window {
    /// First instant inside the window.
    pub from: Timestamp,
    /// First instant after the window.
    pub to: Timestamp,
}

impl Window {
    /// The window `[from, to)`; an error unless `from < to`.
    pub fn new(from: Timestamp, to: Timestamp) -> Result<Window, MetricsError> {
        if from < to {
            Ok(Window { from, to })
        } else {
            Err(MetricsError::EmptyWindow { from, to })
        }
    }

    /// True when `from <= t < to`.
    pub fn contains(&self, t: Timestamp) -> bool {
        self.from <= t && t < self.to
    }

    /// True when `t` is inside the window and not after `as_of`.
    pub fn contains_as_of(&self, t: Timestamp, as_of: Timestamp) -> bool {
        self.contains(t) && t <= as_of
    }

    /// The positions of the ascending times `ats` that are inside the
    /// window and not after `as_of` ([`Window::contains_as_of`]): two
    /// binary searches.
    pub fn positions_in(&self, ats: &[Timestamp], as_of: Timestamp) -> std::ops::Range<usize> {
        let lo = ats.partition_point(|&at| at < self.from);
        let hi = ats.partition_point(|&at| at < self.to && at <= as_of);
        lo..hi.max(lo)
    }

    /// Length in milliseconds.
    pub fn len_ms(&self) -> i64 {
        self.to.millis() - self.from.millis()
    }

    /// The window of equal length `k` lengths earlier (`k = 1` is the
    /// previous period of equal length).
    pub fn shifted_back(&self, k: i64) -> Window {
        let d = self.len_ms() * k;
        Window {
            from: Timestamp::from_millis(self.from.millis() - d),
            to: Timestamp::from_millis(self.to.millis() - d),
        }
    }

    /// The `n` windows of equal length before this one, most recent first.
    pub fn previous_equal(&self, n: usize) -> Vec<Window> {
        (1..=n as i64).map(|k| self.shifted_back(k)).collect()
    }
}

/// The calendar period (`week` Monday–Sunday, `month`, `quarter`, `year`)
/// containing `at`, with boundaries at local midnight in `tz` (the playbook's
/// `company.timezone`; pass `TimeZone::UTC` for UTC boundaries).
pub fn period_window(period: Period, at: Timestamp, tz: &TimeZone) -> Result<Window, MetricsError> {
    let date = at.to_jiff().to_zoned_datetime(tz.clone()).date();
    let cal = |e: jiff::Error| MetricsError::Calendar(e.to_string());
    let (start, span) = match period {
        Period::Week => {
            let back = i64::from(date.weekday().to_monday_zero_offset());
            (
                date.checked_sub(Span::new().days(back)).map_err(cal)?,
                Span::new().days(7),
            )
        }
        Period::Month => (date.first_of_month(), Span::new().months(1)),
        Period::Quarter => {
            let m = (date.month() - 1) / 3 * 3 + 1;
            (
                Date::new(date.year(), m, 1).map_err(cal)?,
                Span::new().months(3),
            )
        }
        Period::Year => (date.first_of_year(), Span::new().years(1)),
    };
    let end = start.checked_add(span).map_err(cal)?;
    let midnight = |d: Date| -> Result<Timestamp, MetricsError> {
        let ts = tz
            .to_timestamp(d.to_datetime(jiff::civil::Time::midnight()))
            .map_err(cal)?;
        Ok(Timestamp::from_millis(ts.as_millisecond()))
    };
    Window::new(midnight(start)?, midnight(end)?)
}

/// The `n` calendar periods before `current` (which should come from
/// [`period_window`]), most recent first.
pub fn previous_periods(
    period: Period,
    current: Window,
    n: usize,
    tz: &TimeZone,
) -> Result<Vec<Window>, MetricsError> {
    let mut out = Vec::with_capacity(n);
    let mut w = current;
    for _ in 0..n {
        w = period_window(period, Timestamp::from_millis(w.from.millis() - 1), tz)?;
        out.push(w);
    }
    Ok(out)
}

/// The stored history metrics are computed from. Order does not matter.
#[derive(Clone, Copy, Debug, Default)]
pub struct History<'a> {
    /// Stage transitions of people (and accounts).
    pub transitions: &'a Transitions,
    /// Marketing touches.
    pub touches: &'a Touches,
    /// Sales activities.
    pub activities: &'a Activities,
    /// Deals (opportunities).
    pub deals: &'a [Deal],
    /// Stage transitions of accounts (churn for the retention metrics).
    pub account_transitions: &'a Transitions,
    /// This history indexed by kind and time, when the caller keeps one
    /// (it must be built from these transitions);
    /// window counts read it instead of scanning.
    pub index: Option<&'a index::HistoryIndex>,
}

impl History<'_> {
    /// [`waterfall::stage_entries`] of this history, from the index when
    /// there is one.
    pub fn stage_entries(
        &self,
        stage: &str,
        window: Window,
        as_of: Timestamp,
        unique: bool,
        grouping: Grouping<'_>,
    ) -> BTreeMap<String, u64> {
        match self.index {
            Some(ix) => index::count_units(
                ix.entries_within(stage, window, as_of)
                    .map(|e| (e.subject(), e.cycle())),
                unique,
                grouping,
            ),
            None => {
                waterfall::stage_entries(self.transitions, stage, window, as_of, unique, grouping)
            }
        }
    }
}

/// A group key per person id, each distinct key stored once: grouping
/// 100,000 people by a dimension with a handful of values needs no string
/// per person.
///
/// While the person ids are dense (store ids are), the key ids sit in an
/// array indexed by person id from the smallest ([`Of::Dense`]): a lookup is
/// one array read, a million lookups in id order (as the waterfall makes
/// them) read memory in order (hash probes were 39 % of a waterfall query
/// from a kept replay), and a person costs 4 bytes. (A hash map kept beside
/// the array cost about 36 MB per dimension on the large demo.) Ids spread
/// further apart than that are kept in a hash map.
#[derive(Clone, Debug, Default)]
pub struct GroupKeys {
    /// Distinct keys, in order of first insertion.
    keys: Interner,
    /// Person id → id of its key.
    of: Of,
}

/// Person id → key id, by array or by hash map (see [`GroupKeys`]).
#[derive(Clone, Debug)]
enum Of {
    /// The key id of person `first + i` at `ids[i]` ([`Of::NONE`] where that
    /// person has none); `len` people have one.
    Dense {
        first: i64,
        ids: Vec<u32>,
        len: usize,
    },
    Map(FxHashMap<i64, u32>),
}

impl Default for Of {
    fn default() -> Self {
        Of::Dense {
            first: 0,
            ids: Vec::new(),
            len: 0,
        }
    }
}

impl Of {
    const NONE: u32 = u32::MAX;
    /// Up to this many slots are moved to put a person before the first
    /// one; past it the ids go to a map, so inserting people in falling id
    /// order costs no quadratic time.
    const SHIFT_MAX: usize = 4096;

    /// Whether an array of `span` slots is small enough for `len` people:
    /// at most twice as many, with some room for small groups.
    fn dense_enough(span: usize, len: usize) -> bool {
        span <= len.saturating_mul(2).saturating_add(64)
    }

    fn get(&self, person: i64) -> Option<u32> {
        match self {
            Of::Dense { first, ids, .. } => {
                let i = usize::try_from(person.checked_sub(*first)?).ok()?;
                ids.get(i).copied().filter(|&id| id != Of::NONE)
            }
            Of::Map(map) => map.get(&person).copied(),
        }
    }

    fn insert(&mut self, person: i64, id: u32) {
        if let Of::Dense { first, ids, len } = self {
            if ids.is_empty() {
                *first = person;
            }
            let at = i128::from(person) - i128::from(*first);
            if let Ok(i) = usize::try_from(at) {
                if i < ids.len() {
                    if ids[i] == Of::NONE {
                        *len += 1;
                    }
                    ids[i] = id;
                    return;
                }
                if Of::dense_enough(i + 1, *len + 1) {
                    ids.resize(i + 1, Of::NONE);
                    ids[i] = id;
                    *len += 1;
                    return;
                }
            } else if let Ok(before) = usize::try_from(-at) {
                let span = ids.len().saturating_add(before);
                if ids.len() <= Of::SHIFT_MAX && Of::dense_enough(span, *len + 1) {
                    ids.splice(0..0, std::iter::repeat_n(Of::NONE, before));
                    ids[0] = id;
                    *first = person;
                    *len += 1;
                    return;
                }
            }
            *self = Of::Map(self.iter().collect());
        }
        if let Of::Map(map) = self {
            map.insert(person, id);
        }
    }

    fn remove(&mut self, person: i64) {
        match self {
            Of::Dense { first, ids, len } => {
                let slot = person
                    .checked_sub(*first)
                    .and_then(|i| usize::try_from(i).ok())
                    .and_then(|i| ids.get_mut(i));
                if let Some(slot) = slot.filter(|s| **s != Of::NONE) {
                    *slot = Of::NONE;
                    *len -= 1;
                }
            }
            Of::Map(map) => {
                map.remove(&person);
            }
        }
    }

    /// Every (person, key id), in no particular order.
    fn iter(&self) -> impl Iterator<Item = (i64, u32)> + '_ {
        let (dense, map) = match self {
            Of::Dense { first, ids, .. } => (Some((*first, ids)), None),
            Of::Map(map) => (None, Some(map)),
        };
        let dense = dense.into_iter().flat_map(|(first, ids)| {
            ids.iter()
                .enumerate()
                .filter(|&(_, &id)| id != Of::NONE)
                .map(move |(i, &id)| (first + i as i64, id))
        });
        dense.chain(map.into_iter().flatten().map(|(&p, &id)| (p, id)))
    }

    fn len(&self) -> usize {
        match self {
            Of::Dense { len, .. } => *len,
            Of::Map(map) => map.len(),
        }
    }
}

/// Equal when the same people have the same key ids (however stored).
impl PartialEq for Of {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().all(|(p, id)| other.get(p) == Some(id))
    }
}

/// Equal when the same people have the same keys (however stored).
impl PartialEq for GroupKeys {
    fn eq(&self, other: &Self) -> bool {
        self.keys == other.keys && self.of == other.of
    }
}

impl Eq for GroupKeys {}

impl GroupKeys {
    /// No keys, with room for `people` people.
    pub fn with_capacity(people: usize) -> Self {
        GroupKeys {
            of: Of::Dense {
                first: 0,
                ids: Vec::with_capacity(people),
                len: 0,
            },
            ..GroupKeys::default()
        }
    }

    /// Puts `person` in group `key` (replacing any earlier key).
    pub fn insert(&mut self, person: i64, key: &str) {
        let id = self.keys.id(key);
        self.of.insert(person, id);
    }

    /// Takes `person` out of its group (into none).
    pub fn remove(&mut self, person: i64) {
        self.of.remove(person);
    }

    /// The group key of `person`, if it has one.
    pub fn get(&self, person: i64) -> Option<&str> {
        self.of.get(person).map(|id| self.keys.name(id))
    }

    /// The people in group `key`, in no particular order.
    pub fn people_in<'k>(&'k self, key: &str) -> impl Iterator<Item = i64> + 'k {
        let ix = self.keys.get(key);
        self.of
            .iter()
            .filter(move |&(_, i)| Some(i) == ix)
            .map(|(person, _)| person)
    }

    /// Number of people with a key.
    pub fn len(&self) -> usize {
        self.of.len()
    }

    /// True when no person has a key.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the key ids are in an array (for tests of the map path).
    #[cfg(test)]
    pub(crate) fn is_dense(&self) -> bool {
        matches!(self.of, Of::Dense { .. })
    }
}

impl<K: AsRef<str>> FromIterator<(i64, K)> for GroupKeys {
    fn from_iter<I: IntoIterator<Item = (i64, K)>>(iter: I) -> Self {
        let mut keys = GroupKeys::default();
        for (person, key) in iter {
            keys.insert(person, key.as_ref());
        }
        keys
    }
}

/// How subjects are grouped: not at all, by a function of the person id, or
/// by a prebuilt map. People the function or map has no key for are in
/// [`NONE`].
#[derive(Clone, Copy, Default)]
pub enum Grouping<'a> {
    /// Everything in the group [`ALL`].
    #[default]
    All,
    /// Group key of a person id.
    By(&'a dyn Fn(i64) -> Option<String>),
    /// Group key per person id.
    Map(&'a GroupKeys),
    /// Group key per account id, for account subjects (people and deals
    /// are in [`NONE`]).
    Accounts(&'a BTreeMap<i64, String>),
}

impl std::fmt::Debug for Grouping<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Grouping::All => f.write_str("Grouping::All"),
            Grouping::By(_) => f.write_str("Grouping::By(..)"),
            Grouping::Map(m) => write!(f, "Grouping::Map({} people)", m.len()),
            Grouping::Accounts(m) => write!(f, "Grouping::Accounts({} accounts)", m.len()),
        }
    }
}

impl<'a> Grouping<'a> {
    /// The group key of a person (`None`: no person, e.g. a deal without one).
    pub fn person(&self, person: Option<i64>) -> String {
        self.person_key(person).into_owned()
    }

    /// The group key of a lifecycle subject; accounts are in [`NONE`] unless
    /// there is no grouping or the grouping is by account.
    pub fn subject(&self, subject: Subject) -> String {
        self.subject_key(subject).into_owned()
    }

    /// [`Grouping::person`], borrowing the key when it is stored (no copy
    /// per person in loops over the whole history).
    pub fn person_key(&self, person: Option<i64>) -> Cow<'a, str> {
        match (*self, person) {
            (Grouping::All, _) => Cow::Borrowed(ALL),
            (_, None) | (Grouping::Accounts(_), _) => Cow::Borrowed(NONE),
            (Grouping::By(f), Some(id)) => f(id).map_or(Cow::Borrowed(NONE), Cow::Owned),
            (Grouping::Map(m), Some(id)) => Cow::Borrowed(m.get(id).unwrap_or(NONE)),
        }
    }

    /// [`Grouping::subject`], borrowing the key when it is stored.
    pub fn subject_key(&self, subject: Subject) -> Cow<'a, str> {
        match (*self, subject) {
            (Grouping::Accounts(m), Subject::Account(id)) => {
                Cow::Borrowed(m.get(&id).map_or(NONE, String::as_str))
            }
            (_, Subject::Person(id)) => self.person_key(Some(id)),
            (_, Subject::Account(_)) => self.person_key(None),
        }
    }
}

/// The funnel stage ids of a playbook, in order.
pub fn funnel_ids(pb: &Playbook) -> Vec<String> {
    pb.funnel().map(|s| s.id.clone()).collect()
}

/// Stage kinds of a playbook by id, for off-ramp detection.
pub(crate) fn stage_kinds(pb: &Playbook) -> BTreeMap<String, StageKind> {
    pb.stages.iter().map(|s| (s.id.clone(), s.kind)).collect()
}

/// The `p`-th percentile (`p` in 0..=100) of `values` by **linear
/// interpolation between closest ranks** (Hyndman–Fan type 7, the default of
/// numpy and of spreadsheet `PERCENTILE.INC`): sort ascending, let
/// `h = (n − 1) · p / 100`, and return `v[⌊h⌋] + (h − ⌊h⌋) · (v[⌊h⌋+1] − v[⌊h⌋])`.
/// The 50th percentile is the usual median (mean of the two middle values
/// for even `n`). `None` for no values; NaNs are ignored.
pub fn percentile(values: &[f64], p: f64) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let h = (v.len() - 1) as f64 * (p.clamp(0.0, 100.0) / 100.0);
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(v.len() - 1);
    Some(v[lo] + (h - lo as f64) * (v[hi] - v[lo]))
}

/// `num / den`, or `None` when `den` is zero.
pub fn ratio(num: f64, den: f64) -> Option<f64> {
    (den != 0.0).then(|| num / den)
}
