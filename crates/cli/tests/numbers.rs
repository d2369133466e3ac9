//! The number commands run as a user would: on the Olist data and on a small
//! hand-built history.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

const OLIST_PEOPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../testdata/olist/olist_marketing_qualified_leads_dataset.csv"
);
const OLIST_DEALS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../testdata/olist/olist_closed_deals_dataset.csv"
);
const OLIST_PLAYBOOK: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../testdata/olist/playbook.toml"
);

fn tandem(dir: &Path, args: &[&str]) -> Output {
    let db = dir.join("tandem.db");
    Command::new(env!("CARGO_BIN_EXE_tandem"))
        .current_dir(dir)
        .env_remove("TANDEM_PLAYBOOK")
        .env_remove("TANDEM_DATABASE_URL")
        .arg("--database-url")
        .arg(db)
        .args(args)
        .output()
        .expect("run tandem")
}

/// Runs tandem and returns stdout, failing the test on a non-zero exit.
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

/// `group → stage → cohort count` of a waterfall JSON.
fn cohorts(w: &Value) -> BTreeMap<String, BTreeMap<String, u64>> {
    let mut out = BTreeMap::new();
    for g in w["groups"].as_array().unwrap() {
        let stages = g["stages"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|s| Some((s["stage"].as_str()?.to_string(), s["cohort"].as_u64()?)))
            .collect();
        out.insert(g["group"].as_str().unwrap().to_string(), stages);
    }
    out
}

/// The fit score of the Olist test playbook for an origin.
fn olist_fit(origin: &str) -> f64 {
    match origin {
        "organic_search" | "paid_search" => 40.0,
        "direct_traffic" | "referral" => 25.0,
        "social" | "email" | "display" => 10.0,
        _ => 0.0,
    }
}

/// Mann-Whitney AUC by counting pairs: a positive above a negative is 1, a
/// tie is ½ (written independently of `tandem_core::quality`).
fn auc_by_pairs(scores: &[(f64, bool)]) -> f64 {
    let mut by_score: BTreeMap<i64, (f64, f64)> = BTreeMap::new();
    for &(s, won) in scores {
        let e = by_score.entry((s * 100.0) as i64).or_default();
        if won {
            e.0 += 1.0;
        } else {
            e.1 += 1.0;
        }
    }
    let (mut wins, mut negs_below) = (0.0, 0.0);
    for (pos, neg) in by_score.values() {
        wins += pos * (negs_below + neg / 2.0);
        negs_below += neg;
    }
    let p: f64 = by_score.values().map(|v| v.0).sum();
    let n: f64 = by_score.values().map(|v| v.1).sum();
    wins / (p * n)
}

