//! Reads and writes of each record kind. Every function takes a connection,
//! so it runs the same inside a transaction or on a pooled connection.
//!
//! Upserts are keyed by `external_id` and report whether they inserted,
//! changed or left a row alone: re-importing the same data changes nothing.

use serde_json::Value;
use sqlx::{AnyConnection, Row};
use tandem_core::activities::Activities;
use tandem_core::domain::{
    Account, Activity, ActivityKind, Campaign, CustomFields, Deal, DealStatus, Note, Person,
    PersonTexts, Subject, Touch, Transition,
};
use tandem_core::lifecycle::Move;
use tandem_core::touches::Touches;
use tandem_core::transitions::Transitions;
use tandem_core::{Currency, Minor, Money, Timestamp};

use crate::bind::{bind_all, AnyQuery, Table, Val};
use crate::rows::{Cols, ReadRow};
use crate::StoreError;

/// What an upsert did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Upsert {
    Inserted,
    Updated,
    Unchanged,
}

fn custom_to_text(c: &CustomFields) -> String {
    Value::Object(c.clone()).to_string()
}

fn custom_from_text(s: &str) -> Result<CustomFields, StoreError> {
    // Most rows have none: no parser for them (a million people).
    if s == "{}" {
        return Ok(CustomFields::new());
    }
    match serde_json::from_str::<Value>(s) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(StoreError::Corrupt(format!(
            "custom fields are not a JSON object: {s}"
        ))),
    }
}

fn ts(v: i64) -> Timestamp {
    Timestamp::from_millis(v)
}

// ---------------------------------------------------------------- accounts

pub(crate) const ACCOUNT_COLS: &str =
    "id, external_id, name, domain, industry, employees, annual_revenue, segment, target, tier, owner, custom";

/// Reads a row of [`ACCOUNT_COLS`].
pub(crate) fn account_row(r: &impl ReadRow) -> Result<Account, StoreError> {
    let mut c = Cols::new(r);
    Ok(Account {
        id: c.int("id")?,
        external_id: c.text("external_id")?,
        name: c.opt_text("name")?,
        domain: c.opt_text("domain")?,
        industry: c.opt_sym("industry")?,
        employees: c.opt_int("employees")?,
        annual_revenue: c.opt_int("annual_revenue")?,
        segment: c.opt_sym("segment")?,
        target: c.flag("target")?,
        tier: c.opt_int("tier")?,
        owner: c.opt_sym("owner")?,
        custom: custom_from_text(&c.str("custom")?)?.into(),
    })
}

/// The account with this external id.
pub async fn account_by_external(
    c: &mut AnyConnection,
    ext: &str,
) -> Result<Option<Account>, StoreError> {
    let q = format!("SELECT {ACCOUNT_COLS} FROM accounts WHERE external_id = $1");
    sqlx::query(sqlx::AssertSqlSafe(q))
        .bind(ext)
        .fetch_optional(c)
        .await?
        .map(|r| account_row(&r))
        .transpose()
}

/// The account with this id.
pub async fn account(c: &mut AnyConnection, id: i64) -> Result<Option<Account>, StoreError> {
    let q = format!("SELECT {ACCOUNT_COLS} FROM accounts WHERE id = $1");
    sqlx::query(sqlx::AssertSqlSafe(q))
        .bind(id)
        .fetch_optional(c)
        .await?
        .map(|r| account_row(&r))
        .transpose()
}

/// All accounts by id.
pub async fn accounts(c: &mut AnyConnection) -> Result<Vec<Account>, StoreError> {
    let q = format!("SELECT {ACCOUNT_COLS} FROM accounts ORDER BY id");
    sqlx::query(sqlx::AssertSqlSafe(q))
        .fetch_all(c)
        .await?
        .iter()
        .map(account_row)
        .collect()
}

/// Inserts or updates an account by external id. `a.id` is ignored.
pub async fn upsert_account(
    c: &mut AnyConnection,
    a: &Account,
) -> Result<(i64, Upsert), StoreError> {
    if let Some(old) = account_by_external(c, &a.external_id).await? {
        let same = Account {
            id: old.id,
            ..a.clone()
        } == old;
        if same {
            return Ok((old.id, Upsert::Unchanged));
        }
        sqlx::query(
            "UPDATE accounts SET name = $1, domain = $2, industry = $3, employees = $4, annual_revenue = $5, \
             segment = $6, target = $7, tier = $8, owner = $9, custom = $10 WHERE id = $11",
        )
        .bind(&a.name)
        .bind(&a.domain)
        .bind(a.industry.as_deref())
        .bind(a.employees)
        .bind(a.annual_revenue)
        .bind(a.segment.as_deref())
        .bind(i64::from(a.target))
        .bind(a.tier)
        .bind(a.owner.as_deref())
        .bind(custom_to_text(&a.custom))
        .bind(old.id)
        .execute(c)
        .await?;
        return Ok((old.id, Upsert::Updated));
    }
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO accounts (external_id, name, domain, industry, employees, annual_revenue, segment, target, tier, owner, custom) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
    )
    .bind(&a.external_id)
    .bind(&a.name)
    .bind(&a.domain)
    .bind(a.industry.as_deref())
    .bind(a.employees)
    .bind(a.annual_revenue)
    .bind(a.segment.as_deref())
    .bind(i64::from(a.target))
    .bind(a.tier)
    .bind(a.owner.as_deref())
    .bind(custom_to_text(&a.custom))
    .fetch_one(c)
    .await?;
    Ok((id, Upsert::Inserted))
}

// ------------------------------------------------------------------ people

pub(crate) const PERSON_COLS: &str = "id, external_id, email, first_name, last_name, title, account_id, persona, segment, country, source, owner, created_at, custom";

/// Reads a row of [`PERSON_COLS`].
pub(crate) fn person_row(r: &impl ReadRow) -> Result<Person, StoreError> {
    let mut c = Cols::new(r);
    Ok(Person {
        id: c.int("id")?,
        texts: PersonTexts::new(
            &c.text("external_id")?,
            c.opt_text("email")?.as_deref(),
            c.opt_text("first_name")?.as_deref(),
            c.opt_text("last_name")?.as_deref(),
        ),
        title: c.opt_sym("title")?,
        account_id: c.opt_int("account_id")?,
        persona: c.opt_sym("persona")?,
        segment: c.opt_sym("segment")?,
        country: c.opt_sym("country")?,
        source: c.opt_sym("source")?,
        owner: c.opt_sym("owner")?,
        created_at: ts(c.int("created_at")?),
        custom: custom_from_text(&c.str("custom")?)?.into(),
    })
}

/// The person with this external id.
pub async fn person_by_external(
    c: &mut AnyConnection,
    ext: &str,
) -> Result<Option<Person>, StoreError> {
    let q = format!("SELECT {PERSON_COLS} FROM people WHERE external_id = $1");
    sqlx::query(sqlx::AssertSqlSafe(q))
        .bind(ext)
        .fetch_optional(c)
        .await?
        .map(|r| person_row(&r))
        .transpose()
}

/// The person with this id.
pub async fn person(c: &mut AnyConnection, id: i64) -> Result<Option<Person>, StoreError> {
    let q = format!("SELECT {PERSON_COLS} FROM people WHERE id = $1");
    sqlx::query(sqlx::AssertSqlSafe(q))
        .bind(id)
        .fetch_optional(c)
        .await?
        .map(|r| person_row(&r))
        .transpose()
}

