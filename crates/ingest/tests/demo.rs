//! `tandem demo`: determinism, and the stories the demo data must tell,
//! measured on the stored history.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};

use tandem_core::activities::Activities;
use tandem_core::domain::PersonTexts;
use tandem_core::domain::{DealStatus, Subject};
use tandem_core::facts::channel_of;
use tandem_core::playbook::{Playbook, STARTER};
use tandem_core::sla::{self, ClockStatus};
use tandem_core::Timestamp;
use tandem_ingest::demo::{self, DemoOptions, Scale};
use tandem_store::repo;
use tandem_store::testing::TestDb;

fn playbook() -> Playbook {
    let loaded = Playbook::load(STARTER);
    loaded.playbook.expect("starter playbook loads")
}

fn anchor() -> Timestamp {
    Timestamp::parse("2026-11-23").expect("date")
}

fn opts(seed: u64, people: Option<usize>) -> DemoOptions {
    DemoOptions {
        seed,
        scale: Scale::Small,
        anchor: anchor(),
        people,
    }
}

/// Every table, serialised, in id order.
async fn dump(db: &TestDb) -> String {
    let mut c = db.store.conn().await.expect("conn");
    let v = serde_json::json!({
        "accounts": repo::accounts(&mut c).await.expect("accounts"),
        "people": repo::people(&mut c).await.expect("people"),
        "touches": repo::touches(&mut c).await.expect("touches"),
        "activities": repo::activities(&mut c).await.expect("activities"),
        "deals": repo::deals(&mut c).await.expect("deals"),
        "campaigns": repo::campaigns(&mut c).await.expect("campaigns"),
        "transitions": repo::transitions(&mut c).await.expect("transitions"),
        "targets": tandem_store::accounts::targets(&mut c).await.expect("targets"),
    });
    v.to_string()
}

#[tokio::test]
async fn same_seed_same_rows_other_seed_other_rows() {
    let pb = playbook();
    let a = TestDb::sqlite().await.expect("db");
    let b = TestDb::sqlite().await.expect("db");
    let c = TestDb::sqlite().await.expect("db");
    demo::run(&a.store, &pb, &opts(7, Some(300)))
        .await
        .expect("run a");
    demo::run(&b.store, &pb, &opts(7, Some(300)))
        .await
        .expect("run b");
    demo::run(&c.store, &pb, &opts(8, Some(300)))
        .await
        .expect("run c");
    let (da, db_, dc) = (dump(&a).await, dump(&b).await, dump(&c).await);
    assert!(da.len() > 10_000);
    assert_eq!(da, db_, "same seed and anchor must give identical rows");
    assert_ne!(da, dc, "another seed must give other rows");
    // A second run on the same database is refused.
    let again = demo::run(&a.store, &pb, &opts(7, Some(300))).await;
    assert!(matches!(again, Err(demo::DemoError::NotEmpty(300))));
    for d in [a, b, c] {
        d.cleanup().await.expect("cleanup");
    }
}

