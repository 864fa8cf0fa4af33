//! The binary columnar form of history reads (`Accept: application/vnd.wanllmdb.history+binary`
//! on `GET /runs/{id}/history` and `POST /history/query`): the same series as the JSON answer,
//! with steps, timestamps and values as little-endian arrays that a reader maps without parsing
//! (`numpy.frombuffer`, `Float64Array`). docs/api.md describes the layout for other languages;
//! this module writes its header and tables and reads a whole body back.
//!
//! ```text
//! header (24 bytes)   magic "WLDBHIST", u16 version, u16 series entry size, u32 runs,
//!                     u32 series, u32 reserved
//! runs × 16 bytes     u64 name offset, u32 name length, u32 number of its series
//! series × 48 bytes   u64 key offset, u32 key length, u32 run index, u64 points,
//!                     u64 total points, u64 data offset, u8 dtype × 5 (steps, timestamps,
//!                     values, min, max), u8 flags, u16 reserved
//! names               UTF-8 run ids and keys, zero-padded to a multiple of 8
//! data                per series, its present columns in that order, `points` × 8 bytes each,
//!                     starting at its data offset (a multiple of 8)
//! ```

use std::fmt;

use crate::metrics::{MetricValue, Series};

/// The media type of the binary form.
pub const MEDIA_TYPE: &str = "application/vnd.wanllmdb.history+binary";
/// The first eight bytes of a body.
pub const MAGIC: [u8; 8] = *b"WLDBHIST";
/// The layout version this module writes and reads.
pub const VERSION: u16 = 1;
/// Bytes of the fixed header.
pub const HEADER_BYTES: usize = 24;
/// Bytes of one entry of the run table.
pub const RUN_ENTRY_BYTES: usize = 16;
/// Bytes of one entry of the series table (version 1; the header carries the size, so a
/// reader steps over fields a later version appends).
pub const SERIES_ENTRY_BYTES: usize = 48;
/// Column slots, in the order their dtypes and their data appear.
pub const COLUMNS: [&str; 5] = ["steps", "timestamps", "values", "min", "max"];
/// Dtype code of a column a series does not carry.
pub const DTYPE_ABSENT: u8 = 0;
/// Dtype code of little-endian signed 64-bit integers.
pub const DTYPE_I64: u8 = 1;
/// Dtype code of little-endian IEEE-754 doubles.
pub const DTYPE_F64: u8 = 2;
/// Flag bit: the series was downsampled (`values` are the buckets' last values; `min` and
/// `max` are present).
pub const FLAG_DOWNSAMPLED: u8 = 1;

/// What the header and tables say about one series.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesHead<'a> {
    /// Index of its run in the run table.
    pub run: u32,
    /// Metric name.
    pub key: &'a str,
    /// Length of each of its columns.
    pub points: u64,
    /// Points stored in the requested range.
    pub total_points: u64,
    /// Whether it was downsampled.
    pub downsampled: bool,
    /// Dtype code of each column slot ([`COLUMNS`]).
    pub dtypes: [u8; 5],
}

impl SeriesHead<'_> {
    /// Bytes of its columns together.
    pub fn data_bytes(&self) -> u64 {
        let present = self.dtypes.iter().filter(|d| **d != DTYPE_ABSENT).count() as u64;
        present * self.points * 8
    }
}

fn pad8(n: usize) -> usize {
    n.div_ceil(8) * 8
}