/// Finds a person by external id, or by store id when `key` is `#123`.
pub async fn find_person(c: &mut AnyConnection, key: &str) -> Result<Person, StoreError> {
    let found = match key.strip_prefix('#').and_then(|n| n.parse::<i64>().ok()) {
        Some(id) => person(c, id).await?,
        None => person_by_external(c, key).await?,
    };
    found.ok_or_else(|| StoreError::not_found(format!("person `{key}`")))
}

/// All people by id.
pub async fn people(c: &mut AnyConnection) -> Result<Vec<Person>, StoreError> {
    let q = format!("SELECT {PERSON_COLS} FROM people ORDER BY id");
    sqlx::query(sqlx::AssertSqlSafe(q))
        .fetch_all(c)
        .await?
        .iter()
        .map(person_row)
        .collect()
}

/// Locks a person's row until the transaction ends, so lifecycle decisions
/// for one person are serialized across connections and processes. On
/// PostgreSQL this is `FOR NO KEY UPDATE` (it does not block inserts of
/// touches that merely reference the person); SQLite needs nothing, as
/// `Store::begin` already holds the database write lock.
pub async fn lock_person(c: &mut AnyConnection, id: i64) -> Result<(), StoreError> {
    if c.backend_name().eq_ignore_ascii_case("postgresql") {
        sqlx::query("SELECT id FROM people WHERE id = $1 FOR NO KEY UPDATE")
            .bind(id)
            .fetch_optional(c)
            .await?;
    }
    Ok(())
}

/// [`lock_person`] for many people: one `FOR NO KEY UPDATE` per 500 ids
/// on PostgreSQL, taken in id order; nothing on SQLite.
pub async fn lock_people(c: &mut AnyConnection, ids: &[i64]) -> Result<(), StoreError> {
    if !c.backend_name().eq_ignore_ascii_case("postgresql") || ids.is_empty() {
        return Ok(());
    }
    let mut ids = ids.to_vec();
    ids.sort_unstable();
    ids.dedup();
    for chunk in ids.chunks(KEYS_PER_QUERY) {
        let marks: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT id FROM people WHERE id IN ({}) ORDER BY id FOR NO KEY UPDATE",
            marks.join(", ")
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for id in chunk {
            q = q.bind(*id);
        }
        q.fetch_all(&mut *c).await?;
    }
    Ok(())
}

/// People of one account by id.
pub async fn people_of_account(
    c: &mut AnyConnection,
    account_id: i64,
) -> Result<Vec<Person>, StoreError> {
    let q = format!("SELECT {PERSON_COLS} FROM people WHERE account_id = $1 ORDER BY id");
    sqlx::query(sqlx::AssertSqlSafe(q))
        .bind(account_id)
        .fetch_all(c)
        .await?
        .iter()
        .map(person_row)
        .collect()
}

/// Inserts or updates a person by external id. `p.id` is ignored.
pub async fn upsert_person(c: &mut AnyConnection, p: &Person) -> Result<(i64, Upsert), StoreError> {
    let old = person_by_external(c, p.external_id()).await?;
    upsert_person_over(c, p, old.as_ref()).await
}

/// [`upsert_person`] when the caller has just read the stored person with
/// `p`'s external id (`old`, or `None` if there is none) in the same
/// transaction: saves reading it again.
pub async fn upsert_person_over(
    c: &mut AnyConnection,
    p: &Person,
    old: Option<&Person>,
) -> Result<(i64, Upsert), StoreError> {
    if let Some(old) = old {
        if (Person {
            id: old.id,
            ..p.clone()
        }) == *old
        {
            return Ok((old.id, Upsert::Unchanged));
        }
        update_person(c, old.id, p).await?;
        return Ok((old.id, Upsert::Updated));
    }
    let q = sqlx::query(
        "INSERT INTO people (external_id, email, first_name, last_name, title, account_id, persona, segment, country, source, owner, created_at, custom) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING id",
    )
    .bind(p.external_id());
    let id: i64 = bind_facts(q, p).fetch_one(c).await?.try_get(0)?;
    Ok((id, Upsert::Inserted))
}

/// Overwrites the stored person `id` with `p`'s fields (all but the id and
/// external id).
pub async fn update_person(c: &mut AnyConnection, id: i64, p: &Person) -> Result<(), StoreError> {
    let q = sqlx::query(
        "UPDATE people SET email = $1, first_name = $2, last_name = $3, title = $4, account_id = $5, persona = $6, \
         segment = $7, country = $8, source = $9, owner = $10, created_at = $11, custom = $12 WHERE id = $13",
    );
    bind_facts(q, p).bind(id).execute(c).await?;
    Ok(())
}

/// External ids bound per `IN (…)` list when looking many people up.
const KEYS_PER_QUERY: usize = 500;

/// The stored people with any of these external ids, by external id: one
/// query per 500 ids instead of one per id (an import batch's lookup).
pub async fn people_by_external_many(
    c: &mut AnyConnection,
    exts: &[&str],
) -> Result<std::collections::HashMap<String, Person>, StoreError> {
    use futures_util::TryStreamExt;
    let mut out = std::collections::HashMap::with_capacity(exts.len());
    let anon = anonymous_params(c);
    for chunk in exts.chunks(KEYS_PER_QUERY) {
        let sql = format!(
            "SELECT {PERSON_COLS} FROM people WHERE external_id IN ({})",
            param_list(1, chunk.len(), anon)
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for e in chunk {
            q = q.bind(*e);
        }
        let mut rows = q.fetch(&mut *c);
        while let Some(r) = rows.try_next().await? {
            let p = person_row(&r)?;
            out.insert(p.external_id().to_string(), p);
        }
    }
    Ok(out)
}

const NEW_PEOPLE: &str = "INSERT INTO people (external_id, email, first_name, last_name, title, account_id, persona, segment, country, source, owner, created_at, custom)";

/// Inserts people that are not stored yet (distinct external ids, none in
/// the table), with multi-row statements, and returns their ids in the
/// order given. The store assigns the ids (`p.id` is ignored), so this is
/// safe inside any transaction, next to other writers. On PostgreSQL each
/// statement's `RETURNING` pairs every id with its external id. On SQLite
/// the write transaction holds the database lock and each row gets the
/// largest id plus one, so a statement's rows have the consecutive ids
/// ending at `last_insert_rowid`; `RETURNING` would instead cost a hand-over
/// from sqlx's database thread per row. The first and last row of each
/// statement are read back to check that.
pub async fn insert_new_people(
    c: &mut AnyConnection,
    people: &[&Person],
) -> Result<Vec<i64>, StoreError> {
    use futures_util::TryStreamExt;
    const COLS: usize = 13;
    let per = rows_per_statement(COLS);
    let anon = anonymous_params(c);
    let returning = if anon {
        ""
    } else {
        " RETURNING id, external_id"
    };
    let full = format!("{}{returning}", values_sql(NEW_PEOPLE, COLS, per, anon));
    let mut out = Vec::with_capacity(people.len());
    for chunk in people.chunks(per) {
        let sql = if chunk.len() == per {
            full.clone()
        } else {
            format!(
                "{}{returning}",
                values_sql(NEW_PEOPLE, COLS, chunk.len(), anon)
            )
        };
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for p in chunk {
            q = bind_facts(q.bind(p.external_id()), p);
        }
        if anon {
            out.extend(consecutive_ids(c, q, chunk).await?);
            continue;
        }
        let mut ids: std::collections::HashMap<String, i64> =
            std::collections::HashMap::with_capacity(chunk.len());
        let mut rows = q.fetch(&mut *c);
        while let Some(r) = rows.try_next().await? {
            ids.insert(r.try_get("external_id")?, r.try_get("id")?);
        }
        drop(rows);
        for p in chunk {
            let id = ids.get(p.external_id()).copied().ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "insert of person `{}` returned no id",
                    p.external_id()
                ))
            })?;
            out.push(id);
        }
    }
    Ok(out)
}

