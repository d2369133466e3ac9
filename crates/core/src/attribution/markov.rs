//! Exact Markov-chain attribution of order k (DESIGN §6).
//!
//! # The chain
//! Consecutive repeats of one channel in a path collapse into one touch
//! (`a > a > b` is `a > b`) before anything else. The transient states are
//! `start` and the tuples of the last `min(i, k)` channels after the i-th
//! touch; the absorbing states are `conversion` and `null`. A path with `c`
//! conversions and `n` nulls adds weight `c + n` to each transition along it,
//! `c` to its last state → conversion and `n` to its last state → null.
//! Transition probabilities are the weights divided by each state's total
//! outgoing weight.
//!
//! # Removal effects and credit
//! `P` is the probability of reaching conversion from `start`. Removing
//! channel `x` sends every state whose tuple contains `x` to null; the removal
//! effect is `1 − P(x removed) / P`. Conversion credit is
//! `effect(x) / Σ effects × total conversions`.
//!
//! Value uses the same chain with a reward: reaching conversion from state
//! `s` earns the mean value of the conversions that ended in `s`, so `V` is
//! the expected value per journey and the value removal effect is
//! `1 − V(x removed) / V`. Value credit is `value effect(x) / Σ value effects
//! × total value`. (When every conversion has the same value the two sets of
//! effects coincide.)
//!
//! # Exact solution
//! `P` and `V` solve `(I − Q) h = r` on the transient states. The solver
//! keeps only the states reachable from `start` (and not removed), splits
//! them into strongly connected components with Tarjan's algorithm, and
//! solves the components in reverse topological order (Tarjan's output
//! order): a component's equations only involve itself and components
//! already solved. Each component of up to [`DIRECT_SOLVE_LIMIT`] states is
//! solved directly by Gaussian elimination with partial pivoting; `I − Q` is
//! a non-singular M-matrix because every state leads to absorption. That
//! answer is exact up to floating-point rounding, with no iteration or
//! simulation. On `paths.csv` the whole order-3 chain has 790 transient
//! states, so every component there is solved directly.
//!
//! Dense elimination costs the cube of the component size, once for the full
//! chain and once per removed channel, so a single component larger than the
//! limit (e.g. order 3 over dozens of campaigns with randomly mixed paths) is
//! instead solved by Gauss–Seidel sweeps run until no entry moves by more
//! than 1e-15 of the largest and the estimated remaining error is below
//! 1e-13 relative; the tests check that this path agrees with the direct
//! solve to 1e-13.

use super::table::PathTable;
use super::{AttributionError, Credit, Path};
use crate::fxhash::FxHashMap;

/// Result of [`markov`].
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct MarkovAttribution {
    /// Per-channel credit, sorted by channel id; sums to the totals.
    pub credits: Vec<Credit>,
    /// Removal effect of each channel, sorted by channel id.
    pub removal_effects: Vec<RemovalEffect>,
    /// Probability of conversion from `start` in the full chain.
    pub conversion_probability: f64,
    /// Expected conversion value per journey in the full chain.
    pub value_per_journey: f64,
    /// Number of transient states including `start`.
    pub states: usize,
}

/// Removal effects of one channel, each in [0, 1].
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct RemovalEffect {
    /// Channel id.
    pub channel: String,
    /// `1 − P(conversion | channel removed) / P(conversion)`.
    pub conversions: f64,
    /// `1 − V(channel removed) / V` with `V` the expected value per journey.
    pub value: f64,
}

/// The estimated chain. State 0 is `start`.
struct Chain {
    /// Successor states with transition probabilities, sorted by state.
    succ: Vec<Vec<(usize, f64)>>,
    /// Probability of going to conversion, and the expected value earned on
    /// the step, from each state.
    reward: Vec<[f64; 2]>,
    /// Channel ids in each state's tuple, sorted and deduplicated.
    tuple: Vec<Vec<u32>>,
}

