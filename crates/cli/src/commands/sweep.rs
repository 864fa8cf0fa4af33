//! `wanllmdb sweep …`: hyperparameter sweeps from W&B-format configs, and the agent that
//! runs their trials.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Subcommand;
use serde_json::{Map, Value};
use tokio::sync::watch;
use wanllmdb_api_types::sweeps::{
    AgentCommand, AgentHeartbeat, AgentHeartbeatResponse, AgentRegistered, CommandContext,
    CreateSweepRequest, DeletedSweep, RegisterAgentRequest, RetryFailed, Suggestion, Sweep,
    SweepAnalysis, SweepConfig, Trial, build_command, config_warnings, parse_sweep_config,
};

use crate::client::{Api, seg};
use crate::commands::JsonFlag;
use crate::config::{GlobalFlags, Settings};
use crate::env;
use crate::error::{CliError, CliResult, user_err};
use crate::output::{Printer, kv_table, table};
use crate::spool::spool_root;
use crate::wrapper::{self, RunArgs, Supervisor};

/// How many first runs failing fast make the agent give up.
const FLAP_RUNS: usize = 3;
/// A run that fails sooner than this counts as failing fast.
const FLAP_SECS: u64 = 60;
/// Output lines shown when the agent gives up.
const FLAP_LINES: usize = 20;

/// `wanllmdb sweep` subcommands.
#[derive(Debug, Subcommand)]
pub enum SweepCommand {
    /// Create a sweep from a YAML or JSON config (W&B's sweep format)
    #[command(after_help = "\
The config is W&B's sweep format, unchanged: method (grid, random, bayes), metric {name,
goal, target}, parameters (values, value, distributions, nested parameters), early_terminate
(hyperband), run_cap, program and command. Bayesian search takes extra options under
optuna_config: n_startup_trials, n_ei_candidates, multivariate, constant_liar, seed.

Example sweep.yaml:
  program: train.py
  method: bayes
  metric: {name: val_loss, goal: minimize}
  parameters:
    lr: {distribution: log_uniform_values, min: 0.0001, max: 0.1}
    batch_size: {values: [32, 64, 128]}
  early_terminate: {type: hyperband, min_iter: 3}

