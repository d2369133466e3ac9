//! A person's stage history, and the moves next to accept/reject: recycle
//! (reason required) and a move to a named stage (sales, admin).

use axum::extract::{Path, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use tandem_core::domain::{Subject, Transition};
use tandem_core::lifecycle::State as Stage;
use tandem_store::repo;

use crate::auth::{Action, Caller};
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::openapi::ErrorEnvelope;
use crate::people::{apply, MoveBody, Moved, Pick};
use crate::AppState;

/// A person's transitions, oldest first, and the stage they add up to.
#[derive(Debug, Serialize)]
pub struct History {
    person: String,
    stage: Stage,
    transitions: Vec<Transition>,
}

/// `GET /api/v1/people/{external_id}/transitions`.
#[utoipa::path(
    get,
    path = "/api/v1/people/{external_id}/transitions",
    tag = "transitions",
    security(("bearer" = [])),
    params(("external_id" = String, Path, description = "External id")),
    responses((status = 200, description = "OK", body = serde_json::Value), (status = 400, description = "Bad query or malformed JSON", body = ErrorEnvelope), (status = 401, description = "No valid token", body = ErrorEnvelope), (status = 403, description = "Role may not do this", body = ErrorEnvelope), (status = 404, description = "Unknown id", body = ErrorEnvelope))
)]
#[tracing::instrument(skip_all)]
pub async fn history(
    State(s): State<AppState>,
    caller: Caller,
    Path(ext): Path<String>,
) -> Result<Json<History>, ApiError> {
    caller.require(Action::Read)?;
    let mut c = s.store.conn().await?;
    let p = repo::person_by_external(&mut c, &ext)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("person `{ext}`")))?;
    let transitions = repo::transitions_of(&mut c, Subject::Person(p.id)).await?;
    Ok(Json(History {
        person: p.external_id().into(),
        stage: Stage::replay(&transitions),
        transitions,
    }))
}

/// `POST /api/v1/people/{external_id}/recycle`: back to nurture with a
/// reason code (sales, admin).
#[utoipa::path(
    post,
    path = "/api/v1/people/{external_id}/recycle",
    tag = "transitions",
    security(("bearer" = [])),
    params(("external_id" = String, Path, description = "External id")),
    request_body = MoveBody,
    responses((status = 200, description = "OK", body = serde_json::Value), (status = 400, description = "Bad query or malformed JSON", body = ErrorEnvelope), (status = 401, description = "No valid token", body = ErrorEnvelope), (status = 403, description = "Role may not do this", body = ErrorEnvelope), (status = 404, description = "Unknown id", body = ErrorEnvelope), (status = 413, description = "Body too large", body = ErrorEnvelope), (status = 422, description = "Invalid body or refused by the rules", body = ErrorEnvelope))
)]
#[tracing::instrument(skip_all)]
pub async fn recycle(
    State(s): State<AppState>,
    caller: Caller,
    Path(ext): Path<String>,
    ApiJson(b): ApiJson<MoveBody>,
) -> Result<Json<Moved>, ApiError> {
    apply(&s, &caller, &ext, b, Pick::Recycle).await.map(Json)
}

/// Body of a stage move.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StageBody {
    /// Stage id from the playbook.
    stage: String,
    actor: Option<String>,
    /// Reason code (required for off-ramps).
    reason: Option<String>,
    note: Option<String>,
    /// ISO 8601 (default: now).
    at: Option<String>,
}

/// `POST /api/v1/people/{external_id}/stage`: a manual move to a named
/// stage, checked by the lifecycle rules (sales, admin).
#[utoipa::path(
    post,
    path = "/api/v1/people/{external_id}/stage",
    tag = "transitions",
    security(("bearer" = [])),
    params(("external_id" = String, Path, description = "External id")),
    request_body = StageBody,
    responses((status = 200, description = "OK", body = serde_json::Value), (status = 400, description = "Bad query or malformed JSON", body = ErrorEnvelope), (status = 401, description = "No valid token", body = ErrorEnvelope), (status = 403, description = "Role may not do this", body = ErrorEnvelope), (status = 404, description = "Unknown id", body = ErrorEnvelope), (status = 413, description = "Body too large", body = ErrorEnvelope), (status = 422, description = "Invalid body or refused by the rules", body = ErrorEnvelope))
)]
#[tracing::instrument(skip_all)]
pub async fn stage(
    State(s): State<AppState>,
    caller: Caller,
    Path(ext): Path<String>,
    ApiJson(b): ApiJson<StageBody>,
) -> Result<Json<Moved>, ApiError> {
    let body = MoveBody {
        actor: b.actor,
        reason: b.reason,
        note: b.note,
        recycle: false,
        at: b.at,
    };
    apply(&s, &caller, &ext, body, Pick::Stage(&b.stage))
        .await
        .map(Json)
}
