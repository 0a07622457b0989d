//! `orch clean [--merged|--all]`: remove worktrees and branches orch made.
//!
//! Data safety (DESIGN §2.4): a worktree with uncommitted changes is never
//! removed, and a branch with commits not in target is never deleted; both
//! are named with the reason. `--merged` (the default) removes the worktree
//! and branch of every task whose branch tip is in target. `--all` also
//! removes every other clean orch worktree (its branch keeps the work) and
//! the merge worktree. Refused while a run is live.

use std::io::Write;
use std::path::Path;

use crate::cli::{GlobalArgs, Workspace};
use crate::coordinator::workspace::worktree_root;
use crate::error::{CliError, ErrorKind, Message};
use crate::git::{refs, worktree};
use crate::state::{lock, store};
use crate::text::plural;

#[derive(Debug, clap::Args)]
pub struct CleanArgs {
    /// Remove the worktrees and branches of tasks whose work is in target (the default)
    #[arg(long, conflicts_with = "all")]
    merged: bool,
    /// Also remove every other clean worktree orch made; branches with unmerged work stay
    #[arg(long)]
    all: bool,
}

pub fn run(global: &GlobalArgs, args: CleanArgs) -> Result<(), CliError> {
    let ws = Workspace::discover(global)?;
    let repo = ws.require_repo()?.root.clone();
    let target = ws.target()?;
    let dir = ws.state_dir();
    std::fs::create_dir_all(dir.path())?;
    let _lock = lock::acquire(dir.path())?;
    let target_tip =
        refs::require_tip(&repo, &target).map_err(|e| CliError::new(ErrorKind::Input, e))?;
    let prefix = &ws.config.git.branch_prefix;
    let wt_root = worktree_root(&repo, &ws.config.git.worktree_root);
    let merge_dir = dir.path().join("merge");
    let git = |e: crate::git::GitError| CliError::new(ErrorKind::Internal, e);

    let mut removed = Vec::new();
    let mut kept = Vec::new();
    let entries = worktree::list(&repo).map_err(git)?;
    for entry in entries.iter().skip(1) {
        let ours_by_branch = entry
            .branch
            .as_deref()
            .is_some_and(|b| b.starts_with(prefix.as_str()));
        let is_merge_dir = entry.path == merge_dir;
        let under_root = entry.path.starts_with(&wt_root);
        if !(ours_by_branch || under_root || is_merge_dir) {
            continue;
        }
        let merged = match entry.branch.as_deref().map(|b| refs::branch_tip(&repo, b)) {
            Some(Ok(Some(tip))) => refs::is_ancestor(&repo, tip, target_tip).map_err(git)?,
            _ => false,
        };
        if !(args.all || merged) {
            continue;
        }
        if entry.locked {
            kept.push(format!(
                "worktree `{}`: locked (`git worktree unlock` it first)",
                show(&ws, &entry.path)
            ));
            continue;
        }
        if entry.path.is_dir() {
            let dirty = worktree::dirty_files(&entry.path).map_err(git)?;
            if !dirty.is_empty() {
                kept.push(format!(
                    "worktree `{}`: {} not committed ({})",
                    show(&ws, &entry.path),
                    plural(dirty.len(), "file", "files"),
                    list(&dirty)
                ));
                continue;
            }
        }
        worktree::remove(&repo, &entry.path).map_err(git)?;
        removed.push(format!("worktree `{}`", show(&ws, &entry.path)));
    }
    worktree::prune(&repo).map_err(git)?;
    let checked_out: Vec<String> = worktree::list(&repo)
        .map_err(git)?
        .into_iter()
        .filter_map(|e| e.branch)
        .collect();
    for (branch, tip) in refs::branches_with_prefix(&repo, prefix).map_err(git)? {
        if checked_out.contains(&branch) {
            continue;
        }
        let ahead = refs::commits_between(&repo, target_tip, tip).map_err(git)?;
        let in_target = refs::is_ancestor(&repo, tip, target_tip).map_err(git)?;
        if in_target {
            refs::delete_branch(&repo, &branch).map_err(git)?;
            removed.push(format!("branch `{branch}`"));
        } else if args.all {
            kept.push(format!(
                "branch `{branch}`: {} not in `{target}`",
                plural(ahead as usize, "commit", "commits")
            ));
        }
    }
    forget_removed(&dir.state_file(), &repo, prefix)?;

    let mut out = anstream::stdout().lock();
    for r in &removed {
        writeln!(out, "Removed {r}.")?;
    }
    for k in &kept {
        writeln!(out, "Kept {k}.")?;
    }
    if removed.is_empty() && kept.is_empty() {
        writeln!(out, "Nothing to clean.")?;
    }
    if !kept.is_empty() {
        return Err(CliError::new(
            ErrorKind::RunFailed,
            Message(format!(
                "kept {} that hold work not in `{target}`",
                plural(kept.len(), "item", "items")
            )),
        )
        .with_hint("commit or discard the changes, or merge the branches, then clean again"));
    }
    Ok(())
}

fn show(ws: &Workspace, path: &Path) -> String {
    ws.display(path).display().to_string()
}

fn list(files: &[String]) -> String {
    let mut shown: Vec<&str> = files.iter().take(5).map(String::as_str).collect();
    if files.len() > 5 {
        shown.push("…");
    }
    shown.join(", ")
}

/// Drops worktree and branch fields that no longer exist from `state.json`.
fn forget_removed(state_file: &Path, repo: &Path, prefix: &str) -> Result<(), CliError> {
    let Some(mut state) = store::load(state_file)? else {
        return Ok(());
    };
    let branches: Vec<String> = refs::branches_with_prefix(repo, prefix)
        .map_err(|e| CliError::new(ErrorKind::Internal, e))?
        .into_iter()
        .map(|(b, _)| b)
        .collect();
    let mut changed = false;
    for item in state.items.values_mut() {
        if item.worktree.as_ref().is_some_and(|w| !w.exists()) {
            item.worktree = None;
            changed = true;
        }
        if item.branch.as_ref().is_some_and(|b| !branches.contains(b)) {
            item.branch = None;
            changed = true;
        }
    }
    if changed {
        store::save(state_file, &state)?;
    }
    Ok(())
}
