//! orch's git hooks (DESIGN §8, `hooks/README.md`): [`install`] puts the
//! shims in place, chains what was there and takes them out again;
//! [`actions`] is what a shim runs inside a task worktree. Neither touches
//! the coordinator; the one thing they share with a run is `events.jsonl`.

pub mod actions;
pub mod install;
