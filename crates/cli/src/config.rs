//! Where the command line finds its host, API key and project: flags, then `WANLLMDB_*`
//! variables, then `./.wanllmdb.toml` (from `wanllmdb init`, looked up in parent directories
//! too), then the user config. API keys live in the OS keyring when one is reachable, else in
//! a 0600 credentials file next to the user config.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::env;
use crate::error::{CliError, CliResult, user_err};

/// The server used when nothing else names one.
pub const DEFAULT_HOST: &str = "http://127.0.0.1:8000";
/// Name of the per-directory settings file.
pub const PROJECT_FILE: &str = ".wanllmdb.toml";
const KEYRING_SERVICE: &str = "wanllmdb";

/// `./.wanllmdb.toml`.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectFile {
    /// Project for commands run in this directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// Server for commands run in this directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Regular expression selecting output lines whose `key: value` numbers become metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scalars: Option<String>,
}

/// The user config (`config.toml`).
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// Server used by default (the last one logged in to).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// What is known about each server logged in to.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub hosts: BTreeMap<String, HostEntry>,
    /// Most the local download cache keeps (`20GiB`, `10%`, `unlimited`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_max_size: Option<String>,
}

/// One server in the user config.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostEntry {
    /// Account the stored key belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The key is in the OS keyring (otherwise in the credentials file).
    #[serde(default)]
    pub keyring: bool,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CredentialsFile {
    #[serde(default)]
    hosts: BTreeMap<String, StoredKey>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredKey {
    api_key: String,
}

/// Global flags, as clap parsed them (flags and environment already merged).
#[derive(Debug, Clone, Default)]
pub struct GlobalFlags {
    /// `--host` / `WANLLMDB_BASE_URL`.
    pub host: Option<String>,
    /// `--api-key` / `WANLLMDB_API_KEY`.
    pub api_key: Option<String>,
    /// `--project` / `WANLLMDB_PROJECT`.
    pub project: Option<String>,
}

/// Where the API key came from, for `whoami`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySource {
    /// `--api-key` or `WANLLMDB_API_KEY`.
    FlagOrEnv,
    /// The OS keyring.
    Keyring,
    /// The credentials file.
    File,
    /// No key at all.
    None,
}

/// Everything a client command needs to reach the server.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Base URL, without a trailing slash.
    pub host: String,
    /// API key, when one is known.
    pub api_key: Option<String>,
    /// Where the key came from.
    pub key_source: KeySource,
    /// Project, when one is known.
    pub project: Option<String>,
    /// The `.wanllmdb.toml` in effect.
    pub project_file: Option<(PathBuf, ProjectFile)>,
}

impl Settings {
    /// Resolves host, key and project.
    pub async fn resolve(flags: &GlobalFlags) -> CliResult<Settings> {
        let project_file = find_project_file()?;
        let user = load_user_config()?;
        let host = pick_host(flags, project_file.as_ref().map(|(_, f)| f), &user)?;
        let (api_key, key_source) = match &flags.api_key {
            Some(k) if !k.is_empty() => (Some(k.clone()), KeySource::FlagOrEnv),
            _ => match load_key(&user, &host).await {
                Some((k, src)) => (Some(k), src),
                None => (None, KeySource::None),
            },
        };
        let project = flags
            .project
            .clone()
            .filter(|p| !p.is_empty())
            .or_else(|| project_file.as_ref().and_then(|(_, f)| f.project.clone()));
        Ok(Settings {
            host,
            api_key,
            key_source,
            project,
            project_file,
        })
    }

    /// The project, or an error that says how to set one.
    pub fn require_project(&self) -> CliResult<wanllmdb_api_types::ProjectName> {
        let name = self.project.as_deref().ok_or_else(|| {
            CliError::user("no project given").hint(
                "pass --project NAME, set WANLLMDB_PROJECT, or run `wanllmdb init --project NAME` in this directory",
            )
        })?;
        crate::commands::valid_project_name(name)
    }
}

/// The server the flags, `./.wanllmdb.toml` or the user config name (without touching
/// any stored key).
pub fn resolve_host(flags: &GlobalFlags) -> CliResult<String> {
    let project_file = find_project_file()?;
    pick_host(
        flags,
        project_file.as_ref().map(|(_, f)| f),
        &load_user_config()?,
    )
}

fn pick_host(
    flags: &GlobalFlags,
    file: Option<&ProjectFile>,
    user: &UserConfig,
) -> CliResult<String> {
    let host = flags
        .host
        .clone()
        .or_else(|| file.and_then(|f| f.host.clone()))
        .or_else(|| user.host.clone())
        .unwrap_or_else(|| DEFAULT_HOST.to_string());
    normalize_host(&host)
}

