//! Giving a task its branch and worktree (runs on a blocking thread).
//!
//! Decision table, for task branch `B` and worktree path `P`:
//!
//! | branch `B` | a worktree has `B` checked out | a free worktree `F` offered | action |
//! | --- | --- | --- | --- |
//! | exists | yes, at `W` | - | use `W` as it is |
//! | exists | no | yes | move `F` to `P`, switch it to `B` |
//! | exists | no | no | `git worktree add P B` |
//! | missing | - | yes | move `F` to `P`, create `B` at target there |
//! | missing | - | no | `git worktree add -b B P <target>` |
//!
//! A branch that exists (a retry, or a leftover) and holds no commits of its
//! own (its tip is in the target, or is still the base the state recorded)
//! is first moved to the target's head, so that every attempt starts from
//! the target as it is when the attempt starts: in its worktree with `git
//! reset --keep` (which refuses to touch local changes in its way), or, when
//! no worktree has it, by a compare-and-swap of the ref. A branch with
//! commits of its own keeps them and stays where it is; the attempt is told
//! how far the target has moved on ([`Freshness`]). So is one whose move
//! was refused.
//!
//! A free worktree is one whose task finished with its work on its branch
//! (awaiting merge or merged). It is recycled only if it is clean and still
//! on that task's branch; otherwise it is left alone and a new worktree is
//! made. Recycling rewrites only the files that differ and keeps ignored
//! files (build caches), which is what makes provisioning cheap, and renames
//! the worktree's git admin folder after its new path
//! (`benches/run.rs`). Nothing here forces: a taken path, a branch checked
//! out elsewhere, or local changes in the way make provisioning fail with a
//! message naming them.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::git::{GitError, cmd, commit, refs, worktree};

/// A worktree that finished its task and may be reused.
#[derive(Debug, Clone)]
pub struct FreeWorktree {
    pub path: PathBuf,
    /// The branch it must still be on to count as safe; `None`: it must be
    /// detached (its task was merged and its branch deleted).
    pub branch: Option<String>,
    /// When its task's collection began the look for uncommitted changes
    /// that left none, if it did ([`recyclable`]).
    pub clean_since: Option<Instant>,
}

/// How long after its collection found it clean a worktree is recycled
/// without looking for changes again. The collection's look (a status of
/// the whole worktree, or of the paths a watch saw the agent change until
/// its process group was gone) is then about as recent as the recycle's
/// own would be: the recycle follows it by a few milliseconds when the
/// next task is ready, about the time between the recycle's own look and
/// its switch. No person edits a worktree that fast; a worktree that
/// waited longer is looked at again.
pub const CLEAN_FOR: Duration = Duration::from_secs(1);

/// What provisioning needs.
#[derive(Debug, Clone)]
pub struct Request {
    pub repo: PathBuf,
    pub target: String,
    pub branch: String,
    pub path: PathBuf,
    /// The worktree the task used last time, if any.
    pub previous: Option<PathBuf>,
    /// The target commit the state records the branch was made from.
    pub base: Option<String>,
    pub free: Option<FreeWorktree>,
    /// Merge this branch (the target) into the worktree after provisioning,
    /// leaving conflicts in place for an agent to resolve.
    pub merge_target: Option<String>,
}

/// How the worktree was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum How {
    Reused,
    Recycled,
    Created,
}

/// A provisioned task.
#[derive(Debug, Clone)]
pub struct Provisioned {
    pub worktree: PathBuf,
    /// The target commit the branch was created from (new branches, and
    /// existing ones the state records no base for: where they left it).
    pub base: Option<String>,
    pub how: How,
    /// The branch tip the agent starts from.
    pub tip: String,
    /// Whether the branch starts from the target's head.
    pub freshness: Freshness,
    /// What became of the free worktree offered.
    pub free: FreeFate,
}

