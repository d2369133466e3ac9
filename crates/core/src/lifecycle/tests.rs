#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::domain::{Account, Deal, DealStatus, Person, PersonTexts, Subject, Touch};
use crate::money::{Currency, Money};
use crate::playbook::STARTER;
use crate::time::DAY_MS;
use crate::transitions::Transitions;

const HOUR: i64 = 3_600_000;
const T0: i64 = 1_772_323_200_000; // 2026-03-01T00:00:00Z

fn t(ms_after: i64) -> Timestamp {
    Timestamp::from_millis(T0 + ms_after)
}

fn pb() -> Playbook {
    Playbook::load(STARTER).playbook.unwrap()
}

fn good_fit() -> (Person, Account) {
    let person = Person {
        id: 1,
        texts: PersonTexts::new("p1", Some("ana@acme.io"), None, None),
        title: Some("VP Operations".into()),
        country: Some("US".into()),
        created_at: t(0),
        ..Person::default()
    };
    let account = Account {
        industry: Some("fintech".into()),
        employees: Some(500),
        ..Account::default()
    };
    (person, account)
}

fn touch(kind: &str, at: Timestamp) -> Touch {
    Touch {
        kind: kind.into(),
        at,
        ..Touch::default()
    }
}

fn deal(status: DealStatus, created: Timestamp, closed: Option<Timestamp>) -> Deal {
    Deal {
        id: 1,
        external_id: "d1".into(),
        account_id: None,
        person_id: Some(1),
        name: None,
        amount: Money {
            minor: 10_000_00,
            currency: Currency::parse("USD").unwrap(),
        },
        created_at: created,
        closed_at: closed,
        status,
        lost_reason: None,
        owner: None,
        kind: "new".into(),
    }
}

fn stages(moves: &[Move]) -> Vec<(&str, bool, u32)> {
    moves
        .iter()
        .map(|m| (m.to.as_str(), m.skipped, m.cycle))
        .collect()
}

fn run(state: &mut State, moves: Vec<Move>) -> Vec<Move> {
    for m in &moves {
        state.apply(m);
    }
    moves
}

#[test]
fn a_new_person_enters_the_first_stage_when_created() {
    let pb = pb();
    let (p, a) = good_fit();
    let facts = Facts {
        person: &p,
        account: Some(&a),
        touches: &[],
        activities: &[],
        deals: &[],
    };
    let moves = advance(&pb, &State::default(), &facts, t(DAY_MS));
    assert_eq!(stages(&moves), [("inquiry", false, 1)]);
    assert_eq!(moves[0].at, t(0));
    assert_eq!(moves[0].from, None);
    assert_eq!(moves[0].actor, "system");
}

#[test]
fn mql_is_entered_at_the_instant_the_rule_is_crossed() {
    let pb = pb();
    let (p, a) = good_fit();
    // form_fill 15 at +1h, webinar 15 at +2h: 15 × 0.5^(1/720) + 15 = 29.986 < 30.
    // email_click 3 at +3h crosses 30.
    let touches = [
        touch("form_fill", t(HOUR)),
        touch("webinar", t(2 * HOUR)),
        touch("email_click", t(3 * HOUR)),
    ];
    let facts = Facts {
        person: &p,
        account: Some(&a),
        touches: &touches,
        activities: &[],
        deals: &[],
    };
    let moves = advance(&pb, &State::default(), &facts, t(10 * DAY_MS));
    assert_eq!(stages(&moves), [("inquiry", false, 1), ("mql", false, 1)]);
    assert_eq!(moves[1].at, t(3 * HOUR));
    assert_eq!(moves[1].from.as_deref(), Some("inquiry"));
    // Without the last touch it never qualifies.
    let facts2 = Facts {
        touches: &touches[..2],
        ..facts
    };
    assert_eq!(
        advance(&pb, &State::default(), &facts2, t(10 * DAY_MS)).len(),
        1
    );
}

