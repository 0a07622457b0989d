//! Building a merge candidate without a worktree: nothing is checked out to
//! find conflicts or to make the commit that would land on the target.
//!
//! The merged tree comes from `git merge-tree --write-tree` (git's own merge,
//! the `ort` strategy, which skips unchanged subtrees); commits, refs and
//! diffs are made with libgit2. DESIGN §5 asks for libgit2's in-memory merge;
//! on a 5,000-file repository it took 40 ms per merge against 2.7 ms for
//! `merge-tree`, because it walks every entry of the three trees, so the
//! merge itself is git's (recorded in `docs/merge.md`). Requires git 2.40.
//!
//! Strategies (`git.merge_strategy`):
//! - `merge`: a merge commit with parents (target head, branch tip);
//! - `squash`: one commit with the merged tree and the target head as parent;
//! - `rebase`: each commit of the branch replayed onto the target head, in
//!   order (a merge commit is replayed against its first parent), so that
//!   history stays linear;
//! - `ff-only`: the branch tip itself, when it already contains the target
//!   head; otherwise its commits replayed onto the head as `rebase` does, or,
//!   when only the replay conflicts (one of its commits, not the branch as a
//!   whole), one commit with the merged tree: the target only ever
//!   fast-forwards (issue 14: a clean branch is no conflict).
//!
//! Nothing here moves a ref: the candidate is an unreferenced commit until
//! [`crate::git::refs::compare_and_swap`] moves the target to it.

use std::path::Path;

use git2::{Commit, DiffOptions, Oid, Repository, Signature};
use serde::{Deserialize, Serialize};

use crate::git::{GitError, cmd};

/// How finished work is merged (`git.merge_strategy` in the config).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum MergeStrategy {
    #[default]
    Merge,
    Squash,
    Rebase,
    FfOnly,
}

/// The result of building a candidate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Built {
    /// The commit that would become the target's head.
    Candidate(Oid),
    /// The merge conflicts in these paths.
    Conflicts(Vec<String>),
}

/// One changed file between two trees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileChange {
    pub path: String,
    pub insertions: usize,
    pub deletions: usize,
}

/// A commit of the task branch, for policy rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitInfo {
    pub oid: Oid,
    pub message: String,
}

/// Returns the identity orch commits with: `GIT_COMMITTER_NAME`/`EMAIL` as
/// git would, else the repository's `user.name`/`user.email`, else `orch`.
pub fn signature(repo: &Repository) -> Result<Signature<'static>, git2::Error> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    if let (Some(name), Some(email)) = (env("GIT_COMMITTER_NAME"), env("GIT_COMMITTER_EMAIL")) {
        return Signature::now(&name, &email);
    }
    match repo.signature() {
        Ok(sig) => Ok(sig.to_owned()),
        Err(_) => Signature::now("orch", "orch@localhost"),
    }
}

/// Builds the candidate for landing `tip` on `head` with `strategy`.
/// `base` is where the branch started (for `rebase`, the commits to replay).
pub fn build(
    repo: &Repository,
    repo_path: &Path,
    strategy: MergeStrategy,
    head: Oid,
    tip: Oid,
    base: Option<Oid>,
    message: &str,
) -> Result<Built, GitError> {
    let head_commit = repo.find_commit(head).map_err(GitError::git(repo_path))?;
    let tip_commit = repo.find_commit(tip).map_err(GitError::git(repo_path))?;
    if head == tip
        || repo
            .graph_descendant_of(head, tip)
            .map_err(GitError::git(repo_path))?
    {
        // The branch is already in the target: nothing to land.
        return Ok(Built::Candidate(head));
    }
    let fast_forwardable = repo
        .graph_descendant_of(tip, head)
        .map_err(GitError::git(repo_path))?;
    match strategy {
        MergeStrategy::FfOnly if fast_forwardable => Ok(Built::Candidate(tip)),
        MergeStrategy::FfOnly => match rebase(repo, repo_path, &head_commit, tip, base)? {
            Built::Conflicts(_) => merged(
                repo,
                repo_path,
                &head_commit,
                &tip_commit,
                true,
                fast_forwardable,
                message,
            ),
            replayed => Ok(replayed),
        },
        MergeStrategy::Merge | MergeStrategy::Squash => merged(
            repo,
            repo_path,
            &head_commit,
            &tip_commit,
            strategy == MergeStrategy::Squash,
            fast_forwardable,
            message,
        ),
        MergeStrategy::Rebase => rebase(repo, repo_path, &head_commit, tip, base),
    }
}

