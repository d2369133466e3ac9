//! Tests of the metrics module on small hand-built histories. Expected values
//! are worked out by hand in the comments. The starter playbook's funnel is
//! inquiry → mql → sal → sql → opportunity → customer, with the off-ramps
//! `recycled` (recycle) and `disqualified` (terminal). Times are whole days
//! after the epoch (`day(n)`).

use crate::Sym;
use std::collections::BTreeMap;

use proptest::prelude::*;

use super::gaps::{alignment_gaps, DEFAULT_THRESHOLD};
use super::index::HistoryIndex;
use super::plan::{
    average_won_deal_size, historic_median_days, historic_median_days_for, historic_rates,
    historic_rates_for, reverse_waterfall, won_stage,
};
use super::scorecard::{actuals_over, metric_actuals, pace, PaceStatus};
use super::waterfall::{
    current_stage_counts, flow_counts, stage_entries, waterfall, ExitCount, FlowCounts,
    ReplayBuilder, WaterfallOptions,
};
use super::*;
use crate::activities::Activities;
use crate::domain::{Activity, ActivityKind, Deal, DealStatus, Subject, Touch, Transition};
use crate::money::{Currency, Money};
use crate::playbook::{Goal, Period, Playbook, STARTER};
use crate::time::DAY_MS;
use crate::touches::Touches;
use crate::transitions::{TransitionRef, Transitions};

fn pb() -> Playbook {
    Playbook::load(STARTER)
        .playbook
        .expect("starter playbook loads")
}

fn day(n: i64) -> Timestamp {
    Timestamp::from_millis(n * DAY_MS)
}

fn win(from: i64, to: i64) -> Window {
    Window::new(day(from), day(to)).expect("non-empty window")
}

/// Builds a history of transitions; `from` is the person's previous stage.
#[derive(Default)]
struct H {
    v: Transitions,
}

impl H {
    fn push(&mut self, p: i64, to: &str, d: i64, cycle: u32, skipped: bool, reason: Option<&str>) {
        let from = self
            .v
            .iter()
            .filter(|t| t.subject == Subject::Person(p))
            .last()
            .map(|t| t.to);
        self.v.push(Transition {
            seq: self.v.len() as i64 + 1,
            subject: Subject::Person(p),
            from,
            to: to.into(),
            at: day(d),
            actor: "test".into(),
            reason: reason.map(Sym::from),
            note: None,
            cycle,
            skipped,
        });
    }
    /// A normal move in cycle 1.
    fn mv(&mut self, p: i64, to: &str, d: i64) -> &mut Self {
        self.push(p, to, d, 1, false, None);
        self
    }
    /// A move in cycle `c`.
    fn mvc(&mut self, p: i64, to: &str, d: i64, c: u32) -> &mut Self {
        self.push(p, to, d, c, false, None);
        self
    }
    fn skip(&mut self, p: i64, to: &str, d: i64) -> &mut Self {
        self.push(p, to, d, 1, true, None);
        self
    }
    fn off(&mut self, p: i64, to: &str, d: i64, c: u32, reason: &str) -> &mut Self {
        self.push(p, to, d, c, false, Some(reason));
        self
    }
}

/// A move of `subject` to `to` on day `d` in `cycle`, not skipped.
fn moved(
    seq: i64,
    subject: Subject,
    from: Option<&str>,
    to: &str,
    d: i64,
    cycle: u32,
) -> Transition {
    Transition {
        seq,
        subject,
        from: from.map(Sym::from),
        to: to.into(),
        at: day(d),
        actor: "test".into(),
        reason: None,
        note: None,
        cycle,
        skipped: false,
    }
}

fn usd(minor: i64) -> Money {
    Money {
        minor,
        currency: Currency::parse("USD").expect("USD"),
    }
}

fn deal(
    id: i64,
    person: i64,
    minor: i64,
    created: i64,
    closed: Option<i64>,
    status: DealStatus,
    reason: Option<&str>,
) -> Deal {
    Deal {
        id,
        external_id: format!("d{id}"),
        account_id: None,
        person_id: Some(person),
        name: None,
        amount: usd(minor),
        created_at: day(created),
        closed_at: closed.map(day),
        status,
        lost_reason: reason.map(Sym::from),
        owner: None,
        kind: "new".into(),
    }
}

fn row<'a>(w: &'a waterfall::GroupWaterfall, stage: &str) -> &'a waterfall::StageRow {
    w.stages
        .iter()
        .find(|s| s.stage == stage)
        .expect("stage row")
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

/// Cohort vs flow on one history, window [10, 20), as_of 100:
/// - P1: inquiry 5, mql 12, sal 15 — entered inquiry before the window: not
///   in the cohort, but its mql and sal entries are in the flow.
/// - P2: inquiry 11, mql 25, sal 30 — in the cohort; mql/sal after the window.
/// - P3: inquiry 12, mql 13.
/// - P4: inquiry 19.
/// - P5: inquiry 1, mql 14.
///
/// Cohort (inquiry in window = P2, P3, P4): inquiry 3, mql 2 (P2, P3), sal 1
/// (P2), sql 0 → conversions 2/3, 1/2, 0; cumulative at sal 1/3.
/// Flow: inquiry 3 (P2, P3, P4), mql 3 (P1, P3, P5), sal 1 (P1) → ratios
/// mql/inquiry 1, sal/mql 1/3.
#[test]
fn cohort_and_flow_differ_on_the_same_data() {
    let mut h = H::default();
    h.mv(1, "inquiry", 5).mv(1, "mql", 12).mv(1, "sal", 15);
    h.mv(2, "inquiry", 11).mv(2, "mql", 25).mv(2, "sal", 30);
    h.mv(3, "inquiry", 12).mv(3, "mql", 13);
    h.mv(4, "inquiry", 19);
    h.mv(5, "inquiry", 1).mv(5, "mql", 14);
    let opts = WaterfallOptions::new(win(10, 20), day(100));
    let w = waterfall(&pb(), &h.v, &[], &opts).unwrap();
    assert_eq!(w.groups.len(), 1);
    let g = &w.groups[0];
    assert_eq!(g.group, ALL);
    assert_eq!(g.cohort_size, 3);
    let cohort: Vec<Option<u64>> = g.stages.iter().map(|s| s.cohort).collect();
    assert_eq!(
        cohort,
        [Some(3), Some(2), Some(1), Some(0), Some(0), Some(0)]
    );
    let flow: Vec<u64> = g.stages.iter().map(|s| s.flow).collect();
    assert_eq!(flow, [3, 3, 1, 0, 0, 0]);
    assert!(close(row(g, "mql").conversion.unwrap(), 2.0 / 3.0));
    assert!(close(row(g, "sal").conversion.unwrap(), 0.5));
    assert!(close(row(g, "sal").cumulative.unwrap(), 1.0 / 3.0));
    assert_eq!(row(g, "sql").conversion, Some(0.0));
    assert_eq!(row(g, "opportunity").conversion, None); // 0 / 0
    assert_eq!(row(g, "inquiry").flow_ratio, None);
    assert!(close(row(g, "mql").flow_ratio.unwrap(), 1.0));
    assert!(close(row(g, "sal").flow_ratio.unwrap(), 1.0 / 3.0));
    assert_eq!(g.end_to_end, Some(0.0));
    // Every velocity pair is listed; sql→opportunity had no one.
    assert_eq!(g.velocity.len(), 6);
    assert_eq!((g.velocity[3].from.as_str(), g.velocity[3].n), ("sql", 0));
    assert_eq!(g.velocity[3].median_days, None);

    // Historic plan inputs from this cohort: 2/3, 1/2, 0, then 0/0.
    let rates = historic_rates(g);
    assert_eq!(rates.len(), 5);
    assert!(close(rates[0].unwrap(), 2.0 / 3.0));
    assert_eq!(rates[2], Some(0.0));
    assert_eq!(rates[3], None);

    // Nothing after as_of: with as_of 24 P2 has not reached mql yet.
    let opts = WaterfallOptions::new(win(10, 20), day(24));
    let w = waterfall(&pb(), &h.v, &[], &opts).unwrap();
    assert_eq!(row(&w.groups[0], "mql").cohort, Some(1));
}

/// Window boundary: an entry exactly at `from` (day 10) is in, one exactly at
/// `to` (day 20) is out.
#[test]
fn window_is_half_open() {
    let mut h = H::default();
    h.mv(1, "inquiry", 10)
        .mv(2, "inquiry", 20)
        .mv(3, "inquiry", 9);
    let opts = WaterfallOptions::new(win(10, 20), day(100));
    let w = waterfall(&pb(), &h.v, &[], &opts).unwrap();
    let g = &w.groups[0];
    assert_eq!(g.cohort_size, 1);
    assert_eq!(row(g, "inquiry").flow, 1);
    assert!(win(10, 20).contains(day(10)));
    assert!(!win(10, 20).contains(day(20)));
}

