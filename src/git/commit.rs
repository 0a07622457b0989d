//! Committing what an agent left behind.

use std::path::Path;

use crate::git::{GitError, cmd, worktree};

/// The identity used when the repository configures none.
const FALLBACK_IDENTITY: [&str; 4] = ["-c", "user.name=orch", "-c", "user.email=orch@localhost"];

/// Commits every uncommitted change in `worktree` (untracked files included,
/// ignored ones not) with `message`; returns the new commit, or `None` when
/// there was nothing to commit. Hooks run: a refusing pre-commit hook makes
/// this fail and leaves the changes in place.
pub fn commit_all(worktree: &Path, message: &str) -> Result<Option<String>, GitError> {
    if worktree::dirty_files(worktree)?.is_empty() {
        return Ok(None);
    }
    cmd::run(worktree, ["add", "--all"])?;
    let configured = cmd::run(worktree, ["var", "GIT_AUTHOR_IDENT"]).is_ok()
        && cmd::run(worktree, ["var", "GIT_COMMITTER_IDENT"]).is_ok();
    let mut args: Vec<&str> = Vec::new();
    if !configured {
        args.extend(FALLBACK_IDENTITY);
    }
    args.extend(["commit", "--quiet", "--no-edit", "-m", message]);
    cmd::run(worktree, &args)?;
    Ok(Some(cmd::stdout(worktree, ["rev-parse", "HEAD"])?))
}
