//! The playbook requests are answered with, and replacing it at runtime.
//!
//! `GET /api/v1/playbook` returns the TOML source and a summary.
//! `PUT /api/v1/playbook` (admin) takes a whole new TOML file, runs the same
//! checks as `tandem check`, and on success writes it back to the file the
//! server was started with (write to a temporary file in the same directory,
//! then rename, so a crash leaves the old or the new file, never half of
//! one) and switches every later request to it. On failure it answers 422
//! with every diagnostic as `file:line:column: message` and changes nothing.
//! Other `tandem serve` processes on the same database keep their playbook
//! until they restart.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use axum::extract::{Request, State};
use axum::Json;
use serde::Serialize;
use tandem_core::playbook::{Playbook, Severity};

use crate::auth::{Action, Caller};
use crate::error::ApiError;
use crate::openapi::ErrorEnvelope;
use crate::{AppState, BODY_LIMIT};

struct Current {
    playbook: Arc<Playbook>,
    source: Option<String>,
}

/// The current playbook, its TOML source and the file it lives in; cheap to
/// clone, shared by every request.
#[derive(Clone)]
pub struct SharedPlaybook {
    current: Arc<RwLock<Current>>,
    path: Option<PathBuf>,
}

impl fmt::Debug for SharedPlaybook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedPlaybook")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SharedPlaybook {
    /// A playbook read from `source`, kept in `path` (where a replacement is
    /// written; `None` keeps replacements in memory only).
    pub fn new(playbook: Playbook, source: Option<String>, path: Option<PathBuf>) -> Self {
        SharedPlaybook {
            current: Arc::new(RwLock::new(Current {
                playbook: Arc::new(playbook),
                source,
            })),
            path,
        }
    }

    /// The playbook now in force.
    pub fn get(&self) -> Arc<Playbook> {
        // A poisoned lock still holds a whole playbook: swaps are one assignment.
        let c = self.current.read().unwrap_or_else(|e| e.into_inner());
        Arc::clone(&c.playbook)
    }

    fn source(&self) -> Option<String> {
        let c = self.current.read().unwrap_or_else(|e| e.into_inner());
        c.source.clone()
    }

    fn set(&self, playbook: Playbook, source: String) {
        let mut c = self.current.write().unwrap_or_else(|e| e.into_inner());
        *c = Current {
            playbook: Arc::new(playbook),
            source: Some(source),
        };
    }
}

/// A playbook without its source or file (tests, embedders).
impl From<Arc<Playbook>> for SharedPlaybook {
    fn from(pb: Arc<Playbook>) -> Self {
        SharedPlaybook {
            current: Arc::new(RwLock::new(Current {
                playbook: pb,
                source: None,
            })),
            path: None,
        }
    }
}

/// What a playbook defines, by id.
#[derive(Debug, Serialize)]
pub struct Summary {
    company: String,
    currency: String,
    timezone: String,
    stages: Vec<String>,
    reasons: Vec<String>,
    goals: Vec<String>,
}

fn summary(pb: &Playbook) -> Summary {
    Summary {
        company: pb.company.name.clone(),
        currency: pb.company.currency.to_string(),
        timezone: pb.company.timezone_name.clone(),
        stages: pb.stages.iter().map(|s| s.id.clone()).collect(),
        reasons: pb.reasons.iter().map(|r| r.code.clone()).collect(),
        goals: pb.goals.iter().map(|g| g.id.clone()).collect(),
    }
}

/// The playbook in force.
#[derive(Debug, Serialize)]
pub struct PlaybookView {
    /// The TOML text (`null` when the server was given a parsed playbook).
    source: Option<String>,
    /// The file replacements are written to.
    path: Option<String>,
    summary: Summary,
    /// Warnings of the check (after a replacement).
    warnings: Vec<String>,
}

fn view(s: &SharedPlaybook, warnings: Vec<String>) -> PlaybookView {
    PlaybookView {
        source: s.source(),
        path: s.path.as_ref().map(|p| p.display().to_string()),
        summary: summary(&s.get()),
        warnings,
    }
}

/// `GET /api/v1/playbook`: the TOML source and what it defines.
#[utoipa::path(
    get,
    path = "/api/v1/playbook",
    tag = "playbook",
    security(("bearer" = [])),
    responses((status = 200, description = "OK", body = serde_json::Value), (status = 401, description = "No valid token", body = ErrorEnvelope))
)]
#[tracing::instrument(skip_all)]
pub async fn show(
    State(s): State<AppState>,
    caller: Caller,
) -> Result<Json<PlaybookView>, ApiError> {
    caller.require(Action::Read)?;
    Ok(Json(view(&s.playbook, Vec::new())))
}

/// Writes `text` to `path` through a temporary file in the same directory
/// and a rename.
fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// `PUT /api/v1/playbook` (admin): the body is the whole new TOML file.
#[utoipa::path(
    put,
    path = "/api/v1/playbook",
    tag = "playbook",
    security(("bearer" = [])),
    request_body(content = String, content_type = "application/toml", description = "The whole playbook file"),
    responses(
        (status = 200, description = "Checked, saved and in force", body = serde_json::Value),
        (status = 400, description = "Not UTF-8", body = ErrorEnvelope),
        (status = 401, description = "No valid token", body = ErrorEnvelope),
        (status = 403, description = "Not an admin", body = ErrorEnvelope),
        (status = 413, description = "Body too large", body = ErrorEnvelope),
        (status = 422, description = "The check failed; the message lists file:line:column diagnostics", body = ErrorEnvelope)
    )
)]
#[tracing::instrument(skip_all)]
pub async fn replace(
    State(s): State<AppState>,
    caller: Caller,
    req: Request,
) -> Result<Json<PlaybookView>, ApiError> {
    caller.require(Action::Administer)?;
    let bytes = axum::body::to_bytes(req.into_body(), BODY_LIMIT)
        .await
        .map_err(|_| ApiError::TooLarge(BODY_LIMIT))?;
    let source = String::from_utf8(bytes.to_vec()).map_err(|_| {
        ApiError::bad_request("unreadable_body", "the playbook must be UTF-8 TOML", None)
    })?;
    let name = s
        .playbook
        .path
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "playbook.toml".into());
    let loaded = Playbook::load(&source);
    let rendered = |sev: Severity| -> Vec<String> {
        loaded
            .diagnostics
            .iter()
            .filter(|d| d.severity == sev)
            .map(|d| d.render(&name, &source))
            .collect()
    };
    let errors = rendered(Severity::Error);
    let warnings: Vec<String> = loaded
        .diagnostics
        .iter()
        .filter(|d| d.severity != Severity::Error)
        .map(|d| d.render(&name, &source))
        .collect();
    let playbook = match loaded.playbook {
        Some(pb) if errors.is_empty() => pb,
        _ => {
            return Err(ApiError::unprocessable(
                "playbook_invalid",
                format!(
                    "the playbook does not pass `tandem check`:\n{}",
                    errors.join("\n")
                ),
                None,
            ))
        }
    };
    if let Some(path) = &s.playbook.path {
        write_atomically(path, &source).map_err(|e| ApiError::Internal(Box::new(e)))?;
    }
    s.playbook.set(playbook, source);
    tracing::info!(playbook.path = ?s.playbook.path, "playbook replaced");
    Ok(Json(view(&s.playbook, warnings)))
}
