//! One story, run against every backend: SQLite always, PostgreSQL when
//! `TANDEM_TEST_POSTGRES_URL` is set.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use tandem_core::domain::PersonTexts;
use tandem_core::domain::{
    Account, Activity, ActivityKind, Deal, DealStatus, Note, Person, Subject, Touch,
};
use tandem_core::lifecycle::ManualMove;
use tandem_core::playbook::{Playbook, STARTER};
use tandem_core::transitions::TransitionRef;
use tandem_core::Sym;
use tandem_core::{Currency, Minor, Money, Timestamp};
use tandem_store::lifecycle::{self, MoveError};
use tandem_store::repo::{self, Upsert};
use tandem_store::testing::TestDb;
use tandem_store::Backend;

const HOUR: i64 = 3_600_000;
const T0: i64 = 1_772_323_200_000; // 2026-03-01T00:00:00Z

fn t(h: i64) -> Timestamp {
    Timestamp::from_millis(T0 + h * HOUR)
}

#[tokio::test]
async fn store_story_on_every_backend() {
    let dbs = TestDb::all().await.unwrap();
    if std::env::var("CI").is_ok() {
        assert_eq!(dbs.len(), 2, "CI must run the suite on PostgreSQL too");
    }
    for db in dbs {
        let backend = db.store.backend();
        story(&db)
            .await
            .unwrap_or_else(|e| panic!("{backend:?}: {e}"));
        // Opening again is a no-op migration.
        tandem_store::Store::open(&db.url).await.unwrap();
        db.cleanup().await.unwrap();
    }
}

