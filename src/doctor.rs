//! `orch doctor`: checks git, the config, the plan, the hooks, the worktrees
//! and the state against git and the process table, and says what to do
//! about each problem. It only reads; every fix is a command the person
//! runs (docs/doctor.md lists the checks). The one exception: for a
//! cluster executor with a shared filesystem, it writes (and removes) a
//! marker file that a probe job reads, to prove the nodes see the files.

use std::path::{Path, PathBuf};

use crate::config::{self, Config};
use crate::coordinator::recovery::{self, Fate};
use crate::coordinator::workspace;
use crate::git::{cmd, refs, worktree};
use crate::hooks::install::{self, Installed};
use crate::lifecycle::Status;
use crate::plan::{self, Plan};
use crate::state::{StateDir, lock, store};
use crate::text::plural;

/// The oldest git orch works with: `git merge-tree --write-tree` came in 2.38.
pub const MIN_GIT: (u32, u32) = (2, 38);

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Ok,
    Warn,
    Error,
}

/// One thing the doctor found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub level: Level,
    /// What was checked: `git`, `config`, `plan`, `hooks`, `worktrees`, `state`.
    pub area: &'static str,
    pub message: String,
    /// What to do about it.
    pub fix: Option<String>,
}

struct Report {
    findings: Vec<Finding>,
}

impl Report {
    fn add(&mut self, level: Level, area: &'static str, message: String, fix: Option<String>) {
        self.findings.push(Finding {
            level,
            area,
            message,
            fix,
        });
    }

    fn ok(&mut self, area: &'static str, message: String) {
        self.add(Level::Ok, area, message, None);
    }

    fn warn(&mut self, area: &'static str, message: String, fix: impl Into<String>) {
        self.add(Level::Warn, area, message, Some(fix.into()));
    }

    fn error(&mut self, area: &'static str, message: String, fix: impl Into<String>) {
        self.add(Level::Error, area, message, Some(fix.into()));
    }
}

/// What the doctor looks at.
#[derive(Debug, Clone)]
pub struct Subject {
    /// The main worktree's root.
    pub root: PathBuf,
    /// The config file (`.orchestrator.toml` at the root unless given).
    pub config: PathBuf,
    /// Whether the config file may be missing (defaults then apply).
    pub config_optional: bool,
    /// Paths in messages are shown relative to this folder.
    pub cwd: PathBuf,
}

/// Runs every check and returns what it found, in order.
pub fn examine(subject: &Subject) -> Vec<Finding> {
    let mut r = Report {
        findings: Vec::new(),
    };
    let show = |p: &Path| plan::display_path(p, &subject.cwd).display().to_string();
    check_git(&mut r, &subject.root);
    let config = match Config::load(&subject.config, subject.config_optional) {
        Ok(loaded) => {
            match &loaded.path {
                Some(p) => r.ok("config", format!("`{}` is valid", show(p))),
                None => r.ok(
                    "config",
                    format!("no `{}`; the defaults apply", config::FILE_NAME),
                ),
            }
            loaded.config
        }
        Err(e) => {
            r.error(
                "config",
                crate::text::error_chain(&e.shown_as(Path::new(&show(&subject.config)))),
                "fix the file; `.orchestrator.toml.example` lists every key with its default",
            );
            return r.findings;
        }
    };
    check_agent(&mut r, &config);
    let target = check_target(&mut r, &subject.root, &config);
    let plan = check_plan(&mut r, &subject.root, &config, &show);
    check_hooks(&mut r, &subject.root, &config, &show);
    let wt_root = workspace::worktree_root(&subject.root, &config.git.worktree_root);
    check_worktrees(&mut r, &subject.root, &wt_root, &show);
    check_executor(&mut r, &subject.root, &config, &wt_root, &show);
    if let Some(plan) = &plan {
        check_state(&mut r, &subject.root, plan, target.as_deref(), &show);
    }
    r.findings
}

