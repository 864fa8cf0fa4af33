//! The binary columnar form of history reads (layout in
//! [`wanllmdb_api_types::history_binary`]): header and tables in one piece, then each column
//! as its own piece of little-endian words, so a million-point read is three copies of eight
//! megabytes and no formatting at all.

use axum::body::Bytes;
use wanllmdb_api_types::history_binary::{
    DTYPE_ABSENT, DTYPE_F64, DTYPE_I64, SeriesHead, write_head,
};

use super::{RunHistory, SeriesData};

/// Columns below this many bytes are copied into the piece before them.
const OWN_PIECE_BYTES: usize = 64 * 1024;

fn head_of(run: u32, s: &SeriesData) -> SeriesHead<'_> {
    let bands = if s.downsampled {
        DTYPE_F64
    } else {
        DTYPE_ABSENT
    };
    SeriesHead {
        run,
        key: &s.key,
        points: s.steps.len() as u64,
        total_points: s.total_points,
        downsampled: s.downsampled,
        dtypes: [DTYPE_I64, DTYPE_F64, DTYPE_F64, bands, bands],
    }
}

struct Pieces {
    parts: Vec<Bytes>,
    cur: Vec<u8>,
}

impl Pieces {
    fn column<T: Copy>(&mut self, v: &[T], word: impl Fn(T) -> [u8; 8]) {
        let bytes = v.len() * 8;
        if bytes < OWN_PIECE_BYTES {
            self.cur.reserve(bytes);
            v.iter().for_each(|x| self.cur.extend_from_slice(&word(*x)));
            return;
        }
        let mut out = vec![0u8; bytes];
        for (slot, x) in out.chunks_exact_mut(8).zip(v) {
            slot.copy_from_slice(&word(*x));
        }
        if !self.cur.is_empty() {
            self.parts.push(Bytes::from(std::mem::take(&mut self.cur)));
        }
        self.parts.push(Bytes::from(out));
    }
}

fn seconds(us: i64) -> [u8; 8] {
    crate::store::us_to_seconds(us).to_le_bytes()
}

/// The body of `runs`, in order.
pub fn runs(runs: &[RunHistory]) -> Vec<Bytes> {
    let table: Vec<(&str, u32)> = runs
        .iter()
        .map(|h| (h.run.as_str(), h.series.len() as u32))
        .collect();
    let heads: Vec<SeriesHead<'_>> = runs
        .iter()
        .enumerate()
        .flat_map(|(i, h)| h.series.iter().map(move |s| head_of(i as u32, s)))
        .collect();
    let (head, _) = write_head(&table, &heads);
    let mut out = Pieces {
        parts: Vec::new(),
        cur: head,
    };
    for s in runs.iter().flat_map(|h| &h.series) {
        out.column(&s.steps, i64::to_le_bytes);
        out.column(&s.timestamps_us, seconds);
        out.column(&s.values, f64::to_le_bytes);
        if s.downsampled {
            out.column(&s.min, f64::to_le_bytes);
            out.column(&s.max, f64::to_le_bytes);
        }
    }
    if !out.cur.is_empty() {
        out.parts.push(Bytes::from(out.cur));
    }
    out.parts
}

#[cfg(test)]
mod tests {
    use wanllmdb_api_types::RunId;
    use wanllmdb_api_types::history_binary::decode;

    use super::*;

    #[test]
    fn decodes_to_the_json_answer() {
        let mut big = SeriesData {
            key: "loss".into(),
            ..Default::default()
        };
        for i in 0..20_000i64 {
            big.steps.push(i * 2);
            big.values
                .push(if i % 9 == 0 { f64::NAN } else { i as f64 / 7.0 });
            big.timestamps_us.push(1_764_250_000_000_000 + i * 10_001);
        }
        big.total_points = 20_000;
        let banded = SeriesData {
            key: "acc/ü".into(),
            steps: vec![0, 10],
            values: vec![0.5, f64::NEG_INFINITY],
            timestamps_us: vec![-1_500_000, 0],
            total_points: 30,
            downsampled: true,
            min: vec![0.1, f64::NEG_INFINITY],
            max: vec![0.9, f64::INFINITY],
        };
        let hs = vec![
            RunHistory {
                run: RunId::parse("ab12cd34").unwrap(),
                series: vec![banded.clone(), big, SeriesData::default()],
            },
            RunHistory {
                run: RunId::parse("empty000").unwrap(),
                series: vec![],
            },
            RunHistory {
                run: RunId::parse("third000").unwrap(),
                series: vec![banded],
            },
        ];
        let pieces = runs(&hs);
        assert!(pieces.len() > 1, "large columns travel as their own pieces");
        let body: Vec<u8> = pieces.iter().flat_map(|b| b.iter().copied()).collect();
        let back = decode(&body).unwrap();
        assert_eq!(back.len(), 3);
        for (h, b) in hs.iter().zip(&back) {
            assert_eq!(h.run, b.run);
            let want = serde_json::to_value(h.to_api().series).unwrap();
            let got: Vec<_> = b.series.iter().map(|s| s.to_series()).collect();
            assert_eq!(serde_json::to_value(got).unwrap(), want);
        }
    }
}