/// Recycled cycles. P1 cycle 1: inquiry 1, mql 2, recycled 3 (no_response);
/// cycle 2: mql 5, sal 6. P2: inquiry 1, mql 4. Window [0, 10).
/// Cohort at mql, cycles: (P1,1) mql 2, (P1,2) mql 5, (P2,1) mql 4 → 3;
/// sal: only (P1,2) → 1. Unique: P1, P2 → 2; sal: P1 (its furthest cycle) → 1.
/// Cohort at inquiry: cycle 2 has no inquiry entry → cycles (P1,1), (P2,1):
/// 2 at inquiry, 2 at mql, 0 at sal (cycle 1 of P1 never reached sal).
/// Flow mql: 3 cycles, 2 people. Leakage: mql → recycled/no_response 1.
#[test]
fn recycled_cycles_count_as_cycles_unless_unique() {
    let mut h = H::default();
    h.mv(1, "inquiry", 1)
        .mv(1, "mql", 2)
        .off(1, "recycled", 3, 1, "no_response");
    h.mvc(1, "mql", 5, 2).mvc(1, "sal", 6, 2);
    h.mv(2, "inquiry", 1).mv(2, "mql", 4);
    let mut opts = WaterfallOptions::new(win(0, 10), day(100));
    opts.cohort_stage = Some("mql".into());
    let w = waterfall(&pb(), &h.v, &[], &opts).unwrap();
    let g = &w.groups[0];
    assert_eq!(g.cohort_size, 3);
    assert_eq!(row(g, "inquiry").cohort, None);
    assert_eq!(row(g, "sal").cohort, Some(1));
    assert_eq!(row(g, "mql").flow, 3);
    assert_eq!(g.leakage.len(), 1);
    assert_eq!(g.leakage[0].stage, "mql");
    assert_eq!(g.leakage[0].total, 1);
    assert_eq!(
        g.leakage[0].exits,
        [ExitCount {
            to: "recycled".into(),
            reason: "no_response".into(),
            count: 1
        }]
    );

    opts.unique = true;
    let w = waterfall(&pb(), &h.v, &[], &opts).unwrap();
    let g = &w.groups[0];
    assert_eq!(g.cohort_size, 2);
    assert_eq!(row(g, "sal").cohort, Some(1));
    assert_eq!(row(g, "mql").flow, 2);

    let opts = WaterfallOptions::new(win(0, 10), day(100));
    let w = waterfall(&pb(), &h.v, &[], &opts).unwrap();
    let g = &w.groups[0];
    let cohort: Vec<Option<u64>> = g.stages.iter().map(|s| s.cohort).collect();
    assert_eq!(cohort[..3], [Some(2), Some(2), Some(0)]);
}

/// Skipped stages. P1: inquiry 0, then straight to sql at 4 with mql and sal
/// recorded as skipped at 4. P2: inquiry 0, opportunity 8 with no skip
/// records (an import). Window [0, 10).
/// Cohort: both pass through mql, sal, sql; P2 also opportunity →
/// [2, 2, 2, 2, 1, 0]. Flow counts only recorded entries (skips included):
/// mql 1, sal 1, sql 1, opportunity 1.
/// Velocity inquiry→mql: P1 4 days, P2 8 days (inferred) → median 6;
/// mql→sal: 0 and 0.
#[test]
fn skipped_stages_count_as_passed_through() {
    let mut h = H::default();
    h.mv(1, "inquiry", 0)
        .skip(1, "mql", 4)
        .skip(1, "sal", 4)
        .mv(1, "sql", 4);
    h.mv(2, "inquiry", 0).mv(2, "opportunity", 8);
    let opts = WaterfallOptions::new(win(0, 10), day(100));
    let w = waterfall(&pb(), &h.v, &[], &opts).unwrap();
    let g = &w.groups[0];
    let cohort: Vec<Option<u64>> = g.stages.iter().map(|s| s.cohort).collect();
    assert_eq!(
        cohort,
        [Some(2), Some(2), Some(2), Some(2), Some(1), Some(0)]
    );
    let flow: Vec<u64> = g.stages.iter().map(|s| s.flow).collect();
    assert_eq!(flow, [2, 1, 1, 1, 1, 0]);
    let v = &g.velocity;
    assert_eq!(
        (v[0].from.as_str(), v[0].to.as_str(), v[0].n),
        ("inquiry", "mql", 2)
    );
    assert_eq!(v[0].median_days, Some(6.0));
    assert_eq!((v[1].from.as_str(), v[1].median_days), ("mql", Some(0.0)));
}

/// Velocity: five people enter inquiry at 0 and mql after 1, 2, 3, 4, 10
/// days. Sorted [1, 2, 3, 4, 10]: median 3; p90 by linear interpolation:
/// h = 4 × 0.9 = 3.6 → 4 + 0.6 × (10 − 4) = 7.6.
/// P1 goes on through every stage: sal 3, sql 6, opportunity 10, customer 20
/// → end to end inquiry→customer n 1, 20 days (last in the list).
#[test]
fn velocity_median_and_p90() {
    let mut h = H::default();
    for (p, d) in [(1, 1), (2, 2), (3, 3), (4, 4), (5, 10)] {
        h.mv(p, "inquiry", 0).mv(p, "mql", d);
    }
    h.mv(1, "sal", 3)
        .mv(1, "sql", 6)
        .mv(1, "opportunity", 10)
        .mv(1, "customer", 20);
    let opts = WaterfallOptions::new(win(0, 1), day(100));
    let w = waterfall(&pb(), &h.v, &[], &opts).unwrap();
    let g = &w.groups[0];
    let v0 = &g.velocity[0];
    assert_eq!(
        (v0.from.as_str(), v0.to.as_str(), v0.n),
        ("inquiry", "mql", 5)
    );
    assert!(close(v0.median_days.unwrap(), 3.0));
    assert!(close(v0.p90_days.unwrap(), 7.6));
    let e2e = g.velocity.last().unwrap();
    assert_eq!(
        (e2e.from.as_str(), e2e.to.as_str(), e2e.n),
        ("inquiry", "customer", 1)
    );
    assert_eq!(e2e.median_days, Some(20.0));
    assert_eq!(g.velocity.len(), 6); // 5 adjacent pairs + end to end
                                     // mql→sal 2 days (P1 only), used by the plan's deadlines.
    let md = historic_median_days(g);
    assert_eq!(md[1], Some(2.0));
    assert_eq!(g.end_to_end, Some(0.2));

    assert_eq!(percentile(&[4.0, 1.0, 3.0, 2.0], 50.0), Some(2.5));
    assert_eq!(percentile(&[7.0], 90.0), Some(7.0));
    assert_eq!(percentile(&[], 50.0), None);
}

