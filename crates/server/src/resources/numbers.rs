//! Metric endpoints beyond funnel/waterfall/stalled: scorecard, SLA,
//! alignment gaps, plan, quality and attribution, with the parameters of the
//! CLI commands of the same name, read and computed by the same
//! `tandem_store::query` and `tandem_store::numbers` functions.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use tandem_core::attribution::journeys::{By, Level, DEFAULT_LOOKBACK_DAYS};
use tandem_core::attribution::{attribute_table, AttributionError, Credit, Model, DEFAULT_DIRECT};
use tandem_core::metrics::gaps::{alignment_gaps, Gaps, DEFAULT_THRESHOLD};
use tandem_core::metrics::index::HistoryIndex;
use tandem_core::metrics::scorecard::{
    leading_indicators, scorecard as goal_lines, Indicator, Pacing,
};
use tandem_core::metrics::{funnel_ids, Grouping};
use tandem_core::playbook::{Period, Playbook};
use tandem_core::sla::{
    handoff_page, marketing_sla, sales_terms, Compliance, Handoff, HandoffQuery,
    MarketingSlaReport, OwnerCompliance, SlaError,
};
use tandem_core::{Money, Timestamp};
use tandem_store::numbers::{self as shared, ParamError, PlanReport, QualityReport};
use tandem_store::query::{self, KeptGroups, PeriodError};
use tandem_store::repo::Snapshot;

use crate::warm::{View, Warm};
use crate::web::cache;
use axum::Extension;
use std::sync::Arc;

use crate::auth::{Action, Caller};
use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::openapi::ErrorEnvelope;
use crate::resources::{key_cursor, key_text, page_limit};
use crate::{now, AppState};

fn period_err(e: PeriodError) -> ApiError {
    ApiError::bad_request("bad_query", e.to_string(), Some(e.field()))
}

fn metric_err(e: impl std::fmt::Display) -> ApiError {
    ApiError::unprocessable("metric_failed", e.to_string(), None)
}

/// The warm history (see [`crate::warm`]).
async fn snapshot(s: &AppState, warm: &Warm) -> Result<View, ApiError> {
    Ok(warm.get(&s.store).await?)
}

/// The warm history with the group keys and index the dashboard keeps for
/// it ([`crate::web::cache`]), so repeated calls do not regroup every
/// person or scan the whole history for window counts.
async fn kept(
    s: &AppState,
    warm: &Warm,
    pb: &Arc<Playbook>,
) -> Result<(View, Arc<KeptGroups>, Arc<HistoryIndex>), ApiError> {
    let (snap, marks) = warm.get_marked(&s.store).await?;
    let groups = cache::kept_groups(warm, &snap, marks, pb);
    let index = cache::kept_index(warm, &snap, marks, pb);
    Ok((snap, groups, index))
}

/// People's group keys by `by`, through the kept keys.
fn kept_group(
    pb: &Playbook,
    snap: &Snapshot,
    kept: &KeptGroups,
    by: &str,
) -> Result<Arc<query::GroupKeys>, ApiError> {
    query::PeopleGroups::new(pb, snap)
        .kept(kept)
        .by(by)
        .map_err(|e| ApiError::bad_request("bad_query", e.to_string(), Some("by")))
}

