//! The audit log's query side: filters, pages, exports, failed logins, statistics, who may
//! read it, bad input, and retention.

use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};

use crate::{Ctx, PASSWORD, assert_error, each_backend};

const AGENT: &str = "probe \"quoted\", agent";

/// Known events: alice and bob register and log in (user_register + login_success +
/// api_key_created each), alice creates a project (project_create) and logs in once more, two wrong passwords for alice and one unknown user (with a
/// User-Agent that needs CSV quoting), and bob is refused the audit log (access_denied).
async fn seed(ctx: &Ctx) -> (String, String) {
    let alice = ctx.user("alice").await;
    ctx.project(&alice, "mnist", "private").await;
    let (s, _) = ctx.login("alice", PASSWORD).await;
    assert_eq!(s, StatusCode::OK);
    for _ in 0..2 {
        let (s, _) = ctx.login("alice", "Wrong-password-1").await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }
    let (s, _) = crate::read(
        ctx.req(Method::POST, "/api/v1/auth/login", None)
            .header(header::USER_AGENT, AGENT)
            .json(&json!({"username": "nobody", "password": "Nope-nope-123"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let bob = ctx.user("bob").await;
    let (s, _) = ctx.get("/api/v1/audit/logs", Some(&bob)).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    (alice, bob)
}

async fn page(ctx: &Ctx, query: &str) -> Value {
    let (s, b) = ctx
        .get(&format!("/api/v1/audit/logs?{query}"), Some(&ctx.admin_key))
        .await;
    assert_eq!(s, StatusCode::OK, "{query}: {b}");
    b
}

fn types(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_type"].as_str().unwrap().to_string())
        .collect()
}

fn ids(page: &Value) -> Vec<i64> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect()
}

each_backend!(audit_filters_combine, |ctx| {
    seed(&ctx).await;
    let all = page(&ctx, "limit=1000").await;
    assert!(all["next_cursor"].is_null());
    let all_ids = ids(&all);
    assert!(
        all_ids.windows(2).all(|w| w[0] > w[1]),
        "newest first: {all_ids:?}"
    );

    let failures = page(&ctx, "type=login_failure").await;
    assert_eq!(types(&failures), vec!["login_failure"; 3]);
    let first = &failures["items"][0];
    assert_eq!(first["resource"], "user:nobody");
    assert_eq!(first["category"], "auth");
    assert_eq!(first["severity"], "warning");
    assert_eq!(first["status"], 401);
    assert_eq!(first["ip"], "127.0.0.1");
    assert_eq!(first["user_agent"], AGENT);
    assert_eq!(first["method"], "POST");
    assert_eq!(first["path"], "/api/v1/auth/login");
    assert!(first["metadata"].is_object());
    assert!(first["at"].as_str().unwrap().ends_with('Z'), "{first}");

    // Filters combine with AND.
    let one = page(
        &ctx,
        "category=auth&severity=warning&type=login_failure&resource=user:nobody&status=401",
    )
    .await;
    assert_eq!(ids(&one), vec![first["id"].as_i64().unwrap()]);
    assert_eq!(
        page(&ctx, "category=registry&type=login_failure").await["items"],
        json!([])
    );
    let denied = page(&ctx, "status=403").await;
    assert_eq!(types(&denied), vec!["access_denied"]);
    assert_eq!(denied["items"][0]["username"], "bob");
    assert_eq!(denied["items"][0]["path"], "/api/v1/audit/logs");
    let warnings = page(&ctx, "severity=WARNING").await;
    assert_eq!(warnings["items"].as_array().unwrap().len(), 4);

    // A user's events: what they did and the failed logins to their account.
    let mut alice = types(&page(&ctx, "user=alice").await);
    alice.sort();
    assert_eq!(
        alice,
        [
            "api_key_created",
            "login_failure",
            "login_failure",
            "login_success",
            "login_success",
            "project_create",
            "user_register"
        ]
    );
    let (s, by_path) = ctx
        .get("/api/v1/audit/logs/user/alice", Some(&ctx.admin_key))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(ids(&by_path), ids(&page(&ctx, "user=alice").await));
    let (_, alice_failures) = ctx
        .get(
            "/api/v1/audit/logs/user/alice?type=login_failure",
            Some(&ctx.admin_key),
        )
        .await;
    assert_eq!(types(&alice_failures), vec!["login_failure"; 2]);
    let (_, nobody_home) = ctx
        .get("/api/v1/audit/logs/user/carol", Some(&ctx.admin_key))
        .await;
    assert_eq!(nobody_home["items"], json!([]));
});

each_backend!(audit_pages_and_time_ranges, |ctx| {
    seed(&ctx).await;
    let all = ids(&page(&ctx, "limit=1000").await);
    assert_eq!(all.len(), 12, "{all:?}");

    // Pages of 3 walk the whole log without gaps or repeats.
    let mut walked = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = match &cursor {
            Some(c) => format!("limit=3&cursor={c}"),
            None => "limit=3".to_string(),
        };
        let p = page(&ctx, &q).await;
        assert!(p["items"].as_array().unwrap().len() <= 3);
        walked.extend(ids(&p));
        match p["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(walked, all);
    // Default page size is 100.
    assert_eq!(ids(&page(&ctx, "").await), all);

    // Time ranges: RFC 3339 and relative ages, both ends inclusive.
    let full = page(&ctx, "limit=1000").await;
    let items = full["items"].as_array().unwrap();
    let mid = items.len() / 2;
    let at = items[mid]["at"].as_str().unwrap();
    let enc = |s: &str| s.replace('+', "%2B").replace(':', "%3A");
    assert_eq!(
        ids(&page(&ctx, &format!("since={}&limit=1000", enc(at))).await),
        all[..=mid]
    );
    assert_eq!(
        ids(&page(&ctx, &format!("until={}&limit=1000", enc(at))).await),
        all[mid..]
    );
    assert_eq!(
        ids(&page(&ctx, &format!("since={0}&until={0}", enc(at))).await),
        vec![all[mid]]
    );
    assert_eq!(ids(&page(&ctx, "since=24h&limit=1000").await), all);
    assert_eq!(ids(&page(&ctx, "since=30m&limit=1000").await), all);
    assert_eq!(
        ids(&page(&ctx, "until=2000-01-01T00:00:00Z").await),
        Vec::<i64>::new()
    );
    assert_eq!(
        ids(&page(&ctx, "since=2000-01-01T00:00:00Z&until=1d").await),
        Vec::<i64>::new()
    );

    // An old event shows up only in windows that reach back far enough.
    insert_event(&ctx, 3 * 86_400_000_000, "login_failure", "user:ghost").await;
    assert_eq!(
        ids(&page(&ctx, "since=7d&limit=1000").await).len(),
        all.len() + 1
    );
    assert_eq!(ids(&page(&ctx, "since=2d&limit=1000").await), all);
});

each_backend!(audit_exports_every_event, |ctx| {
    seed(&ctx).await;
    let all = page(&ctx, "limit=1000").await;
    let items = all["items"].as_array().unwrap();

    let resp = ctx
        .req(
            Method::GET,
            "/api/v1/audit/logs?format=jsonl&limit=2",
            Some(&ctx.admin_key),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/x-ndjson");
    let text = resp.text().await.unwrap();
    assert_eq!(
        text.lines().count(),
        2,
        "an explicit limit caps exports: {text}"
    );

    let text = ctx
        .req(
            Method::GET,
            "/api/v1/audit/logs?format=jsonl",
            Some(&ctx.admin_key),
        )
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(&lines, items);

    let resp = ctx
        .req(
            Method::GET,
            "/api/v1/audit/logs?format=csv&type=login_failure",
            Some(&ctx.admin_key),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let csv = resp.text().await.unwrap();
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(
        rows[0],
        "id,at,event_type,category,severity,user_id,username,ip,user_agent,method,path,resource,status,metadata"
    );
    assert_eq!(rows.len(), 4, "{csv}");
    let failures = page(&ctx, "type=login_failure").await;
    let newest = &failures["items"][0];
    assert_eq!(
        rows[1],
        format!(
            "{},{},login_failure,auth,warning,,,127.0.0.1,\"probe \"\"quoted\"\", agent\",POST,/api/v1/auth/login,user:nobody,401,{{}}",
            newest["id"],
            newest["at"].as_str().unwrap()
        )
    );
    let (s, b) = ctx
        .get("/api/v1/audit/logs?format=xml", Some(&ctx.admin_key))
        .await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "invalid_input");
    assert!(
        b["error"]["message"].as_str().unwrap().contains("jsonl"),
        "{b}"
    );
});

each_backend!(audit_exports_span_batches_and_ties, |ctx| {
    // More events than one export batch (1000), all in the same microsecond.
    let at = now_us() - 3_600_000_000;
    wanllmdb_server::on_backend!(ctx.store, write pool => {
        let mut tx = pool.begin().await.unwrap();
        for _ in 0..2100 {
            sqlx::query("INSERT INTO audit_events (at, event_type, category, severity) VALUES ($1, 'bulk', 'admin', 'info')")
                .bind(at)
                .execute(&mut *tx)
                .await
                .unwrap();
        }
        tx.commit().await.unwrap()
    });
    let text = ctx
        .req(
            Method::GET,
            "/api/v1/audit/logs?format=jsonl&type=bulk",
            Some(&ctx.admin_key),
        )
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut exported: Vec<i64> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["id"]
                .as_i64()
                .unwrap()
        })
        .collect();
    assert_eq!(exported.len(), 2100);
    assert!(exported.windows(2).all(|w| w[0] > w[1]), "newest first");
    let csv = ctx
        .req(
            Method::GET,
            "/api/v1/audit/logs?format=csv&type=bulk",
            Some(&ctx.admin_key),
        )
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(csv.lines().count(), 2101);
    let mut paged = Vec::new();
    let mut q = "type=bulk&limit=1000".to_string();
    loop {
        let p = page(&ctx, &q).await;
        paged.extend(ids(&p));
        match p["next_cursor"].as_str() {
            Some(c) => q = format!("type=bulk&limit=1000&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(paged, exported);
    exported.dedup();
    assert_eq!(exported.len(), 2100);
});

each_backend!(audit_failed_logins_and_stats, |ctx| {
    seed(&ctx).await;
    let (s, f) = ctx
        .get(
            "/api/v1/audit/logs/security/failed-logins?hours=24",
            Some(&ctx.admin_key),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{f}");
    let names: Vec<&str> = f
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["nobody", "alice", "alice"]);
    assert_eq!(f[0]["ip"], "127.0.0.1");
    assert_eq!(f[0]["user_agent"], AGENT);
    assert_eq!(f[0]["event_type"], "login_failure");

    let all = page(&ctx, "limit=1000").await;
    let n = all["items"].as_array().unwrap().len() as u64;
    let (s, st) = ctx
        .get("/api/v1/audit/stats/summary", Some(&ctx.admin_key))
        .await;
    assert_eq!(s, StatusCode::OK, "{st}");
    assert_eq!(st["hours"], 24);
    assert_eq!(st["total"], n);
    // alice twice (register + again) and bob once; two wrong passwords and one unknown user.
    assert_eq!(st["login_successes"], 3);
    assert_eq!(st["login_failures"], 3);
    assert_eq!(st["login_rate_limited"], 0);
    assert_eq!(st["failure_rate"], 0.5);
    assert_eq!(st["by_category"]["authorization"], 1);
    assert_eq!(st["by_severity"]["warning"], 4);
    let by_cat: u64 = st["by_category"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(by_cat, n);
    let by_sev: u64 = st["by_severity"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(by_sev, n);

    // Older events fall outside a short window but inside a longer one.
    insert_event(&ctx, 48 * 3_600_000_000, "login_failure", "user:ghost").await;
    let (_, st) = ctx
        .get("/api/v1/audit/stats/summary?hours=24", Some(&ctx.admin_key))
        .await;
    assert_eq!(st["login_failures"], 3);
    let (_, st) = ctx
        .get("/api/v1/audit/stats/summary?hours=72", Some(&ctx.admin_key))
        .await;
    assert_eq!(st["login_failures"], 4);
    assert_eq!(st["total"], n + 1);
    assert_eq!(st["failure_rate"], 4.0 / 7.0);
    let (_, f) = ctx
        .get(
            "/api/v1/audit/logs/security/failed-logins?hours=72",
            Some(&ctx.admin_key),
        )
        .await;
    assert_eq!(f.as_array().unwrap().len(), 4);
    assert_eq!(f[3]["username"], "ghost");
    let (_, f) = ctx
        .get(
            "/api/v1/audit/logs/security/failed-logins?hours=72&limit=1",
            Some(&ctx.admin_key),
        )
        .await;
    assert_eq!(f.as_array().unwrap().len(), 1);
});

each_backend!(audit_stats_without_logins, |ctx| {
    let (s, st) = ctx
        .get("/api/v1/audit/stats/summary?hours=1", Some(&ctx.admin_key))
        .await;
    assert_eq!(s, StatusCode::OK, "{st}");
    assert_eq!(st["login_successes"], 0);
    assert_eq!(st["login_failures"], 0);
    assert_eq!(st["failure_rate"], 0.0);
});

each_backend!(audit_is_for_server_admins_only, |ctx| {
    let (alice, bob) = seed(&ctx).await;
    // bob administers alice's project; that does not open the audit log.
    let (s, b) = ctx
        .post(
            "/api/v1/projects/mnist/members",
            Some(&alice),
            json!({"username": "bob", "role": "admin"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let paths = [
        "/api/v1/audit/logs",
        "/api/v1/audit/logs?format=csv",
        "/api/v1/audit/logs/user/alice",
        "/api/v1/audit/logs/security/failed-logins",
        "/api/v1/audit/stats/summary",
    ];
    for path in paths {
        for key in [&alice, &bob] {
            let (s, b) = ctx.get(path, Some(key)).await;
            assert_error(s, &b, StatusCode::FORBIDDEN, "forbidden");
            assert!(
                b["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("server administrators"),
                "{b}"
            );
        }
        let (s, b) = ctx.get(path, None).await;
        assert_error(s, &b, StatusCode::UNAUTHORIZED, "unauthenticated");
        let (s, _) = ctx.get(path, Some(&ctx.admin_key)).await;
        assert_eq!(s, StatusCode::OK, "{path}");
    }
});

each_backend!(audit_rejects_bad_input, |ctx| {
    let cases = [
        ("/api/v1/audit/logs?severity=loud", "severity"),
        ("/api/v1/audit/logs?since=yesterday", "since"),
        ("/api/v1/audit/logs?until=5x", "until"),
        ("/api/v1/audit/logs?limit=0", "limit"),
        ("/api/v1/audit/logs?limit=1001", "limit"),
        ("/api/v1/audit/logs?limit=ten", "limit"),
        ("/api/v1/audit/logs?status=ok", "status"),
        ("/api/v1/audit/logs?format=pdf", "format"),
        ("/api/v1/audit/logs?cursor=%21%21", "cursor"),
        ("/api/v1/audit/logs?colour=red", "colour"),
        ("/api/v1/audit/logs/user/alice?severity=loud", "severity"),
        ("/api/v1/audit/logs/security/failed-logins?hours=0", "hours"),
        (
            "/api/v1/audit/logs/security/failed-logins?hours=-1",
            "hours",
        ),
        (
            "/api/v1/audit/logs/security/failed-logins?limit=5000",
            "limit",
        ),
        ("/api/v1/audit/stats/summary?hours=abc", "hours"),
    ];
    for (path, word) in cases {
        let (s, b) = ctx.get(path, Some(&ctx.admin_key)).await;
        assert_error(s, &b, StatusCode::BAD_REQUEST, "invalid_input");
        let msg = b["error"]["message"].as_str().unwrap();
        assert!(msg.contains(word), "{path}: {msg}");
    }
});

each_backend!(audit_retention_prunes_old_events, |ctx| {
    use wanllmdb_server::audit::query::prune;
    let day = 86_400_000_000;
    insert_event(&ctx, 400 * day, "login_failure", "user:ancient").await;
    insert_event(&ctx, 10 * day, "login_failure", "user:recent").await;
    let count =
        |r: &'static str| ctx.count("SELECT COUNT(*) FROM audit_events WHERE resource = $1", r);
    assert_eq!(prune(&ctx.store, 0).await.unwrap(), 0, "0 keeps everything");
    assert_eq!(count("user:ancient").await, 1);
    assert_eq!(prune(&ctx.store, 365).await.unwrap(), 1);
    assert_eq!(count("user:ancient").await, 0);
    assert_eq!(count("user:recent").await, 1);
    assert_eq!(prune(&ctx.store, 7).await.unwrap(), 1);
    assert_eq!(count("user:recent").await, 0);
});

/// The reaper prunes with the configured retention when the server starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_retention_runs_in_the_reaper() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let store = wanllmdb_server::Store::open(&url).await.unwrap();
    let day: i64 = 86_400_000_000;
    let now = now_us();
    for (age, resource) in [(40 * day, "user:old"), (day, "user:new")] {
        wanllmdb_server::on_backend!(store, write pool => {
            sqlx::query("INSERT INTO audit_events (at, event_type, category, severity, resource) VALUES ($1, 'login_failure', 'auth', 'warning', $2)")
                .bind(now - age)
                .bind(resource)
                .execute(pool)
                .await
                .unwrap();
        });
    }
    let mut cfg = crate::test_config(dir.path());
    cfg.audit_retention_days = 30;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = wanllmdb_server::start_with_store(cfg, store.clone(), listener)
        .await
        .unwrap();
    let count = |r: &'static str| {
        let store = store.clone();
        async move {
            wanllmdb_server::on_backend!(store, read pool => {
                sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM audit_events WHERE resource = $1")
                    .bind(r)
                    .fetch_one(pool)
                    .await
                    .unwrap()
            })
        }
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while count("user:old").await > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "old audit event was never pruned"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(count("user:new").await, 1);
    server.shutdown().await.unwrap();
}

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
}

/// Writes an event `age_us` in the past straight into the database.
async fn insert_event(ctx: &Ctx, age_us: i64, event_type: &str, resource: &str) {
    wanllmdb_server::on_backend!(ctx.store, write pool => {
        sqlx::query("INSERT INTO audit_events (at, event_type, category, severity, ip, resource, status) VALUES ($1, $2, 'auth', 'warning', '10.0.0.9', $3, 401)")
            .bind(now_us() - age_us)
            .bind(event_type)
            .bind(resource)
            .execute(pool)
            .await
            .unwrap();
    });
}
