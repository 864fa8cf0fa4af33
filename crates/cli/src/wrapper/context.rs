//! What the wrapper records about where a run happened: config from files and KEY=VALUE
//! arguments, git state, host, OS and runtime versions.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde_json::{Map, Value};
use wanllmdb_api_types::runs::GitInfo;

use crate::error::{CliResult, user_err};

/// Merges every `--config` argument, in order, into one JSON object.
pub fn merge_config(args: &[String]) -> CliResult<Value> {
    let mut merged = Map::new();
    for arg in args {
        let path = Path::new(arg);
        let part = if path.is_file() {
            read_config_file(path)?
        } else if let Some((k, v)) = arg.split_once('=') {
            key_value(k, v)?
        } else {
            return Err(user_err!(
                "--config {arg:?}: no such file, and not KEY=VALUE"
            )
            .hint("pass a .yaml/.yml/.json file, or KEY=VALUE such as lr=3e-4 or optimizer.name=adam"));
        };
        deep_merge(&mut merged, part);
    }
    Ok(Value::Object(merged))
}

fn read_config_file(path: &Path) -> CliResult<Map<String, Value>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| user_err!("cannot read config file {}: {e}", path.display()))?;
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let value: Value = match ext.as_str() {
        "yaml" | "yml" => serde_yaml::from_str(&text)
            .map_err(|e| user_err!("config file {} is not valid YAML: {e}", path.display()))?,
        "json" => serde_json::from_str(&text)
            .map_err(|e| user_err!("config file {} is not valid JSON: {e}", path.display()))?,
        _ => {
            return Err(user_err!(
                "config file {} must end in .yaml, .yml or .json",
                path.display()
            ));
        }
    };
    match value {
        Value::Object(m) => Ok(m),
        Value::Null => Ok(Map::new()),
        other => Err(user_err!(
            "config file {} must hold a mapping of names to values, not {}",
            path.display(),
            wanllmdb_api_types::sweeps::json_kind(&other)
        )),
    }
}

/// `a.b=3` → `{"a": {"b": 3}}`; the value is JSON when it parses as JSON, else a string.
fn key_value(key: &str, raw: &str) -> CliResult<Map<String, Value>> {
    let key = key.trim();
    if key.is_empty() || key.split('.').any(str::is_empty) {
        return Err(user_err!("--config {key}={raw}: the key is empty")
            .hint("use KEY=VALUE, e.g. lr=3e-4 or optimizer.name=adam"));
    }
    let value =
        serde_json::from_str::<Value>(raw).unwrap_or_else(|_| Value::String(raw.to_string()));
    let mut parts: Vec<&str> = key.split('.').collect();
    let last = parts.pop().unwrap_or(key);
    let mut m = Map::new();
    m.insert(last.to_string(), value);
    for p in parts.into_iter().rev() {
        let mut outer = Map::new();
        outer.insert(p.to_string(), Value::Object(m));
        m = outer;
    }
    Ok(m)
}

fn deep_merge(into: &mut Map<String, Value>, from: Map<String, Value>) {
    for (k, v) in from {
        match (into.get_mut(&k), v) {
            (Some(Value::Object(a)), Value::Object(b)) => deep_merge(a, b),
            (_, v) => {
                into.insert(k, v);
            }
        }
    }
}

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (!s.is_empty()).then_some(s)
}

/// Git state of the current directory, and the uncommitted diff when the tree is dirty.
pub fn git_info() -> (Option<GitInfo>, Option<String>) {
    let Some(commit) = git(&["rev-parse", "HEAD"]) else {
        return (None, None);
    };
    let branch = git(&["rev-parse", "--abbrev-ref", "HEAD"]).filter(|b| b != "HEAD");
    let remote = git(&["remote", "get-url", "origin"]).map(|r| strip_credentials(&r));
    let dirty = Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .output()
        .ok()
        .map(|o| !o.stdout.is_empty());
    let diff = if dirty == Some(true) {
        Command::new("git")
            .args(["diff", "HEAD"])
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
    } else {
        None
    };
    (
        Some(GitInfo {
            commit: Some(commit),
            branch,
            remote,
            dirty,
        }),
        diff,
    )
}