/// Returns git's version as (major, minor, patch).
pub fn git_version(dir: &Path) -> Option<(u32, u32, u32)> {
    // `git version 2.47.3` (and `2.39.3 (Apple Git-146)`): the one
    // human-readable git output orch reads, as git offers no other.
    let text = cmd::stdout(dir, ["--version"]).ok()?;
    let version = text.split_whitespace().nth(2)?;
    let mut parts = version.split('.').map(|p| p.parse::<u32>().ok());
    Some((
        parts.next()??,
        parts.next()??,
        parts.next().flatten().unwrap_or(0),
    ))
}

fn check_git(r: &mut Report, root: &Path) {
    match git_version(root) {
        Some((major, minor, patch)) if (major, minor) >= MIN_GIT => {
            r.ok("git", format!("git {major}.{minor}.{patch}"));
        }
        Some((major, minor, patch)) => r.error(
            "git",
            format!(
                "git {major}.{minor}.{patch} is too old; orch needs {}.{} or later (for `git merge-tree --write-tree`)",
                MIN_GIT.0, MIN_GIT.1
            ),
            "install a newer git",
        ),
        None => r.error(
            "git",
            "cannot run `git --version`".to_owned(),
            "install git and put it on PATH",
        ),
    }
    if crate::git::commit::identity_configured(root) {
        r.ok("git", "a commit identity is configured".to_owned());
    } else {
        r.warn(
            "git",
            "no commit identity (`user.name`, `user.email`); orch's own commits use a fallback, but agents that commit will fail".to_owned(),
            "git config --global user.name \"Your Name\" && git config --global user.email you@example.com",
        );
    }
}

fn on_path(program: &str) -> bool {
    if program.contains('/') {
        return is_executable(Path::new(program));
    }
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| is_executable(&dir.join(program)))
    })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn check_agent(r: &mut Report, config: &Config) {
    let mut commands = vec![("agent.command".to_owned(), &config.agent.command)];
    for (name, preset) in &config.agents {
        commands.push((format!("agents.{name}.command"), &preset.command));
    }
    for (key, argv) in commands {
        match argv.first() {
            None => r.error(
                "config",
                format!("`{key}` is empty"),
                "set the agent's argv, e.g. `command = [\"claude\", \"-p\"]`",
            ),
            Some(program) if on_path(program) => {
                r.ok("config", format!("`{key}`: `{program}` is found"));
            }
            Some(program) => r.error(
                "config",
                format!("`{key}`: `{program}` is not an executable on PATH"),
                format!("install `{program}`, or point `{key}` at the agent you use"),
            ),
        }
    }
}

/// How long the executor's probe job may take, queue included.
const PROBE_WAIT: std::time::Duration = std::time::Duration::from_secs(120);

