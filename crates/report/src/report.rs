//! The weekly report: what both teams read before the joint meeting
//! (DESIGN §7). Every number comes from the same core function the CLI's
//! metric command calls, with the CLI's parameters (named on each field).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;
use tandem_core::domain::Campaign;
use tandem_core::metrics::gaps::{alignment_gaps, DEFAULT_THRESHOLD};
use tandem_core::metrics::index::HistoryIndex;
use tandem_core::metrics::scorecard::{actuals_over, scorecard, Pacing, RATE_METRICS};
use tandem_core::metrics::waterfall::flow_counts;
use tandem_core::metrics::{period_window, previous_periods, ratio, Grouping, History, Window};
use tandem_core::playbook::{Period, Playbook};
use tandem_core::sla::{
    compliance, compliance_by_owner, handoffs_entered, marketing_sla, sales_terms, stalled_summary,
    ClockStatus, Handoff, SlaError,
};
use tandem_core::Timestamp;
use tandem_store::query::{
    goal_groups_of, history_indexed, KeptGroups, PeopleGroups, UnknownDimension,
};
use tandem_store::repo::Snapshot;
use tandem_store::warm::{self, Need};
use tandem_store::weekly::{self, ContentAsset, ContentUse, Decision};
use tandem_store::Store;

use crate::{FeedbackNote, ReportError, Week};

/// Stalled leads listed in the report (the total is always given).
pub const STALLED_SHOWN: usize = 10;
/// Rows in the top sources / campaigns tables.
pub const TOP_N: usize = 5;
/// Days ahead a campaign must start within to be "upcoming".
pub const UPCOMING_DAYS: i64 = 14;
/// Leading indicators shown week over week (a subset of the scorecard's).
pub const WEEK_INDICATORS: &[&str] = &[
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
    "deals_won",
];
/// Money metrics (minor units).
pub const MONEY_METRICS: &[&str] = &["revenue_won", "pipeline_created"];

/// Everything the report and agenda read, loaded once.
#[derive(Clone, Debug, Default)]
pub struct Inputs<'s> {
    /// The history: owned when read for this report, borrowed when a
    /// server keeps one (cloning a large history costs more than the report).
    pub snap: Cow<'s, Snapshot>,
    pub decisions: Vec<Decision>,
    pub assets: Vec<ContentAsset>,
    pub uses: Vec<ContentUse>,
    pub feedback: Vec<FeedbackNote>,
    /// Group keys kept for this history and playbook (by a server that
    /// keeps the history), else computed per report.
    pub groups: Option<Arc<KeptGroups>>,
    /// The history's index (kept by a server beside the history, built
    /// from `snap`), else built per report.
    pub index: Option<Arc<HistoryIndex>>,
}

impl Inputs<'_> {
    /// The people of the history by dimension, through the kept keys.
    pub(crate) fn people_groups<'a>(&'a self, pb: &'a Playbook) -> PeopleGroups<'a> {
        let groups = PeopleGroups::new(pb, &self.snap);
        match &self.groups {
            Some(kept) => groups.kept(kept),
            None => groups,
        }
    }

    /// The kept history index, or one built now.
    pub(crate) fn index(&self) -> Cow<'_, HistoryIndex> {
        match &self.index {
            Some(kept) => Cow::Borrowed(kept),
            None => Cow::Owned(HistoryIndex::build(&self.snap.transitions)),
        }
    }

    /// The history metrics read, with `index` (from [`Inputs::index`]).
    pub(crate) fn history<'a>(&'a self, index: &'a HistoryIndex) -> History<'a> {
        history_indexed(&self.snap, index)
    }
}

/// Loads the stored history (packed into pages on SQLite, as the server
/// reads it: see `tandem_store::warm`) and the weekly loop's records.
pub async fn load(store: &Store) -> Result<Inputs<'static>, ReportError> {
    let snap = warm::snapshot_from(store, Need::ALL).await?;
    load_with(store, Cow::Owned(snap)).await
}

