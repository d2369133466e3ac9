//! A [`Snapshot`] kept in memory and brought up to date from the store
//! without reading it again: the server's warm history.
//!
//! Rows are inserted with ever larger ids and never deleted; transitions are
//! only appended; an in-place UPDATE of a fact row is recorded in
//! `row_changes` by a trigger (migration 10). So the [`Marks`] (largest id
//! per table, largest `row_changes.seq`) say what is new since a load, and a
//! [`Delta`] reads only that: rows with an id above the old mark (up to the
//! new one) and the rows named in `row_changes` since. Applying it keeps
//! each vector in the order [`crate::repo::snapshot`] reads it in, so a warm
//! snapshot after any number of deltas equals a fresh read (tested in
//! `tests/store_suite.rs` on every backend).
//!
//! Reads stream rows into typed values (`fetch`, not `fetch_all`), so a load
//! never holds every raw row and every value at once.
//!
//! sqlx's SQLite driver copies every value of every row (one allocation or
//! two per column, freed on another thread) and hands each row over from
//! its database thread: on the large demo that, not SQLite, was most of the
//! 150 s start-up read, with the native driver as with `Any`. So the full
//! reads of [`Warm::load_from`], [`snapshot_from`] and
//! [`snapshot_streaming`] on an SQLite file step a statement of their own
//! on a blocking thread ([`crate::bulk`]), and sort the rows in memory by
//! the table's order. A full read through the pool ([`Table::all`]: a
//! delta that reloads a table, an in-memory database) asks for the rows
//! packed as JSON instead, one text per page of [`PAGE_ROWS`] rows, which
//! is one value and one hand-over per page. The same row readers read
//! either ([`crate::rows::JsonRow`], [`crate::bulk::FileRow`]); PostgreSQL
//! and the small reads of a [`Delta`] read rows as they are.
//!
//! The full reads run in two lanes, each on its own connection ([`lanes`]
//! balances them), so that both cores read; on the large demo that took
//! the server's start-up read from 44 to 30 s and the cold waterfall from
//! 22 to 12.5 s (and reading from the file, to 14 s and 5 s).
//!
//! One known gap on PostgreSQL: a transaction that took an id before another
//! one but commits after a refresh has seen the later id is not seen (its id
//! is below the mark). SQLite has one writer at a time, so ids become visible
//! in order there.

use std::collections::{BTreeMap, BTreeSet};

use futures_util::TryStreamExt;
use sqlx::AnyConnection;
use tandem_core::activities::Activities;
use tandem_core::domain::{Account, Activity, Campaign, Deal, Person, Subject, Touch, Transition};
use tandem_core::timeline::{Columns, Timeline};
use tandem_core::touches::Touches;
use tandem_core::transitions::{TransitionRef, Transitions};
use tandem_core::Timestamp;

use crate::repo::{
    account_row, activity_row, campaign_row, deal_row, person_row, touch_row, transition_row,
    Snapshot, ACCOUNT_COLS, ACTIVITY_COLS, CAMPAIGN_COLS, DEAL_COLS, PERSON_COLS, TOUCH_COLS,
    TRANSITION_COLS,
};
use crate::rows::{JsonRow, ReadRow};
use crate::{bulk, Store, StoreError};

/// Above this many changed rows of one table, a delta reads the whole table
/// again instead of the rows one id list at a time.
pub const RELOAD_ABOVE: usize = 50_000;
/// Ids bound per `IN (…)` list (below SQLite's parameter limit).
const IDS_PER_QUERY: usize = 500;

/// How far the store's history goes: largest id per table, largest
/// transition `seq` and largest `row_changes.seq`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Marks {
    pub accounts: i64,
    pub people: i64,
    pub touches: i64,
    pub activities: i64,
    pub deals: i64,
    pub campaigns: i64,
    pub transitions: i64,
    pub changes: i64,
}

impl Marks {
    /// Whether the history at `self` is the one at `older` with rows
    /// appended only: no mark went back and no row was updated in place
    /// (`changes` unmoved). Then every table's rows at `older` are an
    /// unchanged prefix of its rows at `self`.
    pub fn appended_since(&self, older: &Marks) -> bool {
        self.changes == older.changes
            && self.accounts >= older.accounts
            && self.people >= older.people
            && self.touches >= older.touches
            && self.activities >= older.activities
            && self.deals >= older.deals
            && self.campaigns >= older.campaigns
            && self.transitions >= older.transitions
    }
}

const MARKS: &str = "SELECT \
    (SELECT COALESCE(MAX(id), 0) FROM accounts), \
    (SELECT COALESCE(MAX(id), 0) FROM people), \
    (SELECT COALESCE(MAX(id), 0) FROM touches), \
    (SELECT COALESCE(MAX(id), 0) FROM activities), \
    (SELECT COALESCE(MAX(id), 0) FROM deals), \
    (SELECT COALESCE(MAX(id), 0) FROM campaigns), \
    (SELECT COALESCE(MAX(seq), 0) FROM transitions), \
    (SELECT COALESCE(MAX(seq), 0) FROM row_changes)";

/// Reads the current [`Marks`] (eight index lookups).
pub async fn marks(c: &mut AnyConnection) -> Result<Marks, StoreError> {
    let r = sqlx::query(MARKS).fetch_one(&mut *c).await?;
    Ok(Marks {
        accounts: r.int(0)?,
        people: r.int(1)?,
        touches: r.int(2)?,
        activities: r.int(3)?,
        deals: r.int(4)?,
        campaigns: r.int(5)?,
        transitions: r.int(6)?,
        changes: r.int(7)?,
    })
}

/// A stored record with the reader of its table's column list.
pub(crate) trait Record: Sized {
    fn read(r: &impl ReadRow) -> Result<Self, StoreError>;
}

