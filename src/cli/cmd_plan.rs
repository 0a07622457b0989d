//! `orch plan check|show|next|graph|import`.

use std::io::Write;
use std::path::PathBuf;
use std::time::SystemTime;

use crate::cli::graph_render;
use crate::cli::json::{self, NextDoc, PlanDoc};
use crate::cli::style;
use crate::cli::{GlobalArgs, Workspace};
use crate::error::CliError;
use crate::plan::taskmaster;
use crate::plan::{self, Kind, Plan};
use crate::schedule::{self, Hold, Readiness};
use crate::state::{self, State};
use crate::text::plural;

#[derive(Debug, clap::Subcommand)]
pub enum PlanCommand {
    /// Validate the plan and the config; print counts on success
    Check(PlanFile),
    /// Print the plan as a tree with ids, titles, priorities and statuses
    Show(ShowArgs),
    /// Print the tasks ready now, in the order `orch run` would start them
    Next(NextArgs),
    /// Print the dependency graph as Graphviz DOT or Mermaid
    Graph(GraphArgs),
    /// Show what changed in the plan since the last run: tasks added, removed, retitled, reprioritized ...
    Diff(DiffArgs),
    /// Convert another tool's task file into a plan
    #[command(subcommand)]
    Import(ImportCommand),
}

