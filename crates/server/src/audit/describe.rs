//! What an event says in words, e.g. `User 'john' logged in successfully`. Built from the stored
//! fields when the event is read, so events stored before descriptions existed have one too and
//! a description never disagrees with the fields beside it.

use serde_json::Value;
use wanllmdb_api_types::audit::{AuditLogEntry, LOGIN_FAILED, LOGIN_SUCCESS};

/// The sentence of an event.
pub fn describe(e: &AuditLogEntry) -> String {
    let who = actor(e);
    let request = format!(
        "{} {}",
        e.request_method.as_deref().unwrap_or("?"),
        e.request_path.as_deref().unwrap_or("?")
    );
    let sentence = match e.event_type.as_str() {
        LOGIN_SUCCESS => format!("{who} logged in successfully"),
        LOGIN_FAILED => return failed_login(e),
        "auth.logout" => format!("{who} logged out"),
        "auth.password.change" => format!("{who} changed their password"),
        "auth.password.change_failed" => {
            return format!("{who} gave a wrong current password when changing it");
        }
        "auth.register" if e.resource_id == e.username => format!("{who} registered"),
        "auth.register" => format!("{who} registered account '{}'", id(e)),
        "user.promote" => format!("{who} made user '{}' a server administrator", id(e)),
        "user.demote" => format!(
            "{who} took server administrator rights from user '{}'",
            id(e)
        ),
        "auth.token.invalid" => {
            return format!(
                "A request to {request} carried an invalid, expired or revoked token or API key"
            );
        }
        "authz.access_denied" => return format!("{who} was refused {request}"),
        "security.suspicious" if e.action == "refresh_token_reuse" => {
            let whose = if e.username.is_none() && e.user_id.is_none() {
                "a user".to_string()
            } else {
                who.replacen("User", "user", 1)
            };
            return format!(
                "A spent refresh token of {whose} was presented again; its session was ended"
            );
        }
        "security.suspicious" => format!("Suspicious request by {}: {request}", who.to_lowercase()),
        "blob.gc" => {
            let dry = e.metadata["dry_run"].as_bool() == Some(true);
            format!(
                "{who} ran content garbage collection{}",
                if dry { " (dry run)" } else { "" }
            )
        }
        "model_version.transition" => {
            let stages = match (e.metadata["from"].as_str(), e.metadata["to"].as_str()) {
                (Some(from), Some(to)) => format!("from {from} to {to}"),
                (None, Some(to)) => format!("to {to}"),
                _ => "to another stage".into(),
            };
            format!("{who} moved model version '{}' {stages}", id(e))
        }
        t if t.starts_with("member.") => member(e, &who),
        _ => generic(e, &who),
    };
    with_outcome(sentence, e)
}

/// The object's id, `?` when the event names none.
fn id(e: &AuditLogEntry) -> &str {
    e.resource_id.as_deref().unwrap_or("?")
}

/// `User 'alice'`, `User #7`, or `An anonymous client`.
fn actor(e: &AuditLogEntry) -> String {
    match (&e.username, e.user_id) {
        (Some(name), _) => format!("User '{name}'"),
        (None, Some(id)) => format!("User #{id}"),
        (None, None) => "An anonymous client".into(),
    }
}

fn failed_login(e: &AuditLogEntry) -> String {
    let name = e
        .username
        .as_deref()
        .or(e.resource_id.as_deref())
        .unwrap_or("?");
    let why = match e.metadata["reason"].as_str() {
        Some("invalid_password") => ": wrong password",
        Some("unknown_user") => ": no such user",
        Some("account_disabled") => ": the account is disabled",
        Some("rate_limited") => ": too many failed attempts, refused without checking",
        _ => "",
    };
    let attempts = match e.metadata["attempts"].as_i64() {
        Some(n) => format!(" (failure {n} of this account in the current window)"),
        None => String::new(),
    };
    format!("Failed login as '{name}'{why}{attempts}")
}

/// `member.add` and friends: who was added, changed or removed, and where.
fn member(e: &AuditLogEntry, who: &str) -> String {
    let verb = match e.event_type.as_str() {
        "member.add" => "added",
        "member.update" => "changed the role of",
        _ => "removed",
    };
    let member = e.metadata["member"].as_str().unwrap_or("a member");
    let role = match (&e.metadata["role"], &e.metadata["to"]) {
        (Value::String(r), _) | (_, Value::String(r)) => format!(" ({r})"),
        _ => String::new(),
    };
    let project = id(e);
    let prep = if verb == "added" { "to" } else { "in" };
    format!("{who} {verb} '{member}'{role} {prep} project '{project}'")
}

/// `<subject>.<verb>`: `User 'alice' deleted run 'ab12cd34'`.
fn generic(e: &AuditLogEntry, who: &str) -> String {
    let (subject, verb) = e
        .event_type
        .rsplit_once('.')
        .unwrap_or(("", e.event_type.as_str()));
    let verb = past_tense(verb);
    let subject_words = subject.replace(['_', '.'], " ");
    match (&e.resource_type, &e.resource_id) {
        // The object itself, or a finer kind of it (`artifact.download` of an artifact_version).
        (Some(kind), Some(id)) if kind == subject || kind.starts_with(&format!("{subject}_")) => {
            format!("{who} {verb} {} '{id}'", kind.replace('_', " "))
        }
        (kind, Some(id)) => {
            let kind = kind.as_deref().unwrap_or("object").replace('_', " ");
            format!("{who} {verb} {subject_words} on {kind} '{id}'")
        }
        (_, None) => format!("{who} {verb} {subject_words}")
            .trim_end()
            .to_string(),
    }
}

