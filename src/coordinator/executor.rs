//! Carrying out the core's [`Effect`]s: the coordinator's only contact with
//! processes, git, files and the event log.
//!
//! ```text
//!  Effect::Provision ─▶ spawn_blocking: worktree (admin lock), post_create ─▶ Input::Provisioned
//!  Effect::Launch    ─▶ render prompt, run folder, supervisor (own session) ─▶ Input::Exited
//!                                                         (or Input::LaunchFailed)
//!  Effect::Watch     ─▶ polled: exit.json written or supervisor gone       ─▶ Input::Exited
//!  Effect::Collect   ─▶ spawn_blocking: collect (post_agent, commit)       ─▶ Input::Collected
//!  Effect::Build     ─▶ spawn_blocking: merge_queue::build::build          ─▶ Input::Built
//!  Effect::Check     ─▶ spawn_blocking: merge_queue::candidate::check      ─▶ Input::Checked
//!                       (one per slot, up to `merge.max_parallel_checks`)
//!  Effect::Review    ─▶ spawn_blocking: merge_queue::review::review        ─▶ Input::Reviewed
//!  Effect::Land      ─▶ spawn_blocking: merge_queue::land                  ─▶ Input::Landed
//!  Effect::Probe     ─▶ spawn_blocking: merge_queue::probe                 ─▶ Input::Probed
//!  Effect::Radar     ─▶ spawn_blocking: merge_queue::radar::changes        ─▶ Input::Radar
//!  Effect::PostMerge ─▶ spawn_blocking: merge_queue::run_post_merge        ─▶ Input::PostMerged
//!  Effect::Emit      ─▶ events.jsonl, the metrics, the notification outbox,
//!                       then the sink (progress lines, JSON)
//!  Effect::Persist   ─▶ changes.jsonl: what changed, before the batch's
//!                       other effects; fsynced at most every FLUSH_INTERVAL,
//!                       state.json rewritten whole when a snapshot is due
//!  Effect::Flush     ─▶ changes.jsonl fsynced now
//!  Effect::Stop...   ─▶ RunFolder::stop (never a pid reused by another process)
//!  Effect::Reply     ─▶ inbox reply, command file removed
//! ```
//!
//! Git and collection run on blocking threads and report back through the
//! channel; the loop itself never waits on git. Worktree administration is
//! serialized by one lock (concurrent `git worktree add` calls read each
//! other's half-written admin folders).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::core::{
    CheckRequest, Effect, Input, LandRequest, LaunchError, LaunchRequest, PrepareError,
    ProbeRequest, ProvisionRequest, RadarRequest, ReviewRequest,
};
use crate::config::Config;
use crate::config::{ExecutorKind, WorkspaceMode};
use crate::coordinator::collect;
use crate::coordinator::finishing::attempt_job;
use crate::coordinator::workspace::{self, Provisioned};
use crate::merge_queue::build::{BuildJob, LinkSpec, Onto};
use crate::merge_queue::candidate::CheckJob;
use crate::merge_queue::checks::{CheckRun, CheckTransport};
use crate::merge_queue::policy::Policy;
use crate::merge_queue::review::ReviewJob;
use crate::merge_queue::{self, LandJob, ProbeJob};
use crate::metrics::Metrics;
use crate::notifications::{Delivery, Destination, List, Outbox, Worker};
use crate::plan::FullId;
use crate::runner::executor::{Cluster, Placement};
use crate::runner::folder::{self, RunFolder};
use crate::runner::prompt;
use crate::runner::spawn::{self, AttemptPlan};
use crate::runner::spec::Confined;
use crate::state::changes::{self, Touched};
use crate::state::events::{Event, EventKind, EventLog};
use crate::state::model::AttemptJob;
use crate::state::{State, StateDir, StateError, inbox};

/// The longest a recorded change waits before it is fsynced (and
/// `state.json` rewritten, when a snapshot is due).
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(200);

/// How durable [`Executor::flush`] makes the state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durable {
    /// Every [`FLUSH_INTERVAL`] while it changes: changes fsynced, a
    /// snapshot when one is due.
    Due,
    /// Now: changes fsynced, a snapshot when one is due.
    Now,
    /// Now, as a snapshot in `state.json` (the run's start and end).
    Snapshot,
}

/// Receives every event as it is recorded (the CLI renders them).
pub type Sink = Box<dyn FnMut(&Event)>;

/// What reaches the loop from the executor's helpers.
#[derive(Debug)]
pub enum Msg {
    Input(Box<Input>),
    /// The inbox folder changed.
    InboxChanged,
    /// The plan file changed (the driver reads it once saves settle).
    PlanSaved,
    /// What reading the saved plan file found.
    PlanRead(Box<super::replan::PlanRead>),
}

/// A check or review command in flight: how to stop it.
#[derive(Debug, Clone)]
struct Stoppable {
    stop: Arc<AtomicBool>,
    /// The pid of its command's supervisor, while one runs.
    running: Arc<Mutex<Option<u32>>>,
}

