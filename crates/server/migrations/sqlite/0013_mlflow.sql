-- The MLflow API's view of projects and runs (see docs/mlflow.md).

-- A project as an MLflow experiment: the MLflow name it was created or renamed under (which
-- may hold spaces and '/', unlike project names), its life cycle and its tags.
CREATE TABLE mlflow_experiments (
    project_id INTEGER PRIMARY KEY REFERENCES projects(id) ON DELETE CASCADE,
    name TEXT NOT NULL UNIQUE,
    lifecycle_stage TEXT NOT NULL DEFAULT 'active',
    last_update_time INTEGER NOT NULL
);

CREATE TABLE mlflow_experiment_tags (
    project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (project_id, key)
);

-- Key→value tags of a run (MLflow's tags), beside its plain tags in run_tags.
CREATE TABLE run_tag_values (
    run_pk INTEGER NOT NULL REFERENCES runs(pk) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (run_pk, key)
);

-- Runs an MLflow client created (they send no heartbeats, so they are never reaped) and runs
-- an MLflow client deleted (kept, restorable, hidden from MLflow's searches).
CREATE TABLE mlflow_runs (
    run_pk INTEGER PRIMARY KEY REFERENCES runs(pk) ON DELETE CASCADE,
    lifecycle_stage TEXT NOT NULL DEFAULT 'active',
    deleted_at INTEGER
);

-- Every metric entry an MLflow client logged, several at one step included, so get-history
-- answers exactly what was logged. An entry is its (key, step, timestamp, value): a retried
-- request stores nothing twice. The value is the f64's bits, so NaN and infinities keep.
CREATE TABLE mlflow_metric_log (
    run_pk INTEGER NOT NULL REFERENCES runs(pk) ON DELETE CASCADE,
    key TEXT NOT NULL,
    step INTEGER NOT NULL,
    timestamp_ms INTEGER NOT NULL,
    value_bits INTEGER NOT NULL,
    PRIMARY KEY (run_pk, key, step, timestamp_ms, value_bits)
) WITHOUT ROWID;

-- A model an MLflow client registered before its first version: MLflow models belong to no
-- project, ours do, so it joins the registry (in its first version's run's project) then.
CREATE TABLE mlflow_pending_models (
    name TEXT PRIMARY KEY,
    description TEXT NOT NULL DEFAULT '',
    created_by INTEGER REFERENCES users(id) ON DELETE SET NULL,
    created_at INTEGER NOT NULL
);

-- Key→value tags of registered models (version 0) and of their versions.
CREATE TABLE mlflow_model_tags (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (name, version, key)
);

-- What MLflow said of a model version it created: the source URI, the run link and its own
-- description (MLflow edits a version's description; the registry keeps the first).
CREATE TABLE mlflow_model_versions (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    source TEXT NOT NULL,
    run_link TEXT NOT NULL DEFAULT '',
    description TEXT,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (name, version)
);

-- MLflow 3's logged models (`mlflow.<flavor>.log_model`). Their files are run files of the
-- run that holds them (the source run, or one made for a model logged outside a run), under
-- `.mlflow-models/<model id>/`.
CREATE TABLE mlflow_logged_models (
    model_id TEXT PRIMARY KEY,
    project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    run_pk INTEGER NOT NULL REFERENCES runs(pk) ON DELETE CASCADE,
    source_run_pk INTEGER REFERENCES runs(pk) ON DELETE SET NULL,
    name TEXT NOT NULL,
    model_type TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL,
    params TEXT NOT NULL DEFAULT '{}',
    tags TEXT NOT NULL DEFAULT '{}',
    created_by INTEGER REFERENCES users(id) ON DELETE SET NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX mlflow_logged_models_project ON mlflow_logged_models(project_id, name);
