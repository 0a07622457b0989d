//! Committing what an agent left behind.

use std::path::{Path, PathBuf};

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

/// Where the changes to commit can be: anywhere in the worktree, or only
/// at these paths (and under these folders), relative to it, plus what the
/// index holds that `HEAD` does not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Whole,
    /// What a watch of the worktree saw change since it was clean
    /// (`crate::runner::watch`).
    Paths(Vec<PathBuf>),
}

/// Commits every uncommitted change in `worktree` (untracked files included,
/// ignored ones not) with `message`; returns the new commit, or `None` when
/// there was nothing to commit. Hooks run: a refusing pre-commit hook makes
/// this fail and leaves the changes in place (staged).
///
/// Whether anything changed is one pass of [`worktree::dirty_files`] (git's
/// status: the index's stat data and the untracked cache, which `git add`
/// does not use), over the `scope`'s paths alone when it names them; then
/// the index is compared with `HEAD` too (no file read: a change staged
/// without a file written, `git rm --cached`, is found there), alongside.
/// Only when something changed, `git add --all` of what did and `git
/// commit` run; the index is then compared with `HEAD` first, so that
/// changes that stage to nothing (an empty folder) commit nothing.
pub fn commit_all(
    worktree: &Path,
    message: &str,
    scope: &Scope,
) -> Result<Option<String>, GitError> {
    let own = worktree::own_worktree_config(worktree);
    let add: Vec<std::ffi::OsString> = match scope {
        Scope::Whole => {
            if worktree::dirty_files(worktree)?.is_empty() {
                return Ok(None);
            }
            let mut args: Vec<std::ffi::OsString> = own.iter().map(Into::into).collect();
            args.extend(["add", "--all"].map(Into::into));
            args
        }
        Scope::Paths(paths) => {
            let (dirty, staged) = std::thread::scope(|s| {
                let staged = s.spawn(|| index_differs(worktree));
                let dirty = worktree::dirty_files_in(worktree, paths);
                (dirty, staged.join())
            });
            let dirty = dirty?;
            let staged = staged.unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
            if dirty.is_empty() && !staged {
                return Ok(None);
            }
            let mut args: Vec<std::ffi::OsString> = Vec::new();
            if !dirty.is_empty() {
                args.extend(own.iter().map(Into::into));
                args.extend(["--literal-pathspecs", "add", "--all", "--"].map(Into::into));
                args.extend(dirty.into_iter().map(Into::into));
            }
            args
        }
    };
    // With nothing to add, the index was just found to differ from `HEAD`.
    if !add.is_empty() {
        cmd::run(worktree, &add)?;
        if !index_differs(worktree)? {
            return Ok(None);
        }
    }
    let mut args = own;
    if !identity_configured(worktree) {
        args.extend(FALLBACK_IDENTITY.map(str::to_owned));
    }
    args.extend(["commit", "--quiet", "--no-edit", "-m", message].map(str::to_owned));
    cmd::run(worktree, &args)?;
    Ok(Some(cmd::stdout(worktree, ["rev-parse", "HEAD"])?))
}

