//! Multi-touch attribution (DESIGN §6): pure functions from conversion paths
//! to per-channel credit.
//!
//! A [`Path`] is one ordered sequence of touches (channel or campaign ids)
//! together with how many journeys on it converted, their total value and how
//! many ended without conversion. Every model returns one [`Credit`] per
//! channel seen in the input, sorted by channel id, and the credits of every
//! model sum to the total conversions and the total value of the input.
//!
//! Models:
//! - rule based ([`first_touch`], [`last_touch`], [`last_non_direct`],
//!   [`linear`], [`time_decay`], [`u_shaped`], [`w_shaped`], [`full_path`]);
//! - data driven: the exact Markov chain of order k ([`markov`]) and Shapley
//!   values over channel sets ([`shapley`]).
//!
//! [`parse_paths`] reads the ChannelAttribution path format ([`parse_path_table`]
//! into interned [`PathTable`]s); [`journeys::build_paths`] builds a table
//! from stored history. [`attribute_table`] runs any model on a table
//! without a string per touch; [`attribute`] interns its paths first.

pub mod journeys;
mod markov;
mod paths;
mod rules;
mod shapley;
mod table;

pub use markov::{markov, markov_table, MarkovAttribution, RemovalEffect, DIRECT_SOLVE_LIMIT};
pub use paths::{
    parse_path_table, parse_paths, ParseError, ParseErrorKind, HEADER as PATH_FILE_HEADER,
};
pub use rules::{
    first_touch, full_path, last_non_direct, last_touch, linear, time_decay, u_shaped, w_shaped,
};
pub use shapley::{shapley, shapley_table, MAX_SHAPLEY_CHANNELS};
pub use table::{PathRef, PathTable};

/// The channel id that [`Model::LastNonDirect`] skips unless told otherwise.
pub const DEFAULT_DIRECT: &str = "direct";

/// One conversion path: the touches of a group of journeys in time order and
/// how those journeys ended.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Path {
    /// Channel (or campaign) ids of the touches, oldest first. Never empty.
    pub steps: Vec<String>,
    /// Age in days of each touch at the moment of conversion (same length as
    /// `steps`, each finite and ≥ 0). Only [`time_decay`] needs it.
    #[serde(default)]
    pub ages_days: Option<Vec<f64>>,
    /// Index in `steps` of the lead-creation touch, if known. Used by
    /// [`w_shaped`] and [`full_path`].
    #[serde(default)]
    pub lead_touch: Option<usize>,
    /// Index in `steps` of the opportunity-creation touch, if known. Used by
    /// [`w_shaped`] and [`full_path`].
    #[serde(default)]
    pub opportunity_touch: Option<usize>,
    /// Number of journeys on this path that converted (≥ 0; may be fractional).
    pub conversions: f64,
    /// Total value of those conversions (≥ 0; must be 0 when `conversions` is 0).
    pub value: f64,
    /// Number of journeys on this path that ended without conversion (≥ 0).
    pub nulls: f64,
}

impl Path {
    /// A path with no ages and no milestones.
    pub fn new<S: Into<String>>(
        steps: impl IntoIterator<Item = S>,
        conversions: f64,
        value: f64,
        nulls: f64,
    ) -> Path {
        Path {
            steps: steps.into_iter().map(Into::into).collect(),
            ages_days: None,
            lead_touch: None,
            opportunity_touch: None,
            conversions,
            value,
            nulls,
        }
    }
}

/// Credit given to one channel by a model.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Credit {
    /// Channel (or campaign) id.
    pub channel: String,
    /// Share of the total conversions credited to the channel.
    pub conversions: f64,
    /// Share of the total conversion value credited to the channel.
    pub value: f64,
}

