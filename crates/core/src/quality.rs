//! The definition check (DESIGN §5): how well a score or a boolean rule
//! (such as MQL status) predicts an outcome (won, reached SQL, …).
//!
//! * [`roc_auc`]: area under the ROC curve, equal to the Mann-Whitney U
//!   statistic over `positives × negatives`; a tied (positive, negative)
//!   pair counts one half.
//! * [`deciles`]: conversion and lift per score decile.
//! * [`rule_check`]: precision, recall and F1 of a boolean rule.
//! * [`suggest_threshold`]: the score threshold maximising Youden's J.
//! * [`score_quality`]: all of the above for one score.
//!
//! Outcomes are booleans (`true` = the 0/1 outcome column is 1). All
//! functions are pure and deterministic: equal scores are ordered by their
//! position in the input.

use std::cmp::Ordering;

use serde::Serialize;

pub mod target;

/// Why a quality measure cannot be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QualityError {
    /// No observations.
    #[error("no observations to evaluate")]
    Empty,
    /// Scores (or predictions) and outcomes differ in length.
    #[error("{values} values but {outcomes} outcomes")]
    LengthMismatch { values: usize, outcomes: usize },
    /// Every outcome is the same, so nothing separates the classes.
    #[error("all {total} outcomes are {}: the measure needs both classes", if *.positive { "1" } else { "0" })]
    SingleClass { total: usize, positive: bool },
    /// A score is NaN or infinite.
    #[error("score at position {index} is not a finite number")]
    NotFinite { index: usize },
}

fn check_lengths(values: usize, outcomes: &[bool]) -> Result<(), QualityError> {
    if values != outcomes.len() {
        return Err(QualityError::LengthMismatch {
            values,
            outcomes: outcomes.len(),
        });
    }
    if values == 0 {
        return Err(QualityError::Empty);
    }
    Ok(())
}

fn check_scores(scores: &[f64], outcomes: &[bool]) -> Result<(), QualityError> {
    check_lengths(scores.len(), outcomes)?;
    if let Some(index) = scores.iter().position(|s| !s.is_finite()) {
        return Err(QualityError::NotFinite { index });
    }
    Ok(())
}

fn check_both_classes(outcomes: &[bool]) -> Result<(usize, usize), QualityError> {
    let pos = outcomes.iter().filter(|o| **o).count();
    let neg = outcomes.len() - pos;
    if pos == 0 || neg == 0 {
        return Err(QualityError::SingleClass {
            total: outcomes.len(),
            positive: pos > 0,
        });
    }
    Ok((pos, neg))
}

/// Indices ordered by descending score, equal scores by ascending index.
fn descending(scores: &[f64]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    idx
}

/// ROC AUC of `scores` against `outcomes`.
///
/// Computed as the Mann-Whitney statistic: with average ranks for ties,
/// `AUC = (Σ ranks of positives − P(P+1)/2) / (P·N)`, i.e. the share of
/// (positive, negative) pairs where the positive scores higher, a tie
/// counting one half. Scores `[0.1, 0.4, 0.35, 0.8]` with outcomes
/// `[0, 0, 1, 1]` give 0.75.
///
/// Errors: empty input, length mismatch, non-finite score, or only one
/// outcome class.
pub fn roc_auc(scores: &[f64], outcomes: &[bool]) -> Result<f64, QualityError> {
    check_scores(scores, outcomes)?;
    let (pos, neg) = check_both_classes(outcomes)?;
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]).then(a.cmp(&b)));
    // Ranks are 1-based; a run of ties [i, j) shares the average rank.
    let mut rank_sum_pos = 0.0;
    let mut i = 0;
    while i < idx.len() {
        let mut j = i + 1;
        while j < idx.len() && scores[idx[j]].total_cmp(&scores[idx[i]]) == Ordering::Equal {
            j += 1;
        }
        let avg_rank = (i + 1 + j) as f64 / 2.0;
        let pos_in_run = idx[i..j].iter().filter(|&&k| outcomes[k]).count();
        rank_sum_pos += avg_rank * pos_in_run as f64;
        i = j;
    }
    let (p, n) = (pos as f64, neg as f64);
    Ok((rank_sum_pos - p * (p + 1.0) / 2.0) / (p * n))
}

