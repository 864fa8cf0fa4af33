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
use sqlx::Row;
use wanllmdb_api_types::files::{
    RegisterFileRequest, RunFile, StagedFile, TransferUrl, is_sha256_hex, normalize_path,
};

use super::{ATTACH_SQL, Files, INSERT_BLOB_SQL, UPLOAD_TTL, upload_error};
use crate::audit::{self, AuditEvent};
use crate::auth::{Actor, random_hex};
use crate::blobs::{BlobError, BlobStore, ReadBack};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ClientInfo, PublicBase};
use crate::runs::Runs;
use crate::store::{format_time, now_us};
use crate::telemetry::TransferKind;
use crate::{on_backend, with_tx};

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

/// Records stored bytes in `blobs` (or refreshes their time) with `$tx` inside `with_tx!`.
macro_rules! insert_blob {
    ($tx:ident, $got:expr, $now:expr) => {
        sqlx::query(INSERT_BLOB_SQL)
            .bind(&$got.sha256)
            .bind($got.size as i64)
            .bind(&$got.md5)
            .bind($now)
            .execute(&mut *$tx)
            .await?
    };
}

/// A staged upload as stored.
struct Staged {
    id: String,
    staging_key: Option<String>,
    received: Option<ReadBack>,
}

impl Files<'_> {
    /// An absolute URL that takes a plain `PUT` of the bytes of `path`, for an hour.
    pub async fn upload_url(
        &self,
        actor: &Actor,
        run_id: &str,
        path: &str,
        base: &PublicBase,
        client: &ClientInfo,
    ) -> ApiResult<TransferUrl> {
        const INSERT_STAGED_UPLOADS: &str = "INSERT INTO staged_uploads (id, run_pk, path, staging_key, created_by, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)";
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
        on_backend!(self.state.store, write, |pool| {
            sqlx::query(INSERT_STAGED_UPLOADS)
                .bind(&id)
                .bind(run.pk)
                .bind(&path)
                .bind(&staging_key)
                .bind(user)
                .bind(now)
                .bind(exp * 1_000_000)
                .execute(pool)
                .await?;
        });
        let ev = AuditEvent::new("run_file_upload", "data_modification", "info")
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

    /// Receives the bytes put to a name-first upload URL (local storage): they are hashed
    /// and stored as they stream in, and wait for the client to register the file.
    pub async fn receive_staged(&self, token: &str, body: Body) -> ApiResult<StagedFile> {
        const UPDATE_STAGED_UPLOADS: &str = "UPDATE staged_uploads SET digest = $1, size = $2, md5 = $3, uploaded_at = $4 WHERE id = $5";
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
        let path: Option<String> = on_backend!(self.state.store, read, |pool| {
            sqlx::query_scalar("SELECT path FROM staged_uploads WHERE id = $1")
                .bind(&claims.sid)
                .fetch_optional(pool)
                .await?
        });
        let path = path.ok_or_else(|| {
            ApiError::not_found("upload (its run was deleted, or the file was already registered)")
        })?;
        let got = local
            .write_any(body, MAX_STAGED_BYTES)
            .await
            .map_err(upload_error)?;
        let now = now_us();
        with_tx!(self.state.store, |tx| {
            insert_blob!(tx, got, now);
            sqlx::query(UPDATE_STAGED_UPLOADS)
                .bind(&got.sha256)
                .bind(got.size as i64)
                .bind(&got.md5)
                .bind(now)
                .bind(&claims.sid)
                .execute(&mut *tx)
                .await?;
        });
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
        run_id: &str,
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
        let staged = self.latest_staged(run.pk, &path).await?.ok_or_else(|| {
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
        self.attach_staged(run.pk, &path, &staged.id, &got, user)
            .await?;
        let ev = AuditEvent::new("run_file_register", "data_modification", "info")
            .resource(format!("run:{run_id}/{path}"))
            .status(201)
            .metadata(serde_json::json!({ "size": got.size, "sha256": got.sha256 }));
        audit::record(&self.state.store, ev.client(client).actor(actor)).await;
        self.row(run.pk, &path)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("file {path} of run {run_id}")))
    }

    /// The newest unexpired staged upload of a path.
    async fn latest_staged(&self, run_pk: i64, path: &str) -> ApiResult<Option<Staged>> {
        Ok(on_backend!(self.state.store, read, |pool| {
            match sqlx::query(
                "SELECT id, staging_key, digest, size, md5 FROM staged_uploads
                 WHERE run_pk = $1 AND path = $2 AND expires_at > $3
                 ORDER BY created_at DESC, id DESC LIMIT 1",
            )
            .bind(run_pk)
            .bind(path)
            .bind(now_us())
            .fetch_optional(pool)
            .await?
            {
                None => None,
                Some(r) => {
                    let digest: Option<String> = r.try_get("digest")?;
                    let size: Option<i64> = r.try_get("size")?;
                    let md5: Option<String> = r.try_get("md5")?;
                    Some(Staged {
                        id: r.try_get("id")?,
                        staging_key: r.try_get("staging_key")?,
                        received: match (digest, size, md5) {
                            (Some(sha256), Some(size), Some(md5)) => Some(ReadBack {
                                sha256,
                                md5,
                                size: size as u64,
                            }),
                            _ => None,
                        },
                    })
                }
            }
        }))
    }

    /// Records the blob, attaches the file and retires the path's staged uploads up to this
    /// one, in one transaction.
    async fn attach_staged(
        &self,
        run_pk: i64,
        path: &str,
        staged_id: &str,
        got: &ReadBack,
        user: i64,
    ) -> ApiResult<()> {
        let now = now_us();
        with_tx!(self.state.store, |tx| {
            insert_blob!(tx, got, now);
            sqlx::query(ATTACH_SQL)
                .bind(run_pk)
                .bind(path)
                .bind(&got.sha256)
                .bind(user)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "DELETE FROM staged_uploads WHERE run_pk = $1 AND path = $2
                 AND created_at <= (SELECT created_at FROM staged_uploads WHERE id = $3)",
            )
            .bind(run_pk)
            .bind(path)
            .bind(staged_id)
            .execute(&mut *tx)
            .await?;
        });
        Ok(())
    }

    /// An absolute URL that takes a plain `GET` of one file of a run, for five minutes.
    pub async fn download_url_for(
        &self,
        actor: &Actor,
        run_id: &str,
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
