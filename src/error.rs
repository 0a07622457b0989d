//! What the CLI reports on failure, and the exit code it reports it with.
//!
//! Library modules return their own error enums. Every conversion from one
//! of them to a [`CliError`] is an `impl From` here, an exhaustive `match`
//! with no catch-all arm, so a new variant does not compile until its kind
//! is chosen; a wrapper of another module's error (`RunError::Lock`) defers
//! to that error's conversion, so each error has one kind wherever it comes
//! from. Hints that belong to an error (how to recreate a deleted target)
//! are added by its conversion. The CLI builds a [`CliError`] itself only for
//! messages it composes (usage errors, summaries).
//!
//! [`ErrorKind::exit_code`] is the one table of exit codes (DESIGN §7): 0 all
//! merged or resolved, 1 the run ended with failed, blocked or conflicted
//! tasks, 2 bad input, 3 another coordinator holds the lock, 130
//! interrupted, 255 a bug or an environment failure. Printing: detail lines
//! (`file:line:col: message`), then `error: <msg>`, `  caused by: <source>`
//! for each source, `hint: <line>`.

use std::error::Error as StdError;
use std::io::Write;

use anstyle::{AnsiColor, Style};

use crate::clean::CleanError;
use crate::config::ConfigError;
use crate::coordinator::RunError;
use crate::coordinator::control::ControlError;
use crate::dash::driver::DashError;
use crate::demo::DemoError;
use crate::git::GitError;
use crate::hooks::install::HookError;
use crate::plan::PlanError;
use crate::plan::taskmaster::{self, TaskmasterError};
use crate::state::StateError;
use crate::state::lock::LockError;

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
    /// Returns an error of `kind`. Private: a library error gets its kind
    /// from its `From` conversion below, never at the call site.
    fn new(kind: ErrorKind, error: impl Into<Box<dyn StdError + Send + Sync>>) -> CliError {
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

    /// Returns the error of a command that ended with work left undone (exit 1).
    pub fn run_failed(message: impl Into<String>) -> CliError {
        CliError::new(ErrorKind::RunFailed, Message(message.into()))
    }

    /// Returns the error of a command a person interrupted (exit 130).
    pub fn interrupted() -> CliError {
        CliError::new(ErrorKind::Interrupted, Message("interrupted".to_owned()))
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
        let kind = match error {
            PlanError::Read { .. } | PlanError::Invalid { .. } => ErrorKind::Input,
        };
        let details = error.detail_lines();
        let mut e = CliError::new(kind, error);
        e.details = details;
        e
    }
}

impl From<ConfigError> for CliError {
    fn from(error: ConfigError) -> CliError {
        let kind = match error {
            ConfigError::Read { .. } | ConfigError::Invalid { .. } => ErrorKind::Input,
        };
        CliError::new(kind, error)
    }
}

impl From<taskmaster::InFile> for CliError {
    fn from(error: taskmaster::InFile) -> CliError {
        let kind = match error.error {
            TaskmasterError::Parse { .. }
            | TaskmasterError::NotTaskmaster
            | TaskmasterError::UnknownTag { .. }
            | TaskmasterError::NoTags { .. }
            | TaskmasterError::AmbiguousTag { .. }
            | TaskmasterError::BadId { .. } => ErrorKind::Input,
        };
        CliError::new(kind, error)
    }
}

impl From<StateError> for CliError {
    fn from(error: StateError) -> CliError {
        let kind = match error {
            StateError::Parse { .. }
            | StateError::NewerSchema { .. }
            | StateError::ChangesGap { .. } => ErrorKind::Input,
            StateError::Read { .. } | StateError::Write { .. } => ErrorKind::Internal,
        };
        CliError::new(kind, error)
    }
}

impl From<LockError> for CliError {
    fn from(error: LockError) -> CliError {
        let kind = match error {
            LockError::Held { .. } => ErrorKind::Locked,
            LockError::Io { .. } => ErrorKind::Internal,
        };
        CliError::new(kind, error)
    }
}

