//! Shapley values over channel sets (the "simplified" Shapley model).
//!
//! Each path is treated as the set of its distinct channels. The value of a
//! coalition `S` of channels is the conversions (or the value) of the paths
//! whose channel set is a subset of `S`. Channel `i` gets the standard exact
//! Shapley value
//!
//! ```text
//! φ_i = Σ_{S ⊆ N∖{i}} |S|! (n − |S| − 1)! / n! · (v(S ∪ {i}) − v(S))
//! ```
//!
//! over all `2^n` coalitions, so the number of distinct channels is limited
//! to [`MAX_SHAPLEY_CHANNELS`]. Coalition values are computed with a
//! subset-sum (zeta) transform in `n · 2^n` steps.
//!
//! Because this game is a sum of one unanimity game per path, the result
//! equals splitting each path's conversions equally among its distinct
//! channels; the tests use that as a second oracle.

use super::{AttributionError, Credit, Path, PathTable};

/// Largest number of distinct channels [`shapley`] accepts (2^20 coalitions).
pub const MAX_SHAPLEY_CHANNELS: usize = 20;

/// Exact Shapley values over channel sets; errors with
/// [`AttributionError::TooManyChannels`] beyond [`MAX_SHAPLEY_CHANNELS`]
/// distinct channels. Credits sum to the totals (efficiency).
pub fn shapley(paths: &[Path]) -> Result<Vec<Credit>, AttributionError> {
    shapley_table(&PathTable::from_paths(paths)?)
}

/// [`shapley`] on interned paths.
pub fn shapley_table(table: &PathTable) -> Result<Vec<Credit>, AttributionError> {
    let channels = table.channels();
    let n = channels.len();
    if n > MAX_SHAPLEY_CHANNELS {
        return Err(AttributionError::TooManyChannels {
            found: n,
            max: MAX_SHAPLEY_CHANNELS,
        });
    }
    let size = 1usize << n;
    // v[S] starts as the weight of paths whose set is exactly S.
    let mut v = vec![[0.0f64; 2]; size];
    for p in table.iter() {
        let mut mask = 0usize;
        for &s in p.steps {
            mask |= 1 << s;
        }
        v[mask][0] += p.conversions;
        v[mask][1] += p.value;
    }
    // Zeta transform: v[S] = Σ_{T ⊆ S} weight(T).
    for bit in 0..n {
        let b = 1usize << bit;
        for mask in 0..size {
            if mask & b != 0 {
                let low = v[mask ^ b];
                v[mask][0] += low[0];
                v[mask][1] += low[1];
            }
        }
    }
    // coef[s] = s! (n − s − 1)! / n! = 1 / (n · C(n − 1, s)).
    let mut coef = vec![0.0f64; n];
    let mut binom = 1.0f64;
    for (s, c) in coef.iter_mut().enumerate() {
        *c = 1.0 / (n as f64 * binom);
        binom = binom * (n - 1 - s) as f64 / (s + 1) as f64;
    }
    let mut credits = Vec::with_capacity(n);
    for (i, channel) in channels.iter().enumerate() {
        let b = 1usize << i;
        let mut phi = [0.0f64; 2];
        for mask in 0..size {
            if mask & b == 0 {
                let w = coef[mask.count_ones() as usize];
                let (with, without) = (v[mask | b], v[mask]);
                phi[0] += w * (with[0] - without[0]);
                phi[1] += w * (with[1] - without[1]);
            }
        }
        credits.push(Credit {
            channel: channel.clone(),
            // Marginal contributions are ≥ 0; clamp rounding noise.
            conversions: phi[0].max(0.0),
            value: phi[1].max(0.0),
        });
    }
    Ok(credits)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::super::tests::example_paths;
    use super::*;

    /// Hand-worked example. Paths (as sets): {A} 10 conversions, {A,B} 6,
    /// {B,C} 3 (B twice on that path, which a set ignores), {C} 0 with nulls.
    /// v(∅)=0, v(A)=10, v(B)=0, v(C)=0, v(AB)=16, v(AC)=10, v(BC)=3, v(ABC)=19.
    /// Weights for n=3: |S|=0 → 1/3, |S|=1 → 1/6, |S|=2 → 1/3.
    /// φ_A = ⅓(10−0) + ⅙(16−0) + ⅙(10−0) + ⅓(19−3)  = 10/3 + 16/6 + 10/6 + 16/3 = 13
    /// φ_B = ⅓(0−0)  + ⅙(16−10) + ⅙(3−0)  + ⅓(19−10) = 0 + 1 + 0.5 + 3        = 4.5
    /// φ_C = ⅓(0−0)  + ⅙(10−10) + ⅙(3−0)  + ⅓(19−16) = 0 + 0 + 0.5 + 1        = 1.5
    /// Sum 19 = total conversions.
    #[test]
    fn hand_worked_example() {
        let paths = [
            Path::new(["A"], 10.0, 100.0, 2.0),
            Path::new(["B", "A"], 6.0, 60.0, 0.0),
            Path::new(["B", "C", "B"], 3.0, 30.0, 1.0),
            Path::new(["C"], 0.0, 0.0, 5.0),
        ];
        let c = shapley(&paths).unwrap();
        let got: Vec<(&str, f64, f64)> = c
            .iter()
            .map(|c| (c.channel.as_str(), c.conversions, c.value))
            .collect();
        let want = [("A", 13.0, 130.0), ("B", 4.5, 45.0), ("C", 1.5, 15.0)];
        assert_eq!(got.len(), 3);
        for (g, w) in got.iter().zip(want) {
            assert_eq!(g.0, w.0);
            assert!(
                (g.1 - w.1).abs() < 1e-12 && (g.2 - w.2).abs() < 1e-12,
                "{got:?}"
            );
        }
    }

    #[test]
    fn matches_equal_split_over_distinct_channels() {
        let Some(paths) = example_paths() else { return };
        let c = shapley(&paths).unwrap();
        let mut split: std::collections::BTreeMap<&str, (f64, f64)> = Default::default();
        for p in &paths {
            let mut set: Vec<&str> = p.steps.iter().map(String::as_str).collect();
            set.sort_unstable();
            set.dedup();
            let k = set.len() as f64;
            for s in set {
                let e = split.entry(s).or_default();
                e.0 += p.conversions / k;
                e.1 += p.value / k;
            }
        }
        assert_eq!(c.len(), split.len());
        for (a, (channel, (conversions, value))) in c.iter().zip(split) {
            let b = Credit {
                channel: channel.to_string(),
                conversions,
                value,
            };
            assert_eq!(a.channel, b.channel);
            assert!((a.conversions - b.conversions).abs() < 1e-6, "{a:?} {b:?}");
            assert!((a.value - b.value).abs() < 1e-6, "{a:?} {b:?}");
        }
    }

    #[test]
    fn too_many_channels_is_a_clear_error() {
        let paths: Vec<Path> = (0..=MAX_SHAPLEY_CHANNELS)
            .map(|i| Path::new([format!("c{i}")], 1.0, 0.0, 0.0))
            .collect();
        let e = shapley(&paths).unwrap_err();
        assert_eq!(e, AttributionError::TooManyChannels { found: 21, max: 20 });
        assert!(e.to_string().contains("21 distinct channels"));
    }
}
