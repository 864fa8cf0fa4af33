//! Storage of metric history: owns the `metric_series` table (one row per run and key, with
//! the series' running summary and any value a client set) and the `metric_chunks` table (the
//! compressed chunks of points). It is the only place the metrics' SQL lives.

use std::collections::HashMap;

use sqlx::Row;
use wanllmdb_api_types::metrics::MetricValue;

use super::codec::{self, ChunkStats, Point};
use super::{
    BLOCK_POINTS, CHUNK_BYTES, CHUNK_POINTS, OPEN_CHUNK_BYTES, decode, encode_blocks, encode_lasts,
    in_key, merge_points,
};
use crate::error::ApiResult;
use crate::store::Store;
use crate::{on_backend, with_tx};

/// Which blob a chunk query brings along with the statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fetch {
    Stats,
    Data,
    Blocks,
}

/// One stored chunk's row.
#[derive(Debug, Clone)]
pub(super) struct ChunkRow {
    pub start_step: i64,
    pub end_step: i64,
    pub stats: ChunkStats,
    /// The chunk's last point (None for chunks written before it was stored).
    pub last: Option<Point>,
    pub data: Option<Vec<u8>>,
    /// The last point of each block (with [`Fetch::Blocks`]; None for older chunks).
    pub lasts: Option<Vec<u8>>,
}

/// One series of a run, with its summary.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(super) struct SeriesRow {
    pub id: i64,
    pub key: String,
    pub count: i64,
    pub last_step: Option<i64>,
    pub last_value: Option<f64>,
    pub last_nan: bool,
    pub min_value: Option<f64>,
    pub max_value: Option<f64>,
    pub set_value: Option<f64>,
    pub set_nan: bool,
    pub is_set: bool,
}

/// The logged part of a series' summary, kept current by every append.
#[derive(Debug, sqlx::FromRow)]
struct LoggedSummary {
    count: i64,
    last_step: Option<i64>,
    last_value: Option<f64>,
    last_nan: bool,
    min_value: Option<f64>,
    max_value: Option<f64>,
}

/// A series as the append's upsert returns it.
#[derive(Debug, sqlx::FromRow)]
struct OpenedSeries {
    id: i64,
    #[sqlx(flatten)]
    summary: LoggedSummary,
}

impl LoggedSummary {
    /// Whether a batch whose first step is `first` only adds points after the last one.
    fn continued_by(&self, first: i64) -> bool {
        self.last_step.is_none_or(|l| first > l)
    }

    /// Counts appended points into the count and the extremes.
    fn add(&mut self, points: &[Point]) {
        self.count += points.len() as i64;
        let (lo, hi) = finite_min_max(points);
        self.min_value = opt_min(self.min_value, lo);
        self.max_value = opt_max(self.max_value, hi);
    }

    /// Takes `newest` as the last point unless a later step is already stored.
    fn note_newest(&mut self, newest: Point) {
        if self.last_step.is_none_or(|l| newest.step >= l) {
            self.last_step = Some(newest.step);
            self.last_nan = newest.value.is_nan();
            self.last_value = (!self.last_nan).then_some(newest.value);
        }
    }
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

/// A chunk ready to be inserted: its points encoded, with the summary columns of its row.
#[derive(Debug)]
struct NewChunk {
    series_id: i64,
    stats: ChunkStats,
    data: Vec<u8>,
    blocks: Vec<u8>,
    last: Point,
    lasts: Vec<u8>,
}

impl NewChunk {
    /// Encodes the points of one chunk (non-empty, steps increasing).
    fn new(series_id: i64, points: &[Point]) -> NewChunk {
        NewChunk {
            series_id,
            stats: codec::chunk_stats(points),
            data: codec::encode_chunk(points),
            blocks: encode_blocks(points),
            last: points[points.len() - 1],
            lasts: encode_lasts(points),
        }
    }

    /// Bytes of its blobs, the bulk of its row.
    fn bytes(&self) -> usize {
        self.data.len() + self.blocks.len() + self.lasts.len()
    }