/// Adds `http://` when no scheme is given and drops trailing slashes.
pub fn normalize_host(host: &str) -> CliResult<String> {
    let h = host.trim().trim_end_matches('/');
    if h.is_empty() {
        return Err(user_err!("the server URL is empty").hint("pass --host http://HOST:PORT"));
    }
    let h = if h.contains("://") {
        h.to_string()
    } else {
        format!("http://{h}")
    };
    if !(h.starts_with("http://") || h.starts_with("https://")) {
        return Err(user_err!(
            "server URL {h:?} must start with http:// or https://"
        ));
    }
    Ok(h)
}

/// Directory of the user config and credentials.
pub fn config_dir() -> CliResult<PathBuf> {
    if let Some(d) = std::env::var_os(env::CONFIG_DIR).filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d));
    }
    dirs::config_dir()
        .map(|d| d.join("wanllmdb"))
        .ok_or_else(|| {
            CliError::user("cannot find a config directory for this user")
                .hint(format!("set {} to a writable directory", env::CONFIG_DIR))
        })
}

/// Looks for `.wanllmdb.toml` in the current directory and its parents.
pub fn find_project_file() -> CliResult<Option<(PathBuf, ProjectFile)>> {
    let Ok(mut dir) = std::env::current_dir() else {
        return Ok(None);
    };
    loop {
        let candidate = dir.join(PROJECT_FILE);
        if candidate.is_file() {
            let text = std::fs::read_to_string(&candidate)
                .map_err(|e| user_err!("cannot read {}: {e}", candidate.display()))?;
            let parsed: ProjectFile = toml::from_str(&text).map_err(|e| {
                user_err!("{} is not valid: {}", candidate.display(), e.message())
                    .hint("it may hold: project, host, scalars")
            })?;
            return Ok(Some((candidate, parsed)));
        }
        if !dir.pop() {
            return Ok(None);
        }
    }
}

/// Reads the user config (empty when absent).
pub fn load_user_config() -> CliResult<UserConfig> {
    let path = config_dir()?.join("config.toml");
    match std::fs::read_to_string(&path) {
        Ok(text) => toml::from_str(&text)
            .map_err(|e| user_err!("{} is not valid: {}", path.display(), e.message())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(UserConfig::default()),
        Err(e) => Err(user_err!("cannot read {}: {e}", path.display())),
    }
}

/// Writes the user config.
pub fn save_user_config(cfg: &UserConfig) -> CliResult<PathBuf> {
    let dir = config_dir()?;
    std::fs::create_dir_all(&dir).map_err(|e| user_err!("cannot create {}: {e}", dir.display()))?;
    let path = dir.join("config.toml");
    let text = toml::to_string(cfg).map_err(|e| CliError::unexpected(e.to_string()))?;
    write_private(&path, text.as_bytes())?;
    Ok(path)
}

/// Writes a file readable only by its owner, atomically.
pub fn write_private(path: &Path, bytes: &[u8]) -> CliResult {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| user_err!("cannot write {}: {e}", tmp.display()))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .map_err(|e| user_err!("cannot write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| user_err!("cannot write {}: {e}", path.display()))?;
    Ok(())
}

fn credentials_path() -> CliResult<PathBuf> {
    Ok(config_dir()?.join("credentials.toml"))
}

fn load_credentials() -> CliResult<CredentialsFile> {
    let path = credentials_path()?;
    match std::fs::read_to_string(&path) {
        Ok(text) => toml::from_str(&text)
            .map_err(|e| user_err!("{} is not valid: {}", path.display(), e.message())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(CredentialsFile::default()),
        Err(e) => Err(user_err!("cannot read {}: {e}", path.display())),
    }
}

fn keyring_allowed() -> bool {
    std::env::var(env::KEYRING)
        .map(|v| v != "0")
        .unwrap_or(true)
}

/// Makes the platform's credential store keyring's default, once per process. Where there is
/// none (no Secret Service on the session bus, a platform without a store) entries cannot be
/// made and keys go to the credentials file.
fn use_platform_store() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        #[cfg(target_os = "linux")]
        if let Ok(store) = zbus_secret_service_keyring_store::Store::new() {
            keyring_core::set_default_store(store);
        }
        #[cfg(target_os = "macos")]
        if let Ok(store) = apple_native_keyring_store::keychain::Store::new() {
            keyring_core::set_default_store(store);
        }
    });
}

/// Runs a keyring operation off the async threads, giving up after two seconds (a missing
/// or locked Secret Service must never hang a command).
async fn with_keyring<T: Send + 'static>(
    host: &str,
    op: impl FnOnce(keyring_core::Entry) -> keyring_core::Result<T> + Send + 'static,
) -> Option<keyring_core::Result<T>> {
    if !keyring_allowed() {
        return None;
    }
    let host = host.to_string();
    let task = tokio::task::spawn_blocking(move || {
        use_platform_store();
        keyring_core::Entry::new(KEYRING_SERVICE, &host).and_then(op)
    });
    match tokio::time::timeout(Duration::from_secs(2), task).await {
        Ok(Ok(r)) => Some(r),
        _ => None,
    }
}

