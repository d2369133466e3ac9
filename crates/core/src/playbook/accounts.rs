//! The account-based parts of the playbook: target-list rules
//! (`[[account_lists]]`), buying-committee roles
//! (`[[buying_committee.roles]]`) and the account-management SLA
//! (`[sla.account_management]`).

use std::collections::HashSet;

use crate::domain::ActivityKind;

use super::raw::{RawAccountList, RawAccountSla, RawCommittee};
use super::{Checker, Criterion, Matcher, Scope};

/// A rule proposing accounts for the target list (`tandem accounts target
/// suggest`); the account itself is the only variable in scope.
#[derive(Clone, Debug)]
pub struct AccountList {
    pub id: String,
    pub name: String,
    /// Tier proposed for matching accounts (1..=3); 3 when not given.
    pub tier: i64,
    pub criterion: Criterion,
}

/// How a contact is recognised as holding a buying-committee role.
#[derive(Clone, Debug)]
pub enum RoleMatch {
    /// A CEL rule over `person` and `account`.
    Rule(Criterion),
    /// The contact's persona (stored, or from the `[[persona]]` rules).
    Persona(String),
}

/// One role of the buying committee (economic buyer, champion, user, …).
#[derive(Clone, Debug)]
pub struct CommitteeRole {
    pub id: String,
    pub name: String,
    pub matcher: RoleMatch,
    /// Contacts needed for the role to count as covered (default 1).
    pub min: i64,
}

/// What account managers owe a new customer: a first activity of one of
/// `activities` within `onboarding_days` business days of the account
/// entering the customer stage.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct AccountSla {
    pub onboarding_days: f64,
    pub activities: Vec<ActivityKind>,
}

impl Checker<'_> {
    pub(super) fn account_lists(&mut self, raw: &[RawAccountList]) -> Vec<AccountList> {
        self.unique("account list", raw.iter().map(|l| &l.id));
        let mut out = Vec::new();
        for l in raw {
            let tier = match &l.tier {
                Some(t) if !(1..=3).contains(t.get_ref()) => {
                    self.error(
                        t.span(),
                        format!("tier must be 1, 2 or 3, got {}", t.get_ref()),
                    );
                    3
                }
                Some(t) => *t.get_ref(),
                None => 3,
            };
            if let Some(criterion) = self.criterion(&l.match_, Scope::Account) {
                out.push(AccountList {
                    id: l.id.get_ref().clone(),
                    name: l.name.clone().unwrap_or_else(|| l.id.get_ref().clone()),
                    tier,
                    criterion,
                });
            }
        }
        out
    }

    pub(super) fn committee(
        &mut self,
        raw: Option<RawCommittee>,
        personas: &[Matcher],
    ) -> Vec<CommitteeRole> {
        let Some(raw) = raw else { return Vec::new() };
        self.unique(
            "buying committee role",
            raw.roles.iter().map(|r| &r.get_ref().id),
        );
        let mut out = Vec::new();
        for r in &raw.roles {
            let r = r.get_ref();
            let min = match &r.min {
                Some(m) if *m.get_ref() < 1 => {
                    self.error(
                        m.span(),
                        format!("min must be at least 1, got {}", m.get_ref()),
                    );
                    1
                }
                Some(m) => *m.get_ref(),
                None => 1,
            };
            let matcher = match (&r.match_, &r.persona) {
                (Some(m), None) => self.criterion(m, Scope::Profile).map(RoleMatch::Rule),
                (None, Some(p)) => {
                    if !personas.iter().any(|x| &x.id == p.get_ref()) {
                        self.error(p.span(), format!("unknown persona `{}`", p.get_ref()));
                    }
                    Some(RoleMatch::Persona(p.get_ref().clone()))
                }
                _ => {
                    self.error(
                        r.id.span(),
                        format!(
                            "role `{}` needs exactly one of `match` (a CEL rule) or `persona`",
                            r.id.get_ref()
                        ),
                    );
                    None
                }
            };
            if let Some(matcher) = matcher {
                out.push(CommitteeRole {
                    id: r.id.get_ref().clone(),
                    name: r.name.clone().unwrap_or_else(|| r.id.get_ref().clone()),
                    matcher,
                    min,
                });
            }
        }
        out
    }

    pub(super) fn account_sla(&mut self, raw: Option<RawAccountSla>) -> Option<AccountSla> {
        let raw = raw?;
        let onboarding_days = self.positive(&raw.onboarding_days, "onboarding_days");
        let mut activities = Vec::new();
        let mut seen = HashSet::new();
        match &raw.activities {
            None => activities = vec![ActivityKind::Call, ActivityKind::Meeting],
            Some(list) => {
                for a in list {
                    match ActivityKind::parse(a.get_ref()) {
                        Some(k) if seen.insert(k) => activities.push(k),
                        Some(_) => {}
                        None => self.error(
                            a.span(),
                            format!(
                                "unknown activity `{}`; expected call, email, meeting or demo",
                                a.get_ref()
                            ),
                        ),
                    }
                }
                if list.is_empty() {
                    self.error(
                        0..0,
                        "[sla.account_management] activities must name at least one activity",
                    );
                }
            }
        }
        Some(AccountSla {
            onboarding_days,
            activities,
        })
    }
}
