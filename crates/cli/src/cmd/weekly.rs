//! The weekly loop: `tandem report`, `agenda`, `decision` and `content`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use tandem_core::Timestamp;
use tandem_report::deliver::{self, PASSWORD_ENV, WEBHOOK_ENV};
use tandem_report::render::{self, Style};
use tandem_report::{Meeting, Week};
use tandem_store::repo;
use tandem_store::weekly::{self, ContentAsset, NewDecision};

use crate::cmd::lifecycle::now;
use crate::cmd::numbers::{local, AsOf};
use crate::ctx::Ctx;
use crate::output::{Format, Table};

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// ISO week, e.g. 2026-W48 (company timezone); default: the last complete week before --as-of.
    #[arg(long)]
    week: Option<String>,
    /// Write to this file instead of stdout.
    #[arg(long)]
    out: Option<PathBuf>,
    /// E-mail the report to the playbook's [report] recipients (and post the webhook summary).
    #[arg(long)]
    send: bool,
    #[command(flatten)]
    as_of: AsOf,
}

fn style(format: Format) -> Result<Option<Style>> {
    match format {
        Format::Table | Format::Md => Ok(Some(Style::Markdown)),
        Format::Html => Ok(Some(Style::Html)),
        Format::Json => Ok(None),
        Format::Csv | Format::Jsonl | Format::Parquet => {
            bail!("--format csv, jsonl or parquet does not apply here; use md, html or json")
        }
    }
}

fn emit(out: &Option<PathBuf>, text: &str) -> Result<()> {
    match out {
        Some(path) => {
            std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
        }
        None => {
            use std::io::Write;
            let mut o = std::io::stdout().lock();
            o.write_all(text.as_bytes())?;
            o.flush()?;
            Ok(())
        }
    }
}

fn week(ctx_week: &Option<String>, pb: &tandem_core::playbook::Playbook) -> Result<Option<Week>> {
    Ok(match ctx_week {
        Some(w) => Some(Week::parse(w, &pb.company.timezone)?),
        None => None,
    })
}

/// `tandem report`.
pub async fn report(ctx: &Ctx, a: ReportArgs) -> Result<ExitCode> {
    let style = style(ctx.format)?;
    let pb = ctx.playbook()?;
    let as_of = a.as_of.get(&pb)?;
    let store = ctx.store().await?;
    let r = tandem_report::gather(&store, &pb, week(&a.week, &pb)?, as_of).await?;
    let text = match style {
        Some(s) => render::report(&r, s)?,
        None => serde_json::to_string_pretty(&r)? + "\n",
    };
    if a.send {
        let cfg = pb
            .report
            .as_ref()
            .context("--send needs a [report] section in the playbook (recipients and smtp)")?;
        let smtp = cfg
            .smtp
            .as_ref()
            .context("--send needs [report.smtp] (host, port, from) in the playbook")?;
        let email = deliver::compose(&r, cfg)?;
        let password = std::env::var(PASSWORD_ENV).ok();
        let smtp = smtp.clone();
        let to = email.to.len();
        let subject = email.subject.clone();
        // lettre's SMTP client blocks; keep it off the async workers.
        tokio::task::spawn_blocking(move || deliver::send(&email, &smtp, password.as_deref()))
            .await
            .context("the SMTP task failed")??;
        eprintln!("sent \"{subject}\" to {to} recipients");
        let webhook = std::env::var(WEBHOOK_ENV)
            .ok()
            .or_else(|| cfg.webhook.clone());
        if let Some(url) = webhook {
            let body = deliver::slack_payload(&r);
            tokio::task::spawn_blocking(move || deliver::post_webhook(&url, &body))
                .await
                .context("the webhook task failed")??;
            eprintln!("posted the summary to the webhook");
        }
        if a.out.is_none() {
            return Ok(ExitCode::SUCCESS);
        }
    }
    emit(&a.out, &text)?;
    Ok(ExitCode::SUCCESS)
}

#[derive(Args, Debug)]
pub struct AgendaArgs {
    /// weekly (covers one week) or marsale (the joint meeting, covers two weeks).
    #[arg(long, default_value = "weekly")]
    meeting: String,
    /// The last ISO week covered, e.g. 2026-W48; default: the last complete week before --as-of.
    #[arg(long)]
    week: Option<String>,
    /// Write to this file instead of stdout.
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    as_of: AsOf,
}