/// Merges `tip` into `head` with git's own merge: a merge commit, or (with
/// `squash`) one commit whose only parent is `head`. `holds_head`: `tip`
/// descends from `head`.
fn merged(
    repo: &Repository,
    repo_path: &Path,
    head: &Commit<'_>,
    tip: &Commit<'_>,
    squash: bool,
    holds_head: bool,
    message: &str,
) -> Result<Built, GitError> {
    let git = GitError::git(repo_path);
    // A branch that already holds `head` changed nothing `head` did not
    // have: the merge of the two is the branch's own tree, with no git
    // process to start (a 3-way merge whose base is `ours` takes `theirs`).
    let tree_id = if holds_head {
        tip.tree_id()
    } else {
        match merge_tree(repo_path, None, head.id(), tip.id())? {
            Ok(tree) => tree,
            Err(conflicts) => return Ok(Built::Conflicts(conflicts)),
        }
    };
    let tree = repo.find_tree(tree_id).map_err(GitError::git(repo_path))?;
    let sig = signature(repo).map_err(GitError::git(repo_path))?;
    let parents: Vec<&Commit<'_>> = if squash { vec![head] } else { vec![head, tip] };
    let oid = repo
        .commit(None, &sig, &sig, message, &tree, &parents)
        .map_err(git)?;
    Ok(Built::Candidate(oid))
}

/// Builds the commit that undoes, on top of `head`, the change from
/// `before` to `after` (a task's landing): `Ok(None)` when `head` holds
/// nothing of it any more.
pub fn revert(
    repo: &Repository,
    repo_path: &Path,
    head: Oid,
    before: Oid,
    after: Oid,
    message: &str,
) -> Result<Option<Built>, GitError> {
    let head_commit = repo.find_commit(head).map_err(GitError::git(repo_path))?;
    let tree_id = match merge_tree(repo_path, Some(after), head, before)? {
        Ok(tree) => tree,
        Err(conflicts) => return Ok(Some(Built::Conflicts(conflicts))),
    };
    if tree_id == head_commit.tree_id() {
        return Ok(None);
    }
    let tree = repo.find_tree(tree_id).map_err(GitError::git(repo_path))?;
    let sig = signature(repo).map_err(GitError::git(repo_path))?;
    let oid = repo
        .commit(None, &sig, &sig, message, &tree, &[&head_commit])
        .map_err(GitError::git(repo_path))?;
    Ok(Some(Built::Candidate(oid)))
}

