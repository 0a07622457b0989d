//! The state dir `.orchestrator/` (DESIGN §2.3): `state.json` (a snapshot),
//! `changes.jsonl` (the changes since it) and their model.
//!
//! This module reads and writes files; it never decides transitions (that is
//! [`crate::lifecycle`]) and never runs agents.

pub mod changes;
mod dir;
pub mod events;
pub mod inbox;
pub mod lock;
pub mod model;
mod statuses;
pub mod store;

pub use dir::{DIR_NAME, StateDir};
pub use model::{ItemState, SCHEMA, State, Timestamp};
pub use statuses::{item_statuses, leaf_status, task_views};
pub use store::StateError;
