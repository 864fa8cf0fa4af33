//! `wanllmdb`: the command line of the wanLLMDB experiment tracker.

mod cache;
mod client;
mod commands;
mod config;
mod env;
mod error;
mod metrics_line;
mod output;
mod spool;
mod transfer;
mod wrapper;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::config::GlobalFlags;
use crate::error::{CliError, EXIT_UNEXPECTED};
use crate::output::Printer;

/// Self-hosted machine-learning experiment tracking: runs, metrics, logs and more.
#[derive(Debug, Parser)]
#[command(
    name = "wanllmdb",
    version,
    about,
    long_about = None,
    propagate_version = true,
    after_help = "\
Get started:
  wanllmdb server                              # start a server (SQLite + local files)
  wanllmdb login --host http://127.0.0.1:8000  # store an API key for it
  wanllmdb init --project mnist                # remember the project for this directory
  wanllmdb run -- python train.py              # track a training run

Exit codes: 0 success, 1 bad input / not found / refused, 2 unexpected failure;
`wanllmdb run` exits with the wrapped program's code."
)]
pub(crate) struct Cli {
    /// Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]
    #[arg(long, global = true, env = env::BASE_URL, value_name = "URL", hide_env_values = true)]
    host: Option<String>,
    /// API key [default: the one stored by `wanllmdb login`]
    #[arg(long, global = true, env = env::API_KEY, value_name = "KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Project [default: from ./.wanllmdb.toml]
    #[arg(long, global = true, env = env::PROJECT, value_name = "NAME", hide_env_values = true)]
    project: Option<String>,
    /// Print only data and errors
    #[arg(short, long, global = true)]
    quiet: bool,
    /// Print more about what happens
    #[arg(short, long, global = true)]
    verbose: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the tracking server (SQLite + local files by default, or PostgreSQL)
    Server(commands::server::ServerArgs),
    /// Store an API key for a server (checked against it first)
    Login(commands::auth::LoginArgs),
    /// Forget the stored API key for a server
    Logout,
    /// Show who the stored key belongs to, and where it came from
    Whoami(commands::JsonFlag),
    /// Manage your account: change your password, print the stored API key
    #[command(subcommand)]
    Auth(commands::auth::AuthCommand),
    /// Write ./.wanllmdb.toml (project, host) and create the project if missing
    Init(commands::init::InitArgs),
    /// Create, list, show and delete projects; manage members
    #[command(subcommand)]
    Project(commands::project::ProjectCommand),
    /// Track a program: wanllmdb run [OPTIONS] -- CMD [ARGS]…
    Run(wrapper::RunArgs),
    /// Log metrics (KEY=VALUE… or JSON lines on stdin) or a message to a run
    Log(commands::log::LogArgs),
    /// Upload spooled runs (offline runs, or what an outage left behind)
    Sync(commands::sync::SyncArgs),
    /// Bring history in from other trackers: an MLflow server, TensorBoard event files
    #[command(subcommand)]
    Import(commands::import::ImportCommand),
    /// Send history to other trackers: a project to an MLflow server
    #[command(subcommand)]
    Export(commands::import::ExportCommand),
    /// List, inspect, compare and change runs
    #[command(subcommand)]
    Runs(commands::runs::RunsCommand),
    /// Print or follow a run's output
    Logs(commands::logs::LogsArgs),
    /// Print the web page of a run or project, and open it on a desktop
    Open(commands::open::OpenArgs),
    /// Attach files to a run, list them, download them
    #[command(subcommand)]
    Files(commands::files::FilesCommand),
    /// Version datasets, models and code: put, get, list, alias, reference, lineage
    #[command(subcommand)]
    Artifact(commands::artifact::ArtifactCommand),
    /// The local download cache: its size and limit; prune the least recently used content
    #[command(
        subcommand,
        after_help = "\
`artifact get` and `model download` keep what they fetch in the local cache (by content, in
$WANLLMDB_CACHE_DIR, default ~/.cache/wanllmdb), so the same content is copied from disk next
time. After each download the least recently used content beyond the limit is removed; set
the limit with --cache-max-size on those commands, WANLLMDB_CACHE_MAX_SIZE or cache_max_size
in the user config.toml.

