//! Step 1: building the queue's chain of candidates in memory.
//!
//! The queue is one chain of commits on the target's head: each task (a
//! link) is merged, with the configured strategy, onto the commit of the
//! link before it, so that the commit of link `k` holds the target plus
//! every task up to `k`, each with its own merge commit (or squash, or
//! replayed commits). Checking link `k`'s commit checks that whole prefix;
//! landing it moves the target over all of them at once. [`build`] builds
//! a run of links onto a commit of the chain (or the target's head, read
//! now): a link that cannot be built (conflicts, a policy refusal, a branch
//! moved since it was queued) is left out, and the next is built onto the
//! last good commit, so one task's trouble never holds the others.
//!
//! A revert link (`orch revert`) is the commit undoing a merged task's
//! change, built the same way. Nothing here moves a ref.

use std::path::PathBuf;

use git2::{Oid, Repository};

use crate::git::merge::{self, Built, MergeStrategy};
use crate::git::{GitError, refs};
use crate::state::StateDir;

use super::evidence::{self, Sought};
use super::land::Journal;
use super::land::{Cleanup, LandBranch};
use super::outcome::{MergeError, MergeOutcome, PostMergeError, WorktreeAfter};
use super::policy::Policy;

/// What building a run of links needs.
#[derive(Debug, Clone)]
pub struct BuildJob {
    pub repo: PathBuf,
    pub state_dir: PathBuf,
    pub target: String,
    pub strategy: MergeStrategy,
    pub policy: Policy,
    pub onto: Onto,
    pub links: Vec<LinkSpec>,
    /// For a task the target already holds: its worktree and branch are
    /// freed as a landing frees them.
    pub delete_branch: bool,
    pub remove_worktree: bool,
    pub admin: std::sync::Arc<std::sync::Mutex<()>>,
}

/// Where the first link is built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Onto {
    /// The target's head, read now; `landed` is the head after orch's last
    /// merge (a target that no longer contains it was moved under orch).
    Target { landed: Option<String> },
    /// A commit of the chain, not landed yet.
    Commit(String),
}

/// One link to build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkSpec {
    pub task: String,
    pub title: String,
    pub what: LinkWhat,
}

/// What a link lands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkWhat {
    /// The task's branch.
    Merge {
        branch: String,
        /// The tip recorded when the task was queued; `None` accepts the current tip.
        queued_tip: Option<String>,
        /// Where the branch started (for `rebase`).
        base: Option<String>,
        /// The task's merge recorded before a person ran it again, if it was.
        merged_before: Option<String>,
        /// The task's worktree, freed when the target already holds its work.
        worktree: Option<PathBuf>,
    },
    /// The undoing of the task's landing, from `before` to `after`.
    Revert { before: String, after: String },
}

/// What came of building a run of links.
#[derive(Debug)]
pub struct BuildReport {
    /// The commit the first link was built onto, or why nothing was built
    /// (the target is gone, or was moved under orch).
    pub onto: Result<String, MergeOutcome>,
    /// Each link's result, in order.
    pub links: Vec<(String, LinkResult)>,
}

/// What came of one link.
#[derive(Debug)]
pub enum LinkResult {
    /// Its commit, built onto the last good commit before it; `tip` is the
    /// branch tip it merged.
    Built { commit: String, tip: Option<String> },
    /// The target already holds the task's work, and git shows orch put it
    /// there (or the branch has no commits): nothing to check or land; its
    /// worktree and branch were freed as after a landing.
    Landed {
        commit: String,
        worktree: WorktreeAfter,
        branch_deleted: bool,
        /// Freeing them failed; the merge stands.
        cleanup: Option<PostMergeError>,
    },
    /// A revert with nothing left to undo.
    NothingToRevert,
    /// It cannot be built now.
    Ended(MergeOutcome),
}

/// Returns a task's merge commit message (`merge`, `squash`, and `ff-only`
/// when it cannot replay): what [`evidence`] recognises.
pub fn merge_message(task: &str, title: &str) -> String {
    format!("Merge task {task}: {title}\n\nOrch-Task: {task}\n")
}

/// Returns a revert commit's message.
pub fn revert_message(task: &str, title: &str, after: &str) -> String {
    format!(
        "Revert task {task}: {title}\n\nThis undoes the work task {task} landed as {after}.\n\nOrch-Revert: {task}\n"
    )
}

/// Returns the first parent of `commit` (where a task landed when the
/// state does not say: a merge found again after a crash). Blocking.
pub fn first_parent(repo: &std::path::Path, commit: &str) -> Option<String> {
    let git = Repository::open(repo).ok()?;
    let commit = git.find_commit(refs::parse_oid(commit)?).ok()?;
    commit.parent_id(0).ok().map(|p| p.to_string())
}

