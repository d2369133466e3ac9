//! `tandem sla` and `tandem stalled`: what each team owes the other, and the
//! leads nobody is moving.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use serde_json::json;
use tandem_core::metrics::Window;
use tandem_core::playbook::Playbook;
use tandem_core::sla::{
    compliance, compliance_by_owner, marketing_sla, sales_sla, stalled, Handoff,
};
use tandem_store::warm::Need;

use crate::cmd::numbers::{self, local, num, AsOf};
use crate::ctx::Ctx;
use crate::output::{Format, Table};

#[derive(Args, Debug)]
pub struct SlaArgs {
    /// Only handoffs entered in this ISO week (e.g. 2026-W48, company timezone), and only that marketing week.
    #[arg(long)]
    week: Option<String>,
    /// Only handoffs of this owner (sales side).
    #[arg(long)]
    owner: Option<String>,
    #[command(flatten)]
    as_of: AsOf,
}

/// The window of ISO week `YYYY-Www` (shared with the API).
fn iso_week(pb: &Playbook, s: &str) -> Result<(String, Window)> {
    Ok(tandem_store::query::iso_week(pb, s)?)
}

/// A percentage already in 0..100, or `none yet` when no week is over.
fn pct_or_none(x: Option<f64>) -> String {
    x.map(|v| format!("{v:.1}%"))
        .unwrap_or_else(|| "none yet".into())
}

fn who(h: &Handoff) -> String {
    h.external_id
        .clone()
        .or_else(|| h.email.clone())
        .unwrap_or_else(|| format!("#{}", h.person_id))
}

