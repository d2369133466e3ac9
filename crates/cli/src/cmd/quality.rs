//! `tandem quality` (the definition check) and `tandem score`.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Args;
use serde_json::json;
use tandem_core::domain::{Account, Person, Touch};
use tandem_core::quality::ScoreQuality;
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

/// `tandem quality`.
pub async fn quality_cmd(ctx: &Ctx, a: QualityArgs) -> Result<ExitCode> {
    let pb = ctx.playbook()?;
    let snap = numbers::load(ctx).await?;
    let as_of = a.as_of.get(&pb)?;
    let report = tandem_store::numbers::quality(&pb, &snap, &a.target, a.score.as_deref(), as_of)?;
    let mql = report.mql_rule.stage.clone();
    let rule = report.mql_rule.check.clone();
    let rule_auc = report.mql_rule.auc;
    let people_n = report.n;
    let results: Vec<(String, usize, Result<ScoreQuality, String>)> = report
        .scores
        .into_iter()
        .map(|r| {
            let q = match (r.quality, r.error) {
                (Some(q), _) => Ok(q),
                (None, e) => Err(e.unwrap_or_default()),
            };
            (r.score, r.n, q)
        })
        .collect();
    let positives = report.positives;
    let target_name = a.target.clone();
    if ctx.format == Format::Json {
        let out = json!({
            "target": target_name,
            "as_of": local(&pb, as_of),
            "n": people_n,
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
        people_n,
        positives
    ));
    t.row(vec![
        format!("{mql} status"),
        rule.n.to_string(),
        positives.to_string(),
        format!("{:.4}", positives as f64 / people_n as f64),
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
    if p.external_id().is_empty() {
        format!("#{}", p.id)
    } else {
        p.external_id().to_string()
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
            touches.entry(x.person_id).or_default().push(x.to_touch());
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
