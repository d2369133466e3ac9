//! The demand waterfall (DESIGN §5): cohort and flow views, velocity and
//! leakage, with comparison columns.
//!
//! **Units.** By default the waterfall counts *cycles*: a cycle is
//! `(subject, Transition.cycle)`, and a recycled lead that comes back is a new
//! cycle (DESIGN §4). With `unique` it counts people (subjects) instead.
//!
//! **Passing through.** A cycle has passed through a funnel stage when it
//! entered it, including entries recorded as `skipped` (at the time of the
//! skip). For the cohort view a cycle that reached a later stage also counts
//! as having passed through every funnel stage between its first entered
//! stage and that later stage (at the later stage's entry time), so imported
//! histories that jump stages without `skipped` records still give
//! monotone counts. Stages before the cycle's first entered stage are not
//! inferred (a recycled lead re-entering at MQL did not pass through inquiry
//! again).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::retention::DealKind;
use crate::columns::Subjects;
use crate::domain::{Deal, DealStatus, Subject};
use crate::fxhash::FxHashMap;
use crate::idmap::position;
use crate::playbook::{Playbook, StageKind};
use crate::sym::Sym;
use crate::time::{Timestamp, DAY_MS};
use crate::transitions::{TransitionRef, Transitions};

use super::index::count_units;
use super::{funnel_ids, percentile, ratio, stage_kinds, Grouping, MetricsError, Window, NONE};

/// What to compute.
#[derive(Clone, Debug)]
pub struct WaterfallOptions<'a> {
    /// The period whose cohort / flow is measured.
    pub window: Window,
    /// Nothing after this instant is read.
    pub as_of: Timestamp,
    /// Funnel stage defining the cohort; `None` for the first funnel stage.
    pub cohort_stage: Option<String>,
    /// Count people instead of cycles.
    pub unique: bool,
    /// How to group subjects.
    pub grouping: Grouping<'a>,
    /// Earlier windows for the comparison columns, most recent first. The
    /// first is "previous period"; the mean over all of them is the trailing
    /// average. [`WaterfallOptions::new`] fills in the 4 previous windows of
    /// equal length; use [`super::previous_periods`] for calendar periods.
    /// Comparison windows are read with the same `as_of`, so earlier cohorts
    /// have had longer to mature.
    pub comparison: Vec<Window>,
}

impl<'a> WaterfallOptions<'a> {
    /// Cycles, cohort at the first funnel stage, no grouping, compared with
    /// the 4 previous windows of equal length.
    pub fn new(window: Window, as_of: Timestamp) -> Self {
        WaterfallOptions {
            window,
            as_of,
            cohort_stage: None,
            unique: false,
            grouping: Grouping::All,
            comparison: window.previous_equal(4),
        }
    }
}

/// The waterfall of every group.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Waterfall {
    /// Instant the history was read up to (inclusive).
    pub as_of: Timestamp,
    /// The measured window.
    pub window: Window,
    /// The comparison windows, most recent first.
    pub comparison: Vec<Window>,
    /// The cohort's stage.
    pub cohort_stage: String,
    /// True when people are counted instead of cycles.
    pub unique: bool,
    /// One waterfall per group, sorted by group key.
    pub groups: Vec<GroupWaterfall>,
}

/// The waterfall of one group.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GroupWaterfall {
    /// Group key ([`super::ALL`] without grouping).
    pub group: String,
    /// Cycles (or people) that entered the cohort stage in the window.
    pub cohort_size: u64,
    /// Share of the cohort that reached the last funnel stage by `as_of`.
    pub end_to_end: Option<f64>,
    /// One row per funnel stage, in funnel order.
    pub stages: Vec<StageRow>,
    /// Velocity of each adjacent pair from the cohort stage on, then end to
    /// end (cohort stage → last funnel stage); every pair is listed, with
    /// `n = 0` and no days when no one made it.
    pub velocity: Vec<Velocity>,
    /// Exits to off-ramps within the window, per funnel stage left (only
    /// stages with exits).
    pub leakage: Vec<StageLeakage>,
    /// Deals lost (closed as lost within the window).
    pub lost: LostDeals,
}

/// One funnel stage of a group's waterfall.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StageRow {
    /// Stage id.
    pub stage: String,
    /// Cohort view: how many of the cohort reached this stage by `as_of`
    /// (`None` for stages before the cohort stage).
    pub cohort: Option<u64>,
    /// Cohort conversion from the previous stage (`None` at the cohort stage
    /// or when the previous count is 0).
    pub conversion: Option<f64>,
    /// Cohort conversion from the cohort stage to this one.
    pub cumulative: Option<f64>,
    /// Flow view: cycles (or people) entering this stage within the window
    /// (any entry, skipped ones included; same count as [`stage_entries`]).
    pub flow: u64,
    /// `flow` / previous stage's `flow` (`None` for the first stage or 0).
    pub flow_ratio: Option<f64>,
    /// Exits from this stage to off-ramps within the window.
    pub leaked: u64,
    /// `cohort` in the previous comparison window.
    pub prev_cohort: Option<u64>,
    /// Mean `cohort` over the comparison windows.
    pub avg_cohort: Option<f64>,
    /// `flow` in the previous comparison window.
    pub prev_flow: Option<u64>,
    /// Mean `flow` over the comparison windows.
    pub avg_flow: Option<f64>,
    /// `leaked` in the previous comparison window.
    pub prev_leaked: Option<u64>,
    /// Mean `leaked` over the comparison windows.
    pub avg_leaked: Option<f64>,
}

