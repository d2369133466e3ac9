//! Rule-based models: each path's conversions and value are split over its
//! touches by fixed weights that sum to one. A channel touched several times
//! on a path receives the weights of all its touches.
//!
//! The models run on interned paths ([`PathTable`]) with one credit slot per
//! channel id; the functions over `&[Path]` intern their input first.

use super::{AttributionError, Credit, Path, PathRef, PathTable};

/// A rule-based model and its parameter.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Rule<'a> {
    First,
    Last,
    /// The direct channel's id.
    LastNonDirect(&'a str),
    Linear,
    /// Half-life in days.
    TimeDecay(f64),
    UShaped,
    WShaped,
    FullPath,
}

/// Credits of `rule` on `table`, one per channel of the table in channel
/// order (channels without credit at zero).
pub(crate) fn credits(table: &PathTable, rule: Rule<'_>) -> Result<Vec<Credit>, AttributionError> {
    match rule {
        Rule::First => allocate(table, |_, p| Ok(single(p.steps.len(), 0))),
        Rule::Last => allocate(table, |_, p| Ok(single(p.steps.len(), p.steps.len() - 1))),
        Rule::LastNonDirect(direct) => {
            // A direct channel absent from the input matches no step.
            let direct = table
                .channels()
                .binary_search_by(|c| c.as_str().cmp(direct))
                .ok();
            allocate(table, |_, p| {
                let n = p.steps.len();
                let i = p
                    .steps
                    .iter()
                    .rposition(|&s| Some(s as usize) != direct)
                    .unwrap_or(n - 1);
                Ok(single(n, i))
            })
        }
        Rule::Linear => allocate(table, |_, p| {
            let n = p.steps.len();
            Ok(vec![1.0 / n as f64; n])
        }),
        Rule::TimeDecay(half_life_days) => {
            check(rule)?;
            allocate(table, |i, p| {
                let ages = p
                    .ages_days
                    .ok_or(AttributionError::MissingAges { path: i })?;
                let min = ages.iter().copied().fold(f64::INFINITY, f64::min);
                Ok(normalise(
                    ages.iter()
                        .map(|a| (-(a - min) / half_life_days).exp2())
                        .collect(),
                ))
            })
        }
        Rule::UShaped => allocate(table, |_, p| {
            let n = p.steps.len();
            Ok(position_based(n, &[(0, 0.4), (n - 1, 0.4)], 0.2))
        }),
        Rule::WShaped => allocate(table, |_, p| {
            let mut roles = vec![(0, 0.3)];
            roles.extend(p.lead_touch.map(|i| (i, 0.3)));
            roles.extend(p.opportunity_touch.map(|i| (i, 0.3)));
            Ok(position_based(p.steps.len(), &roles, 0.1))
        }),
        Rule::FullPath => allocate(table, |_, p| {
            let n = p.steps.len();
            let mut roles = vec![(0, 0.225)];
            roles.extend(p.lead_touch.map(|i| (i, 0.225)));
            roles.extend(p.opportunity_touch.map(|i| (i, 0.225)));
            roles.push((n - 1, 0.225));
            Ok(position_based(n, &roles, 0.1))
        }),
    }
}