/// Returns whether the index holds what `HEAD` does not.
fn index_differs(worktree: &Path) -> Result<bool, GitError> {
    match cmd::run(
        worktree,
        ["diff-index", "--cached", "--quiet", "HEAD", "--"],
    ) {
        Ok(_) => Ok(false),
        Err(e) if e.code == Some(1) => Ok(true),
        Err(e) => Err(e.into()),
    }
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

    /// A repository on `main` with `a.txt` committed, its mtime in 2001
    /// (so that its index entry is not "racily clean").
    fn repo() -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("r");
        std::fs::create_dir(&repo).unwrap();
        git(&repo, &["init", "-q", "-b", "main"]);
        std::fs::write(repo.join(".gitignore"), "*.log\n").unwrap();
        std::fs::write(repo.join("a.txt"), "one\n").unwrap();
        set_mtime(&repo.join("a.txt"), 1_000_000_000);
        git(&repo, &["add", "-A"]);
        git(&repo, &["commit", "-q", "-m", "initial"]);
        (dir, repo)
    }

    fn git(dir: &Path, args: &[&str]) -> String {
        let out = cmd::command(dir)
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    }

    fn set_mtime(path: &Path, secs: u64) {
        let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
        std::fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(time)
            .unwrap();
    }

    #[test]
    fn nothing_changed_commits_nothing_and_ignored_files_stay_out() {
        let (_dir, repo) = repo();
        std::fs::write(repo.join("build.log"), "ignored\n").unwrap();
        assert!(worktree::dirty_files(&repo).unwrap().is_empty());
        assert_eq!(commit_all(&repo, "leftovers", &Scope::Whole).unwrap(), None);
        assert_eq!(git(&repo, &["rev-list", "--count", "HEAD"]).trim(), "1");
    }

    #[test]
    fn a_new_untracked_file_alone_is_a_change_and_is_committed() {
        let (_dir, repo) = repo();
        std::fs::create_dir(repo.join("new")).unwrap();
        std::fs::write(repo.join("new/b.txt"), "two\n").unwrap();
        assert_eq!(worktree::dirty_files(&repo).unwrap(), ["new/"]);
        let commit = commit_all(&repo, "leftovers", &Scope::Whole)
            .unwrap()
            .expect("a commit");
        assert_eq!(
            git(&repo, &["show", &format!("{commit}:new/b.txt")]),
            "two\n"
        );
        assert!(worktree::dirty_files(&repo).unwrap().is_empty());
    }

    #[test]
    fn a_scope_of_paths_commits_what_changed_there_and_what_was_staged() {
        let (_dir, repo) = repo();
        let scope = |paths: &[&str]| Scope::Paths(paths.iter().map(PathBuf::from).collect());
        // Listed, but written back as they were, or made and removed again.
        assert_eq!(
            commit_all(&repo, "leftovers", &scope(&["a.txt", "gone.tmp", "x/"])).unwrap(),
            None
        );
        // A change outside the scope is not looked for: a watch lists every
        // path the agent wrote.
        std::fs::write(
            repo.join("a.txt"),
            "edited
",
        )
        .unwrap();
        std::fs::create_dir(repo.join("new")).unwrap();
        std::fs::write(
            repo.join("new/b.txt"),
            "two
",
        )
        .unwrap();
        assert_eq!(
            commit_all(&repo, "leftovers", &scope(&["gone.tmp"])).unwrap(),
            None
        );
        let commit = commit_all(&repo, "leftovers", &scope(&["a.txt", "new", "gone.tmp"]))
            .unwrap()
            .expect("a commit");
        assert_eq!(
            git(&repo, &["show", "--name-status", "--format=", &commit]),
            "M\ta.txt\nA\tnew/b.txt\n"
        );
        // A change staged with no file written is found in the index.
        git(&repo, &["rm", "-q", "--cached", "a.txt"]);
        let commit = commit_all(&repo, "leftovers", &scope(&[]))
            .unwrap()
            .expect("a commit");
        assert_eq!(
            git(&repo, &["show", "--name-status", "--format=", &commit]),
            "D\ta.txt\n"
        );
    }

    /// Rewrites the index entry of `path` as if its stat data had been
    /// recorded in 2001 (as a checkout made long ago leaves it).
    fn stat_data_from_2001(repo: &Path, path: &str) {
        let git = git2::Repository::open(repo).unwrap();
        let mut index = git.index().unwrap();
        let mut entry = index.get_path(Path::new(path), 0).unwrap();
        entry.ctime = git2::IndexTime::new(1_000_000_000, 0);
        entry.mtime = git2::IndexTime::new(1_000_000_000, 0);
        index.add(&entry).unwrap();
        index.write().unwrap();
    }

    #[test]
    fn a_change_that_keeps_the_size_and_the_mtime_is_still_committed() {
        let (_dir, repo) = repo();
        stat_data_from_2001(&repo, "a.txt");
        let file = repo.join("a.txt");
        std::fs::write(&file, "two\n").unwrap();
        set_mtime(&file, 1_000_000_000);
        // Same size, same mtime, same inode: only the change time tells.
        assert_eq!(worktree::dirty_files(&repo).unwrap(), ["a.txt"]);
        let commit = commit_all(&repo, "leftovers", &Scope::Whole)
            .unwrap()
            .expect("a commit");
        assert_eq!(git(&repo, &["show", &format!("{commit}:a.txt")]), "two\n");
    }

    #[test]
    fn a_change_in_the_second_the_index_was_written_is_committed() {
        let (_dir, repo) = repo();
        let file = repo.join("a.txt");
        // Racily clean: written in the same second as the index, same size.
        std::fs::write(&file, "one\n").unwrap();
        git(&repo, &["add", "a.txt"]);
        std::fs::write(&file, "six\n").unwrap();
        assert_eq!(worktree::dirty_files(&repo).unwrap(), ["a.txt"]);
        let commit = commit_all(&repo, "leftovers", &Scope::Whole)
            .unwrap()
            .expect("a commit");
        assert_eq!(git(&repo, &["show", &format!("{commit}:a.txt")]), "six\n");
    }
}
