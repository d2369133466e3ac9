#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::domain::{Activity, ActivityKind, Person, PersonTexts, Subject, Transition};
use crate::lifecycle::State;
use crate::playbook::{MarketingSla, Playbook, SalesSla, StageKind, STARTER};
use crate::transitions::Transitions;
use crate::Sym;

/// The starter playbook: America/New_York, Mon–Fri 09:00–17:00, holidays
/// including Memorial Day 2026-05-25, sales SLA on `mql`.
fn pb() -> Playbook {
    let mut pb = Playbook::load(STARTER).playbook.unwrap();
    pb.sla.sales = Some(SalesSla {
        stage: "mql".into(),
        first_response_hours: 4.0,
        attempts: 2,
        attempts_within_days: 3.0,
    });
    pb.sla.marketing = Some(MarketingSla {
        mql_per_week: 2.0,
        sal_rate_min: 0.5,
    });
    pb
}

fn company() -> Company {
    let c = pb().company;
    assert_eq!(c.timezone_name, "America/New_York");
    assert!(c
        .holidays
        .contains(&"2026-05-25".parse::<jiff::civil::Date>().unwrap()));
    c
}

/// Local New York wall-clock time.
fn ny(s: &str) -> Timestamp {
    Timestamp::parse_in(s, &company().timezone).unwrap()
}

fn utc(s: &str) -> Timestamp {
    Timestamp::parse(s).unwrap()
}

fn deadline(start: &str, hours: f64) -> String {
    business_deadline(ny(start), hours, &company()).to_string()
}

// --- business-time arithmetic ----------------------------------------------

#[test]
fn friday_afternoon_handoff_rolls_over_the_weekend() {
    // Fri 16:30 EST: 0.5 h on Friday, 3.5 h on Monday from 09:00 → 12:30 EST.
    assert_eq!(deadline("2026-02-06 16:30", 4.0), "2026-02-09T17:30:00Z");
    let c = company();
    let h = business_hours_between(ny("2026-02-06 16:30"), ny("2026-02-09 12:30"), &c);
    assert_eq!(h, 4.0);
}

#[test]
fn night_handoff_starts_next_morning() {
    // Tue 22:00 EST → clock starts Wed 09:00 EST; 4 h → Wed 13:00 EST.
    assert_eq!(deadline("2026-02-10 22:00", 4.0), "2026-02-11T18:00:00Z");
    // Zero hours: the next working instant.
    assert_eq!(deadline("2026-02-10 22:00", 0.0), "2026-02-11T14:00:00Z");
    // Early morning the same day: 06:00 → 09:00 + 4 h = 13:00.
    assert_eq!(deadline("2026-02-11 06:00", 4.0), "2026-02-11T18:00:00Z");
    // Nothing counts during the night.
    let c = company();
    assert_eq!(
        business_hours_between(ny("2026-02-10 17:00"), ny("2026-02-11 09:00"), &c),
        0.0
    );
}

#[test]
fn holiday_handoff_starts_on_the_next_working_day() {
    // Memorial Day Mon 2026-05-25 is a configured holiday: 10:00 EDT on it →
    // Tue 09:00 + 4 h = 13:00 EDT = 17:00Z.
    assert_eq!(deadline("2026-05-25 10:00", 4.0), "2026-05-26T17:00:00Z");
    // Fri 15:00 EDT: 2 h Friday, weekend and holiday skipped, 2 h Tuesday.
    assert_eq!(deadline("2026-05-22 15:00", 4.0), "2026-05-26T15:00:00Z");
    let c = company();
    assert_eq!(
        business_hours_between(ny("2026-05-22 09:00"), ny("2026-05-27 09:00"), &c),
        16.0
    );
}

#[test]
fn dst_change_weeks_keep_local_working_hours() {
    // Spring forward on Sun 2026-03-08. Fri 15:00 EST (20:00Z) + 4 h:
    // 2 h Friday, 2 h Monday from 09:00 EDT → 11:00 EDT = 15:00Z.
    assert_eq!(deadline("2026-03-06 15:00", 4.0), "2026-03-09T15:00:00Z");
    let c = company();
    let h = business_hours_between(utc("2026-03-06T20:00:00Z"), utc("2026-03-09T15:00:00Z"), &c);
    assert_eq!(h, 4.0);
    // Fall back on Sun 2026-11-01. Fri 15:00 EDT + 4 h → Mon 11:00 EST = 16:00Z.
    assert_eq!(deadline("2026-10-30 15:00", 4.0), "2026-11-02T16:00:00Z");
    // Calendar days keep the wall-clock time: 14 days after Fri 15:00 EST is
    // Fri 2026-03-20 15:00 EDT = 19:00Z (336 h − 1 h elapsed).
    assert_eq!(
        calendar_days_after(ny("2026-03-06 15:00"), 14.0, &c).to_string(),
        "2026-03-20T19:00:00Z"
    );
}

