//! A direct JSON writer for history responses. A million-point read is three million
//! numbers; writing them straight into buffers is several times faster than going through a
//! generic serializer, and the output is the same JSON as the wire's `HistoryResponse`.
//! Large series are formatted on two threads, and the pieces are sent as they are, without
//! being copied into one buffer.

use axum::body::Bytes;

use super::{RunHistory, SeriesData};

/// Above this many points a series' arrays are formatted on two threads.
const PARALLEL_POINTS: usize = 100_000;

/// Pieces of a response body, in order.
pub struct Pieces {
    parts: Vec<Bytes>,
    cur: Vec<u8>,
}

impl Pieces {
    fn new() -> Pieces {
        Pieces {
            parts: Vec::new(),
            cur: Vec::with_capacity(4096),
        }
    }

    fn push(&mut self, b: &[u8]) {
        self.cur.extend_from_slice(b);
    }

    fn push_str(&mut self, s: &str) {
        // serde_json escapes exactly as JSON requires; strings here are short (ids and keys).
        serde_json::to_writer(&mut self.cur, s).expect("writing to a Vec cannot fail");
    }

    fn push_owned(&mut self, b: Vec<u8>) {
        if b.len() < 64 * 1024 {
            self.cur.extend_from_slice(&b);
            return;
        }
        if !self.cur.is_empty() {
            self.parts.push(Bytes::from(std::mem::take(&mut self.cur)));
        }
        self.parts.push(Bytes::from(b));
    }

    /// The finished pieces.
    pub fn finish(mut self) -> Vec<Bytes> {
        if !self.cur.is_empty() {
            self.parts.push(Bytes::from(self.cur));
        }
        self.parts
    }
}

fn ints_array(v: &[i64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len() * 8 + 2);
    let mut b = itoa::Buffer::new();
    out.push(b'[');
    for (i, x) in v.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b.format(*x).as_bytes());
    }
    out.push(b']');
    out
}

fn values_array(v: &[f64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len() * 20 + 2);
    let mut b = zmij::Buffer::new();
    out.push(b'[');
    for (i, x) in v.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        if x.is_finite() {
            out.extend_from_slice(b.format_finite(*x).as_bytes());
        } else if x.is_nan() {
            out.extend_from_slice(b"\"NaN\"");
        } else if *x > 0.0 {
            out.extend_from_slice(b"\"Infinity\"");
        } else {
            out.extend_from_slice(b"\"-Infinity\"");
        }
    }
    out.push(b']');
    out
}

/// Microseconds as Unix seconds `S.ffffff` without trailing zeros: the decimal that a
/// shortest-round-trip float printer gives for `us / 1e6`, at integer speed.
fn seconds_array(v: &[i64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len() * 16 + 2);
    let (mut ints, mut floats) = (itoa::Buffer::new(), zmij::Buffer::new());
    out.push(b'[');
    for (i, us) in v.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let (secs, frac) = (us.div_euclid(1_000_000), us.rem_euclid(1_000_000));
        if *us < 0 && frac != 0 || us.unsigned_abs() >= 1 << 53 {
            // Before 1970 or beyond exact doubles: let the float printer handle it.
            out.extend_from_slice(floats.format(crate::store::us_to_seconds(*us)).as_bytes());
            continue;
        }
        out.extend_from_slice(ints.format(secs).as_bytes());
        out.push(b'.');
        if frac == 0 {
            out.push(b'0');
            continue;
        }
        let mut d = [b'0'; 6];
        let mut f = frac;
        for slot in d.iter_mut().rev() {
            *slot = b'0' + (f % 10) as u8;
            f /= 10;
        }
        let end = d.iter().rposition(|&c| c != b'0').map_or(1, |i| i + 1);
        out.extend_from_slice(&d[..end]);
    }
    out.push(b']');
    out
}

