//! The run's loop: gather inputs, let the core decide, carry out its effects.
//!
//! ```text
//!   signals ──┐
//!   inbox ────┤   ┌──────────── Input ─────────────┐
//!   timers ───┼──▶│ RunState::handle (core.rs)     │──▶ Vec<Effect> ──▶ Executor
//!   Msg ◀─────┘   └────────────────────────────────┘                     │
//!     ▲                                                                  │
//!     └───────── provisioned, exited, collected, merged ◀────────────────┘
//! ```
//!
//! One task (`tokio` current-thread runtime) owns the core; the executor's
//! helpers talk back with [`Msg`]s. Each turn: poll the inbox and adopted
//! supervisors, hand every input to the core, end the batch with
//! [`Input::Tick`], write the state if a write is due, and stop once the
//! core says the run is done. A failed state write or event append ends the
//! run (state first, so that what the run knew survives); agents at work go
//! on and the next run adopts them.
//!
//! Durability: `state.json` is written whole, at most every
//! `FLUSH_INTERVAL` while it changes (a burst of transitions costs one
//! write), and always at the start and the end. It may lag the run folders;
//! on start `recovery.rs` rebuilds what it missed from `runs/<id>/<n>/` and
//! git. Agents run under supervisors in their own sessions, so killing the
//! coordinator never kills them; the next run adopts them.
//!
//! The plan file's folder is watched: a save, once a burst of them settles
//! ([`PLAN_DEBOUNCE`]), is read and compared on a blocking thread, and the
//! core gets `Input::PlanChanged` or `Input::PlanRefused` (`replan.rs`
//! decides what a new plan changes). At start the plan's digest is taken,
//! a copy kept in `plans/`, and the change since the last run's plan
//! reported. With `[metrics] listen`, a thread answers scrapes; with
//! `[[notify]]`, a thread drains the outbox; neither is waited on, except
//! the outbox briefly once the run is over ([`NOTIFY_GRACE`]).
//!
//! Decisions recorded in `docs/run.md`; the layering in `docs/architecture.md`.

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use super::core::{Env, Halt, Input, Now, Options, POLL_INTERVAL, RunState};
use super::executor::{Durable, Executor, Msg, Sink, Tools};
use super::recovery;
use super::replan::{NewPlan, PlanRead};
use crate::config::Config;
use crate::git::GitError;
use crate::lifecycle::Status;
use crate::metrics::Metrics;
use crate::plan::Plan;
use crate::state::events::{EventKind, EventLog, KeptBranch};
use crate::state::lock::{self, LockError, RunLock};
use crate::state::model::{RunRecord, Timestamp};
use crate::state::{StateDir, StateError};

/// The plan file a run reads, as it was read.
#[derive(Debug, Clone)]
pub struct PlanSource {
    /// Where it is (watched for changes during the run).
    pub path: PathBuf,
    /// How messages name it (`plan.toml:3:7: ...`).
    pub shown: PathBuf,
    /// Its bytes when `plan` was built from them.
    pub bytes: Vec<u8>,
}

/// How long the end of a run waits for notification tries that fall due
/// meanwhile; every delivery not tried yet (`run.finished` among them) gets
/// its first try whatever the grace, and later ones wait in the outbox for
/// the next run.
pub const NOTIFY_GRACE: Duration = Duration::from_secs(10);

/// How long a burst of saves of the plan file is let settle before it is read.
pub const PLAN_DEBOUNCE: Duration = Duration::from_millis(300);

/// Everything a run needs.
#[derive(Debug)]
pub struct Setup {
    pub plan: Arc<Plan>,
    /// The plan's file: its digest goes into `run.started` and a copy into
    /// `plans/`; while the run is live, saving it changes the plan. `None`
    /// for a plan that comes from no file.
    pub plan_source: Option<PlanSource>,
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
    /// The target lost a commit orch had merged: moved under orch.
    #[error(
        "target branch `{target}` was moved under orch and no longer contains {lost}, which orch merged; orch stopped starting and merging tasks (the commit is kept as `{backup}`)"
    )]
    TargetRewound {
        target: String,
        lost: String,
        backup: String,
    },
    #[error(transparent)]
    Git(#[from] GitError),
    #[error(transparent)]
    Policy(#[from] crate::merge_queue::policy::BadGlob),
    #[error(transparent)]
    Notify(#[from] crate::notifications::SecretError),
    /// `[metrics] listen` names an address this machine cannot listen on.
    #[error("cannot serve metrics on `{addr}` (`[metrics] listen`)")]
    MetricsListen {
        addr: std::net::SocketAddr,
        #[source]
        source: io::Error,
    },
}

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
        let mut driver = Driver::start(setup, sink)?;
        driver.run().await
    })
}

