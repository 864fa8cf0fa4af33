//! `wanllmdb cache …`: the local download cache, its size and its limit; and the options
//! every downloading command shares.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use indicatif::HumanBytes;
use serde::Serialize;

use crate::cache::{Cache, Limit, Pruned};
use crate::commands::JsonFlag;
use crate::env;
use crate::error::{CliError, CliResult, user_err};
use crate::output::{Printer, kv_table};

/// How a downloading command uses the local cache.
#[derive(Debug, Clone, Args)]
pub struct CacheArgs {
    /// Download without keeping a copy in the local cache
    #[arg(long)]
    no_cache: bool,
    /// Most the local cache keeps; after the download the least recently used content goes:
    /// 20GiB, 500MB, 10% (of its disk), 0 or unlimited [default: `cache_max_size` in the user
    /// config, else 10% of the disk, at most 50 GiB]
    #[arg(long, value_name = "SIZE", env = env::CACHE_MAX_SIZE, hide_env_values = true)]
    cache_max_size: Option<String>,
}

impl CacheArgs {
    /// The cache this command keeps copies in, with its limit; `None` with `--no-cache` or
    /// where no cache directory is known.
    pub fn open(&self) -> CliResult<Option<Cache>> {
        if self.no_cache {
            return Ok(None);
        }
        let Some(cache) = Cache::open() else {
            return Ok(None);
        };
        let limit = Limit::resolve(cache.root(), self.cache_max_size.as_deref())?;
        Ok(Some(cache.limited(limit.max_bytes)))
    }
}

/// `wanllmdb cache` subcommands.
#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Show where the cache is, what it holds and its size limit
    #[command(after_help = "\
The limit is, first one set wins: --max-size (or WANLLMDB_CACHE_MAX_SIZE), cache_max_size in
the user config.toml, else 10% of the disk, at most 50 GiB. Sizes: 20GiB, 500MB, 2000000
(bytes), 10% (of the disk), 0 (keep nothing) or unlimited.

Examples:
  wanllmdb cache info
  wanllmdb cache info --max-size 10% --json   # the limit 10% of this disk gives")]
    Info {
        /// Show the limit this size would give instead of the configured one
        #[arg(long, value_name = "SIZE", env = env::CACHE_MAX_SIZE, hide_env_values = true)]
        max_size: Option<String>,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Remove the least recently used content until the cache is within its limit
    #[command(after_help = "\
Content is removed oldest use first; its next download fetches it again. Without --max-size
the configured limit applies (WANLLMDB_CACHE_MAX_SIZE, else cache_max_size in the user
config.toml, else 10% of the disk, at most 50 GiB). Temporary files left by interrupted
commands go too.

Examples:
  wanllmdb cache prune                     # down to the configured limit
  wanllmdb cache prune --max-size 5GiB --dry-run
  wanllmdb cache prune --all               # everything")]
    Prune {
        /// Keep at most this much: 20GiB, 500MB, 10% (of the disk) or 0
        #[arg(long, value_name = "SIZE", env = env::CACHE_MAX_SIZE, hide_env_values = true)]
        max_size: Option<String>,
        /// Remove every entry, whatever the limit
        #[arg(long)]
        all: bool,
        /// Only say what would be removed
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        json: JsonFlag,
    },
}

/// What `cache info` prints.
#[derive(Debug, Serialize)]
struct CacheInfo {
    /// The cache directory.
    dir: PathBuf,
    /// Pieces of content held.
    entries: u64,
    /// Their bytes.
    bytes: u64,
    /// The limit in effect.
    limit: Limit,
    /// Size of the file system holding the cache, when it can be read.
    disk_bytes: Option<u64>,
}

/// What `cache prune` prints.
#[derive(Debug, Serialize)]
struct PruneReport {
    /// The cache directory.
    dir: PathBuf,
    /// The most kept (0 with `--all`).
    max_bytes: u64,
    /// Whether nothing was removed, only counted.
    dry_run: bool,
    #[serde(flatten)]
    pruned: Pruned,
}

/// Runs a `cache` subcommand.
pub async fn run(cmd: CacheCommand, printer: Printer) -> CliResult {
    let cache = Cache::require()?;
    match cmd {
        CacheCommand::Info { max_size, json } => {
            info(cache, max_size, printer.with_json(json)).await
        }
        CacheCommand::Prune {
            max_size,
            all,
            dry_run,
            json,
        } => prune(cache, max_size, all, dry_run, printer.with_json(json)).await,
    }
}

fn show_limit(limit: &Limit) -> String {
    let bytes = limit
        .max_bytes
        .map_or_else(|| "no limit".to_string(), |b| HumanBytes(b).to_string());
    match limit.source {
        "default" => format!("{bytes} (default: {})", limit.setting),
        "config" => format!(
            "{bytes} (cache_max_size = {:?} in config.toml)",
            limit.setting
        ),
        _ => format!("{bytes} ({})", limit.setting),
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> CliResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| CliError::unexpected(format!("cache scan failed: {e}")))
}

async fn info(cache: Cache, max_size: Option<String>, printer: Printer) -> CliResult {
    let limit = Limit::resolve(cache.root(), max_size.as_deref())?;
    let root = cache.root().to_path_buf();
    let (entries, bytes) = blocking(move || cache.usage_blocking()).await?;
    let info = CacheInfo {
        disk_bytes: crate::cache::disk_size(&root),
        dir: root,
        entries,
        bytes,
        limit,
    };
    printer.data(&info, || {
        kv_table(&[
            ("directory", info.dir.display().to_string()),
            (
                "content",
                format!("{} entries, {}", info.entries, HumanBytes(info.bytes)),
            ),
            ("limit", show_limit(&info.limit)),
            (
                "disk",
                info.disk_bytes
                    .map_or_else(|| "unknown".into(), |b| HumanBytes(b).to_string()),
            ),
        ])
    })
}

async fn prune(
    cache: Cache,
    max_size: Option<String>,
    all: bool,
    dry_run: bool,
    printer: Printer,
) -> CliResult {
    let max_bytes = if all {
        0
    } else {
        let limit = Limit::resolve(cache.root(), max_size.as_deref())?;
        limit.max_bytes.ok_or_else(|| {
            user_err!(
                "the cache has no size limit ({}), so nothing is pruned",
                limit.setting
            )
            .hint("pass --max-size SIZE, or --all to empty it")
        })?
    };
    let root = cache.root().to_path_buf();
    let pruned = blocking(move || cache.prune_blocking(max_bytes, dry_run)).await?;
    let report = PruneReport {
        dir: root,
        max_bytes,
        dry_run,
        pruned,
    };
    if printer.json {
        return printer.print_json(&report);
    }
    let p = &report.pruned;
    let verb = if dry_run { "Would remove" } else { "Removed" };
    printer.success(format!(
        "{verb} {} entries ({}); {} entries ({}) kept, limit {}",
        p.removed_entries,
        HumanBytes(p.removed_bytes),
        p.kept_entries,
        HumanBytes(p.kept_bytes),
        HumanBytes(max_bytes)
    ));
    Ok(())
}
