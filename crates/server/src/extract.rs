//! Extractors whose rejections use the error envelope.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::{AppState, BODY_LIMIT};

/// A JSON body: not JSON → 400 `malformed_json`; JSON of the wrong shape
/// (missing field, wrong type) → 422 `invalid_body` with the field; larger
/// than [`BODY_LIMIT`] → 413.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let json_type = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e: BytesRejection| {
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::TooLarge(BODY_LIMIT)
                } else {
                    ApiError::bad_request("unreadable_body", e.body_text(), None)
                }
            })?;
        // An empty body is `{}` (every field optional), with or without a type.
        let bytes = if bytes.is_empty() {
            Bytes::from_static(b"{}")
        } else if !json_type {
            return Err(ApiError::bad_request(
                "unsupported_media_type",
                "the body must be JSON with Content-Type: application/json",
                None,
            ));
        } else {
            bytes
        };
        match serde_json::from_slice::<T>(&bytes) {
            Ok(v) => Ok(ApiJson(v)),
            Err(e) if e.is_data() => {
                let msg = e.to_string();
                Err(ApiError::unprocessable(
                    "invalid_body",
                    msg.clone(),
                    field_of(&msg).as_deref(),
                ))
            }
            Err(e) => Err(ApiError::bad_request(
                "malformed_json",
                format!("the body is not valid JSON: {e}"),
                None,
            )),
        }
    }
}

/// The field serde names in a data error (`missing field `x``, `unknown
/// field `x``), when it names one.
fn field_of(msg: &str) -> Option<String> {
    let start = msg.find('`')? + 1;
    let len = msg[start..].find('`')?;
    let quoted = &msg[start..start + len];
    (msg.contains("field")).then(|| quoted.to_string())
}

/// Query parameters: unreadable → 400 `bad_query`.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|e| ApiError::bad_request("bad_query", e.body_text(), None))
    }
}
