//! The server as a process: start it in a temporary directory, read the admin key it prints,
//! walk the whole flow over HTTP, stop it with SIGTERM and with `kill -9`, and check that
//! every acknowledged write is still there afterwards; bad configuration is refused.

use nix::sys::signal::Signal;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::Server;
use crate::support::server::{command, refuses};

#[test]
fn whole_flow_survives_restart_and_kill_9() {
    let dir = tempfile::tempdir().unwrap();

    let mut s = Server::start(dir.path(), &[]);
    let key = s
        .admin_key
        .clone()
        .expect("first start prints the admin key");
    let saved = std::fs::read_to_string(dir.path().join("admin-api-key")).unwrap();
    assert_eq!(saved.trim(), key);
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("admin-api-key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert_eq!(s.api().get("/health/ready").0, StatusCode::OK);

    let api = s.admin();
    let (st, me) = api.get("/api/v1/auth/me");
    assert_eq!(st, StatusCode::OK);
    assert_eq!(me["username"], "admin");
    assert_eq!(me["is_admin"], true);

    // A run's life, one call after another; each must be answered with its status.
    let pts: Vec<Value> = (0..2000).map(|i| json!({"step": i, "values": {"loss": 1.0 / (1.0 + i as f64), "acc": i as f64 / 2000.0}})).collect();
    let steps = [
        (
            "create the project",
            Method::POST,
            "/api/v1/projects",
            Some(json!({"name": "e2e", "visibility": "private"})),
            StatusCode::CREATED,
        ),
        (
            "create the run",
            Method::POST,
            "/api/v1/runs",
            Some(
                json!({"project": "e2e", "id": "e2erun01", "name": "first", "config": {"lr": 0.01}, "tags": ["smoke"]}),
            ),
            StatusCode::CREATED,
        ),
        (
            "log history",
            Method::POST,
            "/api/v1/runs/e2erun01/history",
            Some(json!({"points": pts})),
            StatusCode::OK,
        ),
        (
            "log a line",
            Method::POST,
            "/api/v1/runs/e2erun01/logs",
            Some(
                json!({"lines": [{"message": "hello from e2e", "source": "stdout", "line_number": 1}]}),
            ),
            StatusCode::OK,
        ),
        (
            "heartbeat",
            Method::POST,
            "/api/v1/runs/e2erun01/heartbeat",
            None,
            StatusCode::OK,
        ),
        (
            "finish",
            Method::POST,
            "/api/v1/runs/e2erun01/finish",
            Some(json!({"state": "finished", "exit_code": 0})),
            StatusCode::OK,
        ),
    ];
    let mut answers = Vec::new();
    for (what, method, path, body, want) in steps {
        let (st, answer) = api.send(method, path, body);
        assert_eq!(st, want, "{what}: {answer}");
        answers.push(answer);
    }
    assert_eq!(answers[2]["accepted"], 4000);
    assert_eq!(answers[5]["state"], "finished");
    let (_, list) = api.get("/api/v1/runs?project=e2e&filter=summary.acc%20%3E%200.9");
    assert_eq!(list["items"][0]["id"], "e2erun01");
    let (_, h) = api.get("/api/v1/runs/e2erun01/history?keys=loss&max_points=100");
    assert!(h["series"][0]["steps"].as_array().unwrap().len() <= 100);

    // SIGTERM: graceful stop, exit 0.
    s.stop();
    let said = s.said_until_exit();
    assert!(said.iter().any(|l| l.contains("stopped")), "{said:?}");

    // Restart on the same data: no new admin key, everything still there.
    let mut s = Server::start(dir.path(), &[]);
    assert!(s.admin_key.is_none(), "the admin key is printed only once");
    let api = s.api().with_token(&key);
    let (st, r) = api.get("/api/v1/runs/e2erun01");
    assert_eq!(st, StatusCode::OK);
    assert_eq!(r["state"], "finished");
    assert_eq!(r["summary"]["acc"].as_f64().unwrap(), 1999.0 / 2000.0);

    // kill -9 right after acknowledged writes: nothing acknowledged is lost.
    let (st, _) = api.post("/api/v1/runs", json!({"project": "e2e", "id": "e2erun02"}));
    assert_eq!(st, StatusCode::CREATED);
    for batch in 0..20 {
        let pts: Vec<Value> = (0..500)
            .map(|i| json!({"step": batch * 500 + i, "values": {"x": i}}))
            .collect();
        let (st, _) = api.post("/api/v1/runs/e2erun02/history", json!({"points": pts}));
        assert_eq!(st, StatusCode::OK);
    }
    s.kill();

    let mut s = Server::start(dir.path(), &[]);
    let api = s.api().with_token(&key);
    let (_, h) = api.get("/api/v1/runs/e2erun02/history?keys=x");
    assert_eq!(h["series"][0]["total_points"], 10_000);
    let (_, logs) = api.get("/api/v1/runs/e2erun01/logs");
    assert_eq!(logs["items"][0]["message"], "hello from e2e");
    s.signal(Signal::SIGINT);
    assert!(s.wait_exit().success());
}

/// A server given a bad configuration exits 1 naming the problem, and never prints a
/// secret it was given.
#[test]
fn bad_configuration_is_a_clear_error() {
    struct Case {
        name: &'static str,
        /// Arguments after `server`; `{dir}` stands for a temporary directory.
        args: &'static [&'static str],
        /// A config file passed with `--config`, unless empty; `{dir}` as above.
        config: &'static str,
        env: Option<(&'static str, &'static str)>,
        says: &'static str,
        /// A secret the configuration holds.
        hides: Option<&'static str>,
    }
    let cases = [
        Case {
            name: "a MySQL URL",
            args: &[
                "--data-dir",
                "{dir}",
                "--database-url",
                "mysql://root:hunter2@localhost/x",
            ],
            config: "",
            env: None,
            says: "unsupported --database-url",
            hides: Some("hunter2"),
        },
        Case {
            name: "an unknown key in the config file",
            args: &[],
            config: "bind = \"127.0.0.1:0\"\nunknown_key = 1\n",
            env: None,
            says: "unknown_key",
            hides: None,
        },
        Case {
            name: "a PostgreSQL server that is not there, from the config file",
            args: &[],
            config: "bind = \"127.0.0.1:0\"\ndata_dir = \"{dir}/data\"\ndatabase_url = \"postgres://nobody:s3cr3t-pw@127.0.0.1:1/none\"\n",
            env: None,
            says: "cannot open database",
            hides: Some("s3cr3t-pw"),
        },
        // The same address twice is refused before anything listens, from a flag or the
        // environment alike.
        Case {
            name: "--metrics-bind equal to --bind",
            args: &[
                "--bind",
                "127.0.0.1:8931",
                "--data-dir",
                "{dir}",
                "--metrics-bind",
                "127.0.0.1:8931",
            ],
            config: "",
            env: None,
            says: "--metrics-bind must differ from --bind",
            hides: None,
        },
        Case {
            name: "WANLLMDB_METRICS_BIND equal to --bind",
            args: &["--bind", "127.0.0.1:8931", "--data-dir", "{dir}"],
            config: "",
            env: Some(("WANLLMDB_METRICS_BIND", "127.0.0.1:8931")),
            says: "--metrics-bind must differ from --bind",
            hides: None,
        },
    ];
    for case in cases {
        let dir = tempfile::tempdir().unwrap();
        let dir_text = dir.path().to_str().unwrap();
        let mut cmd = command();
        cmd.args(case.args.iter().map(|a| a.replace("{dir}", dir_text)));
        if !case.config.is_empty() {
            let file = dir.path().join("server.toml");
            std::fs::write(&file, case.config.replace("{dir}", dir_text)).unwrap();
            cmd.arg("--config").arg(file);
        }
        if let Some((k, v)) = case.env {
            cmd.env(k, v);
        }
        let err = refuses(cmd);
        assert!(err.contains(case.says), "{}: {err}", case.name);
        if let Some(secret) = case.hides {
            assert!(
                !err.contains(secret),
                "{}: a secret printed: {err}",
                case.name
            );
        }
    }
}