#[derive(Debug, clap::Args)]
pub struct PlanFile {
    /// Read the plan from FILE (TOML or JSON) instead of the config's `plan`
    #[arg(long, value_name = "FILE")]
    pub(crate) plan: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    #[command(flatten)]
    file: PlanFile,
    /// Print JSON instead of a tree
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
pub struct NextArgs {
    #[command(flatten)]
    file: PlanFile,
    /// Print JSON: `{"ready":[{"id","title","priority",...}]}`
    #[arg(long)]
    json: bool,
    /// Assume this many agents may run at once instead of `agent.max_parallel`
    #[arg(long, value_name = "N")]
    max_parallel: Option<usize>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum GraphFormat {
    Dot,
    Mermaid,
}

#[derive(Debug, clap::Args)]
pub struct GraphArgs {
    #[command(flatten)]
    file: PlanFile,
    /// The output format
    #[arg(long, value_enum, default_value = "dot")]
    format: GraphFormat,
}

#[derive(Debug, clap::Args)]
pub struct DiffArgs {
    #[command(flatten)]
    file: PlanFile,
    /// Print JSON: `{"from","to","added":[...],"removed":[...],...}`
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Subcommand)]
pub enum ImportCommand {
    /// Convert a Taskmaster AI `tasks.json` into a TOML plan
    Taskmaster(TaskmasterArgs),
}

#[derive(Debug, clap::Args)]
pub struct TaskmasterArgs {
    /// The Taskmaster file, usually `.taskmaster/tasks/tasks.json`
    file: PathBuf,
    /// The tag to convert (default: `master`, or the only tag)
    #[arg(long, value_name = "NAME")]
    tag: Option<String>,
    /// Write the plan to FILE instead of stdout; refuses to overwrite
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
}

pub fn run(global: &GlobalArgs, command: PlanCommand) -> Result<(), CliError> {
    match command {
        PlanCommand::Check(args) => check(global, args),
        PlanCommand::Show(args) => show(global, args),
        PlanCommand::Next(args) => next(global, args),
        PlanCommand::Graph(args) => graph(global, args),
        PlanCommand::Diff(args) => diff(global, args),
        PlanCommand::Import(ImportCommand::Taskmaster(args)) => import_taskmaster(global, args),
    }
}

fn check(global: &GlobalArgs, args: PlanFile) -> Result<(), CliError> {
    let ws = Workspace::discover(global)?;
    let plan = ws.load_plan(args.plan.as_deref())?;
    let path = ws.display(&ws.plan_path(args.plan.as_deref()));
    let mut out = anstream::stdout().lock();
    writeln!(
        out,
        "{}: {}, {}, {}, {}",
        path.display(),
        plural(plan.tasks().len(), "task", "tasks"),
        plural(plan.subtask_count(), "subtask", "subtasks"),
        plural(plan.dependency_count(), "dependency", "dependencies"),
        plural(
            plan.graph().levels() as usize,
            "dependency level",
            "dependency levels"
        ),
    )?;
    exit_without_drop(plan);
    Ok(())
}

/// Skips freeing a plan the process is about to exit with: on a 100,000-task
/// plan, freeing it costs a tenth of `plan check` (benches/plan_check.rs).
fn exit_without_drop<T>(value: T) {
    std::mem::forget(value);
}

/// Loads the plan and, if a run left one, the state.
fn load(
    global: &GlobalArgs,
    file: &PlanFile,
) -> Result<(Workspace, Plan, Option<State>), CliError> {
    let ws = Workspace::discover(global)?;
    let plan = ws.load_plan(file.plan.as_deref())?;
    let state = if ws.repo.is_some() {
        ws.load_state()?
    } else {
        None
    };
    Ok((ws, plan, state))
}

fn show(global: &GlobalArgs, args: ShowArgs) -> Result<(), CliError> {
    let (_ws, plan, state) = load(global, &args.file)?;
    let statuses = state::item_statuses(&plan, state.as_ref());
    let mut out = anstream::stdout().lock();
    if args.json {
        json::write_pretty(&mut out, &PlanDoc::new(&plan, &statuses))?;
        return Ok(());
    }
    if let Some(title) = &plan.title {
        writeln!(out, "{h}{title}{h:#}", h = style::heading())?;
    }
    let depth = |idx: plan::ItemIdx| plan.ancestors(idx).count();
    let left: Vec<String> = plan
        .indices()
        .map(|idx| {
            let item = plan.item(idx);
            format!("{}{}  {}", "  ".repeat(depth(idx)), item.id, item.title)
        })
        .collect();
    let width = left
        .iter()
        .map(|l| l.chars().count())
        .max()
        .unwrap_or(0)
        .min(72);
    let graph = plan.graph();
    let level_width = format!("L{}", graph.levels()).len();
    for idx in plan.indices() {
        let item = plan.item(idx);
        let status = statuses[idx.index()];
        let priority = match item.kind {
            Kind::Task | Kind::Subtask => format!("p{}", item.priority.level()),
            Kind::Phase | Kind::Milestone => String::new(),
        };
        // A task's dependency level: 1 needs nothing, n needs a task of level n - 1.
        let level = graph
            .task_node(idx)
            .map(|t| format!("L{}", graph.level(t)))
            .unwrap_or_default();
        let progress = match item.kind {
            Kind::Phase | Kind::Milestone => {
                let range = item.descendants(idx);
                let tasks = plan.tasks().iter().filter(|t| range.contains(&t.index()));
                let (done, total) = tasks.fold((0, 0), |(d, n), t| {
                    (d + usize::from(statuses[t.index()].satisfies()), n + 1)
                });
                format!("  {d}{done}/{total}{d:#}", d = style::dim())
            }
            Kind::Task | Kind::Subtask => String::new(),
        };
        let st = style::status(status);
        writeln!(
            out,
            "{:<width$}  {priority:<2}  {level:<level_width$}  {st}{status}{st:#}{progress}",
            left[idx.index()]
        )?;
    }
    Ok(())
}

fn next(global: &GlobalArgs, args: NextArgs) -> Result<(), CliError> {
    let (ws, plan, state) = load(global, &args.file)?;
    let limits = ws.config.limits(args.max_parallel);
    let mut views = state::task_views(&plan, state.as_ref());
    if ws.config.scheduling.avoid_overlap
        && let Some(state) = &state
    {
        let held = crate::merge_queue::radar::held_back(&plan, state);
        for (t, task) in plan.tasks().iter().enumerate() {
            views[t].overlaps = held.get(task).copied();
        }
    }
    let now = SystemTime::now();
    let paused = |t: u32| {
        let st = state.as_ref().filter(|st| !st.paused.is_empty())?;
        let task = plan.item(plan.tasks()[t as usize]);
        let agent = ws.config.agent(task.agent())?;
        let (key, pause) = st.pause_of(agent.name(), now)?;
        Some(Hold::Paused {
            agent: key.to_owned(),
            until: pause.until.map(|u| u.0),
        })
    };
    let s = schedule::schedule_holding(&plan, &views, now, &limits, &paused);
    let mut out = anstream::stdout().lock();
    if args.json {
        json::write_pretty(
            &mut out,
            &NextDoc::new(&plan, &views, &s, now, limits.aging),
        )?;
        return Ok(());
    }
    let entries: Vec<(u32, Option<&Hold>)> = s
        .start
        .iter()
        .map(|t| (*t, None))
        .chain(s.held.iter().map(|(t, h)| (*t, Some(h))))
        .collect();
    let task_of = |t: u32| plan.item(plan.tasks()[t as usize]);
    if entries.is_empty() {
        drop(out);
        let mut err = anstream::stderr().lock();
        writeln!(
            err,
            "Nothing is ready: {}.",
            summarize(&views, &s.readiness)
        )?;
        return Ok(());
    }
    let width = entries
        .iter()
        .map(|(t, _)| task_of(*t).id.as_str().len())
        .max()
        .unwrap_or(0);
    for (t, hold) in &entries {
        let item = task_of(*t);
        let held = match hold {
            Some(h) => format!("  {d}(held: {}){d:#}", h.describe(&plan), d = style::dim()),
            None => String::new(),
        };
        writeln!(
            out,
            "{:<width$}  p{}  {}{held}",
            item.id.as_str(),
            item.priority.level(),
            item.title
        )?;
    }
    Ok(())
}

/// Says why nothing is ready, by counting where tasks stand.
fn summarize(views: &[schedule::TaskView], readiness: &[Readiness]) -> String {
    let mut waiting = 0;
    let mut blocked = 0;
    let mut active = 0;
    let mut finished = 0;
    for (view, r) in views.iter().zip(readiness) {
        match r {
            Readiness::Waiting(_) => waiting += 1,
            Readiness::Blocked(_) => blocked += 1,
            _ if view.status.is_terminal() => finished += 1,
            _ => active += 1,
        }
    }
    let mut parts = Vec::new();
    if active > 0 {
        parts.push(format!("{} under way", plural(active, "task", "tasks")));
    }
    if waiting > 0 {
        parts.push(format!(
            "{} waiting on dependencies",
            plural(waiting, "task", "tasks")
        ));
    }
    if blocked > 0 {
        parts.push(format!("{} blocked", plural(blocked, "task", "tasks")));
    }
    if finished > 0 || parts.is_empty() {
        parts.push(format!("{} finished", plural(finished, "task", "tasks")));
    }
    parts.join(", ")
}

fn graph(global: &GlobalArgs, args: GraphArgs) -> Result<(), CliError> {
    let (_ws, plan, _state) = load(global, &args.file)?;
    let text = match args.format {
        GraphFormat::Dot => graph_render::dot(&plan),
        GraphFormat::Mermaid => graph_render::mermaid(&plan),
    };
    anstream::stdout().lock().write_all(text.as_bytes())?;
    Ok(())
}

/// `orch plan diff --json`.
#[derive(Debug, serde::Serialize)]
struct DiffDoc<'a> {
    /// The digest of the plan the last run ran, and of the plan now.
    from: Option<&'a str>,
    to: &'a str,
    #[serde(flatten)]
    diff: &'a plan::PlanDiff,
}

