//! Loading an export or a backup into an empty database and blob store, then comparing the
//! result with the manifest.

use std::path::Path;

use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::io::AsyncBufReadExt;

use super::codec::{self, Cell};
use super::export::{blob_path, blob_summary, snapshot_manifest};
use super::schema::{self, TABLES, TableSpec};
use super::store::{self, TableLoader};
use super::tar::TarReader;
use super::upgrade::{self, Upgrade};
use super::{FORMAT_VERSION, Manifest, Progress, TableSummary, Target, TransferError};

/// Expected and found content of one table (or of the blobs) after an import.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// Table name, or `blobs` for the blob contents.
    pub name: String,
    /// Rows (blobs) the manifest lists.
    pub expected_rows: u64,
    /// Rows (blobs) found in the target.
    pub actual_rows: u64,
    /// Checksum the manifest lists.
    pub expected_sha256: String,
    /// Checksum of the target's content.
    pub actual_sha256: String,
    /// Whether both agree.
    pub matches: bool,
}

/// What an import did and how the result compares with the source.
#[derive(Debug, Clone, Serialize)]
pub struct ImportReport {
    /// The manifest of the export that was imported.
    pub source: Manifest,
    /// Per table (and blobs): expected vs found.
    pub comparisons: Vec<Comparison>,
    /// Blobs written to the target blob store.
    pub blobs_uploaded: u64,
    /// Blobs the target store already held.
    pub blobs_present: u64,
    /// Whether every count and checksum matches.
    pub matches: bool,
}

const MAX_BATCH_ROWS: usize = 5_000;
/// Below both backends' limits on bound parameters (SQLite 32766, PostgreSQL 65535).
const MAX_BATCH_PARAMS: usize = 30_000;
const MAX_BATCH_BYTES: usize = 4 << 20;

async fn read_manifest(dir: &Path) -> Result<Manifest, TransferError> {
    let path = dir.join("manifest.json");
    let bytes = tokio::fs::read(&path).await.map_err(|_| {
        TransferError::Invalid(format!(
            "{} is not a complete export: it has no manifest.json",
            dir.display()
        ))
    })?;
    let m: Manifest = serde_json::from_slice(&bytes)
        .map_err(|e| TransferError::Invalid(format!("{} is not valid: {e}", path.display())))?;
    if m.format != FORMAT_VERSION {
        return Err(TransferError::Invalid(format!(
            "export format {} is not supported by this version (it reads format {FORMAT_VERSION})",
            m.format
        )));
    }
    Ok(m)
}

/// Refuses a target that holds any row (a server started on it has created its admin).
async fn ensure_empty(target: &Target) -> Result<(), TransferError> {
    let filled = store::filled_tables(&target.store).await?;
    if filled.is_empty() {
        return Ok(());
    }
    Err(TransferError::NotEmpty(format!(
        "the target database is not empty (rows in {}); import only into a new database, \
         before any server has started on it",
        filled.join(", ")
    )))
}

/// The `(digest, size)` list of `tables/blobs.jsonl`.
async fn blob_list(dir: &Path) -> Result<Vec<(String, u64)>, TransferError> {
    let spec = TABLES
        .iter()
        .find(|t| t.name == "blobs")
        .expect("blobs is exported");
    let mut lines = open_table(dir, spec).await?;
    let mut out = Vec::new();
    let mut line = Vec::new();
    while read_line(&mut lines, &mut line).await? {
        if let [Cell::Text(Some(d)), Cell::Int(Some(size)), ..] =
            &codec::read_line(spec, &line)?[..]
        {
            out.push((d.clone(), *size as u64));
        }
    }
    Ok(out)
}

type Lines = tokio::io::BufReader<tokio::fs::File>;

async fn open_table(dir: &Path, spec: &TableSpec) -> Result<Lines, TransferError> {
    let path = dir.join("tables").join(format!("{}.jsonl", spec.name));
    let f = tokio::fs::File::open(&path)
        .await
        .map_err(|e| TransferError::Invalid(format!("cannot read {}: {e}", path.display())))?;
    Ok(tokio::io::BufReader::with_capacity(1 << 20, f))
}

