//! Scorecard: goal pacing and the actual values of the leading indicators
//! ([`crate::playbook::METRICS`]), DESIGN §5.
//!
//! **Pacing.** For count and money metrics, expected-to-date is
//! `target × elapsed / period length`, pace ratio `actual / expected` and the
//! projection `actual × period length / elapsed` (linear). Rate metrics
//! (`win_rate`, `sal_rate`, `retention`) do not accumulate over time: their
//! expected-to-date is the target itself and the projection is the actual.
//!
//! **Status.** [`PaceStatus::Ahead`] when pace ≥ 1.05, [`PaceStatus::OnTrack`]
//! when pace ≥ 0.95, otherwise [`PaceStatus::Behind`]. Before any time has
//! elapsed there is no pace and the status is on track.
//!
//! **Celebration.** A goal is hit when actual ≥ target; for rate metrics only
//! once the period is over (a rate can be high by chance early on).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::domain::{ActivityKind, DealStatus, Subject};
use crate::fxhash::{FxHashMap, FxHashSet};
use crate::playbook::{Goal, Period, Playbook, StageKind, METRICS};
use crate::sym::Sym;
use crate::time::Timestamp;

use super::retention::DealKind;
use super::{funnel_ids, ratio, Grouping, History, MetricsError, Window};

/// Pace at or above this is ahead.
pub const AHEAD_AT: f64 = 1.05;
/// Pace at or above this (and below [`AHEAD_AT`]) is on track.
pub const ON_TRACK_AT: f64 = 0.95;

/// Metrics that are rates (0..1) rather than sums.
pub const RATE_METRICS: &[&str] = &[
    "win_rate",
    "sal_rate",
    "retention",
    "nrr",
    "grr",
    "logo_retention",
];

/// Where an actual stands against its goal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PaceStatus {
    /// Pace ≥ 1.05.
    Ahead,
    /// 0.95 ≤ pace < 1.05 (or no time elapsed yet).
    OnTrack,
    /// Pace < 0.95 (or no actual for a rate metric).
    Behind,
}

impl PaceStatus {
    /// The status of a pace ratio.
    pub fn of(pace: Option<f64>) -> PaceStatus {
        match pace {
            None => PaceStatus::OnTrack,
            Some(p) if p >= AHEAD_AT => PaceStatus::Ahead,
            Some(p) if p >= ON_TRACK_AT => PaceStatus::OnTrack,
            Some(_) => PaceStatus::Behind,
        }
    }
}

/// One scorecard line: a goal with its actual and pacing.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Pacing {
    /// Goal id.
    pub goal: String,
    /// Metric name.
    pub metric: String,
    /// Goal period.
    pub period: Period,
    /// The period's window.
    pub window: Window,
    /// Instant the actual is measured at.
    pub as_of: Timestamp,
    /// Goal target (minor units, rate or count).
    pub target: f64,
    /// Actual to date (`None`: a rate with no denominator yet).
    pub actual: Option<f64>,
    /// Share of the period elapsed at `as_of`, 0..=1.
    pub elapsed_share: f64,
    /// Linear expected value to date.
    pub expected_to_date: f64,
    /// `actual / expected_to_date`.
    pub pace: Option<f64>,
    /// Projected value at the end of the period.
    pub projected: Option<f64>,
    /// Ahead / on track / behind.
    pub status: PaceStatus,
    /// The goal is hit: celebrate.
    pub celebrate: bool,
}

