//! Reverse-waterfall plan (DESIGN §5): from a revenue target back to the
//! number needed at each stage, when each stage's cohort must enter, and the
//! gap against the current pipeline.
//!
//! The last stage of a plan is the won stage: `won = target / deal size`, and
//! each earlier stage needs `next / rate` where `rate` is the conversion from
//! it to the next stage. Numbers are fractional (`f64`); rounding up is the
//! caller's choice.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::domain::{Deal, DealStatus};
use crate::playbook::Playbook;
use crate::time::{Timestamp, DAY_MS};

use super::retention::DealKind;
use super::waterfall::GroupWaterfall;
use super::{funnel_ids, Grouping, MetricsError};

/// One stage of a plan.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PlanStage {
    /// Stage id (the last one is the won stage).
    pub stage: String,
    /// How many must reach this stage.
    pub needed: f64,
    /// Conversion from this stage to the next (`None` for the last).
    pub rate_to_next: Option<f64>,
    /// Latest instant this stage's cohort must enter to close by the period
    /// end, from historic median velocity (see [`Plan::with_deadlines`]).
    pub enter_by: Option<Timestamp>,
    /// Current count in this stage (see [`Plan::with_pipeline`]).
    pub current: Option<f64>,
    /// `needed − current`: positive is a shortfall.
    pub gap: Option<f64>,
}

/// A reverse-waterfall plan.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Plan {
    /// Revenue target in minor units.
    pub revenue_target: i64,
    /// Average deal size in minor units.
    pub deal_size: i64,
    /// Stages from the first to the won stage.
    pub stages: Vec<PlanStage>,
}

/// The reverse waterfall: `stages` from the first funnel stage to the won
/// stage, `rates[i]` the conversion from `stages[i]` to `stages[i + 1]`
/// (each in (0, 1]).
pub fn reverse_waterfall(
    revenue_target: i64,
    deal_size: i64,
    stages: &[String],
    rates: &[f64],
) -> Result<Plan, MetricsError> {
    if revenue_target <= 0 {
        return Err(MetricsError::NotPositive {
            what: "revenue target",
            value: revenue_target,
        });
    }
    if deal_size <= 0 {
        return Err(MetricsError::NotPositive {
            what: "deal size",
            value: deal_size,
        });
    }
    if stages.is_empty() || rates.len() + 1 != stages.len() {
        return Err(MetricsError::RateCount {
            stages: stages.len(),
            rates: rates.len(),
        });
    }
    for (index, &rate) in rates.iter().enumerate() {
        if !(rate > 0.0 && rate <= 1.0) {
            return Err(MetricsError::InvalidRate { index, rate });
        }
    }
    let mut needed = vec![0.0; stages.len()];
    let last = stages.len() - 1;
    needed[last] = revenue_target as f64 / deal_size as f64;
    for i in (0..last).rev() {
        needed[i] = needed[i + 1] / rates[i];
    }
    Ok(Plan {
        revenue_target,
        deal_size,
        stages: stages
            .iter()
            .enumerate()
            .map(|(i, s)| PlanStage {
                stage: s.clone(),
                needed: needed[i],
                rate_to_next: rates.get(i).copied(),
                enter_by: None,
                current: None,
                gap: None,
            })
            .collect(),
    })
}

impl Plan {
    /// Fills `enter_by`: the won stage must be reached by `period_end`, and
    /// stage `i` must be entered `median_days[i]` (median days from
    /// `stages[i]` to `stages[i + 1]`) before stage `i + 1`'s deadline.
    /// Stages upstream of a missing velocity get no deadline.
    pub fn with_deadlines(mut self, period_end: Timestamp, median_days: &[Option<f64>]) -> Plan {
        let mut at = Some(period_end.millis() as f64);
        let last = self.stages.len().saturating_sub(1);
        for i in (0..self.stages.len()).rev() {
            if i < last {
                at = match (at, median_days.get(i).copied().flatten()) {
                    (Some(t), Some(d)) => Some(t - d * DAY_MS as f64),
                    _ => None,
                };
            }
            self.stages[i].enter_by = at.map(|t| Timestamp::from_millis(t.floor() as i64));
        }
        self
    }

    /// Fills `current` and `gap` from the current count per stage (same
    /// order as the plan's stages; missing entries stay `None`).
    pub fn with_pipeline(mut self, current: &[f64]) -> Plan {
        for (s, &c) in self.stages.iter_mut().zip(current) {
            s.current = Some(c);
            s.gap = Some(s.needed - c);
        }
        self
    }
}

