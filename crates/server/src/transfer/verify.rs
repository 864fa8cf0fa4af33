//! Integrity checks: of a live database and blob store, and of a backup archive against its
//! manifest.

use std::path::Path;

use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use super::codec::Cell;
use super::export::blob_summary;
use super::schema::{self, TABLES};
use super::store;
use super::tar::TarReader;
use super::upgrade;
use super::{Manifest, Progress, Target, TransferError};

/// What a check looked at and every problem it found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyReport {
    /// What was checked: `database` or `backup`.
    pub checked: String,
    /// Tables checked.
    pub tables: u64,
    /// Rows read (backups) or 0 (databases check structure, not every row).
    pub rows: u64,
    /// Blobs whose bytes were hashed.
    pub blobs: u64,
    /// Their total size.
    pub blob_bytes: u64,
    /// Metric chunks whose checksum and structure were checked (databases only).
    pub metric_chunks: u64,
    /// The points they hold.
    pub metric_points: u64,
    /// Chunks in the format without a checksum: readable, and not a problem, but only their
    /// structure can be checked; `wanllmdb admin compact` rewrites them.
    pub old_format_chunks: u64,
    /// Everything wrong, one sentence each; empty when all is well.
    pub problems: Vec<String>,
}

impl VerifyReport {
    /// Whether nothing is wrong.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// The database engine's own page-level and foreign-key checks (SQLite only).
async fn engine_checks(target: &Target) -> Result<Vec<String>, TransferError> {
    let (integrity, broken) = store::engine_checks(&target.store).await?;
    let mut out: Vec<String> = integrity
        .into_iter()
        .filter(|r| r != "ok")
        .map(|r| format!("database integrity: {r}"))
        .collect();
    out.extend(broken.into_iter().map(|b| {
        format!(
            "table {} row {}: refers to a missing {} row",
            b.table,
            b.rowid.map_or("?".into(), |r| r.to_string()),
            b.parent
        )
    }));
    Ok(out)
}

/// Blob references the schema cannot enforce: committed artifact entries need their bytes.
async fn reference_checks(target: &Target) -> Result<Vec<String>, TransferError> {
    Ok(store::unrecorded_contents(&target.store)
        .await?
        .into_iter()
        .map(|c| {
            format!(
                "artifact version {} file {}: its content {} is not recorded",
                c.version_id, c.path, c.digest
            )
        })
        .collect())
}

/// Checks every metric chunk's checksum and structure against its row.
async fn check_metric_chunks(
    target: &Target,
    progress: &dyn Progress,
    report: &mut VerifyReport,
) -> Result<(), TransferError> {
    progress.begin("metric chunks", 0);
    let check = crate::metrics::chunks::check_chunks(&target.store, &|n| progress.advance(n))
        .await
        .map_err(|e| TransferError::Check(format!("cannot read the metric chunks: {e}")))?;
    progress.end();
    report.metric_chunks = check.chunks;
    report.metric_points = check.points;
    report.old_format_chunks = check.old_format;
    let unlisted = check.damaged.saturating_sub(check.problems.len() as u64);
    report.problems.extend(check.problems);
    if unlisted > 0 {
        report
            .problems
            .push(format!("… and {unlisted} more damaged metric chunk(s)"));
    }
    Ok(())
}

/// Checks the database's integrity, every metric chunk's checksum, and that every recorded blob is stored with bytes that
/// hash to its digest.
pub async fn verify(
    target: &Target,
    progress: &dyn Progress,
) -> Result<VerifyReport, TransferError> {
    let mut report = VerifyReport {
        checked: "database".into(),
        tables: TABLES.len() as u64,
        ..VerifyReport::default()
    };
    report
        .problems
        .extend(schema::differences(&target.store).await?);
    report.problems.extend(engine_checks(target).await?);
    report.problems.extend(reference_checks(target).await?);
    check_metric_chunks(target, progress, &mut report).await?;
    let blobs = store::recorded_blobs(&target.store).await?;
    progress.begin("blobs", blobs.iter().map(|(_, s)| *s as u64).sum());
    for (digest, size) in blobs {
        let size = size as u64;
        match super::blobio::open(&target.blobs, &digest).await? {
            None => report.problems.push(format!(
                "blob {digest} is recorded but missing from the blob store"
            )),
            Some(mut reader) => {
                if let Err(e) =
                    super::blobio::copy_checked(&mut reader, &digest, size, None, progress).await
                {
                    report.problems.push(e.to_string());
                }
            }
        }
        report.blobs += 1;
        report.blob_bytes += size;
    }
    progress.end();
    Ok(report)
}

/// Running totals of one table's lines in an archive.
struct TableCheck {
    hash: Sha256,
    rows: u64,
}

/// Reads a table entry line by line: counts and hashes it, and for the blobs table collects
/// the recorded `(digest, size)` list.
async fn check_table(
    body: &mut (dyn tokio::io::AsyncRead + Send + Unpin),
    schema_version: i64,
    name: &str,
    recorded: &mut Vec<(String, u64)>,
    report: &mut VerifyReport,
) -> Result<TableCheck, TransferError> {
    let spec = TABLES.iter().find(|t| t.name == name);
    let mut check = TableCheck {
        hash: Sha256::new(),
        rows: 0,
    };
    let mut input = tokio::io::BufReader::new(body);
    let mut line = Vec::new();
    loop {
        line.clear();
        if tokio::io::AsyncBufReadExt::read_until(&mut input, b'\n', &mut line).await? == 0 {
            break;
        }
        check.hash.update(&line);
        check.rows += 1;
        match spec.map(|s| upgrade::read_line(schema_version, s, &line)) {
            Some(Ok(cells)) if name == "blobs" => {
                if let [Cell::Text(Some(d)), Cell::Int(Some(size)), ..] = &cells[..] {
                    recorded.push((d.clone(), *size as u64));
                }
            }
            Some(Err(e)) if report.problems.len() < 100 => report.problems.push(e.to_string()),
            _ => {}
        }
    }
    report.rows += check.rows;
    Ok(check)
}

/// Checks a backup archive against its manifest: every table's row count and checksum, and
/// every blob's bytes against its digest and against the blobs the tables record.
pub async fn verify_backup(
    file: &Path,
    progress: &dyn Progress,
) -> Result<VerifyReport, TransferError> {
    let mut tar = TarReader::open(file).await?;
    let first = tar.next_entry().await?;
    if first.as_ref().map(|e| e.path.as_str()) != Some("manifest.json") {
        return Err(TransferError::Invalid(format!(
            "{} is not a wanllmdb backup (it does not start with manifest.json)",
            file.display()
        )));
    }
    let mut json = Vec::new();
    tar.body().read_to_end(&mut json).await?;
    let manifest: Manifest = serde_json::from_slice(&json)
        .map_err(|e| TransferError::Invalid(format!("the backup's manifest is not valid: {e}")))?;
    let mut report = VerifyReport {
        checked: "backup".into(),
        ..VerifyReport::default()
    };
    let mut recorded = Vec::new();
    let mut stored = Vec::new();
    let mut seen = Vec::new();
    progress.begin("backup", tokio::fs::metadata(file).await?.len());
    while let Some(entry) = tar.next_entry().await? {
        progress.advance(entry.size);
        if let Some(name) = entry
            .path
            .strip_prefix("tables/")
            .and_then(|p| p.strip_suffix(".jsonl"))
        {
            let version = manifest.schema_version;
            let check = check_table(tar.body(), version, name, &mut recorded, &mut report).await?;
            report.tables += 1;
            seen.push(name.to_string());
            compare_table(&manifest, name, check, &mut report);
        } else if let Some(digest) = entry
            .path
            .rsplit('/')
            .next()
            .filter(|_| entry.path.starts_with("blobs/"))
        {
            let digest = digest.to_string();
            if let Err(e) = super::blobio::copy_checked(
                tar.body(),
                &digest,
                entry.size,
                None,
                &super::NoProgress,
            )
            .await
            {
                report.problems.push(e.to_string());
            }
            report.blobs += 1;
            report.blob_bytes += entry.size;
            stored.push((digest, entry.size));
        } else {
            report
                .problems
                .push(format!("unexpected entry {}", entry.path));
        }
    }
    progress.end();
    for t in &manifest.tables {
        if !seen.contains(&t.name) {
            report.problems.push(format!("table {} is missing", t.name));
        }
    }
    stored.sort();
    if blob_summary(&stored) != manifest.blobs {
        report.problems.push(format!(
            "the archive holds {} blob(s), the manifest lists {}",
            stored.len(),
            manifest.blobs.count
        ));
    }
    if recorded != stored {
        report
            .problems
            .push("the stored blobs differ from those the blobs table records".into());
    }
    Ok(report)
}

fn compare_table(manifest: &Manifest, name: &str, check: TableCheck, report: &mut VerifyReport) {
    let Some(expected) = manifest.tables.iter().find(|t| t.name == name) else {
        report
            .problems
            .push(format!("table {name} is not in the manifest"));
        return;
    };
    let sha = hex::encode(check.hash.finalize());
    if check.rows != expected.rows {
        report.problems.push(format!(
            "table {name}: {} rows, the manifest lists {}",
            check.rows, expected.rows
        ));
    } else if sha != expected.sha256 {
        report.problems.push(format!(
            "table {name}: its content does not match the manifest's checksum"
        ));
    }
}
