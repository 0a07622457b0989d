//! Why a task's merge did not land ([`MergeOutcome`]) and the typed reasons
//! it carries: [`MergeError`] when the merge could not be carried out,
//! [`WaitReason`] when it should be tried again later, [`PostMergeError`]
//! for what went wrong after the target moved.
//!
//! These stay typed up to the coordinator, which turns them into text
//! (`crate::text::error_chain`) where it writes a reason or an event field.

use std::io;
use std::path::PathBuf;

use crate::git::GitError;
use crate::git::cmd::CommandError;
use crate::runner::hook::HookError;

use super::checkout::{Blocker, Stuck, describe};
use super::checks::CheckFailure;
use super::policy::Refusal;

/// What became of a task's worktree after its merge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorktreeAfter {
    /// Detached at the merged tip, clean, ready to be reused.
    Detached(PathBuf),
    Removed,
    /// Left as it was (it had changes, or there was none).
    Untouched,
}

/// Why a task's merge did not land (or not yet): each step of the queue
/// (building its link, checking a candidate, landing) ends a task's merge
/// with one of these, and `coordinator::after_merge` decides what it means.
#[derive(Debug)]
pub enum MergeOutcome {
    Conflicts {
        files: Vec<String>,
        onto: String,
    },
    /// It merges cleanly onto the target but conflicts with the links
    /// ahead of it in the chain (tasks not landed yet), built onto `onto`.
    ConflictsAhead {
        files: Vec<String>,
        onto: String,
    },
    Refused {
        refusals: Vec<Refusal>,
    },
    CheckFailed {
        check: String,
        failure: CheckFailure,
        log: PathBuf,
        passed: Vec<String>,
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
    /// The target no longer contains `lost`, the head orch last landed on it:
    /// it was moved under orch. `lost` is kept at `backup`.
    TargetRewound {
        lost: String,
        head: String,
        backup: String,
    },
    /// The target already holds the branch's work (its `tip`), and nothing
    /// shows orch merged it: the target was moved onto the branch some other
    /// way, which is not a merge that passed policy.
    PutThereOutsideOrch {
        branch: String,
        tip: String,
    },
    Interrupted,
    Failed {
        error: MergeError,
    },
    /// A review rejected it: `by` is the review's name, or `person`.
    Rejected {
        by: String,
        reason: String,
    },
}

/// Why a merge could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error(transparent)]
    Git(#[from] GitError),
    /// The task's branch was deleted while it waited to merge.
    #[error("branch `{branch}` is gone")]
    BranchGone { branch: String },
    /// A check could not be run at all (its run folder, its supervisor or its
    /// exit record); a check that ran and failed is [`MergeOutcome::CheckFailed`].
    #[error("cannot run check `{check}`")]
    Check {
        check: String,
        #[source]
        source: io::Error,
    },
    /// The journal could not be written, so the target was left alone.
    #[error("cannot write `{}`", path.display())]
    Journal {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A review command could not be run at all.
    #[error("cannot run review `{review}`")]
    Review {
        review: String,
        #[source]
        source: io::Error,
    },
    /// The review prompt could not be rendered.
    #[error(transparent)]
    Prompt(#[from] crate::runner::prompt::PromptError),
}

impl From<CommandError> for MergeError {
    fn from(e: CommandError) -> Self {
        MergeError::Git(GitError::Command(e))
    }
}

/// Why a merge waits: nothing is wrong with the task, the target cannot
/// take it now.
///
/// An error type only so that its cause renders through `error_chain`.
#[derive(Debug, thiserror::Error)]
pub enum WaitReason {
    /// The target is checked out, and paths the merge changes are modified
    /// there, or untracked or ignored files are where it would write.
    #[error(
        "`{target}` is checked out in `{}`, where the merge would overwrite {}; merging resumes once they are committed, reverted or moved away",
        checkout.display(),
        describe(blockers)
    )]
    TargetDirty {
        target: String,
        checkout: PathBuf,
        /// Every path in the way, in full.
        blockers: Vec<Blocker>,
    },
    /// Git refused to update the target's checkout (`read-tree`, in a
    /// sparse checkout), and the target did not move meanwhile. The source
    /// is git's own account.
    #[error("git would not update `{target}` in `{}`{}", checkout.display(), named(blockers))]
    FastForwardRefused {
        target: String,
        checkout: PathBuf,
        blockers: Vec<Blocker>,
        #[source]
        source: CommandError,
    },
    /// A move of the target's checkout cut short cannot be finished yet.
    #[error(transparent)]
    CheckoutStuck(#[from] Stuck),
}

fn named(blockers: &[Blocker]) -> String {
    if blockers.is_empty() {
        String::new()
    } else {
        format!(" (in the way: {})", describe(blockers))
    }
}

/// What went wrong after the target moved. The merge stands.
#[derive(Debug, thiserror::Error)]
pub enum PostMergeError {
    /// Freeing the task's worktree or deleting its branch failed.
    #[error("cleaning up after the merge")]
    Cleanup(#[source] GitError),
    #[error(transparent)]
    Hook(#[from] HookError),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merge_queue::checkout::InTheWay;
    use crate::text::error_chain;

    #[test]
    fn reasons_read_as_before() {
        let dirty = WaitReason::TargetDirty {
            target: "main".to_owned(),
            checkout: PathBuf::from("/repo"),
            blockers: vec![
                Blocker {
                    path: "docs/a/long/path/README.md".to_owned(),
                    why: InTheWay::Modified,
                },
                Blocker {
                    path: "config.local".to_owned(),
                    why: InTheWay::Ignored,
                },
            ],
        };
        assert_eq!(
            error_chain(&dirty),
            "`main` is checked out in `/repo`, where the merge would overwrite `docs/a/long/path/README.md` (modified), `config.local` (ignored); merging resumes once they are committed, reverted or moved away"
        );
        let refused = WaitReason::FastForwardRefused {
            target: "main".to_owned(),
            checkout: PathBuf::from("/repo"),
            blockers: Vec::new(),
            source: CommandError {
                argv: vec!["read-tree".to_owned(), "-m".to_owned()],
                dir: PathBuf::from("/repo"),
                code: Some(128),
                stderr: "error: you need to resolve your current index first\n".to_owned(),
            },
        };
        assert_eq!(
            error_chain(&refused),
            "git would not update `main` in `/repo`: \
             `git read-tree -m` failed in `/repo` (exit code 128): \
             error: you need to resolve your current index first"
        );
        let cleanup = PostMergeError::Cleanup(GitError::NoSuchBranch {
            branch: "orch/T1".to_owned(),
        });
        assert_eq!(
            error_chain(&cleanup),
            "cleaning up after the merge: branch `orch/T1` does not exist"
        );
        let gone = MergeError::BranchGone {
            branch: "orch/T1".to_owned(),
        };
        assert_eq!(error_chain(&gone), "branch `orch/T1` is gone");
    }
}
