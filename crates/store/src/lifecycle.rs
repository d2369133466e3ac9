//! The I/O shell around the core lifecycle engine: load a person's facts and
//! transitions, ask core what to append, append it in the same transaction.

use sqlx::AnyConnection;
use tandem_core::domain::{Account, Activity, Deal, Person, Subject, Touch, Transition};
use tandem_core::facts::Facts;
use tandem_core::lifecycle::{self, ManualMove, State};
use tandem_core::playbook::Playbook;
use tandem_core::Timestamp;

use crate::repo;
use crate::StoreError;

/// Everything stored about one person, owned.
#[derive(Clone, Debug)]
pub struct PersonFacts {
    pub person: Person,
    pub account: Option<Account>,
    pub touches: Vec<Touch>,
    pub activities: Vec<Activity>,
    pub deals: Vec<Deal>,
    pub transitions: Vec<Transition>,
}

impl PersonFacts {
    /// Borrowed view for the core engine.
    pub fn facts(&self) -> Facts<'_> {
        Facts {
            person: &self.person,
            account: self.account.as_ref(),
            touches: &self.touches,
            activities: &self.activities,
            deals: &self.deals,
        }
    }

    /// Current lifecycle state.
    pub fn state(&self) -> State {
        State::replay(&self.transitions)
    }
}

/// Loads everything about a person.
pub async fn load(c: &mut AnyConnection, person_id: i64) -> Result<PersonFacts, StoreError> {
    let person = repo::person(c, person_id)
        .await?
        .ok_or_else(|| StoreError::not_found(format!("person #{person_id}")))?;
    let account = match person.account_id {
        Some(id) => repo::account(c, id).await?,
        None => None,
    };
    let touches = repo::touches_of(c, person_id).await?;
    let activities = repo::activities_of(c, person_id).await?;
    let deals = repo::deals_of(c, &person).await?;
    let transitions = repo::transitions_of(c, Subject::Person(person_id)).await?;
    Ok(PersonFacts {
        person,
        account,
        touches,
        activities,
        deals,
        transitions,
    })
}

/// Re-evaluates automatic stage entry for a person up to `until` and appends
/// what the engine decides. Returns the new transitions.
///
/// Locks the person first ([`repo::lock_person`]): two transactions deciding
/// moves for one person from the same history would append the same move
/// twice, so the second waits and then reads what the first appended.
pub async fn advance(
    c: &mut AnyConnection,
    pb: &Playbook,
    person_id: i64,
    until: Timestamp,
) -> Result<Vec<Transition>, StoreError> {
    repo::lock_person(c, person_id).await?;
    let pf = load(c, person_id).await?;
    let moves = lifecycle::advance(pb, &pf.state(), &pf.facts(), until);
    repo::append(c, Subject::Person(person_id), &moves).await
}

/// A manual move failed: either the rules refused it or the store failed.
#[derive(Debug, thiserror::Error)]
pub enum MoveError {
    #[error(transparent)]
    Rule(#[from] lifecycle::LifecycleError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Where a manual move goes.
#[derive(Clone, Copy, Debug)]
pub enum Target<'a> {
    /// A named stage.
    Stage(&'a str),
    /// The funnel stage after the one the lead is in at the time of the move.
    Accept,
    /// The disqualify off-ramp, or the recycle one.
    Reject { recycle: bool },
}

/// A manual move whose target may depend on the lead's state.
#[derive(Clone, Copy, Debug)]
pub struct MoveRequest<'a> {
    pub target: Target<'a>,
    pub at: Timestamp,
    pub actor: &'a str,
    pub reason: Option<&'a str>,
    pub note: Option<&'a str>,
}

/// What a manual move appended: automatic catch-up first, then the move.
#[derive(Clone, Debug)]
pub struct Moved {
    /// The stage the move went to.
    pub stage: String,
    pub appended: Vec<Transition>,
}

/// Catches up on automatic entry up to the move's time (so `accept` sees a
/// lead that just became an MQL), resolves the target against the state that
/// results, and appends the move. Nothing is appended by the caller's
/// transaction when the rules refuse, as long as it rolls back.
pub async fn move_person_to(
    c: &mut AnyConnection,
    pb: &Playbook,
    person_id: i64,
    r: &MoveRequest<'_>,
) -> Result<Moved, MoveError> {
    let mut appended = advance(c, pb, person_id, r.at).await?;
    let state = load(c, person_id).await?.state();
    let stage = match r.target {
        Target::Stage(s) => s.to_string(),
        Target::Accept => lifecycle::accept_target(pb, &state)?.id.clone(),
        Target::Reject { recycle } => lifecycle::reject_target(pb, recycle)?.id.clone(),
    };
    let m = ManualMove {
        to: &stage,
        at: r.at,
        actor: r.actor,
        reason: r.reason,
        note: r.note,
    };
    let moves = lifecycle::manual(pb, &state, &m)?;
    appended.extend(repo::append(c, Subject::Person(person_id), &moves).await?);
    Ok(Moved { stage, appended })
}

/// Applies a manual move to a named stage (after catching up on automatic
/// entry up to its time) and appends the result.
pub async fn move_person(
    c: &mut AnyConnection,
    pb: &Playbook,
    person_id: i64,
    m: &ManualMove<'_>,
) -> Result<Vec<Transition>, MoveError> {
    let r = MoveRequest {
        target: Target::Stage(m.to),
        at: m.at,
        actor: m.actor,
        reason: m.reason,
        note: m.note,
    };
    Ok(move_person_to(c, pb, person_id, &r).await?.appended)
}
