//! `wanllmdb open [RUN|PROJECT]`: the web page of a run or project, printed and, on a
//! desktop, opened in the browser.

use clap::Args;

use crate::config::{GlobalFlags, Settings};
use crate::error::CliResult;
use crate::output::Printer;
use crate::output::outln;

/// Arguments of `wanllmdb open`.
#[derive(Debug, Args)]
pub struct OpenArgs {
    /// A run id or a project name [default: the current project, else the project list]
    pub target: Option<String>,
    /// Only print the URL, even on a desktop
    #[arg(long)]
    pub print: bool,
}

/// The page of a target: a run id (8 characters of a-z and 0-9) or a project name.
pub fn page_url(host: &str, target: Option<&str>, project: Option<&str>) -> CliResult<String> {
    let host = host.trim_end_matches('/');
    Ok(match target.or(project) {
        None => format!("{host}/projects"),
        Some(t) if target.is_some() && wanllmdb_api_types::is_valid_run_id(t) => {
            format!("{host}/runs/{t}")
        }
        Some(p) => {
            super::valid_project_name(p)?;
            format!("{host}/projects/{p}")
        }
    })
}

/// Whether a graphical session is there to open a browser in.
fn desktop() -> bool {
    cfg!(target_os = "macos")
        || std::env::var_os("DISPLAY").is_some()
        || std::env::var_os("WAYLAND_DISPLAY").is_some()
}

/// Prints the URL and, on a desktop, hands it to the system's opener.
pub async fn open(args: OpenArgs, flags: &GlobalFlags, printer: Printer) -> CliResult {
    let settings = Settings::resolve(flags).await?;
    let url = page_url(
        &settings.host,
        args.target.as_deref(),
        settings.project.as_deref(),
    )?;
    outln!("{url}")?;
    if args.print || !desktop() {
        return Ok(());
    }
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    let spawned = std::process::Command::new(opener)
        .arg(&url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    if let Err(e) = spawned {
        printer.warn(format!(
            "could not start {opener}: {e}; open the URL above yourself"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_projects_and_the_default() {
        let h = "http://127.0.0.1:8000/";
        assert_eq!(
            page_url(h, Some("ab12cd34"), None).unwrap(),
            "http://127.0.0.1:8000/runs/ab12cd34"
        );
        assert_eq!(
            page_url(h, Some("vision"), None).unwrap(),
            "http://127.0.0.1:8000/projects/vision"
        );
        assert_eq!(
            page_url(h, None, Some("ab12cd34")).unwrap(),
            "http://127.0.0.1:8000/projects/ab12cd34"
        );
        assert_eq!(
            page_url(h, None, None).unwrap(),
            "http://127.0.0.1:8000/projects"
        );
        assert!(page_url(h, Some("no/such"), None).is_err());
    }
}