impl Stoppable {
    fn new() -> Stoppable {
        Stoppable {
            stop: Arc::new(AtomicBool::new(false)),
            running: Arc::new(Mutex::new(None)),
        }
    }

    /// Sets the flag, and asks the running command's supervisor (our own
    /// child, so its pid cannot have been reused) to stop its command.
    fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        let pid = *self.running.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(pid) = pid
            && let Err(e) = crate::process::signal(pid, crate::process::Signal::TERM)
        {
            tracing::warn!(error = %e, "cannot stop a running check");
        }
    }
}

/// What the executor was given.
#[derive(Debug)]
pub struct Tools {
    pub config: Arc<Config>,
    pub repo: PathBuf,
    pub state_dir: StateDir,
    pub target: String,
    /// The `orch` binary, run again as the supervisor.
    pub orch_exe: PathBuf,
    pub policy: Policy,
}

/// Carries out effects and gathers the inputs they produce.
pub struct Executor {
    tools: Tools,
    tx: mpsc::UnboundedSender<Msg>,
    log: EventLog,
    sink: Sink,
    /// The first failure to append to `events.jsonl`.
    log_error: Option<(PathBuf, std::io::Error)>,
    /// The first failure of a state write (a batch's line, or a flush
    /// asked for at once): from then on only stops are carried out, until
    /// the driver ends the run.
    flush_error: Option<StateError>,
    worktree_admin: Arc<Mutex<()>>,
    /// Worktrees whose last collection left them clean, and when it
    /// looked: handed to the provisioning that recycles one.
    found_clean: Arc<Mutex<HashMap<PathBuf, Instant>>>,
    /// Supervisors started while their task's worktree is prepared, by
    /// task: the launch that follows tells one to go; one left over (the
    /// provisioning failed, the run stopped) ends when it is dropped.
    waiting: HashMap<FullId, spawn::Waiting>,
    /// Check runs by slot, reviews, and the landing: what `StopMerge` stops.
    checks: std::collections::BTreeMap<u32, Stoppable>,
    reviews: Vec<Stoppable>,
    landing: Option<Arc<AtomicBool>>,
    /// Adopted attempts, polled until their supervisor is gone.
    watched: Vec<(FullId, u32, RunFolder)>,
    /// Attempts that may run as cluster jobs: their `job.json` is read at
    /// each poll, and news of it reaches the core as [`Input::Placed`].
    jobs: Vec<JobWatch>,
    inbox_due: bool,
    last_poll: Instant,
    /// Changes were recorded since the last flush.
    dirty: bool,
    last_flush: Instant,
    /// How long the last flush took; flushes are spaced so that they take
    /// a small share of the run however large the plan.
    last_write: Duration,
    /// Records the state's changes and writes its snapshots.
    writer: changes::Writer,
    /// `state.json` writes by this run (`run.finished`).
    pub state_writes: u64,
    /// Bytes this run wrote to `state.json` and `changes.jsonl`.
    pub state_bytes: u64,
    /// The metrics served while the run is live (`[metrics] listen`).
    metrics: Option<Arc<Mutex<Metrics>>>,
    /// Where events go (`[[notify]]`), when anywhere.
    notify: Option<Notify>,
}

/// The run's notifications: the destinations, the outbox, its worker.
#[derive(Debug)]
pub struct Notify {
    pub destinations: Vec<Destination>,
    pub outbox: Outbox,
    pub worker: Worker,
}

impl Executor {
    /// Returns the executor; `recorded` is the state on disk, including
    /// the changes up to `seq`.
    pub fn new(
        tools: Tools,
        tx: mpsc::UnboundedSender<Msg>,
        log: EventLog,
        sink: Sink,
        recorded: (State, u64),
    ) -> Executor {
        let writer = changes::Writer::new(&tools.state_dir.state_file(), recorded.0, recorded.1);
        Executor {
            tools,
            tx,
            log,
            sink,
            log_error: None,
            flush_error: None,
            worktree_admin: Arc::new(Mutex::new(())),
            found_clean: Arc::default(),
            waiting: HashMap::new(),
            checks: std::collections::BTreeMap::new(),
            reviews: Vec::new(),
            landing: None,
            watched: Vec::new(),
            jobs: Vec::new(),
            inbox_due: true,
            last_poll: Instant::now(),
            dirty: true,
            last_flush: Instant::now(),
            last_write: Duration::ZERO,
            writer,
            state_writes: 0,
            state_bytes: 0,
            metrics: None,
            notify: None,
        }
    }

    /// Puts every event a destination wants into the outbox from now on.
    pub fn with_notify(&mut self, notify: Notify) {
        self.notify = Some(notify);
    }

    /// Makes the notification tries due within `grace`, then stops the
    /// worker (the end of the run).
    pub fn finish_notify(&mut self, grace: Duration) {
        if let Some(notify) = self.notify.take() {
            notify.worker.finish(grace);
        }
    }

