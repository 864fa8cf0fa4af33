//! The command line an agent runs for a trial: W&B's macros (`${program}`, `${args}`, …)
//! expanded with the trial's parameters.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::*;

/// The command W&B runs when a config has none.
pub const DEFAULT_COMMAND: [&str; 4] = ["${env}", "${interpreter}", "${program}", "${args}"];

const LIST_MACROS: [&str; 4] = [
    "args",
    "args_no_equals",
    "args_no_hyphens",
    "args_no_boolean_flags",
];

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
pub(super) fn embedded_list_macro(token: &str) -> Option<&'static str> {
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
pub(super) fn arg_value(v: &Value) -> String {
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
pub(super) fn python_float(x: f64) -> String {
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
