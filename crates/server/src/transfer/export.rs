//! Reading one consistent snapshot of every table, and the blobs it records, into an export
//! directory or a backup archive.

use std::path::{Path, PathBuf};

use futures_util::TryStreamExt;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::codec::{self, Cell};
use super::schema::{self, TABLES, TableSpec};
use super::store::{self, SnapshotReader};
use super::tar::TarWriter;
use super::{BlobSummary, FORMAT_VERSION, Manifest, Progress, TableSummary, Target, TransferError};
use crate::store::{format_time, now_us};

/// What a snapshot of the tables produced.
struct Snapshot {
    schema_version: i64,
    tables: Vec<TableSummary>,
    /// `(digest, size)` of every blob the `blobs` table records, sorted by digest.
    blobs: Vec<(String, u64)>,
}

/// Writes one table's lines to a file (or nowhere) while counting and hashing them.
struct TableOut {
    file: Option<tokio::io::BufWriter<tokio::fs::File>>,
    hash: Sha256,
    rows: u64,
    line: Vec<u8>,
}

impl TableOut {
    async fn new(path: Option<PathBuf>) -> Result<TableOut, TransferError> {
        let file = match path {
            Some(p) => Some(tokio::io::BufWriter::with_capacity(
                1 << 20,
                tokio::fs::File::create(p).await?,
            )),
            None => None,
        };
        Ok(TableOut {
            file,
            hash: Sha256::new(),
            rows: 0,
            line: Vec::with_capacity(4096),
        })
    }

    async fn row(&mut self, spec: &TableSpec, cells: &[Cell]) -> Result<(), TransferError> {
        self.line.clear();
        codec::write_line(spec, cells, &mut self.line);
        self.hash.update(&self.line);
        if let Some(f) = self.file.as_mut() {
            f.write_all(&self.line).await?;
        }
        self.rows += 1;
        Ok(())
    }

    async fn finish(mut self, spec: &TableSpec) -> Result<TableSummary, TransferError> {
        if let Some(f) = self.file.as_mut() {
            f.flush().await?;
            f.get_mut().sync_all().await?;
        }
        Ok(TableSummary {
            name: spec.name.to_string(),
            rows: self.rows,
            sha256: hex::encode(self.hash.finalize()),
        })
    }
}

fn blob_entry(cells: &[Cell]) -> Option<(String, u64)> {
    match cells {
        [Cell::Text(Some(d)), Cell::Int(Some(size)), ..] => Some((d.clone(), *size as u64)),
        _ => None,
    }
}

/// Reads every table from one snapshot of the database (see [`SnapshotReader`]) while the
/// server keeps writing, into files under `dir` (or only counting and hashing them).
async fn snapshot(
    source: &Target,
    dir: Option<&Path>,
    progress: &dyn Progress,
) -> Result<Snapshot, TransferError> {
    schema::check(&source.store).await?;
    if let Some(d) = dir {
        tokio::fs::create_dir_all(d).await?;
    }
    let mut reader = SnapshotReader::begin(&source.store).await?;
    let schema_version = reader.schema_version().await?;
    let mut tables = Vec::new();
    let mut blobs = Vec::new();
    for spec in TABLES {
        progress.begin(&format!("table {}", spec.name), 0);
        let path = dir.map(|d| d.join(format!("{}.jsonl", spec.name)));
        let mut out = TableOut::new(path).await?;
        let mut rows = reader.rows(spec);
        while let Some(cells) = rows.try_next().await? {
            if spec.name == "blobs" {
                blobs.extend(blob_entry(&cells));
            }
            out.row(spec, &cells).await?;
            progress.advance(1);
        }
        drop(rows);
        tables.push(out.finish(spec).await?);
        progress.end();
    }
    reader.finish().await?;
    Ok(Snapshot {
        schema_version,
        tables,
        blobs,
    })
}

/// The blob summary of a sorted `(digest, size)` list.
pub(super) fn blob_summary(blobs: &[(String, u64)]) -> BlobSummary {
    let mut hash = Sha256::new();
    for (digest, size) in blobs {
        hash.update(format!("{digest} {size}\n").as_bytes());
    }
    BlobSummary {
        count: blobs.len() as u64,
        bytes: blobs.iter().map(|(_, s)| s).sum(),
        sha256: hex::encode(hash.finalize()),
    }
}

fn manifest(source: &Target, snap: &Snapshot) -> Manifest {
    Manifest {
        format: FORMAT_VERSION,
        schema_version: snap.schema_version,
        source_database: store::database_name(&source.store).into(),
        source_blob_store: source.blob_store_kind().into(),
        created_at: format_time(now_us()),
        tables: snap.tables.clone(),
        blobs: blob_summary(&snap.blobs),
    }
}

