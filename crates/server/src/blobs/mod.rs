//! Content-addressed blob storage: a blob's key is the SHA-256 of its bytes, so equal content
//! is stored once. Two backends: a local directory (`<data-dir>/blobs/sha256/ab/abcd…`, the
//! default), where uploads and downloads stream through the server's signed URLs, and
//! S3-compatible object storage (`s3`), where clients use presigned bucket URLs directly.
//! Either way bytes are streamed, never held in memory, and content is only kept when it
//! hashes to the digest it was announced with.

pub mod s3;

use std::sync::Arc;

use std::path::PathBuf;

use axum::body::Body;
use futures_util::StreamExt;
use md5::Md5;
use sha2::{Digest, Sha256};

/// Why a blob was not stored.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// The bytes do not match the announced digest or size.
    #[error("{0}")]
    Mismatch(String),
    /// The client went away or the disk failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Uploads through the server at least this large are acknowledged before their MD5 is
/// known: MD5 is wire metadata, not the content address, and at ~0.6 GB/s on one core it
/// would take the CPU the transfer needs. Below this it costs less than a round trip.
pub const DEFERRED_MD5_MIN: u64 = 8 << 20;

/// What a completed upload produced.
#[derive(Debug, Clone)]
pub struct StoredBlob {
    /// MD5 of the bytes, hex; None when it is computed after the upload is acknowledged (see
    /// [`DEFERRED_MD5_MIN`] and [`LocalBlobs::md5_of`]).
    pub md5: Option<String>,
}

/// What arrived in an upload whose content was not announced beforehand.
#[derive(Debug, Clone)]
pub struct ReadBack {
    /// SHA-256 of the bytes, hex (the content address).
    pub sha256: String,
    /// MD5 of the bytes, hex.
    pub md5: String,
    /// Size in bytes.
    pub size: u64,
}

impl ReadBack {
    /// Why these are not the `size` bytes hashing to `digest` that were announced, if not.
    pub fn mismatch(&self, digest: &str, size: u64) -> Option<String> {
        mismatch(&self.sha256, self.size, digest, size)
    }
}

/// Why `got` bytes hashing to `sha256` are not the `size` bytes hashing to `digest` that were
/// announced, if not.
fn mismatch(sha256: &str, got: u64, digest: &str, size: u64) -> Option<String> {
    if got != size {
        Some(format!("{got} bytes arrived, {size} were announced"))
    } else if sha256 != digest {
        Some(format!(
            "the bytes hash to sha256 {sha256}, not the announced {digest}"
        ))
    } else {
        None
    }
}

/// What a stream delivered to a temporary file.
struct Received {
    sha256: String,
    /// None when it was not asked for.
    md5: Option<String>,
    size: u64,
}

/// Where content lives.
#[derive(Debug, Clone)]
pub enum BlobStore {
    /// A local directory.
    Local(LocalBlobs),
    /// An S3-compatible bucket.
    S3(Arc<s3::S3Blobs>),
}

impl BlobStore {
    /// Blobs under `root`.
    pub fn local(root: PathBuf) -> BlobStore {
        BlobStore::Local(LocalBlobs { root })
    }

    /// Whether the bytes of `digest` are known to be stored. The database is the record of
    /// what exists; the local backend also checks the file, the S3 backend trusts the record
    /// (a HEAD per digest would make large manifests slow).
    pub async fn exists(&self, digest: &str) -> bool {
        match self {
            BlobStore::Local(l) => l.exists(digest).await,
            BlobStore::S3(_) => true,
        }
    }

    /// Deletes a blob's bytes (missing is fine).
    pub async fn remove(&self, digest: &str) -> Result<(), BlobError> {
        match self {
            BlobStore::Local(l) => Ok(l.remove(digest).await?),
            BlobStore::S3(s) => s.delete(&s.content_key(digest)).await,
        }
    }

