//! Statuses and scheduler views read off the state, with the plan's
//! initial statuses for items the state does not list yet.

use crate::lifecycle::{self, Status};
use crate::plan::{Item, Plan};
use crate::schedule::TaskView;

use super::State;

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
