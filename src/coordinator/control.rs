//! A person's commands (retry, cancel, resolve, approve, reject, revert;
//! pause and resume) applied to the state.
//!
//! [`apply`] is pure: the live coordinator's core uses it for inbox commands
//! (and stops the attempts it lists through its executor);
//! [`apply_offline`] is `orch retry|cancel|resolve` when no run is live: it
//! takes the run lock, applies, saves `state.json`, records the events and
//! stops orphaned attempts through their run folders. Both paths follow the
//! same rules. Every status change goes through [`lifecycle::next`].
//!
//! - cancel: any unfinished task or subtask; a running one's attempt is
//!   recorded as cancelled and its process group must be stopped. Cancelling
//!   a task cancels its unfinished subtasks.
//! - retry: a failed, cancelled or conflicted item goes back to ready with a
//!   fresh attempt budget; a task's failed or cancelled subtasks too.
//! - resolve: a failed, conflicted, blocked or cancelled item counts as done.
//! - after a retry or resolve, every blocked item is unblocked; the next
//!   scheduling pass blocks again those still blocked.
//! - approve: a task `awaiting_review` goes back to the merge queue, its
//!   branch tip approved by a person (one approval answers every
//!   `manual` review).
//! - reject: a task `awaiting_review` records the reason; the run hands it
//!   back to its agent with it (or fails it), at once when live, else when
//!   the next run starts.
//! - revert: a merged task is queued for a revert (the run lands it through
//!   the queue and checks); its merged dependents are named, as the revert
//!   does not undo them.
//! - pause: nothing more is launched for an agent (`*`: every agent) until
//!   a time, or until resumed; a pause replaces the agent's earlier one.
//! - resume: lifts an agent's pause (all pauses without an agent); an agent
//!   held only by a pause of every agent is refused, naming `--all`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::Config;
use crate::config::presets::CUSTOM_AGENT;
use crate::lifecycle::{self, Status, Transition, Unit};
use crate::plan::{FullId, Kind, Plan};
use crate::runner::folder::RunFolder;
use crate::state::events::{Actor, EventKind, EventLog, ResumeCause};
use crate::state::inbox::{Action, Order};
use crate::state::lock::{self, LockError};
use crate::state::model::{
    ALL_AGENTS, Approvals, MergeProblem, Outcome, Pause, PauseCause, Revert, Timestamp,
};
use crate::state::{ItemState, State, StateDir, StateError, store};

/// A command that cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandRefusal {
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
    /// Merged without a merge commit orch knows (resolved by a person, say).
    #[error("cannot revert `{id}`: orch does not know the commit its work landed as")]
    NoMergeCommit { id: FullId },
    #[error("cannot revert `{id}`: its revert is already queued")]
    RevertQueued { id: FullId },
    #[error("`{agent}` is not an agent (agents: {known})")]
    UnknownAgent { agent: String, known: String },
    #[error("`{agent}` is not paused")]
    NotPaused { agent: String },
    /// The remedy is in the message: the pause of every agent holds it.
    #[error(
        "`{agent}` is not paused on its own: every agent is (`orch pause --all`); `orch resume --all` lifts that"
    )]
    AllPaused { agent: String },
    #[error("no agent is paused")]
    NothingPaused,
}

/// Returns the names `orch pause` accepts: every preset, and `default`
/// when `agent.command` defines the default agent.
pub fn agent_names(config: &Config) -> Vec<String> {
    let mut names: Vec<String> = config.agent_names().into_iter().collect();
    if config.default_preset().is_none() {
        names.push(CUSTOM_AGENT.to_owned());
    }
    names
}

/// Refuses a name that is not an agent of `config`.
pub fn check_agent(config: &Config, agent: &str) -> Result<(), CommandRefusal> {
    let names = agent_names(config);
    if names.iter().any(|n| n == agent) {
        return Ok(());
    }
    Err(CommandRefusal::UnknownAgent {
        agent: agent.to_owned(),
        known: names.join(", "),
    })
}

