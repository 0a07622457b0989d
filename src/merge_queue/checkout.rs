//! Moving a checked-out target: the worktree that has the target branch
//! checked out (often the user's own checkout) is brought from the head a
//! merge was built on to the merged commit, under git's own rule for moving
//! a checked-out branch, and a move cut short is finished on the next try.
//!
//! The rule (what `git merge --ff-only` and `git read-tree -m -u` apply,
//! plus ignored files): only the paths the update changes matter. Such a
//! path that is modified (staged or not, assume-unchanged and
//! skip-worktree entries included) blocks the move, and so does an
//! untracked *or ignored* file the update would write over (git itself
//! treats ignored files as expendable and would replace them: a user's
//! ignored `config.local` must not be), or anything left in a folder the
//! update replaces with a file. Every other local change is let be and
//! carried. [`blockers`] names every path in the way.
//!
//! [`fast_forward`] checks with [`blockers`], then writes the paths the
//! update changes, and only those, into the index and the files: itself
//! when they are regular files and nothing could make git write them
//! differently ([`in_process`], under git's index lock and in git's order),
//! otherwise in one git command: `git checkout --no-overlay <to>` of those
//! paths, read on stdin
//! (a path `to` deletes is removed, and a folder it empties goes; a path
//! under another changed path, a file on one side and a folder on the
//! other, is covered by that path). The index's other entries and the
//! cached tree ids of the folders not touched stay as they are: the cost
//! is one read and one write of the index, where `read-tree -m -u` walked
//! both commits' whole trees and rebuilt the tree cache. Then the branch
//! moves by compare-and-swap from `from`; if it moved meanwhile, the same
//! paths are written back from `from` (unless something new is in their
//! way, then the checkout is left as it is).
//!
//! The check reads the index in-process ([`IndexView`]): gix-index reads
//! it without checking its hash, as git does, and the stat data settle
//! the files nobody touched; a file they do not settle is compared by
//! content, by libgit2 for a small index and by asking git for a large
//! one. (Writing in-process with libgit2's checkout was tried and dropped,
//! docs/merge.md: it writes the files before it takes the index's lock, so
//! a `git add` run meanwhile is undone; it rewrites files in place, so a
//! kill leaves one half-written and a hard-linked copy changes too; and it
//! matches paths without regard to case under `core.ignorecase`. The
//! in-process write now does none of these.)
//!
//! `checkout` of paths does not check again what it overwrites, where
//! `read-tree` refused anything in the way itself; the check before it is
//! what keeps a person's work. So nothing is between the two: git is
//! started first and waits for its pathspecs on stdin (it reads them
//! before it reads the index or takes its lock), the check runs, and git
//! gets them at once. An edit saved in the milliseconds between the check
//! and git's write of that file is overwritten, as it was between
//! `read-tree`'s own check and its write. No way
//! was found for git itself to refuse there: `git apply --index` of the
//! diff re-checks part of the rule (a file where it creates one, an
//! unstaged edit) but applies its hunks over a staged edit, finds a folder
//! or a file in the way only half-way through writing, and costs a `git
//! diff-tree` more. Git's `post-checkout` hook is turned off for the
//! write, as `read-tree` ran none. A sparse checkout is moved with `git
//! read-tree -m -u` as before, which writes only what its patterns let
//! through (a path whose stale stat data alone makes `read-tree` refuse is
//! refreshed, `git add --refresh` of the changed paths, and it runs once
//! more).
//!
//! `checkout.json` in the state dir journals a move from before anything
//! can be written (the in-process write: naming orch itself, before it
//! takes the index's lock; `checkout` of paths: once started, naming it,
//! before it has its pathspecs; `read-tree`: before it starts, then naming
//! it) until the branch has moved. A move cut
//! short (orch and its git child killed, the machine stopped, git failing
//! half-way) leaves it behind; [`resume`] then finishes the move: each path
//! the update changes holds the old content, the new one (whichever of the
//! index and the file git had written), or something a person wrote since.
//! Only when no path holds a person's change are the paths written and the
//! branch moved, so nothing anyone wrote is overwritten; otherwise merging
//! waits and names them. Git itself runs in a process group of its own
//! (`git::cmd`), so a terminal's Ctrl-C never cuts it short.

use std::collections::BTreeSet;
use std::ops::Bound;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use git2::{ObjectType, Oid, Repository};
use serde::{Deserialize, Serialize};

use crate::git::cmd::{self, CommandError};
use crate::git::{GitError, refs, tree};
use crate::state::StateDir;

use super::outcome::MergeError;

mod in_process;
mod index_view;

use index_view::IndexView;

/// A path whose local state stops the target's checkout from moving.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocker {
    pub path: String,
    pub why: InTheWay,
}

/// Why a path blocks the move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InTheWay {
    /// Tracked, changed by the update, and modified locally (staged or not).
    Modified,
    /// Not tracked, and the update would write a file there.
    Untracked,
    /// Ignored, and the update would write a file there.
    Ignored,
    /// A person changed it while an earlier move was cut short.
    ChangedMeanwhile,
}

impl std::fmt::Display for InTheWay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            InTheWay::Modified => "modified",
            InTheWay::Untracked => "untracked",
            InTheWay::Ignored => "ignored",
            InTheWay::ChangedMeanwhile => "changed since",
        })
    }
}

/// Renders blockers as `` `a` (modified), `b` (ignored) ``, every path in full.
pub fn describe(blockers: &[Blocker]) -> String {
    blockers
        .iter()
        .map(|b| format!("`{}` ({})", b.path, b.why))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `checkout.json`: a move of a checked-out target under way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Journal {
    pub checkout: PathBuf,
    pub target: String,
    pub from: String,
    pub to: String,
    /// The process writing the checkout, from its start until the paths
    /// are written: the git that writes them, or orch itself when it
    /// writes in-process (a lock on the index left by a kill is then its
    /// to remove; one taken after the write is someone else's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git: Option<GitProcess>,
}

/// A process, named so that a reused pid is not taken for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GitProcess {
    pub pid: u32,
    /// Its start time (`/proc/<pid>/stat`), when known.
    pub ticks: Option<u64>,
}

/// How a move ended.
#[derive(Debug)]
pub enum Forwarded {
    /// The checkout and the branch are at the new commit.
    Moved,
    /// The branch moved meanwhile (someone committed): the checkout was put
    /// back and nothing moved.
    TargetMoved,
    /// Something is in the way; nothing changed.
    Refused(Refusal),
    /// Git was killed half-way and the move cannot be finished yet.
    Stuck(Stuck),
}

/// Why the checkout was not moved.
#[derive(Debug)]
pub enum Refusal {
    /// Paths in the way, found right before the write.
    InTheWay(Vec<Blocker>),
    /// Git refused to update a sparse checkout (`git read-tree -m -u`).
    Git(CommandError),
}

/// What [`resume`] found and did.
#[derive(Debug)]
pub enum Resumed {
    /// No move was cut short.
    Nothing,
    /// A move cut short was finished: the branch is at `to`.
    Completed { to: String },
    /// The branch had moved elsewhere; the journal was dropped.
    Abandoned,
    /// It cannot be finished now.
    Waiting(Stuck),
}

/// Why a move cut short cannot be finished yet.
#[derive(Debug, thiserror::Error)]
pub enum Stuck {
    #[error("the process (pid {pid}) writing `{}` for the move is still running", checkout.display())]
    GitRunning { checkout: PathBuf, pid: u32 },
    #[error("`{}` is locked by a git process orch does not know; remove the file if no git runs there", lock.display())]
    Locked { lock: PathBuf },
    #[error(
        "moving `{}` to `{to}` was cut short, and these paths changed since: {}; commit, revert or move them, and merging finishes the move",
        checkout.display(),
        describe(blockers)
    )]
    Changed {
        checkout: PathBuf,
        to: String,
        blockers: Vec<Blocker>,
    },
}

fn git_err(path: &Path) -> impl FnOnce(git2::Error) -> MergeError + '_ {
    move |e| MergeError::Git(GitError::git(path)(e))
}

pub(super) fn journal_err(path: &Path) -> impl FnOnce(std::io::Error) -> MergeError + '_ {
    move |source| MergeError::Journal {
        path: path.to_owned(),
        source,
    }
}

/// Returns every path that stops `checkout` from moving from `from` to `to`.
///
/// Only the paths the update changes are looked at: their index entries
/// and whether their files differ from them ([`IndexView`]: the stat data
/// first, read in-process, then libgit2 or git comparing content). A
/// folder where the update writes a file is in the way only for what it
/// holds beyond the tracked files the update deletes (each checked as a
/// path of its own), as git has it.
pub fn blockers(checkout: &Path, from: Oid, to: Oid) -> Result<Vec<Blocker>, MergeError> {
    let repo = Repository::open(checkout).map_err(git_err(checkout))?;
    let diff = tree::commit_changes(&repo, from, to).map_err(git_err(checkout))?;
    blockers_of(&repo, checkout, &diff)
}

/// Returns every path that stops `checkout` from taking the changes `diff`.
fn blockers_of(
    repo: &Repository,
    checkout: &Path,
    diff: &[tree::Change],
) -> Result<Vec<Blocker>, MergeError> {
    let deleted = deleted_paths(diff);
    let mut asked: Vec<PathBuf> = Vec::new();
    let mut file_dirs = BTreeSet::new();
    for change in diff {
        let path = change.path.as_path();
        asked.push(path.to_owned());
        if change.new.is_some() {
            for dir in path.ancestors().skip(1) {
                if dir.as_os_str().is_empty() || !file_dirs.insert(dir.to_owned()) {
                    break;
                }
            }
        }
    }
    file_dirs.retain(|dir| {
        checkout
            .join(dir)
            .symlink_metadata()
            .is_ok_and(|m| !m.is_dir())
    });
    asked.extend(file_dirs.iter().cloned());
    let index = IndexView::read(repo, checkout, &asked)?;
    let in_the_way = |path: &Path| match index.entry(path) {
        Some(_) => InTheWay::Modified,
        None => untracked_or_ignored(repo, path),
    };
    let mut out = Vec::new();
    let mut seen_dirs = BTreeSet::new();
    for change in diff {
        let path = change.path.as_path();
        let in_from = change.old.is_some();
        let in_to = change.new.is_some();
        let tracked = index.entry(path);
        let why = match (tracked, change.old) {
            (Some((id, mode)), Some(old)) if id != old.id || mode != old.mode as u32 => {
                Some(InTheWay::Modified)
            }
            (Some(_), None) => Some(InTheWay::Modified),
            (Some((id, _)), Some(_)) => {
                let modified = index.modified(path)
                    || (index.flagged(path)
                        && content_id(checkout, path)?.is_some_and(|now| now != id));
                modified.then_some(InTheWay::Modified)
            }
            (None, _) if in_from => Some(InTheWay::Modified),
            (None, _) if is_dir(checkout, path) => {
                let held = held_beyond(checkout, path, &deleted);
                let staged = index.entries_under(path).filter(|p| !deleted.contains(*p));
                let mut paths: BTreeSet<PathBuf> = held.into_iter().collect();
                paths.extend(staged.map(Path::to_owned));
                out.extend(paths.into_iter().map(|p| Blocker {
                    path: p.to_string_lossy().into_owned(),
                    why: in_the_way(&p),
                }));
                None
            }
            (None, _) => on_disk(checkout, path).then(|| untracked_or_ignored(repo, path)),
        };
        if let Some(why) = why {
            out.push(Blocker {
                path: path.to_string_lossy().into_owned(),
                why,
            });
            continue;
        }
        // A file the update adds under a folder that is a file here, which
        // the update does not delete.
        if in_to && tracked.is_none() {
            for dir in path.ancestors().skip(1) {
                if dir.as_os_str().is_empty() || !seen_dirs.insert(dir.to_owned()) {
                    break;
                }
                if file_dirs.contains(dir) && !deleted.contains(dir) {
                    out.push(Blocker {
                        path: dir.to_string_lossy().into_owned(),
                        why: in_the_way(dir),
                    });
                }
            }
        }
    }
    Ok(out)
}

/// Returns the paths the update deletes.
fn deleted_paths(diff: &[tree::Change]) -> BTreeSet<&Path> {
    diff.iter()
        .filter(|c| c.old.is_some() && c.new.is_none())
        .map(|c| c.path.as_path())
        .collect()
}

fn is_dir(checkout: &Path, path: &Path) -> bool {
    checkout
        .join(path)
        .symlink_metadata()
        .is_ok_and(|m| m.is_dir())
}

/// Returns what the folder `dir` of the checkout holds beyond the paths in
/// `accounted`: its files and symbolic links (not followed), at any depth,
/// and a folder with nothing of `accounted` under it as one path (as `git
/// status` names an untracked folder), `dir` itself included; an empty
/// folder holds nothing. A folder that cannot be read counts as held whole.
fn held_beyond(checkout: &Path, dir: &Path, accounted: &BTreeSet<&Path>) -> Vec<PathBuf> {
    let holds_accounted = |folder: &Path| {
        accounted
            .range::<Path, _>((Bound::Excluded(folder), Bound::Unbounded))
            .next()
            .is_some_and(|p| p.starts_with(folder))
    };
    let mut out = Vec::new();
    let mut folders = vec![dir.to_owned()];
    while let Some(folder) = folders.pop() {
        if !holds_accounted(&folder) {
            let empty =
                std::fs::read_dir(checkout.join(&folder)).is_ok_and(|mut r| r.next().is_none());
            if !empty {
                out.push(folder);
            }
            continue;
        }
        let Ok(read) = std::fs::read_dir(checkout.join(&folder)) else {
            out.push(folder);
            continue;
        };
        for entry in read {
            let Ok(entry) = entry else {
                out.push(folder.clone());
                continue;
            };
            let path = folder.join(entry.file_name());
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                folders.push(path);
            } else if !accounted.contains(path.as_path()) {
                out.push(path);
            }
        }
    }
    out
}