#[test]
fn whole_days_and_reverse_intervals() {
    // 24 h from Mon 09:00 = three full days, ending Wed 17:00 EST = 22:00Z.
    assert_eq!(deadline("2026-02-09 09:00", 24.0), "2026-02-11T22:00:00Z");
    // Fractions: 1.25 h from 16:30 → 0.5 h Fri, 0.75 h Mon → 09:45.
    assert_eq!(deadline("2026-02-06 16:30", 1.25), "2026-02-09T14:45:00Z");
    let c = company();
    let (a, b) = (ny("2026-02-06 12:00"), ny("2026-02-09 12:00"));
    assert_eq!(business_hours_between(a, b, &c), 8.0);
    assert_eq!(business_hours_between(b, a, &c), -8.0);
    assert_eq!(business_hours_between(a, a, &c), 0.0);
}

#[test]
fn a_calendar_without_working_days_counts_elapsed_time() {
    let mut c = company();
    c.hours.days = [false; 7];
    let t = ny("2026-02-06 16:30");
    assert_eq!(
        business_deadline(t, 4.0, &c).millis() - t.millis(),
        4 * 3_600_000
    );
}

// --- sales SLA ---------------------------------------------------------------

fn person(id: i64, owner: Option<&str>) -> Person {
    Person {
        id,
        texts: PersonTexts::new(&format!("p{id}"), None, None, None),
        owner: owner.map(Sym::from),
        ..Person::default()
    }
}

fn tr(seq: i64, person: i64, from: Option<&str>, to: &str, at: Timestamp) -> Transition {
    Transition {
        seq,
        subject: Subject::Person(person),
        from: from.map(Sym::from),
        to: to.into(),
        at,
        actor: "test".into(),
        reason: None,
        note: None,
        cycle: 1,
        skipped: false,
    }
}

fn act(person_id: i64, at: Timestamp) -> Activity {
    Activity {
        id: 0,
        external_id: None,
        person_id,
        at,
        kind: ActivityKind::Call,
        actor: None,
        outcome: None,
    }
}

fn sales_fixture() -> SalesSlaReport {
    let people = vec![
        person(1, Some("ana")),
        person(2, Some("ana")),
        person(3, Some("bo")),
        person(4, Some("bo")),
        person(5, Some("bo")),
        person(6, None),
    ];
    let mut skipped = tr(12, 6, Some("inquiry"), "mql", ny("2026-02-12 10:00"));
    skipped.skipped = true;
    let transitions = vec![
        // 1: Fri 16:30 handoff, answered Mon 10:00 and 11:00 → met.
        tr(1, 1, None, "mql", ny("2026-02-06 16:30")),
        // 2: Tue 22:00 handoff (deadline Wed 13:00), first call Wed 15:00 → breached by 2 h.
        tr(2, 2, None, "mql", ny("2026-02-10 22:00")),
        // 3: Wed 16:00 handoff (deadline Thu 12:00), accepted Thu 10:00 with no call → stopped.
        tr(3, 3, None, "mql", ny("2026-02-11 16:00")),
        tr(4, 3, Some("mql"), "sal", ny("2026-02-12 10:00")),
        // 4: Thu 09:00 handoff, one call at 11:00, no second attempt in 3 days → breached.
        tr(5, 4, None, "mql", ny("2026-02-12 09:00")),
        // 5: Fri 06:00 handoff, as_of Fri 07:00 → open with 4 business hours left.
        tr(6, 5, None, "mql", ny("2026-02-20 06:00")),
        // 6: passed through mql on the way to sal: no clock.
        skipped,
        tr(13, 6, Some("mql"), "sal", ny("2026-02-12 10:00")),
        // After as_of: ignored.
        tr(14, 5, Some("mql"), "sal", ny("2026-02-21 10:00")),
    ];
    let transitions = Transitions::from_iter(transitions);
    let activities = vec![
        act(1, ny("2026-02-09 11:00")),
        act(1, ny("2026-02-09 10:00")),
        act(2, ny("2026-02-11 15:00")),
        act(2, ny("2026-02-12 10:00")),
        act(4, ny("2026-02-12 11:00")),
        act(5, ny("2026-02-20 08:00")), // after as_of
    ];
    sales_sla(
        &pb(),
        &people,
        &transitions,
        &Activities::from(activities),
        ny("2026-02-20 07:00"),
    )
    .unwrap()
}

