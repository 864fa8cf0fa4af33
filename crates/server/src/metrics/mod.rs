//! Metric history. Points of one (run, key) live in compressed chunks of consecutive steps
//! (at most [`CHUNK_POINTS`] each and about a database page of bytes, never overlapping),
//! each row carrying its count and
//! extremes so downsampled reads can skip decoding. Appends that continue a series fill the
//! last chunk and add new ones; a batch that rewrites old steps (a retry, late points) merges
//! the chunks it touches, so a point is stored once per (run, key, step).

pub mod binary;
pub mod buckets;
pub mod chunks;
pub mod codec;
pub mod json;
pub mod routes;
mod store;

use std::collections::HashMap;

use wanllmdb_api_types::metrics::{
    AppendHistoryResponse, HistoryPoint, HistoryResponse, MetricSummary, MetricValue, Series,
};

use crate::auth::Actor;
use crate::error::{ApiError, ApiResult};
use crate::runs::Runs;
use crate::state::AppState;
use crate::store::{now_us, seconds_to_us, us_to_seconds};
use buckets::{BucketWriter, Buckets, Grid};
use codec::Point;
use store::{ChunkRow, Fetch, SeriesRow};
use wanllmdb_api_types::RunId;

/// Largest number of points in one chunk.
pub const CHUNK_POINTS: usize = 4096;
/// Most bytes of blobs in one chunk row. SQLite keeps a row of up to 4,061 bytes inside one
/// 4 KiB page and moves the rest of a longer one to overflow pages; a row cannot share its page
/// with another that does not fit beside it, so rows sized in points (1,024 of them: 2 to
/// 3.5 KB) left a quarter to a half of each page empty. Rows cut by bytes fill their pages.
/// The remaining columns of a row take under 100 bytes.
pub const CHUNK_BYTES: usize = 3900;
/// A series' last chunk is filled by later appends while its blobs are under this size.
const OPEN_CHUNK_BYTES: usize = CHUNK_BYTES * 9 / 10;
const MAX_KEY_LEN: usize = 256;
/// Most series one history read may return.
pub const MAX_SERIES_PER_READ: usize = 10_000;

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
            ApiError::check_text("metric name", &key)?;
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
/// steps, one entry per block), encoded with the chunk codec behind a length prefix. Reads use
/// their values (and steps); their timestamps are stored as 0, which saves a tenth of a
/// typical chunk (the extremes' times jump irregularly and cost 2 to 3 bytes each).
fn encode_blocks(points: &[Point]) -> Vec<u8> {
    let untimed = |p: Point| Point {
        timestamp_us: 0,
        ..p
    };
    let (mins, maxs): (Vec<Point>, Vec<Point>) = points
        .chunks(BLOCK_POINTS)
        .map(block_extremes)
        .map(|(a, b)| (untimed(a), untimed(b)))
        .unzip();
    let a = codec::encode_chunk(&mins);
    let b = codec::encode_chunk(&maxs);
    let mut out = Vec::with_capacity(4 + a.len() + b.len());
    out.extend_from_slice(&(a.len() as u32).to_le_bytes());
    out.extend_from_slice(&a);
    out.extend_from_slice(&b);
    out
}

/// The last point of every block of a chunk, encoded with the chunk codec.
fn encode_lasts(points: &[Point]) -> Vec<u8> {
    let lasts: Vec<Point> = points
        .chunks(BLOCK_POINTS)
        .map(|b| b[b.len() - 1])
        .collect();
    codec::encode_chunk(&lasts)
}

/// The two blobs of [`encode_blocks`] output (minimums, maximums); None when truncated.
fn block_halves(data: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, rest) = data.split_first_chunk::<4>()?;
    let n = usize::try_from(u32::from_le_bytes(*len)).ok()?;
    (n <= rest.len()).then(|| rest.split_at(n))
}

/// Decodes [`encode_blocks`] output into (min, max) pairs, one per block; `start_step` names
/// the chunk in errors.
fn decode_blocks(data: &[u8], start_step: i64) -> ApiResult<Vec<(Point, Point)>> {
    let (a, b) =
        block_halves(data).ok_or_else(|| damaged(start_step, "block summary truncated"))?;
    let (mins, maxs) = (decode(a, start_step)?, decode(b, start_step)?);
    if mins.len() != maxs.len() {
        return Err(damaged(start_step, "block summary lengths differ"));
    }
    Ok(mins.into_iter().zip(maxs).collect())
}

/// Decodes a chunk blob (or a summary blob of the chunk starting at `start_step`), turning
/// damage into an error that says which chunk it is.
fn decode(data: &[u8], start_step: i64) -> ApiResult<Vec<Point>> {
    codec::decode_chunk(data).map_err(|e| damaged(start_step, &e.0))
}

