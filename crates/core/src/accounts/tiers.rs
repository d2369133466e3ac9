//! Target accounts compared with the rest: per tier (1, 2, 3 and
//! `non-target`), committee coverage, engagement, pipeline, win rate and
//! sales velocity.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::domain::{Deal, DealStatus};
use crate::metrics::retention::DealKind;
use crate::metrics::{percentile, Window};
use crate::time::{Timestamp, DAY_MS};

/// A target tier outside 1..=3.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("tier must be 1, 2 or 3, got {0}")]
pub struct TierError(pub i64);

/// `t` when it is a valid tier (1, 2 or 3).
pub fn check_tier(t: i64) -> Result<i64, TierError> {
    if (1..=3).contains(&t) {
        Ok(t)
    } else {
        Err(TierError(t))
    }
}

/// The group of accounts not on the target list.
pub const NON_TARGET: &str = "non-target";

/// What the tier table needs to know about one account.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AccountStat {
    pub account_id: i64,
    /// Target tier; `None` when not on the target list.
    pub tier: Option<i64>,
    /// Buying-committee coverage share (`None` without committee roles).
    pub coverage: Option<f64>,
    /// Account engagement ([`super::engagement`]).
    pub engagement: f64,
}

/// One tier's numbers over a window.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TierRow {
    /// `tier 1`, `tier 2`, `tier 3` or [`NON_TARGET`].
    pub tier: String,
    /// Accounts in the group.
    pub accounts: u64,
    /// Mean coverage share over its accounts.
    pub coverage: Option<f64>,
    /// Mean account engagement.
    pub engagement: Option<f64>,
    /// Amount of deals created in the window (minor units).
    pub pipeline: i64,
    /// Deals won with `closed_at` in the window.
    pub won: u64,
    /// Their amount (minor units).
    pub revenue_won: i64,
    /// won / (won + lost) of deals closed in the window.
    pub win_rate: Option<f64>,
    /// Median days from creation to close of the deals won in the window.
    pub velocity_days: Option<f64>,
}

fn key(tier: Option<i64>) -> String {
    match tier {
        Some(t) => format!("tier {t}"),
        None => NON_TARGET.to_string(),
    }
}

/// The tier table: one row per tier present among `stats`, tiers first in
/// order, then [`NON_TARGET`]. Pipeline, win rate and velocity count `new`
/// deals only; deals of accounts not in `stats` and deals without an account
/// are left out; nothing after `as_of` is read.
pub fn tiers(
    stats: &[AccountStat],
    deals: &[Deal],
    window: Window,
    as_of: Timestamp,
) -> Vec<TierRow> {
    #[derive(Default)]
    struct Acc {
        accounts: u64,
        coverage: Vec<f64>,
        engagement: f64,
        pipeline: i64,
        won: u64,
        lost: u64,
        revenue: i64,
        days: Vec<f64>,
    }
    // Sort key: tiers by number, non-target last.
    let order = |t: Option<i64>| t.unwrap_or(i64::MAX);
    let mut groups: BTreeMap<i64, (String, Acc)> = BTreeMap::new();
    let mut tier_of: BTreeMap<i64, Option<i64>> = BTreeMap::new();
    for s in stats {
        tier_of.insert(s.account_id, s.tier);
        let g = &mut groups
            .entry(order(s.tier))
            .or_insert_with(|| (key(s.tier), Acc::default()))
            .1;
        g.accounts += 1;
        g.coverage.extend(s.coverage);
        g.engagement += s.engagement;
    }
    for d in deals {
        // New business only: renewals and expansions are retention's.
        if DealKind::of(d) != DealKind::New {
            continue;
        }
        let Some(tier) = d.account_id.and_then(|a| tier_of.get(&a)) else {
            continue;
        };
        let Some((_, g)) = groups.get_mut(&order(*tier)) else {
            continue;
        };
        if window.contains_as_of(d.created_at, as_of) {
            g.pipeline = g.pipeline.saturating_add(d.amount.minor);
        }
        let Some(closed) = d.closed_at.filter(|c| window.contains_as_of(*c, as_of)) else {
            continue;
        };
        match d.status {
            DealStatus::Won => {
                g.won += 1;
                g.revenue = g.revenue.saturating_add(d.amount.minor);
                g.days
                    .push((closed.millis() - d.created_at.millis()) as f64 / DAY_MS as f64);
            }
            DealStatus::Lost => g.lost += 1,
            DealStatus::Open => {}
        }
    }
    groups
        .into_values()
        .map(|(tier, g)| TierRow {
            tier,
            accounts: g.accounts,
            coverage: (!g.coverage.is_empty())
                .then(|| g.coverage.iter().sum::<f64>() / g.coverage.len() as f64),
            engagement: (g.accounts > 0).then(|| g.engagement / g.accounts as f64),
            pipeline: g.pipeline,
            won: g.won,
            revenue_won: g.revenue,
            win_rate: (g.won + g.lost > 0).then(|| g.won as f64 / (g.won + g.lost) as f64),
            velocity_days: percentile(&g.days, 50.0),
        })
        .collect()
}
