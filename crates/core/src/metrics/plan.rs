//! Reverse-waterfall plan (DESIGN §5): from a revenue target back to the
//! number needed at each stage, when each stage's cohort must enter, and the
//! gap against the current pipeline.
//!
//! The last stage of a plan is the won stage: `won = target / deal size`, and
//! each earlier stage needs `next / rate` where `rate` is the conversion from
//! it to the next stage. Numbers are fractional (`f64`); rounding up is the
//! caller's choice.

use serde::Serialize;

use crate::time::{Timestamp, DAY_MS};

use super::waterfall::GroupWaterfall;
use super::MetricsError;

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
