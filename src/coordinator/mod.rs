//! The coordinator: the single owner of a run's live state.
//!
//! ```text
//!   signals ──┐
//!   inbox ────┤                         ┌─▶ spawn_blocking: provision worktree ─┐
//!   timers ───┼──▶ Coordinator loop ────┤                                       │
//!   Msg ◀─────┘   (lifecycle, schedule, ├─▶ supervisor (own session) ─ exit ───┤
//!     ▲            state.json, events)  └─▶ spawn_blocking: collect + commit ──┤
//!     └─────────────────────────────────────────────────────────────────────────┘
//! ```
//!
//! One task (`tokio` current-thread runtime) owns the [`State`]; everything
//! else talks to it with [`Msg`]s. Git work and file collection run on
//! blocking threads and report back; the loop itself never waits on git.
//! Every status change goes through [`lifecycle::next`]; an illegal one is a
//! bug (a panic in debug builds, an error log in release).
//!
//! Durability: `state.json` is written whole, at most every
//! [`FLUSH_INTERVAL`] while it changes (a burst of transitions costs one
//! write), and always at the end. It may lag the run folders; on start
//! [`reconcile`] rebuilds what it missed from `runs/<id>/<n>/` and git. Agents
//! run under supervisors in their own sessions, so killing the coordinator
//! never kills them; the next run adopts them.
//!
//! Decisions recorded in `docs/run.md`.

pub mod control;
mod finish;
mod launch;
mod merging;
mod reconcile;
pub mod workspace;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use crate::config::{AgentUnit, Config};
use crate::git::GitError;
use crate::lifecycle::{self, Event as Transition, Status, Unit};
use crate::plan::{FullId, ItemIdx, Kind, Plan};
use crate::schedule::{self, Blocker, Limits, Readiness, TaskView};
use crate::state::events::{Event, EventKind, EventLog};
use crate::state::lock::{self, LockError, RunLock};
use crate::state::model::{RunRecord, Timestamp};
use crate::state::{State, StateDir, StateError, inbox, store};

/// The longest a changed state waits before it is written.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(200);
/// How often adopted supervisors and the inbox are checked without a wake-up.
const POLL_INTERVAL: Duration = Duration::from_millis(500);
/// How long a second Ctrl-C waits for supervisors to report before giving up.
const KILL_WAIT: Duration = Duration::from_secs(3);

/// What `orch run` was asked to do.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Leave finished tasks in `awaiting_merge`.
    pub no_merge: bool,
    pub max_parallel: Option<usize>,
    /// Only start these tasks (phases and milestones mean every task inside).
    pub only: Option<Vec<ItemIdx>>,
    /// Start no agents; only drain the merge queue (`orch merge`).
    pub merge_only: bool,
}

/// Everything a run needs.
#[derive(Debug)]
pub struct Setup {
    pub plan: Arc<Plan>,
    pub config: Config,
    pub repo_root: PathBuf,
    pub state_dir: StateDir,
    pub target: String,
    /// The `orch` binary, run again as the supervisor.
    pub orch_exe: PathBuf,
    pub options: Options,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Tasks in scope by status.
    pub counts: BTreeMap<Status, usize>,
    /// Stopped by a signal.
    pub interrupted: bool,
    /// Attempts started by this run.
    pub attempts: u32,
    pub elapsed: Duration,
}

impl Summary {
    /// Returns whether some task failed, is blocked or waits on a conflict.
    pub fn has_failures(&self) -> bool {
        [Status::Failed, Status::Blocked, Status::Conflicted]
            .iter()
            .any(|s| self.counts.get(s).copied().unwrap_or(0) > 0)
    }
}

/// A run that could not go on.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("cannot use `{}`", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("target branch `{target}` does not exist")]
    NoTarget { target: String },
    /// Deleted during the run: nothing more can start or merge.
    #[error(
        "target branch `{target}` was deleted during the run; orch stopped starting and merging tasks"
    )]
    TargetGone {
        target: String,
        /// Its last commit orch saw, to recreate it from.
        last: Option<String>,
    },
    #[error(transparent)]
    Git(#[from] GitError),
    #[error(transparent)]
    Policy(#[from] crate::merge_queue::policy::BadGlob),
}

/// Receives every event as it is recorded (the CLI renders them).
pub type Sink = Box<dyn FnMut(&Event)>;

/// Runs the plan until nothing more can start, or a signal stops it.
pub fn run(setup: Setup, sink: Sink) -> Result<Summary, RunError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| RunError::Io {
            path: setup.state_dir.path().to_owned(),
            source,
        })?;
    runtime.block_on(async move {
        let mut coordinator = Coordinator::start(setup, sink)?;
        coordinator.run().await
    })
}

