//! Sales activities: list with filters, show, upsert (sales, admin). A new
//! or changed activity re-evaluates its person (SLA attempts, stages).

use axum::extract::{Path, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use tandem_core::domain::{Activity, ActivityKind};
use tandem_core::Sym;
use tandem_store::pages::{self, ActivityFilter, Linked};
use tandem_store::write;

use super::{body_time, person_id, person_id_opt, query_time, required, In, Page, Paging, Saved};
use crate::auth::{Action, Caller};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery};
use crate::openapi::ErrorEnvelope;
use crate::{now, AppState};

/// An activity with its person's external id.
#[derive(Debug, Serialize)]
pub struct ActivityView {
    #[serde(flatten)]
    activity: Activity,
    person: Option<String>,
}

impl From<Linked<Activity>> for ActivityView {
    fn from(l: Linked<Activity>) -> Self {
        ActivityView {
            activity: l.record,
            person: l.person,
        }
    }
}

/// Filters: `person` (external id), `kind`, `actor`, `since`/`until`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ActivityQuery {
    person: Option<String>,
    #[param(value_type = Option<String>)]
    kind: Option<ActivityKind>,
    actor: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
}

/// `GET /api/v1/activities`.
#[utoipa::path(
    get,
    path = "/api/v1/activities",
    tag = "activities",
    security(("bearer" = [])),
    params(ActivityQuery),
    responses((status = 200, description = "OK", body = serde_json::Value), (status = 400, description = "Bad query or malformed JSON", body = ErrorEnvelope), (status = 401, description = "No valid token", body = ErrorEnvelope), (status = 403, description = "Role may not do this", body = ErrorEnvelope), (status = 404, description = "Unknown id", body = ErrorEnvelope))
)]
#[tracing::instrument(skip_all)]
pub async fn list(
    State(s): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ActivityQuery>,
) -> Result<Json<Page<ActivityView>>, ApiError> {
    caller.require(Action::Read)?;
    let (after, limit) = Paging {
        limit: q.limit,
        cursor: q.cursor.clone(),
    }
    .read()?;
    let pb = s.playbook();
    let mut c = s.store.conn().await?;
    let f = ActivityFilter {
        external_id: None,
        person_id: person_id_opt(&mut c, In::Query, "person", &q.person).await?,
        kind: q.kind.map(|k| k.as_str().to_string()),
        actor: q.actor,
        since: query_time(&pb, "since", q.since.as_deref())?,
        until: query_time(&pb, "until", q.until.as_deref())?,
    };
    let rows = pages::activities(&mut c, &f, after, limit + 1).await?;
    let page = Page::of(rows, limit, |a| a.record.id);
    Ok(Json(Page {
        items: page.items.into_iter().map(ActivityView::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

async fn find(
    c: &mut tandem_store::AnyConnection,
    ext: &str,
) -> Result<Option<ActivityView>, ApiError> {
    let f = ActivityFilter {
        external_id: Some(ext.to_string()),
        ..ActivityFilter::default()
    };
    Ok(pages::activities(c, &f, 0, 1)
        .await?
        .into_iter()
        .next()
        .map(ActivityView::from))
}

/// `GET /api/v1/activities/{external_id}`.
#[utoipa::path(
    get,
    path = "/api/v1/activities/{external_id}",
    tag = "activities",
    security(("bearer" = [])),
    params(("external_id" = String, Path, description = "External id")),
    responses((status = 200, description = "OK", body = serde_json::Value), (status = 400, description = "Bad query or malformed JSON", body = ErrorEnvelope), (status = 401, description = "No valid token", body = ErrorEnvelope), (status = 403, description = "Role may not do this", body = ErrorEnvelope), (status = 404, description = "Unknown id", body = ErrorEnvelope))
)]
#[tracing::instrument(skip_all)]
pub async fn show(
    State(s): State<AppState>,
    caller: Caller,
    Path(ext): Path<String>,
) -> Result<Json<ActivityView>, ApiError> {
    caller.require(Action::Read)?;
    let mut c = s.store.conn().await?;
    find(&mut c, &ext)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("activity `{ext}`")))
}

/// An activity to store.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActivityIn {
    /// Makes the write idempotent.
    external_id: String,
    /// External id of the person.
    person: String,
    /// ISO 8601 instant or date.
    at: String,
    /// `call`, `email`, `meeting` or `demo`.
    #[schema(value_type = String)]
    kind: ActivityKind,
    /// Who did it (default: the token's name).
    actor: Option<String>,
    outcome: Option<String>,
}

/// `POST /api/v1/activities`: upsert by `external_id` (sales, admin).
#[utoipa::path(
    post,
    path = "/api/v1/activities",
    tag = "activities",
    security(("bearer" = [])),
    request_body = ActivityIn,
    responses((status = 201, description = "Created (or, for an upsert, 200 when it updated or left the record)", body = serde_json::Value), (status = 200, description = "Upsert of an existing external id: updated or unchanged", body = serde_json::Value), (status = 400, description = "Bad query or malformed JSON", body = ErrorEnvelope), (status = 401, description = "No valid token", body = ErrorEnvelope), (status = 403, description = "Role may not do this", body = ErrorEnvelope), (status = 404, description = "Unknown id", body = ErrorEnvelope), (status = 413, description = "Body too large", body = ErrorEnvelope), (status = 422, description = "Invalid body or refused by the rules", body = ErrorEnvelope))
)]
#[tracing::instrument(skip_all)]
pub async fn save(
    State(s): State<AppState>,
    caller: Caller,
    ApiJson(b): ApiJson<ActivityIn>,
) -> Result<Saved<ActivityView>, ApiError> {
    caller.require(Action::MoveLeads)?;
    required("external_id", &b.external_id)?;
    required("person", &b.person)?;
    let pb = s.playbook();
    let at = body_time(&pb, "at", &b.at)?;
    let mut tx = s.store.begin().await?;
    let pid = person_id(tx.conn(), In::Body, "person", &b.person).await?;
    let a = Activity {
        id: 0,
        external_id: Some(b.external_id.trim().into()),
        person_id: pid,
        at,
        kind: b.kind,
        actor: Some(b.actor.unwrap_or_else(|| caller.0.name.clone()).into()),
        outcome: b.outcome.map(Sym::from),
    };
    let saved = write::save_activity(tx.conn(), &pb, &a, now()).await?;
    let stored = find(tx.conn(), b.external_id.trim())
        .await?
        .ok_or_else(|| ApiError::NotFound("activity".into()))?;
    tx.commit().await?;
    Ok(Saved::new(saved, stored))
}
