//! The program's guard: a small process between the wrapper (or sweep agent) and the program,
//! so a wrapper killed with SIGKILL never leaves its training program running.
//!
//! The wrapper starts `wanllmdb guard-program … -- CMD…` (this binary, in a hidden mode) with
//! the read end of a pipe whose write end only the wrapper holds. The guard starts the program
//! and waits for it; the wrapper sends signals as single bytes down the pipe. When the wrapper
//! dies, however it dies, the kernel closes its end: the guard's read ends, and it stops the
//! program's process group (SIGTERM, then SIGKILL after a grace period). Everything here is
//! safe Rust: no `pre_exec`, no parent-death signal tied to a thread.

use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use clap::Args;
use nix::fcntl::{FcntlArg, FdFlag, fcntl};
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::{Pid, getpgrp, getppid};

/// The hidden subcommand that runs the guard.
pub const SUBCOMMAND: &str = "guard-program";

/// Options of the hidden `wanllmdb guard-program`.
#[derive(Debug, Args)]
pub struct GuardArgs {
    /// The read end of the wrapper's pipe
    #[arg(long)]
    pub control_fd: RawFd,
    /// Where the program's end is written: `exit N`, `signal N` or `error KIND MESSAGE`
    #[arg(long)]
    pub status_file: PathBuf,
    /// Start the program in a process group of its own
    #[arg(long)]
    pub own_group: bool,
    /// Seconds between SIGTERM and SIGKILL once the wrapper is gone
    #[arg(long, default_value_t = 10)]
    pub grace: u64,
    /// The program and its arguments
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

/// A signal as it travels down the pipe.
fn encode(sig: Signal) -> u8 {
    match sig {
        Signal::SIGINT => b'I',
        Signal::SIGHUP => b'H',
        Signal::SIGKILL => b'K',
        _ => b'T',
    }
}

fn decode(b: u8) -> Option<Signal> {
    match b {
        b'I' => Some(Signal::SIGINT),
        b'H' => Some(Signal::SIGHUP),
        b'K' => Some(Signal::SIGKILL),
        b'T' => Some(Signal::SIGTERM),
        _ => None,
    }
}

/// The wrapper's side: the pipe's write end.
pub struct Link {
    write: std::fs::File,
    read: Option<OwnedFd>,
}

impl Link {
    /// A new pipe: the write end closes on exec (only the wrapper holds it), the read end is
    /// inherited by the guard.
    pub fn new() -> std::io::Result<Link> {
        let (read, write) = nix::unistd::pipe()?;
        fcntl(write.as_raw_fd(), FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))?;
        fcntl(read.as_raw_fd(), FcntlArg::F_SETFD(FdFlag::empty()))?;
        Ok(Link {
            write: std::fs::File::from(write),
            read: Some(read),
        })
    }

    /// The arguments that start the guard for `command` (after the binary itself).
    pub fn guard_args(&self, status: &Path, own_group: bool, command: &[String]) -> Vec<String> {
        let fd = self.read.as_ref().map_or(-1, AsRawFd::as_raw_fd);
        let mut args = vec![
            SUBCOMMAND.to_string(),
            "--control-fd".into(),
            fd.to_string(),
            "--status-file".into(),
            status.display().to_string(),
        ];
        if own_group {
            args.push("--own-group".into());
        }
        args.push("--".into());
        args.extend(command.iter().cloned());
        args
    }

    /// After the guard started: the wrapper keeps no copy of the read end, so the guard sees
    /// the pipe close when the wrapper goes.
    pub fn started(&mut self) {
        self.read = None;
    }

    /// Has the guard send `sig` to the program.
    pub fn signal(&mut self, sig: Signal) {
        let _ = self.write.write_all(&[encode(sig)]);
    }
}

/// How the program ended, as the guard recorded it.
pub enum ProgramEnd {
    /// It ran and ended with this status.
    Ended(ExitStatus),
    /// It could not be started.
    NotStarted {
        /// The command was not found.
        not_found: bool,
        /// Why.
        message: String,
    },
}

/// Reads the status file the guard wrote; without one (the guard itself failed), the guard's
/// own status stands for the program's.
pub fn program_end(status_file: &Path, guard: ExitStatus) -> ProgramEnd {
    let text = std::fs::read_to_string(status_file).unwrap_or_default();
    let mut words = text.trim().splitn(3, ' ');
    match (words.next(), words.next(), words.next()) {
        (Some("exit"), Some(n), _) => n.parse::<i32>().map_or(ProgramEnd::Ended(guard), |n| {
            ProgramEnd::Ended(ExitStatus::from_raw((n & 0xff) << 8))
        }),
        (Some("signal"), Some(n), _) => n.parse::<i32>().map_or(ProgramEnd::Ended(guard), |n| {
            ProgramEnd::Ended(ExitStatus::from_raw(n))
        }),
        (Some("error"), Some(kind), message) => ProgramEnd::NotStarted {
            not_found: kind == "notfound",
            message: message.unwrap_or("").to_string(),
        },
        _ => ProgramEnd::Ended(guard),
    }
}

