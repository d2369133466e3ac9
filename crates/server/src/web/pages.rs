//! The dashboard's pages. Each handler reads the stored history once, calls
//! the same core/store functions as the CLI command of the same name, and
//! renders numbers (and a chart with its table).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::header::{CONTENT_TYPE, LOCATION};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Form};
use serde::Deserialize;
use serde_json::{json, Value};
use tandem_core::attribution::journeys::{
    build_paths_from, By, Conversion, JourneyOptions, Level, TouchSteps,
};
use tandem_core::attribution::{attribute_table, Model};
use tandem_core::domain::{Person, Touch};
use tandem_core::lifecycle::LifecycleError;
use tandem_core::metrics::gaps::{alignment_gaps, DEFAULT_THRESHOLD};
use tandem_core::metrics::scorecard::{leading_indicators, scorecard, PaceStatus, RATE_METRICS};
use tandem_core::metrics::waterfall::WaterfallOptions;
use tandem_core::metrics::{funnel_ids, period_window, Grouping, Window, ALL};
use tandem_core::playbook::{Period, Playbook};
use tandem_core::scoring;
use tandem_core::sla::{
    marketing_sla, sales_terms, stalled as stalled_leads, waiting_handoffs, ClockStatus,
};
use tandem_core::time::DAY_MS;
use tandem_core::Sym;
use tandem_core::Timestamp;
use tandem_store::lifecycle::{self as engine, MoveError};
use tandem_store::numbers::{self, PlanParams};
use tandem_store::query::{self, KeptGroups};
use tandem_store::repo::{self, Snapshot};
use tandem_store::warm::Marks;

use super::cache::{kept_groups, kept_index, kept_replay, SnapshotCache};
use super::session::{is_fetch, WebUser};
use super::svg::{self, Series};
use super::{base, local, render, require, urlencode, with, WebError};
use crate::auth::Action;
use crate::{now, AppState};

/// Metrics in minor units of the company currency.
const MONEY_METRICS: &[&str] = &["revenue_won", "pipeline_created"];
/// Most leads the SLA inbox lists at once (most urgent first).
const INBOX_LIMIT: usize = 60;
/// Most rows of the stalled list.
const STALLED_LIMIT: usize = 200;

pub(super) async fn load(
    cache: &SnapshotCache,
    s: &AppState,
) -> Result<super::cache::View, WebError> {
    Ok(cache.get(&s.store).await?)
}

/// The history, its marks and the group keys kept for it ([`kept_groups`]).
async fn load_grouped(
    cache: &SnapshotCache,
    s: &AppState,
    pb: &Arc<Playbook>,
) -> Result<(super::cache::View, Marks, Arc<KeptGroups>), WebError> {
    let (snap, marks) = cache.get_marked(&s.store).await?;
    let kept = kept_groups(cache, &snap, marks, pb);
    Ok((snap, marks, kept))
}

pub(super) fn bad_period(e: query::PeriodError) -> WebError {
    WebError::bad(format!("{}: {e}", e.field()))
}

pub(super) fn as_of(pb: &Playbook, q: Option<&str>) -> Result<Timestamp, WebError> {
    query::as_of(pb, q.filter(|s| !s.is_empty()), now()).map_err(bad_period)
}

fn metrics_err(e: tandem_core::metrics::MetricsError) -> WebError {
    WebError::bad(e.to_string())
}

/// `1234567` → `1,234,567`.
pub(super) fn grouped(v: i64) -> String {
    let s = v.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    if v < 0 {
        format!("-{out}")
    } else {
        out
    }
}

/// Minor units as whole major units with the currency: `1,234 EUR`.
pub(super) fn money(pb: &Playbook, minor: f64) -> String {
    format!(
        "{} {}",
        grouped((minor / 100.0).round() as i64),
        pb.company.currency
    )
}

pub(super) fn pct(x: Option<f64>) -> String {
    x.filter(|v| v.is_finite())
        .map(|v| format!("{:.1}%", v * 100.0))
        .unwrap_or_else(|| "–".into())
}

fn fixed(x: Option<f64>, digits: usize) -> String {
    x.filter(|v| v.is_finite())
        .map(|v| format!("{v:.digits$}"))
        .unwrap_or_else(|| "–".into())
}

/// A metric value for people: money in major units, rates in percent,
/// counts grouped.
fn metric_value(pb: &Playbook, metric: &str, v: Option<f64>) -> String {
    match v {
        None => "–".into(),
        Some(v) if MONEY_METRICS.contains(&metric) => money(pb, v),
        Some(v) if RATE_METRICS.contains(&metric) => pct(Some(v)),
        Some(v) if v.fract() == 0.0 => grouped(v as i64),
        Some(v) => format!("{v:.2}"),
    }
}

/// The value exactly as `tandem scorecard` prints it (for machines: the
/// browser tests compare the two).
fn cli_value(metric: &str, v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(v) if MONEY_METRICS.contains(&metric) => format!("{:.2}", v / 100.0),
        Some(v) if RATE_METRICS.contains(&metric) => format!("{v:.4}"),
        Some(v) if v.fract() == 0.0 => format!("{v:.0}"),
        Some(v) => format!("{v:.2}"),
    }
}

fn status_of(s: PaceStatus) -> (&'static str, &'static str) {
    match s {
        PaceStatus::Ahead => ("ahead", "ahead"),
        PaceStatus::OnTrack => ("on_track", "on track"),
        PaceStatus::Behind => ("behind", "behind"),
    }
}

/// A table for the `table` macro.
pub(super) fn table(id: &str, headers: &[&str], num: &[bool], rows: Vec<Vec<String>>) -> Value {
    json!({"id": id, "headers": headers, "num": num, "rows": rows})
}

pub(super) fn section(
    id: &str,
    title: &str,
    note: Option<String>,
    chart: Option<String>,
    table: Value,
) -> Value {
    json!({"id": id, "title": title, "note": note, "chart": chart, "table": table})
}

pub(super) fn option(value: &str, label: &str) -> Value {
    json!({"value": value, "label": label})
}

pub(super) fn filter(name: &str, label: &str, value: &str, options: Vec<Value>) -> Value {
    json!({"name": name, "label": label, "value": value, "options": options})
}

fn text_filter(name: &str, label: &str, value: &str, placeholder: &str) -> Value {
    json!({"name": name, "label": label, "value": value, "options": [], "placeholder": placeholder})
}

#[derive(Debug, Default, Deserialize)]
pub struct AsOfQuery {
    as_of: Option<String>,
}

// ---------------------------------------------------------------- overview