/// Runs a multi-row insert of `chunk` on SQLite and returns the ids its
/// rows got (see [`insert_new_people`]), after checking the first and the
/// last against their external ids.
async fn consecutive_ids(
    c: &mut AnyConnection,
    q: AnyQuery,
    chunk: &[&Person],
) -> Result<Vec<i64>, StoreError> {
    q.execute(&mut *c).await?;
    // sqlx's `Any` result carries no rowid for SQLite: ask for it, with
    // the first and last rows of the statement.
    let ends = sqlx::query(
        "SELECT id, external_id FROM people WHERE id IN (last_insert_rowid() - ?, last_insert_rowid()) ORDER BY id",
    )
    .bind(chunk.len() as i64 - 1)
    .fetch_all(&mut *c)
    .await?;
    let ends: Vec<(i64, String)> = ends
        .iter()
        .map(|r| Ok((r.try_get("id")?, r.try_get("external_id")?)))
        .collect::<Result<_, StoreError>>()?;
    let (Some(first), Some(last)) = (ends.first(), ends.last()) else {
        return Err(StoreError::Corrupt("people inserted but not found".into()));
    };
    let expected = [chunk.first(), chunk.last()].map(|p| p.map(|p| p.external_id()));
    if last.0 - first.0 + 1 != chunk.len() as i64
        || [Some(first.1.as_str()), Some(last.1.as_str())] != expected
    {
        return Err(StoreError::Corrupt(format!(
            "people inserted with ids {}..={} are not in the order given",
            first.0, last.0
        )));
    }
    Ok((first.0..=last.0).collect())
}

/// What a person reads back as after [`insert_new_people`] or an upsert:
/// custom fields go through their stored JSON text, so numbers compare
/// equal to a fresh read.
pub fn as_stored(mut p: Person) -> Result<Person, StoreError> {
    if !p.custom.is_empty() {
        p.custom = custom_from_text(&custom_to_text(&p.custom))?.into();
    }
    Ok(p)
}

// ----------------------------------------------------------------- touches

pub(crate) const TOUCH_COLS: &str =
    "id, external_id, person_id, at, kind, channel, campaign, source, medium, cost";

/// Reads a row of [`TOUCH_COLS`].
pub(crate) fn touch_row(r: &impl ReadRow) -> Result<Touch, StoreError> {
    let mut c = Cols::new(r);
    Ok(Touch {
        id: c.int("id")?,
        external_id: c.opt_text("external_id")?.map(String::into_boxed_str),
        person_id: c.int("person_id")?,
        at: ts(c.int("at")?),
        kind: c.sym("kind")?,
        channel: c.opt_sym("channel")?,
        campaign: c.opt_sym("campaign")?,
        source: c.opt_sym("source")?,
        medium: c.opt_sym("medium")?,
        cost: c.opt_int("cost")?.map(Minor::new),
    })
}

/// Touches of one person in time order.
pub async fn touches_of(c: &mut AnyConnection, person_id: i64) -> Result<Vec<Touch>, StoreError> {
    let q = format!("SELECT {TOUCH_COLS} FROM touches WHERE person_id = $1 ORDER BY at, id");
    sqlx::query(sqlx::AssertSqlSafe(q))
        .bind(person_id)
        .fetch_all(c)
        .await?
        .iter()
        .map(touch_row)
        .collect()
}

/// All touches in time order.
pub async fn touches(c: &mut AnyConnection) -> Result<Vec<Touch>, StoreError> {
    let q = format!("SELECT {TOUCH_COLS} FROM touches ORDER BY at, id");
    sqlx::query(sqlx::AssertSqlSafe(q))
        .fetch_all(c)
        .await?
        .iter()
        .map(touch_row)
        .collect()
}

/// Inserts a touch; with an external id already stored, updates it instead
/// (or leaves it when equal).
pub async fn upsert_touch(c: &mut AnyConnection, t: &Touch) -> Result<(i64, Upsert), StoreError> {
    if let Some(ext) = &t.external_id {
        let q = format!("SELECT {TOUCH_COLS} FROM touches WHERE external_id = $1");
        let old = sqlx::query(sqlx::AssertSqlSafe(q))
            .bind(&**ext)
            .fetch_optional(&mut *c)
            .await?
            .map(|r| touch_row(&r))
            .transpose()?;
        if let Some(old) = old {
            if (Touch {
                id: old.id,
                ..t.clone()
            }) == old
            {
                return Ok((old.id, Upsert::Unchanged));
            }
            let q = sqlx::query(
                "UPDATE touches SET person_id = $1, at = $2, kind = $3, channel = $4, campaign = $5, source = $6, medium = $7, cost = $8 WHERE id = $9",
            );
            bind_touch(q, t).bind(old.id).execute(c).await?;
            return Ok((old.id, Upsert::Updated));
        }
    }
    let id = insert_touch(c, t, false)
        .await?
        .ok_or_else(|| StoreError::Corrupt("a touch insert returned no id".into()))?;
    Ok((id, Upsert::Inserted))
}

/// [`upsert_touch`] for a touch that is almost surely new (its external id
/// is a Segment `messageId` never seen): the insert is tried first and
/// skipped on an existing external id, one statement instead of two; an
/// existing touch is then upserted as usual.
pub async fn upsert_new_touch(
    c: &mut AnyConnection,
    t: &Touch,
) -> Result<(i64, Upsert), StoreError> {
    match insert_touch(c, t, true).await? {
        Some(id) => Ok((id, Upsert::Inserted)),
        None => upsert_touch(c, t).await,
    }
}

const FRESH_TOUCHES: &str =
    "INSERT INTO touches (id, person_id, at, kind, channel, campaign, source, medium, cost, external_id)";

