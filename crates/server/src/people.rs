//! People: list (cursor pagination), show with stage and history, and the
//! sales moves accept and reject.

use axum::extract::{Path, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use tandem_core::domain::{Person, Subject, Transition};
use tandem_core::lifecycle::{self, State as Stage};
use tandem_core::Timestamp;
use tandem_store::lifecycle::{self as engine, MoveError};
use tandem_store::repo;

use crate::auth::{Action, Caller};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery};
use crate::openapi::ErrorEnvelope;
use crate::{now, AppState};

/// Default and largest page size.
const DEFAULT_LIMIT: i64 = 50;
const MAX_LIMIT: i64 = 500;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    limit: Option<i64>,
    cursor: Option<String>,
}

#[derive(Serialize)]
pub struct Page {
    people: Vec<Person>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    next_cursor: Option<String>,
}

/// `GET /api/v1/people?limit=&cursor=`: people by id, `limit` per page.
#[utoipa::path(
    get,
    path = "/api/v1/people",
    tag = "people",
    security(("bearer" = [])),
    params(PageQuery),
    responses((status = 200, description = "OK", body = serde_json::Value), (status = 400, description = "Bad query or malformed JSON", body = ErrorEnvelope), (status = 401, description = "No valid token", body = ErrorEnvelope), (status = 403, description = "Role may not do this", body = ErrorEnvelope), (status = 404, description = "Unknown id", body = ErrorEnvelope))
)]
#[tracing::instrument(skip_all, fields(page.limit = q.limit))]
pub async fn list(
    State(s): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Json<Page>, ApiError> {
    caller.require(Action::Read)?;
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(
            "bad_query",
            format!("limit must be between 1 and {MAX_LIMIT}"),
            Some("limit"),
        ));
    }
    let after = match q.cursor.as_deref() {
        None | Some("") => 0,
        Some(c) => c.parse::<i64>().map_err(|_| {
            ApiError::bad_request(
                "bad_query",
                "cursor is not a cursor from this API",
                Some("cursor"),
            )
        })?,
    };
    let mut c = s.store.conn().await?;
    let mut people = repo::people_after(&mut c, after, limit + 1).await?;
    let next_cursor = if people.len() as i64 > limit {
        people.truncate(limit as usize);
        people.last().map(|p| p.id.to_string())
    } else {
        None
    };
    Ok(Json(Page {
        people,
        next_cursor,
    }))
}

#[derive(Serialize)]
pub struct PersonView {
    person: Person,
    stage: Stage,
    history: Vec<Transition>,
}

async fn find(c: &mut tandem_store::AnyConnection, ext: &str) -> Result<Person, ApiError> {
    repo::person_by_external(c, ext)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("person `{ext}`")))
}

/// `GET /api/v1/people/{external_id}`: the person, current stage and history.
#[utoipa::path(
    get,
    path = "/api/v1/people/{external_id}",
    tag = "people",
    security(("bearer" = [])),
    params(("external_id" = String, Path, description = "External id")),
    responses((status = 200, description = "OK", body = serde_json::Value), (status = 400, description = "Bad query or malformed JSON", body = ErrorEnvelope), (status = 401, description = "No valid token", body = ErrorEnvelope), (status = 403, description = "Role may not do this", body = ErrorEnvelope), (status = 404, description = "Unknown id", body = ErrorEnvelope))
)]
#[tracing::instrument(skip_all)]
pub async fn show(
    State(s): State<AppState>,
    caller: Caller,
    Path(ext): Path<String>,
) -> Result<Json<PersonView>, ApiError> {
    caller.require(Action::Read)?;
    let mut c = s.store.conn().await?;
    let person = find(&mut c, &ext).await?;
    let history = repo::transitions_of(&mut c, Subject::Person(person.id)).await?;
    Ok(Json(PersonView {
        stage: Stage::replay(&history),
        person,
        history,
    }))
}

/// Body of accept and reject.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MoveBody {
    /// Who moves the lead (default: the token's name).
    pub(crate) actor: Option<String>,
    /// Reason code from the playbook (required to reject).
    pub(crate) reason: Option<String>,
    pub(crate) note: Option<String>,
    /// Reject to the recycle stage instead of disqualifying.
    #[serde(default)]
    pub(crate) recycle: bool,
    /// When the move happened (default: now); ISO 8601.
    pub(crate) at: Option<String>,
}

#[derive(Serialize)]
pub struct Moved {
    /// Transitions appended by this request (automatic catch-up first).
    appended: Vec<Transition>,
    stage: Stage,
}

/// Where a move goes.
#[derive(Clone, Copy)]
pub(crate) enum Pick<'a> {
    Accept,
    Reject,
    /// The recycle off-ramp (reason required).
    Recycle,
    /// A named stage.
    Stage(&'a str),
}

