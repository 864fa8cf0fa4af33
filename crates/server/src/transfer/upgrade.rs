//! Reading exports that the previous schema version wrote. Since schema version 12 a run's
//! tags live only in `run_tags`, their order in its `position` column; exports of version 11
//! hold them twice, as a JSON list in `runs.tags` and unordered in `run_tags`. Such an export
//! is converted as it is read, the way migration 12 converts a database: each run's tags in
//! the order of its JSON list, then the ones only `run_tags` held, by name.
//!
//! Schema version 13 added the MLflow API's tables: exports of versions 11 and 12 have none
//! of them, and load with those tables empty.

use std::collections::BTreeMap;

use serde_json::Value;

use super::TransferError;
use super::codec::{self, Cell};
use super::schema::{ColumnType, TableSpec};

/// The schema version whose exports are converted.
const CONVERTED_VERSION: i64 = 11;

/// The schema version they are converted to.
const CONVERTED_TO: i64 = 12;

/// `run_tags` as exports of version 11 wrote it.
const RUN_TAGS_11: TableSpec = TableSpec {
    name: "run_tags",
    key: &["run_pk", "tag"],
    columns: &[("run_pk", ColumnType::Int), ("tag", ColumnType::Text)],
};

/// The schema version that added the MLflow API's tables.
const MLFLOW_VERSION: i64 = 13;

/// The tables schema version 13 added.
const ADDED_IN_13: &[&str] = &[
    "run_tag_values",
    "mlflow_experiments",
    "mlflow_experiment_tags",
    "mlflow_runs",
    "mlflow_metric_log",
    "mlflow_pending_models",
    "mlflow_model_tags",
    "mlflow_model_versions",
    "mlflow_logged_models",
];

/// Whether an export of `source` schema version loads into a database at `target`.
pub(super) fn loads_into(source: i64, target: i64) -> bool {
    source == target
        || (source == CONVERTED_VERSION && target == CONVERTED_TO)
        || (target == MLFLOW_VERSION && (CONVERTED_VERSION..MLFLOW_VERSION).contains(&source))
}

/// Whether `spec`'s table is missing from exports of `version` (it was added later): it
/// loads empty.
pub(super) fn absent(version: i64, spec: &TableSpec) -> bool {
    version < MLFLOW_VERSION && ADDED_IN_13.contains(&spec.name)
}

/// Whether the rows of `spec`'s table in an export of `version` are converted on import.
pub(super) fn converts(version: i64, spec: &TableSpec) -> bool {
    version == CONVERTED_VERSION && matches!(spec.name, "runs" | "run_tags")
}

/// One line of `spec`'s table in an export of `version`, as the cells it holds: a version-11
/// `runs` row without its tags, a version-11 `run_tags` row without a position.
pub(super) fn read_line(
    version: i64,
    spec: &TableSpec,
    line: &[u8],
) -> Result<Vec<Cell>, TransferError> {
    Ok(read_old_line(version, spec, line)?.0)
}

/// Like [`read_line`], with a version-11 run's tags as its `runs.tags` listed them.
fn read_old_line(
    version: i64,
    spec: &TableSpec,
    line: &[u8],
) -> Result<(Vec<Cell>, Vec<String>), TransferError> {
    if !converts(version, spec) {
        return Ok((codec::read_line(spec, line)?, Vec::new()));
    }
    if spec.name == "run_tags" {
        return Ok((codec::read_line(&RUN_TAGS_11, line)?, Vec::new()));
    }
    let mut row = codec::read_json(spec, line)?;
    let tags = match row.remove("tags") {
        Some(Value::String(json)) => listed_tags(&json),
        _ => {
            return Err(codec::invalid(
                spec,
                "a row of schema version 11 has no text column tags".into(),
            ));
        }
    };
    Ok((codec::read_object(spec, row)?, tags))
}

/// The tags a version-11 `runs.tags` lists, in order, each once; none when it is not a JSON
/// list (strings that are not tags are skipped).
fn listed_tags(json: &str) -> Vec<String> {
    let Ok(Value::Array(items)) = serde_json::from_str::<Value>(json) else {
        return Vec::new();
    };
    let mut tags: Vec<String> = Vec::with_capacity(items.len());
    for item in items {
        if let Value::String(t) = item
            && !tags.contains(&t)
        {
            tags.push(t);
        }
    }
    tags
}

/// A run's tags gathered from a version-11 export.
#[derive(Debug, Default)]
struct GatheredTags {
    /// As `runs.tags` listed them.
    listed: Vec<String>,
    /// Held only by `run_tags`.
    unlisted: Vec<String>,
}

/// Converts the rows of an export as they are read. Every run's tags are held until the
/// `run_tags` table ends (a few bytes per tag), since their order comes from `runs`.
#[derive(Debug)]
pub(super) struct Upgrade {
    version: i64,
    tags: BTreeMap<i64, GatheredTags>,
}

impl Upgrade {
    /// Reads an export of schema `version`.
    pub(super) fn new(version: i64) -> Upgrade {
        Upgrade {
            version,
            tags: BTreeMap::new(),
        }
    }

