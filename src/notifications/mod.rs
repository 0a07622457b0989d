//! Notifications (`[[notify]]`): events sent to webhooks and commands
//! through a durable outbox, never holding the run up.
//!
//! ```text
//!   executor ── event matches a [[notify]] ──▶ outbox/pending/<id>.json (durable)
//!                                                  │ wake
//!   worker thread ◀────────────────────────────────┘
//!     due? ── send (webhook: signed POST; command: event on stdin), with a timeout
//!       ok ──▶ outbox/delivered.jsonl, pending file removed
//!       failed, tries left ──▶ next try after the schedule's wait (+0..20 %)
//!       failed, none left ──▶ outbox/dead/<id>.json (`orch notify list|replay`)
//! ```
//!
//! `outbox.rs` owns the files, `send.rs` one delivery (Standard Webhooks
//! signing included), `worker.rs` the thread that drains the outbox.
//! `docs/notify.md` says what a user sees.

pub mod outbox;
pub mod send;
pub mod worker;

pub use outbox::{Delivery, List, Outbox, OutboxError, Try};
pub use send::{Destination, SecretError, SendError};
pub use worker::Worker;
