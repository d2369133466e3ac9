//! A history's touches kept by column ([`Touches`]), read as [`TouchRef`]s.
//!
//! A touch as a row ([`Touch`]) is 72 bytes; kept by column with ids in
//! four bytes, its kind, channel, campaign, source and medium numbered in
//! a dictionary per column (one byte each while a column has at most 256
//! values) and the rarely filled cost and external id apart, it is 21.
//! The large demo's 10.3M touches were 0.74 GB of a server's memory.

use std::cmp::Ordering;

use std::sync::LazyLock;

use crate::columns::{gather, Codes, Cursor, Ids, Sparse};
use crate::domain::Touch;
use crate::metrics::Window;
use crate::money::Minor;
use crate::sym::Sym;
use crate::time::Timestamp;

/// Touches kept by column, in the order they were pushed, or by time
/// (`at`, then `id`) after [`Touches::sort`]: the order a kept history
/// holds them in. [`Touches::iter`] reads them as rows.
#[derive(Clone, Debug)]
pub struct Touches {
    id: Ids,
    person: Ids,
    at: Vec<Timestamp>,
    kind: Codes<Sym>,
    channel: Codes<Option<Sym>>,
    campaign: Codes<Option<Sym>>,
    source: Codes<Option<Sym>>,
    medium: Codes<Option<Sym>>,
    cost: Sparse<Minor>,
    external_id: Sparse<Box<str>>,
    /// Whether the touches are in (at, id) order: every push so far came
    /// at or after the one before, or they were sorted since.
    sorted: bool,
}

/// One touch of [`Touches`]: the fields of a [`Touch`], its external id
/// borrowed. [`TouchRef::to_touch`] makes the owned row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TouchRef<'a> {
    pub id: i64,
    pub external_id: Option<&'a str>,
    pub person_id: i64,
    pub at: Timestamp,
    pub kind: Sym,
    pub channel: Option<Sym>,
    pub campaign: Option<Sym>,
    pub source: Option<Sym>,
    pub medium: Option<Sym>,
    pub cost: Option<Minor>,
}

impl<'a> From<&'a Touch> for TouchRef<'a> {
    fn from(t: &'a Touch) -> Self {
        TouchRef {
            id: t.id,
            external_id: t.external_id.as_deref(),
            person_id: t.person_id,
            at: t.at,
            kind: t.kind,
            channel: t.channel,
            campaign: t.campaign,
            source: t.source,
            medium: t.medium,
            cost: t.cost,
        }
    }
}

impl TouchRef<'_> {
    /// The touch as an owned row.
    pub fn to_touch(&self) -> Touch {
        Touch {
            id: self.id,
            external_id: self.external_id.map(Box::from),
            person_id: self.person_id,
            at: self.at,
            kind: self.kind,
            channel: self.channel,
            campaign: self.campaign,
            source: self.source,
            medium: self.medium,
            cost: self.cost,
        }
    }

    /// The order of a kept history: by time, then id.
    pub fn key(&self) -> (Timestamp, i64) {
        (self.at, self.id)
    }
}

/// No touches, for a borrowed default ([`crate::metrics::History`]).
static NONE: LazyLock<Touches> = LazyLock::new(Touches::new);

impl Default for Touches {
    fn default() -> Self {
        Touches::new()
    }
}

impl Default for &Touches {
    fn default() -> Self {
        &NONE
    }
}

impl Touches {
    /// Empty.
    pub fn new() -> Self {
        Touches::with_capacity(0)
    }

    /// Empty, with room for `n` touches and 1/64 more (see
    /// [`crate::columns::gather`]).
    pub fn with_capacity(n: usize) -> Self {
        let n = n + n / 64;
        Touches {
            id: Ids::with_capacity(n),
            person: Ids::with_capacity(n),
            at: Vec::with_capacity(n),
            kind: Codes::with_capacity(n),
            channel: Codes::with_capacity(n),
            campaign: Codes::with_capacity(n),
            source: Codes::with_capacity(n),
            medium: Codes::with_capacity(n),
            cost: Sparse::default(),
            external_id: Sparse::default(),
            sorted: true,
        }
    }

    /// How many touches it holds.
    pub fn len(&self) -> usize {
        self.at.len()
    }

    /// True when it holds none.
    pub fn is_empty(&self) -> bool {
        self.at.is_empty()
    }