/// Days from entering one stage to entering another, over the cohort members
/// that reached the second by `as_of`. Percentiles by linear interpolation
/// ([`super::percentile`]).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Velocity {
    /// Stage entered first.
    pub from: String,
    /// Stage entered later.
    pub to: String,
    /// Number of cycles (or people) measured.
    pub n: u64,
    /// Median days.
    pub median_days: Option<f64>,
    /// 90th percentile days.
    pub p90_days: Option<f64>,
}

/// Exits from one funnel stage to off-ramps.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StageLeakage {
    /// The funnel stage left.
    pub stage: String,
    /// Cycles (or people) that left it within the window.
    pub total: u64,
    /// Breakdown by off-ramp and reason code, sorted.
    pub exits: Vec<ExitCount>,
}

/// One off-ramp / reason combination.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ExitCount {
    /// Off-ramp stage id (or `lost` for deals).
    pub to: String,
    /// Reason code, [`NONE`] when none was given.
    pub reason: String,
    /// How many.
    pub count: u64,
}

/// Deals lost within the window.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LostDeals {
    /// Number of deals.
    pub count: u64,
    /// Sum of their amounts in minor units.
    pub amount_minor: i64,
    /// Breakdown by lost reason (`to` is always `lost`).
    pub by_reason: Vec<ExitCount>,
}

/// Every cycle's passage through the funnel, sorted by (subject, cycle).
/// The per-cycle lists (entries, exits) live in flat arrays, not two
/// allocations per cycle; stage ids and reasons are interned, so nothing borrows the
/// transitions.
///
/// A cycle's first entry per stage is read from its entries when asked
/// ([`Cycles::entered_into`]): kept as `n` options per cycle it took 61 MB
/// of 1.3M cycles in a six-stage funnel, while a cycle has two or three
/// entries.
struct Cycles {
    /// Funnel length.
    n: usize,
    /// Each cycle's subject, by column (ids in four bytes while they fit),
    /// and where its lists end (they start where the cycle before's end):
    /// 13 bytes a cycle, where a row of subject, cycle number and ends
    /// took 32 (42 MB of the large demo's 1.3M cycles).
    subject: Subjects,
    entries_end: Vec<u32>,
    exits_end: Vec<u32>,
    /// Every entry into a funnel stage, in (at, seq) order within a cycle:
    /// its funnel index and its time, by column (12 bytes an entry; a
    /// `(usize, Timestamp)` took 16).
    entry_stage: Vec<u32>,
    entry_at: Vec<Timestamp>,
    /// Exits to off-ramps.
    exits: Vec<Exit>,
}

/// An exit from a funnel stage to an off-ramp.
#[derive(Clone, Copy, Debug)]
struct Exit {
    /// Funnel index left.
    left: u32,
    /// Off-ramp stage id.
    to: Sym,
    at: Timestamp,
    reason: Option<Sym>,
}

impl Cycles {
    /// How many cycles.
    fn len(&self) -> usize {
        self.entries_end.len()
    }

    /// Cycle `k`'s subject.
    fn subject(&self, k: usize) -> Subject {
        self.subject.get(k)
    }

    /// Writes cycle `k`'s first entry per funnel index as recorded (skips
    /// included) into `first` (a buffer reused across cycles).
    fn entered_into(&self, k: usize, first: &mut Vec<Option<Timestamp>>) {
        first.clear();
        first.resize(self.n, None);
        for (i, at) in self.entries(k) {
            first[i].get_or_insert(at);
        }
    }

    /// Whether cycle `k` first entered a stage at funnel index `c` or
    /// later within `window`; if so, `first` holds its first entries
    /// ([`Cycles::entered_into`]). Most cycles have no entry at all at `c`
    /// or later in a given window and are passed over without filling
    /// `first` (filling it for every cycle made the large history's warm
    /// waterfall 13 % slower).
    fn first_entered_within(
        &self,
        k: usize,
        c: usize,
        window: Window,
        first: &mut Vec<Option<Timestamp>>,
    ) -> bool {
        if !self.entries(k).any(|(i, at)| i >= c && window.contains(at)) {
            return false;
        }
        self.entered_into(k, first);
        first[c..].iter().flatten().any(|t| window.contains(*t))
    }

    /// Cycle `k`'s entries: (funnel index, at).
    fn entries(&self, k: usize) -> impl Iterator<Item = (usize, Timestamp)> + '_ {
        let start = k.checked_sub(1).map_or(0, |j| self.entries_end[j]) as usize;
        let end = self.entries_end[k] as usize;
        let stages = &self.entry_stage[start..end];
        stages
            .iter()
            .zip(&self.entry_at[start..end])
            .map(|(&i, &at)| (i as usize, at))
    }

    fn exits(&self, k: usize) -> &[Exit] {
        let start = k.checked_sub(1).map_or(0, |j| self.exits_end[j]) as usize;
        let end = self.exits_end[k] as usize;
        &self.exits[start..end]
    }

    /// Entry per funnel index of a cycle whose first entries are
    /// `entered`, with pass-through inferred between the first entered
    /// stage and any later entered stage (see the module docs), written
    /// into `eff` (a buffer reused across cycles).
    fn effective_into(entered: &[Option<Timestamp>], eff: &mut Vec<Option<Timestamp>>) {
        let first = entered.iter().position(Option::is_some);
        eff.clear();
        eff.extend_from_slice(entered);
        let mut later: Option<Timestamp> = None;
        for i in (0..entered.len()).rev() {
            if eff[i].is_none() && first.is_some_and(|f| f < i) {
                eff[i] = later;
            }
            if let Some(t) = entered[i] {
                later = Some(later.map_or(t, |l| l.min(t)));
            }
        }
    }
}

