//! Sweep configurations in the format of Weights & Biases: checked with every problem reported
//! at once, the parameter tree, and the command line an agent runs for a trial.
//!
//! A file that `wandb sweep` accepts is accepted here unchanged, except that:
//! - two parameters may not share a flat name: the dot joins the levels of nested
//!   parameters, so a top-level `model.lr` and a nested `model` → `lr` would both be
//!   `model.lr`;
//! - `method: custom`, `metrics` and `scheduler` (W&B's custom schedulers) are not supported;
//! - things W&B only warns about are errors: unknown keys, an unknown `metric.goal`,
//!   `probabilities` that do not add up to 1, numbers written as strings.
//!
//! Distributions are inferred as W&B infers them: `values` is categorical (with
//! `probabilities`, weighted), `value` is a constant, `min` and `max` that are both integers
//! are int_uniform and otherwise uniform; any other distribution must be named.

use std::collections::BTreeMap;

use serde::de::Error as _;
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

mod command;
mod parse;
#[cfg(test)]
mod tests;

pub use command::{CommandContext, DEFAULT_COMMAND, build_command};
pub use parse::{ConfigIssue, json_kind, parse_sweep_config};
use parse::{at, join_issues, parse_param};

/// A checked sweep configuration; deserializing runs [`parse_sweep_config`], serializing
/// writes W&B's format with every default filled in.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SweepConfig {
    /// Display name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Free text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Project the sweep belongs to, when the file names one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// The training script, substituted for `${program}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub program: Option<String>,
    /// The command an agent runs for each trial, with W&B's macros; see [`build_command`].
    pub command: Vec<String>,
    /// How parameters are chosen.
    pub method: SearchMethod,
    /// The metric to optimize; required by bayes and by early termination.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metric: Option<MetricGoal>,
    /// The parameter tree, by name.
    pub parameters: BTreeMap<String, Param>,
    /// Hyperband early termination.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub early_terminate: Option<Hyperband>,
    /// Most trials the sweep starts, over all agents.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_cap: Option<u64>,
    /// Options of the bayes (TPE) sampler, from the top-level key `optuna_config`.
    #[serde(rename = "optuna_config")]
    pub tpe: TpeConfig,
}

/// The search strategy of a sweep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SearchMethod {
    /// Every combination of the parameters' values, in order.
    Grid,
    /// Independent draws from every distribution.
    Random,
    /// Tree-structured Parzen estimator, guided by earlier trials' metric.
    Bayes,
}

/// The metric a sweep optimizes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricGoal {
    /// Metric key, as the runs log it.
    pub name: String,
    /// Whether smaller or larger is better.
    #[serde(default)]
    pub goal: Goal,
    /// The sweep finishes once a trial reaches this value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<f64>,
}

/// Direction of optimization.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Goal {
    /// Smaller is better (W&B's default).
    #[default]
    Minimize,
    /// Larger is better.
    Maximize,
}

/// Hyperband early termination (`early_terminate: {type: hyperband, ...}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename = "hyperband")]
pub struct Hyperband {
    /// First band, in logged values of the metric; later bands are `min_iter·eta^k`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_iter: Option<u64>,
    /// Last band; the bands are `max_iter/eta^k` for k = 1..=s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_iter: Option<u64>,
    /// Number of bands below `max_iter`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s: Option<u64>,
    /// At each band the best 1/eta of the runs continue (default 3).
    #[serde(default = "default_eta")]
    pub eta: f64,
    /// Compare a run's value at the band rather than its best so far (default false, as
    /// W&B documents it).
    #[serde(default)]
    pub strict: bool,
}

fn default_eta() -> f64 {
    3.0
}

/// Options of the TPE sampler behind `method: bayes` (top-level key `optuna_config`, named
/// after Optuna's equivalent options).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TpeConfig {
    /// Which sampler `method: bayes` uses: TPE (default) or plain random draws, named as
    /// Optuna names them.
    pub sampler: Sampler,
    /// Trials drawn at random before the model is used (default 10).
    pub n_startup_trials: usize,
    /// Candidates scored by expected improvement per suggestion (default 24).
    pub n_ei_candidates: usize,
    /// Model the parameters jointly rather than one by one (default true, as Optuna 5).
    pub multivariate: bool,
    /// Count running trials as bad results so that parallel agents spread out (default
    /// true, because agents run in parallel).
    pub constant_liar: bool,
    /// Seed of the sweep's random choices; random when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

impl Default for TpeConfig {
    fn default() -> TpeConfig {
        TpeConfig {
            sampler: Sampler::Tpe,
            n_startup_trials: 10,
            n_ei_candidates: 24,
            multivariate: true,
            constant_liar: true,
            seed: None,
        }
    }
}

