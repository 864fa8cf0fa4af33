//! The tar (ustar) archive a backup is written as: plain files only, sizes beyond ustar's
//! 8 GiB in the base-256 form GNU tar and bsdtar read.
//!
//! Hand-written because a backup needs only ustar's plain files, streamed asynchronously with
//! our own size and path checks on extraction; the tar crates are synchronous and carry the
//! link and device handling that restoring a backup must refuse anyway.

use std::path::Path;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, BufWriter, Take};

use super::TransferError;

const BLOCK: usize = 512;

fn padding(size: u64) -> u64 {
    (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64
}

fn header(path: &str, size: u64, mtime: u64) -> Result<[u8; BLOCK], TransferError> {
    let mut h = [0u8; BLOCK];
    if path.len() > 100 {
        return Err(TransferError::Invalid(format!(
            "archive path {path} is longer than 100 bytes"
        )));
    }
    h[..path.len()].copy_from_slice(path.as_bytes());
    h[100..108].copy_from_slice(b"0000644\0");
    h[108..116].copy_from_slice(b"0000000\0");
    h[116..124].copy_from_slice(b"0000000\0");
    if size < 0o77777777777 {
        h[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
    } else {
        h[124] = 0x80;
        h[128..136].copy_from_slice(&size.to_be_bytes());
    }
    h[136..148].copy_from_slice(format!("{:011o}\0", mtime.min(0o77777777777)).as_bytes());
    h[156] = b'0';
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    Ok(h)
}

/// Writes an archive entry by entry.
pub struct TarWriter {
    out: BufWriter<tokio::fs::File>,
    mtime: u64,
}

impl TarWriter {
    /// Starts an archive in a new file.
    pub async fn create(path: &Path) -> Result<TarWriter, TransferError> {
        let file = tokio::fs::File::create(path).await?;
        let mtime = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Ok(TarWriter {
            out: BufWriter::with_capacity(1 << 20, file),
            mtime,
        })
    }

    /// Begins an entry of `size` bytes; write exactly that many to [`TarWriter::body`], then
    /// call [`TarWriter::end_entry`].
    pub async fn begin_entry(&mut self, path: &str, size: u64) -> Result<(), TransferError> {
        let h = header(path, size, self.mtime)?;
        self.out.write_all(&h).await?;
        Ok(())
    }

    /// Where the entry's bytes go.
    pub fn body(&mut self) -> &mut (dyn AsyncWrite + Send + Unpin) {
        &mut self.out
    }

    /// Pads the entry to a whole block.
    pub async fn end_entry(&mut self, size: u64) -> Result<(), TransferError> {
        let pad = [0u8; BLOCK];
        self.out.write_all(&pad[..padding(size) as usize]).await?;
        Ok(())
    }

    /// Adds an entry from memory.
    pub async fn append_bytes(&mut self, path: &str, data: &[u8]) -> Result<(), TransferError> {
        self.begin_entry(path, data.len() as u64).await?;
        self.out.write_all(data).await?;
        self.end_entry(data.len() as u64).await
    }

    /// Adds an entry with a file's contents.
    pub async fn append_file(&mut self, path: &str, file: &Path) -> Result<(), TransferError> {
        let mut f = tokio::fs::File::open(file).await?;
        let size = f.metadata().await?.len();
        self.begin_entry(path, size).await?;
        let copied = tokio::io::copy(&mut f, &mut self.out).await?;
        if copied != size {
            return Err(TransferError::Invalid(format!(
                "{} changed while it was archived",
                file.display()
            )));
        }
        self.end_entry(size).await
    }

    /// Ends the archive and makes it durable.
    pub async fn finish(mut self) -> Result<(), TransferError> {
        self.out.write_all(&[0u8; 2 * BLOCK]).await?;
        self.out.flush().await?;
        self.out.get_mut().sync_all().await?;
        Ok(())
    }
}

/// One entry's name and size.
#[derive(Debug)]
pub struct Entry {
    /// Path inside the archive.
    pub path: String,
    /// Bytes of content.
    pub size: u64,
}

/// Reads an archive entry by entry.
pub struct TarReader {
    input: Take<BufReader<tokio::fs::File>>,
    pad: u64,
}

fn parse_size(field: &[u8]) -> Result<u64, TransferError> {
    if field[0] & 0x80 != 0 {
        let mut v = 0u64;
        for b in &field[4..] {
            v = (v << 8) | u64::from(*b);
        }
        return Ok(v);
    }
    let text: String = field
        .iter()
        .take_while(|b| **b != 0 && **b != b' ')
        .map(|b| *b as char)
        .collect();
    u64::from_str_radix(text.trim_start(), 8)
        .map_err(|_| TransferError::Invalid("not a backup archive (bad entry size)".into()))
}

fn field_text(field: &[u8]) -> String {
    let end = field.iter().position(|b| *b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..end]).into_owned()
}

impl TarReader {
    /// Opens an archive.
    pub async fn open(path: &Path) -> Result<TarReader, TransferError> {
        let file = tokio::fs::File::open(path)
            .await
            .map_err(|e| TransferError::Invalid(format!("cannot open {}: {e}", path.display())))?;
        Ok(TarReader {
            input: BufReader::with_capacity(1 << 20, file).take(0),
            pad: 0,
        })
    }

    /// The next plain-file entry; None at the end. Whatever was not read of the previous
    /// entry is skipped.
    pub async fn next_entry(&mut self) -> Result<Option<Entry>, TransferError> {
        loop {
            let rest = self.input.limit() + self.pad;
            self.input.set_limit(rest);
            tokio::io::copy(&mut self.input, &mut tokio::io::sink()).await?;
            let mut h = [0u8; BLOCK];
            self.input.set_limit(BLOCK as u64);
            self.input.read_exact(&mut h).await.map_err(|_| {
                TransferError::Invalid("the archive ends early (truncated?)".into())
            })?;
            if h.iter().all(|b| *b == 0) {
                return Ok(None);
            }
            let stored: String = field_text(&h[148..156]).trim().to_string();
            h[148..156].copy_from_slice(b"        ");
            let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
            if u32::from_str_radix(&stored, 8).ok() != Some(sum) {
                return Err(TransferError::Invalid(
                    "not a backup archive (bad header checksum)".into(),
                ));
            }
            let size = parse_size(&h[124..136])?;
            let prefix = field_text(&h[345..500]);
            let name = field_text(&h[..100]);
            let path = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            self.pad = padding(size);
            self.input.set_limit(size);
            if matches!(h[156], b'0' | 0) {
                return Ok(Some(Entry { path, size }));
            }
        }
    }

    /// The current entry's bytes (reads stop at its end).
    pub fn body(&mut self) -> &mut (dyn AsyncRead + Send + Unpin) {
        &mut self.input
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn archives_round_trip() {
        let dir = std::env::temp_dir().join(format!("wanllmdb-tar-{}", crate::auth::random_hex(6)));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.tar");
        let mut w = TarWriter::create(&path).await.unwrap();
        w.append_bytes("manifest.json", b"{}").await.unwrap();
        w.append_bytes("tables/empty.jsonl", b"").await.unwrap();
        let big = vec![7u8; 1000];
        w.append_bytes("blobs/sha256/ab/x", &big).await.unwrap();
        w.finish().await.unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len() % 512, 0);

        let mut r = TarReader::open(&path).await.unwrap();
        let e = r.next_entry().await.unwrap().unwrap();
        assert_eq!((e.path.as_str(), e.size), ("manifest.json", 2));
        // Left unread: the reader skips it.
        let e = r.next_entry().await.unwrap().unwrap();
        assert_eq!((e.path.as_str(), e.size), ("tables/empty.jsonl", 0));
        let e = r.next_entry().await.unwrap().unwrap();
        assert_eq!(e.size, 1000);
        let mut got = Vec::new();
        r.body().read_to_end(&mut got).await.unwrap();
        assert_eq!(got, big);
        assert!(r.next_entry().await.unwrap().is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn large_sizes_use_base_256() {
        let h = header("x", 10 << 30, 0).unwrap();
        assert_eq!(parse_size(&h[124..136]).unwrap(), 10 << 30);
        let h = header("x", 1234, 0).unwrap();
        assert_eq!(parse_size(&h[124..136]).unwrap(), 1234);
        assert!(header(&"a".repeat(101), 1, 0).is_err());
    }
}
