//! One row as one canonical JSON line: columns in the table's order, integers as integers,
//! booleans as `true`/`false` on both backends, floats in their shortest round-tripping form
//! (non-finite ones as the strings `"NaN"`, `"Infinity"`, `"-Infinity"`), bytes as base64.
//! Equal rows therefore give equal bytes whichever backend they were read from. The store
//! side reads rows into [`Cell`]s and binds them back.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::Value;

use super::TransferError;
use super::schema::{ColumnType, TableSpec};

/// One value of one column.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// An integer column.
    Int(Option<i64>),
    /// A boolean column.
    Bool(Option<bool>),
    /// A float column.
    Float(Option<f64>),
    /// A text column.
    Text(Option<String>),
    /// A bytes column.
    Bytes(Option<Vec<u8>>),
}

/// Appends the JSON line of a row (with its newline) to `out`.
pub fn write_line(spec: &TableSpec, cells: &[Cell], out: &mut Vec<u8>) {
    out.push(b'{');
    for (i, ((name, _), cell)) in spec.columns.iter().zip(cells).enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'"');
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\":");
        write_cell(cell, out);
    }
    out.extend_from_slice(b"}\n");
}

fn write_cell(cell: &Cell, out: &mut Vec<u8>) {
    match cell {
        Cell::Int(None)
        | Cell::Bool(None)
        | Cell::Float(None)
        | Cell::Text(None)
        | Cell::Bytes(None) => out.extend_from_slice(b"null"),
        Cell::Int(Some(v)) => out.extend_from_slice(itoa::Buffer::new().format(*v).as_bytes()),
        Cell::Bool(Some(v)) => out.extend_from_slice(if *v { b"true" } else { b"false" }),
        Cell::Float(Some(v)) if v.is_nan() => out.extend_from_slice(b"\"NaN\""),
        Cell::Float(Some(v)) if v.is_infinite() => out.extend_from_slice(if *v > 0.0 {
            b"\"Infinity\""
        } else {
            b"\"-Infinity\""
        }),
        Cell::Float(Some(v)) => json(v, out),
        Cell::Text(Some(s)) => json(s, out),
        Cell::Bytes(Some(b)) => json(&BASE64.encode(b), out),
    }
}

/// Writes a finite float or a string as JSON (into a Vec, which cannot fail).
fn json<T: serde::Serialize + ?Sized>(v: &T, out: &mut Vec<u8>) {
    let _ = serde_json::to_writer(out, v);
}

/// Parses one line of `tables/<table>.jsonl` back into cells.
pub fn read_line(spec: &TableSpec, line: &[u8]) -> Result<Vec<Cell>, TransferError> {
    read_object(spec, read_json(spec, line)?)
}

/// Parses one line of `tables/<table>.jsonl` into its JSON object.
pub fn read_json(
    spec: &TableSpec,
    line: &[u8],
) -> Result<serde_json::Map<String, Value>, TransferError> {
    serde_json::from_slice(line)
        .map_err(|e| invalid(spec, format!("a line is not a JSON object: {e}")))
}

/// The error for a malformed row of `spec`'s table.
pub fn invalid(spec: &TableSpec, why: String) -> TransferError {
    TransferError::Invalid(format!("table {}: {why}", spec.name))
}

/// The cells of one row given as a JSON object: every column of `spec`, and nothing else.
pub fn read_object(
    spec: &TableSpec,
    mut map: serde_json::Map<String, Value>,
) -> Result<Vec<Cell>, TransferError> {
    let bad = |why: String| invalid(spec, why);
    let mut cells = Vec::with_capacity(spec.columns.len());
    for (name, ty) in spec.columns {
        let v = map
            .remove(*name)
            .ok_or_else(|| bad(format!("a row has no column {name}")))?;
        cells.push(cell(*ty, v).map_err(|why| bad(format!("column {name}: {why}")))?);
    }
    if let Some(extra) = map.keys().next() {
        return Err(bad(format!("a row has an unknown column {extra}")));
    }
    Ok(cells)
}

