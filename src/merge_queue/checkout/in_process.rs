//! Writing the paths a move changes in-process, for the moves where that
//! does what git's `checkout` of those paths does, with git's lock and in
//! git's order: the common case of regular files, no attributes and no
//! conversions. Anything else is declined before a byte is written, and
//! git writes it as before.
//!
//! The order is git's own: the index's lock (`index.lock`, created
//! exclusively, so that a git running meanwhile fails rather than has its
//! work undone) is taken first; the index is read under it; each changed
//! path is checked again there (its entry the old side's, its file the
//! entry's by stat data, nothing where a file is added); then each file a
//! path loses is removed (a folder it empties goes), each file it gets is
//! written as a new file (the old one unlinked first, so that a copy
//! hard-linked elsewhere keeps its content), and the new index is written
//! to the lock and renamed over the index. The index keeps every other
//! entry and its cache of tree ids, invalidated along the changed paths
//! only, and the stat data of an entry recorded in the second the old
//! index was written are smudged, as git does on every write, so that a
//! later index does not hide a change made in that second. The index
//! read is changed in place: a copy of it cost more than the rest of the
//! write in a process that had just started (0.3 ms at 500 files).
//!
//! Declined, for git to write: a symbolic link, a submodule, a file that
//! becomes a folder or the reverse; a path git refuses (`.git` in any
//! case, `.` or `..`); any `.gitattributes` that applies to a changed
//! path (in a folder above it, in the index or on disk, or
//! `info/attributes`, the global or the system file, or
//! `core.attributesFile`), since filters and line-ending conversions are
//! git's; `core.autocrlf`, `core.eol`, `core.ignorecase` (a path
//! differing in case is another file here), `core.sharedRepository`,
//! `core.fsmonitor`, `core.splitIndex`, `core.fsync`; an index of version
//! 4, split, sparse, with an fsmonitor, resolve-undo or untracked-cache
//! extension (git updates the last along the paths it writes); an
//! entry flagged assume-unchanged, skip-worktree or intent-to-add; a file
//! whose stat data do not settle it, or written in the index's second; an
//! index over 1 MiB (about 11,000 files), whose rewrite costs the
//! coordinator more than git's process.

use std::io::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use git2::Repository;
use gix_index::entry::{Flags, Mode, Stage, Stat};

use crate::git::tree;

use super::index_view::StatRule;

/// How an in-process write ended.
#[derive(Debug)]
pub(super) enum Written {
    /// The index and the files hold the new side of every changed path.
    Done,
    /// Not a write this does (why); nothing was written, no lock is left.
    Declined(String),
    /// It failed, after it may have written some of the files; the lock is
    /// released, the index not written.
    Failed(std::io::Error),
}

/// The largest index (bytes) written in-process, about 11,000 files.
/// Reading, encoding and hashing a larger one costs the coordinator more
/// than the git process it saves would (at 50,000 files, 4.5 MB: 18 to 23
/// ms a merge against 25 ms with git's write, but 27 to 33 ms of the
/// coordinator's CPU a task against 12.5; docs/benchmarks.md).
const INDEX_MAX: u64 = 1 << 20;

/// The bytes of the index's trailing checksum (SHA-1).
const TRAILER: usize = 20;

/// The regular file modes, as trees hold them.
const BLOB: i32 = 0o100644;
const BLOB_EXECUTABLE: i32 = 0o100755;

