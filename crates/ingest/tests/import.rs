//! Imports of real export layouts, broken files and the Olist funnel,
//! through the library into a fresh SQLite database.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use tandem_core::domain::{DealStatus, Subject};
use tandem_core::metrics::waterfall::{waterfall, WaterfallOptions};
use tandem_core::metrics::{Grouping, Window};
use tandem_core::playbook::{Playbook, STARTER};
use tandem_core::Timestamp;
use tandem_ingest::{import_file, ImportOptions, Kind, Preset, Summary};
use tandem_store::repo;
use tandem_store::testing::TestDb;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn olist(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/olist")
        .join(name)
}

fn pb() -> Playbook {
    Playbook::load(STARTER).playbook.unwrap()
}

const NOW: i64 = 1_800_000_000_000; // 2027-01-15

async fn import(db: &TestDb, pb: &Playbook, kind: Kind, preset: Preset, path: &Path) -> Summary {
    let opts = ImportOptions {
        kind,
        preset,
        maps: Default::default(),
        batch_size: if kind == Kind::People && preset == Preset::Olist {
            1000
        } else {
            2
        },
        now: Timestamp::from_millis(NOW),
        row_by_row: false,
    };
    import_file(&db.store, pb, path, &opts, &mut |_, _| {})
        .await
        .unwrap()
}

/// Copies a fixture into a temp dir so the reject file lands there.
fn staged(name: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let to = dir.path().join(name);
    std::fs::copy(fixture(name), &to).unwrap();
    (dir, to)
}

#[tokio::test]
async fn broken_rows_go_to_the_reject_file_and_good_rows_are_stored() {
    let db = TestDb::sqlite().await.unwrap();
    let pb = pb();
    let (_dir, path) = staged("broken_people.csv");
    let s = import(&db, &pb, Kind::People, Preset::Generic, &path).await;
    assert_eq!(
        (s.read, s.imported, s.updated, s.unchanged, s.rejected),
        (6, 2, 0, 0, 4)
    );
    let rejects = std::fs::read_to_string(s.rejects_file.as_ref().unwrap()).unwrap();
    let mut r = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(rejects.as_bytes());
    let rows: Vec<(String, String)> = r
        .records()
        .map(|x| x.unwrap())
        .map(|x| (x[0].to_string(), x[1].to_string()))
        .collect();
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[0].0, "3");
    assert!(
        rows[0]
            .1
            .starts_with("`created_at`: invalid date/time \"not a date\""),
        "{}",
        rows[0].1
    );
    assert_eq!(rows[1], ("4".into(), "`external_id` is empty".into()));
    assert_eq!(rows[2], ("5".into(), "expected 5 fields, found 3".into()));
    assert_eq!(
        rows[3],
        ("6".into(), "column `email` is not valid UTF-8".into())
    );
    assert_eq!(
        r.headers().unwrap().iter().collect::<Vec<_>>(),
        [
            "line",
            "reason",
            "external_id",
            "email",
            "created_at",
            "plan",
            "won"
        ]
    );

    let mut c = db.store.conn().await.unwrap();
    let people = repo::people(&mut c).await.unwrap();
    let ids: Vec<&str> = people.iter().map(|p| p.external_id()).collect();
    assert_eq!(ids, ["p1", "p6"]);
    assert_eq!(people[0].custom["plan"], "pro");
    assert_eq!(
        people[0].custom["won"], 1,
        "numeric columns stay numbers for CEL"
    );
    assert_eq!(
        people[1].created_at.to_string(),
        "2026-01-06T15:30:00Z",
        "naive times are company-local (New York)"
    );
    drop(c);

    // Re-importing the same file changes nothing.
    let again = import(&db, &pb, Kind::People, Preset::Generic, &path).await;
    assert_eq!(
        (
            again.imported,
            again.updated,
            again.unchanged,
            again.rejected,
            again.transitions
        ),
        (0, 0, 2, 4, 0)
    );
    db.cleanup().await.unwrap();
}

