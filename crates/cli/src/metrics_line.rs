//! One line of a metrics file: a JSON object such as `{"step": 3, "loss": 0.25}`.
//!
//! `step` (or `_step`) is the step; `timestamp` (or `_timestamp`) is Unix seconds. When a
//! line has `_step`, a `step` key is an ordinary metric (and likewise `timestamp` next to
//! `_timestamp`): the Python SDK writes `_step` so that its users may log a metric named
//! `step`. Every other key is a metric: numbers as they are, booleans as 0/1, the strings `"NaN"`,
//! `"Infinity"`, `"-Infinity"` as those values, and nested objects flattened with `/`
//! (`{"train": {"loss": 1}}` is `train/loss`). Anything else is reported, never silently
//! dropped.

use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, Visitor};
use serde_json::Value;
use wanllmdb_api_types::metrics::{HistoryPoint, MetricValue, MetricValues, parse_non_finite};

/// Longest metric name the server accepts, in bytes.
pub const MAX_KEY_LEN: usize = 256;

/// A parsed line.
#[derive(Debug, Default, PartialEq)]
pub struct ParsedLine {
    /// `step`, when the line gave one.
    pub step: Option<i64>,
    /// `timestamp`, when the line gave one.
    pub timestamp: Option<f64>,
    /// The metric values, in line order.
    pub values: Vec<(String, MetricValue)>,
    /// Keys that were not recorded, and why.
    pub skipped: Vec<(String, &'static str)>,
}

impl ParsedLine {
    /// Turns the line into a point, numbering it with `next_step` when it has no step, and
    /// advances `next_step` past it.
    pub fn into_point(self, next_step: &mut i64) -> HistoryPoint {
        let step = self.step.unwrap_or(*next_step);
        *next_step = step.saturating_add(1);
        HistoryPoint {
            step,
            timestamp: self.timestamp,
            values: MetricValues(self.values),
        }
    }
}

/// Parses one line; the error says what is wrong with it.
pub fn parse_line(line: &[u8]) -> Result<ParsedLine, String> {
    let mut out = ParsedLine::default();
    let mut de = serde_json::Deserializer::from_slice(line);
    LineSeed { out: &mut out }
        .deserialize(&mut de)
        .map_err(|e| clean_error(&e))?;
    de.end().map_err(|e| clean_error(&e))?;
    Ok(out)
}

fn clean_error(e: &serde_json::Error) -> String {
    let s = e.to_string();
    match s.find(" at line ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

struct LineSeed<'a> {
    out: &'a mut ParsedLine,
}

impl<'de> DeserializeSeed<'de> for LineSeed<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for LineSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object such as {\"step\": 3, \"loss\": 0.25}")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let (mut step, mut plain_step) = (None, None);
        let (mut ts, mut plain_ts) = (None, None);
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match key.as_ref() {
                "_step" => step = Some(map.next_value::<Value>()?),
                "step" => plain_step = Some(map.next_value::<Value>()?),
                "_timestamp" => ts = Some(map.next_value::<Value>()?),
                "timestamp" => plain_ts = Some(map.next_value::<Value>()?),
                _ => {
                    let v: Value = map.next_value()?;
                    add_value(self.out, key.into_owned(), v);
                }
            }
        }
        let (step, demoted) = prefer_underscored(step, plain_step);
        if let Some(v) = demoted {
            add_value(self.out, "step".into(), v);
        }
        if let Some(v) = step {
            self.out.step = Some(step_of(&v).map_err(de::Error::custom)?);
        }
        let (ts, demoted) = prefer_underscored(ts, plain_ts);
        if let Some(v) = demoted {
            add_value(self.out, "timestamp".into(), v);
        }
        if let Some(v) = ts {
            match v.as_f64() {
                Some(t) if t.is_finite() && t.abs() < 9.0e12 => self.out.timestamp = Some(t),
                _ => return Err(de::Error::custom("timestamp must be Unix seconds")),
            }
        }
        Ok(())
    }
}

/// `_step` wins over `step` (and `_timestamp` over `timestamp`): returns the value in force
/// and, when both were given, the plain one, which is then an ordinary metric.
fn prefer_underscored<T>(underscored: Option<T>, plain: Option<T>) -> (Option<T>, Option<T>) {
    match underscored {
        Some(u) => (Some(u), plain),
        None => (plain, None),
    }
}