fn past_tense(verb: &str) -> String {
    match verb {
        "create" => "created".into(),
        "update" => "updated".into(),
        "delete" => "deleted".into(),
        "download" => "downloaded".into(),
        "add" => "added".into(),
        "remove" => "removed".into(),
        "set" => "set".into(),
        "revoke" => "revoked".into(),
        "disable" => "disabled".into(),
        "enable" => "enabled".into(),
        "password_reset" => "reset the password of".into(),
        "register" => "registered".into(),
        "resume" => "resumed".into(),
        "stop" => "asked to stop".into(),
        "finish" => "finished".into(),
        "retry" => "queued failed trials again of".into(),
        "approve" => "approved".into(),
        "approval_revoke" => "withdrew the approval of".into(),
        other => format!("did '{other}' to"),
    }
}

/// Adds how a refused or failed action ended.
fn with_outcome(sentence: String, e: &AuditLogEntry) -> String {
    let code = e
        .http_status
        .map(|c| format!(", HTTP {c}"))
        .unwrap_or_default();
    match e.status.as_str() {
        "failure" => format!("{sentence} (refused{code})"),
        "error" => format!("{sentence} (server error{code})"),
        _ => sentence,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn entry(event_type: &str, action: &str) -> AuditLogEntry {
        AuditLogEntry {
            id: 1,
            event_type: event_type.into(),
            event_category: "authentication".into(),
            severity: "info".into(),
            user_id: Some(3),
            username: Some("john".into()),
            ip_address: None,
            user_agent: None,
            request_method: Some("POST".into()),
            request_path: Some("/api/v1/x".into()),
            description: String::new(),
            resource_type: None,
            resource_id: None,
            metadata: json!({}),
            status: "success".into(),
            http_status: Some(200),
            created_at: String::new(),
            action: action.into(),
            at: String::new(),
            category: String::new(),
            ip: None,
            method: None,
            path: None,
            resource: None,
        }
    }

    fn on(mut e: AuditLogEntry, kind: &str, id: &str) -> AuditLogEntry {
        e.resource_type = Some(kind.into());
        e.resource_id = Some(id.into());
        e
    }

    #[test]
    fn every_catalog_entry_has_a_sentence() {
        for c in crate::audit::AuditAction::ALL.iter().map(|a| a.entry()) {
            let mut e = entry(c.event_type, c.action);
            e.resource_type = c.resource_type.map(str::to_string);
            e.resource_id = c.resource_type.map(|_| "x1".to_string());
            let d = describe(&e);
            assert!(
                d.starts_with("User 'john'") || d.starts_with("A ") || d.starts_with("Failed"),
                "{c:?}: {d}"
            );
            assert!(
                !d.contains("did '") && !d.contains(" on auth") && !d.contains('?'),
                "{c:?}: {d}"
            );
            // Sign-in events are about the actor's own account; everything else names its object.
            if c.resource_type.is_some() && !c.event_type.starts_with("auth.") {
                assert!(d.contains("'x1'"), "{c:?}: {d}");
            }
        }
    }

    #[test]
    fn sentences() {
        let e = entry("auth.login.success", "login_success");
        assert_eq!(describe(&e), "User 'john' logged in successfully");

        let mut e = on(entry(LOGIN_FAILED, "login_failure"), "user", "attacker");
        e.username = Some("attacker".into());
        e.user_id = None;
        e.metadata = json!({"reason": "invalid_password", "attempts": 5});
        e.status = "failure".into();
        assert_eq!(
            describe(&e),
            "Failed login as 'attacker': wrong password (failure 5 of this account in the current window)"
        );

        let e = on(
            entry("project.create", "project_create"),
            "project",
            "mnist",
        );
        assert_eq!(describe(&e), "User 'john' created project 'mnist'");
        let e = on(
            entry("run_file.create", "run_file_upload"),
            "run",
            "ab12cd34",
        );
        assert_eq!(
            describe(&e),
            "User 'john' created run file on run 'ab12cd34'"
        );
        let mut e = on(entry("member.add", "member_add"), "project", "cov");
        e.metadata = json!({"member": "bob", "role": "viewer"});
        assert_eq!(
            describe(&e),
            "User 'john' added 'bob' (viewer) to project 'cov'"
        );

        let mut e = entry("authz.access_denied", "access_denied");
        e.username = None;
        e.user_id = None;
        e.status = "failure".into();
        assert_eq!(
            describe(&e),
            "An anonymous client was refused POST /api/v1/x"
        );
        let mut e = entry("security.suspicious", "refresh_token_reuse");
        e.username = None;
        assert_eq!(
            describe(&e),
            "A spent refresh token of user #3 was presented again; its session was ended"
        );

        let mut e = on(entry("widget.polish", "widget_polish"), "widget", "w1");
        e.status = "error".into();
        e.http_status = Some(500);
        assert_eq!(
            describe(&e),
            "User 'john' did 'polish' to widget 'w1' (server error, HTTP 500)"
        );
    }
}