fn push_series(out: &mut Pieces, s: &SeriesData) {
    let (steps, values, timestamps) = if s.steps.len() >= PARALLEL_POINTS {
        std::thread::scope(|scope| {
            let values = scope.spawn(|| values_array(&s.values));
            let steps = ints_array(&s.steps);
            let timestamps = seconds_array(&s.timestamps_us);
            let values = values.join().unwrap_or_else(|_| values_array(&s.values));
            (steps, values, timestamps)
        })
    } else {
        (
            ints_array(&s.steps),
            values_array(&s.values),
            seconds_array(&s.timestamps_us),
        )
    };
    out.push(b"{\"key\":");
    out.push_str(&s.key);
    out.push(b",\"steps\":");
    out.push_owned(steps);
    out.push(b",\"values\":");
    out.push_owned(values);
    out.push(b",\"timestamps\":");
    out.push_owned(timestamps);
    out.push(b",\"total_points\":");
    out.push(itoa::Buffer::new().format(s.total_points).as_bytes());
    if !s.downsampled {
        out.push(b",\"downsampled\":false}");
        return;
    }
    out.push(b",\"downsampled\":true");
    for (name, column) in [
        (&b",\"min\":"[..], &s.min),
        (b",\"max\":", &s.max),
        (b",\"last\":", &s.values),
    ] {
        out.push(name);
        out.push_owned(values_array(column));
    }
    out.push(b"}");
}

fn push_history(out: &mut Pieces, h: &RunHistory) {
    out.push(b"{\"run\":");
    out.push_str(h.run.as_str());
    out.push(b",\"series\":[");
    for (i, s) in h.series.iter().enumerate() {
        if i > 0 {
            out.push(b",");
        }
        push_series(out, s);
    }
    out.push(b"]}");
}

/// `{"run": …, "series": […]}`.
pub fn history(h: &RunHistory) -> Vec<Bytes> {
    let mut out = Pieces::new();
    push_history(&mut out, h);
    out.finish()
}

/// `{"results": [history, …]}`.
pub fn query(results: &[RunHistory]) -> Vec<Bytes> {
    let mut out = Pieces::new();
    out.push(b"{\"results\":[");
    for (i, h) in results.iter().enumerate() {
        if i > 0 {
            out.push(b",");
        }
        push_history(&mut out, h);
    }
    out.push(b"]}");
    out.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn concat(p: Vec<Bytes>) -> Vec<u8> {
        p.iter().flat_map(|b| b.iter().copied()).collect()
    }

    #[test]
    fn same_json_as_the_wire_types() {
        let mut seed = 0x1234_5678_9abc_def0u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for n in [0usize, 5, 5000, PARALLEL_POINTS + 7] {
            let mut s = SeriesData {
                key: "loss/\"train\"\n".into(),
                downsampled: n % 2 == 0,
                ..Default::default()
            };
            for i in 0..n as i64 {
                s.steps.push(i * 3 - 7);
                s.values.push(match i % 7 {
                    0 => f64::NAN,
                    1 => f64::INFINITY,
                    2 => f64::NEG_INFINITY,
                    3 => (next() % 1000) as f64,
                    4 => -0.0,
                    _ => f64::from_bits(next() >> 2) * if i % 2 == 0 { 1.0 } else { -1.0 },
                });
                let base = 1_764_250_000_000_000i64 + (next() % 10_000_000_000) as i64;
                s.timestamps_us.push(match i % 50 {
                    0 => -base / 3,
                    1 => 0,
                    2 => -1_500_000,
                    _ => base,
                });
            }
            s.total_points = n as u64;
            if s.downsampled {
                s.min = s.values.iter().map(|v| v - 1.0).collect();
                s.max = s.values.iter().map(|v| v + 1.0).collect();
            }
            let h = RunHistory {
                run: wanllmdb_api_types::RunId::parse("ab12cd34").unwrap(),
                series: vec![s.clone(), s],
            };
            let ours: serde_json::Value = serde_json::from_slice(&concat(history(&h))).unwrap();
            let theirs = serde_json::to_value(h.to_api()).unwrap();
            assert_eq!(ours, theirs, "n = {n}");
            let q: serde_json::Value =
                serde_json::from_slice(&concat(query(std::slice::from_ref(&h)))).unwrap();
            assert_eq!(q["results"][0], theirs);
        }
    }
}