#[test]
fn poor_fit_never_qualifies_however_engaged() {
    let pb = pb();
    let p = Person {
        id: 1,
        created_at: t(0),
        texts: PersonTexts::new("", Some("x@gmail.com"), None, None),
        ..Person::default()
    };
    let touches = [touch("demo_request", t(HOUR))];
    let facts = Facts {
        person: &p,
        account: None,
        touches: &touches,
        activities: &[],
        deals: &[],
    };
    let moves = advance(&pb, &State::default(), &facts, t(DAY_MS));
    assert_eq!(stages(&moves), [("inquiry", false, 1)]);
}

#[test]
fn accept_reject_and_terminal() {
    let pb = pb();
    let mut state = State::default();
    let (p, a) = good_fit();
    let touches = [touch("demo_request", t(HOUR))];
    let facts = Facts {
        person: &p,
        account: Some(&a),
        touches: &touches,
        activities: &[],
        deals: &[],
    };
    let mv = advance(&pb, &state, &facts, t(HOUR));
    run(&mut state, mv);
    assert_eq!(state.stage.as_deref(), Some("mql"));

    let sal = accept_target(&pb, &state).unwrap();
    assert_eq!(sal.id, "sal");
    let moves = manual(
        &pb,
        &state,
        &ManualMove {
            to: "sal",
            at: t(2 * HOUR),
            actor: "sam",
            reason: None,
            note: Some("called, good fit"),
        },
    )
    .unwrap();
    assert_eq!(stages(&moves), [("sal", false, 1)]);
    assert_eq!(moves[0].actor, "sam");
    run(&mut state, moves);

    let dq = reject_target(&pb, false).unwrap().id.clone();
    let mv = |reason| ManualMove {
        to: &dq,
        at: t(3 * HOUR),
        actor: "sam",
        reason,
        note: None,
    };
    assert_eq!(
        manual(&pb, &state, &mv(None)),
        Err(LifecycleError::ReasonRequired("disqualified".into()))
    );
    assert!(matches!(
        manual(&pb, &state, &mv(Some("nope"))),
        Err(LifecycleError::UnknownReason(_))
    ));
    assert!(matches!(
        manual(&pb, &state, &mv(Some("bad_timing"))),
        Err(LifecycleError::ReasonDoesNotApply { .. })
    ));
    let moves = manual(&pb, &state, &mv(Some("not_icp"))).unwrap();
    assert_eq!(moves[0].reason.as_deref(), Some("not_icp"));
    run(&mut state, moves);

    // Terminal: no automatic or manual way out.
    let more = [
        touch("demo_request", t(HOUR)),
        touch("demo_request", t(5 * HOUR)),
    ];
    let facts = Facts {
        touches: &more,
        ..facts
    };
    assert!(advance(&pb, &state, &facts, t(DAY_MS)).is_empty());
    assert_eq!(
        manual(
            &pb,
            &state,
            &ManualMove {
                to: "mql",
                at: t(6 * HOUR),
                actor: "x",
                reason: None,
                note: None
            }
        ),
        Err(LifecycleError::Terminal("disqualified".into()))
    );
}

#[test]
fn a_deal_skips_stages_and_records_them_as_passed_through() {
    let pb = pb();
    let (p, a) = good_fit();
    let touches = [touch("demo_request", t(HOUR))];
    let deals = [deal(DealStatus::Won, t(DAY_MS), Some(t(20 * DAY_MS)))];
    let facts = Facts {
        person: &p,
        account: Some(&a),
        touches: &touches,
        activities: &[],
        deals: &deals,
    };
    let moves = advance(&pb, &State::default(), &facts, t(30 * DAY_MS));
    assert_eq!(
        stages(&moves),
        [
            ("inquiry", false, 1),
            ("mql", false, 1),
            ("sal", true, 1),
            ("sql", true, 1),
            ("opportunity", false, 1),
            ("customer", false, 1),
        ]
    );
    assert_eq!(moves[2].at, t(DAY_MS));
    assert_eq!(moves[3].at, t(DAY_MS));
    assert_eq!(moves[5].at, t(20 * DAY_MS));
    assert_eq!(moves[5].from.as_deref(), Some("opportunity"));
}

