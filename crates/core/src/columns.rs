//! Building blocks of tables kept by column ([`crate::touches::Touches`]):
//! ids in four bytes while they fit, values numbered in a dictionary
//! ([`Codes`]), and columns that few rows fill.
//!
//! A server keeps the whole history in memory; on the large demo its ten
//! million touches were three quarters of a gigabyte as rows of 72 bytes,
//! most of it ids wider than they need and empty optional fields.

use std::hash::Hash;

use crate::domain::Subject;
use crate::fxhash::FxHashMap;

/// What a table kept by column does alike to each of its columns
/// ([`crate::timeline::Columns`] implementations list them once, with
/// `each_column!`).
pub trait Column {
    /// Puts the rows in the order `order` (positions into the column);
    /// `new[j]` is the new position of old row `j` (its inverse).
    fn reorder(&mut self, order: &[u32], new: &[u32]);
    /// Keeps the first `len` rows.
    fn keep(&mut self, len: usize);
    /// Bytes of its buffers (not of what its values own).
    fn bytes(&self) -> usize;
}

impl Column for Ids {
    fn reorder(&mut self, order: &[u32], _new: &[u32]) {
        *self = self.gather(order);
    }
    fn keep(&mut self, len: usize) {
        self.truncate(len);
    }
    fn bytes(&self) -> usize {
        self.heap_bytes()
    }
}

impl<T: Copy + Eq + Hash> Column for Codes<T> {
    fn reorder(&mut self, order: &[u32], _new: &[u32]) {
        *self = self.gather(order);
    }
    fn keep(&mut self, len: usize) {
        self.truncate(len);
    }
    fn bytes(&self) -> usize {
        self.heap_bytes()
    }
}

impl Column for Subjects {
    fn reorder(&mut self, order: &[u32], new: &[u32]) {
        self.id.reorder(order, new);
        self.account.reorder(order, new);
    }
    fn keep(&mut self, len: usize) {
        self.id.keep(len);
        self.account.keep(len);
    }
    fn bytes(&self) -> usize {
        self.heap_bytes()
    }
}

impl<T> Column for Sparse<T> {
    fn reorder(&mut self, _order: &[u32], new: &[u32]) {
        *self = std::mem::take(self).moved(new);
    }
    fn keep(&mut self, len: usize) {
        self.truncate(len);
    }
    fn bytes(&self) -> usize {
        self.heap_bytes()
    }
}

/// The [`crate::timeline::Columns`] methods that do the same to every
/// column of a table (`gather`, `truncate`, `heap_bytes`), from the list
/// of its column fields.
macro_rules! each_column {
    ($($col:ident),+ $(,)?) => {
        fn gather(&mut self, order: &[u32], new: &[u32]) {
            $( $crate::columns::Column::reorder(&mut self.$col, order, new); )+
        }

        fn truncate(&mut self, len: usize) {
            $( $crate::columns::Column::keep(&mut self.$col, len); )+
        }

        fn heap_bytes(&self) -> usize {
            0 $( + $crate::columns::Column::bytes(&self.$col) )+
        }
    };
}
pub(crate) use each_column;

/// Subjects (people or accounts) by column: the id in [`Ids`] and whether
/// it is an account as a one-byte [`Codes`] flag, five bytes a row while
/// ids fit four bytes (a [`Subject`] is 16).
#[derive(Clone, Debug, Default)]
pub struct Subjects {
    id: Ids,
    account: Codes<bool>,
}

impl Subjects {
    /// Empty, with room for `n` rows.
    pub fn with_capacity(n: usize) -> Self {
        Subjects {
            id: Ids::with_capacity(n),
            account: Codes::with_capacity(n),
        }
    }

    /// How many rows it holds.
    pub fn len(&self) -> usize {
        self.id.len()
    }

    /// True when it holds no row.
    pub fn is_empty(&self) -> bool {
        self.id.is_empty()
    }

    /// Appends `subject`.
    pub fn push(&mut self, subject: Subject) {
        self.id.push(subject.id());
        self.account.push(subject.is_account());
    }

    /// Row `i`'s subject (panics past the end, as a slice does).
    pub fn get(&self, i: usize) -> Subject {
        Subject::of(self.id.get(i), self.account.get(i))
    }

    /// Row `i`'s store id (one column).
    pub fn id(&self, i: usize) -> i64 {
        self.id.get(i)
    }

    /// Whether row `i` is an account (one column).
    pub fn is_account(&self, i: usize) -> bool {
        self.account.get(i)
    }

    /// Bytes of its buffers.
    pub fn heap_bytes(&self) -> usize {
        self.id.heap_bytes() + self.account.heap_bytes()
    }
}

