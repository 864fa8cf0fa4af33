//! Name-first uploads of run files, for clients that know a file's name before its content
//! (`url = get_upload_url("model.pth")`, a plain `PUT` of the bytes, then
//! `register_file("model.pth", size=…)`).
//!
//! The upload URL is absolute and needs no other credentials until it expires. With local
//! storage it points at this server, which hashes the bytes as they stream to disk; with
//! object storage it is a presigned bucket URL to a staging key, read back at registration.
//! Either way nothing is attached to the run until the client registers the file and what
//! arrived matches the size (and the hashes) it says it sent.

use axum::body::Body;
use serde::{Deserialize, Serialize};
use wanllmdb_api_types::files::{
    RegisterFileRequest, RunFile, StagedFile, TransferUrl, is_sha256_hex, normalize_path,
};

use super::store::{self, NewStaged};
use super::{Files, UPLOAD_TTL, upload_error};
use crate::audit::{self, AuditAction, AuditEvent};
use crate::auth::{Actor, random_hex};
use crate::blobs::{BlobError, BlobStore};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ClientInfo, PublicBase};
use crate::runs::Runs;
use crate::store::{format_time, now_us};
use crate::telemetry::TransferKind;
use wanllmdb_api_types::RunId;

/// Largest file a name-first upload URL takes (the bytes stream to disk, never to memory).
pub const MAX_STAGED_BYTES: u64 = 1 << 40;

/// What a name-first upload URL allows: putting bytes for one staged upload.
#[derive(Debug, Serialize, Deserialize)]
struct StageClaims {
    /// Always `stage`, so no other signed token passes for one.
    op: String,
    /// The staged upload's id.
    sid: String,
    exp: i64,
}

