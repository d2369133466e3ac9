//! Metric computations the CLI and the HTTP API share, with their parameter
//! checks: the reverse-waterfall plan, the definition check (quality) and
//! attribution paths and spend from stored history. Each takes parameters
//! already read from flags or a query string and fails with a
//! [`ParamError`] naming the parameter at fault; the callers only format.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use tandem_core::attribution::journeys::{
    build_paths, By, Conversion, JourneyOptions, Level, NO_KEY,
};
use tandem_core::attribution::PathTable;
use tandem_core::domain::{Account, Person, Touch};
use tandem_core::facts::Channels;
use tandem_core::metrics::plan::{
    average_won_deal_size, historic_median_days_for, historic_rates_for, reverse_waterfall,
    won_stage, Plan,
};
use tandem_core::metrics::waterfall::{current_stage_counts, waterfall, WaterfallOptions};
use tandem_core::metrics::{funnel_ids, period_window, Grouping, Window, ALL};
use tandem_core::playbook::{Period, Playbook};
use tandem_core::quality::target::{first_entries, reached_stage, reached_target, Target};
use tandem_core::quality::{roc_auc, rule_check, score_quality, RuleCheck, ScoreQuality};
use tandem_core::scoring;
use tandem_core::{Minor, Timestamp};

use crate::query::{group_by, mql_stage};
use crate::repo::Snapshot;

/// A parameter that cannot be used, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ParamError {
    /// The parameter (`stages`, `rates`, `by`, `target`, …).
    pub field: &'static str,
    pub message: String,
}

fn bad(field: &'static str, message: impl Into<String>) -> ParamError {
    ParamError {
        field,
        message: message.into(),
    }
}

// -------------------------------------------------------------------- plan

/// Parameters of the plan (`tandem plan`, `GET /metrics/plan`).
#[derive(Clone, Debug)]
pub struct PlanParams {
    /// Revenue target, minor units.
    pub revenue: i64,
    /// Average deal size, minor units (default: mean of won deals to as-of).
    pub deal_size: Option<i64>,
    /// Given rates, one per pair of plan stages (default: historic).
    pub rates: Option<Vec<f64>>,
    /// Plan stages in funnel order (default: the funnel up to the won stage).
    pub stages: Vec<String>,
    /// One plan per group of this dimension.
    pub by: Option<String>,
    pub window: Window,
    pub as_of: Timestamp,
}

