//! Metric endpoints beyond funnel/waterfall/stalled: scorecard, SLA and
//! alignment gaps, with the parameters of the CLI commands of the same name
//! (parsed by the same `tandem_store::query` functions).

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use tandem_core::metrics::gaps::{alignment_gaps, Gaps, DEFAULT_THRESHOLD};
use tandem_core::metrics::scorecard::{
    leading_indicators, scorecard as goal_lines, Indicator, Pacing,
};
use tandem_core::metrics::{funnel_ids, Grouping};
use tandem_core::playbook::{Period, Playbook};
use tandem_core::sla::{
    compliance, compliance_by_owner, marketing_sla, sales_sla, Compliance, Handoff,
    MarketingSlaReport, OwnerCompliance, SlaError,
};
use tandem_core::Timestamp;
use tandem_store::query::{self, PeriodError};
use tandem_store::repo::{self, Snapshot};

use crate::auth::{Action, Caller};
use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::{now, AppState};

fn period_err(e: PeriodError) -> ApiError {
    ApiError::bad_request("bad_query", e.to_string(), Some(e.field()))
}

fn metric_err(e: impl std::fmt::Display) -> ApiError {
    ApiError::unprocessable("metric_failed", e.to_string(), None)
}

async fn snapshot(s: &AppState) -> Result<Snapshot, ApiError> {
    let mut c = s.store.conn().await?;
    Ok(repo::snapshot(&mut c).await?)
}

fn group(
    pb: &Playbook,
    snap: &Snapshot,
    by: &str,
) -> Result<std::collections::BTreeMap<i64, String>, ApiError> {
    query::group_by(pb, snap, by)
        .map_err(|e| ApiError::bad_request("bad_query", e.to_string(), Some("by")))
}

/// `period` (quarter, month, week or year; default quarter), `as_of`.
#[derive(Debug, Deserialize)]
pub struct ScorecardQuery {
    period: Option<String>,
    as_of: Option<String>,
}

/// Goal lines and leading indicators (`tandem scorecard --format json`).
#[derive(Debug, Serialize)]
pub struct Scorecard {
    as_of: Timestamp,
    period: Period,
    goals: Vec<Pacing>,
    indicators: Vec<Indicator>,
}

/// `GET /api/v1/metrics/scorecard`.
#[tracing::instrument(skip_all)]
pub async fn scorecard(
    State(s): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ScorecardQuery>,
) -> Result<Json<Scorecard>, ApiError> {
    caller.require(Action::Read)?;
    let pb = s.playbook();
    let p = q.period.as_deref().unwrap_or("quarter");
    let period = Period::parse(p).ok_or_else(|| {
        ApiError::bad_request(
            "bad_query",
            format!("unknown period `{p}`; use quarter, month, week or year"),
            Some("period"),
        )
    })?;
    let as_of = query::as_of(&pb, q.as_of.as_deref(), now()).map_err(period_err)?;
    let snap = snapshot(&s).await?;
    let history = query::history(&snap);
    let segments = group(&pb, &snap, "segment")?;
    let personas = group(&pb, &snap, "persona")?;
    let goals = goal_lines(
        &pb,
        &history,
        as_of,
        Grouping::Map(&segments),
        Grouping::Map(&personas),
    )
    .map_err(metric_err)?;
    let indicators = leading_indicators(&pb, &history, period, as_of).map_err(metric_err)?;
    Ok(Json(Scorecard {
        as_of,
        period,
        goals,
        indicators,
    }))
}

