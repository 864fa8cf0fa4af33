//! `wanllmdb run -- CMD…`: the run wrapper. It creates the run, starts CMD with the
//! `WANLLMDB_*` variables, passes its output through unchanged while recording it, tails the
//! metrics file, heartbeats, forwards signals, and ships everything from the local spool.

pub mod capture;
pub mod context;
pub mod guard;
pub mod system;

use std::io::{IsTerminal, Write};
use std::process::ExitStatus;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use nix::sys::signal::Signal;
use regex::Regex;
use tokio::io::AsyncReadExt;
use tokio::sync::watch;
use wanllmdb_api_types::RunId;
use wanllmdb_api_types::logs::LogSource;
use wanllmdb_api_types::runs::{CreateRunRequest, FinishRunRequest, HeartbeatResponse, RunState};

use crate::client::{Api, seg};
use crate::config::{GlobalFlags, Settings};
use crate::env;
use crate::error::{CliError, CliResult, user_err};
use crate::output::Printer;
use crate::spool::{Drain, Shipper, Spool, SpoolMeta, spool_root};
use crate::transfer::LocalFile;
use capture::OutputRecorder;

/// Seconds between heartbeats.
const HEARTBEAT_SECS: u64 = 30;
/// Hidden override of the heartbeat interval (seconds), for tests and impatient operators.
const HEARTBEAT_ENV: &str = "WANLLMDB_HEARTBEAT_INTERVAL";
/// Shipping happens at most this often while the program runs…
const SHIP_EVERY: Duration = Duration::from_secs(1);
/// …or sooner when this many bytes are waiting.
const SHIP_BYTES: u64 = 1 << 20;
/// While the program runs, shipping (the wrapper's work and the server's) keeps to about
/// 1 / (1 + SHIP_REST) of the time: after a round that took t, the next waits SHIP_REST × t.
/// Programs that log at ordinary rates never notice; one that floods its metrics file keeps
/// its CPU, and the backlog goes out at full speed when it exits.
const SHIP_REST: u32 = 3;