/// Header, run table, series table and names of a body whose runs are `(id, number of
/// series)`, with each series' data offset: the caller appends each series' present columns,
/// in slot order, right after these bytes and in series order.
pub fn write_head(runs: &[(&str, u32)], series: &[SeriesHead<'_>]) -> (Vec<u8>, Vec<u64>) {
    let tables = HEADER_BYTES + runs.len() * RUN_ENTRY_BYTES + series.len() * SERIES_ENTRY_BYTES;
    let names: usize = runs.iter().map(|r| r.0.len()).sum::<usize>()
        + series.iter().map(|s| s.key.len()).sum::<usize>();
    let head_len = pad8(tables + names);
    let mut out = Vec::with_capacity(head_len);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(SERIES_ENTRY_BYTES as u16).to_le_bytes());
    out.extend_from_slice(&(runs.len() as u32).to_le_bytes());
    out.extend_from_slice(&(series.len() as u32).to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    let mut name_at = tables as u64;
    for (id, count) in runs {
        out.extend_from_slice(&name_at.to_le_bytes());
        out.extend_from_slice(&(id.len() as u32).to_le_bytes());
        out.extend_from_slice(&count.to_le_bytes());
        name_at += id.len() as u64;
    }
    let mut data_at = head_len as u64;
    let mut offsets = Vec::with_capacity(series.len());
    for s in series {
        out.extend_from_slice(&name_at.to_le_bytes());
        out.extend_from_slice(&(s.key.len() as u32).to_le_bytes());
        out.extend_from_slice(&s.run.to_le_bytes());
        out.extend_from_slice(&s.points.to_le_bytes());
        out.extend_from_slice(&s.total_points.to_le_bytes());
        out.extend_from_slice(&data_at.to_le_bytes());
        out.extend_from_slice(&s.dtypes);
        out.push(if s.downsampled { FLAG_DOWNSAMPLED } else { 0 });
        out.extend_from_slice(&0u16.to_le_bytes());
        name_at += s.key.len() as u64;
        offsets.push(data_at);
        data_at += s.data_bytes();
    }
    for (id, _) in runs {
        out.extend_from_slice(id.as_bytes());
    }
    for s in series {
        out.extend_from_slice(s.key.as_bytes());
    }
    out.resize(head_len, 0);
    (out, offsets)
}

/// A body that does not follow the layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatError(pub String);

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not a history body: {}", self.0)
    }
}

impl std::error::Error for FormatError {}

/// One series read back, its columns as native arrays.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SeriesColumns {
    /// Metric name.
    pub key: String,
    /// Points stored in the requested range.
    pub total_points: u64,
    /// Whether it was downsampled.
    pub downsampled: bool,
    /// Steps (or the buckets' grid steps).
    pub steps: Vec<i64>,
    /// Unix seconds; absent when the series carries no timestamps.
    pub timestamps: Option<Vec<f64>>,
    /// Values (a downsampled series: each bucket's last value).
    pub values: Vec<f64>,
    /// Each bucket's smallest value (downsampled series).
    pub min: Option<Vec<f64>>,
    /// Each bucket's largest value (downsampled series).
    pub max: Option<Vec<f64>>,
}

impl SeriesColumns {
    /// The same series in the JSON answer's form.
    pub fn to_series(&self) -> Series {
        let wire = |v: &[f64]| v.iter().copied().map(MetricValue).collect::<Vec<_>>();
        Series {
            key: self.key.clone(),
            steps: self.steps.clone(),
            values: wire(&self.values),
            timestamps: self.timestamps.clone().unwrap_or_default(),
            total_points: self.total_points,
            downsampled: self.downsampled,
            min: self.min.as_deref().map(wire),
            max: self.max.as_deref().map(wire),
            last: self.downsampled.then(|| wire(&self.values)),
        }
    }
}

/// One run read back.
#[derive(Debug, Clone, PartialEq)]
pub struct RunColumns {
    /// Run id.
    pub run: crate::RunId,
    /// Its series, in the answer's order.
    pub series: Vec<SeriesColumns>,
}

struct Reader<'a> {
    body: &'a [u8],
}