fn diff(global: &GlobalArgs, args: DiffArgs) -> Result<(), CliError> {
    let ws = Workspace::discover(global)?;
    let (new, source) = ws.load_plan_source(args.file.plan.as_deref())?;
    let state = if ws.repo.is_some() {
        ws.load_state()?
    } else {
        None
    };
    let to = plan::digest(&source.bytes);
    let from = state.as_ref().and_then(|s| s.run.as_ref()?.plan.clone());
    let dir = ws.state_dir();
    let old = match &from {
        None => None,
        Some(digest) => {
            let copy = dir.find_plan_copy(digest).ok_or_else(|| {
                CliError::input(format!(
                    "no copy is left of the plan the last run ran (`{}`)",
                    dir.show(&dir.plans().join(digest))
                ))
            })?;
            let bytes = std::fs::read(&copy)?;
            let shown = ws.display(&copy);
            Some(plan::from_bytes(&shown, &bytes, &plan::Rules::default())?)
        }
    };
    let changes = old
        .as_ref()
        .map(|old| plan::diff::diff(old, &new))
        .unwrap_or_default();
    let mut out = anstream::stdout().lock();
    if args.json {
        let doc = DiffDoc {
            from: from.as_deref(),
            to: &to,
            diff: &changes,
        };
        json::write_pretty(&mut out, &doc)?;
        return Ok(());
    }
    let short = plan::diff::short;
    let Some(from) = from else {
        drop(out);
        writeln!(
            anstream::stderr().lock(),
            "No run has recorded its plan yet: nothing to compare with (the plan is {}).",
            short(&to)
        )?;
        return Ok(());
    };
    if from == to {
        writeln!(
            out,
            "The plan is the one the last run ran ({}).",
            short(&to)
        )?;
        return Ok(());
    }
    if changes.is_empty() {
        writeln!(
            out,
            "The plan file changed since the last run ({} -> {}), but no task or subtask did.",
            short(&from),
            short(&to)
        )?;
        return Ok(());
    }
    writeln!(
        out,
        "Changes since the last run's plan ({} -> {}):",
        short(&from),
        short(&to)
    )?;
    let old = old.as_ref();
    let title = |plan: Option<&Plan>, id: &plan::FullId| {
        plan.and_then(|p| p.lookup(id.as_str()).map(|i| p.item(i).title.clone()))
            .unwrap_or_default()
    };
    let merged = |id: &plan::FullId| {
        let merged = state
            .as_ref()
            .and_then(|s| s.items.get(id))
            .is_some_and(|s| s.status == crate::lifecycle::Status::Merged);
        if merged {
            "  (merged; the work stays: `orch retry ID` runs it again)"
        } else {
            ""
        }
    };
    let mut rows: Vec<(&str, String, String)> = Vec::new();
    for id in &changes.added {
        rows.push(("added", id.to_string(), title(Some(&new), id)));
    }
    for id in &changes.removed {
        rows.push(("removed", id.to_string(), title(old, id)));
    }
    for r in &changes.retitled {
        let text = format!("{:?} -> {:?}{}", r.from, r.to, merged(&r.id));
        rows.push(("retitled", r.id.to_string(), text));
    }
    let list = |deps: &[String]| {
        if deps.is_empty() {
            "none".to_owned()
        } else {
            deps.join(", ")
        }
    };
    for d in &changes.dependencies {
        let text = format!("{} -> {}{}", list(&d.from), list(&d.to), merged(&d.id));
        rows.push(("dependencies", d.id.to_string(), text));
    }
    for p in &changes.priorities {
        let text = format!("p{} -> p{}{}", p.from, p.to, merged(&p.id));
        rows.push(("priority", p.id.to_string(), text));
    }
    for id in &changes.redefined {
        let text = format!("description, acceptance or other fields{}", merged(id));
        rows.push(("redefined", id.to_string(), text));
    }
    let kind_width = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    let id_width = rows.iter().map(|r| r.1.len()).max().unwrap_or(0);
    for (kind, id, text) in rows {
        writeln!(out, "  {kind:<kind_width$}  {id:<id_width$}  {text}")?;
    }
    Ok(())
}

