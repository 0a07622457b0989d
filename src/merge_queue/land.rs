//! One merge, step by step: [`run`] drives the five steps of the module
//! diagram, each a function of its own, until the task lands or a step
//! ends the merge with a [`MergeOutcome`].

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use git2::{Oid, Repository};
use serde::{Deserialize, Serialize};

use crate::config::Check;
use crate::git::merge::{self, Built, MergeStrategy};
use crate::git::{GitError, cmd, refs, worktree};
use crate::runner::hook;
use crate::state::StateDir;

use super::checkout::{self, Forwarded, Resumed};
use super::checks::{self, CheckEnd, CheckRun};
use super::evidence::{self, Sought};
use super::outcome::{MergeError, MergeOutcome, PostMergeError, WaitReason, WorktreeAfter};
use super::policy::Policy;

/// How many times a merge is rebuilt because the target moved, before the
/// task goes back to the queue.
const MAX_REBUILDS: u32 = 5;

/// The journal written before the target moves, in the state dir: the name
/// of [`StateDir::merge_journal`], which new code should use.
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
    /// The target's head after orch's last merge: a target that no longer
    /// contains it was moved under orch, and nothing more merges.
    pub landed: Option<String>,
    /// The task's merge recorded before a person ran it again, if it was:
    /// not a landing of this merge.
    pub merged_before: Option<String>,
    pub admin: Arc<Mutex<()>>,
}

/// Why a step ends the merge before it lands.
enum Ended {
    /// With this outcome: conflicts, a refusal, a failed check, a wait...
    /// (boxed: an outcome is large, and this travels in every `Err`).
    With(Box<MergeOutcome>),
    Failed(MergeError),
}

impl From<MergeOutcome> for Ended {
    fn from(outcome: MergeOutcome) -> Self {
        Ended::With(Box::new(outcome))
    }
}

impl From<MergeError> for Ended {
    fn from(e: MergeError) -> Self {
        Ended::Failed(e)
    }
}

impl From<GitError> for Ended {
    fn from(e: GitError) -> Self {
        Ended::Failed(e.into())
    }
}

impl From<cmd::CommandError> for Ended {
    fn from(e: cmd::CommandError) -> Self {
        Ended::Failed(e.into())
    }
}

/// The two sides of a merge: the branch's tip and the target's head.
struct Sides {
    tip: Oid,
    head: Oid,
}

/// How the target moved to the candidate (step 4).
struct Moved {
    /// The backup ref of the branch's old tip (`squash` and `rebase`).
    backup: Option<String>,
    /// The target's checkout, when it was fast-forwarded there.
    checkout: Option<PathBuf>,
}

/// What landed, for step 5.
struct Landed {
    commit: Oid,
    checks: Vec<String>,
    backup: Option<String>,
    /// Where `post_merge` is to run; `None` runs no hooks (nothing new landed).
    hooks_in: Option<PathBuf>,
}

/// Runs one merge to its end. Blocking.
pub fn run(job: &Job) -> MergeOutcome {
    match land(job) {
        Ok(outcome) => outcome,
        Err(Ended::With(outcome)) => *outcome,
        Err(Ended::Failed(error)) => MergeOutcome::Failed { error },
    }
}