    /// The stored last value: NULL for NaN (SQLite cannot store NaN; the row's `last_ts` tells).
    fn last_value(&self) -> Option<f64> {
        (!self.last.value.is_nan()).then_some(self.last.value)
    }
}

/// Cuts points (steps increasing) into chunks of at most [`CHUNK_POINTS`] points whose blobs
/// stay within [`CHUNK_BYTES`], so that each row fills most of one database page. The size of
/// the previous chunk guides the next cut; a chunk that comes out too large is cut shorter.
fn split_into_chunks(series_id: i64, points: &[Point]) -> Vec<NewChunk> {
    let mut out = Vec::new();
    let mut rest = points;
    let mut guess = CHUNK_POINTS;
    while !rest.is_empty() {
        let most = rest.len().min(CHUNK_POINTS);
        let (mut n, mut tries) = (most.min(guess), 0);
        let chunk = loop {
            let c = NewChunk::new(series_id, &rest[..n]);
            tries += 1;
            let fits = c.bytes() <= CHUNK_BYTES || n <= BLOCK_POINTS;
            let short = c.bytes() < OPEN_CHUNK_BYTES && n < most;
            if fits && (!short || tries >= 4) {
                break c;
            }
            // A little under the proportional length, so the next try usually fits.
            let aim = n * CHUNK_BYTES / c.bytes().max(1) * 31 / 32;
            n = match fits {
                true => aim.clamp(n + 1, most),
                false => aim.clamp(BLOCK_POINTS, n - 1),
            };
        };
        guess = (n * CHUNK_BYTES / chunk.bytes().max(1)).clamp(BLOCK_POINTS, CHUNK_POINTS);
        rest = &rest[n..];
        out.push(chunk);
    }
    out
}

const INSERT_METRIC_CHUNK: &str = "INSERT INTO metric_chunks (series_id, start_step, end_step, count, min_step, min_value, min_ts, max_step, max_value, max_ts, data, blocks, last_value, last_ts, lasts)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)";

/// The columns of many chunks as arrays, for PostgreSQL's `UNNEST`: one statement inserts
/// every chunk of a request.
const INSERT_METRIC_CHUNKS_UNNEST: &str = "INSERT INTO metric_chunks (series_id, start_step, end_step, count, min_step, min_value, min_ts, max_step, max_value, max_ts, last_ts, last_value, data, blocks, lasts)
     SELECT * FROM UNNEST($1::BIGINT[], $2::BIGINT[], $3::BIGINT[], $4::BIGINT[], $5::BIGINT[], $6::DOUBLE PRECISION[], $7::BIGINT[], $8::BIGINT[], $9::DOUBLE PRECISION[], $10::BIGINT[], $11::BIGINT[], $12::DOUBLE PRECISION[], $13::BYTEA[], $14::BYTEA[], $15::BYTEA[])";

/// Inserts encoded chunks, the way each backend does it fastest.
trait ChunkWriter {
    fn insert_chunks(
        &mut self,
        chunks: Vec<NewChunk>,
    ) -> impl std::future::Future<Output = Result<(), sqlx::Error>> + Send;
}

impl ChunkWriter for sqlx::SqliteConnection {
    /// One prepared statement per chunk: in-process, so a row costs no round trip.
    async fn insert_chunks(&mut self, chunks: Vec<NewChunk>) -> Result<(), sqlx::Error> {
        for c in chunks {
            let (st, last_value) = (c.stats, c.last_value());
            sqlx::query(INSERT_METRIC_CHUNK)
                .bind(c.series_id)
                .bind(st.start_step)
                .bind(st.end_step)
                .bind(st.count)
                .bind(st.min.map(|p| p.step))
                .bind(st.min.map(|p| p.value))
                .bind(st.min.map(|p| p.timestamp_us))
                .bind(st.max.map(|p| p.step))
                .bind(st.max.map(|p| p.value))
                .bind(st.max.map(|p| p.timestamp_us))
                .bind(c.data)
                .bind(c.blocks)
                .bind(last_value)
                .bind(c.last.timestamp_us)
                .bind(c.lasts)
                .execute(&mut *self)
                .await?;
        }
        Ok(())
    }
}

impl ChunkWriter for sqlx::PgConnection {
    /// One statement for all chunks: a round trip per chunk was what bound PostgreSQL ingest.
    async fn insert_chunks(&mut self, chunks: Vec<NewChunk>) -> Result<(), sqlx::Error> {
        if chunks.is_empty() {
            return Ok(());
        }
        let col = |f: fn(&NewChunk) -> Option<i64>| chunks.iter().map(f).collect::<Vec<_>>();
        let val = |f: fn(&NewChunk) -> Option<f64>| chunks.iter().map(f).collect::<Vec<_>>();
        let query = sqlx::query(INSERT_METRIC_CHUNKS_UNNEST)
            .bind(col(|c| Some(c.series_id)))
            .bind(col(|c| Some(c.stats.start_step)))
            .bind(col(|c| Some(c.stats.end_step)))
            .bind(col(|c| Some(c.stats.count)))
            .bind(col(|c| c.stats.min.map(|p| p.step)))
            .bind(val(|c| c.stats.min.map(|p| p.value)))
            .bind(col(|c| c.stats.min.map(|p| p.timestamp_us)))
            .bind(col(|c| c.stats.max.map(|p| p.step)))
            .bind(val(|c| c.stats.max.map(|p| p.value)))
            .bind(col(|c| c.stats.max.map(|p| p.timestamp_us)))
            .bind(col(|c| Some(c.last.timestamp_us)))
            .bind(val(NewChunk::last_value));
        // The byte columns move out of the chunks, after the columns borrowed above.
        let (mut data, mut blocks, mut lasts) = (Vec::new(), Vec::new(), Vec::new());
        for c in chunks {
            data.push(c.data);
            blocks.push(c.blocks);
            lasts.push(c.lasts);
        }
        query
            .bind(data)
            .bind(blocks)
            .bind(lasts)
            .execute(&mut *self)
            .await?;
        Ok(())
    }
}

/// Moves the run's update time to `$now` with `$tx` inside `with_tx!`: every metric write
/// counts as an update of the run. `runs` belongs to the runs feature.
macro_rules! touch_run {
    ($tx:ident, $run_pk:expr, $now:expr) => {
        sqlx::query("UPDATE runs SET updated_at = $1 WHERE pk = $2")
            .bind($now)
            .bind($run_pk)
            .execute(&mut *$tx)
            .await?
    };
}

/// Writes a batch into the run's series in one transaction: per key (points sorted by step,
/// one per step), the series is opened, its chunks extended or the touched ones merged, and
/// its summary updated; then the run's update time. Appends that continue a series fill the
/// last chunk and add new ones; a batch that rewrites old steps merges every chunk its step
/// range touches.
pub(super) async fn append(
    store: &Store,
    run_pk: i64,
    now: i64,
    batch: &[(&str, &[Point])],
) -> ApiResult<()> {
    const INSERT_METRIC_SERIES: &str =
        "INSERT INTO metric_series (run_pk, key, updated_at) VALUES ($1, $2, $3)
                     ON CONFLICT (run_pk, key) DO UPDATE SET updated_at = excluded.updated_at
                     RETURNING id, count, last_step, last_value, last_nan, min_value, max_value";
    const SELECT_METRIC_CHUNKS: &str = "SELECT start_step, count, data, CAST(LENGTH(data) + LENGTH(blocks) + COALESCE(LENGTH(lasts), 0) AS BIGINT) AS bytes FROM metric_chunks WHERE series_id = $1 ORDER BY start_step DESC LIMIT 1";
    const DELETE_METRIC_CHUNKS: &str =
        "DELETE FROM metric_chunks WHERE series_id = $1 AND start_step = $2";
    const SELECT_CHUNKS_IN_RANGE: &str = "SELECT start_step, count, data FROM metric_chunks WHERE series_id = $1 AND end_step >= $2 AND start_step <= $3 ORDER BY start_step";
    const DELETE_CHUNKS_IN_RANGE: &str =
        "DELETE FROM metric_chunks WHERE series_id = $1 AND end_step >= $2 AND start_step <= $3";
    const SELECT_SERIES_EXTREMES: &str =
        "SELECT MIN(min_value) AS lo, MAX(max_value) AS hi FROM metric_chunks WHERE series_id = $1";
    const UPDATE_METRIC_SERIES: &str = "UPDATE metric_series SET count = $1, last_step = $2, last_value = $3, last_nan = $4, min_value = $5, max_value = $6 WHERE id = $7";
    with_tx!(store, |tx| {
        // Chunks are inserted together after every key's reads and deletes.
        let mut new_chunks: Vec<NewChunk> = Vec::new();
        for &(key, pts) in batch {
            let OpenedSeries {
                id: series_id,
                summary: mut sum,
            } = sqlx::query_as(INSERT_METRIC_SERIES)
                .bind(run_pk)
                .bind(key)
                .bind(now)
                .fetch_one(&mut *tx)
                .await?;
            let first = pts[0].step;
            let newest = pts[pts.len() - 1];
            let decode = |data: &[u8], start: i64| decode(data, start).map_err(|e| in_key(e, key));
            if sum.continued_by(first) {
                // Fill the open (last) chunk first, then start new ones.
                let tail = sqlx::query(SELECT_METRIC_CHUNKS)
                    .bind(series_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                let mut merged: Vec<Point> = Vec::new();
                if let Some(t) = tail {
                    let n: i64 = t.try_get("count")?;
                    let bytes: i64 = t.try_get("bytes")?;
                    if (n as usize) < CHUNK_POINTS && (bytes as usize) < OPEN_CHUNK_BYTES {
                        let start: i64 = t.try_get("start_step")?;
                        let data: Vec<u8> = t.try_get("data")?;
                        merged = decode(&data, start)?;
                        sqlx::query(DELETE_METRIC_CHUNKS)
                            .bind(series_id)
                            .bind(start)
                            .execute(&mut *tx)
                            .await?;
                    }
                }
                merged.extend_from_slice(pts);
                new_chunks.extend(split_into_chunks(series_id, &merged));
                sum.add(pts);
            } else {
                // Rewrites or late points: merge every chunk the batch's step range touches.
                let rows = sqlx::query(SELECT_CHUNKS_IN_RANGE)
                    .bind(series_id)
                    .bind(first)
                    .bind(newest.step)
                    .fetch_all(&mut *tx)
                    .await?;
                let mut old: Vec<Point> = Vec::new();
                for r in &rows {
                    let data: Vec<u8> = r.try_get("data")?;
                    old.extend(decode(&data, r.try_get("start_step")?)?);
                    sum.count -= r.try_get::<i64, _>("count")?;
                }
                sqlx::query(DELETE_CHUNKS_IN_RANGE)
                    .bind(series_id)
                    .bind(first)
                    .bind(newest.step)
                    .execute(&mut *tx)
                    .await?;
                let merged = merge_points(old, pts);
                sum.count += merged.len() as i64;
                // The extremes of the chunks left, with those of the merged points (whose
                // chunks are inserted below).
                let ext = sqlx::query(SELECT_SERIES_EXTREMES)
                    .bind(series_id)
                    .fetch_one(&mut *tx)
                    .await?;
                let (lo, hi) = finite_min_max(&merged);
                sum.min_value = opt_min(ext.try_get("lo")?, lo);
                sum.max_value = opt_max(ext.try_get("hi")?, hi);
                new_chunks.extend(split_into_chunks(series_id, &merged));
            }
            sum.note_newest(newest);
            sqlx::query(UPDATE_METRIC_SERIES)
                .bind(sum.count)
                .bind(sum.last_step)
                .bind(sum.last_value)
                .bind(sum.last_nan)
                .bind(sum.min_value)
                .bind(sum.max_value)
                .bind(series_id)
                .execute(&mut *tx)
                .await?;
        }
        (*tx).insert_chunks(new_chunks).await?;
        touch_run!(tx, run_pk, now);
    });
    Ok(())
}

/// Every series of a run (with or without history), by key.
pub(super) async fn series_of_run(store: &Store, run_pk: i64) -> ApiResult<Vec<SeriesRow>> {
    const SELECT_METRIC_SERIES: &str = "SELECT id, key, count, last_step, last_value, last_nan, min_value, max_value, set_value, set_nan, is_set FROM metric_series WHERE run_pk = $1 ORDER BY key";
    Ok(on_backend!(store, read, |pool| {
        sqlx::query_as(SELECT_METRIC_SERIES)
            .bind(run_pk)
            .fetch_all(pool)
            .await?
    }))
}

/// The chunks of a series that reach into the step range `lo..=hi`, by first step, with the
/// blob `fetch` names.
pub(super) async fn chunks(
    store: &Store,
    series_id: i64,
    lo: i64,
    hi: i64,
    fetch: Fetch,
) -> ApiResult<Vec<ChunkRow>> {
    let sql: &'static str = match fetch {
        Fetch::Data => {
            "SELECT start_step, end_step, count, min_step, min_value, min_ts, max_step, max_value, max_ts, last_value, last_ts, data FROM metric_chunks WHERE series_id = $1 AND end_step >= $2 AND start_step <= $3 ORDER BY start_step"
        }
        Fetch::Blocks => {
            "SELECT start_step, end_step, count, min_step, min_value, min_ts, max_step, max_value, max_ts, last_value, last_ts, blocks AS data, lasts FROM metric_chunks WHERE series_id = $1 AND end_step >= $2 AND start_step <= $3 ORDER BY start_step"
        }
        Fetch::Stats => {
            "SELECT start_step, end_step, count, min_step, min_value, min_ts, max_step, max_value, max_ts, last_value, last_ts FROM metric_chunks WHERE series_id = $1 AND end_step >= $2 AND start_step <= $3 ORDER BY start_step"
        }
    };
    let with_data = fetch != Fetch::Stats;
    let with_lasts = fetch == Fetch::Blocks;
    Ok(on_backend!(store, read, |pool| {
        let rows = sqlx::query(sql)
            .bind(series_id)
            .bind(lo)
            .bind(hi)
            .fetch_all(pool)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let point = |s: Option<i64>, v: Option<f64>, t: Option<i64>| match (s, v, t) {
                (Some(step), Some(value), Some(timestamp_us)) => Some(Point {
                    step,
                    value,
                    timestamp_us,
                }),
                _ => None,
            };
            let start_step: i64 = r.try_get("start_step")?;
            let end_step: i64 = r.try_get("end_step")?;
            let last_value: Option<f64> = r.try_get("last_value")?;
            let last_ts: Option<i64> = r.try_get("last_ts")?;
            out.push(ChunkRow {
                start_step,
                end_step,
                stats: ChunkStats {
                    count: r.try_get("count")?,
                    start_step,
                    end_step,
                    min: point(
                        r.try_get("min_step")?,
                        r.try_get("min_value")?,
                        r.try_get("min_ts")?,
                    ),
                    max: point(
                        r.try_get("max_step")?,
                        r.try_get("max_value")?,
                        r.try_get("max_ts")?,
                    ),
                },
                // A stored last time with no value is a NaN (SQLite cannot store NaN).
                last: last_ts.map(|timestamp_us| Point {
                    step: end_step,
                    value: last_value.unwrap_or(f64::NAN),
                    timestamp_us,
                }),
                data: if with_data {
                    Some(r.try_get("data")?)
                } else {
                    None
                },
                lasts: if with_lasts {
                    r.try_get("lasts")?
                } else {
                    None
                },
            });
        }
        out
    }))
}