impl Record for Person {
    fn read(r: &impl ReadRow) -> Result<Self, StoreError> {
        person_row(r)
    }
}
impl Record for Account {
    fn read(r: &impl ReadRow) -> Result<Self, StoreError> {
        account_row(r)
    }
}
impl Record for Touch {
    fn read(r: &impl ReadRow) -> Result<Self, StoreError> {
        touch_row(r)
    }
}
impl Record for Activity {
    fn read(r: &impl ReadRow) -> Result<Self, StoreError> {
        activity_row(r)
    }
}
impl Record for Deal {
    fn read(r: &impl ReadRow) -> Result<Self, StoreError> {
        deal_row(r)
    }
}
impl Record for Campaign {
    fn read(r: &impl ReadRow) -> Result<Self, StoreError> {
        campaign_row(r)
    }
}
impl Record for Transition {
    fn read(r: &impl ReadRow) -> Result<Self, StoreError> {
        transition_row(r)
    }
}

/// Runs `sql` with the `binds` and reads each row as it arrives.
pub(crate) async fn stream<T: Record>(
    c: &mut AnyConnection,
    sql: String,
    binds: &[i64],
) -> Result<Vec<T>, StoreError> {
    let mut out = Vec::new();
    stream_into(c, sql, binds, &mut out).await?;
    Ok(out)
}

/// [`stream`] into `out`.
async fn stream_into<T: Record>(
    c: &mut AnyConnection,
    sql: String,
    binds: &[i64],
    out: &mut impl Extend<T>,
) -> Result<(), StoreError> {
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for b in binds {
        q = q.bind(*b);
    }
    let mut rows = q.fetch(c);
    while let Some(r) = rows.try_next().await? {
        out.extend([T::read(&r)?]);
    }
    Ok(())
}

/// `SELECT {cols} FROM {from}`, `binds` bound to `from`'s placeholders in
/// order: on SQLite the rows
/// packed in one value (see the module note), so a read of many small rows
/// (a group of people's facts) is one hand-over from the database thread,
/// not one per row; elsewhere streamed as [`stream`] does. No order: the
/// caller sorts.
pub(crate) async fn select<T: Record>(
    c: &mut AnyConnection,
    cols: &str,
    from: &str,
    binds: &[i64],
) -> Result<Vec<T>, StoreError> {
    if !is_sqlite(c) {
        return stream(c, format!("SELECT {cols} FROM {from}"), binds).await;
    }
    let sql = format!("SELECT json_group_array(json_array({cols})) FROM {from}");
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for b in binds {
        q = q.bind(*b);
    }
    let page = q.fetch_one(&mut *c).await?;
    let mut out = Vec::new();
    unpack(&page.str(0)?, cols, &mut out)?;
    Ok(out)
}

/// Reads the rows of a packed page of `cols` into `out`.
fn unpack<T: Record>(text: &str, cols: &str, out: &mut impl Extend<T>) -> Result<(), StoreError> {
    let names: Vec<&str> = cols.split(", ").collect();
    for values in JsonRow::page(text, names.len())?.chunks_exact(names.len()) {
        out.extend([T::read(&JsonRow::new(&names, values))?]);
    }
    Ok(())
}

/// Rows per page of a packed read (see the module note): a page is a few
/// megabytes of JSON at most.
pub const PAGE_ROWS: i64 = 10_000;

/// One fact table: its name, columns, id column, and the order of a full
/// read, as SQL and as the same key in memory; `C` is what a full read
/// keeps its rows in.
struct Table<T, K, C = Vec<T>> {
    name: &'static str,
    cols: &'static str,
    id: &'static str,
    order: &'static str,
    key: fn(&T) -> K,
    _kept: std::marker::PhantomData<fn() -> C>,
}

/// What a full read keeps a table's rows in: a vector of rows, or a
/// [`Timeline`] by column (touches, activities).
trait Kept<T>: Extend<T> {
    /// Empty, with room for `n` rows (and a little more, see
    /// [`Table::all_from_file`]).
    fn with_room(n: usize) -> Self;
    /// How many rows it holds.
    fn len(&self) -> usize;
    /// Sorts the rows by `key`, the table's order.
    fn sort_by<K: Ord>(&mut self, key: fn(&T) -> K);
}

impl<T> Kept<T> for Vec<T> {
    fn with_room(n: usize) -> Self {
        Vec::with_capacity(n + n / 64 + 64)
    }
    fn len(&self) -> usize {
        Vec::len(self)
    }
    fn sort_by<K: Ord>(&mut self, key: fn(&T) -> K) {
        self.sort_unstable_by_key(key);
    }
}

impl<C: Columns> Kept<C::Row> for Timeline<C> {
    fn with_room(n: usize) -> Self {
        Timeline::with_capacity(n)
    }
    fn len(&self) -> usize {
        Timeline::len(self)
    }
    /// Touches and activities sort themselves by (at, id), which is
    /// [`TOUCHES`]' and [`ACTIVITIES`]' key (tested).
    fn sort_by<K: Ord>(&mut self, _key: fn(&C::Row) -> K) {
        self.sort();
    }
}

/// Transitions as a full read keeps them: people's and accounts' apart,
/// each in the table's order. Rows go to their side as they are read:
/// reading all into one vector and moving the accounts' out left their
/// 27 MB (the large demo's 420,000) written but unused at its end.
#[derive(Debug, Default)]
struct SplitTransitions {
    people: Transitions,
    accounts: Transitions,
}

impl Extend<Transition> for SplitTransitions {
    fn extend<I: IntoIterator<Item = Transition>>(&mut self, rows: I) {
        for t in rows {
            match t.subject {
                Subject::Person(_) => self.people.push(t),
                Subject::Account(_) => self.accounts.push(t),
            }
        }
    }
}

