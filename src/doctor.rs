//! `orch doctor`: checks git, the config, the plan, the hooks, the worktrees
//! and the state against git and the process table, and says what to do
//! about each problem. It only reads; every fix is a command the person
//! runs (docs/doctor.md lists the checks). The one exception: for a
//! cluster executor with a shared filesystem, it writes (and removes) a
//! marker file that a probe job reads, to prove the nodes see the files.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::{self, Config};
use crate::coordinator::recovery::{self, Fate};
use crate::coordinator::workspace;
use crate::coordinator::{Env, Options, RunState};
use crate::git::{cmd, refs, worktree};
use crate::hooks::install::{self, Installed};
use crate::lifecycle::Status;
use crate::plan::{self, Plan};
use crate::runner::confine;
use crate::runner::prompt;
use crate::sandbox::{Confinement, NETWORK_ABI, Network};
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
    let (config, config_file) = match Config::load(&subject.config, subject.config_optional) {
        Ok(loaded) => {
            match &loaded.path {
                Some(p) => r.ok("config", format!("`{}` is valid", show(p))),
                None => r.ok(
                    "config",
                    format!("no `{}`; the defaults apply", config::FILE_NAME),
                ),
            }
            let file = loaded.path.is_some();
            (loaded.config, file)
        }
        Err(e) => {
            r.error(
                "config",
                crate::text::error_chain(&e.shown_as(Path::new(&show(&subject.config)))),
                "fix the file; `orch init --print-config` prints every key with its default and what it does",
            );
            return r.findings;
        }
    };
    let target = check_target(&mut r, &subject.root, &config);
    check_sandbox(&mut r, &config, target.as_deref());
    let plan = check_plan(&mut r, &subject.root, &config, config_file, &show).map(Arc::new);
    check_agents(
        &mut r,
        &subject.root,
        &config,
        plan.as_deref(),
        target.as_deref(),
    );
    if let (Some(plan), Some(target)) = (&plan, &target) {
        check_prompts(&mut r, &subject.root, &config, plan, target);
    }
    check_hooks(&mut r, &subject.root, &config, &show);
    let wt_root = workspace::worktree_root(&subject.root, &config.git.worktree_root);
    check_worktrees(&mut r, &subject.root, &wt_root, &show);
    check_executor(&mut r, &subject.root, &config, &wt_root, &show);
    if let Some(plan) = plan.as_deref() {
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

/// Checks that every agent a task runs is installed (an error: its tasks
/// would fail), and warns about presets of the config no task uses whose
/// program is missing. Built-in presets nobody uses or mentions are not
/// looked at.
fn check_agents(
    r: &mut Report,
    root: &Path,
    config: &Config,
    plan: Option<&Plan>,
    target: Option<&str>,
) {
    let used: std::collections::BTreeSet<&str> = plan
        .map(|p| p.items.iter().filter_map(|i| i.agent()).collect())
        .unwrap_or_default();
    let mut agents: Vec<(String, Option<String>, bool)> = Vec::new();
    let default = match config.default_preset() {
        Some(name) => (
            format!("agent (preset `{name}`)"),
            Some(name.to_owned()),
            true,
        ),
        None => ("agent.command".to_owned(), None, true),
    };
    agents.push(default);
    for name in config.agent_names() {
        let in_use = used.contains(name.as_str());
        if in_use || config.agents.contains_key(&name) {
            agents.push((format!("agents.{name}"), Some(name), in_use));
        }
    }
    for (key, preset, in_use) in agents {
        let Some(agent) = config.agent(preset.as_deref()) else {
            continue;
        };
        let Some(program) = agent.command.first() else {
            continue;
        };
        if is_worktree_relative(program) {
            match target {
                Some(target) => check_committed_agent(r, root, &key, program, target),
                None => r.warn(
                    "config",
                    format!("`{key}`: `{program}` is run from each task's worktree, made from the target, and there is no target to look in"),
                    "set `target` under `[git]`, or use an absolute path",
                ),
            }
        } else if on_path(program) {
            r.ok("config", format!("`{key}`: `{program}` is found"));
        } else if config.executor.kind == crate::config::ExecutorKind::Slurm {
            r.warn(
                "config",
                format!("`{key}`: `{program}` is not on this machine's PATH; Slurm jobs run it on their nodes"),
                format!("make sure the nodes have `{program}` on their PATH"),
            );
        } else if in_use {
            r.error(
                "config",
                format!("`{key}`: `{program}` is not an executable on PATH"),
                format!("install `{program}`, or point `{key}` at the agent you use"),
            );
        } else {
            r.warn(
                "config",
                format!("`{key}`: `{program}` is not an executable on PATH (no task uses it)"),
                format!(
                    "install `{program}` before a task picks `agent = \"{}\"`",
                    preset.as_deref().unwrap_or_default()
                ),
            );
        }
    }
}

/// Returns whether the agent's program is a relative path with a `/`: the
/// supervisor runs it from the task's worktree, so it resolves there.
fn is_worktree_relative(program: &str) -> bool {
    program.contains('/') && Path::new(program).is_relative()
}

/// Checks a relative agent path where tasks run it: in the target's
/// committed tree, which every task's worktree is made from.
fn check_committed_agent(r: &mut Report, root: &Path, key: &str, program: &str, target: &str) {
    let mut inside = PathBuf::new();
    for component in Path::new(program).components() {
        match component {
            std::path::Component::CurDir => {}
            std::path::Component::Normal(part) => inside.push(part),
            _ => {
                r.warn(
                    "config",
                    format!("`{key}`: `{program}` is resolved from each task's worktree and leaves it, so it cannot be checked"),
                    "use an absolute path",
                );
                return;
            }
        }
    }
    let name = inside.display().to_string();
    match refs::committed_mode(root, target, &inside) {
        Ok(Some(mode)) if mode & 0o111 != 0 || mode == refs::SYMLINK_MODE => r.ok(
            "config",
            format!("`{key}`: `{program}` is committed on `{target}`, so every task's worktree has it"),
        ),
        Ok(Some(_)) => r.error(
            "config",
            format!("`{key}`: `{program}` is committed on `{target}` without the executable bit"),
            format!("`git update-index --chmod=+x {name}` and commit, or run it through `sh`"),
        ),
        Ok(None) => r.error(
            "config",
            format!("`{key}`: `{program}` is run in each task's worktree, made from `{target}`, and `{target}` has no `{name}` committed"),
            if root.join(&inside).exists() {
                format!("commit `{name}` to `{target}` (your checkout has it), or use an absolute path")
            } else {
                format!("commit `{name}` to `{target}`, or use an absolute path")
            },
        ),
        Err(e) => r.warn(
            "config",
            format!("`{key}`: cannot look for `{program}` on `{target}`: {}", crate::text::error_chain(&e)),
            "check the repository with `git status`",
        ),
    }
}

/// Says whether agents and hooks are confined, and what keeps them from
/// committing when the branch prefix puts their branches beside the target.
fn check_sandbox(r: &mut Report, config: &Config, target: Option<&str>) {
    let setup = confine::Setup::probe(&config.sandbox);
    match setup.confinement {
        Confinement::Confined { abi, network } => {
            r.ok(
                "sandbox",
                format!("agents and hooks are confined to their worktrees (Landlock ABI {abi})"),
            );
            if network == Network::NotBlockable {
                r.warn(
                    "sandbox",
                    format!(
                        "`network = false` is not enforced: it needs Landlock ABI {NETWORK_ABI} (Linux 6.7), the kernel has {abi}"
                    ),
                    "run orch on Linux 6.7 or later, or set `network = true` under `[sandbox]`",
                );
            }
        }
        Confinement::Disabled => r.warn(
            "sandbox",
            "agents and hooks are NOT confined: `[sandbox] enabled = false`; they can write anywhere you can".to_owned(),
            "set `enabled = true` under `[sandbox]`",
        ),
        Confinement::Unavailable { why } => r.warn(
            "sandbox",
            format!("agents and hooks are NOT confined: {why}; they can write anywhere you can"),
            "run orch on Linux 6.2 or later with Landlock enabled (it must be in the kernel's `lsm=` list)",
        ),
    }
    let prefix = &config.git.branch_prefix;
    if setup.confinement.confines()
        && let Some(target) = target
        && confine::ref_folder(&format!("{prefix}T1"), target).is_none()
    {
        r.warn(
            "sandbox",
            format!(
                "`git.branch_prefix` `{prefix}` puts task branches in the folder of `{target}`, which agents may not write: their own `git commit` cannot move their branch (orch commits what they leave)"
            ),
            "use a prefix that ends with a folder of its own, like `orch/`",
        );
    }
}

/// Renders every prompt a task's agent can get (its task or subtask
/// prompt, and the conflict and check-failure ones), so that a template
/// using a field some task lacks (`{{ task.extra.owner }}`) is found now
/// rather than when that task starts.
fn check_prompts(r: &mut Report, root: &Path, config: &Config, plan: &Arc<Plan>, target: &str) {
    let dir = StateDir::of_repo(root);
    let state = store::load(&dir.state_file())
        .ok()
        .flatten()
        .unwrap_or_default();
    let env = Env::new(
        Arc::clone(plan),
        Arc::new(config.clone()),
        root.to_owned(),
        dir.clone(),
        target.to_owned(),
        Options::default(),
    );
    let core = RunState::new(env, state, None, fastrand::Rng::with_seed(0));
    let mut problems = 0;
    let mut rendered = 0;
    for preview in core.prompt_previews() {
        rendered += 1;
        if let Err(e) = prompt::render(preview.template, &dir.templates(), &preview.context) {
            problems += 1;
            r.error(
                "plan",
                format!(
                    "the prompt for `{}` does not render: {}",
                    preview.unit,
                    crate::text::error_chain(&e)
                ),
                format!(
                    "give `{}` the field the template uses, or guard it in the template (`{{% if ... %}}`)",
                    preview.unit
                ),
            );
        }
    }
    if problems == 0 && rendered > 0 {
        r.ok(
            "plan",
            format!(
                "the prompts of {} render",
                plural(plan.tasks().len(), "task", "tasks")
            ),
        );
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
    if cfg.kind == ExecutorKind::Slurm
        && confine::Setup::probe(&config.sandbox)
            .confinement
            .confines()
    {
        check_node_sandbox(r, cfg, &chdir);
    }
}

/// For a run that confines its agents on Slurm: a probe job proves that
/// the nodes run `orch` and can confine (`orch __confine --probe`).
fn check_node_sandbox(r: &mut Report, cfg: &crate::config::ExecutorConfig, chdir: &Path) {
    use crate::runner::slurm::{self, Probe};
    let orch = match &cfg.orch {
        Some(orch) => orch.clone(),
        None => match std::env::current_exe() {
            Ok(exe) => exe.display().to_string(),
            Err(_) => return,
        },
    };
    let argv = [
        orch.clone(),
        crate::runner::node::CONFINE_COMMAND.to_owned(),
        "--probe".to_owned(),
    ];
    let hint = format!(
        "install `orch` on the nodes at `{orch}` (or name it with `executor.orch`), on Linux 6.2 or later with Landlock; or set `enabled = false` under `[sandbox]`"
    );
    match slurm::probe(cfg, chdir, &argv, PROBE_WAIT) {
        Ok(Probe::Ran { stdout }) => r.ok(
            "sandbox",
            format!(
                "Slurm jobs' agents are confined on their nodes ({})",
                stdout.trim()
            ),
        ),
        Ok(Probe::Failed { code, stderr }) => {
            let said = if code == Some(i32::from(crate::runner::node::CANNOT_CONFINE)) {
                // `srun` adds its own line after the one `orch` wrote.
                stderr
                    .lines()
                    .find(|l| l.starts_with("orch: "))
                    .or(stderr.lines().last())
                    .unwrap_or("")
                    .to_owned()
            } else {
                format!(
                    "`{orch} {}` failed on a node: {}",
                    crate::runner::node::CONFINE_COMMAND,
                    stderr.lines().last().unwrap_or("")
                )
            };
            r.error(
                "sandbox",
                format!("Slurm jobs' agents cannot be confined on their nodes: {said}"),
                &hint,
            )
        }
        Ok(Probe::TimedOut) | Err(_) => {}
    }
}

/// Returns the target branch: `git.target`, else the branch checked out.
fn target_name(root: &Path, config: &Config) -> Option<String> {
    config.git.target.clone().or_else(|| {
        crate::git::RepoPaths::discover(root)
            .ok()?
            .current_branch()
            .ok()?
    })
}

fn check_target(r: &mut Report, root: &Path, config: &Config) -> Option<String> {
    let target = target_name(root, config);
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
    config_file: bool,
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
            let missing = matches!(&e, plan::PlanError::Read { source, .. } if source.kind() == std::io::ErrorKind::NotFound);
            let fix = match (missing, config_file) {
                (true, false) => {
                    format!(
                        "`orch init` writes a starter `{}` and `{}`",
                        config::FILE_NAME,
                        show(&path)
                    )
                }
                (true, true) => format!(
                    "write `{}`, or point `plan` in `{}` at your plan",
                    show(&path),
                    config::FILE_NAME
                ),
                (false, _) => {
                    "`orch plan check` lists every error with its line and column".to_owned()
                }
            };
            r.error("plan", message, fix);
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
    if location.inside_repository {
        r.warn(
            "hooks",
            format!(
                "`core.hooksPath` is `{}`, inside the repository (`{}`): orch does not install its hooks there, so commits in task worktrees get no `Orch-Task:` trailer",
                location.hooks_path.as_deref().unwrap_or_default(),
                show(&location.dir)
            ),
            "point `core.hooksPath` outside the repository and call your hooks from there, then `orch hooks install`; or leave it, orch works without its hooks",
        );
        return;
    }
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
            // Without the changes the state is `state.json`'s: older, but
            // whole; without `state.json` it is gone.
            let hint = if e.path() == dir.changes_file() {
                format!(
                    "move `{}` aside to go back to the older state `{}` holds (git keeps every branch)",
                    show(e.path()),
                    show(&path)
                )
            } else {
                format!(
                    "move `{}` aside to start over (git keeps every branch)",
                    show(e.path())
                )
            };
            r.error(
                "state",
                crate::text::error_chain(&e.shown_by(|p| PathBuf::from(show(p)))),
                hint,
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
    if let Some(target) = target {
        check_target_history(r, root, &state, target);
        if live.is_none() {
            check_checkout_move(r, root, &dir, target, show);
        }
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

/// Reports a target that no longer contains the head orch last landed,
/// as the next `orch run` finds it (it stops merging, exit 2).
fn check_target_history(r: &mut Report, root: &Path, state: &crate::state::State, target: &str) {
    let Some(landed) = state.landed.as_deref().and_then(refs::parse_oid) else {
        return;
    };
    let Ok(Some(tip)) = refs::branch_tip(root, target) else {
        return;
    };
    if refs::is_ancestor(root, landed, tip).unwrap_or(true) {
        return;
    }
    let landed = landed.to_string();
    match state.lost.as_ref().filter(|l| l.commit == landed) {
        Some(lost) => {
            let kept = refs::parse_oid(&lost.commit)
                .is_some_and(|oid| refs::ref_points_at(root, &lost.backup, oid).unwrap_or(true));
            if kept {
                let error = crate::coordinator::RunError::TargetRewound {
                    target: target.to_owned(),
                    lost: lost.commit.clone(),
                    backup: lost.backup.clone(),
                };
                r.error(
                    "state",
                    error.to_string(),
                    crate::coordinator::after_merge::rewound_fix(
                        target,
                        &lost.commit,
                        &lost.backup,
                    ),
                );
            } else {
                r.ok(
                    "state",
                    format!(
                        "target branch `{target}` no longer contains {landed}, which orch merged, and its backup `{}` is gone: the next `orch run` takes `{target}` as it is",
                        lost.backup
                    ),
                );
            }
        }
        None => {
            let mut head = tip.to_string();
            head.truncate(refs::SHORT_ID);
            r.error(
                "state",
                format!(
                    "target branch `{target}` was moved under orch (to {head}) and no longer contains {landed}, which orch merged"
                ),
                format!(
                    "put it back (`git merge {landed}` on `{target}`); else the next `orch run` stops merging (exit 2) and keeps the commit as `refs/orch/backup/@target/{target}/<n>`, and dropping that ref (`git update-ref -d`) accepts the new history"
                ),
            );
        }
    }
}

/// Reports a move of the target's checkout cut short (`checkout.json`),
/// with what the next `orch run` does about it. Only without a live run,
/// whose own move may be under way.
fn check_checkout_move(
    r: &mut Report,
    root: &Path,
    dir: &StateDir,
    target: &str,
    show: &dyn Fn(&Path) -> String,
) {
    use crate::merge_queue::checkout::{self, Pending, Stuck};
    let short = |oid: &str| oid.get(..refs::SHORT_ID).unwrap_or(oid).to_owned();
    match checkout::pending(root, dir) {
        Ok(Pending::Nothing) => {}
        Ok(Pending::Finishes(journal)) => r.warn(
            "state",
            format!(
                "moving `{}`, where `{}` is checked out, from {} to {} was cut short when orch stopped",
                journal.checkout.display(),
                journal.target,
                short(&journal.from),
                short(&journal.to)
            ),
            "the next `orch run` finishes the move first, path by path; nothing anyone wrote since is overwritten",
        ),
        Ok(Pending::Waiting(journal, stuck)) => {
            let finish = "the next `orch run` then finishes the move";
            match &stuck {
                Stuck::GitRunning { pid, .. } => r.warn(
                    "state",
                    format!(
                        "moving `{}` to {} was cut short, and {stuck}",
                        journal.checkout.display(),
                        short(&journal.to)
                    ),
                    format!("wait for it to end (or `kill {pid}`); {finish}"),
                ),
                Stuck::Locked { lock } => r.error(
                    "state",
                    format!(
                        "moving `{}` to {} was cut short, and {stuck}",
                        journal.checkout.display(),
                        short(&journal.to)
                    ),
                    format!("remove `{}` if no git runs there; {finish}", show(lock)),
                ),
                Stuck::Changed { .. } => r.error(
                    "state",
                    stuck.to_string(),
                    format!(
                        "commit, revert or move those paths; {finish} before `{target}` takes another merge"
                    ),
                ),
            }
        }
        Err(e) => r.warn(
            "state",
            format!(
                "cannot tell whether a move of the target's checkout was cut short: {}",
                crate::text::error_chain(&e)
            ),
            format!(
                "check `{}`; the next `orch run` tries to finish the move",
                show(&dir.checkout_journal())
            ),
        ),
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
