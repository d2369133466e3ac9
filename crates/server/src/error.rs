//! The one error type of every handler and its JSON envelope:
//! `{"error": {"code", "message", "field"}}`. Database and other internal
//! failures are logged with their cause and answered with a generic 500:
//! no SQL or driver text reaches a client.

use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use tandem_store::StoreError;

/// What a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Bad input: unreadable JSON, a bad query parameter (400).
    #[error("{message}")]
    BadRequest {
        code: &'static str,
        message: String,
        field: Option<String>,
    },
    /// No token, or one that is unknown or revoked (401).
    #[error("a valid bearer token is required")]
    Unauthorized,
    /// The token's role may not do this (403).
    #[error("role `{role}` may not {action}")]
    Forbidden { role: String, action: &'static str },
    /// An unknown id (404).
    #[error("{0} not found")]
    NotFound(String),
    /// The body is larger than the limit (413).
    #[error("the request body is larger than {0} bytes")]
    TooLarge(usize),
    /// Well-formed input the rules refuse, or of the wrong shape (422).
    #[error("{message}")]
    Unprocessable {
        code: &'static str,
        message: String,
        field: Option<String>,
    },
    /// Too many failed authentication attempts from this client (429, with
    /// `Retry-After` in seconds); see `crate::limit`.
    #[error("too many failed authentication attempts; retry in {retry_after} s")]
    TooManyRequests { retry_after: u64 },
    /// The request took longer than the server allows (503).
    #[error("the request timed out")]
    Timeout,
    /// Anything else; logged, never shown (500).
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl ApiError {
    pub fn bad_request(
        code: &'static str,
        message: impl Into<String>,
        field: Option<&str>,
    ) -> Self {
        ApiError::BadRequest {
            code,
            message: message.into(),
            field: field.map(str::to_string),
        }
    }

    pub fn unprocessable(
        code: &'static str,
        message: impl Into<String>,
        field: Option<&str>,
    ) -> Self {
        ApiError::Unprocessable {
            code,
            message: message.into(),
            field: field.map(str::to_string),
        }
    }

    fn status_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::BadRequest { code, .. } => (StatusCode::BAD_REQUEST, code),
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden { .. } => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
            ApiError::Unprocessable { code, .. } => (StatusCode::UNPROCESSABLE_ENTITY, code),
            ApiError::TooManyRequests { .. } => {
                (StatusCode::TOO_MANY_REQUESTS, "too_many_attempts")
            }
            ApiError::Timeout => (StatusCode::SERVICE_UNAVAILABLE, "timeout"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { what } => ApiError::NotFound(what),
            other => ApiError::Internal(Box::new(other)),
        }
    }
}

#[derive(Serialize)]
struct Envelope<'a> {
    error: Body<'a>,
}

#[derive(Serialize)]
struct Body<'a> {
    code: &'a str,
    message: String,
    field: Option<&'a str>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_code();
        if let ApiError::Internal(source) = &self {
            // The cause goes to the log (inside the request span), not the client.
            tracing::error!(error.cause = %source, "request failed");
        }
        let field = match &self {
            ApiError::BadRequest { field, .. } | ApiError::Unprocessable { field, .. } => {
                field.as_deref()
            }
            _ => None,
        };
        let body = Envelope {
            error: Body {
                code,
                message: self.to_string(),
                field,
            },
        };
        let mut res = (status, Json(body)).into_response();
        if let ApiError::TooManyRequests { retry_after } = &self {
            res.headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(*retry_after));
        }
        res
    }
}