/// Inserts touches that are almost surely new (their external ids are
/// Segment `messageId`s never seen) with one multi-row statement per
/// chunk, on SQLite inside a write transaction (which holds the database
/// lock): each gets the next id after the largest stored one, in order,
/// so no `RETURNING` (a hand-over per row) is needed. Returns the ids, or
/// `None` when some external id was stored after all: those rows were
/// skipped and the others inserted, so the caller must roll back (and then
/// store them one by one with [`upsert_new_touch`]).
pub async fn insert_fresh_touches(
    c: &mut AnyConnection,
    touches: &[Touch],
) -> Result<Option<Vec<i64>>, StoreError> {
    const COLS: usize = 10;
    if touches.is_empty() {
        return Ok(Some(Vec::new()));
    }
    let last: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM touches")
        .fetch_one(&mut *c)
        .await?;
    let ids: Vec<i64> = (1..=touches.len() as i64).map(|i| last + i).collect();
    let per = rows_per_statement(COLS);
    let mut inserted = 0;
    for (chunk, ids) in touches.chunks(per).zip(ids.chunks(per)) {
        let sql = format!(
            "{} ON CONFLICT (external_id) DO NOTHING",
            values_sql(FRESH_TOUCHES, COLS, chunk.len(), true)
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (t, id) in chunk.iter().zip(ids) {
            q = bind_touch(q.bind(*id), t).bind(t.external_id.as_deref());
        }
        inserted += q.execute(&mut *c).await?.rows_affected();
    }
    Ok((inserted == touches.len() as u64).then_some(ids))
}

/// Inserts `t`: its id, or `None` when `skip_existing` and a touch with its
/// external id is stored.
async fn insert_touch(
    c: &mut AnyConnection,
    t: &Touch,
    skip_existing: bool,
) -> Result<Option<i64>, StoreError> {
    let sql = if skip_existing {
        "INSERT INTO touches (person_id, at, kind, channel, campaign, source, medium, cost, external_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (external_id) DO NOTHING RETURNING id"
    } else {
        "INSERT INTO touches (person_id, at, kind, channel, campaign, source, medium, cost, external_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id"
    };
    let row = bind_touch(sqlx::query(sql), t)
        .bind(t.external_id.as_deref())
        .fetch_optional(c)
        .await?;
    Ok(row.map(|r| r.try_get(0)).transpose()?)
}

/// A touch's stored facts, `person_id` to `cost`, in column order: every
/// statement that writes a touch lists them first.
fn touch_facts<'a>(t: &'a Touch, out: &mut Vec<Val<'a>>) {
    out.extend([
        t.person_id.into(),
        t.at.millis().into(),
        t.kind.as_str().into(),
        t.channel.as_deref().into(),
        t.campaign.as_deref().into(),
        t.source.as_deref().into(),
        t.medium.as_deref().into(),
        t.cost.map(Minor::get).into(),
    ]);
}

/// Binds [`touch_facts`].
fn bind_touch(q: AnyQuery, t: &Touch) -> AnyQuery {
    let mut vals = Vec::with_capacity(8);
    touch_facts(t, &mut vals);
    bind_all(q, vals)
}

// -------------------------------------------------------------- activities

pub(crate) const ACTIVITY_COLS: &str = "id, external_id, person_id, at, kind, actor, outcome";

/// Reads a row of [`ACTIVITY_COLS`].
pub(crate) fn activity_row(r: &impl ReadRow) -> Result<Activity, StoreError> {
    let mut c = Cols::new(r);
    Ok(Activity {
        id: c.int("id")?,
        external_id: c.opt_text("external_id")?.map(String::into_boxed_str),
        person_id: c.int("person_id")?,
        at: ts(c.int("at")?),
        kind: {
            let kind = c.str("kind")?;
            ActivityKind::parse(&kind)
                .ok_or_else(|| StoreError::Corrupt(format!("activity kind {kind:?}")))?
        },
        actor: c.opt_sym("actor")?,
        outcome: c.opt_sym("outcome")?,
    })
}

/// Activities of one person in time order.
pub async fn activities_of(
    c: &mut AnyConnection,
    person_id: i64,
) -> Result<Vec<Activity>, StoreError> {
    let q = format!("SELECT {ACTIVITY_COLS} FROM activities WHERE person_id = $1 ORDER BY at, id");
    sqlx::query(sqlx::AssertSqlSafe(q))
        .bind(person_id)
        .fetch_all(c)
        .await?
        .iter()
        .map(activity_row)
        .collect()
}

/// All activities in time order.
pub async fn activities(c: &mut AnyConnection) -> Result<Vec<Activity>, StoreError> {
    let q = format!("SELECT {ACTIVITY_COLS} FROM activities ORDER BY at, id");
    sqlx::query(sqlx::AssertSqlSafe(q))
        .fetch_all(c)
        .await?
        .iter()
        .map(activity_row)
        .collect()
}

/// Inserts an activity, or updates/keeps the one with the same external id.
pub async fn upsert_activity(
    c: &mut AnyConnection,
    a: &Activity,
) -> Result<(i64, Upsert), StoreError> {
    if let Some(ext) = &a.external_id {
        let q = format!("SELECT {ACTIVITY_COLS} FROM activities WHERE external_id = $1");
        let old = sqlx::query(sqlx::AssertSqlSafe(q))
            .bind(&**ext)
            .fetch_optional(&mut *c)
            .await?
            .map(|r| activity_row(&r))
            .transpose()?;
        if let Some(old) = old {
            if (Activity {
                id: old.id,
                ..a.clone()
            }) == old
            {
                return Ok((old.id, Upsert::Unchanged));
            }
            sqlx::query("UPDATE activities SET person_id = $1, at = $2, kind = $3, actor = $4, outcome = $5 WHERE id = $6")
                .bind(a.person_id)
                .bind(a.at.millis())
                .bind(a.kind.as_str())
                .bind(a.actor.as_deref())
                .bind(a.outcome.as_deref())
                .bind(old.id)
                .execute(c)
                .await?;
            return Ok((old.id, Upsert::Updated));
        }
    }
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO activities (external_id, person_id, at, kind, actor, outcome) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(a.external_id.as_deref())
    .bind(a.person_id)
    .bind(a.at.millis())
    .bind(a.kind.as_str())
    .bind(a.actor.as_deref())
    .bind(a.outcome.as_deref())
    .fetch_one(c)
    .await?;
    Ok((id, Upsert::Inserted))
}

// ------------------------------------------------------------------- deals

pub(crate) const DEAL_COLS: &str =
    "id, external_id, account_id, person_id, name, amount, currency, created_at, closed_at, status, lost_reason, owner, kind";

/// Reads a row of [`DEAL_COLS`].
pub(crate) fn deal_row(r: &impl ReadRow) -> Result<Deal, StoreError> {
    let mut c = Cols::new(r);
    Ok(Deal {
        id: c.int("id")?,
        external_id: c.text("external_id")?,
        account_id: c.opt_int("account_id")?,
        person_id: c.opt_int("person_id")?,
        name: c.opt_text("name")?,
        amount: Money {
            minor: c.int("amount")?,
            currency: Currency::parse(&c.str("currency")?)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        },
        created_at: ts(c.int("created_at")?),
        closed_at: c.opt_int("closed_at")?.map(ts),
        status: {
            let status = c.str("status")?;
            DealStatus::parse(&status)
                .ok_or_else(|| StoreError::Corrupt(format!("deal status {status:?}")))?
        },
        lost_reason: c.opt_sym("lost_reason")?,
        owner: c.opt_sym("owner")?,
        kind: c.sym("kind")?,
    })
}

/// Deals of a person: linked directly, or through the person's account when
/// the account deal was still open when we first knew the person (a deal the
/// account closed before this contact existed is not the contact's win).
pub async fn deals_of(c: &mut AnyConnection, person: &Person) -> Result<Vec<Deal>, StoreError> {
    let q = format!(
        "SELECT {DEAL_COLS} FROM deals WHERE person_id = $1 OR (person_id IS NULL AND account_id = $2 AND (closed_at IS NULL OR closed_at >= $3)) ORDER BY created_at, id"
    );
    sqlx::query(sqlx::AssertSqlSafe(q))
        .bind(person.id)
        .bind(person.account_id.unwrap_or(-1))
        .bind(person.created_at.millis())
        .fetch_all(c)
        .await?
        .iter()
        .map(deal_row)
        .collect()
}

