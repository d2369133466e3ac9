//! Crash safety with SIGKILL, on SQLite (WAL, `synchronous = FULL`):
//!
//! - a killed `tandem import` leaves only whole batches; killed again and
//!   again, then run to the end, it leaves exactly the rows of the file;
//! - a `tandem serve` killed at random instants while clients write keeps
//!   every write it acknowledged with a 2xx, and every person's history
//!   stays an unbroken chain of stages.
//!
//! Loopback only, bounded loops. `TANDEM_CRASH_SEED` replays the kill
//! instants of a failed run (the seed is printed).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write as _};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tandem_store::{repo, Backend, DatabaseUrl, Store};

/// Rows of the import; batches of `BATCH` rows are each one transaction.
const ROWS: usize = 12_000;
const BATCH: usize = 500;
/// Kills of the import before it is let run to the end.
const IMPORT_KILLS: usize = 3;

/// People and transitions, or why they could not be read (the database
/// is still being created or migrated by the importer, or is busy).
async fn try_counts(url: &DatabaseUrl) -> Result<(i64, i64), String> {
    let store = Store::connect(url).await.map_err(|e| e.to_string())?;
    let n = match store.conn().await {
        Ok(mut c) => repo::counts(&mut c).await.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    store.close().await;
    let n = n?;
    let get = |t: &str| {
        n.iter()
            .find(|x| x.0 == t)
            .map(|x| x.1)
            .ok_or(format!("no count of {t}"))
    };
    Ok((get("people")?, get("transitions")?))
}

/// [`try_counts`] once the database can be read. A store opened right
/// after a kill may first roll back the killed process's journal, while a
/// second connection of the pool finds the file locked: that is retried
/// for a few seconds, and any other failure still fails, with its error.
async fn counts(url: &DatabaseUrl) -> (i64, i64) {
    let started = Instant::now();
    loop {
        match try_counts(url).await {
            Ok(n) => return n,
            Err(e) if started.elapsed() > Duration::from_secs(5) => {
                panic!("the database does not read: {e}")
            }
            Err(e) => eprintln!("notice: the database does not read yet: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until a killed importer's PostgreSQL sessions have ended. The
/// server finishes the command a session was running (a COMMIT sent just
/// before the kill) before it notices that its client is gone, so a batch
/// can still commit after the kill returned: counting before then raced
/// with it. Each test has a database of its own, so every other client
/// session in it is the importer's. A killed SQLite importer writes nothing
/// more.
async fn settled(url: &DatabaseUrl) {
    if url.backend() != Backend::Postgres {
        return;
    }
    let store = Store::connect(url).await.unwrap();
    let started = Instant::now();
    loop {
        let mut c = store.conn().await.unwrap();
        let others: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() \
             AND pid <> pg_backend_pid() AND backend_type = 'client backend'",
        )
        .fetch_one(&mut *c)
        .await
        .unwrap();
        if others == 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the killed importer's {others} session(s) still open after 30 s"
        );
        drop(c);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    store.close().await;
}

fn import(dir: &std::path::Path, db: &DatabaseUrl) -> Command {
    let mut c = tandem_on(dir, db);
    c.args([
        "import",
        "people",
        "people.csv",
        "--batch-size",
        &BATCH.to_string(),
    ]);
    c
}

/// The email of row `i`: every row differs, so a row stored twice, lost or
/// mixed up with another shows.
fn email(i: usize) -> String {
    format!("p{i}.{}@example.com", i * 7919 % 10_007)
}

#[tokio::test]
async fn sigkill_mid_import_leaves_whole_batches_and_a_rerun_completes() {
    let dir = tempfile::tempdir().unwrap();
    let url = DatabaseUrl::parse(&dir.path().join("tandem.db").to_string_lossy()).unwrap();
    import_crash(dir.path(), &url).await;
}

/// The same on PostgreSQL, when `TANDEM_TEST_POSTGRES_URL` is set.
#[tokio::test]
async fn sigkill_mid_import_on_postgres() {
    let Some(db) = tandem_store::testing::TestDb::postgres().await.unwrap() else {
        return;
    };
    db.store.close().await;
    let dir = tempfile::tempdir().unwrap();
    import_crash(dir.path(), &db.url).await;
    db.cleanup().await.unwrap();
}

/// Kills the first import of `people.csv` into the empty SQLite store
/// while its bulk load runs (its rollback journal is there), and checks
/// that nothing of it was stored.
async fn first_load_crash(dir: &std::path::Path, url: &DatabaseUrl) {
    let journal = dir.join("tandem.db-journal");
    let mut child = import(dir, url).stderr(Stdio::null()).spawn().unwrap();
    let started = Instant::now();
    let mut loading: Option<Instant> = None;
    let finished = loop {
        if child.try_wait().unwrap().is_some() {
            break true;
        }
        if journal.exists()
            && loading.get_or_insert_with(Instant::now).elapsed() > Duration::from_millis(50)
        {
            break false;
        }
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "the first load did not start in 3 minutes"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    child.kill().unwrap();
    child.wait().unwrap();
    let (people, transitions) = counts(url).await;
    if finished || people == ROWS as i64 {
        eprintln!("notice: the first load finished before it could be killed");
        assert_eq!((people, transitions), (ROWS as i64, ROWS as i64));
        // Start over from an empty store for the batches below.
        let store = Store::connect(url).await.unwrap();
        let mut c = store.conn().await.unwrap();
        for table in ["transitions", "people"] {
            sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table}")))
                .execute(&mut *c)
                .await
                .unwrap();
        }
        drop(c);
        store.close().await;
    } else {
        eprintln!("first load killed mid-way: nothing stored");
        assert_eq!(
            (people, transitions),
            (0, 0),
            "a killed first load stored rows"
        );
    }
    assert!(
        !journal.exists(),
        "the killed load's journal was not rolled back"
    );
}

async fn import_crash(dir: &std::path::Path, url: &DatabaseUrl) {
    let st = tandem_on(dir, url).arg("init").output().unwrap();
    assert!(st.status.success());
    let mut csv = String::from("external_id,email,created_at,plan\n");
    for i in 0..ROWS {
        writeln!(
            csv,
            "p{i:05},{},2026-01-{:02} 10:00:00,pro",
            email(i),
            i % 28 + 1
        )
        .unwrap();
    }
    std::fs::write(dir.join("people.csv"), csv).unwrap();

    // On an SQLite file the first import into an empty store is one bulk
    // load: killed during it, it leaves nothing, and the file opens clean.
    if url.backend() == Backend::Sqlite {
        first_load_crash(dir, url).await;
    }
    // One person stored first: the imports below go batch by batch.
    std::fs::write(
        dir.join("seed.csv"),
        "external_id,email,created_at\nseed,seed@example.com,2026-01-01 09:00:00\n",
    )
    .unwrap();
    let mut seed = tandem_on(dir, url);
    seed.args(["import", "people", "seed.csv"]);
    assert!(seed.output().unwrap().status.success());
    const SEED: i64 = 1;
    assert_eq!(counts(url).await, (SEED, SEED));

    // Kill each run once it has committed a quarter more of the rows than
    // the run before; each re-run reads the file from the top again.
    let mut before = 0i64;
    let mut partial = 0;
    for kill in 1..=IMPORT_KILLS {
        let goal = SEED + (ROWS * kill / (IMPORT_KILLS + 1)) as i64;
        let mut child = import(dir, url).stderr(Stdio::null()).spawn().unwrap();
        let started = Instant::now();
        loop {
            if let Ok((people, _)) = try_counts(url).await {
                if people >= goal {
                    break;
                }
            }
            if child.try_wait().unwrap().is_some() {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(180),
                "run {kill}: {goal} rows not committed in 3 minutes"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        child.kill().unwrap(); // SIGKILL on Unix (a no-op when it had finished)
        child.wait().unwrap();
        settled(url).await;

        let (stored, transitions) = counts(url).await;
        let people = stored - SEED;
        assert_eq!(
            people % BATCH as i64,
            0,
            "run {kill}: only whole batches, but {people} people"
        );
        assert!(people >= before, "run {kill}: committed rows went missing");
        assert_eq!(
            transitions, stored,
            "run {kill}: each imported person has exactly its inquiry transition"
        );
        if people < ROWS as i64 {
            partial += 1;
        }
        eprintln!("import run {kill}: killed with {people} of {ROWS} rows committed");
        before = people;
    }
    if partial == 0 {
        eprintln!(
            "notice: every import finished before it could be killed; partial state not exercised"
        );
    }

    let out = import(dir, url).output().unwrap();
    assert!(out.status.success());
    let summary = String::from_utf8_lossy(&out.stderr).to_string();
    let expect = format!(
        "read {ROWS}, imported {}, updated 0, unchanged {before}, rejected 0",
        ROWS as i64 - before
    );
    assert!(summary.contains(&expect), "{summary}");
    let all = ROWS as i64 + SEED;
    assert_eq!(counts(url).await, (all, all));

    // Exactly the rows of the file: each id once, with its own email.
    let store = Store::connect(url).await.unwrap();
    let snap = {
        let mut c = store.conn().await.unwrap();
        repo::snapshot(&mut c).await.unwrap()
    };
    store.close().await;
    let got: BTreeMap<String, Option<String>> = snap
        .people
        .iter()
        .map(|p| (p.external_id().to_string(), p.email().map(String::from)))
        .collect();
    let want: BTreeMap<String, Option<String>> = (0..ROWS)
        .map(|i| (format!("p{i:05}"), Some(email(i))))
        .chain([("seed".to_string(), Some("seed@example.com".to_string()))])
        .collect();
    assert_eq!(snap.people.len(), ROWS + 1);
    assert_eq!(got, want);
    assert!(snap
        .transitions
        .iter()
        .all(|t| t.to == "inquiry" && t.from.is_none()));
}

/// Rounds of start, write, SIGKILL of `tandem serve`.
const SERVE_ROUNDS: usize = 6;
/// Client threads writing at once.
const WRITERS: usize = 3;

/// SplitMix64: the kill instants, from a printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// One HTTP/1.1 request on a fresh connection; the status and body.
/// `Err` when the server is gone (killed) before it answered.
fn http(
    addr: &str,
    method: &str,
    path: &str,
    token: &str,
    body: &str,
) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: crash\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut res = String::new();
    s.read_to_string(&mut res)?;
    let status = res
        .strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status line in {res:?}")))?;
    let body = res
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    Ok((status, body))
}

/// A write the server acknowledged with a 2xx.
#[derive(Clone, Debug)]
enum Ack {
    /// `/v1/identify` of a person.
    Identify(String),
    /// `/v1/track` of a demo request (message id = touch id); it makes the
    /// person an MQL.
    Track { person: String, message: String },
    /// `/api/v1/people/{id}/accept`: the person is an SAL.
    Accept(String),
    /// `/api/v1/accounts` upsert with this tier.
    Account { id: String, tier: i64 },
}

/// A request of a writer and what its 2xx acknowledges.
#[derive(Clone, Debug)]
struct Step {
    method: &'static str,
    path: String,
    body: String,
    ack: Ack,
}

/// What the writers share with the test.
#[derive(Default)]
struct Log {
    acks: Vec<Ack>,
    /// Requests the kill cut off in flight (sent, no answer): may or may
    /// not be stored; a client would retry them.
    cut: Vec<Step>,
    /// Requests refused because the server was already gone.
    refused: usize,
    /// Answers other than 2xx while the server was up: bugs.
    unexpected: Vec<String>,
}

/// Writes person after person, each through identify → track → accept →
/// account, until a request finds the server gone.
fn writer(addr: String, token: String, prefix: String, log: Arc<Mutex<Log>>) {
    for n in 0.. {
        let person = format!("{prefix}-{n}");
        let ident = serde_json_like(&[
            ("type", "\"identify\""),
            ("userId", &format!("\"{person}\"")),
            ("messageId", &format!("\"id-{person}\"")),
            (
                "traits",
                &format!(
                    r#"{{"email": "{person}@acme.example", "title": "VP Sales", "country": "US",
                        "company": {{"id": "co-{prefix}", "name": "Acme", "industry": "software", "employees": 500}}}}"#
                ),
            ),
        ]);
        let message = format!("tr-{person}");
        let track = serde_json_like(&[
            ("type", "\"track\""),
            ("userId", &format!("\"{person}\"")),
            ("messageId", &format!("\"{message}\"")),
            ("event", "\"Demo Request\""),
        ]);
        let account = format!("acct-{person}");
        let tier = (n % 3 + 1) as i64;
        let steps: [(&'static str, String, String, Ack); 4] = [
            (
                "POST",
                "/v1/identify".into(),
                ident,
                Ack::Identify(person.clone()),
            ),
            (
                "POST",
                "/v1/track".into(),
                track,
                Ack::Track {
                    person: person.clone(),
                    message,
                },
            ),
            (
                "POST",
                format!("/api/v1/people/{person}/accept"),
                "{}".into(),
                Ack::Accept(person.clone()),
            ),
            (
                "POST",
                "/api/v1/accounts".into(),
                format!(r#"{{"external_id": "{account}", "name": "Acct {n}", "tier": {tier}}}"#),
                Ack::Account { id: account, tier },
            ),
        ];
        for (method, path, body, ack) in steps {
            match http(&addr, method, &path, &token, &body) {
                Ok((s, _)) if (200..300).contains(&s) => log.lock().unwrap().acks.push(ack),
                Ok((s, b)) => {
                    log.lock()
                        .unwrap()
                        .unexpected
                        .push(format!("{method} {path}: {s} {b}"));
                    return;
                }
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    log.lock().unwrap().refused += 1;
                    return;
                }
                Err(_) => {
                    log.lock().unwrap().cut.push(Step {
                        method,
                        path,
                        body,
                        ack,
                    });
                    return;
                }
            }
        }
    }
}

/// A JSON object from already-encoded values (keeps the test free of a
/// JSON dependency).
fn serde_json_like(fields: &[(&str, &str)]) -> String {
    let inner: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("\"{k}\": {v}"))
        .collect();
    format!("{{{}}}", inner.join(", "))
}

/// The `tandem` binary in `dir` (its playbook) on database `db`.
fn tandem_on(dir: &std::path::Path, db: &DatabaseUrl) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tandem"));
    c.current_dir(dir)
        .env_remove("TANDEM_PLAYBOOK")
        .env_remove("TANDEM_DATABASE_URL")
        .env_remove("TANDEM_LOG")
        .args(["--database-url", db.expose()]);
    c
}

/// `tandem serve` on an ephemeral loopback port; its address.
fn start_server(dir: &std::path::Path, db: &DatabaseUrl) -> (Child, String) {
    start_server_with(tandem_on(dir, db))
}

/// [`start_server`] from a prepared command.
fn start_server_with(mut cmd: Command) -> (Child, String) {
    let mut child = cmd
        .args(["serve", "--bind", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    let addr = line
        .trim()
        .strip_prefix("tandem serving on http://")
        .unwrap_or_else(|| panic!("serve did not start: {line}"))
        .to_string();
    // Keep draining so the server never blocks on a full pipe.
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut stderr, &mut std::io::sink());
    });
    (child, addr)
}

/// The variables of a running process (Linux).
fn environ(pid: u32) -> Vec<String> {
    let raw = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    raw.split(|&b| b == 0)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect()
}

/// `tandem serve` runs with mimalloc returning freed memory at once (it
/// starts itself again with the option, same process), unless the caller
/// set the option.
#[cfg(target_os = "linux")]
#[test]
fn serve_runs_with_the_allocator_returning_freed_memory() {
    let dir = tempfile::tempdir().unwrap();
    let url = DatabaseUrl::parse(&dir.path().join("t.db").to_string_lossy()).unwrap();
    let out = tandem_on(dir.path(), &url).arg("init").output().unwrap();
    assert!(out.status.success());
    for (given, want) in [
        (None, "MIMALLOC_PURGE_DELAY=0"),
        (Some("250"), "MIMALLOC_PURGE_DELAY=250"),
    ] {
        let mut cmd = tandem_on(dir.path(), &url);
        match given {
            Some(v) => cmd.env("MIMALLOC_PURGE_DELAY", v),
            None => cmd.env_remove("MIMALLOC_PURGE_DELAY"),
        };
        let (mut child, _addr) = start_server_with(cmd);
        let vars = environ(child.id());
        let _ = child.kill();
        let _ = child.wait();
        let set: Vec<&String> = vars
            .iter()
            .filter(|v| v.starts_with("MIMALLOC_PURGE_DELAY="))
            .collect();
        assert_eq!(set, [want], "{given:?}");
    }
}

/// Checks every acknowledged write against the stored data, and that every
/// person's transitions chain: the first comes from nowhere, each next one
/// from where the last one went.
async fn check_acknowledged(url: &DatabaseUrl, acks: &[Ack], round: usize) -> usize {
    let store = Store::connect(url).await.unwrap();
    let snap = {
        let mut c = store.conn().await.unwrap();
        repo::snapshot(&mut c).await.unwrap()
    };
    store.close().await;
    let id_of: BTreeMap<&str, i64> = snap
        .people
        .iter()
        .map(|p| (p.external_id(), p.id))
        .collect();
    assert_eq!(
        id_of.len(),
        snap.people.len(),
        "round {round}: a person stored twice"
    );
    let mut history: BTreeMap<i64, Vec<tandem_core::transitions::TransitionRef>> = BTreeMap::new();
    for t in &snap.transitions {
        if let tandem_core::domain::Subject::Person(p) = t.subject {
            history.entry(p).or_default().push(t);
        }
    }
    for (person, h) in &mut history {
        h.sort_by_key(|t| t.seq);
        let mut at = None::<&str>;
        for t in h.iter() {
            assert_eq!(
                t.from.as_deref(),
                at,
                "round {round}: person #{person} has a broken history: {h:?}"
            );
            at = Some(&t.to);
        }
    }
    let stages = |ext: &str| -> BTreeSet<String> {
        let id = id_of
            .get(ext)
            .unwrap_or_else(|| panic!("round {round}: acknowledged person {ext} is missing"));
        history
            .get(id)
            .map(|h| h.iter().map(|t| t.to.to_string()).collect())
            .unwrap_or_default()
    };
    let mut touches: BTreeMap<&str, usize> = BTreeMap::new();
    for t in &snap.touches {
        if let Some(e) = &t.external_id {
            *touches.entry(&**e).or_default() += 1;
        }
    }
    assert!(
        touches.values().all(|n| *n == 1),
        "round {round}: a touch stored twice"
    );
    let accounts: BTreeMap<&str, Option<i64>> = snap
        .accounts
        .iter()
        .map(|a| (a.external_id.as_str(), a.tier))
        .collect();
    for ack in acks {
        match ack {
            Ack::Identify(p) => {
                assert!(
                    id_of.contains_key(p.as_str()),
                    "round {round}: {ack:?} lost"
                );
            }
            Ack::Track { person, message } => {
                assert_eq!(
                    touches.get(message.as_str()),
                    Some(&1),
                    "round {round}: {ack:?} lost"
                );
                assert!(
                    stages(person).contains("mql"),
                    "round {round}: {ack:?} lost its MQL"
                );
            }
            Ack::Accept(p) => {
                assert!(stages(p).contains("sal"), "round {round}: {ack:?} lost");
            }
            Ack::Account { id, tier } => {
                assert_eq!(
                    accounts.get(id.as_str()),
                    Some(&Some(*tier)),
                    "round {round}: {ack:?} lost"
                );
            }
        }
    }
    snap.transitions.len()
}

#[tokio::test]
async fn sigkill_of_serve_keeps_every_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let url = DatabaseUrl::parse(&dir.path().join("tandem.db").to_string_lossy()).unwrap();
    serve_crash(dir.path(), &url).await;
}