#[tokio::test]
async fn hubspot_companies_contacts_and_deals() {
    let db = TestDb::sqlite().await.unwrap();
    let pb = pb();
    let s = import(
        &db,
        &pb,
        Kind::Accounts,
        Preset::Hubspot,
        &fixture("hubspot_companies.csv"),
    )
    .await;
    assert_eq!((s.imported, s.rejected), (2, 0));
    let s = import(
        &db,
        &pb,
        Kind::People,
        Preset::Hubspot,
        &fixture("hubspot_contacts.csv"),
    )
    .await;
    assert_eq!((s.imported, s.rejected), (3, 0), "{s:?}");
    let s = import(
        &db,
        &pb,
        Kind::Deals,
        Preset::Hubspot,
        &fixture("hubspot_deals.csv"),
    )
    .await;
    assert_eq!((s.imported, s.rejected), (2, 0), "{s:?}");

    let mut c = db.store.conn().await.unwrap();
    let acme = repo::account_by_external(&mut c, "9001")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            acme.industry.as_deref(),
            acme.employees,
            acme.annual_revenue
        ),
        (Some("software"), Some(500), Some(25_000_000_00))
    );
    let ana = repo::find_person(&mut c, "5101").await.unwrap();
    assert_eq!(ana.account_id, Some(acme.id));
    assert_eq!(ana.source.as_deref(), Some("paid_search"));
    assert_eq!(ana.custom["lead_status"], "Connected");
    let path: Vec<(String, String, bool)> = repo::transitions_of(&mut c, Subject::Person(ana.id))
        .await
        .unwrap()
        .into_iter()
        .map(|t| (t.to.to_string(), t.at.to_string(), t.skipped))
        .collect();
    let expect = [
        ("inquiry", "2026-01-05T15:00:00Z", false),
        ("mql", "2026-01-07T14:00:00Z", false),
        ("sal", "2026-01-12T20:30:00Z", true),
        ("sql", "2026-01-12T20:30:00Z", false),
        ("opportunity", "2026-01-20T14:00:00Z", false),
        ("customer", "2026-03-02T22:00:00Z", false),
    ];
    assert_eq!(
        path,
        expect.map(|(a, b, c)| (a.to_string(), b.to_string(), c))
    );
    let deals = repo::deals(&mut c).await.unwrap();
    assert_eq!(deals[1].status, DealStatus::Lost);
    assert_eq!(deals[1].amount.minor, 5_000_50);
    assert_eq!(deals[1].lost_reason.as_deref(), Some("competitor_won"));
    let bob = repo::find_person(&mut c, "5102").await.unwrap();
    let bob_path: Vec<String> = repo::transitions_of(&mut c, Subject::Person(bob.id))
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.to.to_string())
        .collect();
    assert_eq!(bob_path, ["inquiry"]);
    drop(c);
    db.cleanup().await.unwrap();
}

