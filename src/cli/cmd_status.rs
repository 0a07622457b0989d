//! `orch status [--json] [ID]`: where every item stands, from `state.json`.
//!
//! Works while a run is live (the file is replaced atomically, so a read is
//! always a whole state) and after it.

use std::io::Write;

use crate::cli::cmd_plan::PlanFile;
use crate::cli::json::{self, DetailDoc, StatusDoc, StatusItem};
use crate::cli::{GlobalArgs, Workspace, style};
use crate::error::CliError;
use crate::lifecycle::Status;
use crate::plan::{FullId, Kind, Plan};
use crate::state::events::EventKind;
use crate::state::model::{ALL_AGENTS, Attempt, Candidate, CandidateCheck, Outcome};
use crate::state::{self, State, lock};
use crate::text::plural;

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    file: PlanFile,
    /// Print JSON (`{"schema":1,"target":…,"items":[…],"counts":{…}}`)
    #[arg(long)]
    json: bool,
    /// Show one task or subtask in detail
    id: Option<String>,
}

pub fn run(global: &GlobalArgs, args: StatusArgs) -> Result<(), CliError> {
    let ws = Workspace::discover(global)?;
    let plan = ws.load_plan(args.file.plan.as_deref())?;
    let state = ws.load_state()?.unwrap_or_default();
    let live = lock::holder(ws.state_dir().path())?;
    if let Some(id) = &args.id {
        return detail(&ws, &plan, &state, id, args.json);
    }
    let statuses = state::item_statuses(&plan, Some(&state));
    let now = std::time::SystemTime::now();
    let doc = StatusDoc::new(&plan, &statuses, &state, live, now);
    let mut out = anstream::stdout().lock();
    if args.json {
        json::write_pretty(&mut out, &doc)?;
        return Ok(());
    }
    let run_line = match (live, &state.run) {
        (Some(pid), _) => format!("A run is live (pid {pid})"),
        (None, Some(run)) if run.finished.is_none() => format!(
            "No run is live; the last one (pid {}) was stopped without finishing",
            run.pid
        ),
        (None, Some(_)) => "No run is live".to_owned(),
        (None, None) => "Nothing has run yet".to_owned(),
    };
    let target = state
        .target
        .clone()
        .or_else(|| ws.config.git.target.clone());
    match target {
        Some(t) => writeln!(out, "{run_line}; target `{t}`.")?,
        None => writeln!(out, "{run_line}.")?,
    }
    for p in &doc.paused {
        let who = match p.agent.as_str() {
            ALL_AGENTS => "Every agent".to_owned(),
            agent => format!("Agent `{agent}`"),
        };
        let pause = &state.paused[&p.agent];
        writeln!(out, "{who} is {}.", pause.shown(&p.agent, now))?;
    }
    let depth = |idx| plan.ancestors(idx).count();
    let left: Vec<String> = plan
        .indices()
        .map(|idx| format!("{}{}", "  ".repeat(depth(idx)), plan.item(idx).id))
        .collect();
    let width = left.iter().map(|l| l.len()).max().unwrap_or(0).min(60);
    for idx in plan.indices() {
        let item = plan.item(idx);
        let status = statuses[idx.index()];
        let s = state.items.get(&item.id);
        let attempts = match s.map(|s| s.counted_attempts()) {
            Some(n) if n > 0 => format!(" ({})", plural(n as usize, "attempt", "attempts")),
            _ => String::new(),
        };
        let paused = matches!(status, Status::Ready | Status::Retrying)
            .then(|| item_pause(&ws.config, &plan, idx, &state, now))
            .flatten();
        let reason = match (paused.as_deref(), s.and_then(|s| s.reason.as_deref())) {
            (Some(r), _) => format!("  {d}{r}{d:#}", d = style::dim()),
            (None, Some(r))
                if matches!(
                    status,
                    Status::Failed
                        | Status::Blocked
                        | Status::Retrying
                        | Status::Conflicted
                        | Status::AwaitingMerge
                        | Status::Merging
                        | Status::AwaitingReview
                        | Status::Reverted
                ) =>
            {
                format!("  {d}{r}{d:#}", d = style::dim())
            }
            _ => String::new(),
        };
        let st = style::status(status);
        let usage = match &doc.items[idx.index()].usage {
            Some(u) if !plan.item(idx).kind.is_container() => {
                format!("  {d}{u}{d:#}", d = style::dim())
            }
            _ => String::new(),
        };
        writeln!(
            out,
            "{:<width$}  {st}{status}{st:#}{attempts}{usage}{reason}",
            left[idx.index()]
        )?;
    }
    let parts: Vec<String> = doc
        .counts
        .iter()
        .map(|(s, n)| format!("{n} {}", s.replace('_', " ")))
        .collect();
    writeln!(out, "Tasks: {}.", parts.join(", "))?;
    if let Some(u) = &doc.usage {
        writeln!(out, "Usage: {u}.")?;
    }
    write_queue(&mut out, &doc.queue)?;
    write_radar(&mut out, &doc.items)?;
    Ok(())
}

