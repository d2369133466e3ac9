//! `tandem feedback add|list|resolve|comment`: feedback both ways between
//! the teams, read by the weekly report and the agenda.

use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use tandem_core::Timestamp;
use tandem_store::feedback::{self, Filter, Kind, Links, NewItem, Status, Team};

use crate::cmd::lifecycle::now;
use crate::cmd::numbers::local;
use crate::ctx::Ctx;
use crate::output::Table;

#[derive(Subcommand, Debug)]
pub enum FeedbackCmd {
    /// Log a success, obstacle, lead_quality note, content_request or idea.
    Add {
        /// success, obstacle, lead_quality, content_request or idea.
        kind: String,
        /// One line saying what it is.
        title: String,
        /// Who writes it.
        #[arg(long, env = "TANDEM_ACTOR")]
        author: String,
        /// marketing or sales.
        #[arg(long)]
        team: String,
        /// Longer text.
        #[arg(long, default_value = "")]
        body: String,
        /// External id of the person it is about.
        #[arg(long)]
        person: Option<String>,
        /// External id of the account it is about.
        #[arg(long)]
        account: Option<String>,
        /// External id of the deal it is about.
        #[arg(long)]
        deal: Option<String>,
        /// External id of the campaign it is about.
        #[arg(long)]
        campaign: Option<String>,
        /// When (default: now).
        #[arg(long)]
        at: Option<String>,
    },
    /// List items, oldest first (open and in progress unless --all).
    List {
        #[arg(long)]
        kind: Option<String>,
        #[arg(long)]
        team: Option<String>,
        /// Include done and declined items.
        #[arg(long)]
        all: bool,
    },
    /// Set an item's status: in_progress, done or declined (or open again).
    Resolve {
        /// Item id, with or without `#`.
        id: String,
        #[arg(long, default_value = "done")]
        status: String,
        /// When (default: now).
        #[arg(long)]
        at: Option<String>,
    },
    /// Comment on an item.
    Comment {
        /// Item id, with or without `#`.
        id: String,
        /// The comment.
        text: String,
        #[arg(long, env = "TANDEM_ACTOR")]
        author: String,
        /// When (default: now).
        #[arg(long)]
        at: Option<String>,
    },
}

fn kind(s: &str) -> Result<Kind> {
    Kind::parse(s).with_context(|| format!("kind: unknown `{s}`; use {}", Kind::names()))
}

fn team(s: &str) -> Result<Team> {
    Team::parse(s).with_context(|| format!("team: unknown `{s}`; use {}", Team::names()))
}

fn id(s: &str) -> Result<i64> {
    s.trim_start_matches('#')
        .parse()
        .with_context(|| format!("id: `{s}` is not an item id such as 3 or #3"))
}

/// `tandem feedback …`.
pub async fn feedback_cmd(ctx: &Ctx, cmd: FeedbackCmd) -> Result<ExitCode> {
    let pb = ctx.playbook()?;
    let when = |s: &Option<String>| -> Result<Timestamp> {
        match s {
            Some(s) => Ok(Timestamp::parse_in(s, &pb.company.timezone)?),
            None => Ok(now()),
        }
    };
    let store = ctx.store().await?;
    let mut c = store.conn().await?;
    match cmd {
        FeedbackCmd::Add {
            kind: k,
            title,
            author,
            team: tm,
            body,
            person,
            account,
            deal,
            campaign,
            at,
        } => {
            if title.trim().is_empty() {
                bail!("title: must not be empty");
            }
            if author.trim().is_empty() {
                bail!("--author: must not be empty");
            }
            let item = feedback::create(
                &mut c,
                &NewItem {
                    kind: kind(&k)?,
                    title: title.trim().to_string(),
                    body,
                    author: author.trim().to_string(),
                    team: team(&tm)?,
                    links: Links {
                        person,
                        account,
                        deal,
                        campaign,
                    },
                },
                when(&at)?,
            )
            .await?;
            eprintln!("logged {} #{}", item.kind, item.id);
        }
        FeedbackCmd::List {
            kind: k,
            team: tm,
            all,
        } => {
            let filter = Filter {
                kind: k.as_deref().map(kind).transpose()?,
                team: tm.as_deref().map(team).transpose()?,
                ..Filter::default()
            };
            let mut t = Table::new(&[
                "id", "kind", "team", "author", "status", "title", "about", "comments", "created",
            ])
            .titled(if all {
                "feedback, oldest first"
            } else {
                "open feedback, oldest first"
            });
            let mut after = 0;
            loop {
                let page = feedback::list(&mut c, &filter, after, 500).await?;
                let Some(last) = page.last() else { break };
                after = last.id;
                for i in &page {
                    if !all && matches!(i.status, Status::Done | Status::Declined) {
                        continue;
                    }
                    let l = &i.links;
                    let about = [&l.person, &l.account, &l.deal, &l.campaign]
                        .into_iter()
                        .flatten()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ");
                    t.row(vec![
                        i.id.to_string(),
                        i.kind.to_string(),
                        i.team.to_string(),
                        i.author.clone(),
                        i.status.to_string(),
                        i.title.clone(),
                        if about.is_empty() { "-".into() } else { about },
                        feedback::comments(&mut c, i.id).await?.len().to_string(),
                        local(&pb, i.created_at),
                    ]);
                }
                if page.len() < 500 {
                    break;
                }
            }
            ctx.print(&mut t)?;
        }
        FeedbackCmd::Resolve { id: n, status, at } => {
            let s = Status::parse(&status).with_context(|| {
                format!("--status: unknown `{status}`; use {}", Status::names())
            })?;
            let item = feedback::set_status(&mut c, id(&n)?, s, when(&at)?).await?;
            eprintln!("#{} is {}", item.id, item.status);
        }
        FeedbackCmd::Comment {
            id: n,
            text,
            author,
            at,
        } => {
            if text.trim().is_empty() {
                bail!("text: must not be empty");
            }
            let cm = feedback::add_comment(&mut c, id(&n)?, author.trim(), text.trim(), when(&at)?)
                .await?;
            eprintln!("commented on #{}", cm.item_id);
        }
    }
    Ok(ExitCode::SUCCESS)
}