#[test]
fn manual_skip_is_recorded_and_backwards_moves_are_refused() {
    let pb = pb();
    let state = State {
        stage: Some("mql".into()),
        cycle: 1,
        entered_at: Some(t(0)),
        cycle_started_at: Some(t(0)),
    };
    let moves = manual(
        &pb,
        &state,
        &ManualMove {
            to: "sql",
            at: t(HOUR),
            actor: "sam",
            reason: None,
            note: None,
        },
    )
    .unwrap();
    assert_eq!(stages(&moves), [("sal", true, 1), ("sql", false, 1)]);
    let mut s2 = state.clone();
    run(&mut s2, moves);
    assert!(matches!(
        manual(
            &pb,
            &s2,
            &ManualMove {
                to: "mql",
                at: t(2 * HOUR),
                actor: "sam",
                reason: None,
                note: None
            }
        ),
        Err(LifecycleError::NotAllowed { .. })
    ));
    assert!(matches!(
        manual(
            &pb,
            &s2,
            &ManualMove {
                to: "customer",
                at: t(0),
                actor: "sam",
                reason: None,
                note: None
            }
        ),
        Err(LifecycleError::BackInTime { .. })
    ));
    assert_eq!(
        manual(
            &pb,
            &s2,
            &ManualMove {
                to: "sql",
                at: t(3 * HOUR),
                actor: "sam",
                reason: None,
                note: None
            }
        ),
        Err(LifecycleError::AlreadyThere("sql".into()))
    );
}

#[test]
fn recycled_leads_start_a_new_cycle_on_new_engagement_only() {
    let pb = pb();
    let (p, a) = good_fit();
    let mut state = State::default();
    let mut touches = vec![touch("demo_request", t(HOUR))];
    let t1 = touches.clone();
    let facts = Facts {
        person: &p,
        account: Some(&a),
        touches: &t1,
        activities: &[],
        deals: &[],
    };
    let mv = advance(&pb, &state, &facts, t(HOUR));
    run(&mut state, mv);
    let mv = manual(
        &pb,
        &state,
        &ManualMove {
            to: "sal",
            at: t(2 * HOUR),
            actor: "sam",
            reason: None,
            note: None,
        },
    )
    .unwrap();
    run(&mut state, mv);
    let moves = manual(
        &pb,
        &state,
        &ManualMove {
            to: "recycled",
            at: t(DAY_MS),
            actor: "sam",
            reason: Some("no_response"),
            note: None,
        },
    )
    .unwrap();
    assert_eq!(stages(&moves), [("recycled", false, 1)]);
    run(&mut state, moves);

    // The old demo request still scores 40 × 0.5^(1/30) but happened before
    // the recycle: a web visit alone does not bring the lead back.
    touches.push(touch("web_visit", t(2 * DAY_MS)));
    let t2 = touches.clone();
    let facts = Facts {
        touches: &t2,
        ..facts
    };
    assert!(advance(&pb, &state, &facts, t(3 * DAY_MS)).is_empty());

    // A webinar and a form fill after the recycle (15 + 15 + 2 ≥ 30) do.
    touches.push(touch("webinar", t(10 * DAY_MS)));
    touches.push(touch("form_fill", t(10 * DAY_MS)));
    let t3 = touches.clone();
    let facts = Facts {
        touches: &t3,
        ..facts
    };
    let moves = advance(&pb, &state, &facts, t(11 * DAY_MS));
    assert_eq!(stages(&moves), [("mql", false, 2)]);
    assert_eq!(moves[0].from.as_deref(), Some("recycled"));
    assert_eq!(moves[0].at, t(10 * DAY_MS));
}