impl<'a> Reader<'a> {
    fn bytes(&self, at: u64, len: u64, what: &str) -> Result<&'a [u8], FormatError> {
        let end = at.checked_add(len);
        end.and_then(|end| {
            self.body
                .get(usize::try_from(at).ok()?..usize::try_from(end).ok()?)
        })
        .ok_or_else(|| FormatError(format!("{what} reaches past the end of the body")))
    }

    fn u16(&self, at: usize) -> Result<u16, FormatError> {
        let b = self.bytes(at as u64, 2, "the header")?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&self, at: usize) -> Result<u32, FormatError> {
        let b = self.bytes(at as u64, 4, "a table")?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&self, at: usize) -> Result<u64, FormatError> {
        let b = self.bytes(at as u64, 8, "a table")?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    fn name(&self, at: usize, what: &str) -> Result<String, FormatError> {
        let (off, len) = (self.u64(at)?, self.u32(at + 8)?);
        let b = self.bytes(off, u64::from(len), what)?;
        String::from_utf8(b.to_vec()).map_err(|_| FormatError(format!("{what} is not UTF-8")))
    }

    fn words(&self, at: u64, n: u64, what: &str) -> Result<&'a [u8], FormatError> {
        if !at.is_multiple_of(8) {
            return Err(FormatError(format!("{what} is not 8-byte aligned")));
        }
        let len = n
            .checked_mul(8)
            .ok_or_else(|| FormatError(format!("{what} is too long")))?;
        self.bytes(at, len, what)
    }
}

fn words<T>(b: &[u8], f: fn([u8; 8]) -> T) -> Vec<T> {
    b.chunks_exact(8)
        .map(|c| {
            let mut a = [0u8; 8];
            a.copy_from_slice(c);
            f(a)
        })
        .collect()
}

fn series_at(r: &Reader<'_>, at: usize, runs: u32) -> Result<(u32, SeriesColumns), FormatError> {
    let key = r.name(at, "a key")?;
    let run = r.u32(at + 12)?;
    if run >= runs {
        return Err(FormatError(format!("series {key:?} names run {run}")));
    }
    let points = r.u64(at + 16)?;
    let dtypes = r.bytes(at as u64 + 40, 6, "a series entry")?;
    let mut out = SeriesColumns {
        key,
        total_points: r.u64(at + 24)?,
        downsampled: dtypes[5] & FLAG_DOWNSAMPLED != 0,
        ..SeriesColumns::default()
    };
    let mut data_at = r.u64(at + 32)?;
    for (slot, name) in COLUMNS.iter().enumerate() {
        let want = if slot == 0 { DTYPE_I64 } else { DTYPE_F64 };
        match dtypes[slot] {
            DTYPE_ABSENT if *name == "steps" || *name == "values" => {
                return Err(FormatError(format!("series {:?} has no {name}", out.key)));
            }
            DTYPE_ABSENT => continue,
            d if d != want => {
                return Err(FormatError(format!(
                    "series {:?}: {name} has dtype {d}",
                    out.key
                )));
            }
            _ => {}
        }
        let b = r.words(data_at, points, name)?;
        data_at += points * 8;
        match slot {
            0 => out.steps = words(b, i64::from_le_bytes),
            1 => out.timestamps = Some(words(b, f64::from_le_bytes)),
            2 => out.values = words(b, f64::from_le_bytes),
            3 => out.min = Some(words(b, f64::from_le_bytes)),
            _ => out.max = Some(words(b, f64::from_le_bytes)),
        }
    }
    Ok((run, out))
}

