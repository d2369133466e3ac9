//! Deals: list with filters, show, upsert (sales, admin). A new or changed
//! deal re-evaluates its person and every contact of its account.

use axum::extract::{Path, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use tandem_core::domain::{Deal, DealStatus};
use tandem_core::Sym;
use tandem_core::{Currency, Money};
use tandem_store::pages::{self, DealFilter, Linked};
use tandem_store::write;

use super::{
    account_id_opt, body_time, body_time_opt, person_id_opt, query_time, required, In, Page,
    Paging, Saved,
};
use crate::auth::{Action, Caller};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery};
use crate::openapi::ErrorEnvelope;
use crate::{now, AppState};

/// Deal kinds the metrics know.
const KINDS: [&str; 3] = ["new", "renewal", "expansion"];

/// A deal with the external ids of its person and account.
#[derive(Debug, Serialize)]
pub struct DealView {
    #[serde(flatten)]
    deal: Deal,
    person: Option<String>,
    account: Option<String>,
}

impl From<Linked<Deal>> for DealView {
    fn from(l: Linked<Deal>) -> Self {
        DealView {
            deal: l.record,
            person: l.person,
            account: l.account,
        }
    }
}

/// Filters: `account`, `person` (external ids), `status`, `owner`, `kind`,
/// `since`/`until` (creation time).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DealQuery {
    account: Option<String>,
    person: Option<String>,
    #[param(value_type = Option<String>)]
    status: Option<DealStatus>,
    owner: Option<String>,
    kind: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
}

/// `GET /api/v1/deals`.
#[utoipa::path(
    get,
    path = "/api/v1/deals",
    tag = "deals",
    security(("bearer" = [])),
    params(DealQuery),
    responses((status = 200, description = "OK", body = serde_json::Value), (status = 400, description = "Bad query or malformed JSON", body = ErrorEnvelope), (status = 401, description = "No valid token", body = ErrorEnvelope), (status = 403, description = "Role may not do this", body = ErrorEnvelope), (status = 404, description = "Unknown id", body = ErrorEnvelope))
)]
#[tracing::instrument(skip_all)]
pub async fn list(
    State(s): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<DealQuery>,
) -> Result<Json<Page<DealView>>, ApiError> {
    caller.require(Action::Read)?;
    let (after, limit) = Paging {
        limit: q.limit,
        cursor: q.cursor.clone(),
    }
    .read()?;
    let pb = s.playbook();
    let mut c = s.store.conn().await?;
    let f = DealFilter {
        external_id: None,
        person_id: person_id_opt(&mut c, In::Query, "person", &q.person).await?,
        account_id: account_id_opt(&mut c, In::Query, "account", &q.account).await?,
        status: q.status.map(|st| st.as_str().to_string()),
        owner: q.owner,
        kind: q.kind,
        since: query_time(&pb, "since", q.since.as_deref())?,
        until: query_time(&pb, "until", q.until.as_deref())?,
    };
    let rows = pages::deals(&mut c, &f, after, limit + 1).await?;
    let page = Page::of(rows, limit, |d| d.record.id);
    Ok(Json(Page {
        items: page.items.into_iter().map(DealView::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

async fn find(
    c: &mut tandem_store::AnyConnection,
    ext: &str,
) -> Result<Option<DealView>, ApiError> {
    let f = DealFilter {
        external_id: Some(ext.to_string()),
        ..DealFilter::default()
    };
    Ok(pages::deals(c, &f, 0, 1)
        .await?
        .into_iter()
        .next()
        .map(DealView::from))
}

/// `GET /api/v1/deals/{external_id}`.
#[utoipa::path(
    get,
    path = "/api/v1/deals/{external_id}",
    tag = "deals",
    security(("bearer" = [])),
    params(("external_id" = String, Path, description = "External id")),
    responses((status = 200, description = "OK", body = serde_json::Value), (status = 400, description = "Bad query or malformed JSON", body = ErrorEnvelope), (status = 401, description = "No valid token", body = ErrorEnvelope), (status = 403, description = "Role may not do this", body = ErrorEnvelope), (status = 404, description = "Unknown id", body = ErrorEnvelope))
)]
#[tracing::instrument(skip_all)]
pub async fn show(
    State(s): State<AppState>,
    caller: Caller,
    Path(ext): Path<String>,
) -> Result<Json<DealView>, ApiError> {
    caller.require(Action::Read)?;
    let mut c = s.store.conn().await?;
    find(&mut c, &ext)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("deal `{ext}`")))
}

/// A deal to store (replaces the stored one with that external id).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DealIn {
    external_id: String,
    /// External id of the account.
    account: Option<String>,
    /// External id of the person.
    person: Option<String>,
    name: Option<String>,
    /// Minor units (cents).
    #[schema(minimum = 0, maximum = 1_000_000_000_000_000_i64)]
    amount: i64,
    /// ISO 4217 code; default the playbook currency.
    currency: Option<String>,
    created_at: String,
    closed_at: Option<String>,
    #[schema(value_type = String)]
    status: DealStatus,
    lost_reason: Option<String>,
    owner: Option<String>,
    /// `new` (default), `renewal` or `expansion`.
    kind: Option<String>,
}

