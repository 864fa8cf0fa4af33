//! `wanllmdb admin backup | restore | verify | export | import | compact`: work directly on a
//! server's storage (database and blob store), like `wanllmdb server` does, so they need no
//! login.

use std::path::PathBuf;

use clap::Args;
use indicatif::{HumanBytes, ProgressBar, ProgressStyle};
use wanllmdb_server::ServerConfig;
use wanllmdb_server::transfer::{
    self, ImportReport, Manifest, Target, TransferError, VerifyReport,
};

use crate::commands::JsonFlag;
use crate::commands::server::{ServerArgs, StorageArgs};
use crate::error::{CliError, CliResult, user_err};
use crate::output::when;
use crate::output::{Printer, kv_table, table};

impl StorageArgs {
    /// Resolves the options exactly as `wanllmdb server` would.
    fn resolve(self) -> CliResult<ServerConfig> {
        // The other server options keep their defaults: only storage matters here.
        let args = ServerArgs {
            storage: self,
            ..ServerArgs::default()
        };
        args.resolve().map_err(|e| CliError::user(format!("{e:#}")))
    }

    /// Opens existing storage; a data directory without a database is an error, not a new
    /// empty server.
    async fn open_existing(self) -> CliResult<Target> {
        let cfg = self.resolve()?;
        let db = cfg.data_dir.join("wanllmdb.db");
        if cfg.database_url.is_none() && !db.exists() {
            return Err(user_err!("no wanllmdb database at {}", db.display())
                .hint("pass the server's --data-dir, or --database-url"));
        }
        open(&cfg).await
    }
}

async fn open(cfg: &ServerConfig) -> CliResult<Target> {
    Target::open(cfg).await.map_err(transfer_err)
}

/// Options of `admin backup`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The archive to write (must not exist yet)
    #[arg(long, short, value_name = "FILE")]
    pub out: PathBuf,
    #[command(flatten)]
    pub storage: StorageArgs,
    #[command(flatten)]
    pub json: JsonFlag,
}

/// Options of `admin restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The backup archive
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    #[command(flatten)]
    pub storage: StorageArgs,
    #[command(flatten)]
    pub json: JsonFlag,
}

/// Options of `admin verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Check this backup archive against its manifest instead of the server's storage
    #[arg(long, value_name = "FILE")]
    pub backup: Option<PathBuf>,
    #[command(flatten)]
    pub storage: StorageArgs,
    #[command(flatten)]
    pub json: JsonFlag,
}

/// Options of `admin compact`.
#[derive(Debug, Args)]
pub struct CompactArgs {
    #[command(flatten)]
    pub storage: StorageArgs,
    #[command(flatten)]
    pub json: JsonFlag,
}

/// Options of `admin export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The directory to write (must be empty or absent)
    #[arg(long, short, value_name = "DIR")]
    pub out: PathBuf,
    #[command(flatten)]
    pub storage: StorageArgs,
    #[command(flatten)]
    pub json: JsonFlag,
}

/// Options of `admin import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The export directory
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    #[command(flatten)]
    pub storage: StorageArgs,
    #[command(flatten)]
    pub json: JsonFlag,
}

fn transfer_err(e: TransferError) -> CliError {
    match e {
        TransferError::NotEmpty(m) if m.contains("database") => CliError::user(m)
            .hint("restore and import need a new data directory or an empty database"),
        TransferError::NotEmpty(m) | TransferError::Invalid(m) => CliError::user(m),
        e @ TransferError::Schema(_) => CliError::user(e.to_string()),
        e => CliError::unexpected(e.to_string()),
    }
}

/// A progress bar on stderr, hidden off a terminal.
struct Bar(ProgressBar);

impl Bar {
    fn new(printer: Printer) -> Bar {
        if printer.progress() {
            Bar(ProgressBar::new(0))
        } else {
            Bar(ProgressBar::hidden())
        }
    }
}

