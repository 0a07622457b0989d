//! `orch clean`: which of orch's worktrees and branches may go, removing
//! them, and forgetting them in `state.json`.
//!
//! Data safety (DESIGN §2.4) is decided here and only here:
//!
//! | item | removed when | kept (and named) when |
//! | --- | --- | --- |
//! | worktree | in scope, not locked, no uncommitted changes | locked, or has uncommitted changes |
//! | branch | not checked out, tip in target | with [`Scope::All`]: commits not in target |
//!
//! A worktree is orch's when its branch has the branch prefix, it lies under
//! the worktree root, or it is the merge worktree. [`Scope::Merged`] takes
//! the worktrees whose branch tip is in target; [`Scope::All`] takes every
//! one of orch's (a removed worktree's branch keeps its work). Branches are
//! judged after the worktrees are removed, so a branch freed by a removal can
//! go too. Everything happens under the run lock, so no run is live meanwhile.
//!
//! [`judge_worktree`] and [`judge_branch`] are the pure rules; [`clean`]
//! gathers the facts from git, applies the verdicts and reports them. It
//! renders nothing: the CLI does.

use std::io;
use std::path::{Path, PathBuf};

use crate::coordinator::workspace::worktree_root;
use crate::git::{GitError, refs, worktree};
use crate::state::lock::{self, LockError};
use crate::state::{StateDir, StateError, store};

/// A clean that could not be done.
#[derive(Debug, thiserror::Error)]
pub enum CleanError {
    #[error("cannot create `{}`", path.display())]
    StateDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Git(#[from] GitError),
    #[error(transparent)]
    State(#[from] StateError),
}

/// Which of orch's worktrees are candidates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Those whose branch tip is in target (`--merged`, the default).
    Merged,
    /// Every one of orch's, the merge worktree included (`--all`).
    All,
}

/// What to clean, and where.
#[derive(Debug, Clone)]
pub struct Request {
    /// The main worktree's root.
    pub repo: PathBuf,
    pub state_dir: StateDir,
    pub target: String,
    /// `git.branch_prefix`.
    pub branch_prefix: String,
    /// `git.worktree_root`, as written in the config.
    pub worktree_root: String,
    pub scope: Scope,
}

/// A worktree or a branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Worktree(PathBuf),
    Branch(String),
}

/// Why an item stays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeepReason {
    /// A locked worktree: someone asked git to keep it.
    Locked,
    /// A worktree with uncommitted changes, untracked files included.
    Uncommitted { files: Vec<String> },
    /// A branch with commits that are not in target.
    NotInTarget { commits: u32 },
}

/// An item that stays, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    pub item: Item,
    pub reason: KeepReason,
}

/// What a clean did: worktrees first, then branches, each in git's order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub removed: Vec<Item>,
    pub kept: Vec<Kept>,
}

/// What to do with one worktree or branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Not a candidate: left alone and not reported.
    Leave,
    Remove,
    Keep(KeepReason),
}

/// What is known about one of orch's worktrees before judging it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorktreeFacts {
    /// Its branch tip is in target (false when detached or the branch is gone).
    pub merged: bool,
    pub locked: bool,
    /// Its folder is there (a missing one has nothing to lose).
    pub exists: bool,
}

/// What is known about one of orch's branches before judging it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BranchFacts {
    /// A worktree has it checked out (after the removals).
    pub checked_out: bool,
    /// Its tip is in target.
    pub in_target: bool,
    /// Commits reachable from it and not from target.
    pub ahead: u32,
}

/// Judges one of orch's worktrees.
///
/// `dirty_files` is asked only when the answer decides, so worktrees out of
/// scope or locked are never examined.
pub fn judge_worktree<E>(
    facts: WorktreeFacts,
    scope: Scope,
    dirty_files: impl FnOnce() -> Result<Vec<String>, E>,
) -> Result<Verdict, E> {
    if scope == Scope::Merged && !facts.merged {
        return Ok(Verdict::Leave);
    }
    if facts.locked {
        return Ok(Verdict::Keep(KeepReason::Locked));
    }
    if facts.exists {
        let files = dirty_files()?;
        if !files.is_empty() {
            return Ok(Verdict::Keep(KeepReason::Uncommitted { files }));
        }
    }
    Ok(Verdict::Remove)
}

/// Judges one of orch's branches.
pub fn judge_branch(facts: BranchFacts, scope: Scope) -> Verdict {
    if facts.checked_out {
        Verdict::Leave
    } else if facts.in_target {
        Verdict::Remove
    } else if scope == Scope::All {
        Verdict::Keep(KeepReason::NotInTarget {
            commits: facts.ahead,
        })
    } else {
        Verdict::Leave
    }
}