/// Loads the weekly loop's records around a history already read (the
/// dashboard keeps one between requests).
pub async fn load_with<'s>(
    store: &Store,
    snap: Cow<'s, Snapshot>,
) -> Result<Inputs<'s>, ReportError> {
    let mut c = store.conn().await?;
    Ok(Inputs {
        snap,
        decisions: weekly::decisions(&mut c).await?,
        assets: weekly::assets(&mut c).await?,
        uses: weekly::content_uses(&mut c).await?,
        feedback: crate::feedback::load(&mut c).await?,
        groups: None,
        index: None,
    })
}

/// Loads the store and builds the report of `week` (default: the last
/// complete week before `as_of`) as of `as_of`.
pub async fn gather(
    store: &Store,
    pb: &Playbook,
    week: Option<Week>,
    as_of: Timestamp,
) -> Result<WeeklyReport, ReportError> {
    let inputs = load(store).await?;
    build(pb, &inputs, week, as_of)
}

/// One funnel stage: entries this week, last week and the 4-week average.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FlowRow {
    pub stage: String,
    pub name: String,
    /// Entries in the report week (`tandem waterfall --from MON --to NEXT_MON` `flow`).
    pub this_week: u64,
    /// Entries in the week before.
    pub last_week: u64,
    /// Mean entries over the 4 weeks before the report week.
    pub avg4: f64,
    /// This week's entries over the previous stage's entries.
    pub ratio: Option<f64>,
    /// Left to an off-ramp from this stage in the week.
    pub leaked: u64,
    /// Bar lengths for the chart, 0..=1 of the largest value.
    pub bar_this: f64,
    pub bar_avg: f64,
}

/// One leading indicator, this week and last.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct IndicatorRow {
    pub metric: String,
    pub description: String,
    /// `money` (minor units), `rate` (0..1) or `count`.
    pub unit: &'static str,
    pub this_week: Option<f64>,
    pub last_week: Option<f64>,
}

/// One goal paced over its period (`tandem scorecard`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GoalRow {
    pub goal: String,
    pub metric: String,
    pub period: String,
    pub unit: &'static str,
    pub actual: Option<f64>,
    pub target: f64,
    pub expected_to_date: f64,
    pub pace: Option<f64>,
    pub projected: Option<f64>,
    /// `ahead`, `on_track` or `behind`.
    pub status: String,
    pub celebrate: bool,
}

/// One SLA breach (sales side).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Breach {
    pub person: String,
    pub entered: String,
    /// Business hours past the first-response deadline, if that was missed.
    pub overdue_hours: Option<f64>,
    /// Attempts missing within the attempts window.
    pub attempts_short: i64,
}

/// Sales compliance of one owner, with their breaches.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OwnerSla {
    pub owner: String,
    pub handoffs: i64,
    pub open: i64,
    pub met: i64,
    pub breached: i64,
    pub compliance_pct: Option<f64>,
    pub breaches: Vec<Breach>,
}

/// Marketing's side of the SLA in the week.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MarketingSide {
    pub mqls: i64,
    pub mql_target: f64,
    pub volume_status: String,
    pub sals: i64,
    pub pending: i64,
    pub sal_rate: Option<f64>,
    pub sal_rate_min: f64,
    pub sal_rate_status: Option<String>,
}

/// Both sides of the SLA for handoffs entered in the week
/// (`tandem sla --week W --as-of AS_OF`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SlaSection {
    pub stage: String,
    pub first_response_hours: f64,
    pub attempts: i64,
    pub attempts_within_days: f64,
    pub handoffs: i64,
    pub open: i64,
    pub met: i64,
    pub breached: i64,
    pub stopped: i64,
    pub compliance_pct: Option<f64>,
    pub by_owner: Vec<OwnerSla>,
    pub marketing: Option<MarketingSide>,
}

/// A lead past its stage's `max_days` (`tandem stalled`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StalledRow {
    pub person: String,
    pub owner: String,
    pub stage: String,
    pub days_in_stage: f64,
    pub days_over: f64,
}

/// A group's won revenue (`tandem gaps --by source|campaign`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RevenueRow {
    pub group: String,
    pub revenue_won: i64,
    pub deals_won: u64,
    pub win_rate: Option<f64>,
    pub mqls: u64,
}