/// The guard itself: starts the program, relays signals from the pipe, stops the program when
/// the pipe closes, and records how the program ended. Returns the exit code to leave with.
pub fn run(args: GuardArgs) -> u8 {
    // Terminal signals meant for the wrapper's group must not end the guard before the
    // program. They are caught (and dropped), not blocked: a program inherits a blocked mask,
    // while caught signals are reset to their defaults when it starts.
    let _caught = match catch_terminal_signals() {
        Ok(c) => c,
        Err(_) => return 1,
    };
    // The program must not inherit the pipe.
    let _ = fcntl(args.control_fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC));
    let wrapper = getppid();
    let mut cmd = std::process::Command::new(&args.command[0]);
    cmd.args(&args.command[1..]);
    if args.own_group {
        cmd.process_group(0);
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let kind = if e.kind() == std::io::ErrorKind::NotFound {
                "notfound"
            } else {
                "other"
            };
            let _ = std::fs::write(&args.status_file, format!("error {kind} {e}"));
            return 127;
        }
    };
    let program = Pid::from_raw(child.id() as i32);
    let target = Target {
        program,
        own_group: args.own_group,
        // Without a group of its own the program shares the wrapper's; that whole group may be
        // stopped only when the wrapper leads it (a shell job), never a caller's group.
        job_group: (!args.own_group && getpgrp() == wrapper).then(getpgrp),
    };
    let grace = Duration::from_secs(args.grace);
    let fd = args.control_fd;
    std::thread::spawn(move || relay(fd, target, grace));
    let status = loop {
        match child.wait() {
            Ok(s) => break s,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return 1,
        }
    };
    let (line, code) = match (status.code(), status.signal()) {
        (Some(c), _) => (format!("exit {c}"), u8::try_from(c & 0xff).unwrap_or(1)),
        (None, Some(s)) => (format!("signal {s}"), u8::try_from(128 + s).unwrap_or(1)),
        (None, None) => ("exit 1".to_string(), 1),
    };
    let _ = std::fs::write(&args.status_file, line);
    code
}

/// Installs handlers for the signals a terminal or a process manager sends a whole group, so
/// the guard outlives them; the handlers stay while the returned value lives.
fn catch_terminal_signals()
-> std::io::Result<(tokio::runtime::Runtime, Vec<tokio::signal::unix::Signal>)> {
    use tokio::signal::unix::{SignalKind, signal};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    let caught = rt.block_on(async {
        [
            SignalKind::interrupt(),
            SignalKind::terminate(),
            SignalKind::hangup(),
            SignalKind::quit(),
        ]
        .into_iter()
        .map(signal)
        .collect::<std::io::Result<Vec<_>>>()
    })?;
    Ok((rt, caught))
}

/// Whom the guard's signals reach.
#[derive(Clone, Copy)]
struct Target {
    program: Pid,
    own_group: bool,
    job_group: Option<Pid>,
}

impl Target {
    fn send(self, sig: Signal) {
        let _ = if self.own_group {
            killpg(self.program, sig)
        } else {
            kill(self.program, sig)
        };
    }

    /// Stops the program and the processes it started: its group, or the wrapper's job.
    fn stop(self, grace: Duration) {
        let group = if self.own_group {
            Some(self.program)
        } else {
            self.job_group
        };
        let send = |sig| {
            let _ = match group {
                Some(g) => killpg(g, sig),
                None => kill(self.program, sig),
            };
        };
        send(Signal::SIGTERM);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline && alive(self.program) {
            std::thread::sleep(Duration::from_millis(100));
        }
        send(Signal::SIGKILL);
    }
}

/// Whether the program has not ended yet (a zombie waiting for the guard counts as ended).
fn alive(pid: Pid) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        // Without /proc (macOS): ask the kernel.
        Err(_) => kill(pid, None).is_ok(),
    }
}

/// Relays the wrapper's signals until the pipe closes, then stops the program.
fn relay(fd: RawFd, target: Target, grace: Duration) {
    let mut buf = [0u8; 64];
    loop {
        match nix::unistd::read(fd, &mut buf) {
            Ok(0) => break,
            Ok(n) => {
                for sig in buf[..n].iter().filter_map(|b| decode(*b)) {
                    target.send(sig);
                }
            }
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => break,
        }
    }
    // The wrapper is gone (or closed the pipe): nobody would record or stop the program.
    target.stop(grace);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_survive_the_pipe() {
        for sig in [
            Signal::SIGINT,
            Signal::SIGTERM,
            Signal::SIGHUP,
            Signal::SIGKILL,
        ] {
            assert_eq!(decode(encode(sig)), Some(sig));
        }
        assert_eq!(decode(b'x'), None);
    }

    #[test]
    fn the_status_file_says_how_the_program_ended() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("status");
        let guard = ExitStatus::from_raw(3 << 8);
        std::fs::write(&f, "exit 7").unwrap();
        assert!(matches!(program_end(&f, guard), ProgramEnd::Ended(s) if s.code() == Some(7)));
        std::fs::write(&f, "signal 9").unwrap();
        assert!(matches!(program_end(&f, guard), ProgramEnd::Ended(s) if s.signal() == Some(9)));
        std::fs::write(&f, "error notfound No such file or directory (os error 2)").unwrap();
        assert!(matches!(
            program_end(&f, guard),
            ProgramEnd::NotStarted { not_found: true, message } if message.starts_with("No such file")
        ));
        std::fs::remove_file(&f).unwrap();
        assert!(matches!(program_end(&f, guard), ProgramEnd::Ended(s) if s.code() == Some(3)));
    }
}
