//! Where a command runs: the repository root, the config and the plan file.

use std::path::{Path, PathBuf};

use crate::cli::GlobalArgs;
use crate::config::{self, Config};
use crate::coordinator::PlanSource;
use crate::error::CliError;
use crate::git::{GitError, RepoPaths};
use crate::plan::{self, Plan};
use crate::state::{State, StateDir};

/// The repository, config and paths a command works with.
#[derive(Debug)]
pub struct Workspace {
    /// The directory orch was started in (after `-C`).
    pub cwd: PathBuf,
    /// The main worktree root, or `cwd` outside a repository.
    pub root: PathBuf,
    pub repo: Option<RepoPaths>,
    pub config: Config,
    /// `None` when no config file exists and defaults apply.
    pub config_path: Option<PathBuf>,
}

impl Workspace {
    /// Finds the repository and loads the config. Outside a repository the
    /// current directory stands in for the root, so `orch plan check` works
    /// on a plan anywhere.
    pub fn discover(global: &GlobalArgs) -> Result<Workspace, CliError> {
        let mut ws = Workspace::locate(global)?;
        let (path, optional) = match &global.config {
            Some(path) => (ws.cwd.join(path), false),
            None => (ws.root.join(config::FILE_NAME), true),
        };
        let loaded = Config::load(&path, optional).map_err(|e| e.shown_as(&ws.display(&path)))?;
        if let Some(repo) = &ws.repo {
            loaded
                .config
                .check_placement(&path, &repo.root)
                .map_err(|e| e.shown_as(&ws.display(&path)))?;
        }
        ws.config = loaded.config;
        ws.config_path = loaded.path;
        Ok(ws)
    }

    /// Finds the repository without reading the config (defaults stand in).
    pub fn locate(global: &GlobalArgs) -> Result<Workspace, CliError> {
        let cwd = current_dir(global)?;
        let repo = match RepoPaths::discover(&cwd) {
            Ok(repo) => Some(repo),
            Err(GitError::NotARepository { .. }) => None,
            Err(e) => return Err(e.into()),
        };
        let root = repo
            .as_ref()
            .map(|r| r.root.clone())
            .unwrap_or_else(|| cwd.clone());
        Ok(Workspace {
            cwd,
            root,
            repo,
            config: Config::default(),
            config_path: None,
        })
    }

    /// Returns the repository, or a bad-input error for commands that need one.
    pub fn require_repo(&self) -> Result<&RepoPaths, CliError> {
        self.repo.as_ref().ok_or_else(|| {
            CliError::from(GitError::NotARepository {
                path: self.cwd.clone(),
            })
        })
    }

    /// Returns the plan file: `--plan` (relative to the current directory) or the config's.
    pub fn plan_path(&self, arg: Option<&Path>) -> PathBuf {
        match arg {
            Some(path) => self.cwd.join(path),
            None => self.root.join(&self.config.plan),
        }
    }

    /// Returns how to name a file in messages: relative to the current directory when inside it.
    pub fn display(&self, path: &Path) -> PathBuf {
        plan::display_path(path, &self.cwd)
    }

    /// Loads and validates the plan against the config.
    pub fn load_plan(&self, arg: Option<&Path>) -> Result<Plan, CliError> {
        self.load_plan_source(arg).map(|(plan, _)| plan)
    }

    /// Loads and validates the plan, and returns the file it came from.
    pub fn load_plan_source(&self, arg: Option<&Path>) -> Result<(Plan, PlanSource), CliError> {
        let path = self.plan_path(arg);
        let bytes = std::fs::read(&path).map_err(|source| {
            let err = CliError::from(plan::PlanError::Read {
                path: self.display(&path),
                source,
            });
            if arg.is_none() && self.config_path.is_none() {
                err.with_hint("run `orch init` to write a starter plan, or pass `--plan FILE`")
            } else {
                err
            }
        })?;
        let shown = self.display(&path);
        let plan = plan::from_bytes(&shown, &bytes, &self.config.plan_rules())?;
        Ok((plan, PlanSource { path, shown, bytes }))
    }

    /// Returns the target branch: the config's, else the branch checked out at the root.
    pub fn target(&self) -> Result<String, CliError> {
        if let Some(target) = &self.config.git.target {
            return Ok(target.clone());
        }
        let repo = self.require_repo()?;
        repo.current_branch()?.ok_or_else(|| {
            CliError::input("no target branch: `git.target` is not set and HEAD is detached")
                .with_hint("set `target` under `[git]` in `.orchestrator.toml`")
        })
    }

    pub fn state_dir(&self) -> StateDir {
        StateDir::of_repo(&self.root)
    }

    /// Reads `state.json`, if a run left one.
    pub fn load_state(&self) -> Result<Option<State>, CliError> {
        let dir = self.state_dir();
        Ok(dir
            .load_state()
            .map_err(|e| e.shown_by(|path| self.display(path)))?)
    }
}

fn current_dir(global: &GlobalArgs) -> Result<PathBuf, CliError> {
    let cwd = std::env::current_dir()?;
    let dir = match &global.dir {
        Some(dir) => cwd.join(dir),
        None => cwd,
    };
    if !dir.is_dir() {
        return Err(CliError::input(format!(
            "`{}` is not a directory",
            dir.display()
        )));
    }
    Ok(dir.canonicalize()?)
}