/// A campaign starting soon, with its expected MQLs.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct UpcomingCampaign {
    pub id: String,
    pub name: String,
    pub channel: String,
    pub starts: String,
    pub ends: String,
    pub owner: String,
    pub audience: String,
    pub budget: Option<i64>,
    /// The channel's historical MQLs per 1,000.00 (major units) of spend.
    pub mqls_per_1000: Option<f64>,
    /// `budget × mqls_per_unit`; `None` without history or budget.
    pub expected_mqls: Option<f64>,
}

/// One content asset with its use.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AssetRow {
    pub asset: String,
    pub title: String,
    pub persona: String,
    pub stage: String,
    pub uses_week: u64,
    pub uses_total: u64,
}

/// One group of the alignment gaps (`tandem gaps --by segment`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GapRow {
    pub group: String,
    pub mql_share: f64,
    pub revenue_share: f64,
    pub gap: f64,
    pub flagged: bool,
}

/// The weekly report.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WeeklyReport {
    pub company: String,
    pub currency: String,
    pub timezone: String,
    /// `2026-W47`.
    pub week: String,
    /// Monday of the week and the Monday after (local dates).
    pub week_from: String,
    pub week_to: String,
    pub week_window: Window,
    /// When the numbers were read (local, to the minute).
    pub as_of: String,
    pub as_of_ts: Timestamp,
    /// The quarter-to-date window of revenue, sources, campaigns and gaps.
    pub quarter_from: String,
    pub waterfall: Vec<FlowRow>,
    pub indicators: Vec<IndicatorRow>,
    pub goals: Vec<GoalRow>,
    pub sla: Option<SlaSection>,
    pub stalled_total: usize,
    /// Stalled leads per stage, in funnel order.
    pub stalled_by_stage: Vec<(String, usize)>,
    pub stalled: Vec<StalledRow>,
    pub top_sources: Vec<RevenueRow>,
    pub top_campaigns: Vec<RevenueRow>,
    pub successes: Vec<FeedbackNote>,
    pub obstacles: Vec<FeedbackNote>,
    pub upcoming: Vec<UpcomingCampaign>,
    pub content_requests: Vec<FeedbackNote>,
    pub top_assets: Vec<AssetRow>,
    pub gaps_by: String,
    pub gaps_flagged: Vec<String>,
    pub gaps: Vec<GapRow>,
    /// Goals hit, one line each.
    pub celebrations: Vec<String>,
}

/// `money`, `rate` or `count`.
pub fn unit_of(metric: &str) -> &'static str {
    if MONEY_METRICS.contains(&metric) {
        "money"
    } else if RATE_METRICS.contains(&metric) {
        "rate"
    } else {
        "count"
    }
}

/// Local date and time to the minute.
pub(crate) fn local(pb: &Playbook, t: Timestamp) -> String {
    t.to_jiff()
        .to_zoned_datetime(pb.company.timezone.clone())
        .strftime("%Y-%m-%d %H:%M")
        .to_string()
}

/// Local date.
pub(crate) fn local_date(pb: &Playbook, t: Timestamp) -> String {
    t.to_jiff()
        .to_zoned_datetime(pb.company.timezone.clone())
        .strftime("%Y-%m-%d")
        .to_string()
}

/// `external_id`, else email, else `#id`.
pub(crate) fn who(h: &Handoff) -> String {
    h.external_id
        .clone()
        .or_else(|| h.email.clone())
        .unwrap_or_else(|| format!("#{}", h.person_id))
}