/// Leakage in window [0, 10):
/// - P1 mql → disqualified (not_icp) at 2; P2 and P3 mql → recycled
///   (no_response) at 3 and 4; P4 inquiry → disqualified
///   (student_or_competitor) at 5; P5 mql → disqualified at 12 (outside).
///
/// → inquiry: 1 (disqualified/student_or_competitor); mql: 3
///   (disqualified/not_icp 1, recycled/no_response 2).
///
/// Deals lost closed in the window: D1 (competitor_won, 500.00) at 5, D2 (no
/// reason, 100.00) at 6; D3 lost at 15 and D4 won are not counted → 2 lost,
/// 600.00, by reason "(none)" 1, competitor_won 1.
#[test]
fn leakage_with_reasons_and_lost_deals() {
    let mut h = H::default();
    h.mv(1, "inquiry", 0)
        .mv(1, "mql", 1)
        .off(1, "disqualified", 2, 1, "not_icp");
    h.mv(2, "inquiry", 0)
        .mv(2, "mql", 1)
        .off(2, "recycled", 3, 1, "no_response");
    h.mv(3, "inquiry", 0)
        .mv(3, "mql", 1)
        .off(3, "recycled", 4, 1, "no_response");
    h.mv(4, "inquiry", 0)
        .off(4, "disqualified", 5, 1, "student_or_competitor");
    h.mv(5, "inquiry", 0)
        .mv(5, "mql", 1)
        .off(5, "disqualified", 12, 1, "not_icp");
    let deals = [
        deal(
            1,
            1,
            500_00,
            0,
            Some(5),
            DealStatus::Lost,
            Some("competitor_won"),
        ),
        deal(2, 2, 100_00, 0, Some(6), DealStatus::Lost, None),
        deal(
            3,
            3,
            100_00,
            0,
            Some(15),
            DealStatus::Lost,
            Some("no_budget"),
        ),
        deal(4, 4, 100_00, 0, Some(5), DealStatus::Won, None),
    ];
    let opts = WaterfallOptions::new(win(0, 10), day(100));
    let w = waterfall(&pb(), &h.v, &deals, &opts).unwrap();
    let g = &w.groups[0];
    assert_eq!(row(g, "inquiry").leaked, 1);
    assert_eq!(row(g, "mql").leaked, 3);
    assert_eq!(g.leakage.len(), 2);
    assert_eq!(g.leakage[0].stage, "inquiry");
    assert_eq!(
        g.leakage[0].exits,
        [ExitCount {
            to: "disqualified".into(),
            reason: "student_or_competitor".into(),
            count: 1
        }]
    );
    assert_eq!(g.leakage[1].stage, "mql");
    assert_eq!(g.leakage[1].total, 3);
    assert_eq!(
        g.leakage[1].exits,
        [
            ExitCount {
                to: "disqualified".into(),
                reason: "not_icp".into(),
                count: 1
            },
            ExitCount {
                to: "recycled".into(),
                reason: "no_response".into(),
                count: 2
            },
        ]
    );
    assert_eq!(g.lost.count, 2);
    assert_eq!(g.lost.amount_minor, 600_00);
    assert_eq!(
        g.lost.by_reason,
        [
            ExitCount {
                to: "lost".into(),
                reason: NONE.into(),
                count: 1
            },
            ExitCount {
                to: "lost".into(),
                reason: "competitor_won".into(),
                count: 1
            },
        ]
    );
}

/// Comparison columns, weekly window [28, 35): 1, 2, 3, 4 inquiries in the
/// four previous weeks and 5 in the current one → prev 4, trailing average
/// (4 + 3 + 2 + 1) / 4 = 2.5, for both cohort and flow.
#[test]
fn comparison_with_previous_and_trailing_average() {
    let mut h = H::default();
    let mut p = 0;
    for (week, n) in [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5)] {
        for _ in 0..n {
            p += 1;
            h.mv(p, "inquiry", week * 7 + 1);
        }
    }
    let opts = WaterfallOptions::new(win(28, 35), day(100));
    assert_eq!(opts.comparison[0], win(21, 28));
    assert_eq!(opts.comparison[3], win(0, 7));
    let w = waterfall(&pb(), &h.v, &[], &opts).unwrap();
    let r = row(&w.groups[0], "inquiry");
    assert_eq!(
        (r.cohort, r.prev_cohort, r.avg_cohort),
        (Some(5), Some(4), Some(2.5))
    );
    assert_eq!((r.flow, r.prev_flow, r.avg_flow), (5, Some(4), Some(2.5)));
}

/// Grouping by a map: P1, P2 in `smb`, P3 in `enterprise`, P4 unmapped →
/// groups sorted: "(none)" 1, enterprise 1, smb 2.
#[test]
fn grouping_by_map_sorts_groups() {
    let mut h = H::default();
    for p in 1..=4 {
        h.mv(p, "inquiry", 1);
    }
    let map: GroupKeys = [(1, "smb"), (2, "smb"), (3, "enterprise")]
        .into_iter()
        .collect();
    let mut opts = WaterfallOptions::new(win(0, 7), day(100));
    opts.grouping = Grouping::Map(&map);
    let w = waterfall(&pb(), &h.v, &[], &opts).unwrap();
    let got: Vec<(&str, u64)> = w
        .groups
        .iter()
        .map(|g| (g.group.as_str(), g.cohort_size))
        .collect();
    assert_eq!(got, [(NONE, 1), ("enterprise", 1), ("smb", 2)]);
    let f = |id: i64| (id % 2 == 0).then(|| "even".to_string());
    opts.grouping = Grouping::By(&f);
    let w = waterfall(&pb(), &h.v, &[], &opts).unwrap();
    let got: Vec<(&str, u64)> = w
        .groups
        .iter()
        .map(|g| (g.group.as_str(), g.cohort_size))
        .collect();
    assert_eq!(got, [(NONE, 2), ("even", 2)]);
    // Current pipeline: everyone is in inquiry.
    let cur = current_stage_counts(&pb(), &h.v, day(100), Grouping::All);
    assert_eq!(cur[ALL], [4, 0, 0, 0, 0, 0]);
}

fn goal(metric: &str, target: f64) -> Goal {
    Goal {
        id: format!("{metric}_quarter"),
        metric: metric.into(),
        period: Period::Quarter,
        target,
        owner: None,
        persona: None,
        segment: None,
    }
}

/// Pacing: 900 MQLs over a 90-day period, measured at day 30 (a third) →
/// expected 300. 330 → pace 1.1 ahead, projected 990; 290 → 0.967 on track;
/// 250 → 0.833 behind. 900 at day 60 → hit, celebrate.
/// Win rate 0.25 target, actual 0.30: expected stays 0.25, pace 1.2 ahead,
/// projected 0.30; celebrated only when the period is over.
#[test]
fn pacing_status_and_celebration() {
    let g = goal("mqls", 900.0);
    let w = win(0, 90);
    let p = pace(&g, w, day(30), Some(330.0));
    assert!(close(p.expected_to_date, 300.0));
    assert!(close(p.pace.unwrap(), 1.1));
    assert!(close(p.projected.unwrap(), 990.0));
    assert_eq!(p.status, PaceStatus::Ahead);
    assert!(!p.celebrate);
    assert_eq!(
        pace(&g, w, day(30), Some(290.0)).status,
        PaceStatus::OnTrack
    );
    assert_eq!(pace(&g, w, day(30), Some(250.0)).status, PaceStatus::Behind);
    assert!(pace(&g, w, day(60), Some(900.0)).celebrate);
    let before = pace(&g, w, day(-1), Some(0.0));
    assert_eq!((before.pace, before.status), (None, PaceStatus::OnTrack));

    let r = goal("win_rate", 0.25);
    let p = pace(&r, w, day(30), Some(0.30));
    assert!(close(p.expected_to_date, 0.25));
    assert!(close(p.pace.unwrap(), 1.2));
    assert_eq!(p.projected, Some(0.30));
    assert_eq!(p.status, PaceStatus::Ahead);
    assert!(!p.celebrate);
    assert!(pace(&r, w, day(90), Some(0.30)).celebrate);
    assert_eq!(PaceStatus::of(Some(1.05)), PaceStatus::Ahead);
    assert_eq!(PaceStatus::of(Some(0.95)), PaceStatus::OnTrack);
}

fn touch(id: i64, p: i64, kind: &str, d: i64) -> Touch {
    Touch {
        id,
        person_id: p,
        kind: kind.into(),
        at: day(d),
        ..Touch::default()
    }
}

fn activity(id: i64, p: i64, kind: ActivityKind, d: i64) -> Activity {
    Activity {
        id,
        external_id: None,
        person_id: p,
        at: day(d),
        kind,
        actor: None,
        outcome: None,
    }
}

