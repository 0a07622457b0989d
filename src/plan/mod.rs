//! The plan: model, parsing, validation, dependency graph and Taskmaster import.
//!
//! Pure given text: nothing here walks folders, touches git, reads clocks or
//! spawns processes. [`load`] reads one file; everything else works on
//! strings and the model. See `docs/plan.md` for the format.

pub(crate) mod build;
pub mod diag;
pub mod diff;
pub mod graph;
pub mod locate;
pub mod model;
pub mod parse;
mod read;
pub mod taskmaster;

pub use diag::{Diagnostic, Location, PlanError, Problem};
pub use diff::{PlanDiff, digest};
pub use graph::{Edge, Graph, Target};
pub use model::{
    Dep, ExecutorChoice, ExecutorKind, FullId, Item, ItemIdx, Kind, Plan, PlanStatus, Priority,
};
pub use parse::Format;
pub use read::{Rules, display_path, from_bytes, load};