    /// Adds a delivery to the outbox for each destination that wants the event.
    fn enqueue(&self, event: &Event) {
        let Some(notify) = &self.notify else { return };
        let mut added = false;
        for destination in &notify.destinations {
            if destination.wants(event.kind.name()) {
                let delivery = Delivery::new(event, &destination.name);
                match notify.outbox.put(List::Pending, &delivery) {
                    Ok(()) => added = true,
                    Err(e) => tracing::warn!(error = %e, "cannot add a notification to the outbox"),
                }
            }
        }
        if added {
            notify.worker.wake();
        }
    }

    /// Feeds every event and state write from now on to `metrics`.
    pub fn with_metrics(&mut self, metrics: Arc<Mutex<Metrics>>) {
        self.metrics = Some(metrics);
    }

    /// Runs `f` on the metrics, when they are served.
    fn metrics(&self, f: impl FnOnce(&mut Metrics)) {
        if let Some(metrics) = &self.metrics {
            f(&mut metrics.lock().unwrap_or_else(|p| p.into_inner()));
        }
    }

    /// Carries out effects in order; `state` is the core's after the
    /// batch and `touched` the items it may have changed. The batch's
    /// changes are recorded first, before its events and effects: a
    /// crash then never leaves the state behind what was done.
    ///
    /// Once a state write failed (this batch's or an earlier one's, until
    /// the driver ends the run), only the effects that stop something are
    /// carried out: what else a batch decided would be done unrecorded,
    /// and its events would tell of it.
    pub fn carry_out(&mut self, effects: Vec<Effect>, touched: Touched, state: &State) {
        if self.flush_error.is_none()
            && effects
                .iter()
                .any(|e| matches!(e, Effect::Persist | Effect::Flush))
        {
            // Dirty even when nothing touched changed: the next flush then
            // compares every item.
            self.dirty = true;
            if self.writer.needs_snapshot() {
                // Readers would ignore lines until `state.json` records
                // `changes` (no state yet, or one an older `orch` wrote).
                if let Err(e) = self.snapshot(state) {
                    self.flush_error = Some(e);
                }
            } else {
                self.record(state, &touched);
            }
        }
        for effect in effects {
            if self.flush_error.is_none() || stops(&effect) {
                self.one(effect, state);
            }
        }
    }

    /// Returns whether a state write failed: the run must end.
    pub fn failed(&self) -> bool {
        self.flush_error.is_some()
    }

    /// Appends the changes of `touched` (and of the top-level fields) to
    /// `changes.jsonl`.
    fn record(&mut self, state: &State, touched: &Touched) {
        match self.writer.record(state, touched) {
            Ok(0) => {}
            Ok(bytes) => {
                self.dirty = true;
                self.state_bytes += bytes;
            }
            Err(source) => {
                if self.flush_error.is_none() {
                    self.flush_error = Some(StateError::Write {
                        path: self.tools.state_dir.changes_file(),
                        source,
                    });
                }
            }
        }
    }

    fn one(&mut self, effect: Effect, state: &State) {
        match effect {
            Effect::Emit { id, kind } => self.emit(id.as_ref(), kind),
            Effect::Persist => {}
            Effect::Flush => {
                if let Err(e) = self.flush(state, Durable::Now)
                    && self.flush_error.is_none()
                {
                    self.flush_error = Some(e);
                }
            }
            Effect::PostMerge(req) => self.post_merge(*req),
            Effect::Provision(req) => self.provision(*req),
            Effect::Launch(req) => self.launch(*req),
            Effect::Watch {
                unit,
                attempt,
                folder,
            } => {
                self.jobs.push(JobWatch {
                    unit: unit.clone(),
                    attempt,
                    folder: folder.clone(),
                    seen: None,
                });
                self.watched.push((unit, attempt, folder));
            }
            Effect::Collect {
                unit,
                attempt,
                collection,
            } => {
                let tx = self.tx.clone();
                let found_clean = Arc::clone(&self.found_clean);
                tokio::task::spawn_blocking(move || {
                    let worktree = collection.worktree.clone();
                    let report = Box::new(collect::collect(*collection));
                    if let Some(worktree) = worktree {
                        let mut found = found_clean
                            .lock()
                            .unwrap_or_else(|poisoned| poisoned.into_inner());
                        remember_clean(&mut found, worktree, report.clean_since);
                    }
                    let _ = tx.send(Msg::Input(Box::new(Input::Collected {
                        unit,
                        attempt,
                        report,
                    })));
                });
            }
            Effect::Stop { folder, how } => stop(&folder, how),
            Effect::Build { epoch, onto, links } => self.build(epoch, onto, links),
            Effect::Check(req) => self.check(*req),
            Effect::CancelCheck { slot } => {
                if let Some(run) = self.checks.get(&slot) {
                    run.stop();
                }
            }
            Effect::Review(req) => self.review(*req),
            Effect::Land(req) => self.land(*req),
            Effect::Probe(req) => self.probe(*req),
            Effect::Radar(requests) => self.radar(requests),
            Effect::StopMerge => self.stop_merge(),
            Effect::StopLanding => {
                if let Some(stop) = &self.landing {
                    stop.store(true, Ordering::SeqCst);
                }
            }
            Effect::StopCheck(folder) => stop(&folder, folder::Stop::Ask),
            Effect::Reply { received, reply } => {
                if let Err(e) =
                    inbox::answer(&received, &reply).and_then(|()| inbox::done(&received))
                {
                    tracing::warn!(error = %e, "cannot answer an inbox command");
                }
            }
        }
    }

