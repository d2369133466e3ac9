//! Feedback items and comments: read by everyone, written by sales,
//! marketing and admin.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use tandem_store::feedback::{
    self as fb, Comment, Filter, Item, Kind, Links, NewItem, Status, Team,
};
use tandem_store::{pages, AnyConnection};

use super::{account_id, person_id, query_time, required, In, Page, Paging};
use crate::auth::{Action, Caller};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery};
use crate::openapi::ErrorEnvelope;
use crate::{now, AppState};

/// Filters: `kind`, `status`, `team`, `since`/`until` (creation time).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FeedbackQuery {
    #[param(value_type = Option<String>)]
    kind: Option<Kind>,
    #[param(value_type = Option<String>)]
    status: Option<Status>,
    #[param(value_type = Option<String>)]
    team: Option<Team>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
}

/// `GET /api/v1/feedback`.
#[utoipa::path(
    get,
    path = "/api/v1/feedback",
    tag = "feedback",
    security(("bearer" = [])),
    params(FeedbackQuery),
    responses((status = 200, description = "OK", body = serde_json::Value), (status = 400, description = "Bad query or malformed JSON", body = ErrorEnvelope), (status = 401, description = "No valid token", body = ErrorEnvelope), (status = 403, description = "Role may not do this", body = ErrorEnvelope), (status = 404, description = "Unknown id", body = ErrorEnvelope))
)]
#[tracing::instrument(skip_all)]
pub async fn list(
    State(s): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<FeedbackQuery>,
) -> Result<Json<Page<Item>>, ApiError> {
    caller.require(Action::Read)?;
    let (after, limit) = Paging {
        limit: q.limit,
        cursor: q.cursor.clone(),
    }
    .read()?;
    let pb = s.playbook();
    let f = Filter {
        kind: q.kind,
        status: q.status,
        team: q.team,
        since: query_time(&pb, "since", q.since.as_deref())?,
        until: query_time(&pb, "until", q.until.as_deref())?,
    };
    let mut c = s.store.conn().await?;
    let rows = fb::list(&mut c, &f, after, limit + 1).await?;
    Ok(Json(Page::of(rows, limit, |i| i.id)))
}

/// An item with its comments.
#[derive(Debug, Serialize)]
pub struct ItemView {
    #[serde(flatten)]
    item: Item,
    comments: Vec<Comment>,
}

/// An item id from the path; not a number → 404 like any unknown item.
fn item_id(s: &str) -> Result<i64, ApiError> {
    s.parse()
        .map_err(|_| ApiError::NotFound(format!("feedback item `{s}`")))
}

async fn view(c: &mut AnyConnection, id: i64) -> Result<ItemView, ApiError> {
    let item = fb::get(c, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("feedback item #{id}")))?;
    let comments = fb::comments(c, id).await?;
    Ok(ItemView { item, comments })
}

/// `GET /api/v1/feedback/{id}`.
#[utoipa::path(
    get,
    path = "/api/v1/feedback/{id}",
    tag = "feedback",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Item id")),
    responses((status = 200, description = "OK", body = serde_json::Value), (status = 400, description = "Bad query or malformed JSON", body = ErrorEnvelope), (status = 401, description = "No valid token", body = ErrorEnvelope), (status = 403, description = "Role may not do this", body = ErrorEnvelope), (status = 404, description = "Unknown id", body = ErrorEnvelope))
)]
#[tracing::instrument(skip_all)]
pub async fn show(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ItemView>, ApiError> {
    caller.require(Action::Read)?;
    let id = item_id(&id)?;
    let mut c = s.store.conn().await?;
    view(&mut c, id).await.map(Json)
}

/// A new item.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemIn {
    #[schema(value_type = String)]
    kind: Kind,
    title: String,
    #[serde(default)]
    body: String,
    /// Default: the token's name.
    author: Option<String>,
    #[schema(value_type = String)]
    team: Team,
    /// External ids of what the item is about; each must exist.
    person: Option<String>,
    account: Option<String>,
    deal: Option<String>,
    campaign: Option<String>,
}

/// Checks that every link names a stored record (422 naming the field).
async fn check_links(c: &mut AnyConnection, l: &Links) -> Result<(), ApiError> {
    if let Some(p) = &l.person {
        person_id(c, In::Body, "person", p).await?;
    }
    if let Some(a) = &l.account {
        account_id(c, In::Body, "account", a).await?;
    }
    if let Some(d) = &l.deal {
        let f = pages::DealFilter {
            external_id: Some(d.clone()),
            ..Default::default()
        };
        if pages::deals(c, &f, 0, 1).await?.is_empty() {
            return Err(ApiError::unprocessable(
                "unknown_reference",
                format!("unknown deal `{d}`"),
                Some("deal"),
            ));
        }
    }
    if let Some(k) = &l.campaign {
        let f = pages::CampaignFilter {
            external_id: Some(k.clone()),
            ..Default::default()
        };
        if pages::campaigns(c, &f, 0, 1).await?.is_empty() {
            return Err(ApiError::unprocessable(
                "unknown_reference",
                format!("unknown campaign `{k}`"),
                Some("campaign"),
            ));
        }
    }
    Ok(())
}