impl Chain {
    fn build(table: &PathTable, order: usize) -> Chain {
        let mut index: FxHashMap<Box<[u32]>, usize> = FxHashMap::default();
        let mut tuple: Vec<Vec<u32>> = vec![Vec::new()];
        index.insert(Box::new([]), 0);
        let mut edges: FxHashMap<(usize, usize), f64> = FxHashMap::default();
        // Per state: weight to conversion, to null, value at conversion.
        let mut ends: Vec<[f64; 3]> = vec![[0.0; 3]];
        let mut collapsed: Vec<u32> = Vec::new();
        for p in table.iter() {
            let w = p.conversions + p.nulls;
            if w <= 0.0 {
                continue;
            }
            collapsed.clear();
            for &c in p.steps {
                if collapsed.last() != Some(&c) {
                    collapsed.push(c);
                }
            }
            let mut prev = 0;
            for i in 0..collapsed.len() {
                let key = &collapsed[(i + 1).saturating_sub(order)..=i];
                let state = match index.get(key) {
                    Some(&s) => s,
                    None => {
                        let s = tuple.len();
                        tuple.push(key.to_vec());
                        ends.push([0.0; 3]);
                        index.insert(key.into(), s);
                        s
                    }
                };
                *edges.entry((prev, state)).or_insert(0.0) += w;
                prev = state;
            }
            ends[prev][0] += p.conversions;
            ends[prev][1] += p.nulls;
            ends[prev][2] += p.value;
        }
        let n = tuple.len();
        let mut succ: Vec<Vec<(usize, f64)>> = vec![Vec::new(); n];
        for (&(from, to), &w) in &edges {
            succ[from].push((to, w));
        }
        let mut reward = vec![[0.0; 2]; n];
        for s in 0..n {
            succ[s].sort_by_key(|e| e.0);
            let out: f64 = succ[s].iter().map(|e| e.1).sum::<f64>() + ends[s][0] + ends[s][1];
            if out > 0.0 {
                for e in &mut succ[s] {
                    e.1 /= out;
                }
                reward[s] = [ends[s][0] / out, ends[s][2] / out];
            }
        }
        for (s, t) in tuple.iter_mut().enumerate() {
            if s > 0 {
                t.sort_unstable();
                t.dedup();
            }
        }
        Chain {
            succ,
            reward,
            tuple,
        }
    }

    /// Expected reward `[P(conversion), value]` from `start` when the states
    /// with `alive[s] == false` lead to null. Components of at most
    /// `direct_limit` states are solved directly, larger ones iteratively.
    fn solve(&self, alive: &[bool], direct_limit: usize) -> Result<[f64; 2], AttributionError> {
        let n = self.succ.len();
        let mut h = vec![[0.0f64; 2]; n];
        let mut solver = Solver {
            chain: self,
            alive,
            h: &mut h,
            local: vec![usize::MAX; n],
            direct_limit,
        };
        // Iterative Tarjan from `start` over alive states.
        const UNSEEN: usize = usize::MAX;
        let mut idx = vec![UNSEEN; n];
        let mut low = vec![0usize; n];
        let mut on_stack = vec![false; n];
        let mut stack: Vec<usize> = Vec::new();
        let mut call: Vec<(usize, usize)> = vec![(0, 0)];
        let mut next = 1;
        idx[0] = 0;
        stack.push(0);
        on_stack[0] = true;
        while let Some(&(v, pos)) = call.last() {
            if let Some(&(w, _)) = self.succ[v].get(pos) {
                if let Some(top) = call.last_mut() {
                    top.1 += 1;
                }
                if !alive[w] {
                    continue;
                }
                if idx[w] == UNSEEN {
                    idx[w] = next;
                    low[w] = next;
                    next += 1;
                    stack.push(w);
                    on_stack[w] = true;
                    call.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(idx[w]);
                }
            } else {
                call.pop();
                if let Some(&(u, _)) = call.last() {
                    low[u] = low[u].min(low[v]);
                }
                if low[v] == idx[v] {
                    let mut comp = Vec::new();
                    while let Some(w) = stack.pop() {
                        on_stack[w] = false;
                        comp.push(w);
                        if w == v {
                            break;
                        }
                    }
                    solver.component(&comp)?;
                }
            }
        }
        Ok(h[0])
    }
}

/// Solves one strongly connected component at a time.
struct Solver<'a> {
    chain: &'a Chain,
    alive: &'a [bool],
    h: &'a mut Vec<[f64; 2]>,
    /// Position of a state in the current component, `usize::MAX` outside.
    local: Vec<usize>,
    /// Largest component solved by direct elimination.
    direct_limit: usize,
}

