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

/// `calls` as the jobs of one group, all received at `now`.
fn jobs(pb: &Arc<Playbook>, calls: Vec<Vec<Message>>, now: Timestamp) -> Vec<Job> {
    calls
        .into_iter()
        .map(|msgs| Job {
            pb: pb.clone(),
            msgs: msgs.into(),
            now,
            reply: oneshot::channel().0,
        })
        .collect()
}

/// Runs `calls` as one group, all received at `now`.
async fn group(store: &Store, pb: &Arc<Playbook>, calls: Vec<Vec<Message>>, now: &str) {
    let jobs = jobs(pb, calls, ts(now));
    let results = GroupWriter::new(store.clone())
        .write(&jobs)
        .await
        .unwrap()
        .expect("no touch was stored before");
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

/// Calls for four people, seven minutes apart with one in seven dated an
/// hour back: identifies that change a title or name a company, touches,
/// sales activities, pages, events that are neither, and replayed
/// `messageId`s. Each with the instant it is received.
fn random_calls(rng: &mut crate::demo::Rng, n: usize) -> Vec<(Vec<Message>, Timestamp)> {
    let start = ts("2026-03-02T09:00:00Z");
    (0..n)
        .map(|i| {
            let user = format!("u{}", rng.range(0, 4));
            let mut at = Timestamp::from_millis(start.millis() + i as i64 * 7 * 60_000);
            if rng.chance(1.0 / 7.0) {
                at = Timestamp::from_millis(at.millis() - 3_600_000);
            }
            let id = if i > 0 && rng.chance(0.1) {
                format!("m{}", rng.range(0, i as i64))
            } else {
                format!("m{i}")
            };
            let mut v = match rng.range(0, 9) {
                0 => {
                    let title = ["VP Marketing", "Analyst", "CTO"][rng.range(0, 3) as usize];
                    json!({"type": "identify", "traits": {"email": format!("{user}@acme.io"),
                           "title": title, "country": "US"}})
                }
                1 => {
                    let industry = ["software", "retail"][rng.range(0, 2) as usize];
                    json!({"type": "identify", "traits": {"company": {
                        "name": format!("Acme {}", rng.range(0, 2)), "industry": industry}}})
                }
                2 | 3 => json!({"type": "track", "event": "Webinar"}),
                4 => json!({"type": "track", "event": "Demo Request"}),
                5 | 6 => json!({"type": "track", "event": "call"}),
                7 => json!({"type": "page", "name": "Pricing"}),
                _ => json!({"type": "track", "event": "Signed Up"}),
            };
            v["userId"] = json!(user);
            v["messageId"] = json!(id);
            v["timestamp"] = json!(at.to_string());
            let received = Timestamp::from_millis(at.millis() + 30_000);
            (vec![parse(&v, None, "", None, received).unwrap()], received)
        })
        .collect()
}

#[tokio::test]
async fn held_facts_are_what_the_store_holds_and_move_nobody_differently() {
    let pb = Arc::new(Playbook::load(STARTER).playbook.unwrap());
    let mut rng = crate::demo::Rng::new(11);
    let calls = random_calls(&mut rng, 240);
    let held_db = TestDb::sqlite().await.unwrap();
    let read_db = TestDb::sqlite().await.unwrap();
    let mut writer = GroupWriter::new(held_db.store.clone());
    let mut reused = 0;
    let mut rest = &calls[..];
    while !rest.is_empty() {
        let (now_calls, later) = rest.split_at((rng.range(1, 6) as usize).min(rest.len()));
        rest = later;
        let now = now_calls.iter().map(|(_, r)| *r).max().unwrap();
        let group: Vec<Vec<Message>> = now_calls.iter().map(|(m, _)| m.clone()).collect();
        let held_before = writer.held.len();
        let with_held = writer.write(&jobs(&pb, group.clone(), now)).await.unwrap();
        reused += held_before.min(writer.held.len());
        // The same group with every person read, as before facts were held.
        let mut tx = read_db.store.begin().await.unwrap();
        let read = write_group(tx.conn(), &jobs(&pb, group, now), None)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(with_held, read);
        assert!(writer.sole.is_some(), "an SQLite file gets its own writer");
        let mut c = held_db.store.conn().await.unwrap();
        for (id, held) in writer.held.iter() {
            let stored = lifecycle::load_many(&mut c, &[id]).await.unwrap();
            assert_eq!(Some(held), stored.first(), "person #{id}");
        }
    }
    assert!(reused > 20, "facts were held across groups ({reused})");
    let transitions = |store: Store| async move {
        repo::transitions(&mut store.conn().await.unwrap())
            .await
            .unwrap()
    };
    let moved = transitions(held_db.store.clone()).await;
    assert!(moved.iter().any(|t| t.to == "mql"), "some lead moved");
    assert_eq!(moved, transitions(read_db.store.clone()).await);
}

/// Stores a touch of `kind` at `at` for `user` through a pooled
/// connection (beside any committer), without re-evaluating anyone.
async fn store_beside(store: &Store, user: &str, kind: &str, at: &str) {
    let mut tx = store.begin().await.unwrap();
    let person = repo::person_by_external(tx.conn(), user).await.unwrap();
    let touch = Touch {
        person_id: person.unwrap().id,
        at: ts(at),
        kind: Sym::from(kind),
        ..Touch::default()
    };
    repo::upsert_touch(tx.conn(), &touch).await.unwrap();
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn a_commit_by_another_connection_drops_the_held_facts() {
    let pb = Arc::new(Playbook::load(STARTER).playbook.unwrap());
    let db = TestDb::sqlite().await.unwrap();
    let mut writer = GroupWriter::new(db.store.clone());
    let run = |calls: Vec<Vec<Message>>, now: &str| jobs(&pb, calls, ts(now));
    writer
        .write(&run(
            vec![
                call(identify("lead"), "2026-03-02T10:00:00Z"),
                call(
                    track("lead", "Webinar", "2026-03-02T10:01:00Z"),
                    "2026-03-02T10:01:00Z",
                ),
            ],
            "2026-03-02T10:01:00Z",
        ))
        .await
        .unwrap();
    assert_eq!(writer.held.len(), 1);
    // Another connection stores a second webinar without re-evaluating.
    store_beside(&db.store, "lead", "webinar", "2026-03-02T10:02:00Z").await;
    // The third webinar makes about 45 points with the one stored beside
    // the writer: the MQL (30) is entered. Facts held from before it would
    // count two webinars, just under 30, and move nobody.
    writer
        .write(&run(
            vec![call(
                track("lead", "Webinar", "2026-03-02T10:03:00Z"),
                "2026-03-02T10:03:00Z",
            )],
            "2026-03-02T10:03:00Z",
        ))
        .await
        .unwrap();
    assert_eq!(
        stages(&db.store, "lead").await,
        vec![
            ("inquiry".to_string(), ts("2026-03-02T10:00:00Z")),
            ("mql".to_string(), ts("2026-03-02T10:03:00Z")),
        ]
    );
}

/// Runs `calls` (each received at its own instant) as one group through
/// `writer`, at the latest of those instants.
async fn write_as_group(writer: &mut GroupWriter, pb: &Arc<Playbook>, calls: &[(Value, &str)]) {
    let now = calls.iter().map(|(_, r)| ts(r)).max().unwrap();
    let calls = calls.iter().map(|(v, r)| call(v.clone(), r)).collect();
    writer.write(&jobs(pb, calls, now)).await.unwrap().unwrap();
}

#[tokio::test]
async fn a_held_lead_is_evaluated_at_each_new_instant_even_back_dated() {
    let pb = Arc::new(Playbook::load(STARTER).playbook.unwrap());
    let db = TestDb::sqlite().await.unwrap();
    // The third lead has a demo request (40 points) dated 11:20, stored by
    // another connection before the writer's first group: that group reads
    // and holds it, and its evaluation up to 11:00 does not reach it.
    let mut other = GroupWriter::new(db.store.clone());
    write_as_group(
        &mut other,
        &pb,
        &[(identify("ahead"), "2026-03-02T10:00:00Z")],
    )
    .await;
    store_beside(&db.store, "ahead", "demo_request", "2026-03-02T11:20:00Z").await;
    // Every lead: fit 55, a webinar (15 points, under the MQL's 30), held
    // after a group at 11:00.
    let mut writer = GroupWriter::new(db.store.clone());
    let mut first: Vec<(Value, &str)> = ["late", "next"]
        .into_iter()
        .map(|u| (identify(u), "2026-03-02T10:00:00Z"))
        .collect();
    for u in ["late", "next", "ahead"] {
        first.push((
            track(u, "Webinar", "2026-03-02T10:01:00Z"),
            "2026-03-02T11:00:00Z",
        ));
    }
    write_as_group(&mut writer, &pb, &first).await;
    assert_eq!(writer.held.len(), 3);
    // A demo request for the first two: one dated 10:30, before the
    // instant its lead was evaluated up to, one at 11:30, after it; and a
    // webinar at 11:30 for the third.
    write_as_group(
        &mut writer,
        &pb,
        &[
            (
                track("late", "Demo Request", "2026-03-02T10:30:00Z"),
                "2026-03-02T11:40:00Z",
            ),
            (
                track("next", "Demo Request", "2026-03-02T11:30:00Z"),
                "2026-03-02T11:40:00Z",
            ),
            (
                track("ahead", "Webinar", "2026-03-02T11:30:00Z"),
                "2026-03-02T11:40:00Z",
            ),
        ],
    )
    .await;
    let inquiry = ("inquiry".to_string(), ts("2026-03-02T10:00:00Z"));
    let mql = |at: &str| vec![inquiry.clone(), ("mql".to_string(), ts(at))];
    assert_eq!(stages(&db.store, "late").await, mql("2026-03-02T10:30:00Z"));
    assert_eq!(stages(&db.store, "next").await, mql("2026-03-02T11:30:00Z"));
    assert_eq!(
        stages(&db.store, "ahead").await,
        mql("2026-03-02T11:20:00Z")
    );
}

#[tokio::test]
async fn another_playbook_evaluates_held_leads_again() {
    let pb = Arc::new(Playbook::load(STARTER).playbook.unwrap());
    let lower = STARTER.replace("score.engagement >= 30", "score.engagement >= 10");
    let lower = Arc::new(Playbook::load(&lower).playbook.unwrap());
    let db = TestDb::sqlite().await.unwrap();
    let mut writer = GroupWriter::new(db.store.clone());
    write_as_group(
        &mut writer,
        &pb,
        &[
            (identify("lead"), "2026-03-02T10:00:00Z"),
            (
                track("lead", "Webinar", "2026-03-02T10:01:00Z"),
                "2026-03-02T10:01:00Z",
            ),
        ],
    )
    .await;
    assert_eq!(writer.held.len(), 1);
    // Under a playbook whose MQL needs 10 points, the 10:01 webinar (15)
    // qualified the lead: the next call's group finds it at 10:01, not at
    // its own instant.
    write_as_group(
        &mut writer,
        &lower,
        &[(
            track("lead", "Webinar", "2026-03-02T10:05:00Z"),
            "2026-03-02T10:05:00Z",
        )],
    )
    .await;
    assert_eq!(
        stages(&db.store, "lead").await,
        vec![
            ("inquiry".to_string(), ts("2026-03-02T10:00:00Z")),
            ("mql".to_string(), ts("2026-03-02T10:01:00Z")),
        ]
    );
}

#[tokio::test]
async fn a_touch_stored_before_under_a_message_id_sends_the_group_call_by_call() {
    let pb = Arc::new(Playbook::load(STARTER).playbook.unwrap());
    let db = TestDb::sqlite().await.unwrap();
    let mut writer = GroupWriter::new(db.store.clone());
    write_as_group(
        &mut writer,
        &pb,
        &[(identify("lead"), "2026-03-02T10:00:00Z")],
    )
    .await;
    // A CSV import stored a touch under the external id `m-2`.
    store_beside(&db.store, "lead", "webinar", "2026-03-01T09:00:00Z").await;
    let mut tx = db.store.begin().await.unwrap();
    sqlx::query("UPDATE touches SET external_id = 'm-2'")
        .execute(tx.conn())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let touches = |store: Store| async move {
        let mut c = store.conn().await.unwrap();
        let counts = repo::counts(&mut c).await.unwrap();
        counts.into_iter().find(|(t, _)| *t == "touches").unwrap().1
    };
    assert_eq!(touches(db.store.clone()).await, 1);
    let calls = || {
        let mut a = track("lead", "Webinar", "2026-03-02T10:01:00Z");
        a["messageId"] = json!("m-1");
        let mut b = track("lead", "Webinar", "2026-03-02T10:02:00Z");
        b["messageId"] = json!("m-2");
        vec![
            call(a, "2026-03-02T10:02:00Z"),
            call(b, "2026-03-02T10:02:00Z"),
        ]
    };
    // As one group the two new touches go in one statement, which skips
    // `m-2`: nothing of the group is kept.
    let group = writer
        .write(&jobs(&pb, calls(), ts("2026-03-02T10:02:00Z")))
        .await
        .unwrap();
    assert_eq!(group, None);
    assert_eq!(touches(db.store.clone()).await, 1);
    // Through the committer the calls are then stored one by one: `m-1` is
    // new, `m-2` updates the imported touch.
    let committer = Committer::start(db.store.clone());
    let mut effects = Vec::new();
    for msgs in calls() {
        let out = committer
            .ingest(pb.clone(), msgs, ts("2026-03-02T10:02:00Z"))
            .await
            .unwrap();
        effects.extend(out.into_iter().map(|o| match o {
            Outcome::Stored { effect, .. } => effect,
            Outcome::Duplicate => Effect::Nothing,
        }));
    }
    assert_eq!(
        effects,
        vec![
            Effect::Touch(Upsert::Inserted),
            Effect::Touch(Upsert::Updated)
        ]
    );
    assert_eq!(touches(db.store.clone()).await, 2);
}

/// A track call's `properties.cost` is minor units from 0 to `MAX_MINOR`;
/// outside that it is refused with the field named.
#[test]
fn a_cost_outside_zero_to_the_bound_is_refused() {
    let with = |cost: Value| {
        let mut v = track("amy", "ad_click", "2026-03-02T10:00:00Z");
        v["properties"] = json!({ "cost": cost });
        parse(&v, None, "", None, ts("2026-03-02T10:00:00Z"))
    };
    assert!(with(json!(tandem_core::MAX_MINOR)).is_ok());
    for bad in [
        json!(-1),
        json!(tandem_core::MAX_MINOR + 1),
        json!(i64::MAX),
    ] {
        let Err(e) = with(bad.clone()) else {
            panic!("{bad} was taken");
        };
        assert_eq!(e.field, "properties.cost", "{bad}");
        assert!(e.reason.contains("between 0 and"), "{}", e.reason);
    }
}