fn on_disk(checkout: &Path, path: &Path) -> bool {
    checkout.join(path).symlink_metadata().is_ok()
}

fn untracked_or_ignored(repo: &Repository, path: &Path) -> InTheWay {
    if repo.status_should_ignore(path).unwrap_or(false) {
        InTheWay::Ignored
    } else {
        InTheWay::Untracked
    }
}

/// Moves the checked-out `target` in `checkout` from `from` to `to`:
/// checks that nothing is in the way ([`blockers`]), writes the paths the
/// update changes into the index and the files (`git checkout
/// --no-overlay` of those paths), then moves the branch by
/// compare-and-swap. The journal covers the whole move.
pub fn fast_forward(
    state_dir: &StateDir,
    checkout: &Path,
    target: &str,
    from: Oid,
    to: Oid,
    message: &str,
) -> Result<Forwarded, MergeError> {
    let repo = Repository::open(checkout).map_err(git_err(checkout))?;
    let path = state_dir.checkout_journal();
    let mut journal = Journal {
        checkout: checkout.to_owned(),
        target: target.to_owned(),
        from: from.to_string(),
        to: to.to_string(),
        git: None,
    };
    // `checkout` of paths starts first, before the paths are known: it
    // reads its pathspecs on stdin before it reads the index or takes its
    // lock, so it waits there while the paths are found and checked, and
    // gets them right after: git does not check again what it overwrites
    // (`read-tree` did), and nothing but a pipe's write is between the
    // check and the write. The journal is written once, naming it
    // ([`start`]): killed before it has its pathspecs, it writes nothing.
    // `read-tree` starts at once, so in a sparse checkout it starts after
    // the check, the journal written before.
    // The branch locked by another git: wait before anything is written.
    let lock = branch_lock(&repo, target);
    if lock.exists() {
        return Ok(Forwarded::Stuck(Stuck::Locked { lock }));
    }
    let sparse = sparse(&repo);
    let own = !sparse && writes_in_process(&repo, checkout);
    let mut git = if sparse || own {
        None
    } else {
        let paths = Write::Paths(Vec::new());
        Some(start(state_dir, checkout, &mut journal, &paths, from, to)?)
    };
    let diff = match tree::commit_changes(&repo, from, to) {
        Ok(diff) => diff,
        Err(e) => {
            abandon(git, &path)?;
            return Err(git_err(checkout)(e));
        }
    };
    let write = if sparse {
        Write::ReadTree
    } else {
        Write::Paths(pathspecs(&diff))
    };
    if write.is_empty()
        && let Some(git) = git.take()
    {
        git.kill();
        journal.git = None;
    }
    // The in-process write journals itself, just before it takes the
    // index's lock.
    if journal.git.is_none() && (!own || write.is_empty()) {
        crate::fsio::write_json(&path, &journal).map_err(journal_err(&path))?;
    }
    match blockers_of(&repo, checkout, &diff) {
        Ok(in_the_way) if in_the_way.is_empty() => {}
        checked => {
            abandon(git, &path)?;
            return Ok(Forwarded::Refused(Refusal::InTheWay(checked?)));
        }
    }
    let mut by_git = !write.is_empty();
    if by_git && own {
        match write_in_process(state_dir, &repo, checkout, &mut journal, &diff)? {
            Ok(written) => by_git = !written,
            Err(ended) => return Ok(ended),
        }
    }
    if by_git
        && let Some(ended) = write_with_git(
            state_dir,
            checkout,
            &mut journal,
            &write,
            git.take(),
            from,
            to,
        )?
    {
        return Ok(ended);
    }
    // The write is done: a lock on the index from now on is not its
    // writer's, whatever stops the move from here (a kill, the branch
    // locked), and is not removed on its behalf.
    if journal.git.take().is_some() {
        crate::fsio::write_json(&path, &journal).map_err(journal_err(&path))?;
    }
    #[cfg(test)]
    tests::BEFORE_SWAP.with_borrow(|hook| hook.as_ref().map(|hook| hook()));
    let moved = match move_branch(&repo, target, from, to, message) {
        Ok(moved) => moved,
        // Locked since the check above: the journal stays, and the move
        // is finished once the lock is gone ([`resume`]).
        Err(_) if lock.exists() => return Ok(Forwarded::Stuck(Stuck::Locked { lock })),
        Err(e) => return Err(e),
    };
    if !moved {
        put_back(&repo, checkout, &diff, &write, from, to)?;
    }
    crate::fsio::remove_if_present(&path).map_err(journal_err(&path))?;
    Ok(if moved {
        Forwarded::Moved
    } else {
        Forwarded::TargetMoved
    })
}

/// Returns whether the checkout's paths may be written in-process
/// ([`in_process`]) as far as its configuration says.
fn writes_in_process(repo: &Repository, checkout: &Path) -> bool {
    #[cfg(test)]
    if !tests::IN_PROCESS.get() {
        return false;
    }
    match in_process::unsuited(repo) {
        None => true,
        Some(why) => {
            tracing::debug!(checkout = %checkout.display(), %why, "git writes the checkout");
            false
        }
    }
}

/// Writes the changed paths in-process, the journal naming orch itself
/// as the writer (its lock on the index is orch's to remove after a
/// kill); returns whether it wrote them (not when it declined: git writes
/// them), or how the move ended when the write failed half-way.
fn write_in_process(
    state_dir: &StateDir,
    repo: &Repository,
    checkout: &Path,
    journal: &mut Journal,
    diff: &[tree::Change],
) -> Result<Result<bool, Forwarded>, MergeError> {
    let path = state_dir.checkout_journal();
    let pid = std::process::id();
    journal.git = Some(GitProcess {
        pid,
        ticks: crate::process::start_ticks(pid),
    });
    crate::fsio::write_json(&path, journal).map_err(journal_err(&path))?;
    match in_process::write(repo, checkout, diff) {
        in_process::Written::Done => {
            #[cfg(test)]
            tests::WRITTEN_IN_PROCESS.set(tests::WRITTEN_IN_PROCESS.get() + 1);
            Ok(Ok(true))
        }
        in_process::Written::Declined(why) => {
            tracing::debug!(checkout = %checkout.display(), %why, "git writes the checkout");
            Ok(Ok(false))
        }
        in_process::Written::Failed(e) => {
            finish_failed_write(state_dir, checkout, journal, &e).map(Err)
        }
    }
}

/// Gives up a move before anything was written: kills its git, still
/// waiting for its pathspecs, and removes the journal.
fn abandon(git: Option<Running>, journal: &Path) -> Result<(), MergeError> {
    if let Some(git) = git {
        git.kill();
    }
    crate::fsio::remove_if_present(journal).map_err(journal_err(journal))
}

/// Writes the paths with git ([`Write::Paths`], `git` started and waiting
/// for them, or [`Write::ReadTree`]); returns how the move ended when it
/// ended there (git refused, failed or was killed).
fn write_with_git(
    state_dir: &StateDir,
    checkout: &Path,
    journal: &mut Journal,
    write: &Write,
    git: Option<Running>,
    from: Oid,
    to: Oid,
) -> Result<Option<Forwarded>, MergeError> {
    let started = match git {
        Some(git) => git,
        None => start(state_dir, checkout, journal, write, from, to)?,
    };
    let mut output = match finish_write(state_dir, checkout, started, write)? {
        Ok(output) => output,
        Err(cut) => return Ok(Some(cut)),
    };
    if !output.status.success() {
        if let Write::Paths(_) = write {
            let why = format!(
                "git exited with {:?}: {}",
                output.status.code(),
                String::from_utf8_lossy(&output.stderr).trim()
            );
            return finish_failed_write(state_dir, checkout, journal, &why).map(Some);
        }
        if refresh_changed(checkout, from, to)? {
            let again = start(state_dir, checkout, journal, write, from, to)?;
            output = match finish_write(state_dir, checkout, again, write)? {
                Ok(output) => output,
                Err(cut) => return Ok(Some(cut)),
            };
        }
    }
    if output.status.success() {
        return Ok(None);
    }
    let path = state_dir.checkout_journal();
    crate::fsio::remove_if_present(&path).map_err(journal_err(&path))?;
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    Ok(Some(Forwarded::Refused(Refusal::Git(CommandError {
        argv: write.argv(from, to),
        dir: checkout.to_owned(),
        code: output.status.code(),
        stderr,
    }))))
}

/// How the index and the files of a checkout are brought from one commit
/// to another.
#[derive(Debug)]
enum Write {
    /// `git checkout --no-overlay <commit>` of these pathspecs (read on
    /// stdin), which writes their index entries and files from the commit
    /// and removes those it does not have: the index's other entries, and
    /// its cache of the tree ids of the folders not touched, stay as they
    /// are. The `post-checkout` hook is turned off (`read-tree` ran none),
    /// and so is the preload of the index (threads that go through every
    /// entry to `lstat` those the pathspecs match, 2 ms of 22 at 50,000
    /// files, for nothing: the paths are written whatever their stat data).
    /// Should git read no pathspec at all (orch killed while it waits for
    /// them), `--no-overlay` makes it refuse ("cannot be used with
    /// switching branches", exit 128) rather than switch `HEAD` to `<to>`.
    Paths(Vec<PathBuf>),
    /// `git read-tree -m -u <from> <to>`, in a sparse checkout, where it
    /// writes only what the sparse patterns let through (`checkout` of
    /// paths would write them all).
    ReadTree,
}

impl Write {
    /// Returns the arguments of the git command that writes `to` over `from`.
    fn argv(&self, from: Oid, to: Oid) -> Vec<String> {
        match self {
            Write::Paths(_) => [
                "-c",
                "core.hooksPath=/dev/null",
                "-c",
                "core.preloadIndex=false",
                "--literal-pathspecs",
                "checkout",
                "--quiet",
                "--no-overlay",
                &to.to_string(),
                "--pathspec-from-file=-",
                "--pathspec-file-nul",
            ]
            .map(str::to_owned)
            .to_vec(),
            Write::ReadTree => ["read-tree", "-m", "-u", &from.to_string(), &to.to_string()]
                .map(str::to_owned)
                .to_vec(),
        }
    }

    /// Returns what git reads on stdin: the pathspecs, each ended by a NUL.
    fn stdin(&self) -> Vec<u8> {
        match self {
            Write::Paths(paths) => paths
                .iter()
                .flat_map(|p| p.as_os_str().as_bytes().iter().copied().chain([0]))
                .collect(),
            Write::ReadTree => Vec::new(),
        }
    }

    /// Returns whether there is nothing to write.
    fn is_empty(&self) -> bool {
        matches!(self, Write::Paths(paths) if paths.is_empty())
    }
}

/// Returns whether the checkout is sparse (`core.sparseCheckout`, or a
/// sparse-checkout file left in its git folder).
fn sparse(repo: &Repository) -> bool {
    repo.path().join("info/sparse-checkout").exists()
        || repo
            .config()
            .and_then(|c| c.get_bool("core.sparseCheckout"))
            .unwrap_or(false)
}

/// Returns pathspecs covering exactly the paths `diff` changes: each path,
/// except one under another changed path (a file on one side, a folder on
/// the other), which that path covers. `checkout` of a file's deletion and
/// of the folder that replaces it, as two pathspecs, stops at the first
/// (its entry is gone once the folder's are read): "did not match".
fn pathspecs(diff: &[tree::Change]) -> Vec<PathBuf> {
    let changed: BTreeSet<&Path> = diff.iter().map(|c| c.path.as_path()).collect();
    diff.iter()
        .map(|c| c.path.as_path())
        .filter(|p| !p.ancestors().skip(1).any(|a| changed.contains(a)))
        .map(Path::to_owned)
        .collect()
}

/// Starts the write's git in the checkout, and names it in the journal
/// before it has its pathspecs: it writes nothing before it has read them
/// all, so a kill of both at any moment leaves no lock of git's that the
/// journal does not own.
fn start(
    state_dir: &StateDir,
    checkout: &Path,
    journal: &mut Journal,
    write: &Write,
    from: Oid,
    to: Oid,
) -> Result<Running, MergeError> {
    let path = &state_dir.checkout_journal();
    let git = Running::spawn(checkout, write.argv(from, to))?;
    journal.git = Some(GitProcess {
        pid: git.id(),
        ticks: crate::process::start_ticks(git.id()),
    });
    crate::fsio::write_json(path, journal).map_err(journal_err(path))?;
    Ok(git)
}

/// Gives the write's git its pathspecs and waits for it; when git itself
/// is killed half-way, finishes what it started and returns how the move
/// ended instead of git's output.
fn finish_write(
    state_dir: &StateDir,
    checkout: &Path,
    git: Running,
    write: &Write,
) -> Result<Result<std::process::Output, Forwarded>, MergeError> {
    let output = git.finish(checkout, &write.stdin())?;
    if output.status.code().is_none() {
        // Git itself was killed half-way: finish what it started.
        return Ok(Err(ended_by(resume(checkout, state_dir)?)));
    }
    Ok(Ok(output))
}

