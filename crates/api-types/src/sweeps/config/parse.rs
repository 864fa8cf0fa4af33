//! Checking a sweep configuration: every problem found, with its path, in document order.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::command::{arg_value, embedded_list_macro};
use super::*;

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

pub(super) fn join_issues(issues: &[ConfigIssue]) -> String {
    let list: Vec<String> = issues.iter().map(ToString::to_string).collect();
    list.join("; ")
}

/// Checks one parameter's specification on its own (what deserializing a [`Param`] does).
pub(super) fn parse_param(v: &Value) -> Result<Param, Vec<ConfigIssue>> {
    let mut parser = Parser::default();
    match parser.param(v, "", false) {
        Some(param) if parser.issues.is_empty() => Ok(param),
        _ => Err(parser.finish()),
    }
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

pub(super) fn at(path: &str, key: &str) -> String {
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