/// Reads the next line (with its newline) into `line`; false at the end.
async fn read_line(input: &mut Lines, line: &mut Vec<u8>) -> Result<bool, TransferError> {
    line.clear();
    Ok(input.read_until(b'\n', line).await? > 0)
}

async fn upload_blobs(
    target: &Target,
    dir: &Path,
    blobs: &[(String, u64)],
    progress: &dyn Progress,
) -> Result<(u64, u64), TransferError> {
    let (mut uploaded, mut present) = (0, 0);
    progress.begin("blobs", blobs.iter().map(|(_, s)| s).sum());
    for (digest, size) in blobs {
        if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(TransferError::Invalid(format!(
                "the blobs table lists {digest:?}, which is not a SHA-256 digest"
            )));
        }
        let path = dir.join(blob_path(digest));
        let file = tokio::fs::File::open(&path).await.map_err(|e| {
            TransferError::Invalid(format!("blob {digest} is missing from the export: {e}"))
        })?;
        if super::blobio::store(&target.blobs, digest, *size, Box::pin(file)).await? {
            uploaded += 1;
        } else {
            present += 1;
        }
        progress.advance(*size);
    }
    progress.end();
    Ok((uploaded, present))
}

fn cell_bytes(cells: &[Cell]) -> usize {
    cells
        .iter()
        .map(|c| match c {
            Cell::Text(Some(s)) => s.len(),
            Cell::Bytes(Some(b)) => b.len(),
            _ => 8,
        })
        .sum()
}

/// Loads every table file in one transaction, checking each against the manifest as it is
/// read; nothing is kept unless all match. Returns the summary of each table as loaded: the
/// manifest's, except for tables converted from an older schema version.
async fn load(
    target: &Target,
    dir: &Path,
    manifest: &Manifest,
    progress: &dyn Progress,
) -> Result<Vec<TableSummary>, TransferError> {
    let mut loader = TableLoader::begin(&target.store).await?;
    let mut upgrade = Upgrade::new(manifest.schema_version);
    let mut loaded = Vec::with_capacity(TABLES.len());
    for spec in TABLES {
        if upgrade::absent(manifest.schema_version, spec) {
            // Added after the export's version: it loads empty.
            loaded.push(TableSummary {
                name: spec.name.to_string(),
                rows: 0,
                sha256: hex::encode(Sha256::digest(b"")),
            });
            continue;
        }
        let Some(expected) = manifest.tables.iter().find(|t| t.name == spec.name) else {
            return Err(TransferError::Invalid(format!(
                "the manifest lists no table {}",
                spec.name
            )));
        };
        progress.begin(&format!("table {}", spec.name), expected.rows);
        let mut batch = Batch::new(spec, upgrade::converts(manifest.schema_version, spec));
        load_table(
            &mut loader,
            &mut batch,
            dir,
            expected,
            &mut upgrade,
            progress,
        )
        .await?;
        loaded.push(batch.summary().unwrap_or_else(|| expected.clone()));
        loader.renumber(spec).await?;
        progress.end();
    }
    loader.finish().await?;
    Ok(loaded)
}

/// Rows of one table on their way into the database, inserted a batch at a time. For a
/// converted table it also counts and hashes the rows as this version exports them.
struct Batch<'a> {
    spec: &'a TableSpec,
    rows: Vec<Vec<Cell>>,
    bytes: usize,
    per_batch: usize,
    loaded: Option<(Sha256, u64)>,
}

