//! Moving file bytes to and from the server: hashing, parallel uploads through the signed
//! URLs a put hands out, and downloads that are checked against their SHA-256 before they
//! take their final name.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;
use wanllmdb_api_types::files::{
    BatchUploadResult, FileSpec, FileStatus, PutFilesRequest, PutFilesResponse, RunFile,
    UploadPart, normalize_path,
};

use crate::cache::{ensure_parent, part_path};
use crate::client::{Api, ApiError, seg};
use crate::error::{CliError, CliResult, user_err};
use crate::output::Printer;

/// Files transferred at the same time.
pub const PARALLEL: usize = 8;
const PUT_CHUNK: usize = 5_000;

/// A local file and the name it gets on the server.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct LocalFile {
    /// Where it is.
    pub local: PathBuf,
    /// Its path on the server.
    pub remote: String,
}

/// SHA-256 and size of a file, read once.
pub async fn hash_file(path: &Path) -> std::io::Result<(String, u64)> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || hash_file_blocking(&path))
        .await
        .map_err(std::io::Error::other)?
}

/// SHA-256 and size of many files, on two blocking threads that take the next file in turn
/// (a task and a thread hop per small file cost more than hashing it), reusing digests
/// remembered for files unchanged since they were last hashed (see `cache::DigestMemo`).
pub async fn hash_files(paths: Vec<PathBuf>) -> CliResult<Vec<(String, u64)>> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let task_failed =
        |e: tokio::task::JoinError| CliError::unexpected(format!("hash task failed: {e}"));
    let memo = tokio::task::spawn_blocking(crate::cache::DigestMemo::load)
        .await
        .map_err(task_failed)?;
    let memo = Arc::new(std::sync::Mutex::new(memo));
    let paths = Arc::new(paths);
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..HASH_THREADS.min(paths.len()) {
        let (paths, next, memo) = (paths.clone(), next.clone(), memo.clone());
        workers.push(tokio::task::spawn_blocking(
            move || -> CliResult<Vec<(usize, (String, u64))>> {
                let mut done = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(p) = paths.get(i) else {
                        return Ok(done);
                    };
                    match hash_remembered(p, &memo) {
                        Ok(d) => done.push((i, d)),
                        Err(e) => {
                            // The other thread stops at its next file.
                            next.store(paths.len(), Ordering::Relaxed);
                            return Err(e);
                        }
                    }
                }
            },
        ));
    }
    let mut out = vec![None; paths.len()];
    for w in workers {
        for (i, d) in w.await.map_err(task_failed)?? {
            out[i] = Some(d);
        }
    }
    let _ = tokio::task::spawn_blocking(move || {
        if let Ok(m) = memo.lock() {
            m.save();
        }
    })
    .await;
    out.into_iter()
        .map(|d| d.ok_or_else(|| CliError::unexpected("a file was not hashed")))
        .collect()
}

/// Files hashed at the same time.
const HASH_THREADS: usize = 2;

/// SHA-256 and size of one file, from the memo when it is unchanged since it was last hashed.
fn hash_remembered(
    p: &Path,
    memo: &std::sync::Mutex<crate::cache::DigestMemo>,
) -> CliResult<(String, u64)> {
    let err = |e: std::io::Error| user_err!("cannot read {}: {e}", p.display());
    let abs = std::fs::canonicalize(p).map_err(err)?;
    let meta = std::fs::metadata(&abs).map_err(err)?;
    let known = memo.lock().ok().and_then(|m| m.get(&abs, &meta));
    if let Some(sha) = known {
        return Ok((sha, meta.len()));
    }
    let (sha, size) = hash_file_blocking(&abs).map_err(err)?;
    // Only a file that did not change while it was read is remembered.
    if let Ok(after) = std::fs::metadata(&abs)
        && after.len() == size
        && after.modified().ok() == meta.modified().ok()
        && let Ok(mut m) = memo.lock()
    {
        m.put(abs, &after, &sha);
    }
    Ok((sha, size))
}

/// `hash_file` on the calling (blocking) thread.
pub fn hash_file_blocking(path: &Path) -> std::io::Result<(String, u64)> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        size += n as u64;
    }
    Ok((hex::encode(h.finalize()), size))
}

