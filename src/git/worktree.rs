//! Worktree administration and cleanliness checks through the `git` CLI.
//!
//! Nothing here forces: `add` fails if the path exists, `remove` fails on a
//! dirty worktree, `switch` fails if local changes would be overwritten. The
//! callers turn those failures into refusals that name the path.

use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use git2::Repository;

use crate::git::{GitError, cmd};

/// One entry of `git worktree list --porcelain`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub path: PathBuf,
    pub head: Option<String>,
    /// The short branch name, `None` when detached.
    pub branch: Option<String>,
    pub locked: bool,
    pub prunable: bool,
    pub bare: bool,
}

/// Lists the repository's worktrees, the main one first.
///
/// A worktree's admin folder renamed while git reads them
/// ([`name_admin_after_folder`], run for a recycled worktree on another
/// thread) makes `git worktree list` fail ("Invalid path"); the list is
/// read-only, so it is asked again, twice at most, before the error counts.
pub fn list(repo: &Path) -> Result<Vec<Entry>, GitError> {
    let mut tries = 0;
    loop {
        match cmd::stdout(repo, ["worktree", "list", "--porcelain"]) {
            Ok(text) => return Ok(parse_list(&text)),
            Err(e) if tries < 2 && e.code.is_some() => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Parses `git worktree list --porcelain` output.
pub fn parse_list(text: &str) -> Vec<Entry> {
    let mut out = Vec::new();
    let mut current: Option<Entry> = None;
    for line in text.lines() {
        if let Some(path) = line.strip_prefix("worktree ") {
            out.extend(current.take());
            current = Some(Entry {
                path: PathBuf::from(path),
                head: None,
                branch: None,
                locked: false,
                prunable: false,
                bare: false,
            });
            continue;
        }
        let Some(entry) = current.as_mut() else {
            continue;
        };
        if let Some(head) = line.strip_prefix("HEAD ") {
            entry.head = Some(head.to_owned());
        } else if let Some(branch) = line.strip_prefix("branch ") {
            entry.branch = Some(
                branch
                    .strip_prefix("refs/heads/")
                    .unwrap_or(branch)
                    .to_owned(),
            );
        } else if line == "locked" || line.starts_with("locked ") {
            entry.locked = true;
        } else if line == "prunable" || line.starts_with("prunable ") {
            entry.prunable = true;
        } else if line == "bare" {
            entry.bare = true;
        }
    }
    out.extend(current);
    out
}

/// Drops admin entries of worktrees whose folders are gone.
pub fn prune(repo: &Path) -> Result<(), GitError> {
    cmd::run(repo, ["worktree", "prune"])?;
    Ok(())
}

/// Adds a worktree at `path`. With `new_branch_at`, creates `branch` there
/// (failing if it exists); otherwise checks out the existing `branch`.
pub fn add(
    repo: &Path,
    path: &Path,
    branch: &str,
    new_branch_at: Option<&str>,
) -> Result<(), GitError> {
    if path.exists() {
        return Err(GitError::PathTaken {
            path: path.to_owned(),
        });
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| io_failure(repo, &["mkdir".as_ref(), parent.as_os_str()], e))?;
    }
    let mut args: Vec<std::ffi::OsString> = own_worktree_config(repo)
        .into_iter()
        .map(Into::into)
        .collect();
    args.extend(["worktree", "add", "--quiet"].map(Into::into));
    match new_branch_at {
        Some(at) => {
            args.extend(["--no-track", "-b", branch].map(Into::into));
            args.extend([path.as_os_str().to_owned(), at.into()]);
        }
        None => args.extend([path.as_os_str().to_owned(), branch.into()]),
    }
    cmd::run(repo, &args)?;
    Ok(())
}

/// Moves a worktree (folder and admin entry) to `to`: in-process when
/// [`move_here`] can, else with `git worktree move`.
pub fn move_to(repo: &Path, from: &Path, to: &Path) -> Result<(), GitError> {
    if to.exists() {
        return Err(GitError::PathTaken {
            path: to.to_owned(),
        });
    }
    match move_here(from, to) {
        Ok(true) => return Ok(()),
        Ok(false) => {}
        Err(e) => {
            let argv = [
                "worktree".as_ref(),
                "move".as_ref(),
                from.as_os_str(),
                to.as_os_str(),
            ];
            return Err(io_failure(repo, &argv, e));
        }
    }
    cmd::run(
        repo,
        [
            "worktree".as_ref(),
            "move".as_ref(),
            from.as_os_str(),
            to.as_os_str(),
        ] as [&std::ffi::OsStr; 4],
    )?;
    Ok(())
}

/// A step orch does itself in `dir`, in place of the command `argv`, that
/// failed with `e`: reported as that command's failure.
fn io_failure(dir: &Path, argv: &[&std::ffi::OsStr], e: std::io::Error) -> GitError {
    GitError::Command(cmd::CommandError {
        argv: argv
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect(),
        dir: dir.to_owned(),
        code: None,
        stderr: e.to_string(),
    })
}

/// What a worktree's admin folder's `locked` file says while orch moves
/// the worktree, followed by where to.
const MOVING: &str = "orch: moving to ";

/// Moves a linked worktree the way `git worktree move` does, without its
/// process: the folder is renamed and the admin folder's `gitdir` file
/// pointed at its new place. Returns `false`, having done nothing, for
/// what is left to git: a worktree git would refuse (locked, with
/// submodules: a `.gitmodules` file or a `modules` folder in its admin
/// folder) or one whose files name each other by relative paths.
///
/// The admin folder is locked (git's own `locked` file) for the move, so
/// that no `git worktree prune` removes it while its `gitdir` names a
/// folder that is gone; the lock names where the worktree goes, so that
/// a move a crash cut is finished ([`finish_moves`]). Folders renamed
/// across file systems fail, as they do for git.
fn move_here(from: &Path, to: &Path) -> std::io::Result<bool> {
    let Some(admin) = admin_of(from) else {
        return Ok(false);
    };
    // git names the worktree by its real path, and so does this.
    let real_from = from.canonicalize()?;
    let names_from = std::fs::read_to_string(admin.join("gitdir"))
        .is_ok_and(|g| Path::new(g.trim_end()) == real_from.join(".git"));
    // A `locked` file already there (a person's lock) is found by its
    // exclusive creation below.
    if !names_from
        || !to.is_absolute()
        || admin.join("modules").exists()
        || from.join(".gitmodules").exists()
    {
        return Ok(false);
    }
    let locked = admin.join("locked");
    let mut reason = MOVING.as_bytes().to_vec();
    reason.extend(to.as_os_str().as_encoded_bytes());
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&locked)
    {
        Ok(mut file) => std::io::Write::write_all(&mut file, &reason)?,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
        Err(e) => return Err(e),
    }
    if let Err(e) = std::fs::rename(from, to) {
        let _ = std::fs::remove_file(&locked);
        return Err(e);
    }
    point_admin_at(&admin, &to.canonicalize()?)?;
    std::fs::remove_file(&locked)?;
    Ok(true)
}

/// The admin folder a linked worktree's `.git` file names by an absolute
/// path, if it is one.
fn admin_of(worktree: &Path) -> Option<PathBuf> {
    let text = std::fs::read_to_string(worktree.join(".git")).ok()?;
    let admin = PathBuf::from(text.trim_end().strip_prefix("gitdir: ")?);
    (admin.is_absolute() && admin.is_dir()).then_some(admin)
}

/// Writes the admin folder's `gitdir` file to name `worktree`'s `.git`
/// (through a temp file and a rename).
fn point_admin_at(admin: &Path, worktree: &Path) -> std::io::Result<()> {
    let mut line = worktree.join(".git").into_os_string().into_encoded_bytes();
    line.push(b'\n');
    crate::fsio::write_atomically(&admin.join("gitdir"), &line)
}

/// Finishes the moves [`move_here`] began and a crash cut, in the admin
/// folders under the common dir of the repository at `repo`: one locked
/// by orch for a move whose folder is already at its new place (its
/// `.git` file naming this admin folder) is pointed there; one whose
/// folder is still where `gitdir` says is only unlocked. Any other lock
/// is someone's and stays. A move that cannot be finished is logged and
/// stays locked for the next look; the others are finished.
pub fn finish_moves(repo: &Path) {
    let Ok(git) = Repository::open(repo) else {
        return;
    };
    let Ok(entries) = std::fs::read_dir(git.commondir().join("worktrees")) else {
        return;
    };
    for admin in entries.flatten().map(|e| e.path()) {
        if let Err(e) = finish_move(&admin) {
            tracing::warn!(admin = %admin.display(), error = %e, "cannot finish a worktree move a crash cut");
        }
    }
}

/// [`finish_moves`] for one admin folder.
fn finish_move(admin: &Path) -> std::io::Result<()> {
    let locked = admin.join("locked");
    let Some(to) = std::fs::read(&locked)
        .ok()
        .and_then(|r| r.strip_prefix(MOVING.as_bytes()).map(<[u8]>::to_vec))
        .map(|to| PathBuf::from(std::ffi::OsString::from_vec(to)))
    else {
        return Ok(());
    };
    let named = std::fs::read_to_string(admin.join("gitdir"))
        .map(|g| PathBuf::from(g.trim_end()))
        .ok();
    if admin_of(&to).is_some_and(|a| a == admin) {
        let to = to.canonicalize()?;
        if named.as_deref() != Some(to.join(".git").as_path()) {
            point_admin_at(admin, &to)?;
        }
    } else if !named.is_some_and(|g| g.exists()) {
        return Ok(());
    }
    std::fs::remove_file(&locked)
}

/// The temp file a worktree's `.git` file is written through: always the
/// same name, so that a write cut by a crash is taken up by the next one,
/// not left as an untracked file that makes the worktree look changed.
pub const DOTGIT_NEW: &str = ".git.orch-new";

/// Names a worktree's admin folder (`<common dir>/worktrees/<name>`) after
/// the worktree's own folder, as `git worktree add` would have: a recycled
/// worktree moved from `T1` to `T2` keeps the admin folder `T1` otherwise,
/// and that name shows in the git errors its next agent reads.
///
/// The admin folder is renamed first, then the worktree's `.git` file is
/// pointed at it (put back if that fails). A crash in between leaves a
/// `.git` file naming a folder that is gone while the renamed one still
/// names this worktree: the next call finds that and finishes the job. A
/// name already taken is left alone. Returns whether anything changed.
pub fn name_admin_after_folder(worktree: &Path) -> std::io::Result<bool> {
    let dotgit = worktree.join(".git");
    let text = std::fs::read_to_string(&dotgit)?;
    let Some(written) = text.trim_end().strip_prefix("gitdir: ").map(PathBuf::from) else {
        return Ok(false);
    };
    let (Some(name), Some(written_parent)) = (worktree.file_name(), written.parent()) else {
        return Ok(false);
    };
    // The `.git` file may hold a path relative to the worktree
    // (`worktree.useRelativePaths`); it keeps its form.
    let written_wanted = written_parent.join(name);
    let admin = worktree.join(&written);
    let wanted = worktree.join(&written_wanted);
    let temp = worktree.join(DOTGIT_NEW);
    if written == written_wanted {
        if temp.is_file() {
            std::fs::remove_file(&temp)?;
        }
        return Ok(false);
    }
    let points_here = |dir: &Path| {
        std::fs::read_to_string(dir.join("gitdir")).is_ok_and(|g| {
            let g = dir.join(g.trim_end());
            g == dotgit || g.canonicalize().ok() == dotgit.canonicalize().ok()
        })
    };
    if admin.is_dir() {
        if wanted.exists() {
            return Ok(false);
        }
        std::fs::rename(&admin, &wanted)?;
    } else if !points_here(&wanted) {
        return Ok(false);
    }
    let line = format!("gitdir: {}\n", written_wanted.display());
    if let Err(e) = replace_dotgit(worktree, &temp, &dotgit, &line) {
        if !admin.exists() {
            let _ = std::fs::rename(&wanted, &admin);
        }
        return Err(e);
    }
    Ok(true)
}

/// Replaces the worktree's `.git` file with `line` through `temp`: write,
/// fsync, rename, fsync of the folder.
fn replace_dotgit(worktree: &Path, temp: &Path, dotgit: &Path, line: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut file = std::fs::File::create(temp)?;
    file.write_all(line.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(temp, dotgit)?;
    std::fs::File::open(worktree)?.sync_all()
}

/// Removes a clean worktree; git refuses a dirty one.
pub fn remove(repo: &Path, path: &Path) -> Result<(), GitError> {
    cmd::run(
        repo,
        ["worktree".as_ref(), "remove".as_ref(), path.as_os_str()] as [&std::ffi::OsStr; 3],
    )?;
    Ok(())
}

/// Switches a worktree to `branch`, creating it at `create_at` when given.
/// Only files that differ are rewritten; ignored files stay.
pub fn switch(worktree: &Path, branch: &str, create_at: Option<&str>) -> Result<(), GitError> {
    let mut args = own_worktree_config(worktree);
    args.extend(["switch", "--quiet"].map(str::to_owned));
    match create_at {
        Some(at) => args.extend(["--no-track", "-c", branch, at].map(str::to_owned)),
        None => args.extend(["--no-guess", branch].map(str::to_owned)),
    }
    cmd::run(worktree, &args)?;
    Ok(())
}

/// Returns the paths with uncommitted changes (untracked files included,
/// ignored files and submodules not), in one pass of `git status` over the
/// worktree.
///
/// Git's own status, not libgit2's, because it reuses what git keeps:
/// the index's stat data (a file whose stat data still matches is not
/// read), the untracked cache (a folder whose stat data did not change is
/// not read again), an fsmonitor the user configured, and threads for the
/// `lstat` of every tracked file. A file changed without its stat data
/// changing in size or mtime is still found: git compares the change time
/// too, and reads a file whose mtime is not older than the index
/// ("racily clean"). The stat data refreshed is written back to the index
/// (orch's worktrees only, under its locks), so the next pass reads less.
/// See docs/architecture.md, "What a task costs".
pub fn dirty_files(worktree: &Path) -> Result<Vec<String>, GitError> {
    status(worktree, &[])
}

/// [`dirty_files`] at `paths` (files, or folders for all they hold),
/// relative to the worktree: git reads the stat data of the index entries
/// at those paths and the folders among them, not every file. The index
/// is not written back (`--no-optional-locks`) and not preloaded
/// (`core.preloadIndex=false`): what the pass refreshes is those entries
/// alone, an agent's just-committed file among them, whose entry stays
/// racily clean in an index written in the same second, so that writing
/// the whole index saves the next pass nothing; and the preload's threads
/// go through every entry to match it against the paths, which the
/// refresh does again. At 50,000 files a pass took 22 to 30 ms without
/// the two, 31 to 49 with them (docs/benchmarks.md, eleventh round).
pub fn dirty_files_in(worktree: &Path, paths: &[PathBuf]) -> Result<Vec<String>, GitError> {
    if paths.is_empty() {
        return Ok(Vec::new());
    }
    status(worktree, paths)
}

fn status(worktree: &Path, paths: &[PathBuf]) -> Result<Vec<String>, GitError> {
    let mut args: Vec<std::ffi::OsString> = own_worktree_config(worktree)
        .into_iter()
        .map(Into::into)
        .collect();
    if !paths.is_empty() {
        args.extend(
            [
                "-c",
                "core.preloadIndex=false",
                "--no-optional-locks",
                "--literal-pathspecs",
            ]
            .map(Into::into),
        );
    }
    args.extend(
        [
            "status",
            "--porcelain",
            "-z",
            "--untracked-files=normal",
            "--ignore-submodules=all",
        ]
        .map(Into::into),
    );
    if !paths.is_empty() {
        args.push("--".into());
        args.extend(paths.iter().map(|p| p.as_os_str().to_owned()));
    }
    let out = cmd::run(worktree, &args)?;
    Ok(parse_status(&out.stdout))
}

/// Returns the `-c` options orch gives git in a worktree it owns, each
/// unless the repository's config sets the key itself:
/// - the untracked cache on (`core.untrackedCache`; a file system whose
///   folders do not change mtime when an entry is added needs it off, and
///   `git update-index --test-untracked-cache` says so);
/// - no checksum of the index (`index.skipHash`, which `feature.manyFiles`
///   turns on too): git hashes the whole index file on every write, 12
///   ms of a 50,000-entry index here, and libgit2 checks that hash on
///   every read unless it is zeros. Git reads such an
///   index since 2.13 and libgit2 since 1.8; a `git fsck` older than 2.40
///   reports it (docs/architecture.md, "What a task costs").
pub fn own_worktree_config(worktree: &Path) -> Vec<String> {
    unset_settings(worktree)
        .into_iter()
        .flat_map(|(key, value)| ["-c".to_owned(), format!("{key}={value}")])
        .collect()
}

/// The settings of [`own_worktree_config`] the repository's config leaves
/// to orch.
fn unset_settings(worktree: &Path) -> Vec<(&'static str, &'static str)> {
    let config = Repository::open(worktree).and_then(|r| r.config());
    let set = |key: &str| config.as_ref().is_ok_and(|c| c.get_string(key).is_ok());
    [("core.untrackedCache", "true"), ("index.skipHash", "true")]
        .into_iter()
        .filter(|(key, _)| !set(key))
        .collect()
}

/// Returns the variables that give the git an agent runs in `worktree`
/// orch's index without a checksum (`index.skipHash`, unless the
/// repository's config sets it; see [`own_worktree_config`]): the agent's
/// `git add` and `git commit` read and write the whole index too. They
/// extend the `GIT_CONFIG_COUNT` list the agent would have otherwise
/// (`count`, that variable's value); a count git would refuse is left
/// alone, and so is everything then. Git before 2.31 ignores them.
pub fn agent_config_env(worktree: &Path, count: Option<&str>) -> Vec<(String, String)> {
    let first = match count.map(|c| c.trim().parse::<usize>()) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => return Vec::new(),
    };
    let settings: Vec<_> = unset_settings(worktree)
        .into_iter()
        .filter(|(key, _)| *key == "index.skipHash")
        .collect();
    if settings.is_empty() {
        return Vec::new();
    }
    let mut env = vec![(
        "GIT_CONFIG_COUNT".to_owned(),
        (first + settings.len()).to_string(),
    )];
    for (i, (key, value)) in (first..).zip(settings) {
        env.push((format!("GIT_CONFIG_KEY_{i}"), key.to_owned()));
        env.push((format!("GIT_CONFIG_VALUE_{i}"), value.to_owned()));
    }
    env
}

/// Parses `git status --porcelain -z`: one path per entry (a rename's
/// new path; its old one follows it and is skipped).
fn parse_status(out: &[u8]) -> Vec<String> {
    let mut paths = Vec::new();
    let mut records = out.split(|b| *b == 0).filter(|r| !r.is_empty());
    while let Some(record) = records.next() {
        let Some(path) = record.get(3..) else {
            continue;
        };
        paths.push(String::from_utf8_lossy(path).into_owned());
        if matches!(record[0], b'R' | b'C') {
            records.next();
        }
    }
    paths
}

/// Returns the worktree that has `branch` checked out, if any, reading the
/// `HEAD` files of the repository's layout (no process, no full status).
pub fn checked_out_at(repo: &Repository, branch: &str) -> Option<PathBuf> {
    let common = repo.commondir();
    for head in heads_naming(common, branch) {
        match head {
            Head::Main => {
                if let Some(root) = common
                    .parent()
                    .filter(|_| common.file_name().is_some_and(|n| n == ".git"))
                {
                    return Some(root.to_owned());
                }
            }
            Head::Linked(name) => {
                if let Ok(wt) = repo.find_worktree(&name)
                    && wt.validate().is_ok()
                {
                    return Some(wt.path().to_owned());
                }
            }
        }
    }
    None
}

/// Whether any worktree of the repository at `repo` has `branch` checked
/// out, as `git worktree list` would show it: the main worktree or a
/// linked one, its folder there or gone (a worktree not yet pruned still
/// holds its branch for git). Reads the `HEAD` files; no process.
pub fn holds(repo: &Path, branch: &str) -> Result<bool, GitError> {
    let git = Repository::open(repo).map_err(GitError::git(repo))?;
    Ok(heads_naming(git.commondir(), branch).next().is_some())
}

/// A worktree's `HEAD` file, by whose it is.
#[derive(Debug, PartialEq, Eq)]
enum Head {
    Main,
    /// A linked worktree's, by its admin folder's name.
    Linked(String),
}

/// The worktrees whose `HEAD` names `branch`, from the `HEAD` files under
/// the common dir: the main worktree's first, then each linked one's.
fn heads_naming(common: &Path, branch: &str) -> impl Iterator<Item = Head> {
    let wanted = format!("ref: refs/heads/{branch}");
    let linked = std::fs::read_dir(common.join("worktrees"))
        .into_iter()
        .flatten()
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .map(|name| {
            (
                Head::Linked(name.clone()),
                Path::new("worktrees").join(name).join("HEAD"),
            )
        });
    std::iter::once((Head::Main, PathBuf::from("HEAD")))
        .chain(linked)
        .filter(move |(_, head)| {
            std::fs::read_to_string(common.join(head)).is_ok_and(|text| text.trim() == wanted)
        })
        .map(|(head, _)| head)
}

/// Returns the branch checked out in a worktree, `None` when detached.
pub fn current_branch(worktree: &Path) -> Result<Option<String>, GitError> {
    let repo = Repository::open(worktree).map_err(GitError::git(worktree))?;
    let head = repo
        .find_reference("HEAD")
        .map_err(GitError::git(worktree))?;
    let target = head.symbolic_target().map_err(GitError::git(worktree))?;
    Ok(target
        .and_then(|t| t.strip_prefix("refs/heads/"))
        .map(str::to_owned))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Runs git in `cwd`; it must succeed.
    pub(crate) fn git(cwd: &Path, args: &[&str]) {
        let out = cmd::command(cwd).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
    }

    /// The identity of the commits tests make.
    pub(crate) const IDENTITY: [&str; 4] = ["-c", "user.name=a", "-c", "user.email=a@b"];

    /// A temp folder (kept alive by the first value), its canonical path,
    /// and a repository `repo/` in it with one empty commit on `main`.
    pub(crate) fn repository() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        let repo = root.join("repo");
        std::fs::create_dir(&repo).unwrap();
        git(&repo, &["init", "-q", "-b", "main"]);
        let commit = ["commit", "-q", "--allow-empty", "-m", "i"];
        git(&repo, &[&IDENTITY[..], &commit[..]].concat());
        (dir, root, repo)
    }

    /// The worktrees git lists, as (path, locked).
    fn listed(repo: &Path) -> Vec<(PathBuf, bool)> {
        let out = cmd::stdout(repo, ["worktree", "list", "--porcelain"]).unwrap();
        parse_list(&out)
            .into_iter()
            .skip(1)
            .map(|e| {
                assert!(!e.prunable, "{} is prunable", e.path.display());
                (e.path, e.locked)
            })
            .collect()
    }

    #[test]
    fn a_worktree_moved_in_process_is_where_git_would_have_it() {
        let (_dir, root, repo) = repository();
        git(&repo, &["worktree", "add", "-q", "-b", "t1", "../T1"]);
        assert!(move_here(&root.join("T1"), &root.join("T2")).unwrap());
        assert!(!root.join("T1").exists());
        assert_eq!(listed(&repo), [(root.join("T2"), false)]);
        git(&root.join("T2"), &["status", "--short"]);
        // Its `gitdir` is as `git worktree move` writes it.
        let admin = repo.join(".git/worktrees/T1");
        let by_orch = std::fs::read_to_string(admin.join("gitdir")).unwrap();
        git(&repo, &["worktree", "move", "../T2", "../T3"]);
        git(&repo, &["worktree", "move", "../T3", "../T2"]);
        assert_eq!(
            std::fs::read_to_string(admin.join("gitdir")).unwrap(),
            by_orch
        );

        // What git refuses, or could, is left to git.
        git(&repo, &["worktree", "lock", "../T2"]);
        assert!(!move_here(&root.join("T2"), &root.join("T3")).unwrap());
        assert!(move_to(&repo, &root.join("T2"), &root.join("T3")).is_err());
        git(&repo, &["worktree", "unlock", "../T2"]);
        std::fs::write(root.join("T2/.gitmodules"), "").unwrap();
        assert!(!move_here(&root.join("T2"), &root.join("T3")).unwrap());
        assert!(root.join("T2").is_dir());
    }

    /// A move a crash cut, at each step: its lock keeps `git worktree
    /// prune` off the entry, and the next run finishes it; a lock that
    /// is not orch's stays.
    #[test]
    fn a_move_a_crash_cut_is_finished_and_another_lock_is_kept() {
        let (_dir, root, repo) = repository();
        for name in ["A", "B", "C"] {
            git(
                &repo,
                &["worktree", "add", "-q", "--detach", &format!("../{name}")],
            );
        }
        let admin = |name: &str| repo.join(".git/worktrees").join(name);
        let lock = |name: &str, to: &str| {
            let reason = format!("{MOVING}{}", root.join(to).display());
            std::fs::write(admin(name).join("locked"), reason).unwrap();
        };
        // A: cut after the folder was renamed. B: cut before.
        lock("A", "A2");
        std::fs::rename(root.join("A"), root.join("A2")).unwrap();
        lock("B", "B2");
        git(
            &repo,
            &["worktree", "lock", "--reason", "a person's", "../C"],
        );
        git(&repo, &["worktree", "prune"]);
        assert!(admin("A").is_dir(), "the lock keeps the entry");

        finish_moves(&repo);
        assert_eq!(
            listed(&repo),
            [
                (root.join("A2"), false),
                (root.join("B"), false),
                (root.join("C"), true)
            ]
        );
        git(&root.join("A2"), &["status", "--short"]);
    }

    #[test]
    fn admin_folders_follow_their_worktree_even_after_a_cut_rename() {
        let (_dir, root, repo) = repository();
        git(&repo, &["worktree", "add", "-q", "-b", "t1", "../T1"]);
        move_to(&repo, &root.join("T1"), &root.join("T2")).unwrap();
        let wt = root.join("T2");
        assert!(name_admin_after_folder(&wt).unwrap());
        let dotgit = std::fs::read_to_string(wt.join(".git")).unwrap();
        assert!(
            dotgit.trim_end().ends_with("/.git/worktrees/T2"),
            "{dotgit}"
        );
        git(&wt, &["status", "--short"]);
        assert!(!name_admin_after_folder(&wt).unwrap(), "nothing left to do");
        // A crash after the rename, before the `.git` file changed.
        move_to(&repo, &wt, &root.join("T3")).unwrap();
        let wt = root.join("T3");
        let admin = repo.join(".git/worktrees");
        std::fs::rename(admin.join("T2"), admin.join("T3")).unwrap();
        assert!(name_admin_after_folder(&wt).unwrap());
        git(&wt, &["status", "--short"]);
        assert_eq!(list(&repo).unwrap()[1].branch.as_deref(), Some("t1"));
    }

    /// The index git wrote in `wt` ends with a zero hash: none computed.
    fn index_hash_skipped(wt: &Path) -> bool {
        let index = Repository::open(wt).unwrap().path().join("index");
        let bytes = std::fs::read(index).unwrap();
        bytes[bytes.len() - 20..].iter().all(|b| *b == 0)
    }

    #[test]
    fn orchs_git_writes_the_index_of_its_worktrees_without_a_checksum_unless_configured() {
        let (_dir, root, repo) = repository();
        std::fs::write(repo.join("a.txt"), "a\n").unwrap();
        git(&repo, &["add", "a.txt"]);
        git(
            &repo,
            &[&IDENTITY[..], &["commit", "-q", "-m", "a"]].concat(),
        );
        let wt = root.join("T1");
        add(&repo, &wt, "t1", Some("main")).unwrap();
        assert!(index_hash_skipped(&wt), "written by `worktree add`");
        switch(&wt, "t2", Some("main")).unwrap();
        assert!(index_hash_skipped(&wt), "written by `switch`");
        // An index git wrote with its checksum is read, and its next write
        // by orch's status (the stat data refreshed) has none.
        git(&wt, &["update-index", "--force-write-index"]);
        assert!(!index_hash_skipped(&wt));
        std::fs::write(wt.join("a.txt"), "b\n").unwrap();
        std::fs::write(wt.join("a.txt"), "a\n").unwrap();
        assert!(dirty_files(&wt).unwrap().is_empty());
        assert!(index_hash_skipped(&wt), "written by `status`");
        // The repository's own setting wins.
        git(&repo, &["config", "index.skipHash", "false"]);
        std::fs::write(wt.join("a.txt"), "c\n").unwrap();
        std::fs::write(wt.join("a.txt"), "a\n").unwrap();
        assert!(dirty_files(&wt).unwrap().is_empty());
        assert!(!index_hash_skipped(&wt), "a checksum, as configured");
        assert_eq!(own_worktree_config(&wt), ["-c", "core.untrackedCache=true"]);
    }

    /// A pass over the paths an agent wrote does not write the index, which
    /// a whole pass does when it refreshed something: the agent's
    /// just-committed file is racily clean, and git writes an index holding
    /// a racily clean entry again each time it looks.
    #[test]
    fn a_pass_over_some_paths_leaves_the_index_as_it_was() {
        let (_dir, _root, repo) = repository();
        let index = repo.join(".git/index");
        std::fs::write(repo.join("a.txt"), "a\n").unwrap();
        git(&repo, &["add", "a.txt"]);
        git(
            &repo,
            &[&IDENTITY[..], &["commit", "-q", "-m", "a"]].concat(),
        );
        // What each look sees of the index: a rewrite gets a new inode.
        let written = || {
            use std::os::unix::fs::MetadataExt;
            let meta = std::fs::metadata(&index).unwrap();
            (meta.ino(), meta.mtime(), meta.mtime_nsec())
        };
        let before = written();
        let paths = [PathBuf::from("a.txt")];
        assert!(dirty_files_in(&repo, &paths).unwrap().is_empty());
        assert_eq!(written(), before, "a pass over some paths");
        std::fs::write(repo.join("a.txt"), "b\n").unwrap();
        assert_eq!(dirty_files_in(&repo, &paths).unwrap(), ["a.txt"]);
        assert_eq!(written(), before, "a pass that found a change");
        std::fs::write(repo.join("a.txt"), "a\n").unwrap();
        assert!(dirty_files(&repo).unwrap().is_empty());
        assert_ne!(written(), before, "a whole pass writes what it refreshed");
    }

    #[test]
    fn the_agents_setting_extends_its_git_config_list_or_leaves_a_bad_one_alone() {
        let (_dir, _root, repo) = repository();
        let pair = |k: &str, v: &str| (k.to_owned(), v.to_owned());
        assert_eq!(
            agent_config_env(&repo, None),
            [
                pair("GIT_CONFIG_COUNT", "1"),
                pair("GIT_CONFIG_KEY_0", "index.skipHash"),
                pair("GIT_CONFIG_VALUE_0", "true"),
            ]
        );
        assert_eq!(
            agent_config_env(&repo, Some("2")),
            [
                pair("GIT_CONFIG_COUNT", "3"),
                pair("GIT_CONFIG_KEY_2", "index.skipHash"),
                pair("GIT_CONFIG_VALUE_2", "true"),
            ]
        );
        assert_eq!(agent_config_env(&repo, Some("two")), []);
        git(&repo, &["config", "index.skipHash", "false"]);
        assert_eq!(agent_config_env(&repo, None), []);
    }

    #[test]
    fn parses_porcelain_status() {
        let out = b"M  a.rs\0 M b c.rs\0R  new.rs\0old.rs\0?? dir/\0";
        assert_eq!(parse_status(out), ["a.rs", "b c.rs", "new.rs", "dir/"]);
        assert!(parse_status(b"").is_empty());
    }

    #[test]
    fn parses_porcelain_list() {
        let text = "worktree /r\nHEAD abc\nbranch refs/heads/main\n\nworktree /w/T1\nHEAD def\ndetached\nlocked because\n\nworktree /w/T2\nHEAD 123\nbranch refs/heads/orch/T2\nprunable gitdir file points to non-existent location\n";
        let list = parse_list(text);
        assert_eq!(list.len(), 3);
        assert_eq!(list[0].branch.as_deref(), Some("main"));
        assert!(list[1].locked && list[1].branch.is_none());
        assert!(list[2].prunable);
        assert_eq!(list[2].branch.as_deref(), Some("orch/T2"));
    }
}

/// The git folders a linked worktree's own commands write to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitDirs {
    /// Its admin folder, `<common>/worktrees/<name>/` (index, HEAD, logs of HEAD).
    pub admin: PathBuf,
    /// The git folder every worktree shares (objects, refs, config).
    pub common: PathBuf,
    /// Refs are kept in `<common>/reftable/` (`extensions.refStorage`), not
    /// one file each under `<common>/refs/`.
    pub reftable: bool,
}

/// Returns the git folders of the worktree at `worktree`.
pub fn git_dirs(worktree: &Path) -> Result<GitDirs, GitError> {
    let repo = Repository::open(worktree).map_err(GitError::git(worktree))?;
    let common = repo.commondir().to_owned();
    Ok(GitDirs {
        admin: repo.path().to_owned(),
        reftable: common.join("reftable").is_dir(),
        common,
    })
}
