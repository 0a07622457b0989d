//! The merge queue: finished tasks land on the target only after policy
//! passes on the exact tree that lands (DESIGN §5), in batches, checked
//! speculatively and in parallel (docs/merge.md).
//!
//! ```text
//!  coordinator ── BuildJob ──▶ build (chain of candidates, in memory) ──▶ BuildReport
//!              ── CheckJob ──▶ candidate::check (check worktree `slot`) ──▶ Checked   (×max_parallel_checks)
//!              ── ReviewJob ─▶ review (a reviewer command)              ──▶ Verdict
//!              ── LandJob ───▶ land: journal, target moves by           ──▶ Landing
//!                              compare-and-swap (or its checkout under
//!                              git's rule, `checkout`), cleanup
//!              ── ProbeJob ──▶ land::probe (is a checkout still in the way?)
//!  coordinator ── state written ── PostMerge ──▶ run_post_merge (hooks)
//! ```
//!
//! Invariants: the target only ever moves from the head a chain was built
//! on to a candidate of that chain whose checks passed, by compare-and-swap
//! (or, when the target is checked out, by moving that checkout under git's
//! rule, then the branch from that head); if it moved, the chain is rebuilt
//! and rechecked. A target that no longer contains the head orch last
//! landed was moved under orch: nothing more merges. A checked-out target
//! only moves when no path the merge changes is modified there and no
//! untracked or ignored file is in the way; otherwise the tasks whose
//! change is in the way wait, naming every such path, and the others land.
//! Before the target moves, `merge.json` records the candidate and each of
//! its tasks, so a coordinator killed at any instant can tell on restart
//! which tasks landed (merged exactly once, never twice, never lost;
//! [`evidence`] reads it back from git). Which commits to check and land
//! is the coordinator's decision (`coordinator::train`); this module never
//! starts agents and never writes `state.json`.

pub mod build;
pub mod candidate;
pub mod checkout;
pub mod checks;
pub mod evidence;
mod land;
mod outcome;
pub mod policy;
pub mod queue;
pub mod radar;
pub mod review;

pub use land::{
    JOURNAL, Journal, JournalTask, LandBranch, LandJob, LandLink, Landing, LinkLanded, PostMerge,
    ProbeJob, land, probe, run_post_merge,
};
pub use outcome::{MergeError, MergeOutcome, PostMergeError, WaitReason, WorktreeAfter};
