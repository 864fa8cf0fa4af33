//! End-to-end tests of the command line: the real `wanllmdb` binary against a real server,
//! with wrapped Python and bash programs, signals, outages and offline runs.

use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::Signal;
use reqwest::StatusCode;
use serde_json::Value;

use crate::support::process::{signal, spawn_reading_stdout, wait_exit, wait_for_line, wait_until};
use crate::support::{BIN, Env, Server, bare, code, repo_root, stderr, write};

fn run_state(env: &Env, id: &str) -> Value {
    let (st, run) = env.get(&format!("/api/v1/runs/{id}"));
    assert_eq!(st, 200, "{run}");
    run
}

const PY_TRAIN: &str = r#"
import json, os, sys, time
n = int(os.environ.get("N", "100"))
f = open(os.environ["WANLLMDB_METRICS"], "a")
for i in range(n):
    if i % 2 == 0:
        f.write(json.dumps({"step": i, "loss": 1.0 / (i + 1), "acc": i / n}) + "\n")
    else:
        f.write(json.dumps({"loss": 1.0 / (i + 1), "acc": i / n}) + "\n")
f.flush()
for i in range(6):
    stream = sys.stdout if i % 2 == 0 else sys.stderr
    print(f"line {i} on {'out' if i % 2 == 0 else 'err'}", file=stream, flush=True)
    time.sleep(0.02)
print("ERROR: a fake problem", file=sys.stderr, flush=True)
sys.exit(int(os.environ.get("EXIT", "0")))
"#;

