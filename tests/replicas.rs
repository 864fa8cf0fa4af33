//! Two `wanllmdb server` processes on one PostgreSQL database and one storage directory behave
//! as one server: sessions, revocations and login limits hold across them, the singleton
//! jobs run on exactly one at a time and move when it dies, and a sweep hands out each grid
//! point once through both. Runs when `WANLLMDB_TEST_DATABASE_URL` is set.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::Method;
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{Server, call, http, signal, start, wait_exit};

/// A fresh PostgreSQL schema, dropped at the end.
pub(super) struct Schema {
    base: String,
    name: String,
}

impl Schema {
    pub(super) fn create() -> Option<Schema> {
        let base = std::env::var("WANLLMDB_TEST_DATABASE_URL")
            .ok()
            .filter(|u| !u.is_empty())?;
        let name = format!("rep_{}_{}", std::process::id(), nanos());
        psql(&base, &format!("CREATE SCHEMA {name}"));
        Some(Schema { base, name })
    }

    /// The database URL the servers use: the schema first on the search path.
    pub(super) fn url(&self) -> String {
        let sep = if self.base.contains('?') { '&' } else { '?' };
        format!("{}{sep}options[search_path]={}", self.base, self.name)
    }

    /// Runs `sql` with `{schema}` standing for this schema's name; returns the output.
    pub(super) fn query(&self, sql: &str) -> String {
        let out = Command::new("psql")
            .arg(&self.base)
            .args(["-XAtqc", &sql.replace("{schema}", &self.name)])
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        psql(
            &self.base,
            &format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name),
        );
    }
}

fn nanos() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
}