/// `tandem agenda`.
pub async fn agenda(ctx: &Ctx, a: AgendaArgs) -> Result<ExitCode> {
    let style = style(ctx.format)?;
    let meeting = Meeting::parse(&a.meeting)?;
    let pb = ctx.playbook()?;
    let as_of = a.as_of.get(&pb)?;
    let store = ctx.store().await?;
    let inputs = tandem_report::load(&store).await?;
    let ag = tandem_report::agenda(&pb, &inputs, meeting, week(&a.week, &pb)?, as_of)?;
    let text = match style {
        Some(s) => render::agenda(&ag, s)?,
        None => serde_json::to_string_pretty(&ag)? + "\n",
    };
    emit(&a.out, &text)?;
    Ok(ExitCode::SUCCESS)
}

#[derive(Subcommand, Debug)]
pub enum DecisionCmd {
    /// Record a decision (or, with --action, an action item).
    Add {
        /// What was decided or must be done.
        text: String,
        /// Who owns it.
        #[arg(long)]
        owner: Option<String>,
        /// Due date (company timezone), e.g. 2026-12-04.
        #[arg(long)]
        due: Option<String>,
        /// An action item rather than a decision.
        #[arg(long)]
        action: bool,
        /// The meeting: weekly or marsale.
        #[arg(long, default_value = "weekly")]
        meeting: String,
        /// When it was taken (default: now).
        #[arg(long)]
        at: Option<String>,
    },
    /// List decisions and action items (open ones; --all for done ones too).
    List {
        #[arg(long)]
        all: bool,
    },
    /// Mark a decision or action item done.
    Done {
        /// Its id (as listed), with or without `#`.
        id: String,
        /// When (default: now).
        #[arg(long)]
        at: Option<String>,
    },
}

fn at(pb: &tandem_core::playbook::Playbook, s: &Option<String>) -> Result<Timestamp> {
    match s {
        Some(s) => Ok(Timestamp::parse_in(s, &pb.company.timezone)?),
        None => Ok(now()),
    }
}

