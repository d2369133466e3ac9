//! The account lifecycle: `target → engaged → opportunity → customer →
//! expansion`, with the off-ramp `churned`, derived from the account's
//! target-list entry, its people's stages and activities and its deals, and
//! recorded as appended transitions of `Subject::Account` like people's.
//!
//! Milestones (each at the instant it happened):
//! - **target**: the account was put on the target list;
//! - **engaged**: one of its people entered the MQL stage (`mql`, else the
//!   second funnel stage) or a later funnel stage, or had a meeting or demo;
//! - **opportunity**: its first `new` deal was created, or one of its people
//!   entered the `opportunity` stage;
//! - **customer**: a deal of any kind was won (after a churn this is a
//!   win-back and starts a new cycle);
//! - **expansion**: an `expansion` deal was won while a customer;
//! - **churned**: a `renewal` deal was lost while a customer (reason: the
//!   deal's lost reason, else `renewal_lost`), or a person recorded the churn
//!   by hand (`tandem accounts churn`).
//!
//! Stages only move forward (a milestone that would go back is ignored);
//! skipped stages are not written (the waterfall infers pass-through).
//! [`advance`] reads only milestones after the account's last stored
//! transition and not after `until`, so running it twice appends nothing.

use std::collections::BTreeMap;

use crate::domain::{Activity, ActivityKind, Deal, DealStatus, Transition};
use crate::lifecycle::{Move, State};
use crate::metrics::retention::{DealKind, CHURNED};
use crate::playbook::{Playbook, StageKind};
use crate::sym::Sym;
use crate::time::Timestamp;

/// First stage: on the target list.
pub const TARGET: &str = "target";
/// Someone at the account is marketing-qualified or met sales.
pub const ENGAGED: &str = "engaged";
/// A deal is open or was created.
pub const OPPORTUNITY: &str = "opportunity";
/// A deal was won.
pub const CUSTOMER: &str = "customer";
/// An expansion deal was won.
pub const EXPANSION: &str = "expansion";

/// The account funnel, in order.
pub const FUNNEL: [&str; 5] = [TARGET, ENGAGED, OPPORTUNITY, CUSTOMER, EXPANSION];

/// Reason recorded for a churn derived from a lost renewal without a reason.
pub const RENEWAL_LOST: &str = "renewal_lost";

/// Funnel ids and stage kinds of the account lifecycle, for the generic
/// waterfall ([`crate::metrics::waterfall::waterfall_of`]).
pub fn stages() -> (Vec<String>, BTreeMap<String, StageKind>) {
    let funnel: Vec<String> = FUNNEL.iter().map(|s| s.to_string()).collect();
    let mut kinds: BTreeMap<String, StageKind> = funnel
        .iter()
        .map(|s| (s.clone(), StageKind::Funnel))
        .collect();
    kinds.insert(CHURNED.to_string(), StageKind::Terminal);
    (funnel, kinds)
}

/// Everything the account lifecycle reads about one account.
#[derive(Clone, Copy, Debug)]
pub struct AccountFacts<'a> {
    /// When it was put on the target list, if it is on it.
    pub targeted_at: Option<Timestamp>,
    /// Transitions of the account's people.
    pub people_transitions: &'a [Transition],
    /// Activities with the account's people.
    pub activities: &'a [Activity],
    /// The account's deals.
    pub deals: &'a [Deal],
}

/// A milestone, ordered so that same-instant milestones apply in funnel order.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Milestone {
    Targeted,
    Engaged,
    Opportunity,
    Won(DealKind),
    RenewalLost(Sym),
}

fn rank(stage: Option<&str>) -> i32 {
    match stage {
        None => -1,
        Some(s) => FUNNEL
            .iter()
            .position(|f| *f == s)
            .map(|i| i as i32)
            .unwrap_or(-1),
    }
}