/// `GET /`: the scorecard (every goal paced over its period), this week
/// against last week at the same point, and marketing's weekly MQLs.
#[tracing::instrument(skip_all)]
pub async fn overview(
    State(s): State<AppState>,
    u: WebUser,
    Extension(cache): Extension<SnapshotCache>,
    axum::extract::Query(q): axum::extract::Query<AsOfQuery>,
) -> Result<Response, WebError> {
    let pb_arc = s.playbook();
    let pb = &*pb_arc;
    let at = as_of(pb, q.as_of.as_deref())?;
    let (snap, marks, kept) = load_grouped(&cache, &s, &pb_arc).await?;
    let index = kept_index(&cache, &snap, marks, &pb_arc);
    let history = query::history_indexed(&snap, &index);
    let groups = query::PeopleGroups::new(pb, &snap).kept(&kept);
    let (segments, personas) =
        query::goal_groups_of(pb, &groups).map_err(|e| WebError::bad(e.to_string()))?;
    let paced = scorecard(
        pb,
        &history,
        at,
        Grouping::Map(&segments),
        Grouping::Map(&personas),
    )
    .map_err(metrics_err)?;
    let mut goals = Vec::new();
    let mut celebrations = Vec::new();
    for (goal, p) in pb.goals.iter().zip(&paced) {
        let m = p.metric.as_str();
        let mut name = goal.id.replace('_', " ");
        if let Some(x) = &goal.segment {
            name.push_str(&format!(" · {x}"));
        }
        if let Some(x) = &goal.persona {
            name.push_str(&format!(" · {x}"));
        }
        if p.celebrate {
            celebrations.push(name.clone());
        }
        let (status, status_label) = status_of(p.status);
        let actual = p.actual.unwrap_or(0.0).max(0.0);
        goals.push(json!({
            "id": goal.id,
            "name": name,
            "metric": m,
            "period": p.period.as_str(),
            "actual": metric_value(pb, m, p.actual),
            "target": metric_value(pb, m, Some(p.target)),
            "expected": metric_value(pb, m, Some(p.expected_to_date)),
            "projected": metric_value(pb, m, p.projected),
            "pace": fixed(p.pace, 2),
            "status": status,
            "status_label": status_label,
            "celebrate": p.celebrate,
            "actual_raw": cli_value(m, p.actual),
            "target_raw": cli_value(m, Some(p.target)),
            "meter_max": p.target.max(f64::MIN_POSITIVE),
            "meter_low": p.expected_to_date.min(p.target),
            "meter_value": actual.min(p.target.max(0.0)),
            "pct": pct(Some(actual / p.target.max(f64::MIN_POSITIVE))),
        }));
    }

    // This week against last week up to the same point of the week.
    let this = leading_indicators(pb, &history, Period::Week, at).map_err(metrics_err)?;
    let last_at = Timestamp::from_millis(at.millis() - 7 * DAY_MS);
    let last = leading_indicators(pb, &history, Period::Week, last_at).map_err(metrics_err)?;
    let mut rows = Vec::new();
    let (mut labels, mut now_v, mut then_v) = (Vec::new(), Vec::new(), Vec::new());
    for (a, b) in this.iter().zip(&last) {
        let m = a.metric.as_str();
        let change = match (a.actual, b.actual) {
            (Some(x), Some(y)) if y != 0.0 && !RATE_METRICS.contains(&m) => pct(Some(x / y - 1.0)),
            (Some(x), Some(y)) if RATE_METRICS.contains(&m) => {
                format!("{:+.1} pts", (x - y) * 100.0)
            }
            _ => "–".into(),
        };
        rows.push(vec![
            a.description.replace(" (minor units)", ""),
            metric_value(pb, m, a.actual),
            metric_value(pb, m, b.actual),
            change,
        ]);
        if !MONEY_METRICS.contains(&m) && !RATE_METRICS.contains(&m) {
            labels.push(m.replace('_', " "));
            now_v.push(a.actual.unwrap_or(0.0));
            then_v.push(b.actual.unwrap_or(0.0));
        }
    }
    let week_chart = svg::bars(
        "Activity this week and last week to the same point",
        &labels,
        &[
            Series {
                name: "this week".into(),
                values: now_v,
            },
            Series {
                name: "last week".into(),
                values: then_v,
            },
        ],
    );
    let mut sections = vec![section(
        "week",
        "This week vs last",
        Some(format!(
            "This week from {} to {}; last week up to the same point ({}).",
            this.first()
                .map(|i| local(pb, i.window.from))
                .unwrap_or_default(),
            local(pb, at),
            local(pb, last_at)
        )),
        Some(week_chart),
        table(
            "week-table",
            &["indicator", "this week", "last week", "change"],
            &[false, true, true, true],
            rows,
        ),
    )];

    // Marketing's side of the SLA: MQLs per week against the commitment.
    let since = Timestamp::from_millis(at.millis() - 12 * 7 * DAY_MS);
    if let Ok(m) = marketing_sla(pb, &snap.transitions, Some(since), at) {
        let labels: Vec<String> = m.weeks.iter().map(|w| w.iso_week.clone()).collect();
        let chart = svg::lines(
            "MQLs per week against the marketing SLA",
            &labels,
            &[
                Series {
                    name: "MQLs".into(),
                    values: m.weeks.iter().map(|w| w.mqls as f64).collect(),
                },
                Series {
                    name: "committed".into(),
                    values: m.weeks.iter().map(|w| w.mql_target).collect(),
                },
            ],
        );
        let rows = m
            .weeks
            .iter()
            .map(|w| {
                vec![
                    w.iso_week.clone(),
                    w.mqls.to_string(),
                    fixed(Some(w.mql_target), 0),
                    w.volume_status.as_str().to_string(),
                    w.sals.to_string(),
                    pct(w.sal_rate),
                    w.sal_rate_status.map(|s| s.as_str()).unwrap_or("–").into(),
                ]
            })
            .collect();
        sections.push(section(
            "mqls",
            "MQLs per week (marketing SLA)",
            Some(format!(
                "Volume compliance {}, SAL-rate compliance {} (weeks met / weeks over).",
                fixed(m.volume_compliance_pct, 1) + "%",
                fixed(m.sal_rate_compliance_pct, 1) + "%"
            )),
            Some(chart),
            table(
                "mql-table",
                &[
                    "week",
                    "MQLs",
                    "committed",
                    "volume",
                    "SALs",
                    "SAL rate",
                    "SAL rate status",
                ],
                &[false, true, true, false, true, true, false],
                rows,
            ),
        ));
    }
    render(
        "overview.html",
        with(
            base(&u, pb, "/", "Overview"),
            json!({
                "as_of": local(pb, at),
                "timezone": pb.company.timezone_name,
                "goals": goals,
                "celebrations": celebrations,
                "sections": sections,
            }),
        ),
    )
}

// --------------------------------------------------------------- waterfall

/// Filters of the waterfall page.
#[derive(Debug, Default, Deserialize)]
pub struct WaterfallQuery {
    period: Option<String>,
    from: Option<String>,
    to: Option<String>,
    segment: Option<String>,
    persona: Option<String>,
    source: Option<String>,
    owner: Option<String>,
    as_of: Option<String>,
}

pub(super) fn nonempty(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// Distinct non-empty values of a stored person field, sorted.
fn distinct(people: &[Person], f: impl Fn(&Person) -> Option<Sym>) -> Vec<&'static str> {
    // Inserted one by one: collecting into a set sorts all 100k values
    // first, when a column has only a handful of distinct ones.
    let mut set: BTreeSet<&str> = BTreeSet::new();
    for v in people.iter().filter_map(|p| f(p).map(|s| s.as_str())) {
        if !v.is_empty() {
            set.insert(v);
        }
    }
    set.into_iter().collect()
}

fn choices(all_label: &str, values: &[&str]) -> Vec<Value> {
    let mut out = vec![option("", all_label)];
    out.extend(values.iter().map(|v| option(v, v)));
    out
}

