//! End-to-end tests of the local download cache's size limit: least recently used content
//! goes first after a download, `cache info` and `cache prune` report and trim it.

use serde_json::Value;

use crate::support::{Env, code, stderr};

/// Each artifact holds one file of this many bytes.
const SIZE: usize = 100_000;
/// Room for two of them, not three.
const LIMIT: &str = "250kB";

/// Logs artifacts `a`, `b` and `c` (one file of `SIZE` distinct bytes each) in project `lru`.
fn three_artifacts(env: &Env) {
    for (i, name) in ["a", "b", "c"].into_iter().enumerate() {
        let dir = env.work().join(format!("src-{name}"));
        std::fs::create_dir_all(&dir).unwrap();
        let bytes: Vec<u8> = (0..SIZE).map(|j| ((j * (i + 3)) % 251) as u8).collect();
        std::fs::write(dir.join("weights.bin"), bytes).unwrap();
        env.ok(&[
            "artifact",
            "put",
            dir.to_str().unwrap(),
            "--name",
            name,
            "--type",
            "model",
            "--project",
            "lru",
        ]);
    }
}

/// `artifact get NAME` into a fresh directory `into` with the test's limit: its report.
fn get(env: &Env, name: &str, into: &str) -> Value {
    let dir = env.dir.path().join("got").join(into);
    env.json(&[
        "artifact",
        "get",
        name,
        "--project",
        "lru",
        "--dir",
        dir.to_str().unwrap(),
        "--cache-max-size",
        LIMIT,
        "--json",
    ])
}

/// (downloaded, from the cache) of a get report.
fn sources(report: &Value) -> (u64, u64) {
    (
        report["downloaded"].as_u64().unwrap(),
        report["from_cache"].as_u64().unwrap(),
    )
}

fn info(env: &Env) -> Value {
    env.json(&["cache", "info", "--json"])
}

#[test]
fn a_download_evicts_the_least_recently_used_content() {
    let env = Env::new();
    three_artifacts(&env);
    assert_eq!(sources(&get(&env, "a", "a1")), (1, 0));
    assert_eq!(sources(&get(&env, "b", "b1")), (1, 0));
    // A hit makes `a` the most recently used, although it was stored first.
    assert_eq!(sources(&get(&env, "a", "a2")), (0, 1));
    // Three entries do not fit: `b`, used longest ago, goes.
    assert_eq!(sources(&get(&env, "c", "c1")), (1, 0));
    let held = info(&env);
    assert_eq!(
        (held["entries"].as_u64(), held["bytes"].as_u64()),
        (Some(2), Some(2 * SIZE as u64)),
        "{held}"
    );
    assert_eq!(sources(&get(&env, "a", "a3")), (0, 1));
    assert_eq!(sources(&get(&env, "c", "c2")), (0, 1));
    // `b` is fetched again; now `a`, older than `c`, makes room for it.
    assert_eq!(sources(&get(&env, "b", "b2")), (1, 0));
    assert_eq!(sources(&get(&env, "c", "c3")), (0, 1));
    assert_eq!(sources(&get(&env, "a", "a4")), (1, 0));
    let files = std::fs::read(env.dir.path().join("got/a4/weights.bin")).unwrap();
    assert_eq!(files.len(), SIZE);
}

#[test]
fn prune_trims_to_a_size_and_a_dry_run_trims_nothing() {
    let env = Env::new();
    three_artifacts(&env);
    for name in ["a", "b", "c"] {
        get(&env, name, name);
    }
    // The limit held throughout: two of three.
    assert_eq!(info(&env)["entries"], 2);

    let dry = env.json(&["cache", "prune", "--max-size", "0", "--dry-run", "--json"]);
    assert_eq!(
        (
            &dry["dry_run"],
            &dry["removed_entries"],
            &dry["kept_entries"]
        ),
        (&Value::Bool(true), &Value::from(2), &Value::from(0))
    );
    assert_eq!(info(&env)["entries"], 2);

    let one = env.json(&["cache", "prune", "--max-size", "150kB", "--json"]);
    assert_eq!(
        (&one["removed_entries"], &one["kept_bytes"]),
        (&Value::from(1), &Value::from(SIZE))
    );
    // The one kept is the most recently used: `c`.
    assert_eq!(sources(&get(&env, "c", "c-again")), (0, 1));

    // --all empties it whatever limit the environment sets.
    let out = env
        .wl(&["cache", "prune", "--all", "--json"])
        .env("WANLLMDB_CACHE_MAX_SIZE", "1GB")
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let all: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(all["removed_entries"], 1);
    assert_eq!(info(&env)["bytes"], 0);
}

#[test]
fn the_limit_comes_from_the_option_the_environment_or_the_config() {
    let env = Env::new();
    let defaults = info(&env);
    assert_eq!(defaults["limit"]["source"], "default", "{defaults}");
    assert!(defaults["limit"]["max_bytes"].as_u64().unwrap() <= 50 << 30);

    std::fs::create_dir_all(env.cfg()).unwrap();
    std::fs::write(env.cfg().join("config.toml"), "cache_max_size = \"3GiB\"\n").unwrap();
    let configured = info(&env);
    assert_eq!(
        (
            &configured["limit"]["source"],
            &configured["limit"]["max_bytes"]
        ),
        (&Value::from("config"), &Value::from(3u64 << 30))
    );

    let out = env
        .wl(&["cache", "info", "--json"])
        .env("WANLLMDB_CACHE_MAX_SIZE", "unlimited")
        .output()
        .unwrap();
    let from_env: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (
            &from_env["limit"]["source"],
            &from_env["limit"]["max_bytes"]
        ),
        (&Value::from("option"), &Value::Null)
    );
    // Without a limit there is nothing to prune to.
    env.fails(
        &["cache", "prune", "--max-size", "unlimited"],
        "no size limit",
    );
}

#[test]
fn a_bad_size_is_refused_with_a_hint() {
    let env = Env::new();
    three_artifacts(&env);
    let err = env.fails(
        &[
            "artifact",
            "get",
            "a",
            "--project",
            "lru",
            "--cache-max-size",
            "10 parsecs",
        ],
        "cache size \"10 parsecs\" is not valid: unknown unit \"parsecs\"",
    );
    assert!(err.contains("hint: use a size such as 10GiB"), "{err}");
    // Nothing was downloaded.
    assert!(!env.work().join("artifacts/a").exists());

    let out = env
        .wl(&["cache", "prune"])
        .env("WANLLMDB_CACHE_MAX_SIZE", "150%")
        .output()
        .unwrap();
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(stderr(&out).contains("at most 100"), "{}", stderr(&out));

    std::fs::create_dir_all(env.cfg()).unwrap();
    std::fs::write(env.cfg().join("config.toml"), "cache_max_size = \"lots\"\n").unwrap();
    env.fails(&["cache", "info"], "cache_max_size in");
}
