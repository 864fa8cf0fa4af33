//! The local content cache: downloaded artifact content kept by SHA-256, so getting the same
//! content again (another version, another directory) copies it from disk instead of the
//! network. Location: `$WANLLMDB_CACHE_DIR`, else the platform cache directory
//! (`~/.cache/wanllmdb` on Linux). Everything in it can be deleted at any time.
//!
//! The content has a size limit: when a download leaves more than that, the least recently
//! used entries are removed (see [`MaxSize`] and [`Cache::settle`]), never those the command
//! itself used, which it keeps only while they fit within the limit. An entry's last use is the
//! modification time of its verification stamp, set whenever the entry is stored or copied
//! out, so it works on file systems mounted `noatime`. Several commands may use the cache at
//! once: entries appear by rename, and a reader that loses an entry to another command's
//! eviction downloads the content instead.
//!
//! Also the two rules every download follows (a `.part` file beside the destination, the
//! parent directory made first), shared with `transfer.rs`, which builds on this module.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::{CliError, CliResult, user_err};

/// Environment variable naming the cache directory.
pub const CACHE_DIR_ENV: &str = "WANLLMDB_CACHE_DIR";

/// The cache directory.
#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
    /// Most bytes of content kept after a download; `None`: no limit.
    max_bytes: Option<u64>,
    /// What this command stored or copied out, never removed by its own pruning, with the
    /// bytes they hold together.
    used: Arc<Mutex<(HashSet<String>, u64)>>,
    /// Whether this command stored anything (only then can the cache have outgrown its limit).
    grew: Arc<AtomicBool>,
}

impl Cache {
    /// The configured cache, if a location is known, without a size limit.
    pub fn open() -> Option<Cache> {
        let root = match std::env::var_os(CACHE_DIR_ENV) {
            Some(d) if !d.is_empty() => PathBuf::from(d),
            _ => dirs::cache_dir()?.join("wanllmdb"),
        };
        Some(Cache::at(root))
    }

    /// The cache in `root`, without a size limit.
    fn at(root: PathBuf) -> Cache {
        Cache {
            root,
            max_bytes: None,
            used: Arc::default(),
            grew: Arc::default(),
        }
    }

    /// The configured cache, or an error saying how to name one.
    pub fn require() -> CliResult<Cache> {
        Cache::open().ok_or_else(|| {
            user_err!("no cache directory is known on this machine")
                .hint(format!("set {CACHE_DIR_ENV} to a directory"))
        })
    }

