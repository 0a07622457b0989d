//! The dashboard's loop: wait, turn what happened into messages, update the
//! app, draw, and carry out the commands `update` returned.
//!
//! ```text
//!   keys, resizes ──┐
//!   notify (state dir, shown log's folder) ──┼─> Events::wait ─> AppState::update ─> ui::render
//!   signals, inbox replies, run end ──┘                      │
//!                                      commands: quit, stop the run,
//!                                      send to the inbox, load a log
//! ```
//!
//! The loop sleeps until something happens. A tick (once a second) runs only
//! while a run is live, to move elapsed times and notice a coordinator that
//! died without a word; with nothing live the dashboard uses no CPU at all.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::SyncSender;
use std::time::{Duration, SystemTime};

use ratatui::crossterm::event::{Event as TermEvent, KeyEventKind};

use crate::dash::app::{AppState, Cmd, Msg};
use crate::dash::event::{Changes, Ev, Events, Reader};
use crate::dash::terminal::Screen;
use crate::plan::{FullId, Plan};
use crate::runner::spec;
use crate::state::inbox::{self, Action};
use crate::state::{StateError, lock};

/// How often a live run's screen is refreshed when nothing else happens.
const TICK: Duration = Duration::from_secs(1);

/// How long to wait for the live run to answer an inbox command.
const REPLY_WAIT: Duration = Duration::from_secs(5);

/// What the dashboard is attached to.
#[derive(Debug)]
pub struct Options {
    pub plan: Arc<Plan>,
    /// The state dir (`.orchestrator/`); it must exist.
    pub state_dir: PathBuf,
    /// `orch run --tui`: a run in this process is behind the dashboard.
    pub in_run: bool,
    /// Whether to use colour (`NO_COLOR` unset).
    pub color: bool,
    /// The agent tasks that pick none run (to show when it is paused).
    pub default_agent: String,
}

/// Why the dashboard ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// The person quit; a run behind it goes on.
    Quit,
    /// The person asked to stop the run behind it too.
    StopRun,
    /// A signal ended it (`orch dash`).
    Signal(i32),
    /// The run behind it ended in a way that needs no more looking at
    /// (stopped by a signal, or failed to start).
    RunClosed,
}