#[tokio::test]
async fn salesforce_and_marketo_layouts() {
    let db = TestDb::sqlite().await.unwrap();
    let pb = pb();
    let s = import(
        &db,
        &pb,
        Kind::Accounts,
        Preset::Salesforce,
        &fixture("salesforce_accounts.csv"),
    )
    .await;
    assert_eq!((s.imported, s.rejected), (2, 0));
    let s = import(
        &db,
        &pb,
        Kind::People,
        Preset::Salesforce,
        &fixture("salesforce_leads.csv"),
    )
    .await;
    assert_eq!((s.imported, s.rejected), (3, 0));
    let s = import(
        &db,
        &pb,
        Kind::People,
        Preset::Salesforce,
        &fixture("salesforce_contacts.csv"),
    )
    .await;
    assert_eq!((s.imported, s.rejected), (2, 0));
    let s = import(
        &db,
        &pb,
        Kind::Deals,
        Preset::Salesforce,
        &fixture("salesforce_opportunities.csv"),
    )
    .await;
    assert_eq!((s.imported, s.rejected), (2, 0));
    let s = import(
        &db,
        &pb,
        Kind::People,
        Preset::Marketo,
        &fixture("marketo_leads.csv"),
    )
    .await;
    assert_eq!((s.imported, s.rejected), (2, 0));

    let mut c = db.store.conn().await.unwrap();
    let stage_of =
        |ts: Vec<tandem_core::domain::Transition>| ts.last().map(|t| t.to).unwrap_or_default();
    for (ext, stage) in [
        ("00Q1", "mql"),
        ("00Q2", "sal"),
        ("00Q3", "sql"),
        ("1001", "mql"),
        ("1002", "inquiry"),
    ] {
        let p = repo::find_person(&mut c, ext).await.unwrap();
        let ts = repo::transitions_of(&mut c, Subject::Person(p.id))
            .await
            .unwrap();
        assert_eq!(stage_of(ts), stage, "{ext}");
    }
    let dana = repo::find_person(&mut c, "00Q1").await.unwrap();
    assert_eq!(dana.source.as_deref(), Some("web"));
    assert_eq!(dana.custom["numberofemployees"], 300);
    let gus = repo::find_person(&mut c, "1001").await.unwrap();
    assert_eq!(gus.custom["lead_score"], 75);
    assert_eq!(gus.email(), Some("gus@zeta.io"));
    let gamma = repo::account_by_external(&mut c, "001A")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (gamma.name.as_deref(), gamma.employees, gamma.annual_revenue),
        (Some("Gamma Health"), Some(300), Some(12_000_000_00))
    );
    let ivy = repo::find_person(&mut c, "003A").await.unwrap();
    assert_eq!(
        (
            ivy.account_id,
            ivy.country.as_deref(),
            ivy.source.as_deref()
        ),
        (Some(gamma.id), Some("US"), Some("trade_show"))
    );
    // The won opportunity on Gamma's account makes its contact a customer.
    let ivy_path: Vec<String> = repo::transitions_of(&mut c, Subject::Person(ivy.id))
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.to.to_string())
        .collect();
    assert_eq!(
        ivy_path.last().map(String::as_str),
        Some("customer"),
        "{ivy_path:?}"
    );
    let deals = repo::deals(&mut c).await.unwrap();
    assert_eq!(
        (deals[0].amount.minor, deals[0].status),
        (12_500_00, DealStatus::Won)
    );
    assert_eq!(deals[0].account_id, Some(gamma.id));
    assert_eq!(
        (deals[1].status, deals[1].kind.as_str()),
        (DealStatus::Open, "expansion")
    );
    drop(c);
    db.cleanup().await.unwrap();
}

/// The published Olist funnel: 8,000 MQLs, 842 closed (10.525%).
#[tokio::test]
async fn olist_funnel_by_source() {
    let db = TestDb::sqlite().await.unwrap();
    let pb = pb();
    let s = import(
        &db,
        &pb,
        Kind::People,
        Preset::Olist,
        &olist("olist_marketing_qualified_leads_dataset.csv"),
    )
    .await;
    assert_eq!((s.imported, s.rejected), (8000, 0));
    let s = import(
        &db,
        &pb,
        Kind::Deals,
        Preset::Olist,
        &olist("olist_closed_deals_dataset.csv"),
    )
    .await;
    assert_eq!((s.imported, s.rejected), (842, 0));

    let mut c = db.store.conn().await.unwrap();
    let snap = repo::snapshot(&mut c).await.unwrap();
    let as_of = Timestamp::from_millis(NOW);
    let window = Window::new(Timestamp::from_millis(0), as_of).unwrap();
    let mut opts = WaterfallOptions::new(window, as_of);
    opts.cohort_stage = Some("mql".into());
    let w = waterfall(&pb, &snap.transitions, &snap.deals, &opts).unwrap();
    let g = &w.groups[0];
    let count = |stage: &str| {
        g.stages
            .iter()
            .find(|s| s.stage == stage)
            .and_then(|s| s.cohort)
    };
    assert_eq!((count("mql"), count("customer")), (Some(8000), Some(842)));
    assert!((g.stages.last().unwrap().cumulative.unwrap() - 0.10525).abs() < 1e-12);

    let by_source: tandem_core::metrics::GroupKeys = snap
        .people
        .iter()
        .filter_map(|p| p.source.as_deref().map(|s| (p.id, s)))
        .collect();
    opts.grouping = Grouping::Map(&by_source);
    let w = waterfall(&pb, &snap.transitions, &snap.deals, &opts).unwrap();
    let get = |src: &str, stage: &str| {
        w.groups
            .iter()
            .find(|g| g.group == src)
            .and_then(|g| g.stages.iter().find(|s| s.stage == stage))
            .and_then(|s| s.cohort)
    };
    for (src, mqls, won) in [
        ("organic_search", 2296, 271),
        ("paid_search", 1586, 195),
        ("social", 1350, 75),
        ("email", 493, 15),
    ] {
        assert_eq!(
            (get(src, "mql"), get(src, "customer")),
            (Some(mqls), Some(won)),
            "{src}"
        );
    }
    // Segment fields from the deals file land on the person.
    let closed = snap.people.iter().filter(|p| p.segment.is_some()).count();
    assert_eq!(
        closed,
        842 - snap
            .people
            .iter()
            .filter(|p| p.custom.contains_key("seller_id") && p.segment.is_none())
            .count()
    );
    drop(c);
    // Re-importing the leads file after the deals file changes nothing and
    // keeps what the deals file added (segment, owner, custom fields).
    let again = import(
        &db,
        &pb,
        Kind::People,
        Preset::Olist,
        &olist("olist_marketing_qualified_leads_dataset.csv"),
    )
    .await;
    assert_eq!(
        (
            again.imported,
            again.updated,
            again.unchanged,
            again.transitions
        ),
        (0, 0, 8000, 0)
    );
    let mut c = db.store.conn().await.unwrap();
    let kept = repo::people(&mut c)
        .await
        .unwrap()
        .iter()
        .filter(|p| p.segment.is_some())
        .count();
    assert_eq!(kept, closed);
    drop(c);
    db.cleanup().await.unwrap();
}

