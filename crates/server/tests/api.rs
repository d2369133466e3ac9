//! The HTTP API from the outside: every test builds the app through
//! [`TestApp`] on SQLite (and PostgreSQL when `TANDEM_TEST_POSTGRES_URL` is
//! set) and calls it in-process; one test goes through a real socket.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use axum::Router;
use serde_json::Value;
use tandem_core::domain::Person;
use tandem_core::domain::PersonTexts;
use tandem_core::lifecycle::ManualMove;
use tandem_core::metrics::waterfall::{waterfall, WaterfallOptions};
use tandem_core::playbook::{Playbook, STARTER};
use tandem_core::Timestamp;
use tandem_server::{app, AppState};
use tandem_store::testing::TestDb;
use tandem_store::tokens::{self, Role};
use tandem_store::{lifecycle, query, repo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceExt;

/// 2026-01-01T00:00:00Z plus `h` hours.
fn t(h: i64) -> Timestamp {
    Timestamp::from_millis(1_767_225_600_000 + h * 3_600_000)
}

const PEOPLE: usize = 12;

struct TestApp {
    db: TestDb,
    state: AppState,
    router: Router,
    tokens: HashMap<Role, String>,
    revoked: String,
}

#[derive(Default)]
struct TestAppBuilder {
    people: bool,
}

impl TestAppBuilder {
    /// Twelve people, all MQLs; lead-0 and lead-1 accepted to sal, lead-2
    /// disqualified.
    fn with_people(mut self) -> Self {
        self.people = true;
        self
    }

    async fn build(self, db: TestDb) -> TestApp {
        let pb = Playbook::load(STARTER).playbook.unwrap();
        let mut tx = db.store.begin().await.unwrap();
        let mut tok = HashMap::new();
        for role in Role::ALL {
            let (_, s) = tokens::create(tx.conn(), role.as_str(), role, t(0))
                .await
                .unwrap();
            tok.insert(role, s.expose().to_string());
        }
        let (_, revoked) = tokens::create(tx.conn(), "old", Role::Admin, t(0))
            .await
            .unwrap();
        tokens::revoke(tx.conn(), "old", t(1)).await.unwrap();
        if self.people {
            for i in 0..PEOPLE as i64 {
                let p = Person {
                    texts: PersonTexts::new(&format!("lead-{i}"), None, None, None),
                    source: Some(if i % 2 == 0 { "paid_search" } else { "events" }.into()),
                    owner: (i % 3 == 0).then(|| "sam".into()),
                    created_at: t(i),
                    ..Person::default()
                };
                let (id, _) = repo::upsert_person(tx.conn(), &p).await.unwrap();
                let mv = |to, at, reason| ManualMove {
                    to,
                    at,
                    actor: "seed",
                    reason,
                    note: None,
                };
                lifecycle::move_person(tx.conn(), &pb, id, &mv("mql", t(10 + i), None))
                    .await
                    .unwrap();
                match i {
                    0 | 1 => {
                        lifecycle::move_person(tx.conn(), &pb, id, &mv("sal", t(30), None))
                            .await
                            .unwrap();
                    }
                    2 => {
                        lifecycle::move_person(
                            tx.conn(),
                            &pb,
                            id,
                            &mv("disqualified", t(31), Some("not_icp")),
                        )
                        .await
                        .unwrap();
                    }
                    _ => {}
                }
            }
        }
        tx.commit().await.unwrap();
        let state = AppState {
            store: db.store.clone(),
            playbook: Arc::new(pb).into(),
        };
        TestApp {
            router: app(state.clone()),
            state,
            db,
            tokens: tok,
            revoked: revoked.expose().to_string(),
        }
    }
}

impl TestApp {
    /// The stored history, as the core computations read it.
    async fn snapshot(&self) -> repo::Snapshot {
        let mut c = self.db.store.conn().await.unwrap();
        repo::snapshot(&mut c).await.unwrap()
    }

    fn builder() -> TestAppBuilder {
        TestAppBuilder::default()
    }

    fn token(&self, role: Role) -> &str {
        &self.tokens[&role]
    }

    /// Sends a request; returns the status and the JSON body (`Null` if none).
    async fn call(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        json: Option<Vec<u8>>,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let body = match json {
            Some(b) => {
                req = req.header("content-type", "application/json");
                Body::from(b)
            }
            None => Body::empty(),
        };
        let res = self
            .router
            .clone()
            .oneshot(req.body(body).unwrap())
            .await
            .unwrap();
        let status = res.status();
        let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
            .await
            .unwrap();
        let v = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&bytes)))
        };
        (status, v)
    }

    async fn get(&self, uri: &str, role: Role) -> (StatusCode, Value) {
        self.call(Method::GET, uri, Some(self.token(role)), None)
            .await
    }

    async fn post(&self, uri: &str, role: Role, body: &str) -> (StatusCode, Value) {
        self.call(
            Method::POST,
            uri,
            Some(self.token(role)),
            Some(body.as_bytes().to_vec()),
        )
        .await
    }

    async fn history_len(&self, ext: &str) -> usize {
        let (s, v) = self
            .get(&format!("/api/v1/people/{ext}"), Role::Viewer)
            .await;
        assert_eq!(s, StatusCode::OK);
        v["history"].as_array().unwrap().len()
    }

    async fn cleanup(self) {
        drop(self.router);
        drop(self.state);
        self.db.cleanup().await.unwrap();
    }
}