/// Paces `actual` against `goal` over `window` (the goal's current period)
/// at `as_of`. See the module docs for the rules.
pub fn pace(goal: &Goal, window: Window, as_of: Timestamp, actual: Option<f64>) -> Pacing {
    let len = window.len_ms().max(1) as f64;
    let elapsed = (as_of.millis() - window.from.millis()).clamp(0, window.len_ms().max(0)) as f64;
    let share = elapsed / len;
    let is_rate = RATE_METRICS.contains(&goal.metric.as_str());
    let (expected, projected) = if is_rate {
        (goal.target, actual)
    } else {
        (
            goal.target * share,
            actual.and_then(|a| (elapsed > 0.0).then(|| a * len / elapsed)),
        )
    };
    let pace = match actual {
        Some(a) if elapsed > 0.0 => ratio(a, expected),
        _ => None,
    };
    let status = match (is_rate, actual, elapsed > 0.0) {
        (_, _, false) => PaceStatus::OnTrack,
        (true, None, true) => PaceStatus::Behind,
        _ => PaceStatus::of(pace),
    };
    let over = share >= 1.0;
    let celebrate = actual.is_some_and(|a| a >= goal.target) && (!is_rate || over);
    Pacing {
        goal: goal.id.clone(),
        metric: goal.metric.clone(),
        period: goal.period,
        window,
        as_of,
        target: goal.target,
        actual,
        elapsed_share: share,
        expected_to_date: expected,
        pace,
        projected,
        status,
        celebrate,
    }
}

/// The funnel stage a stage-entry metric counts, if `metric` is one.
fn metric_stage(pb: &Playbook, metric: &str) -> Option<Result<String, MetricsError>> {
    let id = match metric {
        "inquiries" => {
            return Some(
                pb.first_stage()
                    .map(|s| s.id.clone())
                    .ok_or(MetricsError::NoFunnel),
            )
        }
        "mqls" => "mql",
        "sals" => "sal",
        "sqls" => "sql",
        "opportunities" => "opportunity",
        "customers" => "customer",
        _ => return None,
    };
    Some(
        funnel_ids(pb)
            .into_iter()
            .find(|f| f == id)
            .ok_or_else(|| MetricsError::UnknownStage(id.to_string())),
    )
}

/// The touch kind a touch-count metric counts, if `metric` is one.
fn touch_kind(metric: &str) -> Option<&'static str> {
    match metric {
        "web_visits" => Some("web_visit"),
        "email_opens" => Some("email_open"),
        "email_clicks" => Some("email_click"),
        "paid_clicks" => Some("ad_click"),
        "form_fills" => Some("form_fill"),
        _ => None,
    }
}

/// The activity kinds an activity-count metric counts (empty for others).
fn activity_kinds(metric: &str) -> &'static [ActivityKind] {
    match metric {
        "calls" => &[ActivityKind::Call],
        "emails_sent" => &[ActivityKind::Email],
        "meetings" => &[ActivityKind::Meeting, ActivityKind::Demo],
        _ => &[],
    }
}

