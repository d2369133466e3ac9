//! `tandem import <kind> FILE`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use tandem_ingest::mapping::Mapping;
use tandem_ingest::{import_file, ImportOptions, Kind, Preset};

use crate::cmd::lifecycle::now;
use crate::ctx::Ctx;

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// What the file holds: people, accounts, touches, activities, deals or transitions.
    kind: String,
    /// The CSV file.
    file: PathBuf,
    /// Column layout: generic, olist, hubspot, salesforce or marketo.
    #[arg(long, default_value = "generic")]
    preset: String,
    /// Map a column to a field (COLUMN=FIELD; FIELD may be custom.NAME, or - to ignore). Repeatable.
    #[arg(long = "map", value_name = "COLUMN=FIELD")]
    maps: Vec<String>,
    /// Rows per transaction. Each commit waits for the disk, so small
    /// batches make a large import slow.
    #[arg(long, default_value_t = 10_000)]
    batch_size: usize,
    /// Store people one row at a time (the reference for the bulk path; slow).
    #[arg(long, hide = true)]
    row_by_row: bool,
}

/// Runs an import and prints the summary line.
pub async fn import(ctx: &Ctx, a: ImportArgs) -> Result<ExitCode> {
    let Some(kind) = Kind::parse(&a.kind) else {
        bail!(
            "unknown import kind `{}`; expected one of {}",
            a.kind,
            Kind::ALL.map(|k| k.as_str()).join(", ")
        );
    };
    let Some(preset) = Preset::parse(&a.preset) else {
        bail!(
            "unknown preset `{}`; expected generic, olist, hubspot, salesforce or marketo",
            a.preset
        );
    };
    let pb = ctx.playbook()?;
    let store = ctx.store().await?;
    let opts = ImportOptions {
        kind,
        preset,
        maps: Mapping::parse_flags(&a.maps)?,
        batch_size: a.batch_size.max(1),
        now: now(),
        row_by_row: a.row_by_row,
    };
    let size = std::fs::metadata(&a.file).map(|m| m.len()).unwrap_or(0);
    let bar = if std::io::stderr().is_terminal() {
        let bar = ProgressBar::new(size);
        if let Ok(style) = ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {msg}") {
            bar.set_style(style);
        }
        Some(bar)
    } else {
        None
    };
    let started = Instant::now();
    let summary = import_file(&store, &pb, &a.file, &opts, &mut |pos, s| {
        if let Some(b) = &bar {
            b.set_position(pos);
            b.set_message(format!("{} rows", s.read));
        }
    })
    .await?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let secs = started.elapsed().as_secs_f64();
    let rate = if secs > 0.0 {
        summary.read as f64 / secs
    } else {
        0.0
    };
    eprintln!(
        "{}: read {}, imported {}, updated {}, unchanged {}, rejected {}, transitions {} in {:.2} s ({:.0} rows/s)",
        a.file.display(),
        summary.read,
        summary.imported,
        summary.updated,
        summary.unchanged,
        summary.rejected,
        summary.transitions,
        secs,
        rate
    );
    if summary.first_load > 0 {
        eprintln!(
            "first load: {} new people stored in one transaction",
            summary.first_load
        );
    }
    if let Some(r) = &summary.rejects_file {
        eprintln!("rejected rows (with line and reason): {}", r.display());
    }
    Ok(ExitCode::SUCCESS)
}
