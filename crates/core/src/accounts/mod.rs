//! Accounts (issue 13): account engagement, buying-committee coverage,
//! target-list suggestions, the account lifecycle ([`lifecycle`]), numbers
//! per tier ([`tiers`]) and the account-management SLA ([`sla`]).
//!
//! Everything here is pure: the store loads an account's people, touches,
//! activities, deals and transitions and passes them in.

pub mod lifecycle;
pub mod sla;
pub mod tiers;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::domain::{Account, Person, Touch};
use crate::facts::{account_cel, Classes, FirstMatch};
use crate::playbook::{CommitteeRole, Playbook, RoleMatch, Var, Vars};
use crate::scoring;
use crate::time::Timestamp;

/// Account engagement as of `as_of`: the sum over the account's people of
/// each person's engagement score (DESIGN §4: `Σ points × 0.5^(age /
/// half-life)` over the person's touches, capped to 0..100 per person). The
/// account total is not capped, so a wider buying group counts for more.
/// `touches` holds the touches of the account's people (any order).
pub fn engagement(pb: &Playbook, people: &[&Person], touches: &[&Touch], as_of: Timestamp) -> f64 {
    let mut by_person: BTreeMap<i64, Vec<&Touch>> = BTreeMap::new();
    for t in touches {
        by_person.entry(t.person_id).or_default().push(t);
    }
    engagement_of(people.iter().map(|p| {
        let ts = by_person.get(&p.id).map(Vec::as_slice).unwrap_or(&[]);
        scoring::engagement_score(pb, ts.iter().copied(), as_of)
    }))
}

/// Account engagement from its people's engagement scores (from
/// [`scoring::engagement_score`] or a [`scoring::EngagementIndex`]), summed
/// in the people's order as [`engagement`] does.
pub fn engagement_of(scores: impl Iterator<Item = f64>) -> f64 {
    scores.sum::<f64>() + 0.0
}

/// One buying-committee role at one account.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RoleCoverage {
    /// Role id.
    pub role: String,
    /// Contacts needed.
    pub min: i64,
    /// External ids of the contacts holding the role, sorted.
    pub contacts: Vec<String>,
    /// At least `min` contacts.
    pub covered: bool,
}

/// Buying-committee coverage of one account.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Coverage {
    /// Every playbook role in file order.
    pub roles: Vec<RoleCoverage>,
    /// Ids of the roles not covered, in file order.
    pub missing: Vec<String>,
    /// Covered roles / roles (`None` when the playbook defines no roles).
    pub share: Option<f64>,
}

/// Which playbook roles the account's `people` hold. A contact may hold
/// several roles; a `persona` role uses the stored persona, else the
/// playbook's persona rules.
pub fn coverage(pb: &Playbook, account: &Account, people: &[&Person]) -> Coverage {
    coverage_with(&Committee::new(pb), account, people)
}

/// The buying-committee roles of a playbook, with their rules' answers
/// remembered across accounts (see [`FirstMatch`]): for [`coverage_with`]
/// over many accounts.
pub struct Committee<'a> {
    classes: Classes<'a>,
    /// Every role in file order, with how a contact holds it.
    roles: Vec<(&'a CommitteeRole, Holds<'a>)>,
}

/// How a contact holds a role.
enum Holds<'a> {
    /// The role's rule matches.
    Rule(FirstMatch<'a>),
    /// The contact has this persona (stored, or by the persona rules).
    Persona(&'a str),
}

impl<'a> Committee<'a> {
    /// The committee of `pb`.
    pub fn new(pb: &'a Playbook) -> Self {
        Committee {
            classes: Classes::new(pb),
            roles: pb
                .buying_committee
                .iter()
                .map(|r| {
                    let holds = match &r.matcher {
                        RoleMatch::Rule(c) => {
                            Holds::Rule(FirstMatch::new(vec![(r.id.as_str(), c)]))
                        }
                        RoleMatch::Persona(id) => Holds::Persona(id),
                    };
                    (r, holds)
                })
                .collect(),
        }
    }
}

/// [`coverage`] with a [`Committee`] shared across accounts.
pub fn coverage_with(committee: &Committee<'_>, account: &Account, people: &[&Person]) -> Coverage {
    let mut roles = Vec::new();
    for (role, holds) in &committee.roles {
        let mut contacts: Vec<String> = people
            .iter()
            .filter(|p| match holds {
                Holds::Rule(rule) => rule.of(p, Some(account)).is_some(),
                Holds::Persona(id) => match p.persona {
                    Some(persona) => persona == *id,
                    None => committee.classes.persona(p, Some(account)).as_deref() == Some(*id),
                },
            })
            .map(|p| p.external_id().to_string())
            .collect();
        contacts.sort();
        roles.push(RoleCoverage {
            role: role.id.clone(),
            min: role.min,
            covered: contacts.len() as i64 >= role.min,
            contacts,
        });
    }
    let missing: Vec<String> = roles
        .iter()
        .filter(|r| !r.covered)
        .map(|r| r.role.clone())
        .collect();
    let share =
        (!roles.is_empty()).then(|| (roles.len() - missing.len()) as f64 / roles.len() as f64);
    Coverage {
        roles,
        missing,
        share,
    }
}

/// An account a `[[account_lists]]` rule proposes for the target list.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Suggestion {
    /// Store id of the account.
    pub account_id: i64,
    /// Its external id.
    pub external_id: String,
    /// The first list rule (file order) that matches.
    pub list: String,
    /// The tier that rule proposes.
    pub tier: i64,
}

/// Accounts not on the target list that some list rule matches, by id.
pub fn suggest(pb: &Playbook, accounts: &[Account]) -> Vec<Suggestion> {
    let mut out: Vec<Suggestion> = accounts
        .iter()
        .filter(|a| !a.target)
        .filter_map(|a| {
            let mut vars = Vars::new();
            vars.set_cel(Var::Account, account_cel(Some(a)));
            let list = pb
                .account_lists
                .iter()
                .find(|l| l.criterion.matches(&vars))?;
            Some(Suggestion {
                account_id: a.id,
                external_id: a.external_id.clone(),
                list: list.id.clone(),
                tier: list.tier,
            })
        })
        .collect();
    out.sort_by_key(|s| s.account_id);
    out
}

#[cfg(test)]
mod tests;
