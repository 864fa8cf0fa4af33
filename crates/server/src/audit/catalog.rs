//! The catalog of audit events: every [`AuditAction`] a service records, the short name it is
//! stored under (`login_failure`, `run_create`, …), what it is called on the wire
//! (`auth.login.failed`, `run.create`), its category, severity and the kind of object it names.
//! [`classify`] publishes an event when it is written. Migration 0007 applied the same table to
//! the events stored before it.

use wanllmdb_api_types::admin;
use wanllmdb_api_types::audit::{
    AUTHENTICATION, AUTHORIZATION, CRITICAL, DATA_ACCESS, DATA_MODIFICATION, HIGH, INFO, LOW,
    MEDIUM, SECURITY,
};

/// How events stored before migration 0007 (which recorded a service category and severity
/// beside the name) told two actions of the same name apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// The name alone.
    Always,
    /// The name recorded under this service category, e.g. `admin`.
    Category(&'static str),
    /// The name recorded with this service severity, e.g. `warning`.
    Severity(&'static str),
}

/// How one action is stored and published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// The name stored in the `action` column, e.g. `login_failure`.
    pub action: &'static str,
    /// What told it apart from another action of the same name before migration 0007.
    pub when: When,
    /// The published event type.
    pub event_type: &'static str,
    /// One of the five categories.
    pub category: &'static str,
    /// One of the five severities.
    pub severity: &'static str,
    /// The kind of object the event's resource names, when it names one.
    pub resource_type: Option<&'static str>,
}

const USER: Option<&str> = Some("user");
const API_KEY: Option<&str> = Some("api_key");
const PROJECT: Option<&str> = Some("project");
const RUN: Option<&str> = Some("run");
const RUN_FILE: Option<&str> = Some("run_file");
const ARTIFACT: Option<&str> = Some("artifact");
const ARTIFACT_VERSION: Option<&str> = Some("artifact_version");
const ARTIFACT_ALIAS: Option<&str> = Some("artifact_alias");
const MODEL: Option<&str> = Some("model");
const MODEL_VERSION: Option<&str> = Some("model_version");
const SWEEP: Option<&str> = Some("sweep");

