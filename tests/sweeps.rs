//! Sweeps end to end: W&B-format configs run to completion by concurrent agents that spawn
//! real Python and bash training programs; Hyperband stops; a killed agent; a broken command.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::process::{running, wait_exit_within};
use crate::support::{Env, code, stderr, write};

impl Env {
    /// `wanllmdb sweep agent ID` with quick heartbeats.
    fn agent(&self, id: &str, extra: &[&str]) -> Child {
        let mut args = vec!["sweep", "agent", id];
        args.extend_from_slice(extra);
        let mut cmd = self.wl(&args);
        cmd.env("WANLLMDB_SWEEP_HEARTBEAT", "0.3")
            .env("WANLLMDB_HEARTBEAT_INTERVAL", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        cmd.spawn().unwrap()
    }

    fn create_sweep(&self, file: &Path) -> String {
        let s = self.json(&[
            "sweep",
            "create",
            file.to_str().unwrap(),
            "--project",
            "sw",
            "--json",
        ]);
        s["id"].as_str().unwrap().to_string()
    }

    fn trials(&self, id: &str) -> Vec<Value> {
        let v = self.json(&["sweep", "trials", id, "--json"]);
        v.as_array().unwrap().clone()
    }
}

/// Waits for an agent and returns its exit code and stderr.
fn finish(mut agent: Child, limit: Duration) -> (i32, String) {
    let Some(status) = wait_exit_within(&mut agent, limit) else {
        let _ = agent.kill();
        let out = agent.wait_with_output().unwrap();
        panic!(
            "agent still running after {limit:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let mut err = String::new();
    if let Some(mut e) = agent.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut err);
    }
    (status.code().unwrap_or(-1), err)
}

/// A W&B-style training script: parses `--key=value` arguments, checks them against
/// WANLLMDB_SWEEP_PARAMS and the parameters file, and logs a loss curve.
const PY_TRAIN: &str = r#"
import json, os, sys, time
args = {}
for a in sys.argv[1:]:
    k, v = a[2:].split("=", 1)
    args[k] = v
params = json.loads(os.environ["WANLLMDB_SWEEP_PARAMS"])
with open(os.environ["WANLLMDB_SWEEP_PARAMS_FILE"]) as f:
    assert json.load(f) == params
for k, v in params.items():
    want = json.dumps(v, separators=(",", ":")) if isinstance(v, (dict, list)) else str(v)
    if args.get(k) != want:
        print(f"argument {k}={args.get(k)!r} but params say {want!r}", file=sys.stderr)
        sys.exit(3)
m = open(os.environ["WANLLMDB_METRICS"], "a")
x = float(params["a"])
for step in range(5):
    m.write(json.dumps({"step": step, "loss": x + 1.0 / (step + 1)}) + "\n")
    m.flush()
    time.sleep(0.05)
print("trained with", params["a"], params["opt"]["name"], flush=True)
"#;

#[test]
fn grid_and_random_sweeps_run_to_completion_with_two_agents() {
    let env = Env::new();
    let work = env.work();
    write(&work, "train.py", PY_TRAIN);
    let grid = write(
        &work,
        "grid.yaml",
        "program: train.py
method: grid
metric:
  name: loss
  goal: minimize
parameters:
  a:
    values: [1, 2, 3]
  opt:
    parameters:
      name:
        values: [adam, sgd]
  epochs:
    value: 5
",
    );
    env.ok(&["sweep", "validate", grid.to_str().unwrap()]);
    let id = env.create_sweep(&grid);
    let agents = [env.agent(&id, &[]), env.agent(&id, &[])];
    for a in agents {
        let (c, err) = finish(a, Duration::from_secs(120));
        assert_eq!(c, 0, "{err}");
    }
    let trials = env.trials(&id);
    assert_eq!(trials.len(), 6, "{trials:?}");
    let points: BTreeSet<String> = trials.iter().map(|t| t["params"].to_string()).collect();
    assert_eq!(points.len(), 6, "every grid point exactly once");
    for t in &trials {
        assert_eq!(t["state"], "finished", "{t}");
        assert_eq!(t["iterations"], 5);
        let (_, run) = env.get(&format!("/api/v1/runs/{}", t["run_id"].as_str().unwrap()));
        assert_eq!(run["config"]["opt"]["name"], t["params"]["opt.name"]);
        assert_eq!(run["job_type"], "sweep");
    }
    let agent_ids: BTreeSet<&str> = trials
        .iter()
        .map(|t| t["agent_id"].as_str().unwrap())
        .collect();
    assert_eq!(agent_ids.len(), 2, "both agents worked");
    let show = env.json(&["sweep", "show", &id, "--json"]);
    assert_eq!(show["sweep"]["state"], "finished");
    assert_eq!(show["sweep"]["best"]["params"]["a"], 1);
    assert_eq!(show["analysis"]["lines"].as_array().unwrap().len(), 6);
    let table = env.ok(&["sweep", "show", &id]);
    assert!(table.contains("parameter importance"), "{table}");

    // A random sweep with a bash program that takes `key=value` arguments, capped at 4 runs.
    write(
        &work,
        "train.sh",
        r#"#!/bin/bash
for kv in "$@"; do eval "${kv%%=*}='${kv#*=}'"; done
case "$opt" in adam|sgd) ;; *) echo "bad opt $opt" >&2; exit 4;; esac
awk -v lr="$lr" 'BEGIN { if (lr < 0.001 || lr > 0.1) exit 5 }' || { echo "lr $lr out of range" >&2; exit 5; }
for step in 0 1 2; do echo "{\"step\": $step, \"loss\": $lr}" >> "$WANLLMDB_METRICS"; done
"#,
    );
    let random = write(
        &work,
        "random.yaml",
        "method: random
run_cap: 4
metric: {name: loss, goal: minimize}
command: [bash, train.sh, \"${args_no_hyphens}\"]
parameters:
  lr: {distribution: log_uniform_values, min: 0.001, max: 0.1}
  opt: {values: [adam, sgd], probabilities: [0.5, 0.5]}
",
    );
    let id = env.create_sweep(&random);
    let agents = [env.agent(&id, &[]), env.agent(&id, &[])];
    for a in agents {
        let (c, err) = finish(a, Duration::from_secs(120));
        assert_eq!(c, 0, "{err}");
    }
    let trials = env.trials(&id);
    assert_eq!(trials.len(), 4);
    for t in &trials {
        assert_eq!(t["state"], "finished", "{t}");
        let lr = t["params"]["lr"].as_f64().unwrap();
        assert!((0.001..=0.1).contains(&lr));
        assert_eq!(t["value"].as_f64().unwrap(), lr);
    }

    // Bayesian search with Hyperband, as W&B users write it: runs to its cap and finishes.
    write(
        &work,
        "bayes.py",
        r#"
import json, os, time
p = json.loads(os.environ["WANLLMDB_SWEEP_PARAMS"])
m = open(os.environ["WANLLMDB_METRICS"], "a")
for step in range(6):
    loss = (p["lr"] - 0.01) ** 2 * 1e4 + p["layers"] * 0.01 + 1.0 / (step + 1)
    m.write(json.dumps({"step": step, "val_loss": loss}) + "\n")
    m.flush()
    time.sleep(0.05)
"#,
    );
    let bayes = write(
        &work,
        "bayes.yaml",
        "program: bayes.py
method: bayes
metric: {name: val_loss, goal: minimize}
run_cap: 8
early_terminate: {type: hyperband, min_iter: 2, eta: 3}
optuna_config: {n_startup_trials: 3}
parameters:
  lr: {distribution: log_uniform_values, min: 0.0001, max: 0.1}
  layers: {distribution: int_uniform, min: 1, max: 6}
",
    );
    let id = env.create_sweep(&bayes);
    let agents = [env.agent(&id, &[]), env.agent(&id, &[])];
    for a in agents {
        let (c, err) = finish(a, Duration::from_secs(120));
        assert_eq!(c, 0, "{err}");
    }
    let trials = env.trials(&id);
    assert_eq!(trials.len(), 8);
    for t in &trials {
        match t["state"].as_str().unwrap() {
            "finished" => assert_eq!(t["iterations"], 6, "{t}"),
            "killed" => assert_eq!(t["stop_reason"], "early-terminated", "{t}"),
            other => panic!("trial ended {other}: {t}"),
        }
        let lr = t["params"]["lr"].as_f64().unwrap();
        assert!((0.0001..=0.1).contains(&lr), "{t}");
    }
    let show = env.json(&["sweep", "show", &id, "--json"]);
    assert_eq!(show["sweep"]["state"], "finished", "{show}");
    assert_eq!(show["analysis"]["importance"].as_array().unwrap().len(), 2);

    let list = env.json(&["sweep", "list", "--project", "sw", "--json"]);
    assert_eq!(list.as_array().unwrap().len(), 3);
}

