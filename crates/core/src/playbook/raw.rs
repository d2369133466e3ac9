//! The playbook file exactly as written, with source spans, before checks.
//! Unknown keys are errors (`deny_unknown_fields`) so typos never pass silently.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

pub(crate) type S<T> = Spanned<T>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPlaybook {
    pub company: S<RawCompany>,
    #[serde(default, rename = "stage")]
    pub stages: Vec<S<RawStage>>,
    #[serde(default, rename = "reason")]
    pub reasons: Vec<RawReason>,
    #[serde(default)]
    pub scoring: RawScoring,
    #[serde(default)]
    pub sla: RawSla,
    #[serde(default, rename = "persona")]
    pub personas: Vec<RawMatcher>,
    #[serde(default, rename = "segment")]
    pub segments: Vec<RawMatcher>,
    #[serde(default, rename = "channel")]
    pub channels: Vec<RawMatcher>,
    #[serde(default, rename = "goal")]
    pub goals: Vec<S<RawGoal>>,
    #[serde(default)]
    pub import: BTreeMap<String, BTreeMap<String, String>>,
    #[serde(default)]
    pub account_lists: Vec<RawAccountList>,
    #[serde(default)]
    pub buying_committee: Option<RawCommittee>,
    #[serde(default)]
    pub report: Option<S<super::report::RawReport>>,
}

/// `[[account_lists]]`: a CEL rule proposing target accounts.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAccountList {
    pub id: S<String>,
    pub name: Option<String>,
    pub tier: Option<S<i64>>,
    #[serde(rename = "match")]
    pub match_: S<String>,
}

/// `[buying_committee]` with its `[[buying_committee.roles]]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCommittee {
    #[serde(default)]
    pub roles: Vec<S<RawRole>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRole {
    pub id: S<String>,
    pub name: Option<String>,
    #[serde(rename = "match")]
    pub match_: Option<S<String>>,
    pub persona: Option<S<String>>,
    pub min: Option<S<i64>>,
}

/// `[sla.account_management]`: what account managers owe new customers.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAccountSla {
    pub onboarding_days: S<f64>,
    #[serde(default)]
    pub activities: Option<Vec<S<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCompany {
    pub name: String,
    pub currency: S<String>,
    pub timezone: S<String>,
    #[serde(default)]
    pub hours: Option<RawHours>,
    #[serde(default)]
    pub holidays: Vec<S<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHours {
    pub start: S<String>,
    pub end: S<String>,
    #[serde(default)]
    pub days: Option<Vec<S<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStage {
    pub id: S<String>,
    pub name: Option<String>,
    pub owner: Option<S<String>>,
    pub kind: Option<S<String>>,
    pub entry: Option<S<String>>,
    #[serde(default)]
    pub manual: bool,
    pub max_days: Option<S<f64>>,
    pub from: Option<Vec<S<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawReason {
    pub code: S<String>,
    pub name: Option<String>,
    #[serde(default)]
    pub applies_to: Vec<S<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawScoring {
    #[serde(default)]
    pub fit: RawFit,
    #[serde(default)]
    pub engagement: RawEngagement,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFit {
    #[serde(default)]
    pub rules: Vec<RawFitRule>,
    /// Letter grade → minimum fit, e.g. `{ A = 80, B = 60, C = 40, D = 20 }`.
    #[serde(default)]
    pub grades: Option<S<BTreeMap<String, f64>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFitRule {
    pub name: Option<String>,
    pub when: S<String>,
    pub points: S<f64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawEngagement {
    pub half_life_days: Option<S<f64>>,
    #[serde(default)]
    pub rules: Vec<RawEngagementRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawEngagementRule {
    pub touch: S<String>,
    pub points: S<f64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSla {
    pub sales: Option<S<RawSalesSla>>,
    pub marketing: Option<RawMarketingSla>,
    pub account_management: Option<RawAccountSla>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSalesSla {
    pub stage: S<String>,
    pub first_response_hours: S<f64>,
    pub attempts: S<i64>,
    pub attempts_within_days: S<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMarketingSla {
    pub mql_per_week: S<f64>,
    pub sal_rate_min: S<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMatcher {
    pub id: S<String>,
    pub name: Option<String>,
    #[serde(rename = "match")]
    pub match_: S<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawGoal {
    pub id: Option<S<String>>,
    pub metric: S<String>,
    pub period: S<String>,
    pub target: S<f64>,
    pub owner: Option<S<String>>,
    pub persona: Option<S<String>>,
    pub segment: Option<S<String>>,
}
