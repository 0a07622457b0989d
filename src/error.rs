//! What the CLI reports on failure, and the exit code it reports it with.
//!
//! Library modules return their own error enums; the conversions here decide
//! the [`ErrorKind`], and [`ErrorKind::exit_code`] is the one table of exit
//! codes (DESIGN §7): 0 all merged or resolved, 1 the run ended with failed,
//! blocked or conflicted tasks, 2 bad input, 3 another coordinator holds the
//! lock, 130 interrupted. Printing: detail lines (`file:line:col: message`),
//! then `error: <msg>`, `  caused by: <source>` for each source, `hint: <line>`.

use std::error::Error as StdError;
use std::io::Write;

use anstyle::{AnsiColor, Style};

use crate::config::ConfigError;
use crate::plan::PlanError;
use crate::state::StateError;

/// The class of a failure, which fixes the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Bad usage, config, plan or state file.
    Input,
    /// Another coordinator holds the lock.
    Locked,
    /// The run ended with failed, blocked or conflicted tasks.
    RunFailed,
    /// A person interrupted the run.
    Interrupted,
    /// Stdout was closed (`orch plan show | head`): exit quietly.
    BrokenPipe,
    /// A bug or an environment failure.
    Internal,
}

impl ErrorKind {
    pub fn exit_code(self) -> u8 {
        match self {
            ErrorKind::Input => 2,
            ErrorKind::Locked => 3,
            ErrorKind::RunFailed => 1,
            ErrorKind::Interrupted => 130,
            ErrorKind::BrokenPipe => 0,
            ErrorKind::Internal => 255,
        }
    }
}

/// A failure as the CLI reports it.
#[derive(Debug)]
pub struct CliError {
    pub kind: ErrorKind,
    pub error: Box<dyn StdError + Send + Sync>,
    /// Lines printed before the error (one per problem found).
    pub details: Vec<String>,
    pub hints: Vec<String>,
}

/// A plain message used as the error of a [`CliError`].
#[derive(Debug)]
pub struct Message(pub String);

impl std::fmt::Display for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl StdError for Message {}

impl CliError {
    pub fn new(kind: ErrorKind, error: impl Into<Box<dyn StdError + Send + Sync>>) -> CliError {
        CliError {
            kind,
            error: error.into(),
            details: Vec::new(),
            hints: Vec::new(),
        }
    }

    /// Returns a bad-input error with a message.
    pub fn input(message: impl Into<String>) -> CliError {
        CliError::new(ErrorKind::Input, Message(message.into()))
    }

    /// Returns an internal error with a message.
    pub fn internal(message: impl Into<String>) -> CliError {
        CliError::new(ErrorKind::Internal, Message(message.into()))
    }

    #[must_use]
    pub fn with_hint(mut self, hint: impl Into<String>) -> CliError {
        self.hints.push(hint.into());
        self
    }

    pub fn exit_code(&self) -> u8 {
        self.kind.exit_code()
    }

    /// Prints the error to `out` in the format the module docs describe.
    pub fn print(&self, out: &mut dyn Write) -> std::io::Result<()> {
        if self.kind == ErrorKind::BrokenPipe {
            return Ok(());
        }
        let red = Style::new().bold().fg_color(Some(AnsiColor::Red.into()));
        let cyan = Style::new().bold().fg_color(Some(AnsiColor::Cyan.into()));
        for line in &self.details {
            writeln!(out, "{line}")?;
        }
        writeln!(out, "{red}error:{red:#} {}", self.error)?;
        let mut source = self.error.source();
        while let Some(cause) = source {
            writeln!(out, "  caused by: {cause}")?;
            source = cause.source();
        }
        for hint in &self.hints {
            writeln!(out, "{cyan}hint:{cyan:#} {hint}")?;
        }
        Ok(())
    }
}

impl From<PlanError> for CliError {
    fn from(error: PlanError) -> CliError {
        let details = error.detail_lines();
        let mut e = CliError::new(ErrorKind::Input, error);
        e.details = details;
        e
    }
}

impl From<ConfigError> for CliError {
    fn from(error: ConfigError) -> CliError {
        CliError::new(ErrorKind::Input, error)
    }
}

impl From<StateError> for CliError {
    fn from(error: StateError) -> CliError {
        let kind = match error {
            StateError::Parse { .. } | StateError::NewerSchema { .. } => ErrorKind::Input,
            StateError::Read { .. } | StateError::Write { .. } => ErrorKind::Internal,
        };
        CliError::new(kind, error)
    }
}

impl From<crate::state::lock::LockError> for CliError {
    fn from(error: crate::state::lock::LockError) -> CliError {
        let kind = match error {
            crate::state::lock::LockError::Held { .. } => ErrorKind::Locked,
            crate::state::lock::LockError::Io { .. } => ErrorKind::Internal,
        };
        CliError::new(kind, error)
    }
}

impl From<std::io::Error> for CliError {
    fn from(error: std::io::Error) -> CliError {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            return CliError::new(ErrorKind::BrokenPipe, error);
        }
        CliError::new(ErrorKind::Internal, error)
    }
}

impl From<git2::Error> for CliError {
    fn from(error: git2::Error) -> CliError {
        CliError::new(ErrorKind::Internal, error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_contract() {
        assert_eq!(ErrorKind::RunFailed.exit_code(), 1);
        assert_eq!(ErrorKind::Input.exit_code(), 2);
        assert_eq!(ErrorKind::Locked.exit_code(), 3);
        assert_eq!(ErrorKind::Interrupted.exit_code(), 130);
    }

    #[test]
    fn prints_causes_and_hints() {
        let io = std::io::Error::other("disk on fire");
        let err = CliError::new(
            ErrorKind::Internal,
            StateError::Write {
                path: "state.json".into(),
                source: io,
            },
        )
        .with_hint("free some space");
        let mut out = Vec::new();
        err.print(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let plain = anstream::adapter::strip_str(&text).to_string();
        assert_eq!(
            plain,
            "error: cannot write `state.json`\n  caused by: disk on fire\nhint: free some space\n"
        );
    }
}
