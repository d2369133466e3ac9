//! Fit and engagement scores (DESIGN §4).
//!
//! Fit is the sum of the points of matching profile rules; engagement is
//! `Σ points × 0.5^(age_days / half_life_days)` over touches up to `as_of`.
//! Both are capped to 0..100 and are pure functions of their inputs.

use serde::Serialize;

use crate::domain::{Account, Person, Touch};
use crate::facts::{account_cel, person_cel};
use crate::fxhash::FxHashMap;
use crate::idmap::IdMap;
use crate::playbook::{Playbook, Var, Vars};
use crate::sym::Sym;
use crate::time::Timestamp;
use crate::touches::{TouchRef, Touches};

/// A lead's scores at one instant.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Scores {
    pub fit: f64,
    pub engagement: f64,
    /// Letter grade from the playbook's fit bands, if it defines them.
    pub grade: Option<String>,
}

/// One rule's part in a score.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Contribution {
    /// Rule name (fit) or touch kind (engagement).
    pub rule: String,
    /// Points this rule gives when it applies.
    pub points: f64,
    /// What it added: 0 when the fit rule did not match, the decayed value
    /// for an engagement touch.
    pub value: f64,
    /// For engagement: when the touch happened.
    pub at: Option<Timestamp>,
}

/// Scores with the reason for every point.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Explained {
    pub scores: Scores,
    pub fit: Vec<Contribution>,
    pub engagement: Vec<Contribution>,
}

/// Caps to 0..100; `+ 0.0` turns the `-0.0` of an empty sum into `0.0`.
fn cap(x: f64) -> f64 {
    x.clamp(0.0, 100.0) + 0.0
}

/// Fit score of a profile, with each rule's contribution.
pub fn fit(pb: &Playbook, person: &Person, account: Option<&Account>) -> (f64, Vec<Contribution>) {
    let mut vars = Vars::new();
    vars.set_cel(Var::Person, person_cel(person))
        .set_cel(Var::Account, account_cel(account));
    fit_with(pb, &vars)
}

/// [`fit`] over already-built variables.
pub fn fit_with(pb: &Playbook, vars: &Vars) -> (f64, Vec<Contribution>) {
    let parts: Vec<Contribution> = pb
        .scoring
        .fit_rules
        .iter()
        .map(|r| Contribution {
            rule: r.name.clone(),
            points: r.points,
            value: if r.criterion.matches(vars) {
                r.points
            } else {
                0.0
            },
            at: None,
        })
        .collect();
    (cap(parts.iter().map(|c| c.value).sum()), parts)
}

/// [`fit_with`]'s score without its contributions: the lifecycle needs
/// only the number, once per person, and naming each rule's contribution
/// cost an allocation per rule.
pub fn fit_score(pb: &Playbook, vars: &Vars) -> f64 {
    cap(pb
        .scoring
        .fit_rules
        .iter()
        .filter(|r| r.criterion.matches(vars))
        .map(|r| r.points)
        .sum())
}

/// The decay factor for a touch `age_days` old.
pub fn decay(age_days: f64, half_life_days: f64) -> f64 {
    0.5f64.powf(age_days / half_life_days)
}

/// Engagement as of `as_of`, with each scoring touch's decayed value. Touches
/// after `as_of` do not count; kinds without a rule add nothing.
pub fn engagement<'t>(
    pb: &Playbook,
    touches: impl IntoIterator<Item = &'t Touch>,
    as_of: Timestamp,
) -> (f64, Vec<Contribution>) {
    let scored = scored(pb, touches, as_of);
    let parts: Vec<Contribution> = scored
        .iter()
        .map(|&(t, points, value)| Contribution {
            rule: t.kind.to_string(),
            points,
            value,
            at: Some(t.at),
        })
        .collect();
    (cap(scored.iter().map(|s| s.2).sum()), parts)
}

/// The engagement score alone: [`engagement`]'s number without building
/// its explanation (no string per touch), for totals over many people.
pub fn engagement_score<'t>(
    pb: &Playbook,
    touches: impl IntoIterator<Item = &'t Touch>,
    as_of: Timestamp,
) -> f64 {
    cap(scored(pb, touches, as_of).iter().map(|s| s.2).sum())
}