/// Actual values in window [10, 20), as_of 100:
/// - web_visits 3 (a 4th at day 20 is outside), paid_clicks 2 (ad_click);
/// - calls 2, emails_sent 1, meetings 2 (meeting + demo);
/// - pipeline_created 100 + 200 (a deal created at 5 is outside);
///   revenue_won 1000, deals_won 1, win_rate 1 / (1 + 3) = 0.25;
/// - mqls 4, sals 3 → sal_rate 0.75;
/// - retention: C1 customer at 5 stays; C2 customer at 5, disqualified at 15;
///   C3 customer only at 12 (not a customer at the start); C4 customer at 3,
///   disqualified at 25 (after the end) → 2 of 3.
#[test]
fn metric_actuals_by_kind() {
    let pb = pb();
    let touches: Touches = [
        touch(1, 1, "web_visit", 10),
        touch(2, 1, "web_visit", 11),
        touch(3, 2, "web_visit", 19),
        touch(4, 2, "web_visit", 20),
        touch(5, 2, "ad_click", 12),
        touch(6, 3, "ad_click", 13),
    ]
    .into_iter()
    .collect();
    let activities: Activities = [
        activity(1, 1, ActivityKind::Call, 10),
        activity(2, 1, ActivityKind::Call, 11),
        activity(3, 1, ActivityKind::Email, 11),
        activity(4, 1, ActivityKind::Meeting, 12),
        activity(5, 1, ActivityKind::Demo, 13),
    ]
    .into_iter()
    .collect();
    let deals = [
        deal(1, 1, 100, 10, None, DealStatus::Open, None),
        deal(2, 2, 200, 12, Some(30), DealStatus::Won, None),
        deal(3, 3, 999, 5, None, DealStatus::Open, None),
        deal(4, 4, 1000, 1, Some(15), DealStatus::Won, None),
        deal(5, 5, 1, 1, Some(15), DealStatus::Lost, None),
        deal(6, 6, 1, 1, Some(16), DealStatus::Lost, None),
        deal(7, 7, 1, 1, Some(17), DealStatus::Lost, None),
    ];
    let mut h = H::default();
    for p in 1..=4 {
        h.mv(p, "mql", 11);
    }
    for p in 1..=3 {
        h.mv(p, "sal", 12);
    }
    h.mv(21, "customer", 5);
    h.mv(22, "customer", 5)
        .off(22, "disqualified", 15, 1, "no_budget");
    h.mv(23, "customer", 12);
    h.mv(24, "customer", 3)
        .off(24, "disqualified", 25, 1, "no_budget");
    let hist = History {
        transitions: &h.v,
        touches: &touches,
        activities: &activities,
        deals: &deals,
        ..History::default()
    };
    let get =
        |m: &str| metric_actuals(&pb, &hist, m, win(10, 20), day(100), Grouping::All).unwrap()[ALL];
    assert_eq!(get("web_visits"), Some(3.0));
    assert_eq!(get("paid_clicks"), Some(2.0));
    assert_eq!(get("email_opens"), Some(0.0));
    assert_eq!(get("calls"), Some(2.0));
    assert_eq!(get("emails_sent"), Some(1.0));
    assert_eq!(get("meetings"), Some(2.0));
    assert_eq!(get("pipeline_created"), Some(300.0));
    assert_eq!(get("revenue_won"), Some(1000.0));
    assert_eq!(get("deals_won"), Some(1.0));
    assert_eq!(get("win_rate"), Some(0.25));
    assert_eq!(get("mqls"), Some(4.0));
    assert_eq!(get("sals"), Some(3.0));
    assert_eq!(get("sal_rate"), Some(0.75));
    assert!(close(get("retention").unwrap(), 2.0 / 3.0));
    assert_eq!(
        metric_actuals(&pb, &hist, "nope", win(10, 20), day(100), Grouping::All),
        Err(MetricsError::UnknownMetric("nope".into()))
    );
}

/// The plan oracle (DESIGN §5): rates 10/85/60/30 %, deal 10,000, target
/// 1,000,000 → 100 won, 333.33 SQL, 555.56 SAL, 653.59 MQL, 6,535.95
/// inquiries. Deadlines with median days [10, 5, 20, 30] to a period end at
/// day 90: won 90, sql 60, sal 40, mql 35, inquiry 25.
#[test]
fn plan_oracle() {
    let stages: Vec<String> = ["inquiry", "mql", "sal", "sql", "won"]
        .map(String::from)
        .into();
    let plan = reverse_waterfall(1_000_000, 10_000, &stages, &[0.10, 0.85, 0.60, 0.30]).unwrap();
    let needed: Vec<f64> = plan
        .stages
        .iter()
        .map(|s| (s.needed * 100.0).round() / 100.0)
        .collect();
    assert_eq!(needed, [6535.95, 653.59, 555.56, 333.33, 100.0]);
    let plan = plan
        .with_deadlines(day(90), &[Some(10.0), Some(5.0), Some(20.0), Some(30.0)])
        .with_pipeline(&[1000.0, 100.0, 50.0, 20.0, 10.0]);
    let by: Vec<Option<Timestamp>> = plan.stages.iter().map(|s| s.enter_by).collect();
    assert_eq!(
        by,
        [
            Some(day(25)),
            Some(day(35)),
            Some(day(40)),
            Some(day(60)),
            Some(day(90))
        ]
    );
    assert!(close(plan.stages[4].gap.unwrap(), 90.0));
    assert!(close(plan.stages[3].gap.unwrap(), 100.0 / 0.3 - 20.0));
    // A missing velocity leaves everything upstream without a deadline.
    let plan = reverse_waterfall(100, 10, &stages[3..], &[0.5])
        .unwrap()
        .with_deadlines(day(9), &[None]);
    assert_eq!(
        (plan.stages[0].enter_by, plan.stages[1].enter_by),
        (None, Some(day(9)))
    );
    assert!(matches!(
        reverse_waterfall(1, 1, &stages, &[0.1]),
        Err(MetricsError::RateCount {
            stages: 5,
            rates: 1
        })
    ));
    assert!(matches!(
        reverse_waterfall(1, 1, &stages[3..], &[0.0]),
        Err(MetricsError::InvalidRate { index: 0, .. })
    ));
    assert!(reverse_waterfall(1, 0, &stages[3..], &[0.5]).is_err());
}

/// Alignment gaps in window [0, 30): MQLs A 5 (P1–P5), B 4 (P6–P9), C 1
/// (P10) of 10 → shares 0.5, 0.4, 0.1. Won revenue: A 100 (P1), B 300 (P6),
/// C 100 (P10) of 500 → 0.2, 0.6, 0.2; P7 (B) lost one. Gaps: A +0.3, B −0.2,
/// C −0.1; all flagged at 0.10, largest first: A, B, C. Win rates: A 1, B 0.5,
/// C 1. At threshold 0.25 only A is flagged.
#[test]
fn alignment_gaps_flag_divergent_groups() {
    let mut h = H::default();
    for p in 1..=10 {
        h.mv(p, "mql", 3);
    }
    let deals = [
        deal(1, 1, 100, 1, Some(20), DealStatus::Won, None),
        deal(2, 6, 300, 1, Some(20), DealStatus::Won, None),
        deal(3, 10, 100, 1, Some(20), DealStatus::Won, None),
        deal(4, 7, 900, 1, Some(20), DealStatus::Lost, Some("no_budget")),
    ];
    let seg = |p: i64| {
        Some(
            match p {
                1..=5 => "A",
                6..=9 => "B",
                _ => "C",
            }
            .to_string(),
        )
    };
    let hist = History {
        transitions: &h.v,
        deals: &deals,
        ..History::default()
    };
    let g = alignment_gaps(
        &hist,
        "mql",
        win(0, 30),
        day(100),
        Grouping::By(&seg),
        DEFAULT_THRESHOLD,
    );
    assert_eq!((g.total_mqls, g.total_revenue_won), (10, 500));
    let rows: Vec<(&str, f64, f64, f64)> = g
        .rows
        .iter()
        .map(|r| (r.group.as_str(), r.mql_share, r.revenue_share, r.gap))
        .collect();
    assert_eq!(rows.len(), 3);
    for ((name, m, r, gap), (en, em, er, egap)) in rows.iter().zip([
        ("A", 0.5, 0.2, 0.3),
        ("B", 0.4, 0.6, -0.2),
        ("C", 0.1, 0.2, -0.1),
    ]) {
        assert_eq!(*name, en);
        assert!(
            close(*m, em) && close(*r, er) && close(*gap, egap),
            "{name}"
        );
    }
    assert_eq!(g.rows[1].win_rate, Some(0.5));
    assert_eq!(g.flagged, ["A", "B", "C"]);
    let g = alignment_gaps(&hist, "mql", win(0, 30), day(100), Grouping::By(&seg), 0.25);
    assert_eq!(g.flagged, ["A"]);
}

/// Calendar periods in UTC and in the company timezone.
#[test]
fn period_windows() {
    let utc = jiff::tz::TimeZone::UTC;
    let t = Timestamp::parse("2026-05-14T12:00:00Z").unwrap(); // a Thursday
    let q = period_window(Period::Quarter, t, &utc).unwrap();
    assert_eq!(
        (q.from.to_string(), q.to.to_string()),
        ("2026-04-01T00:00:00Z".into(), "2026-07-01T00:00:00Z".into())
    );
    let w = period_window(Period::Week, t, &utc).unwrap();
    assert_eq!(w.from.to_string(), "2026-05-11T00:00:00Z");
    assert_eq!(w.len_ms(), 7 * DAY_MS);
    let m = period_window(Period::Month, t, &utc).unwrap();
    let prev = previous_periods(Period::Month, m, 2, &utc).unwrap();
    assert_eq!(prev[0].from.to_string(), "2026-04-01T00:00:00Z");
    assert_eq!(prev[1].to.to_string(), "2026-04-01T00:00:00Z");
    let ny = jiff::tz::TimeZone::get("America/New_York").unwrap();
    let m = period_window(Period::Month, t, &ny).unwrap();
    assert_eq!(m.from.to_string(), "2026-05-01T04:00:00Z"); // EDT midnight
}