Examples:
  wanllmdb cache info            # where it is, how much it holds, the limit
  wanllmdb cache prune --dry-run # what pruning to the limit would remove"
    )]
    Cache(commands::cache::CacheCommand),
    /// Hyperparameter sweeps (W&B-format configs): create, run agents, inspect, control
    #[command(subcommand)]
    Sweep(commands::sweep::SweepCommand),
    /// Model registry: register models, version them, stage, approve, alias, download
    #[command(subcommand)]
    Model(commands::model::ModelCommand),
    /// Server administration (administrators only)
    #[command(subcommand)]
    Admin(commands::admin::AdminCommand),
    /// Read the audit log: events, failed logins, statistics (administrators only)
    #[command(subcommand)]
    Audit(commands::audit::AuditCommand),
    /// Print shell completions (bash, zsh, fish, elvish, powershell)
    Completions(commands::completions::CompletionsArgs),
    /// Run a program under a guard that stops it when the wrapper dies (the wrapper uses this)
    #[command(hide = true, name = wrapper::guard::SUBCOMMAND)]
    GuardProgram(wrapper::guard::GuardArgs),
    /// Write completions/ and man/ into a directory (used to refresh the repository's copies)
    #[command(hide = true)]
    GenerateDocs {
        /// Directory to write into
        dir: std::path::PathBuf,
    },
}

/// Log lines go to stderr: for the server one per request and its events, as text or JSON;
/// colour only on a terminal (and not with `NO_COLOR`).
fn init_logging(server: Option<commands::server::LogFormat>) {
    use std::io::IsTerminal;
    let default = if server.is_some() {
        "warn,wanllmdb_server=info"
    } else {
        "error"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env(env::LOG)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal() && !no_color);
    if server == Some(commands::server::LogFormat::Json) {
        builder.json().flatten_event(true).init();
    } else {
        builder.init();
    }
}

/// Global options that mean something only to a client, hidden where a command is not one.
const CLIENT_OPTIONS: [&str; 3] = ["host", "api_key", "project"];
/// Commands that talk to no server.
const NOT_CLIENTS: [&str; 5] = [
    "server",
    "cache",
    "completions",
    "generate-docs",
    wrapper::guard::SUBCOMMAND,
];

/// The command line as parsed, shown in `--help` and written to completions and man pages:
/// the derived one, without client options in the help of commands that are not clients.
pub(crate) fn command() -> clap::Command {
    let mut cmd = Cli::command();
    // Global options reach each subcommand that has no option of the same name when the
    // command is built: give those commands hidden copies first.
    let hidden: Vec<clap::Arg> = cmd
        .get_arguments()
        .filter(|a| CLIENT_OPTIONS.contains(&a.get_id().as_str()))
        .map(|a| a.clone().hide(true))
        .collect();
    for name in NOT_CLIENTS {
        cmd = cmd.mut_subcommand(name, |sub| sub.args(hidden.iter().cloned()));
    }
    cmd
}

/// A hint for `wanllmdb run python train.py`: the program goes after `--`.
fn run_separator_hint(args: &[String]) -> Option<String> {
    let at = args.iter().position(|a| a == "run")?;
    let rest = &args[at + 1..];
    if rest.is_empty() || rest.iter().any(|a| a == "--") {
        return None;
    }
    let first = rest.iter().position(|a| !a.starts_with('-'))?;
    Some(format!(
        "put `--` before the program: wanllmdb run {}-- {}",
        rest[..first]
            .iter()
            .map(|a| format!("{a} "))
            .collect::<String>(),
        rest[first..].join(" ")
    ))
}

/// Parses the command line; a usage error is printed with clap's exit code.
fn parse() -> Result<Cli, ExitCode> {
    let args: Vec<String> = std::env::args().collect();
    let parsed = command()
        .try_get_matches_from(&args)
        .and_then(|mut m| Cli::from_arg_matches_mut(&mut m));
    parsed.map_err(|e| {
        let code = e.exit_code();
        let _ = e.print();
        if e.use_stderr()
            && let Some(h) = run_separator_hint(&args)
        {
            eprintln!("hint: {h}");
        }
        ExitCode::from(u8::try_from(code).unwrap_or(EXIT_UNEXPECTED))
    })
}

fn main() -> ExitCode {
    let cli = match parse() {
        Ok(c) => c,
        Err(code) => return code,
    };
    if let Command::GuardProgram(args) = cli.command {
        // Before any thread starts: the guard blocks signals for itself.
        return ExitCode::from(wrapper::guard::run(args));
    }
    // Tables show local times; the offset can be read safely only while one thread runs.
    output::init_local_offset();
    let is_server = matches!(cli.command, Command::Server(_));
    init_logging(match &cli.command {
        Command::Server(args) => Some(args.log_format.unwrap_or(commands::server::LogFormat::Text)),
        _ => None,
    });
    let printer = Printer::new(cli.quiet, cli.verbose);
    // TLS for https servers uses ring, the provider already in the tree for PostgreSQL.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if !is_server {
        // A client is mostly waiting; one worker keeps the wrapper off the training
        // program's cores.
        builder.worker_threads(1);
    }
    let runtime = match builder.enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_UNEXPECTED);
        }
    };
    let flags = GlobalFlags {
        host: cli.host.clone(),
        api_key: cli.api_key.clone(),
        project: cli.project.clone(),
    };
    let result = runtime.block_on(dispatch(cli.command, flags, printer));
    // Do not wait for blocking tasks (a hung keyring lookup) on the way out.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            printer.error(&e);
            ExitCode::from(e.exit_code())
        }
    }
}

