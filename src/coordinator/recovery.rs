//! Start-up: the state catches up with the run folders and git.
//!
//! `state.json` is written at most every few hundred milliseconds, and the
//! coordinator may have been killed at any instant. [`gather`] reads what
//! is on disk and in git (blocking I/O, run by the driver before the loop);
//! [`RunState::recover`] and [`RunState::recover_merges`] decide, with no
//! I/O:
//! - a run folder newer than the state's last attempt is an attempt the
//!   state never heard of; it is recorded (earlier unknown ones as superseded);
//! - an open attempt with `exit.json` is collected as if its supervisor just
//!   exited (collection is idempotent);
//! - an open attempt whose supervisor is alive (and is that folder's, not a
//!   reused pid: [`RunFolder::liveness`]) is adopted and watched; one whose
//!   supervisor is gone but whose cluster job completed is collected from
//!   the cluster's account ([`RunFolder::settle`]);
//! - any other open attempt was interrupted: it does not count, and the item
//!   is retried;
//! - a task awaiting or in a merge whose work (journaled candidate, else
//!   branch tip) is already in the target is merged; any other task caught
//!   mid-merge goes back to the queue;
//! - a check left running by the dead coordinator is stopped.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use super::core::{Effect, Live, Now, RunState};
use crate::git::refs;
use crate::lifecycle::{Status, Transition, Unit};
use crate::merge_queue::Journal;
use crate::plan::{FullId, Kind, Plan};
use crate::runner::folder::{Liveness, RunFolder};
use crate::state::events::{EventKind, Merged};
use crate::state::model::{Attempt, Outcome, Timestamp};
use crate::state::{State, StateDir};

/// What start-up found on disk and in git.
#[derive(Debug, Default)]
pub struct Facts {
    /// This coordinator's pid (for `run.started`).
    pub pid: u32,
    /// Tasks and subtasks with attempts to look at, by id.
    pub runs: BTreeMap<FullId, Runs>,
    /// Tasks awaiting or in a merge, with the commit of their work that is
    /// already in the target, if it is.
    pub merges: BTreeMap<FullId, Option<String>>,
    /// Checks whose supervisor still runs, left by a dead coordinator.
    pub running_checks: Vec<RunFolder>,
}

/// The attempts of one item found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Runs {
    /// The newest attempt folder's number (0: none).
    pub highest: u32,
    /// When each attempt the state does not know started.
    pub unknown_started: BTreeMap<u32, Timestamp>,
    /// The newest attempt's number and whether it ended, runs or is gone.
    pub newest: (u32, Liveness),
}

/// Reads the attempt folders of one item, of which the state knows `known`. Blocking.
pub fn runs_of(dir: &StateDir, id: &FullId, known: u32) -> Runs {
    let highest = std::fs::read_dir(dir.unit_runs(id))
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0);
    let unknown_started = (known + 1..=highest)
        .map(|n| {
            let started = std::fs::metadata(RunFolder::new(dir.run_dir(id, n)).spec_file())
                .and_then(|m| m.modified())
                .map(Timestamp::at)
                .unwrap_or_else(|_| Timestamp::at(std::time::SystemTime::now()));
            (n, started)
        })
        .collect();
    let newest = highest.max(known);
    let liveness = match newest {
        0 => Liveness::Gone,
        n => RunFolder::new(dir.run_dir(id, n)).liveness(),
    };
    Runs {
        highest,
        unknown_started,
        newest: (newest, liveness),
    }
}

/// Reads what [`RunState::recover`] decides on. Blocking.
pub fn gather(plan: &Plan, state: &State, dir: &StateDir, repo: &Path, target: &str) -> Facts {
    let mut facts = Facts {
        pid: std::process::id(),
        ..Facts::default()
    };
    for idx in plan.indices() {
        let item = plan.item(idx);
        if !matches!(item.kind, Kind::Task | Kind::Subtask) {
            continue;
        }
        let id = &item.id;
        let status = crate::coordinator::control::status_of(plan, state, id);
        let folder = dir.unit_runs(id);
        let interesting = status == Status::Running
            || (matches!(status, Status::Pending | Status::Ready | Status::Retrying)
                && folder.is_dir());
        if !interesting {
            continue;
        }
        let known = state.items.get(id).map_or(0, |s| s.attempts.len() as u32);
        let mut runs = runs_of(dir, id, known);
        if let (n, Liveness::Gone) = runs.newest
            && n > 0
        {
            // A cluster job may have outlived its supervisor: ask the
            // cluster how it ended (a completed one is collected).
            runs.newest.1 = RunFolder::new(dir.run_dir(id, n)).settle();
        }
        facts.runs.insert(id.clone(), runs);
    }
    let journal: Option<Journal> = crate::fsio::read_json(&dir.merge_journal()).ok().flatten();
    let target_tip = refs::branch_tip(repo, target).ok().flatten();
    let in_target = |oid: Option<&str>| match (oid.and_then(refs::parse_oid), target_tip) {
        (Some(oid), Some(tip)) => refs::is_ancestor(repo, oid, tip).unwrap_or(false),
        _ => false,
    };
    for (id, s) in &state.items {
        if !matches!(s.status, Status::Merging | Status::AwaitingMerge) {
            continue;
        }
        let journaled = journal
            .as_ref()
            .filter(|j| j.task == id.as_str())
            .map(|j| j.candidate.clone())
            .filter(|c| in_target(Some(c)));
        let tip = || {
            s.branch
                .as_deref()
                .and_then(|b| refs::branch_tip(repo, b).ok().flatten())
                .map(|t| t.to_string())
                .filter(|t| in_target(Some(t)))
        };
        facts.merges.insert(id.clone(), journaled.or_else(tip));
    }
    for task_dir in std::fs::read_dir(dir.checks())
        .into_iter()
        .flatten()
        .flatten()
    {
        for check_dir in std::fs::read_dir(task_dir.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let folder = RunFolder::new(check_dir.path());
            if matches!(folder.liveness(), Liveness::Running { .. }) {
                facts.running_checks.push(folder);
            }
        }
    }
    facts
}

