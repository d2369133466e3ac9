//! The demo company after the sale (issue 13): the target-account list with
//! tiers and owner pairs, customers from the year before the history
//! (so renewals fall inside it), renewals that hold, shrink or are lost
//! (churn), expansions, account managers' onboarding meetings (some late),
//! and finally the account lifecycle, derived by the real engine.
//!
//! Every account draws from its own stream (`seed.fork(AFTER_SALE +
//! index)`), so this phase never changes the people generated before it.
//! Post-sale deals belong to the account (no person), so the lead funnel
//! and person-level attribution are as before; nothing happens after the
//! anchor except open deals' expected closes.
//!
//! The phase runs in two steps around the people, all in memory (nothing
//! is read back from the database):
//! 1. [`plan_targets`], before the people: which accounts are on the target
//!    list (so accounts are written once, with their final `target`/`tier`);
//! 2. [`PeopleFacts::finish`], after them: post-sale deals and onboarding
//!    meetings from the facts the people phase collected per account, then
//!    each account's lifecycle from [`lifecycle::advance`], exactly as
//!    `tandem_store::accounts::sync` would derive it from the stored rows.

use std::collections::BTreeMap;
use tandem_core::Sym;

use tandem_core::accounts::lifecycle::{self, AccountFacts};
use tandem_core::domain::{Account, Activity, ActivityKind, Deal, DealStatus, Subject, Transition};
use tandem_core::playbook::Playbook;
use tandem_core::sla::business_deadline;
use tandem_core::time::DAY_MS;
use tandem_core::{Money, Timestamp};
use tandem_store::accounts::Target;

use super::{segment_of, Rng, MARKETERS, SMB};

/// Stream offset of this phase's per-account generators.
const AFTER_SALE: u64 = 0x0C00_0000_0000;
/// Account managers (the third team of the SLA).
const ACCOUNT_MANAGERS: [&str; 2] = ["ida.berg", "marco.conti"];
/// Lost reasons a churned renewal gives (reasons the starter playbook has for `lost`).
const CHURN_REASONS: [&str; 2] = ["no_budget", "competitor_won"];

/// The target list, decided before any person is generated.
pub(crate) struct TargetPlan {
    /// The accounts as they are written: `target`/`tier` set for listed ones.
    pub accounts: Vec<Account>,
    /// The list entries, by account id.
    pub targets: Vec<Target>,
    /// Each account's stream, positioned after the target decision; step 2
    /// continues drawing from it.
    rngs: Vec<Rng>,
}

/// Step 1: which accounts the teams put on the target list: every account
/// the generator marked as a target, and most of what the playbook's list
/// rules propose.
pub(crate) fn plan_targets(
    pb: &Playbook,
    seed: &Rng,
    start: Timestamp,
    world_accounts: &[Account],
) -> TargetPlan {
    let proposed: BTreeMap<i64, i64> = tandem_core::accounts::suggest(pb, world_accounts)
        .into_iter()
        .map(|s| (s.account_id, s.tier))
        .collect();
    let mut plan = TargetPlan {
        accounts: world_accounts.to_vec(),
        targets: Vec::new(),
        rngs: Vec::with_capacity(world_accounts.len()),
    };
    for (idx, a) in plan.accounts.iter_mut().enumerate() {
        let mut r = seed.fork(AFTER_SALE + idx as u64);
        let adopted = proposed.get(&a.id).copied().filter(|_| r.chance(0.6));
        let tier = if a.target { a.tier } else { adopted };
        if let Some(tier) = tier {
            let marketer = MARKETERS[idx % MARKETERS.len()];
            plan.targets.push(Target {
                account_id: a.id,
                external_id: a.external_id.clone(),
                tier,
                marketer: Some(marketer.to_string()),
                seller: a.owner.map(String::from),
                added_at: start.plus_days(r.range(0, 21)),
                added_by: marketer.to_string(),
            });
            a.target = true;
            a.tier = Some(tier);
        }
        plan.rngs.push(r);
    }
    plan
}

/// What the people phase knows about one account's people: what the
/// account lifecycle reads, collected as the people are written.
#[derive(Default)]
struct Bucket {
    /// Ids of its people, ascending.
    people: Vec<i64>,
    transitions: Vec<Transition>,
    activities: Vec<Activity>,
    deals: Vec<Deal>,
    /// The first won new deal (earliest created, then first written), with
    /// its position in the deals table.
    first_won: Option<(Timestamp, u64, Deal)>,
}

