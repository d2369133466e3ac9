//! The SLA's clocks kept per history version ([`SlaIndex`]).
//!
//! Most of what [`handoff_page`] and [`marketing_sla`] compute does not
//! depend on the as-of instant: which people entered the SLA stage, their
//! transitions and activities grouped per person, when each handoff entered
//! and left the stage, its business-hour and attempts deadlines, its first
//! response. On a large history that part was nearly all of the time (over
//! 600,000 handoffs grouped and given deadlines on every call, and the same
//! people grouped again for the marketing side), so a server keeps it per
//! history version and each call only settles the clocks at its instant.
//!
//! Facts after `as_of` must not count, so the index keeps the *whole*
//! history's times and each call cuts them at `as_of`: a person's run of
//! transitions cut at `as_of` is a prefix of their whole run (runs are in
//! time order), so the stage is left at the whole run's leaving time if
//! that is not after `as_of`, the first response is the first activity at
//! or after entry if that is not after `as_of`, and so on. The results
//! equal the direct computation's for every `as_of` (proptested in
//! `tests.rs`).

use crate::activities::Activities;
use crate::domain::Person;
use crate::idmap::position;
use crate::playbook::{Company, Playbook, SalesSla};
use crate::sym::Sym;
use crate::time::Timestamp;
use crate::transitions::Transitions;

use super::{
    business_deadline, calendar_days_after, clock_status, handoff_status, mql_stage,
    response_hours, sales_terms, Clock, ClockStatus, Cohort, Counts, HandoffKey, HandoffPage,
    HandoffQuery, MarketingSlaReport, MarketingTerms, OwnerCompliance, PerPerson, SlaError, Wanted,
};

/// Both sides of the SLA of one history, apart from the as-of instant:
/// built once per history version (and playbook), then asked for any
/// `as_of`. Answers only for the history and playbook it was built from.
#[derive(Debug, Default)]
pub struct SlaIndex {
    /// Every handoff of the whole history, in [`HandoffKey`] order.
    handoffs: Vec<KeptHandoff>,
    /// The handoffs' owners, in the order compliance lists them (by name,
    /// unowned last); [`KeptHandoff::owner`] indexes it.
    owners: Vec<Option<String>>,
    /// Activity times of the people handed off, each person's sorted;
    /// [`KeptHandoff::acts`] is a range of it.
    act_times: Vec<Timestamp>,
    /// Every entry into the MQL stage, by time (the marketing side).
    mqls: Vec<MqlEntry>,
}

/// A handoff with what does not depend on `as_of`. The times are the
/// whole history's; a call ignores those after its `as_of`. Positions are
/// `u32`s ([`position`]), which keeps it at 80 bytes (112 with `usize`s): the
/// large demo keeps 600,000 of them.
#[derive(Debug)]
struct KeptHandoff {
    entered_at: Timestamp,
    person_id: i64,
    /// The entry transition's sequence number (the key's tie-break).
    seq: i64,
    cycle: u32,
    /// Position of the person in the history's people; `u32::MAX` if not
    /// there.
    person: u32,
    /// Index into [`SlaIndex::owners`].
    owner: u32,
    deadline: Timestamp,
    attempts_deadline: Timestamp,
    /// When the lead left the stage, if it did.
    left_at: Option<Timestamp>,
    /// The position of the transition that left it (with `left_at`).
    left_by: u32,
    /// The first activity at or after entry, unless it came after the lead
    /// left.
    responded: Option<Timestamp>,
    /// The activities from entry to the attempts deadline or the lead
    /// leaving, whichever is first: `act_times[acts.0..acts.1]`.
    acts: (u32, u32),
}

/// A [`position`] back as an index.
fn at(p: u32) -> usize {
    p as usize
}

/// One entry into the MQL stage and the times that settle it.
#[derive(Debug)]
struct MqlEntry {
    at: Timestamp,
    /// The first entry into the SAL stage in the same cycle (before the
    /// person's next MQL entry): accepted from then on.
    accepted_at: Option<Timestamp>,
    /// The first transition of the cycle after the entry: pending until
    /// then, unless accepted.
    decided_at: Option<Timestamp>,
}

