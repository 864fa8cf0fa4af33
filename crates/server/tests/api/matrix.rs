//! The authorization matrix: owner/admin/member/viewer/outsider/anonymous × public/private ×
//! read/write, on projects and runs.

use reqwest::StatusCode;
use serde_json::json;

use crate::each_backend;

each_backend!(authorization_matrix, |ctx| {
    let owner = ctx.user("owner1").await;
    let mut keys = vec![("owner", Some(owner.clone()))];
    for role in ["admin", "member", "viewer"] {
        keys.push((role, Some(ctx.user(&format!("{role}1")).await)));
    }
    keys.push(("outsider", Some(ctx.user("outsider1").await)));
    keys.push(("anonymous", None));

    for vis in ["public", "private"] {
        let project = format!("p-{vis}");
        ctx.project(&owner, &project, vis).await;
        for role in ["admin", "member", "viewer"] {
            let (s, _) = ctx
                .post(
                    &format!("/api/v1/projects/{project}/members"),
                    Some(&owner),
                    json!({"username": format!("{role}1"), "role": role}),
                )
                .await;
            assert_eq!(s, StatusCode::CREATED);
        }
        let run = ctx.run(&owner, &project, json!({})).await;
        ctx.post(
            &format!("/api/v1/runs/{run}/history"),
            Some(&owner),
            json!({"points": [{"step": 0, "values": {"loss": 1.0}}]}),
        )
        .await;

        for (who, key) in &keys {
            let k = key.as_deref();
            let member = matches!(*who, "owner" | "admin" | "member" | "viewer");
            let can_read = member || vis == "public";
            let can_write = matches!(*who, "owner" | "admin" | "member");
            let can_admin = matches!(*who, "owner" | "admin");
            // Denied reads of private things are 404 (existence is not revealed).
            let denied = |allowed: bool| -> StatusCode {
                if allowed {
                    StatusCode::OK
                } else if !can_read {
                    StatusCode::NOT_FOUND
                } else if *who == "anonymous" {
                    StatusCode::UNAUTHORIZED
                } else {
                    StatusCode::FORBIDDEN
                }
            };
            // A body from an anonymous caller where an account is needed is refused before it
            // is read: 401 whatever the project's visibility (nothing about it is revealed).
            let refused = |allowed: bool| -> StatusCode {
                if !allowed && *who == "anonymous" {
                    StatusCode::UNAUTHORIZED
                } else {
                    denied(allowed)
                }
            };
            let ctxmsg = format!("{who} on {vis}");

            let (s, _) = ctx.get(&format!("/api/v1/projects/{project}"), k).await;
            assert_eq!(s, denied(can_read), "read project: {ctxmsg}");
            let (s, _) = ctx.get(&format!("/api/v1/runs/{run}"), k).await;
            assert_eq!(s, denied(can_read), "read run: {ctxmsg}");
            let (s, _) = ctx
                .get(&format!("/api/v1/runs/{run}/history?keys=loss"), k)
                .await;
            assert_eq!(s, denied(can_read), "read history: {ctxmsg}");
            let (s, _) = ctx.get(&format!("/api/v1/runs?project={project}"), k).await;
            assert_eq!(s, denied(can_read), "list runs: {ctxmsg}");
            let (s, _) = ctx
                .get(&format!("/api/v1/projects/{project}/members"), k)
                .await;
            assert_eq!(s, denied(can_read), "list members: {ctxmsg}");

            let (s, _) = ctx
                .post(
                    &format!("/api/v1/runs/{run}/history"),
                    k,
                    json!({"points": [{"step": 1, "values": {"loss": 0.5}}]}),
                )
                .await;
            assert_eq!(s, refused(can_write), "write history: {ctxmsg}");
            let (s, _) = ctx
                .post(
                    &format!("/api/v1/runs/{run}/logs"),
                    k,
                    json!({"lines": [{"message": "hi"}]}),
                )
                .await;
            assert_eq!(s, refused(can_write), "write logs: {ctxmsg}");
            let (s, _) = ctx
                .patch(&format!("/api/v1/runs/{run}"), k, json!({"notes": "x"}))
                .await;
            assert_eq!(s, refused(can_write), "update run: {ctxmsg}");
            let (s, _) = ctx
                .post("/api/v1/runs", k, json!({"project": project}))
                .await;
            let want = if can_write {
                StatusCode::CREATED
            } else {
                refused(false)
            };
            assert_eq!(s, want, "create run: {ctxmsg}");
            // Resuming someone's run id needs write access too; the run stays untouched.
            let (s, _) = ctx
                .post(
                    "/api/v1/runs",
                    k,
                    json!({"project": project, "id": run, "notes": "hijack"}),
                )
                .await;
            let want = if can_write {
                StatusCode::OK
            } else {
                refused(false)
            };
            assert_eq!(s, want, "resume run: {ctxmsg}");

            let (s, _) = ctx
                .patch(
                    &format!("/api/v1/projects/{project}"),
                    k,
                    json!({"description": "d"}),
                )
                .await;
            assert_eq!(s, refused(can_admin), "update project: {ctxmsg}");
            let (s, _) = ctx
                .post(
                    &format!("/api/v1/projects/{project}/members"),
                    k,
                    json!({"username": "outsider1", "role": "viewer"}),
                )
                .await;
            let want = if can_admin {
                StatusCode::CREATED
            } else {
                refused(false)
            };
            assert_eq!(s, want, "add member: {ctxmsg}");
            if can_admin {
                let (s, _) = ctx
                    .delete(&format!("/api/v1/projects/{project}/members/outsider1"), k)
                    .await;
                assert_eq!(s, StatusCode::NO_CONTENT);
            }
            if *who != "owner" {
                let (s, _) = ctx.delete(&format!("/api/v1/projects/{project}"), k).await;
                // A change needs an account even without a body: 401 before any lookup.
                let want = if *who == "anonymous" {
                    StatusCode::UNAUTHORIZED
                } else if !can_read {
                    StatusCode::NOT_FOUND
                } else {
                    StatusCode::FORBIDDEN
                };
                assert_eq!(s, want, "delete project: {ctxmsg}");
            }
        }
        // Writes by people without access left the run untouched.
        let (_, r) = ctx.get(&format!("/api/v1/runs/{run}"), Some(&owner)).await;
        assert_eq!(r["notes"], "hijack", "only members resumed it");
        let (s, _) = ctx
            .delete(&format!("/api/v1/projects/{project}"), Some(&owner))
            .await;
        assert_eq!(s, StatusCode::NO_CONTENT);
    }
    // A run id cannot be taken over from another project.
    ctx.project(&owner, "mine", "private").await;
    let run = ctx.run(&owner, "mine", json!({"name": "original"})).await;
    let outsider = keys[4].1.clone().unwrap();
    ctx.project(&outsider, "theirs", "private").await;
    let (s, _) = ctx
        .post(
            "/api/v1/runs",
            Some(&outsider),
            json!({"project": "theirs", "id": run, "name": "stolen"}),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (_, r) = ctx.get(&format!("/api/v1/runs/{run}"), Some(&owner)).await;
    assert_eq!(r["name"], "original");
    assert_eq!(r["project"], "mine");
    assert!(
        ctx.count(
            "SELECT COUNT(*) FROM audit_events WHERE http_status = 403 AND action = $1",
            "access_denied"
        )
        .await
            >= 1
    );
});
