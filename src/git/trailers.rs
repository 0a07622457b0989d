//! Adding `Orch-Task:` trailers to the commits an agent made around orch's
//! `commit-msg` hook (aider's `--no-verify`, a shell that blanks
//! `core.hooksPath`), when the attempt is collected.
//!
//! Only commits orch can vouch for are touched: those reachable from the
//! task's branch and from no other local branch, not from the target, and
//! not from where the unit started (`since`). Nobody but the task's agent
//! writes there. Each of them that lacks a trailer gets it appended, keeping
//! its tree, author, committer and dates; its descendants are rebuilt on
//! top. Before the branch moves, its old tip is kept at
//! `refs/orch/backup/<id>/<n>`, and it moves only if it is still at that tip
//! (compare-and-swap). The worktree needs nothing: its `HEAD` follows the
//! branch and every rebuilt commit has the tree it had.

use std::collections::HashMap;
use std::path::Path;

use git2::{Oid, Repository, Sort};

use crate::git::{GitError, refs};

/// What [`vouch`] rewrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vouched {
    pub old_tip: Oid,
    pub new_tip: Oid,
    /// Commits that had no trailer and got one.
    pub added: u32,
    /// Where the old tip is kept.
    pub backup: String,
}

/// Gives every commit of `branch` made since `since` (and on no other
/// branch, nor on `target`) the `trailers` it lacks; returns `None` when
/// none lacked any (or the branch moved meanwhile).
pub fn vouch(
    repo: &Path,
    branch: &str,
    target: &str,
    since: Option<Oid>,
    trailers: &[String],
    backup_id: &str,
) -> Result<Option<Vouched>, GitError> {
    let git = Repository::open(repo).map_err(GitError::git(repo))?;
    let refname = format!("refs/heads/{branch}");
    let Ok(tip) = git.refname_to_id(&refname) else {
        return Ok(None);
    };
    let mut walk = git.revwalk().map_err(GitError::git(repo))?;
    walk.set_sorting(Sort::TOPOLOGICAL | Sort::REVERSE)
        .map_err(GitError::git(repo))?;
    walk.push(tip).map_err(GitError::git(repo))?;
    if let Some(since) = since {
        walk.hide(since).map_err(GitError::git(repo))?;
    }
    if let Ok(head) = git.refname_to_id(&format!("refs/heads/{target}")) {
        walk.hide(head).map_err(GitError::git(repo))?;
    }
    let lacks = |oid: Oid| -> Result<bool, git2::Error> {
        let commit = git.find_commit(oid)?;
        let message = String::from_utf8_lossy(commit.message_bytes());
        Ok(trailers
            .iter()
            .any(|t| !message.lines().any(|l| l.trim() == t.as_str())))
    };
    // Most often every commit has its trailers (orch's hooks add them):
    // that is known without reading every other branch, whose number
    // grows with the plan.
    let mut any_lacks = false;
    for oid in walk.by_ref() {
        let oid = oid.map_err(GitError::git(repo))?;
        if lacks(oid).map_err(GitError::git(repo))? {
            any_lacks = true;
            break;
        }
    }
    if !any_lacks {
        return Ok(None);
    }
    walk.reset().map_err(GitError::git(repo))?;
    walk.set_sorting(Sort::TOPOLOGICAL | Sort::REVERSE)
        .map_err(GitError::git(repo))?;
    walk.push(tip).map_err(GitError::git(repo))?;
    for hidden in since
        .into_iter()
        .chain(git.refname_to_id(&format!("refs/heads/{target}")).ok())
    {
        walk.hide(hidden).map_err(GitError::git(repo))?;
    }
    let branches = git
        .references_glob("refs/heads/*")
        .map_err(GitError::git(repo))?;
    for other in branches.flatten() {
        if other.name().ok() != Some(refname.as_str())
            && let Some(oid) = other.target()
        {
            walk.hide(oid).map_err(GitError::git(repo))?;
        }
    }
    let commits: Vec<Oid> = walk
        .collect::<Result<_, _>>()
        .map_err(GitError::git(repo))?;
    let mut mapped: HashMap<Oid, Oid> = HashMap::new();
    let mut added = 0;
    for oid in commits {
        let commit = git.find_commit(oid).map_err(GitError::git(repo))?;
        let message = String::from_utf8_lossy(commit.message_bytes()).into_owned();
        let missing: Vec<&String> = trailers
            .iter()
            .filter(|t| !message.lines().any(|l| l.trim() == t.as_str()))
            .collect();
        let parents_moved = commit.parent_ids().any(|p| mapped.contains_key(&p));
        if missing.is_empty() && !parents_moved {
            continue;
        }
        let parents: Vec<git2::Commit<'_>> = commit
            .parent_ids()
            .map(|p| git.find_commit(*mapped.get(&p).unwrap_or(&p)))
            .collect::<Result<_, _>>()
            .map_err(GitError::git(repo))?;
        let parent_refs: Vec<&git2::Commit<'_>> = parents.iter().collect();
        let tree = commit.tree().map_err(GitError::git(repo))?;
        let new_message = with_trailers(&message, &missing);
        let new = git
            .commit(
                None,
                &commit.author(),
                &commit.committer(),
                &new_message,
                &tree,
                &parent_refs,
            )
            .map_err(GitError::git(repo))?;
        if !missing.is_empty() {
            added += 1;
        }
        mapped.insert(oid, new);
    }
    let Some(&new_tip) = mapped.get(&tip) else {
        return Ok(None);
    };
    let backup = refs::backup(repo, backup_id, tip)?;
    let swapped = refs::swap(
        &git,
        &refname,
        tip,
        new_tip,
        "orch: add the Orch-Task trailer to commits made around the hook",
    )
    .map_err(GitError::git(repo))?;
    Ok(swapped.then_some(Vouched {
        old_tip: tip,
        new_tip,
        added,
        backup,
    }))
}

/// Returns `message` with `missing` trailer lines added to its trailer
/// block (a new paragraph when its last one is not a trailer block).
pub fn with_trailers(message: &str, missing: &[&String]) -> String {
    if missing.is_empty() {
        return message.to_owned();
    }
    let body = message.trim_end();
    let last = body.rsplit("\n\n").next().unwrap_or("");
    let is_trailer_block = body.contains("\n\n")
        && !last.is_empty()
        && last.lines().all(|l| {
            l.split_once(':')
                .is_some_and(|(k, _)| !k.is_empty() && !k.contains(' '))
        });
    let mut out = body.to_owned();
    out.push_str(if is_trailer_block { "\n" } else { "\n\n" });
    for trailer in missing {
        out.push_str(trailer);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailers_join_the_trailer_block_or_start_one() {
        let task = "Orch-Task: T1".to_owned();
        let missing = [&task];
        let table = [
            ("Add it", "Add it\n\nOrch-Task: T1\n"),
            ("Add it\n", "Add it\n\nOrch-Task: T1\n"),
            (
                "Add it\n\nWhy: because\n",
                "Add it\n\nWhy: because\nOrch-Task: T1\n",
            ),
            (
                "Add it\n\nA body line.\n",
                "Add it\n\nA body line.\n\nOrch-Task: T1\n",
            ),
            (
                "Add it\n\nCo-authored-by: aider (gpt-4o) <aider@aider.chat>\n",
                "Add it\n\nCo-authored-by: aider (gpt-4o) <aider@aider.chat>\nOrch-Task: T1\n",
            ),
        ];
        for (message, want) in table {
            assert_eq!(with_trailers(message, &missing), want, "{message:?}");
        }
    }
}
