//! The scheduled weekly report's delivery log: one row per report week,
//! keyed by a delivery key such as `weekly_report:2026-W47`.
//!
//! Several `tandem serve` instances may wake for the same send at once: the
//! primary key lets only one insert the row ([`claim`]); a failed send may
//! be re-claimed once its retry time has come, and a send whose instance
//! died mid-way once its lease has run out. A sent row is never claimed
//! again, so each week's report goes out once. The table is separate from
//! `alerts` on purpose: the alert evaluator posts every due row there.

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use tandem_core::Timestamp;

use crate::StoreError;

/// Where a week's send stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SendStatus {
    /// Claimed by an instance that is sending it now.
    Sending,
    /// The e-mail was accepted by the SMTP server.
    Sent,
    /// The last attempt failed (see `last_error`, `next_attempt_at`).
    Failed,
}

impl SendStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            SendStatus::Sending => "sending",
            SendStatus::Sent => "sent",
            SendStatus::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        Ok(match s {
            "sending" => SendStatus::Sending,
            "sent" => SendStatus::Sent,
            "failed" => SendStatus::Failed,
            other => return Err(StoreError::Corrupt(format!("report send status {other:?}"))),
        })
    }
}

/// One week's send.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReportSend {
    pub delivery_key: String,
    /// The ISO week reported, e.g. `2026-W47`.
    pub week: String,
    pub status: SendStatus,
    pub attempts: i64,
    pub last_error: Option<String>,
    /// When a failed send may be tried again (`None`: never).
    pub next_attempt_at: Option<Timestamp>,
    /// Recipients of the sent e-mail.
    pub recipients: Option<i64>,
    pub subject: Option<String>,
    pub created_at: Timestamp,
    pub sent_at: Option<Timestamp>,
}

fn row(r: &AnyRow) -> Result<ReportSend, StoreError> {
    Ok(ReportSend {
        delivery_key: r.try_get("delivery_key")?,
        week: r.try_get("week")?,
        status: SendStatus::parse(&r.try_get::<String, _>("status")?)?,
        attempts: r.try_get("attempts")?,
        last_error: r.try_get("last_error")?,
        next_attempt_at: r
            .try_get::<Option<i64>, _>("next_attempt_at")?
            .map(Timestamp::from_millis),
        recipients: r.try_get("recipients")?,
        subject: r.try_get("subject")?,
        created_at: Timestamp::from_millis(r.try_get("created_at")?),
        sent_at: r
            .try_get::<Option<i64>, _>("sent_at")?
            .map(Timestamp::from_millis),
    })
}

/// Claims the send of `key` (the report of `week`) until `lease_until` and
/// counts the attempt. True when this caller may send: it inserted the row,
/// or re-claimed a failed send whose retry time has come, or a send whose
/// sender's lease ran out. False for a sent week, a send claimed by someone
/// else, or a failed one not yet due again.
pub async fn claim(
    c: &mut AnyConnection,
    key: &str,
    week: &str,
    now: Timestamp,
    lease_until: Timestamp,
) -> Result<bool, StoreError> {
    let inserted = sqlx::query(
        "INSERT INTO report_sends (delivery_key, week, status, attempts, claimed_until, created_at) \
         VALUES ($1, $2, 'sending', 1, $3, $4) ON CONFLICT (delivery_key) DO NOTHING",
    )
    .bind(key)
    .bind(week)
    .bind(lease_until.millis())
    .bind(now.millis())
    .execute(&mut *c)
    .await?;
    if inserted.rows_affected() == 1 {
        return Ok(true);
    }
    let reclaimed = sqlx::query(
        "UPDATE report_sends SET status = 'sending', attempts = attempts + 1, claimed_until = $1 \
         WHERE delivery_key = $2 AND ((status = 'failed' AND next_attempt_at IS NOT NULL AND next_attempt_at <= $3) \
         OR (status = 'sending' AND claimed_until < $3))",
    )
    .bind(lease_until.millis())
    .bind(key)
    .bind(now.millis())
    .execute(c)
    .await?;
    Ok(reclaimed.rows_affected() == 1)
}

/// Marks a claimed send done. `note` records a problem after the e-mail
/// went out (e.g. the chat webhook failed): the e-mail is not sent again.
pub async fn sent(
    c: &mut AnyConnection,
    key: &str,
    now: Timestamp,
    recipients: usize,
    subject: &str,
    note: Option<&str>,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE report_sends SET status = 'sent', sent_at = $1, recipients = $2, subject = $3, \
         last_error = $4, claimed_until = NULL, next_attempt_at = NULL WHERE delivery_key = $5",
    )
    .bind(now.millis())
    .bind(recipients as i64)
    .bind(subject)
    .bind(note)
    .bind(key)
    .execute(c)
    .await?;
    Ok(())
}

/// Records a failed attempt: tried again from `retry_at`, or never when
/// `None`.
pub async fn failed(
    c: &mut AnyConnection,
    key: &str,
    error: &str,
    retry_at: Option<Timestamp>,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE report_sends SET status = 'failed', last_error = $1, next_attempt_at = $2, \
         claimed_until = NULL WHERE delivery_key = $3",
    )
    .bind(error)
    .bind(retry_at.map(|t| t.millis()))
    .bind(key)
    .execute(c)
    .await?;
    Ok(())
}

/// The send recorded under `key`, if any.
pub async fn get(c: &mut AnyConnection, key: &str) -> Result<Option<ReportSend>, StoreError> {
    sqlx::query(
        "SELECT delivery_key, week, status, attempts, last_error, next_attempt_at, recipients, \
         subject, created_at, sent_at FROM report_sends WHERE delivery_key = $1",
    )
    .bind(key)
    .fetch_optional(c)
    .await?
    .as_ref()
    .map(row)
    .transpose()
}
