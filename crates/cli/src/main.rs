//! `wanllmdb`: the command line of the wanLLMDB experiment tracker.

mod commands;
mod env;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Self-hosted machine-learning experiment tracking: runs, metrics, logs and more.
#[derive(Debug, Parser)]
#[command(name = "wanllmdb", version, about, long_about = None, propagate_version = true)]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the tracking server (SQLite + local files by default, or PostgreSQL)
    Server(commands::server::ServerArgs),
    /// Print shell completions (bash, zsh, fish, elvish, powershell)
    Completions(commands::completions::CompletionsArgs),
    /// Write completions/ and man/ into a directory (used to refresh the repository's copies)
    #[command(hide = true)]
    GenerateDocs {
        /// Directory to write into
        dir: std::path::PathBuf,
    },
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env(env::LOG)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,wanllmdb_server=info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Server(args) => commands::server::run(args).await,
            Command::Completions(args) => commands::completions::completions(args),
            Command::GenerateDocs { dir } => commands::completions::generate_docs(&dir),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
