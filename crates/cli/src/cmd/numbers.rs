//! What the metric commands share: loading history, windows, grouping.

use anyhow::Result;
use clap::Args;
use tandem_core::metrics::Window;
use tandem_core::playbook::Playbook;
use tandem_core::Timestamp;
use tandem_store::query;
use tandem_store::repo::Snapshot;

use crate::cmd::lifecycle::now;
use crate::ctx::Ctx;

/// `--as-of`, `--from`, `--to`: when the numbers are read and for which period.
#[derive(Args, Debug, Clone)]
pub struct Period {
    /// Read history as of this instant (default: now). Same data and as-of, same output.
    #[arg(long)]
    pub as_of: Option<String>,
    /// Start of the period (inclusive); dates are midnight in the company timezone.
    #[arg(long)]
    pub from: Option<String>,
    /// End of the period (exclusive; default: as-of).
    #[arg(long)]
    pub to: Option<String>,
}

impl Period {
    /// The as-of instant.
    pub fn as_of(&self, pb: &Playbook) -> Result<Timestamp> {
        Ok(query::as_of(pb, self.as_of.as_deref(), now())?)
    }

    /// The window `[from, to)`; without `--from`, from the earliest record.
    pub fn window(&self, pb: &Playbook, snap: &Snapshot, as_of: Timestamp) -> Result<Window> {
        Ok(query::window(
            pb,
            snap,
            self.from.as_deref(),
            self.to.as_deref(),
            as_of,
        )?)
    }

    /// [`Period::window`] of a history whose earliest person transition
    /// is `earliest`.
    pub fn window_since(
        &self,
        pb: &Playbook,
        earliest: Option<Timestamp>,
        as_of: Timestamp,
    ) -> Result<Window> {
        Ok(query::window_since(
            pb,
            earliest,
            self.from.as_deref(),
            self.to.as_deref(),
            as_of,
        )?)
    }
}

/// Loads the whole history from the store (what `repo::snapshot` reads,
/// packed into pages on SQLite: see `tandem_store::warm`).
pub async fn load(ctx: &Ctx) -> Result<Snapshot> {
    load_only(ctx, tandem_store::warm::Need::ALL).await
}

/// Loads people, accounts, transitions and deals, plus the tables `need`
/// names (streamed; the others stay empty).
pub async fn load_only(ctx: &Ctx, need: tandem_store::warm::Need) -> Result<Snapshot> {
    let store = ctx.store().await?;
    Ok(tandem_store::warm::snapshot_from(&store, need).await?)
}

/// The history view metrics take.
pub use query::history;

/// Group key of every person for a dimension (see [`tandem_store::query::group_by`]).
pub fn group_by(pb: &Playbook, snap: &Snapshot, by: &str) -> Result<query::GroupKeys> {
    Ok(query::group_by(pb, snap, by)?)
}

/// `--as-of` alone, for commands that read a state rather than a period.
#[derive(Args, Debug, Clone)]
pub struct AsOf {
    /// Read history as of this instant (default: now). Same data and as-of, same output.
    #[arg(long)]
    pub as_of: Option<String>,
}

impl AsOf {
    /// The as-of instant.
    pub fn get(&self, pb: &Playbook) -> Result<Timestamp> {
        match &self.as_of {
            Some(s) => Ok(Timestamp::parse_in(s, &pb.company.timezone)?),
            None => Ok(now()),
        }
    }
}

/// Minor units as a major-unit decimal, e.g. `123456` → `1234.56`.
pub fn major(minor: f64) -> String {
    format!("{:.2}", minor / 100.0)
}

/// An instant in the company timezone, to the minute (`2026-11-23 09:30`).
pub fn local(pb: &Playbook, t: Timestamp) -> String {
    t.to_jiff()
        .to_zoned_datetime(pb.company.timezone.clone())
        .strftime("%Y-%m-%d %H:%M")
        .to_string()
}

/// An optional number with `digits` decimals, `-` for none.
pub fn num(x: Option<f64>, digits: usize) -> String {
    match x {
        Some(v) if v.is_finite() => format!("{v:.digits$}"),
        _ => "-".into(),
    }
}
