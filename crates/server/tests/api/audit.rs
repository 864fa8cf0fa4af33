//! The audit log's query side: the published fields, filters under their new and old names,
//! pages, exports, failed logins with their reason, statistics, who may read it, bad input,
//! retention, the OpenAPI description, and the migration of events stored before the names
//! were published.

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};

use crate::{Backend, Ctx, PASSWORD, assert_error, backends, each_backend};

const AGENT: &str = "probe \"quoted\", agent";

/// Twelve known events: alice and bob register and log in (auth.register, auth.login.success,
/// api_key.create each), alice creates a project (project.create) and logs in once more, two
/// wrong passwords for alice and one unknown user (with a User-Agent that needs CSV quoting),
/// and bob is refused the audit log (authz.access_denied).
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

fn field(page: &Value, name: &str) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e[name].as_str().unwrap().to_string())
        .collect()
}

fn types(page: &Value) -> Vec<String> {
    field(page, "event_type")
}

fn ids(page: &Value) -> Vec<i64> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect()
}

/// The ids a query returns.
async fn ids_of(ctx: &Ctx, query: &str) -> Vec<i64> {
    ids(&page(ctx, &format!("{query}&limit=1000")).await)
}

/// The failed-login list of a query such as `hours=24`.
async fn failed_logins(ctx: &Ctx, query: &str) -> Vec<Value> {
    let path = format!("/api/v1/audit/logs/security/failed-logins?{query}");
    let (s, f) = ctx.get(&path, Some(&ctx.admin_key)).await;
    assert_eq!(s, StatusCode::OK, "{path}: {f}");
    f.as_array().unwrap().clone()
}

/// One string field of each event.
fn strings<'a>(events: &'a [Value], pointer: &str) -> Vec<&'a str> {
    events
        .iter()
        .map(|e| e.pointer(pointer).and_then(Value::as_str).unwrap())
        .collect()
}

/// The user id behind a key.
async fn user_id(ctx: &Ctx, key: &str) -> i64 {
    let (_, me) = ctx.get("/api/v1/auth/me", Some(key)).await;
    me["id"].as_i64().unwrap()
}

each_backend!(events_carry_the_published_fields, |ctx| {
    seed(&ctx).await;
    let failures = page(&ctx, "event_type=auth.login.failed").await;
    assert_eq!(types(&failures), vec!["auth.login.failed"; 3]);
    let e = &failures["items"][0];
    assert_eq!(e["event_category"], "authentication");
    assert_eq!(e["severity"], "medium");
    assert_eq!(e["username"], "nobody", "the name that was tried: {e}");
    assert!(e["user_id"].is_null());
    assert_eq!(e["ip_address"], "127.0.0.1");
    assert_eq!(e["user_agent"], AGENT);
    assert_eq!(e["request_method"], "POST");
    assert_eq!(e["request_path"], "/api/v1/auth/login");
    assert_eq!(e["resource_type"], "user");
    assert_eq!(e["resource_id"], "nobody");
    assert_eq!(
        e["metadata"],
        json!({"reason": "unknown_user", "attempts": 1})
    );
    assert_eq!(e["status"], "failure");
    assert_eq!(e["http_status"], 401);
    assert_eq!(e["action"], "login_failure");
    assert_eq!(
        e["description"],
        "Failed login as 'nobody': no such user (failure 1 of this account in the current window)"
    );
    let created = e["created_at"].as_str().unwrap();
    assert!(created.ends_with('Z'), "{e}");
    // The old names stay beside the new ones, for one release.
    assert_eq!(e["at"], created);
    assert_eq!(e["category"], "authentication");
    assert_eq!(e["ip"], "127.0.0.1");
    assert_eq!(e["method"], "POST");
    assert_eq!(e["path"], "/api/v1/auth/login");
    assert_eq!(e["resource"], "user:nobody");

    let ok = &page(&ctx, "event_type=auth.login.success&username=alice").await["items"][0];
    assert_eq!(ok["description"], "User 'alice' logged in successfully");
    assert_eq!(
        (ok["status"].as_str(), ok["severity"].as_str()),
        (Some("success"), Some("info"))
    );
    let project = &page(&ctx, "event_type=project.create").await["items"][0];
    assert_eq!(
        project["description"],
        "User 'alice' created project 'mnist'"
    );
    assert_eq!(project["event_category"], "data_modification");
    assert_eq!(project["severity"], "low");
    assert_eq!(
        (
            project["resource_type"].as_str(),
            project["resource_id"].as_str()
        ),
        (Some("project"), Some("mnist"))
    );
    let denied = &page(&ctx, "event_type=authz.access_denied").await["items"][0];
    assert_eq!(denied["event_category"], "authorization");
    assert_eq!(denied["username"], "bob");
    assert_eq!(
        (denied["status"].as_str(), denied["http_status"].as_i64()),
        (Some("failure"), Some(403))
    );
    assert_eq!(
        denied["description"],
        "User 'bob' was refused GET /api/v1/audit/logs"
    );
});