/// All deals by creation time.
pub async fn deals(c: &mut AnyConnection) -> Result<Vec<Deal>, StoreError> {
    let q = format!("SELECT {DEAL_COLS} FROM deals ORDER BY created_at, id");
    sqlx::query(sqlx::AssertSqlSafe(q))
        .fetch_all(c)
        .await?
        .iter()
        .map(deal_row)
        .collect()
}

/// Inserts or updates a deal by external id.
pub async fn upsert_deal(c: &mut AnyConnection, d: &Deal) -> Result<(i64, Upsert), StoreError> {
    let q = format!("SELECT {DEAL_COLS} FROM deals WHERE external_id = $1");
    let old = sqlx::query(sqlx::AssertSqlSafe(q))
        .bind(&d.external_id)
        .fetch_optional(&mut *c)
        .await?
        .map(|r| deal_row(&r))
        .transpose()?;
    if let Some(old) = old {
        if (Deal {
            id: old.id,
            ..d.clone()
        }) == old
        {
            return Ok((old.id, Upsert::Unchanged));
        }
        sqlx::query(
            "UPDATE deals SET account_id = $1, person_id = $2, name = $3, amount = $4, currency = $5, created_at = $6, \
             closed_at = $7, status = $8, lost_reason = $9, owner = $10, kind = $11 WHERE id = $12",
        )
        .bind(d.account_id)
        .bind(d.person_id)
        .bind(&d.name)
        .bind(d.amount.minor)
        .bind(d.amount.currency.as_str())
        .bind(d.created_at.millis())
        .bind(d.closed_at.map(Timestamp::millis))
        .bind(d.status.as_str())
        .bind(d.lost_reason.as_deref())
        .bind(d.owner.as_deref())
        .bind(d.kind.as_str())
        .bind(old.id)
        .execute(c)
        .await?;
        return Ok((old.id, Upsert::Updated));
    }
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO deals (external_id, account_id, person_id, name, amount, currency, created_at, closed_at, status, lost_reason, owner, kind) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id",
    )
    .bind(&d.external_id)
    .bind(d.account_id)
    .bind(d.person_id)
    .bind(&d.name)
    .bind(d.amount.minor)
    .bind(d.amount.currency.as_str())
    .bind(d.created_at.millis())
    .bind(d.closed_at.map(Timestamp::millis))
    .bind(d.status.as_str())
    .bind(d.lost_reason.as_deref())
    .bind(d.owner.as_deref())
    .bind(d.kind.as_str())
    .fetch_one(c)
    .await?;
    Ok((id, Upsert::Inserted))
}

// --------------------------------------------------------------- campaigns

pub(crate) const CAMPAIGN_COLS: &str =
    "id, external_id, name, channel, starts_at, ends_at, budget, cost, persona, segment, owner";

/// Reads a row of [`CAMPAIGN_COLS`].
pub(crate) fn campaign_row(r: &impl ReadRow) -> Result<Campaign, StoreError> {
    let mut c = Cols::new(r);
    Ok(Campaign {
        id: c.int("id")?,
        external_id: c.text("external_id")?,
        name: c.text("name")?,
        channel: c.opt_text("channel")?,
        starts_at: c.opt_int("starts_at")?.map(ts),
        ends_at: c.opt_int("ends_at")?.map(ts),
        budget: c.opt_int("budget")?,
        cost: c.opt_int("cost")?,
        persona: c.opt_text("persona")?,
        segment: c.opt_text("segment")?,
        owner: c.opt_text("owner")?,
    })
}

/// All campaigns by start.
pub async fn campaigns(c: &mut AnyConnection) -> Result<Vec<Campaign>, StoreError> {
    let q = format!("SELECT {CAMPAIGN_COLS} FROM campaigns ORDER BY starts_at, id");
    sqlx::query(sqlx::AssertSqlSafe(q))
        .fetch_all(c)
        .await?
        .iter()
        .map(campaign_row)
        .collect()
}

/// Inserts or updates a campaign by external id.
pub async fn upsert_campaign(
    c: &mut AnyConnection,
    k: &Campaign,
) -> Result<(i64, Upsert), StoreError> {
    let q = format!("SELECT {CAMPAIGN_COLS} FROM campaigns WHERE external_id = $1");
    let old = sqlx::query(sqlx::AssertSqlSafe(q))
        .bind(&k.external_id)
        .fetch_optional(&mut *c)
        .await?
        .map(|r| campaign_row(&r))
        .transpose()?;
    if let Some(old) = old {
        if (Campaign {
            id: old.id,
            ..k.clone()
        }) == old
        {
            return Ok((old.id, Upsert::Unchanged));
        }
        sqlx::query(
            "UPDATE campaigns SET name = $1, channel = $2, starts_at = $3, ends_at = $4, budget = $5, cost = $6, persona = $7, segment = $8, owner = $9 WHERE id = $10",
        )
        .bind(&k.name)
        .bind(&k.channel)
        .bind(k.starts_at.map(Timestamp::millis))
        .bind(k.ends_at.map(Timestamp::millis))
        .bind(k.budget)
        .bind(k.cost)
        .bind(&k.persona)
        .bind(&k.segment)
        .bind(&k.owner)
        .bind(old.id)
        .execute(c)
        .await?;
        return Ok((old.id, Upsert::Updated));
    }
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO campaigns (external_id, name, channel, starts_at, ends_at, budget, cost, persona, segment, owner) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
    )
    .bind(&k.external_id)
    .bind(&k.name)
    .bind(&k.channel)
    .bind(k.starts_at.map(Timestamp::millis))
    .bind(k.ends_at.map(Timestamp::millis))
    .bind(k.budget)
    .bind(k.cost)
    .bind(&k.persona)
    .bind(&k.segment)
    .bind(&k.owner)
    .fetch_one(c)
    .await?;
    Ok((id, Upsert::Inserted))
}

// ------------------------------------------------------------- transitions

pub(crate) const TRANSITION_COLS: &str =
    "seq, subject_kind, subject_id, from_stage, to_stage, at, actor, reason, note, cycle, skipped";

/// Reads a row of [`TRANSITION_COLS`].
pub(crate) fn transition_row(r: &impl ReadRow) -> Result<Transition, StoreError> {
    let mut c = Cols::new(r);
    Ok(Transition {
        seq: c.int("seq")?,
        subject: {
            let kind = c.str("subject_kind")?;
            let id = c.int("subject_id")?;
            match &*kind {
                "person" => Subject::Person(id),
                "account" => Subject::Account(id),
                other => return Err(StoreError::Corrupt(format!("subject kind {other:?}"))),
            }
        },
        from: c.opt_sym("from_stage")?,
        to: c.sym("to_stage")?,
        at: ts(c.int("at")?),
        actor: c.sym("actor")?,
        reason: c.opt_sym("reason")?,
        note: c.opt_text("note")?.map(Note::from),
        cycle: {
            let n = c.int("cycle")?;
            u32::try_from(n).map_err(|_| StoreError::Corrupt(format!("transition cycle {n}")))?
        },
        skipped: c.flag("skipped")?,
    })
}

/// Transitions of one subject in order.
pub async fn transitions_of(
    c: &mut AnyConnection,
    subject: Subject,
) -> Result<Vec<Transition>, StoreError> {
    let q = format!(
        "SELECT {TRANSITION_COLS} FROM transitions WHERE subject_kind = $1 AND subject_id = $2 ORDER BY at, seq"
    );
    sqlx::query(sqlx::AssertSqlSafe(q))
        .bind(subject.kind())
        .bind(subject.id())
        .fetch_all(c)
        .await?
        .iter()
        .map(transition_row)
        .collect()
}