/// Blobs of the chunks of a series starting at `starts`, in as few queries as possible.
pub(super) async fn chunk_blobs(
    store: &Store,
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
        let rows: Vec<(i64, Vec<u8>)> = on_backend!(store, read, |pool| {
            let mut q =
                sqlx::query_as::<_, (i64, Vec<u8>)>(sqlx::AssertSqlSafe(sql)).bind(series_id);
            for st in group {
                q = q.bind(*st);
            }
            q.fetch_all(pool).await?
        });
        out.extend(rows);
    }
    Ok(out)
}

/// The first step of the first and the last step of the last chunk of a series reaching into
/// `lo..=hi` (not clamped to it); None when no chunk does.
pub(super) async fn chunk_span(
    store: &Store,
    series_id: i64,
    lo: i64,
    hi: i64,
) -> ApiResult<Option<(i64, i64)>> {
    const SELECT_METRIC_CHUNKS: &str = "SELECT MIN(start_step), MAX(end_step) FROM metric_chunks WHERE series_id = $1 AND end_step >= $2 AND start_step <= $3";
    let (first, last): (Option<i64>, Option<i64>) = on_backend!(store, read, |pool| {
        sqlx::query_as(SELECT_METRIC_CHUNKS)
            .bind(series_id)
            .bind(lo)
            .bind(hi)
            .fetch_one(pool)
            .await?
    });
    Ok(first.zip(last))
}