    /// Appends `t` after the others.
    pub fn push(&mut self, t: Touch) {
        let row = self.len();
        self.sorted &= row == 0 || self.key(row - 1) <= (t.at, t.id);
        self.id.push(t.id);
        self.person.push(t.person_id);
        self.at.push(t.at);
        self.kind.push(t.kind);
        self.channel.push(t.channel);
        self.campaign.push(t.campaign);
        self.source.push(t.source);
        self.medium.push(t.medium);
        if let Some(c) = t.cost {
            self.cost.push(row, c);
        }
        if let Some(x) = t.external_id {
            self.external_id.push(row, x);
        }
    }

    /// The `i`th touch (panics past the end, as a slice does).
    pub fn get(&self, i: usize) -> TouchRef<'_> {
        self.row(
            i,
            self.cost.get(i).copied(),
            self.external_id.get(i).map(|x| &**x),
        )
    }

    fn row<'a>(&'a self, i: usize, cost: Option<Minor>, ext: Option<&'a str>) -> TouchRef<'a> {
        TouchRef {
            id: self.id.get(i),
            external_id: ext,
            person_id: self.person.get(i),
            at: self.at[i],
            kind: self.kind.get(i),
            channel: self.channel.get(i),
            campaign: self.campaign.get(i),
            source: self.source.get(i),
            medium: self.medium.get(i),
            cost,
        }
    }

    /// Every touch, in the kept order.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            of: self,
            next: 0,
            cost: self.cost.cursor(),
            external_id: self.external_id.cursor(),
        }
    }

    /// Whether the touches are in (at, id) order: pushed in that order,
    /// or sorted since.
    pub fn is_sorted(&self) -> bool {
        self.sorted
    }

    /// Every touch's time, in the kept order.
    pub fn ats(&self) -> &[Timestamp] {
        &self.at
    }

    /// The touches of the people `wanted` says yes to, in the kept order:
    /// only the person column is read for the others (a page that shows
    /// a few people's touches reads 4 bytes a touch, not a whole row).
    pub fn of_people<'a>(
        &'a self,
        mut wanted: impl FnMut(i64) -> bool + 'a,
    ) -> impl Iterator<Item = TouchRef<'a>> + 'a {
        (0..self.len())
            .filter(move |&i| wanted(self.person.get(i)))
            .map(|i| self.get(i))
    }

    /// Every touch's person and key (at, id), in the kept order: the
    /// three columns alone.
    pub fn keys(&self) -> impl Iterator<Item = (i64, (Timestamp, i64))> + '_ {
        (0..self.len()).map(|i| (self.person.get(i), self.key(i)))
    }

    /// Owned rows of every touch.
    pub fn to_vec(&self) -> Vec<Touch> {
        self.iter().map(|t| t.to_touch()).collect()
    }

    /// Sorts by time, then id (the order [`TouchRef::key`] gives).
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
        self.person = self.person.gather(&order);
        self.at = gather(&self.at, &order);
        self.kind = self.kind.gather(&order);
        self.channel = self.channel.gather(&order);
        self.campaign = self.campaign.gather(&order);
        self.source = self.source.gather(&order);
        self.medium = self.medium.gather(&order);
        let mut new = vec![0u32; n];
        for (j, &old) in order.iter().enumerate() {
            new[old as usize] = j as u32;
        }
        self.cost = std::mem::take(&mut self.cost).moved(&new);
        self.external_id = std::mem::take(&mut self.external_id).moved(&new);
    }

    fn key(&self, i: usize) -> (Timestamp, i64) {
        (self.at[i], self.id.get(i))
    }

    /// How many touches of `kind` are within `window` and not after
    /// `as_of`: two binary searches and a scan of the window's kinds when
    /// the touches are in time order (a kept history's are), else a scan
    /// of every touch.
    pub fn count_within(&self, kind: &str, window: Window, as_of: Timestamp) -> usize {
        let Some(kind) = self.kind.number_of(Sym::new(kind)) else {
            return 0;
        };
        let (lo, hi) = if self.sorted {
            let lo = self.at.partition_point(|&at| at < window.from);
            (
                lo,
                self.at
                    .partition_point(|&at| at < window.to && at <= as_of)
                    .max(lo),
            )
        } else {
            (0, self.len())
        };
        let inside = |i: usize| self.sorted || window.contains_as_of(self.at[i], as_of);
        let kinds = self.kind.numbers_in(lo..hi);
        (lo..hi)
            .zip(kinds)
            .filter(|&(i, k)| k == kind && inside(i))
            .count()
    }

    /// How many touches come at or before `key` in the kept order (which
    /// must be sorted, see [`Touches::sort`]).
    pub fn count_upto(&self, key: (Timestamp, i64)) -> usize {
        // The time first (one column), then the few sharing it.
        let lo = self.at.partition_point(|&a| a < key.0);
        let hi = self.at.partition_point(|&a| a <= key.0);
        lo + (lo..hi)
            .take_while(|&i| self.id.get(i).cmp(&key.1) != Ordering::Greater)
            .count()
    }

    /// Removes the touches from position `from` on and returns them.
    pub fn split_off(&mut self, from: usize) -> Vec<Touch> {
        let from = from.min(self.len());
        let tail: Vec<Touch> = self.iter().skip(from).map(|t| t.to_touch()).collect();
        self.id.truncate(from);
        self.person.truncate(from);
        self.at.truncate(from);
        self.kind.truncate(from);
        self.channel.truncate(from);
        self.campaign.truncate(from);
        self.source.truncate(from);
        self.medium.truncate(from);
        self.cost.truncate(from);
        self.external_id.truncate(from);
        tail
    }

    /// Keeps the touches `keep` says yes to, in their order.
    pub fn retain(&mut self, mut keep: impl FnMut(&TouchRef<'_>) -> bool) {
        let Some(first) = self.iter().position(|t| !keep(&t)) else {
            return;
        };
        let tail = self.split_off(first);
        // The first was already asked about (and is not kept).
        for t in tail.into_iter().skip(1) {
            if keep(&TouchRef::from(&t)) {
                self.push(t);
            }
        }
    }

    /// Bytes of its buffers (not the external ids' text).
    pub fn heap_bytes(&self) -> usize {
        self.id.heap_bytes()
            + self.person.heap_bytes()
            + self.at.capacity() * std::mem::size_of::<Timestamp>()
            + self.kind.heap_bytes()
            + self.channel.heap_bytes()
            + self.campaign.heap_bytes()
            + self.source.heap_bytes()
            + self.medium.heap_bytes()
            + self.cost.heap_bytes()
            + self.external_id.heap_bytes()
    }
}

