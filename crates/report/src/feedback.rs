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

/// Every feedback item in the store (`tandem_store::feedback`), by id, with
/// its comment count. Status is the stored (current) one: the store keeps no
/// status history, so only creation is filtered by `as_of`.
pub(crate) async fn load(
    c: &mut tandem_store::AnyConnection,
) -> Result<Vec<FeedbackNote>, tandem_store::StoreError> {
    use tandem_store::feedback::{self, Filter};
    const PAGE: i64 = 1_000;
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let page = feedback::list(&mut *c, &Filter::default(), after, PAGE).await?;
        let Some(last) = page.last() else {
            break;
        };
        after = last.id;
        let full = page.len() as i64 == PAGE;
        for item in page {
            let comments = feedback::comments(&mut *c, item.id).await?.len() as i64;
            let l = &item.links;
            out.push(FeedbackNote {
                id: item.id,
                kind: item.kind.as_str().to_string(),
                title: item.title,
                author: item.author,
                team: item.team.as_str().to_string(),
                status: item.status.as_str().to_string(),
                created_at: item.created_at,
                created: String::new(),
                about: l
                    .person
                    .clone()
                    .or_else(|| l.deal.clone())
                    .or_else(|| l.account.clone())
                    .or_else(|| l.campaign.clone()),
                comments,
            });
        }
        if !full {
            break;
        }
    }
    Ok(out)
}
