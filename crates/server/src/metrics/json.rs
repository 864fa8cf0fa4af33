//! A direct JSON writer for history responses. A million-point read is three million
//! numbers; writing them straight into one buffer is several times faster than going through
//! a generic serializer, and the output is the same JSON.

use wanllmdb_api_types::metrics::{HistoryResponse, MetricValue, Series};

fn push_str(out: &mut Vec<u8>, s: &str) {
    // serde_json escapes exactly as JSON requires; strings here are short (ids and keys).
    serde_json::to_writer(&mut *out, s).expect("writing to a Vec cannot fail");
}

fn push_value(out: &mut Vec<u8>, v: MetricValue, buf: &mut ryu::Buffer) {
    let v = v.0;
    if v.is_finite() {
        out.extend_from_slice(buf.format_finite(v).as_bytes());
    } else if v.is_nan() {
        out.extend_from_slice(b"\"NaN\"");
    } else if v > 0.0 {
        out.extend_from_slice(b"\"Infinity\"");
    } else {
        out.extend_from_slice(b"\"-Infinity\"");
    }
}

/// Unix seconds that came from whole microseconds, written as `S.ffffff` without trailing
/// zeros: the same number a shortest-round-trip float printer gives, at integer speed.
fn push_seconds(out: &mut Vec<u8>, t: f64, ints: &mut itoa::Buffer, floats: &mut ryu::Buffer) {
    let us = (t * 1e6).round();
    if !(us.abs() < 9.0e15) || us / 1e6 != t {
        out.extend_from_slice(floats.format(t).as_bytes());
        return;
    }
    let us = us as i64;
    let (secs, frac) = (us.div_euclid(1_000_000), us.rem_euclid(1_000_000));
    if us < 0 && frac != 0 {
        // Rare (times before 1970): let the float printer handle the sign.
        out.extend_from_slice(floats.format(t).as_bytes());
        return;
    }
    out.extend_from_slice(ints.format(secs).as_bytes());
    out.push(b'.');
    if frac == 0 {
        out.push(b'0');
        return;
    }
    let digits = format_frac(frac);
    out.extend_from_slice(&digits);
}

fn format_frac(mut frac: i64) -> Vec<u8> {
    let mut d = [b'0'; 6];
    for slot in d.iter_mut().rev() {
        *slot = b'0' + (frac % 10) as u8;
        frac /= 10;
    }
    let end = d.iter().rposition(|&c| c != b'0').map_or(1, |i| i + 1);
    d[..end].to_vec()
}

fn push_series(out: &mut Vec<u8>, s: &Series, ints: &mut itoa::Buffer, floats: &mut ryu::Buffer) {
    out.extend_from_slice(b"{\"key\":");
    push_str(out, &s.key);
    out.extend_from_slice(b",\"steps\":[");
    for (i, st) in s.steps.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(ints.format(*st).as_bytes());
    }
    out.extend_from_slice(b"],\"values\":[");
    for (i, v) in s.values.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_value(out, *v, floats);
    }
    out.extend_from_slice(b"],\"timestamps\":[");
    for (i, t) in s.timestamps.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_seconds(out, *t, ints, floats);
    }
    out.extend_from_slice(b"],\"total_points\":");
    out.extend_from_slice(ints.format(s.total_points).as_bytes());
    out.extend_from_slice(if s.downsampled {
        b",\"downsampled\":true}"
    } else {
        b",\"downsampled\":false}"
    });
}

fn push_history(
    out: &mut Vec<u8>,
    h: &HistoryResponse,
    ints: &mut itoa::Buffer,
    floats: &mut ryu::Buffer,
) {
    out.extend_from_slice(b"{\"run\":");
    push_str(out, &h.run);
    out.extend_from_slice(b",\"series\":[");
    for (i, s) in h.series.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_series(out, s, ints, floats);
    }
    out.extend_from_slice(b"]}");
}

fn estimate(h: &HistoryResponse) -> usize {
    64 + h
        .series
        .iter()
        .map(|s| 96 + s.key.len() + s.steps.len() * 40)
        .sum::<usize>()
}

/// `{"run": …, "series": […]}`.
pub fn history(h: &HistoryResponse) -> Vec<u8> {
    let mut out = Vec::with_capacity(estimate(h));
    push_history(
        &mut out,
        h,
        &mut itoa::Buffer::new(),
        &mut ryu::Buffer::new(),
    );
    out
}

/// `{"results": [history, …]}`.
pub fn query(results: &[HistoryResponse]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + results.iter().map(estimate).sum::<usize>());
    let (mut ints, mut floats) = (itoa::Buffer::new(), ryu::Buffer::new());
    out.extend_from_slice(b"{\"results\":[");
    for (i, h) in results.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_history(&mut out, h, &mut ints, &mut floats);
    }
    out.extend_from_slice(b"]}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_json_as_serde() {
        let mut seed = 0x1234_5678_9abc_def0u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut s = Series {
            key: "loss/\"train\"\n".into(),
            steps: vec![],
            values: vec![],
            timestamps: vec![],
            total_points: 0,
            downsampled: true,
        };
        for i in 0..5000i64 {
            s.steps.push(i * 3 - 7);
            let v = match i % 7 {
                0 => f64::NAN,
                1 => f64::INFINITY,
                2 => f64::NEG_INFINITY,
                3 => (next() % 1000) as f64,
                _ => f64::from_bits(next() >> 2) * if i % 2 == 0 { 1.0 } else { -1.0 },
            };
            s.values.push(MetricValue(v));
            let us = 1_764_250_000_000_000i64 + (next() % 10_000_000_000) as i64
                - if i % 50 == 0 {
                    3_000_000_000_000_000
                } else {
                    0
                };
            s.timestamps.push(crate::store::us_to_seconds(us));
        }
        s.timestamps.push(-1.5);
        s.timestamps.push(0.0);
        s.steps.extend([1, 2]);
        s.values.extend([MetricValue(0.5), MetricValue(-0.0)]);
        s.total_points = s.steps.len() as u64;
        let h = HistoryResponse {
            run: "ab12cd34".into(),
            series: vec![s.clone(), s],
        };
        let ours: serde_json::Value = serde_json::from_slice(&history(&h)).unwrap();
        let theirs = serde_json::to_value(&h).unwrap();
        assert_eq!(ours, theirs);
        let q: serde_json::Value =
            serde_json::from_slice(&query(std::slice::from_ref(&h))).unwrap();
        assert_eq!(q["results"][0], theirs);
    }
}