/// People already stored before the mixed file: one with a demo request
/// (an update of the title makes them an MQL), one the file repeats as is,
/// one with an account.
const PEOPLE_BEFORE: &str = "\
external_id,email,first_name,last_name,title,country,account,company,created_at
p1,p1@acme.example,Ada,One,Analyst,US,,,2026-01-02T10:00:00Z
p2,p2@beta.example,Bo,Two,Engineer,DE,,,2026-01-03T10:00:00Z
p3,p3@acme.example,Cy,Three,Director,GB,a1,Acme,2026-01-04T10:00:00Z
";

const TOUCHES_BEFORE: &str = "\
external_id,person,at,kind,channel
t1,p1,2026-02-01T09:00:00Z,demo_request,paid_search
t2,p3,2026-02-02T09:00:00Z,webinar,email
";

/// New rows, updates of stored people, a person twice (the second row
/// blank where the first is not), an identical repeat, CRM stages with and
/// without a reason, accounts known and new, custom numbers, and rejects.
const PEOPLE_MIXED: &str = "\
external_id,email,first_name,last_name,title,country,account,company,stage,stage_at,reason,created_at,score_hint
p1,p1@acme.example,Ada,One,VP Sales,US,,,,,,2026-01-02T10:00:00Z,
p2,p2@beta.example,Bo,Two,Engineer,DE,,,,,,2026-01-03T10:00:00Z,
p5,p5@gamma.example,Eve,Five,Analyst,FR,,,,,,2026-03-01T08:00:00Z,3.5
p6,p6@acme.example,Fay,Six,Head of Data,US,a1,,,,,2026-03-02T08:00:00Z,
p7,p7@beta.example,Gus,Seven,CTO,CA,,Beta Corp,,,,2026-03-03T08:00:00Z,
p8,p8@x.example,Hal,Eight,CEO,US,,,,,,not a date,
,nobody@x.example,No,Id,CEO,US,,,,,,2026-03-04T08:00:00Z,
p5,,,,Chief Analyst,,,,,,,,0.1
p9,p9@delta.example,Ivy,Nine,Head of Sales,DE,,,sql,2026-03-10T12:00:00Z,,2026-03-05T08:00:00Z,
p3,p3@acme.example,Cy,Three,Director of Ops,GB,a1,Acme,disqualified,2026-03-11T12:00:00Z,no_budget,2026-01-04T10:00:00Z,
p10,p10@gmail.example,Jo,Ten,Student,BR,,,,,,,7
p1,p1@acme.example,Ada,One,VP Sales,US,,,,,,2026-01-02T10:00:00Z,
p11,p11@acme.example,Kim,Eleven,VP Marketing,US,a2,Gamma,,,,2026-03-06T08:00:00Z,
p11,p11@acme.example,Kim,Eleven,VP Marketing,US,a2,Gamma,,,,2026-03-06T08:00:00Z,
p12,p12@acme.example,Lu,Twelve,Director,US,,,mql,,,2026-03-07T08:00:00Z,
";

