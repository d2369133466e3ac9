//! JSON REST for the records behind the numbers: accounts, touches,
//! activities, deals, campaigns, feedback, goals, lead transitions, tokens
//! and every metric the CLI prints. [`routes`] is merged under `/api/v1`.
//!
//! Lists share one shape, `{"items": [...], "next_cursor": "…" | null}`:
//! pass `next_cursor` back as `cursor` for the next page; `limit` is 1..=500
//! (default 50). Creates are upserts keyed by `external_id`: 201 when the
//! record is new, 200 when it was updated or already equal, with the
//! transitions the re-evaluation appended.

pub(crate) mod accounts;
pub(crate) mod activities;
pub(crate) mod campaigns;
pub(crate) mod deals;
pub(crate) mod feedback;
pub(crate) mod goals;
pub(crate) mod numbers;
pub(crate) mod tokens;
pub(crate) mod touches;
pub(crate) mod transitions;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tandem_core::domain::Transition;
use tandem_core::playbook::Playbook;
use tandem_core::Timestamp;
use tandem_store::repo::{self, Upsert};
use tandem_store::write::Saved as StoreSaved;
use tandem_store::AnyConnection;

use crate::error::ApiError;
use crate::AppState;

/// Default and largest page size.
pub(crate) const DEFAULT_LIMIT: i64 = 50;
pub(crate) const MAX_LIMIT: i64 = 500;

/// Every route of this module (relative to `/api/v1`).
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/accounts", get(accounts::list).post(accounts::save))
        .route("/accounts/{external_id}", get(accounts::show))
        .route("/touches", get(touches::list).post(touches::save))
        .route("/touches/{external_id}", get(touches::show))
        .route("/activities", get(activities::list).post(activities::save))
        .route("/activities/{external_id}", get(activities::show))
        .route("/deals", get(deals::list).post(deals::save))
        .route("/deals/{external_id}", get(deals::show))
        .route("/campaigns", get(campaigns::list).post(campaigns::save))
        .route("/campaigns/{external_id}", get(campaigns::show))
        .route(
            "/people/{external_id}/transitions",
            get(transitions::history),
        )
        .route("/people/{external_id}/recycle", post(transitions::recycle))
        .route("/people/{external_id}/stage", post(transitions::stage))
        .route("/feedback", get(feedback::list).post(feedback::create))
        .route(
            "/feedback/{id}",
            get(feedback::show).patch(feedback::update),
        )
        .route("/feedback/{id}/comments", post(feedback::comment))
        .route("/goals", get(goals::list))
        .route("/tokens", get(tokens::list).post(tokens::create))
        .route("/tokens/{id}", axum::routing::delete(tokens::revoke))
        .route("/metrics/scorecard", get(numbers::scorecard))
        .route("/metrics/sla", get(numbers::sla))
        .route("/metrics/gaps", get(numbers::gaps))
        .route("/metrics/plan", get(numbers::plan))
        .route("/metrics/quality", get(numbers::quality))
        .route("/metrics/attribution", get(numbers::attribution))
}

/// `limit` and `cursor` of every list.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Paging {
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

impl Paging {
    /// `(after, limit)`: the id to continue after and the page size.
    pub fn read(&self) -> Result<(i64, i64), ApiError> {
        let limit = page_limit(self.limit)?;
        let after = match self.cursor.as_deref() {
            None | Some("") => 0,
            Some(c) => c
                .parse::<i64>()
                .ok()
                .filter(|v| *v >= 0)
                .ok_or_else(bad_cursor)?,
        };
        Ok((after, limit))
    }
}

/// The page size asked for: 1..=500, default 50.
pub(crate) fn page_limit(limit: Option<i64>) -> Result<i64, ApiError> {
    let limit = limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(
            "bad_query",
            format!("limit must be between 1 and {MAX_LIMIT}"),
            Some("limit"),
        ));
    }
    Ok(limit)
}

fn bad_cursor() -> ApiError {
    ApiError::bad_request(
        "bad_query",
        "cursor is not a cursor from this API",
        Some("cursor"),
    )
}

/// The cursor of a metric's list, which is sorted by a key of `N` integers
/// rather than by id (handoffs by entry time, person and entry sequence): the key
/// of the last row of the page before, written `a:b:…`. Rows are listed
/// strictly after it, so a page stays put while rows are added elsewhere.
pub(crate) fn key_cursor<const N: usize>(
    cursor: Option<&str>,
) -> Result<Option<[i64; N]>, ApiError> {
    let Some(c) = cursor.filter(|c| !c.is_empty()) else {
        return Ok(None);
    };
    let mut key = [0; N];
    let mut parts = c.split(':');
    for k in &mut key {
        *k = parts
            .next()
            .and_then(|p| p.parse().ok())
            .ok_or_else(bad_cursor)?;
    }
    if parts.next().is_some() {
        return Err(bad_cursor());
    }
    Ok(Some(key))
}

/// A key as a cursor (see [`key_cursor`]).
pub(crate) fn key_text<const N: usize>(key: [i64; N]) -> String {
    key.map(|k| k.to_string()).join(":")
}

/// One page of a list.
#[derive(Debug, Serialize)]
pub(crate) struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// A page from `limit + 1` fetched rows: the extra row only says there is more.
    pub fn of(mut rows: Vec<T>, limit: i64, id: impl Fn(&T) -> i64) -> Page<T> {
        let next_cursor = if rows.len() as i64 > limit {
            rows.truncate(limit as usize);
            rows.last().map(|r| id(r).to_string())
        } else {
            None
        };
        Page {
            items: rows,
            next_cursor,
        }
    }
}

