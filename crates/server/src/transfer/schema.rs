//! The tables an export holds, in foreign-key order, with each column's type as PostgreSQL
//! declares it. SQLite keeps booleans as integers, so the types cannot be read from the
//! database alone; [`check`] compares this list with the live schema and refuses to export
//! or import when a migration added a table or column the list does not know.

use crate::store::Store;

use super::{TransferError, store};

/// How a column's values are written in an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// 64-bit integer (BIGINT / INTEGER).
    Int,
    /// true/false (BOOLEAN; 0/1 in SQLite).
    Bool,
    /// Double-precision float.
    Float,
    /// UTF-8 text.
    Text,
    /// Bytes, written as base64 (BYTEA / BLOB).
    Bytes,
}

use ColumnType::{Bool as B, Bytes as Y, Float as F, Int as I, Text as T};

/// One table of the export.
#[derive(Debug)]
pub struct TableSpec {
    /// Table name.
    pub name: &'static str,
    /// Primary-key columns: rows are written in this order.
    pub key: &'static [&'static str],
    /// Every column, in the order written.
    pub columns: &'static [(&'static str, ColumnType)],
}

impl TableSpec {
    /// The column that numbers new rows (PostgreSQL identity), if any.
    pub fn identity(&self) -> Option<&'static str> {
        match self.key {
            [k] if self.columns.iter().any(|(c, t)| c == k && *t == I) => Some(k),
            _ => None,
        }
    }
}

macro_rules! tables {
    ($($name:literal [$($key:literal),+] { $($col:literal: $ty:ident),+ $(,)? })+) => {
        /// Every table, parents before children.
        pub const TABLES: &[TableSpec] = &[$(TableSpec {
            name: $name,
            key: &[$($key),+],
            columns: &[$(($col, $ty)),+],
        }),+];
    };
}