/// A refusal about something the user named or runs orch in (a branch, a
/// folder) is bad input; libgit2 or the `git` CLI failing is internal.
impl From<GitError> for CliError {
    fn from(error: GitError) -> CliError {
        match error {
            GitError::NotARepository { .. } => CliError::new(ErrorKind::Input, error)
                .with_hint("run `git init` first, or pass `-C` with the repository's folder"),
            GitError::Bare { .. }
            | GitError::NoSuchBranch { .. }
            | GitError::BranchExists { .. }
            | GitError::PathTaken { .. }
            | GitError::CheckedOutInMain { .. } => CliError::new(ErrorKind::Input, error),
            GitError::Git { .. } | GitError::Command(_) => {
                CliError::new(ErrorKind::Internal, error)
            }
        }
    }
}

impl From<RunError> for CliError {
    fn from(error: RunError) -> CliError {
        match error {
            RunError::Lock(e) => CliError::from(e),
            RunError::State(e) => CliError::from(e),
            RunError::Git(e) => CliError::from(e),
            RunError::NoTarget { .. } => CliError::new(ErrorKind::Input, error),
            RunError::TargetGone {
                ref target,
                ref last,
            } => {
                let hint = match last {
                    Some(oid) => format!(
                        "recreate it where orch last saw it (`git branch {target} {oid}`), then `orch run` carries on; finished work waits in the queue"
                    ),
                    None => format!(
                        "recreate `{target}`, then `orch run` carries on; finished work waits in the queue"
                    ),
                };
                CliError::new(ErrorKind::Input, error).with_hint(hint)
            }
            RunError::TargetRewound {
                ref target,
                ref lost,
                ref backup,
            } => {
                let hint = crate::coordinator::after_merge::rewound_fix(target, lost, backup);
                CliError::new(ErrorKind::Input, error).with_hint(hint)
            }
            RunError::Notify(_) => CliError::new(ErrorKind::Input, error),
            RunError::MetricsListen { .. } => CliError::new(ErrorKind::Input, error).with_hint(
                "pick a free address for `listen` under `[metrics]`, or remove it to run without the endpoint",
            ),
            // Loading the config already refuses a bad glob in
            // `policy.forbidden_paths` (exit 2), so one here is a bug.
            RunError::Io { .. } | RunError::Policy(_) => CliError::new(ErrorKind::Internal, error),
        }
    }
}

impl From<ControlError> for CliError {
    fn from(error: ControlError) -> CliError {
        match error {
            ControlError::Lock(e) => CliError::from(e),
            ControlError::State(e) => CliError::from(e),
            ControlError::Refused(_) => CliError::new(ErrorKind::Input, error),
            ControlError::StateDir { .. } | ControlError::Events { .. } => {
                CliError::new(ErrorKind::Internal, error)
            }
        }
    }
}

impl From<CleanError> for CliError {
    fn from(error: CleanError) -> CliError {
        match error {
            CleanError::Lock(e) => CliError::from(e),
            CleanError::State(e) => CliError::from(e),
            CleanError::Git(e) => CliError::from(e),
            CleanError::StateDir { .. } => CliError::new(ErrorKind::Internal, error),
        }
    }
}

impl From<HookError> for CliError {
    fn from(error: HookError) -> CliError {
        let kind = match error {
            HookError::Tangled { .. } | HookError::InsideRepository { .. } => ErrorKind::Input,
            HookError::Locate { .. } | HookError::Io { .. } => ErrorKind::Internal,
        };
        let hint = matches!(error, HookError::InsideRepository { .. }).then_some(
            "orch works without its hooks (commits in task worktrees then carry no `Orch-Task:` trailer); to have them, point `core.hooksPath` outside the repository and call your hooks from there, then `orch hooks install`",
        );
        let cli = CliError::new(kind, error);
        match hint {
            Some(hint) => cli.with_hint(hint),
            None => cli,
        }
    }
}

impl From<DashError> for CliError {
    fn from(error: DashError) -> CliError {
        match error {
            DashError::Terminal(_) => CliError::new(ErrorKind::Input, error)
                .with_hint("`orch status` prints the same information without a terminal"),
            DashError::State(e) => CliError::from(e),
            DashError::Watch { .. } => CliError::new(ErrorKind::Internal, error),
        }
    }
}

