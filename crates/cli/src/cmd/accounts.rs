//! `tandem accounts …`: target-account lists, account stages, buying
//! committees, tiers and the onboarding SLA; plus what `waterfall --level
//! account` and the scorecard's retention section need.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use tandem_core::accounts::lifecycle::{self as account_lifecycle};
use tandem_core::accounts::tiers::{check_tier, tiers, AccountStat, NON_TARGET};
use tandem_core::accounts::{coverage, engagement, sla::onboarding, suggest, Coverage};
use tandem_core::domain::{Account, Deal, Person, Subject, Touch, Transition};
use tandem_core::metrics::retention::{retention, ArrBook};
use tandem_core::metrics::waterfall::{waterfall_of, Waterfall, WaterfallOptions};
use tandem_core::metrics::{period_window, previous_periods, Grouping, Window};
use tandem_core::playbook::{Period, Playbook};
use tandem_core::transitions::Transitions;
use tandem_core::Timestamp;
use tandem_store::accounts::{self as store_accounts, AccountBook, NewTarget, Target};
use tandem_store::repo::{self, Snapshot, Upsert};

use crate::cmd::lifecycle::now;
use crate::cmd::numbers::{self, local, major, num, AsOf};
use crate::ctx::Ctx;
use crate::output::{Format, Table};

/// Whose funnel the waterfall counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Level {
    /// People (leads and contacts) through the playbook's stages.
    #[default]
    Person,
    /// Accounts through target → engaged → opportunity → customer → expansion.
    Account,
}

#[derive(Subcommand, Debug)]
pub enum AccountsCmd {
    /// Every account: stage, target tier and owners, engagement, committee coverage, ARR.
    ///
    /// Stages are those stored (run `tandem accounts sync` after imports);
    /// engagement is the sum of the account's people's engagement scores as
    /// of --as-of; coverage is the share of buying-committee roles covered.
    List(ListArgs),
    /// One account (external id): profile, target entry, stage history,
    /// engagement, buying committee with missing roles, ARR, onboarding clocks.
    Show(ShowArgs),
    /// The target-account (ABM) list.
    #[command(subcommand)]
    Target(TargetCmd),
    /// Bring every account's stage up to date (appends account transitions).
    Sync(AsOf),
    /// Record that a customer account churned, with a reason.
    Churn(ChurnArgs),
    /// Target tiers compared with the rest: coverage, engagement, pipeline,
    /// win rate and velocity (median days created → won) over the period.
    Tiers(numbers::Period),
    /// The account-management SLA: an agreed activity within the playbook's
    /// onboarding_days business days of becoming a customer.
    Sla(AsOf),
}

#[derive(Args, Debug)]
pub struct ListArgs {
    /// Only accounts on the target list.
    #[arg(long)]
    targets: bool,
    #[command(flatten)]
    as_of: AsOf,
}

#[derive(Args, Debug)]
pub struct ShowArgs {
    /// The account's external id.
    account: String,
    #[command(flatten)]
    as_of: AsOf,
}

#[derive(Subcommand, Debug)]
pub enum TargetCmd {
    /// Put an account on the list (or change its tier and owners), or many from --file.
    ///
    /// The CSV needs `account` (external id) and `tier`, and may have
    /// `marketer` and `seller`; bad rows go to FILE.rejects.csv with their
    /// line and reason.
    Add(TargetAddArgs),
    /// Take an account off the list.
    Remove {
        /// The account's external id.
        account: String,
    },
    /// The list, by tier.
    List,
    /// Accounts not on the list that a playbook [[account_lists]] rule matches.
    Suggest,
}

#[derive(Args, Debug)]
pub struct TargetAddArgs {
    /// The account's external id (or use --file).
    #[arg(required_unless_present = "file")]
    account: Option<String>,
    /// Tier: 1, 2 or 3.
    #[arg(long, required_unless_present = "file")]
    tier: Option<i64>,
    /// The marketer who owns the account.
    #[arg(long)]
    marketer: Option<String>,
    /// The seller who owns the account.
    #[arg(long)]
    seller: Option<String>,
    /// A CSV of accounts to add.
    #[arg(long, conflicts_with_all = ["account", "tier", "marketer", "seller"])]
    file: Option<PathBuf>,
    /// Who adds them (recorded).
    #[arg(long, env = "TANDEM_ACTOR", default_value = "cli")]
    actor: String,
}

