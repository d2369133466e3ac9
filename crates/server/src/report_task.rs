//! The weekly report task of `tandem serve`: sleeps until the next send
//! instant of the playbook's `[report] send` schedule (default Monday 08:00
//! company time), then calls [`tandem_report::scheduled::send_due_report`],
//! which e-mails the report and posts the chat summary once per week even
//! with several instances on one database (a unique delivery key in
//! `report_sends`, not the `alerts` table the alert evaluator posts from).
//!
//! It also runs once at start, catching up a send missed while no server
//! ran. The playbook is read again at every wake, so a `PUT
//! /api/v1/playbook` that adds or moves the schedule takes effect at the
//! latest after [`MAX_SLEEP`].

use std::future::Future;
use std::time::Duration;

use tandem_core::Timestamp;
use tandem_report::schedule::next_send_after;
use tandem_report::scheduled::{send_due_report, SendOutcome, RETRY_AFTER};
use tandem_store::Store;

use crate::SharedPlaybook;

/// Longest sleep between checks (the schedule may change, clocks jump).
pub const MAX_SLEEP: Duration = Duration::from_secs(3600);

/// How long to sleep after a check at `now`: until the next send instant
/// (or the retry time after a failure), at most [`MAX_SLEEP`].
fn sleep_for(now: Timestamp, next: Option<Timestamp>, failed: bool) -> Duration {
    let mut wait = MAX_SLEEP;
    if let Some(next) = next {
        // A few ms past the instant, so the check sees it as due.
        let ms = (next.millis() - now.millis()).max(0) as u64 + 50;
        wait = wait.min(Duration::from_millis(ms));
    }
    if failed {
        wait = wait.min(RETRY_AFTER);
    }
    wait
}

/// Runs until `shutdown` resolves.
pub async fn run(store: Store, playbook: SharedPlaybook, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        let pb = playbook.get();
        let now = crate::now();
        let failed = match send_due_report(&store, &pb, now).await {
            Ok(SendOutcome::Sent {
                week,
                recipients,
                webhook,
                ..
            }) => {
                tracing::info!(report.week = %week, report.recipients = recipients.len(), report.webhook = ?webhook, "weekly report sent");
                false
            }
            Ok(SendOutcome::NotDue { .. } | SendOutcome::NotConfigured) => false,
            Err(e) => {
                tracing::error!(error.cause = %e, "scheduled weekly report failed; will retry");
                true
            }
        };
        let next = next_send_after(now, &pb).ok();
        let wait = sleep_for(now, next, failed);
        tokio::select! {
            () = &mut shutdown => break,
            () = tokio::time::sleep(wait) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sleeps_until_the_send_or_at_most_an_hour() {
        let now = Timestamp::from_millis(1_000_000);
        let soon = Timestamp::from_millis(1_000_000 + 120_000);
        assert_eq!(
            sleep_for(now, Some(soon), false),
            Duration::from_millis(120_050)
        );
        let far = Timestamp::from_millis(1_000_000 + 7 * 86_400_000);
        assert_eq!(sleep_for(now, Some(far), false), MAX_SLEEP);
        assert_eq!(sleep_for(now, Some(far), true), RETRY_AFTER.min(MAX_SLEEP));
        assert_eq!(sleep_for(now, None, false), MAX_SLEEP);
    }
}