/// Every transition in order.
pub async fn transitions(c: &mut AnyConnection) -> Result<Vec<Transition>, StoreError> {
    let q = format!("SELECT {TRANSITION_COLS} FROM transitions ORDER BY at, seq");
    sqlx::query(sqlx::AssertSqlSafe(q))
        .fetch_all(c)
        .await?
        .iter()
        .map(transition_row)
        .collect()
}

/// Every transition of people (`"person"`) or accounts (`"account"`), in order.
pub async fn transitions_of_kind(
    c: &mut AnyConnection,
    kind: &str,
) -> Result<Vec<Transition>, StoreError> {
    let q = format!(
        "SELECT {TRANSITION_COLS} FROM transitions WHERE subject_kind = $1 ORDER BY at, seq"
    );
    sqlx::query(sqlx::AssertSqlSafe(q))
        .bind(kind)
        .fetch_all(c)
        .await?
        .iter()
        .map(transition_row)
        .collect()
}

/// Appends moves for a subject, in order, and returns them as stored.
pub async fn append(
    c: &mut AnyConnection,
    subject: Subject,
    moves: &[Move],
) -> Result<Vec<Transition>, StoreError> {
    let mut out = Vec::with_capacity(moves.len());
    for m in moves {
        let seq: i64 = sqlx::query_scalar(
            "INSERT INTO transitions (subject_kind, subject_id, from_stage, to_stage, at, actor, reason, note, cycle, skipped) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING seq",
        )
        .bind(subject.kind())
        .bind(subject.id())
        .bind(m.from.as_deref())
        .bind(m.to.as_str())
        .bind(m.at.millis())
        .bind(m.actor.as_str())
        .bind(m.reason.as_deref())
        .bind(&m.note)
        .bind(i64::from(m.cycle))
        .bind(i64::from(m.skipped))
        .fetch_one(&mut *c)
        .await?;
        out.push(m.to_transition(subject, seq));
    }
    Ok(out)
}

/// [`append`] for many subjects at once: the moves of each, in the order
/// given, with multi-row statements instead of one statement per move.
/// Returns them as stored, in the same order. The store assigns `seq`s in
/// row order (one statement, one writer: SQLite's next rowid, PostgreSQL's
/// sequence), so the sorted new `seq`s (PostgreSQL's `RETURNING`, SQLite's
/// run ending at `last_insert_rowid`) belong to the rows in order, exactly
/// as [`append`] one by one would have numbered them.
pub async fn append_many<'m>(
    c: &mut AnyConnection,
    moves: impl IntoIterator<Item = (Subject, &'m [Move])>,
) -> Result<Vec<Transition>, StoreError> {
    use futures_util::TryStreamExt;
    const COLS: usize = 10;
    let rows: Vec<(Subject, &Move)> = moves
        .into_iter()
        .flat_map(|(s, ms)| ms.iter().map(move |m| (s, m)))
        .collect();
    let per = rows_per_statement(COLS);
    let anon = anonymous_params(c);
    let returning = if anon { "" } else { " RETURNING seq" };
    let full = format!(
        "{}{returning}",
        values_sql(TRANSITIONS.head, COLS, per, anon)
    );
    let mut out = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(per) {
        let sql = if chunk.len() == per {
            full.clone()
        } else {
            format!(
                "{}{returning}",
                values_sql(TRANSITIONS.head, COLS, chunk.len(), anon)
            )
        };
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (s, m) in chunk {
            q = q
                .bind(s.kind())
                .bind(s.id())
                .bind(m.from.as_deref())
                .bind(m.to.as_str())
                .bind(m.at.millis())
                .bind(m.actor.as_str())
                .bind(m.reason.as_deref())
                .bind(m.note.as_deref())
                .bind(i64::from(m.cycle))
                .bind(i64::from(m.skipped));
        }
        let mut seqs: Vec<i64> = Vec::with_capacity(chunk.len());
        if anon {
            // SQLite: consecutive, ending at the last rowid (as for people
            // in `insert_new_people`; transitions have no insert triggers).
            q.execute(&mut *c).await?;
            let last: i64 = sqlx::query_scalar("SELECT last_insert_rowid()")
                .fetch_one(&mut *c)
                .await?;
            seqs.extend(last + 1 - chunk.len() as i64..=last);
        } else {
            let mut returned = q.fetch(&mut *c);
            while let Some(r) = returned.try_next().await? {
                seqs.push(r.try_get("seq")?);
            }
        }
        if seqs.len() != chunk.len() {
            return Err(StoreError::Corrupt(format!(
                "{} transitions inserted, {} seqs returned",
                chunk.len(),
                seqs.len()
            )));
        }
        seqs.sort_unstable();
        for ((s, m), seq) in chunk.iter().zip(seqs) {
            out.push(m.to_transition(*s, seq));
        }
    }
    Ok(out)
}

/// Row counts per table, for summaries and tests.
pub async fn counts(c: &mut AnyConnection) -> Result<Vec<(&'static str, i64)>, StoreError> {
    let mut out = Vec::new();
    for (table, q) in [
        ("accounts", "SELECT COUNT(*) FROM accounts"),
        ("people", "SELECT COUNT(*) FROM people"),
        ("touches", "SELECT COUNT(*) FROM touches"),
        ("activities", "SELECT COUNT(*) FROM activities"),
        ("deals", "SELECT COUNT(*) FROM deals"),
        ("campaigns", "SELECT COUNT(*) FROM campaigns"),
        ("transitions", "SELECT COUNT(*) FROM transitions"),
    ] {
        let n: i64 = sqlx::query_scalar(q).fetch_one(&mut *c).await?;
        out.push((table, n));
    }
    Ok(out)
}

/// Everything analytics read, loaded at once.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub people: Vec<Person>,
    pub accounts: Vec<Account>,
    /// Transitions of people (the lead funnel), kept by column, sorted by
    /// (at, seq).
    pub transitions: Transitions,
    /// Transitions of accounts (the account funnel, churn), the same way.
    pub account_transitions: Transitions,
    /// Kept by column, sorted by (at, id).
    pub touches: Touches,
    /// Kept by column, sorted by (at, id).
    pub activities: Activities,
    pub deals: Vec<Deal>,
    pub campaigns: Vec<Campaign>,
}

/// Loads the whole stored history.
pub async fn snapshot(c: &mut AnyConnection) -> Result<Snapshot, StoreError> {
    Ok(Snapshot {
        people: people(c).await?,
        accounts: accounts(c).await?,
        transitions: transitions_of_kind(c, "person").await?.into(),
        account_transitions: transitions_of_kind(c, "account").await?.into(),
        touches: touches(c).await?.into(),
        activities: activities(c).await?.into(),
        deals: deals(c).await?,
        campaigns: campaigns(c).await?,
    })
}

// ------------------------------------------------------------ bulk inserts
//
// Multi-row inserts for filling a fresh database (the demo generator). They
// do no external-id lookups, so they fail on a duplicate external id instead
// of updating; use the upserts above for imports. Each takes the rows as an
// iterator of references, so a caller can write rows it keeps grouped
// otherwise (per person) without copying them into one slice first.