/// Builds, checks and moves the target until the task lands; a target that
/// moves meanwhile means building again, up to [`MAX_REBUILDS`] times.
fn land(job: &Job) -> Result<MergeOutcome, Ended> {
    let started = Instant::now();
    let git = Repository::open(&job.repo).map_err(GitError::git(&job.repo))?;
    for _ in 0..MAX_REBUILDS {
        interrupted(job)?;
        let sides = sides(job, &git)?;
        let candidate = build(job, &git, &sides)?;
        if candidate == sides.head {
            // The target already holds the branch's work: nothing moves and
            // no hook runs, only the cleanup is left, if orch put it there.
            let commit = already_landed(job, &git, &sides)?;
            let landed = Landed {
                commit,
                checks: Vec::new(),
                backup: None,
                hooks_in: None,
            };
            return Ok(finish(job, &sides, landed, started.elapsed()));
        }
        apply_policy(job, &git, &sides, candidate)?;
        let passed = run_checks(job, candidate)?;
        interrupted(job)?;
        let Some(moved) = move_target(job, &git, &sides, candidate)? else {
            continue;
        };
        let took = started.elapsed();
        let landed = Landed {
            commit: candidate,
            checks: passed,
            backup: moved.backup,
            hooks_in: Some(
                moved
                    .checkout
                    .unwrap_or_else(|| StateDir::at(&job.state_dir).merge_worktree()),
            ),
        };
        return Ok(finish(job, &sides, landed, took));
    }
    Ok(MergeOutcome::Waiting {
        why: WaitReason::KeptMoving {
            target: job.target.clone(),
        },
    })
}

/// Ends the merge when the run is stopping.
fn interrupted(job: &Job) -> Result<(), Ended> {
    if job.check_run.stop.load(Ordering::SeqCst) {
        return Err(MergeOutcome::Interrupted.into());
    }
    Ok(())
}

/// Reads the branch's tip and the target's head, ending the merge when
/// either is gone or the branch moved since it was queued.
fn sides(job: &Job, git: &Repository) -> Result<Sides, Ended> {
    let repo = &job.repo;
    let Some(tip) = refs::tip(git, &job.branch).map_err(GitError::git(repo))? else {
        return Err(MergeError::BranchGone {
            branch: job.branch.clone(),
        }
        .into());
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
        return Err(MergeOutcome::BranchMoved {
            tip: tip.to_string(),
            backup,
        }
        .into());
    }
    let Some(head) = refs::tip(git, &job.target).map_err(GitError::git(repo))? else {
        return Err(MergeOutcome::TargetGone.into());
    };
    if let Some(landed) = job.landed.as_deref().and_then(refs::parse_oid)
        && !refs::is_ancestor(repo, landed, head)?
    {
        let backup = refs::backup_lost(repo, &job.target, landed)?;
        return Err(MergeOutcome::TargetRewound {
            lost: landed.to_string(),
            head: head.to_string(),
            backup,
        }
        .into());
    }
    Ok(Sides { tip, head })
}

/// Returns where the branch's work landed when the target already holds
/// it: its base (a branch with no commits), or the commit that shows orch
/// merged it ([`evidence`]). A branch tip the target was moved onto some
/// other way is not a merge: it ends the merge.
fn already_landed(job: &Job, git: &Repository, sides: &Sides) -> Result<Oid, Ended> {
    let base = job.base.as_deref().and_then(refs::parse_oid);
    if base == Some(sides.tip) {
        return Ok(sides.head);
    }
    let journal: Option<Journal> =
        crate::fsio::read_json(&StateDir::at(&job.state_dir).merge_journal())
            .ok()
            .flatten();
    let sought = Sought {
        task: job.task.clone(),
        base,
        backup: refs::latest_backup(&job.repo, &job.task)?.map(|(_, oid)| oid),
        merged_before: job.merged_before.as_deref().and_then(refs::parse_oid),
    };
    let found = evidence::find(git, sides.head, &[sought], journal.as_ref())
        .map_err(GitError::git(&job.repo))?;
    match found.get(&job.task) {
        Some(commit) => Ok(*commit),
        None => Err(MergeOutcome::PutThereOutsideOrch {
            branch: job.branch.clone(),
            tip: sides.tip.to_string(),
        }
        .into()),
    }
}

/// Step 1: builds the candidate in memory with the configured strategy.
fn build(job: &Job, git: &Repository, sides: &Sides) -> Result<Oid, Ended> {
    let message = format!(
        "Merge task {}: {}\n\nOrch-Task: {}\n",
        job.task, job.title, job.task
    );
    let base = job.base.as_deref().and_then(refs::parse_oid);
    let onto = sides.head.to_string();
    match merge::build(
        git,
        &job.repo,
        job.strategy,
        sides.head,
        sides.tip,
        base,
        &message,
    )? {
        Built::Candidate(candidate) => Ok(candidate),
        Built::Conflicts(files) => Err(MergeOutcome::Conflicts { files, onto }.into()),
        Built::NotFastForward => Err(MergeOutcome::NotFastForward { onto }.into()),
    }
}

