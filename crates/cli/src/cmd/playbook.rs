//! `tandem init` and `tandem check`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use tandem_core::playbook::{Playbook, Severity, STARTER};

use crate::ctx::Ctx;

/// Writes the starter playbook.
pub fn init(ctx: &Ctx, file: Option<PathBuf>, force: bool) -> Result<ExitCode> {
    let path = file.unwrap_or_else(|| ctx.playbook_path.clone());
    if path.exists() && !force {
        bail!(
            "{} already exists; pass --force to overwrite it",
            path.display()
        );
    }
    std::fs::write(&path, STARTER).with_context(|| format!("cannot write {}", path.display()))?;
    println!("wrote {}: edit it, then run `tandem check`", path.display());
    Ok(ExitCode::SUCCESS)
}

/// Checks a playbook and prints every problem; exit code 1 on any error.
pub fn check(ctx: &Ctx, file: Option<PathBuf>) -> Result<ExitCode> {
    let path = file.unwrap_or_else(|| ctx.playbook_path.clone());
    let source = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let loaded = Playbook::load(&source);
    let name = path.display().to_string();
    for d in &loaded.diagnostics {
        println!("{}", d.render(&name, &source));
    }
    let errors = loaded
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    let warnings = loaded.diagnostics.len() - errors;
    match &loaded.playbook {
        Some(pb) if errors == 0 => {
            eprintln!(
                "{name}: ok ({} stages, {} reasons, {} goals; {warnings} warning(s))",
                pb.stages.len(),
                pb.reasons.len(),
                pb.goals.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        _ => {
            eprintln!("{name}: {errors} error(s), {warnings} warning(s)");
            Ok(ExitCode::FAILURE)
        }
    }
}
