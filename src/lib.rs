//! `orch`: run many AI coding agents on one repository without them trampling
//! each other.
//!
//! The plan ([`plan`]) says what to do; [`schedule`] decides what can start;
//! [`lifecycle`] is the one table of status transitions; [`state`] keeps the
//! truth in `.orchestrator/`; [`git`] speaks to the repository; [`cli`] is the
//! command line. The design contract and the decisions taken where it is
//! silent are in `docs/`.

pub mod clean;
pub mod cli;
pub mod config;
pub mod coordinator;
pub mod dash;
pub mod demo;
pub mod doctor;
pub mod error;
pub mod fsio;
pub mod git;
pub mod hooks;
pub mod lifecycle;
pub mod merge_queue;
pub mod metrics;
pub mod narrate;
pub mod notifications;
pub mod plan;
pub mod process;
pub mod runner;
pub mod sandbox;
pub mod schedule;
pub mod state;
pub mod templates;
pub mod text;
pub mod when;
