//! Segment-compatible ingest from the outside: `/v1/identify`, `/v1/track`,
//! `/v1/batch` with write keys, on SQLite (and PostgreSQL when
//! `TANDEM_TEST_POSTGRES_URL` is set).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use tandem_core::Sym;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use base64::Engine;
use serde_json::{json, Value};
use tandem_core::domain::Subject;
use tandem_core::playbook::{Playbook, STARTER};
use tandem_core::Timestamp;
use tandem_server::{app, AppState};
use tandem_store::testing::TestDb;
use tandem_store::tokens::{self, Role};
use tandem_store::{events, repo, Store};
use tower::ServiceExt;

struct Ingest {
    router: Router,
    store: Store,
    marketing: String,
    viewer: String,
}

async fn setup(db: &TestDb) -> Ingest {
    let pb = Playbook::load(STARTER).playbook.unwrap();
    let mut c = db.store.conn().await.unwrap();
    let t0 = Timestamp::from_millis(0);
    let (_, m) = tokens::create(&mut c, "site", Role::Marketing, t0)
        .await
        .unwrap();
    let (_, v) = tokens::create(&mut c, "viewer", Role::Viewer, t0)
        .await
        .unwrap();
    drop(c);
    Ingest {
        router: app(AppState {
            store: db.store.clone(),
            playbook: Arc::new(pb).into(),
        }),
        store: db.store.clone(),
        marketing: m.expose().to_string(),
        viewer: v.expose().to_string(),
    }
}

/// Segment's header: the write key as Basic user name, empty password.
fn basic(key: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{key}:"))
    )
}

impl Ingest {
    async fn post(&self, path: &str, auth: Option<String>, body: &Value) -> (StatusCode, Value) {
        let mut req = Request::post(path).header("content-type", "application/json");
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let res = self
            .router
            .clone()
            .oneshot(req.body(Body::from(body.to_string())).unwrap())
            .await
            .unwrap();
        let status = res.status();
        let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
            .await
            .unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn counts(&self) -> Vec<(&'static str, i64)> {
        let mut c = self.store.conn().await.unwrap();
        let mut v = repo::counts(&mut c).await.unwrap();
        v.push(("messages", events::count(&mut c).await.unwrap()));
        v
    }
}

fn ms(s: &str) -> Timestamp {
    Timestamp::parse(s).unwrap()
}

#[tokio::test]
async fn track_with_utms_stores_the_touch_and_a_replay_changes_nothing() {
    for db in TestDb::all().await.unwrap() {
        let t = setup(&db).await;
        let msg = json!({
            "userId": "u-1",
            "event": "Demo Request",
            "messageId": "m-1",
            "timestamp": "2026-03-02T14:00:00Z",
            "properties": {"plan": "pro"},
            "context": {
                "campaign": {"source": "google", "medium": "CPC", "name": "spring-launch", "term": "revops", "content": "ad-a"},
                "traits": {"email": "Ana@Acme.io", "name": "Ana Lima"}
            }
        });
        let (status, body) = t.post("/v1/track", Some(basic(&t.marketing)), &msg).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            body,
            json!({"success": true, "accepted": 1, "duplicates": 0})
        );

        let mut c = t.store.conn().await.unwrap();
        let p = repo::person_by_external(&mut c, "u-1")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(p.email(), Some("ana@acme.io"));
        assert_eq!(p.first_name(), Some("Ana"));
        assert_eq!(p.last_name(), Some("Lima"));
        assert_eq!(p.created_at, ms("2026-03-02T14:00:00Z"));
        let touches = repo::touches_of(&mut c, p.id).await.unwrap();
        assert_eq!(touches.len(), 1);
        let touch = &touches[0];
        assert_eq!(touch.kind, "demo_request");
        // medium `cpc` → the starter playbook's first matching channel rule.
        assert_eq!(touch.channel.as_deref(), Some("paid_search"));
        assert_eq!(touch.campaign.as_deref(), Some("spring-launch"));
        assert_eq!(touch.source.as_deref(), Some("google"));
        assert_eq!(touch.medium.as_deref(), Some("cpc"));
        assert_eq!(touch.external_id.as_deref(), Some("m-1"));
        assert_eq!(touch.at, ms("2026-03-02T14:00:00Z"));
        // A new person enters the first stage when created.
        let tr = repo::transitions_of(&mut c, Subject::Person(p.id))
            .await
            .unwrap();
        assert_eq!(tr.len(), 1);
        assert_eq!((tr[0].to.as_str(), tr[0].at), ("inquiry", p.created_at));
        drop(c);

        let before = t.counts().await;
        // The same messageId again, even with other content: acknowledged, nothing stored.
        let mut replay = msg.clone();
        replay["event"] = json!("Webinar");
        let (status, body) = t
            .post("/v1/track", Some(basic(&t.marketing)), &replay)
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            body,
            json!({"success": true, "accepted": 0, "duplicates": 1})
        );
        // And inside a batch, next to a new message.
        let batch = json!({"batch": [
            {"type": "track", "userId": "u-1", "event": "Webinar", "messageId": "m-1", "timestamp": "2026-03-03T14:00:00Z"},
        ]});
        let (status, body) = t.post("/v1/batch", Some(basic(&t.marketing)), &batch).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["duplicates"], 1);
        assert_eq!(t.counts().await, before);
        db.cleanup().await.unwrap();
    }
}

