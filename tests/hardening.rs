//! The hardening suite, against the real binary on SQLite and, when
//! `WANLLMDB_TEST_DATABASE_URL` is set, on PostgreSQL: local files private to the server's
//! user, bodies that cost nothing before authentication, slow clients cut off, refresh races
//! answered with one pair, login limits per account with case-insensitive names, and the
//! small leaks closed.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::Digest;

use crate::support::database::{Db, databases};
use crate::support::server::{command, refuses};
use crate::support::{Api, PASSWORD, Server};

/// Starts `wanllmdb server` on `db` with `extra` arguments.
fn launch(db: &Db, data: &Path, extra: &[&str]) -> Server {
    let mut args = db.args();
    args.extend(extra.iter().map(|a| a.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Server::start(data, &args)
}

/// Runs `wanllmdb server` on `db` expecting it to refuse to start; its stderr.
fn refused(db: &Db, data: &Path) -> String {
    let mut cmd = command();
    cmd.args(["--bind", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .args(db.args());
    refuses(cmd)
}

/// Creates a run in project `project` (made if new) as the caller of `api`.
fn run(api: &Api, project: &str, body: Value) -> (StatusCode, Value) {
    let mut body = body;
    body["project"] = json!(project);
    api.post("/api/v1/runs", body)
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
    for db in databases() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let mut s = launch(&db, &data, &[]);
        let api = s.admin();
        let (st, r) = run(&api, "secrets", json!({}));
        assert_eq!(st, StatusCode::CREATED, "{r}");
        let id = r["id"].as_str().unwrap();
        let bytes = b"weights".to_vec();
        let digest = hex::encode(sha2::Sha256::digest(&bytes));
        let (st, put) = api.post(
            &format!("/api/v1/runs/{id}/files"),
            json!({"files": [{"path": "w.bin", "sha256": digest, "size": bytes.len()}]}),
        );
        assert_eq!(st, StatusCode::OK, "{put}");
        let upload = put["files"][0]["upload_url"].as_str().unwrap();
        let resp = s
            .api()
            .request(Method::PUT, upload)
            .body(bytes)
            .send()
            .unwrap();
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
        s.stop();

        // An install from before: everything readable by others.
        chmod(&data, 0o755);
        chmod(&blob, 0o644);
        chmod(blob.parent().unwrap(), 0o755);
        if db.is_sqlite() {
            chmod(&db_file, 0o644);
        }
        let mut s = launch(&db, &data, &[]);
        let early = &s.early;
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
        s.stop();

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
    for db in databases() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = launch(
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
        let api = s.admin();
        let (_, r) = run(&api, "mem", json!({}));
        let id = r["id"].as_str().unwrap().to_string();

        // Each answered from the request head alone: no body is sent.
        let heads = [
            (
                "64 MiB announced, anonymous",
                format!(
                    "POST /api/v1/runs/{id}/history HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 67108864\r\n\r\n"
                ),
                401,
            ),
            (
                "a chunked body, anonymous",
                format!(
                    "POST /api/v1/runs/{id}/history HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                ),
                401,
            ),
            // Login takes a few KiB.
            (
                "a megabyte announced to login",
                "POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1048576\r\n\r\n".to_string(),
                413,
            ),
            (
                "signed in, over the route's limit",
                format!(
                    "POST /api/v1/runs/{id}/history HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: 2000000\r\n\r\n"
                ),
                413,
            ),
        ];
        for (what, head, want) in heads {
            let mut conn = connect(&base);
            conn.write_all(head.as_bytes()).unwrap();
            assert_eq!(read_head(&mut conn).0, want, "{what}");
        }
        // A sent 9 KiB is refused after 8 KiB.
        let (st, b) = s.api().post(
            "/api/v1/auth/login",
            json!({"username": "admin", "password": "x".repeat(9000)}),
        );
        assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE, "{b}");

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
        let history = format!("/api/v1/runs/{id}/history");
        let big_point = |pad: usize| {
            let body = format!(
                "{{\"points\": [{{\"step\": 0, \"values\": {{\"loss\": 1.0}}}}]}}{}",
                " ".repeat(pad)
            );
            api.request(Method::POST, &history)
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
        s.stop();
    }
}

/// Item 3: a connection that does not finish its headers, a body that stops arriving and an
/// idle keep-alive connection are all ended by the server.
#[test]
fn slow_clients_are_cut_off() {
    for db in databases() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = launch(
            &db,
            &dir.path().join("data"),
            &["--header-timeout", "1", "--body-timeout", "1"],
        );
        let key = s.admin_key.clone().unwrap();
        let base = s.url.clone();
        let (_, r) = run(&s.admin(), "slow", json!({}));
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
        s.stop();
    }
}

/// Item 4: the same refresh token presented twice at once, or again within the grace window,
/// gets the same new pair; presented later it ends the session and is audited as suspicious.
#[test]
fn refresh_races_get_one_pair() {
    for db in databases() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("server.toml");
        std::fs::write(&conf, "refresh_grace_secs = 1\n").unwrap();
        let mut s = launch(
            &db,
            &dir.path().join("data"),
            &["--config", conf.to_str().unwrap()],
        );
        let api = s.api();
        api.account("alice");
        let resp = api
            .request(Method::POST, "/api/v1/auth/login")
            .json(&json!({"username": "alice", "password": PASSWORD}))
            .send()
            .unwrap();
        assert_eq!(resp.headers()["cache-control"], "no-store");
        let pair: Value = resp.json().unwrap();
        let old = pair["refresh_token"].as_str().unwrap().to_string();
        let racers: Vec<_> = (0..2)
            .map(|_| {
                // A client each, so neither waits for the other's connection.
                let (racer, old) = (Api::new(&s.url), old.clone());
                std::thread::spawn(move || refresh(&racer, &old))
            })
            .collect();
        let answers: Vec<_> = racers.into_iter().map(|t| t.join().unwrap()).collect();
        for (status, cache, body) in &answers {
            assert_eq!(*status, StatusCode::OK, "{body}");
            assert_eq!(cache.as_deref(), Some("no-store"));
        }
        assert_eq!(answers[0].2, answers[1].2, "both racers get the same pair");
        let (status, _, retried) = refresh(&api, &old);
        assert_eq!(status, StatusCode::OK);
        assert_eq!(retried, answers[0].2, "a retry gets the same pair");
        let access = api.with_token(retried["access_token"].as_str().unwrap());
        assert_eq!(access.get("/api/v1/auth/me").0, StatusCode::OK);

        // After the grace window the old token is a stolen copy: the session ends.
        std::thread::sleep(Duration::from_millis(1500));
        let (status, _, body) = refresh(&api, &old);
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("already used")
        );
        assert_eq!(access.get("/api/v1/auth/me").0, StatusCode::UNAUTHORIZED);
        let (_, events) = s
            .admin()
            .get("/api/v1/audit/logs?event_type=security.suspicious");
        assert_eq!(events["items"].as_array().unwrap().len(), 1, "{events}");
        s.stop();
    }
}

/// `POST /auth/refresh`: status, Cache-Control, body.
fn refresh(api: &Api, token: &str) -> (StatusCode, Option<String>, Value) {
    let resp = api
        .request(Method::POST, "/api/v1/auth/refresh")
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
    for db in databases() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        // Each attempt from its own address, so only the account's count can stop them.
        let mut s = launch(&db, &data, &["--trusted-proxy", "127.0.0.1"]);
        let api = s.api();
        api.account("alice");
        for (name, email) in [("ALICE", "a2@example.com"), ("alice2", "Alice@Example.COM")] {
            let (st, b) = api.post(
                "/api/v1/auth/register",
                json!({"username": name, "email": email, "password": PASSWORD}),
            );
            assert_eq!(st, StatusCode::CONFLICT, "{name} {email}: {b}");
        }
        let attempt = |n: u32, name: &str, password: &str| {
            api.request(Method::POST, "/api/v1/auth/login")
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
        s.stop();

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
    let secret = "a-test-secret-of-at-least-32-characters!";
    for db in databases() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = launch(
            &db,
            &dir.path().join("data"),
            &["--jwt-secret", secret, "--max-run-config-bytes", "2048"],
        );
        let anonymous = s.api();
        let owner = anonymous.with_token(&anonymous.account("owner"));

        // A public model's version holding an artifact of a private project.
        let setup = [
            (
                "/api/v1/projects",
                json!({"name": "vault", "visibility": "private"}),
                StatusCode::CREATED,
            ),
            (
                "/api/v1/projects",
                json!({"name": "showcase", "visibility": "public"}),
                StatusCode::CREATED,
            ),
            (
                "/api/v1/projects/vault/artifacts/secret-weights/versions",
                json!({"type": "model", "entries": [{"path": "m.bin", "ref": "s3://models/m.bin", "size": 3}]}),
                StatusCode::OK,
            ),
            (
                "/api/v1/models",
                json!({"name": "clf", "project": "showcase"}),
                StatusCode::CREATED,
            ),
            (
                "/api/v1/models/clf/versions",
                json!({"artifact": "vault/secret-weights:v1"}),
                StatusCode::CREATED,
            ),
        ];
        for (path, body, want) in setup {
            let (st, b) = owner.post(path, body);
            assert_eq!(st, want, "POST {path}: {b}");
        }
        let (st, mine) = owner.get("/api/v1/models/clf/versions/v1");
        assert_eq!(st, StatusCode::OK, "{mine}");
        assert_eq!(mine["artifact"], "vault/secret-weights:v1");
        let (st, public) = anonymous.get("/api/v1/models/clf/versions/v1");
        assert_eq!(st, StatusCode::OK, "{public}");
        assert!(public["artifact"].is_null(), "{public}");
        assert!(!public.to_string().contains("secret-weights"), "{public}");

        // A reference to an internal name: refused without saying where it resolves.
        let (st, b) = owner.post(
            "/api/v1/projects/vault/artifacts/refs/versions",
            json!({"type": "dataset", "entries": [{"path": "d", "ref": "https://localhost:8443/x"}]}),
        );
        assert_eq!(st, StatusCode::BAD_REQUEST, "{b}");
        let msg = b["error"]["message"].as_str().unwrap();
        assert!(!msg.contains("127.0.0.1") && !msg.contains("::1"), "{msg}");

        // Key creation answers are not cached.
        let access = anonymous.with_token(&anonymous.access_token("owner"));
        let resp = access
            .request(Method::POST, "/api/v1/auth/api-keys")
            .json(&json!({"name": "k"}))
            .send()
            .unwrap();
        assert_eq!(resp.headers()["cache-control"], "no-store");

        // Tokens from the future: signed with the right secret, but not yet valid.
        let (_, me) = access.get("/api/v1/auth/me");
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
        let tokens = [
            ("issued now", claims(now, None), StatusCode::OK),
            (
                "issued in ten minutes",
                claims(now + 600, None),
                StatusCode::UNAUTHORIZED,
            ),
            (
                "valid from ten minutes on",
                claims(now, Some(now + 600)),
                StatusCode::UNAUTHORIZED,
            ),
        ];
        for (what, claims, want) in tokens {
            let token = jwt(secret.as_bytes(), &claims);
            let (st, b) = anonymous.with_token(&token).get("/api/v1/auth/me");
            assert_eq!(st, want, "a token {what}: {b}");
        }

        // Run configs are capped (configurable); over the cap is a 413, on create and on merge.
        let (st, b) = run(&owner, "cfg", json!({"config": {"blob": "x".repeat(3000)}}));
        assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE, "{b}");
        let (st, r) = run(&owner, "cfg", json!({"config": {"lr": 0.1}}));
        assert_eq!(st, StatusCode::CREATED, "{r}");
        let id = r["id"].as_str().unwrap().to_string();
        let refusals = [
            (
                "a config over the cap, on merge",
                Method::PATCH,
                format!("/api/v1/runs/{id}"),
                json!({"config": {"blob": "x".repeat(3000)}}),
                StatusCode::PAYLOAD_TOO_LARGE,
            ),
            // NUL, control and bidirectional-override characters in keys, tags and names.
            (
                "a NUL in a metric key",
                Method::POST,
                format!("/api/v1/runs/{id}/history"),
                json!({"points": [{"step": 0, "values": {"lo\u{0}ss": 1.0}}]}),
                StatusCode::BAD_REQUEST,
            ),
            (
                "a right-to-left override in a tag",
                Method::POST,
                format!("/api/v1/runs/{id}/tags"),
                json!({"tag": "\u{202E}gnp.exe"}),
                StatusCode::BAD_REQUEST,
            ),
            (
                "a bell in a run name",
                Method::POST,
                "/api/v1/runs".to_string(),
                json!({"project": "cfg", "name": "bell\u{7}"}),
                StatusCode::BAD_REQUEST,
            ),
        ];
        for (what, method, path, body, want) in refusals {
            let (st, b) = owner.send(method, &path, Some(body));
            assert_eq!(st, want, "{what}: {b}");
        }

        // An empty upload batch is an error, not an empty success.
        let resp = owner
            .request(Method::POST, "/api/v1/blobs/batch")
            .header("content-type", "application/octet-stream")
            .body(Vec::new())
            .send()
            .unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);

        // A common password meets the character rules but is refused.
        let (st, b) = anonymous.post(
            "/api/v1/auth/register",
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
        s.stop();
    }
}

/// Operations: one structured line per request (method, route template, status, duration,
/// actor, request id) in JSON with `--log-format json`, never a secret, no colour codes when
/// stderr is not a terminal.
#[test]
fn every_request_leaves_one_json_log_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = launch(
        &Db::sqlite(),
        &dir.path().join("data"),
        &["--log-format", "json"],
    );
    let key = s.admin_key.clone().unwrap();
    let resp = s
        .admin()
        .request(Method::GET, "/api/v1/auth/me")
        .header("x-request-id", "trace-42")
        .send()
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "trace-42");
    let (_, b) = s.api().post(
        "/api/v1/auth/login",
        json!({"username": "admin", "password": "not-this-one-1A!"}),
    );
    assert_eq!(b["error"]["code"], "unauthenticated");
    let mut lines = s.early.clone();
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
    s.stop();
}