impl<'a> Batch<'a> {
    fn new(spec: &'a TableSpec, converted: bool) -> Batch<'a> {
        Batch {
            spec,
            rows: Vec::new(),
            bytes: 0,
            per_batch: (MAX_BATCH_PARAMS / spec.columns.len()).min(MAX_BATCH_ROWS),
            loaded: converted.then(|| (Sha256::new(), 0)),
        }
    }

    /// Adds a row, inserting the batch once it is full.
    async fn push(
        &mut self,
        loader: &mut TableLoader,
        cells: Vec<Cell>,
        progress: &dyn Progress,
    ) -> Result<(), TransferError> {
        if let Some((hash, rows)) = self.loaded.as_mut() {
            let mut line = Vec::new();
            codec::write_line(self.spec, &cells, &mut line);
            hash.update(&line);
            *rows += 1;
        }
        self.bytes += cell_bytes(&cells);
        self.rows.push(cells);
        if self.rows.len() >= self.per_batch || self.bytes >= MAX_BATCH_BYTES {
            self.flush(loader, progress).await?;
        }
        Ok(())
    }

    /// Inserts the rows not inserted yet.
    async fn flush(
        &mut self,
        loader: &mut TableLoader,
        progress: &dyn Progress,
    ) -> Result<(), TransferError> {
        let n = self.rows.len() as u64;
        loader.insert(self.spec, &mut self.rows).await?;
        progress.advance(n);
        self.bytes = 0;
        Ok(())
    }

    /// Rows and checksum of a converted table as loaded; None for one loaded as it was.
    fn summary(self) -> Option<TableSummary> {
        self.loaded.map(|(hash, rows)| TableSummary {
            name: self.spec.name.to_string(),
            rows,
            sha256: hex::encode(hash.finalize()),
        })
    }
}

/// Loads one table file in batches (converting its rows when `upgrade` does) and checks its
/// row count and checksum.
async fn load_table(
    loader: &mut TableLoader,
    batch: &mut Batch<'_>,
    dir: &Path,
    expected: &TableSummary,
    upgrade: &mut Upgrade,
    progress: &dyn Progress,
) -> Result<(), TransferError> {
    let spec = batch.spec;
    let mut input = open_table(dir, spec).await?;
    let mut count = 0u64;
    let mut hash = Sha256::new();
    let mut line = Vec::new();
    while read_line(&mut input, &mut line).await? {
        hash.update(&line);
        count += 1;
        if let Some(cells) = upgrade.row(spec, &line)? {
            batch.push(loader, cells, progress).await?;
        }
    }
    for cells in upgrade.held_rows(spec) {
        batch.push(loader, cells, progress).await?;
    }
    batch.flush(loader, progress).await?;
    let sha = hex::encode(hash.finalize());
    if count != expected.rows || sha != expected.sha256 {
        return Err(TransferError::Invalid(format!(
            "tables/{}.jsonl does not match the manifest ({count} rows, expected {}); \
             the export is damaged",
            spec.name, expected.rows
        )));
    }
    Ok(())
}

fn check_manifest_tables(m: &Manifest) -> Result<(), TransferError> {
    let names: Vec<&str> = m.tables.iter().map(|t| t.name.as_str()).collect();
    let ours: Vec<&str> = TABLES
        .iter()
        .filter(|t| !upgrade::absent(m.schema_version, t))
        .map(|t| t.name)
        .collect();
    if names != ours {
        return Err(TransferError::Invalid(
            "the manifest lists other tables than this version exports".into(),
        ));
    }
    Ok(())
}

/// Imports the export directory `dir` into `target`, which must be empty: blobs first
/// (each checked against its digest; ones the store holds are skipped), then every table in
/// one transaction with ids preserved. Finally the target is read back and compared with the
/// manifest, table by table; [`ImportReport::matches`] says whether all agree. An export of
/// the previous schema version is converted as it loads (see [`upgrade`]), and its converted
/// tables are compared with what the conversion made of them.
pub async fn import(
    target: &Target,
    dir: &Path,
    progress: &dyn Progress,
) -> Result<ImportReport, TransferError> {
    let manifest = read_manifest(dir).await?;
    schema::check(&target.store).await?;
    let ours = store::schema_version(&target.store).await?;
    if !upgrade::loads_into(manifest.schema_version, ours) {
        return Err(TransferError::Invalid(format!(
            "the export has database schema version {}, this wanllmdb has {ours}; \
             export and import with the same version",
            manifest.schema_version
        )));
    }
    check_manifest_tables(&manifest)?;
    ensure_empty(target).await?;
    let blobs = blob_list(dir).await?;
    if blob_summary(&blobs) != manifest.blobs {
        return Err(TransferError::Invalid(
            "the blobs table of the export does not match its manifest; the export is damaged"
                .into(),
        ));
    }
    let (blobs_uploaded, blobs_present) = upload_blobs(target, dir, &blobs, progress).await?;
    let loaded = load(target, dir, &manifest, progress).await?;
    let expected = Manifest {
        schema_version: ours,
        tables: loaded,
        ..manifest.clone()
    };
    let after = snapshot_manifest(target, progress).await?;
    let comparisons = compare(&expected, &after);
    Ok(ImportReport {
        matches: comparisons.iter().all(|c| c.matches),
        source: manifest,
        comparisons,
        blobs_uploaded,
        blobs_present,
    })
}

/// Table-by-table comparison of what was expected with what was found.
pub fn compare(expected: &Manifest, actual: &Manifest) -> Vec<Comparison> {
    let mut out: Vec<Comparison> = expected
        .tables
        .iter()
        .map(|e| {
            let a = actual.tables.iter().find(|a| a.name == e.name);
            let (rows, sha) = a.map_or((0, String::new()), |a| (a.rows, a.sha256.clone()));
            Comparison {
                name: e.name.clone(),
                expected_rows: e.rows,
                actual_rows: rows,
                matches: rows == e.rows && sha == e.sha256,
                expected_sha256: e.sha256.clone(),
                actual_sha256: sha,
            }
        })
        .collect();
    out.push(Comparison {
        name: "blobs (content)".into(),
        expected_rows: expected.blobs.count,
        actual_rows: actual.blobs.count,
        expected_sha256: expected.blobs.sha256.clone(),
        actual_sha256: actual.blobs.sha256.clone(),
        matches: expected.blobs == actual.blobs,
    });
    out
}

/// Where a path inside a backup archive may be extracted to, or None for paths a backup
/// never holds (so nothing lands outside the work directory).
fn archive_path(path: &str) -> Option<&str> {
    if path == "manifest.json" {
        return Some(path);
    }
    if let Some(table) = path
        .strip_prefix("tables/")
        .and_then(|t| t.strip_suffix(".jsonl"))
    {
        return TABLES.iter().any(|t| t.name == table).then_some(path);
    }
    let digest = path.strip_prefix("blobs/sha256/")?;
    let (shard, digest) = digest.split_once('/')?;
    let hex = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    };
    (digest.len() == 64 && hex(digest) && shard == &digest[..2]).then_some(path)
}

