//! TensorBoard event files: TFRecord framing and the few protocol buffer messages that carry
//! scalars, read by hand (a protobuf library for four messages would be most of the code).

/// One scalar point of a tag.
#[derive(Debug, Clone, PartialEq)]
pub struct Scalar {
    /// The tag (becomes the metric key).
    pub tag: String,
    /// Step.
    pub step: i64,
    /// Unix seconds.
    pub wall_time: f64,
    /// Value.
    pub value: f64,
}

/// What an event file holds: its scalars, and how many summaries of other kinds it skipped.
#[derive(Debug, Default)]
pub struct Events {
    /// Scalar points in file order.
    pub scalars: Vec<Scalar>,
    /// Other summaries by kind (`histograms`, `images`, `graph`, …) and count.
    pub skipped: std::collections::BTreeMap<String, u64>,
}

/// TFRecord's masked CRC32C.
fn masked_crc(data: &[u8]) -> u32 {
    let c = crc32c::crc32c(data);
    (c.rotate_right(15)).wrapping_add(0xa282_ead8)
}

/// The records of a TFRecord file, each checked against its checksums. A file cut off in its
/// last record (a writer still running, or killed) yields the records before it and says so.
pub fn records(bytes: &[u8]) -> (Vec<&[u8]>, Option<String>) {
    let mut out = Vec::new();
    let mut at = 0usize;
    while at < bytes.len() {
        let Some(head) = bytes.get(at..at + 12) else {
            return (
                out,
                Some(format!("the file ends inside a record header at byte {at}")),
            );
        };
        let len_bytes = &head[..8];
        let len = u64::from_le_bytes(len_bytes.try_into().unwrap_or([0; 8]));
        let len_crc = u32::from_le_bytes(head[8..12].try_into().unwrap_or([0; 4]));
        if masked_crc(len_bytes) != len_crc {
            return (
                out,
                Some(format!("the record length at byte {at} fails its checksum")),
            );
        }
        let Ok(len) = usize::try_from(len) else {
            return (out, Some(format!("the record at byte {at} is too long")));
        };
        let start = at + 12;
        let Some(data) = start.checked_add(len).and_then(|end| bytes.get(start..end)) else {
            return (
                out,
                Some(format!("the file ends inside the record at byte {at}")),
            );
        };
        let Some(crc) = bytes.get(start + len..start + len + 4) else {
            return (
                out,
                Some(format!("the file ends inside the record at byte {at}")),
            );
        };
        if masked_crc(data) != u32::from_le_bytes(crc.try_into().unwrap_or([0; 4])) {
            return (
                out,
                Some(format!("the record at byte {at} fails its checksum")),
            );
        }
        out.push(data);
        at = start + len + 4;
    }
    (out, None)
}

/// One field of a protocol buffer message.
enum Field<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
    Fixed32(u32),
}

fn varint(b: &[u8], at: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*at)?;
        *at += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// The fields of a message, in order; `None` when it does not parse.
fn fields(b: &[u8]) -> Option<Vec<(u64, Field<'_>)>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < b.len() {
        let key = varint(b, &mut at)?;
        let (num, wire) = (key >> 3, key & 7);
        let f = match wire {
            0 => Field::Varint(varint(b, &mut at)?),
            1 => {
                let v = u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?);
                at += 8;
                Field::Fixed64(v)
            }
            2 => {
                let len = usize::try_from(varint(b, &mut at)?).ok()?;
                let v = b.get(at..at.checked_add(len)?)?;
                at += len;
                Field::Bytes(v)
            }
            5 => {
                let v = u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?);
                at += 4;
                Field::Fixed32(v)
            }
            _ => return None,
        };
        out.push((num, f));
    }
    Some(out)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The plugin a summary value's metadata names.
fn plugin_of(meta: &[u8]) -> Option<String> {
    for (n, f) in fields(meta)? {
        if let (1, Field::Bytes(pd)) = (n, f) {
            for (m, g) in fields(pd)? {
                if let (1, Field::Bytes(name)) = (m, g) {
                    return Some(text(name));
                }
            }
        }
    }
    None
}