    /// This cache, keeping at most `max_bytes` of content after each download.
    pub fn limited(mut self, max_bytes: Option<u64>) -> Cache {
        self.max_bytes = max_bytes;
        self
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

    /// Notes that the cached content of `digest` was just verified (and so used).
    fn record(&self, digest: &str) {
        if let Ok(meta) = std::fs::metadata(self.blob(digest)) {
            let _ = std::fs::write(self.stamp(digest), Self::fingerprint(&meta));
        }
    }

    /// Marks the entry of `digest` as used now: its stamp's modification time is its last use.
    fn touch(&self, digest: &str) {
        if let Ok(f) = std::fs::OpenOptions::new()
            .write(true)
            .open(self.stamp(digest))
        {
            let _ = f.set_modified(SystemTime::now());
        }
    }

    /// Counts `digest` (of `bytes`) among what this command uses.
    fn note_use(&self, digest: &str, bytes: u64) {
        let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        if used.0.insert(digest.to_string()) {
            used.1 += bytes;
        }
    }

    /// Whether `bytes` more still fit beside what this command uses, within the limit.
    fn has_room_for(&self, bytes: u64) -> bool {
        let Some(max) = self.max_bytes else {
            return true;
        };
        let used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        used.1.saturating_add(bytes) <= max
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
        let ok = match copy_checked(&src, dest, (!trusted).then_some(digest)).await {
            Ok(ok) => ok,
            // Removed by another command's eviction meanwhile: download it instead.
            Err(_) if !tokio::fs::try_exists(&src).await.unwrap_or(true) => return Ok(false),
            Err(e) => return Err(e),
        };
        if ok {
            self.note_use(digest, size);
            let (cache, digest) = (self.clone(), digest.to_string());
            let _ = tokio::task::spawn_blocking(move || {
                if trusted {
                    cache.touch(&digest);
                } else {
                    cache.record(&digest);
                }
            })
            .await;
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

    /// `insert` for many files, on the calling (blocking) thread. What this command uses is
    /// never pruned by it, so content that does not fit within the limit beside what the
    /// command already uses is not kept.
    pub fn insert_all(&self, files: &[(String, PathBuf)]) {
        for (digest, verified) in files {
            let Ok(len) = std::fs::metadata(verified).map(|m| m.len()) else {
                continue;
            };
            let dest = self.blob(digest);
            if dest.exists() {
                self.note_use(digest, len);
                self.touch(digest);
                continue;
            }
            if !self.has_room_for(len) {
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
                self.note_use(digest, len);
                self.grew.store(true, Ordering::Relaxed);
            } else {
                let _ = std::fs::remove_file(&tmp);
            }
        }
    }
}

/// How much content the cache may keep.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MaxSize {
    /// At most this many bytes; 0 keeps nothing.
    Bytes(u64),
    /// At most this share, in percent, of the file system holding the cache.
    Percent(f64),
    /// No limit.
    Unlimited,
}

/// With no limit set, the cache keeps this share (percent) of its file system…
const DEFAULT_PERCENT: f64 = 10.0;
/// …but never more than this.
const DEFAULT_CAP: u64 = 50 << 30;
/// The default where the file system's size cannot be read.
const DEFAULT_UNKNOWN_DISK: u64 = 10 << 30;
/// The default, as `cache info` shows it.
pub const DEFAULT_LIMIT_TEXT: &str = "10% of the disk, at most 50 GiB";

/// What a size setting may look like, for hints.
pub const SIZE_HINT: &str = "use a size such as 10GiB, 500MB or 2000000 (bytes), a share of the disk such as 10%, 0 to keep nothing, or unlimited";

impl MaxSize {
    /// Reads `10GiB`, `500MB`, `1.5G`, `2000000`, `10%`, `0` or `unlimited`. kB, MB, GB and
    /// TB are powers of 1000; KiB, MiB, GiB, TiB and the bare K, M, G, T powers of 1024.
    pub fn parse(text: &str) -> Result<MaxSize, String> {
        let t = text.trim();
        if t.eq_ignore_ascii_case("unlimited") || t.eq_ignore_ascii_case("none") {
            return Ok(MaxSize::Unlimited);
        }
        if let Some(p) = t.strip_suffix('%') {
            return match p.trim().parse::<f64>() {
                Ok(v) if v > 0.0 && v <= 100.0 => Ok(MaxSize::Percent(v)),
                _ => Err("a share of the disk is a number above 0 and at most 100, then %".into()),
            };
        }
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        let (number, unit) = (&t[..split], t[split..].trim());
        let value: f64 = number
            .parse()
            .map_err(|_| "it does not start with a number".to_string())?;
        let scale: u64 = match unit.to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "kb" => 1_000,
            "mb" => 1_000_000,
            "gb" => 1_000_000_000,
            "tb" => 1_000_000_000_000,
            "k" | "kib" => 1 << 10,
            "m" | "mib" => 1 << 20,
            "g" | "gib" => 1 << 30,
            "t" | "tib" => 1 << 40,
            _ => return Err(format!("unknown unit {unit:?}")),
        };
        let bytes = value * scale as f64;
        if !bytes.is_finite() || bytes >= u64::MAX as f64 {
            return Err("it is too large".into());
        }
        Ok(MaxSize::Bytes(bytes as u64))
    }

    /// The limit in bytes for a cache at `root` (`None`: no limit).
    pub fn bytes(self, root: &Path) -> Option<u64> {
        match self {
            MaxSize::Bytes(n) => Some(n),
            MaxSize::Unlimited => None,
            MaxSize::Percent(p) => Some(
                disk_size(root).map_or(DEFAULT_UNKNOWN_DISK, |d| (d as f64 * p / 100.0) as u64),
            ),
        }
    }
}

/// The size of the file system holding `path` (or its nearest existing parent).
pub fn disk_size(path: &Path) -> Option<u64> {
    let existing = path.ancestors().find(|p| p.exists())?;
    let fs = nix::sys::statvfs::statvfs(existing).ok()?;
    Some((fs.blocks() as u64).saturating_mul(fs.fragment_size() as u64))
}

/// The cache's limit in effect and where it was set.
#[derive(Debug, Clone, Serialize)]
pub struct Limit {
    /// Most bytes of content kept after a download (`null`: no limit).
    pub max_bytes: Option<u64>,
    /// The setting as written (`10GiB`, `10%`, `unlimited`), or the default's description.
    pub setting: String,
    /// Where it was set: `option` (the command line or `WANLLMDB_CACHE_MAX_SIZE`), `config`
    /// (`cache_max_size` in the user config) or `default`.
    pub source: &'static str,
}

impl Limit {
    /// The limit for a cache at `root`: `given` (an option or its environment variable), else
    /// the user config's `cache_max_size`, else 10% of the disk, at most 50 GiB.
    pub fn resolve(root: &Path, given: Option<&str>) -> CliResult<Limit> {
        let bad = |text: &str, why: String, whence: &str| {
            user_err!("cache size {text:?}{whence} is not valid: {why}").hint(SIZE_HINT)
        };
        if let Some(text) = given {
            let max = MaxSize::parse(text).map_err(|why| bad(text, why, ""))?;
            return Ok(Limit {
                max_bytes: max.bytes(root),
                setting: text.trim().to_string(),
                source: "option",
            });
        }
        if let Some(text) = crate::config::load_user_config()?.cache_max_size {
            let path = crate::config::config_dir()?.join("config.toml");
            let whence = format!(" (cache_max_size in {})", path.display());
            let max = MaxSize::parse(&text).map_err(|why| bad(&text, why, &whence))?;
            return Ok(Limit {
                max_bytes: max.bytes(root),
                setting: text.trim().to_string(),
                source: "config",
            });
        }
        let max_bytes = disk_size(root).map_or(DEFAULT_UNKNOWN_DISK, |d| {
            ((d as f64 * DEFAULT_PERCENT / 100.0) as u64).min(DEFAULT_CAP)
        });
        Ok(Limit {
            max_bytes: Some(max_bytes),
            setting: DEFAULT_LIMIT_TEXT.into(),
            source: "default",
        })
    }
}

/// One piece of content in the cache.
#[derive(Debug, Clone)]
struct Entry {
    digest: String,
    bytes: u64,
    last_used: SystemTime,
}

/// What a pruning removed (or, dry, would remove) and what it kept.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Pruned {
    /// Entries removed.
    pub removed_entries: u64,
    /// Their bytes.
    pub removed_bytes: u64,
    /// Entries left.
    pub kept_entries: u64,
    /// Their bytes.
    pub kept_bytes: u64,
}

