//! `orch merge`: drain the merge queue without starting agents.

use crate::cli::cmd_plan::PlanFile;
use crate::cli::{GlobalArgs, Workspace, cmd_run};
use crate::coordinator::Options;
use crate::error::CliError;

#[derive(Debug, clap::Args)]
pub struct MergeArgs {
    #[command(flatten)]
    file: PlanFile,
    /// Stream the events as JSON lines on stdout instead of progress lines on stderr
    #[arg(long)]
    json: bool,
}

pub fn run(global: &GlobalArgs, args: MergeArgs) -> Result<(), CliError> {
    let ws = Workspace::discover(global)?;
    ws.require_repo()?;
    let plan = ws.load_plan(args.file.plan.as_deref())?;
    let target = ws.target()?;
    let options = Options {
        merge_only: true,
        ..Options::default()
    };
    let output = if args.json {
        cmd_run::Output::Json
    } else {
        cmd_run::Output::Lines
    };
    cmd_run::drive(&ws, plan, None, target, options, output)
}
