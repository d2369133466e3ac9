//! Metric endpoints: the same numbers and parameters as the CLI commands.

use axum::extract::State;
use axum::Extension;
use axum::Json;
use serde::{Deserialize, Serialize};
use tandem_core::metrics::waterfall::{Waterfall, WaterfallOptions};
use tandem_core::metrics::{Grouping, Window};
use tandem_core::sla::{stalled_page, StalledLead, StalledPage};
use tandem_core::Timestamp;
use tandem_store::query;

use crate::auth::{Action, Caller};
use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::openapi::ErrorEnvelope;
use crate::resources::{key_cursor, key_text, page_limit};
use crate::warm::Warm;
use crate::{now, AppState};

/// `by`, `cohort`, `unique`, `as_of`, `from`, `to` (as `tandem funnel`).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FunnelQuery {
    by: Option<String>,
    cohort: Option<String>,
    #[serde(default)]
    unique: bool,
    as_of: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

async fn compute(s: &AppState, warm: &Warm, q: &FunnelQuery) -> Result<Waterfall, ApiError> {
    let pb_arc = s.playbook();
    let pb = &*pb_arc;
    let (snap, marks) = warm.get_marked(&s.store).await?;
    let period =
        |e: query::PeriodError| ApiError::bad_request("bad_query", e.to_string(), Some(e.field()));
    let as_of = query::as_of(pb, q.as_of.as_deref(), now()).map_err(period)?;
    let window =
        query::window(pb, &snap, q.from.as_deref(), q.to.as_deref(), as_of).map_err(period)?;
    // Group keys and the replay are kept beside the history, as the
    // dashboard's waterfall page keeps them.
    let groups = match &q.by {
        Some(by) => {
            let kept = crate::web::cache::kept_groups(warm, &snap, marks, &pb_arc);
            Some(
                query::PeopleGroups::new(pb, &snap)
                    .kept(&kept)
                    .by(by)
                    .map_err(|e| ApiError::bad_request("bad_query", e.to_string(), Some("by")))?,
            )
        }
        None => None,
    };
    let mut opts = WaterfallOptions::new(window, as_of);
    opts.cohort_stage = q.cohort.clone();
    opts.unique = q.unique;
    if let Some(g) = &groups {
        opts.grouping = Grouping::Map(g);
    }
    let replay = crate::web::cache::kept_replay(warm, &snap, marks, &pb_arc, as_of);
    replay.replay.waterfall(&snap.deals, &opts).map_err(|e| {
        let field =
            matches!(e, tandem_core::metrics::MetricsError::UnknownStage(_)).then_some("cohort");
        ApiError::bad_request("bad_query", e.to_string(), field)
    })
}

/// `GET /api/v1/metrics/waterfall`: everything `tandem waterfall --format json` prints.
#[utoipa::path(
    get,
    path = "/api/v1/metrics/waterfall",
    tag = "metrics",
    security(("bearer" = [])),
    params(FunnelQuery),
    responses((status = 200, description = "OK", body = serde_json::Value), (status = 400, description = "Bad query or malformed JSON", body = ErrorEnvelope), (status = 401, description = "No valid token", body = ErrorEnvelope), (status = 403, description = "Role may not do this", body = ErrorEnvelope), (status = 404, description = "Unknown id", body = ErrorEnvelope))
)]
#[tracing::instrument(skip_all)]
pub async fn waterfall(
    State(s): State<AppState>,
    caller: Caller,
    Extension(warm): Extension<Warm>,
    ApiQuery(q): ApiQuery<FunnelQuery>,
) -> Result<Json<Waterfall>, ApiError> {
    caller.require(Action::Read)?;
    compute(&s, &warm, &q).await.map(Json)
}

#[derive(Serialize)]
pub struct Funnel {
    cohort_stage: String,
    window: Window,
    as_of: Timestamp,
    unique: bool,
    groups: Vec<FunnelGroup>,
}

#[derive(Serialize)]
pub struct FunnelGroup {
    group: String,
    stages: Vec<FunnelStage>,
}

#[derive(Serialize)]
pub struct FunnelStage {
    stage: String,
    count: u64,
    conversion: Option<f64>,
    cumulative: Option<f64>,
}

