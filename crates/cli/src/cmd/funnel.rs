//! `tandem funnel` and `tandem waterfall`: the shared demand waterfall.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use tandem_core::domain::Subject;
use tandem_core::metrics::waterfall::{self, Replay, ReplayBuilder, Waterfall, WaterfallOptions};
use tandem_core::metrics::{funnel_ids, Grouping};
use tandem_core::transitions::TransitionRef;
use tandem_core::Timestamp;
use tandem_store::warm::{snapshot_streaming, TransitionSink};

use crate::cmd::accounts::{account_waterfall, Level};
use crate::cmd::numbers::{self, Period};
use crate::ctx::Ctx;
use crate::output::{pct, Format, Table};

#[derive(Args, Debug)]
pub struct FunnelArgs {
    /// Group by source, segment, persona, channel, campaign, owner, tier, industry, country or custom.FIELD.
    #[arg(long)]
    by: Option<String>,
    /// Cohort stage: of those who entered it in the period, how many reached each later stage.
    #[arg(long)]
    cohort: Option<String>,
    /// Count people instead of cycles (a recycled lead counts once).
    #[arg(long)]
    unique: bool,
    /// `account`: the account funnel (target → engaged → opportunity →
    /// customer → expansion, off-ramp churned); --by tier|industry|segment|owner.
    #[arg(long, value_enum, default_value_t = Level::Person)]
    level: Level,
    #[command(flatten)]
    period: Period,
}

async fn compute(ctx: &Ctx, a: &FunnelArgs) -> Result<Waterfall> {
    let pb = ctx.playbook()?;
    // The waterfall reads transitions and deals; touches only to group by
    // first-touch channel or campaign.
    let need = tandem_store::warm::Need {
        touches: matches!(a.by.as_deref(), Some("channel" | "campaign")),
        ..Default::default()
    };
    let as_of = a.period.as_of(&pb)?;
    let opts = |window| {
        let mut o = WaterfallOptions::new(window, as_of);
        o.cohort_stage = a.cohort.clone();
        o.unique = a.unique;
        o
    };
    if a.level == Level::Account {
        let snap = numbers::load_only(ctx, need).await?;
        let window = a.period.window(&pb, &snap, as_of)?;
        return account_waterfall(&snap, a.by.as_deref(), opts(window));
    }
    // A bad query should not cost a read of the history.
    waterfall::cohort_index(&funnel_ids(&pb), a.cohort.as_deref())?;
    // The people's transitions go straight into the replay as they are
    // read, beside the other tables, instead of into a snapshot first.
    let store = ctx.store().await?;
    let sink = Replaying {
        replay: ReplayBuilder::new(&pb, as_of),
        earliest: None,
    };
    let (snap, (replay, earliest)) = snapshot_streaming(&store, need, sink).await?;
    let mut opts = opts(a.period.window_since(&pb, earliest, as_of)?);
    let groups =
        a.by.as_deref()
            .map(|by| numbers::group_by(&pb, &snap, by))
            .transpose()?;
    if let Some(g) = &groups {
        opts.grouping = Grouping::Map(g);
    }
    Ok(replay.waterfall(&snap.deals, &opts)?)
}

/// The people's transitions replayed as they are read, and the earliest of
/// them (where the default window starts).
struct Replaying {
    replay: ReplayBuilder,
    earliest: Option<Timestamp>,
}

impl TransitionSink for Replaying {
    type Out = (Replay, Option<Timestamp>);

    fn push(&mut self, t: TransitionRef<'_>) {
        if matches!(t.subject, Subject::Person(_)) {
            self.replay.push(t);
            self.earliest = Some(self.earliest.map_or(t.at, |e| e.min(t.at)));
        }
    }

    fn finish(self) -> Self::Out {
        (self.replay.finish(), self.earliest)
    }
}

