//! Store errors. Database text stays in the source chain for logs; the
//! messages themselves never include credentials.

/// What can go wrong talking to the database.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot use database URL {0}: expected sqlite:FILE, postgres://… or a file path")]
    BadUrl(String),
    #[error("cannot connect to {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("{what} not found")]
    NotFound { what: String },
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    #[error("the database schema is at version {found}, newer than this tandem ({known}); upgrade tandem")]
    SchemaTooNew { found: i64, known: i64 },
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    /// From a full read straight from an SQLite file (`bulk`).
    #[error("database error: {0}")]
    File(#[from] rusqlite::Error),
}

impl StoreError {
    /// True for failures a retry of the whole transaction can cure: on
    /// PostgreSQL a deadlock (40P01), a serialization failure (40001), or a
    /// unique key another transaction inserted first (23505): the retry then
    /// sees that row and takes the "already there" path.
    pub fn is_retryable(&self) -> bool {
        match self {
            StoreError::Db(sqlx::Error::Database(e)) => {
                matches!(e.code().as_deref(), Some("40P01" | "40001" | "23505"))
            }
            _ => false,
        }
    }

    pub(crate) fn not_found(what: impl Into<String>) -> Self {
        StoreError::NotFound { what: what.into() }
    }
}
