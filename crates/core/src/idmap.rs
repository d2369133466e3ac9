//! Store ids to small values, for lookups of a million people in the
//! analytics' hot loops ([`IdMap`]).

use crate::fxhash::FxHashMap;

/// Ids to `u32` values: an array over the range of the ids it was made
/// for, when they are dense (one table's ids are, in practice), and a map
/// for any id outside it. Building journeys looks two ids up per touch,
/// and grouping the SLA's handoffs one per transition and activity: in
/// hash maps of a million people each lookup was a cache miss (seconds
/// more over the large demo's ten million touches), and a map of a
/// million entries took about 17 MB where the array takes 4 bytes an id.
pub(crate) struct IdMap {
    first: i64,
    dense: Vec<u32>,
    other: FxHashMap<i64, u32>,
}

impl IdMap {
    /// No value (an id with none reads as absent).
    pub(crate) const NONE: u32 = u32::MAX;

    /// Empty, with an array over `ids`' range if it has at most eight times
    /// as many slots as ids (and 64 more): a slot takes 4 bytes, an entry
    /// of the map about 30 (id, value, control byte and the room a hash
    /// table keeps free). The SLA's people who reached the MQL stage are a
    /// third of the large demo's ids: at twice, they went to the map, 18 MB
    /// where the array takes 5.
    pub(crate) fn over(ids: impl Iterator<Item = i64>) -> Self {
        let (mut lo, mut hi, mut n) = (i64::MAX, i64::MIN, 0usize);
        for id in ids {
            (lo, hi, n) = (lo.min(id), hi.max(id), n + 1);
        }
        let span = usize::try_from(i128::from(hi) - i128::from(lo) + 1).unwrap_or(0);
        let dense = if n > 0 && span <= n.saturating_mul(8).saturating_add(64) {
            vec![IdMap::NONE; span]
        } else {
            Vec::new()
        };
        IdMap {
            first: lo,
            dense,
            other: FxHashMap::default(),
        }
    }

    fn index(&self, id: i64) -> Option<usize> {
        let i = usize::try_from(id.checked_sub(self.first)?).ok()?;
        (i < self.dense.len()).then_some(i)
    }

    pub(crate) fn get(&self, id: i64) -> Option<u32> {
        match self.index(id) {
            Some(i) => Some(self.dense[i]),
            None => self.other.get(&id).copied(),
        }
        .filter(|&v| v != IdMap::NONE)
    }

    /// The value of `id`, [`IdMap::NONE`] until set.
    pub(crate) fn entry(&mut self, id: i64) -> &mut u32 {
        match self.index(id) {
            Some(i) => &mut self.dense[i],
            None => self.other.entry(id).or_insert(IdMap::NONE),
        }
    }

    /// Every (id, value) set, in no particular order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (i64, u32)> + '_ {
        let first = self.first;
        (self.dense.iter().enumerate())
            .map(move |(i, &v)| (first + i as i64, v))
            .chain(self.other.iter().map(|(&id, &v)| (id, v)))
            .filter(|&(_, v)| v != IdMap::NONE)
    }
}

/// A position in one of a history's tables (or a count of its rows) as a
/// `u32`: the width of an [`IdMap`] value and of the positions that
/// narrow derived records keep. Four billion rows would not fit in
/// memory; past that, `u32::MAX` ([`IdMap::NONE`]), which finds nothing.
pub(crate) fn position(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(IdMap::NONE)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_position_past_u32_is_none() {
        use super::{position, IdMap};
        assert_eq!((position(7), position(usize::MAX)), (7, IdMap::NONE));
    }
}