#[test]
fn cancel_stops_a_run_that_ignores_sigterm_with_sigkill() {
    let env = Env::new();
    let work = env.work();
    write(
        &work,
        "stubborn.sh",
        "trap '' TERM\necho started > started\nsleep 60\n",
    );
    let cfg = write(
        &work,
        "stubborn.yaml",
        "command: [bash, stubborn.sh]\nmethod: random\nparameters:\n  x: {values: [1, 2]}\n",
    );
    let id = env.create_sweep(&cfg);
    let agent = env.agent(&id, &["--grace", "1"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !work.join("started").exists() {
        assert!(Instant::now() < deadline, "the run never started");
        std::thread::sleep(Duration::from_millis(100));
    }
    let started = Instant::now();
    env.ok(&["sweep", "cancel", &id]);
    let (c, err) = finish(agent, Duration::from_secs(30));
    assert_eq!(c, 0, "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "SIGKILL came late"
    );
    assert!(err.contains("SIGKILL"), "{err}");
    let trials = env.trials(&id);
    assert_eq!(trials.len(), 1);
    let (_, run) = env.get(&format!(
        "/api/v1/runs/{}",
        trials[0]["run_id"].as_str().unwrap()
    ));
    assert_eq!(run["state"], "killed", "{run}");
    assert_eq!(run["end_reason"], "sweep-canceled");
    assert_eq!(run["exit_code"], 137);
}

#[test]
fn hyperband_stops_the_slow_loser_with_sigterm() {
    let env = Env::new();
    let work = env.work();
    // Loss is x + 1/(step+1). The bad point (0.9) is slow, so the good ones have set the
    // thresholds by the time it reaches a band. It records that SIGTERM arrived.
    write(
        &work,
        "curve.py",
        r#"
import json, os, signal, sys, time
x = json.loads(os.environ["WANLLMDB_SWEEP_PARAMS"])["x"]
def on_term(*_):
    open(f"sigterm-{x}", "w").write("yes")
    sys.exit(0)
signal.signal(signal.SIGTERM, on_term)
m = open(os.environ["WANLLMDB_METRICS"], "a")
for step in range(12):
    m.write(json.dumps({"step": step, "loss": x + 1.0 / (step + 1)}) + "\n")
    m.flush()
    time.sleep(0.6 if x > 0.5 else 0.05)
"#,
    );
    let cfg = write(
        &work,
        "hb.yaml",
        "program: curve.py
method: grid
metric: {name: loss, goal: minimize}
early_terminate: {type: hyperband, min_iter: 2, eta: 2}
parameters:
  x: {values: [0.1, 0.2, 0.9, 0.15]}
",
    );
    let id = env.create_sweep(&cfg);
    let agents = [
        env.agent(&id, &["--grace", "5"]),
        env.agent(&id, &["--grace", "5"]),
    ];
    for a in agents {
        let (c, err) = finish(a, Duration::from_secs(120));
        assert_eq!(c, 0, "{err}");
    }
    let trials = env.trials(&id);
    let by_x = |x: f64| {
        trials
            .iter()
            .find(|t| t["params"]["x"].as_f64() == Some(x))
            .unwrap()
            .clone()
    };
    let loser = by_x(0.9);
    assert_eq!(loser["state"], "killed", "{loser}");
    assert_eq!(loser["stop_reason"], "early-terminated");
    assert!(loser["iterations"].as_u64().unwrap() < 12, "{loser}");
    let (_, run) = env.get(&format!(
        "/api/v1/runs/{}",
        loser["run_id"].as_str().unwrap()
    ));
    assert_eq!(run["state"], "killed");
    assert_eq!(run["end_reason"], "early-terminated");
    assert!(work.join("sigterm-0.9").exists(), "the program got SIGTERM");
    for x in [0.1, 0.2] {
        let t = by_x(x);
        assert_eq!(t["state"], "finished", "{t}");
        assert!(t["stop_reason"].is_null());
    }
}

#[test]
fn a_killed_agent_leaves_a_crashed_run_and_a_broken_command_stops_the_agent() {
    // Heartbeats time out (and the reaper runs) after 3 seconds.
    let env = Env::with_server_args(&["--heartbeat-timeout", "3"]);
    let work = env.work();
    // The first run hangs (and records its pid); later ones finish at once.
    write(
        &work,
        "hang.py",
        r#"
import json, os, time
if not os.path.exists("hung"):
    open("hung", "w").write(str(os.getpid()))
    open(os.environ["WANLLMDB_METRICS"], "a").write(json.dumps({"loss": 1.0}) + "\n")
    time.sleep(120)
open(os.environ["WANLLMDB_METRICS"], "a").write(json.dumps({"loss": 0.5}) + "\n")
"#,
    );
    let cfg = write(
        &work,
        "hang.yaml",
        "program: hang.py
method: random
run_cap: 2
metric: {name: loss, goal: minimize}
parameters:
  x: {min: 0.0, max: 1.0}
",
    );
    let id = env.create_sweep(&cfg);
    let mut first = env.agent(&id, &[]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !work.join("hung").exists() {
        assert!(Instant::now() < deadline, "the first run never started");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    first.kill().unwrap();
    let _ = first.wait();
    // The reaper marks the silent run crashed; a new agent carries on with the sweep.
    let second = env.agent(&id, &[]);
    let (c, err) = finish(second, Duration::from_secs(60));
    assert_eq!(c, 0, "{err}");
    let pid = std::fs::read_to_string(work.join("hung")).unwrap();
    let _ = std::process::Command::new("kill")
        .args(["-9", pid.trim()])
        .status();
    // The second agent may leave (run cap reached) before the reaper has noticed.
    let deadline = Instant::now() + Duration::from_secs(30);
    let trials = loop {
        let trials = env.trials(&id);
        if trials[0]["state"] == "crashed" || Instant::now() > deadline {
            break trials;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(trials.len(), 2, "{trials:?}");
    assert_eq!(trials[0]["state"], "crashed", "{trials:?}");
    assert_eq!(trials[1]["state"], "finished", "{trials:?}");
    let show = env.json(&["sweep", "show", &id, "--json"]);
    assert_eq!(show["sweep"]["state"], "finished", "{show}");

    // A command that fails at once, every time: the agent gives up after three runs and
    // shows why.
    write(
        &work,
        "broken.py",
        "import sys\nprint('boom: unknown flag --lr', file=sys.stderr)\nsys.exit(2)\n",
    );
    let cfg = write(
        &work,
        "broken.yaml",
        "program: broken.py\nmethod: random\nparameters:\n  lr: {min: 0.0, max: 1.0}\n",
    );
    let id = env.create_sweep(&cfg);
    let (c, err) = finish(env.agent(&id, &[]), Duration::from_secs(60));
    assert_eq!(c, 1, "{err}");
    assert!(err.contains("first 3 runs all failed"), "{err}");
    assert!(err.contains("boom: unknown flag --lr"), "{err}");
    assert!(err.contains("broken.py"), "{err}");
    assert_eq!(env.trials(&id).len(), 3);

    // Invalid configs: every problem, with its path, and exit 1.
    let bad = write(
        &work,
        "bad.yaml",
        "method: grid\nparameters:\n  lr: {min: 0.1, max: 0.01}\n  wd: {distribution: uniform, min: 0, max: 1}\nearly_terminate: {type: hyperband}\nbogus: 1\n",
    );
    let out = env
        .wl(&["sweep", "validate", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(code(&out), 1);
    let err = stderr(&out);
    for want in [
        "parameters.lr.max: must be greater than min",
        "parameters.wd",
        "early_terminate",
        "bogus",
    ] {
        assert!(err.contains(want), "{want} not in {err}");
    }

    // Valid, but log_uniform takes exponents: validate and create both say what it samples.
    let exps = write(
        &work,
        "exps.yaml",
        "program: train.py\nmethod: random\nparameters:\n  lr: {distribution: log_uniform, min: 0.0001, max: 0.1}\n",
    );
    for cmd in ["validate", "create"] {
        let out = env
            .wl(&["sweep", cmd, exps.to_str().unwrap(), "--project", "sw"])
            .output()
            .unwrap();
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains("warning: parameters.lr: log_uniform takes exponents")
                && err.contains("use distribution: log_uniform_values"),
            "{cmd}: {err}"
        );
    }
    // Deleting one: without --yes and a terminal it asks for confirmation and refuses.
    let gone = env.create_sweep(&exps);
    env.fails(&["sweep", "delete", &gone], "--yes");
    let d = env.json(&["sweep", "delete", &gone, "--yes", "--json"]);
    assert_eq!(d["id"], gone.as_str());
    assert_eq!(d["detached_runs"], serde_json::json!([]));
    let out = env.wl(&["sweep", "show", &gone]).output().unwrap();
    assert_eq!(code(&out), 1);
}

#[cfg(target_os = "linux")]
#[test]
fn a_killed_agent_leaves_no_program_running() {
    let env = Env::new();
    let work = env.work();
    write(
        &work,
        "hold.py",
        r#"
import os, subprocess, time
child = subprocess.Popen(["sleep", "300"])
open("child.pid", "w").write(str(child.pid))
open("program.pid", "w").write(str(os.getpid()))
time.sleep(300)
"#,
    );
    let cfg = write(
        &work,
        "hold.yaml",
        "program: hold.py\nmethod: grid\nparameters:\n  x: {values: [1]}\n",
    );
    let id = env.create_sweep(&cfg);
    let mut agent = env.agent(&id, &[]);
    let read = |name: &str| std::fs::read_to_string(work.join(name)).ok();
    let deadline = Instant::now() + Duration::from_secs(60);
    let (program, child) = loop {
        if let (Some(p), Some(c)) = (read("program.pid"), read("child.pid"))
            && !p.is_empty()
            && !c.is_empty()
        {
            break (p, c);
        }
        assert!(Instant::now() < deadline, "the program did not start");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(running(&program) && running(&child));
    agent.kill().unwrap();
    agent.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while running(&program) || running(&child) {
        assert!(
            Instant::now() < deadline,
            "the program or what it started outlived the agent killed with SIGKILL"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
