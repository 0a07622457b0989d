//! Where the dashboard's messages come from: terminal input, file-system
//! notifications on the state dir, signals, and a slow tick.
//!
//! Everything arrives on one channel as an [`Ev`]. Input is never dropped.
//! Notifications only raise a flag per kind of file and send a wake-up
//! with `try_send`; a full channel drops the wake-up but never the flag, so
//! a burst of writes collapses into one re-read ([`Events::wait`] waits
//! [`DEBOUNCE`] after the first before returning). The notify callback
//! never blocks (STYLE.md §3).
//!
//! [`Reader`] reads what the dashboard shows: the whole `state.json`, the
//! lines `events.jsonl` gained since the last read, and the tail of an
//! agent log. It only reads.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};

use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use ratatui::crossterm::event as term;

use crate::state::events::{self, Event};
use crate::state::{State, StateError, changes, store};

/// How long a burst of file changes may go on before it is read.
pub const DEBOUNCE: Duration = Duration::from_millis(50);

/// How long the input thread waits for a key before checking whether to stop.
const INPUT_POLL: Duration = Duration::from_millis(500);

/// How much of an agent log is read for the dashboard.
const LOG_BYTES: u64 = 256 * 1024;

/// How many lines of it are kept.
const LOG_LINES: usize = 2000;

/// Something that happened.
#[derive(Debug)]
pub enum Ev {
    Input(term::Event),
    /// Files changed; see [`Events::changes`].
    Changed,
    /// A signal asked the dashboard to end (`orch dash` only).
    Signal(i32),
    /// The live run answered an inbox command.
    Reply(String),
    /// `orch run --tui`: the run in this process ended.
    RunEnded {
        how: String,
        close: bool,
    },
}

/// Which files changed since the last look.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Changes {
    pub state: bool,
    pub events: bool,
    pub log: bool,
}

impl Changes {
    pub fn any(self) -> bool {
        self.state || self.events || self.log
    }
}

#[derive(Debug, Default)]
struct Flags {
    state: AtomicBool,
    events: AtomicBool,
    log: AtomicBool,
}

/// The merged source of [`Ev`]s.
pub struct Events {
    tx: SyncSender<Ev>,
    rx: Receiver<Ev>,
    flags: Arc<Flags>,
    watcher: RecommendedWatcher,
    log_dir: Option<PathBuf>,
    stop: Arc<AtomicBool>,
}