/// Conversion and lift of one score decile.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Decile {
    /// 1 = highest scores, 10 = lowest.
    pub decile: u8,
    pub count: usize,
    pub positives: usize,
    /// `positives / count`.
    pub conversion: f64,
    /// `conversion / base rate`; `None` when there are no positives at all.
    pub lift: Option<f64>,
    pub min_score: f64,
    pub max_score: f64,
    /// Share of all positives in this and higher deciles; `None` when there
    /// are no positives at all.
    pub cumulative_capture: Option<f64>,
}

/// Conversion and lift per score decile.
///
/// Observations are ordered by descending score; equal scores keep their
/// input order (earlier first), so a run of ties may straddle a decile
/// boundary and the split is deterministic. The observation at position `i`
/// (0-based) of `n` goes to decile `⌊10·i / n⌋ + 1`, so deciles differ in
/// size by at most one. With fewer than 10 observations some deciles are
/// empty; empty deciles are left out.
///
/// Errors: empty input, length mismatch, non-finite score.
pub fn deciles(scores: &[f64], outcomes: &[bool]) -> Result<Vec<Decile>, QualityError> {
    check_scores(scores, outcomes)?;
    let n = scores.len();
    let total_pos = outcomes.iter().filter(|o| **o).count();
    let base_rate = total_pos as f64 / n as f64;
    let mut out: Vec<Decile> = Vec::new();
    let mut cum_pos = 0usize;
    for (i, &k) in descending(scores).iter().enumerate() {
        let d = (i * 10 / n + 1) as u8;
        if out.last().is_none_or(|last| last.decile != d) {
            out.push(Decile {
                decile: d,
                count: 0,
                positives: 0,
                conversion: 0.0,
                lift: None,
                min_score: scores[k],
                max_score: scores[k],
                cumulative_capture: None,
            });
        }
        if let Some(cur) = out.last_mut() {
            cur.count += 1;
            if outcomes[k] {
                cur.positives += 1;
                cum_pos += 1;
            }
            cur.min_score = cur.min_score.min(scores[k]);
            cur.max_score = cur.max_score.max(scores[k]);
            cur.conversion = cur.positives as f64 / cur.count as f64;
            cur.lift = (total_pos > 0).then(|| cur.conversion / base_rate);
            cur.cumulative_capture = (total_pos > 0).then(|| cum_pos as f64 / total_pos as f64);
        }
    }
    Ok(out)
}

/// Confusion matrix and derived measures of a boolean rule.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RuleCheck {
    pub n: usize,
    pub true_positives: usize,
    pub false_positives: usize,
    pub false_negatives: usize,
    pub true_negatives: usize,
    /// `TP / (TP + FP)`; `None` when the rule flags nobody.
    pub precision: Option<f64>,
    /// `TP / (TP + FN)`; `None` without positive outcomes.
    pub recall: Option<f64>,
    /// `2·TP / (2·TP + FP + FN)`; `None` when that is 0/0.
    pub f1: Option<f64>,
    /// `(TP + TN) / n`.
    pub accuracy: f64,
}

fn ratio(num: usize, den: usize) -> Option<f64> {
    (den > 0).then(|| num as f64 / den as f64)
}

fn confusion(tp: usize, fp: usize, fn_: usize, tn: usize) -> RuleCheck {
    let n = tp + fp + fn_ + tn;
    RuleCheck {
        n,
        true_positives: tp,
        false_positives: fp,
        false_negatives: fn_,
        true_negatives: tn,
        precision: ratio(tp, tp + fp),
        recall: ratio(tp, tp + fn_),
        f1: ratio(2 * tp, 2 * tp + fp + fn_),
        accuracy: ratio(tp + tn, n).unwrap_or(0.0),
    }
}