proptest! {
    /// On arbitrary histories (random stages, cycles, times, even backward
    /// moves), cohort conversion rates are within 0..=1 and cohort counts
    /// never increase along the funnel.
    #[test]
    fn cohort_rates_in_unit_interval_and_counts_monotone(
        moves in prop::collection::vec((1i64..8, 0usize..8, 1u32..3, 0i64..60, any::<bool>()), 0..60),
        from in 0i64..40,
        len in 1i64..30,
        as_of in 0i64..80,
        cohort in 0usize..6,
        unique in any::<bool>(),
    ) {
        let ids = ["inquiry", "mql", "sal", "sql", "opportunity", "customer", "recycled", "disqualified"];
        let pb = pb();
        let transitions: Transitions = moves
            .iter()
            .enumerate()
            .map(|(i, &(p, s, cycle, d, skipped))| Transition {
                skipped,
                ..moved(i as i64, Subject::Person(p), None, ids[s], d, cycle)
            })
            .collect();
        let mut opts = WaterfallOptions::new(win(from, from + len), day(as_of));
        opts.cohort_stage = Some(ids[cohort].to_string());
        opts.unique = unique;
        let w = waterfall(&pb, &transitions, &[], &opts).unwrap();
        // Input order does not matter.
        let reversed: Transitions = transitions.to_vec().into_iter().rev().collect();
        prop_assert_eq!(&waterfall(&pb, &reversed, &[], &opts).unwrap(), &w);
        for g in &w.groups {
            let counts: Vec<u64> = g.stages.iter().filter_map(|s| s.cohort).collect();
            prop_assert_eq!(counts[0], g.cohort_size);
            for pair in counts.windows(2) {
                prop_assert!(pair[1] <= pair[0], "{:?}", counts);
            }
            for s in &g.stages {
                for r in [s.conversion, s.cumulative].into_iter().flatten() {
                    prop_assert!((0.0..=1.0).contains(&r), "{} {}", s.stage, r);
                }
            }
            if let Some(e) = g.end_to_end {
                prop_assert!((0.0..=1.0).contains(&e));
            }
            // The flow view agrees with the stand-alone entry count, in the
            // measured window and in every comparison window.
            for s in &g.stages {
                let e = stage_entries(&transitions, &s.stage, opts.window, opts.as_of, unique, Grouping::All);
                prop_assert_eq!(s.flow, e.get(ALL).copied().unwrap_or(0), "{}", s.stage);
                let past: Vec<u64> = opts
                    .comparison
                    .iter()
                    .map(|w| {
                        let e = stage_entries(&transitions, &s.stage, *w, opts.as_of, unique, Grouping::All);
                        e.get(ALL).copied().unwrap_or(0)
                    })
                    .collect();
                prop_assert_eq!(s.prev_flow, past.first().copied(), "{}", s.stage);
                let mean = past.iter().sum::<u64>() as f64 / past.len() as f64;
                prop_assert!(s.avg_flow.is_some_and(|a| close(a, mean)), "{} {:?}", s.stage, s.avg_flow);
            }
        }
    }
}

/// Flow by hand: person 1 enters mql and sal in the week and is recycled
/// from sal without a recorded `from`; person 2 enters mql twice (two
/// cycles) and is disqualified from mql; person 3 entered inquiry before the
/// week and is disqualified from it inside the week. Last week only person 3
/// entered inquiry.
#[test]
fn flow_counts_by_hand() {
    let pb = pb();
    let t = |p: i64, seq: i64, from: Option<&str>, to: &str, d: i64, cycle: u32| {
        moved(seq, Subject::Person(p), from, to, d, cycle)
    };
    let transitions = Transitions::from_iter([
        t(1, 1, None, "mql", 10, 1),
        t(1, 2, None, "sal", 11, 1),
        t(1, 3, None, "recycled", 12, 1),
        t(2, 1, None, "mql", 10, 1),
        t(2, 2, Some("mql"), "disqualified", 11, 1),
        t(2, 3, None, "mql", 12, 2),
        t(3, 1, None, "inquiry", 5, 1),
        t(3, 2, None, "disqualified", 13, 1),
    ]);
    let windows = [win(9, 16), win(2, 9)];
    let got = flow_counts(&pb, &transitions, &[], &windows, day(100), false).unwrap();
    // Funnel: inquiry, mql, sal, sql, opportunity, customer.
    assert_eq!(
        got,
        [
            FlowCounts {
                flow: vec![0, 3, 1, 0, 0, 0],
                leaked: vec![1, 1, 1, 0, 0, 0],
            },
            FlowCounts {
                flow: vec![1, 0, 0, 0, 0, 0],
                leaked: vec![0; 6],
            },
        ]
    );
    // People instead of cycles: person 2's two mql entries are one.
    let got = flow_counts(&pb, &transitions, &[], &windows, day(100), true).unwrap();
    assert_eq!(got[0].flow, [0, 2, 1, 0, 0, 0]);
    // Nothing in any window.
    assert_eq!(
        flow_counts(&pb, &transitions, &[], &[win(50, 57)], day(100), false),
        None
    );
}

/// The index's window is half-open at its end and stops at as-of.
#[test]
fn stage_entries_index_window_edges() {
    let mut h = H::default();
    h.mv(1, "mql", 10)
        .mv(2, "mql", 20)
        .mv(3, "mql", 15)
        .mv(4, "sal", 12);
    let ix = HistoryIndex::build(&h.v);
    let at =
        |es: &mut dyn Iterator<Item = super::index::Entry>| es.map(|e| e.at).collect::<Vec<_>>();
    assert_eq!(
        at(&mut ix.entries_within("mql", win(10, 20), day(100))),
        [day(10), day(15)]
    );
    assert_eq!(
        at(&mut ix.entries_within("mql", win(10, 21), day(15))),
        [day(10), day(15)]
    );
    assert_eq!(at(&mut ix.entries_within("mql", win(16, 19), day(100))), []);
    // An entry gives back its subject and cycle.
    let e = ix.entries_within("sal", win(0, 20), day(100)).next();
    assert_eq!(
        e.map(|e| (e.subject(), e.cycle())),
        Some((Subject::Person(4), 1))
    );
    let a = super::index::Entry::new(day(3), Subject::Account(9), 2);
    assert_eq!(
        (a.at, a.subject(), a.cycle()),
        (day(3), Subject::Account(9), 2)
    );
    assert_eq!(at(&mut ix.entries_within("mql", win(10, 21), day(5))), []);
    assert_eq!(
        at(&mut ix.entries_within("nurture", win(0, 99), day(100))),
        []
    );
    assert_eq!(ix.len(), 4);
}

/// The index keeps an entry in 13 bytes (time, four-byte id, one-byte
/// cycle and kind), and an id past four bytes reads back whole.
#[test]
fn an_index_entry_is_13_bytes_and_wide_ids_read_back() {
    let n = 10_000;
    let transitions: Transitions = (1..=n)
        .map(|p| moved(p, Subject::Person(p), None, "mql", p % 50, 1))
        .collect();
    let ix = HistoryIndex::build(&transitions);
    assert_eq!(ix.heap_bytes(), n as usize * 13);
    let wide = 5_000_000_000;
    let mut more = transitions;
    more.push(moved(n + 1, Subject::Account(wide), None, "mql", 3, 2));
    let ix = HistoryIndex::build(&more);
    let got: Vec<(Subject, u32)> = ix
        .entries_within("mql", win(3, 4), day(100))
        .map(|e| (e.subject(), e.cycle()))
        .filter(|&(_, c)| c == 2)
        .collect();
    assert_eq!(got, [(Subject::Account(wide), 2)]);
    assert_eq!(ix.len(), n as usize + 1);
}

