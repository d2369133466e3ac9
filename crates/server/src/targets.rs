//! The target-account (ABM) list: read by every role, written by marketing
//! and admin (accounts are chosen together, but the list is marketing's to
//! keep).
//!
//! - `GET /api/v1/targets`: every target account, by tier.
//! - `GET /api/v1/accounts/{external_id}/target`: one entry (404 when the
//!   account is not on the list).
//! - `PUT /api/v1/accounts/{external_id}/target` with `{"tier": 1..3,
//!   "marketer"?, "seller"?, "actor"?}`: add or change; 201 when added.
//! - `DELETE /api/v1/accounts/{external_id}/target`: 204, or 404 when it
//!   was not on the list.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tandem_core::accounts::tiers::check_tier;
use tandem_store::accounts::{self, NewTarget, Target};
use tandem_store::repo::Upsert;

use crate::auth::{Action, Caller};
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::openapi::ErrorEnvelope;
use crate::{now, AppState};

/// The routes of this module, to merge under `/api/v1`.
pub fn routes() -> Router<AppState> {
    Router::new().route("/targets", get(list)).route(
        "/accounts/{external_id}/target",
        get(show).put(put).delete(delete),
    )
}

#[derive(Serialize)]
pub struct TargetList {
    targets: Vec<Target>,
}

/// `GET /api/v1/targets`.
#[utoipa::path(
    get,
    path = "/api/v1/targets",
    tag = "targets",
    security(("bearer" = [])),
    responses((status = 200, description = "Every target account with its tier, marketer and seller, by tier", body = serde_json::Value), (status = 401, description = "No valid token", body = ErrorEnvelope), (status = 403, description = "Role may not do this", body = ErrorEnvelope))
)]
#[tracing::instrument(skip_all)]
pub async fn list(State(s): State<AppState>, caller: Caller) -> Result<Json<TargetList>, ApiError> {
    caller.require(Action::Read)?;
    let mut c = s.store.conn().await?;
    Ok(Json(TargetList {
        targets: accounts::targets(&mut c).await?,
    }))
}

/// `GET /api/v1/accounts/{external_id}/target`.
#[utoipa::path(
    get,
    path = "/api/v1/accounts/{external_id}/target",
    tag = "targets",
    security(("bearer" = [])),
    params(("external_id" = String, Path, description = "The account's external id")),
    responses((status = 200, description = "The account's target-list entry", body = serde_json::Value), (status = 401, description = "No valid token", body = ErrorEnvelope), (status = 403, description = "Role may not do this", body = ErrorEnvelope), (status = 404, description = "Unknown account, or not on the target list", body = ErrorEnvelope))
)]
#[tracing::instrument(skip_all)]
pub async fn show(
    State(s): State<AppState>,
    caller: Caller,
    Path(ext): Path<String>,
) -> Result<Json<Target>, ApiError> {
    caller.require(Action::Read)?;
    let mut c = s.store.conn().await?;
    let account = accounts::find_account(&mut c, &ext).await?;
    accounts::target(&mut c, account.id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("account `{ext}` on the target list")))
}

/// Body of `PUT …/target`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TargetBody {
    /// 1 (most important) to 3.
    tier: i64,
    /// The marketer who owns the account's programme.
    marketer: Option<String>,
    /// The seller who owns the account.
    seller: Option<String>,
    /// Who puts it on the list (default: the token's name).
    actor: Option<String>,
}

/// `PUT /api/v1/accounts/{external_id}/target`.
#[utoipa::path(
    put,
    path = "/api/v1/accounts/{external_id}/target",
    tag = "targets",
    security(("bearer" = [])),
    params(("external_id" = String, Path, description = "The account's external id")),
    request_body = TargetBody,
    responses((status = 201, description = "Added to the target list", body = serde_json::Value), (status = 200, description = "Entry changed (or unchanged)", body = serde_json::Value), (status = 400, description = "Malformed JSON", body = ErrorEnvelope), (status = 401, description = "No valid token", body = ErrorEnvelope), (status = 403, description = "Role may not do this", body = ErrorEnvelope), (status = 404, description = "Unknown account", body = ErrorEnvelope), (status = 413, description = "Body too large", body = ErrorEnvelope), (status = 422, description = "Invalid body (e.g. tier outside 1..=3)", body = ErrorEnvelope))
)]
#[tracing::instrument(skip_all)]
pub async fn put(
    State(s): State<AppState>,
    caller: Caller,
    Path(ext): Path<String>,
    ApiJson(body): ApiJson<TargetBody>,
) -> Result<(StatusCode, Json<Target>), ApiError> {
    caller.require(Action::EditTargets)?;
    let tier = check_tier(body.tier)
        .map_err(|e| ApiError::unprocessable("invalid_tier", e.to_string(), Some("tier")))?;
    let actor = body.actor.clone().unwrap_or_else(|| caller.0.name.clone());
    let mut tx = s.store.begin().await?;
    let account = accounts::find_account(tx.conn(), &ext).await?;
    let done = accounts::set_target(
        tx.conn(),
        account.id,
        &NewTarget {
            tier,
            marketer: body.marketer.as_deref(),
            seller: body.seller.as_deref(),
            at: now(),
            actor: &actor,
        },
    )
    .await?;
    let target = accounts::target(tx.conn(), account.id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("account `{ext}` on the target list")))?;
    tx.commit().await?;
    let status = if done == Upsert::Inserted {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(target)))
}

/// `DELETE /api/v1/accounts/{external_id}/target`.
#[utoipa::path(
    delete,
    path = "/api/v1/accounts/{external_id}/target",
    tag = "targets",
    security(("bearer" = [])),
    params(("external_id" = String, Path, description = "The account's external id")),
    responses((status = 204, description = "Removed from the target list"), (status = 401, description = "No valid token", body = ErrorEnvelope), (status = 403, description = "Role may not do this", body = ErrorEnvelope), (status = 404, description = "Unknown account, or not on the target list", body = ErrorEnvelope))
)]
#[tracing::instrument(skip_all)]
pub async fn delete(
    State(s): State<AppState>,
    caller: Caller,
    Path(ext): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(Action::EditTargets)?;
    let mut tx = s.store.begin().await?;
    let account = accounts::find_account(tx.conn(), &ext).await?;
    let removed = accounts::remove_target(tx.conn(), account.id).await?;
    tx.commit().await?;
    if removed {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!(
            "account `{ext}` on the target list"
        )))
    }
}
