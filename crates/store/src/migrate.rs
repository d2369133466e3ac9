//! One migration set for both backends. `{{id}}` in a migration becomes the
//! backend's auto-increment primary key; everything else is common SQL.

use sqlx::Executor;

use crate::{Backend, Store, StoreError};

/// Embedded migrations: (version, name, SQL), in ascending version order.
pub const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "schema", include_str!("../migrations/0001_schema.sql")),
    (2, "tokens", include_str!("../migrations/0002_tokens.sql")),
    (
        3,
        "feedback",
        include_str!("../migrations/0003_feedback.sql"),
    ),
    (
        4,
        "ingest_alerts",
        include_str!("../migrations/0004_ingest_alerts.sql"),
    ),
    (
        5,
        "accounts",
        include_str!("../migrations/0005_accounts.sql"),
    ),
    (6, "weekly", include_str!("../migrations/0006_weekly.sql")),
    (
        10,
        "row_changes",
        include_str!("../migrations/0010_row_changes.sql"),
    ),
    (
        11,
        "report_sends",
        include_str!("../migrations/0011_report_sends.sql"),
    ),
];

fn render(sql: &str, backend: Backend) -> String {
    let id = match backend {
        Backend::Sqlite => "INTEGER PRIMARY KEY",
        Backend::Postgres => "BIGSERIAL PRIMARY KEY",
    };
    only_for(sql, backend).replace("{{id}}", id)
}

/// Drops the lines between `-- NAME:begin` and `-- NAME:end` of the other
/// backend (`sqlite` or `postgres`), for what has no common syntax (triggers).
fn only_for(sql: &str, backend: Backend) -> String {
    let other = match backend {
        Backend::Sqlite => "postgres",
        Backend::Postgres => "sqlite",
    };
    let (begin, end) = (format!("-- {other}:begin"), format!("-- {other}:end"));
    let mut out = String::with_capacity(sql.len());
    let mut skip = false;
    for line in sql.lines() {
        if line.trim() == begin {
            skip = true;
        } else if line.trim() == end {
            skip = false;
        } else if !skip && !is_marker(line) {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

fn is_marker(line: &str) -> bool {
    matches!(
        line.trim(),
        "-- sqlite:begin" | "-- sqlite:end" | "-- postgres:begin" | "-- postgres:end"
    )
}

/// Applies every migration not yet applied, each in its own transaction, in
/// list order. A version is skipped only when its own row exists (not when a
/// later one does), so versions developed in parallel and merged later are
/// still applied. Concurrent starts are safe: the version row's primary key
/// makes a second writer fail and roll back, and we re-check before applying.
pub(crate) async fn run(store: &Store) -> Result<(), StoreError> {
    let mut conn = store.conn().await?;
    conn.execute(
        "CREATE TABLE IF NOT EXISTS tandem_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
    )
    .await?;
    drop(conn);
    let known = MIGRATIONS.iter().map(|m| m.0).max().unwrap_or(0);
    // Versions need not be contiguous (branches add them in parallel): each
    // one not yet recorded is applied, in ascending order.
    for (version, name, sql) in MIGRATIONS {
        let mut tx = store.begin().await?;
        let applied: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM tandem_migrations")
            .fetch_one(tx.conn())
            .await?;
        let applied = applied.unwrap_or(0);
        if applied > known {
            return Err(StoreError::SchemaTooNew {
                found: applied,
                known,
            });
        }
        let done: Option<i64> =
            sqlx::query_scalar("SELECT version FROM tandem_migrations WHERE version = $1")
                .bind(*version)
                .fetch_optional(tx.conn())
                .await?;
        if done.is_some() {
            continue;
        }
        tracing::info!(
            migration.version = version,
            migration.name = name,
            "applying migration"
        );
        sqlx::raw_sql(sqlx::AssertSqlSafe(render(sql, store.backend())))
            .execute(tx.conn())
            .await?;
        sqlx::query(
            "INSERT INTO tandem_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
        )
        .bind(*version)
        .bind(*name)
        .bind(now_ms())
        .execute(tx.conn())
        .await?;
        tx.commit().await?;
    }
    Ok(())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn versions_ascend_without_duplicates() {
        let v: Vec<i64> = super::MIGRATIONS.iter().map(|m| m.0).collect();
        assert!(v.windows(2).all(|w| w[0] < w[1]), "{v:?}");
    }

    #[test]
    fn backend_sections_keep_only_their_own_lines() {
        let sql =
            "A;\n-- sqlite:begin\nS;\n-- sqlite:end\n-- postgres:begin\nP;\n-- postgres:end\nB;\n";
        assert_eq!(super::only_for(sql, crate::Backend::Sqlite), "A;\nS;\nB;\n");
        assert_eq!(
            super::only_for(sql, crate::Backend::Postgres),
            "A;\nP;\nB;\n"
        );
    }
}