fn status_name<T: Serialize>(s: &T) -> String {
    serde_json::to_value(s)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

pub(crate) fn goal_rows(pb: &Playbook, goals: &[Pacing]) -> Vec<GoalRow> {
    pb.goals
        .iter()
        .zip(goals)
        .map(|(g, p)| {
            let mut name = g.id.clone();
            if let Some(s) = &g.segment {
                name.push_str(&format!(" (segment {s})"));
            }
            if let Some(s) = &g.persona {
                name.push_str(&format!(" (persona {s})"));
            }
            GoalRow {
                goal: name,
                metric: p.metric.clone(),
                period: p.period.as_str().to_string(),
                unit: unit_of(&p.metric),
                actual: p.actual,
                target: p.target,
                expected_to_date: p.expected_to_date,
                pace: p.pace,
                projected: p.projected,
                status: status_name(&p.status),
                celebrate: p.celebrate,
            }
        })
        .collect()
}

/// The goals as `tandem scorecard --as-of AS_OF` computes them.
pub(crate) fn goals(
    pb: &Playbook,
    inputs: &Inputs<'_>,
    history: &History<'_>,
    as_of: Timestamp,
) -> Result<Vec<Pacing>, ReportError> {
    let (segments, personas) = goal_groups_of(pb, &inputs.people_groups(pb)).map_err(group_err)?;
    Ok(scorecard(
        pb,
        history,
        as_of,
        Grouping::Map(&segments),
        Grouping::Map(&personas),
    )?)
}

fn group_err(e: UnknownDimension) -> ReportError {
    ReportError::invalid("group", e.to_string())
}

/// Sales SLA per owner for handoffs entered in `window`, with breaches.
pub(crate) fn sla_section(
    pb: &Playbook,
    snap: &Snapshot,
    window: Window,
    week_label: Option<&str>,
    as_of: Timestamp,
) -> Result<Option<SlaSection>, ReportError> {
    let entered = handoffs_entered(
        pb,
        &snap.people,
        &snap.transitions,
        &snap.activities,
        window,
        as_of,
    );
    let handoffs: Vec<Handoff> = match entered {
        Ok(h) => h,
        Err(SlaError::NoSalesSla) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    // Checked by `handoffs_entered` above.
    let sales = sales_terms(pb)?;
    let overall = compliance(&handoffs);
    let by_owner = compliance_by_owner(&handoffs)
        .into_iter()
        .map(|o| {
            let breaches = handoffs
                .iter()
                .filter(|h| h.owner == o.owner && h.status == ClockStatus::Breached)
                .map(|h| Breach {
                    person: who(h),
                    entered: local(pb, h.entered_at),
                    overdue_hours: h.overdue_hours,
                    attempts_short: h.attempts_short,
                })
                .collect();
            OwnerSla {
                owner: o.owner.unwrap_or_else(|| "(none)".into()),
                handoffs: o.compliance.handoffs,
                open: o.compliance.open,
                met: o.compliance.met,
                breached: o.compliance.breached,
                compliance_pct: o.compliance.compliance_pct,
                breaches,
            }
        })
        .collect();
    let marketing = match week_label {
        None => None,
        Some(label) => match marketing_sla(pb, &snap.transitions, Some(window.from), as_of) {
            Ok(m) => m
                .weeks
                .iter()
                .find(|w| w.iso_week == label)
                .map(|w| MarketingSide {
                    mqls: w.mqls,
                    mql_target: w.mql_target,
                    volume_status: w.volume_status.as_str().to_string(),
                    sals: w.sals,
                    pending: w.pending,
                    sal_rate: w.sal_rate,
                    sal_rate_min: w.sal_rate_min,
                    sal_rate_status: w.sal_rate_status.map(|s| s.as_str().to_string()),
                }),
            Err(SlaError::NoMarketingSla) => None,
            Err(e) => return Err(e.into()),
        },
    };
    Ok(Some(SlaSection {
        stage: sales.stage.clone(),
        first_response_hours: sales.first_response_hours,
        attempts: sales.attempts,
        attempts_within_days: sales.attempts_within_days,
        handoffs: overall.handoffs,
        open: overall.open,
        met: overall.met,
        breached: overall.breached,
        stopped: overall.stopped,
        compliance_pct: overall.compliance_pct,
        by_owner,
        marketing,
    }))
}

fn revenue_rows(
    history: &History<'_>,
    groups: &PeopleGroups<'_>,
    by: &str,
    mql: &str,
    window: Window,
    as_of: Timestamp,
) -> Result<Vec<RevenueRow>, ReportError> {
    let groups = groups.by(by).map_err(group_err)?;
    let g = alignment_gaps(
        history,
        mql,
        window,
        as_of,
        Grouping::Map(&groups),
        DEFAULT_THRESHOLD,
    );
    let mut rows: Vec<RevenueRow> = g
        .rows
        .into_iter()
        .filter(|r| r.revenue_won > 0)
        .map(|r| RevenueRow {
            group: r.group,
            revenue_won: r.revenue_won,
            deals_won: r.deals_won,
            win_rate: r.win_rate,
            mqls: r.mqls,
        })
        .collect();
    rows.sort_by(|a, b| {
        b.revenue_won
            .cmp(&a.revenue_won)
            .then_with(|| a.group.cmp(&b.group))
    });
    rows.truncate(TOP_N);
    Ok(rows)
}

/// The MQL stage: the sales SLA's handoff stage, else `mql`.
pub(crate) fn mql_stage(pb: &Playbook) -> String {
    pb.sla
        .sales
        .as_ref()
        .map(|s| s.stage.clone())
        .unwrap_or_else(|| "mql".into())
}

/// Campaigns starting in `[as_of, as_of + 14 days)`, with expected MQLs:
/// `budget × (MQL entries by as_of of people whose first touch is on the
/// channel) ÷ (cost of the channel's campaigns started by as_of)`, shown as
/// MQLs per 1,000 of spend.
fn upcoming(
    pb: &Playbook,
    snap: &Snapshot,
    history: &History<'_>,
    groups: &PeopleGroups<'_>,
    as_of: Timestamp,
) -> Result<Vec<UpcomingCampaign>, ReportError> {
    let horizon = as_of.plus_days(UPCOMING_DAYS);
    let soon: Vec<&Campaign> = snap
        .campaigns
        .iter()
        .filter(|c| c.starts_at.is_some_and(|s| as_of <= s && s < horizon))
        .collect();
    if soon.is_empty() {
        return Ok(Vec::new());
    }
    let channels = groups.by("channel").map_err(group_err)?;
    let since = Timestamp::from_millis(i64::MIN / 4);
    let all = Window::new(since, Timestamp::from_millis(as_of.millis() + 1))?;
    let mqls = history.stage_entries(&mql_stage(pb), all, as_of, false, Grouping::Map(&channels));
    let mut spend: BTreeMap<&str, i64> = BTreeMap::new();
    for c in &snap.campaigns {
        if let (Some(ch), Some(s), Some(cost)) = (&c.channel, c.starts_at, c.cost) {
            if s <= as_of {
                let s = spend.entry(ch.as_str()).or_default();
                *s = s.saturating_add(cost);
            }
        }
    }
    Ok(soon
        .into_iter()
        .map(|c| {
            let ch = c.channel.clone().unwrap_or_else(|| "(none)".into());
            let per_unit = match (mqls.get(&ch), spend.get(ch.as_str())) {
                // Spend is in minor units: per 1,000 major units = per 100,000 minor.
                (Some(m), Some(s)) if *s > 0 => Some(*m as f64 * 100_000.0 / *s as f64),
                _ => None,
            };
            let audience = [c.persona.as_deref(), c.segment.as_deref()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(", ");
            UpcomingCampaign {
                id: c.external_id.clone(),
                name: c.name.clone(),
                channel: ch,
                starts: c.starts_at.map(|t| local_date(pb, t)).unwrap_or_default(),
                ends: c.ends_at.map(|t| local_date(pb, t)).unwrap_or_default(),
                owner: c.owner.clone().unwrap_or_else(|| "-".into()),
                audience: if audience.is_empty() {
                    "all".into()
                } else {
                    audience
                },
                budget: c.budget,
                mqls_per_1000: per_unit,
                expected_mqls: per_unit
                    .zip(c.budget)
                    .map(|(r, b)| r * b as f64 / 100_000.0),
            }
        })
        .collect())
}

fn assets(inputs: &Inputs<'_>, week: Window, as_of: Timestamp) -> Vec<AssetRow> {
    let mut rows: Vec<AssetRow> = inputs
        .assets
        .iter()
        // Uses decide what is shown: an asset logged as used by as-of was
        // in use then, whenever its record was added.
        .map(|a| {
            let uses = inputs
                .uses
                .iter()
                .filter(|u| u.asset_id == a.id && u.at <= as_of);
            let (mut total, mut in_week) = (0, 0);
            for u in uses {
                total += 1;
                if week.contains(u.at) {
                    in_week += 1;
                }
            }
            AssetRow {
                asset: a.external_id.clone(),
                title: a.title.clone(),
                persona: a.persona.clone().unwrap_or_else(|| "-".into()),
                stage: a.stage.clone().unwrap_or_else(|| "-".into()),
                uses_week: in_week,
                uses_total: total,
            }
        })
        .filter(|r| r.uses_total > 0)
        .collect();
    rows.sort_by(|a, b| {
        (b.uses_week, b.uses_total)
            .cmp(&(a.uses_week, a.uses_total))
            .then_with(|| a.asset.cmp(&b.asset))
    });
    rows.truncate(TOP_N);
    rows
}

/// Feedback of `kind` known at `as_of`, oldest first.
pub(crate) fn feedback_of<'a>(
    inputs: &'a Inputs<'_>,
    kind: &'a str,
    as_of: Timestamp,
) -> impl Iterator<Item = &'a FeedbackNote> + 'a {
    let mut v: Vec<&FeedbackNote> = inputs
        .feedback
        .iter()
        .filter(move |f| f.kind == kind && f.created_at <= as_of)
        .collect();
    v.sort_by_key(|f| (f.created_at, f.id));
    v.into_iter()
}

/// Copies of `notes` with their local creation date filled in.
pub(crate) fn dated<'a>(
    pb: &'a Playbook,
    notes: impl Iterator<Item = &'a FeedbackNote> + 'a,
) -> impl Iterator<Item = FeedbackNote> + 'a {
    notes.map(move |f| FeedbackNote {
        created: local_date(pb, f.created_at),
        ..f.clone()
    })
}