/// Sets client-given summary values of a run's keys (creating series without history where
/// needed) and the run's update time, in one transaction.
pub(super) async fn set_summary(
    store: &Store,
    run_pk: i64,
    now: i64,
    values: &[(String, MetricValue)],
) -> ApiResult<()> {
    const INSERT_METRIC_SERIES: &str = "INSERT INTO metric_series (run_pk, key, updated_at, set_value, set_nan, is_set) VALUES ($1, $2, $3, $4, $5, $6)
                     ON CONFLICT (run_pk, key) DO UPDATE SET set_value = excluded.set_value, set_nan = excluded.set_nan, is_set = excluded.is_set, updated_at = excluded.updated_at";
    with_tx!(store, |tx| {
        for (k, MetricValue(v)) in values {
            let nan = v.is_nan();
            sqlx::query(INSERT_METRIC_SERIES)
                .bind(run_pk)
                .bind(k)
                .bind(now)
                .bind((!nan).then_some(*v))
                .bind(nan)
                .bind(true)
                .execute(&mut *tx)
                .await?;
        }
        touch_run!(tx, run_pk, now);
    });
    Ok(())
}

/// One stored chunk with the run and key it belongs to, as the integrity check and the
/// compaction read it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(super) struct StoredChunk {
    pub series_id: i64,
    pub start_step: i64,
    pub end_step: i64,
    pub count: i64,
    pub run_id: String,
    pub key: String,
    pub data: Vec<u8>,
    pub blocks: Vec<u8>,
    pub lasts: Option<Vec<u8>>,
}

