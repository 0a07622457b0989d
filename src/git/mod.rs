//! Git, through libgit2 (`git2`) and, for worktree administration and
//! commits, the `git` CLI. Speaks paths, branches and oids only.
//!
//! A `git2::Repository` is not `Sync`: every operation opens its own handle
//! (cheap) and callers on async threads run these functions on blocking
//! threads, passing paths and oids across, never handles (STYLE.md §3).
//!
//! Why the CLI for worktrees: `git worktree add/move/remove/prune` keeps the
//! admin files, locks and hooks exactly as git itself expects, and the
//! benchmark in `benches/run.rs` shows the process start is small next to the
//! checkout. Why git2 elsewhere: no process per query, and typed errors.

pub mod cmd;
pub mod commit;
pub mod merge;
pub mod refs;
pub mod repo;
pub mod trailers;
pub mod tree;
pub mod worktree;

pub use repo::{GitError, RepoPaths};
