//! Branches and commits, read and written with libgit2.

use std::path::Path;

pub use git2::Oid;
use git2::{BranchType, ErrorCode, Repository};

use crate::git::GitError;

fn open(repo: &Path) -> Result<Repository, GitError> {
    Repository::open(repo).map_err(GitError::git(repo))
}

/// Returns the commit a local branch points at, if the branch exists.
pub fn branch_tip(repo: &Path, branch: &str) -> Result<Option<Oid>, GitError> {
    tip(&open(repo)?, branch).map_err(GitError::git(repo))
}

/// Returns the commit a local branch points at, in an open repository.
pub fn tip(repo: &Repository, branch: &str) -> Result<Option<Oid>, git2::Error> {
    match repo.find_branch(branch, BranchType::Local) {
        Ok(b) => Ok(b.get().peel_to_commit().ok().map(|c| c.id())),
        Err(e) if e.code() == ErrorCode::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Returns the tip of `branch`, or an error naming it.
pub fn require_tip(repo: &Path, branch: &str) -> Result<Oid, GitError> {
    branch_tip(repo, branch)?.ok_or_else(|| GitError::NoSuchBranch {
        branch: branch.to_owned(),
    })
}

/// Creates `branch` at `at`; refuses if it exists.
pub fn create_branch(repo: &Path, branch: &str, at: Oid) -> Result<(), GitError> {
    let r = open(repo)?;
    if let Some(existing) = branch_tip(repo, branch)? {
        return Err(GitError::BranchExists {
            branch: branch.to_owned(),
            oid: existing.to_string(),
        });
    }
    let commit = r.find_commit(at).map_err(GitError::git(repo))?;
    r.branch(branch, &commit, false)
        .map_err(GitError::git(repo))?;
    Ok(())
}

/// Deletes a local branch (the caller has checked its commits are safe).
pub fn delete_branch(repo: &Path, branch: &str) -> Result<(), GitError> {
    let r = open(repo)?;
    let mut b = r
        .find_branch(branch, BranchType::Local)
        .map_err(GitError::git(repo))?;
    b.delete().map_err(GitError::git(repo))
}

/// Counts the commits reachable from `tip` and not from `base`.
pub fn commits_between(repo: &Path, base: Oid, tip: Oid) -> Result<u32, GitError> {
    count(&open(repo)?, base, tip, false).map_err(GitError::git(repo))
}

/// Counts the commits made on a branch since `base`: first parents only, so
/// a merge of the target into the branch counts once, not with the
/// target's commits it brought in.
pub fn commits_on_branch(repo: &Repository, base: Oid, tip: Oid) -> Result<u32, git2::Error> {
    count(repo, base, tip, true)
}

fn count(repo: &Repository, base: Oid, tip: Oid, first_parent: bool) -> Result<u32, git2::Error> {
    if base == tip {
        return Ok(0);
    }
    let mut walk = repo.revwalk()?;
    if first_parent {
        walk.simplify_first_parent()?;
    }
    walk.push(tip)?;
    walk.hide(base)?;
    Ok(walk.count() as u32)
}

/// How many hex digits a short commit id has in messages.
pub const SHORT_ID: usize = 9;

/// Returns the newest `limit` commits reachable from `tip` but not `base`,
/// newest first, as (short id, subject) pairs.
pub fn recent_commits(
    repo: &Repository,
    base: Oid,
    tip: Oid,
    limit: usize,
) -> Result<Vec<(String, String)>, git2::Error> {
    if base == tip || limit == 0 {
        return Ok(Vec::new());
    }
    let mut walk = repo.revwalk()?;
    walk.set_sorting(git2::Sort::TOPOLOGICAL | git2::Sort::TIME)?;
    walk.simplify_first_parent()?;
    walk.push(tip)?;
    walk.hide(base)?;
    let mut out = Vec::new();
    for oid in walk.take(limit) {
        let oid = oid?;
        let commit = repo.find_commit(oid)?;
        let mut short = oid.to_string();
        short.truncate(SHORT_ID);
        let subject = commit
            .summary_bytes()
            .map(String::from_utf8_lossy)
            .unwrap_or_default();
        out.push((short, subject.into_owned()));
    }
    Ok(out)
}

/// The mode git records for a symbolic link.
pub const SYMLINK_MODE: i32 = 0o120000;

/// Returns the mode `path` has in the tree of `branch`'s tip (`0o100755`
/// for an executable file), or `None` when the branch or the path is missing.
pub fn committed_mode(repo: &Path, branch: &str, path: &Path) -> Result<Option<i32>, GitError> {
    let r = open(repo)?;
    let Some(tip) = tip(&r, branch).map_err(GitError::git(repo))? else {
        return Ok(None);
    };
    let tree = r
        .find_commit(tip)
        .and_then(|c| c.tree())
        .map_err(GitError::git(repo))?;
    match tree.get_path(path) {
        Ok(entry) => Ok(Some(entry.filemode())),
        Err(e) if e.code() == ErrorCode::NotFound => Ok(None),
        Err(e) => Err(GitError::git(repo)(e)),
    }
}

/// Returns whether `ancestor` is `descendant` or one of its ancestors.
pub fn is_ancestor(repo: &Path, ancestor: Oid, descendant: Oid) -> Result<bool, GitError> {
    if ancestor == descendant {
        return Ok(true);
    }
    let r = open(repo)?;
    r.graph_descendant_of(descendant, ancestor)
        .map_err(GitError::git(repo))
}

/// Lists local branches whose names start with `prefix`, with their tips.
pub fn branches_with_prefix(repo: &Path, prefix: &str) -> Result<Vec<(String, Oid)>, GitError> {
    let r = open(repo)?;
    let mut out = Vec::new();
    for b in r
        .branches(Some(BranchType::Local))
        .map_err(GitError::git(repo))?
    {
        let (b, _) = b.map_err(GitError::git(repo))?;
        let Some(name) = b.name().ok().flatten() else {
            continue;
        };
        if !name.starts_with(prefix) {
            continue;
        }
        if let Some(oid) = b.get().target() {
            out.push((name.to_owned(), oid));
        }
    }
    Ok(out)
}

/// Parses a hex oid.
pub fn parse_oid(text: &str) -> Option<Oid> {
    Oid::from_str(text).ok()
}

/// Moves `refname` from `expected` to `new` in one step; `Ok(false)` if the
/// ref is no longer at `expected` (someone moved it), leaving it untouched.
pub fn compare_and_swap(
    repo: &Path,
    refname: &str,
    expected: Oid,
    new: Oid,
    message: &str,
) -> Result<bool, GitError> {
    swap(&open(repo)?, refname, expected, new, message).map_err(GitError::git(repo))
}

/// [`compare_and_swap`] in an open repository.
pub fn swap(
    repo: &Repository,
    refname: &str,
    expected: Oid,
    new: Oid,
    message: &str,
) -> Result<bool, git2::Error> {
    match repo.reference_matching(refname, new, true, expected, message) {
        Ok(_) => Ok(true),
        Err(e) if matches!(e.code(), ErrorCode::Modified | ErrorCode::Locked) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Keeps `tip` at `refs/orch/backup/<id>/<n>` (the next free `n`) and returns the ref name.
pub fn backup(repo: &Path, id: &str, tip: Oid) -> Result<String, GitError> {
    keep(repo, id, tip, "orch: keep the branch tip before a rewrite")
}

/// The key under `refs/orch/backup/` where commits lost from a target
/// branch are kept: `@target/<branch>` (`@` is in no task id).
pub fn target_backup_key(target: &str) -> String {
    format!("@target/{target}")
}

/// Keeps `commit`, lost from the target branch `target`, at
/// `refs/orch/backup/@target/<target>/<n>` and returns the ref name.
pub fn backup_lost(repo: &Path, target: &str, commit: Oid) -> Result<String, GitError> {
    keep(
        repo,
        &target_backup_key(target),
        commit,
        "orch: keep a commit the target branch lost",
    )
}

fn backups(r: &Repository, key: &str) -> Result<Vec<(u32, String, Oid)>, git2::Error> {
    let prefix = format!("refs/orch/backup/{key}/");
    let mut out = Vec::new();
    for reference in r.references_glob(&format!("{prefix}*"))? {
        let Ok(reference) = reference else { continue };
        let (Some(name), Some(oid)) = (reference.name().ok(), reference.target()) else {
            continue;
        };
        if let Some(n) = name
            .strip_prefix(&prefix)
            .and_then(|n| n.parse::<u32>().ok())
        {
            out.push((n, name.to_owned(), oid));
        }
    }
    out.sort();
    Ok(out)
}

/// Returns the newest ref under `refs/orch/backup/<key>/` and its commit.
pub fn latest_backup(repo: &Path, key: &str) -> Result<Option<(String, Oid)>, GitError> {
    let r = open(repo)?;
    Ok(backups(&r, key)
        .map_err(GitError::git(repo))?
        .pop()
        .map(|(_, name, oid)| (name, oid)))
}

/// Returns whether `refname` exists and points at `oid`.
pub fn ref_points_at(repo: &Path, refname: &str, oid: Oid) -> Result<bool, GitError> {
    let r = open(repo)?;
    match r.find_reference(refname) {
        Ok(reference) => Ok(reference.target() == Some(oid)),
        Err(e) if e.code() == ErrorCode::NotFound => Ok(false),
        Err(e) => Err(GitError::git(repo)(e)),
    }
}

fn keep(repo: &Path, key: &str, tip: Oid, message: &str) -> Result<String, GitError> {
    let r = open(repo)?;
    let mut next = backups(&r, key)
        .map_err(GitError::git(repo))?
        .last()
        .map_or(1, |(n, _, _)| n + 1);
    // A number is taken by another writer (`Exists`), or held by the lock
    // file of a write a kill cut short (`Locked`, for ever: nothing else
    // writes under `refs/orch/`): the next one is as good.
    let mut tries = 0;
    loop {
        let name = format!("refs/orch/backup/{key}/{next}");
        match r.reference(&name, tip, false, message) {
            Ok(_) => return Ok(name),
            Err(e) if tries < 100 && matches!(e.code(), ErrorCode::Exists | ErrorCode::Locked) => {
                tries += 1;
                next += 1;
            }
            Err(e) => return Err(GitError::git(repo)(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A repository with one commit, and that commit.
    fn repo() -> (tempfile::TempDir, Oid) {
        let tmp = tempfile::tempdir().unwrap();
        let r = Repository::init(tmp.path()).unwrap();
        let sig = git2::Signature::now("t", "t@t").unwrap();
        let tree = r.treebuilder(None).unwrap().write().unwrap();
        let tree = r.find_tree(tree).unwrap();
        let oid = r.commit(None, &sig, &sig, "one", &tree, &[]).unwrap();
        (tmp, oid)
    }

    #[test]
    fn a_backup_takes_the_next_number_a_stale_lock_or_another_writer_left_free() {
        let (tmp, oid) = repo();
        // A coordinator killed while it wrote `1` leaves `1.lock` behind;
        // another thread may have just taken `2`.
        let folder = tmp.path().join(".git/refs/orch/backup/T1");
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(folder.join("1.lock"), "").unwrap();
        assert_eq!(
            backup(tmp.path(), "T1", oid).unwrap(),
            "refs/orch/backup/T1/2"
        );
    }
}