async fn unpack(file: &Path, work: &Path, progress: &dyn Progress) -> Result<(), TransferError> {
    let mut tar = TarReader::open(file).await?;
    progress.begin("unpacking", tokio::fs::metadata(file).await?.len());
    while let Some(entry) = tar.next_entry().await? {
        let rel = archive_path(&entry.path).ok_or_else(|| {
            TransferError::Invalid(format!(
                "{} is not a wanllmdb backup (it holds {})",
                file.display(),
                entry.path
            ))
        })?;
        let dest = work.join(rel);
        if let Some(parent) = dest.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        let mut out = tokio::fs::File::create(&dest).await?;
        let n = tokio::io::copy(tar.body(), &mut out).await?;
        if n != entry.size {
            return Err(TransferError::Invalid(format!(
                "{} ends inside {} (truncated?)",
                file.display(),
                entry.path
            )));
        }
        progress.advance(n);
    }
    progress.end();
    Ok(())
}

/// Restores the backup archive `file` into the empty `target`, unpacking it under `work`
/// first (removed afterwards); see [`import`].
pub async fn restore(
    target: &Target,
    file: &Path,
    work: &Path,
    progress: &dyn Progress,
) -> Result<ImportReport, TransferError> {
    ensure_empty(target).await?;
    let dir = work.join(format!(".restore-{}", crate::auth::random_hex(6)));
    let result = async {
        unpack(file, &dir, progress).await?;
        import(target, &dir, progress).await
    }
    .await;
    let _ = tokio::fs::remove_dir_all(&dir).await;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_backup_paths_are_extracted() {
        let d = "ab".to_string() + &"0".repeat(62);
        assert!(archive_path("manifest.json").is_some());
        assert!(archive_path("tables/runs.jsonl").is_some());
        assert!(archive_path(&format!("blobs/sha256/ab/{d}")).is_some());
        assert!(archive_path(&format!("blobs/sha256/cd/{d}")).is_none());
        assert!(archive_path("tables/../../etc.jsonl").is_none());
        assert!(archive_path("../x").is_none());
        assert!(archive_path("blobs/sha256/ab/../../x").is_none());
    }
}
