//! API tests: every endpoint, the authorization matrix and bad input, run against SQLite and,
//! when `WANLLMDB_TEST_DATABASE_URL` is set, against PostgreSQL too (the storage conformance
//! suite: the same behaviour is required of both backends).

mod accounts;
mod admin_users;
mod artifact_versions;
mod artifacts;
mod audit;
mod audit_coverage;
mod errors;
mod files;
mod history_binary;
mod logs;
mod matrix;
mod metrics;
mod mlflow;
#[path = "../../../../tests/support/moto.rs"]
mod moto;
mod openapi;
mod product;
mod projects;
mod registry;
mod registry_surface;
mod run_tags;
mod runs;
mod s3;
mod sessions;
mod sweep_options;
mod sweeps;
mod telemetry;
mod transfer;
mod ui;
mod uploads;
mod wire;

use std::str::FromStr;
use std::time::Duration;

use reqwest::{Client, Method, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};
use sqlx::postgres::PgConnectOptions;
use wanllmdb_server::{RunningServer, ServerConfig, Store};

/// Which database a test server uses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A running server with its admin key and an HTTP client.
pub struct Ctx {
    pub backend: Backend,
    pub server: Option<RunningServer>,
    pub url: String,
    pub admin_key: String,
    pub client: Client,
    pub store: Store,
    _dir: tempfile::TempDir,
    pg_schema: Option<(String, String)>,
}

/// A new, empty schema in the PostgreSQL database of `WANLLMDB_TEST_DATABASE_URL`: options
/// that connect to it, and the URL and schema name for dropping it.
pub async fn new_pg_schema() -> (PgConnectOptions, (String, String)) {
    let base = std::env::var("WANLLMDB_TEST_DATABASE_URL").unwrap();
    let schema = format!("t_{}", wanllmdb_server::auth::random_hex(6));
    let admin = sqlx::PgPool::connect(&base).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
    let opts = PgConnectOptions::from_str(&base)
        .unwrap()
        .options([("search_path", schema.as_str())]);
    (opts, (base, schema))
}

/// The server's migrations before schema `version`.
fn migrations_before(all: sqlx::migrate::Migrator, version: i64) -> sqlx::migrate::Migrator {
    sqlx::migrate::Migrator::with_migrations(
        all.iter()
            .filter(|m| m.version < version)
            .cloned()
            .collect(),
    )
}

/// A database upgraded the way the server upgrades one at start: it gets the migrations
/// before schema `version`, then what `fill` writes, then the rest. Returns the store and, on
/// PostgreSQL, the URL and schema name for dropping it.
pub async fn upgraded_store<F: Future<Output = ()>>(
    backend: Backend,
    dir: &std::path::Path,
    version: i64,
    fill: impl FnOnce(Store) -> F,
) -> (Store, Option<(String, String)>) {
    use wanllmdb_server::store::Backend as Pools;
    match backend {
        Backend::Sqlite => {
            let url = format!("sqlite://{}?mode=rwc", dir.join("t.db").display());
            let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
            migrations_before(sqlx::migrate!("migrations/sqlite"), version)
                .run(&pool)
                .await
                .unwrap();
            let (write, read) = (pool.clone(), pool.clone());
            fill(Store {
                backend: Pools::Sqlite { write, read },
            })
            .await;
            pool.close().await;
            (Store::open(&url).await.unwrap(), None)
        }
        Backend::Postgres => {
            let (opts, schema) = new_pg_schema().await;
            let pool = sqlx::PgPool::connect_with(opts.clone()).await.unwrap();
            migrations_before(sqlx::migrate!("migrations/postgres"), version)
                .run(&pool)
                .await
                .unwrap();
            fill(Store {
                backend: Pools::Postgres(pool.clone()),
            })
            .await;
            pool.close().await;
            let store = Store::open_postgres(opts).await.unwrap();
            store.migrate().await.unwrap();
            (store, Some(schema))
        }
    }
}