async fn story(db: &TestDb) -> Result<(), String> {
    let pb = Playbook::load(STARTER).playbook.unwrap();
    let store = &db.store;
    let mut tx = store.begin().await.map_err(|e| e.to_string())?;
    let c = tx.conn();

    // Accounts and people upsert by external id, with custom fields.
    let mut custom = serde_json::Map::new();
    custom.insert("plan".into(), serde_json::json!("pro"));
    custom.insert("seats".into(), serde_json::json!(42));
    let acct = Account {
        external_id: "acme".into(),
        name: Some("Acme".into()),
        industry: Some("fintech".into()),
        employees: Some(500),
        target: true,
        tier: Some(1),
        custom: custom.clone().into(),
        ..Account::default()
    };
    let (acct_id, u) = repo::upsert_account(c, &acct).await.unwrap();
    assert_eq!(u, Upsert::Inserted);
    assert_eq!(
        repo::upsert_account(c, &acct).await.unwrap(),
        (acct_id, Upsert::Unchanged)
    );
    let person = Person {
        texts: PersonTexts::new("ana@acme.io", Some("ana@acme.io"), Some("Ana"), None),
        title: Some("VP Operations".into()),
        account_id: Some(acct_id),
        country: Some("US".into()),
        source: Some("paid_search".into()),
        created_at: t(0),
        custom: custom.into(),
        ..Person::default()
    };
    let (pid, u) = repo::upsert_person(c, &person).await.unwrap();
    assert_eq!(u, Upsert::Inserted);
    assert_eq!(
        repo::upsert_person(c, &person).await.unwrap(),
        (pid, Upsert::Unchanged)
    );
    let changed = Person {
        title: Some("COO".into()),
        ..person.clone()
    };
    assert_eq!(
        repo::upsert_person(c, &changed).await.unwrap(),
        (pid, Upsert::Updated)
    );
    let stored = repo::find_person(c, "ana@acme.io").await.unwrap();
    assert_eq!(stored, Person { id: pid, ..changed });
    assert_eq!(
        repo::find_person(c, &format!("#{pid}")).await.unwrap().id,
        pid
    );
    assert!(repo::find_person(c, "nobody").await.is_err());
    assert_eq!(
        repo::account(c, acct_id).await.unwrap().unwrap(),
        Account {
            id: acct_id,
            ..acct
        }
    );

    // Touches are idempotent by external id.
    let touch = Touch {
        external_id: Some("t1".into()),
        person_id: pid,
        at: t(1),
        kind: "demo_request".into(),
        medium: Some("cpc".into()),
        cost: Some(Minor::new(12_50)),
        ..Touch::default()
    };
    let (_, u) = repo::upsert_touch(c, &touch).await.unwrap();
    assert_eq!(u, Upsert::Inserted);
    assert_eq!(
        repo::upsert_touch(c, &touch).await.unwrap().1,
        Upsert::Unchanged
    );
    // The insert-first upsert of ingest answers the same, with no second row.
    let (id, u) = repo::upsert_new_touch(c, &touch).await.unwrap();
    assert_eq!(u, Upsert::Unchanged);
    let moved = Touch {
        at: t(2),
        ..touch.clone()
    };
    assert_eq!(
        repo::upsert_new_touch(c, &moved).await.unwrap(),
        (id, Upsert::Updated)
    );
    let fresh = Touch {
        external_id: Some("t-new".into()),
        ..touch.clone()
    };
    let (new_id, u) = repo::upsert_new_touch(c, &fresh).await.unwrap();
    assert_eq!(u, Upsert::Inserted);
    assert_ne!(new_id, id);
    let mut stored: Vec<(Option<Box<str>>, Timestamp)> = repo::touches_of(c, pid)
        .await
        .unwrap()
        .into_iter()
        .map(|t| (t.external_id, t.at))
        .collect();
    stored.sort();
    assert_eq!(
        stored,
        vec![(Some("t-new".into()), t(1)), (Some("t1".into()), t(2))]
    );
    repo::upsert_touch(c, &touch).await.unwrap();
    tx.commit().await.map_err(|e| e.to_string())?;

    // A rolled-back transaction leaves nothing behind.
    {
        let mut tx = store.begin().await.unwrap();
        let ghost = Person {
            texts: PersonTexts::new("ghost", None, None, None),
            ..Person::default()
        };
        repo::upsert_person(tx.conn(), &ghost).await.unwrap();
        drop(tx);
        let mut c = store.conn().await.unwrap();
        assert!(repo::person_by_external(&mut c, "ghost")
            .await
            .unwrap()
            .is_none());
    }

    // The lifecycle: the demo request makes the lead an MQL at that instant.
    let mut tx = store.begin().await.unwrap();
    let appended = lifecycle::advance(tx.conn(), &pb, pid, t(2)).await.unwrap();
    let path: Vec<(&str, Timestamp)> = appended.iter().map(|t| (t.to.as_str(), t.at)).collect();
    assert_eq!(path, [("inquiry", t(0)), ("mql", t(1))]);
    // Nothing new happened: advancing again appends nothing.
    assert!(lifecycle::advance(tx.conn(), &pb, pid, t(3))
        .await
        .unwrap()
        .is_empty());

    // Sales responds and accepts; a refused move appends nothing.
    repo::upsert_activity(
        tx.conn(),
        &Activity {
            id: 0,
            external_id: None,
            person_id: pid,
            at: t(3),
            kind: ActivityKind::Call,
            actor: Some("sam".into()),
            outcome: Some("connected".into()),
        },
    )
    .await
    .unwrap();
    let refused = lifecycle::move_person(
        tx.conn(),
        &pb,
        pid,
        &ManualMove {
            to: "disqualified",
            at: t(4),
            actor: "sam",
            reason: None,
            note: None,
        },
    )
    .await;
    assert!(matches!(refused, Err(MoveError::Rule(_))));
    let accepted = lifecycle::move_person(
        tx.conn(),
        &pb,
        pid,
        &ManualMove {
            to: "sal",
            at: t(4),
            actor: "sam",
            reason: None,
            note: Some("good call"),
        },
    )
    .await
    .unwrap();
    assert_eq!(accepted.len(), 1);
    assert_eq!(accepted[0].from.as_deref(), Some("mql"));
    assert_eq!(accepted[0].note.as_deref(), Some("good call"));

    // A won deal moves the lead to customer, passing sql as skipped.
    let usd = Currency::parse("USD").unwrap();
    let deal = Deal {
        id: 0,
        external_id: "d1".into(),
        account_id: Some(acct_id),
        person_id: Some(pid),
        name: Some("Acme annual".into()),
        amount: Money {
            minor: 24_000_00,
            currency: usd,
        },
        created_at: t(10),
        closed_at: Some(t(100)),
        status: DealStatus::Won,
        lost_reason: None,
        owner: Some("sam".into()),
        kind: "new".into(),
    };
    assert_eq!(
        repo::upsert_deal(tx.conn(), &deal).await.unwrap().1,
        Upsert::Inserted
    );
    assert_eq!(
        repo::upsert_deal(tx.conn(), &deal).await.unwrap().1,
        Upsert::Unchanged
    );
    let won = lifecycle::advance(tx.conn(), &pb, pid, t(200))
        .await
        .unwrap();
    let path: Vec<(&str, bool)> = won.iter().map(|t| (t.to.as_str(), t.skipped)).collect();
    assert_eq!(
        path,
        [("sql", true), ("opportunity", false), ("customer", false)]
    );
    tx.commit().await.unwrap();

    // History reads back whole and in order, with money intact.
    let mut c = store.conn().await.unwrap();
    let history = repo::transitions_of(&mut c, Subject::Person(pid))
        .await
        .unwrap();
    let stages: Vec<&str> = history.iter().map(|t| t.to.as_str()).collect();
    assert_eq!(
        stages,
        ["inquiry", "mql", "sal", "sql", "opportunity", "customer"]
    );
    assert!(history.windows(2).all(|w| w[0].seq < w[1].seq));
    assert_eq!(history[2].actor, "sam");
    let deals = repo::deals(&mut c).await.unwrap();
    assert_eq!(deals[0].amount.to_string(), "24000.00 USD");
    let counts = repo::counts(&mut c).await.unwrap();
    assert_eq!(counts.iter().find(|c| c.0 == "transitions").unwrap().1, 6);
    assert_eq!(counts.iter().find(|c| c.0 == "people").unwrap().1, 1);
    drop(c);

    // Many people's facts read together equal each one read alone: own
    // deals, the account's person-less deals open when the person was
    // created (not the one closed before), touches, activities, history.
    let mut tx = store.begin().await.unwrap();
    let c = tx.conn();
    let bob = Person {
        texts: PersonTexts::new("bob@acme.io", None, None, None),
        account_id: Some(acct_id),
        created_at: t(50),
        ..Person::default()
    };
    let (bob_id, _) = repo::upsert_person(c, &bob).await.unwrap();
    let carol = Person {
        texts: PersonTexts::new("carol@solo.io", None, None, None),
        created_at: t(60),
        ..Person::default()
    };
    let (carol_id, _) = repo::upsert_person(c, &carol).await.unwrap();
    for (ext, closed) in [
        ("acct-open", None),
        ("acct-old", Some(t(20))),
        ("acct-late", Some(t(70))),
    ] {
        let d = Deal {
            external_id: ext.into(),
            person_id: None,
            closed_at: closed,
            status: if closed.is_some() {
                DealStatus::Lost
            } else {
                DealStatus::Open
            },
            name: None,
            owner: None,
            ..deal.clone()
        };
        repo::upsert_deal(c, &d).await.unwrap();
    }
    repo::upsert_touch(
        c,
        &Touch {
            external_id: Some("t-bob".into()),
            person_id: bob_id,
            at: t(55),
            kind: "web_visit".into(),
            ..Touch::default()
        },
    )
    .await
    .unwrap();
    lifecycle::advance(c, &pb, bob_id, t(80)).await.unwrap();
    let ids = [bob_id, pid, carol_id];
    let many = lifecycle::load_many(c, &ids).await.unwrap();
    assert_eq!(many.len(), 3);
    for (id, got) in ids.iter().zip(&many) {
        let want = lifecycle::load(c, *id).await.unwrap();
        assert_eq!(got.person, want.person);
        assert_eq!(got.account, want.account);
        assert_eq!(got.touches, want.touches);
        assert_eq!(got.activities, want.activities);
        assert_eq!(got.deals, want.deals);
        assert_eq!(got.transitions, want.transitions);
    }
    let bob_deals: Vec<&str> = many[0]
        .deals
        .iter()
        .map(|d| d.external_id.as_str())
        .collect();
    assert_eq!(bob_deals, ["acct-open", "acct-late"]);
    assert!(many[2].account.is_none() && many[2].deals.is_empty());
    assert!(lifecycle::load_many(c, &[carol_id, 999_999]).await.is_err());
    drop(tx);

    if db.store.backend() == Backend::Postgres {
        assert!(db.url.to_string().starts_with("postgres"));
    }
    Ok(())
}

