//! The command line's rough edges, each as a new user met it: a closed stdout, `--sort` with a
//! leading `-`, `--json` everywhere, scripts reading ids, offline runs keeping their times,
//! empty answers that explain themselves, a program without `--`, and a killed wrapper that
//! must not leave its program running.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::process::running;
use crate::support::{Env, code, repo_root, stderr, write};

/// A run of project `p` with a few metric points and log lines; its id.
fn run_with_history(env: &Env) -> String {
    let out = env
        .wl(&[
            "run",
            "--project",
            "p",
            "--",
            "bash",
            "-c",
            "for i in $(seq 0 300); do echo \"{\\\"step\\\": $i, \\\"loss\\\": 0.$i}\" >> \"$WANLLMDB_METRICS\"; echo line $i; done",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let runs = env.json(&["runs", "list", "--project", "p", "--json"]);
    runs[0]["id"].as_str().unwrap().to_string()
}

#[test]
fn a_closed_stdout_ends_every_command_quietly() {
    let env = Env::new();
    let id = run_with_history(&env);
    for args in [
        vec!["whoami"],
        vec!["whoami", "--json"],
        vec!["runs", "history", id.as_str()],
        vec!["runs", "history", id.as_str(), "--json"],
        vec!["logs", id.as_str()],
        vec!["runs", "list", "--project", "p"],
        vec!["runs", "list", "--project", "p", "--json"],
        vec!["completions", "bash"],
    ] {
        // A pipe whose reader is already gone: every write fails at once, as under `| head`
        // once head has what it wants.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = env
            .wl(&args)
            .stdout(Stdio::from(writer))
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
            .wait_with_output()
            .unwrap();
        assert_eq!(code(&out), 0, "{args:?}: {}", stderr(&out));
        assert_eq!(stderr(&out), "", "{args:?}");
    }
}

#[test]
fn json_everywhere_and_sort_keys_with_a_minus() {
    let env = Env::new();
    let id = run_with_history(&env);
    let h = env.json(&["runs", "history", &id, "--json", "--keys", "loss"]);
    assert_eq!(h["series"][0]["key"], "loss");
    assert_eq!(h["series"][0]["steps"].as_array().unwrap().len(), 301);
    let logs = env.json(&["logs", &id, "--json"]);
    assert!(
        logs.as_array()
            .unwrap()
            .iter()
            .any(|l| l["message"] == "line 300"),
        "{logs}"
    );
    // As the help documents it: `--sort -summary.loss`, no `=` needed.
    let runs = env.json(&[
        "runs",
        "list",
        "--project",
        "p",
        "--sort",
        "-summary.loss",
        "--json",
    ]);
    assert_eq!(runs[0]["id"], id.as_str());
    // Tables show times one way; JSON keeps RFC 3339 UTC.
    assert!(runs[0]["created_at"].as_str().unwrap().ends_with('Z'));
    let table = env.ok(&["runs", "list", "--project", "p"]);
    assert!(
        table.contains(" s ago") || table.contains(" min ago"),
        "{table}"
    );
}

/// Commands about a finished run with history whose answer is only text: the exit code,
/// what stdout holds and what stderr says.
#[test]
fn answers_about_a_finished_run_explain_themselves() {
    struct Case {
        name: &'static str,
        /// `{id}` stands for the run's id.
        args: &'static [&'static str],
        code: i32,
        stdout: &'static [&'static str],
        stderr: &'static [&'static str],
    }
    let cases = [
        Case {
            name: "following an ended run prints its lines and stops",
            args: &["logs", "{id}", "--follow"],
            code: 0,
            stdout: &["line 0", "line 300"],
            stderr: &["finished: its lines so far"],
        },
        Case {
            name: "a metric the run does not have",
            args: &["runs", "history", "{id}", "--keys", "acc"],
            code: 1,
            stdout: &[],
            stderr: &["has no metric \"acc\"", "hint: its metrics: loss"],
        },
        Case {
            name: "a filter nothing matches",
            args: &["runs", "list", "--project", "p", "--filter", "name ~ 1e-3"],
            code: 0,
            stdout: &[],
            stderr: &["no runs match", "name ~ '1e-3'"],
        },
        // clap's usage error, with our hint added.
        Case {
            name: "a program without the separator",
            args: &["run", "python", "train.py"],
            code: 2,
            stdout: &[],
            stderr: &["hint: put `--` before the program: wanllmdb run -- python train.py"],
        },
    ];
    let env = Env::new();
    let id = run_with_history(&env);
    for case in cases {
        let args: Vec<&str> = case
            .args
            .iter()
            .map(|a| if *a == "{id}" { id.as_str() } else { a })
            .collect();
        let out = env.wl(&args).output().unwrap();
        let (text, err) = (String::from_utf8_lossy(&out.stdout), stderr(&out));
        assert_eq!(code(&out), case.code, "{}: {err}", case.name);
        for want in case.stdout {
            assert!(
                text.contains(want),
                "{}: wanted {want:?} in {text}",
                case.name
            );
        }
        for want in case.stderr {
            assert!(
                err.contains(want),
                "{}: wanted {want:?} in {err}",
                case.name
            );
        }
    }
}

