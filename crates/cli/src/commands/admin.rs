//! `wanllmdb admin …`: server administration.

use std::io::BufRead;

use clap::{Args, Subcommand};
use wanllmdb_api_types::admin::{
    AdminApiKey, AdminUser, CreateUserRequest, CreatedUser, DisabledUser, PasswordReset,
    ResetPasswordRequest,
};
use wanllmdb_api_types::files::GcReport;

use crate::client::{Api, seg};
use crate::commands::JsonFlag;
use crate::config::{GlobalFlags, Settings};
use crate::error::{CliResult, user_err};
use crate::output::outln;
use crate::output::when;
use crate::output::{Printer, kv_table, table};

/// `wanllmdb admin` subcommands.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Delete stored file contents nothing refers to any more (server administrators only)
    #[command(after_help = "\
Bytes uploaded or re-uploaded within the last hour are kept, so transfers in progress are
never affected; partial uploads abandoned for an hour are removed too.

Examples:
  wanllmdb admin gc --dry-run     # what would be deleted
  wanllmdb admin gc")]
    Gc {
        /// Only report what would be deleted
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Accounts: list, show, create, disable, enable, reset passwords, promote, demote
    /// (server administrators only)
    #[command(subcommand)]
    User(UserCommand),
    /// Every account's API keys: list and revoke (server administrators only)
    #[command(subcommand, name = "api-key")]
    ApiKey(ApiKeyCommand),
    /// The server's version, uptime, CPU, memory, disk, database and blob store (server
    /// administrators only)
    #[command(after_help = "\
Figures come from the server process that answers; behind a load balancer, each replica
reports its own machine.

Examples:
  wanllmdb admin status
  wanllmdb admin status --json | jq .system.disk.free_bytes")]
    Status {
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Write a consistent backup of the server's database and local blobs to one file, while
    /// the server keeps running (reads the storage directly; no login needed)
    #[command(after_help = "\
The archive holds one snapshot of every table and the content blobs it records; writes that
arrive while it runs are either wholly in it or not at all. With S3 storage the blobs are
copied from the bucket too. See docs/backup.md.

Examples:
  wanllmdb admin backup --out wanllmdb-$(date +%F).tar --data-dir /srv/wanllmdb
  wanllmdb admin backup --out nightly.tar --database-url postgres://wanllmdb@db/wanllmdb \\
      --storage-url s3://ml-artifacts/wanllmdb")]
    Backup(super::backup::BackupArgs),
    /// Restore a backup into a new data directory (or an empty database and bucket)
    #[command(after_help = "\
The target must be empty: restore before any server has started on it. Every table and blob is
compared with the backup's manifest at the end; any difference exits with 1.

Examples:
  wanllmdb admin restore wanllmdb-2026-11-28.tar --data-dir /srv/wanllmdb-restored
  wanllmdb admin restore nightly.tar --database-url postgres://wanllmdb@db/new --storage-url s3://ml-restored")]
    Restore(super::backup::RestoreArgs),
    /// Check the database's integrity, every metric chunk's checksum and every blob's digest, or
    /// a backup file against its manifest; exits with 1 and lists the problems when anything
    /// is wrong
    #[command(after_help = "\
Examples:
  wanllmdb admin verify --data-dir /srv/wanllmdb
  wanllmdb admin verify --backup wanllmdb-2026-11-28.tar
  wanllmdb admin verify --database-url postgres://wanllmdb@db/wanllmdb --storage-url s3://ml-artifacts --json")]
    Verify(super::backup::VerifyArgs),
    /// Export everything (tables as JSON lines, blobs as files) into a directory, to import
    /// into another backend
    #[command(after_help = "\
Exports from SQLite and from PostgreSQL are byte-identical for the same content, so an export
moves a server between backends: SQLite <-> PostgreSQL, local files <-> S3.

Examples:
  wanllmdb admin export --out /mnt/move/wanllmdb --data-dir /srv/wanllmdb
  wanllmdb admin export --out export/ --json | jq '.tables[] | select(.rows > 0)'")]
    Export(super::backup::ExportArgs),
    /// Import an export into an empty database and blob store, then compare counts and
    /// checksums with the export
    #[command(after_help = "\
Examples:
  wanllmdb admin import /mnt/move/wanllmdb --database-url postgres://wanllmdb@db/wanllmdb \\
      --storage-url s3://ml-artifacts/wanllmdb --s3-endpoint http://minio:9000
  wanllmdb admin import export/ --data-dir /srv/wanllmdb-copy")]
    Import(super::backup::ImportArgs),
    /// Rewrite metric chunks stored in an older format in the current one (with a checksum),
    /// working on the storage directly; safe while the server runs
    #[command(after_help = "\
Chunks written by older versions stay readable; this gives them a checksum and the current,
smaller coding. It reads every chunk once, a page per transaction, and leaves a chunk alone if
an append rewrote it meanwhile. Damaged chunks are reported and left as they are (exit 1).
See docs/storage.md.

Examples:
  wanllmdb admin compact --data-dir /srv/wanllmdb
  wanllmdb admin compact --database-url postgres://wanllmdb@db/wanllmdb --json")]
    Compact(super::backup::CompactArgs),
}

/// `wanllmdb admin user` subcommands.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// List accounts, oldest first
    #[command(
        alias = "ls",
        after_help = "\
Examples:
  wanllmdb admin user list
  wanllmdb admin user list --search example.com
  wanllmdb admin user list --json | jq -r '.[] | select(.disabled) | .username'"
    )]
    List {
        /// Only accounts whose username or email contains this text (any case)
        #[arg(long)]
        search: Option<String>,
        /// At most this many
        #[arg(long, default_value_t = 1000)]
        limit: usize,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Show one account
    #[command(after_help = "\
Examples:
  wanllmdb admin user show alice
  wanllmdb admin user show alice --json")]
    Show(UserArgs),
    /// Create an account; without --password-stdin a strong password is generated and
    /// printed once on stdout
    #[command(after_help = "\
The password is never taken as an argument (it would end up in the shell history and the
process list): pipe it in with --password-stdin, or let the server generate one.

Examples:
  wanllmdb admin user create alice --email alice@example.com
  wanllmdb admin user create ops --email ops@example.com --admin
  echo \"$PASSWORD\" | wanllmdb admin user create bob --email bob@example.com --password-stdin")]
    Create {
        /// Username (3 to 64 of A-Z a-z 0-9 . _ -)
        username: String,
        /// Email address (unique on the server)
        #[arg(long)]
        email: String,
        /// Make the account a server administrator
        #[arg(long)]
        admin: bool,
        /// Read the password from the first line of stdin instead of generating one
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Disable an account: it cannot log in, and its API keys and sessions are revoked at once
    #[command(after_help = "\
You cannot disable your own account, nor the last enabled server administrator.

Examples:
  wanllmdb admin user disable mallory")]
    Disable(UserArgs),
    /// Let a disabled account log in again (its revoked API keys stay revoked)
    #[command(after_help = "\
Examples:
  wanllmdb admin user enable alice")]
    Enable(UserArgs),
    /// Set a new password and end the account's sessions (its API keys are kept)
    #[command(after_help = "\
Without --password-stdin a strong password is generated and printed once on stdout.

Examples:
  wanllmdb admin user reset-password alice
  echo \"$PASSWORD\" | wanllmdb admin user reset-password alice --password-stdin")]
    ResetPassword {
        /// Username
        username: String,
        /// Read the new password from the first line of stdin instead of generating one
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Make an account a server administrator
    #[command(after_help = "\
Examples:
  wanllmdb admin user promote alice")]
    Promote(UserArgs),
    /// Make a server administrator an ordinary account
    #[command(after_help = "\
You cannot demote yourself, nor the last enabled server administrator.

Examples:
  wanllmdb admin user demote alice")]
    Demote(UserArgs),
}

