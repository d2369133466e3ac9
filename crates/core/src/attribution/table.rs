//! [`PathTable`]: paths with their channels interned as small integers, in
//! flat arrays. Every model works on it; the path-file parser and
//! [`super::journeys::build_paths`] build it directly, so a large input costs
//! one allocation per distinct channel instead of one per touch.

use crate::fxhash::Interner;

use super::{validate, AttributionError, Path};

/// Conversion paths with interned channels.
///
/// Channel ids index [`PathTable::channels`], which is sorted, so sorting by
/// id is sorting by name. Paths satisfy the invariants documented on
/// [`Path`] (every path has at least one touch, weights and ages are finite
/// and ≥ 0, milestones index a touch of their path).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PathTable {
    channels: Vec<String>,
    /// Path `i` is `steps[starts[i]..starts[i + 1]]`.
    starts: Vec<usize>,
    steps: Vec<u32>,
    /// Age in days of each step (beside `steps`); read only where the
    /// path's `aged` is set, 0 elsewhere.
    ages: Vec<f64>,
    aged: Vec<bool>,
    lead: Vec<Option<u32>>,
    opportunity: Vec<Option<u32>>,
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
    /// Age in days of each touch at the conversion, when known
    /// ([`Path::ages_days`]).
    pub ages_days: Option<&'a [f64]>,
    /// Index in `steps` of the lead-creation touch ([`Path::lead_touch`]).
    pub lead_touch: Option<usize>,
    /// Index in `steps` of the opportunity-creation touch
    /// ([`Path::opportunity_touch`]).
    pub opportunity_touch: Option<usize>,
}

