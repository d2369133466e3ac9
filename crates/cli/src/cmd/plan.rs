//! `tandem plan`: the reverse waterfall from a revenue target.

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use serde_json::json;
use tandem_core::metrics::plan::Plan;
use tandem_core::Money;
use tandem_store::numbers as numbers_shared;

use crate::cmd::numbers::{self, local, major, num, Period};
use crate::ctx::Ctx;
use crate::output::{Format, Table};

/// Arguments of `tandem plan`; how rates map to stages is in its `--help`
/// (the `Plan` command in `main.rs`).
#[derive(Args, Debug)]
pub struct PlanArgs {
    /// Revenue target in major units of the company currency (e.g. 1000000).
    #[arg(long)]
    revenue: String,
    /// Average deal size in major units (default: mean of won deals up to as-of).
    #[arg(long)]
    deal_size: Option<String>,
    /// `historic` (cohort rates over the period) or comma-separated rates, one per pair of plan stages.
    #[arg(long, default_value = "historic")]
    rates: String,
    /// Plan stages in funnel order, comma-separated; the last is the won stage.
    #[arg(long, value_delimiter = ',')]
    stages: Vec<String>,
    /// One plan per group: source, segment, persona, channel, campaign, owner, tier, industry, country or custom.FIELD.
    #[arg(long)]
    by: Option<String>,
    #[command(flatten)]
    period: Period,
}

/// `tandem plan` (computed by `tandem_store::numbers::plan`, as the API's).
pub async fn plan_cmd(ctx: &Ctx, a: PlanArgs) -> Result<ExitCode> {
    let pb = ctx.playbook()?;
    let currency = pb.company.currency;
    let revenue = Money::parse_major(&a.revenue, currency)
        .context("--revenue")?
        .minor;
    let deal_size = match &a.deal_size {
        Some(s) => Some(
            Money::parse_major(s, currency)
                .context("--deal-size")?
                .minor,
        ),
        None => None,
    };
    let given = numbers_shared::parse_rates(&a.rates)?;
    let snap = numbers::load(ctx).await?;
    let as_of = a.period.as_of(&pb)?;
    let window = a.period.window(&pb, &snap, as_of)?;
    let report = numbers_shared::plan(
        &pb,
        &snap,
        &numbers_shared::PlanParams {
            revenue,
            deal_size,
            rates: given.clone(),
            stages: a.stages.clone(),
            by: a.by.clone(),
            window,
            as_of,
        },
    )?;
    let quarter_to = report.quarter_end;
    let plans: Vec<(String, Result<Plan, String>)> = report
        .plans
        .into_iter()
        .map(|g| {
            let r = match (g.plan, g.error) {
                (Some(p), _) => Ok(p),
                (None, e) => Err(e.unwrap_or_default()),
            };
            (g.group, r)
        })
        .collect();

    if ctx.format == Format::Json {
        let out: Vec<serde_json::Value> = plans
            .iter()
            .map(|(group, p)| match p {
                Ok(p) => json!({
                    "group": group,
                    "currency": currency.as_str(),
                    "revenue_target": p.revenue_target as f64 / 100.0,
                    "deal_size": p.deal_size as f64 / 100.0,
                    "rates": if given.is_some() { "given" } else { "historic" },
                    "quarter_end": local(&pb, quarter_to),
                    "stages": p.stages.iter().map(|s| json!({
                        "stage": s.stage,
                        "needed": s.needed,
                        "rate_to_next": s.rate_to_next,
                        "enter_by": s.enter_by.map(|t| local(&pb, t)),
                        "current": s.current,
                        "gap": s.gap,
                    })).collect::<Vec<_>>(),
                }),
                Err(e) => json!({ "group": group, "error": e }),
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = Table::new(&[
        "group",
        "stage",
        "rate_to_next",
        "needed",
        "enter_by",
        "current",
        "gap",
        "deal_size",
    ])
    .titled(format!(
        "plan: revenue {} {}, {} rates, as of {}; deadlines to close by the quarter end {}",
        major(revenue as f64),
        currency,
        if given.is_some() { "given" } else { "historic" },
        local(&pb, as_of),
        local(&pb, quarter_to)
    ));
    for (group, p) in &plans {
        match p {
            Ok(p) => {
                for s in &p.stages {
                    t.row(vec![
                        group.clone(),
                        s.stage.clone(),
                        num(s.rate_to_next, 4),
                        num(Some(s.needed), 2),
                        s.enter_by
                            .map(|t| local(&pb, t))
                            .unwrap_or_else(|| "-".into()),
                        num(s.current, 0),
                        num(s.gap, 2),
                        major(p.deal_size as f64),
                    ]);
                }
            }
            Err(e) => t.row_padded(vec![group.clone(), format!("(no plan: {e})")]),
        }
    }
    ctx.print(&mut t)?;
    Ok(ExitCode::SUCCESS)
}