#[test]
fn sales_sla_statuses() {
    let r = sales_fixture();
    let by: Vec<(i64, ClockStatus, ClockStatus, ClockStatus)> = r
        .handoffs
        .iter()
        .map(|h| (h.person_id, h.response, h.attempts_status, h.status))
        .collect();
    use ClockStatus::*;
    assert_eq!(
        by,
        vec![
            (1, Met, Met, Met),
            (2, Breached, Met, Breached),
            (3, Stopped, Stopped, Stopped),
            (4, Met, Breached, Breached),
            (5, Open, Open, Open),
        ]
    );
    let h = &r.handoffs;
    assert_eq!(h[0].deadline.to_string(), "2026-02-09T17:30:00Z");
    assert_eq!(h[0].responded_at, Some(ny("2026-02-09 10:00")));
    assert_eq!(h[0].attempts, 2);
    // Tue 22:00 → Wed 09:00 start, deadline Wed 13:00, answered 15:00.
    assert_eq!(h[1].deadline, ny("2026-02-11 13:00"));
    assert_eq!(h[1].overdue_hours, Some(2.0));
    // Attempts window: 3 calendar days from Tue 22:00 → Fri 22:00.
    assert_eq!(h[1].attempts_deadline, ny("2026-02-13 22:00"));
    assert_eq!(h[2].left_at, Some(ny("2026-02-12 10:00")));
    assert_eq!(h[2].left_to.as_deref(), Some("sal"));
    assert_eq!(h[2].overdue_hours, None);
    assert_eq!((h[3].attempts, h[3].attempts_short), (1, 1));
    assert_eq!(h[4].hours_left, Some(4.0));
    assert_eq!(h[4].responded_at, None);
}

#[test]
fn sales_sla_compliance_by_hand() {
    let r = sales_fixture();
    // Overall: met 1 (p1), breached 2 (p2, p4) → 1 / 3 = 33.33 %.
    assert_eq!(
        (
            r.overall.handoffs,
            r.overall.met,
            r.overall.breached,
            r.overall.stopped,
            r.overall.open
        ),
        (5, 1, 2, 1, 1)
    );
    assert!((r.overall.compliance_pct.unwrap() - 100.0 / 3.0).abs() < 1e-9);
    // ana: p1 met, p2 breached → 50 %; bo: p3 stopped, p4 breached, p5 open → 0 %.
    let owners: Vec<(Option<&str>, Option<f64>)> = r
        .by_owner
        .iter()
        .map(|o| (o.owner.as_deref(), o.compliance.compliance_pct))
        .collect();
    assert_eq!(
        owners,
        vec![(Some("ana"), Some(50.0)), (Some("bo"), Some(0.0))]
    );
}

#[test]
fn moving_on_after_the_deadline_is_still_a_breach() {
    let people = vec![person(1, Some("ana"))];
    let transitions = vec![
        tr(1, 1, None, "mql", ny("2026-02-09 09:00")),
        tr(2, 1, Some("mql"), "disqualified", ny("2026-02-10 10:00")),
    ];
    let transitions = Transitions::from_iter(transitions);
    let r = sales_sla(
        &pb(),
        &people,
        &transitions,
        &Activities::new(),
        ny("2026-03-01 00:00"),
    )
    .unwrap();
    let h = &r.handoffs[0];
    assert_eq!(h.response, ClockStatus::Breached);
    // Deadline Mon 13:00; left Tue 10:00 → 4 h Mon + 1 h Tue.
    assert_eq!(h.overdue_hours, Some(5.0));
    // Left inside the 3-day attempts window: attempts clock stopped.
    assert_eq!(h.attempts_status, ClockStatus::Stopped);
    assert_eq!(h.status, ClockStatus::Breached);
}