/// The error for a damaged chunk; [`in_key`] and [`in_run`] add the key and the run.
fn damaged(start_step: i64, what: &str) -> ApiError {
    ApiError::DataCorrupt(format!(
        "the stored chunk from step {start_step} is damaged ({what}); an administrator can \
         list damaged chunks with `wanllmdb admin verify`"
    ))
}

/// Names the key in a damaged-chunk error; other errors pass unchanged.
fn in_key(e: ApiError, key: &str) -> ApiError {
    match e {
        ApiError::DataCorrupt(m) => ApiError::DataCorrupt(format!("metric {key:?}: {m}")),
        e => e,
    }
}

/// Names the run in a damaged-chunk error that names its key; other errors pass unchanged.
fn in_run(e: ApiError, run: &str) -> ApiError {
    match e {
        ApiError::DataCorrupt(m) => ApiError::DataCorrupt(format!("run {run}, {m}")),
        e => e,
    }
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
    /// Whether the points were reduced to buckets: then `steps` are the buckets' grid steps,
    /// `values` and `timestamps_us` their last points, and `min` and `max` their extremes.
    pub downsampled: bool,
    /// Smallest value of each bucket (downsampled reads only).
    pub min: Vec<f64>,
    /// Largest value of each bucket (downsampled reads only).
    pub max: Vec<f64>,
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
            min: self.downsampled.then(|| wire(&self.min)),
            max: self.downsampled.then(|| wire(&self.max)),
            last: self.downsampled.then(|| wire(&self.values)),
        }
    }

    /// Takes the buckets of a downsampled read.
    fn set_buckets(&mut self, b: Buckets) {
        self.steps = b.steps;
        self.values = b.last;
        self.timestamps_us = b.last_us;
        self.min = b.min;
        self.max = b.max;
        self.downsampled = true;
    }
}

fn wire(values: &[f64]) -> Vec<MetricValue> {
    values.iter().copied().map(MetricValue).collect()
}