/// Messages from the coordinator's helpers back to it.
#[derive(Debug)]
enum Msg {
    Provisioned {
        task: FullId,
        attempt: u32,
        result: Result<workspace::Provisioned, String>,
        free_owner: Option<FullId>,
        /// How the `post_create` hook went, when the worktree was provisioned.
        prepared: Result<(), String>,
        /// Provisioning failed because the target branch is gone.
        target_gone: bool,
    },
    Exited {
        unit: FullId,
        attempt: u32,
    },
    Finished {
        unit: FullId,
        attempt: u32,
        report: finish::Report,
    },
    Inbox,
    Merged {
        task: FullId,
        outcome: crate::merge_queue::Outcome,
    },
}

/// An attempt whose supervisor is running.
#[derive(Debug)]
struct Live {
    task: FullId,
    attempt: u32,
    run_dir: PathBuf,
    supervisor: Option<u32>,
    /// Spawned by this coordinator (its exit is awaited), not adopted.
    own: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Graceful,
    Kill { until: Instant },
}

struct Coordinator {
    plan: Arc<Plan>,
    config: Arc<Config>,
    repo_root: PathBuf,
    state_dir: StateDir,
    target: String,
    orch_exe: PathBuf,
    options: Options,
    in_scope: Vec<bool>,
    worktree_root: PathBuf,
    state: State,
    dirty: bool,
    last_flush: Instant,
    log: EventLog,
    sink: Sink,
    tx: mpsc::UnboundedSender<Msg>,
    rx: mpsc::UnboundedReceiver<Msg>,
    live: BTreeMap<FullId, Live>,
    provisioning: BTreeSet<FullId>,
    finishing: BTreeSet<FullId>,
    /// Tasks running one agent per subtask.
    stepping: BTreeSet<FullId>,
    free: VecDeque<FullId>,
    /// The last known tip of each task branch (read on blocking threads).
    tips: BTreeMap<FullId, String>,
    /// What the scheduler needs of each task, kept in step with `state`
    /// by [`Coordinator::sync`] (rebuilding it from the state map on every
    /// pass would cost a map lookup per task per pass).
    views: Vec<TaskView>,
    /// Something the scheduler looks at changed since its last pass.
    reschedule: bool,
    policy: crate::merge_queue::policy::Policy,
    merging: Option<merging::MergeRun>,
    /// Merging waits until then (the target checkout was not clean).
    merge_pause: Option<Instant>,
    /// The last reason merging waited, so that it is reported once.
    last_wait: Option<String>,
    /// How long the last `state.json` write took; writes are spaced so
    /// that they take a small share of the run however large the plan.
    last_write: Duration,
    /// Serializes worktree administration: concurrent `git worktree add`
    /// calls read each other's half-written admin folders.
    worktree_admin: Arc<std::sync::Mutex<()>>,
    stopping: Option<Stop>,
    /// Set when the run cannot go on (the target branch is gone): nothing
    /// new starts or merges, and the run ends with this error once the
    /// agents at work have finished.
    halted: Option<RunError>,
    /// The target's newest commit orch has seen.
    target_seen: Option<String>,
    /// The first failure to append to `events.jsonl`.
    log_error: Option<RunError>,
    /// `state.json` writes by this run, and their bytes (`run.finished`).
    state_writes: u64,
    state_bytes: u64,
    inbox_due: bool,
    last_poll: Instant,
    started: Instant,
    attempts_started: u32,
    _lock: RunLock,
    _watcher: Option<notify::RecommendedWatcher>,
}

