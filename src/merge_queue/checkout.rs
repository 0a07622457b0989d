//! Moving a checked-out target: the worktree that has the target branch
//! checked out (often the user's own checkout) is brought from the head a
//! merge was built on to the merged commit, under git's own rule for moving
//! a checked-out branch, and a move cut short is finished on the next try.
//!
//! The rule (what `git merge --ff-only` and `git read-tree -m -u` apply,
//! plus ignored files): only the paths the update changes matter. Such a
//! path that is modified (staged or not) blocks the move, and so does an
//! untracked *or ignored* file the update would write over (git itself
//! treats ignored files as expendable and would replace them: a user's
//! ignored `config.local` must not be). Every other local change is let
//! be and carried. [`blockers`] names every path in the way; then
//! [`fast_forward`] runs `git read-tree -m -u <from> <to>`, which updates
//! the index and the files in one step and enforces the same rule
//! atomically, and moves the branch by compare-and-swap from `from`.
//!
//! `checkout.json` in the state dir journals a move from before git starts
//! until the branch has moved. A move cut short (orch and its git child
//! killed, the machine stopped) leaves it behind; [`resume`] then finishes
//! the move: each path the update changes holds the old content, the new
//! one, or something a person wrote since. Only when no path holds a
//! person's change are the paths written and the branch moved, so nothing
//! anyone wrote is overwritten; otherwise merging waits and names them.
//! Git itself runs in a process group of its own (`git::cmd`), so a
//! terminal's Ctrl-C never cuts it short.

use std::collections::BTreeSet;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use git2::{ObjectType, Oid, Repository};
use serde::{Deserialize, Serialize};

use crate::git::cmd::{self, CommandError};
use crate::git::{GitError, refs, tree};
use crate::state::StateDir;

use super::outcome::MergeError;

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
    /// The git process updating the checkout, once started.
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
    /// Git refused to update the checkout; nothing changed.
    Refused(CommandError),
    /// Git was killed half-way and the move cannot be finished yet.
    Stuck(Stuck),
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
    #[error("the git process (pid {pid}) that updated `{}` before orch stopped is still running", checkout.display())]
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

fn journal_err(path: &Path) -> impl FnOnce(std::io::Error) -> MergeError + '_ {
    move |source| MergeError::Journal {
        path: path.to_owned(),
        source,
    }
}