impl PathTable {
    /// Interns validated `paths`, with their ages and milestones.
    pub fn from_paths(paths: &[Path]) -> Result<PathTable, AttributionError> {
        validate(paths)?;
        let mut b = TableBuilder::default();
        for p in paths {
            match &p.ages_days {
                Some(ages) => p
                    .steps
                    .iter()
                    .zip(ages)
                    .for_each(|(s, &a)| b.aged_step(s, a)),
                None => p.steps.iter().for_each(|s| b.step(s)),
            }
            b.end_path(
                p.conversions,
                p.value,
                p.nulls,
                p.lead_touch,
                p.opportunity_touch,
            );
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
        let span = self.starts[i]..self.starts[i + 1];
        PathRef {
            steps: &self.steps[span.clone()],
            conversions: self.conversions[i],
            value: self.value[i],
            nulls: self.nulls[i],
            ages_days: self.aged[i].then(|| &self.ages[span]),
            lead_touch: self.lead[i].map(|x| x as usize),
            opportunity_touch: self.opportunity[i].map(|x| x as usize),
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

    /// The paths as [`Path`]s.
    pub fn to_paths(&self) -> Vec<Path> {
        self.iter()
            .map(|p| Path {
                steps: p
                    .steps
                    .iter()
                    .map(|&c| self.channels[c as usize].clone())
                    .collect(),
                ages_days: p.ages_days.map(<[f64]>::to_vec),
                lead_touch: p.lead_touch,
                opportunity_touch: p.opportunity_touch,
                conversions: p.conversions,
                value: p.value,
                nulls: p.nulls,
            })
            .collect()
    }
}

/// Builds a [`PathTable`] one touch at a time; the caller validates.
#[derive(Default)]
pub(crate) struct TableBuilder {
    /// Channel ids in order of first appearance (renumbered by `finish`).
    channels: Interner,
    /// Whether the current path's steps carry ages.
    pending_aged: Option<bool>,
    table: PathTable,
}

impl TableBuilder {
    /// A builder whose channels start as `names` (ids kept): steps already
    /// interned elsewhere are appended by id.
    pub(crate) fn with_names(names: Interner) -> Self {
        TableBuilder {
            channels: names,
            ..TableBuilder::default()
        }
    }

    /// Appends a touch of `channel` to the current path.
    pub(crate) fn step(&mut self, channel: &str) {
        self.push(channel, None);
    }

    /// Appends a touch of `channel` that is `age_days` old at the end of
    /// the path. A path's touches all have ages or none has.
    pub(crate) fn aged_step(&mut self, channel: &str, age_days: f64) {
        self.push(channel, Some(age_days));
    }

    /// The id of `channel`, interned if new (a channel interned but never
    /// stepped on is not part of the finished table).
    pub(crate) fn intern(&mut self, channel: &str) -> u32 {
        self.channels.id(channel)
    }

    /// [`TableBuilder::aged_step`] of a channel already [interned](Self::intern).
    pub(crate) fn aged_step_id(&mut self, id: u32, age_days: f64) {
        self.push_id(id, Some(age_days));
    }

    fn push(&mut self, channel: &str, age: Option<f64>) {
        let id = self.intern(channel);
        self.push_id(id, age);
    }

    fn push_id(&mut self, id: u32, age: Option<f64>) {
        if self.table.starts.is_empty() {
            self.table.starts.push(0);
        }
        let aged = *self.pending_aged.get_or_insert(age.is_some());
        debug_assert_eq!(aged, age.is_some(), "a path mixes aged and unaged touches");
        self.table.steps.push(id);
        self.table.ages.push(age.unwrap_or(0.0));
    }

    /// Ends the current path with its weights and its milestone touches
    /// (indices into the path's steps).
    pub(crate) fn end_path(
        &mut self,
        conversions: f64,
        value: f64,
        nulls: f64,
        lead: Option<usize>,
        opportunity: Option<usize>,
    ) {
        if self.table.starts.is_empty() {
            self.table.starts.push(0);
        }
        let aged = self.pending_aged.take().unwrap_or(false);
        let t = &mut self.table;
        t.starts.push(t.steps.len());
        t.aged.push(aged);
        t.lead.push(lead.map(|x| x as u32));
        t.opportunity.push(opportunity.map(|x| x as u32));
        t.conversions.push(conversions);
        t.value.push(value);
        t.nulls.push(nulls);
    }

    /// Steps of the current (unfinished) path so far.
    pub(crate) fn pending_steps(&self) -> usize {
        self.table.steps.len() - self.table.starts.last().copied().unwrap_or(0)
    }

    /// Renumbers the channels that paths step on in sorted order and
    /// returns the table.
    pub(crate) fn finish(self) -> PathTable {
        let names = self.channels.names();
        let mut used = vec![false; names.len()];
        for &s in &self.table.steps {
            used[s as usize] = true;
        }
        let mut order: Vec<u32> = (0..names.len() as u32)
            .filter(|&i| used[i as usize])
            .collect();
        order.sort_unstable_by(|&a, &b| names[a as usize].cmp(&names[b as usize]));
        let mut new_id = vec![0u32; names.len()];
        for (new, &old) in order.iter().enumerate() {
            new_id[old as usize] = new as u32;
        }
        let mut table = self.table;
        for s in &mut table.steps {
            *s = new_id[*s as usize];
        }
        table.channels = order
            .iter()
            .map(|&i| names[i as usize].to_string())
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
        // Ages and milestones travel with their path.
        let mut aged = Path::new(["b", "c"], 1.0, 2.0, 0.0);
        aged.ages_days = Some(vec![3.5, 0.0]);
        aged.lead_touch = Some(1);
        aged.opportunity_touch = Some(0);
        let mixed = vec![paths[0].clone(), aged.clone()];
        let t = PathTable::from_paths(&mixed).unwrap();
        assert_eq!(t.get(0).ages_days, None);
        assert_eq!(t.get(1).ages_days, Some(&[3.5, 0.0][..]));
        assert_eq!(
            (t.get(1).lead_touch, t.get(1).opportunity_touch),
            (Some(1), Some(0))
        );
        assert_eq!(t.to_paths(), mixed);
        // A channel interned but never stepped on is left out.
        let mut b = TableBuilder::default();
        let unused = b.intern("zz");
        let a = b.intern("a");
        assert_ne!(unused, a);
        b.aged_step_id(a, 2.0);
        b.end_path(1.0, 0.0, 0.0, Some(0), None);
        let t = b.finish();
        assert_eq!(t.channels(), ["a"]);
        assert_eq!(t.get(0).steps, [0]);
        assert_eq!(t.get(0).ages_days, Some(&[2.0][..]));
        let empty = PathTable::from_paths(&[]).unwrap();
        assert!(empty.is_empty() && empty.channels().is_empty());
        assert!(PathTable::from_paths(&[Path::new(["a", ""], 1.0, 0.0, 0.0)]).is_err());
    }
}