impl Coordinator {
    fn start(setup: Setup, sink: Sink) -> Result<Coordinator, RunError> {
        let io_err = |path: &std::path::Path| {
            let path = path.to_owned();
            move |source| RunError::Io { path, source }
        };
        let dir = setup.state_dir.path().to_owned();
        std::fs::create_dir_all(dir.join(inbox::DIR_NAME)).map_err(io_err(&dir))?;
        std::fs::create_dir_all(dir.join("runs")).map_err(io_err(&dir))?;
        let lock = lock::acquire(&dir)?;
        let log_path = dir.join(crate::state::events::FILE_NAME);
        let log = EventLog::open(&log_path).map_err(io_err(&log_path))?;
        let mut state = setup.state_dir.load_state()?.unwrap_or_default();
        if state.schema > crate::state::SCHEMA {
            return Err(StateError::NewerSchema {
                path: setup.state_dir.state_file(),
                found: state.schema,
            }
            .into());
        }
        let Some(target_tip) = crate::git::refs::branch_tip(&setup.repo_root, &setup.target)?
        else {
            return Err(RunError::NoTarget {
                target: setup.target,
            });
        };
        state.target = Some(setup.target.clone());
        state.run = Some(RunRecord {
            pid: std::process::id(),
            started: Timestamp::now(),
            finished: None,
        });
        let policy = crate::merge_queue::policy::Policy::new(&setup.config.policy)?;
        let plan = setup.plan;
        let in_scope = scope(&plan, setup.options.only.as_deref());
        let worktree_root =
            workspace::worktree_root(&setup.repo_root, &setup.config.git.worktree_root);
        let (tx, rx) = mpsc::unbounded_channel();
        let watcher = watch_inbox(&dir.join(inbox::DIR_NAME), tx.clone());
        let mut c = Coordinator {
            plan,
            config: Arc::new(setup.config),
            repo_root: setup.repo_root,
            state_dir: setup.state_dir,
            target: setup.target,
            orch_exe: setup.orch_exe,
            options: setup.options,
            in_scope,
            worktree_root,
            state,
            dirty: true,
            last_flush: Instant::now(),
            log,
            sink,
            tx,
            rx,
            live: BTreeMap::new(),
            provisioning: BTreeSet::new(),
            finishing: BTreeSet::new(),
            stepping: BTreeSet::new(),
            free: VecDeque::new(),
            tips: BTreeMap::new(),
            worktree_admin: Arc::new(std::sync::Mutex::new(())),
            views: Vec::new(),
            reschedule: true,
            policy,
            merging: None,
            merge_pause: None,
            last_wait: None,
            last_write: Duration::ZERO,
            stopping: None,
            halted: None,
            target_seen: Some(target_tip.to_string()),
            log_error: None,
            state_writes: 0,
            state_bytes: 0,
            inbox_due: true,
            last_poll: Instant::now(),
            started: Instant::now(),
            attempts_started: 0,
            _lock: lock,
            _watcher: watcher,
        };
        let started = EventKind::RunStarted {
            pid: std::process::id(),
            target: c.target.clone(),
            tasks: c.in_scope.iter().filter(|s| **s).count(),
            no_merge: c.options.no_merge,
        };
        c.emit(None, started);
        c.reconcile();
        if !c.options.no_merge {
            c.reconcile_merges();
        }
        c.views = c.task_views();
        Ok(c)
    }

    async fn run(&mut self) -> Result<Summary, RunError> {
        let mut sigint = signal(SignalKind::interrupt()).map_err(|source| RunError::Io {
            path: self.state_dir.path().to_owned(),
            source,
        })?;
        let mut sigterm = signal(SignalKind::terminate()).map_err(|source| RunError::Io {
            path: self.state_dir.path().to_owned(),
            source,
        })?;
        // The run's record (pid, start, target) goes to disk before anything else.
        self.dirty = true;
        self.flush(true)?;
        loop {
            self.poll();
            if self.stopping.is_none()
                && self.halted.is_none()
                && std::mem::take(&mut self.reschedule)
                && !self.options.merge_only
            {
                self.schedule_and_launch();
            }
            self.maybe_merge();
            self.flush(false)?;
            if let Some(error) = self.log_error.take() {
                // The state is written first, so that what the run knew survives.
                self.dirty = true;
                let _ = self.flush(true);
                return Err(error);
            }
            if self.done() {
                break;
            }
            let wake = tokio::time::Instant::from_std(self.next_wake());
            tokio::select! {
                msg = self.rx.recv() => {
                    if let Some(msg) = msg {
                        self.handle(msg);
                    }
                }
                _ = tokio::time::sleep_until(wake) => self.reschedule = true,
                _ = sigint.recv() => self.on_signal(),
                _ = sigterm.recv() => self.on_signal(),
            }
            while let Ok(msg) = self.rx.try_recv() {
                self.handle(msg);
            }
        }
        let summary = self.finish_run()?;
        match self.halted.take() {
            Some(error) => Err(error),
            None => Ok(summary),
        }
    }