/// `period` (quarter, month, week or year; default quarter), `as_of`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
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
#[utoipa::path(
    get,
    path = "/api/v1/metrics/scorecard",
    tag = "metrics",
    security(("bearer" = [])),
    params(ScorecardQuery),
    responses((status = 200, description = "OK", body = serde_json::Value), (status = 400, description = "Bad query or malformed JSON", body = ErrorEnvelope), (status = 401, description = "No valid token", body = ErrorEnvelope), (status = 403, description = "Role may not do this", body = ErrorEnvelope), (status = 404, description = "Unknown id", body = ErrorEnvelope))
)]
#[tracing::instrument(skip_all)]
pub async fn scorecard(
    State(s): State<AppState>,
    caller: Caller,
    Extension(warm): Extension<Warm>,
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
    let (snap, groups, index) = kept(&s, &warm, &pb).await?;
    let history = query::history_indexed(&snap, &index);
    let segments = kept_group(&pb, &snap, &groups, "segment")?;
    let personas = kept_group(&pb, &snap, &groups, "persona")?;
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
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GapsQuery {
    by: Option<String>,
    threshold: Option<f64>,
    as_of: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

/// `GET /api/v1/metrics/gaps` (`tandem gaps --format json`).
#[utoipa::path(
    get,
    path = "/api/v1/metrics/gaps",
    tag = "metrics",
    security(("bearer" = [])),
    params(GapsQuery),
    responses((status = 200, description = "OK", body = serde_json::Value), (status = 400, description = "Bad query or malformed JSON", body = ErrorEnvelope), (status = 401, description = "No valid token", body = ErrorEnvelope), (status = 403, description = "Role may not do this", body = ErrorEnvelope), (status = 404, description = "Unknown id", body = ErrorEnvelope))
)]
#[tracing::instrument(skip_all)]
pub async fn gaps(
    State(s): State<AppState>,
    caller: Caller,
    Extension(warm): Extension<Warm>,
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
    let (snap, kept_groups, index) = kept(&s, &warm, &pb).await?;
    let as_of = query::as_of(&pb, q.as_of.as_deref(), now()).map_err(period_err)?;
    let window =
        query::window(&pb, &snap, q.from.as_deref(), q.to.as_deref(), as_of).map_err(period_err)?;
    let groups = kept_group(
        &pb,
        &snap,
        &kept_groups,
        q.by.as_deref().unwrap_or("segment"),
    )?;
    Ok(Json(alignment_gaps(
        &query::history_indexed(&snap, &index),
        &mql,
        window,
        as_of,
        Grouping::Map(&groups),
        threshold,
    )))
}

/// `week` (ISO week, e.g. 2026-W48), `owner`, `as_of`, and `limit` (1–500,
/// default 50) and `cursor` for the list of handoffs.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SlaQuery {
    week: Option<String>,
    owner: Option<String>,
    as_of: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
}

/// The sales side of the SLA, filtered as asked.
#[derive(Debug, Serialize)]
pub struct SalesSide {
    stage: String,
    first_response_hours: f64,
    attempts: i64,
    attempts_within_days: f64,
    /// Compliance of every handoff that matches `week` and `owner`.
    overall: Compliance,
    by_owner: Vec<OwnerCompliance>,
    /// How many handoffs match `week` and `owner`.
    handoffs_total: usize,
    /// One page of them, by entry time then person.
    handoffs: Vec<Handoff>,
    /// Pass as `cursor` (with the same `as_of`) for the next page; `null`
    /// on the last page.
    next_cursor: Option<String>,
}

/// Both sides of the SLA (`tandem sla --format json`, with the handoffs
/// paged).
#[derive(Debug, Serialize)]
pub struct Sla {
    as_of: Timestamp,
    week: Option<String>,
    sales: SalesSide,
    /// `null` when the playbook has no `[sla.marketing]`.
    marketing: Option<MarketingSlaReport>,
}

