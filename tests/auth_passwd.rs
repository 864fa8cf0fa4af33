//! `wanllmdb auth passwd`: changing one's own password from the command line.

use std::io::Write;
use std::process::{Output, Stdio};

use crate::support::{Env, code, stderr};

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

#[test]
fn auth_passwd_changes_the_password() {
    let env = Env::new();
    let cases = [
        // The bootstrap admin has no password yet: the current one is left empty.
        ("no password yet", "", NEW, 0, "Password changed"),
        (
            "a wrong current password",
            "Not-the-password-1",
            "Another-secret-99",
            1,
            "current_password",
        ),
        ("a weak new password", NEW, "weak", 1, "too weak"),
    ];
    for (what, current, new, want_code, says) in cases {
        let out = passwd(&env, current, new);
        let err = stderr(&out);
        assert_eq!(code(&out), want_code, "{what}: {err}");
        assert!(err.contains(says), "{what}: wanted {says:?} in {err}");
        // The first change holds; the refused ones change nothing.
        let (status, _) = env.server.api().login("admin", NEW);
        assert_eq!(status, 200, "{what}");
    }

    // Without a terminal and without the flag nothing prompts.
    env.fails(&["auth", "passwd"], "--password-stdin");
}
