//! API tokens for `tandem serve`.
//!
//! A token is 256 random bits from the operating system, shown once as
//! `tdm_<64 hex digits>`. Only its SHA-256 (hex) is stored, so a copy of the
//! database does not give access. A request's token is hashed and looked up
//! by that hash: the comparison happens on the digest inside the database
//! index, never byte-by-byte on the secret, so response timing cannot leak
//! how much of a guessed token was right (finding a stored hash's preimage is
//! infeasible). Revoked tokens stay in the table with `revoked_at` set.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use tandem_core::Timestamp;

use crate::StoreError;

/// The prefix of every token, so leaked tokens are recognisable.
pub const PREFIX: &str = "tdm_";

/// What a token may do. Ordered by privilege for display only; the rules
/// live in the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Marketing,
    Sales,
    Viewer,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 4] = [Role::Admin, Role::Marketing, Role::Sales, Role::Viewer];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Marketing => "marketing",
            Role::Sales => "sales",
            Role::Viewer => "viewer",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role name that is not one of admin, marketing, sales, viewer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role `{0}`; use admin, marketing, sales or viewer")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Role, UnknownRole> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownRole(s.to_string()))
    }
}

/// A stored token (without the secret, which is never stored).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ApiToken {
    pub id: i64,
    pub name: String,
    pub role: Role,
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

/// A token secret, shown once. `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The token text to hand to the user. Never log this.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// SHA-256 of a token, lowercase hex: the stored and looked-up key.
pub fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn generate() -> Result<Secret, StoreError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| StoreError::Corrupt(format!("no randomness from the OS: {e}")))?;
    Ok(Secret(format!("{PREFIX}{}", hex::encode(bytes))))
}

const COLS: &str = "id, name, role, created_at, revoked_at";

fn token_row(r: &AnyRow) -> Result<ApiToken, StoreError> {
    let role: String = r.try_get("role")?;
    Ok(ApiToken {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        role: role
            .parse()
            .map_err(|e: UnknownRole| StoreError::Corrupt(e.to_string()))?,
        created_at: Timestamp::from_millis(r.try_get("created_at")?),
        revoked_at: r
            .try_get::<Option<i64>, _>("revoked_at")?
            .map(Timestamp::from_millis),
    })
}

/// Creates a token; returns it with the secret (the only time it exists).
#[tracing::instrument(skip(c))]
pub async fn create(
    c: &mut AnyConnection,
    name: &str,
    role: Role,
    now: Timestamp,
) -> Result<(ApiToken, Secret), StoreError> {
    let secret = generate()?;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO api_tokens (name, role, hash, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
    )
    .bind(name)
    .bind(role.as_str())
    .bind(hash(secret.expose()))
    .bind(now.millis())
    .fetch_one(&mut *c)
    .await?;
    Ok((
        ApiToken {
            id,
            name: name.to_string(),
            role,
            created_at: now,
            revoked_at: None,
        },
        secret,
    ))
}

/// The live (not revoked) token whose secret is `token`.
#[tracing::instrument(skip_all)]
pub async fn find(c: &mut AnyConnection, token: &str) -> Result<Option<ApiToken>, StoreError> {
    find_by_hash(c, &hash(token)).await
}

/// The live (not revoked) token with this hash.
#[tracing::instrument(skip_all)]
pub async fn find_by_hash(
    c: &mut AnyConnection,
    hash: &str,
) -> Result<Option<ApiToken>, StoreError> {
    let q = format!("SELECT {COLS} FROM api_tokens WHERE hash = $1 AND revoked_at IS NULL");
    sqlx::query(sqlx::AssertSqlSafe(q))
        .bind(hash)
        .fetch_optional(c)
        .await?
        .map(|r| token_row(&r))
        .transpose()
}

/// Every token, revoked ones included, by id.
pub async fn list(c: &mut AnyConnection) -> Result<Vec<ApiToken>, StoreError> {
    let q = format!("SELECT {COLS} FROM api_tokens ORDER BY id");
    sqlx::query(sqlx::AssertSqlSafe(q))
        .fetch_all(c)
        .await?
        .iter()
        .map(token_row)
        .collect()
}

/// Revokes the live tokens named `key`, or the one with id `#N`. Returns how
/// many were revoked; none is [`StoreError::NotFound`].
#[tracing::instrument(skip(c))]
pub async fn revoke(c: &mut AnyConnection, key: &str, now: Timestamp) -> Result<u64, StoreError> {
    let done = match key.strip_prefix('#').and_then(|n| n.parse::<i64>().ok()) {
        Some(id) => {
            sqlx::query(
                "UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
            )
            .bind(now.millis())
            .bind(id)
            .execute(c)
            .await?
        }
        None => {
            sqlx::query(
                "UPDATE api_tokens SET revoked_at = $1 WHERE name = $2 AND revoked_at IS NULL",
            )
            .bind(now.millis())
            .bind(key)
            .execute(c)
            .await?
        }
    };
    match done.rows_affected() {
        0 => Err(StoreError::not_found(format!("live token `{key}`"))),
        n => Ok(n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestDb;

    #[tokio::test]
    async fn create_find_revoke_list_on_every_backend() {
        for db in TestDb::all().await.unwrap() {
            {
                let mut c = db.store.conn().await.unwrap();
                let t0 = Timestamp::from_millis(1_000);
                let (tok, secret) = create(&mut c, "ci", Role::Sales, t0).await.unwrap();
                assert!(secret.expose().starts_with(PREFIX));
                assert_eq!(secret.expose().len(), PREFIX.len() + 64);
                assert_eq!(format!("{secret:?}"), "Secret(***)");
                assert_eq!(
                    find(&mut c, secret.expose()).await.unwrap(),
                    Some(tok.clone())
                );
                assert_eq!(find(&mut c, "tdm_nope").await.unwrap(), None);
                let (_, other) = create(&mut c, "ci2", Role::Viewer, t0).await.unwrap();
                assert_ne!(other, secret);
                // The secret itself is not stored anywhere.
                let stored: String =
                    sqlx::query_scalar("SELECT hash FROM api_tokens WHERE id = $1")
                        .bind(tok.id)
                        .fetch_one(&mut *c)
                        .await
                        .unwrap();
                assert_eq!(stored, hash(secret.expose()));
                assert_eq!(
                    revoke(&mut c, "ci", Timestamp::from_millis(2_000))
                        .await
                        .unwrap(),
                    1
                );
                assert_eq!(find(&mut c, secret.expose()).await.unwrap(), None);
                assert!(matches!(
                    revoke(&mut c, "ci", t0).await,
                    Err(StoreError::NotFound { .. })
                ));
                let all = list(&mut c).await.unwrap();
                assert_eq!(all.len(), 2);
                assert_eq!(all[0].revoked_at, Some(Timestamp::from_millis(2_000)));
                assert_eq!(all[1].revoked_at, None);
            }
            db.cleanup().await.unwrap();
        }
    }

    #[test]
    fn roles_round_trip() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>(), Ok(r));
        }
        assert!("root".parse::<Role>().is_err());
    }
}
