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

use std::collections::BTreeMap;

use tandem_core::domain::{Account, Activity, ActivityKind, Deal, DealStatus, Person};
use tandem_core::playbook::Playbook;
use tandem_core::sla::business_deadline;
use tandem_core::time::DAY_MS;
use tandem_core::{Money, Timestamp};
use tandem_store::accounts::{self, NewTarget};
use tandem_store::repo;
use tandem_store::{Store, StoreError};

use super::{segment_of, Rng, MARKETERS, SMB};

/// Stream offset of this phase's per-account generators.
const AFTER_SALE: u64 = 0x0C00_0000_0000;
/// Account managers (the third team of the SLA).
const ACCOUNT_MANAGERS: [&str; 2] = ["ida.berg", "marco.conti"];
/// Lost reasons a churned renewal gives (reasons the starter playbook has for `lost`).
const CHURN_REASONS: [&str; 2] = ["no_budget", "competitor_won"];

/// Rows this phase wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct AfterSale {
    pub deals: u64,
    pub activities: u64,
    pub transitions: u64,
}

struct Gen<'a> {
    r: Rng,
    account: &'a Account,
    people: &'a [&'a Person],
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
            lost_reason,
            owner: self.account.owner.clone(),
            kind: kind.to_string(),
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
            person_id: who.id,
            at,
            kind: ActivityKind::Meeting,
            actor: Some(am.to_string()),
            outcome: Some("onboarding".to_string()),
        });
    }
}

/// Writes the after-sale phase for `world_accounts` into `store` and syncs
/// the account lifecycle up to `anchor`.
pub(crate) async fn run(
    store: &Store,
    pb: &Playbook,
    seed: &Rng,
    start: Timestamp,
    anchor: Timestamp,
    world_accounts: &[Account],
) -> Result<AfterSale, StoreError> {
    let mut tx = store.begin().await?;
    let people = repo::people(tx.conn()).await?;
    let mut by_account: BTreeMap<i64, Vec<&Person>> = BTreeMap::new();
    for p in &people {
        if let Some(a) = p.account_id {
            by_account.entry(a).or_default().push(p);
        }
    }
    // First won new deal per account (the generated lead funnel's).
    let mut first_won: BTreeMap<i64, Deal> = BTreeMap::new();
    for d in repo::deals(tx.conn()).await? {
        if let (Some(a), DealStatus::Won, Some(_)) = (d.account_id, d.status, d.closed_at) {
            first_won.entry(a).or_insert(d);
        }
    }
    // The teams also took most of what the playbook's list rules propose.
    let proposed: BTreeMap<i64, i64> = tandem_core::accounts::suggest(pb, world_accounts)
        .into_iter()
        .map(|s| (s.account_id, s.tier))
        .collect();
    let mut out = AfterSale::default();
    let mut deals = Vec::new();
    let mut activities = Vec::new();
    for (idx, a) in world_accounts.iter().enumerate() {
        let mut r = seed.fork(AFTER_SALE + idx as u64);
        let adopted = proposed.get(&a.id).copied().filter(|_| r.chance(0.6));
        let tier = if a.target { a.tier } else { adopted };
        if let Some(tier) = tier {
            let marketer = MARKETERS[idx % MARKETERS.len()];
            let t = NewTarget {
                tier,
                marketer: Some(marketer),
                seller: a.owner.as_deref(),
                at: start.plus_days(r.range(0, 21)),
                actor: marketer,
            };
            accounts::set_target(tx.conn(), a.id, &t).await?;
        }
        let no_people: Vec<&Person> = Vec::new();
        let mut g = Gen {
            r,
            account: a,
            people: by_account.get(&a.id).unwrap_or(&no_people),
            currency: pb.company.currency,
            anchor,
            deals: Vec::new(),
            activities: Vec::new(),
        };
        let seg = segment_of(a.employees.unwrap_or(0));
        let legacy = seg != SMB && g.r.chance(if tier.is_some() { 0.5 } else { 0.22 });
        if legacy && !first_won.contains_key(&a.id) {
            // A customer since the year before the history: its renewal is
            // due inside it.
            let (lo, hi) = if segment_of(a.employees.unwrap_or(0)) == 1 {
                (15_000_00, 60_000_00)
            } else {
                (60_000_00, 250_000_00)
            };
            let mut arr = g.r.range(lo, hi);
            let won = g.days(start.plus_days(-365), 0, 200);
            g.deal("legacy", "new", arr, won.plus_days(-40), won, true);
            g.onboarding(pb, won);
            if g.r.chance(0.35) {
                let created = g.days(won, 90, 200);
                let close = g.days(created, 20, 40);
                let add = arr * g.r.range(10, 40) / 100;
                let win = g.r.chance(0.75);
                g.deal("x1", "expansion", add, created, close, win);
                if close <= anchor && g.deals.last().is_some_and(|d| d.status == DealStatus::Won) {
                    arr += add;
                }
            }
            let due = won.plus_days(365);
            let (kind, amount, win) = match g.r.weighted(&[18.0, 22.0, 60.0]) {
                0 => ("renewal", arr, false),
                1 => ("renewal", arr * g.r.range(70, 95) / 100, true),
                _ => ("renewal", arr * g.r.range(100, 112) / 100, true),
            };
            g.deal("r1", kind, amount, due.plus_days(-60), due, win);
        } else if let Some(d) = first_won.get(&a.id) {
            // A customer won inside the history: onboarding, and sometimes
            // an expansion a couple of months later.
            let won = d.closed_at.unwrap_or(d.created_at);
            g.onboarding(pb, won);
            if g.r.chance(0.3) {
                let created = g.days(won, 30, 70);
                let close = g.days(created, 14, 35);
                let add = d.amount.minor * g.r.range(15, 50) / 100;
                let win = g.r.chance(0.7);
                if created <= anchor {
                    g.deal("x1", "expansion", add, created, close, win);
                }
            }
        }
        deals.extend(g.deals);
        activities.extend(g.activities);
    }
    out.deals = deals.len() as u64;
    out.activities = activities.len() as u64;
    repo::insert_deals(tx.conn(), &deals).await?;
    repo::insert_activities(tx.conn(), &activities).await?;
    out.transitions = accounts::sync(tx.conn(), pb, anchor).await? as u64;
    tx.commit().await?;
    Ok(out)
}