/// The Olist funnel, the definition check and the plan oracle on one import
/// (importing 8,000 leads takes a while in a debug build).
#[test]
fn olist_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::copy(OLIST_PLAYBOOK, d.join("tandem.toml")).unwrap();
    ok(d, &["import", "people", OLIST_PEOPLE, "--preset", "olist"]);
    ok(d, &["import", "deals", OLIST_DEALS, "--preset", "olist"]);

    // Waterfall and funnel agree, and the Olist numbers hold.
    let w = cohorts(&json(
        d,
        &["waterfall", "--by", "source", "--format", "json"],
    ));
    let f = cohorts(&json(d, &["funnel", "--by", "source", "--format", "json"]));
    assert_eq!(w, f);
    for (source, leads, customers) in [
        ("organic_search", 2296, 271),
        ("paid_search", 1586, 195),
        ("social", 1350, 75),
        ("email", 493, 15),
    ] {
        assert_eq!(w[source]["mql"], leads, "{source}");
        assert_eq!(w[source]["customer"], customers, "{source}");
    }
    let all = cohorts(&json(d, &["funnel", "--format", "json"]));
    assert_eq!(all["(all)"]["mql"], 8000);
    assert_eq!(all["(all)"]["customer"], 842);

    // Definition check: AUC of the source-based fit score, computed here
    // from the CSV files.
    let won: BTreeSet<String> = std::fs::read_to_string(OLIST_DEALS)
        .unwrap()
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').next().map(str::to_string))
        .collect();
    let scores: Vec<(f64, bool)> = std::fs::read_to_string(OLIST_PEOPLE)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| {
            let cols: Vec<&str> = l.split(',').collect();
            (olist_fit(cols[3]), won.contains(cols[0]))
        })
        .collect();
    assert_eq!(scores.len(), 8000);
    let expected = auc_by_pairs(&scores);
    let q = json(
        d,
        &[
            "quality", "--target", "won", "--score", "fit", "--format", "json",
        ],
    );
    assert_eq!(q["n"], 8000);
    assert_eq!(q["positives"], 842);
    let auc = q["scores"][0]["quality"]["auc"].as_f64().unwrap();
    assert!((auc - expected).abs() < 1e-9, "{auc} vs {expected}");
    // The table names the AUC too.
    let table = ok(d, &["quality", "--target", "won"]);
    assert!(table.contains(&format!("{expected:.4}")), "{table}");
    // Every Olist lead is an MQL: the rule flags everyone.
    assert_eq!(q["mql_rule"]["check"]["recall"], 1.0);

    // The plan oracle, with the stages the four rates map to.
    let plan_args = [
        "plan",
        "--revenue",
        "1000000",
        "--deal-size",
        "10000",
        "--rates",
        "0.10,0.85,0.60,0.30",
        "--stages",
        "inquiry,mql,sal,sql,customer",
        "--as-of",
        "2018-05-15",
        "--format",
        "json",
    ];
    let p = json(d, &plan_args);
    let needed: Vec<(String, f64)> = p[0]["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["stage"].as_str().unwrap().to_string(),
                (s["needed"].as_f64().unwrap() * 100.0).round() / 100.0,
            )
        })
        .collect();
    let expect = [
        ("inquiry", 6535.95),
        ("mql", 653.59),
        ("sal", 555.56),
        ("sql", 333.33),
        ("customer", 100.0),
    ];
    assert_eq!(
        needed,
        expect.map(|(s, n)| (s.to_string(), n)).to_vec(),
        "{p}"
    );
    assert_eq!(p[0]["currency"], "BRL");
    // Four rates for a six-stage funnel without --stages: a clear error.
    let out = tandem(d, &plan_args[..7]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--stages inquiry,mql,sal,sql,customer"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");

    // Same data and as-of, same output.
    for args in [
        &plan_args[..],
        &[
            "plan",
            "--revenue",
            "1000000",
            "--deal-size",
            "10000",
            "--as-of",
            "2018-05-15",
            "--by",
            "source",
        ],
        &["scorecard", "--as-of", "2018-05-15", "--format", "json"],
        &[
            "gaps",
            "--by",
            "source",
            "--as-of",
            "2018-05-15",
            "--format",
            "csv",
        ],
        &["quality", "--as-of", "2018-05-15"],
    ] {
        assert_eq!(ok(d, args), ok(d, args), "{args:?}");
    }
}

/// Two leads handed over on Monday 2026-11-16 (New York): p1 at 10:00, called
/// at 11:00 and accepted at 12:00; p2 at 13:00 and never called, so its
/// 4-business-hour clock ends at 17:00 and by Friday 12:00 it is 8 + 8 + 8 +
/// 3 = 27 business hours overdue.
fn hand_built(d: &Path) {
    ok(d, &["init"]);
    let files = [
        (
            "people",
            "people.csv",
            "external_id,email,owner,source,created_at,lead_score\n\
             p1,p1@acme.io,ana,organic_search,2026-11-10T15:00:00Z,80\n\
             p2,p2@beta.io,bob,paid_search,2026-11-10T15:00:00Z,20\n",
        ),
        (
            "touches",
            "touches.csv",
            "person,at,kind\np1,2026-11-12T15:00:00Z,webinar\np2,2026-11-13T15:00:00Z,web_visit\n",
        ),
        (
            "transitions",
            "transitions.csv",
            "person,stage,at,actor\n\
             p1,mql,2026-11-16T15:00:00Z,import\n\
             p1,sal,2026-11-16T17:00:00Z,ana\n\
             p2,mql,2026-11-16T18:00:00Z,import\n",
        ),
        (
            "activities",
            "activities.csv",
            "person,at,kind,actor\np1,2026-11-16T16:00:00Z,call,ana\n",
        ),
    ];
    for (kind, name, body) in files {
        std::fs::write(d.join(name), body).unwrap();
        ok(d, &["import", kind, name]);
    }
}

