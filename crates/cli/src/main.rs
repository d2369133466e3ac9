//! `tandem`: the command-line interface of the revenue-alignment engine.

mod cmd;
mod ctx;
mod output;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::ctx::Ctx;
use crate::output::Format;

/// mimalloc instead of the system allocator: `tandem demo` and the bulk
/// loads allocate and free millions of small values on several threads,
/// where glibc's malloc and free were about a quarter of all samples.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's option for how long freed memory stays with the process, in
/// milliseconds, and what `tandem serve` runs with. Its default, a second,
/// let a server that builds and frees hundreds of megabytes while it
/// answers (a history's read, a replay, an index) hold the freed memory
/// beside the new: on the large demo, peak RSS after the waterfall 1,247
/// -> 1,123 MiB, after scorecard, SLA and stalled too 1,252 -> 1,171 MiB,
/// at the same speed (BENCHMARKS, session 24). Imports keep the default:
/// they free small values by the million and were slower with it.
const PURGE_DELAY: (&str, &str) = ("MIMALLOC_PURGE_DELAY", "0");

/// Starts this process again with [`PURGE_DELAY`] set, unless the
/// environment sets it already. mimalloc reads its options from the
/// environment once, when the process loads, and offers no safe call to
/// change them, so the option must be there before the program starts.
/// `exec` keeps the process id. If it fails, the server runs with the
/// default.
fn with_server_allocator_options() {
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        let (name, value) = PURGE_DELAY;
        if std::env::var_os(name).is_some() {
            return;
        }
        let Ok(exe) = std::env::current_exe() else {
            return;
        };
        let mut args = std::env::args_os();
        let mut again = std::process::Command::new(exe);
        if let Some(arg0) = args.next() {
            again.arg0(arg0);
        }
        // Returns only if the program could not be started again.
        let _ = again.args(args).env(name, value).exec();
    }
}

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
    /// Fill an empty database with a deterministic synthetic company.
    Demo(cmd::demo::DemoArgs),
    /// Goals paced over their period, and the leading indicators.
    ///
    /// Every playbook goal over its own period (the calendar period containing
    /// --as-of, company timezone): actual, target, expected to date (linear
    /// pacing), pace ratio, projection, status (ahead >= 1.05, on track >= 0.95,
    /// behind) and whether to celebrate. Leading indicators are over --period.
    /// Money is in major units of the company currency (`unit` column), rates
    /// are 0..1, counts are counts.
    Scorecard(cmd::scorecard::ScorecardArgs),
    /// Reverse waterfall: how many are needed at each stage to hit a revenue target.
    ///
    /// Rates are conversions between consecutive plan stages. The plan's stages
    /// are the funnel from the first stage to the won stage (`customer`), or
    /// those named with --stages (funnel order; the last is the won stage). With
    /// the starter funnel (inquiry, mql, sal, sql, opportunity, customer) that
    /// is five rates; four rates such as inquiry→mql, mql→sal, sal→sql, sql→won
    /// need `--stages inquiry,mql,sal,sql,customer`.
    ///
    /// `--rates historic` (default) takes the cohort conversion of the period
    /// (--from/--to, default all history) between the plan stages; a pair that
    /// skips stages gets the share that reached the later one. Velocity is the
    /// historic median days per pair (summed over skipped stages) and gives
    /// `enter_by`: when a stage's cohort must enter to be won by the end of the
    /// current quarter. `current` is how many are in each stage now and `gap`
    /// is needed − current. Without --deal-size the deal size is the mean of
    /// won deals up to --as-of. With --by each group gets its own plan for the
    /// whole target at its own rates, deal size and pipeline.
    Plan(cmd::plan::PlanArgs),
    /// Alignment gaps: share of MQLs next to share of won revenue per group.
    ///
    /// MQLs are entries into the MQL stage in the period; revenue and win rate
    /// come from deals closed in the period. gap = mql_share − revenue_share;
    /// groups with |gap| >= --threshold are flagged (listed largest first in
    /// the title).
    Gaps(cmd::gaps::GapsArgs),
    /// SLA both ways: sales handoffs and compliance, marketing volume and SAL rate.
    ///
    /// Sales: every handoff into the SLA stage with its first-response clock
    /// (business hours, company timezone) and attempts, open clocks with hours
    /// left, breaches with owner, lead and hours overdue (or attempts short),
    /// and compliance = met / (met + breached) overall and per owner.
    /// Marketing: MQLs per ISO week against the commitment and the SAL rate of
    /// the week's MQLs against its minimum. --week limits both to one ISO week
    /// (handoffs entered in it); --owner limits the sales side. CSV prints the
    /// handoff list only; JSON prints everything.
    Sla(cmd::sla::SlaArgs),
    /// Leads in a stage longer than its max_days, oldest first.
    ///
    /// Each with owner, stage, when it entered, days in the stage, the stage's
    /// max_days and days over, as of --as-of.
    Stalled(cmd::sla::StalledArgs),
    /// Definition check: how well MQL status and the scores predict a target.
    ///
    /// Target `won`: the person has a won deal (closed by --as-of) or reached
    /// the won stage (`customer`); any other stage id: the person reached that
    /// stage or a later funnel stage. The population is every person created
    /// by --as-of. For MQL status and each score: ROC AUC (Mann-Whitney, ties
    /// count one half), a decile table with conversion and lift, and for each
    /// score the threshold maximising Youden's J with its precision, recall
    /// and F1.
    ///
    /// Scores are taken when the definition was applied: fit and engagement
    /// are computed with the playbook's scoring rules as of the person's first
    /// MQL entry, or as of --as-of for people who never became MQLs (fit reads
    /// the stored profile, which has no history; engagement decays the touches
    /// up to that instant). custom.FIELD reads a numeric custom column of the
    /// person (people without a number there are left out), so the check
    /// works on any imported CSV. JSON prints everything; CSV the summary.
    Quality(cmd::quality::QualityArgs),
    /// Fit, engagement and grade of a person (or everyone).
    ///
    /// PERSON is an external id or #ID. Engagement decays touches up to
    /// --as-of; --explain lists each fit rule (points, what it added) and each
    /// scoring touch (points, decayed value, when).
    Score(cmd::quality::ScoreArgs),
    /// Multi-touch attribution: conversions and value per channel by model.
    ///
    /// Paths are each person's touches before a conversion (every won deal by
    /// default, valued at its amount; or the first entry into the stage named
    /// by --conversion), at most --lookback days old, ordered by time; people
    /// with touches but no conversion give null paths. At --level person,
    /// deals without a person are not credited; --level account joins the
    /// touches of an account's people up to the account's first conversion. --paths reads a
    /// ChannelAttribution file instead. Money from the store is in major units
    /// of the company currency. --compare runs every model and adds spend
    /// (cost of the channel's campaigns plus costs of touches outside stored
    /// campaigns), cost per won deal and won revenue per unit of cost.
    Attribution(cmd::attribution::AttributionArgs),
    /// Serve the HTTP API (until Ctrl-C or SIGTERM; requests in flight finish).
    Serve(cmd::serve::ServeArgs),
    /// Accounts: target (ABM) lists, stages, buying committees, tiers, onboarding SLA.
    #[command(subcommand)]
    Accounts(cmd::accounts::AccountsCmd),
    /// Manage API tokens for `tandem serve`.
    #[command(subcommand)]
    Token(cmd::serve::TokenCmd),
    /// The weekly report (Markdown by default; --format html|json), optionally e-mailed.
    ///
    /// Waterfall this week vs last week vs the 4-week average, leading
    /// indicators, scorecard with pacing, SLA both sides with breaches by
    /// owner, stalled leads, top sources and campaigns by won revenue
    /// (quarter to date), successes and obstacles, upcoming campaigns with
    /// expected MQLs, content requests and most-used assets, alignment gaps
    /// and celebrations. Weeks are ISO weeks in the company timezone.
    /// --send e-mails it to the playbook's [report] recipients and posts a
    /// summary to the webhook (TANDEM_REPORT_WEBHOOK or [report] webhook).
    Report(cmd::weekly::ReportArgs),
    /// The joint meeting's agenda (Markdown by default; --format html|json).
    Agenda(cmd::weekly::AgendaArgs),
    /// The meeting's decisions log: add, list, done.
    #[command(subcommand)]
    Decision(cmd::weekly::DecisionCmd),
    /// Feedback both ways: successes, obstacles, lead quality, content requests, ideas.
    #[command(subcommand)]
    Feedback(cmd::feedback::FeedbackCmd),
    /// Content assets sales sends: add, list, use.
    #[command(subcommand)]
    Content(cmd::weekly::ContentCmd),
    /// Every table to files peers read (DuckDB, pandas, spreadsheets).
    ///
    /// One file per table in --out, all read inside one consistent snapshot
    /// (the server may keep writing) and streamed in constant memory.
    /// --format csv (default), jsonl or parquet. Times are UTC epoch ms
    /// under the column's own name plus `<name>_utc` (ISO-8601) in CSV and
    /// JSONL, and UTC millisecond timestamps in Parquet; money is integer
    /// minor units (deals carry their currency). A foreign key to a table
    /// with external ids gets `<x>_external_id` beside `<x>_id`, so the files
    /// can be imported again.
    Export(cmd::export::ExportArgs),
    /// A consistent online copy of every table as a portable archive.
    ///
    /// JSON lines with a header (schema migrations), per-table row counts
    /// and SHA-256 checksums, and a closing line; written from one snapshot
    /// while `tandem serve` may be writing. The archive restores into SQLite
    /// or PostgreSQL alike.
    Backup(cmd::export::BackupArgs),
    /// Restore a `tandem backup` archive into an empty database (ids kept).
    ///
    /// All or nothing: the archive's counts and checksums are verified
    /// before the single transaction commits; a truncated or damaged archive
    /// leaves the database untouched. A database with rows is refused
    /// unless --force (which replaces its contents).
    Restore(cmd::export::RestoreArgs),
}

