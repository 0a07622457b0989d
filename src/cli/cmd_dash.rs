//! `orch dash`: the dashboard, attached to the current repository's state dir.
//!
//! Live while a run is going (in any terminal), a read-only view of the last
//! run otherwise. It never writes `state.json`: retry, cancel and resolve
//! go to the live run's inbox (docs/dashboard.md).

use std::sync::Arc;

use crate::cli::cmd_plan::PlanFile;
use crate::cli::{GlobalArgs, Workspace};
use crate::dash::driver::{self, Dashboard, Exit};
use crate::error::CliError;

#[derive(Debug, clap::Args)]
pub struct DashArgs {
    #[command(flatten)]
    file: PlanFile,
}

pub fn run(global: &GlobalArgs, args: DashArgs) -> Result<(), CliError> {
    let ws = Workspace::discover(global)?;
    let repo = ws.require_repo()?;
    let plan = ws.load_plan(args.file.plan.as_deref())?;
    let state_dir = ws.state_dir().path().to_owned();
    repo.exclude(crate::state::DIR_NAME)?;
    std::fs::create_dir_all(&state_dir)?;
    let dashboard = Dashboard::new(driver::Options {
        plan: Arc::new(plan),
        state_dir,
        in_run: false,
        color: use_color(),
        default_agent: default_agent(&ws.config),
    })?;
    match dashboard.run()? {
        Exit::Signal(_) => Err(CliError::interrupted()),
        Exit::Quit | Exit::StopRun | Exit::RunClosed => Ok(()),
    }
}

/// Returns whether the dashboard may use colour (`NO_COLOR` unset or empty).
pub fn use_color() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Returns the name of the agent tasks that pick none run.
pub(crate) fn default_agent(config: &crate::config::Config) -> String {
    config
        .agent(None)
        .map(|a| a.name().to_owned())
        .unwrap_or_else(|| crate::config::presets::DEFAULT_PRESET.to_owned())
}