    /// Records an event and hands it to the sink. A log that cannot be
    /// written (a full disk, say) ends the run at the next turn of the loop,
    /// as a state that cannot be written does; agents at work go on and the
    /// next run adopts them.
    pub fn emit(&mut self, id: Option<&FullId>, kind: EventKind) {
        match self.log.append(id, kind) {
            Ok(event) => {
                self.metrics(|m| m.observe(&event));
                self.enqueue(&event);
                (self.sink)(&event);
            }
            Err(source) => {
                if self.log_error.is_none() {
                    self.log_error = Some((self.log.path().to_owned(), source));
                }
            }
        }
    }

    /// Takes the first failure of a state write asked for at once, if any.
    pub fn take_flush_error(&mut self) -> Option<StateError> {
        self.flush_error.take()
    }

    /// Takes the first failure to append to the event log, if any.
    pub fn take_log_error(&mut self) -> Option<(PathBuf, std::io::Error)> {
        self.log_error.take()
    }

    fn provision(&mut self, mut req: ProvisionRequest) {
        if let Some(free) = &mut req.request.free {
            free.clean_since = self
                .found_clean
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .remove(&free.path);
        }
        let (task, run_dir) = (req.task.clone(), req.run_dir.clone());
        let tx = self.tx.clone();
        let admin = Arc::clone(&self.worktree_admin);
        tokio::task::spawn_blocking(move || {
            let guard = admin
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let result = workspace::provision(&req.request);
            drop(guard);
            let prepared = match (&result, req.post_create) {
                (Ok(p), Some(stage)) => prepare(stage, p, &req.marker),
                _ => Ok(()),
            };
            let _ = tx.send(Msg::Input(Box::new(Input::Provisioned {
                task: req.task,
                attempt: req.attempt,
                free_owner: req.free_owner,
                result,
                prepared,
            })));
        });
        // Started while the worktree is prepared, the supervisor's own
        // start (its process, libraries and runtime: 4 to 5 ms here) runs
        // beside the `git switch` instead of after it; its fork follows
        // the provisioning's start, not the other way round.
        if let Some(run_dir) = &run_dir {
            match spawn::start_waiting(&self.tools.orch_exe, run_dir) {
                Ok(waiting) => {
                    self.waiting.insert(task, waiting);
                }
                Err(e) => {
                    self.waiting.remove(&task);
                    tracing::debug!(error = %e, task = %task, "no supervisor started ahead");
                }
            }
        }
    }

    fn launch(&mut self, req: LaunchRequest) {
        let (unit, attempt) = (req.unit.clone(), req.attempt);
        let failed = |error: LaunchError| {
            Msg::Input(Box::new(Input::LaunchFailed {
                unit: unit.clone(),
                attempt,
                error,
            }))
        };
        let mut context = req.prompt.context;
        if let (Some(previous), Some(log)) = (context.previous.as_mut(), &req.prompt.previous_log) {
            previous.log_tail = prompt::log_tail(log, 30);
        }
        if let (Some(problem), Some(log)) = (context.problem.as_mut(), &req.prompt.problem_log) {
            problem.log_tail = prompt::log_tail(log, 60);
        }
        let text = match prompt::render(req.prompt.template, &req.prompt.templates, &context) {
            Ok(text) => text,
            Err(e) => {
                let _ = self.tx.send(failed(e.into()));
                return;
            }
        };
        let sandbox = req.sandbox.map(|grant| Confined {
            grant,
            events: self.tools.state_dir.events_file(),
            unit: unit.to_string(),
        });
        let plan = AttemptPlan {
            run_dir: req.folder.path().to_owned(),
            command: req.command,
            agent_files: req.agent_files,
            prompt: text,
            prompt_on_stdin: req.prompt_on_stdin,
            cwd: req.cwd,
            placement: req.placement,
            env: req.env,
            timeout: req.timeout,
            grace: req.grace,
            log_limit: req.log_limit,
            sandbox,
            watch: req.watch,
        };
        let waiting = self
            .waiting
            .remove(&req.task)
            .filter(|w| w.run_dir() == plan.run_dir);
        let spawned = spawn::prepare(&plan, &self.tools.orch_exe).and_then(|_| {
            // One started ahead that is gone is replaced.
            waiting.and_then(|w| w.go().ok()).map_or_else(
                || spawn::spawn_supervisor(&self.tools.orch_exe, &plan.run_dir),
                Ok,
            )
        });
        let mut supervisor = match spawned {
            Ok(supervisor) => supervisor,
            Err(e) => {
                let _ = self.tx.send(failed(LaunchError::Spawn(e)));
                return;
            }
        };
        if plan.placement != Placement::Local {
            self.jobs.push(JobWatch {
                unit: unit.clone(),
                attempt,
                folder: req.folder,
                seen: None,
            });
        }
        let tx = self.tx.clone();
        // The attempt is over once `exit.json` is written: the supervisor
        // may still be closing the worktree's watch, and is reaped after.
        tokio::spawn(async move {
            supervisor.done().await;
            let _ = tx.send(Msg::Input(Box::new(Input::Exited { unit, attempt })));
            let _ = supervisor.child.wait().await;
        });
    }