tables! {
    "users" ["id"] { "id": I, "username": T, "email": T, "password_hash": T, "is_admin": B,
        "created_at": I, "disabled_at": I, "full_name": T }
    "api_keys" ["id"] { "id": I, "user_id": I, "name": T, "prefix": T, "key_hash": T,
        "created_at": I, "last_used_at": I, "revoked_at": I }
    "refresh_tokens" ["jti"] { "jti": T, "family": T, "user_id": I, "expires_at": I,
        "used_at": I, "revoked_at": I, "rotated_jti": T, "rotated_access_jti": T,
        "rotated_iat": I }
    "revoked_tokens" ["jti"] { "jti": T, "expires_at": I }
    "login_failures" ["id"] { "id": I, "subject": T, "at": I }
    "server_settings" ["name"] { "name": T, "value": T }
    "audit_events" ["id"] { "id": I, "at": I, "event_type": T, "category": T, "severity": T,
        "user_id": I, "username": T, "ip": T, "user_agent": T, "method": T, "path": T,
        "resource": T, "http_status": I, "metadata": T, "status": T, "action": T,
        "resource_type": T, "resource_id": T }
    "projects" ["id"] { "id": I, "name": T, "description": T, "visibility": T, "owner_id": I,
        "created_at": I, "updated_at": I }
    "project_members" ["project_id", "user_id"] { "project_id": I, "user_id": I, "role": T,
        "added_at": I }
    "runs" ["pk"] { "pk": I, "id": T, "project_id": I, "name": T, "state": T, "config": T,
        "notes": T, "group_name": T, "job_type": T, "git_commit": T, "git_branch": T,
        "git_remote": T, "git_dirty": B, "host": T, "os": T, "program": T, "runtime": T,
        "exit_code": I, "created_by": I, "created_at": I, "started_at": I, "finished_at": I,
        "heartbeat_at": I, "updated_at": I, "stop_requested": B, "reaped": B,
        "end_reason": T }
    "run_tags" ["run_pk", "tag"] { "run_pk": I, "tag": T, "position": I }
    "run_tag_values" ["run_pk", "key"] { "run_pk": I, "key": T, "value": T }
    "mlflow_experiments" ["project_id"] { "project_id": I, "name": T, "lifecycle_stage": T,
        "last_update_time": I }
    "mlflow_experiment_tags" ["project_id", "key"] { "project_id": I, "key": T, "value": T }
    "mlflow_runs" ["run_pk"] { "run_pk": I, "lifecycle_stage": T, "deleted_at": I }
    "metric_series" ["id"] { "id": I, "run_pk": I, "key": T, "count": I, "last_step": I,
        "last_value": F, "last_nan": B, "min_value": F, "max_value": F, "set_value": F,
        "set_nan": B, "is_set": B, "updated_at": I }
    "metric_chunks" ["series_id", "start_step"] { "series_id": I, "start_step": I,
        "end_step": I, "count": I, "min_step": I, "min_value": F, "min_ts": I, "max_step": I,
        "max_value": F, "max_ts": I, "data": Y, "blocks": Y, "last_value": F, "last_ts": I,
        "lasts": Y }
    "log_lines" ["id"] { "id": I, "run_pk": I, "level": T, "source": T, "line_number": I,
        "ts": I, "message": T }
    "blobs" ["digest"] { "digest": T, "size": I, "md5": T, "created_at": I }
    "run_files" ["id"] { "id": I, "run_pk": I, "path": T, "digest": T, "created_by": I,
        "created_at": I }
    "staged_uploads" ["id"] { "id": T, "run_pk": I, "path": T, "staging_key": T, "digest": T,
        "size": I, "md5": T, "created_by": I, "created_at": I, "uploaded_at": I,
        "expires_at": I }
    "artifacts" ["id"] { "id": I, "project_id": I, "name": T, "kind": T, "description": T,
        "metadata": T, "tags": T, "created_by": I, "created_at": I, "updated_at": I }
    "artifact_versions" ["id"] { "id": I, "artifact_id": I, "version": I, "state": T,
        "digest": T, "description": T, "metadata": T, "run_pk": I, "file_count": I,
        "total_size": I, "pending_aliases": T, "created_by": I, "created_at": I }
    "artifact_entries" ["version_id", "path"] { "version_id": I, "path": T, "digest": T,
        "size": I, "ref_uri": T, "ref_checksum": T, "pending": B }
    "artifact_aliases" ["artifact_id", "alias"] { "artifact_id": I, "alias": T,
        "version_id": I, "updated_by": I, "updated_at": I }
    "artifact_usage" ["version_id", "run_pk"] { "version_id": I, "run_pk": I,
        "created_at": I }
    "sweeps" ["pk"] { "pk": I, "id": T, "project_id": I, "name": T, "description": T,
        "method": T, "config": T, "state": T, "seed": I, "grid_cursor": I, "trial_count": I,
        "finish_reason": T, "created_by": I, "created_at": I, "updated_at": I,
        "finished_at": I }
    "sweep_agents" ["pk"] { "pk": I, "id": T, "sweep_pk": I, "host": T, "pid": I,
        "created_by": I, "created_at": I, "heartbeat_at": I, "exited_at": I }
    "sweep_trials" ["pk"] { "pk": I, "sweep_pk": I, "number": I, "run_id": T, "params": T,
        "grid_index": I, "agent_pk": I, "stop_reason": T, "retry_requested": B,
        "retry_of": I, "created_at": I }
    "registered_models" ["id"] { "id": I, "name": T, "project_id": I, "description": T,
        "tags": T, "require_approval": B, "created_by": I, "created_at": I, "updated_at": I }
    "model_versions" ["id"] { "id": I, "model_id": I, "version": I, "stage": T,
        "artifact_version_id": I, "run_pk": I, "description": T, "metrics": T, "tags": T,
        "created_by": I, "created_at": I, "updated_at": I, "approved_by": I,
        "approved_at": I }
    "model_aliases" ["model_id", "alias"] { "model_id": I, "alias": T, "version_id": I,
        "updated_by": I, "updated_at": I }
    "model_history" ["id"] { "id": I, "model_id": I, "version": I, "action": T,
        "from_value": T, "to_value": T, "comment": T, "username": T, "at": I }
    "registry_policies" ["project_id"] { "project_id": I, "require_approval": B,
        "allow_self_approval": B, "updated_at": I }
    "mlflow_metric_log" ["run_pk", "key", "step", "timestamp_ms", "value_bits"] { "run_pk": I,
        "key": T, "step": I, "timestamp_ms": I, "value_bits": I }
    "mlflow_pending_models" ["name"] { "name": T, "description": T, "created_by": I,
        "created_at": I }
    "mlflow_model_tags" ["name", "version", "key"] { "name": T, "version": I, "key": T,
        "value": T }
    "mlflow_model_versions" ["name", "version"] { "name": T, "version": I, "source": T,
        "run_link": T, "description": T, "updated_at": I }
    "mlflow_logged_models" ["model_id"] { "model_id": T, "project_id": I, "run_pk": I,
        "source_run_pk": I, "name": T, "model_type": T, "status": T, "params": T, "tags": T,
        "created_by": I, "created_at": I, "updated_at": I, "deleted": B }
    "leases" ["name"] { "name": T, "holder": T, "acquired_at": I, "expires_at": I }
}

/// Every difference between [`TABLES`] and the database's schema, as sentences.
pub async fn differences(store: &Store) -> Result<Vec<String>, TransferError> {
    let mut live = store::live_schema(store).await?;
    let mut out = Vec::new();
    for spec in TABLES {
        let Some(mut columns) = live.remove(spec.name) else {
            out.push(format!("table {} is missing from the database", spec.name));
            continue;
        };
        for (col, ty) in spec.columns {
            match columns.remove(*col) {
                None => out.push(format!("column {}.{col} is missing", spec.name)),
                Some(declared) if !store::declared_type_holds(store, *ty, &declared) => {
                    out.push(format!(
                        "column {}.{col} is declared {declared}, expected {ty:?}",
                        spec.name
                    ))
                }
                Some(_) => {}
            }
        }
        for col in columns.keys() {
            out.push(format!(
                "column {}.{col} is not known to this version's export",
                spec.name
            ));
        }
    }
    for table in live.keys() {
        out.push(format!(
            "table {table} is not known to this version's export"
        ));
    }
    Ok(out)
}

/// Refuses a database whose schema differs from [`TABLES`], so nothing is silently skipped.
pub async fn check(store: &Store) -> Result<(), TransferError> {
    let diffs = differences(store).await?;
    if diffs.is_empty() {
        Ok(())
    } else {
        Err(TransferError::Schema(diffs.join("; ")))
    }
}
