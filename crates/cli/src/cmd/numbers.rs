//! What the metric commands share: loading history, windows, grouping.

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use clap::Args;
use tandem_core::facts::{channel_of, classify};
use tandem_core::metrics::{History, Window};
use tandem_core::playbook::Playbook;
use tandem_core::Timestamp;
use tandem_store::repo::{self, Snapshot};

use crate::cmd::lifecycle::now;
use crate::ctx::Ctx;

/// `--as-of`, `--from`, `--to`: when the numbers are read and for which period.
#[derive(Args, Debug, Clone)]
pub struct Period {
    /// Read history as of this instant (default: now). Same data and as-of, same output.
    #[arg(long)]
    pub as_of: Option<String>,
    /// Start of the period (inclusive); dates are midnight in the company timezone.
    #[arg(long)]
    pub from: Option<String>,
    /// End of the period (exclusive; default: as-of).
    #[arg(long)]
    pub to: Option<String>,
}

impl Period {
    /// The as-of instant.
    pub fn as_of(&self, pb: &Playbook) -> Result<Timestamp> {
        match &self.as_of {
            Some(s) => Ok(Timestamp::parse_in(s, &pb.company.timezone)?),
            None => Ok(now()),
        }
    }

    /// The window `[from, to)`; without `--from`, from the earliest record.
    pub fn window(&self, pb: &Playbook, snap: &Snapshot, as_of: Timestamp) -> Result<Window> {
        let tz = &pb.company.timezone;
        let from = match &self.from {
            Some(s) => Timestamp::parse_in(s, tz)?,
            None => earliest(snap).unwrap_or(as_of),
        };
        let to = match &self.to {
            Some(s) => Timestamp::parse_in(s, tz)?,
            // Half-open: include what happened exactly at as-of.
            None => Timestamp::from_millis(as_of.millis() + 1),
        };
        if to <= from {
            bail!("the period is empty: --to ({to}) must be after --from ({from})");
        }
        Ok(Window::new(from, to)?)
    }
}

fn earliest(snap: &Snapshot) -> Option<Timestamp> {
    snap.transitions.iter().map(|t| t.at).min()
}

/// Loads the whole history from the store.
pub async fn load(ctx: &Ctx) -> Result<Snapshot> {
    let store = ctx.store().await?;
    let mut c = store.conn().await?;
    Ok(repo::snapshot(&mut c).await?)
}

/// The history view metrics take.
pub fn history(snap: &Snapshot) -> History<'_> {
    History {
        transitions: &snap.transitions,
        touches: &snap.touches,
        activities: &snap.activities,
        deals: &snap.deals,
    }
}

/// Dimensions people can be grouped by.
pub const DIMENSIONS: &str =
    "source, segment, persona, channel, campaign, owner, tier, industry, country, or custom.FIELD";

/// Group key of every person for a dimension. Segment and persona use the
/// stored value, or else the playbook's rules; channel and campaign are those
/// of the person's first touch (how the lead came in).
pub fn group_by(pb: &Playbook, snap: &Snapshot, by: &str) -> Result<BTreeMap<i64, String>> {
    let accounts: BTreeMap<i64, &tandem_core::domain::Account> =
        snap.accounts.iter().map(|a| (a.id, a)).collect();
    let mut first_touch: BTreeMap<i64, &tandem_core::domain::Touch> = BTreeMap::new();
    if by == "channel" || by == "campaign" {
        for t in &snap.touches {
            let e = first_touch.entry(t.person_id).or_insert(t);
            if (t.at, t.id) < (e.at, e.id) {
                *e = t;
            }
        }
    }
    let mut out = BTreeMap::new();
    for p in &snap.people {
        let account = p.account_id.and_then(|id| accounts.get(&id).copied());
        let key: Option<String> = match by {
            "source" => p.source.clone(),
            "owner" => p.owner.clone(),
            "country" => p.country.clone(),
            "segment" => p.segment.clone().or_else(|| classify(pb, p, account).1),
            "persona" => p.persona.clone().or_else(|| classify(pb, p, account).0),
            "tier" => account.and_then(|a| a.tier).map(|t| format!("tier {t}")),
            "industry" => account.and_then(|a| a.industry.clone()),
            "channel" => first_touch.get(&p.id).and_then(|t| channel_of(pb, t, p)),
            "campaign" => first_touch.get(&p.id).and_then(|t| t.campaign.clone()),
            other => match other.strip_prefix("custom.") {
                Some(f) => p.custom.get(f).map(|v| match v {
                    serde_json::Value::String(s) => s.clone(),
                    v => v.to_string(),
                }),
                None => bail!("cannot group by `{other}`; use {DIMENSIONS}"),
            },
        };
        if let Some(k) = key.filter(|k| !k.is_empty()) {
            out.insert(p.id, k);
        }
    }
    Ok(out)
}

/// `--as-of` alone, for commands that read a state rather than a period.
#[derive(Args, Debug, Clone)]
pub struct AsOf {
    /// Read history as of this instant (default: now). Same data and as-of, same output.
    #[arg(long)]
    pub as_of: Option<String>,
}

impl AsOf {
    /// The as-of instant.
    pub fn get(&self, pb: &Playbook) -> Result<Timestamp> {
        match &self.as_of {
            Some(s) => Ok(Timestamp::parse_in(s, &pb.company.timezone)?),
            None => Ok(now()),
        }
    }
}

/// Minor units as a major-unit decimal, e.g. `123456` → `1234.56`.
pub fn major(minor: f64) -> String {
    format!("{:.2}", minor / 100.0)
}

/// An instant in the company timezone, to the minute (`2026-11-23 09:30`).
pub fn local(pb: &Playbook, t: Timestamp) -> String {
    t.to_jiff()
        .to_zoned_datetime(pb.company.timezone.clone())
        .strftime("%Y-%m-%d %H:%M")
        .to_string()
}

/// An optional number with `digits` decimals, `-` for none.
pub fn num(x: Option<f64>, digits: usize) -> String {
    match x {
        Some(v) if v.is_finite() => format!("{v:.digits$}"),
        _ => "-".into(),
    }
}