impl Kept<Transition> for SplitTransitions {
    /// Room for `n` people's transitions (most are; the room the accounts'
    /// leave is never written, so never resident); the accounts' grow.
    fn with_room(n: usize) -> Self {
        SplitTransitions {
            people: Kept::with_room(n),
            accounts: Transitions::new(),
        }
    }
    fn len(&self) -> usize {
        self.people.len() + self.accounts.len()
    }
    /// Transitions sort themselves by (at, seq), [`TRANSITIONS`]' key.
    fn sort_by<K: Ord>(&mut self, _key: fn(&Transition) -> K) {
        self.people.sort();
        self.accounts.sort();
    }
}

const PEOPLE: Table<Person, i64> = Table {
    name: "people",
    cols: PERSON_COLS,
    id: "id",
    order: "id",
    key: |p| p.id,
    _kept: std::marker::PhantomData,
};
const ACCOUNTS: Table<Account, i64> = Table {
    name: "accounts",
    cols: ACCOUNT_COLS,
    id: "id",
    order: "id",
    key: |a| a.id,
    _kept: std::marker::PhantomData,
};
const TOUCHES: Table<Touch, (Timestamp, i64), Touches> = Table {
    name: "touches",
    cols: TOUCH_COLS,
    id: "id",
    order: "at, id",
    key: |t| (t.at, t.id),
    _kept: std::marker::PhantomData,
};
const ACTIVITIES: Table<Activity, (Timestamp, i64), Activities> = Table {
    name: "activities",
    cols: ACTIVITY_COLS,
    id: "id",
    order: "at, id",
    key: |a| (a.at, a.id),
    _kept: std::marker::PhantomData,
};
const DEALS: Table<Deal, (Timestamp, i64)> = Table {
    name: "deals",
    cols: DEAL_COLS,
    id: "id",
    order: "created_at, id",
    key: |d| (d.created_at, d.id),
    _kept: std::marker::PhantomData,
};
// A null `starts_at` sorts first in SQLite and as `None` in memory
// (PostgreSQL, which puts nulls last, reads with its `ORDER BY`).
const CAMPAIGNS: Table<Campaign, (Option<Timestamp>, i64)> = Table {
    name: "campaigns",
    cols: CAMPAIGN_COLS,
    id: "id",
    order: "starts_at, id",
    key: |k| (k.starts_at, k.id),
    _kept: std::marker::PhantomData,
};
const TRANSITIONS: Table<Transition, (Timestamp, i64), SplitTransitions> = Table {
    name: "transitions",
    cols: TRANSITION_COLS,
    id: "seq",
    order: "at, seq",
    key: |t| (t.at, t.seq),
    _kept: std::marker::PhantomData,
};

impl<T: Record, K: Ord, C: Kept<T>> Table<T, K, C> {
    /// Every row with an id up to `upto`, in the order of a full read.
    async fn all(&self, c: &mut AnyConnection, upto: i64) -> Result<C, StoreError> {
        let started = std::time::Instant::now();
        let rows = if is_sqlite(c) {
            self.all_packed(c, upto).await?
        } else {
            let sql = format!(
                "SELECT {} FROM {} WHERE {} <= $1 ORDER BY {}",
                self.cols, self.name, self.id, self.order
            );
            let mut out = C::with_room(0);
            stream_into(c, sql, &[upto], &mut out).await?;
            out
        };
        tracing::debug!(
            table = self.name,
            rows = rows.len(),
            read_ms = started.elapsed().as_millis() as u64,
            "table read in full"
        );
        Ok(rows)
    }

    /// [`Table::all`] on SQLite: pages of packed rows (see the module
    /// note), each after the last id of the one before, then sorted.
    async fn all_packed(&self, c: &mut AnyConnection, upto: i64) -> Result<C, StoreError> {
        let (cols, name, id) = (self.cols, self.name, self.id);
        let sql = format!(
            "SELECT json_group_array(json_array({cols})), MAX({id}) FROM \
             (SELECT {cols} FROM {name} WHERE {id} > $1 AND {id} <= $2 ORDER BY {id} LIMIT {PAGE_ROWS})"
        );
        // Room for every row of the table up front (SQLite counts its
        // smallest index: 0.1 s for 10M touches), where a vector of
        // gigabytes grown by doubling would copy itself each time.
        let count = format!("SELECT COUNT(*) FROM {name}");
        let rows: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(count))
            .fetch_one(&mut *c)
            .await?;
        // With room to spare (1/64), so that the first rows kept after
        // the read do not copy the whole vector into one twice its size.
        let mut out = C::with_room(usize::try_from(rows).unwrap_or(0));
        let mut after = i64::MIN;
        loop {
            let page = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(after)
                .bind(upto)
                .fetch_one(&mut *c)
                .await?;
            let Some(last) = page.opt_int(1)? else {
                break;
            };
            unpack(&page.str(0)?, cols, &mut out)?;
            after = last;
        }
        out.sort_by(self.key);
        Ok(out)
    }

    /// [`Table::all`] from a connection of its own to an SQLite file
    /// ([`crate::bulk`]): one statement stepped on the calling (blocking)
    /// thread, then sorted.
    fn all_from_file(&self, r: &bulk::Reader, upto: i64) -> Result<C, StoreError> {
        let started = std::time::Instant::now();
        // Room for every row up front, and 1/64 to spare: see all_packed.
        let mut out = C::with_room(r.count(self.name)?);
        let sql = format!(
            "SELECT {} FROM {} WHERE {} <= ?1",
            self.cols, self.name, self.id
        );
        r.each(&sql, upto, |row| {
            out.extend([T::read(row)?]);
            Ok(())
        })?;
        out.sort_by(self.key);
        tracing::debug!(
            table = self.name,
            rows = out.len(),
            read_ms = started.elapsed().as_millis() as u64,
            "table read in full from the file"
        );
        Ok(out)
    }

    /// Rows with `after < id <= upto`, plus the rows with these ids.
    async fn since(
        &self,
        c: &mut AnyConnection,
        after: i64,
        upto: i64,
        ids: &BTreeSet<i64>,
    ) -> Result<Vec<T>, StoreError> {
        let mut out = if upto > after {
            let sql = format!(
                "SELECT {} FROM {} WHERE id > $1 AND id <= $2",
                self.cols, self.name
            );
            stream(c, sql, &[after, upto]).await?
        } else {
            Vec::new()
        };
        let ids: Vec<i64> = ids.iter().copied().filter(|&i| i <= after).collect();
        for chunk in ids.chunks(IDS_PER_QUERY) {
            // Only numbered placeholders are formatted in; ids are bound.
            let marks: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "SELECT {} FROM {} WHERE id IN ({})",
                self.cols,
                self.name,
                marks.join(", ")
            );
            out.extend(stream(c, sql, chunk).await?);
        }
        Ok(out)
    }

    /// What changed in this table between two marks.
    async fn delta(
        &self,
        c: &mut AnyConnection,
        after: i64,
        upto: i64,
        changed: Option<&BTreeSet<i64>>,
    ) -> Result<Part<T, C>, StoreError> {
        let empty = BTreeSet::new();
        let changed = changed.unwrap_or(&empty);
        if changed.len() > RELOAD_ABOVE {
            return Ok(Part::All(self.all(c, upto).await?));
        }
        Ok(Part::Rows {
            rows: self.since(c, after, upto, changed).await?,
            replaced: changed.iter().copied().filter(|&i| i <= after).collect(),
        })
    }
}

