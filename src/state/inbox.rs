//! `.orchestrator/inbox/`: commands for the live coordinator.
//!
//! `orch retry|cancel|resolve|approve|reject|revert|pause|resume` and the
//! dashboard write one JSON file per command, atomically (temp file,
//! rename), named so that names sort in the
//! order they were sent. The coordinator reads them in that order, applies
//! each, and deletes it; a file that cannot be parsed is moved aside to
//! `inbox/rejected/` with the reason, never silently dropped.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::fsio::write_atomically;
use crate::plan::FullId;
use crate::state::model::Timestamp;

/// The inbox folder's name inside the state dir.
pub const DIR_NAME: &str = "inbox";

/// What a person asks of a task or subtask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Retry,
    Cancel,
    Resolve,
    /// Approve a task waiting for a person's review.
    Approve,
    /// Reject a task waiting for a person's review (with a reason).
    Reject,
    /// Undo a merged task's work on the target with a new commit.
    Revert,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Retry => "retry",
            Action::Cancel => "cancel",
            Action::Resolve => "resolve",
            Action::Approve => "approve",
            Action::Reject => "reject",
            Action::Revert => "revert",
        }
    }

    /// Returns the past tense for messages ("cancelled `T1`").
    pub fn past(self) -> &'static str {
        match self {
            Action::Retry => "retried",
            Action::Cancel => "cancelled",
            Action::Resolve => "resolved",
            Action::Approve => "approved",
            Action::Reject => "rejected",
            Action::Revert => "queued the revert of",
        }
    }
}

/// The coordinator's answer to a command, left in `inbox/replies/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    pub ok: bool,
    pub message: String,
}

impl Reply {
    pub fn ok(message: String) -> Reply {
        Reply { ok: true, message }
    }

    pub fn refused(message: String) -> Reply {
        Reply { ok: false, message }
    }
}

fn reply_path(command: &Path) -> Option<PathBuf> {
    let dir = command.parent()?.join("replies");
    Some(dir.join(command.file_name()?))
}

/// Leaves the answer to a command where its sender looks for it.
pub fn answer(received: &Received, reply: &Reply) -> io::Result<()> {
    let Some(path) = reply_path(&received.path) else {
        return Ok(());
    };
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    let bytes = serde_json::to_vec(reply).map_err(io::Error::other)?;
    write_atomically(&path, &bytes)
}

