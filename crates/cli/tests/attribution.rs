//! `tandem attribution` run as a user would: on the shared ChannelAttribution
//! example file and on the demo company.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

const PATHS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/data/attribution/paths.csv"
);

/// Runs tandem in `dir` with its own database and playbook; fails the test on
/// a non-zero exit and returns stdout.
fn ok(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .current_dir(dir)
        .env_remove("TANDEM_PLAYBOOK")
        .env_remove("TANDEM_DATABASE_URL")
        .arg("--database-url")
        .arg(dir.join("tandem.db"))
        .arg("--playbook")
        .arg(dir.join("tandem.toml"))
        .args(args)
        .output()
        .expect("run tandem");
    assert!(
        out.status.success(),
        "tandem {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn json(dir: &Path, args: &[&str]) -> Vec<Value> {
    let s = ok(dir, args);
    let v: Value = serde_json::from_str(&s).unwrap_or_else(|e| panic!("{args:?}: {e}\n{s}"));
    v.as_array().unwrap().clone()
}

/// `channel → column` of a JSON table.
fn column(rows: &[Value], col: &str) -> BTreeMap<String, f64> {
    rows.iter()
        .map(|r| {
            (
                r["channel"].as_str().unwrap().to_string(),
                r[col].as_f64().unwrap_or_else(|| panic!("{col} in {r}")),
            )
        })
        .collect()
}

fn shared_paths() -> Option<&'static str> {
    if Path::new(PATHS).exists() {
        Some(PATHS)
    } else {
        eprintln!("notice: {PATHS} is missing; skipping this test");
        None
    }
}

#[test]
fn markov_order_1_on_the_shared_paths_matches_the_oracle() {
    let Some(file) = shared_paths() else { return };
    let dir = tempfile::tempdir().unwrap();
    let rows = json(
        dir.path(),
        &[
            "attribution",
            "--paths",
            file,
            "--model",
            "markov",
            "--format",
            "json",
        ],
    );
    let got = column(&rows, "conversions");
    let oracle = [
        ("alpha", 5344.9477),
        ("iota", 3884.6147),
        ("eta", 3340.8474),
        ("beta", 2527.3522),
        ("theta", 1971.9129),
        ("lambda", 1282.8472),
        ("epsilon", 599.5707),
        ("zeta", 381.0626),
        ("kappa", 274.3633),
        ("gamma", 171.1454),
        ("delta", 4.6136),
        ("mi", 1.7224),
    ];
    assert_eq!(got.len(), oracle.len(), "{got:?}");
    for (ch, want) in oracle {
        assert!((got[ch] - want).abs() < 0.01, "{ch}: {} vs {want}", got[ch]);
    }
}

#[test]
fn first_touch_on_the_shared_paths() {
    let Some(file) = shared_paths() else { return };
    let dir = tempfile::tempdir().unwrap();
    let rows = json(
        dir.path(),
        &[
            "attribution",
            "--paths",
            file,
            "--model",
            "first",
            "--format",
            "json",
        ],
    );
    let got = column(&rows, "conversions");
    for (ch, want) in [
        ("alpha", 6308.0),
        ("iota", 4606.0),
        ("eta", 3164.0),
        ("beta", 2831.0),
    ] {
        assert!((got[ch] - want).abs() < 1e-6, "{ch}: {} vs {want}", got[ch]);
    }
}

#[test]
fn a_bad_paths_file_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.csv");
    std::fs::write(
        &file,
        "path;total_conversions;total_conversion_value;total_null\na > b;1;2;0\na > > b;1;1;0\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(["attribution", "--paths"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{}:3:", file.display())),
        "stderr: {err}"
    );
}

#[test]
fn demo_compare_puts_paid_search_ahead_of_display() {
    let dir = tempfile::tempdir().unwrap();
    ok(dir.path(), &["demo", "--anchor", "2026-11-23"]);
    let rows = json(
        dir.path(),
        &[
            "attribution",
            "--model",
            "all",
            "--compare",
            "--as-of",
            "2026-11-23",
            "--format",
            "json",
        ],
    );
    let models: Vec<String> = rows[0]
        .as_object()
        .unwrap()
        .keys()
        .filter_map(|k| k.strip_suffix("_conversions").map(str::to_string))
        .collect();
    assert_eq!(models.len(), 10, "{models:?}");
    let first = column(&rows, "first_conversions").values().sum::<f64>();
    assert!(first > 0.0);
    for m in &models {
        let sum: f64 = column(&rows, &format!("{m}_conversions")).values().sum();
        assert!((sum - first).abs() < 0.01, "{m}: {sum} vs {first}");
        let rpc = |ch: &str| {
            rows.iter()
                .find(|r| r["channel"] == ch)
                .and_then(|r| r[format!("{m}_revenue_per_cost")].as_f64())
                .unwrap_or_else(|| panic!("{m}: no revenue per cost for {ch}"))
        };
        assert!(
            rpc("paid_search") > rpc("display"),
            "{m}: paid_search {} vs display {}",
            rpc("paid_search"),
            rpc("display")
        );
    }

    // Account journeys: one conversion per account at most, so fewer
    // conversions than won deals, and every model still sums to the total.
    let rows = json(
        dir.path(),
        &[
            "attribution",
            "--level",
            "account",
            "--as-of",
            "2026-11-23",
            "--format",
            "json",
        ],
    );
    let accounts = column(&rows, "first_conversions").values().sum::<f64>();
    assert!(accounts > 0.0 && accounts < first, "{accounts} vs {first}");
    let markov = column(&rows, "markov_conversions").values().sum::<f64>();
    assert!((markov - accounts).abs() < 0.01, "{markov} vs {accounts}");
}

#[test]
fn exported_paths_give_the_same_credits() {
    let Some(file) = shared_paths() else { return };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.csv");
    let out = out.to_str().unwrap();
    ok(
        dir.path(),
        &["attribution", "--paths", file, "--export-paths", out],
    );
    let text = std::fs::read_to_string(out).unwrap();
    assert!(text.starts_with("path;total_conversions;total_conversion_value;total_null\n"));
    for model in ["first", "markov"] {
        let credits = |f: &str| {
            let args = [
                "attribution",
                "--paths",
                f,
                "--model",
                model,
                "--format",
                "json",
            ];
            column(&json(dir.path(), &args), "conversions")
        };
        let (a, b) = (credits(file), credits(out));
        assert_eq!(a.len(), b.len());
        for (ch, x) in &a {
            assert!((x - b[ch]).abs() < 1e-6, "{model} {ch}: {x} vs {}", b[ch]);
        }
    }
}