fn main() -> ExitCode {
    let matches = <Cli as clap::CommandFactory>::command().get_matches();
    let cli =
        <Cli as clap::FromArgMatches>::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if matches!(cli.command, Command::Serve(_)) {
        with_server_allocator_options();
    }
    // `serve --config` ranks a global option above its file only when given
    // by flag or environment, not when clap filled in the default.
    let given = |id: &str| {
        matches
            .value_source(id)
            .is_some_and(|s| s != clap::parser::ValueSource::DefaultValue)
    };
    let globals = cmd::serve::Globals {
        playbook: given("playbook").then(|| cli.playbook.clone()),
        database_url: given("database_url").then(|| cli.database_url.clone()),
    };
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
        Command::Demo(a) => ctx.block_on(cmd::demo::demo(&ctx, a)),
        Command::Scorecard(a) => ctx.block_on(cmd::scorecard::scorecard_cmd(&ctx, a)),
        Command::Plan(a) => ctx.block_on(cmd::plan::plan_cmd(&ctx, a)),
        Command::Gaps(a) => ctx.block_on(cmd::gaps::gaps_cmd(&ctx, a)),
        Command::Sla(a) => ctx.block_on(cmd::sla::sla_cmd(&ctx, a)),
        Command::Stalled(a) => ctx.block_on(cmd::sla::stalled_cmd(&ctx, a)),
        Command::Quality(a) => ctx.block_on(cmd::quality::quality_cmd(&ctx, a)),
        Command::Score(a) => ctx.block_on(cmd::quality::score_cmd(&ctx, a)),
        Command::Attribution(a) => cmd::attribution::attribution_cmd(&ctx, a),
        Command::Serve(a) => ctx.block_on(cmd::serve::serve(&ctx, a, globals)),
        Command::Token(c) => ctx.block_on(cmd::serve::token(&ctx, c)),
        Command::Accounts(c) => ctx.block_on(cmd::accounts::accounts_cmd(&ctx, c)),
        Command::Report(a) => ctx.block_on(cmd::weekly::report(&ctx, a)),
        Command::Agenda(a) => ctx.block_on(cmd::weekly::agenda(&ctx, a)),
        Command::Decision(c) => ctx.block_on(cmd::weekly::decision(&ctx, c)),
        Command::Content(c) => ctx.block_on(cmd::weekly::content(&ctx, c)),
        Command::Feedback(c) => ctx.block_on(cmd::feedback::feedback_cmd(&ctx, c)),
        Command::Export(a) => ctx.block_on(cmd::export::export_cmd(&ctx, a)),
        Command::Backup(a) => ctx.block_on(cmd::export::backup_cmd(&ctx, a)),
        Command::Restore(a) => ctx.block_on(cmd::export::restore_cmd(&ctx, a)),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            // `tandem … | head` closing the pipe early is not an error.
            let is_broken = |io: &std::io::Error| io.kind() == std::io::ErrorKind::BrokenPipe;
            // The csv writer wraps the io error without exposing it as a source.
            let broken_pipe = e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>().is_some_and(is_broken)
                    || c.downcast_ref::<csv::Error>().is_some_and(
                        |ce| matches!(ce.kind(), csv::ErrorKind::Io(io) if is_broken(io)),
                    )
            });
            if broken_pipe {
                return ExitCode::SUCCESS;
            }
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
