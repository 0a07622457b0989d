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

/// Stages the conflicted `paths` whose files hold no conflict marker any
/// more (an agent that edits but does not `git add` has resolved them), a
/// deleted file included; returns the paths still holding markers.
pub fn stage_resolved(worktree: &Path, paths: &[String]) -> Result<Vec<String>, GitError> {
    let (unresolved, resolved): (Vec<String>, Vec<String>) = paths
        .iter()
        .cloned()
        .partition(|p| std::fs::read(worktree.join(p)).is_ok_and(|bytes| has_markers(&bytes)));
    if !resolved.is_empty() {
        let mut args = vec!["add", "--all", "--"];
        args.extend(resolved.iter().map(String::as_str));
        cmd::run(worktree, &args)?;
    }
    Ok(unresolved)
}

/// Returns whether a file's text has a line starting a conflict hunk's
/// first or last marker (as `files_with_markers` looks for them).
fn has_markers(bytes: &[u8]) -> bool {
    bytes.split(|b| *b == b'\n').any(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        [&b"<<<<<<<"[..], &b">>>>>>>"[..]].iter().any(|m| {
            line.strip_prefix(*m)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(b" "))
        })
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_whole_marker_lines() {
        let table: [(&[u8], bool); 6] = [
            (b"<<<<<<< HEAD\na\n=======\nb\n>>>>>>> main\n", true),
            (b"x\r\n>>>>>>>\r\n", true),
            (b"plain text\n", false),
            (b"  <<<<<<< indented\n", false),
            (b"<<<<<<<<< longer\n", false),
            (b"=======\n", false),
        ];
        for (text, want) in table {
            assert_eq!(
                has_markers(text),
                want,
                "{:?}",
                String::from_utf8_lossy(text)
            );
        }
    }
}
