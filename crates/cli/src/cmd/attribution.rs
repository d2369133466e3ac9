//! `tandem attribution`: where conversions and revenue come from (DESIGN §6).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, ValueEnum};
use tandem_core::attribution::journeys::{By, Conversion, DEFAULT_LOOKBACK_DAYS};
use tandem_core::attribution::{
    attribute, parse_paths, totals, AttributionError, Credit, Model, Path, DEFAULT_DIRECT,
};
use tandem_store::numbers as shared;

use crate::cmd::numbers::{self, local, AsOf};
use crate::ctx::Ctx;
use crate::output::Table;

/// The model(s) to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ModelArg {
    /// All credit to the first touch.
    First,
    /// All credit to the last touch.
    Last,
    /// All credit to the last touch that is not `--direct`.
    LastNonDirect,
    /// Equal credit to every touch.
    Linear,
    /// Weight 2^(−age/half-life) per touch (needs touch ages: store only).
    TimeDecay,
    /// 40/20/40 position based.
    U,
    /// 30/30/30 at first, lead- and opportunity-creation touch, 10 shared.
    W,
    /// 22.5 × 4 milestones (first, lead, opportunity, last), 10 shared.
    FullPath,
    /// Exact Markov chain of order --order, removal effects.
    Markov,
    /// Shapley values over channel sets.
    Shapley,
    /// Every model, one column pair each.
    All,
}

/// What each step of a path names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ByArg {
    /// The touch's channel (stored, or from the playbook's channel rules).
    Channel,
    /// The touch's campaign id.
    Campaign,
}

#[derive(Args, Debug)]
pub struct AttributionArgs {
    /// The model, or `all`.
    #[arg(long, value_enum, default_value = "all")]
    model: ModelArg,
    /// Markov chain order k >= 1 (states are the last k channels).
    #[arg(long, default_value_t = 1)]
    order: usize,
    /// Time-decay half-life in days.
    #[arg(long, default_value_t = 7.0)]
    half_life: f64,
    /// Read paths from a ChannelAttribution file
    /// (`path;total_conversions;total_conversion_value;total_null`) instead
    /// of the store. Values are printed as they are in the file.
    #[arg(long)]
    paths: Option<PathBuf>,
    /// Credit channels or campaigns (store only).
    #[arg(long, value_enum, default_value = "channel")]
    by: ByArg,
    /// What converts: `won` (every won deal, valued at its amount) or a stage
    /// id (first entry into it, value 0).
    #[arg(long, default_value = "won")]
    conversion: String,
    /// Only touches at most this many days before the conversion count.
    #[arg(long, default_value_t = DEFAULT_LOOKBACK_DAYS)]
    lookback: i64,
    /// The channel skipped by last-non-direct.
    #[arg(long, default_value = DEFAULT_DIRECT)]
    direct: String,
    /// Every model side by side with each channel's spend, cost per won deal
    /// and won revenue per unit of cost.
    #[arg(long)]
    compare: bool,
    #[command(flatten)]
    as_of: AsOf,
}

impl AttributionArgs {
    /// The core model of a single-model argument.
    fn model(&self, m: ModelArg) -> Option<Model> {
        Some(match m {
            ModelArg::First => Model::FirstTouch,
            ModelArg::Last => Model::LastTouch,
            ModelArg::LastNonDirect => Model::LastNonDirect {
                direct: self.direct.clone(),
            },
            ModelArg::Linear => Model::Linear,
            ModelArg::TimeDecay => Model::TimeDecay {
                half_life_days: self.half_life,
            },
            ModelArg::U => Model::UShaped,
            ModelArg::W => Model::WShaped,
            ModelArg::FullPath => Model::FullPath,
            ModelArg::Markov => Model::Markov { order: self.order },
            ModelArg::Shapley => Model::Shapley,
            ModelArg::All => return None,
        })
    }

    /// Every single model, in `ModelArg` order.
    fn all_models(&self) -> Vec<Model> {
        ModelArg::value_variants()
            .iter()
            .filter_map(|m| self.model(*m))
            .collect()
    }
}

/// Paths and how to print their values.
struct Input {
    paths: Vec<Path>,
    /// Where the paths come from, for the title.
    source: String,
    /// Divide values by this for printing (100 for minor units).
    value_divisor: f64,
    /// Decimals of printed values.
    value_digits: usize,
    /// Spend per channel in minor units, when known (store only).
    spend: Option<BTreeMap<String, i64>>,
    /// Extra notes for the title.
    notes: Vec<String>,
}

