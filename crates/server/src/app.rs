//! The router, start-up and shutdown: assembles every feature over the shared state.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{DefaultPredicate, NotForContentType, Predicate};
use utoipa_axum::router::OpenApiRouter;

use crate::auth::{Accounts, TokenKeys};
use crate::config::ServerConfig;
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::{Store, redact_url};
use crate::{auth, health, logs, metrics, openapi, projects, runs};

/// Builds the whole router (API, health, metrics, OpenAPI) for a state.
pub fn router(state: AppState) -> Router {
    let (api, _) = OpenApiRouter::with_openapi(openapi::base())
        .nest("/api/v1", api_routes())
        .split_for_parts();
    api.merge(health::router())
        .merge(crate::telemetry::router(&state.config))
        .route("/api/v1/openapi.json", axum::routing::get(openapi::serve))
        .merge(crate::ui::router(state.clone()))
        .merge(crate::mlflow::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // Inside resolve_actor: the caller is known before a byte of the body is read.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::limits::guard_body,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::resolve_actor,
        ))
        // Outside authentication, so its refusals reach MLflow clients in MLflow's form too.
        .layer(axum::middleware::from_fn(crate::mlflow::translate_errors))
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        // Fastest level: metric histories are large, and level 6 costs far more CPU than it saves.
        .layer(
            CompressionLayer::new()
                .quality(tower_http::CompressionLevel::Fastest)
                // Blob bytes are sent as they are: compressing gigabytes of checkpoints on the
                // fly costs CPU and saves little.
                .compress_when(
                    DefaultPredicate::new()
                        .and(NotForContentType::const_new("application/octet-stream")),
                ),
        )
        // Outermost, so requests refused by the layers above are counted too. `Router::layer`
        // runs after routing, so the matched route is known.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::telemetry::record,
        ))
        .with_state(state)
}

/// Every domain's routes, relative to /api/v1.
fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(auth::routes::router())
        .merge(projects::routes::router())
        .merge(runs::routes::router())
        .merge(metrics::routes::router())
        .merge(logs::routes::router())
        .merge(crate::files::routes::router())
        .merge(crate::artifacts::routes::router())
        .merge(crate::sweeps::routes::router())
        .merge(crate::registry::routes::router())
        .merge(crate::audit::routes::router())
        .merge(crate::system::router())
        .merge(auth::admin_routes::router())
}

/// The OpenAPI document of the whole API.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    let (_, doc) = OpenApiRouter::with_openapi(openapi::base())
        .nest("/api/v1", api_routes())
        .split_for_parts();
    doc
}

/// The OpenAPI document as served: every operation with its security requirement and the
/// error statuses it can answer.
pub fn openapi_json() -> Result<String, serde_json::Error> {
    let mut doc = serde_json::to_value(openapi_document())?;
    openapi::complete(&mut doc);
    serde_json::to_string(&doc)
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::MethodNotAllowed(format!("{method} is not supported on {}", uri.path()))
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::NotFound(format!("no such endpoint: {}", uri.path()))
}

/// A server started in the background (tests and benchmarks use this).
pub struct RunningServer {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// The address `/metrics` is served on, when it has one of its own.
    pub metrics_addr: Option<SocketAddr>,
    /// The API key of the bootstrap admin, when the database was empty.
    pub admin_api_key: Option<String>,
    shutdown: watch::Sender<bool>,
    handle: JoinHandle<std::io::Result<()>>,
}