    /// Stops starting and merging because the target branch is gone.
    fn halt_target_gone(&mut self) {
        if self.halted.is_none() {
            self.halted = Some(RunError::TargetGone {
                target: self.target.clone(),
                last: self.target_seen.clone(),
            });
        }
    }

    /// Records an event and hands it to the sink. A log that cannot be
    /// written (a full disk, say) ends the run at the next turn of the loop,
    /// as a state that cannot be written does; agents at work go on and the
    /// next run adopts them.
    fn emit(&mut self, id: Option<&FullId>, kind: EventKind) {
        match self.log.append(id, kind) {
            Ok(event) => (self.sink)(&event),
            Err(source) => {
                if self.log_error.is_none() {
                    self.log_error = Some(RunError::Io {
                        path: self.log.path().to_owned(),
                        source,
                    });
                }
            }
        }
    }

    /// Moves an item through the lifecycle table.
    fn transition(&mut self, id: &FullId, unit: Unit, event: Transition) -> Status {
        let entry = control::entry(&self.plan, &mut self.state, id);
        let status = match lifecycle::next(unit, entry.status, event) {
            Ok(to) => {
                entry.status = to;
                self.dirty = true;
                to
            }
            Err(illegal) => {
                debug_assert!(false, "{id}: {illegal}");
                tracing::error!(id = %id, error = %illegal, "illegal transition");
                entry.status
            }
        };
        self.sync(id);
        status
    }

    /// Brings the scheduler's view of a task in line with its state entry.
    fn sync(&mut self, id: &FullId) {
        let Some(node) = self
            .plan
            .lookup(id.as_str())
            .and_then(|i| self.plan.graph().task_node(i))
        else {
            return;
        };
        let (Some(view), Some(s)) = (self.views.get_mut(node as usize), self.state.items.get(id))
        else {
            return;
        };
        self.reschedule = true;
        *view = TaskView {
            status: s.status,
            ready_since: s.ready_since.map(|t| t.0),
            not_before: s.not_before.map(|t| t.0),
        };
    }

    fn status(&self, id: &FullId) -> Status {
        control::status_of(&self.plan, &self.state, id)
    }

    fn unit_of(&self, id: &FullId) -> Unit {
        match self
            .plan
            .lookup(id.as_str())
            .map(|i| self.plan.item(i).kind)
        {
            Some(Kind::Subtask) => Unit::Subtask,
            _ => Unit::Task,
        }
    }

    /// Returns whether a task runs one agent per subtask.
    fn steps(&self, task: ItemIdx) -> bool {
        self.config.agent.unit == AgentUnit::Subtask && !self.plan.item(task).children.is_empty()
    }

    fn limits(&self) -> Limits {
        self.config.limits(self.options.max_parallel)
    }

    fn task_views(&self) -> Vec<TaskView> {
        self.plan
            .tasks()
            .iter()
            .map(|t| {
                let item = self.plan.item(*t);
                match self.state.items.get(&item.id) {
                    Some(s) => TaskView {
                        status: s.status,
                        ready_since: s.ready_since.map(|t| t.0),
                        not_before: s.not_before.map(|t| t.0),
                    },
                    None => TaskView::new(item.initial.into()),
                }
            })
            .collect()
    }