each_backend!(audit_filters_combine, |ctx| {
    let (alice, _) = seed(&ctx).await;
    let all = page(&ctx, "limit=1000").await;
    assert!(all["next_cursor"].is_null());
    let all_ids = ids(&all);
    assert_eq!(all_ids.len(), 12, "{all}");
    assert!(
        all_ids.windows(2).all(|w| w[0] > w[1]),
        "newest first: {all_ids:?}"
    );

    let count = |q: &'static str| {
        let ctx = &ctx;
        async move { ids_of(ctx, q).await.len() }
    };
    assert_eq!(count("event_category=authentication").await, 10);
    assert_eq!(count("event_category=authorization").await, 1);
    assert_eq!(count("event_category=data_modification").await, 1);
    assert_eq!(count("event_category=data_access,security").await, 0);
    assert_eq!(count("severity=info").await, 3);
    assert_eq!(count("severity=low").await, 5);
    assert_eq!(count("severity=medium").await, 4);
    assert_eq!(count("severity=high,critical").await, 0);
    assert_eq!(count("status=success").await, 8);
    assert_eq!(count("status=failure").await, 4);
    assert_eq!(count("status=error").await, 0);
    assert_eq!(count("http_status=401").await, 3);
    assert_eq!(count("hours=1").await, 12);
    assert_eq!(
        count("event_type=auth.login.success,auth.login.failed").await,
        6
    );

    // Filters combine with AND.
    let one = page(
        &ctx,
        "event_category=authentication&severity=medium&event_type=auth.login.failed&resource_type=user&resource_id=nobody&status=failure",
    )
    .await;
    assert_eq!(field(&one, "username"), ["nobody"]);
    assert_eq!(
        count("event_category=authorization&event_type=auth.login.failed").await,
        0
    );
    let mnist = page(&ctx, "resource_type=project&resource_id=mnist").await;
    assert_eq!(types(&mnist), ["project.create"]);

    // A user's events: what they did, and with `username` the failed logins to their account.
    let mut by_name = types(&page(&ctx, "username=alice").await);
    by_name.sort();
    assert_eq!(
        by_name,
        [
            "api_key.create",
            "auth.login.failed",
            "auth.login.failed",
            "auth.login.success",
            "auth.login.success",
            "auth.register",
            "project.create"
        ]
    );
    let alice_id = user_id(&ctx, &alice).await;
    let by_id = page(&ctx, &format!("user_id={alice_id}")).await;
    assert_eq!(by_id["items"].as_array().unwrap().len(), 5, "{by_id}");
    assert!(
        by_id["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["user_id"] == alice_id)
    );
});

each_backend!(old_parameter_names_and_values_keep_filtering, |ctx| {
    seed(&ctx).await;
    let same = [
        ("category=auth", "event_category=authentication"),
        ("category=authorization", "event_category=authorization"),
        ("type=login_failure", "event_type=auth.login.failed"),
        ("event_type=login_failure", "event_type=auth.login.failed"),
        ("severity=warning", "severity=medium,high"),
        ("severity=WARNING", "severity=medium"),
        ("user=alice", "username=alice"),
        (
            "resource=user:nobody",
            "resource_type=user&resource_id=nobody",
        ),
        ("status=401", "http_status=401"),
        ("status=403", "event_type=authz.access_denied"),
        ("since=1h", "hours=1"),
        ("since=24h&until=1d", "start_date=24h&end_date=1d"),
    ];
    for (old, new) in same {
        let (a, b) = (ids_of(&ctx, old).await, ids_of(&ctx, new).await);
        assert_eq!(a, b, "{old} vs {new}");
        assert!(
            !a.is_empty() || old.contains("until"),
            "{old} found nothing"
        );
    }
    // The old and new name of one filter are both applied.
    assert_eq!(
        ids_of(&ctx, "type=login_failure&event_type=auth.login.success").await,
        Vec::<i64>::new()
    );
    // The old categories of registry, sweeps and administration events map onto the new five.
    let failed = ids_of(&ctx, "event_category=authentication").await;
    assert_eq!(
        ids_of(&ctx, "category=admin").await,
        ids_of(&ctx, "event_category=security").await
    );
    assert_eq!(
        ids_of(&ctx, "category=registry").await,
        ids_of(&ctx, "event_category=data_modification").await
    );
    assert_eq!(failed.len(), 10);
});

/// `YYYY-MM-DD` of a time in µs (UTC).
fn day_of(us: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(us / 1_000_000)
        .unwrap()
        .date()
        .to_string()
}

