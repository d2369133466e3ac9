//! The facts of the people the group committer re-evaluated lately, kept
//! between its transactions so the next call for the same person does not
//! read them again.
//!
//! A track call re-evaluates its person, and that needs everything stored
//! about them: with a few hundred touches, reading and decoding them was
//! most of a call's cost (the packed reads of [`lifecycle::load_many`]),
//! and it grew with each call. The committer is the only writer of these
//! facts while its [`tandem_store::SoleWriter`] says nobody else committed,
//! so what it read once plus what it wrote since is what the store holds.
//! Anything it cannot follow row by row drops facts instead of guessing:
//! another connection's commit, a failed group, an account upsert, a touch
//! or activity stored again under its external id, another playbook.
//!
//! With the facts it keeps the instant each person was last evaluated up
//! to, so the next re-evaluation starts at the earlier of that instant and
//! the new facts ([`tandem_core::lifecycle::advance_after`]): a lead that
//! never qualifies no longer re-evaluates its whole history per call.

use std::collections::{BTreeSet, HashMap};

use tandem_core::domain::{Activity, Touch, Transition};
use tandem_core::playbook::Playbook;
use tandem_core::Timestamp;
use tandem_store::lifecycle::{self, PersonFacts};
use tandem_store::{AnyConnection, StoreError};

/// Most rows (touches, activities, deals, transitions) held; past it
/// everything is dropped and read again as needed. About 100 bytes a row,
/// so some 25 MB.
const MAX_ROWS: usize = 250_000;

/// What a group's calls changed in stored people's facts, recorded as they
/// are stored: rows appended to a person's facts, people whose own row
/// changed, or a change that can reach people the calls do not name.
#[derive(Debug, Default)]
pub(super) struct Journal {
    /// Touches inserted (with their ids).
    pub touches: Vec<Touch>,
    /// Activities inserted (with their ids).
    pub activities: Vec<Activity>,
    /// People inserted or updated.
    pub people: BTreeSet<i64>,
    /// An account changed (its contacts' facts read it), or a touch or
    /// activity was stored again under its external id (it may have moved
    /// from another person).
    pub anyone: bool,
}

/// The facts held, each exactly as stored.
#[derive(Debug, Default)]
pub(super) struct Held {
    people: HashMap<i64, Entry>,
    rows: usize,
}

/// One person held.
#[derive(Debug)]
struct Entry {
    facts: PersonFacts,
    /// Re-evaluate from this instant: one after the last evaluation's
    /// `until`, or earlier when a fact dated before it was added since.
    from: Timestamp,
}

fn rows(pf: &PersonFacts) -> usize {
    pf.touches.len() + pf.activities.len() + pf.deals.len() + pf.transitions.len()
}

impl Held {
    /// Forgets everything (the store may hold something else now).
    pub fn clear(&mut self) {
        self.people.clear();
        self.rows = 0;
    }

    /// Brings the held facts up to what a group stored, before its people
    /// are re-evaluated. Rows of people not held are left to be read.
    pub fn apply(&mut self, journal: Journal) {
        if journal.anyone {
            self.clear();
            return;
        }
        for id in &journal.people {
            if let Some(e) = self.people.remove(id) {
                self.rows -= rows(&e.facts);
            }
        }
        for t in journal.touches {
            self.append(t.person_id, |f| &mut f.touches, t, |t| (t.at, t.id));
        }
        for a in journal.activities {
            self.append(a.person_id, |f| &mut f.activities, a, |a| (a.at, a.id));
        }
    }

    /// Adds a row written for `person` (if held) to its list, in the order
    /// a read gives it (`load_many`: by instant, then id), and moves the
    /// instant to re-evaluate from back to the row's when earlier.
    fn append<T>(
        &mut self,
        person: i64,
        list: impl FnOnce(&mut PersonFacts) -> &mut Vec<T>,
        row: T,
        key: impl Fn(&T) -> (Timestamp, i64),
    ) {
        if let Some(e) = self.people.get_mut(&person) {
            let k = key(&row);
            e.from = e.from.min(k.0);
            let list = list(&mut e.facts);
            list.insert(list.partition_point(|x| key(x) <= k), row);
            self.rows += 1;
        }
    }

    /// Takes out the facts of `ids` held, each with the instant to
    /// re-evaluate it from; the second list is the ids not held.
    fn take(&mut self, ids: &[i64]) -> (HashMap<i64, (PersonFacts, Timestamp)>, Vec<i64>) {
        let mut have = HashMap::with_capacity(ids.len());
        let mut missing = Vec::new();
        for id in ids {
            match self.people.remove(id) {
                Some(e) => {
                    self.rows -= rows(&e.facts);
                    have.insert(*id, (e.facts, e.from));
                }
                None => missing.push(*id),
            }
        }
        (have, missing)
    }

    /// Keeps people's facts, re-evaluated up to `until`, with the
    /// transitions just appended for them.
    fn keep(&mut self, people: Vec<PersonFacts>, appended: Vec<Transition>, until: Timestamp) {
        let mut by_id: HashMap<i64, PersonFacts> =
            people.into_iter().map(|pf| (pf.person.id, pf)).collect();
        for t in appended {
            if let Some(pf) = by_id.get_mut(&t.subject.id()) {
                pf.transitions.push(t);
            }
        }
        let from = Timestamp::from_millis(until.millis().saturating_add(1));
        for (id, mut facts) in by_id {
            // Appended moves come after every stored one; sorting a sorted
            // list is one pass.
            facts.transitions.sort_by_key(|t| (t.at, t.seq));
            self.rows += rows(&facts);
            if let Some(old) = self.people.insert(id, Entry { facts, from }) {
                self.rows -= rows(&old.facts);
            }
        }
        if self.rows > MAX_ROWS {
            self.clear();
        }
    }

    /// People held.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.people.len()
    }

    /// The facts held, by person id (tests compare them with a read).
    #[cfg(test)]
    pub fn iter(&self) -> impl Iterator<Item = (i64, &PersonFacts)> {
        self.people.iter().map(|(id, e)| (*id, &e.facts))
    }
}

/// Re-evaluates `ids` up to `until` from held facts (each from its own
/// instant), reading only the people not held, and keeps everyone's facts
/// with their new transitions.
pub(super) async fn advance(
    c: &mut AnyConnection,
    pb: &Playbook,
    held: &mut Held,
    ids: &[i64],
    until: Timestamp,
) -> Result<(), StoreError> {
    let (mut have, missing) = held.take(ids);
    for pf in lifecycle::load_many(c, &missing).await? {
        // Just read: nothing is known to have been evaluated.
        have.insert(pf.person.id, (pf, tandem_core::lifecycle::EVERY_INSTANT));
    }
    // `load_many` refuses an id that is no stored person, so each is here.
    let people: Vec<(PersonFacts, Timestamp)> =
        ids.iter().filter_map(|id| have.remove(id)).collect();
    let refs: Vec<(&PersonFacts, Timestamp)> =
        people.iter().map(|(pf, from)| (pf, *from)).collect();
    let appended = lifecycle::advance_held(c, pb, &refs, until).await?;
    held.keep(
        people.into_iter().map(|(pf, _)| pf).collect(),
        appended,
        until,
    );
    Ok(())
}
