//! Alignment gaps (DESIGN §5): per group, the share of MQLs marketing
//! produces next to the share of won revenue and the win rate. A group where
//! the two shares diverge is a market marketing targets but sales does not
//! win (or the reverse).
//!
//! `gap = mql_share − revenue_share`; a group is flagged when
//! `|gap| ≥ threshold` ([`DEFAULT_THRESHOLD`] = 0.10, ten percentage points).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::domain::DealStatus;
use crate::time::Timestamp;

use super::retention::DealKind;
use super::{ratio, Grouping, History, Window};

/// Default flag threshold on `|mql_share − revenue_share|`.
pub const DEFAULT_THRESHOLD: f64 = 0.10;

/// One group's shares.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GapRow {
    /// Group key.
    pub group: String,
    /// Entries into the MQL stage in the window (cycles).
    pub mqls: u64,
    /// `mqls` / all MQLs (0 when there are none).
    pub mql_share: f64,
    /// Won revenue (deals won, closed in the window) in minor units.
    pub revenue_won: i64,
    /// `revenue_won` / all won revenue (0 when there is none).
    pub revenue_share: f64,
    /// Deals won closed in the window.
    pub deals_won: u64,
    /// Deals lost closed in the window.
    pub deals_lost: u64,
    /// won / (won + lost).
    pub win_rate: Option<f64>,
    /// `mql_share − revenue_share`.
    pub gap: f64,
    /// `|gap| ≥ threshold`.
    pub flagged: bool,
}

/// Alignment gaps of all groups.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Gaps {
    /// The measured window.
    pub window: Window,
    /// Instant the history was read up to.
    pub as_of: Timestamp,
    /// The MQL stage id.
    pub mql_stage: String,
    /// Flag threshold used.
    pub threshold: f64,
    /// All MQLs in the window.
    pub total_mqls: u64,
    /// All won revenue in the window (minor units).
    pub total_revenue_won: i64,
    /// Rows sorted by group key.
    pub rows: Vec<GapRow>,
    /// Groups with the largest `|gap|` first, flagged ones only.
    pub flagged: Vec<String>,
}

/// Computes the alignment gaps. MQLs are entries into `mql_stage` within
/// `window` (distinct cycles, skipped entries included); revenue and win rate
/// come from new-business deals closed within the window, grouped by the
/// deal's person (renewals and expansions are retention, not funnel).
pub fn alignment_gaps(
    history: &History<'_>,
    mql_stage: &str,
    window: Window,
    as_of: Timestamp,
    grouping: Grouping<'_>,
    threshold: f64,
) -> Gaps {
    let mqls = history.stage_entries(mql_stage, window, as_of, false, grouping);
    let mut deals: BTreeMap<String, (u64, u64, i64)> = BTreeMap::new();
    for d in history.deals {
        let Some(c) = d.closed_at else { continue };
        // The kind is read last: it is behind a pointer per deal.
        if !window.contains_as_of(c, as_of) || !DealKind::is_new_business(d) {
            continue;
        }
        let e = deals.entry(grouping.person(d.person_id)).or_default();
        match d.status {
            DealStatus::Won => {
                e.0 += 1;
                e.2 = e.2.saturating_add(d.amount.minor);
            }
            DealStatus::Lost => e.1 += 1,
            DealStatus::Open => {}
        }
    }
    let total_mqls: u64 = mqls.values().sum();
    let total_revenue_won = deals.values().fold(0i64, |s, d| s.saturating_add(d.2));
    let keys: BTreeSet<&String> = mqls.keys().chain(deals.keys()).collect();
    let rows: Vec<GapRow> = keys
        .into_iter()
        .map(|g| {
            let m = mqls.get(g).copied().unwrap_or(0);
            let (won, lost, revenue) = deals.get(g).copied().unwrap_or_default();
            let mql_share = ratio(m as f64, total_mqls as f64).unwrap_or(0.0);
            let revenue_share = ratio(revenue as f64, total_revenue_won as f64).unwrap_or(0.0);
            let gap = mql_share - revenue_share;
            GapRow {
                group: g.clone(),
                mqls: m,
                mql_share,
                revenue_won: revenue,
                revenue_share,
                deals_won: won,
                deals_lost: lost,
                win_rate: ratio(won as f64, (won + lost) as f64),
                gap,
                // Tolerate float noise right at the threshold.
                flagged: gap.abs() >= threshold - 1e-12,
            }
        })
        .collect();
    let mut flagged: Vec<&GapRow> = rows.iter().filter(|r| r.flagged).collect();
    flagged.sort_by(|a, b| {
        b.gap
            .abs()
            .total_cmp(&a.gap.abs())
            .then_with(|| a.group.cmp(&b.group))
    });
    let flagged = flagged.into_iter().map(|r| r.group.clone()).collect();
    Gaps {
        window,
        as_of,
        mql_stage: mql_stage.to_string(),
        threshold,
        total_mqls,
        total_revenue_won,
        rows,
        flagged,
    }
}