/// The sampler behind `method: bayes` (`optuna_config.sampler`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Sampler {
    /// Tree-structured Parzen estimator, as Optuna's `TPESampler`.
    #[default]
    #[serde(rename = "TPESampler")]
    Tpe,
    /// Independent random draws, as Optuna's `RandomSampler`.
    #[serde(rename = "RandomSampler")]
    Random,
}

impl Sampler {
    /// The supported names, for messages.
    pub const NAMES: [&'static str; 2] = ["TPESampler", "RandomSampler"];

    /// Parses Optuna's class name.
    pub fn parse(s: &str) -> Option<Sampler> {
        match s {
            "TPESampler" => Some(Sampler::Tpe),
            "RandomSampler" => Some(Sampler::Random),
            _ => None,
        }
    }
}

/// One node of the parameter tree; (de)serialized in W&B's format.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    /// Always this value (W&B's `value:`, distribution `constant`).
    Fixed(Value),
    /// One of `values` (W&B's `values:`, distribution `categorical`); uniformly unless
    /// `probabilities` (same length, adding up to 1) weights them.
    Choice {
        /// The candidates, in order.
        values: Vec<Value>,
        /// The weight of each candidate.
        probabilities: Option<Vec<f64>>,
    },
    /// A draw from a distribution.
    Dist(Distribution),
    /// A group of parameters (W&B's `parameters:` inside a parameter); the trial's config
    /// holds them as a nested object.
    Nested(BTreeMap<String, Param>),
}

/// A distribution, with W&B's names and meanings. `q` rounds a draw to a multiple of `q`
/// (`round(x / q) * q`); `*_values` distributions take the bounds themselves, the older ones
/// without that suffix take natural-log exponents.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "distribution", rename_all = "snake_case")]
pub enum Distribution {
    /// An integer in min..=max; in a grid, every one of them.
    IntUniform {
        /// Smallest value.
        min: i64,
        /// Largest value.
        max: i64,
    },
    /// A real number in [min, max).
    Uniform {
        /// Lower bound.
        min: f64,
        /// Upper bound.
        max: f64,
    },
    /// A uniform draw rounded to a multiple of q; in a grid, the points `min + k·q` below
    /// `max` (as numpy's `arange(min, max, q)`, which W&B uses).
    QUniform {
        /// Lower bound.
        min: f64,
        /// Upper bound.
        max: f64,
        /// Step (default 1).
        #[serde(default = "one")]
        q: f64,
    },
    /// `e^U(min, max)`: min and max are exponents.
    LogUniform {
        /// Exponent of the lower bound.
        min: f64,
        /// Exponent of the upper bound.
        max: f64,
    },
    /// Log-uniform between the values min and max (min > 0).
    LogUniformValues {
        /// Lower bound.
        min: f64,
        /// Upper bound.
        max: f64,
    },
    /// `e^-U(min, max)`: min and max are exponents of the reciprocal.
    InvLogUniform {
        /// Exponent.
        min: f64,
        /// Exponent.
        max: f64,
    },
    /// `1/x` log-uniform between the values min and max (min > 0).
    InvLogUniformValues {
        /// Lower bound.
        min: f64,
        /// Upper bound.
        max: f64,
    },
    /// [`Distribution::LogUniform`] rounded to a multiple of q.
    QLogUniform {
        /// Exponent of the lower bound.
        min: f64,
        /// Exponent of the upper bound.
        max: f64,
        /// Step (default 1).
        #[serde(default = "one")]
        q: f64,
    },
    /// [`Distribution::LogUniformValues`] rounded to a multiple of q.
    QLogUniformValues {
        /// Lower bound.
        min: f64,
        /// Upper bound.
        max: f64,
        /// Step (default 1).
        #[serde(default = "one")]
        q: f64,
    },
    /// Normal with mean mu and standard deviation sigma.
    Normal {
        /// Mean (default 0).
        #[serde(default)]
        mu: f64,
        /// Standard deviation (default 1).
        #[serde(default = "one")]
        sigma: f64,
    },
    /// [`Distribution::Normal`] rounded to a multiple of q.
    QNormal {
        /// Mean (default 0).
        #[serde(default)]
        mu: f64,
        /// Standard deviation (default 1).
        #[serde(default = "one")]
        sigma: f64,
        /// Step (default 1).
        #[serde(default = "one")]
        q: f64,
    },
    /// `e^N(mu, sigma)`.
    LogNormal {
        /// Mean of the logarithm (default 0).
        #[serde(default)]
        mu: f64,
        /// Standard deviation of the logarithm (default 1).
        #[serde(default = "one")]
        sigma: f64,
    },
    /// [`Distribution::LogNormal`] rounded to a multiple of q.
    QLogNormal {
        /// Mean of the logarithm (default 0).
        #[serde(default)]
        mu: f64,
        /// Standard deviation of the logarithm (default 1).
        #[serde(default = "one")]
        sigma: f64,
        /// Step (default 1).
        #[serde(default = "one")]
        q: f64,
    },
    /// Beta(a, b) on [0, 1].
    Beta {
        /// Shape a (default 1).
        #[serde(default = "one")]
        a: f64,
        /// Shape b (default 1).
        #[serde(default = "one")]
        b: f64,
    },
    /// [`Distribution::Beta`] rounded to a multiple of q.
    QBeta {
        /// Shape a (default 1).
        #[serde(default = "one")]
        a: f64,
        /// Shape b (default 1).
        #[serde(default = "one")]
        b: f64,
        /// Step (default 1).
        #[serde(default = "one")]
        q: f64,
    },
}

