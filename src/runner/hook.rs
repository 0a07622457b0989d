//! Lifecycle hooks (`[hooks]` in the config): `post_create`, `post_agent`,
//! `post_merge`. Each command runs with `sh -c` in the given folder, in a
//! process group of its own, with `ORCH_*` variables, its output appended to
//! a log file; the first one that fails stops the rest and is named with its
//! exit and the log's path. Runs on a blocking thread.

use std::fs::OpenOptions;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::git::cmd::DISCOVERY_VARS;
use crate::runner::terminate::{self, Method};

/// One lifecycle hook, ready to run: its commands, variables, log and time limit.
#[derive(Debug, Clone)]
pub struct Stage {
    /// `post_create`, `post_agent` or `post_merge`.
    pub name: &'static str,
    pub commands: Vec<String>,
    pub env: Vec<(String, String)>,
    pub log: PathBuf,
    pub timeout: Duration,
}

impl Stage {
    /// Runs the commands in `dir`; `Err` names the one that failed.
    pub fn run(&self, dir: &Path) -> Result<(), String> {
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        run_all(
            self.name,
            &self.commands,
            dir,
            &env,
            &self.log,
            self.timeout,
        )
    }
}

/// Runs the commands of one hook in order; `Err` names the one that failed.
pub fn run_all(
    stage: &str,
    commands: &[String],
    dir: &Path,
    env: &[(&str, &str)],
    log: &Path,
    timeout: Duration,
) -> Result<(), String> {
    if commands.is_empty() {
        return Ok(());
    }
    if let Some(parent) = log.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("cannot create `{}`: {e}", parent.display()))?;
    }
    for command in commands {
        let fail =
            |what: String| format!("{stage} hook `{command}` {what}; log: {}", log.display());
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| fail(format!("could not log ({e})")))?;
        let err = out
            .try_clone()
            .map_err(|e| fail(format!("could not log ({e})")))?;
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
        let mut child = cmd
            .spawn()
            .map_err(|e| fail(format!("could not start ({e})")))?;
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = child
                .try_wait()
                .map_err(|e| fail(format!("could not be waited for ({e})")))?
            {
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
                return Err(fail(format!(
                    "timed out after {}",
                    humantime::format_duration(timeout)
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        if !status.success() {
            let how = match status.code() {
                Some(code) => format!("exit code {code}"),
                None => "a signal".to_owned(),
            };
            return Err(fail(format!("failed ({how})")));
        }
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
        assert_eq!(
            err,
            format!(
                "post_agent hook `exit 3` failed (exit code 3); log: {}",
                log.display()
            )
        );
        assert!(!std::fs::read_to_string(&log).unwrap().contains("never"));
    }
}
