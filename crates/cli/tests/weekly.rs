//! The weekly loop as a user runs it: the report's numbers are the metric
//! commands' numbers on the same data, and decisions and content flow into
//! the agenda and the report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn tandem(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tandem"))
        .current_dir(dir)
        .env_remove("TANDEM_PLAYBOOK")
        .env_remove("TANDEM_DATABASE_URL")
        .arg("--database-url")
        .arg(dir.join("tandem.db"))
        .args(args)
        .output()
        .expect("run tandem")
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let out = tandem(dir, args);
    assert!(
        out.status.success(),
        "tandem {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn json(dir: &Path, args: &[&str]) -> Value {
    let s = ok(dir, args);
    serde_json::from_str(&s).unwrap_or_else(|e| panic!("{args:?}: {e}\n{s}"))
}

fn f(v: &Value) -> f64 {
    match v {
        Value::Number(n) => n.as_f64().unwrap(),
        Value::String(s) => s.parse().unwrap(),
        other => panic!("not a number: {other}"),
    }
}

#[test]
fn report_numbers_equal_the_metric_commands() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    ok(dir, &["demo", "--seed", "42", "--anchor", "2026-11-23"]);
    let as_of = ["--as-of", "2026-11-23"];
    let r = json(dir, &["report", as_of[0], as_of[1], "--format", "json"]);
    assert_eq!(r["week"], "2026-W47");

    // Waterfall: `tandem waterfall` over the same week.
    let w = json(
        dir,
        &[
            "waterfall",
            "--from",
            "2026-11-16",
            "--to",
            "2026-11-23",
            as_of[0],
            as_of[1],
            "--format",
            "json",
        ],
    );
    let stages = w["groups"][0]["stages"].as_array().unwrap();
    let rows = r["waterfall"].as_array().unwrap();
    assert_eq!(rows.len(), stages.len());
    for (row, s) in rows.iter().zip(stages) {
        assert_eq!(row["stage"], s["stage"]);
        assert_eq!(row["this_week"], s["flow"], "{}", s["stage"]);
    }
    let prev = json(
        dir,
        &[
            "waterfall",
            "--from",
            "2026-11-09",
            "--to",
            "2026-11-16",
            as_of[0],
            as_of[1],
            "--format",
            "json",
        ],
    );
    for (row, s) in rows
        .iter()
        .zip(prev["groups"][0]["stages"].as_array().unwrap())
    {
        assert_eq!(row["last_week"], s["flow"], "{}", s["stage"]);
    }

    // SLA: `tandem sla --week 2026-W47`.
    let sla = json(
        dir,
        &[
            "sla", "--week", "2026-W47", as_of[0], as_of[1], "--format", "json",
        ],
    );
    let overall = &sla["sales"]["overall"];
    for k in [
        "handoffs",
        "met",
        "breached",
        "open",
        "stopped",
        "compliance_pct",
    ] {
        assert_eq!(r["sla"][k], overall[k], "sla {k}");
    }
    let mw = &sla["marketing"]["weeks"][0];
    assert_eq!(mw["week"], "2026-W47");
    for k in ["mqls", "sals", "pending", "sal_rate"] {
        assert_eq!(r["sla"]["marketing"][k], mw[k], "marketing {k}");
    }

    // Scorecard: `tandem scorecard`; money is shown in major units there.
    let sc = json(dir, &["scorecard", as_of[0], as_of[1], "--format", "json"]);
    let goal_rows: Vec<&Value> = sc
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["kind"] == "goal")
        .collect();
    let goals = r["goals"].as_array().unwrap();
    assert_eq!(goals.len(), goal_rows.len());
    for (g, row) in goals.iter().zip(goal_rows) {
        let scale = if g["unit"] == "money" { 100.0 } else { 1.0 };
        let actual = f(&g["actual"]) / scale;
        assert!(
            (actual - f(&row["actual"])).abs() < 0.006,
            "{}: {actual} vs {}",
            g["goal"],
            row["actual"]
        );
        assert_eq!(g["status"], row["status"]);
    }

    // Stalled: `tandem stalled`.
    let st = json(dir, &["stalled", as_of[0], as_of[1], "--format", "json"]);
    assert_eq!(
        r["stalled_total"].as_u64().unwrap(),
        st.as_array().unwrap().len() as u64
    );
}