/// Returns whether a worktree is orch's: its branch has the prefix, it lies
/// under the worktree root, or it is the merge worktree.
pub fn owned_by_orch(entry: &worktree::Entry, prefix: &str, root: &Path, merge_dir: &Path) -> bool {
    entry
        .branch
        .as_deref()
        .is_some_and(|b| b.starts_with(prefix))
        || entry.path.starts_with(root)
        || entry.path == merge_dir
        || is_check_worktree(&entry.path, merge_dir)
}

/// Returns whether `path` is one of the extra check worktrees beside
/// `merge_dir` (`merge-2/`, `merge-3/`...: `merge.max_parallel_checks`).
fn is_check_worktree(path: &Path, merge_dir: &Path) -> bool {
    path.parent() == merge_dir.parent()
        && path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("merge-"))
            .is_some_and(|n| n.parse::<u32>().is_ok_and(|n| n >= 2))
}

/// Removes what may go and reports what went and what stayed.
pub fn clean(request: &Request) -> Result<Report, CleanError> {
    let Request {
        repo,
        state_dir,
        target,
        branch_prefix: prefix,
        scope,
        ..
    } = request;
    std::fs::create_dir_all(state_dir.path()).map_err(|source| CleanError::StateDir {
        path: state_dir.path().to_owned(),
        source,
    })?;
    let _lock = lock::acquire(state_dir.path())?;
    let target_tip = refs::require_tip(repo, target)?;
    let root = worktree_root(repo, &request.worktree_root);
    let merge_dir = state_dir.merge_worktree();
    let mut report = Report::default();

    // Under the state lock no run is moving a worktree: a move's lock left
    // by a crash is finished, not read as a person's.
    worktree::finish_moves(repo);
    let entries = worktree::list(repo)?;
    for entry in entries.iter().skip(1) {
        if !owned_by_orch(entry, prefix, &root, &merge_dir) {
            continue;
        }
        let merged = match entry.branch.as_deref().map(|b| refs::branch_tip(repo, b)) {
            Some(Ok(Some(tip))) => refs::is_ancestor(repo, tip, target_tip)?,
            _ => false,
        };
        let facts = WorktreeFacts {
            merged,
            locked: entry.locked,
            exists: entry.path.is_dir(),
        };
        let item = Item::Worktree(entry.path.clone());
        match judge_worktree(facts, *scope, || worktree::dirty_files(&entry.path))? {
            Verdict::Leave => {}
            Verdict::Remove => {
                worktree::remove(repo, &entry.path)?;
                report.removed.push(item);
            }
            Verdict::Keep(reason) => report.kept.push(Kept { item, reason }),
        }
    }
    worktree::prune(repo)?;

    let checked_out: Vec<String> = worktree::list(repo)?
        .into_iter()
        .filter_map(|e| e.branch)
        .collect();
    for (branch, tip) in refs::branches_with_prefix(repo, prefix)? {
        let facts = BranchFacts {
            checked_out: checked_out.contains(&branch),
            in_target: refs::is_ancestor(repo, tip, target_tip)?,
            ahead: refs::commits_between(repo, target_tip, tip)?,
        };
        match judge_branch(facts, *scope) {
            Verdict::Leave => {}
            Verdict::Remove => {
                refs::delete_branch(repo, &branch)?;
                report.removed.push(Item::Branch(branch));
            }
            Verdict::Keep(reason) => report.kept.push(Kept {
                item: Item::Branch(branch),
                reason,
            }),
        }
    }
    forget_removed(state_dir, repo, prefix)?;
    Ok(report)
}