Then start agents (on as many machines as you like):
  wanllmdb sweep agent SWEEP_ID")]
    Create {
        /// The config file (.yaml, .yml or .json)
        config: PathBuf,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Check a config without creating anything; lists every problem with its path
    Validate {
        /// The config file (.yaml, .yml or .json)
        config: PathBuf,
    },
    /// List the sweeps of the project
    #[command(alias = "ls")]
    List {
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Show a sweep: state, counts, best run, top runs, parameter importance
    #[command(after_help = "\
--json adds the analysis: trials ranked by the metric, parameter importance and the axes and
lines of a parallel-coordinates view.")]
    Show {
        /// Sweep id
        id: String,
        /// Rows of the top-runs table
        #[arg(long, default_value_t = 10)]
        top: usize,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// List every trial of a sweep with its parameters and value
    Trials {
        /// Sweep id
        id: String,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Manual mode: reserve the next parameters and a run id to start yourself
    #[command(after_help = "\
Prints the parameters and the reserved run id; start the run with them, e.g.
  wanllmdb sweep suggest ID --write params.json
  wanllmdb run --id RUN_ID --config params.json -- python train.py")]
    Suggest {
        /// Sweep id
        id: String,
        /// Also write the (nested) parameters to this JSON file
        #[arg(long, value_name = "FILE")]
        write: Option<PathBuf>,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Stop handing out new runs; running ones go on
    Pause {
        /// Sweep id
        id: String,
    },
    /// Hand out runs again after a pause
    Resume {
        /// Sweep id
        id: String,
    },
    /// End the sweep: no new runs; running ones finish
    Finish {
        /// Sweep id
        id: String,
    },
    /// End the sweep and stop its running runs
    Cancel {
        /// Sweep id
        id: String,
    },
    /// Delete a sweep; its runs stay as ordinary runs (their notes say which sweep they came from)
    #[command(after_help = "\
The sweep's trials and agents are deleted; every run it started is kept, detached, with a
note. Agents still running for it stop at their next request.

Example:
  wanllmdb sweep delete k3x9q2ab --yes")]
    Delete {
        /// Sweep id
        id: String,
        /// Do not ask for confirmation
        #[arg(long, short)]
        yes: bool,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Queue every crashed run to be tried again with the same parameters
    RetryFailed {
        /// Sweep id
        id: String,
    },
    /// Run trials of a sweep here until it is done (or --count runs)
    #[command(after_help = "\
The agent asks the server for parameters, runs the sweep's command with them under the run
wrapper (so the program logs exactly as under `wanllmdb run`), and repeats. The program gets
the parameters as command-line arguments (per the config's `command` macros), as JSON in
WANLLMDB_SWEEP_PARAMS, and in the file named by WANLLMDB_SWEEP_PARAMS_FILE.

A run the sweep stops early (Hyperband, or a canceled sweep) gets SIGTERM, then SIGKILL after
--grace seconds. If the first runs all fail within a minute, the agent stops and shows the
failing command and its last output lines instead of burning through the sweep.

Examples:
  wanllmdb sweep agent k3x9q2ab
  wanllmdb sweep agent k3x9q2ab --count 5 --grace 60")]
    Agent {
        /// Sweep id
        id: String,
        /// Run at most this many trials, then exit
        #[arg(long)]
        count: Option<u64>,
        /// Seconds between SIGTERM and SIGKILL when a run is stopped
        #[arg(long, default_value_t = 30, value_name = "SECONDS")]
        grace: u64,
        /// Record no system/… metrics for the runs (CPU, memory, GPUs every 15 s)
        #[arg(long, env = env::NO_SYSTEM_METRICS, hide_env_values = true)]
        no_system_metrics: bool,
    },
}

/// Runs a `sweep` subcommand.
pub async fn run(cmd: SweepCommand, flags: &GlobalFlags, printer: Printer) -> CliResult<u8> {
    if let SweepCommand::Validate { config } = &cmd {
        return validate(config, printer).map(|_| 0);
    }
    let settings = Settings::resolve(flags).await?;
    let api = Api::new(&settings)?;
    let path = |id: &str, rest: &str| format!("/api/v1/sweeps/{}{rest}", seg(id));
    match cmd {
        SweepCommand::Validate { .. } => Ok(0),
        SweepCommand::Create { config, json } => {
            create(&api, &settings, &config, printer.with_json(json)).await?;
            Ok(0)
        }
        SweepCommand::List { json } => {
            let project = settings.require_project()?;
            let sweeps: Vec<Sweep> = api
                .get(&format!("/api/v1/projects/{}/sweeps", seg(&project)), &[])
                .await?;
            printer
                .with_json(json)
                .data(&sweeps, || sweeps_table(&sweeps))?;
            Ok(0)
        }
        SweepCommand::Show { id, top, json } => {
            let sweep: Sweep = api.get(&path(&id, ""), &[]).await?;
            let analysis: SweepAnalysis = api.get(&path(&id, "/analysis"), &[]).await?;
            show(&sweep, &analysis, top, printer.with_json(json))?;
            Ok(0)
        }
        SweepCommand::Trials { id, json } => {
            let trials: Vec<Trial> = api.get(&path(&id, "/trials"), &[]).await?;
            printer
                .with_json(json)
                .data(&trials, || trials_table(&trials))?;
            Ok(0)
        }
        SweepCommand::Suggest { id, write, json } => {
            let s: Suggestion = api
                .post(&path(&id, "/suggest"), &serde_json::json!({}))
                .await?;
            suggested(&s, write.as_deref(), printer.with_json(json))?;
            Ok(0)
        }
        SweepCommand::Pause { id } => change(&api, &id, "pause", printer).await,
        SweepCommand::Resume { id } => change(&api, &id, "resume", printer).await,
        SweepCommand::Finish { id } => change(&api, &id, "finish", printer).await,
        SweepCommand::Cancel { id } => change(&api, &id, "cancel", printer).await,
        SweepCommand::Delete { id, yes, json } => {
            if !yes && !crate::output::confirm(&format!("Delete sweep {id}? Its runs are kept."))? {
                return Err(user_err!("not deleted"));
            }
            let d: DeletedSweep = api.delete_json(&path(&id, "")).await?;
            printer.with_json(json).data(&d, || {
                kv_table(&[
                    ("deleted sweep", d.id.clone()),
                    ("runs kept", d.detached_runs.len().to_string()),
                ])
            })?;
            Ok(0)
        }
        SweepCommand::RetryFailed { id } => {
            let r: RetryFailed = api
                .post(&path(&id, "/retry-failed"), &serde_json::json!({}))
                .await?;
            printer.success(format!(
                "{} failed run(s) queued to run again in sweep {id}",
                r.queued
            ));
            Ok(0)
        }
        SweepCommand::Agent {
            id,
            count,
            grace,
            no_system_metrics,
        } => {
            let agent = Agent {
                api,
                settings,
                flags: flags.clone(),
                printer,
                sweep_id: id,
                grace: Duration::from_secs(grace),
                no_system_metrics,
            };
            agent.run(count).await
        }
    }
}

/// Reads a YAML or JSON config file.
fn read_config(path: &Path) -> CliResult<Value> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| user_err!("cannot read {}: {e}", path.display()))?;
    let is_json = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    if is_json {
        serde_json::from_str(&text)
            .map_err(|e| user_err!("{} is not valid JSON: {e}", path.display()))
    } else {
        serde_yaml::from_str(&text)
            .map_err(|e| user_err!("{} is not valid YAML: {e}", path.display()))
    }
}

/// Parses and validates a config file, listing every problem.
fn load_config(path: &Path) -> CliResult<(Value, SweepConfig)> {
    let raw = read_config(path)?;
    match parse_sweep_config(&raw) {
        Ok(cfg) => Ok((raw, cfg)),
        Err(problems) => {
            let list: Vec<String> = problems.iter().map(|p| format!("  {p}")).collect();
            Err(user_err!(
                "{} has {} problem(s):\n{}",
                path.display(),
                problems.len(),
                list.join("\n")
            )
            .hint("the format is W&B's sweep configuration; see `wanllmdb sweep create --help`"))
        }
    }
}

fn validate(path: &Path, printer: Printer) -> CliResult {
    let (_, cfg) = load_config(path)?;
    for w in config_warnings(&cfg) {
        printer.warn(w);
    }
    let leaves = cfg.flat_params().len();
    let grid = cfg
        .grid_size()
        .map(|n| format!(", {n} grid points"))
        .unwrap_or_default();
    printer.success(format!(
        "{} is a valid {:?} sweep: {leaves} parameter(s){grid}",
        path.display(),
        cfg.method
    ));
    Ok(())
}

async fn create(api: &Api, settings: &Settings, path: &Path, printer: Printer) -> CliResult {
    let (raw, cfg) = load_config(path)?;
    let project = match (&settings.project, &cfg.project) {
        (Some(p), _) | (None, Some(p)) => crate::commands::valid_project_name(p)?,
        (None, None) => settings.require_project()?,
    };
    let url = format!("/api/v1/projects/{}/sweeps", seg(&project));
    let req = CreateSweepRequest { config: raw };
    let sweep: Sweep = match api.post(&url, &req).await {
        Err(e) if e.is_missing_project() => {
            api.ensure_project(&project).await?;
            api.post(&url, &req).await?
        }
        other => other?,
    };
    for w in &sweep.warnings {
        printer.warn(w);
    }
    if printer.quiet && !printer.json {
        // `-q` is for scripts: `SWEEP=$(wanllmdb sweep create -q sweep.yaml)`.
        return crate::output::outln!("{}", sweep.id);
    }
    printer.data(&sweep, || {
        kv_table(&[
            ("sweep", sweep.id.clone()),
            ("project", sweep.project.to_string()),
            ("method", sweep.method.clone()),
            (
                "grid points",
                sweep.grid_size.map(|n| n.to_string()).unwrap_or("-".into()),
            ),
        ])
    })?;
    printer.info(format!(
        "start agents with: wanllmdb sweep agent {}",
        sweep.id
    ));
    Ok(())
}

async fn change(api: &Api, id: &str, action: &str, printer: Printer) -> CliResult<u8> {
    let sweep: Sweep = api
        .post(
            &format!("/api/v1/sweeps/{}/{action}", seg(id)),
            &serde_json::json!({}),
        )
        .await?;
    printer.success(format!("sweep {id} is {}", sweep.state.as_str()));
    Ok(0)
}

fn value_cell(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.6}")).unwrap_or_else(|| "-".into())
}

fn params_cell(p: &Map<String, Value>) -> String {
    p.iter()
        .map(|(k, v)| format!("{k}={}", compact(v)))
        .collect::<Vec<_>>()
        .join(" ")
}

fn compact(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() => format!("{f:.6}")
                .trim_end_matches('0')
                .trim_end_matches('.')
                .to_string(),
            _ => n.to_string(),
        },
        other => other.to_string(),
    }
}

fn sweeps_table(sweeps: &[Sweep]) -> comfy_table::Table {
    let mut t = table(&["id", "name", "method", "state", "runs", "best", "created"]);
    for s in sweeps {
        let c = &s.counts;
        let total = c.pending + c.running + c.finished + c.crashed + c.killed;
        t.add_row(vec![
            s.id.clone(),
            s.name.clone(),
            s.method.clone(),
            s.state.as_str().to_string(),
            format!("{} ({} running)", total, c.running),
            value_cell(s.best.as_ref().and_then(|b| b.value)),
            crate::output::when(&s.created_at),
        ]);
    }
    t
}

fn trials_table(trials: &[Trial]) -> comfy_table::Table {
    let mut t = table(&["#", "run", "state", "value", "iterations", "params", "note"]);
    for tr in trials {
        let note = match (&tr.stop_reason, tr.retry_of) {
            (Some(r), _) => r.clone(),
            (None, Some(n)) => format!("retry of #{n}"),
            _ => String::new(),
        };
        t.add_row(vec![
            tr.number.to_string(),
            tr.run_id.to_string(),
            format!("{:?}", tr.state).to_lowercase(),
            value_cell(tr.value),
            tr.iterations.to_string(),
            params_cell(&tr.params),
            note,
        ]);
    }
    t
}

fn show(sweep: &Sweep, analysis: &SweepAnalysis, top: usize, printer: Printer) -> CliResult {
    let both = serde_json::json!({ "sweep": sweep, "analysis": analysis });
    printer.data(&both, || {
        let c = &sweep.counts;
        let mut rows = vec![
            ("sweep", sweep.id.clone()),
            ("name", sweep.name.clone()),
            ("project", sweep.project.to_string()),
            ("method", sweep.method.clone()),
            (
                "state",
                match &sweep.finish_reason {
                    Some(r) => format!("{} ({r})", sweep.state.as_str()),
                    None => sweep.state.as_str().to_string(),
                },
            ),
            (
                "runs",
                format!(
                    "{} running, {} finished, {} crashed, {} stopped, {} pending",
                    c.running, c.finished, c.crashed, c.killed, c.pending
                ),
            ),
        ];
        if let Some(n) = sweep.grid_size {
            rows.push(("grid points", n.to_string()));
        }
        if let (Some(m), Some(b)) = (&analysis.metric, &sweep.best) {
            rows.push((
                "best",
                format!("{m} = {} (run {})", value_cell(b.value), b.run_id),
            ));
        }
        let live = sweep.agents.iter().filter(|a| a.state == "running").count();
        rows.push((
            "agents",
            format!("{live} running, {} in all", sweep.agents.len()),
        ));
        let mut out = kv_table(&rows).to_string();
        if !analysis.top.is_empty() {
            let shown: Vec<Trial> = analysis.top.iter().take(top).cloned().collect();
            out.push_str(&format!("\n\ntop runs\n{}", trials_table(&shown)));
        }
        if !analysis.importance.is_empty() {
            let mut t = table(&["parameter", "importance", "correlation"]);
            for i in &analysis.importance {
                t.add_row(vec![
                    i.name.clone(),
                    format!("{:.3}", i.importance),
                    i.correlation
                        .map(|c| format!("{c:+.3}"))
                        .unwrap_or_else(|| "-".into()),
                ]);
            }
            out.push_str(&format!("\n\nparameter importance\n{t}"));
        }
        out
    })
}

fn suggested(s: &Suggestion, write: Option<&Path>, printer: Printer) -> CliResult {
    if let Some(path) = write {
        let text = serde_json::to_string_pretty(&s.config).unwrap_or_default();
        std::fs::write(path, text)
            .map_err(|e| user_err!("cannot write {}: {e}", path.display()))?;
    }
    printer.data(s, || {
        kv_table(&[
            ("run id", s.run_id.to_string()),
            ("trial", s.number.to_string()),
            ("project", s.project.to_string()),
            ("params", params_cell(&s.params)),
        ])
    })?;
    let config = write
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "PARAMS.json".into());
    printer.info(format!(
        "start it with: wanllmdb run --project {} --id {} --config {config} -- CMD",
        s.project, s.run_id
    ));
    Ok(())
}