/// The key stored for `host` by `wanllmdb login` (keyring or credentials file), if any.
pub async fn stored_key(host: &str) -> CliResult<Option<String>> {
    let user = load_user_config()?;
    Ok(load_key(&user, host).await.map(|(k, _)| k))
}

async fn load_key(user: &UserConfig, host: &str) -> Option<(String, KeySource)> {
    if user.hosts.get(host).is_some_and(|h| h.keyring)
        && let Some(Ok(k)) = with_keyring(host, |e| e.get_password()).await
    {
        return Some((k, KeySource::Keyring));
    }
    let creds = load_credentials().ok()?;
    creds
        .hosts
        .get(host)
        .map(|k| (k.api_key.clone(), KeySource::File))
}

/// Where a key was stored.
pub enum StoredIn {
    /// The OS keyring.
    Keyring,
    /// The 0600 credentials file at this path.
    File(PathBuf),
}

/// Writes `key` with one entry and reads it back with another: true only when the store
/// really keeps it. A store that accepts writes and forgets them (the in-memory stand-in
/// where no platform store is compiled in, a locked keychain) must not cost the key its file.
fn keeps(write: &keyring_core::Entry, read: &keyring_core::Entry, key: &str) -> bool {
    write.set_password(key).is_ok() && read.get_password().is_ok_and(|got| got == key)
}

/// Stores the key for `host`: keyring when reachable, else the credentials file.
pub async fn store_key(host: &str, username: &str, key: &str) -> CliResult<StoredIn> {
    let k = key.to_string();
    let h = host.to_string();
    let in_keyring = matches!(
        with_keyring(host, move |write| {
            let read = keyring_core::Entry::new(KEYRING_SERVICE, &h)?;
            Ok(keeps(&write, &read, &k))
        })
        .await,
        Some(Ok(true))
    );
    let mut creds = load_credentials()?;
    let stored = if in_keyring {
        // A key left in the file from an earlier login must not shadow the new one.
        if creds.hosts.remove(host).is_some() {
            save_credentials(&creds)?;
        }
        StoredIn::Keyring
    } else {
        creds.hosts.insert(
            host.to_string(),
            StoredKey {
                api_key: key.to_string(),
            },
        );
        StoredIn::File(save_credentials(&creds)?)
    };
    let mut user = load_user_config()?;
    user.host = Some(host.to_string());
    user.hosts.insert(
        host.to_string(),
        HostEntry {
            username: Some(username.to_string()),
            keyring: in_keyring,
        },
    );
    save_user_config(&user)?;
    Ok(stored)
}

fn save_credentials(creds: &CredentialsFile) -> CliResult<PathBuf> {
    let path = credentials_path()?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| user_err!("cannot create {}: {e}", dir.display()))?;
    }
    let text = toml::to_string(creds).map_err(|e| CliError::unexpected(e.to_string()))?;
    write_private(&path, text.as_bytes())?;
    Ok(path)
}

/// Forgets the key for `host` wherever it is stored; says whether there was one.
pub async fn forget_key(host: &str) -> CliResult<bool> {
    let mut found = false;
    let mut user = load_user_config()?;
    if let Some(entry) = user.hosts.remove(host) {
        found = true;
        if entry.keyring {
            let _ = with_keyring(host, |e| e.delete_credential()).await;
        }
        if user.host.as_deref() == Some(host) {
            user.host = None;
        }
        save_user_config(&user)?;
    }
    let mut creds = load_credentials()?;
    if creds.hosts.remove(host).is_some() {
        found = true;
        save_credentials(&creds)?;
    }
    Ok(found)
}

#[cfg(test)]
mod keyring_tests {
    use keyring_core::api::CredentialStoreApi;
    use keyring_core::mock::{Cred, Store};

    use super::*;

    /// An entry for this host in `store`.
    fn entry(store: &Store) -> keyring_core::Entry {
        store
            .build(KEYRING_SERVICE, "localhost:8080", None)
            .unwrap()
    }

    #[test]
    fn a_store_that_forgets_or_fails_does_not_count() {
        // Written to one store and read from another: the key "stored" is not there when read,
        // as with a store that accepts writes and forgets them, so the credentials file must
        // keep it.
        let (forgetful, elsewhere) = (Store::new().unwrap(), Store::new().unwrap());
        assert!(!keeps(&entry(&forgetful), &entry(&elsewhere), "wlk_1"));
        // A store that fails the write (a locked keychain).
        let store = Store::new().unwrap();
        let failing = entry(&store);
        let cred: &Cred = failing.as_any().downcast_ref().unwrap();
        cred.set_error(keyring_core::Error::PlatformFailure("locked".into()));
        assert!(!keeps(&failing, &entry(&store), "wlk_1"));
        // A store that keeps the key, read through a second entry, is believed.
        let store = Store::new().unwrap();
        assert!(keeps(&entry(&store), &entry(&store), "wlk_1"));
    }
}