/// Builds the links in order. Blocking.
pub fn build(job: &BuildJob) -> BuildReport {
    let git = match Repository::open(&job.repo) {
        Ok(git) => git,
        Err(e) => {
            return BuildReport {
                onto: Err(failed(GitError::git(&job.repo)(e))),
                links: Vec::new(),
            };
        }
    };
    let onto = match onto(job, &git) {
        Ok(onto) => onto,
        Err(outcome) => {
            return BuildReport {
                onto: Err(*outcome),
                links: Vec::new(),
            };
        }
    };
    let head = refs::tip(&git, &job.target).ok().flatten().unwrap_or(onto);
    let mut prev = onto;
    let mut links = Vec::with_capacity(job.links.len());
    for link in &job.links {
        let result = match &link.what {
            LinkWhat::Merge { .. } => build_merge(job, &git, head, prev, link),
            LinkWhat::Revert { before, after } => {
                build_revert(job, &git, prev, link, before, after)
            }
        }
        .unwrap_or_else(|e| LinkResult::Ended(failed(e)));
        if let LinkResult::Built { commit, .. } = &result
            && let Some(oid) = refs::parse_oid(commit)
        {
            prev = oid;
        }
        links.push((link.task.clone(), result));
    }
    BuildReport {
        onto: Ok(onto.to_string()),
        links,
    }
}

fn failed(error: impl Into<MergeError>) -> MergeOutcome {
    MergeOutcome::Failed {
        error: error.into(),
    }
}

/// Returns the commit to build on: the given one, or the target's head,
/// ending the build when the target is gone or lost the head orch landed.
fn onto(job: &BuildJob, git: &Repository) -> Result<Oid, Box<MergeOutcome>> {
    let repo = &job.repo;
    let boxed = |e: GitError| Box::new(failed(e));
    match &job.onto {
        Onto::Commit(commit) => refs::parse_oid(commit).ok_or_else(|| {
            boxed(GitError::NoSuchBranch {
                branch: commit.clone(),
            })
        }),
        Onto::Target { landed } => {
            let head = refs::tip(git, &job.target)
                .map_err(|e| boxed(GitError::git(repo)(e)))?
                .ok_or(Box::new(MergeOutcome::TargetGone))?;
            if let Some(landed) = landed.as_deref().and_then(refs::parse_oid)
                && !refs::is_ancestor(repo, landed, head).map_err(boxed)?
            {
                let backup = refs::backup_lost(repo, &job.target, landed).map_err(boxed)?;
                return Err(Box::new(MergeOutcome::TargetRewound {
                    lost: landed.to_string(),
                    head: head.to_string(),
                    backup,
                }));
            }
            Ok(head)
        }
    }
}

/// Builds a task's link onto `prev`; `head` is the target's head.
fn build_merge(
    job: &BuildJob,
    git: &Repository,
    head: Oid,
    prev: Oid,
    link: &LinkSpec,
) -> Result<LinkResult, GitError> {
    let repo = &job.repo;
    let LinkWhat::Merge {
        branch,
        queued_tip,
        base,
        merged_before,
        ..
    } = &link.what
    else {
        unreachable!("build_merge is called for merge links only");
    };
    let Some(tip) = refs::tip(git, branch).map_err(GitError::git(repo))? else {
        return Ok(LinkResult::Ended(failed(MergeError::BranchGone {
            branch: branch.clone(),
        })));
    };
    if let Some(queued) = queued_tip
        && *queued != tip.to_string()
    {
        let backup = match refs::parse_oid(queued) {
            Some(old) if !refs::is_ancestor(repo, old, tip)? => {
                Some(refs::backup(repo, &link.task, old)?)
            }
            _ => None,
        };
        return Ok(LinkResult::Ended(MergeOutcome::BranchMoved {
            tip: tip.to_string(),
            backup,
        }));
    }
    let base = base.as_deref().and_then(refs::parse_oid);
    let message = merge_message(&link.task, &link.title);
    let candidate = match merge::build(git, repo, job.strategy, prev, tip, base, &message)? {
        Built::Candidate(candidate) => candidate,
        Built::Conflicts(files) => {
            // Built on links ahead of it: whether it is their work it
            // conflicts with, or the target's, decides what it is told.
            let ahead = prev != head
                && matches!(
                    merge::build(git, repo, job.strategy, head, tip, base, &message)?,
                    Built::Candidate(_)
                );
            let onto = prev.to_string();
            return Ok(LinkResult::Ended(if ahead {
                MergeOutcome::ConflictsAhead { files, onto }
            } else {
                MergeOutcome::Conflicts { files, onto }
            }));
        }
    };
    if candidate == prev {
        if tip == head || refs::is_ancestor(repo, tip, head)? {
            return already_landed(job, git, head, tip, link, base, merged_before.as_deref());
        }
        // The branch's work came with a link ahead of it: nothing of its own.
        return Ok(LinkResult::Built {
            commit: prev.to_string(),
            tip: Some(tip.to_string()),
        });
    }
    let changes = merge::diff_summary(git, repo, prev, candidate, job.policy.needs_lines())?;
    let commits = if job.policy.needs_commits() {
        merge::commits(git, repo, prev, tip)?
    } else {
        Vec::new()
    };
    let refusals = job.policy.evaluate(&link.task, &changes, &commits);
    if !refusals.is_empty() {
        return Ok(LinkResult::Ended(MergeOutcome::Refused { refusals }));
    }
    Ok(LinkResult::Built {
        commit: candidate.to_string(),
        tip: Some(tip.to_string()),
    })
}

