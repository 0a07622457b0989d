//! [`StateDir`]: where everything inside `.orchestrator/` is.

use std::path::{Path, PathBuf};

use super::{State, StateError, events, inbox, lock, store};
use crate::plan::FullId;

/// The state dir's name at the repository root.
pub const DIR_NAME: &str = ".orchestrator";

/// The state dir, and the one owner of every path inside it.
///
/// | path | what |
/// | --- | --- |
/// | `state.json` | [`store`](super::store) |
/// | `events.jsonl` | [`events`](super::events) |
/// | `lock` | [`lock`](super::lock) |
/// | `inbox/` | [`inbox`](super::inbox) |
/// | `runs/<full id>/<n>/` | an attempt's run folder, whose protocol the runner owns |
/// | `runs/<full id>/post_create.done` | `post_create` ran in the worktree the task has |
/// | `checks/<task>/<check>/` | a check's run folder; its log is `checks/<task>/<check>.log` |
/// | `hooks/<task>/<stage>.log` | a lifecycle hook's output outside a run folder |
/// | `merge/` | the merge worktree where candidates are checked |
/// | `merge.json` | the merge journal, written before the target moves |
/// | `checkout.json` | a move of the target's checkout under way, until the branch moved |
/// | `templates/` | prompt templates that override the built-in ones |
/// | `plans/<digest>.<ext>` | a copy of each plan a run ran, named by its SHA-256 |
/// | `outbox/` | notifications waiting, given up on and made (`crate::notifications`) |
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    /// Returns the state dir of the repository whose main worktree is `repo_root`.
    pub fn of_repo(repo_root: &Path) -> StateDir {
        StateDir {
            root: repo_root.join(DIR_NAME),
        }
    }

    /// Returns the state dir at `path` (a folder named like [`DIR_NAME`] or not).
    pub fn at(path: &Path) -> StateDir {
        StateDir {
            root: path.to_owned(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.root
    }

    pub fn state_file(&self) -> PathBuf {
        self.root.join(store::FILE_NAME)
    }

    pub fn events_file(&self) -> PathBuf {
        self.root.join(events::FILE_NAME)
    }

    pub fn lock_file(&self) -> PathBuf {
        self.root.join(lock::FILE_NAME)
    }

    pub fn inbox(&self) -> PathBuf {
        self.root.join(inbox::DIR_NAME)
    }

    /// Returns the folder holding every attempt's run folder.
    pub fn runs(&self) -> PathBuf {
        self.root.join("runs")
    }

    /// Returns the folder holding a task's or subtask's attempts.
    pub fn unit_runs(&self, unit: &FullId) -> PathBuf {
        self.runs().join(unit.as_str())
    }

    /// Returns the run folder of one attempt.
    pub fn run_dir(&self, unit: &FullId, attempt: u32) -> PathBuf {
        self.unit_runs(unit).join(attempt.to_string())
    }

    /// Returns the file saying `post_create` succeeded in the worktree the task has now.
    pub fn post_create_marker(&self, task: &FullId) -> PathBuf {
        self.unit_runs(task).join("post_create.done")
    }

    /// Returns the folder holding every check's run folder.
    pub fn checks(&self) -> PathBuf {
        self.root.join("checks")
    }

    /// Returns the run folder of one check of a task's merge.
    pub fn check_dir(&self, task: &str, check: &str) -> PathBuf {
        self.checks().join(task).join(check)
    }

    /// Returns where a check's output goes.
    pub fn check_log(&self, task: &str, check: &str) -> PathBuf {
        self.checks().join(task).join(format!("{check}.log"))
    }

    /// Returns where a lifecycle hook run outside an attempt logs (`post_merge`).
    pub fn hook_log(&self, task: &str, stage: &str) -> PathBuf {
        self.root
            .join("hooks")
            .join(task)
            .join(format!("{stage}.log"))
    }

    /// Returns the merge worktree's path (check worktree 0).
    pub fn merge_worktree(&self) -> PathBuf {
        self.root.join("merge")
    }

    /// Returns the path of check worktree `slot`: `merge/` for the first,
    /// `merge-2/`, `merge-3/`... for the others.
    pub fn check_worktree(&self, slot: u32) -> PathBuf {
        match slot {
            0 => self.merge_worktree(),
            n => self.root.join(format!("merge-{}", n + 1)),
        }
    }

    /// Returns every check worktree path that may exist, given how many
    /// the config allows and what is on disk (`merge-<n>/` folders).
    pub fn check_worktrees(&self) -> Vec<PathBuf> {
        let mut out = vec![self.merge_worktree()];
        for entry in std::fs::read_dir(&self.root)
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name
                .strip_prefix("merge-")
                .is_some_and(|n| n.parse::<u32>().is_ok_and(|n| n >= 2))
            {
                out.push(entry.path());
            }
        }
        out
    }

    /// Returns the run folder of review `review` of a task.
    pub fn review_dir(&self, task: &str, review: &str) -> PathBuf {
        self.root.join("reviews").join(task).join(review)
    }

    /// Returns the log of review `review` of a task.
    pub fn review_log(&self, task: &str, review: &str) -> PathBuf {
        self.root
            .join("reviews")
            .join(task)
            .join(format!("{review}.log"))
    }

    /// Returns the merge journal's path.
    pub fn merge_journal(&self) -> PathBuf {
        self.root.join("merge.json")
    }

    /// Returns the changes to the state since `state.json` was written whole.
    pub fn changes_file(&self) -> PathBuf {
        crate::state::changes::path_for(&self.state_file())
    }

    /// Returns the journal of a move of the target's checkout under way.
    pub fn checkout_journal(&self) -> PathBuf {
        self.root.join("checkout.json")
    }

    /// Returns the notification outbox's folder.
    pub fn outbox(&self) -> PathBuf {
        self.root.join("outbox")
    }

    /// Returns the folder of the copies of the plans runs ran.
    pub fn plans(&self) -> PathBuf {
        self.root.join("plans")
    }

    /// Returns where the copy of a plan file goes: its digest, and the
    /// extension of the file (which says how it reads: `toml`, `json`).
    pub fn plan_copy(&self, digest: &str, extension: &str) -> PathBuf {
        self.plans().join(format!("{digest}.{extension}"))
    }

    /// Returns the copy of the plan with this digest, if one is kept.
    pub fn find_plan_copy(&self, digest: &str) -> Option<PathBuf> {
        ["toml", "json"]
            .into_iter()
            .map(|ext| self.plan_copy(digest, ext))
            .find(|p| p.is_file())
    }

    /// Returns the folder of prompt templates that override the built-in ones.
    pub fn templates(&self) -> PathBuf {
        self.root.join("templates")
    }

    /// Returns how to show a path in messages: relative to the repository
    /// root when inside it.
    pub fn show(&self, path: &Path) -> String {
        let root = self.root.parent().unwrap_or(&self.root);
        path.strip_prefix(root)
            .unwrap_or(path)
            .display()
            .to_string()
    }

    /// Reads `state.json`, if there is one.
    pub fn load_state(&self) -> Result<Option<State>, StateError> {
        store::load(&self.state_file())
    }
}
