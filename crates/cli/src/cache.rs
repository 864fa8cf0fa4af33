//! The local content cache: downloaded artifact content kept by SHA-256, so getting the same
//! content again (another version, another directory) copies it from disk instead of the
//! network. Location: `$WANLLMDB_CACHE_DIR`, else the platform cache directory
//! (`~/.cache/wanllmdb` on Linux). Everything in it can be deleted at any time.
//!
//! Also the two rules every download follows (a `.part` file beside the destination, the
//! parent directory made first), shared with `transfer.rs`, which builds on this module.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{CliResult, user_err};

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

    /// Whether content of this digest and size is in the cache (not checked yet).
    pub fn holds_blocking(&self, digest: &str, size: u64) -> bool {
        std::fs::metadata(self.blob(digest)).is_ok_and(|m| m.len() == size)
    }

    /// The record of a verification: `<size> <modification time in ns>` of the cached file
    /// when its digest was last checked.
    fn stamp(&self, digest: &str) -> PathBuf {
        let mut p = self.blob(digest).into_os_string();
        p.push(".ok");
        PathBuf::from(p)
    }

    fn fingerprint(meta: &std::fs::Metadata) -> String {
        let mtime = meta
            .modified()
            .ok()
            .and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        format!("{} {mtime}", meta.len())
    }

    /// Notes that the cached content of `digest` was just verified.
    fn record(&self, digest: &str) {
        if let Ok(meta) = std::fs::metadata(self.blob(digest)) {
            let _ = std::fs::write(self.stamp(digest), Self::fingerprint(&meta));
        }
    }

    /// Copies cached content to `dest` (through a temporary name). Content unchanged since it
    /// was verified (same size and modification time) is copied as it is; anything else is
    /// hashed on the way, and a damaged copy is dropped. False when the cache cannot supply it.
    pub async fn copy_out(
        &self,
        digest: &str,
        size: u64,
        dest: &Path,
        pb: &indicatif::ProgressBar,
    ) -> CliResult<bool> {
        let src = self.blob(digest);
        let meta = match tokio::fs::metadata(&src).await {
            Ok(m) if m.len() == size => m,
            _ => return Ok(false),
        };
        let trusted = tokio::fs::read_to_string(self.stamp(digest))
            .await
            .is_ok_and(|s| s == Self::fingerprint(&meta));
        ensure_parent(dest).await?;
        let ok = copy_checked(&src, dest, (!trusted).then_some(digest)).await?;
        if ok {
            if !trusted {
                let (cache, digest) = (self.clone(), digest.to_string());
                let _ = tokio::task::spawn_blocking(move || cache.record(&digest)).await;
            }
            pb.inc(size);
        } else {
            let _ = tokio::fs::remove_file(&src).await;
            let _ = tokio::fs::remove_file(self.stamp(digest)).await;
        }
        Ok(ok)
    }

    /// Keeps a verified file's content: a hard link when the cache is on the same file system
    /// (no bytes copied; editing the file in place later only makes the entry fail its check),
    /// a copy otherwise. The cache is an optimisation, so failures are ignored.
    pub async fn insert(&self, digest: &str, verified: &Path) {
        let (cache, list) = (
            self.clone(),
            vec![(digest.to_string(), verified.to_path_buf())],
        );
        let _ = tokio::task::spawn_blocking(move || cache.insert_all(&list)).await;
    }

    /// `insert` for many files, on the calling (blocking) thread.
    pub fn insert_all(&self, files: &[(String, PathBuf)]) {
        for (digest, verified) in files {
            let dest = self.blob(digest);
            if dest.exists() {
                continue;
            }
            if let Some(parent) = dest.parent()
                && std::fs::create_dir_all(parent).is_err()
            {
                return;
            }
            let tmp = part_path(&dest).with_extension(format!("{}.part", std::process::id()));
            let _ = std::fs::remove_file(&tmp);
            let stored =
                std::fs::hard_link(verified, &tmp).is_ok() || std::fs::copy(verified, &tmp).is_ok();
            if stored && std::fs::rename(&tmp, &dest).is_ok() {
                self.record(digest);
            } else {
                let _ = std::fs::remove_file(&tmp);
            }
        }
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

/// Remembered digests of local files, so putting an unchanged file again does not read it:
/// `<cache>/digests.tsv`, one line per file (`fingerprint TAB sha256 TAB absolute path`). A
/// file's fingerprint is its device, inode, size, modification and change times; any change
/// to the file changes the change time, so a stale digest is never used.
pub struct DigestMemo {
    file: Option<PathBuf>,
    known: std::collections::HashMap<PathBuf, (String, String)>,
    changed: bool,
}

/// Most files remembered.
const MEMO_MAX: usize = 1_000_000;

impl DigestMemo {
    /// The memo of the configured cache (empty when there is none or it cannot be read).
    pub fn load() -> DigestMemo {
        let file = Cache::open().map(|c| c.root.join("digests.tsv"));
        let mut known = std::collections::HashMap::new();
        if let Some(text) = file.as_ref().and_then(|f| std::fs::read_to_string(f).ok()) {
            for line in text.lines() {
                let mut parts = line.splitn(3, '\t');
                if let (Some(fp), Some(sha), Some(path)) =
                    (parts.next(), parts.next(), parts.next())
                {
                    known.insert(PathBuf::from(path), (fp.to_string(), sha.to_string()));
                }
            }
        }
        DigestMemo {
            file,
            known,
            changed: false,
        }
    }

    fn fingerprint(meta: &std::fs::Metadata) -> String {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            format!(
                "{}:{}:{}:{}.{}:{}.{}",
                meta.dev(),
                meta.ino(),
                meta.len(),
                meta.mtime(),
                meta.mtime_nsec(),
                meta.ctime(),
                meta.ctime_nsec()
            )
        }
        #[cfg(not(unix))]
        {
            format!("{}:{}", meta.len(), Cache::fingerprint(meta))
        }
    }

    /// The remembered digest of `path`, if the file is unchanged since.
    pub fn get(&self, path: &Path, meta: &std::fs::Metadata) -> Option<String> {
        let (fp, sha) = self.known.get(path)?;
        (*fp == Self::fingerprint(meta)).then(|| sha.clone())
    }

    /// Remembers a digest just computed.
    pub fn put(&mut self, path: PathBuf, meta: &std::fs::Metadata, sha: &str) {
        let text = path.to_string_lossy();
        if text.contains(['\t', '\n', '\r']) {
            return;
        }
        // Entries of files long gone are never pruned one by one; a full memo starts over.
        if self.known.len() >= MEMO_MAX {
            self.known.clear();
        }
        self.known
            .insert(path, (Self::fingerprint(meta), sha.to_string()));
        self.changed = true;
    }

    /// Writes the memo back (best effort: it is only an optimisation).
    pub fn save(&self) {
        let Some(file) = &self.file else { return };
        if !self.changed {
            return;
        }
        let mut out = String::with_capacity(self.known.len() * 120);
        for (path, (fp, sha)) in &self.known {
            out.push_str(&format!("{fp}\t{sha}\t{}\n", path.to_string_lossy()));
        }
        if let Some(dir) = file.parent()
            && std::fs::create_dir_all(dir).is_ok()
        {
            let tmp = file.with_extension(format!("{}.tmp", std::process::id()));
            if std::fs::write(&tmp, out).is_ok() && std::fs::rename(&tmp, file).is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
        }
    }
}

/// Where a download to `dest` is written until it is verified.
pub fn part_path(dest: &Path) -> PathBuf {
    dest.with_file_name(format!(
        ".{}.part",
        dest.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("download")
    ))
}

/// Creates the directory `dest` goes into.
pub async fn ensure_parent(dest: &Path) -> CliResult {
    if let Some(parent) = dest.parent() {
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(|e| user_err!("cannot create {}: {e}", parent.display()))?;
    }
    Ok(())
}