#[tokio::test]
async fn sequential_write_transactions_do_not_block() {
    let db = TestDb::sqlite().await.unwrap();
    for i in 0..20 {
        let mut tx = db.store.begin().await.unwrap();
        let p = Person {
            texts: PersonTexts::new(&format!("p{i}"), None, None, None),
            ..Person::default()
        };
        repo::upsert_person(tx.conn(), &p).await.unwrap();
        tx.commit().await.unwrap();
        let mut c = db.store.conn().await.unwrap();
        assert!(repo::person_by_external(&mut c, &format!("p{i}"))
            .await
            .unwrap()
            .is_some());
    }
    db.cleanup().await.unwrap();
}

/// The warm history (`tandem_store::warm`) after inserts that sort before
/// kept rows, in-place updates (one moving a touch in time) and appended
/// transitions of people and accounts equals a fresh read of the store.
#[tokio::test]
async fn warm_history_after_deltas_equals_a_fresh_read_on_every_backend() {
    use tandem_core::domain::Campaign;
    use tandem_core::lifecycle::Move;
    use tandem_store::warm::Warm;

    fn mv(to: &str, h: i64) -> Move {
        Move {
            from: None,
            to: to.into(),
            at: t(h),
            actor: "system".into(),
            reason: None,
            note: None,
            cycle: 1,
            skipped: false,
        }
    }
    fn touch(ext: &str, pid: i64, h: i64) -> Touch {
        Touch {
            external_id: Some(ext.into()),
            person_id: pid,
            at: t(h),
            kind: "web_visit".into(),
            ..Touch::default()
        }
    }
    fn deal(ext: &str, pid: i64, h: i64, status: DealStatus) -> Deal {
        Deal {
            id: 0,
            external_id: ext.into(),
            account_id: None,
            person_id: Some(pid),
            name: None,
            amount: Money {
                minor: 1_000_00,
                currency: Currency::parse("USD").unwrap(),
            },
            created_at: t(h),
            closed_at: None,
            status,
            lost_reason: None,
            owner: None,
            kind: "new".into(),
        }
    }
    async fn same(db: &TestDb, w: &Warm) {
        let mut c = db.store.conn().await.unwrap();
        let fresh = repo::snapshot(&mut c).await.unwrap();
        let s = &w.snap;
        assert_eq!(s.people, fresh.people);
        assert_eq!(s.accounts, fresh.accounts);
        assert_eq!(s.transitions, fresh.transitions);
        assert_eq!(s.account_transitions, fresh.account_transitions);
        assert_eq!(s.touches, fresh.touches);
        assert_eq!(s.activities, fresh.activities);
        assert_eq!(s.deals, fresh.deals);
        assert_eq!(s.campaigns, fresh.campaigns);
    }

    for db in TestDb::all().await.unwrap() {
        let mut c = db.store.conn().await.unwrap();
        let (acct, _) = repo::upsert_account(
            &mut c,
            &Account {
                external_id: "acme".into(),
                ..Account::default()
            },
        )
        .await
        .unwrap();
        let mut ids = Vec::new();
        for (i, name) in ["ana", "bo", "cy"].iter().enumerate() {
            let p = Person {
                texts: PersonTexts::new(name, None, None, None),
                source: Some("event".into()),
                account_id: Some(acct),
                created_at: t(i as i64),
                ..Person::default()
            };
            ids.push(repo::upsert_person(&mut c, &p).await.unwrap().0);
        }
        for (i, &pid) in ids.iter().enumerate() {
            let h = 10 * i as i64;
            repo::upsert_touch(&mut c, &touch(&format!("t{i}"), pid, h + 5))
                .await
                .unwrap();
            repo::append(
                &mut c,
                Subject::Person(pid),
                &[mv("lead", h), mv("mql", h + 6)],
            )
            .await
            .unwrap();
        }
        repo::upsert_deal(&mut c, &deal("d1", ids[0], 20, DealStatus::Open))
            .await
            .unwrap();
        let mut w = Warm::load_from(&db.store).await.unwrap();
        same(&db, &w).await;
        assert_eq!(w.snap.touches.len(), 3);
        assert_eq!(w.refresh(&mut c).await.unwrap(), 0, "nothing new");

        // New rows, some sorting before kept ones.
        let (dan, _) = repo::upsert_person(
            &mut c,
            &Person {
                texts: PersonTexts::new("dan", None, None, None),
                created_at: t(1),
                ..Person::default()
            },
        )
        .await
        .unwrap();
        repo::upsert_touch(&mut c, &touch("early", dan, 1))
            .await
            .unwrap();
        repo::upsert_touch(&mut c, &touch("late", dan, 90))
            .await
            .unwrap();
        repo::append(&mut c, Subject::Person(dan), &[mv("lead", 2)])
            .await
            .unwrap();
        repo::append(&mut c, Subject::Account(acct), &[mv("target", 3)])
            .await
            .unwrap();
        repo::upsert_activity(
            &mut c,
            &Activity {
                id: 0,
                external_id: Some("a1".into()),
                person_id: ids[1],
                at: t(15),
                kind: ActivityKind::Call,
                actor: Some("sam".into()),
                outcome: None,
            },
        )
        .await
        .unwrap();
        repo::upsert_campaign(
            &mut c,
            &Campaign {
                external_id: "spring".into(),
                name: "Spring".into(),
                ..Campaign::default()
            },
        )
        .await
        .unwrap();
        // In-place updates: a field, a touch moved before every other one,
        // a deal won.
        repo::upsert_person(
            &mut c,
            &Person {
                texts: PersonTexts::new("bo", None, None, None),
                source: Some("paid_search".into()),
                account_id: Some(acct),
                created_at: t(1),
                ..Person::default()
            },
        )
        .await
        .unwrap();
        repo::upsert_touch(&mut c, &touch("t2", ids[2], -5))
            .await
            .unwrap();
        repo::upsert_deal(&mut c, &deal("d1", ids[0], 20, DealStatus::Won))
            .await
            .unwrap();

        let n = w.refresh(&mut c).await.unwrap();
        // person dan + bo, touches early/late/t2, 2 transitions, activity,
        // campaign, deal.
        assert_eq!(n, 10, "rows read by the delta");
        same(&db, &w).await;
        assert_eq!(w.snap.touches.get(0).external_id, Some("t2"));
        assert_eq!(
            w.snap
                .people
                .iter()
                .find(|p| p.id == ids[1])
                .unwrap()
                .source
                .as_deref(),
            Some("paid_search")
        );
        assert_eq!(w.snap.deals[0].status, DealStatus::Won);
        assert_eq!(w.refresh(&mut c).await.unwrap(), 0);
        drop(c);
        db.cleanup().await.unwrap();
    }
}

