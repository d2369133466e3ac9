//! Prometheus metrics at `GET /metrics`, from a small hand-rolled registry:
//! a few counters and one latency histogram cost less to compile and read
//! than a metrics framework.
//!
//! The registry is process-wide ([`registry`]): counters describe the
//! process, whatever number of routers it serves.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Upper bounds (seconds) of the request latency histogram buckets.
pub const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Default)]
struct Histogram {
    /// Count per bucket (not cumulative); the last slot is `+Inf`.
    buckets: [u64; BUCKETS.len() + 1],
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        let i = BUCKETS
            .iter()
            .position(|b| seconds <= *b)
            .unwrap_or(BUCKETS.len());
        self.buckets[i] += 1;
        self.sum += seconds;
        self.count += 1;
    }
}

/// Every metric tandem exports.
#[derive(Default)]
pub struct Registry {
    /// (route, method, status) → requests.
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    /// route → latency.
    latency: Mutex<BTreeMap<String, Histogram>>,
    /// Segment messages stored.
    pub ingest_accepted: AtomicU64,
    /// Segment messages whose messageId was already stored.
    pub ingest_duplicate: AtomicU64,
    /// Segment messages refused (bad field, rejected by the store).
    pub ingest_rejected: AtomicU64,
    /// Alert webhooks delivered (2xx).
    pub alerts_sent: AtomicU64,
    /// Alert webhook attempts that failed.
    pub alerts_failed: AtomicU64,
}

static REGISTRY: LazyLock<Registry> = LazyLock::new(Registry::default);

/// The process-wide registry.
pub fn registry() -> &'static Registry {
    &REGISTRY
}

impl Registry {
    /// Counts one answered request.
    pub fn observe_request(&self, route: &str, method: &str, status: u16, seconds: f64) {
        if let Ok(mut m) = self.requests.lock() {
            *m.entry((route.to_string(), method.to_string(), status))
                .or_default() += 1;
        }
        if let Ok(mut m) = self.latency.lock() {
            m.entry(route.to_string()).or_default().observe(seconds);
        }
    }

    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// The Prometheus text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP tandem_http_requests_total HTTP requests answered, by route, method and status.\n");
        out.push_str("# TYPE tandem_http_requests_total counter\n");
        if let Ok(m) = self.requests.lock() {
            for ((route, method, status), n) in m.iter() {
                let _ = writeln!(
                    out,
                    "tandem_http_requests_total{{route=\"{}\",method=\"{}\",status=\"{status}\"}} {n}",
                    escape(route),
                    escape(method)
                );
            }
        }
        out.push_str("# HELP tandem_http_request_duration_seconds Time to answer an HTTP request, by route.\n");
        out.push_str("# TYPE tandem_http_request_duration_seconds histogram\n");
        if let Ok(m) = self.latency.lock() {
            for (route, h) in m.iter() {
                let route = escape(route);
                let mut cumulative = 0;
                for (i, le) in BUCKETS.iter().enumerate() {
                    cumulative += h.buckets[i];
                    let _ = writeln!(
                        out,
                        "tandem_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{le}\"}} {cumulative}"
                    );
                }
                let _ = writeln!(
                    out,
                    "tandem_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}",
                    h.count
                );
                let _ = writeln!(
                    out,
                    "tandem_http_request_duration_seconds_sum{{route=\"{route}\"}} {}",
                    h.sum
                );
                let _ = writeln!(
                    out,
                    "tandem_http_request_duration_seconds_count{{route=\"{route}\"}} {}",
                    h.count
                );
            }
        }
        out.push_str("# HELP tandem_ingest_messages_total Segment messages received, by result.\n");
        out.push_str("# TYPE tandem_ingest_messages_total counter\n");
        for (result, c) in [
            ("accepted", &self.ingest_accepted),
            ("duplicate", &self.ingest_duplicate),
            ("rejected", &self.ingest_rejected),
        ] {
            let _ = writeln!(
                out,
                "tandem_ingest_messages_total{{result=\"{result}\"}} {}",
                c.load(Ordering::Relaxed)
            );
        }
        out.push_str("# HELP tandem_alerts_total Alert webhook attempts, by result.\n");
        out.push_str("# TYPE tandem_alerts_total counter\n");
        for (result, c) in [("sent", &self.alerts_sent), ("failed", &self.alerts_failed)] {
            let _ = writeln!(
                out,
                "tandem_alerts_total{{result=\"{result}\"}} {}",
                c.load(Ordering::Relaxed)
            );
        }
        out
    }
}

/// Label values escape `\`, `"` and newlines.
fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Middleware: counts every request under its route template
/// (`/api/v1/people/{external_id}`, never the raw path, so ids do not
/// explode the label set); unrouted requests count as `unmatched`.
pub async fn track(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let method = req.method().to_string();
    let start = Instant::now();
    let res = next.run(req).await;
    registry().observe_request(
        &route,
        &method,
        res.status().as_u16(),
        start.elapsed().as_secs_f64(),
    );
    res
}

/// `GET /metrics`: the registry in Prometheus text format. Unauthenticated,
/// as scrapers expect; it holds counts only, no names or ids.
#[utoipa::path(get, path = "/metrics", tag = "ops",
    responses((status = 200, description = "Prometheus text format 0.0.4", content_type = "text/plain")))]
pub async fn metrics() -> Response {
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        registry().render(),
    )
        .into_response()
}

/// The ops endpoints for the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(metrics))]
pub struct OpsApi;