#[tokio::test]
async fn a_lead_crossing_the_mql_rule_through_tracked_events_enters_at_the_event_time() {
    for db in TestDb::all().await.unwrap() {
        let t = setup(&db).await;
        // Fit 55 (senior title 25, business email 10, core market 20) ≥ 40.
        let id = json!({
            "userId": "u-7", "messageId": "i-1", "timestamp": "2026-03-02T09:00:00Z",
            "traits": {"email": "bo@example.com", "firstName": "Bo", "lastName": "Chen", "title": "VP Operations",
                       "country": "US", "company": {"name": "Example Corp", "industry": "Retail", "employee_count": 50},
                       "plan": "trial"}
        });
        let (status, _) = t
            .post("/v1/identify", Some(format!("Bearer {}", t.marketing)), &id)
            .await;
        assert_eq!(status, StatusCode::OK);
        // Engagement (half-life 30 days): webinar 15 at 10:00; + content
        // download 10 at 11:00 → 14.986 + 10 = 24.99 < 30; + form fill 15 at
        // 12:00 → 14.971 + 9.990 + 15 = 39.96 ≥ 30: MQL at 12:00.
        let batch = json!({"batch": [
            {"type": "track", "userId": "u-7", "event": "Webinar", "messageId": "e-1", "timestamp": "2026-03-02T10:00:00Z"},
            {"type": "track", "userId": "u-7", "event": "Content Download", "messageId": "e-2", "timestamp": "2026-03-02T11:00:00Z"},
            {"type": "track", "userId": "u-7", "event": "Form Fill", "messageId": "e-3", "timestamp": "2026-03-02T12:00:00Z"},
            {"type": "track", "userId": "u-7", "event": "Signed In", "messageId": "e-4", "timestamp": "2026-03-02T12:30:00Z"},
        ]});
        let (status, body) = t.post("/v1/batch", Some(basic(&t.marketing)), &batch).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["accepted"], 4);

        let mut c = t.store.conn().await.unwrap();
        let p = repo::person_by_external(&mut c, "u-7")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(p.title.as_deref(), Some("VP Operations"));
        assert_eq!(p.custom.get("plan"), Some(&json!("trial")));
        let a = repo::account(&mut c, p.account_id.unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (a.external_id.as_str(), a.industry.as_deref(), a.employees),
            ("Example Corp", Some("retail"), Some(50))
        );
        // `Signed In` is neither scored nor tagged: no touch.
        let kinds: Vec<Sym> = repo::touches_of(&mut c, p.id)
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.kind)
            .collect();
        assert_eq!(kinds, ["webinar", "content_download", "form_fill"]);
        let tr: Vec<(Sym, Timestamp)> = repo::transitions_of(&mut c, Subject::Person(p.id))
            .await
            .unwrap()
            .into_iter()
            .map(|t| (t.to, t.at))
            .collect();
        assert_eq!(
            tr,
            [
                (Sym::new("inquiry"), ms("2026-03-02T09:00:00Z")),
                (Sym::new("mql"), ms("2026-03-02T12:00:00Z")),
            ]
        );
        drop(c);

        // A sales call by track is an activity.
        let call = json!({"userId": "u-7", "event": "Call", "messageId": "a-1", "timestamp": "2026-03-02T15:00:00Z",
                          "properties": {"actor": "sam", "outcome": "connected"}});
        let (status, _) = t.post("/v1/track", Some(basic(&t.marketing)), &call).await;
        assert_eq!(status, StatusCode::OK);
        let mut c = t.store.conn().await.unwrap();
        let acts = repo::activities_of(&mut c, p.id).await.unwrap();
        assert_eq!(acts.len(), 1);
        assert_eq!(
            (acts[0].kind.as_str(), acts[0].actor.as_deref()),
            ("call", Some("sam"))
        );
        drop(c);
        db.cleanup().await.unwrap();
    }
}