    fn check_run(&self, task: String, tasks: Vec<String>, stoppable: &Stoppable) -> CheckRun {
        let config = &self.tools.config;
        CheckRun {
            orch: self.tools.orch_exe.clone(),
            state_dir: self.tools.state_dir.path().to_owned(),
            task,
            tasks,
            target: self.tools.target.clone(),
            log_limit: config.agent.log_limit.0,
            grace: config.agent.grace.0,
            stop: Arc::clone(&stoppable.stop),
            running: Arc::clone(&stoppable.running),
            placement: match config.merge.executor {
                ExecutorKind::Local => Placement::Local,
                ExecutorKind::Slurm => Placement::Slurm(Box::new(Cluster {
                    settings: config.executor.clone(),
                    git: None,
                })),
            },
            git: match (&config.executor.workspace, &config.executor.remote) {
                (WorkspaceMode::Git, Some(remote)) => Some(CheckTransport {
                    repo: self.tools.repo.clone(),
                    remote: remote.clone(),
                    scratch: config.executor.scratch.clone(),
                }),
                _ => None,
            },
        }
    }

    fn build(&mut self, epoch: u64, onto: Onto, links: Vec<LinkSpec>) {
        let job = BuildJob {
            repo: self.tools.repo.clone(),
            state_dir: self.tools.state_dir.path().to_owned(),
            target: self.tools.target.clone(),
            strategy: self.tools.config.git.merge_strategy,
            policy: self.tools.policy.clone(),
            onto,
            links,
            delete_branch: self.tools.config.merge.delete_branch,
            remove_worktree: self.tools.config.merge.remove_worktree,
            admin: Arc::clone(&self.worktree_admin),
        };
        let tx = self.tx.clone();
        tokio::task::spawn_blocking(move || {
            let report = merge_queue::build::build(&job);
            let _ = tx.send(Msg::Input(Box::new(Input::Built { epoch, report })));
        });
    }

    fn check(&mut self, req: CheckRequest) {
        let stoppable = Stoppable::new();
        let tasks: Vec<String> = req.tasks.iter().map(|t| t.to_string()).collect();
        let last = tasks.last().cloned().unwrap_or_default();
        let job = CheckJob {
            repo: self.tools.repo.clone(),
            state_dir: self.tools.state_dir.path().to_owned(),
            slot: req.slot,
            commit: req.commit.clone(),
            checks: self.tools.config.policy.checks.clone(),
            check_run: self.check_run(last, tasks, &stoppable),
            admin: Arc::clone(&self.worktree_admin),
        };
        self.checks.insert(req.slot, stoppable);
        let tx = self.tx.clone();
        let (slot, commit) = (req.slot, req.commit);
        tokio::task::spawn_blocking(move || {
            let checked = merge_queue::candidate::check(&job);
            let _ = tx.send(Msg::Input(Box::new(Input::Checked {
                slot,
                commit,
                checked,
            })));
        });
    }

    fn review(&mut self, req: ReviewRequest) {
        let Some(review) = self
            .tools
            .config
            .policy
            .review
            .iter()
            .find(|r| r.name == req.review)
            .cloned()
        else {
            return;
        };
        let stoppable = Stoppable::new();
        self.reviews.retain(|r| !r.stop.load(Ordering::SeqCst));
        self.reviews.push(stoppable.clone());
        let job = ReviewJob {
            repo: self.tools.repo.clone(),
            state_dir: self.tools.state_dir.path().to_owned(),
            worktree: req.worktree,
            review,
            task: req.view,
            branch: req.branch,
            target: self.tools.target.clone(),
            commit: req.commit,
            prev: req.prev,
            check_run: self.check_run(req.task.to_string(), Vec::new(), &stoppable),
        };
        let tx = self.tx.clone();
        let (task, name) = (req.task, req.review);
        tokio::task::spawn_blocking(move || {
            let verdict = merge_queue::review::review(&job);
            stoppable.stop.store(true, Ordering::SeqCst);
            let _ = tx.send(Msg::Input(Box::new(Input::Reviewed {
                task,
                review: name,
                verdict,
            })));
        });
    }

    fn land(&mut self, req: LandRequest) {
        let config = &self.tools.config;
        let stop = Arc::new(AtomicBool::new(false));
        self.landing = Some(Arc::clone(&stop));
        let job = LandJob {
            repo: self.tools.repo.clone(),
            state_dir: self.tools.state_dir.path().to_owned(),
            target: self.tools.target.clone(),
            strategy: config.git.merge_strategy,
            onto: req.onto,
            candidate: req.candidate,
            links: req.links,
            delete_branch: config.merge.delete_branch,
            remove_worktree: config.merge.remove_worktree,
            admin: Arc::clone(&self.worktree_admin),
            stop,
        };
        let tx = self.tx.clone();
        tokio::task::spawn_blocking(move || {
            let landing = merge_queue::land(&job);
            let _ = tx.send(Msg::Input(Box::new(Input::Landed(Box::new(landing)))));
        });
    }