/// What a stage id is to the waterfall.
#[derive(Clone, Copy)]
enum Role {
    /// A funnel stage, by funnel index (`u32` keeps [`Step`] small).
    Funnel(u32),
    OffRamp,
}

/// What a transition does to its cycle, read once in input order.
#[derive(Clone, Copy)]
enum Move {
    /// Entered the funnel stage of this index.
    Enter(u32),
    /// Left for an off-ramp: `aside` indexes its stage id and reason, kept
    /// aside in input order; `from` is the funnel index it recorded leaving,
    /// `None` when it recorded none (the replayed position is used).
    Leave { aside: u32, from: Option<u32> },
    /// Anything else: another stage, or an exit from outside the funnel.
    Other,
}

/// A transition to replay: its sort key ([`Step::key`]: subject, cycle,
/// at, seq) and what it does, in 48 bytes (56 with the cycle as an `i64`
/// in a key tuple; the large history replays 3.1M of them at once).
/// Everything the replay reads is here or in a small table beside it:
/// following an index back to each off-ramp transition was a quarter of
/// the replay (a cache miss per exit).
struct Step {
    subject: Subject,
    at: Timestamp,
    seq: i64,
    cycle: u32,
    mv: Move,
}

impl Step {
    /// The replay's order: by subject, cycle, time, then sequence.
    fn key(&self) -> (Subject, u32, Timestamp, i64) {
        (self.subject, self.cycle, self.at, self.seq)
    }
}

/// The role of every stage id the waterfall knows, by interned id: a
/// linear scan of a handful of pointer comparisons per transition.
struct Roles(Vec<(Sym, Role)>);

impl Roles {
    fn new(funnel: &[String], kinds: &BTreeMap<String, StageKind>) -> Self {
        // The funnel first, so its first position wins when an id is listed
        // twice.
        Roles(
            funnel
                .iter()
                .enumerate()
                .map(|(i, f)| (Sym::new(f), Role::Funnel(i as u32)))
                .chain(
                    kinds
                        .iter()
                        .filter(|(_, k)| matches!(k, StageKind::Recycle | StageKind::Terminal))
                        .map(|(id, _)| (Sym::new(id), Role::OffRamp)),
                )
                .collect(),
        )
    }

    fn of(&self, s: Sym) -> Option<Role> {
        self.0.iter().find(|(id, _)| *id == s).map(|&(_, r)| r)
    }

    /// The funnel index of `s`, `None` for any other id.
    fn funnel_index(&self, s: Sym) -> Option<usize> {
        match self.of(s) {
            Some(Role::Funnel(i)) => Some(i as usize),
            _ => None,
        }
    }
}

/// Transitions read for a replay: each one's sort key and move, in the
/// order handed over.
struct Steps {
    roles: Roles,
    as_of: Timestamp,
    /// The sort key and the move are read in one pass in memory order;
    /// sorting and replaying then stay in this compact array instead of
    /// following a pointer to each transition, which dominated (cache
    /// misses) on a 300k-transition history.
    ts: Vec<Step>,
    /// Off-ramp stage id and reason of each [`Move::Leave`].
    aside: Vec<(Sym, Option<Sym>)>,
}

impl Steps {
    fn new(funnel: &[String], kinds: &BTreeMap<String, StageKind>, as_of: Timestamp) -> Self {
        Steps {
            roles: Roles::new(funnel, kinds),
            as_of,
            ts: Vec::new(),
            aside: Vec::new(),
        }
    }

    /// Reads `t`, if it is at or before the as-of instant.
    fn push(&mut self, t: TransitionRef<'_>) {
        if t.at > self.as_of {
            return;
        }
        let roles = &self.roles;
        let mv = match roles.of(t.to) {
            Some(Role::Funnel(i)) => Move::Enter(i),
            Some(Role::OffRamp) => match t.from.map(|f| roles.of(f)) {
                // Only exits from a funnel stage leak; `from` wins over the
                // replayed position when recorded.
                Some(Some(Role::Funnel(i))) => Move::Leave {
                    aside: self.aside.len() as u32,
                    from: Some(i),
                },
                Some(_) => Move::Other,
                None => Move::Leave {
                    aside: self.aside.len() as u32,
                    from: None,
                },
            },
            None => Move::Other,
        };
        if matches!(mv, Move::Leave { .. }) {
            self.aside.push((t.to, t.reason));
        }
        self.ts.push(Step {
            subject: t.subject,
            at: t.at,
            seq: t.seq,
            cycle: t.cycle,
            mv,
        });
    }

