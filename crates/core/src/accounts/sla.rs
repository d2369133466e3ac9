//! The third side of the SLA: what account managers owe a new customer
//! (`[sla.account_management]`). The clock starts when an account enters
//! the customer stage (a win-back starts a new clock) and is met by the first
//! activity of one of the agreed kinds with any of the account's people
//! within `onboarding_days` business days (working hours of the company,
//! see [`crate::sla::business_deadline`]).

use serde::Serialize;

use crate::domain::{Activity, Transition};
use crate::playbook::{AccountSla, Company};
use crate::sla::{business_deadline, ClockStatus};
use crate::time::Timestamp;

use super::lifecycle::CUSTOMER;

/// One onboarding clock.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Onboarding {
    pub account_id: i64,
    /// When the account became a customer.
    pub entered_at: Timestamp,
    /// `onboarding_days` business days later.
    pub deadline: Timestamp,
    /// First agreed activity at or after entry (up to `as_of`).
    pub first_activity: Option<Timestamp>,
    /// Met, breached or open (never stopped).
    pub status: ClockStatus,
}

/// The onboarding clock of every customer entry of one account up to
/// `as_of`. `transitions` are the account's, `activities` those with its
/// people (any order).
pub fn onboarding(
    sla: &AccountSla,
    company: &Company,
    account_id: i64,
    transitions: &[Transition],
    activities: &[Activity],
    as_of: Timestamp,
) -> Vec<Onboarding> {
    let day_hours = f64::from(
        company
            .hours
            .end_minute
            .saturating_sub(company.hours.start_minute),
    ) / 60.0;
    let mut entries: Vec<Timestamp> = transitions
        .iter()
        .filter(|t| t.to == CUSTOMER && t.at <= as_of)
        .map(|t| t.at)
        .collect();
    entries.sort();
    entries
        .into_iter()
        .map(|entered_at| {
            let deadline = business_deadline(entered_at, sla.onboarding_days * day_hours, company);
            let first_activity = activities
                .iter()
                .filter(|a| sla.activities.contains(&a.kind) && a.at >= entered_at && a.at <= as_of)
                .map(|a| a.at)
                .min();
            let status = match first_activity {
                Some(t) if t <= deadline => ClockStatus::Met,
                _ if deadline <= as_of => ClockStatus::Breached,
                _ => ClockStatus::Open,
            };
            Onboarding {
                account_id,
                entered_at,
                deadline,
                first_activity,
                status,
            }
        })
        .collect()
}
