//! The weekly loop's own records (DESIGN §7): the joint meeting's decisions
//! log and the content assets sales sends, with a usage log.
//!
//! Decisions are appended and only ever marked done (`done_at`); content
//! usage is append-only, so the report can count uses in any window.

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use tandem_core::Timestamp;

use crate::repo::Upsert;
use crate::StoreError;

/// A decision or action item recorded in a meeting.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Decision {
    pub id: i64,
    pub text: String,
    /// Who owns it (free text: a person or a team).
    pub owner: Option<String>,
    /// When it is due, if it has a date.
    pub due_at: Option<Timestamp>,
    /// An action item (someone must do something) rather than a decision.
    pub action: bool,
    /// The meeting it was taken in (`weekly`, `marsale`).
    pub meeting: String,
    pub created_at: Timestamp,
    /// When it was marked done; `None` while it is still open.
    pub done_at: Option<Timestamp>,
}

impl Decision {
    /// Open (not yet done) as of `at`.
    pub fn open_at(&self, at: Timestamp) -> bool {
        self.created_at <= at && self.done_at.is_none_or(|d| d > at)
    }
}

/// What `tandem decision add` records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewDecision {
    pub text: String,
    pub owner: Option<String>,
    pub due_at: Option<Timestamp>,
    pub action: bool,
    pub meeting: String,
}

const DECISION_COLS: &str = "id, text, owner, due_at, action, meeting, created_at, done_at";

fn decision_row(r: &AnyRow) -> Result<Decision, StoreError> {
    Ok(Decision {
        id: r.try_get("id")?,
        text: r.try_get("text")?,
        owner: r.try_get("owner")?,
        due_at: r
            .try_get::<Option<i64>, _>("due_at")?
            .map(Timestamp::from_millis),
        action: r.try_get::<i64, _>("action")? != 0,
        meeting: r.try_get("meeting")?,
        created_at: Timestamp::from_millis(r.try_get("created_at")?),
        done_at: r
            .try_get::<Option<i64>, _>("done_at")?
            .map(Timestamp::from_millis),
    })
}

/// Records a decision or action item taken at `now`.
pub async fn add_decision(
    c: &mut AnyConnection,
    d: &NewDecision,
    now: Timestamp,
) -> Result<Decision, StoreError> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO decisions (text, owner, due_at, action, meeting, created_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(&d.text)
    .bind(&d.owner)
    .bind(d.due_at.map(Timestamp::millis))
    .bind(i64::from(d.action))
    .bind(&d.meeting)
    .bind(now.millis())
    .fetch_one(&mut *c)
    .await?;
    decision(c, id).await
}

/// The decision with this id.
pub async fn decision(c: &mut AnyConnection, id: i64) -> Result<Decision, StoreError> {
    let q = format!("SELECT {DECISION_COLS} FROM decisions WHERE id = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(q))
        .bind(id)
        .fetch_optional(c)
        .await?
        .ok_or_else(|| StoreError::not_found(format!("decision #{id}")))?;
    decision_row(&row)
}

/// Every decision, oldest first.
pub async fn decisions(c: &mut AnyConnection) -> Result<Vec<Decision>, StoreError> {
    let q = format!("SELECT {DECISION_COLS} FROM decisions ORDER BY created_at, id");
    sqlx::query(sqlx::AssertSqlSafe(q))
        .fetch_all(c)
        .await?
        .iter()
        .map(decision_row)
        .collect()
}

/// Marks a decision done at `at`. Already done: unchanged (the first
/// completion time stays).
pub async fn complete_decision(
    c: &mut AnyConnection,
    id: i64,
    at: Timestamp,
) -> Result<Decision, StoreError> {
    let d = decision(&mut *c, id).await?;
    if d.done_at.is_some() {
        return Ok(d);
    }
    sqlx::query("UPDATE decisions SET done_at = $1 WHERE id = $2")
        .bind(at.millis())
        .bind(id)
        .execute(&mut *c)
        .await?;
    decision(c, id).await
}

/// A piece of content sales can send (case study, deck, one-pager …).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ContentAsset {
    pub id: i64,
    pub external_id: String,
    pub title: String,
    pub url: Option<String>,
    pub kind: Option<String>,
    /// The persona it serves.
    pub persona: Option<String>,
    /// The lifecycle stage it serves.
    pub stage: Option<String>,
    pub created_at: Timestamp,
}

/// One use of an asset: a seller sent it (to a person).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ContentUse {
    pub id: i64,
    pub asset_id: i64,
    pub person_id: Option<i64>,
    pub used_by: String,
    pub at: Timestamp,
}

const ASSET_COLS: &str = "id, external_id, title, url, kind, persona, stage, created_at";

