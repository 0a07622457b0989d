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
//! - a move of the target's checkout cut short is finished first
//!   (`merge_queue::checkout::resume`);
//! - a task whose merge git shows on the target (`merge_queue::evidence`:
//!   the journal, its merge commit, its replayed tip) is merged, whatever
//!   status the state had recorded (it may lag a crash, or a second
//!   coordinator): an open attempt of it is closed and stopped. A branch
//!   tip merely contained in the target is not evidence. A task waiting to
//!   merge whose branch had no commits of its own (queued at its base) and
//!   is gone landed: the queue deletes such a branch as it lands it, before
//!   the state records the merge. Any other task caught mid-merge goes back
//!   to the queue;
//! - a target that no longer contains the head orch last landed was moved
//!   under orch: the lost commit is kept under a backup ref and the run
//!   halts, until a person puts it back or deletes that ref;
//! - a revert asked for (`orch revert`) whose commit git shows on the target
//!   (the journal, or a `Revert task <id>:` commit with the `Orch-Revert`
//!   trailer after the task's merge) is recorded `reverted`;
//! - a check or review command left running by the dead coordinator is
//!   stopped. No check result survives a restart: the merge queue's chain
//!   is built and checked again, so nothing lands unchecked.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use super::core::{Effect, Halt, Live, Now, RunState};
use crate::git::refs;
use crate::lifecycle::{Status, Transition, Unit};
use crate::merge_queue::Journal;
use crate::merge_queue::evidence::{self, Sought};
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
    /// Tasks not yet recorded merged whose merge git shows on the target,
    /// with the commit where it landed.
    pub landed: BTreeMap<FullId, String>,
    /// Merged tasks with a revert asked for whose revert git shows on the
    /// target: the revert commit and its parent.
    pub reverted: BTreeMap<FullId, (String, String)>,
    /// Checks whose supervisor still runs, left by a dead coordinator.
    pub running_checks: Vec<RunFolder>,
    /// What became of the head orch last landed, when the target lost it.
    pub rewound: Option<Rewound>,
}

/// The target no longer contains the head orch last landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rewound {
    /// Found now: `lost` was kept at `backup`.
    Found {
        lost: String,
        head: String,
        backup: String,
    },
    /// Reported before, and its backup ref is still there: still stopped.
    Again { lost: String, backup: String },
    /// Reported before, and a person deleted the backup ref: the target's
    /// new history is accepted from `head` on.
    Accepted { head: String },
    /// Reported before, and the commit is back in the target.
    Restored,
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
    // Before anything looks at the worktrees: a move a crash cut leaves
    // its worktree locked, and git's entry may name the folder it left.
    crate::git::worktree::finish_moves(repo);
    let target_tip = refs::branch_tip(repo, target).ok().flatten();
    if let Some(tip) = target_tip {
        facts.landed = landed(plan, state, dir, repo, tip);
        facts.reverted = reverted(state, dir, repo, tip);
        facts.rewound = rewound(state, repo, target, tip);
    }
    let folders = [dir.checks(), dir.path().join("reviews")];
    for task_dir in folders
        .iter()
        .flat_map(std::fs::read_dir)
        .flatten()
        .flatten()
    {
        for check_dir in std::fs::read_dir(task_dir.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let folder = RunFolder::new(check_dir.path());
            match folder.liveness() {
                Liveness::Running { .. } => facts.running_checks.push(folder),
                // The folder's next run clears its stop request: a
                // supervisor left from before that had not recorded itself
                // must not outlive this.
                Liveness::Gone => {
                    if let Err(e) = folder.stop_leftover() {
                        tracing::warn!(folder = %folder.path().display(), error = %e, "cannot stop a check's supervisor left from the last run");
                    }
                }
                Liveness::Exited => {}
            }
        }
    }
    facts
}

