//! `tandem serve` and `tandem token`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use tandem_server::config::{Overrides, ServeConfig};
use tandem_server::AppState;
use tandem_store::tokens::{self, Role};

use crate::cmd::lifecycle::now;
use crate::ctx::Ctx;
use crate::output::Table;

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on [env: TANDEM_BIND] [default: 127.0.0.1:8080].
    #[arg(long)]
    bind: Option<SocketAddr>,
    /// Server configuration (TOML: bind, database_url, playbook, [alerts]).
    /// Precedence: flag > TANDEM_* environment > this file > default.
    #[arg(long)]
    config: Option<PathBuf>,
}

/// The global options when given by flag or environment (not defaulted).
#[derive(Debug, Default)]
pub struct Globals {
    pub playbook: Option<PathBuf>,
    pub database_url: Option<String>,
}

/// `tandem serve`: the HTTP API and the alert evaluator until Ctrl-C or
/// SIGTERM.
pub async fn serve(ctx: &Ctx, a: ServeArgs, globals: Globals) -> Result<ExitCode> {
    let overrides = Overrides {
        bind: a.bind,
        database_url: globals.database_url,
        playbook: globals.playbook,
    };
    let cfg = ServeConfig::load(a.config.as_deref(), |k| std::env::var(k).ok(), overrides)?;
    let ctx = Ctx::new(
        cfg.playbook
            .clone()
            .unwrap_or_else(|| ctx.playbook_path.clone()),
        cfg.database_url
            .clone()
            .unwrap_or_else(|| ctx.database_url_raw().to_string()),
        ctx.format,
    );
    // The file is read again for its text: `PUT /api/v1/playbook` serves it
    // and writes replacements back to it.
    let source = std::fs::read_to_string(&ctx.playbook_path).ok();
    let playbook = tandem_server::SharedPlaybook::new(
        ctx.playbook()?,
        source,
        Some(ctx.playbook_path.clone()),
    );
    let store = ctx.store().await?;
    let listener = tokio::net::TcpListener::bind(cfg.bind)
        .await
        .with_context(|| format!("cannot listen on {}", cfg.bind))?;
    let addr = listener.local_addr()?;
    // Caught from here on: a client that sees the line may stop us at once.
    let shutdown = tandem_server::shutdown_signal();
    tracing::info!(http.addr = %addr, db.url = %ctx.database_url(), config = ?cfg, "serving");
    eprintln!("tandem serving on http://{addr}");
    tandem_server::serve_with_alerts(
        listener,
        AppState {
            store: store.clone(),
            playbook,
        },
        cfg.alerts,
        shutdown,
    )
    .await
    .context("the server failed")?;
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

#[derive(Subcommand, Debug)]
pub enum TokenCmd {
    /// Create a token; it is printed once and stored only as a hash.
    Create {
        /// admin, marketing, sales or viewer.
        #[arg(long)]
        role: Role,
        /// A name to recognise (and revoke) the token by.
        #[arg(long)]
        name: String,
    },
    /// List tokens (never their secrets).
    List,
    /// Revoke the live tokens with this name (or `#ID`).
    Revoke {
        /// Token name, or #id.
        name: String,
    },
}

/// `tandem token …`.
pub async fn token(ctx: &Ctx, cmd: TokenCmd) -> Result<ExitCode> {
    let store = ctx.store().await?;
    let mut c = store.conn().await?;
    match cmd {
        TokenCmd::Create { role, name } => {
            let (t, secret) = tokens::create(&mut c, &name, role, now()).await?;
            eprintln!(
                "created token #{} `{}` ({}); it is shown only now:",
                t.id, t.name, t.role
            );
            println!("{}", secret.expose());
        }
        TokenCmd::List => {
            let mut table = Table::new(&["id", "name", "role", "created_at", "revoked_at"]);
            for t in tokens::list(&mut c).await? {
                table.row(vec![
                    t.id.to_string(),
                    t.name,
                    t.role.to_string(),
                    t.created_at.to_string(),
                    t.revoked_at.map(|r| r.to_string()).unwrap_or_default(),
                ]);
            }
            ctx.print(&mut table)?;
        }
        TokenCmd::Revoke { name } => {
            let n = tokens::revoke(&mut c, &name, now()).await?;
            eprintln!("revoked {n} token(s) named `{name}`");
        }
    }
    Ok(ExitCode::SUCCESS)
}
