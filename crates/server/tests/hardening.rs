//! API hardening through the in-process router: security headers on every
//! response, the failed-authentication rate limit per client address, and
//! CSRF on every dashboard form.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::Router;
use tandem_core::domain::Person;
use tandem_core::domain::PersonTexts;
use tandem_core::lifecycle::ManualMove;
use tandem_core::playbook::{Playbook, STARTER};
use tandem_core::Timestamp;
use tandem_server::limit::BURST;
use tandem_server::{app, AppState};
use tandem_store::testing::TestDb;
use tandem_store::tokens::{self, Role};
use tandem_store::{lifecycle, repo};
use tower::ServiceExt;

fn t(h: i64) -> Timestamp {
    Timestamp::from_millis(1_767_225_600_000 + h * 3_600_000)
}

struct App {
    db: TestDb,
    router: Router,
    tokens: HashMap<Role, String>,
}

struct Res {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

/// A token per role and two MQLs, `lead-0` and `lead-1`.
async fn setup() -> App {
    let db = TestDb::sqlite().await.unwrap();
    let pb = Playbook::load(STARTER).playbook.unwrap();
    let mut tx = db.store.begin().await.unwrap();
    let mut tok = HashMap::new();
    for role in Role::ALL {
        let (_, s) = tokens::create(tx.conn(), role.as_str(), role, t(0))
            .await
            .unwrap();
        tok.insert(role, s.expose().to_string());
    }
    for i in 0..2 {
        let p = Person {
            texts: PersonTexts::new(&format!("lead-{i}"), None, None, None),
            created_at: t(i),
            ..Person::default()
        };
        let (id, _) = repo::upsert_person(tx.conn(), &p).await.unwrap();
        let mv = ManualMove {
            to: "mql",
            at: t(10),
            actor: "seed",
            reason: None,
            note: None,
        };
        lifecycle::move_person(tx.conn(), &pb, id, &mv)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    let state = AppState {
        store: db.store.clone(),
        playbook: Arc::new(pb).into(),
    };
    App {
        router: app(state),
        db,
        tokens: tok,
    }
}

/// One request as it would arrive from `peer`.
struct Call<'a> {
    method: Method,
    uri: &'a str,
    peer: &'a str,
    headers: Vec<(&'a str, String)>,
    body: Option<(&'a str, String)>,
}

impl<'a> Call<'a> {
    fn new(method: Method, uri: &'a str) -> Self {
        Call {
            method,
            uri,
            peer: "192.0.2.1",
            headers: Vec::new(),
            body: None,
        }
    }

    fn from(mut self, peer: &'a str) -> Self {
        self.peer = peer;
        self
    }

    fn bearer(mut self, token: &str) -> Self {
        self.headers
            .push(("authorization", format!("Bearer {token}")));
        self
    }

    fn header(mut self, name: &'a str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    fn json(mut self, body: &str) -> Self {
        self.body = Some(("application/json", body.into()));
        self
    }

    fn form(mut self, body: &str) -> Self {
        self.body = Some(("application/x-www-form-urlencoded", body.into()));
        self
    }

    async fn send(self, app: &App) -> Res {
        let mut req = Request::builder().method(self.method).uri(self.uri);
        for (k, v) in &self.headers {
            req = req.header(*k, v);
        }
        let body = match self.body {
            Some((kind, b)) => {
                req = req.header("content-type", kind);
                Body::from(b)
            }
            None => Body::empty(),
        };
        let mut req = req.body(body).unwrap();
        let peer: SocketAddr = format!("{}:40000", self.peer).parse().unwrap();
        req.extensions_mut().insert(ConnectInfo(peer));
        let res = app.router.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
            .await
            .unwrap();
        Res {
            status,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }
}

fn header<'a>(r: &'a Res, name: &str) -> &'a str {
    r.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

fn csrf_of(html: &str) -> String {
    let at = html.find(r#"name="csrf" value=""#).expect("a csrf field") + 19;
    html[at..at + 64].to_string()
}

fn cookie_pair(r: &Res, name: &str) -> Option<String> {
    r.headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with(&format!("{name}=")))
        .map(|c| c.split(';').next().unwrap().to_string())
}

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let app = setup().await;
    let admin = app.tokens[&Role::Admin].clone();
    let viewer = app.tokens[&Role::Viewer].clone();
    let calls = [
        (Call::new(Method::GET, "/healthz"), StatusCode::OK),
        (Call::new(Method::GET, "/readyz"), StatusCode::OK),
        (Call::new(Method::GET, "/api/openapi.json"), StatusCode::OK),
        (Call::new(Method::GET, "/metrics"), StatusCode::OK),
        (
            Call::new(Method::GET, "/api/v1/people").bearer(&viewer),
            StatusCode::OK,
        ),
        (
            Call::new(Method::GET, "/api/v1/people"),
            StatusCode::UNAUTHORIZED,
        ),
        (
            Call::new(Method::PUT, "/api/v1/playbook")
                .bearer(&viewer)
                .json("x"),
            StatusCode::FORBIDDEN,
        ),
        (
            Call::new(Method::GET, "/api/v1/people/nobody").bearer(&viewer),
            StatusCode::NOT_FOUND,
        ),
        (
            Call::new(Method::GET, "/api/v1/people?limit=0").bearer(&viewer),
            StatusCode::BAD_REQUEST,
        ),
        (
            Call::new(Method::POST, "/v1/track")
                .bearer(&admin)
                .json("{not json"),
            StatusCode::BAD_REQUEST,
        ),
        (
            Call::new(Method::GET, "/no/such/route"),
            StatusCode::NOT_FOUND,
        ),
        (Call::new(Method::GET, "/login"), StatusCode::OK),
        (Call::new(Method::GET, "/"), StatusCode::SEE_OTHER),
        (Call::new(Method::GET, "/assets/app.css"), StatusCode::OK),
    ];
    for (call, want) in calls {
        let what = format!("{} {}", call.method, call.uri);
        let r = call.send(&app).await;
        assert_eq!(r.status, want, "{what}: {}", r.body);
        let csp = header(&r, "content-security-policy");
        assert!(
            csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"),
            "{what}: CSP `{csp}`"
        );
        assert_eq!(header(&r, "x-content-type-options"), "nosniff", "{what}");
        assert_eq!(header(&r, "x-frame-options"), "DENY", "{what}");
        assert_eq!(header(&r, "referrer-policy"), "same-origin", "{what}");
        // Answers are private unless they are the static assets.
        let cache = header(&r, "cache-control");
        if what.contains("/assets/") {
            assert!(cache.starts_with("public"), "{what}: {cache}");
        } else {
            assert_eq!(cache, "no-store", "{what}");
        }
    }
    app.db.cleanup().await.unwrap();
}

#[tokio::test]
async fn failed_bearer_tokens_are_rate_limited_per_client_address() {
    let app = setup().await;
    let viewer = app.tokens[&Role::Viewer].clone();
    let wrong = format!("tdm_{}", "0".repeat(64));
    for i in 0..BURST {
        let r = Call::new(Method::GET, "/api/v1/people")
            .from("192.0.2.10")
            .bearer(&wrong)
            .send(&app)
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "attempt {i}");
    }
    // Out of attempts: refused before any lookup, with the right token too.
    for token in [&wrong, &viewer] {
        let r = Call::new(Method::GET, "/api/v1/people")
            .from("192.0.2.10")
            .bearer(token)
            .send(&app)
            .await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.body);
        let wait: u64 = header(&r, "retry-after").parse().unwrap();
        assert!((1..=6).contains(&wait), "Retry-After {wait}");
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(v["error"]["code"], "too_many_attempts");
        assert_eq!(header(&r, "x-content-type-options"), "nosniff");
    }
    // Segment write keys (Basic) from that address are refused as well.
    let r = Call::new(Method::POST, "/v1/track")
        .from("192.0.2.10")
        .header("authorization", "Basic eDo=")
        .json(r#"{"userId": "u", "event": "x"}"#)
        .send(&app)
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    // A request without a credential is not an attempt: still a plain 401.
    let r = Call::new(Method::GET, "/api/v1/people")
        .from("192.0.2.10")
        .send(&app)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // Another address is not affected, and successes cost nothing.
    for _ in 0..(2 * BURST) {
        let r = Call::new(Method::GET, "/api/v1/people")
            .from("192.0.2.11")
            .bearer(&viewer)
            .send(&app)
            .await;
        assert_eq!(r.status, StatusCode::OK);
    }
    app.db.cleanup().await.unwrap();
}

#[tokio::test]
async fn failed_write_keys_in_the_body_are_rate_limited() {
    let app = setup().await;
    for i in 0..BURST {
        let r = Call::new(Method::POST, "/v1/track")
            .from("192.0.2.20")
            .json(r#"{"writeKey": "guess", "userId": "u", "event": "x"}"#)
            .send(&app)
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNAUTHORIZED,
            "attempt {i}: {}",
            r.body
        );
    }
    let admin = app.tokens[&Role::Admin].clone();
    let r = Call::new(Method::POST, "/v1/track")
        .from("192.0.2.20")
        .json(&format!(
            r#"{{"writeKey": "{admin}", "userId": "u", "event": "x"}}"#
        ))
        .send(&app)
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(!header(&r, "retry-after").is_empty());
    app.db.cleanup().await.unwrap();
}

/// A fresh sign-in form: its nonce cookie pair and CSRF field.
async fn login_form(app: &App, peer: &str) -> (String, String) {
    let form = Call::new(Method::GET, "/login").from(peer).send(app).await;
    assert_eq!(form.status, StatusCode::OK);
    (
        cookie_pair(&form, "tandem_login").unwrap(),
        csrf_of(&form.body),
    )
}

#[tokio::test]
async fn failed_dashboard_sign_ins_are_rate_limited() {
    let app = setup().await;
    let peer = "192.0.2.30";
    for i in 0..BURST {
        let (nonce, csrf) = login_form(&app, peer).await;
        let r = Call::new(Method::POST, "/login")
            .from(peer)
            .header("cookie", nonce)
            .form(&format!("token=tdm_guess{i}&csrf={csrf}&next=%2F"))
            .send(&app)
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "attempt {i}");
        assert!(r.body.contains("unknown or revoked"), "{}", r.body);
    }
    // The right token now waits too; the form itself still shows.
    let (nonce, csrf) = login_form(&app, peer).await;
    let r = Call::new(Method::POST, "/login")
        .from(peer)
        .header("cookie", nonce)
        .form(&format!(
            "token={}&csrf={csrf}&next=%2F",
            app.tokens[&Role::Sales]
        ))
        .send(&app)
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = header(&r, "retry-after").parse().unwrap();
    assert!((1..=6).contains(&wait));
    assert!(r.body.contains("Too many failed sign-ins"), "{}", r.body);
    assert!(cookie_pair(&r, "tandem_session").is_none());
    // From another address the same token signs in.
    let (nonce, csrf) = login_form(&app, "192.0.2.31").await;
    let r = Call::new(Method::POST, "/login")
        .from("192.0.2.31")
        .header("cookie", nonce)
        .form(&format!(
            "token={}&csrf={csrf}&next=%2F",
            app.tokens[&Role::Sales]
        ))
        .send(&app)
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(cookie_pair(&r, "tandem_session").is_some());
    app.db.cleanup().await.unwrap();
}