    /// Replays the steps read into cycles of a funnel of `n` stages.
    fn into_cycles(self, n: usize) -> Cycles {
        let Steps { mut ts, aside, .. } = self;
        ts.sort_unstable_by_key(Step::key);
        let count = 1 + ts
            .windows(2)
            .filter(|w| (w[0].subject, w[0].cycle) != (w[1].subject, w[1].cycle))
            .count();
        let mut out = Cycles {
            n,
            subject: Subjects::with_capacity(count),
            entries_end: Vec::with_capacity(count),
            exits_end: Vec::with_capacity(count),
            entry_stage: Vec::with_capacity(ts.len() - aside.len()),
            entry_at: Vec::with_capacity(ts.len() - aside.len()),
            exits: Vec::with_capacity(aside.len()),
        };
        let mut cur: Option<usize> = None;
        let mut unit: Option<(Subject, u32)> = None;
        for step in ts {
            let (subject, cycle, at) = (step.subject, step.cycle, step.at);
            if unit != Some((subject, cycle)) {
                unit = Some((subject, cycle));
                out.subject.push(subject);
                out.entries_end.push(position(out.entry_at.len()));
                out.exits_end.push(position(out.exits.len()));
                cur = None;
            }
            match step.mv {
                Move::Enter(i) => {
                    out.entry_stage.push(i);
                    out.entry_at.push(at);
                    let end = position(out.entry_at.len());
                    if let Some(e) = out.entries_end.last_mut() {
                        *e = end;
                    }
                    cur = Some(i as usize);
                }
                Move::Leave { aside: a, from } => {
                    if let Some(left) = from.map(|f| f as usize).or(cur) {
                        let (to, reason) = aside[a as usize];
                        out.exits.push(Exit {
                            left: left as u32,
                            to,
                            at,
                            reason,
                        });
                        let end = position(out.exits.len());
                        if let Some(e) = out.exits_end.last_mut() {
                            *e = end;
                        }
                    }
                }
                Move::Other => {}
            }
        }
        out
    }
}

/// Per-group raw numbers for one window.
#[derive(Default)]
struct Core<'t> {
    cohort: Vec<u64>,
    flow: Vec<u64>,
    leaked: Vec<u64>,
    /// (stage, to, reason) → count.
    exits: BTreeMap<(usize, &'t str, &'t str), u64>,
    /// Days per velocity pair, in the order of [`velocity_pairs`].
    velocity: Vec<Vec<f64>>,
    lost: LostDeals,
}

impl Core<'_> {
    fn new(n: usize, pairs: usize) -> Self {
        Core {
            cohort: vec![0; n],
            flow: vec![0; n],
            leaked: vec![0; n],
            velocity: vec![Vec::new(); pairs],
            ..Core::default()
        }
    }
}

/// Adjacent funnel pairs from `c` to `last`, then `(c, last)` when that is
/// not already one of them.
fn velocity_pairs(c: usize, last: usize) -> Vec<(usize, usize)> {
    let mut pairs: Vec<(usize, usize)> = (c..last).map(|j| (j, j + 1)).collect();
    if last > c + 1 {
        pairs.push((c, last));
    }
    pairs
}

/// Group keys numbered in order of first use, so a unit's group is looked
/// up once for all windows and cores are found by index.
#[derive(Default)]
struct Groups {
    keys: Vec<String>,
    ids: FxHashMap<String, usize>,
}

impl Groups {
    fn id(&mut self, key: &str) -> usize {
        if let Some(&i) = self.ids.get(key) {
            return i;
        }
        self.keys.push(key.to_string());
        self.ids.insert(key.to_string(), self.keys.len() - 1);
        self.keys.len() - 1
    }
}

