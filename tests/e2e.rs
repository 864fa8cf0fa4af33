//! End-to-end: start `wanllmdb server` as a process in a temporary directory, read the admin
//! key it prints, walk the whole flow over HTTP, stop it with SIGTERM and with `kill -9`, and
//! check that every acknowledged write is still there afterwards.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::blocking::Client;
use serde_json::{Value, json};

mod cli;
mod hardening;
#[path = "support/moto.rs"]
mod moto;
mod replicas;

/// An HTTP client. The workspace builds reqwest with TLS but without a built-in crypto
/// provider (the binary brings ring, shared with PostgreSQL's TLS), so install it first.
fn http() -> Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Client::new()
}

/// Path of the `wanllmdb` binary, built on first use (it lives in another package).
fn binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let mut build = Command::new(env!("CARGO"));
        build
            .args(["build", "--quiet", "-p", "wanllmdb", "--bin", "wanllmdb"])
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
        // Variables cargo sets for this test process (CARGO_MANIFEST_DIR, CARGO_PKG_…) would
        // look like a changed environment to build scripts that watch them (ring does), and
        // rebuild half the tree on every test.
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy();
            if k.starts_with("CARGO_PKG_")
                || k.starts_with("CARGO_BIN_")
                || matches!(
                    k.as_ref(),
                    "CARGO_MANIFEST_DIR"
                        | "CARGO_MANIFEST_PATH"
                        | "CARGO_CRATE_NAME"
                        | "CARGO_PRIMARY_PACKAGE"
                        | "CARGO_TARGET_TMPDIR"
                        | "CARGO_RUSTC_CURRENT_DIR"
                )
            {
                build.env_remove(k.as_ref());
            }
        }
        let status = build.status().expect("run cargo build");
        assert!(status.success(), "building wanllmdb failed");
        // target/<profile>/deps/e2e-… → target/<profile>/wanllmdb
        let exe = std::env::current_exe().unwrap();
        let dir = exe.parent().unwrap().parent().unwrap();
        let bin = dir.join(format!("wanllmdb{}", std::env::consts::EXE_SUFFIX));
        assert!(bin.exists(), "{} missing", bin.display());
        bin
    })
    .clone()
}

struct Server {
    child: Child,
    url: String,
    admin_key: Option<String>,
    stderr: mpsc::Receiver<String>,
}

/// Starts the server and waits until it says where it listens.
fn start(data_dir: &Path, extra: &[&str]) -> Server {
    start_at(data_dir, "127.0.0.1:0", extra)
}

/// Starts the server on `bind`.
fn start_at(data_dir: &Path, bind: &str, extra: &[&str]) -> Server {
    let mut child = Command::new(binary())
        .args(["server", "--bind", bind, "--data-dir"])
        .arg(data_dir)
        .args(extra)
        .env_remove("WANLLMDB_DATABASE_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start wanllmdb server");
    let (tx, rx) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut admin_key = None;
    let mut login_cmd = None;
    let url = loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("server printed no 'listening on' line");
        let trimmed = line.trim();
        if trimmed.starts_with("wlk_") {
            admin_key = Some(trimmed.to_string());
        }
        if trimmed.starts_with("wanllmdb login") {
            login_cmd = Some(trimmed.to_string());
        }
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    if let (Some(k), Some(cmd)) = (&admin_key, &login_cmd) {
        assert_eq!(cmd, &format!("wanllmdb login --host {url} --api-key {k}"));
    }
    Server {
        child,
        url,
        admin_key,
        stderr: rx,
    }
}