impl Solver<'_> {
    fn component(&mut self, comp: &[usize]) -> Result<(), AttributionError> {
        let m = comp.len();
        for (i, &s) in comp.iter().enumerate() {
            self.local[s] = i;
        }
        // Q restricted to the component, as sparse rows; b = r + Q·h outside.
        let mut rows: Vec<Vec<(usize, f64)>> = vec![Vec::new(); m];
        let mut b = vec![[0.0f64; 2]; m];
        for (i, &s) in comp.iter().enumerate() {
            b[i] = self.chain.reward[s];
            for &(t, p) in &self.chain.succ[s] {
                if !self.alive[t] {
                    continue;
                }
                match self.local[t] {
                    usize::MAX => {
                        b[i][0] += p * self.h[t][0];
                        b[i][1] += p * self.h[t][1];
                    }
                    j => rows[i].push((j, p)),
                }
            }
        }
        let x = if m <= self.direct_limit {
            // A = I − Q, dense.
            let mut a = vec![0.0f64; m * m];
            for (i, row) in rows.iter().enumerate() {
                a[i * m + i] = 1.0;
                for &(j, p) in row {
                    a[i * m + j] -= p;
                }
            }
            gauss(m, &mut a, &mut b)?
        } else {
            gauss_seidel(&rows, &b)?
        };
        for (i, &s) in comp.iter().enumerate() {
            self.local[s] = usize::MAX;
            self.h[s] = x[i];
        }
        Ok(())
    }
}

/// Solves `x = b + Q x` for one large component by Gauss–Seidel sweeps
/// from `x = 0`. For this M-matrix system the iterates increase
/// monotonically to the solution; sweeps stop when no entry changes by more
/// than [`ITERATION_TOLERANCE`] relative to the largest entry and the error
/// still to go, estimated from the rate at which the steps shrink, is below
/// [`REMAINING_TOLERANCE`] (an error if that takes more than [`MAX_SWEEPS`]).
fn gauss_seidel(
    rows: &[Vec<(usize, f64)>],
    b: &[[f64; 2]],
) -> Result<Vec<[f64; 2]>, AttributionError> {
    let m = rows.len();
    let mut x = vec![[0.0f64; 2]; m];
    let mut previous = [f64::INFINITY; 2];
    for _ in 0..MAX_SWEEPS {
        let mut change = [0.0f64; 2];
        let mut size = [0.0f64; 2];
        for i in 0..m {
            let mut acc = b[i];
            let mut diag = 0.0;
            for &(j, p) in &rows[i] {
                if j == i {
                    diag += p;
                } else {
                    acc[0] += p * x[j][0];
                    acc[1] += p * x[j][1];
                }
            }
            for k in 0..2 {
                let new = acc[k] / (1.0 - diag);
                change[k] = change[k].max((new - x[i][k]).abs());
                size[k] = size[k].max(new.abs());
                x[i][k] = new;
            }
        }
        // Geometric convergence at rate ρ leaves at most change·ρ/(1 − ρ) to go.
        let done = (0..2).all(|k| {
            let rho = change[k] / previous[k];
            change[k] == 0.0
                || (change[k] <= ITERATION_TOLERANCE * size[k]
                    && rho < 1.0
                    && change[k] * rho / (1.0 - rho) <= REMAINING_TOLERANCE * size[k])
        });
        if done {
            return Ok(x);
        }
        previous = change;
    }
    Err(AttributionError::Numerical {
        model: "markov",
        reason: format!("Gauss–Seidel did not converge in {MAX_SWEEPS} sweeps"),
    })
}

/// Components with more states than this are solved by Gauss–Seidel sweeps
/// instead of dense elimination (whose cost grows with the cube of the size).
pub const DIRECT_SOLVE_LIMIT: usize = 1500;

/// Relative step at which [`gauss_seidel`] may stop.
const ITERATION_TOLERANCE: f64 = 1e-15;

/// Largest relative error [`gauss_seidel`] may leave, estimated from the
/// observed convergence rate.
const REMAINING_TOLERANCE: f64 = 1e-13;

/// Sweep limit of [`gauss_seidel`].
const MAX_SWEEPS: usize = 1_000_000;