/// Step 2: the path and size rules, on the candidate's diff from the head.
fn apply_policy(job: &Job, git: &Repository, sides: &Sides, candidate: Oid) -> Result<(), Ended> {
    let changes = merge::diff_summary(
        git,
        &job.repo,
        sides.head,
        candidate,
        job.policy.needs_lines(),
    )?;
    let commits = if job.policy.needs_commits() {
        merge::commits(git, &job.repo, sides.head, sides.tip)?
    } else {
        Vec::new()
    };
    let refusals = job.policy.evaluate(&job.task, &changes, &commits);
    if !refusals.is_empty() {
        return Err(MergeOutcome::Refused { refusals }.into());
    }
    Ok(())
}

/// Step 3: runs the checks, in order, on the candidate in the merge
/// worktree; returns the names of those that passed (all of them).
fn run_checks(job: &Job, candidate: Oid) -> Result<Vec<String>, Ended> {
    let mut passed = Vec::new();
    if job.checks.is_empty() {
        return Ok(passed);
    }
    let candidate = candidate.to_string();
    let dir = checks::prepare(&job.repo, &job.state_dir, &candidate, &job.admin)?;
    for check in &job.checks {
        let end = checks::run(&job.check_run, check, &dir, &candidate).map_err(|source| {
            MergeError::Check {
                check: check.name.clone(),
                source,
            }
        })?;
        match end {
            CheckEnd::Passed => passed.push(check.name.clone()),
            CheckEnd::Stopped => return Err(MergeOutcome::Interrupted.into()),
            CheckEnd::Failed(failure) => {
                return Err(MergeOutcome::CheckFailed {
                    check: check.name.clone(),
                    failure,
                    log: StateDir::at(&job.state_dir).check_log(&job.task, &check.name),
                    passed,
                }
                .into());
            }
        }
    }
    Ok(passed)
}

/// Step 4: writes the journal, then moves the target from the head to the
/// candidate: by compare-and-swap, or, where the target is checked out, by
/// bringing that checkout along under git's rule ([`checkout`]). Returns
/// `None` when the target moved meanwhile, so the candidate must be built
/// again.
fn move_target(
    job: &Job,
    git: &Repository,
    sides: &Sides,
    candidate: Oid,
) -> Result<Option<Moved>, Ended> {
    let repo = &job.repo;
    let state_dir = StateDir::at(&job.state_dir);
    let candidate_hex = candidate.to_string();
    let checkout = worktree::checked_out_at(git, &job.target);
    if let Some(dir) = &checkout {
        match checkout::resume(repo, &state_dir)? {
            Resumed::Waiting(stuck) => {
                return Err(MergeOutcome::Waiting {
                    why: WaitReason::CheckoutStuck(stuck),
                }
                .into());
            }
            // An earlier move finished: the target moved, build again.
            Resumed::Completed { .. } => return Ok(None),
            Resumed::Nothing | Resumed::Abandoned => {}
        }
        let blockers = checkout::blockers(dir, sides.head, candidate)?;
        if !blockers.is_empty() {
            return Err(MergeOutcome::Waiting {
                why: WaitReason::TargetDirty {
                    target: job.target.clone(),
                    checkout: dir.clone(),
                    blockers,
                },
            }
            .into());
        }
    }
    let journal = Journal {
        task: job.task.clone(),
        candidate: candidate_hex.clone(),
        onto: sides.head.to_string(),
    };
    let path = state_dir.merge_journal();
    crate::fsio::write_json(&path, &journal)
        .map_err(|source| MergeError::Journal { path, source })?;
    let backup = match job.strategy {
        MergeStrategy::Squash | MergeStrategy::Rebase => {
            Some(refs::backup(repo, &job.task, sides.tip)?)
        }
        MergeStrategy::Merge | MergeStrategy::FfOnly => None,
    };
    let message = format!("orch: merge task {}", job.task);
    let moved = match &checkout {
        Some(dir) => {
            match checkout::fast_forward(
                &state_dir,
                dir,
                &job.target,
                sides.head,
                candidate,
                &message,
            )? {
                Forwarded::Moved => true,
                Forwarded::TargetMoved => false,
                Forwarded::Stuck(stuck) => {
                    return Err(MergeOutcome::Waiting {
                        why: WaitReason::CheckoutStuck(stuck),
                    }
                    .into());
                }
                Forwarded::Refused(source)
                    if refs::tip(git, &job.target).map_err(GitError::git(repo))?
                        == Some(sides.head) =>
                {
                    let blockers =
                        checkout::blockers(dir, sides.head, candidate).unwrap_or_default();
                    return Err(MergeOutcome::Waiting {
                        why: WaitReason::FastForwardRefused {
                            target: job.target.clone(),
                            checkout: dir.clone(),
                            blockers,
                            source,
                        },
                    }
                    .into());
                }
                Forwarded::Refused(_) => false,
            }
        }
        None => refs::swap(
            git,
            &format!("refs/heads/{}", job.target),
            sides.head,
            candidate,
            &message,
        )
        .map_err(GitError::git(repo))?,
    };
    Ok(moved.then_some(Moved { backup, checkout }))
}

