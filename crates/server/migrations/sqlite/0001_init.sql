-- Accounts
CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    email TEXT NOT NULL UNIQUE,
    password_hash TEXT,
    is_admin INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
);

CREATE TABLE api_keys (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    prefix TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked_at INTEGER
);
CREATE INDEX api_keys_user ON api_keys(user_id);

CREATE TABLE refresh_tokens (
    jti TEXT PRIMARY KEY,
    family TEXT NOT NULL,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    expires_at INTEGER NOT NULL,
    used_at INTEGER,
    revoked_at INTEGER
);
CREATE INDEX refresh_tokens_family ON refresh_tokens(family);

CREATE TABLE revoked_tokens (
    jti TEXT PRIMARY KEY,
    expires_at INTEGER NOT NULL
);

CREATE TABLE login_failures (
    id INTEGER PRIMARY KEY,
    subject TEXT NOT NULL,
    at INTEGER NOT NULL
);
CREATE INDEX login_failures_subject ON login_failures(subject, at);

CREATE TABLE server_settings (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE audit_events (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    event_type TEXT NOT NULL,
    category TEXT NOT NULL,
    severity TEXT NOT NULL,
    user_id INTEGER,
    username TEXT,
    ip TEXT,
    user_agent TEXT,
    method TEXT,
    path TEXT,
    resource TEXT,
    status INTEGER,
    metadata TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_events_at ON audit_events(at);

-- Projects
CREATE TABLE projects (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT '',
    visibility TEXT NOT NULL,
    owner_id INTEGER NOT NULL REFERENCES users(id),
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE project_members (
    project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role TEXT NOT NULL,
    added_at INTEGER NOT NULL,
    PRIMARY KEY (project_id, user_id)
);
CREATE INDEX project_members_user ON project_members(user_id);

-- Runs
CREATE TABLE runs (
    pk INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    state TEXT NOT NULL,
    config TEXT NOT NULL DEFAULT '{}',
    tags TEXT NOT NULL DEFAULT '[]',
    notes TEXT NOT NULL DEFAULT '',
    group_name TEXT,
    job_type TEXT,
    git_commit TEXT,
    git_branch TEXT,
    git_remote TEXT,
    git_dirty INTEGER,
    host TEXT,
    os TEXT,
    program TEXT,
    runtime TEXT NOT NULL DEFAULT '{}',
    exit_code INTEGER,
    created_by INTEGER REFERENCES users(id) ON DELETE SET NULL,
    created_at INTEGER NOT NULL,
    started_at INTEGER NOT NULL,
    finished_at INTEGER,
    heartbeat_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    stop_requested INTEGER NOT NULL DEFAULT 0,
    reaped INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX runs_project_created ON runs(project_id, created_at);
CREATE INDEX runs_state_heartbeat ON runs(state, heartbeat_at);

CREATE TABLE run_tags (
    run_pk INTEGER NOT NULL REFERENCES runs(pk) ON DELETE CASCADE,
    tag TEXT NOT NULL,
    PRIMARY KEY (run_pk, tag)
);
CREATE INDEX run_tags_tag ON run_tags(tag, run_pk);

-- Metrics: one row per (run, key) with its summary, points in compressed chunks.
CREATE TABLE metric_series (
    id INTEGER PRIMARY KEY,
    run_pk INTEGER NOT NULL REFERENCES runs(pk) ON DELETE CASCADE,
    key TEXT NOT NULL,
    count INTEGER NOT NULL DEFAULT 0,
    last_step INTEGER,
    last_value REAL,
    last_nan INTEGER NOT NULL DEFAULT 0,
    min_value REAL,
    max_value REAL,
    set_value REAL,
    set_nan INTEGER NOT NULL DEFAULT 0,
    is_set INTEGER NOT NULL DEFAULT 0,
    updated_at INTEGER NOT NULL,
    UNIQUE (run_pk, key)
);
CREATE INDEX metric_series_key ON metric_series(key, run_pk);

CREATE TABLE metric_chunks (
    series_id INTEGER NOT NULL REFERENCES metric_series(id) ON DELETE CASCADE,
    start_step INTEGER NOT NULL,
    end_step INTEGER NOT NULL,
    count INTEGER NOT NULL,
    min_step INTEGER,
    min_value REAL,
    min_ts INTEGER,
    max_step INTEGER,
    max_value REAL,
    max_ts INTEGER,
    data BLOB NOT NULL,
    blocks BLOB NOT NULL,
    PRIMARY KEY (series_id, start_step)
);

-- Logs
CREATE TABLE log_lines (
    id INTEGER PRIMARY KEY,
    run_pk INTEGER NOT NULL REFERENCES runs(pk) ON DELETE CASCADE,
    level TEXT NOT NULL,
    source TEXT NOT NULL,
    line_number INTEGER,
    ts INTEGER NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX log_lines_run ON log_lines(run_pk, id);
CREATE UNIQUE INDEX log_lines_dedup ON log_lines(run_pk, source, line_number) WHERE line_number IS NOT NULL;