/// Solves the dense `m × m` system `a x = b` (two right-hand sides) by
/// Gaussian elimination with partial pivoting. Skips zero entries, which
/// keeps the sparse early rows cheap.
fn gauss(m: usize, a: &mut [f64], b: &mut [[f64; 2]]) -> Result<Vec<[f64; 2]>, AttributionError> {
    for k in 0..m {
        let pivot = (k..m)
            .max_by(|&i, &j| a[i * m + k].abs().total_cmp(&a[j * m + k].abs()))
            .unwrap_or(k);
        if a[pivot * m + k].abs() < 1e-300 {
            return Err(AttributionError::Numerical {
                model: "markov",
                reason: "singular transition system".to_string(),
            });
        }
        if pivot != k {
            for c in 0..m {
                a.swap(k * m + c, pivot * m + c);
            }
            b.swap(k, pivot);
        }
        let (upper, lower) = a.split_at_mut((k + 1) * m);
        let row_k = &upper[k * m..];
        let diag = row_k[k];
        let bk = b[k];
        for (r, row) in lower.chunks_exact_mut(m).enumerate() {
            let f = row[k] / diag;
            if f == 0.0 {
                continue;
            }
            row[k] = 0.0;
            for (x, y) in row[k + 1..].iter_mut().zip(&row_k[k + 1..]) {
                *x -= f * y;
            }
            let i = k + 1 + r;
            b[i][0] -= f * bk[0];
            b[i][1] -= f * bk[1];
        }
    }
    let mut x = vec![[0.0f64; 2]; m];
    for k in (0..m).rev() {
        let mut acc = b[k];
        for j in k + 1..m {
            let c = a[k * m + j];
            if c != 0.0 {
                acc[0] -= c * x[j][0];
                acc[1] -= c * x[j][1];
            }
        }
        let d = a[k * m + k];
        x[k] = [acc[0] / d, acc[1] / d];
    }
    Ok(x)
}

/// Exact Markov-chain attribution of order `order` (≥ 1). See the module
/// documentation for the chain, the removal effects and how value is
/// credited. Channels are sorted by id in the result.
pub fn markov(paths: &[Path], order: usize) -> Result<MarkovAttribution, AttributionError> {
    if order == 0 {
        return Err(AttributionError::InvalidOrder);
    }
    markov_table(&PathTable::from_paths(paths)?, order)
}

