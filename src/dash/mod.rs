//! The terminal dashboard: `orch dash` and `orch run --tui` (docs/dashboard.md).
//!
//! Split as STYLE.md §1 says: [`app`] holds the state and its one `update`
//! function, [`ui`] draws it without changing it, [`event`] turns terminal
//! input, file-system notifications and a slow tick into messages, and
//! [`terminal`] sets the terminal up and always puts it back. [`driver`]
//! ties them together and carries out the commands `update` returns.
//! [`layout`] is the screen arithmetic both `app` (paging) and `ui`
//! (drawing) use; `ui` reads `app`, never the other way round.
//!
//! The dashboard reads `.orchestrator/` and never writes `state.json`; what
//! a person asks for (retry, cancel, resolve) goes through the inbox to the
//! live run, after a confirmation.

pub mod app;
pub mod driver;
pub mod event;
pub mod layout;
pub mod terminal;
pub mod ui;