/// `GET /waterfall`: cohort and flow per funnel stage for the chosen period
/// and people, velocity between stages, and where leads leak out.
#[tracing::instrument(skip_all)]
pub async fn waterfall(
    State(s): State<AppState>,
    u: WebUser,
    Extension(cache): Extension<SnapshotCache>,
    axum::extract::Query(q): axum::extract::Query<WaterfallQuery>,
) -> Result<Response, WebError> {
    let pb_arc = s.playbook();
    let pb = &*pb_arc;
    let at = as_of(pb, q.as_of.as_deref())?;
    let (snap, marks, kept) = load_grouped(&cache, &s, &pb_arc).await?;
    let period = nonempty(&q.period).unwrap_or("all");
    let window = match (nonempty(&q.from), nonempty(&q.to), period) {
        (None, None, "all") => query::window(pb, &snap, None, None, at).map_err(bad_period)?,
        (None, None, p) => {
            let cal = Period::parse(p).ok_or_else(|| {
                WebError::bad(format!(
                    "period: unknown period `{p}`; use all, week, month, quarter or year"
                ))
            })?;
            period_window(cal, at, &pb.company.timezone).map_err(metrics_err)?
        }
        (from, to, _) => query::window(pb, &snap, from, to, at).map_err(bad_period)?,
    };

    // People matching every filter form the one group shown.
    let filters: Vec<(&str, &str)> = [
        ("segment", nonempty(&q.segment)),
        ("persona", nonempty(&q.persona)),
        ("source", nonempty(&q.source)),
        ("owner", nonempty(&q.owner)),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| (k, v)))
    .collect();
    let selected: Option<query::GroupKeys> = if filters.is_empty() {
        None
    } else {
        let mut keep: Option<HashSet<i64>> = None;
        for (dim, want) in &filters {
            let g = query::PeopleGroups::new(pb, &snap)
                .kept(&kept)
                .by(dim)
                .map_err(|e| WebError::bad(e.to_string()))?;
            let ids: HashSet<i64> = g.people_in(want).collect();
            keep = Some(match keep {
                None => ids,
                Some(k) => k.intersection(&ids).copied().collect(),
            });
        }
        Some(
            keep.unwrap_or_default()
                .into_iter()
                .map(|id| (id, "selected"))
                .collect(),
        )
    };
    let mut opts = WaterfallOptions::new(window, at);
    if let Some(m) = &selected {
        opts.grouping = Grouping::Map(m);
    }
    let replay = kept_replay(&cache, &snap, marks, &pb_arc, at);
    let w = replay
        .replay
        .waterfall(&snap.deals, &opts)
        .map_err(metrics_err)?;
    let want = if selected.is_some() { "selected" } else { ALL };
    let g = w.groups.iter().find(|g| g.group == want);

    let mut seg_values: BTreeSet<&str> = pb.segments.iter().map(|m| m.id.as_str()).collect();
    seg_values.extend(distinct(&snap.people, |p| p.segment));
    let mut persona_values: BTreeSet<&str> = pb.personas.iter().map(|m| m.id.as_str()).collect();
    persona_values.extend(distinct(&snap.people, |p| p.persona));
    let seg_values: Vec<&str> = seg_values.into_iter().collect();
    let persona_values: Vec<&str> = persona_values.into_iter().collect();
    let filter_form = vec![
        filter(
            "period",
            "Period",
            if nonempty(&q.from).is_some() || nonempty(&q.to).is_some() {
                ""
            } else {
                period
            },
            vec![
                option("all", "all history"),
                option("year", "this year"),
                option("quarter", "this quarter"),
                option("month", "this month"),
                option("week", "this week"),
            ],
        ),
        text_filter(
            "from",
            "From",
            nonempty(&q.from).unwrap_or(""),
            "YYYY-MM-DD",
        ),
        text_filter("to", "To", nonempty(&q.to).unwrap_or(""), "YYYY-MM-DD"),
        filter(
            "segment",
            "Segment",
            nonempty(&q.segment).unwrap_or(""),
            choices("all segments", &seg_values),
        ),
        filter(
            "persona",
            "Persona",
            nonempty(&q.persona).unwrap_or(""),
            choices("all personas", &persona_values),
        ),
        filter(
            "source",
            "Source",
            nonempty(&q.source).unwrap_or(""),
            choices("all sources", &distinct(&snap.people, |p| p.source)),
        ),
        filter(
            "owner",
            "Owner",
            nonempty(&q.owner).unwrap_or(""),
            choices("all owners", &distinct(&snap.people, |p| p.owner)),
        ),
    ];

    let who = if filters.is_empty() {
        "everyone".to_string()
    } else {
        filters
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut sections = Vec::new();
    let stages: Vec<&tandem_core::metrics::waterfall::StageRow> =
        g.map(|g| g.stages.iter().collect()).unwrap_or_default();
    let cohort_rows: Vec<_> = stages.iter().filter(|r| r.cohort.is_some()).collect();
    let labels: Vec<String> = cohort_rows.iter().map(|r| r.stage.clone()).collect();
    let values: Vec<f64> = cohort_rows
        .iter()
        .map(|r| r.cohort.unwrap_or(0) as f64)
        .collect();
    let funnel_chart = (!labels.is_empty()).then(|| {
        svg::funnel(
            &format!("Cohort of {} by stage reached", w.cohort_stage),
            &labels,
            &values,
        )
    });
    sections.push(section(
        "funnel",
        "Funnel",
        Some(format!(
            "{who}; window {} to {}; cohort: entered {} in the window ({} people), followed to as-of {}. Flow counts every entry in the window.",
            local(pb, window.from),
            local(pb, window.to),
            w.cohort_stage,
            g.map(|g| grouped(g.cohort_size as i64)).unwrap_or_else(|| "0".into()),
            local(pb, at),
        )),
        funnel_chart,
        table(
            "funnel-table",
            &["stage", "cohort", "conversion", "cumulative", "flow", "flow ratio", "leaked"],
            &[false, true, true, true, true, true, true],
            stages
                .iter()
                .map(|r| {
                    vec![
                        r.stage.clone(),
                        r.cohort.map(|c| grouped(c as i64)).unwrap_or_else(|| "–".into()),
                        pct(r.conversion),
                        pct(r.cumulative),
                        grouped(r.flow as i64),
                        pct(r.flow_ratio),
                        grouped(r.leaked as i64),
                    ]
                })
                .collect(),
        ),
    ));
    if let Some(g) = g {
        let vl: Vec<String> = g
            .velocity
            .iter()
            .map(|v| format!("{}→{}", v.from, v.to))
            .collect();
        let vv: Vec<f64> = g
            .velocity
            .iter()
            .map(|v| v.median_days.unwrap_or(0.0))
            .collect();
        sections.push(section(
            "velocity",
            "Velocity",
            Some(
                "Median days from entering one stage to entering the next, over the cohort.".into(),
            ),
            (!vl.is_empty()).then(|| {
                svg::bars(
                    "Median days between stages",
                    &vl,
                    &[Series {
                        name: "median days".into(),
                        values: vv,
                    }],
                )
            }),
            table(
                "velocity-table",
                &["from", "to", "people", "median days"],
                &[false, false, true, true],
                g.velocity
                    .iter()
                    .map(|v| {
                        vec![
                            v.from.clone(),
                            v.to.clone(),
                            grouped(v.n as i64),
                            fixed(v.median_days, 1),
                        ]
                    })
                    .collect(),
            ),
        ));
        let mut by_reason: BTreeMap<String, u64> = BTreeMap::new();
        let mut rows = Vec::new();
        for l in &g.leakage {
            for e in &l.exits {
                *by_reason.entry(e.reason.clone()).or_default() += e.count;
                rows.push(vec![
                    l.stage.clone(),
                    e.to.clone(),
                    e.reason.clone(),
                    grouped(e.count as i64),
                ]);
            }
        }
        for e in &g.lost.by_reason {
            *by_reason.entry(e.reason.clone()).or_default() += e.count;
            rows.push(vec![
                "deal".into(),
                e.to.clone(),
                e.reason.clone(),
                grouped(e.count as i64),
            ]);
        }
        let rl: Vec<String> = by_reason.keys().cloned().collect();
        let rv: Vec<f64> = by_reason.values().map(|&c| c as f64).collect();
        sections.push(section(
            "leakage",
            "Leakage by reason",
            Some(format!(
                "Exits to off-ramps within the window, and deals lost ({} lost, {}).",
                grouped(g.lost.count as i64),
                money(pb, g.lost.amount_minor as f64)
            )),
            (!rl.is_empty()).then(|| {
                svg::bars(
                    "Exits by reason",
                    &rl,
                    &[Series {
                        name: "exits".into(),
                        values: rv,
                    }],
                )
            }),
            table(
                "leakage-table",
                &["from", "to", "reason", "count"],
                &[false, false, false, true],
                rows,
            ),
        ));
    }
    render(
        "sections.html",
        with(
            base(&u, pb, "/waterfall", "Waterfall"),
            json!({"filters": filter_form, "sections": sections}),
        ),
    )
}