/// Backends to test: SQLite always, PostgreSQL when configured.
pub fn backends() -> Vec<Backend> {
    let mut v = vec![Backend::Sqlite];
    if std::env::var("WANLLMDB_TEST_DATABASE_URL").is_ok_and(|u| !u.is_empty()) {
        v.push(Backend::Postgres);
    }
    v
}

pub fn test_config(dir: &std::path::Path) -> ServerConfig {
    let mut cfg = ServerConfig::new(dir);
    cfg.max_body_bytes = 4 * 1024 * 1024;
    cfg.reaper_interval = Duration::from_millis(200);
    // Tests replay a spent refresh token at once and expect the reuse answer; the grace
    // window is tested on its own.
    cfg.refresh_grace = Duration::ZERO;
    cfg
}

impl Ctx {
    pub async fn start(backend: Backend) -> Ctx {
        Self::start_with(backend, |_| {}).await
    }

    pub async fn start_with(backend: Backend, tweak: impl FnOnce(&mut ServerConfig)) -> Ctx {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = test_config(dir.path());
        tweak(&mut cfg);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (store, pg_schema) = match backend {
            Backend::Sqlite => {
                let url = format!("sqlite://{}", dir.path().join("t.db").display());
                (Store::open(&url).await.unwrap(), None)
            }
            Backend::Postgres => {
                let (opts, schema) = new_pg_schema().await;
                let store = Store::open_postgres(opts).await.unwrap();
                store.migrate().await.unwrap();
                (store, Some(schema))
            }
        };
        let server = wanllmdb_server::start_with_store(cfg, store.clone(), listener)
            .await
            .unwrap();
        let admin_key = server.admin_api_key.clone().expect("bootstrap admin key");
        // reqwest is built with TLS but no crypto provider of its own (see crates/cli).
        let _ = rustls::crypto::ring::default_provider().install_default();
        Ctx {
            backend,
            url: server.url(),
            server: Some(server),
            admin_key,
            client: Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
            store,
            _dir: dir,
            pg_schema,
        }
    }

