//! Target-account lists and the account lifecycle: the I/O shell around
//! `tandem_core::accounts`.
//!
//! `account_targets` holds one row per account on the list (tier, owner
//! pair); `accounts.target` and `accounts.tier` mirror it so CEL criteria
//! and grouping by tier keep reading the account row. Account stages are
//! appended to `transitions` with `subject_kind = 'account'`.

use std::collections::BTreeMap;

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use tandem_core::accounts::lifecycle::{self, AccountFacts};
use tandem_core::domain::{Account, Activity, Deal, Person, Subject, Transition};
use tandem_core::playbook::Playbook;
use tandem_core::Timestamp;

use crate::repo::{self, Upsert};
use crate::StoreError;

/// An account on the target list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Target {
    pub account_id: i64,
    /// The account's external id.
    pub external_id: String,
    /// 1, 2 or 3.
    pub tier: i64,
    /// The marketer who owns the account together with the seller.
    pub marketer: Option<String>,
    /// The seller who owns it.
    pub seller: Option<String>,
    pub added_at: Timestamp,
    pub added_by: String,
}

/// What to put on the list (tier already checked by
/// [`tandem_core::accounts::tiers::check_tier`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewTarget<'a> {
    pub tier: i64,
    pub marketer: Option<&'a str>,
    pub seller: Option<&'a str>,
    pub at: Timestamp,
    pub actor: &'a str,
}

const TARGET_COLS: &str =
    "t.account_id, a.external_id, t.tier, t.marketer, t.seller, t.added_at, t.added_by";

fn target_row(r: &AnyRow) -> Result<Target, StoreError> {
    Ok(Target {
        account_id: r.try_get("account_id")?,
        external_id: r.try_get("external_id")?,
        tier: r.try_get("tier")?,
        marketer: r.try_get("marketer")?,
        seller: r.try_get("seller")?,
        added_at: Timestamp::from_millis(r.try_get("added_at")?),
        added_by: r.try_get("added_by")?,
    })
}

/// The account with this external id, or a not-found error naming it.
pub async fn find_account(c: &mut AnyConnection, ext: &str) -> Result<Account, StoreError> {
    repo::account_by_external(c, ext)
        .await?
        .ok_or_else(|| StoreError::not_found(format!("account `{ext}`")))
}

/// Every account on the list, by tier then external id.
pub async fn targets(c: &mut AnyConnection) -> Result<Vec<Target>, StoreError> {
    let q = format!(
        "SELECT {TARGET_COLS} FROM account_targets t JOIN accounts a ON a.id = t.account_id ORDER BY t.tier, a.external_id"
    );
    sqlx::query(sqlx::AssertSqlSafe(q))
        .fetch_all(c)
        .await?
        .iter()
        .map(target_row)
        .collect()
}

/// The list entry of one account, if it is on the list.
pub async fn target(c: &mut AnyConnection, account_id: i64) -> Result<Option<Target>, StoreError> {
    let q = format!(
        "SELECT {TARGET_COLS} FROM account_targets t JOIN accounts a ON a.id = t.account_id WHERE t.account_id = $1"
    );
    sqlx::query(sqlx::AssertSqlSafe(q))
        .bind(account_id)
        .fetch_optional(c)
        .await?
        .map(|r| target_row(&r))
        .transpose()
}

