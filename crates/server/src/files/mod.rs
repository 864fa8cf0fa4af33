//! Files attached to runs: configs, checkpoints, plots, the git diff of a dirty tree.
//!
//! A put names each file by path and content (SHA-256, size). Bytes this project already
//! holds are attached at once; for the rest the answer carries a short-lived signed upload
//! URL, and the file is attached when bytes hashing to the digest arrive there. Whether the
//! server holds a blob is only ever answered for the run's own project, so citing a digest
//! seen elsewhere never grants its bytes.

pub mod routes;
mod staged;
mod store;

pub(crate) use staged::download_transfer_url;

use std::collections::HashSet;

use axum::body::Body;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use wanllmdb_api_types::files::{
    BatchItem, BatchUploadResult, BundleRequest, CompleteUploadRequest, FileStatus, FileTicket,
    GcReport, PutFilesRequest, PutFilesResponse, RunFile, UploadPart, is_sha256_hex,
    normalize_path,
};

use crate::audit::{self, AuditAction, AuditEvent};
use crate::auth::Actor;
use crate::blobs::{BlobError, BlobStore};
use crate::error::{ApiError, ApiResult};
use crate::extract::ClientInfo;
use crate::runs::Runs;
use crate::state::AppState;
use crate::store::now_us;
use crate::telemetry::TransferKind;
use store::{Destination, Upload};
use wanllmdb_api_types::RunId;

/// Computes and records, in the background, the MD5 of blobs acknowledged without one (local
/// storage keeps large uploads' MD5 off the acknowledgement path).
pub(crate) fn fill_md5_later(state: AppState, digests: Vec<String>) {
    if digests.is_empty() {
        return;
    }
    tokio::spawn(async move {
        let BlobStore::Local(local) = &state.blobs else {
            return;
        };
        for digest in digests {
            let recorded = match local.md5_of(&digest).await {
                Ok(md5) => store::record_md5(&state.store, &digest, &md5)
                    .await
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            if let Err(e) = recorded {
                tracing::warn!("the MD5 of blob {digest} was not recorded: {e}");
            }
        }
    });
}

/// At start-up: computes the MD5s that a stop left pending.
pub(crate) async fn fill_pending_md5(state: &AppState) -> ApiResult<()> {
    let digests = store::blobs_without_md5(&state.store).await?;
    fill_md5_later(state.clone(), digests);
    Ok(())
}

/// Largest item of a batch upload.
const MAX_BATCH_ITEM: u64 = 4 * 1024 * 1024;
/// Most items in a batch upload.
const MAX_BATCH_ITEMS: usize = 1000;
/// Most bytes in a batch upload.
const MAX_BATCH_BYTES: u64 = 64 * 1024 * 1024;

/// Most files in one put request.
const MAX_FILES_PER_PUT: usize = 10_000;
/// Seconds an upload URL stays valid.
const UPLOAD_TTL: i64 = 3600;
/// Seconds a download URL stays valid.
const DOWNLOAD_TTL: i64 = 300;

/// What a signed blob URL allows.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct BlobClaims {
    /// `put` or `get`.
    op: String,
    dig: String,
    size: u64,
    exp: i64,
    /// For uploads: where the file is attached once the bytes arrive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    run: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    uid: Option<i64>,
    /// For uploads into an artifact draft: the draft's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ver: Option<i64>,
    /// With object storage: the key the client uploads to, verified on completion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    stg: Option<String>,
    /// With object storage, for large files: the multipart upload id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mpu: Option<String>,
    /// For downloads: what the bytes belong to, for the transfer counters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    knd: Option<TransferKind>,
}

impl BlobClaims {
    /// The upload these claims allow, once verified bytes with this MD5 are stored.
    fn upload<'a>(&'a self, md5: &'a str) -> Upload<'a> {
        let into = match (self.run, &self.path, self.uid, self.ver) {
            (Some(run_pk), Some(path), Some(user), None) => {
                Destination::RunFile { run_pk, path, user }
            }
            (None, None, Some(_), Some(draft)) => Destination::Draft(draft),
            _ => Destination::Nowhere,
        };
        Upload {
            digest: &self.dig,
            size: self.size,
            md5,
            into,
        }
    }