#[test]
fn replay_derives_stage_and_cycle_from_transitions() {
    let pb = pb();
    let (p, a) = good_fit();
    let touches = [touch("demo_request", t(HOUR))];
    let facts = Facts {
        person: &p,
        account: Some(&a),
        touches: &touches,
        activities: &[],
        deals: &[],
    };
    let mut state = State::default();
    let mut all = run(
        &mut state,
        advance(&pb, &State::default(), &facts, t(DAY_MS)),
    );
    let mv = manual(
        &pb,
        &state,
        &ManualMove {
            to: "recycled",
            at: t(DAY_MS),
            actor: "sam",
            reason: Some("no_budget"),
            note: None,
        },
    )
    .unwrap();
    all.extend(run(&mut state, mv));
    let mv = manual(
        &pb,
        &state,
        &ManualMove {
            to: "mql",
            at: t(DAY_MS),
            actor: "sam",
            reason: None,
            note: None,
        },
    )
    .unwrap();
    all.extend(run(&mut state, mv));
    let mut ts = to_transitions(Subject::Person(1), &all, 10);
    ts.reverse(); // order of the input must not matter
    let replayed = State::replay(&ts);
    assert_eq!(replayed, state);
    assert_eq!(replayed.stage.as_deref(), Some("mql"));
    assert_eq!(replayed.cycle, 2);
    assert_eq!(replayed.cycle_started_at, Some(t(DAY_MS)));
}

#[test]
fn a_deal_dated_before_the_first_stage_counts_from_that_stage_on() {
    // Olist has a deal won two days before the lead's first contact: the lead
    // becomes a customer at its MQL entry, the first instant history allows.
    let pb = pb();
    let (p, a) = good_fit();
    let deals = [deal(DealStatus::Won, t(-2 * DAY_MS), Some(t(-2 * DAY_MS)))];
    let mut state = State::default();
    let mv = manual(
        &pb,
        &state,
        &ManualMove {
            to: "mql",
            at: t(0),
            actor: "import",
            reason: None,
            note: None,
        },
    )
    .unwrap();
    run(&mut state, mv);
    let facts = Facts {
        person: &p,
        account: Some(&a),
        touches: &[],
        activities: &[],
        deals: &deals,
    };
    let moves = advance(&pb, &state, &facts, t(DAY_MS));
    let last = moves.last().unwrap();
    assert_eq!((last.to.as_str(), last.at), ("customer", t(0)));
}

mod properties {
    //! Replay is a pure function of the set of transitions: the store may
    //! hand them back in any order, and moves that share an instant (a
    //! skipped stage and its target, an import and an automatic entry) are
    //! ordered by their sequence number alone.
    use super::*;
    use proptest::prelude::*;

    /// One step of a random history: automatic entry up to `hours` later
    /// (after a touch of `touch` at that instant), or a manual move to stage
    /// `stage` with the first reason that applies.
    #[derive(Clone, Debug)]
    enum Step {
        Touch { kind: usize, hours: i64 },
        Manual { stage: usize, hours: i64 },
    }

    const TOUCHES: [&str; 5] = [
        "form_fill",
        "webinar",
        "email_click",
        "demo_request",
        "page_view",
    ];

    fn step() -> impl Strategy<Value = Step> {
        // `hours` is often 0: ties are the point.
        let hours = prop_oneof![Just(0i64), 0i64..48];
        prop_oneof![
            (0..TOUCHES.len(), hours.clone()).prop_map(|(kind, hours)| Step::Touch { kind, hours }),
            (0usize..8, hours).prop_map(|(stage, hours)| Step::Manual { stage, hours }),
        ]
    }

