-- A user's display name, given at registration.
ALTER TABLE users ADD COLUMN full_name TEXT;

-- Name-first uploads of run files: an upload URL is handed out for a path before the client
-- knows the content; the bytes (or, with object storage, the staging key they were put to)
-- wait here until the client registers the file, which checks size and hashes and attaches it.
CREATE TABLE staged_uploads (
    id TEXT PRIMARY KEY,
    run_pk INTEGER NOT NULL REFERENCES runs(pk) ON DELETE CASCADE,
    path TEXT NOT NULL,
    staging_key TEXT,
    digest TEXT,
    size INTEGER,
    md5 TEXT,
    created_by INTEGER REFERENCES users(id) ON DELETE SET NULL,
    created_at INTEGER NOT NULL,
    uploaded_at INTEGER,
    expires_at INTEGER NOT NULL
);
CREATE INDEX staged_uploads_run_path ON staged_uploads(run_pk, path);
