//! Watching an agent's worktree while it runs, so that collecting the
//! attempt asks git about the paths the agent changed instead of scanning
//! the whole worktree (docs/architecture.md, "What a task costs").
//!
//! The supervisor starts a [`Watch`] on the worktree before it starts the
//! agent, drains it while the agent runs and, once the agent's process
//! group is gone, writes what it saw to `changes.json` in the run folder,
//! before `exit.json`. inotify queues an event inside the system call that
//! changes the file system, so every change the agent made before it
//! exited is in the queue when the supervisor reads it for the last time.
//!
//! Only a worktree that was clean when the watch started can be collected
//! this way; the coordinator asks for a watch only then (a worktree just
//! made or recycled, no `post_create`, no merge left for the agent).
//!
//! What is watched: every folder of the worktree git could report a change
//! in, that is every folder except the worktree's `.git`, submodules, and
//! folders git ignores that hold no tracked file (`target/`,
//! `node_modules/`). A folder made while the agent runs is not watched: it
//! is recorded whole, and git is asked about all of it. What the record
//! says is a superset of what changed: a path the agent wrote back as it
//! was is listed too, and git says it is unchanged.
//!
//! What a watch cannot see, and the record then says [`Changes::Unknown`]
//! so that the worktree is scanned whole: events the kernel dropped (its
//! queue overflowed), more folders than the watch limit allows, a changed
//! `.gitignore`, `.gitattributes` or `.gitmodules` (which change what git
//! reports about paths that were not touched), more changed paths than a
//! command line holds. Writes through a shared memory mapping are not
//! reported by the kernel (nor to git's own file system monitors); an
//! agent that writes files that way and nothing else is not seen.

use std::collections::{BTreeSet, HashMap};
use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use git2::{ObjectType, Repository, Tree};
use inotify::{EventMask, Inotify, WatchMask};

use crate::runner::spec::Changes;

/// The most paths a record lists; more are folded into their folders.
pub const MAX_PATHS: usize = 1000;

/// The most bytes the listed paths take (they go on git's command line).
const MAX_BYTES: usize = 128 * 1024;

/// The most paths kept while the agent runs before they are folded.
const MAX_HELD: usize = 50_000;

/// The most folders watched; a larger worktree is scanned instead.
const MAX_DIRS: usize = 100_000;

/// Files whose change makes git report differently on paths not changed.
const RULE_FILES: [&str; 3] = [".gitignore", ".gitattributes", ".gitmodules"];

/// A watch of one worktree.
pub struct Watch {
    inotify: Inotify,
    /// The tree of `HEAD` when the watch started.
    head: git2::Oid,
    /// Watch descriptor -> the folder, relative to the worktree.
    dirs: HashMap<i32, PathBuf>,
    changed: BTreeSet<PathBuf>,
    /// Why the record cannot be trusted, once that is known.
    lost: Option<String>,
    buffer: Vec<u8>,
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch")
            .field("dirs", &self.dirs.len())
            .field("changed", &self.changed.len())
            .field("lost", &self.lost)
            .finish()
    }
}

const MASK: WatchMask = WatchMask::CREATE
    .union(WatchMask::DELETE)
    .union(WatchMask::MODIFY)
    .union(WatchMask::ATTRIB)
    .union(WatchMask::MOVED_FROM)
    .union(WatchMask::MOVED_TO)
    .union(WatchMask::ONLYDIR)
    .union(WatchMask::DONT_FOLLOW)
    .union(WatchMask::EXCL_UNLINK);

