//! The merge queue: finished tasks land on the target one at a time, each
//! only after policy passes on the exact merged tree (DESIGN §5).
//!
//! ```text
//!  coordinator ── Job ──▶ spawn_blocking(run) ── MergeOutcome ──▶ coordinator
//!                           │ 1 build candidate in memory (git::merge)
//!                           │ 2 path and size rules (policy)
//!                           │ 3 checks in .orchestrator/merge/ (checks)
//!                           │ 4 journal, then target moves by compare-and-swap
//!                           │   (or its checkout is brought along: checkout)
//!                           └ 5 clean up branch and worktree
//!  coordinator ── state written ── PostMerge ──▶ run_post_merge (hooks)
//! ```
//!
//! Invariants: the target only ever moves from the head the candidate was
//! built on to the candidate, by compare-and-swap (or, when the target is
//! checked out, by moving that checkout under git's rule, then the branch
//! from that head); if it moved, the candidate is rebuilt and rechecked. A
//! target that no longer contains the head orch last landed was moved under
//! orch: nothing more merges. A checked-out target only moves when no path
//! the merge changes is modified there and no untracked or ignored file is
//! in the way; otherwise merging waits and names every such path. Before the
//! target moves, `merge.json` records the candidate, so a coordinator killed
//! at any instant can tell on restart whether the merge landed (merged
//! exactly once, never twice, never lost; [`evidence`] reads it back from
//! git). This module never starts agents and never writes `state.json`.
//!
//! `land` drives the steps, one function each, and `outcome` holds what a
//! merge comes to, with its typed errors. Step 2 is [`policy`], step 3
//! [`checks`], step 4's checkout [`checkout`]; [`queue`] picks the next task
//! to merge.

pub mod checkout;
pub mod checks;
pub mod evidence;
mod land;
mod outcome;
pub mod policy;
pub mod queue;

pub use land::{JOURNAL, Job, Journal, PostMerge, run, run_post_merge};
pub use outcome::{MergeError, MergeOutcome, PostMergeError, WaitReason, WorktreeAfter};