/// Up to `limit` chunks after `(series_id, start_step)` `after`, in that order (a keyset page,
/// so a scan of every chunk costs the same per page however far it is).
pub(super) async fn chunk_page(
    store: &Store,
    after: (i64, i64),
    limit: i64,
) -> ApiResult<Vec<StoredChunk>> {
    const SELECT_CHUNK_PAGE: &str = "SELECT c.series_id, c.start_step, c.end_step, c.count, r.id AS run_id, s.key, c.data, c.blocks, c.lasts
         FROM metric_chunks c JOIN metric_series s ON s.id = c.series_id JOIN runs r ON r.pk = s.run_pk
         WHERE c.series_id > $1 OR (c.series_id = $1 AND c.start_step > $2)
         ORDER BY c.series_id, c.start_step LIMIT $3";
    Ok(on_backend!(store, read, |pool| {
        sqlx::query_as(SELECT_CHUNK_PAGE)
            .bind(after.0)
            .bind(after.1)
            .bind(limit)
            .fetch_all(pool)
            .await?
    }))
}

/// Replaces the blobs (and last point) of chunks with new encodings of the same points, in one
/// transaction. A chunk whose data changed since it was read (an append rewrote it) is left
/// alone. Returns how many were replaced.
pub(super) async fn replace_chunks(
    store: &Store,
    chunks: &[(StoredChunk, Vec<Point>)],
) -> ApiResult<u64> {
    const UPDATE_CHUNK_BLOBS: &str =
        "UPDATE metric_chunks SET data = $1, blocks = $2, lasts = $3, last_value = $4, last_ts = $5
         WHERE series_id = $6 AND start_step = $7 AND data = $8";
    let mut replaced = 0;
    with_tx!(store, |tx| {
        for (old, points) in chunks {
            let new = NewChunk::new(old.series_id, points);
            let last_value = new.last_value();
            replaced += sqlx::query(UPDATE_CHUNK_BLOBS)
                .bind(new.data)
                .bind(new.blocks)
                .bind(new.lasts)
                .bind(last_value)
                .bind(new.last.timestamp_us)
                .bind(old.series_id)
                .bind(old.start_step)
                .bind(&old.data)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
    });
    Ok(replaced)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Points with values from `value(step)`, 10 ms apart.
    fn points(n: i64, value: impl Fn(i64) -> f64) -> Vec<Point> {
        (0..n)
            .map(|s| Point {
                step: s,
                value: value(s),
                timestamp_us: 1_764_250_000_000_000 + s * 10_000,
            })
            .collect()
    }

    #[test]
    fn chunks_fill_a_page_and_keep_every_point() {
        let noisy = |s: i64| ((s * 7919) % 1009) as f64 / 7.0;
        let curve = |s: i64| f64::from((2.0 / (1.0 + s as f64 / 1000.0)) as f32);
        let cases: [(&str, Vec<Point>); 3] = [
            ("f64 noise", points(10_000, noisy)),
            ("f32 curve", points(20_000, curve)),
            ("constant", points(9_000, |_| 0.5)),
        ];
        for (name, pts) in cases {
            let chunks = split_into_chunks(7, &pts);
            let mut back = Vec::new();
            for (i, c) in chunks.iter().enumerate() {
                assert!(
                    c.bytes() <= CHUNK_BYTES,
                    "{name}: chunk {i} has {} bytes",
                    c.bytes()
                );
                let n = c.stats.count as usize;
                assert!(n <= CHUNK_POINTS, "{name}: chunk {i} has {n} points");
                // Every chunk but the last is full: by bytes, or by points.
                let full = c.bytes() >= OPEN_CHUNK_BYTES || n == CHUNK_POINTS;
                assert!(
                    full || i + 1 == chunks.len(),
                    "{name}: chunk {i}: {} bytes, {n} points",
                    c.bytes()
                );
                back.extend(decode(&c.data, c.stats.start_step).unwrap());
            }
            let bits = |p: &Point| (p.step, p.value.to_bits(), p.timestamp_us);
            assert!(back.iter().map(bits).eq(pts.iter().map(bits)), "{name}");
        }
    }
}