/// The same on PostgreSQL, when `TANDEM_TEST_POSTGRES_URL` is set.
#[tokio::test]
async fn sigkill_of_serve_keeps_every_acknowledged_write_on_postgres() {
    let Some(db) = tandem_store::testing::TestDb::postgres().await.unwrap() else {
        return;
    };
    db.store.close().await;
    let dir = tempfile::tempdir().unwrap();
    serve_crash(dir.path(), &db.url).await;
    db.cleanup().await.unwrap();
}

async fn serve_crash(dir: &std::path::Path, url: &DatabaseUrl) {
    let out = tandem_on(dir, url).arg("init").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = tandem_on(dir, url)
        .args(["token", "create", "--role", "admin", "--name", "crash"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8_lossy(&out.stdout).trim().to_string();

    let seed = std::env::var("TANDEM_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("TANDEM_CRASH_SEED={seed}");
    let mut rng = Rng(seed);
    let log = Arc::new(Mutex::new(Log::default()));
    let mut cut_rounds = 0;
    for round in 0..SERVE_ROUNDS {
        let (mut child, addr) = start_server(dir, url);
        let cut_before = log.lock().unwrap().cut.len();
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let (addr, token, log) = (addr.clone(), token.clone(), Arc::clone(&log));
                let prefix = format!("r{round}w{w}");
                std::thread::spawn(move || writer(addr, token, prefix, log))
            })
            .collect();
        // A random instant while the writers write.
        let wait = 200 + rng.below(1300);
        std::thread::sleep(Duration::from_millis(wait));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        for w in writers {
            w.join().unwrap();
        }
        let (acks, cut, unexpected) = {
            let l = log.lock().unwrap();
            (l.acks.clone(), l.cut.len(), l.unexpected.clone())
        };
        assert!(unexpected.is_empty(), "round {round}: {unexpected:?}");
        if cut > cut_before {
            cut_rounds += 1;
        }
        let transitions = check_acknowledged(url, &acks, round).await;
        eprintln!(
            "round {round}: killed after {wait} ms; {} acknowledged writes so far, {} cut off in flight, {transitions} transitions",
            acks.len(),
            cut - cut_before,
        );
    }
    let (mut acks, cut) = {
        let l = log.lock().unwrap();
        (l.acks.clone(), l.cut.clone())
    };
    assert!(
        acks.len() >= SERVE_ROUNDS * WRITERS,
        "the writers got too few acknowledgements ({}) to test anything",
        acks.len()
    );
    assert!(cut_rounds > 0, "no kill cut off a request in flight");

    // Restarted, the server completes the job: a client retrying what was
    // cut off gets its 2xx (an accept that had landed is refused as a move
    // from SAL, and its SAL is checked below), and replayed acknowledged
    // Segment messages are duplicates that change nothing.
    let (mut child, addr) = start_server(dir, url);
    for step in &cut {
        let (s, b) = http(&addr, step.method, &step.path, &token, &step.body).unwrap();
        let landed_before = matches!(step.ack, Ack::Accept(_)) && s == 422;
        assert!(
            (200..300).contains(&s) || landed_before,
            "retry {step:?}: {s} {b}"
        );
        acks.push(step.ack.clone());
    }
    let before = {
        let store = Store::connect(url).await.unwrap();
        let mut c = store.conn().await.unwrap();
        let n = repo::counts(&mut c).await.unwrap();
        drop(c);
        store.close().await;
        n
    };
    for ack in &acks {
        if let Ack::Track { person, message } = ack {
            let body = serde_json_like(&[
                ("type", "\"track\""),
                ("userId", &format!("\"{person}\"")),
                ("messageId", &format!("\"{message}\"")),
                ("event", "\"Demo Request\""),
            ]);
            let (s, b) = http(&addr, "POST", "/v1/track", &token, &body).unwrap();
            assert_eq!(s, 200, "{b}");
            assert!(
                b.contains(r#""accepted":0"#) && b.contains(r#""duplicates":1"#),
                "replay of {message}: {b}"
            );
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let after = {
        let store = Store::connect(url).await.unwrap();
        let mut c = store.conn().await.unwrap();
        let n = repo::counts(&mut c).await.unwrap();
        drop(c);
        store.close().await;
        n
    };
    assert_eq!(before, after, "replays stored nothing new");
    check_acknowledged(url, &acks, SERVE_ROUNDS).await;
    eprintln!(
        "{} cut-off requests retried; {} acknowledged writes all present",
        cut.len(),
        acks.len()
    );
}
