#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

fn rendered(src: &str) -> Vec<String> {
    Playbook::load(src)
        .diagnostics
        .iter()
        .map(|d| d.render("pb.toml", src))
        .collect()
}

#[test]
fn starter_playbook_is_clean() {
    let loaded = Playbook::load(STARTER);
    assert!(loaded.diagnostics.is_empty(), "{:?}", rendered(STARTER));
    let pb = loaded.playbook.unwrap();
    let funnel: Vec<&str> = pb.funnel().map(|s| s.id.as_str()).collect();
    assert_eq!(
        funnel,
        ["inquiry", "mql", "sal", "sql", "opportunity", "customer"]
    );
    assert_eq!(pb.recycle_stage().unwrap().id, "recycled");
    assert_eq!(pb.disqualify_stage().unwrap().id, "disqualified");
    assert_eq!(pb.company.hours.start_minute, 540);
    assert_eq!(pb.goals[0].target, 100_000_000.0);
    // Derived graph: sql may come from any earlier funnel stage or recycled.
    assert_eq!(
        pb.stage("sql").unwrap().from,
        ["inquiry", "mql", "sal", "recycled"]
    );
    assert_eq!(pb.stage("inquiry").unwrap().from, Vec::<String>::new());
}

/// The "Done when" of the foundation issue: a broken CEL expression on line
/// 12 is reported on line 12 with its column inside the expression.
#[test]
fn broken_cel_on_line_12_is_reported_there() {
    let src = r#"[company]
name = "X"
currency = "USD"
timezone = "UTC"

[[stage]]
id = "inquiry"

[[stage]]
id = "mql"
# qualified when fit and engagement are high
entry = "score.fit >= && score.engagement > 10"
"#;
    let out = rendered(src);
    assert_eq!(out.len(), 1, "{out:?}");
    // `entry = "` is 9 characters; the CEL parser stops at the `&&` (offset 13).
    assert!(
        out[0].starts_with("pb.toml:12:23: error: invalid CEL expression"),
        "{out:?}"
    );
    assert!(Playbook::load(src).has_errors());
}

#[test]
fn unknown_keys_are_errors_with_their_place() {
    let src = "[company]\nname = \"X\"\ncurrency = \"USD\"\ntimezone = \"UTC\"\ncolour = \"red\"\n";
    let out = rendered(src);
    assert_eq!(out.len(), 1);
    assert!(
        out[0].starts_with("pb.toml:5:1: error: unknown field `colour`"),
        "{out:?}"
    );
}

const BASE: &str = r#"[company]
name = "X"
currency = "USD"
timezone = "UTC"
[[stage]]
id = "inquiry"
[[stage]]
id = "mql"
entry = "score.fit > 10"
[[stage]]
id = "recycled"
kind = "recycle"
[[stage]]
id = "disqualified"
kind = "terminal"
"#;

#[test]
fn base_is_clean() {
    assert_eq!(rendered(BASE), Vec::<String>::new());
}

#[test]
fn duplicate_ids_are_errors() {
    let src = format!("{BASE}[[stage]]\nid = \"mql\"\n");
    let out = rendered(&src);
    assert_eq!(out, ["pb.toml:17:6: error: duplicate stage id `mql`"]);
}

#[test]
fn unknown_references_are_errors() {
    let src = format!(
        "{BASE}[[reason]]\ncode = \"x\"\napplies_to = [\"rejected\"]\n\
         [sla.sales]\nstage = \"sal\"\nfirst_response_hours = 0\nattempts = -1\nattempts_within_days = 14\n\
         [[goal]]\nmetric = \"mqls\"\nperiod = \"week\"\ntarget = 10\nowner = \"marketing\"\npersona = \"cfo\"\n"
    );
    let out = rendered(&src);
    let expected = [
        "pb.toml:18:15: error: reason `x` applies to unknown stage `rejected`",
        "pb.toml:20:9: error: unknown stage `sal` in [sla.sales]",
        "pb.toml:21:24: error: first_response_hours must be a positive number, got 0",
        "pb.toml:22:12: error: attempts must be a positive number, got -1",
        "pb.toml:29:11: error: unknown persona `cfo`",
    ];
    assert_eq!(out, expected);
}

#[test]
fn unknown_metric_and_missing_owner() {
    let src =
        format!("{BASE}[[goal]]\nmetric = \"leads_galore\"\nperiod = \"quarter\"\ntarget = 5\n");
    let out = rendered(&src);
    assert_eq!(out.len(), 2, "{out:?}");
    assert!(out[0].starts_with("pb.toml:16:1: warning: goal `leads_galore` has no owner team"));
    assert!(out[1].starts_with("pb.toml:17:10: error: unknown metric `leads_galore`"));
}

#[test]
fn unknown_cel_variable_is_an_error() {
    let src = format!("{BASE}[[segment]]\nid = \"big\"\nmatch = \"company.size > 10\"\n");
    let out = rendered(&src);
    assert_eq!(out.len(), 1);
    assert!(
        out[0].starts_with("pb.toml:18:10: error: unknown variable `company`"),
        "{out:?}"
    );
}

#[test]
fn unreachable_stage_is_a_warning() {
    let src = format!(
        "{BASE}[[stage]]\nid = \"expansion\"\nfrom = [\"churned\"]\n[[stage]]\nid = \"churned\"\nkind = \"terminal\"\nfrom = [\"expansion\"]\n"
    );
    let loaded = Playbook::load(&src);
    let out = rendered(&src);
    assert!(!loaded.has_errors(), "{out:?}");
    assert_eq!(
        out,
        [
            "pb.toml:17:6: warning: stage `expansion` is unreachable from the first stage `inquiry`",
            "pb.toml:20:6: warning: stage `churned` is unreachable from the first stage `inquiry`",
        ]
    );
}

#[test]
fn bad_timezone_and_currency() {
    let src = BASE
        .replace("\"USD\"", "\"DOLLARS\"")
        .replace("\"UTC\"", "\"Mars/Olympus\"");
    let out = rendered(&src);
    assert_eq!(out.len(), 2, "{out:?}");
    assert!(out[0].contains("3:12: error: invalid currency"));
    assert!(out[1].contains("4:12: error: unknown timezone `Mars/Olympus`"));
}

#[test]
fn garbage_never_panics() {
    for src in ["", "[", "company = 5", "\u{0}", "[[stage]]\nid = 1", "[company]\nname=\"\"\ncurrency=\"USD\"\ntimezone=\"UTC\"\n[[stage]]\nid=\"a\"\nentry=\"'''\""] {
        let loaded = Playbook::load(src);
        assert!(loaded.has_errors(), "{src:?}");
    }
}
