//! What the check before a move needs of the checkout's index: the
//! entries of the paths the update changes, and which of their files
//! differ from them ([`IndexView`]), found one of three ways.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use git2::{Oid, Repository};

use crate::git::cmd;

use super::super::outcome::MergeError;

/// The index entries (stage 0) of some paths of a checkout (and of the
/// tracked paths under those that are folders), and which of their files
/// differ from them. Git's rule for "differ": stat data first, the
/// content when the stat data differs or is racy (a file whose stat data
/// alone is stale is not modified). An entry marked assume-unchanged or
/// skip-worktree (`git update-index`, a way to keep local edits of a
/// tracked file) is taken at its word there; those are `flagged`, and
/// their files are compared by content (`content_id`).
///
/// Three ways to the same view, tried in turn ([`IndexView::read`]):
/// - [`IndexView::by_stat`] reads the index in-process, without checking
///   its hash (as git reads it), and settles each file by its stat data
///   alone where git would: the common case, a merge that changes files
///   nobody touched here. It gives up on any file whose stat data do not
///   settle it (changed, or written in the same second as the index),
///   since comparing content means applying git's filters;
/// - a small index is loaded by libgit2 ([`IndexView::load`]), which
///   compares content as git does and costs less than starting a git;
/// - a large one is asked of git about those paths alone
///   ([`IndexView::ask_git`]), because libgit2 checks the SHA-1 of the
///   whole file on every read.
#[derive(Debug, Default, PartialEq)]
pub(super) struct IndexView {
    entries: std::collections::HashMap<PathBuf, (Oid, u32)>,
    flagged: std::collections::HashSet<PathBuf>,
    modified: std::collections::HashSet<PathBuf>,
}

/// Git's rule for a file its index entry's stat data settle as not
/// modified, with the checkout's configuration (`core.fileMode`,
/// `core.trustctime`, `core.checkStat`): the file's kind and executable
/// bit match the entry's mode, its stat data match the entry's, and the
/// entry is not racy. Stat data match to the nanosecond (git, as Debian
/// builds it, compares seconds: a file rewritten within the second, its
/// size and mtime's second the same, is left to the content here), and
/// an entry is racy when its mtime is in the index's second or later, as
/// git has it.
pub(super) struct StatRule {
    compare: gix_index::entry::stat::Options,
    racy: gix_index::entry::stat::Options,
    file_mode: bool,
}

impl StatRule {
    pub(super) fn of(repo: &Repository) -> StatRule {
        let config = repo.config().ok();
        let config_bool = |key: &str, default: bool| {
            config
                .as_ref()
                .and_then(|c| c.get_bool(key).ok())
                .unwrap_or(default)
        };
        let compare = gix_index::entry::stat::Options {
            trust_ctime: config_bool("core.trustctime", true),
            check_stat: config
                .as_ref()
                .and_then(|c| c.get_string("core.checkStat").ok())
                .is_none_or(|v| !v.eq_ignore_ascii_case("minimal")),
            use_nsec: true,
            use_stdev: false,
        };
        StatRule {
            compare,
            racy: gix_index::entry::stat::Options {
                use_nsec: false,
                ..compare
            },
            file_mode: config_bool("core.fileMode", true),
        }
    }

    /// Returns whether `entry` of `index` settles the file whose `lstat`
    /// is `meta` as not modified.
    pub(super) fn settles(
        &self,
        entry: &gix_index::Entry,
        meta: &gix_index::fs::Metadata,
        index: &gix_index::State,
    ) -> bool {
        use gix_index::entry::{Mode, Stat};
        let file_mode = self.file_mode;
        let kind_matches = match entry.mode {
            Mode::FILE => meta.is_file() && !(file_mode && meta.is_executable()),
            Mode::FILE_EXECUTABLE => meta.is_file() && (meta.is_executable() || !file_mode),
            Mode::SYMLINK => meta.is_symlink(),
            _ => false,
        };
        kind_matches
            && Stat::from_fs(meta).is_ok_and(|stat| entry.stat.matches(&stat, self.compare))
            && !entry.stat.is_racy(index.timestamp(), self.racy)
    }
}

/// The largest index (bytes) loaded in-process, about 2,800 entries: past
/// it libgit2's read (it checks the SHA-1 of the whole file: 3.9 ms at
/// 5,000 entries, 437 KiB) costs more than the `git ls-files` it saves.
const IN_PROCESS_INDEX_MAX: u64 = 256 << 10;

