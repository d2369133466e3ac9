//! tandem-server: the HTTP API of `tandem serve`.
//!
//! [`app`] builds the whole router; `main` (the `tandem serve` command) and
//! the tests use the same one. Every handler returns [`ApiError`] on failure,
//! which answers with `{"error": {"code", "message", "field"}}`.

pub mod alerts;
pub mod auth;
pub mod config;
pub mod error;
mod extract;
pub mod limit;
mod metrics;
pub mod openapi;
mod people;
pub mod playbook;
pub mod report_task;
mod resources;
pub mod segment;
mod targets;
pub mod telemetry;
pub mod warm;
pub mod web;

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use tandem_core::playbook::Playbook;
use tandem_core::Timestamp;
use tandem_store::Store;
use tokio::net::TcpListener;
use tracing::Instrument;

pub use error::ApiError;
pub use playbook::SharedPlaybook;

/// Largest accepted request body.
pub const BODY_LIMIT: usize = 1024 * 1024;

/// Longest a request may take before it is answered with 503 `timeout`.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What every handler shares.
#[derive(Clone, Debug)]
pub struct AppState {
    pub store: Store,
    /// Swappable at runtime by `PUT /api/v1/playbook`.
    pub playbook: SharedPlaybook,
}

impl AppState {
    /// The playbook requests are answered with.
    pub fn playbook(&self) -> Arc<Playbook> {
        self.playbook.get()
    }
}

/// The whole HTTP API, with a warm history of its own that the first
/// metric request reads.
pub fn app(state: AppState) -> Router {
    app_with(state, warm::Warm::default())
}

/// [`app`] over a given warm history (shared by the API and the dashboard).
pub fn app_with(state: AppState, warm: warm::Warm) -> Router {
    let api = Router::new()
        .route("/people", get(people::list))
        .route("/people/{external_id}", get(people::show))
        .route("/people/{external_id}/accept", post(people::accept))
        .route("/people/{external_id}/reject", post(people::reject))
        .route("/metrics/funnel", get(metrics::funnel))
        .route("/metrics/waterfall", get(metrics::waterfall))
        .route("/metrics/stalled", get(metrics::stalled))
        .route("/playbook", get(playbook::show).put(playbook::replace))
        .route("/alerts", get(alerts::list))
        .merge(resources::routes())
        .merge(targets::routes());
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/api/openapi.json", get(openapi::document))
        .route("/metrics", get(telemetry::metrics))
        .merge(segment::routes())
        .nest("/api/v1", api)
        .merge(web::routes())
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn(catch_panic))
        .layer(middleware::from_fn(timeout))
        .layer(middleware::from_fn(trace))
        .layer(middleware::from_fn(telemetry::track))
        .layer(middleware::from_fn_with_state(
            limit::AuthLimiter::default(),
            limit::guard,
        ))
        .layer(middleware::from_fn(web::security_headers))
        .layer(axum::Extension(warm))
        .with_state(state)
}

/// Serves [`app`] on `listener` until `shutdown` resolves; requests in flight
/// then finish before this returns. Each request knows its peer address
/// (`ConnectInfo`), which [`limit`] keys failed sign-ins by.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_kept(listener, state, warm::Warm::default(), shutdown).await
}

/// [`serve`] with the warm history `warm`, which others (the alert
/// evaluator) may share.
async fn serve_kept(
    listener: TcpListener,
    state: AppState,
    warm: warm::Warm,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // Read the history while the server starts listening, not on the
    // first page view.
    let preload = warm.preload(&state.store);
    let served = axum::serve(
        listener,
        app_with(state, warm).into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await;
    preload.abort();
    served
}

/// [`serve`] plus this instance's alert evaluator ([`alerts::Alerter`]),
/// when any webhook is configured, and the weekly report task
/// ([`report_task`], which does nothing unless the playbook has
/// `[report.smtp]`). All stop when `shutdown` resolves: the server after
/// requests in flight finish, the evaluator after its current run.
pub async fn serve_with_alerts(
    listener: TcpListener,
    state: AppState,
    alerts: alerts::AlertConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let warm = warm::Warm::default();
    let evaluator = (!alerts.webhooks.is_empty()).then(|| {
        let a = alerts::Alerter::new(state.store.clone(), state.playbook.clone(), alerts)
            .sharing(warm.clone());
        let mut rx = stopped.clone();
        tokio::spawn(a.run(async move {
            let _ = rx.wait_for(|s| *s).await;
        }))
    });
    let reporter = {
        let mut rx = stopped;
        tokio::spawn(report_task::run(
            state.store.clone(),
            state.playbook.clone(),
            async move {
                let _ = rx.wait_for(|s| *s).await;
            },
        ))
    };
    let served = serve_kept(listener, state, warm, shutdown).await;
    let _ = stop.send(true);
    if let Some(e) = evaluator {
        let _ = e.await;
    }
    let _ = reporter.await;
    served
}

/// Resolves on Ctrl-C or (on Unix) SIGTERM. The SIGTERM handler is
/// installed when this is called, not when the future is first polled:
/// axum polls the shutdown future on a task of its own, which on a busy
/// machine may not have run yet when the server already answers, and a
/// SIGTERM before any handler kills the process outright (no graceful
/// stop, a failed exit status). Call it from inside the runtime.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
    async move {
        let ctrl_c = async {
            if let Err(e) = tokio::signal::ctrl_c().await {
                tracing::warn!(error = %e, "cannot listen for Ctrl-C");
                std::future::pending::<()>().await;
            }
        };
        #[cfg(unix)]
        let term = async move {
            match term {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for SIGTERM");
                    std::future::pending::<()>().await;
                }
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            () = ctrl_c => {},
            () = term => {},
        }
        tracing::info!("shutting down; finishing requests in flight");
    }
}

