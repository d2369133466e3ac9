//! Rate limit on failed authentication, per client IP address.
//!
//! Every request that presents a credential (an `Authorization` header, a
//! dashboard sign-in `POST /login`, or a Segment call under `/v1/`, whose
//! write key may be in the body) and is answered 401 takes one token from its
//! client's bucket. A bucket holds [`BURST`] tokens and gets one back every
//! [`REFILL`]. While a bucket is empty, every request of that client that
//! presents a credential is answered 429 with `Retry-After` before any
//! lookup, right token or not, so guessing runs at most one try per
//! [`REFILL`]. Requests without a credential (health checks, the sign-in
//! form, `/metrics`) and successful ones cost nothing.
//!
//! The client is the TCP peer address (`ConnectInfo`); behind a reverse proxy
//! every client shares the proxy's address and so its bucket (see
//! RELIABILITY.md). Requests without a peer address (the in-process router in
//! tests) share one bucket.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// Failed attempts a client may make in a row before it must wait.
pub const BURST: u32 = 10;
/// How often a client gets one failed attempt back.
pub const REFILL: Duration = Duration::from_secs(6);
/// Most clients tracked at once; beyond this, full buckets are forgotten
/// first, and if none is full the table starts over.
const MAX_CLIENTS: usize = 100_000;

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The buckets of every client, shared by all requests of one server.
#[derive(Clone, Debug)]
pub struct AuthLimiter {
    buckets: Arc<Mutex<HashMap<IpAddr, Bucket>>>,
    burst: f64,
    refill: Duration,
}

impl Default for AuthLimiter {
    fn default() -> Self {
        AuthLimiter::new(BURST, REFILL)
    }
}

impl AuthLimiter {
    /// A limiter allowing `burst` failures in a row and one more every `refill`.
    pub fn new(burst: u32, refill: Duration) -> Self {
        AuthLimiter {
            buckets: Arc::default(),
            burst: f64::from(burst.max(1)),
            refill: refill.max(Duration::from_millis(1)),
        }
    }

    fn level(&self, b: &Bucket, now: Instant) -> f64 {
        let gained = now.saturating_duration_since(b.at).as_secs_f64() / self.refill.as_secs_f64();
        (b.tokens + gained).min(self.burst)
    }

    /// `Err(wait)` while `ip` has no failed attempt left.
    pub fn check(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let Ok(m) = self.buckets.lock() else {
            return Ok(());
        };
        let Some(b) = m.get(&ip) else {
            return Ok(());
        };
        let level = self.level(b, now);
        if level >= 1.0 {
            Ok(())
        } else {
            Err(self.refill.mul_f64(1.0 - level))
        }
    }

    /// Takes one attempt from `ip`'s bucket.
    pub fn failed(&self, ip: IpAddr, now: Instant) {
        let Ok(mut m) = self.buckets.lock() else {
            return;
        };
        if m.len() >= MAX_CLIENTS && !m.contains_key(&ip) {
            let burst = self.burst;
            m.retain(|_, b| self.level(b, now) < burst);
            if m.len() >= MAX_CLIENTS {
                m.clear();
            }
        }
        let level = match m.get(&ip) {
            Some(b) => self.level(b, now),
            None => self.burst,
        };
        m.insert(
            ip,
            Bucket {
                tokens: (level - 1.0).max(0.0),
                at: now,
            },
        );
    }
}

/// True when the request presents a credential that a 401 refused.
fn presents_credential(req: &Request) -> bool {
    let path = req.uri().path();
    req.headers().contains_key(AUTHORIZATION)
        || (req.method() == Method::POST && (path == "/login" || path.starts_with("/v1/")))
}

/// Seconds for `Retry-After`: whole seconds, at least one.
fn whole_seconds(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// Middleware: refuses clients out of attempts, counts 401s.
pub async fn guard(State(limiter): State<AuthLimiter>, req: Request, next: Next) -> Response {
    if !presents_credential(&req) {
        return next.run(req).await;
    }
    let ip = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED));
    if let Err(wait) = limiter.check(ip, Instant::now()) {
        let secs = whole_seconds(wait);
        tracing::warn!(client.ip = %ip, retry_after = secs, "too many failed sign-ins");
        if req.uri().path() == "/login" {
            return crate::web::WebError::too_many(secs).into_response();
        }
        return ApiError::TooManyRequests { retry_after: secs }.into_response();
    }
    let res = next.run(req).await;
    if res.status() == StatusCode::UNAUTHORIZED {
        limiter.failed(ip, Instant::now());
    }
    res
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_bucket_empties_after_burst_failures_and_refills_one_per_period() {
        let l = AuthLimiter::new(3, Duration::from_secs(6));
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(l.check(a, t0), Ok(()));
            l.failed(a, t0);
        }
        // Empty: a full period to wait.
        assert_eq!(l.check(a, t0), Err(Duration::from_secs(6)));
        // Another client is not affected.
        assert_eq!(l.check(b, t0), Ok(()));
        // 4 s later two thirds of a token are back: 2 s more to wait.
        let wait = l.check(a, t0 + Duration::from_secs(4)).unwrap_err();
        assert!(
            (wait.as_secs_f64() - 2.0).abs() < 1e-6,
            "{wait:?} instead of 2 s"
        );
        // After one period one attempt is back, and only one.
        let t1 = t0 + Duration::from_secs(6);
        assert_eq!(l.check(a, t1), Ok(()));
        l.failed(a, t1);
        assert_eq!(l.check(a, t1), Err(Duration::from_secs(6)));
        // After a long quiet time the bucket is full again, not fuller.
        let t2 = t1 + Duration::from_secs(3600);
        for _ in 0..3 {
            assert_eq!(l.check(a, t2), Ok(()));
            l.failed(a, t2);
        }
        assert!(l.check(a, t2).is_err());
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(whole_seconds(Duration::from_millis(1)), 1);
        assert_eq!(whole_seconds(Duration::from_secs(6)), 6);
        assert_eq!(whole_seconds(Duration::from_millis(5_001)), 6);
    }
}