/// Parses `0.1,0.85,…` (the `rates` parameter; `historic` is `None`).
pub fn parse_rates(s: &str) -> Result<Option<Vec<f64>>, ParamError> {
    if s == "historic" {
        return Ok(None);
    }
    s.split(',')
        .map(|r| {
            r.trim()
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| {
                    bad(
                        "rates",
                        format!("invalid rate `{r}`: expected a number such as 0.25"),
                    )
                })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// The plan of one group, or why there is none.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GroupPlan {
    pub group: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<Plan>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Plans per group, with what they were computed from.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PlanReport {
    pub stages: Vec<String>,
    /// `given` or `historic`.
    pub rates: &'static str,
    /// Deadlines are to close by the end of the quarter of as-of.
    pub quarter_end: Timestamp,
    pub as_of: Timestamp,
    pub plans: Vec<GroupPlan>,
}

/// The reverse-waterfall plan per group. Without `by`, a group that cannot
/// be planned (no historic rate, no won deal to average) is an error.
pub fn plan(pb: &Playbook, snap: &Snapshot, p: &PlanParams) -> Result<PlanReport, ParamError> {
    let funnel = funnel_ids(pb);
    let stages: Vec<String> = if p.stages.is_empty() {
        let won =
            won_stage(pb).ok_or_else(|| bad("stages", "the playbook has no funnel stages"))?;
        let end = funnel.iter().position(|s| *s == won).unwrap_or(0);
        funnel[..=end].to_vec()
    } else {
        let mut last = None;
        for s in &p.stages {
            let Some(i) = funnel.iter().position(|f| f == s) else {
                return Err(bad(
                    "stages",
                    format!(
                        "`{s}` is not a funnel stage; the funnel is {}",
                        funnel.join(", ")
                    ),
                ));
            };
            if last.is_some_and(|l| i <= l) {
                return Err(bad(
                    "stages",
                    format!("--stages must be in funnel order ({})", funnel.join(", ")),
                ));
            }
            last = Some(i);
        }
        p.stages.clone()
    };
    if let Some(r) = &p.rates {
        if r.len() + 1 != stages.len() {
            return Err(bad(
                "rates",
                format!(
                    "{} rates given but the plan has {} stages ({}), which need {}; name the stages with --stages, e.g. --stages {}",
                    r.len(),
                    stages.len(),
                    stages.join(", "),
                    stages.len().saturating_sub(1),
                    stages.iter().take(r.len()).chain(stages.last()).cloned().collect::<Vec<_>>().join(",")
                ),
            ));
        }
    }
    let groups =
        p.by.as_deref()
            .map(|by| group_by(pb, snap, by))
            .transpose()
            .map_err(|e| bad("by", e.to_string()))?;
    let grouping = match &groups {
        Some(g) => Grouping::Map(g),
        None => Grouping::All,
    };
    let mut opts = WaterfallOptions::new(p.window, p.as_of);
    opts.cohort_stage = stages.first().cloned();
    opts.grouping = grouping;
    let w = waterfall(pb, &snap.transitions, &snap.deals, &opts)
        .map_err(|e| bad("stages", e.to_string()))?;
    let sizes = average_won_deal_size(&snap.deals, p.as_of, grouping);
    let current = current_stage_counts(pb, &snap.transitions, p.as_of, grouping);
    let quarter = period_window(Period::Quarter, p.as_of, &pb.company.timezone)
        .map_err(|e| bad("as_of", e.to_string()))?;

    let mut names: Vec<String> = w.groups.iter().map(|g| g.group.clone()).collect();
    if names.is_empty() {
        names.push(ALL.to_string());
    }
    let mut plans = Vec::new();
    for name in names {
        let g = w.groups.iter().find(|g| g.group == name);
        let result = (|| -> Result<Plan, String> {
            let size = match p.deal_size {
                Some(s) => s,
                None => match sizes.get(&name) {
                    Some(&(_, mean)) if mean > 0 => mean,
                    _ => {
                        return Err(
                            "no won deals with an amount to average; pass --deal-size".into()
                        )
                    }
                },
            };
            let rates = match &p.rates {
                Some(r) => r.clone(),
                None => {
                    let hist = g
                        .map(|g| historic_rates_for(g, &stages))
                        .unwrap_or_default();
                    let mut out = Vec::new();
                    for (i, pair) in stages.windows(2).enumerate() {
                        match hist.get(i).copied().flatten() {
                            Some(r) if r > 0.0 => out.push(r),
                            _ => {
                                return Err(format!(
                                "no historic conversion from {} to {} in the period; pass --rates",
                                pair[0], pair[1]
                            ))
                            }
                        }
                    }
                    out
                }
            };
            let days = g
                .map(|g| historic_median_days_for(g, &stages))
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
            Ok(reverse_waterfall(p.revenue, size, &stages, &rates)
                .map_err(|e| e.to_string())?
                .with_deadlines(quarter.to, &days)
                .with_pipeline(&pipeline))
        })();
        plans.push(match result {
            Ok(plan) => GroupPlan {
                group: name,
                plan: Some(plan),
                error: None,
            },
            Err(e) => GroupPlan {
                group: name,
                plan: None,
                error: Some(e),
            },
        });
    }
    if p.by.is_none() {
        if let Some(GroupPlan { error: Some(e), .. }) = plans.first() {
            return Err(bad("rates", e.clone()));
        }
    }
    Ok(PlanReport {
        stages,
        rates: if p.rates.is_some() {
            "given"
        } else {
            "historic"
        },
        quarter_end: quarter.to,
        as_of: p.as_of,
        plans,
    })
}

// ----------------------------------------------------------------- quality

/// How one score predicts the target.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ScoreResult {
    pub score: String,
    /// People with a value for this score.
    pub n: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quality: Option<ScoreQuality>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The MQL rule as a predictor.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MqlRule {
    pub stage: String,
    pub auc: Option<f64>,
    pub check: RuleCheck,
}

/// The definition check (`tandem quality`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct QualityReport {
    pub target: String,
    pub as_of: Timestamp,
    /// People created by as-of.
    pub n: usize,
    /// Of them, how many reached the target.
    pub positives: usize,
    pub mql_rule: MqlRule,
    pub scores: Vec<ScoreResult>,
}

fn custom_number(p: &Person, field: &str) -> Option<f64> {
    match p.custom.get(field)? {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => s.trim().parse::<f64>().ok(),
        serde_json::Value::Bool(b) => Some(f64::from(u8::from(*b))),
        _ => None,
    }
    .filter(|v| v.is_finite())
}

/// How well the MQL rule and each score (`fit`, `engagement` — both at MQL
/// entry, or as-of for people never MQL — or `custom.FIELD`; default fit and
/// engagement) predict `target` (`won` or a stage id) among people created
/// by `as_of`.
pub fn quality(
    pb: &Playbook,
    snap: &Snapshot,
    target: &str,
    score: Option<&str>,
    as_of: Timestamp,
) -> Result<QualityReport, ParamError> {
    let goal = Target::parse(pb, target).map_err(|e| bad("target", e.to_string()))?;
    let names: Vec<String> = match score {
        Some(s) if s == "fit" || s == "engagement" || s.starts_with("custom.") => {
            vec![s.to_string()]
        }
        Some(s) => {
            return Err(bad(
                "score",
                format!("unknown score `{s}`; use fit, engagement or custom.FIELD"),
            ))
        }
        None => vec!["fit".into(), "engagement".into()],
    };
    let people: Vec<&Person> = snap
        .people
        .iter()
        .filter(|p| p.created_at <= as_of)
        .collect();
    if people.is_empty() {
        return Err(bad("as_of", "no people to check; import some first"));
    }
    let won = reached_target(pb, &snap.transitions, &snap.deals, &goal, as_of);
    let mql = mql_stage(pb);
    let mqls = reached_stage(pb, &snap.transitions, &mql, as_of);
    let mql_at = first_entries(&snap.transitions, &mql, as_of);
    let accounts: BTreeMap<i64, &Account> = snap.accounts.iter().map(|x| (x.id, x)).collect();
    let mut touches: BTreeMap<i64, Vec<Touch>> = BTreeMap::new();
    for t in &snap.touches {
        touches.entry(t.person_id).or_default().push(t.to_touch());
    }
    let outcomes: Vec<bool> = people.iter().map(|p| won.contains(&p.id)).collect();
    let predicted: Vec<bool> = people.iter().map(|p| mqls.contains(&p.id)).collect();
    let check = rule_check(&predicted, &outcomes).map_err(|e| bad("target", e.to_string()))?;
    let rule_scores: Vec<f64> = predicted.iter().map(|&m| f64::from(u8::from(m))).collect();
    let rule_auc = roc_auc(&rule_scores, &outcomes).ok();

    let mut scores = Vec::new();
    for name in &names {
        let mut values = Vec::new();
        let mut outs = Vec::new();
        for (p, &o) in people.iter().zip(&outcomes) {
            let v = match name.as_str() {
                "fit" => Some(
                    scoring::fit(
                        pb,
                        p,
                        p.account_id.and_then(|id| accounts.get(&id).copied()),
                    )
                    .0,
                ),
                "engagement" => {
                    let at = mql_at.get(&p.id).copied().unwrap_or(as_of).min(as_of);
                    let ts = touches.get(&p.id).map(Vec::as_slice).unwrap_or(&[]);
                    Some(scoring::engagement_score(pb, ts, at))
                }
                other => custom_number(p, other.trim_start_matches("custom.")),
            };
            if let Some(v) = v {
                values.push(v);
                outs.push(o);
            }
        }
        let (quality, error) = match score_quality(&values, &outs) {
            Ok(q) => (Some(q), None),
            Err(e) => (None, Some(e.to_string())),
        };
        scores.push(ScoreResult {
            score: name.clone(),
            n: values.len(),
            quality,
            error,
        });
    }
    Ok(QualityReport {
        target: target.to_string(),
        as_of,
        n: people.len(),
        positives: outcomes.iter().filter(|o| **o).count(),
        mql_rule: MqlRule {
            stage: mql,
            auc: rule_auc,
            check,
        },
        scores,
    })
}

// ------------------------------------------------------------- attribution

/// Attribution paths from stored history, with what was left out.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredPaths {
    pub conversion: Conversion,
    pub paths: PathTable,
    /// Conversions without any touch in their window (not credited).
    pub untouched_conversions: f64,
    pub untouched_value: f64,
}