/// How a branch stands against the target's head when its attempt starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Freshness {
    /// A new branch, or one that has the target's head.
    Current,
    /// The branch held no commits of its own and was moved from `from` to
    /// the target's head.
    Restarted { from: String },
    /// The branch stays where it is (it has commits of its own, or local
    /// changes were in the way of the move); the target has `commits`
    /// commits it lacks.
    Behind { commits: u32 },
}

/// What provisioning did with the free worktree it was offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FreeFate {
    /// None was offered.
    NotOffered,
    /// It became this task's worktree.
    Recycled,
    /// It was not needed and stays free.
    Kept,
    /// It cannot be recycled (gone, changed, or on another branch): it is
    /// no longer offered.
    Unusable,
}

impl FreeFate {
    fn kept(req: &Request) -> FreeFate {
        match req.free {
            Some(_) => FreeFate::Kept,
            None => FreeFate::NotOffered,
        }
    }
}

/// Provisions the worktree and branch for a task, and merges the target
/// into it when asked (conflicts stay in the files).
pub fn provision(req: &Request) -> Result<Provisioned, GitError> {
    let provisioned = provision_worktree(req)?;
    if let Some(target) = &req.merge_target {
        merge_in(&provisioned.worktree, target)?;
    }
    Ok(provisioned)
}

