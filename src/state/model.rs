//! The shape of `state.json` (DESIGN §2.3), schema 1.
//!
//! Only tasks and subtasks are stored; phases and milestones are derived
//! ([`crate::lifecycle::derive`]). Readers ignore fields they do not know,
//! so a newer `orch` may add fields within schema 1; a reader refuses to
//! *write* a schema newer than [`SCHEMA`] ([`crate::state::store`]).

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::lifecycle::Status;
use crate::plan::FullId;

/// The schema this build reads and writes.
pub const SCHEMA: u32 = 1;

/// A point in time, written as RFC 3339 UTC with milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub SystemTime);

impl Timestamp {
    pub fn now() -> Timestamp {
        Timestamp(SystemTime::now())
    }

    /// Returns how long ago this was, zero if it is in the future.
    pub fn elapsed_at(self, now: SystemTime) -> Duration {
        now.duration_since(self.0).unwrap_or_default()
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_rfc3339_millis(self.0))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_rfc3339_weak(&text)
            .map(Timestamp)
            .map_err(|e| serde::de::Error::custom(format!("invalid timestamp `{text}`: {e}")))
    }
}

/// The run's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub schema: u32,
    /// The branch finished work is merged into.
    #[serde(default)]
    pub target: Option<String>,
    /// Tasks and subtasks by full id; items the state does not list are as the plan says.
    #[serde(default)]
    pub items: BTreeMap<FullId, ItemState>,
}

impl Default for State {
    fn default() -> Self {
        State {
            schema: SCHEMA,
            target: None,
            items: BTreeMap::new(),
        }
    }
}

/// What the state records for one task or subtask.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemState {
    pub status: Status,
    /// When it last became ready; priority aging counts from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_since: Option<Timestamp>,
    /// Why it is in its status (failed, blocked, waiting), for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// How many attempts were made.
    #[serde(default)]
    pub attempts: u32,
}

impl ItemState {
    pub fn new(status: Status) -> ItemState {
        ItemState {
            status,
            ready_since: None,
            reason: None,
            attempts: 0,
        }
    }
}