// --------------------------------------------------------------- SLA inbox

#[derive(Debug, Default, Deserialize)]
pub struct SlaQuery {
    owner: Option<String>,
    as_of: Option<String>,
    moved: Option<String>,
    to: Option<String>,
}

/// Reasons sales can give when sending a lead back: those that apply to the
/// disqualify or the recycle off-ramp.
fn reject_reasons(pb: &Playbook) -> Vec<Value> {
    let dq = pb.disqualify_stage().map(|s| s.id.clone());
    let rc = pb.recycle_stage().map(|s| s.id.clone());
    pb.reasons
        .iter()
        .filter_map(|r| {
            let reject = dq.as_ref().is_some_and(|d| r.applies_to.contains(d));
            let recycle = rc.as_ref().is_some_and(|d| r.applies_to.contains(d));
            let how = match (reject, recycle) {
                (true, true) => "reject or recycle",
                (true, false) => "reject",
                (false, true) => "recycle",
                (false, false) => return None,
            };
            Some(json!({"code": r.code, "label": format!("{} ({how})", r.name)}))
        })
        .collect()
}

fn hours(h: f64) -> String {
    if h >= 24.0 {
        format!("{h:.0}h")
    } else {
        format!("{h:.1}h")
    }
}

/// `GET /sla`: MQLs waiting for sales to accept, most urgent first, with
/// the first-response clock, scores and their explanation, and (for roles
/// that move leads) accept / reject / recycle.
#[tracing::instrument(skip_all)]
pub async fn sla(
    State(s): State<AppState>,
    u: WebUser,
    Extension(cache): Extension<SnapshotCache>,
    axum::extract::Query(q): axum::extract::Query<SlaQuery>,
) -> Result<Response, WebError> {
    let pb = s.playbook();
    let pb = &*pb;
    let at = as_of(pb, q.as_of.as_deref())?;
    let snap = load(&cache, &s).await?;
    let terms = sales_terms(pb).map_err(|e| WebError::bad(e.to_string()))?;
    let handoffs = waiting_handoffs(pb, &snap.people, &snap.transitions, &snap.activities, at)
        .map_err(|e| WebError::bad(e.to_string()))?;
    let owner = nonempty(&q.owner);
    let mut waiting: Vec<_> = handoffs
        .iter()
        .filter(|h| owner.is_none_or(|o| h.owner.as_deref() == Some(o)))
        .collect();
    waiting.sort_by_key(|h| (h.deadline, h.person_id));
    let overdue = waiting
        .iter()
        .filter(|h| h.response == ClockStatus::Breached)
        .count();
    let total = waiting.len();
    waiting.truncate(INBOX_LIMIT);

    let ids: HashSet<i64> = waiting.iter().map(|h| h.person_id).collect();
    let people: HashMap<i64, &Person> = snap
        .people
        .iter()
        .filter(|p| ids.contains(&p.id))
        .map(|p| (p.id, p))
        .collect();
    let accounts: HashMap<i64, &tandem_core::domain::Account> =
        snap.accounts.iter().map(|a| (a.id, a)).collect();
    let mut touches: HashMap<i64, Vec<Touch>> = HashMap::new();
    for t in snap.touches.of_people(|p| ids.contains(&p)) {
        touches.entry(t.person_id).or_default().push(t.to_touch());
    }
    let rows: Vec<Value> = waiting
        .iter()
        .map(|h| {
            let person = h
                .external_id
                .clone()
                .unwrap_or_else(|| format!("#{}", h.person_id));
            let explained = people.get(&h.person_id).map(|p| {
                let account = p.account_id.and_then(|id| accounts.get(&id).copied());
                let ts = touches.get(&h.person_id).map(Vec::as_slice).unwrap_or(&[]);
                scoring::explain(pb, p, account, ts, at)
            });
            let (clock, clock_label) = match (h.response, h.hours_left, h.overdue_hours) {
                (ClockStatus::Open, Some(left), _) => ("open", format!("{} left", hours(left))),
                (ClockStatus::Breached, _, Some(over)) => {
                    ("breached", format!("overdue {}", hours(over)))
                }
                (ClockStatus::Met, _, _) => ("met", "responded in time".to_string()),
                (c, _, _) => (c.as_str(), c.as_str().to_string()),
            };
            row_json(pb, h, &person, explained.as_ref(), clock, &clock_label)
        })
        .collect();
    let mut owners = vec![option("", "all owners")];
    let owner_set: BTreeSet<&str> = handoffs.iter().filter_map(|h| h.owner.as_deref()).collect();
    owners.extend(owner_set.iter().map(|o| option(o, o)));
    let flash = nonempty(&q.moved).map(|m| {
        json!({"kind": "ok", "text": format!("{m} moved to {}.", nonempty(&q.to).unwrap_or("the next stage"))})
    });
    render(
        "sla.html",
        with(
            base(&u, pb, "/sla", "SLA inbox"),
            json!({
                "intro": format!(
                    "Leads in {} wait for sales: first response within {} business hours ({}, {}), {} attempts within {} days. As of {}.",
                    terms.stage,
                    terms.first_response_hours,
                    pb.company.timezone_name,
                    "working hours and holidays of the playbook",
                    terms.attempts,
                    terms.attempts_within_days,
                    local(pb, at)
                ),
                "owners": owners,
                "owner": owner.unwrap_or(""),
                "counts": format!(
                    "{} waiting, {} overdue{}",
                    grouped(total as i64),
                    grouped(overdue as i64),
                    if total > INBOX_LIMIT { format!("; the {INBOX_LIMIT} most urgent are shown") } else { String::new() }
                ),
                "rows": rows,
                "reasons": reject_reasons(pb),
                "flash": flash,
            }),
        ),
    )
}

