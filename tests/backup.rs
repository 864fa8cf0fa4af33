//! Backups with the real binary: `admin backup` while a wrapped run keeps logging, `admin
//! restore` into a new data directory, a server started there serves the run, and `admin
//! verify` exit codes.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::support::process::{spawn_reading_stdout, wait_exit, wait_for_line, wait_until};
use crate::support::{Env, Server, code, stderr, write};

/// `wanllmdb ARGS` on local storage: no server, no credentials, no storage settings from the
/// environment.
fn local(env: &Env, args: &[&str]) -> Command {
    let mut c = env.signed_out(args);
    c.env_remove("WANLLMDB_DATA_DIR")
        .env_remove("WANLLMDB_DATABASE_URL")
        .env_remove("WANLLMDB_STORAGE_URL")
        .env_remove("WANLLMDB_CONFIG");
    c
}

/// Waits until the server holds some log lines of `run` (shipping is batched); how many.
fn wait_for_logs(env: &Env, run: &str) -> usize {
    let mut n = 0;
    wait_until(Duration::from_secs(30), "a log line to arrive", || {
        let (_, logs) = env.get(&format!("/api/v1/runs/{run}/logs?format=json"));
        n = logs.as_array().map_or(0, |a| a.len());
        n > 0
    });
    n
}

fn log_rows(manifest: &Value) -> u64 {
    manifest["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "log_lines")
        .unwrap()["rows"]
        .as_u64()
        .unwrap()
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn backup_while_a_run_logs_then_restore_and_serve_it() {
    let env = Env::with_project("p");
    let data = env.data();
    let w = env.work();
    write(&w, "model.bin", "weights \u{0}\u{1}");
    env.ok(&["run", "--project", "p", "--id", "seedrun1", "--", "true"]);
    env.ok(&["files", "put", "seedrun1", "model.bin"]);
    env.ok(&[
        "log", "--run", "seedrun1", "--step", "5", "loss=0.2", "acc=0.9",
    ]);
    write(
        &w,
        "train.sh",
        "for i in $(seq 0 400); do\n  echo \"{\\\"step\\\": $i, \\\"loss\\\": $i}\" >> \"$WANLLMDB_METRICS\"\n  echo \"line $i\"\n  sleep 0.01\ndone\n",
    );
    let (mut child, lines) = spawn_reading_stdout(env.wl(&[
        "run",
        "--project",
        "p",
        "--id",
        "bkrun001",
        "--",
        "bash",
        "train.sh",
    ]));
    wait_for_line(&lines, "line 20");
    let shipped = wait_for_logs(&env, "bkrun001");

    let archive = env.dir.path().join("b.tar");
    let out = local(
        &env,
        &[
            "admin",
            "backup",
            "--out",
            path(&archive),
            "--data-dir",
            path(&data),
            "--json",
        ],
    )
    .output()
    .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let manifest: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(manifest["blobs"]["count"], 1);
    assert!(wait_exit(&mut child).success());

    let out = local(&env, &["admin", "verify", "--backup", path(&archive)])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));

    let restored = env.dir.path().join("restored");
    let out = local(
        &env,
        &[
            "admin",
            "restore",
            path(&archive),
            "--data-dir",
            path(&restored),
        ],
    )
    .output()
    .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("log_lines"));
    let out = local(&env, &["admin", "verify", "--data-dir", path(&restored)])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("metric chunks checked"), "{text}");

    // A second restore into the same place is refused: the target holds data.
    let out = local(
        &env,
        &[
            "admin",
            "restore",
            path(&archive),
            "--data-dir",
            path(&restored),
        ],
    )
    .output()
    .unwrap();
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(stderr(&out).contains("not empty"), "{}", stderr(&out));

    // A server on the restored copy knows the run, its logs up to the snapshot, and the
    // original admin key.
    let mut server = Server::start(&restored, &[]);
    assert!(server.admin_key.is_none(), "the restored admin is kept");
    let api = server.api().with_token(&env.key);
    let get = |p: &str| api.get(p);
    let (st, run) = get("/api/v1/runs/bkrun001");
    assert_eq!(st, 200, "{run}");
    assert_eq!(run["project"], "p");
    let (st, logs) = get("/api/v1/runs/bkrun001/logs?format=json");
    assert_eq!(st, 200, "{logs}");
    let n = logs.as_array().map_or(0, |a| a.len());
    assert!(
        n >= shipped,
        "the lines shipped before the backup are there: {n}"
    );
    let (_, seed_logs) = get("/api/v1/runs/seedrun1/logs?format=json");
    let seed = seed_logs.as_array().map_or(0, |a| a.len());
    assert_eq!(
        (n + seed) as u64,
        log_rows(&manifest),
        "the restored copy holds exactly the snapshot's lines"
    );
    let (st, files) = get("/api/v1/runs/seedrun1/files");
    assert_eq!(st, 200, "{files}");
    assert_eq!(files[0]["path"], "model.bin", "{files}");
    server.stop();

    verify_failures(&env, &archive, &restored);
}

/// `admin verify` exits 1 and names the problem: a truncated archive, a damaged blob, and a
/// data directory without a database.
fn verify_failures(env: &Env, archive: &Path, restored: &Path) {
    let bytes = std::fs::read(archive).unwrap();
    let cut = env.dir.path().join("cut.tar");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let out = local(env, &["admin", "verify", "--backup", path(&cut)])
        .output()
        .unwrap();
    assert_eq!(code(&out), 1, "{}", stderr(&out));

    let shard = std::fs::read_dir(restored.join("blobs/sha256"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    let blob = std::fs::read_dir(shard.path())
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::write(&blob, b"tampered").unwrap();
    let out = local(
        env,
        &["admin", "verify", "--data-dir", path(restored), "--json"],
    )
    .output()
    .unwrap();
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], false);
    // The run's metric chunks were checked too, and found sound.
    assert!(report["metric_chunks"].as_u64() >= Some(2), "{report}");
    assert!(report["metric_points"].as_u64() >= Some(2), "{report}");
    assert_eq!(report["problems"].as_array().map(Vec::len), Some(1));
    let problem = report["problems"][0].as_str().unwrap();
    assert!(
        problem.contains(blob.file_name().unwrap().to_str().unwrap()),
        "{problem}"
    );

    let out = local(
        env,
        &[
            "admin",
            "verify",
            "--data-dir",
            path(&env.dir.path().join("nothing")),
        ],
    )
    .output()
    .unwrap();
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no wanllmdb database"),
        "{}",
        stderr(&out)
    );
}