/// Reads `won` or a stage id as a conversion.
pub fn conversion(pb: &Playbook, s: &str) -> Result<Conversion, ParamError> {
    if s == "won" {
        Ok(Conversion::Won)
    } else if pb.stages.iter().any(|x| x.id == s) {
        Ok(Conversion::Stage(s.to_string()))
    } else {
        let ids: Vec<&str> = pb.stages.iter().map(|x| x.id.as_str()).collect();
        Err(bad(
            "conversion",
            format!(
                "unknown --conversion `{s}`; use `won` or a stage id: {}",
                ids.join(", ")
            ),
        ))
    }
}

/// Conversion paths by channel or campaign from the stored history.
pub fn stored_paths(
    pb: &Playbook,
    snap: &Snapshot,
    conversion_of: &str,
    by: By,
    level: Level,
    lookback_days: i64,
    as_of: Timestamp,
) -> Result<StoredPaths, ParamError> {
    let conversion = conversion(pb, conversion_of)?;
    if lookback_days < 0 {
        return Err(bad("lookback", "--lookback must be a number of days >= 0"));
    }
    let j = build_paths(
        pb,
        &snap.people,
        &snap.touches,
        &snap.deals,
        &snap.transitions,
        &JourneyOptions {
            conversion: conversion.clone(),
            by,
            level,
            lookback_days,
            as_of,
        },
    );
    Ok(StoredPaths {
        conversion,
        paths: j.paths,
        untouched_conversions: j.untouched_conversions,
        untouched_value: j.untouched_value,
    })
}

