//! Hand-built accounts with hand-computed coverage, stages, engagement,
//! suggestions, tiers and onboarding clocks. The starter playbook defines
//! the committee roles economic_buyer (persona executive), champion
//! (persona ops_leader), technical_evaluator (title data|analytics|engineer)
//! and user (persona practitioner, min 2).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::lifecycle::{advance, churn, AccountFacts, ChurnError, CUSTOMER, ENGAGED};
use super::sla::onboarding;
use super::tiers::{tiers, AccountStat, NON_TARGET};
use super::*;
use crate::domain::{Activity, ActivityKind, Deal, DealStatus, PersonTexts, Subject, Transition};
use crate::lifecycle::Move;
use crate::metrics::Window;
use crate::money::{Currency, Money};
use crate::playbook::STARTER;
use crate::sla::ClockStatus;
use crate::time::DAY_MS;

fn pb() -> Playbook {
    let loaded = Playbook::load(STARTER);
    assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
    loaded.playbook.unwrap()
}

fn day(n: i64) -> Timestamp {
    Timestamp::from_millis(n * DAY_MS)
}

fn person(id: i64, title: &str) -> Person {
    Person {
        id,
        texts: PersonTexts::new(&format!("p{id}"), None, None, None),
        title: Some(title.into()),
        account_id: Some(1),
        ..Person::default()
    }
}

fn account(id: i64, industry: &str, employees: i64, target: bool) -> Account {
    Account {
        id,
        external_id: format!("a{id}"),
        industry: Some(industry.into()),
        employees: Some(employees),
        target,
        tier: target.then_some(1),
        ..Account::default()
    }
}

fn deal(id: i64, kind: &str, status: DealStatus, created: i64, closed: Option<i64>) -> Deal {
    Deal {
        id,
        external_id: format!("d{id}"),
        account_id: Some(1),
        person_id: None,
        name: None,
        amount: Money {
            minor: 1_000_00,
            currency: Currency::parse("USD").unwrap(),
        },
        created_at: day(created),
        closed_at: closed.map(day),
        status,
        lost_reason: (status == DealStatus::Lost).then(|| "price".into()),
        owner: None,
        kind: kind.into(),
    }
}

fn pt(person: i64, to: &str, at: i64) -> Transition {
    Transition {
        seq: at,
        subject: Subject::Person(person),
        from: None,
        to: to.into(),
        at: day(at),
        actor: "system".into(),
        reason: None,
        note: None,
        cycle: 1,
        skipped: false,
    }
}

fn stored(moves: &[Move]) -> Vec<Transition> {
    moves
        .iter()
        .enumerate()
        .map(|(i, m)| m.to_transition(Subject::Account(1), i as i64 + 1))
        .collect()
}

