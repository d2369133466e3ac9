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
#[derive(Clone, Debug, PartialEq)]
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

/// Ids bound per `IN (…)` list when loading many people's facts.
const IDS_PER_QUERY: usize = 500;

/// [`load`] for many people at once: one query per table per 500 people
/// instead of six per person (each query is a round trip to the database
/// thread), its rows packed into one value on SQLite ([`crate::warm::select`]). Returns the facts in the order of `ids` (each id once), every
/// list ordered as [`load`] orders it; an id that is no stored person is an
/// error, as in [`load`].
pub async fn load_many(c: &mut AnyConnection, ids: &[i64]) -> Result<Vec<PersonFacts>, StoreError> {
    use repo::{ACCOUNT_COLS, ACTIVITY_COLS, DEAL_COLS, PERSON_COLS, TOUCH_COLS, TRANSITION_COLS};
    use std::collections::HashMap;
    /// `SELECT cols FROM table WHERE filter IN (ids)`, 500 ids at a time.
    /// Only numbered placeholders are formatted in; ids are bound.
    async fn rows<T: crate::warm::Record>(
        c: &mut AnyConnection,
        (cols, table): (&str, &str),
        filter: &str,
        ids: &[i64],
    ) -> Result<Vec<T>, StoreError> {
        let mut out = Vec::new();
        let anon = repo::anonymous_params(c);
        for chunk in ids.chunks(IDS_PER_QUERY) {
            let from = format!(
                "{table} WHERE {filter} IN ({})",
                repo::param_list(1, chunk.len(), anon)
            );
            out.extend(crate::warm::select(c, cols, &from, chunk).await?);
        }
        Ok(out)
    }
    fn grouped<T>(rows: Vec<T>, key: fn(&T) -> i64) -> HashMap<i64, Vec<T>> {
        let mut out: HashMap<i64, Vec<T>> = HashMap::new();
        for r in rows {
            out.entry(key(&r)).or_default().push(r);
        }
        out
    }
    let people: Vec<Person> = rows(c, (PERSON_COLS, "people"), "id", ids).await?;
    let mut account_ids: Vec<i64> = people.iter().filter_map(|p| p.account_id).collect();
    account_ids.sort_unstable();
    account_ids.dedup();
    let accounts: HashMap<i64, Account> = rows(c, (ACCOUNT_COLS, "accounts"), "id", &account_ids)
        .await?
        .into_iter()
        .map(|a: Account| (a.id, a))
        .collect();
    let touches: Vec<Touch> = rows(c, (TOUCH_COLS, "touches"), "person_id", ids).await?;
    let mut touches = grouped(touches, |t| t.person_id);
    let activities: Vec<Activity> =
        rows(c, (ACTIVITY_COLS, "activities"), "person_id", ids).await?;
    let mut activities = grouped(activities, |a| a.person_id);
    // A person's deals (`repo::deals_of`): their own, and the account's
    // deals without a person that were open when they were created.
    let mut deals: Vec<Deal> = rows(c, (DEAL_COLS, "deals"), "person_id", ids).await?;
    let account_deals = "person_id IS NULL AND account_id";
    deals.extend(rows(c, (DEAL_COLS, "deals"), account_deals, &account_ids).await?);
    let person_history = "subject_kind = 'person' AND subject_id";
    let transitions: Vec<Transition> =
        rows(c, (TRANSITION_COLS, "transitions"), person_history, ids).await?;
    let mut transitions = grouped(transitions, |t| t.subject.id());
    let mut by_id: HashMap<i64, Person> = people.into_iter().map(|p| (p.id, p)).collect();
    let mut out = Vec::with_capacity(by_id.len());
    for id in ids {
        let person = by_id
            .remove(id)
            .ok_or_else(|| StoreError::not_found(format!("person #{id}")))?;
        let mut touches = touches.remove(id).unwrap_or_default();
        touches.sort_by_key(|t| (t.at, t.id));
        let mut activities = activities.remove(id).unwrap_or_default();
        activities.sort_by_key(|a| (a.at, a.id));
        let mut own: Vec<Deal> = deals
            .iter()
            .filter(|d| match d.person_id {
                Some(p) => p == person.id,
                None => {
                    d.account_id.is_some()
                        && d.account_id == person.account_id
                        && d.closed_at.is_none_or(|c| c >= person.created_at)
                }
            })
            .cloned()
            .collect();
        own.sort_by_key(|d| (d.created_at, d.id));
        let mut transitions = transitions.remove(id).unwrap_or_default();
        transitions.sort_by_key(|t| (t.at, t.seq));
        out.push(PersonFacts {
            account: person.account_id.and_then(|a| accounts.get(&a).cloned()),
            person,
            touches,
            activities,
            deals: own,
            transitions,
        });
    }
    Ok(out)
}

