//! How models, versions and artifacts are named on the command line: `NAME`, `NAME:v3`,
//! `NAME@production`, `NAME/Staging`, and `PROJECT/ARTIFACT:VERSION`, checked with a hint.

use super::*;

/// The name as given, or an error that says what a model name looks like.
pub(super) fn model_name(name: &str) -> CliResult<&str> {
    if is_valid_model_name(name) {
        return Ok(name);
    }
    let err = user_err!("model name {name:?} is not valid: use 1 to 128 of A-Z a-z 0-9 . _ -");
    if name.contains(['@', '/', ':']) {
        Err(err.hint("give the model's name alone here, then the version as its own argument"))
    } else {
        Err(err)
    }
}

/// `/api/v1/models/{name}{rest}`.
pub(super) fn model_path(name: &str, rest: &str) -> String {
    format!("/api/v1/models/{}{rest}", seg(name))
}

/// `v3` for `v3`, `V3` and `3`; `None` for anything that is not a version number.
pub(super) fn version_label(s: &str) -> Option<String> {
    let digits = s.strip_prefix(['v', 'V']).unwrap_or(s);
    match digits.parse::<u64>() {
        Ok(n) if n > 0 && digits.bytes().all(|b| b.is_ascii_digit()) => Some(format!("v{n}")),
        _ => None,
    }
}

/// Which version of a model a reference picks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Selector {
    /// `v3`.
    Version(String),
    /// `@champion`.
    Alias(String),
    /// The newest version in a stage.
    Stage(Stage),
    /// The newest version.
    Latest,
}

impl Selector {
    /// A VERSION argument: `v3`, `3`, `@ALIAS` or a stage name.
    pub(super) fn parse(s: &str) -> CliResult<Selector> {
        if let Some(v) = version_label(s) {
            return Ok(Selector::Version(v));
        }
        if let Some(alias) = s.strip_prefix('@') {
            if alias.is_empty() {
                return Err(user_err!("{s:?}: no alias after '@'"));
            }
            return Ok(Selector::Alias(alias.to_string()));
        }
        if let Some(stage) = Stage::parse(s) {
            return Ok(Selector::Stage(stage));
        }
        if s.eq_ignore_ascii_case("latest") {
            return Ok(Selector::Latest);
        }
        Err(user_err!("{s:?} is not a version").hint(format!(
            "write v3 or 3, @{s} for an alias, or a stage: Production, Staging, Archived, None"
        )))
    }

    /// The `{selector}` of `GET /models/{name}/versions/{selector}`.
    pub(super) fn segment(&self) -> String {
        match self {
            Selector::Version(v) => v.clone(),
            Selector::Alias(a) => format!("@{a}"),
            Selector::Stage(s) => s.as_str().to_string(),
            Selector::Latest => "latest".into(),
        }
    }
}

/// `NAME`, `NAME@ALIAS`, `NAME/STAGE`, `NAME:vN` or `NAME:latest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ModelRef {
    pub(super) model: String,
    pub(super) selector: Option<Selector>,
}

impl ModelRef {
    pub(super) fn parse(s: &str) -> CliResult<ModelRef> {
        let Some(at) = s.find(['@', '/', ':']) else {
            return Ok(ModelRef {
                model: model_name(s)?.to_string(),
                selector: None,
            });
        };
        let (name, sep, rest) = (&s[..at], &s[at..=at], &s[at + 1..]);
        let model = model_name(name)?.to_string();
        let hint = "write NAME@ALIAS, NAME/Production (a stage) or NAME:v3";
        if rest.is_empty() {
            return Err(user_err!("{s:?}: nothing after {sep:?}").hint(hint));
        }
        let selector = match sep {
            "@" => Selector::Alias(rest.to_string()),
            "/" => Selector::Stage(Stage::parse(rest).ok_or_else(|| {
                user_err!("{s:?}: {rest:?} is not a stage (Production, Staging, Archived, None)")
                    .hint(hint)
            })?),
            _ if rest.eq_ignore_ascii_case("latest") => Selector::Latest,
            _ => Selector::Version(version_label(rest).ok_or_else(|| {
                user_err!("{s:?}: {rest:?} is not a version number").hint(format!(
                    "for an alias write {name}@{rest}; for a stage {name}/{rest}"
                ))
            })?),
        };
        Ok(ModelRef {
            model,
            selector: Some(selector),
        })
    }
}

/// The version a selector picks now.
pub(super) async fn fetch_version(
    api: &Api,
    model: &str,
    sel: &Selector,
) -> CliResult<ModelVersion> {
    let label = match sel {
        Selector::Latest => {
            let m: RegisteredModel = api.get(&model_path(model, ""), &[]).await?;
            m.latest_version.ok_or_else(|| {
                user_err!("model {model} has no versions yet").hint(format!(
                    "create one with `wanllmdb model version create {model} --artifact ART:v1`"
                ))
            })?
        }
        other => other.segment(),
    };
    let path = model_path(model, &format!("/versions/{}", seg(&label)));
    Ok(api.get(&path, &[]).await?)
}

/// A VERSION argument as the `vN` it names now (aliases and stages are looked up).
pub(super) async fn resolve_version(api: &Api, model: &str, arg: &str) -> CliResult<String> {
    match Selector::parse(arg)? {
        Selector::Version(v) => Ok(v),
        other => Ok(fetch_version(api, model, &other).await?.version),
    }
}

/// `--artifact` checked before it is sent: it must name a version.
pub(super) fn artifact_spec(spec: &str) -> CliResult<String> {
    let hint = "write ART:v1, ART:latest, ART:ALIAS or PROJECT/ART:v1";
    let Some((path, version)) = spec.split_once(':') else {
        return Err(user_err!("--artifact {spec:?} names no version").hint(hint));
    };
    let name = match path.split_once('/') {
        Some((project, name)) => {
            crate::commands::valid_project_name(project)?;
            name
        }
        None => path,
    };
    if version.is_empty() || !wanllmdb_api_types::artifacts::is_valid_artifact_name(name) {
        return Err(user_err!("--artifact {spec:?} is not an artifact version").hint(hint));
    }
    Ok(spec.to_string())
}

/// `--metrics KEY=VALUE…` as a JSON object: numbers and booleans as such, anything else as text.
pub(super) fn parse_metrics(pairs: &[String]) -> CliResult<Option<Value>> {
    if pairs.is_empty() {
        return Ok(None);
    }
    let mut map = serde_json::Map::new();
    for p in pairs {
        let (k, v) = p.split_once('=').ok_or_else(|| {
            user_err!("--metrics {p:?}: expected KEY=VALUE").hint("e.g. --metrics auc=0.91")
        })?;
        if k.is_empty() {
            return Err(user_err!("--metrics {p:?}: the key is empty"));
        }
        let value = match serde_json::from_str::<Value>(v.trim()) {
            Ok(x @ (Value::Number(_) | Value::Bool(_))) => x,
            _ => Value::String(v.to_string()),
        };
        map.insert(k.to_string(), value);
    }
    Ok(Some(Value::Object(map)))
}
