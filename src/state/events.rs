//! `events.jsonl`: the append-only log of everything that happened.
//!
//! One JSON object a line: `{"seq":17,"ts":"…","event":"task.merged","id":"P1.M1.T1",…}`.
//! Each line goes out in one `write` on a file opened for appending, so a
//! crash leaves at most one incomplete last line; readers skip it, and the
//! next writer starts on a fresh line. `seq` continues from the last
//! complete line.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::lifecycle::Status;
use crate::plan::FullId;
use crate::state::model::Timestamp;
use crate::text::{duration, plural};

/// The log's file name inside the state dir.
pub const FILE_NAME: &str = "events.jsonl";

/// Event names (DESIGN §3), plus the run's own bookkeeping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventName {
    #[serde(rename = "run.started")]
    RunStarted,
    #[serde(rename = "run.stopping")]
    RunStopping,
    #[serde(rename = "run.finished")]
    RunFinished,
    #[serde(rename = "task.ready")]
    TaskReady,
    #[serde(rename = "task.started")]
    TaskStarted,
    #[serde(rename = "task.commit")]
    TaskCommit,
    #[serde(rename = "task.completed")]
    TaskCompleted,
    #[serde(rename = "task.retrying")]
    TaskRetrying,
    #[serde(rename = "task.interrupted")]
    TaskInterrupted,
    #[serde(rename = "task.failed")]
    TaskFailed,
    #[serde(rename = "task.blocked")]
    TaskBlocked,
    #[serde(rename = "task.unblocked")]
    TaskUnblocked,
    #[serde(rename = "merge.started")]
    MergeStarted,
    #[serde(rename = "merge.conflicted")]
    MergeConflicted,
    #[serde(rename = "merge.waiting")]
    MergeWaiting,
    #[serde(rename = "merge.requeued")]
    MergeRequeued,
    #[serde(rename = "check.passed")]
    CheckPassed,
    #[serde(rename = "check.failed")]
    CheckFailed,
    #[serde(rename = "task.merged")]
    TaskMerged,
    #[serde(rename = "task.cancelled")]
    TaskCancelled,
    #[serde(rename = "task.resolved")]
    TaskResolved,
    #[serde(rename = "task.retried")]
    TaskRetried,
    #[serde(rename = "hook.failed")]
    HookFailed,
}

impl EventName {
    /// Returns the dotted name as written in the log.
    pub fn as_str(self) -> &'static str {
        match self {
            EventName::RunStarted => "run.started",
            EventName::RunStopping => "run.stopping",
            EventName::RunFinished => "run.finished",
            EventName::TaskReady => "task.ready",
            EventName::TaskStarted => "task.started",
            EventName::TaskCommit => "task.commit",
            EventName::TaskCompleted => "task.completed",
            EventName::TaskRetrying => "task.retrying",
            EventName::TaskInterrupted => "task.interrupted",
            EventName::TaskFailed => "task.failed",
            EventName::TaskBlocked => "task.blocked",
            EventName::TaskUnblocked => "task.unblocked",
            EventName::MergeStarted => "merge.started",
            EventName::MergeConflicted => "merge.conflicted",
            EventName::MergeWaiting => "merge.waiting",
            EventName::MergeRequeued => "merge.requeued",
            EventName::CheckPassed => "check.passed",
            EventName::CheckFailed => "check.failed",
            EventName::TaskMerged => "task.merged",
            EventName::TaskCancelled => "task.cancelled",
            EventName::TaskResolved => "task.resolved",
            EventName::TaskRetried => "task.retried",
            EventName::HookFailed => "hook.failed",
        }
    }
}

/// One line of the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub seq: u64,
    pub ts: Timestamp,
    pub event: EventName,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<FullId>,
    /// Event-specific fields (attempt, reason, oids, durations ...).
    #[serde(flatten)]
    pub fields: Map<String, Value>,
}

/// How an event reads to a person: an optional status word, then the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Described {
    /// The word in front (`started`, `failed` ...) and the status whose colour it takes.
    pub word: Option<(Status, &'static str)>,
    pub text: String,
}

impl Described {
    fn new(status: Status, word: &'static str, text: String) -> Described {
        Described {
            word: Some((status, word)),
            text,
        }
    }

    fn plain(text: String) -> Described {
        Described { word: None, text }
    }
}