/// Runs `git merge-tree --write-tree`: `Ok(tree)` when clean, `Err(paths)`
/// with the conflicted paths otherwise. With `base`, merges against that
/// commit instead of the merge base (a cherry-pick).
fn merge_tree(
    repo: &Path,
    base: Option<Oid>,
    ours: Oid,
    theirs: Oid,
) -> Result<Result<Oid, Vec<String>>, GitError> {
    let mut args = vec![
        "merge-tree".to_owned(),
        "--write-tree".to_owned(),
        "-z".to_owned(),
        "--name-only".to_owned(),
    ];
    if let Some(base) = base {
        args.push(format!("--merge-base={base}"));
    }
    args.push(ours.to_string());
    args.push(theirs.to_string());
    let output = cmd::command(repo).args(&args).output().map_err(|e| {
        GitError::Command(cmd::CommandError {
            argv: args.clone(),
            dir: repo.to_owned(),
            code: None,
            stderr: e.to_string(),
        })
    })?;
    let code = output.status.code();
    if !matches!(code, Some(0 | 1)) {
        return Err(GitError::Command(cmd::CommandError {
            argv: args,
            dir: repo.to_owned(),
            code,
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let mut fields = text.split('\0');
    let tree = fields
        .next()
        .and_then(|t| Oid::from_str(t.trim()).ok())
        .ok_or_else(|| {
            GitError::Command(cmd::CommandError {
                argv: args.clone(),
                dir: repo.to_owned(),
                code,
                stderr: "no tree in the output of `git merge-tree`".to_owned(),
            })
        })?;
    if code == Some(0) {
        return Ok(Ok(tree));
    }
    let mut paths: Vec<String> = fields
        .take_while(|f| !f.is_empty())
        .map(str::to_owned)
        .collect();
    paths.sort();
    paths.dedup();
    Ok(Err(paths))
}

fn rebase(
    repo: &Repository,
    repo_path: &Path,
    head: &Commit<'_>,
    tip: Oid,
    base: Option<Oid>,
) -> Result<Built, GitError> {
    let stop = match base {
        Some(base) => base,
        None => repo
            .merge_base(head.id(), tip)
            .map_err(GitError::git(repo_path))?,
    };
    let mut walk = repo.revwalk().map_err(GitError::git(repo_path))?;
    walk.set_sorting(git2::Sort::TOPOLOGICAL | git2::Sort::REVERSE)
        .map_err(GitError::git(repo_path))?;
    walk.push(tip).map_err(GitError::git(repo_path))?;
    walk.hide(stop).map_err(GitError::git(repo_path))?;
    walk.hide(head.id()).map_err(GitError::git(repo_path))?;
    let sig = signature(repo).map_err(GitError::git(repo_path))?;
    let mut onto = head.clone();
    for oid in walk {
        let oid = oid.map_err(GitError::git(repo_path))?;
        let commit = repo.find_commit(oid).map_err(GitError::git(repo_path))?;
        let parent = commit.parent_id(0).map_err(GitError::git(repo_path))?;
        let tree_id = match merge_tree(repo_path, Some(parent), onto.id(), oid)? {
            Ok(tree) => tree,
            Err(conflicts) => return Ok(Built::Conflicts(conflicts)),
        };
        if tree_id == onto.tree_id() {
            continue;
        }
        let tree = repo.find_tree(tree_id).map_err(GitError::git(repo_path))?;
        let message = commit.message().unwrap_or("");
        let new = repo
            .commit(None, &commit.author(), &sig, message, &tree, &[&onto])
            .map_err(GitError::git(repo_path))?;
        onto = repo.find_commit(new).map_err(GitError::git(repo_path))?;
    }
    Ok(Built::Candidate(onto.id()))
}

/// Returns the files changed from `from` to `to`, with line counts when
/// `lines` (counting reads every changed blob). Only the folders whose
/// trees differ are read ([`super::tree::changes`]).
pub fn diff_summary(
    repo: &Repository,
    repo_path: &Path,
    from: Oid,
    to: Oid,
    lines: bool,
) -> Result<Vec<FileChange>, GitError> {
    let changes = super::tree::commit_changes(repo, from, to).map_err(GitError::git(repo_path))?;
    let mut out = Vec::with_capacity(changes.len());
    for change in changes {
        let (insertions, deletions) = if lines {
            line_counts(repo, &change).map_err(GitError::git(repo_path))?
        } else {
            (0, 0)
        };
        out.push(FileChange {
            path: change.path.to_string_lossy().into_owned(),
            insertions,
            deletions,
        });
    }
    Ok(out)
}

/// The lines a change adds and removes (none for a binary file or a
/// submodule).
fn line_counts(
    repo: &Repository,
    change: &super::tree::Change,
) -> Result<(usize, usize), git2::Error> {
    let blob = |side: Option<super::tree::Side>| {
        side.filter(|s| s.mode != 0o160000)
            .map(|s| repo.find_blob(s.id))
            .transpose()
    };
    let (old, new) = (blob(change.old)?, blob(change.new)?);
    let path = change.path.as_path();
    let patch = git2::Patch::from_buffers(
        old.as_ref().map_or(&[][..], |b| b.content()),
        change.old.is_some().then_some(path),
        new.as_ref().map_or(&[][..], |b| b.content()),
        change.new.is_some().then_some(path),
        Some(&mut DiffOptions::new()),
    )?;
    Ok(patch.line_stats().map(|(_, a, d)| (a, d)).unwrap_or((0, 0)))
}

/// Returns the commits reachable from `tip` and not from `head`, oldest first.
pub fn commits(
    repo: &Repository,
    repo_path: &Path,
    head: Oid,
    tip: Oid,
) -> Result<Vec<CommitInfo>, GitError> {
    let mut walk = repo.revwalk().map_err(GitError::git(repo_path))?;
    walk.set_sorting(git2::Sort::TOPOLOGICAL | git2::Sort::REVERSE)
        .map_err(GitError::git(repo_path))?;
    walk.push(tip).map_err(GitError::git(repo_path))?;
    walk.hide(head).map_err(GitError::git(repo_path))?;
    let mut out = Vec::new();
    for oid in walk {
        let oid = oid.map_err(GitError::git(repo_path))?;
        let commit = repo.find_commit(oid).map_err(GitError::git(repo_path))?;
        out.push(CommitInfo {
            oid,
            message: commit.message().unwrap_or("").to_owned(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::git::worktree::tests::{IDENTITY, git, repository};

    fn commit_file(repo: &Path, name: &str) {
        std::fs::write(repo.join(name), name).unwrap();
        git(repo, &["add", name]);
        git(
            repo,
            &[&IDENTITY[..], &["commit", "-q", "-m", name]].concat(),
        );
    }

    fn tip(repo: &Repository, name: &str) -> Oid {
        repo.revparse_single(name).unwrap().id()
    }

    #[test]
    fn a_branch_holding_the_head_merges_to_its_own_tree_as_git_merges_it() {
        let (_dir, _root, path) = repository();
        git(&path, &["switch", "-q", "-c", "task"]);
        commit_file(&path, "a.txt");
        commit_file(&path, "b.txt");
        git(&path, &["switch", "-q", "main"]);
        let repo = Repository::open(&path).unwrap();
        let (head, task) = (tip(&repo, "main"), tip(&repo, "task"));
        for strategy in [MergeStrategy::Merge, MergeStrategy::Squash] {
            let Built::Candidate(built) =
                build(&repo, &path, strategy, head, task, None, "m").unwrap()
            else {
                panic!("{strategy:?}: conflicts");
            };
            let built = repo.find_commit(built).unwrap();
            let by_git = merge_tree(&path, None, head, task).unwrap().unwrap();
            assert_eq!(built.tree_id(), by_git, "{strategy:?}");
            let parents: Vec<Oid> = built.parent_ids().collect();
            match strategy {
                MergeStrategy::Squash => assert_eq!(parents, [head]),
                _ => assert_eq!(parents, [head, task]),
            }
        }
    }

    #[test]
    fn a_branch_behind_the_head_is_merged_by_git() {
        let (_dir, _root, path) = repository();
        git(&path, &["switch", "-q", "-c", "task"]);
        commit_file(&path, "a.txt");
        git(&path, &["switch", "-q", "main"]);
        commit_file(&path, "b.txt");
        let repo = Repository::open(&path).unwrap();
        let (head, task) = (tip(&repo, "main"), tip(&repo, "task"));
        let Built::Candidate(built) =
            build(&repo, &path, MergeStrategy::Merge, head, task, None, "m").unwrap()
        else {
            panic!("conflicts");
        };
        let tree = repo.find_commit(built).unwrap().tree().unwrap();
        for name in ["a.txt", "b.txt"] {
            assert!(tree.get_name(name).is_some(), "{name} in the merge");
        }
    }
}
