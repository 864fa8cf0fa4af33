//! Metric history: points, summaries, downsampled reads.

use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use utoipa::ToSchema;

/// A metric value. Non-finite numbers travel as the strings `"NaN"`, `"Infinity"`, `"-Infinity"`.
#[derive(Debug, Clone, Copy, PartialEq, ToSchema)]
#[schema(value_type = f64)]
pub struct MetricValue(pub f64);

impl Serialize for MetricValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let v = self.0;
        if v.is_finite() {
            s.serialize_f64(v)
        } else if v.is_nan() {
            s.serialize_str("NaN")
        } else if v > 0.0 {
            s.serialize_str("Infinity")
        } else {
            s.serialize_str("-Infinity")
        }
    }
}

/// Parses the string spellings of non-finite numbers.
pub fn parse_non_finite(s: &str) -> Option<f64> {
    match s {
        "NaN" | "nan" => Some(f64::NAN),
        "Infinity" | "inf" | "+Infinity" => Some(f64::INFINITY),
        "-Infinity" | "-inf" => Some(f64::NEG_INFINITY),
        _ => None,
    }
}

struct MetricValueVisitor;

impl Visitor<'_> for MetricValueVisitor {
    type Value = MetricValue;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a number or one of \"NaN\", \"Infinity\", \"-Infinity\"")
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<MetricValue, E> {
        Ok(MetricValue(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<MetricValue, E> {
        Ok(MetricValue(v as f64))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<MetricValue, E> {
        Ok(MetricValue(v as f64))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<MetricValue, E> {
        Ok(MetricValue(if v { 1.0 } else { 0.0 }))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<MetricValue, E> {
        parse_non_finite(v)
            .map(MetricValue)
            .ok_or_else(|| E::invalid_value(de::Unexpected::Str(v), &self))
    }
}

impl<'de> Deserialize<'de> for MetricValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(MetricValueVisitor)
    }
}

/// The values of one point, in the order they were sent (a JSON object of key → number).
#[derive(Debug, Clone, Default, PartialEq, ToSchema)]
#[schema(value_type = Object)]
pub struct MetricValues(pub Vec<(String, MetricValue)>);

impl Serialize for MetricValues {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

impl<'de> Deserialize<'de> for MetricValues {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = MetricValues;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of metric name to number")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<MetricValues, A::Error> {
                let mut out = Vec::with_capacity(a.size_hint().unwrap_or(8));
                while let Some((k, v)) = a.next_entry::<String, MetricValue>()? {
                    out.push((k, v));
                }
                Ok(MetricValues(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// One step of metrics: a value for each key.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HistoryPoint {
    /// Step number (usually the training iteration).
    pub step: i64,
    /// Unix seconds or an RFC 3339 string; the server's receive time when absent.
    #[serde(default, deserialize_with = "crate::deserialize_timestamp")]
    #[schema(value_type = Option<f64>)]
    pub timestamp: Option<f64>,
    /// Key → value.
    pub values: MetricValues,
}

/// `POST /api/v1/runs/{id}/history` (gzip bodies accepted). Idempotent per (key, step).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AppendHistoryRequest {
    /// Points to append.
    pub points: Vec<HistoryPoint>,
}

/// Answer to an append.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AppendHistoryResponse {
    /// Number of (key, step) values stored.
    pub accepted: u64,
}

/// The history of one key, columnar.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Series {
    /// Metric name.
    pub key: String,
    /// Steps, ascending.
    pub steps: Vec<i64>,
    /// Values, one per step.
    pub values: Vec<MetricValue>,
    /// Unix seconds, one per step.
    pub timestamps: Vec<f64>,
    /// Points stored in the requested step range.
    pub total_points: u64,
    /// True when the points were downsampled onto a grid of buckets: then `steps` are the
    /// buckets' grid steps, `values` and `timestamps` each bucket's last point, and `min`,
    /// `max` and `last` are present.
    pub downsampled: bool,
    /// Smallest value of each bucket, aligned with `steps` (downsampled reads only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<Vec<MetricValue>>,
    /// Largest value of each bucket, aligned with `steps` (downsampled reads only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<Vec<MetricValue>>,
    /// Value of each bucket's last point, aligned with `steps` (downsampled reads only; the
    /// same numbers as `values`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<Vec<MetricValue>>,
}

/// `GET /api/v1/runs/{id}/history` answer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HistoryResponse {
    /// Run id.
    pub run: crate::RunId,
    /// One series per key.
    pub series: Vec<Series>,
}

/// `POST /api/v1/history/query`: many runs × keys in one request.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HistoryQueryRequest {
    /// Run ids (at most 1,000).
    pub runs: Vec<crate::RunId>,
    /// Metric keys; all keys of each run when empty.
    #[serde(default)]
    pub keys: Vec<String>,
    /// First step (inclusive).
    #[serde(default)]
    pub min_step: Option<i64>,
    /// Last step (inclusive).
    #[serde(default)]
    pub max_step: Option<i64>,
    /// Cap on points per series; downsampled above it.
    #[serde(default)]
    pub max_points: Option<usize>,
}

/// Answer of a multi-run query.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HistoryQueryResponse {
    /// One entry per requested run, in request order.
    pub results: Vec<HistoryResponse>,
}

/// Summary of one metric of a run.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MetricSummary {
    /// Metric name.
    pub key: String,
    /// Latest value (or the value a client set).
    pub last: Option<MetricValue>,
    /// Step of the latest value.
    pub last_step: Option<i64>,
    /// Smallest non-NaN value.
    pub min: Option<MetricValue>,
    /// Largest non-NaN value.
    pub max: Option<MetricValue>,
    /// Number of points.
    pub count: i64,
    /// True when `last` was set by a client rather than logged.
    pub set_by_client: bool,
}

/// `POST /api/v1/runs/{id}/summary`: set summary values explicitly (e.g. best accuracy).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetSummaryRequest {
    /// Key → value.
    pub values: MetricValues,
}