/// The raw numbers of every window (`windows[0]` the measured one, then the
/// comparison windows), per group key.
///
/// Counting units: a unit is a cycle, or a subject with `unique`. Cycles are
/// sorted by (subject, cycle), so a unit's cycles are adjacent and each
/// unit is settled in one step: its distinct stages entered and left within
/// the window, its distinct exits, and its cohort representative (in unique
/// mode the cohort cycle that got furthest, earliest on ties).
fn compute<'t>(
    cyc: &'t Cycles,
    deals: &'t [Deal],
    c: usize,
    windows: &[Window],
    opts: &WaterfallOptions<'_>,
) -> Vec<BTreeMap<String, Core<'t>>> {
    let n = cyc.n;
    let as_of = opts.as_of;
    let pairs = velocity_pairs(c, n - 1);
    let mut groups = Groups::default();
    // Per window, per group id.
    let mut cores: Vec<Vec<Option<Core<'t>>>> = windows.iter().map(|_| Vec::new()).collect();
    fn core<'a, 't>(
        cores: &'a mut Vec<Option<Core<'t>>>,
        g: usize,
        n: usize,
        pairs: usize,
    ) -> &'a mut Core<'t> {
        if cores.len() <= g {
            cores.resize_with(g + 1, || None);
        }
        cores[g].get_or_insert_with(|| Core::new(n, pairs))
    }

    // Scratch buffers reused across units.
    let mut first: Vec<Option<Timestamp>> = Vec::with_capacity(n);
    let mut eff: Vec<Option<Timestamp>> = Vec::with_capacity(n);
    let mut best: Vec<Option<Timestamp>> = Vec::with_capacity(n);
    let mut flow: Vec<usize> = Vec::new();
    let mut leak: Vec<usize> = Vec::new();
    let mut detail: Vec<(usize, &'t str, &'t str)> = Vec::new();

    let mut start = 0;
    while start < cyc.len() {
        let subject = cyc.subject(start);
        let end = if opts.unique {
            // A subject's cycles are next to each other.
            (start..cyc.len())
                .find(|&k| cyc.subject(k) != subject)
                .unwrap_or(cyc.len())
        } else {
            start + 1
        };
        let unit = start..end;
        start = end;
        let mut group: Option<usize> = None;
        for (w, window) in windows.iter().enumerate() {
            let mut reach: Option<usize> = None;
            flow.clear();
            leak.clear();
            detail.clear();
            for k in unit.clone() {
                // The cohort entry is a first entry at `c` or later
                // (inferred pass-through), so a cycle with none of those in
                // the window is not in the cohort.
                if cyc.first_entered_within(k, c, *window, &mut first) {
                    Cycles::effective_into(&first, &mut eff);
                    if eff[c].is_some_and(|t| window.contains(t)) {
                        let rr = (c..n).rev().find(|&j| eff[j].is_some()).unwrap_or(c);
                        if reach.is_none_or(|b| rr > b) {
                            reach = Some(rr);
                            std::mem::swap(&mut best, &mut eff);
                        }
                    }
                }
                flow.extend(
                    cyc.entries(k)
                        .filter(|&(_, at)| window.contains(at))
                        .map(|(i, _)| i),
                );
                for x in cyc.exits(k).iter().filter(|x| window.contains(x.at)) {
                    let left = x.left as usize;
                    leak.push(left);
                    detail.push((left, x.to.as_str(), x.reason.map_or(NONE, |r| r.as_str())));
                }
            }
            if reach.is_none() && flow.is_empty() && leak.is_empty() {
                continue;
            }
            let g = *group.get_or_insert_with(|| groups.id(&opts.grouping.subject_key(subject)));
            let core = core(&mut cores[w], g, n, pairs.len());
            if reach.is_some() {
                for (j, e) in best.iter().enumerate().skip(c) {
                    if e.is_some() {
                        core.cohort[j] += 1;
                    }
                }
                for (k, &(a, b)) in pairs.iter().enumerate() {
                    if let (Some(ta), Some(tb)) = (best[a], best[b]) {
                        let days = (tb.millis() - ta.millis()) as f64 / DAY_MS as f64;
                        core.velocity[k].push(days);
                    }
                }
            }
            flow.sort_unstable();
            flow.dedup();
            for &i in &flow {
                core.flow[i] += 1;
            }
            leak.sort_unstable();
            leak.dedup();
            for &i in &leak {
                core.leaked[i] += 1;
            }
            detail.sort_unstable();
            detail.dedup();
            for &d in &detail {
                *core.exits.entry(d).or_default() += 1;
            }
        }
    }

    // Lost new-business deals (a lost renewal is churn, not funnel leakage).
    for (w, window) in windows.iter().enumerate() {
        let mut lost_by: BTreeMap<(usize, &str), u64> = BTreeMap::new();
        for d in deals {
            let Some(closed) = d.closed_at else { continue };
            // The kind is read last: it is behind a pointer per deal.
            if d.status != DealStatus::Lost
                || !window.contains_as_of(closed, as_of)
                || !DealKind::is_new_business(d)
            {
                continue;
            }
            let g = groups.id(&opts.grouping.person_key(d.person_id));
            let core = core(&mut cores[w], g, n, pairs.len());
            core.lost.count += 1;
            core.lost.amount_minor = core.lost.amount_minor.saturating_add(d.amount.minor);
            let reason = d.lost_reason.as_deref().unwrap_or(NONE);
            *lost_by.entry((g, reason)).or_default() += 1;
        }
        for ((g, reason), count) in lost_by {
            if let Some(Some(core)) = cores[w].get_mut(g) {
                core.lost.by_reason.push(ExitCount {
                    to: "lost".to_string(),
                    reason: reason.to_string(),
                    count,
                });
            }
        }
    }
    cores
        .into_iter()
        .map(|per| {
            per.into_iter()
                .enumerate()
                .filter_map(|(g, core)| core.map(|core| (groups.keys[g].clone(), core)))
                .collect()
        })
        .collect()
}

/// Computes the waterfall of `transitions` and `deals` for the playbook's
/// funnel. See the module docs for what is counted.
pub fn waterfall(
    pb: &Playbook,
    transitions: &Transitions,
    deals: &[Deal],
    opts: &WaterfallOptions<'_>,
) -> Result<Waterfall, MetricsError> {
    waterfall_of(&funnel_ids(pb), &stage_kinds(pb), transitions, deals, opts)
}

/// [`waterfall`] over any funnel: `funnel` in order and the kind of every
/// stage id (off-ramps are the recycle and terminal ones). The account
/// funnel ([`crate::accounts::lifecycle::stages`]) uses this.
pub fn waterfall_of(
    funnel: &[String],
    kinds: &BTreeMap<String, StageKind>,
    transitions: &Transitions,
    deals: &[Deal],
    opts: &WaterfallOptions<'_>,
) -> Result<Waterfall, MetricsError> {
    // Checked before replaying: a bad query should not cost a replay.
    cohort_index(funnel, opts.cohort_stage.as_deref())?;
    Replay::of(funnel, kinds, transitions, opts.as_of).waterfall(deals, opts)
}