    fn schedule_and_launch(&mut self) {
        let views = self.views.clone();
        let now = SystemTime::now();
        let s = schedule::schedule(&self.plan, &views, now, &self.limits());
        let plan = Arc::clone(&self.plan);
        for (t, readiness) in s.readiness.iter().enumerate() {
            if !self.in_scope[t] {
                continue;
            }
            let id = &plan.item(plan.tasks()[t]).id;
            match readiness {
                Readiness::Ready if views[t].status == Status::Pending => {
                    control::entry(&plan, &mut self.state, id).ready_since =
                        Some(Timestamp::at(now));
                    self.transition(id, Unit::Task, Transition::Promote);
                    self.emit(Some(id), EventKind::TaskReady);
                }
                Readiness::Blocked(blocker) => {
                    let (by, how) = match blocker {
                        Blocker::Dependency(by) => (*by, "required dependency"),
                        Blocker::Barrier(by) => (*by, "phase barrier: earlier task"),
                    };
                    let by_id = plan.item(by).id.clone();
                    let by_status = self.status(&by_id);
                    let reason = format!("{how} `{by_id}` is {by_status}");
                    self.transition(id, Unit::Task, Transition::Block);
                    control::entry(&plan, &mut self.state, id).reason = Some(reason.clone());
                    self.emit(Some(id), EventKind::TaskBlocked { by: by_id, reason });
                }
                _ => {}
            }
        }
        for t in s.start {
            let ti = plan.tasks()[t as usize];
            let id = plan.item(ti).id.clone();
            if self.in_scope[t as usize] && !self.provisioning.contains(&id) {
                self.start_task(ti);
            }
        }
        let stepping: Vec<FullId> = self.stepping.iter().cloned().collect();
        for task in stepping {
            if !self.busy(&task) {
                self.advance_steps(&task);
            }
        }
    }

    /// Returns whether a task has an agent, a provisioning or a collection under way.
    fn busy(&self, task: &FullId) -> bool {
        self.provisioning.contains(task)
            || self.live.values().any(|l| &l.task == task)
            || self
                .finishing
                .iter()
                .any(|u| u == task || task.is_ancestor_of(u))
    }

    fn handle(&mut self, msg: Msg) {
        self.reschedule = true;
        match msg {
            Msg::Provisioned {
                task,
                attempt,
                result,
                free_owner,
                prepared,
                target_gone,
            } => {
                if target_gone {
                    self.provisioning.remove(&task);
                    self.interrupt(&task, attempt, "the target branch is gone");
                    self.halt_target_gone();
                } else {
                    self.on_provisioned(task, attempt, result, free_owner, prepared);
                }
            }
            Msg::Exited { unit, attempt } => self.on_exited(unit, attempt),
            Msg::Finished {
                unit,
                attempt,
                report,
            } => self.on_finished(unit, attempt, report),
            Msg::Inbox => self.inbox_due = true,
            Msg::Merged { task, outcome } => self.on_merged(task, outcome),
        }
    }

    /// Checks the inbox and adopted supervisors, on a wake-up or every [`POLL_INTERVAL`].
    fn poll(&mut self) {
        let due = self.last_poll.elapsed() >= POLL_INTERVAL;
        if self.inbox_due || due {
            self.inbox_due = false;
            self.read_inbox();
        }
        if !due {
            return;
        }
        self.last_poll = Instant::now();
        let adopted: Vec<(FullId, u32, PathBuf, Option<u32>)> = self
            .live
            .iter()
            .filter(|(_, l)| !l.own)
            .map(|(u, l)| (u.clone(), l.attempt, l.run_dir.clone(), l.supervisor))
            .collect();
        for (unit, attempt, run_dir, supervisor) in adopted {
            let exited = run_dir.join(crate::runner::spec::EXIT).exists();
            let gone = supervisor.is_none_or(|pid| !crate::process::alive(pid));
            if exited || gone {
                self.on_exited(unit, attempt);
            }
        }
        if let Some(Stop::Kill { until }) = self.stopping
            && Instant::now() >= until
        {
            let left: Vec<(FullId, u32)> = self
                .live
                .iter()
                .map(|(u, l)| (u.clone(), l.attempt))
                .collect();
            for (unit, attempt) in left {
                self.live.remove(&unit);
                self.interrupt(&unit, attempt, "killed by a second Ctrl-C");
            }
        }
    }

