//! `tandem export`, `tandem backup`, `tandem restore`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Result};
use clap::Args;
use tandem_store::{backup, export};

use crate::ctx::Ctx;
use crate::output::{Format, Table};

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Directory to write `<table>.<csv|jsonl|parquet>` into (created if missing).
    #[arg(long)]
    out: PathBuf,
    /// Only these tables (comma-separated); default every table.
    #[arg(long, value_delimiter = ',')]
    tables: Vec<String>,
}

#[derive(Args, Debug)]
pub struct BackupArgs {
    /// The archive file to write (replaced atomically when complete).
    file: PathBuf,
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// A tandem archive written by `tandem backup`.
    file: PathBuf,
    /// Replace the contents of a database that is not empty.
    #[arg(long)]
    force: bool,
}

/// Progress on stderr when it is a terminal: `table: rows`.
fn progress() -> impl FnMut(&str, u64) {
    let tty = std::io::stderr().is_terminal();
    move |table: &str, rows: u64| {
        if tty {
            eprint!("\r\x1b[2K{table}: {rows} rows");
        }
    }
}

fn end_progress() {
    if std::io::stderr().is_terminal() {
        eprint!("\r\x1b[2K");
    }
}

/// `tandem export --format csv|jsonl|parquet --out DIR [--tables a,b]`.
pub async fn export_cmd(ctx: &Ctx, a: ExportArgs) -> Result<ExitCode> {
    let format = match ctx.format {
        // `--format` defaults to `table` for every command; CSV is the
        // export's natural default.
        Format::Table | Format::Csv => export::Format::Csv,
        Format::Jsonl => export::Format::Jsonl,
        Format::Parquet => export::Format::Parquet,
        Format::Json | Format::Md | Format::Html => {
            bail!("tandem export writes --format csv, jsonl or parquet")
        }
    };
    let store = ctx.store().await?;
    let started = Instant::now();
    let mut p = progress();
    let done = export::export_dir(&store, format, &a.out, &a.tables, &mut p).await;
    end_progress();
    let done = done?;
    let secs = started.elapsed().as_secs_f64();
    let mut t = Table::new(&["table", "rows", "file"]);
    let total: u64 = done.iter().map(|e| e.rows).sum();
    for e in &done {
        t.rows.push(vec![
            e.table.clone(),
            e.rows.to_string(),
            e.path.display().to_string(),
        ]);
    }
    t.title = Some(format!(
        "Exported {} tables, {total} rows in {secs:.1} s (one consistent snapshot)",
        done.len()
    ));
    print_summary(ctx, &mut t)?;
    Ok(ExitCode::SUCCESS)
}

/// Summaries print as a table, or CSV/JSON when asked.
fn print_summary(ctx: &Ctx, t: &mut Table) -> Result<()> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let f = match ctx.format {
        Format::Json | Format::Csv | Format::Jsonl => ctx.format,
        _ => Format::Table,
    };
    t.write(f, &mut out)?;
    Ok(())
}

/// `tandem backup FILE`.
pub async fn backup_cmd(ctx: &Ctx, a: BackupArgs) -> Result<ExitCode> {
    let store = ctx.store().await?;
    let started = Instant::now();
    let mut p = progress();
    let done = backup::backup(&store, &a.file, &mut p).await;
    end_progress();
    let done = done?;
    summary_table(
        ctx,
        &done,
        format!(
            "Backed up {} tables, {} rows to {} in {:.1} s (schema migrations {:?})",
            done.tables.len(),
            done.rows(),
            a.file.display(),
            started.elapsed().as_secs_f64(),
            done.migrations
        ),
    )
}

/// `tandem restore FILE [--force]`.
pub async fn restore_cmd(ctx: &Ctx, a: RestoreArgs) -> Result<ExitCode> {
    let store = ctx.store().await?;
    let started = Instant::now();
    let mut p = progress();
    let done = backup::restore(&store, &a.file, a.force, &mut p).await;
    end_progress();
    let done = done?;
    summary_table(
        ctx,
        &done,
        format!(
            "Restored {} tables, {} rows from {} into {} in {:.1} s",
            done.tables.len(),
            done.rows(),
            a.file.display(),
            ctx.database_url(),
            started.elapsed().as_secs_f64()
        ),
    )
}

fn summary_table(ctx: &Ctx, done: &backup::Summary, title: String) -> Result<ExitCode> {
    let mut t = Table::new(&["table", "rows"]);
    for (name, rows) in &done.tables {
        t.rows.push(vec![name.clone(), rows.to_string()]);
    }
    t.title = Some(title);
    print_summary(ctx, &mut t)?;
    Ok(ExitCode::SUCCESS)
}