/// The funnel index of cohort stage `stage` (`None`: the funnel's first),
/// or why a waterfall cannot have it: a query checked before the
/// transitions are read.
pub fn cohort_index(funnel: &[String], stage: Option<&str>) -> Result<usize, MetricsError> {
    if funnel.is_empty() {
        return Err(MetricsError::NoFunnel);
    }
    match stage {
        None => Ok(0),
        Some(s) => funnel
            .iter()
            .position(|f| f == s)
            .ok_or_else(|| MetricsError::UnknownStage(s.to_string())),
    }
}

/// A [`Replay`] of transitions handed over one at a time, in any order:
/// for a reader that streams them from a store rather than holding them
/// all (a step of the replay is 48 bytes, a [`crate::domain::Transition`] row 64).
/// `Replay::of(funnel, kinds, ts, as_of)` is a builder that was handed
/// every transition of `ts`.
pub struct ReplayBuilder {
    funnel: Vec<String>,
    steps: Steps,
}

impl ReplayBuilder {
    /// Replays transitions at or before `as_of` (later ones are skipped)
    /// through the person funnel of `pb`.
    pub fn new(pb: &Playbook, as_of: Timestamp) -> Self {
        ReplayBuilder::of(&funnel_ids(pb), &stage_kinds(pb), as_of)
    }

    /// [`ReplayBuilder::new`] over any funnel.
    pub fn of(funnel: &[String], kinds: &BTreeMap<String, StageKind>, as_of: Timestamp) -> Self {
        ReplayBuilder {
            funnel: funnel.to_vec(),
            steps: Steps::new(funnel, kinds, as_of),
        }
    }

    /// Room for `n` more transitions.
    pub fn reserve(&mut self, n: usize) {
        self.steps.ts.reserve(n);
    }

    /// Reads one transition (a person's: the caller leaves accounts' out).
    pub fn push(&mut self, t: TransitionRef<'_>) {
        self.steps.push(t);
    }

    /// The replay of every transition pushed.
    pub fn finish(self) -> Replay {
        let n = self.funnel.len();
        Replay {
            funnel: self.funnel,
            cycles: self.steps.into_cycles(n),
        }
    }
}

/// Transitions up to an instant replayed through a funnel: every cycle's
/// entries and exits, in (subject, cycle) order.
///
/// This is the part of the waterfall that depends only on the
/// transitions, the funnel and the instant, not on a query's grouping,
/// windows, cohort stage or unit, and most of its cost (a sort of every
/// transition). A server keeps it beside its history and answers each
/// waterfall query over the same transitions with [`Replay::waterfall`].
pub struct Replay {
    funnel: Vec<String>,
    cycles: Cycles,
}

impl Replay {
    /// Replays `transitions` at or before `as_of` through the person
    /// funnel of `pb`.
    pub fn new(pb: &Playbook, transitions: &Transitions, as_of: Timestamp) -> Replay {
        Replay::of(&funnel_ids(pb), &stage_kinds(pb), transitions, as_of)
    }

    /// [`Replay::new`] over any funnel (see [`waterfall_of`]).
    pub fn of(
        funnel: &[String],
        kinds: &BTreeMap<String, StageKind>,
        transitions: &Transitions,
        as_of: Timestamp,
    ) -> Replay {
        let mut b = ReplayBuilder::of(funnel, kinds, as_of);
        // Sized once: growing a vector of millions of steps copied it and
        // faulted in fresh pages each time.
        b.reserve(transitions.len());
        for t in transitions {
            b.push(t);
        }
        b.finish()
    }

