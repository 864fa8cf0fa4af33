//! The command line's side of the Python SDK: the spool fixture both suites upload, `auth
//! token`, the run's config file for wrapped programs, and system metrics.

use std::path::Path;

use serde_json::Value;

use crate::support::{Env, code, repo_root, stderr, write};

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// `{key: {step: value}}` of a run's history.
fn history(env: &Env, run: &str) -> serde_json::Map<String, Value> {
    let (_, h) = env.get(&format!("/api/v1/runs/{run}/history"));
    let mut out = serde_json::Map::new();
    for s in h["series"].as_array().unwrap() {
        let mut points = serde_json::Map::new();
        for (step, v) in s["steps"]
            .as_array()
            .unwrap()
            .iter()
            .zip(s["values"].as_array().unwrap())
        {
            points.insert(step.to_string(), v.clone());
        }
        out.insert(
            s["key"].as_str().unwrap().to_string(),
            Value::Object(points),
        );
    }
    out
}

#[test]
fn the_shared_fixture_spool_uploads_with_sync() {
    let env = Env::new();
    let fixture = repo_root().join("tests/fixtures/spool");
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture.join("expected.json")).unwrap())
            .unwrap();
    let spool = env.work().join("spool");
    copy_dir(&fixture.join("runs"), &spool.join("runs"));
    let host = env.server.url.clone();
    let out = env
        .wl(&["sync", "--host", &host, spool.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let id = expected["run"].as_str().unwrap();
    let (_, run) = env.get(&format!("/api/v1/runs/{id}"));
    assert_eq!(run["project"], expected["project"]);
    assert_eq!(run["state"], expected["state"]);
    assert_eq!(run["config"], expected["config"]);
    assert_eq!(run["tags"], expected["tags"]);
    assert_eq!(run["summary"]["best_acc"], expected["summary"]["best_acc"]);
    assert_eq!(Value::Object(history(&env, id)), expected["history"]);
    let (_, logs) = env.get(&format!("/api/v1/runs/{id}/logs"));
    let messages: Vec<&Value> = logs["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| &l["message"])
        .collect();
    let want: Vec<&Value> = expected["logs"].as_array().unwrap().iter().collect();
    assert_eq!(messages, want);
}

#[test]
fn auth_token_prints_the_stored_key_and_nothing_else() {
    let env = Env::new();
    let host = env.server.url.clone();
    let none = env
        .signed_out(&["auth", "token", "--host", &host])
        .output()
        .unwrap();
    assert_eq!(code(&none), 1);
    assert!(
        stderr(&none).contains("no API key is stored"),
        "{}",
        stderr(&none)
    );
    assert!(
        stderr(&none).contains("hint: run `wanllmdb login"),
        "{}",
        stderr(&none)
    );
    let login = env
        .signed_out(&["login", "--host", &host, "--api-key", &env.key])
        .output()
        .unwrap();
    assert_eq!(code(&login), 0, "{}", stderr(&login));
    // The last server logged in to is the default; --host names one.
    for args in [
        vec!["auth", "token"],
        vec!["auth", "token", "--host", &host],
    ] {
        let out = env.signed_out(&args).output().unwrap();
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            format!("{}\n", env.key)
        );
    }
}

#[test]
fn wrapped_programs_read_their_config_and_get_system_metrics() {
    let env = Env::new();
    let w = env.work();
    let bin = w.join("fakebin");
    std::fs::create_dir_all(&bin).unwrap();
    let smi = write(
        &bin,
        "nvidia-smi",
        "#!/bin/sh\necho '0, 55, 1024, 4096, 61'\necho '1, 5, 10, 4096, 40'\n",
    );
    std::os::unix::fs::PermissionsExt::set_mode(
        &mut std::fs::metadata(&smi).unwrap().permissions(),
        0o755,
    );
    std::fs::set_permissions(&smi, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    write(
        &w,
        "cfg.py",
        "import json, os, time\nprint(json.dumps(json.load(open(os.environ['WANLLMDB_RUN_CONFIG']))), flush=True)\ntime.sleep(1.5)\n",
    );
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let run = |id: &str, extra: &[&str]| {
        let mut args = vec![
            "run",
            "--project",
            "sys",
            "--id",
            id,
            "--config",
            "lr=0.01",
            "--config",
            "opt.name=adam",
        ];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--", "python3", "cfg.py"]);
        let out = env
            .wl(&args)
            .env("PATH", &path)
            .env("WANLLMDB_SYSTEM_METRICS_INTERVAL", "0.3")
            .output()
            .unwrap();
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        String::from_utf8(out.stdout).unwrap()
    };
    let printed = run("sysmet01", &[]);
    let cfg: Value = serde_json::from_str(printed.trim()).unwrap();
    assert_eq!(
        cfg,
        serde_json::json!({"lr": 0.01, "opt": {"name": "adam"}})
    );
    let h = history(&env, "sysmet01");
    let first = |k: &str| {
        h.get(k)
            .and_then(|s| s.as_object()?.values().next().cloned())
    };
    assert_eq!(
        first("system/gpu/0/utilization_percent"),
        Some(Value::from(55.0))
    );
    assert_eq!(
        first("system/gpu/0/memory_percent"),
        Some(Value::from(25.0))
    );
    assert_eq!(first("system/gpu/1/temperature_c"), Some(Value::from(40.0)));
    assert!(h.contains_key("system/rss_mb") && h.contains_key("system/host_memory_percent"));
    assert!(
        h.contains_key("system/cpu_percent"),
        "two samples give a CPU figure: {h:?}"
    );
    run("sysmet02", &["--no-system-metrics"]);
    assert!(
        history(&env, "sysmet02")
            .keys()
            .all(|k| !k.starts_with("system/"))
    );
}