    /// A server on `store`, with its data directory `dir`, called with `key` (by default the
    /// key of the admin it bootstraps on a database without users).
    pub async fn serve(
        backend: Backend,
        store: Store,
        dir: tempfile::TempDir,
        key: Option<&str>,
    ) -> Ctx {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server =
            wanllmdb_server::start_with_store(test_config(dir.path()), store.clone(), listener)
                .await
                .unwrap();
        let _ = rustls::crypto::ring::default_provider().install_default();
        let admin_key = key
            .map(str::to_string)
            .or_else(|| server.admin_api_key.clone())
            .expect("bootstrap admin key");
        Ctx {
            backend,
            url: server.url(),
            admin_key,
            server: Some(server),
            client: Client::new(),
            store,
            _dir: dir,
            pg_schema: None,
        }
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await.unwrap();
        }
        if let Some((base, schema)) = self.pg_schema.take() {
            let admin = sqlx::PgPool::connect(&base).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
                .execute(&admin)
                .await
                .unwrap();
            admin.close().await;
        }
    }

    pub fn req(&self, method: Method, path: &str, token: Option<&str>) -> RequestBuilder {
        // Absolute URLs (presigned object-storage URLs) are used as they are.
        let url = if path.starts_with("http://") || path.starts_with("https://") {
            path.to_string()
        } else {
            format!("{}{}", self.url, path)
        };
        let mut r = self.client.request(method, url);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r
    }

    /// Sends JSON (or nothing) and returns status and parsed body (Null when empty).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut r = self.req(method, path, token);
        if let Some(b) = body {
            r = r.json(&b);
        }
        read(r.send().await.unwrap()).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        self.call(Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, token, Some(body)).await
    }

    pub async fn patch(&self, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        self.call(Method::PATCH, path, token, Some(body)).await
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        self.call(Method::DELETE, path, token, None).await
    }

    /// Registers a user and returns an API key for it.
    pub async fn user(&self, name: &str) -> String {
        let (s, b) = self
            .post(
                "/api/v1/auth/register",
                None,
                json!({"username": name, "email": format!("{name}@example.com"), "password": PASSWORD}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        let (s, b) = self.login(name, PASSWORD).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        let access = b["access_token"].as_str().unwrap().to_string();
        let (s, k) = self
            .post(
                "/api/v1/auth/api-keys",
                Some(&access),
                json!({"name": "test"}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{k}");
        k["key"].as_str().unwrap().to_string()
    }

    pub async fn login(&self, name: &str, password: &str) -> (StatusCode, Value) {
        self.post(
            "/api/v1/auth/login",
            None,
            json!({"username": name, "password": password}),
        )
        .await
    }

    /// Creates a project owned by `token`'s user.
    pub async fn project(&self, token: &str, name: &str, visibility: &str) {
        let (s, b) = self
            .post(
                "/api/v1/projects",
                Some(token),
                json!({"name": name, "visibility": visibility}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
    }

    /// Creates a run and returns its id.
    pub async fn run(&self, token: &str, project: &str, body: Value) -> String {
        let mut b = body;
        b["project"] = json!(project);
        let (s, r) = self.post("/api/v1/runs", Some(token), b).await;
        assert!(s == StatusCode::CREATED || s == StatusCode::OK, "{s} {r}");
        r["id"].as_str().unwrap().to_string()
    }

    /// Stops the server and starts a new one on the same database and data directory, as a
    /// process restart would.
    pub async fn restart(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await.unwrap();
        }
        // Shutting down closes the database: open it again, as a new process would.
        self.store = match &self.pg_schema {
            None => {
                let url = format!("sqlite://{}", self._dir.path().join("t.db").display());
                Store::open(&url).await.unwrap()
            }
            Some((base, schema)) => {
                let opts = PgConnectOptions::from_str(base)
                    .unwrap()
                    .options([("search_path", schema.as_str())]);
                Store::open_postgres(opts).await.unwrap()
            }
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = wanllmdb_server::start_with_store(
            test_config(self._dir.path()),
            self.store.clone(),
            listener,
        )
        .await
        .unwrap();
        self.url = server.url();
        self.server = Some(server);
    }

    /// Runs a `SELECT COUNT(*) …` straight against the database (audit and storage checks).
    pub async fn count(&self, sql: &'static str, arg: &str) -> i64 {
        wanllmdb_server::on_backend!(self.store, read, |pool| {
            sqlx::query_scalar::<_, i64>(sql)
                .bind(arg)
                .fetch_one(pool)
                .await
                .unwrap()
        })
    }
}

pub const PASSWORD: &str = "Correct-Horse-42";

pub async fn read(resp: Response) -> (StatusCode, Value) {
    let status = resp.status();
    let text = resp.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, body)
}

/// Asserts an error response has the documented shape and code.
pub fn assert_error(status: StatusCode, body: &Value, want: StatusCode, code: &str) {
    assert_eq!(status, want, "body: {body}");
    assert_eq!(body["error"]["code"], code, "body: {body}");
    let msg = body["error"]["message"].as_str().unwrap_or("");
    assert!(!msg.is_empty(), "error message missing: {body}");
    assert!(
        body["error"]["details"].is_object(),
        "details missing: {body}"
    );
}

/// SHA-256 of bytes, lowercase hex.
pub fn sha(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Sends bytes to a signed upload URL.
pub async fn upload(ctx: &Ctx, url: &str, bytes: &[u8]) -> (StatusCode, Value) {
    read(
        ctx.req(Method::PUT, url, None)
            .body(bytes.to_vec())
            .send()
            .await
            .unwrap(),
    )
    .await
}

/// Runs a test body against each backend.
#[macro_export]
macro_rules! each_backend {
    ($name:ident, |$ctx:ident| $body:block) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            for backend in $crate::backends() {
                #[allow(unused_mut)]
                let mut $ctx = $crate::Ctx::start(backend).await;
                $body
                $ctx.stop().await;
            }
        }
    };
}