/// Returns how a move ended, from what [`resume`] did with it.
fn ended_by(resumed: Resumed) -> Forwarded {
    match resumed {
        Resumed::Completed { .. } => Forwarded::Moved,
        Resumed::Waiting(stuck) => Forwarded::Stuck(stuck),
        Resumed::Nothing | Resumed::Abandoned => Forwarded::TargetMoved,
    }
}

/// Finishes a move whose write of paths failed (`why`): it may have
/// written some files before it stopped (a full disk, a folder it may not
/// write), so the move is finished as one cut short would be. The writer
/// (git, or orch in-process) removed its lock: a lock there now is
/// another git's.
fn finish_failed_write(
    state_dir: &StateDir,
    checkout: &Path,
    journal: &mut Journal,
    why: &dyn std::fmt::Display,
) -> Result<Forwarded, MergeError> {
    tracing::warn!(
        checkout = %checkout.display(),
        %why,
        "writing the paths of the target's checkout failed; finishing the move as one cut short"
    );
    let path = state_dir.checkout_journal();
    journal.git = None;
    crate::fsio::write_json(&path, journal).map_err(journal_err(&path))?;
    Ok(ended_by(resume(checkout, state_dir)?))
}

/// Puts the paths the update changed back to `from` after the branch
/// moved elsewhere between the write and the compare-and-swap, unless
/// something new is in their way (then the checkout is left as it is: its
/// files show as local changes, and nothing anyone wrote is lost).
fn put_back(
    repo: &Repository,
    checkout: &Path,
    diff: &[tree::Change],
    write: &Write,
    from: Oid,
    to: Oid,
) -> Result<(), MergeError> {
    let back: Vec<tree::Change> = diff
        .iter()
        .map(|c| tree::Change {
            path: c.path.clone(),
            old: c.new,
            new: c.old,
        })
        .collect();
    let in_the_way = blockers_of(repo, checkout, &back)?;
    if !in_the_way.is_empty() {
        tracing::warn!(
            checkout = %checkout.display(),
            paths = %describe(&in_the_way),
            "the target moved while its checkout was updated; leaving the checkout as it is"
        );
        return Ok(());
    }
    match write {
        Write::Paths(paths) => write_paths(checkout, from, paths)?,
        Write::ReadTree => {
            cmd::run(checkout, write.argv(to, from))?;
        }
    }
    Ok(())
}

