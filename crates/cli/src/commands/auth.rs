//! `wanllmdb login`, `logout`, `whoami` and `auth passwd`.

use clap::{Args, Subcommand};
use wanllmdb_api_types::auth::{
    ChangePasswordRequest, CreateApiKeyRequest, CreatedApiKey, LoginRequest, TokenPair, User,
};

use crate::client::{Api, ApiError};
use crate::config::{self, GlobalFlags, KeySource, Settings, StoredIn};
use crate::error::{CliError, CliResult, user_err};
use crate::output::outln;
use crate::output::{Printer, interactive, kv_table};

/// Options of `wanllmdb login`.
#[derive(Debug, Args)]
#[command(after_help = "\
The key is checked against the server, then stored in the OS keyring when one is reachable,
otherwise in a credentials file readable only by you. WANLLMDB_API_KEY and --api-key take
precedence over the stored key in every command.

Examples:
  wanllmdb login --host http://gpu-box:8000 --api-key wlk_…   # the key the server printed
  wanllmdb login --username alice                          # password prompt; makes a new key
  echo \"$PASSWORD\" | wanllmdb login --username alice --password-stdin")]
pub struct LoginArgs {
    /// Sign in with this account's password and create an API key for this machine
    #[arg(long)]
    pub username: Option<String>,
    /// Read the password from stdin (for scripts)
    #[arg(long, requires = "username")]
    pub password_stdin: bool,
}

/// `wanllmdb login`.
pub async fn login(args: LoginArgs, flags: &GlobalFlags, printer: Printer) -> CliResult {
    let host = config::resolve_host(flags)?;
    let key = match (&flags.api_key, &args.username) {
        (Some(k), _) if !k.is_empty() => k.clone(),
        (_, Some(user)) => key_from_password(&host, user, args.password_stdin).await?,
        _ if interactive() => {
            printer.info(format!(
                "Paste an API key for {host} (the server prints the admin key on first start)."
            ));
            dialoguer::Password::new()
                .with_prompt("API key")
                .interact()
                .map_err(|e| CliError::user(format!("no key entered: {e}")))?
        }
        _ => {
            return Err(CliError::user("no API key given").hint(
                "pass --api-key KEY (or set WANLLMDB_API_KEY), or --username NAME --password-stdin",
            ));
        }
    };
    let key = key.trim().to_string();
    let api = Api::with(&host, Some(key.clone()))?;
    let me: User = api.get("/api/v1/auth/me", &[]).await.map_err(|e| match e {
        ApiError::Status { status, .. } if status == reqwest::StatusCode::UNAUTHORIZED => {
            user_err!("{host} did not accept this API key").hint(
                "check the key; an administrator can create one with POST /api/v1/auth/api-keys",
            )
        }
        e => e.into(),
    })?;
    let stored = config::store_key(&host, &me.username, &key).await?;
    let place = match stored {
        StoredIn::Keyring => "the OS keyring".to_string(),
        StoredIn::File(p) => format!("{} (mode 0600; no OS keyring was reachable)", p.display()),
    };
    printer.success(format!(
        "Logged in to {host} as {}; the key is stored in {place}",
        me.username
    ));
    Ok(())
}

async fn key_from_password(host: &str, username: &str, from_stdin: bool) -> CliResult<String> {
    let password = if from_stdin {
        let mut s = String::new();
        std::io::stdin()
            .read_line(&mut s)
            .map_err(|e| user_err!("cannot read the password from stdin: {e}"))?;
        s.trim_end_matches(['\n', '\r']).to_string()
    } else if interactive() {
        dialoguer::Password::new()
            .with_prompt(format!("Password for {username}"))
            .interact()
            .map_err(|e| CliError::user(format!("no password entered: {e}")))?
    } else {
        return Err(CliError::user("no password: stdin is not a terminal")
            .hint("pipe it in with --password-stdin"));
    };
    let anon = Api::with(host, None)?;
    let tokens: TokenPair = anon
        .post(
            "/api/v1/auth/login",
            &LoginRequest {
                username: username.to_string(),
                password,
            },
        )
        .await?;
    let session = Api::with(host, Some(tokens.access_token))?;
    let machine = crate::wrapper::context::host_name().unwrap_or_else(|| "this machine".into());
    let created: CreatedApiKey = session
        .post(
            "/api/v1/auth/api-keys",
            &CreateApiKeyRequest {
                name: Some(format!("wanllmdb CLI on {machine}")),
            },
        )
        .await?;
    Ok(created.key)
}

/// `wanllmdb logout`.
pub async fn logout(flags: &GlobalFlags, printer: Printer) -> CliResult {
    let host = config::resolve_host(flags)?;
    if config::forget_key(&host).await? {
        printer.success(format!("Logged out of {host}; its stored key is forgotten"));
    } else {
        printer.info(format!("No key was stored for {host}"));
    }
    Ok(())
}