impl Files<'_> {
    /// An absolute URL that takes a plain `PUT` of the bytes of `path`, for an hour.
    pub async fn upload_url(
        &self,
        actor: &Actor,
        run_id: &RunId,
        path: &str,
        base: &PublicBase,
        client: &ClientInfo,
    ) -> ApiResult<TransferUrl> {
        let (run, _) = Runs { state: self.state }
            .load_for_write(actor, run_id)
            .await?;
        let user = actor.require_user()?.id;
        let path = normalize_path(path).map_err(|e| ApiError::invalid(format!("path: {e}")))?;
        let id = random_hex(16);
        let now = now_us();
        let exp = now / 1_000_000 + UPLOAD_TTL;
        let (url, staging_key) = match &self.state.blobs {
            BlobStore::S3(s3) => {
                let key = s3.staging_key();
                (s3.presign("PUT", &key, UPLOAD_TTL as u64), Some(key))
            }
            BlobStore::Local(_) => {
                let claims = StageClaims {
                    op: "stage".into(),
                    sid: id.clone(),
                    exp,
                };
                let token = self
                    .state
                    .keys
                    .sign(&claims)
                    .map_err(|e| ApiError::Internal(format!("cannot sign a URL: {e}")))?;
                (base.absolute(&format!("/api/v1/uploads/{token}")), None)
            }
        };
        let staged = NewStaged {
            id: &id,
            run_pk: run.pk,
            path: &path,
            staging_key: staging_key.as_deref(),
            user,
            now,
            expires_at: exp * 1_000_000,
        };
        store::insert_staged(&self.state.store, &staged).await?;
        let ev = AuditEvent::new(AuditAction::RunFileUpload)
            .resource(format!("run:{run_id}/{path}"))
            .status(200)
            .metadata(serde_json::json!({ "upload_url": true }));
        audit::record(&self.state.store, ev.client(client).actor(actor)).await;
        Ok(TransferUrl {
            path,
            url,
            method: "PUT".into(),
            expires_at: format_time(exp * 1_000_000),
            expires_in: UPLOAD_TTL,
            size: None,
            sha256: None,
            md5: None,
        })
    }

    /// Stores the bytes of a request body as the run file `path` (replacing the file there):
    /// hashed as they stream to disk, then attached. With object storage they pass through a
    /// local spool file on their way to the bucket. For clients that send a file in one request
    /// with their credentials (the MLflow artifact proxy).
    pub async fn put_bytes(
        &self,
        actor: &Actor,
        run_id: &RunId,
        path: &str,
        body: Body,
        client: &ClientInfo,
    ) -> ApiResult<RunFile> {
        let (run, _) = Runs { state: self.state }
            .load_for_write(actor, run_id)
            .await?;
        let user = actor.require_user()?.id;
        let path = normalize_path(path).map_err(|e| ApiError::invalid(format!("path: {e}")))?;
        let got = match &self.state.blobs {
            BlobStore::Local(local) => local
                .write_any(body, MAX_STAGED_BYTES)
                .await
                .map_err(upload_error)?,
            BlobStore::S3(s3) => {
                let spool = crate::blobs::LocalBlobs::new(self.state.config.data_dir.join("spool"));
                let got = spool
                    .write_any(body, MAX_STAGED_BYTES)
                    .await
                    .map_err(upload_error)?;
                let sent = s3
                    .put_file(&spool.path(&got.sha256), &got.sha256, got.size)
                    .await;
                let _ = spool.remove(&got.sha256).await;
                sent.map_err(upload_error)?;
                got
            }
        };
        let upload = store::Upload {
            digest: &got.sha256,
            size: got.size,
            md5: &got.md5,
            into: store::Destination::RunFile {
                run_pk: run.pk,
                path: &path,
                user,
            },
        };
        if !store::record_uploads(&self.state.store, &[upload], now_us()).await?[0] {
            return Err(ApiError::not_found(format!("run {run_id}")));
        }
        self.state
            .telemetry
            .uploaded(TransferKind::RunFile, got.size);
        let ev = AuditEvent::new(AuditAction::RunFileUpload)
            .resource(format!("run:{run_id}/{path}"))
            .status(200)
            .metadata(serde_json::json!({ "size": got.size }));
        audit::record(&self.state.store, ev.client(client).actor(actor)).await;
        store::run_file(&self.state.store, run.pk, &path)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("file {path} of run {run_id}")))
    }

    /// Receives the bytes put to a name-first upload URL (local storage): they are hashed
    /// and stored as they stream in, and wait for the client to register the file.
    pub async fn receive_staged(&self, token: &str, body: Body) -> ApiResult<StagedFile> {
        let claims: StageClaims = self.state.keys.verify(token).map_err(|_| {
            ApiError::Forbidden(
                "this upload URL is invalid or has expired; ask for a new one".into(),
            )
        })?;
        if claims.op != "stage" {
            return Err(ApiError::Forbidden("this URL is not an upload URL".into()));
        }
        let BlobStore::Local(local) = &self.state.blobs else {
            return Err(ApiError::invalid(
                "this server keeps content in object storage: PUT the bytes to the URL the upload-url answer gave",
            ));
        };
        let path = store::staged_path(&self.state.store, &claims.sid).await?;
        let path = path.ok_or_else(|| {
            ApiError::not_found("upload (its run was deleted, or the file was already registered)")
        })?;
        let got = local
            .write_any(body, MAX_STAGED_BYTES)
            .await
            .map_err(upload_error)?;
        store::record_staged_bytes(&self.state.store, &claims.sid, &got, now_us()).await?;
        self.state
            .telemetry
            .uploaded(TransferKind::RunFile, got.size);
        Ok(StagedFile {
            path,
            size: got.size,
            sha256: got.sha256,
            md5: got.md5,
        })
    }

    /// Attaches a file put to a name-first upload URL, once what arrived is exactly the size
    /// (and, when given, the hashes) the client says it sent.
    pub async fn register(
        &self,
        actor: &Actor,
        run_id: &RunId,
        req: RegisterFileRequest,
        client: &ClientInfo,
    ) -> ApiResult<RunFile> {
        let (run, _) = Runs { state: self.state }
            .load_for_write(actor, run_id)
            .await?;
        let user = actor.require_user()?.id;
        let path =
            normalize_path(&req.path).map_err(|e| ApiError::invalid(format!("path: {e}")))?;
        let md5 = check_hex("md5", req.md5.as_deref(), 32)?;
        let sha256 = check_hex("sha256", req.sha256.as_deref(), 64)?;
        let staged = store::latest_staged(&self.state.store, run.pk, &path, now_us()).await?;
        let staged = staged.ok_or_else(|| {
            ApiError::invalid(format!(
                "no upload URL was issued for {path} of run {run_id} (or it expired): ask for one with POST /api/v1/runs/{run_id}/files/upload-url, PUT the bytes, then register"
            ))
        })?;
        let got = match (&staged.received, &staged.staging_key, &self.state.blobs) {
            (Some(got), _, _) => got.clone(),
            (None, Some(key), BlobStore::S3(s3)) => {
                s3.read_back(key).await.map_err(|e| match e {
                    BlobError::Mismatch(_) => nothing_uploaded(&path),
                    other => upload_error(other),
                })?
            }
            _ => return Err(nothing_uploaded(&path)),
        };
        let mut problems = Vec::new();
        if got.size != req.size {
            problems.push(format!(
                "size: {} bytes arrived, register says {}",
                got.size, req.size
            ));
        }
        if let Some(m) = md5.filter(|m| *m != got.md5) {
            problems.push(format!(
                "md5: the bytes hash to {}, register says {m}",
                got.md5
            ));
        }
        if let Some(h) = sha256.filter(|h| *h != got.sha256) {
            problems.push(format!(
                "sha256: the bytes hash to {}, register says {h}",
                got.sha256
            ));
        }
        if !problems.is_empty() {
            return Err(ApiError::InvalidInputDetails {
                message: format!(
                    "the upload of {path} does not match: {}; PUT the file again and register it",
                    problems.join("; ")
                ),
                details: serde_json::json!({ "received": { "size": got.size, "md5": got.md5, "sha256": got.sha256 } }),
            });
        }
        if let (None, Some(key), BlobStore::S3(s3)) =
            (&staged.received, &staged.staging_key, &self.state.blobs)
        {
            s3.move_into_place(key, &got.sha256, got.size)
                .await
                .map_err(upload_error)?;
        }
        store::attach_staged(
            &self.state.store,
            run.pk,
            &path,
            &staged.id,
            &got,
            user,
            now_us(),
        )
        .await?;
        let ev = AuditEvent::new(AuditAction::RunFileRegister)
            .resource(format!("run:{run_id}/{path}"))
            .status(201)
            .metadata(serde_json::json!({ "size": got.size, "sha256": got.sha256 }));
        audit::record(&self.state.store, ev.client(client).actor(actor)).await;
        self.row(run.pk, &path)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("file {path} of run {run_id}")))
    }

    /// An absolute URL that takes a plain `GET` of one file of a run, for five minutes.
    pub async fn download_url_for(
        &self,
        actor: &Actor,
        run_id: &RunId,
        path: &str,
        base: &PublicBase,
        client: &ClientInfo,
    ) -> ApiResult<TransferUrl> {
        let f = self.get(actor, run_id, path, client).await?;
        let url = f.download_url.as_deref().unwrap_or_default();
        Ok(download_transfer_url(
            f.path.clone(),
            base.absolute(url),
            f.size,
            Some(f.sha256),
            Some(f.md5),
        ))
    }
}