#[test]
fn wrapped_python_and_bash_programs() {
    let env = Env::new();
    let w = env.work();
    write(&w, "train.py", PY_TRAIN);
    write(&w, "params.yaml", "lr: 0.001\noptimizer:\n  name: adam\n");
    env.ok(&["init", "--project", "wrap"]);
    let toml = std::fs::read_to_string(w.join(".wanllmdb.toml")).unwrap();
    assert!(toml.contains("project = \"wrap\""), "{toml}");

    // Exit 0: finished, every point and line recorded, output passed through unchanged.
    let out = env
        .wl(&[
            "run",
            "--id",
            "pyrun001",
            "--name",
            "baseline",
            "--tag",
            "e2e",
            "--config",
            "params.yaml",
            "--config",
            "optimizer.beta=0.9",
            "--",
            "python3",
            "train.py",
        ])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout, "line 0 on out\nline 2 on out\nline 4 on out\n");
    assert!(stderr(&out).contains("line 1 on err"));
    let run = run_state(&env, "pyrun001");
    assert_eq!(run["state"], "finished");
    assert_eq!(run["exit_code"], 0);
    assert_eq!(run["name"], "baseline");
    assert_eq!(run["config"]["optimizer"]["name"], "adam");
    assert_eq!(run["config"]["optimizer"]["beta"], 0.9);
    assert_eq!(run["config"]["lr"], 0.001);
    assert_eq!(run["program"], "python3 train.py");
    assert!(run["runtime"]["python"].as_str().unwrap().starts_with("3."));
    assert!(run["host"].is_string());
    let (_, h) = env.get("/api/v1/runs/pyrun001/history?keys=loss,acc");
    for s in h["series"].as_array().unwrap() {
        assert_eq!(s["total_points"], 100, "{s}");
        // Lines without a step continue from the previous line's step.
        assert_eq!(s["steps"][99], 99);
    }
    let logs = env.json(&["logs", "pyrun001", "--format", "json"]);
    let got: Vec<(String, String)> = logs
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["source"].as_str().unwrap().to_string(),
                l["message"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let mut want: Vec<(String, String)> = (0..6)
        .map(|i| {
            let s = if i % 2 == 0 { "out" } else { "err" };
            (format!("std{s}"), format!("line {i} on {s}"))
        })
        .collect();
    want.push(("stderr".into(), "ERROR: a fake problem".into()));
    assert_eq!(got, want, "lines are recorded once each, in order");
    assert_eq!(logs[6]["level"], "ERROR");
    let errors = env.ok(&["logs", "pyrun001", "--level", "error"]);
    assert_eq!(errors.lines().count(), 1, "{errors}");

    // Exit 3: crashed, and the wrapper exits 3.
    let out = env
        .wl(&["run", "--id", "pyrun003", "--", "python3", "train.py"])
        .env("EXIT", "3")
        .output()
        .unwrap();
    assert_eq!(code(&out), 3);
    let run = run_state(&env, "pyrun003");
    assert_eq!(run["state"], "crashed");
    assert_eq!(run["exit_code"], 3);

    // bash: `wanllmdb log` inside the wrapper, raw lines, and scalars captured from output.
    write(
        &w,
        "train.sh",
        "set -e\nfor i in 0 1 2; do\n  wanllmdb log --step $i loss=0.$i\n  echo \"{\\\"step\\\": $i, \\\"acc\\\": 0.$((i+5))}\" >> \"$WANLLMDB_METRICS\"\n  echo \"epoch $i val_loss: 1.$i\"\ndone\nwanllmdb log --message 'all done' --level warning\n",
    );
    let out = env
        .wl(&[
            "run",
            "--id",
            "bashrun1",
            "--scalars",
            "val_loss",
            "--",
            "bash",
            "train.sh",
        ])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let h = env.json(&["runs", "history", "bashrun1", "--format", "json"]);
    let series: std::collections::BTreeMap<String, Value> = h["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["key"].as_str().unwrap().to_string(), s.clone()))
        .collect();
    assert_eq!(series["loss"]["values"], serde_json::json!([0.0, 0.1, 0.2]));
    assert_eq!(series["acc"]["values"], serde_json::json!([0.5, 0.6, 0.7]));
    assert_eq!(
        series["val_loss"]["values"],
        serde_json::json!([1.0, 1.1, 1.2])
    );
    assert_eq!(series["val_loss"]["steps"], serde_json::json!([0, 1, 2]));
    assert!(
        !series.contains_key("epoch"),
        "`epoch 0` is not a key: value pair"
    );
    let csv = env.ok(&["runs", "history", "bashrun1", "--keys", "loss,acc"]);
    assert_eq!(csv, "step,loss,acc\n0,0,0.5\n1,0.1,0.6\n2,0.2,0.7\n");
    let warn = env.json(&["logs", "bashrun1", "--format", "json", "--level", "warning"]);
    assert_eq!(warn[0]["message"], "[WARNING] all done");

    // Listing, showing and comparing with --json give the API's objects back.
    let list = env.json(&["runs", "list", "--json", "--tag", "e2e"]);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["id"], "pyrun001");
    let all = env.json(&["runs", "list", "--json", "--sort", "name"]);
    assert_eq!(all.as_array().unwrap().len(), 3);
    let show = env.json(&["runs", "show", "pyrun003", "--json"]);
    assert_eq!(show["state"], "crashed");
    let cmp = env.json(&["runs", "compare", "pyrun001", "pyrun003", "--json"]);
    assert_eq!(
        cmp["config"]["optimizer.name"],
        serde_json::json!(["adam", null])
    );
    assert_eq!(cmp["summary"]["loss"].as_array().unwrap().len(), 2);
    let filtered = env.json(&["runs", "list", "--json", "--filter", "config.lr < 0.01"]);
    assert_eq!(filtered.as_array().unwrap().len(), 1);

    env.ok(&["runs", "tag", "pyrun003", "--add", "bad", "--add", "x"]);
    env.ok(&["runs", "tag", "pyrun003", "--remove", "x"]);
    let out = env
        .wl(&["runs", "tag", "pyrun003", "--add", "y", "--remove", "y"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 1);
    env.ok(&["runs", "notes", "pyrun003", "exit code test"]);
    let show = env.json(&["runs", "show", "pyrun003", "--json"]);
    assert_eq!(show["tags"], serde_json::json!(["bad"]));
    assert_eq!(show["notes"], "exit code test");
    // No terminal to confirm on and no --yes: refused.
    env.fails(&["runs", "delete", "pyrun003"], "--yes");
    env.ok(&["runs", "delete", "pyrun003", "--yes"]);
    assert_eq!(env.get("/api/v1/runs/pyrun003").0, 404);
}

#[test]
fn signals_and_stop_requests_end_the_program() {
    let env = Env::new();
    let sleeper = "import time; print('ready', flush=True); time.sleep(60)";

    let mut cmd = env.wl(&[
        "run",
        "--project",
        "sig",
        "--id",
        "sigterm1",
        "--",
        "python3",
        "-c",
        sleeper,
    ]);
    cmd.stderr(Stdio::null());
    let (mut child, rx) = spawn_reading_stdout(cmd);
    wait_for_line(&rx, "ready");
    signal(child.id(), Signal::SIGTERM);
    let status = wait_exit(&mut child);
    assert_eq!(
        status.code(),
        Some(143),
        "SIGTERM reaches the program; 128 + 15"
    );
    let run = run_state(&env, "sigterm1");
    assert_eq!(run["state"], "killed");

    let mut cmd = env.wl(&[
        "run",
        "--project",
        "sig",
        "--id",
        "stopped1",
        "--",
        "python3",
        "-c",
        sleeper,
    ]);
    cmd.env("WANLLMDB_HEARTBEAT_INTERVAL", "1")
        .stderr(Stdio::null());
    let (mut child, rx) = spawn_reading_stdout(cmd);
    wait_for_line(&rx, "ready");
    env.ok(&["runs", "stop", "stopped1"]);
    let status = wait_exit(&mut child);
    assert_eq!(status.code(), Some(143));
    assert_eq!(run_state(&env, "stopped1")["state"], "killed");
}

#[test]
fn server_outages_lose_and_duplicate_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let mut s = Server::start(&data, &[]);
    let key = s.admin_key.clone().unwrap();
    let url = s.url.clone();
    let bind = url.trim_start_matches("http://").to_string();
    s.signal(Signal::SIGTERM);
    s.wait_exit();

    let n_batches = 30;
    write(
        &work,
        "slow.py",
        &format!(
            "import json, os, time\nf = open(os.environ['WANLLMDB_METRICS'], 'a')\nfor b in range({n_batches}):\n    for i in range(100):\n        s = b * 100 + i\n        f.write(json.dumps({{'step': s, 'v': s * 0.5}}) + '\\n')\n    f.flush()\n    print(f'batch {{b}}', flush=True)\n    time.sleep(0.2)\n"
        ),
    );
    // The server is down when the run starts.
    let mut cmd = bare(&work, &dir.path().join("cfg"));
    cmd.env("WANLLMDB_BASE_URL", &url)
        .env("WANLLMDB_API_KEY", &key)
        .args([
            "run",
            "--project",
            "outage",
            "--id",
            "outage01",
            "--sync-timeout",
            "60",
            "--",
            "python3",
            "slow.py",
        ])
        .stderr(Stdio::piped());
    let (mut child, rx) = spawn_reading_stdout(cmd);
    wait_for_line(&rx, "batch 3");
    let mut s = Server::start_at(&data, &bind, &[]);
    wait_for_line(&rx, "batch 12");
    // Killed mid-run, without warning.
    s.kill();
    wait_for_line(&rx, "batch 17");
    let s = Server::start_at(&data, &bind, &[]);
    let status = wait_exit(&mut child);
    assert_eq!(status.code(), Some(0));

    let api = s.api().with_token(&key);
    let (_, run) = api.get("/api/v1/runs/outage01");
    assert_eq!(run["state"], "finished");
    let (_, h) = api.get("/api/v1/runs/outage01/history?keys=v");
    let total = n_batches * 100;
    assert_eq!(h["series"][0]["total_points"], total);
    let steps = h["series"][0]["steps"].as_array().unwrap();
    let values = h["series"][0]["values"].as_array().unwrap();
    assert_eq!(steps.len(), total);
    for (i, (st, v)) in steps.iter().zip(values).enumerate() {
        assert_eq!(st.as_i64(), Some(i as i64));
        assert_eq!(v.as_f64(), Some(i as f64 * 0.5));
    }
    let (_, logs) = api.get("/api/v1/runs/outage01/logs?format=json");
    let msgs: Vec<&str> = logs
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["message"].as_str().unwrap())
        .collect();
    let want: Vec<String> = (0..n_batches).map(|b| format!("batch {b}")).collect();
    assert_eq!(msgs, want, "every output line exactly once");
}

