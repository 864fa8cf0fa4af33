//! Storage of the model registry: the `registered_models`, `model_versions` (stages and
//! approvals), `model_aliases`, `model_history` and `registry_policies` tables. This is the
//! only place the registry's SQL lives; the service calls these functions and gets typed rows
//! back.
//!
//! Every write to a model's versions or aliases appends its history entries in the same
//! transaction. Changes to one model's versions are serialised by touching the model's row
//! first (a row lock on PostgreSQL, the write lock on SQLite).

use wanllmdb_api_types::ProjectName;
use wanllmdb_api_types::registry::{RegistryPolicy, Stage};

use crate::error::{ApiError, ApiResult};
use crate::store::Store;
use crate::{on_backend, with_tx};

const MODEL_SELECT: &str = "SELECT m.id, m.name, m.project_id, p.name AS project, m.description, m.tags, \
     m.require_approval, u.username AS created_by, m.created_at, m.updated_at, \
     (SELECT COUNT(*) FROM model_versions v WHERE v.model_id = m.id) AS version_count, \
     (SELECT MAX(v.version) FROM model_versions v WHERE v.model_id = m.id) AS latest \
     FROM registered_models m JOIN projects p ON p.id = m.project_id LEFT JOIN users u ON u.id = m.created_by";

const VERSION_SELECT: &str = "SELECT v.id, v.version, v.stage, v.description, v.metrics, v.tags, \
     v.created_by AS creator_id, cu.username AS created_by, v.created_at, au.username AS approved_by, v.approved_at, \
     r.id AS run, ap.id AS art_project_id, ap.name AS art_project, a.name AS art_name, av.version AS art_version \
     FROM model_versions v LEFT JOIN users cu ON cu.id = v.created_by LEFT JOIN users au ON au.id = v.approved_by \
     LEFT JOIN runs r ON r.pk = v.run_pk LEFT JOIN artifact_versions av ON av.id = v.artifact_version_id \
     LEFT JOIN artifacts a ON a.id = av.artifact_id LEFT JOIN projects ap ON ap.id = a.project_id";

/// Appends a history entry inside a transaction: model id, version, action, from, to,
/// comment, username, time.
const HISTORY_SQL: &str = "INSERT INTO model_history (model_id, version, action, from_value, to_value, comment, username, at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";

/// Touches a model's row: the lock that serialises changes to its versions and aliases.
const TOUCH_MODEL_SQL: &str = "UPDATE registered_models SET updated_at = $1 WHERE id = $2";

/// One history entry, before it is written.
pub(super) struct Change<'a> {
    pub(super) version: Option<i64>,
    pub(super) action: &'static str,
    pub(super) from: Option<String>,
    pub(super) to: Option<String>,
    pub(super) comment: Option<&'a str>,
}

/// Who changes the registry, and when: what a write and its history entries share.
pub(super) struct Editor<'a> {
    pub(super) user_id: i64,
    pub(super) username: &'a str,
    pub(super) now: i64,
}

/// Writes a [`Change`] of model `$model` by `$editor` with `$tx` (inside `with_tx!`).
macro_rules! record_change {
    ($tx:ident, $model:expr, $editor:expr, $c:expr) => {{
        let c = &$c;
        sqlx::query(HISTORY_SQL)
            .bind($model)
            .bind(c.version)
            .bind(c.action)
            .bind(&c.from)
            .bind(&c.to)
            .bind(c.comment)
            .bind($editor.username)
            .bind($editor.now)
            .execute(&mut *$tx)
            .await?;
    }};
}

/// A model as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(super) struct ModelRow {
    pub(super) id: i64,
    pub(super) name: String,
    pub(super) project_id: i64,
    #[sqlx(try_from = "String")]
    pub(super) project: ProjectName,
    pub(super) description: String,
    pub(super) tags: String,
    pub(super) require_approval: Option<bool>,
    pub(super) created_by: Option<String>,
    pub(super) created_at: i64,
    pub(super) updated_at: i64,
    pub(super) version_count: i64,
    pub(super) latest: Option<i64>,
}

