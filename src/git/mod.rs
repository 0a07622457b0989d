//! Git, through libgit2 (`git2`). Speaks paths, branches and oids only.
//!
//! A `git2::Repository` is not `Sync`: every operation opens its own handle
//! (cheap) and callers on async threads run these functions on blocking
//! threads, passing paths and oids across, never handles (STYLE.md §3).

pub mod repo;

pub use repo::{GitError, RepoPaths};
