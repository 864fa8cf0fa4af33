//! The one place that decides how output looks: colour, quiet/verbose, JSON or tables,
//! and whether progress bars are shown.

use std::io::{IsTerminal, Write};

use comfy_table::{ContentArrangement, Table, presets};
use console::{Color, Style, StyledObject};
use serde::Serialize;

use crate::error::{CliError, CliResult};

/// `println!` for command output: a `CliResult` that a closed stdout turns into a quiet exit.
macro_rules! outln {
    () => {
        $crate::output::write_stdout(b"\n")
    };
    ($($arg:tt)*) => {
        $crate::output::write_stdout(format!("{}\n", format_args!($($arg)*)).as_bytes())
    };
}
pub(crate) use outln;

/// `print!` for command output (see [`outln!`]).
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::write_stdout(format!($($arg)*).as_bytes())
    };
}
pub(crate) use out;

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

    /// `text` in `colour` where colours are allowed, plain otherwise.
    pub fn paint<'a>(&self, text: &'a str, colour: Color) -> StyledObject<&'a str> {
        Style::new()
            .fg(colour)
            .force_styling(self.color)
            .apply_to(text)
    }

    /// Same printer, with `--json` as given.
    pub fn with_json(mut self, json: impl Into<bool>) -> Printer {
        self.json = json.into();
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
            eprintln!("{}", self.paint(msg.as_ref(), Color::Green));
        }
    }

    /// A warning (stderr); shown even with `--quiet`.
    pub fn warn(&self, msg: impl AsRef<str>) {
        eprintln!("{} {}", self.paint("warning:", Color::Yellow), msg.as_ref());
    }

    /// A diagnostic shown only with `--verbose`.
    pub fn debug(&self, msg: impl AsRef<str>) {
        if self.verbose {
            eprintln!("{}", msg.as_ref());
        }
    }

    /// Prints an error and its hint (nothing for a closed stdout, which is no error).
    pub fn error(&self, e: &CliError) {
        if e.closed_stdout {
            return;
        }
        eprintln!("{} {}", self.paint("error:", Color::Red), e.message);
        if let Some(h) = &e.hint {
            eprintln!("{} {h}", self.paint("hint:", Color::Cyan));
        }
    }

    /// Whether progress bars may be drawn.
    pub fn progress(&self) -> bool {
        !self.quiet && !self.json && std::io::stderr().is_terminal()
    }

    /// Prints a value as pretty JSON on stdout.
    pub fn print_json<T: Serialize + ?Sized>(&self, value: &T) -> CliResult {
        let mut text = serde_json::to_string_pretty(value)
            .map_err(|e| CliError::unexpected(format!("cannot write JSON: {e}")))?;
        text.push('\n');
        write_stdout(text.as_bytes())
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
            outln!("{}", table())
        }
    }
}

/// Writes bytes to stdout. Every command's data goes through here (or [`outln!`]), so a
/// stdout whose reader went away (`wanllmdb runs history … | head`) ends the command quietly
/// with exit 0 instead of a panic or an error.
pub fn write_stdout(bytes: &[u8]) -> CliResult {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(stdout_error)
}

/// The error a failed write to stdout becomes.
pub fn stdout_error(e: std::io::Error) -> CliError {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        CliError::closed_stdout()
    } else {
        CliError::unexpected(format!("cannot write to stdout: {e}"))
    }
}

/// The local time zone's offset, read once at start (see [`init_local_offset`]).
static LOCAL_OFFSET: std::sync::OnceLock<time::UtcOffset> = std::sync::OnceLock::new();

/// Reads the local offset for [`when`]. Call before any other thread starts: reading it later
/// is refused (another thread could be changing the environment meanwhile), and UTC is used.
pub fn init_local_offset() {
    let offset = time::UtcOffset::current_local_offset().unwrap_or(time::UtcOffset::UTC);
    let _ = LOCAL_OFFSET.set(offset);
}

/// How tables show a time the API gave (RFC 3339, UTC): recent ones relative (`42 s ago`,
/// `5 min ago`, `3 h ago`), older ones as local date and minute (`2026-12-06 23:41`). `--json`
/// keeps the API's own RFC 3339 UTC text.
pub fn when(rfc3339: &str) -> String {
    use time::format_description::well_known::Rfc3339;
    match time::OffsetDateTime::parse(rfc3339, &Rfc3339) {
        Ok(t) => when_at(
            t,
            time::OffsetDateTime::now_utc(),
            LOCAL_OFFSET.get().copied().unwrap_or(time::UtcOffset::UTC),
        ),
        Err(_) => rfc3339.to_string(),
    }
}

fn when_at(t: time::OffsetDateTime, now: time::OffsetDateTime, offset: time::UtcOffset) -> String {
    let secs = (now - t).whole_seconds();
    match secs {
        0..=59 => format!("{secs} s ago"),
        60..=3_599 => format!("{} min ago", secs / 60),
        3_600..=86_399 => format!("{} h ago", secs / 3_600),
        _ => {
            let t = t.to_offset(offset);
            format!(
                "{}-{:02}-{:02} {:02}:{:02}",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute()
            )
        }
    }
}

/// A table in the house style, sized to the terminal.
pub fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_style(presets::UTF8_BORDERS_ONLY)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header.iter().copied());
    if !std::io::stdout().is_terminal() {
        t.load_style(presets::NOTHING)
            .set_header(header.iter().copied());
    }
    t
}

/// A two-column key/value table.
pub fn kv_table(rows: &[(&str, String)]) -> Table {
    let mut t = Table::new();
    t.load_style(presets::NOTHING)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> time::OffsetDateTime {
        time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).unwrap()
    }

    #[test]
    fn recent_times_are_relative_and_older_ones_local() {
        let now = at("2026-12-06T12:00:00Z");
        let cet = time::UtcOffset::from_hms(1, 0, 0).unwrap();
        assert_eq!(when_at(at("2026-12-06T11:59:18Z"), now, cet), "42 s ago");
        assert_eq!(when_at(at("2026-12-06T11:55:00Z"), now, cet), "5 min ago");
        assert_eq!(when_at(at("2026-12-06T09:00:00Z"), now, cet), "3 h ago");
        assert_eq!(
            when_at(at("2026-12-01T22:30:00Z"), now, cet),
            "2026-12-01 23:30"
        );
        // A clock ahead of ours: shown as a date, not "-5 s ago".
        assert_eq!(
            when_at(at("2026-12-06T12:00:05Z"), now, time::UtcOffset::UTC),
            "2026-12-06 12:00"
        );
        assert_eq!(when("not a time"), "not a time");
    }
}
