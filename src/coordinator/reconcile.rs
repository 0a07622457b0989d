//! Start-up reconciliation: the state catches up with the run folders and git.
//!
//! `state.json` is written at most every few hundred milliseconds, and the
//! coordinator may have been killed at any instant, so on start:
//! - a run folder newer than the state's last attempt is an attempt the
//!   state never heard of; it is recorded;
//! - an attempt with `exit.json` is collected as if its supervisor just
//!   exited (collection is idempotent: committing leftovers twice commits
//!   nothing the second time);
//! - an attempt whose supervisor is alive (pid in `supervisor.json`, and
//!   `/proc/<pid>/cmdline` names this run folder) is adopted and watched;
//! - anything else was interrupted: its attempt does not count, and the item
//!   is retried;
//! - worktree admin entries whose folders are gone are pruned.
//!
//! This applies lifecycle transitions, which is why it lives here and not in
//! `state/` (whose code never decides transitions).

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use super::{Coordinator, Live, Msg, control};
use crate::lifecycle::{Event as Transition, Status, Unit};
use crate::plan::{FullId, Kind};
use crate::runner::spec::{self, SupervisorInfo};
use crate::state::model::{Attempt, Timestamp};

impl Coordinator {
    pub(super) fn reconcile(&mut self) {
        if let Err(e) = crate::git::worktree::prune(&self.repo_root) {
            tracing::warn!(error = %e, "cannot prune worktrees");
        }
        let runs = self.state_dir.path().join("runs");
        let with_runs: BTreeSet<String> = std::fs::read_dir(&runs)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok())
                    .filter_map(|e| e.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default();
        let plan = Arc::clone(&self.plan);
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
                self.stepping.insert(id.clone());
                continue;
            }
            if with_runs.contains(id.as_str())
                && matches!(
                    status,
                    Status::Pending | Status::Ready | Status::Retrying | Status::Running
                )
            {
                self.record_unknown_attempts(&id, unit, &runs.join(id.as_str()));
            }
            if self.status(&id) == Status::Running {
                self.recover(&id, unit);
            }
            if matches!(self.status(&id), Status::AwaitingMerge | Status::Merged)
                && unit == Unit::Task
            {
                self.free.push_back(id);
            }
        }
    }

    /// Records attempts found on disk but missing from the state.
    fn record_unknown_attempts(&mut self, id: &FullId, unit: Unit, dir: &Path) {
        let highest = std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok())
                    .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
                    .max()
                    .unwrap_or(0)
            })
            .unwrap_or(0);
        let known = self
            .state
            .items
            .get(id)
            .map_or(0, |s| s.attempts.len() as u32);
        if highest <= known {
            return;
        }
        for number in known + 1..=highest {
            let started = std::fs::metadata(dir.join(number.to_string()).join(spec::SPEC))
                .and_then(|m| m.modified())
                .map(Timestamp)
                .unwrap_or_else(|_| Timestamp::now());
            control::entry(&self.plan, &mut self.state, id)
                .attempts
                .push(Attempt {
                    number,
                    started,
                    finished: None,
                    outcome: None,
                    purpose: None,
                });
            if number < highest {
                self.close_interrupted(id, number, "superseded by a later attempt");
            }
        }
        let status = self.status(id);
        if status == Status::Pending {
            self.transition(id, unit, Transition::Promote);
        }
        if matches!(self.status(id), Status::Ready | Status::Retrying) {
            self.transition(id, unit, Transition::Start);
        }
        self.dirty = true;
    }

    fn close_interrupted(&mut self, id: &FullId, number: u32, reason: &str) {
        let entry = control::entry(&self.plan, &mut self.state, id);
        if let Some(a) = entry
            .attempts
            .iter_mut()
            .find(|a| a.number == number && a.outcome.is_none())
        {
            a.outcome = Some(crate::state::model::Outcome::Interrupted {
                reason: reason.to_owned(),
            });
            a.finished = Some(Timestamp::now());
        }
    }

    /// Adopts, collects or interrupts the open attempt of a running item.
    fn recover(&mut self, id: &FullId, unit: Unit) {
        let Some(attempt) = self
            .state
            .items
            .get(id)
            .and_then(|s| s.open_attempt())
            .map(|a| a.number)
        else {
            self.transition(id, unit, Transition::Interrupt);
            return;
        };
        let task = match unit {
            Unit::Task => id.clone(),
            Unit::Subtask => self.task_of(id).unwrap_or_else(|| id.clone()),
        };
        let run_dir = control::run_dir(self.state_dir.path(), id, attempt);
        let info: Option<SupervisorInfo> = crate::fsio::read_json(&run_dir.join(spec::SUPERVISOR))
            .ok()
            .flatten();
        let exited = run_dir.join(spec::EXIT).exists();
        let alive = info
            .as_ref()
            .is_some_and(|i| crate::process::alive(i.pid) && is_supervisor_of(i.pid, &run_dir));
        if !exited && !alive {
            self.interrupt(
                id,
                attempt,
                "its supervisor was gone when the run restarted",
            );
            return;
        }
        self.live.insert(
            id.clone(),
            Live {
                task: task.clone(),
                attempt,
                run_dir,
                supervisor: info.map(|i| i.pid),
                own: false,
            },
        );
        if unit == Unit::Subtask {
            self.stepping.insert(task);
        }
        if exited {
            let _ = self.tx.send(Msg::Exited {
                unit: id.clone(),
                attempt,
            });
        }
    }
}

/// Returns whether `pid` is the supervisor of `run_dir` (not a reused pid).
fn is_supervisor_of(pid: u32, run_dir: &Path) -> bool {
    match std::fs::read(format!("/proc/{pid}/cmdline")) {
        Ok(cmdline) => {
            let wanted = run_dir.join(spec::SPEC);
            let wanted = wanted.as_os_str().as_encoded_bytes();
            cmdline.split(|b| *b == 0).any(|arg| arg == wanted)
        }
        Err(_) => true,
    }
}