/// `GET /api/v1/metrics/sla`.
#[utoipa::path(
    get,
    path = "/api/v1/metrics/sla",
    tag = "metrics",
    security(("bearer" = [])),
    params(SlaQuery),
    responses((status = 200, description = "OK", body = serde_json::Value), (status = 400, description = "Bad query or malformed JSON", body = ErrorEnvelope), (status = 401, description = "No valid token", body = ErrorEnvelope), (status = 403, description = "Role may not do this", body = ErrorEnvelope), (status = 404, description = "Unknown id", body = ErrorEnvelope))
)]
#[tracing::instrument(skip_all)]
pub async fn sla(
    State(s): State<AppState>,
    caller: Caller,
    Extension(warm): Extension<Warm>,
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
    let limit = page_limit(q.limit)?;
    let after = key_cursor::<3>(q.cursor.as_deref())?;
    let terms = sales_terms(&pb).map_err(metric_err)?;
    let (snap, marks) = warm.get_marked(&s.store).await?;
    let page = HandoffQuery {
        window: week.as_ref().map(|(_, w)| *w),
        owner: q.owner.as_deref(),
        after: after.map(|[at, person, seq]| (Timestamp::from_millis(at), person, seq)),
        limit: limit as usize,
    };
    let since = week.as_ref().map(|(_, w)| w.from);
    // The whole history's clocks are kept for this history and settled at
    // `as_of`; a week is computed alone unless they are kept already (both
    // give the same answer).
    let index = match week {
        None => Some(cache::kept_sla(&warm, &snap, marks, &pb)),
        Some(_) => cache::sla_if_kept(&warm, marks, &pb),
    };
    let (found, marketing) = match &index {
        Some(index) => (
            index.handoff_page(&pb, &snap.people, &snap.transitions, as_of, page),
            index.marketing_sla(&pb, since, as_of),
        ),
        None => (
            handoff_page(
                &pb,
                &snap.people,
                &snap.transitions,
                &snap.activities,
                as_of,
                page,
            ),
            marketing_sla(&pb, &snap.transitions, since, as_of),
        ),
    };
    let found = found.map_err(metric_err)?;
    let next_cursor = found
        .next
        .map(|(at, person, seq)| key_text([at.millis(), person, seq]));
    let marketing = match marketing {
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
            stage: terms.stage.clone(),
            first_response_hours: terms.first_response_hours,
            attempts: terms.attempts,
            attempts_within_days: terms.attempts_within_days,
            overall: found.overall,
            by_owner: found.by_owner,
            handoffs_total: found.total,
            handoffs: found.handoffs,
            next_cursor,
        },
        marketing,
    }))
}

fn param_err(e: ParamError) -> ApiError {
    ApiError::bad_request("bad_query", e.message, Some(e.field))
}

/// `revenue` (major units, required), `deal_size`, `rates` (`historic` or
/// comma-separated), `stages` (comma-separated), `by`, `as_of`, `from`, `to`
/// (as `tandem plan`).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PlanQuery {
    revenue: String,
    deal_size: Option<String>,
    rates: Option<String>,
    stages: Option<String>,
    by: Option<String>,
    as_of: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

