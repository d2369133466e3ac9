//! Feedback both ways between the teams (DESIGN §2, §7): an item is a
//! success, obstacle, lead-quality note, content request or idea from one
//! team, optionally about a person, account, deal or campaign (by external
//! id), with a status and a thread of comments.
//!
//! The weekly report reads items by kind, team and creation time with
//! [`list`]; the API and the CLI create them with [`create`], move them with
//! [`set_status`] and discuss them with [`add_comment`].

use std::fmt;

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use tandem_core::Timestamp;

use crate::StoreError;

macro_rules! words {
    ($(#[$doc:meta])* $name:ident { $($v:ident = $s:literal),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($v),* }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$v),*];

            /// The snake_case name used in the database and the API.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$v => $s),* }
            }

            /// Parses the snake_case name.
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($s => Some($name::$v),)* _ => None }
            }

            /// The accepted names, comma-separated, for error messages.
            pub fn names() -> String {
                [$($s),*].join(", ")
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

words!(
    /// What an item is.
    Kind {
        Success = "success",
        Obstacle = "obstacle",
        LeadQuality = "lead_quality",
        ContentRequest = "content_request",
        Idea = "idea",
    }
);

words!(
    /// The team an item comes from.
    Team {
        Marketing = "marketing",
        Sales = "sales",
    }
);

words!(
    /// Where an item stands; `done` and `declined` close it.
    Status {
        Open = "open",
        InProgress = "in_progress",
        Done = "done",
        Declined = "declined",
    }
);

/// External ids of what an item is about.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Links {
    pub person: Option<String>,
    pub account: Option<String>,
    pub deal: Option<String>,
    pub campaign: Option<String>,
}

/// A new item, as its author writes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewItem {
    pub kind: Kind,
    pub title: String,
    pub body: String,
    pub author: String,
    pub team: Team,
    pub links: Links,
}

/// A stored item.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Item {
    pub id: i64,
    pub kind: Kind,
    pub title: String,
    pub body: String,
    pub author: String,
    pub team: Team,
    pub links: Links,
    pub status: Status,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// One comment on an item.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Comment {
    pub id: i64,
    pub item_id: i64,
    pub author: String,
    pub body: String,
    pub created_at: Timestamp,
}

/// Filters of [`list`]; `None` is no filter. Times filter on `created_at`,
/// `[since, until)`.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub kind: Option<Kind>,
    pub status: Option<Status>,
    pub team: Option<Team>,
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
}

const COLS: &str = "id, kind, title, body, author, team, person_ref, account_ref, deal_ref, campaign_ref, status, created_at, updated_at";

fn word<T>(r: &AnyRow, col: &str, parse: fn(&str) -> Option<T>) -> Result<T, StoreError> {
    let s: String = r.try_get(col)?;
    parse(&s).ok_or_else(|| StoreError::Corrupt(format!("feedback {col} {s:?}")))
}

fn item_row(r: &AnyRow) -> Result<Item, StoreError> {
    Ok(Item {
        id: r.try_get("id")?,
        kind: word(r, "kind", Kind::parse)?,
        title: r.try_get("title")?,
        body: r.try_get("body")?,
        author: r.try_get("author")?,
        team: word(r, "team", Team::parse)?,
        links: Links {
            person: r.try_get("person_ref")?,
            account: r.try_get("account_ref")?,
            deal: r.try_get("deal_ref")?,
            campaign: r.try_get("campaign_ref")?,
        },
        status: word(r, "status", Status::parse)?,
        created_at: Timestamp::from_millis(r.try_get("created_at")?),
        updated_at: Timestamp::from_millis(r.try_get("updated_at")?),
    })
}

/// Stores a new item, `open`, created and updated at `now`.
pub async fn create(
    c: &mut AnyConnection,
    n: &NewItem,
    now: Timestamp,
) -> Result<Item, StoreError> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO feedback (kind, title, body, author, team, person_ref, account_ref, deal_ref, campaign_ref, status, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id",
    )
    .bind(n.kind.as_str())
    .bind(&n.title)
    .bind(&n.body)
    .bind(&n.author)
    .bind(n.team.as_str())
    .bind(&n.links.person)
    .bind(&n.links.account)
    .bind(&n.links.deal)
    .bind(&n.links.campaign)
    .bind(Status::Open.as_str())
    .bind(now.millis())
    .bind(now.millis())
    .fetch_one(&mut *c)
    .await?;
    Ok(Item {
        id,
        kind: n.kind,
        title: n.title.clone(),
        body: n.body.clone(),
        author: n.author.clone(),
        team: n.team,
        links: n.links.clone(),
        status: Status::Open,
        created_at: now,
        updated_at: now,
    })
}

