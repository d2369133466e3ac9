//! Pages of records with filters, for list endpoints: rows by id after a
//! cursor, at most `limit`, narrowed by equality and time-range filters.
//! Touches, activities and deals come with the external ids of the person
//! and account they belong to, so callers never see store ids alone.
//!
//! Filter SQL is assembled from constant column names; every value is a
//! bound parameter.

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use tandem_core::domain::{Account, Activity, Campaign, Deal, Touch};
use tandem_core::Timestamp;

use crate::repo::{
    account_row, activity_row, campaign_row, deal_row, touch_row, ACCOUNT_COLS, ACTIVITY_COLS,
    CAMPAIGN_COLS, DEAL_COLS, TOUCH_COLS,
};
use crate::StoreError;

/// A record with the external ids of what it refers to.
#[derive(Clone, Debug, PartialEq)]
pub struct Linked<T> {
    pub record: T,
    /// External id of the person (touches, activities, deals).
    pub person: Option<String>,
    /// External id of the account (deals).
    pub account: Option<String>,
}

enum Bind {
    Int(i64),
    Text(String),
}

/// A WHERE clause of constant fragments and bound values.
#[derive(Default)]
struct Where {
    conds: Vec<String>,
    binds: Vec<Bind>,
}

impl Where {
    fn push(&mut self, col: &'static str, op: &'static str, b: Bind) {
        self.binds.push(b);
        self.conds.push(format!("{col} {op} ${}", self.binds.len()));
    }
    fn text(&mut self, col: &'static str, v: &Option<String>) -> &mut Self {
        if let Some(v) = v {
            self.push(col, "=", Bind::Text(v.clone()));
        }
        self
    }
    fn int(&mut self, col: &'static str, op: &'static str, v: Option<i64>) -> &mut Self {
        if let Some(v) = v {
            self.push(col, op, Bind::Int(v));
        }
        self
    }
    /// `since <= col < until`.
    fn range(
        &mut self,
        col: &'static str,
        since: Option<Timestamp>,
        until: Option<Timestamp>,
    ) -> &mut Self {
        self.int(col, ">=", since.map(Timestamp::millis)).int(
            col,
            "<",
            until.map(Timestamp::millis),
        )
    }
}

/// Runs `SELECT {select} FROM {table} WHERE … AND id > after ORDER BY id LIMIT limit`.
async fn fetch<T>(
    c: &mut AnyConnection,
    select: String,
    table: &'static str,
    mut w: Where,
    after: i64,
    limit: i64,
    row: impl Fn(&AnyRow) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    w.int("id", ">", Some(after));
    let n = w.binds.len() + 1;
    let q = format!(
        "SELECT {select} FROM {table} WHERE {} ORDER BY id LIMIT ${n}",
        w.conds.join(" AND ")
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(q));
    for b in w.binds {
        query = match b {
            Bind::Int(i) => query.bind(i),
            Bind::Text(s) => query.bind(s),
        };
    }
    query
        .bind(limit)
        .fetch_all(c)
        .await?
        .iter()
        .map(row)
        .collect()
}

const PERSON_REF: &str =
    "(SELECT p.external_id FROM people p WHERE p.id = person_id) AS person_ref";
const ACCOUNT_REF: &str =
    "(SELECT a.external_id FROM accounts a WHERE a.id = account_id) AS account_ref";

fn linked<T>(r: &AnyRow, record: T, account: bool) -> Result<Linked<T>, StoreError> {
    Ok(Linked {
        record,
        person: r.try_get("person_ref")?,
        account: if account {
            r.try_get("account_ref")?
        } else {
            None
        },
    })
}

/// Filters of [`accounts`]; `None` is no filter.
#[derive(Clone, Debug, Default)]
pub struct AccountFilter {
    pub external_id: Option<String>,
    pub segment: Option<String>,
    pub industry: Option<String>,
    pub owner: Option<String>,
    pub target: Option<bool>,
    pub tier: Option<i64>,
}

/// Accounts with id greater than `after`, by id, at most `limit`.
pub async fn accounts(
    c: &mut AnyConnection,
    f: &AccountFilter,
    after: i64,
    limit: i64,
) -> Result<Vec<Account>, StoreError> {
    let mut w = Where::default();
    w.text("external_id", &f.external_id)
        .text("segment", &f.segment)
        .text("industry", &f.industry)
        .text("owner", &f.owner)
        .int("target", "=", f.target.map(i64::from))
        .int("tier", "=", f.tier);
    fetch(
        c,
        ACCOUNT_COLS.to_string(),
        "accounts",
        w,
        after,
        limit,
        account_row,
    )
    .await
}