/// Finds the tasks the state does not record merged (nor resolved) whose
/// merge git shows on the target. Only tasks the state knows are looked
/// for: a fresh state does not adopt old merge commits of tasks that
/// happen to share ids. Blocking.
fn landed(
    plan: &Plan,
    state: &State,
    dir: &StateDir,
    repo: &Path,
    tip: git2::Oid,
) -> BTreeMap<FullId, String> {
    let sought: Vec<Sought> = state
        .items
        .iter()
        .filter(|(id, s)| {
            !matches!(
                s.status,
                Status::Merged | Status::Resolved | Status::Reverted
            ) && plan
                .lookup(id.as_str())
                .is_some_and(|i| plan.item(i).kind == Kind::Task)
        })
        .map(|(id, s)| Sought {
            task: id.to_string(),
            base: s.base.as_deref().and_then(refs::parse_oid),
            backup: refs::latest_backup(repo, id.as_str())
                .ok()
                .flatten()
                .map(|(_, oid)| oid),
            merged_before: s.merge_commit.as_deref().and_then(refs::parse_oid),
        })
        .collect();
    if sought.is_empty() {
        return BTreeMap::new();
    }
    let journal: Option<Journal> = crate::fsio::read_json(&dir.merge_journal()).ok().flatten();
    let found = git2::Repository::open(repo).and_then(|git| {
        let mut found = evidence::find(&git, tip, &sought, journal.as_ref())?;
        for (id, s) in &state.items {
            if found.contains_key(id.as_str())
                || !matches!(s.status, Status::AwaitingMerge | Status::Merging)
                || plan
                    .lookup(id.as_str())
                    .is_none_or(|i| plan.item(i).kind != Kind::Task)
            {
                continue;
            }
            let parse = |c: Option<&String>| c.and_then(|c| refs::parse_oid(c));
            let queued = parse(s.queued.as_ref().and_then(|q| q.tip.as_ref()));
            if let (Some(branch), Some(base), Some(queued)) =
                (&s.branch, parse(s.base.as_ref()), queued)
                && evidence::landed_empty(&git, tip, branch, base, queued)?
            {
                found.insert(id.to_string(), tip);
            }
        }
        Ok(found)
    });
    match found {
        Ok(found) => found
            .into_iter()
            .filter_map(|(task, oid)| Some((FullId::parse(&task).ok()?, oid.to_string())))
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the target's history");
            BTreeMap::new()
        }
    }
}

/// Finds the merged tasks with a revert asked for whose revert commit git
/// shows on the target. Blocking.
fn reverted(
    state: &State,
    dir: &StateDir,
    repo: &Path,
    tip: git2::Oid,
) -> BTreeMap<FullId, (String, String)> {
    let sought: BTreeMap<String, git2::Oid> = state
        .items
        .iter()
        .filter(|(_, s)| {
            s.status == Status::Merged && s.revert.as_ref().is_some_and(|r| r.commit.is_none())
        })
        .filter_map(|(id, s)| {
            Some((
                id.to_string(),
                s.merge_commit.as_deref().and_then(refs::parse_oid)?,
            ))
        })
        .collect();
    if sought.is_empty() {
        return BTreeMap::new();
    }
    let journal: Option<Journal> = crate::fsio::read_json(&dir.merge_journal()).ok().flatten();
    let found = git2::Repository::open(repo).and_then(|git| {
        let found = evidence::find_reverts(&git, tip, &sought, journal.as_ref())?;
        found
            .into_iter()
            .map(|(task, oid)| {
                let parent = git.find_commit(oid)?.parent_id(0)?;
                Ok((task, (oid.to_string(), parent.to_string())))
            })
            .collect::<Result<Vec<_>, git2::Error>>()
    });
    match found {
        Ok(found) => found
            .into_iter()
            .filter_map(|(task, found)| Some((FullId::parse(&task).ok()?, found)))
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the target's history");
            BTreeMap::new()
        }
    }
}