/// For a cluster executor: its commands are on PATH, and a probe job
/// proves the workspace reaches the nodes. With `workspace = "shared"` the
/// job reads a marker file orch just wrote in `worktree_root` and in the
/// state dir (the only files the doctor writes, removed again); with
/// `workspace = "git"` it lists the remote.
fn check_executor(
    r: &mut Report,
    root: &Path,
    config: &Config,
    wt_root: &Path,
    show: &dyn Fn(&Path) -> String,
) {
    use crate::config::{ExecutorKind, WorkspaceMode};
    use crate::runner::slurm::{self, Probe};
    let cfg = &config.executor;
    if cfg.kind == ExecutorKind::Local && config.merge.executor == ExecutorKind::Local {
        return;
    }
    let missing: Vec<&str> = ["srun", "squeue", "scancel", "scontrol"]
        .into_iter()
        .filter(|p| !on_path(p))
        .collect();
    if !missing.is_empty() {
        r.error(
            "executor",
            format!(
                "`executor.kind = \"slurm\"`, but {} not on PATH",
                missing.join(", ")
            ),
            "install the Slurm client commands on this machine (Debian: `slurm-client`)",
        );
        return;
    }
    let state_dir = StateDir::of_repo(root);
    let (argv, markers, what) = match cfg.workspace {
        WorkspaceMode::Shared => {
            let token = format!("orch-probe-{:016x}", fastrand::u64(..));
            let mut markers = Vec::new();
            for dir in [wt_root, state_dir.path()] {
                if std::fs::create_dir_all(dir).is_err() {
                    continue;
                }
                let marker = dir.join(format!(".{token}"));
                if std::fs::write(&marker, &token).is_ok() {
                    markers.push(marker);
                }
            }
            let mut argv = vec!["cat".to_owned()];
            argv.extend(markers.iter().map(|m| m.display().to_string()));
            let what = format!("`{}` and `{}`", show(wt_root), show(state_dir.path()));
            (
                argv,
                markers
                    .into_iter()
                    .map(|m| (m, token.clone()))
                    .collect::<Vec<_>>(),
                what,
            )
        }
        WorkspaceMode::Git => {
            let remote = cfg.remote.clone().unwrap_or_default();
            let argv = vec!["git".to_owned(), "ls-remote".to_owned(), remote.clone()];
            (argv, Vec::new(), format!("the remote `{remote}`"))
        }
    };
    let chdir = match cfg.workspace {
        WorkspaceMode::Shared => wt_root.to_owned(),
        WorkspaceMode::Git => PathBuf::from(&cfg.scratch),
    };
    let probed = slurm::probe(cfg, &chdir, &argv, PROBE_WAIT);
    let expected: String = markers.iter().map(|(_, t)| t.as_str()).collect();
    for (marker, _) in &markers {
        let _ = std::fs::remove_file(marker);
    }
    match probed {
        Ok(Probe::Ran { stdout }) if stdout.trim() == expected.trim() || markers.is_empty() => {
            r.ok("executor", format!("a Slurm probe job reached {what}"));
        }
        Ok(Probe::Ran { .. }) => r.error(
            "executor",
            format!("a Slurm probe job read other files than orch wrote in {what}"),
            "put `git.worktree_root` and the repository on the filesystem the nodes share",
        ),
        Ok(Probe::Failed { code, stderr }) => r.error(
            "executor",
            format!(
                "a Slurm probe job could not reach {what} (exit {}): {}",
                code.map_or("?".to_owned(), |c| c.to_string()),
                stderr.lines().last().unwrap_or("")
            ),
            match cfg.workspace {
                WorkspaceMode::Shared => "put `git.worktree_root` and the repository on the filesystem the nodes share, or use `workspace = \"git\"`",
                WorkspaceMode::Git => "give `executor.remote` a URL the nodes can fetch from and push to",
            },
        ),
        Ok(Probe::TimedOut) => r.warn(
            "executor",
            format!(
                "a Slurm probe job did not run within {}",
                humantime::format_duration(PROBE_WAIT)
            ),
            "check `sinfo` and `squeue`: the partition may be busy or down",
        ),
        Err(e) => r.error(
            "executor",
            format!("cannot run `srun`: {e}"),
            "check that the Slurm client commands work here (`sinfo`)",
        ),
    }
}

fn check_target(r: &mut Report, root: &Path, config: &Config) -> Option<String> {
    let target = config.git.target.clone().or_else(|| {
        crate::git::RepoPaths::discover(root)
            .ok()?
            .current_branch()
            .ok()?
    });
    let Some(target) = target else {
        r.error(
            "config",
            "no target branch: `git.target` is not set and HEAD is detached".to_owned(),
            "set `target` under `[git]`",
        );
        return None;
    };
    match refs::branch_tip(root, &target) {
        Ok(Some(_)) => r.ok("git", format!("target branch `{target}` exists")),
        _ => r.error(
            "git",
            format!("target branch `{target}` does not exist"),
            format!("create it (`git branch {target}`) or set `git.target`"),
        ),
    }
    Some(target)
}

fn check_plan(
    r: &mut Report,
    root: &Path,
    config: &Config,
    show: &dyn Fn(&Path) -> String,
) -> Option<Plan> {
    let path = root.join(&config.plan);
    let loaded = std::fs::read(&path)
        .map_err(|source| plan::PlanError::Read {
            path: PathBuf::from(show(&path)),
            source,
        })
        .and_then(|bytes| plan::from_bytes(Path::new(&show(&path)), &bytes, &config.plan_rules()));
    match loaded {
        Ok(plan) => {
            r.ok(
                "plan",
                format!(
                    "`{}`: {}, {}, {}",
                    show(&path),
                    plural(plan.tasks().len(), "task", "tasks"),
                    plural(plan.subtask_count(), "subtask", "subtasks"),
                    plural(plan.dependency_count(), "dependency", "dependencies")
                ),
            );
            Some(plan)
        }
        Err(e) => {
            let mut message = crate::text::error_chain(&e);
            for line in e.detail_lines().iter().take(5) {
                message.push_str("\n  ");
                message.push_str(line);
            }
            r.error(
                "plan",
                message,
                "`orch plan check` lists every error with its line and column",
            );
            None
        }
    }
}

