//! Metric history. Points of one (run, key) live in compressed chunks of consecutive steps
//! (at most [`CHUNK_POINTS`] each, never overlapping), each row carrying its count and
//! extremes so downsampled reads can skip decoding. Appends that continue a series fill the
//! last chunk and add new ones; a batch that rewrites old steps (a retry, late points) merges
//! the chunks it touches, so a point is stored once per (run, key, step).

pub mod codec;
pub mod json;
pub mod routes;

use std::collections::HashMap;

use sqlx::Row;
use wanllmdb_api_types::metrics::{
    AppendHistoryResponse, HistoryPoint, HistoryResponse, MetricSummary, MetricValue, Series,
};

use crate::app::AppState;
use crate::auth::Actor;
use crate::error::{ApiError, ApiResult};
use crate::runs::Runs;
use crate::store::{Store, now_us, seconds_to_us, us_to_seconds};
use crate::{on_backend, with_tx};
use codec::{ChunkStats, Downsampler, Point};

/// Largest number of points in one chunk.
pub const CHUNK_POINTS: usize = 1024;
const MAX_KEY_LEN: usize = 256;
/// Most series one history read may return.
pub const MAX_SERIES_PER_READ: usize = 10_000;

/// Which blob a chunk query brings along with the statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fetch {
    Stats,
    Data,
    Blocks,
}

/// One stored chunk's row.
#[derive(Debug, Clone)]
struct ChunkRow {
    start_step: i64,
    end_step: i64,
    stats: ChunkStats,
    data: Option<Vec<u8>>,
}

#[derive(Debug, Clone)]
struct SeriesRow {
    id: i64,
    key: String,
    count: i64,
    last_step: Option<i64>,
    last_value: Option<f64>,
    last_nan: bool,
    min_value: Option<f64>,
    max_value: Option<f64>,
    set_value: Option<f64>,
    set_nan: bool,
    is_set: bool,
}

/// Groups a batch by key: points sorted by step, the last value of a repeated step wins.
fn group_by_key(
    points: Vec<HistoryPoint>,
    now: i64,
) -> ApiResult<(HashMap<String, Vec<Point>>, u64)> {
    let mut by_key: HashMap<String, Vec<Point>> = HashMap::new();
    for (i, p) in points.into_iter().enumerate() {
        let ts = match p.timestamp {
            None => now,
            Some(t) => seconds_to_us(t).ok_or_else(|| {
                ApiError::invalid(format!("points[{i}].timestamp is not a valid Unix time"))
            })?,
        };
        for (key, MetricValue(value)) in p.values.0 {
            if key.is_empty() || key.len() > MAX_KEY_LEN {
                return Err(ApiError::invalid(format!(
                    "points[{i}]: metric names must be 1 to {MAX_KEY_LEN} characters"
                )));
            }
            let pt = Point {
                step: p.step,
                value,
                timestamp_us: ts,
            };
            match by_key.get_mut(&key) {
                Some(v) => v.push(pt),
                None => {
                    by_key.insert(key, vec![pt]);
                }
            }
        }
    }
    let mut total = 0u64;
    for v in by_key.values_mut() {
        if !v.windows(2).all(|w| w[0].step < w[1].step) {
            // Stable sort keeps arrival order among equal steps; keep the last of each.
            v.sort_by_key(|p| p.step);
            let mut out: Vec<Point> = Vec::with_capacity(v.len());
            for p in v.drain(..) {
                match out.last_mut() {
                    Some(last) if last.step == p.step => *last = p,
                    _ => out.push(p),
                }
            }
            *v = out;
        }
        total += v.len() as u64;
    }
    Ok((by_key, total))
}

fn finite_min_max(points: &[Point]) -> (Option<f64>, Option<f64>) {
    let mut min: Option<f64> = None;
    let mut max: Option<f64> = None;
    for p in points.iter().filter(|p| !p.value.is_nan()) {
        min = Some(min.map_or(p.value, |m| m.min(p.value)));
        max = Some(max.map_or(p.value, |m| m.max(p.value)));
    }
    (min, max)
}

