//! `tandem`: the command-line interface of the revenue-alignment engine.

mod cmd;
mod ctx;
mod output;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::ctx::Ctx;
use crate::output::Format;

/// One playbook, one lifecycle history and one set of numbers for marketing
/// and sales.
#[derive(Parser, Debug)]
#[command(name = "tandem", version, about, long_about = None)]
struct Cli {
    /// The playbook file.
    #[arg(
        long,
        global = true,
        env = "TANDEM_PLAYBOOK",
        default_value = "tandem.toml"
    )]
    playbook: PathBuf,
    /// Database: an SQLite file path or sqlite:/postgres:// URL.
    #[arg(
        long,
        global = true,
        env = "TANDEM_DATABASE_URL",
        default_value = "tandem.db",
        hide_env_values = true
    )]
    database_url: String,
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = Format::Table)]
    format: Format,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Write a commented starter playbook.
    Init {
        /// Where to write it (default: the --playbook path).
        file: Option<PathBuf>,
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Check a playbook; prints file:line:column: error|warning: message.
    Check {
        /// The playbook to check (default: the --playbook path).
        file: Option<PathBuf>,
    },
    /// Move a person to a stage (as an actor, with an optional reason).
    Stage(cmd::lifecycle::StageArgs),
    /// Accept a handed-over lead into the next stage (e.g. MQL → SAL).
    Accept(cmd::lifecycle::AcceptArgs),
    /// Reject a lead with a reason: disqualify, or recycle to nurture.
    Reject(cmd::lifecycle::RejectArgs),
    /// Show a person's stage history.
    History(cmd::lifecycle::HistoryArgs),
    /// Import a CSV export (people, accounts, touches, activities, deals, transitions).
    Import(cmd::import::ImportArgs),
    /// Funnel counts and conversion per stage (cohort view).
    Funnel(cmd::funnel::FunnelArgs),
    /// The demand waterfall: cohort and flow, velocity, leakage, comparison columns.
    Waterfall(cmd::funnel::FunnelArgs),
    /// Goals paced over their period, and the leading indicators.
    Scorecard(cmd::scorecard::ScorecardArgs),
    /// Reverse waterfall: how many are needed at each stage to hit a revenue target.
    Plan(cmd::plan::PlanArgs),
    /// Alignment gaps: share of MQLs next to share of won revenue per group.
    Gaps(cmd::gaps::GapsArgs),
    /// SLA both ways: sales handoffs and compliance, marketing volume and SAL rate.
    Sla(cmd::sla::SlaArgs),
    /// Leads in a stage longer than its max_days, oldest first.
    Stalled(cmd::sla::StalledArgs),
    /// Definition check: how well MQL status and the scores predict a target.
    Quality(cmd::quality::QualityArgs),
    /// Fit, engagement and grade of a person (or everyone).
    Score(cmd::quality::ScoreArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TANDEM_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let ctx = Ctx::new(cli.playbook, cli.database_url, cli.format);
    let result = match cli.command {
        Command::Init { file, force } => cmd::playbook::init(&ctx, file, force),
        Command::Check { file } => cmd::playbook::check(&ctx, file),
        Command::Stage(a) => ctx.block_on(cmd::lifecycle::stage(&ctx, a)),
        Command::Accept(a) => ctx.block_on(cmd::lifecycle::accept(&ctx, a)),
        Command::Reject(a) => ctx.block_on(cmd::lifecycle::reject(&ctx, a)),
        Command::History(a) => ctx.block_on(cmd::lifecycle::history(&ctx, a)),
        Command::Import(a) => ctx.block_on(cmd::import::import(&ctx, a)),
        Command::Funnel(a) => ctx.block_on(cmd::funnel::funnel(&ctx, a)),
        Command::Waterfall(a) => ctx.block_on(cmd::funnel::waterfall_cmd(&ctx, a)),
        Command::Scorecard(a) => ctx.block_on(cmd::scorecard::scorecard_cmd(&ctx, a)),
        Command::Plan(a) => ctx.block_on(cmd::plan::plan_cmd(&ctx, a)),
        Command::Gaps(a) => ctx.block_on(cmd::gaps::gaps_cmd(&ctx, a)),
        Command::Sla(a) => ctx.block_on(cmd::sla::sla_cmd(&ctx, a)),
        Command::Stalled(a) => ctx.block_on(cmd::sla::stalled_cmd(&ctx, a)),
        Command::Quality(a) => ctx.block_on(cmd::quality::quality_cmd(&ctx, a)),
        Command::Score(a) => ctx.block_on(cmd::quality::score_cmd(&ctx, a)),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
