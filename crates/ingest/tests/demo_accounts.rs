//! The demo company after the sale: target accounts with tiers and owner
//! pairs, buying committees with gaps, renewals, expansions and churn, and
//! retention the scorecard can show.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use tandem_core::accounts::{coverage, coverage_with, Committee};
use tandem_core::domain::{DealStatus, Person};
use tandem_core::metrics::retention::{retention, ArrBook};
use tandem_core::metrics::{period_window, previous_periods};
use tandem_core::playbook::{Period, Playbook, STARTER};
use tandem_core::Timestamp;
use tandem_ingest::demo::{self, DemoOptions, Scale};
use tandem_store::accounts::{self, AccountBook};
use tandem_store::repo;
use tandem_store::testing::TestDb;

#[tokio::test]
async fn demo_has_targets_committees_renewals_expansions_and_churn() {
    let pb = Playbook::load(STARTER).playbook.unwrap();
    let anchor = Timestamp::parse("2026-11-23").unwrap();
    let db = TestDb::sqlite().await.unwrap();
    let opts = DemoOptions {
        seed: 42,
        scale: Scale::Small,
        anchor,
        people: None,
    };
    demo::run(&db.store, &pb, &opts).await.unwrap();
    let mut c = db.store.conn().await.unwrap();

    // Target list: every tier, each with a marketer and a seller.
    let targets = accounts::targets(&mut c).await.unwrap();
    let tiers: BTreeSet<i64> = targets.iter().map(|t| t.tier).collect();
    eprintln!("target accounts: {} in tiers {tiers:?}", targets.len());
    assert!(targets.len() >= 20, "{}", targets.len());
    assert_eq!(tiers, BTreeSet::from([1, 2, 3]));
    assert!(targets
        .iter()
        .all(|t| t.marketer.is_some() && t.seller.is_some()));

    // Deals of every kind; renewals both won and lost.
    let deals = repo::deals(&mut c).await.unwrap();
    let count = |kind: &str, status: DealStatus| {
        deals
            .iter()
            .filter(|d| d.kind == kind && d.status == status)
            .count()
    };
    let (rw, rl, xw) = (
        count("renewal", DealStatus::Won),
        count("renewal", DealStatus::Lost),
        count("expansion", DealStatus::Won),
    );
    eprintln!("renewals won {rw}, lost {rl}; expansions won {xw}");
    assert!(rw > 0 && rl > 0 && xw > 0);

    // Account stages: customers, expansions and churn with a reason.
    let book = AccountBook::load(&mut c).await.unwrap();
    let all: Vec<_> = book.transitions.values().flatten().collect();
    let reached = |s: &str| all.iter().filter(|t| t.to == s).count();
    eprintln!(
        "account stages: target {}, engaged {}, opportunity {}, customer {}, expansion {}, churned {}",
        reached("target"),
        reached("engaged"),
        reached("opportunity"),
        reached("customer"),
        reached("expansion"),
        reached("churned")
    );
    for s in [
        "target",
        "engaged",
        "opportunity",
        "customer",
        "expansion",
        "churned",
    ] {
        assert!(reached(s) > 0, "no account reached {s}");
    }
    assert!(all
        .iter()
        .filter(|t| t.to == "churned")
        .all(|t| t.reason.is_some()));
    assert!(all.iter().all(|t| t.at <= anchor));

    // Buying committees: some complete, most with gaps.
    // One committee shared by every account (answers remembered across
    // accounts) gives each account's coverage exactly as alone.
    let (mut full, mut gaps) = (0, 0);
    let committee = Committee::new(&pb);
    for a in &book.accounts {
        let people: Vec<&Person> = book.people_of(a.id).iter().collect();
        if people.is_empty() {
            continue;
        }
        let cov = coverage(&pb, a, &people);
        assert_eq!(
            coverage_with(&committee, a, &people),
            cov,
            "account {}",
            a.id
        );
        if cov.missing.is_empty() {
            full += 1;
        } else {
            gaps += 1;
        }
    }
    eprintln!("committees: {full} complete, {gaps} with gaps");
    assert!(full > 0 && gaps > full);

    // Retention of the current quarter and the one before: customers at
    // the start, NRR and GRR defined, GRR ≤ 1 ≤ NRR + churn share.
    let account_ts: tandem_core::transitions::Transitions = all.into_iter().cloned().collect();
    let arr = ArrBook::new(&deals, &account_ts, anchor);
    let q = period_window(Period::Quarter, anchor, &pb.company.timezone).unwrap();
    let prev = previous_periods(Period::Quarter, q, 1, &pb.company.timezone).unwrap()[0];
    for w in [prev, q] {
        let r = retention(&arr, w, anchor, &|_| true);
        eprintln!("{w:?}: {r:?}");
        assert!(r.start_arr > 0 && r.start_logos > 0);
        let (nrr, grr) = (r.nrr.unwrap(), r.grr.unwrap());
        assert!(grr <= 1.0 && grr <= nrr);
        assert_eq!(
            r.start_arr + r.expansion - r.contraction - r.churn,
            (nrr * r.start_arr as f64).round() as i64
        );
    }
    drop(c);
    db.cleanup().await.unwrap();
}
