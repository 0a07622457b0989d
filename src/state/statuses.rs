//! Statuses and scheduler views read off the state, with the plan's
//! initial statuses for items the state does not list yet.

use crate::lifecycle::{self, Status};
use crate::plan::{Item, Kind, Plan};
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
///
/// A subtask still `pending` under a task that is finished for good follows
/// its task: `done` when the task merged (one agent did the whole task, as
/// `agent.unit = "task"` runs it), `resolved` or `cancelled` as the task is.
pub fn item_statuses(plan: &Plan, state: Option<&State>) -> Vec<Status> {
    let mut out = lifecycle::statuses(plan, |_, item| leaf_status(state, item));
    for (i, item) in plan.items().iter().enumerate() {
        let Some(task) = item.parent.filter(|_| item.kind == Kind::Subtask) else {
            continue;
        };
        if out[i] == Status::Pending {
            out[i] = match out[task.index()] {
                Status::Merged => Status::Done,
                finished @ (Status::Resolved | Status::Cancelled) => finished,
                _ => Status::Pending,
            };
        }
    }
    out
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
                overlaps: None,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::plan::{FullId, Rules};
    use crate::state::ItemState;

    /// Issue 16: in task mode the subtasks of a merged task stayed `pending`
    /// forever in `orch status` and the dashboard.
    #[test]
    fn issue_16_subtasks_follow_a_task_that_is_finished_for_good() {
        let text = "[[task]]\nid = \"A\"\n[[task.subtask]]\nid = \"S1\"\n[[task.subtask]]\nid = \"S2\"\n\
                    [[task]]\nid = \"B\"\n[[task.subtask]]\nid = \"S1\"\n\
                    [[task]]\nid = \"C\"\n[[task.subtask]]\nid = \"S1\"\n";
        let plan =
            crate::plan::from_bytes(Path::new("plan.toml"), text.as_bytes(), &Rules::default())
                .unwrap();
        let mut state = State::default();
        let set = |state: &mut State, id: &str, status| {
            state
                .items
                .insert(FullId::parse(id).unwrap(), ItemState::new(status));
        };
        set(&mut state, "A", Status::Merged);
        set(&mut state, "A.S2", Status::Cancelled);
        set(&mut state, "B", Status::Resolved);
        set(&mut state, "C", Status::Failed);
        let statuses = item_statuses(&plan, Some(&state));
        let shown: Vec<String> = plan
            .items()
            .iter()
            .zip(&statuses)
            .map(|(item, s)| format!("{} {s}", item.id))
            .collect();
        assert_eq!(
            shown,
            [
                "A merged",
                "A.S1 done",
                "A.S2 cancelled",
                "B resolved",
                "B.S1 resolved",
                "C failed",
                "C.S1 pending"
            ]
        );
    }
}