/// Splits every path by `weights(index, path)`, which returns one weight per
/// touch summing to one.
fn allocate(
    table: &PathTable,
    mut weights: impl FnMut(usize, PathRef<'_>) -> Result<Vec<f64>, AttributionError>,
) -> Result<Vec<Credit>, AttributionError> {
    let mut credit = vec![(0.0f64, 0.0f64); table.channels().len()];
    for (i, p) in table.iter().enumerate() {
        let w = weights(i, p)?;
        for (&step, share) in p.steps.iter().zip(w) {
            let c = &mut credit[step as usize];
            c.0 += share * p.conversions;
            c.1 += share * p.value;
        }
    }
    Ok(table
        .channels()
        .iter()
        .zip(credit)
        .map(|(channel, (conversions, value))| Credit {
            channel: channel.clone(),
            conversions,
            value,
        })
        .collect())
}

/// Checks the rule's parameter: a time-decay half-life must be a finite
/// number of days > 0.
fn check(rule: Rule<'_>) -> Result<(), AttributionError> {
    match rule {
        Rule::TimeDecay(h) if !(h.is_finite() && h > 0.0) => {
            Err(AttributionError::InvalidHalfLife(h))
        }
        _ => Ok(()),
    }
}

/// [`credits`] of `paths`, interned (and validated) first.
fn on_paths(paths: &[Path], rule: Rule<'_>) -> Result<Vec<Credit>, AttributionError> {
    // The parameter is checked before the paths, as it always was.
    check(rule)?;
    credits(&PathTable::from_paths(paths)?, rule)
}

/// All weight on touch `index` of a path of `len` touches.
fn single(len: usize, index: usize) -> Vec<f64> {
    let mut w = vec![0.0; len];
    w[index] = 1.0;
    w
}

/// Scales `w` to sum to one (all weights are ≥ 0 and at least one is > 0).
fn normalise(mut w: Vec<f64>) -> Vec<f64> {
    let sum: f64 = w.iter().sum();
    for x in &mut w {
        *x /= sum;
    }
    w
}

/// Position-based weights. Each role `(touch, share)` gives its share to its
/// touch (a touch filling several roles gets all their shares); `rest` is
/// split equally over the touches that fill no role. The result is then
/// normalised to sum to one, which hands the `rest` share to the role touches
/// in proportion to their shares when every touch fills a role.
fn position_based(len: usize, roles: &[(usize, f64)], rest: f64) -> Vec<f64> {
    let mut w = vec![0.0; len];
    let mut is_role = vec![false; len];
    for &(i, share) in roles {
        w[i] += share;
        is_role[i] = true;
    }
    let others = is_role.iter().filter(|r| !**r).count();
    if others > 0 {
        let each = rest / others as f64;
        for (x, r) in w.iter_mut().zip(&is_role) {
            if !r {
                *x = each;
            }
        }
    }
    normalise(w)
}

/// First touch: all credit to the first touch of each path.
pub fn first_touch(paths: &[Path]) -> Result<Vec<Credit>, AttributionError> {
    on_paths(paths, Rule::First)
}

/// Last touch: all credit to the last touch of each path.
pub fn last_touch(paths: &[Path]) -> Result<Vec<Credit>, AttributionError> {
    on_paths(paths, Rule::Last)
}

/// Last non-direct: all credit to the last touch whose channel is not
/// `direct` (see [`super::DEFAULT_DIRECT`]); a path made only of direct
/// touches credits its last touch.
pub fn last_non_direct(paths: &[Path], direct: &str) -> Result<Vec<Credit>, AttributionError> {
    on_paths(paths, Rule::LastNonDirect(direct))
}

/// Linear: equal credit to every touch.
pub fn linear(paths: &[Path]) -> Result<Vec<Credit>, AttributionError> {
    on_paths(paths, Rule::Linear)
}

/// Time decay: touch weight 2^(−age/H) with half-life `half_life_days` = H,
/// normalised per path. Every path needs `ages_days`. Ages are shifted by the
/// path's smallest age before weighting, which leaves the shares unchanged
/// and avoids underflow on very old paths.
pub fn time_decay(paths: &[Path], half_life_days: f64) -> Result<Vec<Credit>, AttributionError> {
    on_paths(paths, Rule::TimeDecay(half_life_days))
}

/// U-shaped (position based): 40% to the first touch, 40% to the last, 20%
/// shared equally by the touches between. One touch gets 100%, two touches
/// get 50% each.
pub fn u_shaped(paths: &[Path]) -> Result<Vec<Credit>, AttributionError> {
    on_paths(paths, Rule::UShaped)
}

/// W-shaped: 30% each to the first touch, the lead-creation touch
/// ([`Path::lead_touch`]) and the opportunity-creation touch
/// ([`Path::opportunity_touch`]); 10% shared equally by the other touches.
///
/// Fewer touches or missing milestones:
/// - a touch that fills several roles (e.g. the lead was created on the first
///   touch) receives all their shares;
/// - a missing milestone is dropped and the remaining weights are scaled to
///   sum to one (no milestones: first touch 30 : 10 for the rest, i.e. 75% and
///   25% shared);
/// - if every touch fills a role, the 10% goes to the role touches in
///   proportion to their shares (three distinct milestone touches: ⅓ each).
pub fn w_shaped(paths: &[Path]) -> Result<Vec<Credit>, AttributionError> {
    on_paths(paths, Rule::WShaped)
}

/// Full path: 22.5% each to the first touch, the lead-creation touch, the
/// opportunity-creation touch and the last touch before conversion (the
/// close); 10% shared equally by the other touches. Fewer touches and missing
/// milestones are handled as in [`w_shaped`].
pub fn full_path(paths: &[Path]) -> Result<Vec<Credit>, AttributionError> {
    on_paths(paths, Rule::FullPath)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::super::tests::{credit_of, example_paths};
    use super::*;

    /// One converting path (value 10) over distinct channels t1..tn.
    fn distinct(n: usize) -> Path {
        Path::new((1..=n).map(|i| format!("t{i}")), 1.0, 10.0, 0.0)
    }

    fn shares(credits: &[Credit], n: usize) -> Vec<f64> {
        (1..=n)
            .map(|i| credit_of(credits, &format!("t{i}")).conversions)
            .collect()
    }

    fn assert_close(got: &[f64], want: &[f64], tol: f64) {
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < tol, "got {got:?}, want {want:?}");
        }
    }

    #[test]
    fn time_decay_oracle() {
        let mut p = distinct(4);
        p.ages_days = Some(vec![0.0, 7.0, 14.0, 28.0]);
        let c = time_decay(&[p], 7.0).unwrap();
        assert_close(
            &shares(&c, 4),
            &[0.551724, 0.275862, 0.137931, 0.034483],
            1e-6,
        );
        assert!((credit_of(&c, "t1").value - 5.51724).abs() < 1e-5);
        // Very old paths do not underflow.
        let mut p = distinct(2);
        p.ages_days = Some(vec![1e6, 1e6 + 7.0]);
        assert_close(
            &shares(&time_decay(&[p], 7.0).unwrap(), 2),
            &[2.0 / 3.0, 1.0 / 3.0],
            1e-12,
        );
        assert!(matches!(
            time_decay(&[distinct(2)], 7.0),
            Err(AttributionError::MissingAges { path: 0 })
        ));
        assert_eq!(
            time_decay(&[], 0.0),
            Err(AttributionError::InvalidHalfLife(0.0))
        );
    }

    #[test]
    fn w_shaped_oracle_and_short_paths() {
        let mut p = distinct(5);
        p.lead_touch = Some(2);
        p.opportunity_touch = Some(4);
        let c = w_shaped(&[p]).unwrap();
        assert_close(&shares(&c, 5), &[0.3, 0.05, 0.3, 0.05, 0.3], 1e-12);
        // Three touches, all milestones: a third each.
        let mut p = distinct(3);
        p.lead_touch = Some(1);
        p.opportunity_touch = Some(2);
        assert_close(&shares(&w_shaped(&[p]).unwrap(), 3), &[1.0 / 3.0; 3], 1e-12);
        // Lead on the first touch: that touch holds two roles.
        let mut p = distinct(4);
        p.lead_touch = Some(0);
        p.opportunity_touch = Some(2);
        assert_close(
            &shares(&w_shaped(&[p]).unwrap(), 4),
            &[0.6, 0.05, 0.3, 0.05],
            1e-12,
        );
        // No milestones: 30 : 10 scaled to one.
        assert_close(
            &shares(&w_shaped(&[distinct(3)]).unwrap(), 3),
            &[0.75, 0.125, 0.125],
            1e-12,
        );
        assert_close(
            &shares(&w_shaped(&[distinct(1)]).unwrap(), 1),
            &[1.0],
            1e-12,
        );
    }

    #[test]
    fn full_path_weights() {
        let mut p = distinct(6);
        p.lead_touch = Some(1);
        p.opportunity_touch = Some(3);
        assert_close(
            &shares(&full_path(&[p]).unwrap(), 6),
            &[0.225, 0.225, 0.05, 0.225, 0.05, 0.225],
            1e-12,
        );
        let mut p = distinct(4);
        p.lead_touch = Some(1);
        p.opportunity_touch = Some(2);
        assert_close(&shares(&full_path(&[p]).unwrap(), 4), &[0.25; 4], 1e-12);
    }

    #[test]
    fn u_shaped_weights() {
        assert_close(
            &shares(&u_shaped(&[distinct(1)]).unwrap(), 1),
            &[1.0],
            1e-12,
        );
        assert_close(
            &shares(&u_shaped(&[distinct(2)]).unwrap(), 2),
            &[0.5, 0.5],
            1e-12,
        );
        assert_close(
            &shares(&u_shaped(&[distinct(4)]).unwrap(), 4),
            &[0.4, 0.1, 0.1, 0.4],
            1e-12,
        );
    }

    #[test]
    fn simple_rules() {
        let paths = [
            Path::new(["a", "direct", "b", "direct"], 2.0, 20.0, 1.0),
            Path::new(["direct", "direct"], 1.0, 5.0, 0.0),
            Path::new(["b", "a"], 0.0, 0.0, 3.0),
        ];
        let conv = |c: Vec<Credit>| -> Vec<(String, f64, f64)> {
            c.into_iter()
                .map(|c| (c.channel, c.conversions, c.value))
                .collect()
        };
        let row = |c: &str, x: f64, v: f64| (c.to_string(), x, v);
        assert_eq!(
            conv(first_touch(&paths).unwrap()),
            vec![
                row("a", 2.0, 20.0),
                row("b", 0.0, 0.0),
                row("direct", 1.0, 5.0)
            ]
        );
        assert_eq!(
            conv(last_touch(&paths).unwrap()),
            vec![
                row("a", 0.0, 0.0),
                row("b", 0.0, 0.0),
                row("direct", 3.0, 25.0)
            ]
        );
        assert_eq!(
            conv(last_non_direct(&paths, "direct").unwrap()),
            vec![
                row("a", 0.0, 0.0),
                row("b", 2.0, 20.0),
                row("direct", 1.0, 5.0)
            ]
        );
        assert_eq!(
            conv(linear(&paths).unwrap()),
            vec![
                row("a", 0.5, 5.0),
                row("b", 0.5, 5.0),
                row("direct", 2.0, 15.0)
            ]
        );
    }

    #[test]
    fn first_touch_on_example_file() {
        let Some(paths) = example_paths() else { return };
        let c = first_touch(&paths).unwrap();
        for (ch, want) in [
            ("alpha", 6308.0),
            ("iota", 4606.0),
            ("eta", 3164.0),
            ("beta", 2831.0),
        ] {
            let got = credit_of(&c, ch).conversions;
            assert!((got - want).abs() < 1e-6, "{ch}: {got} vs {want}");
        }
    }
}
