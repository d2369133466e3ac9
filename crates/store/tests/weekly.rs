//! Decisions log and content assets on every backend.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use tandem_core::Timestamp;
use tandem_store::repo::Upsert;
use tandem_store::testing::TestDb;
use tandem_store::weekly::{self, ContentAsset, NewDecision};
use tandem_store::StoreError;

fn t(s: &str) -> Timestamp {
    Timestamp::parse(s).unwrap()
}

#[tokio::test]
async fn decisions_and_content_on_every_backend() {
    for db in TestDb::all().await.unwrap() {
        {
            let mut c = db.store.conn().await.unwrap();
            let d = weekly::add_decision(
                &mut c,
                &NewDecision {
                    text: "Call enterprise MQLs within 4 hours".into(),
                    owner: Some("ana".into()),
                    due_at: Some(t("2026-11-27T17:00:00Z")),
                    action: true,
                    meeting: "weekly".into(),
                },
                t("2026-11-23T15:00:00Z"),
            )
            .await
            .unwrap();
            assert_eq!(d.id, 1);
            assert!(d.action && d.done_at.is_none());
            assert!(d.open_at(t("2026-11-24T00:00:00Z")));
            assert!(!d.open_at(t("2026-11-22T00:00:00Z")), "not yet taken");
            let done = weekly::complete_decision(&mut c, 1, t("2026-11-25T10:00:00Z"))
                .await
                .unwrap();
            assert_eq!(done.done_at, Some(t("2026-11-25T10:00:00Z")));
            // Completing again keeps the first time.
            let again = weekly::complete_decision(&mut c, 1, t("2026-11-26T10:00:00Z"))
                .await
                .unwrap();
            assert_eq!(again.done_at, done.done_at);
            assert!(!again.open_at(t("2026-11-25T10:00:00Z")));
            assert!(again.open_at(t("2026-11-25T09:59:59Z")));
            assert!(matches!(
                weekly::complete_decision(&mut c, 99, t("2026-11-26T10:00:00Z")).await,
                Err(StoreError::NotFound { .. })
            ));
            assert_eq!(weekly::decisions(&mut c).await.unwrap(), [again]);

            let a = ContentAsset {
                id: 0,
                external_id: "cs-fintech".into(),
                title: "Fintech case study".into(),
                url: None,
                kind: Some("case_study".into()),
                persona: None,
                stage: Some("sql".into()),
                created_at: t("2026-11-01T00:00:00Z"),
            };
            let (a1, u1) = weekly::upsert_asset(&mut c, &a).await.unwrap();
            assert_eq!(u1, Upsert::Inserted);
            let (_, u2) = weekly::upsert_asset(&mut c, &a).await.unwrap();
            assert_eq!(u2, Upsert::Unchanged);
            let renamed = ContentAsset {
                title: "Fintech case study (2026)".into(),
                created_at: t("2026-11-20T00:00:00Z"),
                ..a.clone()
            };
            let (a3, u3) = weekly::upsert_asset(&mut c, &renamed).await.unwrap();
            assert_eq!(u3, Upsert::Updated);
            assert_eq!(a3.created_at, a1.created_at, "created_at is kept");
            assert_eq!(weekly::find_asset(&mut c, "cs-fintech").await.unwrap(), a3);
            assert_eq!(
                weekly::find_asset(&mut c, &format!("#{}", a1.id))
                    .await
                    .unwrap(),
                a3
            );
            assert!(matches!(
                weekly::find_asset(&mut c, "nope").await,
                Err(StoreError::NotFound { .. })
            ));
            weekly::record_use(&mut c, a1.id, None, "ana", t("2026-11-24T10:00:00Z"))
                .await
                .unwrap();
            weekly::record_use(&mut c, a1.id, None, "ben", t("2026-11-23T10:00:00Z"))
                .await
                .unwrap();
            let uses = weekly::content_uses(&mut c).await.unwrap();
            let by: Vec<&str> = uses.iter().map(|u| u.used_by.as_str()).collect();
            assert_eq!(by, ["ben", "ana"], "in time order");
            assert_eq!(weekly::assets(&mut c).await.unwrap(), [a3]);
        }
        db.cleanup().await.unwrap();
    }
}
