-- Usernames and emails are unique whatever their case: `ADMIN` and `admin` are one account.
-- (The server refuses to start, naming them, when existing accounts differ only in case.)
CREATE UNIQUE INDEX users_username_nocase ON users (lower(username));
CREATE UNIQUE INDEX users_email_nocase ON users (lower(email));

-- The pair a refresh token was rotated into, so the same token presented again within the
-- grace window (two tabs, a retried request) gets that pair instead of ending the session.
ALTER TABLE refresh_tokens ADD COLUMN rotated_jti TEXT;
ALTER TABLE refresh_tokens ADD COLUMN rotated_access_jti TEXT;
ALTER TABLE refresh_tokens ADD COLUMN rotated_iat BIGINT;
