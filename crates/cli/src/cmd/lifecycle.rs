//! Moving leads by hand: `stage`, `accept`, `reject`, and `history`.

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use tandem_core::domain::{Subject, Transition};
use tandem_core::Timestamp;
use tandem_store::lifecycle::{self as engine, MoveRequest, Target};
use tandem_store::repo;

use crate::ctx::Ctx;
use crate::output::Table;

/// Who is acting and when.
#[derive(Args, Debug)]
pub struct Who {
    /// Who makes the move (recorded in the history).
    #[arg(long, env = "TANDEM_ACTOR", default_value = "cli")]
    actor: String,
    /// When the move happened (default: now). ISO 8601 or 'YYYY-MM-DD HH:MM:SS' (UTC).
    #[arg(long)]
    at: Option<String>,
    /// A free-text note.
    #[arg(long)]
    note: Option<String>,
}

impl Who {
    fn at(&self) -> Result<Timestamp> {
        match &self.at {
            Some(s) => Ok(Timestamp::parse(s)?),
            None => Ok(now()),
        }
    }
}

/// The current instant.
pub fn now() -> Timestamp {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    Timestamp::from_millis(ms)
}

#[derive(Args, Debug)]
pub struct StageArgs {
    /// Person: external id, or #id.
    person: String,
    /// Target stage id.
    stage: String,
    /// Reason code (required for off-ramps).
    #[arg(long)]
    reason: Option<String>,
    #[command(flatten)]
    who: Who,
}

#[derive(Args, Debug)]
pub struct AcceptArgs {
    /// Person: external id, or #id.
    person: String,
    #[command(flatten)]
    who: Who,
}

#[derive(Args, Debug)]
pub struct RejectArgs {
    /// Person: external id, or #id.
    person: String,
    /// Reason code from the playbook.
    #[arg(long)]
    reason: String,
    /// Send back to nurture (recycle) instead of disqualifying.
    #[arg(long)]
    recycle: bool,
    #[command(flatten)]
    who: Who,
}

#[derive(Args, Debug)]
pub struct HistoryArgs {
    /// Person: external id, or #id.
    person: String,
}

async fn apply(
    ctx: &Ctx,
    person: &str,
    to: Option<&str>,
    reason: Option<&str>,
    who: &Who,
    pick: Pick,
) -> Result<ExitCode> {
    let pb = ctx.playbook()?;
    let store = ctx.store().await?;
    let at = who.at()?;
    let mut tx = store.begin().await?;
    let p = repo::find_person(tx.conn(), person).await?;
    let target = match (to, pick) {
        (Some(t), _) => Target::Stage(t),
        (None, Pick::Accept) => Target::Accept,
        (None, Pick::Reject { recycle }) => Target::Reject { recycle },
    };
    let r = MoveRequest {
        target,
        at,
        actor: &who.actor,
        reason,
        note: who.note.as_deref(),
    };
    let moved = engine::move_person_to(tx.conn(), &pb, p.id, &r)
        .await
        .with_context(|| format!("cannot move {}", p.external_id()))?;
    tx.commit().await?;
    let mut t = history_table(&moved.appended);
    ctx.print(&mut t)?;
    Ok(ExitCode::SUCCESS)
}

#[derive(Clone, Copy)]
enum Pick {
    Accept,
    Reject { recycle: bool },
}

/// `tandem stage`.
pub async fn stage(ctx: &Ctx, a: StageArgs) -> Result<ExitCode> {
    apply(
        ctx,
        &a.person,
        Some(&a.stage),
        a.reason.as_deref(),
        &a.who,
        Pick::Accept,
    )
    .await
}

/// `tandem accept`.
pub async fn accept(ctx: &Ctx, a: AcceptArgs) -> Result<ExitCode> {
    apply(ctx, &a.person, None, None, &a.who, Pick::Accept).await
}

/// `tandem reject`.
pub async fn reject(ctx: &Ctx, a: RejectArgs) -> Result<ExitCode> {
    apply(
        ctx,
        &a.person,
        None,
        Some(&a.reason),
        &a.who,
        Pick::Reject { recycle: a.recycle },
    )
    .await
}

/// `tandem history`.
pub async fn history(ctx: &Ctx, a: HistoryArgs) -> Result<ExitCode> {
    let store = ctx.store().await?;
    let mut c = store.conn().await?;
    let p = repo::find_person(&mut c, &a.person).await?;
    let ts = repo::transitions_of(&mut c, Subject::Person(p.id)).await?;
    let mut t = history_table(&ts).titled(format!("{} (#{})", p.external_id(), p.id));
    ctx.print(&mut t)?;
    Ok(ExitCode::SUCCESS)
}

fn history_table(ts: &[Transition]) -> Table {
    let mut t = Table::new(&[
        "at", "from", "to", "cycle", "actor", "reason", "note", "skipped",
    ]);
    for x in ts {
        t.row(vec![
            x.at.to_string(),
            x.from.unwrap_or_else(|| "-".into()).to_string(),
            x.to.to_string(),
            x.cycle.to_string(),
            x.actor.to_string(),
            x.reason.unwrap_or_default().to_string(),
            x.note.as_deref().unwrap_or_default().to_string(),
            if x.skipped {
                "yes".into()
            } else {
                String::new()
            },
        ]);
    }
    t
}