/// Says whether the target still contains the head orch last landed, and
/// keeps it under a backup ref the first time it does not. Blocking.
fn rewound(state: &State, repo: &Path, target: &str, tip: git2::Oid) -> Option<Rewound> {
    let landed = state.landed.as_deref().and_then(refs::parse_oid)?;
    if refs::is_ancestor(repo, landed, tip).unwrap_or(true) {
        return state.lost.as_ref().map(|_| Rewound::Restored);
    }
    if let Some(lost) = state
        .lost
        .as_ref()
        .filter(|l| l.commit == landed.to_string())
    {
        return Some(
            if refs::ref_points_at(repo, &lost.backup, landed).unwrap_or(true) {
                Rewound::Again {
                    lost: lost.commit.clone(),
                    backup: lost.backup.clone(),
                }
            } else {
                Rewound::Accepted {
                    head: tip.to_string(),
                }
            },
        );
    }
    match refs::backup_lost(repo, target, landed) {
        Ok(backup) => Some(Rewound::Found {
            lost: landed.to_string(),
            head: tip.to_string(),
            backup,
        }),
        Err(e) => {
            tracing::warn!(error = %e, "cannot keep the commit the target lost");
            None
        }
    }
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
                agent: None,
                session: None,
                resumed: false,
                usage: None,
                paused_until: None,
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

    /// Records the merges git shows landed, whatever status the state had
    /// recorded (before anything else looks at those tasks).
    pub(super) fn recover_landed(&mut self, facts: &Facts, now: Now) {
        for (task, (commit, onto)) in &facts.reverted {
            if self.status(task) != Status::Merged {
                continue;
            }
            let entry = self.entry(task);
            if let Some(revert) = entry.revert.as_mut() {
                revert.commit = Some(commit.clone());
            }
            entry.reason = Some(format!("reverted by {commit}"));
            self.transition(task, Transition::Revert);
            self.emit(
                Some(task),
                EventKind::TaskReverted {
                    commit: commit.clone(),
                    onto: onto.clone(),
                },
            );
        }
        for (task, commit) in &facts.landed {
            if matches!(
                self.status(task),
                Status::Merged | Status::Resolved | Status::Reverted
            ) {
                continue;
            }
            if let Some(attempt) = self.open_attempt(task) {
                let entry = self.entry(task);
                if let Some(open) = entry.open_attempt_mut() {
                    open.outcome = Some(Outcome::Interrupted {
                        reason: "its merge was already on the target".to_owned(),
                    });
                    open.finished = Some(Timestamp::at(now.wall));
                }
                let folder = RunFolder::new(self.env.state_dir.run_dir(task, attempt));
                self.effect(Effect::Stop {
                    folder,
                    how: crate::runner::folder::Stop::Ask,
                });
            }
            let entry = self.entry(task);
            entry.merge_commit = Some(commit.clone());
            entry.merge_problem = None;
            entry.reason = None;
            entry.queued = None;
            entry.not_before = None;
            self.transition(task, Transition::Reconcile);
            self.emit(
                Some(task),
                EventKind::TaskMerged {
                    commit: commit.clone(),
                    how: Merged::Recovered,
                },
            );
        }
    }

    /// Puts tasks caught mid-merge back in the queue, stops checks left
    /// running, and halts when the target was moved under orch.
    pub(super) fn recover_merges(&mut self, facts: &Facts) {
        let merging: Vec<FullId> = self
            .state
            .items
            .iter()
            .filter(|(_, s)| s.status == Status::Merging)
            .map(|(id, _)| id.clone())
            .collect();
        for task in merging {
            self.transition(&task, Transition::Requeue);
        }
        for folder in &facts.running_checks {
            self.effect(Effect::StopCheck(folder.clone()));
        }
        match facts.rewound.clone() {
            Some(Rewound::Found { lost, head, backup }) => {
                let reason =
                    super::after_merge::rewound_reason(&self.env.target, &lost, &head, &backup);
                self.emit(None, EventKind::MergeWaiting { reason });
                self.halt_target_rewound(lost, backup);
            }
            Some(Rewound::Again { lost, backup }) => {
                self.halt = Some(Halt::TargetRewound { lost, backup });
            }
            Some(Rewound::Accepted { head }) => {
                self.state.landed = Some(head);
                self.state.lost = None;
                self.touch();
            }
            Some(Rewound::Restored) => {
                self.state.lost = None;
                self.touch();
            }
            None => {}
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
