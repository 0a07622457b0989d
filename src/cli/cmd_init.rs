//! `orch init`: a starter config and plan, and the state dir kept out of git.
//!
//! Refuses, writing nothing, when either file exists. The files are created
//! with `create_new`, so a file appearing between the check and the write is
//! refused too, never overwritten. `--print-config` prints the starter
//! config instead and writes nothing.
//!
//! orch reads both files from the main checkout, committed or not; `init`
//! says so, and what committing them changes (README, quick start).

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::cli::{GlobalArgs, Workspace};
use crate::config::{self, Config};
use crate::error::CliError;
use crate::state::DIR_NAME;
use crate::templates;

#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// The branch finished work is merged into (default: the branch checked out now)
    #[arg(long, value_name = "BRANCH")]
    target: Option<String>,
    /// Print the starter config, every key with its default, and write nothing
    #[arg(long)]
    print_config: bool,
}

pub fn run(global: &GlobalArgs, args: InitArgs) -> Result<(), CliError> {
    let ws = Workspace::locate(global)?;
    let repo = ws.require_repo()?;
    let config_path = ws.root.join(config::FILE_NAME);
    let plan_path = ws.root.join(&ws.config.plan);
    let existing: Vec<PathBuf> = [&config_path, &plan_path]
        .into_iter()
        .filter(|p| p.exists() && !args.print_config)
        .map(|p| ws.display(p))
        .collect();
    if !existing.is_empty() {
        let names: Vec<String> = existing
            .iter()
            .map(|p| format!("`{}`", p.display()))
            .collect();
        return Err(
            CliError::input(format!("refusing to overwrite {}", names.join(" and ")))
                .with_hint("remove or rename them first to start over"),
        );
    }
    let target = match args.target {
        Some(target) => target,
        None => repo.current_branch()?.ok_or_else(|| {
            CliError::input("HEAD is detached, so there is no current branch to merge into")
                .with_hint("check out the branch orch should merge into, or pass `--target BRANCH`")
        })?,
    };
    if !git2::Branch::name_is_valid(&target).unwrap_or(false) {
        return Err(CliError::input(format!(
            "`{target}` is not a valid branch name"
        )));
    }
    let title = ws
        .root
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "Project".to_owned());
    let config_text = render("orchestrator.toml", templates::CONFIG, &target, &title)?;
    if args.print_config {
        anstream::stdout()
            .lock()
            .write_all(config_text.as_bytes())?;
        return Ok(());
    }
    let plan_text = render("plan.toml", templates::PLAN, &target, &title)?;
    Config::from_text(&config_path, &config_text)?;

    write_new(&config_path, &config_text, &ws)?;
    if let Err(e) = write_new(&plan_path, &plan_text, &ws) {
        let _ = fs::remove_file(&config_path);
        return Err(e);
    }
    let excluded = repo.exclude(DIR_NAME)?;

    let mut out = anstream::stdout().lock();
    writeln!(
        out,
        "Wrote `{}` (target `{target}`) and `{}`.",
        ws.display(&config_path).display(),
        ws.display(&plan_path).display()
    )?;
    if excluded {
        writeln!(out, "Added `{DIR_NAME}/` to `.git/info/exclude`.")?;
    }
    writeln!(
        out,
        "orch reads both files from this checkout, committed or not. Commit them to keep\n\
         their history and share them (task worktrees then have a copy); uncommitted,\n\
         they stay in this checkout only."
    )?;
    writeln!(
        out,
        "Next: edit the plan (tasks run Claude Code unless `[agent] preset` says otherwise), then run `orch plan check`."
    )?;
    Ok(())
}

fn render(name: &str, source: &str, target: &str, title: &str) -> Result<String, CliError> {
    #[derive(serde::Serialize)]
    struct Context<'a> {
        target: &'a str,
        title: &'a str,
    }
    Ok(templates::render(name, source, Context { target, title })?)
}

fn write_new(path: &Path, text: &str, ws: &Workspace) -> Result<(), CliError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| {
            let message = format!("cannot create `{}`: {e}", ws.display(path).display());
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                CliError::input(message)
            } else {
                CliError::internal(message)
            }
        })?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    Ok(())
}
