//! `tandem quality` (the definition check) and `tandem score`.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Args;
use serde_json::json;
use tandem_core::domain::{Account, Person, Touch};
use tandem_core::playbook::Playbook;
use tandem_core::quality::target::{first_entries, reached_stage, reached_target, Target};
use tandem_core::quality::{roc_auc, rule_check, score_quality, ScoreQuality};
use tandem_core::scoring;
use tandem_core::Timestamp;
use tandem_store::repo;

use crate::cmd::numbers::{self, local, num, AsOf};
use crate::ctx::Ctx;
use crate::output::{Format, Table};

/// Arguments of `tandem quality`; the definitions are in its `--help`
/// (the `Quality` command in `main.rs`).
#[derive(Args, Debug)]
pub struct QualityArgs {
    /// What to predict: won, or a stage id (sql, opportunity, …).
    #[arg(long, default_value = "won")]
    target: String,
    /// Only this score: fit, engagement or custom.FIELD (default: fit and engagement).
    #[arg(long)]
    score: Option<String>,
    #[command(flatten)]
    as_of: AsOf,
}

fn mql_stage(pb: &Playbook) -> String {
    pb.sla
        .sales
        .as_ref()
        .map(|s| s.stage.clone())
        .unwrap_or_else(|| "mql".into())
}

fn custom_number(p: &Person, field: &str) -> Option<f64> {
    match p.custom.get(field)? {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => s.trim().parse::<f64>().ok(),
        serde_json::Value::Bool(b) => Some(f64::from(u8::from(*b))),
        _ => None,
    }
    .filter(|v| v.is_finite())
}