#[derive(Args, Debug)]
pub struct ChurnArgs {
    /// The account's external id.
    account: String,
    /// Why it churned (a reason code).
    #[arg(long)]
    reason: String,
    /// When (default: now). ISO 8601 or 'YYYY-MM-DD HH:MM:SS' (UTC).
    #[arg(long)]
    at: Option<String>,
    /// A free-text note.
    #[arg(long)]
    note: Option<String>,
    /// Who records it.
    #[arg(long, env = "TANDEM_ACTOR", default_value = "cli")]
    actor: String,
}

/// `tandem accounts …`.
pub async fn accounts_cmd(ctx: &Ctx, cmd: AccountsCmd) -> Result<ExitCode> {
    match cmd {
        AccountsCmd::List(a) => list(ctx, a).await,
        AccountsCmd::Show(a) => show(ctx, a).await,
        AccountsCmd::Target(t) => target(ctx, t).await,
        AccountsCmd::Sync(a) => {
            let pb = ctx.playbook()?;
            let as_of = a.get(&pb)?;
            let store = ctx.store().await?;
            let mut tx = store.begin().await?;
            let n = store_accounts::sync(tx.conn(), &pb, as_of).await?;
            tx.commit().await?;
            eprintln!("account transitions appended: {n}");
            Ok(ExitCode::SUCCESS)
        }
        AccountsCmd::Churn(a) => churn(ctx, a).await,
        AccountsCmd::Tiers(p) => tiers_cmd(ctx, p).await,
        AccountsCmd::Sla(a) => sla_cmd(ctx, a).await,
    }
}

/// What the list and show commands print about one account.
struct View<'a> {
    account: &'a Account,
    target: Option<&'a Target>,
    stage: Option<&'a Transition>,
    engagement: f64,
    coverage: Coverage,
    arr: i64,
}

fn stage_at(ts: &[Transition], as_of: Timestamp) -> Option<&Transition> {
    ts.iter()
        .filter(|t| t.at <= as_of)
        .max_by_key(|t| (t.at, t.seq))
}

fn views<'a>(
    pb: &Playbook,
    book: &'a AccountBook,
    touches: &BTreeMap<i64, Vec<Touch>>,
    arr: &ArrBook,
    as_of: Timestamp,
) -> Vec<View<'a>> {
    let after = Timestamp::from_millis(as_of.millis().saturating_add(1));
    book.accounts
        .iter()
        .map(|a| {
            let people: Vec<&Person> = book.people_of(a.id).iter().collect();
            let ts: Vec<&Touch> = people
                .iter()
                .flat_map(|p| touches.get(&p.id).into_iter().flatten())
                .collect();
            View {
                account: a,
                target: book.targets.get(&a.id),
                stage: stage_at(book.transitions_of(a.id), as_of),
                engagement: engagement(pb, &people, &ts, as_of),
                coverage: coverage(pb, a, &people),
                arr: arr.arr_before(a.id, after),
            }
        })
        .collect()
}

async fn load_book(ctx: &Ctx) -> Result<(AccountBook, BTreeMap<i64, Vec<Touch>>)> {
    let store = ctx.store().await?;
    let mut c = store.conn().await?;
    let book = AccountBook::load(&mut c).await?;
    let mut touches: BTreeMap<i64, Vec<Touch>> = BTreeMap::new();
    for t in repo::touches(&mut c).await? {
        touches.entry(t.person_id).or_default().push(t);
    }
    Ok((book, touches))
}

fn arr_book(book: &AccountBook, as_of: Timestamp) -> ArrBook {
    let deals: Vec<Deal> = book.deals.values().flatten().cloned().collect();
    let ts: Transitions = book.transitions.values().flatten().cloned().collect();
    ArrBook::new(&deals, &ts, as_of)
}

fn opt(s: Option<&str>) -> String {
    s.unwrap_or("-").to_string()
}