fn step_of(v: &Value) -> Result<i64, String> {
    if let Some(i) = v.as_i64() {
        return Ok(i);
    }
    match v.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 9.0e18 => Ok(f as i64),
        _ => Err(format!("step must be a whole number, not {v}")),
    }
}

fn add_value(out: &mut ParsedLine, key: String, v: Value) {
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        out.skipped
            .push((key, "metric names must be 1 to 256 bytes"));
        return;
    }
    match v {
        Value::Number(n) => match n.as_f64() {
            Some(f) => out.values.push((key, MetricValue(f))),
            None => out.skipped.push((key, "number out of range")),
        },
        Value::Bool(b) => out
            .values
            .push((key, MetricValue(if b { 1.0 } else { 0.0 }))),
        Value::String(s) => match parse_non_finite(&s) {
            Some(f) => out.values.push((key, MetricValue(f))),
            None => out.skipped.push((key, "not a number")),
        },
        Value::Null => {}
        Value::Object(m) => {
            for (k, v) in m {
                add_value(out, format!("{key}/{k}"), v);
            }
        }
        Value::Array(_) => out.skipped.push((key, "lists are not metrics")),
    }
}

/// The request body of `POST /runs/{id}/history`, written directly: the common line
/// (`{"step": 3, "loss": 0.25}`: plain keys, plain numbers) is copied through without being
/// turned into values and formatted back, which keeps the wrapper's share of the CPU small
/// while a program logs as fast as it can.
pub struct HistoryBody {
    buf: Vec<u8>,
    /// Points written.
    pub points: usize,
    /// Values written.
    pub values: usize,
}

impl Default for HistoryBody {
    fn default() -> Self {
        HistoryBody {
            buf: b"{\"points\":[".to_vec(),
            points: 0,
            values: 0,
        }
    }
}

impl HistoryBody {
    fn open_point(&mut self, step: i64) {
        if self.points > 0 {
            self.buf.push(b',');
        }
        self.points += 1;
        self.buf.extend_from_slice(b"{\"step\":");
        self.buf
            .extend_from_slice(itoa::Buffer::new().format(step).as_bytes());
    }

    /// Adds a line that `fast_line` understood.
    pub fn push_fast(&mut self, line: &FastLine<'_>, next_step: &mut i64) {
        let step = line.step.unwrap_or(*next_step);
        *next_step = step.saturating_add(1);
        self.open_point(step);
        if let Some(t) = line.timestamp {
            self.buf.extend_from_slice(b",\"timestamp\":");
            self.buf.extend_from_slice(t);
        }
        self.buf.extend_from_slice(b",\"values\":{");
        for (i, (k, v)) in line.values.iter().enumerate() {
            if i > 0 {
                self.buf.push(b',');
            }
            self.buf.push(b'"');
            self.buf.extend_from_slice(k);
            self.buf.extend_from_slice(b"\":");
            self.buf.extend_from_slice(v);
        }
        self.buf.extend_from_slice(b"}}");
        self.values += line.values.len();
    }

    /// Adds any point.
    pub fn push_point(&mut self, p: &HistoryPoint) {
        if self.points > 0 {
            self.buf.push(b',');
        }
        self.points += 1;
        self.values += p.values.0.len();
        // Serialising plain data into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut self.buf, p);
    }

    /// The finished body.
    pub fn finish(mut self) -> Vec<u8> {
        self.buf.extend_from_slice(b"]}");
        self.buf
    }
}

/// A line in the common shape, borrowed from the input.
#[derive(Debug, Default, PartialEq)]
pub struct FastLine<'a> {
    /// `step`, when given.
    pub step: Option<i64>,
    /// `timestamp` as written.
    pub timestamp: Option<&'a [u8]>,
    /// Key and number, as written.
    pub values: Vec<(&'a [u8], &'a [u8])>,
}