/// The actual value of `metric` (a name from [`METRICS`]) over `window`, not
/// reading past `as_of`, per group. Counts are sums, money is in minor units
/// (deal amounts are summed as they are: they are assumed to be in the
/// playbook currency), rates are 0..1 and `None` when their denominator is 0.
///
/// - stage entries (`inquiries`, `mqls`, …): distinct cycles entering the
///   stage in the window, skipped entries included;
/// - touches by kind (`paid_clicks` counts `ad_click`), activities by kind
///   (`meetings` counts meetings and demos);
/// - `pipeline_created`: amounts of new-business deals created in the
///   window; `revenue_won` / `deals_won`: new-business deals won with
///   `closed_at` in the window (renewals and expansions count in `nrr`,
///   `grr` and `expansion_revenue`, see [`DealKind::is_new_business`]);
/// - `win_rate`: won / (won + lost) of new-business deals closed in the window;
/// - `sal_rate`: SAL entries / MQL entries in the window;
/// - `retention`: of the subjects in the customer stage (or a later funnel
///   stage) at the window start, the share still in one at its end (or at
///   `as_of` when earlier); the customer stage is `customer`, else the last
///   funnel stage.
///
/// Groups with nothing to count are absent, except that without grouping the
/// group [`super::ALL`] is always present.
pub fn metric_actuals(
    pb: &Playbook,
    history: &History<'_>,
    metric: &str,
    window: Window,
    as_of: Timestamp,
    grouping: Grouping<'_>,
) -> Result<BTreeMap<String, Option<f64>>, MetricsError> {
    if !METRICS.iter().any(|(m, _)| *m == metric) {
        return Err(MetricsError::UnknownMetric(metric.to_string()));
    }
    let mut out: BTreeMap<String, Option<f64>> = BTreeMap::new();
    let mut add = |g: String, v: f64| {
        let e = out.entry(g).or_insert(Some(0.0));
        *e = Some(e.unwrap_or(0.0) + v);
    };
    let activity_kinds = activity_kinds(metric);
    if let Some(stage) = metric_stage(pb, metric) {
        let stage = stage?;
        for (g, n) in history.stage_entries(&stage, window, as_of, false, grouping) {
            add(g, n as f64);
        }
    } else if let Some(kind) = touch_kind(metric) {
        for t in history.touches {
            // The time first: it is in the touch, the kind behind a pointer.
            if window.contains_as_of(t.at, as_of) && t.kind == kind {
                add(grouping.person(Some(t.person_id)), 1.0);
            }
        }
    } else if !activity_kinds.is_empty() {
        for a in history.activities {
            if window.contains_as_of(a.at, as_of) && activity_kinds.contains(&a.kind) {
                add(grouping.person(Some(a.person_id)), 1.0);
            }
        }
    } else {
        match metric {
            "pipeline_created" => {
                // The kind is read last: it is behind a pointer per deal.
                for d in history.deals {
                    if window.contains_as_of(d.created_at, as_of) && DealKind::is_new_business(d) {
                        add(grouping.person(d.person_id), d.amount.minor as f64);
                    }
                }
            }
            "revenue_won" | "deals_won" | "win_rate" => {
                let mut won: BTreeMap<String, (f64, f64)> = BTreeMap::new();
                let mut lost: BTreeMap<String, f64> = BTreeMap::new();
                for d in history.deals {
                    let Some(c) = d.closed_at else { continue };
                    if !window.contains_as_of(c, as_of) || !DealKind::is_new_business(d) {
                        continue;
                    }
                    let g = grouping.person(d.person_id);
                    match d.status {
                        DealStatus::Won => {
                            let e = won.entry(g).or_default();
                            e.0 += 1.0;
                            e.1 += d.amount.minor as f64;
                        }
                        DealStatus::Lost => *lost.entry(g).or_default() += 1.0,
                        DealStatus::Open => {}
                    }
                }
                let keys: BTreeSet<String> = won.keys().chain(lost.keys()).cloned().collect();
                for g in keys {
                    let (w, amount) = won.get(&g).copied().unwrap_or_default();
                    let l = lost.get(&g).copied().unwrap_or_default();
                    let v = match metric {
                        "revenue_won" => Some(amount),
                        "deals_won" => Some(w),
                        _ => ratio(w, w + l),
                    };
                    out.insert(g, v);
                }
            }
            "sal_rate" => {
                let stage = |id: &str| {
                    metric_stage(pb, id).unwrap_or(Err(MetricsError::UnknownMetric(id.into())))
                };
                let (mql, sal) = (stage("mqls")?, stage("sals")?);
                let m = history.stage_entries(&mql, window, as_of, false, grouping);
                let s = history.stage_entries(&sal, window, as_of, false, grouping);
                let keys: BTreeSet<&String> = m.keys().chain(s.keys()).collect();
                for g in keys {
                    let mv = m.get(g).copied().unwrap_or(0) as f64;
                    let sv = s.get(g).copied().unwrap_or(0) as f64;
                    out.insert(g.clone(), ratio(sv, mv));
                }
            }
            "retention" => {
                for (g, v) in retention(pb, history, window, as_of, grouping)? {
                    out.insert(g, v);
                }
            }
            m if RETENTION_METRICS.contains(&m) => {
                for (g, v) in super::retention::grouped(history, metric, window, as_of, grouping) {
                    out.insert(g, v);
                }
            }
            other => return Err(MetricsError::UnknownMetric(other.to_string())),
        }
    }
    if matches!(grouping, Grouping::All) && !out.contains_key(super::ALL) {
        out.insert(super::ALL.to_string(), empty_value(metric));
    }
    Ok(out)
}