#[test]
fn decisions_and_content_reach_the_agenda_and_report() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    ok(dir, &["demo", "--seed", "42", "--anchor", "2026-11-23"]);
    ok(
        dir,
        &[
            "decision",
            "add",
            "Call enterprise MQLs within 4 hours",
            "--owner",
            "ana.silva",
            "--action",
            "--due",
            "2026-11-20",
            "--at",
            "2026-11-16 10:00",
        ],
    );
    ok(
        dir,
        &[
            "decision",
            "add",
            "Keep the MQL threshold",
            "--at",
            "2026-11-16 10:05",
        ],
    );
    ok(dir, &["decision", "done", "#2", "--at", "2026-11-18 09:00"]);
    let open = json(dir, &["decision", "list", "--format", "json"]);
    assert_eq!(open.as_array().unwrap().len(), 1);
    assert_eq!(open[0]["text"], "Call enterprise MQLs within 4 hours");
    ok(
        dir,
        &[
            "content",
            "add",
            "cs-fintech",
            "--title",
            "Fintech case study",
            "--stage",
            "sql",
        ],
    );
    ok(
        dir,
        &[
            "content",
            "use",
            "cs-fintech",
            "--by",
            "ana.silva",
            "--person",
            "demo-p0000243",
            "--at",
            "2026-11-18 10:00",
        ],
    );
    ok(
        dir,
        &[
            "content",
            "use",
            "cs-fintech",
            "--by",
            "ben.okafor",
            "--at",
            "2026-11-19 10:00",
        ],
    );
    let list = json(dir, &["content", "list", "--format", "json"]);
    assert_eq!(f(&list[0]["uses"]), 2.0);

    ok(
        dir,
        &[
            "feedback",
            "add",
            "obstacle",
            "Enterprise leads ask for SOC 2",
            "--author",
            "ben.okafor",
            "--team",
            "sales",
            "--at",
            "2026-11-17 11:00",
        ],
    );
    ok(
        dir,
        &[
            "feedback",
            "add",
            "content_request",
            "Security one-pager",
            "--author",
            "ben.okafor",
            "--team",
            "sales",
            "--at",
            "2026-11-18 11:00",
        ],
    );
    ok(
        dir,
        &[
            "feedback",
            "add",
            "success",
            "Closed the fintech pilot",
            "--author",
            "ana.silva",
            "--team",
            "sales",
            "--person",
            "demo-p0000243",
            "--at",
            "2026-11-19 11:00",
        ],
    );
    ok(
        dir,
        &[
            "feedback",
            "comment",
            "#1",
            "Drafting an FAQ",
            "--author",
            "maya.lindqvist",
            "--at",
            "2026-11-19 12:00",
        ],
    );
    ok(
        dir,
        &["feedback", "resolve", "2", "--status", "in_progress"],
    );
    let fb = json(dir, &["feedback", "list", "--format", "json"]);
    assert_eq!(fb.as_array().unwrap().len(), 3);
    assert_eq!(fb[0]["comments"], 1);
    assert_eq!(fb[1]["status"], "in_progress");
    let bad = tandem(
        dir,
        &[
            "feedback", "add", "rant", "x", "--author", "a", "--team", "sales",
        ],
    );
    assert!(String::from_utf8_lossy(&bad.stderr).contains(
        "kind: unknown `rant`; use success, obstacle, lead_quality, content_request, idea"
    ));

    let agenda = ok(dir, &["agenda", "--as-of", "2026-11-23"]);
    assert!(
        agenda.contains(
            "- ⚠️ #1 Enterprise leads ask for SOC 2 (ben.okafor, open, since 2026-11-17)"
        ),
        "{agenda}"
    );
    assert!(
        agenda.contains("- 📝 #2 Security one-pager (ben.okafor, in_progress, since 2026-11-18)"),
        "{agenda}"
    );
    assert!(agenda.contains("- [ ] #1 action: Call enterprise MQLs within 4 hours (owner ana.silva, due 2026-11-20, **overdue**"), "{agenda}");
    assert!(
        agenda.contains("- [x] #2 decision: Keep the MQL threshold"),
        "{agenda}"
    );
    let out = dir.join("report.html");
    ok(
        dir,
        &[
            "report",
            "--as-of",
            "2026-11-23",
            "--format",
            "html",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    let html = std::fs::read_to_string(&out).unwrap();
    assert!(html.contains("<li>✅ Closed the fintech pilot (ana.silva, demo-p0000243)</li>"));
    assert!(html.contains("<td>cs-fintech</td><td>Fintech case study</td><td>-</td><td>sql</td><td class=\"n\">2</td><td class=\"n\">2</td>"));

    // Bad input: a clear error naming the field.
    let bad = tandem(dir, &["report", "--week", "2026-48"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("week: `2026-48` is not an ISO week"));
    let bad = tandem(dir, &["content", "use", "nope", "--by", "x"]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("content asset nope not found"));
    let bad = tandem(dir, &["report", "--send", "--as-of", "2026-11-23"]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--send needs a [report] section"));
}
