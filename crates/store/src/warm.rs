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
//! One known gap on PostgreSQL: a transaction that took an id before another
//! one but commits after a refresh has seen the later id is not seen (its id
//! is below the mark). SQLite has one writer at a time, so ids become visible
//! in order there.

use std::collections::{BTreeMap, BTreeSet};

use futures_util::TryStreamExt;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use tandem_core::domain::{Subject, Transition};

use crate::repo::{
    account_row, activity_row, campaign_row, deal_row, person_row, touch_row, transition_row,
    Snapshot, ACCOUNT_COLS, ACTIVITY_COLS, CAMPAIGN_COLS, DEAL_COLS, PERSON_COLS, TOUCH_COLS,
    TRANSITION_COLS,
};
use crate::StoreError;

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
    let g = |i: usize| r.try_get::<i64, _>(i);
    Ok(Marks {
        accounts: g(0)?,
        people: g(1)?,
        touches: g(2)?,
        activities: g(3)?,
        deals: g(4)?,
        campaigns: g(5)?,
        transitions: g(6)?,
        changes: g(7)?,
    })
}

/// Runs `sql` with the `binds` and maps each row as it arrives.
pub(crate) async fn stream<T>(
    c: &mut AnyConnection,
    sql: String,
    binds: &[i64],
    map: fn(&AnyRow) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for b in binds {
        q = q.bind(*b);
    }
    let mut rows = q.fetch(c);
    let mut out = Vec::new();
    while let Some(r) = rows.try_next().await? {
        out.push(map(&r)?);
    }
    Ok(out)
}

/// One fact table: its name, columns, `ORDER BY` of a full read and row reader.
struct Table<T> {
    name: &'static str,
    cols: &'static str,
    order: &'static str,
    row: fn(&AnyRow) -> Result<T, StoreError>,
}

const PEOPLE: Table<tandem_core::domain::Person> = Table {
    name: "people",
    cols: PERSON_COLS,
    order: "id",
    row: person_row,
};
const ACCOUNTS: Table<tandem_core::domain::Account> = Table {
    name: "accounts",
    cols: ACCOUNT_COLS,
    order: "id",
    row: account_row,
};
const TOUCHES: Table<tandem_core::domain::Touch> = Table {
    name: "touches",
    cols: TOUCH_COLS,
    order: "at, id",
    row: touch_row,
};
const ACTIVITIES: Table<tandem_core::domain::Activity> = Table {
    name: "activities",
    cols: ACTIVITY_COLS,
    order: "at, id",
    row: activity_row,
};
const DEALS: Table<tandem_core::domain::Deal> = Table {
    name: "deals",
    cols: DEAL_COLS,
    order: "created_at, id",
    row: deal_row,
};
const CAMPAIGNS: Table<tandem_core::domain::Campaign> = Table {
    name: "campaigns",
    cols: CAMPAIGN_COLS,
    order: "starts_at, id",
    row: campaign_row,
};

