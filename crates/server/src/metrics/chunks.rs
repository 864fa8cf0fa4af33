//! Whole-database passes over the stored chunks: the integrity check behind
//! `wanllmdb admin verify` and the rewrite of old-format chunks behind `wanllmdb admin compact`.
//! Both read the chunks in pages by `(series, first step)`, so memory stays bounded and either
//! can run beside a live server.

use serde::Serialize;

use super::codec::{self, Point};
use super::store::{self, StoredChunk};
use super::{BLOCK_POINTS, block_halves};
use crate::error::ApiResult;
use crate::store::Store;

/// Chunks read per page.
const PAGE: i64 = 256;
/// Problems listed in full; past this many only the count grows.
const MAX_LISTED: usize = 1000;

/// What the check of every metric chunk found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ChunkCheck {
    /// Chunks checked.
    pub chunks: u64,
    /// Points they hold.
    pub points: u64,
    /// Chunks in the format without a checksum (readable; `admin compact` rewrites them).
    pub old_format: u64,
    /// Damaged chunks, one sentence each naming the run, the key and the chunk's first step.
    pub problems: Vec<String>,
    /// Damaged chunks found (more than listed when there are over a thousand).
    pub damaged: u64,
}

/// What a compaction did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Compaction {
    /// Chunks read.
    pub chunks: u64,
    /// Old-format chunks rewritten in the current format.
    pub rewritten: u64,
    /// Damaged chunks left as they are, one sentence each.
    pub problems: Vec<String>,
}

/// Where a chunk is, for messages.
fn chunk_name(c: &StoredChunk) -> String {
    format!(
        "run {}, metric {:?}: the chunk from step {}",
        c.run_id, c.key, c.start_step
    )
}

/// Decodes a chunk and checks it against its row: points, step range and summaries.
fn check_one(c: &StoredChunk) -> Result<Vec<Point>, String> {
    let points = codec::decode_chunk(&c.data).map_err(|e| e.0)?;
    let (first, last) = (points.first(), points.last());
    if points.len() as i64 != c.count
        || first.map(|p| p.step) != Some(c.start_step)
        || last.map(|p| p.step) != Some(c.end_step)
    {
        return Err(format!(
            "its points ({} from step {:?} to {:?}) differ from its row ({} from {} to {})",
            points.len(),
            first.map(|p| p.step),
            last.map(|p| p.step),
            c.count,
            c.start_step,
            c.end_step
        ));
    }
    let blocks = points.len().div_ceil(BLOCK_POINTS);
    let (mins, maxs) = block_halves(&c.blocks).ok_or("its block summary is truncated")?;
    let summary = |what: &str, blob: &[u8]| {
        codec::check_chunk(blob).map_err(|e| format!("its block {what}: {}", e.0))
    };
    let counts = [summary("minimums", mins)?, summary("maximums", maxs)?];
    let lasts = match &c.lasts {
        Some(l) => Some(summary("last points", l)?),
        None => None,
    };
    if counts != [blocks; 2] || lasts.is_some_and(|n| n != blocks) {
        return Err("its block summaries do not match its points".into());
    }
    Ok(points)
}

/// Whether any of a chunk's blobs is in an older format than the one written today.
fn old_format(c: &StoredChunk) -> bool {
    let blocks_current =
        block_halves(&c.blocks).is_some_and(|(a, b)| codec::is_current(a) && codec::is_current(b));
    !codec::is_current(&c.data)
        || !blocks_current
        || c.lasts.as_deref().is_none_or(|l| !codec::is_current(l))
}

/// Calls `each` with every page of chunks, in order.
async fn scan<F>(store: &Store, mut each: F) -> ApiResult<()>
where
    F: AsyncFnMut(Vec<StoredChunk>) -> ApiResult<()>,
{
    let mut after = (i64::MIN, i64::MIN);
    loop {
        let page = store::chunk_page(store, after, PAGE).await?;
        let Some(last) = page.last() else {
            return Ok(());
        };
        after = (last.series_id, last.start_step);
        each(page).await?;
    }
}

/// Checks every metric chunk: its checksum (current format), that it decodes, and that its
/// points and summaries agree with its row. `progress` is told the points of each page.
pub async fn check_chunks(store: &Store, progress: &(dyn Fn(u64) + Sync)) -> ApiResult<ChunkCheck> {
    let mut report = ChunkCheck::default();
    scan(store, async |page| {
        let mut points = 0;
        for c in &page {
            report.chunks += 1;
            points += c.count.max(0) as u64;
            report.old_format += u64::from(old_format(c));
            if let Err(e) = check_one(c) {
                report.damaged += 1;
                if report.problems.len() < MAX_LISTED {
                    report
                        .problems
                        .push(format!("{} is damaged: {e}", chunk_name(c)));
                }
            }
        }
        report.points += points;
        progress(points);
        Ok(())
    })
    .await?;
    Ok(report)
}

/// Rewrites every chunk stored in an older format (no checksum, older value coding, or no
/// per-block last points) in the current one, a page per transaction. Damaged chunks are left
/// as they are and reported.
pub async fn compact_chunks(store: &Store) -> ApiResult<Compaction> {
    let mut report = Compaction::default();
    scan(store, async |page| {
        let mut rewrite = Vec::new();
        for c in page {
            report.chunks += 1;
            if !old_format(&c) {
                continue;
            }
            match check_one(&c) {
                Ok(points) => rewrite.push((c, points)),
                Err(e) => report.problems.push(format!(
                    "{} is damaged and was left as it is: {e}",
                    chunk_name(&c)
                )),
            }
        }
        if !rewrite.is_empty() {
            report.rewritten += store::replace_chunks(store, &rewrite).await?;
        }
        Ok(())
    })
    .await?;
    Ok(report)
}