/// The longest a run waits for git an earlier run left running.
const STRAY_GIT_WAIT: Duration = Duration::from_secs(30);

struct Driver {
    core: RunState,
    exec: Executor,
    rx: mpsc::UnboundedReceiver<Msg>,
    tx: mpsc::UnboundedSender<Msg>,
    started: Instant,
    _lock: RunLock,
    _watcher: Option<notify::RecommendedWatcher>,
    /// The plan file and the watch on its folder, while plan changes apply.
    plan_watch: Option<PlanWatch>,
}

/// The plan file being watched for saves.
struct PlanWatch {
    source: PlanSource,
    rules: crate::plan::Rules,
    _watcher: Option<notify::RecommendedWatcher>,
    /// When to read the file again (a save was seen).
    due: Option<Instant>,
    /// A read is under way on a blocking thread.
    reading: bool,
    /// The digest of the last plan refused, so that it is refused once.
    refused: Option<String>,
}

impl Driver {
    fn start(setup: Setup, sink: Sink) -> Result<Driver, RunError> {
        let dir = setup.state_dir.clone();
        let io_err = |path: PathBuf| move |source| RunError::Io { path, source };
        std::fs::create_dir_all(dir.inbox()).map_err(io_err(dir.path().to_owned()))?;
        std::fs::create_dir_all(dir.runs()).map_err(io_err(dir.path().to_owned()))?;
        let lock = lock::acquire(dir.path())?;
        let log = EventLog::open(&dir.events_file()).map_err(io_err(dir.events_file()))?;
        let (state, seq) =
            crate::state::store::load_with_seq(&dir.state_file())?.unwrap_or_default();
        // A coordinator killed while its git ran left that git running:
        // wait for it before reading or moving anything it may be changing.
        if state.run.as_ref().is_some_and(|r| r.finished.is_none()) {
            let roots = [
                setup.repo_root.clone(),
                crate::config::worktree_root(&setup.repo_root, &setup.config.git.worktree_root),
            ];
            let strays = crate::git::cmd::wait_for_strays(&roots, STRAY_GIT_WAIT);
            if strays > 0 {
                tracing::info!(strays, "waited for git an earlier run left running");
            }
        }
        if state.schema > crate::state::SCHEMA {
            return Err(StateError::NewerSchema {
                path: dir.state_file(),
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
        let config = Arc::new(setup.config);
        let policy = crate::merge_queue::policy::Policy::new(&config.policy)?;
        let (tx, rx) = mpsc::unbounded_channel();
        let watcher = watch_inbox(&dir.inbox(), tx.clone());
        let version = setup.plan_source.as_ref().map(|source| {
            plan_version(
                source,
                &setup.plan,
                &state,
                &dir,
                &setup.repo_root,
                target_tip,
                &config.git.branch_prefix,
            )
        });
        let tools = Tools {
            config: Arc::clone(&config),
            repo: setup.repo_root.clone(),
            state_dir: dir.clone(),
            target: setup.target.clone(),
            orch_exe: setup.orch_exe,
            policy,
        };
        let mut exec = Executor::new(tools, tx.clone(), log, sink, (state.clone(), seq));
        if let Some(addr) = config.metrics.listen {
            let listener = std::net::TcpListener::bind(addr)
                .map_err(|source| RunError::MetricsListen { addr, source })?;
            let mut metrics = Metrics::new(Arc::clone(&setup.plan));
            // The served numbers start from the whole log, as `orch metrics` does.
            for event in crate::state::events::read_all(&dir.events_file()).unwrap_or_default() {
                metrics.observe(&event);
            }
            metrics.set_state(Some(&state));
            metrics.go_live();
            let metrics = Arc::new(std::sync::Mutex::new(metrics));
            crate::metrics::serve(listener, Arc::clone(&metrics));
            exec.with_metrics(metrics);
        }
        if !config.notify.is_empty() {
            let destinations = config
                .notify
                .iter()
                .enumerate()
                .map(|(n, c)| crate::notifications::Destination::from_config(n, c))
                .collect::<Result<Vec<_>, _>>()?;
            let outbox = crate::notifications::Outbox::at(&dir.outbox());
            let worker = crate::notifications::Worker::start(outbox.clone(), destinations.clone());
            exec.with_notify(super::executor::Notify {
                destinations,
                outbox,
                worker,
            });
        }
        let merge_only = setup.options.merge_only;
        let sandbox = crate::runner::confine::Setup::probe(&config.sandbox);
        let mut env = Env::new(
            Arc::clone(&setup.plan),
            Arc::clone(&config),
            setup.repo_root.clone(),
            dir.clone(),
            setup.target.clone(),
            setup.options,
        );
        env.plan_digest = version.as_ref().map(|v| v.digest.clone());
        env.sandbox = sandbox;
        let now = Now::real();
        let mut core = RunState::new(
            env,
            state,
            Some(target_tip.to_string()),
            fastrand::Rng::new(),
        );
        core.set_run_record(RunRecord {
            pid: std::process::id(),
            started: Timestamp::at(now.wall),
            finished: None,
            plan: version.as_ref().map(|v| v.digest.clone()),
        });
        if let Err(e) = crate::git::worktree::prune(&setup.repo_root) {
            tracing::warn!(error = %e, "cannot prune worktrees");
        }
        // A move of the target's checkout cut short is finished before
        // anything reads the target (a merge it completes is then found).
        match crate::merge_queue::checkout::resume(&setup.repo_root, &dir) {
            Ok(resumed) => tracing::debug!(?resumed, "the target's checkout"),
            Err(e) => tracing::warn!(error = %e, "cannot finish moving the target's checkout"),
        }
        let facts = recovery::gather(
            &setup.plan,
            core.state(),
            &dir,
            &setup.repo_root,
            &setup.target,
        );
        let effects = core.start(facts, now);
        exec.carry_out(effects, core.take_touched(), core.state());
        if let Some(version) = version
            && !exec.failed()
        {
            let effects = core.plan_version(version, now);
            exec.carry_out(effects, core.take_touched(), core.state());
        }
        if let Some(e) = exec.take_flush_error() {
            return Err(e.into());
        }
        let plan_watch = setup
            .plan_source
            .filter(|_| !merge_only)
            .map(|source| PlanWatch {
                _watcher: watch_plan(&source.path, tx.clone()),
                source,
                rules: config.plan_rules(),
                due: None,
                reading: false,
                refused: None,
            });
        Ok(Driver {
            core,
            exec,
            rx,
            tx,
            started: Instant::now(),
            _lock: lock,
            _watcher: watcher,
            plan_watch,
        })
    }

    async fn run(&mut self) -> Result<Summary, RunError> {
        let io_err = |source| RunError::Io {
            path: self.core.env().state_dir.path().to_owned(),
            source,
        };
        let mut sigint = signal(SignalKind::interrupt()).map_err(io_err)?;
        let mut sigterm = signal(SignalKind::terminate()).map_err(io_err)?;
        // The run's record (pid, start, target) goes to disk before anything else.
        self.exec.mark_dirty();
        self.exec.flush(self.core.state(), Durable::Snapshot)?;
        loop {
            self.maybe_read_plan();
            for input in self.exec.poll(POLL_INTERVAL) {
                self.feed(input)?;
            }
            self.feed(Input::Tick)?;
            self.exec.flush(self.core.state(), Durable::Due)?;
            if let Some((path, source)) = self.exec.take_log_error() {
                // The state is written first, so that what the run knew survives.
                self.exec.mark_dirty();
                if let Err(e) = self.exec.flush(self.core.state(), Durable::Snapshot) {
                    tracing::warn!(error = %e, "cannot write the state after the event log failed");
                }
                return Err(RunError::Io { path, source });
            }
            let now = Now::real();
            if self.core.done(now) {
                break;
            }
            let mut wake = self.core.next_wake(now);
            if let Some(due) = self.exec.flush_due() {
                wake = wake.min(due);
            }
            if let Some(due) = self.plan_watch.as_ref().and_then(|w| w.due) {
                wake = wake.min(due);
            }
            tokio::select! {
                msg = self.rx.recv() => {
                    if let Some(msg) = msg {
                        self.receive(msg)?;
                    }
                }
                _ = tokio::time::sleep_until(tokio::time::Instant::from_std(wake)) => {}
                _ = sigint.recv() => self.feed(Input::Signal)?,
                _ = sigterm.recv() => self.feed(Input::Signal)?,
            }
            while let Ok(msg) = self.rx.try_recv() {
                self.receive(msg)?;
            }
        }
        let summary = self.finish()?;
        match self.core.halt() {
            Some(Halt::TargetGone { last }) => Err(RunError::TargetGone {
                target: self.core.env().target.clone(),
                last: last.clone(),
            }),
            Some(Halt::TargetRewound { lost, backup }) => Err(RunError::TargetRewound {
                target: self.core.env().target.clone(),
                lost: lost.clone(),
                backup: backup.clone(),
            }),
            None => Ok(summary),
        }
    }

    fn receive(&mut self, msg: Msg) -> Result<(), StateError> {
        match msg {
            Msg::Input(input) => self.feed(*input)?,
            Msg::InboxChanged => self.exec.inbox_changed(),
            Msg::PlanSaved => {
                if let Some(watch) = self.plan_watch.as_mut() {
                    watch.due = Some(Instant::now() + PLAN_DEBOUNCE);
                }
            }
            Msg::PlanRead(read) => {
                let read = *read;
                let Some(watch) = self.plan_watch.as_mut() else {
                    return Ok(());
                };
                watch.reading = false;
                match read {
                    PlanRead::Unchanged => {}
                    PlanRead::Refused { digest, errors } => {
                        if watch.refused.as_ref() != Some(&digest) {
                            watch.refused = Some(digest);
                            self.feed(Input::PlanRefused { errors })?;
                        }
                    }
                    PlanRead::Changed(new) => {
                        watch.refused = None;
                        self.feed(Input::PlanChanged(new))?;
                        self.exec.set_plan(Arc::clone(&self.core.env().plan));
                    }
                }
            }
        }
        Ok(())
    }

    /// Reads the plan file on a blocking thread once saves have settled.
    fn maybe_read_plan(&mut self) {
        let Some(watch) = self.plan_watch.as_mut() else {
            return;
        };
        if watch.reading || watch.due.is_none_or(|due| Instant::now() < due) {
            return;
        }
        if self.core.stopping().is_some() {
            return;
        }
        watch.due = None;
        watch.reading = true;
        let source = watch.source.clone();
        let rules = watch.rules.clone();
        let current = Arc::clone(&self.core.env().plan);
        let digest = self.core.env().plan_digest.clone().unwrap_or_default();
        let dir = self.core.env().state_dir.clone();
        let tx = self.tx.clone();
        tokio::task::spawn_blocking(move || {
            let read = read_plan(&source, &rules, &current, digest, &dir);
            let _ = tx.send(Msg::PlanRead(Box::new(read)));
        });
    }

    /// Hands `input` to the core and carries out what it decided; a
    /// state write that failed ends the run before another input is fed.
    fn feed(&mut self, input: Input) -> Result<(), StateError> {
        let effects = self.core.handle(input, Now::real());
        let touched = self.core.take_touched();
        self.exec.carry_out(effects, touched, self.core.state());
        match self.exec.take_flush_error() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn finish(&mut self) -> Result<Summary, RunError> {
        self.core.finish(Now::real());
        self.exec.mark_dirty();
        self.exec.flush(self.core.state(), Durable::Snapshot)?;
        let summary = Summary {
            counts: self.core.counts(),
            interrupted: self.core.stopping().is_some(),
            attempts: self.core.attempts_started(),
            elapsed: self.started.elapsed(),
        };
        let kind = EventKind::RunFinished {
            elapsed_ms: summary.elapsed.as_millis() as u64,
            attempts: summary.attempts,
            interrupted: summary.interrupted,
            counts: summary.counts.clone(),
            cpu_ms: crate::process::own_cpu_time().map(|d| d.as_millis() as u64),
            peak_rss_kb: crate::process::own_peak_rss_kb(),
            state_writes: self.exec.state_writes,
            state_bytes: self.exec.state_bytes,
        };
        self.exec.emit(None, kind);
        // After a Ctrl-C only first tries are made: the person is waiting.
        let grace = if summary.interrupted {
            Duration::ZERO
        } else {
            NOTIFY_GRACE
        };
        self.exec.finish_notify(grace);
        Ok(summary)
    }
}

/// Reads the plan file saved during the run and compares it with the plan
/// running. Blocking.
fn read_plan(
    source: &PlanSource,
    rules: &crate::plan::Rules,
    current: &Plan,
    current_digest: String,
    dir: &StateDir,
) -> PlanRead {
    let bytes = match std::fs::read(&source.path) {
        Ok(bytes) => bytes,
        // An editor that saves by renaming leaves no file for an instant;
        // the rename that follows is another change.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return PlanRead::Unchanged,
        Err(source_err) => {
            let error = crate::plan::PlanError::Read {
                path: source.shown.clone(),
                source: source_err,
            };
            return PlanRead::Refused {
                digest: String::new(),
                errors: vec![crate::text::error_chain(&error)],
            };
        }
    };
    let digest = crate::plan::digest(&bytes);
    if digest == current_digest {
        return PlanRead::Unchanged;
    }
    let plan = match crate::plan::from_bytes(&source.shown, &bytes, rules) {
        Ok(plan) => plan,
        Err(e) => {
            let mut errors = e.detail_lines();
            if errors.is_empty() {
                errors.push(crate::text::error_chain(&e));
            }
            return PlanRead::Refused { digest, errors };
        }
    };
    keep_copy(dir, &source.path, &digest, &bytes);
    let diff = crate::plan::diff::diff(current, &plan);
    PlanRead::Changed(Box::new(NewPlan {
        plan: Arc::new(plan),
        digest,
        from: Some(current_digest).filter(|d| !d.is_empty()),
        diff: Some(diff),
        kept: Vec::new(),
    }))
}

/// Keeps a copy of a plan file under its digest; a failure only costs
/// later diffs, so it is logged.
fn keep_copy(dir: &StateDir, path: &std::path::Path, digest: &str, bytes: &[u8]) {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .filter(|e| *e == "json")
        .unwrap_or("toml");
    let copy = dir.plan_copy(digest, ext);
    if copy.exists() {
        return;
    }
    let written = std::fs::create_dir_all(dir.plans())
        .and_then(|()| crate::fsio::write_atomically(&copy, bytes));
    if let Err(e) = written {
        tracing::warn!(error = %e, path = %copy.display(), "cannot keep a copy of the plan");
    }
}

/// Works out, at start, how the plan differs from the one the last run
/// ran (from the copy it kept), and which tasks gone from the plan left
/// work on their branches. Blocking.
fn plan_version(
    source: &PlanSource,
    plan: &Arc<Plan>,
    state: &crate::state::State,
    dir: &StateDir,
    repo: &std::path::Path,
    target_tip: crate::git::refs::Oid,
    branch_prefix: &str,
) -> NewPlan {
    let digest = crate::plan::digest(&source.bytes);
    keep_copy(dir, &source.path, &digest, &source.bytes);
    let from = state.run.as_ref().and_then(|r| r.plan.clone());
    let changed = from.as_ref().is_some_and(|f| *f != digest);
    let diff = from
        .as_ref()
        .filter(|_| changed)
        .and_then(|f| dir.find_plan_copy(f))
        .and_then(|copy| {
            let bytes = std::fs::read(&copy).ok()?;
            crate::plan::from_bytes(&copy, &bytes, &crate::plan::Rules::default()).ok()
        })
        .map(|old| crate::plan::diff::diff(&old, plan));
    let mut kept = Vec::new();
    if changed {
        for (id, s) in &state.items {
            if plan.lookup(id.as_str()).is_some() || s.status == Status::Merged {
                continue;
            }
            let branch = s
                .branch
                .clone()
                .unwrap_or_else(|| format!("{branch_prefix}{id}"));
            let Ok(Some(tip)) = crate::git::refs::branch_tip(repo, &branch) else {
                continue;
            };
            if !crate::git::refs::is_ancestor(repo, tip, target_tip).unwrap_or(true) {
                kept.push(KeptBranch {
                    id: id.clone(),
                    branch,
                });
            }
        }
    }
    NewPlan {
        plan: Arc::clone(plan),
        digest,
        from: from.filter(|_| changed),
        diff,
        kept,
    }
}

/// Watches the plan file's folder; a change to the file only wakes the
/// loop, which reads it once saves settle ([`PLAN_DEBOUNCE`]).
fn watch_plan(
    path: &std::path::Path,
    tx: mpsc::UnboundedSender<Msg>,
) -> Option<notify::RecommendedWatcher> {
    use notify::Watcher;
    let name = path.file_name()?.to_owned();
    let dir = path.parent()?.to_owned();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event
            && !matches!(event.kind, notify::EventKind::Access(_))
            && event.paths.iter().any(|p| p.file_name() == Some(&name))
        {
            let _ = tx.send(Msg::PlanSaved);
        }
    })
    .ok()?;
    watcher
        .watch(&dir, notify::RecursiveMode::NonRecursive)
        .ok()?;
    Some(watcher)
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
            let _ = tx.send(Msg::InboxChanged);
        }
    })
    .ok()?;
    watcher
        .watch(dir, notify::RecursiveMode::NonRecursive)
        .ok()?;
    Some(watcher)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_summary_with_failed_blocked_or_conflicted_tasks_has_failures() {
        let summary = |status: Status| Summary {
            counts: BTreeMap::from([(Status::Merged, 2), (status, 1)]),
            interrupted: false,
            attempts: 3,
            elapsed: Duration::ZERO,
        };
        assert!(summary(Status::Failed).has_failures());
        assert!(summary(Status::Conflicted).has_failures());
        assert!(!summary(Status::Resolved).has_failures());
    }
}
