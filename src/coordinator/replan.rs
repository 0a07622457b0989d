//! Plan versions and live plan changes: the core's rules, with no I/O.
//!
//! The driver reads the plan file, hashes it, keeps a copy and compares it
//! with the plan it replaces (`crate::plan::diff`); this module decides what
//! the change means for the run ([`NewPlan`] in, events and state out):
//!
//! - at start ([`RunState::plan_version`]): the plan differs from the one
//!   the last run ran; the change is reported (`plan.changed`, `live`
//!   false), merged tasks whose definition changed are named (their work
//!   stays merged; `orch retry ID` runs them again), removed tasks whose
//!   branch holds unmerged work are listed (never deleted);
//! - during a run (`Input::PlanChanged`): the new plan replaces the old
//!   one. New tasks become schedulable; removed tasks that have not started
//!   are dropped; waiting tasks take their new priorities and dependencies
//!   (the scheduler reads them from the plan); running and finished tasks
//!   are left as they are: an attempt of a removed task runs to its end and
//!   its work stays on its branch, but nothing more starts or merges for it;
//! - a saved plan with errors (`Input::PlanRefused`) changes nothing: its
//!   errors become `plan.refused` and the run goes on with the plan it had.
//!
//! Decisions recorded in `docs/run.md` ("Changing the plan").

use std::sync::Arc;

use super::core::{Effect, Now, RunState, scope};
use crate::lifecycle::Status;
use crate::plan::{FullId, Plan, PlanDiff};
use crate::state::events::{EventKind, KeptBranch, PlanChanges};

/// A plan to run from now on, and how it differs from the one before.
#[derive(Debug)]
pub struct NewPlan {
    pub plan: Arc<Plan>,
    /// Its file's digest.
    pub digest: String,
    /// The digest of the plan it follows, when known.
    pub from: Option<String>,
    /// What changed; `None` when the plan before is unknown (no copy left).
    pub diff: Option<PlanDiff>,
    /// Tasks gone from the plan whose branch holds work not in the target.
    pub kept: Vec<KeptBranch>,
}

/// What reading the saved plan file found.
#[derive(Debug)]
pub enum PlanRead {
    /// Not there (being replaced) or the same bytes as the plan running.
    Unchanged,
    Refused {
        digest: String,
        errors: Vec<String>,
    },
    Changed(Box<NewPlan>),
}

impl RunState {
    /// Records the plan the run starts with, and reports how it differs
    /// from the one the last run ran.
    pub fn plan_version(&mut self, new: NewPlan, now: Now) -> Vec<Effect> {
        self.apply_plan(new, false, now);
        self.drain_effects()
    }

    /// Applies a plan saved during the run.
    pub(super) fn on_plan_changed(&mut self, new: NewPlan, now: Now) {
        self.apply_plan(new, true, now);
    }

    /// Reports a saved plan that could not be read; nothing changes.
    pub(super) fn on_plan_refused(&mut self, errors: Vec<String>) {
        self.emit(None, EventKind::PlanRefused { errors });
    }

    fn apply_plan(&mut self, new: NewPlan, live: bool, _now: Now) {
        let NewPlan {
            plan,
            digest,
            from,
            diff,
            kept,
        } = new;
        if live {
            self.replace_plan(plan);
        }
        self.env.plan_digest = Some(digest.clone());
        if let Some(run) = self.state.run.as_mut() {
            run.plan = Some(digest.clone());
        }
        self.touch_all();
        let diff = diff.unwrap_or_default();
        if diff.is_empty() && kept.is_empty() && (!live || from.as_deref() == Some(&digest)) {
            return;
        }
        let dropped = self.drop_unstarted(&diff.removed);
        let merged_changed = diff
            .changed()
            .into_iter()
            .filter(|id| self.state.items.get(*id).map(|s| s.status) == Some(Status::Merged))
            .cloned()
            .collect();
        let changes = PlanChanges {
            added: diff.added,
            removed: diff.removed,
            retitled: diff.retitled.into_iter().map(|r| r.id).collect(),
            dependencies: diff.dependencies.into_iter().map(|d| d.id).collect(),
            priorities: diff.priorities.into_iter().map(|p| p.id).collect(),
            redefined: diff.redefined,
            dropped,
            merged_changed,
            kept,
        };
        self.emit(
            None,
            EventKind::PlanChanged {
                from,
                to: digest,
                live,
                changes,
            },
        );
    }

    /// Puts a new plan in place: the scope (`--only`, by id) and the
    /// scheduler's views are rebuilt for it.
    fn replace_plan(&mut self, plan: Arc<Plan>) {
        let only: Option<Vec<_>> = self.env.only.as_ref().map(|ids| {
            ids.iter()
                .filter_map(|id| plan.lookup(id.as_str()))
                .collect()
        });
        self.env.in_scope = scope(&plan, only.as_deref());
        self.env.plan = plan;
        self.flight.views = crate::state::task_views(&self.env.plan, Some(&self.state));
        // A task that runs one agent per subtask and is gone from the plan
        // takes no further step; its running agent, if any, ends on its own.
        let plan = Arc::clone(&self.env.plan);
        self.flight
            .stepping
            .retain(|task| plan.lookup(task.as_str()).is_some());
    }

    /// Drops removed items that never started from the state; returns them.
    fn drop_unstarted(&mut self, removed: &[FullId]) -> Vec<FullId> {
        let mut dropped = Vec::new();
        for id in removed {
            if self.busy(id) {
                continue;
            }
            match self.state.items.get(id) {
                None => dropped.push(id.clone()),
                Some(s)
                    if s.attempts.is_empty()
                        && matches!(
                            s.status,
                            Status::Pending | Status::Ready | Status::Blocked
                        ) =>
                {
                    self.state.items.remove(id);
                    dropped.push(id.clone());
                }
                Some(_) => {}
            }
        }
        dropped
    }

    /// Says what start-up did with the attempts a dead coordinator left,
    /// from the effects and events recovery produced (from index `from` of
    /// the pending effects).
    pub(super) fn report_recovery(&mut self, from: usize) {
        let (mut adopted, mut collected, mut interrupted) = (Vec::new(), Vec::new(), Vec::new());
        for effect in self.pending_effects(from) {
            match effect {
                Effect::Watch { unit, .. } => adopted.push(unit.clone()),
                Effect::Collect { unit, .. } => collected.push(unit.clone()),
                Effect::Emit {
                    id: Some(id),
                    kind: EventKind::TaskInterrupted { .. },
                } => interrupted.push(id.clone()),
                _ => {}
            }
        }
        if adopted.is_empty() && collected.is_empty() && interrupted.is_empty() {
            return;
        }
        self.emit(
            None,
            EventKind::RunRecovered {
                adopted,
                collected,
                interrupted,
            },
        );
    }
}