fn opt_min(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

fn opt_max(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

/// Binds and runs the insert of one chunk.
macro_rules! insert_chunk {
    ($tx:expr, $series:expr, $points:expr) => {{
        let pts: &[Point] = $points;
        let st = codec::chunk_stats(pts);
        let data = codec::encode_chunk(pts);
        let blocks = encode_blocks(pts);
        sqlx::query(
            "INSERT INTO metric_chunks (series_id, start_step, end_step, count, min_step, min_value, min_ts, max_step, max_value, max_ts, data, blocks)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind($series)
        .bind(st.start_step)
        .bind(st.end_step)
        .bind(st.count)
        .bind(st.min.map(|p| p.step))
        .bind(st.min.map(|p| p.value))
        .bind(st.min.map(|p| p.timestamp_us))
        .bind(st.max.map(|p| p.step))
        .bind(st.max.map(|p| p.value))
        .bind(st.max.map(|p| p.timestamp_us))
        .bind(data)
        .bind(blocks)
        .execute(&mut *$tx)
        .await?;
    }};
}

/// Points per block: each chunk also stores the minimum and maximum of every block, so
/// downsampling to buckets of a few blocks never decodes the points themselves.
pub const BLOCK_POINTS: usize = 32;

/// Extremes of one block (a block of only NaN has its first point as both).
fn block_extremes(block: &[Point]) -> (Point, Point) {
    let st = codec::chunk_stats(block);
    match (st.min, st.max) {
        (Some(a), Some(b)) => (a, b),
        _ => (block[0], block[0]),
    }
}

/// Per-block minimums and maximums of a chunk: two point sequences (each with increasing
/// steps, one entry per block), encoded with the chunk codec behind a length prefix.
fn encode_blocks(points: &[Point]) -> Vec<u8> {
    let (mins, maxs): (Vec<Point>, Vec<Point>) =
        points.chunks(BLOCK_POINTS).map(block_extremes).unzip();
    let a = codec::encode_chunk(&mins);
    let b = codec::encode_chunk(&maxs);
    let mut out = Vec::with_capacity(4 + a.len() + b.len());
    out.extend_from_slice(&(a.len() as u32).to_le_bytes());
    out.extend_from_slice(&a);
    out.extend_from_slice(&b);
    out
}

/// Groups consecutive units (chunks or blocks, each given by its minimum and maximum point)
/// into at most `max_points / 2` buckets and appends each bucket's minimum and maximum in step
/// order. NaN counts only where a bucket holds nothing else.
fn push_bucket_extremes(series: &mut SeriesData, units: &[(Point, Point)], max_points: usize) {
    let buckets = (max_points / 2).max(1);
    let per_bucket = units.len().div_ceil(buckets).max(1);
    for group in units.chunks(per_bucket) {
        let (mut min, mut max) = group[0];
        for (a, b) in group {
            if a.value < min.value || (min.value.is_nan() && !a.value.is_nan()) {
                min = *a;
            }
            if b.value > max.value || (max.value.is_nan() && !b.value.is_nan()) {
                max = *b;
            }
        }
        let pair = if min.step == max.step {
            [Some(min), None]
        } else if min.step < max.step {
            [Some(min), Some(max)]
        } else {
            [Some(max), Some(min)]
        };
        for p in pair.into_iter().flatten() {
            series.steps.push(p.step);
            series.values.push(p.value);
            series.timestamps_us.push(p.timestamp_us);
        }
    }
    series.downsampled = true;
}

/// Decodes [`encode_blocks`] output into (min, max) pairs, one per block.
fn decode_blocks(data: &[u8]) -> ApiResult<Vec<(Point, Point)>> {
    let bad = || ApiError::Internal("corrupt metric block summary".into());
    let len = data.get(..4).ok_or_else(bad)?;
    let n = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
    let a = data.get(4..4 + n).ok_or_else(bad)?;
    let b = data.get(4 + n..).ok_or_else(bad)?;
    let (mins, maxs) = (decode(a)?, decode(b)?);
    if mins.len() != maxs.len() {
        return Err(bad());
    }
    Ok(mins.into_iter().zip(maxs).collect())
}

/// Decodes a chunk blob, turning corruption into an internal error.
fn decode(data: &[u8]) -> ApiResult<Vec<Point>> {
    codec::decode_chunk(data).map_err(|e| ApiError::Internal(format!("corrupt metric chunk: {e}")))
}

/// Merges two step-sorted lists; on equal steps `newer` wins.
fn merge_points(older: Vec<Point>, newer: &[Point]) -> Vec<Point> {
    let mut out = Vec::with_capacity(older.len() + newer.len());
    let (mut i, mut j) = (0, 0);
    while i < older.len() || j < newer.len() {
        if j >= newer.len() || (i < older.len() && older[i].step < newer[j].step) {
            out.push(older[i]);
            i += 1;
        } else {
            if i < older.len() && older[i].step == newer[j].step {
                i += 1;
            }
            out.push(newer[j]);
            j += 1;
        }
    }
    out
}

/// One series as read from storage: columnar, with timestamps in microseconds. It is written
/// out directly as the wire's [`Series`].
#[derive(Debug, Clone, Default)]
pub struct SeriesData {
    /// Metric name.
    pub key: String,
    /// Steps, ascending.
    pub steps: Vec<i64>,
    /// Values.
    pub values: Vec<f64>,
    /// Microseconds since the epoch.
    pub timestamps_us: Vec<i64>,
    /// Points stored in the requested range.
    pub total_points: u64,
    /// Whether buckets were reduced to their extremes.
    pub downsampled: bool,
}

impl SeriesData {
    /// The wire form.
    pub fn to_api(&self) -> Series {
        Series {
            key: self.key.clone(),
            steps: self.steps.clone(),
            values: self.values.iter().copied().map(MetricValue).collect(),
            timestamps: self
                .timestamps_us
                .iter()
                .copied()
                .map(us_to_seconds)
                .collect(),
            total_points: self.total_points,
            downsampled: self.downsampled,
        }
    }
}

/// The history of one run.
#[derive(Debug, Clone, Default)]
pub struct RunHistory {
    /// Run id.
    pub run: String,
    /// One entry per key.
    pub series: Vec<SeriesData>,
}

impl RunHistory {
    /// The wire form.
    pub fn to_api(&self) -> HistoryResponse {
        HistoryResponse {
            run: self.run.clone(),
            series: self.series.iter().map(SeriesData::to_api).collect(),
        }
    }
}

/// Moves columnar points into a series.
fn fill(series: &mut SeriesData, steps: Vec<i64>, values: Vec<f64>, ts: Vec<i64>) {
    series.steps = steps;
    series.values = values;
    series.timestamps_us = ts;
}

/// The metrics service.
pub struct Metrics<'a> {
    /// Shared state.
    pub state: &'a AppState,
}

impl Metrics<'_> {
    fn store(&self) -> &Store {
        &self.state.store
    }

    /// Appends a batch of points to a run. Idempotent per (key, step).
    pub async fn append(
        &self,
        actor: &Actor,
        run_id: &str,
        points: Vec<HistoryPoint>,
    ) -> ApiResult<AppendHistoryResponse> {
        let (run, _) = Runs { state: self.state }
            .load_for_write(actor, run_id)
            .await?;
        let now = now_us();
        let (by_key, total) = group_by_key(points, now)?;
        if by_key.is_empty() {
            return Ok(AppendHistoryResponse { accepted: 0 });
        }
        let mut keys: Vec<&String> = by_key.keys().collect();
        keys.sort();
        with_tx!(self.store(), tx => {
            for key in keys {
                let pts = &by_key[key];
                let row = sqlx::query(
                    "INSERT INTO metric_series (run_pk, key, updated_at) VALUES ($1, $2, $3)
                     ON CONFLICT (run_pk, key) DO UPDATE SET updated_at = excluded.updated_at
                     RETURNING id, count, last_step, last_value, last_nan, min_value, max_value",
                )
                .bind(run.pk)
                .bind(key)
                .bind(now)
                .fetch_one(&mut *tx)
                .await?;
                let series_id: i64 = row.try_get("id")?;
                let mut count: i64 = row.try_get("count")?;
                let mut last_step: Option<i64> = row.try_get("last_step")?;
                let mut last_value: Option<f64> = row.try_get("last_value")?;
                let mut last_nan: bool = row.try_get("last_nan")?;
                let mut min_value: Option<f64> = row.try_get("min_value")?;
                let mut max_value: Option<f64> = row.try_get("max_value")?;
                let first = pts[0].step;
                let newest = pts[pts.len() - 1];
                let appends = last_step.is_none_or(|l| first > l);
                if appends {
                    // Fill the open (last) chunk first, then start new ones.
                    let tail = sqlx::query("SELECT start_step, count, data FROM metric_chunks WHERE series_id = $1 ORDER BY start_step DESC LIMIT 1")
                        .bind(series_id)
                        .fetch_optional(&mut *tx)
                        .await?;
                    let mut merged: Vec<Point> = Vec::new();
                    if let Some(t) = tail {
                        let n: i64 = t.try_get("count")?;
                        if (n as usize) < CHUNK_POINTS {
                            let start: i64 = t.try_get("start_step")?;
                            let data: Vec<u8> = t.try_get("data")?;
                            merged = decode(&data)?;
                            sqlx::query("DELETE FROM metric_chunks WHERE series_id = $1 AND start_step = $2")
                                .bind(series_id).bind(start).execute(&mut *tx).await?;
                        }
                    }
                    merged.extend_from_slice(pts);
                    for c in merged.chunks(CHUNK_POINTS) {
                        insert_chunk!(tx, series_id, c);
                    }
                    count += pts.len() as i64;
                    let (lo, hi) = finite_min_max(pts);
                    min_value = opt_min(min_value, lo);
                    max_value = opt_max(max_value, hi);
                } else {
                    // Rewrites or late points: merge every chunk the batch's step range touches.
                    let rows = sqlx::query("SELECT start_step, count, data FROM metric_chunks WHERE series_id = $1 AND end_step >= $2 AND start_step <= $3 ORDER BY start_step")
                        .bind(series_id).bind(first).bind(newest.step)
                        .fetch_all(&mut *tx)
                        .await?;
                    let mut old: Vec<Point> = Vec::new();
                    for r in &rows {
                        let data: Vec<u8> = r.try_get("data")?;
                        old.extend(decode(&data)?);
                        count -= r.try_get::<i64, _>("count")?;
                    }
                    sqlx::query("DELETE FROM metric_chunks WHERE series_id = $1 AND end_step >= $2 AND start_step <= $3")
                        .bind(series_id).bind(first).bind(newest.step)
                        .execute(&mut *tx).await?;
                    let merged = merge_points(old, pts);
                    for c in merged.chunks(CHUNK_POINTS) {
                        insert_chunk!(tx, series_id, c);
                    }
                    count += merged.len() as i64;
                    let ext = sqlx::query("SELECT MIN(min_value) AS lo, MAX(max_value) AS hi FROM metric_chunks WHERE series_id = $1")
                        .bind(series_id).fetch_one(&mut *tx).await?;
                    min_value = ext.try_get("lo")?;
                    max_value = ext.try_get("hi")?;
                }
                if last_step.is_none_or(|l| newest.step >= l) {
                    last_step = Some(newest.step);
                    last_nan = newest.value.is_nan();
                    last_value = (!last_nan).then_some(newest.value);
                }
                sqlx::query("UPDATE metric_series SET count = $1, last_step = $2, last_value = $3, last_nan = $4, min_value = $5, max_value = $6 WHERE id = $7")
                    .bind(count).bind(last_step).bind(last_value).bind(last_nan).bind(min_value).bind(max_value).bind(series_id)
                    .execute(&mut *tx).await?;
            }
            sqlx::query("UPDATE runs SET updated_at = $1 WHERE pk = $2").bind(now).bind(run.pk).execute(&mut *tx).await?;
        });
        Ok(AppendHistoryResponse { accepted: total })
    }

    async fn series_rows(&self, run_pk: i64, keys: &[String]) -> ApiResult<Vec<SeriesRow>> {
        let rows = on_backend!(self.store(), read pool => {
            let rows = sqlx::query("SELECT id, key, count, last_step, last_value, last_nan, min_value, max_value, set_value, set_nan, is_set FROM metric_series WHERE run_pk = $1 ORDER BY key")
                .bind(run_pk)
                .fetch_all(pool)
                .await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                out.push(SeriesRow {
                    id: r.try_get("id")?,
                    key: r.try_get("key")?,
                    count: r.try_get("count")?,
                    last_step: r.try_get("last_step")?,
                    last_value: r.try_get("last_value")?,
                    last_nan: r.try_get("last_nan")?,
                    min_value: r.try_get("min_value")?,
                    max_value: r.try_get("max_value")?,
                    set_value: r.try_get("set_value")?,
                    set_nan: r.try_get("set_nan")?,
                    is_set: r.try_get("is_set")?,
                });
            }
            out
        });
        if keys.is_empty() {
            // Keys a client only set a summary for have no history to show.
            return Ok(rows.into_iter().filter(|r| r.count > 0).collect());
        }
        let mut seen = std::collections::HashSet::new();
        Ok(keys
            .iter()
            .filter(|k| seen.insert(k.as_str()))
            .filter_map(|k| rows.iter().find(|r| &r.key == k).cloned())
            .collect())
    }

    async fn chunk_rows(
        &self,
        series_id: i64,
        lo: i64,
        hi: i64,
        fetch: Fetch,
    ) -> ApiResult<Vec<ChunkRow>> {
        let sql: &'static str = match fetch {
            Fetch::Data => {
                "SELECT start_step, end_step, count, min_step, min_value, min_ts, max_step, max_value, max_ts, data FROM metric_chunks WHERE series_id = $1 AND end_step >= $2 AND start_step <= $3 ORDER BY start_step"
            }
            Fetch::Blocks => {
                "SELECT start_step, end_step, count, min_step, min_value, min_ts, max_step, max_value, max_ts, blocks AS data FROM metric_chunks WHERE series_id = $1 AND end_step >= $2 AND start_step <= $3 ORDER BY start_step"
            }
            Fetch::Stats => {
                "SELECT start_step, end_step, count, min_step, min_value, min_ts, max_step, max_value, max_ts FROM metric_chunks WHERE series_id = $1 AND end_step >= $2 AND start_step <= $3 ORDER BY start_step"
            }
        };
        let with_data = fetch != Fetch::Stats;
        Ok(on_backend!(self.store(), read pool => {
            let rows = sqlx::query(sql).bind(series_id).bind(lo).bind(hi).fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                let point = |s: Option<i64>, v: Option<f64>, t: Option<i64>| match (s, v, t) {
                    (Some(step), Some(value), Some(timestamp_us)) => Some(Point { step, value, timestamp_us }),
                    _ => None,
                };
                let start_step: i64 = r.try_get("start_step")?;
                let end_step: i64 = r.try_get("end_step")?;
                out.push(ChunkRow {
                    start_step,
                    end_step,
                    stats: ChunkStats {
                        count: r.try_get("count")?,
                        start_step,
                        end_step,
                        min: point(r.try_get("min_step")?, r.try_get("min_value")?, r.try_get("min_ts")?),
                        max: point(r.try_get("max_step")?, r.try_get("max_value")?, r.try_get("max_ts")?),
                    },
                    data: if with_data { Some(r.try_get("data")?) } else { None },
                });
            }
            out
        }))
    }

    /// Blobs of the chunks starting at `starts`, in as few queries as possible.
    async fn chunk_blobs(
        &self,
        series_id: i64,
        starts: &[i64],
    ) -> ApiResult<HashMap<i64, Vec<u8>>> {
        let mut out = HashMap::with_capacity(starts.len());
        for group in starts.chunks(500) {
            let list: Vec<String> = (0..group.len()).map(|i| format!("${}", i + 2)).collect();
            let sql = format!(
                "SELECT start_step, data FROM metric_chunks WHERE series_id = $1 AND start_step IN ({})",
                list.join(",")
            );
            let rows: Vec<(i64, Vec<u8>)> = on_backend!(self.store(), read pool => {
                let mut q = sqlx::query_as::<_, (i64, Vec<u8>)>(sqlx::AssertSqlSafe(sql)).bind(series_id);
                for st in group {
                    q = q.bind(*st);
                }
                q.fetch_all(pool).await?
            });
            out.extend(rows);
        }
        Ok(out)
    }

    /// Reads one series in a step range, downsampled to at most `max_points`.
    ///
    /// Coarse reads (at least one whole chunk per bucket) use buckets made of whole chunks and
    /// take each bucket's extremes from the chunk rows' stored minimum and maximum, so no blob
    /// is read except where the step range cuts a chunk. Finer reads decode the points and use
    /// buckets of equal step width. Either way every bucket's minimum and maximum are exact.
    async fn read_series(
        &self,
        s: &SeriesRow,
        lo: i64,
        hi: i64,
        max_points: Option<usize>,
    ) -> ApiResult<SeriesData> {
        let series = SeriesData {
            key: s.key.clone(),
            ..SeriesData::default()
        };
        if s.count == 0 || lo > hi {
            return Ok(series);
        }
        let Some(maxp) = max_points.filter(|m| s.count as u64 > *m as u64) else {
            return self.read_raw(series, s.id, lo, hi).await;
        };
        let buckets = (maxp / 2).max(1);
        let count = s.count as usize;
        if count >= buckets * CHUNK_POINTS {
            self.read_extremes(series, s.id, (lo, hi), maxp, Fetch::Stats)
                .await
        } else if count >= buckets * BLOCK_POINTS {
            self.read_extremes(series, s.id, (lo, hi), maxp, Fetch::Blocks)
                .await
        } else {
            self.read_fine(series, s.id, lo, hi, maxp).await
        }
    }

    /// Downsampling from stored extremes: buckets are runs of whole units (chunks, whose
    /// extremes sit in the chunk rows, or 32-point blocks, from the block summaries). Chunks
    /// the step range cuts, and chunks holding only NaN, are decoded and re-cut into units.
    async fn read_extremes(
        &self,
        mut series: SeriesData,
        series_id: i64,
        (lo, hi): (i64, i64),
        maxp: usize,
        unit: Fetch,
    ) -> ApiResult<SeriesData> {
        let unit_points = if unit == Fetch::Blocks {
            BLOCK_POINTS
        } else {
            CHUNK_POINTS
        };
        let rows = self.chunk_rows(series_id, lo, hi, unit).await?;
        let decode_whole = |c: &ChunkRow| {
            c.start_step < lo || c.end_step > hi || (unit == Fetch::Stats && c.stats.min.is_none())
        };
        let needed: Vec<i64> = rows
            .iter()
            .filter(|c| decode_whole(c))
            .map(|c| c.start_step)
            .collect();
        let blobs = self.chunk_blobs(series_id, &needed).await?;
        let mut units: Vec<(Point, Point)> = Vec::with_capacity(rows.len());
        let mut total = 0u64;
        for c in &rows {
            if let Some(data) = blobs.get(&c.start_step) {
                let mut pts = decode(data)?;
                pts.retain(|p| p.step >= lo && p.step <= hi);
                total += pts.len() as u64;
                units.extend(pts.chunks(unit_points).map(block_extremes));
                continue;
            }
            total += c.stats.count as u64;
            match (unit, c.stats.min, c.stats.max) {
                (Fetch::Blocks, _, _) => {
                    units.extend(decode_blocks(c.data.as_deref().unwrap_or_default())?)
                }
                (_, Some(a), Some(b)) => units.push((a, b)),
                _ => return Err(ApiError::Internal("metric chunk without extremes".into())),
            }
        }
        if total <= maxp as u64 {
            return self.read_raw(series, series_id, lo, hi).await;
        }
        push_bucket_extremes(&mut series, &units, maxp);
        series.total_points = total;
        Ok(series)
    }

    /// Downsampling from decoded points, with buckets of equal step width.
    async fn read_fine(
        &self,
        mut series: SeriesData,
        series_id: i64,
        lo: i64,
        hi: i64,
        maxp: usize,
    ) -> ApiResult<SeriesData> {
        let (steps, values, ts) = self.points(series_id, lo, hi).await?;
        series.total_points = steps.len() as u64;
        if steps.len() <= maxp {
            fill(&mut series, steps, values, ts);
            return Ok(series);
        }
        let mut ds = Downsampler::new(steps[0], steps[steps.len() - 1], maxp);
        for i in 0..steps.len() {
            ds.add_point(Point {
                step: steps[i],
                value: values[i],
                timestamp_us: ts[i],
            });
        }
        let out = ds.finish();
        fill(
            &mut series,
            out.iter().map(|p| p.step).collect(),
            out.iter().map(|p| p.value).collect(),
            out.iter().map(|p| p.timestamp_us).collect(),
        );
        series.downsampled = true;
        Ok(series)
    }

    /// Every point of a series in a step range.
    async fn read_raw(
        &self,
        mut series: SeriesData,
        series_id: i64,
        lo: i64,
        hi: i64,
    ) -> ApiResult<SeriesData> {
        let (steps, values, ts) = self.points(series_id, lo, hi).await?;
        series.total_points = steps.len() as u64;
        fill(&mut series, steps, values, ts);
        Ok(series)
    }

    /// Decodes every point of a series in a step range, columnar.
    async fn points(
        &self,
        series_id: i64,
        lo: i64,
        hi: i64,
    ) -> ApiResult<(Vec<i64>, Vec<f64>, Vec<i64>)> {
        let rows = self.chunk_rows(series_id, lo, hi, Fetch::Data).await?;
        let n: usize = rows.iter().map(|c| c.stats.count as usize).sum();
        let (mut st, mut va, mut ti) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        for c in &rows {
            let data = c.data.as_deref().unwrap_or_default();
            codec::decode_chunk_into(data, &mut st, &mut va, &mut ti)
                .map_err(|e| ApiError::Internal(format!("corrupt metric chunk: {e}")))?;
        }
        // Only the first and last chunk can reach outside the range.
        if st.first().is_some_and(|s| *s < lo) || st.last().is_some_and(|s| *s > hi) {
            let keep: Vec<bool> = st.iter().map(|s| *s >= lo && *s <= hi).collect();
            let mut k = keep.iter();
            st.retain(|_| *k.next().unwrap_or(&false));
            let mut k = keep.iter();
            va.retain(|_| *k.next().unwrap_or(&false));
            let mut k = keep.iter();
            ti.retain(|_| *k.next().unwrap_or(&false));
        }
        Ok((st, va, ti))
    }

    /// History of keys of one run (all keys when `keys` is empty).
    pub async fn history(
        &self,
        actor: &Actor,
        run_id: &str,
        keys: &[String],
        min_step: Option<i64>,
        max_step: Option<i64>,
        max_points: Option<usize>,
    ) -> ApiResult<RunHistory> {
        let (run, _) = Runs { state: self.state }.load(actor, run_id).await?;
        self.history_of(run.pk, run_id, keys, min_step, max_step, max_points)
            .await
    }

    async fn history_of(
        &self,
        run_pk: i64,
        run_id: &str,
        keys: &[String],
        min_step: Option<i64>,
        max_step: Option<i64>,
        max_points: Option<usize>,
    ) -> ApiResult<RunHistory> {
        if max_points.is_some_and(|m| m < 2) {
            return Err(ApiError::invalid("max_points must be at least 2"));
        }
        let lo = min_step.unwrap_or(i64::MIN);
        let hi = max_step.unwrap_or(i64::MAX);
        if lo > hi {
            return Err(ApiError::invalid("min_step is greater than max_step"));
        }
        let rows = self.series_rows(run_pk, keys).await?;
        let mut series = Vec::with_capacity(rows.len());
        for s in &rows {
            series.push(self.read_series(s, lo, hi, max_points).await?);
        }
        Ok(RunHistory {
            run: run_id.to_string(),
            series,
        })
    }

    /// Every value of one key of a run, in step order (the sweep controller's input).
    pub(crate) async fn values_of(
        &self,
        run_pk: i64,
        run_id: &str,
        key: &str,
    ) -> ApiResult<Vec<f64>> {
        let h = self
            .history_of(run_pk, run_id, &[key.to_string()], None, None, None)
            .await?;
        Ok(h.series
            .into_iter()
            .next()
            .map(|s| s.values)
            .unwrap_or_default())
    }

    /// Many runs at once (for comparison charts). Runs the caller cannot read are 404.
    pub async fn query(
        &self,
        actor: &Actor,
        run_ids: &[String],
        keys: &[String],
        min_step: Option<i64>,
        max_step: Option<i64>,
        max_points: Option<usize>,
    ) -> ApiResult<Vec<RunHistory>> {
        if run_ids.is_empty() {
            return Err(ApiError::invalid("runs must name at least one run"));
        }
        if run_ids.len() > 1000 {
            return Err(ApiError::invalid("at most 1000 runs per query"));
        }
        let runs = Runs { state: self.state };
        let mut loaded = Vec::with_capacity(run_ids.len());
        for id in run_ids {
            let (run, _) = runs.load(actor, id).await?;
            loaded.push((run.pk, id.clone()));
        }
        // Runs are read concurrently: decoding is CPU work that can use every core.
        use futures_util::StreamExt;
        let results: Vec<ApiResult<RunHistory>> = futures_util::stream::iter(loaded)
            .map(|(pk, id)| async move {
                self.history_of(pk, &id, keys, min_step, max_step, max_points)
                    .await
            })
            .buffered(4)
            .collect()
            .await;
        results.into_iter().collect()
    }

    /// Summaries of every metric of a run.
    pub async fn summary(&self, actor: &Actor, run_id: &str) -> ApiResult<Vec<MetricSummary>> {
        let (run, _) = Runs { state: self.state }.load(actor, run_id).await?;
        let rows = self.series_rows(run.pk, &[]).await?;
        Ok(rows
            .into_iter()
            .map(|s| {
                let logged = if s.last_nan {
                    Some(f64::NAN)
                } else {
                    s.last_value
                };
                let set = if s.set_nan {
                    Some(f64::NAN)
                } else {
                    s.set_value
                };
                MetricSummary {
                    key: s.key,
                    last: if s.is_set { set } else { logged }.map(MetricValue),
                    last_step: s.last_step,
                    min: s.min_value.map(MetricValue),
                    max: s.max_value.map(MetricValue),
                    count: s.count,
                    set_by_client: s.is_set,
                }
            })
            .collect())
    }

    /// Sets summary values explicitly; they win over logged values in the run's summary.
    pub async fn set_summary(
        &self,
        actor: &Actor,
        run_id: &str,
        values: Vec<(String, MetricValue)>,
    ) -> ApiResult<Vec<MetricSummary>> {
        let (run, _) = Runs { state: self.state }
            .load_for_write(actor, run_id)
            .await?;
        let now = now_us();
        for (k, _) in &values {
            if k.is_empty() || k.len() > MAX_KEY_LEN {
                return Err(ApiError::invalid(format!(
                    "metric names must be 1 to {MAX_KEY_LEN} characters"
                )));
            }
        }
        with_tx!(self.store(), tx => {
            for (k, MetricValue(v)) in &values {
                let nan = v.is_nan();
                sqlx::query(
                    "INSERT INTO metric_series (run_pk, key, updated_at, set_value, set_nan, is_set) VALUES ($1, $2, $3, $4, $5, $6)
                     ON CONFLICT (run_pk, key) DO UPDATE SET set_value = excluded.set_value, set_nan = excluded.set_nan, is_set = excluded.is_set, updated_at = excluded.updated_at",
                )
                .bind(run.pk).bind(k).bind(now).bind((!nan).then_some(*v)).bind(nan).bind(true)
                .execute(&mut *tx).await?;
            }
            sqlx::query("UPDATE runs SET updated_at = $1 WHERE pk = $2").bind(now).bind(run.pk).execute(&mut *tx).await?;
        });
        self.summary(actor, run_id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wanllmdb_api_types::metrics::MetricValues;

    fn hp(step: i64, vals: &[(&str, f64)]) -> HistoryPoint {
        HistoryPoint {
            step,
            timestamp: Some(1.0),
            values: MetricValues(
                vals.iter()
                    .map(|(k, v)| (k.to_string(), MetricValue(*v)))
                    .collect(),
            ),
        }
    }

    #[test]
    fn groups_sorts_and_dedups() {
        let (g, total) = group_by_key(
            vec![
                hp(2, &[("a", 2.0)]),
                hp(1, &[("a", 1.0), ("b", 5.0)]),
                hp(2, &[("a", 3.0)]),
            ],
            0,
        )
        .unwrap();
        assert_eq!(total, 3);
        let a: Vec<(i64, f64)> = g["a"].iter().map(|p| (p.step, p.value)).collect();
        assert_eq!(a, vec![(1, 1.0), (2, 3.0)]);
        assert_eq!(g["b"].len(), 1);
    }

    #[test]
    fn merge_prefers_newer() {
        let p = |s, v| Point {
            step: s,
            value: v,
            timestamp_us: 0,
        };
        let m = merge_points(
            vec![p(1, 1.0), p(3, 3.0), p(5, 5.0)],
            &[p(3, 30.0), p(4, 40.0), p(6, 60.0)],
        );
        let got: Vec<(i64, f64)> = m.iter().map(|p| (p.step, p.value)).collect();
        assert_eq!(
            got,
            vec![(1, 1.0), (3, 30.0), (4, 40.0), (5, 5.0), (6, 60.0)]
        );
    }

    #[test]
    fn block_summaries_round_trip() {
        let pts: Vec<Point> = (0..100)
            .map(|i| Point {
                step: i,
                value: if i < 32 {
                    f64::NAN
                } else {
                    ((i * 37) % 11) as f64
                },
                timestamp_us: i * 10,
            })
            .collect();
        let blocks = decode_blocks(&encode_blocks(&pts)).unwrap();
        assert_eq!(blocks.len(), 4);
        assert!(
            blocks[0].0.value.is_nan() && blocks[0].0.step == 0,
            "all-NaN block keeps its first point"
        );
        for (i, (lo, hi)) in blocks.iter().enumerate().skip(1) {
            let block = &pts[i * BLOCK_POINTS..((i + 1) * BLOCK_POINTS).min(pts.len())];
            let want_lo = block.iter().map(|p| p.value).fold(f64::INFINITY, f64::min);
            let want_hi = block
                .iter()
                .map(|p| p.value)
                .fold(f64::NEG_INFINITY, f64::max);
            assert_eq!((lo.value, hi.value), (want_lo, want_hi));
        }
        assert!(decode_blocks(&[1, 0]).is_err());
        assert!(decode_blocks(&[200, 0, 0, 0, 1]).is_err());
    }

    #[test]
    fn rejects_bad_keys() {
        assert!(group_by_key(vec![hp(0, &[("", 1.0)])], 0).is_err());
        let long = "k".repeat(MAX_KEY_LEN + 1);
        assert!(group_by_key(vec![hp(0, &[(long.as_str(), 1.0)])], 0).is_err());
    }
}
