//! The catalog of audit events: what each name a service records under (`login_failure`,
//! `run_create`, …) is called on the wire (`auth.login.failed`, `run.create`), its category,
//! severity and the kind of object it names. Services keep recording their own short names;
//! [`classify`] turns them into the published ones when the event is written. Migration 0007
//! applied the same table to the events stored before it.

use std::borrow::Cow;

use wanllmdb_api_types::audit::{
    AUTHENTICATION, AUTHORIZATION, CRITICAL, DATA_ACCESS, DATA_MODIFICATION, HIGH, INFO, LOW,
    MEDIUM, SECURITY,
};

/// When an entry applies, beyond its name: some names mean different things depending on
/// what the recording service said about them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// Always.
    Always,
    /// Only when recorded under this (service) category, e.g. `admin`.
    Category(&'static str),
    /// Only when recorded with this (service) severity, e.g. `warning`.
    Severity(&'static str),
}

/// One entry of the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// The name services record under.
    pub action: &'static str,
    /// Extra condition; entries with one are tried before the plain entry of the same name.
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

const fn e(
    action: &'static str,
    event_type: &'static str,
    category: &'static str,
    severity: &'static str,
    resource_type: Option<&'static str>,
) -> Entry {
    Entry {
        action,
        when: When::Always,
        event_type,
        category,
        severity,
        resource_type,
    }
}

const fn when(mut entry: Entry, when: When) -> Entry {
    entry.when = when;
    entry
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

/// Every name the services record under. Severity: `info` for routine actions that change
/// nobody's access (logins, run lifecycle), `low` for creating, changing and reading data,
/// `medium` for deletions, changes of who may do what, and failures that may be an attack,
/// `high` for brute force, granting administrator power, setting someone else's password,
/// opening a project to everyone and deleting a whole project, `critical` for a stolen token.
#[rustfmt::skip]
pub const CATALOG: &[Entry] = &[
    // Authentication.
    e("login_success", "auth.login.success", AUTHENTICATION, INFO, USER),
    e("login_failure", "auth.login.failed", AUTHENTICATION, MEDIUM, USER),
    e("login_rate_limited", "auth.login.failed", AUTHENTICATION, HIGH, USER),
    e("logout", "auth.logout", AUTHENTICATION, INFO, USER),
    e("password_change", "auth.password.change", AUTHENTICATION, LOW, USER),
    e("password_change_failure", "auth.password.change_failed", AUTHENTICATION, MEDIUM, USER),
    e("user_register", "auth.register", AUTHENTICATION, LOW, USER),
    e("authentication_failed", "auth.token.invalid", AUTHENTICATION, MEDIUM, None),
    e("api_key_created", "api_key.create", AUTHENTICATION, LOW, API_KEY),
    when(
        e("api_key_revoked", "api_key.revoke", SECURITY, MEDIUM, API_KEY),
        When::Category("admin"),
    ),
    e("api_key_revoked", "api_key.revoke", AUTHENTICATION, LOW, API_KEY),
    // Authorization and security.
    e("access_denied", "authz.access_denied", AUTHORIZATION, MEDIUM, None),
    e("refresh_token_reuse", "security.suspicious", SECURITY, CRITICAL, None),
    e("user_created", "user.create", SECURITY, MEDIUM, USER),
    e("user_disabled", "user.disable", SECURITY, MEDIUM, USER),
    e("user_enabled", "user.enable", SECURITY, MEDIUM, USER),
    e("user_promoted", "user.promote", SECURITY, HIGH, USER),
    e("user_demoted", "user.demote", SECURITY, MEDIUM, USER),
    e("password_reset", "user.password_reset", SECURITY, HIGH, USER),
    e("member_add", "member.add", SECURITY, MEDIUM, PROJECT),
    e("member_update", "member.update", SECURITY, MEDIUM, PROJECT),
    e("member_remove", "member.remove", SECURITY, MEDIUM, PROJECT),
    e("registry_policy_change", "registry_policy.update", SECURITY, MEDIUM, PROJECT),
    // Projects and runs.
    e("project_create", "project.create", DATA_MODIFICATION, LOW, PROJECT),
    when(
        e("project_update", "project.update", DATA_MODIFICATION, HIGH, PROJECT),
        When::Severity("warning"),
    ),
    e("project_update", "project.update", DATA_MODIFICATION, LOW, PROJECT),
    e("project_delete", "project.delete", DATA_MODIFICATION, HIGH, PROJECT),
    e("run_create", "run.create", DATA_MODIFICATION, INFO, RUN),
    e("run_resume", "run.resume", DATA_MODIFICATION, INFO, RUN),
    e("run_update", "run.update", DATA_MODIFICATION, LOW, RUN),
    e("run_tag_add", "run.tag.add", DATA_MODIFICATION, LOW, RUN),
    e("run_tag_remove", "run.tag.remove", DATA_MODIFICATION, LOW, RUN),
    e("run_stop", "run.stop", DATA_MODIFICATION, INFO, RUN),
    e("run_finish", "run.finish", DATA_MODIFICATION, INFO, RUN),
    e("run_delete", "run.delete", DATA_MODIFICATION, MEDIUM, RUN),
    e("run_file_upload", "run_file.create", DATA_MODIFICATION, LOW, RUN),
    e("run_file_register", "run_file.create", DATA_MODIFICATION, LOW, RUN_FILE),
    e("run_file_delete", "run_file.delete", DATA_MODIFICATION, MEDIUM, RUN_FILE),
    e("run_file_download", "run_file.download", DATA_ACCESS, LOW, RUN_FILE),
    // Artifacts.
    e("artifact_create", "artifact.create", DATA_MODIFICATION, LOW, ARTIFACT),
    e("artifact_update", "artifact.update", DATA_MODIFICATION, LOW, ARTIFACT),
    e("artifact_delete", "artifact.delete", DATA_MODIFICATION, MEDIUM, ARTIFACT),
    e("artifact_version_create", "artifact_version.create", DATA_MODIFICATION, LOW, ARTIFACT_VERSION),
    e("artifact_version_update", "artifact_version.update", DATA_MODIFICATION, LOW, ARTIFACT_VERSION),
    e("artifact_version_delete", "artifact_version.delete", DATA_MODIFICATION, MEDIUM, ARTIFACT_VERSION),
    e("artifact_alias_set", "artifact_alias.set", DATA_MODIFICATION, LOW, ARTIFACT_ALIAS),
    e("artifact_alias_remove", "artifact_alias.remove", DATA_MODIFICATION, LOW, ARTIFACT_ALIAS),
    e("artifact_download", "artifact.download", DATA_ACCESS, LOW, ARTIFACT_VERSION),
    // Model registry.
    e("model_register", "model.create", DATA_MODIFICATION, LOW, MODEL),
    e("model_update", "model.update", DATA_MODIFICATION, LOW, MODEL),
    e("model_delete", "model.delete", DATA_MODIFICATION, MEDIUM, MODEL),
    e("model_version_create", "model_version.create", DATA_MODIFICATION, LOW, MODEL_VERSION),
    e("model_version_delete", "model_version.delete", DATA_MODIFICATION, MEDIUM, MODEL_VERSION),
    e("model_transition", "model_version.transition", DATA_MODIFICATION, MEDIUM, MODEL_VERSION),
    e("model_approve", "model_version.approve", DATA_MODIFICATION, MEDIUM, MODEL_VERSION),
    e("model_approval_revoke", "model_version.approval_revoke", DATA_MODIFICATION, MEDIUM, MODEL_VERSION),
    e("model_alias_set", "model_alias.set", DATA_MODIFICATION, LOW, MODEL),
    e("model_alias_remove", "model_alias.remove", DATA_MODIFICATION, LOW, MODEL),
    // Sweeps and housekeeping.
    e("sweep_create", "sweep.create", DATA_MODIFICATION, LOW, SWEEP),
    e("sweep_state_change", "sweep.update", DATA_MODIFICATION, LOW, SWEEP),
    e("sweep_retry_failed", "sweep.retry", DATA_MODIFICATION, LOW, SWEEP),
    e("sweep_delete", "sweep.delete", DATA_MODIFICATION, MEDIUM, SWEEP),
    e("blob_gc", "blob.gc", DATA_MODIFICATION, MEDIUM, None),
];

/// The category a name recorded under a service category gets when the catalog does not
/// know the name; also how the old `category=` filter values map onto the new ones.
pub fn category_of(service_category: &str) -> Option<&'static str> {
    Some(match service_category {
        "auth" | AUTHENTICATION => AUTHENTICATION,
        AUTHORIZATION => AUTHORIZATION,
        DATA_ACCESS => DATA_ACCESS,
        "registry" | "sweeps" | DATA_MODIFICATION => DATA_MODIFICATION,
        "admin" | SECURITY => SECURITY,
        _ => return None,
    })
}

/// The severity of an event the catalog does not know, from the recording service's own
/// three-level (`info`, `warning`, `critical`) or five-level word.
fn severity_of(service_severity: &str) -> &'static str {
    match service_severity {
        "warning" => MEDIUM,
        CRITICAL => CRITICAL,
        HIGH => HIGH,
        MEDIUM => MEDIUM,
        LOW => LOW,
        _ => INFO,
    }
}