/// Returns why the checkout's configuration or attribute files leave the
/// write to git, `None` when they do not. The configuration is read where
/// git reads it: the repository's files (through libgit2), and what git
/// takes from the environment and libgit2 does not (`GIT_CONFIG_GLOBAL`,
/// `GIT_CONFIG_SYSTEM`, `GIT_CONFIG_COUNT` pairs, `git -c` as
/// `GIT_CONFIG_PARAMETERS`); a key set in any of them counts.
pub(super) fn unsuited(repo: &Repository) -> Option<String> {
    let index = repo.path().join("index");
    if std::fs::metadata(&index).is_ok_and(|m| m.len() > INDEX_MAX) {
        return Some(format!(
            "{} is larger than {INDEX_MAX} bytes",
            index.display()
        ));
    }
    let mut configs: Vec<git2::Config> = repo.config().into_iter().collect();
    for var in ["GIT_CONFIG_GLOBAL", "GIT_CONFIG_SYSTEM"] {
        if let Some(file) = std::env::var_os(var).filter(|f| Path::new(f).is_file()) {
            configs.extend(git2::Config::open(Path::new(&file)).ok());
        }
    }
    let pairs: Vec<(String, String)> = (0..std::env::var("GIT_CONFIG_COUNT")
        .ok()
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(0))
        .filter_map(|i| {
            let key = std::env::var(format!("GIT_CONFIG_KEY_{i}")).ok()?;
            let value = std::env::var(format!("GIT_CONFIG_VALUE_{i}")).unwrap_or_default();
            Some((key, value))
        })
        .collect();
    let parameters = std::env::var("GIT_CONFIG_PARAMETERS")
        .unwrap_or_default()
        .to_ascii_lowercase();
    let values = |key: &str| {
        let mut values: Vec<String> = configs
            .iter()
            .filter_map(|c| c.get_string(key).ok())
            .chain(
                pairs
                    .iter()
                    .filter(|(k, _)| k.eq_ignore_ascii_case(key))
                    .map(|(_, v)| v.clone()),
            )
            .collect();
        if parameters.contains(&key.to_ascii_lowercase()) {
            values.push("set".to_owned());
        }
        values
    };
    let set = |key: &str| values(key).iter().any(|v| !v.is_empty());
    let truthy = |key: &str| {
        values(key)
            .iter()
            .any(|v| !v.is_empty() && !v.eq_ignore_ascii_case("false"))
    };
    let said = [
        "core.ignorecase",
        "core.autocrlf",
        "core.fsmonitor",
        "core.splitIndex",
        "core.sharedRepository",
    ]
    .into_iter()
    .find(|key| truthy(key))
    .or_else(|| {
        [
            "core.eol",
            "core.attributesFile",
            "core.fsync",
            "extensions.objectFormat",
        ]
        .into_iter()
        .find(|key| set(key))
    });
    if let Some(key) = said {
        return Some(format!("{key} is set"));
    }
    // Includes libgit2 does not follow: a condition it does not know
    // (`hasconfig:`), or an include given in the environment.
    let unknown_include = configs.iter().any(|c| {
        c.entries(Some("^includeif\\.hasconfig:"))
            .is_ok_and(|mut entries| entries.next().is_some())
    }) || pairs
        .iter()
        .any(|(k, _)| k.to_ascii_lowercase().starts_with("include"))
        || parameters.contains("include");
    if unknown_include {
        return Some("the configuration includes files only git reads".to_owned());
    }
    let xdg = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".config")))
        .map(|config| config.join("git/attributes"));
    [
        Some(repo.commondir().join("info/attributes")),
        xdg,
        Some(PathBuf::from("/etc/gitattributes")),
    ]
    .into_iter()
    .flatten()
    .find(|file| file.exists())
    .map(|file| format!("{} gives attributes", file.display()))
}

/// Writes the new side of every path in `diff` into the index and the
/// files of `checkout` (its repository `repo`), as described above.
pub(super) fn write(repo: &Repository, checkout: &Path, diff: &[tree::Change]) -> Written {
    // Every folder above a changed path: a changed path among them is a
    // file on one side and a folder on the other.
    let folders: std::collections::HashSet<&Path> = diff
        .iter()
        .flat_map(|c| c.path.ancestors().skip(1))
        .collect();
    if let Some(why) = diff.iter().find_map(|c| unsuited_change(c, &folders)) {
        return Written::Declined(why);
    }
    let index_path = repo.path().join("index");
    let lock_path = repo.path().join("index.lock");
    let lock = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o666)
        .open(&lock_path)
    {
        Ok(lock) => lock,
        Err(e) => return Written::Declined(format!("{}: {e}", lock_path.display())),
    };
    let release = || {
        let _ = std::fs::remove_file(&lock_path);
    };
    let plan = match plan(repo, checkout, &index_path, diff) {
        Ok(plan) => plan,
        Err(why) => {
            release();
            return Written::Declined(why);
        }
    };
    match write_files_and_index(repo, checkout, plan, lock, &lock_path, &index_path) {
        Ok(()) => Written::Done,
        Err(e) => {
            release();
            Written::Failed(e)
        }
    }
}

/// The new index, made before any file is written; the stat data of the
/// entries it adds are filled in as their files are written.
struct Plan<'a> {
    index: gix_index::File,
    diff: &'a [tree::Change],
    /// The size of the index read (bytes), about that of the one written.
    size: usize,
}

/// Returns why a change is not one this write makes, `None` when it is.
fn unsuited_change(
    change: &tree::Change,
    folders: &std::collections::HashSet<&Path>,
) -> Option<String> {
    let path = &change.path;
    let regular =
        |side: Option<tree::Side>| side.is_none_or(|s| s.mode == BLOB || s.mode == BLOB_EXECUTABLE);
    if !(regular(change.old) && regular(change.new)) {
        return Some(format!("{} is not a regular file", path.display()));
    }
    let refused = path.components().any(|c| match c {
        std::path::Component::Normal(name) => {
            let name = name.as_bytes();
            let trimmed = name
                .iter()
                .rposition(|b| *b != b'.' && *b != b' ')
                .map_or(&name[..0], |end| &name[..=end]);
            trimmed.eq_ignore_ascii_case(b".git")
                || name.eq_ignore_ascii_case(b"git~1")
                || name == b".gitattributes"
        }
        _ => true,
    });
    if refused || path.as_os_str().is_empty() {
        return Some(format!("{} is a path git writes itself", path.display()));
    }
    // A file on one side and a folder on the other (the folder's files
    // are changes under the file's path).
    folders.contains(path.as_path()).then(|| {
        format!(
            "{} is a file on one side and a folder on the other",
            path.display()
        )
    })
}

