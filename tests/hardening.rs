//! The hardening suite, against the real binary on SQLite and, when
//! `WANLLMDB_TEST_DATABASE_URL` is set, on PostgreSQL: local files private to the server's
//! user, bodies that cost nothing before authentication, slow clients cut off, refresh races
//! answered with one pair, login limits per account with case-insensitive names, and the
//! small leaks closed.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::blocking::Client;
use serde_json::{Value, json};
use sha2::Digest;

use super::replicas::Schema;
use super::{Server, binary, http, signal, wait_exit};

const PASSWORD: &str = "Correct-Horse-42";

/// Where a test server keeps its database.
struct Db {
    schema: Option<Schema>,
}

impl Db {
    fn args(&self) -> Vec<String> {
        match &self.schema {
            Some(s) => vec!["--database-url".into(), s.url()],
            None => Vec::new(),
        }
    }

    fn is_sqlite(&self) -> bool {
        self.schema.is_none()
    }

    /// Runs SQL on the database (`data` is the server's data directory).
    fn sql(&self, data: &Path, sql: &str) {
        match &self.schema {
            Some(s) => {
                s.query(&format!("SET search_path TO {{schema}}; {sql}"));
            }
            None => {
                let script = "import sqlite3, sys\nc = sqlite3.connect(sys.argv[1])\nc.executescript(sys.argv[2])\nc.commit()";
                let out = Command::new("python3")
                    .args(["-c", script])
                    .arg(data.join("wanllmdb.db"))
                    .arg(sql)
                    .output()
                    .expect("run python3");
                assert!(
                    out.status.success(),
                    "{sql}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }
}

/// SQLite always; PostgreSQL (a fresh schema each) when configured.
fn databases() -> Vec<Db> {
    let mut v = vec![Db { schema: None }];
    if let Some(schema) = Schema::create() {
        v.push(Db {
            schema: Some(schema),
        });
    }
    v
}

/// Starts `wanllmdb server` and returns it with the lines it printed before listening.
fn launch(db: &Db, data: &Path, extra: &[&str]) -> (Server, Vec<String>) {
    let mut child = Command::new(binary())
        .args(["server", "--bind", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .args(db.args())
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
    let mut early = Vec::new();
    let mut admin_key = None;
    let url = loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("server printed no 'listening on' line: {early:#?}"));
        if line.trim().starts_with("wlk_") {
            admin_key = Some(line.trim().to_string());
        }
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest.split_whitespace().next().unwrap().to_string();
        }
        early.push(line);
    };
    let server = Server {
        child,
        url,
        admin_key,
        stderr: rx,
    };
    (server, early)
}

/// Runs `wanllmdb server` expecting it to refuse to start; its stderr.
fn refused(db: &Db, data: &Path) -> String {
    let mut child = Command::new(binary())
        .args(["server", "--bind", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .args(db.args())
        .env_remove("WANLLMDB_DATABASE_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start wanllmdb server");
    let status = wait_exit(&mut child);
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(status.code(), Some(1), "{err}");
    err
}

fn stop(mut s: Server) {
    signal(&s.child, "-TERM");
    assert!(wait_exit(&mut s.child).success());
}

fn send(
    c: &Client,
    method: reqwest::Method,
    url: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut r = c.request(method, url);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    if let Some(b) = body {
        r = r.json(&b);
    }
    let resp = r.send().unwrap();
    let status = resp.status();
    let text = resp.text().unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn post(c: &Client, url: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
    send(c, reqwest::Method::POST, url, token, Some(body))
}

fn get(c: &Client, url: &str, token: Option<&str>) -> (StatusCode, Value) {
    send(c, reqwest::Method::GET, url, token, None)
}

/// Registers `name` and returns an API key of it.
fn user(c: &Client, base: &str, name: &str) -> String {
    let (s, b) = post(
        c,
        &format!("{base}/api/v1/auth/register"),
        None,
        json!({"username": name, "email": format!("{name}@example.com"), "password": PASSWORD}),
    );
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let access = login(c, base, name);
    let (s, k) = post(
        c,
        &format!("{base}/api/v1/auth/api-keys"),
        Some(&access),
        json!({"name": "t"}),
    );
    assert_eq!(s, StatusCode::CREATED, "{k}");
    k["key"].as_str().unwrap().to_string()
}

fn login(c: &Client, base: &str, name: &str) -> String {
    let (s, b) = post(
        c,
        &format!("{base}/api/v1/auth/login"),
        None,
        json!({"username": name, "password": PASSWORD}),
    );
    assert_eq!(s, StatusCode::OK, "{b}");
    b["access_token"].as_str().unwrap().to_string()
}

/// Creates a run in a new project of `key`'s user; its id.
fn run(c: &Client, base: &str, key: &str, project: &str, body: Value) -> (StatusCode, Value) {
    let mut body = body;
    body["project"] = json!(project);
    post(c, &format!("{base}/api/v1/runs"), Some(key), body)
}

/// A raw connection to the server, for requests reqwest would not send.
fn connect(url: &str) -> TcpStream {
    let addr = url.trim_start_matches("http://");
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    s
}

/// Reads a response head: its status and headers (lower-case names).
fn read_head(s: &mut TcpStream) -> (u16, String) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            other => panic!(
                "connection ended before a response: {other:?} after {:?}",
                String::from_utf8_lossy(&head)
            ),
        }
    }
    let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let status = text.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, text)
}

/// Whether the server closed the connection (rather than the read timing out).
fn closed_by_server(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) => {
                return matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted
                );
            }
        }
    }
}

