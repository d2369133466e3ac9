//! `tandem scorecard`: every goal paced over its period, and the leading
//! indicators of the seeds.

use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Args;
use tandem_core::metrics::scorecard::{leading_indicators, scorecard, Pacing, RATE_METRICS};
use tandem_core::metrics::{period_window, Grouping};
use tandem_core::playbook::{Period, Playbook};

use crate::cmd::numbers::{self, local, major, num, AsOf};
use crate::ctx::Ctx;
use crate::output::Table;

/// Money metrics: shown in major units of the company currency.
const MONEY_METRICS: &[&str] = &["revenue_won", "pipeline_created", "expansion_revenue"];

#[derive(Args, Debug)]
pub struct ScorecardArgs {
    /// Period of the leading indicators: quarter, month, week or year (goals keep their own period).
    #[arg(long, default_value = "quarter")]
    period: String,
    #[command(flatten)]
    as_of: AsOf,
}

/// A value of `metric` for people: money in major units, rates as 0..1 with
/// four decimals, counts as they are.
fn value(metric: &str, v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(v) if MONEY_METRICS.contains(&metric) => major(v),
        Some(v) if RATE_METRICS.contains(&metric) => format!("{v:.4}"),
        Some(v) => num(Some(v), if v.fract() == 0.0 { 0 } else { 2 }),
    }
}

fn unit(pb: &Playbook, metric: &str) -> String {
    if MONEY_METRICS.contains(&metric) {
        pb.company.currency.to_string()
    } else if RATE_METRICS.contains(&metric) {
        "rate".into()
    } else {
        "count".into()
    }
}

fn pacing_row(pb: &Playbook, kind: &str, name: &str, p: &Pacing) -> Vec<String> {
    let m = p.metric.as_str();
    vec![
        kind.into(),
        name.into(),
        m.into(),
        p.period.as_str().into(),
        local(pb, p.window.from),
        local(pb, p.window.to),
        unit(pb, m),
        value(m, p.actual),
        value(m, Some(p.target)),
        value(m, Some(p.expected_to_date)),
        num(p.pace, 2),
        value(m, p.projected),
        serde_json::to_value(p.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
        if p.celebrate { "yes" } else { "no" }.into(),
    ]
}

/// `tandem scorecard`: goals (with pacing, status and celebrations) and the
/// leading indicators over `--period`, measured as of `--as-of` in the
/// company timezone.
pub async fn scorecard_cmd(ctx: &Ctx, a: ScorecardArgs) -> Result<ExitCode> {
    let Some(period) = Period::parse(&a.period) else {
        bail!(
            "unknown period `{}`; use quarter, month, week or year",
            a.period
        );
    };
    let pb = ctx.playbook()?;
    let snap = numbers::load(ctx).await?;
    let as_of = a.as_of.get(&pb)?;
    let history = numbers::history(&snap);
    let (segments, personas) = tandem_store::query::goal_groups(&pb, &snap)?;
    let goals = scorecard(
        &pb,
        &history,
        as_of,
        Grouping::Map(&segments),
        Grouping::Map(&personas),
    )?;
    let indicators = leading_indicators(&pb, &history, period, as_of)?;
    let window = period_window(period, as_of, &pb.company.timezone)?;
    let mut t = Table::new(&[
        "kind",
        "name",
        "metric",
        "period",
        "from",
        "to",
        "unit",
        "actual",
        "target",
        "expected_to_date",
        "pace",
        "projected",
        "status",
        "celebrate",
    ])
    .titled(format!(
        "scorecard as of {} ({}); indicators over the {} {} to {}",
        local(&pb, as_of),
        pb.company.timezone_name,
        period.as_str(),
        local(&pb, window.from),
        local(&pb, window.to),
    ));
    for (goal, p) in pb.goals.iter().zip(&goals) {
        let mut name = goal.id.clone();
        if let Some(s) = &goal.segment {
            name.push_str(&format!(" (segment {s})"));
        }
        if let Some(s) = &goal.persona {
            name.push_str(&format!(" (persona {s})"));
        }
        t.row(pacing_row(&pb, "goal", &name, p));
    }
    for i in &indicators {
        match &i.pacing {
            Some(p) => t.row(pacing_row(
                &pb,
                "indicator",
                &i.description.replace(" (minor units)", ""),
                p,
            )),
            None => t.row_padded(vec![
                "indicator".into(),
                i.description.replace(" (minor units)", ""),
                i.metric.clone(),
                period.as_str().into(),
                local(&pb, i.window.from),
                local(&pb, i.window.to),
                unit(&pb, &i.metric),
                value(&i.metric, i.actual),
            ]),
        }
    }
    ctx.print(&mut t)?;
    if ctx.format == crate::output::Format::Table {
        println!();
        ctx.print(&mut crate::cmd::accounts::retention_table(
            &pb, &snap, period, as_of,
        )?)?;
    }
    Ok(ExitCode::SUCCESS)
}