/// `POST /api/v1/feedback` (sales, marketing, admin).
#[utoipa::path(
    post,
    path = "/api/v1/feedback",
    tag = "feedback",
    security(("bearer" = [])),
    request_body = ItemIn,
    responses((status = 201, description = "Created (or, for an upsert, 200 when it updated or left the record)", body = serde_json::Value), (status = 400, description = "Bad query or malformed JSON", body = ErrorEnvelope), (status = 401, description = "No valid token", body = ErrorEnvelope), (status = 403, description = "Role may not do this", body = ErrorEnvelope), (status = 404, description = "Unknown id", body = ErrorEnvelope), (status = 413, description = "Body too large", body = ErrorEnvelope), (status = 422, description = "Invalid body or refused by the rules", body = ErrorEnvelope))
)]
#[tracing::instrument(skip_all)]
pub async fn create(
    State(s): State<AppState>,
    caller: Caller,
    ApiJson(b): ApiJson<ItemIn>,
) -> Result<(StatusCode, Json<ItemView>), ApiError> {
    caller.require(Action::Feedback)?;
    required("title", &b.title)?;
    let n = NewItem {
        kind: b.kind,
        title: b.title.trim().to_string(),
        body: b.body,
        author: b.author.unwrap_or_else(|| caller.0.name.clone()),
        team: b.team,
        links: Links {
            person: b.person,
            account: b.account,
            deal: b.deal,
            campaign: b.campaign,
        },
    };
    let mut tx = s.store.begin().await?;
    check_links(tx.conn(), &n.links).await?;
    let item = fb::create(tx.conn(), &n, now()).await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(ItemView {
            item,
            comments: Vec::new(),
        }),
    ))
}

/// A status change.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusIn {
    /// `open`, `in_progress`, `done` or `declined`.
    #[schema(value_type = String)]
    status: Status,
}

/// `PATCH /api/v1/feedback/{id}`: set the status (sales, marketing, admin).
#[utoipa::path(
    patch,
    path = "/api/v1/feedback/{id}",
    tag = "feedback",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Item id")),
    request_body = StatusIn,
    responses((status = 200, description = "OK", body = serde_json::Value), (status = 400, description = "Bad query or malformed JSON", body = ErrorEnvelope), (status = 401, description = "No valid token", body = ErrorEnvelope), (status = 403, description = "Role may not do this", body = ErrorEnvelope), (status = 404, description = "Unknown id", body = ErrorEnvelope), (status = 413, description = "Body too large", body = ErrorEnvelope), (status = 422, description = "Invalid body or refused by the rules", body = ErrorEnvelope))
)]
#[tracing::instrument(skip_all)]
pub async fn update(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<StatusIn>,
) -> Result<Json<ItemView>, ApiError> {
    caller.require(Action::Feedback)?;
    let id = item_id(&id)?;
    let mut tx = s.store.begin().await?;
    fb::set_status(tx.conn(), id, b.status, now()).await?;
    let v = view(tx.conn(), id).await?;
    tx.commit().await?;
    Ok(Json(v))
}

/// A comment.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommentIn {
    body: String,
    /// Default: the token's name.
    author: Option<String>,
}

/// `POST /api/v1/feedback/{id}/comments` (sales, marketing, admin).
#[utoipa::path(
    post,
    path = "/api/v1/feedback/{id}/comments",
    tag = "feedback",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Item id")),
    request_body = CommentIn,
    responses((status = 201, description = "Created (or, for an upsert, 200 when it updated or left the record)", body = serde_json::Value), (status = 400, description = "Bad query or malformed JSON", body = ErrorEnvelope), (status = 401, description = "No valid token", body = ErrorEnvelope), (status = 403, description = "Role may not do this", body = ErrorEnvelope), (status = 404, description = "Unknown id", body = ErrorEnvelope), (status = 413, description = "Body too large", body = ErrorEnvelope), (status = 422, description = "Invalid body or refused by the rules", body = ErrorEnvelope))
)]
#[tracing::instrument(skip_all)]
pub async fn comment(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<CommentIn>,
) -> Result<(StatusCode, Json<Comment>), ApiError> {
    caller.require(Action::Feedback)?;
    let id = item_id(&id)?;
    required("body", &b.body)?;
    let author = b.author.unwrap_or_else(|| caller.0.name.clone());
    let mut c = s.store.conn().await?;
    let comment = fb::add_comment(&mut c, id, &author, &b.body, now()).await?;
    Ok((StatusCode::CREATED, Json(comment)))
}
