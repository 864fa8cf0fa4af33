//! Two `wanllmdb server` processes on one PostgreSQL database and one storage directory behave
//! as one server: sessions, revocations and login limits hold across them, the singleton
//! jobs run on exactly one at a time and move when it dies, and a sweep hands out each grid
//! point once through both. Runs when `WANLLMDB_TEST_DATABASE_URL` is set.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::database::Schema;
use crate::support::moto::{self, Moto};
use crate::support::process::{wait_exit_within, wait_until};
use crate::support::{Api, PASSWORD, Server, bare};

/// Two replicas, started one after the other on the same database and the same object
/// storage: a moto S3 bucket when moto_server is available, else one shared data directory.
struct Pair {
    // The servers stop first, before their storage and database go away.
    a: Server,
    b: Server,
    _moto: Option<Moto>,
    schema: Schema,
    dir: tempfile::TempDir,
    key: String,
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
        let moto = moto::start("wl-replicas");
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
        let a = Server::start(&data_a, &args);
        let key = a
            .admin_key
            .clone()
            .expect("the first replica creates the admin");
        let b = Server::start(&data_b, &args);
        assert!(b.admin_key.is_none(), "the second replica finds the admin");
        Some(Pair {
            a,
            b,
            _moto: moto,
            schema,
            dir,
            key,
        })
    }
}

#[test]
fn sessions_revocations_and_login_limits_hold_across_replicas() {
    let Some(p) = Pair::start(&[]) else { return };
    let (a, b) = (p.a.api(), p.b.api());
    let (admin_a, admin_b) = (a.with_token(&p.key), b.with_token(&p.key));
    assert_eq!(admin_b.get("/api/v1/auth/me").0, StatusCode::OK);

    let (st, _) = admin_a.post(
        "/api/v1/auth/register",
        json!({"username": "ria", "email": "ria@example.com", "password": PASSWORD}),
    );
    assert_eq!(st, StatusCode::CREATED);

    // A session opened on B works on A; logging out on A ends it on B at once.
    let (st, pair) = b.login("ria", PASSWORD);
    assert_eq!(st, StatusCode::OK, "{pair}");
    let access = pair["access_token"].as_str().unwrap();
    let refresh = pair["refresh_token"].as_str().unwrap();
    assert_eq!(
        a.with_token(access).get("/api/v1/auth/me").0,
        StatusCode::OK
    );
    let (st, body) = a
        .with_token(access)
        .post("/api/v1/auth/logout", json!({"refresh_token": refresh}));
    assert!(st.is_success(), "{st} {body}");
    assert_eq!(
        b.with_token(access).get("/api/v1/auth/me").0,
        StatusCode::UNAUTHORIZED
    );
    let (st, _) = admin_b.post("/api/v1/auth/refresh", json!({"refresh_token": refresh}));
    assert_eq!(st, StatusCode::UNAUTHORIZED, "the refresh family died too");

    // An API key made on B works on A until A revokes it; then B refuses it too.
    let (_, pair) = a.login("ria", PASSWORD);
    let access = pair["access_token"].as_str().unwrap();
    let (st, created) = b
        .with_token(access)
        .post("/api/v1/auth/api-keys", json!({"name": "ci"}));
    assert_eq!(st, StatusCode::CREATED, "{created}");
    let key = created["key"].as_str().unwrap();
    assert_eq!(a.with_token(key).get("/api/v1/auth/me").0, StatusCode::OK);
    let (st, _) = a.with_token(access).send(
        Method::DELETE,
        &format!("/api/v1/auth/api-keys/{}", created["id"]),
        None,
    );
    assert!(st.is_success(), "{st}");
    assert_eq!(
        b.with_token(key).get("/api/v1/auth/me").0,
        StatusCode::UNAUTHORIZED
    );

    // Disabling the account on B ends its session and its keys on A at once.
    let (_, pair) = a.login("ria", PASSWORD);
    let access = pair["access_token"].as_str().unwrap().to_string();
    let (_, created) = a
        .with_token(&access)
        .post("/api/v1/auth/api-keys", json!({"name": "ci2"}));
    let key = created["key"].as_str().unwrap().to_string();
    assert_eq!(a.with_token(&key).get("/api/v1/auth/me").0, StatusCode::OK);
    let (st, body) = admin_b.post("/api/v1/admin/users/ria/disable", json!({}));
    assert!(st.is_success(), "{st} {body}");
    for token in [&access, &key] {
        assert_eq!(
            a.with_token(token).get("/api/v1/auth/me").0,
            StatusCode::UNAUTHORIZED
        );
    }
    let (st, body) = admin_a.post("/api/v1/admin/users/ria/enable", json!({}));
    assert!(st.is_success(), "{st} {body}");

    // Failed logins spread over both replicas count together.
    for i in 0..5 {
        let replica = if i % 2 == 0 { &a } else { &b };
        assert_eq!(
            replica.login("ria", "wrong password").0,
            StatusCode::UNAUTHORIZED
        );
    }
    for replica in [&b, &a] {
        assert_eq!(
            replica.login("ria", PASSWORD).0,
            StatusCode::TOO_MANY_REQUESTS
        );
    }
}

