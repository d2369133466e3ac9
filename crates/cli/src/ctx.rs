//! What every command needs: the playbook, the store and the output format.

use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use tandem_core::playbook::Playbook;
use tandem_store::{DatabaseUrl, Store};

use crate::output::{Format, Table};

/// Global options, resolved lazily so `init` and `check` need no database.
pub struct Ctx {
    pub playbook_path: PathBuf,
    database_url: String,
    pub format: Format,
}

impl Ctx {
    pub fn new(playbook_path: PathBuf, database_url: String, format: Format) -> Ctx {
        Ctx {
            playbook_path,
            database_url,
            format,
        }
    }

    /// Runs an async command on a fresh runtime.
    pub fn block_on<T, F: Future<Output = Result<T>>>(&self, f: F) -> Result<T> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        rt.block_on(f)
    }

    /// Loads and checks the playbook; problems are printed and fail the command.
    pub fn playbook(&self) -> Result<Playbook> {
        load_playbook(&self.playbook_path)
    }

    /// The database URL as given (with any password: never print it).
    pub fn database_url_raw(&self) -> &str {
        &self.database_url
    }

    /// The database URL for messages, with any password redacted.
    pub fn database_url(&self) -> String {
        DatabaseUrl::parse(&self.database_url)
            .map(|u| u.to_string())
            .unwrap_or_else(|_| self.database_url.clone())
    }

    /// Opens (and migrates) the database.
    pub async fn store(&self) -> Result<Store> {
        let url = DatabaseUrl::parse(&self.database_url)?;
        Ok(Store::open(&url).await?)
    }

    /// Prints a table in the chosen format to stdout.
    pub fn print(&self, table: &mut Table) -> Result<()> {
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        table.write(self.format, &mut out)?;
        out.flush()?;
        Ok(())
    }
}

/// Reads a playbook file; on errors prints every diagnostic and fails.
pub fn load_playbook(path: &Path) -> Result<Playbook> {
    let source = std::fs::read_to_string(path).with_context(|| {
        format!(
            "cannot read playbook {} (create one with `tandem init`, or pass --playbook)",
            path.display()
        )
    })?;
    let loaded = Playbook::load(&source);
    let name = path.display().to_string();
    for d in &loaded.diagnostics {
        eprintln!("{}", d.render(&name, &source));
    }
    match loaded.playbook {
        Some(pb) => Ok(pb),
        None => bail!("the playbook {name} has errors; fix them and run `tandem check`"),
    }
}
