//! tandem-report: the weekly loop (DESIGN §7).
//!
//! [`gather`] reads the store and computes the weekly report with the same
//! core functions the CLI's metric commands call, so the report's numbers
//! are the CLI's numbers; [`agenda()`] builds the joint meeting's agenda.
//! Both are plain serialisable structs. [`render`] turns them into Markdown
//! and self-contained HTML (inline CSS, inline SVG charts) from embedded
//! minijinja templates; [`deliver`] e-mails the report over SMTP and posts a
//! short summary to a chat webhook; [`schedule::next_send_after`] says when
//! the next scheduled report is due and [`scheduled::send_due_report`]
//! sends it once per week (the server's weekly task).

pub mod agenda;
pub mod deliver;
mod feedback;
pub mod render;
pub mod report;
pub mod schedule;
pub mod scheduled;
mod week;

pub use agenda::{agenda, agenda_beside, Agenda, Meeting};
pub use feedback::FeedbackNote;
pub use report::{build, gather, load, load_with, Inputs, WeeklyReport};
pub use week::Week;

use tandem_core::metrics::MetricsError;
use tandem_core::sla::SlaError;
use tandem_store::StoreError;

/// What can go wrong building, rendering or sending a report.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A parameter given by the user is wrong (field, reason).
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    /// Reading the store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A metric could not be computed.
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    /// The SLA could not be computed.
    #[error(transparent)]
    Sla(#[from] SlaError),
    /// A template failed to render.
    #[error("cannot render {template}: {source}")]
    Render {
        template: &'static str,
        #[source]
        source: minijinja::Error,
    },
    /// Delivery is not configured or failed.
    #[error("cannot send the report: {0}")]
    Delivery(String),
}

impl ReportError {
    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        ReportError::Invalid {
            field,
            reason: reason.into(),
        }
    }
}