fn check_hooks(r: &mut Report, root: &Path, config: &Config, show: &dyn Fn(&Path) -> String) {
    let location = match install::locate(root) {
        Ok(location) => location,
        Err(e) => {
            r.warn(
                "hooks",
                crate::text::error_chain(&e),
                "check `core.hooksPath`",
            );
            return;
        }
    };
    let states = install::status(&location);
    let missing: Vec<&str> = states
        .iter()
        .filter(|h| !matches!(h.installed, Installed::Shim { .. }))
        .map(|h| h.name)
        .collect();
    if missing.is_empty() {
        let stale = states
            .iter()
            .find_map(|h| shim_target(&h.path).filter(|p| !is_executable(p)));
        match stale {
            Some(exe) => r.warn(
                "hooks",
                format!(
                    "the hooks call `{}`, which is gone; they fall back to `orch` on PATH",
                    exe.display()
                ),
                "orch hooks install",
            ),
            None => r.ok("hooks", format!("installed in `{}`", show(&location.dir))),
        }
    } else if config.hooks.install {
        r.ok(
            "hooks",
            format!(
                "{} not installed yet; `orch run` installs them (`hooks.install`)",
                missing.join(", ")
            ),
        );
    } else {
        r.warn(
            "hooks",
            format!(
                "{} not installed: commits in task worktrees get no `Orch-Task:` trailer",
                missing.join(", ")
            ),
            "orch hooks install",
        );
    }
}

/// Returns the `orch` binary a shim calls.
fn shim_target(shim: &Path) -> Option<PathBuf> {
    let text = std::fs::read_to_string(shim).ok()?;
    let line = text.lines().find(|l| l.starts_with("orch='"))?;
    let quoted = line.strip_prefix("orch=")?;
    Some(PathBuf::from(
        quoted.trim_matches('\'').replace(r"'\''", "'"),
    ))
}

fn check_worktrees(r: &mut Report, root: &Path, wt_root: &Path, show: &dyn Fn(&Path) -> String) {
    let entries = match worktree::list(root) {
        Ok(entries) => entries,
        Err(e) => {
            r.error(
                "worktrees",
                crate::text::error_chain(&e),
                "check the repository with `git worktree list`",
            );
            return;
        }
    };
    let mut problems = 0;
    for e in entries.iter().skip(1) {
        if e.prunable || !e.path.exists() {
            problems += 1;
            r.warn(
                "worktrees",
                format!(
                    "`{}` is registered but its folder is missing",
                    show(&e.path)
                ),
                "git worktree prune",
            );
        } else if e.locked {
            problems += 1;
            r.warn(
                "worktrees",
                format!(
                    "`{}` is locked; orch will not move or remove it",
                    show(&e.path)
                ),
                format!(
                    "git worktree unlock '{}' (once nothing else uses it)",
                    e.path.display()
                ),
            );
        }
    }
    if let Ok(dir) = std::fs::read_dir(wt_root) {
        for entry in dir.flatten() {
            let path = entry.path();
            if path.is_dir() && !entries.iter().any(|e| e.path == path) {
                problems += 1;
                r.warn(
                    "worktrees",
                    format!("`{}` is in the worktree root but is not a worktree of this repository; a task with that id cannot start", show(&path)),
                    "look inside, keep what you need, then remove the folder",
                );
            }
        }
    }
    let ours = entries
        .iter()
        .filter(|e| e.path.starts_with(wt_root))
        .count();
    if problems == 0 {
        r.ok(
            "worktrees",
            format!(
                "{} in `{}`; none stale or locked",
                plural(ours, "worktree", "worktrees"),
                show(wt_root)
            ),
        );
    }
}