/// Filters of [`touches`]; times filter on `at`, `[since, until)`.
#[derive(Clone, Debug, Default)]
pub struct TouchFilter {
    pub external_id: Option<String>,
    pub person_id: Option<i64>,
    pub kind: Option<String>,
    pub channel: Option<String>,
    pub campaign: Option<String>,
    pub source: Option<String>,
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
}

/// Touches with id greater than `after`, by id, at most `limit`.
pub async fn touches(
    c: &mut AnyConnection,
    f: &TouchFilter,
    after: i64,
    limit: i64,
) -> Result<Vec<Linked<Touch>>, StoreError> {
    let mut w = Where::default();
    w.text("external_id", &f.external_id)
        .int("person_id", "=", f.person_id)
        .text("kind", &f.kind)
        .text("channel", &f.channel)
        .text("campaign", &f.campaign)
        .text("source", &f.source)
        .range("at", f.since, f.until);
    let select = format!("{TOUCH_COLS}, {PERSON_REF}");
    fetch(c, select, "touches", w, after, limit, |r| {
        linked(r, touch_row(r)?, false)
    })
    .await
}

/// Filters of [`activities`]; times filter on `at`, `[since, until)`.
#[derive(Clone, Debug, Default)]
pub struct ActivityFilter {
    pub external_id: Option<String>,
    pub person_id: Option<i64>,
    pub kind: Option<String>,
    pub actor: Option<String>,
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
}

/// Activities with id greater than `after`, by id, at most `limit`.
pub async fn activities(
    c: &mut AnyConnection,
    f: &ActivityFilter,
    after: i64,
    limit: i64,
) -> Result<Vec<Linked<Activity>>, StoreError> {
    let mut w = Where::default();
    w.text("external_id", &f.external_id)
        .int("person_id", "=", f.person_id)
        .text("kind", &f.kind)
        .text("actor", &f.actor)
        .range("at", f.since, f.until);
    let select = format!("{ACTIVITY_COLS}, {PERSON_REF}");
    fetch(c, select, "activities", w, after, limit, |r| {
        linked(r, activity_row(r)?, false)
    })
    .await
}

/// Filters of [`deals`]; times filter on `created_at`, `[since, until)`.
#[derive(Clone, Debug, Default)]
pub struct DealFilter {
    pub external_id: Option<String>,
    pub person_id: Option<i64>,
    pub account_id: Option<i64>,
    pub status: Option<String>,
    pub owner: Option<String>,
    pub kind: Option<String>,
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
}

/// Deals with id greater than `after`, by id, at most `limit`.
pub async fn deals(
    c: &mut AnyConnection,
    f: &DealFilter,
    after: i64,
    limit: i64,
) -> Result<Vec<Linked<Deal>>, StoreError> {
    let mut w = Where::default();
    w.text("external_id", &f.external_id)
        .int("person_id", "=", f.person_id)
        .int("account_id", "=", f.account_id)
        .text("status", &f.status)
        .text("owner", &f.owner)
        .text("kind", &f.kind)
        .range("created_at", f.since, f.until);
    let select = format!("{DEAL_COLS}, {PERSON_REF}, {ACCOUNT_REF}");
    fetch(c, select, "deals", w, after, limit, |r| {
        linked(r, deal_row(r)?, true)
    })
    .await
}

/// Filters of [`campaigns`]; times filter on `starts_at`, `[since, until)`.
#[derive(Clone, Debug, Default)]
pub struct CampaignFilter {
    pub external_id: Option<String>,
    pub channel: Option<String>,
    pub owner: Option<String>,
    pub segment: Option<String>,
    pub persona: Option<String>,
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
}

/// Campaigns with id greater than `after`, by id, at most `limit`.
pub async fn campaigns(
    c: &mut AnyConnection,
    f: &CampaignFilter,
    after: i64,
    limit: i64,
) -> Result<Vec<Campaign>, StoreError> {
    let mut w = Where::default();
    w.text("external_id", &f.external_id)
        .text("channel", &f.channel)
        .text("owner", &f.owner)
        .text("segment", &f.segment)
        .text("persona", &f.persona)
        .range("starts_at", f.since, f.until);
    fetch(
        c,
        CAMPAIGN_COLS.to_string(),
        "campaigns",
        w,
        after,
        limit,
        campaign_row,
    )
    .await
}