#[cfg(unix)]
fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[cfg(unix)]
fn chmod(p: &Path, m: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
}

/// Item 1: the data directory, database, write-ahead log, blobs and admin key are private to
/// the server's user; an old install is tightened at start with one log line; a directory
/// every user may write to is refused.
#[cfg(unix)]
#[test]
fn local_files_are_private_to_the_server_user() {
    let c = http();
    for db in databases() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let (s, _) = launch(&db, &data, &[]);
        let key = s.admin_key.clone().expect("admin key");
        let base = s.url.clone();
        let (st, r) = run(&c, &base, &key, "secrets", json!({}));
        assert_eq!(st, StatusCode::CREATED, "{r}");
        let id = r["id"].as_str().unwrap();
        let bytes = b"weights".to_vec();
        let digest = hex::encode(sha2::Sha256::digest(&bytes));
        let (st, put) = post(
            &c,
            &format!("{base}/api/v1/runs/{id}/files"),
            Some(&key),
            json!({"files": [{"path": "w.bin", "sha256": digest, "size": bytes.len()}]}),
        );
        assert_eq!(st, StatusCode::OK, "{put}");
        let upload = put["files"][0]["upload_url"].as_str().unwrap();
        let resp = c.put(format!("{base}{upload}")).body(bytes).send().unwrap();
        assert!(resp.status().is_success(), "{:?}", resp.text());
        let blob = data.join("blobs/sha256").join(&digest[..2]).join(&digest);
        let db_file = data.join("wanllmdb.db");
        assert_eq!(mode(&data), 0o700);
        assert_eq!(mode(&data.join("admin-api-key")), 0o600);
        assert_eq!(mode(&blob), 0o600);
        assert_eq!(mode(blob.parent().unwrap()), 0o700);
        if db.is_sqlite() {
            for f in ["wanllmdb.db", "wanllmdb.db-wal", "wanllmdb.db-shm"] {
                assert_eq!(mode(&data.join(f)), 0o600, "{f}");
            }
        }
        stop(s);

        // An install from before: everything readable by others.
        chmod(&data, 0o755);
        chmod(&blob, 0o644);
        chmod(blob.parent().unwrap(), 0o755);
        if db.is_sqlite() {
            chmod(&db_file, 0o644);
        }
        let (s, early) = launch(&db, &data, &[]);
        let said: Vec<&String> = early
            .iter()
            .filter(|l| l.contains("readable by other users"))
            .collect();
        assert_eq!(said.len(), 1, "one log line: {early:#?}");
        assert_eq!(mode(&data), 0o700);
        assert_eq!(mode(&blob), 0o600);
        assert_eq!(mode(blob.parent().unwrap()), 0o700);
        if db.is_sqlite() {
            assert_eq!(mode(&db_file), 0o600);
        }
        stop(s);

        chmod(&data, 0o777);
        let err = refused(&db, &data);
        assert!(err.contains("writable by every user"), "{err}");
        assert_eq!(mode(&data), 0o777, "refused, not changed");
        chmod(&data, 0o700);
    }
}