/// What start-up does with a running item's open attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Its supervisor wrote `exit.json`: collect it.
    Collect,
    /// Its supervisor is alive: adopt and watch it.
    Adopt,
    /// Nothing is left of it: interrupted, retried without spending an attempt.
    Interrupt,
}

/// Decides the fate of open attempt `attempt` from what is on disk about
/// the item's newest attempt folder. `orch doctor` asks the same question.
pub fn fate(attempt: u32, newest: Option<(u32, Liveness)>) -> Fate {
    match newest {
        Some((n, Liveness::Exited)) if n == attempt => Fate::Collect,
        Some((n, Liveness::Running { .. })) if n == attempt => Fate::Adopt,
        _ => Fate::Interrupt,
    }
}

impl RunState {
    /// Catches the state up with the run folders.
    pub(super) fn recover(&mut self, facts: &Facts, now: Now) {
        let plan = Arc::clone(&self.env.plan);
        for idx in plan.indices() {
            let item = plan.item(idx);
            let unit = match item.kind {
                Kind::Task => Unit::Task,
                Kind::Subtask => Unit::Subtask,
                _ => continue,
            };
            let id = item.id.clone();
            let status = self.status(&id);
            if status == Status::Running && unit == Unit::Task && self.steps(idx) {
                self.flight.stepping.insert(id.clone());
                continue;
            }
            let runs = facts.runs.get(&id);
            if let Some(runs) = runs
                && matches!(
                    status,
                    Status::Pending | Status::Ready | Status::Retrying | Status::Running
                )
            {
                self.record_unknown_attempts(&id, runs, now);
            }
            if self.status(&id) == Status::Running {
                self.recover_open(&id, unit, runs.map(|r| r.newest), now);
            }
            if matches!(self.status(&id), Status::AwaitingMerge | Status::Merged)
                && unit == Unit::Task
            {
                self.flight.free.push_back(id);
            }
        }
    }

    /// Records attempts found on disk but missing from the state.
    fn record_unknown_attempts(&mut self, id: &FullId, runs: &Runs, now: Now) {
        if runs.unknown_started.is_empty() {
            return;
        }
        for (&number, &started) in &runs.unknown_started {
            let entry = self.entry(id);
            entry.attempts.push(Attempt {
                number,
                started,
                finished: None,
                outcome: None,
                purpose: None,
                job: None,
                confined: false,
            });
            if number < runs.highest
                && let Some(a) = entry.attempts.last_mut()
            {
                a.outcome = Some(Outcome::Interrupted {
                    reason: "superseded by a later attempt".to_owned(),
                });
                a.finished = Some(Timestamp::at(now.wall));
            }
        }
        if self.status(id) == Status::Pending {
            self.transition(id, Transition::Promote);
        }
        if matches!(self.status(id), Status::Ready | Status::Retrying) {
            self.transition(id, Transition::Start);
        }
    }

    /// Adopts, collects or interrupts the open attempt of a running item.
    fn recover_open(&mut self, id: &FullId, unit: Unit, newest: Option<(u32, Liveness)>, now: Now) {
        let Some(attempt) = self.open_attempt(id) else {
            self.transition(id, Transition::Interrupt);
            return;
        };
        let fate = fate(attempt, newest);
        if fate == Fate::Interrupt {
            self.interrupt(
                id,
                attempt,
                "its supervisor was gone when the run restarted",
                now,
            );
            return;
        }
        let task = match unit {
            Unit::Task => id.clone(),
            Unit::Subtask => self.task_of(id).unwrap_or_else(|| id.clone()),
        };
        let folder = RunFolder::new(self.env.state_dir.run_dir(id, attempt));
        self.flight.live.insert(
            id.clone(),
            Live {
                task: task.clone(),
                attempt,
                folder: folder.clone(),
            },
        );
        if unit == Unit::Subtask {
            self.flight.stepping.insert(task);
        }
        if fate == Fate::Collect {
            self.on_exited(id.clone(), attempt);
        } else {
            self.effect(Effect::Watch {
                unit: id.clone(),
                attempt,
                folder,
            });
        }
    }

    /// Records merges that landed before a crash, puts the others back in
    /// the queue, and stops checks left running.
    pub(super) fn recover_merges(&mut self, facts: &Facts) {
        for (task, landed) in &facts.merges {
            let status = self.status(task);
            if let Some(commit) = landed {
                self.entry(task).merge_commit = Some(commit.clone());
                self.transition(task, Transition::Merge);
                self.emit(
                    Some(task),
                    EventKind::TaskMerged {
                        commit: commit.clone(),
                        how: Merged::Recovered,
                    },
                );
            } else if status == Status::Merging {
                self.transition(task, Transition::Requeue);
            }
        }
        for folder in &facts.running_checks {
            self.effect(Effect::StopCheck(folder.clone()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_open_attempt_is_collected_adopted_or_interrupted() {
        let running = Liveness::Running { supervisor: 7 };
        let table = [
            (Some((2, Liveness::Exited)), Fate::Collect),
            (Some((2, running)), Fate::Adopt),
            (Some((2, Liveness::Gone)), Fate::Interrupt),
            (Some((3, Liveness::Exited)), Fate::Interrupt),
            (None, Fate::Interrupt),
        ];
        for (newest, expected) in table {
            assert_eq!(fate(2, newest), expected, "{newest:?}");
        }
    }
}