/// Puts an account on the list or changes its tier and owners. Keeps the
/// first `added_at`/`added_by` when it was already on the list; unchanged
/// when tier and owners are the same.
pub async fn set_target(
    c: &mut AnyConnection,
    account_id: i64,
    t: &NewTarget<'_>,
) -> Result<Upsert, StoreError> {
    let old = target(c, account_id).await?;
    let result = match &old {
        Some(o)
            if o.tier == t.tier
                && o.marketer.as_deref() == t.marketer
                && o.seller.as_deref() == t.seller =>
        {
            return Ok(Upsert::Unchanged)
        }
        Some(_) => {
            sqlx::query(
                "UPDATE account_targets SET tier = $1, marketer = $2, seller = $3 WHERE account_id = $4",
            )
            .bind(t.tier)
            .bind(t.marketer)
            .bind(t.seller)
            .bind(account_id)
            .execute(&mut *c)
            .await?;
            Upsert::Updated
        }
        None => {
            sqlx::query(
                "INSERT INTO account_targets (account_id, tier, marketer, seller, added_at, added_by) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(account_id)
            .bind(t.tier)
            .bind(t.marketer)
            .bind(t.seller)
            .bind(t.at.millis())
            .bind(t.actor)
            .execute(&mut *c)
            .await?;
            Upsert::Inserted
        }
    };
    sqlx::query("UPDATE accounts SET target = 1, tier = $1 WHERE id = $2")
        .bind(t.tier)
        .bind(account_id)
        .execute(&mut *c)
        .await?;
    Ok(result)
}

/// Takes an account off the list; false when it was not on it.
pub async fn remove_target(c: &mut AnyConnection, account_id: i64) -> Result<bool, StoreError> {
    let n = sqlx::query("DELETE FROM account_targets WHERE account_id = $1")
        .bind(account_id)
        .execute(&mut *c)
        .await?
        .rows_affected();
    sqlx::query("UPDATE accounts SET target = 0, tier = NULL WHERE id = $1")
        .bind(account_id)
        .execute(&mut *c)
        .await?;
    Ok(n > 0)
}

/// What the account views read, loaded at once.
#[derive(Clone, Debug, Default)]
pub struct AccountBook {
    pub accounts: Vec<Account>,
    pub targets: BTreeMap<i64, Target>,
    /// People by account id.
    pub people: BTreeMap<i64, Vec<Person>>,
    /// Transitions of people, by person id.
    pub people_transitions: BTreeMap<i64, Vec<Transition>>,
    /// Activities with people, by person id.
    pub activities: BTreeMap<i64, Vec<Activity>>,
    /// Deals by account id (deals without one are left out).
    pub deals: BTreeMap<i64, Vec<Deal>>,
    /// Account transitions by account id.
    pub transitions: BTreeMap<i64, Vec<Transition>>,
}

impl AccountBook {
    /// Loads accounts, targets, people, their transitions and activities,
    /// deals and account transitions.
    pub async fn load(c: &mut AnyConnection) -> Result<AccountBook, StoreError> {
        let mut b = AccountBook {
            accounts: repo::accounts(c).await?,
            ..AccountBook::default()
        };
        for t in targets(c).await? {
            b.targets.insert(t.account_id, t);
        }
        for p in repo::people(c).await? {
            if let Some(a) = p.account_id {
                b.people.entry(a).or_default().push(p);
            }
        }
        for t in repo::transitions_of_kind(c, "person").await? {
            b.people_transitions
                .entry(t.subject.id())
                .or_default()
                .push(t);
        }
        for a in repo::activities(c).await? {
            b.activities.entry(a.person_id).or_default().push(a);
        }
        for d in repo::deals(c).await? {
            if let Some(a) = d.account_id {
                b.deals.entry(a).or_default().push(d);
            }
        }
        for t in repo::transitions_of_kind(c, "account").await? {
            b.transitions.entry(t.subject.id()).or_default().push(t);
        }
        Ok(b)
    }

    /// The people of an account.
    pub fn people_of(&self, account_id: i64) -> &[Person] {
        self.people
            .get(&account_id)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// Transitions and activities of an account's people, flattened.
    pub fn people_history(&self, account_id: i64) -> (Vec<Transition>, Vec<Activity>) {
        let mut ts = Vec::new();
        let mut acts = Vec::new();
        for p in self.people_of(account_id) {
            ts.extend(
                self.people_transitions
                    .get(&p.id)
                    .into_iter()
                    .flatten()
                    .cloned(),
            );
            acts.extend(self.activities.get(&p.id).into_iter().flatten().cloned());
        }
        (ts, acts)
    }

    /// The account's deals.
    pub fn deals_of(&self, account_id: i64) -> &[Deal] {
        self.deals
            .get(&account_id)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// The account's stored transitions.
    pub fn transitions_of(&self, account_id: i64) -> &[Transition] {
        self.transitions
            .get(&account_id)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }
}

/// Brings every account's lifecycle up to date as of `until`: asks core for
/// the moves each account needs and appends them. Returns how many
/// transitions were appended. Running it again appends nothing.
pub async fn sync(
    c: &mut AnyConnection,
    pb: &Playbook,
    until: Timestamp,
) -> Result<usize, StoreError> {
    let book = AccountBook::load(c).await?;
    let mut n = 0;
    for a in &book.accounts {
        let (pts, acts) = book.people_history(a.id);
        let facts = AccountFacts {
            targeted_at: book.targets.get(&a.id).map(|t| t.added_at),
            people_transitions: &pts,
            activities: &acts,
            deals: book.deals_of(a.id),
        };
        let moves = lifecycle::advance(pb, &facts, book.transitions_of(a.id), until);
        if !moves.is_empty() {
            n += repo::append(c, Subject::Account(a.id), &moves).await?.len();
        }
    }
    Ok(n)
}
