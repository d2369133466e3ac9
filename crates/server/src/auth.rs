//! Bearer-token authentication and the role rules.
//!
//! The token from `Authorization: Bearer tdm_…` is hashed and looked up by
//! its hash (see `tandem_store::tokens`); unknown and revoked tokens are the
//! same 401. What a role may do is [`allows`], checked by each handler with
//! [`Caller::require`].

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use tandem_store::tokens::{self, ApiToken, Role};

use crate::error::ApiError;
use crate::AppState;

/// What a request wants to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Read anything (people, metrics).
    Read,
    /// Move leads: accept, reject, recycle, stage moves; log activities and deals.
    MoveLeads,
    /// Edit campaigns, touches and content.
    EditCampaigns,
    /// Edit accounts (both teams work target accounts).
    EditAccounts,
    /// Write and move feedback items (both teams).
    Feedback,
    /// Edit the target-account list.
    EditTargets,
    /// Record the joint meeting's decisions and action items and mark them
    /// done (both teams).
    Decide,
    /// Everything else: playbook, tokens.
    Administer,
}

impl Action {
    fn describe(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::MoveLeads => "move leads",
            Action::EditCampaigns => "edit campaigns or touches",
            Action::EditAccounts => "edit accounts",
            Action::Feedback => "write feedback",
            Action::EditTargets => "edit the target-account list",
            Action::Decide => "record decisions and action items",
            Action::Administer => "administer tandem",
        }
    }
}

/// The role rules: viewer reads; sales also moves leads; marketing also
/// edits campaigns and touches; both edit accounts, write feedback and
/// record the meeting's decisions; admin does everything.
pub fn allows(role: Role, action: Action) -> bool {
    let both = matches!(
        action,
        Action::Read | Action::EditAccounts | Action::Feedback | Action::Decide
    );
    match role {
        Role::Admin => true,
        Role::Sales => both || action == Action::MoveLeads,
        Role::Marketing => both || matches!(action, Action::EditCampaigns | Action::EditTargets),
        Role::Viewer => action == Action::Read,
    }
}

/// The authenticated caller of a request.
#[derive(Clone, Debug)]
pub struct Caller(pub ApiToken);

impl Caller {
    /// Fails with 403 unless the caller's role allows `action`.
    pub fn require(&self, action: Action) -> Result<(), ApiError> {
        if allows(self.0.role, action) {
            Ok(())
        } else {
            Err(ApiError::Forbidden {
                role: self.0.role.to_string(),
                action: action.describe(),
            })
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(ApiError::Unauthorized)?;
        let mut c = state.store.conn().await?;
        let found = tokens::find(&mut c, token).await?;
        let t = found.ok_or(ApiError::Unauthorized)?;
        tracing::Span::current().record("auth.token", t.name.as_str());
        Ok(Caller(t))
    }
}
