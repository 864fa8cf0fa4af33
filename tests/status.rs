//! Monitoring end to end: `wanllmdb admin status` against a real server, and `--metrics-bind`
//! taking `/metrics` off the main address.

use serde_json::{Value, json};

use super::{Env, code, signal, start, stderr, wait_exit};
use crate::http;

/// Registers `name` over HTTP and returns an API key of that ordinary account.
fn user_key(env: &Env, name: &str) -> String {
    let c = http();
    let url = &env.server.url;
    let password = "Quiet-Harbour-Lamp-31";
    let r = c
        .post(format!("{url}/api/v1/auth/register"))
        .json(&json!({"username": name, "email": format!("{name}@example.com"), "password": password}))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let r = c
        .post(format!("{url}/api/v1/auth/login"))
        .json(&json!({"username": name, "password": password}))
        .send()
        .unwrap();
    let access: Value = r.json().unwrap();
    let r = c
        .post(format!("{url}/api/v1/auth/api-keys"))
        .bearer_auth(access["access_token"].as_str().unwrap())
        .json(&json!({"name": "e2e"}))
        .send()
        .unwrap();
    let key: Value = r.json().unwrap();
    key["key"].as_str().unwrap().to_string()
}

#[test]
fn admin_status_prints_the_system_metrics() {
    let mut env = Env::new();
    let m = env.json(&["admin", "status", "--json"]);
    assert_eq!(m["application"]["name"], "wanllmdb");
    assert_eq!(m["database"]["backend"], "sqlite");
    assert_eq!(m["blob_store"]["backend"], "local");
    assert!(
        m["system"]["disk"]["total_bytes"].as_u64().unwrap() > 0,
        "{m}"
    );
    assert!(m["redis"].is_null(), "{m}");

    let table = env.ok(&["admin", "status"]);
    for row in [
        "version",
        "up since",
        "memory",
        "disk",
        "database",
        "blob store",
    ] {
        assert!(table.contains(row), "no {row:?} in\n{table}");
    }
    assert!(
        table.contains("sqlite") && table.contains("not used"),
        "{table}"
    );

    // Only server administrators: anyone else gets exit 1 and the server's reason.
    let key = user_key(&env, "erin");
    let out = env
        .wl(&["admin", "status"])
        .env("WANLLMDB_API_KEY", &key)
        .output()
        .unwrap();
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(stderr(&out).contains("administrators"), "{}", stderr(&out));

    signal(&env.server.child, "-TERM");
    assert!(wait_exit(&mut env.server.child).success());
}

#[test]
fn metrics_bind_moves_metrics_off_the_main_address() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = start(dir.path(), &["--metrics-bind", "127.0.0.1:0"]);
    let main = http().get(format!("{}/metrics", s.url)).send().unwrap();
    assert_eq!(main.status().as_u16(), 404);
    let ready = http()
        .get(format!("{}/health/ready", s.url))
        .send()
        .unwrap();
    assert_eq!(ready.status().as_u16(), 200);
    signal(&s.child, "-TERM");
    assert!(wait_exit(&mut s.child).success());

    // The same address twice is refused before anything listens, from a flag or the
    // environment alike.
    let same = "127.0.0.1:8931";
    let refused = |metrics_flag: bool| {
        let mut cmd = std::process::Command::new(super::binary());
        cmd.args(["server", "--bind", same, "--data-dir"])
            .arg(dir.path())
            .env_remove("WANLLMDB_METRICS_BIND");
        if metrics_flag {
            cmd.args(["--metrics-bind", same]);
        } else {
            cmd.env("WANLLMDB_METRICS_BIND", same);
        }
        cmd.output().unwrap()
    };
    for flag in [true, false] {
        let out = refused(flag);
        assert_eq!(code(&out), 1, "{}", stderr(&out));
        assert!(
            stderr(&out).contains("--metrics-bind must differ from --bind"),
            "{}",
            stderr(&out)
        );
    }
}