/// Precision, recall and F1 of `predicted` (e.g. "reached MQL") against
/// `outcomes`.
///
/// Errors: empty input or length mismatch. A single outcome class is
/// allowed here: the undefined measures are `None`.
pub fn rule_check(predicted: &[bool], outcomes: &[bool]) -> Result<RuleCheck, QualityError> {
    check_lengths(predicted.len(), outcomes)?;
    let (mut tp, mut fp, mut fn_, mut tn) = (0, 0, 0, 0);
    for (&p, &o) in predicted.iter().zip(outcomes) {
        match (p, o) {
            (true, true) => tp += 1,
            (true, false) => fp += 1,
            (false, true) => fn_ += 1,
            (false, false) => tn += 1,
        }
    }
    Ok(confusion(tp, fp, fn_, tn))
}

/// A suggested cut-off for a score.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Threshold {
    /// Flag observations with `score >= threshold`.
    pub threshold: f64,
    /// Youden's J = true-positive rate − false-positive rate.
    pub youden_j: f64,
    pub true_positive_rate: f64,
    pub false_positive_rate: f64,
    /// How many observations the threshold flags.
    pub flagged: usize,
    /// The rule `score >= threshold` checked against the outcomes.
    pub rule: RuleCheck,
}

/// The threshold that maximises Youden's J (`TPR − FPR`) for the rule
/// `score >= threshold`, over every distinct score as a candidate.
///
/// Youden's J is chosen over F1 because it does not depend on the base
/// rate: with rare outcomes (a few % of leads win) F1 favours very high
/// thresholds that flag almost nobody. Ties in J go to the higher
/// threshold (fewer leads flagged). J is compared exactly in integers.
///
/// Errors: empty input, length mismatch, non-finite score, or only one
/// outcome class.
pub fn suggest_threshold(scores: &[f64], outcomes: &[bool]) -> Result<Threshold, QualityError> {
    check_scores(scores, outcomes)?;
    let (pos, neg) = check_both_classes(outcomes)?;
    let order = descending(scores);
    // (J numerator = tp·N − fp·P, threshold, tp, fp, flagged)
    let mut best: Option<(i128, f64, usize, usize, usize)> = None;
    let (mut tp, mut fp) = (0usize, 0usize);
    let mut i = 0;
    while i < order.len() {
        let t = scores[order[i]];
        while i < order.len() && scores[order[i]].total_cmp(&t) == Ordering::Equal {
            if outcomes[order[i]] {
                tp += 1;
            } else {
                fp += 1;
            }
            i += 1;
        }
        let j = tp as i128 * neg as i128 - fp as i128 * pos as i128;
        if best.is_none_or(|b| j > b.0) {
            best = Some((j, t, tp, fp, i));
        }
    }
    let (_, threshold, tp, fp, flagged) = best.ok_or(QualityError::Empty)?;
    let tpr = tp as f64 / pos as f64;
    let fpr = fp as f64 / neg as f64;
    Ok(Threshold {
        threshold,
        youden_j: tpr - fpr,
        true_positive_rate: tpr,
        false_positive_rate: fpr,
        flagged,
        rule: confusion(tp, fp, pos - tp, neg - fp),
    })
}

/// Everything the definition check reports for one score.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ScoreQuality {
    pub n: usize,
    pub positives: usize,
    /// `positives / n`.
    pub base_rate: f64,
    pub auc: f64,
    pub deciles: Vec<Decile>,
    pub threshold: Threshold,
}