/// [`metric_actuals`] without grouping for several metrics over several
/// windows: item `i` holds the value of `metrics[i]` over each window in
/// order (the group [`super::ALL`]), or why it has none. Touch and
/// activity counts are read from the time-ordered columns of a kept
/// history, else taken in one pass over each table for all of them: on
/// a large history reading the rows costs far more than counting.
pub fn actuals_over(
    pb: &Playbook,
    history: &History<'_>,
    metrics: &[&str],
    windows: &[Window],
    as_of: Timestamp,
) -> Vec<Result<Vec<Option<f64>>, MetricsError>> {
    // The metric names of touch and activity counts are distinct from the
    // others', so these are read as metric_actuals reads them.
    let touch_kinds: Vec<Option<&str>> = metrics.iter().map(|m| touch_kind(m)).collect();
    let activity_kinds: Vec<&[ActivityKind]> = metrics.iter().map(|m| activity_kinds(m)).collect();
    // counts[i][j]: rows metric i counts in window j.
    let mut counts = vec![vec![0u64; windows.len()]; metrics.len()];
    if history.touches.is_sorted() && history.activities.is_sorted() {
        // In time order (a kept history): each window is two binary
        // searches and a scan of its kinds. Distinct static kinds per
        // metric: each row is counted once.
        for (i, row) in counts.iter_mut().enumerate() {
            for (j, &w) in windows.iter().enumerate() {
                let touches =
                    touch_kinds[i].map_or(0, |k| history.touches.count_within(k, w, as_of));
                let activities: usize = activity_kinds[i]
                    .iter()
                    .map(|&k| history.activities.count_within(k, w, as_of))
                    .sum();
                row[j] = (touches + activities) as u64;
            }
        }
    } else {
        if touch_kinds.iter().any(Option::is_some) {
            for t in history.touches.iter().filter(|t| t.at <= as_of) {
                // The time first: it is in the touch, the kind behind a pointer.
                for (j, w) in windows.iter().enumerate() {
                    if w.contains(t.at) {
                        for (i, kind) in touch_kinds.iter().enumerate() {
                            if *kind == Some(t.kind.as_str()) {
                                counts[i][j] += 1;
                            }
                        }
                    }
                }
            }
        }
        if activity_kinds.iter().any(|k| !k.is_empty()) {
            for a in history.activities.iter().filter(|a| a.at <= as_of) {
                for (j, w) in windows.iter().enumerate() {
                    if w.contains(a.at) {
                        for (i, kinds) in activity_kinds.iter().enumerate() {
                            if kinds.contains(&a.kind) {
                                counts[i][j] += 1;
                            }
                        }
                    }
                }
            }
        }
    }
    metrics
        .iter()
        .enumerate()
        .map(|(i, &metric)| {
            if touch_kinds[i].is_some() || !activity_kinds[i].is_empty() {
                // Counts are exact in an f64, as metric_actuals' sums of 1.0.
                return Ok(counts[i].iter().map(|&n| Some(n as f64)).collect());
            }
            windows
                .iter()
                .map(|&w| {
                    let v = metric_actuals(pb, history, metric, w, as_of, Grouping::All)?;
                    Ok(v.get(super::ALL).copied().flatten())
                })
                .collect()
        })
        .collect()
}

/// The metrics read from the ARR book ([`super::retention`]).
const RETENTION_METRICS: &[&str] = &["nrr", "grr", "logo_retention", "expansion_revenue"];

/// A metric's value with nothing to count: `None` for a rate (no
/// denominator), else 0.
fn empty_value(metric: &str) -> Option<f64> {
    if RATE_METRICS.contains(&metric) {
        None
    } else {
        Some(0.0)
    }
}