/// `tandem sla`: the sales side (handoffs with open clocks and breaches,
/// compliance overall and per owner) and the marketing side (MQLs per week
/// against the commitment, SAL rate against its minimum). CSV prints the
/// handoff list only; JSON prints everything.
pub async fn sla_cmd(ctx: &Ctx, a: SlaArgs) -> Result<ExitCode> {
    let pb = ctx.playbook()?;
    let week = match &a.week {
        Some(w) => Some(iso_week(&pb, w)?),
        None => None,
    };
    // People, their transitions and activities: not the touches.
    let need = Need {
        activities: true,
        ..Need::default()
    };
    let snap = numbers::load_only(ctx, need).await?;
    let as_of = a.as_of.get(&pb)?;
    let sales = sales_sla(
        &pb,
        &snap.people,
        &snap.transitions,
        &snap.activities,
        as_of,
    )?;
    let handoffs: Vec<Handoff> = sales
        .handoffs
        .iter()
        .filter(|h| week.as_ref().is_none_or(|(_, w)| w.contains(h.entered_at)))
        .filter(|h| {
            a.owner
                .as_ref()
                .is_none_or(|o| h.owner.as_deref() == Some(o.as_str()))
        })
        .cloned()
        .collect();
    let overall = compliance(&handoffs);
    let by_owner = compliance_by_owner(&handoffs);
    let marketing = match marketing_sla(
        &pb,
        &snap.transitions,
        week.as_ref().map(|(_, w)| w.from),
        as_of,
    ) {
        Ok(mut m) => {
            if let Some((label, _)) = &week {
                m.weeks.retain(|w| &w.iso_week == label);
            }
            Some(m)
        }
        Err(tandem_core::sla::SlaError::NoMarketingSla) => None,
        Err(e) => return Err(e.into()),
    };

    if ctx.format == Format::Json {
        let out = json!({
            "as_of": local(&pb, as_of),
            "timezone": pb.company.timezone_name,
            "week": week.as_ref().map(|(l, _)| l),
            "owner": a.owner,
            "sales": {
                "stage": sales.stage,
                "first_response_hours": sales.first_response_hours,
                "attempts": sales.attempts,
                "attempts_within_days": sales.attempts_within_days,
                "overall": overall,
                "by_owner": by_owner,
                "handoffs": handoffs.iter().map(|h| json!({
                    "person": who(h),
                    "owner": h.owner,
                    "cycle": h.cycle,
                    "entered_at": local(&pb, h.entered_at),
                    "deadline": local(&pb, h.deadline),
                    "status": h.status,
                    "response": h.response,
                    "responded_at": h.responded_at.map(|t| local(&pb, t)),
                    "hours_left": h.hours_left,
                    "overdue_hours": h.overdue_hours,
                    "attempts": h.attempts,
                    "attempts_required": h.attempts_required,
                    "attempts_status": h.attempts_status,
                    "attempts_short": h.attempts_short,
                    "left_to": h.left_to,
                })).collect::<Vec<_>>(),
            },
            "marketing": marketing.as_ref().map(|m| json!({
                "mql_stage": m.mql_stage,
                "sal_stage": m.sal_stage,
                "volume_compliance_pct": m.volume_compliance_pct,
                "sal_rate_compliance_pct": m.sal_rate_compliance_pct,
                "weeks": m.weeks.iter().map(|w| json!({
                    "week": w.iso_week,
                    "mqls": w.mqls,
                    "mql_target": w.mql_target,
                    "volume_status": w.volume_status,
                    "sals": w.sals,
                    "pending": w.pending,
                    "sal_rate": w.sal_rate,
                    "sal_rate_min": w.sal_rate_min,
                    "sal_rate_status": w.sal_rate_status,
                })).collect::<Vec<_>>(),
            })),
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(ExitCode::SUCCESS);
    }

    let mut t = Table::new(&[
        "person",
        "owner",
        "entered",
        "deadline",
        "status",
        "response",
        "hours_left",
        "overdue_hours",
        "attempts",
        "attempts_status",
        "attempts_short",
    ])
    .titled(format!(
        "sales SLA as of {} ({}): first response within {} business hours of entering {}, {} attempts within {} days{}{}",
        local(&pb, as_of),
        pb.company.timezone_name,
        sales.first_response_hours,
        sales.stage,
        sales.attempts,
        sales.attempts_within_days,
        week.as_ref().map(|(l, _)| format!("; week {l}")).unwrap_or_default(),
        a.owner.as_ref().map(|o| format!("; owner {o}")).unwrap_or_default(),
    ));
    for h in &handoffs {
        t.row(vec![
            who(h),
            h.owner.clone().unwrap_or_else(|| "-".into()),
            local(&pb, h.entered_at),
            local(&pb, h.deadline),
            h.status.as_str().into(),
            h.response.as_str().into(),
            num(h.hours_left, 1),
            num(h.overdue_hours, 1),
            format!("{}/{}", h.attempts, h.attempts_required),
            h.attempts_status.as_str().into(),
            h.attempts_short.to_string(),
        ]);
    }
    ctx.print(&mut t)?;
    if ctx.format != Format::Table {
        return Ok(ExitCode::SUCCESS);
    }
    let mut c = Table::new(&[
        "owner",
        "handoffs",
        "open",
        "met",
        "breached",
        "stopped",
        "compliance_pct",
    ])
    .titled("sales compliance (met / (met + breached))");
    let mut crow = |owner: String, x: &tandem_core::sla::Compliance| {
        c.row(vec![
            owner,
            x.handoffs.to_string(),
            x.open.to_string(),
            x.met.to_string(),
            x.breached.to_string(),
            x.stopped.to_string(),
            num(x.compliance_pct, 1),
        ]);
    };
    crow("(all)".into(), &overall);
    for o in &by_owner {
        crow(
            o.owner.clone().unwrap_or_else(|| "(none)".into()),
            &o.compliance,
        );
    }
    println!();
    ctx.print(&mut c)?;
    println!();
    match &marketing {
        None => println!("marketing SLA: the playbook defines no [sla.marketing]"),
        Some(m) => {
            let mut mt = Table::new(&[
                "week",
                "mqls",
                "mql_target",
                "volume",
                "sals",
                "pending",
                "sal_rate",
                "sal_rate_min",
                "sal_rate_status",
            ])
            .titled(format!(
                "marketing SLA: {} MQLs a week, SAL rate at least {}; volume compliance {}, SAL-rate compliance {} (weeks met / weeks over)",
                m.weeks.first().map(|w| num(Some(w.mql_target), 0)).unwrap_or_else(|| "-".into()),
                m.weeks.first().map(|w| num(Some(w.sal_rate_min), 2)).unwrap_or_else(|| "-".into()),
                pct_or_none(m.volume_compliance_pct),
                pct_or_none(m.sal_rate_compliance_pct)
            ));
            for w in &m.weeks {
                mt.row(vec![
                    w.iso_week.clone(),
                    w.mqls.to_string(),
                    num(Some(w.mql_target), 0),
                    w.volume_status.as_str().into(),
                    w.sals.to_string(),
                    w.pending.to_string(),
                    num(w.sal_rate, 4),
                    num(Some(w.sal_rate_min), 2),
                    w.sal_rate_status.map(|s| s.as_str()).unwrap_or("-").into(),
                ]);
            }
            ctx.print(&mut mt)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Args, Debug)]
pub struct StalledArgs {
    /// Only leads of this owner.
    #[arg(long)]
    owner: Option<String>,
    #[command(flatten)]
    as_of: AsOf,
}

/// `tandem stalled`: people in a stage longer than its `max_days`, oldest first.
pub async fn stalled_cmd(ctx: &Ctx, a: StalledArgs) -> Result<ExitCode> {
    let pb = ctx.playbook()?;
    // People and their transitions only.
    let snap = numbers::load_only(ctx, Need::default()).await?;
    let as_of = a.as_of.get(&pb)?;
    let leads = stalled(&pb, &snap.people, &snap.transitions, as_of);
    let mut t = Table::new(&[
        "person",
        "email",
        "owner",
        "stage",
        "entered",
        "days_in_stage",
        "max_days",
        "days_over",
    ])
    .titled(format!(
        "stalled leads as of {} ({}), oldest first",
        local(&pb, as_of),
        pb.company.timezone_name
    ));
    for l in leads.iter().filter(|l| {
        a.owner
            .as_ref()
            .is_none_or(|o| l.owner.as_deref() == Some(o.as_str()))
    }) {
        t.row(vec![
            l.external_id
                .clone()
                .unwrap_or_else(|| format!("#{}", l.person_id)),
            l.email.clone().unwrap_or_else(|| "-".into()),
            l.owner.clone().unwrap_or_else(|| "-".into()),
            l.stage.clone(),
            local(&pb, l.entered_at),
            num(Some(l.days_in_stage), 1),
            num(Some(l.max_days), 0),
            num(Some(l.days_over), 1),
        ]);
    }
    ctx.print(&mut t)?;
    if a.owner.is_none() && leads.is_empty() && ctx.format == Format::Table {
        eprintln!("no stalled leads");
    }
    Ok(ExitCode::SUCCESS)
}
