//! The only status-transition table (DESIGN §3).
//!
//! Every status change anywhere in `orch` goes through [`next`]; no other
//! module assigns a status field by hand. An illegal transition is a bug in
//! the caller and comes back as [`IllegalTransition`], which callers treat as
//! an internal error (tests fail loudly on it).
//!
//! Decisions beyond the contract's table, recorded in `docs/state.md`:
//! - Subtasks finish as `done` (they have no merge states): running -> done.
//! - `blocked -> pending` (`Unblock`): when a person retries or resolves the
//!   dependency that blocked a task, the task is no longer blocked. Without
//!   it, one retried failure would leave its dependents blocked forever.
//! - `merging -> awaiting_merge` (`Requeue`): the task branch or target moved
//!   while merging, or the coordinator stopped mid-merge; the merge is
//!   rebuilt from scratch.
//! - `awaiting_merge -> merged`: on start, reconcile finds the branch tip
//!   already in target (the coordinator died after moving target).
//! - any task status but `merged` and `resolved` `-> merged` (`Reconcile`):
//!   on start, git shows the task's merge landed on the target (journal,
//!   merge commit, replayed tip) whatever the state file said (a crash
//!   after the merge and before the state was written, a second
//!   coordinator): the state follows git.
//! - `conflicted -> awaiting_merge` on a person's retry (instead of the
//!   contract's `conflicted -> ready`): with `on_conflict = "stop"` the person
//!   fixes the branch by hand and retries, and what is needed then is a new
//!   merge, not another agent run. If the merge conflicts again the task is
//!   conflicted again (and with `on_conflict = "agent"` the agent gets it).
//!
//! - `merging -> awaiting_review` (`AwaitReview`): the task's checks passed
//!   and a person must approve it (`[[policy.review]]` with `manual = true`);
//!   it leaves the merge queue meanwhile so the tasks behind it go on.
//!   `awaiting_review -> awaiting_merge` (`Approve`): approved, it is merged
//!   (and checked again, on the target as it is then); `awaiting_review ->
//!   running` (`HandBack`) or `-> failed` (`CheckFailed`): rejected.
//! - `merged -> reverted` (`Revert`): `orch revert` landed a commit undoing
//!   the task's work. Terminal, and it blocks dependents not yet started
//!   like a failure: the work they would build on is gone. A person may run
//!   it again (`Retry`).
//!
//! Phases and milestones have no stored status; [`derive`] rolls it up.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::plan::{Item, ItemIdx, Plan, PlanStatus};

/// The status of a task or subtask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pending,
    Ready,
    Running,
    Retrying,
    AwaitingMerge,
    Merging,
    AwaitingReview,
    Conflicted,
    Merged,
    Done,
    Failed,
    Blocked,
    Cancelled,
    Resolved,
    Reverted,
}

impl Status {
    /// Every status, in lifecycle order.
    pub const ALL: [Status; 15] = [
        Status::Pending,
        Status::Ready,
        Status::Running,
        Status::Retrying,
        Status::AwaitingMerge,
        Status::Merging,
        Status::AwaitingReview,
        Status::Conflicted,
        Status::Merged,
        Status::Done,
        Status::Failed,
        Status::Blocked,
        Status::Cancelled,
        Status::Resolved,
        Status::Reverted,
    ];

    /// Returns the snake_case name used in JSON and on screen.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Ready => "ready",
            Status::Running => "running",
            Status::Retrying => "retrying",
            Status::AwaitingMerge => "awaiting_merge",
            Status::Merging => "merging",
            Status::AwaitingReview => "awaiting_review",
            Status::Conflicted => "conflicted",
            Status::Merged => "merged",
            Status::Done => "done",
            Status::Failed => "failed",
            Status::Blocked => "blocked",
            Status::Cancelled => "cancelled",
            Status::Resolved => "resolved",
            Status::Reverted => "reverted",
        }
    }

    /// Returns whether nothing happens to the item without a person.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Status::Merged
                | Status::Done
                | Status::Resolved
                | Status::Failed
                | Status::Blocked
                | Status::Cancelled
                | Status::Reverted
        )
    }

    /// Returns whether a required dependency in this status is met.
    pub fn satisfies(self) -> bool {
        matches!(self, Status::Merged | Status::Done | Status::Resolved)
    }

    /// Returns whether a required dependency in this status blocks its dependents.
    pub fn is_dead(self) -> bool {
        matches!(
            self,
            Status::Failed | Status::Blocked | Status::Cancelled | Status::Reverted
        )
    }

    /// Returns whether an agent or a merge is working on the item.
    pub fn is_active(self) -> bool {
        matches!(
            self,
            Status::Running
                | Status::Retrying
                | Status::AwaitingMerge
                | Status::Merging
                | Status::AwaitingReview
        )
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a transition concerns a task or a subtask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Task,
    Subtask,
}