/// Options of `wanllmdb run`.
#[derive(Debug, Args)]
#[command(after_help = "\
The program gets WANLLMDB_RUN_ID, WANLLMDB_PROJECT, WANLLMDB_BASE_URL and WANLLMDB_METRICS in
its environment, and WANLLMDB_RUN_CONFIG: a JSON file holding the run's config. It logs metrics
by appending one JSON object per line to $WANLLMDB_METRICS:
  {\"step\": 3, \"loss\": 0.25, \"acc\": 0.9}
(without \"step\" the wrapper numbers lines itself), or with `wanllmdb log loss=0.25`.
Every 15 s the CPU and memory of the program's process tree, the host's memory and each GPU
(through nvidia-smi) are recorded as system/… metrics, unless --no-system-metrics is given.

Everything goes to .wanllmdb/runs/<id>/ first and is shipped from there about once a second,
so the program never waits on the network; if the server is unreachable the run goes on and
`wanllmdb sync` uploads what is left. The wrapper exits with the program's exit code.

Examples:
  wanllmdb run -- python train.py --lr 3e-4
  wanllmdb run --name baseline --tag resnet --config config.yaml --config lr=3e-4 -- python train.py
  wanllmdb run --scalars 'loss' -- ./train.sh        # also capture `loss: 0.25` from output
  wanllmdb run --offline -- python train.py && wanllmdb sync
  wanllmdb run --save 'checkpoints/*.pt' --save results.json -- python train.py")]
pub struct RunArgs {
    /// Display name of the run [default: the run id]
    #[arg(long)]
    pub name: Option<String>,
    /// Run id (8 characters of a-z and 0-9); an existing id in the project is resumed
    #[arg(long)]
    pub id: Option<String>,
    /// Tag the run (repeatable)
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// Notes about the run
    #[arg(long)]
    pub notes: Option<String>,
    /// Group runs that belong together (e.g. workers of one job)
    #[arg(long)]
    pub group: Option<String>,
    /// Kind of job, e.g. train or eval
    #[arg(long)]
    pub job_type: Option<String>,
    /// Hyperparameters: a .yaml/.json file or KEY=VALUE (dotted keys nest); repeatable, later wins
    #[arg(long = "config", value_name = "FILE|KEY=VALUE")]
    pub config: Vec<String>,
    /// Also record `key: value` / `key=value` numbers from output lines matching this regex
    #[arg(long, env = env::SCALARS, value_name = "REGEX", hide_env_values = true)]
    pub scalars: Option<String>,
    /// Do not contact the server; upload later with `wanllmdb sync`
    #[arg(long)]
    pub offline: bool,
    /// After the program ends, how long to keep trying an unreachable server before leaving the rest to `wanllmdb sync`
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    pub sync_timeout: u64,
    /// Attach files matching this glob to the run when it ends (repeatable; directories recursively)
    #[arg(long, value_name = "GLOB")]
    pub save: Vec<String>,
    /// Record no system/… metrics (CPU, memory, GPUs every 15 s)
    #[arg(long, env = env::NO_SYSTEM_METRICS, hide_env_values = true)]
    pub no_system_metrics: bool,
    /// The command to run, after `--`
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// Control over a wrapped run by whoever started it (the sweep agent).
pub struct Supervisor {
    /// Turns `Some(reason)` when the run must stop: SIGTERM, then SIGKILL after `grace`; the
    /// run ends killed with that reason.
    pub stop: watch::Receiver<Option<String>>,
    /// Time between SIGTERM and SIGKILL.
    pub grace: Duration,
    /// Extra environment for the program.
    pub env: Vec<(String, String)>,
}

/// Runs the wrapper; returns the exit code to leave with.
pub async fn run(args: RunArgs, flags: &GlobalFlags, printer: Printer) -> CliResult<u8> {
    run_supervised(args, flags, printer, None).await
}

/// Runs the wrapper under a supervisor. The program gets its own process group, so a stop
/// reaches the processes it started too.
pub async fn run_supervised(
    args: RunArgs,
    flags: &GlobalFlags,
    printer: Printer,
    supervisor: Option<Supervisor>,
) -> CliResult<u8> {
    let settings = Settings::resolve(flags).await?;
    let project = crate::commands::valid_project_name(&settings.require_project()?)?;
    let id = match &args.id {
        Some(id) => RunId::parse(id).map_err(|_| {
            user_err!("run id {id:?} is not valid")
                .hint("a run id is 8 characters of a-z and 0-9, or leave --id out")
        })?,
        None => new_run_id(),
    };
    let pattern = args.scalars.clone().or_else(|| {
        settings
            .project_file
            .as_ref()
            .and_then(|(_, f)| f.scalars.clone())
    });
    let scalars = match pattern {
        Some(p) => Some(
            Regex::new(&p)
                .map_err(|e| user_err!("--scalars {p:?} is not a valid regular expression: {e}"))?,
        ),
        None => None,
    };
    let config = context::merge_config(&args.config)?;
    let (git, diff) = context::git_info();
    let meta = SpoolMeta {
        version: crate::spool::SPOOL_VERSION,
        host: settings.host.clone(),
        run: CreateRunRequest {
            project: project.clone(),
            id: Some(id.clone()),
            name: args.name.clone(),
            config: Some(config),
            tags: args.tags.clone(),
            notes: args.notes.clone(),
            group: args.group.clone(),
            job_type: args.job_type.clone(),
            git,
            host: context::host_name(),
            os: Some(context::os_description()),
            program: Some(shell_join(&args.command)),
            runtime: context::runtime_versions(&args.command),
            started_at: None,
        },
        offline: args.offline,
        created_at: crate::spool::unix_now(),
    };
    let root = spool_root(&settings);
    let fresh = !root.join("runs").join(id.as_str()).exists();
    let spool = Spool::create(&root, &meta)?;
    spool.claim()?;
    if let Some(d) = diff {
        let _ = std::fs::write(spool.dir.join("diff.patch"), d);
    }
    let api = Api::new(&settings)?;
    let mut shipper = Shipper::new(spool.clone(), api.clone(), printer)?;

    if !args.offline {
        match tokio::time::timeout(Duration::from_secs(10), shipper.ensure_created()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) if e.transient() => printer.warn(format!(
                "{e}; the run goes on and is shipped when the server is back"
            )),
            Ok(Err(e)) => {
                spool.release();
                if fresh {
                    // Nothing ran and nothing was recorded: leave no spool for `sync` to find.
                    let _ = std::fs::remove_dir_all(&spool.dir);
                }
                return Err(e.into());
            }
            Err(_) => printer.warn(
                "the server did not answer in 10 s; the run goes on and is shipped when it answers",
            ),
        }
    }
    printer.info(format!(
        "wanllmdb: run {id} in project {project}{} (spool {})",
        if args.offline {
            " (offline)".to_string()
        } else {
            format!(" at {}", settings.host)
        },
        spool.dir.display()
    ));
    if !args.offline {
        printer.info(format!("wanllmdb: view it at {}/runs/{id}", settings.host));
    }

    let recorder = OutputRecorder::new(&spool, scalars)
        .map_err(|e| user_err!("cannot write the spool {}: {e}", spool.dir.display()))?;
    let metrics_path = std::fs::canonicalize(spool.metrics_path()).unwrap_or(spool.metrics_path());
    let config_path = spool.write_run_config(meta.run.config.as_ref())?;
    // The program runs under a guard (this binary in a hidden mode) that stops it if this
    // process dies; it gets a process group of its own unless it shares a terminal with us.
    let own_group = supervisor.is_some() || !std::io::stdin().is_terminal();
    let mut link = guard::Link::new()
        .map_err(|e| CliError::unexpected(format!("cannot create a pipe: {e}")))?;
    let status_file = spool.dir.join("program.status");
    let _ = std::fs::remove_file(&status_file);
    let exe = std::env::current_exe()
        .map_err(|e| CliError::unexpected(format!("cannot find this program's path: {e}")))?;
    let mut cmd = tokio::process::Command::new(exe);
    cmd.args(link.guard_args(&status_file, own_group, &args.command))
        .env(env::RUN_ID, id.as_str())
        .env(env::PROJECT, project.as_str())
        .env(env::BASE_URL, &settings.host)
        .env(env::METRICS, &metrics_path)
        .env(env::RUN_CONFIG, &config_path)
        .stdin(std::process::Stdio::inherit())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    if let Some(sup) = &supervisor {
        cmd.envs(sup.env.iter().map(|(k, v)| (k, v)));
    }
    if std::env::var_os("PYTHONUNBUFFERED").is_none() {
        // Piped output is block-buffered by Python; unbuffered keeps lines live and in order.
        cmd.env("PYTHONUNBUFFERED", "1");
    }
    let created = Arc::new(AtomicBool::new(shipper.state.created));
    let (done_tx, done_rx) = watch::channel(false);
    let ship_task = tokio::spawn(ship_loop(
        shipper,
        done_rx,
        created.clone(),
        printer,
        args.offline,
        Duration::from_secs(args.sync_timeout),
    ));

    let spawned = cmd.spawn();
    link.started();
    let watch = Watch {
        api: &api,
        id: &id,
        created,
        offline: args.offline,
        printer,
        supervisor,
        link,
        own_group,
    };
    let ended = match spawned {
        Ok(child) => {
            let sampler = (!args.no_system_metrics)
                .then(|| child.id())
                .flatten()
                .map(|pid| tokio::spawn(sample_system(pid, spool.system_path())));
            let r = supervise(child, recorder, watch).await;
            if let Some(s) = sampler {
                s.abort();
            }
            let (status, stopped, reason) = r?;
            match guard::program_end(&status_file, status) {
                guard::ProgramEnd::Ended(status) => Ok((status, stopped, reason)),
                guard::ProgramEnd::NotStarted { not_found, message } => Err((not_found, message)),
            }
        }
        Err(e) => Err((e.kind() == std::io::ErrorKind::NotFound, e.to_string())),
    };
    let _ = std::fs::remove_file(&status_file);
    let (status, stopped, reason) = match ended {
        Ok(ended) => ended,
        Err((not_found, e)) => {
            let _ = done_tx.send(true);
            let hint = if not_found {
                "is it installed and on PATH?"
            } else {
                "check the command after `--`"
            };
            let finish = FinishRunRequest {
                state: RunState::Crashed,
                exit_code: Some(127),
                reason: None,
                finished_at: Some(crate::spool::unix_now()),
            };
            spool.write_exit(&finish)?;
            let _ = ship_task.await;
            spool.release();
            return Err(user_err!("cannot start {:?}: {e}", args.command[0]).hint(hint));
        }
    };
    let (mut state, code) = outcome(status, stopped);
    if reason.is_some() {
        // Stopped by its supervisor: killed, however the program chose to exit.
        state = RunState::Killed;
    }
    let finish = FinishRunRequest {
        state,
        exit_code: Some(code),
        reason,
        finished_at: Some(crate::spool::unix_now()),
    };
    spool.write_exit(&finish)?;
    let _ = done_tx.send(true);
    let shipped = ship_task
        .await
        .map_err(|e| CliError::unexpected(format!("shipping task failed: {e}")))?;
    let saves = saved_files(&args.save, &spool, printer)?;
    if !saves.is_empty() {
        spool.write_saved_files(&saves)?;
    }
    let shipped = match shipped {
        ShipOutcome::Done if !saves.is_empty() => {
            match spool.upload_saved_files(&api, &id, &printer).await {
                Ok(n) => {
                    printer.info(format!("wanllmdb: attached {n} file(s) to run {id}"));
                    ShipOutcome::Done
                }
                Err(e) => ShipOutcome::Left(format!("files not attached: {}", e.message)),
            }
        }
        other => other,
    };
    spool.release();
    match shipped {
        ShipOutcome::Done => printer.info(format!(
            "wanllmdb: run {id} {} (exit code {code})",
            state.as_str()
        )),
        ShipOutcome::Offline => printer.info(format!(
            "wanllmdb: run {id} {} offline (exit code {code}); upload it with: wanllmdb sync {}",
            state.as_str(),
            spool.dir.display()
        )),
        ShipOutcome::Left(why) => printer.warn(format!(
            "run {id} ended ({}, exit code {code}) but not everything reached the server: {why}\nhint: upload the rest with: wanllmdb sync {}",
            state.as_str(),
            spool.dir.display()
        )),
    }
    Ok(u8::try_from(code.clamp(0, 255)).unwrap_or(1))
}

/// The files `--save` names (plus the diff of a dirty git tree), named by their path relative
/// to the current directory.
fn saved_files(globs: &[String], spool: &Spool, printer: Printer) -> CliResult<Vec<LocalFile>> {
    let mut out = Vec::new();
    let diff = spool.dir.join("diff.patch");
    if diff.is_file() {
        out.push(LocalFile {
            local: std::fs::canonicalize(&diff).unwrap_or(diff),
            remote: "diff.patch".into(),
        });
    }
    let cwd = std::env::current_dir().unwrap_or_default();
    for g in globs {
        let paths =
            glob::glob(g).map_err(|e| user_err!("--save {g:?} is not a valid pattern: {e}"))?;
        let mut matched = 0;
        for p in paths.flatten() {
            matched += 1;
            let abs = if p.is_absolute() {
                p.clone()
            } else {
                cwd.join(&p)
            };
            let rel = abs
                .strip_prefix(&cwd)
                .map(|r| r.to_string_lossy().into_owned())
                .unwrap_or_else(|_| {
                    p.file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default()
                });
            if abs.is_dir() {
                for mut f in crate::transfer::collect(std::slice::from_ref(&abs), None)? {
                    // collect() names a directory's files after the directory itself.
                    let inner = f.remote.split_once('/').map(|x| x.1).unwrap_or(&f.remote);
                    f.remote = format!("{rel}/{inner}");
                    out.push(f);
                }
            } else if abs.is_file() {
                out.push(LocalFile {
                    local: abs,
                    remote: rel,
                });
            }
        }
        if matched == 0 {
            printer.warn(format!("--save {g:?} matched no files"));
        }
    }
    Ok(out)
}

/// What `supervise` needs besides the program.
struct Watch<'a> {
    api: &'a Api,
    id: &'a str,
    created: Arc<AtomicBool>,
    offline: bool,
    printer: Printer,
    supervisor: Option<Supervisor>,
    /// The pipe to the program's guard, which sends it our signals.
    link: guard::Link,
    /// The program has a process group of its own (it does not see the terminal's signals).
    own_group: bool,
}

/// Waits for the program while recording its output, heartbeating and forwarding signals.
/// Returns its exit status, whether it was asked to stop, and the supervisor's reason if the
/// supervisor stopped it.
async fn supervise(
    mut child: tokio::process::Child,
    mut recorder: OutputRecorder,
    watch: Watch<'_>,
) -> CliResult<(ExitStatus, bool, Option<String>)> {
    let Watch {
        api,
        id,
        created,
        offline,
        printer,
        supervisor,
        mut link,
        own_group,
    } = watch;
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut capture = tokio::spawn(async move {
        let r = pump(stdout, stderr, &mut recorder, stop_rx).await;
        let _ = recorder.flush();
        r
    });
    let stopped = Arc::new(AtomicBool::new(false));
    // A stop asked for on the server (seen by a heartbeat) reaches the program as SIGTERM.
    let (stop_asked_tx, mut stop_asked) = tokio::sync::mpsc::unbounded_channel::<()>();
    let heartbeat = (!offline).then(|| {
        tokio::spawn(heartbeat_loop(
            api.clone(),
            id.to_string(),
            created,
            stop_asked_tx,
            stopped.clone(),
            printer,
        ))
    });
    let mut sigterm = signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut sigint = signal(tokio::signal::unix::SignalKind::interrupt())?;
    let mut sighup = signal(tokio::signal::unix::SignalKind::hangup())?;
    let mut forward = |sig: Signal| link.signal(sig);
    let (mut stop_rx, grace) = match supervisor {
        Some(s) => (Some(s.stop), s.grace),
        None => (None, Duration::ZERO),
    };
    let mut reason: Option<String> = None;
    let mut kill_at: Option<tokio::time::Instant> = None;
    let status = loop {
        tokio::select! {
            s = child.wait() => break s.map_err(|e| CliError::unexpected(format!("waiting for the program: {e}")))?,
            r = stop_requested(&mut stop_rx), if reason.is_none() => {
                printer.warn(format!("run {id}: stopping ({r}); SIGTERM now, SIGKILL in {} s", grace.as_secs()));
                reason = Some(r);
                stopped.store(true, Ordering::SeqCst);
                forward(Signal::SIGTERM);
                kill_at = Some(tokio::time::Instant::now() + grace);
            }
            _ = sleep_until(kill_at) => {
                printer.warn(format!("run {id}: still running after the grace period; SIGKILL"));
                forward(Signal::SIGKILL);
                kill_at = None;
            }
            _ = sigterm.recv() => { stopped.store(true, Ordering::SeqCst); forward(Signal::SIGTERM); }
            Some(()) = stop_asked.recv() => forward(Signal::SIGTERM),
            _ = sighup.recv() => { stopped.store(true, Ordering::SeqCst); forward(Signal::SIGHUP); }
            _ = sigint.recv() => {
                stopped.store(true, Ordering::SeqCst);
                // Ctrl-C at a terminal reaches the whole foreground group, the program included,
                // unless the program has a group of its own.
                if own_group {
                    forward(Signal::SIGINT);
                }
            }
        }
    };
    if let Some(h) = heartbeat {
        h.abort();
    }
    // Children of the program may keep its output open; give them a moment, then stop reading.
    if tokio::time::timeout(Duration::from_secs(2), &mut capture)
        .await
        .is_err()
    {
        let _ = stop_tx.send(true);
        let _ = capture.await;
    }
    Ok((status, stopped.load(Ordering::SeqCst), reason))
}

/// Resolves with the supervisor's reason once it asks for a stop; never without a supervisor.
async fn stop_requested(rx: &mut Option<watch::Receiver<Option<String>>>) -> String {
    if let Some(rx) = rx
        && let Ok(r) = rx.wait_for(|r| r.is_some()).await
    {
        return r.clone().unwrap_or_default();
    }
    std::future::pending().await
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

fn signal(kind: tokio::signal::unix::SignalKind) -> CliResult<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(kind)
        .map_err(|e| CliError::unexpected(format!("cannot install a signal handler: {e}")))
}

/// Copies the program's output to ours, unchanged, and records it.
async fn pump(
    stdout: Option<tokio::process::ChildStdout>,
    stderr: Option<tokio::process::ChildStderr>,
    recorder: &mut OutputRecorder,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let mut out = stdout;
    let mut err = stderr;
    let mut b1 = vec![0u8; 64 * 1024];
    let mut b2 = vec![0u8; 64 * 1024];
    while out.is_some() || err.is_some() {
        tokio::select! {
            r = read_opt(&mut out, &mut b1) => match r {
                Ok(0) | Err(_) => { out = None; recorder.end(LogSource::Stdout)?; }
                Ok(n) => {
                    let mut o = std::io::stdout().lock();
                    let _ = o.write_all(&b1[..n]).and_then(|_| o.flush());
                    recorder.feed(LogSource::Stdout, &b1[..n])?;
                }
            },
            r = read_opt(&mut err, &mut b2) => match r {
                Ok(0) | Err(_) => { err = None; recorder.end(LogSource::Stderr)?; }
                Ok(n) => {
                    let mut e = std::io::stderr().lock();
                    let _ = e.write_all(&b2[..n]).and_then(|_| e.flush());
                    recorder.feed(LogSource::Stderr, &b2[..n])?;
                }
            },
            _ = stop.changed() => {
                recorder.end(LogSource::Stdout)?;
                recorder.end(LogSource::Stderr)?;
                break;
            }
        }
        recorder.flush()?;
    }
    recorder.flush()
}

async fn read_opt<R: tokio::io::AsyncRead + Unpin>(
    r: &mut Option<R>,
    buf: &mut [u8],
) -> std::io::Result<usize> {
    match r {
        Some(r) => r.read(buf).await,
        None => std::future::pending().await,
    }
}

async fn heartbeat_loop(
    api: Api,
    id: String,
    created: Arc<AtomicBool>,
    stop: tokio::sync::mpsc::UnboundedSender<()>,
    stopped: Arc<AtomicBool>,
    printer: Printer,
) {
    let secs = std::env::var(HEARTBEAT_ENV)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|s| *s > 0)
        .unwrap_or(HEARTBEAT_SECS);
    let path = format!("/api/v1/runs/{}/heartbeat", seg(&id));
    let mut asked = false;
    loop {
        tokio::time::sleep(Duration::from_secs(secs)).await;
        if !created.load(Ordering::SeqCst) {
            continue;
        }
        match api
            .post::<_, HeartbeatResponse>(&path, &serde_json::json!({}))
            .await
        {
            Ok(hb) if hb.stop_requested && !asked => {
                asked = true;
                stopped.store(true, Ordering::SeqCst);
                printer.warn(format!(
                    "run {id}: a stop was requested; sending SIGTERM to the program"
                ));
                let _ = stop.send(());
            }
            Ok(_) => {}
            Err(e) => printer.debug(format!("heartbeat failed: {e}")),
        }
    }
}

