//! `wanllmdb init`: remember the project and server for a directory.

use clap::Args;
use wanllmdb_api_types::projects::{CreateProjectRequest, Project};

use crate::client::{Api, ApiError, seg};
use crate::config::{GlobalFlags, PROJECT_FILE, ProjectFile, Settings, normalize_host};
use crate::error::{CliError, CliResult, user_err};
use crate::output::Printer;

/// Options of `wanllmdb init`.
#[derive(Debug, Args)]
#[command(after_help = "\
Writes ./.wanllmdb.toml so that commands run in this directory (or below it) need no
--project/--host. The project is created on the server when it does not exist yet.

Examples:
  wanllmdb init --project mnist
  wanllmdb init --project mnist --host http://gpu-box:8000")]
pub struct InitArgs {
    /// Also capture `key: value` numbers from output lines matching this regex in `wanllmdb run`
    #[arg(long, value_name = "REGEX")]
    pub scalars: Option<String>,
}

/// `wanllmdb init`.
pub async fn init(args: InitArgs, flags: &GlobalFlags, printer: Printer) -> CliResult {
    let cwd =
        std::env::current_dir().map_err(|e| user_err!("cannot read the current directory: {e}"))?;
    let path = cwd.join(PROJECT_FILE);
    let mut file: ProjectFile = match std::fs::read_to_string(&path) {
        Ok(t) => toml::from_str(&t)
            .map_err(|e| user_err!("{} is not valid: {}", path.display(), e.message()))?,
        Err(_) => ProjectFile::default(),
    };
    let project = match flags.project.clone().or(file.project.clone()) {
        Some(p) => p,
        None => {
            let dir = cwd
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("default")
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || "._-".contains(c) {
                        c
                    } else {
                        '-'
                    }
                })
                .collect::<String>();
            printer.info(format!(
                "No --project given; using the directory name {dir:?}"
            ));
            dir
        }
    };
    let project = super::valid_project_name(&project)?;
    if let Some(h) = &flags.host {
        file.host = Some(normalize_host(h)?);
    }
    if let Some(re) = args.scalars {
        regex::Regex::new(&re)
            .map_err(|e| user_err!("--scalars {re:?} is not a valid regular expression: {e}"))?;
        file.scalars = Some(re);
    }
    file.project = Some(project.to_string());
    let text = toml::to_string(&file).map_err(|e| CliError::unexpected(e.to_string()))?;
    std::fs::write(&path, text).map_err(|e| user_err!("cannot write {}: {e}", path.display()))?;
    printer.success(format!("Wrote {} (project {project})", path.display()));
    ignore_spool(&cwd, &printer);

    let settings = Settings::resolve(&GlobalFlags {
        project: Some(project.to_string()),
        ..flags.clone()
    })
    .await?;
    let api = Api::new(&settings)?;
    match api
        .get::<Project>(&format!("/api/v1/projects/{}", seg(&project)), &[])
        .await
    {
        Ok(_) => printer.info(format!("Project {project} exists on {}", settings.host)),
        Err(ApiError::Status { status, .. }) if status == reqwest::StatusCode::NOT_FOUND => {
            let req = CreateProjectRequest {
                name: project.clone(),
                description: None,
                visibility: None,
            };
            let _: Project = api.post("/api/v1/projects", &req).await?;
            printer.success(format!("Created project {project} on {}", settings.host));
        }
        Err(e) if e.transient() => printer.warn(format!(
            "{e}; the project is created when the first run reaches the server"
        )),
        Err(e) => return Err(e.into()),
    }
    Ok(())
}

/// Keeps run spools out of version control when the directory has a .gitignore.
fn ignore_spool(dir: &std::path::Path, printer: &Printer) {
    let gi = dir.join(".gitignore");
    let Ok(text) = std::fs::read_to_string(&gi) else {
        return;
    };
    if text
        .lines()
        .any(|l| l.trim().trim_end_matches('/') == ".wanllmdb")
    {
        return;
    }
    let sep = if text.is_empty() || text.ends_with('\n') {
        ""
    } else {
        "\n"
    };
    if std::fs::write(&gi, format!("{text}{sep}.wanllmdb/\n")).is_ok() {
        printer.info("Added .wanllmdb/ (the run spool) to .gitignore");
    }
}
