//! What a confined attempt or lifecycle hook may write: the paths of
//! [`crate::sandbox::Policy`], worked out from its worktree, its branch and
//! its run folder (docs/run.md, "What an agent may write").
//!
//! | path | why |
//! | --- | --- |
//! | the worktree | the work |
//! | `<common>/worktrees/<name>/` | the worktree's own index, `HEAD`, `ORIG_HEAD`, `MERGE_HEAD`, reflog of `HEAD`, rebase state |
//! | `<common>/objects/` | every object a commit, a merge or a stash writes, and git's temporary and lock files there |
//! | `<common>/refs/heads/<folder>/` | the branch's ref, its `.lock` and the rename of one onto the other |
//! | `<common>/logs/refs/heads/<folder>/` | the branch's reflog |
//! | the run folder | `ORCH_RESULT_FILE`, and the git hooks' commit records |
//! | a private temp folder | `TMPDIR`, made for the process and removed after it |
//! | [`DEVICES`] | `/dev/null` and the like |
//! | `[sandbox] allow_write` | the agent CLIs' own folders and caches |
//!
//! `<folder>` is the branch's folder in `refs/heads/` (`orch` for
//! `orch/P1.T1`). Landlock rules name folders, and git replaces a ref by
//! renaming its lock file onto it, which needs the right to create and
//! remove files in that folder: so the agent can move every branch in that
//! folder (the other tasks' branches), and none outside it. When the branch
//! has no folder of its own, or the target lives in the same folder
//! ([`ref_folder`] says `None`), no ref folder is writable at all: the
//! target is never writable, and the agent's own `git commit` fails to
//! move the branch (orch commits what it leaves).
//!
//! Everything else is read-only: the main checkout, the state dir, the
//! home folder, the other worktrees, `<common>/config`, `<common>/hooks`,
//! `packed-refs`, every other ref.

use std::path::{Path, PathBuf};

use crate::config::SandboxConfig;
use crate::git::GitError;
use crate::git::worktree::git_dirs;
use crate::sandbox::{Confinement, Network, Policy};

/// Writable device files and folders: the bit bucket, the random sources,
/// terminals and shared memory.
pub const DEVICES: &[&str] = &[
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
    "/dev/tty",
    "/dev/ptmx",
    "/dev/pts",
    "/dev/shm",
];

/// Where the git hooks of a confined agent record commits, in its run
/// folder; its supervisor moves them into `events.jsonl`.
pub const COMMITS_FILE: &str = "commits.jsonl";

/// The variable that names [`COMMITS_FILE`] for the git hooks.
pub const COMMITS_VAR: &str = "ORCH_COMMITS_FILE";

/// What one attempt (or one of its hooks) may write besides its worktree
/// and temp folder; built by the coordinator's core, carried in `spec.json`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Grant {
    /// The attempt's run folder.
    pub run_dir: PathBuf,
    /// The task's branch (its ref folder is writable).
    pub branch: String,
    /// The run's target (its ref is never writable).
    pub target: String,
    /// `[sandbox] allow_write`, `~` expanded.
    pub allow_write: Vec<PathBuf>,
    /// `[sandbox] network = false` and the kernel can refuse TCP.
    pub block_tcp: bool,
}

/// How a run confines its agents and hooks: decided once, when it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setup {
    pub confinement: Confinement,
    /// `[sandbox] allow_write`, `~` expanded.
    pub allow_write: Vec<PathBuf>,
}

impl Setup {
    /// Decides from the config, the kernel ([`crate::sandbox::probe`]) and `HOME`.
    pub fn probe(config: &SandboxConfig) -> Setup {
        let home = std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(PathBuf::from);
        Setup {
            confinement: Confinement::decide(
                config.enabled,
                !config.network,
                crate::sandbox::probe(),
            ),
            allow_write: config.allow_write_paths(home.as_deref(), |name| std::env::var_os(name)),
        }
    }

    /// Runs nothing confined (the core's tests, `orch merge`).
    pub fn unconfined() -> Setup {
        Setup {
            confinement: Confinement::Disabled,
            allow_write: Vec::new(),
        }
    }

    /// Returns the grant of a process of an attempt whose run folder is
    /// `run_dir`, or `None` when the run does not confine.
    pub fn grant(&self, run_dir: &Path, branch: &str, target: &str) -> Option<Grant> {
        let Confinement::Confined { network, .. } = self.confinement else {
            return None;
        };
        Some(Grant {
            run_dir: run_dir.to_owned(),
            branch: branch.to_owned(),
            target: target.to_owned(),
            allow_write: self.allow_write.clone(),
            block_tcp: network == Network::Blocked,
        })
    }
}

