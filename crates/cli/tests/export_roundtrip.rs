//! Property: import → export → import round-trips. Generated people and
//! touches go through the CSV import into store A; A's CSV export, imported
//! into an empty store B (with the mapping README documents), exports
//! byte-for-byte the same people, touches and transitions; and A's export
//! holds exactly the generated values.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;

use proptest::prelude::*;
use tandem_core::playbook::{Playbook, STARTER};
use tandem_core::Timestamp;
use tandem_ingest::import::{import_reader, ImportOptions};
use tandem_ingest::mapping::{Kind, Preset};
use tandem_store::export::{export_dir, Format};
use tandem_store::{DatabaseUrl, Store};

#[derive(Clone, Debug)]
struct Person {
    first: String,
    last: String,
    source: Option<&'static str>,
    created_ms: i64,
}

#[derive(Clone, Debug)]
struct TouchRow {
    person: usize,
    at_ms: i64,
    kind: &'static str,
    channel: Option<&'static str>,
}

/// 2025-01-01T00:00:00Z plus up to ~300 days, at whole milliseconds.
const BASE: i64 = 1_735_689_600_000;

fn person() -> impl Strategy<Value = Person> {
    (
        // Commas, quotes, spaces inside and non-ASCII letters exercise CSV quoting.
        "[A-Za-zéü][A-Za-zéü ,\"']{0,10}[A-Za-z]",
        "[A-Za-z][A-Za-z\\-]{0,8}",
        proptest::option::of(prop_oneof![
            Just("webinar"),
            Just("paid_search"),
            Just("referral")
        ]),
        0i64..300 * 86_400_000,
    )
        .prop_map(|(first, last, source, off)| Person {
            first,
            last,
            source,
            created_ms: BASE + off,
        })
}

fn company() -> impl Strategy<Value = (Vec<Person>, Vec<TouchRow>)> {
    proptest::collection::vec(person(), 1..25).prop_flat_map(|people| {
        let n = people.len();
        let touch = (
            0..n,
            0i64..400 * 86_400_000,
            prop_oneof![Just("email_click"), Just("page_view"), Just("form_fill")],
            proptest::option::of(prop_oneof![Just("email"), Just("organic"), Just("paid")]),
        )
            .prop_map(|(person, off, kind, channel)| TouchRow {
                person,
                at_ms: BASE + off,
                kind,
                channel,
            });
        (Just(people), proptest::collection::vec(touch, 0..60))
    })
}

fn iso(ms: i64) -> String {
    tandem_store::export::iso_utc(ms)
}

fn people_csv(people: &[Person]) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "external_id",
        "email",
        "first_name",
        "last_name",
        "source",
        "created_at",
    ])
    .unwrap();
    for (i, p) in people.iter().enumerate() {
        w.write_record([
            format!("p{i}"),
            format!("p{i}@example.com"),
            p.first.clone(),
            p.last.clone(),
            p.source.unwrap_or("").to_string(),
            iso(p.created_ms),
        ])
        .unwrap();
    }
    String::from_utf8(w.into_inner().unwrap()).unwrap()
}

fn touches_csv(touches: &[TouchRow]) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(["external_id", "person", "at", "kind", "channel"])
        .unwrap();
    for (i, t) in touches.iter().enumerate() {
        w.write_record([
            format!("t{i}"),
            format!("p{}", t.person),
            iso(t.at_ms),
            t.kind.to_string(),
            t.channel.unwrap_or("").to_string(),
        ])
        .unwrap();
    }
    String::from_utf8(w.into_inner().unwrap()).unwrap()
}

async fn import(
    store: &Store,
    pb: &Playbook,
    kind: Kind,
    csv: &[u8],
    maps: &[(&str, &str)],
    dir: &Path,
) {
    let opts = ImportOptions {
        kind,
        preset: Preset::Generic,
        maps: maps
            .iter()
            .map(|(c, f)| (c.to_string(), f.to_string()))
            .collect(),
        batch_size: 7,
        now: Timestamp::from_millis(BASE + 500 * 86_400_000),
        row_by_row: false,
    };
    let summary = import_reader(
        store,
        pb,
        csv,
        kind.as_str(),
        &opts,
        dir.join(format!("{}.rejects.csv", kind.as_str())),
        &mut |_, _| {},
    )
    .await
    .unwrap();
    assert_eq!(summary.rejected, 0, "{kind:?}: {summary:?}");
}