/// A history entry as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(super) struct EventRow {
    pub(super) id: i64,
    pub(super) version: Option<i64>,
    pub(super) action: String,
    pub(super) from_value: Option<String>,
    pub(super) to_value: Option<String>,
    pub(super) comment: Option<String>,
    pub(super) username: Option<String>,
    pub(super) at: i64,
}

/// A version as stored, with the names it links to.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(super) struct VersionRow {
    pub(super) id: i64,
    pub(super) version: i64,
    pub(super) stage: String,
    pub(super) description: String,
    pub(super) metrics: String,
    pub(super) tags: String,
    pub(super) creator_id: Option<i64>,
    pub(super) created_by: Option<String>,
    pub(super) created_at: i64,
    pub(super) approved_by: Option<String>,
    pub(super) approved_at: Option<i64>,
    pub(super) run: Option<String>,
    pub(super) art_project_id: Option<i64>,
    pub(super) art_project: Option<String>,
    pub(super) art_name: Option<String>,
    pub(super) art_version: Option<i64>,
}

// ---- models ----

/// The model named `name` (model names are unique on the server).
pub(super) async fn find_model(store: &Store, name: &str) -> ApiResult<Option<ModelRow>> {
    let sql = format!("{MODEL_SELECT} WHERE m.name = $1");
    Ok(on_backend!(store, read, |pool| {
        sqlx::query_as::<_, ModelRow>(sqlx::AssertSqlSafe(sql))
            .bind(name)
            .fetch_optional(pool)
            .await?
    }))
}

/// Up to 1000 models, by name, in projects that are public, that `user_id` is a member of, or
/// any project for an admin; only in project `project` and only those whose name or
/// description holds `search` (any case) when those are given.
pub(super) async fn visible_models(
    store: &Store,
    is_admin: bool,
    user_id: Option<i64>,
    project: Option<&str>,
    search: Option<&str>,
) -> ApiResult<Vec<ModelRow>> {
    // `project_members` belongs to projects.
    let mut sql = format!(
        "{MODEL_SELECT} WHERE (p.visibility = 'public' OR $1 OR EXISTS (SELECT 1 FROM project_members pm WHERE pm.project_id = p.id AND pm.user_id = $2))"
    );
    if project.is_some() {
        sql.push_str(" AND p.name = $3");
    } else {
        sql.push_str(" AND $3 = $3");
    }
    let pattern = search.map(|s| {
        format!(
            "%{}%",
            s.to_lowercase()
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        )
    });
    sql.push_str(" AND ($4 IS NULL OR LOWER(m.name) LIKE $4 ESCAPE '\\' OR LOWER(m.description) LIKE $4 ESCAPE '\\') ORDER BY m.name LIMIT 1000");
    Ok(on_backend!(store, read, |pool| {
        sqlx::query_as::<_, ModelRow>(sqlx::AssertSqlSafe(sql))
            .bind(is_admin)
            .bind(user_id.unwrap_or(-1))
            .bind(project.unwrap_or_default())
            .bind(pattern)
            .fetch_all(pool)
            .await?
    }))
}

/// A new model's columns.
pub(super) struct NewModel<'a> {
    pub(super) name: &'a str,
    pub(super) project_id: i64,
    pub(super) description: &'a str,
    /// Tags as a JSON list.
    pub(super) tags: &'a str,
    pub(super) require_approval: Option<bool>,
}

/// Inserts a model and its `registered` history entry in one transaction (a Conflict when
/// the name is taken).
pub(super) async fn insert_model(
    store: &Store,
    model: &NewModel<'_>,
    editor: &Editor<'_>,
    change: &Change<'_>,
) -> ApiResult<()> {
    const INSERT_REGISTERED_MODELS: &str = "INSERT INTO registered_models (name, project_id, description, tags, require_approval, created_by, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING id";
    with_tx!(store, |tx| {
        let id: i64 = sqlx::query_scalar(INSERT_REGISTERED_MODELS)
            .bind(model.name)
            .bind(model.project_id)
            .bind(model.description)
            .bind(model.tags)
            .bind(model.require_approval)
            .bind(editor.user_id)
            .bind(editor.now)
            .fetch_one(&mut *tx)
            .await?;
        record_change!(tx, id, editor, change);
    });
    Ok(())
}

