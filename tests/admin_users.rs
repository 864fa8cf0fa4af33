//! Account administration end to end: the real `wanllmdb admin user|api-key` commands create,
//! list, disable, enable and reset the password of an account, and revoke its keys, against a
//! real server.

use std::io::Write;
use std::process::{Output, Stdio};

use serde_json::{Value, json};

use crate::support::{Env, code, stderr};

const NEW_PASSWORD: &str = "Quiet-Harbour-Lamp-31";

/// `wanllmdb ARGS` as the administrator, with `input` on stdin.
fn with_stdin(env: &Env, args: &[&str], input: &str) -> Output {
    let mut child = env
        .wl(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// Logs in over HTTP; the status and, on success, the access token.
fn password_login(env: &Env, name: &str, password: &str) -> (u16, Option<String>) {
    let (status, body) = env.server.api().login(name, password);
    (
        status.as_u16(),
        body["access_token"].as_str().map(str::to_string),
    )
}

/// A new API key for the user behind `access`.
fn new_key(env: &Env, access: &str) -> String {
    env.server.api().with_token(access).new_api_key()
}

/// `wanllmdb whoami` with `key`.
fn whoami(env: &Env, key: &str) -> Output {
    env.wl(&["whoami", "--json"])
        .env("WANLLMDB_API_KEY", key)
        .output()
        .unwrap()
}

fn dora(env: &Env) -> Value {
    env.json(&["admin", "user", "show", "dora", "--json"])
}

#[test]
fn admins_create_disable_enable_and_reset_accounts() {
    let env = Env::new();

    // A generated password: alone on stdout, with a note on stderr.
    let out = env
        .wl(&[
            "admin",
            "user",
            "create",
            "dora",
            "--email",
            "dora@example.com",
        ])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    let generated = stdout.trim_end_matches('\n');
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(generated.len() >= 12, "{generated}");
    assert!(
        stderr(&out).contains("shown only this once"),
        "{}",
        stderr(&out)
    );
    let (status, access) = password_login(&env, "dora", generated);
    assert_eq!(status, 200);
    let key = new_key(&env, &access.unwrap());
    assert_eq!(code(&whoami(&env, &key)), 0);

    let list = env.json(&["admin", "user", "list", "--json"]);
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["admin", "dora"]);
    assert_eq!(list[1]["disabled"], false);
    assert_eq!(list[1]["active_api_keys"], 1);
    let table = env.ok(&["admin", "user", "list", "--search", "DORA"]);
    assert!(
        table.contains("dora@example.com") && !table.contains("admin@"),
        "{table}"
    );

    // Disabling kills the key at once and blocks logins.
    let out = env
        .wl(&["admin", "user", "disable", "dora"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("revoked 1 API key"),
        "{}",
        stderr(&out)
    );
    let refused = whoami(&env, &key);
    assert_eq!(code(&refused), 1);
    assert!(
        stderr(&refused).contains("did not accept"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(password_login(&env, "dora", generated).0, 403);
    assert_eq!(dora(&env)["disabled"], true);
    env.fails(
        &["admin", "user", "disable", "admin"],
        "last enabled server administrator",
    );

    let out = env
        .wl(&["admin", "user", "enable", "dora"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stderr(&out).contains("stay revoked"), "{}", stderr(&out));
    assert_eq!(dora(&env)["disabled"], false);
    assert_eq!(code(&whoami(&env, &key)), 1, "the old key stays revoked");
    assert_eq!(password_login(&env, "dora", generated).0, 200);

    // A password from stdin: nothing on stdout; the old one stops working.
    let out = with_stdin(
        &env,
        &[
            "admin",
            "user",
            "reset-password",
            "dora",
            "--password-stdin",
        ],
        &format!("{NEW_PASSWORD}\n"),
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(out.stdout.is_empty());
    assert_eq!(password_login(&env, "dora", generated).0, 401);
    let (status, access) = password_login(&env, "dora", NEW_PASSWORD);
    assert_eq!(status, 200);
    let out = with_stdin(
        &env,
        &[
            "admin",
            "user",
            "reset-password",
            "dora",
            "--password-stdin",
        ],
        "short\n",
    );
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("too weak"), "{}", stderr(&out));

    // The administrator finds dora's new key and revokes it.
    let second = new_key(&env, &access.unwrap());
    let keys = env.json(&["admin", "api-key", "list", "--user", "dora", "--json"]);
    assert_eq!(keys.as_array().unwrap().len(), 1, "{keys}");
    assert!(
        !keys.to_string().contains(&second),
        "secrets are never listed"
    );
    let id = keys[0]["id"].as_i64().unwrap().to_string();
    env.ok(&["admin", "api-key", "revoke", &id]);
    assert_eq!(code(&whoami(&env, &second)), 1);
    assert_eq!(
        env.json(&["admin", "api-key", "list", "--user", "dora", "--json"]),
        json!([])
    );
}
