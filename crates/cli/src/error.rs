//! Errors the command line reports, and the exit code each one maps to.

use std::fmt;

/// Exit code for bad input, missing objects and refused access.
pub const EXIT_USER: u8 = 1;
/// Exit code for everything that should not have happened.
pub const EXIT_UNEXPECTED: u8 = 2;

/// An error meant for the person at the terminal: what went wrong and, where there is one,
/// the next step.
#[derive(Debug)]
pub struct CliError {
    /// User-facing (exit 1) or unexpected (exit 2).
    pub user: bool,
    /// What went wrong.
    pub message: String,
    /// The next step, printed as `hint: …`.
    pub hint: Option<String>,
    /// Stdout was closed by its reader (`| head`): not a failure; the command ends quietly.
    pub closed_stdout: bool,
}

impl CliError {
    /// A user-facing failure (exit 1).
    pub fn user(message: impl Into<String>) -> CliError {
        CliError {
            user: true,
            message: message.into(),
            hint: None,
            closed_stdout: false,
        }
    }

    /// Stdout's reader went away: the command stops writing and exits 0 without a message.
    pub fn closed_stdout() -> CliError {
        CliError {
            user: true,
            message: "stdout was closed".into(),
            hint: None,
            closed_stdout: true,
        }
    }

    /// An unexpected failure (exit 2).
    pub fn unexpected(message: impl Into<String>) -> CliError {
        CliError {
            user: false,
            message: message.into(),
            hint: None,
            closed_stdout: false,
        }
    }

    /// Adds the next step.
    pub fn hint(mut self, hint: impl Into<String>) -> CliError {
        self.hint = Some(hint.into());
        self
    }

    /// The process exit code.
    pub fn exit_code(&self) -> u8 {
        if self.closed_stdout {
            0
        } else if self.user {
            EXIT_USER
        } else {
            EXIT_UNEXPECTED
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}

impl From<anyhow::Error> for CliError {
    fn from(e: anyhow::Error) -> CliError {
        match e.downcast::<CliError>() {
            Ok(c) => c,
            Err(e) => CliError::unexpected(format!("{e:#}")),
        }
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> CliError {
        CliError::unexpected(e.to_string())
    }
}

/// Result of a command.
pub type CliResult<T = ()> = Result<T, CliError>;

/// Shorthand for returning a user-facing error.
macro_rules! user_err {
    ($($arg:tt)*) => { $crate::error::CliError::user(format!($($arg)*)) };
}
pub(crate) use user_err;