macro_rules! actions {
    ($(
        $(#[$meta:meta])*
        $variant:ident: $action:expr, $when:ident$(($cond:literal))? =>
            $event_type:literal, $category:ident, $severity:ident, $resource:ident;
    )+) => {
        /// Every event the services record. Severity: `info` for routine actions that change
        /// nobody's access (logins, run lifecycle), `low` for creating, changing and reading data,
        /// `medium` for deletions, changes of who may do what, and failures that may be an attack,
        /// `high` for brute force, granting administrator power, setting someone else's password,
        /// opening a project to everyone and deleting a whole project, `critical` for a stolen token.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum AuditAction {
            $($(#[$meta])* #[doc = concat!("Published as `", $event_type, "`.")] $variant,)+
        }

        impl AuditAction {
            /// Every action, in catalog order.
            pub const ALL: &[AuditAction] = &[$(AuditAction::$variant),+];

            /// How the action is stored and published.
            pub const fn entry(self) -> Entry {
                match self {
                    $(AuditAction::$variant => Entry {
                        action: $action,
                        when: When::$when$(($cond))?,
                        event_type: $event_type,
                        category: $category,
                        severity: $severity,
                        resource_type: $resource,
                    },)+
                }
            }
        }
    };
}

#[rustfmt::skip]
actions! {
    // Authentication.
    LoginSuccess: "login_success", Always => "auth.login.success", AUTHENTICATION, INFO, USER;
    LoginFailure: "login_failure", Always => "auth.login.failed", AUTHENTICATION, MEDIUM, USER;
    LoginRateLimited: "login_rate_limited", Always => "auth.login.failed", AUTHENTICATION, HIGH, USER;
    Logout: "logout", Always => "auth.logout", AUTHENTICATION, INFO, USER;
    PasswordChange: "password_change", Always => "auth.password.change", AUTHENTICATION, LOW, USER;
    PasswordChangeFailure: "password_change_failure", Always => "auth.password.change_failed", AUTHENTICATION, MEDIUM, USER;
    UserRegister: "user_register", Always => "auth.register", AUTHENTICATION, LOW, USER;
    AuthenticationFailed: "authentication_failed", Always => "auth.token.invalid", AUTHENTICATION, MEDIUM, None;
    ApiKeyCreated: "api_key_created", Always => "api_key.create", AUTHENTICATION, LOW, API_KEY;
    /// A server administrator revoked someone's API key (stored under the same name as a
    /// user revoking their own).
    ApiKeyRevokedByAdmin: admin::API_KEY_REVOKED, Category("admin") => "api_key.revoke", SECURITY, MEDIUM, API_KEY;
    ApiKeyRevoked: admin::API_KEY_REVOKED, Always => "api_key.revoke", AUTHENTICATION, LOW, API_KEY;
    // Authorization and security.
    AccessDenied: "access_denied", Always => "authz.access_denied", AUTHORIZATION, MEDIUM, None;
    RefreshTokenReuse: "refresh_token_reuse", Always => "security.suspicious", SECURITY, CRITICAL, None;
    UserCreated: admin::USER_CREATED, Always => "user.create", SECURITY, MEDIUM, USER;
    UserDisabled: admin::USER_DISABLED, Always => "user.disable", SECURITY, MEDIUM, USER;
    UserEnabled: admin::USER_ENABLED, Always => "user.enable", SECURITY, MEDIUM, USER;
    UserPromoted: admin::USER_PROMOTED, Always => "user.promote", SECURITY, HIGH, USER;
    UserDemoted: admin::USER_DEMOTED, Always => "user.demote", SECURITY, MEDIUM, USER;
    PasswordReset: admin::PASSWORD_RESET, Always => "user.password_reset", SECURITY, HIGH, USER;
    MemberAdd: "member_add", Always => "member.add", SECURITY, MEDIUM, PROJECT;
    MemberUpdate: "member_update", Always => "member.update", SECURITY, MEDIUM, PROJECT;
    MemberRemove: "member_remove", Always => "member.remove", SECURITY, MEDIUM, PROJECT;
    RegistryPolicyChange: "registry_policy_change", Always => "registry_policy.update", SECURITY, MEDIUM, PROJECT;
    // Projects and runs.
    ProjectCreate: "project_create", Always => "project.create", DATA_MODIFICATION, LOW, PROJECT;
    /// A project was made public (stored under the same name as any other project update).
    ProjectOpened: "project_update", Severity("warning") => "project.update", DATA_MODIFICATION, HIGH, PROJECT;
    ProjectUpdate: "project_update", Always => "project.update", DATA_MODIFICATION, LOW, PROJECT;
    ProjectDelete: "project_delete", Always => "project.delete", DATA_MODIFICATION, HIGH, PROJECT;
    RunCreate: "run_create", Always => "run.create", DATA_MODIFICATION, INFO, RUN;
    RunResume: "run_resume", Always => "run.resume", DATA_MODIFICATION, INFO, RUN;
    RunUpdate: "run_update", Always => "run.update", DATA_MODIFICATION, LOW, RUN;
    RunTagAdd: "run_tag_add", Always => "run.tag.add", DATA_MODIFICATION, LOW, RUN;
    RunTagRemove: "run_tag_remove", Always => "run.tag.remove", DATA_MODIFICATION, LOW, RUN;
    RunStop: "run_stop", Always => "run.stop", DATA_MODIFICATION, INFO, RUN;
    RunFinish: "run_finish", Always => "run.finish", DATA_MODIFICATION, INFO, RUN;
    RunDelete: "run_delete", Always => "run.delete", DATA_MODIFICATION, MEDIUM, RUN;
    RunFileUpload: "run_file_upload", Always => "run_file.create", DATA_MODIFICATION, LOW, RUN;
    RunFileRegister: "run_file_register", Always => "run_file.create", DATA_MODIFICATION, LOW, RUN_FILE;
    RunFileDelete: "run_file_delete", Always => "run_file.delete", DATA_MODIFICATION, MEDIUM, RUN_FILE;
    RunFileDownload: "run_file_download", Always => "run_file.download", DATA_ACCESS, LOW, RUN_FILE;
    // Artifacts.
    ArtifactCreate: "artifact_create", Always => "artifact.create", DATA_MODIFICATION, LOW, ARTIFACT;
    ArtifactUpdate: "artifact_update", Always => "artifact.update", DATA_MODIFICATION, LOW, ARTIFACT;
    ArtifactDelete: "artifact_delete", Always => "artifact.delete", DATA_MODIFICATION, MEDIUM, ARTIFACT;
    ArtifactVersionCreate: "artifact_version_create", Always => "artifact_version.create", DATA_MODIFICATION, LOW, ARTIFACT_VERSION;
    ArtifactVersionUpdate: "artifact_version_update", Always => "artifact_version.update", DATA_MODIFICATION, LOW, ARTIFACT_VERSION;
    ArtifactVersionDelete: "artifact_version_delete", Always => "artifact_version.delete", DATA_MODIFICATION, MEDIUM, ARTIFACT_VERSION;
    ArtifactAliasSet: "artifact_alias_set", Always => "artifact_alias.set", DATA_MODIFICATION, LOW, ARTIFACT_ALIAS;
    ArtifactAliasRemove: "artifact_alias_remove", Always => "artifact_alias.remove", DATA_MODIFICATION, LOW, ARTIFACT_ALIAS;
    ArtifactDownload: "artifact_download", Always => "artifact.download", DATA_ACCESS, LOW, ARTIFACT_VERSION;
    // Model registry.
    ModelRegister: "model_register", Always => "model.create", DATA_MODIFICATION, LOW, MODEL;
    ModelUpdate: "model_update", Always => "model.update", DATA_MODIFICATION, LOW, MODEL;
    ModelDelete: "model_delete", Always => "model.delete", DATA_MODIFICATION, MEDIUM, MODEL;
    ModelVersionCreate: "model_version_create", Always => "model_version.create", DATA_MODIFICATION, LOW, MODEL_VERSION;
    ModelVersionDelete: "model_version_delete", Always => "model_version.delete", DATA_MODIFICATION, MEDIUM, MODEL_VERSION;
    ModelTransition: "model_transition", Always => "model_version.transition", DATA_MODIFICATION, MEDIUM, MODEL_VERSION;
    ModelApprove: "model_approve", Always => "model_version.approve", DATA_MODIFICATION, MEDIUM, MODEL_VERSION;
    ModelApprovalRevoke: "model_approval_revoke", Always => "model_version.approval_revoke", DATA_MODIFICATION, MEDIUM, MODEL_VERSION;
    ModelAliasSet: "model_alias_set", Always => "model_alias.set", DATA_MODIFICATION, LOW, MODEL;
    ModelAliasRemove: "model_alias_remove", Always => "model_alias.remove", DATA_MODIFICATION, LOW, MODEL;
    // Sweeps and housekeeping.
    SweepCreate: "sweep_create", Always => "sweep.create", DATA_MODIFICATION, LOW, SWEEP;
    SweepStateChange: "sweep_state_change", Always => "sweep.update", DATA_MODIFICATION, LOW, SWEEP;
    SweepRetryFailed: "sweep_retry_failed", Always => "sweep.retry", DATA_MODIFICATION, LOW, SWEEP;
    SweepDelete: "sweep_delete", Always => "sweep.delete", DATA_MODIFICATION, MEDIUM, SWEEP;
    BlobGc: "blob_gc", Always => "blob.gc", DATA_MODIFICATION, MEDIUM, None;
}

impl AuditAction {
    /// The name stored in the `action` column.
    pub const fn name(self) -> &'static str {
        self.entry().action
    }
}

/// What an event is published as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classified {
    /// E.g. `auth.login.failed`.
    pub event_type: &'static str,
    /// One of the five categories.
    pub category: &'static str,
    /// One of the five severities.
    pub severity: &'static str,
    /// E.g. `project`.
    pub resource_type: Option<String>,
    /// E.g. `mnist`.
    pub resource_id: Option<String>,
}