async fn dispatch(command: Command, flags: GlobalFlags, printer: Printer) -> Result<u8, CliError> {
    let ok = |r: Result<(), CliError>| r.map(|()| 0u8);
    match command {
        // The server's start-up errors are configuration problems: exit 1.
        Command::Server(args) => ok(commands::server::run(args)
            .await
            .map_err(|e| CliError::user(format!("{e:#}")))),
        Command::Login(args) => ok(commands::auth::login(args, &flags, printer).await),
        Command::Logout => ok(commands::auth::logout(&flags, printer).await),
        Command::Whoami(j) => ok(commands::auth::whoami(&flags, printer.with_json(j.json)).await),
        Command::Auth(c) => ok(commands::auth::run(c, &flags, printer).await),
        Command::Init(args) => ok(commands::init::init(args, &flags, printer).await),
        Command::Project(c) => ok(commands::project::run(c, &flags, printer).await),
        Command::Run(args) => wrapper::run(args, &flags, printer).await,
        Command::Log(args) => ok(commands::log::log(args, &flags, printer).await),
        Command::Sync(args) => ok(commands::sync::sync(args, &flags, printer).await),
        Command::Import(commands::import::ImportCommand::Tensorboard(args)) => {
            ok(commands::import::tensorboard::import(args, &flags, printer).await)
        }
        Command::Import(commands::import::ImportCommand::Mlflow(args)) => {
            ok(commands::import::mlflow::import(args, &flags, printer).await)
        }
        Command::Export(commands::import::ExportCommand::Mlflow(args)) => {
            ok(commands::import::mlflow::export(args, &flags, printer).await)
        }
        Command::Runs(c) => ok(commands::runs::run(c, &flags, printer).await),
        Command::Logs(args) => ok(commands::logs::logs(args, &flags, printer).await),
        Command::Open(args) => ok(commands::open::open(args, &flags, printer).await),
        Command::Files(c) => ok(commands::files::run(c, &flags, printer).await),
        Command::Artifact(c) => ok(commands::artifact::run(c, &flags, printer).await),
        Command::Cache(c) => ok(commands::cache::run(c, printer).await),
        Command::Sweep(c) => commands::sweep::run(c, &flags, printer).await,
        Command::Model(c) => ok(commands::model::run(c, &flags, printer).await),
        Command::Admin(c) => ok(commands::admin::run(c, &flags, printer).await),
        Command::Audit(c) => ok(commands::audit::run(c, &flags, printer).await),
        Command::Completions(args) => ok(commands::completions::completions(args)),
        Command::GuardProgram(_) => Err(CliError::unexpected("the guard runs before dispatch")),
        Command::GenerateDocs { dir } => {
            ok(commands::completions::generate_docs(&dir).map_err(CliError::from))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn a_program_without_the_separator_gets_a_hint() {
        assert_eq!(
            run_separator_hint(&args("wanllmdb run python train.py --lr 3")).as_deref(),
            Some("put `--` before the program: wanllmdb run -- python train.py --lr 3")
        );
        assert_eq!(
            run_separator_hint(&args("wanllmdb run --offline python train.py")).as_deref(),
            Some("put `--` before the program: wanllmdb run --offline -- python train.py")
        );
        assert_eq!(
            run_separator_hint(&args("wanllmdb run -- python x.py")),
            None
        );
        assert_eq!(run_separator_hint(&args("wanllmdb runs list")), None);
    }

    #[test]
    fn the_server_help_shows_no_client_options() {
        let mut cmd = command();
        cmd.build();
        let server = cmd.find_subcommand_mut("server").unwrap();
        let help = server.render_long_help().to_string();
        for opt in ["--host", "--api-key", "--project"] {
            assert!(!help.contains(opt), "{opt} in:\n{help}");
        }
        assert!(help.contains("--data-dir"));
        let list = cmd
            .find_subcommand_mut("runs")
            .unwrap()
            .find_subcommand_mut("list")
            .unwrap();
        assert!(list.render_long_help().to_string().contains("--project"));
    }
}