fn import_taskmaster(global: &GlobalArgs, args: TaskmasterArgs) -> Result<(), CliError> {
    let ws = Workspace::locate(global)?;
    let source = ws.cwd.join(&args.file);
    let output = args.output.as_ref().map(|o| ws.cwd.join(o));
    if let Some(path) = output.as_ref().filter(|p| p.exists()) {
        return Err(CliError::input(format!(
            "refusing to overwrite `{}`",
            ws.display(path).display()
        ))
        .with_hint("pick another `--output`, or remove the file first"));
    }
    let shown = ws.display(&source);
    let text = std::fs::read_to_string(&source)
        .map_err(|e| CliError::input(format!("cannot read `{}`: {e}", shown.display())))?;
    let imported =
        taskmaster::convert(&text, args.tag.as_deref()).map_err(|error| taskmaster::InFile {
            path: shown.clone(),
            error,
        })?;
    if imported.tasks == 0 {
        let which = imported
            .tag
            .as_deref()
            .map(|t| format!("tag `{t}` of "))
            .unwrap_or_default();
        return Err(CliError::input(format!(
            "{which}`{}` has no tasks to import",
            shown.display()
        )));
    }
    let name = PathBuf::from("(converted plan)");
    plan::from_bytes(&name, imported.toml.as_bytes(), &plan::Rules::default()).map_err(|e| {
        CliError::from(e).with_hint(format!(
            "the positions are in the converted plan; fix `{}` and import again (nothing was written)",
            shown.display()
        ))
    })?;
    let summary = format!(
        "{} and {}",
        plural(imported.tasks, "task", "tasks"),
        plural(imported.subtasks, "subtask", "subtasks")
    );
    match &output {
        None => anstream::stdout()
            .lock()
            .write_all(imported.toml.as_bytes())?,
        Some(path) => {
            crate::fsio::write_atomically(path, imported.toml.as_bytes())?;
            let mut err = anstream::stderr().lock();
            writeln!(err, "Wrote `{}`: {summary}.", ws.display(path).display())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::Status;

    #[test]
    fn summary_counts_where_tasks_stand() {
        let views = [
            schedule::TaskView::new(Status::Running),
            schedule::TaskView::new(Status::Pending),
            schedule::TaskView::new(Status::Merged),
        ];
        let readiness = [
            Readiness::Settled,
            Readiness::Waiting(schedule::Wait::Dependency(plan::ItemIdx(0))),
            Readiness::Settled,
        ];
        assert_eq!(
            summarize(&views, &readiness),
            "1 task under way, 1 task waiting on dependencies, 1 task finished"
        );
    }
}
