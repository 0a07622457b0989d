//! The paths two trees differ at, read in proportion to the change.
//!
//! libgit2's `diff_tree_to_tree` walks every entry of both trees, reading
//! every subtree even where its id is the same on both sides: at 50,000
//! files, 2,000 folders, that walk was most of the coordinator's own CPU
//! per task (issue 15, `perf` in docs/benchmarks.md). [`changes`] compares
//! the two trees' entries folder by folder and descends only into the
//! subtrees whose ids differ, as `git diff-tree -r` does: a task that
//! changed one file reads the folders on that file's path, whatever the
//! size of the repository.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use git2::{Oid, Repository, Tree};

/// A mode of a tree entry that is a folder.
const TREE_MODE: i32 = 0o040000;

/// One side of a changed path: the id and the mode of its entry (a blob, a
/// symbolic link, or a submodule's commit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Side {
    pub id: Oid,
    pub mode: i32,
}

/// A path that is not the same in the two trees. `old` is `None` when the
/// path is added, `new` when it is deleted; both are there when its
/// content or its mode changed. A file replaced by a folder (or the
/// reverse) is the file deleted and the folder's files added, as git
/// reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub path: PathBuf,
    pub old: Option<Side>,
    pub new: Option<Side>,
}

/// Returns every file path that differs from tree `old` to tree `new`,
/// sorted by path (as bytes). Only subtrees whose ids differ are read.
pub fn changes(repo: &Repository, old: Oid, new: Oid) -> Result<Vec<Change>, git2::Error> {
    let mut out = Vec::new();
    if old != new {
        let (old, new) = (repo.find_tree(old)?, repo.find_tree(new)?);
        walk(repo, &mut Vec::new(), Some(&old), Some(&new), &mut out)?;
    }
    out.sort_by(|a, b| {
        a.path
            .as_os_str()
            .as_bytes()
            .cmp(b.path.as_os_str().as_bytes())
    });
    Ok(out)
}

/// Returns the changes from the tree of commit `from` to that of commit `to`.
pub fn commit_changes(repo: &Repository, from: Oid, to: Oid) -> Result<Vec<Change>, git2::Error> {
    let old = repo.find_commit(from)?.tree_id();
    let new = repo.find_commit(to)?.tree_id();
    changes(repo, old, new)
}

/// The entries of one folder: name -> (id, mode).
fn entries(tree: Option<&Tree<'_>>) -> BTreeMap<Vec<u8>, Side> {
    tree.map(|t| {
        t.iter()
            .map(|e| {
                let side = Side {
                    id: e.id(),
                    mode: e.filemode(),
                };
                (e.name_bytes().to_vec(), side)
            })
            .collect()
    })
    .unwrap_or_default()
}

