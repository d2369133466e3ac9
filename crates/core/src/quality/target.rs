//! What the definition check predicts, read from stored history: who
//! reached the target (won, or a stage) and when people entered a stage.
//!
//! **Reaching a stage.** A person reached funnel stage `S` by `as_of` when
//! they have a transition, not after `as_of`, into `S` or into any later
//! funnel stage: skipping a stage passes through it (DESIGN §4). For an
//! off-ramp stage (recycled, disqualified) only a transition into it counts.
//!
//! **Won.** A person is won by `as_of` when a deal of theirs is won with
//! `closed_at` not after `as_of`, or when they reached the won stage
//! (`customer`, else the last funnel stage).

use std::collections::{BTreeMap, BTreeSet};

use crate::domain::{Deal, DealStatus, Subject};
use crate::metrics::plan::won_stage;
use crate::metrics::retention::DealKind;
use crate::playbook::Playbook;
use crate::time::Timestamp;
use crate::transitions::Transitions;

/// The outcome a definition check predicts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A won deal, or the won stage.
    Won,
    /// Reaching this stage (id of a playbook stage).
    Stage(String),
}

/// A target that is neither `won` nor a stage of the playbook.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown target `{0}`: use `won` or a stage id of the playbook")]
pub struct UnknownTarget(pub String);

impl Target {
    /// Parses `won` or a stage id of `pb`.
    pub fn parse(pb: &Playbook, s: &str) -> Result<Target, UnknownTarget> {
        if s == "won" {
            Ok(Target::Won)
        } else if pb.stage(s).is_some() {
            Ok(Target::Stage(s.to_string()))
        } else {
            Err(UnknownTarget(s.to_string()))
        }
    }
}

/// People who reached stage `stage` by `as_of` (see the module docs).
pub fn reached_stage(
    pb: &Playbook,
    transitions: &Transitions,
    stage: &str,
    as_of: Timestamp,
) -> BTreeSet<i64> {
    let index = pb.stage(stage).and_then(|s| s.funnel_index);
    let counts = |to: &str| match index {
        Some(i) => pb
            .stage(to)
            .and_then(|s| s.funnel_index)
            .is_some_and(|j| j >= i),
        None => to == stage,
    };
    transitions
        .iter()
        .filter(|t| t.at <= as_of && counts(&t.to))
        .filter_map(|t| match t.subject {
            Subject::Person(id) => Some(id),
            Subject::Account(_) => None,
        })
        .collect()
}

/// People who reached `target` by `as_of` (see the module docs).
pub fn reached_target(
    pb: &Playbook,
    transitions: &Transitions,
    deals: &[Deal],
    target: &Target,
    as_of: Timestamp,
) -> BTreeSet<i64> {
    match target {
        Target::Stage(s) => reached_stage(pb, transitions, s, as_of),
        Target::Won => {
            let mut won = match won_stage(pb) {
                Some(s) => reached_stage(pb, transitions, &s, as_of),
                None => BTreeSet::new(),
            };
            won.extend(
                deals
                    .iter()
                    .filter(|d| {
                        d.status == DealStatus::Won
                            && d.closed_at.is_some_and(|c| c <= as_of)
                            && DealKind::is_new_business(d)
                    })
                    .filter_map(|d| d.person_id),
            );
            won
        }
    }
}

/// Each person's first entry into `stage` (exactly that stage) not after
/// `as_of`.
pub fn first_entries(
    transitions: &Transitions,
    stage: &str,
    as_of: Timestamp,
) -> BTreeMap<i64, Timestamp> {
    let mut out: BTreeMap<i64, Timestamp> = BTreeMap::new();
    for t in transitions
        .iter()
        .filter(|t| t.at <= as_of && t.to == stage)
    {
        if let Subject::Person(id) = t.subject {
            let e = out.entry(id).or_insert(t.at);
            *e = (*e).min(t.at);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::domain::Transition;
    use crate::money::{Currency, Money};
    use crate::playbook::STARTER;
    use crate::time::DAY_MS;

    fn pb() -> Playbook {
        Playbook::load(STARTER).playbook.unwrap()
    }

    fn t(p: i64, to: &str, d: i64) -> Transition {
        Transition {
            seq: d,
            subject: Subject::Person(p),
            from: None,
            to: to.into(),
            at: Timestamp::from_millis(d * DAY_MS),
            actor: "test".into(),
            reason: None,
            note: None,
            cycle: 1,
            skipped: false,
        }
    }

    fn won_deal(p: i64, closed: i64) -> Deal {
        Deal {
            id: p,
            external_id: format!("d{p}"),
            account_id: None,
            person_id: Some(p),
            name: None,
            amount: Money {
                minor: 0,
                currency: Currency::parse("USD").unwrap(),
            },
            created_at: Timestamp::from_millis(0),
            closed_at: Some(Timestamp::from_millis(closed * DAY_MS)),
            status: DealStatus::Won,
            lost_reason: None,
            owner: None,
            kind: "new".into(),
        }
    }

    /// P1 mql 1 → sql 3; P2 mql 2 → customer 5 (skips sal, sql);
    /// P3 mql 1 → disqualified 4; P4 mql 1 with a deal won on day 6;
    /// P5 mql 2 → mql again 8 (a second cycle); an account reaches customer.
    #[test]
    fn reached_counts_later_stages_and_won_deals() {
        let pb = pb();
        let mut ts = vec![
            t(1, "mql", 1),
            t(1, "sql", 3),
            t(2, "mql", 2),
            t(2, "customer", 5),
            t(3, "mql", 1),
            t(3, "disqualified", 4),
            t(4, "mql", 1),
            t(5, "mql", 2),
            t(5, "mql", 8),
        ];
        ts.push(Transition {
            subject: Subject::Account(9),
            ..t(0, "customer", 1)
        });
        let ts = Transitions::from(ts);
        let deals = [won_deal(4, 6)];
        let at = |d: i64| Timestamp::from_millis(d * DAY_MS);
        let v = |s: BTreeSet<i64>| s.into_iter().collect::<Vec<_>>();
        assert_eq!(v(reached_stage(&pb, &ts, "sql", at(10))), [1, 2]);
        assert_eq!(v(reached_stage(&pb, &ts, "sql", at(4))), [1]);
        assert_eq!(v(reached_stage(&pb, &ts, "mql", at(10))), [1, 2, 3, 4, 5]);
        assert_eq!(v(reached_stage(&pb, &ts, "disqualified", at(10))), [3]);
        let won = Target::parse(&pb, "won").unwrap();
        assert_eq!(v(reached_target(&pb, &ts, &deals, &won, at(10))), [2, 4]);
        assert_eq!(v(reached_target(&pb, &ts, &deals, &won, at(5))), [2]);
        let sql = Target::parse(&pb, "sql").unwrap();
        assert_eq!(sql, Target::Stage("sql".into()));
        assert_eq!(v(reached_target(&pb, &ts, &deals, &sql, at(10))), [1, 2]);
        assert_eq!(
            Target::parse(&pb, "nope"),
            Err(UnknownTarget("nope".into()))
        );
        let first = first_entries(&ts, "mql", at(10));
        assert_eq!(first.get(&5), Some(&at(2)));
        assert_eq!(first.len(), 5);
        assert_eq!(first_entries(&ts, "mql", at(1)).len(), 3);
    }
}
