//! Committing what an agent left behind.

use std::path::Path;

use crate::git::{GitError, cmd, worktree};

/// The identity used when the repository configures none.
pub const FALLBACK_IDENTITY: [&str; 4] =
    ["-c", "user.name=orch", "-c", "user.email=orch@localhost"];

/// Returns whether git knows who commits in this worktree.
pub fn identity_configured(worktree: &Path) -> bool {
    cmd::run(worktree, ["var", "GIT_AUTHOR_IDENT"]).is_ok()
        && cmd::run(worktree, ["var", "GIT_COMMITTER_IDENT"]).is_ok()
}

/// Returns the paths with unresolved merge conflicts.
pub fn unmerged_paths(worktree: &Path) -> Result<Vec<String>, GitError> {
    let text = cmd::stdout(worktree, ["diff", "--name-only", "--diff-filter=U", "-z"])?;
    let mut paths: Vec<String> = text
        .split('\0')
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect();
    paths.dedup();
    Ok(paths)
}

/// Returns the files changed since `since` that still hold conflict markers.
pub fn files_with_markers(worktree: &Path, since: &str) -> Result<Vec<String>, GitError> {
    let changed = cmd::stdout(worktree, ["diff", "--name-only", "-z", since, "HEAD"])?;
    let files: Vec<&str> = changed.split('\0').filter(|p| !p.is_empty()).collect();
    if files.is_empty() {
        return Ok(Vec::new());
    }
    let mut args = vec![
        "grep",
        "--name-only",
        "-z",
        "-E",
        "^(<<<<<<<|>>>>>>>)( |$)",
        "HEAD",
        "--",
    ];
    args.extend(files);
    match cmd::run(worktree, &args) {
        Ok(out) => Ok(String::from_utf8_lossy(&out.stdout)
            .split('\0')
            .filter(|p| !p.is_empty())
            .map(|p| p.strip_prefix("HEAD:").unwrap_or(p).to_owned())
            .collect()),
        Err(e) if e.code == Some(1) => Ok(Vec::new()),
        Err(e) => Err(e.into()),
    }
}

/// Commits every uncommitted change in `worktree` (untracked files included,
/// ignored ones not) with `message`; returns the new commit, or `None` when
/// there was nothing to commit. Hooks run: a refusing pre-commit hook makes
/// this fail and leaves the changes in place.
pub fn commit_all(worktree: &Path, message: &str) -> Result<Option<String>, GitError> {
    if worktree::dirty_files(worktree)?.is_empty() {
        return Ok(None);
    }
    cmd::run(worktree, ["add", "--all"])?;
    let mut args: Vec<&str> = Vec::new();
    if !identity_configured(worktree) {
        args.extend(FALLBACK_IDENTITY);
    }
    args.extend(["commit", "--quiet", "--no-edit", "-m", message]);
    cmd::run(worktree, &args)?;
    Ok(Some(cmd::stdout(worktree, ["rev-parse", "HEAD"])?))
}