/// Publishes `action` about `resource` (`kind:id`, e.g. `project:mnist`).
pub fn classify(action: AuditAction, resource: Option<&str>) -> Classified {
    let entry = action.entry();
    let (kind, id) = match resource.map(|r| r.split_once(':')) {
        Some(Some((kind, id))) => (Some(kind), Some(id.to_string())),
        Some(None) => (None, resource.map(str::to_string)),
        None => (None, None),
    };
    Classified {
        event_type: entry.event_type,
        category: entry.category,
        severity: entry.severity,
        resource_type: entry.resource_type.or(kind).map(str::to_string),
        resource_id: id,
    }
}

/// `success`, `failure` or `error`, from the HTTP status of the outcome (none: it happened).
pub fn outcome(http_status: Option<i64>) -> &'static str {
    match http_status {
        Some(s) if s >= 500 => "error",
        Some(s) if s >= 400 => "failure",
        _ => "success",
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use wanllmdb_api_types::audit::{CATEGORIES, SEVERITIES};

    use super::*;

    #[test]
    fn actions_publish_as_the_catalog_says() {
        let c = classify(AuditAction::LoginFailure, Some("user:alice"));
        assert_eq!(c.event_type, "auth.login.failed");
        assert_eq!((c.category, c.severity), (AUTHENTICATION, MEDIUM));
        assert_eq!(c.resource_type.as_deref(), Some("user"));
        assert_eq!(c.resource_id.as_deref(), Some("alice"));
        let c = classify(AuditAction::RefreshTokenReuse, None);
        assert_eq!(
            (c.event_type, c.category, c.severity),
            ("security.suspicious", SECURITY, CRITICAL)
        );
        let c = classify(AuditAction::ModelTransition, Some("model:clf:v2"));
        assert_eq!(c.resource_type.as_deref(), Some("model_version"));
        assert_eq!(c.resource_id.as_deref(), Some("clf:v2"));
        let c = classify(AuditAction::RunFileDownload, Some("run:ab/c:d"));
        assert_eq!(c.event_type, "run_file.download");
        assert_eq!(c.category, DATA_ACCESS);
        assert_eq!(c.resource_id.as_deref(), Some("ab/c:d"));
        // A resource without a kind keeps its id; the catalog's kind is used when it has one.
        let c = classify(AuditAction::BlobGc, Some("w1"));
        assert_eq!(
            (c.resource_type, c.resource_id.as_deref()),
            (None, Some("w1"))
        );
    }

    #[test]
    fn actions_of_the_same_name_publish_apart() {
        let own = classify(AuditAction::ApiKeyRevoked, Some("api_key:3"));
        let admin = classify(AuditAction::ApiKeyRevokedByAdmin, Some("api_key:3"));
        assert_eq!((own.category, own.severity), (AUTHENTICATION, LOW));
        assert_eq!((admin.category, admin.severity), (SECURITY, MEDIUM));
        assert_eq!(
            AuditAction::ApiKeyRevoked.name(),
            AuditAction::ApiKeyRevokedByAdmin.name()
        );
        let quiet = classify(AuditAction::ProjectUpdate, None);
        let opened = classify(AuditAction::ProjectOpened, None);
        assert_eq!((quiet.severity, opened.severity), (LOW, HIGH));
    }

    #[test]
    fn entries_use_published_words_and_are_unique() {
        let mut seen = BTreeSet::new();
        for e in AuditAction::ALL.iter().map(|a| a.entry()) {
            assert!(CATEGORIES.contains(&e.category), "{e:?}");
            assert!(SEVERITIES.contains(&e.severity), "{e:?}");
            assert!(
                !e.action.contains('.') && e.event_type.contains('.'),
                "{e:?}"
            );
            assert!(
                seen.insert((e.action, format!("{:?}", e.when))),
                "twice: {e:?}"
            );
        }
        // A qualified entry without a plain one would leave events of that name unclassified
        // by migration 0007.
        for e in AuditAction::ALL.iter().map(|a| a.entry()) {
            if e.when != When::Always {
                assert!(
                    AuditAction::ALL
                        .iter()
                        .any(|p| p.entry().action == e.action && p.entry().when == When::Always),
                    "{e:?}"
                );
            }
        }
    }

    #[test]
    fn outcomes_follow_the_http_status() {
        assert_eq!(outcome(Some(201)), "success");
        assert_eq!(outcome(Some(403)), "failure");
        assert_eq!(outcome(Some(503)), "error");
        assert_eq!(outcome(None), "success");
    }

    /// The catalog entry migration 0007 gave a name recorded under a category and severity.
    fn lookup(action: &str, category: &str, severity: &str) -> Option<Entry> {
        AuditAction::ALL
            .iter()
            .map(|a| a.entry())
            .filter(|e| e.action == action)
            .find(|e| match e.when {
                When::Always => true,
                When::Category(c) => c == category,
                When::Severity(s) => s == severity,
            })
    }

    /// The catalog rows of a migration: `('a', NULL, 'b', …),` lines.
    fn migration_rows(sql: &str) -> Vec<Vec<Option<String>>> {
        sql.lines()
            .map(str::trim)
            .filter(|l| l.starts_with("('"))
            .map(|l| {
                let inner = l.trim_start_matches('(').trim_end_matches([',', ';', ')']);
                inner
                    .split(", ")
                    .map(|v| (v != "NULL").then(|| v.trim_matches('\'').to_string()))
                    .collect()
            })
            .collect()
    }

    #[test]
    fn migration_0007_applied_this_catalog() {
        for sql in [
            include_str!("../../migrations/sqlite/0007_audit_contract.sql"),
            include_str!("../../migrations/postgres/0007_audit_contract.sql"),
        ] {
            let rows = migration_rows(sql);
            assert!(rows.len() > 40, "{rows:?}");
            for row in rows {
                let [
                    action,
                    when_category,
                    when_severity,
                    event_type,
                    category,
                    severity,
                    resource_type,
                ] = row.as_slice()
                else {
                    panic!("malformed row {row:?}");
                };
                let action = action.as_deref().unwrap();
                let entry = lookup(
                    action,
                    when_category.as_deref().unwrap_or(""),
                    when_severity.as_deref().unwrap_or(""),
                )
                .unwrap_or_else(|| panic!("{action} is not in the catalog"));
                let (wc, ws) = (when_category.as_deref(), when_severity.as_deref());
                let same_condition = match entry.when {
                    When::Always => wc.is_none() && ws.is_none(),
                    When::Category(c) => wc == Some(c) && ws.is_none(),
                    When::Severity(s) => ws == Some(s) && wc.is_none(),
                };
                assert!(same_condition, "{row:?} vs {entry:?}");
                let published = (
                    entry.event_type,
                    entry.category,
                    entry.severity,
                    entry.resource_type,
                );
                assert_eq!(
                    published,
                    (
                        event_type.as_deref().unwrap(),
                        category.as_deref().unwrap(),
                        severity.as_deref().unwrap(),
                        resource_type.as_deref()
                    ),
                    "{row:?}"
                );
            }
        }
    }
}