/// `POST /api/v1/deals`: upsert by `external_id` (sales, admin).
#[utoipa::path(
    post,
    path = "/api/v1/deals",
    tag = "deals",
    security(("bearer" = [])),
    request_body = DealIn,
    responses((status = 201, description = "Created (or, for an upsert, 200 when it updated or left the record)", body = serde_json::Value), (status = 200, description = "Upsert of an existing external id: updated or unchanged", body = serde_json::Value), (status = 400, description = "Bad query or malformed JSON", body = ErrorEnvelope), (status = 401, description = "No valid token", body = ErrorEnvelope), (status = 403, description = "Role may not do this", body = ErrorEnvelope), (status = 404, description = "Unknown id", body = ErrorEnvelope), (status = 413, description = "Body too large", body = ErrorEnvelope), (status = 422, description = "Invalid body or refused by the rules", body = ErrorEnvelope))
)]
#[tracing::instrument(skip_all)]
pub async fn save(
    State(s): State<AppState>,
    caller: Caller,
    ApiJson(b): ApiJson<DealIn>,
) -> Result<Saved<DealView>, ApiError> {
    caller.require(Action::MoveLeads)?;
    required("external_id", &b.external_id)?;
    super::amount("amount", Some(b.amount))?;
    let pb = s.playbook();
    let currency = match &b.currency {
        Some(c) => Currency::parse(c).map_err(|e| {
            ApiError::unprocessable("invalid_body", e.to_string(), Some("currency"))
        })?,
        None => pb.company.currency,
    };
    let kind = b.kind.unwrap_or_else(|| "new".into());
    if !KINDS.contains(&kind.as_str()) {
        return Err(ApiError::unprocessable(
            "invalid_body",
            format!("unknown deal kind `{kind}`; use new, renewal or expansion"),
            Some("kind"),
        ));
    }
    if b.account.is_none() && b.person.is_none() {
        return Err(ApiError::unprocessable(
            "invalid_body",
            "a deal needs an account or a person",
            Some("account"),
        ));
    }
    let created_at = body_time(&pb, "created_at", &b.created_at)?;
    let closed_at = body_time_opt(&pb, "closed_at", &b.closed_at)?;
    let mut tx = s.store.begin().await?;
    let d = Deal {
        id: 0,
        external_id: b.external_id.trim().to_string(),
        account_id: account_id_opt(tx.conn(), In::Body, "account", &b.account).await?,
        person_id: person_id_opt(tx.conn(), In::Body, "person", &b.person).await?,
        name: b.name,
        amount: Money {
            minor: b.amount,
            currency,
        },
        created_at,
        closed_at,
        status: b.status,
        lost_reason: b.lost_reason.map(Sym::from),
        owner: b.owner.map(Sym::from),
        kind: kind.into(),
    };
    let saved = write::save_deal(tx.conn(), &pb, &d, now()).await?;
    let stored = find(tx.conn(), &d.external_id)
        .await?
        .ok_or_else(|| ApiError::NotFound("deal".into()))?;
    tx.commit().await?;
    Ok(Saved::new(saved, stored))
}