#[test]
fn offline_runs_upload_with_sync() {
    let env = Env::new();
    let w = env.work();
    write(
        &w,
        "off.py",
        "import json, os\nf = open(os.environ['WANLLMDB_METRICS'], 'a')\nfor i in range(500):\n    f.write(json.dumps({'step': i, 'x': i}) + '\\n')\nopen('summary.txt', 'w').write('ok')\nprint('offline done')\n",
    );
    let out = env
        .wl(&[
            "run",
            "--offline",
            "--project",
            "off",
            "--id",
            "offline1",
            "--save",
            "summary.txt",
            "--",
            "python3",
            "off.py",
        ])
        .env_remove("WANLLMDB_BASE_URL")
        .env("WANLLMDB_BASE_URL", "http://127.0.0.1:9")
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stderr(&out).contains("wanllmdb sync"), "{}", stderr(&out));
    assert_eq!(
        env.get("/api/v1/runs/offline1").0,
        404,
        "offline means offline"
    );

    // The spool remembers the server it was meant for; --host sends it elsewhere.
    let host = env.server.url.clone();
    let dry = env.json(&["sync", "--dry-run", "--json", "--host", &host]);
    assert_eq!(dry[0]["run"], "offline1");
    assert_eq!(dry[0]["status"], "pending");
    assert_eq!(dry[0]["state"], "finished");
    let out = env.wl(&["sync", "--host", &host]).output().unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let run = run_state(&env, "offline1");
    assert_eq!(run["state"], "finished");
    let (_, h) = env.get("/api/v1/runs/offline1/history?keys=x");
    assert_eq!(h["series"][0]["total_points"], 500);
    let (_, logs) = env.get("/api/v1/runs/offline1/logs");
    assert_eq!(logs["items"][0]["message"], "offline done");
    let (_, files) = env.get("/api/v1/runs/offline1/files");
    assert_eq!(
        files[0]["path"], "summary.txt",
        "--save of an offline run is attached by sync"
    );
    // Again: nothing left to send.
    let again = env.json(&["sync", "--json", "--host", &host]);
    assert_eq!(again[0]["status"], "synced");
    let (_, logs) = env.get("/api/v1/runs/offline1/logs");
    assert_eq!(logs["items"].as_array().unwrap().len(), 1);
}