/// Why a model could not run on the given paths. `path` fields are 0-based
/// indices into the input slice.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AttributionError {
    /// A path without touches.
    #[error("path {path}: no touches")]
    EmptyPath {
        /// Index of the path.
        path: usize,
    },
    /// A touch whose channel id is empty.
    #[error("path {path}: touch {touch} has an empty channel id")]
    EmptyStep {
        /// Index of the path.
        path: usize,
        /// Index of the touch in the path.
        touch: usize,
    },
    /// Conversions, value or nulls negative, NaN or infinite.
    #[error("path {path}: {field} must be a finite number ≥ 0, got {got}")]
    InvalidWeight {
        /// Index of the path.
        path: usize,
        /// `conversions`, `value` or `nulls`.
        field: &'static str,
        /// The offending number.
        got: f64,
    },
    /// Positive value on a path without conversions.
    #[error("path {path}: value {value} but no conversions")]
    ValueWithoutConversions {
        /// Index of the path.
        path: usize,
        /// The value.
        value: f64,
    },
    /// `ages_days` of the wrong length.
    #[error("path {path}: {ages} ages for {touches} touches")]
    AgesLength {
        /// Index of the path.
        path: usize,
        /// Number of ages given.
        ages: usize,
        /// Number of touches.
        touches: usize,
    },
    /// An age that is negative, NaN or infinite.
    #[error("path {path}: age of touch {touch} must be a finite number of days ≥ 0, got {got}")]
    InvalidAge {
        /// Index of the path.
        path: usize,
        /// Index of the touch.
        touch: usize,
        /// The offending age.
        got: f64,
    },
    /// Time decay on a path without ages.
    #[error("path {path}: time decay needs the age of every touch (ages_days)")]
    MissingAges {
        /// Index of the path.
        path: usize,
    },
    /// A lead- or opportunity-creation index past the end of the path.
    #[error("path {path}: milestone touch {index} is out of range for {touches} touches")]
    MilestoneOutOfRange {
        /// Index of the path.
        path: usize,
        /// The milestone index.
        index: usize,
        /// Number of touches.
        touches: usize,
    },
    /// Half-life not a finite positive number of days.
    #[error("time-decay half-life must be a finite number of days > 0, got {0}")]
    InvalidHalfLife(f64),
    /// Markov order 0.
    #[error("Markov order must be at least 1")]
    InvalidOrder,
    /// Too many distinct channels for exact Shapley values.
    #[error(
        "Shapley values need 2^n coalitions: {found} distinct channels is more than the limit of {max}; group channels (e.g. by channel instead of campaign) or use the Markov model"
    )]
    TooManyChannels {
        /// Distinct channels in the input.
        found: usize,
        /// The limit.
        max: usize,
    },
    /// Numerical breakdown in a model that should not happen for valid input.
    #[error("attribution model {model} failed numerically: {reason}")]
    Numerical {
        /// Model name.
        model: &'static str,
        /// What went wrong.
        reason: String,
    },
}

/// A model and its parameters, for callers that pick the model at run time.
#[derive(Clone, Debug, PartialEq)]
pub enum Model {
    /// All credit to the first touch.
    FirstTouch,
    /// All credit to the last touch.
    LastTouch,
    /// All credit to the last touch that is not the given direct channel.
    LastNonDirect {
        /// The direct channel id, usually [`DEFAULT_DIRECT`].
        direct: String,
    },
    /// Equal credit to every touch.
    Linear,
    /// Weight 2^(−age/half-life) per touch.
    TimeDecay {
        /// Half-life in days.
        half_life_days: f64,
    },
    /// 40/20/40 position based.
    UShaped,
    /// 30/30/30 at first, lead- and opportunity-creation touch, 10 shared.
    WShaped,
    /// 22.5 × 4 milestones, 10 shared.
    FullPath,
    /// Exact Markov chain removal effects.
    Markov {
        /// Order k ≥ 1.
        order: usize,
    },
    /// Shapley values over channel sets.
    Shapley,
}

impl Model {
    /// A short name, e.g. `"markov"`.
    pub fn name(&self) -> &'static str {
        match self {
            Model::FirstTouch => "first",
            Model::LastTouch => "last",
            Model::LastNonDirect { .. } => "last-non-direct",
            Model::Linear => "linear",
            Model::TimeDecay { .. } => "time-decay",
            Model::UShaped => "u",
            Model::WShaped => "w",
            Model::FullPath => "full-path",
            Model::Markov { .. } => "markov",
            Model::Shapley => "shapley",
        }
    }
}

/// Runs `model` on `paths`. See the model functions for details.
pub fn attribute(paths: &[Path], model: &Model) -> Result<Vec<Credit>, AttributionError> {
    match model {
        Model::FirstTouch => first_touch(paths),
        Model::LastTouch => last_touch(paths),
        Model::LastNonDirect { direct } => last_non_direct(paths, direct),
        Model::Linear => linear(paths),
        Model::TimeDecay { half_life_days } => time_decay(paths, *half_life_days),
        Model::UShaped => u_shaped(paths),
        Model::WShaped => w_shaped(paths),
        Model::FullPath => full_path(paths),
        Model::Markov { order } => markov(paths, *order).map(|m| m.credits),
        Model::Shapley => shapley(paths),
    }
}