impl Event {
    fn text(&self, key: &str) -> String {
        match self.fields.get(key) {
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => String::new(),
        }
    }

    fn num(&self, key: &str) -> Option<u64> {
        self.fields.get(key).and_then(Value::as_u64)
    }

    /// Returns how the event reads in progress lines and the dashboard's
    /// feed, or `None` for events too fine-grained to show.
    pub fn describe(&self) -> Option<Described> {
        let id = self.id.as_ref().map(|i| i.to_string()).unwrap_or_default();
        let attempt = self
            .num("attempt")
            .map(|n| format!("attempt {n}"))
            .unwrap_or_default();
        Some(match self.event {
            EventName::RunStarted => Described::plain(format!(
                "Starting: {} on target `{}`{}.",
                plural(self.num("tasks").unwrap_or(0) as usize, "task", "tasks"),
                self.text("target"),
                if self.fields.get("no_merge") == Some(&Value::Bool(true)) {
                    ", without merging"
                } else {
                    ""
                }
            )),
            EventName::RunStopping => Described::plain(format!(
                "Stopping: waiting for {} to stop (press Ctrl-C again to kill at once).",
                plural(self.num("agents").unwrap_or(0) as usize, "agent", "agents")
            )),
            EventName::TaskStarted => Described::new(
                Status::Running,
                "started",
                format!("{id}  {attempt}: {}", self.text("title")),
            ),
            EventName::TaskCompleted => {
                let mut parts = vec![attempt];
                if let Some(ms) = self.num("duration_ms") {
                    parts.push(duration(Duration::from_millis(ms)));
                }
                if let Some(c) = self.num("commits") {
                    parts.push(plural(c as usize, "commit", "commits"));
                }
                Described::new(
                    Status::AwaitingMerge,
                    "done",
                    format!("{id}  {}", parts.join(", ")),
                )
            }
            EventName::TaskRetrying => Described::new(
                Status::Retrying,
                "retrying",
                format!(
                    "{id}  {attempt}: {}; next attempt in {}",
                    self.text("reason"),
                    duration(Duration::from_millis(self.num("retry_in_ms").unwrap_or(0)))
                ),
            ),
            EventName::TaskFailed => Described::new(
                Status::Failed,
                "failed",
                format!("{id}  {attempt}: {}", self.text("reason")),
            ),
            EventName::TaskInterrupted => Described::new(
                Status::Pending,
                "stopped",
                format!("{id}  {attempt}: {}", self.text("reason")),
            ),
            EventName::TaskBlocked => Described::new(
                Status::Blocked,
                "blocked",
                format!("{id}: {}", self.text("reason")),
            ),
            EventName::TaskCancelled => Described::new(Status::Cancelled, "cancelled", id),
            EventName::TaskResolved => Described::new(Status::Resolved, "resolved", id),
            EventName::TaskRetried => Described::new(Status::Ready, "retry", id),
            EventName::TaskMerged => Described::new(
                Status::Merged,
                "merged",
                format!("{id}  {}", self.text("commit")),
            ),
            EventName::MergeConflicted => Described::new(
                Status::Conflicted,
                "conflict",
                format!("{id}: {}", self.text("reason")),
            ),
            EventName::CheckFailed => Described::new(
                Status::Failed,
                "red",
                format!(
                    "{id}: check `{}` failed; log: {}",
                    self.text("check"),
                    self.text("log")
                ),
            ),
            EventName::MergeWaiting => Described::new(
                Status::AwaitingMerge,
                "waiting",
                format!("{id}: {}", self.text("reason")),
            ),
            _ => return None,
        })
    }
}

/// An open log, positioned for appending.
#[derive(Debug)]
pub struct EventLog {
    file: File,
    path: PathBuf,
    next_seq: u64,
    /// The file's length after our last write: when it differs, another
    /// process appended, and `next_seq` is read again from the file.
    known_len: u64,
}