/// Row ids (or ids rows refer to) in four bytes each while every one fits
/// in a `u32`, else in eight: the first id that does not fit widens the
/// column once. Stored ids are positive and dense, so the wide form is
/// for odd data only and gives the same answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ids {
    Narrow(Vec<u32>),
    Wide(Vec<i64>),
}

impl Default for Ids {
    fn default() -> Self {
        Ids::Narrow(Vec::new())
    }
}

impl Ids {
    /// Empty, with room for `n` narrow ids.
    pub fn with_capacity(n: usize) -> Self {
        Ids::Narrow(Vec::with_capacity(n))
    }

    /// How many ids it holds.
    pub fn len(&self) -> usize {
        match self {
            Ids::Narrow(v) => v.len(),
            Ids::Wide(v) => v.len(),
        }
    }

    /// True when it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `i`th id (panics past the end, as a slice does).
    pub fn get(&self, i: usize) -> i64 {
        match self {
            Ids::Narrow(v) => i64::from(v[i]),
            Ids::Wide(v) => v[i],
        }
    }

    /// Appends `id`, widening the column when it does not fit.
    pub fn push(&mut self, id: i64) {
        match self {
            Ids::Narrow(v) => match u32::try_from(id) {
                Ok(n) => v.push(n),
                Err(_) => {
                    let mut wide: Vec<i64> = Vec::with_capacity(v.capacity().max(v.len() + 1));
                    wide.extend(v.iter().map(|&n| i64::from(n)));
                    wide.push(id);
                    *self = Ids::Wide(wide);
                }
            },
            Ids::Wide(v) => v.push(id),
        }
    }

    /// Keeps the first `len` ids.
    pub fn truncate(&mut self, len: usize) {
        match self {
            Ids::Narrow(v) => v.truncate(len),
            Ids::Wide(v) => v.truncate(len),
        }
    }

    /// The ids in the order of `order` (positions into this column).
    pub fn gather(&self, order: &[u32]) -> Ids {
        match self {
            Ids::Narrow(v) => Ids::Narrow(gather(v, order)),
            Ids::Wide(v) => Ids::Wide(gather(v, order)),
        }
    }

    /// Bytes of its buffer.
    pub fn heap_bytes(&self) -> usize {
        match self {
            Ids::Narrow(v) => v.capacity() * 4,
            Ids::Wide(v) => v.capacity() * 8,
        }
    }
}

/// A column of few distinct values (a touch's kind, channel, source):
/// each row holds its value's number in a dictionary, in one byte while
/// the column has at most 256 distinct values, two up to 65,536, else
/// four. The first value that does not fit widens the column once.
#[derive(Clone, Debug)]
pub struct Codes<T> {
    /// Value by number, in order of first appearance.
    values: Vec<T>,
    numbers: FxHashMap<T, u32>,
    rows: CodeRows,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum CodeRows {
    Byte(Vec<u8>),
    Short(Vec<u16>),
    Wide(Vec<u32>),
}

impl<T: Copy + Eq + Hash> Default for Codes<T> {
    fn default() -> Self {
        Codes::with_capacity(0)
    }
}

impl<T: Copy + Eq + Hash> Codes<T> {
    /// Empty, with room for `n` rows of one byte.
    pub fn with_capacity(n: usize) -> Self {
        Codes {
            values: Vec::new(),
            numbers: FxHashMap::default(),
            rows: CodeRows::Byte(Vec::with_capacity(n)),
        }
    }

    /// How many rows it holds.
    pub fn len(&self) -> usize {
        match &self.rows {
            CodeRows::Byte(v) => v.len(),
            CodeRows::Short(v) => v.len(),
            CodeRows::Wide(v) => v.len(),
        }
    }

    /// True when it holds no row.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Row `i`'s number (panics past the end, as a slice does).
    pub fn number(&self, i: usize) -> u32 {
        match &self.rows {
            CodeRows::Byte(v) => u32::from(v[i]),
            CodeRows::Short(v) => u32::from(v[i]),
            CodeRows::Wide(v) => v[i],
        }
    }

    /// Row `i`'s value (panics past the end, as a slice does).
    pub fn get(&self, i: usize) -> T {
        self.values[self.number(i) as usize]
    }

    /// The number of `value`, if some row holds it.
    pub fn number_of(&self, value: T) -> Option<u32> {
        self.numbers.get(&value).copied()
    }

    /// The number of the first value `is` says yes to, if some row holds
    /// one (a stage named by its text).
    pub fn number_where(&self, is: impl Fn(&T) -> bool) -> Option<u32> {
        self.values.iter().position(is).map(|n| n as u32)
    }