/// Reads the index under its lock and checks each change against it and
/// the files once more; returns the new index, or why the write is
/// declined.
fn plan<'a>(
    repo: &Repository,
    checkout: &Path,
    index_path: &Path,
    diff: &'a [tree::Change],
) -> Result<Plan<'a>, String> {
    let options = gix_index::decode::Options {
        thread_limit: Some(1),
        ..Default::default()
    };
    let size = std::fs::metadata(index_path).map_or(0, |m| m.len() as usize);
    let old = gix_index::File::at(index_path, gix_index::hash::Kind::Sha1, true, options)
        .map_err(|e| format!("{}: {e}", index_path.display()))?;
    if old.version() == gix_index::Version::V4
        || old.is_sparse()
        || old.link().is_some()
        || old.fs_monitor().is_some()
        || old.resolve_undo().is_some()
        || old.untracked().is_some()
    {
        return Err("the index has a format or extension git writes itself".to_owned());
    }
    let rule = StatRule::of(repo);
    let mut checked = std::collections::HashSet::new();
    for change in diff {
        let path = change.path.as_os_str().as_bytes();
        let full = checkout.join(&change.path);
        // Every folder above is a folder (not a symbolic link, nor a file),
        // or missing where a file is added; none has a `.gitattributes`.
        for dir in change.path.ancestors().skip(1) {
            if !checked.insert(dir.to_owned()) {
                continue;
            }
            let attributes = dir.join(".gitattributes");
            if old
                .entry_by_path(attributes.as_os_str().as_bytes().into())
                .is_some()
                || checkout.join(&attributes).symlink_metadata().is_ok()
            {
                return Err(format!("{} gives attributes", attributes.display()));
            }
            if dir.as_os_str().is_empty() {
                continue;
            }
            let entry = old.entry_by_path(dir.as_os_str().as_bytes().into());
            match checkout.join(dir).symlink_metadata() {
                Ok(meta) if meta.is_dir() && entry.is_none() => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && change.old.is_none() => {}
                _ => return Err(format!("{} is not a folder", dir.display())),
            }
        }
        let on_disk = gix_index::fs::Metadata::from_path_no_follow(&full);
        let entries = old.entry_range(path.into()).unwrap_or(0..0);
        let mut prefix = path.to_vec();
        prefix.push(b'/');
        if old.prefixed_entries(prefix.as_slice().into()).is_some() {
            return Err(format!("{} has entries under it", change.path.display()));
        }
        match change.old {
            None => {
                if !entries.is_empty() {
                    return Err(format!("{} has an entry", change.path.display()));
                }
                match on_disk {
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    _ => return Err(format!("{} is on disk", change.path.display())),
                }
            }
            Some(side) => {
                let entry = (entries.len() == 1)
                    .then(|| old.entry(entries.start))
                    .filter(|e| e.stage() == Stage::Unconflicted);
                let Some(entry) = entry else {
                    return Err(format!("{} has no single entry", change.path.display()));
                };
                let flags = Flags::ASSUME_VALID | Flags::SKIP_WORKTREE | Flags::INTENT_TO_ADD;
                let meta = on_disk.map_err(|e| format!("{}: {e}", full.display()))?;
                let settled = entry.id.as_bytes() == side.id.as_bytes()
                    && entry.mode == mode_of(side.mode)
                    && !entry.flags.intersects(flags)
                    && rule.settles(entry, &meta, &old);
                if !settled {
                    return Err(format!("{}'s stat data", change.path.display()));
                }
            }
        }
    }
    // The new index is the one read, changed in place: a copy of it costs
    // more than the rest of the write in a process that just started.
    let mut index = old;
    // Racy entries are smudged (their size zeroed) before the index is
    // written again, as git does, so that a later index's time does not
    // hide a change made in the second the old one was written.
    let written = index.timestamp();
    for entry in index.entries_mut() {
        if entry.stat.is_racy(written, Default::default()) {
            entry.stat.size = 0;
        }
    }
    let changed: std::collections::HashSet<&[u8]> =
        diff.iter().map(|c| c.path.as_os_str().as_bytes()).collect();
    index.remove_entries(|_, path, _| changed.contains::<[u8]>(path.as_ref()));
    for change in diff {
        if let Some(tree) = index.tree_mut() {
            invalidate(tree, change.path.as_os_str().as_bytes());
        }
        let Some(side) = change.new else { continue };
        let path = change.path.as_os_str().as_bytes();
        let (Ok(at) | Err(at)) = index.entry_index_by_path(path.into());
        let id = gix_index::hash::ObjectId::from_bytes_or_panic(side.id.as_bytes());
        index.dangerously_push_entry(
            Stat::default(),
            id,
            Flags::empty(),
            mode_of(side.mode),
            path.into(),
        );
        index.entries_mut()[at..].rotate_right(1);
    }
    Ok(Plan { index, diff, size })
}