/// A download URL answer, valid for [`super::DOWNLOAD_TTL`] from now.
pub(crate) fn download_transfer_url(
    path: String,
    url: String,
    size: u64,
    sha256: Option<String>,
    md5: Option<String>,
) -> TransferUrl {
    let exp = now_us() + super::DOWNLOAD_TTL * 1_000_000;
    TransferUrl {
        path,
        url,
        method: "GET".into(),
        expires_at: format_time(exp),
        expires_in: super::DOWNLOAD_TTL,
        size: Some(size),
        sha256,
        md5,
    }
}

fn nothing_uploaded(path: &str) -> ApiError {
    ApiError::invalid(format!(
        "nothing has been uploaded to the upload URL of {path} yet: PUT the bytes to it first"
    ))
}

/// Lower-cases and checks an optional hex digest of `len` characters.
fn check_hex(name: &str, v: Option<&str>, len: usize) -> ApiResult<Option<String>> {
    let Some(v) = v else { return Ok(None) };
    let v = v.trim().to_ascii_lowercase();
    let ok = if len == 64 {
        is_sha256_hex(&v)
    } else {
        v.len() == len && v.bytes().all(|b| b.is_ascii_hexdigit())
    };
    if ok {
        Ok(Some(v))
    } else {
        Err(ApiError::invalid(format!(
            "{name} must be {len} hexadecimal characters"
        )))
    }
}