    /// Removes abandoned partial uploads older than `max_age_secs`; returns the bytes freed.
    pub async fn remove_stale_partials(&self, max_age_secs: u64) -> Result<u64, BlobError> {
        match self {
            BlobStore::Local(l) => Ok(l.remove_stale_partials(max_age_secs).await?),
            BlobStore::S3(s) => s.remove_stale_uploads(max_age_secs).await,
        }
    }

    /// Whether the store answers (readiness).
    pub async fn check(&self) -> Result<(), BlobError> {
        match self {
            BlobStore::Local(l) => {
                tokio::fs::create_dir_all(&l.root).await?;
                Ok(())
            }
            BlobStore::S3(s) => s.check().await,
        }
    }
}

/// A hash computed on a blocking thread from the chunks sent to it; the hex digest when the
/// sender is dropped.
fn hasher<D: Digest + Send + 'static>() -> (
    tokio::sync::mpsc::Sender<bytes::Bytes>,
    tokio::task::JoinHandle<String>,
) {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(8);
    let task = tokio::task::spawn_blocking(move || {
        let mut h = D::new();
        while let Some(c) = rx.blocking_recv() {
            h.update(&c);
        }
        hex::encode(h.finalize())
    });
    (tx, task)
}

/// A blocking thread that writes the chunks sent to it to `file` and syncs it when the sender
/// is dropped; it stops at the first failure, which the handle returns.
fn writer(
    mut file: std::fs::File,
) -> (
    tokio::sync::mpsc::Sender<bytes::Bytes>,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    use std::io::Write;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(8);
    let task = tokio::task::spawn_blocking(move || {
        while let Some(c) = rx.blocking_recv() {
            file.write_all(&c)?;
        }
        file.sync_all()
    });
    (tx, task)
}

/// The local blob directory.
#[derive(Debug, Clone)]
pub struct LocalBlobs {
    root: PathBuf,
}

impl LocalBlobs {
    /// Blobs under `root`.
    pub fn new(root: PathBuf) -> LocalBlobs {
        LocalBlobs { root }
    }

    /// Where the bytes of `digest` are kept.
    pub(crate) fn path(&self, digest: &str) -> PathBuf {
        self.root.join("sha256").join(&digest[..2]).join(digest)
    }

    /// Whether the bytes of `digest` are stored.
    pub async fn exists(&self, digest: &str) -> bool {
        tokio::fs::metadata(self.path(digest)).await.is_ok()
    }

    /// Streams `body` to storage, checking it is exactly `size` bytes hashing to `digest`.
    pub async fn write(
        &self,
        digest: &str,
        size: u64,
        body: Body,
    ) -> Result<StoredBlob, BlobError> {
        let (tmp, got) = self.receive(body, size, size < DEFERRED_MD5_MIN).await?;
        if let Some(m) = mismatch(&got.sha256, got.size, digest, size) {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(BlobError::Mismatch(m));
        }
        self.keep(&tmp, digest).await?;
        Ok(StoredBlob { md5: got.md5 })
    }

    /// Streams `body` (at most `limit` bytes) to storage under whatever digest it has.
    pub async fn write_any(&self, body: Body, limit: u64) -> Result<ReadBack, BlobError> {
        let (tmp, got) = self.receive(body, limit, true).await?;
        self.keep(&tmp, &got.sha256).await?;
        let Some(md5) = got.md5 else {
            return Err(BlobError::Io(std::io::Error::other(
                "the MD5 was not computed",
            )));
        };
        Ok(ReadBack {
            sha256: got.sha256,
            md5,
            size: got.size,
        })
    }

