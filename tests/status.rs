//! Monitoring end to end: `wanllmdb admin status` against a real server, and `--metrics-bind`
//! taking `/metrics` off the main address.

use crate::support::{Env, Server, code, stderr};

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
    let key = env.server.api().account("erin");
    let out = env
        .wl(&["admin", "status"])
        .env("WANLLMDB_API_KEY", &key)
        .output()
        .unwrap();
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(stderr(&out).contains("administrators"), "{}", stderr(&out));

    env.server.stop();
}

/// The refusal of `--metrics-bind` equal to `--bind` is among the cases of
/// `server::bad_configuration_is_a_clear_error`.
#[test]
fn metrics_bind_moves_metrics_off_the_main_address() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Server::start(dir.path(), &["--metrics-bind", "127.0.0.1:0"]);
    let api = s.api();
    assert_eq!(api.get("/metrics").0, 404);
    assert_eq!(api.get("/health/ready").0, 200);
    s.stop();
}
