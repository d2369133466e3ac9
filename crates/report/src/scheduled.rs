//! The scheduled send of `tandem serve`: each week, at the playbook's
//! `[report] send` time, the report of the week just over is e-mailed to
//! the recipient lists and summarised on the chat webhook, once, however
//! many instances share the database.
//!
//! [`send_due_report`] is the whole decision and is what the server's task
//! calls when it wakes: the due send is the latest scheduled instant at or
//! before `now`; its week is the last complete week before that instant;
//! its delivery key (`weekly_report:2026-W47`) is claimed in
//! `tandem_store::report_sends` before anything is computed, so only the
//! claimer gathers and sends. A send missed while no server ran is caught
//! up at the next wake within the same week; a failed send is retried after
//! [`RETRY_AFTER`] up to [`MAX_ATTEMPTS`] attempts.

use std::time::Duration;

use tandem_core::playbook::Playbook;
use tandem_core::Timestamp;
use tandem_store::{report_sends, Store};

use crate::deliver::{self, PASSWORD_ENV, WEBHOOK_ENV};
use crate::schedule::next_send_after;
use crate::{ReportError, Week};

/// How long a claim protects a send in progress (gathering the report and
/// talking to the SMTP server) from other instances.
pub const LEASE: Duration = Duration::from_secs(10 * 60);
/// Wait before a failed send is tried again.
pub const RETRY_AFTER: Duration = Duration::from_secs(15 * 60);
/// Attempts per week before giving up (the error stays in the log row).
pub const MAX_ATTEMPTS: i64 = 5;

/// What [`send_due_report`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SendOutcome {
    /// The playbook has no `[report]` with `[report.smtp]`: nothing to do.
    NotConfigured,
    /// This week's report was already sent, or another instance is sending
    /// it, or a failed send is not due again yet.
    NotDue { week: String },
    /// This call e-mailed the report.
    Sent {
        week: String,
        subject: String,
        recipients: Vec<String>,
        /// `Some(Ok)` posted, `Some(Err(reason))` the post failed (the
        /// e-mail is not repeated for it), `None` no webhook configured.
        webhook: Option<Result<(), String>>,
    },
}

fn add(t: Timestamp, d: Duration) -> Timestamp {
    Timestamp::from_millis(t.millis() + d.as_millis() as i64)
}

/// The latest scheduled send instant at or before `now`.
pub fn last_send_at_or_before(now: Timestamp, pb: &Playbook) -> Result<Timestamp, ReportError> {
    // Eight days back is before the previous send whatever the DST shift.
    let mut at = next_send_after(Timestamp::from_millis(now.millis() - 8 * 86_400_000), pb)?;
    loop {
        let next = next_send_after(at, pb)?;
        if next > now {
            return Ok(at);
        }
        at = next;
    }
}

/// The delivery key of the report of `week`.
pub fn delivery_key(week: &Week) -> String {
    format!("weekly_report:{}", week.label())
}

