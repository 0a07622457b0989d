//! The coordinator: the single owner of a run's live state.
//!
//! `core.rs` decides (a [`RunState`] takes inputs and returns effects, with
//! no I/O; its pure rules are in `judge.rs`, `after_merge.rs`, `train.rs`
//! (the merge queue's chain of candidates) and `starting.rs`'s
//! `retry_after`); `executor.rs` carries effects out;
//! `driver.rs` is the loop between them; `recovery.rs` catches up after a
//! crash; `control.rs` applies a person's commands; `pausing.rs` holds the
//! rules of rate and usage limits and of a person's pauses. `docs/architecture.md`
//! shows how an agent's exit becomes a merged commit.

pub mod after_merge;
pub mod collect;
pub mod control;
pub mod core;
pub mod driver;
pub mod executor;
mod finishing;
pub mod judge;
mod merging;
mod pausing;
pub mod recovery;
mod replan;
mod starting;
pub mod train;
pub mod workspace;

pub use self::core::{Effect, Env, Input, Now, Options, RunState};
pub use driver::{PlanSource, RunError, Setup, Summary, run};
pub use executor::Sink;
pub use replan::NewPlan;
pub use starting::{Retry, retry_after};

#[cfg(test)]
mod tests;