/// Runs `model` on interned paths: what [`attribute`] gives for
/// `table.to_paths()`, without a string per touch.
pub fn attribute_table(table: &PathTable, model: &Model) -> Result<Vec<Credit>, AttributionError> {
    use rules::{credits, Rule};
    match model {
        Model::FirstTouch => credits(table, Rule::First),
        Model::LastTouch => credits(table, Rule::Last),
        Model::LastNonDirect { direct } => credits(table, Rule::LastNonDirect(direct)),
        Model::Linear => credits(table, Rule::Linear),
        Model::TimeDecay { half_life_days } => credits(table, Rule::TimeDecay(*half_life_days)),
        Model::UShaped => credits(table, Rule::UShaped),
        Model::WShaped => credits(table, Rule::WShaped),
        Model::FullPath => credits(table, Rule::FullPath),
        Model::Markov { order } => markov_table(table, *order).map(|m| m.credits),
        Model::Shapley => shapley_table(table),
    }
}

/// Total conversions and total value of `paths`: what every model's credits
/// sum to.
pub fn totals(paths: &[Path]) -> (f64, f64) {
    paths
        .iter()
        .fold((0.0, 0.0), |(c, v), p| (c + p.conversions, v + p.value))
}

/// Checks the invariants documented on [`Path`].
pub(crate) fn validate(paths: &[Path]) -> Result<(), AttributionError> {
    for (i, p) in paths.iter().enumerate() {
        if p.steps.is_empty() {
            return Err(AttributionError::EmptyPath { path: i });
        }
        if let Some(t) = p.steps.iter().position(|s| s.is_empty()) {
            return Err(AttributionError::EmptyStep { path: i, touch: t });
        }
        for (field, got) in [
            ("conversions", p.conversions),
            ("value", p.value),
            ("nulls", p.nulls),
        ] {
            if !got.is_finite() || got < 0.0 {
                return Err(AttributionError::InvalidWeight {
                    path: i,
                    field,
                    got,
                });
            }
        }
        if p.value > 0.0 && p.conversions == 0.0 {
            return Err(AttributionError::ValueWithoutConversions {
                path: i,
                value: p.value,
            });
        }
        if let Some(ages) = &p.ages_days {
            if ages.len() != p.steps.len() {
                return Err(AttributionError::AgesLength {
                    path: i,
                    ages: ages.len(),
                    touches: p.steps.len(),
                });
            }
            if let Some(t) = ages.iter().position(|a| !a.is_finite() || *a < 0.0) {
                return Err(AttributionError::InvalidAge {
                    path: i,
                    touch: t,
                    got: ages[t],
                });
            }
        }
        for index in [p.lead_touch, p.opportunity_touch].into_iter().flatten() {
            if index >= p.steps.len() {
                return Err(AttributionError::MilestoneOutOfRange {
                    path: i,
                    index,
                    touches: p.steps.len(),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The ChannelAttribution example data shared by the project, if present.
    pub(crate) fn example_paths() -> Option<Vec<Path>> {
        let file = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/data/attribution/paths.csv"
        );
        match std::fs::read_to_string(file) {
            Ok(text) => Some(parse_paths(&text).unwrap()),
            Err(e) => {
                eprintln!("notice: {file} not readable ({e}); skipping this test");
                None
            }
        }
    }

    /// Looks up a channel's credit.
    pub(crate) fn credit_of<'a>(credits: &'a [Credit], channel: &str) -> &'a Credit {
        credits.iter().find(|c| c.channel == channel).unwrap()
    }

    #[test]
    fn validation_names_the_path() {
        let mut p = Path::new(["a"], 1.0, 1.0, 0.0);
        p.nulls = -1.0;
        assert_eq!(
            linear(&[Path::new(["a"], 1.0, 0.0, 0.0), p]).unwrap_err(),
            AttributionError::InvalidWeight {
                path: 1,
                field: "nulls",
                got: -1.0
            }
        );
        assert!(matches!(
            first_touch(&[Path::new(Vec::<String>::new(), 1.0, 0.0, 0.0)]),
            Err(AttributionError::EmptyPath { path: 0 })
        ));
        assert!(matches!(
            u_shaped(&[Path::new(["a"], 0.0, 5.0, 1.0)]),
            Err(AttributionError::ValueWithoutConversions { path: 0, .. })
        ));
        let mut p = Path::new(["a", "b"], 1.0, 0.0, 0.0);
        p.lead_touch = Some(2);
        assert!(matches!(
            w_shaped(&[p]),
            Err(AttributionError::MilestoneOutOfRange { index: 2, .. })
        ));
    }

    fn arb_path() -> impl Strategy<Value = Path> {
        let channels = prop::sample::select(vec!["a", "b", "c", "d", "direct"]);
        (1usize..7)
            .prop_flat_map(move |len| {
                (
                    prop::collection::vec(channels.clone(), len),
                    prop::collection::vec(0.0f64..90.0, len),
                    prop::option::of(0..len),
                    prop::option::of(0..len),
                    0u32..5,
                    0.0f64..500.0,
                    0u32..5,
                )
            })
            .prop_map(|(steps, ages, lead, opp, conv, value, nulls)| {
                let mut p = Path::new(
                    steps,
                    f64::from(conv),
                    if conv > 0 { value } else { 0.0 },
                    f64::from(nulls),
                );
                p.ages_days = Some(ages);
                p.lead_touch = lead;
                p.opportunity_touch = opp;
                p
            })
    }

    fn all_models() -> Vec<Model> {
        vec![
            Model::FirstTouch,
            Model::LastTouch,
            Model::LastNonDirect {
                direct: DEFAULT_DIRECT.to_string(),
            },
            Model::Linear,
            Model::TimeDecay {
                half_life_days: 7.0,
            },
            Model::UShaped,
            Model::WShaped,
            Model::FullPath,
            Model::Markov { order: 1 },
            Model::Markov { order: 2 },
            Model::Markov { order: 3 },
            Model::Shapley,
        ]
    }

    proptest! {
        #[test]
        fn every_model_sums_to_totals_and_is_never_negative(
            paths in prop::collection::vec(arb_path(), 1..12)
        ) {
            let (conv, value) = totals(&paths);
            for model in all_models() {
                let credits = attribute(&paths, &model).unwrap();
                let sc: f64 = credits.iter().map(|c| c.conversions).sum();
                let sv: f64 = credits.iter().map(|c| c.value).sum();
                prop_assert!((sc - conv).abs() <= 1e-6 * conv.max(1.0),
                    "{}: conversions {} vs {}", model.name(), sc, conv);
                prop_assert!((sv - value).abs() <= 1e-6 * value.max(1.0),
                    "{}: value {} vs {}", model.name(), sv, value);
                for c in &credits {
                    prop_assert!(c.conversions >= 0.0 && c.value >= 0.0,
                        "{}: negative credit {:?}", model.name(), c);
                }
                let mut names: Vec<&str> = credits.iter().map(|c| c.channel.as_str()).collect();
                let sorted = { let mut s = names.clone(); s.sort_unstable(); s };
                prop_assert_eq!(&names, &sorted);
                names.dedup();
                prop_assert_eq!(names.len(), credits.len());
            }
        }
    }

    /// Paths as written to a ChannelAttribution file: up to 14 channels,
    /// fractional conversions, value only where there are conversions.
    fn arb_file_path() -> impl Strategy<Value = Path> {
        let channels = prop::sample::select(vec![
            "alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa",
            "lambda", "mi", "direct", "x y",
        ]);
        (
            prop::collection::vec(channels, 1..9),
            prop_oneof![Just(0.0f64), 0.0f64..20.0, (0u32..5).prop_map(f64::from)],
            0.0f64..1000.0,
            prop_oneof![Just(0.0f64), 0.0f64..40.0],
        )
            .prop_map(|(steps, conv, value, nulls)| {
                Path::new(steps, conv, if conv > 0.0 { value } else { 0.0 }, nulls)
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        /// Written to the path-file format and read back, paths give the
        /// same credits from the interned table as from the slice, and those
        /// credits add up to the file's totals for every model.
        #[test]
        fn path_file_models_sum_to_the_file_totals(
            paths in prop::collection::vec(arb_file_path(), 1..24)
        ) {
            let mut text = format!("{}\r\n", paths::HEADER);
            for p in &paths {
                // `{:?}` prints f64 exactly (shortest round-trip form).
                text.push_str(&format!(
                    "{};{:?};{:?};{:?}\n",
                    p.steps.join(" > "),
                    p.conversions,
                    p.value,
                    p.nulls
                ));
            }
            let table = parse_path_table(&text).unwrap();
            prop_assert_eq!(table.to_paths(), paths.clone());
            let (conv, value) = totals(&paths);
            prop_assert_eq!(table.totals(), (conv, value));
            for order in 1..=3 {
                let from_table = markov_table(&table, order).unwrap();
                let from_slice = markov(&paths, order).unwrap();
                prop_assert_eq!(&from_table.credits, &from_slice.credits);
            }
            // A path file has no touch ages, so time decay cannot run on it.
            for model in all_models().into_iter().filter(|m| m.name() != "time-decay") {
                let credits = attribute(&paths, &model).unwrap();
                let sc: f64 = credits.iter().map(|c| c.conversions).sum();
                let sv: f64 = credits.iter().map(|c| c.value).sum();
                prop_assert!((sc - conv).abs() <= 1e-6 * conv.max(1.0),
                    "{}: conversions {} vs {}", model.name(), sc, conv);
                prop_assert!((sv - value).abs() <= 1e-6 * value.max(1.0),
                    "{}: value {} vs {}", model.name(), sv, value);
                prop_assert!(credits.iter().all(|c| c.conversions >= 0.0 && c.value >= 0.0));
            }
        }
    }
}