/// What a delta holds for one table.
#[derive(Debug)]
pub enum Part<T, C = Vec<T>> {
    /// The whole table, read again.
    All(C),
    /// New and updated rows; `replaced` are the ids already held that the
    /// updated rows replace.
    Rows {
        rows: Vec<T>,
        replaced: BTreeSet<i64>,
    },
}

/// Everything new in the store between two [`Marks`], read before it is
/// applied so readers of the kept snapshot wait only for [`Warm::apply`].
#[derive(Debug)]
pub struct Delta {
    to: Marks,
    people: Part<Person>,
    accounts: Part<Account>,
    touches: Part<Touch, Touches>,
    activities: Part<Activity, Activities>,
    deals: Part<Deal>,
    campaigns: Option<Vec<Campaign>>,
    transitions: Vec<Transition>,
}

impl Delta {
    /// New or changed rows in it (0: nothing to apply).
    pub fn len(&self) -> usize {
        fn n<T, C: Kept<T>>(p: &Part<T, C>) -> usize {
            match p {
                Part::All(v) => v.len(),
                Part::Rows { rows, .. } => rows.len(),
            }
        }
        n(&self.people)
            + n(&self.accounts)
            + n(&self.touches)
            + n(&self.activities)
            + n(&self.deals)
            + self.campaigns.as_ref().map_or(0, Vec::len)
            + self.transitions.len()
    }

    /// True when it changes nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The kept history and how far it goes.
#[derive(Clone, Debug, Default)]
pub struct Warm {
    pub snap: Snapshot,
    pub marks: Marks,
}

impl Warm {
    /// Reads the whole history up to the current marks, on two pooled
    /// connections at once (see [`lanes`]).
    pub async fn load_from(store: &Store) -> Result<Warm, StoreError> {
        let m = marks(&mut *store.conn().await?).await?;
        let snap = read_in_lanes(store, Tbl::needed(Need::ALL), m).await?;
        Ok(Warm { snap, marks: m })
    }

    /// Reads what is new since [`Warm::marks`] up to `to` (from [`marks`]).
    pub async fn delta(&self, c: &mut AnyConnection, to: Marks) -> Result<Delta, StoreError> {
        let from = self.marks;
        let changed = changed_ids(c, from.changes, to.changes).await?;
        let campaigns_changed = to.campaigns > from.campaigns || changed.contains_key("campaigns");
        Ok(Delta {
            to,
            people: PEOPLE
                .delta(c, from.people, to.people, changed.get("people"))
                .await?,
            accounts: ACCOUNTS
                .delta(c, from.accounts, to.accounts, changed.get("accounts"))
                .await?,
            touches: TOUCHES
                .delta(c, from.touches, to.touches, changed.get("touches"))
                .await?,
            activities: ACTIVITIES
                .delta(c, from.activities, to.activities, changed.get("activities"))
                .await?,
            deals: DEALS
                .delta(c, from.deals, to.deals, changed.get("deals"))
                .await?,
            // Few rows, and a full read keeps the backend's order of a
            // campaign without start: read them all again on any change.
            campaigns: if campaigns_changed {
                Some(CAMPAIGNS.all(c, to.campaigns).await?)
            } else {
                None
            },
            transitions: if to.transitions > from.transitions {
                let sql = format!(
                    "SELECT {TRANSITION_COLS} FROM transitions WHERE seq > $1 AND seq <= $2"
                );
                stream(c, sql, &[from.transitions, to.transitions]).await?
            } else {
                Vec::new()
            },
        })
    }