/// Bound parameters per statement: below SQLite's 32,766 (and so below
/// PostgreSQL's 65,535), whichever backend runs it.
const MAX_PARAMS: usize = 32_000;
/// Rows per statement, whatever the column count: big enough that a load
/// of millions of rows is not dominated by per-statement overhead, small
/// enough that a statement stays a few kilobytes for the statement cache
/// and PostgreSQL's parser.
const MAX_ROWS: usize = 256;

/// Rows per statement for a table with `cols` columns.
pub(crate) fn rows_per_statement(cols: usize) -> usize {
    (MAX_PARAMS / cols.max(1)).clamp(1, MAX_ROWS)
}

/// Whether statements on `c` should use anonymous `?` placeholders
/// (SQLite) rather than numbered `$1` (PostgreSQL, which takes only
/// those). sqlx-sqlite looks up each bound parameter's name with
/// `sqlite3_bind_parameter_name`, which walks the statement's list of
/// names: with numbered placeholders that is quadratic in the parameter
/// count, and a 3,000-parameter insert spent more time there than in
/// SQLite. Anonymous parameters have no names to walk.
pub(crate) fn anonymous_params(c: &AnyConnection) -> bool {
    !c.backend_name().eq_ignore_ascii_case("postgresql")
}

/// `n` placeholders separated by commas, numbered from `first`: `$1, $2`
/// or, when `anon`, `?, ?`.
pub(crate) fn param_list(first: usize, n: usize, anon: bool) -> String {
    let mut out = String::with_capacity(n * 6);
    for i in 0..n {
        if i > 0 {
            out.push_str(", ");
        }
        if anon {
            out.push('?');
        } else {
            out.push('$');
            out.push_str(&(first + i).to_string());
        }
    }
    out
}

/// `INSERT INTO … (cols) VALUES ($1, …), (…)` for `rows` rows (`?`
/// placeholders when `anon`, see [`anonymous_params`]). Built only from
/// the constant `head` and numbers, never from data.
pub(crate) fn values_sql(head: &str, cols: usize, rows: usize, anon: bool) -> String {
    let mut sql = String::with_capacity(head.len() + rows * cols * 7);
    sql.push_str(head);
    sql.push_str(" VALUES ");
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        sql.push_str(&param_list(r * cols + 1, cols, anon));
        sql.push(')');
    }
    sql
}

/// Runs `table`'s insert over `rows` in statements of at most
/// [`rows_per_statement`] rows. The statement text for a full chunk is
/// built once per call.
async fn insert_rows<'r, T: 'r>(
    c: &mut AnyConnection,
    table: &Table<T>,
    rows: impl IntoIterator<Item = &'r T>,
) -> Result<(), StoreError> {
    let rows: Vec<&T> = rows.into_iter().collect();
    let per = rows_per_statement(table.cols);
    let anon = anonymous_params(c);
    let full = values_sql(table.head, table.cols, per, anon);
    let mut vals = Vec::with_capacity(table.cols);
    for chunk in rows.chunks(per) {
        let sql = if chunk.len() == per {
            full.clone()
        } else {
            values_sql(table.head, table.cols, chunk.len(), anon)
        };
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for row in chunk {
            table.row(row, &mut vals);
            q = bind_all(q, vals.drain(..));
        }
        q.execute(&mut *c).await?;
    }
    Ok(())
}

/// A person's stored facts, `email` to `custom`, in column order: every
/// statement that writes a person lists these columns after its ids.
fn person_facts<'a>(p: &'a Person, out: &mut Vec<Val<'a>>) {
    out.extend([
        p.email().into(),
        p.first_name().into(),
        p.last_name().into(),
        p.title.as_deref().into(),
        p.account_id.into(),
        p.persona.as_deref().into(),
        p.segment.as_deref().into(),
        p.country.as_deref().into(),
        p.source.as_deref().into(),
        p.owner.as_deref().into(),
        p.created_at.millis().into(),
        custom_to_text(&p.custom).into(),
    ]);
}

/// Binds [`person_facts`].
fn bind_facts(q: AnyQuery, p: &Person) -> AnyQuery {
    let mut vals = Vec::with_capacity(12);
    person_facts(p, &mut vals);
    bind_all(q, vals)
}

/// Accounts with their ids as given (a fresh database; see the module
/// note on bulk inserts). On PostgreSQL call [`sync_id_sequences`]
/// afterwards so later inserts do not reuse those ids.
pub static ACCOUNTS: Table<Account> = Table {
    head: "INSERT INTO accounts (id, external_id, name, domain, industry, employees, annual_revenue, segment, target, tier, owner, custom)",
    cols: 12,
    values: |a, out| {
        out.extend([
            a.id.into(),
            a.external_id.as_str().into(),
            a.name.as_deref().into(),
            a.domain.as_deref().into(),
            a.industry.as_deref().into(),
            a.employees.into(),
            a.annual_revenue.into(),
            a.segment.as_deref().into(),
            a.target.into(),
            a.tier.into(),
            a.owner.as_deref().into(),
            custom_to_text(&a.custom).into(),
        ])
    },
};

/// Target-list entries (`external_id` is not stored: it is the
/// account's). The accounts' own `target`/`tier` columns must already say
/// the same (see [`crate::accounts`]).
pub static TARGETS: Table<crate::accounts::Target> = Table {
    head: "INSERT INTO account_targets (account_id, tier, marketer, seller, added_at, added_by)",
    cols: 6,
    values: |t, out| {
        out.extend([
            t.account_id.into(),
            t.tier.into(),
            t.marketer.as_deref().into(),
            t.seller.as_deref().into(),
            t.added_at.millis().into(),
            t.added_by.as_str().into(),
        ])
    },
};

/// People with their ids as given (a fresh database). On PostgreSQL call
/// [`sync_id_sequences`] afterwards.
pub static PEOPLE: Table<Person> = Table {
    head: "INSERT INTO people (id, external_id, email, first_name, last_name, title, account_id, persona, segment, country, source, owner, created_at, custom)",
    cols: 14,
    values: |p, out| {
        out.extend([p.id.into(), (p.external_id()).into()]);
        person_facts(p, out);
    },
};

/// Touches; the store assigns ids in row order (`t.id` is ignored).
pub static TOUCHES: Table<Touch> = Table {
    head: "INSERT INTO touches (person_id, at, kind, channel, campaign, source, medium, cost, external_id)",
    cols: 9,
    values: |t, out| {
        touch_facts(t, out);
        out.push(t.external_id.as_deref().into());
    },
};

/// Activities; the store assigns ids in row order.
pub static ACTIVITIES: Table<Activity> = Table {
    head: "INSERT INTO activities (external_id, person_id, at, kind, actor, outcome)",
    cols: 6,
    values: |a, out| {
        out.extend([
            a.external_id.as_deref().into(),
            a.person_id.into(),
            a.at.millis().into(),
            a.kind.as_str().into(),
            a.actor.as_deref().into(),
            a.outcome.as_deref().into(),
        ])
    },
};

/// Deals; the store assigns ids in row order.
pub static DEALS: Table<Deal> = Table {
    head: "INSERT INTO deals (external_id, account_id, person_id, name, amount, currency, created_at, closed_at, status, lost_reason, owner, kind)",
    cols: 12,
    values: |d, out| {
        out.extend([
            d.external_id.as_str().into(),
            d.account_id.into(),
            d.person_id.into(),
            d.name.as_deref().into(),
            d.amount.minor.into(),
            d.amount.currency.as_str().into(),
            d.created_at.millis().into(),
            d.closed_at.map(Timestamp::millis).into(),
            d.status.as_str().into(),
            d.lost_reason.as_deref().into(),
            d.owner.as_deref().into(),
            d.kind.as_str().into(),
        ])
    },
};