async fn list(ctx: &Ctx, a: ListArgs) -> Result<ExitCode> {
    let pb = ctx.playbook()?;
    let as_of = a.as_of.get(&pb)?;
    let (book, touches) = load_book(ctx).await?;
    let arr = arr_book(&book, as_of);
    let mut t = Table::new(&[
        "account",
        "name",
        "industry",
        "employees",
        "tier",
        "marketer",
        "seller",
        "stage",
        "since",
        "engagement",
        "coverage",
        "missing_roles",
        "arr",
    ])
    .titled(format!(
        "accounts as of {} ({})",
        local(&pb, as_of),
        pb.company.timezone_name
    ));
    for v in views(&pb, &book, &touches, &arr, as_of) {
        if a.targets && v.target.is_none() {
            continue;
        }
        t.row(vec![
            v.account.external_id.clone(),
            opt(v.account.name.as_deref()),
            opt(v.account.industry.as_deref()),
            v.account
                .employees
                .map(|e| e.to_string())
                .unwrap_or_else(|| "-".into()),
            v.target
                .map(|t| t.tier.to_string())
                .unwrap_or_else(|| "-".into()),
            opt(v.target.and_then(|t| t.marketer.as_deref())),
            opt(v.target.and_then(|t| t.seller.as_deref())),
            opt(v.stage.map(|s| s.to.as_str())),
            v.stage
                .map(|s| local(&pb, s.at))
                .unwrap_or_else(|| "-".into()),
            num(Some(v.engagement), 1),
            num(v.coverage.share, 2),
            if v.coverage.missing.is_empty() {
                "-".into()
            } else {
                v.coverage.missing.join(" ")
            },
            major(v.arr as f64),
        ]);
    }
    ctx.print(&mut t)?;
    Ok(ExitCode::SUCCESS)
}

