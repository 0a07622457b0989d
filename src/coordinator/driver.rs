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
//! Decisions recorded in `docs/run.md`; the layering in `docs/architecture.md`.

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use super::core::{Env, Halt, Input, Now, Options, POLL_INTERVAL, RunState};
use super::executor::{Executor, Msg, Sink, Tools};
use super::recovery;
use crate::config::Config;
use crate::git::GitError;
use crate::lifecycle::Status;
use crate::plan::Plan;
use crate::state::events::{EventKind, EventLog};
use crate::state::lock::{self, LockError, RunLock};
use crate::state::model::{RunRecord, Timestamp};
use crate::state::{StateDir, StateError};

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

struct Driver {
    core: RunState,
    exec: Executor,
    rx: mpsc::UnboundedReceiver<Msg>,
    started: Instant,
    _lock: RunLock,
    _watcher: Option<notify::RecommendedWatcher>,
}

impl Driver {
    fn start(setup: Setup, sink: Sink) -> Result<Driver, RunError> {
        let dir = setup.state_dir.clone();
        let io_err = |path: PathBuf| move |source| RunError::Io { path, source };
        std::fs::create_dir_all(dir.inbox()).map_err(io_err(dir.path().to_owned()))?;
        std::fs::create_dir_all(dir.runs()).map_err(io_err(dir.path().to_owned()))?;
        let lock = lock::acquire(dir.path())?;
        let log = EventLog::open(&dir.events_file()).map_err(io_err(dir.events_file()))?;
        let state = dir.load_state()?.unwrap_or_default();
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
        let tools = Tools {
            config: Arc::clone(&config),
            repo: setup.repo_root.clone(),
            state_dir: dir.clone(),
            target: setup.target.clone(),
            orch_exe: setup.orch_exe,
            policy,
        };
        let mut exec = Executor::new(tools, tx, log, sink);
        let sandbox = crate::runner::confine::Setup::probe(&config.sandbox);
        let mut env = Env::new(
            Arc::clone(&setup.plan),
            config,
            setup.repo_root.clone(),
            dir.clone(),
            setup.target.clone(),
            setup.options,
        );
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
        });
        if let Err(e) = crate::git::worktree::prune(&setup.repo_root) {
            tracing::warn!(error = %e, "cannot prune worktrees");
        }
        let facts = recovery::gather(
            &setup.plan,
            core.state(),
            &dir,
            &setup.repo_root,
            &setup.target,
        );
        let effects = core.start(facts, now);
        exec.carry_out(effects);
        Ok(Driver {
            core,
            exec,
            rx,
            started: Instant::now(),
            _lock: lock,
            _watcher: watcher,
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
        self.exec.flush(self.core.state(), true)?;
        loop {
            for input in self.exec.poll(POLL_INTERVAL) {
                self.feed(input);
            }
            self.feed(Input::Tick);
            self.exec.flush(self.core.state(), false)?;
            if let Some((path, source)) = self.exec.take_log_error() {
                // The state is written first, so that what the run knew survives.
                self.exec.mark_dirty();
                if let Err(e) = self.exec.flush(self.core.state(), true) {
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
            tokio::select! {
                msg = self.rx.recv() => {
                    if let Some(msg) = msg {
                        self.receive(msg);
                    }
                }
                _ = tokio::time::sleep_until(tokio::time::Instant::from_std(wake)) => {}
                _ = sigint.recv() => self.feed(Input::Signal),
                _ = sigterm.recv() => self.feed(Input::Signal),
            }
            while let Ok(msg) = self.rx.try_recv() {
                self.receive(msg);
            }
        }
        let summary = self.finish()?;
        match self.core.halt() {
            Some(Halt::TargetGone { last }) => Err(RunError::TargetGone {
                target: self.core.env().target.clone(),
                last: last.clone(),
            }),
            None => Ok(summary),
        }
    }

    fn receive(&mut self, msg: Msg) {
        match msg {
            Msg::Input(input) => self.feed(*input),
            Msg::InboxChanged => self.exec.inbox_changed(),
        }
    }

    fn feed(&mut self, input: Input) {
        let effects = self.core.handle(input, Now::real());
        self.exec.carry_out(effects);
    }

    fn finish(&mut self) -> Result<Summary, RunError> {
        self.core.finish(Now::real());
        self.exec.mark_dirty();
        self.exec.flush(self.core.state(), true)?;
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
        Ok(summary)
    }
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