    /// Applies a delta read by [`Warm::delta`] from these marks.
    pub fn apply(&mut self, d: Delta) {
        let s = &mut self.snap;
        apply(&mut s.people, d.people, |p| p.id, PEOPLE.key);
        apply(&mut s.accounts, d.accounts, |a| a.id, ACCOUNTS.key);
        apply_timeline(&mut s.touches, d.touches, |t| t.id);
        apply_timeline(&mut s.activities, d.activities, |a| a.id);
        apply(&mut s.deals, d.deals, |x| x.id, DEALS.key);
        if let Some(c) = d.campaigns {
            s.campaigns = c;
        }
        let (people, accounts) = d
            .transitions
            .into_iter()
            .partition(|t| !t.subject.is_account());
        merge_timeline(&mut s.transitions, people);
        merge_timeline(&mut s.account_transitions, accounts);
        self.marks = d.to;
    }

    /// Reads and applies what is new; returns how many rows it brought.
    pub async fn refresh(&mut self, c: &mut AnyConnection) -> Result<usize, StoreError> {
        let to = marks(c).await?;
        if to == self.marks {
            return Ok(0);
        }
        let d = self.delta(c, to).await?;
        let n = d.len();
        self.apply(d);
        Ok(n)
    }
}

/// Which of the large tables a cold reader needs besides people, accounts,
/// transitions and deals (every metric needs those).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Need {
    pub touches: bool,
    pub activities: bool,
    pub campaigns: bool,
}

impl Need {
    /// Every table (what [`crate::repo::snapshot`] reads).
    pub const ALL: Need = Need {
        touches: true,
        activities: true,
        campaigns: true,
    };
}

/// A [`Snapshot`] of what `need` asks for (the others left empty), streamed
/// on two pooled connections at once (see [`lanes`]): a cold command that
/// needs no touches (the waterfall by source) does not read the largest
/// table.
pub async fn snapshot_from(store: &Store, need: Need) -> Result<Snapshot, StoreError> {
    let m = marks(&mut *store.conn().await?).await?;
    read_in_lanes(store, Tbl::needed(need), m).await
}

/// What reads a history's transitions one at a time instead of holding
/// them all ([`snapshot_streaming`]).
pub trait TransitionSink: Send + 'static {
    /// What the sink makes of them.
    type Out: Send + 'static;
    /// One transition, a person's or an account's, in no particular order.
    fn push(&mut self, t: TransitionRef<'_>);
    /// Called once every transition was pushed, on the thread that read
    /// them (so its work overlaps the rest of the read).
    fn finish(self) -> Self::Out;
}

/// [`snapshot_from`] without transitions (both of its transition lists
/// stay empty): each transition is handed to `sink` as it is read
/// instead, never all held at once, while the snapshot's tables are read
/// beside it. For a reader that keeps less of a transition than the whole
/// row (the cold waterfall's replay keeps 48 bytes of each).
pub async fn snapshot_streaming<S: TransitionSink>(
    store: &Store,
    need: Need,
    mut sink: S,
) -> Result<(Snapshot, S::Out), StoreError> {
    let m = marks(&mut *store.conn().await?).await?;
    let tables: Vec<Tbl> = Tbl::needed(need)
        .into_iter()
        .filter(|&t| t != Tbl::Transitions)
        .collect();
    let Some(file) = store.file() else {
        // No file to read beside the pool: the rows read as a whole.
        let snap = read_in_lanes(store, tables, m).await?;
        let all = TRANSITIONS
            .all(&mut *store.conn().await?, m.transitions)
            .await?;
        for t in all.people.iter().chain(&all.accounts) {
            sink.push(t);
        }
        return Ok((snap, sink.finish()));
    };
    let stream = FileLane::start(file, move |r| {
        let sql = format!("SELECT {TRANSITION_COLS} FROM transitions WHERE seq <= ?1");
        r.each(&sql, m.transitions, |row| {
            sink.push(TransitionRef::from(&Transition::read(row)?));
            Ok(())
        })?;
        Ok(sink.finish())
    })?;
    let snap = read_in_lanes(store, tables, m).await?;
    Ok((snap, stream.join().await?))
}

/// A table of a full read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tbl {
    People,
    Accounts,
    Transitions,
    Touches,
    Activities,
    Deals,
    Campaigns,
}

/// The rows of one [`Tbl`].
// One value per table of a read: its size does not matter.
#[allow(clippy::large_enum_variant)]
enum Rows {
    People(Vec<Person>),
    Accounts(Vec<Account>),
    Transitions(SplitTransitions),
    Touches(Touches),
    Activities(Activities),
    Deals(Vec<Deal>),
    Campaigns(Vec<Campaign>),
}

impl Tbl {
    /// The tables `need` asks for.
    fn needed(need: Need) -> Vec<Tbl> {
        let mut out = vec![Tbl::Transitions, Tbl::People, Tbl::Accounts, Tbl::Deals];
        for (wanted, t) in [
            (need.touches, Tbl::Touches),
            (need.activities, Tbl::Activities),
            (need.campaigns, Tbl::Campaigns),
        ] {
            if wanted {
                out.push(t);
            }
        }
        out
    }

    /// Its mark, the largest id to read.
    fn mark(self, m: Marks) -> i64 {
        match self {
            Tbl::People => m.people,
            Tbl::Accounts => m.accounts,
            Tbl::Transitions => m.transitions,
            Tbl::Touches => m.touches,
            Tbl::Activities => m.activities,
            Tbl::Deals => m.deals,
            Tbl::Campaigns => m.campaigns,
        }
    }

    /// Roughly how long its full read takes: rows (ids are dense) times
    /// the microseconds per row measured on the large demo (a person row,
    /// with its names and custom fields, costs about twice a transition).
    fn cost(self, m: Marks) -> i64 {
        let per_row = match self {
            Tbl::People | Tbl::Deals => 4,
            _ => 2,
        };
        self.mark(m).max(0).saturating_mul(per_row)
    }