impl From<DemoError> for CliError {
    fn from(error: DemoError) -> CliError {
        let kind = match error {
            DemoError::NotEmpty { .. } => ErrorKind::Input,
            DemoError::Io { .. } | DemoError::Git(_) | DemoError::Template(_) => {
                ErrorKind::Internal
            }
        };
        CliError::new(kind, error)
    }
}

/// A built-in template that does not render is a bug.
impl From<crate::notifications::OutboxError> for CliError {
    fn from(error: crate::notifications::OutboxError) -> CliError {
        match error {
            crate::notifications::OutboxError::Unknown { .. } => {
                CliError::new(ErrorKind::Input, error).with_hint("`orch notify list` shows the ids")
            }
            crate::notifications::OutboxError::Io { .. } => {
                CliError::new(ErrorKind::Internal, error)
            }
        }
    }
}

impl From<minijinja::Error> for CliError {
    fn from(error: minijinja::Error) -> CliError {
        CliError::new(ErrorKind::Internal, error)
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

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::coordinator::control::CommandRefusal as Refusal;
    use crate::git::cmd::CommandError;
    use crate::plan::Location;

    fn io() -> std::io::Error {
        std::io::Error::other("disk on fire")
    }

    fn path() -> PathBuf {
        PathBuf::from("f")
    }

    fn git_cli() -> CommandError {
        CommandError {
            argv: vec!["worktree".to_owned(), "list".to_owned()],
            dir: path(),
            code: Some(128),
            stderr: String::new(),
        }
    }

    fn at() -> Location {
        Location { line: 1, column: 2 }
    }

    fn state_parse() -> StateError {
        StateError::Parse {
            path: path(),
            location: at(),
            message: "bad".to_owned(),
        }
    }

    fn state_read() -> StateError {
        StateError::Read {
            path: path(),
            source: io(),
        }
    }

    fn state_write() -> StateError {
        StateError::Write {
            path: path(),
            source: io(),
        }
    }

    fn gap() -> StateError {
        StateError::ChangesGap {
            path: path(),
            expected: 3,
            found: 5,
        }
    }

    fn newer() -> StateError {
        StateError::NewerSchema {
            path: path(),
            found: 9,
        }
    }

    fn held() -> LockError {
        LockError::Held {
            path: path(),
            pid: Some(7),
        }
    }

    fn lock_io() -> LockError {
        LockError::Io {
            path: path(),
            source: io(),
        }
    }

    fn no_branch() -> GitError {
        GitError::NoSuchBranch {
            branch: "main".to_owned(),
        }
    }

    fn libgit2() -> GitError {
        GitError::Git {
            path: path(),
            source: git2::Error::from_str("corrupt"),
        }
    }

    /// Checks each error's exit code, naming the error on a mismatch.
    fn assert_codes<E: std::fmt::Debug>(table: Vec<(E, u8)>)
    where
        CliError: From<E>,
    {
        for (error, code) in table {
            let shown = format!("{error:?}");
            assert_eq!(CliError::from(error).exit_code(), code, "{shown}");
        }
    }

    fn printed(error: CliError) -> String {
        let mut out = Vec::new();
        error.print(&mut out).unwrap();
        anstream::adapter::strip_str(&String::from_utf8(out).unwrap()).to_string()
    }

    #[test]
    fn plan_and_config_errors_are_bad_input() {
        assert_codes(vec![
            (
                PlanError::Read {
                    path: path(),
                    source: io(),
                },
                2,
            ),
            (
                PlanError::Invalid {
                    path: path(),
                    diagnostics: Vec::new(),
                },
                2,
            ),
        ]);
        assert_codes(vec![
            (
                ConfigError::Read {
                    path: path(),
                    source: io(),
                },
                2,
            ),
            (
                ConfigError::Invalid {
                    path: path(),
                    location: None,
                    message: "bad".to_owned(),
                },
                2,
            ),
        ]);
    }

    #[test]
    fn taskmaster_errors_are_bad_input_and_name_the_file() {
        let in_file = |error| taskmaster::InFile {
            path: PathBuf::from("tasks.json"),
            error,
        };
        let names = || vec!["a".to_owned()];
        assert_codes(vec![
            (
                in_file(TaskmasterError::Parse {
                    location: at(),
                    message: "bad".to_owned(),
                }),
                2,
            ),
            (in_file(TaskmasterError::NotTaskmaster), 2),
            (
                in_file(TaskmasterError::UnknownTag {
                    tag: "x".to_owned(),
                    available: names(),
                }),
                2,
            ),
            (
                in_file(TaskmasterError::NoTags {
                    tag: "x".to_owned(),
                }),
                2,
            ),
            (
                in_file(TaskmasterError::AmbiguousTag { available: names() }),
                2,
            ),
            (
                in_file(TaskmasterError::BadId {
                    what: "task 1".to_owned(),
                    found: "null".to_owned(),
                }),
                2,
            ),
        ]);
        assert_eq!(
            printed(in_file(TaskmasterError::NotTaskmaster).into()),
            "error: `tasks.json`: this is not a Taskmaster file: expected `{\"tasks\": [...]}` or tags like `{\"master\": {\"tasks\": [...]}}`\n"
        );
    }

    #[test]
    fn state_and_lock_errors() {
        assert_codes(vec![
            (state_parse(), 2),
            (newer(), 2),
            (gap(), 2),
            (state_read(), 255),
            (state_write(), 255),
        ]);
        assert_codes(vec![(held(), 3), (lock_io(), 255)]);
    }

    #[test]
    fn git_refusals_are_bad_input_and_git_failures_internal() {
        assert_codes(vec![
            (GitError::NotARepository { path: path() }, 2),
            (GitError::Bare { path: path() }, 2),
            (no_branch(), 2),
            (
                GitError::BranchExists {
                    branch: "orch/A".to_owned(),
                    oid: "abc".to_owned(),
                },
                2,
            ),
            (GitError::PathTaken { path: path() }, 2),
            (
                GitError::CheckedOutInMain {
                    branch: "orch/A".to_owned(),
                    path: path(),
                },
                2,
            ),
            (libgit2(), 255),
            (GitError::Command(git_cli()), 255),
        ]);
        assert_eq!(
            printed(GitError::NotARepository { path: path() }.into()),
            "error: `f` is not inside a git repository\nhint: run `git init` first, or pass `-C` with the repository's folder\n"
        );
    }

    #[test]
    fn run_errors() {
        let glob = crate::merge_queue::policy::BadGlob {
            pattern: "[".to_owned(),
            source: globset::Glob::new("[").unwrap_err(),
        };
        assert_codes(vec![
            (RunError::Lock(held()), 3),
            (RunError::Lock(lock_io()), 255),
            (RunError::State(state_parse()), 2),
            (RunError::State(newer()), 2),
            (RunError::State(state_read()), 255),
            (RunError::State(state_write()), 255),
            (
                RunError::Io {
                    path: path(),
                    source: io(),
                },
                255,
            ),
            (
                RunError::NoTarget {
                    target: "main".to_owned(),
                },
                2,
            ),
            (
                RunError::TargetGone {
                    target: "main".to_owned(),
                    last: None,
                },
                2,
            ),
            (
                RunError::TargetRewound {
                    target: "main".to_owned(),
                    lost: "abc".to_owned(),
                    backup: "refs/orch/backup/@target/main/1".to_owned(),
                },
                2,
            ),
            (RunError::Git(no_branch()), 2),
            (RunError::Git(libgit2()), 255),
            (RunError::Policy(glob), 255),
        ]);
    }

    #[test]
    fn a_deleted_target_says_how_to_recreate_it() {
        let gone = |last: Option<&str>| {
            CliError::from(RunError::TargetGone {
                target: "main".to_owned(),
                last: last.map(str::to_owned),
            })
            .hints
        };
        assert_eq!(
            gone(Some("abc123")),
            [
                "recreate it where orch last saw it (`git branch main abc123`), then `orch run` carries on; finished work waits in the queue"
            ]
        );
        assert_eq!(
            gone(None),
            ["recreate `main`, then `orch run` carries on; finished work waits in the queue"]
        );
    }

    #[test]
    fn a_wrapped_error_prints_as_itself() {
        assert_eq!(
            printed(RunError::Lock(held()).into()),
            printed(held().into())
        );
        assert_eq!(
            printed(ControlError::State(state_write()).into()),
            "error: cannot write `f`\n  caused by: disk on fire\n"
        );
    }

    #[test]
    fn control_errors() {
        assert_codes(vec![
            (
                ControlError::StateDir {
                    path: path(),
                    source: io(),
                },
                255,
            ),
            (ControlError::Lock(held()), 3),
            (ControlError::Lock(lock_io()), 255),
            (ControlError::State(state_parse()), 2),
            (ControlError::State(state_write()), 255),
            (
                ControlError::Refused(Refusal::UnknownId { id: "Z".to_owned() }),
                2,
            ),
            (
                ControlError::Events {
                    path: path(),
                    source: io(),
                },
                255,
            ),
        ]);
    }

    #[test]
    fn clean_errors() {
        assert_codes(vec![
            (
                CleanError::StateDir {
                    path: path(),
                    source: io(),
                },
                255,
            ),
            (CleanError::Lock(held()), 3),
            (CleanError::Lock(lock_io()), 255),
            (CleanError::Git(no_branch()), 2),
            (CleanError::Git(GitError::Command(git_cli())), 255),
            (CleanError::State(state_parse()), 2),
            (CleanError::State(state_write()), 255),
        ]);
    }

    #[test]
    fn hook_dash_demo_and_template_errors() {
        assert_codes(vec![
            (
                HookError::Locate {
                    repo: path(),
                    source: git_cli(),
                },
                255,
            ),
            (
                HookError::Io {
                    path: path(),
                    source: io(),
                },
                255,
            ),
            (
                HookError::Tangled {
                    hook: path(),
                    chained: path(),
                },
                2,
            ),
            (
                HookError::InsideRepository {
                    dir: path(),
                    hooks_path: ".githooks".to_owned(),
                },
                2,
            ),
        ]);
        assert_codes(vec![
            (
                DashError::Watch {
                    path: path(),
                    source: notify::Error::generic("gone"),
                },
                255,
            ),
            (DashError::Terminal(io()), 2),
            (DashError::State(state_parse()), 2),
            (DashError::State(state_read()), 255),
        ]);
        assert_eq!(
            CliError::from(DashError::Terminal(io())).hints,
            ["`orch status` prints the same information without a terminal"]
        );
        assert_codes(vec![
            (DemoError::NotEmpty { path: path() }, 2),
            (
                DemoError::Io {
                    path: path(),
                    source: io(),
                },
                255,
            ),
            (DemoError::Git(git_cli()), 255),
            (
                DemoError::Template(minijinja::Error::new(
                    minijinja::ErrorKind::InvalidOperation,
                    "x",
                )),
                255,
            ),
        ]);
        assert_codes(vec![(
            minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, "x"),
            255,
        )]);
    }

    #[test]
    fn a_closed_stdout_exits_quietly() {
        let pipe = std::io::Error::from(std::io::ErrorKind::BrokenPipe);
        let err = CliError::from(pipe);
        assert_eq!(err.exit_code(), 0);
        assert_eq!(printed(err), "");
        assert_eq!(CliError::from(io()).exit_code(), 255);
    }

    #[test]
    fn exit_codes_follow_the_contract() {
        assert_eq!(ErrorKind::RunFailed.exit_code(), 1);
        assert_eq!(ErrorKind::Input.exit_code(), 2);
        assert_eq!(ErrorKind::Locked.exit_code(), 3);
        assert_eq!(ErrorKind::Interrupted.exit_code(), 130);
        assert_eq!(ErrorKind::Internal.exit_code(), 255);
        assert_eq!(CliError::run_failed("x").exit_code(), 1);
        assert_eq!(CliError::interrupted().exit_code(), 130);
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
