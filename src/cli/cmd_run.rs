//! `orch run`: turn ready tasks into branches, worktrees and running agents.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::cli::cmd_plan::PlanFile;
use crate::cli::{GlobalArgs, Workspace, cmd_dash, progress};
use crate::coordinator::{self, Options, RunError, Setup};
use crate::dash;
use crate::dash::driver::{Dashboard, Exit};
use crate::dash::event::{Ev, nudge};
use crate::error::CliError;
use crate::hooks::install::{self, HookError};
use crate::plan::ItemIdx;
use crate::schedule;
use crate::state;
use crate::text::error_chain;

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
    #[arg(long, conflicts_with = "tui")]
    json: bool,
    /// Show the dashboard while the run goes on (quitting it leaves the run going)
    #[arg(long)]
    tui: bool,
}

pub fn run(global: &GlobalArgs, args: RunArgs) -> Result<(), CliError> {
    let ws = Workspace::discover(global)?;
    let repo = ws.require_repo()?;
    if let Some(linked) = &repo.linked {
        // One run per repository: its config, plan and state are the main
        // checkout's, whichever worktree the run is started from.
        eprintln!(
            "note: `{}` is a linked worktree; orch runs the repository from its main checkout `{}` (its config, plan and state)",
            linked.display(),
            repo.root.display()
        );
    }
    let (plan, source) = ws.load_plan_source(args.file.plan.as_deref())?;
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
    if ws.config.hooks.install {
        offer_hooks(&ws);
    }
    let output = if args.json {
        Output::Json
    } else if args.tui {
        Output::Dashboard
    } else {
        Output::Lines
    };
    drive(&ws, plan, Some(source), target, options, output)
}

/// Installs orch's git hooks when they are not all in place (`hooks.install`),
/// saying so; a failure is a warning, not a reason to stop the run.
pub fn offer_hooks(ws: &Workspace) {
    let Some(repo) = &ws.repo else { return };
    let done = install::locate(&repo.root).and_then(|location| {
        if install::all_installed(&location) {
            return Ok(None);
        }
        install::install(
            &location,
            &std::env::current_exe().map_err(|source| HookError::Io {
                path: location.dir.clone(),
                source,
            })?,
        )?;
        Ok(Some(location.dir))
    });
    match done {
        Ok(Some(dir)) => eprintln!(
            "Installed orch's git hooks in `{}` (`hooks.install` in the config); `orch hooks uninstall` removes them.",
            ws.display(&dir).display()
        ),
        Ok(None) => {}
        Err(e) => eprintln!(
            "warning: cannot install orch's git hooks: {}; the run goes on without them",
            error_chain(&e)
        ),
    }
}

/// How a run shows its progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// A line per event on stderr.
    Lines,
    /// The events as JSON lines on stdout.
    Json,
    /// The dashboard in front; progress lines once it is closed.
    Dashboard,
}

/// Runs the coordinator and turns its summary into the exit code.
pub fn drive(
    ws: &Workspace,
    plan: crate::plan::Plan,
    plan_source: Option<coordinator::PlanSource>,
    target: String,
    options: Options,
    output: Output,
) -> Result<(), CliError> {
    let repo = ws.require_repo()?.clone();
    repo.exclude(crate::state::DIR_NAME)?;
    repo.exclude_patterns(&agent_excludes(&ws.config, &plan))?;
    let setup = Setup {
        plan: Arc::new(plan),
        plan_source,
        config: ws.config.clone(),
        repo_root: repo.root.clone(),
        state_dir: ws.state_dir(),
        target,
        orch_exe: std::env::current_exe()?,
        options,
    };
    let summary = match output {
        Output::Json => coordinator::run(setup, Box::new(progress::json)),
        Output::Lines => {
            let mut human = progress::Human::new();
            coordinator::run(setup, Box::new(move |e| human.event(e)))
        }
        Output::Dashboard => behind_dashboard(setup),
    }?;
    if output != Output::Json {
        progress::summary(&summary);
    }
    if summary.interrupted {
        return Err(CliError::interrupted());
    }
    if summary.has_failures() {
        return Err(
            CliError::run_failed("the run ended with failed, blocked or conflicted tasks")
                .with_hint("see `orch status` for the reasons; `orch retry ID` runs a task again"),
        );
    }
    Ok(())
}

/// Runs the coordinator on a thread of its own with the dashboard in front.
///
/// Progress lines are held back while the dashboard owns the terminal and
/// printed once it is closed, so a run whose dashboard was quit still says
/// what it does. Stopping the run from the dashboard raises SIGINT in this
/// process, which the coordinator handles exactly as a Ctrl-C.
fn behind_dashboard(setup: Setup) -> Result<coordinator::Summary, RunError> {
    let state_dir = setup.state_dir.path().to_owned();
    std::fs::create_dir_all(&state_dir).map_err(|source| RunError::Io {
        path: state_dir.clone(),
        source,
    })?;
    let dashboard = match Dashboard::new(dash::driver::Options {
        plan: Arc::clone(&setup.plan),
        state_dir,
        in_run: true,
        color: cmd_dash::use_color(),
        default_agent: cmd_dash::default_agent(&setup.config),
    }) {
        Ok(dashboard) => dashboard,
        Err(e) => {
            eprintln!(
                "warning: no dashboard ({}); printing progress lines instead",
                error_chain(&e)
            );
            let mut human = progress::Human::new();
            return coordinator::run(setup, Box::new(move |e| human.event(e)));
        }
    };
    let to_dashboard = dashboard.sender();
    let quiet = Arc::new(AtomicBool::new(true));
    let run = {
        let quiet = Arc::clone(&quiet);
        std::thread::spawn(move || {
            let mut human = progress::Human::new();
            let sink = Box::new(move |e: &crate::state::events::Event| {
                if !quiet.load(Ordering::Acquire) {
                    human.event(e);
                }
            });
            let result = coordinator::run(setup, sink);
            let (how, close) = match &result {
                Ok(s) => (progress::summary_text(s), s.interrupted),
                Err(e) => (error_chain(e), true),
            };
            nudge(&to_dashboard, Ev::RunEnded { how, close });
            result
        })
    };
    let exit = dashboard.run();
    quiet.store(false, Ordering::Release);
    match exit {
        Ok(Exit::Quit) if !run.is_finished() => eprintln!(
            "The dashboard is closed; the run goes on (Ctrl-C stops it, `orch dash` shows it again)."
        ),
        Ok(Exit::StopRun) => {
            eprintln!("Stopping the run (Ctrl-C again kills the agents at once).");
            let _ = rustix::process::kill_process(
                rustix::process::getpid(),
                rustix::process::Signal::INT,
            );
        }
        Ok(_) => {}
        Err(e) => eprintln!(
            "warning: the dashboard stopped ({}); the run goes on, printing progress lines",
            error_chain(&e)
        ),
    }
    run.join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
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
    let limits = ws.config.limits(max_parallel);
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

/// Returns the `exclude` globs of the agents the plan runs (the default
/// one and every preset an item names): files they leave in worktrees that
/// git must never see, kept in `info/exclude` (docs/config.md, `exclude`).
fn agent_excludes(config: &crate::config::Config, plan: &crate::plan::Plan) -> Vec<String> {
    let names = plan.items.iter().filter_map(|i| i.agent());
    let mut patterns: Vec<String> = std::iter::once(None)
        .chain(names.map(Some))
        .filter_map(|name| config.agent(name))
        .flat_map(|agent| agent.exclude)
        .collect();
    patterns.sort();
    patterns.dedup();
    patterns
}
