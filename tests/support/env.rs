//! A server in a temporary directory and a user at the command line signed in to it as the
//! bootstrap admin, with a working directory and a config directory of their own.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use reqwest::StatusCode;
use serde_json::Value;

use super::{Api, BIN, Server};

pub struct Env {
    // Declared first so it stops before the directory it runs in is removed.
    pub server: Server,
    /// Holds `data/` (the server's), `work/` and `cfg/` (the user's).
    pub dir: tempfile::TempDir,
    /// The bootstrap admin's API key.
    pub key: String,
}

impl Env {
    pub fn new() -> Env {
        Env::with_server_args(&[])
    }

    /// A server started with `extra` arguments.
    pub fn with_server_args(extra: &[&str]) -> Env {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("work")).unwrap();
        let server = Server::start(&dir.path().join("data"), extra);
        let key = server.admin_key.clone().expect("admin key");
        Env { server, dir, key }
    }

    /// A server holding the admin's project `name`.
    pub fn with_project(name: &str) -> Env {
        let env = Env::new();
        env.api().create_project(name);
        env
    }

    /// The user's working directory.
    pub fn work(&self) -> PathBuf {
        self.dir.path().join("work")
    }

    /// The server's data directory.
    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The user's config directory (credentials, caches).
    pub fn cfg(&self) -> PathBuf {
        self.dir.path().join("cfg")
    }

    /// Calls to the API as the admin.
    pub fn api(&self) -> Api {
        self.server.api().with_token(&self.key)
    }

    /// `GET path` as the admin.
    pub fn get(&self, path: &str) -> (StatusCode, Value) {
        self.api().get(path)
    }

    /// `wanllmdb ARGS` in the working directory, server and key from the environment.
    pub fn wl(&self, args: &[&str]) -> Command {
        let mut c = self.signed_out(args);
        c.env("WANLLMDB_BASE_URL", &self.server.url)
            .env("WANLLMDB_API_KEY", &self.key);
        c
    }

    /// `wanllmdb ARGS` with only what `wanllmdb login` stored in the config directory.
    pub fn signed_out(&self, args: &[&str]) -> Command {
        let mut c = bare(&self.work(), &self.cfg());
        c.args(args);
        c
    }

    /// `wanllmdb ARGS`, which must succeed; its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.wl(args).output().unwrap();
        assert!(
            out.status.success(),
            "wanllmdb {args:?} failed: {}",
            stderr(&out)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// `wanllmdb ARGS`, which must succeed and print JSON.
    pub fn json(&self, args: &[&str]) -> Value {
        let text = self.ok(args);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{args:?}: {e}: {text}"))
    }

    /// `wanllmdb ARGS`, which must fail with exit code 1 and say `want`; its stderr.
    pub fn fails(&self, args: &[&str], want: &str) -> String {
        let out = self.wl(args).output().unwrap();
        let err = stderr(&out);
        assert_eq!(code(&out), 1, "wanllmdb {args:?}: {err}");
        assert!(
            err.contains(want),
            "wanllmdb {args:?}: wanted {want:?} in {err}"
        );
        err
    }
}

/// The binary with a clean environment: its own config dir, no keyring, no inherited run,
/// and itself first on `PATH` (for programs it wraps that call it).
pub fn bare(cwd: &Path, cfg: &Path) -> Command {
    let bin_dir = Path::new(BIN).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut c = Command::new(BIN);
    c.current_dir(cwd)
        .env("WANLLMDB_CONFIG_DIR", cfg)
        .env("WANLLMDB_KEYRING", "0")
        .env("WANLLMDB_CACHE_DIR", cfg.join("cache"))
        .env("NO_COLOR", "1")
        .env("PATH", path)
        .env_remove("WANLLMDB_BASE_URL")
        .env_remove("WANLLMDB_API_KEY")
        .env_remove("WANLLMDB_PROJECT")
        .env_remove("WANLLMDB_RUN_ID")
        .env_remove("WANLLMDB_METRICS")
        .env_remove("WANLLMDB_DIR")
        .stdin(Stdio::null());
    c
}

/// The exit code (-1 when a signal ended it).
pub fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Writes `text` to `dir/name`; the file's path.
pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}