/// Sets a model's description and tags (JSON list) where given, and its approval setting,
/// with a history entry, in one transaction.
pub(super) async fn update_model(
    store: &Store,
    model_id: i64,
    description: Option<&str>,
    tags: Option<&str>,
    require_approval: Option<bool>,
    editor: &Editor<'_>,
    change: &Change<'_>,
) -> ApiResult<()> {
    const UPDATE_REGISTERED_MODELS: &str = "UPDATE registered_models SET description = COALESCE($1, description), tags = COALESCE($2, tags), require_approval = $3, updated_at = $4 WHERE id = $5";
    with_tx!(store, |tx| {
        sqlx::query(UPDATE_REGISTERED_MODELS)
            .bind(description)
            .bind(tags)
            .bind(require_approval)
            .bind(editor.now)
            .bind(model_id)
            .execute(&mut *tx)
            .await?;
        record_change!(tx, model_id, editor, change);
    });
    Ok(())
}

/// Renames a model (a name taken is a conflict).
pub(super) async fn rename_model(
    store: &Store,
    model_id: i64,
    new_name: &str,
    editor: &Editor<'_>,
    change: &Change<'_>,
) -> ApiResult<()> {
    const UPDATE_REGISTERED_MODELS: &str =
        "UPDATE registered_models SET name = $1, updated_at = $2 WHERE id = $3";
    with_tx!(store, |tx| {
        sqlx::query(UPDATE_REGISTERED_MODELS)
            .bind(new_name)
            .bind(editor.now)
            .bind(model_id)
            .execute(&mut *tx)
            .await?;
        record_change!(tx, model_id, editor, change);
    });
    Ok(())
}

/// Deletes a model; its versions, aliases and history go with it (cascade).
pub(super) async fn delete_model(store: &Store, model_id: i64) -> ApiResult<()> {
    store
        .execute_with("DELETE FROM registered_models WHERE id = $1", model_id)
        .await?;
    Ok(())
}

/// The numbers of a model's versions in Production, newest first.
pub(super) async fn production_numbers(store: &Store, model_id: i64) -> ApiResult<Vec<i64>> {
    const SELECT_MODEL_VERSIONS: &str = "SELECT version FROM model_versions WHERE model_id = $1 AND stage = 'Production' ORDER BY version DESC";
    Ok(on_backend!(store, read, |pool| {
        sqlx::query_scalar(SELECT_MODEL_VERSIONS)
            .bind(model_id)
            .fetch_all(pool)
            .await?
    }))
}

// ---- versions ----

/// The one parameter (`$2`) of a version query's filter.
#[derive(Debug, Clone, Copy)]
enum Arg<'a> {
    None,
    Text(&'a str),
    Int(i64),
}

/// Versions of a model matching `filter` (which may end in ORDER BY / LIMIT).
async fn versions_where(
    store: &Store,
    model_id: i64,
    filter: &str,
    arg: Arg<'_>,
) -> ApiResult<Vec<VersionRow>> {
    let sql = format!("{VERSION_SELECT} WHERE v.model_id = $1 {filter}");
    Ok(on_backend!(store, read, |pool| {
        let q = sqlx::query_as::<_, VersionRow>(sqlx::AssertSqlSafe(sql)).bind(model_id);
        let q = match arg {
            Arg::None => q,
            Arg::Text(t) => q.bind(t.to_string()),
            Arg::Int(n) => q.bind(n),
        };
        q.fetch_all(pool).await?
    }))
}

/// The first version of a model matching `filter`.
async fn version_where(
    store: &Store,
    model_id: i64,
    filter: &str,
    arg: Arg<'_>,
) -> ApiResult<Option<VersionRow>> {
    Ok(versions_where(store, model_id, filter, arg)
        .await?
        .into_iter()
        .next())
}

