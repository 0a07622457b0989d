//! The merge queue: finished tasks land on the target one at a time, each
//! only after policy passes on the exact merged tree (DESIGN §5).
//!
//! ```text
//!  coordinator ── Job ──▶ spawn_blocking(run) ── Outcome ──▶ coordinator
//!                           │ 1 build candidate in memory (git::merge)
//!                           │ 2 path and size rules (policy)
//!                           │ 3 checks in .orchestrator/merge/ (checks)
//!                           │ 4 journal, then target moves by compare-and-swap
//!                           └ 5 clean up branch and worktree, post_merge hooks
//! ```
//!
//! Invariants: the target only ever moves from the head the candidate was
//! built on to the candidate, by compare-and-swap (or, when the target is
//! checked out, by `git merge --ff-only`, which refuses anything else); if it
//! moved, the candidate is rebuilt and rechecked. A checked-out target is
//! only fast-forwarded when it has no changes to tracked files; otherwise
//! merging waits and says why. Before the target moves, `merge.json` records
//! the candidate, so a coordinator killed at any instant can tell on restart
//! whether the merge landed (merged exactly once, never twice, never lost).
//! This module never starts agents and never writes `state.json`.

pub mod checks;
pub mod policy;
pub mod queue;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{Check, MergeStrategy};
use crate::git::merge::{self, Built};
use crate::git::{GitError, cmd, refs, worktree};
use crate::runner::hook;
use checks::{CheckEnd, CheckRun};
use policy::{Policy, Refusal};

/// How many times a merge is rebuilt because the target moved, before the
/// task goes back to the queue.
const MAX_REBUILDS: u32 = 5;

/// The journal written before the target moves.
pub const JOURNAL: &str = "merge.json";

/// What `merge.json` records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Journal {
    pub task: String,
    pub candidate: String,
    /// The target head the candidate was built on.
    pub onto: String,
}

/// Everything one merge needs.
#[derive(Debug, Clone)]
pub struct Job {
    pub repo: PathBuf,
    pub state_dir: PathBuf,
    pub task: String,
    pub title: String,
    pub branch: String,
    /// The tip recorded when the task was queued; `None` accepts the current tip.
    pub queued_tip: Option<String>,
    /// Where the branch started (for `rebase`).
    pub base: Option<String>,
    pub target: String,
    pub strategy: MergeStrategy,
    pub policy: Policy,
    pub checks: Vec<Check>,
    pub check_run: CheckRun,
    pub delete_branch: bool,
    pub remove_worktree: bool,
    pub task_worktree: Option<PathBuf>,
    pub post_merge: Vec<String>,
    pub hook_timeout: Duration,
    pub admin: Arc<Mutex<()>>,
}

/// What became of a task's worktree after its merge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorktreeAfter {
    /// Detached at the merged tip, clean, ready to be reused.
    Detached(PathBuf),
    Removed,
    /// Left as it was (it had changes, or there was none).
    Untouched,
}

/// How a merge went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Merged {
        commit: String,
        onto: String,
        /// From the start of the merge to the target moving.
        took: Duration,
        checks: Vec<String>,
        branch_deleted: bool,
        backup: Option<String>,
        worktree: WorktreeAfter,
        hook_failures: Vec<String>,
    },
    Conflicts {
        files: Vec<String>,
        onto: String,
    },
    NotFastForward {
        onto: String,
    },
    Refused {
        refusals: Vec<Refusal>,
    },
    CheckFailed {
        check: String,
        reason: String,
        log: PathBuf,
        passed: Vec<String>,
    },
    /// The target checkout is not clean; try again later.
    Waiting {
        reason: String,
    },
    /// The branch moved since it was queued; queue it again. When the move
    /// dropped commits (a force-move by hand), the old tip is kept under
    /// `backup`.
    BranchMoved {
        tip: String,
        backup: Option<String>,
    },
    /// The target branch no longer exists.
    TargetGone,
    Interrupted,
    Failed {
        reason: String,
    },
}

fn git_err(e: GitError) -> Outcome {
    Outcome::Failed {
        reason: crate::text::error_chain(&e),
    }
}

/// Runs one merge to its end. Blocking.
pub fn run(job: &Job) -> Outcome {
    match try_run(job) {
        Ok(outcome) => outcome,
        Err(e) => git_err(e),
    }
}

fn stopped(job: &Job) -> bool {
    job.check_run.stop.load(std::sync::atomic::Ordering::SeqCst)
}