fn cell(ty: ColumnType, v: Value) -> Result<Cell, String> {
    if v.is_null() {
        return Ok(match ty {
            ColumnType::Int => Cell::Int(None),
            ColumnType::Bool => Cell::Bool(None),
            ColumnType::Float => Cell::Float(None),
            ColumnType::Text => Cell::Text(None),
            ColumnType::Bytes => Cell::Bytes(None),
        });
    }
    let wrong = |v: &Value| format!("{v} is not a valid value");
    Ok(match (ty, v) {
        (ColumnType::Int, v) => Cell::Int(Some(v.as_i64().ok_or_else(|| wrong(&v))?)),
        (ColumnType::Bool, Value::Bool(b)) => Cell::Bool(Some(b)),
        (ColumnType::Float, Value::String(s)) => Cell::Float(Some(match s.as_str() {
            "NaN" => f64::NAN,
            "Infinity" => f64::INFINITY,
            "-Infinity" => f64::NEG_INFINITY,
            _ => return Err(format!("{s:?} is not a number")),
        })),
        (ColumnType::Float, v) => Cell::Float(Some(v.as_f64().ok_or_else(|| wrong(&v))?)),
        (ColumnType::Text, Value::String(s)) => Cell::Text(Some(s)),
        (ColumnType::Bytes, Value::String(s)) => Cell::Bytes(Some(
            BASE64
                .decode(s.as_bytes())
                .map_err(|e| format!("invalid base64: {e}"))?,
        )),
        (_, v) => return Err(wrong(&v)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transfer::schema::TABLES;

    fn spec(name: &str) -> &'static TableSpec {
        TABLES.iter().find(|t| t.name == name).unwrap()
    }

    #[test]
    fn lines_round_trip_every_type() {
        let chunks = spec("metric_chunks");
        let cells = vec![
            Cell::Int(Some(7)),
            Cell::Int(Some(-3)),
            Cell::Int(Some(i64::MAX)),
            Cell::Int(Some(2)),
            Cell::Int(None),
            Cell::Float(Some(0.1)),
            Cell::Int(Some(1)),
            Cell::Int(Some(2)),
            Cell::Float(Some(f64::NEG_INFINITY)),
            Cell::Int(None),
            Cell::Bytes(Some(vec![0, 255, 10])),
            Cell::Bytes(Some(Vec::new())),
            Cell::Float(Some(2.5)),
            Cell::Int(Some(5)),
            Cell::Bytes(None),
        ];
        let mut line = Vec::new();
        write_line(chunks, &cells, &mut line);
        assert!(line.ends_with(b"}\n"));
        let text = String::from_utf8(line.clone()).unwrap();
        assert!(text.contains("\"min_value\":0.1,"), "{text}");
        assert!(text.contains("\"max_value\":\"-Infinity\""), "{text}");
        assert!(text.contains("\"data\":\"AP8K\""), "{text}");
        assert_eq!(read_line(chunks, &line).unwrap(), cells);
    }

    #[test]
    fn nan_and_booleans_and_text() {
        let series = spec("metric_series");
        let mut cells = vec![Cell::Int(Some(1)); series.columns.len()];
        cells[2] = Cell::Text(Some("loss \"a\"\n".into()));
        cells[5] = Cell::Float(Some(f64::NAN));
        cells[6] = Cell::Bool(Some(true));
        cells[7] = Cell::Float(Some(1e-300));
        cells[8] = Cell::Float(Some(123456789.0));
        cells[9] = Cell::Float(None);
        cells[10] = Cell::Bool(Some(false));
        cells[11] = Cell::Bool(None);
        let mut line = Vec::new();
        write_line(series, &cells, &mut line);
        let back = read_line(series, &line).unwrap();
        assert!(matches!(back[5], Cell::Float(Some(v)) if v.is_nan()));
        assert_eq!(back[..5], cells[..5]);
        assert_eq!(back[6..], cells[6..]);
    }

    #[test]
    fn malformed_lines_say_what_is_wrong() {
        let tags = spec("run_tags");
        let err = |l: &str| read_line(tags, l.as_bytes()).unwrap_err().to_string();
        assert!(err("{\"run_pk\":1}").contains("no column tag"));
        assert!(
            err("{\"run_pk\":1,\"tag\":\"a\",\"position\":0,\"x\":1}").contains("unknown column x")
        );
        assert!(err("{\"run_pk\":\"1\",\"tag\":\"a\"}").contains("column run_pk"));
        assert!(err("[1]").contains("not a JSON object"));
    }
}
