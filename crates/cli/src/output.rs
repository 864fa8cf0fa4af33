//! The one place that decides how output looks: colour, quiet/verbose, JSON or tables,
//! and whether progress bars are shown.

use std::io::{IsTerminal, Write};

use comfy_table::{ContentArrangement, Table, presets};
use serde::Serialize;

use crate::error::{CliError, CliResult};

/// How the command should print.
#[derive(Debug, Clone, Copy)]
pub struct Printer {
    /// `--quiet`: only data and errors.
    pub quiet: bool,
    /// `--verbose`: extra diagnostics on stderr.
    pub verbose: bool,
    /// Colours allowed (stderr is a terminal and `NO_COLOR` is unset).
    pub color: bool,
    /// `--json` on the current command.
    pub json: bool,
}

impl Printer {
    /// Builds the printer from the global flags and the environment.
    pub fn new(quiet: bool, verbose: bool) -> Printer {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Printer {
            quiet,
            verbose,
            color: !no_color && std::io::stderr().is_terminal(),
            json: false,
        }
    }

    /// Same printer, with `--json` as given.
    pub fn with_json(mut self, json: bool) -> Printer {
        self.json = json;
        self
    }

    /// A message for people (stderr), hidden by `--quiet`.
    pub fn info(&self, msg: impl AsRef<str>) {
        if !self.quiet {
            eprintln!("{}", msg.as_ref());
        }
    }

    /// A success message (stderr), green on a terminal.
    pub fn success(&self, msg: impl AsRef<str>) {
        if !self.quiet {
            if self.color {
                eprintln!("\x1b[32m{}\x1b[0m", msg.as_ref());
            } else {
                eprintln!("{}", msg.as_ref());
            }
        }
    }

    /// A warning (stderr); shown even with `--quiet`.
    pub fn warn(&self, msg: impl AsRef<str>) {
        if self.color {
            eprintln!("\x1b[33mwarning:\x1b[0m {}", msg.as_ref());
        } else {
            eprintln!("warning: {}", msg.as_ref());
        }
    }

    /// A diagnostic shown only with `--verbose`.
    pub fn debug(&self, msg: impl AsRef<str>) {
        if self.verbose {
            eprintln!("{}", msg.as_ref());
        }
    }

    /// Prints an error and its hint.
    pub fn error(&self, e: &CliError) {
        if self.color {
            eprintln!("\x1b[31merror:\x1b[0m {}", e.message);
        } else {
            eprintln!("error: {}", e.message);
        }
        if let Some(h) = &e.hint {
            if self.color {
                eprintln!("\x1b[36mhint:\x1b[0m {h}");
            } else {
                eprintln!("hint: {h}");
            }
        }
    }

    /// Whether progress bars may be drawn.
    pub fn progress(&self) -> bool {
        !self.quiet && !self.json && std::io::stderr().is_terminal()
    }

    /// Prints a value as pretty JSON on stdout.
    pub fn print_json<T: Serialize + ?Sized>(&self, value: &T) -> CliResult {
        let mut out = std::io::stdout().lock();
        serde_json::to_writer_pretty(&mut out, value)
            .map_err(|e| CliError::unexpected(format!("cannot write JSON: {e}")))?;
        writeln!(out).map_err(|e| CliError::unexpected(e.to_string()))?;
        Ok(())
    }

    /// Prints `value` as JSON with `--json`, otherwise runs `table` to print it for people
    /// (a table, or any text).
    pub fn data<T: Serialize + ?Sized, D: std::fmt::Display>(
        &self,
        value: &T,
        table: impl FnOnce() -> D,
    ) -> CliResult {
        if self.json {
            self.print_json(value)
        } else {
            println!("{}", table());
            Ok(())
        }
    }
}

/// A table in the house style, sized to the terminal.
pub fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(presets::UTF8_BORDERS_ONLY)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header.iter().copied());
    if !std::io::stdout().is_terminal() {
        t.load_preset(presets::NOTHING)
            .set_header(header.iter().copied());
    }
    t
}

/// A two-column key/value table.
pub fn kv_table(rows: &[(&str, String)]) -> Table {
    let mut t = Table::new();
    t.load_preset(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Dynamic);
    for (k, v) in rows {
        t.add_row(vec![k.to_string(), v.clone()]);
    }
    t
}

/// Whether a person can answer a prompt.
pub fn interactive() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// Asks a yes/no question on a terminal; without one, refuses with a hint to pass `--yes`.
pub fn confirm(question: &str) -> crate::error::CliResult<bool> {
    if !interactive() {
        return Err(crate::error::CliError::user(format!(
            "{question} (needs confirmation, and stdin is not a terminal)"
        ))
        .hint("pass --yes to confirm"));
    }
    dialoguer::Confirm::new()
        .with_prompt(question)
        .default(false)
        .interact()
        .map_err(|e| crate::error::CliError::user(format!("no answer: {e}")))
}
