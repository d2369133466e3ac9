//! Target lists and the account lifecycle on every backend.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use tandem_core::domain::{Account, Deal, DealStatus, Subject};
use tandem_core::playbook::{Playbook, STARTER};
use tandem_core::{Currency, Money, Timestamp};
use tandem_store::accounts::{self, AccountBook, NewTarget};
use tandem_store::repo::{self, Upsert};
use tandem_store::testing::TestDb;

const DAY: i64 = 86_400_000;
const T0: i64 = 1_772_323_200_000; // 2026-03-01T00:00:00Z

fn d(n: i64) -> Timestamp {
    Timestamp::from_millis(T0 + n * DAY)
}

#[tokio::test]
async fn targets_and_account_stages_on_every_backend() {
    let pb = Playbook::load(STARTER).playbook.unwrap();
    for db in TestDb::all().await.unwrap() {
        let backend = db.store.backend();
        {
            let mut c = db.store.conn().await.unwrap();
            let (id, _) = repo::upsert_account(
                &mut c,
                &Account {
                    external_id: "acme".into(),
                    industry: Some("fintech".into()),
                    employees: Some(900),
                    ..Account::default()
                },
            )
            .await
            .unwrap();
            let t = |tier, seller| NewTarget {
                tier,
                marketer: Some("maya"),
                seller,
                at: d(1),
                actor: "lead",
            };
            assert_eq!(
                accounts::set_target(&mut c, id, &t(1, Some("ben")))
                    .await
                    .unwrap(),
                Upsert::Inserted
            );
            assert_eq!(
                accounts::set_target(&mut c, id, &t(1, Some("ben")))
                    .await
                    .unwrap(),
                Upsert::Unchanged
            );
            let later = NewTarget {
                at: d(9),
                actor: "other",
                ..t(2, Some("carla"))
            };
            assert_eq!(
                accounts::set_target(&mut c, id, &later).await.unwrap(),
                Upsert::Updated
            );
            let list = accounts::targets(&mut c).await.unwrap();
            assert_eq!(list.len(), 1, "{backend:?}");
            // Tier and owners change; the first entry time and actor stay.
            assert_eq!(
                (
                    list[0].tier,
                    list[0].seller.as_deref(),
                    list[0].added_at,
                    list[0].added_by.as_str()
                ),
                (2, Some("carla"), d(1), "lead")
            );
            let acc = accounts::find_account(&mut c, "acme").await.unwrap();
            assert_eq!((acc.target, acc.tier), (true, Some(2)));

            let deal = Deal {
                id: 0,
                external_id: "d1".into(),
                account_id: Some(id),
                person_id: None,
                name: None,
                amount: Money {
                    minor: 5_000_00,
                    currency: Currency::parse("USD").unwrap(),
                },
                created_at: d(3),
                closed_at: Some(d(20)),
                status: DealStatus::Won,
                lost_reason: None,
                owner: None,
                kind: "new".into(),
            };
            repo::upsert_deal(&mut c, &deal).await.unwrap();
            // target (day 1), opportunity (day 3), customer (day 20).
            assert_eq!(accounts::sync(&mut c, &pb, d(100)).await.unwrap(), 3);
            assert_eq!(accounts::sync(&mut c, &pb, d(100)).await.unwrap(), 0);
            let ts = repo::transitions_of(&mut c, Subject::Account(id))
                .await
                .unwrap();
            let stages: Vec<&str> = ts.iter().map(|t| t.to.as_str()).collect();
            assert_eq!(stages, ["target", "opportunity", "customer"]);
            // People's history does not see accounts.
            let snap = repo::snapshot(&mut c).await.unwrap();
            assert!(snap.transitions.is_empty());
            assert_eq!(snap.account_transitions.len(), 3);
            let book = AccountBook::load(&mut c).await.unwrap();
            assert_eq!(book.transitions_of(id).len(), 3);

            assert!(accounts::remove_target(&mut c, id).await.unwrap());
            assert!(!accounts::remove_target(&mut c, id).await.unwrap());
            let acc = accounts::find_account(&mut c, "acme").await.unwrap();
            assert_eq!((acc.target, acc.tier), (false, None));
            assert!(accounts::find_account(&mut c, "nope").await.is_err());
        }
        db.cleanup().await.unwrap();
    }
}