#[tokio::test]
async fn demo_data_tells_the_stories() {
    let pb = playbook();
    let db = TestDb::sqlite().await.expect("db");
    let summary = demo::run(&db.store, &pb, &opts(42, None))
        .await
        .expect("run");
    let mut c = db.store.conn().await.expect("conn");
    let people = repo::people(&mut c).await.expect("people");
    let touches = repo::touches(&mut c).await.expect("touches");
    let activities: Activities = repo::activities(&mut c).await.expect("activities").into();
    let deals = repo::deals(&mut c).await.expect("deals");
    let campaigns = repo::campaigns(&mut c).await.expect("campaigns");
    let all_transitions = repo::transitions(&mut c).await.expect("transitions");
    // The lead funnel's stories are about people; accounts have their own
    // lifecycle (tests/demo_accounts.rs).
    let transitions = tandem_core::transitions::Transitions::from(
        repo::transitions_of_kind(&mut c, "person")
            .await
            .expect("transitions"),
    );
    assert_eq!(people.len(), 2_000);
    let written: BTreeMap<&str, u64> = summary.rows.iter().copied().collect();
    assert_eq!(written["touches"], touches.len() as u64);
    assert_eq!(written["transitions"], all_transitions.len() as u64);
    let by_id: BTreeMap<i64, _> = people.iter().map(|p| (p.id, p)).collect();
    let person_of = |s: Subject| by_id.get(&s.id()).copied();

    // Inquiry → customer: a few percent.
    let reached = |stage: &str| -> BTreeSet<i64> {
        transitions
            .iter()
            .filter(|t| t.to == stage)
            .map(|t| t.subject.id())
            .collect()
    };
    let inquiries = reached("inquiry").len() as f64;
    let customers = reached("customer").len() as f64;
    let share = customers / inquiries;
    eprintln!("inquiry → customer: {customers} / {inquiries} = {share:.4}");
    assert!((0.01..=0.10).contains(&share), "inquiry→customer {share}");

    // Paid search returns more won revenue per unit of cost than display.
    let mut won_by_source: BTreeMap<String, i64> = BTreeMap::new();
    for d in deals.iter().filter(|d| d.status == DealStatus::Won) {
        let src = d
            .person_id
            .and_then(|id| by_id.get(&id))
            .and_then(|p| p.source)
            .unwrap_or_default();
        *won_by_source.entry(src.to_string()).or_default() += d.amount.minor;
    }
    let mut cost: BTreeMap<String, i64> = BTreeMap::new();
    for k in &campaigns {
        *cost
            .entry(k.channel.clone().unwrap_or_default())
            .or_default() += k.cost.unwrap_or(0);
    }
    let roi = |ch: &str| {
        let c = cost.get(ch).copied().unwrap_or(0);
        assert!(c > 0, "{ch} has no cost");
        won_by_source.get(ch).copied().unwrap_or(0) as f64 / c as f64
    };
    let (ps, disp) = (roi("paid_search"), roi("display"));
    eprintln!("won revenue per unit of cost: paid_search {ps:.2}, display {disp:.2}");
    assert!(ps > disp);

    // smb: marketing's MQL share far above its share of won revenue.
    let mqls: Vec<_> = transitions.iter().filter(|t| t.to == "mql").collect();
    let smb_mqls = mqls
        .iter()
        .filter(|t| person_of(t.subject).and_then(|p| p.segment.as_deref()) == Some("smb"))
        .count() as f64;
    let won: Vec<_> = deals
        .iter()
        .filter(|d| d.status == DealStatus::Won)
        .collect();
    let won_total: i64 = won.iter().map(|d| d.amount.minor).sum();
    let won_smb: i64 = won
        .iter()
        .filter(|d| {
            d.person_id
                .and_then(|id| by_id.get(&id))
                .and_then(|p| p.segment.as_deref())
                == Some("smb")
        })
        .map(|d| d.amount.minor)
        .sum();
    let mql_share = smb_mqls / mqls.len() as f64;
    let won_share = won_smb as f64 / won_total as f64;
    eprintln!("smb: MQL share {mql_share:.3}, won revenue share {won_share:.3}");
    assert!(mql_share - won_share >= 0.15);

    // SLA breaches on both sides.
    let sales = sla::sales_sla(&pb, &people, &transitions, &activities, anchor()).expect("sla");
    let breached = sales
        .handoffs
        .iter()
        .filter(|h| h.response == ClockStatus::Breached)
        .count();
    eprintln!(
        "first-response breaches: {breached} of {}",
        sales.handoffs.len()
    );
    assert!(breached > 0);
    let marketing = sla::marketing_sla(&pb, &transitions, None, anchor()).expect("sla");
    let weak_weeks = marketing
        .weeks
        .iter()
        .filter(|w| {
            w.volume_status == ClockStatus::Breached
                || w.sal_rate_status == Some(ClockStatus::Breached)
        })
        .count();
    let low_sal_rate = marketing
        .weeks
        .iter()
        .filter(|w| w.sal_rate_status == Some(ClockStatus::Breached))
        .count();
    eprintln!(
        "marketing weeks breached: {weak_weeks} of {} ({low_sal_rate} below the SAL rate)",
        marketing.weeks.len()
    );
    assert!(weak_weeks > 0);
    assert!(low_sal_rate > 0);

    // Stalled leads in the handoff stages.
    let stalled = sla::stalled(&pb, &people, &transitions, anchor());
    let handoff_stalled = stalled
        .iter()
        .filter(|s| ["mql", "sal", "sql"].contains(&s.stage.as_str()))
        .count();
    eprintln!(
        "stalled: {} ({handoff_stalled} in mql/sal/sql)",
        stalled.len()
    );
    assert!(handoff_stalled > 0);

    // Recycled people who came back as MQLs in a new cycle.
    let back = transitions
        .iter()
        .filter(|t| t.to == "mql" && t.cycle >= 2 && t.from.as_deref() == Some("recycled"))
        .count();
    eprintln!("recycled and back as MQL: {back}");
    assert!(back > 0);
    let recycle_reasons: BTreeSet<_> = transitions
        .iter()
        .filter(|t| t.to == "recycled")
        .filter_map(|t| t.reason)
        .collect();
    assert!(recycle_reasons.contains("no_response") && recycle_reasons.contains("bad_timing"));
    let dq_reasons: BTreeSet<_> = transitions
        .iter()
        .filter(|t| t.to == "disqualified")
        .filter_map(|t| t.reason)
        .collect();
    assert!(dq_reasons.contains("not_icp") && dq_reasons.contains("student_or_competitor"));

    // Every reason is a playbook reason that applies where it is used.
    for t in &transitions {
        if let Some(r) = &t.reason {
            let reason = pb.reason(r).unwrap_or_else(|| panic!("unknown reason {r}"));
            assert!(
                reason.applies_to.iter().any(|s| *s == t.to),
                "{r} on {}",
                t.to
            );
        }
        if t.actor != "system" {
            assert!(!t.actor.is_empty());
        }
    }
    let lost: BTreeSet<_> = deals.iter().filter_map(|d| d.lost_reason).collect();
    assert_eq!(lost.len(), 4, "{lost:?}");
    for r in &lost {
        assert!(pb
            .reason(r)
            .is_some_and(|x| x.applies_to.iter().any(|a| a == "lost")));
    }

    // Touches spread over every channel the playbook derives, and name
    // generated campaigns; some campaigns are still to come.
    let campaign_ids: BTreeSet<_> = campaigns.iter().map(|k| k.external_id.clone()).collect();
    let mut channels = BTreeSet::new();
    for t in &touches {
        let p = by_id[&t.person_id];
        channels.insert(channel_of(&pb, t, p).unwrap_or_default());
        assert!(t
            .campaign
            .as_ref()
            .is_some_and(|k| campaign_ids.contains(k.as_str())));
    }
    for ch in [
        "paid_search",
        "display",
        "paid_social",
        "email",
        "organic_search",
        "referral",
        "events",
    ] {
        assert!(channels.contains(ch), "no {ch} touches: {channels:?}");
    }
    assert!(campaigns
        .iter()
        .any(|k| k.starts_at.is_some_and(|s| s >= anchor())));
    // Nothing happens after the anchor except open deals' expected closes.
    assert!(touches.iter().all(|t| t.at <= anchor()));
    assert!(transitions.iter().all(|t| t.at <= anchor()));
    assert!(activities.iter().all(|a| a.at <= anchor()));
    drop(c);
    db.cleanup().await.expect("cleanup");
}