/// What happened to an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transition {
    /// Its dependencies are met.
    Promote,
    /// An attempt starts.
    Start,
    /// The agent finished its work.
    Succeed,
    /// The attempt failed but may be retried.
    FailTransient,
    /// The attempt was cut short by the coordinator stopping; no attempt is spent.
    Interrupt,
    /// The attempt failed for good.
    FailPermanent,
    /// The merge queue picked the task.
    MergeStart,
    /// The task's work is in target.
    Merge,
    /// Merging hit conflicts.
    Conflict,
    /// The agent is run again to fix a conflict or a red check.
    HandBack,
    /// A check failed and the task may not try again.
    CheckFailed,
    /// The merge must be rebuilt (target or branch moved).
    Requeue,
    /// A required dependency failed, was cancelled or is blocked.
    Block,
    /// The dependency that blocked it was retried or resolved.
    Unblock,
    /// A person cancelled it.
    Cancel,
    /// A person says it is done.
    Resolve,
    /// A person retries it.
    Retry,
    /// Git shows its merge landed (start-up reconcile).
    Reconcile,
    /// Its checks passed and a person must approve it.
    AwaitReview,
    /// Its review approved it: it goes back to the merge queue.
    Approve,
    /// A revert of its work landed on the target.
    Revert,
}

impl Transition {
    /// Returns whether the event comes from a person (or follows from one).
    pub fn is_manual(self) -> bool {
        matches!(
            self,
            Transition::Cancel
                | Transition::Resolve
                | Transition::Retry
                | Transition::Unblock
                | Transition::Revert
        )
    }

    /// Returns whether the event may move a terminal status: a person's, or
    /// git's word that the work landed.
    pub fn may_leave_terminal(self) -> bool {
        self.is_manual() || self == Transition::Reconcile
    }
}

/// Which units a rule applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Units {
    Both,
    TaskOnly,
    SubtaskOnly,
}

impl Units {
    fn includes(self, unit: Unit) -> bool {
        match self {
            Units::Both => true,
            Units::TaskOnly => unit == Unit::Task,
            Units::SubtaskOnly => unit == Unit::Subtask,
        }
    }
}

/// One row of the table: `event` moves any of `from` to `to`.
#[derive(Debug)]
pub struct Rule {
    pub event: Transition,
    pub from: &'static [Status],
    pub to: Status,
    units: Units,
}

const NON_TERMINAL: &[Status] = &[
    Status::Pending,
    Status::Ready,
    Status::Running,
    Status::Retrying,
    Status::AwaitingMerge,
    Status::Merging,
    Status::AwaitingReview,
    Status::Conflicted,
];

use Status as S;

