//! `wanllmdb audit logs|failed-logins|stats` against a real server: the published event fields
//! and filters, the old flags still filtering the same way, and the new columns.

use crate::support::{Env, PASSWORD};

/// `wanllmdb audit logs ARGS --format json`: the events' ids, newest first.
fn ids(env: &Env, args: &[&str]) -> Vec<i64> {
    let mut all = vec!["audit", "logs", "--format", "json", "--limit", "1000"];
    all.extend_from_slice(args);
    env.json(&all)
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect()
}

/// alice registers and logs in, then two wrong passwords for alice and one for nobody.
fn seed(env: &Env) -> i64 {
    let api = env.server.api();
    let alice = api.register("alice")["id"].as_i64().unwrap();
    assert_eq!(api.login("alice", PASSWORD).0, 200);
    for name in ["alice", "alice", "nobody"] {
        assert_eq!(api.login(name, "Wrong-password-1").0, 401);
    }
    alice
}

#[test]
fn audit_logs_filter_by_the_new_and_old_names() {
    let env = Env::new();
    let alice = seed(&env);

    let failed = env.json(&[
        "audit",
        "logs",
        "--format",
        "json",
        "--event-type",
        "auth.login.failed",
    ]);
    let failed = failed.as_array().unwrap();
    assert_eq!(failed.len(), 3, "{failed:?}");
    let e = &failed[0];
    assert_eq!(e["event_category"], "authentication");
    assert_eq!(e["severity"], "medium");
    assert_eq!(e["status"], "failure");
    assert_eq!(e["http_status"], 401);
    assert_eq!(e["username"], "nobody");
    assert_eq!(
        e["metadata"],
        serde_json::json!({"reason": "unknown_user", "attempts": 1})
    );

    let pairs: [(&[&str], &[&str]); 6] = [
        (
            &["--type", "login_failure"],
            &["--event-type", "auth.login.failed"],
        ),
        (
            &["--category", "auth"],
            &["--event-category", "authentication"],
        ),
        (&["--severity", "warning"], &["--severity", "medium,high"]),
        (&["--status", "401"], &["--status", "failure"]),
        (&["--since", "1h"], &["--hours", "1"]),
        (
            &["--resource", "user:nobody"],
            &["--resource-type", "user", "--resource-id", "nobody"],
        ),
    ];
    for (old, new) in pairs {
        let (a, b) = (ids(&env, old), ids(&env, new));
        assert!(!a.is_empty(), "{old:?} found nothing");
        assert_eq!(a, b, "{old:?} vs {new:?}");
    }
    // A user by name or id: what alice did and the failed logins to her account.
    let by_name = ids(&env, &["--user", "alice"]);
    assert_eq!(
        by_name.len(),
        4,
        "register, login, two failures: {by_name:?}"
    );
    assert_eq!(ids(&env, &["--user", &alice.to_string()]), by_name);
    assert_eq!(ids(&env, &["--username", "alice"]), by_name);
    assert_eq!(ids(&env, &["--user-id", &alice.to_string()]).len(), 2);
    // Dates: today's events lie between yesterday and today, whole days inclusive.
    let created = failed[0]["created_at"].as_str().unwrap();
    let today = &created[..10];
    assert_eq!(
        ids(
            &env,
            &[
                "--start-date",
                today,
                "--end-date",
                today,
                "--event-type",
                "auth.login.failed"
            ]
        )
        .len(),
        3
    );
    assert!(ids(&env, &["--end-date", "2000-01-31"]).is_empty());

    // The table's columns, the description among them.
    let table = env.ok(&[
        "audit",
        "logs",
        "--event-type",
        "auth.login.failed",
        "--limit",
        "1",
    ]);
    for word in [
        "severity",
        "event",
        "status",
        "description",
        "auth.login.failed",
        "failure 401",
    ] {
        assert!(table.contains(word), "{word}: {table}");
    }
    assert!(
        table.contains("Failed login as 'nobody': no such user"),
        "{table}"
    );
    let csv = env.ok(&[
        "audit",
        "logs",
        "--format",
        "csv",
        "--event-type",
        "auth.login.failed",
    ]);
    let header = csv.lines().next().unwrap();
    assert!(
        header.starts_with("id,created_at,event_type,event_category,severity,status,http_status"),
        "{header}"
    );
    assert_eq!(csv.lines().count(), 4, "{csv}");

    // Bad values are refused with the server's message.
    env.fails(&["audit", "logs", "--severity", "loud"], "severity");
}

#[test]
fn failed_logins_and_stats_show_reasons_and_rates() {
    let env = Env::new();
    seed(&env);
    let f = env.json(&["audit", "failed-logins", "--json"]);
    let reasons: Vec<&str> = f
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["metadata"]["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons,
        ["unknown_user", "invalid_password", "invalid_password"]
    );
    assert_eq!(f[1]["metadata"]["attempts"], 2);
    let table = env.ok(&["audit", "failed-logins"]);
    for word in [
        "reason",
        "attempts",
        "invalid_password",
        "unknown_user",
        "nobody",
    ] {
        assert!(table.contains(word), "{word}: {table}");
    }

    let s = env.json(&["audit", "stats", "--json"]);
    assert_eq!(s["authentication"]["successful_logins"], 1, "{s}");
    assert_eq!(s["authentication"]["failed_logins"], 3);
    assert_eq!(s["authentication"]["failure_rate"], 0.75);
    assert_eq!(s["by_severity"]["medium"], 3);
    assert_eq!(s["total_events"], s["total"]);
    let text = env.ok(&["audit", "stats"]);
    for word in ["failed logins", "75.0%", "critical 0", "authentication"] {
        assert!(text.contains(word), "{word}: {text}");
    }
}