/// AUC, decile table and suggested threshold of one score.
///
/// Errors: as [`roc_auc`].
pub fn score_quality(scores: &[f64], outcomes: &[bool]) -> Result<ScoreQuality, QualityError> {
    let auc = roc_auc(scores, outcomes)?;
    let positives = outcomes.iter().filter(|o| **o).count();
    Ok(ScoreQuality {
        n: scores.len(),
        positives,
        base_rate: positives as f64 / scores.len() as f64,
        auc,
        deciles: deciles(scores, outcomes)?,
        threshold: suggest_threshold(scores, outcomes)?,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn b(v: &[u8]) -> Vec<bool> {
        v.iter().map(|x| *x == 1).collect()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn auc_oracle() {
        let auc = roc_auc(&[0.1, 0.4, 0.35, 0.8], &b(&[0, 0, 1, 1])).unwrap();
        assert!(close(auc, 0.75), "{auc}");
    }

    #[test]
    fn auc_counts_ties_as_half() {
        // Pairs (pos, neg): (0.5, 0.5) tie → ½; (0.5, 0.2) → 1; (0.9, 0.5) → 1;
        // (0.9, 0.2) → 1. Total 3.5 of 4 pairs = 0.875.
        let auc = roc_auc(&[0.5, 0.5, 0.2, 0.9], &b(&[1, 0, 0, 1])).unwrap();
        assert!(close(auc, 0.875), "{auc}");
        // Everything tied: every pair is a half.
        let auc = roc_auc(&[3.0; 5], &b(&[1, 0, 1, 0, 0])).unwrap();
        assert!(close(auc, 0.5), "{auc}");
    }

    #[test]
    fn auc_extremes_and_order_independence() {
        assert_eq!(roc_auc(&[1.0, 2.0, 3.0], &b(&[0, 1, 1])).unwrap(), 1.0);
        assert_eq!(roc_auc(&[1.0, 2.0, 3.0], &b(&[1, 0, 0])).unwrap(), 0.0);
        let a = roc_auc(&[0.8, 0.35, 0.4, 0.1], &b(&[1, 1, 0, 0])).unwrap();
        assert!(close(a, 0.75));
    }

    #[test]
    fn errors() {
        assert_eq!(roc_auc(&[], &[]), Err(QualityError::Empty));
        assert_eq!(
            roc_auc(&[0.1], &[true, false]),
            Err(QualityError::LengthMismatch {
                values: 1,
                outcomes: 2
            })
        );
        assert_eq!(
            roc_auc(&[0.1, 0.2], &[true, true]),
            Err(QualityError::SingleClass {
                total: 2,
                positive: true
            })
        );
        assert_eq!(
            suggest_threshold(&[0.1, 0.2], &[false, false]),
            Err(QualityError::SingleClass {
                total: 2,
                positive: false
            })
        );
        assert_eq!(
            roc_auc(&[0.1, f64::NAN], &[true, false]),
            Err(QualityError::NotFinite { index: 1 })
        );
        assert_eq!(deciles(&[], &[]), Err(QualityError::Empty));
        assert_eq!(rule_check(&[], &[]), Err(QualityError::Empty));
        assert_eq!(
            QualityError::SingleClass {
                total: 3,
                positive: false
            }
            .to_string(),
            "all 3 outcomes are 0: the measure needs both classes"
        );
    }

    #[test]
    fn deciles_by_hand() {
        // Scores 1..=20; positives at 20, 19, 18 and 10: base rate 4/20 = 0.2.
        let scores: Vec<f64> = (1..=20).map(f64::from).collect();
        let outcomes: Vec<bool> = (1..=20).map(|s| [20, 19, 18, 10].contains(&s)).collect();
        let d = deciles(&scores, &outcomes).unwrap();
        assert_eq!(d.len(), 10);
        let rows: Vec<(u8, usize, usize, f64, f64, f64)> = d
            .iter()
            .map(|x| {
                (
                    x.decile,
                    x.count,
                    x.positives,
                    x.lift.unwrap(),
                    x.max_score,
                    x.cumulative_capture.unwrap(),
                )
            })
            .collect();
        assert_eq!(rows[0], (1, 2, 2, 5.0, 20.0, 0.5));
        assert_eq!(rows[1], (2, 2, 1, 2.5, 18.0, 0.75));
        assert_eq!(rows[2], (3, 2, 0, 0.0, 16.0, 0.75));
        assert_eq!(rows[5], (6, 2, 1, 2.5, 10.0, 1.0));
        assert_eq!(rows[9], (10, 2, 0, 0.0, 2.0, 1.0));
        assert_eq!(d[0].conversion, 1.0);
        assert_eq!(d[9].min_score, 1.0);
    }

    #[test]
    fn decile_ties_keep_input_order() {
        // Three equal scores: positions 0, 1, 2 of 3 → deciles 1, 4, 7, in
        // input order; the positive (index 1) lands in decile 4.
        let d = deciles(&[0.5, 0.5, 0.5], &b(&[0, 1, 0])).unwrap();
        let rows: Vec<(u8, usize)> = d.iter().map(|x| (x.decile, x.positives)).collect();
        assert_eq!(rows, vec![(1, 0), (4, 1), (7, 0)]);
        // No positives at all: lift undefined.
        let d = deciles(&[0.1, 0.2], &b(&[0, 0])).unwrap();
        assert_eq!(d[0].lift, None);
    }

    #[test]
    fn rule_check_by_hand() {
        // TP: 0, 4; FP: 1; FN: 2; TN: 3.
        let r = rule_check(&b(&[1, 1, 0, 0, 1]), &b(&[1, 0, 1, 0, 1])).unwrap();
        assert_eq!(
            (
                r.true_positives,
                r.false_positives,
                r.false_negatives,
                r.true_negatives
            ),
            (2, 1, 1, 1)
        );
        assert!(close(r.precision.unwrap(), 2.0 / 3.0));
        assert!(close(r.recall.unwrap(), 2.0 / 3.0));
        assert!(close(r.f1.unwrap(), 2.0 / 3.0));
        assert!(close(r.accuracy, 0.6));
        // A rule that flags nobody has no precision.
        let r = rule_check(&b(&[0, 0]), &b(&[1, 0])).unwrap();
        assert_eq!((r.precision, r.recall, r.f1), (None, Some(0.0), Some(0.0)));
    }

    #[test]
    fn threshold_maximises_youden_j_ties_to_higher() {
        // Candidates (score >= t): 0.8 → TPR ½, FPR 0, J ½; 0.4 → J 0;
        // 0.35 → TPR 1, FPR ½, J ½; 0.1 → J 0. Tie → the higher, 0.8.
        let t = suggest_threshold(&[0.1, 0.4, 0.35, 0.8], &b(&[0, 0, 1, 1])).unwrap();
        assert_eq!(t.threshold, 0.8);
        assert_eq!(t.youden_j, 0.5);
        assert_eq!(t.flagged, 1);
        assert_eq!(t.rule.precision, Some(1.0));
        assert_eq!(t.rule.recall, Some(0.5));
        assert!(close(t.rule.f1.unwrap(), 2.0 / 3.0));
        // Ties in score are one candidate: [0.9, 0.5, 0.5, 0.2] / [1, 1, 0, 0]:
        // t=0.9 → J ½; t=0.5 → TPR 1, FPR ½, J ½; t=0.2 → 0. → 0.9.
        let t = suggest_threshold(&[0.9, 0.5, 0.5, 0.2], &b(&[1, 1, 0, 0])).unwrap();
        assert_eq!((t.threshold, t.flagged), (0.9, 1));
        // Perfect separation: the lowest positive score.
        let t = suggest_threshold(&[0.2, 0.7, 0.9, 0.1], &b(&[0, 1, 1, 0])).unwrap();
        assert_eq!((t.threshold, t.youden_j), (0.7, 1.0));
    }

    #[test]
    fn score_quality_bundles_everything() {
        let q = score_quality(&[0.1, 0.4, 0.35, 0.8], &b(&[0, 0, 1, 1])).unwrap();
        assert_eq!((q.n, q.positives, q.base_rate), (4, 2, 0.5));
        assert!(close(q.auc, 0.75));
        // 4 observations → deciles 1, 3, 6, 8 (⌊10·i/4⌋ + 1).
        let ds: Vec<u8> = q.deciles.iter().map(|d| d.decile).collect();
        assert_eq!(ds, vec![1, 3, 6, 8]);
        assert_eq!(q.threshold.threshold, 0.8);
        let json = serde_json::to_string(&q).unwrap();
        assert!(json.contains("\"auc\":0.75"));
    }
}