/// The transition table of DESIGN §3, plus the rows the module docs list.
pub const TABLE: &[Rule] = &[
    Rule {
        event: Transition::Promote,
        from: &[S::Pending],
        to: S::Ready,
        units: Units::Both,
    },
    Rule {
        event: Transition::Start,
        from: &[S::Ready, S::Retrying],
        to: S::Running,
        units: Units::Both,
    },
    Rule {
        event: Transition::Succeed,
        from: &[S::Running],
        to: S::AwaitingMerge,
        units: Units::TaskOnly,
    },
    Rule {
        event: Transition::Succeed,
        from: &[S::Running],
        to: S::Done,
        units: Units::SubtaskOnly,
    },
    Rule {
        event: Transition::FailTransient,
        from: &[S::Running],
        to: S::Retrying,
        units: Units::Both,
    },
    Rule {
        event: Transition::Interrupt,
        from: &[S::Running],
        to: S::Retrying,
        units: Units::Both,
    },
    Rule {
        event: Transition::FailPermanent,
        from: &[S::Running],
        to: S::Failed,
        units: Units::Both,
    },
    Rule {
        event: Transition::MergeStart,
        from: &[S::AwaitingMerge],
        to: S::Merging,
        units: Units::TaskOnly,
    },
    Rule {
        event: Transition::Merge,
        from: &[S::Merging, S::AwaitingMerge],
        to: S::Merged,
        units: Units::TaskOnly,
    },
    Rule {
        event: Transition::Conflict,
        from: &[S::Merging],
        to: S::Conflicted,
        units: Units::TaskOnly,
    },
    Rule {
        event: Transition::HandBack,
        from: &[S::Conflicted, S::Merging, S::AwaitingReview],
        to: S::Running,
        units: Units::TaskOnly,
    },
    Rule {
        event: Transition::CheckFailed,
        from: &[S::Merging, S::AwaitingReview],
        to: S::Failed,
        units: Units::TaskOnly,
    },
    Rule {
        event: Transition::AwaitReview,
        from: &[S::Merging],
        to: S::AwaitingReview,
        units: Units::TaskOnly,
    },
    Rule {
        event: Transition::Approve,
        from: &[S::AwaitingReview],
        to: S::AwaitingMerge,
        units: Units::TaskOnly,
    },
    Rule {
        event: Transition::Revert,
        from: &[S::Merged],
        to: S::Reverted,
        units: Units::TaskOnly,
    },
    Rule {
        event: Transition::Requeue,
        from: &[S::Merging],
        to: S::AwaitingMerge,
        units: Units::TaskOnly,
    },
    Rule {
        event: Transition::Block,
        from: &[S::Pending, S::Ready],
        to: S::Blocked,
        units: Units::Both,
    },
    Rule {
        event: Transition::Unblock,
        from: &[S::Blocked],
        to: S::Pending,
        units: Units::Both,
    },
    Rule {
        event: Transition::Cancel,
        from: NON_TERMINAL,
        to: S::Cancelled,
        units: Units::Both,
    },
    Rule {
        event: Transition::Resolve,
        from: &[S::Failed, S::Conflicted, S::Blocked, S::Cancelled],
        to: S::Resolved,
        units: Units::Both,
    },
    // Ahead of the contract's `conflicted -> ready`: a person who retries a
    // conflicted task has fixed its branch by hand, so it goes back to the
    // merge queue rather than to an agent (see the module docs).
    Rule {
        event: Transition::Retry,
        from: &[S::Conflicted],
        to: S::AwaitingMerge,
        units: Units::TaskOnly,
    },
    Rule {
        event: Transition::Retry,
        from: &[S::Failed, S::Cancelled, S::Conflicted],
        to: S::Ready,
        units: Units::Both,
    },
    Rule {
        event: Transition::Reconcile,
        from: &[
            S::Pending,
            S::Ready,
            S::Running,
            S::Retrying,
            S::AwaitingMerge,
            S::Merging,
            S::AwaitingReview,
            S::Conflicted,
            S::Failed,
            S::Blocked,
            S::Cancelled,
        ],
        to: S::Merged,
        units: Units::TaskOnly,
    },
    // Beyond the contract: a person may run a finished task again on
    // purpose (its definition changed since it merged, say); the work
    // already in the target stays there.
    Rule {
        event: Transition::Retry,
        from: &[S::Merged, S::Resolved, S::Reverted],
        to: S::Ready,
        units: Units::TaskOnly,
    },
];

/// A transition the table does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a {unit:?} cannot go from `{from}` on {event:?}")]
pub struct IllegalTransition {
    pub unit: Unit,
    pub from: Status,
    pub event: Transition,
}

/// Returns the status after `event`, or why the table forbids it.
pub fn next(unit: Unit, from: Status, event: Transition) -> Result<Status, IllegalTransition> {
    TABLE
        .iter()
        .find(|rule| rule.event == event && rule.units.includes(unit) && rule.from.contains(&from))
        .map(|rule| rule.to)
        .ok_or(IllegalTransition { unit, from, event })
}

/// Returns whether a unit can ever be in a status (subtasks never merge).
pub fn reachable(unit: Unit, status: Status) -> bool {
    match unit {
        Unit::Task => status != Status::Done,
        Unit::Subtask => !matches!(
            status,
            Status::AwaitingMerge | Status::Merging | Status::Conflicted | Status::Merged
        ),
    }
}