impl Watch {
    /// Starts watching `worktree`. An error means no watch: the worktree
    /// is then scanned whole.
    ///
    /// Past its first 64 folders, a thread per core (four at most) shares
    /// the folders to visit: a watch costs a read of its folder and the
    /// kernel's marking of every entry in it, about what a scan of the
    /// same files costs on one core, and it is paid before the agent starts
    /// (50 ms on one core, 29 ms on two, for 2,001 folders of 25 files on
    /// tmpfs).
    ///
    /// A worktree tracking fewer than `min_files` files is not watched
    /// (`Ok(Err(..))`, saying so): scanning it costs less than setting a
    /// watch up (closing it, which waits for the kernel to free its marks,
    /// is done after the coordinator was told the attempt ended).
    pub fn start(worktree: &Path, min_files: u64) -> io::Result<Result<Watch, Changes>> {
        let repo = Repository::open(worktree).map_err(io::Error::other)?;
        if min_files > 0
            && let Some(files) = tracked_files(&repo.path().join("index"))
            && files < min_files
        {
            return Ok(Err(Changes::Unknown {
                why: format!(
                    "the worktree tracks fewer files ({files}) than git.watch_min_files ({min_files}): scanned, not watched"
                ),
            }));
        }
        let head = repo
            .head()
            .and_then(|h| h.peel_to_tree())
            .map_err(io::Error::other)?
            .id();
        let inotify = Inotify::init()?;
        let walk = Walk {
            worktree,
            todo: std::sync::Mutex::new(Todo {
                folders: vec![(PathBuf::new(), Some(head))],
                busy: 0,
                seen: 0,
                stopped: false,
            }),
            ready: std::sync::Condvar::new(),
        };
        // Alone first: a small worktree is watched without threads.
        let mut found = HashMap::new();
        if !walk.work(&repo, inotify.watches(), &mut found, Some(ALONE))? {
            let walkers = std::thread::available_parallelism().map_or(1, |n| n.get().min(WALKERS));
            let helped = std::thread::scope(|s| {
                let helpers: Vec<_> = (1..walkers)
                    .map(|_| {
                        let watches = inotify.watches();
                        let walk = &walk;
                        s.spawn(move || {
                            let repo = Repository::open(walk.worktree).map_err(io::Error::other)?;
                            let mut found = HashMap::new();
                            walk.work(&repo, watches, &mut found, None)?;
                            Ok::<_, io::Error>(found)
                        })
                    })
                    .collect();
                let mine = walk.work(&repo, inotify.watches(), &mut found, None);
                let mut failed = mine.err();
                for helper in helpers {
                    match helper.join() {
                        Ok(Ok(theirs)) => found.extend(theirs),
                        Ok(Err(e)) => failed = failed.or(Some(e)),
                        Err(panic) => std::panic::resume_unwind(panic),
                    }
                }
                failed
            });
            if let Some(e) = helped {
                return Err(e);
            }
        }
        Ok(Ok(Watch {
            inotify,
            head,
            dirs: found,
            changed: BTreeSet::new(),
            lost: None,
            buffer: vec![0; 64 * 1024],
        }))
    }

    /// Reads the events queued so far.
    pub fn drain(&mut self) {
        let Watch {
            inotify,
            head: _,
            dirs,
            changed,
            lost,
            buffer,
        } = self;
        loop {
            let events = match inotify.read_events(buffer) {
                Ok(events) => events,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    lost.get_or_insert(format!("reading the watch's events failed: {e}"));
                    return;
                }
            };
            let mut any = false;
            for event in events {
                any = true;
                if event.mask.contains(EventMask::Q_OVERFLOW) {
                    lost.get_or_insert(
                        "the kernel dropped events (its queue overflowed)".to_owned(),
                    );
                    continue;
                }
                let id = event.wd.get_watch_descriptor_id();
                if event.mask.contains(EventMask::IGNORED) {
                    dirs.remove(&id);
                    continue;
                }
                if let (Some(dir), Some(name)) = (dirs.get(&id), event.name) {
                    // The worktree's `.git` file names its admin folder;
                    // git reports no change there.
                    if dir.as_os_str().is_empty() && name == ".git" {
                        continue;
                    }
                    changed.insert(dir.join(name));
                }
            }
            if !any {
                return;
            }
            if changed.len() > MAX_HELD {
                fold(changed, MAX_PATHS);
            }
        }
    }

    /// Reads the last events and says what changed (the watch stays open
    /// until dropped).
    pub fn finish(&mut self) -> Changes {
        self.drain();
        if let Some(why) = self.lost.take() {
            return Changes::Unknown { why };
        }
        let mut changed = std::mem::take(&mut self.changed);
        if let Some(rule) = changed.iter().find(|p| {
            p.file_name()
                .is_some_and(|n| RULE_FILES.iter().any(|r| OsStr::new(r) == n))
        }) {
            return Changes::Unknown {
                why: format!("`{}` changed", rule.display()),
            };
        }
        fold(&mut changed, MAX_PATHS);
        let bytes: usize = changed.iter().map(|p| p.as_os_str().len() + 1).sum();
        if changed.iter().any(|p| p.as_os_str().is_empty()) || bytes > MAX_BYTES {
            return Changes::Unknown {
                why: "too many paths changed to name them".to_owned(),
            };
        }
        if changed.iter().any(|p| p.to_str().is_none()) {
            return Changes::Unknown {
                why: "a path that is not UTF-8 changed".to_owned(),
            };
        }
        Changes::Paths {
            head: self.head.to_string(),
            paths: changed.into_iter().collect(),
        }
    }
}