impl<T> Table<T> {
    /// Every row up to `upto`, in the order of a full read.
    async fn all(&self, c: &mut AnyConnection, upto: i64) -> Result<Vec<T>, StoreError> {
        let sql = format!(
            "SELECT {} FROM {} WHERE id <= $1 ORDER BY {}",
            self.cols, self.name, self.order
        );
        stream(c, sql, &[upto], self.row).await
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
            stream(c, sql, &[after, upto], self.row).await?
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
            out.extend(stream(c, sql, chunk, self.row).await?);
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
    ) -> Result<Part<T>, StoreError> {
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
pub enum Part<T> {
    /// The whole table, read again.
    All(Vec<T>),
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
    people: Part<tandem_core::domain::Person>,
    accounts: Part<tandem_core::domain::Account>,
    touches: Part<tandem_core::domain::Touch>,
    activities: Part<tandem_core::domain::Activity>,
    deals: Part<tandem_core::domain::Deal>,
    campaigns: Option<Vec<tandem_core::domain::Campaign>>,
    transitions: Vec<Transition>,
}

impl Delta {
    /// New or changed rows in it (0: nothing to apply).
    pub fn len(&self) -> usize {
        fn n<T>(p: &Part<T>) -> usize {
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
    /// Reads the whole history up to the current marks.
    pub async fn load(c: &mut AnyConnection) -> Result<Warm, StoreError> {
        let m = marks(c).await?;
        let transitions = all_transitions(c, m.transitions).await?;
        let (transitions, account_transitions) = split(transitions);
        let snap = Snapshot {
            people: PEOPLE.all(c, m.people).await?,
            accounts: ACCOUNTS.all(c, m.accounts).await?,
            transitions,
            account_transitions,
            touches: TOUCHES.all(c, m.touches).await?,
            activities: ACTIVITIES.all(c, m.activities).await?,
            deals: DEALS.all(c, m.deals).await?,
            campaigns: CAMPAIGNS.all(c, m.campaigns).await?,
        };
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
                stream(c, sql, &[from.transitions, to.transitions], transition_row).await?
            } else {
                Vec::new()
            },
        })
    }

    /// Applies a delta read by [`Warm::delta`] from these marks.
    pub fn apply(&mut self, d: Delta) {
        let s = &mut self.snap;
        apply(&mut s.people, d.people, |p| p.id, |p| p.id);
        apply(&mut s.accounts, d.accounts, |a| a.id, |a| a.id);
        apply(&mut s.touches, d.touches, |t| t.id, |t| (t.at, t.id));
        apply(&mut s.activities, d.activities, |a| a.id, |a| (a.at, a.id));
        apply(&mut s.deals, d.deals, |x| x.id, |x| (x.created_at, x.id));
        if let Some(c) = d.campaigns {
            s.campaigns = c;
        }
        let (people, accounts) = split(d.transitions);
        merge(&mut s.transitions, people, |t| (t.at, t.seq));
        merge(&mut s.account_transitions, accounts, |t| (t.at, t.seq));
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

/// A [`Snapshot`] of what `need` asks for (the others left empty), streamed:
/// a cold command that needs no touches (the waterfall by source) does not
/// read the largest table.
pub async fn snapshot_of(c: &mut AnyConnection, need: Need) -> Result<Snapshot, StoreError> {
    let all = i64::MAX;
    let (transitions, account_transitions) = split(all_transitions(c, all).await?);
    Ok(Snapshot {
        people: PEOPLE.all(c, all).await?,
        accounts: ACCOUNTS.all(c, all).await?,
        transitions,
        account_transitions,
        touches: if need.touches {
            TOUCHES.all(c, all).await?
        } else {
            Vec::new()
        },
        activities: if need.activities {
            ACTIVITIES.all(c, all).await?
        } else {
            Vec::new()
        },
        deals: DEALS.all(c, all).await?,
        campaigns: if need.campaigns {
            CAMPAIGNS.all(c, all).await?
        } else {
            Vec::new()
        },
    })
}

async fn all_transitions(c: &mut AnyConnection, upto: i64) -> Result<Vec<Transition>, StoreError> {
    let sql = format!("SELECT {TRANSITION_COLS} FROM transitions WHERE seq <= $1 ORDER BY at, seq");
    stream(c, sql, &[upto], transition_row).await
}

/// People's transitions and accounts', each keeping its order.
fn split(all: Vec<Transition>) -> (Vec<Transition>, Vec<Transition>) {
    all.into_iter()
        .partition(|t| matches!(t.subject, Subject::Person(_)))
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
        let tbl: String = r.try_get(0)?;
        out.entry(tbl).or_default().insert(r.try_get(1)?);
    }
    Ok(out)
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

/// Merges `add` into `v`, both ordered by `key` afterwards. New rows usually
/// sort after every kept one, which is a plain append.
fn merge<T, K: Ord>(v: &mut Vec<T>, mut add: Vec<T>, key: fn(&T) -> K) {
    if add.is_empty() {
        return;
    }
    add.sort_by_key(key);
    let appends = match (v.last(), add.first()) {
        (Some(l), Some(f)) => key(l) <= key(f),
        _ => true,
    };
    if appends {
        v.append(&mut add);
        return;
    }
    let old = std::mem::take(v);
    let mut out = Vec::with_capacity(old.len() + add.len());
    let mut a = old.into_iter().peekable();
    let mut b = add.into_iter().peekable();
    loop {
        let take_a = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) => key(x) <= key(y),
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        let next = if take_a { a.next() } else { b.next() };
        out.extend(next);
    }
    *v = out;
}

#[cfg(test)]
mod tests {
    use super::{merge, Marks};

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
    }
}
