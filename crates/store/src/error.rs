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
}

impl StoreError {
    pub(crate) fn not_found(what: impl Into<String>) -> Self {
        StoreError::NotFound { what: what.into() }
    }
}
