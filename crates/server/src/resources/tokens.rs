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
use crate::{now, AppState};

/// `GET /api/v1/tokens`: every token, revoked ones too; never a secret.
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
#[derive(Debug, Deserialize)]
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