    /// Plays `steps` through the engine the way the store does: every move
    /// becomes a transition with the next sequence number.
    fn history(steps: &[Step]) -> (Vec<Transition>, State, Vec<Touch>) {
        let pb = pb();
        let (p, a) = good_fit();
        let mut touches = Vec::new();
        let mut state = State::default();
        let mut transitions = Vec::new();
        let mut now = 0i64;
        for s in steps {
            let moves = match s {
                Step::Touch { kind, hours } => {
                    now += hours * HOUR;
                    touches.push(touch(TOUCHES[*kind], t(now)));
                    let facts = Facts {
                        person: &p,
                        account: Some(&a),
                        touches: &touches,
                        activities: &[],
                        deals: &[],
                    };
                    advance(&pb, &state, &facts, t(now))
                }
                Step::Manual { stage, hours } => {
                    now += hours * HOUR;
                    let to = &pb.stages[stage % pb.stages.len()];
                    let reason = pb
                        .reasons
                        .iter()
                        .find(|r| r.applies_to.contains(&to.id))
                        .map(|r| r.code.as_str());
                    manual(
                        &pb,
                        &state,
                        &ManualMove {
                            to: &to.id,
                            at: t(now),
                            actor: "prop",
                            reason,
                            note: None,
                        },
                    )
                    .unwrap_or_default()
                }
            };
            let next = transitions.len() as i64 + 1;
            transitions.extend(to_transitions(Subject::Person(1), &moves, next));
            for m in &moves {
                state.apply(m);
            }
        }
        (transitions, state, touches)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]

        /// Replaying the engine's own transitions gives the state the engine
        /// tracked, whatever order they are read back in.
        #[test]
        fn replay_equals_the_tracked_state_in_any_order(
            steps in prop::collection::vec(step(), 0..24),
            keys in prop::collection::vec(any::<u32>(), 64),
        ) {
            let (transitions, tracked, _) = history(&steps);
            let replayed = State::replay(&transitions);
            prop_assert_eq!(&replayed, &tracked);
            // Same again (deterministic), reversed, and shuffled by keys.
            prop_assert_eq!(&State::replay(&transitions), &replayed);
            let reversed: Vec<Transition> = transitions.iter().rev().cloned().collect();
            prop_assert_eq!(&State::replay(&reversed), &replayed);
            let mut shuffled: Vec<(u32, Transition)> = transitions
                .iter()
                .cloned()
                .enumerate()
                .map(|(i, t)| (keys[i % keys.len()], t))
                .collect();
            shuffled.sort_by_key(|(k, t)| (*k, t.seq));
            let shuffled: Vec<Transition> = shuffled.into_iter().map(|(_, t)| t).collect();
            prop_assert_eq!(&State::replay(&shuffled), &replayed);
            // Every prefix of the history replays to a state whose stage is
            // the last transition's target, and cycles never go down.
            let mut cycle = 0;
            for tr in &transitions {
                prop_assert!(tr.cycle >= cycle, "cycle went down at seq {}", tr.seq);
                cycle = tr.cycle;
            }
            if let Some(last) = transitions.last() {
                prop_assert_eq!(replayed.stage.as_deref(), Some(last.to.as_str()));
                prop_assert_eq!(replayed.entered_at, Some(last.at));
            }
        }

        /// A subject advanced up to `evaluated`, then given more touches,
        /// moves the same whether its instants before the earliest new
        /// touch (or `evaluated`) are evaluated again or skipped.
        #[test]
        fn advancing_after_what_was_evaluated_moves_as_advancing_everything(
            steps in prop::collection::vec(step(), 0..16),
            evaluated in 0i64..400,
            extra in prop::collection::vec((0..TOUCHES.len(), 0i64..400), 0..8),
            until in 0i64..500,
        ) {
            let pb = pb();
            let (p, a) = good_fit();
            let (_, mut state, mut touches) = history(&steps);
            let evaluated = t(evaluated * HOUR);
            let before = Facts { person: &p, account: Some(&a), touches: &touches, activities: &[], deals: &[] };
            let moves = advance(&pb, &state, &before, evaluated);
            run(&mut state, moves);
            let added: Vec<Touch> = extra.iter().map(|&(k, h)| touch(TOUCHES[k], t(h * HOUR))).collect();
            let from = added
                .iter()
                .map(|t| t.at)
                .fold(Timestamp::from_millis(evaluated.millis() + 1), Timestamp::min);
            touches.extend(added);
            let until = t(until * HOUR);
            let facts = Facts { person: &p, account: Some(&a), touches: &touches, activities: &[], deals: &[] };
            let all = advance(&pb, &state, &facts, until);
            prop_assert_eq!(advance_after(&pb, &state, &facts, until, from), all);
        }