proptest! {
    /// Stage entries read from the index equal the scan's, for people and
    /// accounts, cycles or people, any grouping, window and as-of.
    #[test]
    fn indexed_stage_entries_equal_the_scan(
        moves in prop::collection::vec((1i64..8, any::<bool>(), 0usize..4, 1u32..3, 0i64..60), 0..60),
        from in 0i64..50,
        len in 1i64..30,
        as_of in 0i64..70,
        stage in 0usize..5,
        unique in any::<bool>(),
        grouped in any::<bool>(),
    ) {
        let ids = ["inquiry", "mql", "sal", "recycled", "nurture"];
        let transitions: Transitions = moves
            .iter()
            .enumerate()
            .map(|(i, &(id, account, s, cycle, d))| {
                let subject = if account { Subject::Account(id) } else { Subject::Person(id) };
                moved(i as i64, subject, None, ids[s], d, cycle)
            })
            .collect();
        let parity = |p: i64| Some(if p % 2 == 0 { "even" } else { "odd" }.to_string());
        let grouping = if grouped { Grouping::By(&parity) } else { Grouping::All };
        let index = HistoryIndex::build(&transitions);
        let scan = History { transitions: &transitions, ..History::default() };
        let indexed = History { index: Some(&index), ..scan };
        let (w, at) = (win(from, from + len), day(as_of));
        let want = scan.stage_entries(ids[stage], w, at, unique, grouping);
        prop_assert_eq!(indexed.stage_entries(ids[stage], w, at, unique, grouping), want.clone());
        // In time order (as kept) the scan searches the window instead.
        let mut sorted = transitions.clone();
        sorted.sort();
        let in_order = History { transitions: &sorted, ..History::default() };
        prop_assert_eq!(in_order.stage_entries(ids[stage], w, at, unique, grouping), want);
        prop_assert_eq!(index.len(), transitions.len());
    }
}

proptest! {
    /// Retention followed only for the subjects the index shows entering a
    /// customer stage before the window equals retention over everyone.
    #[test]
    fn indexed_retention_equals_the_scan(
        moves in prop::collection::vec((1i64..8, 0usize..4, 0i64..60), 0..50),
        from in 0i64..50,
        len in 1i64..30,
        as_of in 0i64..70,
        grouped in any::<bool>(),
    ) {
        let pb = pb();
        let ids = ["opportunity", "customer", "recycled", "disqualified"];
        let mut h = H::default();
        for &(p, s, d) in &moves {
            h.mv(p, ids[s], d);
        }
        let parity = |p: i64| Some(if p % 2 == 0 { "even" } else { "odd" }.to_string());
        let grouping = if grouped { Grouping::By(&parity) } else { Grouping::All };
        let index = HistoryIndex::build(&h.v);
        let scan = History { transitions: &h.v, ..History::default() };
        let indexed = History { index: Some(&index), ..scan };
        let (w, at) = (win(from, from + len), day(as_of));
        prop_assert_eq!(
            metric_actuals(&pb, &indexed, "retention", w, at, grouping).unwrap(),
            metric_actuals(&pb, &scan, "retention", w, at, grouping).unwrap()
        );
    }
}

/// Transitions of random moves `(person, stage, cycle, day, from)`: the
/// stage indexes the starter's stages (an index past them is a stage the
/// funnel does not know), and `from` is recorded for a third of the
/// indexes (a funnel stage or an off-ramp; mostly none).
fn random_moves(moves: &[(i64, usize, u32, i64, usize)]) -> Transitions {
    let ids = [
        "inquiry",
        "mql",
        "sal",
        "sql",
        "opportunity",
        "customer",
        "recycled",
        "disqualified",
    ];
    moves
        .iter()
        .enumerate()
        .map(|(i, &(p, s, cycle, d, f))| {
            let from = ids.get(f).copied().filter(|_| f % 3 == 0);
            let to = ids.get(s).copied().unwrap_or("nurture");
            moved(i as i64, Subject::Person(p), from, to, d, cycle)
        })
        .collect()
}

proptest! {
    /// A replay built from transitions handed over one at a time, in any
    /// order (as a store streams them), gives the waterfall of the whole
    /// slice: the builder sorts by (subject, cycle, at, seq) itself.
    #[test]
    fn a_replay_built_in_any_order_gives_the_same_waterfall(
        moves in prop::collection::vec((1i64..8, 0usize..10, 1u32..3, 0i64..60, 0usize..10), 0..60),
        rotate in 0usize..60,
        reverse in any::<bool>(),
        as_of in 0i64..80,
        unique in any::<bool>(),
    ) {
        let pb = pb();
        let transitions = random_moves(&moves);
        let mut order: Vec<TransitionRef> = transitions.iter().collect();
        let rotate = rotate.min(order.len());
        order.rotate_left(rotate);
        if reverse {
            order.reverse();
        }
        let mut b = ReplayBuilder::new(&pb, day(as_of));
        for t in order {
            b.push(t);
        }
        let mut opts = WaterfallOptions::new(win(0, 70), day(as_of));
        opts.unique = unique;
        let whole = waterfall(&pb, &transitions, &[], &opts).unwrap();
        let built = b.finish().waterfall(&[], &opts).unwrap();
        prop_assert_eq!(serde_json::to_value(built).unwrap(), serde_json::to_value(whole).unwrap());
    }
}

proptest! {
    /// On arbitrary histories (random stages, cycles, times, recorded or
    /// missing `from`, lost deals), the flow-only count equals the full
    /// waterfall's flow and leakage columns, and has no rows exactly when
    /// the waterfall has no group.
    #[test]
    fn flow_counts_equal_the_waterfall(
        moves in prop::collection::vec((1i64..8, 0usize..8, 1u32..3, 0i64..60, 0usize..10), 0..60),
        lost in prop::collection::vec((1i64..8, 0i64..60), 0..3),
        from in 0i64..40,
        len in 1i64..15,
        as_of in 0i64..80,
        unique in any::<bool>(),
    ) {
        let pb = pb();
        let transitions = random_moves(&moves);
        let deals: Vec<Deal> = lost
            .iter()
            .enumerate()
            .map(|(i, &(p, d))| deal(i as i64, p, 100, 0, Some(d), DealStatus::Lost, None))
            .collect();
        let mut opts = WaterfallOptions::new(win(from, from + len), day(as_of));
        opts.unique = unique;
        let w = waterfall(&pb, &transitions, &deals, &opts).unwrap();
        let windows: Vec<Window> = std::iter::once(opts.window).chain(opts.comparison.iter().copied()).collect();
        let got = flow_counts(&pb, &transitions, &deals, &windows, opts.as_of, unique);
        prop_assert_eq!(got.is_some(), !w.groups.is_empty());
        if let (Some(got), Some(g)) = (got, w.groups.first()) {
            for (j, s) in g.stages.iter().enumerate() {
                prop_assert_eq!(got[0].flow[j], s.flow, "{}", s.stage);
                prop_assert_eq!(got[0].leaked[j], s.leaked, "{}", s.stage);
                prop_assert_eq!(Some(got[1].flow[j]), s.prev_flow, "{}", s.stage);
                prop_assert_eq!(Some(got[1].leaked[j]), s.prev_leaked, "{}", s.stage);
                let mean = got[1..].iter().map(|c| c.flow[j]).sum::<u64>() as f64 / 4.0;
                prop_assert_eq!(Some(mean), s.avg_flow, "{}", s.stage);
            }
        }
    }
}

/// The scorecard of the starter playbook on a small history in Q2 2026
/// (company timezone America/New_York), as of 2026-05-16: 2 MQLs, 1 SAL,
/// one 1,000.00 deal won. Goals: revenue 1,000,000.00, mqls 780, sals 470,
/// pipeline 4,000,000.00, win rate 0.25 — all quarterly.
#[test]
fn scorecard_and_leading_indicators_of_the_starter_playbook() {
    use super::scorecard::{leading_indicators, scorecard, LEADING_INDICATORS};
    let pb = pb();
    let at = |s: &str| Timestamp::parse(s).unwrap();
    let mut h = H::default();
    h.mv(1, "mql", 0).mv(2, "mql", 0).mv(1, "sal", 0);
    let v = std::mem::take(&mut h.v).to_vec();
    h.v = v
        .into_iter()
        .map(|t| Transition {
            at: at("2026-04-10T15:00:00Z"),
            ..t
        })
        .collect();
    let deals = [Deal {
        closed_at: Some(at("2026-05-01T15:00:00Z")),
        created_at: at("2026-04-02T15:00:00Z"),
        ..deal(1, 1, 1_000_00, 0, None, DealStatus::Won, None)
    }];
    let hist = History {
        transitions: &h.v,
        deals: &deals,
        ..History::default()
    };
    let as_of = at("2026-05-16T00:00:00Z");
    let lines = scorecard(&pb, &hist, as_of, Grouping::All, Grouping::All).unwrap();
    let got: Vec<(&str, Option<f64>)> = lines
        .iter()
        .map(|l| (l.metric.as_str(), l.actual))
        .collect();
    assert_eq!(
        got,
        [
            ("revenue_won", Some(1_000_00.0)),
            ("mqls", Some(2.0)),
            ("sals", Some(1.0)),
            ("pipeline_created", Some(1_000_00.0)),
            ("win_rate", Some(1.0)),
        ]
    );
    assert_eq!(lines[0].window.from, at("2026-04-01T04:00:00Z"));
    assert!(lines.iter().all(|l| l.window == lines[0].window));
    assert_eq!(lines[1].status, PaceStatus::Behind);
    let ind = leading_indicators(&pb, &hist, Period::Quarter, as_of).unwrap();
    assert_eq!(ind.len(), LEADING_INDICATORS.len());
    let mqls = ind.iter().find(|i| i.metric == "mqls").unwrap();
    assert_eq!(mqls.actual, Some(2.0));
    assert_eq!(mqls.pacing.as_ref().map(|p| p.target), Some(780.0));
    let visits = ind.iter().find(|i| i.metric == "web_visits").unwrap();
    assert_eq!((visits.actual, visits.pacing.is_none()), (Some(0.0), true));
    let retention = ind.iter().find(|i| i.metric == "retention").unwrap();
    assert_eq!(retention.actual, None);
}