/// Pauses `agent` (every agent when `None`) until `until` (until resumed
/// when `None`), by a person; returns its event.
pub fn pause(
    state: &mut State,
    agent: Option<&str>,
    until: Option<Timestamp>,
    now: Timestamp,
) -> EventKind {
    let agent = agent.unwrap_or(ALL_AGENTS).to_owned();
    state.paused.insert(
        agent.clone(),
        Pause {
            until,
            cause: PauseCause::Person,
            reason: None,
            by: None,
            since: now,
        },
    );
    EventKind::AgentPaused {
        agent,
        until,
        cause: PauseCause::Person,
        attempt: None,
        reason: None,
    }
}

/// Lifts the pause of `agent` (every pause when `None`), by a person;
/// returns the events, one per pause lifted.
pub fn resume(state: &mut State, agent: Option<&str>) -> Result<Vec<EventKind>, CommandRefusal> {
    let lifted: Vec<String> = match agent {
        None if state.paused.is_empty() => return Err(CommandRefusal::NothingPaused),
        None => std::mem::take(&mut state.paused).into_keys().collect(),
        Some(agent) => match state.paused.remove(agent) {
            Some(_) => vec![agent.to_owned()],
            None if state.paused.contains_key(ALL_AGENTS) => {
                return Err(CommandRefusal::AllPaused {
                    agent: agent.to_owned(),
                });
            }
            None => {
                return Err(CommandRefusal::NotPaused {
                    agent: agent.to_owned(),
                });
            }
        },
    };
    Ok(lifted
        .into_iter()
        .map(|agent| EventKind::AgentResumed {
            agent,
            cause: ResumeCause::Person,
        })
        .collect())
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
) -> Result<Applied, CommandRefusal> {
    apply_with(plan, state, action, id, None, now)
}

