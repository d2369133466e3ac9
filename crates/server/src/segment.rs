//! Segment-compatible ingest: `POST /v1/identify`, `/v1/track`, `/v1/page`
//! and `/v1/batch` (the HTTP Tracking API), so existing Segment SDKs can send
//! to tandem unchanged.
//!
//! Auth is Segment's: the write key as the HTTP Basic user name with an empty
//! password, or as `writeKey` in the body; `Authorization: Bearer` works
//! too. A write key is an API token of role marketing or admin. Checking and
//! storing are `tandem_ingest::segment`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::header::AUTHORIZATION;
use axum::http::HeaderMap;
use axum::{Extension, Json};
use base64::Engine;
use serde::Serialize;
use serde_json::Value;
use tandem_ingest::segment::{self, Call, Committer, Message, Outcome};
use tandem_store::tokens::{self, ApiToken, Role};
use tandem_store::{Backend, StoreError};

use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::telemetry::{registry, Registry};
use crate::{now, AppState};

/// The write key of a request: Basic user name, Bearer token, or the body's
/// `writeKey`, in that order.
fn write_key(headers: &HeaderMap, body: &Value) -> Option<String> {
    let header = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok());
    if let Some(h) = header {
        if let Some(b) = h.strip_prefix("Basic ") {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()?;
            let text = String::from_utf8(decoded).ok()?;
            let user = text.split_once(':').map_or(text.as_str(), |(u, _)| u);
            return Some(user.to_string()).filter(|u| !u.is_empty());
        }
        if let Some(t) = h.strip_prefix("Bearer ") {
            return Some(t.trim().to_string()).filter(|t| !t.is_empty());
        }
    }
    body.get("writeKey")
        .and_then(Value::as_str)
        .map(str::to_string)
        .filter(|k| !k.is_empty())
}

/// How long a write key found live is trusted without asking the store.
const KEY_TRUST: Duration = Duration::from_secs(1);

/// Most write keys remembered at once.
const KEYS_MAX: usize = 1024;

/// Write keys found live in the last [`KEY_TRUST`], by hash. A Segment
/// source sends every call with the same key, and looking it up was a
/// pooled connection's round trips per call (a third of a call's store
/// work once the writer held its facts); a key revoked since (by the API
/// or the CLI) is refused again within a second. Unknown keys are never
/// remembered, so a new key works at once.
#[derive(Default)]
struct Keys(Mutex<HashMap<String, (ApiToken, Instant)>>);

impl Keys {
    fn get(&self, hash: &str) -> Option<ApiToken> {
        let keys = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let (t, at) = keys.get(hash)?;
        (at.elapsed() < KEY_TRUST).then(|| t.clone())
    }

    fn put(&self, hash: String, t: ApiToken) {
        let mut keys = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if keys.len() >= KEYS_MAX {
            keys.retain(|_, (_, at)| at.elapsed() < KEY_TRUST);
            if keys.len() >= KEYS_MAX {
                keys.clear();
            }
        }
        keys.insert(hash, (t, Instant::now()));
    }
}

async fn authorize(
    s: &AppState,
    writer: &Writer,
    headers: &HeaderMap,
    body: &Value,
) -> Result<ApiToken, ApiError> {
    let key = write_key(headers, body).ok_or(ApiError::Unauthorized)?;
    let hash = tokens::hash(&key);
    let t = match writer.keys.get(&hash) {
        Some(t) => t,
        None => {
            let mut c = s.store.conn().await?;
            let t = tokens::find_by_hash(&mut c, &hash)
                .await?
                .ok_or(ApiError::Unauthorized)?;
            writer.keys.put(hash, t.clone());
            t
        }
    };
    tracing::Span::current().record("auth.token", t.name.as_str());
    match t.role {
        Role::Marketing | Role::Admin => Ok(t),
        other => Err(ApiError::Forbidden {
            role: other.to_string(),
            action: "ingest events (write keys are marketing or admin tokens)",
        }),
    }
}

/// What an ingest call did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct IngestReply {
    /// Always true on 200, as Segment's API answers.
    pub success: bool,
    /// Messages stored now.
    pub accepted: u64,
    /// Messages whose `messageId` was stored before: acknowledged, nothing changed.
    pub duplicates: u64,
}

/// The ingest side of one app: its write keys found lately, and on SQLite
/// its group committer, started by its first ingest call (inside the
/// runtime). SQLite has a single writer and a disk flush per commit, so
/// concurrent calls are committed together (see [`Committer`]); PostgreSQL
/// takes concurrent transactions and each call keeps its own.
#[derive(Clone, Default)]
pub struct Writer {
    committer: Arc<OnceLock<Committer>>,
    keys: Arc<Keys>,
}

impl Writer {
    async fn ingest(
        &self,
        s: &AppState,
        msgs: Vec<Message>,
        received: tandem_core::Timestamp,
    ) -> Result<Vec<Outcome>, StoreError> {
        if s.store.backend() == Backend::Sqlite {
            let committer = self
                .committer
                .get_or_init(|| Committer::start(s.store.clone()));
            committer.ingest(s.playbook(), msgs, received).await
        } else {
            segment::ingest(&s.store, &s.playbook(), &msgs, received).await
        }
    }
}

fn bad(e: segment::Invalid) -> ApiError {
    ApiError::bad_request("invalid_message", e.to_string(), Some(&e.field))
}

