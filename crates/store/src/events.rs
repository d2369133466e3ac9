//! Idempotency of event ingest: which Segment `messageId`s were already
//! stored. The row is written in the transaction that stores the message's
//! effects, so "seen" always means "fully applied".

use sqlx::AnyConnection;
use tandem_core::Timestamp;

use crate::StoreError;

/// True when a message with this id was already accepted.
pub async fn seen(c: &mut AnyConnection, message_id: &str) -> Result<bool, StoreError> {
    let found: Option<String> =
        sqlx::query_scalar("SELECT message_id FROM ingest_messages WHERE message_id = $1")
            .bind(message_id)
            .fetch_optional(c)
            .await?;
    Ok(found.is_some())
}

/// Records an accepted message. A concurrent transaction that recorded the
/// same id first makes this fail with a unique violation
/// ([`StoreError::is_retryable`]); the retry then finds it [`seen`].
pub async fn record(
    c: &mut AnyConnection,
    message_id: &str,
    kind: &str,
    person_id: Option<i64>,
    received_at: Timestamp,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO ingest_messages (message_id, kind, person_id, received_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(message_id)
    .bind(kind)
    .bind(person_id)
    .bind(received_at.millis())
    .execute(c)
    .await?;
    Ok(())
}

/// How many messages were accepted (for tests and summaries).
pub async fn count(c: &mut AnyConnection) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM ingest_messages")
        .fetch_one(c)
        .await?)
}