    /// MD5 of a stored blob, read back on a blocking thread (for blobs acknowledged without
    /// one; the bytes are usually still in the page cache). One at a time, so a burst of large
    /// uploads does not take every core.
    pub async fn md5_of(&self, digest: &str) -> std::io::Result<String> {
        static ONE_AT_A_TIME: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);
        let _permit = ONE_AT_A_TIME
            .acquire()
            .await
            .map_err(std::io::Error::other)?;
        let path = self.path(digest);
        tokio::task::spawn_blocking(move || {
            use std::io::Read;
            let mut f = std::fs::File::open(path)?;
            let mut h = Md5::new();
            let mut buf = vec![0u8; 1 << 20];
            loop {
                match f.read(&mut buf)? {
                    0 => return Ok(hex::encode(h.finalize())),
                    n => h.update(&buf[..n]),
                }
            }
        })
        .await
        .map_err(std::io::Error::other)?
    }

    /// Streams a body to a temporary file, hashing it (MD5 too when `with_md5`); more than
    /// `limit` bytes is refused.
    async fn receive(
        &self,
        body: Body,
        limit: u64,
        with_md5: bool,
    ) -> Result<(PathBuf, Received), BlobError> {
        let dir = self.root.join("tmp");
        private_dir(&dir).await?;
        let tmp = dir.join(format!("upload.{}", crate::auth::keys::random_hex(8)));
        match Self::stream_to(&tmp, body, limit, with_md5).await {
            Ok(got) => Ok((tmp, got)),
            Err(e) => {
                let _ = tokio::fs::remove_file(&tmp).await;
                Err(e)
            }
        }
    }

    async fn stream_to(
        tmp: &std::path::Path,
        body: Body,
        limit: u64,
        with_md5: bool,
    ) -> Result<Received, BlobError> {
        let file = crate::datadir::private_file_options().open(tmp)?;
        // SHA-256, MD5 and the write each run on their own thread, fed the received chunks:
        // together on one thread they cap a stream near 340 MB/s here, and a write through
        // `tokio::fs` costs a copy and a thread hop per chunk.
        let (write_tx, written) = writer(file);
        let (sha_tx, sha) = hasher::<Sha256>();
        let (md5_tx, md5) = with_md5.then(hasher::<Md5>).unzip();
        let mut got = 0u64;
        let mut stream = body.into_data_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                BlobError::Io(std::io::Error::other(format!("upload interrupted: {e}")))
            })?;
            got += chunk.len() as u64;
            if got > limit {
                return Err(BlobError::Mismatch(format!(
                    "more than the announced or allowed {limit} bytes arrived"
                )));
            }
            // A hashing thread only stops early if it panicked, the writer when a write
            // failed; the joins below report either.
            let _ = sha_tx.send(chunk.clone()).await;
            if let Some(tx) = &md5_tx {
                let _ = tx.send(chunk.clone()).await;
            }
            if write_tx.send(chunk).await.is_err() {
                break;
            }
        }
        drop((sha_tx, md5_tx, write_tx));
        let joined = |r: Result<String, tokio::task::JoinError>| {
            r.map_err(|e| BlobError::Io(std::io::Error::other(format!("hashing failed: {e}"))))
        };
        // Written and synced before anything is acknowledged.
        written.await.map_err(std::io::Error::other)??;
        let sha256 = joined(sha.await)?;
        let md5 = match md5 {
            Some(task) => Some(joined(task.await)?),
            None => None,
        };
        Ok(Received {
            sha256,
            md5,
            size: got,
        })
    }

    /// Moves a received temporary file to the content address of `digest`.
    async fn keep(&self, tmp: &std::path::Path, digest: &str) -> Result<(), BlobError> {
        let dest = self.path(digest);
        if let Some(parent) = dest.parent() {
            private_dir(parent).await?;
        }
        if let Err(e) = tokio::fs::rename(tmp, &dest).await {
            let _ = tokio::fs::remove_file(tmp).await;
            return Err(e.into());
        }
        Ok(())
    }

    /// Stores several small blobs already in memory, checking each against its digest, with
    /// one round of `fsync`s for all of them (the cost that dominates small uploads). Returns,
    /// per blob, its MD5 or why it was refused.
    pub async fn write_many(
        &self,
        blobs: Vec<(String, bytes::Bytes)>,
    ) -> std::io::Result<Vec<Result<StoredBlob, String>>> {
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || {
            use std::io::Write;
            let tmp_dir = root.join("tmp");
            crate::datadir::create_private_dir(&tmp_dir)?;
            let mut out = Vec::with_capacity(blobs.len());
            let mut written = Vec::new();
            for (digest, data) in &blobs {
                let actual = hex::encode(Sha256::digest(data));
                if actual != *digest {
                    out.push(Err(format!(
                        "the bytes hash to sha256 {actual}, not the announced {digest}"
                    )));
                    continue;
                }
                let tmp = tmp_dir.join(format!("{digest}.{}", crate::auth::keys::random_hex(8)));
                let mut f = crate::datadir::private_file_options().open(&tmp)?;
                f.write_all(data)?;
                written.push((f, tmp, digest.clone()));
                out.push(Ok(StoredBlob {
                    md5: Some(hex::encode(Md5::digest(data))),
                }));
            }
            // The first sync commits the journal with every file's data; the rest are cheap.
            for (f, _, _) in &written {
                f.sync_all()?;
            }
            for (_, tmp, digest) in written {
                let dest = root.join("sha256").join(&digest[..2]).join(&digest);
                if let Some(parent) = dest.parent() {
                    crate::datadir::create_private_dir(parent)?;
                }
                std::fs::rename(&tmp, &dest)?;
            }
            Ok(out)
        })
        .await
        .map_err(std::io::Error::other)?
    }

    /// Deletes a stored blob's bytes (missing is fine).
    pub async fn remove(&self, digest: &str) -> std::io::Result<()> {
        match tokio::fs::remove_file(self.path(digest)).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Removes partial uploads older than `max_age_secs` (abandoned transfers); returns how
    /// many bytes that freed.
    pub async fn remove_stale_partials(&self, max_age_secs: u64) -> std::io::Result<u64> {
        let dir = self.root.join("tmp");
        let mut entries = match tokio::fs::read_dir(&dir).await {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e),
        };
        let mut freed = 0;
        while let Some(e) = entries.next_entry().await? {
            let meta = e.metadata().await?;
            let age = meta
                .modified()
                .ok()
                .and_then(|m| m.elapsed().ok())
                .map_or(0, |d| d.as_secs());
            if age > max_age_secs && tokio::fs::remove_file(e.path()).await.is_ok() {
                freed += meta.len();
            }
        }
        Ok(freed)
    }

    /// The bytes of a small stored blob, read on the calling (blocking) thread; None when it
    /// is missing or not of the expected size.
    pub fn read_small(&self, digest: &str, size: u64) -> Option<Vec<u8>> {
        let data = std::fs::read(self.path(digest)).ok()?;
        (data.len() as u64 == size).then_some(data)
    }

    /// Opens a stored blob for reading.
    pub async fn open(&self, digest: &str) -> std::io::Result<tokio::fs::File> {
        tokio::fs::File::open(self.path(digest)).await
    }

    /// The bytes of a stored blob as a stream of 1 MiB chunks, read on a blocking thread
    /// straight into the buffers that go out (`tokio::fs` reads cost a copy and a thread hop
    /// per 256 KiB); the file is opened before this returns, so a missing blob is an error here.
    pub async fn read_stream(
        &self,
        digest: &str,
    ) -> std::io::Result<impl futures_util::Stream<Item = std::io::Result<bytes::Bytes>> + use<>>
    {
        const CHUNK: usize = 1 << 20;
        let file = self.open(digest).await?.into_std().await;
        let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(4);
        tokio::task::spawn_blocking(move || {
            use std::io::Read;
            loop {
                let mut buf = Vec::with_capacity(CHUNK);
                let read = (&file).take(CHUNK as u64).read_to_end(&mut buf);
                let done = !matches!(read, Ok(n) if n > 0);
                let item = read.map(|_| bytes::Bytes::from(buf));
                // An empty read is the end; a closed channel, a client that went away.
                if matches!(item, Ok(ref b) if b.is_empty())
                    || tx.blocking_send(item).is_err()
                    || done
                {
                    return;
                }
            }
        });
        Ok(futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        }))
    }
}

/// Creates a blob directory only the server's user can enter (content is as private as the
/// database that says whose it is).
async fn private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || crate::datadir::create_private_dir(&dir))
        .await
        .map_err(std::io::Error::other)?
}