pub fn bar(printer: &Printer, total: u64, what: &str) -> indicatif::ProgressBar {
    let b = indicatif::ProgressBar::new(total);
    if printer.progress() {
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{msg} {bar:30} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b.set_message(what.to_string());
    } else {
        b.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    b
}

/// What a put did.
#[derive(Debug, Default, serde::Serialize)]
pub struct PutReport {
    /// Files attached.
    pub files: usize,
    /// Of which needed their bytes sent.
    pub uploaded: usize,
    /// Bytes sent.
    pub bytes_uploaded: u64,
}

/// Attaches `files` to `run`, sending only bytes the server asks for.
pub async fn put_files(
    api: &Api,
    run: &str,
    files: Vec<LocalFile>,
    printer: &Printer,
) -> CliResult<PutReport> {
    let mut remotes = Vec::with_capacity(files.len());
    for f in &files {
        remotes.push(
            normalize_path(&f.remote).map_err(|e| {
                user_err!("cannot store {} as {:?}: {e}", f.local.display(), f.remote)
            })?,
        );
    }
    let digests = hash_files(files.iter().map(|f| f.local.clone()).collect()).await?;
    let specs: Vec<(PathBuf, FileSpec)> = files
        .iter()
        .zip(remotes)
        .zip(digests)
        .map(|((f, path), (sha256, size))| (f.local.clone(), FileSpec { path, sha256, size }))
        .collect();
    let mut todo = Vec::new();
    let mut report = PutReport {
        files: specs.len(),
        ..Default::default()
    };
    for chunk in specs.chunks(PUT_CHUNK) {
        let req = PutFilesRequest {
            files: chunk.iter().map(|(_, s)| s.clone()).collect(),
        };
        let resp: PutFilesResponse = api
            .post(&format!("/api/v1/runs/{}/files", seg(run)), &req)
            .await?;
        for ((local, _), ticket) in chunk.iter().zip(resp.files) {
            if ticket.status == FileStatus::Upload {
                let url = ticket.upload_url.ok_or_else(|| {
                    CliError::unexpected("the server asked for an upload without a URL")
                })?;
                todo.push(Upload {
                    local: local.clone(),
                    url,
                    complete_url: ticket.complete_url,
                    parts: ticket.parts,
                    size: ticket.size,
                    resume_key: Some(format!(
                        "{} run {run} {} {}",
                        api.base(),
                        ticket.path,
                        ticket.sha256
                    )),
                });
            }
        }
    }
    report.uploaded = todo.len();
    report.bytes_uploaded = todo.iter().map(|t| t.size).sum();
    upload_all(api, todo, printer).await?;
    Ok(report)
}

/// One file to send where the server said.
#[derive(Debug, Clone)]
pub struct Upload {
    /// The local file.
    pub local: PathBuf,
    /// Where to `PUT` it.
    pub url: String,
    /// Where to `POST` afterwards, when the server asks for it (object storage).
    pub complete_url: Option<String>,
    /// Byte ranges to send separately (large files in object storage).
    pub parts: Option<Vec<UploadPart>>,
    /// Its size.
    pub size: u64,
    /// Names the upload's destination (server, run, path, content) when a multipart upload
    /// may be resumed by a later command: its parts already stored are not sent again.
    pub resume_key: Option<String>,
}

/// Largest file sent in a batch with others.
const BATCH_ITEM: u64 = 1024 * 1024;
/// Most files in one batch.
const BATCH_FILES: usize = 500;
/// Most bytes in one batch.
const BATCH_BYTES: u64 = 8 * 1024 * 1024;
/// The server's own upload URLs start with this; what follows is the token.
const LOCAL_UPLOAD: &str = "/api/v1/blobs/";

/// Sends files to their signed upload URLs, several at a time, with one progress bar. Small
/// files bound for the server itself go several hundred to a request.
pub async fn upload_all(api: &Api, todo: Vec<Upload>, printer: &Printer) -> CliResult {
    let total: u64 = todo.iter().map(|t| t.size).sum();
    let pb = bar(printer, total, "uploading");
    let limit = Arc::new(Semaphore::new(PARALLEL));
    let mut tasks = tokio::task::JoinSet::new();
    let (small, large): (Vec<Upload>, Vec<Upload>) = todo.into_iter().partition(|u| {
        u.size <= BATCH_ITEM
            && u.complete_url.is_none()
            && u.parts.is_none()
            && u.url.starts_with(LOCAL_UPLOAD)
    });
    for batch in batches(small, |u| u.size) {
        let api = api.clone();
        let pb = pb.clone();
        let limit = limit.clone();
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await;
            let first = batch[0].local.clone();
            upload_batch(&api, batch, &pb).await.map_err(|e| (first, e))
        });
    }
    for up in large {
        let api = api.clone();
        let pb = pb.clone();
        let limit = limit.clone();
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await;
            let resume = Resumable::in_cache();
            upload_one(&api, &up, &pb, resume.as_ref())
                .await
                .map_err(|e| (up.local, e))
        });
    }
    while let Some(r) = tasks.join_next().await {
        match r.map_err(|e| CliError::unexpected(format!("upload task failed: {e}")))? {
            Ok(()) => {}
            Err((local, e)) => {
                pb.finish_and_clear();
                let e: CliError = e.into();
                return Err(
                    user_err!("uploading {} failed: {}", local.display(), e.message)
                        .hint("run the same command again: what arrived intact is not sent twice"),
                );
            }
        }
    }
    pb.finish_and_clear();
    Ok(())
}

