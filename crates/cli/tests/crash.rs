//! A killed import leaves only whole batches; running it again completes it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fmt::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tandem_store::{repo, DatabaseUrl, Store};

const ROWS: usize = 5000;
const BATCH: usize = 250;

/// People and transitions; `None` while the database is still being created
/// or migrated by the importer.
async fn try_counts(url: &DatabaseUrl) -> Option<(i64, i64)> {
    let store = Store::connect(url).await.ok()?;
    let n = match store.conn().await {
        Ok(mut c) => repo::counts(&mut c).await.ok(),
        Err(_) => None,
    };
    store.close().await;
    let n = n?;
    let get = |t: &str| n.iter().find(|x| x.0 == t).map(|x| x.1);
    Some((get("people")?, get("transitions")?))
}

async fn counts(url: &DatabaseUrl) -> (i64, i64) {
    try_counts(url).await.expect("the database reads")
}

#[tokio::test]
async fn sigkill_mid_import_leaves_whole_batches_and_a_rerun_completes() {
    let dir = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_tandem");
    let st = Command::new(bin)
        .current_dir(dir.path())
        .arg("init")
        .output()
        .unwrap();
    assert!(st.status.success());
    let mut csv = String::from("external_id,email,created_at,plan\n");
    for i in 0..ROWS {
        writeln!(
            csv,
            "p{i:05},p{i}@example.com,2026-01-{:02} 10:00:00,pro",
            i % 28 + 1
        )
        .unwrap();
    }
    std::fs::write(dir.path().join("people.csv"), csv).unwrap();
    let db = dir.path().join("tandem.db");
    let url = DatabaseUrl::parse(&db.to_string_lossy()).unwrap();

    let mut child = Command::new(bin)
        .current_dir(dir.path())
        .args([
            "import",
            "people",
            "people.csv",
            "--batch-size",
            &BATCH.to_string(),
        ])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill as soon as at least one batch is committed.
    let started = Instant::now();
    loop {
        if let Some((people, _)) = try_counts(&url).await {
            if people >= BATCH as i64 {
                break;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no batch committed in 2 minutes"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();

    let (people, transitions) = counts(&url).await;
    assert_eq!(
        people % BATCH as i64,
        0,
        "only whole batches: {people} people"
    );
    assert_eq!(
        transitions, people,
        "each imported person has exactly its inquiry transition"
    );
    if people == ROWS as i64 {
        eprintln!(
            "notice: the import finished before it could be killed; partial state not exercised"
        );
    }

    let out = Command::new(bin)
        .current_dir(dir.path())
        .args([
            "import",
            "people",
            "people.csv",
            "--batch-size",
            &BATCH.to_string(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let summary = String::from_utf8_lossy(&out.stderr).to_string();
    let expect = format!(
        "read {ROWS}, imported {}, updated 0, unchanged {people}, rejected 0",
        ROWS as i64 - people
    );
    assert!(summary.contains(&expect), "{summary}");
    assert_eq!(counts(&url).await, (ROWS as i64, ROWS as i64));
}