/// Applies one command, with its reason (a rejection's text), to the state.
pub fn apply_with(
    plan: &Plan,
    state: &mut State,
    action: Action,
    id: &str,
    reason: Option<&str>,
    now: Timestamp,
) -> Result<Applied, CommandRefusal> {
    let idx = plan
        .lookup(id)
        .ok_or_else(|| CommandRefusal::UnknownId { id: id.to_owned() })?;
    let item = plan.item(idx);
    let unit = match item.kind {
        Kind::Task => Unit::Task,
        Kind::Subtask => Unit::Subtask,
        kind => {
            return Err(CommandRefusal::NotATask {
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
        Action::Approve => (Transition::Approve, "approve"),
        Action::Reject | Action::Revert => {
            return review_or_revert(plan, state, action, &id, unit, reason, now);
        }
    };
    let from = status_of(plan, state, &id);
    let to = lifecycle::next(unit, from, transition).map_err(|_| CommandRefusal::Illegal {
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
        Action::Approve => {
            let s = entry(plan, state, &id);
            let tip = s
                .queued
                .as_ref()
                .and_then(|q| q.tip.clone())
                .unwrap_or_default();
            let person = PERSON.to_owned();
            match s.review.as_mut().filter(|a| a.tip == tip) {
                Some(a) if !a.by.contains(&person) => a.by.push(person.clone()),
                Some(_) => {}
                None => {
                    s.review = Some(Approvals {
                        tip,
                        by: vec![person.clone()],
                    })
                }
            }
            s.reason = None;
            s.merge_problem = None;
            applied
                .events
                .push((id.clone(), EventKind::ReviewApproved { by: person }));
        }
        Action::Reject | Action::Revert => {}
    }
    Ok(applied)
}

/// Who approves or rejects through `orch approve|reject` and the dashboard.
pub const PERSON: &str = "person";

/// Applies a rejection or a revert: neither changes the status here (the
/// run hands a rejected task back, and lands a revert through the queue).
fn review_or_revert(
    plan: &Plan,
    state: &mut State,
    action: Action,
    id: &FullId,
    unit: Unit,
    reason: Option<&str>,
    now: Timestamp,
) -> Result<Applied, CommandRefusal> {
    let from = status_of(plan, state, id);
    let mut applied = Applied::default();
    let illegal = |action: &'static str| CommandRefusal::Illegal {
        action,
        id: id.clone(),
        status: from,
    };
    if action == Action::Reject {
        if from != Status::AwaitingReview || unit != Unit::Task {
            return Err(illegal("reject"));
        }
        let reason = reason
            .filter(|r| !r.trim().is_empty())
            .unwrap_or("rejected by a person")
            .to_owned();
        let s = entry(plan, state, id);
        s.merge_problem = Some(MergeProblem::Review {
            by: PERSON.to_owned(),
            reason: reason.clone(),
        });
        s.reason = Some(format!("rejected by a person: {reason}"));
        s.review = None;
        applied.events.push((
            id.clone(),
            EventKind::ReviewRejected {
                by: PERSON.to_owned(),
                reason,
            },
        ));
        return Ok(applied);
    }
    if lifecycle::next(unit, from, Transition::Revert).is_err() {
        return Err(illegal("revert"));
    }
    let s = entry(plan, state, id);
    if s.merge_commit.is_none() {
        return Err(CommandRefusal::NoMergeCommit { id: id.clone() });
    }
    if s.revert.is_some() {
        return Err(CommandRefusal::RevertQueued { id: id.clone() });
    }
    s.revert = Some(Revert {
        requested: now,
        commit: None,
    });
    let dependents = merged_dependents(plan, state, id);
    applied
        .events
        .push((id.clone(), EventKind::RevertQueued { dependents }));
    Ok(applied)
}

/// Returns the merged tasks that depend on `id`, directly or through
/// others, in plan order: what a revert of `id` does not undo.
pub fn merged_dependents(plan: &Plan, state: &State, id: &FullId) -> Vec<FullId> {
    let graph = plan.graph();
    let tasks = plan.tasks();
    let Some(root) = plan.lookup(id.as_str()).and_then(|i| graph.task_node(i)) else {
        return Vec::new();
    };
    let mut reached = vec![false; tasks.len()];
    reached[root as usize] = true;
    let mut changed = true;
    while changed {
        changed = false;
        for t in 0..tasks.len() {
            if reached[t] {
                continue;
            }
            let depends = graph
                .deps_of(t as u32)
                .iter()
                .any(|edge| match edge.target {
                    crate::plan::Target::Task(v) => reached[v as usize],
                    crate::plan::Target::Container(c) => graph
                        .container(c)
                        .tasks
                        .clone()
                        .any(|v| reached[v as usize]),
                });
            if depends {
                reached[t] = true;
                changed = true;
            }
        }
    }
    (0..tasks.len())
        .filter(|t| reached[*t] && *t != root as usize)
        .map(|t| plan.item(tasks[t]).id.clone())
        .filter(|dep| status_of(plan, state, dep) == Status::Merged)
        .collect()
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

/// Applying a command without a live run failed.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("cannot create `{}`", path.display())]
    StateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Refused(#[from] CommandRefusal),
    /// The change is in `state.json`; only its record in the log is missing.
    /// There is no remedy to offer: the log cannot be written to.
    #[error("cannot append to `{}`; the change itself is saved in `state.json`", path.display())]
    Events {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// How long a cancelled attempt's processes get between TERM and KILL.
const ORPHAN_GRACE: Duration = Duration::from_secs(5);

/// Applies a command to `state.json` when no run is live, and returns what it did.
///
/// Holds the run lock throughout, so no run starts meanwhile. The state is
/// saved before the events are appended; a failure to append is reported
/// after the save (the change holds, its record is missing). Attempts the
/// command cancelled are stopped through their run folders whether or not
/// the events were recorded; a failure to stop one is logged, as the
/// command itself took effect.
pub fn apply_offline(
    state_dir: &StateDir,
    plan: &Plan,
    action: Action,
    id: &str,
) -> Result<Applied, ControlError> {
    apply_offline_with(state_dir, plan, action, id, None)
}

/// [`apply_offline`], with the command's reason (a rejection's text).
pub fn apply_offline_with(
    state_dir: &StateDir,
    plan: &Plan,
    action: Action,
    id: &str,
    reason: Option<&str>,
) -> Result<Applied, ControlError> {
    std::fs::create_dir_all(state_dir.path()).map_err(|source| ControlError::StateDir {
        path: state_dir.path().to_owned(),
        source,
    })?;
    let _lock = lock::acquire(state_dir.path())?;
    let mut state = state_dir.load_state()?.unwrap_or_default();
    let applied = apply_with(plan, &mut state, action, id, reason, Timestamp::now())?;
    store::save(&state_dir.state_file(), &state)?;
    let lines: Vec<(Option<&FullId>, EventKind)> = applied
        .events
        .iter()
        .map(|(id, k)| (Some(id), k.clone()))
        .collect();
    let recorded = record(&state_dir.events_file(), &lines);
    for stop in &applied.stop {
        let folder = RunFolder::new(state_dir.run_dir(&stop.unit, stop.attempt));
        if let Err(e) = folder.stop_orphan(ORPHAN_GRACE) {
            tracing::warn!(error = %e, unit = %stop.unit, "cannot stop the attempt's processes");
        }
    }
    recorded?;
    Ok(applied)
}

/// Applies `orch pause` or `orch resume` (`order`) to `state.json` when no
/// run is live, under the run lock, and returns the events recorded. An
/// order of another kind changes nothing.
pub fn pause_offline(
    state_dir: &StateDir,
    config: &Config,
    order: &Order,
) -> Result<Vec<EventKind>, ControlError> {
    std::fs::create_dir_all(state_dir.path()).map_err(|source| ControlError::StateDir {
        path: state_dir.path().to_owned(),
        source,
    })?;
    let _lock = lock::acquire(state_dir.path())?;
    let mut state = state_dir.load_state()?.unwrap_or_default();
    let events = match order {
        Order::Pause { agent, until } => {
            if let Some(agent) = agent {
                check_agent(config, agent)?;
            }
            vec![pause(
                &mut state,
                agent.as_deref(),
                *until,
                Timestamp::now(),
            )]
        }
        Order::Resume { agent } => resume(&mut state, agent.as_deref())?,
        Order::Retry { .. }
        | Order::Cancel { .. }
        | Order::Resolve { .. }
        | Order::Approve { .. }
        | Order::Reject { .. }
        | Order::Revert { .. } => Vec::new(),
    };
    store::save(&state_dir.state_file(), &state)?;
    let lines: Vec<(Option<&FullId>, EventKind)> =
        events.iter().map(|k| (None, k.clone())).collect();
    record(&state_dir.events_file(), &lines)?;
    Ok(events)
}

/// Appends the events of an applied command, stopping at the first failure.
fn record(path: &Path, events: &[(Option<&FullId>, EventKind)]) -> Result<(), ControlError> {
    let events_err = |source| ControlError::Events {
        path: path.to_owned(),
        source,
    };
    let mut log = EventLog::open(path).map_err(events_err)?;
    for (item, kind) in events {
        log.append(*item, kind.clone()).map_err(events_err)?;
    }
    Ok(())
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
            job: None,
            confined: false,
            agent: None,
            session: None,
            resumed: false,
            usage: None,
            paused_until: None,
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
            job: None,
            confined: false,
            agent: None,
            session: None,
            resumed: false,
            usage: None,
            paused_until: None,
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
        let err = apply(&plan, &mut state, Action::Resolve, "A", Timestamp::now()).unwrap_err();
        assert_eq!(err.to_string(), "cannot resolve `A`: it is `merged`");
        let err = apply(&plan, &mut state, Action::Cancel, "Z", Timestamp::now()).unwrap_err();
        assert_eq!(err.to_string(), "`Z` is not in the plan");
    }

    #[test]
    fn pauses_replace_and_resumes_name_what_they_cannot_lift() {
        let mut state = State::default();
        let now = Timestamp::now();
        let paused = pause(&mut state, Some("claude"), None, now);
        assert!(
            matches!(paused, EventKind::AgentPaused { ref agent, until: None, .. } if agent == "claude")
        );
        assert_eq!(
            resume(&mut state, Some("codex")).unwrap_err().to_string(),
            "`codex` is not paused"
        );
        pause(&mut state, None, None, now);
        assert_eq!(
            resume(&mut state, Some("codex")).unwrap_err().to_string(),
            "`codex` is not paused on its own: every agent is (`orch pause --all`); `orch resume --all` lifts that"
        );
        assert_eq!(resume(&mut state, None).unwrap().len(), 2);
        assert!(state.paused.is_empty());
        assert_eq!(
            resume(&mut state, None).unwrap_err(),
            CommandRefusal::NothingPaused
        );
        let config = Config::default();
        assert!(check_agent(&config, "gemini").is_ok());
        assert_eq!(
            check_agent(&config, "default").unwrap_err().to_string(),
            "`default` is not an agent (agents: aider, claude, codex, gemini)"
        );
    }

    #[test]
    fn offline_pause_is_saved_and_recorded() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = StateDir::at(&tmp.path().join(".orchestrator"));
        let order = Order::Pause {
            agent: Some("codex".to_owned()),
            until: None,
        };
        pause_offline(&dir, &Config::default(), &order).unwrap();
        let state = dir.load_state().unwrap().unwrap();
        assert_eq!(state.paused["codex"].cause, PauseCause::Person);
        let unknown = Order::Pause {
            agent: Some("clod".to_owned()),
            until: None,
        };
        assert!(matches!(
            pause_offline(&dir, &Config::default(), &unknown),
            Err(ControlError::Refused(CommandRefusal::UnknownAgent { .. }))
        ));
        pause_offline(&dir, &Config::default(), &Order::Resume { agent: None }).unwrap();
        assert!(dir.load_state().unwrap().unwrap().paused.is_empty());
        let names: Vec<&str> = crate::state::events::read_all(&dir.events_file())
            .unwrap()
            .into_iter()
            .map(|e| e.kind.name())
            .collect();
        assert_eq!(names, ["agent.paused", "agent.resumed"]);
    }

    fn failed_a(dir: &StateDir) {
        let mut state = State::default();
        state.items.insert(id("A"), ItemState::new(Status::Failed));
        state.items.insert(id("B"), ItemState::new(Status::Blocked));
        std::fs::create_dir_all(dir.path()).unwrap();
        store::save(&dir.state_file(), &state).unwrap();
    }

    #[test]
    fn offline_saves_the_state_then_records_the_events() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = StateDir::at(&tmp.path().join(".orchestrator"));
        failed_a(&dir);
        apply_offline(&dir, &plan(), Action::Retry, "A").unwrap();
        let state = dir.load_state().unwrap().unwrap();
        assert_eq!(state.items[&id("A")].status, Status::Ready);
        assert_eq!(state.items[&id("B")].status, Status::Pending);
        let events: Vec<(&str, Option<FullId>)> =
            crate::state::events::read_all(&dir.events_file())
                .unwrap()
                .into_iter()
                .map(|e| (e.kind.name(), e.id))
                .collect();
        assert_eq!(
            events,
            [
                ("task.retried", Some(id("A"))),
                ("task.unblocked", Some(id("B")))
            ]
        );
    }

    #[test]
    fn offline_reports_a_lost_event_after_saving_the_state() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = StateDir::at(&tmp.path().join(".orchestrator"));
        failed_a(&dir);
        std::fs::create_dir(dir.events_file()).unwrap();
        let err = apply_offline(&dir, &plan(), Action::Retry, "A").unwrap_err();
        assert!(
            matches!(&err, ControlError::Events { path, .. } if *path == dir.events_file()),
            "{err:?}"
        );
        let state = dir.load_state().unwrap().unwrap();
        assert_eq!(state.items[&id("A")].status, Status::Ready, "saved");
    }

    #[test]
    fn offline_refusals_change_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = StateDir::at(&tmp.path().join(".orchestrator"));
        failed_a(&dir);
        let before = std::fs::read(dir.state_file()).unwrap();
        let err = apply_offline(&dir, &plan(), Action::Retry, "B").unwrap_err();
        assert!(
            matches!(err, ControlError::Refused(CommandRefusal::Illegal { .. })),
            "{err:?}"
        );
        assert_eq!(std::fs::read(dir.state_file()).unwrap(), before);
        assert!(!dir.events_file().exists());
    }
}