/// A small download that can travel in a bundle with others.
#[derive(Debug, Clone)]
pub struct BundleItem {
    /// Its download URL on the server.
    pub url: String,
    /// Where it goes.
    pub dest: PathBuf,
    /// Expected SHA-256.
    pub sha256: String,
    /// Expected size.
    pub size: u64,
}

/// Whether a download can go in a bundle: small, and served by the server itself.
pub fn bundleable(url: &str, size: u64) -> bool {
    size <= BATCH_ITEM && url.starts_with(LOCAL_UPLOAD)
}

/// Splits small transfers into groups of at most `BATCH_FILES` files and `BATCH_BYTES`.
pub fn batches<T>(items: Vec<T>, size: impl Fn(&T) -> u64) -> Vec<Vec<T>> {
    let mut out: Vec<Vec<T>> = Vec::new();
    let mut bytes = 0;
    for it in items {
        let n = size(&it);
        match out.last_mut() {
            Some(b) if b.len() < BATCH_FILES && bytes + n <= BATCH_BYTES => {
                bytes += n;
                b.push(it);
            }
            _ => {
                bytes = n;
                out.push(vec![it]);
            }
        }
    }
    out
}

/// Downloads a bundle of small files in one request (see the server's
/// `POST /api/v1/blobs/bundle`), each checked against its SHA-256 before it takes its name.
pub async fn fetch_bundle(
    api: &Api,
    items: &[BundleItem],
    pb: &indicatif::ProgressBar,
) -> CliResult {
    let tokens: Vec<&str> = items.iter().map(|i| &i.url[LOCAL_UPLOAD.len()..]).collect();
    let resp = api
        .post_for_stream(
            "/api/v1/blobs/bundle",
            &serde_json::json!({ "tokens": tokens }),
        )
        .await?;
    // A bundle is a few MiB at most: read it whole, then check and write every file on one
    // blocking thread (a thread hop per file operation costs more than the writes).
    let body = resp
        .bytes()
        .await
        .map_err(|e| user_err!("the download broke off: {e}").hint("run the command again"))?;
    let items = items.to_vec();
    let written = tokio::task::spawn_blocking(move || write_bundle(&body, &items))
        .await
        .map_err(|e| CliError::unexpected(format!("download task failed: {e}")))??;
    pb.inc(written);
    Ok(())
}

fn write_bundle(body: &[u8], items: &[BundleItem]) -> CliResult<u64> {
    let mut at = 0usize;
    let mut written = 0;
    for it in items {
        let head = body
            .get(at..at + 9)
            .ok_or_else(|| user_err!("the download broke off").hint("run the command again"))?;
        let size = u64::from_be_bytes(head[1..].try_into().unwrap_or_default());
        if head[0] != 0 || size != it.size {
            return Err(user_err!(
                "the server could not supply {} (content {} is missing from its store)",
                it.dest.display(),
                it.sha256
            ));
        }
        let data = body
            .get(at + 9..at + 9 + size as usize)
            .ok_or_else(|| user_err!("the download broke off").hint("run the command again"))?;
        at += 9 + size as usize;
        let got = hex::encode(Sha256::digest(data));
        if got != it.sha256 {
            return Err(user_err!(
                "{} arrived damaged (sha256 {got}, expected {}); nothing was written",
                it.dest.display(),
                it.sha256
            )
            .hint("run the command again"));
        }
        if let Some(parent) = it.dest.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| user_err!("cannot create {}: {e}", parent.display()))?;
        }
        let tmp = part_path(&it.dest);
        std::fs::write(&tmp, data).map_err(|e| user_err!("cannot write {}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, &it.dest)
            .map_err(|e| user_err!("cannot write {}: {e}", it.dest.display()))?;
        written += size;
    }
    Ok(written)
}

/// One request with many small files (see the server's `POST /api/v1/blobs/batch`).
async fn upload_batch(
    api: &Api,
    batch: Vec<Upload>,
    pb: &indicatif::ProgressBar,
) -> Result<(), ApiError> {
    let files: Vec<(PathBuf, u64, String)> = batch
        .iter()
        .map(|u| {
            (
                u.local.clone(),
                u.size,
                u.url[LOCAL_UPLOAD.len()..].to_string(),
            )
        })
        .collect();
    // One blocking thread reads them all: a thread hop per small file costs more than the read.
    let body = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, ApiError> {
        let mut body = Vec::with_capacity(files.iter().map(|f| f.1 as usize + 600).sum());
        for (local, size, token) in &files {
            let data = std::fs::read(local)
                .map_err(|e| ApiError::Decode(format!("cannot read {}: {e}", local.display())))?;
            if data.len() as u64 != *size {
                return Err(ApiError::Decode(format!(
                    "{} changed while it was being uploaded",
                    local.display()
                )));
            }
            body.extend_from_slice(&(token.len() as u16).to_be_bytes());
            body.extend_from_slice(token.as_bytes());
            body.extend_from_slice(&data);
        }
        Ok(body)
    })
    .await
    .map_err(|e| ApiError::Decode(format!("upload task failed: {e}")))??;
    let result: BatchUploadResult = api
        .post_raw("/api/v1/blobs/batch", "application/octet-stream", body)
        .await?;
    for (u, item) in batch.iter().zip(&result.items) {
        if let Some(e) = &item.error {
            return Err(ApiError::Decode(format!("{}: {e}", u.local.display())));
        }
    }
    pb.inc(batch.iter().map(|u| u.size).sum());
    Ok(())
}