/// Recognises a flat object of plain keys and finite numbers; anything else (escapes,
/// strings, booleans, nesting, odd numbers) is None and goes through `parse_line`.
pub fn fast_line(line: &[u8]) -> Option<FastLine<'_>> {
    let mut p = Scan { s: line, i: 0 };
    let mut out = FastLine::default();
    let (mut step, mut plain_step) = (None, None);
    let (mut ts, mut plain_ts) = (None, None);
    p.ws();
    p.eat(b'{')?;
    p.ws();
    if p.peek() == Some(b'}') {
        p.i += 1;
        p.ws();
        return (p.i == line.len()).then_some(out);
    }
    loop {
        p.ws();
        let key = p.key()?;
        p.ws();
        p.eat(b':')?;
        p.ws();
        let num = p.number()?;
        match key {
            b"_step" => step = Some(num),
            b"step" => plain_step = Some(num),
            b"_timestamp" => ts = Some(num),
            b"timestamp" => plain_ts = Some(num),
            _ => out.values.push((key, num)),
        }
        p.ws();
        match p.next()? {
            b',' => continue,
            b'}' => break,
            _ => return None,
        }
    }
    p.ws();
    if p.i != line.len() {
        return None;
    }
    // `_step` wins, and then `step` is a metric; the same for the timestamp.
    let (step, demoted) = prefer_underscored(step, plain_step);
    if let Some(v) = demoted {
        out.values.push((b"step", v));
    }
    if let Some(num) = step {
        if num.iter().any(|c| !(c.is_ascii_digit() || *c == b'-')) {
            return None;
        }
        out.step = Some(std::str::from_utf8(num).ok()?.parse().ok()?);
    }
    let (ts, demoted) = prefer_underscored(ts, plain_ts);
    if let Some(v) = demoted {
        out.values.push((b"timestamp", v));
    }
    if let Some(num) = ts {
        let t: f64 = std::str::from_utf8(num).ok()?.parse().ok()?;
        if t.abs() >= 9.0e12 {
            return None;
        }
        out.timestamp = Some(num);
    }
    Some(out)
}