/// Plan inputs for a stage list that skips stages. Cohort of inquiry in
/// [0, 100): P1 inquiry 0 → mql 2 → sal 4 → sql 10 → opportunity 20 →
/// customer 30; P2 inquiry 0 → mql 4 → sal 10; P3 inquiry 0. Counts 3, 2, 2,
/// 1, 1, 1. Rates for inquiry, mql, sql, customer: 2/3, 1/2, 1/1. Medians:
/// inquiry→mql (2, 4) = 3; mql→sal (2, 6) = 4, sal→sql 6, sql→opp 10, opp→
/// customer 10; so mql→sql = 4 + 6 = 10 and sql→customer = 10 + 10 = 20.
#[test]
fn plan_inputs_for_stages_that_skip() {
    let mut h = H::default();
    h.mv(1, "inquiry", 0)
        .mv(1, "mql", 2)
        .mv(1, "sal", 4)
        .mv(1, "sql", 10)
        .mv(1, "opportunity", 20)
        .mv(1, "customer", 30);
    h.mv(2, "inquiry", 0).mv(2, "mql", 4).mv(2, "sal", 10);
    h.mv(3, "inquiry", 0);
    let opts = WaterfallOptions::new(win(0, 100), day(100));
    let w = waterfall(&pb(), &h.v, &[], &opts).unwrap();
    let g = &w.groups[0];
    let stages: Vec<String> = ["inquiry", "mql", "sql", "customer"]
        .map(String::from)
        .into();
    let rates = historic_rates_for(g, &stages);
    assert_eq!(rates.len(), 3);
    assert!(close(rates[0].unwrap(), 2.0 / 3.0));
    assert!(close(rates[1].unwrap(), 0.5));
    assert!(close(rates[2].unwrap(), 1.0));
    let days = historic_median_days_for(g, &stages);
    assert_eq!(days, [Some(3.0), Some(10.0), Some(20.0)]);
    // The full funnel agrees with the adjacent-pair helpers.
    let all = funnel_ids(&pb());
    assert_eq!(historic_rates_for(g, &all), historic_rates(g));
    assert_eq!(historic_median_days_for(g, &all), historic_median_days(g));
    // A stage out of order has no rate or velocity.
    let back: Vec<String> = ["sql", "mql"].map(String::from).into();
    assert_eq!(historic_median_days_for(g, &back), [None]);
    assert_eq!(won_stage(&pb()).as_deref(), Some("customer"));
}

/// Average won deal size: P1 won 100 and 201 (mean 150.5 → 151), P2 won 50
/// but closed after as_of, P3 lost 999; grouped, P2 is absent.
#[test]
fn average_won_deal_size_counts_won_deals_to_as_of() {
    let deals = [
        deal(1, 1, 100, 0, Some(5), DealStatus::Won, None),
        deal(2, 1, 201, 0, Some(6), DealStatus::Won, None),
        deal(3, 2, 50, 0, Some(50), DealStatus::Won, None),
        deal(4, 3, 999, 0, Some(5), DealStatus::Lost, Some("no_budget")),
    ];
    let all = average_won_deal_size(&deals, day(10), Grouping::All);
    assert_eq!(all.get(ALL), Some(&(2, 151)));
    let f = |id: i64| Some(format!("p{id}"));
    let by = average_won_deal_size(&deals, day(10), Grouping::By(&f));
    assert_eq!(by.len(), 1);
    assert_eq!(by.get("p1"), Some(&(2, 151)));
}

/// Funnel-side money counts new business only. In window [10, 20):
/// - person 1: a new deal of 1000 created at 12, won at 15;
/// - person 2 (a customer's contact): a renewal of 5000 created at 11, won
///   at 15, an expansion of 700 created at 13, won at 16, and a renewal of
///   300 created at 12, lost at 17 (churn, not a lost sale);
/// - person 3: a new deal of 400 created at 11, lost at 18.
///
/// So revenue_won 1000 (not 6700), deals_won 1, win_rate 1 / (1 + 1) = 0.5,
/// pipeline_created 1000 + 400 = 1400, gaps' won revenue 1000 all person 1's,
/// attribution-side plan deal size 1000; the renewals and the expansion
/// are left to retention: expansion_revenue sees the 700.
#[test]
fn funnel_money_counts_new_business_only() {
    use super::retention::DealKind;
    let pb = pb();
    let with_kind = |mut d: Deal, kind: &str| {
        d.kind = kind.into();
        d.account_id = Some(90 + d.person_id.unwrap_or(0));
        d
    };
    let deals = [
        deal(1, 1, 1000, 12, Some(15), DealStatus::Won, None),
        with_kind(
            deal(2, 2, 5000, 11, Some(15), DealStatus::Won, None),
            "renewal",
        ),
        with_kind(
            deal(3, 2, 700, 13, Some(16), DealStatus::Won, None),
            "expansion",
        ),
        with_kind(
            deal(4, 2, 300, 12, Some(17), DealStatus::Lost, Some("churn")),
            "renewal",
        ),
        deal(5, 3, 400, 11, Some(18), DealStatus::Lost, Some("no_budget")),
    ];
    assert!(DealKind::is_new_business(&deals[0]));
    assert!(!DealKind::is_new_business(&deals[1]));
    let h = mqls_at_day_10(3);
    let hist = History {
        transitions: &h.v,
        deals: &deals,
        ..History::default()
    };
    let get =
        |m: &str| metric_actuals(&pb, &hist, m, win(10, 20), day(100), Grouping::All).unwrap()[ALL];
    assert_eq!(get("revenue_won"), Some(1000.0));
    assert_eq!(get("deals_won"), Some(1.0));
    assert_eq!(get("win_rate"), Some(0.5));
    assert_eq!(get("pipeline_created"), Some(1400.0));
    let by_person = |p: i64| Some(format!("p{p}"));
    let (g, lost) = gaps_and_lost(&pb, &hist, Grouping::By(&by_person));
    assert_eq!(g.total_revenue_won, 1000);
    let p2 = g.rows.iter().find(|r| r.group == "p2").unwrap();
    assert_eq!((p2.revenue_won, p2.deals_won, p2.deals_lost), (0, 0, 0));
    let sizes = average_won_deal_size(&deals, day(100), Grouping::All);
    assert_eq!(sizes[ALL], (1, 1000));
    // Lost renewals are not funnel leakage.
    assert_eq!((lost.count, lost.amount_minor), (1, 400));
}

/// People `1..=n` entering the MQL stage on day 10.
fn mqls_at_day_10(n: i64) -> H {
    let mut h = H::default();
    for p in 1..=n {
        h.mv(p, "mql", 10);
    }
    h
}

/// The gaps and the waterfall's lost deals (its first group's) of
/// `hist` over days [10, 20), as of day 100.
fn gaps_and_lost(
    pb: &Playbook,
    hist: &History<'_>,
    grouping: Grouping<'_>,
) -> (super::gaps::Gaps, waterfall::LostDeals) {
    let g = alignment_gaps(
        hist,
        "mql",
        win(10, 20),
        day(100),
        grouping,
        DEFAULT_THRESHOLD,
    );
    let wf = waterfall::waterfall(
        pb,
        hist.transitions,
        hist.deals,
        &waterfall::WaterfallOptions::new(win(10, 20), day(100)),
    )
    .unwrap();
    (g, wf.groups[0].lost.clone())
}

