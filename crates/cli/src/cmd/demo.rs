//! `tandem demo`: fill an empty database with a synthetic company.

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use tandem_core::playbook::STARTER;
use tandem_core::time::DAY_MS;
use tandem_core::Timestamp;
use tandem_ingest::demo::{self, DemoError, DemoOptions, Scale};

use crate::cmd::lifecycle::now;
use crate::ctx::{load_playbook, Ctx};
use crate::output::Table;

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Random seed: the same seed, scale and anchor give the same data.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// How much data: small (2,000 people), medium (100,000) or large (1,200,000; over 10M touches).
    #[arg(long, default_value = "small")]
    scale: String,
    /// The end of the generated history (YYYY-MM-DD or RFC 3339, UTC).
    /// Default: Monday 00:00 UTC of the current week, so reports show a
    /// current quarter.
    #[arg(long)]
    anchor: Option<String>,
}

/// Monday 00:00 UTC of the week containing `t`.
fn week_start(t: Timestamp) -> Timestamp {
    let days = t.millis().div_euclid(DAY_MS);
    // 1970-01-01 was a Thursday: (days + 3) mod 7 is days since Monday.
    Timestamp::from_millis((days - (days + 3).rem_euclid(7)) * DAY_MS)
}

/// Writes the starter playbook when the playbook file does not exist yet,
/// so `tandem demo && tandem funnel` works in an empty directory.
fn ensure_playbook(path: &Path) -> Result<bool> {
    if path.exists() {
        return Ok(false);
    }
    std::fs::write(path, STARTER).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(true)
}

/// Generates the demo company and prints what was written.
pub async fn demo(ctx: &Ctx, a: DemoArgs) -> Result<ExitCode> {
    let Some(scale) = Scale::parse(&a.scale) else {
        bail!(
            "unknown scale `{}`; expected small, medium or large",
            a.scale
        );
    };
    let anchor = match &a.anchor {
        Some(s) => Timestamp::parse(s)?,
        None => week_start(now()),
    };
    if ensure_playbook(&ctx.playbook_path)? {
        eprintln!(
            "wrote the starter playbook to {}",
            ctx.playbook_path.display()
        );
    }
    let pb = load_playbook(&ctx.playbook_path)?;
    let store = ctx.store().await?;
    let started = Instant::now();
    let opts = DemoOptions {
        seed: a.seed,
        scale,
        anchor,
        people: None,
    };
    let summary = match demo::run(&store, &pb, &opts).await {
        Ok(s) => s,
        Err(DemoError::NotEmpty(n)) => {
            let url = ctx.database_url();
            // For an SQLite file, name the file the user would delete.
            let name = match url
                .strip_prefix("sqlite://")
                .or_else(|| url.strip_prefix("sqlite:"))
            {
                Some(rest) => rest.split('?').next().unwrap_or(rest).to_string(),
                None => url.clone(),
            };
            bail!(
                "the database {name} already holds {n} people; the demo only fills an empty \
                 database. Pick another one with --database-url FILE, or delete {name} first"
            )
        }
        Err(e) => return Err(e.into()),
    };
    let secs = started.elapsed().as_secs_f64();

    let mut rows = Table::new(&["table", "rows"]).titled(format!(
        "demo company (seed {}, {}, history to {anchor})",
        a.seed,
        a.scale.to_ascii_lowercase()
    ));
    for (t, n) in &summary.rows {
        rows.row(vec![t.to_string(), n.to_string()]);
    }
    ctx.print(&mut rows)?;
    println!();
    let mut stages = Table::new(&["stage", "entries", "now"])
        .titled("stages (entries over all cycles; people there now)");
    for (s, entries, current) in &summary.stages {
        stages.row(vec![s.clone(), entries.to_string(), current.to_string()]);
    }
    ctx.print(&mut stages)?;
    store.close().await;
    eprintln!("written in {secs:.1} s");
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn week_start_is_monday_midnight_utc() {
        // Wednesday 2026-11-25 20:00 UTC → Monday 2026-11-23 00:00 UTC.
        let wed = Timestamp::parse("2026-11-25T20:00:00Z").unwrap();
        assert_eq!(week_start(wed), Timestamp::parse("2026-11-23").unwrap());
        let mon = Timestamp::parse("2026-11-23").unwrap();
        assert_eq!(week_start(mon), mon);
        let sun = Timestamp::parse("2026-11-29T23:59:00Z").unwrap();
        assert_eq!(week_start(sun), mon);
    }
}