/// The batch writes of imports return what they stored: ids paired with
/// the right external ids across several multi-row statements, and
/// transitions with the `seq` each row got.
#[tokio::test]
async fn batch_writes_return_what_they_store_on_every_backend() {
    use tandem_core::lifecycle::Move;
    for db in TestDb::all().await.unwrap() {
        let backend = db.store.backend();
        let mut tx = db.store.begin().await.unwrap();
        let c = tx.conn();
        // More than one statement's worth, external ids out of order.
        let people: Vec<Person> = (0..600)
            .map(|i| Person {
                texts: PersonTexts::new(&format!("x{}", (i * 7919) % 600), None, None, None),
                title: Some(format!("t{i}").into()),
                created_at: t(i),
                ..Person::default()
            })
            .collect();
        let refs: Vec<&Person> = people.iter().collect();
        let ids = repo::insert_new_people(c, &refs).await.unwrap();
        assert_eq!(ids.len(), 600);
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "{backend:?}: ids in order given"
        );
        let mut exts: Vec<&str> = people.iter().map(|p| p.external_id()).collect();
        exts.push("missing");
        let found = repo::people_by_external_many(c, &exts).await.unwrap();
        assert_eq!(found.len(), 600);
        for (p, id) in people.iter().zip(&ids) {
            let f = &found[p.external_id()];
            assert_eq!((f.id, &f.title), (*id, &p.title), "{backend:?}");
        }
        repo::lock_people(c, &ids).await.unwrap();
        // Two moves for each of 300 people: three statements.
        let moves: Vec<(Subject, Vec<Move>)> = ids[..300]
            .iter()
            .enumerate()
            .map(|(i, id)| {
                let mv = |to: &str, h: i64| Move {
                    from: None,
                    to: to.into(),
                    at: t(h),
                    actor: "test".into(),
                    reason: (i % 2 == 0).then(|| "no_budget".into()),
                    note: None,
                    cycle: 1,
                    skipped: i % 3 == 0,
                };
                let i = i as i64;
                (
                    Subject::Person(*id),
                    vec![mv("inquiry", i), mv("mql", 1000 - i)],
                )
            })
            .collect();
        let appended = repo::append_many(c, moves.iter().map(|(s, m)| (*s, m.as_slice())))
            .await
            .unwrap();
        let mut stored = repo::transitions(c).await.unwrap();
        stored.sort_by_key(|t| t.seq);
        assert_eq!(appended, stored, "{backend:?}");
        drop(tx);
        db.cleanup().await.unwrap();
    }
}