fn flow_rows(
    pb: &Playbook,
    snap: &Snapshot,
    week: Window,
    comparison: &[Window],
    as_of: Timestamp,
) -> Vec<FlowRow> {
    // The waterfall's flow columns of the week and four before, without
    // replaying every cycle of the history (proptested equal to `waterfall`).
    let windows: Vec<Window> = std::iter::once(week)
        .chain(comparison.iter().copied())
        .collect();
    let counts = flow_counts(pb, &snap.transitions, &snap.deals, &windows, as_of, false);
    let Some((this, past)) = counts.as_deref().and_then(<[_]>::split_first) else {
        return Vec::new();
    };
    let mut rows: Vec<FlowRow> = pb
        .funnel()
        .enumerate()
        .map(|(j, st)| FlowRow {
            name: st.name.clone(),
            stage: st.id.clone(),
            this_week: this.flow[j],
            last_week: past.first().map_or(0, |p| p.flow[j]),
            avg4: if past.is_empty() {
                0.0
            } else {
                past.iter().map(|p| p.flow[j] as f64).sum::<f64>() / past.len() as f64
            },
            ratio: (j > 0)
                .then(|| ratio(this.flow[j] as f64, this.flow[j - 1] as f64))
                .flatten(),
            leaked: this.leaked[j],
            bar_this: 0.0,
            bar_avg: 0.0,
        })
        .collect();
    let max = rows
        .iter()
        .map(|r| (r.this_week as f64).max(r.avg4))
        .fold(0.0, f64::max);
    if max > 0.0 {
        for r in &mut rows {
            r.bar_this = r.this_week as f64 / max;
            r.bar_avg = r.avg4 / max;
        }
    }
    rows
}