    fn read_inbox(&mut self) {
        let dir = self.state_dir.path().to_owned();
        let received = match inbox::pending(&dir) {
            Ok(received) => received,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the inbox");
                return;
            }
        };
        for r in received {
            let command = match &r.command {
                Ok(command) => command.clone(),
                Err(reason) => {
                    let refused =
                        inbox::Reply::refused(format!("the command file is unreadable: {reason}"));
                    let _ = inbox::answer(&r, &refused);
                    let _ = inbox::reject(&r, reason);
                    continue;
                }
            };
            let result = control::apply(
                &self.plan,
                &mut self.state,
                command.action,
                command.id.as_str(),
                Timestamp::now(),
            );
            let reply = match result {
                Ok(applied) => {
                    self.dirty = true;
                    self.views = self.task_views();
                    self.reschedule = true;
                    for (id, kind) in applied.events {
                        if matches!(
                            kind,
                            EventKind::TaskRetried { .. } | EventKind::TaskResolved { .. }
                        ) {
                            self.stepping.remove(&id);
                        }
                        self.emit(Some(&id), kind);
                    }
                    for stop in applied.stop {
                        self.stop_attempt(&stop.unit, false);
                    }
                    inbox::Reply::ok(format!("{} `{}`", command.action.past(), command.id))
                }
                Err(e) => inbox::Reply::refused(e.to_string()),
            };
            let _ = inbox::answer(&r, &reply);
            let _ = inbox::done(&r);
        }
    }

    /// Asks an attempt's supervisor to stop (TERM; `now`: KILL the group too).
    fn stop_attempt(&mut self, unit: &FullId, now: bool) {
        let Some(live) = self.live.get(unit) else {
            return;
        };
        if now {
            let info: Option<crate::runner::spec::SupervisorInfo> =
                crate::fsio::read_json(&live.run_dir.join(crate::runner::spec::SUPERVISOR))
                    .ok()
                    .flatten();
            if let Some(pgid) = info.and_then(|i| i.agent_pgid) {
                let _ = crate::process::signal_group(pgid, rustix::process::Signal::KILL);
            }
        }
        if let Some(pid) = live.supervisor {
            let _ = crate::process::signal(pid, rustix::process::Signal::TERM);
        }
    }

    fn on_signal(&mut self) {
        let units: Vec<FullId> = self.live.keys().cloned().collect();
        match self.stopping {
            None => {
                self.stopping = Some(Stop::Graceful);
                self.emit(
                    None,
                    EventKind::RunStopping {
                        agents: units.len(),
                    },
                );
                for unit in &units {
                    self.stop_attempt(unit, false);
                }
                self.stop_merge();
            }
            Some(_) => {
                self.stopping = Some(Stop::Kill {
                    until: Instant::now() + KILL_WAIT,
                });
                for unit in &units {
                    self.stop_attempt(unit, true);
                }
                self.stop_merge();
            }
        }
    }

    /// Records an attempt as interrupted: it does not count, and the item is retried.
    fn interrupt(&mut self, unit: &FullId, attempt: u32, reason: &str) {
        let entry = control::entry(&self.plan, &mut self.state, unit);
        let Some(open) = entry.open_attempt_mut().filter(|a| a.number == attempt) else {
            return;
        };
        open.outcome = Some(crate::state::model::Outcome::Interrupted {
            reason: reason.to_owned(),
        });
        open.finished = Some(Timestamp::now());
        entry.not_before = None;
        if entry.status == Status::Running {
            let kind = self.unit_of(unit);
            self.transition(unit, kind, Transition::Interrupt);
        }
        self.dirty = true;
        self.emit(
            Some(unit),
            EventKind::TaskInterrupted {
                attempt,
                reason: reason.to_owned(),
            },
        );
    }

    fn done(&self) -> bool {
        let quiet = self.live.is_empty()
            && self.provisioning.is_empty()
            && self.finishing.is_empty()
            && self.merging.is_none();
        if self.stopping.is_some() || self.halted.is_some() {
            return quiet;
        }
        if !quiet {
            return false;
        }
        let views = &self.views;
        let now = SystemTime::now();
        let s = schedule::schedule(&self.plan, views, now, &self.limits());
        let startable = s.start.iter().any(|t| self.in_scope[*t as usize]);
        let waiting_retry = views.iter().enumerate().any(|(t, v)| {
            self.in_scope[t]
                && v.status == Status::Retrying
                && v.not_before.is_some_and(|at| at > now)
        });
        let promotable = s.readiness.iter().enumerate().any(|(t, r)| {
            self.in_scope[t]
                && matches!(r, Readiness::Blocked(_))
                && matches!(views[t].status, Status::Pending | Status::Ready)
        });
        let merging =
            self.merges() && crate::merge_queue::queue::next(&self.plan, &self.state).is_some();
        if self.options.merge_only {
            return !merging;
        }
        !(startable || waiting_retry || promotable || merging || !self.stepping.is_empty())
    }

    /// Returns when the loop must wake up even if nothing happens.
    fn next_wake(&self) -> Instant {
        let now = Instant::now();
        let mut wake = now + POLL_INTERVAL;
        if self.dirty {
            wake = wake.min(self.last_flush + self.flush_interval());
        }
        let now_sys = SystemTime::now();
        let retries = self
            .views
            .iter()
            .filter(|v| v.status == Status::Retrying)
            .filter_map(|v| v.not_before);
        let steps = self
            .stepping
            .iter()
            .filter_map(|task| self.plan.lookup(task.as_str()))
            .flat_map(|task| self.plan.item(task).children.iter())
            .filter_map(|sub| self.state.items.get(&self.plan.item(*sub).id))
            .filter(|s| s.status == Status::Retrying)
            .filter_map(|s| s.not_before.map(|t| t.0));
        if let Some(at) = retries.chain(steps).min() {
            wake = wake.min(now + at.duration_since(now_sys).unwrap_or_default());
        }
        if let Some(Stop::Kill { until }) = self.stopping {
            wake = wake.min(until);
        }
        if let Some(pause) = self.merge_pause {
            wake = wake.min(pause.max(now));
        }
        wake
    }

    /// Returns the spacing of `state.json` writes: [`FLUSH_INTERVAL`], or
    /// twenty times the last write's duration for large states.
    fn flush_interval(&self) -> Duration {
        FLUSH_INTERVAL.max(self.last_write * 20)
    }

    fn flush(&mut self, force: bool) -> Result<(), RunError> {
        if !self.dirty || (!force && self.last_flush.elapsed() < self.flush_interval()) {
            return Ok(());
        }
        let start = Instant::now();
        let bytes = store::save(&self.state_dir.state_file(), &self.state)?;
        self.state_writes += 1;
        self.state_bytes += bytes;
        self.last_write = start.elapsed();
        self.dirty = false;
        self.last_flush = Instant::now();
        Ok(())
    }

    fn finish_run(&mut self) -> Result<Summary, RunError> {
        if let Some(run) = self.state.run.as_mut() {
            run.finished = Some(Timestamp::now());
        }
        self.dirty = true;
        self.flush(true)?;
        let mut counts: BTreeMap<Status, usize> = BTreeMap::new();
        for (t, task) in self.plan.tasks().iter().enumerate() {
            if self.in_scope[t] {
                *counts
                    .entry(self.status(&self.plan.item(*task).id))
                    .or_default() += 1;
            }
        }
        let summary = Summary {
            counts,
            interrupted: self.stopping.is_some(),
            attempts: self.attempts_started,
            elapsed: self.started.elapsed(),
        };
        let finished = EventKind::RunFinished {
            elapsed_ms: summary.elapsed.as_millis() as u64,
            attempts: summary.attempts,
            interrupted: summary.interrupted,
            counts: summary.counts.clone(),
            cpu_ms: crate::process::own_cpu_time().map(|cpu| cpu.as_millis() as u64),
            peak_rss_kb: crate::process::own_peak_rss_kb(),
            state_writes: self.state_writes,
            state_bytes: self.state_bytes,
        };
        self.emit(None, finished);
        Ok(summary)
    }
}

/// Marks the tasks `--only` selects (all when unset).
fn scope(plan: &Plan, only: Option<&[ItemIdx]>) -> Vec<bool> {
    let Some(only) = only else {
        return vec![true; plan.tasks().len()];
    };
    plan.tasks()
        .iter()
        .map(|t| {
            only.iter().any(|o| {
                *o == *t || {
                    let range = plan.item(*o).descendants(*o);
                    range.contains(&t.index())
                }
            })
        })
        .collect()
}

/// Watches the inbox folder; events only wake the loop, which re-reads the folder.
///
/// Access events are ignored: reading the folder opens it, and inotify
/// reports that open, so waking on it would make the loop wake itself
/// forever.
fn watch_inbox(
    dir: &std::path::Path,
    tx: mpsc::UnboundedSender<Msg>,
) -> Option<notify::RecommendedWatcher> {
    use notify::Watcher;
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event
            && !matches!(event.kind, notify::EventKind::Access(_))
        {
            let _ = tx.send(Msg::Inbox);
        }
    })
    .ok()?;
    watcher
        .watch(dir, notify::RecursiveMode::NonRecursive)
        .ok()?;
    Some(watcher)
}