/// Parts of one large file in flight at once.
const PARALLEL_PARTS: usize = 4;

async fn upload_one(
    api: &Api,
    up: &Upload,
    pb: &indicatif::ProgressBar,
    resume: Option<&Resumable>,
) -> Result<(), ApiError> {
    let (completion, complete_url) = match &up.parts {
        None => {
            send_range(api, &up.url, &up.local, 0, up.size, pb).await?;
            (serde_json::json!({}), up.complete_url.clone())
        }
        Some(parts) => {
            let record = match (resume, &up.resume_key, &up.complete_url) {
                (Some(r), Some(key), Some(done)) => Some(r.record(key, up.size, parts, done)),
                _ => None,
            };
            let result = send_parts(api, up, pb, record.as_ref()).await;
            if let (Ok(_), Some(r)) = (&result, &record) {
                r.forget();
            }
            let (etags, complete_url) = result?;
            let parts: Vec<serde_json::Value> = etags
                .into_iter()
                .map(|(number, etag)| serde_json::json!({"number": number, "etag": etag}))
                .collect();
            (serde_json::json!({ "parts": parts }), Some(complete_url))
        }
    };
    if let Some(done) = &complete_url {
        let _: serde_json::Value = api.post(done, &completion).await?;
    }
    Ok(())
}

/// Sends the parts not stored yet, several at a time; every part's ETag in order, and the
/// completion URL of the upload they belong to.
async fn send_parts(
    api: &Api,
    up: &Upload,
    pb: &indicatif::ProgressBar,
    record: Option<&PartsRecord>,
) -> Result<(Vec<(u64, String)>, String), ApiError> {
    let (parts, complete_url, mut done) = match record {
        Some(r) => (r.parts.clone(), r.complete_url.clone(), r.done()),
        None => (
            up.parts.clone().unwrap_or_default(),
            up.complete_url.clone().unwrap_or_default(),
            std::collections::BTreeMap::new(),
        ),
    };
    pb.inc(
        parts
            .iter()
            .filter(|p| done.contains_key(&p.number))
            .map(|p| p.size)
            .sum(),
    );
    let limit = Arc::new(Semaphore::new(PARALLEL_PARTS));
    let mut tasks = tokio::task::JoinSet::new();
    for p in parts.into_iter().filter(|p| !done.contains_key(&p.number)) {
        let (api, local, pb, limit) = (api.clone(), up.local.clone(), pb.clone(), limit.clone());
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await;
            let etag = send_part(&api, &p, &local, &pb).await?;
            Ok::<_, ApiError>((p.number, etag))
        });
    }
    let mut failed = None;
    while let Some(r) = tasks.join_next().await {
        match r.map_err(|e| ApiError::Decode(format!("upload task failed: {e}")))? {
            Ok((number, etag)) => {
                done.insert(number, etag);
                if let Some(r) = record {
                    r.save(&done);
                }
            }
            // The other parts go on: what they store is kept for the next attempt.
            Err(e) => failed = failed.or(Some(e)),
        }
    }
    match failed {
        Some(e) => Err(e),
        None => Ok((done.into_iter().collect(), complete_url)),
    }
}

/// Where the state of multipart uploads is kept between commands: `uploads/` in the cache
/// directory, one small JSON file per upload.
pub struct Resumable {
    dir: PathBuf,
}

impl Resumable {
    /// In the local cache directory, when there is one.
    pub fn in_cache() -> Option<Resumable> {
        crate::cache::Cache::open().map(|c| Resumable::at(c.root().join("uploads")))
    }

    /// In `dir`.
    pub fn at(dir: PathBuf) -> Resumable {
        Resumable { dir }
    }