/// Sends the report due at `now` unless it is already sent (see the module
/// docs). The SMTP password comes from `TANDEM_SMTP_PASSWORD` and the
/// webhook from `TANDEM_REPORT_WEBHOOK` or `[report] webhook`, as for
/// `tandem report --send`. An error is also recorded in the delivery log,
/// with its retry time.
pub async fn send_due_report(
    store: &Store,
    pb: &Playbook,
    now: Timestamp,
) -> Result<SendOutcome, ReportError> {
    let Some(cfg) = pb.report.as_ref().filter(|r| r.smtp.is_some()) else {
        return Ok(SendOutcome::NotConfigured);
    };
    let due = last_send_at_or_before(now, pb)?;
    let week = Week::last_complete(due, &pb.company.timezone)?;
    let key = delivery_key(&week);
    {
        let mut c = store.conn().await?;
        if !report_sends::claim(&mut c, &key, &week.label(), now, add(now, LEASE)).await? {
            return Ok(SendOutcome::NotDue { week: week.label() });
        }
    }
    match deliver_week(store, pb, cfg, week, due).await {
        Ok((email, webhook)) => {
            let note = webhook
                .as_ref()
                .and_then(|w| w.as_ref().err())
                .map(|e| format!("e-mail sent; {e}"));
            let mut c = store.conn().await?;
            report_sends::sent(
                &mut c,
                &key,
                now,
                email.to.len(),
                &email.subject,
                note.as_deref(),
            )
            .await?;
            tracing::info!(report.week = %week.label(), report.recipients = email.to.len(), "scheduled weekly report sent");
            Ok(SendOutcome::Sent {
                week: week.label(),
                subject: email.subject,
                recipients: email.to,
                webhook,
            })
        }
        Err(e) => {
            let mut c = store.conn().await?;
            let attempts = report_sends::get(&mut c, &key)
                .await?
                .map(|s| s.attempts)
                .unwrap_or(MAX_ATTEMPTS);
            let retry = (attempts < MAX_ATTEMPTS).then(|| add(now, RETRY_AFTER));
            report_sends::failed(&mut c, &key, &e.to_string(), retry).await?;
            Err(e)
        }
    }
}

/// Gathers the report of `week` as of the scheduled instant, e-mails it and
/// posts the summary.
async fn deliver_week(
    store: &Store,
    pb: &Playbook,
    cfg: &tandem_core::playbook::ReportConfig,
    week: Week,
    as_of: Timestamp,
) -> Result<(deliver::Email, Option<Result<(), String>>), ReportError> {
    let r = crate::gather(store, pb, Some(week), as_of).await?;
    let email = deliver::compose(&r, cfg)?;
    let smtp = cfg
        .smtp
        .clone()
        .ok_or_else(|| ReportError::Delivery("the playbook has no [report.smtp]".into()))?;
    let password = std::env::var(PASSWORD_ENV).ok();
    let sent = email.clone();
    // lettre's SMTP client blocks: keep it off the async workers.
    tokio::task::spawn_blocking(move || deliver::send(&sent, &smtp, password.as_deref()))
        .await
        .map_err(|e| ReportError::Delivery(format!("the SMTP task failed: {e}")))??;
    let url = std::env::var(WEBHOOK_ENV)
        .ok()
        .or_else(|| cfg.webhook.clone());
    let webhook = match url {
        None => None,
        Some(url) => {
            let body = deliver::slack_payload(&r);
            let posted = tokio::task::spawn_blocking(move || deliver::post_webhook(&url, &body))
                .await
                .map_err(|e| ReportError::Delivery(format!("the webhook task failed: {e}")))
                .and_then(|r| r);
            if let Err(e) = &posted {
                tracing::warn!(error = %e, "weekly report summary not posted");
            }
            Some(posted.map_err(|e| e.to_string()))
        }
    };
    Ok((email, webhook))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use tandem_core::playbook::STARTER;

    #[test]
    fn last_send_is_the_latest_monday_eight_local() {
        let pb = Playbook::load(STARTER).playbook.unwrap();
        let t = |s: &str| Timestamp::parse(s).unwrap();
        // Wednesday 2026-11-25: Monday 2026-11-23 08:00 EST = 13:00 UTC.
        assert_eq!(
            last_send_at_or_before(t("2026-11-25T22:00:00Z"), &pb).unwrap(),
            t("2026-11-23T13:00:00Z")
        );
        // Exactly at a send instant: that one.
        assert_eq!(
            last_send_at_or_before(t("2026-11-23T13:00:00Z"), &pb).unwrap(),
            t("2026-11-23T13:00:00Z")
        );
        // A minute before: the week before, across the DST change (EDT).
        assert_eq!(
            last_send_at_or_before(t("2026-11-02T12:59:00Z"), &pb).unwrap(),
            t("2026-10-26T12:00:00Z")
        );
        let w = Week::last_complete(t("2026-11-23T13:00:00Z"), &pb.company.timezone).unwrap();
        assert_eq!(delivery_key(&w), "weekly_report:2026-W47");
    }
}