/// Each scoring touch up to `as_of` with its rule's points and decayed
/// value, sorted by (time, kind): summed in this fixed order, the score
/// does not depend on input order.
fn scored<'t>(
    pb: &Playbook,
    touches: impl IntoIterator<Item = &'t Touch>,
    as_of: Timestamp,
) -> Vec<(&'t Touch, f64, f64)> {
    let s = &pb.scoring;
    let mut parts: Vec<(&'t Touch, f64, f64)> = touches
        .into_iter()
        .filter(|t| t.at <= as_of)
        .filter_map(|t| {
            let rule = s.engagement_rules.iter().find(|r| r.touch == t.kind)?;
            let value = rule.points * decay(t.at.days_until(as_of), s.half_life_days);
            Some((t, rule.points, value))
        })
        .collect();
    parts.sort_by(|a, b| a.0.at.cmp(&b.0.at).then_with(|| a.0.kind.cmp(&b.0.kind)));
    parts
}

/// One person's scoring touches as (time, points), in the order
/// [`engagement_score`] sums them: built once, it gives the score at any
/// number of instants without filtering, looking up rules or sorting again
/// (the lifecycle engine scores a lead at every instant one of its facts
/// changed). Same values summed in the same order: the same number.
#[derive(Clone, Debug, Default)]
pub struct EngagementRun(Vec<(Timestamp, f64)>);

impl EngagementRun {
    /// The run of `touches` (any order) by the playbook's engagement rules;
    /// touches of kinds without a rule are left out.
    pub fn build<'t>(pb: &Playbook, touches: impl IntoIterator<Item = &'t Touch>) -> Self {
        let mut rows: Vec<(Timestamp, &str, f64)> = touches
            .into_iter()
            .filter_map(|t| Some((t.at, t.kind.as_str(), rule_points(pb, t.into())?)))
            .collect();
        rows.sort_unstable_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        EngagementRun(rows.into_iter().map(|r| (r.0, r.2)).collect())
    }

    /// [`engagement_score`] of the run's touches as of `as_of`.
    pub fn score(&self, pb: &Playbook, as_of: Timestamp) -> f64 {
        score_of_run(self.0.iter().copied(), pb.scoring.half_life_days, as_of)
    }
}

/// The points of the engagement rule for `t`'s kind, if any.
fn rule_points(pb: &Playbook, t: TouchRef<'_>) -> Option<f64> {
    let s = &pb.scoring;
    Some(
        s.engagement_rules
            .iter()
            .find(|r| r.touch == t.kind)?
            .points,
    )
}

/// The capped sum of a sorted run's decayed points up to `as_of`.
fn score_of_run(
    run: impl Iterator<Item = (Timestamp, f64)>,
    half_life_days: f64,
    as_of: Timestamp,
) -> f64 {
    cap(run
        .take_while(|(at, _)| *at <= as_of)
        .map(|(at, points)| points * decay(at.days_until(as_of), half_life_days))
        .sum())
}

/// Every person's scoring touches as (time, points), in the order
/// [`engagement_score`] sums them: an index for pages that score many
/// people at one instant. Built once per history and playbook, it reads
/// each person's touches from one contiguous run instead of following a
/// pointer to every touch (and its kind) spread over the whole history.
///
/// By column: a touch's time and its rule's position (the rule gives the
/// points), 12 bytes, and each person's run found in a sorted id list
/// (16 bytes a person with the run's start). As (time, points) pairs of
/// 16 bytes and a hash map of ranges (about 40 bytes a person) it held
/// about 216 MB for the large demo.
#[derive(Clone, Debug, Default)]
pub struct EngagementIndex {
    half_life_days: f64,
    /// The points of each engagement rule, by position.
    points: Vec<f64>,
    /// The people with a run, ascending; person `ids[i]`'s run is
    /// `starts[i]..starts[i + 1]`.
    ids: Vec<i64>,
    starts: Vec<usize>,
    /// Each run's touch times and rule positions, sorted by (at, kind).
    at: Vec<Timestamp>,
    rule: Vec<u32>,
}

impl EngagementIndex {
    /// Indexes `touches` (any order) by the playbook's engagement rules;
    /// touches of kinds without a rule are left out.
    pub fn build(pb: &Playbook, touches: &Touches) -> Self {
        EngagementIndex::of(pb, || touches.people_times_kinds())
    }