impl SlaIndex {
    /// Indexes the SLA clocks of a history for `pb`. The people who ever
    /// entered the MQL (sales SLA) stage are grouped once for both sides.
    pub fn build(
        pb: &Playbook,
        people: &[Person],
        transitions: &Transitions,
        activities: &Activities,
    ) -> SlaIndex {
        let stage = mql_stage(pb);
        let wanted = Wanted::new(
            (transitions.people())
                .filter(|&(i, _)| transitions.to(i) == stage)
                .map(|(_, id)| id),
        );
        let mut runs = PerPerson::new(
            &wanted,
            (transitions.people()).map(|(i, id)| (id, position(i))),
        );
        runs.sort_runs_by_key(|&i| transitions.key(at(i)));

        let mut index = SlaIndex::default();
        if let Ok(sla) = sales_terms(pb) {
            index.index_handoffs(pb, sla, people, transitions, activities, &wanted, &runs);
        }
        if let Ok(terms) = MarketingTerms::of(pb) {
            index.index_mqls(&terms, transitions, &runs);
        }
        // Kept for as long as the history, so without room to spare.
        index.act_times.shrink_to_fit();
        index.mqls.shrink_to_fit();
        index
    }

    #[allow(clippy::too_many_arguments)]
    fn index_handoffs(
        &mut self,
        pb: &Playbook,
        sla: &SalesSla,
        people: &[Person],
        transitions: &Transitions,
        activities: &Activities,
        wanted: &Wanted,
        runs: &PerPerson<'_, u32>,
    ) {
        let company = &pb.company;
        let positions = PerPerson::new(
            wanted,
            people.iter().enumerate().map(|(i, p)| (p.id, position(i))),
        );
        let mut acts = PerPerson::new(wanted, activities.people_and_times());
        acts.sort_runs_by_key(|&at| at);

        // Sized once (at most one handoff per entry): grown by doubling,
        // the list held up to twice the large demo's 600,000 handoffs.
        let entries = (0..transitions.len())
            .filter(|&i| transitions.to(i) == sla.stage && !transitions.skipped(i));
        self.handoffs.reserve_exact(entries.count());
        // Owners are numbered in compliance order once all are known;
        // until then each handoff's is a 4-byte `Sym` (a `&str` took 16,
        // twice over, for 600,000 handoffs).
        let mut owners: Vec<Option<Sym>> = Vec::with_capacity(self.handoffs.capacity());
        for (person_id, run) in runs.runs() {
            let person = positions.of(person_id).first().copied();
            let owner = person.and_then(|i| people.get(at(i))?.owner);
            let base = acts.range_of(person_id).start;
            let person_acts = acts.of(person_id);
            for (k, &i) in run.iter().enumerate() {
                let entry = transitions.get(at(i));
                if entry.to != sla.stage || entry.skipped {
                    continue;
                }
                let left = run[k + 1..]
                    .iter()
                    .find(|&&j| transitions.to(at(j)) != sla.stage)
                    .map(|&j| (transitions.ats()[at(j)], j));
                let left_at = left.map(|l| l.0);
                let left_by = left.map_or(u32::MAX, |l| l.1);
                let entered_at = entry.at;
                let attempts_deadline =
                    calendar_days_after(entered_at, sla.attempts_within_days, company);
                let from = person_acts.partition_point(|a| *a < entered_at);
                let responded = person_acts
                    .get(from)
                    .copied()
                    .filter(|r| left_at.is_none_or(|l| *r <= l));
                let window_end = left_at.map_or(attempts_deadline, |l| l.min(attempts_deadline));
                let to = from + person_acts[from..].partition_point(|a| *a <= window_end);
                owners.push(owner);
                self.handoffs.push(KeptHandoff {
                    entered_at,
                    person_id,
                    seq: entry.seq,
                    cycle: entry.cycle,
                    person: person.unwrap_or(u32::MAX),
                    owner: position(owners.len() - 1),
                    deadline: business_deadline(entered_at, sla.first_response_hours, company),
                    attempts_deadline,
                    left_at,
                    left_by,
                    responded,
                    acts: (position(base + from), position(base + to)),
                });
            }
        }
        self.act_times = acts.items;
        // Until here `owner` is the handoff's position in `owners`.
        let mut names: Vec<Option<Sym>> = owners.clone();
        names.sort_unstable_by_key(|o| (o.is_none(), *o));
        names.dedup();
        for h in &mut self.handoffs {
            let name = owners[at(h.owner)];
            h.owner =
                position(names.partition_point(|o| (o.is_none(), *o) < (name.is_none(), name)));
        }
        self.owners = names.into_iter().map(|o| o.map(String::from)).collect();
        // The key is unique (it ends in the entry's seq).
        self.handoffs.sort_unstable_by_key(KeptHandoff::key);
    }

