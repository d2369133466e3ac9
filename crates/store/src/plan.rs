//! The reverse-waterfall plan over stored history, per group: what `tandem
//! plan` prints and the dashboard's Plan page shows. Core does the
//! arithmetic (`tandem_core::metrics::plan`); this module picks the stages,
//! the rates (given or historic), the deal size and the current pipeline.

use std::collections::BTreeMap;

use tandem_core::metrics::plan::{
    average_won_deal_size, historic_median_days_for, historic_rates_for, reverse_waterfall,
    won_stage, Plan,
};
use tandem_core::metrics::waterfall::{current_stage_counts, waterfall, WaterfallOptions};
use tandem_core::metrics::{funnel_ids, period_window, Grouping, MetricsError, Window, ALL};
use tandem_core::playbook::{Period, Playbook};
use tandem_core::Timestamp;

use crate::repo::Snapshot;

/// Why a plan cannot be made.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlanError {
    /// The playbook has no funnel.
    #[error("the playbook has no funnel stages")]
    NoFunnel,
    /// A `stages` entry is not a funnel stage.
    #[error("`{stage}` is not a funnel stage; the funnel is {funnel}")]
    NotAFunnelStage { stage: String, funnel: String },
    /// `stages` out of funnel order.
    #[error("--stages must be in funnel order ({0})")]
    OutOfOrder(String),
    /// No deal size given and no won deal to average.
    #[error("no won deals with an amount to average; pass --deal-size")]
    NoDealSize,
    /// A historic conversion is missing or zero.
    #[error("no historic conversion from {from} to {to} in the period; pass --rates")]
    NoHistoricRate { from: String, to: String },
    /// The metric computation refused its input.
    #[error(transparent)]
    Metrics(#[from] MetricsError),
}

/// The stages a plan runs over: `given` (checked to be funnel stages in
/// funnel order), or else the funnel from its first stage to the won stage.
pub fn plan_stages(pb: &Playbook, given: &[String]) -> Result<Vec<String>, PlanError> {
    let funnel = funnel_ids(pb);
    if given.is_empty() {
        let won = won_stage(pb).ok_or(PlanError::NoFunnel)?;
        let end = funnel.iter().position(|s| *s == won).unwrap_or(0);
        return Ok(funnel[..=end].to_vec());
    }
    let mut last = None;
    for s in given {
        let Some(i) = funnel.iter().position(|f| f == s) else {
            return Err(PlanError::NotAFunnelStage {
                stage: s.clone(),
                funnel: funnel.join(", "),
            });
        };
        if last.is_some_and(|l| i <= l) {
            return Err(PlanError::OutOfOrder(funnel.join(", ")));
        }
        last = Some(i);
    }
    Ok(given.to_vec())
}

/// What to plan for.
#[derive(Clone, Debug)]
pub struct PlanInput<'a> {
    /// Revenue target in minor units.
    pub revenue: i64,
    /// Average deal size in minor units; `None`: the mean won deal by as-of.
    pub deal_size: Option<i64>,
    /// Stages from [`plan_stages`].
    pub stages: &'a [String],
    /// One rate per adjacent pair of stages; `None`: historic rates over
    /// `window`.
    pub rates: Option<&'a [f64]>,
    /// Group key per person; `None`: one plan for everyone.
    pub groups: Option<&'a BTreeMap<i64, String>>,
    /// Period the historic rates and velocity come from.
    pub window: Window,
    pub as_of: Timestamp,
}

/// One plan per group (or one for `(all)`), each a plan or why there is none.
#[derive(Clone, Debug)]
pub struct Plans {
    /// The calendar quarter containing as-of: deadlines work back from its end.
    pub quarter: Window,
    pub plans: Vec<(String, Result<Plan, PlanError>)>,
}

/// Plans per group: needed entries per stage to reach the revenue, the
/// date each must be reached by to close by the quarter's end (historic
/// median days between stages), and the current pipeline against it.
pub fn plans(pb: &Playbook, snap: &Snapshot, input: &PlanInput<'_>) -> Result<Plans, PlanError> {
    let stages = input.stages;
    let funnel = funnel_ids(pb);
    let grouping = match input.groups {
        Some(g) => Grouping::Map(g),
        None => Grouping::All,
    };
    let mut opts = WaterfallOptions::new(input.window, input.as_of);
    opts.cohort_stage = stages.first().cloned();
    opts.grouping = grouping;
    let w = waterfall(pb, &snap.transitions, &snap.deals, &opts)?;
    let sizes = average_won_deal_size(&snap.deals, input.as_of, grouping);
    let current = current_stage_counts(pb, &snap.transitions, input.as_of, grouping);
    let quarter = period_window(Period::Quarter, input.as_of, &pb.company.timezone)?;

    let mut names: Vec<String> = w.groups.iter().map(|g| g.group.clone()).collect();
    if names.is_empty() {
        names.push(ALL.to_string());
    }
    let mut out = Vec::new();
    for name in names {
        let g = w.groups.iter().find(|g| g.group == name);
        let result = (|| -> Result<Plan, PlanError> {
            let size = match input.deal_size {
                Some(s) => s,
                None => match sizes.get(&name) {
                    Some(&(_, mean)) if mean > 0 => mean,
                    _ => return Err(PlanError::NoDealSize),
                },
            };
            let rates = match input.rates {
                Some(r) => r.to_vec(),
                None => {
                    let hist = g.map(|g| historic_rates_for(g, stages)).unwrap_or_default();
                    let mut out = Vec::new();
                    for (i, pair) in stages.windows(2).enumerate() {
                        match hist.get(i).copied().flatten() {
                            Some(r) if r > 0.0 => out.push(r),
                            _ => {
                                return Err(PlanError::NoHistoricRate {
                                    from: pair[0].clone(),
                                    to: pair[1].clone(),
                                })
                            }
                        }
                    }
                    out
                }
            };
            let days = g
                .map(|g| historic_median_days_for(g, stages))
                .unwrap_or_default();
            let counts: BTreeMap<&str, u64> = current
                .get(&name)
                .map(|c| {
                    funnel
                        .iter()
                        .map(String::as_str)
                        .zip(c.iter().copied())
                        .collect()
                })
                .unwrap_or_default();
            let pipeline: Vec<f64> = stages
                .iter()
                .map(|s| counts.get(s.as_str()).copied().unwrap_or(0) as f64)
                .collect();
            Ok(reverse_waterfall(input.revenue, size, stages, &rates)?
                .with_deadlines(quarter.to, &days)
                .with_pipeline(&pipeline))
        })();
        out.push((name, result));
    }
    Ok(Plans {
        quarter,
        plans: out,
    })
}
