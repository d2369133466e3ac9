//! The alert delivery log: one row per alert event, keyed by its delivery
//! key, with the state of its webhook delivery (attempts, last error, next
//! attempt).
//!
//! Several `tandem serve` instances may find the same event at once: the
//! unique `delivery_key` lets only one insert it ([`insert`]), and a
//! conditional update lets only one claim each attempt ([`claim`]).

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use tandem_core::Timestamp;

use crate::StoreError;

/// Where a delivery stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    /// Waiting for its first or next attempt.
    Pending,
    /// Claimed by an instance that is posting it now.
    Sending,
    /// The receiver answered 2xx.
    Delivered,
    /// Every attempt failed; no more retries.
    Failed,
}

impl AlertStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Pending => "pending",
            AlertStatus::Sending => "sending",
            AlertStatus::Delivered => "delivered",
            AlertStatus::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        Ok(match s {
            "pending" => AlertStatus::Pending,
            "sending" => AlertStatus::Sending,
            "delivered" => AlertStatus::Delivered,
            "failed" => AlertStatus::Failed,
            other => return Err(StoreError::Corrupt(format!("alert status {other:?}"))),
        })
    }
}

/// An alert to record.
#[derive(Clone, Debug, PartialEq)]
pub struct NewAlert {
    /// Names the event once: kind, subject and breach instant or period.
    pub delivery_key: String,
    /// `sla_breach`, `goal_hit` or `stalled`.
    pub kind: String,
    /// The team it is for: `sales`, `marketing` or `all`.
    pub team: String,
    /// Who or what it is about (a person's external id, a goal id).
    pub subject: String,
    /// The webhook it goes to.
    pub url: String,
    /// The JSON body to post.
    pub payload: String,
}

/// A recorded alert and its delivery state.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Alert {
    pub id: i64,
    pub delivery_key: String,
    pub kind: String,
    pub team: String,
    pub subject: String,
    /// Not serialized: a webhook URL is a secret (it is the credential).
    #[serde(skip)]
    pub url: String,
    /// The JSON body posted.
    #[serde(skip)]
    pub payload: String,
    pub status: AlertStatus,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub next_attempt_at: Timestamp,
    pub created_at: Timestamp,
    pub delivered_at: Option<Timestamp>,
}

const COLS: &str = "id, delivery_key, kind, team, subject, url, payload, status, attempts, last_error, next_attempt_at, created_at, delivered_at";

fn row(r: &AnyRow) -> Result<Alert, StoreError> {
    Ok(Alert {
        id: r.try_get("id")?,
        delivery_key: r.try_get("delivery_key")?,
        kind: r.try_get("kind")?,
        team: r.try_get("team")?,
        subject: r.try_get("subject")?,
        url: r.try_get("url")?,
        payload: r.try_get("payload")?,
        status: AlertStatus::parse(&r.try_get::<String, _>("status")?)?,
        attempts: r.try_get("attempts")?,
        last_error: r.try_get("last_error")?,
        next_attempt_at: Timestamp::from_millis(r.try_get("next_attempt_at")?),
        created_at: Timestamp::from_millis(r.try_get("created_at")?),
        delivered_at: r
            .try_get::<Option<i64>, _>("delivered_at")?
            .map(Timestamp::from_millis),
    })
}

/// Records an alert, due at once. Returns false (and changes nothing) when
/// its delivery key is already recorded, by this or any other instance.
pub async fn insert(
    c: &mut AnyConnection,
    a: &NewAlert,
    now: Timestamp,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "INSERT INTO alerts (delivery_key, kind, team, subject, url, payload, status, attempts, next_attempt_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $7, $7) ON CONFLICT (delivery_key) DO NOTHING",
    )
    .bind(&a.delivery_key)
    .bind(&a.kind)
    .bind(&a.team)
    .bind(&a.subject)
    .bind(&a.url)
    .bind(&a.payload)
    .bind(now.millis())
    .execute(c)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Alerts whose next attempt is due at `now`: pending ones, and ones whose
/// sender's lease ran out (it died mid-attempt). Oldest first.
pub async fn due(
    c: &mut AnyConnection,
    now: Timestamp,
    limit: i64,
) -> Result<Vec<Alert>, StoreError> {
    let q = format!(
        "SELECT {COLS} FROM alerts WHERE (status = 'pending' AND next_attempt_at <= $1) \
         OR (status = 'sending' AND claimed_until < $1) ORDER BY next_attempt_at, id LIMIT $2"
    );
    sqlx::query(sqlx::AssertSqlSafe(q))
        .bind(now.millis())
        .bind(limit)
        .fetch_all(c)
        .await?
        .iter()
        .map(row)
        .collect()
}

/// Claims the next attempt of an alert until `lease_until` and counts it.
/// True when this caller won the claim; a concurrent claimer (another
/// instance) finds the row no longer due and gets false.
pub async fn claim(
    c: &mut AnyConnection,
    id: i64,
    now: Timestamp,
    lease_until: Timestamp,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE alerts SET status = 'sending', attempts = attempts + 1, claimed_until = $1 \
         WHERE id = $2 AND ((status = 'pending' AND next_attempt_at <= $3) OR (status = 'sending' AND claimed_until < $3))",
    )
    .bind(lease_until.millis())
    .bind(id)
    .bind(now.millis())
    .execute(c)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Marks a claimed alert delivered.
pub async fn delivered(c: &mut AnyConnection, id: i64, now: Timestamp) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE alerts SET status = 'delivered', delivered_at = $1, claimed_until = NULL, last_error = NULL WHERE id = $2",
    )
    .bind(now.millis())
    .bind(id)
    .execute(c)
    .await?;
    Ok(())
}

/// Records a failed attempt: pending again at `retry_at`, or failed for good
/// when there is none.
pub async fn attempt_failed(
    c: &mut AnyConnection,
    id: i64,
    error: &str,
    retry_at: Option<Timestamp>,
) -> Result<(), StoreError> {
    let (status, next) = match retry_at {
        Some(t) => (AlertStatus::Pending, Some(t.millis())),
        None => (AlertStatus::Failed, None),
    };
    sqlx::query(
        "UPDATE alerts SET status = $1, last_error = $2, next_attempt_at = COALESCE($3, next_attempt_at), claimed_until = NULL WHERE id = $4",
    )
    .bind(status.as_str())
    .bind(error)
    .bind(next)
    .bind(id)
    .execute(c)
    .await?;
    Ok(())
}

/// The delivery log, newest first: up to `limit` alerts with id below
/// `before` (a page cursor; `None` starts at the newest).
pub async fn list(
    c: &mut AnyConnection,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<Alert>, StoreError> {
    let q = format!("SELECT {COLS} FROM alerts WHERE id < $1 ORDER BY id DESC LIMIT $2");
    sqlx::query(sqlx::AssertSqlSafe(q))
        .bind(before.unwrap_or(i64::MAX))
        .bind(limit)
        .fetch_all(c)
        .await?
        .iter()
        .map(row)
        .collect()
}