/// `tandem quality`.
pub async fn quality_cmd(ctx: &Ctx, a: QualityArgs) -> Result<ExitCode> {
    let pb = ctx.playbook()?;
    let target = Target::parse(&pb, &a.target)?;
    let names: Vec<String> = match &a.score {
        Some(s) if s == "fit" || s == "engagement" || s.starts_with("custom.") => vec![s.clone()],
        Some(s) => bail!("unknown score `{s}`; use fit, engagement or custom.FIELD"),
        None => vec!["fit".into(), "engagement".into()],
    };
    let snap = numbers::load(ctx).await?;
    let as_of = a.as_of.get(&pb)?;
    let people: Vec<&Person> = snap
        .people
        .iter()
        .filter(|p| p.created_at <= as_of)
        .collect();
    if people.is_empty() {
        bail!("no people to check; import some first");
    }
    let won = reached_target(&pb, &snap.transitions, &snap.deals, &target, as_of);
    let mql = mql_stage(&pb);
    let mqls = reached_stage(&pb, &snap.transitions, &mql, as_of);
    let mql_at = first_entries(&snap.transitions, &mql, as_of);
    let accounts: BTreeMap<i64, &Account> = snap.accounts.iter().map(|x| (x.id, x)).collect();
    let mut touches: BTreeMap<i64, Vec<Touch>> = BTreeMap::new();
    for t in &snap.touches {
        touches.entry(t.person_id).or_default().push(t.clone());
    }
    let outcomes: Vec<bool> = people.iter().map(|p| won.contains(&p.id)).collect();
    let predicted: Vec<bool> = people.iter().map(|p| mqls.contains(&p.id)).collect();
    let rule = rule_check(&predicted, &outcomes)?;
    let rule_scores: Vec<f64> = predicted.iter().map(|&m| f64::from(u8::from(m))).collect();
    let rule_auc = roc_auc(&rule_scores, &outcomes).ok();

    let mut results: Vec<(String, usize, Result<ScoreQuality, String>)> = Vec::new();
    for name in &names {
        let mut scores = Vec::new();
        let mut outs = Vec::new();
        for (p, &o) in people.iter().zip(&outcomes) {
            let v = match name.as_str() {
                "fit" => Some(
                    scoring::fit(
                        &pb,
                        p,
                        p.account_id.and_then(|id| accounts.get(&id).copied()),
                    )
                    .0,
                ),
                "engagement" => {
                    let at = mql_at.get(&p.id).copied().unwrap_or(as_of).min(as_of);
                    let ts = touches.get(&p.id).map(Vec::as_slice).unwrap_or(&[]);
                    Some(scoring::engagement(&pb, ts, at).0)
                }
                other => custom_number(p, other.trim_start_matches("custom.")),
            };
            if let Some(v) = v {
                scores.push(v);
                outs.push(o);
            }
        }
        let q = score_quality(&scores, &outs).map_err(|e| e.to_string());
        results.push((name.clone(), scores.len(), q));
    }

    let positives = outcomes.iter().filter(|o| **o).count();
    let target_name = a.target.clone();
    if ctx.format == Format::Json {
        let out = json!({
            "target": target_name,
            "as_of": local(&pb, as_of),
            "n": people.len(),
            "positives": positives,
            "mql_rule": { "stage": mql, "auc": rule_auc, "check": rule },
            "scores": results.iter().map(|(name, n, q)| match q {
                Ok(q) => json!({ "score": name, "n": n, "quality": q }),
                Err(e) => json!({ "score": name, "n": n, "error": e }),
            }).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = Table::new(&[
        "predictor",
        "n",
        "positives",
        "base_rate",
        "auc",
        "threshold",
        "flagged",
        "precision",
        "recall",
        "f1",
        "top_decile_lift",
    ])
    .titled(format!(
        "definition check: predicting `{target_name}` as of {} ({} people, {} positive); scores at MQL entry",
        local(&pb, as_of),
        people.len(),
        positives
    ));
    t.row(vec![
        format!("{mql} status"),
        rule.n.to_string(),
        positives.to_string(),
        format!("{:.4}", positives as f64 / people.len() as f64),
        num(rule_auc, 4),
        "-".into(),
        (rule.true_positives + rule.false_positives).to_string(),
        num(rule.precision, 4),
        num(rule.recall, 4),
        num(rule.f1, 4),
        "-".into(),
    ]);
    for (name, n, q) in &results {
        match q {
            Ok(q) => {
                let r = &q.threshold.rule;
                t.row(vec![
                    name.clone(),
                    n.to_string(),
                    q.positives.to_string(),
                    format!("{:.4}", q.base_rate),
                    format!("{:.4}", q.auc),
                    format!(">= {}", q.threshold.threshold),
                    q.threshold.flagged.to_string(),
                    num(r.precision, 4),
                    num(r.recall, 4),
                    num(r.f1, 4),
                    num(q.deciles.first().and_then(|d| d.lift), 2),
                ]);
            }
            Err(e) => t.row_padded(vec![format!("{name} ({e})"), n.to_string()]),
        }
    }
    ctx.print(&mut t)?;
    if ctx.format != Format::Table {
        return Ok(ExitCode::SUCCESS);
    }
    for (name, _, q) in &results {
        let Ok(q) = q else { continue };
        let mut d = Table::new(&[
            "decile",
            "count",
            "positives",
            "conversion",
            "lift",
            "min_score",
            "max_score",
            "cumulative_capture",
        ])
        .titled(format!("{name}: deciles (1 = highest scores)"));
        for x in &q.deciles {
            d.row(vec![
                x.decile.to_string(),
                x.count.to_string(),
                x.positives.to_string(),
                format!("{:.4}", x.conversion),
                num(x.lift, 2),
                num(Some(x.min_score), 2),
                num(Some(x.max_score), 2),
                num(x.cumulative_capture, 4),
            ]);
        }
        println!();
        ctx.print(&mut d)?;
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Args, Debug)]
pub struct ScoreArgs {
    /// The person: external id, or #ID (default: everyone, as a table).
    person: Option<String>,
    /// Show each rule's contribution (needs PERSON).
    #[arg(long)]
    explain: bool,
    #[command(flatten)]
    as_of: AsOf,
}

fn name_of(p: &Person) -> String {
    if p.external_id.is_empty() {
        format!("#{}", p.id)
    } else {
        p.external_id.clone()
    }
}

/// `tandem score`: fit, engagement and grade as of `--as-of`.
pub async fn score_cmd(ctx: &Ctx, a: ScoreArgs) -> Result<ExitCode> {
    let pb = ctx.playbook()?;
    let as_of = a.as_of.get(&pb)?;
    let mut t = Table::new(&["person", "fit", "engagement", "grade"])
        .titled(format!("scores as of {}", local(&pb, as_of)));
    let row = |p: &Person, s: &scoring::Scores| {
        vec![
            name_of(p),
            format!("{:.2}", s.fit),
            format!("{:.2}", s.engagement),
            s.grade.clone().unwrap_or_else(|| "-".into()),
        ]
    };
    let Some(key) = &a.person else {
        if a.explain {
            bail!("--explain needs a PERSON");
        }
        let snap = numbers::load(ctx).await?;
        let accounts: BTreeMap<i64, &Account> = snap.accounts.iter().map(|x| (x.id, x)).collect();
        let mut touches: BTreeMap<i64, Vec<Touch>> = BTreeMap::new();
        for x in &snap.touches {
            touches.entry(x.person_id).or_default().push(x.clone());
        }
        for p in &snap.people {
            let e = scoring::explain(
                &pb,
                p,
                p.account_id.and_then(|id| accounts.get(&id).copied()),
                touches.get(&p.id).map(Vec::as_slice).unwrap_or(&[]),
                as_of,
            );
            t.row(row(p, &e.scores));
        }
        ctx.print(&mut t)?;
        return Ok(ExitCode::SUCCESS);
    };
    let store = ctx.store().await?;
    let mut c = store.conn().await?;
    let p = repo::find_person(&mut c, key).await?;
    let account = match p.account_id {
        Some(id) => repo::account(&mut c, id).await?,
        None => None,
    };
    let touches = repo::touches_of(&mut c, p.id).await?;
    let e = scoring::explain(&pb, &p, account.as_ref(), &touches, as_of);
    if !a.explain {
        t.row(row(&p, &e.scores));
        ctx.print(&mut t)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut x = Table::new(&["score", "rule", "points", "value", "at"]).titled(format!(
        "{}: fit {:.2}, engagement {:.2}, grade {} as of {}",
        name_of(&p),
        e.scores.fit,
        e.scores.engagement,
        e.scores.grade.as_deref().unwrap_or("-"),
        local(&pb, as_of)
    ));
    for (kind, parts) in [("fit", &e.fit), ("engagement", &e.engagement)] {
        for c in parts {
            x.row(vec![
                kind.into(),
                c.rule.clone(),
                num(Some(c.points), 2),
                num(Some(c.value), 4),
                c.at.map(|t: Timestamp| local(&pb, t))
                    .unwrap_or_else(|| "-".into()),
            ]);
        }
    }
    ctx.print(&mut x)?;
    Ok(ExitCode::SUCCESS)
}
