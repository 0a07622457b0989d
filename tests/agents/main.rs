//! The real agent CLIs (Claude Code, Codex CLI, aider, Gemini CLI) run
//! through `orch run` against a local stand-in of their model API
//! (`tests/fixtures/model_api.py`), offline.
//!
//! Each preset merges a plan with fan-out and fan-in, unattended, every
//! commit carrying its `Orch-Task` trailer (`policy.require_trailer`), the
//! summary of each finished task reaching the prompts of the tasks that
//! build on it, and nothing the CLI leaves behind committed. The CLIs are
//! installed by `scripts/install-agents` (`scripts/test` runs it); a test
//! whose CLI is not there says `SKIPPED: ...` and why. `limits.rs` covers
//! usage limits, tokens and cost, and resumed sessions.

#[path = "../common/mod.rs"]
mod common;

mod claude;
mod codex;
mod harness;
mod limits;
mod others;