fn psql(url: &str, sql: &str) {
    let out = Command::new("psql")
        .arg(url)
        .args(["-Xqc", sql])
        .output()
        .expect("run psql");
    assert!(
        out.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Two replicas, started one after the other on the same database and the same object
/// storage: a moto S3 bucket when moto_server is available, else one shared data directory.
struct Pair {
    dir: tempfile::TempDir,
    schema: Schema,
    a: Server,
    b: Server,
    key: String,
    _moto: Option<super::moto::Moto>,
}

impl Pair {
    fn start(extra: &[&str]) -> Option<Pair> {
        let Some(schema) = Schema::create() else {
            eprintln!("skipped: WANLLMDB_TEST_DATABASE_URL is not set");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let url = schema.url();
        let mut args = vec!["--database-url".to_string(), url];
        args.extend(extra.iter().map(|s| s.to_string()));
        let moto = super::moto::start("wl-replicas");
        let (data_a, data_b) = match &moto {
            Some(m) => {
                let conf = dir.path().join("server.toml");
                std::fs::write(
                    &conf,
                    format!(
                        "storage_url = \"s3://{}/shared\"\ns3_endpoint = \"{}\"\n\
                         s3_access_key_id = \"test\"\ns3_secret_access_key = \"test\"\n",
                        m.bucket, m.endpoint
                    ),
                )
                .unwrap();
                args.extend(["--config".to_string(), conf.display().to_string()]);
                (dir.path().join("data-a"), dir.path().join("data-b"))
            }
            None => (dir.path().join("data"), dir.path().join("data")),
        };
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let a = start(&data_a, &args);
        let key = a
            .admin_key
            .clone()
            .expect("the first replica creates the admin");
        let b = start(&data_b, &args);
        assert!(b.admin_key.is_none(), "the second replica finds the admin");
        Some(Pair {
            dir,
            schema,
            a,
            b,
            key,
            _moto: moto,
        })
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        for s in [&mut self.a, &mut self.b] {
            let _ = s.child.kill();
            let _ = s.child.wait();
        }
    }
}

fn post(url: &str, path: &str, bearer: &str, body: Value) -> (StatusCode, Value) {
    call(
        &http(),
        Method::POST,
        format!("{url}{path}"),
        bearer,
        Some(body),
    )
}

fn get(url: &str, path: &str, bearer: &str) -> (StatusCode, Value) {
    call(&http(), Method::GET, format!("{url}{path}"), bearer, None)
}

fn login(url: &str, user: &str, password: &str) -> (StatusCode, Value) {
    let r = http()
        .post(format!("{url}/api/v1/auth/login"))
        .json(&json!({"username": user, "password": password}))
        .send()
        .unwrap();
    let st = r.status();
    (st, r.json().unwrap_or(Value::Null))
}

#[test]
fn sessions_revocations_and_login_limits_hold_across_replicas() {
    let Some(p) = Pair::start(&[]) else { return };
    let (a, b) = (p.a.url.as_str(), p.b.url.as_str());
    assert_eq!(get(b, "/api/v1/auth/me", &p.key).0, StatusCode::OK);

    let (st, _) = post(
        a,
        "/api/v1/auth/register",
        &p.key,
        json!({"username": "ria", "email": "ria@example.com", "password": "Correct-Horse-42"}),
    );
    assert_eq!(st, StatusCode::CREATED);

    // A session opened on B works on A; logging out on A ends it on B at once.
    let (st, pair) = login(b, "ria", "Correct-Horse-42");
    assert_eq!(st, StatusCode::OK, "{pair}");
    let access = pair["access_token"].as_str().unwrap();
    let refresh = pair["refresh_token"].as_str().unwrap();
    assert_eq!(get(a, "/api/v1/auth/me", access).0, StatusCode::OK);
    let (st, body) = post(
        a,
        "/api/v1/auth/logout",
        access,
        json!({"refresh_token": refresh}),
    );
    assert!(st.is_success(), "{st} {body}");
    assert_eq!(
        get(b, "/api/v1/auth/me", access).0,
        StatusCode::UNAUTHORIZED
    );
    let (st, _) = post(
        b,
        "/api/v1/auth/refresh",
        &p.key,
        json!({"refresh_token": refresh}),
    );
    assert_eq!(st, StatusCode::UNAUTHORIZED, "the refresh family died too");

    // An API key made on B works on A until A revokes it; then B refuses it too.
    let (_, pair) = login(a, "ria", "Correct-Horse-42");
    let access = pair["access_token"].as_str().unwrap();
    let (st, created) = post(b, "/api/v1/auth/api-keys", access, json!({"name": "ci"}));
    assert_eq!(st, StatusCode::CREATED, "{created}");
    let key = created["key"].as_str().unwrap();
    assert_eq!(get(a, "/api/v1/auth/me", key).0, StatusCode::OK);
    let (st, _) = call(
        &http(),
        Method::DELETE,
        format!("{a}/api/v1/auth/api-keys/{}", created["id"]),
        access,
        None,
    );
    assert!(st.is_success(), "{st}");
    assert_eq!(get(b, "/api/v1/auth/me", key).0, StatusCode::UNAUTHORIZED);

    // Disabling the account on B ends its session and its keys on A at once.
    let (_, pair) = login(a, "ria", "Correct-Horse-42");
    let access = pair["access_token"].as_str().unwrap().to_string();
    let (_, created) = post(a, "/api/v1/auth/api-keys", &access, json!({"name": "ci2"}));
    let key = created["key"].as_str().unwrap().to_string();
    assert_eq!(get(a, "/api/v1/auth/me", &key).0, StatusCode::OK);
    let (st, body) = post(b, "/api/v1/admin/users/ria/disable", &p.key, json!({}));
    assert!(st.is_success(), "{st} {body}");
    assert_eq!(
        get(a, "/api/v1/auth/me", &access).0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(get(a, "/api/v1/auth/me", &key).0, StatusCode::UNAUTHORIZED);
    let (st, body) = post(a, "/api/v1/admin/users/ria/enable", &p.key, json!({}));
    assert!(st.is_success(), "{st} {body}");

    // Failed logins spread over both replicas count together.
    for i in 0..5 {
        let url = if i % 2 == 0 { a } else { b };
        assert_eq!(
            login(url, "ria", "wrong password").0,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        login(b, "ria", "Correct-Horse-42").0,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        login(a, "ria", "Correct-Horse-42").0,
        StatusCode::TOO_MANY_REQUESTS
    );
}

/// Which replica holds each singleton lease, as `name=holder` lines.
fn holders(p: &Pair) -> String {
    p.schema.query(
        "SELECT string_agg(name || '=' || holder, ',' ORDER BY name) FROM {schema}.leases WHERE expires_at > (EXTRACT(EPOCH FROM clock_timestamp()) * 1000000)::bigint",
    )
}

fn wait_until(limit: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Lines a server printed to stderr so far.
fn drain(s: &Server, into: &mut Vec<String>) {
    while let Ok(l) = s.stderr.try_recv() {
        into.push(l);
    }
}

fn run_state(url: &str, key: &str, id: &str) -> String {
    let (_, run) = get(url, &format!("/api/v1/runs/{id}"), key);
    run["state"].as_str().unwrap_or_default().to_string()
}

#[test]
fn singleton_jobs_run_on_one_replica_and_move_when_it_dies() {
    let Some(mut p) = Pair::start(&["--heartbeat-timeout", "1"]) else {
        return;
    };
    let (a_pid, b_pid) = (p.a.child.id(), p.b.child.id());
    wait_until(Duration::from_secs(20), "both leases taken", || {
        holders(&p).matches('=').count() == 2
    });
    // Over several lease periods the leases stay with the first replica, and the second
    // never says it runs a job.
    let first = holders(&p);
    assert!(
        first.contains(&format!("/{a_pid}/")) && !first.contains(&format!("/{b_pid}/")),
        "{first}"
    );
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(holders(&p), first);
    assert_eq!(leader_gauges(&p.a.url), [1, 1], "replica A runs both jobs");
    assert_eq!(leader_gauges(&p.b.url), [0, 0], "replica B runs neither");
    let mut b_log = Vec::new();
    drain(&p.b, &mut b_log);
    let runs_job = |log: &[String]| {
        log.iter()
            .filter(|l| l.contains("now runs the job"))
            .count()
    };
    assert_eq!(runs_job(&b_log), 0, "{b_log:?}");

    // A run that stops sending heartbeats is marked crashed by the reaper on replica A.
    let (st, _) = post(&p.a.url, "/api/v1/projects", &p.key, json!({"name": "rep"}));
    assert_eq!(st, StatusCode::CREATED);
    let (st, run) = post(&p.b.url, "/api/v1/runs", &p.key, json!({"project": "rep"}));
    assert_eq!(st, StatusCode::CREATED, "{run}");
    let id = run["id"].as_str().unwrap().to_string();
    wait_until(Duration::from_secs(20), "the reaper on A", || {
        run_state(&p.b.url, &p.key, &id) == "crashed"
    });

    // Replica A dies without giving its leases back; B takes over once they expire and
    // reaps the next silent run.
    signal(&p.a.child, "-9");
    wait_exit(&mut p.a.child);
    let (st, run) = post(&p.b.url, "/api/v1/runs", &p.key, json!({"project": "rep"}));
    assert_eq!(st, StatusCode::CREATED, "{run}");
    let id = run["id"].as_str().unwrap().to_string();
    wait_until(
        Duration::from_secs(30),
        "replica B to take the leases",
        || {
            let h = holders(&p);
            h.matches(&format!("/{b_pid}/")).count() == 2
        },
    );
    wait_until(Duration::from_secs(20), "the reaper on B", || {
        run_state(&p.b.url, &p.key, &id) == "crashed"
    });
    drain(&p.b, &mut b_log);
    assert_eq!(runs_job(&b_log), 2, "{b_log:?}");
    assert_eq!(leader_gauges(&p.b.url), [1, 1]);
}

/// `wanllmdb_singleton_job_leader` of the reaper and the sweep scheduler, from `/metrics`.
fn leader_gauges(url: &str) -> [u8; 2] {
    let text = http()
        .get(format!("{url}/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let gauge = |job: &str| {
        let prefix = format!("wanllmdb_singleton_job_leader{{job=\"{job}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
            .parse()
            .unwrap()
    };
    [gauge("reaper"), gauge("sweep-scheduler")]
}

const TRAIN: &str = r#"#!/usr/bin/env bash
set -e
for arg in "$@"; do echo "$arg"; done
for step in 0 1 2; do
  echo "{\"step\": $step, \"loss\": $RANDOM}" >> "$WANLLMDB_METRICS"
done
"#;

fn agent(p: &Pair, url: &str, work: &Path, id: &str) -> Child {
    Command::new(super::binary())
        .args(["sweep", "agent", id])
        .current_dir(work)
        .env(
            "WANLLMDB_CONFIG_DIR",
            work.join(format!("cfg-{}", url.len())),
        )
        .env("WANLLMDB_KEYRING", "0")
        .env("WANLLMDB_BASE_URL", url)
        .env("WANLLMDB_API_KEY", &p.key)
        .env("WANLLMDB_SWEEP_HEARTBEAT", "0.3")
        .env("WANLLMDB_HEARTBEAT_INTERVAL", "1")
        .env("NO_COLOR", "1")
        .env_remove("WANLLMDB_PROJECT")
        .env_remove("WANLLMDB_RUN_ID")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn a_sweep_hands_out_each_grid_point_once_across_replicas() {
    let Some(p) = Pair::start(&[]) else { return };
    let work = p.dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(work.join("train.sh"), TRAIN).unwrap();
    let config = json!({
        "program": "train.sh",
        "command": ["bash", "${program}", "${args}"],
        "method": "grid",
        "metric": {"name": "loss", "goal": "minimize"},
        "parameters": {"a": {"values": [1, 2, 3, 4]}, "b": {"values": ["x", "y", "z"]}},
    });
    let (st, _) = post(&p.a.url, "/api/v1/projects", &p.key, json!({"name": "sw"}));
    assert_eq!(st, StatusCode::CREATED);
    let (st, sweep) = post(
        &p.a.url,
        "/api/v1/projects/sw/sweeps",
        &p.key,
        json!({"config": config}),
    );
    assert_eq!(st, StatusCode::CREATED, "{sweep}");
    let id = sweep["id"].as_str().unwrap().to_string();
    let agents = [
        agent(&p, &p.a.url, &work, &id),
        agent(&p, &p.b.url, &work, &id),
        agent(&p, &p.b.url, &work, &id),
    ];
    for mut ag in agents {
        let deadline = Instant::now() + Duration::from_secs(120);
        let status = loop {
            if let Some(s) = ag.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < deadline, "agent did not finish");
            std::thread::sleep(Duration::from_millis(100));
        };
        let mut err = String::new();
        use std::io::Read;
        ag.stderr.take().unwrap().read_to_string(&mut err).unwrap();
        assert!(status.success(), "{err}");
    }
    let (st, trials) = get(&p.b.url, &format!("/api/v1/sweeps/{id}/trials"), &p.key);
    assert_eq!(st, StatusCode::OK);
    let items = trials.as_array().unwrap_or_else(|| panic!("{trials}"));
    assert_eq!(items.len(), 12, "{trials}");
    let points: BTreeSet<String> = items.iter().map(|t| t["params"].to_string()).collect();
    assert_eq!(points.len(), 12, "every grid point exactly once");
    assert!(items.iter().all(|t| t["state"] == "finished"), "{trials}");

    // Content uploaded through one replica downloads through the other.
    std::fs::create_dir_all(work.join("model")).unwrap();
    let weights: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(work.join("model/weights.bin"), &weights).unwrap();
    let put = cli(
        &p,
        &p.a.url,
        &work,
        &["artifact", "put", "model", "--name", "m", "--type", "model"],
    );
    assert_eq!(put["uploaded"], 1, "{put}");
    let dest = work.join("got");
    let got = cli(
        &p,
        &p.b.url,
        &work,
        &[
            "artifact",
            "get",
            "m:v1",
            "--dir",
            dest.to_str().unwrap(),
            "--no-cache",
        ],
    );
    assert_eq!(got["downloaded"], 1, "{got}");
    assert_eq!(std::fs::read(dest.join("weights.bin")).unwrap(), weights);
}

/// `wanllmdb ARGS --json` in project `sw` against one replica.
fn cli(p: &Pair, url: &str, work: &Path, args: &[&str]) -> Value {
    let out = Command::new(super::binary())
        .args(args)
        .args(["--project", "sw", "--json"])
        .current_dir(work)
        .env("WANLLMDB_CONFIG_DIR", work.join("cfg-cli"))
        .env("WANLLMDB_CACHE_DIR", work.join("cache"))
        .env("WANLLMDB_KEYRING", "0")
        .env("WANLLMDB_BASE_URL", url)
        .env("WANLLMDB_API_KEY", &p.key)
        .env_remove("WANLLMDB_PROJECT")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}
