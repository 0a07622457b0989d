//! Lifecycle hooks (`[hooks]` in the config): `post_create`, `post_agent`,
//! `post_merge`. Each command runs with `sh -c` in the given folder, in a
//! process group of its own, with `ORCH_*` variables, its output appended to
//! a log file; the first one that fails stops the rest and is named, with
//! its exit and the log's path, in a [`HookError`]. Runs on a blocking thread.
//!
//! A [`Stage`] with a [`Grant`] (`post_create`, `post_agent` of a confined
//! run) runs confined as the agent is: a private temp folder as `TMPDIR`,
//! and the Landlock ruleset built before the fork and applied in
//! `pre_exec` (see `crate::sandbox` for why that is safe in this
//! multi-threaded process). `post_merge` runs unconfined.

use std::fs::OpenOptions;
use std::io;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::git::cmd::DISCOVERY_VARS;
use crate::runner::confine::{ConfineError, Grant};
use crate::runner::terminate::{self, Method};
use crate::sandbox::{Ruleset, SandboxError};

/// Why a lifecycle hook failed. Every variant after the first names the
/// stage, the command and the log its output went to.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// The log's folder could not be created (before any command ran).
    #[error("cannot create `{}`", dir.display())]
    LogDir {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The command could not be logged, started or waited for.
    #[error("{stage} hook `{command}` {step}; log: {}", log.display())]
    Io {
        stage: &'static str,
        command: String,
        step: HookStep,
        log: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The command ran past the time limit; its group was stopped.
    #[error(
        "{stage} hook `{command}` timed out after {}; log: {}",
        humantime::format_duration(*timeout),
        log.display()
    )]
    TimedOut {
        stage: &'static str,
        command: String,
        timeout: Duration,
        log: PathBuf,
    },
    /// The hook could not be confined (nothing ran).
    #[error("cannot confine the {stage} hook")]
    Confine {
        stage: &'static str,
        #[source]
        source: HookConfineError,
    },
    #[error("{stage} hook `{command}` failed ({exit}); log: {}", log.display())]
    Failed {
        stage: &'static str,
        command: String,
        exit: HookExit,
        log: PathBuf,
    },
}

/// Why a hook could not be confined.
#[derive(Debug, thiserror::Error)]
pub enum HookConfineError {
    #[error("cannot make its temp folder")]
    Temp(#[source] io::Error),
    #[error(transparent)]
    Policy(#[from] ConfineError),
    #[error(transparent)]
    Ruleset(#[from] SandboxError),
}

/// What could not be done for a hook command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookStep {
    /// Opening its log.
    Log,
    Start,
    Wait,
}

impl std::fmt::Display for HookStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            HookStep::Log => "could not log",
            HookStep::Start => "could not start",
            HookStep::Wait => "could not be waited for",
        })
    }
}

/// How a hook command that did not succeed ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookExit {
    /// It exited with this non-zero code.
    Code(i32),
    /// A signal killed it (the number).
    Signaled(i32),
}

impl HookExit {
    fn of(status: ExitStatus) -> HookExit {
        match (status.code(), status.signal()) {
            (Some(code), _) => HookExit::Code(code),
            (None, Some(signal)) => HookExit::Signaled(signal),
            // Neither a code nor a signal does not happen on Unix; read it as
            // a failure all the same.
            (None, None) => HookExit::Code(-1),
        }
    }
}

impl std::fmt::Display for HookExit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HookExit::Code(code) => write!(f, "exit code {code}"),
            HookExit::Signaled(_) => f.write_str("a signal"),
        }
    }
}

/// One lifecycle hook, ready to run: its commands, variables, log and time limit.
#[derive(Debug, Clone)]
pub struct Stage {
    /// `post_create`, `post_agent` or `post_merge`.
    pub name: &'static str,
    pub commands: Vec<String>,
    pub env: Vec<(String, String)>,
    pub log: PathBuf,
    pub timeout: Duration,
    /// Confine the commands (`None`: they run unconfined).
    pub sandbox: Option<Grant>,
}

impl Stage {
    /// Runs the commands in `dir`; the error names the one that failed.
    pub fn run(&self, dir: &Path) -> Result<(), HookError> {
        if self.commands.is_empty() {
            return Ok(());
        }
        let mut env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let confined = match &self.sandbox {
            Some(grant) => Some(confine(grant, dir).map_err(|source| HookError::Confine {
                stage: self.name,
                source,
            })?),
            None => None,
        };
        let temp;
        if let Some((_, dir)) = &confined {
            temp = dir.path().display().to_string();
            env.push(("TMPDIR", &temp));
        }
        let ruleset = confined.as_ref().map(|(r, _)| r);
        run_stage(
            self.name,
            &self.commands,
            dir,
            &env,
            &self.log,
            self.timeout,
            ruleset,
        )
    }
}