    async fn read(self, c: &mut AnyConnection, m: Marks) -> Result<Rows, StoreError> {
        let upto = self.mark(m);
        Ok(match self {
            Tbl::People => Rows::People(PEOPLE.all(c, upto).await?),
            Tbl::Accounts => Rows::Accounts(ACCOUNTS.all(c, upto).await?),
            Tbl::Transitions => Rows::Transitions(TRANSITIONS.all(c, upto).await?),
            Tbl::Touches => Rows::Touches(TOUCHES.all(c, upto).await?),
            Tbl::Activities => Rows::Activities(ACTIVITIES.all(c, upto).await?),
            Tbl::Deals => Rows::Deals(DEALS.all(c, upto).await?),
            Tbl::Campaigns => Rows::Campaigns(CAMPAIGNS.all(c, upto).await?),
        })
    }
}

impl Tbl {
    /// [`Tbl::read`] from a connection of its own to an SQLite file.
    fn read_file(self, r: &bulk::Reader, m: Marks) -> Result<Rows, StoreError> {
        let upto = self.mark(m);
        Ok(match self {
            Tbl::People => Rows::People(PEOPLE.all_from_file(r, upto)?),
            Tbl::Accounts => Rows::Accounts(ACCOUNTS.all_from_file(r, upto)?),
            Tbl::Transitions => Rows::Transitions(TRANSITIONS.all_from_file(r, upto)?),
            Tbl::Touches => Rows::Touches(TOUCHES.all_from_file(r, upto)?),
            Tbl::Activities => Rows::Activities(ACTIVITIES.all_from_file(r, upto)?),
            Tbl::Deals => Rows::Deals(DEALS.all_from_file(r, upto)?),
            Tbl::Campaigns => Rows::Campaigns(CAMPAIGNS.all_from_file(r, upto)?),
        })
    }
}

/// Reads `tables` one after the other on `c`, each up to its mark in `m`.
async fn read_tables(
    c: &mut AnyConnection,
    tables: &[Tbl],
    m: Marks,
) -> Result<Vec<Rows>, StoreError> {
    let mut out = Vec::with_capacity(tables.len());
    for t in tables {
        out.push(t.read(c, m).await?);
    }
    Ok(out)
}

/// The tables split into two lanes of about equal [`Tbl::cost`], largest
/// first, each to the lane with less work so far.
///
/// A full read is about one thread's work per lane (from a file: the
/// thread steps SQLite and builds the rows). Two lanes use both cores of a
/// laptop and leave the pool's connections to requests and writes.
fn lanes(mut tables: Vec<Tbl>, m: Marks) -> [Vec<Tbl>; 2] {
    tables.sort_by_key(|t| std::cmp::Reverse(t.cost(m)));
    let mut lanes: [Vec<Tbl>; 2] = [Vec::new(), Vec::new()];
    let mut work = [0i64; 2];
    for t in tables {
        let i = usize::from(work[1] < work[0]);
        work[i] += t.cost(m);
        lanes[i].push(t);
    }
    lanes
}

