//! The outbox in the state dir: one file per delivery not yet made.
//!
//! | path | what |
//! | --- | --- |
//! | `outbox/pending/<id>.json` | a delivery to make, with its tries so far and when the next is due |
//! | `outbox/dead/<id>.json` | a delivery whose tries are spent (`orch notify replay` sends it again) |
//! | `outbox/delivered.jsonl` | one line per delivery made: id, when, and its tries |
//!
//! A delivery's id (`<seq>-<event time in ms>-<destination>`, zero-padded
//! so names sort in event order) is the same on every try, and is what a
//! receiver sees as `webhook-id`: a delivery sent again after a crash
//! between a receiver's answer and its record here is recognizably the
//! same one. Every file is written whole (temp, rename), so a crash leaves
//! a delivery pending or done, never half of either.

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::state::Timestamp;
use crate::state::events::Event;

/// A delivery: one event to one destination, and how its tries went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    pub id: String,
    /// The `[[notify]]` destination's name.
    pub destination: String,
    /// The event's name (`task.failed` ...).
    pub event: String,
    /// The event, as its line in `events.jsonl`.
    pub data: Value,
    /// When the event happened.
    pub at: Timestamp,
    /// The tries so far, oldest first.
    #[serde(default)]
    pub tries: Vec<Try>,
    /// When the next try is due.
    pub next: Timestamp,
}

/// One try at a delivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Try {
    pub at: Timestamp,
    /// Why it failed; absent for the try that succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The wait chosen before the next try (the schedule's, stretched by
    /// the jitter); absent when none follows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_ms: Option<u64>,
}

/// A delivery made, as `delivered.jsonl` records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivered {
    pub id: String,
    pub destination: String,
    pub event: String,
    pub tries: Vec<Try>,
}

impl Delivery {
    /// Returns a delivery of `event` to `destination`, due at once.
    pub fn new(event: &Event, destination: &str) -> Delivery {
        let ms = event
            .ts
            .0
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        Delivery {
            id: format!("{:010}-{ms}-{destination}", event.seq),
            destination: destination.to_owned(),
            event: event.kind.name().to_owned(),
            data: serde_json::to_value(event).unwrap_or(Value::Null),
            at: event.ts,
            tries: Vec::new(),
            next: event.ts,
        }
    }
}

/// The outbox could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("cannot use `{}`", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("no notification `{id}` is waiting or given up on")]
    Unknown { id: String },
}

/// The outbox folder of a state dir.
#[derive(Debug, Clone)]
pub struct Outbox {
    root: PathBuf,
}

/// Which list a delivery is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum List {
    Pending,
    Dead,
}

impl List {
    fn dir(self) -> &'static str {
        match self {
            List::Pending => "pending",
            List::Dead => "dead",
        }
    }
}

impl Outbox {
    /// Returns the outbox at `path` (`.orchestrator/outbox`).
    pub fn at(path: &Path) -> Outbox {
        Outbox {
            root: path.to_owned(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.root
    }

    fn file(&self, list: List, id: &str) -> PathBuf {
        self.root.join(list.dir()).join(format!("{id}.json"))
    }

    fn io(path: &Path) -> impl FnOnce(io::Error) -> OutboxError + '_ {
        move |source| OutboxError::Io {
            path: path.to_owned(),
            source,
        }
    }

    /// Writes a delivery into a list (whole, atomically).
    pub fn put(&self, list: List, delivery: &Delivery) -> Result<(), OutboxError> {
        let path = self.file(list, &delivery.id);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(Self::io(dir))?;
        }
        crate::fsio::write_json(&path, delivery).map_err(Self::io(&path))
    }

    /// Removes a delivery from a list (absent is fine).
    pub fn remove(&self, list: List, id: &str) -> Result<(), OutboxError> {
        let path = self.file(list, id);
        crate::fsio::remove_if_present(&path).map_err(Self::io(&path))
    }

    /// Returns a list's deliveries in id order (event order); files that
    /// cannot be read are skipped.
    pub fn list(&self, list: List) -> Result<Vec<Delivery>, OutboxError> {
        let dir = self.root.join(list.dir());
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(OutboxError::Io { path: dir, source }),
        };
        let mut out: Vec<Delivery> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .filter_map(|p| crate::fsio::read_json::<Delivery>(&p).ok().flatten())
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    /// Returns a delivery by id, and the list it is in.
    pub fn find(&self, id: &str) -> Result<(List, Delivery), OutboxError> {
        for list in [List::Pending, List::Dead] {
            if let Some(d) = crate::fsio::read_json::<Delivery>(&self.file(list, id))
                .map_err(Self::io(&self.file(list, id)))?
            {
                return Ok((list, d));
            }
        }
        Err(OutboxError::Unknown { id: id.to_owned() })
    }

    /// Records a delivery as made: a line in `delivered.jsonl` first, then
    /// the file leaves its list (a crash in between sends it once more,
    /// under the same id).
    pub fn delivered(&self, list: List, delivery: &Delivery) -> Result<(), OutboxError> {
        let path = self.root.join("delivered.jsonl");
        let line = Delivered {
            id: delivery.id.clone(),
            destination: delivery.destination.clone(),
            event: delivery.event.clone(),
            tries: delivery.tries.clone(),
        };
        let mut text = serde_json::to_string(&line).map_err(|e| OutboxError::Io {
            path: path.clone(),
            source: io::Error::other(e),
        })?;
        text.push('\n');
        std::fs::create_dir_all(&self.root).map_err(Self::io(&self.root))?;
        append(&path, text.as_bytes()).map_err(Self::io(&path))?;
        self.remove(list, &delivery.id)
    }

    /// Returns every delivery made, oldest first.
    pub fn delivered_log(&self) -> Result<Vec<Delivered>, OutboxError> {
        let path = self.root.join("delivered.jsonl");
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(OutboxError::Io { path, source }),
        };
        Ok(text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect())
    }
}

/// Appends bytes in one write to a file opened for appending.
fn append(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    file.write_all(bytes)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::state::events::EventKind;

    #[test]
    fn a_delivery_moves_from_pending_to_delivered_under_one_id() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::at(&dir.path().join("outbox"));
        let event = Event {
            seq: 7,
            ts: Timestamp(SystemTime::UNIX_EPOCH + Duration::from_millis(1_767_268_800_123)),
            id: None,
            kind: EventKind::RunStopping { agents: 1 },
        };
        let d = Delivery::new(&event, "chat");
        assert_eq!(d.id, "0000000007-1767268800123-chat");
        outbox.put(List::Pending, &d).unwrap();
        assert_eq!(
            outbox.list(List::Pending).unwrap(),
            std::slice::from_ref(&d)
        );
        assert_eq!(outbox.find(&d.id).unwrap().0, List::Pending);
        outbox.delivered(List::Pending, &d).unwrap();
        assert!(outbox.list(List::Pending).unwrap().is_empty());
        assert_eq!(outbox.delivered_log().unwrap()[0].id, d.id);
        assert!(matches!(
            outbox.find(&d.id),
            Err(OutboxError::Unknown { .. })
        ));
    }
}