/// Builds the report of `week` (default: the last complete week before
/// `as_of`) from loaded inputs, reading nothing after `as_of`.
pub fn build(
    pb: &Playbook,
    inputs: &Inputs<'_>,
    week: Option<Week>,
    as_of: Timestamp,
) -> Result<WeeklyReport, ReportError> {
    let tz = &pb.company.timezone;
    let week = match week {
        Some(w) => w,
        None => Week::last_complete(as_of, tz)?,
    };
    if week.window.from > as_of {
        return Err(ReportError::invalid(
            "week",
            format!(
                "{} has not started as of {}",
                week.label(),
                local(pb, as_of)
            ),
        ));
    }
    let snap = &inputs.snap;
    let index = inputs.index();
    let h = inputs.history(&index);
    let win = week.window;
    let comparison = previous_periods(Period::Week, win, 4, tz)?;
    let last = comparison[0];

    let waterfall = flow_rows(pb, snap, win, &comparison, as_of);

    let mut indicators = Vec::new();
    let values = actuals_over(pb, &h, WEEK_INDICATORS, &[win, last], as_of);
    for (&m, v) in WEEK_INDICATORS.iter().zip(values) {
        let v = match v {
            Ok(v) => v,
            // A stage metric whose stage this playbook lacks.
            Err(tandem_core::metrics::MetricsError::UnknownStage(_)) => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        indicators.push(IndicatorRow {
            metric: m.to_string(),
            description: tandem_core::playbook::METRICS
                .iter()
                .find(|(k, _)| *k == m)
                .map(|(_, d)| d.replace(" (minor units)", ""))
                .unwrap_or_default(),
            unit: unit_of(m),
            this_week: v.first().copied().flatten(),
            last_week: v.get(1).copied().flatten(),
        });
    }

    let paced = goals(pb, inputs, &h, as_of)?;
    let goals = goal_rows(pb, &paced);
    let celebrations = goals
        .iter()
        .filter(|g| g.celebrate)
        .map(|g| format!("{} hit its {} target", g.goal, g.period))
        .collect();

    let label = week.label();
    let sla = sla_section(pb, snap, win, Some(&label), as_of)?;

    let stalled = stalled_summary(pb, &snap.people, &snap.transitions, as_of, STALLED_SHOWN);
    let stalled_rows = stalled
        .leads
        .iter()
        .map(|l| StalledRow {
            person: l
                .external_id
                .clone()
                .unwrap_or_else(|| format!("#{}", l.person_id)),
            owner: l.owner.clone().unwrap_or_else(|| "-".into()),
            stage: l.stage.clone(),
            days_in_stage: l.days_in_stage,
            days_over: l.days_over,
        })
        .collect();

    let quarter = period_window(Period::Quarter, as_of, tz)?;
    let qtd = Window::new(quarter.from, Timestamp::from_millis(as_of.millis() + 1))?;
    let mql = mql_stage(pb);
    // Campaign and channel share one pass over the touches.
    let groups = inputs.people_groups(pb);
    let top_sources = revenue_rows(&h, &groups, "source", &mql, qtd, as_of)?;
    let top_campaigns = revenue_rows(&h, &groups, "campaign", &mql, qtd, as_of)?;

    let segments = groups.by("segment").map_err(group_err)?;
    let g = alignment_gaps(
        &h,
        &mql,
        qtd,
        as_of,
        Grouping::Map(&segments),
        DEFAULT_THRESHOLD,
    );

    let successes = dated(
        pb,
        feedback_of(inputs, "success", as_of).filter(|f| win.contains(f.created_at)),
    )
    .collect();
    let obstacles = dated(
        pb,
        feedback_of(inputs, "obstacle", as_of)
            .filter(|f| f.is_open() || win.contains(f.created_at)),
    )
    .collect();
    let content_requests = dated(
        pb,
        feedback_of(inputs, "content_request", as_of).filter(|f| f.is_open()),
    )
    .collect();

    Ok(WeeklyReport {
        company: pb.company.name.clone(),
        currency: pb.company.currency.to_string(),
        timezone: pb.company.timezone_name.clone(),
        week: label,
        week_from: local_date(pb, win.from),
        week_to: local_date(pb, win.to),
        week_window: win,
        as_of: local(pb, as_of),
        as_of_ts: as_of,
        quarter_from: local_date(pb, quarter.from),
        waterfall,
        indicators,
        goals,
        sla,
        stalled_total: stalled.total,
        stalled_by_stage: stalled.by_stage,
        stalled: stalled_rows,
        top_sources,
        top_campaigns,
        successes,
        obstacles,
        upcoming: upcoming(pb, snap, &h, &groups, as_of)?,
        content_requests,
        top_assets: assets(inputs, win, as_of),
        gaps_by: "segment".into(),
        gaps_flagged: g.flagged.clone(),
        gaps: g
            .rows
            .iter()
            .map(|r| GapRow {
                group: r.group.clone(),
                mql_share: r.mql_share,
                revenue_share: r.revenue_share,
                gap: r.gap,
                flagged: r.flagged,
            })
            .collect(),
        celebrations,
    })
}
