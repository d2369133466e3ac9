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
use crate::domain::{Deal, DealStatus, Subject, Transition};
use crate::playbook::{Playbook, StageKind};
use crate::time::{Timestamp, DAY_MS};

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

/// One cycle's passage through the funnel.
#[derive(Clone, Debug)]
pub(crate) struct CycleRec {
    pub subject: Subject,
    pub cycle: i64,
    /// First entry per funnel index as recorded (skips included).
    pub entered: Vec<Option<Timestamp>>,
    /// Every entry into a funnel stage: (funnel index, at).
    pub entries: Vec<(usize, Timestamp)>,
    /// Exits to off-ramps: (funnel index left, off-ramp id, at, reason).
    pub exits: Vec<(usize, String, Timestamp, Option<String>)>,
}

impl CycleRec {
    /// Entry per funnel index with pass-through inferred between the first
    /// entered stage and any later entered stage (see the module docs).
    pub fn effective(&self) -> Vec<Option<Timestamp>> {
        let n = self.entered.len();
        let first = self.entered.iter().position(Option::is_some);
        let mut eff = self.entered.clone();
        let mut later: Option<Timestamp> = None;
        for i in (0..n).rev() {
            if eff[i].is_none() && first.is_some_and(|f| f < i) {
                eff[i] = later;
            }
            if let Some(t) = self.entered[i] {
                later = Some(later.map_or(t, |l| l.min(t)));
            }
        }
        eff
    }
}

/// Replays transitions up to `as_of` into cycles, sorted by (subject, cycle).
pub(crate) fn cycles(
    funnel: &[String],
    kinds: &BTreeMap<String, StageKind>,
    transitions: &[Transition],
    as_of: Timestamp,
) -> Vec<CycleRec> {
    let mut ts: Vec<&Transition> = transitions.iter().filter(|t| t.at <= as_of).collect();
    ts.sort_by_key(|t| (t.subject, t.cycle, t.at, t.seq));
    let index = |s: &str| funnel.iter().position(|f| f == s);
    let mut out: Vec<CycleRec> = Vec::new();
    let mut cur: Option<usize> = None;
    for t in ts {
        let new = out
            .last()
            .is_none_or(|c| c.subject != t.subject || c.cycle != t.cycle);
        if new {
            out.push(CycleRec {
                subject: t.subject,
                cycle: t.cycle,
                entered: vec![None; funnel.len()],
                entries: Vec::new(),
                exits: Vec::new(),
            });
            cur = None;
        }
        let Some(rec) = out.last_mut() else { continue };
        if let Some(i) = index(&t.to) {
            if rec.entered[i].is_none() {
                rec.entered[i] = Some(t.at);
            }
            rec.entries.push((i, t.at));
            cur = Some(i);
        } else if matches!(
            kinds.get(&t.to),
            Some(StageKind::Recycle | StageKind::Terminal)
        ) {
            // Only exits from a funnel stage leak; `from` wins over the
            // replayed position when recorded.
            let left = match t.from.as_deref() {
                Some(f) => index(f),
                None => cur,
            };
            if let Some(l) = left {
                rec.exits.push((l, t.to.clone(), t.at, t.reason.clone()));
            }
        }
    }
    out
}

/// Per-group raw numbers for one window.
#[derive(Default)]
struct Core {
    cohort: Vec<u64>,
    flow: Vec<u64>,
    leaked: Vec<u64>,
    /// (stage, to, reason) → count.
    exits: BTreeMap<(usize, String, String), u64>,
    /// (from index, to index) → days.
    velocity: BTreeMap<(usize, usize), Vec<f64>>,
    lost: LostDeals,
}

impl Core {
    fn new(n: usize) -> Self {
        Core {
            cohort: vec![0; n],
            flow: vec![0; n],
            leaked: vec![0; n],
            ..Core::default()
        }
    }
}

type Unit = (Subject, i64);

/// Adjacent funnel pairs from `c` to `last`, then `(c, last)` when that is
/// not already one of them.
fn velocity_pairs(c: usize, last: usize) -> Vec<(usize, usize)> {
    let mut pairs: Vec<(usize, usize)> = (c..last).map(|j| (j, j + 1)).collect();
    if last > c + 1 {
        pairs.push((c, last));
    }
    pairs
}