fn row_json(
    pb: &Playbook,
    h: &tandem_core::sla::Handoff,
    person: &str,
    explained: Option<&scoring::Explained>,
    clock: &str,
    clock_label: &str,
) -> Value {
    let fit_rules: Vec<Value> = explained
        .map(|e| {
            e.fit
                .iter()
                .filter(|c| c.value != 0.0)
                .map(|c| json!({"rule": c.rule, "value": format!("{:+.0}", c.value)}))
                .collect()
        })
        .unwrap_or_default();
    let engagement_rules: Vec<Value> = explained
        .map(|e| {
            e.engagement
                .iter()
                .map(|c| {
                    json!({
                        "rule": c.rule,
                        "at": c.at.map(|t| local(pb, t)).unwrap_or_default(),
                        "value": format!("{:.1}", c.value),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    json!({
        "key": urlencode(person).replace('%', "_"),
        "person": person,
        "person_url": urlencode(person),
        "email": h.email,
        "owner": h.owner.clone().unwrap_or_else(|| "nobody".into()),
        "entered": local(pb, h.entered_at),
        "deadline": local(pb, h.deadline),
        "clock": clock,
        "clock_label": clock_label,
        "fit": explained.map(|e| format!("{:.0}", e.scores.fit)).unwrap_or_else(|| "–".into()),
        "grade": explained.and_then(|e| e.scores.grade.clone()),
        "engagement": explained.map(|e| format!("{:.1}", e.scores.engagement)).unwrap_or_else(|| "–".into()),
        "fit_rules": fit_rules,
        "engagement_rules": engagement_rules,
    })
}

/// The form of one move from the inbox.
#[derive(Debug, Deserialize)]
pub struct MoveForm {
    csrf: String,
    action: String,
    reason: Option<String>,
    note: Option<String>,
    owner: Option<String>,
}

fn fragment(status: StatusCode, html: String) -> Response {
    (status, [(CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response()
}

/// `POST /sla/{external_id}`: accept, reject or recycle one lead through
/// the store's `move_person_to` (as `POST /api/v1/people/{id}/accept|reject`).
/// From the page's script it answers with the lead's new card (or a 422
/// message); without script it redirects back to the inbox.
#[tracing::instrument(skip_all)]
pub async fn sla_move(
    State(s): State<AppState>,
    u: WebUser,
    headers: HeaderMap,
    Path(ext): Path<String>,
    Form(f): Form<MoveForm>,
) -> Result<Response, WebError> {
    if !u.csrf_ok(&f.csrf) {
        return Err(WebError::new(
            StatusCode::FORBIDDEN,
            "The form expired; reload the page and try again.",
        ));
    }
    require(&u, Action::MoveLeads, "move leads")?;
    let fetch = is_fetch(&headers);
    let pb = s.playbook();
    let pb = &*pb;
    let reason = f.reason.as_deref().map(str::trim).filter(|r| !r.is_empty());
    let note = f.note.as_deref().map(str::trim).filter(|r| !r.is_empty());
    let target = match f.action.as_str() {
        "accept" => engine::Target::Accept,
        "reject" => engine::Target::Reject { recycle: false },
        "recycle" => engine::Target::Reject { recycle: true },
        other => {
            return Err(WebError::bad(format!(
                "action: unknown action `{other}`; use accept, reject or recycle"
            )))
        }
    };
    let refuse = |msg: String| -> Result<Response, WebError> {
        if fetch {
            let html = format!(
                r#"<p class="flash error" role="alert">{}</p>"#,
                svg::esc(&msg)
            );
            Ok(fragment(StatusCode::UNPROCESSABLE_ENTITY, html))
        } else {
            Err(WebError::new(StatusCode::UNPROCESSABLE_ENTITY, msg))
        }
    };
    if !matches!(target, engine::Target::Accept) && reason.is_none() {
        return refuse("Choose a reason to reject or recycle a lead.".into());
    }
    let mut tx = s.store.begin().await?;
    let Some(p) = repo::person_by_external(tx.conn(), &ext).await? else {
        return Err(WebError::new(
            StatusCode::NOT_FOUND,
            format!("No person `{ext}`."),
        ));
    };
    let r = engine::MoveRequest {
        target,
        at: now(),
        actor: &u.token.name,
        reason,
        note,
    };
    let moved = match engine::move_person_to(tx.conn(), pb, p.id, &r).await {
        Ok(m) => m,
        Err(MoveError::Rule(e)) => {
            drop(tx);
            let msg = match e {
                LifecycleError::ReasonDoesNotApply { .. } | LifecycleError::UnknownReason(_) => {
                    format!("{e}. Pick another reason.")
                }
                e => format!("{e}."),
            };
            return refuse(msg);
        }
        Err(MoveError::Store(e)) => return Err(e.into()),
    };
    tx.commit().await?;
    tracing::info!(person.id = p.id, stage.to = %moved.stage, "lead moved from the dashboard");
    let verb = match f.action.as_str() {
        "accept" => "Accepted",
        "reject" => "Rejected",
        _ => "Recycled",
    };
    if fetch {
        let h = json!({
            "key": urlencode(&ext).replace('%', "_"),
            "person": ext,
            "email": p.email(),
            "owner": p.owner.unwrap_or_else(|| "nobody".into()),
            "entered": "",
            "deadline": "",
            "clock": "done",
            "clock_label": moved.stage,
            "done": format!("{verb} by {}: now in {}.", u.token.name, moved.stage),
        });
        let html = super::ENV
            .get_template("sla_row.html")
            .and_then(|t| t.render(json!({"h": h, "can_move": false})))
            .map_err(|e| WebError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        return Ok(fragment(StatusCode::OK, html));
    }
    let mut to = format!(
        "/sla?moved={}&to={}",
        urlencode(&ext),
        urlencode(&moved.stage)
    );
    if let Some(o) = nonempty(&f.owner) {
        to.push_str(&format!("&owner={}", urlencode(o)));
    }
    Ok((StatusCode::SEE_OTHER, [(LOCATION, to)]).into_response())
}

// ----------------------------------------------------------------- stalled

#[derive(Debug, Default, Deserialize)]
pub struct OwnerQuery {
    owner: Option<String>,
    as_of: Option<String>,
}

/// `GET /stalled`: people in a stage longer than its `max_days`.
#[tracing::instrument(skip_all)]
pub async fn stalled(
    State(s): State<AppState>,
    u: WebUser,
    Extension(cache): Extension<SnapshotCache>,
    axum::extract::Query(q): axum::extract::Query<OwnerQuery>,
) -> Result<Response, WebError> {
    let pb = s.playbook();
    let pb = &*pb;
    let at = as_of(pb, q.as_of.as_deref())?;
    let snap = load(&cache, &s).await?;
    let all = stalled_leads(pb, &snap.people, &snap.transitions, at);
    let owner = nonempty(&q.owner);
    let owners: BTreeSet<&str> = all.iter().filter_map(|l| l.owner.as_deref()).collect();
    let leads: Vec<_> = all
        .iter()
        .filter(|l| owner.is_none_or(|o| l.owner.as_deref() == Some(o)))
        .collect();
    let mut by_stage: BTreeMap<usize, (String, u64)> = BTreeMap::new();
    let order = funnel_ids(pb);
    for l in &leads {
        let i = order
            .iter()
            .position(|s| *s == l.stage)
            .unwrap_or(usize::MAX);
        by_stage.entry(i).or_insert_with(|| (l.stage.clone(), 0)).1 += 1;
    }
    let labels: Vec<String> = by_stage.values().map(|(s, _)| s.clone()).collect();
    let values: Vec<f64> = by_stage.values().map(|(_, n)| *n as f64).collect();
    let rows: Vec<Vec<String>> = leads
        .iter()
        .take(STALLED_LIMIT)
        .map(|l| {
            vec![
                l.external_id
                    .clone()
                    .unwrap_or_else(|| format!("#{}", l.person_id)),
                l.email.clone().unwrap_or_else(|| "–".into()),
                l.owner.clone().unwrap_or_else(|| "–".into()),
                l.stage.clone(),
                local(pb, l.entered_at),
                fixed(Some(l.days_in_stage), 1),
                fixed(Some(l.max_days), 0),
                fixed(Some(l.days_over), 1),
            ]
        })
        .collect();
    let sections = vec![
        section(
            "by-stage",
            "Stalled by stage",
            Some(format!(
                "{} stalled leads as of {}{}.",
                grouped(leads.len() as i64),
                local(pb, at),
                if leads.len() > STALLED_LIMIT {
                    format!("; the {STALLED_LIMIT} oldest are listed")
                } else {
                    String::new()
                }
            )),
            (!labels.is_empty()).then(|| {
                svg::bars(
                    "Stalled leads by stage",
                    &labels,
                    &[Series {
                        name: "stalled".into(),
                        values: values.clone(),
                    }],
                )
            }),
            table(
                "stalled-by-stage",
                &["stage", "stalled"],
                &[false, true],
                labels
                    .iter()
                    .zip(&values)
                    .map(|(l, v)| vec![l.clone(), grouped(*v as i64)])
                    .collect(),
            ),
        ),
        json!({"id": "stalled", "title": "Oldest first", "table": {
            "id": "stalled-table",
            "headers": ["person", "email", "owner", "stage", "entered", "days in stage", "max days", "days over"],
            "num": [false, false, false, false, false, true, true, true],
            "rows": rows,
            "empty": "No stalled leads.",
        }}),
    ];
    let owner_opts = choices("all owners", &owners.into_iter().collect::<Vec<_>>());
    render(
        "sections.html",
        with(
            base(&u, pb, "/stalled", "Stalled leads"),
            json!({
                "filters": [filter("owner", "Owner", owner.unwrap_or(""), owner_opts)],
                "sections": sections,
            }),
        ),
    )
}

// ------------------------------------------------------------- attribution

#[derive(Debug, Default, Deserialize)]
pub struct AttributionQuery {
    conversion: Option<String>,
    by: Option<String>,
    as_of: Option<String>,
}

/// Most channels drawn in the chart (the table lists all).
const CHART_CHANNELS: usize = 10;

/// The touches of the history as journey steps ([`TouchSteps`]) for
/// `level` and `by`: kept with the warm history, so a page does not read
/// and sort every touch again; when only rows were appended since they were
/// kept, they are extended with the new touches, else built again.
fn kept_steps(
    cache: &SnapshotCache,
    snap: &Snapshot,
    marks: Marks,
    pb: &Arc<Playbook>,
    level: Level,
    by: By,
) -> Arc<TouchSteps> {
    let key = format!("touch-steps|{level:?}|{by:?}");
    let steps = match cache.recall_latest::<TouchSteps>(&key, pb) {
        Some((at, kept)) if at == marks => return kept,
        Some((at, kept)) if marks.appended_since(&at) => {
            let mut steps = (*kept).clone();
            steps.extend(pb, &snap.people, &snap.touches);
            steps
        }
        _ => TouchSteps::build(pb, &snap.people, &snap.touches, level, by),
    };
    let steps = Arc::new(steps);
    cache.keep(key, marks, pb.clone(), steps.clone());
    steps
}

/// `GET /attribution`: every rule-based model and Markov side by side.
#[tracing::instrument(skip_all)]
pub async fn attribution(
    State(s): State<AppState>,
    u: WebUser,
    Extension(cache): Extension<SnapshotCache>,
    axum::extract::Query(q): axum::extract::Query<AttributionQuery>,
) -> Result<Response, WebError> {
    let pb_arc = s.playbook();
    let pb = &*pb_arc;
    let at = as_of(pb, q.as_of.as_deref())?;
    let conv_name = nonempty(&q.conversion).unwrap_or("won");
    let conversion = if conv_name == "won" {
        Conversion::Won
    } else if pb.stages.iter().any(|s| s.id == conv_name) {
        Conversion::Stage(conv_name.to_string())
    } else {
        return Err(WebError::bad(format!(
            "conversion: unknown `{conv_name}`; use won or a stage id"
        )));
    };
    let (by, by_name) = match nonempty(&q.by).unwrap_or("channel") {
        "channel" => (By::Channel, "channel"),
        "campaign" => (By::Campaign, "campaign"),
        other => {
            return Err(WebError::bad(format!(
                "by: unknown `{other}`; use channel or campaign"
            )))
        }
    };
    let (snap, marks) = cache.get_marked(&s.store).await?;
    let level = tandem_core::attribution::journeys::Level::Person;
    let steps = kept_steps(&cache, &snap, marks, &pb_arc, level, by);
    let j = build_paths_from(
        &steps,
        &snap.people,
        &snap.deals,
        &snap.transitions,
        pb,
        &JourneyOptions {
            conversion,
            by,
            level,
            lookback_days: tandem_core::attribution::journeys::DEFAULT_LOOKBACK_DAYS,
            as_of: at,
        },
    );
    let models = [
        Model::FirstTouch,
        Model::LastTouch,
        Model::Linear,
        Model::TimeDecay {
            half_life_days: 7.0,
        },
        Model::UShaped,
        Model::WShaped,
        Model::Markov { order: 1 },
    ];
    let mut results = Vec::new();
    let mut notes = Vec::new();
    for m in models {
        match attribute_table(&j.paths, &m) {
            Ok(c) => results.push((m.name(), c)),
            Err(e) => notes.push(format!("{} left out: {e}", m.name())),
        }
    }
    let (total_conv, total_value) = j.paths.totals();
    let mut channels: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for (i, (_, credits)) in results.iter().enumerate() {
        for c in credits {
            let e = channels
                .entry(c.channel.clone())
                .or_insert_with(|| vec![(0.0, 0.0); results.len()]);
            e[i] = (c.conversions, c.value);
        }
    }
    // The chart shows the channels with the most linear credit.
    let linear = results
        .iter()
        .position(|(n, _)| *n == "linear")
        .unwrap_or(0);
    let mut ranked: Vec<&String> = channels.keys().collect();
    ranked.sort_by(|a, b| {
        let va = channels[*a].get(linear).map(|x| x.0).unwrap_or(0.0);
        let vb = channels[*b].get(linear).map(|x| x.0).unwrap_or(0.0);
        vb.total_cmp(&va).then(a.cmp(b))
    });
    let shown: Vec<String> = ranked
        .iter()
        .take(CHART_CHANNELS)
        .map(|c| (*c).clone())
        .collect();
    let series: Vec<Series> = results
        .iter()
        .enumerate()
        .map(|(i, (name, _))| Series {
            name: (*name).into(),
            values: shown.iter().map(|c| channels[c][i].0).collect(),
        })
        .collect();
    let chart = svg::bars("Conversions credited per channel by model", &shown, &series);
    let mut headers: Vec<String> = vec![by_name.into()];
    headers.extend(results.iter().map(|(n, _)| (*n).to_string()));
    let header_refs: Vec<&str> = headers.iter().map(String::as_str).collect();
    let mut num = vec![false];
    num.extend(results.iter().map(|_| true));
    let conv_rows = channels
        .iter()
        .map(|(ch, v)| {
            let mut r = vec![ch.clone()];
            r.extend(v.iter().map(|(c, _)| format!("{c:.2}")));
            r
        })
        .collect();
    let value_rows = channels
        .iter()
        .map(|(ch, v)| {
            let mut r = vec![ch.clone()];
            r.extend(v.iter().map(|(_, val)| money(pb, *val)));
            r
        })
        .collect();
    let mut note = format!(
        "{} paths, {:.0} conversions worth {}; conversion {}, lookback {} days, as of {}.",
        grouped(j.paths.len() as i64),
        total_conv,
        money(pb, total_value),
        conv_name,
        tandem_core::attribution::journeys::DEFAULT_LOOKBACK_DAYS,
        local(pb, at)
    );
    if j.untouched_conversions > 0.0 {
        note.push_str(&format!(
            " {:.0} conversions had no touch in the window and are not credited.",
            j.untouched_conversions
        ));
    }
    for n in &notes {
        note.push(' ');
        note.push_str(n);
    }
    let mut conv_opts = vec![option("won", "won deals")];
    conv_opts.extend(
        funnel_ids(pb)
            .iter()
            .map(|s| option(s, &format!("entered {s}"))),
    );
    render(
        "sections.html",
        with(
            base(&u, pb, "/attribution", "Attribution"),
            json!({
                "filters": [
                    filter("conversion", "Conversion", conv_name, conv_opts),
                    filter("by", "By", by_name, vec![option("channel", "channel"), option("campaign", "campaign")]),
                ],
                "sections": [
                    section("conversions", "Conversions by model", Some(note), Some(chart),
                        table("attribution-conversions", &header_refs, &num, conv_rows)),
                    section("value", "Value by model", None, None,
                        table("attribution-value", &header_refs, &num, value_rows)),
                ],
            }),
        ),
    )
}

// -------------------------------------------------------------------- plan

#[derive(Debug, Default, Deserialize)]
pub struct PlanQuery {
    revenue: Option<String>,
    as_of: Option<String>,
}

/// `GET /plan`: the reverse waterfall from the revenue target (the
/// quarter's `revenue_won` goal unless `revenue` is given), with historic
/// rates of the last year, against the current pipeline.
#[tracing::instrument(skip_all)]
pub async fn plan(
    State(s): State<AppState>,
    u: WebUser,
    Extension(cache): Extension<SnapshotCache>,
    axum::extract::Query(q): axum::extract::Query<PlanQuery>,
) -> Result<Response, WebError> {
    let pb = s.playbook();
    let pb = &*pb;
    let at = as_of(pb, q.as_of.as_deref())?;
    let currency = pb.company.currency;
    let goal = pb
        .goals
        .iter()
        .find(|g| g.metric == "revenue_won" && g.segment.is_none() && g.persona.is_none());
    let revenue = match nonempty(&q.revenue) {
        Some(r) => {
            tandem_core::Money::parse_major(r, currency)
                .map_err(|e| WebError::bad(format!("revenue: {e}")))?
                .minor
        }
        None => match goal {
            Some(g) => g.target.round() as i64,
            None => {
                return Err(WebError::bad(
                    "revenue: the playbook has no revenue_won goal; give a revenue target",
                ))
            }
        },
    };
    let snap = load(&cache, &s).await?;
    // Historic rates over the year before as-of.
    let window = Window::new(
        Timestamp::from_millis(at.millis() - 365 * DAY_MS),
        Timestamp::from_millis(at.millis() + 1),
    )
    .map_err(metrics_err)?;
    // The same plan as `tandem plan` and `GET /api/v1/metrics/plan`: the
    // funnel up to the won stage, historic rates, the mean won deal.
    let report = numbers::plan(
        pb,
        &snap,
        &PlanParams {
            revenue,
            deal_size: None,
            rates: None,
            stages: Vec::new(),
            by: None,
            window,
            as_of: at,
        },
    );
    let report = match report {
        Ok(r) => r,
        // No historic rate or no won deal yet: a note, not an error page.
        Err(e) if e.field == "rates" => numbers::PlanReport {
            stages: Vec::new(),
            rates: "historic",
            quarter_end: at,
            as_of: at,
            plans: vec![numbers::GroupPlan {
                group: ALL.to_string(),
                plan: None,
                error: Some(e.message),
            }],
        },
        Err(e) => return Err(WebError::bad(format!("{}: {}", e.field, e.message))),
    };
    let mut sections = Vec::new();
    for gp in &report.plans {
        let group = &gp.group;
        match (&gp.plan, &gp.error) {
            (Some(p), _) => {
                let labels: Vec<String> = p.stages.iter().map(|s| s.stage.clone()).collect();
                let chart = svg::bars(
                    "Needed against current pipeline per stage",
                    &labels,
                    &[
                        Series {
                            name: "needed".into(),
                            values: p.stages.iter().map(|s| s.needed).collect(),
                        },
                        Series {
                            name: "in stage now".into(),
                            values: p.stages.iter().map(|s| s.current.unwrap_or(0.0)).collect(),
                        },
                    ],
                );
                let rows = p
                    .stages
                    .iter()
                    .map(|s| {
                        vec![
                            s.stage.clone(),
                            pct(s.rate_to_next),
                            fixed(Some(s.needed), 1),
                            s.enter_by
                                .map(|t| local(pb, t))
                                .unwrap_or_else(|| "–".into()),
                            fixed(s.current, 0),
                            fixed(s.gap, 1),
                        ]
                    })
                    .collect();
                sections.push(section(
                    "plan",
                    if group == ALL { "Reverse waterfall" } else { group },
                    Some(format!(
                        "Revenue target {} at an average won deal of {} (historic rates over the year to {}); deadlines to close by the quarter's end {}. Gap = needed − in stage now.",
                        money(pb, p.revenue_target as f64),
                        money(pb, p.deal_size as f64),
                        local(pb, at),
                        local(pb, report.quarter_end)
                    )),
                    Some(chart),
                    table(
                        "plan-table",
                        &["stage", "rate to next", "needed", "enter by", "in stage now", "gap"],
                        &[false, true, true, false, true, true],
                        rows,
                    ),
                ));
            }
            (None, e) => sections.push(json!({"title": group, "note": format!("No plan: {}", e.as_deref().unwrap_or("no conversions to plan from"))})),
        }
    }
    render(
        "sections.html",
        with(
            base(&u, pb, "/plan", "Plan"),
            json!({
                "filters": [text_filter("revenue", &format!("Revenue target ({currency})"), nonempty(&q.revenue).unwrap_or(""), &format!("{:.0}", revenue as f64 / 100.0))],
                "sections": sections,
            }),
        ),
    )
}

// -------------------------------------------------------------------- gaps

#[derive(Debug, Default, Deserialize)]
pub struct GapsQuery {
    by: Option<String>,
    period: Option<String>,
    as_of: Option<String>,
}

/// `GET /gaps`: who marketing sends (share of MQLs) against who buys (share
/// of won revenue), per segment, persona, source or channel.
#[tracing::instrument(skip_all)]
pub async fn gaps(
    State(s): State<AppState>,
    u: WebUser,
    Extension(cache): Extension<SnapshotCache>,
    axum::extract::Query(q): axum::extract::Query<GapsQuery>,
) -> Result<Response, WebError> {
    let pb_arc = s.playbook();
    let pb = &*pb_arc;
    let at = as_of(pb, q.as_of.as_deref())?;
    let by = nonempty(&q.by).unwrap_or("segment");
    if !["segment", "persona", "source", "channel", "owner"].contains(&by) {
        return Err(WebError::bad(format!(
            "by: unknown `{by}`; use segment, persona, source, channel or owner"
        )));
    }
    let mql = pb
        .sla
        .sales
        .as_ref()
        .map(|s| s.stage.clone())
        .unwrap_or_else(|| "mql".into());
    let (snap, marks, kept) = load_grouped(&cache, &s, &pb_arc).await?;
    let index = kept_index(&cache, &snap, marks, &pb_arc);
    let period = nonempty(&q.period).unwrap_or("all");
    let window = if period == "all" {
        query::window(pb, &snap, None, None, at).map_err(bad_period)?
    } else {
        let cal = Period::parse(period)
            .ok_or_else(|| WebError::bad(format!("period: unknown period `{period}`")))?;
        period_window(cal, at, &pb.company.timezone).map_err(metrics_err)?
    };
    let groups = query::PeopleGroups::new(pb, &snap)
        .kept(&kept)
        .by(by)
        .map_err(|e| WebError::bad(e.to_string()))?;
    let history = query::history_indexed(&snap, &index);
    let g = alignment_gaps(
        &history,
        &mql,
        window,
        at,
        Grouping::Map(&groups),
        DEFAULT_THRESHOLD,
    );
    let labels: Vec<String> = g.rows.iter().map(|r| r.group.clone()).collect();
    let chart = svg::bars(
        "Share of MQLs against share of won revenue",
        &labels,
        &[
            Series {
                name: "MQL share".into(),
                values: g.rows.iter().map(|r| r.mql_share).collect(),
            },
            Series {
                name: "won revenue share".into(),
                values: g.rows.iter().map(|r| r.revenue_share).collect(),
            },
        ],
    );
    let rows = g
        .rows
        .iter()
        .map(|r| {
            vec![
                r.group.clone(),
                grouped(r.mqls as i64),
                pct(Some(r.mql_share)),
                money(pb, r.revenue_won as f64),
                pct(Some(r.revenue_share)),
                grouped(r.deals_won as i64),
                pct(r.win_rate),
                format!("{:+.1} pts", r.gap * 100.0),
                if r.flagged { "yes" } else { "" }.into(),
            ]
        })
        .collect();
    let note = format!(
        "{} MQLs and {} won from {} to {}; flagged when the shares differ by {:.0} points or more: {}.",
        grouped(g.total_mqls as i64),
        money(pb, g.total_revenue_won as f64),
        local(pb, window.from),
        local(pb, window.to),
        g.threshold * 100.0,
        if g.flagged.is_empty() { "none".to_string() } else { g.flagged.join(", ") }
    );
    render(
        "sections.html",
        with(
            base(&u, pb, "/gaps", "Gaps"),
            json!({
                "filters": [
                    filter("by", "By", by, ["segment", "persona", "source", "channel", "owner"].iter().map(|d| option(d, d)).collect()),
                    filter("period", "Period", period, vec![
                        option("all", "all history"), option("year", "this year"),
                        option("quarter", "this quarter"), option("month", "this month"),
                    ]),
                ],
                "sections": [section("gaps", "MQL mix vs won mix", Some(note), Some(chart),
                    table("gaps-table", &["group", "MQLs", "MQL share", "won revenue", "revenue share", "deals won", "win rate", "gap", "flagged"],
                        &[false, true, true, true, true, true, true, true, false], rows))],
            }),
        ),
    )
}

// ---------------------------------------------------------------- playbook

/// `GET /playbook` (admin): the playbook the server runs, read-only.
#[tracing::instrument(skip_all)]
pub async fn playbook(State(s): State<AppState>, u: WebUser) -> Result<Response, WebError> {
    require(&u, Action::Administer, "see the playbook")?;
    let pb = s.playbook();
    let pb = &*pb;
    let c = &pb.company;
    let company = table(
        "company",
        &["setting", "value"],
        &[false, false],
        vec![
            vec!["name".into(), c.name.clone()],
            vec!["currency".into(), c.currency.to_string()],
            vec!["timezone".into(), c.timezone_name.clone()],
            vec![
                "working hours".into(),
                format!(
                    "{:02}:{:02}–{:02}:{:02}",
                    c.hours.start_minute / 60,
                    c.hours.start_minute % 60,
                    c.hours.end_minute / 60,
                    c.hours.end_minute % 60
                ),
            ],
            vec![
                "holidays".into(),
                c.holidays
                    .iter()
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            ],
        ],
    );
    let stages = table(
        "stages",
        &[
            "id", "name", "kind", "owner", "entry", "manual", "max days", "from",
        ],
        &[false, false, false, false, false, false, true, false],
        pb.stages
            .iter()
            .map(|s| {
                vec![
                    s.id.clone(),
                    s.name.clone(),
                    format!("{:?}", s.kind).to_lowercase(),
                    s.owner
                        .map(|o| format!("{o:?}").to_lowercase())
                        .unwrap_or_default(),
                    s.entry
                        .as_ref()
                        .map(|e| e.source().to_string())
                        .unwrap_or_default(),
                    if s.manual { "yes" } else { "" }.into(),
                    fixed(s.max_days, 0).replace('–', ""),
                    s.from.join(", "),
                ]
            })
            .collect(),
    );
    let reasons = table(
        "reasons",
        &["code", "name", "applies to"],
        &[false, false, false],
        pb.reasons
            .iter()
            .map(|r| vec![r.code.clone(), r.name.clone(), r.applies_to.join(", ")])
            .collect(),
    );
    let fit = table(
        "fit",
        &["rule", "points", "when"],
        &[false, true, false],
        pb.scoring
            .fit_rules
            .iter()
            .map(|r| {
                vec![
                    r.name.clone(),
                    format!("{:+}", r.points),
                    r.criterion.source().to_string(),
                ]
            })
            .collect(),
    );
    let engagement = table(
        "engagement",
        &["touch", "points"],
        &[false, true],
        pb.scoring
            .engagement_rules
            .iter()
            .map(|r| vec![r.touch.clone(), format!("{}", r.points)])
            .collect(),
    );
    let mut sla_rows = Vec::new();
    if let Some(s) = &pb.sla.sales {
        sla_rows.push(vec![
            "sales".into(),
            format!(
                "first response within {} business hours of entering {}; {} attempts within {} days",
                s.first_response_hours, s.stage, s.attempts, s.attempts_within_days
            ),
        ]);
    }
    if let Some(m) = &pb.sla.marketing {
        sla_rows.push(vec![
            "marketing".into(),
            format!(
                "{} MQLs a week; SAL rate at least {}",
                m.mql_per_week,
                pct(Some(m.sal_rate_min))
            ),
        ]);
    }
    let goals = table(
        "goals",
        &["goal", "metric", "period", "target", "segment", "persona"],
        &[false, false, false, true, false, false],
        pb.goals
            .iter()
            .map(|g| {
                vec![
                    g.id.clone(),
                    g.metric.clone(),
                    g.period.as_str().into(),
                    metric_value(pb, &g.metric, Some(g.target)),
                    g.segment.clone().unwrap_or_default(),
                    g.persona.clone().unwrap_or_default(),
                ]
            })
            .collect(),
    );
    let matchers = |id: &str, list: &[tandem_core::playbook::Matcher]| {
        table(
            id,
            &["id", "name", "when"],
            &[false, false, false],
            list.iter()
                .map(|m| {
                    vec![
                        m.id.clone(),
                        m.name.clone(),
                        m.criterion.source().to_string(),
                    ]
                })
                .collect(),
        )
    };
    let part = |id: &str, title: &str, t: Value| json!({"id": id, "title": title, "table": t});
    render(
        "sections.html",
        with(
            base(&u, pb, "/playbook", "Playbook"),
            json!({
                "intro": "The playbook this server runs, read-only. Change it in the TOML file, check it with `tandem check`, and restart `tandem serve`.",
                "sections": [
                    part("company", "Company", company),
                    part("stages", "Stages", stages),
                    part("reasons", "Reasons", reasons),
                    part("fit", "Fit rules", fit),
                    part("engagement", &format!("Engagement (half-life {} days)", pb.scoring.half_life_days), engagement),
                    part("sla", "SLA", table("sla", &["side", "commitment"], &[false, false], sla_rows)),
                    part("goals", "Goals", goals),
                    part("segments", "Segments", matchers("segments", &pb.segments)),
                    part("personas", "Personas", matchers("personas", &pb.personas)),
                    part("channels", "Channels", matchers("channels", &pb.channels)),
                ],
            }),
        ),
    )
}