    fn index_mqls(
        &mut self,
        terms: &MarketingTerms<'_>,
        transitions: &Transitions,
        runs: &PerPerson<'_, u32>,
    ) {
        let (mql, sal) = (&terms.mql.id, &terms.sal.id);
        // Sized once: grown by doubling, the list held room for up to
        // twice the large demo's entries (25 MB at the SLA's peak).
        let entries = (runs.items.iter())
            .filter(|&&i| transitions.to(at(i)) == *mql)
            .count();
        self.mqls.reserve_exact(entries);
        for (_, run) in runs.runs() {
            for (k, &i) in run.iter().enumerate() {
                if transitions.to(at(i)) != *mql {
                    continue;
                }
                let rest = &run[k + 1..];
                let cycle_end = rest
                    .iter()
                    .position(|&j| transitions.to(at(j)) == *mql)
                    .unwrap_or(rest.len());
                let cycle = &rest[..cycle_end];
                self.mqls.push(MqlEntry {
                    at: transitions.ats()[at(i)],
                    accepted_at: cycle
                        .iter()
                        .find(|&&j| transitions.to(at(j)) == *sal)
                        .map(|&j| transitions.ats()[at(j)]),
                    decided_at: cycle.first().map(|&j| transitions.ats()[at(j)]),
                });
            }
        }
        self.mqls.sort_unstable_by_key(|e| e.at);
    }

    /// [`handoff_page`](super::handoff_page) as of `as_of`, for the history this index was built
    /// from. `people` and `transitions` must be that history's slices: the
    /// index keeps positions in them (rather than copies of their strings),
    /// and only the page's handoffs read them.
    pub fn handoff_page(
        &self,
        pb: &Playbook,
        people: &[Person],
        transitions: &Transitions,
        as_of: Timestamp,
        q: HandoffQuery<'_>,
    ) -> Result<HandoffPage, SlaError> {
        let sla = sales_terms(pb)?;
        // The handoffs entered by `as_of` (and in the window) are one run
        // of the key order.
        let lo = q.window.map_or(0, |w| {
            self.handoffs.partition_point(|h| h.entered_at < w.from)
        });
        let hi = lo
            + self.handoffs[lo..].partition_point(|h| {
                h.entered_at <= as_of && q.window.is_none_or(|w| h.entered_at < w.to)
            });
        let range = &self.handoffs[lo..hi];
        let owner = match q.owner {
            None => None,
            Some(o) => match self.owners.iter().position(|n| n.as_deref() == Some(o)) {
                Some(i) => Some(i),
                // Nobody's handoffs: count none.
                None => Some(usize::MAX),
            },
        };
        let mine = |h: &&KeptHandoff| owner.is_none_or(|o| at(h.owner) == o);

        let mut per_owner = vec![Counts::default(); self.owners.len()];
        let mut all = Counts::default();
        for h in range.iter().filter(mine) {
            let status = self.settle(h, sla, as_of).status;
            all.add(status);
            per_owner[at(h.owner)].add(status);
        }
        let start = q
            .after
            .map_or(0, |a| range.partition_point(|h| h.key() <= a));
        let mut rest = range[start..].iter().filter(mine);
        let page: Vec<&KeptHandoff> = rest.by_ref().take(q.limit).collect();
        let more = rest.next().is_some();
        let company = &pb.company;
        Ok(HandoffPage {
            total: all.0.iter().sum::<i64>() as usize,
            overall: all.compliance(),
            by_owner: self
                .owners
                .iter()
                .zip(per_owner)
                .filter(|(_, c)| !c.is_empty())
                .map(|(owner, c)| OwnerCompliance {
                    owner: owner.clone(),
                    compliance: c.compliance(),
                })
                .collect(),
            handoffs: page
                .iter()
                .map(|h| {
                    self.clock(h, sla, company, people, transitions, as_of)
                        .handoff(sla)
                })
                .collect(),
            next: more.then(|| page.last().map(|h| h.key())).flatten(),
        })
    }