/// Which replica holds each singleton lease, as `name=holder` lines.
fn holders(p: &Pair) -> String {
    p.schema.query(
        "SELECT string_agg(name || '=' || holder, ',' ORDER BY name) FROM {schema}.leases WHERE expires_at > (EXTRACT(EPOCH FROM clock_timestamp()) * 1000000)::bigint",
    )
}

/// Lines a server printed to stderr so far.
fn drain(s: &Server, into: &mut Vec<String>) {
    while let Ok(l) = s.stderr.try_recv() {
        into.push(l);
    }
}

fn run_state(api: &Api, id: &str) -> String {
    let (_, run) = api.get(&format!("/api/v1/runs/{id}"));
    run["state"].as_str().unwrap_or_default().to_string()
}

impl Pair {
    /// Calls to replica `s` as the admin.
    fn admin(&self, s: &Server) -> Api {
        s.api().with_token(&self.key)
    }
}

#[test]
fn singleton_jobs_run_on_one_replica_and_move_when_it_dies() {
    let Some(mut p) = Pair::start(&["--heartbeat-timeout", "1"]) else {
        return;
    };
    let (a_pid, b_pid) = (p.a.pid(), p.b.pid());
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
    assert_eq!(leader_gauges(&p.a), [1, 1], "replica A runs both jobs");
    assert_eq!(leader_gauges(&p.b), [0, 0], "replica B runs neither");
    let mut b_log = Vec::new();
    drain(&p.b, &mut b_log);
    let runs_job = |log: &[String]| {
        log.iter()
            .filter(|l| l.contains("now runs the job"))
            .count()
    };
    assert_eq!(runs_job(&b_log), 0, "{b_log:?}");

    // A run that stops sending heartbeats is marked crashed by the reaper on replica A.
    p.admin(&p.a).create_project("rep");
    let admin_b = p.admin(&p.b);
    let (st, run) = admin_b.post("/api/v1/runs", json!({"project": "rep"}));
    assert_eq!(st, StatusCode::CREATED, "{run}");
    let id = run["id"].as_str().unwrap().to_string();
    wait_until(Duration::from_secs(20), "the reaper on A", || {
        run_state(&admin_b, &id) == "crashed"
    });

    // Replica A dies without giving its leases back; B takes over once they expire and
    // reaps the next silent run.
    p.a.kill();
    let (st, run) = admin_b.post("/api/v1/runs", json!({"project": "rep"}));
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
        run_state(&admin_b, &id) == "crashed"
    });
    drain(&p.b, &mut b_log);
    assert_eq!(runs_job(&b_log), 2, "{b_log:?}");
    assert_eq!(leader_gauges(&p.b), [1, 1]);
}

/// `wanllmdb_singleton_job_leader` of the reaper and the sweep scheduler, from `/metrics`.
fn leader_gauges(s: &Server) -> [u8; 2] {
    let text = s
        .api()
        .request(Method::GET, "/metrics")
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

/// `wanllmdb sweep agent ID` against replica `s`, with quick heartbeats.
fn agent(p: &Pair, s: &Server, work: &Path, id: &str) -> Child {
    bare(work, &work.join(format!("cfg-{}", s.pid())))
        .args(["sweep", "agent", id])
        .env("WANLLMDB_BASE_URL", &s.url)
        .env("WANLLMDB_API_KEY", &p.key)
        .env("WANLLMDB_SWEEP_HEARTBEAT", "0.3")
        .env("WANLLMDB_HEARTBEAT_INTERVAL", "1")
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
    let admin_a = p.admin(&p.a);
    admin_a.create_project("sw");
    let (st, sweep) = admin_a.post("/api/v1/projects/sw/sweeps", json!({"config": config}));
    assert_eq!(st, StatusCode::CREATED, "{sweep}");
    let id = sweep["id"].as_str().unwrap().to_string();
    let agents = [
        agent(&p, &p.a, &work, &id),
        agent(&p, &p.b, &work, &id),
        agent(&p, &p.b, &work, &id),
    ];
    for mut ag in agents {
        let status =
            wait_exit_within(&mut ag, Duration::from_secs(120)).expect("agent did not finish");
        let mut err = String::new();
        use std::io::Read;
        ag.stderr.take().unwrap().read_to_string(&mut err).unwrap();
        assert!(status.success(), "{err}");
    }
    let (st, trials) = p.admin(&p.b).get(&format!("/api/v1/sweeps/{id}/trials"));
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
        &p.a,
        &work,
        &["artifact", "put", "model", "--name", "m", "--type", "model"],
    );
    assert_eq!(put["uploaded"], 1, "{put}");
    let dest = work.join("got");
    let got = cli(
        &p,
        &p.b,
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

/// `wanllmdb ARGS --json` in project `sw` against replica `s`.
fn cli(p: &Pair, s: &Server, work: &Path, args: &[&str]) -> Value {
    let out = bare(work, &work.join("cfg-cli"))
        .args(args)
        .args(["--project", "sw", "--json"])
        .env("WANLLMDB_BASE_URL", &s.url)
        .env("WANLLMDB_API_KEY", &p.key)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}