/// [`markov`] on interned paths (e.g. from [`super::parse_path_table`]).
pub fn markov_table(
    table: &PathTable,
    order: usize,
) -> Result<MarkovAttribution, AttributionError> {
    if order == 0 {
        return Err(AttributionError::InvalidOrder);
    }
    let channels = table.channels();
    let chain = Chain::build(table, order);
    let n = chain.tuple.len();
    let full = chain.solve(&vec![true; n], DIRECT_SOLVE_LIMIT)?;
    let mut effects = Vec::with_capacity(channels.len());
    let mut alive = vec![true; n];
    for c in 0..channels.len() as u32 {
        for (s, t) in chain.tuple.iter().enumerate() {
            alive[s] = t.binary_search(&c).is_err();
        }
        let removed = chain.solve(&alive, DIRECT_SOLVE_LIMIT)?;
        let effect = |k: usize| {
            if full[k] > 0.0 {
                (1.0 - removed[k] / full[k]).clamp(0.0, 1.0)
            } else {
                0.0
            }
        };
        effects.push([effect(0), effect(1)]);
    }
    let (total_conv, total_value) = table.totals();
    let mut shares = [Vec::new(), Vec::new()];
    for (k, total) in [total_conv, total_value].into_iter().enumerate() {
        let sum: f64 = effects.iter().map(|e| e[k]).sum();
        shares[k] = if total == 0.0 {
            vec![0.0; channels.len()]
        } else if sum > 0.0 {
            effects.iter().map(|e| e[k] / sum * total).collect()
        } else {
            return Err(AttributionError::Numerical {
                model: "markov",
                reason: format!("all removal effects are zero but the total is {total}"),
            });
        };
    }
    let credits = channels
        .iter()
        .enumerate()
        .map(|(i, c)| Credit {
            channel: c.clone(),
            conversions: shares[0][i],
            value: shares[1][i],
        })
        .collect();
    let removal_effects = channels
        .iter()
        .zip(&effects)
        .map(|(c, e)| RemovalEffect {
            channel: c.clone(),
            conversions: e[0],
            value: e[1],
        })
        .collect();
    Ok(MarkovAttribution {
        credits,
        removal_effects,
        conversion_probability: full[0],
        value_per_journey: full[1],
        states: n,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::super::tests::{credit_of, example_paths};
    use super::*;

    #[test]
    fn tiny_oracle() {
        let paths = [
            Path::new(["c1", "c2", "c3"], 1.0, 10.0, 0.0),
            Path::new(["c1"], 0.0, 0.0, 1.0),
            Path::new(["c2", "c3"], 0.0, 0.0, 1.0),
        ];
        let m = markov(&paths, 1).unwrap();
        assert!((m.conversion_probability - 1.0 / 3.0).abs() < 1e-15);
        let got: Vec<(f64, f64)> = m.credits.iter().map(|c| (c.conversions, c.value)).collect();
        for (g, w) in got.iter().zip([0.2, 0.4, 0.4]) {
            assert!((g.0 - w).abs() < 1e-12, "{got:?}");
            assert!((g.1 - 10.0 * w).abs() < 1e-12, "{got:?}");
        }
        // Repeats collapse: the same answer with c2 repeated.
        let mut paths = paths;
        paths[0].steps.insert(1, "c2".into());
        paths[2].steps.insert(0, "c2".into());
        let m2 = markov(&paths, 1).unwrap();
        assert_eq!(m2.credits, m.credits);
        assert_eq!(
            markov(&paths, 0).unwrap_err(),
            AttributionError::InvalidOrder
        );
    }

    #[test]
    fn order_one_oracle_on_example_file() {
        let Some(paths) = example_paths() else { return };
        let t = std::time::Instant::now();
        let m = markov(&paths, 1).unwrap();
        println!("markov order 1: {} states, {:?}", m.states, t.elapsed());
        let want = [
            ("alpha", 5344.9477),
            ("iota", 3884.6147),
            ("eta", 3340.8474),
            ("beta", 2527.3522),
            ("theta", 1971.9129),
            ("lambda", 1282.8472),
            ("epsilon", 599.5707),
            ("zeta", 381.0626),
            ("kappa", 274.3633),
            ("gamma", 171.1454),
            ("delta", 4.6136),
            ("mi", 1.7224),
        ];
        assert_eq!(m.credits.len(), want.len());
        for (ch, w) in want {
            let got = credit_of(&m.credits, ch).conversions;
            assert!((got - w).abs() < 0.01, "{ch}: {got} vs {w}");
        }
    }

    /// Independent check of the SCC + elimination solver: Gauss–Seidel
    /// iteration `h ← r + Q h` from zero converges monotonically to the same
    /// fixed point; run it to a 1e-15 step and compare.
    #[test]
    fn solver_agrees_with_fixed_point_iteration() {
        let Some(paths) = example_paths() else { return };
        let table = PathTable::from_paths(&paths).unwrap();
        for order in [1, 2, 3] {
            let chain = Chain::build(&table, order);
            let n = chain.tuple.len();
            for removed in [None, Some(0), Some(4)] {
                let alive: Vec<bool> = chain
                    .tuple
                    .iter()
                    .map(|t| removed.is_none_or(|c| t.binary_search(&c).is_err()))
                    .collect();
                let exact = chain.solve(&alive, usize::MAX).unwrap();
                // The iterative path for large components agrees too.
                let iterative = chain.solve(&alive, 0).unwrap();
                assert!(
                    (exact[0] - iterative[0]).abs() < 1e-13
                        && (exact[1] - iterative[1]).abs() < 1e-12 * exact[1].max(1.0),
                    "order {order}, removed {removed:?}: {exact:?} vs {iterative:?}"
                );
                let mut h = vec![[0.0f64; 2]; n];
                let mut converged = false;
                for _ in 0..200_000 {
                    let mut delta = 0.0f64;
                    for s in 0..n {
                        if !alive[s] {
                            continue;
                        }
                        let mut x = chain.reward[s];
                        for &(t, p) in &chain.succ[s] {
                            if alive[t] {
                                x[0] += p * h[t][0];
                                x[1] += p * h[t][1];
                            }
                        }
                        delta = delta.max((x[0] - h[s][0]).abs());
                        h[s] = x;
                    }
                    if delta < 1e-15 {
                        converged = true;
                        break;
                    }
                }
                assert!(converged, "order {order}: iteration did not converge");
                assert!(
                    (exact[0] - h[0][0]).abs() < 1e-12 && (exact[1] - h[0][1]).abs() < 1e-10,
                    "order {order}, removed {removed:?}: {exact:?} vs {:?}",
                    h[0]
                );
            }
        }
    }

    #[test]
    fn higher_orders_on_example_file() {
        let Some(paths) = example_paths() else { return };
        let (conv, value) = super::super::totals(&paths);
        for order in [2, 3] {
            let t = std::time::Instant::now();
            let m = markov(&paths, order).unwrap();
            println!(
                "markov order {order}: {} states, {:?}",
                m.states,
                t.elapsed()
            );
            let sc: f64 = m.credits.iter().map(|c| c.conversions).sum();
            let sv: f64 = m.credits.iter().map(|c| c.value).sum();
            assert!((sc - conv).abs() < 1e-6 * conv, "{sc} vs {conv}");
            assert!((sv - value).abs() < 1e-6 * value, "{sv} vs {value}");
            assert!(m
                .credits
                .iter()
                .all(|c| c.conversions >= 0.0 && c.value >= 0.0));
        }
    }
}