impl IndexView {
    pub(super) fn read(
        repo: &Repository,
        checkout: &Path,
        paths: &[PathBuf],
    ) -> Result<IndexView, MergeError> {
        if first_way() <= Way::Stat
            && let Some(view) = IndexView::by_stat(repo, checkout, paths)
        {
            return Ok(view);
        }
        if first_way() <= Way::Load && small_index(repo) {
            match IndexView::load(repo, paths) {
                Ok(view) => return Ok(view),
                // An index libgit2 cannot read (a split index, say) is git's.
                Err(e) => {
                    tracing::debug!(checkout = %checkout.display(), error = %e, "the index is asked of git")
                }
            }
        }
        IndexView::ask_git(checkout, paths)
    }

    /// Reads the checkout's index with gix-index, which skips its hash as
    /// git does, and settles each tracked path's file by its stat data
    /// under git's rule: an entry whose stat data match the file's
    /// (`core.trustctime` and `core.checkStat` heeded; times to the
    /// nanosecond, stricter than git) and were recorded before the second
    /// the index was written in is not modified; a file that is gone is.
    /// Returns `None` when that does not settle every path (a file whose
    /// stat data differ or are racy, a submodule, an entry added with
    /// `--intent-to-add`, a file under a folder that is a symbolic link),
    /// and for an index it cannot read or that is sparse (folders as
    /// entries).
    fn by_stat(repo: &Repository, checkout: &Path, paths: &[PathBuf]) -> Option<IndexView> {
        use gix_index::entry::{Flags, Stage};
        let give_up = |why: &dyn std::fmt::Display| {
            tracing::debug!(checkout = %checkout.display(), %why, "the index's stat data do not settle the check");
            None
        };
        let options = gix_index::decode::Options {
            thread_limit: Some(1),
            ..Default::default()
        };
        let kind = gix_index::hash::Kind::Sha1;
        let index = match gix_index::File::at(repo.path().join("index"), kind, true, options) {
            Ok(index) => index,
            Err(e) => return give_up(&e),
        };
        if index.is_sparse() {
            return give_up(&"a sparse index");
        }
        let rule = StatRule::of(repo);
        let mut view = IndexView::default();
        // Records an entry; returns whether it is flagged.
        let record = |view: &mut IndexView, entry: &gix_index::Entry, path: &Path| {
            let flagged = entry
                .flags
                .intersects(Flags::ASSUME_VALID | Flags::SKIP_WORKTREE);
            if flagged {
                view.flagged.insert(path.to_owned());
            }
            let id = Oid::from_bytes(entry.id.as_bytes()).unwrap_or(Oid::ZERO_SHA1);
            view.entries
                .insert(path.to_owned(), (id, entry.mode.bits()));
            flagged
        };
        for path in paths {
            let bytes = path.as_os_str().as_bytes();
            let mut prefix = bytes.to_vec();
            prefix.push(b'/');
            for entry in index
                .prefixed_entries(prefix.as_slice().into())
                .unwrap_or_default()
            {
                if entry.stage() == Stage::Unconflicted {
                    let under = Path::new(std::ffi::OsStr::from_bytes(entry.path(&index)));
                    record(&mut view, entry, under);
                }
            }
            let Some(entry) = index.entry_by_path_and_stage(bytes.into(), Stage::Unconflicted)
            else {
                continue;
            };
            if record(&mut view, entry, path) {
                continue;
            }
            if entry.flags.contains(Flags::INTENT_TO_ADD) {
                return give_up(&format_args!("{} is to be added", path.display()));
            }
            // `lstat` follows a symbolic link above the file, where git
            // takes the file for deleted (and its write would replace the
            // link with a folder).
            let linked = path.ancestors().skip(1).find(|dir| {
                !dir.as_os_str().is_empty()
                    && checkout
                        .join(dir)
                        .symlink_metadata()
                        .is_ok_and(|m| m.file_type().is_symlink())
            });
            if let Some(dir) = linked {
                return give_up(&format_args!("{} is a symbolic link", dir.display()));
            }
            let meta = match gix_index::fs::Metadata::from_path_no_follow(&checkout.join(path)) {
                Ok(meta) => meta,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                    ) =>
                {
                    view.modified.insert(path.to_owned());
                    continue;
                }
                Err(e) => return give_up(&e),
            };
            if !rule.settles(entry, &meta, &index) {
                return give_up(&format_args!("{}'s stat data", path.display()));
            }
        }
        Some(view)
    }

    /// Loads the checkout's index with libgit2 and compares the tracked
    /// paths' files with their entries (`diff_index_to_workdir` of those
    /// paths alone, which applies git's rule above).
    fn load(repo: &Repository, paths: &[PathBuf]) -> Result<IndexView, git2::Error> {
        /// `CE_VALID` (assume-unchanged) and `CE_SKIP_WORKTREE`.
        const ASSUME_UNCHANGED: u16 = 0x8000;
        const SKIP_WORKTREE: u16 = 0x4000;
        // The repository caches its index: read it again if a git wrote
        // it since (the put-back after a write asks through the same
        // handle).
        let mut index = repo.index()?;
        index.read(false)?;
        let asked: std::collections::HashSet<&Path> = paths.iter().map(PathBuf::as_path).collect();
        let mut view = IndexView::default();
        for entry in index.iter() {
            let stage = (entry.flags >> 12) & 0x3;
            let path = Path::new(std::ffi::OsStr::from_bytes(&entry.path));
            if stage != 0 || !path.ancestors().any(|a| asked.contains(a)) {
                continue;
            }
            if entry.flags & ASSUME_UNCHANGED != 0 || entry.flags_extended & SKIP_WORKTREE != 0 {
                view.flagged.insert(path.to_owned());
            }
            view.entries.insert(path.to_owned(), (entry.id, entry.mode));
        }
        let compared: Vec<&PathBuf> = paths
            .iter()
            .filter(|p| view.entries.contains_key(*p) && !view.flagged.contains(*p))
            .collect();
        if compared.is_empty() {
            return Ok(view);
        }
        let mut options = git2::DiffOptions::new();
        options.disable_pathspec_match(true);
        for path in compared {
            options.pathspec(path);
        }
        let diff = repo.diff_index_to_workdir(Some(&index), Some(&mut options))?;
        view.modified.extend(
            diff.deltas()
                .filter_map(|d| d.old_file().path().map(Path::to_owned)),
        );
        Ok(view)
    }

    /// Asks git: `git ls-files --stage -v` of the paths, then `git diff
    /// --name-only` of the tracked ones. Git reads the index and the files
    /// of those paths alone (`ls-files --modified` would do both in one,
    /// but it reads every file of the index, whatever the paths asked).
    fn ask_git(checkout: &Path, paths: &[PathBuf]) -> Result<IndexView, MergeError> {
        let mut view = IndexView::default();
        let literal = |command: &[&str], chunk: &[PathBuf]| {
            let mut args: Vec<std::ffi::OsString> = vec!["--literal-pathspecs".into()];
            args.extend(command.iter().map(Into::into));
            args.push("--".into());
            args.extend(chunk.iter().map(|p| p.as_os_str().to_owned()));
            cmd::run(checkout, &args)
        };
        for chunk in paths.chunks(500) {
            let out = literal(&["ls-files", "-z", "--stage", "-v"], chunk)?;
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

    /// Parses `<tag> <mode> <oid> <stage>\t<path>` records; the tag is
    /// `S` (skip-worktree) or a lowercase letter (assume-unchanged) for a
    /// flagged entry.
    fn parse_stage(&mut self, out: &[u8]) {
        for record in out.split(|b| *b == 0).filter(|r| !r.is_empty()) {
            let Some(tab) = record.iter().position(|b| *b == b'\t') else {
                continue;
            };
            let path = PathBuf::from(std::ffi::OsStr::from_bytes(&record[tab + 1..]));
            let head = String::from_utf8_lossy(&record[..tab]);
            let fields: Vec<&str> = head.split(' ').collect();
            let [tag, mode, oid, "0"] = fields[..] else {
                continue;
            };
            if let (Ok(mode), Ok(oid)) = (u32::from_str_radix(mode, 8), Oid::from_str(oid)) {
                if tag == "S" || tag.chars().any(|c| c.is_ascii_lowercase()) {
                    self.flagged.insert(path.clone());
                }
                self.entries.insert(path, (oid, mode));
            }
        }
    }

    /// Returns the stage-0 entry of `path` (its blob and mode), if tracked.
    pub(super) fn entry(&self, path: &Path) -> Option<(Oid, u32)> {
        self.entries.get(path).copied()
    }

    /// Returns the tracked paths under the folder `dir`.
    pub(super) fn entries_under<'a>(
        &'a self,
        dir: &'a Path,
    ) -> impl Iterator<Item = &'a Path> + 'a {
        self.entries
            .keys()
            .map(PathBuf::as_path)
            .filter(move |p| *p != dir && p.starts_with(dir))
    }

    /// Returns whether `path`'s entry is marked assume-unchanged or
    /// skip-worktree, which `git diff` does not look past.
    pub(super) fn flagged(&self, path: &Path) -> bool {
        self.flagged.contains(path)
    }

    /// Returns whether the file of a tracked `path` differs from its entry.
    pub(super) fn modified(&self, path: &Path) -> bool {
        self.modified.contains(path)
    }
}

