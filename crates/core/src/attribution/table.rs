//! [`PathTable`]: paths with their channels interned as small integers, in
//! flat arrays. The Markov model works on it, and the path-file parser
//! builds it directly, so a large file costs one allocation per distinct
//! channel instead of one per touch.

use crate::fxhash::FxHashMap;

use super::{validate, AttributionError, Path};

/// Conversion paths with interned channels.
///
/// Channel ids index [`PathTable::channels`], which is sorted, so sorting by
/// id is sorting by name. Weights satisfy the invariants documented on
/// [`Path`] (every path has at least one touch).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PathTable {
    channels: Vec<String>,
    /// Path `i` is `steps[starts[i]..starts[i + 1]]`.
    starts: Vec<usize>,
    steps: Vec<u32>,
    conversions: Vec<f64>,
    value: Vec<f64>,
    nulls: Vec<f64>,
}

/// One path of a [`PathTable`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PathRef<'a> {
    /// Channel ids of the touches, oldest first.
    pub steps: &'a [u32],
    /// Journeys on this path that converted.
    pub conversions: f64,
    /// Total value of those conversions.
    pub value: f64,
    /// Journeys on this path that ended without conversion.
    pub nulls: f64,
}

impl PathTable {
    /// Interns validated `paths` (ages and milestones are dropped).
    pub fn from_paths(paths: &[Path]) -> Result<PathTable, AttributionError> {
        validate(paths)?;
        let mut b = TableBuilder::default();
        for p in paths {
            for s in &p.steps {
                b.step(s);
            }
            b.end_path(p.conversions, p.value, p.nulls);
        }
        Ok(b.finish())
    }

    /// Channel names, sorted; a step's id indexes this.
    pub fn channels(&self) -> &[String] {
        &self.channels
    }

    /// Number of paths.
    pub fn len(&self) -> usize {
        self.conversions.len()
    }

    /// Whether there are no paths.
    pub fn is_empty(&self) -> bool {
        self.conversions.is_empty()
    }

    /// Path `i` (panics if `i >= len()`, like slice indexing).
    pub fn get(&self, i: usize) -> PathRef<'_> {
        PathRef {
            steps: &self.steps[self.starts[i]..self.starts[i + 1]],
            conversions: self.conversions[i],
            value: self.value[i],
            nulls: self.nulls[i],
        }
    }

    /// The paths in order.
    pub fn iter(&self) -> impl Iterator<Item = PathRef<'_>> + '_ {
        (0..self.len()).map(|i| self.get(i))
    }

    /// Total conversions and total value.
    pub fn totals(&self) -> (f64, f64) {
        (self.conversions.iter().sum(), self.value.iter().sum())
    }

    /// The paths as [`Path`]s (without ages or milestones).
    pub fn to_paths(&self) -> Vec<Path> {
        self.iter()
            .map(|p| {
                Path::new(
                    p.steps.iter().map(|&c| self.channels[c as usize].as_str()),
                    p.conversions,
                    p.value,
                    p.nulls,
                )
            })
            .collect()
    }
}

/// Builds a [`PathTable`] one touch at a time; the caller validates.
#[derive(Default)]
pub(crate) struct TableBuilder<'a> {
    /// Channel → id in order of first appearance (renumbered by `finish`).
    ids: FxHashMap<&'a str, u32>,
    names: Vec<&'a str>,
    table: PathTable,
}

impl<'a> TableBuilder<'a> {
    /// Appends a touch of `channel` to the current path.
    pub(crate) fn step(&mut self, channel: &'a str) {
        if self.table.starts.is_empty() {
            self.table.starts.push(0);
        }
        let next = self.names.len() as u32;
        let id = *self.ids.entry(channel).or_insert_with(|| {
            self.names.push(channel);
            next
        });
        self.table.steps.push(id);
    }

    /// Ends the current path with its weights.
    pub(crate) fn end_path(&mut self, conversions: f64, value: f64, nulls: f64) {
        if self.table.starts.is_empty() {
            self.table.starts.push(0);
        }
        let t = &mut self.table;
        t.starts.push(t.steps.len());
        t.conversions.push(conversions);
        t.value.push(value);
        t.nulls.push(nulls);
    }

    /// Steps of the current (unfinished) path so far.
    pub(crate) fn pending_steps(&self) -> usize {
        self.table.steps.len() - self.table.starts.last().copied().unwrap_or(0)
    }

    /// Renumbers channels in sorted order and returns the table.
    pub(crate) fn finish(self) -> PathTable {
        let mut order: Vec<u32> = (0..self.names.len() as u32).collect();
        order.sort_unstable_by_key(|&i| self.names[i as usize]);
        let mut new_id = vec![0u32; order.len()];
        for (new, &old) in order.iter().enumerate() {
            new_id[old as usize] = new as u32;
        }
        let mut table = self.table;
        for s in &mut table.steps {
            *s = new_id[*s as usize];
        }
        table.channels = order
            .iter()
            .map(|&i| self.names[i as usize].to_string())
            .collect();
        if table.starts.is_empty() {
            table.starts.push(0);
        }
        table
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn interns_in_sorted_order_and_round_trips() {
        let paths = vec![
            Path::new(["b", "a", "b"], 1.0, 5.0, 2.0),
            Path::new(["c"], 0.0, 0.0, 1.0),
        ];
        let t = PathTable::from_paths(&paths).unwrap();
        assert_eq!(t.channels(), ["a", "b", "c"]);
        assert_eq!(t.len(), 2);
        assert_eq!(t.get(0).steps, [1, 0, 1]);
        assert_eq!(t.get(1).steps, [2]);
        assert_eq!(t.get(1).nulls, 1.0);
        assert_eq!(t.totals(), (1.0, 5.0));
        assert_eq!(t.to_paths(), paths);
        let empty = PathTable::from_paths(&[]).unwrap();
        assert!(empty.is_empty() && empty.channels().is_empty());
        assert!(PathTable::from_paths(&[Path::new(["a", ""], 1.0, 0.0, 0.0)]).is_err());
    }
}
