//! A cheap fingerprint of the stored history, so a reader can keep a
//! [`crate::repo::Snapshot`] and know when to read it again.
//!
//! Rows are only inserted or updated in place, never deleted, and every
//! lifecycle change appends a transition. The largest id of each table
//! (index lookups, no scan) therefore changes on every insert and on every
//! stage move; an in-place update of a touch, deal or person field without a
//! stage move does not change it, so readers bound how long they trust a
//! stamp as well.

use sqlx::AnyConnection;

use crate::StoreError;

/// Largest id per table, in a fixed order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stamp(pub [i64; 7]);

const STAMP: &str = "SELECT \
    (SELECT COALESCE(MAX(id), 0) FROM accounts), \
    (SELECT COALESCE(MAX(id), 0) FROM people), \
    (SELECT COALESCE(MAX(id), 0) FROM touches), \
    (SELECT COALESCE(MAX(id), 0) FROM activities), \
    (SELECT COALESCE(MAX(id), 0) FROM deals), \
    (SELECT COALESCE(MAX(id), 0) FROM campaigns), \
    (SELECT COALESCE(MAX(seq), 0) FROM transitions)";

/// Reads the current [`Stamp`].
pub async fn stamp(c: &mut AnyConnection) -> Result<Stamp, StoreError> {
    use sqlx::Row;
    let row = sqlx::query(STAMP).fetch_one(&mut *c).await?;
    let mut out = [0i64; 7];
    for (i, v) in out.iter_mut().enumerate() {
        *v = row.try_get::<i64, _>(i)?;
    }
    Ok(Stamp(out))
}