/// One account, and output format.
#[derive(Debug, Args)]
pub struct UserArgs {
    /// Username
    pub username: String,
    #[command(flatten)]
    pub json: JsonFlag,
}

/// `wanllmdb admin api-key` subcommands.
#[derive(Debug, Subcommand)]
pub enum ApiKeyCommand {
    /// List active API keys of every account, or of one (never the secrets)
    #[command(
        alias = "ls",
        after_help = "\
Examples:
  wanllmdb admin api-key list
  wanllmdb admin api-key list --user alice --json"
    )]
    List {
        /// Only this account's keys
        #[arg(long)]
        user: Option<String>,
        /// At most this many
        #[arg(long, default_value_t = 1000)]
        limit: usize,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Revoke an API key of any account, by id
    #[command(after_help = "\
Examples:
  wanllmdb admin api-key list --user alice     # find the id
  wanllmdb admin api-key revoke 42")]
    Revoke {
        /// Key id (the ID column of `admin api-key list`)
        id: i64,
    },
}

/// Runs an `admin` subcommand.
pub async fn run(cmd: AdminCommand, flags: &GlobalFlags, printer: Printer) -> CliResult {
    match cmd {
        AdminCommand::Gc { dry_run, json } => gc(dry_run, json.json, flags, printer).await,
        AdminCommand::User(c) => user(c, &admin_api(flags).await?, printer).await,
        AdminCommand::ApiKey(c) => api_key(c, &admin_api(flags).await?, printer).await,
        AdminCommand::Status { json } => {
            super::status::run(&admin_api(flags).await?, json.json, printer).await
        }
        AdminCommand::Backup(a) => super::backup::backup(a, printer).await,
        AdminCommand::Restore(a) => super::backup::restore(a, printer).await,
        AdminCommand::Verify(a) => super::backup::verify(a, printer).await,
        AdminCommand::Export(a) => super::backup::export(a, printer).await,
        AdminCommand::Import(a) => super::backup::import(a, printer).await,
        AdminCommand::Compact(a) => super::backup::compact(a, printer).await,
    }
}