    fn probe(&mut self, req: ProbeRequest) {
        let job = ProbeJob {
            repo: self.tools.repo.clone(),
            target: self.tools.target.clone(),
            strategy: self.tools.config.git.merge_strategy,
            task: req.task.to_string(),
            title: req.title,
            branch: req.branch,
            base: req.base,
        };
        let tx = self.tx.clone();
        let task = req.task;
        tokio::task::spawn_blocking(move || {
            let waiting = merge_queue::probe(&job).map(|why| crate::text::error_chain(&why));
            let _ = tx.send(Msg::Input(Box::new(Input::Probed { task, waiting })));
        });
    }

    fn radar(&mut self, requests: Vec<RadarRequest>) {
        let repo = self.tools.repo.clone();
        let target = self.tools.target.clone();
        let tx = self.tx.clone();
        tokio::task::spawn_blocking(move || {
            let seen = requests
                .into_iter()
                .map(|r| {
                    let read = match merge_queue::radar::changes(&repo, &target, &r.branch) {
                        Ok(read) => read,
                        Err(e) => {
                            tracing::debug!(error = %e, task = %r.task, "the radar cannot read the branch");
                            None
                        }
                    };
                    (r.task, read)
                })
                .collect();
            let _ = tx.send(Msg::Input(Box::new(Input::Radar { seen })));
        });
    }

    /// Runs a landing's `post_merge` hooks on a blocking thread. Their
    /// processes run in groups of their own and are let finish when the
    /// run stops (bounded by `agent.timeout`).
    fn post_merge(&mut self, req: super::core::PostMergeRequest) {
        let post = merge_queue::PostMerge {
            state_dir: self.tools.state_dir.path().to_owned(),
            target: self.tools.target.clone(),
            landed: req
                .landed
                .iter()
                .map(|(t, c)| (t.to_string(), c.clone()))
                .collect(),
            dir: req.dir,
            commands: self.tools.config.hooks.post_merge.clone(),
            timeout: self.tools.config.agent.timeout.0,
        };
        let tx = self.tx.clone();
        tokio::task::spawn_blocking(move || {
            let failures = merge_queue::run_post_merge(&post)
                .into_iter()
                .filter_map(|(task, e)| Some((FullId::parse(&task).ok()?, e)))
                .collect();
            let _ = tx.send(Msg::Input(Box::new(Input::PostMerged { failures })));
        });
    }

    /// Asks everything of the merge queue in flight to stop: each check's
    /// and review's command gets SIGTERM through its supervisor, and a
    /// landing that has not moved the target leaves it alone.
    fn stop_merge(&mut self) {
        for run in self.checks.values().chain(self.reviews.iter()) {
            run.stop();
        }
        if let Some(stop) = &self.landing {
            stop.store(true, Ordering::SeqCst);
        }
    }

    /// Notes that the inbox changed: it is read at the next poll.
    pub fn inbox_changed(&mut self) {
        self.inbox_due = true;
    }

    /// Reads the inbox (when it changed, or every `interval`) and checks
    /// adopted supervisors (every `interval`); returns what came of it.
    pub fn poll(&mut self, interval: Duration) -> Vec<Input> {
        let mut inputs = Vec::new();
        let due = self.last_poll.elapsed() >= interval;
        if self.inbox_due || due {
            self.inbox_due = false;
            self.read_inbox(&mut inputs);
        }
        if !due {
            return inputs;
        }
        self.last_poll = Instant::now();
        self.jobs.retain_mut(|w| {
            if w.folder.has_exited() || w.folder.live_supervisor().is_none() {
                return false;
            }
            let Some(job) = w.folder.load_job().as_ref().and_then(attempt_job) else {
                return true;
            };
            if w.seen.as_ref() != Some(&job) {
                w.seen = Some(job.clone());
                inputs.push(Input::Placed {
                    unit: w.unit.clone(),
                    attempt: w.attempt,
                    job,
                });
            }
            true
        });
        self.watched.retain(|(unit, attempt, folder)| {
            let over = folder.has_exited() || folder.live_supervisor().is_none();
            if over {
                inputs.push(Input::Exited {
                    unit: unit.clone(),
                    attempt: *attempt,
                });
            }
            !over
        });
        inputs
    }