/// The current instant.
pub(crate) fn now() -> Timestamp {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    Timestamp::from_millis(ms)
}

/// A handler that panics answers 500 with the error envelope, and the
/// panic's message goes to the log in the request's span; uncaught, the
/// panic drops the connection and the client sees no answer at all.
async fn catch_panic(req: Request, next: Next) -> Response {
    let mut run = Box::pin(next.run(req));
    let caught = std::future::poll_fn(|cx| {
        match std::panic::catch_unwind(AssertUnwindSafe(|| run.as_mut().poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(r)) => Poll::Ready(Ok(r)),
            Err(panic) => Poll::Ready(Err(panic)),
        }
    });
    match caught.await {
        Ok(r) => r,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            ApiError::Internal(format!("the handler panicked: {what}").into()).into_response()
        }
    }
}

async fn timeout(req: Request, next: Next) -> Response {
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(req)).await {
        Ok(r) => r,
        Err(_) => ApiError::Timeout.into_response(),
    }
}

/// One span per request with method, path, status and latency.
async fn trace(req: Request, next: Next) -> Response {
    let span = tracing::info_span!(
        "http.request",
        http.method = %req.method(),
        http.path = %req.uri().path(),
        auth.token = tracing::field::Empty,
    );
    async move {
        let start = Instant::now();
        let res = next.run(req).await;
        tracing::info!(
            http.status = res.status().as_u16(),
            http.latency_ms = start.elapsed().as_millis() as u64,
            "request"
        );
        res
    }
    .instrument(span)
    .await
}

async fn not_found() -> ApiError {
    ApiError::NotFound("route".into())
}

#[tracing::instrument]
async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

#[tracing::instrument(skip_all)]
async fn readyz(State(s): State<AppState>) -> Response {
    match s.store.ping().await {
        Ok(()) => Json(serde_json::json!({"status": "ready"})).into_response(),
        Err(e) => {
            tracing::warn!(error.cause = %e, "database not reachable");
            (
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                Json(serde_json::json!({"error": {"code": "not_ready", "message": "the database is not reachable", "field": null}})),
            )
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;
    use axum::body::Body;
    use axum::http::StatusCode;
    use tower::ServiceExt;

    /// A panicking handler answers 500 with the envelope, after an await
    /// point too, and the next request is served.
    #[tokio::test]
    async fn a_panicking_handler_answers_500_with_the_envelope() {
        async fn boom() -> &'static str {
            tokio::task::yield_now().await;
            panic!("boom")
        }
        let app: Router = Router::new()
            .route("/boom", get(boom))
            .route("/ok", get(|| async { "ok" }))
            .layer(middleware::from_fn(catch_panic));
        let call = |uri: &'static str| {
            let app = app.clone();
            async move {
                let r = app
                    .oneshot(Request::builder().uri(uri).body(Body::empty()).unwrap())
                    .await
                    .unwrap();
                let status = r.status();
                let body = axum::body::to_bytes(r.into_body(), 1 << 16).await.unwrap();
                (status, String::from_utf8(body.to_vec()).unwrap())
            }
        };
        let (status, body) = call("/boom").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["error"]["code"], "internal", "{body}");
        assert_eq!(
            v["error"]["message"], "internal error",
            "the cause stays in the log"
        );
        assert_eq!(call("/ok").await, (StatusCode::OK, "ok".to_string()));
    }
}