/// Writes `paths` (pathspecs) of `commit` into the checkout's index and
/// files ([`Write::Paths`]), without a journal of its own.
fn write_paths(checkout: &Path, commit: Oid, paths: &[PathBuf]) -> Result<(), MergeError> {
    if paths.is_empty() {
        return Ok(());
    }
    let write = Write::Paths(paths.to_vec());
    let args = write.argv(Oid::ZERO_SHA1, commit);
    let output = Running::spawn(checkout, args.clone())?.finish(checkout, &write.stdin())?;
    if !output.status.success() {
        return Err(MergeError::from(CommandError {
            argv: args,
            dir: checkout.to_owned(),
            code: output.status.code(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }));
    }
    Ok(())
}

/// A git command that writes the checkout, started and waiting for its
/// stdin.
struct Running {
    child: std::process::Child,
    args: Vec<String>,
    started: std::time::Instant,
}

impl Running {
    fn spawn(checkout: &Path, args: Vec<String>) -> Result<Running, MergeError> {
        use std::process::Stdio;
        let started = std::time::Instant::now();
        let child = cmd::command(checkout)
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| command_error(checkout, &args, None, e.to_string()))?;
        Ok(Running {
            child,
            args,
            started,
        })
    }

    fn id(&self) -> u32 {
        self.child.id()
    }

    /// Gives git its stdin and waits for it; logs its argv, folder and
    /// duration as `git::cmd` does.
    fn finish(mut self, checkout: &Path, stdin: &[u8]) -> Result<std::process::Output, MergeError> {
        use std::io::Write as _;
        if let Some(mut pipe) = self.child.stdin.take() {
            // A git that ends early closes the pipe; its exit says why.
            let _ = pipe.write_all(stdin);
        }
        let output = self.child.wait_with_output();
        tracing::debug!(argv = ?self.args, cwd = %checkout.display(), elapsed = ?self.started.elapsed(), "git");
        output.map_err(|e| command_error(checkout, &self.args, None, e.to_string()))
    }

    /// Kills a git that still waits for its pathspecs: it has read and
    /// locked nothing yet, and writes nothing.
    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Refreshes the index's stat data of the tracked paths the update
/// changes, and only those (`git add --refresh`): `read-tree` refuses a
/// path whose stat data is stale even when its content is not changed, and
/// a refresh of the whole index is a pass over every file of the user's
/// checkout. Returns whether there was any such path to refresh.
fn refresh_changed(checkout: &Path, from: Oid, to: Oid) -> Result<bool, MergeError> {
    let repo = Repository::open(checkout).map_err(git_err(checkout))?;
    let diff = tree::commit_changes(&repo, from, to).map_err(git_err(checkout))?;
    let paths: Vec<PathBuf> = diff.into_iter().map(|c| c.path).collect();
    let index = IndexView::read(&repo, checkout, &paths)?;
    let tracked: Vec<String> = paths
        .iter()
        .filter(|p| index.entry(p).is_some())
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if tracked.is_empty() {
        return Ok(false);
    }
    for chunk in tracked.chunks(500) {
        let mut args = vec!["--literal-pathspecs", "add", "--refresh", "--"];
        args.extend(chunk.iter().map(String::as_str));
        // A path git cannot refresh (modified after all) is refused by the
        // `read-tree` that follows, which names it.
        let _ = cmd::run(checkout, &args);
    }
    Ok(true)
}

fn command_error(dir: &Path, args: &[String], code: Option<i32>, stderr: String) -> MergeError {
    MergeError::Git(GitError::Command(CommandError {
        argv: args.to_vec(),
        dir: dir.to_owned(),
        code,
        stderr,
    }))
}

/// Moves `refs/heads/<target>` from `from` to `to` by compare-and-swap,
/// through `repo` opened at the checkout (libgit2 then logs the move in
/// that checkout's `HEAD` reflog too, as `git update-ref` there would);
/// `false` when the branch is no longer at `from`. A branch still at
/// `from` that could not be moved (its lock file held) is an error.
fn move_branch(
    repo: &Repository,
    target: &str,
    from: Oid,
    to: Oid,
    message: &str,
) -> Result<bool, MergeError> {
    let refname = format!("refs/heads/{target}");
    let checkout = repo.workdir().unwrap_or(repo.path());
    match repo.reference_matching(&refname, to, true, from, message) {
        Ok(_) => Ok(true),
        Err(e) => {
            let now = refs::tip(repo, target).map_err(git_err(checkout))?;
            if now == Some(from) {
                Err(git_err(checkout)(e))
            } else {
                Ok(now == Some(to))
            }
        }
    }
}

/// Finishes a move of the target's checkout that was cut short, if the
/// journal says one was.
pub fn resume(repo: &Path, state_dir: &StateDir) -> Result<Resumed, MergeError> {
    let path = state_dir.checkout_journal();
    let Some(journal) = crate::fsio::read_json::<Journal>(&path).map_err(journal_err(&path))?
    else {
        return Ok(Resumed::Nothing);
    };
    let drop_journal = || crate::fsio::remove_if_present(&path).map_err(journal_err(&path));
    let (Some(from), Some(to)) = (refs::parse_oid(&journal.from), refs::parse_oid(&journal.to))
    else {
        drop_journal()?;
        return Ok(Resumed::Abandoned);
    };
    let checkout = &journal.checkout;
    if let Some(pid) = writer_running(&journal) {
        return Ok(Resumed::Waiting(Stuck::GitRunning {
            checkout: checkout.clone(),
            pid,
        }));
    }
    let head = refs::branch_tip(repo, &journal.target)?;
    if head == Some(to) {
        drop_journal()?;
        return Ok(Resumed::Completed {
            to: journal.to.clone(),
        });
    }
    if head != Some(from) || !checkout.is_dir() {
        tracing::warn!(checkout = %checkout.display(), "the target moved elsewhere after a move was cut short; leaving the checkout as it is");
        drop_journal()?;
        return Ok(Resumed::Abandoned);
    }
    let git = Repository::open(checkout).map_err(git_err(checkout))?;
    let lock = git.path().join("index.lock");
    if lock.exists() {
        // Our own git died holding the lock (it is gone, checked above).
        // A lock from a git orch did not start is not ours to remove, nor
        // one a process holds open now: a git that took it since (ours,
        // killed while it waited for its pathspecs, took none).
        if journal.git.is_none() || crate::process::holds_open(&lock) {
            return Ok(Resumed::Waiting(Stuck::Locked { lock }));
        }
        crate::fsio::remove_if_present(&lock).map_err(journal_err(&lock))?;
    }
    let branch_lock = branch_lock(&git, &journal.target);
    if branch_lock.exists() {
        if !own_branch_lock(&branch_lock, to, &path) {
            return Ok(Resumed::Waiting(Stuck::Locked { lock: branch_lock }));
        }
        crate::fsio::remove_if_present(&branch_lock).map_err(journal_err(&branch_lock))?;
    }
    let plan = finish_plan(&git, checkout, from, to)?;
    if !plan.changed.is_empty() {
        return Ok(Resumed::Waiting(Stuck::Changed {
            checkout: checkout.clone(),
            to: journal.to.clone(),
            blockers: plan.changed,
        }));
    }
    write_paths(checkout, to, &plan.write)?;
    let message = format!("orch: finish moving `{}` cut short", journal.target);
    if move_branch(&git, &journal.target, from, to, &message)? {
        drop_journal()?;
        Ok(Resumed::Completed {
            to: journal.to.clone(),
        })
    } else {
        drop_journal()?;
        Ok(Resumed::Abandoned)
    }
}

/// Returns the lock file of the branch `target` of `repo`.
pub(super) fn branch_lock(repo: &Repository, target: &str) -> PathBuf {
    repo.commondir().join(format!("refs/heads/{target}.lock"))
}

/// How soon after the last write of its journal orch's compare-and-swap
/// takes the branch's lock: nothing but the check or the write of the
/// changed paths is between them (milliseconds; this leaves room for a
/// loaded machine).
const OWN_LOCK_WITHIN: std::time::Duration = std::time::Duration::from_secs(10);

/// Returns whether the branch's `lock` is the one orch's compare-and-swap
/// of the move the `journal` file records (to `to`) left when a kill cut
/// it short (libgit2 takes it in orch's own process, and writes the new
/// commit into it only as it renames it): made no earlier than the
/// journal's last write and at most [`OWN_LOCK_WITHIN`] after it, empty or
/// holding `to`, and open in no process. A git at work on the branch
/// writes its own new commit there (not orch's), holding the lock open
/// while it does; but one stopped between preparing and committing its
/// update (a `reference-transaction` hook at work, `git update-ref
/// --stdin` between `prepare` and `commit`) holds a closed lock, empty for
/// a transaction that only verifies: the time is what tells that from
/// orch's. A lock older than the move is not orch's to remove either (a
/// git killed before, as `git` itself would say).
pub(super) fn own_branch_lock(lock: &Path, to: Oid, journal: &Path) -> bool {
    let made = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let held = std::fs::read(lock).map(|bytes| String::from_utf8_lossy(&bytes).trim().to_owned());
    let after = match (made(lock), made(journal)) {
        (Some(lock), Some(journal)) => lock.duration_since(journal).ok(),
        _ => None,
    };
    after.is_some_and(|after| after <= OWN_LOCK_WITHIN)
        && held.is_ok_and(|text| text.is_empty() || text == to.to_string())
        && !crate::process::holds_open(lock)
}

/// Returns the pid of the process the journal names as the checkout's
/// writer, while it still runs. Orch itself is not: its in-process write
/// ends before it does anything else, so a journal still naming it (the
/// git meant to write after a declined write never started) is a move
/// cut short.
fn writer_running(journal: &Journal) -> Option<u32> {
    let git = journal.git?;
    (git.pid != std::process::id()
        && git.ticks.is_some()
        && crate::process::is_same(git.pid, git.ticks, None)
        && !crate::process::is_zombie(git.pid))
    .then_some(git.pid)
}

/// What the next start would do with a move cut short ([`pending`]).
#[derive(Debug)]
pub enum Pending {
    /// No move was cut short, or the journal left has nothing to finish
    /// (the branch is at the new commit, or moved elsewhere).
    Nothing,
    /// The next start finishes the move.
    Finishes(Journal),
    /// It cannot be finished now; merging waits until it can.
    Waiting(Journal, Stuck),
}

/// Says, reading only, what [`resume`] would do on the next start with a
/// move cut short (`orch doctor`).
pub fn pending(repo: &Path, state_dir: &StateDir) -> Result<Pending, MergeError> {
    let path = state_dir.checkout_journal();
    let Some(journal) = crate::fsio::read_json::<Journal>(&path).map_err(journal_err(&path))?
    else {
        return Ok(Pending::Nothing);
    };
    let (Some(from), Some(to)) = (refs::parse_oid(&journal.from), refs::parse_oid(&journal.to))
    else {
        return Ok(Pending::Nothing);
    };
    let checkout = journal.checkout.clone();
    if let Some(pid) = writer_running(&journal) {
        let stuck = Stuck::GitRunning { checkout, pid };
        return Ok(Pending::Waiting(journal, stuck));
    }
    let head = refs::branch_tip(repo, &journal.target)?;
    if head != Some(from) || !checkout.is_dir() {
        return Ok(Pending::Nothing);
    }
    let git = Repository::open(&checkout).map_err(git_err(&checkout))?;
    let lock = git.path().join("index.lock");
    if lock.exists() && (journal.git.is_none() || crate::process::holds_open(&lock)) {
        return Ok(Pending::Waiting(journal, Stuck::Locked { lock }));
    }
    let lock = branch_lock(&git, &journal.target);
    if lock.exists() && !own_branch_lock(&lock, to, &path) {
        return Ok(Pending::Waiting(journal, Stuck::Locked { lock }));
    }
    let plan = finish_plan(&git, &checkout, from, to)?;
    if plan.changed.is_empty() {
        return Ok(Pending::Finishes(journal));
    }
    let stuck = Stuck::Changed {
        checkout,
        to: journal.to.clone(),
        blockers: plan.changed,
    };
    Ok(Pending::Waiting(journal, stuck))
}

/// What finishing a move cut short must do.
#[derive(Debug, Default)]
struct FinishPlan {
    /// Pathspecs of every path the update changes, to write from the new
    /// commit ([`pathspecs`]), when none holds a person's change.
    write: Vec<PathBuf>,
    /// Paths holding neither the old nor the new content: a person's.
    changed: Vec<Blocker>,
}

/// Returns the blob id of a file as git would store it (its clean filter
/// applied, so that a smudged file hashes to its blob).
fn hash_file(checkout: &Path, path: &Path) -> Result<Oid, MergeError> {
    let mut args: Vec<std::ffi::OsString> = vec!["hash-object".into(), "--".into()];
    args.push(path.as_os_str().to_owned());
    let text = cmd::stdout(checkout, &args)?;
    Ok(refs::parse_oid(text.trim()).unwrap_or(Oid::ZERO_SHA1))
}

/// Returns the blob id of what is at `path` in the checkout: a file's
/// content as git would store it, or a symbolic link's target; `None`
/// when nothing is there, [`Oid::ZERO_SHA1`] for a folder.
fn content_id(checkout: &Path, path: &Path) -> Result<Option<Oid>, MergeError> {
    let full = checkout.join(path);
    Ok(match full.symlink_metadata() {
        Ok(meta) if meta.is_file() => Some(hash_file(checkout, path)?),
        Ok(meta) if meta.file_type().is_symlink() => std::fs::read_link(&full).ok().and_then(|t| {
            Oid::hash_object(ObjectType::Blob, t.as_os_str().as_encoded_bytes()).ok()
        }),
        Ok(_) => Some(Oid::ZERO_SHA1),
        Err(_) => None,
    })
}

/// Returns whether the file at `path` holds the start of `new`'s content
/// (nothing, or more), as orch's own writer leaves a file a kill cut
/// between its creation and the end of its write: writing `new` there
/// loses nothing of it, whoever wrote it.
fn cut_while_written(repo: &Repository, checkout: &Path, path: &Path, new: tree::Side) -> bool {
    let full = checkout.join(path);
    let regular = [
        i32::from(git2::FileMode::Blob),
        i32::from(git2::FileMode::BlobExecutable),
    ];
    if !full.symlink_metadata().is_ok_and(|m| m.is_file()) || !regular.contains(&new.mode) {
        return false;
    }
    let (Ok(bytes), Ok(blob)) = (std::fs::read(&full), repo.find_blob(new.id)) else {
        return false;
    };
    blob.content().starts_with(&bytes)
}

fn finish_plan(
    repo: &Repository,
    checkout: &Path,
    from: Oid,
    to: Oid,
) -> Result<FinishPlan, MergeError> {
    let diff = tree::commit_changes(repo, from, to).map_err(git_err(checkout))?;
    let changed_paths: BTreeSet<&Path> = diff.iter().map(|c| c.path.as_path()).collect();
    let index = repo.index().map_err(git_err(checkout))?;
    let mut plan = FinishPlan::default();
    for change in &diff {
        let path = change.path.as_path();
        let staged = index.get_path(path, 0).map(|e| e.id);
        let id = |side: Option<tree::Side>| side.map_or(Oid::ZERO_SHA1, |s| s.id);
        let expected = [id(change.old), id(change.new)];
        let staged_ok = staged.is_none_or(|id| expected.contains(&id));
        // A folder where a file was or goes (the update's other side, half
        // written) holds nothing but paths the update changes, each checked
        // on its own.
        let content = match content_id(checkout, path)? {
            Some(id) if id.is_zero() && held_beyond(checkout, path, &changed_paths).is_empty() => {
                None
            }
            content => content,
        };
        let content_ok = match content {
            None => true,
            Some(id) => {
                (expected.contains(&id) && !id.is_zero())
                    || change
                        .new
                        .is_some_and(|new| cut_while_written(repo, checkout, path, new))
            }
        };
        if !(staged_ok && content_ok) {
            plan.changed.push(Blocker {
                path: path.to_string_lossy().into_owned(),
                why: InTheWay::ChangedMeanwhile,
            });
        }
    }
    if plan.changed.is_empty() {
        // A pathspec matching nothing, in the index or in `to`, fails the
        // whole `checkout`: a path deleted already (the index written
        // before the kill) has nothing left to write.
        let to_tree = repo
            .find_commit(to)
            .and_then(|c| c.tree())
            .map_err(git_err(checkout))?;
        let under = |path: &Path| {
            let mut prefix = path.as_os_str().as_bytes().to_vec();
            prefix.push(b'/');
            index.find_prefix(prefix.as_slice()).is_ok()
        };
        plan.write = pathspecs(&diff)
            .into_iter()
            .filter(|p| {
                to_tree.get_path(p).is_ok()
                    || (0..=3).any(|stage| index.get_path(p, stage).is_some())
                    || under(p)
            })
            .collect();
    }
    Ok(plan)
}

#[cfg(test)]
pub(super) mod tests {
    use super::index_view::tests::{FIRST_WAY, each_way};
    use super::*;
    use std::cell::Cell;

    thread_local! {
        /// Whether a move may write in-process ([`writes_in_process`]); a
        /// test clears it to have git write ([`each_writer`]).
        pub(super) static IN_PROCESS: Cell<bool> = const { Cell::new(true) };
        /// How many moves wrote in-process on this thread.
        pub(super) static WRITTEN_IN_PROCESS: Cell<u32> = const { Cell::new(0) };
        /// Runs in a move right before its compare-and-swap.
        pub(super) static BEFORE_SWAP: std::cell::RefCell<Option<Box<dyn Fn()>>> =
            const { std::cell::RefCell::new(None) };
    }

    /// Runs `test` with the check each way ([`each_way`]), first with the
    /// paths written in-process where a move may, then by git alone.
    fn each_writer(test: impl Fn()) {
        for in_process in [true, false] {
            IN_PROCESS.set(in_process);
            each_way(&test);
        }
        IN_PROCESS.set(true);
    }

    /// Runs `test` and returns how many moves it wrote in-process.
    fn written_in_process(test: impl FnOnce()) -> u32 {
        let before = WRITTEN_IN_PROCESS.get();
        test();
        WRITTEN_IN_PROCESS.get() - before
    }

    pub(in crate::merge_queue) fn git(dir: &Path, args: &[&str]) -> String {
        git_as(cmd::command(dir), args)
    }

    /// Runs `git` (a command made by `cmd::command`) with `args` and a
    /// test identity; it must succeed. Returns its trimmed output.
    fn git_as(mut git: std::process::Command, args: &[&str]) -> String {
        let out = git
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    /// A state dir in the test's temp folder.
    fn state_dir(dir: &tempfile::TempDir) -> StateDir {
        let state = StateDir::at(&dir.path().join("state"));
        std::fs::create_dir_all(state.path()).unwrap();
        state
    }

    /// A checkout of `main` at `from` (`a.txt` and `b.txt`), and a commit
    /// `to` on top of it that changes `a.txt`; the index's stat data of
    /// both files is stale (recorded in 2001), their content is not.
    fn stale_checkout() -> (tempfile::TempDir, PathBuf, Oid, Oid) {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("r");
        std::fs::create_dir(&repo).unwrap();
        git(&repo, &["init", "-q", "-b", "main"]);
        std::fs::write(repo.join("a.txt"), "one\n").unwrap();
        std::fs::write(repo.join("b.txt"), "kept\n").unwrap();
        git(&repo, &["add", "-A"]);
        git(&repo, &["commit", "-q", "-m", "from"]);
        let from = git(&repo, &["rev-parse", "HEAD"]);
        git(&repo, &["switch", "-q", "-c", "side"]);
        std::fs::write(repo.join("a.txt"), "two\n").unwrap();
        git(&repo, &["commit", "-q", "-am", "to"]);
        let to = git(&repo, &["rev-parse", "HEAD"]);
        git(&repo, &["switch", "-q", "main"]);
        let handle = Repository::open(&repo).unwrap();
        let mut index = handle.index().unwrap();
        for path in ["a.txt", "b.txt"] {
            let mut entry = index.get_path(Path::new(path), 0).unwrap();
            entry.mtime = git2::IndexTime::new(1_000_000_000, 0);
            index.add(&entry).unwrap();
        }
        index.write().unwrap();
        let oid = |s: &str| Oid::from_str(s).unwrap();
        (dir, repo, oid(&from), oid(&to))
    }

    /// Dates every file of `repo`'s checkout back (ten seconds and more)
    /// and refreshes the index: no entry is racy then (written in the
    /// second the index was), and the check settles the files nobody
    /// touched by their stat data alone, as in a checkout not written a
    /// moment ago. Each call dates them a second further back than the
    /// last, so that git sees their stat data changed and records them
    /// all again, their new ctime too.
    pub(super) fn settle(repo: &Path) {
        use rustix::fs::{AtFlags, CWD, Timespec, Timestamps, utimensat};
        use std::sync::atomic::{AtomicU64, Ordering};
        static START: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
        static CALLS: AtomicU64 = AtomicU64::new(0);
        let start = START.get_or_init(|| {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
            now.unwrap().as_secs()
        });
        let back = start - 10 - CALLS.fetch_add(1, Ordering::Relaxed);
        let time = Timespec {
            tv_sec: back as i64,
            tv_nsec: 0,
        };
        let times = Timestamps {
            last_access: time,
            last_modification: time,
        };
        let mut folders = vec![repo.to_owned()];
        while let Some(folder) = folders.pop() {
            for entry in std::fs::read_dir(&folder).unwrap() {
                let entry = entry.unwrap();
                if entry.file_name() == ".git" {
                    continue;
                }
                if entry.file_type().unwrap().is_dir() {
                    folders.push(entry.path());
                } else {
                    utimensat(CWD, entry.path(), &times, AtFlags::SYMLINK_NOFOLLOW).unwrap();
                }
            }
        }
        let refreshed = cmd::command(repo)
            .args(["update-index", "-q", "--refresh"])
            .status()
            .unwrap();
        assert!(refreshed.success());
    }

    /// A temp folder and a repository `r/` in it whose one commit on
    /// `main` (returned) holds `files`, with `config` set before it; its
    /// index is settled ([`settle`]).
    pub(super) fn committed(
        files: &[(&str, &str)],
        config: &[(&str, &str)],
    ) -> (tempfile::TempDir, PathBuf, Oid) {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("r");
        std::fs::create_dir(&repo).unwrap();
        git(&repo, &["init", "-q", "-b", "main"]);
        for (key, value) in config {
            git(&repo, &["config", key, value]);
        }
        for (path, text) in files {
            let full = repo.join(path);
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            std::fs::write(full, text).unwrap();
        }
        git(&repo, &["add", "-A"]);
        git(&repo, &["commit", "-q", "-m", "from"]);
        settle(&repo);
        let from = Oid::from_str(&git(&repo, &["rev-parse", "HEAD"])).unwrap();
        (dir, repo, from)
    }

    /// Leaves the journal of a move of `repo`'s `main` from `from` to `to`
    /// cut short, its git ended.
    fn cut_short(state: &StateDir, repo: &Path, from: Oid, to: Oid) {
        let mut done = cmd::command(repo)
            .arg("--version")
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let pid = done.id();
        done.wait().unwrap();
        let journal = Journal {
            checkout: repo.to_owned(),
            target: "main".to_owned(),
            from: from.to_string(),
            to: to.to_string(),
            git: Some(GitProcess { pid, ticks: None }),
        };
        crate::fsio::write_json(&state.checkout_journal(), &journal).unwrap();
    }

    /// Moves the checked-out `main` of `repo` from `from` to `to`, and
    /// checks that it moved.
    fn move_main(dir: &tempfile::TempDir, repo: &Path, from: Oid, to: Oid) {
        let moved = fast_forward(&state_dir(dir), repo, "main", from, to, "test").unwrap();
        assert!(matches!(moved, Forwarded::Moved), "{moved:?}");
        assert_eq!(git(repo, &["rev-parse", "main"]), to.to_string());
    }

    /// A path with a `filter` attribute (Git LFS's, say) is written
    /// smudged, as git checks it out (libgit2 runs no filter driver of the
    /// config: a write of its own would not).
    #[test]
    fn a_path_with_a_filter_driver_is_written_smudged() {
        let (dir, repo, from) = committed(
            &[(".gitattributes", "*.dat filter=upper\n")],
            &[
                ("filter.upper.smudge", "tr a-z A-Z"),
                ("filter.upper.clean", "tr A-Z a-z"),
            ],
        );
        let to = commit_on(&repo, from, &[("a.dat", "quiet\n"), ("b.txt", "plain\n")]);
        move_main(&dir, &repo, from, to);
        let read = |p: &str| std::fs::read_to_string(repo.join(p)).unwrap();
        assert_eq!(read("a.dat"), "QUIET\n", "smudged");
        assert_eq!(read("b.txt"), "plain\n");
        assert_eq!(git(&repo, &["status", "--porcelain"]), "");
    }

    /// The move keeps git's untracked cache in the checkout's index
    /// (libgit2 drops it from an index it writes).
    #[test]
    fn an_index_with_git_s_untracked_cache_keeps_it() {
        each_writer(|| {
            let (dir, repo, from) =
                committed(&[("a.txt", "a\n")], &[("core.untrackedCache", "true")]);
            git(&repo, &["status", "--porcelain"]);
            let cached = || {
                let index = std::fs::read(repo.join(".git/index")).unwrap();
                index.windows(4).any(|w| w == b"UNTR")
            };
            assert!(cached(), "git status wrote the cache");
            let to = commit_on(&repo, from, &[("b.txt", "b\n")]);
            move_main(&dir, &repo, from, to);
            assert!(cached(), "the cache is kept");
            std::fs::write(repo.join("c.txt"), "untracked\n").unwrap();
            assert_eq!(git(&repo, &["status", "--porcelain"]), "?? c.txt");
        });
    }

    /// A lock on the index held by another git: the move waits, and
    /// nothing is written meanwhile.
    #[test]
    fn a_held_index_lock_stops_the_move_before_anything_is_written() {
        each_writer(|| {
            let (dir, repo, from) = committed(&[("a.txt", "a\n")], &[]);
            let to = commit_on(&repo, from, &[("b.txt", "b\n")]);
            std::fs::write(repo.join(".git/index.lock"), "").unwrap();
            let state = state_dir(&dir);
            let moved = fast_forward(&state, &repo, "main", from, to, "test").unwrap();
            assert!(
                matches!(moved, Forwarded::Stuck(Stuck::Locked { .. })),
                "{moved:?}"
            );
            assert!(!repo.join("b.txt").exists(), "nothing written");
            assert_eq!(git(&repo, &["rev-parse", "main"]), from.to_string());
        });
    }

    /// A merge that changes no path (its tree is the head's) writes
    /// nothing, and a local edit stays.
    #[test]
    fn a_move_that_changes_no_path_writes_nothing() {
        each_writer(|| {
            let (dir, repo, from) = committed(&[("a.txt", "a\n")], &[]);
            let to = commit_on(&repo, from, &[]);
            std::fs::write(repo.join("a.txt"), "mine\n").unwrap();
            move_main(&dir, &repo, from, to);
            assert_eq!(
                std::fs::read_to_string(repo.join("a.txt")).unwrap(),
                "mine\n"
            );
            assert_eq!(git(&repo, &["rev-parse", "main"]), to.to_string());
        });
    }

    /// A write that fails half-way (a name too long for the file system):
    /// the branch does not move, a person's edit elsewhere stays, and the
    /// journal is left for the next try to finish or report.
    #[test]
    fn a_write_that_fails_half_way_moves_nothing_and_keeps_local_edits() {
        each_writer(|| {
            let (dir, repo, from) = committed(&[("a.txt", "a\n")], &[]);
            let long = format!("{}.txt", "x".repeat(300));
            let to = commit_on(&repo, from, &[("b.txt", "b\n"), (long.as_str(), "long\n")]);
            std::fs::write(repo.join("a.txt"), "mine\n").unwrap();
            let state = state_dir(&dir);
            let moved = fast_forward(&state, &repo, "main", from, to, "test");
            assert!(
                !matches!(moved, Ok(Forwarded::Moved)),
                "{:?} first: {moved:?}",
                FIRST_WAY.get()
            );
            assert_eq!(git(&repo, &["rev-parse", "main"]), from.to_string());
            assert_eq!(
                std::fs::read_to_string(repo.join("a.txt")).unwrap(),
                "mine\n"
            );
            assert!(state.checkout_journal().exists());
        });
    }

    /// A person mid-merge, with a conflict on `c.txt`: whatever the name
    /// of the path the update adds (one a pathspec parser would take for a
    /// comment or a wildcard), the unmerged entries stay.
    #[test]
    fn a_conflict_elsewhere_in_the_index_stays() {
        for name in ["plain.txt", "#notes", "*"] {
            each_writer(|| {
                let (dir, repo, from) = committed(&[("a.txt", "a\n"), ("c.txt", "c\n")], &[]);
                let to = commit_on(&repo, from, &[(name, "new\n")]);
                let mut info = format!("0 {}\tc.txt\n", Oid::ZERO_SHA1);
                for (stage, text) in [(1, "base\n"), (2, "ours\n"), (3, "theirs\n")] {
                    std::fs::write(repo.join(".git/blob"), text).unwrap();
                    let blob = git(&repo, &["hash-object", "-w", ".git/blob"]);
                    info.push_str(&format!("100644 {blob} {stage}\tc.txt\n"));
                }
                let mut update = cmd::command(&repo)
                    .args(["update-index", "--index-info"])
                    .stdin(std::process::Stdio::piped())
                    .spawn()
                    .unwrap();
                use std::io::Write as _;
                update
                    .stdin
                    .take()
                    .unwrap()
                    .write_all(info.as_bytes())
                    .unwrap();
                assert!(update.wait().unwrap().success());
                let unmerged = git(&repo, &["ls-files", "-u"]);
                assert_eq!(unmerged.lines().count(), 3);
                let state = state_dir(&dir);
                let moved = fast_forward(&state, &repo, "main", from, to, "test").unwrap();
                assert!(matches!(moved, Forwarded::Moved), "{name}: {moved:?}");
                assert_eq!(git(&repo, &["ls-files", "-u"]), unmerged, "{name}");
                assert_eq!(std::fs::read_to_string(repo.join(name)).unwrap(), "new\n");
            });
        }
    }

    /// Under `core.ignorecase`, a path differing only in case from one the
    /// update changes is another path: a person's edit there stays.
    #[test]
    fn under_ignorecase_a_path_differing_in_case_is_left_alone() {
        each_way(|| {
            let (dir, repo, from) = committed(&[("README", "up\n"), ("readme", "low\n")], &[]);
            git(&repo, &["config", "core.ignorecase", "true"]);
            let to = commit_on(&repo, from, &[("README", "UP2\n")]);
            std::fs::write(repo.join("readme"), "mine\n").unwrap();
            move_main(&dir, &repo, from, to);
            let read = |p: &str| std::fs::read_to_string(repo.join(p)).unwrap();
            assert_eq!(read("readme"), "mine\n");
            assert_eq!(read("README"), "UP2\n");
        });
    }

    /// The put-back after git wrote the paths asks through the handle
    /// whose index the check loaded: it reads the index git wrote, not
    /// the one it had (which would find every path modified, and leave
    /// the checkout at the new commit).
    #[test]
    fn the_put_back_after_a_write_reads_the_index_git_wrote() {
        let (_dir, repo, from) = committed(&[("a.txt", "a\n")], &[]);
        let to = commit_on(&repo, from, &[("a.txt", "A2\n"), ("b.txt", "b\n")]);
        let handle = Repository::open(&repo).unwrap();
        let diff = tree::commit_changes(&handle, from, to).unwrap();
        assert_eq!(blockers_of(&handle, &repo, &diff).unwrap(), Vec::new());
        let paths = pathspecs(&diff);
        write_paths(&repo, to, &paths).unwrap();
        put_back(&handle, &repo, &diff, &Write::Paths(paths), from, to).unwrap();
        assert_eq!(git(&repo, &["status", "--porcelain"]), "");
    }

    /// The journal names a git that died before it had its pathspecs (it
    /// took no lock), and another git holds the index's lock now: the
    /// restart waits for it instead of removing it, and finishes once it
    /// is gone.
    #[test]
    fn a_lock_another_process_holds_is_not_taken_for_the_dead_gits() {
        let (dir, repo, from) = committed(&[("a.txt", "a\n")], &[]);
        let to = commit_on(&repo, from, &[("b.txt", "b\n")]);
        let state = state_dir(&dir);
        cut_short(&state, &repo, from, to);
        let lock = repo.join(".git/index.lock");
        std::fs::write(&lock, "").unwrap();
        let held = std::fs::File::open(&lock).unwrap();
        let resumed = resume(&repo, &state).unwrap();
        assert!(
            matches!(resumed, Resumed::Waiting(Stuck::Locked { .. })),
            "{resumed:?}"
        );
        assert!(lock.exists(), "the lock is left to its holder");
        drop(held);
        std::fs::remove_file(&lock).unwrap();
        let resumed = resume(&repo, &state).unwrap();
        assert!(matches!(resumed, Resumed::Completed { .. }), "{resumed:?}");
    }

    /// Orch killed in its compare-and-swap of the branch leaves the
    /// branch's lock behind (libgit2 writes it in orch's own process):
    /// empty, or holding the new commit. The restart takes that one for
    /// its own and finishes the move; a lock holding another commit, or
    /// one a process holds open, is a git's at work, and one older than
    /// the move's journal a git's killed before: merging waits.
    #[test]
    fn the_branch_lock_a_killed_compare_and_swap_left_is_cleared_on_restart() {
        for (content, held, finished) in [
            (String::new(), false, true),
            (String::from("to"), false, true),
            (String::from("other"), false, false),
            (String::from("to"), true, false),
            (String::from("older"), false, false),
        ] {
            let (dir, repo, from) = committed(&[("a.txt", "a\n")], &[]);
            let to = commit_on(&repo, from, &[("b.txt", "b\n")]);
            let state = state_dir(&dir);
            cut_short(&state, &repo, from, to);
            let lock = repo.join(".git/refs/heads/main.lock");
            let text = match content.as_str() {
                "to" => format!("{to}\n"),
                "other" => format!("{from}\n"),
                _ => String::new(),
            };
            std::fs::write(&lock, text).unwrap();
            if content == "older" {
                let before = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
                let file = std::fs::File::options().write(true).open(&lock).unwrap();
                file.set_modified(before).unwrap();
            }
            let open = held.then(|| std::fs::File::open(&lock).unwrap());
            let resumed = resume(&repo, &state).unwrap();
            let case = format!("lock {content:?}, held {held}: {resumed:?}");
            if finished {
                assert!(matches!(resumed, Resumed::Completed { .. }), "{case}");
                assert_eq!(git(&repo, &["rev-parse", "main"]), to.to_string());
                assert!(!lock.exists(), "{case}");
            } else {
                assert!(
                    matches!(resumed, Resumed::Waiting(Stuck::Locked { .. })),
                    "{case}"
                );
                assert_eq!(git(&repo, &["rev-parse", "main"]), from.to_string());
                assert!(lock.exists(), "the lock is left to its holder: {case}");
                assert!(matches!(
                    pending(&repo, &state).unwrap(),
                    Pending::Waiting(_, Stuck::Locked { .. })
                ));
            }
            drop(open);
        }
    }

    /// The branch's lock held by another git (a person's `git update-ref`,
    /// or one killed mid-write): the move waits before anything is written,
    /// naming the lock, and goes ahead once it is gone.
    #[test]
    fn a_branch_lock_another_git_holds_makes_the_move_wait_before_it_writes() {
        each_writer(|| {
            let (dir, repo, from) = committed(&[("a.txt", "a\n")], &[]);
            let to = commit_on(&repo, from, &[("b.txt", "b\n")]);
            let lock = repo.join(".git/refs/heads/main.lock");
            std::fs::write(&lock, "").unwrap();
            let held = std::fs::File::open(&lock).unwrap();
            let state = state_dir(&dir);
            let moved = fast_forward(&state, &repo, "main", from, to, "test").unwrap();
            assert!(
                matches!(&moved, Forwarded::Stuck(Stuck::Locked { lock: named }) if *named == lock),
                "{moved:?}"
            );
            assert!(!repo.join("b.txt").exists(), "nothing written");
            assert_eq!(git(&repo, &["rev-parse", "main"]), from.to_string());
            assert!(lock.exists(), "the lock is left to its holder");
            drop(held);
            std::fs::remove_file(&lock).unwrap();
            move_main(&dir, &repo, from, to);
        });
    }

    /// The branch locked by another git after the paths were written: the
    /// move waits, and its journal names no writer any more, so that a
    /// lock on the index taken meanwhile (a person's `git commit -a`,
    /// waiting in its editor, holds it written and closed) is waited for
    /// when the move is tried again, not removed as the writer's.
    #[test]
    fn a_lock_on_the_index_taken_while_the_move_waits_is_not_taken_for_its_writer_s() {
        each_writer(|| {
            let (dir, repo, from) = committed(&[("a.txt", "a\n")], &[]);
            let to = commit_on(&repo, from, &[("b.txt", "b\n")]);
            let state = state_dir(&dir);
            let branch_lock = repo.join(".git/refs/heads/main.lock");
            let index_lock = repo.join(".git/index.lock");
            let made = branch_lock.clone();
            BEFORE_SWAP.set(Some(Box::new(move || std::fs::write(&made, "").unwrap())));
            let moved = fast_forward(&state, &repo, "main", from, to, "test");
            BEFORE_SWAP.set(None);
            assert!(
                matches!(&moved, Ok(Forwarded::Stuck(Stuck::Locked { lock })) if *lock == branch_lock),
                "{moved:?}"
            );
            assert!(repo.join("b.txt").exists(), "the paths were written");
            std::fs::write(&index_lock, "").unwrap();
            std::fs::remove_file(&branch_lock).unwrap();
            let resumed = resume(&repo, &state).unwrap();
            assert!(
                matches!(&resumed, Resumed::Waiting(Stuck::Locked { lock }) if *lock == index_lock),
                "{resumed:?}"
            );
            assert!(index_lock.exists(), "the person's lock stays");
            std::fs::remove_file(&index_lock).unwrap();
            let resumed = resume(&repo, &state).unwrap();
            assert!(matches!(resumed, Resumed::Completed { .. }), "{resumed:?}");
            assert_eq!(git(&repo, &["status", "--porcelain"]), "");
        });
    }

    /// A journal left naming orch's own pid as the writer (its in-process
    /// write declined, and the git meant to write instead never started)
    /// is not taken for a writer still running: the same process finishes
    /// the move on its next try.
    #[test]
    fn a_journal_naming_orch_s_own_pid_is_finished_by_the_same_process() {
        each_writer(|| {
            let (dir, repo, from) = committed(&[("a.txt", "a\n")], &[]);
            let to = commit_on(&repo, from, &[("b.txt", "b\n")]);
            let state = state_dir(&dir);
            let handle = Repository::open(&repo).unwrap();
            let diff = tree::commit_changes(&handle, from, to).unwrap();
            let pid = std::process::id();
            let journal = Journal {
                checkout: repo.clone(),
                target: "main".to_owned(),
                from: from.to_string(),
                to: to.to_string(),
                git: Some(GitProcess {
                    pid,
                    ticks: crate::process::start_ticks(pid),
                }),
            };
            crate::fsio::write_json(&state.checkout_journal(), &journal).unwrap();
            write_paths(&repo, to, &pathspecs(&diff)).unwrap();
            let resumed = resume(&repo, &state).unwrap();
            assert!(matches!(resumed, Resumed::Completed { .. }), "{resumed:?}");
            assert_eq!(git(&repo, &["rev-parse", "main"]), to.to_string());
        });
    }

    /// The write's git is started before the check and waits for its
    /// pathspecs; killed then, orch leaves it none to read.
    #[test]
    fn the_write_given_no_pathspec_refuses_and_touches_nothing() {
        let (_dir, repo, from, to) = stale_checkout();
        let argv = Write::Paths(Vec::new()).argv(from, to);
        let out = cmd::command(&repo)
            .args(&argv)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(128), "{out:?}");
        assert_eq!(git(&repo, &["symbolic-ref", "HEAD"]), "refs/heads/main");
        assert_eq!(git(&repo, &["rev-parse", "HEAD"]), from.to_string());
        assert_eq!(
            std::fs::read_to_string(repo.join("a.txt")).unwrap(),
            "one\n"
        );
    }

    /// A folder moved away and linked back: its files are the same, stat
    /// data and all, but git takes a tracked file under a symbolic link
    /// for deleted, and its write would replace the link with a folder.
    #[test]
    fn a_tracked_file_under_a_folder_turned_symbolic_link_is_in_the_way() {
        each_way(|| {
            let (dir, repo, from) = committed(&[("d/f", "one\n"), ("d/g", "keep\n")], &[]);
            let to = commit_on(&repo, from, &[("d/f", "two\n")]);
            std::fs::rename(repo.join("d"), repo.join("d.bak")).unwrap();
            std::os::unix::fs::symlink("d.bak", repo.join("d")).unwrap();
            let modified = Blocker {
                path: "d/f".to_owned(),
                why: InTheWay::Modified,
            };
            assert_eq!(blockers(&repo, from, to).unwrap(), [modified]);
            let moved = fast_forward(&state_dir(&dir), &repo, "main", from, to, "test").unwrap();
            assert!(matches!(moved, Forwarded::Refused(_)), "{moved:?}");
            assert!(repo.join("d").symlink_metadata().unwrap().is_symlink());
        });
    }

    #[test]
    fn stale_stat_data_of_a_path_the_update_changes_does_not_block_it() {
        each_way(|| {
            let (dir, repo, from, to) = stale_checkout();
            let state = state_dir(&dir);
            assert_eq!(blockers(&repo, from, to).unwrap(), Vec::new());
            let moved = fast_forward(&state, &repo, "main", from, to, "test").unwrap();
            assert!(matches!(moved, Forwarded::Moved), "{moved:?}");
            assert_eq!(
                std::fs::read_to_string(repo.join("a.txt")).unwrap(),
                "two\n"
            );
            assert_eq!(git(&repo, &["rev-parse", "main"]), to.to_string());
            assert_eq!(git(&repo, &["status", "--porcelain"]), "");
            assert!(!state.checkout_journal().exists());
        });
    }

    #[test]
    fn a_modified_path_the_update_changes_still_refuses_after_the_refresh() {
        each_way(|| {
            let (dir, repo, from, to) = stale_checkout();
            let state = state_dir(&dir);
            std::fs::write(repo.join("a.txt"), "mine\n").unwrap();
            std::fs::write(repo.join("b.txt"), "mine too, not in the way\n").unwrap();
            let modified = Blocker {
                path: "a.txt".to_owned(),
                why: InTheWay::Modified,
            };
            assert_eq!(blockers(&repo, from, to).unwrap(), [modified]);
            let moved = fast_forward(&state, &repo, "main", from, to, "test").unwrap();
            assert!(matches!(moved, Forwarded::Refused(_)), "{moved:?}");
            assert_eq!(
                std::fs::read_to_string(repo.join("a.txt")).unwrap(),
                "mine\n"
            );
            assert_eq!(git(&repo, &["rev-parse", "main"]), from.to_string());
            assert!(!state.checkout_journal().exists());
        });
    }

    /// Returns `(mode, id, path)` of each record of `git <args> -z`, where
    /// a record is `<fields>\t<path>` and `mode` and `id` are the fields at
    /// `mode_at` and `id_at`.
    fn entries(
        repo: &Path,
        args: &[&str],
        mode_at: usize,
        id_at: usize,
    ) -> Vec<(String, String, String)> {
        let out = cmd::run(repo, args).unwrap().stdout;
        out.split(|b| *b == 0)
            .filter(|r| !r.is_empty())
            .map(|r| {
                let r = String::from_utf8(r.to_vec()).unwrap();
                let (head, path) = r.split_once('\t').unwrap();
                let fields: Vec<&str> = head.split(' ').collect();
                (
                    fields[mode_at].to_owned(),
                    fields[id_at].to_owned(),
                    path.to_owned(),
                )
            })
            .collect()
    }

    /// Returns the id the index's cache of tree ids holds for the
    /// top-level `folder`, `None` when that entry is not valid (or absent).
    fn cached_tree(repo: &Path, folder: &str) -> Option<Oid> {
        let index = std::fs::read(repo.join(".git/index")).unwrap();
        let at = index.windows(4).rposition(|w| w == b"TREE")?;
        let size = u32::from_be_bytes(index[at + 4..at + 8].try_into().unwrap()) as usize;
        let ext = &index[at + 8..at + 8 + size];
        let name = [folder.as_bytes(), b"\0"].concat();
        let start = ext.windows(name.len()).position(|w| w == name)? + name.len();
        let end = start + ext[start..].iter().position(|b| *b == b'\n')?;
        let count = std::str::from_utf8(&ext[start..end])
            .ok()?
            .split(' ')
            .next()?;
        if count.starts_with('-') {
            return None;
        }
        Oid::from_bytes(&ext[end + 1..end + 21]).ok()
    }

    /// A checkout of `main` at `from`, and a commit `to` on top of it that
    /// changes a path of every kind a move writes; git's `post-checkout`
    /// hook leaves `hook-ran` in the folder above the checkout. The index
    /// is settled ([`settle`]).
    fn every_kind_of_change() -> (tempfile::TempDir, PathBuf, Oid, Oid) {
        use std::os::unix::fs::{PermissionsExt, symlink};
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("r");
        let write = |path: &str, text: &str| {
            let full = repo.join(path);
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            std::fs::write(full, text).unwrap();
        };
        std::fs::create_dir(&repo).unwrap();
        git(&repo, &["init", "-q", "-b", "main"]);
        for (path, text) in [
            ("keep/deep/k.txt", "kept\n"),
            ("edit.txt", "one\n"),
            ("gone/only.txt", "the folder's only file\n"),
            ("exec.sh", "echo hi\n"),
            ("fold", "a file that becomes a folder\n"),
            ("dfile/in.txt", "a folder that becomes a file\n"),
            ("with space.txt", "one\n"),
            ("-dash.txt", "one\n"),
            ("ünï cödé.txt", "one\n"),
            ("star*.txt", "one\n"),
            ("starX.txt", "not changed by the update\n"),
        ] {
            write(path, text);
        }
        symlink("edit.txt", repo.join("link")).unwrap();
        git(&repo, &["add", "-A"]);
        git(&repo, &["commit", "-q", "-m", "from"]);
        let from = git(&repo, &["rev-parse", "HEAD"]);
        git(&repo, &["switch", "-q", "-c", "side"]);
        std::fs::remove_dir_all(repo.join("gone")).unwrap();
        std::fs::remove_dir_all(repo.join("dfile")).unwrap();
        std::fs::remove_file(repo.join("fold")).unwrap();
        std::fs::remove_file(repo.join("link")).unwrap();
        symlink("exec.sh", repo.join("link")).unwrap();
        let exec = repo.join("exec.sh");
        std::fs::set_permissions(&exec, std::fs::Permissions::from_mode(0o755)).unwrap();
        for (path, text) in [
            ("edit.txt", "two\n"),
            ("new/sub/n.txt", "added in a new folder\n"),
            ("fold/in.txt", "now a folder\n"),
            ("dfile", "now a file\n"),
            ("with space.txt", "two\n"),
            ("-dash.txt", "two\n"),
            ("ünï cödé.txt", "two\n"),
            ("star*.txt", "two\n"),
        ] {
            write(path, text);
        }
        git(&repo, &["add", "-A"]);
        git(&repo, &["commit", "-q", "-m", "to"]);
        let to = git(&repo, &["rev-parse", "HEAD"]);
        git(&repo, &["switch", "-q", "main"]);
        let hook = repo.join(".git/hooks/post-checkout");
        std::fs::create_dir_all(hook.parent().unwrap()).unwrap();
        std::fs::write(&hook, "#!/bin/sh\ntouch ../hook-ran\n").unwrap();
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
        settle(&repo);
        let oid = |s: &str| Oid::from_str(s).unwrap();
        (dir, repo, oid(&from), oid(&to))
    }

    /// Returns a commit on top of `parent` that adds `files` (path, text),
    /// made without touching the checkout ([`commit_edited`]).
    fn commit_on(repo: &Path, parent: Oid, files: &[(&str, &str)]) -> Oid {
        let entries: Vec<String> = files
            .iter()
            .map(|(path, text)| {
                let blob = cmd::command(repo)
                    .args(["hash-object", "-w", "--stdin"])
                    .stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::piped())
                    .spawn()
                    .and_then(|mut child| {
                        use std::io::Write as _;
                        child.stdin.take().unwrap().write_all(text.as_bytes())?;
                        child.wait_with_output()
                    })
                    .unwrap();
                let blob = String::from_utf8(blob.stdout).unwrap();
                format!("100644,{},{path}", blob.trim())
            })
            .collect();
        let edits: Vec<[&str; 3]> = entries
            .iter()
            .map(|entry| ["--add", "--cacheinfo", entry.as_str()])
            .collect();
        let edits: Vec<&[&str]> = edits.iter().map(|e| &e[..]).collect();
        commit_edited(repo, parent, &edits)
    }

    /// Returns a commit on top of `parent` whose tree is `parent`'s edited
    /// by `git update-index` with each of `edits`, made in an index of its
    /// own (`read-tree`, `write-tree`, `commit-tree`): the checkout and its
    /// index are not touched.
    fn commit_edited(repo: &Path, parent: Oid, edits: &[&[&str]]) -> Oid {
        let index = repo.join(".git/commit_edited.index");
        let with_index = |args: &[&str]| {
            let mut git = cmd::command(repo);
            git.env("GIT_INDEX_FILE", &index);
            git_as(git, args)
        };
        let parent = parent.to_string();
        with_index(&["read-tree", &parent]);
        for edit in edits {
            with_index(&[&["update-index"][..], edit].concat());
        }
        let tree = with_index(&["write-tree"]);
        let commit = with_index(&["commit-tree", &tree, "-p", &parent, "-m", "more"]);
        std::fs::remove_file(&index).unwrap();
        Oid::from_str(&commit).unwrap()
    }

    /// Asserts that the checkout holds `to` exactly: its files, an index
    /// equal to `to`'s tree, nothing reported by `git status`.
    fn assert_holds(repo: &Path, to: Oid) {
        use std::os::unix::fs::PermissionsExt;
        let read = |path: &str| std::fs::read_to_string(repo.join(path)).unwrap();
        assert_eq!(read("edit.txt"), "two\n");
        assert_eq!(read("new/sub/n.txt"), "added in a new folder\n");
        assert!(!repo.join("gone").exists(), "the emptied folder goes");
        let mode = repo
            .join("exec.sh")
            .metadata()
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o111, 0o111, "executable");
        assert_eq!(
            std::fs::read_link(repo.join("link")).unwrap(),
            Path::new("exec.sh")
        );
        assert_eq!(read("fold/in.txt"), "now a folder\n");
        assert_eq!(read("dfile"), "now a file\n");
        assert_eq!(read("with space.txt"), "two\n");
        assert_eq!(read("-dash.txt"), "two\n");
        assert_eq!(read("ünï cödé.txt"), "two\n");
        assert_eq!(read("star*.txt"), "two\n");
        assert_eq!(read("keep/deep/k.txt"), "kept\n");
        assert_eq!(git(repo, &["status", "--porcelain"]), "");
        let to_hex = to.to_string();
        assert_eq!(
            entries(repo, &["ls-files", "-s", "-z"], 0, 1),
            entries(repo, &["ls-tree", "-r", "-z", &to_hex], 0, 2)
        );
        assert_eq!(
            git(repo, &["write-tree"]),
            git(repo, &["rev-parse", &format!("{to_hex}^{{tree}}")])
        );
    }

    #[test]
    fn a_move_writes_every_kind_of_change_and_keeps_the_cached_trees_of_untouched_folders() {
        each_way(|| {
            let (dir, repo, from, to) = every_kind_of_change();
            let state = state_dir(&dir);
            let kept = git(&repo, &["rev-parse", &format!("{to}:keep")]);
            assert_eq!(
                cached_tree(&repo, "keep").map(|o| o.to_string()),
                Some(kept.clone())
            );
            // A local edit of a path the update does not change is carried,
            // `star*.txt` matching it as a glob notwithstanding.
            std::fs::write(repo.join("starX.txt"), "mine\n").unwrap();
            assert_eq!(blockers(&repo, from, to).unwrap(), Vec::new());
            let moved = fast_forward(&state, &repo, "main", from, to, "test").unwrap();
            assert!(matches!(moved, Forwarded::Moved), "{moved:?}");
            assert_eq!(git(&repo, &["rev-parse", "main"]), to.to_string());
            assert!(
                !dir.path().join("hook-ran").exists(),
                "no post-checkout hook"
            );
            let carried = std::fs::read_to_string(repo.join("starX.txt")).unwrap();
            assert_eq!(carried, "mine\n");
            std::fs::write(repo.join("starX.txt"), "not changed by the update\n").unwrap();
            assert_holds(&repo, to);
            assert_eq!(
                cached_tree(&repo, "keep").map(|o| o.to_string()),
                Some(kept),
                "the index's cached tree id of an untouched folder is kept"
            );
            assert!(!state.checkout_journal().exists());
        });
    }

    #[test]
    fn a_folder_where_the_update_writes_a_file_is_in_the_way_only_for_what_the_update_leaves() {
        each_way(|| {
            let (_dir, repo, from, to) = every_kind_of_change();
            std::fs::write(repo.join(".git/info/exclude"), "*.log\n").unwrap();
            std::fs::write(repo.join("dfile/notes.txt"), "mine\n").unwrap();
            std::fs::write(repo.join("dfile/build.log"), "ignored\n").unwrap();
            std::fs::write(repo.join("dfile/staged.txt"), "staged\n").unwrap();
            std::fs::create_dir_all(repo.join("dfile/cache/deep")).unwrap();
            std::fs::write(repo.join("dfile/cache/deep/x.bin"), "untracked\n").unwrap();
            std::fs::write(repo.join("new"), "staged where a folder goes\n").unwrap();
            git(&repo, &["add", "dfile/staged.txt", "new"]);
            std::fs::create_dir_all(repo.join("untracked/sub")).unwrap();
            std::fs::write(repo.join("untracked/sub/y.txt"), "untracked\n").unwrap();
            std::fs::create_dir(repo.join("empty")).unwrap();
            let (from, to) = (
                from,
                commit_on(&repo, to, &[("untracked", "a file"), ("empty", "a file")]),
            );
            let blocker = |path: &str, why| Blocker {
                path: path.to_owned(),
                why,
            };
            assert_eq!(
                blockers(&repo, from, to).unwrap(),
                [
                    blocker("dfile/build.log", InTheWay::Ignored),
                    blocker("dfile/cache", InTheWay::Untracked),
                    blocker("dfile/notes.txt", InTheWay::Untracked),
                    blocker("dfile/staged.txt", InTheWay::Modified),
                    blocker("new", InTheWay::Modified),
                    blocker("untracked", InTheWay::Untracked),
                ]
            );
        });
    }

    #[test]
    fn a_local_edit_under_assume_unchanged_or_skip_worktree_is_in_the_way() {
        each_way(|| {
            let (_dir, repo, from, to) = every_kind_of_change();
            git(&repo, &["update-index", "--assume-unchanged", "edit.txt"]);
            git(
                &repo,
                &["update-index", "--skip-worktree", "--", "-dash.txt"],
            );
            git(
                &repo,
                &["update-index", "--skip-worktree", "with space.txt"],
            );
            std::fs::write(repo.join("edit.txt"), "mine\n").unwrap();
            std::fs::write(repo.join("-dash.txt"), "mine\n").unwrap();
            let modified = |path: &str| Blocker {
                path: path.to_owned(),
                why: InTheWay::Modified,
            };
            assert_eq!(
                blockers(&repo, from, to).unwrap(),
                [modified("-dash.txt"), modified("edit.txt")]
            );
        });
    }

    #[test]
    fn a_move_cut_short_half_way_is_finished_whichever_side_git_had_written() {
        let (dir, repo, from, to) = every_kind_of_change();
        let state = state_dir(&dir);
        // Files new, their entries old (a file replaced by its folder
        // among them); an entry new, its file old; a folder emptied where
        // a file goes, the file not written yet; and the index's lock left
        // behind by the git that was killed.
        std::fs::write(repo.join("edit.txt"), "two\n").unwrap();
        std::fs::remove_file(repo.join("fold")).unwrap();
        std::fs::create_dir(repo.join("fold")).unwrap();
        std::fs::write(repo.join("fold/in.txt"), "now a folder\n").unwrap();
        std::fs::remove_file(repo.join("dfile/in.txt")).unwrap();
        let blob = git(&repo, &["rev-parse", &format!("{to}:with space.txt")]);
        let entry = format!("100644,{blob},with space.txt");
        git(&repo, &["update-index", "--cacheinfo", &entry]);
        std::fs::write(repo.join(".git/index.lock"), "").unwrap();
        cut_short(&state, &repo, from, to);
        let resumed = resume(&repo, &state).unwrap();
        assert!(matches!(resumed, Resumed::Completed { .. }), "{resumed:?}");
        assert_eq!(git(&repo, &["rev-parse", "main"]), to.to_string());
        assert_holds(&repo, to);
        assert!(
            !dir.path().join("hook-ran").exists(),
            "no post-checkout hook"
        );
        assert!(!state.checkout_journal().exists());
    }

    /// Orch's own writer creates a file, then writes it: a kill in
    /// between (found by the crash harness) leaves it empty, or holding
    /// the start of its content. Writing it whole loses nothing; a file
    /// holding anything else is still a person's.
    #[test]
    fn a_move_cut_while_a_file_was_written_is_finished() {
        let (dir, repo, from, to) = every_kind_of_change();
        let state = state_dir(&dir);
        std::fs::create_dir_all(repo.join("new/sub")).unwrap();
        std::fs::write(repo.join("new/sub/n.txt"), "").unwrap();
        std::fs::remove_file(repo.join("edit.txt")).unwrap();
        std::fs::write(repo.join("edit.txt"), "tw").unwrap();
        cut_short(&state, &repo, from, to);
        let resumed = resume(&repo, &state).unwrap();
        assert!(matches!(resumed, Resumed::Completed { .. }), "{resumed:?}");
        assert_holds(&repo, to);
        assert!(!state.checkout_journal().exists());

        let (dir, repo, from, to) = every_kind_of_change();
        let state = state_dir(&dir);
        std::fs::create_dir_all(repo.join("new/sub")).unwrap();
        std::fs::write(repo.join("new/sub/n.txt"), "added by a person\n").unwrap();
        cut_short(&state, &repo, from, to);
        let resumed = resume(&repo, &state).unwrap();
        assert!(!matches!(resumed, Resumed::Completed { .. }), "{resumed:?}");
        assert_eq!(
            std::fs::read_to_string(repo.join("new/sub/n.txt")).unwrap(),
            "added by a person\n"
        );
    }

    #[test]
    fn the_put_back_writes_the_same_paths_from_the_old_commit() {
        let (_dir, repo, from, to) = every_kind_of_change();
        let handle = Repository::open(&repo).unwrap();
        let diff = tree::commit_changes(&handle, from, to).unwrap();
        let paths = pathspecs(&diff);
        write_paths(&repo, to, &paths).unwrap();
        assert_eq!(
            git(&repo, &["diff", "--cached", "--name-only", &to.to_string()]),
            ""
        );
        put_back(&handle, &repo, &diff, &Write::Paths(paths), from, to).unwrap();
        assert_eq!(git(&repo, &["status", "--porcelain"]), "");
        assert_eq!(
            std::fs::read_to_string(repo.join("dfile/in.txt")).unwrap(),
            "a folder that becomes a file\n"
        );
        assert!(repo.join("gone/only.txt").is_file());
        assert!(!repo.join("new").exists());
    }

    #[test]
    fn a_sparse_checkout_moves_through_read_tree_and_keeps_its_patterns() {
        let (dir, repo, from, to) = every_kind_of_change();
        let state = state_dir(&dir);
        git(
            &repo,
            &["sparse-checkout", "set", "--no-cone", "/*", "!/new/"],
        );
        let moved = fast_forward(&state, &repo, "main", from, to, "test").unwrap();
        assert!(matches!(moved, Forwarded::Moved), "{moved:?}");
        assert!(!repo.join("new").exists(), "outside the sparse patterns");
        assert_eq!(
            std::fs::read_to_string(repo.join("edit.txt")).unwrap(),
            "two\n"
        );
        assert_eq!(git(&repo, &["status", "--porcelain"]), "");
        assert_eq!(git(&repo, &["rev-parse", "main"]), to.to_string());
    }

    /// A checkout of `main` at `from`, and a commit `to` on top of it that
    /// changes regular files only: two edited (one in a folder), one added
    /// in new folders,
    /// the only file of a folder deleted, one made executable. The index
    /// is settled ([`settle`]).
    fn files_only_change(config: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf, Oid, Oid) {
        use std::os::unix::fs::PermissionsExt;
        let (dir, repo, from) = committed(
            &[
                ("keep/deep/k.txt", "kept\n"),
                ("edit.txt", "one\n"),
                ("gone/only.txt", "the folder's only file\n"),
                ("exec.sh", "echo hi\n"),
                ("other.txt", "not changed by the update\n"),
                ("lib/a.txt", "one\n"),
                ("lib/b.txt", "not changed by the update\n"),
            ],
            config,
        );
        git(&repo, &["switch", "-q", "-c", "side"]);
        std::fs::remove_dir_all(repo.join("gone")).unwrap();
        let exec = repo.join("exec.sh");
        std::fs::set_permissions(&exec, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(repo.join("edit.txt"), "two\n").unwrap();
        std::fs::write(repo.join("lib/a.txt"), "two\n").unwrap();
        std::fs::create_dir_all(repo.join("new/sub")).unwrap();
        std::fs::write(repo.join("new/sub/n.txt"), "added in a new folder\n").unwrap();
        git(&repo, &["add", "-A"]);
        git(&repo, &["commit", "-q", "-m", "to"]);
        let to = Oid::from_str(&git(&repo, &["rev-parse", "HEAD"])).unwrap();
        git(&repo, &["switch", "-q", "main"]);
        settle(&repo);
        (dir, repo, from, to)
    }

    /// A move of regular files, in a checkout with no attributes, is
    /// written in-process: the files, their modes, an index equal to the
    /// new tree but for a change staged elsewhere (kept), the cached tree
    /// id of an untouched folder kept, nothing for `git status` to report,
    /// no lock left.
    #[test]
    fn a_move_of_regular_files_is_written_in_process_as_git_writes_it() {
        each_way(|| {
            use std::os::unix::fs::PermissionsExt;
            let (dir, repo, from, to) = files_only_change(&[]);
            let kept = git(&repo, &["rev-parse", &format!("{to}:keep")]);
            assert_eq!(cached_tree(&repo, "keep"), Oid::from_str(&kept).ok());
            std::fs::write(repo.join("other.txt"), "staged\n").unwrap();
            git(&repo, &["add", "other.txt"]);
            let written = written_in_process(|| move_main(&dir, &repo, from, to));
            assert_eq!(written, 1, "{:?} first", FIRST_WAY.get());
            // libgit2 checks the index's checksum on every read.
            let index = Repository::open(&repo).and_then(|r| r.index());
            assert_eq!(index.map(|i| i.len()).ok(), Some(7));
            let read = |path: &str| std::fs::read_to_string(repo.join(path)).unwrap();
            assert_eq!(read("edit.txt"), "two\n");
            assert_eq!(read("lib/a.txt"), "two\n");
            assert_eq!(read("new/sub/n.txt"), "added in a new folder\n");
            assert!(!repo.join("gone").exists(), "the emptied folder goes");
            let mode = |path: &str| repo.join(path).metadata().unwrap().permissions().mode();
            assert_eq!(mode("exec.sh") & 0o111, 0o111, "executable");
            assert_eq!(mode("edit.txt") & 0o111, 0);
            assert_eq!(git(&repo, &["status", "--porcelain"]), "M  other.txt");
            assert_eq!(
                git(&repo, &["diff", "--cached", "--name-only", &to.to_string()]),
                "other.txt"
            );
            git(&repo, &["restore", "--staged", "--worktree", "other.txt"]);
            assert_eq!(git(&repo, &["status", "--porcelain"]), "");
            assert_eq!(
                git(&repo, &["write-tree"]),
                git(&repo, &["rev-parse", &format!("{to}^{{tree}}")])
            );
            assert_eq!(cached_tree(&repo, "keep"), Oid::from_str(&kept).ok());
            assert!(!repo.join(".git/index.lock").exists());
        });
    }

    /// A file the move changes that is hard-linked elsewhere is replaced
    /// by a new file, as git writes it: the other link keeps its content.
    #[test]
    fn a_hard_linked_copy_of_a_changed_file_keeps_its_content() {
        each_writer(|| {
            let (dir, repo, from, to) = files_only_change(&[]);
            let copy = dir.path().join("copy.txt");
            std::fs::hard_link(repo.join("edit.txt"), &copy).unwrap();
            settle(&repo);
            move_main(&dir, &repo, from, to);
            assert_eq!(std::fs::read_to_string(&copy).unwrap(), "one\n");
            assert_eq!(
                std::fs::read_to_string(repo.join("edit.txt")).unwrap(),
                "two\n"
            );
        });
    }

    /// An entry recorded in the second the index was written (racy) whose
    /// file changed since, same size, same second: the move's new index,
    /// written later, must not make it look clean. Git smudges such an
    /// entry when it writes an index; so does the in-process write.
    #[test]
    fn a_racy_entry_elsewhere_still_shows_its_change_after_the_move() {
        each_writer(|| {
            use rustix::fs::{AtFlags, CWD, Timespec, Timestamps, utimensat};
            let (dir, repo, from, to) = files_only_change(&[("core.trustctime", "false")]);
            let second = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs() as i64
                - 5;
            let at = |path: &Path| {
                let time = Timespec {
                    tv_sec: second,
                    tv_nsec: 0,
                };
                let times = Timestamps {
                    last_access: time,
                    last_modification: time,
                };
                utimensat(CWD, path, &times, AtFlags::empty()).unwrap();
            };
            let other = repo.join("other.txt");
            std::fs::write(&other, "version A of the same size\n").unwrap();
            at(&other);
            git(&repo, &["add", "other.txt"]);
            std::fs::OpenOptions::new()
                .write(true)
                .open(&other)
                .and_then(|mut f| {
                    use std::io::Write as _;
                    f.write_all(b"version B of the same size\n")
                })
                .unwrap();
            at(&other);
            at(&repo.join(".git/index"));
            let written = written_in_process(|| move_main(&dir, &repo, from, to));
            assert_eq!(written, u32::from(IN_PROCESS.get()));
            assert_eq!(git(&repo, &["status", "--porcelain"]), "MM other.txt");
        });
    }

    /// A kill after the index was written (by either writer) and before
    /// the branch moved, in a move that deletes a file: the restart
    /// finishes it (the deleted path, in neither the index nor the new
    /// commit, is not handed to git, which would refuse a pathspec that
    /// matches nothing).
    #[test]
    fn a_move_killed_after_its_index_was_written_is_finished_on_restart() {
        for in_process in [true, false] {
            let (dir, repo, from, to) = files_only_change(&[]);
            let state = state_dir(&dir);
            let handle = Repository::open(&repo).unwrap();
            let diff = tree::commit_changes(&handle, from, to).unwrap();
            if in_process {
                let written = in_process::write(&handle, &repo, &diff);
                assert!(matches!(written, in_process::Written::Done), "{written:?}");
            } else {
                write_paths(&repo, to, &pathspecs(&diff)).unwrap();
            }
            cut_short(&state, &repo, from, to);
            let resumed = resume(&repo, &state).unwrap();
            assert!(
                matches!(resumed, Resumed::Completed { .. }),
                "in-process {in_process}: {resumed:?}"
            );
            assert_eq!(git(&repo, &["rev-parse", "main"]), to.to_string());
            assert_eq!(git(&repo, &["status", "--porcelain"]), "");
        }
    }

    /// A folder whose only file the move renames stays the same folder,
    /// its mode kept, as git leaves it (it removes emptied folders last).
    #[test]
    fn the_folder_of_a_renamed_file_stays() {
        each_writer(|| {
            use std::os::unix::fs::{MetadataExt, PermissionsExt};
            let (dir, repo, from) = committed(&[("d/old.txt", "x\n"), ("a.txt", "a\n")], &[]);
            let blob = git(&repo, &["rev-parse", &format!("{from}:d/old.txt")]);
            let entry = format!("100644,{blob},d/new.txt");
            let to = commit_edited(
                &repo,
                from,
                &[
                    &["--force-remove", "d/old.txt"],
                    &["--add", "--cacheinfo", &entry],
                ],
            );
            let folder = repo.join("d");
            std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o700)).unwrap();
            let before = folder.metadata().unwrap();
            move_main(&dir, &repo, from, to);
            let after = folder.metadata().unwrap();
            assert_eq!((after.ino(), after.mode()), (before.ino(), before.mode()));
            assert!(folder.join("new.txt").is_file());
        });
    }

    /// A setting that reaches git through an include libgit2 does not
    /// follow (`includeIf.hasconfig:`) leaves the write to git, which
    /// applies it: `core.autocrlf` gets CRLF line endings.
    #[test]
    fn a_setting_from_an_include_only_git_reads_leaves_the_write_to_git() {
        let (dir, repo, from, to) = files_only_change(&[]);
        let included = dir.path().join("crlf.config");
        std::fs::write(&included, "[core]\n\tautocrlf = true\n").unwrap();
        git(
            &repo,
            &["config", "remote.origin.url", "https://example.com/x.git"],
        );
        let key = "includeIf.hasconfig:remote.*.url:https://example.com/**.path";
        git(&repo, &["config", key, included.to_str().unwrap()]);
        assert_eq!(git(&repo, &["config", "core.autocrlf"]), "true");
        let written = written_in_process(|| move_main(&dir, &repo, from, to));
        assert_eq!(written, 0);
        assert_eq!(std::fs::read(repo.join("edit.txt")).unwrap(), b"two\r\n");
    }

    /// The in-process write checks each path again under the index's lock
    /// (the check before it ran without the lock): a file made executable
    /// since (its stat data otherwise the same, `core.trustctime` off), or
    /// a person's file where the move adds one, declines the write, and
    /// nothing is written.
    #[test]
    fn the_in_process_write_checks_each_path_again_under_the_lock() {
        use std::os::unix::fs::PermissionsExt;
        type Change = fn(&Path);
        let changes: [(&str, Change); 2] = [
            ("executable", |repo| {
                let edit = repo.join("edit.txt");
                std::fs::set_permissions(&edit, std::fs::Permissions::from_mode(0o755)).unwrap();
            }),
            ("added", |repo| {
                std::fs::create_dir_all(repo.join("new/sub")).unwrap();
                std::fs::write(repo.join("new/sub/n.txt"), "mine\n").unwrap();
            }),
        ];
        for (case, change) in changes {
            let (_dir, repo, from, to) = files_only_change(&[("core.trustctime", "false")]);
            let handle = Repository::open(&repo).unwrap();
            let diff = tree::commit_changes(&handle, from, to).unwrap();
            change(&repo);
            let index = std::fs::read(repo.join(".git/index")).unwrap();
            let written = in_process::write(&handle, &repo, &diff);
            assert!(
                matches!(written, in_process::Written::Declined(_)),
                "{case}: {written:?}"
            );
            assert_eq!(
                std::fs::read(repo.join(".git/index")).unwrap(),
                index,
                "{case}"
            );
            assert!(!repo.join(".git/index.lock").exists(), "{case}");
            assert_eq!(
                std::fs::read_to_string(repo.join("edit.txt")).unwrap(),
                "one\n"
            );
        }
    }

    /// What the in-process write leaves to git, each moved all the same:
    /// attributes (in a folder above a changed path, in `info/`),
    /// conversions, a case-insensitive checkout, an index of version 4, with
    /// git's untracked cache or over 1 MiB,
    /// symbolic links and a file turned folder; a file whose stat data are
    /// stale, and one written in the index's second.
    #[test]
    fn moves_the_in_process_write_declines_are_written_by_git() {
        type Case = (
            &'static str,
            &'static [(&'static str, &'static str)],
            fn(&Path),
        );
        let cases: [Case; 8] = [
            ("autocrlf", &[("core.autocrlf", "input")], |_| {}),
            (
                "untracked cache",
                &[("core.untrackedCache", "true")],
                |repo| {
                    git(repo, &["status", "--porcelain"]);
                },
            ),
            ("ignorecase", &[("core.ignorecase", "true")], |_| {}),
            ("index v4", &[("index.version", "4")], |_| {}),
            ("info/attributes", &[], |repo| {
                std::fs::write(repo.join(".git/info/attributes"), "*.txt text\n").unwrap();
            }),
            ("attributes above", &[], |repo| {
                std::fs::create_dir_all(repo.join("new")).unwrap();
                std::fs::write(repo.join("new/.gitattributes"), "*.txt text\n").unwrap();
            }),
            ("stale stat data", &[], |repo| {
                let handle = Repository::open(repo).unwrap();
                let mut index = handle.index().unwrap();
                let mut entry = index.get_path(Path::new("edit.txt"), 0).unwrap();
                entry.mtime = git2::IndexTime::new(1_000_000_000, 0);
                index.add(&entry).unwrap();
                index.write().unwrap();
            }),
            ("racy", &[], |repo| {
                std::fs::write(repo.join("edit.txt"), "one\n").unwrap();
                git(repo, &["add", "edit.txt"]);
            }),
        ];
        for (case, config, setup) in cases {
            let (dir, repo, from, to) = files_only_change(config);
            setup(&repo);
            let written = written_in_process(|| move_main(&dir, &repo, from, to));
            assert_eq!(written, 0, "{case}");
            assert_eq!(
                std::fs::read_to_string(repo.join("new/sub/n.txt")).unwrap(),
                "added in a new folder\n",
                "{case}"
            );
            let status = git(&repo, &["status", "--porcelain"]);
            let expected = if case == "attributes above" {
                "?? new/.gitattributes"
            } else {
                ""
            };
            assert_eq!(status, expected, "{case}");
        }
        let (dir, repo, from, to) = every_kind_of_change();
        let written = written_in_process(|| move_main(&dir, &repo, from, to));
        assert_eq!(written, 0, "symbolic links, a file turned folder");
        assert_holds(&repo, to);
        // Regular files only, one of them turned into a folder.
        let (dir, repo, from) = committed(&[("fold", "a file\n"), ("a.txt", "a\n")], &[]);
        let blob = git(&repo, &["rev-parse", &format!("{from}:a.txt")]);
        let entry = format!("100644,{blob},fold/in.txt");
        let to = commit_edited(
            &repo,
            from,
            &[&["--add", "--replace", "--cacheinfo", &entry]],
        );
        let written = written_in_process(|| move_main(&dir, &repo, from, to));
        assert_eq!(written, 0, "a file turned folder");
        assert_eq!(
            std::fs::read_to_string(repo.join("fold/in.txt")).unwrap(),
            "a\n"
        );
        // An index over 1 MiB: 12,000 more entries (of one blob, their
        // files absent: deleted, as git sees them, and let be).
        let (dir, repo, from, to) = files_only_change(&[]);
        let blob = git(&repo, &["rev-parse", &format!("{from}:other.txt")]);
        let info: String = (0..12_000)
            .map(|i| {
                format!(
                    "100644 {blob}\tmany/folder-{:03}/file-{i:05}.txt\n",
                    i / 100
                )
            })
            .collect();
        let mut update = cmd::command(&repo)
            .args(["update-index", "--index-info"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write as _;
        let mut stdin = update.stdin.take().unwrap();
        stdin.write_all(info.as_bytes()).unwrap();
        drop(stdin);
        assert!(update.wait().unwrap().success());
        assert!(repo.join(".git/index").metadata().unwrap().len() > 1 << 20);
        let written = written_in_process(|| move_main(&dir, &repo, from, to));
        assert_eq!(written, 0, "an index over 1 MiB");
        assert_eq!(
            std::fs::read_to_string(repo.join("edit.txt")).unwrap(),
            "two\n"
        );
    }
}