/// A `sweep agent` process.
struct Agent {
    api: Api,
    settings: Settings,
    flags: GlobalFlags,
    printer: Printer,
    sweep_id: String,
    grace: Duration,
    no_system_metrics: bool,
}

/// Watches the first runs: if they all fail fast, the command is broken.
#[derive(Default)]
struct FlapGuard {
    failures: Vec<Outcome>,
    retired: bool,
}

impl FlapGuard {
    /// Records a run; returns the last failure once the first runs have all failed fast.
    fn record(&mut self, o: Outcome) -> Option<&Outcome> {
        if self.retired {
            return None;
        }
        if o.code == 0 || o.stopped || o.took >= Duration::from_secs(FLAP_SECS) {
            // One healthy run proves the command works.
            self.retired = true;
            self.failures.clear();
            return None;
        }
        self.failures.push(o);
        if self.failures.len() >= FLAP_RUNS {
            self.failures.last()
        } else {
            None
        }
    }
}

/// How one trial went, for the flapping guard.
struct Outcome {
    code: u8,
    stopped: bool,
    took: Duration,
    command: Vec<String>,
    run_id: String,
}

impl Agent {
    fn url(&self, rest: &str) -> String {
        format!("/api/v1/sweeps/{}{rest}", seg(&self.sweep_id))
    }

