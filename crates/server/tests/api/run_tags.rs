//! Run tags keep the order they were given in: through create, add, remove, resume, update,
//! lists and searches, and backups.

use reqwest::StatusCode;
use serde_json::{Value, json};
use wanllmdb_server::transfer::{self, NoProgress, Target};

use crate::transfer::sqlite_target;
use crate::{Backend, Ctx, assert_error, each_backend};

/// The tags of run `id` as the API shows them.
async fn tags_of(ctx: &Ctx, key: &str, id: &str) -> Value {
    let (s, r) = ctx.get(&format!("/api/v1/runs/{id}"), Some(key)).await;
    assert_eq!(s, StatusCode::OK, "{r}");
    r["tags"].clone()
}

/// `(name, tags)` of every run a search returns, in its order.
async fn listed(ctx: &Ctx, key: &str, query: &str) -> Vec<(String, Value)> {
    let (s, page) = ctx.get(&format!("/api/v1/runs?{query}"), Some(key)).await;
    assert_eq!(s, StatusCode::OK, "{query}: {page}");
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["name"].as_str().unwrap().to_string(), r["tags"].clone()))
        .collect()
}

/// Adds (`Some`) or removes a tag and returns the run's tags after.
async fn change(ctx: &Ctx, key: &str, id: &str, add: Option<&str>, remove: Option<&str>) -> Value {
    let path = format!("/api/v1/runs/{id}/tags");
    let (s, r) = match (add, remove) {
        (Some(t), _) => ctx.post(&path, Some(key), json!({ "tag": t })).await,
        (_, Some(t)) => ctx.delete(&format!("{path}/{t}"), Some(key)).await,
        _ => unreachable!(),
    };
    assert_eq!(s, StatusCode::OK, "{r}");
    r["tags"].clone()
}

each_backend!(tags_keep_the_order_they_were_given_in, |ctx| {
    let k = ctx.user("alice").await;
    ctx.project(&k, "p", "private").await;
    let body = json!({"id": "order001", "name": "first", "tags": ["zeta", "alpha", "mid"]});
    let id = ctx.run(&k, "p", body).await;
    assert_eq!(
        tags_of(&ctx, &k, &id).await,
        json!(["zeta", "alpha", "mid"])
    );
    // An added tag goes last; a removed one leaves the others in order; re-added, it is last.
    assert_eq!(
        change(&ctx, &k, &id, Some("beta"), None).await,
        json!(["zeta", "alpha", "mid", "beta"])
    );
    assert_eq!(
        change(&ctx, &k, &id, None, Some("alpha")).await,
        json!(["zeta", "mid", "beta"])
    );
    assert_eq!(
        change(&ctx, &k, &id, Some("alpha"), None).await,
        json!(["zeta", "mid", "beta", "alpha"])
    );
    // Resuming adds the new tags after the run's own and keeps those it repeats in place.
    let (s, r) = ctx
        .post(
            "/api/v1/runs",
            Some(&k),
            json!({"project": "p", "id": id, "tags": ["new", "zeta"]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    let five = json!(["zeta", "mid", "beta", "alpha", "new"]);
    assert_eq!(r["tags"], five);

    // Lists and searches show each run's tags in its order.
    let other = json!({"id": "order002", "name": "second", "tags": ["b", "a"]});
    ctx.run(&k, "p", other).await;
    let pair = |name: &str, tags: &Value| (name.to_string(), tags.clone());
    assert_eq!(
        listed(&ctx, &k, "project=p&sort=name").await,
        [pair("first", &five), pair("second", &json!(["b", "a"]))]
    );
    assert_eq!(
        listed(&ctx, &k, "project=p&tag=new").await,
        [pair("first", &five)]
    );
    assert_eq!(
        listed(&ctx, &k, "project=p&filter=tags%20%3D%20a&sort=-name").await,
        [pair("second", &json!(["b", "a"]))]
    );

    // An update sets the list in the order given; later additions follow it.
    let (s, r) = ctx
        .patch(
            &format!("/api/v1/runs/{id}"),
            Some(&k),
            json!({"tags": ["m", "c", "x"]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(r["tags"], json!(["m", "c", "x"]));
    let four = json!(["m", "c", "x", "a"]);
    assert_eq!(change(&ctx, &k, &id, Some("a"), None).await, four);

    // A resume that would take the run past 128 tags changes nothing.
    let many: Vec<String> = (0..125).map(|i| format!("t{i:03}")).collect();
    let (s, b) = ctx
        .post(
            "/api/v1/runs",
            Some(&k),
            json!({"project": "p", "id": id, "tags": many, "name": "renamed"}),
        )
        .await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "invalid_input");
    let (_, r) = ctx.get(&format!("/api/v1/runs/{id}"), Some(&k)).await;
    assert_eq!((&r["name"], &r["tags"]), (&json!("first"), &four));

    // A backup restored elsewhere reads back the same.
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("b.tar");
    let source = Target {
        store: ctx.store.clone(),
        blobs: wanllmdb_server::blobs::BlobStore::local(ctx._dir.path().join("blobs")),
    };
    transfer::backup(&source, &file, &NoProgress).await.unwrap();
    let data = tempfile::tempdir().unwrap();
    let target = sqlite_target(data.path()).await;
    let report = transfer::restore(&target, &file, work.path(), &NoProgress)
        .await
        .unwrap();
    assert!(report.matches, "{:?}", report.comparisons);
    let copy = Ctx::serve(Backend::Sqlite, target.store.clone(), data, Some(&k)).await;
    assert_eq!(
        listed(&copy, &k, "project=p&sort=name").await,
        [pair("first", &four), pair("second", &json!(["b", "a"]))]
    );
    copy.stop().await;
});
