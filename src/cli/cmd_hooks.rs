//! `orch hooks install|uninstall|status`: orch's git hook shims (DESIGN §8).

use std::io::Write;

use crate::cli::{GlobalArgs, Workspace};
use crate::error::CliError;
use crate::hooks::install::{self, Change, Installed, Location};

#[derive(Debug, clap::Subcommand)]
pub enum HooksCommand {
    /// Install the hooks, chaining any hook already in place
    Install,
    /// Remove the hooks and put back the ones they chained
    Uninstall,
    /// List what is installed and what is chained
    Status,
}

pub fn run(global: &GlobalArgs, command: HooksCommand) -> Result<(), CliError> {
    let ws = Workspace::locate(global)?;
    let repo = ws.require_repo()?;
    let location = install::locate(&repo.root)?;
    let mut out = anstream::stdout().lock();
    let dir = ws.display(&location.dir);
    match command {
        HooksCommand::Install => {
            let done = install::install(&location, &std::env::current_exe()?)?;
            for (name, change) in done {
                let what = match change {
                    Change::Installed { chained: true } => {
                        "installed; chains the hook that was there"
                    }
                    Change::Installed { chained: false } => "installed",
                    Change::Updated { chained: true } => {
                        "already installed (refreshed); chains the hook that was there"
                    }
                    _ => "already installed (refreshed)",
                };
                writeln!(out, "{name:<12} {what}")?;
            }
            writeln!(
                out,
                "Hooks are in `{}`; `orch hooks uninstall` removes them.",
                dir.display()
            )?;
            relative_note(&mut out, &location)?;
        }
        HooksCommand::Uninstall => {
            for (name, change) in install::uninstall(&location)? {
                let what = match change {
                    Change::Removed { restored: true } => "removed; the hook it chained is back",
                    Change::Removed { restored: false } => "removed",
                    Change::LeftAlone => "not orch's; left as it is",
                    _ => "not installed",
                };
                writeln!(out, "{name:<12} {what}")?;
            }
        }
        HooksCommand::Status => {
            writeln!(
                out,
                "Hooks folder: `{}`{}",
                dir.display(),
                match &location.hooks_path {
                    Some(p) => format!(" (core.hooksPath = `{p}`)"),
                    None => String::new(),
                }
            )?;
            for hook in install::status(&location) {
                let what = match hook.installed {
                    Installed::Shim { chained: true } => {
                        format!("orch's shim; chains `{}.orch-chained`", hook.name)
                    }
                    Installed::Shim { chained: false } => "orch's shim".to_owned(),
                    Installed::Other => "another hook (orch's not installed)".to_owned(),
                    Installed::Absent => "not installed".to_owned(),
                };
                writeln!(out, "{:<12} {what}", hook.name)?;
            }
            relative_note(&mut out, &location)?;
        }
    }
    Ok(())
}

/// Notes that a relative `core.hooksPath` is resolved in each worktree.
fn relative_note(out: &mut impl Write, location: &Location) -> std::io::Result<()> {
    if let Some(p) = &location.hooks_path
        && !std::path::Path::new(p).is_absolute()
        && !p.starts_with('~')
    {
        writeln!(
            out,
            "Note: `core.hooksPath` is relative, so git looks for hooks in `{p}` inside each worktree; task worktrees get the shims only if that folder is committed with them."
        )?;
    }
    Ok(())
}