/// The single number a scalar tensor holds.
fn tensor_scalar(t: &[u8]) -> Option<f64> {
    let mut dtype = 0u64;
    let mut content: Option<&[u8]> = None;
    let mut value = None;
    for (n, f) in fields(t)? {
        match (n, f) {
            (1, Field::Varint(d)) => dtype = d,
            (4, Field::Bytes(c)) => content = Some(c),
            // float_val, packed or not.
            (5, Field::Bytes(p)) if p.len() >= 4 => {
                value = Some(f64::from(f32::from_le_bytes(p[..4].try_into().ok()?)));
            }
            (5, Field::Fixed32(v)) => value = Some(f64::from(f32::from_bits(v))),
            // double_val.
            (6, Field::Bytes(p)) if p.len() >= 8 => {
                value = Some(f64::from_le_bytes(p[..8].try_into().ok()?));
            }
            (6, Field::Fixed64(v)) => value = Some(f64::from_bits(v)),
            // int_val, int64_val (packed varints or single).
            (7 | 10, Field::Bytes(p)) => {
                let mut at = 0;
                value = Some(varint(p, &mut at)? as i64 as f64);
            }
            (7 | 10, Field::Varint(v)) => value = Some(v as i64 as f64),
            _ => {}
        }
    }
    if value.is_some() {
        return value;
    }
    let c = content?;
    // DT_FLOAT 1, DT_DOUBLE 2, DT_INT32 3, DT_INT64 9, DT_HALF 19.
    match dtype {
        1 => Some(f64::from(f32::from_le_bytes(c.get(..4)?.try_into().ok()?))),
        2 => Some(f64::from_le_bytes(c.get(..8)?.try_into().ok()?)),
        3 => Some(f64::from(i32::from_le_bytes(c.get(..4)?.try_into().ok()?))),
        9 => Some(i64::from_le_bytes(c.get(..8)?.try_into().ok()?) as f64),
        19 => Some(half(u16::from_le_bytes(c.get(..2)?.try_into().ok()?))),
        _ => None,
    }
}

/// An IEEE half-precision float.
fn half(h: u16) -> f64 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = i32::from((h >> 10) & 0x1f);
    let frac = f64::from(h & 0x3ff);
    match exp {
        0 => sign * frac * 2f64.powi(-24),
        31 if frac == 0.0 => sign * f64::INFINITY,
        31 => f64::NAN,
        e => sign * (1.0 + frac / 1024.0) * 2f64.powi(e - 15),
    }
}

/// Reads one summary value into `out`.
fn value(v: &[u8], step: i64, wall_time: f64, out: &mut Events) {
    let Some(fs) = fields(v) else {
        *out.skipped
            .entry("unreadable summaries".into())
            .or_default() += 1;
        return;
    };
    let mut tag = String::new();
    let mut plugin = None;
    let mut kind: Option<&str> = None;
    let mut number = None;
    let mut tensor = None;
    for (n, f) in fs {
        match (n, f) {
            (1, Field::Bytes(t)) => tag = text(t),
            (9, Field::Bytes(m)) => plugin = plugin_of(m),
            (2, Field::Fixed32(x)) => number = Some(f64::from(f32::from_bits(x))),
            (3 | 5, _) => kind = Some("histograms"),
            (4, _) => kind = Some("images"),
            (6, _) => kind = Some("audio"),
            (8, Field::Bytes(t)) => tensor = Some(t),
            _ => {}
        }
    }
    if let Some(x) = number {
        out.scalars.push(Scalar {
            tag,
            step,
            wall_time,
            value: x,
        });
        return;
    }
    if let Some(k) = kind {
        *out.skipped.entry(k.into()).or_default() += 1;
        return;
    }
    if let Some(t) = tensor {
        if plugin.as_deref().is_none_or(|p| p == "scalars")
            && let Some(x) = tensor_scalar(t)
        {
            out.scalars.push(Scalar {
                tag,
                step,
                wall_time,
                value: x,
            });
            return;
        }
        let k = plugin.unwrap_or_else(|| "tensors".into());
        *out.skipped.entry(k).or_default() += 1;
        return;
    }
    *out.skipped.entry("empty summaries".into()).or_default() += 1;
}