fn one() -> f64 {
    1.0
}

impl Distribution {
    /// W&B's name of the distribution, e.g. `q_log_uniform_values`.
    pub fn name(&self) -> &'static str {
        match self {
            Distribution::IntUniform { .. } => "int_uniform",
            Distribution::Uniform { .. } => "uniform",
            Distribution::QUniform { .. } => "q_uniform",
            Distribution::LogUniform { .. } => "log_uniform",
            Distribution::LogUniformValues { .. } => "log_uniform_values",
            Distribution::InvLogUniform { .. } => "inv_log_uniform",
            Distribution::InvLogUniformValues { .. } => "inv_log_uniform_values",
            Distribution::QLogUniform { .. } => "q_log_uniform",
            Distribution::QLogUniformValues { .. } => "q_log_uniform_values",
            Distribution::Normal { .. } => "normal",
            Distribution::QNormal { .. } => "q_normal",
            Distribution::LogNormal { .. } => "log_normal",
            Distribution::QLogNormal { .. } => "q_log_normal",
            Distribution::Beta { .. } => "beta",
            Distribution::QBeta { .. } => "q_beta",
        }
    }

    /// How many points a grid enumerates; None for distributions a grid cannot enumerate.
    fn grid_count(&self) -> Option<u64> {
        match *self {
            Distribution::IntUniform { min, max } => {
                let n = i128::from(max) - i128::from(min) + 1;
                Some(u64::try_from(n.max(0)).unwrap_or(u64::MAX))
            }
            // numpy's arange length, so the count matches the points W&B enumerates.
            Distribution::QUniform { min, max, q } => {
                Some(((max - min) / q).ceil().max(0.0) as u64)
            }
            _ => None,
        }
    }
}

impl Param {
    /// How many points a grid enumerates for this leaf; None when it is continuous.
    fn grid_count(&self) -> Option<u64> {
        match self {
            Param::Fixed(_) => Some(1),
            Param::Choice { values, .. } => Some(values.len() as u64),
            Param::Dist(d) => d.grid_count(),
            Param::Nested(children) => children
                .values()
                .try_fold(1u64, |acc, p| Some(acc.saturating_mul(p.grid_count()?))),
        }
    }
}

impl Serialize for Param {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Param::Fixed(value) => {
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry("value", value)?;
                map.end()
            }
            Param::Choice {
                values,
                probabilities,
            } => {
                let mut map = serializer.serialize_map(None)?;
                map.serialize_entry("values", values)?;
                if let Some(p) = probabilities {
                    map.serialize_entry("probabilities", p)?;
                }
                map.end()
            }
            Param::Dist(d) => d.serialize(serializer),
            Param::Nested(children) => {
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry("parameters", children)?;
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Param {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Param, D::Error> {
        let value = Value::deserialize(deserializer)?;
        parse_param(&value).map_err(|issues| D::Error::custom(join_issues(&issues)))
    }
}

impl<'de> Deserialize<'de> for SweepConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<SweepConfig, D::Error> {
        let value = Value::deserialize(deserializer)?;
        parse_sweep_config(&value).map_err(|issues| D::Error::custom(join_issues(&issues)))
    }
}

impl SweepConfig {
    /// The leaves of the parameter tree with their flat names, the names along the path
    /// joined with `.` (`optimizer.lr`), depth first with each level in name order (the
    /// order W&B walks them in). The parser guarantees that no two leaves share a flat name.
    pub fn flat_params(&self) -> Vec<(String, &Param)> {
        let mut out = Vec::new();
        visit_leaves(&self.parameters, &mut Vec::new(), &mut |keys, param| {
            out.push((keys.join("."), param));
        });
        out
    }