/// Returns whether the index of `repo`'s worktree is small enough to be
/// loaded in-process ([`IN_PROCESS_INDEX_MAX`]).
fn small_index(repo: &Repository) -> bool {
    std::fs::metadata(repo.path().join("index")).map_or(0, |m| m.len()) <= IN_PROCESS_INDEX_MAX
}

/// The ways to an [`IndexView`], in the order [`IndexView::read`] tries
/// them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Way {
    Stat,
    Load,
    /// Only a test starts here.
    #[cfg_attr(not(test), allow(dead_code))]
    Git,
}

/// Returns the first way [`IndexView::read`] tries: the first of all, but
/// a test may start further down ([`tests::FIRST_WAY`]).
fn first_way() -> Way {
    #[cfg(test)]
    return tests::FIRST_WAY.get();
    #[cfg(not(test))]
    Way::Stat
}

#[cfg(test)]
pub(super) mod tests {
    use std::cell::Cell;

    use super::Way;

    thread_local! {
        /// The first way the check tries: a test sets it to run the check
        /// each way ([`each_way`]).
        pub(in super::super) static FIRST_WAY: Cell<Way> = const { Cell::new(Way::Stat) };
    }

    /// Runs `test` once starting from each way: stat data first (then
    /// whichever way settles what they do not), libgit2's load first, and
    /// git alone.
    pub(in super::super) fn each_way(test: impl Fn()) {
        for way in [Way::Stat, Way::Load, Way::Git] {
            FIRST_WAY.set(way);
            test();
        }
        FIRST_WAY.set(Way::Stat);
    }

