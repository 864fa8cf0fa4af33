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
use std::fmt;

use serde::de::Error as _;
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// The command W&B runs when a config has none.
pub const DEFAULT_COMMAND: [&str; 4] = ["${env}", "${interpreter}", "${program}", "${args}"];

/// Top-level keys that mean something here.
const TOP_LEVEL_KEYS: [&str; 11] = [
    "program",
    "command",
    "method",
    "metric",
    "parameters",
    "early_terminate",
    "run_cap",
    "name",
    "description",
    "project",
    "optuna_config",
];

/// Top-level keys W&B defines for its own service (entity, local controller, Launch);
/// accepted so that W&B files load unchanged, and ignored.
const IGNORED_KEYS: [&str; 6] = [
    "entity",
    "controller",
    "job",
    "image_uri",
    "apiVersion",
    "kind",
];

/// Every key a parameter specification may have.
const SPEC_KEYS: [&str; 12] = [
    "distribution",
    "value",
    "values",
    "probabilities",
    "min",
    "max",
    "q",
    "mu",
    "sigma",
    "a",
    "b",
    "parameters",
];

/// Distribution names, as W&B spells them.
const DISTRIBUTIONS: [&str; 18] = [
    "constant",
    "categorical",
    "categorical_w_probabilities",
    "int_uniform",
    "uniform",
    "q_uniform",
    "log_uniform",
    "log_uniform_values",
    "inv_log_uniform",
    "inv_log_uniform_values",
    "q_log_uniform",
    "q_log_uniform_values",
    "normal",
    "q_normal",
    "log_normal",
    "q_log_normal",
    "beta",
    "q_beta",
];

/// Distributions a grid can enumerate.
const GRID_DISTRIBUTIONS: [&str; 5] = [
    "constant",
    "categorical",
    "categorical_w_probabilities",
    "int_uniform",
    "q_uniform",
];

const METRIC_KEYS: [&str; 5] = ["name", "goal", "target", "impute", "impute_while_running"];
const HYPERBAND_KEYS: [&str; 6] = ["type", "min_iter", "max_iter", "s", "eta", "strict"];
const TPE_KEYS: [&str; 6] = [
    "sampler",
    "n_startup_trials",
    "n_ei_candidates",
    "multivariate",
    "constant_liar",
    "seed",
];

/// Command macros that expand to one item per parameter (or two, for `args_no_equals`).
const LIST_MACROS: [&str; 4] = [
    "args",
    "args_no_equals",
    "args_no_hyphens",
    "args_no_boolean_flags",
];

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
        let mut parser = Parser::default();
        match parser.param(&value, "", false) {
            Some(param) if parser.issues.is_empty() => Ok(param),
            _ => Err(D::Error::custom(join_issues(&parser.finish()))),
        }
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

/// One problem in a sweep configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigIssue {
    /// Where, as dotted keys from the top (`parameters.lr.max`, `command[2]`); empty for
    /// the document itself.
    pub path: String,
    /// A short sentence that says what is wrong.
    pub message: String,
}