async fn each(f: impl AsyncFn(&TestApp)) {
    for db in TestDb::all().await.unwrap() {
        let app = TestApp::builder().with_people().build(db).await;
        f(&app).await;
        app.cleanup().await;
    }
}

fn assert_error(v: &Value, code: &str) {
    assert_eq!(v["error"]["code"], code, "body: {v}");
    assert!(v["error"]["message"].is_string(), "body: {v}");
    assert!(v["error"].get("field").is_some(), "body: {v}");
}

#[tokio::test]
async fn health_needs_no_token_and_ready_pings_the_database() {
    each(async |app| {
        let (s, v) = app.call(Method::GET, "/healthz", None, None).await;
        assert_eq!((s, v["status"].as_str()), (StatusCode::OK, Some("ok")));
        let (s, v) = app.call(Method::GET, "/readyz", None, None).await;
        assert_eq!((s, v["status"].as_str()), (StatusCode::OK, Some("ready")));
        let (s, v) = app.call(Method::GET, "/nope", None, None).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        assert_error(&v, "not_found");
    })
    .await;
}

#[tokio::test]
async fn missing_bad_and_revoked_tokens_are_401() {
    each(async |app| {
        for token in [None, Some("tdm_0000"), Some(""), Some(app.revoked.as_str())] {
            let (s, v) = app.call(Method::GET, "/api/v1/people", token, None).await;
            assert_eq!(s, StatusCode::UNAUTHORIZED, "token {token:?}");
            assert_error(&v, "unauthorized");
        }
        // Not a bearer scheme at all.
        let req = Request::get("/api/v1/people")
            .header("authorization", format!("Basic {}", app.token(Role::Admin)))
            .body(Body::empty())
            .unwrap();
        let res = app.router.clone().oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    })
    .await;
}