/// Marks the cached tree ids of the folders above `path` (slash-separated,
/// relative to `tree`'s folder) as no longer valid, as git does for a path
/// it writes, and drops a cached folder at `path` itself; the other
/// folders' ids stay.
fn invalidate(tree: &mut gix_index::extension::Tree, path: &[u8]) {
    tree.num_entries = None;
    let (name, rest) = match path.iter().position(|b| *b == b'/') {
        Some(slash) => (&path[..slash], Some(&path[slash + 1..])),
        None => (path, None),
    };
    // gix-index keeps a folder's children sorted by name.
    if let Ok(at) = tree
        .children
        .binary_search_by(|child| child.name.as_slice().cmp(name))
    {
        match rest {
            Some(rest) => invalidate(&mut tree.children[at], rest),
            None => {
                tree.children.remove(at);
            }
        }
    }
}

/// Returns the index's mode of a tree's regular file mode.
fn mode_of(mode: i32) -> Mode {
    if mode == BLOB_EXECUTABLE {
        Mode::FILE_EXECUTABLE
    } else {
        Mode::FILE
    }
}

/// Writes the files of the plan, then its index to the held `lock` and
/// over the index.
fn write_files_and_index(
    repo: &Repository,
    checkout: &Path,
    mut plan: Plan<'_>,
    lock: std::fs::File,
    lock_path: &Path,
    index_path: &Path,
) -> std::io::Result<()> {
    let odb_error = |e: git2::Error| std::io::Error::other(e.message().to_owned());
    // Files first removed, then written, and the folders emptied removed
    // last (git's order: a folder a file leaves and another enters, a
    // rename, stays, its mode and all).
    let mut emptied = std::collections::BTreeSet::new();
    for change in plan.diff {
        if change.old.is_none() {
            continue;
        }
        std::fs::remove_file(checkout.join(&change.path))?;
        if change.new.is_none() {
            emptied.extend(
                change
                    .path
                    .ancestors()
                    .skip(1)
                    .filter(|dir| !dir.as_os_str().is_empty()),
            );
        }
    }
    for change in plan.diff {
        let Some(side) = change.new else { continue };
        let full = checkout.join(&change.path);
        if let Some(parent) = full.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let blob = repo.find_blob(side.id).map_err(odb_error)?;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(if side.mode == BLOB_EXECUTABLE {
                0o777
            } else {
                0o666
            })
            .open(&full)?;
        file.write_all(blob.content())?;
        let meta = gix_index::fs::Metadata::from_file(&file)?;
        let stat = Stat::from_fs(&meta).map_err(std::io::Error::other)?;
        let path = change.path.as_os_str().as_bytes();
        if let Some(entry) = plan
            .index
            .entry_mut_by_path_and_stage(path.into(), Stage::Unconflicted)
        {
            entry.stat = stat;
        }
    }
    // Deepest first; a folder that still holds anything stays.
    for dir in emptied.iter().rev() {
        let _ = std::fs::remove_dir(checkout.join(dir));
    }
    // gix-index hashes with collision detection (sha1dc): 0.5 to 0.6 ms of
    // a 447 KB index (5,000 files), warm, as long as encoding it. The
    // index's trailing checksum is no signature; the `sha1` crate (the
    // CPU's SHA extensions where it has them) computes it instead, over
    // the bytes gix-index writes with a null trailer for it to fill.
    let options = gix_index::write::Options {
        extensions: gix_index::write::Extensions::AllUnconditionally,
        skip_hash: true,
    };
    let mut bytes = Vec::with_capacity(plan.size + 4096);
    plan.index
        .write_to(&mut bytes, options)
        .map_err(std::io::Error::other)?;
    let body = bytes.len() - TRAILER;
    let digest = <sha1::Sha1 as sha1::Digest>::digest(&bytes[..body]);
    bytes[body..].copy_from_slice(&digest);
    let mut lock = lock;
    lock.write_all(&bytes)?;
    drop(lock);
    std::fs::rename(lock_path, index_path)
}