impl ConfigIssue {
    fn new(path: impl Into<String>, message: impl Into<String>) -> ConfigIssue {
        ConfigIssue {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for ConfigIssue {}

fn join_issues(issues: &[ConfigIssue]) -> String {
    let list: Vec<String> = issues.iter().map(ToString::to_string).collect();
    list.join("; ")
}

/// Checks a sweep configuration (a W&B sweep file read into JSON) and fills in W&B's
/// defaults; on failure returns every problem found, in document order.
pub fn parse_sweep_config(v: &Value) -> Result<SweepConfig, Vec<ConfigIssue>> {
    let Some(top) = v.as_object() else {
        let message = format!(
            "a sweep configuration must be a mapping, not {}",
            json_kind(v)
        );
        return Err(vec![ConfigIssue::new("", message)]);
    };
    let mut p = Parser::default();
    p.top_level_keys(top);
    let method = p.method(top.get("method"));
    let grid = method == Some(SearchMethod::Grid);
    let parameters = p.parameters(top.get("parameters"), grid);
    let metric = p.optional(top, "metric", Parser::metric);
    let early_terminate = p.optional(top, "early_terminate", Parser::hyperband);
    let run_cap = p.optional(top, "run_cap", |p, v, path| p.uint(v, path, 1));
    let command = match top.get("command") {
        None => Some(DEFAULT_COMMAND.map(String::from).to_vec()),
        Some(v) => p.command(v),
    };
    let program = p.optional(top, "program", Parser::string);
    let name = p.optional(top, "name", Parser::string);
    let description = p.optional(top, "description", Parser::string);
    let project = p.optional(top, "project", Parser::string);
    let tpe = match top.get("optuna_config") {
        None => Some(TpeConfig::default()),
        Some(v) => p.tpe(v),
    };
    p.cross_checks(top, method);
    let build = || {
        Some(SweepConfig {
            name: name?,
            description: description?,
            project: project?,
            program: program?,
            command: command?,
            method: method?,
            metric: metric?,
            parameters: parameters?,
            early_terminate: early_terminate?,
            run_cap: run_cap?,
            tpe: tpe?,
        })
    };
    match build() {
        Some(cfg) if p.issues.is_empty() => Ok(cfg),
        _ => Err(p.finish()),
    }
}

/// Collects problems while walking a config.
#[derive(Default)]
struct Parser {
    issues: Vec<ConfigIssue>,
}

impl Parser {
    fn issue(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.issues.push(ConfigIssue::new(path, message));
    }

    /// The problems; never empty, since it is only called when something failed.
    fn finish(mut self) -> Vec<ConfigIssue> {
        if self.issues.is_empty() {
            self.issue("", "the sweep configuration is invalid");
        }
        self.issues
    }

    /// Some(None) when the key is absent, None when it is present and wrong.
    fn optional<T>(
        &mut self,
        top: &Map<String, Value>,
        key: &str,
        read: impl FnOnce(&mut Parser, &Value, &str) -> Option<T>,
    ) -> Option<Option<T>> {
        match top.get(key) {
            None => Some(None),
            Some(v) => read(self, v, key).map(Some),
        }
    }

    fn top_level_keys(&mut self, top: &Map<String, Value>) {
        for key in top.keys() {
            let k = key.as_str();
            if TOP_LEVEL_KEYS.contains(&k) || IGNORED_KEYS.contains(&k) {
                continue;
            }
            let message = match k {
                "metrics" => "multi-objective `metrics` are not supported; use one `metric`".into(),
                "scheduler" => "custom schedulers are not supported; remove `scheduler`".into(),
                _ => unknown_key_message(k, &TOP_LEVEL_KEYS),
            };
            self.issue(k, message);
        }
    }

    fn unknown_keys(&mut self, m: &Map<String, Value>, path: &str, allowed: &[&str]) {
        for key in m.keys() {
            if !allowed.contains(&key.as_str()) {
                let message = unknown_key_message(key, allowed);
                self.issue(at(path, key), message);
            }
        }
    }

    fn cross_checks(&mut self, top: &Map<String, Value>, method: Option<SearchMethod>) {
        let has_metric = top.contains_key("metric");
        if method == Some(SearchMethod::Bayes) && !has_metric {
            self.issue(
                "metric",
                "missing; bayes search needs a metric to optimize, e.g. `metric: {name: val_loss, goal: minimize}`",
            );
        }
        if top.contains_key("early_terminate") && !has_metric {
            self.issue(
                "early_terminate",
                "hyperband compares runs on a metric; add `metric`",
            );
        }
    }

    fn method(&mut self, v: Option<&Value>) -> Option<SearchMethod> {
        const HINT: &str = "use grid, random or bayes";
        let Some(v) = v else {
            self.issue("method", format!("missing; {HINT}"));
            return None;
        };
        match v.as_str() {
            Some("grid") => Some(SearchMethod::Grid),
            Some("random") => Some(SearchMethod::Random),
            Some("bayes") => Some(SearchMethod::Bayes),
            Some("custom") => {
                self.issue("method", format!("custom is not supported; {HINT}"));
                None
            }
            Some(other) => {
                let message = match closest(other, &["grid", "random", "bayes"]) {
                    Some(s) => format!("unknown method `{other}`; did you mean {s}?"),
                    None => format!("unknown method `{other}`; {HINT}"),
                };
                self.issue("method", message);
                None
            }
            None => {
                self.issue(
                    "method",
                    format!("must be a string, not {}; {HINT}", json_kind(v)),
                );
                None
            }
        }
    }

    fn metric(&mut self, v: &Value, path: &str) -> Option<MetricGoal> {
        let m = self.object(v, path)?;
        self.unknown_keys(m, path, &METRIC_KEYS);
        let name = match m.get("name") {
            None => {
                self.issue(at(path, "name"), "missing; name the metric to optimize");
                None
            }
            Some(v) => self.string(v, &at(path, "name")).filter(|name| {
                !name.is_empty() || self.fail(at(path, "name"), "must not be empty")
            }),
        };
        let goal = match m.get("goal") {
            None => Some(Goal::Minimize),
            Some(v) => self.goal(v, &at(path, "goal")),
        };
        let target = match m.get("target") {
            None => Some(None),
            Some(v) => self.number(v, &at(path, "target")).map(Some),
        };
        self.impute(m, path);
        Some(MetricGoal {
            name: name?,
            goal: goal?,
            target: target?,
        })
    }

    /// Records an issue and returns false, for use in filters.
    fn fail(&mut self, path: String, message: &str) -> bool {
        self.issue(path, message);
        false
    }

    fn goal(&mut self, v: &Value, path: &str) -> Option<Goal> {
        match v.as_str() {
            Some("minimize") => Some(Goal::Minimize),
            Some("maximize") => Some(Goal::Maximize),
            _ => {
                let hint = v
                    .as_str()
                    .and_then(|s| closest(s, &["minimize", "maximize"]))
                    .map_or(String::new(), |s| format!("; did you mean {s}?"));
                self.issue(path, format!("must be minimize or maximize{hint}"));
                None
            }
        }
    }

    /// W&B's `impute` options only matter to W&B's own bayes search: checked, then ignored.
    fn impute(&mut self, m: &Map<String, Value>, path: &str) {
        if let Some(v) = m.get("impute")
            && !matches!(v.as_str(), Some("latest" | "best" | "worst"))
        {
            self.issue(at(path, "impute"), "must be latest, best or worst");
        }
        if let Some(v) = m.get("impute_while_running")
            && !matches!(v, Value::Bool(false))
            && !matches!(v.as_str(), Some("latest" | "best" | "worst" | "false"))
        {
            self.issue(
                at(path, "impute_while_running"),
                "must be latest, best, worst or false",
            );
        }
    }

    fn hyperband(&mut self, v: &Value, path: &str) -> Option<Hyperband> {
        let m = self.object(v, path)?;
        self.unknown_keys(m, path, &HYPERBAND_KEYS);
        let kind_ok = match m.get("type") {
            None => self.fail(at(path, "type"), "missing; write `type: hyperband`"),
            Some(t) if t.as_str() == Some("hyperband") => true,
            Some(_) => self.fail(at(path, "type"), "only hyperband is supported"),
        };
        let mut iter = |key: &str| match m.get(key) {
            None => Some(None),
            Some(v) => self.uint(v, &at(path, key), 1).map(Some),
        };
        let (min_iter, max_iter, s) = (iter("min_iter"), iter("max_iter"), iter("s"));
        if !m.contains_key("min_iter") && !m.contains_key("max_iter") {
            self.issue(path, "needs `min_iter`, or `max_iter` and `s`");
        }
        if m.contains_key("max_iter") && !m.contains_key("s") {
            self.issue(
                at(path, "s"),
                "missing; `max_iter` needs `s`, the number of bands",
            );
        }
        let eta = match m.get("eta") {
            None => Some(default_eta()),
            Some(v) => self
                .number(v, &at(path, "eta"))
                .filter(|eta| *eta > 1.0 || self.fail(at(path, "eta"), "must be greater than 1")),
        };
        let strict = match m.get("strict") {
            None => Some(false),
            Some(v) => self.boolean(v, &at(path, "strict")),
        };
        if !kind_ok {
            return None;
        }
        Some(Hyperband {
            min_iter: min_iter?,
            max_iter: max_iter?,
            s: s?,
            eta: eta?,
            strict: strict?,
        })
    }

    fn tpe(&mut self, v: &Value) -> Option<TpeConfig> {
        const PATH: &str = "optuna_config";
        let m = self.object(v, PATH)?;
        self.unknown_keys(m, PATH, &TPE_KEYS);
        let defaults = TpeConfig::default();
        let sampler = match m.get("sampler") {
            None => Some(defaults.sampler),
            Some(v) => {
                let parsed = v.as_str().and_then(Sampler::parse);
                if parsed.is_none() {
                    self.issue(
                        at(PATH, "sampler"),
                        format!(
                            "unsupported sampler {v}: use one of {}",
                            Sampler::NAMES.join(", ")
                        ),
                    );
                }
                parsed
            }
        };
        let mut count = |key: &str, default: usize| match m.get(key) {
            None => Some(default),
            Some(v) => self
                .uint(v, &at(PATH, key), 1)
                .map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
        };
        let n_startup_trials = count("n_startup_trials", defaults.n_startup_trials);
        let n_ei_candidates = count("n_ei_candidates", defaults.n_ei_candidates);
        let mut flag = |key: &str, default: bool| match m.get(key) {
            None => Some(default),
            Some(v) => self.boolean(v, &at(PATH, key)),
        };
        let multivariate = flag("multivariate", defaults.multivariate);
        let constant_liar = flag("constant_liar", defaults.constant_liar);
        let seed = match m.get("seed") {
            None => Some(None),
            Some(v) => self.uint(v, &at(PATH, "seed"), 0).map(Some),
        };
        Some(TpeConfig {
            sampler: sampler?,
            n_startup_trials: n_startup_trials?,
            n_ei_candidates: n_ei_candidates?,
            multivariate: multivariate?,
            constant_liar: constant_liar?,
            seed: seed?,
        })
    }

    fn command(&mut self, v: &Value) -> Option<Vec<String>> {
        const PATH: &str = "command";
        let Some(items) = v.as_array() else {
            self.issue(
                PATH,
                format!(
                    "must be a list, not {}, e.g. [\"${{env}}\", \"python\", \"${{program}}\", \"${{args}}\"]",
                    json_kind(v)
                ),
            );
            return None;
        };
        if items.is_empty() {
            return Some(DEFAULT_COMMAND.map(String::from).to_vec());
        }
        let before = self.issues.len();
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let path = format!("{PATH}[{i}]");
            // W&B's agent runs str() on every item, so YAML numbers and booleans are fine.
            let token = match item {
                Value::String(s) => s.clone(),
                Value::Number(_) | Value::Bool(_) => arg_value(item),
                _ => {
                    self.issue(path, format!("must be a string, not {}", json_kind(item)));
                    continue;
                }
            };
            if let Some(name) = embedded_list_macro(&token) {
                self.issue(
                    path,
                    format!("`${{{name}}}` must be a list item of its own"),
                );
            }
            out.push(token);
        }
        (self.issues.len() == before).then_some(out)
    }

    fn parameters(&mut self, v: Option<&Value>, grid: bool) -> Option<BTreeMap<String, Param>> {
        match v {
            None => {
                self.issue("parameters", "missing; list the hyperparameters to search");
                None
            }
            Some(v) => self.params(v, "parameters", grid),
        }
    }

    /// A `parameters` mapping, at the top or nested.
    fn params(&mut self, v: &Value, path: &str, grid: bool) -> Option<BTreeMap<String, Param>> {
        let m = self.object(v, path)?;
        if m.is_empty() {
            self.issue(path, "must name at least one parameter");
            return None;
        }
        let before = self.issues.len();
        let mut out = BTreeMap::new();
        for (name, spec) in m {
            let param_path = at(path, name);
            if name.is_empty() {
                self.issue(param_path, "a parameter name must not be empty");
                continue;
            }
            if let Some(param) = self.param(spec, &param_path, grid) {
                out.insert(name.clone(), param);
            }
        }
        self.flat_name_collisions(&out, path);
        (self.issues.len() == before).then_some(out)
    }

    /// Two leaves whose flat names are equal (a top-level `model.lr` and a nested `model` →
    /// `lr`) could not be told apart in a trial; the second in flat_params' order is
    /// reported. A group with a collision inside fails its own check and never reaches its
    /// parent's, so each collision is reported once.
    fn flat_name_collisions(&mut self, params: &BTreeMap<String, Param>, path: &str) {
        // Flat name → config path of the first leaf that has it.
        let mut seen: BTreeMap<String, String> = BTreeMap::new();
        visit_leaves(params, &mut Vec::new(), &mut |keys, _| {
            let flat = keys.join(".");
            let leaf_path = at(path, &keys.join(".parameters."));
            match seen.get(&flat) {
                Some(first) => self.issue(
                    leaf_path,
                    format!(
                        "its flat name `{flat}` is also that of `{first}`, so a trial could not tell them apart; rename one of them"
                    ),
                ),
                None => {
                    seen.insert(flat, leaf_path);
                }
            }
        });
    }

    /// One parameter specification; None (with issues recorded) when it is wrong.
    fn param(&mut self, v: &Value, path: &str, grid: bool) -> Option<Param> {
        let before = self.issues.len();
        let param = self.param_spec(v, path, grid);
        if self.issues.len() > before {
            None
        } else {
            param
        }
    }

    fn param_spec(&mut self, v: &Value, path: &str, grid: bool) -> Option<Param> {
        let Some(m) = v.as_object() else {
            let hint = match v {
                Value::Array(_) => format!("write `values: {v}`"),
                _ => format!("write `value: {v}` for a constant"),
            };
            self.issue(
                path,
                format!("must be a mapping, not {}; {hint}", json_kind(v)),
            );
            return None;
        };
        self.unknown_keys(m, path, &SPEC_KEYS);
        if let Some(nested) = m.get("parameters") {
            return self.nested(m, nested, path, grid);
        }
        let both = m.contains_key("value") && m.contains_key("values");
        if both {
            self.issue(path, "give either `value` or `values`, not both");
        }
        let (dist, inferred) = self.distribution_name(m, path)?;
        self.inapplicable_keys(m, path, dist, inferred, both);
        if grid && !GRID_DISTRIBUTIONS.contains(&dist) {
            self.issue(
                path,
                format!(
                    "grid search needs `values`, int_uniform or q_uniform; {dist} is continuous"
                ),
            );
        }
        match dist {
            "constant" => self.constant(m, path),
            "categorical" | "categorical_w_probabilities" => self.choice(m, path, dist, grid),
            _ => self.distribution(m, path, dist).map(Param::Dist),
        }
    }

    fn nested(
        &mut self,
        m: &Map<String, Value>,
        nested: &Value,
        path: &str,
        grid: bool,
    ) -> Option<Param> {
        let others: Vec<String> = m
            .keys()
            .filter(|k| *k != "parameters" && SPEC_KEYS.contains(&k.as_str()))
            .map(|k| format!("`{k}`"))
            .collect();
        if !others.is_empty() {
            self.issue(
                path,
                format!(
                    "nested `parameters` cannot be mixed with other keys ({})",
                    others.join(", ")
                ),
            );
        }
        let children = self.params(nested, &at(path, "parameters"), grid)?;
        Some(Param::Nested(children))
    }

    /// The named distribution, or the one W&B infers; the flag says it was inferred.
    fn distribution_name(
        &mut self,
        m: &Map<String, Value>,
        path: &str,
    ) -> Option<(&'static str, bool)> {
        if let Some(v) = m.get("distribution") {
            let dpath = at(path, "distribution");
            let name = self.string(v, &dpath)?;
            return match DISTRIBUTIONS.iter().find(|d| **d == name) {
                Some(d) => Some((*d, false)),
                None => {
                    let message = match closest(&name, &DISTRIBUTIONS) {
                        Some(s) => format!("unknown distribution `{name}`; did you mean {s}?"),
                        None => format!(
                            "unknown distribution `{name}`; use one of {}",
                            DISTRIBUTIONS.join(", ")
                        ),
                    };
                    self.issue(dpath, message);
                    None
                }
            };
        }
        self.infer_distribution(m, path).map(|d| (d, true))
    }

    /// W&B's inference: values → categorical, value → constant, integer min and max →
    /// int_uniform, other min and max → uniform; anything else must be named.
    fn infer_distribution(&mut self, m: &Map<String, Value>, path: &str) -> Option<&'static str> {
        if m.contains_key("values") {
            return Some(if m.contains_key("probabilities") {
                "categorical_w_probabilities"
            } else {
                "categorical"
            });
        }
        if m.contains_key("value") {
            return Some("constant");
        }
        match (m.get("min"), m.get("max")) {
            (Some(min), Some(max)) => {
                let int = |v: &Value| v.is_i64() || v.is_u64();
                return Some(if int(min) && int(max) {
                    "int_uniform"
                } else {
                    "uniform"
                });
            }
            (Some(_), None) => self.issue(at(path, "max"), "missing; a range needs min and max"),
            (None, Some(_)) => self.issue(at(path, "min"), "missing; a range needs min and max"),
            (None, None) => {
                let hint = if ["mu", "sigma", "a", "b", "q"]
                    .iter()
                    .any(|k| m.contains_key(*k))
                {
                    "name the `distribution` (e.g. normal, beta)"
                } else {
                    "give `values`, `value`, `min` and `max`, or a `distribution`"
                };
                self.issue(path, format!("cannot tell the distribution; {hint}"));
            }
        }
        None
    }

    /// Keys that are valid somewhere but not for this distribution.
    fn inapplicable_keys(
        &mut self,
        m: &Map<String, Value>,
        path: &str,
        dist: &str,
        inferred: bool,
        value_and_values: bool,
    ) {
        let allowed = keys_of(dist);
        for key in m.keys() {
            let k = key.as_str();
            let reported = value_and_values && (k == "value" || k == "values");
            if k == "distribution" || reported || allowed.contains(&k) || !SPEC_KEYS.contains(&k) {
                continue;
            }
            let message = if inferred {
                format!(
                    "does not apply to {dist} (inferred from the other keys); set `distribution`"
                )
            } else {
                format!("does not apply to {dist}")
            };
            self.issue(at(path, k), message);
        }
    }

    fn constant(&mut self, m: &Map<String, Value>, path: &str) -> Option<Param> {
        match m.get("value") {
            Some(v) => Some(Param::Fixed(v.clone())),
            None => {
                self.issue(at(path, "value"), "missing; constant needs `value`");
                None
            }
        }
    }

    fn choice(
        &mut self,
        m: &Map<String, Value>,
        path: &str,
        dist: &str,
        grid: bool,
    ) -> Option<Param> {
        let values = match m.get("values") {
            None => {
                self.issue(
                    at(path, "values"),
                    format!("missing; {dist} needs `values`"),
                );
                None
            }
            Some(v) => self.values(v, &at(path, "values")),
        };
        let count = values.as_ref().map(Vec::len);
        let probabilities = match m.get("probabilities") {
            None if dist == "categorical_w_probabilities" => {
                let message = format!("missing; {dist} needs `probabilities`");
                self.issue(at(path, "probabilities"), message);
                None
            }
            None => Some(None),
            Some(p) => self.probabilities(p, path, count, grid).map(Some),
        };
        Some(Param::Choice {
            values: values?,
            probabilities: probabilities?,
        })
    }

    fn values(&mut self, v: &Value, path: &str) -> Option<Vec<Value>> {
        match v.as_array() {
            Some(list) if list.is_empty() => {
                self.issue(path, "must not be empty");
                None
            }
            Some(list) => Some(list.clone()),
            None => {
                self.issue(
                    path,
                    format!("must be a list, not {}; write `[{v}]`", json_kind(v)),
                );
                None
            }
        }
    }

    fn probabilities(
        &mut self,
        v: &Value,
        path: &str,
        count: Option<usize>,
        grid: bool,
    ) -> Option<Vec<f64>> {
        let ppath = at(path, "probabilities");
        if grid {
            self.issue(
                &ppath,
                "grid search tries every value; remove `probabilities`",
            );
        }
        let Some(list) = v.as_array() else {
            self.issue(
                ppath,
                format!("must be a list of numbers, not {}", json_kind(v)),
            );
            return None;
        };
        let before = self.issues.len();
        let mut out = Vec::with_capacity(list.len());
        for (i, item) in list.iter().enumerate() {
            let ipath = format!("{ppath}[{i}]");
            if let Some(p) = self.number(item, &ipath) {
                if (0.0..=1.0).contains(&p) {
                    out.push(p);
                } else {
                    self.issue(ipath, "must be between 0 and 1");
                }
            }
        }
        if let Some(n) = count
            && n != list.len()
        {
            let message = format!("has {} entries but `values` has {n}", list.len());
            self.issue(&ppath, message);
        }
        let sum: f64 = out.iter().sum();
        if self.issues.len() == before && (sum - 1.0).abs() > 1e-6 {
            self.issue(&ppath, format!("must add up to 1, not {sum}"));
        }
        Some(out)
    }

    fn distribution(
        &mut self,
        m: &Map<String, Value>,
        path: &str,
        dist: &str,
    ) -> Option<Distribution> {
        use Distribution as D;
        let values = dist.ends_with("_values");
        Some(match dist {
            "int_uniform" => {
                let (min, max) = self.int_range(m, path);
                D::IntUniform {
                    min: min?,
                    max: max?,
                }
            }
            "uniform"
            | "log_uniform"
            | "log_uniform_values"
            | "inv_log_uniform"
            | "inv_log_uniform_values" => {
                let (min, max) = self.range(m, path, dist, values);
                let (min, max) = (min?, max?);
                match dist {
                    "uniform" => D::Uniform { min, max },
                    "log_uniform" => D::LogUniform { min, max },
                    "log_uniform_values" => D::LogUniformValues { min, max },
                    "inv_log_uniform" => D::InvLogUniform { min, max },
                    _ => D::InvLogUniformValues { min, max },
                }
            }
            "q_uniform" | "q_log_uniform" | "q_log_uniform_values" => {
                let (min, max) = self.range(m, path, dist, values);
                let q = self.positive(m, path, "q");
                let (min, max, q) = (min?, max?, q?);
                match dist {
                    "q_uniform" => D::QUniform { min, max, q },
                    "q_log_uniform" => D::QLogUniform { min, max, q },
                    _ => D::QLogUniformValues { min, max, q },
                }
            }
            "normal" | "q_normal" | "log_normal" | "q_log_normal" => self.normal(m, path, dist)?,
            _ => self.beta(m, path, dist)?,
        })
    }

    fn normal(&mut self, m: &Map<String, Value>, path: &str, dist: &str) -> Option<Distribution> {
        let mu = match m.get("mu") {
            None => Some(0.0),
            Some(v) => self.number(v, &at(path, "mu")),
        };
        let sigma = self.positive(m, path, "sigma");
        let q = self.positive(m, path, "q");
        let (mu, sigma, q) = (mu?, sigma?, q?);
        Some(match dist {
            "normal" => Distribution::Normal { mu, sigma },
            "q_normal" => Distribution::QNormal { mu, sigma, q },
            "log_normal" => Distribution::LogNormal { mu, sigma },
            _ => Distribution::QLogNormal { mu, sigma, q },
        })
    }

    fn beta(&mut self, m: &Map<String, Value>, path: &str, dist: &str) -> Option<Distribution> {
        let a = self.positive(m, path, "a");
        let b = self.positive(m, path, "b");
        let q = self.positive(m, path, "q");
        let (a, b, q) = (a?, b?, q?);
        Some(match dist {
            "beta" => Distribution::Beta { a, b },
            _ => Distribution::QBeta { a, b, q },
        })
    }

    /// A key that defaults to 1 and must be greater than 0 (q, sigma, a, b).
    fn positive(&mut self, m: &Map<String, Value>, path: &str, key: &str) -> Option<f64> {
        let Some(v) = m.get(key) else {
            return Some(1.0);
        };
        let kpath = at(path, key);
        let x = self.number(v, &kpath)?;
        if x > 0.0 {
            Some(x)
        } else {
            self.issue(kpath, "must be greater than 0");
            None
        }
    }

    /// min and max as numbers, min < max; `values` distributions also need min > 0.
    fn range(
        &mut self,
        m: &Map<String, Value>,
        path: &str,
        dist: &str,
        values: bool,
    ) -> (Option<f64>, Option<f64>) {
        let mut bound = |key: &str| match m.get(key) {
            None => {
                self.issue(
                    at(path, key),
                    format!("missing; {dist} needs `min` and `max`"),
                );
                None
            }
            Some(v) => self.number(v, &at(path, key)),
        };
        let (min, max) = (bound("min"), bound("max"));
        if values && min.is_some_and(|x| x <= 0.0) {
            let message = format!("must be greater than 0 ({dist} takes values, not exponents)");
            self.issue(at(path, "min"), message);
        }
        if let (Some(lo), Some(hi)) = (min, max)
            && lo >= hi
        {
            self.issue(at(path, "max"), "must be greater than min");
        }
        (min, max)
    }

    fn int_range(&mut self, m: &Map<String, Value>, path: &str) -> (Option<i64>, Option<i64>) {
        let mut bound = |key: &str| match m.get(key) {
            None => {
                self.issue(at(path, key), "missing; int_uniform needs `min` and `max`");
                None
            }
            Some(v) => self.integer(v, &at(path, key)),
        };
        let (min, max) = (bound("min"), bound("max"));
        if let (Some(lo), Some(hi)) = (min, max)
            && lo >= hi
        {
            self.issue(at(path, "max"), "must be greater than min");
        }
        (min, max)
    }

    fn object<'v>(&mut self, v: &'v Value, path: &str) -> Option<&'v Map<String, Value>> {
        let m = v.as_object();
        if m.is_none() {
            self.issue(path, format!("must be a mapping, not {}", json_kind(v)));
        }
        m
    }

    fn string(&mut self, v: &Value, path: &str) -> Option<String> {
        match v {
            Value::String(s) => Some(s.clone()),
            _ => {
                self.issue(path, format!("must be a string, not {}", json_kind(v)));
                None
            }
        }
    }

    fn boolean(&mut self, v: &Value, path: &str) -> Option<bool> {
        match v {
            Value::Bool(b) => Some(*b),
            Value::String(s) if matches!(s.as_str(), "true" | "false") => {
                self.issue(path, "is a string; write true or false without quotes");
                None
            }
            _ => {
                self.issue(path, format!("must be true or false, not {}", json_kind(v)));
                None
            }
        }
    }

    fn number(&mut self, v: &Value, path: &str) -> Option<f64> {
        match v {
            Value::Number(n) => n.as_f64(),
            _ => {
                self.not_a_number(v, path, "a number");
                None
            }
        }
    }

    /// An integer; a float without a fraction counts, as it does for JSON Schema.
    fn integer(&mut self, v: &Value, path: &str) -> Option<i64> {
        let Value::Number(n) = v else {
            self.not_a_number(v, path, "a whole number");
            return None;
        };
        if let Some(i) = n.as_i64() {
            return Some(i);
        }
        match n.as_f64() {
            Some(x) if x.fract() == 0.0 && x.abs() < 9.0e18 => Some(x as i64),
            Some(x) if x.fract() == 0.0 => {
                self.issue(path, "is too large");
                None
            }
            _ => {
                self.issue(path, "must be a whole number");
                None
            }
        }
    }

    /// A whole number of at least `min`.
    fn uint(&mut self, v: &Value, path: &str, min: u64) -> Option<u64> {
        let small = |p: &mut Parser| {
            let message = if min == 1 {
                "must be a positive whole number".to_string()
            } else {
                format!("must be at least {min}")
            };
            p.issue(path, message);
            None
        };
        if let Some(u) = v.as_u64() {
            return if u >= min { Some(u) } else { small(self) };
        }
        match v.as_f64() {
            Some(x) if x < 0.0 => small(self),
            Some(x) if x.fract() == 0.0 && x < 1.8e19 => {
                if x as u64 >= min {
                    Some(x as u64)
                } else {
                    small(self)
                }
            }
            Some(_) => {
                self.issue(path, "must be a whole number");
                None
            }
            None => {
                self.not_a_number(v, path, "a whole number");
                None
            }
        }
    }

    fn not_a_number(&mut self, v: &Value, path: &str, what: &str) {
        let numeric_string = v
            .as_str()
            .and_then(|s| s.trim().parse::<f64>().ok())
            .is_some_and(f64::is_finite);
        let message = if numeric_string {
            "is a string; write the number without quotes".to_string()
        } else {
            format!("must be {what}, not {}", json_kind(v))
        };
        self.issue(path, message);
    }
}