#[tokio::test]
async fn role_table_for_every_endpoint() {
    use Role::*;
    // (method, uri, body, roles allowed)
    let table: &[(Method, &str, Option<&str>, &[Role])] = &[
        (
            Method::GET,
            "/api/v1/people",
            None,
            &[Admin, Marketing, Sales, Viewer],
        ),
        (
            Method::GET,
            "/api/v1/people/lead-3",
            None,
            &[Admin, Marketing, Sales, Viewer],
        ),
        (
            Method::GET,
            "/api/v1/metrics/funnel",
            None,
            &[Admin, Marketing, Sales, Viewer],
        ),
        (
            Method::GET,
            "/api/v1/metrics/waterfall",
            None,
            &[Admin, Marketing, Sales, Viewer],
        ),
        (
            Method::POST,
            "/api/v1/people/lead-3/accept",
            Some("{}"),
            &[Admin, Sales],
        ),
        (
            Method::POST,
            "/api/v1/people/{lead}/reject",
            Some(r#"{"reason": "no_budget", "recycle": true}"#),
            &[Admin, Sales],
        ),
    ];
    for db in TestDb::all().await.unwrap() {
        let app = TestApp::builder().with_people().build(db).await;
        let mut next_lead = 2;
        for (method, uri, body, allowed) in table {
            for role in Role::ALL {
                // Each allowed move gets a lead of its own (all are MQLs).
                let uri = if uri.contains("{lead}") {
                    next_lead += 1;
                    uri.replace("{lead}", &format!("lead-{next_lead}"))
                } else {
                    uri.to_string()
                };
                let (s, v) = app
                    .call(
                        method.clone(),
                        &uri,
                        Some(app.token(role)),
                        body.map(|b| b.as_bytes().to_vec()),
                    )
                    .await;
                if allowed.contains(&role) {
                    assert_eq!(s, StatusCode::OK, "{role} {method} {uri}: {v}");
                } else {
                    assert_eq!(s, StatusCode::FORBIDDEN, "{role} {method} {uri}: {v}");
                    assert_error(&v, "forbidden");
                }
            }
        }
        app.cleanup().await;
    }
}

#[tokio::test]
async fn accept_moves_an_mql_to_sal_into_the_history() {
    each(async |app| {
        let before = app.history_len("lead-5").await;
        let (s, v) = app
            .post(
                "/api/v1/people/lead-5/accept",
                Role::Sales,
                r#"{"actor": "sam", "note": "good call"}"#,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["stage"]["stage"], "sal");
        // No body at all (no Content-Type either) is an empty move: mql → sal.
        let (s, v) = app
            .call(
                Method::POST,
                "/api/v1/people/lead-7/accept",
                Some(app.token(Role::Sales)),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["stage"]["stage"], "sal");
        assert_eq!(
            v["appended"][0]["actor"], "sales",
            "the actor defaults to the token name"
        );
        let (_, p) = app.get("/api/v1/people/lead-5", Role::Viewer).await;
        assert_eq!(p["person"]["external_id"], "lead-5");
        assert_eq!(p["stage"]["stage"], "sal");
        let h = p["history"].as_array().unwrap();
        assert_eq!(h.len(), before + 1);
        let last = h.last().unwrap();
        assert_eq!(
            (&last["from"], &last["to"], &last["actor"], &last["note"]),
            (
                &Value::from("mql"),
                &Value::from("sal"),
                &Value::from("sam"),
                &Value::from("good call")
            )
        );
        // Accepting again is a rule the playbook refuses (sal → sql is manual, fine),
        // but rejecting with a reason that does not apply is refused: 422.
        let (s, v) = app
            .post(
                "/api/v1/people/lead-5/reject",
                Role::Sales,
                r#"{"reason": "competitor_won"}"#,
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
        assert_error(&v, "rule_refused");
        assert_eq!(v["error"]["field"], "reason");
    })
    .await;
}

#[tokio::test]
async fn reject_without_reason_is_422_and_appends_nothing() {
    each(async |app| {
        let before = app.history_len("lead-6").await;
        for body in ["{}", r#"{"reason": ""}"#, r#"{"recycle": true}"#] {
            let (s, v) = app
                .post("/api/v1/people/lead-6/reject", Role::Sales, body)
                .await;
            assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {v}");
            assert_error(&v, "reason_required");
            assert_eq!(v["error"]["field"], "reason");
        }
        // A disqualified lead cannot be accepted: the rules refuse, nothing appended.
        let before2 = app.history_len("lead-2").await;
        let (s, v) = app
            .post("/api/v1/people/lead-2/accept", Role::Sales, "{}")
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
        assert_error(&v, "rule_refused");
        assert_eq!(app.history_len("lead-2").await, before2);
        assert_eq!(app.history_len("lead-6").await, before);
    })
    .await;
}

#[tokio::test]
async fn bad_bodies_unknown_people_and_oversize_bodies() {
    each(async |app| {
        let uri = "/api/v1/people/lead-4/reject";
        let before = app.history_len("lead-4").await;
        let (s, v) = app
            .post(uri, Role::Sales, r#"{"reason": "no_budget""#)
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        assert_error(&v, "malformed_json");
        let (s, v) = app
            .post(
                uri,
                Role::Sales,
                r#"{"reason": "no_budget", "recycle": "yes"}"#,
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
        assert_error(&v, "invalid_body");
        let (s, v) = app
            .post(uri, Role::Sales, r#"{"reason": "no_budget", "colour": 1}"#)
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
        assert_eq!(v["error"]["field"], "colour");
        let (s, v) = app
            .post(
                uri,
                Role::Sales,
                r#"{"reason": "no_budget", "at": "yesterday-ish"}"#,
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
        assert_eq!(v["error"]["field"], "at");
        // Not JSON at all.
        let req = Request::post(uri)
            .header(
                "authorization",
                format!("Bearer {}", app.token(Role::Sales)),
            )
            .header("content-type", "text/plain")
            .body(Body::from("reason=no_budget"))
            .unwrap();
        let res = app.router.clone().oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        // Oversize.
        let mut big = br#"{"reason": "no_budget", "note": ""#.to_vec();
        big.extend(std::iter::repeat_n(b'x', 2 * 1024 * 1024));
        big.extend(br#""}"#);
        let (s, v) = app
            .call(Method::POST, uri, Some(app.token(Role::Sales)), Some(big))
            .await;
        assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
        assert_error(&v, "body_too_large");
        assert_eq!(app.history_len("lead-4").await, before);
        // Unknown people.
        let (s, v) = app.get("/api/v1/people/nobody", Role::Viewer).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        assert_error(&v, "not_found");
        let (s, v) = app
            .post("/api/v1/people/nobody/accept", Role::Sales, "{}")
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        assert_error(&v, "not_found");
        // Bad query parameters.
        for q in ["limit=0", "limit=abc", "cursor=zz"] {
            let (s, v) = app.get(&format!("/api/v1/people?{q}"), Role::Viewer).await;
            assert_eq!(s, StatusCode::BAD_REQUEST, "{q}: {v}");
            assert_error(&v, "bad_query");
        }
        let (s, v) = app
            .get("/api/v1/metrics/funnel?by=shoe_size", Role::Viewer)
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert_eq!(v["error"]["field"], "by");
        let (s, v) = app
            .get(
                "/api/v1/metrics/funnel?from=2026-02-01&to=2026-01-01",
                Role::Viewer,
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert_eq!(v["error"]["field"], "to");
    })
    .await;
}

#[tokio::test]
async fn pagination_returns_every_person_exactly_once() {
    each(async |app| {
        for limit in [1, 2, 3, 7, 500] {
            let mut seen = Vec::new();
            let mut cursor: Option<String> = None;
            let mut pages = 0;
            loop {
                let uri = match &cursor {
                    Some(c) => format!("/api/v1/people?limit={limit}&cursor={c}"),
                    None => format!("/api/v1/people?limit={limit}"),
                };
                let (s, v) = app.get(&uri, Role::Viewer).await;
                assert_eq!(s, StatusCode::OK, "{v}");
                let page = v["people"].as_array().unwrap();
                assert!(page.len() <= limit);
                seen.extend(
                    page.iter()
                        .map(|p| p["external_id"].as_str().unwrap().to_string()),
                );
                pages += 1;
                match v["next_cursor"].as_str() {
                    Some(c) => cursor = Some(c.to_string()),
                    None => break,
                }
                assert!(pages <= PEOPLE + 1, "pagination does not end");
            }
            let want: Vec<String> = (0..PEOPLE).map(|i| format!("lead-{i}")).collect();
            assert_eq!(seen, want, "limit {limit}");
        }
    })
    .await;
}

#[tokio::test]
async fn funnel_and_waterfall_equal_the_core_computation() {
    each(async |app| {
        let pb = app.state.playbook();
        let pb = &*pb;
        let snap = app.snapshot().await;
        for (by, cohort) in [(None, None), (Some("source"), Some("mql"))] {
            let as_of = query::as_of(pb, Some("2026-02-01"), t(0)).unwrap();
            let window = query::window(pb, &snap, Some("2026-01-01"), None, as_of).unwrap();
            let groups = by.map(|b| query::group_by(pb, &snap, b).unwrap());
            let mut opts = WaterfallOptions::new(window, as_of);
            opts.cohort_stage = cohort.map(str::to_string);
            if let Some(g) = &groups {
                opts.grouping = tandem_core::metrics::Grouping::Map(g);
            }
            let want = waterfall(pb, &snap.transitions, &snap.deals, &opts).unwrap();
            let mut qs = "as_of=2026-02-01&from=2026-01-01".to_string();
            if let Some(b) = by {
                qs.push_str(&format!("&by={b}"));
            }
            if let Some(c) = cohort {
                qs.push_str(&format!("&cohort={c}"));
            }
            let (s, got) = app
                .get(&format!("/api/v1/metrics/waterfall?{qs}"), Role::Viewer)
                .await;
            assert_eq!(s, StatusCode::OK, "{got}");
            assert_eq!(got, serde_json::to_value(&want).unwrap());
            let (s, f) = app
                .get(&format!("/api/v1/metrics/funnel?{qs}"), Role::Viewer)
                .await;
            assert_eq!(s, StatusCode::OK, "{f}");
            let groups = f["groups"].as_array().unwrap();
            assert_eq!(groups.len(), want.groups.len());
            for (g, w) in groups.iter().zip(&want.groups) {
                assert_eq!(g["group"], w.group.as_str());
                let rows: Vec<_> = w.stages.iter().filter(|s| s.cohort.is_some()).collect();
                let stages = g["stages"].as_array().unwrap();
                assert_eq!(stages.len(), rows.len());
                for (s, r) in stages.iter().zip(rows) {
                    assert_eq!(s["stage"], r.stage.as_str());
                    assert_eq!(s["count"].as_u64(), r.cohort);
                    assert_eq!(s["conversion"].as_f64(), r.conversion);
                }
            }
            // The seed has twelve MQLs, two accepted: the numbers are not vacuous.
            if cohort == Some("mql") {
                let total: u64 = want.groups.iter().map(|g| g.cohort_size).sum();
                assert_eq!(total, PEOPLE as u64);
            }
        }
    })
    .await;
}

#[tokio::test]
async fn the_waterfall_reads_only_what_its_as_of_includes() {
    // The server keeps one replay of the transitions (the latest as-of's);
    // a request whose as-of includes other transitions must not answer
    // from it. The window runs past every as-of, so a replay holding later
    // MQLs would count them.
    each(async |app| {
        let pb = app.state.playbook();
        let pb = &*pb;
        let snap = app.snapshot().await;
        // The seed's MQLs enter at 10:00, 11:00, ... 21:00 on 2026-01-01.
        for (as_of, mqls) in [
            ("2026-02-01", 12),
            ("2026-01-01T15:00:00Z", 6),
            ("2026-01-01T15:30:00Z", 6),
            ("2026-01-01T21:00:00Z", 12),
            ("2026-01-01T10:00:00Z", 1),
        ] {
            let at = query::as_of(pb, Some(as_of), t(0)).unwrap();
            let window =
                query::window(pb, &snap, Some("2026-01-01"), Some("2026-03-01"), at).unwrap();
            let mut opts = WaterfallOptions::new(window, at);
            opts.cohort_stage = Some("mql".into());
            let want = waterfall(pb, &snap.transitions, &snap.deals, &opts).unwrap();
            assert_eq!(want.groups[0].cohort_size, mqls, "{as_of}");
            let (s, got) = app
                .get(
                    &format!(
                        "/api/v1/metrics/waterfall?as_of={as_of}&from=2026-01-01&to=2026-03-01&cohort=mql"
                    ),
                    Role::Viewer,
                )
                .await;
            assert_eq!(s, StatusCode::OK, "{got}");
            assert_eq!(got, serde_json::to_value(&want).unwrap(), "{as_of}");
        }
    })
    .await;
}

#[tokio::test]
async fn stalled_equals_the_core_computation() {
    each(async |app| {
        let pb = app.state.playbook();
        let pb = &*pb;
        let snap = app.snapshot().await;
        let as_of = query::as_of(pb, Some("2026-03-01"), t(0)).unwrap();
        let want = tandem_core::sla::stalled(pb, &snap.people, &snap.transitions, as_of);
        // MQLs since January are past mql's max_days (14) by March.
        assert!(!want.is_empty());
        let (s, v) = app
            .get("/api/v1/metrics/stalled?as_of=2026-03-01", Role::Viewer)
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["leads"], serde_json::to_value(&want).unwrap());
        assert_eq!(v["total"], want.len());
        let per_stage: u64 = v["by_stage"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["leads"].as_u64().unwrap())
            .sum();
        assert_eq!(per_stage, want.len() as u64);
        // Pages of two, each after the cursor of the one before, list every
        // stalled lead once in order; an owner's pages list only theirs.
        let owner = want
            .iter()
            .find_map(|l| l.owner.clone())
            .expect("an owned stalled lead");
        for who in [None, Some(owner.as_str())] {
            let theirs: Vec<&tandem_core::sla::StalledLead> = want
                .iter()
                .filter(|l| who.is_none_or(|o| l.owner.as_deref() == Some(o)))
                .collect();
            let owner_q = who.map(|o| format!("&owner={o}")).unwrap_or_default();
            let (mut paged, mut cursor, mut pages) = (Vec::new(), String::new(), 0);
            loop {
                let uri = format!(
                    "/api/v1/metrics/stalled?as_of=2026-03-01&limit=2{owner_q}&cursor={cursor}"
                );
                let (s, v) = app.get(&uri, Role::Viewer).await;
                assert_eq!(s, StatusCode::OK, "{v}");
                assert_eq!(v["total"], theirs.len());
                paged.extend(v["leads"].as_array().unwrap().iter().cloned());
                pages += 1;
                match v["next_cursor"].as_str() {
                    Some(c) => cursor = c.to_string(),
                    None => break,
                }
            }
            assert_eq!(pages, theirs.len().div_ceil(2).max(1));
            assert_eq!(
                serde_json::Value::Array(paged),
                serde_json::to_value(&theirs).unwrap()
            );
        }
        let (s, v) = app
            .get(
                "/api/v1/metrics/stalled?as_of=2026-03-01&owner=nobody",
                Role::Viewer,
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(v["leads"], serde_json::json!([]));
        assert_eq!(v["total"], 0);
        let (s, v) = app
            .get("/api/v1/metrics/stalled?as_of=soon", Role::Viewer)
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert_eq!(v["error"]["field"], "as_of");
    })
    .await;
}

#[tokio::test]
async fn a_real_socket_serves_and_shuts_down() {
    let db = TestDb::sqlite().await.unwrap();
    let app = TestApp::builder().with_people().build(db).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(tandem_server::serve(listener, app.state.clone(), async {
        let _ = stopped.await;
    }));
    let raw = async |req: String| {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    };
    let health =
        raw("GET /healthz HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n".into()).await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(health.contains(r#"{"status":"ok"}"#), "{health}");
    let people = raw(format!(
        "GET /api/v1/people?limit=2 HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
        app.token(Role::Viewer)
    ))
    .await;
    assert!(people.starts_with("HTTP/1.1 200"), "{people}");
    assert!(
        people.contains("lead-1") && !people.contains("lead-2"),
        "{people}"
    );
    let denied =
        raw("GET /api/v1/people HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n".into()).await;
    assert!(denied.starts_with("HTTP/1.1 401"), "{denied}");
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
    app.cleanup().await;
}
