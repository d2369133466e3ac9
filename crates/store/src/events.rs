//! Idempotency of event ingest: which Segment `messageId`s were already
//! stored. The row is written in the transaction that stores the message's
//! effects, so "seen" always means "fully applied".

use std::collections::HashSet;

use sqlx::AnyConnection;
use tandem_core::Timestamp;

use crate::{repo, StoreError};

/// Message ids bound per query (four values per recorded row).
const PER_QUERY: usize = 250;

/// Which of these message ids were already accepted: one query per 250 ids.
pub async fn seen(
    c: &mut AnyConnection,
    message_ids: &[&str],
) -> Result<HashSet<String>, StoreError> {
    let anon = repo::anonymous_params(c);
    let mut out = HashSet::new();
    for chunk in message_ids.chunks(PER_QUERY) {
        let sql = format!(
            "SELECT message_id FROM ingest_messages WHERE message_id IN ({})",
            repo::param_list(1, chunk.len(), anon)
        );
        let mut q = sqlx::query_scalar(sqlx::AssertSqlSafe(sql));
        for id in chunk {
            q = q.bind(*id);
        }
        out.extend(q.fetch_all(&mut *c).await?);
    }
    Ok(out)
}

/// A message accepted in the current transaction, for [`record`].
#[derive(Clone, Debug)]
pub struct Accepted<'a> {
    pub message_id: &'a str,
    /// The Segment call (`track`, `identify`, …).
    pub kind: &'static str,
    pub person_id: Option<i64>,
    pub received_at: Timestamp,
}

/// Records accepted messages: one INSERT per 250. A concurrent transaction
/// that recorded one of the ids first makes this fail with a unique
/// violation ([`StoreError::is_retryable`]); the retry then finds it
/// [`seen`].
pub async fn record(c: &mut AnyConnection, accepted: &[Accepted<'_>]) -> Result<(), StoreError> {
    let anon = repo::anonymous_params(c);
    for chunk in accepted.chunks(PER_QUERY) {
        let rows: Vec<String> = (0..chunk.len())
            .map(|i| format!("({})", repo::param_list(4 * i + 1, 4, anon)))
            .collect();
        let sql = format!(
            "INSERT INTO ingest_messages (message_id, kind, person_id, received_at) VALUES {}",
            rows.join(", ")
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for a in chunk {
            q = q
                .bind(a.message_id)
                .bind(a.kind)
                .bind(a.person_id)
                .bind(a.received_at.millis());
        }
        q.execute(&mut *c).await?;
    }
    Ok(())
}

/// How many messages were accepted (for tests and summaries).
pub async fn count(c: &mut AnyConnection) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM ingest_messages")
        .fetch_one(c)
        .await?)
}
