//! Fresh throw-away databases for tests, on SQLite always and on PostgreSQL
//! when `TANDEM_TEST_POSTGRES_URL` names a server (CI always sets it).

use crate::{DatabaseUrl, Store, StoreError};

/// Environment variable with an admin URL of a PostgreSQL server for tests.
pub const POSTGRES_ENV: &str = "TANDEM_TEST_POSTGRES_URL";

/// A database that exists for one test. PostgreSQL databases are dropped by
/// [`TestDb::cleanup`]; SQLite files live in a temp dir removed on drop.
pub struct TestDb {
    pub url: DatabaseUrl,
    pub store: Store,
    admin: Option<(DatabaseUrl, String)>,
    _dir: Option<tempfile_dir::Dir>,
}

mod tempfile_dir {
    /// A temp directory removed on drop (std only, so the store has no
    /// test-only dependency in its public API).
    pub struct Dir(pub std::path::PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A name no other test database of any process uses: the process id, a
/// per-process counter (two tests of one binary can read the same clock
/// value, and then shared one database) and the time (for a reused pid).
fn unique(prefix: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}_{}_{n}_{}",
        std::process::id(),
        nanos % 1_000_000_000_000
    )
}

impl TestDb {
    /// A new migrated SQLite database in a temp dir.
    pub async fn sqlite() -> Result<TestDb, StoreError> {
        let dir = std::env::temp_dir().join(unique("tandem_test"));
        std::fs::create_dir_all(&dir).map_err(|e| StoreError::Corrupt(format!("temp dir: {e}")))?;
        let url = DatabaseUrl::parse(&dir.join("tandem.db").to_string_lossy())?;
        let store = Store::open(&url).await?;
        Ok(TestDb {
            url,
            store,
            admin: None,
            _dir: Some(tempfile_dir::Dir(dir)),
        })
    }

    /// A new migrated PostgreSQL database, or `None` (with a notice) when
    /// no server is configured.
    pub async fn postgres() -> Result<Option<TestDb>, StoreError> {
        let Ok(admin) = std::env::var(POSTGRES_ENV) else {
            eprintln!("notice: {POSTGRES_ENV} is not set; skipping the PostgreSQL run");
            return Ok(None);
        };
        let admin = DatabaseUrl::parse(&admin)?;
        let name = unique("tandem_test");
        let admin_store = Store::connect(&admin).await?;
        {
            let mut c = admin_store.conn().await?;
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut *c)
                .await?;
        }
        admin_store.close().await;
        let base = admin.expose();
        let (root, query) = match base.split_once('?') {
            Some((r, q)) => (r, format!("?{q}")),
            None => (base, String::new()),
        };
        let root = match root.rfind('/') {
            Some(i) if i > "postgres://".len() => &root[..i],
            _ => root,
        };
        let url = DatabaseUrl::parse(&format!("{root}/{name}{query}"))?;
        let store = Store::open(&url).await?;
        Ok(Some(TestDb {
            url,
            store,
            admin: Some((admin, name)),
            _dir: None,
        }))
    }

    /// Every backend available here: SQLite, and PostgreSQL when configured.
    pub async fn all() -> Result<Vec<TestDb>, StoreError> {
        let mut v = vec![TestDb::sqlite().await?];
        if let Some(pg) = TestDb::postgres().await? {
            v.push(pg);
        }
        Ok(v)
    }

    /// Closes the pool and drops a PostgreSQL database.
    pub async fn cleanup(self) -> Result<(), StoreError> {
        self.store.close().await;
        if let Some((admin, name)) = &self.admin {
            let admin_store = Store::connect(admin).await?;
            let mut c = admin_store.conn().await?;
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .execute(&mut *c)
            .await?;
            drop(c);
            admin_store.close().await;
        }
        Ok(())
    }
}