/// Returns the number of entries of an index file, from its header
/// (`DIRC`, version, count), if it reads as one.
fn tracked_files(index: &Path) -> Option<u64> {
    use std::io::Read;
    let mut header = [0u8; 12];
    std::fs::File::open(index)
        .ok()?
        .read_exact(&mut header)
        .ok()?;
    if &header[..4] != b"DIRC" {
        return None;
    }
    Some(u64::from(u32::from_be_bytes(
        header[8..12].try_into().ok()?,
    )))
}

/// The most threads that set a watch up (one per core, up to this).
const WALKERS: usize = 4;

/// Folders the first walker visits alone before the others start.
const ALONE: usize = 64;

/// The folders a watch still has to visit, shared by its walkers.
struct Walk<'a> {
    worktree: &'a Path,
    todo: std::sync::Mutex<Todo>,
    ready: std::sync::Condvar,
}

/// A folder to watch (relative to the worktree), with its tree in `HEAD`
/// when it has one.
type Folder = (PathBuf, Option<git2::Oid>);

struct Todo {
    folders: Vec<Folder>,
    /// Walkers visiting a folder (they may find more).
    busy: usize,
    /// Folders taken so far.
    seen: usize,
    /// A walker failed: the others stop too.
    stopped: bool,
}

impl Walk<'_> {
    /// Visits folders, recording the watches it sets (descriptor ->
    /// folder) in `found`, until none is left (`true`), or it has visited
    /// `limit` of them (`false`), or one fails.
    fn work(
        &self,
        repo: &Repository,
        mut watches: inotify::Watches,
        found: &mut HashMap<i32, PathBuf>,
        limit: Option<usize>,
    ) -> io::Result<bool> {
        let mut visited = 0;
        loop {
            if limit.is_some_and(|l| visited >= l) {
                return Ok(false);
            }
            let (rel, tree) = {
                let mut todo = self.todo.lock().unwrap_or_else(|p| p.into_inner());
                loop {
                    if todo.stopped {
                        return Ok(true);
                    }
                    if let Some(next) = todo.folders.pop() {
                        todo.busy += 1;
                        todo.seen += 1;
                        if todo.seen > MAX_DIRS {
                            drop(todo);
                            return Err(self.stop(io::Error::other(format!(
                                "the worktree has more than {MAX_DIRS} folders"
                            ))));
                        }
                        break next;
                    }
                    if todo.busy == 0 {
                        return Ok(true);
                    }
                    todo = self.ready.wait(todo).unwrap_or_else(|p| p.into_inner());
                }
            };
            match self.visit(repo, &mut watches, &rel, tree) {
                Ok((wd, children)) => {
                    found.insert(wd, rel);
                    visited += 1;
                    let mut todo = self.todo.lock().unwrap_or_else(|p| p.into_inner());
                    todo.folders.extend(children);
                    todo.busy -= 1;
                    self.ready.notify_all();
                }
                Err(e) => return Err(self.stop(e)),
            }
        }
    }

    /// Stops every walker: the watch is given up.
    fn stop(&self, e: io::Error) -> io::Error {
        let mut todo = self.todo.lock().unwrap_or_else(|p| p.into_inner());
        todo.stopped = true;
        self.ready.notify_all();
        e
    }

    /// Watches one folder, then lists the folders in it to visit: those
    /// of its tree in `HEAD`, and untracked ones git does not ignore.
    fn visit(
        &self,
        repo: &Repository,
        watches: &mut inotify::Watches,
        rel: &Path,
        tree: Option<git2::Oid>,
    ) -> io::Result<(i32, Vec<Folder>)> {
        let full = self.worktree.join(rel);
        let wd = watches.add(&full, MASK)?.get_watch_descriptor_id();
        let tree: Option<Tree> = tree.and_then(|id| repo.find_tree(id).ok());
        let mut children = Vec::new();
        for entry in std::fs::read_dir(&full)? {
            let entry = entry?;
            if !entry.file_type()?.is_dir() {
                continue;
            }
            let name = entry.file_name();
            if rel.as_os_str().is_empty() && name == ".git" {
                continue;
            }
            let child = rel.join(&name);
            let in_head = tree
                .as_ref()
                .and_then(|t| t.get_name_bytes(name.as_bytes()));
            match in_head.map(|e| (e.kind(), e.id())) {
                Some((Some(ObjectType::Tree), id)) => children.push((child, Some(id))),
                // A submodule: a repository of its own, whose changes
                // orch does not collect.
                Some((Some(ObjectType::Commit), _)) => {}
                _ => {
                    if !repo.status_should_ignore(&child).unwrap_or(false) {
                        children.push((child, None));
                    }
                }
            }
        }
        Ok((wd, children))
    }
}