/// `tandem decision …`.
pub async fn decision(ctx: &Ctx, cmd: DecisionCmd) -> Result<ExitCode> {
    let pb = ctx.playbook()?;
    let store = ctx.store().await?;
    let mut c = store.conn().await?;
    match cmd {
        DecisionCmd::Add {
            text,
            owner,
            due,
            action,
            meeting,
            at: when,
        } => {
            if text.trim().is_empty() {
                bail!("text: must not be empty");
            }
            let meeting = Meeting::parse(&meeting)?;
            let due_at = due
                .as_deref()
                .map(|d| Timestamp::parse_in(d, &pb.company.timezone))
                .transpose()
                .context("--due")?;
            let d = weekly::add_decision(
                &mut c,
                &NewDecision {
                    text: text.trim().to_string(),
                    owner,
                    due_at,
                    action,
                    meeting: meeting.as_str().to_string(),
                },
                at(&pb, &when)?,
            )
            .await?;
            eprintln!(
                "recorded {} #{}",
                if d.action { "action item" } else { "decision" },
                d.id
            );
        }
        DecisionCmd::List { all } => {
            let mut t = Table::new(&[
                "id", "kind", "text", "owner", "due", "meeting", "recorded", "done",
            ])
            .titled(if all {
                "decisions and action items"
            } else {
                "open decisions and action items"
            });
            for d in weekly::decisions(&mut c).await? {
                if !all && d.done_at.is_some() {
                    continue;
                }
                t.row(vec![
                    d.id.to_string(),
                    if d.action { "action" } else { "decision" }.into(),
                    d.text.clone(),
                    d.owner.clone().unwrap_or_else(|| "-".into()),
                    d.due_at
                        .map(|t| local(&pb, t))
                        .unwrap_or_else(|| "-".into()),
                    d.meeting.clone(),
                    local(&pb, d.created_at),
                    d.done_at
                        .map(|t| local(&pb, t))
                        .unwrap_or_else(|| "-".into()),
                ]);
            }
            ctx.print(&mut t)?;
        }
        DecisionCmd::Done { id, at: when } => {
            let n: i64 = id
                .trim_start_matches('#')
                .parse()
                .with_context(|| format!("id: `{id}` is not a decision id such as 3 or #3"))?;
            let d = weekly::complete_decision(&mut c, n, at(&pb, &when)?).await?;
            eprintln!("#{} done: {}", d.id, d.text);
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Subcommand, Debug)]
pub enum ContentCmd {
    /// Add (or update) a content asset by its id.
    Add {
        /// A stable id, e.g. case-study-fintech.
        id: String,
        #[arg(long)]
        title: String,
        #[arg(long)]
        url: Option<String>,
        /// case_study, deck, one_pager, video, …
        #[arg(long)]
        kind: Option<String>,
        /// The persona it serves (a playbook persona id).
        #[arg(long)]
        persona: Option<String>,
        /// The lifecycle stage it serves (a playbook stage id).
        #[arg(long)]
        stage: Option<String>,
    },
    /// List assets with how often sales used them.
    List,
    /// Log that a seller sent an asset (to a person).
    Use {
        /// The asset id (or #ID).
        asset: String,
        /// The person it was sent to (external id, email or #ID).
        #[arg(long)]
        person: Option<String>,
        /// Who sent it.
        #[arg(long)]
        by: String,
        /// When (default: now).
        #[arg(long)]
        at: Option<String>,
    },
}

/// `tandem content …`.
pub async fn content(ctx: &Ctx, cmd: ContentCmd) -> Result<ExitCode> {
    let pb = ctx.playbook()?;
    let store = ctx.store().await?;
    let mut c = store.conn().await?;
    match cmd {
        ContentCmd::Add {
            id,
            title,
            url,
            kind,
            persona,
            stage,
        } => {
            if id.trim().is_empty() || id.starts_with('#') {
                bail!("id: must be a non-empty name not starting with #");
            }
            if title.trim().is_empty() {
                bail!("--title: must not be empty");
            }
            if let Some(s) = &stage {
                if pb.stage(s).is_none() {
                    bail!("--stage: the playbook has no stage `{s}`");
                }
            }
            if let Some(p) = &persona {
                if !pb.personas.iter().any(|m| &m.id == p) {
                    bail!("--persona: the playbook has no persona `{p}`");
                }
            }
            let (a, what) = weekly::upsert_asset(
                &mut c,
                &ContentAsset {
                    id: 0,
                    external_id: id.trim().to_string(),
                    title: title.trim().to_string(),
                    url,
                    kind,
                    persona,
                    stage,
                    created_at: now(),
                },
            )
            .await?;
            eprintln!("{what:?} asset {} (#{})", a.external_id, a.id);
        }
        ContentCmd::List => {
            let uses = weekly::content_uses(&mut c).await?;
            let mut t = Table::new(&[
                "asset",
                "title",
                "kind",
                "persona",
                "stage",
                "url",
                "uses",
                "last_used",
            ])
            .titled("content assets and how often sales sent them");
            for a in weekly::assets(&mut c).await? {
                let mine: Vec<_> = uses.iter().filter(|u| u.asset_id == a.id).collect();
                t.row(vec![
                    a.external_id.clone(),
                    a.title.clone(),
                    a.kind.clone().unwrap_or_else(|| "-".into()),
                    a.persona.clone().unwrap_or_else(|| "-".into()),
                    a.stage.clone().unwrap_or_else(|| "-".into()),
                    a.url.clone().unwrap_or_else(|| "-".into()),
                    mine.len().to_string(),
                    mine.last()
                        .map(|u| local(&pb, u.at))
                        .unwrap_or_else(|| "-".into()),
                ]);
            }
            ctx.print(&mut t)?;
        }
        ContentCmd::Use {
            asset,
            person,
            by,
            at: when,
        } => {
            if by.trim().is_empty() {
                bail!("--by: must name who sent it");
            }
            let a = weekly::find_asset(&mut c, &asset).await?;
            let person_id = match &person {
                Some(p) => Some(repo::find_person(&mut c, p).await?.id),
                None => None,
            };
            weekly::record_use(&mut c, a.id, person_id, by.trim(), at(&pb, &when)?).await?;
            eprintln!("logged a use of {}", a.external_id);
        }
    }
    Ok(ExitCode::SUCCESS)
}