/// A full read (the warm history and `snapshot_from`, from the file on
/// SQLite; `snapshot_streaming`'s transitions) gives exactly what reading
/// row by row through the pool in SQL order gives:
/// nulls, custom fields with quotes, backslashes and non-ASCII text, account
/// and person transitions, skipped flags, campaigns without a start, and
/// more touches than one page, in the reverse of their id order.
/// Every kind of row, with nulls, odd text, custom fields and more
/// touches than one page, later ids earlier in time.
struct Sample {
    accounts: Vec<Account>,
    people: Vec<Person>,
    touches: Vec<Touch>,
    activities: Vec<Activity>,
    deals: Vec<Deal>,
    campaigns: Vec<tandem_core::domain::Campaign>,
    transitions: Vec<tandem_core::domain::Transition>,
}

fn sample() -> Sample {
    use tandem_core::domain::{Campaign, Transition};
    let odd = "quote \" back \\ slash, tab \t, new\nline, ünïcødé ✓ and /slash";
    let mut custom = serde_json::Map::new();
    custom.insert("note".into(), serde_json::json!(odd));
    custom.insert(
        "nested".into(),
        serde_json::json!({"a": [1, 2.5, null, true]}),
    );
    custom.insert("big".into(), serde_json::json!(9_007_199_254_740_993_i64));
    let opt = |i: i64, s: &str| (i % 3 != 0).then(|| format!("{s} {odd} {i}"));
    let accounts: Vec<Account> = (1..=5)
        .map(|i| Account {
            id: i,
            external_id: format!("acct-{i}"),
            name: opt(i, "name"),
            domain: opt(i + 1, "domain"),
            employees: (i % 2 == 0).then_some(i * 100),
            annual_revenue: (i % 2 == 1).then_some(-i),
            target: i % 2 == 0,
            tier: (i % 2 == 0).then_some(i),
            custom: if i % 2 == 0 {
                custom.clone().into()
            } else {
                serde_json::Map::new().into()
            },
            ..Account::default()
        })
        .collect();
    let people: Vec<Person> = (1..=40)
        .map(|i| Person {
            id: i,
            texts: PersonTexts::new(
                &format!("p-{i}"),
                opt(i, "mail").as_deref(),
                opt(i + 1, "ﬁrst").as_deref(),
                None,
            ),
            title: opt(i + 2, "title").map(Sym::from),
            account_id: (i % 4 != 0).then_some(1 + i % 5),
            source: opt(i, "src").map(Sym::from),
            created_at: t(-i),
            custom: if i % 3 == 0 {
                custom.clone().into()
            } else {
                serde_json::Map::new().into()
            },
            ..Person::default()
        })
        .collect();
    // More than one page, and later ids earlier in time, so the pages
    // must be merged by time, not appended.
    let n = tandem_store::warm::PAGE_ROWS + 2_345;
    let touches: Vec<Touch> = (0..n)
        .map(|i| Touch {
            external_id: (i % 5 != 0).then(|| format!("t-{i}").into()),
            person_id: 1 + i % 40,
            at: t(n - i / 2),
            kind: if i % 2 == 0 {
                "web_visit".into()
            } else {
                "ad_click".into()
            },
            channel: opt(i, "chan").map(Sym::from),
            campaign: opt(i + 1, "camp").map(Sym::from),
            cost: (i % 7 == 0).then_some(Minor::new(i)),
            ..Touch::default()
        })
        .collect();
    let activities: Vec<Activity> = (0..30)
        .map(|i| Activity {
            id: 0,
            external_id: opt(i, "act").map(String::into_boxed_str),
            person_id: 1 + i % 40,
            at: t(30 - i),
            kind: ActivityKind::ALL[(i % 4) as usize],
            actor: opt(i + 1, "rep").map(Sym::from),
            outcome: opt(i + 2, "outcome").map(Sym::from),
        })
        .collect();
    let deals: Vec<Deal> = (0..6)
        .map(|i| Deal {
            id: 0,
            external_id: format!("d-{i}"),
            account_id: (i % 2 == 0).then_some(1 + i % 5),
            person_id: (i % 3 != 0).then_some(1 + i),
            name: opt(i, "deal"),
            amount: Money {
                minor: 1_000_00 * i,
                currency: Currency::parse(if i % 2 == 0 { "USD" } else { "EUR" }).unwrap(),
            },
            created_at: t(6 - i),
            closed_at: (i % 2 == 1).then(|| t(10 + i)),
            status: [DealStatus::Open, DealStatus::Won, DealStatus::Lost][(i % 3) as usize],
            lost_reason: opt(i, "why").map(Sym::from),
            owner: opt(i + 1, "owner").map(Sym::from),
            kind: "new".into(),
        })
        .collect();
    let campaigns: Vec<Campaign> = (0..4)
        .map(|i| Campaign {
            id: 0,
            external_id: format!("c-{i}"),
            name: format!("campaign {odd} {i}"),
            channel: opt(i, "chan"),
            starts_at: (i % 2 == 1).then(|| t(4 - i)),
            ends_at: (i % 2 == 0).then(|| t(9)),
            budget: (i % 2 == 0).then_some(500),
            cost: (i % 3 == 0).then_some(7),
            persona: opt(i, "persona"),
            segment: None,
            owner: opt(i + 1, "owner"),
        })
        .collect();
    let transitions: Vec<Transition> = (0..60)
        .map(|i| Transition {
            seq: 0,
            subject: if i % 4 == 0 {
                Subject::Account(1 + i % 5)
            } else {
                Subject::Person(1 + i % 40)
            },
            from: opt(i, "from").map(Sym::from),
            to: format!("stage {}", i % 5).into(),
            at: t(60 - i / 3),
            actor: if i % 2 == 0 {
                "system".into()
            } else {
                odd.into()
            },
            reason: opt(i + 1, "reason").map(Sym::from),
            note: opt(i + 2, "note").map(Note::from),
            cycle: 1 + u32::try_from(i % 3).unwrap(),
            skipped: i % 5 == 0,
        })
        .collect();
    Sample {
        accounts,
        people,
        touches,
        activities,
        deals,
        campaigns,
        transitions,
    }
}