#[test]
fn sla_stalled_scorecard_and_score_on_a_small_history() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    hand_built(d);
    let friday = "2026-11-20T17:00:00Z";

    let s = json(d, &["sla", "--as-of", friday, "--format", "json"]);
    let h = s["sales"]["handoffs"].as_array().unwrap();
    assert_eq!(h.len(), 2);
    assert_eq!(
        (h[0]["person"].as_str(), h[0]["status"].as_str()),
        (Some("p1"), Some("met"))
    );
    assert_eq!(
        (h[1]["person"].as_str(), h[1]["status"].as_str()),
        (Some("p2"), Some("breached"))
    );
    assert_eq!(h[1]["owner"], "bob");
    assert!((h[1]["overdue_hours"].as_f64().unwrap() - 27.0).abs() < 1e-9);
    assert_eq!(s["sales"]["overall"]["compliance_pct"], 50.0);
    let w = &s["marketing"]["weeks"][0];
    assert_eq!(
        (w["week"].as_str(), w["mqls"].as_i64(), w["sals"].as_i64()),
        (Some("2026-W47"), Some(2), Some(1))
    );
    // --owner and --week filter the handoffs.
    let s = json(
        d,
        &[
            "sla", "--as-of", friday, "--owner", "ana", "--format", "json",
        ],
    );
    assert_eq!(s["sales"]["handoffs"].as_array().unwrap().len(), 1);
    assert_eq!(s["sales"]["overall"]["compliance_pct"], 100.0);
    let s = json(
        d,
        &[
            "sla", "--as-of", friday, "--week", "2026-W46", "--format", "json",
        ],
    );
    assert_eq!(s["sales"]["handoffs"].as_array().unwrap().len(), 0);
    let table = ok(d, &["sla", "--as-of", friday, "--week", "2026-W47"]);
    assert!(table.contains("27.0"), "{table}");
    let out = tandem(d, &["sla", "--week", "48"]);
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("error: invalid week `48`"));

    // Stalled on 2026-12-05: p1 in sal since Monday 12:00, p2 in mql since 13:00.
    let st = json(d, &["stalled", "--as-of", "2026-12-05", "--format", "json"]);
    let people: Vec<(&str, &str, &str)> = st
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["person"].as_str().unwrap(),
                r["owner"].as_str().unwrap(),
                r["stage"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(people, [("p1", "ana", "sal"), ("p2", "bob", "mql")]);
    assert_eq!(st[0]["max_days"], 14);
    assert_eq!(
        ok(d, &["stalled", "--as-of", "2026-11-20", "--format", "json"]),
        "[]\n"
    );

    // Scorecard: 2 MQLs and 1 SAL this quarter; money in dollars.
    let sc = json(
        d,
        &[
            "scorecard",
            "--as-of",
            friday,
            "--period",
            "week",
            "--format",
            "json",
        ],
    );
    let rows = sc.as_array().unwrap();
    let goal = |m: &str| {
        rows.iter()
            .find(|r| r["kind"] == "goal" && r["metric"] == m)
            .unwrap()
    };
    assert_eq!(goal("mqls")["actual"], 2);
    assert_eq!(goal("sals")["actual"], 1);
    assert_eq!(goal("revenue_won")["target"], 1000000.0);
    assert_eq!(goal("revenue_won")["unit"], "USD");
    assert_eq!(goal("mqls")["status"], "behind");
    let ind = rows
        .iter()
        .find(|r| r["kind"] == "indicator" && r["metric"] == "calls")
        .unwrap();
    assert_eq!(ind["actual"], 1);
    assert_eq!(ind["period"], "week");

    // Score: p1 has a business email (10) and a webinar 7.9 days earlier.
    let sc = ok(
        d,
        &[
            "score",
            "p1",
            "--as-of",
            friday,
            "--explain",
            "--format",
            "csv",
        ],
    );
    assert!(sc.contains("fit,business email,10.00,10.0000,-"), "{sc}");
    assert!(sc.contains("engagement,webinar,15.00,"), "{sc}");
    let all = json(d, &["score", "--as-of", friday, "--format", "json"]);
    assert_eq!(all.as_array().unwrap().len(), 2);
    assert_eq!(all[0]["fit"], 10.0);
    let out = tandem(d, &["score", "nobody"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error: person `nobody` not found\n"
    );

    // Definition check on a custom column: p1 (80) reached sal, p2 (20) did not.
    let q = json(
        d,
        &[
            "quality",
            "--target",
            "sal",
            "--score",
            "custom.lead_score",
            "--as-of",
            friday,
            "--format",
            "json",
        ],
    );
    assert_eq!(q["scores"][0]["quality"]["auc"], 1.0);
    assert_eq!(q["mql_rule"]["check"]["precision"], 0.5);

    // p1 wins a 5,000.00 deal on Thursday: the engine moves p1 through sql
    // and opportunity (2026-11-17 15:00Z) to customer (2026-11-19 15:00Z).
    std::fs::write(
        d.join("deals.csv"),
        "external_id,person,amount,created_at,closed_at,status\n\
         d1,p1,5000,2026-11-17T15:00:00Z,2026-11-19T15:00:00Z,won\n",
    )
    .unwrap();
    ok(d, &["import", "deals", "deals.csv"]);
    // Gaps by source: MQL shares ½ and ½, revenue shares 1 and 0.
    let g = json(
        d,
        &[
            "gaps", "--by", "source", "--as-of", friday, "--format", "json",
        ],
    );
    assert_eq!(g[0]["group"], "organic_search");
    assert_eq!(g[0]["gap"], -0.5);
    assert_eq!(g[0]["revenue_won"], 5000.0);
    assert_eq!(g[1]["gap"], 0.5);
    assert_eq!(
        (g[0]["flagged"].as_bool(), g[1]["flagged"].as_bool()),
        (Some(true), Some(true))
    );
    // Historic plan for 100,000.00 at the average won deal (5,000.00): cohort
    // 2 → 2 → 1 → 1 → 1 → 1, so 20 won, 40 MQLs, 40 inquiries. Deadlines back
    // from the quarter end (2027-01-01 00:00 New York) by the median days:
    // opportunity→customer 2 d, sql→opportunity 0, sal→sql 22 h, mql→sal 2 h,
    // inquiry→mql 6 d 1.5 h (p1 6 d, p2 6 d 3 h).
    let p = json(
        d,
        &[
            "plan",
            "--revenue",
            "100000",
            "--as-of",
            friday,
            "--format",
            "json",
        ],
    );
    assert_eq!(p[0]["deal_size"], 5000.0);
    assert_eq!(p[0]["rates"], "historic");
    let rows: Vec<(&str, f64, &str, f64)> = p[0]["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["stage"].as_str().unwrap(),
                s["needed"].as_f64().unwrap(),
                s["enter_by"].as_str().unwrap(),
                s["current"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("inquiry", 40.0, "2026-12-22 22:30", 0.0),
            ("mql", 40.0, "2026-12-29 00:00", 1.0),
            ("sal", 20.0, "2026-12-29 02:00", 0.0),
            ("sql", 20.0, "2026-12-30 00:00", 0.0),
            ("opportunity", 20.0, "2026-12-30 00:00", 0.0),
            ("customer", 20.0, "2027-01-01 00:00", 1.0),
        ]
    );
    // With --by, one plan per group; paid_search has no won deal to size by.
    let p = json(
        d,
        &[
            "plan",
            "--revenue",
            "100000",
            "--by",
            "source",
            "--as-of",
            friday,
            "--format",
            "json",
        ],
    );
    assert_eq!(p.as_array().unwrap().len(), 2);
    assert_eq!(p[0]["group"], "organic_search");
    assert!(
        p[1]["error"].as_str().unwrap().contains("--deal-size"),
        "{p}"
    );
}