fn try_run(job: &Job) -> Result<Outcome, GitError> {
    let repo = &job.repo;
    let target_ref = format!("refs/heads/{}", job.target);
    let message = format!(
        "Merge task {}: {}\n\nOrch-Task: {}\n",
        job.task, job.title, job.task
    );
    let started = std::time::Instant::now();
    let git = git2::Repository::open(repo).map_err(GitError::git(repo))?;
    for _ in 0..MAX_REBUILDS {
        if stopped(job) {
            return Ok(Outcome::Interrupted);
        }
        let Some(tip) = refs::tip(&git, &job.branch).map_err(GitError::git(repo))? else {
            return Ok(Outcome::Failed {
                reason: format!("branch `{}` is gone", job.branch),
            });
        };
        if let Some(queued) = &job.queued_tip
            && *queued != tip.to_string()
        {
            let backup = match refs::parse_oid(queued) {
                Some(old) if !refs::is_ancestor(repo, old, tip)? => {
                    Some(refs::backup(repo, &job.task, old)?)
                }
                _ => None,
            };
            return Ok(Outcome::BranchMoved {
                tip: tip.to_string(),
                backup,
            });
        }
        let Some(head) = refs::tip(&git, &job.target).map_err(GitError::git(repo))? else {
            return Ok(Outcome::TargetGone);
        };
        let base = job.base.as_deref().and_then(refs::parse_oid);
        let candidate = match merge::build(&git, repo, job.strategy, head, tip, base, &message)? {
            Built::Candidate(c) => c,
            Built::Conflicts(files) => {
                return Ok(Outcome::Conflicts {
                    files,
                    onto: head.to_string(),
                });
            }
            Built::NotFastForward => {
                return Ok(Outcome::NotFastForward {
                    onto: head.to_string(),
                });
            }
        };
        if candidate == head {
            let took = started.elapsed();
            let (worktree, branch_deleted, hook_failures) = match cleanup(job, tip) {
                Ok((after, deleted)) => (after, deleted, Vec::new()),
                Err(e) => (
                    WorktreeAfter::Untouched,
                    false,
                    vec![format!(
                        "cleaning up after the merge: {}",
                        crate::text::error_chain(&e)
                    )],
                ),
            };
            return Ok(Outcome::Merged {
                commit: head.to_string(),
                onto: head.to_string(),
                took,
                checks: Vec::new(),
                branch_deleted,
                backup: None,
                worktree,
                hook_failures,
            });
        }
        let changes = merge::diff_summary(&git, repo, head, candidate, job.policy.needs_lines())?;
        let commits = if job.policy.needs_commits() {
            merge::commits(&git, repo, head, tip)?
        } else {
            Vec::new()
        };
        let refusals = job.policy.evaluate(&job.task, &changes, &commits);
        if !refusals.is_empty() {
            return Ok(Outcome::Refused { refusals });
        }
        let candidate_hex = candidate.to_string();
        let mut passed = Vec::new();
        if !job.checks.is_empty() {
            let dir = checks::prepare(repo, &job.state_dir, &candidate_hex, &job.admin)?;
            for check in &job.checks {
                let end =
                    checks::run(&job.check_run, check, &dir, &candidate_hex).map_err(|e| {
                        GitError::Command(cmd::CommandError {
                            argv: vec!["check".to_owned(), check.name.clone()],
                            dir: dir.clone(),
                            code: None,
                            stderr: e.to_string(),
                        })
                    })?;
                match end {
                    CheckEnd::Passed => passed.push(check.name.clone()),
                    CheckEnd::Stopped => return Ok(Outcome::Interrupted),
                    CheckEnd::Failed { reason } => {
                        return Ok(Outcome::CheckFailed {
                            check: check.name.clone(),
                            reason,
                            log: checks::log_path(&job.state_dir, &job.task, &check.name),
                            passed,
                        });
                    }
                }
            }
        }
        if stopped(job) {
            return Ok(Outcome::Interrupted);
        }
        let checkout = worktree::checked_out_at(&git, &job.target);
        if let Some(checkout) = &checkout {
            let changed = cmd::stdout(checkout, ["status", "--porcelain", "--untracked-files=no"])?;
            if !changed.is_empty() {
                let files: Vec<&str> = changed
                    .lines()
                    .map(|l| l.get(3..).unwrap_or(l))
                    .take(5)
                    .collect();
                return Ok(Outcome::Waiting {
                    reason: format!(
                        "`{}` is checked out in `{}` with uncommitted changes to tracked files ({}); merging resumes once it is clean",
                        job.target,
                        checkout.display(),
                        files.join(", ")
                    ),
                });
            }
        }
        let journal = Journal {
            task: job.task.clone(),
            candidate: candidate_hex.clone(),
            onto: head.to_string(),
        };
        crate::fsio::write_json(&job.state_dir.join(JOURNAL), &journal).map_err(|e| {
            GitError::Command(cmd::CommandError {
                argv: vec!["write".to_owned(), JOURNAL.to_owned()],
                dir: job.state_dir.clone(),
                code: None,
                stderr: e.to_string(),
            })
        })?;
        let backup = match job.strategy {
            MergeStrategy::Squash | MergeStrategy::Rebase => {
                Some(refs::backup(repo, &job.task, tip)?)
            }
            MergeStrategy::Merge | MergeStrategy::FfOnly => None,
        };
        let moved = match &checkout {
            Some(dir) => {
                let ff = cmd::run(dir, ["merge", "--ff-only", "--quiet", &candidate_hex]);
                match ff {
                    Ok(_) => true,
                    Err(e)
                        if refs::tip(&git, &job.target).map_err(GitError::git(repo))?
                            == Some(head) =>
                    {
                        return Ok(Outcome::Waiting {
                            reason: format!(
                                "git would not fast-forward `{}` in `{}` (untracked files in the way?): {}",
                                job.target,
                                dir.display(),
                                e.stderr.lines().next().unwrap_or("").trim()
                            ),
                        });
                    }
                    Err(_) => false,
                }
            }
            None => refs::swap(
                &git,
                &target_ref,
                head,
                candidate,
                &format!("orch: merge task {}", job.task),
            )
            .map_err(GitError::git(repo))?,
        };
        if !moved {
            continue;
        }
        let took = started.elapsed();
        let (after, branch_deleted, mut hook_failures) = match cleanup(job, tip) {
            Ok((after, deleted)) => (after, deleted, Vec::new()),
            Err(e) => (
                WorktreeAfter::Untouched,
                false,
                vec![format!(
                    "cleaning up after the merge: {}",
                    crate::text::error_chain(&e)
                )],
            ),
        };
        let hook_dir = checkout
            .clone()
            .unwrap_or_else(|| checks::merge_dir(&job.state_dir));
        hook_failures.extend(run_post_merge(job, &hook_dir, &candidate_hex));
        return Ok(Outcome::Merged {
            commit: candidate_hex,
            onto: head.to_string(),
            took,
            checks: passed,
            branch_deleted,
            backup,
            worktree: after,
            hook_failures,
        });
    }
    Ok(Outcome::Waiting {
        reason: format!(
            "`{}` kept moving while the merge was checked; trying again",
            job.target
        ),
    })
}