/// `tandem attribution`: per channel (or campaign) conversions and value of
/// one model or all of them; with `--compare`, spend and efficiency too.
pub async fn attribution_cmd(ctx: &Ctx, a: AttributionArgs) -> Result<ExitCode> {
    if a.order == 0 {
        bail!("--order must be at least 1");
    }
    let input = match &a.paths {
        Some(file) => from_file(file)?,
        None => from_store(ctx, &a).await?,
    };
    let all = a.compare || a.model == ModelArg::All;
    let models = if all {
        a.all_models()
    } else {
        a.model(a.model).into_iter().collect()
    };

    let mut results: Vec<(Model, Vec<Credit>)> = Vec::new();
    for m in models {
        match attribute(&input.paths, &m) {
            Ok(c) => results.push((m, c)),
            Err(
                e @ (AttributionError::TooManyChannels { .. }
                | AttributionError::MissingAges { .. }),
            ) if all => {
                eprintln!("notice: {} left out: {e}", m.name());
            }
            Err(e) => {
                return Err(anyhow!(e)).with_context(|| {
                    format!("the {} model cannot run on {}", m.name(), input.source)
                })
            }
        }
    }

    let (total_conv, total_value) = totals(&input.paths);
    let value = |v: f64| format!("{:.*}", input.value_digits, v / input.value_divisor);
    let mut title = format!(
        "attribution of {}: {} paths, {:.4} conversions, value {}",
        input.source,
        input.paths.len(),
        total_conv,
        value(total_value)
    );
    for n in &input.notes {
        title.push_str("; ");
        title.push_str(n);
    }

    let mut channels: BTreeSet<String> = results
        .iter()
        .flat_map(|(_, c)| c.iter().map(|c| c.channel.clone()))
        .collect();
    let spend = if a.compare { input.spend.clone() } else { None };
    if let Some(s) = &spend {
        channels.extend(s.keys().cloned());
    }

    let mut headers: Vec<String> = vec!["channel".into()];
    if all {
        for (m, _) in &results {
            headers.push(format!("{}_conversions", m.name()));
            headers.push(format!("{}_value", m.name()));
        }
    } else {
        headers.push("conversions".into());
        headers.push("value".into());
    }
    if a.compare {
        headers.push("spend".into());
        for (m, _) in &results {
            headers.push(format!("{}_cost_per_won", m.name()));
            headers.push(format!("{}_revenue_per_cost", m.name()));
        }
    }
    let refs: Vec<&str> = headers.iter().map(String::as_str).collect();
    let mut t = Table::new(&refs).titled(title);

    let lookup: Vec<BTreeMap<&str, &Credit>> = results
        .iter()
        .map(|(_, c)| c.iter().map(|c| (c.channel.as_str(), c)).collect())
        .collect();
    for ch in &channels {
        let credit = |i: usize| -> (f64, f64) {
            lookup[i]
                .get(ch.as_str())
                .map(|c| (c.conversions, c.value))
                .unwrap_or((0.0, 0.0))
        };
        let mut row = vec![ch.clone()];
        for i in 0..results.len() {
            let (c, v) = credit(i);
            row.push(format!("{c:.4}"));
            row.push(value(v));
        }
        if a.compare {
            let spent = spend.as_ref().and_then(|s| s.get(ch)).copied();
            row.push(match spent {
                Some(s) => value(s as f64),
                None => "-".into(),
            });
            for i in 0..results.len() {
                let (c, v) = credit(i);
                match spent {
                    Some(s) if s > 0 => {
                        row.push(if c > 0.0 {
                            value(s as f64 / c)
                        } else {
                            "-".into()
                        });
                        row.push(format!("{:.4}", v / s as f64));
                    }
                    _ => {
                        row.push("-".into());
                        row.push("-".into());
                    }
                }
            }
        }
        t.row(row);
    }
    ctx.print(&mut t)?;
    Ok(ExitCode::SUCCESS)
}

/// Paths from a ChannelAttribution file.
fn from_file(file: &std::path::Path) -> Result<Input> {
    let name = file.display().to_string();
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read paths file {name}"))?;
    let paths = parse_paths(&text).map_err(|e| anyhow!("{name}:{}: {}", e.line, e.kind))?;
    Ok(Input {
        paths,
        source: name,
        value_divisor: 1.0,
        value_digits: 4,
        spend: None,
        notes: vec!["no spend in a paths file".into()],
    })
}

/// Paths built from the stored history.
async fn from_store(ctx: &Ctx, a: &AttributionArgs) -> Result<Input> {
    let pb = ctx.playbook()?;
    let as_of = a.as_of.get(&pb)?;
    let by = match a.by {
        ByArg::Channel => By::Channel,
        ByArg::Campaign => By::Campaign,
    };
    let snap = numbers::load(ctx).await?;
    let j = shared::stored_paths(&pb, &snap, &a.conversion, by, a.lookback, as_of)?;
    let conversion = j.conversion.clone();
    let currency = pb.company.currency;
    let mut notes = vec![format!(
        "conversion {}, lookback {} days, value and spend in {currency}",
        match &conversion {
            Conversion::Won => "won deals".to_string(),
            Conversion::Stage(s) => format!("first entry into {s}"),
        },
        a.lookback
    )];
    if j.untouched_conversions > 0.0 {
        notes.push(format!(
            "{} conversions ({} {currency}) had no touch in the window and are not credited",
            j.untouched_conversions,
            numbers::major(j.untouched_value)
        ));
    }
    if a.compare {
        notes.push(
            "spend = cost of the campaigns of the channel that started by as-of + cost of touches not in a stored campaign".into(),
        );
    }
    Ok(Input {
        paths: j.paths,
        source: format!("the store by {} as of {}", by_name(by), local(&pb, as_of)),
        value_divisor: 100.0,
        value_digits: 2,
        spend: Some(shared::spend(&pb, &snap, by, as_of)),
        notes,
    })
}

fn by_name(by: By) -> &'static str {
    match by {
        By::Channel => "channel",
        By::Campaign => "campaign",
    }
}
