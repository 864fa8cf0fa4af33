//! Run tags keep the order they were given in: through create, add, remove, resume, update,
//! lists and searches, backups, the upgrade of a database that kept them twice (a JSON list
//! in `runs.tags` and `run_tags`), and the restore of a backup written before that upgrade.

use std::path::{Path, PathBuf};

use reqwest::StatusCode;
use serde_json::{Value, json};
use wanllmdb_server::Store;
use wanllmdb_server::transfer::{self, NoProgress, Target};

use crate::transfer::{drop_schema, postgres_target, sqlite_target};
use crate::{Backend, Ctx, assert_error, backends, each_backend, sha};

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

/// The API key of the user who owns the runs of [`OLD_RUNS`].
const OLD_KEY: &str = "wlk_0123456789abcdef0123456789abcdef0123456789abcdef";

/// Runs as schema version 11 stored them: `(id, runs.tags, rows of run_tags)`. The two
/// places disagree where a hand edit or an interrupted write left them apart.
const OLD_RUNS: [(&str, &str, &[&str]); 6] = [
    (
        "ordered1",
        r#"["zeta","alpha","mid","beta"]"#,
        &["alpha", "beta", "mid", "zeta"],
    ),
    ("mixed001", r#"["b","a"]"#, &["a", "b", "extra2", "extra1"]),
    ("jsononly", r#"["only-json"]"#, &[]),
    ("garbled1", "not json", &["x"]),
    ("notalist", r#"{"a": 1}"#, &["y"]),
    ("untagged", "[]", &[]),
];

/// What the API shows for each of [`OLD_RUNS`] after the upgrade, in id order.
fn upgraded_tags() -> Vec<(String, Value)> {
    [
        ("garbled1", json!(["x"])),
        ("jsononly", json!(["only-json"])),
        ("mixed001", json!(["b", "a", "extra1", "extra2"])),
        ("notalist", json!(["y"])),
        ("ordered1", json!(["zeta", "alpha", "mid", "beta"])),
        ("untagged", json!([])),
    ]
    .into_iter()
    .map(|(id, tags)| (id.to_string(), tags))
    .collect()
}

/// Fills a database at schema version 11: a user with [`OLD_KEY`], project `legacy`, and
/// [`OLD_RUNS`].
async fn insert_old_runs(store: &Store) {
    const USER: &str = "INSERT INTO users (id, username, email, is_admin, created_at) VALUES (1, 'olduser', 'old@example.com', $1, 0)";
    const KEY: &str = "INSERT INTO api_keys (user_id, name, prefix, key_hash, created_at) VALUES (1, 'old', $1, $2, 0)";
    const PROJECT: &str = "INSERT INTO projects (id, name, visibility, owner_id, created_at, updated_at) VALUES (1, 'legacy', 'private', 1, 0, 0)";
    const MEMBER: &str = "INSERT INTO project_members (project_id, user_id, role, added_at) VALUES (1, 1, 'owner', 0)";
    const RUN: &str = "INSERT INTO runs (pk, id, project_id, name, state, tags, created_by, created_at, started_at, heartbeat_at, updated_at) VALUES ($1, $2, 1, $2, 'finished', $3, 1, $1, $1, $1, $1)";
    const TAG: &str = "INSERT INTO run_tags (run_pk, tag) VALUES ($1, $2)";
    wanllmdb_server::on_backend!(store, write, |pool| {
        sqlx::query(USER).bind(false).execute(pool).await.unwrap();
        sqlx::query(KEY)
            .bind(&OLD_KEY[..12])
            .bind(sha(OLD_KEY.as_bytes()))
            .execute(pool)
            .await
            .unwrap();
        sqlx::query(PROJECT).execute(pool).await.unwrap();
        sqlx::query(MEMBER).execute(pool).await.unwrap();
        for (pk, (id, json, tags)) in (1i64..).zip(OLD_RUNS) {
            sqlx::query(RUN)
                .bind(pk)
                .bind(id)
                .bind(json)
                .execute(pool)
                .await
                .unwrap();
            for t in tags {
                sqlx::query(TAG)
                    .bind(pk)
                    .bind(t)
                    .execute(pool)
                    .await
                    .unwrap();
            }
        }
    });
}

/// A server on a database that got [`OLD_RUNS`] at schema version 11, then was upgraded.
async fn upgraded_server(backend: Backend) -> Ctx {
    let dir = tempfile::tempdir().unwrap();
    let fill = |store: Store| async move { insert_old_runs(&store).await };
    let (store, pg_schema) = crate::upgraded_store(backend, dir.path(), 12, fill).await;
    let mut ctx = Ctx::serve(backend, store, dir, Some(OLD_KEY)).await;
    ctx.pg_schema = pg_schema;
    ctx
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upgrade_keeps_every_tag_in_its_order() {
    for backend in backends() {
        let ctx = upgraded_server(backend).await;
        let k = OLD_KEY;
        // Every tag of either place is kept: the listed ones in their order, then the rest.
        assert_eq!(
            listed(&ctx, k, "project=legacy&sort=name&limit=1000").await,
            upgraded_tags(),
            "{backend:?}"
        );
        let found = listed(&ctx, k, "project=legacy&tag=only-json").await;
        assert_eq!(found.len(), 1, "{found:?}");
        let found = listed(&ctx, k, "project=legacy&tag=extra1").await;
        assert_eq!(found.len(), 1, "{found:?}");
        // New tags follow the upgraded ones.
        assert_eq!(
            change(&ctx, k, "mixed001", Some("later"), None).await,
            json!(["b", "a", "extra1", "extra2", "later"])
        );
        // The JSON copy is gone: the schema is the one this version exports.
        let diffs = transfer::schema::differences(&ctx.store).await.unwrap();
        assert_eq!(diffs, Vec::<String>::new(), "{backend:?}");
        ctx.stop().await;
    }
}

/// A backup that `wanllmdb admin backup` wrote at schema version 11: project `legacy` with
/// runs `ordered1` (created with tags zeta, alpha, mid, then beta added), `mixed001` (b, a;
/// then extra2 and extra1 put into `run_tags` only), `jsononly` (only-json, then its
/// `run_tags` rows deleted) and `untagged`, owned by the bootstrap admin.
fn old_backup() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/backup-schema-11.tar")
}

/// The bootstrap admin's API key in [`old_backup`].
const OLD_BACKUP_KEY: &str = "wlk_8092f38517f54c72cd2434e0e15df2dabebbcdb2763f9cfa";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_from_before_the_upgrade_restores_with_its_tag_order() {
    let checked = transfer::verify_backup(&old_backup(), &NoProgress)
        .await
        .unwrap();
    assert!(checked.ok(), "{:?}", checked.problems);
    let want: Vec<(String, Value)> = [
        ("jsononly", json!(["only-json"])),
        ("mixed", json!(["b", "a", "extra1", "extra2"])),
        ("ordered", json!(["zeta", "alpha", "mid", "beta"])),
        ("untagged", json!([])),
    ]
    .into_iter()
    .map(|(name, tags)| (name.to_string(), tags))
    .collect();
    for backend in backends() {
        let data = tempfile::tempdir().unwrap();
        let (target, schema) = match backend {
            Backend::Sqlite => (sqlite_target(data.path()).await, None),
            Backend::Postgres => {
                let base = std::env::var("WANLLMDB_TEST_DATABASE_URL").unwrap();
                let (t, s) = postgres_target(&base, &data.path().join("blobs")).await;
                (t, Some((base, s)))
            }
        };
        let report = transfer::restore(&target, &old_backup(), data.path(), &NoProgress)
            .await
            .unwrap();
        assert!(report.matches, "{backend:?}: {:?}", report.comparisons);
        assert_eq!(report.source.schema_version, 11);
        let tag_rows = report.comparisons.iter().find(|c| c.name == "run_tags");
        assert_eq!(tag_rows.map(|c| c.actual_rows), Some(9), "{report:?}");
        let ctx = Ctx::serve(backend, target.store.clone(), data, Some(OLD_BACKUP_KEY)).await;
        let runs = listed(&ctx, OLD_BACKUP_KEY, "project=legacy&sort=name").await;
        assert_eq!(runs, want, "{backend:?}");
        // The restored copy backs up as this version writes backups.
        let again = transfer::snapshot_manifest(&target, &NoProgress)
            .await
            .unwrap();
        assert_eq!(again.schema_version, 13);
        ctx.stop().await;
        if let Some((base, schema)) = schema {
            drop_schema(&base, &schema).await;
        }
    }
}