/// Frees the task's worktree and deletes its branch, as configured. Never
/// touches a worktree with changes; the branch stays while a worktree has it.
///
/// Runs under the worktree-admin lock, so that it never races a task being
/// given this worktree. The target has already moved when this runs, so its
/// errors are reported, not turned into a failed merge.
fn cleanup(job: &Job, tip: git2::Oid) -> Result<(WorktreeAfter, bool), GitError> {
    let repo = &job.repo;
    let _guard = job.admin.lock().unwrap_or_else(|p| p.into_inner());
    let mut after = WorktreeAfter::Untouched;
    if let Some(wt) = job.task_worktree.as_ref().filter(|w| w.is_dir())
        && worktree::current_branch(wt)?.as_deref() == Some(job.branch.as_str())
        && worktree::dirty_files(wt)?.is_empty()
    {
        if job.remove_worktree {
            worktree::remove(repo, wt)?;
            after = WorktreeAfter::Removed;
        } else {
            cmd::run(wt, ["switch", "--quiet", "--detach"])?;
            after = WorktreeAfter::Detached(wt.clone());
        }
    }
    let held = worktree::list(repo)?
        .iter()
        .any(|e| e.branch.as_deref() == Some(job.branch.as_str()));
    let mut deleted = false;
    if job.delete_branch && !held && refs::branch_tip(repo, &job.branch)? == Some(tip) {
        refs::delete_branch(repo, &job.branch)?;
        deleted = true;
    }
    Ok((after, deleted))
}

fn run_post_merge(job: &Job, dir: &Path, commit: &str) -> Vec<String> {
    let env = [
        ("ORCH_TASK_ID", job.task.as_str()),
        ("ORCH_TARGET", job.target.as_str()),
        ("ORCH_MERGE_COMMIT", commit),
    ];
    let log = job
        .state_dir
        .join("hooks")
        .join(&job.task)
        .join("post_merge.log");
    hook::run_all(
        "post_merge",
        &job.post_merge,
        dir,
        &env,
        &log,
        job.hook_timeout,
    )
    .err()
    .map(|e| crate::text::error_chain(&e))
    .into_iter()
    .collect()
}