/// Both backends store the same demo byte for byte, and PostgreSQL's id
/// sequences are moved past the explicitly inserted ids.
#[tokio::test]
async fn postgres_stores_the_same_demo_as_sqlite() {
    let Some(pg) = TestDb::postgres().await.expect("postgres") else {
        return;
    };
    let pb = playbook();
    let lite = TestDb::sqlite().await.expect("db");
    demo::run(&lite.store, &pb, &opts(5, Some(200)))
        .await
        .expect("sqlite run");
    demo::run(&pg.store, &pb, &opts(5, Some(200)))
        .await
        .expect("postgres run");
    assert_eq!(dump(&lite).await, dump(&pg).await);
    {
        let mut tx = pg.store.begin().await.expect("tx");
        let p = tandem_core::domain::Person {
            texts: PersonTexts::new("after-demo", None, None, None),
            ..Default::default()
        };
        let (id, _) = repo::upsert_person(tx.conn(), &p)
            .await
            .expect("insert after demo");
        assert!(id > 200, "new ids come after the demo's: {id}");
        tx.commit().await.expect("commit");
    }
    lite.cleanup().await.expect("cleanup");
    pg.cleanup().await.expect("cleanup");
}

/// The generator derives the account lifecycle in memory, from the rows it
/// writes; `tandem_store::accounts::sync` derives it from the stored rows.
/// Both must give the same transitions: drop the demo's account
/// transitions, sync from the database, and compare.
#[tokio::test]
async fn account_lifecycle_in_memory_equals_sync_from_the_store() {
    let pb = playbook();
    let db = TestDb::sqlite().await.expect("db");
    demo::run(&db.store, &pb, &opts(11, Some(600)))
        .await
        .expect("run");
    let strip = |ts: Vec<tandem_core::domain::Transition>| -> Vec<String> {
        let mut v: Vec<String> = ts
            .into_iter()
            .map(|mut t| {
                t.seq = 0;
                format!("{t:?}")
            })
            .collect();
        v.sort();
        v
    };
    let mut tx = db.store.begin().await.expect("tx");
    let generated = strip(
        repo::transitions_of_kind(tx.conn(), "account")
            .await
            .expect("transitions"),
    );
    assert!(
        generated.len() > 100,
        "{} account transitions",
        generated.len()
    );
    let n = tandem_store::accounts::sync(tx.conn(), &pb, anchor())
        .await
        .expect("sync");
    assert_eq!(n, 0, "the demo's account stages are up to date");
    sqlx_delete_account_transitions(&mut tx).await;
    let n = tandem_store::accounts::sync(tx.conn(), &pb, anchor())
        .await
        .expect("sync");
    assert_eq!(n, generated.len());
    let synced = strip(
        repo::transitions_of_kind(tx.conn(), "account")
            .await
            .expect("transitions"),
    );
    assert_eq!(generated, synced);
    drop(tx);
    db.cleanup().await.expect("cleanup");
}