async fn run(
    s: &AppState,
    writer: &Writer,
    headers: &HeaderMap,
    body: Value,
    call: Option<Call>,
) -> Result<Json<IngestReply>, ApiError> {
    authorize(s, writer, headers, &body).await?;
    let received = now();
    let parsed: Result<Vec<Message>, segment::Invalid> = match call {
        Some(c) => segment::parse(&body, Some(c), "", None, received).map(|m| vec![m]),
        None => segment::parse_batch(&body, received),
    };
    let count = match &body.get("batch") {
        Some(Value::Array(a)) if call.is_none() => a.len() as u64,
        _ => 1,
    };
    let msgs = parsed
        .inspect_err(|_| Registry::add(&registry().ingest_rejected, count))
        .map_err(bad)?;
    let outcomes = writer.ingest(s, msgs, received).await.map_err(|e| {
        Registry::add(&registry().ingest_rejected, count);
        ApiError::from(e)
    })?;
    let duplicates = outcomes
        .iter()
        .filter(|o| **o == Outcome::Duplicate)
        .count() as u64;
    let accepted = outcomes.len() as u64 - duplicates;
    Registry::add(&registry().ingest_accepted, accepted);
    Registry::add(&registry().ingest_duplicate, duplicates);
    tracing::info!(
        ingest.accepted = accepted,
        ingest.duplicates = duplicates,
        "ingested"
    );
    Ok(Json(IngestReply {
        success: true,
        accepted,
        duplicates,
    }))
}

/// `POST /v1/identify`: create or update a person from `traits`.
#[utoipa::path(post, path = "/v1/identify", tag = "ingest",
    request_body(content = Object, description = "Segment identify: userId or anonymousId, traits, timestamp, messageId, context"),
    responses(
        (status = 200, description = "Stored, or a replay acknowledged", body = IngestReply),
        (status = 400, description = "A field is wrong; `field` names it"),
        (status = 401, description = "No or unknown write key"),
        (status = 403, description = "The token is not a marketing or admin token"),
    ),
    security(("write_key" = []), ("bearer" = [])))]
#[tracing::instrument(skip_all)]
pub async fn identify(
    State(s): State<AppState>,
    Extension(writer): Extension<Writer>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<Value>,
) -> Result<Json<IngestReply>, ApiError> {
    run(&s, &writer, &headers, body, Some(Call::Identify)).await
}

/// `POST /v1/track`: a touch or a sales activity; the lead's stage is re-evaluated.
#[utoipa::path(post, path = "/v1/track", tag = "ingest",
    request_body(content = Object, description = "Segment track: userId or anonymousId, event, properties, timestamp, messageId, context.campaign (UTM), context.traits"),
    responses(
        (status = 200, description = "Stored, or a replay acknowledged", body = IngestReply),
        (status = 400, description = "A field is wrong; `field` names it"),
        (status = 401, description = "No or unknown write key"),
        (status = 403, description = "The token is not a marketing or admin token"),
    ),
    security(("write_key" = []), ("bearer" = [])))]
#[tracing::instrument(skip_all)]
pub async fn track(
    State(s): State<AppState>,
    Extension(writer): Extension<Writer>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<Value>,
) -> Result<Json<IngestReply>, ApiError> {
    run(&s, &writer, &headers, body, Some(Call::Track)).await
}

/// `POST /v1/page`: a `web_visit` touch.
#[utoipa::path(post, path = "/v1/page", tag = "ingest",
    request_body(content = Object, description = "Segment page: userId or anonymousId, name, properties, timestamp, messageId, context"),
    responses(
        (status = 200, description = "Stored, or a replay acknowledged", body = IngestReply),
        (status = 400, description = "A field is wrong; `field` names it"),
        (status = 401, description = "No or unknown write key"),
        (status = 403, description = "The token is not a marketing or admin token"),
    ),
    security(("write_key" = []), ("bearer" = [])))]
#[tracing::instrument(skip_all)]
pub async fn page(
    State(s): State<AppState>,
    Extension(writer): Extension<Writer>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<Value>,
) -> Result<Json<IngestReply>, ApiError> {
    run(&s, &writer, &headers, body, Some(Call::Page)).await
}

/// `POST /v1/batch`: many calls in one transaction; one bad item refuses the
/// whole batch with 400 naming `batch[i].field`.
#[utoipa::path(post, path = "/v1/batch", tag = "ingest",
    request_body(content = Object, description = "Segment batch: {\"batch\": [messages with type], \"context\", \"sentAt\"}"),
    responses(
        (status = 200, description = "Every message stored or acknowledged", body = IngestReply),
        (status = 400, description = "An item is wrong (`batch[i].field`); nothing was stored"),
        (status = 401, description = "No or unknown write key"),
        (status = 403, description = "The token is not a marketing or admin token"),
    ),
    security(("write_key" = []), ("bearer" = [])))]
#[tracing::instrument(skip_all)]
pub async fn batch(
    State(s): State<AppState>,
    Extension(writer): Extension<Writer>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<Value>,
) -> Result<Json<IngestReply>, ApiError> {
    run(&s, &writer, &headers, body, None).await
}

/// Declares the `write_key` (HTTP Basic, the key as user name) and `bearer`
/// security schemes the ingest paths name.
struct Schemes;

impl utoipa::Modify for Schemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let c = openapi.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "write_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some(
                        "Segment style: a marketing or admin token as the user name, empty password",
                    ))
                    .build(),
            ),
        );
        c.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The ingest endpoints for the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(identify, track, page, batch),
    components(schemas(IngestReply)),
    modifiers(&Schemes)
)]
pub struct SegmentApi;

/// The ingest routes, merged into [`crate::app`].
pub(crate) fn routes() -> axum::Router<AppState> {
    use axum::routing::post;
    axum::Router::new()
        .route("/v1/identify", post(identify))
        .route("/v1/track", post(track))
        .route("/v1/page", post(page))
        .route("/v1/batch", post(batch))
        .layer(Extension(Writer::default()))
}
