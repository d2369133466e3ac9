//! The real `tandem` binary, driven as a user would.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};

fn tandem(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tandem"))
        .current_dir(dir)
        .env_remove("TANDEM_PLAYBOOK")
        .env_remove("TANDEM_DATABASE_URL")
        .args(args)
        .output()
        .expect("run tandem")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn init_then_check_passes() {
    let dir = tempfile::tempdir().unwrap();
    let out = tandem(dir.path(), &["init"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = tandem(dir.path(), &["check"]);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert_eq!(text(&out.stdout), "");
    // init refuses to overwrite.
    let out = tandem(dir.path(), &["init"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("already exists"));
}

#[test]
fn broken_cel_on_line_12_fails_check_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let src = "[company]\nname = \"X\"\ncurrency = \"USD\"\ntimezone = \"UTC\"\n\n[[stage]]\nid = \"inquiry\"\n\n[[stage]]\nid = \"mql\"\nmax_days = 14\nentry = \"score.fit >= 40 && score.engagement >= \"\n";
    std::fs::write(dir.path().join("broken.toml"), src).unwrap();
    let out = tandem(dir.path(), &["check", "broken.toml"]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("broken.toml:12:"), "{stdout}");
    assert!(
        stdout.contains(": error: invalid CEL expression"),
        "{stdout}"
    );
}

#[test]
fn errors_are_one_human_line_and_a_failing_exit() {
    let dir = tempfile::tempdir().unwrap();
    let out = tandem(dir.path(), &["accept", "nobody"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.starts_with("error: cannot read playbook tandem.toml"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    tandem(dir.path(), &["init"]);
    let out = tandem(dir.path(), &["history", "nobody"]);
    assert_eq!(text(&out.stderr), "error: person `nobody` not found\n");
}

/// README's first command: a demo company, then its numbers. The demo shows
/// SLA breaches on both sides, stalled leads and a quality report.
#[test]
fn demo_then_funnel_sla_stalled_and_quality() {
    let dir = tempfile::tempdir().unwrap();
    let out = tandem(dir.path(), &["demo", "--anchor", "2026-11-23"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let asof = ["--as-of", "2026-11-23"];
    let run = |args: &[&str]| {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(asof);
        let out = tandem(dir.path(), &all);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        text(&out.stdout)
    };
    let funnel: serde_json::Value =
        serde_json::from_str(&run(&["funnel", "--format", "json"])).unwrap();
    let stages = &funnel["groups"][0]["stages"];
    let count = |i: usize| stages[i]["cohort"].as_u64().unwrap();
    let (inquiries, customers) = (count(0), count(5));
    assert_eq!(stages[5]["stage"], "customer");
    let rate = customers as f64 / inquiries as f64;
    assert!((0.01..0.10).contains(&rate), "inquiry -> customer {rate}");

    let sla: serde_json::Value = serde_json::from_str(&run(&["sla", "--format", "json"])).unwrap();
    let sales_breaches = sla["sales"]["handoffs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["status"] == "breached")
        .count();
    let weeks = sla["marketing"]["weeks"].as_array().unwrap();
    let volume_breaches = weeks
        .iter()
        .filter(|w| w["volume_status"] == "breached")
        .count();
    let sal_rate_breaches = weeks
        .iter()
        .filter(|w| w["sal_rate_status"] == "breached")
        .count();
    assert!(
        sales_breaches > 0 && volume_breaches > 0 && sal_rate_breaches > 0,
        "{sales_breaches} {volume_breaches} {sal_rate_breaches}"
    );
    let stalled = run(&["stalled", "--format", "csv"]);
    assert!(stalled.lines().count() > 1, "stalled leads exist");
    let quality = run(&["quality", "--target", "won"]);
    assert!(
        quality.contains("auc") && quality.contains("deciles"),
        "{quality}"
    );
    // Same data, same as-of: same output.
    assert_eq!(
        run(&["waterfall", "--format", "json"]),
        run(&["waterfall", "--format", "json"])
    );
}

#[test]
fn tokens_are_shown_once_and_serve_answers_until_sigterm() {
    use std::io::{BufRead, BufReader, Read, Write};
    let dir = tempfile::tempdir().unwrap();
    assert!(tandem(dir.path(), &["init"]).status.success());
    let out = tandem(
        dir.path(),
        &["token", "create", "--role", "sales", "--name", "ci"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let secret = text(&out.stdout).trim().to_string();
    assert!(secret.starts_with("tdm_") && secret.len() == 68, "{secret}");
    let out = tandem(
        dir.path(),
        &["token", "create", "--role", "root", "--name", "x"],
    );
    assert!(!out.status.success());
    let list = text(&tandem(dir.path(), &["token", "list"]).stdout);
    assert!(list.contains("ci") && list.contains("sales"), "{list}");
    assert!(
        !list.contains(&secret[4..]),
        "the secret must not be listed"
    );

    // The real server on an ephemeral port.
    let mut child = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .current_dir(dir.path())
        .env_remove("TANDEM_PLAYBOOK")
        .env_remove("TANDEM_DATABASE_URL")
        .args(["serve", "--bind", "127.0.0.1:0"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    let addr = line
        .trim()
        .strip_prefix("tandem serving on http://")
        .unwrap_or_else(|| panic!("{line}"))
        .to_string();
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        s,
        "GET /api/v1/people HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {secret}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut res = String::new();
    s.read_to_string(&mut res).unwrap();
    assert!(res.starts_with("HTTP/1.1 200"), "{res}");
    assert!(res.contains(r#""people":[]"#), "{res}");
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    assert!(
        child.wait().unwrap().success(),
        "serve exits cleanly on SIGTERM"
    );

    let out = tandem(dir.path(), &["token", "revoke", "ci"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = tandem(dir.path(), &["token", "revoke", "ci"]);
    assert!(!out.status.success(), "revoking twice is an error");
}

#[test]
fn serve_reads_a_config_file_below_flags_and_environment() {
    use std::io::{BufRead, BufReader, Read, Write};
    let dir = tempfile::tempdir().unwrap();
    assert!(tandem(dir.path(), &["init"]).status.success());
    std::fs::write(
        dir.path().join("serve.toml"),
        "bind = \"127.0.0.1:1\"\ndatabase_url = \"from-file.db\"\n[alerts]\ninterval_secs = 3600\n",
    )
    .unwrap();
    // A bad file is refused with its name and the reason.
    std::fs::write(dir.path().join("bad.toml"), "bnid = \"x\"\n").unwrap();
    let out = tandem(dir.path(), &["serve", "--config", "bad.toml"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("bad.toml") && err.contains("unknown field `bnid`"),
        "{err}"
    );

    // The file's database is used; --bind beats the file's bind.
    let mut child = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .current_dir(dir.path())
        .env_remove("TANDEM_PLAYBOOK")
        .env_remove("TANDEM_DATABASE_URL")
        .env_remove("TANDEM_BIND")
        .args(["serve", "--config", "serve.toml", "--bind", "127.0.0.1:0"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    let addr = line
        .trim()
        .strip_prefix("tandem serving on http://")
        .unwrap_or_else(|| panic!("{line}"))
        .to_string();
    assert!(dir.path().join("from-file.db").exists());
    assert!(!dir.path().join("tandem.db").exists());
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut res = String::new();
    s.read_to_string(&mut res).unwrap();
    assert!(res.starts_with("HTTP/1.1 200"), "{res}");
    assert!(
        res.contains("# TYPE tandem_http_requests_total counter"),
        "{res}"
    );
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    assert!(child.wait().unwrap().success());
}

#[test]
fn serve_stops_cleanly_on_a_sigterm_as_soon_as_it_says_it_serves() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    assert!(tandem(dir.path(), &["init"]).status.success());
    for _ in 0..5 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tandem"))
            .current_dir(dir.path())
            .env_remove("TANDEM_BIND")
            .args(["serve", "--bind", "127.0.0.1:0"])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stderr.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(line.starts_with("tandem serving on"), "{line}");
        let term = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(term.success());
        let status = child.wait().unwrap();
        assert!(status.success(), "stopped by SIGTERM with {status}");
    }
}