/// Merges `target` into the worktree's branch; conflicts are left for the
/// agent. A merge already under way (an earlier attempt's) is left as it is.
fn merge_in(worktree: &Path, target: &str) -> Result<(), GitError> {
    if cmd::run(worktree, ["rev-parse", "--quiet", "--verify", "MERGE_HEAD"]).is_ok() {
        return Ok(());
    }
    let mut args: Vec<&str> = Vec::new();
    if !commit::identity_configured(worktree) {
        args.extend(commit::FALLBACK_IDENTITY);
    }
    args.extend(["merge", "--no-edit", "--quiet", target]);
    match cmd::run(worktree, &args) {
        Ok(_) => Ok(()),
        Err(e) if !commit::unmerged_paths(worktree)?.is_empty() => {
            tracing::debug!(error = %e, "merge stopped on conflicts, as expected");
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

fn provision_worktree(req: &Request) -> Result<Provisioned, GitError> {
    let repo = &req.repo;
    // Both tips from one open of the repository.
    let (mut existing, target_tip) = {
        let git = git2::Repository::open(repo).map_err(GitError::git(repo))?;
        let tip = |branch: &str| refs::tip(&git, branch).map_err(GitError::git(repo));
        let existing = tip(&req.branch)?;
        let target = tip(&req.target)?.ok_or_else(|| GitError::NoSuchBranch {
            branch: req.target.clone(),
        })?;
        (existing, target)
    };
    let target_hex = target_tip.to_string();
    let mut freshness = Freshness::Current;
    if let Some(tip) = existing {
        let entries = worktree::list(repo)?;
        let holder = entries
            .iter()
            .position(|e| e.branch.as_deref() == Some(req.branch.as_str()) && !e.prunable);
        if holder == Some(0) {
            return Err(GitError::CheckedOutInMain {
                branch: req.branch.clone(),
                path: entries[0].path.clone(),
            });
        }
        let holder = holder.map(|i| entries[i].path.clone());
        freshness = refresh(req, tip, target_tip, holder.as_deref())?;
        if matches!(freshness, Freshness::Restarted { .. }) {
            existing = Some(target_tip);
        }
        let base = match freshness {
            Freshness::Restarted { .. } => Some(target_hex.clone()),
            _ => unrecorded_base(req, tip, target_tip)?,
        };
        if let Some(path) = holder {
            return Ok(Provisioned {
                worktree: path,
                base,
                how: How::Reused,
                tip: existing.map(|o| o.to_string()).unwrap_or_default(),
                freshness,
                free: FreeFate::kept(req),
            });
        }
    }
    // A restarted branch counts its commits from the target's head, as a new one does.
    let restarted = matches!(freshness, Freshness::Restarted { .. });
    let unrecorded = match existing {
        Some(tip) if !restarted => unrecorded_base(req, tip, target_tip)?,
        _ => None,
    };
    let new_base = |created: bool| {
        (created || restarted)
            .then(|| target_hex.clone())
            .or_else(|| unrecorded.clone())
    };
    if let Some(mut provisioned) = finish_cut_recycle(req, existing.is_some(), &target_hex)? {
        provisioned.base = new_base(existing.is_none());
        provisioned.freshness = freshness;
        return Ok(provisioned);
    }
    // A free worktree offered and not recycled here cannot be: it is gone,
    // changed, or on another branch.
    let free_fate = match req.free {
        Some(_) => FreeFate::Unusable,
        None => FreeFate::NotOffered,
    };
    if let Some(free) = &req.free
        && recyclable(free)?
    {
        worktree::move_to(repo, &free.path, &req.path)?;
        rename_admin(&req.path);
        match existing {
            Some(_) => worktree::switch(&req.path, &req.branch, None)?,
            None => worktree::switch(&req.path, &req.branch, Some(&target_hex))?,
        }
        return Ok(Provisioned {
            worktree: req.path.clone(),
            tip: existing.unwrap_or(target_tip).to_string(),
            base: new_base(existing.is_none()),
            how: How::Recycled,
            freshness,
            free: FreeFate::Recycled,
        });
    }
    // An admin entry whose folder was deleted (under a running agent, say)
    // would make git refuse the path and the branch.
    if worktree::list(repo)?.iter().any(|e| e.prunable) {
        worktree::prune(repo)?;
    }
    match existing {
        Some(_) => worktree::add(repo, &req.path, &req.branch, None)?,
        None => worktree::add(repo, &req.path, &req.branch, Some(&target_hex))?,
    }
    Ok(Provisioned {
        worktree: req.path.clone(),
        tip: existing.unwrap_or(target_tip).to_string(),
        base: new_base(existing.is_none()),
        how: How::Created,
        freshness,
        free: free_fate,
    })
}

/// Returns where an existing branch at `tip` left the target (their merge
/// base) when the state records no base for it: a coordinator killed after
/// it created the branch and before it recorded the base, say. Without a
/// base, a branch with no commits of its own could not show that the
/// target holds all of its work, and would fail its merge.
fn unrecorded_base(
    req: &Request,
    tip: git2::Oid,
    target_tip: git2::Oid,
) -> Result<Option<String>, GitError> {
    if req.base.is_some() {
        return Ok(None);
    }
    let repo = &req.repo;
    let git = git2::Repository::open(repo).map_err(GitError::git(repo))?;
    match git.merge_base(tip, target_tip) {
        Ok(base) => Ok(Some(base.to_string())),
        Err(e) if e.code() == git2::ErrorCode::NotFound => Ok(None),
        Err(e) => Err(GitError::git(repo)(e)),
    }
}

/// Moves an existing branch at `tip` that holds no commits of its own to
/// the target's head (in `holder`, the worktree that has it checked out, or
/// by a compare-and-swap of the ref), and says where it stands.
fn refresh(
    req: &Request,
    tip: git2::Oid,
    target_tip: git2::Oid,
    holder: Option<&Path>,
) -> Result<Freshness, GitError> {
    let repo = &req.repo;
    if refs::is_ancestor(repo, target_tip, tip)? {
        return Ok(Freshness::Current);
    }
    let own_commits = !refs::is_ancestor(repo, tip, target_tip)?
        && req.base.as_deref().and_then(refs::parse_oid) != Some(tip);
    if !own_commits {
        let target_hex = target_tip.to_string();
        let moved = match holder {
            Some(worktree) => match cmd::run(worktree, ["reset", "--quiet", "--keep", &target_hex])
            {
                Ok(_) => true,
                Err(e) => {
                    tracing::info!(error = %e, branch = %req.branch, "local changes keep the branch where it is");
                    false
                }
            },
            None => refs::compare_and_swap(
                repo,
                &format!("refs/heads/{}", req.branch),
                tip,
                target_tip,
                &format!("orch: start again from {}", req.target),
            )?,
        };
        if moved {
            tracing::info!(branch = %req.branch, from = %tip, to = %target_hex, "the branch starts again from the target");
            return Ok(Freshness::Restarted {
                from: tip.to_string(),
            });
        }
    }
    Ok(Freshness::Behind {
        commits: refs::commits_between(repo, tip, target_tip)?,
    })
}

/// Finishes a recycle that a crash cut short: a clean worktree of this
/// repository already at the task's path (moved there, not yet switched to
/// the task's branch) is switched now instead of failing as a taken path.
fn finish_cut_recycle(
    req: &Request,
    branch_exists: bool,
    target_hex: &str,
) -> Result<Option<Provisioned>, GitError> {
    if !req.path.is_dir() {
        return Ok(None);
    }
    // A crash may have cut the move to this path after the folder was
    // renamed and before git's entry named it.
    worktree::finish_moves(&req.repo);
    let here = req.path.canonicalize().unwrap_or_else(|_| req.path.clone());
    let registered = worktree::list(&req.repo)?
        .into_iter()
        .skip(1)
        .any(|e| !e.prunable && e.path.canonicalize().unwrap_or(e.path) == here);
    if !registered {
        return Ok(None);
    }
    // A crash may have cut the rename between the admin folder and the
    // `.git` file that names it: the worktree opens only once it is done.
    rename_admin(&req.path);
    if !worktree::dirty_files(&req.path)?.is_empty() {
        return Ok(None);
    }
    worktree::switch(
        &req.path,
        &req.branch,
        (!branch_exists).then_some(target_hex),
    )?;
    let tip = refs::require_tip(&req.repo, &req.branch)?.to_string();
    Ok(Some(Provisioned {
        worktree: req.path.clone(),
        base: (!branch_exists).then(|| target_hex.to_owned()),
        how: How::Recycled,
        tip,
        freshness: Freshness::Current,
        free: FreeFate::kept(req),
    }))
}

/// Names a recycled worktree's git admin folder after its new folder
/// (`worktrees/T2` for task `T2`, not the `T1` it was made for). Only a
/// name: a failure is logged and provisioning goes on.
fn rename_admin(path: &Path) {
    if let Err(e) = worktree::name_admin_after_folder(path) {
        tracing::warn!(worktree = %path.display(), error = %e, "cannot rename the worktree's git admin folder");
    }
}

/// A free worktree may be recycled when it is clean and still on its
/// task's branch. Clean: its collection found it so within [`CLEAN_FOR`],
/// or one pass of `git status` says so now.
fn recyclable(free: &FreeWorktree) -> Result<bool, GitError> {
    if !free.path.is_dir() {
        return Ok(false);
    }
    if worktree::current_branch(&free.path)? != free.branch {
        return Ok(false);
    }
    if free.clean_since.is_some_and(|at| at.elapsed() < CLEAN_FOR) {
        return Ok(true);
    }
    Ok(worktree::dirty_files(&free.path)?.is_empty())
}

pub use crate::config::{normalize, worktree_root};

#[cfg(test)]
mod tests {
    use super::*;

    use crate::git::worktree::tests::{git, repository};

    #[test]
    fn a_worktree_found_clean_by_its_collection_is_looked_at_again_once_that_is_old() {
        let (_dir, root, repo) = repository();
        git(
            &repo,
            &["worktree", "add", "-q", "-b", "orch/T1", "../wt/T1"],
        );
        let path = root.join("wt/T1");
        std::fs::write(path.join("left.txt"), "a person's file\n").unwrap();
        let free = |clean_since| FreeWorktree {
            path: path.clone(),
            branch: Some("orch/T1".to_owned()),
            clean_since,
        };
        // Just collected: the collection's look stands for the recycle's.
        assert!(recyclable(&free(Some(Instant::now()))).unwrap());
        // Collected long ago, or never found clean: looked at now.
        let old = Instant::now().checked_sub(CLEAN_FOR).unwrap();
        assert!(!recyclable(&free(Some(old))).unwrap());
        assert!(!recyclable(&free(None)).unwrap());
        // Whatever the collection said, a worktree off its branch is not recycled.
        git(&path, &["switch", "-q", "--detach"]);
        assert!(!recyclable(&free(Some(Instant::now()))).unwrap());
    }

    /// A crash harness failure (squash variant): the coordinator was killed
    /// while recycling a worktree, after its admin folder was renamed and
    /// before its `.git` file named the new one; the next run opened the
    /// worktree before finishing the rename, and failed the task.
    #[test]
    fn a_recycle_cut_after_the_admin_rename_is_finished() {
        let (_dir, root, repo) = repository();
        git(
            &repo,
            &["worktree", "add", "-q", "-b", "orch/T1", "../wt/T1"],
        );
        worktree::move_to(&repo, &root.join("wt/T1"), &root.join("wt/T2")).unwrap();
        let admin = repo.join(".git/worktrees");
        std::fs::rename(admin.join("T1"), admin.join("T2")).unwrap();
        let req = Request {
            repo: repo.clone(),
            target: "main".to_owned(),
            branch: "orch/T2".to_owned(),
            path: root.join("wt/T2"),
            previous: None,
            base: None,
            free: Some(FreeWorktree {
                path: root.join("wt/T1"),
                branch: Some("orch/T1".to_owned()),
                clean_since: None,
            }),
            merge_target: None,
        };
        let provisioned = provision(&req).unwrap();
        assert_eq!(provisioned.how, How::Recycled);
        assert_eq!(
            worktree::current_branch(&req.path).unwrap().as_deref(),
            Some("orch/T2")
        );
        git(&req.path, &["status", "--short"]);
    }

    /// A kill-loop failure (200 tasks with no commits): the coordinator
    /// was killed while the recycle wrote the worktree's `.git` file, after
    /// the temp file was written and before it replaced `.git`. The next
    /// run finished the rename, but the temp file left behind made the
    /// worktree look changed, and the task failed: "already exists and is
    /// not a worktree of this repository".
    #[test]
    fn a_recycle_cut_while_the_git_file_was_written_is_finished() {
        let (_dir, root, repo) = repository();
        git(&repo, &["worktree", "add", "-q", "--detach", "../wt/T1"]);
        worktree::move_to(&repo, &root.join("wt/T1"), &root.join("wt/T2")).unwrap();
        let admin = repo.join(".git/worktrees");
        std::fs::rename(admin.join("T1"), admin.join("T2")).unwrap();
        let line = format!("gitdir: {}\n", admin.join("T2").display());
        std::fs::write(root.join("wt/T2").join(worktree::DOTGIT_NEW), line).unwrap();
        let req = Request {
            repo: repo.clone(),
            target: "main".to_owned(),
            branch: "orch/T2".to_owned(),
            path: root.join("wt/T2"),
            previous: None,
            base: None,
            free: None,
            merge_target: None,
        };
        let provisioned = provision(&req).unwrap();
        assert_eq!(provisioned.how, How::Recycled);
        assert_eq!(
            worktree::current_branch(&req.path).unwrap().as_deref(),
            Some("orch/T2")
        );
        assert_eq!(
            worktree::dirty_files(&req.path).unwrap(),
            Vec::<String>::new()
        );
    }

    #[test]
    fn the_worktree_root_sits_beside_the_repository() {
        let root = worktree_root(Path::new("/home/a/src/shop"), "../{repo}.worktrees");
        assert_eq!(root, Path::new("/home/a/src/shop.worktrees"));
        assert_eq!(worktree_root(Path::new("/r"), "./wt/"), Path::new("/r/wt"));
    }
}