    /// Turns the inbox's command files into inputs; a file that cannot be
    /// read as a command is refused and set aside.
    fn read_inbox(&mut self, inputs: &mut Vec<Input>) {
        let received = match inbox::pending(self.tools.state_dir.path()) {
            Ok(received) => received,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the inbox");
                return;
            }
        };
        for r in received {
            match &r.command {
                Ok(command) => inputs.push(Input::Command {
                    command: command.clone(),
                    received: r,
                }),
                Err(reason) => {
                    let refused =
                        inbox::Reply::refused(format!("the command file is unreadable: {reason}"));
                    let answered = inbox::answer(&r, &refused)
                        .and_then(|()| inbox::reject(&r, &reason.to_string()));
                    if let Err(e) = answered {
                        tracing::warn!(error = %e, "cannot refuse an unreadable inbox command");
                    }
                }
            }
        }
    }

    /// Returns the spacing of `state.json` writes: [`FLUSH_INTERVAL`], or
    /// twenty times the last write's duration for large states.
    fn flush_interval(&self) -> Duration {
        FLUSH_INTERVAL.max(self.last_write * 20)
    }

    /// Returns when a pending state write is due, if one is.
    pub fn flush_due(&self) -> Option<Instant> {
        self.dirty.then(|| self.last_flush + self.flush_interval())
    }

    /// Makes the recorded changes durable when they are due (or `how`
    /// says now), and writes a snapshot when one is due (or `how` asks
    /// for one).
    pub fn flush(&mut self, state: &State, how: Durable) -> Result<(), StateError> {
        if how == Durable::Due && (!self.dirty || self.last_flush.elapsed() < self.flush_interval())
        {
            return Ok(());
        }
        let start = Instant::now();
        // What the core changed outside a batch (its start and end records)
        // is top-level; an item it changed without saying so is a bug,
        // recorded here all the same. The comparison of every item is left
        // to the timed flushes, so that a flush per merge costs what
        // changed.
        self.record(state, &Touched::default());
        // After a failed write the state is ahead of what was recorded
        // for want of the line, not for a bug.
        if how != Durable::Now && self.flush_error.is_none() && self.writer.differs(state) {
            debug_assert!(false, "an item changed without being touched");
            tracing::error!("an item of the state changed without being touched");
            self.record(
                state,
                &Touched {
                    all: true,
                    ..Touched::default()
                },
            );
        }
        if let Some(e) = self.flush_error.take() {
            return Err(e);
        }
        let changes_err = |source| StateError::Write {
            path: self.tools.state_dir.changes_file(),
            source,
        };
        if how == Durable::Snapshot || self.writer.snapshot_due() {
            self.snapshot(state)?;
        } else {
            self.writer.sync().map_err(changes_err)?;
            self.metrics(|m| m.set_state(Some(state)));
        }
        self.last_write = start.elapsed();
        self.dirty = false;
        self.last_flush = Instant::now();
        Ok(())
    }

    /// Writes `state` whole to `state.json`.
    fn snapshot(&mut self, state: &State) -> Result<(), StateError> {
        let bytes = self.writer.snapshot(state)?;
        self.state_writes += 1;
        self.state_bytes += bytes;
        self.metrics(|m| {
            m.state_written(bytes);
            m.set_state(Some(state));
        });
        Ok(())
    }

    /// Takes the plan the run goes on with (a saved plan was applied).
    pub fn set_plan(&mut self, plan: Arc<crate::plan::Plan>) {
        self.metrics(|m| m.set_plan(plan));
    }

    /// Marks the state as needing a write.
    pub fn mark_dirty(&mut self) {
        self.dirty = true;
    }
}

/// An attempt whose `job.json` is watched.
#[derive(Debug)]
struct JobWatch {
    unit: FullId,
    attempt: u32,
    folder: RunFolder,
    /// What was last reported of it.
    seen: Option<AttemptJob>,
}

/// Returns whether `effect` only stops something: safe to carry out when
/// the batch that asked for it could not be recorded.
fn stops(effect: &Effect) -> bool {
    match effect {
        Effect::Stop { .. }
        | Effect::StopMerge
        | Effect::StopLanding
        | Effect::StopCheck(_)
        | Effect::CancelCheck { .. } => true,
        Effect::Emit { .. }
        | Effect::Persist
        | Effect::Flush
        | Effect::PostMerge(_)
        | Effect::Provision(_)
        | Effect::Launch(_)
        | Effect::Watch { .. }
        | Effect::Collect { .. }
        | Effect::Build { .. }
        | Effect::Check(_)
        | Effect::Review(_)
        | Effect::Land(_)
        | Effect::Probe(_)
        | Effect::Radar(_)
        | Effect::Reply { .. } => false,
    }
}

/// Stops a run folder's processes, saying so when that fails.
fn stop(folder: &RunFolder, how: folder::Stop) {
    if let Err(e) = folder.stop(how) {
        tracing::warn!(error = %e, folder = %folder.path().display(), "cannot stop");
    }
}

/// Runs `post_create` in a worktree just created or recycled for its task,
/// or again in one where it failed last time; a worktree the task keeps
/// from an attempt where it succeeded is left alone.
fn prepare(
    mut stage: crate::runner::hook::Stage,
    provisioned: &Provisioned,
    marker: &Path,
) -> Result<(), PrepareError> {
    let note = |source: std::io::Error| PrepareError::Marker {
        path: marker.to_owned(),
        source,
    };
    if provisioned.how != workspace::How::Reused {
        crate::fsio::remove_if_present(marker).map_err(note)?;
    } else if marker.exists() {
        return Ok(());
    }
    let worktree = &provisioned.worktree;
    stage
        .env
        .push(("ORCH_WORKTREE".to_owned(), worktree.display().to_string()));
    stage.run(worktree)?;
    if let Some(dir) = marker.parent() {
        std::fs::create_dir_all(dir).map_err(note)?;
    }
    std::fs::write(marker, worktree.display().to_string()).map_err(note)
}