    /// [`EngagementIndex::build`] of only the touches of `people`. The
    /// targets page scores the people of its listed accounts, a tenth of
    /// the large demo's 1.2M or fewer: an index of everyone's touches,
    /// kept, took about 150 MB of the server.
    pub fn build_for(pb: &Playbook, touches: &Touches, people: &[i64]) -> Self {
        // An array over the id range while it is dense: a hash set looked
        // up once per touch of the whole history took most of the time.
        let mut wanted = IdMap::over(people.iter().copied());
        for &id in people {
            *wanted.entry(id) = 0;
        }
        // Their touches read once (the index reads its input twice), a
        // few of the whole history's.
        let theirs: Vec<(i64, Timestamp, Sym)> = (touches.people_times_kinds())
            .filter(|&(p, ..)| wanted.get(p).is_some())
            .collect();
        EngagementIndex::of(pb, || theirs.iter().copied())
    }

    /// The index of the touches (person, time, kind) `touches()` gives
    /// (twice: to count each person's, then to place them).
    fn of<I: Iterator<Item = (i64, Timestamp, Sym)>>(
        pb: &Playbook,
        touches: impl Fn() -> I,
    ) -> Self {
        let rules = &pb.scoring.engagement_rules;
        // Each touch is placed in its person's run by a count per person,
        // not by sorting rows (0.4 GB of 40-byte rows for the large demo).
        // Touches kept in time order fill every run in time order; a run
        // is sorted only where that is not so, or where touches of
        // different kinds share an instant.
        let scoring = || {
            touches().filter_map(|(person, at, kind)| {
                let r = rules.iter().position(|r| r.touch == kind)?;
                Some((person, at, u32::try_from(r).ok()?))
            })
        };
        // Person → count, then → slot once the people are sorted.
        let mut slot: FxHashMap<i64, usize> = FxHashMap::default();
        for (person, ..) in scoring() {
            *slot.entry(person).or_default() += 1;
        }
        let mut people: Vec<(i64, usize)> = slot.iter().map(|(&p, &n)| (p, n)).collect();
        people.sort_unstable();
        let mut starts = Vec::with_capacity(people.len() + 1);
        starts.push(0);
        for (i, &(person, n)) in people.iter().enumerate() {
            slot.insert(person, i);
            starts.push(starts[i] + n);
        }
        let ids: Vec<i64> = people.into_iter().map(|(p, _)| p).collect();
        let len = starts[ids.len()];
        let mut at = vec![Timestamp::default(); len];
        let mut rule = vec![0u32; len];
        let mut next = starts.clone();
        for (person, t, r) in scoring() {
            if let Some(&i) = slot.get(&person) {
                at[next[i]] = t;
                rule[next[i]] = r;
                next[i] += 1;
            }
        }
        drop((slot, next));
        let kind = |r: u32| rules.get(r as usize).map(|r| r.touch.as_str());
        for w in starts.windows(2) {
            let run = w[0]..w[1];
            let key = |i: usize| (at[i], kind(rule[i]));
            if (run.start + 1..run.end).all(|i| key(i - 1) <= key(i)) {
                continue;
            }
            let mut rows: Vec<(Timestamp, u32)> = run.clone().map(|i| (at[i], rule[i])).collect();
            rows.sort_unstable_by(|a, b| (a.0, kind(a.1)).cmp(&(b.0, kind(b.1))));
            for (i, (t, r)) in run.zip(rows) {
                at[i] = t;
                rule[i] = r;
            }
        }
        EngagementIndex {
            half_life_days: pb.scoring.half_life_days,
            points: rules.iter().map(|r| r.points).collect(),
            ids,
            starts,
            at,
            rule,
        }
    }

    /// [`engagement_score`] of `person`'s touches as of `as_of`.
    pub fn score(&self, person: i64, as_of: Timestamp) -> f64 {
        let run = match self.ids.binary_search(&person) {
            Ok(i) => self.starts[i]..self.starts[i + 1],
            Err(_) => 0..0,
        };
        let points = |r: u32| self.points.get(r as usize).copied().unwrap_or(0.0);
        score_of_run(
            self.at[run.clone()]
                .iter()
                .zip(&self.rule[run])
                .map(|(&at, &r)| (at, points(r))),
            self.half_life_days,
            as_of,
        )
    }
}