/// Item 2: an anonymous body is refused before it is read, credentials routes take a few
/// KiB, a declared length over the limit is refused at once, and bodies in flight share one
/// budget (503 with Retry-After when it is spent).
#[test]
fn bodies_cost_nothing_before_authentication() {
    let c = http();
    for db in databases() {
        let dir = tempfile::tempdir().unwrap();
        let (s, _) = launch(
            &db,
            &dir.path().join("data"),
            &[
                "--max-body-bytes",
                "1048576",
                "--max-inflight-body-bytes",
                "1572864",
            ],
        );
        let key = s.admin_key.clone().unwrap();
        let base = s.url.clone();
        let (_, r) = run(&c, &base, &key, "mem", json!({}));
        let id = r["id"].as_str().unwrap().to_string();

        // 64 MiB announced, nothing sent: the answer comes without the body.
        for framing in ["Content-Length: 67108864", "Transfer-Encoding: chunked"] {
            let mut conn = connect(&base);
            write!(
                conn,
                "POST /api/v1/runs/{id}/history HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{framing}\r\n\r\n"
            )
            .unwrap();
            let (status, _) = read_head(&mut conn);
            assert_eq!(status, 401, "{framing}");
        }
        // Login takes a few KiB: a declared megabyte is refused before reading, a sent 9 KiB
        // after 8 KiB.
        let mut conn = connect(&base);
        write!(
            conn,
            "POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1048576\r\n\r\n"
        )
        .unwrap();
        assert_eq!(read_head(&mut conn).0, 413);
        drop(conn);
        let (st, b) = post(
            &c,
            &format!("{base}/api/v1/auth/login"),
            None,
            json!({"username": "admin", "password": "x".repeat(9000)}),
        );
        assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE, "{b}");
        // Signed in, over the route's limit: refused before reading too.
        let mut conn = connect(&base);
        write!(
            conn,
            "POST /api/v1/runs/{id}/history HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: 2000000\r\n\r\n"
        )
        .unwrap();
        assert_eq!(read_head(&mut conn).0, 413);
        drop(conn);

        // One request holds a megabyte of the budget (announced, still arriving); the next
        // that does not fit is told to come back.
        let hold = || {
            let mut conn = connect(&base);
            write!(
                conn,
                "POST /api/v1/runs/{id}/history HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n{{"
            )
            .unwrap();
            conn.set_read_timeout(Some(Duration::from_millis(20)))
                .unwrap();
            conn
        };
        // Whether the holder was answered (refused because a request below got in first)
        // or closed: either way it holds nothing and must be sent again.
        let answered = |conn: &mut std::net::TcpStream| {
            use std::io::ErrorKind::{TimedOut, WouldBlock};
            match conn.peek(&mut [0u8; 1]) {
                Err(e) => !matches!(e.kind(), WouldBlock | TimedOut),
                Ok(_) => true,
            }
        };
        let mut holder = hold();
        let history = format!("{base}/api/v1/runs/{id}/history");
        let big_point = |pad: usize| {
            let body = format!(
                "{{\"points\": [{{\"step\": 0, \"values\": {{\"loss\": 1.0}}}}]}}{}",
                " ".repeat(pad)
            );
            c.post(&history)
                .bearer_auth(&key)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .unwrap()
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        let busy = loop {
            let r = big_point(700_000);
            if r.status() == StatusCode::SERVICE_UNAVAILABLE {
                break r;
            }
            // The holder's headers may not have been read yet, or this request was charged
            // before them and the holder was the one refused.
            assert!(Instant::now() < deadline, "never busy: {}", r.status());
            if answered(&mut holder) {
                holder = hold();
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        assert_eq!(busy.headers()["retry-after"], "2");
        // Its body was never read, so the connection ends, and the answer says so: the next
        // request goes down a fresh one.
        assert_eq!(busy.headers()["connection"], "close");
        let b: Value = busy.json().unwrap();
        assert_eq!(b["error"]["code"], "unavailable", "{b}");
        // Small requests still fit.
        assert!(big_point(0).status().is_success());
        drop(holder);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let r = big_point(700_000);
            if r.status().is_success() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "budget never freed: {}",
                r.status()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        stop(s);
    }
}

/// Item 3: a connection that does not finish its headers, a body that stops arriving and an
/// idle keep-alive connection are all ended by the server.
#[test]
fn slow_clients_are_cut_off() {
    let c = http();
    for db in databases() {
        let dir = tempfile::tempdir().unwrap();
        let (s, _) = launch(
            &db,
            &dir.path().join("data"),
            &["--header-timeout", "1", "--body-timeout", "1"],
        );
        let key = s.admin_key.clone().unwrap();
        let base = s.url.clone();
        let (_, r) = run(&c, &base, &key, "slow", json!({}));
        let id = r["id"].as_str().unwrap().to_string();

        let mut half = connect(&base);
        half.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
            .unwrap();
        assert!(closed_by_server(&mut half), "half-sent headers");

        let mut stalled = connect(&base);
        write!(
            stalled,
            "POST /api/v1/runs/{id}/history HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"points\""
        )
        .unwrap();
        assert_eq!(read_head(&mut stalled).0, 408);

        let mut idle = connect(&base);
        for _ in 0..2 {
            idle.write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            let (status, head) = read_head(&mut idle);
            assert_eq!(status, 200, "kept alive between requests: {head}");
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            let mut body = vec![0u8; len];
            idle.read_exact(&mut body).unwrap();
        }
        assert!(closed_by_server(&mut idle), "idle keep-alive");
        stop(s);
    }
}

/// Item 4: the same refresh token presented twice at once, or again within the grace window,
/// gets the same new pair; presented later it ends the session and is audited as suspicious.
#[test]
fn refresh_races_get_one_pair() {
    let c = http();
    for db in databases() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("server.toml");
        std::fs::write(&conf, "refresh_grace_secs = 1\n").unwrap();
        let (s, _) = launch(
            &db,
            &dir.path().join("data"),
            &["--config", conf.to_str().unwrap()],
        );
        let admin = s.admin_key.clone().unwrap();
        let base = s.url.clone();
        user(&c, &base, "alice");
        let resp = c
            .post(format!("{base}/api/v1/auth/login"))
            .json(&json!({"username": "alice", "password": PASSWORD}))
            .send()
            .unwrap();
        assert_eq!(resp.headers()["cache-control"], "no-store");
        let pair: Value = resp.json().unwrap();
        let old = pair["refresh_token"].as_str().unwrap().to_string();
        let refresh = |token: &str| refresh(&base, token);
        let racers: Vec<_> = (0..2)
            .map(|_| {
                let (base, old) = (base.clone(), old.clone());
                std::thread::spawn(move || self::refresh(&base, &old))
            })
            .collect();
        let answers: Vec<_> = racers.into_iter().map(|t| t.join().unwrap()).collect();
        for (status, cache, body) in &answers {
            assert_eq!(*status, StatusCode::OK, "{body}");
            assert_eq!(cache.as_deref(), Some("no-store"));
        }
        assert_eq!(answers[0].2, answers[1].2, "both racers get the same pair");
        let (status, _, retried) = refresh(&old);
        assert_eq!(status, StatusCode::OK);
        assert_eq!(retried, answers[0].2, "a retry gets the same pair");
        let access = retried["access_token"].as_str().unwrap().to_string();
        assert_eq!(
            get(&c, &format!("{base}/api/v1/auth/me"), Some(&access)).0,
            StatusCode::OK
        );

        // After the grace window the old token is a stolen copy: the session ends.
        std::thread::sleep(Duration::from_millis(1500));
        let (status, _, body) = refresh(&old);
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("already used")
        );
        assert_eq!(
            get(&c, &format!("{base}/api/v1/auth/me"), Some(&access)).0,
            StatusCode::UNAUTHORIZED
        );
        let (_, events) = get(
            &c,
            &format!("{base}/api/v1/audit/logs?event_type=security.suspicious"),
            Some(&admin),
        );
        assert_eq!(events["items"].as_array().unwrap().len(), 1, "{events}");
        stop(s);
    }
}

