//! Accounts: list with filters, show, upsert (sales, marketing, admin).

use axum::extract::{Path, State};
use axum::Json;
use serde::Deserialize;
use tandem_core::domain::{Account, CustomFields};
use tandem_core::Sym;
use tandem_store::pages::{self, AccountFilter};
use tandem_store::write;

use super::{amount, not_negative, required, Page, Paging, Saved};
use crate::auth::{Action, Caller};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery};
use crate::openapi::ErrorEnvelope;
use crate::{now, AppState};

/// Filters: `segment`, `industry`, `owner`, `target`, `tier`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AccountQuery {
    segment: Option<String>,
    industry: Option<String>,
    owner: Option<String>,
    target: Option<bool>,
    tier: Option<i64>,
    limit: Option<i64>,
    cursor: Option<String>,
}

/// `GET /api/v1/accounts`.
#[utoipa::path(
    get,
    path = "/api/v1/accounts",
    tag = "accounts",
    security(("bearer" = [])),
    params(AccountQuery),
    responses((status = 200, description = "OK", body = serde_json::Value), (status = 400, description = "Bad query or malformed JSON", body = ErrorEnvelope), (status = 401, description = "No valid token", body = ErrorEnvelope), (status = 403, description = "Role may not do this", body = ErrorEnvelope), (status = 404, description = "Unknown id", body = ErrorEnvelope))
)]
#[tracing::instrument(skip_all)]
pub async fn list(
    State(s): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<AccountQuery>,
) -> Result<Json<Page<Account>>, ApiError> {
    caller.require(Action::Read)?;
    let (after, limit) = Paging {
        limit: q.limit,
        cursor: q.cursor.clone(),
    }
    .read()?;
    let f = AccountFilter {
        external_id: None,
        segment: q.segment,
        industry: q.industry,
        owner: q.owner,
        target: q.target,
        tier: q.tier,
    };
    let mut c = s.store.conn().await?;
    let rows = pages::accounts(&mut c, &f, after, limit + 1).await?;
    Ok(Json(Page::of(rows, limit, |a| a.id)))
}

/// `GET /api/v1/accounts/{external_id}`.
#[utoipa::path(
    get,
    path = "/api/v1/accounts/{external_id}",
    tag = "accounts",
    security(("bearer" = [])),
    params(("external_id" = String, Path, description = "External id")),
    responses((status = 200, description = "OK", body = serde_json::Value), (status = 400, description = "Bad query or malformed JSON", body = ErrorEnvelope), (status = 401, description = "No valid token", body = ErrorEnvelope), (status = 403, description = "Role may not do this", body = ErrorEnvelope), (status = 404, description = "Unknown id", body = ErrorEnvelope))
)]
#[tracing::instrument(skip_all)]
pub async fn show(
    State(s): State<AppState>,
    caller: Caller,
    Path(ext): Path<String>,
) -> Result<Json<Account>, ApiError> {
    caller.require(Action::Read)?;
    let mut c = s.store.conn().await?;
    tandem_store::repo::account_by_external(&mut c, &ext)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("account `{ext}`")))
}

/// An account to store; absent fields keep their stored values.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountIn {
    external_id: String,
    name: Option<String>,
    domain: Option<String>,
    industry: Option<String>,
    employees: Option<i64>,
    /// Minor units of the playbook currency.
    #[schema(minimum = 0, maximum = 1_000_000_000_000_000_i64)]
    annual_revenue: Option<i64>,
    segment: Option<String>,
    #[serde(default)]
    target: bool,
    tier: Option<i64>,
    owner: Option<String>,
    #[serde(default)]
    #[schema(value_type = Object)]
    custom: CustomFields,
}

/// `POST /api/v1/accounts`: upsert by `external_id` (sales, marketing, admin).
#[utoipa::path(
    post,
    path = "/api/v1/accounts",
    tag = "accounts",
    security(("bearer" = [])),
    request_body = AccountIn,
    responses((status = 201, description = "Created (or, for an upsert, 200 when it updated or left the record)", body = serde_json::Value), (status = 200, description = "Upsert of an existing external id: updated or unchanged", body = serde_json::Value), (status = 400, description = "Bad query or malformed JSON", body = ErrorEnvelope), (status = 401, description = "No valid token", body = ErrorEnvelope), (status = 403, description = "Role may not do this", body = ErrorEnvelope), (status = 404, description = "Unknown id", body = ErrorEnvelope), (status = 413, description = "Body too large", body = ErrorEnvelope), (status = 422, description = "Invalid body or refused by the rules", body = ErrorEnvelope))
)]
#[tracing::instrument(skip_all)]
pub async fn save(
    State(s): State<AppState>,
    caller: Caller,
    ApiJson(b): ApiJson<AccountIn>,
) -> Result<Saved<Account>, ApiError> {
    caller.require(Action::EditAccounts)?;
    required("external_id", &b.external_id)?;
    not_negative("employees", b.employees)?;
    amount("annual_revenue", b.annual_revenue)?;
    let a = Account {
        id: 0,
        external_id: b.external_id.trim().to_string(),
        name: b.name,
        domain: b.domain,
        industry: b.industry.map(Sym::from),
        employees: b.employees,
        annual_revenue: b.annual_revenue,
        segment: b.segment.map(Sym::from),
        target: b.target,
        tier: b.tier,
        owner: b.owner.map(Sym::from),
        custom: b.custom.into(),
    };
    let pb = s.playbook();
    let mut tx = s.store.begin().await?;
    let saved = write::save_account(tx.conn(), &pb, a, now()).await?;
    let stored = tandem_store::repo::account(tx.conn(), saved.id)
        .await?
        .ok_or_else(|| ApiError::NotFound("account".into()))?;
    tx.commit().await?;
    Ok(Saved::new(saved, stored))
}
