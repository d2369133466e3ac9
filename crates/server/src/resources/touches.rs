//! Touches: list with filters, show, upsert (marketing, admin). A new or
//! changed touch re-evaluates its person's scores and stage.

use axum::extract::{Path, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use tandem_core::domain::Touch;
use tandem_core::{Minor, Sym};
use tandem_store::pages::{self, Linked, TouchFilter};
use tandem_store::write;

use super::{
    amount, body_time, person_id, person_id_opt, query_time, required, In, Page, Paging, Saved,
};
use crate::auth::{Action, Caller};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery};
use crate::openapi::ErrorEnvelope;
use crate::{now, AppState};

/// A touch with its person's external id.
#[derive(Debug, Serialize)]
pub struct TouchView {
    #[serde(flatten)]
    touch: Touch,
    person: Option<String>,
}

impl From<Linked<Touch>> for TouchView {
    fn from(l: Linked<Touch>) -> Self {
        TouchView {
            touch: l.record,
            person: l.person,
        }
    }
}

/// Filters: `person` (external id), `kind`, `channel`, `campaign`,
/// `source`, `since`/`until` (touch time).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TouchQuery {
    person: Option<String>,
    kind: Option<String>,
    channel: Option<String>,
    campaign: Option<String>,
    source: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
}

/// `GET /api/v1/touches`.
#[utoipa::path(
    get,
    path = "/api/v1/touches",
    tag = "touches",
    security(("bearer" = [])),
    params(TouchQuery),
    responses((status = 200, description = "OK", body = serde_json::Value), (status = 400, description = "Bad query or malformed JSON", body = ErrorEnvelope), (status = 401, description = "No valid token", body = ErrorEnvelope), (status = 403, description = "Role may not do this", body = ErrorEnvelope), (status = 404, description = "Unknown id", body = ErrorEnvelope))
)]
#[tracing::instrument(skip_all)]
pub async fn list(
    State(s): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<TouchQuery>,
) -> Result<Json<Page<TouchView>>, ApiError> {
    caller.require(Action::Read)?;
    let (after, limit) = Paging {
        limit: q.limit,
        cursor: q.cursor.clone(),
    }
    .read()?;
    let pb = s.playbook();
    let mut c = s.store.conn().await?;
    let f = TouchFilter {
        external_id: None,
        person_id: person_id_opt(&mut c, In::Query, "person", &q.person).await?,
        kind: q.kind,
        channel: q.channel,
        campaign: q.campaign,
        source: q.source,
        since: query_time(&pb, "since", q.since.as_deref())?,
        until: query_time(&pb, "until", q.until.as_deref())?,
    };
    let rows = pages::touches(&mut c, &f, after, limit + 1).await?;
    let page = Page::of(rows, limit, |t| t.record.id);
    Ok(Json(Page {
        items: page.items.into_iter().map(TouchView::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

async fn find(
    c: &mut tandem_store::AnyConnection,
    ext: &str,
) -> Result<Option<TouchView>, ApiError> {
    let f = TouchFilter {
        external_id: Some(ext.to_string()),
        ..TouchFilter::default()
    };
    Ok(pages::touches(c, &f, 0, 1)
        .await?
        .into_iter()
        .next()
        .map(TouchView::from))
}

/// `GET /api/v1/touches/{external_id}`.
#[utoipa::path(
    get,
    path = "/api/v1/touches/{external_id}",
    tag = "touches",
    security(("bearer" = [])),
    params(("external_id" = String, Path, description = "External id")),
    responses((status = 200, description = "OK", body = serde_json::Value), (status = 400, description = "Bad query or malformed JSON", body = ErrorEnvelope), (status = 401, description = "No valid token", body = ErrorEnvelope), (status = 403, description = "Role may not do this", body = ErrorEnvelope), (status = 404, description = "Unknown id", body = ErrorEnvelope))
)]
#[tracing::instrument(skip_all)]
pub async fn show(
    State(s): State<AppState>,
    caller: Caller,
    Path(ext): Path<String>,
) -> Result<Json<TouchView>, ApiError> {
    caller.require(Action::Read)?;
    let mut c = s.store.conn().await?;
    find(&mut c, &ext)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("touch `{ext}`")))
}

/// A touch to store.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TouchIn {
    /// Makes the write idempotent.
    external_id: String,
    /// External id of the person.
    person: String,
    /// ISO 8601 instant or date.
    at: String,
    /// `web_visit`, `email_click`, `form_fill`, `demo_request`, …
    kind: String,
    channel: Option<String>,
    campaign: Option<String>,
    source: Option<String>,
    medium: Option<String>,
    /// Minor units.
    #[schema(minimum = 0, maximum = 1_000_000_000_000_000_i64)]
    cost: Option<i64>,
}

/// `POST /api/v1/touches`: upsert by `external_id` (marketing, admin).
#[utoipa::path(
    post,
    path = "/api/v1/touches",
    tag = "touches",
    security(("bearer" = [])),
    request_body = TouchIn,
    responses((status = 201, description = "Created (or, for an upsert, 200 when it updated or left the record)", body = serde_json::Value), (status = 200, description = "Upsert of an existing external id: updated or unchanged", body = serde_json::Value), (status = 400, description = "Bad query or malformed JSON", body = ErrorEnvelope), (status = 401, description = "No valid token", body = ErrorEnvelope), (status = 403, description = "Role may not do this", body = ErrorEnvelope), (status = 404, description = "Unknown id", body = ErrorEnvelope), (status = 413, description = "Body too large", body = ErrorEnvelope), (status = 422, description = "Invalid body or refused by the rules", body = ErrorEnvelope))
)]
#[tracing::instrument(skip_all)]
pub async fn save(
    State(s): State<AppState>,
    caller: Caller,
    ApiJson(b): ApiJson<TouchIn>,
) -> Result<Saved<TouchView>, ApiError> {
    caller.require(Action::EditCampaigns)?;
    required("external_id", &b.external_id)?;
    required("person", &b.person)?;
    required("kind", &b.kind)?;
    amount("cost", b.cost)?;
    let pb = s.playbook();
    let at = body_time(&pb, "at", &b.at)?;
    let mut tx = s.store.begin().await?;
    let pid = person_id(tx.conn(), In::Body, "person", &b.person).await?;
    let t = Touch {
        id: 0,
        external_id: Some(b.external_id.trim().into()),
        person_id: pid,
        at,
        kind: b.kind.trim().into(),
        channel: b.channel.map(Sym::from),
        campaign: b.campaign.map(Sym::from),
        source: b.source.map(Sym::from),
        medium: b.medium.map(Sym::from),
        cost: b.cost.map(Minor::new),
    };
    let saved = write::save_touch(tx.conn(), &pb, &t, now()).await?;
    let stored = find(tx.conn(), b.external_id.trim())
        .await?
        .ok_or_else(|| ApiError::NotFound("touch".into()))?;
    tx.commit().await?;
    Ok(Saved::new(saved, stored))
}
