//! Dashboard sessions: signing in with an API token sets an opaque random
//! session id in an HttpOnly, SameSite=Strict cookie; the server keeps the
//! token's hash and a CSRF token per session, in memory (a restart signs
//! everyone out). Every request looks the token up again by its hash, so a
//! revoked token ends its sessions at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::header::{COOKIE, LOCATION};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use tandem_store::tokens::{self, ApiToken};

use crate::AppState;

/// Name of the session cookie.
pub const COOKIE_NAME: &str = "tandem_session";
/// Name of the pre-login CSRF cookie (double submit on the login form).
pub const LOGIN_COOKIE: &str = "tandem_login";
/// How long a session lives after sign-in.
pub const TTL: Duration = Duration::from_secs(12 * 3600);
/// Most sessions kept at once; the oldest go first beyond this.
const MAX_SESSIONS: usize = 10_000;

#[derive(Clone, Debug)]
struct Session {
    token_hash: String,
    csrf: String,
    created: Instant,
}

/// The server-side session table.
#[derive(Clone, Debug, Default)]
pub struct Sessions(Arc<Mutex<HashMap<String, Session>>>);

/// 32 random bytes as hex.
pub fn random_id() -> Option<String> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).ok()?;
    Some(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// Equal in time independent of where the strings differ.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

impl Sessions {
    /// Starts a session for a token (by its hash); returns the session id.
    pub fn start(&self, token_hash: String) -> Option<String> {
        let id = random_id()?;
        let csrf = random_id()?;
        let mut m = self.0.lock().ok()?;
        m.retain(|_, s| s.created.elapsed() < TTL);
        if m.len() >= MAX_SESSIONS {
            if let Some(oldest) = m
                .iter()
                .min_by_key(|(_, s)| s.created)
                .map(|(k, _)| k.clone())
            {
                m.remove(&oldest);
            }
        }
        m.insert(
            id.clone(),
            Session {
                token_hash,
                csrf,
                created: Instant::now(),
            },
        );
        Some(id)
    }

    /// Ends a session.
    pub fn end(&self, id: &str) {
        if let Ok(mut m) = self.0.lock() {
            m.remove(id);
        }
    }

    fn get(&self, id: &str) -> Option<Session> {
        let m = self.0.lock().ok()?;
        m.get(id).filter(|s| s.created.elapsed() < TTL).cloned()
    }
}

/// The value of cookie `name` in the request headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// `Set-Cookie` value: HttpOnly, SameSite=Strict, path `/`; `Secure` when
/// the request came over https (behind a proxy that says so).
pub fn set_cookie(headers: &HeaderMap, name: &str, value: &str, max_age: Option<u64>) -> String {
    let secure = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"));
    let mut c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict");
    if let Some(a) = max_age {
        c.push_str(&format!("; Max-Age={a}"));
    }
    if secure {
        c.push_str("; Secure");
    }
    c
}

/// A signed-in dashboard user: the live token and the session's CSRF token.
#[derive(Clone, Debug)]
pub struct WebUser {
    pub token: ApiToken,
    pub csrf: String,
    pub session: String,
}

impl WebUser {
    /// True when `given` is this session's CSRF token.
    pub fn csrf_ok(&self, given: &str) -> bool {
        same(&self.csrf, given)
    }
}

/// Not signed in: pages redirect to the login form, in-place requests get 401.
pub struct SignIn {
    next: String,
    fetch: bool,
}

impl IntoResponse for SignIn {
    fn into_response(self) -> Response {
        if self.fetch {
            return (StatusCode::UNAUTHORIZED, "sign in again").into_response();
        }
        let q = super::urlencode(&self.next);
        (
            StatusCode::SEE_OTHER,
            [(LOCATION, format!("/login?next={q}"))],
        )
            .into_response()
    }
}

/// True for requests made by the dashboard's script (they want a fragment).
pub fn is_fetch(headers: &HeaderMap) -> bool {
    headers
        .get("x-requested-with")
        .is_some_and(|v| v.as_bytes() == b"fetch")
}

impl FromRequestParts<AppState> for WebUser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let sessions = parts
            .extensions
            .get::<Sessions>()
            .cloned()
            .unwrap_or_default();
        let next = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".into());
        let sign_in = || {
            SignIn {
                next: next.clone(),
                fetch: is_fetch(&parts.headers),
            }
            .into_response()
        };
        let Some(id) = cookie(&parts.headers, COOKIE_NAME) else {
            return Err(sign_in());
        };
        let Some(s) = sessions.get(&id) else {
            return Err(sign_in());
        };
        let mut c = state
            .store
            .conn()
            .await
            .map_err(|e| crate::ApiError::from(e).into_response())?;
        let found = tokens::find_by_hash(&mut c, &s.token_hash)
            .await
            .map_err(|e| crate::ApiError::from(e).into_response())?;
        match found {
            Some(t) => {
                tracing::Span::current().record("auth.token", t.name.as_str());
                Ok(WebUser {
                    token: t,
                    csrf: s.csrf,
                    session: id,
                })
            }
            None => {
                // Revoked since sign-in.
                sessions.end(&id);
                Err(sign_in())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn cookies_are_found_by_name() {
        let mut h = HeaderMap::new();
        h.insert(COOKIE, "a=1; tandem_session=abc; b=2".parse().unwrap());
        assert_eq!(cookie(&h, "tandem_session").as_deref(), Some("abc"));
        assert_eq!(cookie(&h, "tandem"), None);
    }

    #[test]
    fn set_cookie_is_httponly_strict_and_secure_only_behind_https() {
        let mut h = HeaderMap::new();
        let c = set_cookie(&h, "x", "v", Some(60));
        assert_eq!(c, "x=v; Path=/; HttpOnly; SameSite=Strict; Max-Age=60");
        h.insert("x-forwarded-proto", "https".parse().unwrap());
        assert!(set_cookie(&h, "x", "v", None).ends_with("; Secure"));
    }

    #[test]
    fn sessions_start_and_end() {
        let s = Sessions::default();
        let id = s.start("hash".into()).unwrap();
        assert_eq!(id.len(), 64);
        let got = s.get(&id).unwrap();
        assert_eq!(got.token_hash, "hash");
        assert_eq!(got.csrf.len(), 64);
        assert_ne!(got.csrf, id);
        s.end(&id);
        assert!(s.get(&id).is_none());
    }

    #[test]
    fn same_compares_whole_strings() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "ab"));
    }
}