async fn admin_api(flags: &GlobalFlags) -> CliResult<Api> {
    Api::new(&Settings::resolve(flags).await?)
}

/// `admin gc`: asks the server to delete unreferenced blobs.
async fn gc(dry_run: bool, json: bool, flags: &GlobalFlags, printer: Printer) -> CliResult {
    let settings = Settings::resolve(flags).await?;
    let api = Api::new(&settings)?;
    let path = if dry_run {
        "/api/v1/admin/blobs/gc?dry_run=true"
    } else {
        "/api/v1/admin/blobs/gc"
    };
    let r: GcReport = api.post(path, &serde_json::json!({})).await?;
    printer.with_json(json).data(&r, || {
        kv_table(&[
            (
                if r.dry_run { "would delete" } else { "deleted" },
                format!("{} blob(s), {} bytes", r.blobs, r.bytes),
            ),
            (
                "partial uploads removed",
                format!("{} bytes", r.partial_bytes),
            ),
        ])
    })
}

/// Runs an `admin user` subcommand.
async fn user(cmd: UserCommand, api: &Api, printer: Printer) -> CliResult {
    match cmd {
        UserCommand::List {
            search,
            limit,
            json,
        } => {
            let mut query = Vec::new();
            if let Some(q) = search {
                query.push(("q", q));
            }
            let users: Vec<AdminUser> = api.get_all("/api/v1/admin/users", &query, limit).await?;
            printer.with_json(json).data(&users, || users_table(&users))
        }
        UserCommand::Show(a) => {
            let u: AdminUser = api.get(&user_path(&a.username, ""), &[]).await?;
            printer.with_json(a.json).data(&u, || user_details(&u))
        }
        UserCommand::Create {
            username,
            email,
            admin,
            password_stdin,
            json,
        } => {
            let req = CreateUserRequest {
                password: password_stdin.then(read_password).transpose()?,
                username,
                email,
                is_admin: admin,
            };
            let created: CreatedUser = api.post("/api/v1/admin/users", &req).await?;
            let what = if created.user.is_admin {
                "server administrator"
            } else {
                "account"
            };
            let done = format!("Created {what} {}", created.user.username);
            show_password(
                printer,
                json.json,
                &created,
                &done,
                created.generated_password.as_deref(),
            )
        }
        UserCommand::Disable(a) => {
            let d: DisabledUser = api
                .post(&user_path(&a.username, "/disable"), &serde_json::json!({}))
                .await?;
            if a.json.json {
                return printer.print_json(&d);
            }
            printer.success(format!(
                "Disabled {}: revoked {} API key(s) and ended {} session(s)",
                d.user.username, d.api_keys_revoked, d.sessions_revoked
            ));
            Ok(())
        }
        UserCommand::Enable(a) => {
            let u = change(api, &a, "/enable").await?;
            announce(printer, a.json.json, &u, || {
                format!(
                    "Enabled {}; API keys revoked when it was disabled stay revoked (it can log in and create new ones)",
                    u.username
                )
            })
        }
        UserCommand::ResetPassword {
            username,
            password_stdin,
            json,
        } => {
            let req = ResetPasswordRequest {
                password: password_stdin.then(read_password).transpose()?,
            };
            let r: PasswordReset = api
                .post(&user_path(&username, "/reset-password"), &req)
                .await?;
            let done = format!(
                "Set a new password for {}; ended {} session(s), API keys are kept",
                r.user.username, r.sessions_revoked
            );
            show_password(
                printer,
                json.json,
                &r,
                &done,
                r.generated_password.as_deref(),
            )
        }
        UserCommand::Promote(a) => {
            let u = change(api, &a, "/promote").await?;
            announce(printer, a.json.json, &u, || {
                format!("{} is now a server administrator", u.username)
            })
        }
        UserCommand::Demote(a) => {
            let u = change(api, &a, "/demote").await?;
            announce(printer, a.json.json, &u, || {
                format!("{} is no longer a server administrator", u.username)
            })
        }
    }
}

