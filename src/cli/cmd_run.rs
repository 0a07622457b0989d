//! `orch run`: turn ready tasks into branches, worktrees and running agents.

use std::io::Write;

use crate::cli::cmd_plan::PlanFile;
use crate::cli::{GlobalArgs, Workspace, progress};
use crate::coordinator::{self, Options, RunError, Setup};
use crate::error::{CliError, ErrorKind, Message};
use crate::plan::ItemIdx;
use crate::schedule;
use crate::state;

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    file: PlanFile,
    /// Run at most N agents at once (overrides `agent.max_parallel`)
    #[arg(long, value_name = "N")]
    max_parallel: Option<usize>,
    /// Only start these tasks; a phase or milestone means every task inside (can be repeated)
    #[arg(long, value_name = "ID", num_args = 1..)]
    only: Vec<String>,
    /// Leave finished tasks in `awaiting_merge` instead of merging them
    #[arg(long)]
    no_merge: bool,
    /// Print what would start now, and change nothing
    #[arg(long)]
    dry_run: bool,
    /// Stream the events as JSON lines on stdout instead of progress lines on stderr
    #[arg(long)]
    json: bool,
}

pub fn run(global: &GlobalArgs, args: RunArgs) -> Result<(), CliError> {
    let ws = Workspace::discover(global)?;
    ws.require_repo()?;
    let plan = ws.load_plan(args.file.plan.as_deref())?;
    let target = ws.target()?;
    if let Some(n) = args.max_parallel
        && n == 0
    {
        return Err(CliError::input("`--max-parallel` must be at least 1"));
    }
    let only = resolve_only(&plan, &args.only)?;
    if args.dry_run {
        return dry_run(&ws, &plan, args.max_parallel);
    }
    let options = Options {
        no_merge: args.no_merge || !ws.config.merge.enabled,
        max_parallel: args.max_parallel,
        only,
        merge_only: false,
    };
    drive(&ws, plan, target, options, args.json)
}

/// Runs the coordinator and turns its summary into the exit code.
pub fn drive(
    ws: &Workspace,
    plan: crate::plan::Plan,
    target: String,
    options: Options,
    json: bool,
) -> Result<(), CliError> {
    let repo = ws.require_repo()?.clone();
    repo.exclude(crate::state::DIR_NAME)?;
    let setup = Setup {
        plan,
        config: ws.config.clone(),
        repo_root: repo.root.clone(),
        state_dir: ws.state_dir(),
        target,
        orch_exe: std::env::current_exe()?,
        options,
    };
    let sink: coordinator::Sink = if json {
        Box::new(progress::json)
    } else {
        let mut human = progress::Human::new();
        Box::new(move |e| human.event(e))
    };
    let summary = coordinator::run(setup, sink).map_err(run_error)?;
    if !json {
        progress::summary(&summary);
    }
    if summary.interrupted {
        return Err(CliError::new(
            ErrorKind::Interrupted,
            Message("interrupted".to_owned()),
        ));
    }
    if summary.has_failures() {
        return Err(CliError::new(
            ErrorKind::RunFailed,
            Message("the run ended with failed, blocked or conflicted tasks".to_owned()),
        )
        .with_hint("see `orch status` for the reasons; `orch retry ID` runs a task again"));
    }
    Ok(())
}

fn run_error(e: RunError) -> CliError {
    let kind = match &e {
        RunError::Lock(crate::state::lock::LockError::Held { .. }) => ErrorKind::Locked,
        RunError::NoTarget { .. } | RunError::State(_) => ErrorKind::Input,
        _ => ErrorKind::Internal,
    };
    CliError::new(kind, e)
}

fn resolve_only(
    plan: &crate::plan::Plan,
    only: &[String],
) -> Result<Option<Vec<ItemIdx>>, CliError> {
    if only.is_empty() {
        return Ok(None);
    }
    let mut out = Vec::new();
    for id in only {
        let idx = plan
            .lookup(id)
            .ok_or_else(|| CliError::input(format!("`--only {id}`: `{id}` is not in the plan")))?;
        out.push(idx);
    }
    Ok(Some(out))
}

fn dry_run(
    ws: &Workspace,
    plan: &crate::plan::Plan,
    max_parallel: Option<usize>,
) -> Result<(), CliError> {
    let state = ws.load_state()?;
    let views = state::task_views(plan, state.as_ref());
    let limits = schedule::Limits {
        max_parallel: max_parallel.unwrap_or(ws.config.agent.max_parallel as usize),
        resources: ws.config.resources.clone(),
        phase_barrier: ws.config.scheduling.phase_barrier,
        aging: Some(ws.config.scheduling.aging.0).filter(|a| !a.is_zero()),
    };
    let s = schedule::schedule(plan, &views, std::time::SystemTime::now(), &limits);
    let mut out = anstream::stdout().lock();
    if s.start.is_empty() {
        writeln!(out, "Nothing would start.")?;
    }
    for t in s.start {
        let item = plan.item(plan.tasks()[t as usize]);
        writeln!(out, "would start {}  {}", item.id, item.title)?;
    }
    Ok(())
}