each_backend!(dates_cover_their_whole_day, |ctx| {
    // Two days ago (recent enough for the retention limit), as a date and its neighbours.
    let day = 86_400_000_000;
    let start = (now_us() / day - 2) * day;
    let (d, next, month_ago) = (day_of(start), day_of(start + day), day_of(start - 30 * day));
    insert_at(&ctx, start - 1, "mallory").await; // the last microsecond of the day before
    insert_at(&ctx, start, "eve").await;
    insert_at(&ctx, start + day - 1, "trudy").await; // the last microsecond of the day
    insert_at(&ctx, start + day, "oscar").await; // the next day
    let names = |q: String| {
        let ctx = &ctx;
        async move { field(&page(ctx, &format!("{q}&limit=1000")).await, "username") }
    };
    assert_eq!(
        names(format!("start_date={d}&end_date={d}")).await,
        ["trudy", "eve"]
    );
    assert_eq!(
        names(format!("end_date={d}")).await,
        ["trudy", "eve", "mallory"]
    );
    assert_eq!(names(format!("start_date={next}")).await, ["oscar"]);
    assert_eq!(
        names(format!(
            "start_date={d}T00:00:00Z&end_date={d}T12:00:00%2B01:00"
        ))
        .await,
        ["eve"]
    );
    assert_eq!(
        names(format!("since={d}&until={d}")).await,
        ["trudy", "eve"]
    );
    // The description's own example, over the month up to that day.
    assert_eq!(
        names(format!(
            "event_category=authentication&severity=medium&start_date={month_ago}&end_date={d}"
        ))
        .await,
        ["trudy", "eve", "mallory"]
    );
    assert_eq!(
        names(format!(
            "event_category=data_modification&severity=high&start_date={month_ago}&end_date={d}"
        ))
        .await,
        Vec::<String>::new()
    );
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
    let at = items[mid]["created_at"].as_str().unwrap();
    let enc = |s: &str| s.replace('+', "%2B").replace(':', "%3A");
    assert_eq!(
        ids_of(&ctx, &format!("start_date={}", enc(at))).await,
        all[..=mid]
    );
    assert_eq!(
        ids_of(&ctx, &format!("end_date={}", enc(at))).await,
        all[mid..]
    );
    assert_eq!(
        ids_of(&ctx, &format!("start_date={0}&end_date={0}", enc(at))).await,
        vec![all[mid]]
    );
    assert_eq!(ids_of(&ctx, "start_date=24h").await, all);
    assert_eq!(ids_of(&ctx, "since=30m").await, all);
    assert_eq!(ids_of(&ctx, "end_date=2000-01-01").await, Vec::<i64>::new());
    assert_eq!(
        ids_of(&ctx, "since=2000-01-01T00:00:00Z&until=1d").await,
        Vec::<i64>::new()
    );

    // An old event shows up only in windows that reach back far enough.
    insert_event(&ctx, 3 * 86_400_000_000, "ghost").await;
    assert_eq!(ids_of(&ctx, "since=7d").await.len(), all.len() + 1);
    assert_eq!(ids_of(&ctx, "hours=168").await.len(), all.len() + 1);
    assert_eq!(ids_of(&ctx, "since=2d").await, all);
    assert_eq!(ids_of(&ctx, "hours=48").await, all);
});