/// Positions `0..n` sorted by `key` (ties by position).
fn order_by<K: Ord>(n: usize, key: impl Fn(usize) -> K) -> Vec<u32> {
    let mut keyed: Vec<(K, u32)> = (0..n).map(|i| (key(i), i as u32)).collect();
    keyed.sort_unstable();
    keyed.into_iter().map(|(_, i)| i).collect()
}

impl PartialEq for Touches {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Extend<Touch> for Touches {
    fn extend<I: IntoIterator<Item = Touch>>(&mut self, rows: I) {
        for t in rows {
            self.push(t);
        }
    }
}

impl FromIterator<Touch> for Touches {
    fn from_iter<I: IntoIterator<Item = Touch>>(rows: I) -> Self {
        let mut out = Touches::default();
        out.extend(rows);
        out
    }
}

impl From<Vec<Touch>> for Touches {
    fn from(rows: Vec<Touch>) -> Self {
        let mut out = Touches::with_capacity(rows.len());
        out.extend(rows);
        out
    }
}

/// The touches of [`Touches::iter`], in the kept order.
#[derive(Clone, Debug)]
pub struct Iter<'a> {
    of: &'a Touches,
    next: usize,
    cost: Cursor<'a, Minor>,
    external_id: Cursor<'a, Box<str>>,
}

impl<'a> Iterator for Iter<'a> {
    type Item = TouchRef<'a>;