/// The newest version of a model.
pub(super) async fn latest_version(store: &Store, model_id: i64) -> ApiResult<Option<VersionRow>> {
    version_where(
        store,
        model_id,
        "ORDER BY v.version DESC LIMIT 1",
        Arg::None,
    )
    .await
}

/// The version an alias of a model points at.
pub(super) async fn aliased_version(
    store: &Store,
    model_id: i64,
    alias: &str,
) -> ApiResult<Option<VersionRow>> {
    version_where(
        store,
        model_id,
        "AND v.id = (SELECT al.version_id FROM model_aliases al WHERE al.model_id = v.model_id AND al.alias = $2)",
        Arg::Text(alias),
    )
    .await
}

/// The newest version of a model in `stage`.
pub(super) async fn newest_in_stage(
    store: &Store,
    model_id: i64,
    stage: Stage,
) -> ApiResult<Option<VersionRow>> {
    version_where(
        store,
        model_id,
        "AND v.stage = $2 ORDER BY v.version DESC LIMIT 1",
        Arg::Text(stage.as_str()),
    )
    .await
}

/// Version number `n` of a model.
pub(super) async fn numbered_version(
    store: &Store,
    model_id: i64,
    n: i64,
) -> ApiResult<Option<VersionRow>> {
    version_where(store, model_id, "AND v.version = $2", Arg::Int(n)).await
}

/// The versions of a model, newest first; only those in `stage` when given.
pub(super) async fn versions(
    store: &Store,
    model_id: i64,
    stage: Option<Stage>,
) -> ApiResult<Vec<VersionRow>> {
    match stage {
        Some(st) => {
            versions_where(
                store,
                model_id,
                "AND v.stage = $2 ORDER BY v.version DESC",
                Arg::Text(st.as_str()),
            )
            .await
        }
        None => versions_where(store, model_id, "ORDER BY v.version DESC", Arg::None).await,
    }
}

/// A new version's columns (its number is the next one, given when it is inserted).
pub(super) struct NewVersion<'a> {
    pub(super) artifact_version_id: i64,
    pub(super) run_pk: Option<i64>,
    pub(super) description: Option<&'a str>,
    /// Metrics as a JSON object.
    pub(super) metrics: &'a str,
    /// Tags as a JSON list.
    pub(super) tags: &'a str,
    /// `PROJECT/ARTIFACT:vN`, for the history.
    pub(super) artifact_label: &'a str,
}

/// Inserts the next version of a model and its `version_created` history entry in one
/// transaction; returns its number.
pub(super) async fn insert_version(
    store: &Store,
    model_id: i64,
    version: &NewVersion<'_>,
    editor: &Editor<'_>,
) -> ApiResult<i64> {
    const NEXT_VERSION_NUMBER: &str =
        "SELECT COALESCE(MAX(version), 0) + 1 FROM model_versions WHERE model_id = $1";
    const INSERT_MODEL_VERSIONS: &str = "INSERT INTO model_versions (model_id, version, artifact_version_id, run_pk, description, metrics, tags, created_by, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)";
    Ok(with_tx!(store, |tx| {
        sqlx::query(TOUCH_MODEL_SQL)
            .bind(editor.now)
            .bind(model_id)
            .execute(&mut *tx)
            .await?;
        let n: i64 = sqlx::query_scalar(NEXT_VERSION_NUMBER)
            .bind(model_id)
            .fetch_one(&mut *tx)
            .await?;
        sqlx::query(INSERT_MODEL_VERSIONS)
            .bind(model_id)
            .bind(n)
            .bind(version.artifact_version_id)
            .bind(version.run_pk)
            .bind(version.description.unwrap_or_default())
            .bind(version.metrics)
            .bind(version.tags)
            .bind(editor.user_id)
            .bind(editor.now)
            .execute(&mut *tx)
            .await?;
        let change = Change {
            version: Some(n),
            action: "version_created",
            from: None,
            to: Some(version.artifact_label.to_string()),
            comment: version.description,
        };
        record_change!(tx, model_id, editor, change);
        n
    }))
}