#[test]
fn login_stores_a_private_key_and_whoami_uses_it() {
    let env = Env::new();
    let url = env.server.url.clone();
    // Each command sees only what `wanllmdb login` stored.
    let run = |args: &[&str]| env.signed_out(args).output().unwrap();
    let out = run(&["login", "--host", &url, "--api-key", "wlk_wrong"]);
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("did not accept"), "{}", stderr(&out));

    let out = run(&["login", "--host", &url, "--api-key", &env.key]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("credentials.toml"),
        "{}",
        stderr(&out)
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(env.cfg().join("credentials.toml"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    // No flags and no environment: the stored host and key are used.
    let out = run(&["whoami", "--json"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let me: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(me["username"], "admin");

    let out = run(&["project", "create", "p1", "--json"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let out = run(&["project", "list", "--json"]);
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list[0]["name"], "p1");

    let out = run(&["logout"]);
    assert_eq!(code(&out), 0);
    let out = run(&["whoami", "--host", &url]);
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("wanllmdb login"), "{}", stderr(&out));
}

#[test]
fn bad_input_is_exit_1_with_a_clear_message() {
    let env = Env::new();
    let w = env.work();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["runs", "show", "zzzzzzzz"], "run zzzzzzzz not found"),
        (vec!["runs", "show", "NOT-AN-ID"], "is not valid"),
        (vec!["log", "--run", "zzzzzzzz", "loss"], "is not KEY=VALUE"),
        (
            vec!["log", "--run", "zzzzzzzz", "loss=abc"],
            "is not a number",
        ),
        (
            vec![
                "runs",
                "list",
                "--project",
                "x",
                "--filter",
                "summary.acc >>> 1",
            ],
            "filter",
        ),
        (vec!["runs", "list"], "no project given"),
        (
            vec![
                "run",
                "--project",
                "p",
                "--config",
                "missing.yaml",
                "--",
                "true",
            ],
            "no such file",
        ),
        (
            vec![
                "run",
                "--project",
                "p",
                "--config",
                "bad.yaml",
                "--",
                "true",
            ],
            "not valid YAML",
        ),
        (
            vec!["run", "--project", "p", "--id", "BAD", "--", "true"],
            "run id \"BAD\" is not valid",
        ),
        (
            vec!["run", "--project", "p", "--scalars", "(", "--", "true"],
            "not a valid regular expression",
        ),
        (
            vec!["run", "--project", "p", "--", "/no/such/program"],
            "cannot start",
        ),
        (vec!["sync", "no-such-dir"], "does not exist"),
    ];
    write(&w, "bad.yaml", "a: [unclosed\n");
    env.ok(&["project", "create", "x"]);
    for (args, want) in cases {
        let err = env.fails(&args, want);
        assert!(
            err.starts_with("error: ") || err.contains("\nerror: "),
            "{args:?}: {err}"
        );
    }
    // A server that is not there: exit 1 with a hint.
    let err = env.fails(
        &[
            "runs",
            "list",
            "--project",
            "x",
            "--host",
            "http://127.0.0.1:9",
        ],
        "cannot reach the server",
    );
    assert!(err.contains("hint:"), "{err}");
    // With no host anywhere, the client tries the server's default port and says so (when
    // nothing else on this machine answers there).
    if std::net::TcpStream::connect("127.0.0.1:8000").is_err() {
        let out = bare(&env.work(), &env.dir.path().join("fresh-cfg"))
            .args(["runs", "list", "--project", "x"])
            .output()
            .unwrap();
        assert!(
            stderr(&out).contains("cannot reach the server at http://127.0.0.1:8000"),
            "{}",
            stderr(&out)
        );
    }
}

#[test]
fn logs_follow_streams_until_the_run_ends() {
    let env = Env::new();
    let prog = "import time\nfor i in range(6):\n    print(f'tick {i}', flush=True)\n    time.sleep(0.3)\n";
    write(&env.work(), "ticks.py", prog);
    let mut cmd = env.wl(&[
        "run",
        "--project",
        "follow",
        "--id",
        "follow01",
        "--",
        "python3",
        "ticks.py",
    ]);
    cmd.stderr(Stdio::null());
    let (mut wrapper, rx) = spawn_reading_stdout(cmd);
    wait_for_line(&rx, "tick 0");
    wait_until(Duration::from_secs(20), "the run to appear", || {
        env.get("/api/v1/runs/follow01").0 == StatusCode::OK
    });
    let mut follow = env
        .wl(&["logs", "follow01", "--follow", "--format", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert_eq!(wait_exit(&mut wrapper).code(), Some(0));
    let status = wait_exit(&mut follow);
    assert!(
        status.success(),
        "--follow ends by itself when the run ends"
    );
    let mut text = String::new();
    std::io::Read::read_to_string(follow.stdout.as_mut().unwrap(), &mut text).unwrap();
    let msgs: Vec<String> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["message"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let want: Vec<String> = (0..6).map(|i| format!("tick {i}")).collect();
    assert_eq!(msgs, want);
}

#[test]
fn run_files_round_trip_through_the_command_line() {
    let env = Env::new();
    let w = env.work();
    std::fs::create_dir_all(w.join("ckpt/sub")).unwrap();
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(w.join("ckpt/model.bin"), &big).unwrap();
    std::fs::write(w.join("ckpt/sub/notes.txt"), "hello").unwrap();
    std::fs::write(w.join("config.yaml"), "lr: 0.1\n").unwrap();

    // The wrapper attaches what --save names when the program ends.
    let prog =
        "import os\nos.makedirs('out', exist_ok=True)\nopen('out/result.txt', 'w').write('42')\n";
    write(&w, "save.py", prog);
    let out = env
        .wl(&[
            "run",
            "--project",
            "files",
            "--id",
            "filerun1",
            "--save",
            "out/*.txt",
            "--",
            "python3",
            "save.py",
        ])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let files = env.json(&["files", "list", "filerun1", "--json"]);
    assert_eq!(files[0]["path"], "out/result.txt");

    let report = env.json(&["files", "put", "filerun1", "ckpt", "config.yaml", "--json"]);
    assert_eq!(report["files"], 3);
    assert_eq!(report["uploaded"], 3);
    // Unchanged content is not sent again.
    let again = env.json(&["files", "put", "filerun1", "ckpt", "config.yaml", "--json"]);
    assert_eq!(again["uploaded"], 0);
    let files = env.json(&["files", "list", "filerun1", "--json"]);
    let paths: Vec<&str> = files
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        [
            "ckpt/model.bin",
            "ckpt/sub/notes.txt",
            "config.yaml",
            "out/result.txt"
        ]
    );

    let dest = env.dir.path().join("dest");
    let out = env
        .wl(&["files", "get", "filerun1", "--dir", dest.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(std::fs::read(dest.join("ckpt/model.bin")).unwrap(), big);
    assert_eq!(
        std::fs::read_to_string(dest.join("ckpt/sub/notes.txt")).unwrap(),
        "hello"
    );
    assert_eq!(
        std::fs::read_to_string(dest.join("out/result.txt")).unwrap(),
        "42"
    );
    let out = env
        .wl(&[
            "files",
            "get",
            "filerun1",
            "config.yaml",
            "--dir",
            dest.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(stderr(&out).contains("0 downloaded"), "{}", stderr(&out));

    env.ok(&["files", "rm", "filerun1", "config.yaml"]);
    // Just detached: its bytes are kept for now (an upload may still refer to them).
    let gc = env.json(&["admin", "gc", "--dry-run", "--json"]);
    assert_eq!(
        (gc["dry_run"].clone(), gc["blobs"].clone()),
        (Value::Bool(true), Value::from(0))
    );
    env.fails(
        &["files", "get", "filerun1", "config.yaml"],
        "has no file config.yaml",
    );
}

#[test]
fn artifacts_round_trip_through_the_command_line() {
    let env = Env::new();
    let w = env.work();
    std::fs::create_dir_all(w.join("data/sub")).unwrap();
    let big: Vec<u8> = (0..2_500_000u32).map(|i| (i * 13 % 251) as u8).collect();
    std::fs::write(w.join("data/train.bin"), &big).unwrap();
    std::fs::write(w.join("data/sub/labels.csv"), "id,label\n1,cat\n").unwrap();
    std::fs::write(w.join("data/copy.bin"), &big).unwrap();

    // Logged from inside a wrapped run: that run is recorded as the producer.
    let out = env
        .wl(&[
            "run",
            "--project",
            "arts",
            "--id",
            "artrun01",
            "--",
            "wanllmdb",
            "artifact",
            "put",
            "data",
            "--name",
            "ds",
            "--type",
            "dataset",
            "--alias",
            "staging",
            "--metadata",
            "rows=2",
            "--json",
        ])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let put: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(put["version"]["version"], "v1");
    assert_eq!(put["version"]["run"], "artrun01");
    assert_eq!(put["version"]["file_count"], 3);
    // Equal content is uploaded once.
    assert_eq!(put["uploaded"], 2);

    let again = env.json(&[
        "artifact",
        "put",
        "data",
        "--name",
        "ds",
        "--project",
        "arts",
        "--json",
    ]);
    assert_eq!(again["created"], false);
    assert_eq!(again["bytes_uploaded"], 0);

    let get = |dir: &str, spec: &str| -> Value {
        let dest = env.dir.path().join(dir);
        env.json(&[
            "artifact",
            "get",
            spec,
            "--project",
            "arts",
            "--dir",
            dest.to_str().unwrap(),
            "--json",
        ])
    };
    let first = get("d1", "ds");
    assert_eq!(
        (first["downloaded"].clone(), first["from_cache"].clone()),
        (3.into(), 0.into())
    );
    let d1 = env.dir.path().join("d1");
    assert_eq!(std::fs::read(d1.join("train.bin")).unwrap(), big);
    assert_eq!(std::fs::read(d1.join("copy.bin")).unwrap(), big);
    assert_eq!(
        std::fs::read_to_string(d1.join("sub/labels.csv")).unwrap(),
        "id,label\n1,cat\n"
    );
    // The same content again: copied from the local cache, nothing over the network.
    let second = get("d2", "ds:staging");
    assert_eq!(
        (second["downloaded"].clone(), second["from_cache"].clone()),
        (0.into(), 3.into())
    );
    assert_eq!(
        std::fs::read(env.dir.path().join("d2/train.bin")).unwrap(),
        big
    );
    // Into the same directory: nothing to do.
    let third = get("d1", "ds:v1");
    assert_eq!(third["already_there"], 3);

    // A damaged cache entry is noticed and the content downloaded again.
    let cache = env.dir.path().join("cfg/cache/blobs/sha256");
    let mut damaged = 0;
    for shard in std::fs::read_dir(&cache).unwrap().flatten() {
        for f in std::fs::read_dir(shard.path()).unwrap().flatten() {
            let mut bytes = std::fs::read(f.path()).unwrap();
            if bytes.len() == big.len() {
                bytes[1000] ^= 0xff;
                std::fs::write(f.path(), bytes).unwrap();
                damaged += 1;
            }
        }
    }
    assert_eq!(damaged, 1);
    let fourth = get("d3", "ds");
    assert_eq!(fourth["from_cache"], 1, "{fourth}");
    assert_eq!(
        std::fs::read(env.dir.path().join("d3/train.bin")).unwrap(),
        big
    );
    assert_eq!(
        std::fs::read(env.dir.path().join("d3/copy.bin")).unwrap(),
        big
    );

    // Getting it inside another run records that run as a user.
    let d4 = env.dir.path().join("d4");
    let out = env
        .wl(&[
            "run",
            "--project",
            "arts",
            "--id",
            "artrun02",
            "--",
            "wanllmdb",
            "artifact",
            "get",
            "ds:latest",
            "--dir",
            d4.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let show = env.json(&["artifact", "show", "ds:v1", "--project", "arts", "--json"]);
    assert_eq!(show["lineage"]["produced_by"]["id"], "artrun01");
    assert_eq!(show["lineage"]["used_by"][0]["id"], "artrun02");
    assert_eq!(show["files"].as_array().unwrap().len(), 3);

    // Aliases move; bad names and unknown versions are clear errors.
    env.ok(&[
        "artifact",
        "alias",
        "ds:v1",
        "production",
        "--project",
        "arts",
    ]);
    let aliases = env.json(&["artifact", "aliases", "ds", "--project", "arts", "--json"]);
    let names: Vec<&str> = aliases
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["alias"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["latest", "production", "staging"]);
    let refusals: [(&[&str], &str); 2] = [
        (&["artifact", "get", "ds:v7", "--project", "arts"], "v7"),
        (
            &[
                "artifact",
                "ref",
                "leak",
                "https://127.0.0.1/secret",
                "--type",
                "x",
                "--project",
                "arts",
            ],
            "loopback",
        ),
    ];
    for (args, want) in refusals {
        env.fails(args, want);
    }
    let updated = env.json(&[
        "artifact",
        "update",
        "ds",
        "--project",
        "arts",
        "--description",
        "toy data",
        "--tag",
        "small",
        "--json",
    ]);
    assert_eq!(updated["description"], "toy data");
    assert_eq!(updated["tags"], serde_json::json!(["small"]));
    env.fails(
        &["artifact", "update", "ds", "--project", "arts"],
        "nothing to change",
    );
    env.ok(&["artifact", "delete", "ds", "--yes", "--project", "arts"]);
    let list = env.json(&["artifact", "ls", "--project", "arts", "--json"]);
    assert_eq!(list, serde_json::json!([]));
}

#[test]
fn artifacts_round_trip_through_object_storage() {
    let Some(moto) = crate::support::moto::start("wl-bucket") else {
        return;
    };
    let conf_dir = tempfile::tempdir().unwrap();
    let conf = write(
        conf_dir.path(),
        "server.toml",
        &format!(
            "storage_url = \"s3://{}/data\"\ns3_endpoint = \"{}\"\ns3_access_key_id = \"test\"\n\
             s3_secret_access_key = \"test\"\ns3_multipart_threshold = 6291456\ns3_part_size = 5242880\n",
            moto.bucket, moto.endpoint
        ),
    );
    let env = Env::with_server_args(&["--config", conf.to_str().unwrap()]);
    let work = env.work();
    std::fs::create_dir_all(work.join("model")).unwrap();
    // Large enough to go in parts with the settings above (6 MiB threshold, 5 MiB parts).
    let weights: Vec<u8> = (0..13_000_000u32).map(|i| (i % 241) as u8).collect();
    std::fs::write(work.join("model/weights.bin"), &weights).unwrap();
    std::fs::write(work.join("model/config.json"), "{\"layers\": 4}").unwrap();
    let wl = |args: &[&str]| {
        let out = env
            .wl(args)
            .env("WANLLMDB_PROJECT", "s3p")
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let put = wl(&[
        "artifact", "put", "model", "--name", "m", "--type", "model", "--json",
    ]);
    assert_eq!(put["uploaded"], 2, "{put}");
    let dest = env.dir.path().join("got");
    let got = wl(&[
        "artifact",
        "get",
        "m:v1",
        "--dir",
        dest.to_str().unwrap(),
        "--no-cache",
        "--json",
    ]);
    assert_eq!(got["downloaded"], 2);
    assert_eq!(std::fs::read(dest.join("weights.bin")).unwrap(), weights);
    assert_eq!(
        std::fs::read_to_string(dest.join("config.json")).unwrap(),
        "{\"layers\": 4}"
    );
}

#[test]
fn changed_files_are_hashed_again_even_with_their_old_time() {
    let env = Env::new();
    let w = env.work();
    std::fs::create_dir_all(w.join("d")).unwrap();
    let file = w.join("d/a.txt");
    std::fs::write(&file, "aaaa").unwrap();
    let put = || {
        env.json(&[
            "artifact",
            "put",
            "d",
            "--name",
            "m",
            "--type",
            "x",
            "--project",
            "memo",
            "--json",
        ])
    };
    assert_eq!(put()["version"]["version"], "v1");
    // Unchanged: the remembered digest is used, and nothing changes.
    assert_eq!(put()["created"], false);
    let memo = std::fs::read_to_string(env.dir.path().join("cfg/cache/digests.tsv")).unwrap();
    assert!(memo.contains("a.txt"), "{memo}");
    // Same size, new bytes, and the old modification time put back: still noticed.
    let old = std::fs::metadata(&file).unwrap().modified().unwrap();
    std::fs::write(&file, "bbbb").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&file)
        .unwrap()
        .set_modified(old)
        .unwrap();
    let again = put();
    assert_eq!(again["created"], true, "{again}");
    assert_eq!(again["version"]["version"], "v2");
    let files = env.json(&["artifact", "show", "m:v2", "--project", "memo", "--json"]);
    use sha2::Digest;
    assert_eq!(
        files["files"][0]["sha256"],
        hex::encode(sha2::Sha256::digest(b"bbbb"))
    );
}

#[test]
fn completions_and_man_pages_are_current() {
    // The repository's completions/ and man/ must match what the binary generates; refresh
    // them with `cargo run -p wanllmdb -- generate-docs .`.
    let dir = tempfile::tempdir().unwrap();
    let status = std::process::Command::new(BIN)
        .arg("generate-docs")
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    let root = repo_root();
    for sub in ["completions", "man"] {
        let mut generated: Vec<_> = std::fs::read_dir(dir.path().join(sub))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        let mut committed: Vec<_> = std::fs::read_dir(root.join(sub))
            .unwrap_or_else(|_| {
                panic!("{sub}/ is missing: run `cargo run -p wanllmdb -- generate-docs .`")
            })
            .map(|e| e.unwrap().file_name())
            .collect();
        generated.sort();
        committed.sort();
        assert_eq!(
            generated, committed,
            "{sub}/ is stale: run `cargo run -p wanllmdb -- generate-docs .`"
        );
        for name in generated {
            let a = std::fs::read(dir.path().join(sub).join(&name)).unwrap();
            let b = std::fs::read(root.join(sub).join(&name)).unwrap();
            assert!(
                a == b,
                "{sub}/{} is stale: run `cargo run -p wanllmdb -- generate-docs .`",
                name.to_string_lossy()
            );
        }
    }
    let out = std::process::Command::new(BIN)
        .args(["completions", "bash"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("wanllmdb"));

    let out = std::process::Command::new(BIN)
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("wanllmdb "));
}