fn compute(
    funnel: &[String],
    cyc: &[CycleRec],
    deals: &[Deal],
    c: usize,
    window: Window,
    opts: &WaterfallOptions<'_>,
) -> BTreeMap<String, Core> {
    let n = funnel.len();
    let as_of = opts.as_of;
    let unit = |r: &CycleRec| -> Unit {
        if opts.unique {
            (r.subject, 0)
        } else {
            (r.subject, r.cycle)
        }
    };
    let mut groups: BTreeMap<String, Core> = BTreeMap::new();

    // Cohort: one representative cycle per unit (in unique mode the cohort
    // cycle that got furthest, earliest on ties).
    let mut reps: BTreeMap<Unit, (usize, Vec<Option<Timestamp>>)> = BTreeMap::new();
    for r in cyc {
        // The cohort entry is an entry at `c` or later (inferred pass-through),
        // so a cycle with none of those in the window is not in the cohort:
        // skip it before building its effective entries.
        if !r.entered[c..].iter().flatten().any(|t| window.contains(*t)) {
            continue;
        }
        let eff = r.effective();
        if !eff[c].is_some_and(|t| window.contains(t)) {
            continue;
        }
        let reach = (c..n).rev().find(|&j| eff[j].is_some()).unwrap_or(c);
        let u = unit(r);
        match reps.get(&u) {
            Some((best, _)) if *best >= reach => {}
            _ => {
                reps.insert(u, (reach, eff));
            }
        }
    }
    let last = n - 1;
    for ((subject, _), (_, eff)) in &reps {
        let core = groups
            .entry(opts.grouping.subject(*subject))
            .or_insert_with(|| Core::new(n));
        for (j, e) in eff.iter().enumerate().skip(c) {
            if e.is_some() {
                core.cohort[j] += 1;
            }
        }
        for (a, b) in velocity_pairs(c, last) {
            if let (Some(ta), Some(tb)) = (eff[a], eff[b]) {
                let days = (tb.millis() - ta.millis()) as f64 / DAY_MS as f64;
                core.velocity.entry((a, b)).or_default().push(days);
            }
        }
    }

    // Flow: distinct units entering each stage within the window.
    let mut flow: BTreeSet<(String, usize, Unit)> = BTreeSet::new();
    // Leakage: distinct units leaving each stage within the window.
    let mut leak: BTreeSet<(String, usize, Unit)> = BTreeSet::new();
    let mut leak_detail: BTreeSet<(String, usize, String, String, Unit)> = BTreeSet::new();
    for r in cyc {
        // Most cycles have nothing in a given window: look their group up
        // (a string per cycle) only when they do.
        let mut group: Option<String> = None;
        let u = unit(r);
        for &(i, at) in &r.entries {
            if window.contains(at) {
                let g = group.get_or_insert_with(|| opts.grouping.subject(r.subject));
                flow.insert((g.clone(), i, u));
            }
        }
        for (i, to, at, reason) in &r.exits {
            if window.contains(*at) {
                let g = group.get_or_insert_with(|| opts.grouping.subject(r.subject));
                leak.insert((g.clone(), *i, u));
                let reason = reason.clone().unwrap_or_else(|| NONE.to_string());
                leak_detail.insert((g.clone(), *i, to.clone(), reason, u));
            }
        }
    }
    for (g, i, _) in flow {
        groups.entry(g).or_insert_with(|| Core::new(n)).flow[i] += 1;
    }
    for (g, i, _) in leak {
        groups.entry(g).or_insert_with(|| Core::new(n)).leaked[i] += 1;
    }
    for (g, i, to, reason, _) in leak_detail {
        let core = groups.entry(g).or_insert_with(|| Core::new(n));
        *core.exits.entry((i, to, reason)).or_default() += 1;
    }

    // Lost new-business deals (a lost renewal is churn, not funnel leakage).
    let mut lost_by: BTreeMap<(String, String), u64> = BTreeMap::new();
    for d in deals.iter().filter(|d| DealKind::is_new_business(d)) {
        let Some(closed) = d.closed_at else { continue };
        if d.status != DealStatus::Lost || !window.contains_as_of(closed, as_of) {
            continue;
        }
        let g = opts.grouping.person(d.person_id);
        let core = groups.entry(g.clone()).or_insert_with(|| Core::new(n));
        core.lost.count += 1;
        core.lost.amount_minor += d.amount.minor;
        let reason = d.lost_reason.clone().unwrap_or_else(|| NONE.to_string());
        *lost_by.entry((g, reason)).or_default() += 1;
    }
    for ((g, reason), count) in lost_by {
        if let Some(core) = groups.get_mut(&g) {
            core.lost.by_reason.push(ExitCount {
                to: "lost".to_string(),
                reason,
                count,
            });
        }
    }
    groups
}

