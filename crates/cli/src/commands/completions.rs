//! `wanllmdb completions SHELL` and `wanllmdb generate-docs DIR`: shell completions and man
//! pages, generated from the same command definitions the binary parses with.

use std::path::Path;

use anyhow::{Context, Result};
use clap::Args;
use clap_complete::Shell;

/// Options of `wanllmdb completions`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  wanllmdb completions bash > ~/.local/share/bash-completion/completions/wanllmdb\n  wanllmdb completions zsh > ~/.zfunc/_wanllmdb\n  wanllmdb completions fish > ~/.config/fish/completions/wanllmdb.fish"
)]
pub struct CompletionsArgs {
    /// Shell to generate completions for
    #[arg(value_enum)]
    pub shell: Shell,
}

/// Prints completions for a shell on stdout.
pub fn completions(args: CompletionsArgs) -> crate::error::CliResult {
    let mut cmd = crate::command();
    let mut text = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "wanllmdb", &mut text);
    crate::output::write_stdout(&text)
}

/// Writes `completions/` (every supported shell) and `man/` (one page per command) under `dir`.
pub fn generate_docs(dir: &Path) -> Result<()> {
    let comp_dir = dir.join("completions");
    let man_dir = dir.join("man");
    std::fs::create_dir_all(&comp_dir)
        .with_context(|| format!("cannot create {}", comp_dir.display()))?;
    std::fs::create_dir_all(&man_dir)
        .with_context(|| format!("cannot create {}", man_dir.display()))?;
    for shell in [
        Shell::Bash,
        Shell::Zsh,
        Shell::Fish,
        Shell::Elvish,
        Shell::PowerShell,
    ] {
        let mut cmd = crate::command();
        clap_complete::generate_to(shell, &mut cmd, "wanllmdb", &comp_dir)
            .with_context(|| format!("cannot write {shell} completions"))?;
    }
    let mut cmd = crate::command();
    cmd.build();
    write_pages(&cmd, &man_dir, "wanllmdb")
}

/// One page for `cmd`, then one for each of its subcommands (`wanllmdb-runs-list.1` …).
fn write_pages(cmd: &clap::Command, dir: &Path, name: &str) -> Result<()> {
    write_man(cmd, dir, name)?;
    for sub in cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        write_pages(sub, dir, &format!("{name}-{}", sub.get_name()))?;
    }
    Ok(())
}

fn write_man(cmd: &clap::Command, dir: &Path, name: &str) -> Result<()> {
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .title(name.to_uppercase())
        .render(&mut out)?;
    let path = dir.join(format!("{name}.1"));
    std::fs::write(&path, out).with_context(|| format!("cannot write {}", path.display()))
}