#[tokio::test]
async fn a_bad_batch_item_is_named_and_nothing_of_the_batch_is_stored() {
    for db in TestDb::all().await.unwrap() {
        let t = setup(&db).await;
        let before = t.counts().await;
        let cases = [
            (
                json!({"batch": [
                    {"type": "identify", "userId": "ok-1", "messageId": "b-1", "traits": {"email": "a@b.io"}},
                    {"type": "track", "userId": "ok-1", "event": "Webinar", "messageId": "b-2", "timestamp": "yesterday"},
                ]}),
                "batch[1].timestamp",
            ),
            (
                json!({"batch": [
                    {"type": "identify", "userId": "ok-1", "messageId": "b-1"},
                    {"type": "track", "userId": "ok-1", "messageId": "b-3"},
                ]}),
                "batch[1].event",
            ),
            (
                json!({"batch": [{"type": "track", "event": "Webinar"}]}),
                "batch[0].userId",
            ),
            (
                json!({"batch": [{"type": "launch", "userId": "x"}]}),
                "batch[0].type",
            ),
            (
                json!({"batch": [{"type": "track", "userId": "x", "event": "Webinar", "context": {"campaign": "spring"}}]}),
                "batch[0].context.campaign",
            ),
            (
                json!({"batch": [{"type": "identify", "userId": "x", "traits": {"company": {"industry": "retail"}}}]}),
                "batch[0].traits.company.name",
            ),
            (json!({"batch": {"type": "identify"}}), "batch"),
        ];
        for (body, field) in cases {
            let (status, reply) = t.post("/v1/batch", Some(basic(&t.marketing)), &body).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
            assert_eq!(reply["error"]["field"], field, "{reply}");
            assert_eq!(reply["error"]["code"], "invalid_message");
        }
        assert_eq!(t.counts().await, before);

        // Auth: no key 401, a viewer token 403, the body's writeKey works.
        let msg = json!({"userId": "k-1", "traits": {"email": "k@k.io"}});
        assert_eq!(
            t.post("/v1/identify", None, &msg).await.0,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            t.post("/v1/identify", Some(basic("tdm_nope")), &msg)
                .await
                .0,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            t.post("/v1/identify", Some(basic(&t.viewer)), &msg).await.0,
            StatusCode::FORBIDDEN
        );
        assert_eq!(t.counts().await, before);
        let mut with_key = msg.clone();
        with_key["writeKey"] = json!(t.marketing);
        assert_eq!(
            t.post("/v1/identify", None, &with_key).await.0,
            StatusCode::OK
        );
        db.cleanup().await.unwrap();
    }
}