/// `by` (default segment), `threshold` (default 0.10), `as_of`, `from`, `to`.
#[derive(Debug, Deserialize)]
pub struct GapsQuery {
    by: Option<String>,
    threshold: Option<f64>,
    as_of: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

/// `GET /api/v1/metrics/gaps` (`tandem gaps --format json`).
#[tracing::instrument(skip_all)]
pub async fn gaps(
    State(s): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<GapsQuery>,
) -> Result<Json<Gaps>, ApiError> {
    caller.require(Action::Read)?;
    let pb = s.playbook();
    let threshold = q.threshold.unwrap_or(DEFAULT_THRESHOLD);
    if !(0.0..=1.0).contains(&threshold) {
        return Err(ApiError::bad_request(
            "bad_query",
            "threshold must be between 0 and 1",
            Some("threshold"),
        ));
    }
    let mql = query::mql_stage(&pb);
    if !funnel_ids(&pb).contains(&mql) {
        return Err(metric_err(format!(
            "the playbook has no funnel stage `{mql}` to count MQLs in"
        )));
    }
    let snap = snapshot(&s).await?;
    let as_of = query::as_of(&pb, q.as_of.as_deref(), now()).map_err(period_err)?;
    let window =
        query::window(&pb, &snap, q.from.as_deref(), q.to.as_deref(), as_of).map_err(period_err)?;
    let groups = group(&pb, &snap, q.by.as_deref().unwrap_or("segment"))?;
    Ok(Json(alignment_gaps(
        &query::history(&snap),
        &mql,
        window,
        as_of,
        Grouping::Map(&groups),
        threshold,
    )))
}

/// `week` (ISO week, e.g. 2026-W48), `owner`, `as_of`.
#[derive(Debug, Deserialize)]
pub struct SlaQuery {
    week: Option<String>,
    owner: Option<String>,
    as_of: Option<String>,
}

/// The sales side of the SLA, filtered as asked.
#[derive(Debug, Serialize)]
pub struct SalesSide {
    stage: String,
    first_response_hours: f64,
    attempts: i64,
    attempts_within_days: f64,
    overall: Compliance,
    by_owner: Vec<OwnerCompliance>,
    handoffs: Vec<Handoff>,
}

/// Both sides of the SLA (`tandem sla --format json`).
#[derive(Debug, Serialize)]
pub struct Sla {
    as_of: Timestamp,
    week: Option<String>,
    sales: SalesSide,
    /// `null` when the playbook has no `[sla.marketing]`.
    marketing: Option<MarketingSlaReport>,
}

/// `GET /api/v1/metrics/sla`.
#[tracing::instrument(skip_all)]
pub async fn sla(
    State(s): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<SlaQuery>,
) -> Result<Json<Sla>, ApiError> {
    caller.require(Action::Read)?;
    let pb = s.playbook();
    let week = q
        .week
        .as_deref()
        .map(|w| query::iso_week(&pb, w))
        .transpose()
        .map_err(|e| ApiError::bad_request("bad_query", e.to_string(), Some("week")))?;
    let as_of = query::as_of(&pb, q.as_of.as_deref(), now()).map_err(period_err)?;
    let snap = snapshot(&s).await?;
    let sales = sales_sla(
        &pb,
        &snap.people,
        &snap.transitions,
        &snap.activities,
        as_of,
    )
    .map_err(metric_err)?;
    let handoffs: Vec<Handoff> = sales
        .handoffs
        .iter()
        .filter(|h| week.as_ref().is_none_or(|(_, w)| w.contains(h.entered_at)))
        .filter(|h| {
            q.owner
                .as_ref()
                .is_none_or(|o| h.owner.as_deref() == Some(o.as_str()))
        })
        .cloned()
        .collect();
    let marketing = match marketing_sla(
        &pb,
        &snap.transitions,
        week.as_ref().map(|(_, w)| w.from),
        as_of,
    ) {
        Ok(mut m) => {
            if let Some((label, _)) = &week {
                m.weeks.retain(|w| &w.iso_week == label);
            }
            Some(m)
        }
        Err(SlaError::NoMarketingSla) => None,
        Err(e) => return Err(metric_err(e)),
    };
    Ok(Json(Sla {
        as_of,
        week: week.map(|(l, _)| l),
        sales: SalesSide {
            stage: sales.stage,
            first_response_hours: sales.first_response_hours,
            attempts: sales.attempts,
            attempts_within_days: sales.attempts_within_days,
            overall: compliance(&handoffs),
            by_owner: compliance_by_owner(&handoffs),
            handoffs,
        },
        marketing,
    }))
}