/// The letter grade for a fit score.
pub fn grade(pb: &Playbook, fit: f64) -> Option<String> {
    let grades = &pb.scoring.grades;
    if grades.is_empty() {
        return None;
    }
    Some(
        grades
            .iter()
            .find(|(_, min)| fit >= *min)
            .map(|(g, _)| g.clone())
            .unwrap_or_else(|| "F".to_string()),
    )
}

/// Both scores of a person as of `as_of`, explained.
pub fn explain(
    pb: &Playbook,
    person: &Person,
    account: Option<&Account>,
    touches: &[Touch],
    as_of: Timestamp,
) -> Explained {
    let (fit_score, fit_parts) = fit(pb, person, account);
    let (eng, eng_parts) = engagement(pb, touches, as_of);
    Explained {
        scores: Scores {
            fit: fit_score,
            engagement: eng,
            grade: grade(pb, fit_score),
        },
        fit: fit_parts,
        engagement: eng_parts,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::domain::PersonTexts;
    use crate::playbook::STARTER;
    use crate::time::DAY_MS;

    fn pb() -> Playbook {
        Playbook::load(STARTER).playbook.unwrap()
    }

    fn touch(kind: &str, day: i64) -> Touch {
        Touch {
            kind: kind.into(),
            at: Timestamp::from_millis(day * DAY_MS),
            ..Touch::default()
        }
    }

    #[test]
    fn decay_halves_every_half_life() {
        assert_eq!(decay(0.0, 30.0), 1.0);
        assert_eq!(decay(30.0, 30.0), 0.5);
        assert_eq!(decay(90.0, 30.0), 0.125);
    }

    #[test]
    fn engagement_decays_with_age_and_ignores_the_future() {
        let pb = pb();
        // demo_request 40 points 30 days ago (→ 20), webinar 15 today (→ 15),
        // email_click 3 points 60 days ago (→ 0.75), a form fill tomorrow (ignored),
        // an unknown kind (ignored).
        let touches = [
            touch("demo_request", 70),
            touch("webinar", 100),
            touch("email_click", 40),
            touch("form_fill", 101),
            touch("podcast", 99),
        ];
        let at = Timestamp::from_millis(100 * DAY_MS);
        let (e, parts) = engagement(&pb, &touches, at);
        assert!((e - 35.75).abs() < 1e-9, "{e}");
        assert_eq!(parts.len(), 3);
        // The score alone is the same number to the bit, in any input order.
        assert_eq!(engagement_score(&pb, &touches, at).to_bits(), e.to_bits());
        assert_eq!(
            engagement_score(&pb, touches.iter().rev(), at).to_bits(),
            e.to_bits()
        );
    }

    #[test]
    fn the_index_scores_each_person_as_engagement_score_does() {
        let pb = pb();
        // Person 1 as above (35.75); person 2 one webinar 30 days ago (7.5).
        let mut touches = vec![
            touch("demo_request", 70),
            touch("webinar", 100),
            touch("email_click", 40),
            touch("form_fill", 101),
            touch("podcast", 99),
        ];
        for t in &mut touches {
            t.person_id = 1;
        }
        touches.push(Touch {
            person_id: 2,
            ..touch("webinar", 70)
        });
        let ix = EngagementIndex::build(&pb, &Touches::from(touches.clone()));
        let at = Timestamp::from_millis(100 * DAY_MS);
        assert!((ix.score(1, at) - 35.75).abs() < 1e-9);
        assert!((ix.score(2, at) - 7.5).abs() < 1e-9);
        // Nothing yet at day 50; no touches at all for person 3.
        assert_eq!(
            ix.score(2, Timestamp::from_millis(50 * DAY_MS)).to_bits(),
            0.0f64.to_bits()
        );
        assert_eq!(ix.score(3, at).to_bits(), 0.0f64.to_bits());
    }

    proptest::proptest! {
        /// On random touches (several people, kinds with and without a
        /// rule, ties in time), the index and a person's run give every
        /// person's `engagement_score` to the bit, at any instant.
        #[test]
        fn the_index_equals_engagement_score(
            touches in proptest::collection::vec((1i64..5, 0usize..5, 0i64..40), 0..40),
            as_of in 0i64..50,
        ) {
            let pb = pb();
            let kinds = ["demo_request", "webinar", "email_open", "podcast", "event"];
            let touches: Vec<Touch> = touches
                .iter()
                .map(|&(p, k, d)| Touch { person_id: p, ..touch(kinds[k], d) })
                .collect();
            let ix = EngagementIndex::build(&pb, &Touches::from(touches.clone()));
            // And from touches in time order, as a kept history holds them.
            let mut kept = Touches::from(touches.clone());
            kept.sort();
            let kept_ix = EngagementIndex::build(&pb, &kept);
            // And of the odd people only: theirs equal, the others' none.
            let odd_ix = EngagementIndex::build_for(&pb, &kept, &[1, 3, 5]);
            let at = Timestamp::from_millis(as_of * DAY_MS);
            for p in 0..6 {
                let odd = if p % 2 == 1 { kept_ix.score(p, at) } else { 0.0 };
                proptest::prop_assert_eq!(odd_ix.score(p, at).to_bits(), odd.to_bits(), "odd {}", p);
                let own = || touches.iter().filter(|t| t.person_id == p);
                let want = engagement_score(&pb, own(), at);
                proptest::prop_assert_eq!(ix.score(p, at).to_bits(), want.to_bits(), "person {}", p);
                proptest::prop_assert_eq!(kept_ix.score(p, at).to_bits(), want.to_bits(), "kept {}", p);
                // One person's run, as the lifecycle engine keeps it.
                let run = EngagementRun::build(&pb, own());
                proptest::prop_assert_eq!(run.score(&pb, at).to_bits(), want.to_bits(), "run {}", p);
            }
        }
    }

    #[test]
    fn engagement_is_capped_at_100() {
        let pb = pb();
        let touches: Vec<Touch> = (0..5).map(|_| touch("demo_request", 10)).collect();
        let (e, _) = engagement(&pb, &touches, Timestamp::from_millis(10 * DAY_MS));
        assert_eq!(e, 100.0);
    }

    #[test]
    fn no_touches_is_plain_zero() {
        let (e, parts) = engagement(&pb(), &[], Timestamp::from_millis(0));
        assert!(parts.is_empty());
        let alone = engagement_score(&pb(), &[], Timestamp::from_millis(0));
        assert_eq!(alone.to_bits(), e.to_bits());
        assert_eq!(e.to_string(), "0");
        assert!(e.is_sign_positive());
    }

    #[test]
    fn fit_sums_matching_rules_and_grades() {
        let pb = pb();
        let person = Person {
            title: Some("VP Operations".into()),
            texts: PersonTexts::new("", Some("ana@acme.io"), None, None),
            country: Some("US".into()),
            ..Person::default()
        };
        let account = Account {
            industry: Some("fintech".into()),
            employees: Some(150),
            ..Account::default()
        };
        // industry 25 + senior title 25 + business email 10 + core market 20; not ≥200 employees.
        let (f, parts) = fit(&pb, &person, Some(&account));
        assert_eq!(f, 80.0);
        assert_eq!(parts.iter().filter(|c| c.value > 0.0).count(), 4);
        assert_eq!(grade(&pb, f).as_deref(), Some("A"));
        assert_eq!(grade(&pb, 39.9).as_deref(), Some("D"));
        assert_eq!(grade(&pb, 5.0).as_deref(), Some("F"));
        // No account, free-mail address, unknown country: nothing matches but the title.
        let p2 = Person {
            title: Some("Head of Data".into()),
            texts: PersonTexts::new("", Some("x@gmail.com"), None, None),
            ..Person::default()
        };
        assert_eq!(fit(&pb, &p2, None).0, 25.0);
        // The score alone is the same number, bit for bit.
        for (p, a) in [(&person, Some(&account)), (&p2, None)] {
            let mut vars = Vars::new();
            vars.set_cel(Var::Person, person_cel(p))
                .set_cel(Var::Account, account_cel(a));
            assert_eq!(fit_score(&pb, &vars).to_bits(), fit(&pb, p, a).0.to_bits());
        }
    }
}
