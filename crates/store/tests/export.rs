//! Export and backup on every backend, on a few hand-written rows whose
//! files are known exactly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sqlx::AnyConnection;
use tandem_store::backup;
use tandem_store::export::{catalog, export_dir, Format};
use tandem_store::testing::TestDb;
use tandem_store::Store;

/// 2026-11-23T00:00:00.123Z.
const T: i64 = 1_795_392_000_123;

async fn seed(store: &Store) {
    let mut conn = store.conn().await.unwrap();
    let c: &mut AnyConnection = &mut conn;
    sqlx::query("INSERT INTO accounts (external_id, name) VALUES ('a1', 'Acme, \"Inc\"')")
        .execute(&mut *c)
        .await
        .unwrap();
    sqlx::query("INSERT INTO people (external_id, email, account_id, created_at) VALUES ('p1', 'ana@acme.test', 1, $1)")
        .bind(T)
        .execute(&mut *c)
        .await
        .unwrap();
    sqlx::query("INSERT INTO people (external_id, created_at) VALUES ('p2', 0)")
        .execute(&mut *c)
        .await
        .unwrap();
    sqlx::query("INSERT INTO deals (external_id, account_id, person_id, amount, currency, created_at, status) VALUES ('d1', 1, 1, 1234500, 'EUR', $1, 'open')")
        .bind(T)
        .execute(&mut *c)
        .await
        .unwrap();
}

#[tokio::test]
async fn exports_and_backups_hold_exactly_the_stored_rows() {
    for db in TestDb::all().await.unwrap() {
        let store = &db.store;
        seed(store).await;
        let dir = tempfile::tempdir().unwrap();

        // The catalog knows every table, parents first.
        let mut conn = store.conn().await.unwrap();
        let tables = catalog(&mut conn, store.backend()).await.unwrap();
        drop(conn);
        let pos = |n: &str| tables.iter().position(|t| t.name == n).unwrap();
        assert!(pos("accounts") < pos("people"));
        assert!(pos("people") < pos("touches"));
        assert!(pos("people") < pos("deals"));
        assert!(pos("feedback") < pos("feedback_comments"));
        assert!(!tables.iter().any(|t| t.name == "tandem_migrations"));

        let only = ["people".to_string(), "deals".into()];
        let out = export_dir(
            store,
            Format::Csv,
            &dir.path().join("csv"),
            &only,
            &mut |_, _| {},
        )
        .await
        .unwrap();
        assert_eq!(
            out.iter()
                .map(|e| (e.table.as_str(), e.rows))
                .collect::<Vec<_>>(),
            [("people", 2), ("deals", 1)]
        );
        let people = std::fs::read_to_string(dir.path().join("csv/people.csv")).unwrap();
        assert_eq!(
            people,
            "id,external_id,email,first_name,last_name,title,account_id,persona,segment,country,source,owner,created_at,created_at_utc,custom,account_external_id\n\
             1,p1,ana@acme.test,,,,1,,,,,,1795392000123,2026-11-23T00:00:00.123Z,{},a1\n\
             2,p2,,,,,,,,,,,0,1970-01-01T00:00:00.000Z,{},\n",
            "{:?}",
            store.backend()
        );
        let deals = std::fs::read_to_string(dir.path().join("csv/deals.csv")).unwrap();
        let mut lines = deals.lines();
        let header: Vec<&str> = lines.next().unwrap().split(',').collect();
        let row: Vec<&str> = lines.next().unwrap().split(',').collect();
        let get = |c: &str| row[header.iter().position(|h| *h == c).unwrap()];
        assert_eq!(get("amount"), "1234500");
        assert_eq!(get("currency"), "EUR");
        assert_eq!(get("closed_at"), "");
        assert_eq!(get("closed_at_utc"), "");
        assert_eq!(get("person_external_id"), "p1");
        assert_eq!(get("account_external_id"), "a1");

        let out = export_dir(
            store,
            Format::Jsonl,
            &dir.path().join("jl"),
            &["accounts".into()],
            &mut |_, _| {},
        )
        .await
        .unwrap();
        assert_eq!(out[0].rows, 1);
        let acc: serde_json::Value = serde_json::from_str(
            std::fs::read_to_string(dir.path().join("jl/accounts.jsonl"))
                .unwrap()
                .trim(),
        )
        .unwrap();
        assert_eq!(acc["name"], "Acme, \"Inc\"");
        assert_eq!(acc["id"], 1);
        assert_eq!(acc["tier"], serde_json::Value::Null);

        #[cfg(feature = "parquet")]
        parquet_check(store, dir.path()).await;

        // Backup → restore into a fresh SQLite store → the same export.
        let archive = dir.path().join("b.tandem");
        let b = backup::backup(store, &archive, &mut |_, _| {})
            .await
            .unwrap();
        assert!(b.tables.contains(&("people".to_string(), 2)));
        let fresh = TestDb::sqlite().await.unwrap();
        let r = backup::restore(&fresh.store, &archive, false, &mut |_, _| {})
            .await
            .unwrap();
        assert_eq!(r, b);
        export_dir(
            &fresh.store,
            Format::Csv,
            &dir.path().join("again"),
            &only,
            &mut |_, _| {},
        )
        .await
        .unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("again/people.csv")).unwrap(),
            people
        );
        // A second restore is refused: the store is no longer empty.
        let err = backup::restore(&fresh.store, &archive, false, &mut |_, _| {})
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("people (2 rows)"), "{err}");
        db.cleanup().await.unwrap();
    }
}

#[cfg(feature = "parquet")]
async fn parquet_check(store: &Store, dir: &std::path::Path) {
    use parquet::basic::{LogicalType, TimeUnit};
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::record::Field;

    export_dir(
        store,
        Format::Parquet,
        &dir.join("pq"),
        &["people".into()],
        &mut |_, _| {},
    )
    .await
    .unwrap();
    let file = std::fs::File::open(dir.join("pq/people.parquet")).unwrap();
    let reader = SerializedFileReader::new(file).unwrap();
    let schema = reader.metadata().file_metadata().schema_descr_ptr();
    let created = schema
        .columns()
        .iter()
        .find(|c| c.name() == "created_at")
        .unwrap();
    assert_eq!(
        created.logical_type_ref(),
        Some(&LogicalType::timestamp(true, TimeUnit::MILLIS))
    );
    assert!(!schema
        .columns()
        .iter()
        .any(|c| c.name() == "created_at_utc"));
    let rows: Vec<Vec<(String, Field)>> = reader
        .get_row_iter(None)
        .unwrap()
        .map(|r| {
            r.unwrap()
                .get_column_iter()
                .map(|(n, f)| (n.clone(), f.clone()))
                .collect()
        })
        .collect();
    assert_eq!(rows.len(), 2);
    let get =
        |row: &Vec<(String, Field)>, c: &str| row.iter().find(|(n, _)| n == c).unwrap().1.clone();
    assert_eq!(get(&rows[0], "id"), Field::Long(1));
    assert_eq!(get(&rows[0], "external_id"), Field::Str("p1".into()));
    assert_eq!(get(&rows[0], "created_at"), Field::TimestampMillis(T));
    assert_eq!(
        get(&rows[0], "account_external_id"),
        Field::Str("a1".into())
    );
    assert_eq!(get(&rows[1], "email"), Field::Null);
    assert_eq!(get(&rows[1], "account_external_id"), Field::Null);
}
