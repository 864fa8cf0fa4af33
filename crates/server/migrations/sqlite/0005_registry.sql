-- Model registry: registered models, their versions and aliases, and the history of changes.
CREATE TABLE registered_models (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    description TEXT NOT NULL DEFAULT '',
    tags TEXT NOT NULL DEFAULT '[]',
    -- NULL: the project's policy applies.
    require_approval INTEGER,
    created_by INTEGER REFERENCES users(id) ON DELETE SET NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX registered_models_project ON registered_models(project_id);

CREATE TABLE model_versions (
    id INTEGER PRIMARY KEY,
    model_id INTEGER NOT NULL REFERENCES registered_models(id) ON DELETE CASCADE,
    version INTEGER NOT NULL,
    stage TEXT NOT NULL DEFAULT 'None',
    artifact_version_id INTEGER REFERENCES artifact_versions(id) ON DELETE SET NULL,
    run_pk INTEGER REFERENCES runs(pk) ON DELETE SET NULL,
    description TEXT NOT NULL DEFAULT '',
    metrics TEXT NOT NULL DEFAULT '{}',
    tags TEXT NOT NULL DEFAULT '[]',
    created_by INTEGER REFERENCES users(id) ON DELETE SET NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    approved_by INTEGER REFERENCES users(id) ON DELETE SET NULL,
    approved_at INTEGER,
    UNIQUE (model_id, version)
);
CREATE INDEX model_versions_stage ON model_versions(model_id, stage);

CREATE TABLE model_aliases (
    model_id INTEGER NOT NULL REFERENCES registered_models(id) ON DELETE CASCADE,
    alias TEXT NOT NULL,
    version_id INTEGER NOT NULL REFERENCES model_versions(id) ON DELETE CASCADE,
    updated_by INTEGER REFERENCES users(id) ON DELETE SET NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (model_id, alias)
);

-- Who did what to a model, when, from what to what, and why. Usernames are copied so the
-- trail survives the deletion of accounts and versions.
CREATE TABLE model_history (
    id INTEGER PRIMARY KEY,
    model_id INTEGER NOT NULL REFERENCES registered_models(id) ON DELETE CASCADE,
    version INTEGER,
    action TEXT NOT NULL,
    from_value TEXT,
    to_value TEXT,
    comment TEXT,
    username TEXT,
    at INTEGER NOT NULL
);
CREATE INDEX model_history_model ON model_history(model_id, id);

CREATE TABLE registry_policies (
    project_id INTEGER PRIMARY KEY REFERENCES projects(id) ON DELETE CASCADE,
    require_approval INTEGER NOT NULL,
    allow_self_approval INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