/// Per-account facts of the people phase (indexed by account id - 1).
pub(crate) struct PeopleFacts {
    buckets: Vec<Bucket>,
    /// Person deals seen so far: the next deal's position in the table.
    deals_seen: u64,
}

/// Rows the after-sale step adds.
#[derive(Default)]
pub(crate) struct AfterSale {
    pub deals: Vec<Deal>,
    pub activities: Vec<Activity>,
    pub transitions: Vec<Transition>,
}

impl PeopleFacts {
    pub fn new(accounts: usize) -> PeopleFacts {
        PeopleFacts {
            buckets: (0..accounts).map(|_| Bucket::default()).collect(),
            deals_seen: 0,
        }
    }

    fn bucket(&mut self, account_id: Option<i64>) -> Option<&mut Bucket> {
        let i = usize::try_from(account_id? - 1).ok()?;
        self.buckets.get_mut(i)
    }

    /// Takes one person's written rows (people in id order, each person's
    /// deals in the order they were written).
    pub fn add_person(
        &mut self,
        account_id: Option<i64>,
        person_id: i64,
        transitions: Vec<Transition>,
        activities: Vec<Activity>,
        deals: Vec<Deal>,
    ) {
        let first = self.deals_seen;
        self.deals_seen += deals.len() as u64;
        let Some(b) = self.bucket(account_id) else {
            return;
        };
        b.people.push(person_id);
        b.transitions.extend(transitions);
        b.activities.extend(activities);
        for (k, d) in deals.into_iter().enumerate() {
            if d.account_id.is_some() && d.status == DealStatus::Won && d.closed_at.is_some() {
                let key = (d.created_at, first + k as u64);
                if b.first_won.as_ref().is_none_or(|(c, n, _)| key < (*c, *n)) {
                    b.first_won = Some((key.0, key.1, d.clone()));
                }
            }
            b.deals.push(d);
        }
    }

    /// Step 2: post-sale deals and onboarding meetings, then every
    /// account's lifecycle up to `anchor`.
    pub fn finish(
        mut self,
        plan: TargetPlan,
        pb: &Playbook,
        start: Timestamp,
        anchor: Timestamp,
    ) -> AfterSale {
        let targeted: BTreeMap<i64, Timestamp> = plan
            .targets
            .iter()
            .map(|t| (t.account_id, t.added_at))
            .collect();
        let mut out = AfterSale::default();
        for ((a, r), b) in plan
            .accounts
            .iter()
            .zip(plan.rngs)
            .zip(self.buckets.iter_mut())
        {
            let mut g = Gen {
                r,
                account: a,
                people: &b.people,
                currency: pb.company.currency,
                anchor,
                deals: Vec::new(),
                activities: Vec::new(),
            };
            g.run(pb, start, a.target, b.first_won.as_ref().map(|w| &w.2));
            out.deals.extend(g.deals.iter().cloned());
            out.activities.extend(g.activities.iter().cloned());
            b.deals.extend(g.deals);
            b.activities.extend(g.activities);
            let facts = AccountFacts {
                targeted_at: targeted.get(&a.id).copied(),
                people_transitions: &b.transitions,
                activities: &b.activities,
                deals: &b.deals,
            };
            let moves = lifecycle::advance(pb, &facts, &[], anchor);
            out.transitions.extend(
                moves
                    .iter()
                    .map(|m| m.to_transition(Subject::Account(a.id), 0)),
            );
            // Done with this account: free its facts now.
            *b = Bucket::default();
        }
        out
    }
}

struct Gen<'a> {
    r: Rng,
    account: &'a Account,
    /// Ids of the account's people, ascending.
    people: &'a [i64],
    currency: tandem_core::Currency,
    anchor: Timestamp,
    deals: Vec<Deal>,
    activities: Vec<Activity>,
}