/// Everything an import stores, ids and sequence numbers included.
async fn stored(
    db: &TestDb,
) -> (
    Vec<tandem_core::domain::Person>,
    Vec<tandem_core::domain::Account>,
    Vec<tandem_core::domain::Transition>,
) {
    let mut c = db.store.conn().await.unwrap();
    let people = repo::people(&mut c).await.unwrap();
    let accounts = repo::accounts(&mut c).await.unwrap();
    let mut transitions = repo::transitions(&mut c).await.unwrap();
    transitions.sort_by_key(|t| t.seq);
    (people, accounts, transitions)
}

/// Imports `csv` (a file `name` of `kind`) into `db`, the reject file in `dir`.
async fn import_text(
    db: &TestDb,
    pb: &Playbook,
    (kind, csv, name): (Kind, &str, &str),
    dir: &Path,
    batch_size: usize,
    row_by_row: bool,
) -> Summary {
    let path = dir.join(name);
    std::fs::write(&path, csv).unwrap();
    let opts = ImportOptions {
        kind,
        preset: Preset::Generic,
        maps: Default::default(),
        batch_size,
        now: Timestamp::from_millis(NOW),
        row_by_row,
    };
    import_file(&db.store, pb, &path, &opts, &mut |_, _| {})
        .await
        .unwrap()
}