    /// The numbers of rows `range`, for a scan that compares numbers.
    pub fn numbers_in(&self, range: std::ops::Range<usize>) -> impl Iterator<Item = u32> + '_ {
        range.map(|i| self.number(i))
    }

    /// Appends `value`, widening the rows when its number does not fit.
    pub fn push(&mut self, value: T) {
        let next = self.values.len() as u32;
        let n = *self.numbers.entry(value).or_insert(next);
        if n == next {
            self.values.push(value);
        }
        match &mut self.rows {
            CodeRows::Byte(v) => match u8::try_from(n) {
                Ok(b) => v.push(b),
                Err(_) => {
                    self.rows = CodeRows::Short(widen(v));
                    self.push_number(n);
                }
            },
            CodeRows::Short(v) => match u16::try_from(n) {
                Ok(s) => v.push(s),
                Err(_) => {
                    self.rows = CodeRows::Wide(widen(v));
                    self.push_number(n);
                }
            },
            CodeRows::Wide(v) => v.push(n),
        }
    }

    /// Appends a number already in the dictionary to rows wide enough.
    fn push_number(&mut self, n: u32) {
        match &mut self.rows {
            CodeRows::Byte(v) => v.extend(u8::try_from(n).ok()),
            CodeRows::Short(v) => v.extend(u16::try_from(n).ok()),
            CodeRows::Wide(v) => v.push(n),
        }
    }

    /// Keeps the first `len` rows (the dictionary keeps every value).
    pub fn truncate(&mut self, len: usize) {
        match &mut self.rows {
            CodeRows::Byte(v) => v.truncate(len),
            CodeRows::Short(v) => v.truncate(len),
            CodeRows::Wide(v) => v.truncate(len),
        }
    }

    /// The rows in the order of `order` (positions into this column).
    pub fn gather(&self, order: &[u32]) -> Codes<T> {
        let rows = match &self.rows {
            CodeRows::Byte(v) => CodeRows::Byte(gather(v, order)),
            CodeRows::Short(v) => CodeRows::Short(gather(v, order)),
            CodeRows::Wide(v) => CodeRows::Wide(gather(v, order)),
        };
        Codes {
            values: self.values.clone(),
            numbers: self.numbers.clone(),
            rows,
        }
    }

    /// Bytes of its rows' buffer (the dictionary is a few values).
    pub fn heap_bytes(&self) -> usize {
        match &self.rows {
            CodeRows::Byte(v) => v.capacity(),
            CodeRows::Short(v) => v.capacity() * 2,
            CodeRows::Wide(v) => v.capacity() * 4,
        }
    }
}

/// `v`'s numbers in a wider type, with room for as many rows as it had.
fn widen<A: Copy, B: From<A>>(v: &[A]) -> Vec<B> {
    let mut out = Vec::with_capacity(v.len() + v.len() / 64 + 1);
    out.extend(v.iter().map(|&x| B::from(x)));
    out
}

/// `v` in the order of `order` (positions into `v`), with 1/64 of room
/// to spare: a kept table then takes a few new rows without doubling a
/// buffer of tens of megabytes.
pub fn gather<T: Clone>(v: &[T], order: &[u32]) -> Vec<T> {
    let mut out = Vec::with_capacity(order.len() + order.len() / 64);
    out.extend(order.iter().map(|&i| v[i as usize].clone()));
    out
}

/// An optional column that few rows fill (a touch's cost, its external
/// id): the filled rows' positions, ascending, and their values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sparse<T> {
    rows: Vec<u32>,
    values: Vec<T>,
}

impl<T> Default for Sparse<T> {
    fn default() -> Self {
        Sparse::new()
    }
}

impl<T> Sparse<T> {
    /// Empty.
    pub const fn new() -> Self {
        Sparse {
            rows: Vec::new(),
            values: Vec::new(),
        }
    }

    /// The value of row `row`, if it has one.
    pub fn get(&self, row: usize) -> Option<&T> {
        let row = u32::try_from(row).ok()?;
        let i = self.rows.binary_search(&row).ok()?;
        self.values.get(i)
    }

    /// Sets row `row`'s value; rows must come in ascending order, after
    /// every row already set.
    pub fn push(&mut self, row: usize, value: T) {
        debug_assert!(self.rows.last().is_none_or(|&r| (r as usize) < row));
        self.rows.push(crate::idmap::position(row));
        self.values.push(value);
    }

    /// Forgets the values of rows at `len` and after.
    pub fn truncate(&mut self, len: usize) {
        let keep = self.rows.partition_point(|&r| (r as usize) < len);
        self.rows.truncate(keep);
        self.values.truncate(keep);
    }