/// Runs an `admin api-key` subcommand.
async fn api_key(cmd: ApiKeyCommand, api: &Api, printer: Printer) -> CliResult {
    match cmd {
        ApiKeyCommand::List { user, limit, json } => {
            let mut query = Vec::new();
            if let Some(u) = user {
                query.push(("user", u));
            }
            let keys: Vec<AdminApiKey> =
                api.get_all("/api/v1/admin/api-keys", &query, limit).await?;
            printer.with_json(json).data(&keys, || keys_table(&keys))
        }
        ApiKeyCommand::Revoke { id } => {
            api.delete(&format!("/api/v1/admin/api-keys/{id}")).await?;
            printer.success(format!("Revoked API key {id}"));
            Ok(())
        }
    }
}

/// `/api/v1/admin/users/{username}{action}`.
fn user_path(username: &str, action: &str) -> String {
    format!("/api/v1/admin/users/{}{action}", seg(username))
}

/// Enable, promote or demote: a `POST` that answers with the account.
async fn change(api: &Api, a: &UserArgs, action: &str) -> CliResult<AdminUser> {
    Ok(api
        .post(&user_path(&a.username, action), &serde_json::json!({}))
        .await?)
}

/// The account as JSON, or a sentence for people on stderr.
fn announce(
    printer: Printer,
    json: bool,
    u: &AdminUser,
    msg: impl FnOnce() -> String,
) -> CliResult {
    if json {
        return printer.print_json(u);
    }
    printer.success(msg());
    Ok(())
}

/// Prints what was done and, when the server generated a password, that password alone on
/// stdout (so a script can capture it) with a note on stderr.
fn show_password<T: serde::Serialize>(
    printer: Printer,
    json: bool,
    value: &T,
    done: &str,
    generated: Option<&str>,
) -> CliResult {
    if json {
        return printer.print_json(value);
    }
    printer.success(done);
    if let Some(p) = generated {
        printer.info("Its password (shown only this once; pass it on safely) is:");
        outln!("{p}")?;
    }
    Ok(())
}

/// The first line of stdin, without its line ending.
fn read_password() -> CliResult<String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| user_err!("cannot read the password from stdin: {e}"))?;
    let password = line.trim_end_matches(['\n', '\r']).to_string();
    if password.is_empty() {
        return Err(user_err!("no password on stdin")
            .hint("pipe it in: echo \"$PASSWORD\" | wanllmdb admin user ... --password-stdin"));
    }
    Ok(password)
}

fn status(u: &AdminUser) -> String {
    match &u.disabled_at {
        Some(at) => format!("disabled since {at}"),
        None => "enabled".into(),
    }
}

fn users_table(users: &[AdminUser]) -> comfy_table::Table {
    let mut t = table(&["USERNAME", "EMAIL", "ADMIN", "STATUS", "KEYS", "CREATED"]);
    for u in users {
        t.add_row(vec![
            u.username.clone(),
            u.email.clone(),
            if u.is_admin { "yes" } else { "" }.to_string(),
            status(u),
            u.active_api_keys.to_string(),
            when(&u.created_at),
        ]);
    }
    t
}

fn user_details(u: &AdminUser) -> comfy_table::Table {
    kv_table(&[
        ("username", u.username.clone()),
        ("id", u.id.to_string()),
        ("email", u.email.clone()),
        ("server admin", if u.is_admin { "yes" } else { "no" }.into()),
        ("status", status(u)),
        ("active API keys", u.active_api_keys.to_string()),
        ("created", when(&u.created_at)),
    ])
}

fn keys_table(keys: &[AdminApiKey]) -> comfy_table::Table {
    let mut t = table(&["ID", "USER", "NAME", "PREFIX", "CREATED", "LAST USED"]);
    for k in keys {
        t.add_row(vec![
            k.key.id.to_string(),
            k.username.clone(),
            k.key.name.clone(),
            format!("{}…", k.key.prefix),
            when(&k.key.created_at),
            k.key
                .last_used_at
                .as_deref()
                .map_or_else(|| "never".into(), when),
        ]);
    }
    t
}