    /// Rebuilds a trial's nested parameter object from its values by flat name, the
    /// inverse of [`SweepConfig::flat_params`]: nested parameters become nested objects
    /// (`optimizer.lr` of a nested `optimizer` → `{"optimizer": {"lr": …}}`), while a name
    /// that contains a dot stays one key (`model.lr` declared at the top stays
    /// `{"model.lr": …}`). Keys of `flat` that name no leaf are ignored, and a group none of
    /// whose leaves has a value is left out.
    pub fn nest_params(&self, flat: &Map<String, Value>) -> Map<String, Value> {
        nest_level(&self.parameters, "", flat)
    }

    /// Number of points of the grid: the product over the leaves of the number of values
    /// (1 for a constant, max-min+1 for int_uniform, the arange length for q_uniform);
    /// saturates at `u64::MAX`, and is None when a leaf is continuous.
    pub fn grid_size(&self) -> Option<u64> {
        self.flat_params().iter().try_fold(1u64, |acc, (_, p)| {
            Some(acc.saturating_mul(p.grid_count()?))
        })
    }
}

/// Calls `visit` with every leaf under `params` and the names on the way to it (`keys`
/// holds the names above `params` on entry), depth first in name order.
fn visit_leaves<'a>(
    params: &'a BTreeMap<String, Param>,
    keys: &mut Vec<&'a str>,
    visit: &mut dyn FnMut(&[&'a str], &'a Param),
) {
    for (name, param) in params {
        keys.push(name);
        match param {
            Param::Nested(children) => visit_leaves(children, keys, visit),
            leaf => visit(keys, leaf),
        }
        keys.pop();
    }
}

/// One level of [`SweepConfig::nest_params`]; `prefix` is the flat name of the level.
fn nest_level(
    params: &BTreeMap<String, Param>,
    prefix: &str,
    flat: &Map<String, Value>,
) -> Map<String, Value> {
    let mut out = Map::new();
    for (name, param) in params {
        let flat_name = at(prefix, name);
        let value = match param {
            Param::Nested(children) => {
                let group = nest_level(children, &flat_name, flat);
                if group.is_empty() {
                    continue;
                }
                Value::Object(group)
            }
            _ => match flat.get(&flat_name) {
                Some(v) => v.clone(),
                None => continue,
            },
        };
        out.insert(name.clone(), value);
    }
    out
}

/// Things a valid configuration says that its author probably did not mean, as sentences for
/// people: the value range of every parameter whose bounds are exponents (`log_uniform`,
/// `q_log_uniform`, `inv_log_uniform`, as in W&B), with the `*_values` fix when the bounds
/// look like the values themselves (`min: 0.0001, max: 0.1` samples 1.0001 to 1.105).
pub fn config_warnings(cfg: &SweepConfig) -> Vec<String> {
    let mut out = Vec::new();
    for (name, param) in cfg.flat_params() {
        let Param::Dist(d) = param else { continue };
        let (min, max, fix, low, high) = match *d {
            Distribution::LogUniform { min, max } => {
                (min, max, "log_uniform_values", min.exp(), max.exp())
            }
            Distribution::QLogUniform { min, max, .. } => {
                (min, max, "q_log_uniform_values", min.exp(), max.exp())
            }
            Distribution::InvLogUniform { min, max } => (
                min,
                max,
                "inv_log_uniform_values",
                (-max).exp(),
                (-min).exp(),
            ),
            _ => continue,
        };
        let mut w = format!(
            "parameters.{name}: {} takes exponents, so min {min} and max {max} sample values from {} to {}",
            d.name(),
            short_number(low),
            short_number(high)
        );
        // Bounds spanning a decade or more whose exponents span less than one: the author
        // wrote the values, not their logarithms.
        if min > 0.0 && max / min >= 10.0 && max - min < std::f64::consts::LN_10 {
            w.push_str(&format!(
                "; to sample values from {min} to {max}, use distribution: {fix}"
            ));
        }
        out.push(w);
    }
    out
}

/// A number with five significant digits, for messages.
fn short_number(x: f64) -> String {
    if x != 0.0 && (x.abs() < 1e-4 || x.abs() >= 1e6) {
        format!("{x:.3e}")
    } else {
        let digits = (4 - x.abs().log10().floor() as i32).clamp(0, 12) as usize;
        let s = format!("{x:.digits$}");
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    }
}
