//! `tandem accounts …` and the account views of waterfall and scorecard,
//! on the demo company, through the real binary.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};

fn tandem(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tandem"))
        .current_dir(dir)
        .env_remove("TANDEM_PLAYBOOK")
        .env_remove("TANDEM_DATABASE_URL")
        .env_remove("TANDEM_ACTOR")
        .args(args)
        .output()
        .expect("run tandem")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let out = tandem(dir, args);
    assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
    text(&out.stdout)
}

#[test]
fn demo_accounts_targets_waterfall_and_retention() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(d, &["demo", "--anchor", "2026-11-23"]);
    let asof = "2026-11-23";

    // The scorecard shows retention: indicator rows and the section.
    let card = ok(d, &["scorecard", "--as-of", asof]);
    for needle in [
        "nrr",
        "grr",
        "logo_retention",
        "expansion_revenue",
        "retention by quarter",
    ] {
        assert!(card.contains(needle), "{needle} missing:\n{card}");
    }

    // Target accounts, stages and committee gaps in the list.
    let list = ok(
        d,
        &[
            "accounts",
            "list",
            "--targets",
            "--as-of",
            asof,
            "--format",
            "csv",
        ],
    );
    let rows: Vec<&str> = list.lines().skip(1).collect();
    assert!(rows.len() >= 20, "{list}");
    assert!(rows
        .iter()
        .any(|r| r.contains("economic_buyer") || r.contains("user")));
    assert!(rows
        .iter()
        .any(|r| r.contains(",customer,") || r.contains(",expansion,")));

    // The account waterfall by tier starts at `target`.
    let w: serde_json::Value = serde_json::from_str(&ok(
        d,
        &[
            "waterfall",
            "--level",
            "account",
            "--by",
            "tier",
            "--as-of",
            asof,
            "--format",
            "json",
        ],
    ))
    .unwrap();
    assert_eq!(w["groups"][0]["stages"][0]["stage"], "target");
    let groups: Vec<&str> = w["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["group"].as_str().unwrap())
        .collect();
    assert!(
        groups.contains(&"non-target") && groups.contains(&"tier 1"),
        "{groups:?}"
    );
    // People's waterfall is untouched by account stages.
    let people: serde_json::Value =
        serde_json::from_str(&ok(d, &["waterfall", "--as-of", asof, "--format", "json"])).unwrap();
    assert_eq!(people["groups"][0]["stages"][0]["stage"], "inquiry");

    let tiers = ok(
        d,
        &["accounts", "tiers", "--as-of", asof, "--format", "csv"],
    );
    assert!(
        tiers.contains("tier 1") && tiers.contains("non-target"),
        "{tiers}"
    );
    let sla = ok(d, &["accounts", "sla", "--as-of", asof, "--format", "csv"]);
    assert!(sla.contains(",met") && sla.contains(",breached"), "{sla}");

    // Target list edits, single and from CSV with a reject file.
    let suggested = ok(d, &["accounts", "target", "suggest", "--format", "csv"]);
    let first = suggested
        .lines()
        .nth(1)
        .expect("a suggestion")
        .split(',')
        .next()
        .unwrap()
        .to_string();
    ok(
        d,
        &[
            "accounts",
            "target",
            "add",
            &first,
            "--tier",
            "2",
            "--marketer",
            "maya",
            "--seller",
            "ana",
        ],
    );
    let out = tandem(d, &["accounts", "target", "add", &first, "--tier", "5"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("tier must be 1, 2 or 3, got 5"),
        "{}",
        text(&out.stderr)
    );
    std::fs::write(
        d.join("targets.csv"),
        format!("account,tier,seller\n{first},1,ben\nnope,1,\n{first},x,\n"),
    )
    .unwrap();
    let out = tandem(d, &["accounts", "target", "add", "--file", "targets.csv"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("updated 1, unchanged 0, rejected 2"),
        "{}",
        text(&out.stderr)
    );
    let rejects = std::fs::read_to_string(d.join("targets.csv.rejects.csv")).unwrap();
    assert!(
        rejects.contains("\n3,\"`account`: no account with external id"),
        "{rejects}"
    );
    assert!(rejects.contains("\n4,\"`tier`: "), "{rejects}");
    let targets = ok(d, &["accounts", "target", "list", "--format", "csv"]);
    assert!(
        targets.contains(&format!("{first},1,maya,ben")),
        "{targets}"
    );
    ok(d, &["accounts", "target", "remove", &first]);

    // Churn by hand needs a customer.
    let out = tandem(d, &["accounts", "churn", &first, "--reason", "no_budget"]);
    let shown = ok(d, &["accounts", "show", &first, "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&shown).unwrap();
    let stage = v["stage"].as_str().unwrap_or("-").to_string();
    if stage == "customer" || stage == "expansion" {
        assert!(out.status.success(), "{}", text(&out.stderr));
    } else {
        assert!(
            text(&out.stderr).contains("only customers can churn"),
            "{}",
            text(&out.stderr)
        );
    }
}