/// What became of the shipping.
enum ShipOutcome {
    /// Everything is on the server and the run is marked ended.
    Done,
    /// `--offline`: nothing was sent.
    Offline,
    /// Something is left in the spool, and why.
    Left(String),
}

async fn ship_loop(
    mut shipper: Shipper,
    mut done: watch::Receiver<bool>,
    created: Arc<AtomicBool>,
    printer: Printer,
    offline: bool,
    sync_timeout: Duration,
) -> ShipOutcome {
    if offline {
        let _ = done.wait_for(|d| *d).await;
        return ShipOutcome::Offline;
    }
    let mut last_ship = Instant::now() - SHIP_EVERY;
    let mut retry_at: Option<Instant> = None;
    let mut rest_until: Option<Instant> = None;
    let mut failures = 0u32;
    let mut outage = false;
    let mut blocked: Option<String> = None;
    while !*done.borrow() {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            _ = done.changed() => break,
        }
        if blocked.is_some() || retry_at.is_some_and(|t| Instant::now() < t) {
            continue;
        }
        if rest_until.is_some_and(|t| Instant::now() < t) {
            continue;
        }
        let pending = shipper.spool.pending_bytes(&shipper.state);
        let due = !shipper.state.created
            || (pending > 0 && (last_ship.elapsed() >= SHIP_EVERY || pending >= SHIP_BYTES));
        if !due {
            continue;
        }
        let started = Instant::now();
        match shipper.ship(Drain::Live).await {
            Ok(_) => {
                created.store(true, Ordering::SeqCst);
                last_ship = Instant::now();
                rest_until = Some(last_ship + started.elapsed() * SHIP_REST);
                retry_at = None;
                failures = 0;
                if outage {
                    outage = false;
                    printer.info("wanllmdb: the server is back; shipping resumed");
                }
            }
            Err(e) if e.transient() => {
                failures += 1;
                retry_at = Some(Instant::now() + backoff(failures));
                if !outage {
                    outage = true;
                    printer.warn(format!(
                        "{e}; the run goes on, and its data waits in the spool until the server is back"
                    ));
                }
            }
            Err(e) => {
                printer.warn(format!(
                    "the server refused data of run {}: {e}; it stays in the spool",
                    shipper.run_id()
                ));
                blocked = Some(e.to_string());
            }
        }
    }
    let outcome = match blocked {
        Some(why) => ShipOutcome::Left(why),
        None => final_drain(&mut shipper, &created, sync_timeout).await,
    };
    if shipper.malformed_lines() > 10 {
        printer.warn(format!(
            "{} lines of the metrics file were not JSON objects and were skipped",
            shipper.malformed_lines()
        ));
    }
    outcome
}

