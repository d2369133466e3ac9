//! The stored history the pages read: the app's warm history
//! ([`crate::warm`]), shared with the API's metric endpoints. A request
//! reads the store's marks and applies only the rows new or updated since,
//! so a page never waits for the whole history to be read again.

use axum::http::StatusCode;

use super::WebError;
use crate::warm::WarmError;

/// The history the pages read from (the app's [`crate::warm::Warm`]).
pub type SnapshotCache = crate::warm::Warm;

/// What a page computes from, read-locked while it renders.
pub type View = crate::warm::View;

impl From<WarmError> for WebError {
    fn from(e: WarmError) -> Self {
        match e {
            WarmError::Store(e) => e.into(),
            WarmError::Task(m) => WebError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("reading the history failed: {m}"),
            ),
        }
    }
}