/// `GET /api/v1/metrics/funnel`: the cohort view (`tandem funnel`): per
/// group, each stage from the cohort stage on with count and conversion.
#[utoipa::path(
    get,
    path = "/api/v1/metrics/funnel",
    tag = "metrics",
    security(("bearer" = [])),
    params(FunnelQuery),
    responses((status = 200, description = "OK", body = serde_json::Value), (status = 400, description = "Bad query or malformed JSON", body = ErrorEnvelope), (status = 401, description = "No valid token", body = ErrorEnvelope), (status = 403, description = "Role may not do this", body = ErrorEnvelope), (status = 404, description = "Unknown id", body = ErrorEnvelope))
)]
#[tracing::instrument(skip_all)]
pub async fn funnel(
    State(s): State<AppState>,
    caller: Caller,
    Extension(warm): Extension<Warm>,
    ApiQuery(q): ApiQuery<FunnelQuery>,
) -> Result<Json<Funnel>, ApiError> {
    caller.require(Action::Read)?;
    let w = compute(&s, &warm, &q).await?;
    Ok(Json(Funnel {
        cohort_stage: w.cohort_stage,
        window: w.window,
        as_of: w.as_of,
        unique: w.unique,
        groups: w
            .groups
            .into_iter()
            .map(|g| FunnelGroup {
                group: g.group,
                stages: g
                    .stages
                    .into_iter()
                    .filter_map(|s| {
                        s.cohort.map(|count| FunnelStage {
                            stage: s.stage,
                            count,
                            conversion: s.conversion,
                            cumulative: s.cumulative,
                        })
                    })
                    .collect(),
            })
            .collect(),
    }))
}

/// `as_of`, `owner` (as `tandem stalled`), and `limit` (1–500, default 50)
/// and `cursor` for the list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StalledQuery {
    as_of: Option<String>,
    owner: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
}

#[derive(Serialize)]
pub struct Stalled {
    as_of: Timestamp,
    /// How many leads (of `owner`, when given) are stalled.
    total: usize,
    /// Of them, how many per stage, in playbook order.
    by_stage: Vec<StageCount>,
    /// One page of them, oldest entry first (ties by person id).
    leads: Vec<StalledLead>,
    /// Pass as `cursor` (with the same `as_of`) for the next page; `null`
    /// on the last page.
    next_cursor: Option<String>,
}

#[derive(Serialize)]
pub struct StageCount {
    stage: String,
    leads: usize,
}

/// `GET /api/v1/metrics/stalled`: leads in a stage longer than its
/// `max_days`, counted per stage, oldest first, a page at a time (`tandem
/// stalled --format json` lists them all).
#[utoipa::path(
    get,
    path = "/api/v1/metrics/stalled",
    tag = "metrics",
    security(("bearer" = [])),
    params(StalledQuery),
    responses((status = 200, description = "OK", body = serde_json::Value), (status = 400, description = "Bad query or malformed JSON", body = ErrorEnvelope), (status = 401, description = "No valid token", body = ErrorEnvelope), (status = 403, description = "Role may not do this", body = ErrorEnvelope), (status = 404, description = "Unknown id", body = ErrorEnvelope))
)]
#[tracing::instrument(skip_all)]
pub async fn stalled(
    State(s): State<AppState>,
    caller: Caller,
    Extension(warm): Extension<Warm>,
    ApiQuery(q): ApiQuery<StalledQuery>,
) -> Result<Json<Stalled>, ApiError> {
    caller.require(Action::Read)?;
    let pb = s.playbook();
    let pb = &*pb;
    let as_of = query::as_of(pb, q.as_of.as_deref(), now())
        .map_err(|e| ApiError::bad_request("bad_query", e.to_string(), Some(e.field())))?;
    let limit = page_limit(q.limit)?;
    let after = key_cursor::<2>(q.cursor.as_deref())?;
    let snap = warm.get(&s.store).await?;
    let page = StalledPage {
        owner: q.owner.as_deref(),
        after: after.map(|[at, id]| (Timestamp::from_millis(at), id)),
        // One more than asked says whether there is a next page.
        limit: limit as usize + 1,
    };
    let mut found = stalled_page(pb, &snap.people, &snap.transitions, as_of, page);
    let next_cursor = if found.leads.len() > limit as usize {
        found.leads.truncate(limit as usize);
        found
            .leads
            .last()
            .map(|l| key_text([l.entered_at.millis(), l.person_id]))
    } else {
        None
    };
    Ok(Json(Stalled {
        as_of,
        total: found.total,
        by_stage: found
            .by_stage
            .into_iter()
            .map(|(stage, leads)| StageCount { stage, leads })
            .collect(),
        leads: found.leads,
        next_cursor,
    }))
}