#[tokio::test]
async fn the_bulk_path_stores_what_the_row_by_row_path_stores() {
    let pb = pb();
    for batch in [1, 3, 1000] {
        let mut backends = vec![(
            TestDb::sqlite().await.unwrap(),
            TestDb::sqlite().await.unwrap(),
        )];
        if let Some(a) = TestDb::postgres().await.unwrap() {
            let b = TestDb::postgres().await.unwrap().unwrap();
            backends.push((a, b));
        }
        for (rowwise, bulk) in backends {
            let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
            let mut summaries = Vec::new();
            for (db, dir, row_by_row) in [(&rowwise, &one, true), (&bulk, &two, false)] {
                let mut run = Vec::new();
                for (kind, csv, name) in [
                    (Kind::People, PEOPLE_BEFORE, "before.csv"),
                    (Kind::Touches, TOUCHES_BEFORE, "touches.csv"),
                    (Kind::People, PEOPLE_MIXED, "mixed.csv"),
                ] {
                    let mut s =
                        import_text(db, &pb, (kind, csv, name), dir.path(), batch, row_by_row)
                            .await;
                    s.rejects_file = s.rejects_file.map(|p| p.file_name().unwrap().into());
                    run.push(s);
                }
                summaries.push(run);
            }
            // On an SQLite file the bulk side's first file starts as a
            // first load: p1 and p2, up to p3 and its account.
            let first: Vec<u64> = summaries[1].iter().map(|s| s.first_load).collect();
            let sqlite = bulk.store.backend() == tandem_store::Backend::Sqlite;
            assert_eq!(first, [if sqlite { 2 } else { 0 }, 0, 0], "batch {batch}");
            for s in summaries.iter_mut().flatten() {
                s.first_load = 0;
            }
            assert_eq!(summaries[0], summaries[1], "batch {batch}");
            let mixed = &summaries[1][2];
            assert_eq!(
                (
                    mixed.read,
                    mixed.rejected,
                    mixed.imported,
                    mixed.updated,
                    mixed.unchanged
                ),
                (15, 2, 7, 3, 3),
                "batch {batch}: {mixed:?}"
            );
            let expected = stored(&rowwise).await;
            let got = stored(&bulk).await;
            // The file exercises what it is meant to: re-evaluation of an
            // updated person, CRM stages with and without a reason.
            let id = |ext: &str| got.0.iter().find(|p| p.external_id() == ext).unwrap().id;
            let stages = |ext: &str| -> Vec<(String, Option<String>)> {
                got.2
                    .iter()
                    .filter(|t| t.subject == Subject::Person(id(ext)))
                    .map(|t| (t.to.to_string(), t.reason.map(String::from)))
                    .collect()
            };
            let to = |s: &[(&str, Option<&str>)]| -> Vec<(String, Option<String>)> {
                s.iter()
                    .map(|(a, b)| (a.to_string(), b.map(str::to_string)))
                    .collect()
            };
            assert_eq!(stages("p1"), to(&[("inquiry", None), ("mql", None)]));
            assert_eq!(
                stages("p3"),
                to(&[("inquiry", None), ("disqualified", Some("no_budget"))])
            );
            assert_eq!(stages("p9").last().unwrap().0, "sql");
            assert_eq!(stages("p12"), to(&[("inquiry", None), ("mql", None)]));
            assert_eq!(got.2.len(), 16, "batch {batch}");
            assert_eq!(got.0, expected.0, "people, batch {batch}");
            assert_eq!(got.1, expected.1, "accounts, batch {batch}");
            assert_eq!(got.2, expected.2, "transitions, batch {batch}");
            let rejects = |d: &tempfile::TempDir| {
                std::fs::read_to_string(d.path().join("mixed.csv.rejects.csv")).unwrap()
            };
            assert_eq!(rejects(&two), rejects(&one));
            assert_eq!(rejects(&two).lines().count(), 3, "{}", rejects(&two));

            // Updates of stored people are recorded for the warm history.
            let mut c = bulk.store.conn().await.unwrap();
            let changed: Vec<i64> = sqlx::query_scalar(
                "SELECT DISTINCT row_id FROM row_changes WHERE tbl = 'people' ORDER BY row_id",
            )
            .fetch_all(&mut *c)
            .await
            .unwrap();
            drop(c);
            for ext in ["p1", "p3"] {
                assert!(changed.contains(&id(ext)), "{ext} in {changed:?}");
            }

            // Importing the file again writes nothing, the same way on both paths.
            let again = import_text(
                &bulk,
                &pb,
                (Kind::People, PEOPLE_MIXED, "mixed.csv"),
                two.path(),
                batch,
                false,
            )
            .await;
            let again_rowwise = import_text(
                &rowwise,
                &pb,
                (Kind::People, PEOPLE_MIXED, "mixed.csv"),
                one.path(),
                batch,
                true,
            )
            .await;
            assert_eq!(again.transitions, 0, "{again:?}");
            assert_eq!(
                (
                    again.imported,
                    again.updated,
                    again.unchanged,
                    again.rejected
                ),
                (
                    again_rowwise.imported,
                    again_rowwise.updated,
                    again_rowwise.unchanged,
                    again_rowwise.rejected
                ),
            );
            assert_eq!(
                stored(&bulk).await,
                got,
                "batch {batch}: the re-import changed the store"
            );
            assert_eq!(stored(&rowwise).await, expected);
            rowwise.cleanup().await.unwrap();
            bulk.cleanup().await.unwrap();
        }
    }
}

/// A contact export for a first load: fresh people (titles, countries and
/// e-mails the starter fit rules read, custom numbers, a blank and a
/// future creation time), then a person seen before, fresh people again,
/// a person with an account and one with CRM stages.
fn first_load_csv() -> String {
    let titles = [
        "VP Sales",
        "Analyst",
        "Head of Data",
        "Engineer",
        "Chief of Staff",
    ];
    let countries = ["US", "BR", "DE", "FR", "GB"];
    let mut csv =
        String::from("external_id,email,title,country,account,stage,created_at,score_hint\n");
    for i in 0..30 {
        let created = match i {
            4 => String::new(),
            9 => "2027-03-01T00:00:00Z".to_string(),
            _ => format!("2026-{:02}-{:02}T08:00:00Z", 1 + i % 12, 1 + i % 27),
        };
        let email = if i % 4 == 0 {
            format!("c{i}@gmail.com")
        } else {
            format!("c{i}@co{i}.example")
        };
        csv += &format!(
            "c{i},{email},{},{},,,{created},{}\n",
            titles[i % titles.len()],
            countries[i % countries.len()],
            if i % 3 == 0 {
                format!("{i}.5")
            } else {
                String::new()
            }
        );
        if i == 23 {
            // c3 again, promoted: the first load ends here.
            csv += "c3,,Chief Revenue Officer,,,,,\n";
        }
    }
    csv += "c30,c30@co30.example,CTO,US,acct-1,,2026-05-05T08:00:00Z,\n";
    csv += "c31,c31@co31.example,VP Marketing,CA,,sql,2026-05-06T08:00:00Z,\n";
    csv
}

