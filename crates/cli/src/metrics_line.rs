//! One line of a metrics file: a JSON object such as `{"step": 3, "loss": 0.25}`.
//!
//! `step` (or `_step`) is the step; `timestamp` (or `_timestamp`) is Unix seconds. Every
//! other key is a metric: numbers as they are, booleans as 0/1, the strings `"NaN"`,
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
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match key.as_ref() {
                "step" | "_step" => {
                    let v: Value = map.next_value()?;
                    self.out.step = Some(step_of(&v).map_err(de::Error::custom)?);
                }
                "timestamp" | "_timestamp" => {
                    let v: Value = map.next_value()?;
                    match v.as_f64() {
                        Some(t) if t.is_finite() && t.abs() < 9.0e12 => {
                            self.out.timestamp = Some(t)
                        }
                        _ => return Err(de::Error::custom("timestamp must be Unix seconds")),
                    }
                }
                _ => {
                    let v: Value = map.next_value()?;
                    add_value(self.out, key.into_owned(), v);
                }
            }
        }
        Ok(())
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