#[test]
fn activity_after_the_lead_left_is_not_a_response() {
    let people = vec![person(1, Some("ana"))];
    let transitions = vec![
        tr(1, 1, None, "mql", ny("2026-02-09 09:00")),
        tr(2, 1, Some("mql"), "sal", ny("2026-02-09 10:00")),
    ];
    let transitions = Transitions::from_iter(transitions);
    let activities = vec![act(1, ny("2026-02-09 11:00"))];
    let r = sales_sla(
        &pb(),
        &people,
        &transitions,
        &Activities::from(activities),
        ny("2026-03-01 00:00"),
    )
    .unwrap();
    let h = &r.handoffs[0];
    assert_eq!((h.responded_at, h.attempts), (None, 0));
    assert_eq!(h.status, ClockStatus::Stopped);
    assert_eq!(r.overall.compliance_pct, None);
}

#[test]
fn recycled_leads_get_a_new_clock_per_cycle() {
    let people = vec![person(1, None)];
    let mut again = tr(3, 1, Some("recycled"), "mql", ny("2026-02-16 09:00"));
    again.cycle = 2;
    let transitions = vec![
        tr(1, 1, None, "mql", ny("2026-02-09 09:00")),
        tr(2, 1, Some("mql"), "recycled", ny("2026-02-09 10:00")),
        again,
    ];
    let transitions = Transitions::from_iter(transitions);
    let activities = vec![
        act(1, ny("2026-02-16 10:00")),
        act(1, ny("2026-02-17 10:00")),
    ];
    let r = sales_sla(
        &pb(),
        &people,
        &transitions,
        &Activities::from(activities),
        ny("2026-03-01 00:00"),
    )
    .unwrap();
    let s: Vec<(u32, ClockStatus)> = r.handoffs.iter().map(|h| (h.cycle, h.status)).collect();
    assert_eq!(s, vec![(1, ClockStatus::Stopped), (2, ClockStatus::Met)]);
    assert_eq!(r.by_owner[0].owner, None);
}

#[test]
fn no_sales_sla_is_an_error() {
    let mut p = pb();
    p.sla.sales = None;
    assert_eq!(
        sales_sla(
            &p,
            &[],
            &Transitions::new(),
            &Activities::new(),
            ny("2026-02-01 00:00")
        ),
        Err(SlaError::NoSalesSla)
    );
}

// --- marketing SLA -----------------------------------------------------------

#[test]
fn marketing_sla_weeks_by_hand() {
    let transitions = vec![
        // Sun 23:30 EST is Monday in UTC but Sunday locally: week of 02-02.
        tr(1, 10, None, "mql", ny("2026-02-08 23:30")),
        tr(2, 10, Some("mql"), "sal", ny("2026-02-10 10:00")),
        // Week of 02-09.
        tr(3, 11, None, "mql", ny("2026-02-09 00:30")),
        tr(4, 11, Some("mql"), "sal", ny("2026-02-11 10:00")),
        tr(5, 12, None, "mql", ny("2026-02-10 10:00")), // pending
        tr(6, 13, None, "mql", ny("2026-02-11 10:00")),
        tr(7, 13, Some("mql"), "disqualified", ny("2026-02-12 10:00")),
        tr(8, 14, None, "mql", ny("2026-02-10 11:00")),
        tr(9, 14, Some("mql"), "recycled", ny("2026-02-11 11:00")),
        // Week of 02-16: p14 again (new cycle), accepted.
        tr(10, 14, Some("recycled"), "mql", ny("2026-02-17 11:00")),
        tr(11, 14, Some("mql"), "sal", ny("2026-02-18 11:00")),
    ];
    let transitions = Transitions::from_iter(transitions);
    let r = marketing_sla(&pb(), &transitions, None, ny("2026-02-24 07:00")).unwrap();
    assert_eq!((r.mql_stage.as_str(), r.sal_stage.as_str()), ("mql", "sal"));
    use ClockStatus::*;
    let weeks: Vec<_> = r
        .weeks
        .iter()
        .map(|w| {
            (
                w.week_start_date.as_str(),
                w.iso_week.as_str(),
                w.mqls,
                w.sals,
                w.pending,
                w.volume_status,
                w.sal_rate_status,
            )
        })
        .collect();
    assert_eq!(
        weeks,
        vec![
            ("2026-02-02", "2026-W06", 1, 1, 0, Breached, Some(Met)),
            ("2026-02-09", "2026-W07", 4, 1, 1, Met, Some(Breached)),
            ("2026-02-16", "2026-W08", 1, 1, 0, Breached, Some(Met)),
            ("2026-02-23", "2026-W09", 0, 0, 0, Open, None),
        ]
    );
    assert_eq!(r.weeks[1].sal_rate, Some(0.25));
    assert_eq!(r.weeks[0].starts_at.to_string(), "2026-02-02T05:00:00Z");
    // Volume: 1 met of 3 settled; SAL rate: 2 met of 3 settled.
    assert!((r.volume_compliance_pct.unwrap() - 100.0 / 3.0).abs() < 1e-9);
    assert!((r.sal_rate_compliance_pct.unwrap() - 200.0 / 3.0).abs() < 1e-9);
}