async fn final_drain(
    shipper: &mut Shipper,
    created: &AtomicBool,
    sync_timeout: Duration,
) -> ShipOutcome {
    let deadline = Instant::now() + sync_timeout;
    let mut failures = 0;
    loop {
        let result = async {
            shipper.ship(Drain::Final).await?;
            created.store(true, Ordering::SeqCst);
            let exit = shipper
                .spool
                .exit()
                .ok()
                .flatten()
                .unwrap_or(FinishRunRequest {
                    state: RunState::Crashed,
                    exit_code: None,
                    reason: None,
                    finished_at: None,
                });
            shipper.finish(&exit).await
        }
        .await;
        match result {
            Ok(()) => return ShipOutcome::Done,
            Err(e) if e.transient() && Instant::now() < deadline => {
                failures += 1;
                tokio::time::sleep(backoff(failures).min(deadline - Instant::now())).await;
            }
            Err(e) => return ShipOutcome::Left(e.to_string()),
        }
    }
}

/// Samples the program's process tree and the machine until aborted.
async fn sample_system(pid: u32, file: std::path::PathBuf) {
    let mut sampler = system::SystemSampler::new(pid, &file);
    let mut tick = tokio::time::interval(system::interval());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = sampler.sample().await {
            tracing::debug!("system metrics not recorded: {e}");
        }
    }
}