struct Scan<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Scan<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.next()? == c).then_some(())
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            self.i += 1;
        }
    }

    /// A key without escapes or control characters, 1 to 256 bytes.
    fn key(&mut self) -> Option<&'a [u8]> {
        self.eat(b'"')?;
        let start = self.i;
        let len = memchr::memchr(b'"', &self.s[start..])?;
        let k = &self.s[start..start + len];
        if k.is_empty() || k.len() > MAX_KEY_LEN || k.iter().any(|&c| c == b'\\' || c < 0x20) {
            return None;
        }
        self.i = start + len + 1;
        std::str::from_utf8(k).ok()?;
        Some(k)
    }

    /// A JSON number that is a finite f64.
    fn number(&mut self) -> Option<&'a [u8]> {
        let start = self.i;
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.next()? {
            b'0' => {}
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            let d = self.i;
            self.digits();
            if self.i == d {
                return None;
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            let d = self.i;
            self.digits();
            if self.i == d {
                return None;
            }
        }
        let n = &self.s[start..self.i];
        let v: f64 = std::str::from_utf8(n).ok()?.parse().ok()?;
        v.is_finite().then_some(n)
    }

    fn digits(&mut self) {
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_timestamps_and_values() {
        let p = parse_line(br#"{"step": 3, "loss": 0.25, "acc": 1, "timestamp": 1764250000.5}"#)
            .unwrap();
        assert_eq!(p.step, Some(3));
        assert_eq!(p.timestamp, Some(1764250000.5));
        assert_eq!(
            p.values,
            vec![
                ("loss".to_string(), MetricValue(0.25)),
                ("acc".to_string(), MetricValue(1.0))
            ]
        );
    }

    #[test]
    fn nested_bool_non_finite_and_rejected_values() {
        let p = parse_line(
            br#"{"train": {"loss": 2, "x": {"y": 1}}, "ok": true, "n": "NaN", "name": "abc", "l": [1]}"#,
        )
        .unwrap();
        let keys: Vec<_> = p.values.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["train/loss", "train/x/y", "ok", "n"]);
        assert!(p.values[3].1.0.is_nan());
        assert_eq!(
            p.skipped.iter().map(|s| s.0.as_str()).collect::<Vec<_>>(),
            ["name", "l"]
        );
    }

    #[test]
    fn auto_numbering_continues_after_explicit_steps() {
        let mut next = 0;
        let a = parse_line(br#"{"a": 1}"#).unwrap().into_point(&mut next);
        let b = parse_line(br#"{"a": 1, "step": 10}"#)
            .unwrap()
            .into_point(&mut next);
        let c = parse_line(br#"{"a": 1}"#).unwrap().into_point(&mut next);
        assert_eq!((a.step, b.step, c.step), (0, 10, 11));
    }

    #[test]
    fn the_fast_path_agrees_with_the_full_parser() {
        let lines: &[&[u8]] = &[
            br#"{"step": 3, "loss": 0.25, "acc": 1}"#,
            br#"{"loss":-1.5e-3,"timestamp":1764250000.5}"#,
            br#"  {"a": 0, "b": 10, "_step": 7}  "#,
            br#"{}"#,
        ];
        for l in lines {
            let fast = fast_line(l).unwrap_or_else(|| panic!("{}", String::from_utf8_lossy(l)));
            let full = parse_line(l).unwrap();
            assert_eq!(fast.step, full.step);
            assert_eq!(fast.timestamp.is_some(), full.timestamp.is_some());
            let fv: Vec<(String, f64)> = fast
                .values
                .iter()
                .map(|(k, v)| {
                    (
                        String::from_utf8(k.to_vec()).unwrap(),
                        std::str::from_utf8(v).unwrap().parse().unwrap(),
                    )
                })
                .collect();
            let pv: Vec<(String, f64)> =
                full.values.iter().map(|(k, v)| (k.clone(), v.0)).collect();
            assert_eq!(fv, pv);
        }
        // Everything unusual takes the full parser.
        for l in [
            &br#"{"a": "NaN"}"#[..],
            br#"{"a": true}"#,
            br#"{"a": {"b": 1}}"#,
            br#"{"a\u0041": 1}"#,
            br#"{"a": 01}"#,
            br#"{"a": 1.}"#,
            br#"{"a": 1e999}"#,
            br#"{"step": 1.0, "a": 1}"#,
            br#"{"a": 1} x"#,
            br#"{"a": 1,}"#,
            br#"{"": 1}"#,
            b"not json",
        ] {
            assert!(fast_line(l).is_none(), "{}", String::from_utf8_lossy(l));
        }
    }

    #[test]
    fn history_bodies_are_valid_requests() {
        let mut body = HistoryBody::default();
        let mut next = 0;
        body.push_fast(
            &fast_line(br#"{"loss": 0.5, "timestamp": 1764250000}"#).unwrap(),
            &mut next,
        );
        body.push_point(
            &parse_line(br#"{"n": "NaN"}"#)
                .unwrap()
                .into_point(&mut next),
        );
        body.push_fast(
            &fast_line(br#"{"step": 9, "x": -2e-3}"#).unwrap(),
            &mut next,
        );
        assert_eq!((body.points, body.values, next), (3, 3, 10));
        let req: wanllmdb_api_types::metrics::AppendHistoryRequest =
            serde_json::from_slice(&body.finish()).unwrap();
        assert_eq!(req.points[0].step, 0);
        assert_eq!(req.points[0].timestamp, Some(1764250000.0));
        assert_eq!(req.points[1].step, 1);
        assert!(req.points[1].values.0[0].1.0.is_nan());
        assert_eq!(req.points[2].step, 9);
        assert_eq!(req.points[2].values.0[0].1.0, -2e-3);
    }

    #[test]
    fn underscore_step_makes_step_a_metric() {
        let line =
            br#"{"_step": 7, "step": 3, "_timestamp": 1764250000.5, "timestamp": 2, "a": 1}"#;
        let full = parse_line(line).unwrap();
        assert_eq!(full.step, Some(7));
        assert_eq!(full.timestamp, Some(1764250000.5));
        let keys: Vec<_> = full.values.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["a", "step", "timestamp"]);
        let fast = fast_line(line).unwrap();
        assert_eq!(fast.step, Some(7));
        assert_eq!(fast.values.len(), 3);
        // Without `_step`, `step` is the step whatever its position.
        let p = parse_line(br#"{"a": 1, "step": 4}"#).unwrap();
        assert_eq!((p.step, p.values.len()), (Some(4), 1));
    }

    #[test]
    fn malformed_lines_are_errors() {
        assert!(parse_line(b"not json").is_err());
        assert!(parse_line(b"[1, 2]").is_err());
        assert!(
            parse_line(br#"{"step": 1.5, "a": 1}"#)
                .unwrap_err()
                .contains("whole number")
        );
        assert!(parse_line(br#"{"a": 1} trailing"#).is_err());
        assert!(parse_line(br#"{"step": 1, "timestamp": "x"}"#).is_err());
    }
}