/// Notes what a collection found of its worktree for the recycle that may
/// follow ([`workspace::FreeWorktree::clean_since`]): when it found the
/// worktree clean, or that it did not (a look of an earlier attempt there
/// no longer stands); looks older than [`workspace::CLEAN_FOR`] go.
fn remember_clean(
    found: &mut HashMap<PathBuf, Instant>,
    worktree: PathBuf,
    clean_since: Option<Instant>,
) {
    found.retain(|_, at| at.elapsed() < workspace::CLEAN_FOR);
    match clean_since {
        Some(at) => found.insert(worktree, at),
        None => found.remove(&worktree),
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::Status;
    use crate::state::model::ItemState;

    /// A worktree found clean by one attempt's collection and not by the
    /// next one's there (it committed what was left, running hooks that may
    /// write files) is not offered to a recycle as clean; looks over a
    /// second old are dropped.
    #[test]
    fn a_later_collection_that_did_not_find_the_worktree_clean_voids_the_earlier_look() {
        let wt = PathBuf::from("wt/T1");
        let other = PathBuf::from("wt/T2");
        let mut found = HashMap::new();
        remember_clean(&mut found, wt.clone(), Some(Instant::now()));
        assert!(found.contains_key(&wt));
        remember_clean(&mut found, wt.clone(), None);
        assert!(!found.contains_key(&wt));

        let old = Instant::now().checked_sub(workspace::CLEAN_FOR).unwrap();
        found.insert(other.clone(), old);
        remember_clean(&mut found, wt.clone(), Some(Instant::now()));
        assert!(found.contains_key(&wt));
        assert!(!found.contains_key(&other));
    }

    /// An executor on a state dir whose `changes.jsonl` cannot be written
    /// (it is a folder).
    fn failing_writes(dir: &Path) -> Executor {
        let state_dir = StateDir::at(dir);
        crate::state::store::save_snapshot(&state_dir.state_file(), &State::default(), 0).unwrap();
        std::fs::remove_file(state_dir.changes_file()).unwrap();
        std::fs::create_dir(state_dir.changes_file()).unwrap();
        executor(dir)
    }

    fn executor(dir: &Path) -> Executor {
        let state_dir = StateDir::at(dir);
        let config = Arc::new(Config::default());
        let tools = Tools {
            policy: Policy::new(&config.policy).unwrap(),
            config,
            repo: dir.to_owned(),
            state_dir: state_dir.clone(),
            target: "main".into(),
            orch_exe: "orch".into(),
        };
        let (tx, _rx) = mpsc::unbounded_channel();
        let log = EventLog::open(&state_dir.events_file()).unwrap();
        Executor::new(tools, tx, log, Box::new(|_| {}), (State::default(), 0))
    }

    #[test]
    fn a_batch_whose_line_cannot_be_written_is_not_carried_out() {
        let dir = tempfile::tempdir().unwrap();
        let mut exec = failing_writes(dir.path());
        let mut state = State::default();
        let a = FullId::parse("A").unwrap();
        state.items.insert(a.clone(), ItemState::new(Status::Ready));
        let emit = || Effect::Emit {
            id: None,
            kind: EventKind::RunStopping { agents: 0 },
        };
        exec.carry_out(
            vec![Effect::Persist, emit()],
            Touched {
                ids: [a].into(),
                all: false,
            },
            &state,
        );
        // Nor is a later one, whatever it holds.
        exec.carry_out(vec![emit()], Touched::default(), &state);
        let events = crate::state::events::read_all(&StateDir::at(dir.path()).events_file());
        assert!(events.unwrap_or_default().is_empty());
        // The safety net for untouched items stays quiet: it is no bug.
        assert!(exec.flush(&state, Durable::Snapshot).is_err());
    }

    #[test]
    fn the_first_change_without_a_snapshot_that_lines_follow_is_a_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let state_file = StateDir::at(dir.path()).state_file();
        for old in [
            None,
            Some(r#"{"schema": 1, "items": {"B": {"status": "merged"}}}"#),
        ] {
            if let Some(old) = old {
                std::fs::write(&state_file, old).unwrap();
            }
            let mut exec = executor(dir.path());
            let mut state = crate::state::store::load(&state_file)
                .unwrap()
                .unwrap_or_default();
            let a = FullId::parse("A").unwrap();
            state.items.insert(a.clone(), ItemState::new(Status::Ready));
            let touched = Touched {
                ids: [a].into(),
                all: false,
            };
            exec.carry_out(vec![Effect::Persist], touched, &state);
            assert!(!exec.failed());
            // Read as a crash right now would leave it.
            assert_eq!(crate::state::store::load(&state_file).unwrap(), Some(state));
            std::fs::remove_file(&state_file).unwrap();
        }
    }
}