/// A dashboard that could not start or go on.
#[derive(Debug, thiserror::Error)]
pub enum DashError {
    #[error("cannot watch the state dir `{}`", path.display())]
    Watch {
        path: PathBuf,
        #[source]
        source: notify::Error,
    },
    #[error("cannot use the terminal")]
    Terminal(#[source] std::io::Error),
    #[error(transparent)]
    State(#[from] StateError),
}

/// The dashboard, ready to take over the terminal.
pub struct Dashboard {
    events: Events,
    reader: Reader,
    app: AppState,
    state_dir: PathBuf,
    in_run: bool,
}

impl Dashboard {
    /// Reads the state dir and starts watching it.
    pub fn new(options: Options) -> Result<Dashboard, DashError> {
        let events = Events::start(&options.state_dir).map_err(|source| DashError::Watch {
            path: options.state_dir.clone(),
            source,
        })?;
        let mut reader = Reader::new(&options.state_dir);
        let state = reader.state()?;
        let mut app = AppState::new(options.plan, state, SystemTime::now());
        app.in_run = options.in_run;
        app.color = options.color;
        app.default_agent = options.default_agent;
        app.live = lock::holder(&options.state_dir).ok().flatten();
        if let Ok(events) = reader.new_events() {
            app.update(Msg::Events(events));
        }
        Ok(Dashboard {
            events,
            reader,
            app,
            state_dir: options.state_dir,
            in_run: options.in_run,
        })
    }

    /// Returns a sender through which the run behind the dashboard reports its end.
    pub fn sender(&self) -> SyncSender<Ev> {
        self.events.sender()
    }

    /// Takes over the terminal until the person quits; restores it on every way out.
    pub fn run(mut self) -> Result<Exit, DashError> {
        let mut screen = Screen::open().map_err(DashError::Terminal)?;
        let (w, h) = screen.size().map_err(DashError::Terminal)?;
        self.app.update(Msg::Resize(w, h));
        self.events.read_input();
        if !self.in_run {
            self.events.catch_signals().map_err(DashError::Terminal)?;
        }
        let mut cmds = self.app.update(Msg::Tick(SystemTime::now()));
        if let Some(id) = self.app.log.id.clone() {
            cmds.push(Cmd::LoadLog(id, None));
        }
        loop {
            if let Some(exit) = self.carry_out(cmds) {
                return Ok(exit);
            }
            self.app.update(Msg::Tick(SystemTime::now()));
            screen.draw(&self.app).map_err(DashError::Terminal)?;
            let timeout = self.app.live.map(|_| TICK);
            let happened = self.events.wait(timeout);
            cmds = Vec::new();
            if happened.is_empty() {
                self.check_live();
            }
            for ev in happened {
                match ev {
                    Ev::Input(TermEvent::Key(key)) if key.kind != KeyEventKind::Release => {
                        cmds.extend(self.app.update(Msg::Key(key)));
                    }
                    Ev::Input(TermEvent::Resize(w, h)) => {
                        self.app.update(Msg::Resize(w, h));
                    }
                    Ev::Input(_) | Ev::Changed => {}
                    Ev::Signal(sig) => return Ok(Exit::Signal(sig)),
                    Ev::Reply(text) => {
                        self.app.update(Msg::Note(text));
                    }
                    Ev::RunEnded { how, close } => {
                        if close {
                            return Ok(Exit::RunClosed);
                        }
                        self.app.update(Msg::RunEnded(how));
                    }
                }
            }
            cmds.extend(self.refresh(self.events.changes()));
        }
    }

    /// Re-reads what changed; returns the commands the new state asks for.
    fn refresh(&mut self, changes: Changes) -> Vec<Cmd> {
        let mut cmds = Vec::new();
        if changes.events {
            match self.reader.new_events() {
                Ok(events) if !events.is_empty() => {
                    self.app.update(Msg::Events(events));
                }
                Ok(_) => {}
                Err(e) => {
                    self.app
                        .update(Msg::Note(format!("cannot read the event log: {e}")));
                }
            }
        }
        if changes.state {
            match self.reader.state() {
                Ok(state) => cmds.extend(self.app.update(Msg::State(Box::new(state)))),
                Err(e) => {
                    self.app.update(Msg::Note(crate::text::error_chain(&e)));
                }
            }
            self.check_live();
        }
        if changes.log
            && let Some(id) = self.app.log.id.clone()
        {
            cmds.push(Cmd::LoadLog(id, None));
        }
        cmds
    }

    fn check_live(&mut self) {
        let live = lock::holder(&self.state_dir).ok().flatten();
        if live != self.app.live && self.app.run_ended.is_none() {
            self.app.update(Msg::Live(live));
        }
    }

    /// Carries out commands; returns how to end, if one of them ends the dashboard.
    fn carry_out(&mut self, cmds: Vec<Cmd>) -> Option<Exit> {
        let last_log = cmds.iter().rposition(|c| matches!(c, Cmd::LoadLog(..)));
        for (n, cmd) in cmds.into_iter().enumerate() {
            match cmd {
                Cmd::Quit => return Some(Exit::Quit),
                Cmd::StopRun => return Some(Exit::StopRun),
                Cmd::Send(action, id) => self.send(action, id, None),
                Cmd::Reject(id, reason) => self.send(Action::Reject, id, Some(reason)),
                Cmd::LoadLog(id, attempt) if Some(n) == last_log => self.load_log(id, attempt),
                Cmd::LoadLog(..) => {}
            }
        }
        None
    }

    fn send(&mut self, action: Action, id: FullId, reason: Option<String>) {
        let sent = match inbox::send_with(&self.state_dir, action, &id, reason.as_deref()) {
            Ok(path) => path,
            Err(e) => {
                self.app.update(Msg::Note(format!(
                    "cannot send {} `{id}`: {e}",
                    action.as_str()
                )));
                return;
            }
        };
        let tx = self.events.sender();
        std::thread::spawn(move || {
            let text = match inbox::await_reply(&sent, REPLY_WAIT) {
                Ok(Some(reply)) if reply.ok => reply.message,
                Ok(Some(reply)) => format!("refused: {}", reply.message),
                Ok(None) => format!(
                    "{} `{id}` sent; the run has not answered yet",
                    action.as_str()
                ),
                Err(e) => format!("{} `{id}`: cannot read the answer: {e}", action.as_str()),
            };
            let _ = tx.send(Ev::Reply(text));
        });
    }

    fn load_log(&mut self, id: FullId, attempt: Option<u32>) {
        let attempt = attempt.or_else(|| {
            let s = self.app.state.items.get(&id)?;
            s.attempts.last().map(|a| a.number)
        });
        let Some(attempt) = attempt else {
            self.events.watch_log(None);
            self.app.update(Msg::Log {
                id,
                attempt: 0,
                lines: Vec::new(),
            });
            return;
        };
        let dir = crate::state::StateDir::at(&self.state_dir).run_dir(&id, attempt);
        self.events.watch_log(Some(&dir));
        let lines = match Reader::log_tail(&dir.join(spec::LOG)) {
            Ok(lines) => lines,
            Err(e) => vec![format!("cannot read the log: {e}")],
        };
        self.app.update(Msg::Log { id, attempt, lines });
    }
}
