//! Campaigns: list with filters, show, upsert (marketing, admin).

use axum::extract::{Path, State};
use axum::Json;
use serde::Deserialize;
use tandem_core::domain::Campaign;
use tandem_store::pages::{self, CampaignFilter};
use tandem_store::write;

use super::{amount, body_time_opt, query_time, required, Page, Paging, Saved};
use crate::auth::{Action, Caller};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery};
use crate::openapi::ErrorEnvelope;
use crate::AppState;

/// Filters: `channel`, `owner`, `segment`, `persona`, `since`/`until` (start time).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CampaignQuery {
    channel: Option<String>,
    owner: Option<String>,
    segment: Option<String>,
    persona: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
}

/// `GET /api/v1/campaigns`.
#[utoipa::path(
    get,
    path = "/api/v1/campaigns",
    tag = "campaigns",
    security(("bearer" = [])),
    params(CampaignQuery),
    responses((status = 200, description = "OK", body = serde_json::Value), (status = 400, description = "Bad query or malformed JSON", body = ErrorEnvelope), (status = 401, description = "No valid token", body = ErrorEnvelope), (status = 403, description = "Role may not do this", body = ErrorEnvelope), (status = 404, description = "Unknown id", body = ErrorEnvelope))
)]
#[tracing::instrument(skip_all)]
pub async fn list(
    State(s): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<CampaignQuery>,
) -> Result<Json<Page<Campaign>>, ApiError> {
    caller.require(Action::Read)?;
    let (after, limit) = Paging {
        limit: q.limit,
        cursor: q.cursor.clone(),
    }
    .read()?;
    let pb = s.playbook();
    let f = CampaignFilter {
        external_id: None,
        channel: q.channel,
        owner: q.owner,
        segment: q.segment,
        persona: q.persona,
        since: query_time(&pb, "since", q.since.as_deref())?,
        until: query_time(&pb, "until", q.until.as_deref())?,
    };
    let mut c = s.store.conn().await?;
    let rows = pages::campaigns(&mut c, &f, after, limit + 1).await?;
    Ok(Json(Page::of(rows, limit, |k| k.id)))
}

async fn find(
    c: &mut tandem_store::AnyConnection,
    ext: &str,
) -> Result<Option<Campaign>, ApiError> {
    let f = CampaignFilter {
        external_id: Some(ext.to_string()),
        ..CampaignFilter::default()
    };
    Ok(pages::campaigns(c, &f, 0, 1).await?.into_iter().next())
}

/// `GET /api/v1/campaigns/{external_id}`.
#[utoipa::path(
    get,
    path = "/api/v1/campaigns/{external_id}",
    tag = "campaigns",
    security(("bearer" = [])),
    params(("external_id" = String, Path, description = "External id")),
    responses((status = 200, description = "OK", body = serde_json::Value), (status = 400, description = "Bad query or malformed JSON", body = ErrorEnvelope), (status = 401, description = "No valid token", body = ErrorEnvelope), (status = 403, description = "Role may not do this", body = ErrorEnvelope), (status = 404, description = "Unknown id", body = ErrorEnvelope))
)]
#[tracing::instrument(skip_all)]
pub async fn show(
    State(s): State<AppState>,
    caller: Caller,
    Path(ext): Path<String>,
) -> Result<Json<Campaign>, ApiError> {
    caller.require(Action::Read)?;
    let mut c = s.store.conn().await?;
    find(&mut c, &ext)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("campaign `{ext}`")))
}

/// A campaign to store (replaces the stored one with that external id).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CampaignIn {
    external_id: String,
    name: String,
    channel: Option<String>,
    starts_at: Option<String>,
    ends_at: Option<String>,
    /// Minor units.
    #[schema(minimum = 0, maximum = 1_000_000_000_000_000_i64)]
    budget: Option<i64>,
    /// Minor units.
    #[schema(minimum = 0, maximum = 1_000_000_000_000_000_i64)]
    cost: Option<i64>,
    persona: Option<String>,
    segment: Option<String>,
    owner: Option<String>,
}

/// `POST /api/v1/campaigns`: upsert by `external_id` (marketing, admin).
#[utoipa::path(
    post,
    path = "/api/v1/campaigns",
    tag = "campaigns",
    security(("bearer" = [])),
    request_body = CampaignIn,
    responses((status = 201, description = "Created (or, for an upsert, 200 when it updated or left the record)", body = serde_json::Value), (status = 200, description = "Upsert of an existing external id: updated or unchanged", body = serde_json::Value), (status = 400, description = "Bad query or malformed JSON", body = ErrorEnvelope), (status = 401, description = "No valid token", body = ErrorEnvelope), (status = 403, description = "Role may not do this", body = ErrorEnvelope), (status = 404, description = "Unknown id", body = ErrorEnvelope), (status = 413, description = "Body too large", body = ErrorEnvelope), (status = 422, description = "Invalid body or refused by the rules", body = ErrorEnvelope))
)]
#[tracing::instrument(skip_all)]
pub async fn save(
    State(s): State<AppState>,
    caller: Caller,
    ApiJson(b): ApiJson<CampaignIn>,
) -> Result<Saved<Campaign>, ApiError> {
    caller.require(Action::EditCampaigns)?;
    required("external_id", &b.external_id)?;
    required("name", &b.name)?;
    amount("budget", b.budget)?;
    amount("cost", b.cost)?;
    let pb = s.playbook();
    let starts_at = body_time_opt(&pb, "starts_at", &b.starts_at)?;
    let ends_at = body_time_opt(&pb, "ends_at", &b.ends_at)?;
    if let (Some(a), Some(z)) = (starts_at, ends_at) {
        if z < a {
            return Err(ApiError::unprocessable(
                "invalid_body",
                "ends_at is before starts_at",
                Some("ends_at"),
            ));
        }
    }
    let k = Campaign {
        id: 0,
        external_id: b.external_id.trim().to_string(),
        name: b.name,
        channel: b.channel,
        starts_at,
        ends_at,
        budget: b.budget,
        cost: b.cost,
        persona: b.persona,
        segment: b.segment,
        owner: b.owner,
    };
    let mut tx = s.store.begin().await?;
    let saved = write::save_campaign(tx.conn(), &k).await?;
    let stored = find(tx.conn(), &k.external_id)
        .await?
        .ok_or_else(|| ApiError::NotFound("campaign".into()))?;
    tx.commit().await?;
    Ok(Saved::new(saved, stored))
}