fn backoff(failures: u32) -> Duration {
    Duration::from_millis((250u64 << failures.min(5)).min(5_000))
}

/// The run's final state and the exit code to leave with.
fn outcome(status: ExitStatus, stopped: bool) -> (RunState, i32) {
    use std::os::unix::process::ExitStatusExt;
    if let Some(sig) = status.signal() {
        return (RunState::Killed, 128 + sig);
    }
    match status.code() {
        Some(0) => (RunState::Finished, 0),
        Some(c) if stopped => (RunState::Killed, c),
        Some(c) => (RunState::Crashed, c),
        None => (RunState::Crashed, 1),
    }
}

/// A fresh run id: 8 characters of a-z and 0-9.
pub fn new_run_id() -> RunId {
    use rand::Rng;
    RunId::from_number(rand::rng().random_range(0..RunId::SPACE))
}

/// The command line as a shell would show it.
fn shell_join(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_are_valid() {
        for _ in 0..100 {
            assert!(wanllmdb_api_types::is_valid_run_id(&new_run_id()));
        }
    }

    #[test]
    fn command_lines_are_quoted_like_a_shell() {
        let args: Vec<String> = ["python", "train.py", "--name", "a b", "it's"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            shell_join(&args),
            r#"python train.py --name 'a b' 'it'\''s'"#
        );
    }

    #[test]
    fn exit_statuses_map_to_states() {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            outcome(ExitStatus::from_raw(0), false),
            (RunState::Finished, 0)
        );
        assert_eq!(
            outcome(ExitStatus::from_raw(3 << 8), false),
            (RunState::Crashed, 3)
        );
        assert_eq!(
            outcome(ExitStatus::from_raw(15), false),
            (RunState::Killed, 143)
        );
        assert_eq!(
            outcome(ExitStatus::from_raw(1 << 8), true),
            (RunState::Killed, 1)
        );
    }
}