/// Reads `tables` up to `m` in two [`lanes`], each on a connection of its
/// own (to the file, or pooled), and puts the snapshot together.
async fn read_in_lanes(store: &Store, tables: Vec<Tbl>, m: Marks) -> Result<Snapshot, StoreError> {
    let [first, second] = lanes(tables, m);
    if let Some(file) = store.file() {
        let read = |tables: Vec<Tbl>| {
            move |r: &bulk::Reader| -> Result<Vec<Rows>, StoreError> {
                tables.iter().map(|t| t.read_file(r, m)).collect()
            }
        };
        let other = FileLane::start(file, read(first))?;
        let mut rows = FileLane::start(file, read(second))?.join().await?;
        rows.extend(other.join().await?);
        return Ok(assemble(rows));
    }
    let mut c = store.conn().await?;
    let mut other = Lane(tokio::spawn(
        async move { read_tables(&mut c, &first, m).await },
    ));
    let mut rows = read_tables(&mut *store.conn().await?, &second, m).await?;
    match (&mut other.0).await {
        Ok(r) => rows.extend(r?),
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
    Ok(assemble(rows))
}

/// The task of a second lane, aborted when the read that spawned it is
/// dropped (a server stopped while it starts, or the other lane failed),
/// so that its connection goes back to the pool.
struct Lane<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for Lane<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A read of an SQLite file on a blocking thread, on a connection of its
/// own; interrupted when dropped unjoined (as [`Lane`] aborts its task).
struct FileLane<T> {
    task: tokio::task::JoinHandle<Result<T, StoreError>>,
    interrupt: Interrupt,
}

impl<T: Send + 'static> FileLane<T> {
    fn start(
        file: &std::path::Path,
        read: impl FnOnce(&bulk::Reader) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<FileLane<T>, StoreError> {
        let r = bulk::Reader::open(file)?;
        let interrupt = Interrupt(Some(r.interrupt_handle()));
        let task = tokio::task::spawn_blocking(move || read(&r));
        Ok(FileLane { task, interrupt })
    }

    async fn join(self) -> Result<T, StoreError> {
        let FileLane {
            task,
            mut interrupt,
        } = self;
        let out = match task.await {
            Ok(r) => r,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        };
        interrupt.0 = None;
        out
    }
}

/// Interrupts the statement of a [`FileLane`] when dropped while armed.
struct Interrupt(Option<rusqlite::InterruptHandle>);

impl Drop for Interrupt {
    fn drop(&mut self) {
        if let Some(h) = &self.0 {
            h.interrupt();
        }
    }
}

/// The snapshot of the rows read, tables not read left empty.
fn assemble(rows: Vec<Rows>) -> Snapshot {
    let mut s = Snapshot::default();
    for r in rows {
        match r {
            Rows::People(v) => s.people = v,
            Rows::Accounts(v) => s.accounts = v,
            Rows::Transitions(v) => (s.transitions, s.account_transitions) = (v.people, v.accounts),
            Rows::Touches(v) => s.touches = v,
            Rows::Activities(v) => s.activities = v,
            Rows::Deals(v) => s.deals = v,
            Rows::Campaigns(v) => s.campaigns = v,
        }
    }
    s
}

/// Whether `c` is an SQLite connection (full reads are packed there).
fn is_sqlite(c: &AnyConnection) -> bool {
    c.backend_name().eq_ignore_ascii_case("sqlite")
}

/// Ids updated in place per table, from `row_changes` between two marks.
async fn changed_ids(
    c: &mut AnyConnection,
    after: i64,
    upto: i64,
) -> Result<BTreeMap<String, BTreeSet<i64>>, StoreError> {
    let mut out: BTreeMap<String, BTreeSet<i64>> = BTreeMap::new();
    if upto <= after {
        return Ok(out);
    }
    let mut rows = sqlx::query("SELECT tbl, row_id FROM row_changes WHERE seq > $1 AND seq <= $2")
        .bind(after)
        .bind(upto)
        .fetch(c);
    while let Some(r) = rows.try_next().await? {
        out.entry(r.text(0)?).or_default().insert(r.int(1)?);
    }
    Ok(out)
}

/// [`apply`] to a table kept by column (touches, activities): the rows
/// after the first new one come out as rows, take the new ones in and go
/// back.
fn apply_timeline<C: Columns>(
    v: &mut Timeline<C>,
    part: Part<C::Row, Timeline<C>>,
    id: impl Fn(&C::Ref<'_>) -> i64,
) {
    match part {
        Part::All(all) => *v = all,
        Part::Rows { rows, replaced } => {
            if !replaced.is_empty() {
                v.retain(|r| !replaced.contains(&id(r)));
            }
            merge_timeline(v, rows);
        }
    }
}

/// [`merge`] for a table kept by column: the kept rows after the first new
/// one come out as rows, take the new ones in and go back.
fn merge_timeline<C: Columns>(v: &mut Timeline<C>, rows: Vec<C::Row>) {
    let Some(first) = rows.iter().map(C::key).min() else {
        return;
    };
    let mut tail = v.split_off(v.count_upto(first));
    merge(&mut tail, rows, C::key);
    v.extend(tail);
}

fn apply<T, K: Ord>(v: &mut Vec<T>, part: Part<T>, id: fn(&T) -> i64, key: fn(&T) -> K) {
    match part {
        Part::All(all) => *v = all,
        Part::Rows { rows, replaced } => {
            if !replaced.is_empty() {
                v.retain(|x| !replaced.contains(&id(x)));
            }
            merge(v, rows, key);
        }
    }
}

/// Merges `add` into `v`, both ordered by `key` afterwards; on equal keys
/// the kept row comes first. Only the kept rows after the first new one
/// move: new rows (a touch just tracked) usually sort at or near the end,
/// and rebuilding the whole vector copied a gigabyte of touches of the
/// large demo (4 s, and twice the memory) for each back-dated one.
fn merge<T, K: Ord>(v: &mut Vec<T>, mut add: Vec<T>, key: fn(&T) -> K) {
    let Some(first) = add.iter().map(key).min() else {
        return;
    };
    add.sort_by_key(key);
    let start = v.partition_point(|x| key(x) <= first);
    let tail: Vec<T> = v.drain(start..).collect();
    v.reserve(tail.len() + add.len());
    let mut a = tail.into_iter().peekable();
    let mut b = add.into_iter().peekable();
    loop {
        let take_a = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) => key(x) <= key(y),
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        v.extend(if take_a { a.next() } else { b.next() });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appended_since_means_no_mark_went_back_and_nothing_changed() {
        let old = Marks {
            people: 5,
            touches: 10,
            transitions: 7,
            changes: 2,
            ..Marks::default()
        };
        assert!(old.appended_since(&old));
        let more = Marks {
            touches: 12,
            people: 6,
            ..old
        };
        assert!(more.appended_since(&old));
        assert!(!old.appended_since(&more), "marks went back");
        let updated = Marks { changes: 3, ..more };
        assert!(!updated.appended_since(&old), "a row was updated in place");
    }

    fn touch(id: i64, at: i64) -> Touch {
        Touch {
            id,
            person_id: id % 5,
            at: Timestamp::from_millis(at),
            kind: "web_visit".into(),
            cost: (id % 3 == 0).then(|| tandem_core::Minor::new(id)),
            external_id: (id % 4 == 0).then(|| format!("t{id}").into()),
            ..Touch::default()
        }
    }

    fn activity(id: i64, at: i64) -> Activity {
        Activity {
            id,
            external_id: (id % 4 == 0).then(|| format!("a{id}").into()),
            person_id: id % 5,
            at: Timestamp::from_millis(at),
            kind: tandem_core::domain::ActivityKind::Call,
            actor: (id % 3 == 0).then(|| "ana".into()),
            outcome: None,
        }
    }

    /// A table kept by column sorts and takes deltas as a vector of rows
    /// does with the table's key: new rows before, among and after the
    /// kept ones, and kept rows updated in place (replaced).
    fn by_column_sorts_and_merges_as_rows_do<C: Columns>(
        table: &Table<C::Row, (Timestamp, i64), Timeline<C>>,
        row: fn(i64, i64) -> C::Row,
        update: fn(&mut C::Row),
        id: fn(&C::Row) -> i64,
    ) where
        C::Row: Clone + PartialEq + std::fmt::Debug,
    {
        let rows: Vec<C::Row> = (1..=60).map(|id| row(id, (id * 37) % 23)).collect();
        let mut kept = Timeline::<C>::from(rows.clone());
        Kept::sort_by(&mut kept, table.key);
        let mut want = rows;
        want.sort_unstable_by_key(table.key);
        assert_eq!(kept.to_vec(), want);
        for (round, at) in [(0, -1), (1, 10), (2, 40), (3, 11)] {
            let base = 100 + round * 10;
            let add: Vec<C::Row> = (0..4).map(|k| row(base + k, at + k)).collect();
            let mut updated = row(7 + round, at);
            update(&mut updated);
            let replaced: BTreeSet<i64> = [id(&updated)].into();
            let rows: Vec<C::Row> = add.into_iter().chain([updated]).collect();
            let (r, ids) = (rows.clone(), replaced.clone());
            apply(
                &mut want,
                Part::Rows {
                    rows: r,
                    replaced: ids,
                },
                id,
                table.key,
            );
            apply_timeline(&mut kept, Part::Rows { rows, replaced }, |r| {
                id(&C::to_row(r))
            });
            assert_eq!(kept.to_vec(), want, "round {round}");
        }
    }

    #[test]
    fn touches_by_column_sort_and_merge_as_rows_do() {
        by_column_sorts_and_merges_as_rows_do(
            &TOUCHES,
            touch,
            |t| t.kind = "form_fill".into(),
            |t| t.id,
        );
    }

    #[test]
    fn activities_by_column_sort_and_merge_as_rows_do() {
        by_column_sorts_and_merges_as_rows_do(
            &ACTIVITIES,
            activity,
            |a| a.kind = tandem_core::domain::ActivityKind::Demo,
            |a| a.id,
        );
    }

    #[test]
    fn merge_keeps_order_and_appends_when_it_can() {
        let mut v = vec![1, 3, 5];
        merge(&mut v, vec![6, 9, 7], |x| *x);
        assert_eq!(v, [1, 3, 5, 6, 7, 9]);
        merge(&mut v, vec![4, 0, 8], |x| *x);
        assert_eq!(v, [0, 1, 3, 4, 5, 6, 7, 8, 9]);
        let mut e: Vec<i32> = Vec::new();
        merge(&mut e, vec![2, 1], |x| *x);
        assert_eq!(e, [1, 2]);
        merge(&mut e, Vec::new(), |x| *x);
        assert_eq!(e, [1, 2]);
    }

    #[test]
    fn merge_puts_kept_rows_first_on_equal_keys() {
        // (key, which): 'k' kept, 'n' new.
        let mut v = vec![(1, 'k'), (2, 'k'), (2, 'k'), (4, 'k')];
        merge(&mut v, vec![(3, 'n'), (2, 'n'), (5, 'n'), (0, 'n')], |x| {
            x.0
        });
        assert_eq!(
            v,
            [
                (0, 'n'),
                (1, 'k'),
                (2, 'k'),
                (2, 'k'),
                (2, 'n'),
                (3, 'n'),
                (4, 'k'),
                (5, 'n')
            ]
        );
    }
}

#[cfg(test)]
mod lane_tests {
    use super::{lanes, Marks, Need, Tbl};

    /// The tables of the large demo's marks: touches alone in one lane,
    /// everything else in the other; without touches, transitions alone
    /// against people, accounts and deals (8.5 s against 6.6 s there).
    #[test]
    fn lanes_balance_the_large_demo() {
        let m = Marks {
            accounts: 300_000,
            people: 1_200_000,
            touches: 10_260_928,
            activities: 2_797_898,
            deals: 291_044,
            campaigns: 56,
            transitions: 3_600_791,
            changes: 0,
        };
        let [a, b] = lanes(Tbl::needed(Need::ALL), m);
        assert_eq!(a, [Tbl::Touches]);
        assert_eq!(
            b,
            [
                Tbl::Transitions,
                Tbl::Activities,
                Tbl::People,
                Tbl::Deals,
                Tbl::Accounts,
                Tbl::Campaigns
            ]
        );
        let few = Need {
            touches: false,
            activities: false,
            campaigns: false,
        };
        let [a, b] = lanes(Tbl::needed(few), m);
        assert_eq!(a, [Tbl::Transitions]);
        assert_eq!(b, [Tbl::People, Tbl::Deals, Tbl::Accounts]);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod file_lane_tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use super::FileLane;

    /// A read dropped before it is joined (a server stopped while its
    /// history is read) stops its statement instead of running on.
    #[test]
    fn a_file_lane_dropped_unjoined_interrupts_its_statement() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        rusqlite::Connection::open(&path)
            .unwrap()
            .execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY)")
            .unwrap();
        let rt = tokio::runtime::Runtime::new().unwrap();
        let (send, done) = mpsc::channel();
        let lane = rt.block_on(async {
            let lane = FileLane::start(&path, move |r| {
                // Counts forever unless interrupted.
                let endless = "WITH RECURSIVE c(x) AS (SELECT ?1 UNION ALL SELECT x + 1 FROM c) \
                               SELECT x FROM c";
                let out = r.each(endless, 1, |_| Ok(()));
                send.send(out.map_err(|e| e.to_string())).unwrap();
                Ok(())
            });
            tokio::time::sleep(Duration::from_millis(50)).await;
            lane
        });
        drop(lane.unwrap());
        let out = done.recv_timeout(Duration::from_secs(20));
        // Without the interrupt the statement would still run: do not
        // wait for it when the runtime goes.
        rt.shutdown_timeout(Duration::from_millis(100));
        assert!(out.unwrap().unwrap_err().contains("interrupt"));
    }
}