#[test]
fn marketing_weeks_follow_local_midnight_across_dst() {
    let r = marketing_sla(
        &pb(),
        &Transitions::new(),
        Some(ny("2026-03-03 12:00")),
        ny("2026-03-10 12:00"),
    )
    .unwrap();
    let w: Vec<(String, String)> = r
        .weeks
        .iter()
        .map(|w| (w.starts_at.to_string(), w.ends_at.to_string()))
        .collect();
    assert_eq!(
        w,
        vec![
            (
                "2026-03-02T05:00:00Z".to_string(),
                "2026-03-09T04:00:00Z".to_string()
            ),
            (
                "2026-03-09T04:00:00Z".to_string(),
                "2026-03-16T04:00:00Z".to_string()
            ),
        ]
    );
    assert_eq!(r.weeks[0].volume_status, ClockStatus::Breached);
    assert_eq!(r.weeks[1].volume_status, ClockStatus::Open);
    assert_eq!(r.sal_rate_compliance_pct, None);
}

// --- stalled -----------------------------------------------------------------

#[test]
fn stalled_lists_oldest_first() {
    let people = vec![person(20, Some("ana")), person(24, Some("bo"))];
    let transitions = vec![
        tr(1, 20, None, "inquiry", utc("2026-01-01T00:00:00Z")),
        tr(2, 20, Some("inquiry"), "mql", utc("2026-01-10T00:00:00Z")), // 22 d > 14
        tr(3, 21, None, "sal", utc("2026-01-20T00:00:00Z")),            // 12 d ≤ 14
        tr(4, 22, None, "customer", utc("2025-01-01T00:00:00Z")),       // no max_days
        tr(5, 23, None, "disqualified", utc("2025-01-01T00:00:00Z")),
        tr(6, 24, None, "inquiry", utc("2025-11-01T00:00:00Z")), // 92 d > 60
        tr(7, 25, None, "mql", utc("2026-01-01T00:00:00Z")),
        tr(8, 25, Some("mql"), "sal", utc("2026-02-02T00:00:00Z")), // after as_of
    ];
    let transitions = Transitions::from_iter(transitions);
    let s = stalled(&pb(), &people, &transitions, utc("2026-02-01T00:00:00Z"));
    let got: Vec<(i64, &str, f64, f64, Option<&str>)> = s
        .iter()
        .map(|x| {
            (
                x.person_id,
                x.stage.as_str(),
                x.days_in_stage,
                x.days_over,
                x.owner.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (24, "inquiry", 92.0, 32.0, Some("bo")),
            (25, "mql", 31.0, 17.0, None),
            (20, "mql", 22.0, 8.0, Some("ana")),
        ]
    );
}

// --- properties ----------------------------------------------------------------

mod props {
    use super::*;
    use proptest::prelude::*;

    const Y2026: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
    const YEAR_MS: i64 = 365 * 86_400_000;

    /// A calendar whose working day ends at midnight and starts inside the
    /// night of a DST change, so its windows are 22.5, 21.5 or 23.5 hours.
    fn odd_company() -> Company {
        let mut c = company();
        c.hours.start_minute = 90;
        c.hours.end_minute = 24 * 60;
        c.hours.days = [false, false, false, false, false, true, true];
        c
    }

    proptest! {
        #[test]
        fn deadline_and_between_agree(
            start in Y2026..Y2026 + YEAR_MS,
            quarters in 0i64..800,
            odd in any::<bool>(),
        ) {
            let c = if odd { odd_company() } else { company() };
            let start = Timestamp::from_millis(start);
            let hours = quarters as f64 / 4.0;
            let end = business_deadline(start, hours, &c);
            prop_assert!(end >= start);
            prop_assert_eq!(business_hours_between(start, end, &c), hours);
            // One more millisecond of business time lands later.
            let later = business_deadline(start, hours + 1.0 / 3_600_000.0, &c);
            prop_assert!(later > end);
        }

        /// On arbitrary histories (stages in any order, repeated entries,
        /// skips, ties in time), the inbox's waiting handoffs are exactly
        /// the full report's handoffs that have not left, a window's
        /// handoffs those entered in it, and the stalled
        /// list is the one given by replaying each person's whole history.
        #[test]
        fn waiting_week_and_stalled_agree_with_full_replay(
            moves in prop::collection::vec((1i64..7, 0usize..5, 0i64..40, any::<bool>()), 0..50),
            calls in prop::collection::vec((1i64..7, 0i64..40), 0..20),
            as_of in 0i64..45,
            from in 0i64..40,
            len in 1i64..15,
            shown in 0usize..8,
        ) {
            let ids = ["inquiry", "mql", "sal", "recycled", "disqualified"];
            let day = |d: i64| Timestamp::from_millis(Y2026 + d * DAY_MS);
            let people: Vec<Person> = (1..7).map(|i| person(i, Some(["ana", "bo"][i as usize % 2]))).collect();
            let transitions: Transitions = moves
                .iter()
                .enumerate()
                .map(|(i, &(p, s, d, skipped))| Transition {
                    skipped,
                    ..tr(i as i64, p, None, ids[s], day(d))
                })
                .collect();
            let activities: Activities = calls.iter().map(|&(p, d)| act(p, day(d))).collect();
            let pb = pb();
            let as_of = day(as_of);
            let full = sales_sla(&pb, &people, &transitions, &activities, as_of).unwrap();
            // A week's handoffs are the full report's entered in the window.
            let window = crate::metrics::Window::new(day(from), day(from + len)).unwrap();
            let in_window: Vec<Handoff> = full.handoffs.iter().filter(|h| window.contains(h.entered_at)).cloned().collect();
            prop_assert_eq!(handoffs_entered(&pb, &people, &transitions, &activities, window, as_of).unwrap(), in_window);
            // Paging through the handoffs of a window or all, of an owner or
            // all, lists the full report's matching handoffs once each in
            // order, and every page counts and scores them all.
            for (window, owner) in [None, Some(window)].into_iter().flat_map(|w| [(w, None), (w, Some("ana")), (w, Some("bo"))]) {
                let theirs: Vec<Handoff> = full
                    .handoffs
                    .iter()
                    .filter(|h| window.is_none_or(|w| w.contains(h.entered_at)))
                    .filter(|h| owner.is_none_or(|o| h.owner.as_deref() == Some(o)))
                    .cloned()
                    .collect();
                let (mut after, mut listed) = (None, Vec::new());
                loop {
                    let q = HandoffQuery { window, owner, after, limit: shown.max(1) };
                    let page = handoff_page(&pb, &people, &transitions, &activities, as_of, q).unwrap();
                    prop_assert_eq!(page.total, theirs.len());
                    prop_assert_eq!(&page.overall, &compliance(&theirs));
                    prop_assert_eq!(&page.by_owner, &compliance_by_owner(&theirs));
                    listed.extend(page.handoffs);
                    prop_assert!(listed.len() <= theirs.len(), "a page repeats handoffs");
                    prop_assert_eq!(page.next.is_some(), listed.len() < theirs.len());
                    if page.next.is_none() { break }
                    after = page.next;
                }
                prop_assert_eq!(listed, theirs);
            }
            let open: Vec<Handoff> = full.handoffs.into_iter().filter(|h| h.left_at.is_none()).collect();
            prop_assert_eq!(waiting_handoffs(&pb, &people, &transitions, &activities, as_of).unwrap(), open);

            let mut expect: Vec<(i64, String, Timestamp)> = Vec::new();
            for p in 1..7 {
                let mine: Vec<Transition> = transitions
                    .iter()
                    .filter(|t| t.subject == Subject::Person(p) && t.at <= as_of)
                    .map(|t| t.to_transition())
                    .collect();
                let state = State::replay(&mine);
                let (Some(stage), Some(at)) = (state.stage, state.entered_at) else { continue };
                let Some(max) = pb.stage(&stage).and_then(|s| s.max_days.filter(|_| s.kind != StageKind::Terminal)) else { continue };
                if at.days_until(as_of) > max {
                    expect.push((p, stage.to_string(), at));
                }
            }
            expect.sort_by_key(|e| (e.2, e.0));
            let all = stalled(&pb, &people, &transitions, as_of);
            let got: Vec<(i64, String, Timestamp)> = all
                .iter()
                .map(|s| (s.person_id, s.stage.clone(), s.entered_at))
                .collect();
            prop_assert_eq!(got, expect);
            // The summary: the list's length, its counts per stage in
            // playbook order, and its first `shown` leads.
            let summary = stalled_summary(&pb, &people, &transitions, as_of, shown);
            prop_assert_eq!(summary.total, all.len());
            let by_stage: Vec<(String, usize)> = pb
                .stages
                .iter()
                .map(|s| (s.id.clone(), all.iter().filter(|l| l.stage == s.id).count()))
                .filter(|&(_, n)| n > 0)
                .collect();
            prop_assert_eq!(summary.by_stage, by_stage);
            prop_assert_eq!(&summary.leads[..], &all[..shown.min(all.len())]);
            // Paging through one owner's leads (or everyone's) lists exactly
            // theirs, in the list's order, and counts them all on each page.
            for owner in [None, Some("ana"), Some("bo")] {
                let theirs: Vec<StalledLead> = all
                    .iter()
                    .filter(|l| owner.is_none_or(|o| l.owner.as_deref() == Some(o)))
                    .cloned()
                    .collect();
                let (mut after, mut listed) = (None, Vec::new());
                loop {
                    let page = StalledPage { owner, after, limit: shown.max(1) };
                    let got = stalled_page(&pb, &people, &transitions, as_of, page);
                    prop_assert_eq!(got.total, theirs.len());
                    let Some(last) = got.leads.last() else { break };
                    after = Some((last.entered_at, last.person_id));
                    listed.extend(got.leads);
                    prop_assert!(listed.len() <= theirs.len(), "a page repeats leads");
                }
                prop_assert_eq!(listed, theirs);
            }
        }
    }

    /// A history with hour-resolution times (so first responses land
    /// before and after business-hour deadlines), people without a row,
    /// account transitions, skips and ties.
    fn hourly_history(
        moves: &[(i64, usize, i64, bool)],
        calls: &[(i64, i64)],
    ) -> (Vec<Person>, Transitions, Activities) {
        let ids = ["inquiry", "mql", "sal", "sql", "recycled", "disqualified"];
        let hour = |h: i64| Timestamp::from_millis(Y2026 + h * 3_600_000);
        let owners = [Some("ana"), Some("bo"), None];
        // Person 6 has no row; subject 0 is an account.
        let people: Vec<Person> = (1..6).map(|i| person(i, owners[i as usize % 3])).collect();
        let transitions = moves
            .iter()
            .enumerate()
            .map(|(i, &(p, s, h, skipped))| {
                // Sequence numbers against input order: ties in time sort by them.
                let mut t = tr(1000 - i as i64, p, None, ids[s], hour(h));
                t.skipped = skipped;
                t.cycle = i as u32 % 3;
                if p == 0 {
                    t.subject = Subject::Account(1);
                }
                t
            })
            .collect();
        let activities = calls.iter().map(|&(p, h)| act(p, hour(h))).collect();
        (people, transitions, activities)
    }

    proptest! {
        /// The kept index, built once from the whole history, answers
        /// every as-of instant, window, owner and page as the direct
        /// computation of that instant does, and the marketing side too.
        #[test]
        fn kept_index_equals_the_direct_computation(
            moves in prop::collection::vec((0i64..7, 0usize..6, 0i64..12 * 24, any::<bool>()), 0..60),
            calls in prop::collection::vec((1i64..7, 0i64..12 * 24), 0..60),
            at_events in prop::collection::vec(any::<prop::sample::Index>(), 1..4),
            later in 0i64..14 * 24,
            from in 0i64..12,
            len in 1i64..6,
            limit in 0usize..6,
            terms in 0u8..3,
        ) {
            let (people, transitions, activities) = hourly_history(&moves, &calls);
            // The test playbook, or one without the sales or marketing side.
            let mut pb = pb();
            match terms {
                1 => pb.sla.sales = None,
                2 => pb.sla.marketing = None,
                _ => {}
            }
            let index = SlaIndex::build(&pb, &people, &transitions, &activities);
            let day = |d: i64| Timestamp::from_millis(Y2026 + d * DAY_MS);
            let window = crate::metrics::Window::new(day(from), day(from + len)).unwrap();
            // Instants on the history's own times (where `<` and `<=`
            // differ), and one anywhere.
            let times: Vec<Timestamp> = transitions.iter().map(|t| t.at).chain(activities.iter().map(|a| a.at)).collect();
            let mut as_ofs: Vec<Timestamp> = at_events.iter().filter(|_| !times.is_empty()).map(|i| *i.get(&times)).collect();
            as_ofs.push(Timestamp::from_millis(Y2026 + later * 3_600_000));
            for as_of in as_ofs {
                for window in [None, Some(window)] {
                    for owner in [None, Some("ana"), Some("bo"), Some("nobody")] {
                        let mut after = None;
                        loop {
                            let q = HandoffQuery { window, owner, after, limit };
                            let direct = handoff_page(&pb, &people, &transitions, &activities, as_of, q);
                            let kept = index.handoff_page(&pb, &people, &transitions, as_of, q);
                            prop_assert_eq!(&kept, &direct);
                            match direct {
                                Ok(HandoffPage { next: Some(next), .. }) => after = Some(next),
                                _ => break,
                            }
                        }
                    }
                }
                for since in [None, Some(day(from))] {
                    prop_assert_eq!(
                        index.marketing_sla(&pb, since, as_of),
                        marketing_sla(&pb, &transitions, since, as_of)
                    );
                }
            }
        }
    }
}

/// The clock rule at its boundaries, as DESIGN states it: leaving the
/// stage *by* the deadline stops the clock (the deadline itself counts),
/// and a clock is breached only once `as_of` is past the deadline.
#[test]
fn clock_status_at_the_deadline() {
    let d = Timestamp::from_millis(1_000_000);
    let (before, after) = (
        Timestamp::from_millis(999_999),
        Timestamp::from_millis(1_000_001),
    );
    assert_eq!(clock_status(true, None, d, after), ClockStatus::Met);
    assert_eq!(clock_status(false, Some(d), d, after), ClockStatus::Stopped);
    assert_eq!(
        clock_status(false, Some(before), d, after),
        ClockStatus::Stopped
    );
    assert_eq!(
        clock_status(false, Some(after), d, after),
        ClockStatus::Breached
    );
    assert_eq!(clock_status(false, None, d, d), ClockStatus::Open);
    assert_eq!(clock_status(false, None, d, after), ClockStatus::Breached);
    // A handoff is as bad as its worse clock.
    use ClockStatus::*;
    assert_eq!(handoff_status(Met, Breached), Breached);
    assert_eq!(handoff_status(Open, Met), Open);
    assert_eq!(handoff_status(Stopped, Met), Met);
    assert_eq!(handoff_status(Stopped, Stopped), Stopped);
}

/// `PerPerson` groups the wanted people's items, each run in input order,
/// and leaves the others' out: people 7 and 9 are wanted (9 named twice),
/// 8 is not. Runs come in ascending id, whether the ids are dense (an
/// array slots them) or far apart (a map does).
#[test]
fn per_person_groups_wanted_items_in_input_order() {
    let far = 1_000_000_000_000;
    for (wanted, other) in [([9, 7, 9], 8), ([far, 7, far], 8)] {
        let top = wanted[0];
        let pairs = [
            (top, 'a'),
            (other, 'x'),
            (7, 'b'),
            (top, 'c'),
            (7, 'd'),
            (other, 'y'),
            (top, 'e'),
        ];
        let wanted = Wanted::new(wanted.into_iter());
        let g = PerPerson::new(&wanted, pairs.iter().copied());
        assert_eq!(g.of(7), ['b', 'd']);
        assert_eq!(g.of(top), ['a', 'c', 'e']);
        assert!(g.of(other).is_empty());
        let runs: Vec<(i64, Vec<char>)> = g.runs().map(|(id, r)| (id, r.to_vec())).collect();
        assert_eq!(runs, [(7, vec!['b', 'd']), (top, vec!['a', 'c', 'e'])]);
    }
    let pairs = [(9, 'a'), (7, 'b')];
    // Nobody wanted, or nothing of theirs: empty runs.
    let nobody = Wanted::new(std::iter::empty());
    let none = PerPerson::new(&nobody, pairs.iter().copied());
    assert_eq!(none.runs().count(), 0);
    let idle = Wanted::new([5].into_iter());
    let g = PerPerson::new(&idle, pairs.iter().copied());
    assert_eq!(
        g.runs().map(|(id, r)| (id, r.len())).collect::<Vec<_>>(),
        [(5, 0)]
    );
}