/// `tandem funnel`: counts per stage and conversion, cohort view.
pub async fn funnel(ctx: &Ctx, a: FunnelArgs) -> Result<ExitCode> {
    let w = compute(ctx, &a).await?;
    if ctx.format == Format::Json {
        return print_json(&w);
    }
    let mut t =
        Table::new(&["group", "stage", "count", "conversion", "cumulative"]).titled(format!(
            "cohort: entered {} from {} to {} (as of {}), counting {}",
            w.cohort_stage,
            w.window.from,
            w.window.to,
            w.as_of,
            if w.unique { "people" } else { "cycles" }
        ));
    for g in &w.groups {
        for s in g.stages.iter().filter(|s| s.cohort.is_some()) {
            t.row(vec![
                g.group.clone(),
                s.stage.clone(),
                s.cohort.unwrap_or(0).to_string(),
                pct(s.conversion, 2),
                pct(s.cumulative, 3),
            ]);
        }
    }
    ctx.print(&mut t)?;
    Ok(ExitCode::SUCCESS)
}

fn print_json(w: &Waterfall) -> Result<ExitCode> {
    println!("{}", serde_json::to_string_pretty(w)?);
    Ok(ExitCode::SUCCESS)
}

fn opt_f(x: Option<f64>, digits: usize) -> String {
    x.map(|v| format!("{v:.digits$}"))
        .unwrap_or_else(|| "-".into())
}

/// `tandem waterfall`: cohort and flow, velocity and leakage, with comparison columns.
pub async fn waterfall_cmd(ctx: &Ctx, a: FunnelArgs) -> Result<ExitCode> {
    let w = compute(ctx, &a).await?;
    if ctx.format == Format::Json {
        return print_json(&w);
    }
    let mut stages = Table::new(&[
        "group", "stage", "cohort", "conversion", "cumulative", "flow", "flow_ratio", "prev_flow", "avg4_flow",
        "leaked",
    ])
    .titled(format!(
        "waterfall: {} to {} as of {}; cohort = entered {}; comparison = previous and trailing 4 periods",
        w.window.from, w.window.to, w.as_of, w.cohort_stage
    ));
    let mut velocity =
        Table::new(&["group", "from", "to", "n", "median_days", "p90_days"]).titled("velocity");
    let mut leakage = Table::new(&["group", "stage", "to", "reason", "count"]).titled("leakage");
    for g in &w.groups {
        for s in &g.stages {
            stages.row(vec![
                g.group.clone(),
                s.stage.clone(),
                s.cohort
                    .map(|c| c.to_string())
                    .unwrap_or_else(|| "-".into()),
                pct(s.conversion, 2),
                pct(s.cumulative, 3),
                s.flow.to_string(),
                pct(s.flow_ratio, 2),
                s.prev_flow
                    .map(|c| c.to_string())
                    .unwrap_or_else(|| "-".into()),
                opt_f(s.avg_flow, 1),
                s.leaked.to_string(),
            ]);
        }
        for v in &g.velocity {
            velocity.row(vec![
                g.group.clone(),
                v.from.clone(),
                v.to.clone(),
                v.n.to_string(),
                opt_f(v.median_days, 1),
                opt_f(v.p90_days, 1),
            ]);
        }
        for l in &g.leakage {
            for e in &l.exits {
                leakage.row(vec![
                    g.group.clone(),
                    l.stage.clone(),
                    e.to.clone(),
                    e.reason.clone(),
                    e.count.to_string(),
                ]);
            }
        }
        for e in &g.lost.by_reason {
            leakage.row(vec![
                g.group.clone(),
                "(deals)".into(),
                "lost".into(),
                e.reason.clone(),
                e.count.to_string(),
            ]);
        }
    }
    ctx.print(&mut stages)?;
    if ctx.format == Format::Table {
        println!();
        ctx.print(&mut velocity)?;
        println!();
        ctx.print(&mut leakage)?;
    }
    Ok(ExitCode::SUCCESS)
}