/// Signs in as `role`; the session cookie pair and the page's CSRF token.
async fn session(app: &App, role: Role) -> (String, String) {
    let (nonce, csrf) = login_form(app, "192.0.2.40").await;
    let r = Call::new(Method::POST, "/login")
        .from("192.0.2.40")
        .header("cookie", nonce)
        .form(&format!("token={}&csrf={csrf}&next=%2F", app.tokens[&role]))
        .send(app)
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let cookie = cookie_pair(&r, "tandem_session").unwrap();
    let page = Call::new(Method::GET, "/sla")
        .header("cookie", cookie.clone())
        .send(app)
        .await;
    assert_eq!(page.status, StatusCode::OK);
    (cookie, csrf_of(&page.body))
}

async fn stage_count(app: &App, ext: &str) -> usize {
    let mut c = app.db.store.conn().await.unwrap();
    let snap = repo::snapshot(&mut c).await.unwrap();
    let id = snap
        .people
        .iter()
        .find(|p| *p.external_id() == *ext)
        .unwrap()
        .id;
    snap.transitions
        .iter()
        .filter(|t| t.subject == tandem_core::domain::Subject::Person(id))
        .count()
}

#[tokio::test]
async fn dashboard_forms_refuse_a_missing_or_wrong_csrf_token() {
    let app = setup().await;
    let (sales, csrf) = session(&app, Role::Sales).await;
    let (_, other_csrf) = session(&app, Role::Sales).await;
    assert_ne!(csrf, other_csrf, "each session has its own token");
    let before = stage_count(&app, "lead-0").await;

    // The inbox move: no token, a wrong one, another session's one.
    for form in [
        "action=accept".to_string(),
        "csrf=&action=accept".to_string(),
        format!("csrf={}&action=accept", "0".repeat(64)),
        format!("csrf={other_csrf}&action=accept"),
    ] {
        let r = Call::new(Method::POST, "/sla/lead-0")
            .header("cookie", sales.clone())
            .form(&form)
            .send(&app)
            .await;
        assert!(
            r.status.is_client_error(),
            "{form}: {} {}",
            r.status,
            r.body
        );
    }
    assert_eq!(stage_count(&app, "lead-0").await, before, "nothing moved");
    // With the session's own token the same move lands.
    let r = Call::new(Method::POST, "/sla/lead-0")
        .header("cookie", sales.clone())
        .form(&format!("csrf={csrf}&action=accept"))
        .send(&app)
        .await;
    assert!(
        r.status.is_success() || r.status.is_redirection(),
        "{} {}",
        r.status,
        r.body
    );
    assert_eq!(stage_count(&app, "lead-0").await, before + 1);

    // Sign-out with a wrong token keeps the session.
    for form in ["".to_string(), format!("csrf={other_csrf}")] {
        let r = Call::new(Method::POST, "/logout")
            .header("cookie", sales.clone())
            .form(&form)
            .send(&app)
            .await;
        assert!(r.status.is_client_error(), "logout `{form}`: {}", r.status);
    }
    let r = Call::new(Method::GET, "/sla")
        .header("cookie", sales.clone())
        .send(&app)
        .await;
    assert_eq!(r.status, StatusCode::OK, "still signed in");

    // Sign-in without the form's nonce cookie, or with another form's token.
    let (nonce, _) = login_form(&app, "192.0.2.41").await;
    let (_, csrf_b) = login_form(&app, "192.0.2.41").await;
    let token = &app.tokens[&Role::Admin];
    for (cookie, field) in [
        (None, csrf_b.clone()),
        (Some(nonce.clone()), csrf_b.clone()),
        (Some(nonce.clone()), String::new()),
    ] {
        let mut call = Call::new(Method::POST, "/login")
            .from("192.0.2.41")
            .form(&format!("token={token}&csrf={field}&next=%2F"));
        if let Some(c) = cookie {
            call = call.header("cookie", c);
        }
        let r = call.send(&app).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
        assert!(cookie_pair(&r, "tandem_session").is_none());
    }
    app.db.cleanup().await.unwrap();
}