/// Rolls the statuses of a phase's or milestone's children up into one.
///
/// All finished: `merged` if any child merged and none failed, `resolved`
/// or `cancelled` if all are, else `failed` or `blocked`. Not finished:
/// `conflicted` if a child waits on a conflict, `running` once any work has
/// started or finished, else `ready` or `pending`. No children: `resolved`.
pub fn derive(children: impl IntoIterator<Item = Status>) -> Status {
    let mut seen = [false; Status::ALL.len()];
    let mut any = false;
    for status in children {
        seen[status as usize] = true;
        any = true;
    }
    let has = |s: Status| seen[s as usize];
    if !any {
        return Status::Resolved;
    }
    let all_terminal = Status::ALL.iter().all(|s| !has(*s) || s.is_terminal());
    if all_terminal {
        return if has(Status::Failed) {
            Status::Failed
        } else if has(Status::Blocked) {
            Status::Blocked
        } else if has(Status::Reverted) {
            Status::Reverted
        } else if has(Status::Merged) {
            Status::Merged
        } else if has(Status::Resolved) || has(Status::Done) {
            Status::Resolved
        } else {
            Status::Cancelled
        };
    }
    if has(Status::Conflicted) {
        return Status::Conflicted;
    }
    let started = Status::ALL
        .iter()
        .any(|s| has(*s) && (s.is_active() || s.is_terminal()));
    if started {
        Status::Running
    } else if has(Status::Ready) {
        Status::Ready
    } else {
        Status::Pending
    }
}

impl From<PlanStatus> for Status {
    fn from(status: PlanStatus) -> Status {
        match status {
            PlanStatus::Pending => Status::Pending,
            PlanStatus::Resolved => Status::Resolved,
            PlanStatus::Cancelled => Status::Cancelled,
            PlanStatus::Held => Status::Blocked,
        }
    }
}