/// `GET /api/v1/metrics/plan`: the reverse waterfall (money in minor units).
#[utoipa::path(
    get,
    path = "/api/v1/metrics/plan",
    tag = "metrics",
    security(("bearer" = [])),
    params(PlanQuery),
    responses((status = 200, description = "OK", body = serde_json::Value), (status = 400, description = "Bad query or malformed JSON", body = ErrorEnvelope), (status = 401, description = "No valid token", body = ErrorEnvelope), (status = 403, description = "Role may not do this", body = ErrorEnvelope), (status = 404, description = "Unknown id", body = ErrorEnvelope))
)]
#[tracing::instrument(skip_all)]
pub async fn plan(
    State(s): State<AppState>,
    caller: Caller,
    Extension(warm): Extension<Warm>,
    ApiQuery(q): ApiQuery<PlanQuery>,
) -> Result<Json<PlanReport>, ApiError> {
    caller.require(Action::Read)?;
    let pb = s.playbook();
    let currency = pb.company.currency;
    let money = |field: &'static str, v: &str| {
        Money::parse_major(v, currency)
            .map(|m| m.minor)
            .map_err(|e| ApiError::bad_request("bad_query", e.to_string(), Some(field)))
    };
    let revenue = money("revenue", &q.revenue)?;
    let deal_size = q
        .deal_size
        .as_deref()
        .map(|d| money("deal_size", d))
        .transpose()?;
    let rates = shared::parse_rates(q.rates.as_deref().unwrap_or("historic")).map_err(param_err)?;
    let stages: Vec<String> = q
        .stages
        .as_deref()
        .map(|s| {
            s.split(',')
                .map(|x| x.trim().to_string())
                .filter(|x| !x.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let snap = snapshot(&s, &warm).await?;
    let as_of = query::as_of(&pb, q.as_of.as_deref(), now()).map_err(period_err)?;
    let window =
        query::window(&pb, &snap, q.from.as_deref(), q.to.as_deref(), as_of).map_err(period_err)?;
    let params = shared::PlanParams {
        revenue,
        deal_size,
        rates,
        stages,
        by: q.by,
        window,
        as_of,
    };
    shared::plan(&pb, &snap, &params).map(Json).map_err(|e| {
        // A plan the history cannot support is not a malformed query.
        if e.field == "rates" && params.rates.is_none() || e.message.contains("deal") {
            ApiError::unprocessable("metric_failed", e.message, Some(e.field))
        } else {
            param_err(e)
        }
    })
}

/// `target` (`won` or a stage id; default won), `score`, `as_of` (as
/// `tandem quality`).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct QualityQuery {
    target: Option<String>,
    score: Option<String>,
    as_of: Option<String>,
}

/// `GET /api/v1/metrics/quality`: the definition check.
#[utoipa::path(
    get,
    path = "/api/v1/metrics/quality",
    tag = "metrics",
    security(("bearer" = [])),
    params(QualityQuery),
    responses((status = 200, description = "OK", body = serde_json::Value), (status = 400, description = "Bad query or malformed JSON", body = ErrorEnvelope), (status = 401, description = "No valid token", body = ErrorEnvelope), (status = 403, description = "Role may not do this", body = ErrorEnvelope), (status = 404, description = "Unknown id", body = ErrorEnvelope))
)]
#[tracing::instrument(skip_all)]
pub async fn quality(
    State(s): State<AppState>,
    caller: Caller,
    Extension(warm): Extension<Warm>,
    ApiQuery(q): ApiQuery<QualityQuery>,
) -> Result<Json<QualityReport>, ApiError> {
    caller.require(Action::Read)?;
    let pb = s.playbook();
    let as_of = query::as_of(&pb, q.as_of.as_deref(), now()).map_err(period_err)?;
    let snap = snapshot(&s, &warm).await?;
    shared::quality(
        &pb,
        &snap,
        q.target.as_deref().unwrap_or("won"),
        q.score.as_deref(),
        as_of,
    )
    .map(Json)
    .map_err(|e| match e.field {
        "as_of" => ApiError::unprocessable("metric_failed", e.message, None),
        _ => param_err(e),
    })
}

/// `model` (first, last, last-non-direct, linear, time-decay, u, w,
/// full-path, markov, shapley or all; default all), `order`, `half_life`,
/// `by` (channel or campaign), `level` (person or account), `conversion`, `lookback`, `direct`,
/// `compare`, `as_of` (as `tandem attribution`).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AttributionQuery {
    model: Option<String>,
    order: Option<usize>,
    half_life: Option<f64>,
    by: Option<String>,
    level: Option<String>,
    conversion: Option<String>,
    lookback: Option<i64>,
    direct: Option<String>,
    #[serde(default)]
    compare: bool,
    as_of: Option<String>,
}

/// One model's credits.
#[derive(Debug, Serialize)]
pub struct ModelCredits {
    model: &'static str,
    credits: Vec<Credit>,
}

/// Credits per model, with the totals they add up to.
#[derive(Debug, Serialize)]
pub struct Attribution {
    as_of: Timestamp,
    by: &'static str,
    paths: usize,
    conversions: f64,
    /// Minor units.
    value: f64,
    untouched_conversions: f64,
    models: Vec<ModelCredits>,
    /// Models left out of `all` (too many channels, no touch ages) and why.
    left_out: Vec<String>,
    /// Minor units per channel or campaign, with `compare=true`.
    spend: Option<std::collections::BTreeMap<String, i64>>,
}

