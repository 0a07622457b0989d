//! The state dir `.orchestrator/` (DESIGN §2.3): `state.json` and its model.
//!
//! This module reads and writes files; it never decides transitions (that is
//! [`crate::lifecycle`]) and never runs agents.

pub mod events;
pub mod inbox;
pub mod lock;
pub mod model;
pub mod store;

use std::path::{Path, PathBuf};

use crate::lifecycle::{self, Status};
use crate::plan::{Item, Plan};
use crate::schedule::TaskView;

pub use model::{ItemState, SCHEMA, State, Timestamp};
pub use store::StateError;

/// The state dir's name at the repository root.
pub const DIR_NAME: &str = ".orchestrator";

/// Paths inside a state dir.
#[derive(Debug, Clone)]
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

    pub fn path(&self) -> &Path {
        &self.root
    }

    pub fn state_file(&self) -> PathBuf {
        self.root.join(store::FILE_NAME)
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

/// Returns an item's status: from the state when it lists the item, else from the plan.
pub fn leaf_status(state: Option<&State>, item: &Item) -> Status {
    state
        .and_then(|s| s.items.get(&item.id))
        .map(|s| s.status)
        .unwrap_or_else(|| item.initial.into())
}

/// Returns the status of every item of the plan, containers derived.
pub fn item_statuses(plan: &Plan, state: Option<&State>) -> Vec<Status> {
    lifecycle::statuses(plan, |_, item| leaf_status(state, item))
}

/// Returns what the scheduler needs to know about each task, in task order.
pub fn task_views(plan: &Plan, state: Option<&State>) -> Vec<TaskView> {
    plan.tasks()
        .iter()
        .map(|t| {
            let item = plan.item(*t);
            let recorded = state.and_then(|s| s.items.get(&item.id));
            TaskView {
                status: leaf_status(state, item),
                ready_since: recorded.and_then(|r| r.ready_since).map(|t| t.0),
                not_before: recorded.and_then(|r| r.not_before).map(|t| t.0),
            }
        })
        .collect()
}