impl Events {
    /// Starts watching `state_dir` and reading terminal input.
    pub fn start(state_dir: &Path) -> notify::Result<Events> {
        let (tx, rx) = sync_channel(1024);
        let flags = Arc::new(Flags::default());
        let watcher = {
            let flags = Arc::clone(&flags);
            let tx = tx.clone();
            let state_dir = state_dir.to_owned();
            notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
                let Ok(event) = res else { return };
                if matches!(event.kind, EventKind::Access(_)) {
                    return;
                }
                let mut woke = false;
                for path in &event.paths {
                    let flag = match path.file_name().and_then(|n| n.to_str()) {
                        Some(store::FILE_NAME | changes::FILE_NAME) => &flags.state,
                        Some(events::FILE_NAME) => &flags.events,
                        _ if path.parent() != Some(state_dir.as_path()) => &flags.log,
                        _ => continue,
                    };
                    flag.store(true, Ordering::Release);
                    woke = true;
                }
                if woke {
                    // A full channel already holds a wake-up; a closed one
                    // means the dashboard is gone.
                    let _ = tx.try_send(Ev::Changed);
                }
            })?
        };
        let mut events = Events {
            tx,
            rx,
            flags,
            watcher,
            log_dir: None,
            stop: Arc::new(AtomicBool::new(false)),
        };
        events
            .watcher
            .watch(state_dir, RecursiveMode::NonRecursive)?;
        Ok(events)
    }

    /// Starts the thread that reads keys and resizes from the terminal.
    pub fn read_input(&self) {
        let tx = self.tx.clone();
        let stop = Arc::clone(&self.stop);
        std::thread::spawn(move || {
            while !stop.load(Ordering::Acquire) {
                match term::poll(INPUT_POLL) {
                    Ok(true) => match term::read() {
                        Ok(ev) => {
                            if tx.send(Ev::Input(ev)).is_err() {
                                return;
                            }
                        }
                        Err(_) => return,
                    },
                    Ok(false) => {}
                    Err(_) => return,
                }
            }
        });
    }

    /// Turns SIGINT, SIGTERM and SIGHUP into [`Ev::Signal`] (for `orch dash`,
    /// where no run in this process handles them).
    pub fn catch_signals(&self) -> io::Result<()> {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])?;
        let tx = self.tx.clone();
        std::thread::spawn(move || {
            if let Some(sig) = signals.forever().next() {
                let _ = tx.send(Ev::Signal(sig));
            }
        });
        Ok(())
    }

    /// Returns a sender for events from elsewhere (inbox replies, the run).
    pub fn sender(&self) -> SyncSender<Ev> {
        self.tx.clone()
    }

    /// Watches the folder of the log being shown instead of the previous one.
    pub fn watch_log(&mut self, dir: Option<&Path>) {
        if self.log_dir.as_deref() == dir {
            return;
        }
        if let Some(old) = self.log_dir.take() {
            let _ = self.watcher.unwatch(&old);
        }
        if let Some(dir) = dir
            && self.watcher.watch(dir, RecursiveMode::NonRecursive).is_ok()
        {
            self.log_dir = Some(dir.to_owned());
        }
    }

    /// Waits until something happens or `timeout` passes (forever when
    /// `None`), and returns what happened. A file change is held back for
    /// [`DEBOUNCE`] so that a burst is read once.
    pub fn wait(&self, timeout: Option<Duration>) -> Vec<Ev> {
        let first = match timeout {
            Some(t) => match self.rx.recv_timeout(t) {
                Ok(ev) => ev,
                Err(RecvTimeoutError::Timeout) => return Vec::new(),
                Err(RecvTimeoutError::Disconnected) => return Vec::new(),
            },
            None => match self.rx.recv() {
                Ok(ev) => ev,
                Err(_) => return Vec::new(),
            },
        };
        let mut out = vec![first];
        if matches!(out[0], Ev::Changed) {
            let until = Instant::now() + DEBOUNCE;
            while let Some(left) = until.checked_duration_since(Instant::now()) {
                match self.rx.recv_timeout(left) {
                    Ok(ev) => out.push(ev),
                    Err(_) => break,
                }
            }
        }
        out.extend(self.rx.try_iter());
        out
    }

    /// Returns which files changed since the last call, and clears the flags.
    pub fn changes(&self) -> Changes {
        Changes {
            state: self.flags.state.swap(false, Ordering::AcqRel),
            events: self.flags.events.swap(false, Ordering::AcqRel),
            log: self.flags.log.swap(false, Ordering::AcqRel),
        }
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

/// Sends a wake-up without blocking (for senders outside the dashboard).
pub fn nudge(tx: &SyncSender<Ev>, ev: Ev) {
    match tx.try_send(ev) {
        Ok(()) | Err(TrySendError::Disconnected(_)) => {}
        Err(TrySendError::Full(ev)) => {
            let _ = tx.send(ev);
        }
    }
}

/// Reads the state dir's files into messages.
#[derive(Debug)]
pub struct Reader {
    dir: PathBuf,
    events_offset: u64,
    partial: Vec<u8>,
}

impl Reader {
    pub fn new(dir: &Path) -> Reader {
        Reader {
            dir: dir.to_owned(),
            events_offset: 0,
            partial: Vec::new(),
        }
    }

    /// Reads `state.json` (an empty state when there is none yet).
    pub fn state(&self) -> Result<State, StateError> {
        Ok(store::load(&self.dir.join(store::FILE_NAME))?.unwrap_or_default())
    }

    /// Returns the events appended since the last call (all of them the
    /// first time). A torn last line waits for the rest of it.
    pub fn new_events(&mut self) -> io::Result<Vec<Event>> {
        let mut file = match File::open(self.dir.join(events::FILE_NAME)) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let len = file.metadata()?.len();
        if len < self.events_offset {
            // Replaced by a shorter file: start over.
            self.events_offset = 0;
            self.partial.clear();
        }
        file.seek(SeekFrom::Start(self.events_offset))?;
        let mut bytes = std::mem::take(&mut self.partial);
        let read = file.read_to_end(&mut bytes)?;
        self.events_offset += read as u64;
        let complete = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        self.partial = bytes.split_off(complete);
        Ok(bytes
            .split(|b| *b == b'\n')
            .filter_map(|line| serde_json::from_slice::<Event>(line).ok())
            .collect())
    }

    /// Returns the last lines of an agent log, cleaned for the screen.
    pub fn log_tail(path: &Path) -> io::Result<Vec<String>> {
        let mut file = match File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let len = file.metadata()?.len();
        let start = len.saturating_sub(LOG_BYTES);
        file.seek(SeekFrom::Start(start))?;
        let mut bytes = Vec::new();
        file.take(LOG_BYTES).read_to_end(&mut bytes)?;
        if start > 0 {
            // The first line was cut by the seek.
            let cut = bytes.iter().position(|b| *b == b'\n').map_or(0, |i| i + 1);
            bytes.drain(..cut);
        }
        if bytes.last() == Some(&b'\n') {
            bytes.pop();
        }
        let mut lines: Vec<String> = bytes.split(|b| *b == b'\n').map(screen_line).collect();
        if lines.len() == 1 && lines[0].is_empty() {
            lines.clear();
        }
        if lines.len() > LOG_LINES {
            lines.drain(..lines.len() - LOG_LINES);
        }
        Ok(lines)
    }
}

/// Makes one line of program output safe to draw: what a carriage return
/// overwrote is dropped, tabs become spaces, escape sequences and other
/// control characters go.
fn screen_line(line: &[u8]) -> String {
    let shown = line
        .rsplit(|b| *b == b'\r')
        .find(|s| !s.is_empty())
        .unwrap_or_default();
    let mut spaced = Vec::with_capacity(shown.len());
    for b in shown {
        match b {
            b'\t' => spaced.extend_from_slice(b"    "),
            b => spaced.push(*b),
        }
    }
    let plain = strip_ansi_escapes::strip(&spaced);
    String::from_utf8_lossy(&plain)
        .chars()
        .filter(|c| !c.is_control())
        .collect()
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn events_are_read_incrementally_and_torn_lines_wait() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(events::FILE_NAME);
        let mut log = events::EventLog::open(&path).unwrap();
        log.append(None, events::EventKind::RunStopping { agents: 0 })
            .unwrap();
        let mut reader = Reader::new(dir.path());
        assert_eq!(reader.new_events().unwrap().len(), 1);
        assert!(reader.new_events().unwrap().is_empty());
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        file.write_all(br#"{"seq":2,"ts":"2026-01-01T00:00:00Z","#)
            .unwrap();
        assert!(reader.new_events().unwrap().is_empty());
        file.write_all(b"\"event\":\"task.ready\",\"id\":\"T1\"}\n")
            .unwrap();
        let got = reader.new_events().unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].kind, events::EventKind::TaskReady);
    }

    #[test]
    fn log_lines_lose_escapes_and_overwritten_text() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.log");
        std::fs::write(
            &path,
            b"\x1b[31mred\x1b[0m\tdone\nprogress 10%\rprogress 100%\n",
        )
        .unwrap();
        assert_eq!(
            Reader::log_tail(&path).unwrap(),
            ["red    done", "progress 100%"]
        );
    }

    #[test]
    fn a_long_log_keeps_its_last_lines_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.log");
        let text: String = (0..100_000).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&path, text).unwrap();
        let lines = Reader::log_tail(&path).unwrap();
        assert_eq!(lines.len(), LOG_LINES);
        assert_eq!(lines.last().map(String::as_str), Some("line 99999"));
        assert!(lines[0].starts_with("line "));
    }
}