/// The history of one run.
#[derive(Debug, Clone)]
pub struct RunHistory {
    /// Run id.
    pub run: RunId,
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

/// The inclusive step range of a read, after checking the read's parameters.
fn step_range(
    min_step: Option<i64>,
    max_step: Option<i64>,
    max_points: Option<usize>,
) -> ApiResult<(i64, i64)> {
    if max_points.is_some_and(|m| m < 2) {
        return Err(ApiError::invalid("max_points must be at least 2"));
    }
    let lo = min_step.unwrap_or(i64::MIN);
    let hi = max_step.unwrap_or(i64::MAX);
    if lo > hi {
        return Err(ApiError::invalid("min_step is greater than max_step"));
    }
    Ok((lo, hi))
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
    /// Appends a batch of points to a run. Idempotent per (key, step).
    pub async fn append(
        &self,
        actor: &Actor,
        run_id: &RunId,
        points: Vec<HistoryPoint>,
    ) -> ApiResult<AppendHistoryResponse> {
        let (run, _) = Runs { state: self.state }
            .load_for_write(actor, run_id)
            .await?;
        self.append_checked(run.pk, run_id, points).await
    }

    /// [`Metrics::append`] to a run the caller was already checked to write to (by its
    /// internal key).
    pub(crate) async fn append_checked(
        &self,
        run_pk: i64,
        run_id: &RunId,
        points: Vec<HistoryPoint>,
    ) -> ApiResult<AppendHistoryResponse> {
        let now = now_us();
        let (by_key, total) = group_by_key(points, now)?;
        if by_key.is_empty() {
            return Ok(AppendHistoryResponse { accepted: 0 });
        }
        let mut batch: Vec<(&str, &[Point])> = by_key
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_slice()))
            .collect();
        batch.sort_unstable_by_key(|(k, _)| *k);
        store::append(&self.state.store, run_pk, now, &batch)
            .await
            .map_err(|e| in_run(e, run_id))?;
        Ok(AppendHistoryResponse { accepted: total })
    }

    async fn series_rows(&self, run_pk: i64, keys: &[String]) -> ApiResult<Vec<SeriesRow>> {
        let rows = store::series_of_run(&self.state.store, run_pk).await?;
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

    /// Reads one series in a step range; above `max_points` points it is downsampled onto
    /// `grid` (or, for a read of one run, onto a grid over the series' own range).
    ///
    /// The cheapest source that still sees every point is used: with at least a chunk's worth
    /// of points per bucket, the chunk rows' stored extremes and last points (no blob read);
    /// with at least a block's worth, the per-block summaries; otherwise the points
    /// themselves. Chunks the step range cuts, the first chunk (so the first point is exact)
    /// and chunks written before their last points were stored are decoded.
    async fn read_series(
        &self,
        s: &SeriesRow,
        (lo, hi): (i64, i64),
        max_points: Option<usize>,
        grid: Option<Grid>,
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
        let per_bucket = s.count as u64 / grid.map_or(maxp as u64, |g| g.len());
        let unit = if per_bucket >= CHUNK_POINTS as u64 {
            Fetch::Stats
        } else if per_bucket >= BLOCK_POINTS as u64 {
            Fetch::Blocks
        } else {
            return self.read_fine(series, s.id, (lo, hi), maxp, grid).await;
        };
        let rows = store::chunks(&self.state.store, s.id, lo, hi, unit).await?;
        let (Some(first), Some(last)) = (rows.first(), rows.last()) else {
            return Ok(series);
        };
        let grid = grid
            .unwrap_or_else(|| Grid::new(first.start_step.max(lo), last.end_step.min(hi), maxp));
        let decode_whole = |i: usize, c: &ChunkRow| {
            i == 0
                || c.start_step < lo
                || c.end_step > hi
                || c.last.is_none()
                || (unit == Fetch::Blocks && c.lasts.is_none())
        };
        let needed: Vec<i64> = rows
            .iter()
            .enumerate()
            .filter(|(i, c)| decode_whole(*i, c))
            .map(|(_, c)| c.start_step)
            .collect();
        let blobs = store::chunk_blobs(&self.state.store, s.id, &needed).await?;
        let mut out = BucketWriter::new(grid);
        let mut total = 0u64;
        for c in &rows {
            if let Some(data) = blobs.get(&c.start_step) {
                for p in decode(data, c.start_step)? {
                    if p.step >= lo && p.step <= hi {
                        total += 1;
                        out.point(p);
                    }
                }
                continue;
            }
            total += c.stats.count as u64;
            let last = c
                .last
                .ok_or_else(|| ApiError::Internal("metric chunk without its last point".into()))?;
            if unit == Fetch::Blocks {
                let extremes = decode_blocks(c.data.as_deref().unwrap_or_default(), c.start_step)?;
                let lasts = decode(c.lasts.as_deref().unwrap_or_default(), c.start_step)?;
                if extremes.len() != lasts.len() {
                    return Err(damaged(c.start_step, "block summary lengths differ"));
                }
                for ((min, max), last) in extremes.into_iter().zip(lasts) {
                    out.unit(min.value, max.value, last);
                }
            } else {
                let value = |p: Option<Point>| p.map_or(f64::NAN, |p| p.value);
                out.unit(value(c.stats.min), value(c.stats.max), last);
            }
        }
        if total <= maxp as u64 {
            return self.read_raw(series, s.id, lo, hi).await;
        }
        let mut series = series;
        series.total_points = total;
        series.set_buckets(out.finish());
        Ok(series)
    }

    /// Downsampling from decoded points.
    async fn read_fine(
        &self,
        mut series: SeriesData,
        series_id: i64,
        (lo, hi): (i64, i64),
        maxp: usize,
        grid: Option<Grid>,
    ) -> ApiResult<SeriesData> {
        let (steps, values, ts) = self.points(series_id, lo, hi).await?;
        series.total_points = steps.len() as u64;
        if steps.len() <= maxp {
            fill(&mut series, steps, values, ts);
            return Ok(series);
        }
        let grid = grid.unwrap_or_else(|| Grid::new(steps[0], steps[steps.len() - 1], maxp));
        let mut out = BucketWriter::new(grid);
        for i in 0..steps.len() {
            out.point(Point {
                step: steps[i],
                value: values[i],
                timestamp_us: ts[i],
            });
        }
        series.set_buckets(out.finish());
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
        let rows = store::chunks(&self.state.store, series_id, lo, hi, Fetch::Data).await?;
        let n: usize = rows.iter().map(|c| c.stats.count as usize).sum();
        let (mut st, mut va, mut ti) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        for c in &rows {
            let data = c.data.as_deref().unwrap_or_default();
            codec::decode_chunk_into(data, &mut st, &mut va, &mut ti)
                .map_err(|e| damaged(c.start_step, &e.0))?;
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
        run_id: &RunId,
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
        run_id: &RunId,
        keys: &[String],
        min_step: Option<i64>,
        max_step: Option<i64>,
        max_points: Option<usize>,
    ) -> ApiResult<RunHistory> {
        let range = step_range(min_step, max_step, max_points)?;
        let rows = self.series_rows(run_pk, keys).await?;
        self.read_run(run_id, &rows, range, max_points, None).await
    }

    /// Reads the given series of one run; `grids` holds the shared grid of each key.
    async fn read_run(
        &self,
        run_id: &RunId,
        rows: &[SeriesRow],
        range: (i64, i64),
        max_points: Option<usize>,
        grids: Option<&HashMap<String, Grid>>,
    ) -> ApiResult<RunHistory> {
        let mut series = Vec::with_capacity(rows.len());
        for s in rows {
            let grid = grids.and_then(|g| g.get(&s.key)).copied();
            let read = self.read_series(s, range, max_points, grid).await;
            series.push(read.map_err(|e| in_run(in_key(e, &s.key), run_id))?);
        }
        Ok(RunHistory {
            run: run_id.clone(),
            series,
        })
    }

    /// One grid per key over the union of the step ranges of the series that will be
    /// downsampled, so every run's buckets of a key sit on the same steps.
    async fn shared_grids(
        &self,
        runs: &[(RunId, Vec<SeriesRow>)],
        (lo, hi): (i64, i64),
        max_points: usize,
    ) -> ApiResult<HashMap<String, Grid>> {
        let mut spans: HashMap<String, (i64, i64)> = HashMap::new();
        for (_, rows) in runs {
            for s in rows.iter().filter(|s| s.count as u64 > max_points as u64) {
                let Some((first, last)) = self.span(s.id, lo, hi).await? else {
                    continue;
                };
                let e = spans.entry(s.key.clone()).or_insert((first, last));
                *e = (e.0.min(first), e.1.max(last));
            }
        }
        Ok(spans
            .into_iter()
            .map(|(k, (a, b))| (k, Grid::new(a, b, max_points)))
            .collect())
    }

    /// First and last stored step of a series within a range (clamped to it).
    async fn span(&self, series_id: i64, lo: i64, hi: i64) -> ApiResult<Option<(i64, i64)>> {
        let span = store::chunk_span(&self.state.store, series_id, lo, hi).await?;
        Ok(span.map(|(a, b)| (a.max(lo), b.min(hi))))
    }

    /// Every value of one key of a run, in step order (the sweep controller's input).
    pub(crate) async fn values_of(
        &self,
        run_pk: i64,
        run_id: &RunId,
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
        run_ids: &[RunId],
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
        let range = step_range(min_step, max_step, max_points)?;
        let loaded = self.load_runs(actor, run_ids, keys).await?;
        let grids = match max_points {
            Some(m) => self.shared_grids(&loaded, range, m).await?,
            None => HashMap::new(),
        };
        // Runs are read concurrently: decoding is CPU work that can use every core.
        use futures_util::StreamExt;
        let grids = &grids;
        let results: Vec<ApiResult<RunHistory>> = futures_util::stream::iter(loaded)
            .map(|(id, rows)| async move {
                self.read_run(&id, &rows, range, max_points, Some(grids))
                    .await
            })
            .buffered(4)
            .collect()
            .await;
        results.into_iter().collect()
    }

    /// Each run's access check and series, in the order asked. Every run costs a few round
    /// trips to the database, so several runs are loaded at once rather than one after another;
    /// the first run (in that order) that fails is the error.
    async fn load_runs(
        &self,
        actor: &Actor,
        run_ids: &[RunId],
        keys: &[String],
    ) -> ApiResult<Vec<(RunId, Vec<SeriesRow>)>> {
        use futures_util::{StreamExt, TryStreamExt};
        let runs = &Runs { state: self.state };
        futures_util::stream::iter(run_ids.iter().cloned())
            .map(|id| async move {
                let (run, _) = runs.load(actor, &id).await?;
                Ok((id, self.series_rows(run.pk, keys).await?))
            })
            .buffered(8)
            .try_collect()
            .await
    }

    /// Summaries of every metric of a run.
    pub async fn summary(&self, actor: &Actor, run_id: &RunId) -> ApiResult<Vec<MetricSummary>> {
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
        run_id: &RunId,
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
            ApiError::check_text("metric name", k)?;
        }
        store::set_summary(&self.state.store, run.pk, now, &values).await?;
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
        let blocks = decode_blocks(&encode_blocks(&pts), 0).unwrap();
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
        assert!(decode_blocks(&[1, 0], 0).is_err());
        assert!(decode_blocks(&[200, 0, 0, 0, 1], 0).is_err());
    }

    #[test]
    fn rejects_bad_keys() {
        assert!(group_by_key(vec![hp(0, &[("", 1.0)])], 0).is_err());
        let long = "k".repeat(MAX_KEY_LEN + 1);
        assert!(group_by_key(vec![hp(0, &[(long.as_str(), 1.0)])], 0).is_err());
        for bad in ["lo\u{0}ss", "loss\n", "\u{202E}ssol", "acc\u{2066}"] {
            assert!(
                group_by_key(vec![hp(0, &[(bad, 1.0)])], 0).is_err(),
                "{bad:?}"
            );
        }
    }
}
