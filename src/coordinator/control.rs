//! A person's commands (retry, cancel, resolve) applied to the state.
//!
//! Used by the live coordinator for inbox commands and by `orch
//! retry|cancel|resolve` directly on `state.json` when no run is live, so
//! both paths follow the same rules. Every status change goes through
//! [`lifecycle::next`]. Stopping processes is left to the caller, which gets
//! the list of attempts to stop.
//!
//! - cancel: any unfinished task or subtask; a running one's attempt is
//!   recorded as cancelled and its process group must be stopped. Cancelling
//!   a task cancels its unfinished subtasks.
//! - retry: a failed, cancelled or conflicted item goes back to ready with a
//!   fresh attempt budget; a task's failed or cancelled subtasks too.
//! - resolve: a failed, conflicted, blocked or cancelled item counts as done.
//! - after a retry or resolve, every blocked item is unblocked; the next
//!   scheduling pass blocks again those still blocked.

use std::path::PathBuf;

use crate::lifecycle::{self, Event as Transition, Status, Unit};
use crate::plan::{FullId, Kind, Plan};
use crate::state::events::{Actor, EventKind};
use crate::state::inbox::Action;
use crate::state::model::{Outcome, Timestamp};
use crate::state::{ItemState, State};

/// A command that cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("`{id}` is not in the plan")]
    UnknownId { id: String },
    #[error("`{id}` is a {kind}; name one of its tasks")]
    NotATask { id: FullId, kind: Kind },
    #[error("cannot {action} `{id}`: it is `{status}`")]
    Illegal {
        action: &'static str,
        id: FullId,
        status: Status,
    },
}

/// An attempt whose processes must be stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopRequest {
    pub unit: FullId,
    pub attempt: u32,
}

/// What applying a command did.
#[derive(Debug, Default)]
pub struct Applied {
    /// Events to record, in order, each with the item it is about.
    pub events: Vec<(FullId, EventKind)>,
    pub stop: Vec<StopRequest>,
}

/// Returns an item's current status: the state's, else the plan's.
pub fn status_of(plan: &Plan, state: &State, id: &FullId) -> Status {
    match state.items.get(id) {
        Some(s) => s.status,
        None => plan
            .lookup(id.as_str())
            .map(|i| plan.item(i).initial.into())
            .unwrap_or(Status::Pending),
    }
}

/// Returns the state entry of an item, creating it from the plan if needed.
pub fn entry<'s>(plan: &Plan, state: &'s mut State, id: &FullId) -> &'s mut ItemState {
    let status = status_of(plan, state, id);
    state
        .items
        .entry(id.clone())
        .or_insert_with(|| ItemState::new(status))
}

/// Applies one command to the state.
pub fn apply(
    plan: &Plan,
    state: &mut State,
    action: Action,
    id: &str,
    now: Timestamp,
) -> Result<Applied, CommandError> {
    let idx = plan
        .lookup(id)
        .ok_or_else(|| CommandError::UnknownId { id: id.to_owned() })?;
    let item = plan.item(idx);
    let unit = match item.kind {
        Kind::Task => Unit::Task,
        Kind::Subtask => Unit::Subtask,
        kind => {
            return Err(CommandError::NotATask {
                id: item.id.clone(),
                kind,
            });
        }
    };
    let id = item.id.clone();
    let mut applied = Applied::default();
    let (transition, verb) = match action {
        Action::Cancel => (Transition::Cancel, "cancel"),
        Action::Retry => (Transition::Retry, "retry"),
        Action::Resolve => (Transition::Resolve, "resolve"),
    };
    let from = status_of(plan, state, &id);
    let to = lifecycle::next(unit, from, transition).map_err(|_| CommandError::Illegal {
        action: verb,
        id: id.clone(),
        status: from,
    })?;
    set(plan, state, &id, to, now, &mut applied);
    let children: Vec<FullId> = item
        .children
        .iter()
        .map(|c| plan.item(*c).id.clone())
        .collect();
    match action {
        Action::Cancel => {
            entry(plan, state, &id).reason = Some("cancelled by a person".to_owned());
            applied.events.push((id.clone(), cancelled()));
            for child in children {
                let status = status_of(plan, state, &child);
                if let Ok(to) = lifecycle::next(Unit::Subtask, status, Transition::Cancel) {
                    set(plan, state, &child, to, now, &mut applied);
                    applied.events.push((child, cancelled()));
                }
            }
        }
        Action::Retry => {
            let s = entry(plan, state, &id);
            s.budget_start = s.attempts.len() as u32;
            s.not_before = None;
            s.reason = None;
            s.ready_since = Some(now);
            let by = Actor::Person;
            applied
                .events
                .push((id.clone(), EventKind::TaskRetried { by }));
            for child in children {
                let status = status_of(plan, state, &child);
                if let Ok(to) = lifecycle::next(Unit::Subtask, status, Transition::Retry) {
                    set(plan, state, &child, to, now, &mut applied);
                    let s = entry(plan, state, &child);
                    s.budget_start = s.attempts.len() as u32;
                    s.reason = None;
                }
            }
            unblock_all(plan, state, &mut applied);
        }
        Action::Resolve => {
            entry(plan, state, &id).reason = Some("resolved by a person".to_owned());
            let by = Actor::Person;
            applied
                .events
                .push((id.clone(), EventKind::TaskResolved { by }));
            unblock_all(plan, state, &mut applied);
        }
    }
    Ok(applied)
}