fn check_state(
    r: &mut Report,
    root: &Path,
    plan: &Plan,
    target: Option<&str>,
    show: &dyn Fn(&Path) -> String,
) {
    let dir = StateDir::of_repo(root);
    let path = dir.state_file();
    let state = match store::load(&path) {
        Ok(Some(state)) => state,
        Ok(None) => {
            r.ok("state", "nothing has run yet".to_owned());
            return;
        }
        Err(e) => {
            r.error(
                "state",
                crate::text::error_chain(&e.shown_as(Path::new(&show(&path)))),
                format!(
                    "move `{}` aside to start over (git keeps every branch)",
                    show(&path)
                ),
            );
            return;
        }
    };
    let live = lock::holder(dir.path()).ok().flatten();
    match live {
        Some(pid) => r.ok("state", format!("a run is live (pid {pid})")),
        None => r.ok(
            "state",
            format!("`{}` is readable; no run is live", show(&path)),
        ),
    }
    if let (Some(recorded), Some(target)) = (&state.target, target)
        && recorded != target
    {
        r.warn(
            "state",
            format!(
                "the state was written for target `{recorded}`, the config now says `{target}`"
            ),
            "finish or clean the earlier run before switching targets",
        );
    }
    let mut problems = 0;
    for (id, item) in &state.items {
        if plan.lookup(id.as_str()).is_none() {
            r.warn(
                "state",
                format!("`{id}` is in the state but not in the plan"),
                "nothing to do unless you removed it by mistake",
            );
            continue;
        }
        if let Some(branch) = &item.branch
            && matches!(
                item.status,
                Status::AwaitingMerge
                    | Status::Conflicted
                    | Status::Running
                    | Status::Retrying
                    | Status::Failed
            )
            && !matches!(refs::branch_tip(root, branch), Ok(Some(_)))
        {
            problems += 1;
            r.error(
                "state",
                format!("`{id}` is {} but its branch `{branch}` is gone", item.status.as_str().replace('_', " ")),
                format!(
                    "restore the branch if you can (`git reflog`); else `orch cancel {id}`, then `orch retry {id}` starts it over"
                ),
            );
        }
        if let Some(wt) = &item.worktree
            && matches!(
                item.status,
                Status::Running | Status::Retrying | Status::Conflicted
            )
            && !wt.is_dir()
        {
            problems += 1;
            r.warn(
                "state",
                format!(
                    "`{id}` records the worktree `{}`, which is missing",
                    show(wt)
                ),
                "the next `orch run` makes a new one from the task's branch",
            );
        }
        if let Some(open) = item.open_attempt()
            && live.is_none()
        {
            problems += 1;
            let known = item.attempts.len() as u32;
            let newest = recovery::runs_of(&dir, id, known).newest;
            let n = open.number;
            let (finding, fix) = match recovery::fate(n, Some(newest)) {
                Fate::Adopt => (
                    format!("the agent of `{id}` (attempt {n}) still runs with no run to watch it"),
                    format!("`orch run` adopts it, or `orch cancel {id}` stops it"),
                ),
                Fate::Collect => (
                    format!("the agent of `{id}` (attempt {n}) finished while no run watched it"),
                    "the next `orch run` collects what it left and carries on".to_owned(),
                ),
                Fate::Interrupt => (
                    format!(
                        "`{id}` was running when the last run stopped (attempt {n}); nothing of that attempt is left"
                    ),
                    "the next `orch run` starts it again without spending an attempt".to_owned(),
                ),
            };
            r.warn("state", finding, fix);
        }
    }
    if problems == 0 {
        r.ok(
            "state",
            format!(
                "{} checked against git and the process table",
                plural(state.items.len(), "item", "items")
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shim_target_is_read_back_with_its_quotes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("commit-msg");
        std::fs::write(&path, "#!/bin/sh\norch='/opt/o'\\''rch'\n").unwrap();
        assert_eq!(shim_target(&path), Some(PathBuf::from("/opt/o'rch")));
    }
}
