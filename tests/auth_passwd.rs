//! `wanllmdb auth passwd`: changing one's own password from the command line.

use std::io::Write;
use std::process::{Output, Stdio};

use super::{Env, code, http, stderr};

const NEW: &str = "Battery-Staple-77";

/// `wanllmdb auth passwd --password-stdin` fed two lines.
fn passwd(env: &Env, current: &str, new: &str) -> Output {
    let mut child = env
        .wl(&["auth", "passwd", "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "{current}\n{new}").unwrap();
    drop(stdin);
    child.wait_with_output().unwrap()
}

fn login_status(env: &Env, password: &str) -> u16 {
    http()
        .post(format!("{}/api/v1/auth/login", env.server.url))
        .json(&serde_json::json!({"username": "admin", "password": password}))
        .send()
        .unwrap()
        .status()
        .as_u16()
}

#[test]
fn auth_passwd_changes_the_password() {
    let env = Env::new();
    // The bootstrap admin has no password yet: the current one is left empty.
    let out = passwd(&env, "", NEW);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("Password changed"),
        "{}",
        stderr(&out)
    );
    assert_eq!(login_status(&env, NEW), 200);

    let out = passwd(&env, "Not-the-password-1", "Another-secret-99");
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("current_password"),
        "{}",
        stderr(&out)
    );
    let out = passwd(&env, NEW, "weak");
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("too weak"), "{}", stderr(&out));
    assert_eq!(login_status(&env, NEW), 200);

    // Without a terminal and without the flag nothing prompts.
    let out = env.wl(&["auth", "passwd"]).output().unwrap();
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("--password-stdin"),
        "{}",
        stderr(&out)
    );
}