/// Temporary files older than this were left by a command that died.
const LEFTOVER_AGE: Duration = Duration::from_secs(24 * 3600);

/// Splits `entries` into those to remove, least recently used first, until at most
/// `max_bytes` remain, and those to keep. What `used` names (this command's own) is always
/// kept.
fn plan_eviction(
    entries: Vec<Entry>,
    max_bytes: u64,
    used: &HashSet<String>,
) -> (Vec<Entry>, Vec<Entry>) {
    let mut total: u64 = entries.iter().map(|e| e.bytes).sum();
    let (mut keep, mut candidates): (Vec<Entry>, Vec<Entry>) =
        entries.into_iter().partition(|e| used.contains(&e.digest));
    candidates.sort_by_key(|e| e.last_used);
    let mut cut = 0;
    while total > max_bytes && cut < candidates.len() {
        total -= candidates[cut].bytes;
        cut += 1;
    }
    keep.extend(candidates.split_off(cut));
    (candidates, keep)
}

impl Cache {
    /// Every entry, with temporary files left by dead commands and stamps without content.
    fn scan(&self) -> (Vec<Entry>, Vec<PathBuf>) {
        let (mut entries, mut leftovers) = (Vec::new(), Vec::new());
        let now = SystemTime::now();
        let Ok(shards) = std::fs::read_dir(self.root.join("blobs").join("sha256")) else {
            return (entries, leftovers);
        };
        for shard in shards.flatten() {
            let Ok(files) = std::fs::read_dir(shard.path()) else {
                continue;
            };
            for f in files.flatten() {
                let name = f.file_name().to_string_lossy().into_owned();
                let Ok(meta) = f.metadata() else { continue };
                let modified = meta.modified().unwrap_or(now);
                if let Some(digest) = name.strip_suffix(".ok") {
                    if !self.blob(digest).exists() {
                        leftovers.push(f.path());
                    }
                } else if name.ends_with(".part") {
                    if now.duration_since(modified).unwrap_or_default() > LEFTOVER_AGE {
                        leftovers.push(f.path());
                    }
                } else if meta.is_file() {
                    let last_used = std::fs::metadata(self.stamp(&name))
                        .and_then(|m| m.modified())
                        .unwrap_or(modified);
                    entries.push(Entry {
                        digest: name,
                        bytes: meta.len(),
                        last_used,
                    });
                }
            }
        }
        (entries, leftovers)
    }