/// Drops worktree and branch fields that no longer exist from `state.json`.
fn forget_removed(state_dir: &StateDir, repo: &Path, prefix: &str) -> Result<(), CleanError> {
    let Some(mut state) = state_dir.load_state()? else {
        return Ok(());
    };
    let branches: Vec<String> = refs::branches_with_prefix(repo, prefix)?
        .into_iter()
        .map(|(b, _)| b)
        .collect();
    let mut changed = false;
    for item in state.items.values_mut() {
        if item.worktree.as_ref().is_some_and(|w| !w.exists()) {
            item.worktree = None;
            changed = true;
        }
        if item.branch.as_ref().is_some_and(|b| !branches.contains(b)) {
            item.branch = None;
            changed = true;
        }
    }
    if changed {
        store::save(&state_dir.state_file(), &state)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stands for `dirty_files` when the rule must not look.
    fn never() -> Result<Vec<String>, &'static str> {
        Err("dirty_files was asked")
    }

    #[test]
    fn worktree_verdicts() {
        type Dirty = fn() -> Result<Vec<String>, &'static str>;
        let clean: Dirty = || Ok(Vec::new());
        let dirty: Dirty = || Ok(vec!["notes.txt".to_owned()]);
        let facts = |merged, locked, exists| WorktreeFacts {
            merged,
            locked,
            exists,
        };
        let uncommitted = Verdict::Keep(KeepReason::Uncommitted {
            files: vec!["notes.txt".to_owned()],
        });
        let table: [(WorktreeFacts, Scope, Dirty, Verdict); 12] = [
            // Out of scope: not examined at all.
            (
                facts(false, false, true),
                Scope::Merged,
                never,
                Verdict::Leave,
            ),
            (
                facts(false, true, true),
                Scope::Merged,
                never,
                Verdict::Leave,
            ),
            // Merged: removed when clean, kept when dirty or locked.
            (
                facts(true, false, true),
                Scope::Merged,
                clean,
                Verdict::Remove,
            ),
            (
                facts(true, false, true),
                Scope::Merged,
                dirty,
                uncommitted.clone(),
            ),
            (
                facts(true, true, true),
                Scope::Merged,
                never,
                Verdict::Keep(KeepReason::Locked),
            ),
            // A folder already gone has nothing to lose.
            (
                facts(true, false, false),
                Scope::Merged,
                never,
                Verdict::Remove,
            ),
            // `--all`: unmerged worktrees too, under the same rules.
            (
                facts(false, false, true),
                Scope::All,
                clean,
                Verdict::Remove,
            ),
            (
                facts(false, false, true),
                Scope::All,
                dirty,
                uncommitted.clone(),
            ),
            (
                facts(false, true, true),
                Scope::All,
                never,
                Verdict::Keep(KeepReason::Locked),
            ),
            (
                facts(false, false, false),
                Scope::All,
                never,
                Verdict::Remove,
            ),
            (facts(true, false, true), Scope::All, clean, Verdict::Remove),
            (facts(true, false, true), Scope::All, dirty, uncommitted),
        ];
        for (facts, scope, dirty_files, expected) in table {
            assert_eq!(
                judge_worktree(facts, scope, dirty_files),
                Ok(expected),
                "{facts:?} {scope:?}"
            );
        }
    }

    #[test]
    fn a_failure_to_examine_a_worktree_is_not_a_verdict() {
        let facts = WorktreeFacts {
            merged: true,
            locked: false,
            exists: true,
        };
        assert_eq!(
            judge_worktree(facts, Scope::Merged, never),
            Err("dirty_files was asked")
        );
    }

    #[test]
    fn branch_verdicts() {
        let facts = |checked_out, in_target, ahead| BranchFacts {
            checked_out,
            in_target,
            ahead,
        };
        let not_in_target = |commits| Verdict::Keep(KeepReason::NotInTarget { commits });
        let table = [
            // Checked out in a worktree that stays: never touched.
            (facts(true, true, 0), Scope::Merged, Verdict::Leave),
            (facts(true, false, 2), Scope::All, Verdict::Leave),
            // In target: deleted under either scope.
            (facts(false, true, 0), Scope::Merged, Verdict::Remove),
            (facts(false, true, 0), Scope::All, Verdict::Remove),
            // Work not in target: kept, and named only with `--all`.
            (facts(false, false, 2), Scope::Merged, Verdict::Leave),
            (facts(false, false, 2), Scope::All, not_in_target(2)),
        ];
        for (facts, scope, expected) in table {
            assert_eq!(judge_branch(facts, scope), expected, "{facts:?} {scope:?}");
        }
    }

    #[test]
    fn orch_owns_worktrees_by_branch_root_or_merge_dir() {
        let entry = |path: &str, branch: Option<&str>| worktree::Entry {
            path: PathBuf::from(path),
            head: None,
            branch: branch.map(str::to_owned),
            locked: false,
            prunable: false,
            bare: false,
        };
        let root = Path::new("/r.worktrees");
        let merge = Path::new("/r/.orchestrator/merge");
        let table = [
            (entry("/elsewhere/a", Some("orch/A")), true),
            (entry("/r.worktrees/A", Some("feature")), true),
            (entry("/r.worktrees/A", None), true),
            (entry("/r/.orchestrator/merge", None), true),
            (entry("/r/.orchestrator/merge-2", None), true),
            (entry("/r/.orchestrator/merge-x", None), false),
            (entry("/elsewhere/merge-2", None), false),
            (entry("/elsewhere/b", Some("feature")), false),
            (entry("/elsewhere/b", None), false),
            (entry("/r.worktrees-other/b", Some("orchestra")), false),
        ];
        for (e, expected) in table {
            assert_eq!(owned_by_orch(&e, "orch/", root, merge), expected, "{e:?}");
        }
    }
}