/// `https://user:token@host/repo` → `https://host/repo`.
pub fn strip_credentials(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://")
        && let Some(at) = rest.find('@')
        && rest[..at].find('/').is_none()
    {
        return format!("{scheme}://{}", &rest[at + 1..]);
    }
    url.to_string()
}

/// Host name.
pub fn host_name() -> Option<String> {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
}

/// Operating system, e.g. `linux (Debian GNU/Linux 12 (bookworm), kernel 6.1.0)`.
pub fn os_description() -> String {
    let mut s = std::env::consts::OS.to_string();
    let pretty = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .map(|v| v.trim_matches('"').to_string())
        });
    let kernel = nix::sys::utsname::uname()
        .ok()
        .and_then(|u| u.release().to_str().map(str::to_string));
    match (pretty, kernel) {
        (Some(p), Some(k)) => s.push_str(&format!(" ({p}, kernel {k})")),
        (Some(p), None) => s.push_str(&format!(" ({p})")),
        (None, Some(k)) => s.push_str(&format!(" (kernel {k})")),
        (None, None) => {}
    }
    s
}

/// Versions of the runtimes the command uses (the interpreter it names) and of wanllmdb.
pub fn runtime_versions(cmd: &[String]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    out.insert(
        "wanllmdb".to_string(),
        env!("CARGO_PKG_VERSION").to_string(),
    );
    let Some(first) = cmd.first() else {
        return out;
    };
    let base = Path::new(first)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("");
    let probe = |exe: &str, name: &str, out: &mut BTreeMap<String, String>| {
        if let Ok(o) = Command::new(exe).arg("--version").output() {
            let text = String::from_utf8_lossy(if o.stdout.is_empty() {
                &o.stderr
            } else {
                &o.stdout
            })
            .trim()
            .to_string();
            if let Some(v) = text.split_whitespace().last() {
                out.insert(name.to_string(), v.trim_start_matches('v').to_string());
            }
        }
    };
    if base.starts_with("python") {
        probe(first, "python", &mut out);
    } else if base == "node" {
        probe(first, "node", &mut out);
    } else if base == "bash" {
        if let Ok(v) = std::env::var("BASH_VERSION") {
            out.insert("bash".to_string(), v);
        }
    } else if base.ends_with(".py") {
        probe("python3", "python", &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_merges_files_and_dotted_pairs_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let y = dir.path().join("c.yaml");
        std::fs::write(&y, "lr: 0.1\noptimizer:\n  name: sgd\n  momentum: 0.9\n").unwrap();
        let v = merge_config(&[
            y.display().to_string(),
            "optimizer.name=adam".into(),
            "epochs=3".into(),
            "tags=[1,2]".into(),
            "note=hello world".into(),
        ])
        .unwrap();
        assert_eq!(v["lr"], 0.1);
        assert_eq!(v["optimizer"]["name"], "adam");
        assert_eq!(v["optimizer"]["momentum"], 0.9);
        assert_eq!(v["epochs"], 3);
        assert_eq!(v["tags"], serde_json::json!([1, 2]));
        assert_eq!(v["note"], "hello world");
    }

    #[test]
    fn bad_config_arguments_say_why() {
        let e = merge_config(&["nonsense".into()]).unwrap_err();
        assert!(e.message.contains("not KEY=VALUE"));
        let e = merge_config(&["=3".into()]).unwrap_err();
        assert!(e.message.contains("key is empty"));
        let dir = tempfile::tempdir().unwrap();
        let j = dir.path().join("c.json");
        std::fs::write(&j, "[1,2]").unwrap();
        let e = merge_config(&[j.display().to_string()]).unwrap_err();
        assert!(e.message.contains("mapping"), "{}", e.message);
        std::fs::write(&j, "{oops").unwrap();
        let e = merge_config(&[j.display().to_string()]).unwrap_err();
        assert!(e.message.contains("not valid JSON"));
    }

    #[test]
    fn credentials_are_stripped_from_remotes() {
        assert_eq!(
            strip_credentials("https://user:tok@github.com/a/b.git"),
            "https://github.com/a/b.git"
        );
        assert_eq!(
            strip_credentials("git@github.com:a/b.git"),
            "git@github.com:a/b.git"
        );
    }
}