/// Concurrent calls (on SQLite committed together in groups) answer as if
/// each had its own transaction: every messageId stored once, the second
/// sender of the same id told it is a duplicate, every touch and lifecycle
/// entry there once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_store_each_message_once() {
    for db in TestDb::all().await.unwrap() {
        let t = setup(&db).await;
        let before = t.counts().await;
        let mut calls = tokio::task::JoinSet::new();
        for round in 0..2 {
            for i in 0..30 {
                let router = t.router.clone();
                let auth = basic(&t.marketing);
                let msg = json!({
                    "userId": format!("cc-{}", i % 6),
                    "event": "Webinar",
                    "messageId": format!("cc-m-{i}"),
                    "timestamp": format!("2026-03-02T14:{:02}:{round}0Z", i),
                });
                calls.spawn(async move {
                    let req = Request::post("/v1/track")
                        .header("content-type", "application/json")
                        .header("authorization", auth)
                        .body(Body::from(msg.to_string()))
                        .unwrap();
                    let res = router.oneshot(req).await.unwrap();
                    let status = res.status();
                    let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
                        .await
                        .unwrap();
                    (status, serde_json::from_slice::<Value>(&bytes).unwrap())
                });
            }
        }
        let (mut accepted, mut duplicates) = (0, 0);
        while let Some(r) = calls.join_next().await {
            let (status, body) = r.unwrap();
            assert_eq!(status, StatusCode::OK, "{body}");
            accepted += body["accepted"].as_u64().unwrap();
            duplicates += body["duplicates"].as_u64().unwrap();
        }
        assert_eq!((accepted, duplicates), (30, 30));
        let after = t.counts().await;
        let grown = |name: &str| {
            let get = |v: &[(&str, i64)]| v.iter().find(|(n, _)| *n == name).unwrap().1;
            get(&after) - get(&before)
        };
        assert_eq!(grown("touches"), 30);
        assert_eq!(grown("messages"), 30);
        assert_eq!(grown("people"), 6);
        let mut c = t.store.conn().await.unwrap();
        for i in 0..6 {
            let p = repo::person_by_external(&mut c, &format!("cc-{i}"))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(repo::touches_of(&mut c, p.id).await.unwrap().len(), 5);
            // Entered the first stage once, whatever the order of its calls.
            let tr = repo::transitions_of(&mut c, Subject::Person(p.id))
                .await
                .unwrap();
            assert_eq!(tr.iter().filter(|t| t.to == "inquiry").count(), 1, "{tr:?}");
        }
        drop(c);
        db.cleanup().await.unwrap();
    }
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_ingest_results() {
    let db = TestDb::sqlite().await.unwrap();
    let t = setup(&db).await;
    let msg = json!({"userId": "mm-1", "event": "Webinar", "messageId": "mm-1"});
    for _ in 0..2 {
        t.post("/v1/track", Some(basic(&t.marketing)), &msg).await;
    }
    let res = t
        .router
        .clone()
        .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let text = String::from_utf8(
        axum::body::to_bytes(res.into_body(), 1 << 20)
            .await
            .unwrap()
            .to_vec(),
    )
    .unwrap();
    let value = |prefix: &str| -> f64 {
        text.lines()
            .find_map(|l| {
                l.strip_prefix(prefix)
                    .map(|v| v.trim().parse::<f64>().unwrap())
            })
            .unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
    };
    // Other tests of this binary count too (one process-wide registry): at least ours.
    assert!(
        value("tandem_http_requests_total{route=\"/v1/track\",method=\"POST\",status=\"200\"}")
            >= 2.0
    );
    assert!(value("tandem_http_request_duration_seconds_count{route=\"/v1/track\"}") >= 2.0);
    assert!(
        value("tandem_http_request_duration_seconds_bucket{route=\"/v1/track\",le=\"+Inf\"}")
            >= 2.0
    );
    assert!(value("tandem_ingest_messages_total{result=\"accepted\"}") >= 1.0);
    assert!(value("tandem_ingest_messages_total{result=\"duplicate\"}") >= 1.0);
    assert!(text.contains("# TYPE tandem_alerts_total counter"));
    db.cleanup().await.unwrap();
}

#[test]
fn the_openapi_fragments_describe_ingest_alerts_and_metrics() {
    use utoipa::OpenApi;
    let seg = tandem_server::segment::SegmentApi::openapi();
    let paths: Vec<&String> = seg.paths.paths.keys().collect();
    assert_eq!(
        paths,
        ["/v1/batch", "/v1/identify", "/v1/page", "/v1/track"]
    );
    let json = serde_json::to_value(&seg).unwrap();
    assert_eq!(
        json["components"]["securitySchemes"]["write_key"]["scheme"],
        "basic"
    );
    assert_eq!(
        json["paths"]["/v1/track"]["post"]["responses"]["200"]["content"]["application/json"]
            ["schema"]["$ref"],
        "#/components/schemas/IngestReply"
    );
    let alerts = serde_json::to_value(tandem_server::alerts::AlertsApi::openapi()).unwrap();
    let params: Vec<&str> = alerts["paths"]["/api/v1/alerts"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(params, ["before", "limit"]);
    let ops = tandem_server::telemetry::OpsApi::openapi();
    assert!(ops.paths.paths.contains_key("/metrics"));
}

#[tokio::test]
async fn a_revoked_write_key_is_refused_within_a_second() {
    let db = TestDb::sqlite().await.unwrap();
    let t = setup(&db).await;
    let call = |n: u32| json!({"userId": "u-1", "event": "Webinar", "messageId": format!("m-{n}")});
    let (status, _) = t
        .post("/v1/track", Some(basic(&t.marketing)), &call(1))
        .await;
    assert_eq!(status, StatusCode::OK);
    let mut c = t.store.conn().await.unwrap();
    assert_eq!(
        tokens::revoke(&mut c, "site", ms("2026-03-02T10:00:00Z"))
            .await
            .unwrap(),
        1
    );
    drop(c);
    // Found live a moment ago, the key may be trusted for up to a second;
    // then it is asked about again: revoked.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (status, body) = t
        .post("/v1/track", Some(basic(&t.marketing)), &call(3))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    // A key never seen is looked up at once: a new one works on its first call.
    let mut c = t.store.conn().await.unwrap();
    let (_, fresh) = tokens::create(
        &mut c,
        "site-2",
        Role::Marketing,
        ms("2026-03-02T10:00:00Z"),
    )
    .await
    .unwrap();
    drop(c);
    let (status, _) = t
        .post("/v1/track", Some(basic(fresh.expose())), &call(4))
        .await;
    assert_eq!(status, StatusCode::OK);
}