fn walk(
    repo: &Repository,
    prefix: &mut Vec<u8>,
    old: Option<&Tree<'_>>,
    new: Option<&Tree<'_>>,
    out: &mut Vec<Change>,
) -> Result<(), git2::Error> {
    let (olds, news) = (entries(old), entries(new));
    let mut names: Vec<&Vec<u8>> = olds.keys().chain(news.keys()).collect();
    names.sort();
    names.dedup();
    for name in names {
        let (o, n) = (olds.get(name).copied(), news.get(name).copied());
        if o == n {
            continue;
        }
        let len = prefix.len();
        if len > 0 {
            prefix.push(b'/');
        }
        prefix.extend_from_slice(name);
        let is_tree = |s: Option<Side>| s.filter(|s| s.mode == TREE_MODE);
        let is_leaf = |s: Option<Side>| s.filter(|s| s.mode != TREE_MODE);
        let (old_tree, new_tree) = (is_tree(o), is_tree(n));
        if old_tree.is_some() || new_tree.is_some() {
            let find = |s: Option<Side>| s.map(|s| repo.find_tree(s.id)).transpose();
            let (ot, nt) = (find(old_tree)?, find(new_tree)?);
            walk(repo, prefix, ot.as_ref(), nt.as_ref(), out)?;
        }
        let (old_leaf, new_leaf) = (is_leaf(o), is_leaf(n));
        if old_leaf.is_some() || new_leaf.is_some() {
            out.push(Change {
                path: PathBuf::from(OsStr::from_bytes(prefix)),
                old: old_leaf,
                new: new_leaf,
            });
        }
        prefix.truncate(len);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::process::Command;

    fn git(dir: &Path, args: &[&str]) -> String {
        let out = Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@t"])
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    fn write(dir: &Path, path: &str, text: &str) {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    /// Every kind of change, compared with `git diff-tree -r` (git's own
    /// answer): added, deleted, modified, mode-only, a file that becomes a
    /// folder and a folder that becomes a file, a symlink, untouched
    /// folders left alone.
    #[test]
    fn the_changes_are_what_git_diff_tree_reports() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        git(dir, &["init", "-q", "-b", "main"]);
        write(dir, "a/same.txt", "same\n");
        write(dir, "a/edit.txt", "one\n");
        write(dir, "a/gone.txt", "gone\n");
        write(dir, "b/deep/x.txt", "x\n");
        write(dir, "becomes_dir", "file\n");
        write(dir, "was_dir/y.txt", "y\n");
        write(dir, "mode.sh", "echo\n");
        write(dir, "untouched/z.txt", "z\n");
        git(dir, &["add", "-A"]);
        git(dir, &["commit", "-q", "-m", "one"]);
        let from = git(dir, &["rev-parse", "HEAD"]);
        write(dir, "a/edit.txt", "two\n");
        std::fs::remove_file(dir.join("a/gone.txt")).unwrap();
        write(dir, "a/new.txt", "new\n");
        write(dir, "b/deep/er/w.txt", "w\n");
        std::fs::remove_file(dir.join("becomes_dir")).unwrap();
        write(dir, "becomes_dir/inner.txt", "inner\n");
        std::fs::remove_dir_all(dir.join("was_dir")).unwrap();
        write(dir, "was_dir", "now a file\n");
        std::os::unix::fs::symlink("a/same.txt", dir.join("link")).unwrap();
        git(dir, &["add", "-A"]);
        git(dir, &["update-index", "--chmod=+x", "mode.sh"]);
        git(dir, &["commit", "-q", "-m", "two"]);
        let to = git(dir, &["rev-parse", "HEAD"]);

        let repo = Repository::open(dir).unwrap();
        let (from, to) = (Oid::from_str(&from).unwrap(), Oid::from_str(&to).unwrap());
        let ours: Vec<String> = commit_changes(&repo, from, to)
            .unwrap()
            .iter()
            .map(|c| {
                let side = |s: Option<Side>| {
                    s.map_or_else(
                        || format!("{:06o} {}", 0, Oid::ZERO_SHA1),
                        |s| format!("{:06o} {}", s.mode, s.id),
                    )
                };
                format!("{} {}\t{}", side(c.old), side(c.new), c.path.display())
            })
            .collect();
        let theirs: Vec<String> = git(
            dir,
            &[
                "diff-tree",
                "-r",
                "--no-renames",
                "--abbrev=40",
                &from.to_string(),
                &to.to_string(),
            ],
        )
        .lines()
        .map(|l| {
            // ":<old mode> <new mode> <old id> <new id> <status>\t<path>"
            let (head, path) = l.split_once('\t').unwrap();
            let f: Vec<&str> = head.trim_start_matches(':').split(' ').collect();
            format!("{} {} {} {}\t{path}", f[0], f[2], f[1], f[3])
        })
        .collect();
        // git lists a file that becomes a folder as the file deleted and
        // the folder's files added, in its own order.
        let by_path = |v: &[String]| {
            let mut v = v.to_vec();
            v.sort_by(|a, b| a.split('\t').nth(1).cmp(&b.split('\t').nth(1)));
            v
        };
        assert_eq!(by_path(&ours), by_path(&theirs));
        assert!(
            !ours
                .iter()
                .any(|l| l.contains("untouched") || l.contains("same.txt"))
        );
        assert_eq!(commit_changes(&repo, to, to).unwrap(), Vec::new());
    }
}
