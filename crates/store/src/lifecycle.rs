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
pub async fn advance(
    c: &mut AnyConnection,
    pb: &Playbook,
    person_id: i64,
    until: Timestamp,
) -> Result<Vec<Transition>, StoreError> {
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

/// Applies a manual move (after catching up on automatic entry up to its
/// time) and appends the result.
pub async fn move_person(
    c: &mut AnyConnection,
    pb: &Playbook,
    person_id: i64,
    m: &ManualMove<'_>,
) -> Result<Vec<Transition>, MoveError> {
    let mut appended = advance(c, pb, person_id, m.at).await?;
    let pf = load(c, person_id).await?;
    let moves = lifecycle::manual(pb, &pf.state(), m)?;
    appended.extend(repo::append(c, Subject::Person(person_id), &moves).await?);
    Ok(appended)
}