/// Writes the merge queue's candidates: the tasks each adds, and whether it
/// is checked on top of the candidate above it.
fn write_queue(out: &mut impl Write, queue: &[Candidate]) -> Result<(), CliError> {
    if queue.is_empty() {
        return Ok(());
    }
    writeln!(out, "Merge queue:")?;
    let mut above: Option<&str> = None;
    for candidate in queue {
        let what = match candidate.check {
            CandidateCheck::Running { slot } => {
                format!("checking in check worktree {}", slot + 1)
            }
            CandidateCheck::Passed => "passed".to_owned(),
            CandidateCheck::Failed => "red, finding the culprit".to_owned(),
            CandidateCheck::Landing => "landing".to_owned(),
        };
        let on_top = if above == Some(candidate.onto.as_str()) {
            ", on top of the above"
        } else {
            ""
        };
        let ids: Vec<&str> = candidate.tasks.iter().map(|t| t.as_str()).collect();
        writeln!(
            out,
            "  {}  {what}{on_top} ({})",
            ids.join(" "),
            plural(candidate.tasks.len(), "task", "tasks")
        )?;
        above = Some(candidate.commit.as_str());
    }
    Ok(())
}

/// Writes each pair of active tasks that change the same paths, once.
fn write_radar(out: &mut impl Write, items: &[StatusItem]) -> Result<(), CliError> {
    let pairs: Vec<(&FullId, &FullId, &Vec<String>)> = items
        .iter()
        .flat_map(|i| {
            i.overlaps
                .iter()
                .filter(move |(other, _)| i.id < **other)
                .map(move |(other, paths)| (&i.id, other, paths))
        })
        .collect();
    if pairs.is_empty() {
        return Ok(());
    }
    writeln!(out, "Conflict radar:")?;
    for (a, b, paths) in pairs {
        let shown: Vec<String> = paths.iter().take(5).map(|p| format!("`{p}`")).collect();
        let more = match paths.len().saturating_sub(5) {
            0 => String::new(),
            n => format!(" and {n} more"),
        };
        writeln!(out, "  {a} and {b} both change {}{more}", shown.join(", "))?;
    }
    Ok(())
}

/// Says why the item at `idx` cannot launch now, when its agent is paused.
fn item_pause(
    config: &crate::config::Config,
    plan: &Plan,
    idx: crate::plan::ItemIdx,
    state: &State,
    now: std::time::SystemTime,
) -> Option<String> {
    if state.paused.is_empty() {
        return None;
    }
    let item = plan.item(idx);
    let named = item
        .agent()
        .or_else(|| item.parent.and_then(|p| plan.item(p).agent()));
    let agent = config.agent(named)?;
    let (key, pause) = state.pause_of(agent.name(), now)?;
    Some(pause.shown(key, now))
}

