//! The fixed demo company the report tests read: `tandem demo --seed 42
//! --anchor 2026-11-23` plus a few decisions and content uses.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use tandem_core::playbook::{Playbook, STARTER};
use tandem_core::Timestamp;
use tandem_ingest::demo::{self, DemoOptions, Scale};
use tandem_report::Inputs;
use tandem_store::testing::TestDb;
use tandem_store::weekly::{self, ContentAsset, NewDecision};

pub fn playbook() -> Playbook {
    Playbook::load(STARTER).playbook.expect("starter loads")
}

/// Monday 2026-11-23 00:00 in the company timezone (America/New_York).
pub fn as_of(pb: &Playbook) -> Timestamp {
    Timestamp::parse_in("2026-11-23", &pb.company.timezone).unwrap()
}

fn t(s: &str) -> Timestamp {
    Timestamp::parse(s).unwrap()
}

/// The demo company with decisions and content use; returns the db and its inputs.
pub async fn demo_db(pb: &Playbook) -> (TestDb, Inputs<'static>) {
    let db = TestDb::sqlite().await.expect("db");
    demo::run(
        &db.store,
        pb,
        &DemoOptions {
            seed: 42,
            scale: Scale::Small,
            anchor: Timestamp::parse("2026-11-23").unwrap(),
            people: None,
        },
    )
    .await
    .expect("demo");
    {
        let mut c = db.store.conn().await.unwrap();
        let d = |text: &str, owner: &str, action: bool| NewDecision {
            text: text.into(),
            owner: Some(owner.into()),
            due_at: action.then(|| t("2026-11-20T17:00:00Z")),
            action,
            meeting: "weekly".into(),
        };
        weekly::add_decision(
            &mut c,
            &d(
                "MQL threshold stays at fit 40 / engagement 30",
                "shared",
                false,
            ),
            t("2026-11-09T15:00:00Z"),
        )
        .await
        .unwrap();
        let a = weekly::add_decision(
            &mut c,
            &d(
                "Call every enterprise MQL within 4 hours",
                "ana.silva",
                true,
            ),
            t("2026-11-09T15:05:00Z"),
        )
        .await
        .unwrap();
        weekly::add_decision(
            &mut c,
            &d("Draft a fintech case study", "maya.lindqvist", true),
            t("2026-11-16T15:00:00Z"),
        )
        .await
        .unwrap();
        weekly::complete_decision(&mut c, a.id, t("2026-11-18T14:00:00Z"))
            .await
            .unwrap();
        // Done after as-of: still open in the report as of 2026-11-23.
        weekly::add_decision(
            &mut c,
            &d("Review the webinar cadence", "tom.reyes", true),
            t("2026-11-25T15:00:00Z"),
        )
        .await
        .unwrap();
        let asset = |id: &str, title: &str, stage: &str| ContentAsset {
            id: 0,
            external_id: id.into(),
            title: title.into(),
            url: Some(format!("https://cdn.acme.example/{id}.pdf")),
            kind: Some("case_study".into()),
            persona: None,
            stage: Some(stage.into()),
            created_at: t("2026-10-01T12:00:00Z"),
        };
        let (cs, _) =
            weekly::upsert_asset(&mut c, &asset("cs-fintech", "Fintech case study", "sql"))
                .await
                .unwrap();
        let (roi, _) = weekly::upsert_asset(&mut c, &asset("roi-deck", "ROI deck", "opportunity"))
            .await
            .unwrap();
        for (id, at) in [
            (cs.id, "2026-11-10T15:00:00Z"),
            (cs.id, "2026-11-17T15:00:00Z"),
            (cs.id, "2026-11-19T15:00:00Z"),
            (roi.id, "2026-11-18T15:00:00Z"),
            (roi.id, "2026-11-24T15:00:00Z"),
        ] {
            weekly::record_use(&mut c, id, None, "ana.silva", t(at))
                .await
                .unwrap();
        }
    }
    add_feedback(&db).await;
    let inputs = tandem_report::load(&db.store).await.expect("load");
    (db, inputs)
}

/// Feedback both ways, written through the store's feedback API.
pub async fn add_feedback(db: &TestDb) {
    use tandem_store::feedback::{self, Kind, Links, NewItem, Status, Team};
    let mut c = db.store.conn().await.unwrap();
    let item = |kind, title: &str, author: &str, team, person: Option<&str>| NewItem {
        kind,
        title: title.into(),
        body: String::new(),
        author: author.into(),
        team,
        links: Links {
            person: person.map(str::to_string),
            ..Links::default()
        },
    };
    let rows = [
        (
            Kind::Success,
            "Closed the fintech pilot after the webinar",
            "ana.silva",
            Team::Sales,
            Some("demo-p0000243"),
            "2026-11-18T16:00:00Z",
        ),
        (
            Kind::Obstacle,
            "Enterprise leads ask for SOC 2 before a demo",
            "ben.okafor",
            Team::Sales,
            None,
            "2026-11-12T16:00:00Z",
        ),
        (
            Kind::ContentRequest,
            "A security one-pager for enterprise buyers",
            "ben.okafor",
            Team::Sales,
            None,
            "2026-11-13T16:00:00Z",
        ),
        (
            Kind::LeadQuality,
            "Student sign-ups from the display campaign",
            "erin.walsh",
            Team::Sales,
            None,
            "2026-11-19T16:00:00Z",
        ),
        (
            Kind::Obstacle,
            "Pricing page is out of date",
            "carla.mendes",
            Team::Sales,
            None,
            "2026-11-03T16:00:00Z",
        ),
    ];
    for (kind, title, author, team, person, at) in rows {
        feedback::create(&mut c, &item(kind, title, author, team, person), t(at))
            .await
            .unwrap();
    }
    // The pricing page was fixed: done, no longer open.
    feedback::set_status(&mut c, 5, Status::Done, t("2026-11-10T12:00:00Z"))
        .await
        .unwrap();
    feedback::add_comment(
        &mut c,
        2,
        "maya.lindqvist",
        "Drafting an FAQ",
        t("2026-11-14T12:00:00Z"),
    )
    .await
    .unwrap();
}