    /// Uploads into a draft are artifact content; downloads say what they are.
    fn kind(&self) -> TransferKind {
        match (self.ver, self.knd) {
            (Some(_), _) => TransferKind::Artifact,
            (None, Some(kind)) => kind,
            (None, None) => TransferKind::RunFile,
        }
    }
}

/// Where a client sends bytes.
pub(crate) struct UploadTarget {
    /// `PUT` the bytes here.
    pub url: String,
    /// Then `POST` here (object storage only: the server verifies what arrived).
    pub complete_url: Option<String>,
    /// Byte ranges to send separately (large files in object storage).
    pub parts: Option<Vec<UploadPart>>,
    /// Seconds both stay valid.
    pub expires_in: i64,
}

/// Signs an upload: to the server's own endpoint (local storage), or a presigned bucket URL
/// to a staging key plus a completion URL (object storage).
async fn upload_target(state: &AppState, mut claims: BlobClaims) -> ApiResult<UploadTarget> {
    match &state.blobs {
        BlobStore::Local(_) => Ok(UploadTarget {
            url: sign_url(state, &claims)?,
            complete_url: None,
            parts: None,
            expires_in: UPLOAD_TTL,
        }),
        BlobStore::S3(s3) => {
            let key = s3.staging_key();
            let mut parts = None;
            let url = if claims.size > s3.config().multipart_threshold {
                let id = s3
                    .create_multipart(&key)
                    .await
                    .map_err(|e| ApiError::Unavailable(format!("cannot start the upload: {e}")))?;
                let part = s3.config().part_size_for(claims.size);
                let list: Vec<UploadPart> = (0..claims.size.div_ceil(part))
                    .map(|i| UploadPart {
                        number: i + 1,
                        offset: i * part,
                        size: part.min(claims.size - i * part),
                        url: s3.presign_part(&key, &id, i + 1, UPLOAD_TTL as u64),
                    })
                    .collect();
                claims.mpu = Some(id);
                let first = list[0].url.clone();
                parts = Some(list);
                first
            } else {
                s3.presign("PUT", &key, UPLOAD_TTL as u64)
            };
            claims.stg = Some(key);
            Ok(UploadTarget {
                url,
                complete_url: Some(format!("{}/complete", sign_url(state, &claims)?)),
                parts,
                expires_in: UPLOAD_TTL,
            })
        }
    }
}

/// What an upload produced: a run file, or content of an artifact draft.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum UploadReceipt {
    /// The file attached to the run.
    RunFile(RunFile),
    /// Content received for an artifact version.
    Blob {
        /// SHA-256.
        sha256: String,
        /// MD5.
        md5: String,
        /// Size in bytes.
        size: u64,
    },
}

/// A signed URL to upload `digest` into the artifact draft `draft`.
pub(crate) async fn draft_upload_url(
    state: &AppState,
    digest: &str,
    size: u64,
    draft: i64,
    user: i64,
) -> ApiResult<UploadTarget> {
    let claims = BlobClaims {
        op: "put".into(),
        dig: digest.to_string(),
        size,
        exp: now_us() / 1_000_000 + UPLOAD_TTL,
        run: None,
        path: None,
        uid: Some(user),
        ver: Some(draft),
        stg: None,
        mpu: None,
        knd: None,
    };
    upload_target(state, claims).await
}

/// A signed URL to download `digest`, valid for five minutes.
pub(crate) fn download_url(
    state: &AppState,
    digest: &str,
    size: u64,
    kind: TransferKind,
) -> ApiResult<String> {
    if let BlobStore::S3(s3) = &state.blobs {
        return Ok(s3.presign("GET", &s3.content_key(digest), DOWNLOAD_TTL as u64));
    }
    sign_url(
        state,
        &BlobClaims {
            op: "get".into(),
            dig: digest.to_string(),
            size,
            exp: now_us() / 1_000_000 + DOWNLOAD_TTL,
            run: None,
            path: None,
            uid: None,
            ver: None,
            stg: None,
            mpu: None,
            knd: Some(kind),
        },
    )
}

fn sign_url(state: &AppState, claims: &BlobClaims) -> ApiResult<String> {
    let token = state
        .keys
        .sign(claims)
        .map_err(|e| ApiError::Internal(format!("cannot sign a URL: {e}")))?;
    Ok(format!("/api/v1/blobs/{token}"))
}