    /// Entries and bytes of content held.
    pub fn usage_blocking(&self) -> (u64, u64) {
        let (entries, _) = self.scan();
        (entries.len() as u64, entries.iter().map(|e| e.bytes).sum())
    }

    /// Removes the least recently used content until at most `max_bytes` remain, never what
    /// this command used. With `dry_run` nothing is removed. An entry another command removed
    /// meanwhile counts as removed.
    pub fn prune_blocking(&self, max_bytes: u64, dry_run: bool) -> Pruned {
        let (entries, leftovers) = self.scan();
        let used = self
            .used
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .clone();
        let (remove, keep) = plan_eviction(entries, max_bytes, &used);
        if !dry_run {
            for e in &remove {
                let _ = std::fs::remove_file(self.blob(&e.digest));
                let _ = std::fs::remove_file(self.stamp(&e.digest));
            }
            for f in leftovers {
                let _ = std::fs::remove_file(f);
            }
        }
        Pruned {
            removed_entries: remove.len() as u64,
            removed_bytes: remove.iter().map(|e| e.bytes).sum(),
            kept_entries: keep.len() as u64,
            kept_bytes: keep.iter().map(|e| e.bytes).sum(),
        }
    }

    /// After a command's downloads: brings the cache back within its limit, when the command
    /// stored content (or the limit is 0). What was removed, if anything was checked.
    pub async fn settle(&self) -> CliResult<Option<Pruned>> {
        let Some(max) = self.max_bytes else {
            return Ok(None);
        };
        if max > 0 && !self.grew.load(Ordering::Relaxed) {
            return Ok(None);
        }
        let cache = self.clone();
        tokio::task::spawn_blocking(move || Some(cache.prune_blocking(max, false)))
            .await
            .map_err(|e| CliError::unexpected(format!("cache pruning failed: {e}")))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_people_write_them() {
        let ok = |t: &str| MaxSize::parse(t).unwrap();
        assert_eq!(ok("10GiB"), MaxSize::Bytes(10 << 30));
        assert_eq!(ok("500MB"), MaxSize::Bytes(500_000_000));
        assert_eq!(ok("1.5 G"), MaxSize::Bytes(3 << 29));
        assert_eq!(ok("2000000"), MaxSize::Bytes(2_000_000));
        assert_eq!(ok("64kib"), MaxSize::Bytes(65_536));
        assert_eq!(ok("0"), MaxSize::Bytes(0));
        assert_eq!(ok("10%"), MaxSize::Percent(10.0));
        assert_eq!(ok("Unlimited"), MaxSize::Unlimited);
        for bad in [
            "",
            "ten",
            "10 parsecs",
            "0%",
            "150%",
            "-1GB",
            "1e30TB",
            "GiB",
        ] {
            assert!(MaxSize::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn a_share_of_the_disk_is_a_share_of_its_size() {
        let dir = tempfile::tempdir().unwrap();
        let disk = disk_size(&dir.path().join("not/yet/made")).unwrap();
        assert!(disk > 0);
        assert_eq!(
            MaxSize::Percent(50.0).bytes(dir.path()),
            Some((disk as f64 * 0.5) as u64)
        );
        assert_eq!(MaxSize::Unlimited.bytes(dir.path()), None);
    }

    /// A cache in a temporary directory holding `sizes.len()` entries `d0`, `d1`, … used in
    /// that order, a minute apart.
    fn filled(sizes: &[usize]) -> (tempfile::TempDir, Cache) {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::at(dir.path().to_path_buf());
        let start = SystemTime::now() - Duration::from_secs(3600);
        for (i, size) in sizes.iter().enumerate() {
            let file = dir.path().join(format!("src{i}"));
            std::fs::write(&file, vec![b'x'; *size]).unwrap();
            Cache::at(dir.path().to_path_buf()).insert_all(&[(format!("d{i}"), file)]);
            let stamp = std::fs::File::options()
                .write(true)
                .open(cache.stamp(&format!("d{i}")))
                .unwrap();
            stamp
                .set_modified(start + Duration::from_secs(60 * i as u64))
                .unwrap();
        }
        (dir, cache)
    }

    fn held(cache: &Cache) -> Vec<String> {
        let mut names: Vec<String> = cache.scan().0.into_iter().map(|e| e.digest).collect();
        names.sort();
        names
    }

    #[test]
    fn pruning_removes_the_least_recently_used_first() {
        let (_dir, cache) = filled(&[100, 100, 100, 100]);
        // d0 was used last of all.
        cache.touch("d0");
        let p = cache.prune_blocking(250, false);
        assert_eq!((p.removed_entries, p.removed_bytes), (2, 200));
        assert_eq!((p.kept_entries, p.kept_bytes), (2, 200));
        assert_eq!(held(&cache), ["d0", "d3"]);
        assert_eq!(cache.usage_blocking(), (2, 200));
    }

    #[test]
    fn what_this_command_used_is_never_removed() {
        let (_dir, cache) = filled(&[100, 100, 100]);
        // Used by this command (although longer ago than the others by the clock).
        cache.note_use("d0", 100);
        cache.prune_blocking(200, false);
        assert_eq!(held(&cache), ["d0", "d2"]);
        // Still over the limit once the others are gone: this command's entry stays.
        let p = cache.prune_blocking(50, false);
        assert_eq!((p.removed_entries, p.kept_bytes), (1, 100));
        assert_eq!(held(&cache), ["d0"]);
        // Another command (a fresh handle) removes it.
        Cache::at(cache.root().to_path_buf()).prune_blocking(50, false);
        assert!(held(&cache).is_empty());
    }

    #[test]
    fn one_command_keeps_no_more_than_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::at(dir.path().join("cache")).limited(Some(10));
        let files: Vec<(String, PathBuf)> = ["a", "b", "c"]
            .iter()
            .map(|name| {
                let file = dir.path().join(format!("src-{name}"));
                std::fs::write(&file, b"1234").unwrap();
                (name.to_string(), file)
            })
            .collect();
        cache.insert_all(&files);
        // Two of 4 bytes fit in 10; the third would need the command's own entries evicted.
        assert_eq!(held(&cache), ["a", "b"]);
    }

    #[test]
    fn a_dry_run_changes_nothing() {
        let (_dir, cache) = filled(&[100, 100, 100]);
        let p = cache.prune_blocking(0, true);
        assert_eq!((p.removed_entries, p.kept_entries), (3, 0));
        assert_eq!(held(&cache), ["d0", "d1", "d2"]);
    }

    #[test]
    fn content_larger_than_the_limit_is_not_kept() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::at(dir.path().join("c")).limited(Some(10));
        let (small, big) = (dir.path().join("small"), dir.path().join("big"));
        std::fs::write(&small, b"12345").unwrap();
        std::fs::write(&big, b"0123456789ab").unwrap();
        cache.insert_all(&[("s".into(), small), ("b".into(), big)]);
        assert_eq!(held(&cache), ["s"]);
    }

    #[test]
    fn leftovers_of_dead_commands_are_swept() {
        let (_dir, cache) = filled(&[10]);
        let shard = cache.blob("d0").parent().unwrap().to_path_buf();
        let old_part = shard.join(".x.123.part");
        let new_part = shard.join(".y.456.part");
        std::fs::write(&old_part, b"half").unwrap();
        std::fs::write(&new_part, b"half").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&old_part)
            .unwrap()
            .set_modified(SystemTime::now() - 2 * LEFTOVER_AGE)
            .unwrap();
        std::fs::write(shard.join("gone.ok"), b"1 2").unwrap();
        cache.prune_blocking(1_000, false);
        assert!(!old_part.exists() && !shard.join("gone.ok").exists());
        // One being written now stays.
        assert!(new_part.exists());
        assert_eq!(held(&cache), ["d0"]);
    }
}