    fn next(&mut self) -> Option<TouchRef<'a>> {
        let i = self.next;
        if i >= self.of.len() {
            return None;
        }
        self.next += 1;
        let cost = self.cost.at(i).copied();
        Some(self.of.row(i, cost, self.external_id.at(i).map(|x| &**x)))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.of.len() - self.next;
        (left, Some(left))
    }

    fn nth(&mut self, n: usize) -> Option<TouchRef<'a>> {
        // Skips without reading the rows between (the cursors catch up).
        self.next = self.next.saturating_add(n).min(self.of.len());
        self.next()
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl<'a> IntoIterator for &'a Touches {
    type Item = TouchRef<'a>;
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(id: i64, person_id: i64, at: i64) -> Touch {
        Touch {
            id,
            person_id,
            at: Timestamp::from_millis(at),
            kind: Sym::from("web_visit"),
            channel: Some(Sym::from("organic")),
            campaign: (id % 3 == 0).then(|| Sym::from("spring")),
            source: Some(Sym::from("google")),
            medium: None,
            cost: (id % 4 == 0).then(|| Minor::new(id * 100)),
            external_id: (id % 5 == 0).then(|| format!("t-{id}").into()),
        }
    }

    fn rows(n: i64) -> Vec<Touch> {
        // Times out of id order, some shared.
        (1..=n)
            .map(|id| touch(id, id % 7, (id * 37) % 11))
            .collect()
    }

    #[test]
    fn rows_read_back_as_pushed_and_sort_like_the_rows() {
        let mut want = rows(40);
        let mut t = Touches::from(want.clone());
        assert_eq!(t.len(), 40);
        assert_eq!(t.to_vec(), want);
        assert_eq!(t.get(19).to_touch(), want[19]);
        t.sort();
        want.sort_by_key(|x| (x.at, x.id));
        assert_eq!(t.to_vec(), want);
        // By search and by scan alike.
        for (i, w) in want.iter().enumerate() {
            assert_eq!(&t.get(i).to_touch(), w);
        }
        assert!(t.iter().map(|x| x.key()).is_sorted());
    }

    #[test]
    fn sort_orders_by_id_within_a_time_when_ids_come_unordered() {
        let mut want = rows(30);
        want.reverse();
        let mut t = Touches::from(want.clone());
        t.sort();
        want.sort_by_key(|x| (x.at, x.id));
        assert_eq!(t.to_vec(), want);
    }

    #[test]
    fn split_off_retain_and_count_upto_keep_the_columns_aligned() {
        let mut all = rows(50);
        all.sort_by_key(|x| (x.at, x.id));
        let mut t = Touches::from(all.clone());
        let key = all[20].key_for_test();
        assert_eq!(t.count_upto(key), 21);
        assert_eq!(t.count_upto((Timestamp::from_millis(-1), 0)), 0);
        let tail = t.split_off(30);
        assert_eq!(tail, all[30..]);
        t.extend(tail);
        assert_eq!(t.to_vec(), all);
        t.retain(|x| x.id % 2 == 0);
        all.retain(|x| x.id % 2 == 0);
        assert_eq!(t.to_vec(), all);
        assert_eq!(t.iter().nth(3).map(|x| x.to_touch()), Some(all[3].clone()));
        let of_3: Vec<Touch> = t.of_people(|p| p == 3).map(|x| x.to_touch()).collect();
        let want: Vec<Touch> = all.iter().filter(|x| x.person_id == 3).cloned().collect();
        assert!(!want.is_empty());
        assert_eq!(of_3, want);
        let keys: Vec<_> = all.iter().map(|x| (x.person_id, (x.at, x.id))).collect();
        assert_eq!(t.keys().collect::<Vec<_>>(), keys);
    }

    #[test]
    fn count_within_counts_a_kind_in_a_window_up_to_as_of_sorted_or_not() {
        let kinds = ["web_visit", "form_fill", "ad_click"];
        let rows: Vec<Touch> = (1..=200)
            .map(|id| Touch {
                kind: Sym::from(kinds[(id % 3) as usize]),
                ..touch(id, id % 9, (id * 53) % 61)
            })
            .collect();
        let unsorted = Touches::from(rows.clone());
        let mut sorted = unsorted.clone();
        sorted.sort();
        let ms = Timestamp::from_millis;
        for (from, to, as_of) in [
            (0, 61, 61),
            (10, 20, 15),
            (10, 20, 30),
            (30, 31, 40),
            (5, 5, 9),
        ] {
            let window = Window {
                from: ms(from),
                to: ms(to),
            };
            for kind in kinds.iter().chain(&["webinar"]) {
                let want = rows
                    .iter()
                    .filter(|t| t.kind == *kind && window.contains_as_of(t.at, ms(as_of)))
                    .count();
                let case = format!("{kind} [{from}, {to}) as of {as_of}");
                assert_eq!(
                    unsorted.count_within(kind, window, ms(as_of)),
                    want,
                    "{case}"
                );
                assert_eq!(sorted.count_within(kind, window, ms(as_of)), want, "{case}");
            }
        }
        assert!(!unsorted.sorted && sorted.sorted);
    }

    #[test]
    fn a_touch_is_21_bytes_kept_where_a_row_is_72() {
        let n = 10_000;
        let mut t = Touches::with_capacity(n);
        for id in 1..=n as i64 {
            let mut x = touch(id, id, id);
            (x.cost, x.external_id, x.campaign) = (None, None, None);
            t.push(x);
        }
        assert_eq!(std::mem::size_of::<Touch>(), 72);
        let per_row = t.heap_bytes() as f64 / n as f64;
        // Ids 4 + 4, time 8, five one-byte codes, and the 1/64 of room.
        assert!((per_row - 21.0 * 65.0 / 64.0).abs() < 0.1, "{per_row}");
    }

    impl Touch {
        fn key_for_test(&self) -> (Timestamp, i64) {
            (self.at, self.id)
        }
    }
}
