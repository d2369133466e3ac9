//! API tokens (admin): list, create (the secret is shown once), revoke.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use tandem_store::tokens::{self, ApiToken, Role};

use super::required;
use crate::auth::{Action, Caller};
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::openapi::ErrorEnvelope;
use crate::{now, AppState};

/// `GET /api/v1/tokens`: every token, revoked ones too; never a secret.
#[utoipa::path(
    get,
    path = "/api/v1/tokens",
    tag = "tokens",
    security(("bearer" = [])),
    responses((status = 200, description = "OK", body = serde_json::Value), (status = 400, description = "Bad query or malformed JSON", body = ErrorEnvelope), (status = 401, description = "No valid token", body = ErrorEnvelope), (status = 403, description = "Role may not do this", body = ErrorEnvelope), (status = 404, description = "Unknown id", body = ErrorEnvelope))
)]
#[tracing::instrument(skip_all)]
pub async fn list(
    State(s): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<ApiToken>>, ApiError> {
    caller.require(Action::Administer)?;
    let mut c = s.store.conn().await?;
    Ok(Json(tokens::list(&mut c).await?))
}

/// A token to create.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenIn {
    name: String,
    /// `admin`, `marketing`, `sales` or `viewer`.
    role: String,
}

/// A new token with its secret (shown only here).
#[derive(Debug, Serialize)]
pub struct Created {
    token: ApiToken,
    secret: String,
}

/// `POST /api/v1/tokens` (admin).
#[utoipa::path(
    post,
    path = "/api/v1/tokens",
    tag = "tokens",
    security(("bearer" = [])),
    request_body = TokenIn,
    responses((status = 201, description = "Created (or, for an upsert, 200 when it updated or left the record)", body = serde_json::Value), (status = 400, description = "Bad query or malformed JSON", body = ErrorEnvelope), (status = 401, description = "No valid token", body = ErrorEnvelope), (status = 403, description = "Role may not do this", body = ErrorEnvelope), (status = 404, description = "Unknown id", body = ErrorEnvelope), (status = 413, description = "Body too large", body = ErrorEnvelope), (status = 422, description = "Invalid body or refused by the rules", body = ErrorEnvelope))
)]
#[tracing::instrument(skip_all)]
pub async fn create(
    State(s): State<AppState>,
    caller: Caller,
    ApiJson(b): ApiJson<TokenIn>,
) -> Result<(StatusCode, Json<Created>), ApiError> {
    caller.require(Action::Administer)?;
    required("name", &b.name)?;
    let role: Role = b.role.parse().map_err(|_| {
        ApiError::unprocessable(
            "invalid_body",
            format!(
                "unknown role `{}`; use admin, marketing, sales or viewer",
                b.role
            ),
            Some("role"),
        )
    })?;
    let mut c = s.store.conn().await?;
    let (token, secret) = tokens::create(&mut c, b.name.trim(), role, now()).await?;
    Ok((
        StatusCode::CREATED,
        Json(Created {
            token,
            secret: secret.expose().to_string(),
        }),
    ))
}

/// How many tokens a revoke ended.
#[derive(Debug, Serialize)]
pub struct Revoked {
    revoked: u64,
}

/// `DELETE /api/v1/tokens/{id}`: revoke the token with this numeric id, or
/// every live token with this name (admin).
#[utoipa::path(
    delete,
    path = "/api/v1/tokens/{id}",
    tag = "tokens",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Token id, or a name (revokes every live token of that name)")),
    responses((status = 200, description = "OK", body = serde_json::Value), (status = 400, description = "Bad query or malformed JSON", body = ErrorEnvelope), (status = 401, description = "No valid token", body = ErrorEnvelope), (status = 403, description = "Role may not do this", body = ErrorEnvelope), (status = 404, description = "Unknown id", body = ErrorEnvelope), (status = 413, description = "Body too large", body = ErrorEnvelope), (status = 422, description = "Invalid body or refused by the rules", body = ErrorEnvelope))
)]
#[tracing::instrument(skip_all)]
pub async fn revoke(
    State(s): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
) -> Result<Json<Revoked>, ApiError> {
    caller.require(Action::Administer)?;
    let key = if key.parse::<i64>().is_ok() {
        format!("#{key}")
    } else {
        key
    };
    let mut c = s.store.conn().await?;
    let revoked = tokens::revoke(&mut c, &key, now()).await?;
    Ok(Json(Revoked { revoked }))
}