/// The item with this id.
pub async fn get(c: &mut AnyConnection, id: i64) -> Result<Option<Item>, StoreError> {
    let q = format!("SELECT {COLS} FROM feedback WHERE id = $1");
    sqlx::query(sqlx::AssertSqlSafe(q))
        .bind(id)
        .fetch_optional(c)
        .await?
        .map(|r| item_row(&r))
        .transpose()
}

/// Items with id greater than `after`, by id, at most `limit`.
pub async fn list(
    c: &mut AnyConnection,
    f: &Filter,
    after: i64,
    limit: i64,
) -> Result<Vec<Item>, StoreError> {
    // Constant fragments only; values are bound in the same order.
    let mut conds = vec!["id > $1".to_string()];
    let mut texts: Vec<&'static str> = Vec::new();
    let mut ints: Vec<i64> = Vec::new();
    for (col, v) in [
        ("kind", f.kind.map(Kind::as_str)),
        ("status", f.status.map(Status::as_str)),
        ("team", f.team.map(Team::as_str)),
    ] {
        if let Some(v) = v {
            texts.push(v);
            conds.push(format!("{col} = ${}", 1 + texts.len()));
        }
    }
    for (op, v) in [(">=", f.since), ("<", f.until)] {
        if let Some(t) = v {
            ints.push(t.millis());
            conds.push(format!("created_at {op} ${}", 1 + texts.len() + ints.len()));
        }
    }
    let q = format!(
        "SELECT {COLS} FROM feedback WHERE {} ORDER BY id LIMIT ${}",
        conds.join(" AND "),
        2 + texts.len() + ints.len()
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(q)).bind(after);
    for t in texts {
        query = query.bind(t);
    }
    for i in ints {
        query = query.bind(i);
    }
    query
        .bind(limit)
        .fetch_all(c)
        .await?
        .iter()
        .map(item_row)
        .collect()
}

/// Moves an item to `status` (any status to any other: a declined request
/// can be reopened) and returns it; `NotFound` for an unknown id.
pub async fn set_status(
    c: &mut AnyConnection,
    id: i64,
    status: Status,
    now: Timestamp,
) -> Result<Item, StoreError> {
    let n = sqlx::query("UPDATE feedback SET status = $1, updated_at = $2 WHERE id = $3")
        .bind(status.as_str())
        .bind(now.millis())
        .bind(id)
        .execute(&mut *c)
        .await?
        .rows_affected();
    if n == 0 {
        return Err(StoreError::not_found(format!("feedback item #{id}")));
    }
    get(c, id)
        .await?
        .ok_or_else(|| StoreError::not_found(format!("feedback item #{id}")))
}

/// Adds a comment to an item and touches its `updated_at`; `NotFound` for
/// an unknown item.
pub async fn add_comment(
    c: &mut AnyConnection,
    item_id: i64,
    author: &str,
    body: &str,
    now: Timestamp,
) -> Result<Comment, StoreError> {
    let n = sqlx::query("UPDATE feedback SET updated_at = $1 WHERE id = $2")
        .bind(now.millis())
        .bind(item_id)
        .execute(&mut *c)
        .await?
        .rows_affected();
    if n == 0 {
        return Err(StoreError::not_found(format!("feedback item #{item_id}")));
    }
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO feedback_comments (item_id, author, body, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
    )
    .bind(item_id)
    .bind(author)
    .bind(body)
    .bind(now.millis())
    .fetch_one(c)
    .await?;
    Ok(Comment {
        id,
        item_id,
        author: author.to_string(),
        body: body.to_string(),
        created_at: now,
    })
}

/// The comments of an item, oldest first.
pub async fn comments(c: &mut AnyConnection, item_id: i64) -> Result<Vec<Comment>, StoreError> {
    sqlx::query(
        "SELECT id, item_id, author, body, created_at FROM feedback_comments WHERE item_id = $1 ORDER BY id",
    )
    .bind(item_id)
    .fetch_all(c)
    .await?
    .iter()
    .map(|r| {
        Ok(Comment {
            id: r.try_get("id")?,
            item_id: r.try_get("item_id")?,
            author: r.try_get("author")?,
            body: r.try_get("body")?,
            created_at: Timestamp::from_millis(r.try_get("created_at")?),
        })
    })
    .collect()
}