impl EventLog {
    /// Opens (or creates) the log and finds the next sequence number.
    pub fn open(path: &Path) -> io::Result<EventLog> {
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)?;
        Ok(EventLog {
            file,
            path: path.to_owned(),
            next_seq: 1,
            known_len: u64::MAX,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one event and returns it as written.
    ///
    /// Writers in other processes (`orch retry` without a run, the git
    /// hooks) append to the same file, so each append holds an exclusive
    /// lock on it and, when the file grew behind our back, continues the
    /// sequence from its last line: `seq` stays unique and increasing.
    pub fn append(
        &mut self,
        event: EventName,
        id: Option<&FullId>,
        fields: Map<String, Value>,
    ) -> io::Result<Event> {
        self.file.lock()?;
        let result = self.append_locked(event, id, fields);
        let unlocked = self.file.unlock();
        let record = result?;
        unlocked?;
        Ok(record)
    }

    fn append_locked(
        &mut self,
        event: EventName,
        id: Option<&FullId>,
        fields: Map<String, Value>,
    ) -> io::Result<Event> {
        if self.file.metadata()?.len() != self.known_len {
            let (last_seq, ends_cleanly) = last_complete(&mut self.file)?;
            if !ends_cleanly {
                self.file.write_all(b"\n")?;
            }
            self.next_seq = self.next_seq.max(last_seq.map_or(1, |s| s + 1));
        }
        let record = Event {
            seq: self.next_seq,
            ts: Timestamp::now(),
            event,
            id: id.cloned(),
            fields,
        };
        let mut line = serde_json::to_vec(&record).map_err(io::Error::other)?;
        line.push(b'\n');
        self.file.write_all(&line)?;
        self.next_seq += 1;
        self.known_len = self.file.metadata()?.len();
        Ok(record)
    }
}

/// Reads the tail of the file: the last complete line's `seq`, and whether
/// the file ends with a newline (or is empty).
fn last_complete(file: &mut File) -> io::Result<(Option<u64>, bool)> {
    let len = file.seek(SeekFrom::End(0))?;
    if len == 0 {
        return Ok((None, true));
    }
    let start = len.saturating_sub(64 * 1024);
    file.seek(SeekFrom::Start(start))?;
    let mut tail = Vec::with_capacity((len - start) as usize);
    file.read_to_end(&mut tail)?;
    let ends_cleanly = tail.last() == Some(&b'\n');
    // The last piece is empty when the file ends cleanly, torn otherwise.
    let seq = tail
        .split(|b| *b == b'\n')
        .rev()
        .skip(1)
        .find_map(|line| serde_json::from_slice::<Event>(line).ok())
        .map(|e| e.seq);
    Ok((seq, ends_cleanly))
}

/// Reads every complete, well-formed event; a torn last line is skipped.
pub fn read_all(path: &Path) -> io::Result<Vec<Event>> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for line in BufReader::new(file).split(b'\n') {
        let line = line?;
        if let Ok(event) = serde_json::from_slice::<Event>(&line) {
            out.push(event);
        }
    }
    Ok(out)
}

/// Builds the fields map of an event from `key => value` pairs.
#[macro_export]
macro_rules! fields {
    ($($key:literal => $value:expr),* $(,)?) => {{
        #[allow(unused_mut, reason = "empty field lists")]
        let mut map = serde_json::Map::new();
        $(map.insert($key.to_owned(), serde_json::json!($value));)*
        map
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_continues_across_opens_and_torn_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let id = FullId::parse("T1").unwrap();
        let mut log = EventLog::open(&path).unwrap();
        log.append(EventName::RunStarted, None, Map::new()).unwrap();
        log.append(
            EventName::TaskStarted,
            Some(&id),
            crate::fields! {"attempt" => 1},
        )
        .unwrap();
        drop(log);
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(b"{\"seq\":3,\"ts\":\"20").unwrap();
        drop(file);
        let mut log = EventLog::open(&path).unwrap();
        let e = log
            .append(EventName::TaskFailed, Some(&id), Map::new())
            .unwrap();
        assert_eq!(e.seq, 3);
        let all = read_all(&path).unwrap();
        assert_eq!(all.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(all[1].fields["attempt"], 1);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"event\":\"task.started\""), "{text}");
    }

    #[test]
    fn two_writers_keep_the_sequence_unique() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let mut run = EventLog::open(&path).unwrap();
        let mut hook = EventLog::open(&path).unwrap();
        run.append(EventName::RunStarted, None, Map::new()).unwrap();
        hook.append(EventName::TaskCommit, None, Map::new())
            .unwrap();
        hook.append(EventName::TaskCommit, None, Map::new())
            .unwrap();
        run.append(EventName::RunFinished, None, Map::new())
            .unwrap();
        let seqs: Vec<u64> = read_all(&path).unwrap().iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [1, 2, 3, 4]);
    }
}