async fn show(ctx: &Ctx, a: ShowArgs) -> Result<ExitCode> {
    let pb = ctx.playbook()?;
    let as_of = a.as_of.get(&pb)?;
    let (book, touches) = load_book(ctx).await?;
    let arr = arr_book(&book, as_of);
    let all = views(&pb, &book, &touches, &arr, as_of);
    let Some(v) = all.iter().find(|v| v.account.external_id == a.account) else {
        bail!("account `{}` not found", a.account);
    };
    if ctx.format == Format::Json {
        let clocks = pb.sla.account_management.as_ref().map(|sla| {
            let (_, acts) = book.people_history(v.account.id);
            onboarding(
                sla,
                &pb.company,
                v.account.id,
                book.transitions_of(v.account.id),
                &acts,
                as_of,
            )
        });
        let out = serde_json::json!({
            "account": v.account,
            "target": v.target,
            "stage": v.stage.map(|s| &s.to),
            "history": book.transitions_of(v.account.id),
            "engagement": v.engagement,
            "coverage": v.coverage,
            "arr_minor": v.arr,
            "onboarding": clocks,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = Table::new(&["field", "value"]).titled(format!(
        "account {} as of {}",
        v.account.external_id,
        local(&pb, as_of)
    ));
    let mut kv = |k: &str, val: String| t.row(vec![k.into(), val]);
    kv("name", opt(v.account.name.as_deref()));
    kv("industry", opt(v.account.industry.as_deref()));
    kv(
        "employees",
        v.account
            .employees
            .map(|e| e.to_string())
            .unwrap_or_else(|| "-".into()),
    );
    kv(
        "target",
        match v.target {
            Some(t) => format!(
                "tier {} (marketer {}, seller {}; added {} by {})",
                t.tier,
                opt(t.marketer.as_deref()),
                opt(t.seller.as_deref()),
                local(&pb, t.added_at),
                t.added_by
            ),
            None => "no".into(),
        },
    );
    kv("stage", opt(v.stage.map(|s| s.to.as_str())));
    kv("engagement", num(Some(v.engagement), 1));
    kv("coverage", num(v.coverage.share, 2));
    kv(
        "missing_roles",
        if v.coverage.missing.is_empty() {
            "-".into()
        } else {
            v.coverage.missing.join(", ")
        },
    );
    kv(
        "arr",
        format!("{} {}", major(v.arr as f64), pb.company.currency),
    );
    ctx.print(&mut t)?;
    let mut h =
        Table::new(&["at", "from", "to", "cycle", "actor", "reason"]).titled("stage history");
    for x in book.transitions_of(v.account.id) {
        h.row(vec![
            local(&pb, x.at),
            opt(x.from.as_deref()),
            x.to.to_string(),
            x.cycle.to_string(),
            x.actor.to_string(),
            opt(x.reason.as_deref()),
        ]);
    }
    let mut c = Table::new(&["role", "min", "contacts", "covered"]).titled("buying committee");
    for r in &v.coverage.roles {
        c.row(vec![
            r.role.clone(),
            r.min.to_string(),
            if r.contacts.is_empty() {
                "-".into()
            } else {
                r.contacts.join(" ")
            },
            if r.covered { "yes" } else { "MISSING" }.into(),
        ]);
    }
    println!();
    ctx.print(&mut h)?;
    println!();
    ctx.print(&mut c)?;
    Ok(ExitCode::SUCCESS)
}

async fn target(ctx: &Ctx, cmd: TargetCmd) -> Result<ExitCode> {
    let store = ctx.store().await?;
    match cmd {
        TargetCmd::Add(a) => {
            if let Some(file) = &a.file {
                let s =
                    tandem_ingest::targets::import_targets(&store, file, &a.actor, now()).await?;
                eprintln!(
                    "{}: read {}, added {}, updated {}, unchanged {}, rejected {}",
                    file.display(),
                    s.read,
                    s.added,
                    s.updated,
                    s.unchanged,
                    s.rejected
                );
                if let Some(r) = &s.rejects_file {
                    eprintln!("rejected rows (with line and reason): {}", r.display());
                }
                return Ok(ExitCode::SUCCESS);
            }
            let (Some(ext), Some(tier)) = (&a.account, a.tier) else {
                bail!("give an account and --tier, or --file");
            };
            let tier = check_tier(tier).context("--tier")?;
            let mut tx = store.begin().await?;
            let acc = store_accounts::find_account(tx.conn(), ext).await?;
            let done = store_accounts::set_target(
                tx.conn(),
                acc.id,
                &NewTarget {
                    tier,
                    marketer: a.marketer.as_deref(),
                    seller: a.seller.as_deref(),
                    at: now(),
                    actor: &a.actor,
                },
            )
            .await?;
            tx.commit().await?;
            eprintln!(
                "{ext}: {}",
                match done {
                    Upsert::Inserted => "added to the target list",
                    Upsert::Updated => "target entry updated",
                    Upsert::Unchanged => "already on the list as given",
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        TargetCmd::Remove { account } => {
            let mut tx = store.begin().await?;
            let acc = store_accounts::find_account(tx.conn(), &account).await?;
            let removed = store_accounts::remove_target(tx.conn(), acc.id).await?;
            tx.commit().await?;
            eprintln!(
                "{account}: {}",
                if removed {
                    "removed from the target list"
                } else {
                    "was not on the target list"
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        TargetCmd::List => {
            let pb = ctx.playbook()?;
            let mut c = store.conn().await?;
            let mut t = Table::new(&[
                "account", "tier", "marketer", "seller", "added_at", "added_by",
            ])
            .titled("target accounts");
            for x in store_accounts::targets(&mut c).await? {
                t.row(vec![
                    x.external_id.clone(),
                    x.tier.to_string(),
                    opt(x.marketer.as_deref()),
                    opt(x.seller.as_deref()),
                    local(&pb, x.added_at),
                    x.added_by.clone(),
                ]);
            }
            ctx.print(&mut t)?;
            Ok(ExitCode::SUCCESS)
        }
        TargetCmd::Suggest => {
            let pb = ctx.playbook()?;
            let mut c = store.conn().await?;
            let accounts = repo::accounts(&mut c).await?;
            let by_id: BTreeMap<i64, &Account> = accounts.iter().map(|a| (a.id, a)).collect();
            let mut t = Table::new(&["account", "name", "industry", "employees", "list", "tier"])
                .titled("suggested target accounts ([[account_lists]] rules, not yet on the list)");
            for s in suggest(&pb, &accounts) {
                let a = by_id.get(&s.account_id);
                t.row(vec![
                    s.external_id.clone(),
                    opt(a.and_then(|a| a.name.as_deref())),
                    opt(a.and_then(|a| a.industry.as_deref())),
                    a.and_then(|a| a.employees)
                        .map(|e| e.to_string())
                        .unwrap_or_else(|| "-".into()),
                    s.list.clone(),
                    s.tier.to_string(),
                ]);
            }
            ctx.print(&mut t)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn churn(ctx: &Ctx, a: ChurnArgs) -> Result<ExitCode> {
    let at = match &a.at {
        Some(s) => Timestamp::parse(s)?,
        None => now(),
    };
    let store = ctx.store().await?;
    let mut tx = store.begin().await?;
    let acc = store_accounts::find_account(tx.conn(), &a.account).await?;
    let subject = Subject::Account(acc.id);
    let history = repo::transitions_of(tx.conn(), subject).await?;
    let m = account_lifecycle::churn(&history, at, &a.actor, &a.reason, a.note.clone())
        .with_context(|| format!("account `{}`", a.account))?;
    repo::append(tx.conn(), subject, &[m]).await?;
    tx.commit().await?;
    eprintln!("{}: churned ({})", a.account, a.reason.trim());
    Ok(ExitCode::SUCCESS)
}

/// Tier of every account for grouping: `tier N` or `non-target`.
fn tier_groups(snap: &Snapshot) -> BTreeMap<i64, String> {
    snap.accounts
        .iter()
        .map(|a| {
            let key = match (a.target, a.tier) {
                (true, Some(t)) => format!("tier {t}"),
                _ => NON_TARGET.to_string(),
            };
            (a.id, key)
        })
        .collect()
}

/// Group key of every account for `waterfall --level account --by …`.
fn account_groups(snap: &Snapshot, by: &str) -> Result<BTreeMap<i64, String>> {
    if by == "tier" {
        return Ok(tier_groups(snap));
    }
    let mut out = BTreeMap::new();
    for a in &snap.accounts {
        let key = match by {
            "industry" => a.industry.map(String::from),
            "segment" => a.segment.map(String::from),
            "owner" => a.owner.map(String::from),
            other => {
                bail!("accounts can be grouped by tier, industry, segment or owner, not `{other}`")
            }
        };
        if let Some(k) = key.filter(|k| !k.is_empty()) {
            out.insert(a.id, k);
        }
    }
    Ok(out)
}

/// The account waterfall: the generic waterfall over account transitions
/// and the account funnel. Lost deals are not listed (churn is the
/// account funnel's off-ramp).
pub fn account_waterfall(
    snap: &Snapshot,
    by: Option<&str>,
    opts: WaterfallOptions<'_>,
) -> Result<Waterfall> {
    let (funnel, kinds) = account_lifecycle::stages();
    let groups = by.map(|b| account_groups(snap, b)).transpose()?;
    let opts = WaterfallOptions {
        grouping: match &groups {
            Some(g) => Grouping::Accounts(g),
            None => Grouping::All,
        },
        ..opts
    };
    Ok(waterfall_of(
        &funnel,
        &kinds,
        &snap.account_transitions,
        &[],
        &opts,
    )?)
}

async fn tiers_cmd(ctx: &Ctx, p: numbers::Period) -> Result<ExitCode> {
    let pb = ctx.playbook()?;
    let as_of = p.as_of(&pb)?;
    let snap = numbers::load(ctx).await?;
    let window = p.window(&pb, &snap, as_of)?;
    let (book, touches) = load_book(ctx).await?;
    let arr = arr_book(&book, as_of);
    let stats: Vec<AccountStat> = views(&pb, &book, &touches, &arr, as_of)
        .into_iter()
        .map(|v| AccountStat {
            account_id: v.account.id,
            tier: v.target.map(|t| t.tier),
            coverage: v.coverage.share,
            engagement: v.engagement,
        })
        .collect();
    let rows = tiers(&stats, &snap.deals, window, as_of);
    let tier_of: BTreeMap<i64, String> = tier_groups(&snap);
    let mut t = Table::new(&[
        "tier",
        "accounts",
        "coverage",
        "engagement",
        "pipeline",
        "won",
        "revenue_won",
        "win_rate",
        "velocity_days",
        "nrr",
        "grr",
        "logo_retention",
    ])
    .titled(format!(
        "target tiers vs the rest, {} to {} as of {} (money in {})",
        local(&pb, window.from),
        local(&pb, window.to),
        local(&pb, as_of),
        pb.company.currency
    ));
    for r in rows {
        let ret = retention(&arr, window, as_of, &|a| tier_of.get(&a) == Some(&r.tier));
        t.row(vec![
            r.tier.clone(),
            r.accounts.to_string(),
            num(r.coverage, 2),
            num(r.engagement, 1),
            major(r.pipeline as f64),
            r.won.to_string(),
            major(r.revenue_won as f64),
            num(r.win_rate, 4),
            num(r.velocity_days, 1),
            num(ret.nrr, 4),
            num(ret.grr, 4),
            num(ret.logo_retention, 4),
        ]);
    }
    ctx.print(&mut t)?;
    Ok(ExitCode::SUCCESS)
}

async fn sla_cmd(ctx: &Ctx, a: AsOf) -> Result<ExitCode> {
    let pb = ctx.playbook()?;
    let Some(sla) = pb.sla.account_management.clone() else {
        bail!("the playbook has no [sla.account_management]; add onboarding_days (and activities) to use it");
    };
    let as_of = a.get(&pb)?;
    let (book, _) = load_book(ctx).await?;
    let mut t = Table::new(&[
        "account",
        "owner",
        "customer_since",
        "deadline",
        "first_activity",
        "status",
    ])
    .titled(format!(
        "account management: {} within {} business days of becoming a customer, as of {}",
        sla.activities
            .iter()
            .map(|k| k.as_str())
            .collect::<Vec<_>>()
            .join(" or "),
        sla.onboarding_days,
        local(&pb, as_of)
    ));
    let (mut met, mut breached) = (0u64, 0u64);
    for acc in &book.accounts {
        let (_, acts) = book.people_history(acc.id);
        for o in onboarding(
            &sla,
            &pb.company,
            acc.id,
            book.transitions_of(acc.id),
            &acts,
            as_of,
        ) {
            match o.status {
                tandem_core::sla::ClockStatus::Met => met += 1,
                tandem_core::sla::ClockStatus::Breached => breached += 1,
                _ => {}
            }
            t.row(vec![
                acc.external_id.clone(),
                opt(book
                    .targets
                    .get(&acc.id)
                    .and_then(|t| t.seller.as_deref())
                    .or(acc.owner.as_deref())),
                local(&pb, o.entered_at),
                local(&pb, o.deadline),
                o.first_activity
                    .map(|t| local(&pb, t))
                    .unwrap_or_else(|| "-".into()),
                o.status.as_str().into(),
            ]);
        }
    }
    ctx.print(&mut t)?;
    if ctx.format == Format::Table {
        let settled = met + breached;
        println!(
            "\ncompliance: {} ({met} met, {breached} breached)",
            if settled > 0 {
                format!("{:.1}%", 100.0 * met as f64 / settled as f64)
            } else {
                "-".into()
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The scorecard's retention section: ARR movement, NRR, GRR, logo
/// retention and expansion revenue for the calendar `period` containing
/// `as_of` and the three before it.
pub fn retention_table(
    pb: &Playbook,
    snap: &Snapshot,
    period: Period,
    as_of: Timestamp,
) -> Result<Table> {
    let book = ArrBook::new(&snap.deals, &snap.account_transitions, as_of);
    let current = period_window(period, as_of, &pb.company.timezone)?;
    let mut windows: Vec<Window> = previous_periods(period, current, 3, &pb.company.timezone)?;
    windows.reverse();
    windows.push(current);
    let mut t = Table::new(&[
        "from",
        "to",
        "start_arr",
        "expansion",
        "contraction",
        "churn",
        "new_arr",
        "nrr",
        "grr",
        "logo_retention",
        "expansion_revenue",
    ])
    .titled(format!(
        "retention by {} (ARR in {}; customers at the period start; see README)",
        period.as_str(),
        pb.company.currency
    ));
    for w in windows {
        let r = retention(&book, w, as_of, &|_| true);
        t.row(vec![
            local(pb, w.from),
            local(pb, w.to),
            major(r.start_arr as f64),
            major(r.expansion as f64),
            major(r.contraction as f64),
            major(r.churn as f64),
            major(r.new_arr as f64),
            num(r.nrr, 4),
            num(r.grr, 4),
            num(r.logo_retention, 4),
            major(r.expansion_revenue as f64),
        ]);
    }
    Ok(t)
}