/// Step 5, once the target holds the candidate: frees the task's worktree
/// and deletes its branch. Nothing here undoes the merge; what fails is
/// reported with it. `post_merge` runs later ([`run_post_merge`]), once the
/// coordinator has recorded the merge on disk.
fn finish(job: &Job, sides: &Sides, landed: Landed, took: Duration) -> MergeOutcome {
    let commit = landed.commit.to_string();
    let (worktree, branch_deleted, hook_failures) = match cleanup(job, sides.tip) {
        Ok((after, deleted)) => (after, deleted, Vec::new()),
        Err(e) => (
            WorktreeAfter::Untouched,
            false,
            vec![PostMergeError::Cleanup(e)],
        ),
    };
    MergeOutcome::Merged {
        commit,
        onto: sides.head.to_string(),
        took,
        checks: landed.checks,
        branch_deleted,
        backup: landed.backup,
        worktree,
        hooks_in: landed.hooks_in,
        hook_failures,
    }
}

/// Frees the task's worktree and deletes its branch, as configured. Never
/// touches a worktree with changes; the branch stays while a worktree has it.
///
/// Runs under the worktree-admin lock, so that it never races a task being
/// given this worktree. The target has already moved when this runs, so its
/// errors are reported, not turned into a failed merge.
fn cleanup(job: &Job, tip: Oid) -> Result<(WorktreeAfter, bool), GitError> {
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

/// What `post_merge` needs, once a merge has landed and is on disk.
#[derive(Debug, Clone)]
pub struct PostMerge {
    pub state_dir: PathBuf,
    pub task: String,
    pub target: String,
    pub commit: String,
    /// The target's checkout, or the merge worktree.
    pub dir: PathBuf,
    pub commands: Vec<String>,
    pub timeout: Duration,
}

/// Runs the `post_merge` hooks of a landed merge. Blocking.
pub fn run_post_merge(post: &PostMerge) -> Result<(), hook::HookError> {
    let env = [
        ("ORCH_TASK_ID", post.task.as_str()),
        ("ORCH_TARGET", post.target.as_str()),
        ("ORCH_MERGE_COMMIT", post.commit.as_str()),
    ];
    let log = StateDir::at(&post.state_dir).hook_log(&post.task, "post_merge");
    hook::run_all(
        "post_merge",
        &post.commands,
        &post.dir,
        &env,
        &log,
        post.timeout,
    )
}