/// Why a policy could not be worked out.
#[derive(Debug, thiserror::Error)]
pub enum ConfineError {
    #[error("cannot read the git folders of `{}`", worktree.display())]
    Git {
        worktree: PathBuf,
        #[source]
        source: GitError,
    },
}

/// Returns the folder of `refs/heads/` the branch's ref is in, when the
/// target's ref is not beneath it: `orch` for `orch/P1.T1` and target
/// `main`; `None` for `orch-P1.T1` (beside `main`) or when the target is
/// `orch/main`.
pub fn ref_folder<'a>(branch: &'a str, target: &str) -> Option<&'a str> {
    let (folder, _) = branch.rsplit_once('/')?;
    let inside = target
        .strip_prefix(folder)
        .is_some_and(|rest| rest.starts_with('/'));
    (!inside && !folder.is_empty()).then_some(folder)
}

impl Grant {
    /// Returns the policy for a process in `worktree`; whoever starts it
    /// adds the temp folder it makes.
    ///
    /// Creates the branch's folders in `refs/heads/` and `logs/refs/heads/`
    /// when they are missing (after `git pack-refs`, or before the first
    /// reflog), since Landlock rules name existing folders.
    pub fn policy(&self, worktree: &Path) -> Result<Policy, ConfineError> {
        let dirs = git_dirs(worktree).map_err(|source| ConfineError::Git {
            worktree: worktree.to_owned(),
            source,
        })?;
        let mut write = vec![
            worktree.to_owned(),
            self.run_dir.clone(),
            dirs.common.join("objects"),
        ];
        if dirs.admin != dirs.common {
            write.push(dirs.admin.clone());
        }
        if let Some(folder) = ref_folder(&self.branch, &self.target)
            && !dirs.reftable
        {
            for base in ["refs/heads", "logs/refs/heads"] {
                let dir = dirs.common.join(base).join(folder);
                // A folder that cannot be made gets no rule; git then says
                // what it could not write.
                let _ = std::fs::create_dir_all(&dir);
                write.push(dir);
            }
        }
        write.extend(DEVICES.iter().map(PathBuf::from));
        write.extend(self.allow_write.iter().cloned());
        Ok(Policy {
            write,
            block_tcp: self.block_tcp,
        })
    }
}

/// A confined process's ruleset, ready before the fork, and its private
/// temp folder (removed when this is dropped).
#[derive(Debug)]
pub struct Sandbox {
    pub ruleset: std::sync::Arc<crate::sandbox::Ruleset>,
    pub temp: tempfile::TempDir,
}

/// Why a confined process could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SandboxSetupError {
    #[error("cannot make its temp folder")]
    Temp(#[source] std::io::Error),
    #[error(transparent)]
    Policy(#[from] ConfineError),
    #[error(transparent)]
    Ruleset(#[from] crate::sandbox::SandboxError),
}

impl Sandbox {
    /// Makes the temp folder of a process in `worktree` (inside
    /// `temp_in`) and builds its ruleset from `grant`, before the fork.
    pub fn prepare(
        worktree: &Path,
        grant: &Grant,
        temp_in: &Path,
    ) -> Result<Sandbox, SandboxSetupError> {
        let temp = tempfile::Builder::new()
            .prefix("orch-agent-")
            .tempdir_in(temp_in)
            .map_err(SandboxSetupError::Temp)?;
        let mut policy = grant.policy(worktree)?;
        policy.write.push(temp.path().to_owned());
        let ruleset = crate::sandbox::prepare(&policy)?;
        Ok(Sandbox {
            ruleset: std::sync::Arc::new(ruleset),
            temp,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ref_folder_never_holds_the_target() {
        let table = [
            ("orch/P1.T1", "main", Some("orch")),
            ("orch/P1.T1", "orch/main", None),
            ("orch/P1.T1", "orchestra/main", Some("orch")),
            ("orch/P1.T1", "orch", Some("orch")),
            ("team/orch/T1", "team/main", Some("team/orch")),
            ("team/orch/T1", "team/orch/main", None),
            ("team/orch/T1", "team/orch/x/main", None),
            ("orch-T1", "main", None),
            ("/T1", "main", None),
        ];
        for (branch, target, want) in table {
            assert_eq!(ref_folder(branch, target), want, "{branch} {target}");
        }
    }
}