async fn sqlx_delete_account_transitions(tx: &mut tandem_store::Tx<'_>) {
    sqlx::query("DELETE FROM transitions WHERE subject_kind = 'account'")
        .execute(tx.conn())
        .await
        .expect("delete");
}

/// The bulk load drops most of SQLite's secondary indexes and builds them
/// again at the end: afterwards the schema has exactly what the migrations
/// made (a rebuilt index comes after the kept ones in `sqlite_master`).
#[tokio::test]
async fn indexes_are_back_after_the_load() {
    let pb = playbook();
    let fresh = TestDb::sqlite().await.expect("db");
    let db = TestDb::sqlite().await.expect("db");
    demo::run(&db.store, &pb, &opts(3, Some(100)))
        .await
        .expect("run");
    let q = "SELECT type || ' ' || name || ': ' || sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY type, rowid";
    let schema = |d: &TestDb| {
        let store = d.store.clone();
        async move {
            let mut c = store.conn().await.expect("conn");
            sqlx::query_scalar::<_, String>(q)
                .fetch_all(&mut *c)
                .await
                .expect("schema")
        }
    };
    let (mut a, mut b) = (schema(&fresh).await, schema(&db).await);
    a.sort();
    b.sort();
    assert!(a.iter().any(|s| s.contains("touches_person_at")));
    assert_eq!(a, b);
    fresh.cleanup().await.expect("cleanup");
    db.cleanup().await.expect("cleanup");
}
