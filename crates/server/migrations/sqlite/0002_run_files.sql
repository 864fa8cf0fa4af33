-- Content-addressed blobs (key: SHA-256 of the bytes) and files attached to runs.
CREATE TABLE blobs (
    digest TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    md5 TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE run_files (
    id INTEGER PRIMARY KEY,
    run_pk INTEGER NOT NULL REFERENCES runs(pk) ON DELETE CASCADE,
    path TEXT NOT NULL,
    digest TEXT NOT NULL REFERENCES blobs(digest),
    created_by INTEGER REFERENCES users(id) ON DELETE SET NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (run_pk, path)
);
CREATE INDEX run_files_digest ON run_files (digest);
