//! What the shims do: `orch __hook NAME ARGS...`, run by git.
//!
//! Only inside a task worktree (a linked worktree of the repository whose
//! branch is `branch_prefix` + a task id) does anything happen:
//!
//! - `commit-msg FILE` adds `Orch-Task: <id>` (and `Orch-Subtask:` when an
//!   agent is working on one subtask) with `git interpret-trailers`;
//! - `pre-commit` refuses staged changes to `policy.forbidden_paths`;
//! - `post-commit` appends a `task.commit` event. A confined agent cannot
//!   write the state dir: its supervisor names a file in the run folder
//!   ([`COMMITS_VAR`]) where the hook writes the event instead, and moves it
//!   into `events.jsonl` (`runner::supervise`).
//!
//! Everywhere else, and for orch's own commits ([`cmd::INTERNAL_VAR`]), it
//! exits 0 at once. A hook must never stand between a person and their
//! commit because orch is confused: a config it cannot read or a state dir
//! it cannot write is reported on stderr and the commit goes on. The only
//! refusal is the forbidden-path rule, which names the file and the rule.
//!
//! git runs hooks with its own environment (`GIT_INDEX_FILE` for a partial
//! commit, for one), so the git commands here inherit it rather than going
//! through [`cmd`], which scrubs it.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use crate::config::{self, Config};
use crate::git::RepoPaths;
use crate::git::cmd;
use crate::plan::FullId;
use crate::runner::confine::COMMITS_VAR;
use crate::state::events::{CommitSource, EventKind, EventLog};

