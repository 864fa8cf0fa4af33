//! The local content cache: downloaded artifact content kept by SHA-256, so getting the same
//! content again (another version, another directory) copies it from disk instead of the
//! network. Location: `$WANLLMDB_CACHE_DIR`, else the platform cache directory
//! (`~/.cache/wanllmdb` on Linux). Everything in it can be deleted at any time.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::client::Api;
use crate::error::{CliResult, user_err};
use crate::transfer::{ensure_parent, part_path, save_verified};

/// Environment variable naming the cache directory.
pub const CACHE_DIR_ENV: &str = "WANLLMDB_CACHE_DIR";

/// The cache directory.
#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
}

impl Cache {
    /// The configured cache, if a location is known.
    pub fn open() -> Option<Cache> {
        let root = match std::env::var_os(CACHE_DIR_ENV) {
            Some(d) if !d.is_empty() => PathBuf::from(d),
            _ => dirs::cache_dir()?.join("wanllmdb"),
        };
        Some(Cache { root })
    }

    /// Where the cache lives.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn blob(&self, digest: &str) -> PathBuf {
        self.root
            .join("blobs")
            .join("sha256")
            .join(&digest[..2.min(digest.len())])
            .join(digest)
    }

    /// Whether content of this digest and size is cached (not yet checked).
    pub async fn holds(&self, digest: &str, size: u64) -> bool {
        matches!(tokio::fs::metadata(self.blob(digest)).await, Ok(m) if m.len() == size)
    }

    /// Copies cached content to `dest` (through a temporary name), checking its digest on
    /// the way unless it was verified moments ago (`verified`). False when the cache does not
    /// hold it intact (a damaged copy is dropped).
    pub async fn copy_out(
        &self,
        digest: &str,
        size: u64,
        dest: &Path,
        verified: bool,
        pb: &indicatif::ProgressBar,
    ) -> CliResult<bool> {
        let src = self.blob(digest);
        match tokio::fs::metadata(&src).await {
            Ok(m) if m.len() == size => {}
            _ => return Ok(false),
        }
        ensure_parent(dest).await?;
        let ok = copy_checked(&src, dest, (!verified).then_some(digest)).await?;
        if ok {
            pb.inc(size);
        } else {
            let _ = tokio::fs::remove_file(&src).await;
        }
        Ok(ok)
    }

    /// Downloads content into the cache, verified against its digest.
    pub async fn fetch(
        &self,
        api: &Api,
        url: &str,
        digest: &str,
        what: &str,
        pb: &indicatif::ProgressBar,
    ) -> CliResult {
        let dest = self.blob(digest);
        ensure_parent(&dest).await?;
        let tmp = part_path(&dest).with_extension(format!("{}.part", std::process::id()));
        let resp = api.get_stream(url).await?;
        let result = save_verified(resp, &tmp, &dest, Some(digest), what, pb).await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&tmp).await;
        }
        result
    }
}

/// Copies `src` to `dest` through `dest`'s temporary name; with `digest`, hashes on the way
/// and only renames into place when it matches (returns false otherwise).
pub async fn copy_checked(src: &Path, dest: &Path, digest: Option<&str>) -> CliResult<bool> {
    let (src, dest, digest) = (
        src.to_path_buf(),
        dest.to_path_buf(),
        digest.map(str::to_string),
    );
    tokio::task::spawn_blocking(move || -> CliResult<bool> {
        let tmp = part_path(&dest);
        let result = (|| -> std::io::Result<bool> {
            if digest.is_none() {
                std::fs::copy(&src, &tmp)?;
                return Ok(true);
            }
            let mut input = std::fs::File::open(&src)?;
            let mut out = std::fs::File::create(&tmp)?;
            let mut h = Sha256::new();
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = input.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
                out.write_all(&buf[..n])?;
            }
            out.flush()?;
            Ok(digest.as_deref() == Some(hex::encode(h.finalize()).as_str()))
        })();
        match result {
            Ok(true) => {
                std::fs::rename(&tmp, &dest)
                    .map_err(|e| user_err!("cannot write {}: {e}", dest.display()))?;
                Ok(true)
            }
            Ok(false) => {
                let _ = std::fs::remove_file(&tmp);
                Ok(false)
            }
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                Err(user_err!(
                    "cannot copy {} to {}: {e}",
                    src.display(),
                    dest.display()
                ))
            }
        }
    })
    .await
    .map_err(|e| crate::error::CliError::unexpected(format!("copy task failed: {e}")))?
}
