-- Accounts a server administrator has disabled: they cannot log in, and every token and
-- API key they held was revoked at the moment of disabling.
ALTER TABLE users ADD COLUMN disabled_at BIGINT;

-- Singleton background jobs (heartbeat reaper, sweep scheduler, retention): the replica
-- holding an unexpired lease runs them; the others wait for it to lapse.
CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    acquired_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
