//! `tandem gaps`: where marketing's MQLs and sales' won revenue diverge.

use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Args;
use tandem_core::metrics::gaps::{alignment_gaps, DEFAULT_THRESHOLD};
use tandem_core::metrics::{funnel_ids, Grouping};

use crate::cmd::numbers::{self, local, major, num, Period};
use crate::ctx::Ctx;
use crate::output::Table;

#[derive(Args, Debug)]
pub struct GapsArgs {
    /// Group by segment, persona, industry, source (or channel, campaign, owner, tier, country, custom.FIELD).
    #[arg(long, default_value = "segment")]
    by: String,
    /// Flag groups whose MQL share and won-revenue share differ by at least this (0.10 = 10 points).
    #[arg(long, default_value_t = DEFAULT_THRESHOLD)]
    threshold: f64,
    #[command(flatten)]
    period: Period,
}

/// `tandem gaps`: per group, share of MQLs next to share of won revenue and
/// win rate; `flagged` groups are listed in the title, largest gap first.
pub async fn gaps_cmd(ctx: &Ctx, a: GapsArgs) -> Result<ExitCode> {
    let pb = ctx.playbook()?;
    let mql = pb
        .sla
        .sales
        .as_ref()
        .map(|s| s.stage.clone())
        .unwrap_or_else(|| "mql".into());
    if !funnel_ids(&pb).contains(&mql) {
        bail!("the playbook has no funnel stage `{mql}` to count MQLs in");
    }
    let snap = numbers::load(ctx).await?;
    let as_of = a.period.as_of(&pb)?;
    let window = a.period.window(&pb, &snap, as_of)?;
    let groups = numbers::group_by(&pb, &snap, &a.by)?;
    let g = alignment_gaps(
        &numbers::history(&snap),
        &mql,
        window,
        as_of,
        Grouping::Map(&groups),
        a.threshold,
    );
    let currency = pb.company.currency;
    let mut t = Table::new(&[
        "group",
        "mqls",
        "mql_share",
        "revenue_won",
        "currency",
        "revenue_share",
        "deals_won",
        "deals_lost",
        "win_rate",
        "gap",
        "flagged",
    ])
    .titled(format!(
        "alignment gaps by {} from {} to {} as of {}: {} MQLs, {} {} won; flagged (|gap| >= {:.2}): {}",
        a.by,
        local(&pb, window.from),
        local(&pb, window.to),
        local(&pb, as_of),
        g.total_mqls,
        major(g.total_revenue_won as f64),
        currency,
        g.threshold,
        if g.flagged.is_empty() {
            "none".to_string()
        } else {
            g.flagged.join(", ")
        }
    ));
    for r in &g.rows {
        t.row(vec![
            r.group.clone(),
            r.mqls.to_string(),
            format!("{:.4}", r.mql_share),
            major(r.revenue_won as f64),
            currency.to_string(),
            format!("{:.4}", r.revenue_share),
            r.deals_won.to_string(),
            r.deals_lost.to_string(),
            num(r.win_rate, 4),
            format!("{:+.4}", r.gap),
            r.flagged.to_string(),
        ]);
    }
    ctx.print(&mut t)?;
    Ok(ExitCode::SUCCESS)
}