/// Historic stage-to-stage rates from a group's cohort waterfall: one per
/// adjacent pair from the cohort stage to the last funnel stage (`None`
/// where the earlier stage had no one).
pub fn historic_rates(w: &GroupWaterfall) -> Vec<Option<f64>> {
    w.stages
        .iter()
        .skip_while(|s| s.cohort.is_none())
        .skip(1)
        .map(|s| s.conversion)
        .collect()
}

/// Historic median days per adjacent pair from a group's cohort waterfall,
/// in the order of [`historic_rates`] (for [`Plan::with_deadlines`]).
pub fn historic_median_days(w: &GroupWaterfall) -> Vec<Option<f64>> {
    let cohort: Vec<&String> = w
        .stages
        .iter()
        .filter(|s| s.cohort.is_some())
        .map(|s| &s.stage)
        .collect();
    cohort
        .windows(2)
        .map(|p| {
            w.velocity
                .iter()
                .find(|v| &v.from == p[0] && &v.to == p[1])
                .and_then(|v| v.median_days)
        })
        .collect()
}

/// The won stage a plan ends at: `customer` when the funnel has it, else the
/// last funnel stage.
pub fn won_stage(pb: &Playbook) -> Option<String> {
    let funnel = funnel_ids(pb);
    funnel
        .iter()
        .find(|s| *s == "customer")
        .or(funnel.last())
        .cloned()
}

/// Historic conversion between consecutive entries of `stages` (any ordered
/// subset of the funnel from the waterfall's cohort stage on): `cohort[b] /
/// cohort[a]` of the group's cohort waterfall, so a pair that skips stages
/// gets the product of the rates in between. `None` where `a` had no one or
/// is not a cohort stage of the waterfall.
pub fn historic_rates_for(w: &GroupWaterfall, stages: &[String]) -> Vec<Option<f64>> {
    let count = |id: &str| {
        w.stages
            .iter()
            .find(|s| s.stage == id)
            .and_then(|s| s.cohort)
    };
    stages
        .windows(2)
        .map(|p| match (count(&p[0]), count(&p[1])) {
            (Some(a), Some(b)) if a > 0 => Some(b as f64 / a as f64),
            _ => None,
        })
        .collect()
}

/// Historic median days between consecutive entries of `stages`: the median
/// of an adjacent funnel pair as [`historic_median_days`] gives it, and for a
/// pair that skips stages the **sum of the adjacent medians** in between (an
/// approximation: the median of a sum is not the sum of medians). `None` when
/// any median on the way is missing.
pub fn historic_median_days_for(w: &GroupWaterfall, stages: &[String]) -> Vec<Option<f64>> {
    let order: Vec<&String> = w.stages.iter().map(|s| &s.stage).collect();
    let adjacent = |a: &str, b: &str| {
        w.velocity
            .iter()
            .find(|v| v.from == a && v.to == b)
            .and_then(|v| v.median_days)
    };
    stages
        .windows(2)
        .map(|p| {
            let i = order.iter().position(|s| **s == p[0])?;
            let j = order.iter().position(|s| **s == p[1])?;
            if j <= i {
                return None;
            }
            (i..j).try_fold(0.0, |acc, k| {
                adjacent(order[k], order[k + 1]).map(|d| acc + d)
            })
        })
        .collect()
}

/// Average deal size per group: the mean amount (minor units, rounded half
/// away from zero) of new-business deals won with `closed_at` not after `as_of`, and how
/// many there were. Deals with a zero amount count (they lower the mean);
/// groups without won deals are absent.
pub fn average_won_deal_size(
    deals: &[Deal],
    as_of: Timestamp,
    grouping: Grouping<'_>,
) -> BTreeMap<String, (u64, i64)> {
    let mut sums: BTreeMap<String, (u64, i128)> = BTreeMap::new();
    for d in deals {
        if d.status == DealStatus::Won
            && d.closed_at.is_some_and(|c| c <= as_of)
            && DealKind::is_new_business(d)
        {
            let e = sums.entry(grouping.person(d.person_id)).or_default();
            e.0 += 1;
            e.1 += i128::from(d.amount.minor);
        }
    }
    sums.into_iter()
        .map(|(g, (n, sum))| {
            let mean = (sum as f64 / n as f64).round() as i64;
            (g, (n, mean))
        })
        .collect()
}
