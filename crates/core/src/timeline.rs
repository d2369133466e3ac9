//! A table of timed rows kept by column in time order ([`Timeline`]):
//! how a kept history holds its touches ([`crate::touches::Touches`]) and
//! its sales activities ([`crate::activities::Activities`]).
//!
//! The timeline keeps what every such table has (the row's id and time,
//! and whether the rows are in (time, id) order) and the order-keeping
//! operations a kept history needs: sorting after a full read, counting
//! the rows before a key, splitting off and taking back the rows after a
//! back-dated one. The rest of a row is the table's own [`Columns`].

use std::hash::Hash;

use crate::columns::{gather, Codes, Ids};
use crate::metrics::Window;
use crate::time::Timestamp;

/// The columns of a [`Timeline`] besides each row's id and time.
pub trait Columns: Clone + std::fmt::Debug {
    /// The owned row.
    type Row;
    /// A row read back, its texts borrowed.
    type Ref<'a>: Copy + PartialEq + std::fmt::Debug
    where
        Self: 'a;
    /// Reads the optional columns row after row, for a scan.
    type Cursor<'a>: Clone + std::fmt::Debug
    where
        Self: 'a;

    /// Empty, with room for `n` rows.
    fn with_capacity(n: usize) -> Self;
    /// The row's time and id: the timeline's order.
    fn key(row: &Self::Row) -> (Timestamp, i64);
    /// Appends the rest of `row` as row `i` (the timeline keeps its key).
    fn push(&mut self, i: usize, row: Self::Row);
    /// A cursor at the first row.
    fn cursor(&self) -> Self::Cursor<'_>;
    /// Row `i` with its `id` and `at`; optional columns are read from
    /// `cursor` when given (rows asked in ascending order), else searched.
    fn get<'a>(
        &'a self,
        i: usize,
        id: i64,
        at: Timestamp,
        cursor: Option<&mut Self::Cursor<'a>>,
    ) -> Self::Ref<'a>;
    /// The owned row of a read one.
    fn to_row(r: &Self::Ref<'_>) -> Self::Row;
    /// An owned row as a read one.
    fn as_ref(row: &Self::Row) -> Self::Ref<'_>;
    /// Puts the rows in the order `order` (positions into the columns);
    /// `new[j]` is the new position of old row `j` (its inverse).
    fn gather(&mut self, order: &[u32], new: &[u32]);
    /// Keeps the first `len` rows.
    fn truncate(&mut self, len: usize);
    /// Bytes of its buffers (not of texts its values own).
    fn heap_bytes(&self) -> usize;
}

/// Rows kept by column, in the order they were pushed, or by time then id
/// after [`Timeline::sort`]: the order a kept history holds them in.
/// [`Timeline::iter`] reads them as rows.
#[derive(Clone, Debug)]
pub struct Timeline<C> {
    id: Ids,
    at: Vec<Timestamp>,
    cols: C,
    /// Whether the rows are in (at, id) order: every push so far came at
    /// or after the one before, or they were sorted since.
    sorted: bool,
}

impl<C: Columns> Default for Timeline<C> {
    fn default() -> Self {
        Timeline::with_capacity(0)
    }
}

impl<C: Columns> Timeline<C> {
    /// Empty.
    pub fn new() -> Self {
        Timeline::with_capacity(0)
    }

    /// Empty, with room for `n` rows and 1/64 more (see
    /// [`crate::columns::gather`]).
    pub fn with_capacity(n: usize) -> Self {
        let n = n + n / 64;
        Timeline {
            id: Ids::with_capacity(n),
            at: Vec::with_capacity(n),
            cols: C::with_capacity(n),
            sorted: true,
        }
    }

    /// How many rows it holds.
    pub fn len(&self) -> usize {
        self.at.len()
    }

    /// True when it holds none.
    pub fn is_empty(&self) -> bool {
        self.at.is_empty()
    }

    /// Appends `row` after the others.
    pub fn push(&mut self, row: C::Row) {
        let i = self.len();
        let (at, id) = C::key(&row);
        self.sorted &= i == 0 || self.key(i - 1) <= (at, id);
        self.id.push(id);
        self.at.push(at);
        self.cols.push(i, row);
    }