    /// The waterfall of the replayed transitions for `opts`: what
    /// [`waterfall_of`] gives for the same transitions when `opts.as_of`
    /// includes exactly the replayed ones (every transition at or before it
    /// was replayed, and no later one). `opts.as_of` is still read for the
    /// deals.
    pub fn waterfall(
        &self,
        deals: &[Deal],
        opts: &WaterfallOptions<'_>,
    ) -> Result<Waterfall, MetricsError> {
        let funnel = &self.funnel;
        let c = cohort_index(funnel, opts.cohort_stage.as_deref())?;
        let cyc = &self.cycles;
        let n = funnel.len();
        let windows: Vec<Window> = std::iter::once(opts.window)
            .chain(opts.comparison.iter().copied())
            .collect();
        let mut all = compute(cyc, deals, c, &windows, opts).into_iter();
        let current = all.next().unwrap_or_default();
        let past: Vec<BTreeMap<String, Core>> = all.collect();

        let mut keys: BTreeSet<String> = current.keys().cloned().collect();
        for p in &past {
            keys.extend(p.keys().cloned());
        }
        let pairs = velocity_pairs(c, n - 1);
        let empty = Core::new(n, pairs.len());
        let mut groups = Vec::new();
        for g in keys {
            let cur = current.get(&g).unwrap_or(&empty);
            let olds: Vec<&Core> = past.iter().map(|p| p.get(&g).unwrap_or(&empty)).collect();
            let prev = olds.first().copied();
            let avg = |f: &dyn Fn(&Core) -> u64| -> Option<f64> {
                (!olds.is_empty())
                    .then(|| olds.iter().map(|o| f(o) as f64).sum::<f64>() / olds.len() as f64)
            };
            let size = cur.cohort[c];
            let stages = funnel
                .iter()
                .enumerate()
                .map(|(j, id)| {
                    let in_cohort = j >= c;
                    StageRow {
                        stage: id.clone(),
                        cohort: in_cohort.then_some(cur.cohort[j]),
                        conversion: (j > c)
                            .then(|| ratio(cur.cohort[j] as f64, cur.cohort[j - 1] as f64))
                            .flatten(),
                        cumulative: in_cohort
                            .then(|| ratio(cur.cohort[j] as f64, size as f64))
                            .flatten(),
                        flow: cur.flow[j],
                        flow_ratio: (j > 0)
                            .then(|| ratio(cur.flow[j] as f64, cur.flow[j - 1] as f64))
                            .flatten(),
                        leaked: cur.leaked[j],
                        prev_cohort: prev.filter(|_| in_cohort).map(|p| p.cohort[j]),
                        avg_cohort: avg(&|o: &Core| o.cohort[j]).filter(|_| in_cohort),
                        prev_flow: prev.map(|p| p.flow[j]),
                        avg_flow: avg(&|o: &Core| o.flow[j]),
                        prev_leaked: prev.map(|p| p.leaked[j]),
                        avg_leaked: avg(&|o: &Core| o.leaked[j]),
                    }
                })
                .collect();
            let velocity = pairs
                .iter()
                .zip(&cur.velocity)
                .map(|(&(a, b), days)| Velocity {
                    from: funnel[a].clone(),
                    to: funnel[b].clone(),
                    n: days.len() as u64,
                    median_days: percentile(days, 50.0),
                    p90_days: percentile(days, 90.0),
                })
                .collect();
            let mut leakage: Vec<StageLeakage> = Vec::new();
            for (&(i, to, reason), &count) in &cur.exits {
                if leakage.last().is_none_or(|l| l.stage != funnel[i]) {
                    leakage.push(StageLeakage {
                        stage: funnel[i].clone(),
                        total: cur.leaked[i],
                        exits: Vec::new(),
                    });
                }
                if let Some(l) = leakage.last_mut() {
                    l.exits.push(ExitCount {
                        to: to.to_string(),
                        reason: reason.to_string(),
                        count,
                    });
                }
            }
            groups.push(GroupWaterfall {
                group: g,
                cohort_size: size,
                end_to_end: ratio(cur.cohort[n - 1] as f64, size as f64),
                stages,
                velocity,
                leakage,
                lost: cur.lost.clone(),
            });
        }
        Ok(Waterfall {
            as_of: opts.as_of,
            window: opts.window,
            comparison: opts.comparison.clone(),
            cohort_stage: funnel[c].clone(),
            unique: opts.unique,
            groups,
        })
    }
}

/// A counting unit: (subject, cycle), the cycle 0 when counting people.
type Unit = (Subject, u32);

/// The flow view of one window over the whole history (no grouping).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowCounts {
    /// Distinct units that entered each funnel stage, in funnel order.
    pub flow: Vec<u64>,
    /// Distinct units that left each funnel stage for an off-ramp.
    pub leaked: Vec<u64>,
}

/// [`waterfall`]'s `flow` and `leaked` columns for every window in
/// `windows` (the measured one first, then the comparison windows), with
/// [`Grouping::All`]: equal to its single group's `flow` / `prev_flow` /
/// `avg_flow` and `leaked` without replaying every cycle of the history.
/// Only transitions inside a window are read, plus, for an exit that does
/// not record the stage it left, the earlier entries of its cycle.
///
/// `None` when the waterfall would have no group: nothing entered or left a
/// stage and no new-business deal was lost in any window.
pub fn flow_counts(
    pb: &Playbook,
    transitions: &Transitions,
    deals: &[Deal],
    windows: &[Window],
    as_of: Timestamp,
    unique: bool,
) -> Option<Vec<FlowCounts>> {
    let funnel = funnel_ids(pb);
    let kinds = stage_kinds(pb);
    let roles = Roles::new(&funnel, &kinds);
    let unit = |t: &TransitionRef| (t.subject, if unique { 0 } else { t.cycle });
    let inside = |at: Timestamp| windows.iter().any(|w| w.contains_as_of(at, as_of));
    // (window, funnel index, unit) per entry or exit; distinct after sorting.
    let mut entered: Vec<(usize, usize, Unit)> = Vec::new();
    let mut left: Vec<(usize, usize, Unit)> = Vec::new();
    let per_window = |out: &mut Vec<_>, t: &TransitionRef, i: usize| {
        for (w, window) in windows.iter().enumerate() {
            if window.contains_as_of(t.at, as_of) {
                out.push((w, i, unit(t)));
            }
        }
    };
    // Exits without `from`: they left the cycle's latest funnel stage.
    let mut unplaced: Vec<TransitionRef> = Vec::new();
    for t in transitions.iter().filter(|t| inside(t.at)) {
        match roles.of(t.to) {
            Some(Role::Funnel(i)) => per_window(&mut entered, &t, i as usize),
            Some(Role::OffRamp) => match t.from {
                Some(f) => {
                    if let Some(i) = roles.funnel_index(f) {
                        per_window(&mut left, &t, i);
                    }
                }
                None => unplaced.push(t),
            },
            None => {}
        }
    }
    if !unplaced.is_empty() {
        // The latest funnel entry before each such exit, in the replay's
        // (at, seq) order within its cycle.
        let mut latest: FxHashMap<Unit, Vec<(Timestamp, i64, usize)>> = FxHashMap::default();
        for t in &unplaced {
            latest.entry((t.subject, t.cycle)).or_default();
        }
        for t in transitions.iter().filter(|t| t.at <= as_of) {
            if let Some(entries) = latest.get_mut(&(t.subject, t.cycle)) {
                if let Some(i) = roles.funnel_index(t.to) {
                    entries.push((t.at, t.seq, i));
                }
            }
        }
        for t in unplaced {
            let before = latest[&(t.subject, t.cycle)]
                .iter()
                .filter(|&&(at, seq, _)| (at, seq) < (t.at, t.seq))
                .max_by_key(|&&(at, seq, _)| (at, seq));
            if let Some(&(_, _, i)) = before {
                per_window(&mut left, &t, i);
            }
        }
    }
    let lost = deals.iter().any(|d| {
        d.status == DealStatus::Lost
            && d.closed_at.is_some_and(&inside)
            && DealKind::is_new_business(d)
    });
    if entered.is_empty() && left.is_empty() && !lost {
        return None;
    }
    let n = funnel.len();
    let flow = distinct_counts(entered, windows.len(), n);
    let leaked = distinct_counts(left, windows.len(), n);
    Some(
        flow.into_iter()
            .zip(leaked)
            .map(|(flow, leaked)| FlowCounts { flow, leaked })
            .collect(),
    )
}