/// The keys a distribution takes besides `distribution`.
fn keys_of(dist: &str) -> &'static [&'static str] {
    match dist {
        "constant" => &["value"],
        "categorical" | "categorical_w_probabilities" => &["values", "probabilities"],
        "q_uniform" | "q_log_uniform" | "q_log_uniform_values" => &["min", "max", "q"],
        "normal" | "log_normal" => &["mu", "sigma"],
        "q_normal" | "q_log_normal" => &["mu", "sigma", "q"],
        "beta" => &["a", "b"],
        "q_beta" => &["a", "b", "q"],
        _ => &["min", "max"],
    }
}

fn at(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// What kind of JSON value this is, as a phrase for error messages ("a list", "null", …).
pub fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

fn unknown_key_message(key: &str, allowed: &[&str]) -> String {
    match closest(key, allowed) {
        Some(s) => format!("unknown key; did you mean `{s}`?"),
        None => {
            let list: Vec<String> = allowed.iter().map(|k| format!("`{k}`")).collect();
            format!("unknown key; expected one of {}", list.join(", "))
        }
    }
}

/// The candidate a typo most likely meant (at most two edits away, ignoring case).
fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let word = word.to_lowercase();
    candidates
        .iter()
        .map(|c| (edit_distance(&word, c), *c))
        .filter(|(d, c)| *d <= 2 && *d < c.len() / 2 + 1)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = Vec::with_capacity(b.len() + 1);
        cur.push(i + 1);
        for (j, cb) in b.iter().enumerate() {
            let substitute = prev[j] + usize::from(ca != *cb);
            cur.push(substitute.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// What an agent needs besides the config to build a trial's command.
#[derive(Clone, Copy)]
pub struct CommandContext<'a> {
    /// Substituted for `${env}`, e.g. `/usr/bin/env`; empty drops the item (W&B leaves it
    /// out on Windows).
    pub env: &'a str,
    /// Substituted for `${interpreter}`, e.g. `python3`.
    pub interpreter: &'a str,
    /// Path of the file holding the parameters as JSON, for `${args_json_file}`; the caller
    /// writes it.
    pub args_json_file: &'a str,
    /// Looks up environment variables for `${envvar:NAME}`.
    pub envvar: &'a dyn Fn(&str) -> Option<String>,
}

/// Expands the config's command for one trial, with W&B's macros.
///
/// `params` is the trial's nested parameter object (see [`SweepConfig::nest_params`]);
/// parameters are passed per top-level key, sorted by name (W&B's order), so a top-level
/// `model.lr` is `model.lr=…`, and nested objects and lists are compact JSON. Values print as W&B's Python agent prints them: strings raw, `True`/`False`,
/// `None`, floats in Python's shortest form (`0.001`, `1e-05`, `3.0`).
///
/// An item that is exactly a macro expands as follows:
/// - `${env}`, `${interpreter}`, `${program}`: the context's values and the config's program
///   (an error when the config has none). `${interpreter}` is kept whatever the program is,
///   as W&B's agent does, so a script that is not Python needs its own `command`.
/// - `${args}`: `--name=value` per parameter; `${args_no_equals}`: `--name`, `value`;
///   `${args_no_hyphens}`: `name=value`; `${args_no_boolean_flags}`: like `${args}`, but
///   true is a bare `--name` and false is left out.
/// - `${args_json}`: the parameters as one JSON argument; `${args_json_file}`: its path.
/// - `${envvar:NAME}`: the variable's value; an error when it is not set (W&B would pass
///   the variable's name instead).
/// - any other `${...}`: nothing, as in W&B.
///
/// Inside a longer item, the single-valued macros above are substituted as text
/// (`--config=${args_json_file}`), the `args` lists are an error, and other `${...}` text
/// stays as written.
pub fn build_command(
    cfg: &SweepConfig,
    params: &Map<String, Value>,
    ctx: &CommandContext,
) -> Result<Vec<String>, String> {
    let mut sorted: Vec<(&String, &Value)> = params.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let mut out = Vec::new();
    for token in &cfg.command {
        if let Some(name) = whole_macro(token) {
            if let Some(items) = list_macro(name, &sorted) {
                out.extend(items);
                continue;
            }
            let dropped = (name == "env" && ctx.env.is_empty())
                || !(is_scalar_macro(name) || name.starts_with("envvar:"));
            if dropped {
                continue;
            }
        }
        out.push(substitute(token, cfg, &sorted, ctx)?);
    }
    Ok(out)
}

/// The macro name when the whole item is `${name}`.
fn whole_macro(token: &str) -> Option<&str> {
    let inner = token.strip_prefix("${")?.strip_suffix('}')?;
    (!inner.contains('}')).then_some(inner)
}

fn is_scalar_macro(name: &str) -> bool {
    matches!(
        name,
        "env" | "interpreter" | "program" | "args_json" | "args_json_file"
    )
}

/// The name of a list macro used inside a longer item.
fn embedded_list_macro(token: &str) -> Option<&'static str> {
    if whole_macro(token).is_some_and(|name| LIST_MACROS.contains(&name)) {
        return None;
    }
    LIST_MACROS
        .iter()
        .find(|name| token.contains(&format!("${{{name}}}")))
        .copied()
}

fn list_macro(name: &str, params: &[(&String, &Value)]) -> Option<Vec<String>> {
    let items = match name {
        "args" => params
            .iter()
            .map(|(k, v)| format!("--{k}={}", arg_value(v)))
            .collect(),
        "args_no_hyphens" => params
            .iter()
            .map(|(k, v)| format!("{k}={}", arg_value(v)))
            .collect(),
        "args_no_equals" => params
            .iter()
            .flat_map(|(k, v)| [format!("--{k}"), arg_value(v)])
            .collect(),
        "args_no_boolean_flags" => params
            .iter()
            .filter_map(|(k, v)| match v {
                Value::Bool(true) => Some(format!("--{k}")),
                Value::Bool(false) => None,
                _ => Some(format!("--{k}={}", arg_value(v))),
            })
            .collect(),
        _ => return None,
    };
    Some(items)
}

/// Replaces every single-valued macro in an item with its text.
fn substitute(
    token: &str,
    cfg: &SweepConfig,
    params: &[(&String, &Value)],
    ctx: &CommandContext,
) -> Result<String, String> {
    let mut out = String::with_capacity(token.len());
    let mut rest = token;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            break;
        };
        out.push_str(&rest[..start]);
        let name = &after[..end];
        match macro_text(name, cfg, params, ctx)? {
            Some(text) => out.push_str(&text),
            None => out.push_str(&rest[start..start + 2 + end + 1]),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The text of a single-valued macro; None for text that is not one.
fn macro_text(
    name: &str,
    cfg: &SweepConfig,
    params: &[(&String, &Value)],
    ctx: &CommandContext,
) -> Result<Option<String>, String> {
    if LIST_MACROS.contains(&name) {
        return Err(format!("`${{{name}}}` must be a command item of its own"));
    }
    if let Some(var) = name.strip_prefix("envvar:") {
        return match (ctx.envvar)(var) {
            Some(value) => Ok(Some(value)),
            None => Err(format!(
                "environment variable {var} is not set (the command uses ${{envvar:{var}}})"
            )),
        };
    }
    Ok(Some(match name {
        "env" => ctx.env.to_string(),
        "interpreter" => ctx.interpreter.to_string(),
        "program" => cfg
            .program
            .clone()
            .ok_or("the command uses ${program} but the sweep has no `program`")?,
        "args_json" => {
            let object: BTreeMap<&String, &Value> = params.iter().copied().collect();
            serde_json::to_string(&object).map_err(|e| e.to_string())?
        }
        "args_json_file" => ctx.args_json_file.to_string(),
        _ => return Ok(None),
    }))
}

/// A value as W&B's agent writes it on a command line (Python's `str()`), except that
/// objects and lists are compact JSON.
fn arg_value(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Null => "None".into(),
        Value::Number(n) if n.is_f64() => n.as_f64().map_or_else(|| n.to_string(), python_float),
        Value::Number(n) => n.to_string(),
        Value::Array(_) | Value::Object(_) => v.to_string(),
    }
}

/// Python's `repr` of a float: the shortest digits that round-trip, in scientific notation
/// below 1e-4 and from 1e16 (`1e-05`, `1e+16`), otherwise positional with at least one
/// fractional digit (`3.0`).
fn python_float(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf" } else { "-inf" }.into();
    }
    if x == 0.0 {
        return if x.is_sign_negative() { "-0.0" } else { "0.0" }.into();
    }
    // Rust's `{:e}` gives the same shortest round-trip digits, e.g. "-1.25e-5".
    let sci = format!("{x:e}");
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    if !(-4..16).contains(&exponent) {
        let (first, rest) = digits.split_at(1);
        let fraction = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let esign = if exponent < 0 { '-' } else { '+' };
        return format!("{sign}{first}{fraction}e{esign}{:02}", exponent.abs());
    }
    if exponent < 0 {
        let zeros = "0".repeat((-exponent - 1) as usize);
        return format!("{sign}0.{zeros}{digits}");
    }
    let point = exponent as usize + 1;
    if digits.len() <= point {
        let zeros = "0".repeat(point - digits.len());
        format!("{sign}{digits}{zeros}.0")
    } else {
        format!("{sign}{}.{}", &digits[..point], &digits[point..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> SweepConfig {
        match parse_sweep_config(&v) {
            Ok(cfg) => cfg,
            Err(issues) => panic!("unexpected issues: {}", join_issues(&issues)),
        }
    }

    fn issues(v: Value) -> Vec<ConfigIssue> {
        match parse_sweep_config(&v) {
            Ok(cfg) => panic!("expected issues, got {cfg:?}"),
            Err(issues) => issues,
        }
    }

    /// Asserts an issue at `path` whose message contains `needle`.
    fn assert_issue(issues: &[ConfigIssue], path: &str, needle: &str) {
        assert!(
            issues
                .iter()
                .any(|i| i.path == path && i.message.contains(needle)),
            "no issue at `{path}` containing `{needle}` in:\n{}",
            issues
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }

    fn dist(cfg: &SweepConfig, name: &str) -> Distribution {
        match &cfg.parameters[name] {
            Param::Dist(d) => *d,
            other => panic!("{name} is not a distribution: {other:?}"),
        }
    }

    /// W&B's nested-parameters example, as a grid.
    fn grid_example() -> Value {
        json!({
            "program": "train.py",
            "method": "grid",
            "metric": {"name": "val_loss", "goal": "minimize"},
            "parameters": {
                "epochs": {"value": 10},
                "batch_size": {"values": [16, 32, 64]},
                "layers": {"min": 1, "max": 3},
                "width": {"distribution": "q_uniform", "min": 32, "max": 128, "q": 32},
                "optimizer": {"parameters": {
                    "name": {"values": ["adam", "sgd"]},
                    "lr": {"values": [0.001, 0.01]},
                    "momentum": {"value": 0.9},
                }},
            },
        })
    }

    #[test]
    fn grid_example_with_nested_parameters() {
        let cfg = parse(grid_example());
        assert_eq!(cfg.method, SearchMethod::Grid);
        assert_eq!(cfg.program.as_deref(), Some("train.py"));
        assert_eq!(cfg.command, DEFAULT_COMMAND.map(String::from).to_vec());
        let metric = cfg.metric.clone().unwrap();
        assert_eq!(
            (metric.name.as_str(), metric.goal),
            ("val_loss", Goal::Minimize)
        );
        let names: Vec<String> = cfg.flat_params().into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            [
                "batch_size",
                "epochs",
                "layers",
                "optimizer.lr",
                "optimizer.momentum",
                "optimizer.name",
                "width"
            ]
        );
        assert_eq!(
            dist(&cfg, "layers"),
            Distribution::IntUniform { min: 1, max: 3 }
        );
        let flat = cfg.flat_params();
        assert_eq!(*flat[4].1, Param::Fixed(json!(0.9)));
        // 3 batch sizes × 1 × 3 layers × 2 lr × 1 × 2 names × 3 widths (32, 64, 96).
        assert_eq!(cfg.grid_size(), Some(108));
        assert_eq!(cfg.tpe, TpeConfig::default());
        assert!(cfg.tpe.constant_liar);
    }

    #[test]
    fn random_example_with_every_distribution() {
        let cfg = parse(json!({
            "method": "random",
            "command": ["${env}", "python3", "${program}", "${args}"],
            "program": "train.py",
            "parameters": {
                "c": {"distribution": "constant", "value": "x"},
                "cat": {"distribution": "categorical", "values": [1, "two", null]},
                "catp": {"distribution": "categorical_w_probabilities", "values": [1, 2], "probabilities": [0.25, 0.75]},
                "iu": {"distribution": "int_uniform", "min": -3, "max": 3},
                "u": {"distribution": "uniform", "min": 0, "max": 1},
                "qu": {"distribution": "q_uniform", "min": 0, "max": 100},
                "lu": {"distribution": "log_uniform", "min": -9.2, "max": -2.3},
                "luv": {"distribution": "log_uniform_values", "min": 1e-4, "max": 0.1},
                "ilu": {"distribution": "inv_log_uniform", "min": 0, "max": 3},
                "iluv": {"distribution": "inv_log_uniform_values", "min": 0.5, "max": 20},
                "qlu": {"distribution": "q_log_uniform", "min": 0, "max": 5, "q": 2},
                "qluv": {"distribution": "q_log_uniform_values", "min": 1, "max": 1024, "q": 8},
                "n": {"distribution": "normal"},
                "qn": {"distribution": "q_normal", "mu": 10, "sigma": 2, "q": 0.5},
                "ln": {"distribution": "log_normal", "mu": -1},
                "qln": {"distribution": "q_log_normal", "sigma": 0.5},
                "be": {"distribution": "beta", "a": 2},
                "qbe": {"distribution": "q_beta", "a": 2, "b": 5, "q": 0.1},
            },
        }));
        use Distribution as D;
        assert_eq!(cfg.method, SearchMethod::Random);
        assert_eq!(cfg.command[1], "python3");
        assert_eq!(cfg.parameters["c"], Param::Fixed(json!("x")));
        assert_eq!(
            cfg.parameters["cat"],
            Param::Choice {
                values: vec![json!(1), json!("two"), Value::Null],
                probabilities: None
            }
        );
        assert_eq!(
            cfg.parameters["catp"],
            Param::Choice {
                values: vec![json!(1), json!(2)],
                probabilities: Some(vec![0.25, 0.75])
            }
        );
        assert_eq!(dist(&cfg, "iu"), D::IntUniform { min: -3, max: 3 });
        // An explicit uniform keeps integer bounds as reals.
        assert_eq!(dist(&cfg, "u"), D::Uniform { min: 0.0, max: 1.0 });
        assert_eq!(
            dist(&cfg, "qu"),
            D::QUniform {
                min: 0.0,
                max: 100.0,
                q: 1.0
            }
        );
        assert_eq!(
            dist(&cfg, "lu"),
            D::LogUniform {
                min: -9.2,
                max: -2.3
            }
        );
        assert_eq!(
            dist(&cfg, "luv"),
            D::LogUniformValues {
                min: 1e-4,
                max: 0.1
            }
        );
        assert_eq!(dist(&cfg, "ilu"), D::InvLogUniform { min: 0.0, max: 3.0 });
        assert_eq!(
            dist(&cfg, "iluv"),
            D::InvLogUniformValues {
                min: 0.5,
                max: 20.0
            }
        );
        assert_eq!(
            dist(&cfg, "qlu"),
            D::QLogUniform {
                min: 0.0,
                max: 5.0,
                q: 2.0
            }
        );
        assert_eq!(
            dist(&cfg, "qluv"),
            D::QLogUniformValues {
                min: 1.0,
                max: 1024.0,
                q: 8.0
            }
        );
        assert_eq!(
            dist(&cfg, "n"),
            D::Normal {
                mu: 0.0,
                sigma: 1.0
            }
        );
        assert_eq!(
            dist(&cfg, "qn"),
            D::QNormal {
                mu: 10.0,
                sigma: 2.0,
                q: 0.5
            }
        );
        assert_eq!(
            dist(&cfg, "ln"),
            D::LogNormal {
                mu: -1.0,
                sigma: 1.0
            }
        );
        assert_eq!(
            dist(&cfg, "qln"),
            D::QLogNormal {
                mu: 0.0,
                sigma: 0.5,
                q: 1.0
            }
        );
        assert_eq!(dist(&cfg, "be"), D::Beta { a: 2.0, b: 1.0 });
        assert_eq!(
            dist(&cfg, "qbe"),
            D::QBeta {
                a: 2.0,
                b: 5.0,
                q: 0.1
            }
        );
        assert_eq!(dist(&cfg, "qbe").name(), "q_beta");
        // Continuous leaves: no grid.
        assert_eq!(cfg.grid_size(), None);
    }

    #[test]
    fn bayes_example_with_hyperband_and_metric() {
        let cfg = parse(json!({
            "name": "bayes-hb",
            "description": "lr and dropout",
            "project": "mnist",
            "entity": "someone",
            "controller": {"type": "local"},
            "program": "train.py",
            "method": "bayes",
            "metric": {"name": "val/acc", "goal": "maximize", "target": 0.99, "impute": "worst"},
            "parameters": {
                "lr": {"distribution": "log_uniform_values", "min": 1e-5, "max": 0.1},
                "dropout": {"min": 0.0, "max": 0.5},
            },
            "early_terminate": {"type": "hyperband", "min_iter": 3, "eta": 2, "strict": true},
            "run_cap": 50,
            "optuna_config": {"n_startup_trials": 5, "multivariate": true, "constant_liar": false, "seed": 7},
        }));
        assert_eq!(cfg.method, SearchMethod::Bayes);
        assert_eq!(cfg.name.as_deref(), Some("bayes-hb"));
        assert_eq!(cfg.description.as_deref(), Some("lr and dropout"));
        assert_eq!(cfg.project.as_deref(), Some("mnist"));
        assert_eq!(
            cfg.metric,
            Some(MetricGoal {
                name: "val/acc".into(),
                goal: Goal::Maximize,
                target: Some(0.99)
            })
        );
        assert_eq!(
            cfg.early_terminate,
            Some(Hyperband {
                min_iter: Some(3),
                max_iter: None,
                s: None,
                eta: 2.0,
                strict: true
            })
        );
        assert_eq!(cfg.run_cap, Some(50));
        assert_eq!(
            cfg.tpe,
            TpeConfig {
                sampler: Sampler::Tpe,
                n_startup_trials: 5,
                n_ei_candidates: 24,
                multivariate: true,
                constant_liar: false,
                seed: Some(7)
            }
        );
        assert_eq!(
            dist(&cfg, "dropout"),
            Distribution::Uniform { min: 0.0, max: 0.5 }
        );

        let hb = parse(json!({
            "method": "random",
            "metric": {"name": "loss"},
            "parameters": {"x": {"values": [1]}},
            "early_terminate": {"type": "hyperband", "max_iter": 27, "s": 2},
        }));
        assert_eq!(
            hb.early_terminate,
            Some(Hyperband {
                min_iter: None,
                max_iter: Some(27),
                s: Some(2),
                eta: 3.0,
                strict: false
            })
        );
        assert_eq!(hb.metric.unwrap().goal, Goal::Minimize);
    }

    #[test]
    fn distributions_are_inferred_as_wandb_does() {
        let cfg = parse(json!({
            "method": "random",
            "parameters": {
                "values": {"values": ["a", "b"]},
                "weighted": {"values": ["a", "b"], "probabilities": [0.1, 0.9]},
                "constant": {"value": [1, 2]},
                "null_constant": {"value": null},
                "ints": {"min": 1, "max": 5},
                "mixed": {"min": 1, "max": 5.0},
                "floats": {"min": 0.5, "max": 1.5},
            },
        }));
        assert!(matches!(
            &cfg.parameters["values"],
            Param::Choice {
                probabilities: None,
                ..
            }
        ));
        assert!(
            matches!(&cfg.parameters["weighted"], Param::Choice { probabilities: Some(p), .. } if p == &[0.1, 0.9])
        );
        assert_eq!(cfg.parameters["constant"], Param::Fixed(json!([1, 2])));
        assert_eq!(cfg.parameters["null_constant"], Param::Fixed(Value::Null));
        assert_eq!(
            dist(&cfg, "ints"),
            Distribution::IntUniform { min: 1, max: 5 }
        );
        assert_eq!(
            dist(&cfg, "mixed"),
            Distribution::Uniform { min: 1.0, max: 5.0 }
        );
        assert_eq!(
            dist(&cfg, "floats"),
            Distribution::Uniform { min: 0.5, max: 1.5 }
        );

        // W&B cannot infer a distribution from mu/sigma or from q, nor from half a range.
        let found = issues(json!({
            "method": "random",
            "parameters": {
                "n": {"mu": 0, "sigma": 1},
                "q": {"min": 0, "max": 10, "q": 2},
                "half": {"min": 0},
                "nothing": {},
            },
        }));
        assert_issue(&found, "parameters.n", "name the `distribution`");
        assert_issue(
            &found,
            "parameters.q.q",
            "does not apply to int_uniform (inferred",
        );
        assert_issue(&found, "parameters.half.max", "missing");
        assert_issue(&found, "parameters.nothing", "cannot tell the distribution");
        assert_eq!(found.len(), 4, "{found:?}");
    }

    #[test]
    fn log_scale_bounds_are_explained() {
        let cfg = parse_sweep_config(&json!({
            "method": "bayes",
            "metric": {"name": "val_accuracy", "goal": "maximize"},
            "parameters": {
                "learning_rate": {"distribution": "log_uniform", "min": 0.0001, "max": 0.1},
                "wd": {"distribution": "log_uniform", "min": -9.21, "max": -2.3},
                "lr2": {"distribution": "log_uniform_values", "min": 0.0001, "max": 0.1},
                "dropout": {"distribution": "uniform", "min": 0.1, "max": 0.5},
            },
        }))
        .unwrap();
        let w = config_warnings(&cfg);
        assert_eq!(w.len(), 2, "{w:?}");
        assert_eq!(
            w[0],
            "parameters.learning_rate: log_uniform takes exponents, so min 0.0001 and max 0.1 sample values from 1.0001 to 1.1052; to sample values from 0.0001 to 0.1, use distribution: log_uniform_values"
        );
        assert_eq!(
            w[1],
            "parameters.wd: log_uniform takes exponents, so min -9.21 and max -2.3 sample values from 0.00010003 to 0.10026"
        );
        let inv = parse_sweep_config(&json!({
            "method": "random",
            "parameters": {"x": {"distribution": "inv_log_uniform", "min": 0.5, "max": 3}},
        }))
        .unwrap();
        assert_eq!(
            config_warnings(&inv),
            [
                "parameters.x: inv_log_uniform takes exponents, so min 0.5 and max 3 sample values from 0.049787 to 0.60653"
            ]
        );
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let found = issues(json!({
            "method": "grid",
            "metric": {"goal": "maximise"},
            "run_cap": 0,
            "paramters": {},
            "command": "python train.py",
            "early_terminate": {"type": "hyperband", "eta": 1, "max_iters": 9},
            "optuna_config": {"n_startup_trials": "10", "seed": -1, "sampler": "tpe"},
            "parameters": {
                "lr": {"distribution": "uniform", "min": 0.1, "max": 0.01},
                "wd": {"distribution": "log_uniform_values", "min": 0, "max": 1},
                "bs": {"values": []},
                "opt": {"values": ["a", "b"], "probabilities": [0.5, 0.6]},
                "qq": {"distribution": "q_uniform", "min": "1", "max": 10, "q": 0},
                "n": {"distribution": "normal", "sigma": -1},
                "mix": {"value": 1, "values": [1, 2]},
                "bad": {"distribution": "gaussian"},
                "x": {"values": [1], "colour": 1},
                "nest": {"value": 1, "parameters": {"y": {"value": 2}}},
                "plain": 0.1,
                "ints": {"distribution": "int_uniform", "min": 1.5, "max": 3},
            },
        }));
        let expected = [
            ("paramters", "did you mean `parameters`?"),
            ("metric.name", "missing"),
            ("metric.goal", "did you mean maximize?"),
            ("run_cap", "positive whole number"),
            ("command", "must be a list"),
            ("early_terminate", "needs `min_iter`"),
            ("early_terminate.eta", "must be greater than 1"),
            ("early_terminate.max_iters", "did you mean `max_iter`?"),
            (
                "optuna_config.n_startup_trials",
                "is a string; write the number without quotes",
            ),
            ("optuna_config.seed", "at least 0"),
            (
                "optuna_config.sampler",
                "unsupported sampler \"tpe\": use one of TPESampler, RandomSampler",
            ),
            ("parameters.lr.max", "must be greater than min"),
            ("parameters.lr", "grid search needs `values`"),
            ("parameters.wd.min", "must be greater than 0"),
            ("parameters.bs.values", "must not be empty"),
            ("parameters.opt.probabilities", "must add up to 1"),
            (
                "parameters.opt.probabilities",
                "grid search tries every value",
            ),
            ("parameters.qq.min", "is a string"),
            ("parameters.qq.q", "must be greater than 0"),
            ("parameters.n.sigma", "must be greater than 0"),
            ("parameters.mix", "either `value` or `values`"),
            (
                "parameters.bad.distribution",
                "unknown distribution `gaussian`",
            ),
            ("parameters.x.colour", "unknown key"),
            (
                "parameters.nest",
                "cannot be mixed with other keys (`value`)",
            ),
            ("parameters.plain", "write `value: 0.1`"),
            ("parameters.ints.min", "must be a whole number"),
        ];
        for (path, needle) in expected {
            assert_issue(&found, path, needle);
        }
        // The q_uniform spec is fine for a grid: no grid complaint about it.
        assert!(
            !found
                .iter()
                .any(|i| i.path == "parameters.qq" && i.message.contains("grid"))
        );
        let display: Vec<String> = found.iter().map(ToString::to_string).collect();
        assert!(display.contains(&"parameters.lr.max: must be greater than min".to_string()));
    }

    #[test]
    fn top_level_requirements() {
        let found = issues(json!({"program": 3, "metrics": [], "scheduler": {}}));
        assert_issue(&found, "method", "missing; use grid, random or bayes");
        assert_issue(&found, "parameters", "missing");
        assert_issue(&found, "program", "must be a string, not a number");
        assert_issue(&found, "metrics", "not supported");
        assert_issue(&found, "scheduler", "not supported");

        let found = issues(
            json!({"method": "bayes", "parameters": {"x": {"values": [1]}},
            "early_terminate": {"type": "asha", "min_iter": 1}}),
        );
        assert_issue(&found, "metric", "bayes search needs a metric");
        assert_issue(&found, "early_terminate", "add `metric`");
        assert_issue(&found, "early_terminate.type", "only hyperband");

        let found = issues(json!({"method": "Grid", "parameters": {}}));
        assert_issue(&found, "method", "did you mean grid?");
        assert_issue(&found, "parameters", "at least one parameter");

        let found = issues(
            json!({"method": "custom", "parameters": {"x": {"value": 1}},
            "metric": {"name": ""}, "run_cap": "5",
            "early_terminate": {"type": "hyperband", "max_iter": 9, "strict": "true"}}),
        );
        assert_issue(&found, "method", "custom is not supported");
        assert_issue(&found, "metric.name", "must not be empty");
        assert_issue(
            &found,
            "run_cap",
            "is a string; write the number without quotes",
        );
        assert_issue(&found, "early_terminate.s", "`max_iter` needs `s`");
        assert_issue(
            &found,
            "early_terminate.strict",
            "write true or false without quotes",
        );

        let found = issues(json!([1, 2]));
        assert_eq!(found.len(), 1);
        assert_eq!(
            found[0].to_string(),
            "a sweep configuration must be a mapping, not a list"
        );
    }

    #[test]
    fn grid_rejects_continuous_distributions_at_their_path() {
        for spec in [
            json!({"min": 0.0, "max": 1.0}),
            json!({"distribution": "normal"}),
            json!({"distribution": "log_uniform_values", "min": 0.001, "max": 1}),
        ] {
            let found = issues(json!({
                "method": "grid",
                "parameters": {"ok": {"values": [1, 2]}, "opt": {"parameters": {"lr": spec}}},
            }));
            assert_eq!(found.len(), 1, "{found:?}");
            assert_eq!(found[0].path, "parameters.opt.parameters.lr");
            assert!(
                found[0]
                    .message
                    .starts_with("grid search needs `values`, int_uniform")
            );
        }
        // The same parameters are fine for random search.
        parse(json!({"method": "random", "parameters": {"lr": {"min": 0.0, "max": 1.0}}}));
    }

    #[test]
    fn grid_size_counts_nested_leaves_and_saturates() {
        let cfg = parse(json!({
            "method": "grid",
            "parameters": {
                "a": {"values": [1, 2, 3]},
                "b": {"parameters": {
                    "c": {"min": -2, "max": 2},
                    "d": {"parameters": {"e": {"values": [true, false]}, "f": {"value": 0}}},
                }},
                "g": {"distribution": "q_uniform", "min": 0, "max": 1, "q": 0.25},
            },
        }));
        // 3 × 5 × 2 × 1 × 4 (0, 0.25, 0.5, 0.75: max is exclusive, as numpy's arange).
        assert_eq!(cfg.grid_size(), Some(120));
        assert_eq!(cfg.parameters["b"].grid_count(), Some(10));

        let huge = parse(json!({
            "method": "grid",
            "parameters": {
                "a": {"min": i64::MIN, "max": i64::MAX},
                "b": {"min": 0, "max": 1_000_000_000},
            },
        }));
        assert_eq!(huge.grid_size(), Some(u64::MAX));
    }

    #[test]
    fn nest_params_inverts_flat_params() {
        let cfg = parse(grid_example());
        // A trial's flat point, keyed by flat_params' names.
        let flat: Map<String, Value> = cfg
            .flat_params()
            .into_iter()
            .enumerate()
            .map(|(i, (name, _))| (name, json!(i)))
            .collect();
        let nested = cfg.nest_params(&flat);
        assert_eq!(
            Value::Object(nested.clone()),
            json!({
                "batch_size": 0, "epochs": 1, "layers": 2,
                "optimizer": {"lr": 3, "momentum": 4, "name": 5},
                "width": 6,
            })
        );
        // And flattening the nested object again gives the same points.
        fn flatten(prefix: &str, m: &Map<String, Value>, out: &mut Map<String, Value>) {
            for (k, v) in m {
                let path = at(prefix, k);
                match v {
                    Value::Object(inner) => flatten(&path, inner, out),
                    _ => {
                        out.insert(path, v.clone());
                    }
                }
            }
        }
        let mut again = Map::new();
        flatten("", &nested, &mut again);
        assert_eq!(again, flat);
        // Keys that name no leaf (a stray key, a group) are ignored; a group without any
        // value is left out.
        let mut extra = flat.clone();
        extra.insert("nope".into(), json!(1));
        extra.insert("optimizer".into(), json!(2));
        assert_eq!(cfg.nest_params(&extra), nested);
        let only_top: Map<String, Value> = [("epochs".to_string(), json!(3))].into_iter().collect();
        assert_eq!(
            Value::Object(cfg.nest_params(&only_top)),
            json!({"epochs": 3})
        );
        // Values that are themselves objects stay intact at their leaf.
        let cfg = parse(json!({"method": "random",
            "parameters": {"a": {"parameters": {"b": {"value": {"k": 1}}}}}}));
        let with_object: Map<String, Value> =
            [("a.b".to_string(), json!({"k": 1}))].into_iter().collect();
        assert_eq!(
            Value::Object(cfg.nest_params(&with_object)),
            json!({"a": {"b": {"k": 1}}})
        );
    }

    /// Hydra-style names, as W&B sweep files write them for `${args_no_hyphens}`.
    fn dotted_example() -> Value {
        json!({
            "program": "train.py",
            "method": "grid",
            "command": ["${env}", "${interpreter}", "${program}", "${args_no_hyphens}"],
            "parameters": {
                "model.lr": {"values": [0.01, 0.1]},
                "model.layers": {"value": 2},
                "optimizer": {"parameters": {"lr": {"value": 0.001}}},
            },
        })
    }

    #[test]
    fn dotted_names_are_accepted_and_stay_flat_keys() {
        let cfg = parse(dotted_example());
        let names: Vec<String> = cfg.flat_params().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["model.layers", "model.lr", "optimizer.lr"]);
        assert_eq!(cfg.grid_size(), Some(2));
        let flat: Map<String, Value> = [
            ("model.lr".to_string(), json!(0.01)),
            ("model.layers".to_string(), json!(2)),
            ("optimizer.lr".to_string(), json!(0.001)),
        ]
        .into_iter()
        .collect();
        // The dotted name stays one top-level key; only the declared nesting nests.
        assert_eq!(
            Value::Object(cfg.nest_params(&flat)),
            json!({"model.lr": 0.01, "model.layers": 2, "optimizer": {"lr": 0.001}})
        );
        // W&B's format keeps the dotted key, and reads back the same.
        let written = serde_json::to_value(&cfg).unwrap();
        assert_eq!(
            written["parameters"]["model.lr"],
            json!({"values": [0.01, 0.1]})
        );
        assert_eq!(parse(written), cfg);
    }

    #[test]
    fn args_no_hyphens_prints_dotted_names_as_hydra_overrides() {
        let cfg = parse(dotted_example());
        let flat: Map<String, Value> = [
            ("model.lr".to_string(), json!(0.01)),
            ("model.layers".to_string(), json!(2)),
            ("optimizer.lr".to_string(), json!(0.001)),
        ]
        .into_iter()
        .collect();
        let cmd = build_command(&cfg, &cfg.nest_params(&flat), &ctx(&no_env)).unwrap();
        assert_eq!(
            cmd,
            [
                "/usr/bin/env",
                "python3",
                "train.py",
                "model.layers=2",
                "model.lr=0.01",
                "optimizer={\"lr\":0.001}",
            ]
        );
    }

    #[test]
    fn leaves_sharing_a_flat_name_are_an_error() {
        // Nested `model` sorts before `model.lr`, so the top-level dotted leaf is second.
        let found = issues(json!({
            "method": "random",
            "parameters": {
                "model.lr": {"value": 0.1},
                "model": {"parameters": {"lr": {"value": 0.2}, "wd": {"value": 0}}},
            },
        }));
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            found[0].to_string(),
            "parameters.model.lr: its flat name `model.lr` is also that of \
             `parameters.model.parameters.lr`, so a trial could not tell them apart; \
             rename one of them"
        );

        // Inside a group, reported once, at the group's level.
        let found = issues(json!({
            "method": "random",
            "parameters": {"opt": {"parameters": {
                "a": {"parameters": {"b": {"value": 1}}},
                "a.b": {"value": 2},
            }}},
        }));
        assert_eq!(found.len(), 1, "{found:?}");
        assert_issue(
            &found,
            "parameters.opt.parameters.a.b",
            "`a.b` is also that of `parameters.opt.parameters.a.parameters.b`",
        );

        // A leaf whose flat name is a group's is no collision: the values stay apart.
        let cfg = parse(json!({
            "method": "random",
            "parameters": {
                "a.b": {"value": 1},
                "a": {"parameters": {"b": {"parameters": {"c": {"value": 2}}}}},
            },
        }));
        let names: Vec<String> = cfg.flat_params().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["a.b.c", "a.b"]);

        // Deserializing goes through the same check.
        let err = serde_json::from_value::<SweepConfig>(json!({
            "method": "grid",
            "parameters": {"x.y": {"value": 1}, "x": {"parameters": {"y": {"value": 2}}}},
        }))
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("parameters.x.y: its flat name `x.y`"),
            "{err}"
        );
        let err = serde_json::from_value::<Param>(json!({
            "parameters": {"x.y": {"value": 1}, "x": {"parameters": {"y": {"value": 2}}}},
        }))
        .unwrap_err();
        assert!(err.to_string().contains("its flat name `x.y`"), "{err}");
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn ctx(envvar: &dyn Fn(&str) -> Option<String>) -> CommandContext<'_> {
        CommandContext {
            env: "/usr/bin/env",
            interpreter: "python3",
            args_json_file: "/tmp/trial/params.json",
            envvar,
        }
    }

    fn trial_params() -> Map<String, Value> {
        match json!({
            "lr": 0.001, "bs": 32, "flag": true, "off": false, "name": "adam",
            "none": null, "opt": {"m": 0.9}, "tiny": 1e-5, "whole": 3.0, "list": [1, "a"],
        }) {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    fn with_command(command: &[&str], program: Option<&str>) -> SweepConfig {
        let mut cfg = parse(json!({"method": "random", "parameters": {"x": {"value": 1}}}));
        cfg.command = command.iter().map(|s| s.to_string()).collect();
        cfg.program = program.map(String::from);
        cfg
    }

    #[test]
    fn default_command_expands_args_the_way_wandbs_agent_prints_them() {
        let cfg = with_command(&DEFAULT_COMMAND, Some("train.py"));
        let cmd = build_command(&cfg, &trial_params(), &ctx(&no_env)).unwrap();
        assert_eq!(
            cmd,
            [
                "/usr/bin/env",
                "python3",
                "train.py",
                "--bs=32",
                "--flag=True",
                "--list=[1,\"a\"]",
                "--lr=0.001",
                "--name=adam",
                "--none=None",
                "--off=False",
                "--opt={\"m\":0.9}",
                "--tiny=1e-05",
                "--whole=3.0",
            ]
        );
        // A program that is not a .py file still gets the interpreter, as in W&B.
        let cfg = with_command(&DEFAULT_COMMAND, Some("train.sh"));
        let cmd = build_command(&cfg, &trial_params(), &ctx(&no_env)).unwrap();
        assert_eq!(&cmd[..3], ["/usr/bin/env", "python3", "train.sh"]);
        // An empty env (Windows) drops the item.
        let mut windows = ctx(&no_env);
        windows.env = "";
        let cmd = build_command(&cfg, &trial_params(), &windows).unwrap();
        assert_eq!(&cmd[..2], ["python3", "train.sh"]);
    }

    #[test]
    fn list_macros() {
        let mut params = Map::new();
        params.insert("b".into(), json!(false));
        params.insert("a".into(), json!(true));
        params.insert("lr".into(), json!(0.5));
        let run = |macro_: &str| {
            let cfg = with_command(&["run", macro_], None);
            build_command(&cfg, &params, &ctx(&no_env)).unwrap()
        };
        assert_eq!(run("${args}"), ["run", "--a=True", "--b=False", "--lr=0.5"]);
        assert_eq!(
            run("${args_no_equals}"),
            ["run", "--a", "True", "--b", "False", "--lr", "0.5"]
        );
        assert_eq!(
            run("${args_no_hyphens}"),
            ["run", "a=True", "b=False", "lr=0.5"]
        );
        assert_eq!(run("${args_no_boolean_flags}"), ["run", "--a", "--lr=0.5"]);
    }

    #[test]
    fn json_file_env_and_text_macros() {
        let env = |name: &str| (name == "DATA_DIR").then(|| "/data".to_string());
        let mut params = Map::new();
        params.insert("lr".into(), json!(0.1));
        params.insert("a".into(), json!({"b": [1, 2]}));
        let cfg = with_command(
            &[
                "${interpreter}",
                "${program}",
                "${args_json}",
                "${args_json_file}",
                "--config=${args_json_file}",
                "${envvar:DATA_DIR}",
                "--data=${envvar:DATA_DIR}/x",
                "--prog=${program}:${env}",
                "${unknown}",
                "--keep=${unknown}",
                "--home=${HOME",
            ],
            Some("main.py"),
        );
        let cmd = build_command(&cfg, &params, &ctx(&env)).unwrap();
        assert_eq!(
            cmd,
            [
                "python3",
                "main.py",
                "{\"a\":{\"b\":[1,2]},\"lr\":0.1}",
                "/tmp/trial/params.json",
                "--config=/tmp/trial/params.json",
                "/data",
                "--data=/data/x",
                "--prog=main.py:/usr/bin/env",
                "--keep=${unknown}",
                "--home=${HOME",
            ]
        );
    }

    #[test]
    fn command_errors() {
        let params = trial_params();
        let no_program = with_command(&DEFAULT_COMMAND, None);
        let err = build_command(&no_program, &params, &ctx(&no_env)).unwrap_err();
        assert!(err.contains("no `program`"), "{err}");

        let unset = with_command(&["run", "--out=${envvar:OUT_DIR}"], None);
        let err = build_command(&unset, &params, &ctx(&no_env)).unwrap_err();
        assert!(err.contains("OUT_DIR is not set"), "{err}");

        let embedded = with_command(&["run", "--flags=${args}"], None);
        let err = build_command(&embedded, &params, &ctx(&no_env)).unwrap_err();
        assert!(
            err.contains("`${args}` must be a command item of its own"),
            "{err}"
        );

        // The parser catches the embedded list macro up front, and accepts YAML scalars.
        let found = issues(
            json!({"method": "random", "parameters": {"x": {"value": 1}},
            "command": ["python", "train.py", "x${args_no_hyphens}", null]}),
        );
        assert_issue(
            &found,
            "command[2]",
            "`${args_no_hyphens}` must be a list item of its own",
        );
        assert_issue(&found, "command[3]", "must be a string, not null");
        let cfg = parse(
            json!({"method": "random", "parameters": {"x": {"value": 1}},
            "command": ["python", "train.py", "--epochs", 3000, "--eps", 1e-8, true]}),
        );
        assert_eq!(
            cfg.command,
            [
                "python", "train.py", "--epochs", "3000", "--eps", "1e-08", "True"
            ]
        );
        let cfg =
            parse(json!({"method": "random", "parameters": {"x": {"value": 1}}, "command": []}));
        assert_eq!(cfg.command, DEFAULT_COMMAND);
    }

    #[test]
    fn floats_print_as_python_does() {
        let cases = [
            (0.001, "0.001"),
            (1e-5, "1e-05"),
            (0.0001, "0.0001"),
            (1.0, "1.0"),
            (3.0, "3.0"),
            (123.456, "123.456"),
            (-2.5e-7, "-2.5e-07"),
            (1e15, "1000000000000000.0"),
            (1e16, "1e+16"),
            (1.5e300, "1.5e+300"),
            (0.1 + 0.2, "0.30000000000000004"),
            (-0.0, "-0.0"),
            (0.0, "0.0"),
            (12345678.9, "12345678.9"),
        ];
        for (x, want) in cases {
            assert_eq!(python_float(x), want, "{x:?}");
        }
    }

    #[test]
    fn serialization_round_trips_through_wandbs_format() {
        let cfg = parse(grid_example());
        let written = serde_json::to_value(&cfg).unwrap();
        assert_eq!(
            written["parameters"]["layers"],
            json!({"distribution": "int_uniform", "min": 1, "max": 3})
        );
        assert_eq!(
            written["parameters"]["optimizer"]["parameters"]["momentum"],
            json!({"value": 0.9})
        );
        assert_eq!(written["optuna_config"]["constant_liar"], json!(true));
        assert_eq!(parse(written.clone()), cfg);
        let read: SweepConfig = serde_json::from_value(written).unwrap();
        assert_eq!(read, cfg);

        let hb = Hyperband {
            min_iter: Some(3),
            max_iter: None,
            s: None,
            eta: 3.0,
            strict: false,
        };
        let hb_json = serde_json::to_value(&hb).unwrap();
        assert_eq!(
            hb_json,
            json!({"type": "hyperband", "min_iter": 3, "eta": 3.0, "strict": false})
        );
        assert_eq!(serde_json::from_value::<Hyperband>(hb_json).unwrap(), hb);

        let err = serde_json::from_value::<SweepConfig>(json!({"method": "grid"})).unwrap_err();
        assert!(err.to_string().contains("parameters: missing"), "{err}");
        let param: Param = serde_json::from_value(json!({"min": 1, "max": 4})).unwrap();
        assert_eq!(
            param,
            Param::Dist(Distribution::IntUniform { min: 1, max: 4 })
        );
        let err = serde_json::from_value::<Param>(json!({"min": 4, "max": 1})).unwrap_err();
        assert!(
            err.to_string().contains("max: must be greater than min"),
            "{err}"
        );
    }
}
