//! Step 3: checking one candidate (a commit of the chain) in a check
//! worktree of its own. Several run at once, each in its slot
//! ([`checks::prepare`]), and the coordinator decides which commits to
//! check and what their results mean.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::config::Check;
use crate::state::StateDir;

use super::checks::{self, CheckEnd, CheckFailure, CheckRun};
use super::outcome::MergeError;

/// What checking one candidate needs.
#[derive(Debug, Clone)]
pub struct CheckJob {
    pub repo: PathBuf,
    pub state_dir: PathBuf,
    /// The check worktree it runs in.
    pub slot: u32,
    pub commit: String,
    pub checks: Vec<Check>,
    /// `task` is the candidate's last task, whose folder holds the logs.
    pub check_run: CheckRun,
    pub admin: Arc<Mutex<()>>,
}

/// How checking a candidate ended.
#[derive(Debug)]
pub enum Checked {
    /// Every check passed (their names, in order).
    Passed { checks: Vec<String> },
    /// `check` failed; those before it passed.
    Failed {
        check: String,
        failure: CheckFailure,
        log: PathBuf,
        passed: Vec<String>,
    },
    /// It was asked to stop.
    Stopped,
    /// A check could not be run at all.
    Error(MergeError),
}

/// Runs the checks, in order, on the candidate. Blocking.
pub fn check(job: &CheckJob) -> Checked {
    let mut passed = Vec::new();
    if job.checks.is_empty() {
        return Checked::Passed { checks: passed };
    }
    let dir = match checks::prepare(&job.repo, &job.state_dir, job.slot, &job.commit, &job.admin) {
        Ok(dir) => dir,
        Err(e) => return Checked::Error(e.into()),
    };
    for check in &job.checks {
        if job.check_run.stop.load(std::sync::atomic::Ordering::SeqCst) {
            return Checked::Stopped;
        }
        let end = match checks::run(&job.check_run, check, &dir, &job.commit) {
            Ok(end) => end,
            Err(source) => {
                return Checked::Error(MergeError::Check {
                    check: check.name.clone(),
                    source,
                });
            }
        };
        match end {
            CheckEnd::Passed => passed.push(check.name.clone()),
            CheckEnd::Stopped => return Checked::Stopped,
            CheckEnd::Failed(failure) => {
                return Checked::Failed {
                    check: check.name.clone(),
                    failure,
                    log: StateDir::at(&job.state_dir).check_log(&job.check_run.task, &check.name),
                    passed,
                };
            }
        }
    }
    Checked::Passed { checks: passed }
}
