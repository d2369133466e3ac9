//! What tandem knows about one person at one instant, as CEL variables.

use serde_json::{json, Value};

use crate::domain::{Account, Activity, ActivityKind, Deal, DealStatus, Person, Touch};
use crate::metrics::retention::DealKind;
use crate::playbook::{Playbook, Var, Vars};
use crate::time::Timestamp;

/// Everything stored about one person that the lifecycle and scoring read.
#[derive(Clone, Copy, Debug)]
pub struct Facts<'a> {
    pub person: &'a Person,
    pub account: Option<&'a Account>,
    /// Touches in any order.
    pub touches: &'a [Touch],
    /// Activities in any order.
    pub activities: &'a [Activity],
    /// Deals linked to the person (directly or as the account's contact).
    pub deals: &'a [Deal],
}

/// The `person` variable.
pub fn person_value(p: &Person) -> Value {
    let name = match (&p.first_name, &p.last_name) {
        (Some(f), Some(l)) => Some(format!("{f} {l}")),
        (Some(f), None) => Some(f.clone()),
        (None, Some(l)) => Some(l.clone()),
        (None, None) => None,
    };
    json!({
        "id": p.id,
        "external_id": p.external_id,
        "email": p.email,
        "first_name": p.first_name,
        "last_name": p.last_name,
        "name": name,
        "title": p.title,
        "persona": p.persona,
        "segment": p.segment,
        "country": p.country,
        "source": p.source,
        "owner": p.owner,
        "created_at": p.created_at.millis(),
        "custom": Value::Object(p.custom.clone()),
    })
}

/// The `account` variable; every field is null when the person has none.
pub fn account_value(a: Option<&Account>) -> Value {
    match a {
        Some(a) => json!({
            "id": a.id,
            "external_id": a.external_id,
            "name": a.name,
            "domain": a.domain,
            "industry": a.industry,
            "employees": a.employees,
            "annual_revenue": a.annual_revenue,
            "segment": a.segment,
            "target": a.target,
            "tier": a.tier,
            "owner": a.owner,
            "custom": Value::Object(a.custom.clone()),
        }),
        None => json!({
            "id": null, "external_id": null, "name": null, "domain": null, "industry": null,
            "employees": null, "annual_revenue": null, "segment": null, "target": false,
            "tier": null, "owner": null, "custom": {},
        }),
    }
}

/// The `touch` variable.
pub fn touch_value(t: &Touch) -> Value {
    json!({
        "kind": t.kind,
        "channel": t.channel,
        "campaign": t.campaign,
        "source": t.source,
        "medium": t.medium,
        "cost": t.cost,
    })
}

/// The `deal` variable: new-business deals created in `[since, at]` as they
/// stood at `at`. Renewals and expansions move the account's lifecycle, not
/// a lead's: a new contact at a customer account is not a won lead.
pub fn deal_value(deals: &[Deal], since: Timestamp, at: Timestamp) -> Value {
    let (mut count, mut open, mut won, mut lost, mut amount_won) = (0, false, false, false, 0i64);
    for d in deals
        .iter()
        .filter(|d| d.created_at >= since && d.created_at <= at && DealKind::of(d) == DealKind::New)
    {
        count += 1;
        let closed_by_now = d.closed_at.is_some_and(|c| c <= at);
        match d.status {
            DealStatus::Won if closed_by_now => {
                won = true;
                amount_won += d.amount.minor;
            }
            DealStatus::Lost if closed_by_now => lost = true,
            _ => open = true,
        }
    }
    json!({ "count": count, "open": open, "won": won, "lost": lost, "amount_won": amount_won })
}

/// The `activity` variable: activity counts in `[since, at]`.
pub fn activity_value(activities: &[Activity], since: Timestamp, at: Timestamp) -> Value {
    let mut n = [0i64; 4];
    for a in activities.iter().filter(|a| a.at >= since && a.at <= at) {
        n[ActivityKind::ALL
            .iter()
            .position(|k| *k == a.kind)
            .unwrap_or(0)] += 1;
    }
    json!({ "count": n.iter().sum::<i64>(), "calls": n[0], "emails": n[1], "meetings": n[2], "demos": n[3] })
}

/// The first playbook channel whose rule matches the touch, or the touch's
/// own channel when it has one.
pub fn channel_of(pb: &Playbook, touch: &Touch, person: &Person) -> Option<String> {
    if let Some(c) = &touch.channel {
        return Some(c.clone());
    }
    let mut vars = Vars::new();
    vars.set(Var::Touch, &touch_value(touch))
        .set(Var::Person, &person_value(person));
    pb.channels
        .iter()
        .find(|c| c.criterion.matches(&vars))
        .map(|c| c.id.clone())
}

/// The first persona and segment whose rules match.
pub fn classify(
    pb: &Playbook,
    person: &Person,
    account: Option<&Account>,
) -> (Option<String>, Option<String>) {
    let mut vars = Vars::new();
    vars.set(Var::Person, &person_value(person))
        .set(Var::Account, &account_value(account));
    let persona = pb
        .personas
        .iter()
        .find(|m| m.criterion.matches(&vars))
        .map(|m| m.id.clone());
    let segment = pb
        .segments
        .iter()
        .find(|m| m.criterion.matches(&vars))
        .map(|m| m.id.clone());
    (persona, segment)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::{Currency, Money};

    fn won(kind: &str, minor: i64) -> Deal {
        Deal {
            id: 1,
            external_id: format!("d-{kind}"),
            account_id: Some(1),
            person_id: None,
            name: None,
            amount: Money {
                minor,
                currency: Currency::parse("USD").unwrap(),
            },
            created_at: Timestamp::from_millis(1_000),
            closed_at: Some(Timestamp::from_millis(2_000)),
            status: DealStatus::Won,
            lost_reason: None,
            owner: None,
            kind: kind.into(),
        }
    }

    #[test]
    fn only_new_business_deals_feed_a_lead() {
        let deals = [
            won("renewal", 500_00),
            won("expansion", 200_00),
            won("new", 100_00),
        ];
        let v = deal_value(
            &deals,
            Timestamp::from_millis(0),
            Timestamp::from_millis(3_000),
        );
        assert_eq!(v["count"], 1);
        assert_eq!(v["amount_won"], 100_00);
        let v = deal_value(
            &deals[..2],
            Timestamp::from_millis(0),
            Timestamp::from_millis(3_000),
        );
        assert_eq!(v["count"], 0);
        assert_eq!(v["won"], false);
    }
}