/// Reads a whole body: its runs in order, each with its series.
pub fn decode(body: &[u8]) -> Result<Vec<RunColumns>, FormatError> {
    let r = Reader { body };
    if body.get(..8) != Some(&MAGIC[..]) {
        return Err(FormatError("it does not start with WLDBHIST".into()));
    }
    let version = r.u16(8)?;
    if version != VERSION {
        return Err(FormatError(format!("version {version} is not {VERSION}")));
    }
    let entry = usize::from(r.u16(10)?);
    if entry < SERIES_ENTRY_BYTES {
        return Err(FormatError(format!("series entries of {entry} bytes")));
    }
    let (runs, series) = (r.u32(12)?, r.u32(16)?);
    let mut out = Vec::new();
    for i in 0..runs as usize {
        let at = HEADER_BYTES + i * RUN_ENTRY_BYTES;
        out.push(RunColumns {
            run: crate::RunId::parse(&r.name(at, "a run id")?)
                .map_err(|e| FormatError(format!("a run entry holds an {e}")))?,
            series: Vec::new(),
        });
    }
    let table = HEADER_BYTES + runs as usize * RUN_ENTRY_BYTES;
    for i in 0..series as usize {
        let (run, s) = series_at(&r, table + i * entry, runs)?;
        out[run as usize].series.push(s);
    }
    for (i, run) in out.iter().enumerate() {
        let said = r.u32(HEADER_BYTES + i * RUN_ENTRY_BYTES + 12)?;
        if said as usize != run.series.len() {
            return Err(FormatError(format!(
                "run {:?} says {said} series and has {}",
                run.run,
                run.series.len()
            )));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(runs: &[(&str, u32)], series: &[SeriesHead<'_>], cols: &[Vec<u8>]) -> Vec<u8> {
        let (mut out, offsets) = write_head(runs, series);
        for (c, at) in cols.iter().zip(&offsets) {
            assert_eq!(
                *at as usize,
                out.len(),
                "columns start at their data offset"
            );
            assert_eq!(at % 8, 0);
            out.extend_from_slice(c);
        }
        out
    }

    fn le<T: Copy>(v: &[T], f: fn(T) -> [u8; 8]) -> Vec<u8> {
        v.iter().flat_map(|x| f(*x)).collect()
    }

    #[test]
    fn round_trip_and_refusals() {
        let dtypes = [DTYPE_I64, DTYPE_F64, DTYPE_F64, DTYPE_ABSENT, DTYPE_ABSENT];
        let heads = [SeriesHead {
            run: 0,
            key: "loss/ü",
            points: 3,
            total_points: 3,
            downsampled: false,
            dtypes,
        }];
        let mut cols = le(&[1i64, 2, -3], i64::to_le_bytes);
        cols.extend(le(&[1.5f64, 2.5, 3.5], f64::to_le_bytes));
        cols.extend(le(&[f64::NAN, f64::INFINITY, -0.0], f64::to_le_bytes));
        let b = body(&[("ab12cd34", 1), ("empty000", 0)], &heads, &[cols]);
        let runs = decode(&b).unwrap();
        assert_eq!(runs.len(), 2);
        assert_eq!(runs[1].run, "empty000");
        let s = &runs[0].series[0];
        assert_eq!(s.key, "loss/ü");
        assert_eq!(s.steps, vec![1, 2, -3]);
        assert_eq!(s.timestamps.as_deref(), Some(&[1.5, 2.5, 3.5][..]));
        assert!(s.values[0].is_nan() && s.values[1] == f64::INFINITY);
        assert!(s.values[2] == 0.0 && s.values[2].is_sign_negative());
        assert_eq!((s.min.is_none(), s.downsampled), (true, false));

        assert!(decode(&b[..b.len() - 1]).is_err(), "truncated data");
        assert!(decode(&b[..20]).is_err(), "truncated header");
        let mut bad = b.clone();
        bad[0] = b'X';
        assert!(decode(&bad).is_err());
        let mut bad = b.clone();
        bad[8] = 2;
        assert!(decode(&bad).to_string_err().contains("version 2"));
        let mut bad = b.clone();
        bad[HEADER_BYTES + 2 * RUN_ENTRY_BYTES + 40] = DTYPE_F64;
        assert!(decode(&bad).to_string_err().contains("dtype"));
    }

    trait ErrText {
        fn to_string_err(&self) -> String;
    }

    impl<T> ErrText for Result<T, FormatError> {
        fn to_string_err(&self) -> String {
            self.as_ref()
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        }
    }
}
