//! `orch clean [--merged|--all]`: remove worktrees and branches orch made.
//!
//! The rules (never a worktree with uncommitted changes, never a branch with
//! commits not in target, locked worktrees kept) and the removals are
//! [`crate::clean`]'s; this renders its report, one line per item, and exits
//! 1 when something was kept. Refused while a run is live.

use std::io::Write;

use crate::clean::{self, Item, KeepReason, Kept, Request, Scope};
use crate::cli::{GlobalArgs, Workspace};
use crate::error::CliError;
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
    let report = clean::clean(&Request {
        repo,
        state_dir: ws.state_dir(),
        target: target.clone(),
        branch_prefix: ws.config.git.branch_prefix.clone(),
        worktree_root: ws.config.git.worktree_root.clone(),
        scope: if args.all { Scope::All } else { Scope::Merged },
    })?;

    let mut out = anstream::stdout().lock();
    for item in &report.removed {
        writeln!(out, "Removed {}.", item_text(&ws, item))?;
    }
    for kept in &report.kept {
        writeln!(out, "Kept {}.", kept_text(&ws, kept, &target))?;
    }
    if report.removed.is_empty() && report.kept.is_empty() {
        writeln!(out, "Nothing to clean.")?;
    }
    if !report.kept.is_empty() {
        return Err(CliError::run_failed(format!(
            "kept {} that hold work not in `{target}`",
            plural(report.kept.len(), "item", "items")
        ))
        .with_hint("commit or discard the changes, or merge the branches, then clean again"));
    }
    Ok(())
}

fn item_text(ws: &Workspace, item: &Item) -> String {
    match item {
        Item::Worktree(path) => format!("worktree `{}`", ws.display(path).display()),
        Item::Branch(name) => format!("branch `{name}`"),
    }
}

fn kept_text(ws: &Workspace, kept: &Kept, target: &str) -> String {
    let item = item_text(ws, &kept.item);
    match &kept.reason {
        KeepReason::Locked => format!("{item}: locked (`git worktree unlock` it first)"),
        KeepReason::Uncommitted { files } => format!(
            "{item}: {} not committed ({})",
            plural(files.len(), "file", "files"),
            list(files)
        ),
        KeepReason::NotInTarget { commits } => format!(
            "{item}: {} not in `{target}`",
            plural(*commits as usize, "commit", "commits")
        ),
    }
}

fn list(files: &[String]) -> String {
    let mut shown: Vec<&str> = files.iter().take(5).map(String::as_str).collect();
    if files.len() > 5 {
        shown.push("…");
    }
    shown.join(", ")
}