/// Returns the status of every item: tasks and subtasks from `leaf`, the
/// rest derived bottom-up with [`derive`].
pub fn statuses(plan: &Plan, mut leaf: impl FnMut(ItemIdx, &Item) -> Status) -> Vec<Status> {
    let items = plan.items();
    let mut out = vec![Status::Pending; items.len()];
    for (i, item) in items.iter().enumerate().rev() {
        out[i] = if item.kind.is_container() {
            derive(item.children.iter().map(|c| out[c.index()]))
        } else {
            leaf(ItemIdx(i as u32), item)
        };
    }
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const EVENTS: [Transition; 21] = [
        Transition::Promote,
        Transition::Start,
        Transition::Succeed,
        Transition::FailTransient,
        Transition::Interrupt,
        Transition::FailPermanent,
        Transition::MergeStart,
        Transition::Merge,
        Transition::Conflict,
        Transition::HandBack,
        Transition::CheckFailed,
        Transition::Requeue,
        Transition::Block,
        Transition::Unblock,
        Transition::Cancel,
        Transition::Resolve,
        Transition::Retry,
        Transition::Reconcile,
        Transition::AwaitReview,
        Transition::Approve,
        Transition::Revert,
    ];

    #[test]
    fn every_contract_transition_is_legal() {
        use Status as S;
        use Transition as E;
        let task = [
            (S::Pending, E::Promote, S::Ready),
            (S::Ready, E::Start, S::Running),
            (S::Running, E::Succeed, S::AwaitingMerge),
            (S::AwaitingMerge, E::MergeStart, S::Merging),
            (S::Merging, E::Merge, S::Merged),
            (S::Running, E::FailTransient, S::Retrying),
            (S::Retrying, E::Start, S::Running),
            (S::Running, E::FailPermanent, S::Failed),
            (S::Merging, E::Conflict, S::Conflicted),
            (S::Conflicted, E::HandBack, S::Running),
            (S::Merging, E::HandBack, S::Running),
            (S::Merging, E::CheckFailed, S::Failed),
            (S::Pending, E::Block, S::Blocked),
            (S::Ready, E::Block, S::Blocked),
            (S::Failed, E::Resolve, S::Resolved),
            (S::Conflicted, E::Resolve, S::Resolved),
            (S::Blocked, E::Resolve, S::Resolved),
            (S::Cancelled, E::Resolve, S::Resolved),
            (S::Failed, E::Retry, S::Ready),
            (S::Cancelled, E::Retry, S::Ready),
            (S::Conflicted, E::Retry, S::AwaitingMerge),
            (S::Running, E::Interrupt, S::Retrying),
            (S::Merging, E::Requeue, S::AwaitingMerge),
            (S::Blocked, E::Unblock, S::Pending),
            (S::AwaitingMerge, E::Merge, S::Merged),
            (S::Failed, E::Reconcile, S::Merged),
            (S::Running, E::Reconcile, S::Merged),
            (S::Merging, E::AwaitReview, S::AwaitingReview),
            (S::AwaitingReview, E::Approve, S::AwaitingMerge),
            (S::AwaitingReview, E::HandBack, S::Running),
            (S::AwaitingReview, E::CheckFailed, S::Failed),
            (S::AwaitingReview, E::Cancel, S::Cancelled),
            (S::Merged, E::Revert, S::Reverted),
            (S::Reverted, E::Retry, S::Ready),
        ];
        for (from, event, to) in task {
            assert_eq!(next(Unit::Task, from, event), Ok(to), "{from} on {event:?}");
        }
        for from in NON_TERMINAL {
            assert_eq!(
                next(Unit::Task, *from, E::Cancel),
                Ok(S::Cancelled),
                "{from}"
            );
        }
        assert_eq!(next(Unit::Subtask, S::Running, E::Succeed), Ok(S::Done));
    }

    #[test]
    fn a_sample_of_illegal_transitions_is_refused() {
        use Status as S;
        use Transition as E;
        let illegal = [
            (Unit::Task, S::Pending, E::Start),
            (Unit::Task, S::Merged, E::Cancel),
            (Unit::Subtask, S::Resolved, E::Retry),
            (Unit::Subtask, S::Done, E::Retry),
            (Unit::Task, S::Running, E::Merge),
            (Unit::Task, S::Failed, E::Start),
            (Unit::Task, S::Blocked, E::Retry),
            (Unit::Task, S::AwaitingMerge, E::Conflict),
            (Unit::Task, S::Ready, E::Succeed),
            (Unit::Subtask, S::Running, E::MergeStart),
            (Unit::Subtask, S::Done, E::Cancel),
            (Unit::Task, S::Cancelled, E::Cancel),
            (Unit::Task, S::Resolved, E::Reconcile),
            (Unit::Subtask, S::Running, E::Reconcile),
            (Unit::Task, S::Reverted, E::Reconcile),
            (Unit::Task, S::AwaitingMerge, E::AwaitReview),
            (Unit::Task, S::Resolved, E::Revert),
            (Unit::Subtask, S::Done, E::Revert),
        ];
        for (unit, from, event) in illegal {
            assert!(
                next(unit, from, event).is_err(),
                "{unit:?} {from} on {event:?}"
            );
        }
    }

    #[test]
    fn no_rule_leads_a_unit_somewhere_it_cannot_be() {
        for unit in [Unit::Task, Unit::Subtask] {
            for from in Status::ALL.into_iter().filter(|s| reachable(unit, *s)) {
                for event in EVENTS {
                    if let Ok(to) = next(unit, from, event) {
                        assert!(reachable(unit, to), "{unit:?}: {from} -> {to}");
                    }
                }
            }
        }
    }

    #[test]
    fn derive_rolls_children_up() {
        use Status as S;
        assert_eq!(derive([S::Merged, S::Merged]), S::Merged);
        assert_eq!(derive([S::Merged, S::Resolved, S::Cancelled]), S::Merged);
        assert_eq!(derive([S::Merged, S::Failed]), S::Failed);
        assert_eq!(derive([S::Blocked, S::Cancelled]), S::Blocked);
        assert_eq!(derive([S::Cancelled]), S::Cancelled);
        assert_eq!(derive([S::Merged, S::Pending]), S::Running);
        assert_eq!(derive([S::Running, S::Conflicted]), S::Conflicted);
        assert_eq!(derive([S::Ready, S::Pending]), S::Ready);
        assert_eq!(derive([S::Pending]), S::Pending);
        assert_eq!(derive([]), S::Resolved);
    }

    fn event() -> impl Strategy<Value = Transition> {
        (0..EVENTS.len()).prop_map(|i| EVENTS[i])
    }

    proptest! {
        #[test]
        fn random_event_sequences_stay_legal(unit in prop::bool::ANY, events in prop::collection::vec(event(), 0..60)) {
            let unit = if unit { Unit::Task } else { Unit::Subtask };
            let mut status = Status::Pending;
            for event in events {
                match next(unit, status, event) {
                    Ok(to) => {
                        prop_assert!(reachable(unit, to));
                        if status.is_terminal() {
                            prop_assert!(event.may_leave_terminal(), "{status} left on {event:?}");
                        }
                        if matches!(status, Status::Merged | Status::Done | Status::Resolved | Status::Reverted) {
                            // Only a person's retry runs a finished task
                            // again, or a person's revert undoes it.
                            prop_assert!(
                                (event == Transition::Retry || event == Transition::Revert) && unit == Unit::Task,
                                "{status} is final but moved on {event:?}"
                            );
                        }
                        status = to;
                    }
                    Err(illegal) => prop_assert_eq!(illegal.from, status),
                }
            }
        }
    }
}
