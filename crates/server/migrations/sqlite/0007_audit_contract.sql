-- Audit events take their published names: event types such as auth.login.failed, five
-- categories (authentication, authorization, data_modification, data_access, security), five
-- severities (info, low, medium, high, critical), the object split into resource_type and
-- resource_id, and status as success/failure/error with the HTTP status in http_status. The
-- name the server recorded the event under stays in action. The table below is the server's
-- event catalog (crates/server/src/audit/catalog.rs) as of this migration.

ALTER TABLE audit_events RENAME COLUMN status TO http_status;
ALTER TABLE audit_events ADD COLUMN status TEXT NOT NULL DEFAULT 'success';
ALTER TABLE audit_events ADD COLUMN action TEXT NOT NULL DEFAULT '';
ALTER TABLE audit_events ADD COLUMN resource_type TEXT;
ALTER TABLE audit_events ADD COLUMN resource_id TEXT;

UPDATE audit_events SET
    action = event_type,
    status = CASE WHEN http_status >= 500 THEN 'error' WHEN http_status >= 400 THEN 'failure' ELSE 'success' END,
    resource_type = CASE WHEN instr(resource, ':') > 0 THEN substr(resource, 1, instr(resource, ':') - 1) END,
    resource_id = CASE WHEN instr(resource, ':') > 0 THEN substr(resource, instr(resource, ':') + 1) ELSE resource END;

CREATE TEMP TABLE audit_catalog (
    action TEXT NOT NULL,
    when_category TEXT,
    when_severity TEXT,
    event_type TEXT NOT NULL,
    category TEXT NOT NULL,
    severity TEXT NOT NULL,
    resource_type TEXT
);
INSERT INTO audit_catalog (action, when_category, when_severity, event_type, category, severity, resource_type) VALUES
    ('login_success', NULL, NULL, 'auth.login.success', 'authentication', 'info', 'user'),
    ('login_failure', NULL, NULL, 'auth.login.failed', 'authentication', 'medium', 'user'),
    ('login_rate_limited', NULL, NULL, 'auth.login.failed', 'authentication', 'high', 'user'),
    ('logout', NULL, NULL, 'auth.logout', 'authentication', 'info', 'user'),
    ('password_change', NULL, NULL, 'auth.password.change', 'authentication', 'low', 'user'),
    ('password_change_failure', NULL, NULL, 'auth.password.change_failed', 'authentication', 'medium', 'user'),
    ('user_register', NULL, NULL, 'auth.register', 'authentication', 'low', 'user'),
    ('authentication_failed', NULL, NULL, 'auth.token.invalid', 'authentication', 'medium', NULL),
    ('api_key_created', NULL, NULL, 'api_key.create', 'authentication', 'low', 'api_key'),
    ('api_key_revoked', 'admin', NULL, 'api_key.revoke', 'security', 'medium', 'api_key'),
    ('api_key_revoked', NULL, NULL, 'api_key.revoke', 'authentication', 'low', 'api_key'),
    ('access_denied', NULL, NULL, 'authz.access_denied', 'authorization', 'medium', NULL),
    ('refresh_token_reuse', NULL, NULL, 'security.suspicious', 'security', 'critical', NULL),
    ('user_created', NULL, NULL, 'user.create', 'security', 'medium', 'user'),
    ('user_disabled', NULL, NULL, 'user.disable', 'security', 'medium', 'user'),
    ('user_enabled', NULL, NULL, 'user.enable', 'security', 'medium', 'user'),
    ('user_promoted', NULL, NULL, 'user.promote', 'security', 'high', 'user'),
    ('user_demoted', NULL, NULL, 'user.demote', 'security', 'medium', 'user'),
    ('password_reset', NULL, NULL, 'user.password_reset', 'security', 'high', 'user'),
    ('member_add', NULL, NULL, 'member.add', 'security', 'medium', 'project'),
    ('member_update', NULL, NULL, 'member.update', 'security', 'medium', 'project'),
    ('member_remove', NULL, NULL, 'member.remove', 'security', 'medium', 'project'),
    ('registry_policy_change', NULL, NULL, 'registry_policy.update', 'security', 'medium', 'project'),
    ('project_create', NULL, NULL, 'project.create', 'data_modification', 'low', 'project'),
    ('project_update', NULL, 'warning', 'project.update', 'data_modification', 'high', 'project'),
    ('project_update', NULL, NULL, 'project.update', 'data_modification', 'low', 'project'),
    ('project_delete', NULL, NULL, 'project.delete', 'data_modification', 'high', 'project'),
    ('run_create', NULL, NULL, 'run.create', 'data_modification', 'info', 'run'),
    ('run_resume', NULL, NULL, 'run.resume', 'data_modification', 'info', 'run'),
    ('run_update', NULL, NULL, 'run.update', 'data_modification', 'low', 'run'),
    ('run_tag_add', NULL, NULL, 'run.tag.add', 'data_modification', 'low', 'run'),
    ('run_tag_remove', NULL, NULL, 'run.tag.remove', 'data_modification', 'low', 'run'),
    ('run_stop', NULL, NULL, 'run.stop', 'data_modification', 'info', 'run'),
    ('run_finish', NULL, NULL, 'run.finish', 'data_modification', 'info', 'run'),
    ('run_delete', NULL, NULL, 'run.delete', 'data_modification', 'medium', 'run'),
    ('run_file_upload', NULL, NULL, 'run_file.create', 'data_modification', 'low', 'run'),
    ('run_file_register', NULL, NULL, 'run_file.create', 'data_modification', 'low', 'run_file'),
    ('run_file_delete', NULL, NULL, 'run_file.delete', 'data_modification', 'medium', 'run_file'),
    ('run_file_download', NULL, NULL, 'run_file.download', 'data_access', 'low', 'run_file'),
    ('artifact_create', NULL, NULL, 'artifact.create', 'data_modification', 'low', 'artifact'),
    ('artifact_update', NULL, NULL, 'artifact.update', 'data_modification', 'low', 'artifact'),
    ('artifact_delete', NULL, NULL, 'artifact.delete', 'data_modification', 'medium', 'artifact'),
    ('artifact_version_create', NULL, NULL, 'artifact_version.create', 'data_modification', 'low', 'artifact_version'),
    ('artifact_version_update', NULL, NULL, 'artifact_version.update', 'data_modification', 'low', 'artifact_version'),
    ('artifact_version_delete', NULL, NULL, 'artifact_version.delete', 'data_modification', 'medium', 'artifact_version'),
    ('artifact_alias_set', NULL, NULL, 'artifact_alias.set', 'data_modification', 'low', 'artifact_alias'),
    ('artifact_alias_remove', NULL, NULL, 'artifact_alias.remove', 'data_modification', 'low', 'artifact_alias'),
    ('artifact_download', NULL, NULL, 'artifact.download', 'data_access', 'low', 'artifact_version'),
    ('model_register', NULL, NULL, 'model.create', 'data_modification', 'low', 'model'),
    ('model_update', NULL, NULL, 'model.update', 'data_modification', 'low', 'model'),
    ('model_delete', NULL, NULL, 'model.delete', 'data_modification', 'medium', 'model'),
    ('model_version_create', NULL, NULL, 'model_version.create', 'data_modification', 'low', 'model_version'),
    ('model_version_delete', NULL, NULL, 'model_version.delete', 'data_modification', 'medium', 'model_version'),
    ('model_transition', NULL, NULL, 'model_version.transition', 'data_modification', 'medium', 'model_version'),
    ('model_approve', NULL, NULL, 'model_version.approve', 'data_modification', 'medium', 'model_version'),
    ('model_approval_revoke', NULL, NULL, 'model_version.approval_revoke', 'data_modification', 'medium', 'model_version'),
    ('model_alias_set', NULL, NULL, 'model_alias.set', 'data_modification', 'low', 'model'),
    ('model_alias_remove', NULL, NULL, 'model_alias.remove', 'data_modification', 'low', 'model'),
    ('sweep_create', NULL, NULL, 'sweep.create', 'data_modification', 'low', 'sweep'),
    ('sweep_state_change', NULL, NULL, 'sweep.update', 'data_modification', 'low', 'sweep'),
    ('sweep_retry_failed', NULL, NULL, 'sweep.retry', 'data_modification', 'low', 'sweep'),
    ('sweep_delete', NULL, NULL, 'sweep.delete', 'data_modification', 'medium', 'sweep'),
    ('blob_gc', NULL, NULL, 'blob.gc', 'data_modification', 'medium', NULL);