fn retention(
    pb: &Playbook,
    history: &History<'_>,
    window: Window,
    as_of: Timestamp,
    grouping: Grouping<'_>,
) -> Result<BTreeMap<String, Option<f64>>, MetricsError> {
    let funnel = funnel_ids(pb);
    let customer = funnel
        .iter()
        .position(|f| f == "customer")
        .or_else(|| funnel.len().checked_sub(1))
        .ok_or(MetricsError::NoFunnel)?;
    // Funnel stages at or after the customer stage (a handful: a scan is
    // cheaper than hashing).
    let customer_stages: Vec<&str> = funnel[customer..]
        .iter()
        .map(String::as_str)
        .filter(|id| pb.stage(id).is_some_and(|s| s.kind == StageKind::Funnel))
        .collect();
    let end = window
        .to
        .min(Timestamp::from_millis(as_of.millis().saturating_add(1)));
    // Only a subject that entered a customer stage before the window can
    // be a customer at its start: with an index, only they are followed.
    let candidates: Option<FxHashSet<Subject>> = match history.index {
        Some(ix) => {
            let since = Timestamp::from_millis(i64::MIN / 4);
            let before = Window::new(since, window.from).ok();
            Some(
                before
                    .into_iter()
                    .flat_map(|b| {
                        customer_stages
                            .iter()
                            .flat_map(move |s| ix.entries_within(s, b, as_of))
                    })
                    .map(|e| e.subject())
                    .collect(),
            )
        }
        None => None,
    };
    if candidates.as_ref().is_some_and(FxHashSet::is_empty) {
        return Ok(BTreeMap::new());
    }
    let followed = |s: &Subject| candidates.as_ref().is_none_or(|c| c.contains(s));
    let transitions = history.transitions;
    // Per subject, its latest transition (by at, seq) strictly before the
    // window start and strictly before its end: one pass, no per-subject
    // lists (this runs on every scorecard over the whole history).
    // The slots keep (at, seq) and the stage entered, all that is read of
    // the transition.
    type Latest = Option<((Timestamp, i64), Sym)>;
    let later = |slot: Latest, key: (Timestamp, i64)| slot.is_none_or(|(k, _)| key > k);
    // Sized up front: growing a map of every subject rehashes it often.
    let room = candidates
        .as_ref()
        .map_or(transitions.len() / 2, FxHashSet::len);
    let mut latest: FxHashMap<Subject, (Latest, Latest)> =
        FxHashMap::with_capacity_and_hasher(room, Default::default());
    // By column: the time and subject decide for most transitions, and
    // only a followed subject's read the rest.
    let ats = transitions.ats();
    for (i, &at) in ats.iter().enumerate() {
        let (before_start, before_end) = (at < window.from, at < end);
        if at > as_of || (!before_start && !before_end) {
            continue;
        }
        let subject = transitions.subject(i);
        if !followed(&subject) {
            continue;
        }
        let (key, to) = (transitions.key(i), transitions.to(i));
        let e = latest.entry(subject).or_default();
        if before_start && later(e.0, key) {
            e.0 = Some((key, to));
        }
        if before_end && later(e.1, key) {
            e.1 = Some((key, to));
        }
    }
    let is_customer = |t: Latest| t.is_some_and(|(_, to)| customer_stages.contains(&to.as_str()));
    // Counts are whole numbers, so the sums do not depend on map order.
    let mut counts: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for (s, (at_start, at_end)) in latest {
        if !is_customer(at_start) {
            continue;
        }
        let e = counts.entry(grouping.subject(s)).or_default();
        e.0 += 1.0;
        if is_customer(at_end) {
            e.1 += 1.0;
        }
    }
    Ok(counts
        .into_iter()
        .map(|(g, (base, kept))| (g, ratio(kept, base)))
        .collect())
}