/// The manifest an export of `source` would have now, without writing anything (used to
/// compare a copy with its original).
pub async fn snapshot_manifest(
    source: &Target,
    progress: &dyn Progress,
) -> Result<Manifest, TransferError> {
    let snap = snapshot(source, None, progress).await?;
    Ok(manifest(source, &snap))
}

/// The relative path of a blob in an export.
pub(super) fn blob_path(digest: &str) -> String {
    format!("blobs/sha256/{}/{digest}", &digest[..2])
}

async fn open_recorded(
    source: &Target,
    digest: &str,
) -> Result<super::blobio::BlobReader, TransferError> {
    super::blobio::open(&source.blobs, digest)
        .await?
        .ok_or_else(|| {
            TransferError::Invalid(format!(
                "blob {digest} is recorded in the database but missing from the blob store \
             (deleted by garbage collection during the export? run it again; \
             `wanllmdb admin verify` checks the store)"
            ))
        })
}

/// Refuses to write into a directory that already holds something.
async fn ensure_empty_dir(dir: &Path) -> Result<(), TransferError> {
    if let Ok(mut entries) = tokio::fs::read_dir(dir).await
        && entries.next_entry().await?.is_some()
    {
        return Err(TransferError::NotEmpty(format!(
            "{} is not empty; export into a new directory",
            dir.display()
        )));
    }
    Ok(())
}

/// Exports `source` into the directory `dir` (which must be empty or absent): the tables of
/// one snapshot, then the blobs they record, each checked against its digest, then
/// `manifest.json` (present only when the export is complete).
pub async fn export(
    source: &Target,
    dir: &Path,
    progress: &dyn Progress,
) -> Result<Manifest, TransferError> {
    ensure_empty_dir(dir).await?;
    let snap = snapshot(source, Some(&dir.join("tables")), progress).await?;
    let m = manifest(source, &snap);
    progress.begin("blobs", m.blobs.bytes);
    for (digest, size) in &snap.blobs {
        let path = dir.join(blob_path(digest));
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        let mut reader = open_recorded(source, digest).await?;
        let mut file = tokio::fs::File::create(&path).await?;
        super::blobio::copy_checked(&mut reader, digest, *size, Some(&mut file), progress).await?;
        file.sync_all().await?;
    }
    progress.end();
    write_manifest(&dir.join("manifest.json"), &m).await?;
    Ok(m)
}

async fn write_manifest(path: &Path, m: &Manifest) -> Result<(), TransferError> {
    let json = serde_json::to_vec_pretty(m).map_err(|e| TransferError::Invalid(e.to_string()))?;
    let mut f = tokio::fs::File::create(path).await?;
    f.write_all(&json).await?;
    f.write_all(b"\n").await?;
    f.sync_all().await?;
    Ok(())
}

/// Writes a backup of `source` to the archive `file`: a tar holding `manifest.json`, the
/// tables and the blobs, as [`export`] lays them out. The archive appears only when complete.
pub async fn backup(
    source: &Target,
    file: &Path,
    progress: &dyn Progress,
) -> Result<Manifest, TransferError> {
    if tokio::fs::metadata(file).await.is_ok() {
        return Err(TransferError::NotEmpty(format!(
            "{} already exists; choose a new file name",
            file.display()
        )));
    }
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "backup".into());
    let suffix = crate::auth::random_hex(6);
    let work = file.with_file_name(format!(".{name}.tables-{suffix}"));
    let partial = file.with_file_name(format!(".{name}.partial-{suffix}"));
    let result = write_archive(source, &work, &partial, progress).await;
    let _ = tokio::fs::remove_dir_all(&work).await;
    match result {
        Ok(m) => {
            tokio::fs::rename(&partial, file).await?;
            Ok(m)
        }
        Err(e) => {
            let _ = tokio::fs::remove_file(&partial).await;
            Err(e)
        }
    }
}

async fn write_archive(
    source: &Target,
    work: &Path,
    partial: &Path,
    progress: &dyn Progress,
) -> Result<Manifest, TransferError> {
    let snap = snapshot(source, Some(work), progress).await?;
    let m = manifest(source, &snap);
    let json = serde_json::to_vec_pretty(&m).map_err(|e| TransferError::Invalid(e.to_string()))?;
    let mut tar = TarWriter::create(partial).await?;
    tar.append_bytes("manifest.json", &json).await?;
    for spec in TABLES {
        tar.append_file(
            &format!("tables/{}.jsonl", spec.name),
            &work.join(format!("{}.jsonl", spec.name)),
        )
        .await?;
    }
    progress.begin("blobs", m.blobs.bytes);
    for (digest, size) in &snap.blobs {
        let mut reader = open_recorded(source, digest).await?;
        tar.begin_entry(&blob_path(digest), *size).await?;
        super::blobio::copy_checked(&mut reader, digest, *size, Some(tar.body()), progress).await?;
        tar.end_entry(*size).await?;
    }
    progress.end();
    tar.finish().await?;
    Ok(m)
}