fn milestones(pb: &Playbook, f: &AccountFacts<'_>) -> Vec<(Timestamp, Milestone)> {
    let mut out = Vec::new();
    if let Some(t) = f.targeted_at {
        out.push((t, Milestone::Targeted));
    }
    let funnel: Vec<&str> = pb.funnel().map(|s| s.id.as_str()).collect();
    let mql = funnel
        .iter()
        .position(|s| *s == "mql")
        .unwrap_or(1.min(funnel.len().saturating_sub(1)));
    for t in f.people_transitions {
        if t.to == OPPORTUNITY {
            out.push((t.at, Milestone::Opportunity));
        }
        if funnel
            .iter()
            .position(|s| *s == t.to)
            .is_some_and(|i| i >= mql)
        {
            out.push((t.at, Milestone::Engaged));
        }
    }
    for a in f.activities {
        if matches!(a.kind, ActivityKind::Meeting | ActivityKind::Demo) {
            out.push((a.at, Milestone::Engaged));
        }
    }
    for d in f.deals {
        let kind = DealKind::of(d);
        if kind == DealKind::New {
            out.push((d.created_at, Milestone::Opportunity));
        }
        let Some(closed) = d.closed_at else { continue };
        match d.status {
            DealStatus::Won => out.push((closed, Milestone::Won(kind))),
            DealStatus::Lost if kind == DealKind::Renewal => out.push((
                closed,
                Milestone::RenewalLost(d.lost_reason.unwrap_or_else(|| Sym::new(RENEWAL_LOST))),
            )),
            _ => {}
        }
    }
    out.sort();
    out
}

/// The moves that bring an account's stored transitions (`existing`, any
/// order) up to date with its facts, reading nothing after `until`.
pub fn advance(
    pb: &Playbook,
    facts: &AccountFacts<'_>,
    existing: &[Transition],
    until: Timestamp,
) -> Vec<Move> {
    let mut state = State::replay(existing);
    let last = existing.iter().map(|t| t.at).max();
    let mut out = Vec::new();
    for (at, m) in milestones(pb, facts) {
        if at > until || last.is_some_and(|l| at <= l) {
            continue;
        }
        let cur = state.stage.as_deref();
        let churned = cur == Some(CHURNED);
        let r = rank(cur);
        let (to, reason, cycle) = match m {
            Milestone::Targeted if cur.is_none() => (TARGET, None, 1),
            Milestone::Engaged if !churned && r < 1 => (ENGAGED, None, state.cycle.max(1)),
            Milestone::Opportunity if !churned && r < 2 => (OPPORTUNITY, None, state.cycle.max(1)),
            Milestone::Won(_) if churned => (CUSTOMER, None, state.cycle + 1),
            Milestone::Won(_) if r < 3 => (CUSTOMER, None, state.cycle.max(1)),
            Milestone::Won(DealKind::Expansion) if r == 3 => (EXPANSION, None, state.cycle),
            Milestone::RenewalLost(reason) if r >= 3 => (CHURNED, Some(reason), state.cycle),
            _ => continue,
        };
        let mv = Move {
            from: state.stage,
            to: Sym::new(to),
            at,
            actor: Sym::new("system"),
            reason,
            note: None,
            cycle,
            skipped: false,
        };
        state.stage = Some(mv.to);
        state.cycle = mv.cycle;
        state.entered_at = Some(at);
        out.push(mv);
    }
    out
}

/// Why a churn cannot be recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChurnError {
    /// Only customers (or expanded customers) can churn.
    #[error("the account is {0}, not a customer; only customers can churn")]
    NotCustomer(String),
    /// A churn needs a reason code.
    #[error("a churn needs a reason (--reason)")]
    NoReason,
    /// The churn would be recorded before the account's last transition.
    #[error("the churn at {at} is before the account's last transition at {last}")]
    BeforeLast { at: Timestamp, last: Timestamp },
}

/// The move recording a churn by hand, with its reason.
pub fn churn(
    existing: &[Transition],
    at: Timestamp,
    actor: &str,
    reason: &str,
    note: Option<String>,
) -> Result<Move, ChurnError> {
    if reason.trim().is_empty() {
        return Err(ChurnError::NoReason);
    }
    let state = State::replay(existing);
    if let Some(last) = existing.iter().map(|t| t.at).max() {
        if at < last {
            return Err(ChurnError::BeforeLast { at, last });
        }
    }
    match state.stage.as_deref() {
        Some(CUSTOMER | EXPANSION) => Ok(Move {
            from: state.stage,
            to: Sym::new(CHURNED),
            at,
            actor: Sym::new(actor),
            reason: Some(Sym::new(reason.trim())),
            note,
            cycle: state.cycle,
            skipped: false,
        }),
        other => Err(ChurnError::NotCustomer(
            other.unwrap_or("not in the lifecycle yet").to_string(),
        )),
    }
}