/// `POST /auth/refresh`: status, Cache-Control, body.
fn refresh(base: &str, token: &str) -> (StatusCode, Option<String>, Value) {
    let resp = http()
        .post(format!("{base}/api/v1/auth/refresh"))
        .json(&json!({"refresh_token": token}))
        .send()
        .unwrap();
    let cache = resp
        .headers()
        .get("cache-control")
        .map(|v| v.to_str().unwrap().to_string());
    let status = resp.status();
    (status, cache, resp.json::<Value>().unwrap())
}

/// Item 5: failed logins count per account whichever name is typed, usernames and emails are
/// unique whatever their case, and an upgrade over accounts that differ only in case is
/// refused with their names.
#[test]
fn logins_are_limited_per_account_and_names_ignore_case() {
    let c = http();
    for db in databases() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        // Each attempt from its own address, so only the account's count can stop them.
        let (s, _) = launch(&db, &data, &["--trusted-proxy", "127.0.0.1"]);
        let base = s.url.clone();
        user(&c, &base, "alice");
        for (name, email) in [("ALICE", "a2@example.com"), ("alice2", "Alice@Example.COM")] {
            let (st, b) = post(
                &c,
                &format!("{base}/api/v1/auth/register"),
                None,
                json!({"username": name, "email": email, "password": PASSWORD}),
            );
            assert_eq!(st, StatusCode::CONFLICT, "{name} {email}: {b}");
        }
        let attempt = |n: u32, name: &str, password: &str| {
            c.post(format!("{base}/api/v1/auth/login"))
                .header("x-forwarded-for", format!("203.0.113.{n}"))
                .json(&json!({"username": name, "password": password}))
                .send()
                .unwrap()
                .status()
        };
        assert_eq!(attempt(1, "ALICE", PASSWORD), StatusCode::OK);
        let names = [
            "alice",
            "alice",
            "Alice@example.com",
            "ALICE@EXAMPLE.COM",
            "aLiCe",
        ];
        for (i, name) in names.iter().enumerate() {
            assert_eq!(
                attempt(10 + i as u32, name, "Wrong-password-1"),
                StatusCode::UNAUTHORIZED
            );
        }
        assert_eq!(
            attempt(20, "alice@example.com", PASSWORD),
            StatusCode::TOO_MANY_REQUESTS,
            "five failures under any of its names stop the account"
        );
        stop(s);

        // A database from before, where `Bob` and `bob` could both register.
        db.sql(
            &data,
            "DROP INDEX users_username_nocase; DROP INDEX users_email_nocase; \
             ALTER TABLE refresh_tokens DROP COLUMN rotated_jti; \
             ALTER TABLE refresh_tokens DROP COLUMN rotated_access_jti; \
             ALTER TABLE refresh_tokens DROP COLUMN rotated_iat; \
             DELETE FROM _sqlx_migrations WHERE version = 11; \
             INSERT INTO users (username, email, is_admin, created_at) VALUES ('Bob', 'b1@example.com', FALSE, 0); \
             INSERT INTO users (username, email, is_admin, created_at) VALUES ('bob', 'b2@example.com', FALSE, 0);",
        );
        let err = refused(&db, &data);
        assert!(err.contains("usernames Bob and bob"), "{err}");
        assert!(err.contains("differ only in case"), "{err}");
    }
}