-- Entries with a condition (no name has more than one) first, then the plain ones; the
-- second pass maps only rows not mapped yet (their event_type is still the recorded name).
UPDATE audit_events SET
    event_type = c.event_type, category = c.category, severity = c.severity,
    resource_type = COALESCE(c.resource_type, audit_events.resource_type)
FROM audit_catalog c
WHERE c.action = audit_events.action
    AND (c.when_category = audit_events.category OR c.when_severity = audit_events.severity);
UPDATE audit_events SET
    event_type = c.event_type, category = c.category, severity = c.severity,
    resource_type = COALESCE(c.resource_type, audit_events.resource_type)
FROM audit_catalog c
WHERE c.action = audit_events.action AND audit_events.event_type = audit_events.action
    AND c.when_category IS NULL AND c.when_severity IS NULL;

-- Names outside the catalog: foo_bar becomes foo.bar; category and severity are translated.
UPDATE audit_events SET
    event_type = replace(action, '_', '.'),
    category = CASE category
        WHEN 'auth' THEN 'authentication'
        WHEN 'authorization' THEN 'authorization'
        WHEN 'data_access' THEN 'data_access'
        WHEN 'admin' THEN 'security'
        ELSE 'data_modification' END,
    severity = CASE severity WHEN 'warning' THEN 'medium' WHEN 'critical' THEN 'critical' ELSE 'info' END
WHERE event_type = action;

DROP TABLE audit_catalog;

-- A failed login names the account that was tried; a refused one says why.
UPDATE audit_events SET username = resource_id
WHERE event_type = 'auth.login.failed' AND username IS NULL AND resource_type = 'user';
UPDATE audit_events SET metadata = '{"reason": "rate_limited"}'
WHERE action = 'login_rate_limited' AND metadata = '{}';

CREATE INDEX audit_events_type_at ON audit_events(event_type, at);