/// Replaces paths by their folders, deepest first, until at most `limit`
/// are left (the root, an empty path, stands for the whole worktree). A
/// path under another listed one is dropped: the folder covers it.
fn fold(paths: &mut BTreeSet<PathBuf>, limit: usize) {
    drop_covered(paths);
    while paths.len() > limit {
        let deepest = paths
            .iter()
            .map(|p| p.components().count())
            .max()
            .unwrap_or(0);
        if deepest <= 1 {
            paths.clear();
            paths.insert(PathBuf::new());
            return;
        }
        *paths = paths
            .iter()
            .map(|p| {
                if p.components().count() == deepest {
                    p.parent().map(Path::to_owned).unwrap_or_default()
                } else {
                    p.clone()
                }
            })
            .collect();
        drop_covered(paths);
    }
}

/// Drops every path that lies under another path of the set.
fn drop_covered(paths: &mut BTreeSet<PathBuf>) {
    let mut kept: Vec<PathBuf> = Vec::with_capacity(paths.len());
    // In sorted order a folder comes right before what lies under it
    // (`a`, `a/b`, `a/c`, `a.txt`): compare with the last one kept.
    for path in std::mem::take(paths) {
        if kept.last().is_some_and(|k| path.starts_with(k)) {
            continue;
        }
        kept.push(path);
    }
    paths.extend(kept);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn git(dir: &Path, args: &[&str]) {
        let out = std::process::Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {out:?}");
    }

    fn paths(changes: Changes) -> Vec<String> {
        match changes {
            Changes::Paths { paths, .. } => paths.iter().map(|p| p.display().to_string()).collect(),
            Changes::Unknown { why } => panic!("unknown: {why}"),
        }
    }

    /// A repository with `a.txt`, `src/lib.rs`, `src/deep/x.rs`,
    /// `docs/old.md`, an ignored `target/` holding files, and an empty
    /// untracked `spare/`.
    fn repo() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("r");
        for d in ["src/deep", "docs", "target/debug", "spare"] {
            std::fs::create_dir_all(repo.join(d)).unwrap();
        }
        for (f, text) in [
            ("a.txt", "a\n"),
            ("src/lib.rs", "lib\n"),
            ("src/deep/x.rs", "x\n"),
            ("docs/old.md", "old\n"),
            (".gitignore", "target/\n"),
            ("target/debug/out", "built\n"),
        ] {
            std::fs::write(repo.join(f), text).unwrap();
        }
        git(&repo, &["init", "-q", "-b", "main"]);
        git(&repo, &["add", "-A"]);
        git(&repo, &["commit", "-q", "-m", "init"]);
        (dir, repo)
    }

    #[test]
    fn every_kind_of_change_is_listed_and_ignored_folders_are_not_watched() {
        let (_dir, repo) = repo();
        let mut watch = Watch::start(&repo, 0).unwrap().unwrap();
        let watched: BTreeSet<String> = watch
            .dirs
            .values()
            .map(|p| p.display().to_string())
            .collect();
        assert_eq!(
            watched.into_iter().collect::<Vec<_>>(),
            ["", "docs", "spare", "src", "src/deep"]
        );
        std::fs::write(repo.join("src/deep/x.rs"), "changed\n").unwrap();
        std::fs::create_dir_all(repo.join("new/inner")).unwrap();
        std::fs::write(repo.join("new/inner/f.rs"), "new\n").unwrap();
        std::fs::remove_file(repo.join("docs/old.md")).unwrap();
        std::fs::rename(repo.join("a.txt"), repo.join("spare/b.txt")).unwrap();
        watch.drain();
        let mode = std::os::unix::fs::PermissionsExt::from_mode(0o755);
        std::fs::set_permissions(repo.join("src/lib.rs"), mode).unwrap();
        std::fs::write(repo.join("target/debug/out"), "rebuilt\n").unwrap();
        assert_eq!(
            paths(watch.finish()),
            [
                "a.txt",
                "docs/old.md",
                "new",
                "spare/b.txt",
                "src/deep/x.rs",
                "src/lib.rs"
            ]
        );
    }

    #[test]
    fn a_worktree_of_many_folders_is_watched_whole_by_several_walkers() {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("r");
        for i in 0..150 {
            let folder = repo.join(format!("m{}/d{i}", i % 7));
            std::fs::create_dir_all(&folder).unwrap();
            std::fs::write(folder.join("f.txt"), "f\n").unwrap();
        }
        std::fs::create_dir_all(repo.join("ignored/deep")).unwrap();
        std::fs::write(repo.join(".gitignore"), "ignored/\n").unwrap();
        git(&repo, &["init", "-q", "-b", "main"]);
        git(&repo, &["add", "-A"]);
        git(&repo, &["commit", "-q", "-m", "init"]);
        let mut watch = Watch::start(&repo, 0).unwrap().unwrap();
        // The root, 7 middle folders, 150 leaves; not the ignored ones.
        assert_eq!(watch.dirs.len(), 158);
        std::fs::write(repo.join("m3/d101/f.txt"), "changed\n").unwrap();
        assert_eq!(paths(watch.finish()), ["m3/d101/f.txt"]);
    }

    #[test]
    fn a_worktree_of_fewer_files_than_the_minimum_is_scanned_not_watched() {
        let (_dir, repo) = repo();
        let Err(Changes::Unknown { why }) = Watch::start(&repo, 6).unwrap() else {
            panic!("a worktree of 5 files was watched with a minimum of 6");
        };
        assert_eq!(
            why,
            "the worktree tracks fewer files (5) than git.watch_min_files (6): scanned, not watched"
        );
        assert!(Watch::start(&repo, 5).unwrap().is_ok());
    }

    #[test]
    fn events_the_kernel_dropped_ask_for_a_whole_scan() {
        let queue: usize = std::fs::read_to_string("/proc/sys/fs/inotify/max_queued_events")
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(16_384);
        if queue > 200_000 {
            eprintln!("SKIPPED: max_queued_events is {queue}; overflowing it would take too long");
            return;
        }
        let (_dir, repo) = repo();
        let mut watch = Watch::start(&repo, 0).unwrap().unwrap();
        // Each new file is two events (made, written): more than the queue
        // holds, with no read in between.
        for i in 0..queue / 2 + 16 {
            std::fs::write(repo.join(format!("src/f{i}")), "x").unwrap();
        }
        let Changes::Unknown { why } = watch.finish() else {
            panic!("a watch that lost events was trusted");
        };
        assert_eq!(why, "the kernel dropped events (its queue overflowed)");
    }

    #[test]
    fn a_changed_gitignore_asks_for_a_whole_scan() {
        let (_dir, repo) = repo();
        let mut watch = Watch::start(&repo, 0).unwrap().unwrap();
        std::fs::write(repo.join(".gitignore"), "").unwrap();
        let Changes::Unknown { why } = watch.finish() else {
            panic!("a changed .gitignore was trusted");
        };
        assert_eq!(why, "`.gitignore` changed");
    }

    #[test]
    fn many_paths_fold_into_their_folders() {
        let table: [(&[&str], usize, &[&str]); 4] = [
            (&["a/b/c", "a/b/d", "e"], 3, &["a/b/c", "a/b/d", "e"]),
            (&["a/b/c", "a/b/d", "e"], 2, &["a/b", "e"]),
            (&["a", "a/b/c", "ab"], 5, &["a", "ab"]),
            (&["a", "b", "c"], 2, &[""]),
        ];
        for (given, limit, want) in table {
            let mut set: BTreeSet<PathBuf> = given.iter().map(PathBuf::from).collect();
            fold(&mut set, limit);
            let got: Vec<String> = set.iter().map(|p| p.display().to_string()).collect();
            assert_eq!(got, want, "{given:?} to {limit}");
        }
    }
}
