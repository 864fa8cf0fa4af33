//! Projects: CRUD, listing with search/visibility/pagination, members, stats.

use reqwest::StatusCode;
use serde_json::json;

use crate::{assert_error, each_backend};

each_backend!(project_crud_and_stats, |ctx| {
    let k = ctx.user("alice").await;
    let (s, p) = ctx
        .post(
            "/api/v1/projects",
            Some(&k),
            json!({"name": "mnist", "description": "digits", "visibility": "public"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{p}");
    assert_eq!(p["owner"], "alice");
    assert_eq!(p["role"], "owner");
    assert_eq!(p["visibility"], "public");
    assert_eq!(p["stats"]["run_count"], 0);

    let (s, b) = ctx
        .post("/api/v1/projects", Some(&k), json!({"name": "mnist"}))
        .await;
    assert_error(s, &b, StatusCode::CONFLICT, "conflict");
    let (s, b) = ctx
        .post("/api/v1/projects", Some(&k), json!({"name": "bad name!"}))
        .await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "invalid_input");
    let (s, b) = ctx
        .post("/api/v1/projects", None, json!({"name": "anon"}))
        .await;
    assert_error(s, &b, StatusCode::UNAUTHORIZED, "unauthenticated");

    ctx.run(&k, "mnist", json!({})).await;
    let r2 = ctx.run(&k, "mnist", json!({})).await;
    let (_, p) = ctx.get("/api/v1/projects/mnist", Some(&k)).await;
    assert_eq!(p["stats"]["run_count"], 2);
    assert_eq!(p["stats"]["running_count"], 2);
    ctx.post(
        &format!("/api/v1/runs/{r2}/finish"),
        Some(&k),
        json!({"state": "finished", "exit_code": 0}),
    )
    .await;
    let (_, p) = ctx.get("/api/v1/projects/mnist", Some(&k)).await;
    assert_eq!(p["stats"]["running_count"], 1);

    let (s, p) = ctx
        .patch(
            "/api/v1/projects/mnist",
            Some(&k),
            json!({"description": "MNIST digits", "visibility": "private"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(p["description"], "MNIST digits");
    assert_eq!(p["visibility"], "private");
    let (s, b) = ctx
        .patch(
            "/api/v1/projects/mnist",
            Some(&k),
            json!({"visibility": "secret"}),
        )
        .await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "invalid_input");

    let (s, _) = ctx.delete("/api/v1/projects/mnist", Some(&k)).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = ctx.get("/api/v1/projects/mnist", Some(&k)).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // Everything inside went with it.
    let (s, _) = ctx.get(&format!("/api/v1/runs/{r2}"), Some(&k)).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(
        ctx.count("SELECT COUNT(*) FROM runs WHERE id = $1", &r2)
            .await,
        0
    );
});

each_backend!(project_listing_search_and_pages, |ctx| {
    let a = ctx.user("alice").await;
    let b = ctx.user("bob").await;
    for i in 0..7 {
        ctx.project(
            &a,
            &format!("vision-{i}"),
            if i % 2 == 0 { "public" } else { "private" },
        )
        .await;
    }
    ctx.project(&b, "nlp-bob", "private").await;

    // Alice sees her 7; pages of 3 cover them exactly once.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/projects?limit=3&cursor={c}"),
            None => "/api/v1/projects?limit=3".to_string(),
        };
        let (s, page) = ctx.get(&path, Some(&a)).await;
        assert_eq!(s, StatusCode::OK, "{page}");
        for p in page["items"].as_array().unwrap() {
            seen.push(p["name"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 7, "{seen:?}");
    assert!(!seen.contains(&"nlp-bob".to_string()));

    // Bob sees alice's public ones and his own.
    let (_, page) = ctx.get("/api/v1/projects?limit=100", Some(&b)).await;
    let names: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        vec!["nlp-bob", "vision-0", "vision-2", "vision-4", "vision-6"]
    );
    // Anonymous callers see public projects only.
    let (_, page) = ctx.get("/api/v1/projects", None).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 4);
    // Search and visibility filter.
    let (_, page) = ctx
        .get("/api/v1/projects?q=VISION&visibility=private", Some(&a))
        .await;
    let names: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["vision-1", "vision-3", "vision-5"]);
    // The server admin sees everything.
    let (_, page) = ctx
        .get("/api/v1/projects?limit=100", Some(&ctx.admin_key))
        .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 8);

    let (s, body) = ctx.get("/api/v1/projects?limit=0", Some(&a)).await;
    assert_error(s, &body, StatusCode::BAD_REQUEST, "invalid_input");
    let (s, body) = ctx.get("/api/v1/projects?cursor=%%%", Some(&a)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    let (s, body) = ctx
        .get("/api/v1/projects?visibility=secret", Some(&a))
        .await;
    assert_error(s, &body, StatusCode::BAD_REQUEST, "invalid_input");
    let (s, body) = ctx.get("/api/v1/projects?bogus=1", Some(&a)).await;
    assert_error(s, &body, StatusCode::BAD_REQUEST, "invalid_input");
});

each_backend!(members_and_roles, |ctx| {
    let owner = ctx.user("olive").await;
    let admin = ctx.user("adam").await;
    let viewer = ctx.user("vera").await;
    ctx.project(&owner, "team", "private").await;
    let (s, m) = ctx
        .post(
            "/api/v1/projects/team/members",
            Some(&owner),
            json!({"username": "adam", "role": "admin"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{m}");
    let (s, b) = ctx
        .post(
            "/api/v1/projects/team/members",
            Some(&owner),
            json!({"username": "adam", "role": "member"}),
        )
        .await;
    assert_error(s, &b, StatusCode::CONFLICT, "conflict");
    let (s, b) = ctx
        .post(
            "/api/v1/projects/team/members",
            Some(&owner),
            json!({"username": "ghost", "role": "member"}),
        )
        .await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "not_found");
    let (s, b) = ctx
        .post(
            "/api/v1/projects/team/members",
            Some(&owner),
            json!({"username": "vera", "role": "boss"}),
        )
        .await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "invalid_input");

    // An admin manages members but cannot mint owners.
    let (s, _) = ctx
        .post(
            "/api/v1/projects/team/members",
            Some(&admin),
            json!({"username": "vera", "role": "viewer"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, b) = ctx
        .patch(
            "/api/v1/projects/team/members/vera",
            Some(&admin),
            json!({"role": "owner"}),
        )
        .await;
    assert_error(s, &b, StatusCode::FORBIDDEN, "forbidden");
    // A viewer cannot manage members.
    let (s, b) = ctx
        .patch(
            "/api/v1/projects/team/members/vera",
            Some(&viewer),
            json!({"role": "admin"}),
        )
        .await;
    assert_error(s, &b, StatusCode::FORBIDDEN, "forbidden");
    assert!(b["error"]["message"].as_str().unwrap().contains("viewer"));

    let (s, m) = ctx
        .patch(
            "/api/v1/projects/team/members/vera",
            Some(&admin),
            json!({"role": "member"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(m["role"], "member");
    let (s, list) = ctx
        .get("/api/v1/projects/team/members", Some(&viewer))
        .await;
    assert_eq!(s, StatusCode::OK);
    let roles: Vec<(String, String)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["username"].as_str().unwrap().to_string(),
                m["role"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        roles,
        vec![
            ("adam".into(), "admin".into()),
            ("olive".into(), "owner".into()),
            ("vera".into(), "member".into())
        ]
    );

    // The last owner cannot be demoted or removed.
    let (s, b) = ctx
        .patch(
            "/api/v1/projects/team/members/olive",
            Some(&owner),
            json!({"role": "admin"}),
        )
        .await;
    assert_error(s, &b, StatusCode::CONFLICT, "conflict");
    let (s, _) = ctx
        .delete("/api/v1/projects/team/members/olive", Some(&owner))
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    // Members may leave; admins remove others.
    let (s, _) = ctx
        .delete("/api/v1/projects/team/members/vera", Some(&viewer))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = ctx.get("/api/v1/projects/team", Some(&viewer)).await;
    assert_eq!(
        s,
        StatusCode::NOT_FOUND,
        "a former member of a private project sees nothing"
    );
    let (s, _) = ctx
        .delete("/api/v1/projects/team/members/adam", Some(&owner))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = ctx
        .delete("/api/v1/projects/team/members/adam", Some(&owner))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
});