#[test]
fn sweep_create_quiet_prints_the_id_alone() {
    let env = Env::new();
    let cfg = write(
        &env.work(),
        "sweep.yaml",
        "method: grid\nmetric: {name: loss, goal: minimize}\nparameters:\n  lr: {values: [0.1, 0.01]}\n",
    );
    let out = env.ok(&[
        "sweep",
        "create",
        "-q",
        "--project",
        "p",
        cfg.to_str().unwrap(),
    ]);
    let id = out.trim();
    assert_eq!(id.len(), 8, "{out:?}");
    assert!(id.bytes().all(|b| b.is_ascii_alphanumeric()), "{out:?}");
    let json = env.json(&[
        "sweep",
        "create",
        "--json",
        "--project",
        "p",
        cfg.to_str().unwrap(),
    ]);
    assert!(json["id"].is_string(), "{json}");
}

#[test]
fn a_synced_offline_run_keeps_its_recorded_times() {
    let env = Env::new();
    let spool = env.work().join(".wanllmdb/runs/fx000001");
    std::fs::create_dir_all(&spool).unwrap();
    let fixture = repo_root().join("tests/fixtures/spool/runs/fx000001");
    for f in std::fs::read_dir(fixture).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), spool.join(f.file_name())).unwrap();
    }
    env.ok(&["sync", spool.to_str().unwrap()]);
    let (status, run) = env.get("/api/v1/runs/fx000001");
    assert_eq!(status, 200, "{run}");
    // The fixture was recorded on 2025-11-27 at 13:26:40 UTC, long before this upload.
    let started = run["started_at"].as_str().unwrap();
    assert!(started.starts_with("2025-11-27T13:26:40"), "{run}");
    assert!(
        run["created_at"]
            .as_str()
            .unwrap()
            .starts_with("2025-11-27")
    );
}

#[cfg(target_os = "linux")]
#[test]
fn a_killed_wrapper_leaves_no_program_running() {
    let env = Env::new();
    let pids = env.work();
    let mut wrapper = env
        .wl(&[
            "run",
            "--project",
            "p",
            "--",
            "bash",
            "-c",
            "sleep 300 & echo $! > child.pid; echo $$ > program.pid; wait",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let read = |name: &str| std::fs::read_to_string(pids.join(name)).ok();
    let (program, child) = loop {
        if let (Some(p), Some(c)) = (read("program.pid"), read("child.pid"))
            && !p.trim().is_empty()
            && !c.trim().is_empty()
        {
            break (p.trim().to_string(), c.trim().to_string());
        }
        assert!(Instant::now() < deadline, "the program did not start");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(running(&program) && running(&child));
    wrapper.kill().unwrap();
    wrapper.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while running(&program) || running(&child) {
        assert!(
            Instant::now() < deadline,
            "the program ({program}) or what it started ({child}) outlived its wrapper"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