/// Per window, per funnel index: how many distinct units `rows` holds.
fn distinct_counts(mut rows: Vec<(usize, usize, Unit)>, windows: usize, n: usize) -> Vec<Vec<u64>> {
    rows.sort_unstable();
    rows.dedup();
    let mut out = vec![vec![0; n]; windows];
    for (w, i, _) in rows {
        out[w][i] += 1;
    }
    out
}

/// Entries into funnel stage `stage` within `window` (and not after
/// `as_of`), per group: distinct cycles, or distinct people with `unique`.
/// Skipped entries count. This is the flow view's count for one stage.
pub fn stage_entries(
    transitions: &Transitions,
    stage: &str,
    window: Window,
    as_of: Timestamp,
    unique: bool,
    grouping: Grouping<'_>,
) -> BTreeMap<String, u64> {
    count_units(
        transitions.entries_within(stage, window, as_of),
        unique,
        grouping,
    )
}

/// How many subjects are in each funnel stage as of `as_of` (their latest
/// transition up to then), per group, in funnel order: the current pipeline
/// the plan compares with.
pub fn current_stage_counts(
    pb: &Playbook,
    transitions: &Transitions,
    as_of: Timestamp,
    grouping: Grouping<'_>,
) -> BTreeMap<String, Vec<u64>> {
    let funnel = funnel_ids(pb);
    let mut out: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for (s, latest) in crate::lifecycle::latest_by(transitions, as_of, Some) {
        if let Some(i) = funnel.iter().position(|f| *f == latest.to) {
            let g = grouping.subject_key(s);
            // Counts are sums, so map order does not matter; a group key is
            // copied once, not per subject.
            match out.get_mut(g.as_ref()) {
                Some(counts) => counts[i] += 1,
                None => {
                    let mut counts = vec![0; funnel.len()];
                    counts[i] += 1;
                    out.insert(g.into_owned(), counts);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The replay holds one step per transition at once: keep it at 48
    /// bytes.
    #[test]
    fn a_step_is_48_bytes() {
        assert_eq!(std::mem::size_of::<Step>(), 48);
    }

    /// The kept replay holds a cycle (1.3M on the large demo) in 13 bytes
    /// and an entry in 12, and reads back each cycle's subject.
    #[test]
    fn a_kept_cycle_is_13_bytes_and_an_entry_12() {
        let pb = Playbook::load(crate::playbook::STARTER).playbook.unwrap();
        let n = 10_000i64;
        let at = |d: i64| Timestamp::from_millis(d * DAY_MS);
        let mut b = ReplayBuilder::new(&pb, at(10));
        for (seq, to) in [(1, "inquiry"), (2, "mql")] {
            for id in 1..=n {
                let subject = Subject::of(id, id % 10 == 0);
                b.push(TransitionRef {
                    seq: seq * n + id,
                    subject,
                    from: None,
                    to: Sym::new(to),
                    at: at(seq),
                    actor: Sym::new("system"),
                    reason: None,
                    note: None,
                    cycle: 1,
                    skipped: false,
                });
            }
        }
        let cyc = b.finish().cycles;
        assert_eq!(cyc.len(), n as usize);
        // People first (the subjects' order); every tenth is an account.
        assert_eq!(cyc.subject(9), Subject::Person(11));
        assert_eq!(cyc.subject(9_000), Subject::Account(10));
        assert_eq!(cyc.subject(9_999), Subject::Account(n));
        assert_eq!(cyc.entries(9_000).count(), 2);
        let bytes = cyc.subject.heap_bytes()
            + (cyc.entries_end.capacity() + cyc.exits_end.capacity()) * 4
            + cyc.entry_stage.capacity() * 4
            + cyc.entry_at.capacity() * 8;
        assert_eq!(bytes, n as usize * (13 + 2 * 12));
    }
}