fn cancelled() -> EventKind {
    EventKind::TaskCancelled { by: Actor::Person }
}

/// Sets a status; a running attempt that ends here is closed as cancelled.
fn set(
    plan: &Plan,
    state: &mut State,
    id: &FullId,
    to: Status,
    now: Timestamp,
    applied: &mut Applied,
) {
    let s = entry(plan, state, id);
    if to == Status::Cancelled
        && let Some(open) = s.open_attempt_mut()
    {
        open.outcome = Some(Outcome::Cancelled);
        open.finished = Some(now);
        applied.stop.push(StopRequest {
            unit: id.clone(),
            attempt: open.number,
        });
    }
    s.status = to;
}

/// Moves every blocked item back to pending.
fn unblock_all(plan: &Plan, state: &mut State, applied: &mut Applied) {
    let blocked: Vec<FullId> = state
        .items
        .iter()
        .filter(|(_, s)| s.status == Status::Blocked)
        .map(|(id, _)| id.clone())
        .collect();
    for id in blocked {
        let Some(idx) = plan.lookup(id.as_str()) else {
            continue;
        };
        let unit = if plan.item(idx).kind == Kind::Subtask {
            Unit::Subtask
        } else {
            Unit::Task
        };
        if let Ok(to) = lifecycle::next(unit, Status::Blocked, Transition::Unblock)
            && let Some(s) = state.items.get_mut(&id)
        {
            s.status = to;
            s.reason = None;
            applied.events.push((id, EventKind::TaskUnblocked));
        }
    }
}

/// Returns the run folder of an attempt.
pub fn run_dir(state_dir: &std::path::Path, unit: &FullId, attempt: u32) -> PathBuf {
    state_dir
        .join("runs")
        .join(unit.as_str())
        .join(attempt.to_string())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::plan::Rules;
    use crate::state::model::Attempt;

    fn plan() -> Plan {
        let text = b"[[task]]\nid = \"A\"\n[[task.subtask]]\nid = \"S1\"\n[[task]]\nid = \"B\"\ndepends_on = [\"A\"]\n";
        crate::plan::from_bytes(Path::new("plan.toml"), text, &Rules::default()).unwrap()
    }

    fn id(s: &str) -> FullId {
        FullId::parse(s).unwrap()
    }

    #[test]
    fn cancel_closes_the_running_attempt_and_asks_to_stop_it() {
        let plan = plan();
        let mut state = State::default();
        let mut a = ItemState::new(Status::Running);
        a.attempts.push(Attempt {
            number: 1,
            started: Timestamp::now(),
            finished: None,
            outcome: None,
            purpose: None,
        });
        state.items.insert(id("A"), a);
        let applied = apply(&plan, &mut state, Action::Cancel, "A", Timestamp::now()).unwrap();
        assert_eq!(state.items[&id("A")].status, Status::Cancelled);
        assert_eq!(
            state.items[&id("A")].attempts[0].outcome,
            Some(Outcome::Cancelled)
        );
        assert_eq!(
            applied.stop,
            [StopRequest {
                unit: id("A"),
                attempt: 1
            }]
        );
        assert_eq!(state.items[&id("A.S1")].status, Status::Cancelled);
    }

    #[test]
    fn retry_gives_a_fresh_budget_and_unblocks() {
        let plan = plan();
        let mut state = State::default();
        let mut a = ItemState::new(Status::Failed);
        a.attempts.push(Attempt {
            number: 1,
            started: Timestamp::now(),
            finished: Some(Timestamp::now()),
            outcome: Some(Outcome::Failed {
                reason: "x".to_owned(),
                retry: false,
            }),
            purpose: None,
        });
        state.items.insert(id("A"), a);
        state.items.insert(id("B"), ItemState::new(Status::Blocked));
        apply(&plan, &mut state, Action::Retry, "A", Timestamp::now()).unwrap();
        assert_eq!(state.items[&id("A")].status, Status::Ready);
        assert_eq!(state.items[&id("A")].counted_attempts(), 0);
        assert_eq!(state.items[&id("B")].status, Status::Pending);
    }

    #[test]
    fn refusals_name_the_item_and_its_status() {
        let plan = plan();
        let mut state = State::default();
        state.items.insert(id("A"), ItemState::new(Status::Merged));
        let err = apply(&plan, &mut state, Action::Retry, "A", Timestamp::now()).unwrap_err();
        assert_eq!(err.to_string(), "cannot retry `A`: it is `merged`");
        let err = apply(&plan, &mut state, Action::Cancel, "Z", Timestamp::now()).unwrap_err();
        assert_eq!(err.to_string(), "`Z` is not in the plan");
    }
}