/// URL-safe base64 without padding, for hand-made tokens.
fn b64url(bytes: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// An HS256 token signed with `secret`.
fn jwt(secret: &[u8], claims: &Value) -> String {
    let head = b64url(br#"{"alg":"HS256","typ":"JWT"}"#);
    let body = b64url(claims.to_string().as_bytes());
    let signing = format!("{head}.{body}");
    let mut key = [0u8; 64];
    key[..secret.len()].copy_from_slice(secret);
    let pad = |b: u8| key.iter().map(|k| k ^ b).collect::<Vec<u8>>();
    let inner = sha2::Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(signing.as_bytes())
        .finalize();
    let mac = sha2::Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize();
    format!("{signing}.{}", b64url(&mac))
}

/// Item 6: the small leaks.
#[test]
fn small_leaks_are_closed() {
    let c = http();
    let secret = "a-test-secret-of-at-least-32-characters!";
    for db in databases() {
        let dir = tempfile::tempdir().unwrap();
        let (s, _) = launch(
            &db,
            &dir.path().join("data"),
            &["--jwt-secret", secret, "--max-run-config-bytes", "2048"],
        );
        let base = s.url.clone();
        let owner = user(&c, &base, "owner");

        // A public model's version holding an artifact of a private project.
        for (name, visibility) in [("vault", "private"), ("showcase", "public")] {
            let (st, b) = post(
                &c,
                &format!("{base}/api/v1/projects"),
                Some(&owner),
                json!({"name": name, "visibility": visibility}),
            );
            assert_eq!(st, StatusCode::CREATED, "{b}");
        }
        let (st, b) = post(
            &c,
            &format!("{base}/api/v1/projects/vault/artifacts/secret-weights/versions"),
            Some(&owner),
            json!({"type": "model", "entries": [{"path": "m.bin", "ref": "s3://models/m.bin", "size": 3}]}),
        );
        assert_eq!(st, StatusCode::OK, "{b}");
        let (st, b) = post(
            &c,
            &format!("{base}/api/v1/models"),
            Some(&owner),
            json!({"name": "clf", "project": "showcase"}),
        );
        assert_eq!(st, StatusCode::CREATED, "{b}");
        let (st, b) = post(
            &c,
            &format!("{base}/api/v1/models/clf/versions"),
            Some(&owner),
            json!({"artifact": "vault/secret-weights:v1"}),
        );
        assert_eq!(st, StatusCode::CREATED, "{b}");
        let (st, mine) = get(
            &c,
            &format!("{base}/api/v1/models/clf/versions/v1"),
            Some(&owner),
        );
        assert_eq!(st, StatusCode::OK, "{mine}");
        assert_eq!(mine["artifact"], "vault/secret-weights:v1");
        let (st, public) = get(&c, &format!("{base}/api/v1/models/clf/versions/v1"), None);
        assert_eq!(st, StatusCode::OK, "{public}");
        assert!(public["artifact"].is_null(), "{public}");
        assert!(!public.to_string().contains("secret-weights"), "{public}");

        // A reference to an internal name: refused without saying where it resolves.
        let (st, b) = post(
            &c,
            &format!("{base}/api/v1/projects/vault/artifacts/refs/versions"),
            Some(&owner),
            json!({"type": "dataset", "entries": [{"path": "d", "ref": "https://localhost:8443/x"}]}),
        );
        assert_eq!(st, StatusCode::BAD_REQUEST, "{b}");
        let msg = b["error"]["message"].as_str().unwrap();
        assert!(!msg.contains("127.0.0.1") && !msg.contains("::1"), "{msg}");

        // Key creation answers are not cached.
        let access = login(&c, &base, "owner");
        let resp = c
            .post(format!("{base}/api/v1/auth/api-keys"))
            .bearer_auth(&access)
            .json(&json!({"name": "k"}))
            .send()
            .unwrap();
        assert_eq!(resp.headers()["cache-control"], "no-store");

        // Tokens from the future: signed with the right secret, but not yet valid.
        let (_, me) = get(&c, &format!("{base}/api/v1/auth/me"), Some(&access));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let claims = |iat: u64, nbf: Option<u64>| {
            let mut c = json!({"sub": me["id"].to_string(), "jti": "hand-made", "iat": iat,
                "exp": now + 3600, "typ": "access", "fam": "hand-made"});
            if let Some(n) = nbf {
                c["nbf"] = json!(n);
            }
            c
        };
        let me_with = |token: String| get(&c, &format!("{base}/api/v1/auth/me"), Some(&token)).0;
        assert_eq!(
            me_with(jwt(secret.as_bytes(), &claims(now, None))),
            StatusCode::OK
        );
        assert_eq!(
            me_with(jwt(secret.as_bytes(), &claims(now + 600, None))),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            me_with(jwt(secret.as_bytes(), &claims(now, Some(now + 600)))),
            StatusCode::UNAUTHORIZED
        );

        // Run configs are capped (configurable); over the cap is a 413, on create and on merge.
        let (st, b) = run(
            &c,
            &base,
            &owner,
            "cfg",
            json!({"config": {"blob": "x".repeat(3000)}}),
        );
        assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE, "{b}");
        let (st, r) = run(&c, &base, &owner, "cfg", json!({"config": {"lr": 0.1}}));
        assert_eq!(st, StatusCode::CREATED, "{r}");
        let id = r["id"].as_str().unwrap().to_string();
        let (st, b) = send(
            &c,
            reqwest::Method::PATCH,
            &format!("{base}/api/v1/runs/{id}"),
            Some(&owner),
            Some(json!({"config": {"blob": "x".repeat(3000)}})),
        );
        assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE, "{b}");

        // NUL, control and bidirectional-override characters in keys, tags and names.
        let (st, b) = post(
            &c,
            &format!("{base}/api/v1/runs/{id}/history"),
            Some(&owner),
            json!({"points": [{"step": 0, "values": {"lo\u{0}ss": 1.0}}]}),
        );
        assert_eq!(st, StatusCode::BAD_REQUEST, "{b}");
        let (st, b) = post(
            &c,
            &format!("{base}/api/v1/runs/{id}/tags"),
            Some(&owner),
            json!({"tag": "\u{202E}gnp.exe"}),
        );
        assert_eq!(st, StatusCode::BAD_REQUEST, "{b}");
        let (st, b) = run(&c, &base, &owner, "cfg", json!({"name": "bell\u{7}"}));
        assert_eq!(st, StatusCode::BAD_REQUEST, "{b}");

        // An empty upload batch is an error, not an empty success.
        let resp = c
            .post(format!("{base}/api/v1/blobs/batch"))
            .bearer_auth(&owner)
            .header("content-type", "application/octet-stream")
            .body(Vec::new())
            .send()
            .unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);

        // A common password meets the character rules but is refused.
        let (st, b) = post(
            &c,
            &format!("{base}/api/v1/auth/register"),
            None,
            json!({"username": "carol", "email": "carol@example.com", "password": "Password123!"}),
        );
        assert_eq!(st, StatusCode::BAD_REQUEST, "{b}");
        assert!(
            b["error"]["message"]
                .as_str()
                .unwrap()
                .contains("too easy to guess"),
            "{b}"
        );
        stop(s);
    }
}