/// Returns where the branch's work landed when the target already holds
/// it: its base (a branch with no commits), or the commit that shows orch
/// merged it ([`evidence`]). A branch tip the target was moved onto some
/// other way is not a merge: it ends the link.
fn already_landed(
    job: &BuildJob,
    git: &Repository,
    head: Oid,
    tip: Oid,
    link: &LinkSpec,
    base: Option<Oid>,
    merged_before: Option<&str>,
) -> Result<LinkResult, GitError> {
    let LinkWhat::Merge {
        branch, worktree, ..
    } = &link.what
    else {
        unreachable!("already_landed is asked of merge links only");
    };
    let landed = |commit: Oid| {
        let tidy = Cleanup {
            repo: &job.repo,
            admin: &job.admin,
            delete_branch: job.delete_branch,
            remove_worktree: job.remove_worktree,
        };
        let freed = tidy.run(&LandBranch {
            name: branch.clone(),
            tip: tip.to_string(),
            worktree: worktree.clone(),
        });
        let (worktree, branch_deleted, cleanup) = match freed {
            Ok((after, deleted)) => (after, deleted, None),
            Err(e) => (
                WorktreeAfter::Untouched,
                false,
                Some(PostMergeError::Cleanup(e)),
            ),
        };
        LinkResult::Landed {
            commit: commit.to_string(),
            worktree,
            branch_deleted,
            cleanup,
        }
    };
    if base == Some(tip) {
        return Ok(landed(head));
    }
    let journal: Option<Journal> =
        crate::fsio::read_json(&StateDir::at(&job.state_dir).merge_journal())
            .ok()
            .flatten();
    let sought = Sought {
        task: link.task.clone(),
        base,
        backup: refs::latest_backup(&job.repo, &link.task)?.map(|(_, oid)| oid),
        merged_before: merged_before.and_then(refs::parse_oid),
    };
    let found =
        evidence::find(git, head, &[sought], journal.as_ref()).map_err(GitError::git(&job.repo))?;
    Ok(match found.get(&link.task) {
        Some(commit) => landed(*commit),
        None => LinkResult::Ended(MergeOutcome::PutThereOutsideOrch {
            branch: branch.clone(),
            tip: tip.to_string(),
        }),
    })
}

/// Builds the commit undoing a task's landing onto `prev`.
fn build_revert(
    job: &BuildJob,
    git: &Repository,
    prev: Oid,
    link: &LinkSpec,
    before: &str,
    after: &str,
) -> Result<LinkResult, GitError> {
    // A landing found again after a crash does not say where it started:
    // its first parent, then.
    let before = refs::parse_oid(before)
        .or_else(|| first_parent(&job.repo, after).and_then(|p| refs::parse_oid(&p)));
    let (Some(before), Some(after_oid)) = (before, refs::parse_oid(after)) else {
        return Ok(LinkResult::NothingToRevert);
    };
    let message = revert_message(&link.task, &link.title, after);
    Ok(
        match merge::revert(git, &job.repo, prev, before, after_oid, &message)? {
            None => LinkResult::NothingToRevert,
            Some(Built::Candidate(commit)) => LinkResult::Built {
                commit: commit.to_string(),
                tip: None,
            },
            Some(Built::Conflicts(files)) => LinkResult::Ended(MergeOutcome::Conflicts {
                files,
                onto: prev.to_string(),
            }),
        },
    )
}