impl RunningServer {
    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting, finishes in-flight requests, closes the database.
    pub async fn shutdown(self) -> std::io::Result<()> {
        let _ = self.shutdown.send(true);
        self.handle
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))?
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Database problem.
    #[error(transparent)]
    Store(#[from] crate::store::OpenError),
    /// Database query failed during start-up.
    #[error("database error during start-up: {0}")]
    Sql(#[from] sqlx::Error),
    /// Anything else (file system, bootstrap).
    #[error("{0}")]
    Other(String),
    /// I/O.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The data directory is unsafe or unusable.
    #[error(transparent)]
    DataDir(#[from] crate::datadir::DataDirError),
}

/// Prepares state: opens the store, loads keys, bootstraps the admin.
pub async fn build_state(
    config: ServerConfig,
    store: Store,
) -> Result<(AppState, Option<String>), StartError> {
    let keys = TokenKeys::load(&store, config.jwt_secret.as_deref()).await?;
    let dummy_hash = auth::hash_password(auth::random_hex(16))
        .await
        .map_err(|e| StartError::Other(e.to_string()))?;
    let (log_events, _) = broadcast::channel(1024);
    let openapi_json = Arc::new(openapi_json().map_err(|e| StartError::Other(e.to_string()))?);
    let blobs = match &config.s3 {
        None => crate::blobs::BlobStore::local(config.data_dir.join("blobs")),
        Some(cfg) => {
            let s3 = crate::blobs::s3::S3Blobs::new(cfg.clone()).map_err(StartError::Other)?;
            // A wrong bucket, endpoint or key is reported now rather than at the first upload.
            s3.check()
                .await
                .map_err(|e| StartError::Other(format!("cannot use bucket {}: {e}", cfg.bucket)))?;
            crate::blobs::BlobStore::S3(Arc::new(s3))
        }
    };
    let config_period = config.reaper_interval;
    let body_budget = Arc::new(crate::limits::BodyBudget::new(
        config.max_inflight_body_bytes,
    ));
    let state = AppState {
        store,
        config: Arc::new(config),
        keys,
        dummy_hash,
        log_events,
        openapi_json,
        blobs,
        sweep_curves: Arc::default(),
        sweep_trials: Arc::default(),
        telemetry: Arc::default(),
        singletons: Arc::new(crate::lease::Singletons::new(config_period)),
        body_budget,
        basic_logins: Arc::default(),
    };
    let admin_key = bootstrap_admin(&state).await?;
    Ok((state, admin_key))
}

/// On an empty database: creates `admin` with an API key, writes the key to
/// `<data_dir>/admin-api-key` (0600) and returns it.
async fn bootstrap_admin(state: &AppState) -> Result<Option<String>, StartError> {
    let accounts = Accounts { state };
    let err = |e: ApiError| StartError::Other(format!("cannot create the admin account: {e}"));
    if !state.config.bootstrap_admin || accounts.user_count().await.map_err(err)? > 0 {
        return Ok(None);
    }
    let user = match accounts
        .insert_user("admin", "admin@localhost", None, true)
        .await
    {
        Ok(u) => u,
        // Another replica bootstrapped at the same moment.
        Err(ApiError::Conflict(_)) => return Ok(None),
        Err(e) => return Err(err(e)),
    };
    let key = accounts
        .insert_api_key(user.id, "bootstrap")
        .await
        .map_err(err)?;
    let path = state.config.data_dir.join("admin-api-key");
    if let Err(e) = write_secret_file(&path, &format!("{}\n", key.key)) {
        // Without the file nobody could ever log in as admin: undo, so the next start retries.
        accounts.delete_user(user.id).await.map_err(err)?;
        return Err(StartError::Other(format!(
            "cannot write {}: {e}",
            path.display()
        )));
    }
    Ok(Some(key.key))
}

fn write_secret_file(path: &std::path::Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    f.write_all(contents.as_bytes())
}

/// Starts the server on `listener` in the background.
pub async fn start(
    config: ServerConfig,
    listener: TcpListener,
) -> Result<RunningServer, StartError> {
    if let Some(note) = crate::datadir::prepare(&config.data_dir)? {
        tracing::warn!("{note}");
    }
    let url = config.effective_database_url();
    if let Some(file) = sqlite_file(&url) {
        crate::datadir::private_sqlite_files(file)?;
    }
    let store = Store::open(&url).await?;
    if let Some(file) = sqlite_file(&url) {
        // The write-ahead log and shared memory files exist now.
        crate::datadir::private_sqlite_files(file)?;
    }
    start_with_store(config, store, listener).await
}

/// The file of a `sqlite://FILE[?options]` URL (not an in-memory database).
fn sqlite_file(url: &str) -> Option<&std::path::Path> {
    let rest = url.strip_prefix("sqlite:")?;
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let file = rest.split('?').next().unwrap_or("");
    (!file.is_empty() && !file.starts_with(":memory:")).then(|| std::path::Path::new(file))
}

/// Starts the server on an already opened store (tests use this to isolate databases).
pub async fn start_with_store(
    config: ServerConfig,
    store: Store,
    listener: TcpListener,
) -> Result<RunningServer, StartError> {
    if let Some(note) = crate::datadir::prepare(&config.data_dir)? {
        tracing::warn!("{note}");
    }
    let metrics_listener = crate::telemetry::bind(config.metrics_bind)
        .await
        .map_err(StartError::Other)?;
    let (state, admin_api_key) = build_state(config, store.clone()).await?;
    if let Err(e) = crate::files::fill_pending_md5(&state).await {
        tracing::warn!("pending MD5s not resumed: {e}");
    }
    let addr = listener.local_addr()?;
    let metrics_addr = metrics_listener
        .as_ref()
        .map(TcpListener::local_addr)
        .transpose()?;
    let (tx, rx) = watch::channel(false);
    let metrics = metrics_listener.map(|l| crate::telemetry::serve(l, state.clone(), rx.clone()));
    let background = [
        runs::spawn_reaper(state.clone(), rx.clone()),
        crate::sweeps::spawn_scheduler(state.clone(), rx.clone()),
    ];
    let header_timeout = state.config.header_timeout;
    let app = router(state);
    let handle = tokio::spawn(async move {
        let res = crate::connections::serve(listener, app, header_timeout, rx.clone()).await;
        if let Some(m) = metrics {
            let _ = m.await;
        }
        for task in background {
            let _ = task.await;
        }
        store.close().await;
        res
    });
    Ok(RunningServer {
        addr,
        metrics_addr,
        admin_api_key,
        shutdown: tx,
        handle,
    })
}

/// Runs the server until `shutdown` resolves (the binary passes SIGINT/SIGTERM).
pub async fn serve(
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let listener = TcpListener::bind(config.bind)
        .await
        .map_err(|e| StartError::Other(format!("cannot listen on {}: {e}", config.bind)))?;
    let db = redact_url(&config.effective_database_url());
    let data_dir = config.data_dir.clone();
    let server = start(config, listener).await?;
    let url = server.url();
    if let Some(key) = &server.admin_api_key {
        eprintln!(
            "\nCreated the administrator account 'admin'. Its API key (shown only this once, also saved to {}):\n\n    {key}\n\nLog in with:\n\n    wanllmdb login --host {url} --api-key {key}\n",
            data_dir.join("admin-api-key").display()
        );
    }
    let metrics = server
        .metrics_addr
        .map_or(String::new(), |m| format!(", metrics: http://{m}/metrics"));
    eprintln!(
        "wanllmdb server {} listening on {url} (database: {db}{metrics})",
        env!("CARGO_PKG_VERSION")
    );
    let mut server = server;
    tokio::select! {
        _ = shutdown => {}
        res = &mut server.handle => {
            return match res {
                Ok(Ok(())) => Err(StartError::Other("server stopped unexpectedly".into())),
                Ok(Err(e)) => Err(StartError::Io(e)),
                Err(e) => Err(StartError::Other(e.to_string())),
            };
        }
    }
    eprintln!("shutting down: finishing in-flight requests");
    server.shutdown().await?;
    eprintln!("stopped");
    Ok(())
}