fn rule(e: lifecycle::LifecycleError) -> ApiError {
    let field = matches!(
        e,
        lifecycle::LifecycleError::ReasonRequired(_)
            | lifecycle::LifecycleError::UnknownReason(_)
            | lifecycle::LifecycleError::ReasonDoesNotApply { .. }
    )
    .then_some("reason");
    ApiError::unprocessable("rule_refused", e.to_string(), field)
}

/// Applies a manual move to the person `ext` (sales, admin) in one
/// transaction: nothing is stored when the rules refuse.
pub(crate) async fn apply(
    s: &AppState,
    caller: &Caller,
    ext: &str,
    b: MoveBody,
    pick: Pick<'_>,
) -> Result<Moved, ApiError> {
    caller.require(Action::MoveLeads)?;
    let pb = s.playbook();
    let pb = &*pb;
    if matches!(pick, Pick::Reject | Pick::Recycle) && b.reason.as_deref().is_none_or(str::is_empty)
    {
        return Err(ApiError::unprocessable(
            "reason_required",
            "rejecting or recycling a lead needs a reason code from the playbook",
            Some("reason"),
        ));
    }
    if let Pick::Stage(st) = pick {
        if pb.stage(st).is_none() {
            return Err(ApiError::unprocessable(
                "unknown_stage",
                format!("`{st}` is not a stage of the playbook"),
                Some("stage"),
            ));
        }
    }
    let at = match &b.at {
        Some(t) => Timestamp::parse(t)
            .map_err(|e| ApiError::unprocessable("invalid_body", e.to_string(), Some("at")))?,
        None => now(),
    };
    let actor = b.actor.clone().unwrap_or_else(|| caller.0.name.clone());
    let mut tx = s.store.begin().await?;
    let p = find(tx.conn(), ext).await?;
    let r = engine::MoveRequest {
        target: match pick {
            Pick::Accept => engine::Target::Accept,
            Pick::Reject => engine::Target::Reject { recycle: b.recycle },
            Pick::Recycle => engine::Target::Reject { recycle: true },
            Pick::Stage(st) => engine::Target::Stage(st),
        },
        at,
        actor: &actor,
        reason: b.reason.as_deref(),
        note: b.note.as_deref(),
    };
    let engine::Moved {
        stage: target,
        appended,
    } = engine::move_person_to(tx.conn(), pb, p.id, &r)
        .await
        .map_err(|e| match e {
            MoveError::Rule(r) => rule(r),
            MoveError::Store(s) => s.into(),
        })?;
    let history = repo::transitions_of(tx.conn(), Subject::Person(p.id)).await?;
    tx.commit().await?;
    tracing::info!(person.id = p.id, stage.to = %target, "lead moved");
    Ok(Moved {
        appended,
        stage: Stage::replay(&history),
    })
}

/// `POST /api/v1/people/{external_id}/accept` (sales, admin).
#[utoipa::path(
    post,
    path = "/api/v1/people/{external_id}/accept",
    tag = "transitions",
    security(("bearer" = [])),
    params(("external_id" = String, Path, description = "External id")),
    request_body = MoveBody,
    responses((status = 200, description = "OK", body = serde_json::Value), (status = 400, description = "Bad query or malformed JSON", body = ErrorEnvelope), (status = 401, description = "No valid token", body = ErrorEnvelope), (status = 403, description = "Role may not do this", body = ErrorEnvelope), (status = 404, description = "Unknown id", body = ErrorEnvelope), (status = 413, description = "Body too large", body = ErrorEnvelope), (status = 422, description = "Invalid body or refused by the rules", body = ErrorEnvelope))
)]
#[tracing::instrument(skip_all)]
pub async fn accept(
    State(s): State<AppState>,
    caller: Caller,
    Path(ext): Path<String>,
    ApiJson(b): ApiJson<MoveBody>,
) -> Result<Json<Moved>, ApiError> {
    apply(&s, &caller, &ext, b, Pick::Accept).await.map(Json)
}

/// `POST /api/v1/people/{external_id}/reject` (sales, admin).
#[utoipa::path(
    post,
    path = "/api/v1/people/{external_id}/reject",
    tag = "transitions",
    security(("bearer" = [])),
    params(("external_id" = String, Path, description = "External id")),
    request_body = MoveBody,
    responses((status = 200, description = "OK", body = serde_json::Value), (status = 400, description = "Bad query or malformed JSON", body = ErrorEnvelope), (status = 401, description = "No valid token", body = ErrorEnvelope), (status = 403, description = "Role may not do this", body = ErrorEnvelope), (status = 404, description = "Unknown id", body = ErrorEnvelope), (status = 413, description = "Body too large", body = ErrorEnvelope), (status = 422, description = "Invalid body or refused by the rules", body = ErrorEnvelope))
)]
#[tracing::instrument(skip_all)]
pub async fn reject(
    State(s): State<AppState>,
    caller: Caller,
    Path(ext): Path<String>,
    ApiJson(b): ApiJson<MoveBody>,
) -> Result<Json<Moved>, ApiError> {
    apply(&s, &caller, &ext, b, Pick::Reject).await.map(Json)
}