/// `GET /api/v1/metrics/attribution`.
#[utoipa::path(
    get,
    path = "/api/v1/metrics/attribution",
    tag = "metrics",
    security(("bearer" = [])),
    params(AttributionQuery),
    responses((status = 200, description = "OK", body = serde_json::Value), (status = 400, description = "Bad query or malformed JSON", body = ErrorEnvelope), (status = 401, description = "No valid token", body = ErrorEnvelope), (status = 403, description = "Role may not do this", body = ErrorEnvelope), (status = 404, description = "Unknown id", body = ErrorEnvelope))
)]
#[tracing::instrument(skip_all)]
pub async fn attribution(
    State(s): State<AppState>,
    caller: Caller,
    Extension(warm): Extension<Warm>,
    ApiQuery(q): ApiQuery<AttributionQuery>,
) -> Result<Json<Attribution>, ApiError> {
    caller.require(Action::Read)?;
    let pb = s.playbook();
    let order = q.order.unwrap_or(1);
    if order == 0 {
        return Err(ApiError::bad_request(
            "bad_query",
            "order must be at least 1",
            Some("order"),
        ));
    }
    let half_life = q.half_life.unwrap_or(7.0);
    if !(half_life.is_finite() && half_life > 0.0) {
        return Err(ApiError::bad_request(
            "bad_query",
            "half_life must be a positive number of days",
            Some("half_life"),
        ));
    }
    let (by, by_name) = match q.by.as_deref().unwrap_or("channel") {
        "channel" => (By::Channel, "channel"),
        "campaign" => (By::Campaign, "campaign"),
        other => {
            return Err(ApiError::bad_request(
                "bad_query",
                format!("cannot attribute by `{other}`; use channel or campaign"),
                Some("by"),
            ))
        }
    };
    let level = match q.level.as_deref().unwrap_or("person") {
        "person" => Level::Person,
        "account" => Level::Account,
        other => {
            return Err(ApiError::bad_request(
                "bad_query",
                format!("unknown level `{other}`; use person or account"),
                Some("level"),
            ))
        }
    };
    let direct = q
        .direct
        .clone()
        .unwrap_or_else(|| DEFAULT_DIRECT.to_string());
    let all_models = vec![
        Model::FirstTouch,
        Model::LastTouch,
        Model::LastNonDirect {
            direct: direct.clone(),
        },
        Model::Linear,
        Model::TimeDecay {
            half_life_days: half_life,
        },
        Model::UShaped,
        Model::WShaped,
        Model::FullPath,
        Model::Markov { order },
        Model::Shapley,
    ];
    let name = q.model.as_deref().unwrap_or("all");
    let all = name == "all" || q.compare;
    let models: Vec<Model> = if all {
        all_models
    } else {
        let m = all_models.into_iter().find(|m| m.name() == name).ok_or_else(|| {
            ApiError::bad_request(
                "bad_query",
                format!("unknown model `{name}`; use first, last, last-non-direct, linear, time-decay, u, w, full-path, markov, shapley or all"),
                Some("model"),
            )
        })?;
        vec![m]
    };
    let as_of = query::as_of(&pb, q.as_of.as_deref(), now()).map_err(period_err)?;
    let snap = snapshot(&s, &warm).await?;
    let paths = shared::stored_paths(
        &pb,
        &snap,
        q.conversion.as_deref().unwrap_or("won"),
        by,
        level,
        q.lookback.unwrap_or(DEFAULT_LOOKBACK_DAYS),
        as_of,
    )
    .map_err(param_err)?;
    let mut out = Vec::new();
    let mut left_out = Vec::new();
    for m in models {
        match attribute_table(&paths.paths, &m) {
            Ok(credits) => out.push(ModelCredits {
                model: m.name(),
                credits,
            }),
            Err(
                e @ (AttributionError::TooManyChannels { .. }
                | AttributionError::MissingAges { .. }),
            ) if all => {
                left_out.push(format!("{}: {e}", m.name()));
            }
            Err(e) => {
                return Err(metric_err(format!(
                    "the {} model cannot run: {e}",
                    m.name()
                )))
            }
        }
    }
    let (conversions, value) = paths.paths.totals();
    Ok(Json(Attribution {
        as_of,
        by: by_name,
        paths: paths.paths.len(),
        conversions,
        value,
        untouched_conversions: paths.untouched_conversions,
        models: out,
        left_out,
        spend: q.compare.then(|| shared::spend(&pb, &snap, by, as_of)),
    }))
}