    /// [`marketing_sla`](super::marketing_sla) as of `as_of`, for the history this index was
    /// built from.
    pub fn marketing_sla(
        &self,
        pb: &Playbook,
        since: Option<Timestamp>,
        as_of: Timestamp,
    ) -> Result<MarketingSlaReport, SlaError> {
        let terms = MarketingTerms::of(pb)?;
        // Entries after `as_of` do not exist yet.
        let known = &self.mqls[..self.mqls.partition_point(|e| e.at <= as_of)];
        let first = since.or_else(|| known.first().map(|e| e.at));
        Ok(
            terms.report(&pb.company, first, as_of, |starts_at, ends_at| {
                let lo = known.partition_point(|e| e.at < starts_at);
                let hi = known.partition_point(|e| e.at < ends_at);
                let cohort = &known[lo..hi.max(lo)];
                let accepted = |e: &MqlEntry| e.accepted_at.is_some_and(|a| a <= as_of);
                Cohort {
                    mqls: cohort.len() as i64,
                    sals: cohort.iter().filter(|e| accepted(e)).count() as i64,
                    pending: cohort
                        .iter()
                        .filter(|e| !accepted(e) && e.decided_at.is_none_or(|d| d > as_of))
                        .count() as i64,
                }
            }),
        )
    }

    /// How many handoffs the index holds (of the whole history).
    pub fn len(&self) -> usize {
        self.handoffs.len()
    }

    /// True when the history has no handoff.
    pub fn is_empty(&self) -> bool {
        self.handoffs.is_empty()
    }

    /// Both clocks of `h` as of `as_of`, without the business hours over
    /// or left (only a listed handoff needs those).
    fn settle(&self, h: &KeptHandoff, sla: &SalesSla, as_of: Timestamp) -> Settled {
        let left_at = h.left_at.filter(|&l| l <= as_of);
        let responded_at = h.responded.filter(|&r| r <= as_of);
        let response = clock_status(
            responded_at.is_some_and(|r| r <= h.deadline),
            left_at,
            h.deadline,
            as_of,
        );
        // The kept activities run to the attempts deadline or the lead
        // leaving; `as_of` may cut them shorter.
        let acts = self
            .act_times
            .get(at(h.acts.0)..at(h.acts.1))
            .unwrap_or_default();
        let attempts = match acts.last() {
            Some(last) if *last > as_of => acts.partition_point(|a| *a <= as_of),
            _ => acts.len(),
        } as i64;
        let attempts_status = clock_status(
            attempts >= sla.attempts,
            left_at,
            h.attempts_deadline,
            as_of,
        );
        let status = handoff_status(response, attempts_status);
        Settled {
            left_at,
            responded_at,
            response,
            attempts,
            attempts_status,
            status,
        }
    }

    /// The full [`Clock`] of a listed handoff as of `as_of`.
    fn clock<'a>(
        &self,
        h: &KeptHandoff,
        sla: &SalesSla,
        company: &Company,
        people: &'a [Person],
        transitions: &'a Transitions,
        as_of: Timestamp,
    ) -> Clock<'a> {
        let s = self.settle(h, sla, as_of);
        let (overdue_hours, hours_left) = response_hours(
            s.response,
            h.deadline,
            s.responded_at,
            s.left_at,
            as_of,
            company,
        );
        Clock {
            person_id: h.person_id,
            person: people.get(at(h.person)),
            // Left by `as_of` (then `h.left_by` is that transition), or not
            // yet.
            leave: s.left_at.map(|l| (l, transitions.to(at(h.left_by)))),
            seq: h.seq,
            cycle: h.cycle,
            entered_at: h.entered_at,
            deadline: h.deadline,
            responded_at: s.responded_at,
            response: s.response,
            attempts: s.attempts,
            attempts_deadline: h.attempts_deadline,
            attempts_status: s.attempts_status,
            status: s.status,
            overdue_hours,
            hours_left,
            attempts_short: if s.attempts_status == ClockStatus::Breached {
                sla.attempts - s.attempts
            } else {
                0
            },
        }
    }
}

impl KeptHandoff {
    fn key(&self) -> HandoffKey {
        (self.entered_at, self.person_id, self.seq)
    }
}

/// What a handoff's clocks say as of one instant.
struct Settled {
    left_at: Option<Timestamp>,
    responded_at: Option<Timestamp>,
    response: ClockStatus,
    attempts: i64,
    attempts_status: ClockStatus,
    status: ClockStatus,
}

#[cfg(test)]
mod tests {
    /// A server keeps one per handoff of the whole history.
    #[test]
    fn a_kept_handoff_is_80_bytes() {
        assert_eq!(std::mem::size_of::<super::KeptHandoff>(), 80);
    }
}
