-- Artifacts: versioned manifests over the content-addressed blobs, aliases and lineage.
CREATE TABLE artifacts (
    id INTEGER PRIMARY KEY,
    project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    metadata TEXT NOT NULL DEFAULT '{}',
    tags TEXT NOT NULL DEFAULT '[]',
    created_by INTEGER REFERENCES users(id) ON DELETE SET NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (project_id, name)
);

-- A version is pending (a draft waiting for uploads, version NULL) or committed (immutable).
CREATE TABLE artifact_versions (
    id INTEGER PRIMARY KEY,
    artifact_id INTEGER NOT NULL REFERENCES artifacts(id) ON DELETE CASCADE,
    version INTEGER,
    state TEXT NOT NULL,
    digest TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    metadata TEXT NOT NULL DEFAULT '{}',
    run_pk INTEGER REFERENCES runs(pk) ON DELETE SET NULL,
    file_count INTEGER NOT NULL,
    total_size INTEGER NOT NULL,
    pending_aliases TEXT NOT NULL DEFAULT '[]',
    created_by INTEGER REFERENCES users(id) ON DELETE SET NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (artifact_id, version)
);
CREATE INDEX artifact_versions_run ON artifact_versions (run_pk);

-- Manifest entries: content (digest) or a reference (ref_uri). `pending` marks content
-- this draft must still upload.
CREATE TABLE artifact_entries (
    version_id INTEGER NOT NULL REFERENCES artifact_versions(id) ON DELETE CASCADE,
    path TEXT NOT NULL,
    digest TEXT,
    size INTEGER NOT NULL,
    ref_uri TEXT,
    ref_checksum TEXT,
    pending BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (version_id, path)
);
CREATE INDEX artifact_entries_digest ON artifact_entries (digest);

CREATE TABLE artifact_aliases (
    artifact_id INTEGER NOT NULL REFERENCES artifacts(id) ON DELETE CASCADE,
    alias TEXT NOT NULL,
    version_id INTEGER NOT NULL REFERENCES artifact_versions(id) ON DELETE CASCADE,
    updated_by INTEGER REFERENCES users(id) ON DELETE SET NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (artifact_id, alias)
);

-- Lineage inputs: runs that used a version (outputs are artifact_versions.run_pk).
CREATE TABLE artifact_usage (
    version_id INTEGER NOT NULL REFERENCES artifact_versions(id) ON DELETE CASCADE,
    run_pk INTEGER NOT NULL REFERENCES runs(pk) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (version_id, run_pk)
);
CREATE INDEX artifact_usage_run ON artifact_usage (run_pk);