        /// Automatic entry depends on the set of facts, not their order: the
        /// same touches shuffled give the same moves from the same state.
        #[test]
        fn advance_ignores_the_order_of_facts(
            steps in prop::collection::vec(step(), 1..16),
            extra in prop::collection::vec((0..TOUCHES.len(), 0i64..200), 0..8),
            keys in prop::collection::vec(any::<u32>(), 32),
        ) {
            let pb = pb();
            let (p, a) = good_fit();
            let (transitions, _, mut touches) = history(&steps);
            touches.extend(extra.iter().map(|&(k, h)| touch(TOUCHES[k], t(h * HOUR))));
            let state = State::replay(&transitions);
            let until = t(400 * HOUR);
            let facts = Facts { person: &p, account: Some(&a), touches: &touches, activities: &[], deals: &[] };
            let moves = advance(&pb, &state, &facts, until);
            prop_assert_eq!(&advance(&pb, &state, &facts, until), &moves);
            let mut shuffled: Vec<(u32, Touch)> = touches
                .iter()
                .cloned()
                .enumerate()
                .map(|(i, t)| (keys[i % keys.len()], t))
                .collect();
            shuffled.sort_by_key(|(k, _)| *k);
            let shuffled: Vec<Touch> = shuffled.into_iter().map(|(_, t)| t).collect();
            let facts = Facts { touches: &shuffled, ..facts };
            prop_assert_eq!(&advance(&pb, &state, &facts, until), &moves);
        }
    }
}

/// The per-thread score maps are the maps `score_cel` builds, also after
/// the cache started over and for grades and values not seen before.
#[test]
fn remembered_score_maps_equal_built_ones() {
    let grades = [None, Some(Sym::new("A")), Some(Sym::new("B"))];
    for round in 0..2 {
        for i in 0..5000u32 {
            let fit = f64::from(i % 7) * 10.0;
            let engagement = f64::from(i) / 3.0 + f64::from(round);
            let grade = grades[(i % 3) as usize];
            assert_eq!(
                score_cel_of(fit, engagement, grade),
                score_cel(fit, engagement, grade.as_deref()),
                "{fit} {engagement} {grade:?}"
            );
        }
    }
    assert_eq!(
        score_cel_of(f64::NAN, 0.0, None),
        score_cel(f64::NAN, 0.0, None)
    );
}

/// Each person's latest transition up to `as_of`, by time then sequence,
/// whatever order the transitions come in; accounts and later moves left
/// out. Ids far apart (a map slots them) answer as dense ones (an array).
#[test]
fn latest_per_person_takes_the_last_by_time_then_sequence() {
    for far in [3, 1_000_000_000_000] {
        let mv = |seq: i64, subject: Subject, to: &str, at: i64| Transition {
            seq,
            subject,
            from: None,
            to: to.into(),
            at: t(at),
            actor: "system".into(),
            reason: None,
            note: None,
            cycle: 1,
            skipped: false,
        };
        let ts = [
            mv(5, Subject::Person(far), "sal", 20),
            mv(1, Subject::Person(1), "mql", 10),
            mv(2, Subject::Person(far), "mql", 10),
            // Same instant as seq 5: the higher sequence is later.
            mv(6, Subject::Person(far), "sql", 20),
            mv(3, Subject::Person(1), "inquiry", 5),
            mv(7, Subject::Account(1), "customer", 30),
            // After `as_of`: not yet.
            mv(8, Subject::Person(1), "sql", 99),
        ];
        let ts = Transitions::from_iter(ts);
        let got: Vec<(i64, &str, i64)> = latest_per_person(&ts, t(50))
            .into_iter()
            .map(|p| ts.get(p as usize))
            .map(|t| (t.subject.id(), t.to.as_str(), t.seq))
            .collect();
        assert_eq!(got, [(far, "sql", 6), (1, "mql", 1)]);
    }
}