/// Returns every path that stops `checkout` from moving from `from` to `to`.
///
/// Only the paths the update changes are looked at: their index entries
/// and whether their files differ from them come from git, asked about
/// those paths alone ([`IndexView`]), instead of loading the checkout's
/// whole index in-process. A folder where the update writes a file is in
/// the way only for what it holds beyond the tracked files the update
/// deletes (each checked as a path of its own), as git has it.
pub fn blockers(checkout: &Path, from: Oid, to: Oid) -> Result<Vec<Blocker>, MergeError> {
    let repo = Repository::open(checkout).map_err(git_err(checkout))?;
    let diff = tree::commit_changes(&repo, from, to).map_err(git_err(checkout))?;
    let deleted = deleted_paths(&diff);
    let mut asked: Vec<PathBuf> = Vec::new();
    let mut file_dirs = BTreeSet::new();
    for change in &diff {
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
    let index = IndexView::read(checkout, &asked)?;
    let in_the_way = |path: &Path| match index.entry(path) {
        Some(_) => InTheWay::Modified,
        None => untracked_or_ignored(&repo, path),
    };
    let mut out = Vec::new();
    let mut seen_dirs = BTreeSet::new();
    for change in &diff {
        let path = change.path.as_path();
        let in_from = change.old.is_some();
        let in_to = change.new.is_some();
        let tracked = index.entry(path);
        let why = match (tracked, change.old) {
            (Some((id, mode)), Some(old)) if id != old.id || mode != old.mode as u32 => {
                Some(InTheWay::Modified)
            }
            (Some(_), None) => Some(InTheWay::Modified),
            (Some(_), Some(_)) => index.modified(path).then_some(InTheWay::Modified),
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
            (None, _) => on_disk(checkout, path).then(|| untracked_or_ignored(&repo, path)),
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

/// Returns what the folder `dir` of the checkout holds, at any depth
/// (files and symbolic links, not followed), beyond the paths in
/// `deleted`; a folder that cannot be read counts as held whole.
fn held_beyond(checkout: &Path, dir: &Path, deleted: &BTreeSet<&Path>) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut folders = vec![dir.to_owned()];
    while let Some(folder) = folders.pop() {
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
            } else if !deleted.contains(path.as_path()) {
                out.push(path);
            }
        }
    }
    out
}

/// The index entries (stage 0) of some paths of a checkout, and which of
/// their files differ from them: `git ls-files --stage` of those paths,
/// then `git diff --name-only` of the tracked ones. Git reads the index,
/// and the files of those paths alone: stat data first, the content when
/// the stat data differs or is racy (a file whose stat data alone is
/// stale is not modified, and git refreshes its entry). `ls-files
/// --modified` would do both in one, but it reads every file of the
/// index, whatever the paths asked.
#[derive(Debug, Default)]
struct IndexView {
    entries: std::collections::HashMap<PathBuf, (Oid, u32)>,
    modified: std::collections::HashSet<PathBuf>,
}

impl IndexView {
    fn read(checkout: &Path, paths: &[PathBuf]) -> Result<IndexView, MergeError> {
        let mut view = IndexView::default();
        let literal = |command: &[&str], chunk: &[PathBuf]| {
            let mut args: Vec<std::ffi::OsString> = vec!["--literal-pathspecs".into()];
            args.extend(command.iter().map(Into::into));
            args.push("--".into());
            args.extend(chunk.iter().map(|p| p.as_os_str().to_owned()));
            cmd::run(checkout, &args)
        };
        for chunk in paths.chunks(500) {
            let out = literal(&["ls-files", "-z", "--stage"], chunk)?;
            view.parse_stage(&out.stdout);
        }
        let tracked: Vec<PathBuf> = paths
            .iter()
            .filter(|p| view.entries.contains_key(*p))
            .cloned()
            .collect();
        for chunk in tracked.chunks(500) {
            let out = literal(&["diff", "--name-only", "-z", "--no-ext-diff"], chunk)?;
            view.modified.extend(
                out.stdout
                    .split(|b| *b == 0)
                    .filter(|p| !p.is_empty())
                    .map(|p| PathBuf::from(std::ffi::OsStr::from_bytes(p))),
            );
        }
        Ok(view)
    }

    /// Parses `<mode> <oid> <stage>\t<path>` records.
    fn parse_stage(&mut self, out: &[u8]) {
        for record in out.split(|b| *b == 0).filter(|r| !r.is_empty()) {
            let Some(tab) = record.iter().position(|b| *b == b'\t') else {
                continue;
            };
            let path = PathBuf::from(std::ffi::OsStr::from_bytes(&record[tab + 1..]));
            let head = String::from_utf8_lossy(&record[..tab]);
            let fields: Vec<&str> = head.split(' ').collect();
            let [mode, oid, "0"] = fields[..] else {
                continue;
            };
            if let (Ok(mode), Ok(oid)) = (u32::from_str_radix(mode, 8), Oid::from_str(oid)) {
                self.entries.insert(path, (oid, mode));
            }
        }
    }

    /// Returns the stage-0 entry of `path` (its blob and mode), if tracked.
    fn entry(&self, path: &Path) -> Option<(Oid, u32)> {
        self.entries.get(path).copied()
    }

    /// Returns the tracked paths under the folder `dir`.
    fn entries_under<'a>(&'a self, dir: &'a Path) -> impl Iterator<Item = &'a Path> + 'a {
        self.entries
            .keys()
            .map(PathBuf::as_path)
            .filter(move |p| *p != dir && p.starts_with(dir))
    }

    /// Returns whether the file of a tracked `path` differs from its entry.
    fn modified(&self, path: &Path) -> bool {
        self.modified.contains(path)
    }
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
/// updates the index and the files with `git read-tree -m -u`, then the
/// branch by compare-and-swap. The journal covers the whole move.
pub fn fast_forward(
    state_dir: &StateDir,
    checkout: &Path,
    target: &str,
    from: Oid,
    to: Oid,
    message: &str,
) -> Result<Forwarded, MergeError> {
    let path = state_dir.checkout_journal();
    let mut journal = Journal {
        checkout: checkout.to_owned(),
        target: target.to_owned(),
        from: from.to_string(),
        to: to.to_string(),
        git: None,
    };
    crate::fsio::write_json(&path, &journal).map_err(journal_err(&path))?;
    let mut output = match read_tree(state_dir, checkout, &mut journal)? {
        Ok(output) => output,
        Err(cut) => return Ok(cut),
    };
    if !output.status.success() && refresh_changed(checkout, from, to)? {
        output = match read_tree(state_dir, checkout, &mut journal)? {
            Ok(output) => output,
            Err(cut) => return Ok(cut),
        };
    }
    if !output.status.success() {
        crate::fsio::remove_if_present(&path).map_err(journal_err(&path))?;
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        return Ok(Forwarded::Refused(CommandError {
            argv: ["read-tree", "-m", "-u", &journal.from, &journal.to]
                .map(str::to_owned)
                .to_vec(),
            dir: checkout.to_owned(),
            code: output.status.code(),
            stderr,
        }));
    }
    let moved = move_branch(checkout, target, from, to, message)?;
    if !moved {
        // Someone moved the branch between the two steps: the files go back.
        cmd::run(
            checkout,
            ["read-tree", "-m", "-u", &journal.to, &journal.from],
        )?;
    }
    crate::fsio::remove_if_present(&path).map_err(journal_err(&path))?;
    Ok(if moved {
        Forwarded::Moved
    } else {
        Forwarded::TargetMoved
    })
}

/// Runs `git read-tree -m -u <from> <to>` in the checkout, its pid in the
/// journal; when git itself is killed half-way, finishes what it started
/// and returns how the move ended instead of git's output.
fn read_tree(
    state_dir: &StateDir,
    checkout: &Path,
    journal: &mut Journal,
) -> Result<Result<std::process::Output, Forwarded>, MergeError> {
    let path = &state_dir.checkout_journal();
    let args = ["read-tree", "-m", "-u", &journal.from, &journal.to];
    let child = cmd::command(checkout)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| command_error(checkout, &args, None, e.to_string()))?;
    journal.git = Some(GitProcess {
        pid: child.id(),
        ticks: crate::process::start_ticks(child.id()),
    });
    crate::fsio::write_json(path, journal).map_err(journal_err(path))?;
    let output = child
        .wait_with_output()
        .map_err(|e| command_error(checkout, &args, None, e.to_string()))?;
    if output.status.code().is_none() {
        // Git itself was killed half-way: finish what it started.
        return Ok(Err(match resume(checkout, state_dir)? {
            Resumed::Completed { .. } => Forwarded::Moved,
            Resumed::Waiting(stuck) => Forwarded::Stuck(stuck),
            Resumed::Nothing | Resumed::Abandoned => Forwarded::TargetMoved,
        }));
    }
    Ok(Ok(output))
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
    let index = IndexView::read(checkout, &paths)?;
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

fn command_error(dir: &Path, args: &[&str], code: Option<i32>, stderr: String) -> MergeError {
    MergeError::Git(GitError::Command(CommandError {
        argv: args.iter().map(|a| (*a).to_owned()).collect(),
        dir: dir.to_owned(),
        code,
        stderr,
    }))
}

/// Moves `refs/heads/<target>` from `from` to `to` with `git update-ref`
/// in the checkout (so that its `HEAD` reflog says so too); `false` when
/// the branch is no longer at `from`.
fn move_branch(
    checkout: &Path,
    target: &str,
    from: Oid,
    to: Oid,
    message: &str,
) -> Result<bool, MergeError> {
    let refname = format!("refs/heads/{target}");
    let (from_hex, to_hex) = (from.to_string(), to.to_string());
    match cmd::run(
        checkout,
        ["update-ref", "-m", message, &refname, &to_hex, &from_hex],
    ) {
        Ok(_) => Ok(true),
        Err(e) => {
            let now = refs::branch_tip(checkout, target)?;
            if now == Some(from) {
                Err(MergeError::from(e))
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
    if let Some(git) = journal.git
        && git.ticks.is_some()
        && crate::process::is_same(git.pid, git.ticks, None)
        && !crate::process::is_zombie(git.pid)
    {
        return Ok(Resumed::Waiting(Stuck::GitRunning {
            checkout: checkout.clone(),
            pid: git.pid,
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
        // Our own git died holding the lock (it is gone, checked above);
        // a lock from a git orch did not start is not ours to remove.
        if journal.git.is_none() {
            return Ok(Resumed::Waiting(Stuck::Locked { lock }));
        }
        crate::fsio::remove_if_present(&lock).map_err(journal_err(&lock))?;
    }
    let plan = finish_plan(&git, checkout, from, to)?;
    if !plan.changed.is_empty() {
        return Ok(Resumed::Waiting(Stuck::Changed {
            checkout: checkout.clone(),
            to: journal.to.clone(),
            blockers: plan.changed,
        }));
    }
    let literal = "--literal-pathspecs";
    for chunk in plan.write.chunks(500) {
        let mut args = vec![literal, "checkout", &journal.to, "--"];
        args.extend(chunk.iter().map(String::as_str));
        cmd::run(checkout, &args)?;
    }
    for chunk in plan.remove.chunks(500) {
        let mut args = vec![literal, "rm", "-q", "-f", "--ignore-unmatch", "--"];
        args.extend(chunk.iter().map(String::as_str));
        cmd::run(checkout, &args)?;
    }
    let message = format!("orch: finish moving `{}` cut short", journal.target);
    if move_branch(checkout, &journal.target, from, to, &message)? {
        drop_journal()?;
        Ok(Resumed::Completed {
            to: journal.to.clone(),
        })
    } else {
        drop_journal()?;
        Ok(Resumed::Abandoned)
    }
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
    if let Some(git) = journal.git
        && git.ticks.is_some()
        && crate::process::is_same(git.pid, git.ticks, None)
        && !crate::process::is_zombie(git.pid)
    {
        let stuck = Stuck::GitRunning {
            checkout,
            pid: git.pid,
        };
        return Ok(Pending::Waiting(journal, stuck));
    }
    let head = refs::branch_tip(repo, &journal.target)?;
    if head != Some(from) || !checkout.is_dir() {
        return Ok(Pending::Nothing);
    }
    let git = Repository::open(&checkout).map_err(git_err(&checkout))?;
    let lock = git.path().join("index.lock");
    if lock.exists() && journal.git.is_none() {
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

/// What finishing a move cut short must do, path by path.
#[derive(Debug, Default)]
struct FinishPlan {
    /// Paths to write from the new commit.
    write: Vec<String>,
    /// Paths the new commit deletes.
    remove: Vec<String>,
    /// Paths holding neither the old nor the new content: a person's.
    changed: Vec<Blocker>,
}

/// Returns the blob id of a file as git would store it (its clean filter
/// applied, so that a smudged file hashes to its blob).
fn hash_file(checkout: &Path, path: &str) -> Result<Oid, MergeError> {
    let text = cmd::stdout(checkout, ["hash-object", "--", path])?;
    Ok(refs::parse_oid(text.trim()).unwrap_or(Oid::ZERO_SHA1))
}

fn finish_plan(
    repo: &Repository,
    checkout: &Path,
    from: Oid,
    to: Oid,
) -> Result<FinishPlan, MergeError> {
    let diff = tree::commit_changes(repo, from, to).map_err(git_err(checkout))?;
    let index = repo.index().map_err(git_err(checkout))?;
    let mut plan = FinishPlan::default();
    for change in &diff {
        let path = change.path.as_path();
        let text = path.to_string_lossy().into_owned();
        let in_to = change.new.is_some();
        let staged = index.get_path(path, 0).map(|e| e.id);
        let id = |side: Option<tree::Side>| side.map_or(Oid::ZERO_SHA1, |s| s.id);
        let expected = [id(change.old), id(change.new)];
        let staged_ok = staged.is_none_or(|id| expected.contains(&id));
        let full = checkout.join(path);
        let content = match full.symlink_metadata() {
            Ok(meta) if meta.is_file() => Some(hash_file(checkout, &text)?),
            Ok(meta) if meta.file_type().is_symlink() => {
                std::fs::read_link(&full).ok().and_then(|t| {
                    Oid::hash_object(ObjectType::Blob, t.as_os_str().as_encoded_bytes()).ok()
                })
            }
            Ok(_) => Some(Oid::ZERO_SHA1),
            Err(_) => None,
        };
        let content_ok = match content {
            None => true,
            Some(id) => expected.contains(&id) && !id.is_zero(),
        };
        if !(staged_ok && content_ok) {
            plan.changed.push(Blocker {
                path: text,
                why: InTheWay::ChangedMeanwhile,
            });
        } else if in_to {
            plan.write.push(text);
        } else {
            plan.remove.push(text);
        }
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn git(dir: &Path, args: &[&str]) -> String {
        let out = cmd::command(dir)
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
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

    #[test]
    fn stale_stat_data_of_a_path_the_update_changes_does_not_block_it() {
        let (dir, repo, from, to) = stale_checkout();
        let state = StateDir::at(&dir.path().join("state"));
        std::fs::create_dir_all(state.path()).unwrap();
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
    }

    #[test]
    fn a_modified_path_the_update_changes_still_refuses_after_the_refresh() {
        let (dir, repo, from, to) = stale_checkout();
        let state = StateDir::at(&dir.path().join("state"));
        std::fs::create_dir_all(state.path()).unwrap();
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
    /// hook leaves `hook-ran` in the folder above the checkout.
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
        let oid = |s: &str| Oid::from_str(s).unwrap();
        (dir, repo, oid(&from), oid(&to))
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
        let (dir, repo, from, to) = every_kind_of_change();
        let state = StateDir::at(&dir.path().join("state"));
        std::fs::create_dir_all(state.path()).unwrap();
        let kept = git(&repo, &["rev-parse", &format!("{to}:keep")]);
        assert_eq!(
            cached_tree(&repo, "keep").map(|o| o.to_string()),
            Some(kept.clone())
        );
        assert_eq!(blockers(&repo, from, to).unwrap(), Vec::new());
        let moved = fast_forward(&state, &repo, "main", from, to, "test").unwrap();
        assert!(matches!(moved, Forwarded::Moved), "{moved:?}");
        assert_eq!(git(&repo, &["rev-parse", "main"]), to.to_string());
        assert_holds(&repo, to);
        assert_eq!(
            cached_tree(&repo, "keep").map(|o| o.to_string()),
            Some(kept),
            "the index's cached tree id of an untouched folder is kept"
        );
        assert!(
            !dir.path().join("hook-ran").exists(),
            "no post-checkout hook"
        );
        assert!(!state.checkout_journal().exists());
    }

    #[test]
    fn a_folder_where_the_update_writes_a_file_is_in_the_way_only_for_what_the_update_leaves() {
        let (_dir, repo, from, to) = every_kind_of_change();
        std::fs::write(repo.join(".git/info/exclude"), "*.log\n").unwrap();
        std::fs::write(repo.join("dfile/notes.txt"), "mine\n").unwrap();
        std::fs::write(repo.join("dfile/build.log"), "ignored\n").unwrap();
        std::fs::write(repo.join("dfile/staged.txt"), "staged\n").unwrap();
        std::fs::write(repo.join("new"), "staged where a folder goes\n").unwrap();
        git(&repo, &["add", "dfile/staged.txt", "new"]);
        let blocker = |path: &str, why| Blocker {
            path: path.to_owned(),
            why,
        };
        assert_eq!(
            blockers(&repo, from, to).unwrap(),
            [
                blocker("dfile/build.log", InTheWay::Ignored),
                blocker("dfile/notes.txt", InTheWay::Untracked),
                blocker("dfile/staged.txt", InTheWay::Modified),
                blocker("new", InTheWay::Modified),
            ]
        );
    }
}
