//! A history's stage transitions kept by column ([`Transitions`]), read as
//! [`TransitionRef`]s.
//!
//! A transition as a row ([`Transition`]) is 64 bytes; kept by column with
//! its sequence number and subject id in four bytes while they fit, its
//! stages, actor, reason, cycle and flags numbered in a dictionary per
//! column and the rare note apart, it is 23. The large demo's 3.6M
//! transitions were 230 MB of a server's memory.

use std::sync::LazyLock;

use crate::columns::{each_column, Codes, Cursor, Sparse, Subjects};
use crate::domain::{Note, Subject, Transition};
use crate::metrics::Window;
use crate::sym::Sym;
use crate::time::Timestamp;
use crate::timeline::{Columns, Timeline};

/// Transitions kept by column, by time then sequence number after
/// [`Timeline::sort`] (the order a kept history holds them in; the id of
/// the timeline is the sequence number). [`Timeline::iter`] reads them as
/// [`TransitionRef`]s.
pub type Transitions = Timeline<TransitionColumns>;

/// The columns of [`Transitions`] besides each one's sequence number and
/// time.
#[derive(Clone, Debug)]
pub struct TransitionColumns {
    subject: Subjects,
    from: Codes<Option<Sym>>,
    to: Codes<Sym>,
    actor: Codes<Sym>,
    reason: Codes<Option<Sym>>,
    cycle: Codes<u32>,
    skipped: Codes<bool>,
    note: Sparse<Note>,
}

/// One transition of [`Transitions`]: the fields of a [`Transition`], its
/// note borrowed. [`TransitionRef::to_transition`] makes the owned row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransitionRef<'a> {
    pub seq: i64,
    pub subject: Subject,
    pub from: Option<Sym>,
    pub to: Sym,
    pub at: Timestamp,
    pub actor: Sym,
    pub reason: Option<Sym>,
    pub note: Option<&'a str>,
    pub cycle: u32,
    pub skipped: bool,
}

impl<'a> From<&'a Transition> for TransitionRef<'a> {
    fn from(t: &'a Transition) -> Self {
        TransitionRef {
            seq: t.seq,
            subject: t.subject,
            from: t.from,
            to: t.to,
            at: t.at,
            actor: t.actor,
            reason: t.reason,
            note: t.note.as_deref(),
            cycle: t.cycle,
            skipped: t.skipped,
        }
    }
}

impl TransitionRef<'_> {
    /// The transition as an owned row.
    pub fn to_transition(&self) -> Transition {
        Transition {
            seq: self.seq,
            subject: self.subject,
            from: self.from,
            to: self.to,
            at: self.at,
            actor: self.actor,
            reason: self.reason,
            note: self.note.map(Note::from),
            cycle: self.cycle,
            skipped: self.skipped,
        }
    }
}

impl Columns for TransitionColumns {
    type Row = Transition;
    type Ref<'a> = TransitionRef<'a>;
    type Cursor<'a> = Cursor<'a, Note>;

    fn with_capacity(n: usize) -> Self {
        TransitionColumns {
            subject: Subjects::with_capacity(n),
            from: Codes::with_capacity(n),
            to: Codes::with_capacity(n),
            actor: Codes::with_capacity(n),
            reason: Codes::with_capacity(n),
            cycle: Codes::with_capacity(n),
            skipped: Codes::with_capacity(n),
            note: Sparse::default(),
        }
    }

    fn key(t: &Transition) -> (Timestamp, i64) {
        (t.at, t.seq)
    }

    fn push(&mut self, row: usize, t: Transition) {
        self.subject.push(t.subject);
        self.from.push(t.from);
        self.to.push(t.to);
        self.actor.push(t.actor);
        self.reason.push(t.reason);
        self.cycle.push(t.cycle);
        self.skipped.push(t.skipped);
        if let Some(n) = t.note {
            self.note.push(row, n);
        }
    }

    fn cursor(&self) -> Self::Cursor<'_> {
        self.note.cursor()
    }

    fn get<'a>(
        &'a self,
        i: usize,
        seq: i64,
        at: Timestamp,
        cursor: Option<&mut Self::Cursor<'a>>,
    ) -> TransitionRef<'a> {
        let note = match cursor {
            Some(c) => c.at(i),
            None => self.note.get(i),
        };
        TransitionRef {
            seq,
            subject: self.subject.get(i),
            from: self.from.get(i),
            to: self.to.get(i),
            at,
            actor: self.actor.get(i),
            reason: self.reason.get(i),
            note: note.map(|n| &**n),
            cycle: self.cycle.get(i),
            skipped: self.skipped.get(i),
        }
    }

    fn to_row(r: &TransitionRef<'_>) -> Transition {
        r.to_transition()
    }

    fn as_ref(t: &Transition) -> TransitionRef<'_> {
        TransitionRef::from(t)
    }

    each_column!(subject, from, to, actor, reason, cycle, skipped, note);
}

