//! A history's sales activities kept by column ([`Activities`]), read as
//! [`ActivityRef`]s.
//!
//! An activity as a row ([`Activity`]) is 56 bytes; kept by column with
//! ids in four bytes, its kind, actor and outcome numbered in a dictionary
//! per column and the rarely filled external id apart, it is 19. The large
//! demo's 2.8M activities were 157 MB of a server's memory.

use std::sync::LazyLock;

use crate::columns::{each_column, Codes, Cursor, Ids, Sparse};
use crate::domain::{Activity, ActivityKind};
use crate::metrics::Window;
use crate::sym::Sym;
use crate::time::Timestamp;
use crate::timeline::{Columns, Timeline};

/// Activities kept by column, by time then id after [`Timeline::sort`]
/// (the order a kept history holds them in). [`Timeline::iter`] reads
/// them as [`ActivityRef`]s.
pub type Activities = Timeline<ActivityColumns>;

/// The columns of [`Activities`] besides each activity's id and time.
#[derive(Clone, Debug)]
pub struct ActivityColumns {
    person: Ids,
    kind: Codes<ActivityKind>,
    actor: Codes<Option<Sym>>,
    outcome: Codes<Option<Sym>>,
    external_id: Sparse<Box<str>>,
}

/// One activity of [`Activities`]: the fields of an [`Activity`], its
/// external id borrowed. [`ActivityRef::to_activity`] makes the owned row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ActivityRef<'a> {
    pub id: i64,
    pub external_id: Option<&'a str>,
    pub person_id: i64,
    pub at: Timestamp,
    pub kind: ActivityKind,
    pub actor: Option<Sym>,
    pub outcome: Option<Sym>,
}

impl<'a> From<&'a Activity> for ActivityRef<'a> {
    fn from(a: &'a Activity) -> Self {
        ActivityRef {
            id: a.id,
            external_id: a.external_id.as_deref(),
            person_id: a.person_id,
            at: a.at,
            kind: a.kind,
            actor: a.actor,
            outcome: a.outcome,
        }
    }
}

impl ActivityRef<'_> {
    /// The activity as an owned row.
    pub fn to_activity(&self) -> Activity {
        Activity {
            id: self.id,
            external_id: self.external_id.map(Box::from),
            person_id: self.person_id,
            at: self.at,
            kind: self.kind,
            actor: self.actor,
            outcome: self.outcome,
        }
    }
}

impl Columns for ActivityColumns {
    type Row = Activity;
    type Ref<'a> = ActivityRef<'a>;
    type Cursor<'a> = Cursor<'a, Box<str>>;

    fn with_capacity(n: usize) -> Self {
        ActivityColumns {
            person: Ids::with_capacity(n),
            kind: Codes::with_capacity(n),
            actor: Codes::with_capacity(n),
            outcome: Codes::with_capacity(n),
            external_id: Sparse::default(),
        }
    }

    fn key(a: &Activity) -> (Timestamp, i64) {
        (a.at, a.id)
    }

    fn push(&mut self, row: usize, a: Activity) {
        self.person.push(a.person_id);
        self.kind.push(a.kind);
        self.actor.push(a.actor);
        self.outcome.push(a.outcome);
        if let Some(x) = a.external_id {
            self.external_id.push(row, x);
        }
    }

    fn cursor(&self) -> Self::Cursor<'_> {
        self.external_id.cursor()
    }

    fn get<'a>(
        &'a self,
        i: usize,
        id: i64,
        at: Timestamp,
        cursor: Option<&mut Self::Cursor<'a>>,
    ) -> ActivityRef<'a> {
        let external_id = match cursor {
            Some(c) => c.at(i),
            None => self.external_id.get(i),
        };
        ActivityRef {
            id,
            external_id: external_id.map(|x| &**x),
            person_id: self.person.get(i),
            at,
            kind: self.kind.get(i),
            actor: self.actor.get(i),
            outcome: self.outcome.get(i),
        }
    }

    fn to_row(r: &ActivityRef<'_>) -> Activity {
        r.to_activity()
    }

    fn as_ref(a: &Activity) -> ActivityRef<'_> {
        ActivityRef::from(a)
    }

    each_column!(person, kind, actor, outcome, external_id);
}

/// No activities, for a borrowed default ([`crate::metrics::History`]).
static NONE: LazyLock<Activities> = LazyLock::new(Activities::new);

