//! The command line: clap arguments, one `cmd_*.rs` per subcommand, rendering.
//!
//! Commands turn arguments into validated options, call the library, and
//! render human or `--json` output. Nothing here touches git2 beyond
//! discovering the repository, writes `state.json` bytes, spawns processes
//! or decides business rules. Errors become
//! [`CliError`](crate::error::CliError)s, whose kind fixes the exit code.

mod app;
mod cmd_clean;
mod cmd_control;
mod cmd_dash;
mod cmd_demo;
mod cmd_doctor;
mod cmd_hooks;
mod cmd_init;
mod cmd_logs;
mod cmd_merge;
mod cmd_metrics;
mod cmd_notify;
mod cmd_pause;
mod cmd_plan;
mod cmd_run;
mod cmd_status;
mod graph_render;
pub mod json;
mod progress;
mod style;
mod workspace;

pub use app::{Cli, Command, GlobalArgs, main, run_with};
pub use workspace::Workspace;