/// Makes a hook's temp folder and builds its ruleset, before any fork.
fn confine(
    grant: &Grant,
    dir: &Path,
) -> Result<(Arc<Ruleset>, tempfile::TempDir), HookConfineError> {
    let temp = tempfile::Builder::new()
        .prefix("orch-hook-")
        .tempdir()
        .map_err(HookConfineError::Temp)?;
    let mut policy = grant.policy(dir)?;
    policy.write.push(temp.path().to_owned());
    Ok((Arc::new(crate::sandbox::prepare(&policy)?), temp))
}

/// Runs the commands of one hook in order; the error names the one that failed.
pub fn run_all(
    stage: &'static str,
    commands: &[String],
    dir: &Path,
    env: &[(&str, &str)],
    log: &Path,
    timeout: Duration,
) -> Result<(), HookError> {
    run_stage(stage, commands, dir, env, log, timeout, None)
}

fn run_stage(
    stage: &'static str,
    commands: &[String],
    dir: &Path,
    env: &[(&str, &str)],
    log: &Path,
    timeout: Duration,
    ruleset: Option<&Arc<Ruleset>>,
) -> Result<(), HookError> {
    if commands.is_empty() {
        return Ok(());
    }
    if let Some(parent) = log.parent() {
        std::fs::create_dir_all(parent).map_err(|source| HookError::LogDir {
            dir: parent.to_owned(),
            source,
        })?;
    }
    for command in commands {
        run_one(stage, command, dir, env, log, timeout, ruleset)?;
    }
    Ok(())
}

fn run_one(
    stage: &'static str,
    command: &str,
    dir: &Path,
    env: &[(&str, &str)],
    log: &Path,
    timeout: Duration,
    ruleset: Option<&Arc<Ruleset>>,
) -> Result<(), HookError> {
    let io = |step| {
        move |source| HookError::Io {
            stage,
            command: command.to_owned(),
            step,
            log: log.to_owned(),
            source,
        }
    };
    let out = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(io(HookStep::Log))?;
    let err = out.try_clone().map_err(io(HookStep::Log))?;
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(command)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0);
    for var in DISCOVERY_VARS {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    if let Some(ruleset) = ruleset {
        let ruleset = Arc::clone(ruleset);
        // SAFETY: the closure only calls `Ruleset::restrict_self`, which
        // makes two async-signal-safe system calls and allocates nothing.
        unsafe {
            cmd.pre_exec(move || ruleset.restrict_self());
        }
    }
    let mut child = cmd.spawn().map_err(io(HookStep::Start))?;
    let deadline = Instant::now() + timeout;
    let status = loop {
        let exited = child.try_wait().map_err(io(HookStep::Wait))?;
        if let Some(status) = exited {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = terminate::stop_group_blocking(
                child.id(),
                Method::TermThenKill {
                    grace: Duration::from_secs(5),
                },
            );
            let _ = child.wait();
            return Err(HookError::TimedOut {
                stage,
                command: command.to_owned(),
                timeout,
                log: log.to_owned(),
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    if !status.success() {
        return Err(HookError::Failed {
            stage,
            command: command.to_owned(),
            exit: HookExit::of(status),
            log: log.to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_in_order_and_names_the_failing_command() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("logs/hook.log");
        let ok = vec!["echo one".to_owned(), "echo \"$ORCH_TASK_ID\"".to_owned()];
        run_all(
            "post_create",
            &ok,
            dir.path(),
            &[("ORCH_TASK_ID", "T1")],
            &log,
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "one\nT1\n");
        let bad = vec!["exit 3".to_owned(), "echo never".to_owned()];
        let err = run_all(
            "post_agent",
            &bad,
            dir.path(),
            &[],
            &log,
            Duration::from_secs(10),
        )
        .unwrap_err();
        assert!(matches!(
            err,
            HookError::Failed {
                exit: HookExit::Code(3),
                ..
            }
        ));
        assert_eq!(
            err.to_string(),
            format!(
                "post_agent hook `exit 3` failed (exit code 3); log: {}",
                log.display()
            )
        );
        assert!(!std::fs::read_to_string(&log).unwrap().contains("never"));
    }

    #[test]
    fn a_command_that_cannot_start_names_the_cause_last() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("post_merge.log");
        let gone = dir.path().join("gone");
        let err = run_all(
            "post_merge",
            &["true".to_owned()],
            &gone,
            &[],
            &log,
            Duration::from_secs(10),
        )
        .unwrap_err();
        assert!(matches!(
            err,
            HookError::Io {
                step: HookStep::Start,
                ..
            }
        ));
        let text = crate::text::error_chain(&err);
        let start = format!(
            "post_merge hook `true` could not start; log: {}: ",
            log.display()
        );
        assert!(text.starts_with(&start), "{text}");
        assert!(text.contains("No such file or directory"), "{text}");
    }

    #[test]
    fn a_signal_is_not_an_exit_code() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("post_agent.log");
        let err = run_all(
            "post_agent",
            &["kill -9 $$".to_owned()],
            dir.path(),
            &[],
            &log,
            Duration::from_secs(10),
        )
        .unwrap_err();
        assert!(matches!(
            err,
            HookError::Failed {
                exit: HookExit::Signaled(9),
                ..
            }
        ));
        assert!(err.to_string().contains("failed (a signal)"), "{err}");
    }
}