    /// The `i`th row (panics past the end, as a slice does).
    pub fn get(&self, i: usize) -> C::Ref<'_> {
        self.cols.get(i, self.id.get(i), self.at[i], None)
    }

    /// Every row, in the kept order.
    pub fn iter(&self) -> Iter<'_, C> {
        Iter {
            of: self,
            next: 0,
            cursor: self.cols.cursor(),
        }
    }

    /// Whether the rows are in (at, id) order: pushed in that order, or
    /// sorted since.
    pub fn is_sorted(&self) -> bool {
        self.sorted
    }

    /// Every row's time, in the kept order.
    pub fn ats(&self) -> &[Timestamp] {
        &self.at
    }

    /// The `i`th row's id.
    pub(crate) fn id(&self, i: usize) -> i64 {
        self.id.get(i)
    }

    /// The table's own columns.
    pub(crate) fn columns(&self) -> &C {
        &self.cols
    }

    /// Owned rows of every row.
    pub fn to_vec(&self) -> Vec<C::Row> {
        self.iter().map(|r| C::to_row(&r)).collect()
    }

    /// Sorts by time, then id.
    pub fn sort(&mut self) {
        // Each push already compared its key with the one before.
        if self.sorted {
            return;
        }
        let n = self.len();
        self.sorted = true;
        // The key with its position, then each column gathered once. A
        // full read comes by ascending id: the time alone then sorts it
        // the same way in two thirds of the memory.
        let ascending = (1..n).all(|i| self.id.get(i - 1) < self.id.get(i));
        let order = if ascending {
            order_by(n, |i| self.at[i])
        } else {
            order_by(n, |i| self.key(i))
        };
        self.id = self.id.gather(&order);
        self.at = gather(&self.at, &order);
        let mut new = vec![0u32; n];
        for (j, &old) in order.iter().enumerate() {
            new[old as usize] = j as u32;
        }
        self.cols.gather(&order, &new);
    }

    /// The `i`th row's time and id: its place in the (at, id) order.
    pub fn key(&self, i: usize) -> (Timestamp, i64) {
        (self.at[i], self.id.get(i))
    }

    /// How many rows have `value` in `column` (one of the table's own) and
    /// are within `window` and not after `as_of`: two binary searches and
    /// a scan of the window's codes when the rows are in time order (a
    /// kept history's are), else a scan of every row.
    pub(crate) fn count_code_within<T: Copy + Eq + Hash>(
        &self,
        column: &Codes<T>,
        value: T,
        window: Window,
        as_of: Timestamp,
    ) -> usize {
        let Some(code) = column.number_of(value) else {
            return 0;
        };
        let rows = if self.sorted {
            window.positions_in(&self.at, as_of)
        } else {
            0..self.len()
        };
        let inside = |i: usize| self.sorted || window.contains_as_of(self.at[i], as_of);
        column
            .numbers_in(rows.clone())
            .zip(rows)
            .filter(|&(c, i)| c == code && inside(i))
            .count()
    }

    /// How many rows come at or before `key` in the kept order (which
    /// must be sorted, see [`Timeline::sort`]).
    pub fn count_upto(&self, key: (Timestamp, i64)) -> usize {
        // The time first (one column), then the few sharing it.
        let lo = self.at.partition_point(|&a| a < key.0);
        let hi = self.at.partition_point(|&a| a <= key.0);
        lo + (lo..hi).take_while(|&i| self.id.get(i) <= key.1).count()
    }

    /// Removes the rows from position `from` on and returns them.
    pub fn split_off(&mut self, from: usize) -> Vec<C::Row> {
        let from = from.min(self.len());
        let tail: Vec<C::Row> = self.iter().skip(from).map(|r| C::to_row(&r)).collect();
        self.id.truncate(from);
        self.at.truncate(from);
        self.cols.truncate(from);
        tail
    }

    /// Keeps the rows `keep` says yes to, in their order.
    pub fn retain(&mut self, mut keep: impl FnMut(&C::Ref<'_>) -> bool) {
        let Some(first) = self.iter().position(|r| !keep(&r)) else {
            return;
        };
        let tail = self.split_off(first);
        // The first was already asked about (and is not kept).
        for r in tail.into_iter().skip(1) {
            if keep(&C::as_ref(&r)) {
                self.push(r);
            }
        }
    }

    /// Bytes of its buffers (not of the texts its rows own).
    pub fn heap_bytes(&self) -> usize {
        self.id.heap_bytes()
            + self.at.capacity() * std::mem::size_of::<Timestamp>()
            + self.cols.heap_bytes()
    }
}

/// Positions `0..n` sorted by `key` (ties by position).
fn order_by<K: Ord>(n: usize, key: impl Fn(usize) -> K) -> Vec<u32> {
    let mut keyed: Vec<(K, u32)> = (0..n).map(|i| (key(i), i as u32)).collect();
    keyed.sort_unstable();
    keyed.into_iter().map(|(_, i)| i).collect()
}

impl<C: Columns> PartialEq for Timeline<C> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl<C: Columns> Extend<C::Row> for Timeline<C> {
    fn extend<I: IntoIterator<Item = C::Row>>(&mut self, rows: I) {
        for r in rows {
            self.push(r);
        }
    }
}

impl<C: Columns> FromIterator<C::Row> for Timeline<C> {
    fn from_iter<I: IntoIterator<Item = C::Row>>(rows: I) -> Self {
        let mut out = Timeline::new();
        out.extend(rows);
        out
    }
}

impl<C: Columns> From<Vec<C::Row>> for Timeline<C> {
    fn from(rows: Vec<C::Row>) -> Self {
        let mut out = Timeline::with_capacity(rows.len());
        out.extend(rows);
        out
    }
}

/// The rows of [`Timeline::iter`], in the kept order.
#[derive(Clone, Debug)]
pub struct Iter<'a, C: Columns> {
    of: &'a Timeline<C>,
    next: usize,
    cursor: C::Cursor<'a>,
}

impl<'a, C: Columns> Iterator for Iter<'a, C> {
    type Item = C::Ref<'a>;

    fn next(&mut self) -> Option<C::Ref<'a>> {
        let i = self.next;
        if i >= self.of.len() {
            return None;
        }
        self.next += 1;
        let of = self.of;
        Some(
            of.cols
                .get(i, of.id.get(i), of.at[i], Some(&mut self.cursor)),
        )
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.of.len() - self.next;
        (left, Some(left))
    }

    fn nth(&mut self, n: usize) -> Option<C::Ref<'a>> {
        // Skips without reading the rows between (the cursor catches up).
        self.next = self.next.saturating_add(n).min(self.of.len());
        self.next()
    }
}

impl<C: Columns> ExactSizeIterator for Iter<'_, C> {}

impl<'a, C: Columns> IntoIterator for &'a Timeline<C> {
    type Item = C::Ref<'a>;
    type IntoIter = Iter<'a, C>;

    fn into_iter(self) -> Iter<'a, C> {
        self.iter()
    }
}