impl transfer::Progress for Bar {
    fn begin(&self, step: &str, total: u64) {
        let template = if total > 0 {
            "{msg:24} {wide_bar} {bytes}/{total_bytes}"
        } else {
            "{msg:24} {spinner} {pos} rows"
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            self.0.set_style(style);
        }
        self.0.set_message(step.to_string());
        self.0.set_length(total);
        self.0.set_position(0);
    }
    fn advance(&self, n: u64) {
        self.0.inc(n);
    }
    fn end(&self) {
        self.0.set_message(String::new());
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}

fn manifest_table(m: &Manifest, written: &str) -> comfy_table::Table {
    let rows: u64 = m.tables.iter().map(|t| t.rows).sum();
    kv_table(&[
        ("written", written.to_string()),
        ("snapshot", when(&m.created_at)),
        (
            "source",
            format!("{} + {} blobs", m.source_database, m.source_blob_store),
        ),
        ("tables", format!("{} ({rows} rows)", m.tables.len())),
        (
            "blobs",
            format!("{} ({})", m.blobs.count, HumanBytes(m.blobs.bytes)),
        ),
    ])
}

/// `admin backup`.
pub async fn backup(args: BackupArgs, printer: Printer) -> CliResult {
    let source = args.storage.open_existing().await?;
    let bar = Bar::new(printer);
    let result = transfer::backup(&source, &args.out, &bar).await;
    drop(bar);
    source.close().await;
    let m = result.map_err(transfer_err)?;
    printer
        .with_json(args.json)
        .data(&m, || manifest_table(&m, &args.out.display().to_string()))
}

/// `admin export`.
pub async fn export(args: ExportArgs, printer: Printer) -> CliResult {
    let source = args.storage.open_existing().await?;
    let bar = Bar::new(printer);
    let result = transfer::export(&source, &args.out, &bar).await;
    drop(bar);
    source.close().await;
    let m = result.map_err(transfer_err)?;
    printer
        .with_json(args.json)
        .data(&m, || manifest_table(&m, &args.out.display().to_string()))
}

/// `admin compact`: rewrites old-format metric chunks; exit 1 when damaged chunks were found.
pub async fn compact(args: CompactArgs, printer: Printer) -> CliResult {
    let target = args.storage.open_existing().await?;
    let result = wanllmdb_server::metrics::chunks::compact_chunks(&target.store).await;
    target.close().await;
    let r = result.map_err(|e| CliError::unexpected(format!("compaction stopped: {e}")))?;
    printer.with_json(args.json).data(&r, || {
        let mut text = kv_table(&[
            ("metric chunks read", r.chunks.to_string()),
            ("rewritten in the current format", r.rewritten.to_string()),
            ("damaged, left as they are", r.problems.len().to_string()),
        ])
        .to_string();
        for p in &r.problems {
            text.push_str(&format!("\n  - {p}"));
        }
        text
    })?;
    match r.problems.is_empty() {
        true => Ok(()),
        false => Err(
            user_err!("{} damaged metric chunk(s) found", r.problems.len()).hint(
                "`wanllmdb admin verify` lists every problem; restore the runs from a backup",
            ),
        ),
    }
}

/// Prints the comparison of an import and fails (exit 1) on any difference.
fn report_import(r: &ImportReport, printer: Printer, json: bool) -> CliResult {
    printer.with_json(json).data(r, || {
        let mut t = table(&["TABLE", "EXPECTED", "FOUND", "CHECKSUM"]);
        for c in &r.comparisons {
            t.add_row(vec![
                c.name.clone(),
                c.expected_rows.to_string(),
                c.actual_rows.to_string(),
                if c.matches { "ok" } else { "DIFFERS" }.to_string(),
            ]);
        }
        t
    })?;
    if !r.matches {
        let bad: Vec<&str> = r
            .comparisons
            .iter()
            .filter(|c| !c.matches)
            .map(|c| c.name.as_str())
            .collect();
        return Err(user_err!(
            "the imported data differs from the export in: {}",
            bad.join(", ")
        ));
    }
    printer.success(format!(
        "imported and compared: every table and blob matches ({} blob(s) uploaded, {} already present)",
        r.blobs_uploaded, r.blobs_present
    ));
    Ok(())
}

/// `admin import`.
pub async fn import(args: ImportArgs, printer: Printer) -> CliResult {
    let cfg = args.storage.resolve()?;
    let target = open(&cfg).await?;
    let bar = Bar::new(printer);
    let result = transfer::import(&target, &args.dir, &bar).await;
    drop(bar);
    target.close().await;
    report_import(&result.map_err(transfer_err)?, printer, args.json.json)
}

/// `admin restore`.
pub async fn restore(args: RestoreArgs, printer: Printer) -> CliResult {
    if !args.file.is_file() {
        return Err(user_err!("no backup file at {}", args.file.display()));
    }
    let cfg = args.storage.resolve()?;
    let target = open(&cfg).await?;
    let bar = Bar::new(printer);
    let result = transfer::restore(&target, &args.file, &cfg.data_dir, &bar).await;
    drop(bar);
    target.close().await;
    report_import(&result.map_err(transfer_err)?, printer, args.json.json)
}

/// `admin verify`: exit 1 when anything is wrong.
pub async fn verify(args: VerifyArgs, printer: Printer) -> CliResult {
    let bar = Bar::new(printer);
    let (what, result) = match &args.backup {
        Some(file) => (
            file.display().to_string(),
            transfer::verify_backup(file, &bar).await,
        ),
        None => {
            let target = args.storage.open_existing().await?;
            let r = transfer::verify(&target, &bar).await;
            target.close().await;
            ("the server's storage".to_string(), r)
        }
    };
    drop(bar);
    let r = result.map_err(transfer_err)?;
    print_verify(&r, &what, printer.with_json(args.json))?;
    if r.ok() {
        Ok(())
    } else {
        Err(user_err!("{} problem(s) found in {what}", r.problems.len()))
    }
}

fn print_verify(r: &VerifyReport, what: &str, printer: Printer) -> CliResult {
    #[derive(serde::Serialize)]
    struct Out<'a> {
        ok: bool,
        #[serde(flatten)]
        report: &'a VerifyReport,
    }
    printer.data(
        &Out {
            ok: r.ok(),
            report: r,
        },
        || {
            let mut rows = vec![
                ("checked", what.to_string()),
                ("tables", r.tables.to_string()),
                (
                    "blobs hashed",
                    format!("{} ({})", r.blobs, HumanBytes(r.blob_bytes)),
                ),
                (
                    "result",
                    if r.ok() {
                        "ok".to_string()
                    } else {
                        format!("{} problem(s)", r.problems.len())
                    },
                ),
            ];
            if r.rows > 0 {
                rows.insert(2, ("rows", r.rows.to_string()));
            }
            if r.checked == "database" {
                let chunks = format!("{} ({} points)", r.metric_chunks, r.metric_points);
                rows.insert(rows.len() - 1, ("metric chunks checked", chunks));
            }
            if r.old_format_chunks > 0 {
                let note = format!(
                    "{} without a checksum (`wanllmdb admin compact` rewrites them)",
                    r.old_format_chunks
                );
                rows.insert(rows.len() - 1, ("old-format chunks", note));
            }
            let mut text = kv_table(&rows).to_string();
            for p in &r.problems {
                text.push_str(&format!("\n  - {p}"));
            }
            text
        },
    )
}