    fn heartbeat_every() -> Duration {
        let secs = std::env::var(env::SWEEP_HEARTBEAT)
            .ok()
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|s| *s > 0.0)
            .unwrap_or(5.0);
        Duration::from_secs_f64(secs)
    }

    async fn run(self, count: Option<u64>) -> CliResult<u8> {
        let req = RegisterAgentRequest {
            host: wrapper::context::host_name(),
            pid: Some(std::process::id()),
        };
        let reg: AgentRegistered = self.api.post(&self.url("/agents"), &req).await?;
        let cfg = parse_sweep_config(&reg.sweep.config).map_err(|_| {
            CliError::unexpected(format!(
                "the server returned an invalid config for sweep {}",
                self.sweep_id
            ))
        })?;
        self.printer.info(format!(
            "wanllmdb: agent {} joined sweep {} ({}, project {})",
            reg.agent_id, self.sweep_id, reg.sweep.method, reg.sweep.project
        ));
        let result = self.work(&reg, &cfg, count).await;
        let _ = self
            .api
            .delete(&self.url(&format!("/agents/{}", seg(&reg.agent_id))))
            .await;
        result
    }

    async fn work(
        &self,
        reg: &AgentRegistered,
        cfg: &SweepConfig,
        count: Option<u64>,
    ) -> CliResult<u8> {
        let mut done = 0u64;
        let mut guard = FlapGuard::default();
        let interrupted = watch_interrupts()?;
        loop {
            if *interrupted.borrow() {
                self.printer.info("wanllmdb: interrupted; agent leaving");
                return Ok(130);
            }
            if count.is_some_and(|c| done >= c) {
                self.printer
                    .info(format!("wanllmdb: agent ran {done} run(s); leaving"));
                return Ok(0);
            }
            let hb = AgentHeartbeat {
                running: Vec::new(),
                want_run: true,
            };
            let answer = self.heartbeat(&reg.agent_id, &hb).await?;
            let mut ran = false;
            for cmd in answer.commands {
                match cmd {
                    AgentCommand::Run(s) => {
                        let outcome = self
                            .trial(&reg.agent_id, cfg, &reg.sweep.project, s)
                            .await?;
                        done += 1;
                        ran = true;
                        self.flapping_guard(&mut guard, outcome)?;
                    }
                    AgentCommand::Exit { reason } => {
                        self.printer
                            .info(format!("wanllmdb: {reason}; agent leaving"));
                        return Ok(0);
                    }
                    AgentCommand::Stop { .. } => {}
                }
            }
            if !ran {
                let mut interrupted = interrupted.clone();
                tokio::select! {
                    _ = tokio::time::sleep(Self::heartbeat_every()) => {}
                    _ = interrupted.wait_for(|i| *i) => {}
                }
            }
        }
    }

    async fn heartbeat(
        &self,
        agent: &str,
        hb: &AgentHeartbeat,
    ) -> CliResult<AgentHeartbeatResponse> {
        let url = self.url(&format!("/agents/{}/heartbeat", seg(agent)));
        let mut failures = 0u32;
        loop {
            match self.api.post(&url, hb).await {
                Ok(r) => return Ok(r),
                // A server restart or a network blip must not end a long sweep.
                Err(e) if e.transient() && failures < 60 => {
                    failures += 1;
                    self.printer.debug(format!("agent heartbeat failed: {e}"));
                    tokio::time::sleep(Self::heartbeat_every()).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Runs one trial under the wrapper while heartbeating, and stops it when told to.
    async fn trial(
        &self,
        agent: &str,
        cfg: &SweepConfig,
        project: &str,
        s: Suggestion,
    ) -> CliResult<Outcome> {
        let dir = spool_root(&self.settings)
            .join("sweeps")
            .join(&self.sweep_id);
        std::fs::create_dir_all(&dir)
            .map_err(|e| user_err!("cannot create {}: {e}", dir.display()))?;
        let params_file = std::path::absolute(dir.join(format!("{}.json", s.run_id)))
            .unwrap_or_else(|_| dir.join(format!("{}.json", s.run_id)));
        let params_json = Value::Object(s.config.clone()).to_string();
        std::fs::write(&params_file, &params_json)
            .map_err(|e| user_err!("cannot write {}: {e}", params_file.display()))?;
        let command = self.command(cfg, &s, &params_file)?;
        self.printer.info(format!(
            "wanllmdb: trial {} → run {}: {}",
            s.number,
            s.run_id,
            command.join(" ")
        ));
        let (stop_tx, stop_rx) = watch::channel(None::<String>);
        let supervisor = Supervisor {
            stop: stop_rx,
            grace: self.grace,
            env: vec![
                (env::SWEEP_ID.into(), self.sweep_id.clone()),
                (env::SWEEP_PARAMS.into(), params_json),
                (
                    env::SWEEP_PARAMS_FILE.into(),
                    params_file.display().to_string(),
                ),
            ],
        };
        let args = RunArgs {
            name: None,
            id: Some(s.run_id.to_string()),
            tags: Vec::new(),
            notes: None,
            group: Some(format!("sweep-{}", self.sweep_id)),
            job_type: Some("sweep".into()),
            config: vec![params_file.display().to_string()],
            scalars: None,
            offline: false,
            sync_timeout: 10,
            save: Vec::new(),
            no_system_metrics: self.no_system_metrics,
            command: command.clone(),
        };
        let mut flags = self.flags.clone();
        flags.project = Some(project.to_string());
        let started = Instant::now();
        let run = wrapper::run_supervised(args, &flags, self.printer, Some(supervisor));
        tokio::pin!(run);
        let mut stopped = false;
        let code = loop {
            tokio::select! {
                r = &mut run => break r?,
                _ = tokio::time::sleep(Self::heartbeat_every()) => {
                    let hb = AgentHeartbeat { running: vec![s.run_id.clone()], want_run: false };
                    let answer = match self.heartbeat(agent, &hb).await {
                        Ok(a) => a,
                        Err(e) => {
                            self.printer.warn(format!("agent heartbeat failed: {e}"));
                            continue;
                        }
                    };
                    for cmd in answer.commands {
                        if let AgentCommand::Stop { run_id, reason } = cmd
                            && run_id == s.run_id && !stopped {
                            stopped = true;
                            let _ = stop_tx.send(Some(reason));
                        }
                    }
                }
            }
        };
        Ok(Outcome {
            code,
            stopped,
            took: started.elapsed(),
            command,
            run_id: s.run_id.to_string(),
        })
    }

    /// The sweep's command with its macros filled in.
    fn command(
        &self,
        cfg: &SweepConfig,
        s: &Suggestion,
        params_file: &Path,
    ) -> CliResult<Vec<String>> {
        let lookup = |name: &str| std::env::var(name).ok();
        let file = params_file.display().to_string();
        let ctx = CommandContext {
            env: "/usr/bin/env",
            interpreter: interpreter(),
            args_json_file: &file,
            envvar: &lookup,
        };
        let cmd = build_command(cfg, &s.config, &ctx)
            .map_err(|e| user_err!("cannot build the sweep's command: {e}"))?;
        if cmd.is_empty() {
            return Err(user_err!("the sweep's command is empty")
                .hint("set `program` or `command` in the sweep config"));
        }
        Ok(cmd)
    }

    /// Stops the agent when its first runs all fail fast: the command is broken, and every
    /// further run would fail the same way.
    fn flapping_guard(&self, guard: &mut FlapGuard, o: Outcome) -> CliResult {
        let Some(last) = guard.record(o) else {
            return Ok(());
        };
        let tail = self.output_tail(&last.run_id);
        Err(user_err!(
            "the first {FLAP_RUNS} runs all failed within {FLAP_SECS} s (last exit code {}); the agent stops rather than burn through the sweep\ncommand: {}\nlast output of run {}:\n{}",
            last.code,
            last.command.join(" "),
            last.run_id,
            tail
        )
        .hint("fix the command or the program, then start the agent again"))
    }

    /// The last output lines of a run, from its spool.
    fn output_tail(&self, run_id: &str) -> String {
        let path = spool_root(&self.settings)
            .join("runs")
            .join(run_id)
            .join("output.jsonl");
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let mut lines: VecDeque<String> = VecDeque::new();
        for l in text.lines() {
            let msg = serde_json::from_str::<Value>(l)
                .ok()
                .and_then(|v| {
                    v.get("message")
                        .and_then(|m| m.as_str())
                        .map(str::to_string)
                })
                .unwrap_or_default();
            lines.push_back(format!("  {msg}"));
            if lines.len() > FLAP_LINES {
                lines.pop_front();
            }
        }
        if lines.is_empty() {
            "  (no output)".into()
        } else {
            Vec::from(lines).join("\n")
        }
    }
}

/// `python` when it is on PATH, else `python3` (many systems ship only the latter).
fn interpreter() -> &'static str {
    let on_path = |name: &str| {
        std::env::var_os("PATH")
            .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(name).is_file()))
    };
    if on_path("python") {
        "python"
    } else {
        "python3"
    }
}

/// Turns true on SIGINT or SIGTERM. The wrapper forwards the signal to a running program, and
/// the agent leaves once that run has ended instead of starting another.
fn watch_interrupts() -> CliResult<watch::Receiver<bool>> {
    let install = |kind| {
        tokio::signal::unix::signal(kind)
            .map_err(|e| CliError::unexpected(format!("cannot install a signal handler: {e}")))
    };
    let mut sigint = install(tokio::signal::unix::SignalKind::interrupt())?;
    let mut sigterm = install(tokio::signal::unix::SignalKind::terminate())?;
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        tokio::select! {
            _ = sigint.recv() => {}
            _ = sigterm.recv() => {}
        }
        let _ = tx.send(true);
    });
    Ok(rx)
}
