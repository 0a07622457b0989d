//! Agent processes: the supervisor, spawning, termination, exit classification
//! and prompts.
//!
//! ```text
//!  coordinator ──spawn (setsid)──▶ orch __supervise <spec.json>      (own session)
//!       ▲                              │ spawn (process_group 0)
//!       │ exit.json, supervisor.json   ▼
//!       └────────── run folder ◀── agent ─▶ children …                (own group)
//! ```
//!
//! The supervisor lives in its own session, so Ctrl-C at the terminal and the
//! death of the coordinator do not reach the agent. It runs the agent in its
//! own process group, feeds it the prompt, caps its log, enforces the timeout
//! (SIGTERM to the group, SIGKILL after the grace period), kills whatever is
//! left of the group when the agent exits, and writes `exit.json` atomically.
//! The run folder is the protocol: a coordinator that starts later learns
//! everything from `spec.json`, `supervisor.json` and `exit.json`.
//!
//! Where the agent runs is the executor's choice ([`executor`]): the local
//! one hands the supervisor the agent's argv; the Slurm one hands it `orch
//! __job`, which runs the agent on a node with `srun` ([`slurm`]).
//!
//! Agents and the `post_create` and `post_agent` hooks are confined with
//! Landlock (`crate::sandbox`) to the paths [`confine`] works out: the
//! supervisor, and the hook runner, build the ruleset before the fork and
//! apply it in the child just before exec.
//!
//! While a local agent runs in a worktree that was clean, the supervisor
//! watches the worktree ([`watch`]), so that collection asks git about the
//! paths the agent changed, not the whole worktree.
//!
//! This module never touches `state.json` or the lifecycle; git only to
//! publish a ref for a job of the git workspace, and to read which folders
//! of a watched worktree are tracked.

pub mod classify;
pub mod confine;
pub mod executor;
pub mod final_message;
pub mod folder;
pub mod hook;
pub mod node;
pub mod output;
pub mod prompt;
pub mod slurm;
pub mod spawn;
pub mod spec;
pub mod supervise;
pub mod terminate;
pub mod watch;