/// Why a hook could not do its part (reported, and the commit goes on).
#[derive(Debug, thiserror::Error)]
enum ActionError {
    #[error("cannot run git")]
    GitMissing(#[source] std::io::Error),
    #[error("`git {args}` failed: {stderr}")]
    Git { args: String, stderr: String },
    #[error("the message file's path is not UTF-8")]
    NotUtf8,
    #[error("cannot append to `{}`", path.display())]
    Events {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The task worktree a hook runs in.
struct TaskWorktree {
    root: PathBuf,
    config: Config,
    task: FullId,
    branch: String,
}

/// Runs orch's part of hook `name`; returns the exit code git sees.
pub fn main(name: &str, args: &[OsString]) -> ExitCode {
    if std::env::var_os(cmd::INTERNAL_VAR).is_some() {
        return ExitCode::SUCCESS;
    }
    let Some(wt) = task_worktree() else {
        return ExitCode::SUCCESS;
    };
    let result = match name {
        "commit-msg" => match args.first() {
            Some(file) => add_trailers(&wt, Path::new(file)),
            None => Ok(()),
        },
        "pre-commit" => return refuse_forbidden(&wt),
        "post-commit" => record_commit(&wt),
        _ => Ok(()),
    };
    if let Err(e) = result {
        eprintln!(
            "orch: {name} hook: {} (the commit goes on)",
            crate::text::error_chain(&e)
        );
    }
    ExitCode::SUCCESS
}

/// Returns the task worktree the current directory is in, if it is one.
fn task_worktree() -> Option<TaskWorktree> {
    let cwd = std::env::current_dir().ok()?;
    let repo = git2::Repository::discover(&cwd).ok()?;
    if !repo.is_worktree() {
        return None;
    }
    let head = repo.head().ok()?;
    let branch = head.shorthand().ok()?.to_owned();
    let root = RepoPaths::discover(&cwd).ok()?.root;
    let config = match Config::load(&root.join(config::FILE_NAME), true) {
        Ok(loaded) => loaded.config,
        Err(e) => {
            eprintln!("orch: hooks skipped: {e}");
            return None;
        }
    };
    let task = FullId::parse(branch.strip_prefix(&config.git.branch_prefix)?).ok()?;
    Some(TaskWorktree {
        root,
        config,
        task,
        branch,
    })
}

fn git(args: &[&str]) -> Result<String, ActionError> {
    let out = Command::new("git")
        .args(args)
        .output()
        .map_err(ActionError::GitMissing)?;
    if !out.status.success() {
        return Err(ActionError::Git {
            args: args.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Returns the subtask an agent is working on, when it belongs to this task.
fn subtask(wt: &TaskWorktree) -> Option<FullId> {
    let id = FullId::parse(&std::env::var("ORCH_SUBTASK_ID").ok()?).ok()?;
    wt.task.is_ancestor_of(&id).then_some(id)
}

fn add_trailers(wt: &TaskWorktree, file: &Path) -> Result<(), ActionError> {
    let file = file.to_str().ok_or(ActionError::NotUtf8)?;
    let task = format!("Orch-Task: {}", wt.task);
    let mut args = vec![
        "interpret-trailers",
        "--in-place",
        "--if-exists",
        "addIfDifferent",
        "--trailer",
        &task,
    ];
    let sub = subtask(wt).map(|s| format!("Orch-Subtask: {s}"));
    if let Some(sub) = &sub {
        args.extend(["--trailer", sub]);
    }
    args.push(file);
    git(&args).map(drop)
}

fn refuse_forbidden(wt: &TaskWorktree) -> ExitCode {
    if wt.config.policy.forbidden_paths.is_empty() {
        return ExitCode::SUCCESS;
    }
    let forbidden = match wt.config.policy.forbidden() {
        Ok(forbidden) => forbidden,
        Err(e) => {
            eprintln!("orch: pre-commit hook: {e} (the commit goes on)");
            return ExitCode::SUCCESS;
        }
    };
    let staged = match git(&["diff", "--cached", "--name-only", "-z", "--no-renames"]) {
        Ok(out) => out,
        Err(e) => {
            eprintln!(
                "orch: pre-commit hook: {} (the commit goes on)",
                crate::text::error_chain(&e)
            );
            return ExitCode::SUCCESS;
        }
    };
    let hits: Vec<(String, &str)> = staged
        .split('\0')
        .filter(|p| !p.is_empty())
        .filter_map(|p| forbidden.matching(p).map(|rule| (p.to_owned(), rule)))
        .collect();
    if hits.is_empty() {
        return ExitCode::SUCCESS;
    }
    for (path, rule) in &hits {
        eprintln!(
            "orch: `{path}` matches `{rule}` in `policy.forbidden_paths`; task `{}` may not change it",
            wt.task
        );
    }
    eprintln!(
        "orch: commit refused; the merge queue would refuse it too. Unstage {} (`git restore --staged <file>`) and commit again.",
        if hits.len() == 1 {
            "that file"
        } else {
            "those files"
        }
    );
    ExitCode::FAILURE
}

fn record_commit(wt: &TaskWorktree) -> Result<(), ActionError> {
    let state_dir = crate::state::StateDir::of_repo(&wt.root);
    let confined = std::env::var_os(COMMITS_VAR).map(PathBuf::from);
    if confined.is_none() && !state_dir.path().is_dir() {
        return Ok(());
    }
    let head = git(&["log", "-1", "--format=%H%x00%s"])?;
    let (sha, subject) = head
        .trim_end()
        .split_once('\0')
        .unwrap_or((head.trim_end(), ""));
    let unit = subtask(wt).unwrap_or_else(|| wt.task.clone());
    let commit = EventKind::TaskCommit {
        commit: sha.to_owned(),
        subject: subject.to_owned(),
        branch: Some(wt.branch.clone()),
        source: CommitSource::Hook,
        attempt: std::env::var("ORCH_ATTEMPT")
            .ok()
            .and_then(|a| a.parse::<u32>().ok()),
    };
    if let Some(path) = confined {
        return append_line(&path, &commit).map_err(|source| ActionError::Events { path, source });
    }
    let path = state_dir.events_file();
    let events = |source| ActionError::Events {
        path: path.clone(),
        source,
    };
    EventLog::open(&path)
        .and_then(|mut log| log.append(Some(&unit), commit))
        .map_err(events)?;
    Ok(())
}

/// Appends `kind` as one JSON line to `path`, in one write.
fn append_line(path: &Path, kind: &EventKind) -> std::io::Result<()> {
    use std::io::Write;
    let mut line = serde_json::to_vec(kind).map_err(std::io::Error::other)?;
    line.push(b'\n');
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?
        .write_all(&line)
}
