//! Feedback items as the report and agenda read them.

use serde::Serialize;
use tandem_core::Timestamp;

/// One feedback item (success, obstacle, lead_quality, content_request,
/// idea) as the report shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FeedbackNote {
    pub id: i64,
    /// `success`, `obstacle`, `lead_quality`, `content_request` or `idea`.
    pub kind: String,
    pub title: String,
    pub author: String,
    /// `marketing`, `sales` or `shared`.
    pub team: String,
    /// `open`, `in_progress`, `done` or `declined`.
    pub status: String,
    pub created_at: Timestamp,
    /// `created_at` as a local date (set by the report).
    pub created: String,
    /// What it is about: the external id of a person, account, deal or campaign.
    pub about: Option<String>,
    /// How many comments it has.
    pub comments: i64,
}

impl FeedbackNote {
    /// Still to be handled (open or in progress).
    pub fn is_open(&self) -> bool {
        self.status == "open" || self.status == "in_progress"
    }
}

/// Feedback items from the store.
pub(crate) async fn load(
    _c: &mut tandem_store::AnyConnection,
) -> Result<Vec<FeedbackNote>, tandem_store::StoreError> {
    Ok(Vec::new())
}