/// The answer to an upsert.
#[derive(Debug, Serialize)]
pub(crate) struct Saved<T> {
    /// `inserted`, `updated` or `unchanged`.
    pub result: &'static str,
    pub record: T,
    /// Transitions the re-evaluation appended.
    pub transitions: Vec<Transition>,
}

impl<T: Serialize> Saved<T> {
    pub fn new(s: StoreSaved, record: T) -> Saved<T> {
        Saved {
            result: match s.upsert {
                Upsert::Inserted => "inserted",
                Upsert::Updated => "updated",
                Upsert::Unchanged => "unchanged",
            },
            record,
            transitions: s.transitions,
        }
    }
}

impl<T: Serialize> IntoResponse for Saved<T> {
    fn into_response(self) -> Response {
        let status = if self.result == "inserted" {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        (status, Json(self)).into_response()
    }
}

/// A time parameter: ISO 8601 instant or date (midnight in the company
/// timezone). Bad → 400 `bad_query` naming the parameter.
pub(crate) fn query_time(
    pb: &Playbook,
    field: &str,
    v: Option<&str>,
) -> Result<Option<Timestamp>, ApiError> {
    v.map(|s| {
        Timestamp::parse_in(s, &pb.company.timezone)
            .map_err(|e| ApiError::bad_request("bad_query", format!("{field}: {e}"), Some(field)))
    })
    .transpose()
}

/// A time in a body; bad → 422 `invalid_body` naming the field.
pub(crate) fn body_time(pb: &Playbook, field: &str, s: &str) -> Result<Timestamp, ApiError> {
    Timestamp::parse_in(s, &pb.company.timezone)
        .map_err(|e| ApiError::unprocessable("invalid_body", format!("{field}: {e}"), Some(field)))
}

/// [`body_time`] for an optional field.
pub(crate) fn body_time_opt(
    pb: &Playbook,
    field: &str,
    s: &Option<String>,
) -> Result<Option<Timestamp>, ApiError> {
    s.as_deref().map(|s| body_time(pb, field, s)).transpose()
}

/// A required, non-blank text field of a body.
pub(crate) fn required(field: &str, v: &str) -> Result<(), ApiError> {
    if v.trim().is_empty() {
        return Err(ApiError::unprocessable(
            "invalid_body",
            format!("{field} must not be empty"),
            Some(field),
        ));
    }
    Ok(())
}

/// An amount in minor units: not negative and at most
/// [`tandem_core::MAX_MINOR`] (ten trillion major units).
pub(crate) fn amount(field: &str, v: Option<i64>) -> Result<(), ApiError> {
    if v.is_some_and(|v| !(0..=tandem_core::MAX_MINOR).contains(&v)) {
        return Err(ApiError::unprocessable(
            "invalid_body",
            format!(
                "{field} must be between 0 and {} minor units",
                tandem_core::MAX_MINOR
            ),
            Some(field),
        ));
    }
    Ok(())
}

/// A count that may not be negative.
pub(crate) fn not_negative(field: &str, v: Option<i64>) -> Result<(), ApiError> {
    if v.is_some_and(|v| v < 0) {
        return Err(ApiError::unprocessable(
            "invalid_body",
            format!("{field} must not be negative"),
            Some(field),
        ));
    }
    Ok(())
}

/// Where a reference to another record appears: a query filter (400) or a
/// body field (422).
#[derive(Clone, Copy)]
pub(crate) enum In {
    Query,
    Body,
}

fn unknown(at: In, field: &str, what: &str, ext: &str) -> ApiError {
    let msg = format!("unknown {what} `{ext}`");
    match at {
        In::Query => ApiError::bad_request("unknown_reference", msg, Some(field)),
        In::Body => ApiError::unprocessable("unknown_reference", msg, Some(field)),
    }
}

/// The store id of the person with external id `ext`.
pub(crate) async fn person_id(
    c: &mut AnyConnection,
    at: In,
    field: &str,
    ext: &str,
) -> Result<i64, ApiError> {
    repo::person_by_external(c, ext)
        .await?
        .map(|p| p.id)
        .ok_or_else(|| unknown(at, field, "person", ext))
}

/// The store id of the account with external id `ext`.
pub(crate) async fn account_id(
    c: &mut AnyConnection,
    at: In,
    field: &str,
    ext: &str,
) -> Result<i64, ApiError> {
    repo::account_by_external(c, ext)
        .await?
        .map(|a| a.id)
        .ok_or_else(|| unknown(at, field, "account", ext))
}

/// [`person_id`] for an optional filter or field.
pub(crate) async fn person_id_opt(
    c: &mut AnyConnection,
    at: In,
    field: &str,
    ext: &Option<String>,
) -> Result<Option<i64>, ApiError> {
    match ext {
        Some(e) => Ok(Some(person_id(c, at, field, e).await?)),
        None => Ok(None),
    }
}

/// [`account_id`] for an optional filter or field.
pub(crate) async fn account_id_opt(
    c: &mut AnyConnection,
    at: In,
    field: &str,
    ext: &Option<String>,
) -> Result<Option<i64>, ApiError> {
    match ext {
        Some(e) => Ok(Some(account_id(c, at, field, e).await?)),
        None => Ok(None),
    }
}