#[tokio::test]
async fn a_first_load_stores_what_the_row_by_row_path_stores() {
    let pb = pb();
    let csv = first_load_csv();
    for batch in [1, 7, 1000] {
        let (rowwise, fast) = (
            TestDb::sqlite().await.unwrap(),
            TestDb::sqlite().await.unwrap(),
        );
        let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let by_row = import_text(
            &rowwise,
            &pb,
            (Kind::People, &csv, "contacts.csv"),
            one.path(),
            batch,
            true,
        )
        .await;
        let mut got = import_text(
            &fast,
            &pb,
            (Kind::People, &csv, "contacts.csv"),
            two.path(),
            batch,
            false,
        )
        .await;
        // The 24 rows before c3's second row, whatever the batch size.
        assert_eq!(got.first_load, 24, "batch {batch}");
        assert_eq!((got.imported, got.updated), (32, 1), "batch {batch}");
        got.first_load = 0;
        assert_eq!(got, by_row, "batch {batch}");
        let (expected, stored_fast) = (stored(&rowwise).await, stored(&fast).await);
        assert_eq!(stored_fast.0, expected.0, "people, batch {batch}");
        assert_eq!(stored_fast.1, expected.1, "accounts, batch {batch}");
        // Each person's history is the same; only how histories interleave
        // in `seq` may differ, as between two batch sizes: the first load
        // ends a batch where it stops.
        let histories = |ts: &[tandem_core::domain::Transition]| {
            let mut ts: Vec<_> = ts
                .iter()
                .map(|t| (t.subject.id(), t.seq, t.clone()))
                .collect();
            ts.sort_by_key(|(id, seq, _)| (*id, *seq));
            ts.into_iter()
                .map(|(_, _, t)| tandem_core::domain::Transition { seq: 0, ..t })
                .collect::<Vec<_>>()
        };
        assert_eq!(
            histories(&stored_fast.2),
            histories(&expected.2),
            "transitions, batch {batch}"
        );
        if batch != 1000 {
            // Unless one batch holds both rows the first load stored and
            // c31's CRM stages (appended first in a batch), the order is
            // the same too.
            assert_eq!(stored_fast.2, expected.2, "transitions, batch {batch}");
        }
        // Every person but the one created after `now` entered the
        // funnel; c3's promotion was merged over its first row.
        let people = &stored_fast.0;
        let c3 = people.iter().find(|p| p.external_id() == "c3").unwrap();
        assert_eq!(c3.title.as_deref(), Some("Chief Revenue Officer"));
        assert_eq!(c3.email(), Some("c3@co3.example"));
        let c4 = people.iter().find(|p| p.external_id() == "c4").unwrap();
        assert_eq!(c4.created_at, Timestamp::from_millis(NOW));
        let entered: std::collections::BTreeSet<i64> = stored_fast
            .2
            .iter()
            .filter(|t| t.to.as_str() == "inquiry")
            .map(|t| t.subject.id())
            .collect();
        assert_eq!(entered.len(), 31, "batch {batch}");

        // A store that holds people takes every later file batch by batch.
        let again = import_text(
            &fast,
            &pb,
            (Kind::People, "external_id,title\nc40,CTO\n", "more.csv"),
            two.path(),
            batch,
            false,
        )
        .await;
        assert_eq!((again.imported, again.first_load), (1, 0));
        rowwise.cleanup().await.unwrap();
        fast.cleanup().await.unwrap();
    }
}