/// Deletes a version (its aliases go with it) with a history entry, in one transaction.
pub(super) async fn delete_version(
    store: &Store,
    model_id: i64,
    version_id: i64,
    editor: &Editor<'_>,
    change: &Change<'_>,
) -> ApiResult<()> {
    with_tx!(store, |tx| {
        sqlx::query("DELETE FROM model_versions WHERE id = $1")
            .bind(version_id)
            .execute(&mut *tx)
            .await?;
        record_change!(tx, model_id, editor, change);
    });
    Ok(())
}

// ---- stages and approvals ----

/// Whether moving a version from stage `from` to `to` voids its approval for Production: an
/// approval is for one promotion, so leaving Production, or going back to Staging or None,
/// voids it (the promotion it allowed stands).
fn voids_approval(from: &str, to: Stage) -> bool {
    (from == Stage::Production.as_str() && to != Stage::Production)
        || matches!(to, Stage::Staging | Stage::None)
}

/// A move of one version to another stage.
pub(super) struct Transition<'a> {
    /// The model's name, for the error when the version has gone.
    pub(super) model: &'a str,
    pub(super) version_id: i64,
    pub(super) number: i64,
    pub(super) to: Stage,
    /// Archive the other versions in Production (when moving to Production).
    pub(super) archive_existing: bool,
    pub(super) comment: Option<&'a str>,
    /// Who approved the version, as read before the move.
    pub(super) approved_by: Option<&'a str>,
}