/// Waits up to `wait` for the answer to a sent command and removes it.
pub fn await_reply(command: &Path, wait: std::time::Duration) -> io::Result<Option<Reply>> {
    let Some(path) = reply_path(command) else {
        return Ok(None);
    };
    let deadline = std::time::Instant::now() + wait;
    loop {
        match fs::read(&path) {
            Ok(bytes) => {
                let _ = fs::remove_file(&path);
                return serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(io::Error::other);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        if std::time::Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
}

/// One command file: `{"action": "retry", "id": "T1", ...}`, or
/// `{"action": "pause", "agent": "claude", "until": ..., ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    #[serde(flatten)]
    pub order: Order,
    pub sent: Timestamp,
    /// The pid of the process that sent it.
    pub from_pid: u32,
    /// Why (a rejection's text); left out when none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What a command asks, by its `action`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Order {
    Retry {
        id: FullId,
    },
    Cancel {
        id: FullId,
    },
    Resolve {
        id: FullId,
    },
    /// Approve a task waiting for a person's review.
    Approve {
        id: FullId,
    },
    /// Reject a task waiting for a person's review (the request's `reason`
    /// says why).
    Reject {
        id: FullId,
    },
    /// Undo a merged task's work on the target with a new commit.
    Revert {
        id: FullId,
    },
    /// Launch nothing for `agent` (every agent when `None`) until `until`
    /// (until resumed when `None`).
    Pause {
        #[serde(default)]
        agent: Option<String>,
        #[serde(default)]
        until: Option<Timestamp>,
    },
    /// Lift the pause of `agent` (every pause when `None`).
    Resume {
        #[serde(default)]
        agent: Option<String>,
    },
}

impl Order {
    /// Returns the order that applies `action` to `id`.
    pub fn item(action: Action, id: FullId) -> Order {
        match action {
            Action::Retry => Order::Retry { id },
            Action::Cancel => Order::Cancel { id },
            Action::Resolve => Order::Resolve { id },
            Action::Approve => Order::Approve { id },
            Action::Reject => Order::Reject { id },
            Action::Revert => Order::Revert { id },
        }
    }

    /// Returns the action and the task or subtask of an order about one;
    /// `None` for an order about agents (pause, resume).
    pub fn about_item(&self) -> Option<(Action, &FullId)> {
        match self {
            Order::Retry { id } => Some((Action::Retry, id)),
            Order::Cancel { id } => Some((Action::Cancel, id)),
            Order::Resolve { id } => Some((Action::Resolve, id)),
            Order::Approve { id } => Some((Action::Approve, id)),
            Order::Reject { id } => Some((Action::Reject, id)),
            Order::Revert { id } => Some((Action::Revert, id)),
            Order::Pause { .. } | Order::Resume { .. } => None,
        }
    }
}

/// Writes a command about a task or subtask into the inbox and returns the file's path.
pub fn send(state_dir: &Path, action: Action, id: &FullId) -> io::Result<PathBuf> {
    send_with(state_dir, action, id, None)
}

/// Writes a command about a task or subtask with a reason (a rejection's
/// text) into the inbox and returns the file's path.
pub fn send_with(
    state_dir: &Path,
    action: Action,
    id: &FullId,
    reason: Option<&str>,
) -> io::Result<PathBuf> {
    write_request(state_dir, Order::item(action, id.clone()), reason)
}

/// Writes a command into the inbox and returns the file's path.
pub fn send_order(state_dir: &Path, order: Order) -> io::Result<PathBuf> {
    write_request(state_dir, order, None)
}

fn write_request(state_dir: &Path, order: Order, reason: Option<&str>) -> io::Result<PathBuf> {
    let dir = state_dir.join(DIR_NAME);
    fs::create_dir_all(&dir)?;
    let command = Request {
        order,
        sent: Timestamp::now(),
        from_pid: std::process::id(),
        reason: reason.map(str::to_owned),
    };
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let name = format!(
        "{nanos:020}-{}-{:08x}.json",
        std::process::id(),
        fastrand::u32(..)
    );
    let path = dir.join(name);
    let bytes = serde_json::to_vec(&command).map_err(io::Error::other)?;
    write_atomically(&path, &bytes)?;
    Ok(path)
}

/// A command file found in the inbox.
#[derive(Debug)]
pub struct Received {
    pub path: PathBuf,
    pub command: Result<Request, UnreadableCommand>,
}

/// Why a command file could not be read as a command.
#[derive(Debug, thiserror::Error)]
pub enum UnreadableCommand {
    #[error(transparent)]
    Read(io::Error),
    #[error(transparent)]
    Parse(serde_json::Error),
}

/// Lists the pending commands, oldest first. Temp files are skipped.
pub fn pending(state_dir: &Path) -> io::Result<Vec<Received>> {
    let dir = state_dir.join(DIR_NAME);
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    Ok(paths
        .into_iter()
        .map(|path| {
            let command = fs::read(&path)
                .map_err(UnreadableCommand::Read)
                .and_then(|bytes| serde_json::from_slice(&bytes).map_err(UnreadableCommand::Parse));
            Received { path, command }
        })
        .collect())
}

/// Removes a command once applied.
pub fn done(received: &Received) -> io::Result<()> {
    match fs::remove_file(&received.path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Moves an unreadable command aside, with the reason next to it.
pub fn reject(received: &Received, reason: &str) -> io::Result<()> {
    let Some(parent) = received.path.parent() else {
        return Ok(());
    };
    let rejected = parent.join("rejected");
    fs::create_dir_all(&rejected)?;
    let name = received.path.file_name().unwrap_or_default();
    fs::rename(&received.path, rejected.join(name))?;
    fs::write(rejected.join(name).with_extension("reason"), reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_read_as_they_are_documented() {
        let retry = r#"{"action": "retry", "id": "P1.M1.T2", "sent": "2026-01-01T12:40:00.000Z", "from_pid": 51234}"#;
        let pause = r#"{"action": "pause", "agent": "claude", "until": "2026-01-01T17:00:00.000Z", "sent": "2026-01-01T12:40:00.000Z", "from_pid": 51234}"#;
        let all = r#"{"action": "resume", "sent": "2026-01-01T12:40:00.000Z", "from_pid": 51234}"#;
        for text in [retry, pause, all] {
            let request: Request = serde_json::from_str(text).unwrap();
            let again: Request =
                serde_json::from_str(&serde_json::to_string(&request).unwrap()).unwrap();
            assert_eq!(again, request);
        }
        let request: Request = serde_json::from_str(all).unwrap();
        assert_eq!(request.order, Order::Resume { agent: None });
        let request: Request = serde_json::from_str(retry).unwrap();
        assert_eq!(
            serde_json::to_string(&request).unwrap(),
            r#"{"action":"retry","id":"P1.M1.T2","sent":"2026-01-01T12:40:00.000Z","from_pid":51234}"#
        );
    }

    #[test]
    fn commands_come_back_in_order_and_bad_ones_are_kept_aside() {
        let dir = tempfile::tempdir().unwrap();
        let t1 = FullId::parse("T1").unwrap();
        send(dir.path(), Action::Cancel, &t1).unwrap();
        send(dir.path(), Action::Retry, &t1).unwrap();
        fs::write(dir.path().join("inbox/zzz.json"), b"{").unwrap();
        let got = pending(dir.path()).unwrap();
        assert_eq!(got.len(), 3);
        let order = |n: usize| got[n].command.as_ref().unwrap().order.clone();
        assert_eq!(order(0), Order::Cancel { id: t1.clone() });
        assert_eq!(order(1), Order::Retry { id: t1.clone() });
        assert!(got[2].command.is_err());
        reject(&got[2], "bad json").unwrap();
        done(&got[0]).unwrap();
        done(&got[1]).unwrap();
        assert!(pending(dir.path()).unwrap().is_empty());
        assert!(dir.path().join("inbox/rejected/zzz.reason").exists());
    }
}