    /// Its values moved to the positions `rows` were sorted to: `new[j]` is
    /// the new position of old row `j` (the inverse of a sort order).
    pub fn moved(self, new: &[u32]) -> Sparse<T> {
        let mut pairs: Vec<(u32, T)> = self
            .rows
            .into_iter()
            .map(|r| new[r as usize])
            .zip(self.values)
            .collect();
        pairs.sort_unstable_by_key(|p| p.0);
        let (rows, values) = pairs.into_iter().unzip();
        Sparse { rows, values }
    }

    /// A reader of the values in row order, for a scan of every row.
    pub fn cursor(&self) -> Cursor<'_, T> {
        Cursor { of: self, next: 0 }
    }

    /// Bytes of its buffers (not of what its values own).
    pub fn heap_bytes(&self) -> usize {
        self.rows.capacity() * 4 + self.values.capacity() * std::mem::size_of::<T>()
    }
}

/// Reads a [`Sparse`] column row after row without a search per row.
#[derive(Clone, Debug)]
pub struct Cursor<'a, T> {
    of: &'a Sparse<T>,
    next: usize,
}

impl<'a, T> Cursor<'a, T> {
    /// The value of `row`; rows must be asked in ascending order.
    pub fn at(&mut self, row: usize) -> Option<&'a T> {
        let rows = &self.of.rows;
        while self.next < rows.len() && (rows[self.next] as usize) < row {
            self.next += 1;
        }
        match rows.get(self.next) {
            Some(&r) if r as usize == row => self.of.values.get(self.next),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_stay_narrow_until_one_does_not_fit() {
        let mut ids = Ids::default();
        for id in [1, 7, i64::from(u32::MAX)] {
            ids.push(id);
        }
        assert!(matches!(ids, Ids::Narrow(_)));
        ids.push(-3);
        assert!(matches!(ids, Ids::Wide(_)), "a negative id widens it");
        ids.push(1 << 40);
        let got: Vec<i64> = (0..ids.len()).map(|i| ids.get(i)).collect();
        assert_eq!(got, [1, 7, i64::from(u32::MAX), -3, 1 << 40]);
        assert_eq!(ids.gather(&[4, 0]), Ids::Wide(vec![1 << 40, 1]));
        ids.truncate(2);
        assert_eq!(ids, Ids::Wide(vec![1, 7]));
    }

    #[test]
    fn codes_number_values_in_one_byte_then_two_then_four() {
        let mut c: Codes<Option<u32>> = Codes::default();
        let values: Vec<Option<u32>> = (0..80_000u32)
            .map(|i| (i % 7 != 0).then_some(i))
            .chain([Some(5), None, Some(79_999)])
            .collect();
        for (k, &v) in values.iter().enumerate() {
            c.push(v);
            // 68,572 distinct values (None and the non-multiples of 7).
            if k == 200 {
                assert!(matches!(c.rows, CodeRows::Byte(_)));
            }
            if k == 1_000 {
                assert!(matches!(c.rows, CodeRows::Short(_)));
            }
        }
        assert!(matches!(c.rows, CodeRows::Wide(_)));
        let got: Vec<Option<u32>> = (0..c.len()).map(|i| c.get(i)).collect();
        assert_eq!(got, values);
        assert_eq!(c.number_of(None), Some(0));
        assert_eq!(c.number_of(Some(7)), None, "7 was never pushed");
        let g = c.gather(&[80_002, 0, 80_001]);
        assert_eq!([g.get(0), g.get(1), g.get(2)], [Some(79_999), None, None]);
        c.truncate(3);
        assert_eq!(c.len(), 3);
    }

    #[test]
    fn sparse_answers_filled_rows_only_by_search_and_by_cursor() {
        let mut s = Sparse::default();
        s.push(2, "b");
        s.push(5, "e");
        s.push(6, "f");
        let by_get: Vec<Option<&str>> = (0..8).map(|r| s.get(r).copied()).collect();
        let mut c = s.cursor();
        let by_cursor: Vec<Option<&str>> = (0..8).map(|r| c.at(r).copied()).collect();
        let want = [
            None,
            None,
            Some("b"),
            None,
            None,
            Some("e"),
            Some("f"),
            None,
        ];
        assert_eq!(by_get, want);
        assert_eq!(by_cursor, want);
        // Rows 0..7 sorted to 6, 5, 4, 3, 2, 1, 0.
        let moved = s.clone().moved(&[6, 5, 4, 3, 2, 1, 0]);
        let got: Vec<Option<&str>> = (0..7).map(|r| moved.get(r).copied()).collect();
        assert_eq!(
            got,
            [Some("f"), Some("e"), None, None, Some("b"), None, None]
        );
        s.truncate(6);
        assert_eq!((s.get(5), s.get(6)), (Some(&"e"), None));
    }
}