/// Operations: one structured line per request (method, route template, status, duration,
/// actor, request id) in JSON with `--log-format json`, never a secret, no colour codes when
/// stderr is not a terminal.
#[test]
fn every_request_leaves_one_json_log_line() {
    let c = http();
    let dir = tempfile::tempdir().unwrap();
    let db = Db { schema: None };
    let (s, early) = launch(&db, &dir.path().join("data"), &["--log-format", "json"]);
    let key = s.admin_key.clone().unwrap();
    let resp = c
        .get(format!("{}/api/v1/auth/me", s.url))
        .bearer_auth(&key)
        .header("x-request-id", "trace-42")
        .send()
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "trace-42");
    let (_, b) = post(
        &c,
        &format!("{}/api/v1/auth/login", s.url),
        None,
        json!({"username": "admin", "password": "not-this-one-1A!"}),
    );
    assert_eq!(b["error"]["code"], "unauthenticated");
    let mut lines = early;
    let deadline = Instant::now() + Duration::from_secs(30);
    let requests = loop {
        let requests: Vec<Value> = lines
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["message"] == "request")
            .collect();
        if requests.len() >= 2 {
            break requests;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        lines.push(s.stderr.recv_timeout(left).expect("request log lines"));
    };
    let me = &requests[0];
    assert_eq!(me["method"], "GET");
    assert_eq!(me["route"], "/api/v1/auth/me");
    assert_eq!(me["status"], 200);
    assert_eq!(me["actor"], "admin");
    assert_eq!(me["request_id"], "trace-42");
    assert!(me["duration_ms"].as_f64().is_some());
    let login = &requests[1];
    assert_eq!(login["route"], "/api/v1/auth/login");
    assert_eq!(login["status"], 401);
    assert_eq!(login["actor"], "anonymous");
    assert_eq!(login["request_id"].as_str().unwrap().len(), 16);
    for l in &lines {
        assert!(!l.contains('\u{1b}'), "colour codes in {l:?}");
        assert!(
            !l.contains(&key) || !l.contains("request"),
            "the key in {l:?}"
        );
        assert!(!l.contains("not-this-one"), "a password in {l:?}");
    }
    stop(s);
}