/// The mapping that reads tandem's own CSV export back (README).
const PEOPLE_BACK: &[(&str, &str)] = &[
    ("id", "-"),
    ("account_id", "-"),
    ("created_at", "-"),
    ("created_at_utc", "created_at"),
    ("custom", "-"),
    ("account_external_id", "account"),
];
const TOUCHES_BACK: &[(&str, &str)] = &[
    ("id", "-"),
    ("person_id", "-"),
    ("at", "-"),
    ("at_utc", "at"),
    ("person_external_id", "person"),
];

fn read_csv(path: &Path) -> Vec<BTreeMap<String, String>> {
    let mut r = csv::Reader::from_path(path).unwrap();
    let h: Vec<String> = r.headers().unwrap().iter().map(str::to_string).collect();
    r.records()
        .map(|rec| {
            h.iter()
                .cloned()
                .zip(rec.unwrap().iter().map(str::to_string))
                .collect()
        })
        .collect()
}

async fn round_trip(people: Vec<Person>, touches: Vec<TouchRow>) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pb = Playbook::load(STARTER).playbook.unwrap();
    let open = |name: &str| {
        let url = DatabaseUrl::parse(&d.join(name).to_string_lossy()).unwrap();
        async move { Store::open(&url).await.unwrap() }
    };
    let a = open("a.db").await;
    import(
        &a,
        &pb,
        Kind::People,
        people_csv(&people).as_bytes(),
        &[],
        d,
    )
    .await;
    import(
        &a,
        &pb,
        Kind::Touches,
        touches_csv(&touches).as_bytes(),
        &[],
        d,
    )
    .await;
    let tables = ["people".to_string(), "touches".into(), "transitions".into()];
    export_dir(&a, Format::Csv, &d.join("a"), &tables, &mut |_, _| {})
        .await
        .unwrap();

    // A's export holds exactly what was generated.
    let ap = read_csv(&d.join("a/people.csv"));
    assert_eq!(ap.len(), people.len());
    for (i, (row, p)) in ap.iter().zip(&people).enumerate() {
        assert_eq!(row["id"], (i + 1).to_string());
        assert_eq!(row["external_id"], format!("p{i}"));
        assert_eq!(row["first_name"], p.first);
        assert_eq!(row["last_name"], p.last);
        assert_eq!(row["source"], p.source.unwrap_or(""));
        assert_eq!(row["created_at"], p.created_ms.to_string());
        assert_eq!(row["created_at_utc"], iso(p.created_ms));
    }
    let at = read_csv(&d.join("a/touches.csv"));
    assert_eq!(at.len(), touches.len());
    for (row, t) in at.iter().zip(&touches) {
        assert_eq!(row["person_external_id"], format!("p{}", t.person));
        assert_eq!(row["person_id"], (t.person + 1).to_string());
        assert_eq!(row["at"], t.at_ms.to_string());
        assert_eq!(row["kind"], t.kind);
        assert_eq!(row["channel"], t.channel.unwrap_or(""));
    }

    // B, imported from A's export, exports the same bytes.
    let b = open("b.db").await;
    let pcsv = std::fs::read(d.join("a/people.csv")).unwrap();
    import(&b, &pb, Kind::People, &pcsv, PEOPLE_BACK, d).await;
    let tcsv = std::fs::read(d.join("a/touches.csv")).unwrap();
    import(&b, &pb, Kind::Touches, &tcsv, TOUCHES_BACK, d).await;
    export_dir(&b, Format::Csv, &d.join("b"), &tables, &mut |_, _| {})
        .await
        .unwrap();
    for t in &tables {
        let fa = std::fs::read_to_string(d.join(format!("a/{t}.csv"))).unwrap();
        let fb = std::fs::read_to_string(d.join(format!("b/{t}.csv"))).unwrap();
        assert_eq!(fa, fb, "{t}.csv differs after import → export → import");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn import_export_import_round_trips((people, touches) in company()) {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(round_trip(people, touches));
    }
}
