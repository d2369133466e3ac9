//! A [`Committer`] group against calls applied one by one, on every
//! backend: the lifecycle is re-evaluated once per group, in time order.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use tandem_core::domain::Subject;
use tandem_core::playbook::STARTER;
use tandem_store::testing::TestDb;

fn ts(s: &str) -> Timestamp {
    Timestamp::parse(s).unwrap()
}

/// A call of one Segment message, received at `received`.
fn call(v: Value, received: &str) -> Vec<Message> {
    vec![parse(&v, None, "", None, ts(received)).unwrap()]
}

/// An identify at 10:00 of a lead whose fit is 55 in the starter playbook
/// (senior title 25, business email 10, core market 20): over the MQL's 40,
/// so engagement alone decides when it enters.
fn identify(user: &str) -> Value {
    json!({"type": "identify", "userId": user, "timestamp": "2026-03-02T10:00:00Z",
           "traits": {"email": format!("{user}@acme.io"), "title": "VP Marketing", "country": "US"}})
}

fn track(user: &str, event: &str, at: &str) -> Value {
    json!({"type": "track", "userId": user, "event": event, "timestamp": at})
}

use serde_json::json;

/// Runs `calls` as one group, all received at `now`.
async fn group(store: &Store, pb: &Arc<Playbook>, calls: Vec<Vec<Message>>, now: &str) {
    let mut jobs = Vec::new();
    for msgs in calls {
        let (reply, _answer) = oneshot::channel();
        jobs.push(Job {
            pb: pb.clone(),
            msgs: msgs.into(),
            now: ts(now),
            reply,
        });
    }
    let results = write_group(store, &jobs).await.unwrap();
    assert_eq!(results.len(), jobs.len());
}

/// Each call in its own transaction, in the order given.
async fn one_by_one(store: &Store, pb: &Playbook, calls: Vec<Vec<Message>>, now: &str) {
    for msgs in calls {
        ingest(store, pb, &msgs, ts(now)).await.unwrap();
    }
}

/// `(stage, instant)` of a person's transitions, in order.
async fn stages(store: &Store, user: &str) -> Vec<(String, Timestamp)> {
    let mut c = store.conn().await.unwrap();
    let p = repo::person_by_external(&mut c, user)
        .await
        .unwrap()
        .unwrap();
    repo::transitions_of(&mut c, Subject::Person(p.id))
        .await
        .unwrap()
        .into_iter()
        .map(|t| (t.to.to_string(), t.at))
        .collect()
}

#[tokio::test]
async fn a_group_in_time_order_moves_leads_as_calls_one_by_one() {
    let pb = Arc::new(Playbook::load(STARTER).playbook.unwrap());
    let calls = |user: &str| {
        vec![
            call(identify(user), "2026-03-02T10:00:00Z"),
            call(
                track(user, "Webinar", "2026-03-02T10:01:00Z"),
                "2026-03-02T10:01:00Z",
            ),
            call(
                track(user, "Webinar", "2026-03-02T10:02:00Z"),
                "2026-03-02T10:02:00Z",
            ),
            call(
                track(user, "Webinar", "2026-03-02T10:03:00Z"),
                "2026-03-02T10:03:00Z",
            ),
        ]
    };
    // Webinars are 15 points each, halving every 30 days: 15, then just
    // under 30 a minute later, then about 45, so the MQL (engagement >= 30)
    // is entered at the third.
    let expected = vec![
        ("inquiry".to_string(), ts("2026-03-02T10:00:00Z")),
        ("mql".to_string(), ts("2026-03-02T10:03:00Z")),
    ];
    for db in TestDb::all().await.unwrap() {
        group(&db.store, &pb, calls("grouped"), "2026-03-02T10:03:00Z").await;
        one_by_one(&db.store, &pb, calls("alone"), "2026-03-02T10:03:00Z").await;
        assert_eq!(stages(&db.store, "grouped").await, expected);
        assert_eq!(stages(&db.store, "alone").await, expected);
        db.cleanup().await.unwrap();
    }
}

#[tokio::test]
async fn a_group_evaluates_a_back_dated_call_in_time_order() {
    let pb = Arc::new(Playbook::load(STARTER).playbook.unwrap());
    // A demo request (40 points) at 10:10, then one dated 10:05 arriving
    // after it: each alone enters the MQL.
    let calls = |user: &str| {
        vec![
            call(identify(user), "2026-03-02T10:00:00Z"),
            call(
                track(user, "Demo Request", "2026-03-02T10:10:00Z"),
                "2026-03-02T10:30:00Z",
            ),
            call(
                track(user, "Demo Request", "2026-03-02T10:05:00Z"),
                "2026-03-02T10:30:00Z",
            ),
        ]
    };
    let inquiry = ("inquiry".to_string(), ts("2026-03-02T10:00:00Z"));
    for db in TestDb::all().await.unwrap() {
        group(&db.store, &pb, calls("grouped"), "2026-03-02T10:30:00Z").await;
        one_by_one(&db.store, &pb, calls("alone"), "2026-03-02T10:30:00Z").await;
        // The group sees both requests and enters at the earlier one.
        assert_eq!(
            stages(&db.store, "grouped").await,
            vec![inquiry.clone(), ("mql".into(), ts("2026-03-02T10:05:00Z"))]
        );
        // One by one, the lead moved at 10:10 before the 10:05 request
        // arrived, and an instant before a lead's last move is never
        // evaluated again.
        assert_eq!(
            stages(&db.store, "alone").await,
            vec![inquiry.clone(), ("mql".into(), ts("2026-03-02T10:10:00Z"))]
        );
        db.cleanup().await.unwrap();
    }
}