/// Writes [`sample`] with the bulk inserts, on `c` (in a transaction).
async fn insert_sample(c: &mut tandem_store::AnyConnection, backend: Backend, s: &Sample) {
    repo::insert(c, &repo::ACCOUNTS, &s.accounts).await.unwrap();
    repo::insert(c, &repo::PEOPLE, &s.people).await.unwrap();
    if backend == Backend::Postgres {
        repo::sync_id_sequences(c).await.unwrap();
    }
    repo::insert(c, &repo::TOUCHES, &s.touches).await.unwrap();
    repo::insert(c, &repo::ACTIVITIES, &s.activities)
        .await
        .unwrap();
    repo::insert(c, &repo::DEALS, &s.deals).await.unwrap();
    repo::insert(c, &repo::CAMPAIGNS, &s.campaigns)
        .await
        .unwrap();
    repo::insert(c, &repo::TRANSITIONS, &s.transitions)
        .await
        .unwrap();
}

#[tokio::test]
async fn full_reads_equal_row_by_row_reads_on_every_backend() {
    use tandem_core::domain::Transition;
    use tandem_store::warm::{snapshot_from, snapshot_streaming, Need, TransitionSink, Warm};

    let sample = sample();
    let n = sample.touches.len();
    for db in TestDb::all().await.unwrap() {
        let backend = db.store.backend();
        let mut tx = db.store.begin().await.unwrap();
        insert_sample(tx.conn(), backend, &sample).await;
        tx.commit().await.unwrap();

        let mut c = db.store.conn().await.unwrap();
        let rows = repo::snapshot(&mut c).await.unwrap();
        assert_eq!(rows.touches.len(), n);
        assert!(rows.account_transitions.iter().any(|t| t.skipped));
        assert!(rows.campaigns.iter().any(|k| k.starts_at.is_none()));
        // Read in two lanes on two connections at once.
        let warm = Warm::load_from(&db.store).await.unwrap().snap;
        let streamed = snapshot_from(&db.store, Need::ALL).await.unwrap();
        let no_touches = Need {
            touches: false,
            ..Need::ALL
        };
        let partial = snapshot_from(&db.store, no_touches).await.unwrap();
        assert!(
            partial.touches.is_empty(),
            "{backend:?}: touches not asked for"
        );
        assert_eq!(partial.transitions, rows.transitions, "{backend:?} partial");
        assert_eq!(partial.activities, rows.activities, "{backend:?} partial");
        for (what, s) in [("load_from", &warm), ("snapshot_from", &streamed)] {
            assert_eq!(s.people, rows.people, "{backend:?} {what}");
            assert_eq!(s.accounts, rows.accounts, "{backend:?} {what}");
            assert_eq!(s.transitions, rows.transitions, "{backend:?} {what}");
            assert_eq!(
                s.account_transitions, rows.account_transitions,
                "{backend:?} {what}"
            );
            assert_eq!(s.touches, rows.touches, "{backend:?} {what}");
            assert_eq!(s.activities, rows.activities, "{backend:?} {what}");
            assert_eq!(s.deals, rows.deals, "{backend:?} {what}");
            assert_eq!(s.campaigns, rows.campaigns, "{backend:?} {what}");
        }
        // Transitions handed over one at a time instead, the other tables
        // read beside them: the same rows.
        struct Collect(Vec<Transition>);
        impl TransitionSink for Collect {
            type Out = Vec<Transition>;
            fn push(&mut self, t: TransitionRef<'_>) {
                self.0.push(t.to_transition());
            }
            fn finish(self) -> Vec<Transition> {
                self.0
            }
        }
        let (snap, mut seen) = snapshot_streaming(&db.store, Need::ALL, Collect(Vec::new()))
            .await
            .unwrap();
        assert!(snap.transitions.is_empty() && snap.account_transitions.is_empty());
        assert_eq!(snap.people, rows.people, "{backend:?} streaming");
        assert_eq!(snap.touches, rows.touches, "{backend:?} streaming");
        assert_eq!(snap.campaigns, rows.campaigns, "{backend:?} streaming");
        let mut want = [rows.transitions.to_vec(), rows.account_transitions.to_vec()].concat();
        want.sort_by_key(|t| t.seq);
        seen.sort_by_key(|t| t.seq);
        assert_eq!(seen, want, "{backend:?} streaming");
        drop(c);
        db.cleanup().await.unwrap();
    }
}