proptest! {
    /// `GroupKeys` answers as the plain map of person → key it replaces,
    /// later inserts for a person winning, before and after changes made
    /// once it was read (its array of dense ids is made again), with dense
    /// ids and with one far away (a hash map then).
    #[test]
    fn group_keys_answer_as_a_map(
        inserts in proptest::collection::vec((0i64..40, 0usize..5), 0..80),
        changes in proptest::collection::vec((0i64..45, proptest::option::of(0usize..5)), 0..10),
        far in proptest::option::of(prop_oneof![Just(i64::MIN), Just(1_000_000i64), Just(i64::MAX)]),
        probes in proptest::collection::vec(-2i64..45, 0..20),
    ) {
        const NAMES: [&str; 5] = ["smb", "enterprise", "", "mid", "smb "];
        let mut keys: GroupKeys = inserts.iter().map(|&(p, k)| (p, NAMES[k])).collect();
        let mut map: BTreeMap<i64, &str> = inserts.iter().map(|&(p, k)| (p, NAMES[k])).collect();
        let check = |keys: &GroupKeys, map: &BTreeMap<i64, &str>| -> Result<(), TestCaseError> {
            prop_assert_eq!(keys.len(), map.len());
            for p in probes.iter().chain(map.keys()).chain(far.iter()) {
                prop_assert_eq!(keys.get(*p), map.get(p).copied());
                prop_assert_eq!(
                    Grouping::Map(keys).person(Some(*p)),
                    map.get(p).copied().unwrap_or(NONE)
                );
            }
            Ok(())
        };
        check(&keys, &map)?;
        for &(p, k) in &changes {
            match k {
                Some(k) => {
                    keys.insert(p, NAMES[k]);
                    map.insert(p, NAMES[k]);
                }
                None => {
                    keys.remove(p);
                    map.remove(&p);
                }
            }
            check(&keys, &map)?;
        }
        if let Some(f) = far {
            keys.insert(f, NAMES[1]);
            map.insert(f, NAMES[1]);
            check(&keys, &map)?;
        }
    }
}

#[test]
fn group_keys_keep_dense_ids_in_an_array_and_answer_alike_in_a_map() {
    const N: i64 = 10_000;
    let key = |p: i64| ["smb", "mid", "enterprise"][(p % 3) as usize];
    // Rising ids (a store's order), with every tenth person unkeyed.
    let rising: GroupKeys = (1..=N)
        .filter(|p| p % 10 != 0)
        .map(|p| (p, key(p)))
        .collect();
    assert!(rising.is_dense());
    // The same people in falling order: past a few thousand moved slots
    // the ids go to a map, with the same answers.
    let falling: GroupKeys = (1..=N)
        .rev()
        .filter(|p| p % 10 != 0)
        .map(|p| (p, key(p)))
        .collect();
    assert!(!falling.is_dense());
    assert_eq!(rising.len(), 9_000);
    assert_eq!(falling.len(), 9_000);
    for p in -1..=N + 1 {
        let want = (1..=N).contains(&p).then(|| key(p)).filter(|_| p % 10 != 0);
        assert_eq!(rising.get(p), want, "person {p}");
        assert_eq!(falling.get(p), want, "person {p}");
    }
    let mut smb_r: Vec<i64> = rising.people_in("smb").collect();
    let mut smb_f: Vec<i64> = falling.people_in("smb").collect();
    smb_r.sort_unstable();
    smb_f.sort_unstable();
    assert_eq!(smb_r.len(), 3_000);
    assert_eq!(smb_r, smb_f);
    // Equal however stored, and not once a person differs.
    let mut a = rising.clone();
    a.remove(3);
    assert_ne!(a, rising);
    // A person far below the first goes to a map and keeps the others.
    a.insert(3, key(3));
    assert_eq!(a, rising);
    a.insert(-1_000_000, "smb");
    assert!(!a.is_dense());
    assert_eq!(a.get(-1_000_000), Some("smb"));
    assert_eq!(a.get(4), Some(key(4)));
    assert_eq!(a.len(), 9_001);
    a.remove(-1_000_000);
    assert!(!a.is_dense());
    assert_eq!(a, rising);
}

proptest! {
    /// `actuals_over` (touches and activities counted in one pass for all
    /// metrics and windows) gives `metric_actuals`' value of every metric
    /// over every window, overlapping windows and rows after as-of included.
    #[test]
    fn actuals_over_equals_metric_actuals(
        touches in prop::collection::vec((1i64..6, 0usize..4, 0i64..40), 0..40),
        activities in prop::collection::vec((1i64..6, 0usize..4, 0i64..40), 0..30),
        moves in prop::collection::vec((1i64..6, 0usize..4, 0i64..40), 0..30),
        deals in prop::collection::vec((1i64..6, 1i64..500, 0i64..40, 0i64..40, 0usize..3), 0..12),
        windows in prop::collection::vec((0i64..35, 1i64..15), 1..4),
        as_of in 0i64..45,
    ) {
        let pb = pb();
        let kinds = ["web_visit", "email_open", "ad_click", "form_fill"];
        let touches: Touches = touches
            .iter()
            .enumerate()
            .map(|(i, &(p, k, d))| touch(i as i64, p, kinds[k], d))
            .collect();
        let akinds = [
            ActivityKind::Call,
            ActivityKind::Email,
            ActivityKind::Meeting,
            ActivityKind::Demo,
        ];
        let activities: Activities = activities
            .iter()
            .enumerate()
            .map(|(i, &(p, k, d))| activity(i as i64, p, akinds[k], d))
            .collect();
        let stages = ["inquiry", "mql", "sal", "opportunity"];
        let mut h = H::default();
        for &(p, s, d) in &moves {
            h.mv(p, stages[s], d);
        }
        let statuses = [DealStatus::Open, DealStatus::Won, DealStatus::Lost];
        let deals: Vec<Deal> = deals
            .iter()
            .enumerate()
            .map(|(i, &(p, minor, created, closed, s))| {
                deal(i as i64, p, minor, created, Some(closed), statuses[s], None)
            })
            .collect();
        let history = History {
            transitions: &h.v,
            touches: &touches,
            activities: &activities,
            deals: &deals,
            account_transitions: Default::default(),
            index: None,
        };
        // Counts read from the index (and the touches and activities in
        // time order, as a kept history holds them) in one, by scanning in
        // the other.
        let index = HistoryIndex::build(&h.v);
        let mut sorted = touches.clone();
        sorted.sort();
        let mut sorted_acts = activities.clone();
        sorted_acts.sort();
        let indexed = History {
            index: Some(&index),
            touches: &sorted,
            activities: &sorted_acts,
            ..history
        };
        let windows: Vec<Window> = windows.iter().map(|&(f, l)| win(f, f + l)).collect();
        let metrics = [
            "web_visits", "email_opens", "paid_clicks", "form_fills", "mqls", "sals", "calls",
            "emails_sent", "meetings", "opportunities", "pipeline_created", "revenue_won",
            "deals_won", "win_rate", "sal_rate", "customers",
        ];
        let got = actuals_over(&pb, &indexed, &metrics, &windows, day(as_of));
        prop_assert_eq!(got.len(), metrics.len());
        // Out of time order, the counts are one pass over each table.
        let scanned = actuals_over(&pb, &history, &metrics, &windows, day(as_of));
        prop_assert_eq!(&scanned, &got);
        for (m, values) in metrics.iter().zip(got) {
            let want: Result<Vec<Option<f64>>, MetricsError> = windows
                .iter()
                .map(|&w| {
                    metric_actuals(&pb, &history, m, w, day(as_of), Grouping::All)
                        .map(|v| v[ALL])
                })
                .collect();
            prop_assert_eq!(values, want, "{}", m);
        }
    }
}

/// Amounts at `i64::MAX` (inputs refuse more than `MAX_MINOR`, but a store
/// written before the bound may hold them): the money sums pin at
/// `i64::MAX` instead of overflowing (a panic in a debug build, a negative
/// total in a release one). Two won and two lost new deals of `i64::MAX`.
#[test]
fn money_sums_saturate_instead_of_overflowing() {
    let won = |id| deal(id, id, i64::MAX, 12, Some(15), DealStatus::Won, None);
    let lost = |id| {
        deal(
            id,
            id,
            i64::MAX,
            11,
            Some(18),
            DealStatus::Lost,
            Some("no_budget"),
        )
    };
    let deals = [won(1), won(2), lost(3), lost(4)];
    let h = mqls_at_day_10(4);
    let hist = History {
        transitions: &h.v,
        deals: &deals,
        ..History::default()
    };
    let (g, lost) = gaps_and_lost(&pb(), &hist, Grouping::All);
    assert_eq!(g.total_revenue_won, i64::MAX);
    assert_eq!(g.rows[0].revenue_won, i64::MAX);
    assert_eq!((lost.count, lost.amount_minor), (2, i64::MAX));
    assert_eq!(
        average_won_deal_size(&deals, day(100), Grouping::All)[ALL],
        (2, i64::MAX)
    );
}