/// The scorecard: every playbook goal paced over its current period (the
/// calendar period containing `as_of` in the company timezone), measured
/// without grouping, or for a goal with a `segment` / `persona` filter, on
/// the group of that id in `segment_of` / `persona_of`.
pub fn scorecard(
    pb: &Playbook,
    history: &History<'_>,
    as_of: Timestamp,
    segment_of: Grouping<'_>,
    persona_of: Grouping<'_>,
) -> Result<Vec<Pacing>, MetricsError> {
    let mut lines = Vec::new();
    for goal in &pb.goals {
        let window = super::period_window(goal.period, as_of, &pb.company.timezone)?;
        let (grouping, key) = match (&goal.segment, &goal.persona) {
            (Some(s), _) => (segment_of, s.clone()),
            (None, Some(p)) => (persona_of, p.clone()),
            (None, None) => (Grouping::All, super::ALL.to_string()),
        };
        let actuals = metric_actuals(pb, history, &goal.metric, window, as_of, grouping)?;
        let actual = match actuals.get(&key) {
            Some(v) => *v,
            None if RATE_METRICS.contains(&goal.metric.as_str()) => None,
            None => Some(0.0),
        };
        lines.push(pace(goal, window, as_of, actual));
    }
    Ok(lines)
}

/// The leading indicators of the seeds (DESIGN §5), in scorecard order.
pub const LEADING_INDICATORS: &[&str] = &[
    "web_visits",
    "email_opens",
    "paid_clicks",
    "mqls",
    "sals",
    "calls",
    "emails_sent",
    "meetings",
    "opportunities",
    "pipeline_created",
    "revenue_won",
    "win_rate",
    "retention",
    "nrr",
    "grr",
    "logo_retention",
    "expansion_revenue",
];

/// One leading indicator over a period, with pacing when a playbook goal
/// (without persona/segment filter) tracks the same metric and period.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Indicator {
    /// Metric name.
    pub metric: String,
    /// What it counts (from [`METRICS`]).
    pub description: String,
    /// The period's window.
    pub window: Window,
    /// Actual to date (`None`: a rate with no denominator yet).
    pub actual: Option<f64>,
    /// Pacing against the matching goal, if any.
    pub pacing: Option<Pacing>,
}

/// Every leading indicator ([`LEADING_INDICATORS`]) over the calendar
/// `period` containing `as_of` (company timezone), without grouping.
pub fn leading_indicators(
    pb: &Playbook,
    history: &History<'_>,
    period: Period,
    as_of: Timestamp,
) -> Result<Vec<Indicator>, MetricsError> {
    let window = super::period_window(period, as_of, &pb.company.timezone)?;
    let mut out = Vec::new();
    // Stage metrics need their stage in the playbook; the others are
    // skipped.
    let shown: Vec<&str> = LEADING_INDICATORS
        .iter()
        .copied()
        .filter(|m| !matches!(metric_stage(pb, m), Some(Err(_))))
        .collect();
    // The counts share one pass over each table (`actuals_over`), the
    // retention metrics one book (`retention::grouped_all`).
    let plain: Vec<&str> = shown
        .iter()
        .copied()
        .filter(|m| !RETENTION_METRICS.contains(m))
        .collect();
    let mut values = actuals_over(pb, history, &plain, &[window], as_of).into_iter();
    let mut book: Option<BTreeMap<String, super::retention::Retention>> = None;
    for metric in shown {
        let actual = if RETENTION_METRICS.contains(&metric) {
            let all = book.get_or_insert_with(|| {
                super::retention::grouped_all(history, window, as_of, Grouping::All)
            });
            all.get(super::ALL)
                .and_then(|r| super::retention::metric_value(r, metric))
                .unwrap_or_else(|| empty_value(metric))
        } else {
            // `plain` lists the non-retention metrics in this order.
            match values.next() {
                Some(v) => v?.first().copied().flatten(),
                None => None,
            }
        };
        let goal = pb.goals.iter().find(|g| {
            g.metric == metric && g.period == period && g.persona.is_none() && g.segment.is_none()
        });
        out.push(Indicator {
            metric: metric.to_string(),
            description: METRICS
                .iter()
                .find(|(m, _)| *m == metric)
                .map(|(_, d)| d.to_string())
                .unwrap_or_default(),
            window,
            actual,
            pacing: goal.map(|g| pace(g, window, as_of, actual)),
        });
    }
    Ok(out)
}