    use std::path::{Path, PathBuf};

    use super::super::tests::{committed, git, settle};
    use super::IndexView;

    /// Returns the view of `paths` each of the three ways, the stat data's
    /// when they settle it.
    fn views(repo: &Path, paths: &[&str]) -> (Option<IndexView>, Option<IndexView>, IndexView) {
        let handle = git2::Repository::open(repo).unwrap();
        let paths: Vec<PathBuf> = paths.iter().map(PathBuf::from).collect();
        (
            IndexView::by_stat(&handle, repo, &paths),
            IndexView::load(&handle, &paths).ok(),
            IndexView::ask_git(repo, &paths).unwrap(),
        )
    }

    fn modified(view: &IndexView) -> Vec<&Path> {
        let mut paths: Vec<&Path> = view.modified.iter().map(PathBuf::as_path).collect();
        paths.sort();
        paths
    }

    /// Files nobody touched since the index was written are settled by
    /// their stat data, a file, an executable and a symbolic link alike,
    /// and a file that is gone is modified; the view is the other ways'.
    #[test]
    fn the_stat_data_settle_untouched_files_and_a_missing_one() {
        use std::os::unix::fs::{PermissionsExt, symlink};
        let (_dir, repo, _) = committed(
            &[
                ("a.txt", "a\n"),
                ("b.txt", "b\n"),
                ("dir/c.txt", "c\n"),
                ("x.sh", "x\n"),
            ],
            &[],
        );
        std::fs::set_permissions(repo.join("x.sh"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        symlink("a.txt", repo.join("link")).unwrap();
        git(&repo, &["add", "-A"]);
        git(&repo, &["commit", "-q", "-m", "more"]);
        settle(&repo);
        std::fs::remove_file(repo.join("b.txt")).unwrap();
        std::fs::write(repo.join("untouched-by-the-update.txt"), "mine\n").unwrap();
        let asked = ["a.txt", "b.txt", "dir", "x.sh", "link", "new.txt"];
        let (by_stat, load, ask_git) = views(&repo, &asked);
        let by_stat = by_stat.expect("the stat data settle every path");
        assert_eq!(modified(&by_stat), [Path::new("b.txt")]);
        assert!(by_stat.entry(Path::new("dir/c.txt")).is_some());
        assert_eq!(Some(&by_stat), load.as_ref());
        assert_eq!(by_stat, ask_git);
    }

    /// A file touched (its content the same) or edited, an index written
    /// in the second of its files, and an entry to be added are left to
    /// the ways that compare content.
    #[test]
    fn stat_data_that_differ_or_are_racy_are_left_to_the_content() {
        let (_dir, repo, _) = committed(&[("a.txt", "one\n"), ("b.txt", "b\n")], &[]);
        let stat = |paths: &[&str]| views(&repo, paths).0;
        assert!(stat(&["a.txt", "b.txt"]).is_some());
        let now = std::fs::File::options()
            .append(true)
            .open(repo.join("a.txt"))
            .unwrap();
        now.set_modified(std::time::SystemTime::now()).unwrap();
        let (by_stat, load, ask_git) = views(&repo, &["a.txt"]);
        assert!(by_stat.is_none());
        assert_eq!(modified(&ask_git), Vec::<&Path>::new());
        assert_eq!(load, Some(ask_git));
        std::fs::write(repo.join("a.txt"), "two\n").unwrap();
        let (by_stat, load, ask_git) = views(&repo, &["a.txt"]);
        assert!(by_stat.is_none());
        assert_eq!(modified(&ask_git), [Path::new("a.txt")]);
        assert_eq!(load, Some(ask_git));
        assert!(stat(&["b.txt"]).is_some(), "only the asked paths count");
        // Racy in whatever second `git add` writes the index: the file's
        // time is not before it. (Its write above could fall in the
        // second before the index's: 1 run in about 40.)
        let later = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
        now.set_modified(later).unwrap();
        git(&repo, &["add", "a.txt"]);
        assert!(stat(&["a.txt"]).is_none(), "written in the index's second");
        std::fs::write(repo.join("n.txt"), "new\n").unwrap();
        git(&repo, &["add", "--intent-to-add", "n.txt"]);
        settle(&repo);
        assert!(stat(&["a.txt"]).is_some());
        assert!(stat(&["n.txt"]).is_none());
    }

    /// A same-size rewrite whose mtime is put back within its second
    /// (ctime not trusted) matches the entry to the second, where git
    /// compares, and not to the nanosecond: left to the content, which
    /// libgit2 compares (git itself misses it).
    #[test]
    fn stat_data_match_to_the_nanosecond() {
        use rustix::fs::{AtFlags, CWD, Timespec, Timestamps, utimensat};
        use std::os::unix::fs::MetadataExt;
        let (_dir, repo, _) = committed(&[("a.txt", "one\n")], &[("core.trustctime", "false")]);
        let file = repo.join("a.txt");
        let was = std::fs::metadata(&file).unwrap();
        std::fs::write(&file, "two\n").unwrap();
        let time = Timespec {
            tv_sec: was.mtime(),
            tv_nsec: (was.mtime_nsec() + 1) % 1_000_000_000,
        };
        let times = Timestamps {
            last_access: time,
            last_modification: time,
        };
        utimensat(CWD, &file, &times, AtFlags::empty()).unwrap();
        let (by_stat, load, _) = views(&repo, &["a.txt"]);
        assert!(by_stat.is_none());
        assert_eq!(modified(&load.unwrap()), [Path::new("a.txt")]);
    }

    /// An entry marked assume-unchanged or skip-worktree is recorded as
    /// such, its edited file not looked at (its content is compared
    /// later); a split index is read whole (libgit2 cannot read one).
    #[test]
    fn flagged_entries_and_a_split_index() {
        let (_dir, repo, _) = committed(&[("a.txt", "a\n"), ("b.txt", "b\n")], &[]);
        git(&repo, &["update-index", "--assume-unchanged", "a.txt"]);
        git(&repo, &["update-index", "--split-index"]);
        settle(&repo);
        std::fs::write(repo.join("a.txt"), "mine\n").unwrap();
        assert!(repo.join(".git").read_dir().unwrap().any(|e| {
            e.unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("sharedindex.")
        }));
        let (by_stat, load, ask_git) = views(&repo, &["a.txt", "b.txt"]);
        let by_stat = by_stat.expect("settled");
        assert!(by_stat.flagged(Path::new("a.txt")));
        assert_eq!(by_stat, ask_git);
        assert_eq!(load, None);
    }
}