    /// The record of the upload named by `key`: an earlier attempt's, while its URLs are still
    /// valid for the same bytes, else a new one for this ticket.
    fn record(
        &self,
        key: &str,
        size: u64,
        parts: &[UploadPart],
        complete_url: &str,
    ) -> PartsRecord {
        let path = self.dir.join(format!(
            "{}.json",
            hex::encode(Sha256::digest(key.as_bytes()))
        ));
        let earlier = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<PartsState>(&b).ok())
            .filter(|s| s.size == size && s.valid_until > crate::spool::unix_now() + 300.0);
        let state = earlier.unwrap_or_else(|| PartsState {
            size,
            // Presigned part URLs live for an hour from the ticket; trust them for less.
            valid_until: crate::spool::unix_now() + 3000.0,
            complete_url: complete_url.to_string(),
            parts: parts.to_vec(),
            done: std::collections::BTreeMap::new(),
        });
        PartsRecord {
            path,
            parts: state.parts.clone(),
            complete_url: state.complete_url.clone(),
            state: std::sync::Mutex::new(state),
        }
    }
}

/// What one multipart upload has stored so far.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct PartsState {
    size: u64,
    /// Unix seconds until which the URLs below may be used.
    valid_until: f64,
    complete_url: String,
    parts: Vec<UploadPart>,
    /// Part number → ETag of the parts stored.
    done: std::collections::BTreeMap<u64, String>,
}

/// An upload's [`PartsState`] and the file it is kept in.
struct PartsRecord {
    path: PathBuf,
    parts: Vec<UploadPart>,
    complete_url: String,
    state: std::sync::Mutex<PartsState>,
}

impl PartsRecord {
    fn done(&self) -> std::collections::BTreeMap<u64, String> {
        self.state
            .lock()
            .map(|s| s.done.clone())
            .unwrap_or_default()
    }