/// [`advance`] for many people (each once, in the order given), reading
/// their facts with [`load_many`]. Returns the new transitions.
pub async fn advance_many(
    c: &mut AnyConnection,
    pb: &Playbook,
    ids: &[i64],
    until: Timestamp,
) -> Result<Vec<Transition>, StoreError> {
    advance_many_with(c, pb, ids, Vec::new(), until).await
}

/// [`advance_many`] when the caller already holds some of these people's
/// facts exactly as stored (`known`; e.g. people it inserted in this
/// transaction, whose facts are the row alone): those are not read again,
/// nor locked (no other transaction can see them yet). The others are
/// locked and read with [`load_many`]. Everyone's moves are appended
/// together ([`repo::append_many`]), in the order of `ids`, so the stored
/// `seq`s are those of [`advance`] person by person.
pub async fn advance_many_with(
    c: &mut AnyConnection,
    pb: &Playbook,
    ids: &[i64],
    known: Vec<PersonFacts>,
    until: Timestamp,
) -> Result<Vec<Transition>, StoreError> {
    use std::collections::HashMap;
    let mut known: HashMap<i64, PersonFacts> =
        known.into_iter().map(|pf| (pf.person.id, pf)).collect();
    let to_load: Vec<i64> = ids
        .iter()
        .copied()
        .filter(|id| !known.contains_key(id))
        .collect();
    repo::lock_people(c, &to_load).await?;
    let mut loaded: HashMap<i64, PersonFacts> = load_many(c, &to_load)
        .await?
        .into_iter()
        .map(|pf| (pf.person.id, pf))
        .collect();
    let mut people = Vec::with_capacity(ids.len());
    for id in ids {
        let pf = known
            .remove(id)
            .or_else(|| loaded.remove(id))
            .ok_or_else(|| StoreError::not_found(format!("person #{id}")))?;
        people.push(pf);
    }
    let people: Vec<(&PersonFacts, Timestamp)> = people
        .iter()
        .map(|pf| (pf, lifecycle::EVERY_INSTANT))
        .collect();
    advance_held(c, pb, &people, until).await
}

/// Re-evaluates people whose facts the caller holds exactly as stored, up
/// to `until`, each from the instant paired with it (see
/// [`lifecycle::advance_after`]; [`lifecycle::EVERY_INSTANT`] for all), and
/// appends everyone's moves together, in the order given. Returns the new
/// transitions (with their `seq`s) in that order. Nothing is read or
/// locked: the caller must hold what a concurrent writer would change (a
/// lock, or being the only writer).
pub async fn advance_held(
    c: &mut AnyConnection,
    pb: &Playbook,
    people: &[(&PersonFacts, Timestamp)],
    until: Timestamp,
) -> Result<Vec<Transition>, StoreError> {
    let moves = advance_all(pb, people, until);
    repo::append_many(c, moves.iter().map(|(s, m)| (*s, m.as_slice()))).await
}

/// The moves of each of `people` (in order; people without a move left
/// out), appending nothing: [`advance_held`] without the store, for a
/// caller that writes the moves itself (a bulk load). Evaluating the playbook is most of an import's CPU and each
/// person's is independent, so a large batch is split over the machine's
/// cores while the database waits; the order, and so the stored `seq`s,
/// do not depend on the split.
pub fn advance_all(
    pb: &Playbook,
    people: &[(&PersonFacts, Timestamp)],
    until: Timestamp,
) -> Vec<(Subject, Vec<lifecycle::Move>)> {
    /// Below this a thread costs more than it saves (a few µs per person).
    const PER_THREAD: usize = 500;
    let one = |chunk: &[(&PersonFacts, Timestamp)]| -> Vec<(Subject, Vec<lifecycle::Move>)> {
        chunk
            .iter()
            .filter_map(|&(pf, from)| {
                let m = lifecycle::advance_after(pb, &pf.state(), &pf.facts(), until, from);
                (!m.is_empty()).then_some((Subject::Person(pf.person.id), m))
            })
            .collect()
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(people.len() / PER_THREAD);
    if threads <= 1 {
        return one(people);
    }
    let size = people.len().div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = people
            .chunks(size)
            .map(|chunk| s.spawn(move || one(chunk)))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| match h.join() {
                Ok(moves) => moves,
                // The engine does not panic on data; if it did, the
                // caller sees the same panic as without threads.
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
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