/// Moves a version to another stage in one transaction under the model's lock, with its
/// history: archives the other versions in Production first when asked, and voids the
/// version's approval when the move ends it. Returns the numbers of the versions archived.
pub(super) async fn transition(
    store: &Store,
    model_id: i64,
    t: &Transition<'_>,
    editor: &Editor<'_>,
) -> ApiResult<Vec<i64>> {
    const SELECT_MODEL_VERSIONS: &str = "SELECT v.version, u.username FROM model_versions v LEFT JOIN users u ON u.id = v.approved_by WHERE v.model_id = $1 AND v.stage = $3 AND v.id <> $2 ORDER BY v.version";
    const UPDATE_MODEL_VERSIONS: &str = "UPDATE model_versions SET stage = 'Archived', approved_by = NULL, approved_at = NULL, updated_at = $1 WHERE model_id = $2 AND version = $3";
    const VOID_APPROVAL: &str = "UPDATE model_versions SET approved_by = NULL, approved_at = NULL WHERE id = $1 AND approved_by IS NOT NULL";
    let number = t.number;
    Ok(with_tx!(store, |tx| {
        // The model's row lock serialises racing promotions.
        sqlx::query(TOUCH_MODEL_SQL)
            .bind(editor.now)
            .bind(model_id)
            .execute(&mut *tx)
            .await?;
        let from: Option<String> =
            sqlx::query_scalar("SELECT stage FROM model_versions WHERE id = $1")
                .bind(t.version_id)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(from) = from else {
            return Err(ApiError::not_found(format!(
                "version v{number} of model {}",
                t.model
            )));
        };
        let mut archived = Vec::new();
        // Archiving the versions already in the target stage (Staging or Production).
        if matches!(t.to, Stage::Production | Stage::Staging) && t.archive_existing {
            let others: Vec<(i64, Option<String>)> = sqlx::query_as(SELECT_MODEL_VERSIONS)
                .bind(model_id)
                .bind(t.version_id)
                .bind(t.to.as_str())
                .fetch_all(&mut *tx)
                .await?;
            for (v, approver) in others {
                sqlx::query(UPDATE_MODEL_VERSIONS)
                    .bind(editor.now)
                    .bind(model_id)
                    .bind(v)
                    .execute(&mut *tx)
                    .await?;
                let comment = format!("archived when v{number} was moved to {}", t.to.as_str());
                let change = Change {
                    version: Some(v),
                    action: "transition",
                    from: Some(t.to.as_str().into()),
                    to: Some("Archived".into()),
                    comment: Some(comment.as_str()),
                };
                record_change!(tx, model_id, editor, change);
                if approver.is_some() {
                    let change = Change {
                        version: Some(v),
                        action: "approval_voided",
                        from: approver,
                        to: None,
                        comment: Some("moved from Production to Archived"),
                    };
                    record_change!(tx, model_id, editor, change);
                }
                archived.push(v);
            }
        }
        sqlx::query("UPDATE model_versions SET stage = $1, updated_at = $2 WHERE id = $3")
            .bind(t.to.as_str())
            .bind(editor.now)
            .bind(t.version_id)
            .execute(&mut *tx)
            .await?;
        let change = Change {
            version: Some(number),
            action: "transition",
            from: Some(from.clone()),
            to: Some(t.to.as_str().into()),
            comment: t.comment,
        };
        record_change!(tx, model_id, editor, change);
        if voids_approval(&from, t.to) {
            let voided = sqlx::query(VOID_APPROVAL)
                .bind(t.version_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if voided > 0 {
                let why = format!("moved from {from} to {}", t.to.as_str());
                let change = Change {
                    version: Some(number),
                    action: "approval_voided",
                    from: t.approved_by.map(str::to_string),
                    to: None,
                    comment: Some(why.as_str()),
                };
                record_change!(tx, model_id, editor, change);
            }
        }
        archived
    }))
}

/// Records the editor's approval of a version (`granted`) or clears it, with a history entry,
/// in one transaction.
pub(super) async fn set_approval(
    store: &Store,
    model_id: i64,
    version_id: i64,
    granted: bool,
    editor: &Editor<'_>,
    change: &Change<'_>,
) -> ApiResult<()> {
    const UPDATE_MODEL_VERSIONS: &str = "UPDATE model_versions SET approved_by = $1, approved_at = $2, updated_at = $3 WHERE id = $4";
    let (approver, at) = if granted {
        (Some(editor.user_id), Some(editor.now))
    } else {
        (None, None)
    };
    with_tx!(store, |tx| {
        sqlx::query(UPDATE_MODEL_VERSIONS)
            .bind(approver)
            .bind(at)
            .bind(editor.now)
            .bind(version_id)
            .execute(&mut *tx)
            .await?;
        record_change!(tx, model_id, editor, change);
    });
    Ok(())
}

/// Usernames of the owners and admins of a project, who may approve its models' versions.
pub(super) async fn approvers(store: &Store, project_id: i64) -> ApiResult<Vec<String>> {
    // `project_members` belongs to projects, `users` to auth.
    const SELECT_PROJECT_MEMBERS: &str = "SELECT u.username FROM project_members m JOIN users u ON u.id = m.user_id WHERE m.project_id = $1 AND m.role IN ('owner', 'admin') ORDER BY u.username";
    Ok(on_backend!(store, read, |pool| {
        sqlx::query_scalar(SELECT_PROJECT_MEMBERS)
            .bind(project_id)
            .fetch_all(pool)
            .await?
    }))
}

// ---- aliases ----

/// The aliases of a model as (version id, alias), by alias.
pub(super) async fn alias_targets(store: &Store, model_id: i64) -> ApiResult<Vec<(i64, String)>> {
    Ok(on_backend!(store, read, |pool| {
        sqlx::query_as(
            "SELECT version_id, alias FROM model_aliases WHERE model_id = $1 ORDER BY alias",
        )
        .bind(model_id)
        .fetch_all(pool)
        .await?
    }))
}

/// Points an alias at version `number` (id `version_id`), moving it from another, with a
/// history entry saying where it was, in one transaction under the model's lock.
pub(super) async fn point_alias(
    store: &Store,
    model_id: i64,
    alias: &str,
    version_id: i64,
    number: i64,
    comment: Option<&str>,
    editor: &Editor<'_>,
) -> ApiResult<()> {
    const SELECT_MODEL_ALIASES: &str = "SELECT v.version FROM model_aliases al JOIN model_versions v ON v.id = al.version_id WHERE al.model_id = $1 AND al.alias = $2";
    const INSERT_MODEL_ALIASES: &str = "INSERT INTO model_aliases (model_id, alias, version_id, updated_by, updated_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (model_id, alias) DO UPDATE SET version_id = excluded.version_id, updated_by = excluded.updated_by, updated_at = excluded.updated_at";
    with_tx!(store, |tx| {
        sqlx::query(TOUCH_MODEL_SQL)
            .bind(editor.now)
            .bind(model_id)
            .execute(&mut *tx)
            .await?;
        let before: Option<i64> = sqlx::query_scalar(SELECT_MODEL_ALIASES)
            .bind(model_id)
            .bind(alias)
            .fetch_optional(&mut *tx)
            .await?;
        sqlx::query(INSERT_MODEL_ALIASES)
            .bind(model_id)
            .bind(alias)
            .bind(version_id)
            .bind(editor.user_id)
            .bind(editor.now)
            .execute(&mut *tx)
            .await?;
        let change = Change {
            version: Some(number),
            action: "alias_set",
            from: before.map(|v| format!("{alias} was v{v}")),
            to: Some(alias.to_string()),
            comment,
        };
        record_change!(tx, model_id, editor, change);
    });
    Ok(())
}

/// Removes an alias of a model with a history entry, in one transaction.
pub(super) async fn delete_alias(
    store: &Store,
    model_id: i64,
    alias: &str,
    editor: &Editor<'_>,
    change: &Change<'_>,
) -> ApiResult<()> {
    with_tx!(store, |tx| {
        sqlx::query("DELETE FROM model_aliases WHERE model_id = $1 AND alias = $2")
            .bind(model_id)
            .bind(alias)
            .execute(&mut *tx)
            .await?;
        record_change!(tx, model_id, editor, change);
    });
    Ok(())
}

// ---- history and policy ----

/// A model's history, oldest first; only that of version `number` when given.
pub(super) async fn history(
    store: &Store,
    model_id: i64,
    number: Option<i64>,
) -> ApiResult<Vec<EventRow>> {
    const SELECT_MODEL_HISTORY: &str = "SELECT id, version, action, from_value, to_value, comment, username, at FROM model_history WHERE model_id = $1 AND ($2 IS NULL OR version = $2) ORDER BY id";
    Ok(on_backend!(store, read, |pool| {
        sqlx::query_as(SELECT_MODEL_HISTORY)
            .bind(model_id)
            .bind(number)
            .fetch_all(pool)
            .await?
    }))
}

/// A project's stored registry policy; None when it never set one.
pub(super) async fn policy(store: &Store, project_id: i64) -> ApiResult<Option<RegistryPolicy>> {
    const SELECT_REGISTRY_POLICIES: &str =
        "SELECT require_approval, allow_self_approval FROM registry_policies WHERE project_id = $1";
    let row: Option<(bool, bool)> = on_backend!(store, read, |pool| {
        sqlx::query_as(SELECT_REGISTRY_POLICIES)
            .bind(project_id)
            .fetch_optional(pool)
            .await?
    });
    Ok(
        row.map(|(require_approval, allow_self_approval)| RegistryPolicy {
            require_approval,
            allow_self_approval,
        }),
    )
}

/// Stores a project's registry policy, replacing any before it.
pub(super) async fn set_policy(
    store: &Store,
    project_id: i64,
    policy: &RegistryPolicy,
    now: i64,
) -> ApiResult<()> {
    const INSERT_REGISTRY_POLICIES: &str = "INSERT INTO registry_policies (project_id, require_approval, allow_self_approval, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (project_id) DO UPDATE SET require_approval = excluded.require_approval, allow_self_approval = excluded.allow_self_approval, updated_at = excluded.updated_at";
    on_backend!(store, write, |pool| {
        sqlx::query(INSERT_REGISTRY_POLICIES)
            .bind(project_id)
            .bind(policy.require_approval)
            .bind(policy.allow_self_approval)
            .bind(now)
            .execute(pool)
            .await?;
    });
    Ok(())
}