/// Campaigns; the store assigns ids in row order.
pub static CAMPAIGNS: Table<Campaign> = Table {
    head: "INSERT INTO campaigns (external_id, name, channel, starts_at, ends_at, budget, cost, persona, segment, owner)",
    cols: 10,
    values: |k, out| {
        out.extend([
            k.external_id.as_str().into(),
            k.name.as_str().into(),
            k.channel.as_deref().into(),
            k.starts_at.map(Timestamp::millis).into(),
            k.ends_at.map(Timestamp::millis).into(),
            k.budget.into(),
            k.cost.into(),
            k.persona.as_deref().into(),
            k.segment.as_deref().into(),
            k.owner.as_deref().into(),
        ])
    },
};

/// Transitions, appended in row order; the store assigns `seq` (`t.seq`
/// is ignored), so give each subject's transitions in the order they
/// happened.
pub static TRANSITIONS: Table<Transition> = Table {
    head: "INSERT INTO transitions (subject_kind, subject_id, from_stage, to_stage, at, actor, reason, note, cycle, skipped)",
    cols: 10,
    values: |t, out| {
        out.extend([
            t.subject.kind().into(),
            t.subject.id().into(),
            t.from.as_deref().into(),
            t.to.as_str().into(),
            t.at.millis().into(),
            t.actor.as_str().into(),
            t.reason.as_deref().into(),
            t.note.as_deref().into(),
            i64::from(t.cycle).into(),
            t.skipped.into(),
        ])
    },
};

/// Inserts `rows` with `table`'s bulk insert (see the module note on bulk
/// inserts and each table's own note). A fresh database of any size is
/// better filled with [`crate::fill::Fill`].
pub async fn insert<'r, T: 'r>(
    c: &mut AnyConnection,
    table: &Table<T>,
    rows: impl IntoIterator<Item = &'r T>,
) -> Result<(), StoreError> {
    insert_rows(c, table, rows).await
}

/// A bulk load into a fresh database in one transaction: started with
/// [`BulkLoad::begin`] on the transaction's connection, ended with
/// [`BulkLoad::finish`] before the commit.
///
/// On SQLite it drops the secondary indexes first (all but those it is
/// told to keep) and builds each once at the end (one sorted pass instead
/// of millions of random b-tree inserts) and raises the connection's page
/// cache for the load. The indexes are re-created from their stored SQL,
/// so the schema has exactly what the migrations made. Both steps are part of the
/// transaction: if the load fails, the rollback restores the indexes too.
/// On PostgreSQL it does nothing.
#[derive(Debug)]
pub struct BulkLoad {
    /// `CREATE INDEX` statements to run at the end, in schema order.
    indexes: Vec<String>,
    /// The page cache setting to restore (SQLite).
    cache_size: Option<i64>,
}

/// Page cache for a bulk load: 256 MiB (negative means KiB in SQLite).
pub(crate) const BULK_CACHE_KIB: i64 = 256 * 1024;

/// The secondary indexes of an SQLite database, `name` and `sql`, in the
/// order they were created.
pub(crate) const SQLITE_INDEXES: &str =
    "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL ORDER BY rowid";

/// Of a database's secondary indexes (`name`, `sql`, from
/// [`SQLITE_INDEXES`]), those a bulk load drops and builds again: all but
/// `keep`, each of which must be one of them.
pub(crate) fn indexes_to_rebuild(
    all: Vec<(String, String)>,
    keep: &[&str],
) -> Result<Vec<(String, String)>, StoreError> {
    if let Some(k) = keep.iter().find(|k| !all.iter().any(|(n, _)| n == *k)) {
        return Err(StoreError::NotFound {
            what: format!("index {k} (to keep during a bulk load)"),
        });
    }
    Ok(all
        .into_iter()
        .filter(|(n, _)| !keep.contains(&n.as_str()))
        .collect())
}

/// The statement that drops index `name`.
pub(crate) fn drop_index_sql(name: &str) -> String {
    // Index names come from our migrations; quote them anyway.
    format!("DROP INDEX \"{}\"", name.replace('"', "\"\""))
}

impl BulkLoad {
    /// Prepares the connection (inside the load's transaction).
    /// The indexes named in `keep` stay and are kept up to date row by
    /// row instead (see [`crate::fill::Fill::begin`]).
    pub async fn begin(
        c: &mut AnyConnection,
        backend: crate::Backend,
        keep: &[&str],
    ) -> Result<BulkLoad, StoreError> {
        let mut load = BulkLoad {
            indexes: Vec::new(),
            cache_size: None,
        };
        if backend != crate::Backend::Sqlite {
            return Ok(load);
        }
        let cache: i64 = sqlx::query_scalar("PRAGMA cache_size")
            .fetch_one(&mut *c)
            .await?;
        load.cache_size = Some(cache);
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "PRAGMA cache_size = -{BULK_CACHE_KIB}"
        )))
        .execute(&mut *c)
        .await?;
        let all: Vec<(String, String)> = sqlx::query_as(SQLITE_INDEXES).fetch_all(&mut *c).await?;
        for (name, sql) in indexes_to_rebuild(all, keep)? {
            sqlx::query(sqlx::AssertSqlSafe(drop_index_sql(&name)))
                .execute(&mut *c)
                .await?;
            load.indexes.push(sql);
        }
        Ok(load)
    }

    /// Builds the indexes again and restores the connection's settings.
    pub async fn finish(self, c: &mut AnyConnection) -> Result<(), StoreError> {
        for sql in self.indexes {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&mut *c)
                .await?;
        }
        if let Some(cache) = self.cache_size {
            sqlx::query(sqlx::AssertSqlSafe(format!("PRAGMA cache_size = {cache}")))
                .execute(&mut *c)
                .await?;
        }
        Ok(())
    }
}

/// After inserting explicit ids on PostgreSQL, moves each id sequence past
/// the largest id so later inserts get fresh ids. SQLite needs nothing: its
/// `INTEGER PRIMARY KEY` continues after the largest id by itself.
pub async fn sync_id_sequences(c: &mut AnyConnection) -> Result<(), StoreError> {
    for q in [
        "SELECT setval(pg_get_serial_sequence('accounts', 'id'), COALESCE((SELECT MAX(id) FROM accounts), 0) + 1, false)",
        "SELECT setval(pg_get_serial_sequence('people', 'id'), COALESCE((SELECT MAX(id) FROM people), 0) + 1, false)",
    ] {
        sqlx::query(q).execute(&mut *c).await?;
    }
    Ok(())
}

/// Up to `limit` people with id greater than `after`, by id (a page).
pub async fn people_after(
    c: &mut AnyConnection,
    after: i64,
    limit: i64,
) -> Result<Vec<Person>, StoreError> {
    let q = format!("SELECT {PERSON_COLS} FROM people WHERE id > $1 ORDER BY id LIMIT $2");
    sqlx::query(sqlx::AssertSqlSafe(q))
        .bind(after)
        .bind(limit)
        .fetch_all(c)
        .await?
        .iter()
        .map(person_row)
        .collect()
}