/// The schema's indexes, `name: definition`, sorted.
async fn index_list(db: &TestDb) -> Vec<String> {
    let mut c = db.store.conn().await.unwrap();
    let sql = match db.store.backend() {
        Backend::Sqlite => {
            "SELECT name || ': ' || COALESCE(sql, '') FROM sqlite_master WHERE type = 'index' ORDER BY 1"
        }
        Backend::Postgres => {
            "SELECT indexname || ': ' || indexdef FROM pg_indexes WHERE schemaname = current_schema() ORDER BY 1"
        }
    };
    sqlx::query_scalar(sql).fetch_all(&mut *c).await.unwrap()
}

/// A bulk load ([`Fill`]) stores what the bulk inserts store: on an SQLite
/// file through a connection of its own, with a rollback journal and most
/// indexes built at the end; elsewhere through the pool. It leaves the
/// indexes and the file's WAL mode as they were, the pool works after it,
/// and dropped before its commit it stores nothing.
#[tokio::test]
async fn a_bulk_load_stores_what_the_inserts_store_and_nothing_when_dropped() {
    use tandem_store::fill::Fill;

    let sample = sample();
    let keep = ["touches_person_at"];
    let refs = TestDb::all().await.unwrap();
    let fills = TestDb::all().await.unwrap();
    for (r, db) in refs.into_iter().zip(fills) {
        let backend = db.store.backend();
        let mut tx = r.store.begin().await.unwrap();
        insert_sample(tx.conn(), backend, &sample).await;
        tx.commit().await.unwrap();
        let want = repo::snapshot(&mut r.store.conn().await.unwrap())
            .await
            .unwrap();
        r.cleanup().await.unwrap();

        let indexes = index_list(&db).await;
        assert!(indexes
            .iter()
            .any(|i| i.starts_with("transitions_stage_at:")));
        let fill_all = |mut fill: Fill| {
            let s = &sample;
            async move {
                fill.insert(&repo::ACCOUNTS, &s.accounts).await.unwrap();
                fill.insert(&repo::PEOPLE, &s.people).await.unwrap();
                // In two parts, as the demo writes its batches.
                let (a, b) = s.touches.split_at(1_000);
                fill.insert(&repo::TOUCHES, a).await.unwrap();
                fill.insert(&repo::TOUCHES, b).await.unwrap();
                fill.insert(&repo::ACTIVITIES, &s.activities).await.unwrap();
                fill.insert(&repo::DEALS, &s.deals).await.unwrap();
                fill.insert(&repo::CAMPAIGNS, &s.campaigns).await.unwrap();
                fill.insert(&repo::TRANSITIONS, &s.transitions)
                    .await
                    .unwrap();
                fill
            }
        };
        // Dropped before the commit: nothing stored, every index there.
        drop(fill_all(Fill::begin(&db.store, &keep).await.unwrap()).await);
        let mut c = db.store.conn().await.unwrap();
        let counts = repo::counts(&mut c).await.unwrap();
        assert!(
            counts.iter().all(|(_, n)| *n == 0),
            "{backend:?}: {counts:?}"
        );
        drop(c);
        assert_eq!(
            index_list(&db).await,
            indexes,
            "{backend:?} after a rollback"
        );

        let fill = fill_all(Fill::begin(&db.store, &keep).await.unwrap()).await;
        if backend == Backend::Sqlite {
            // Written once, with a rollback journal, not through the WAL.
            let file = db.url.expose();
            let file = file.trim_start_matches("sqlite://");
            let file = file.split('?').next().unwrap();
            assert!(
                std::path::Path::new(&format!("{file}-journal")).exists(),
                "no rollback journal beside {file}"
            );
        }
        fill.commit().await.unwrap();
        let mut c = db.store.conn().await.unwrap();
        let mut got = repo::snapshot(&mut c).await.unwrap();
        let mut want = want.clone();
        if backend == Backend::Postgres {
            // The rolled-back load used up sequence numbers there.
            for s in [&mut got, &mut want] {
                s.touches = (s.touches.iter())
                    .map(|t| t.to_touch())
                    .map(|t| tandem_core::domain::Touch { id: 0, ..t })
                    .collect();
                s.activities = (s.activities.iter())
                    .map(|a| a.to_activity())
                    .map(|a| tandem_core::domain::Activity { id: 0, ..a })
                    .collect();
                s.deals.iter_mut().for_each(|d| d.id = 0);
                s.campaigns.iter_mut().for_each(|k| k.id = 0);
                for ts in [&mut s.transitions, &mut s.account_transitions] {
                    *ts = (ts.iter())
                        .map(|t| t.to_transition())
                        .map(|t| tandem_core::domain::Transition { seq: 0, ..t })
                        .collect();
                }
            }
        }
        assert_eq!(got.accounts, want.accounts, "{backend:?}");
        assert_eq!(got.people, want.people, "{backend:?}");
        assert_eq!(got.touches, want.touches, "{backend:?}");
        assert_eq!(got.activities, want.activities, "{backend:?}");
        assert_eq!(got.deals, want.deals, "{backend:?}");
        assert_eq!(got.campaigns, want.campaigns, "{backend:?}");
        assert_eq!(got.transitions, want.transitions, "{backend:?}");
        assert_eq!(
            got.account_transitions, want.account_transitions,
            "{backend:?}"
        );
        assert_eq!(got.touches.len(), sample.touches.len());
        if backend == Backend::Sqlite {
            let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
                .fetch_one(&mut *c)
                .await
                .unwrap();
            assert_eq!(mode, "wal");
        }
        drop(c);
        assert_eq!(index_list(&db).await, indexes, "{backend:?} after a load");
        // The store writes as before (new ids after the loaded ones).
        let mut tx = db.store.begin().await.unwrap();
        let (id, _) = repo::upsert_person(
            tx.conn(),
            &Person {
                texts: PersonTexts::new("after-the-load", None, None, None),
                ..Person::default()
            },
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(id, 41, "{backend:?}");

        if backend == Backend::Sqlite {
            let err = Fill::begin(&db.store, &["no_such_index"])
                .await
                .err()
                .unwrap();
            assert!(err.to_string().contains("index no_such_index"), "{err}");
        }
        db.cleanup().await.unwrap();
    }
}

/// A bulk load behind a thread ([`FillBehind`]) stores what the inserts
/// store; it begins only on an SQLite file and only when the named table
/// is empty (changing nothing otherwise), and an insert that fails ends
/// it with that error and nothing stored.
#[tokio::test]
async fn a_bulk_load_behind_a_thread_stores_the_rows_or_nothing() {
    use tandem_store::fill::FillBehind;

    let sample = sample();
    let db = TestDb::sqlite().await.unwrap();
    let indexes = index_list(&db).await;
    let mut fill = FillBehind::begin(&db.store, &["transitions_subject"], "people")
        .await
        .unwrap()
        .unwrap();
    fill.insert(&repo::ACCOUNTS, sample.accounts.clone())
        .await
        .unwrap();
    fill.insert(&repo::PEOPLE, sample.people.clone())
        .await
        .unwrap();
    fill.insert(&repo::TRANSITIONS, sample.transitions.clone())
        .await
        .unwrap();
    fill.commit().await.unwrap();
    let got = repo::snapshot(&mut db.store.conn().await.unwrap())
        .await
        .unwrap();
    assert_eq!(got.accounts, sample.accounts);
    assert_eq!(got.people, sample.people);
    let person_transitions = sample
        .transitions
        .iter()
        .filter(|t| matches!(t.subject, tandem_core::domain::Subject::Person(_)))
        .count();
    assert_eq!(got.transitions.len(), person_transitions);
    assert_eq!(index_list(&db).await, indexes);

    // People stored: it does not begin, and leaves the indexes alone.
    assert!(FillBehind::begin(&db.store, &[], "people")
        .await
        .unwrap()
        .is_none());
    assert_eq!(index_list(&db).await, indexes);

    // A failing insert (an id taken) ends the load with its error; the
    // rows queued before it are not stored either.
    let mut fill = FillBehind::begin(&db.store, &[], "touches")
        .await
        .unwrap()
        .unwrap();
    let more = Person {
        id: 1_000,
        texts: PersonTexts::new("queued-first", None, None, None),
        ..Person::default()
    };
    fill.insert(&repo::PEOPLE, vec![more]).await.unwrap();
    let taken = sample.people[0].clone();
    let mut err = None;
    // The error comes back from a later insert or from the commit.
    for _ in 0..8 {
        if let Err(e) = fill.insert(&repo::PEOPLE, vec![taken.clone()]).await {
            err = Some(e);
            break;
        }
    }
    let err = match err {
        Some(e) => e,
        None => fill.commit().await.unwrap_err(),
    };
    assert!(err.to_string().contains("UNIQUE"), "{err}");
    let mut c = db.store.conn().await.unwrap();
    assert!(repo::person(&mut c, 1_000).await.unwrap().is_none());
    assert_eq!(repo::people(&mut c).await.unwrap(), sample.people);
    drop(c);
    assert_eq!(index_list(&db).await, indexes);

    // Not a file: no such load.
    let memory =
        tandem_store::Store::connect(&tandem_store::DatabaseUrl::parse("sqlite::memory:").unwrap())
            .await
            .unwrap();
    assert!(FillBehind::begin(&memory, &[], "people")
        .await
        .unwrap()
        .is_none());
    db.cleanup().await.unwrap();
}