    /// The cells to load for one line of `spec`'s table, or None when the row is held until
    /// the table ends.
    pub(super) fn row(
        &mut self,
        spec: &TableSpec,
        line: &[u8],
    ) -> Result<Option<Vec<Cell>>, TransferError> {
        if !converts(self.version, spec) {
            return Ok(Some(codec::read_line(spec, line)?));
        }
        let (cells, listed) = read_old_line(self.version, spec, line)?;
        match (spec.name, &cells[..]) {
            ("runs", [Cell::Int(Some(pk)), ..]) => {
                if !listed.is_empty() {
                    self.tags.entry(*pk).or_default().listed = listed;
                }
                Ok(Some(cells))
            }
            ("run_tags", [Cell::Int(Some(pk)), Cell::Text(Some(tag))]) => {
                let gathered = self.tags.entry(*pk).or_default();
                if !gathered.listed.contains(tag) && !gathered.unlisted.contains(tag) {
                    gathered.unlisted.push(tag.clone());
                }
                Ok(None)
            }
            _ => Err(codec::invalid(spec, "a row has no key".into())),
        }
    }

    /// The rows held back for `spec`'s table, to load after its last line: for `run_tags`,
    /// every tag with its position, in key order (run, then tag).
    pub(super) fn held_rows(&mut self, spec: &TableSpec) -> Vec<Vec<Cell>> {
        if !(converts(self.version, spec) && spec.name == "run_tags") {
            return Vec::new();
        }
        let mut rows = Vec::new();
        for (pk, mut gathered) in std::mem::take(&mut self.tags) {
            gathered.unlisted.sort();
            let mut ordered: Vec<(String, i64)> = gathered
                .listed
                .into_iter()
                .chain(gathered.unlisted)
                .zip(0..)
                .collect();
            ordered.sort();
            rows.extend(ordered.into_iter().map(|(tag, position)| {
                vec![
                    Cell::Int(Some(pk)),
                    Cell::Text(Some(tag)),
                    Cell::Int(Some(position)),
                ]
            }));
        }
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transfer::schema::TABLES;

    fn spec(name: &str) -> &'static TableSpec {
        TABLES.iter().find(|t| t.name == name).unwrap()
    }

    /// A version-11 `runs` line of run `pk` with `tags` as its JSON text.
    fn old_run(pk: i64, tags: &str) -> Vec<u8> {
        let mut row = serde_json::Map::new();
        for (name, ty) in spec("runs").columns {
            row.insert(
                name.to_string(),
                match ty {
                    ColumnType::Int => Value::from(pk),
                    ColumnType::Bool => Value::Bool(false),
                    _ => Value::from("x"),
                },
            );
        }
        row.insert("tags".into(), Value::from(tags));
        serde_json::to_vec(&row).unwrap()
    }

    fn old_tag(pk: i64, tag: &str) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({"run_pk": pk, "tag": tag})).unwrap()
    }

    fn tag_rows(rows: Vec<Vec<Cell>>) -> Vec<(i64, String, i64)> {
        rows.into_iter()
            .map(|r| match &r[..] {
                [Cell::Int(Some(pk)), Cell::Text(Some(t)), Cell::Int(Some(p))] => {
                    (*pk, t.clone(), *p)
                }
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn version_11_tags_keep_their_listed_order_and_lose_none() {
        let mut up = Upgrade::new(11);
        let runs = spec("runs");
        let run_tags = spec("run_tags");
        for (pk, json) in [
            (1, r#"["zeta","alpha","zeta"]"#),
            (2, "not json"),
            (3, "[]"),
        ] {
            let cells = up.row(runs, &old_run(pk, json)).unwrap().unwrap();
            assert_eq!(cells.len(), runs.columns.len());
        }
        // Run 1: "mid" is only in run_tags, "zeta" only in the list; run 2's list is unreadable.
        for (pk, tag) in [(1, "alpha"), (1, "mid"), (1, "beta"), (2, "b"), (2, "a")] {
            assert!(up.row(run_tags, &old_tag(pk, tag)).unwrap().is_none());
        }
        assert_eq!(
            tag_rows(up.held_rows(run_tags)),
            [
                (1, "alpha".into(), 1),
                (1, "beta".into(), 2),
                (1, "mid".into(), 3),
                (1, "zeta".into(), 0),
                (2, "a".into(), 0),
                (2, "b".into(), 1),
            ]
        );
        // A current export's rows pass through as they are.
        let mut current = Upgrade::new(12);
        let line = br#"{"run_pk":1,"tag":"a","position":4}"#;
        assert_eq!(
            current.row(run_tags, line).unwrap().unwrap(),
            codec::read_line(run_tags, line).unwrap()
        );
        assert!(current.held_rows(run_tags).is_empty());
    }

    #[test]
    fn only_the_previous_version_is_converted() {
        assert!(loads_into(12, 12));
        assert!(loads_into(11, 12));
        assert!(!loads_into(10, 12));
        assert!(loads_into(11, 13));
        assert!(loads_into(12, 13));
        assert!(!loads_into(10, 13));
        assert!(!loads_into(13, 12));
        assert!(absent(12, spec("mlflow_runs")));
        assert!(!absent(13, spec("mlflow_runs")));
        assert!(!absent(12, spec("runs")));
        let err = read_line(11, spec("runs"), &old_tag(1, "a")).unwrap_err();
        assert!(err.to_string().contains("no text column tags"), "{err}");
        let err = read_line(12, spec("runs"), &old_run(1, "[]")).unwrap_err();
        assert!(err.to_string().contains("unknown column tags"), "{err}");
    }
}
