//! A `wanllmdb server` process in a data directory of the test's: started on a free port,
//! ready once it says where it listens, stopped with SIGTERM when dropped.

use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::process::{lines, signal, wait_exit, wait_exit_within};
use super::{Api, BIN};

pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The bootstrap admin's API key, printed only by the first start on a data directory.
    pub admin_key: Option<String>,
    /// The lines it printed before it listened.
    pub early: Vec<String>,
    /// The lines it prints from then on.
    pub stderr: mpsc::Receiver<String>,
}

/// `wanllmdb server` with no database or metrics address inherited from the environment.
pub fn command() -> Command {
    let mut c = Command::new(BIN);
    c.arg("server")
        .env_remove("WANLLMDB_DATABASE_URL")
        .env_remove("WANLLMDB_METRICS_BIND")
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    c
}

/// Runs `cmd`, a server that must refuse to start: exit code 1. Its stderr.
pub fn refuses(mut cmd: Command) -> String {
    let mut child = cmd.stderr(Stdio::piped()).spawn().expect("start wanllmdb");
    let said = lines(child.stderr.take().unwrap());
    let status = wait_exit_within(&mut child, Duration::from_secs(60));
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let err = said.iter().collect::<Vec<_>>().join("\n");
    assert_eq!(status.and_then(|s| s.code()), Some(1), "{err}");
    err
}

impl Server {
    /// Starts a server on a free port of 127.0.0.1 with `data_dir` and `extra` arguments.
    pub fn start(data_dir: &Path, extra: &[&str]) -> Server {
        Server::start_at(data_dir, "127.0.0.1:0", extra)
    }

    /// Starts a server listening on `bind`.
    pub fn start_at(data_dir: &Path, bind: &str, extra: &[&str]) -> Server {
        let mut child = command()
            .args(["--bind", bind, "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .stderr(Stdio::piped())
            .spawn()
            .expect("start wanllmdb server");
        let stderr = lines(child.stderr.take().unwrap());
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut early = Vec::new();
        let mut admin_key = None;
        let mut login_cmd = None;
        let url = loop {
            let line = stderr
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .unwrap_or_else(|_| panic!("server printed no 'listening on' line: {early:#?}"));
            let trimmed = line.trim();
            if trimmed.starts_with("wlk_") {
                admin_key = Some(trimmed.to_string());
            }
            if trimmed.starts_with("wanllmdb login") {
                login_cmd = Some(trimmed.to_string());
            }
            if let Some(rest) = line.split("listening on ").nth(1) {
                break rest.split_whitespace().next().unwrap().to_string();
            }
            early.push(line);
        };
        // The key is printed with the command that uses it.
        if let (Some(k), Some(cmd)) = (&admin_key, &login_cmd) {
            assert_eq!(cmd, &format!("wanllmdb login --host {url} --api-key {k}"));
        }
        Server {
            child,
            url,
            admin_key,
            early,
            stderr,
        }
    }

    /// Anonymous calls to its API.
    pub fn api(&self) -> Api {
        Api::new(&self.url)
    }

    /// Calls to its API as the bootstrap admin.
    pub fn admin(&self) -> Api {
        self.api()
            .with_token(self.admin_key.as_deref().expect("admin key"))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, sig: Signal) {
        signal(self.pid(), sig);
    }

    pub fn wait_exit(&mut self) -> ExitStatus {
        wait_exit(&mut self.child)
    }

    /// Stops it with SIGTERM, which must end it with exit code 0.
    pub fn stop(&mut self) {
        self.signal(Signal::SIGTERM);
        let status = self.wait_exit();
        assert!(status.success(), "exit status {status:?}");
    }

    /// Kills it with SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        self.signal(Signal::SIGKILL);
        self.wait_exit();
    }

    /// The lines it printed since it listened, up to its exit.
    pub fn said_until_exit(&self) -> Vec<String> {
        self.stderr.iter().collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Never panics: it may run while a failed test unwinds.
        if let Ok(None) = self.child.try_wait() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.pid() as i32),
                Signal::SIGTERM,
            );
            if wait_exit_within(&mut self.child, Duration::from_secs(10)).is_none() {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
    }
}