fn detail(
    ws: &Workspace,
    plan: &Plan,
    state: &State,
    id: &str,
    as_json: bool,
) -> Result<(), CliError> {
    let idx = plan
        .lookup(id)
        .ok_or_else(|| CliError::input(format!("`{id}` is not in the plan")))?;
    let item = plan.item(idx);
    let status = state::item_statuses(plan, Some(state))[idx.index()];
    let s = state.items.get(&item.id);
    let attempts: &[Attempt] = s.map(|s| s.attempts.as_slice()).unwrap_or_default();
    let mut out = anstream::stdout().lock();
    if as_json {
        json::write_pretty(&mut out, &DetailDoc::new(plan, idx, status, state))?;
        return Ok(());
    }
    let st = style::status(status);
    writeln!(out, "{} {}: {}", item.kind, item.id, item.title)?;
    writeln!(out, "  status    {st}{status}{st:#}")?;
    if let Some(s) = s {
        for (label, value) in [
            ("reason", s.reason.clone()),
            ("branch", s.branch.clone()),
            (
                "worktree",
                s.worktree.as_ref().map(|w| w.display().to_string()),
            ),
            ("base", s.base.clone()),
            ("merged as", s.merge_commit.clone()),
            ("summary", s.summary.clone()),
        ] {
            if let Some(value) = value {
                writeln!(out, "  {label:<9} {value}")?;
            }
        }
    }
    if item.kind == Kind::Task || item.kind == Kind::Subtask {
        let log = ws.state_dir().path().join(crate::state::events::FILE_NAME);
        let commits: Vec<(String, String)> = crate::state::events::read_all(&log)
            .unwrap_or_default()
            .into_iter()
            .filter(|e| {
                e.id.as_ref()
                    .is_some_and(|i| *i == item.id || item.id.is_ancestor_of(i))
            })
            .filter_map(|e| match e.kind {
                EventKind::TaskCommit {
                    commit, subject, ..
                } => Some((
                    commit.chars().take(crate::git::refs::SHORT_ID).collect(),
                    subject,
                )),
                _ => None,
            })
            .collect();
        for (n, (sha, subject)) in commits.iter().rev().take(5).enumerate() {
            let label = if n == 0 { "commits" } else { "" };
            writeln!(out, "  {label:<9} {sha} {subject}")?;
        }
        for a in attempts {
            let took = a
                .finished
                .and_then(|f| f.0.duration_since(a.started.0).ok())
                .map(|d| format!(", {}", crate::text::duration(d)))
                .unwrap_or_default();
            let outcome = match &a.outcome {
                None => "running".to_owned(),
                Some(Outcome::Succeeded { commits }) => format!(
                    "succeeded ({})",
                    plural(*commits as usize, "commit", "commits")
                ),
                Some(Outcome::Failed { reason, .. }) => format!("failed: {reason}"),
                Some(Outcome::Interrupted { reason }) => format!("interrupted: {reason}"),
                Some(Outcome::Cancelled) => "cancelled".to_owned(),
            };
            let log = ws
                .state_dir()
                .run_dir(&item.id, a.number)
                .join(crate::runner::spec::LOG);
            let mut notes = Vec::new();
            if a.resumed
                && let Some(session) = &a.session
            {
                notes.push(format!("continued session `{session}`"));
            }
            if let Some(u) = &a.usage {
                notes.push(u.to_string());
            }
            if let Some(until) = a.paused_until {
                notes.push(format!(
                    "its agent paused until {}",
                    crate::when::local(until.0, std::time::SystemTime::now())
                ));
            }
            let notes = if notes.is_empty() {
                String::new()
            } else {
                format!(" ({})", notes.join("; "))
            };
            writeln!(
                out,
                "  attempt {} started {}{took}: {outcome}{notes}",
                a.number, a.started
            )?;
            writeln!(out, "            log: {}", ws.display(&log).display())?;
        }
    }
    Ok(())
}
