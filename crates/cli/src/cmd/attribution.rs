//! `tandem attribution`: where conversions and revenue come from (DESIGN §6).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, ValueEnum};
use tandem_core::attribution::journeys::{By, Conversion, Level, DEFAULT_LOOKBACK_DAYS};
use tandem_core::attribution::{
    attribute_table, parse_path_table, AttributionError, Credit, Model, PathTable, DEFAULT_DIRECT,
};
use tandem_store::numbers as shared;

use crate::cmd::numbers::{self, local, AsOf};
use crate::ctx::Ctx;
use crate::output::Table;

/// Whose journeys the paths are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LevelArg {
    /// Each person's touches; every won deal of the person converts.
    Person,
    /// All touches of an account's people, up to the account's first won
    /// deal (or its first person entering --conversion).
    Account,
}

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
    /// Person or account journeys (store only).
    #[arg(long, value_enum, default_value = "person")]
    level: LevelArg,
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
    /// Write the paths (identical ones summed, values in major units) to
    /// FILE in the ChannelAttribution format instead of running a model, e.g.
    /// to compare with other tools on the same journeys.
    #[arg(long, value_name = "FILE")]
    export_paths: Option<PathBuf>,
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
    /// Interned paths: every model runs on them directly.
    table: PathTable,
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
/// A paths file needs neither the playbook, the database nor the async
/// runtime, so that run starts as fast as the process can.
pub fn attribution_cmd(ctx: &Ctx, a: AttributionArgs) -> Result<ExitCode> {
    if a.order == 0 {
        bail!("--order must be at least 1");
    }
    let input = match &a.paths {
        Some(file) => from_file(file)?,
        None => ctx.block_on(from_store(ctx, &a))?,
    };
    if let Some(out) = &a.export_paths {
        let rows = export_paths(&input, out)?;
        eprintln!(
            "wrote {rows} distinct paths of {} journeys to {}",
            input.table.len(),
            out.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let all = a.compare || a.model == ModelArg::All;
    let models = if all {
        a.all_models()
    } else {
        a.model(a.model).into_iter().collect()
    };

    let mut results: Vec<(Model, Vec<Credit>)> = Vec::new();
    for m in models {
        match attribute_table(&input.table, &m) {
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

    let (total_conv, total_value) = input.table.totals();
    let value = |v: f64| format!("{:.*}", input.value_digits, v / input.value_divisor);
    let mut title = format!(
        "attribution of {}: {} paths, {:.4} conversions, value {}",
        input.source,
        input.table.len(),
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

/// Writes `input` as a ChannelAttribution path file, identical paths summed
/// (sorted by path); returns the number of rows.
fn export_paths(input: &Input, out: &std::path::Path) -> Result<usize> {
    use std::io::Write;
    let channels = input.table.channels();
    if let Some(bad) = channels.iter().find(|s| s.contains([';', '>', '\n'])) {
        bail!("cannot export the paths: channel {bad:?} contains ';', '>' or a line break");
    }
    // Channel ids are in name order, so rows sort as their names would.
    let mut rows: BTreeMap<&[u32], [f64; 3]> = BTreeMap::new();
    for p in input.table.iter() {
        let r = rows.entry(p.steps).or_default();
        r[0] += p.conversions;
        r[1] += p.value / input.value_divisor;
        r[2] += p.nulls;
    }
    let name = out.display();
    let file = std::fs::File::create(out).with_context(|| format!("cannot create {name}"))?;
    let mut w = std::io::BufWriter::new(file);
    let mut write = || -> std::io::Result<()> {
        writeln!(w, "{}", tandem_core::attribution::PATH_FILE_HEADER)?;
        for (steps, [c, v, n]) in &rows {
            let names: Vec<&str> = steps
                .iter()
                .map(|&s| channels[s as usize].as_str())
                .collect();
            writeln!(w, "{};{c};{v};{n}", names.join(" > "))?;
        }
        w.flush()
    };
    write().with_context(|| format!("cannot write {name}"))?;
    Ok(rows.len())
}

/// Paths from a ChannelAttribution file.
fn from_file(file: &std::path::Path) -> Result<Input> {
    let name = file.display().to_string();
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read paths file {name}"))?;
    let table = parse_path_table(&text).map_err(|e| anyhow!("{name}:{}: {}", e.line, e.kind))?;
    Ok(Input {
        table,
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
    let level = match a.level {
        LevelArg::Person => Level::Person,
        LevelArg::Account => Level::Account,
    };
    let j = shared::stored_paths(&pb, &snap, &a.conversion, by, level, a.lookback, as_of)?;
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
        table: j.paths,
        source: format!(
            "the store by {}{} as of {}",
            by_name(by),
            match a.level {
                LevelArg::Person => "",
                LevelArg::Account => " and account",
            },
            local(&pb, as_of)
        ),
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