/// What an event is published as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classified {
    /// E.g. `auth.login.failed`.
    pub event_type: Cow<'static, str>,
    /// One of the five categories.
    pub category: &'static str,
    /// One of the five severities.
    pub severity: &'static str,
    /// E.g. `project`.
    pub resource_type: Option<String>,
    /// E.g. `mnist`.
    pub resource_id: Option<String>,
}

/// The catalog entry of a name, as recorded under a category and severity.
pub fn lookup(action: &str, category: &str, severity: &str) -> Option<&'static Entry> {
    CATALOG
        .iter()
        .filter(|e| e.action == action)
        .find(|e| match e.when {
            When::Always => true,
            When::Category(c) => c == category,
            When::Severity(s) => s == severity,
        })
}

/// Publishes an event recorded as `action` (with the service's category and severity) about
/// `resource` (`kind:id`, e.g. `project:mnist`). Names outside the catalog still map: a dotted
/// name is kept, `foo_bar` becomes `foo.bar`, and category and severity follow the service's.
pub fn classify(
    action: &str,
    category: &str,
    severity: &str,
    resource: Option<&str>,
) -> Classified {
    let (kind, id) = match resource.map(|r| r.split_once(':')) {
        Some(Some((kind, id))) => (Some(kind), Some(id.to_string())),
        Some(None) => (None, resource.map(str::to_string)),
        None => (None, None),
    };
    match lookup(action, category, severity) {
        Some(entry) => Classified {
            event_type: Cow::Borrowed(entry.event_type),
            category: entry.category,
            severity: entry.severity,
            resource_type: entry.resource_type.or(kind).map(str::to_string),
            resource_id: id,
        },
        None => Classified {
            event_type: if action.contains('.') {
                Cow::Owned(action.to_string())
            } else {
                Cow::Owned(action.replace('_', "."))
            },
            category: category_of(category).unwrap_or(DATA_MODIFICATION),
            severity: severity_of(severity),
            resource_type: kind.map(str::to_string),
            resource_id: id,
        },
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
    use std::path::Path;

    use wanllmdb_api_types::audit::{CATEGORIES, SEVERITIES};

    use super::*;

    #[test]
    fn known_names_map_as_published() {
        let c = classify("login_failure", "auth", "warning", Some("user:alice"));
        assert_eq!(c.event_type, "auth.login.failed");
        assert_eq!((c.category, c.severity), (AUTHENTICATION, MEDIUM));
        assert_eq!(c.resource_type.as_deref(), Some("user"));
        assert_eq!(c.resource_id.as_deref(), Some("alice"));
        let c = classify("refresh_token_reuse", "auth", "critical", None);
        assert_eq!(
            (c.event_type.as_ref(), c.category, c.severity),
            ("security.suspicious", SECURITY, CRITICAL)
        );
        let c = classify("model_transition", "registry", "info", Some("model:clf:v2"));
        assert_eq!(c.resource_type.as_deref(), Some("model_version"));
        assert_eq!(c.resource_id.as_deref(), Some("clf:v2"));
        let c = classify(
            "run_file_download",
            "data_access",
            "info",
            Some("run:ab/c:d"),
        );
        assert_eq!(c.event_type, "run_file.download");
        assert_eq!(c.category, DATA_ACCESS);
        assert_eq!(c.resource_id.as_deref(), Some("ab/c:d"));
    }

    #[test]
    fn qualified_entries_win_over_plain_ones() {
        let own = classify("api_key_revoked", "auth", "info", Some("api_key:3"));
        let admin = classify("api_key_revoked", "admin", "info", Some("api_key:3"));
        assert_eq!((own.category, own.severity), (AUTHENTICATION, LOW));
        assert_eq!((admin.category, admin.severity), (SECURITY, MEDIUM));
        let quiet = classify("project_update", "data_modification", "info", None);
        let opened = classify("project_update", "data_modification", "warning", None);
        assert_eq!((quiet.severity, opened.severity), (LOW, HIGH));
    }

    #[test]
    fn unknown_names_still_map_sensibly() {
        let c = classify("widget_polish", "registry", "warning", Some("widget:w1"));
        assert_eq!(c.event_type, "widget.polish");
        assert_eq!((c.category, c.severity), (DATA_MODIFICATION, MEDIUM));
        assert_eq!(c.resource_type.as_deref(), Some("widget"));
        assert_eq!(c.resource_id.as_deref(), Some("w1"));
        let c = classify("widget.polish", "security", "high", Some("w1"));
        assert_eq!(c.event_type, "widget.polish");
        assert_eq!((c.category, c.severity), (SECURITY, HIGH));
        assert_eq!(
            (c.resource_type, c.resource_id.as_deref()),
            (None, Some("w1"))
        );
        let c = classify("oddity", "nonsense", "loud", None);
        assert_eq!((c.category, c.severity), (DATA_MODIFICATION, INFO));
    }

    #[test]
    fn outcomes_follow_the_http_status() {
        assert_eq!(outcome(Some(201)), "success");
        assert_eq!(outcome(Some(403)), "failure");
        assert_eq!(outcome(Some(503)), "error");
        assert_eq!(outcome(None), "success");
    }

    #[test]
    fn entries_use_published_words_and_are_unique() {
        let mut seen = BTreeSet::new();
        for e in CATALOG {
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
        // A qualified entry without a plain one would leave the other cases to the fallback.
        for e in CATALOG.iter().filter(|e| e.when != When::Always) {
            assert!(
                CATALOG
                    .iter()
                    .any(|p| p.action == e.action && p.when == When::Always),
                "{e:?}"
            );
        }
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

    /// Names recorded through a variable rather than a literal `AuditEvent::new("…"`.
    const NAMES_NOT_WRITTEN_LITERALLY: &[&str] = &[
        wanllmdb_api_types::admin::USER_CREATED,
        wanllmdb_api_types::admin::USER_DISABLED,
        wanllmdb_api_types::admin::USER_ENABLED,
        wanllmdb_api_types::admin::USER_PROMOTED,
        wanllmdb_api_types::admin::USER_DEMOTED,
        wanllmdb_api_types::admin::PASSWORD_RESET,
        wanllmdb_api_types::admin::API_KEY_REVOKED,
        "model_approve",
        "model_approval_revoke",
    ];

    /// Every `AuditEvent::new("name"` in the server's sources, the name possibly on the next line.
    fn literal_names(dir: &Path, out: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                literal_names(&path, out);
            } else if path.extension().is_some_and(|x| x == "rs")
                && path.file_name().is_some_and(|f| f != "catalog.rs")
            {
                let text = std::fs::read_to_string(&path).unwrap();
                for rest in text.split("AuditEvent::new(").skip(1) {
                    let rest = rest.trim_start();
                    let name = rest.strip_prefix('"').and_then(|r| r.split('"').next());
                    if let Some(name) = name.filter(|n| {
                        !n.is_empty()
                            && n.bytes()
                                .all(|b| b.is_ascii_lowercase() || b == b'_' || b == b'.')
                    }) {
                        out.insert(name.to_string());
                    }
                }
            }
        }
    }

    #[test]
    fn every_recorded_name_is_in_the_catalog() {
        let mut names = BTreeSet::new();
        literal_names(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut names,
        );
        assert!(
            names.len() > 40,
            "the source scan found too little: {names:?}"
        );
        names.extend(NAMES_NOT_WRITTEN_LITERALLY.iter().map(|s| s.to_string()));
        let missing: Vec<_> = names
            .iter()
            .filter(|n| !CATALOG.iter().any(|e| e.action == n.as_str()))
            .collect();
        assert!(missing.is_empty(), "not in the audit catalog: {missing:?}");
    }
}