/// No transitions, for a borrowed default ([`crate::metrics::History`]).
static NONE: LazyLock<Transitions> = LazyLock::new(Transitions::new);

impl Default for &Transitions {
    fn default() -> Self {
        &NONE
    }
}

impl Timeline<TransitionColumns> {
    /// The stage the `i`th transition entered: one column, for a scan
    /// that reads only where subjects went.
    pub fn to(&self, i: usize) -> Sym {
        self.columns().to.get(i)
    }

    /// Whether the `i`th transition passed through its stage in a move
    /// further (one column).
    pub fn skipped(&self, i: usize) -> bool {
        self.columns().skipped.get(i)
    }

    /// The position and person id of every person's transition, in the
    /// kept order: two columns, for a scan that groups people.
    pub fn people(&self) -> impl Iterator<Item = (usize, i64)> + Clone + '_ {
        let c = self.columns();
        (0..self.len())
            .filter(move |&i| !c.subject.is_account(i))
            .map(move |i| (i, c.subject.id(i)))
    }

    /// The subject and cycle of each transition into `stage` within
    /// `window` and not after `as_of`, in the kept order: two searches of
    /// the time column and a scan of the window's stage codes when the
    /// transitions are in time order (a kept history's are), else a scan
    /// of every one.
    pub fn entries_within<'a>(
        &'a self,
        stage: &str,
        window: Window,
        as_of: Timestamp,
    ) -> impl Iterator<Item = (Subject, u32)> + 'a {
        let (c, ats, sorted) = (self.columns(), self.ats(), self.is_sorted());
        let code = c.to.number_where(|s| *s == stage);
        let rows = match code {
            None => 0..0,
            Some(_) if sorted => window.positions_in(ats, as_of),
            Some(_) => 0..self.len(),
        };
        rows.filter(move |&i| {
            Some(c.to.number(i)) == code && (sorted || window.contains_as_of(ats[i], as_of))
        })
        .map(move |i| (c.subject.get(i), c.cycle.get(i)))
    }

    /// The subject of the `i`th transition: two columns.
    pub fn subject(&self, i: usize) -> Subject {
        self.columns().subject.get(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transition(seq: i64, at: i64, wide: i64) -> Transition {
        const STAGES: [&str; 4] = ["inquiry", "mql", "sql", "disqualified"];
        Transition {
            seq,
            subject: if seq % 6 == 0 {
                Subject::Account(seq % 5)
            } else {
                Subject::Person(seq % 7 + (seq % 3) * wide)
            },
            from: (seq % 4 != 0).then(|| Sym::from(STAGES[(seq % 3) as usize])),
            to: Sym::from(STAGES[(seq % 4) as usize]),
            at: Timestamp::from_millis(at),
            actor: Sym::from(["system", "import", "ana"][(seq % 3) as usize]),
            reason: (seq % 4 == 3).then(|| Sym::from("no_budget")),
            note: (seq % 9 == 0).then(|| Note::from(format!("note {seq}").as_str())),
            cycle: 1 + (seq % if wide > 0 { 300 } else { 3 }) as u32,
            skipped: seq % 5 == 0,
        }
    }

    #[test]
    fn transitions_read_back_as_pushed_and_sort_like_the_rows() {
        // Times out of sequence order, some shared; ids wider than four
        // bytes and more than 256 cycles widen their columns on the way.
        let mut want: Vec<Transition> = (1..=400)
            .map(|s| transition(s, (s * 53) % 61, 5_000_000_000))
            .collect();
        let mut kept = Transitions::from(want.clone());
        assert_eq!(kept.to_vec(), want);
        kept.sort();
        want.sort_by_key(|t| (t.at, t.seq));
        assert_eq!(kept.to_vec(), want);
        for (i, w) in want.iter().enumerate() {
            assert_eq!(kept.get(i), TransitionRef::from(w), "row {i} by search");
            assert_eq!(kept.get(i).to_transition(), *w);
            // The one-column readers agree with the row.
            assert_eq!(kept.key(i), (w.at, w.seq));
            assert_eq!((kept.subject(i), kept.to(i)), (w.subject, w.to));
            assert_eq!(kept.skipped(i), w.skipped);
        }
        let people: Vec<(usize, i64)> = (want.iter().enumerate())
            .filter_map(|(i, w)| match w.subject {
                Subject::Person(id) => Some((i, id)),
                Subject::Account(_) => None,
            })
            .collect();
        assert_eq!(kept.people().collect::<Vec<_>>(), people);
        let tail = kept.split_off(250);
        assert_eq!(tail, want[250..]);
        assert_eq!(kept.to_vec(), want[..250]);
    }

    #[test]
    fn a_transition_takes_a_third_of_its_row() {
        let n = 10_000;
        let kept = Transitions::from((1..=n).map(|s| transition(s, s, 0)).collect::<Vec<_>>());
        let per = kept.heap_bytes() as f64 / n as f64;
        assert!(
            per < 26.0,
            "{per:.1} bytes a transition, against {} as a row",
            std::mem::size_of::<Transition>()
        );
    }
}