impl Default for &Activities {
    fn default() -> Self {
        &NONE
    }
}

impl Timeline<ActivityColumns> {
    /// How many activities of `kind` are within `window` and not after
    /// `as_of` (see [`Timeline::count_code_within`]).
    pub fn count_within(&self, kind: ActivityKind, window: Window, as_of: Timestamp) -> usize {
        self.count_code_within(&self.columns().kind, kind, window, as_of)
    }

    /// Every activity's person and time, in the kept order: two columns,
    /// not whole rows.
    pub fn people_and_times(&self) -> impl Iterator<Item = (i64, Timestamp)> + Clone + '_ {
        let (person, ats) = (&self.columns().person, self.ats());
        (0..self.len()).map(|i| (person.get(i), ats[i]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn activity(id: i64, at: i64) -> Activity {
        const KINDS: [ActivityKind; 3] =
            [ActivityKind::Call, ActivityKind::Email, ActivityKind::Demo];
        Activity {
            id,
            external_id: (id % 5 == 0).then(|| format!("a-{id}").into()),
            person_id: id % 7,
            at: Timestamp::from_millis(at),
            kind: KINDS[(id % 3) as usize],
            actor: (id % 4 != 0).then(|| Sym::from(["ana", "bo", "cy"][(id % 3) as usize])),
            outcome: (id % 2 == 0).then(|| Sym::from("connected")),
        }
    }

    fn rows(n: i64) -> Vec<Activity> {
        // Times out of id order, some shared.
        (1..=n).map(|id| activity(id, (id * 53) % 61)).collect()
    }

    #[test]
    fn activities_read_back_as_pushed_and_sort_like_the_rows() {
        let mut want = rows(80);
        let mut kept = Activities::from(want.clone());
        assert_eq!(kept.to_vec(), want);
        kept.sort();
        want.sort_by_key(|a| (a.at, a.id));
        assert_eq!(kept.to_vec(), want);
        for (i, w) in want.iter().enumerate() {
            assert_eq!(&kept.get(i).to_activity(), w, "row {i} by search");
        }
        let tail = kept.split_off(50);
        assert_eq!(tail, want[50..]);
        kept.extend(tail);
        assert_eq!(kept.to_vec(), want);
        kept.retain(|a| a.person_id != 3);
        want.retain(|a| a.person_id != 3);
        assert_eq!(kept.to_vec(), want);
        let pt: Vec<_> = want.iter().map(|a| (a.person_id, a.at)).collect();
        assert_eq!(kept.people_and_times().collect::<Vec<_>>(), pt);
    }

    #[test]
    fn count_within_counts_a_kind_in_a_window_up_to_as_of_sorted_or_not() {
        let all = rows(300);
        let unsorted = Activities::from(all.clone());
        let mut sorted = unsorted.clone();
        sorted.sort();
        assert!(!unsorted.is_sorted() && sorted.is_sorted());
        let ms = Timestamp::from_millis;
        for (from, to, as_of) in [(0, 61, 61), (10, 20, 15), (10, 20, 30), (5, 5, 9)] {
            let window = Window {
                from: ms(from),
                to: ms(to),
            };
            for kind in ActivityKind::ALL {
                let want = all
                    .iter()
                    .filter(|a| a.kind == kind && window.contains_as_of(a.at, ms(as_of)))
                    .count();
                let case = format!("{kind:?} [{from}, {to}) as of {as_of}");
                assert_eq!(
                    unsorted.count_within(kind, window, ms(as_of)),
                    want,
                    "{case}"
                );
                assert_eq!(sorted.count_within(kind, window, ms(as_of)), want, "{case}");
            }
        }
    }

    #[test]
    fn an_activity_is_19_bytes_kept_where_a_row_is_56() {
        let n = 10_000;
        let mut kept = Activities::with_capacity(n);
        for id in 1..=n as i64 {
            kept.push(Activity {
                external_id: None,
                ..activity(id, id)
            });
        }
        assert_eq!(std::mem::size_of::<Activity>(), 56);
        let per_row = kept.heap_bytes() as f64 / n as f64;
        // Ids 4 + 4, time 8, three one-byte codes, and the 1/64 of room.
        assert!((per_row - 19.0 * 65.0 / 64.0).abs() < 0.1, "{per_row}");
    }
}