/// Which of these digests the project already holds (through a run file or a finalized
/// artifact version), with their sizes, and with the bytes present in the store. Nothing
/// outside the project counts, so citing a digest never grants its bytes.
pub(crate) async fn project_holds(
    state: &AppState,
    project_id: i64,
    digests: &[&str],
) -> ApiResult<HashSet<(String, u64)>> {
    let mut digests = digests.to_vec();
    digests.sort_unstable();
    digests.dedup();
    let mut held = HashSet::new();
    for (d, size) in store::held_by_project(&state.store, project_id, &digests).await? {
        if state.blobs.exists(&d).await {
            held.insert((d, size as u64));
        }
    }
    Ok(held)
}

/// The run-files service.
pub struct Files<'a> {
    /// Shared state.
    pub state: &'a AppState,
}

impl Files<'_> {
    /// Attaches what the project already holds and hands out upload URLs for the rest.
    pub async fn put(
        &self,
        actor: &Actor,
        run_id: &RunId,
        req: PutFilesRequest,
        client: &ClientInfo,
    ) -> ApiResult<PutFilesResponse> {
        let (run, _) = Runs { state: self.state }
            .load_for_write(actor, run_id)
            .await?;
        let user = actor.require_user()?.id;
        if req.files.len() > MAX_FILES_PER_PUT {
            return Err(ApiError::invalid(format!(
                "at most {MAX_FILES_PER_PUT} files per request; split the list"
            )));
        }
        let mut checked = Vec::with_capacity(req.files.len());
        for (i, f) in req.files.into_iter().enumerate() {
            let path = normalize_path(&f.path)
                .map_err(|e| ApiError::invalid(format!("files[{i}].path: {e}")))?;
            if !is_sha256_hex(&f.sha256) {
                return Err(ApiError::invalid(format!(
                    "files[{i}].sha256 must be 64 lowercase hex characters"
                )));
            }
            checked.push((path, f.sha256, f.size));
        }
        let digests: Vec<&str> = checked.iter().map(|f| f.1.as_str()).collect();
        let held = project_holds(self.state, run.project_id, &digests).await?;
        let mut out = Vec::with_capacity(checked.len());
        let mut attach = Vec::new();
        for (path, digest, size) in checked {
            if held.contains(&(digest.clone(), size)) {
                attach.push((path.clone(), digest.clone()));
                out.push(FileTicket {
                    path,
                    sha256: digest,
                    size,
                    status: FileStatus::Stored,
                    upload_url: None,
                    complete_url: None,
                    parts: None,
                    expires_in: None,
                });
                continue;
            }
            let claims = BlobClaims {
                op: "put".into(),
                dig: digest.clone(),
                size,
                exp: now_us() / 1_000_000 + UPLOAD_TTL,
                run: Some(run.pk),
                path: Some(path.clone()),
                uid: Some(user),
                ver: None,
                stg: None,
                mpu: None,
                knd: None,
            };
            let target = upload_target(self.state, claims).await?;
            out.push(FileTicket {
                path,
                sha256: digest,
                size,
                status: FileStatus::Upload,
                upload_url: Some(target.url),
                complete_url: target.complete_url,
                parts: target.parts,
                expires_in: Some(target.expires_in),
            });
        }
        self.attach_all(run.pk, &attach, user).await?;
        let ev = AuditEvent::new(AuditAction::RunFileUpload)
            .resource(format!("run:{run_id}"))
            .status(200)
            .metadata(serde_json::json!({
                "files": out.len(),
                "attached": attach.len(),
                "uploads": out.len() - attach.len(),
            }));
        audit::record(&self.state.store, ev.client(client).actor(actor)).await;
        Ok(PutFilesResponse { files: out })
    }

    /// Attaches files in one transaction.
    async fn attach_all(
        &self,
        run_pk: i64,
        files: &[(String, String)],
        user: i64,
    ) -> ApiResult<()> {
        if files.is_empty() {
            return Ok(());
        }
        store::attach_files(&self.state.store, run_pk, files, user, now_us()).await
    }

    /// Receives the bytes of a signed upload and attaches the file.
    pub async fn receive(&self, token: &str, body: Body) -> ApiResult<UploadReceipt> {
        let c: BlobClaims = self.claims(token, "put")?;
        let BlobStore::Local(local) = &self.state.blobs else {
            return Err(ApiError::invalid(
                "this server keeps content in object storage: PUT the bytes to the upload URL \
                 the put answer gave, then POST its complete URL",
            ));
        };
        if c.stg.is_some() {
            return Err(ApiError::invalid("this URL is not an upload URL"));
        }
        // Mark the blob as fresh before its bytes land, so a garbage collection running
        // meanwhile leaves it alone (it only takes blobs untouched for an upload's lifetime).
        self.touch_blob(&c.dig).await?;
        let stored = local
            .write(&c.dig, c.size, body)
            .await
            .map_err(upload_error)?;
        // An empty MD5 marks it as pending until `fill_md5_later` has read the blob back.
        let receipt = self
            .record_upload(&c, stored.md5.clone().unwrap_or_default())
            .await
            .inspect(|_| self.state.telemetry.uploaded(c.kind(), c.size));
        if stored.md5.is_none() {
            fill_md5_later(self.state.clone(), vec![c.dig.clone()]);
        }
        receipt
    }

    /// Verifies bytes a client put into object storage and records them like an upload
    /// through the server.
    pub async fn complete(
        &self,
        token: &str,
        req: CompleteUploadRequest,
    ) -> ApiResult<UploadReceipt> {
        let c: BlobClaims = self.claims(token, "put")?;
        let (BlobStore::S3(s3), Some(staging)) = (&self.state.blobs, c.stg.as_deref()) else {
            return Err(ApiError::invalid(
                "this upload needs no completion: the bytes were verified when they arrived",
            ));
        };
        self.touch_blob(&c.dig).await?;
        if let Some(id) = &c.mpu {
            if req.parts.is_empty() {
                return Err(ApiError::invalid(
                    "this upload was sent in parts: give every part's number and ETag",
                ));
            }
            let parts: Vec<(u64, String)> =
                req.parts.into_iter().map(|p| (p.number, p.etag)).collect();
            s3.complete_multipart(staging, id, &parts)
                .await
                .map_err(upload_error)?;
        } else if !req.parts.is_empty() {
            return Err(ApiError::invalid("this upload was not sent in parts"));
        }
        let stored = s3
            .verify_and_store(staging, &c.dig, c.size)
            .await
            .map_err(upload_error)?;
        self.record_upload(&c, stored.md5.unwrap_or_default())
            .await
            .inspect(|_| self.state.telemetry.uploaded(c.kind(), c.size))
    }

    /// After verified bytes are stored: the blob row, and the run file or the draft entries.
    async fn record_upload(&self, c: &BlobClaims, md5: String) -> ApiResult<UploadReceipt> {
        let done = self.record_many(&[c.upload(&md5)]).await?[0];
        match (c.run, &c.path, c.ver) {
            (Some(run_pk), Some(path), None) => {
                if !done {
                    return Err(ApiError::not_found("run"));
                }
                self.row(run_pk, path)
                    .await?
                    .map(UploadReceipt::RunFile)
                    .ok_or_else(|| ApiError::not_found(format!("file {path}")))
            }
            (None, None, Some(_)) if done => Ok(UploadReceipt::Blob {
                sha256: c.dig.clone(),
                md5,
                size: c.size,
            }),
            (None, None, Some(_)) => Err(ApiError::not_found(
                "artifact draft (it was committed, deleted or expired; create the version again)",
            )),
            _ => Err(ApiError::invalid("this URL is not an upload URL")),
        }
    }

    /// Records verified uploads in one transaction: each blob row, and the run file attached
    /// (to a run that still exists) or the draft's entries no longer pending. Per upload,
    /// whether its run or draft was still there.
    async fn record_many(&self, uploads: &[Upload<'_>]) -> ApiResult<Vec<bool>> {
        store::record_uploads(&self.state.store, uploads, now_us()).await
    }

    /// Receives many small uploads in one request body: frames of a 2-byte big-endian token
    /// length, the upload URL's token, and exactly the bytes that token was signed for. Each is
    /// checked against its digest; all are synced to disk together and recorded in one
    /// transaction (local storage only).
    pub async fn receive_batch(&self, body: Body) -> ApiResult<BatchUploadResult> {
        use tokio::io::AsyncReadExt;
        let BlobStore::Local(local) = &self.state.blobs else {
            return Err(ApiError::invalid(
                "this server keeps content in object storage: upload each file to its own URL",
            ));
        };
        let stream = body
            .into_data_stream()
            .map(|r| r.map_err(std::io::Error::other));
        let mut reader = tokio_util::io::StreamReader::new(stream);
        let mut claims = Vec::new();
        let mut blobs = Vec::new();
        let mut total = 0u64;
        loop {
            let mut len = [0u8; 2];
            match reader.read_exact(&mut len).await {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
                Err(e) => return Err(ApiError::invalid(format!("batch body unreadable: {e}"))),
            }
            let len = u16::from_be_bytes(len) as usize;
            let mut token = vec![0u8; len];
            reader
                .read_exact(&mut token)
                .await
                .map_err(|_| ApiError::invalid("batch body ends inside a token"))?;
            let token = String::from_utf8(token)
                .map_err(|_| ApiError::invalid("batch body: a token is not text"))?;
            let c = self.claims(&token, "put")?;
            if c.stg.is_some() {
                return Err(ApiError::invalid("batch body: not a local upload token"));
            }
            if c.size > MAX_BATCH_ITEM {
                return Err(ApiError::invalid(format!(
                    "batch body: {} bytes in one item; items are at most {MAX_BATCH_ITEM} bytes (send larger files on their own)",
                    c.size
                )));
            }
            total += c.size;
            if claims.len() >= MAX_BATCH_ITEMS || total > MAX_BATCH_BYTES {
                return Err(ApiError::PayloadTooLarge(format!(
                    "a batch holds at most {MAX_BATCH_ITEMS} items and {MAX_BATCH_BYTES} bytes"
                )));
            }
            let mut data = vec![0u8; c.size as usize];
            reader.read_exact(&mut data).await.map_err(|_| {
                ApiError::invalid(format!(
                    "batch body ends inside the bytes of {} ({} announced)",
                    c.dig, c.size
                ))
            })?;
            blobs.push((c.dig.clone(), bytes::Bytes::from(data)));
            claims.push(c);
        }
        if claims.is_empty() {
            return Err(ApiError::invalid(
                "the batch body is empty: send one or more items of a 2-byte token length, the \
                 token and the file's bytes",
            ));
        }
        // Fresh before the bytes land, so a garbage collection running meanwhile keeps them.
        let digests: Vec<&str> = claims.iter().map(|c| c.dig.as_str()).collect();
        self.touch_blobs(&digests).await?;
        let stored = local
            .write_many(blobs)
            .await
            .map_err(|e| ApiError::Unavailable(format!("upload not stored: {e}")))?;
        let ok: Vec<Upload> = claims
            .iter()
            .zip(&stored)
            .filter_map(|(c, r)| {
                r.as_ref()
                    .ok()
                    .map(|b| c.upload(b.md5.as_deref().unwrap_or_default()))
            })
            .collect();
        let mut done = self.record_many(&ok).await?.into_iter();
        let items = claims
            .iter()
            .zip(stored)
            .map(|(c, r)| {
                let error = match r {
                    Err(m) => Some(format!("upload rejected: {m}")),
                    Ok(_) if done.next() == Some(false) => {
                        Some("its run or artifact draft no longer exists".to_string())
                    }
                    Ok(_) => None,
                };
                if error.is_none() {
                    self.state.telemetry.uploaded(c.kind(), c.size);
                }
                BatchItem {
                    sha256: c.dig.clone(),
                    stored: error.is_none(),
                    error,
                }
            })
            .collect();
        Ok(BatchUploadResult { items })
    }

    async fn touch_blobs(&self, digests: &[&str]) -> ApiResult<()> {
        store::touch_blobs(&self.state.store, digests, now_us()).await
    }

    async fn touch_blob(&self, digest: &str) -> ApiResult<()> {
        self.touch_blobs(&[digest]).await
    }

    /// Deletes blobs no run file refers to and that no upload touched for an upload URL's
    /// lifetime, and abandoned partial uploads. Server administrators only.
    pub async fn collect_garbage(
        &self,
        actor: &Actor,
        dry_run: bool,
        client: &ClientInfo,
    ) -> ApiResult<GcReport> {
        let user = actor.require_user()?;
        if !user.is_admin {
            return Err(ApiError::Forbidden(
                "garbage collection is for server administrators".into(),
            ));
        }
        let cutoff = now_us() - UPLOAD_TTL * 1_000_000;
        if !dry_run {
            // Drafts whose upload URLs have all expired can never be committed.
            store::delete_expired_drafts(&self.state.store, cutoff).await?;
        }
        let candidates = store::unreferenced_blobs(&self.state.store, cutoff).await?;
        let mut report = GcReport {
            dry_run,
            ..GcReport::default()
        };
        for (digest, size) in candidates {
            if !dry_run {
                // Checked again at the moment of deletion: a reference or an upload may have
                // arrived since the listing.
                if !store::delete_unreferenced_blob(&self.state.store, &digest, cutoff).await? {
                    continue;
                }
                self.state.blobs.remove(&digest).await.map_err(|e| {
                    ApiError::Unavailable(format!("cannot delete blob {digest}: {e}"))
                })?;
            }
            report.blobs += 1;
            report.bytes += size as u64;
        }
        if !dry_run {
            report.partial_bytes = self
                .state
                .blobs
                .remove_stale_partials(UPLOAD_TTL as u64)
                .await
                .map_err(|e| ApiError::Unavailable(format!("cannot clean partial uploads: {e}")))?;
        }
        audit::record(
            &self.state.store,
            AuditEvent::new(AuditAction::BlobGc)
                .client(client)
                .user(user.id, &user.username)
                .status(200)
                .metadata(serde_json::json!({
                    "dry_run": dry_run, "blobs": report.blobs, "bytes": report.bytes,
                })),
        )
        .await;
        Ok(report)
    }

    fn claims(&self, token: &str, op: &str) -> ApiResult<BlobClaims> {
        let c: BlobClaims = self.state.keys.verify(token).map_err(|_| {
            ApiError::Forbidden(
                "this transfer URL is invalid or has expired; ask for a new one".into(),
            )
        })?;
        if c.op != op || !is_sha256_hex(&c.dig) {
            return Err(ApiError::Forbidden(format!("this URL does not allow {op}")));
        }
        Ok(c)
    }

    /// Streams many small downloads as one body (local storage): per token, in order, a
    /// status byte (0 the bytes follow, 1 missing), the size as 8 bytes big-endian, the bytes.
    /// Every token is checked before the first byte is sent.
    pub async fn send_bundle(&self, req: BundleRequest) -> ApiResult<Response> {
        let BlobStore::Local(local) = &self.state.blobs else {
            return Err(ApiError::invalid(
                "this server serves content from object storage: download each file from its URL",
            ));
        };
        if req.tokens.len() > MAX_BATCH_ITEMS {
            return Err(ApiError::invalid(format!(
                "at most {MAX_BATCH_ITEMS} downloads per bundle"
            )));
        }
        let mut items = Vec::with_capacity(req.tokens.len());
        let mut total = 0;
        for t in &req.tokens {
            let c = self.claims(t, "get")?;
            total += c.size;
            if c.size > MAX_BATCH_ITEM || total > MAX_BATCH_BYTES {
                return Err(ApiError::invalid(format!(
                    "a bundle holds files of at most {MAX_BATCH_ITEM} bytes, {MAX_BATCH_BYTES} in all"
                )));
            }
            let kind = c.kind();
            items.push((c.dig, c.size, kind));
        }
        // Files are read a megabyte's worth at a time on a blocking thread (a thread hop per
        // small file costs more than reading it), so memory stays bounded.
        let mut chunks: Vec<Vec<(String, u64, TransferKind)>> = Vec::new();
        let mut bytes = u64::MAX;
        for it in items {
            if bytes >= 1024 * 1024 {
                chunks.push(Vec::new());
                bytes = 0;
            }
            bytes += it.1;
            if let Some(c) = chunks.last_mut() {
                c.push(it);
            }
        }
        let local = local.clone();
        let telemetry = self.state.telemetry.clone();
        let stream = futures_util::stream::iter(chunks).then(move |chunk| {
            let local = local.clone();
            let telemetry = telemetry.clone();
            async move {
                tokio::task::spawn_blocking(move || {
                    let mut out = Vec::new();
                    for (digest, size, kind) in chunk {
                        match local.read_small(&digest, size) {
                            Some(data) => {
                                telemetry.downloaded(kind, size);
                                out.push(0u8);
                                out.extend_from_slice(&size.to_be_bytes());
                                out.extend_from_slice(&data);
                            }
                            None => {
                                out.push(1u8);
                                out.extend_from_slice(&0u64.to_be_bytes());
                            }
                        }
                    }
                    bytes::Bytes::from(out)
                })
                .await
                .map_err(std::io::Error::other)
            }
        });
        let mut resp = Response::new(Body::from_stream(stream));
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        Ok(resp)
    }

    /// Streams the bytes of a signed download.
    pub async fn send(&self, token: &str) -> ApiResult<Response> {
        let c = self.claims(token, "get")?;
        let BlobStore::Local(local) = &self.state.blobs else {
            return Err(ApiError::not_found(
                "blob (this server serves content from object storage)",
            ));
        };
        let stream = local
            .read_stream(&c.dig)
            .await
            .map_err(|_| ApiError::not_found("blob"))?;
        let stream = self.state.telemetry.count_download(c.kind(), stream);
        let mut resp = Response::new(Body::from_stream(stream));
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(c.size));
        if let Ok(v) = HeaderValue::from_str(&c.dig) {
            h.insert("x-checksum-sha256", v);
        }
        Ok(resp)
    }

    /// Files of a run, by path; with `download_urls`, each with a download URL (one audit
    /// event for the whole listing).
    pub async fn list(
        &self,
        actor: &Actor,
        run_id: &RunId,
        download_urls: bool,
        client: &ClientInfo,
    ) -> ApiResult<Vec<RunFile>> {
        let (run, _) = Runs { state: self.state }.load(actor, run_id).await?;
        let mut rows = store::run_files(&self.state.store, run.pk).await?;
        if download_urls {
            for f in &mut rows {
                f.download_url = Some(self.download_url(f)?);
            }
            self.audit_download(actor, client, format!("run:{run_id}/*"), rows.len())
                .await;
        }
        Ok(rows)
    }

    fn download_url(&self, f: &RunFile) -> ApiResult<String> {
        download_url(self.state, &f.sha256, f.size, TransferKind::RunFile)
    }

    async fn audit_download(
        &self,
        actor: &Actor,
        client: &ClientInfo,
        resource: String,
        files: usize,
    ) {
        let mut ev = AuditEvent::new(AuditAction::RunFileDownload)
            .client(client)
            .resource(resource)
            .status(200)
            .metadata(serde_json::json!({ "files": files }));
        if let Some(u) = &actor.user {
            ev = ev.user(u.id, &u.username);
        }
        audit::record(&self.state.store, ev).await;
    }

    async fn row(&self, run_pk: i64, path: &str) -> ApiResult<Option<RunFile>> {
        store::run_file(&self.state.store, run_pk, path).await
    }

    /// One file, with a short-lived download URL; recorded in the audit log.
    pub async fn get(
        &self,
        actor: &Actor,
        run_id: &RunId,
        path: &str,
        client: &ClientInfo,
    ) -> ApiResult<RunFile> {
        let (run, _) = Runs { state: self.state }.load(actor, run_id).await?;
        let path = normalize_path(path).map_err(|e| ApiError::invalid(format!("path: {e}")))?;
        let mut f = self
            .row(run.pk, &path)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("file {path} of run {run_id}")))?;
        f.download_url = Some(self.download_url(&f)?);
        self.audit_download(actor, client, format!("run:{run_id}/{path}"), 1)
            .await;
        Ok(f)
    }

    /// Detaches a file (the bytes stay until garbage collection).
    pub async fn delete(
        &self,
        actor: &Actor,
        run_id: &RunId,
        path: &str,
        client: &ClientInfo,
    ) -> ApiResult<()> {
        let (run, _) = Runs { state: self.state }
            .load_for_write(actor, run_id)
            .await?;
        let path = normalize_path(path).map_err(|e| ApiError::invalid(format!("path: {e}")))?;
        if !store::detach_file(&self.state.store, run.pk, &path).await? {
            return Err(ApiError::not_found(format!("file {path} of run {run_id}")));
        }
        let ev = AuditEvent::new(AuditAction::RunFileDelete)
            .resource(format!("run:{run_id}/{path}"))
            .status(204);
        audit::record(&self.state.store, ev.client(client).actor(actor)).await;
        Ok(())
    }
}

fn upload_error(e: BlobError) -> ApiError {
    match e {
        BlobError::Mismatch(m) => ApiError::invalid(format!("upload rejected: {m}")),
        BlobError::Io(e) => ApiError::Unavailable(format!("upload not stored: {e}")),
    }
}