/// Computes the waterfall of `transitions` and `deals` for the playbook's
/// funnel. See the module docs for what is counted.
pub fn waterfall(
    pb: &Playbook,
    transitions: &[Transition],
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
    transitions: &[Transition],
    deals: &[Deal],
    opts: &WaterfallOptions<'_>,
) -> Result<Waterfall, MetricsError> {
    let funnel = funnel.to_vec();
    if funnel.is_empty() {
        return Err(MetricsError::NoFunnel);
    }
    let c = match &opts.cohort_stage {
        None => 0,
        Some(s) => funnel
            .iter()
            .position(|f| f == s)
            .ok_or_else(|| MetricsError::UnknownStage(s.clone()))?,
    };
    let cyc = cycles(&funnel, kinds, transitions, opts.as_of);
    let n = funnel.len();
    let current = compute(&funnel, &cyc, deals, c, opts.window, opts);
    let past: Vec<BTreeMap<String, Core>> = opts
        .comparison
        .iter()
        .map(|w| compute(&funnel, &cyc, deals, c, *w, opts))
        .collect();

    let mut keys: BTreeSet<String> = current.keys().cloned().collect();
    for p in &past {
        keys.extend(p.keys().cloned());
    }
    let empty = Core::new(n);
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
        let velocity = velocity_pairs(c, n - 1)
            .into_iter()
            .map(|(a, b)| {
                let days = cur.velocity.get(&(a, b)).map(Vec::as_slice).unwrap_or(&[]);
                Velocity {
                    from: funnel[a].clone(),
                    to: funnel[b].clone(),
                    n: days.len() as u64,
                    median_days: percentile(days, 50.0),
                    p90_days: percentile(days, 90.0),
                }
            })
            .collect();
        let mut leakage: Vec<StageLeakage> = Vec::new();
        for (&(i, ref to, ref reason), &count) in &cur.exits {
            if leakage.last().is_none_or(|l| l.stage != funnel[i]) {
                leakage.push(StageLeakage {
                    stage: funnel[i].clone(),
                    total: cur.leaked[i],
                    exits: Vec::new(),
                });
            }
            if let Some(l) = leakage.last_mut() {
                l.exits.push(ExitCount {
                    to: to.clone(),
                    reason: reason.clone(),
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

/// Entries into funnel stage `stage` within `window` (and not after
/// `as_of`), per group: distinct cycles, or distinct people with `unique`.
/// Skipped entries count. This is the flow view's count for one stage.
pub fn stage_entries(
    transitions: &[Transition],
    stage: &str,
    window: Window,
    as_of: Timestamp,
    unique: bool,
    grouping: Grouping<'_>,
) -> BTreeMap<String, u64> {
    let mut seen: BTreeSet<(String, Subject, i64)> = BTreeSet::new();
    for t in transitions {
        if t.to == stage && window.contains_as_of(t.at, as_of) {
            let cycle = if unique { 0 } else { t.cycle };
            seen.insert((grouping.subject(t.subject), t.subject, cycle));
        }
    }
    let mut out = BTreeMap::new();
    for (g, _, _) in seen {
        *out.entry(g).or_insert(0) += 1;
    }
    out
}

/// How many subjects are in each funnel stage as of `as_of` (their latest
/// transition up to then), per group, in funnel order: the current pipeline
/// the plan compares with.
pub fn current_stage_counts(
    pb: &Playbook,
    transitions: &[Transition],
    as_of: Timestamp,
    grouping: Grouping<'_>,
) -> BTreeMap<String, Vec<u64>> {
    let funnel = funnel_ids(pb);
    let mut latest: BTreeMap<Subject, &Transition> = BTreeMap::new();
    for t in transitions.iter().filter(|t| t.at <= as_of) {
        let newer = latest
            .get(&t.subject)
            .is_none_or(|l| (t.at, t.seq) > (l.at, l.seq));
        if newer {
            latest.insert(t.subject, t);
        }
    }
    let mut out: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for (s, t) in latest {
        if let Some(i) = funnel.iter().position(|f| *f == t.to) {
            out.entry(grouping.subject(s))
                .or_insert_with(|| vec![0; funnel.len()])[i] += 1;
        }
    }
    out
}
