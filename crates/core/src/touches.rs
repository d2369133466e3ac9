//! A history's touches kept by column ([`Touches`]), read as [`TouchRef`]s.
//!
//! A touch as a row ([`Touch`]) is 72 bytes; kept by column with ids in
//! four bytes, its kind, channel, campaign, source and medium numbered in
//! a dictionary per column (one byte each while a column has at most 256
//! values) and the rarely filled cost and external id apart, it is 21.
//! The large demo's 10.3M touches were 0.74 GB of a server's memory.

use std::sync::LazyLock;

use crate::columns::{each_column, Codes, Cursor, Ids, Sparse};
use crate::domain::Touch;
use crate::metrics::Window;
use crate::money::Minor;
use crate::sym::Sym;
use crate::time::Timestamp;
use crate::timeline::{Columns, Timeline};

/// Touches kept by column, in the order they were pushed, or by time
/// (`at`, then `id`) after [`Timeline::sort`]: the order a kept history
/// holds them in. [`Timeline::iter`] reads them as [`TouchRef`]s.
pub type Touches = Timeline<TouchColumns>;

/// The columns of [`Touches`] besides each touch's id and time.
#[derive(Clone, Debug)]
pub struct TouchColumns {
    person: Ids,
    kind: Codes<Sym>,
    channel: Codes<Option<Sym>>,
    campaign: Codes<Option<Sym>>,
    source: Codes<Option<Sym>>,
    medium: Codes<Option<Sym>>,
    cost: Sparse<Minor>,
    external_id: Sparse<Box<str>>,
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

impl Columns for TouchColumns {
    type Row = Touch;
    type Ref<'a> = TouchRef<'a>;
    type Cursor<'a> = (Cursor<'a, Minor>, Cursor<'a, Box<str>>);

    fn with_capacity(n: usize) -> Self {
        TouchColumns {
            person: Ids::with_capacity(n),
            kind: Codes::with_capacity(n),
            channel: Codes::with_capacity(n),
            campaign: Codes::with_capacity(n),
            source: Codes::with_capacity(n),
            medium: Codes::with_capacity(n),
            cost: Sparse::default(),
            external_id: Sparse::default(),
        }
    }

    fn key(t: &Touch) -> (Timestamp, i64) {
        (t.at, t.id)
    }

    fn push(&mut self, row: usize, t: Touch) {
        self.person.push(t.person_id);
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

    fn cursor(&self) -> Self::Cursor<'_> {
        (self.cost.cursor(), self.external_id.cursor())
    }

    fn get<'a>(
        &'a self,
        i: usize,
        id: i64,
        at: Timestamp,
        cursor: Option<&mut Self::Cursor<'a>>,
    ) -> TouchRef<'a> {
        let (cost, external_id) = match cursor {
            Some((cost, ext)) => (cost.at(i), ext.at(i)),
            None => (self.cost.get(i), self.external_id.get(i)),
        };
        TouchRef {
            id,
            external_id: external_id.map(|x| &**x),
            person_id: self.person.get(i),
            at,
            kind: self.kind.get(i),
            channel: self.channel.get(i),
            campaign: self.campaign.get(i),
            source: self.source.get(i),
            medium: self.medium.get(i),
            cost: cost.copied(),
        }
    }

    fn to_row(r: &TouchRef<'_>) -> Touch {
        r.to_touch()
    }

    fn as_ref(t: &Touch) -> TouchRef<'_> {
        TouchRef::from(t)
    }

    each_column!(
        person,
        kind,
        channel,
        campaign,
        source,
        medium,
        cost,
        external_id
    );
}

/// No touches, for a borrowed default ([`crate::metrics::History`]).
static NONE: LazyLock<Touches> = LazyLock::new(Touches::new);

impl Default for &Touches {
    fn default() -> Self {
        &NONE
    }
}

impl Timeline<TouchColumns> {
    /// The touches of the people `wanted` says yes to, in the kept order:
    /// only the person column is read for the others (a page that shows
    /// a few people's touches reads 4 bytes a touch, not a whole row).
    pub fn of_people<'a>(
        &'a self,
        mut wanted: impl FnMut(i64) -> bool + 'a,
    ) -> impl Iterator<Item = TouchRef<'a>> + 'a {
        let person = &self.columns().person;
        (0..self.len())
            .filter(move |&i| wanted(person.get(i)))
            .map(|i| self.get(i))
    }

    /// Every touch's person, time and kind, in the kept order: the three
    /// columns alone (what scoring reads).
    pub fn people_times_kinds(&self) -> impl Iterator<Item = (i64, Timestamp, Sym)> + '_ {
        let (c, ats) = (self.columns(), self.ats());
        (0..self.len()).map(|i| (c.person.get(i), ats[i], c.kind.get(i)))
    }

    /// Every touch's person and key (at, id), in the kept order: the
    /// three columns alone.
    pub fn keys(&self) -> impl Iterator<Item = (i64, (Timestamp, i64))> + '_ {
        let (person, ats) = (&self.columns().person, self.ats());
        (0..self.len()).map(|i| (person.get(i), (ats[i], self.id(i))))
    }

    /// How many touches of `kind` are within `window` and not after
    /// `as_of` (see [`Timeline::count_code_within`]).
    pub fn count_within(&self, kind: &str, window: Window, as_of: Timestamp) -> usize {
        self.count_code_within(&self.columns().kind, Sym::new(kind), window, as_of)
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
        assert!(!unsorted.is_sorted() && sorted.is_sorted());
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
