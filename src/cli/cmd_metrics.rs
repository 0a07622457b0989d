//! `orch metrics`: the run's Prometheus metrics, from the state dir.
//!
//! The same numbers the live coordinator serves (`[metrics] listen`),
//! computed by replaying `events.jsonl` and reading `state.json`, in
//! Prometheus's text format 0.0.4, for node_exporter's textfile collector
//! or a one-off look. See
//! `docs/metrics.md`.

use std::io::Write;
use std::sync::Arc;

use crate::cli::cmd_plan::PlanFile;
use crate::cli::{GlobalArgs, Workspace};
use crate::error::CliError;
use crate::metrics::Metrics;
use crate::state::events;

#[derive(Debug, clap::Args)]
pub struct MetricsArgs {
    #[command(flatten)]
    file: PlanFile,
}

pub fn run(global: &GlobalArgs, args: MetricsArgs) -> Result<(), CliError> {
    let ws = Workspace::discover(global)?;
    ws.require_repo()?;
    let plan = ws.load_plan(args.file.plan.as_deref())?;
    let state = ws.load_state()?;
    let dir = ws.state_dir();
    let log = dir.events_file();
    let read = events::read_all(&log).map_err(|e| {
        CliError::input(format!("cannot read `{}`: {e}", ws.display(&log).display()))
    })?;
    let mut metrics = Metrics::new(Arc::new(plan));
    for event in &read {
        metrics.observe(event);
    }
    metrics.set_state(state.as_ref());
    anstream::stdout()
        .lock()
        .write_all(metrics.encode_text().as_bytes())?;
    Ok(())
}