/// Spend per channel (or campaign) in minor units: the `cost` of every stored
/// campaign that started by `as_of` (or has no start), plus the `cost` of
/// touches by `as_of` whose campaign is not a stored campaign (a stored
/// campaign's cost already includes its touches).
pub fn spend(pb: &Playbook, snap: &Snapshot, by: By, as_of: Timestamp) -> BTreeMap<String, i64> {
    let mut out: BTreeMap<String, i64> = BTreeMap::new();
    let known: BTreeSet<&str> = snap
        .campaigns
        .iter()
        .map(|c| c.external_id.as_str())
        .collect();
    for c in &snap.campaigns {
        if c.starts_at.is_some_and(|s| s > as_of) {
            continue;
        }
        let key = match by {
            By::Channel => c.channel.clone(),
            By::Campaign => Some(c.external_id.clone()),
        };
        let key = key
            .filter(|k| !k.is_empty())
            .unwrap_or_else(|| NO_KEY.into());
        let s = out.entry(key).or_default();
        *s = s.saturating_add(c.cost.unwrap_or(0));
    }
    let people: BTreeMap<i64, &Person> = snap.people.iter().map(|p| (p.id, p)).collect();
    let channels = Channels::new(pb);
    for t in &snap.touches {
        let Some(cost) = t.cost.map(Minor::get) else {
            continue;
        };
        if t.at > as_of || t.campaign.as_deref().is_some_and(|c| known.contains(c)) {
            continue;
        }
        let key = match by {
            By::Channel => people
                .get(&t.person_id)
                .and_then(|p| channels.of(t, p))
                .or(t.channel.map(String::from)),
            By::Campaign => t.campaign.map(String::from),
        };
        let key = key
            .filter(|k| !k.is_empty())
            .unwrap_or_else(|| NO_KEY.into());
        let s = out.entry(key).or_default();
        *s = s.saturating_add(cost);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tandem_core::domain::Campaign;
    use tandem_core::playbook::STARTER;

    /// Spend adds stored campaigns' costs per channel and pins at
    /// `i64::MAX` rather than overflowing (two campaigns of `i64::MAX`,
    /// which a store written before the input bound may hold).
    #[test]
    fn spend_sums_per_channel_and_saturates() {
        let Some(pb) = Playbook::load(STARTER).playbook else {
            panic!("the starter playbook loads");
        };
        let campaign = |id: i64, channel: &str, cost: i64| Campaign {
            id,
            external_id: format!("c{id}"),
            name: format!("c{id}"),
            channel: Some(channel.into()),
            cost: Some(cost),
            ..Campaign::default()
        };
        let snap = Snapshot {
            campaigns: vec![
                campaign(1, "events", 250_00),
                campaign(2, "events", 1_000_00),
                campaign(3, "paid_search", i64::MAX),
                campaign(4, "paid_search", i64::MAX),
            ],
            ..Snapshot::default()
        };
        let got = spend(&pb, &snap, By::Channel, Timestamp::from_millis(0));
        let want: BTreeMap<String, i64> = [
            ("events".into(), 1_250_00),
            ("paid_search".into(), i64::MAX),
        ]
        .into();
        assert_eq!(got, want);
    }
}
