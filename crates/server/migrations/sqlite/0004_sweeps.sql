-- Sweeps: a search over hyperparameters, the trials it handed out and the agents running them.
CREATE TABLE sweeps (
    pk INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    method TEXT NOT NULL,
    config TEXT NOT NULL,
    state TEXT NOT NULL,
    seed INTEGER NOT NULL,
    -- The next grid point never handed out (grid sweeps).
    grid_cursor INTEGER NOT NULL DEFAULT 0,
    -- Points drawn so far (retries excluded); enforces run_cap.
    trial_count INTEGER NOT NULL DEFAULT 0,
    finish_reason TEXT,
    created_by INTEGER REFERENCES users(id) ON DELETE SET NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    finished_at INTEGER
);
CREATE INDEX sweeps_project ON sweeps(project_id, created_at);

CREATE TABLE sweep_agents (
    pk INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    sweep_pk INTEGER NOT NULL REFERENCES sweeps(pk) ON DELETE CASCADE,
    host TEXT NOT NULL DEFAULT '',
    pid INTEGER,
    created_by INTEGER REFERENCES users(id) ON DELETE SET NULL,
    created_at INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL,
    exited_at INTEGER
);
CREATE INDEX sweep_agents_sweep ON sweep_agents(sweep_pk);

-- A trial reserves a run id before the run exists; the run row (joined by id) says how it went.
CREATE TABLE sweep_trials (
    pk INTEGER PRIMARY KEY,
    sweep_pk INTEGER NOT NULL REFERENCES sweeps(pk) ON DELETE CASCADE,
    number INTEGER NOT NULL,
    run_id TEXT NOT NULL UNIQUE,
    params TEXT NOT NULL,
    grid_index INTEGER,
    agent_pk INTEGER REFERENCES sweep_agents(pk) ON DELETE SET NULL,
    -- Set when the controller decided to stop the run (e.g. early-terminated).
    stop_reason TEXT,
    -- A failed trial queued to be tried again; a retry names the trial it repeats.
    retry_requested INTEGER NOT NULL DEFAULT 0,
    retry_of INTEGER,
    created_at INTEGER NOT NULL,
    UNIQUE (sweep_pk, number)
);

ALTER TABLE runs ADD COLUMN end_reason TEXT;