fn call(
    c: &Client,
    method: reqwest::Method,
    url: String,
    key: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut r = c.request(method, url).bearer_auth(key);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let resp = r.send().unwrap();
    let status = resp.status();
    let text = resp.text().unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(Instant::now() < deadline, "server did not exit");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn whole_flow_survives_restart_and_kill_9() {
    use reqwest::Method;
    let dir = tempfile::tempdir().unwrap();
    let c = http();

    let mut s = start(dir.path(), &[]);
    let key = s
        .admin_key
        .clone()
        .expect("first start prints the admin key");
    let saved = std::fs::read_to_string(dir.path().join("admin-api-key")).unwrap();
    assert_eq!(saved.trim(), key);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("admin-api-key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let u = &s.url;
    assert_eq!(
        c.get(format!("{u}/health/ready")).send().unwrap().status(),
        StatusCode::OK
    );

    let (st, me) = call(&c, Method::GET, format!("{u}/api/v1/auth/me"), &key, None);
    assert_eq!(st, StatusCode::OK);
    assert_eq!(me["username"], "admin");
    assert_eq!(me["is_admin"], true);

    let (st, _) = call(
        &c,
        Method::POST,
        format!("{u}/api/v1/projects"),
        &key,
        Some(json!({"name": "e2e", "visibility": "private"})),
    );
    assert_eq!(st, StatusCode::CREATED);
    let (st, run) = call(
        &c,
        Method::POST,
        format!("{u}/api/v1/runs"),
        &key,
        Some(
            json!({"project": "e2e", "id": "e2erun01", "name": "first", "config": {"lr": 0.01}, "tags": ["smoke"]}),
        ),
    );
    assert_eq!(st, StatusCode::CREATED, "{run}");
    let pts: Vec<Value> = (0..2000).map(|i| json!({"step": i, "values": {"loss": 1.0 / (1.0 + i as f64), "acc": i as f64 / 2000.0}})).collect();
    let (st, ack) = call(
        &c,
        Method::POST,
        format!("{u}/api/v1/runs/e2erun01/history"),
        &key,
        Some(json!({"points": pts})),
    );
    assert_eq!(st, StatusCode::OK);
    assert_eq!(ack["accepted"], 4000);
    let (st, _) = call(
        &c,
        Method::POST,
        format!("{u}/api/v1/runs/e2erun01/logs"),
        &key,
        Some(
            json!({"lines": [{"message": "hello from e2e", "source": "stdout", "line_number": 1}]}),
        ),
    );
    assert_eq!(st, StatusCode::OK);
    let (st, _) = call(
        &c,
        Method::POST,
        format!("{u}/api/v1/runs/e2erun01/heartbeat"),
        &key,
        None,
    );
    assert_eq!(st, StatusCode::OK);
    let (st, fin) = call(
        &c,
        Method::POST,
        format!("{u}/api/v1/runs/e2erun01/finish"),
        &key,
        Some(json!({"state": "finished", "exit_code": 0})),
    );
    assert_eq!(st, StatusCode::OK);
    assert_eq!(fin["state"], "finished");
    let (_, list) = call(
        &c,
        Method::GET,
        format!("{u}/api/v1/runs?project=e2e&filter=summary.acc%20%3E%200.9"),
        &key,
        None,
    );
    assert_eq!(list["items"][0]["id"], "e2erun01");
    let (_, h) = call(
        &c,
        Method::GET,
        format!("{u}/api/v1/runs/e2erun01/history?keys=loss&max_points=100"),
        &key,
        None,
    );
    assert!(h["series"][0]["steps"].as_array().unwrap().len() <= 100);

    // SIGTERM: graceful stop, exit 0.
    signal(&s.child, "-TERM");
    let status = wait_exit(&mut s.child);
    assert!(status.success(), "exit status {status:?}");
    let said: Vec<String> = s.stderr.try_iter().collect();
    assert!(said.iter().any(|l| l.contains("stopped")), "{said:?}");

    // Restart on the same data: no new admin key, everything still there.
    let mut s = start(dir.path(), &[]);
    assert!(s.admin_key.is_none(), "the admin key is printed only once");
    let u = s.url.clone();
    let (st, r) = call(
        &c,
        Method::GET,
        format!("{u}/api/v1/runs/e2erun01"),
        &key,
        None,
    );
    assert_eq!(st, StatusCode::OK);
    assert_eq!(r["state"], "finished");
    assert_eq!(r["summary"]["acc"].as_f64().unwrap(), 1999.0 / 2000.0);

    // kill -9 right after acknowledged writes: nothing acknowledged is lost.
    let (st, _) = call(
        &c,
        Method::POST,
        format!("{u}/api/v1/runs"),
        &key,
        Some(json!({"project": "e2e", "id": "e2erun02"})),
    );
    assert_eq!(st, StatusCode::CREATED);
    for batch in 0..20 {
        let pts: Vec<Value> = (0..500)
            .map(|i| json!({"step": batch * 500 + i, "values": {"x": i}}))
            .collect();
        let (st, _) = call(
            &c,
            Method::POST,
            format!("{u}/api/v1/runs/e2erun02/history"),
            &key,
            Some(json!({"points": pts})),
        );
        assert_eq!(st, StatusCode::OK);
    }
    signal(&s.child, "-KILL");
    wait_exit(&mut s.child);

    let mut s = start(dir.path(), &[]);
    let u = s.url.clone();
    let (_, h) = call(
        &c,
        Method::GET,
        format!("{u}/api/v1/runs/e2erun02/history?keys=x"),
        &key,
        None,
    );
    assert_eq!(h["series"][0]["total_points"], 10_000);
    let (_, logs) = call(
        &c,
        Method::GET,
        format!("{u}/api/v1/runs/e2erun01/logs"),
        &key,
        None,
    );
    assert_eq!(logs["items"][0]["message"], "hello from e2e");
    signal(&s.child, "-INT");
    assert!(wait_exit(&mut s.child).success());
}

#[test]
fn bad_configuration_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(binary())
        .args(["server", "--data-dir"])
        .arg(dir.path())
        .args(["--database-url", "mysql://root:hunter2@localhost/x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unsupported --database-url"), "{err}");
    assert!(
        !err.contains("hunter2"),
        "secrets in URLs are never printed: {err}"
    );

    let cfg = dir.path().join("server.toml");
    std::fs::write(&cfg, "bind = \"127.0.0.1:0\"\nunknown_key = 1\n").unwrap();
    let out = Command::new(binary())
        .args(["server", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown_key"));

    let out = Command::new(binary()).arg("--version").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("wanllmdb "));
}

#[test]
fn config_file_and_postgres_password_redaction() {
    // Settings come from the config file; a PostgreSQL password never reaches the output,
    // even when the connection fails.
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("server.toml");
    std::fs::write(
        &cfg,
        format!(
            "bind = \"127.0.0.1:0\"\ndata_dir = \"{}\"\ndatabase_url = \"postgres://nobody:s3cr3t-pw@127.0.0.1:1/none\"\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let out = Command::new(binary())
        .args(["server", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot open database"), "{err}");
    assert!(!err.contains("s3cr3t-pw"), "{err}");
}

#[test]
fn completions_and_man_pages_are_current() {
    // The repository's completions/ and man/ must match what the binary generates; refresh
    // them with `cargo run -p wanllmdb -- generate-docs .`.
    let dir = tempfile::tempdir().unwrap();
    let status = Command::new(binary())
        .arg("generate-docs")
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    let root = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
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
    let out = Command::new(binary())
        .args(["completions", "bash"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("wanllmdb"));
}
