//! Alerts against a local mock webhook receiver (a tiny axum server on port
//! 0): one breach is posted once, failed posts are retried with backoff, and
//! the delivery log is served. Plus graceful shutdown with a request in flight.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{Request, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::Value;
use tandem_core::domain::Person;
use tandem_core::domain::PersonTexts;
use tandem_core::lifecycle::ManualMove;
use tandem_core::playbook::{Playbook, STARTER};
use tandem_core::Timestamp;
use tandem_server::alerts::{AlertConfig, Alerter, Tick, Webhooks};
use tandem_server::{app, AppState};
use tandem_store::alerts::{self as log, AlertStatus};
use tandem_store::testing::TestDb;
use tandem_store::tokens::{self, Role};
use tandem_store::{lifecycle, repo, Store};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceExt;

/// A webhook receiver: records every body; answers 500 while `fail` > 0.
#[derive(Clone, Default)]
pub struct Receiver {
    pub bodies: Arc<Mutex<Vec<Value>>>,
    pub calls: Arc<AtomicUsize>,
    pub fail: Arc<AtomicUsize>,
}

impl Receiver {
    pub async fn start(&self) -> String {
        async fn hook(State(r): State<Receiver>, Json(body): Json<Value>) -> StatusCode {
            r.calls.fetch_add(1, Ordering::SeqCst);
            if r.fail
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
            {
                return StatusCode::INTERNAL_SERVER_ERROR;
            }
            r.bodies.lock().unwrap().push(body);
            StatusCode::OK
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = Router::new()
            .route("/hook", post(hook))
            .with_state(self.clone());
        tokio::spawn(async move { axum::serve(listener, router).await });
        format!("http://{addr}/hook")
    }

    pub fn delivered(&self) -> Vec<Value> {
        self.bodies.lock().unwrap().clone()
    }
}

fn ts(s: &str) -> Timestamp {
    Timestamp::parse(s).unwrap()
}

/// Ana Lima enters MQL on Monday 2026-03-02 09:00 New York (14:00Z); the
/// starter SLA gives sales 4 business hours: due 13:00 local (18:00Z).
async fn seed_breach(store: &Store, pb: &Playbook) -> i64 {
    let mut tx = store.begin().await.unwrap();
    let p = Person {
        texts: PersonTexts::new("ana", Some("ana@acme.io"), Some("Ana"), Some("Lima")),
        owner: Some("sam".into()),
        created_at: ts("2026-03-02T13:00:00Z"),
        ..Person::default()
    };
    let (id, _) = repo::upsert_person(tx.conn(), &p).await.unwrap();
    let mv = ManualMove {
        to: "mql",
        at: ts("2026-03-02T14:00:00Z"),
        actor: "seed",
        reason: None,
        note: None,
    };
    lifecycle::move_person(tx.conn(), pb, id, &mv)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    id
}

fn config(url: &str) -> AlertConfig {
    AlertConfig {
        backoff: Duration::from_secs(60),
        webhooks: Webhooks {
            sales: Some(url.to_string()),
            ..Webhooks::default()
        },
        ..AlertConfig::default()
    }
}

/// The evaluator keeps the history between runs and brings it up to date:
/// a breach written after a run is found by the next one.
#[tokio::test]
async fn a_breach_written_between_runs_is_found_by_the_next() {
    for db in TestDb::all().await.unwrap() {
        let pb = Arc::new(Playbook::load(STARTER).playbook.unwrap());
        let rx = Receiver::default();
        let url = rx.start().await;
        let alerter = Alerter::new(db.store.clone(), pb.clone(), config(&url));
        let now = ts("2026-03-03T15:00:00Z");
        assert_eq!(alerter.tick(now).await.unwrap(), Tick::default());
        seed_breach(&db.store, &pb).await;
        let tick = alerter.tick(ts("2026-03-03T15:01:00Z")).await.unwrap();
        assert_eq!((tick.recorded, tick.delivered), (1, 1));
        assert_eq!(rx.calls.load(Ordering::SeqCst), 1);
    }
}

#[tokio::test]
async fn one_breach_is_posted_exactly_once_and_logged() {
    for db in TestDb::all().await.unwrap() {
        let pb = Arc::new(Playbook::load(STARTER).playbook.unwrap());
        seed_breach(&db.store, &pb).await;
        let rx = Receiver::default();
        let url = rx.start().await;
        let alerter = Alerter::new(db.store.clone(), pb.clone(), config(&url));
        let now = ts("2026-03-03T15:00:00Z");
        let tick = alerter.tick(now).await.unwrap();
        assert_eq!(
            tick,
            Tick {
                recorded: 1,
                delivered: 1,
                failed_attempts: 0
            }
        );
        let got = rx.delivered();
        assert_eq!(got.len(), 1);
        let text = got[0]["text"].as_str().unwrap();
        assert!(text.contains("Ana Lima <ana@acme.io>"), "{text}");
        assert!(
            text.contains("entered mql at Mon 2026-03-02 09:00 EST"),
            "{text}"
        );
        assert!(
            text.contains("no first response by Mon 2026-03-02 13:00 EST"),
            "{text}"
        );
        assert_eq!(got[0]["blocks"][0]["text"]["text"], text);

        // The next runs find the same breach and send nothing.
        for later in ["2026-03-03T15:01:00Z", "2026-03-04T15:00:00Z"] {
            assert_eq!(alerter.tick(ts(later)).await.unwrap(), Tick::default());
        }
        assert_eq!(rx.calls.load(Ordering::SeqCst), 1);

        // The delivery log, for any role that reads; URLs are not shown.
        let mut c = db.store.conn().await.unwrap();
        let (_, viewer) = tokens::create(&mut c, "v", Role::Viewer, now)
            .await
            .unwrap();
        drop(c);
        let router = app(AppState {
            store: db.store.clone(),
            playbook: pb.clone().into(),
        });
        let res = router
            .oneshot(
                Request::get("/api/v1/alerts")
                    .header("authorization", format!("Bearer {}", viewer.expose()))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let body: Value = serde_json::from_slice(
            &axum::body::to_bytes(res.into_body(), 1 << 20)
                .await
                .unwrap(),
        )
        .unwrap();
        let alerts = body["alerts"].as_array().unwrap();
        assert_eq!(alerts.len(), 1);
        let a = &alerts[0];
        assert_eq!(a["kind"], "sla_breach");
        assert_eq!(a["team"], "sales");
        assert_eq!(a["subject"], "ana");
        assert_eq!(a["status"], "delivered");
        assert_eq!(a["attempts"], 1);
        assert_eq!(
            a["delivery_key"],
            format!(
                "sla_breach:response:1:{}",
                ts("2026-03-02T14:00:00Z").millis()
            )
        );
        assert!(a.get("url").is_none() && !body.to_string().contains(&url));
        assert_eq!(body["next"], Value::Null);
        db.cleanup().await.unwrap();
    }
}

#[tokio::test]
async fn a_failing_receiver_gets_retries_with_backoff_until_it_answers() {
    for db in TestDb::all().await.unwrap() {
        let pb = Arc::new(Playbook::load(STARTER).playbook.unwrap());
        seed_breach(&db.store, &pb).await;
        let rx = Receiver::default();
        rx.fail.store(2, Ordering::SeqCst);
        let url = rx.start().await;
        let alerter = Alerter::new(db.store.clone(), pb.clone(), config(&url));
        let t0 = ts("2026-03-03T15:00:00Z");
        let at = |s: i64| Timestamp::from_millis(t0.millis() + s * 1000);
        let log_row = || async {
            let mut c = db.store.conn().await.unwrap();
            log::list(&mut c, None, 10).await.unwrap().remove(0)
        };

        // Attempt 1 fails: next attempt after the base backoff (60 s).
        assert_eq!(alerter.tick(at(0)).await.unwrap().failed_attempts, 1);
        let a = log_row().await;
        assert_eq!((a.status, a.attempts), (AlertStatus::Pending, 1));
        assert_eq!(
            a.last_error.as_deref(),
            Some("the webhook answered 500 Internal Server Error")
        );
        assert_eq!(a.next_attempt_at, at(60));
        // Not due before then.
        assert_eq!(alerter.tick(at(59)).await.unwrap(), Tick::default());
        // Attempt 2 fails: the wait doubles (120 s).
        assert_eq!(alerter.tick(at(60)).await.unwrap().failed_attempts, 1);
        let a = log_row().await;
        assert_eq!(
            (a.status, a.attempts, a.next_attempt_at),
            (AlertStatus::Pending, 2, at(180))
        );
        // Attempt 3 succeeds.
        assert_eq!(alerter.tick(at(180)).await.unwrap().delivered, 1);
        let a = log_row().await;
        assert_eq!(
            (a.status, a.attempts, a.last_error, a.delivered_at),
            (AlertStatus::Delivered, 3, None, Some(at(180)))
        );
        assert_eq!(rx.calls.load(Ordering::SeqCst), 3);
        assert_eq!(rx.delivered().len(), 1);
        assert_eq!(alerter.tick(at(600)).await.unwrap(), Tick::default());
        assert_eq!(rx.calls.load(Ordering::SeqCst), 3);
        db.cleanup().await.unwrap();
    }
}

#[tokio::test]
async fn an_alert_is_given_up_after_max_attempts() {
    let db = TestDb::sqlite().await.unwrap();
    let pb = Arc::new(Playbook::load(STARTER).playbook.unwrap());
    seed_breach(&db.store, &pb).await;
    let rx = Receiver::default();
    rx.fail.store(usize::MAX, Ordering::SeqCst);
    let url = rx.start().await;
    let cfg = AlertConfig {
        max_attempts: 2,
        ..config(&url)
    };
    let alerter = Alerter::new(db.store.clone(), pb.clone(), cfg);
    let t0 = ts("2026-03-03T15:00:00Z");
    for s in [0, 60, 600, 6000] {
        alerter
            .tick(Timestamp::from_millis(t0.millis() + s * 1000))
            .await
            .unwrap();
    }
    let mut c = db.store.conn().await.unwrap();
    let a = log::list(&mut c, None, 10).await.unwrap().remove(0);
    drop(c);
    assert_eq!((a.status, a.attempts), (AlertStatus::Failed, 2));
    assert_eq!(rx.calls.load(Ordering::SeqCst), 2);
    db.cleanup().await.unwrap();
}

#[tokio::test]
async fn a_request_in_flight_finishes_when_shutdown_starts() {
    let db = TestDb::sqlite().await.unwrap();
    let pb = Arc::new(Playbook::load(STARTER).playbook.unwrap());
    let mut c = db.store.conn().await.unwrap();
    let (_, key) = tokens::create(&mut c, "site", Role::Marketing, ts("2026-01-01T00:00:00Z"))
        .await
        .unwrap();
    drop(c);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let state = AppState {
        store: db.store.clone(),
        playbook: pb.into(),
    };
    let server = tokio::spawn(tandem_server::serve_with_alerts(
        listener,
        state,
        AlertConfig::default(),
        async {
            let _ = stopped.await;
        },
    ));
    let body =
        r#"{"userId": "late-1", "messageId": "late-1", "traits": {"email": "late@acme.io"}}"#;
    let (head, tail) = body.split_at(20);
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(
        format!(
            "POST /v1/identify HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{head}",
            key.expose(),
            body.len()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    // The request is in flight (half its body sent) when shutdown starts.
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.send(()).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !server.is_finished(),
        "the server must wait for the request"
    );
    s.write_all(tail.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let mut c = db.store.conn().await.unwrap();
    assert!(repo::person_by_external(&mut c, "late-1")
        .await
        .unwrap()
        .is_some());
    // A new connection is refused once the server is down.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    drop(c);
    db.cleanup().await.unwrap();
}