impl Gen<'_> {
    fn days(&mut self, at: Timestamp, lo: i64, hi: i64) -> Timestamp {
        Timestamp::from_millis(at.millis() + self.r.range(lo * DAY_MS, hi * DAY_MS))
    }

    /// A deal of the account, closed at `close` (open when after the anchor).
    fn deal(
        &mut self,
        suffix: &str,
        kind: &str,
        amount: i64,
        created: Timestamp,
        close: Timestamp,
        win: bool,
    ) {
        let status = if close > self.anchor {
            DealStatus::Open
        } else if win {
            DealStatus::Won
        } else {
            DealStatus::Lost
        };
        let lost_reason =
            (status == DealStatus::Lost).then(|| self.r.pick(&CHURN_REASONS).to_string());
        self.deals.push(Deal {
            id: 0,
            external_id: format!("{}-{suffix}", self.account.external_id),
            account_id: Some(self.account.id),
            person_id: None,
            name: self.account.name.as_ref().map(|n| format!("{n} — {kind}")),
            amount: Money {
                minor: amount / 100 * 100,
                currency: self.currency,
            },
            created_at: created.min(self.anchor),
            closed_at: Some(close),
            status,
            lost_reason: lost_reason.map(Sym::from),
            owner: self.account.owner,
            kind: kind.into(),
        });
    }

    /// The account manager's onboarding meeting after becoming a customer
    /// at `since`: mostly within the SLA, sometimes late, sometimes never.
    fn onboarding(&mut self, pb: &Playbook, since: Timestamp) {
        if self.people.is_empty() {
            return;
        }
        let hours = match self.r.weighted(&[70.0, 20.0, 10.0]) {
            0 => self.r.range(4, 32),
            1 => self.r.range(48, 90),
            _ => return,
        };
        let at = business_deadline(since, hours as f64, &pb.company);
        if at > self.anchor {
            return;
        }
        let who = self.people[self.r.range(0, self.people.len() as i64) as usize];
        let am = ACCOUNT_MANAGERS[(self.account.id as usize) % ACCOUNT_MANAGERS.len()];
        self.activities.push(Activity {
            id: 0,
            external_id: None,
            person_id: who,
            at,
            kind: ActivityKind::Meeting,
            actor: Some(am.into()),
            outcome: Some("onboarding".into()),
        });
    }

    /// Legacy customers with their renewal, or onboarding and expansion of
    /// a customer won inside the history (`first_won`).
    fn run(&mut self, pb: &Playbook, start: Timestamp, listed: bool, first_won: Option<&Deal>) {
        let anchor = self.anchor;
        let a = self.account;
        let seg = segment_of(a.employees.unwrap_or(0));
        let legacy = seg != SMB && self.r.chance(if listed { 0.5 } else { 0.22 });
        if legacy && first_won.is_none() {
            // A customer since the year before the history: its renewal is
            // due inside it.
            let (lo, hi) = if seg == 1 {
                (15_000_00, 60_000_00)
            } else {
                (60_000_00, 250_000_00)
            };
            let mut arr = self.r.range(lo, hi);
            let won = self.days(start.plus_days(-365), 0, 200);
            self.deal("legacy", "new", arr, won.plus_days(-40), won, true);
            self.onboarding(pb, won);
            if self.r.chance(0.35) {
                let created = self.days(won, 90, 200);
                let close = self.days(created, 20, 40);
                let add = arr * self.r.range(10, 40) / 100;
                let win = self.r.chance(0.75);
                self.deal("x1", "expansion", add, created, close, win);
                if close <= anchor
                    && self
                        .deals
                        .last()
                        .is_some_and(|d| d.status == DealStatus::Won)
                {
                    arr += add;
                }
            }
            let due = won.plus_days(365);
            let (kind, amount, win) = match self.r.weighted(&[18.0, 22.0, 60.0]) {
                0 => ("renewal", arr, false),
                1 => ("renewal", arr * self.r.range(70, 95) / 100, true),
                _ => ("renewal", arr * self.r.range(100, 112) / 100, true),
            };
            self.deal("r1", kind, amount, due.plus_days(-60), due, win);
        } else if let Some(d) = first_won {
            // A customer won inside the history: onboarding, and sometimes
            // an expansion a couple of months later.
            let won = d.closed_at.unwrap_or(d.created_at);
            self.onboarding(pb, won);
            if self.r.chance(0.3) {
                let created = self.days(won, 30, 70);
                let close = self.days(created, 14, 35);
                let add = d.amount.minor * self.r.range(15, 50) / 100;
                let win = self.r.chance(0.7);
                if created <= anchor {
                    self.deal("x1", "expansion", add, created, close, win);
                }
            }
        }
    }
}