fn asset_row(r: &AnyRow) -> Result<ContentAsset, StoreError> {
    Ok(ContentAsset {
        id: r.try_get("id")?,
        external_id: r.try_get("external_id")?,
        title: r.try_get("title")?,
        url: r.try_get("url")?,
        kind: r.try_get("kind")?,
        persona: r.try_get("persona")?,
        stage: r.try_get("stage")?,
        created_at: Timestamp::from_millis(r.try_get("created_at")?),
    })
}

/// Inserts or updates an asset by external id (`created_at` of an existing
/// asset is kept).
pub async fn upsert_asset(
    c: &mut AnyConnection,
    a: &ContentAsset,
) -> Result<(ContentAsset, Upsert), StoreError> {
    let q = format!("SELECT {ASSET_COLS} FROM content_assets WHERE external_id = $1");
    let old = sqlx::query(sqlx::AssertSqlSafe(q))
        .bind(&a.external_id)
        .fetch_optional(&mut *c)
        .await?
        .map(|r| asset_row(&r))
        .transpose()?;
    if let Some(old) = old {
        let new = ContentAsset {
            id: old.id,
            created_at: old.created_at,
            ..a.clone()
        };
        if new == old {
            return Ok((old, Upsert::Unchanged));
        }
        sqlx::query(
            "UPDATE content_assets SET title = $1, url = $2, kind = $3, persona = $4, stage = $5 WHERE id = $6",
        )
        .bind(&new.title)
        .bind(&new.url)
        .bind(&new.kind)
        .bind(&new.persona)
        .bind(&new.stage)
        .bind(old.id)
        .execute(&mut *c)
        .await?;
        return Ok((new, Upsert::Updated));
    }
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO content_assets (external_id, title, url, kind, persona, stage, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
    )
    .bind(&a.external_id)
    .bind(&a.title)
    .bind(&a.url)
    .bind(&a.kind)
    .bind(&a.persona)
    .bind(&a.stage)
    .bind(a.created_at.millis())
    .fetch_one(&mut *c)
    .await?;
    Ok((ContentAsset { id, ..a.clone() }, Upsert::Inserted))
}

/// The asset with this external id, or `#ID`.
pub async fn find_asset(c: &mut AnyConnection, key: &str) -> Result<ContentAsset, StoreError> {
    let row = match key.strip_prefix('#').and_then(|n| n.parse::<i64>().ok()) {
        Some(id) => {
            let q = format!("SELECT {ASSET_COLS} FROM content_assets WHERE id = $1");
            sqlx::query(sqlx::AssertSqlSafe(q))
                .bind(id)
                .fetch_optional(c)
                .await?
        }
        None => {
            let q = format!("SELECT {ASSET_COLS} FROM content_assets WHERE external_id = $1");
            sqlx::query(sqlx::AssertSqlSafe(q))
                .bind(key)
                .fetch_optional(c)
                .await?
        }
    };
    match row {
        Some(r) => asset_row(&r),
        None => Err(StoreError::not_found(format!("content asset {key}"))),
    }
}

/// Every asset by external id.
pub async fn assets(c: &mut AnyConnection) -> Result<Vec<ContentAsset>, StoreError> {
    let q = format!("SELECT {ASSET_COLS} FROM content_assets ORDER BY external_id");
    sqlx::query(sqlx::AssertSqlSafe(q))
        .fetch_all(c)
        .await?
        .iter()
        .map(asset_row)
        .collect()
}

/// Logs one use of an asset.
pub async fn record_use(
    c: &mut AnyConnection,
    asset_id: i64,
    person_id: Option<i64>,
    used_by: &str,
    at: Timestamp,
) -> Result<ContentUse, StoreError> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO content_usage (asset_id, person_id, used_by, at) VALUES ($1, $2, $3, $4) RETURNING id",
    )
    .bind(asset_id)
    .bind(person_id)
    .bind(used_by)
    .bind(at.millis())
    .fetch_one(c)
    .await?;
    Ok(ContentUse {
        id,
        asset_id,
        person_id,
        used_by: used_by.to_string(),
        at,
    })
}

/// Every use of every asset, in time order.
pub async fn content_uses(c: &mut AnyConnection) -> Result<Vec<ContentUse>, StoreError> {
    sqlx::query("SELECT id, asset_id, person_id, used_by, at FROM content_usage ORDER BY at, id")
        .fetch_all(c)
        .await?
        .iter()
        .map(|r| {
            Ok(ContentUse {
                id: r.try_get("id")?,
                asset_id: r.try_get("asset_id")?,
                person_id: r.try_get("person_id")?,
                used_by: r.try_get("used_by")?,
                at: Timestamp::from_millis(r.try_get("at")?),
            })
        })
        .collect()
}