    /// Keeps what is stored, for a later attempt (best effort: a record that cannot be written
    /// only means those parts are sent again).
    fn save(&self, done: &std::collections::BTreeMap<u64, String>) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        state.done = done.clone();
        if let Ok(text) = serde_json::to_vec(&*state) {
            let _ = std::fs::create_dir_all(self.dir());
            let tmp = self.path.with_extension("tmp");
            if std::fs::write(&tmp, text).is_ok() {
                let _ = std::fs::rename(&tmp, &self.path);
            }
        }
    }

    fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }

    /// The upload is complete: nothing to resume.
    fn forget(&self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Attempts per part of a multipart upload.
const PART_ATTEMPTS: u32 = 5;

/// Sends one part, retrying a failure that may pass (the network, a busy object store) after
/// 0.5, 1, 2 and 4 s; the part's ETag.
async fn send_part(
    api: &Api,
    part: &UploadPart,
    local: &Path,
    pb: &indicatif::ProgressBar,
) -> Result<String, ApiError> {
    let mut attempt = 0;
    loop {
        let sent = send_range(api, &part.url, local, part.offset, part.size, pb).await;
        match sent {
            Ok(Some(etag)) => return Ok(etag),
            Ok(None) => {
                return Err(ApiError::Decode(
                    "object storage answered a part without an ETag".into(),
                ));
            }
            Err(e) if e.transient() && attempt + 1 < PART_ATTEMPTS => {
                tokio::time::sleep(part_backoff(attempt)).await;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// The wait before retry `attempt` + 1 of a part.
fn part_backoff(attempt: u32) -> std::time::Duration {
    std::time::Duration::from_millis(500 << attempt.min(4))
}

/// Sends `size` bytes of `local` from `offset` to `url`; the answer's ETag.
async fn send_range(
    api: &Api,
    url: &str,
    local: &Path,
    offset: u64,
    size: u64,
    pb: &indicatif::ProgressBar,
) -> Result<Option<String>, ApiError> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let mut file = tokio::fs::File::open(local)
        .await
        .map_err(|e| ApiError::Decode(format!("cannot read {}: {e}", local.display())))?;
    file.seek(std::io::SeekFrom::Start(offset))
        .await
        .map_err(|e| ApiError::Decode(format!("cannot read {}: {e}", local.display())))?;
    let counter = pb.clone();
    let stream =
        tokio_util::io::ReaderStream::with_capacity(file.take(size), 256 * 1024).map(move |c| {
            if let Ok(b) = &c {
                counter.inc(b.len() as u64);
            }
            c
        });
    api.put_stream(url, reqwest::Body::wrap_stream(stream), size)
        .await
}

/// Downloads one run file to `dir/<its path>`, unless an identical file is already there.
/// Returns whether bytes were transferred.
pub async fn get_file(
    api: &Api,
    run: &str,
    path: &str,
    known: Option<RunFile>,
    dir: &Path,
    pb: &indicatif::ProgressBar,
) -> CliResult<bool> {
    let rel = normalize_path(path).map_err(|e| user_err!("refusing file {path:?}: {e}"))?;
    let dest = dir.join(&rel);
    let meta: RunFile = match known {
        Some(f) if f.download_url.is_some() => f,
        _ => {
            api.get(
                &format!("/api/v1/runs/{}/file", seg(run)),
                &[("path", rel.clone())],
            )
            .await?
        }
    };
    if same_content(&dest, &meta.sha256, meta.size).await {
        pb.inc(meta.size);
        return Ok(false);
    }
    let url = meta
        .download_url
        .ok_or_else(|| CliError::unexpected("the server gave no download URL"))?;
    ensure_parent(&dest).await?;
    let tmp = part_path(&dest);
    let result = async {
        let resp = match api.get_stream(&url).await {
            // A listed URL may have expired while earlier files were downloading.
            Err(ApiError::Status { status, .. }) if status == reqwest::StatusCode::FORBIDDEN => {
                let fresh: RunFile = api
                    .get(
                        &format!("/api/v1/runs/{}/file", seg(run)),
                        &[("path", rel.clone())],
                    )
                    .await?;
                let url = fresh
                    .download_url
                    .ok_or_else(|| CliError::unexpected("the server gave no download URL"))?;
                api.get_stream(&url).await?
            }
            r => r?,
        };
        save_verified(resp, &tmp, &dest, Some(&meta.sha256), &rel, pb).await
    }
    .await;
    if result.is_err() {
        let _ = tokio::fs::remove_file(&tmp).await;
    }
    result.map(|()| true)
}

/// Writes a download to `tmp` while hashing it, and renames it to `dest` only when it hashes
/// to `sha256` (when one is expected); `what` names it in errors. Hashing and writing each run
/// on their own blocking thread, fed the received chunks, so neither waits for the other or
/// for the network (one thread hop per chunk rather than per write).
pub async fn save_verified(
    mut resp: reqwest::Response,
    tmp: &Path,
    dest: &Path,
    sha256: Option<&str>,
    what: &str,
    pb: &indicatif::ProgressBar,
) -> CliResult {
    let cannot_write = |e: std::io::Error| user_err!("cannot write {}: {e}", tmp.display());
    let file = tokio::fs::File::create(tmp)
        .await
        .map_err(cannot_write)?
        .into_std()
        .await;
    let (hash_tx, hashed) = chunk_worker(Sha256::new(), |h, c| {
        h.update(c);
        Ok(())
    });
    let (write_tx, written) = chunk_worker(file, std::io::Write::write_all);
    let received = async {
        while let Some(chunk) = resp.chunk().await? {
            pb.inc(chunk.len() as u64);
            // A worker stops early only when it failed; its result below says why.
            if hash_tx.send(chunk.clone()).await.is_err() || write_tx.send(chunk).await.is_err() {
                break;
            }
        }
        Ok::<(), reqwest::Error>(())
    }
    .await;
    drop((hash_tx, write_tx));
    let joined = |e: tokio::task::JoinError| CliError::unexpected(format!("download task: {e}"));
    let file = written.await.map_err(joined)?.map_err(cannot_write)?;
    let hasher = hashed.await.map_err(joined)?.map_err(cannot_write)?;
    received.map_err(|e| user_err!("the download of {what} broke off: {e}"))?;
    drop(file);
    let got = hex::encode(hasher.finalize());
    if let Some(want) = sha256
        && got != want
    {
        return Err(user_err!(
            "{what} arrived damaged (sha256 {got}, expected {want}); nothing was written"
        )
        .hint("run the command again"));
    }
    tokio::fs::rename(tmp, dest)
        .await
        .map_err(|e| user_err!("cannot write {}: {e}", dest.display()))
}

/// A blocking thread that applies `step` to `state` with every chunk sent to it, until the
/// sender is dropped or a step fails; then hands back the state (or the failure).
fn chunk_worker<S: Send + 'static>(
    mut state: S,
    step: impl Fn(&mut S, &[u8]) -> std::io::Result<()> + Send + 'static,
) -> (
    tokio::sync::mpsc::Sender<bytes::Bytes>,
    tokio::task::JoinHandle<std::io::Result<S>>,
) {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(16);
    let task = tokio::task::spawn_blocking(move || {
        while let Some(c) = rx.blocking_recv() {
            step(&mut state, &c)?;
        }
        Ok(state)
    });
    (tx, task)
}

/// Whether `dest` is a file with exactly this content.
pub async fn same_content(dest: &Path, digest: &str, size: u64) -> bool {
    match tokio::fs::metadata(dest).await {
        Ok(m) if m.is_file() && m.len() == size => {}
        _ => return false,
    }
    matches!(hash_file(dest).await, Ok((d, _)) if d == digest)
}

/// `same_content` on the calling (blocking) thread.
pub fn same_content_blocking(dest: &Path, digest: &str, size: u64) -> bool {
    match std::fs::metadata(dest) {
        Ok(m) if m.is_file() && m.len() == size => {}
        _ => return false,
    }
    matches!(hash_file_blocking(dest), Ok((d, _)) if d == digest)
}

/// Downloads several files in parallel with one progress bar; small files served by the
/// server itself travel several hundred to a request.
pub async fn get_files(
    api: &Api,
    run: &str,
    files: Vec<RunFile>,
    dir: &Path,
    printer: &Printer,
) -> CliResult<usize> {
    // Every path is checked before the first byte is written.
    for f in &files {
        normalize_path(&f.path).map_err(|e| user_err!("refusing file {:?}: {e}", f.path))?;
    }
    let total = files.iter().map(|f| f.size).sum();
    let pb = bar(printer, total, "downloading");
    let limit = Arc::new(Semaphore::new(PARALLEL));
    let mut small = Vec::new();
    let mut large = Vec::new();
    for f in files {
        let url = f.download_url.clone().unwrap_or_default();
        let dest = dir.join(&f.path);
        if !bundleable(&url, f.size) {
            large.push(f);
        } else if same_content(&dest, &f.sha256, f.size).await {
            pb.inc(f.size);
        } else {
            small.push(BundleItem {
                url,
                dest,
                sha256: f.sha256,
                size: f.size,
            });
        }
    }
    let mut fetched = 0;
    let mut bundle_tasks = tokio::task::JoinSet::new();
    for bundle in batches(small, |i| i.size) {
        let (api, pb, limit) = (api.clone(), pb.clone(), limit.clone());
        bundle_tasks.spawn(async move {
            let _permit = limit.acquire_owned().await;
            fetch_bundle(&api, &bundle, &pb)
                .await
                .map(|()| bundle.len())
        });
    }
    let mut tasks = tokio::task::JoinSet::new();
    for f in large {
        let (api, pb, limit, run, dir) = (
            api.clone(),
            pb.clone(),
            limit.clone(),
            run.to_string(),
            dir.to_path_buf(),
        );
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await;
            let path = f.path.clone();
            get_file(&api, &run, &path, Some(f), &dir, &pb).await
        });
    }
    while let Some(r) = bundle_tasks.join_next().await {
        fetched += r.map_err(|e| CliError::unexpected(format!("download task failed: {e}")))??;
    }
    while let Some(r) = tasks.join_next().await {
        if r.map_err(|e| CliError::unexpected(format!("download task failed: {e}")))?? {
            fetched += 1;
        }
    }
    pb.finish_and_clear();
    Ok(fetched)
}

/// Files named on the command line: files as they are, directories recursively. A file is
/// stored under its name; a directory's files under `<directory name>/<path inside it>`.
pub fn collect(paths: &[PathBuf], prefix: Option<&str>) -> CliResult<Vec<LocalFile>> {
    let mut out = Vec::new();
    for p in paths {
        let meta =
            std::fs::metadata(p).map_err(|e| user_err!("cannot read {}: {e}", p.display()))?;
        let base = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if meta.is_file() {
            out.push(LocalFile {
                local: p.clone(),
                remote: base,
            });
        } else if meta.is_dir() {
            walk(p, &base, &mut out)?;
        }
    }
    if let Some(pre) = prefix {
        for f in &mut out {
            f.remote = format!("{}/{}", pre.trim_end_matches('/'), f.remote);
        }
    }
    Ok(out)
}

fn walk(dir: &Path, remote: &str, out: &mut Vec<LocalFile>) -> CliResult {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| user_err!("cannot read {}: {e}", dir.display()))?
        .filter_map(Result::ok)
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name().to_string_lossy().into_owned();
        let path = e.path();
        let r = if remote.is_empty() {
            name
        } else {
            format!("{remote}/{name}")
        };
        let ft = e
            .file_type()
            .map_err(|err| user_err!("cannot read {}: {err}", path.display()))?;
        if ft.is_dir() {
            walk(&path, &r, out)?;
        } else if ft.is_file() || (ft.is_symlink() && path.is_file()) {
            out.push(LocalFile {
                local: path,
                remote: r,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod part_retry_tests {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;

    use super::*;

    /// An object store stand-in: answers each PUT with the next status of `answers` (an ETag
    /// with 200), after reading the whole body; returns how many bodies it read.
    fn store(answers: Vec<u16>) -> (String, std::thread::JoinHandle<usize>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/part", listener.local_addr().unwrap());
        let handle = std::thread::spawn(move || {
            let mut bodies = 0;
            for status in answers {
                let (conn, _) = listener.accept().unwrap();
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut len = 0usize;
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap();
                    if line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap();
                    }
                }
                let mut body = vec![0u8; len];
                reader.read_exact(&mut body).unwrap();
                bodies += 1;
                let mut conn = conn;
                let reply = if status == 200 {
                    "HTTP/1.1 200 OK\r\nETag: \"abc\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string()
                } else {
                    format!(
                        "HTTP/1.1 {status} Busy\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    )
                };
                conn.write_all(reply.as_bytes()).unwrap();
            }
            bodies
        });
        (url, handle)
    }

    fn part_file() -> (tempfile::NamedTempFile, UploadPart) {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(&[7u8; 1000]).unwrap();
        let part = UploadPart {
            number: 1,
            offset: 100,
            size: 500,
            url: String::new(),
        };
        (f, part)
    }

    #[tokio::test]
    async fn a_failed_part_is_sent_again_after_a_pause() {
        let (url, store) = store(vec![503, 500, 200]);
        let (file, mut part) = part_file();
        part.url = url;
        let _ = rustls::crypto::ring::default_provider().install_default();
        let api = Api::with("http://127.0.0.1:9", None).unwrap();
        let etag = send_part(&api, &part, file.path(), &indicatif::ProgressBar::hidden())
            .await
            .unwrap();
        assert_eq!(etag, "\"abc\"");
        assert_eq!(store.join().unwrap(), 3);
    }

    #[tokio::test]
    async fn a_refused_part_is_not_retried() {
        let (url, store) = store(vec![403]);
        let (file, mut part) = part_file();
        part.url = url;
        let _ = rustls::crypto::ring::default_provider().install_default();
        let api = Api::with("http://127.0.0.1:9", None).unwrap();
        let err = send_part(&api, &part, file.path(), &indicatif::ProgressBar::hidden())
            .await
            .unwrap_err();
        assert!(!err.transient(), "{err:?}");
        assert_eq!(store.join().unwrap(), 1);
    }

    /// An object store and server stand-in for whole uploads: serves requests until dropped,
    /// logging `METHOD /path` of each; `PUT /old/2` is refused the first time.
    fn stand_in() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let seen = log.clone();
        std::thread::spawn(move || {
            let mut refused_before = false;
            for conn in listener.incoming() {
                let conn = conn.unwrap();
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut first = String::new();
                reader.read_line(&mut first).unwrap();
                let mut len = 0usize;
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap();
                    if line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap();
                    }
                }
                let mut body = vec![0u8; len];
                reader.read_exact(&mut body).unwrap();
                let request: Vec<&str> = first.split_whitespace().take(2).collect();
                let request = request.join(" ");
                seen.lock().unwrap().push(request.clone());
                let refused = request == "PUT /old/2" && !refused_before;
                refused_before |= refused;
                let reply = if refused {
                    "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                } else if request.starts_with("PUT") {
                    "HTTP/1.1 200 OK\r\nETag: \"e\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                } else {
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"
                };
                let mut conn = conn;
                conn.write_all(reply.as_bytes()).unwrap();
            }
        });
        (base, log)
    }

    fn ticket(base: &str, name: &str, file: &Path) -> Upload {
        let parts = (0..3)
            .map(|i| UploadPart {
                number: i + 1,
                offset: i * 400,
                size: if i == 2 { 200 } else { 400 },
                url: format!("{base}/{name}/{}", i + 1),
            })
            .collect::<Vec<_>>();
        Upload {
            local: file.to_path_buf(),
            url: parts[0].url.clone(),
            complete_url: Some(format!("/{name}-complete")),
            parts: Some(parts),
            size: 1000,
            resume_key: Some("run ab12cd34 w.bin".into()),
        }
    }

    #[tokio::test]
    async fn a_resumed_upload_sends_only_the_missing_parts() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let (base, log) = stand_in();
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(&[1u8; 1000]).unwrap();
        let state = tempfile::tempdir().unwrap();
        let resume = Resumable::at(state.path().to_path_buf());
        let api = Api::with(&base, None).unwrap();
        let pb = indicatif::ProgressBar::hidden();
        let first = ticket(&base, "old", file.path());
        assert!(upload_one(&api, &first, &pb, Some(&resume)).await.is_err());
        let mut sent: Vec<String> = log.lock().unwrap().drain(..).collect();
        sent.sort();
        assert_eq!(sent, ["PUT /old/1", "PUT /old/2", "PUT /old/3"]);
        // The next command gets a fresh ticket; the parts stored under the earlier one are kept.
        let again = ticket(&base, "fresh", file.path());
        upload_one(&api, &again, &pb, Some(&resume)).await.unwrap();
        let sent: Vec<String> = log.lock().unwrap().drain(..).collect();
        assert_eq!(sent, ["PUT /old/2", "POST /old-complete"]);
        // Done: nothing is left to resume.
        assert_eq!(std::fs::read_dir(state.path()).unwrap().count(), 0);
    }

    #[test]
    fn pauses_grow_and_stop_growing() {
        let waits: Vec<u64> = (0..7).map(|a| part_backoff(a).as_millis() as u64).collect();
        assert_eq!(waits, [500, 1000, 2000, 4000, 8000, 8000, 8000]);
    }
}
