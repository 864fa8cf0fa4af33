//! Reading and writing blob bytes in either blob store, with every byte checked against its
//! digest on the way.

use std::pin::Pin;

use futures_util::TryStreamExt;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::{Progress, TransferError};
use crate::blobs::BlobStore;
use crate::blobs::s3::S3Blobs;

/// The bytes of one blob, as they are read.
pub type BlobReader = Pin<Box<dyn AsyncRead + Send>>;

/// How long a presigned URL used here stays valid.
const URL_SECS: u64 = 3600;

const CHUNK: usize = 256 * 1024;

fn http() -> Result<reqwest::Client, TransferError> {
    reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(|e| TransferError::Invalid(format!("cannot build an HTTP client: {e}")))
}

fn storage_err(what: String) -> TransferError {
    TransferError::Io(std::io::Error::other(what))
}

/// Opens a stored blob; None when the store does not have it.
pub async fn open(store: &BlobStore, digest: &str) -> Result<Option<BlobReader>, TransferError> {
    match store {
        BlobStore::Local(l) => match l.open(digest).await {
            Ok(f) => Ok(Some(Box::pin(f))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        },
        BlobStore::S3(s3) => {
            let url = s3.presign("GET", &s3.content_key(digest), URL_SECS);
            let resp = http()?
                .get(url)
                .send()
                .await
                .map_err(|e| storage_err(format!("object storage unreachable: {e}")))?;
            if resp.status() == reqwest::StatusCode::NOT_FOUND {
                return Ok(None);
            }
            if !resp.status().is_success() {
                return Err(storage_err(format!(
                    "object storage answered {} to GET of blob {digest}",
                    resp.status()
                )));
            }
            let stream = resp.bytes_stream().map_err(std::io::Error::other);
            Ok(Some(Box::pin(tokio_util::io::StreamReader::new(stream))))
        }
    }
}

/// Copies a blob from `reader` to `out` (when given), checking it is exactly `size` bytes
/// that hash to `digest`; a mismatch is described in the error.
pub async fn copy_checked(
    reader: &mut (dyn AsyncRead + Send + Unpin),
    digest: &str,
    size: u64,
    mut out: Option<&mut (dyn AsyncWrite + Send + Unpin)>,
    progress: &dyn Progress,
) -> Result<(), TransferError> {
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut got = 0u64;
    loop {
        let n = reader.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        got += n as u64;
        if got > size {
            break;
        }
        hash.update(&buf[..n]);
        if let Some(w) = out.as_mut() {
            w.write_all(&buf[..n]).await?;
        }
        progress.advance(n as u64);
    }
    if got != size {
        return Err(TransferError::Invalid(format!(
            "blob {digest}: {} bytes stored, {size} recorded",
            if got > size {
                format!("more than {size}")
            } else {
                got.to_string()
            }
        )));
    }
    let actual = hex::encode(hash.finalize());
    if actual != digest {
        return Err(TransferError::Invalid(format!(
            "blob {digest}: its bytes hash to {actual}"
        )));
    }
    Ok(())
}

/// Stores a blob in `store` unless it is already there; the bytes are checked against the
/// digest before they become visible. Returns whether it was uploaded.
pub async fn store(
    store: &BlobStore,
    digest: &str,
    size: u64,
    reader: BlobReader,
) -> Result<bool, TransferError> {
    match store {
        BlobStore::Local(l) => {
            if l.exists(digest).await {
                return Ok(false);
            }
            let stream = tokio_util::io::ReaderStream::with_capacity(reader, CHUNK);
            l.write(digest, size, axum::body::Body::from_stream(stream))
                .await?;
            Ok(true)
        }
        BlobStore::S3(s3) => {
            if s3.head(&s3.content_key(digest)).await? == Some(size) {
                return Ok(false);
            }
            let staging = s3.staging_key();
            if size > s3.config().multipart_threshold {
                put_parts(s3, &staging, size, reader).await?;
            } else {
                put_whole(s3, &staging, size, reader).await?;
            }
            // Reads the upload back and moves it into place only when it hashes to `digest`.
            s3.verify_and_store(&staging, digest, size).await?;
            Ok(true)
        }
    }
}

async fn put_whole(
    s3: &S3Blobs,
    key: &str,
    size: u64,
    reader: BlobReader,
) -> Result<(), TransferError> {
    let body =
        reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(reader, CHUNK));
    let resp = http()?
        .put(s3.presign("PUT", key, URL_SECS))
        .header(reqwest::header::CONTENT_LENGTH, size)
        .body(body)
        .send()
        .await
        .map_err(|e| storage_err(format!("upload to object storage failed: {e}")))?;
    if !resp.status().is_success() {
        return Err(storage_err(format!(
            "object storage answered {} to an upload",
            resp.status()
        )));
    }
    Ok(())
}

async fn put_parts(
    s3: &S3Blobs,
    key: &str,
    size: u64,
    mut reader: BlobReader,
) -> Result<(), TransferError> {
    let id = s3.create_multipart(key).await?;
    let result = async {
        let part_size = s3.config().part_size_for(size);
        let client = http()?;
        let mut parts = Vec::new();
        let mut left = size;
        let mut number = 1;
        while left > 0 {
            let len = part_size.min(left);
            let mut buf = Vec::with_capacity(len as usize);
            (&mut reader).take(len).read_to_end(&mut buf).await?;
            if buf.len() as u64 != len {
                return Err(TransferError::Invalid(format!(
                    "the blob ended {} bytes early",
                    left - buf.len() as u64
                )));
            }
            let resp = client
                .put(s3.presign_part(key, &id, number, URL_SECS))
                .body(buf)
                .send()
                .await
                .map_err(|e| storage_err(format!("part upload failed: {e}")))?;
            if !resp.status().is_success() {
                return Err(storage_err(format!(
                    "object storage answered {} to a part upload",
                    resp.status()
                )));
            }
            let etag = resp
                .headers()
                .get("etag")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            parts.push((number, etag));
            left -= len;
            number += 1;
        }
        s3.complete_multipart(key, &id, &parts).await?;
        Ok(())
    }
    .await;
    if result.is_err() {
        let _ = s3.abort_multipart(key, &id).await;
    }
    result
}