#[test]
fn committee_coverage_lists_contacts_and_gaps() {
    let pb = pb();
    let acc = account(1, "fintech", 800, true);
    let people = [
        person(1, "Chief Financial Officer"), // executive → economic_buyer
        person(2, "Head of Operations"),      // ops_leader → champion
        person(3, "Data Analyst"),            // practitioner → user; data → technical_evaluator
        person(4, "Coordinator"),             // no role
    ];
    let refs: Vec<&Person> = people.iter().collect();
    let c = coverage(&pb, &acc, &refs);
    let got: Vec<(&str, Vec<&str>, bool)> = c
        .roles
        .iter()
        .map(|r| {
            (
                r.role.as_str(),
                r.contacts.iter().map(String::as_str).collect(),
                r.covered,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("economic_buyer", vec!["p1"], true),
            ("champion", vec!["p2"], true),
            ("technical_evaluator", vec!["p3"], true),
            // One practitioner, two needed.
            ("user", vec!["p3"], false),
        ]
    );
    assert_eq!(c.missing, ["user"]);
    assert_eq!(c.share, Some(0.75));
    // No contacts: every role missing, share 0.
    let empty = coverage(&pb, &acc, &[]);
    assert_eq!(empty.missing.len(), 4);
    assert_eq!(empty.share, Some(0.0));
}

#[test]
fn account_stages_from_people_and_deals() {
    let pb = pb();
    let pts = [
        pt(1, "inquiry", 3),
        pt(1, "mql", 5),
        pt(2, "opportunity", 12),
    ];
    let activities = [Activity {
        id: 1,
        external_id: None,
        person_id: 1,
        at: day(6),
        kind: ActivityKind::Meeting,
        actor: None,
        outcome: None,
    }];
    let deals = [
        deal(1, "new", DealStatus::Won, 10, Some(20)),
        deal(2, "expansion", DealStatus::Won, 40, Some(50)),
        deal(3, "renewal", DealStatus::Lost, 380, Some(400)),
        deal(4, "new", DealStatus::Won, 450, Some(500)),
    ];
    let facts = AccountFacts {
        targeted_at: Some(day(1)),
        people_transitions: &pts,
        activities: &activities,
        deals: &deals,
    };
    let moves = advance(&pb, &facts, &[], day(1000));
    type Row<'a> = (Option<&'a str>, &'a str, i64, Option<&'a str>, u32);
    let got: Vec<Row<'_>> = moves
        .iter()
        .map(|m| {
            (
                m.from.as_deref(),
                m.to.as_str(),
                m.at.millis() / DAY_MS,
                m.reason.as_deref(),
                m.cycle,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (None, "target", 1, None, 1),
            // MQL entry on day 5 (the meeting on day 6 changes nothing).
            (Some("target"), "engaged", 5, None, 1),
            // The new deal created on day 10 (the person's opportunity
            // entry on day 12 changes nothing).
            (Some("engaged"), "opportunity", 10, None, 1),
            (Some("opportunity"), "customer", 20, None, 1),
            (Some("customer"), "expansion", 50, None, 1),
            (Some("expansion"), "churned", 400, Some("price"), 1),
            // The win-back is a new cycle.
            (Some("churned"), "customer", 500, None, 2),
        ]
    );
    // Idempotent: with the moves stored, nothing more to append.
    assert!(advance(&pb, &facts, &stored(&moves), day(1000)).is_empty());
    // Nothing after `until` is read; a later run continues from there.
    let early = advance(&pb, &facts, &[], day(30));
    assert_eq!(early.last().map(|m| m.to.as_str()), Some(CUSTOMER));
    let rest = advance(&pb, &facts, &stored(&early), day(1000));
    assert_eq!(early.len() + rest.len(), moves.len());
}

#[test]
fn an_untargeted_account_starts_where_its_history_starts() {
    let pb = pb();
    let pts = [pt(1, "sql", 7)];
    let facts = AccountFacts {
        targeted_at: None,
        people_transitions: &pts,
        activities: &[],
        deals: &[],
    };
    let moves = advance(&pb, &facts, &[], day(100));
    assert_eq!(moves.len(), 1);
    assert_eq!((moves[0].to.as_str(), moves[0].at), (ENGAGED, day(7)));
}

#[test]
fn manual_churn_needs_a_customer_and_a_reason() {
    let pb = pb();
    let deals = [deal(1, "new", DealStatus::Won, 10, Some(20))];
    let facts = AccountFacts {
        targeted_at: None,
        people_transitions: &[],
        activities: &[],
        deals: &deals,
    };
    let moves = advance(&pb, &facts, &[], day(100));
    let history = stored(&moves);
    assert_eq!(
        churn(&[], day(30), "amy", "budget", None),
        Err(ChurnError::NotCustomer("not in the lifecycle yet".into()))
    );
    assert_eq!(
        churn(&history, day(30), "amy", " ", None),
        Err(ChurnError::NoReason)
    );
    assert!(matches!(
        churn(&history, day(5), "amy", "budget", None),
        Err(ChurnError::BeforeLast { .. })
    ));
    let m = churn(&history, day(30), "amy", "budget", None).unwrap();
    assert_eq!(
        (m.from.as_deref(), m.to.as_str(), m.reason.as_deref()),
        (Some("customer"), "churned", Some("budget"))
    );
}

#[test]
fn account_engagement_sums_its_people() {
    let pb = pb();
    let people = [person(1, "x"), person(2, "y")];
    let t = |id: i64, person_id: i64, kind: &str, at: i64| Touch {
        id,
        person_id,
        at: day(at),
        kind: kind.into(),
        ..Touch::default()
    };
    // Person 1: demo_request (40) today; person 2: webinar (15) one
    // half-life (30 days) ago → 7.5. Person 3 is not at the account.
    let touches = [
        t(1, 1, "demo_request", 100),
        t(2, 2, "webinar", 70),
        t(3, 3, "demo_request", 100),
    ];
    let refs: Vec<&Person> = people.iter().collect();
    let trefs: Vec<&Touch> = touches.iter().collect();
    let e = engagement(&pb, &refs, &trefs, day(100));
    assert!((e - 47.5).abs() < 1e-9, "{e}");
}

#[test]
fn suggestions_follow_the_first_matching_list_rule() {
    let pb = pb();
    let accounts = [
        account(1, "fintech", 600, false),   // fintech_enterprise, tier 1
        account(2, "fintech", 600, true),    // already a target
        account(3, "software", 5000, false), // software_enterprise, tier 2
        account(4, "retail", 1000, false),   // large_accounts, tier 3
        account(5, "fintech", 100, false),   // no rule
    ];
    let got: Vec<(i64, String, i64)> = suggest(&pb, &accounts)
        .into_iter()
        .map(|s| (s.account_id, s.list, s.tier))
        .collect();
    assert_eq!(
        got,
        [
            (1, "fintech_enterprise".into(), 1),
            (3, "software_enterprise".into(), 2),
            (4, "large_accounts".into(), 3)
        ]
    );
}

#[test]
fn tier_table_compares_targets_with_the_rest() {
    let stat = |id, tier, coverage, engagement| AccountStat {
        account_id: id,
        tier,
        coverage,
        engagement,
    };
    let stats = [
        stat(1, Some(1), Some(0.5), 40.0),
        stat(2, Some(1), Some(1.0), 20.0),
        stat(3, None, Some(0.0), 6.0),
    ];
    let mut deals = vec![
        deal(1, "new", DealStatus::Won, 10, Some(30)), // 20 days
        deal(2, "new", DealStatus::Lost, 12, Some(40)),
        deal(3, "new", DealStatus::Open, 15, None),
        deal(4, "new", DealStatus::Won, 5, Some(15)), // account 2, 10 days
        deal(5, "new", DealStatus::Lost, 20, Some(50)), // account 3
        deal(6, "new", DealStatus::Won, 300, Some(310)), // outside the window
        deal(7, "renewal", DealStatus::Won, 20, Some(80)), // not new business
    ];
    deals[3].account_id = Some(2);
    deals[4].account_id = Some(3);
    let rows = tiers(
        &stats,
        &deals,
        Window::new(day(0), day(100)).unwrap(),
        day(200),
    );
    assert_eq!(rows.len(), 2);
    let t1 = &rows[0];
    assert_eq!((t1.tier.as_str(), t1.accounts), ("tier 1", 2));
    assert_eq!((t1.coverage, t1.engagement), (Some(0.75), Some(30.0)));
    // Created in the window: deals 1–4, 1,000.00 each.
    assert_eq!(t1.pipeline, 4_000_00);
    assert_eq!((t1.won, t1.revenue_won), (2, 2_000_00));
    assert!((t1.win_rate.unwrap() - 2.0 / 3.0).abs() < 1e-12);
    assert_eq!(t1.velocity_days, Some(15.0));
    let rest = &rows[1];
    assert_eq!(
        (rest.tier.as_str(), rest.win_rate, rest.pipeline),
        (NON_TARGET, Some(0.0), 1_000_00)
    );
}

#[test]
fn onboarding_clock_counts_business_days() {
    let pb = pb();
    let sla = pb.sla.account_management.clone().unwrap();
    assert_eq!(sla.onboarding_days, 5.0);
    let at = |s: &str| Timestamp::parse(s).unwrap();
    // Customer on Monday 2026-11-02 10:00 New York (15:00 UTC). Five
    // business days of 8 hours: 7 h Monday, 8 h Tue–Fri (39 h), 1 h on
    // Monday 2026-11-09 → 10:00 New York = 15:00 UTC.
    let tr = |t: Timestamp| Transition {
        seq: 1,
        subject: Subject::Account(1),
        from: Some("opportunity".into()),
        to: "customer".into(),
        at: t,
        actor: "system".into(),
        reason: None,
        note: None,
        cycle: 1,
        skipped: false,
    };
    let act = |kind, t: &str| Activity {
        id: 1,
        external_id: None,
        person_id: 1,
        at: at(t),
        kind,
        actor: None,
        outcome: None,
    };
    let entered = at("2026-11-02T15:00:00Z");
    let acts = [
        act(ActivityKind::Email, "2026-11-03T15:00:00Z"), // not an agreed kind
        act(ActivityKind::Meeting, "2026-11-06T15:00:00Z"),
    ];
    let clocks = onboarding(
        &sla,
        &pb.company,
        1,
        &[tr(entered)],
        &acts,
        at("2026-12-01T00:00:00Z"),
    );
    assert_eq!(clocks[0].deadline, at("2026-11-09T15:00:00Z"));
    assert_eq!(clocks[0].status, ClockStatus::Met);
    // Only the email: breached once the deadline passed, open before.
    let late = onboarding(
        &sla,
        &pb.company,
        1,
        &[tr(entered)],
        &acts[..1],
        at("2026-11-09T15:00:00Z"),
    );
    assert_eq!(late[0].status, ClockStatus::Breached);
    let open = onboarding(
        &sla,
        &pb.company,
        1,
        &[tr(entered)],
        &acts[..1],
        at("2026-11-09T14:00:00Z"),
    );
    assert_eq!(open[0].status, ClockStatus::Open);
}

#[test]
fn account_playbook_sections_are_checked_with_positions() {
    let base = STARTER.to_string();
    let src = format!(
        "{base}\n[[account_lists]]\nid = \"bad\"\ntier = 4\nmatch = \"person.title == 'x'\"\n\n[[buying_committee.roles]]\nid = \"both\"\npersona = \"nobody\"\n"
    );
    let loaded = Playbook::load(&src);
    let msgs: Vec<String> = loaded
        .diagnostics
        .iter()
        .map(|d| d.render("pb.toml", &src))
        .collect();
    let lines = base.lines().count();
    let has = |line: usize, text: &str| {
        msgs.iter()
            .any(|m| m.starts_with(&format!("pb.toml:{line}:")) && m.contains(text))
    };
    assert!(has(lines + 4, "tier must be 1, 2 or 3, got 4"), "{msgs:?}");
    assert!(has(lines + 5, "person"), "{msgs:?}");
    assert!(has(lines + 9, "unknown persona `nobody`"), "{msgs:?}");
    assert!(loaded.playbook.is_none());
}