/// Reads the events of one TFRecord file's records.
pub fn events(records: &[&[u8]], out: &mut Events) {
    for r in records {
        let Some(fs) = fields(r) else {
            *out.skipped.entry("unreadable events".into()).or_default() += 1;
            continue;
        };
        let mut wall_time = 0.0;
        let mut step = 0i64;
        let mut summary = None;
        let mut other: Option<&str> = None;
        for (n, f) in fs {
            match (n, f) {
                (1, Field::Fixed64(w)) => wall_time = f64::from_bits(w),
                (2, Field::Varint(s)) => step = s as i64,
                (5, Field::Bytes(s)) => summary = Some(s),
                (4 | 9, _) => other = Some("graph"),
                (8, _) => other = Some("run metadata"),
                _ => {}
            }
        }
        if let Some(k) = other {
            *out.skipped.entry(k.into()).or_default() += 1;
        }
        let Some(s) = summary else { continue };
        let Some(values) = fields(s) else {
            *out.skipped
                .entry("unreadable summaries".into())
                .or_default() += 1;
            continue;
        };
        for (n, f) in values {
            if let (1, Field::Bytes(v)) = (n, f) {
                value(v, step, wall_time, out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(num: u64, wire: u64, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut key = (num << 3) | wire;
        loop {
            let b = (key & 0x7f) as u8;
            key >>= 7;
            if key == 0 {
                out.push(b);
                break;
            }
            out.push(b | 0x80);
        }
        if wire == 2 {
            out.push(payload.len() as u8);
        }
        out.extend_from_slice(payload);
        out
    }

    /// An event with one old-style scalar.
    fn scalar_event(tag: &str, step: u8, wall: f64, value: f32) -> Vec<u8> {
        let mut v = field(1, 2, tag.as_bytes());
        v.extend(field(2, 5, &value.to_le_bytes()));
        let summary = field(1, 2, &v);
        let mut e = field(1, 1, &wall.to_le_bytes());
        e.extend(field(2, 0, &[step]));
        e.extend(field(5, 2, &summary));
        e
    }

    fn frame(data: &[u8]) -> Vec<u8> {
        let len = (data.len() as u64).to_le_bytes();
        let mut out = len.to_vec();
        out.extend(masked_crc(&len).to_le_bytes());
        out.extend_from_slice(data);
        out.extend(masked_crc(data).to_le_bytes());
        out
    }

    #[test]
    fn scalars_come_out_with_their_steps_and_wall_times() {
        let mut file = frame(&scalar_event("loss", 3, 1.5e9, 0.25));
        file.extend(frame(&scalar_event("loss", 4, 1.5e9 + 1.0, 0.125)));
        let (recs, problem) = records(&file);
        assert_eq!((recs.len(), problem), (2, None));
        let mut ev = Events::default();
        events(&recs, &mut ev);
        assert_eq!(
            ev.scalars,
            vec![
                Scalar {
                    tag: "loss".into(),
                    step: 3,
                    wall_time: 1.5e9,
                    value: 0.25
                },
                Scalar {
                    tag: "loss".into(),
                    step: 4,
                    wall_time: 1.5e9 + 1.0,
                    value: 0.125
                },
            ]
        );
    }

    #[test]
    fn a_torn_or_damaged_record_stops_the_file_and_says_where() {
        let one = frame(&scalar_event("a", 1, 1.0, 1.0));
        let mut file = one.clone();
        file.extend_from_slice(&one[..one.len() - 3]);
        let (recs, problem) = records(&file);
        assert_eq!(recs.len(), 1);
        assert!(problem.unwrap().contains("ends inside"));
        let mut bad = one.clone();
        let last = bad.len() - 6;
        bad[last] ^= 0xff;
        let (recs, problem) = records(&bad);
        assert!(recs.is_empty());
        assert!(problem.unwrap().contains("checksum"));
    }

    #[test]
    fn half_floats_decode() {
        assert_eq!(half(0x3c00), 1.0);
        assert_eq!(half(0xc000), -2.0);
        assert_eq!(half(0x7c00), f64::INFINITY);
        assert!(half(0x7e00).is_nan());
    }
}