/// `wanllmdb whoami`.
pub async fn whoami(flags: &GlobalFlags, printer: Printer) -> CliResult {
    let s = Settings::resolve(flags).await?;
    if s.api_key.is_none() {
        return Err(user_err!("not logged in to {}", s.host)
            .hint("run `wanllmdb login --host URL`, or set WANLLMDB_API_KEY"));
    }
    let me: User = Api::new(&s)?.get("/api/v1/auth/me", &[]).await?;
    let source = match s.key_source {
        KeySource::FlagOrEnv => "--api-key / WANLLMDB_API_KEY",
        KeySource::Keyring => "OS keyring",
        KeySource::File => "credentials file",
        KeySource::None => "none",
    };
    printer.data(&me, || {
        kv_table(&[
            ("user", me.username.clone()),
            ("email", me.email.clone()),
            ("admin", me.is_admin.to_string()),
            ("server", s.host.clone()),
            ("key from", source.to_string()),
            ("project", s.project.clone().unwrap_or_else(|| "-".into())),
        ])
    })
}

/// `wanllmdb auth`: the signed-in account.
#[derive(Debug, Subcommand)]
pub enum AuthCommand {
    /// Change your password; your other sessions end, API keys keep working
    Passwd(PasswdArgs),
    /// Print the API key stored for a server by `wanllmdb login` (for scripts and the Python SDK)
    #[command(after_help = "\
Prints the key `wanllmdb login` stored for the server (--host, WANLLMDB_BASE_URL,
./.wanllmdb.toml or the last server logged in to), from the OS keyring or the credentials file,
on stdout and nothing else. Exits 1 when no key is stored for that server.

Examples:
  wanllmdb auth token
  curl -H \"Authorization: Bearer $(wanllmdb auth token --host http://gpu-box:8000)\" …")]
    Token,
}

/// Options of `wanllmdb auth passwd`.
#[derive(Debug, Args)]
#[command(after_help = "\
The new password needs at least 12 characters with an upper-case letter, a lower-case letter,
a digit and a symbol. Every other session of the account is ended; its API keys (including the
one this command signs in with) keep working: revoke them separately if they may be exposed.
An account that has no password yet (the bootstrap admin) leaves the current one empty.

Examples:
  wanllmdb auth passwd                                  # prompts for the current and new password
  printf '%s\\n%s\\n' \"$OLD\" \"$NEW\" | wanllmdb auth passwd --password-stdin")]
pub struct PasswdArgs {
    /// Read the current password, then the new one, from stdin, one per line (for scripts)
    #[arg(long)]
    pub password_stdin: bool,
}

/// Runs an `auth` subcommand.
pub async fn run(cmd: AuthCommand, flags: &GlobalFlags, printer: Printer) -> CliResult {
    match cmd {
        AuthCommand::Passwd(args) => passwd(args, flags, printer).await,
        AuthCommand::Token => token(flags).await,
    }
}

/// `wanllmdb auth token`: the stored key, on stdout alone.
async fn token(flags: &GlobalFlags) -> CliResult {
    let host = config::resolve_host(flags)?;
    match config::stored_key(&host).await? {
        Some(key) => {
            outln!("{key}")?;
            Ok(())
        }
        None => Err(user_err!("no API key is stored for {host}")
            .hint(format!("run `wanllmdb login --host {host}`"))),
    }
}

/// `wanllmdb auth passwd`.
async fn passwd(args: PasswdArgs, flags: &GlobalFlags, printer: Printer) -> CliResult {
    let s = Settings::resolve(flags).await?;
    if s.api_key.is_none() {
        return Err(user_err!("not logged in to {}", s.host)
            .hint("run `wanllmdb login --host URL`, or set WANLLMDB_API_KEY"));
    }
    let (current, new) = if args.password_stdin {
        passwords_from_stdin()?
    } else if interactive() {
        passwords_from_prompt()?
    } else {
        return Err(CliError::user("no password: stdin is not a terminal")
            .hint("pipe the current and the new password, one per line, with --password-stdin"));
    };
    let req = ChangePasswordRequest {
        current_password: Some(current).filter(|c| !c.is_empty()),
        new_password: new,
    };
    // The answer is an empty 204; only its status matters.
    Api::new(&s)?
        .post_for_stream("/api/v1/auth/password", &req)
        .await?;
    printer.success(format!(
        "Password changed on {}; other sessions were ended, API keys keep working",
        s.host
    ));
    Ok(())
}

fn passwords_from_stdin() -> CliResult<(String, String)> {
    let read = || -> CliResult<String> {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .map_err(|e| user_err!("cannot read the passwords from stdin: {e}"))?;
        Ok(line.trim_end_matches(['\n', '\r']).to_string())
    };
    let current = read()?;
    let new = read()?;
    if new.is_empty() {
        return Err(CliError::user("no new password on stdin")
            .hint("send two lines: the current password, then the new one"));
    }
    Ok((current, new))
}

fn passwords_from_prompt() -> CliResult<(String, String)> {
    let current = dialoguer::Password::new()
        .with_prompt("Current password (empty if the account has none)")
        .allow_empty_password(true)
        .interact()
        .map_err(|e| CliError::user(format!("no password entered: {e}")))?;
    let new = dialoguer::Password::new()
        .with_prompt("New password")
        .with_confirmation("Repeat the new password", "the two entries differ")
        .interact()
        .map_err(|e| CliError::user(format!("no password entered: {e}")))?;
    Ok((current, new))
}