each_backend!(audit_exports_every_event, |ctx| {
    seed(&ctx).await;
    let all = page(&ctx, "limit=1000").await;
    let items = all["items"].as_array().unwrap();
    let export = |q: &'static str| {
        ctx.req(
            Method::GET,
            &format!("/api/v1/audit/logs?{q}"),
            Some(&ctx.admin_key),
        )
        .send()
    };

    let resp = export("format=jsonl&limit=2").await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/x-ndjson");
    let text = resp.text().await.unwrap();
    assert_eq!(
        text.lines().count(),
        2,
        "an explicit limit caps exports: {text}"
    );

    let text = export("format=jsonl").await.unwrap().text().await.unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(&lines, items);

    let resp = export("format=csv&event_type=auth.login.failed")
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
        "id,created_at,event_type,event_category,severity,status,http_status,user_id,username,ip_address,user_agent,request_method,request_path,resource_type,resource_id,description,metadata,action"
    );
    assert_eq!(rows.len(), 4, "{csv}");
    let newest = &page(&ctx, "event_type=auth.login.failed").await["items"][0];
    assert_eq!(
        rows[1],
        format!(
            "{},{},auth.login.failed,authentication,medium,failure,401,,nobody,127.0.0.1,\"probe \"\"quoted\"\", agent\",POST,/api/v1/auth/login,user,nobody,Failed login as 'nobody': no such user (failure 1 of this account in the current window),\"{{\"\"attempts\"\":1,\"\"reason\"\":\"\"unknown_user\"\"}}\",login_failure",
            newest["id"],
            newest["created_at"].as_str().unwrap()
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
    wanllmdb_server::on_backend!(ctx.store, write, |pool| {
        let mut tx = pool.begin().await.unwrap();
        for _ in 0..2100 {
            sqlx::query("INSERT INTO audit_events (at, event_type, category, severity, action) VALUES ($1, 'bulk.load', 'data_modification', 'low', 'bulk_load')")
                .bind(at)
                .execute(&mut *tx)
                .await
                .unwrap();
        }
        tx.commit().await.unwrap()
    });
    let export = |q: &'static str| {
        let ctx = &ctx;
        async move {
            ctx.req(
                Method::GET,
                &format!("/api/v1/audit/logs?{q}"),
                Some(&ctx.admin_key),
            )
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
        }
    };
    let text = export("format=jsonl&event_type=bulk.load").await;
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
    assert_eq!(
        export("format=csv&type=bulk_load").await.lines().count(),
        2101
    );
    let mut paged = Vec::new();
    let mut q = "event_type=bulk.load&limit=1000".to_string();
    loop {
        let p = page(&ctx, &q).await;
        paged.extend(ids(&p));
        match p["next_cursor"].as_str() {
            Some(c) => q = format!("event_type=bulk.load&limit=1000&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(paged, exported);
    exported.dedup();
    assert_eq!(exported.len(), 2100);
});

/// The newest failed login's metadata and the number of events now.
async fn last_failure(ctx: &Ctx) -> Value {
    page(ctx, "event_type=auth.login.failed&limit=1").await["items"][0].clone()
}

each_backend!(failed_logins_say_why_and_how_often, |ctx| {
    // A disabled account with the right password: one event, no separate access_denied.
    ctx.user("dave").await;
    let (s, b) = ctx
        .post(
            "/api/v1/admin/users/dave/disable",
            Some(&ctx.admin_key),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let before = ids_of(&ctx, "hours=1").await.len();
    let (s, _) = ctx.login("dave", PASSWORD).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(ids_of(&ctx, "hours=1").await.len(), before + 1);
    let e = last_failure(&ctx).await;
    assert_eq!(
        e["metadata"],
        json!({"reason": "account_disabled", "attempts": 1})
    );
    assert_eq!(
        (e["http_status"].as_i64(), e["username"].as_str()),
        (Some(403), Some("dave"))
    );
    assert_eq!(e["severity"], "medium");

    // Wrong passwords count up within the window; an unknown user counts on its own.
    ctx.user("carol").await;
    for n in 1..=4 {
        let (s, _) = ctx.login("carol", "Wrong-password-1").await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        let e = last_failure(&ctx).await;
        assert_eq!(
            e["metadata"],
            json!({"reason": "invalid_password", "attempts": n})
        );
        assert_eq!(e["username"], "carol");
    }
    let (s, _) = ctx.login("ghost", "Wrong-password-1").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(
        last_failure(&ctx).await["metadata"],
        json!({"reason": "unknown_user", "attempts": 1})
    );
    // Five failures from this address: the next try is refused unchecked, and says so.
    let (s, _) = ctx.login("carol", PASSWORD).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    let e = last_failure(&ctx).await;
    assert_eq!(
        e["metadata"],
        json!({"reason": "rate_limited", "attempts": 5})
    );
    assert_eq!(
        (e["severity"].as_str(), e["http_status"].as_i64()),
        (Some("high"), Some(429))
    );
    assert_eq!(e["action"], "login_rate_limited");

    let f = failed_logins(&ctx, "hours=24").await;
    assert_eq!(
        strings(&f, "/metadata/reason"),
        [
            "rate_limited",
            "unknown_user",
            "invalid_password",
            "invalid_password",
            "invalid_password",
            "invalid_password",
            "account_disabled"
        ]
    );
    assert!(
        strings(&f, "/event_type")
            .iter()
            .all(|t| *t == "auth.login.failed")
    );
    assert_eq!(f[0]["username"], "carol");
    assert_eq!(f[0]["ip_address"], "127.0.0.1");
    assert_eq!(f[0]["ip"], "127.0.0.1");
});

each_backend!(failed_logins_and_stats_windows, |ctx| {
    seed(&ctx).await;
    let f = failed_logins(&ctx, "hours=24").await;
    assert_eq!(strings(&f, "/username"), ["nobody", "alice", "alice"]);
    assert_eq!(f[0]["user_agent"], AGENT);

    let (s, st) = ctx
        .get("/api/v1/audit/stats/summary", Some(&ctx.admin_key))
        .await;
    assert_eq!(s, StatusCode::OK, "{st}");
    assert_eq!(st["hours"], 24);
    assert_eq!(st["total_events"], 12);
    assert_eq!(
        st["by_category"],
        json!({"authentication": 10, "authorization": 1, "data_modification": 1, "data_access": 0, "security": 0})
    );
    assert_eq!(
        st["by_severity"],
        json!({"critical": 0, "high": 0, "medium": 4, "low": 5, "info": 3})
    );
    assert_eq!(
        st["by_status"],
        json!({"success": 8, "failure": 4, "error": 0})
    );
    assert_eq!(st["by_event_type"]["auth.login.failed"], 3);
    // alice twice (register + again) and bob once; two wrong passwords and one unknown user.
    assert_eq!(
        st["authentication"],
        json!({"successful_logins": 3, "failed_logins": 3, "failure_rate": 0.5, "rate_limited_logins": 0,
            "failures_by_reason": {"invalid_password": 2, "unknown_user": 1}})
    );
    // Today's fields stay.
    assert_eq!(st["total"], 12);
    assert_eq!(st["login_successes"], 3);
    assert_eq!(st["login_failures"], 3);
    assert_eq!(st["login_rate_limited"], 0);
    assert_eq!(st["failure_rate"], 0.5);

    // Older events fall outside a short window but inside a longer one.
    insert_event(&ctx, 48 * 3_600_000_000, "ghost").await;
    let (_, st) = ctx
        .get("/api/v1/audit/stats/summary?hours=24", Some(&ctx.admin_key))
        .await;
    assert_eq!(st["authentication"]["failed_logins"], 3);
    let (_, st) = ctx
        .get("/api/v1/audit/stats/summary?hours=72", Some(&ctx.admin_key))
        .await;
    assert_eq!(st["authentication"]["failed_logins"], 4);
    assert_eq!(st["authentication"]["failures_by_reason"]["unknown"], 1);
    assert_eq!(st["total_events"], 13);
    assert_eq!(st["authentication"]["failure_rate"], 4.0 / 7.0);
    let f = failed_logins(&ctx, "hours=72").await;
    assert_eq!(f.len(), 4);
    assert_eq!(f[3]["username"], "ghost");
    assert_eq!(failed_logins(&ctx, "hours=72&limit=1").await.len(), 1);
});

each_backend!(audit_stats_without_logins, |ctx| {
    let (s, st) = ctx
        .get("/api/v1/audit/stats/summary?hours=1", Some(&ctx.admin_key))
        .await;
    assert_eq!(s, StatusCode::OK, "{st}");
    assert_eq!(st["authentication"]["successful_logins"], 0);
    assert_eq!(st["authentication"]["failed_logins"], 0);
    assert_eq!(st["authentication"]["failure_rate"], 0.0);
    assert_eq!(st["by_severity"]["critical"], 0);
});

each_backend!(a_user_path_takes_an_id_or_a_name, |ctx| {
    let (alice, _) = seed(&ctx).await;
    let alice_id = user_id(&ctx, &alice).await;
    let user = |u: String| {
        let ctx = &ctx;
        async move {
            let (s, b) = ctx
                .get(
                    &format!("/api/v1/audit/logs/user/{u}"),
                    Some(&ctx.admin_key),
                )
                .await;
            assert_eq!(s, StatusCode::OK, "{u}: {b}");
            b
        }
    };
    let by_name = user("alice".into()).await;
    // What alice did, and the failed logins to her account.
    assert_eq!(by_name["items"].as_array().unwrap().len(), 7, "{by_name}");
    assert_eq!(ids(&user(alice_id.to_string()).await), ids(&by_name));
    assert_eq!(ids(&by_name), ids_of(&ctx, "username=alice").await);
    let failures = ctx
        .get(
            "/api/v1/audit/logs/user/alice?event_type=auth.login.failed",
            Some(&ctx.admin_key),
        )
        .await
        .1;
    assert_eq!(types(&failures), vec!["auth.login.failed"; 2]);

    // A number that is no user's id is a username, here one made of digits.
    let digits = ctx.user("4242").await;
    let digits_id = user_id(&ctx, &digits).await;
    assert_ne!(digits_id, 4242);
    let by_digits = user("4242".into()).await;
    assert!(!by_digits["items"].as_array().unwrap().is_empty());
    assert!(
        by_digits["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["username"] == "4242")
    );
    // Failed logins of a name that has no account.
    assert_eq!(
        field(&user("nobody".into()).await, "event_type"),
        ["auth.login.failed"]
    );
    assert_eq!(user("carol".into()).await["items"], json!([]));
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
        ("/api/v1/audit/logs?event_category=misc", "event_category"),
        ("/api/v1/audit/logs?category=misc", "category"),
        ("/api/v1/audit/logs?status=maybe", "status"),
        ("/api/v1/audit/logs?http_status=ok", "http_status"),
        ("/api/v1/audit/logs?user_id=alice", "user_id"),
        ("/api/v1/audit/logs?start_date=yesterday", "start_date"),
        ("/api/v1/audit/logs?end_date=2025-02-30", "end_date"),
        ("/api/v1/audit/logs?since=yesterday", "since"),
        ("/api/v1/audit/logs?until=5x", "until"),
        ("/api/v1/audit/logs?hours=0", "hours"),
        ("/api/v1/audit/logs?limit=0", "limit"),
        ("/api/v1/audit/logs?limit=1001", "limit"),
        ("/api/v1/audit/logs?limit=ten", "limit"),
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
        ("/api/v1/audit/stats/summary?limit=5", "limit"),
    ];
    for (path, word) in cases {
        let (s, b) = ctx.get(path, Some(&ctx.admin_key)).await;
        assert_error(s, &b, StatusCode::BAD_REQUEST, "invalid_input");
        let msg = b["error"]["message"].as_str().unwrap();
        assert!(msg.contains(word), "{path}: {msg}");
    }
});

/// A value each documented parameter accepts.
fn sample(param: &str) -> &'static str {
    match param {
        "event_category" | "category" => "authentication",
        "event_type" | "type" => "auth.login.failed",
        "severity" => "medium",
        "status" => "failure",
        "http_status" | "user_id" => "401",
        "start_date" | "since" => "2025-01-01",
        "end_date" | "until" => "2999-12-31",
        "hours" | "limit" => "5",
        "format" => "jsonl",
        "cursor" => "MTAwOjE",
        "user" => "alice",
        _ => "x",
    }
}

each_backend!(audit_operations_are_described_as_they_behave, |ctx| {
    let (s, doc) = ctx.get("/api/v1/openapi.json", None).await;
    assert_eq!(s, StatusCode::OK);
    let paths = [
        "/api/v1/audit/logs",
        "/api/v1/audit/logs/user/{user}",
        "/api/v1/audit/logs/security/failed-logins",
        "/api/v1/audit/stats/summary",
    ];
    for path in paths {
        let op = &doc["paths"][path]["get"];
        assert!(op.is_object(), "{path} missing");
        assert_eq!(op["security"], json!([{"bearer": []}]), "{path}");
        for code in ["200", "400", "401", "403"] {
            assert!(op["responses"][code].is_object(), "{path} lacks {code}");
        }
        // Every parameter listed is accepted, one at a time.
        for p in op["parameters"].as_array().unwrap() {
            let name = p["name"].as_str().unwrap();
            if p["in"] == "path" {
                continue;
            }
            let url = format!(
                "{}?{name}={}",
                path.replace("{user}", "alice"),
                sample(name)
            );
            let (s, b) = ctx.get(&url, Some(&ctx.admin_key)).await;
            assert_eq!(s, StatusCode::OK, "{url}: {b}");
        }
    }
    let stats = &doc["paths"]["/api/v1/audit/stats/summary"]["get"]["parameters"];
    assert_eq!(
        stats.as_array().unwrap().len(),
        1,
        "the summary takes only hours: {stats}"
    );
    let logs: BTreeSet<&str> = doc["paths"]["/api/v1/audit/logs"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for p in [
        "event_category",
        "event_type",
        "severity",
        "start_date",
        "end_date",
        "user_id",
        "username",
        "resource_type",
        "resource_id",
        "status",
        "hours",
    ] {
        assert!(logs.contains(p), "{p} is not documented: {logs:?}");
    }
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_retention_prunes_old_events() {
    use wanllmdb_server::audit::query::prune;
    let day = 86_400_000_000;
    for backend in backends() {
        // The server's own pruning kept out of the way (0 keeps everything).
        let ctx = Ctx::start_with(backend, |cfg| cfg.audit_retention_days = 0).await;
        insert_event(&ctx, 400 * day, "ancient").await;
        insert_event(&ctx, 10 * day, "recent").await;
        let count =
            |r: &'static str| ctx.count("SELECT COUNT(*) FROM audit_events WHERE username = $1", r);
        assert_eq!(prune(&ctx.store, 0).await.unwrap(), 0, "0 keeps everything");
        assert_eq!(count("ancient").await, 1);
        assert_eq!(prune(&ctx.store, 365).await.unwrap(), 1);
        assert_eq!(count("ancient").await, 0);
        assert_eq!(count("recent").await, 1);
        assert_eq!(prune(&ctx.store, 7).await.unwrap(), 1);
        assert_eq!(count("recent").await, 0);
        ctx.stop().await;
    }
}

/// The reaper prunes with the configured retention when the server starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_retention_runs_in_the_reaper() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let store = wanllmdb_server::Store::open(&url).await.unwrap();
    let day: i64 = 86_400_000_000;
    let now = now_us();
    for (age, resource) in [(40 * day, "user:old"), (day, "user:new")] {
        wanllmdb_server::on_backend!(store, write, |pool| {
            sqlx::query("INSERT INTO audit_events (at, event_type, category, severity, action, resource) VALUES ($1, 'auth.login.failed', 'authentication', 'medium', 'login_failure', $2)")
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
            wanllmdb_server::on_backend!(store, read, |pool| {
                sqlx::query_scalar::<_, i64>(
                    "SELECT COUNT(*) FROM audit_events WHERE resource = $1",
                )
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

/// Writes a failed login of `name` `age_us` in the past straight into the database.
async fn insert_event(ctx: &Ctx, age_us: i64, name: &str) {
    insert_at(ctx, now_us() - age_us, name).await;
}

/// Writes a failed login of `name` at `at_us` straight into the database.
async fn insert_at(ctx: &Ctx, at_us: i64, name: &str) {
    wanllmdb_server::on_backend!(ctx.store, write, |pool| {
        sqlx::query("INSERT INTO audit_events (at, event_type, category, severity, action, username, ip, resource, resource_type, resource_id, http_status, status)
                     VALUES ($1, 'auth.login.failed', 'authentication', 'medium', 'login_failure', $2, '10.0.0.9', $3, 'user', $2, 401, 'failure')")
            .bind(at_us)
            .bind(name)
            .bind(format!("user:{name}"))
            .execute(pool)
            .await
            .unwrap();
    });
}

/// An event as the server stored it before migration 0007: event_type, category, severity,
/// user_id, username, resource, status (HTTP), metadata.
type OldRow = (
    &'static str,
    &'static str,
    &'static str,
    Option<i64>,
    Option<&'static str>,
    Option<&'static str>,
    i64,
    &'static str,
);

/// What an old row reads as afterwards: action, event_type, event_category, severity,
/// resource_type, resource_id, status.
type MigratedRow = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
    &'static str,
);

/// Events as stored before migration 0007.
const OLD_ROWS: &[OldRow] = &[
    (
        "login_failure",
        "auth",
        "warning",
        None,
        None,
        Some("user:mallory"),
        401,
        "{}",
    ),
    (
        "login_rate_limited",
        "auth",
        "warning",
        None,
        None,
        Some("user:mallory"),
        429,
        "{}",
    ),
    (
        "refresh_token_reuse",
        "auth",
        "critical",
        Some(1),
        None,
        None,
        401,
        "{}",
    ),
    (
        "api_key_revoked",
        "admin",
        "info",
        Some(1),
        Some("admin"),
        Some("api_key:5"),
        204,
        "{\"owner\": \"bob\"}",
    ),
    (
        "api_key_revoked",
        "auth",
        "info",
        Some(1),
        Some("admin"),
        Some("api_key:6"),
        204,
        "{}",
    ),
    (
        "project_update",
        "data_modification",
        "warning",
        Some(1),
        Some("admin"),
        Some("project:mnist"),
        200,
        "{}",
    ),
    (
        "project_update",
        "data_modification",
        "info",
        Some(1),
        Some("admin"),
        Some("project:cifar"),
        200,
        "{}",
    ),
    (
        "model_transition",
        "registry",
        "info",
        Some(1),
        Some("admin"),
        Some("model:clf:v2"),
        200,
        "{\"from\": \"Staging\", \"to\": \"Production\"}",
    ),
    (
        "run_file_download",
        "data_access",
        "info",
        Some(1),
        Some("admin"),
        Some("run:ab12cd34/model.bin"),
        200,
        "{}",
    ),
    (
        "user_promoted",
        "admin",
        "warning",
        Some(1),
        Some("admin"),
        Some("user:dora"),
        200,
        "{}",
    ),
    (
        "access_denied",
        "authorization",
        "warning",
        None,
        None,
        None,
        403,
        "{}",
    ),
    (
        "sweep_state_change",
        "sweeps",
        "info",
        Some(1),
        Some("admin"),
        Some("sweep:sw1"),
        200,
        "{}",
    ),
    (
        "widget_polish",
        "registry",
        "warning",
        Some(1),
        Some("admin"),
        Some("widget:w1"),
        500,
        "{}",
    ),
];

/// What each of [`OLD_ROWS`] reads as after the migration, in the same order.
const MIGRATED: &[MigratedRow] = &[
    (
        "login_failure",
        "auth.login.failed",
        "authentication",
        "medium",
        Some("user"),
        Some("mallory"),
        "failure",
    ),
    (
        "login_rate_limited",
        "auth.login.failed",
        "authentication",
        "high",
        Some("user"),
        Some("mallory"),
        "failure",
    ),
    (
        "refresh_token_reuse",
        "security.suspicious",
        "security",
        "critical",
        None,
        None,
        "failure",
    ),
    (
        "api_key_revoked",
        "api_key.revoke",
        "security",
        "medium",
        Some("api_key"),
        Some("5"),
        "success",
    ),
    (
        "api_key_revoked",
        "api_key.revoke",
        "authentication",
        "low",
        Some("api_key"),
        Some("6"),
        "success",
    ),
    (
        "project_update",
        "project.update",
        "data_modification",
        "high",
        Some("project"),
        Some("mnist"),
        "success",
    ),
    (
        "project_update",
        "project.update",
        "data_modification",
        "low",
        Some("project"),
        Some("cifar"),
        "success",
    ),
    (
        "model_transition",
        "model_version.transition",
        "data_modification",
        "medium",
        Some("model_version"),
        Some("clf:v2"),
        "success",
    ),
    (
        "run_file_download",
        "run_file.download",
        "data_access",
        "low",
        Some("run_file"),
        Some("ab12cd34/model.bin"),
        "success",
    ),
    (
        "user_promoted",
        "user.promote",
        "security",
        "high",
        Some("user"),
        Some("dora"),
        "success",
    ),
    (
        "access_denied",
        "authz.access_denied",
        "authorization",
        "medium",
        None,
        None,
        "failure",
    ),
    (
        "sweep_state_change",
        "sweep.update",
        "data_modification",
        "low",
        Some("sweep"),
        Some("sw1"),
        "success",
    ),
    (
        "widget_polish",
        "widget.polish",
        "data_modification",
        "medium",
        Some("widget"),
        Some("w1"),
        "error",
    ),
];

/// A server whose database got the old rows at schema version 6, then migrated.
async fn migrated_server(backend: Backend) -> Ctx {
    let dir = tempfile::tempdir().unwrap();
    let fill = |store: wanllmdb_server::Store| insert_old_rows(store.backend);
    let (store, pg_schema) = crate::upgraded_store(backend, dir.path(), 7, fill).await;
    let mut ctx = Ctx::serve(backend, store, dir, None).await;
    ctx.pg_schema = pg_schema;
    ctx
}

async fn insert_old_rows(backend: wanllmdb_server::store::Backend) {
    let store = wanllmdb_server::Store { backend };
    let at = now_us() - 3_600_000_000;
    for (i, row) in OLD_ROWS.iter().enumerate() {
        let (event_type, category, severity, user_id, username, resource, status, metadata) = *row;
        wanllmdb_server::on_backend!(store, write, |pool| {
            sqlx::query(
                "INSERT INTO audit_events (at, event_type, category, severity, user_id, username, ip, method, path, resource, status, metadata)
                 VALUES ($1, $2, $3, $4, $5, $6, '10.0.0.7', 'POST', '/api/v1/somewhere', $7, $8, $9)",
            )
            .bind(at + i as i64)
            .bind(event_type)
            .bind(category)
            .bind(severity)
            .bind(user_id)
            .bind(username)
            .bind(resource)
            .bind(status)
            .bind(metadata)
            .execute(pool)
            .await
            .unwrap();
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_migration_publishes_events_stored_before_it() {
    for backend in backends() {
        let ctx = migrated_server(backend).await;
        let all = page(&ctx, "limit=1000&start_date=2h&end_date=30m").await;
        let items = all["items"].as_array().unwrap();
        assert_eq!(items.len(), OLD_ROWS.len(), "{all}");
        // Oldest first, in the order they were inserted.
        for (e, want) in items.iter().rev().zip(MIGRATED) {
            let (action, event_type, category, severity, rtype, rid, status) = *want;
            assert_eq!(e["action"], action, "{e}");
            assert_eq!(e["event_type"], event_type, "{e}");
            assert_eq!(e["event_category"], category, "{e}");
            assert_eq!(e["category"], category, "{e}");
            assert_eq!(e["severity"], severity, "{e}");
            assert_eq!(e["resource_type"], json!(rtype), "{e}");
            assert_eq!(e["resource_id"], json!(rid), "{e}");
            assert_eq!(e["status"], status, "{e}");
            assert!(e["http_status"].is_i64(), "{e}");
            assert_eq!(e["ip_address"], "10.0.0.7");
            assert_eq!(e["request_path"], "/api/v1/somewhere");
            assert!(!e["description"].as_str().unwrap().is_empty(), "{e}");
        }
        // Failed logins name the account tried; a rate-limited one says so.
        let failed = page(&ctx, "event_type=auth.login.failed").await;
        assert_eq!(field(&failed, "username"), ["mallory", "mallory"]);
        assert_eq!(
            failed["items"][0]["metadata"],
            json!({"reason": "rate_limited"})
        );
        assert_eq!(failed["items"][1]["metadata"], json!({}));
        assert_eq!(failed_logins(&ctx, "").await.len(), 2);
        let transition = &page(&ctx, "event_type=model_version.transition").await["items"][0];
        assert_eq!(
            transition["description"],
            "User 'admin' moved model version 'clf:v2' from Staging to Production"
        );
        // The old filters find the migrated events.
        assert_eq!(ids_of(&ctx, "type=login_rate_limited").await.len(), 1);
        assert_eq!(
            ids_of(&ctx, "category=admin&start_date=2h&end_date=30m")
                .await
                .len(),
            3
        );
        assert_eq!(ids_of(&ctx, "resource=model:clf:v2").await.len(), 1);
        assert_eq!(ids_of(&ctx, "status=500").await.len(), 1);
        ctx.stop().await;
    }
}
