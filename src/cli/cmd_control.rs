//! `orch retry|cancel|resolve|approve|reject|revert ID`.
//!
//! With a live run, the command goes through `.orchestrator/inbox/` and the
//! run applies it (within a second); this waits for its answer. Without
//! one, [`control::apply_offline`] applies it to `state.json` under the run
//! lock and stops any attempt it cancelled.
//!
//! `orch revert` first builds the revert on the target's head to refuse one
//! that conflicts, naming the files, before anything is recorded. Without a
//! live run it then drains the merge queue as `orch merge` does, so the
//! revert lands through the checks before the command returns.

use std::io::Write;
use std::time::Duration;

use crate::cli::{GlobalArgs, Workspace, cmd_run};
use crate::coordinator::{Options, control};
use crate::error::CliError;
use crate::lifecycle::Status;
use crate::merge_queue::MergeOutcome;
use crate::merge_queue::build::{self, BuildJob, LinkResult, LinkSpec, LinkWhat, Onto};
use crate::plan::{FullId, Plan};
use crate::state::inbox::{self, Action};
use crate::state::lock;

/// How long to wait for a live run to answer.
const REPLY_WAIT: Duration = Duration::from_secs(5);

#[derive(Debug, clap::Args)]
pub struct ControlArgs {
    /// The task or subtask
    id: String,
}

#[derive(Debug, clap::Args)]
pub struct RejectArgs {
    /// The task
    id: String,
    /// What the agent must change (it gets this text)
    #[arg(long)]
    reason: String,
}

pub fn run(global: &GlobalArgs, action: Action, args: ControlArgs) -> Result<(), CliError> {
    send(global, action, &args.id, None)
}

/// `orch reject ID --reason TEXT`.
pub fn reject(global: &GlobalArgs, args: RejectArgs) -> Result<(), CliError> {
    send(global, Action::Reject, &args.id, Some(&args.reason))
}

/// Sends a command to the live run, or applies it without one.
fn send(
    global: &GlobalArgs,
    action: Action,
    id: &str,
    reason: Option<&str>,
) -> Result<(), CliError> {
    let ws = Workspace::discover(global)?;
    ws.require_repo()?;
    let plan = ws.load_plan(None)?;
    let id = lookup(&plan, id)?;
    let dir = ws.state_dir();
    let mut out = anstream::stdout().lock();
    if let Some(pid) = lock::holder(dir.path())? {
        return ask_live(&mut out, dir.path(), pid, action, &id, reason);
    }
    control::apply_offline_with(&dir, &plan, action, id.as_str(), reason)?;
    writeln!(out, "{} `{id}`.", capitalize(action.past()))?;
    Ok(())
}

fn lookup(plan: &Plan, id: &str) -> Result<FullId, CliError> {
    let idx = plan
        .lookup(id)
        .ok_or_else(|| CliError::input(format!("`{id}` is not in the plan")))?;
    Ok(plan.item(idx).id.clone())
}

/// Sends a command through the inbox and prints the live run's answer.
fn ask_live(
    out: &mut impl Write,
    state_dir: &std::path::Path,
    pid: u32,
    action: Action,
    id: &FullId,
    reason: Option<&str>,
) -> Result<(), CliError> {
    let sent = inbox::send_with(state_dir, action, id, reason)?;
    match inbox::await_reply(&sent, REPLY_WAIT)? {
        Some(reply) if reply.ok => {
            writeln!(
                out,
                "{} (by the live run, pid {pid}).",
                capitalize(&reply.message)
            )?;
            Ok(())
        }
        Some(reply) => Err(CliError::input(reply.message)),
        None => {
            writeln!(
                out,
                "Sent to the live run (pid {pid}); it has not answered yet and will apply it shortly."
            )?;
            Ok(())
        }
    }
}

/// `orch revert ID`.
pub fn revert(global: &GlobalArgs, args: ControlArgs) -> Result<(), CliError> {
    let ws = Workspace::discover(global)?;
    let repo = ws.require_repo()?.clone();
    let plan = ws.load_plan(None)?;
    let id = lookup(&plan, &args.id)?;
    let target = ws.target()?;
    let dir = ws.state_dir();
    let state = dir.load_state()?.unwrap_or_default();
    // The run's own refusals (not merged, revert queued...), word for word.
    control::apply(
        &plan,
        &mut state.clone(),
        Action::Revert,
        id.as_str(),
        crate::state::model::Timestamp::now(),
    )
    .map_err(|e| CliError::input(e.to_string()))?;
    let s = state.items.get(&id);
    let Some(after) = s.and_then(|s| s.merge_commit.clone()) else {
        return Err(CliError::input(format!(
            "cannot revert `{id}`: orch does not know the commit its work landed as"
        )));
    };
    let before = s
        .and_then(|s| s.merged_onto.clone())
        .or_else(|| build::first_parent(&repo.root, &after));
    let preview = build::build(&BuildJob {
        repo: repo.root.clone(),
        state_dir: dir.path().to_owned(),
        target: target.clone(),
        strategy: ws.config.git.merge_strategy,
        policy: crate::merge_queue::policy::Policy::new(&ws.config.policy)
            .map_err(|e| CliError::input(e.to_string()))?,
        onto: Onto::Target { landed: None },
        links: vec![LinkSpec {
            task: id.to_string(),
            title: plan
                .lookup(id.as_str())
                .map(|i| plan.item(i).title.clone())
                .unwrap_or_default(),
            what: LinkWhat::Revert {
                before: before.unwrap_or_default(),
                after: after.clone(),
            },
        }],
        delete_branch: false,
        remove_worktree: false,
        admin: std::sync::Arc::new(std::sync::Mutex::new(())),
    });
    match preview.links.first().map(|(_, r)| r) {
        Some(LinkResult::Ended(MergeOutcome::Conflicts { files, .. })) => {
            let files: Vec<String> = files.iter().map(|f| format!("`{f}`")).collect();
            return Err(CliError::input(format!(
                "cannot revert `{id}`: undoing its work conflicts with `{target}` in {}; later changes build on it",
                files.join(", ")
            )));
        }
        Some(LinkResult::NothingToRevert) => {
            return Err(CliError::input(format!(
                "cannot revert `{id}`: `{target}` holds nothing of its work any more"
            )));
        }
        _ => {}
    }
    let dependents = control::merged_dependents(&plan, &state, &id);
    let mut out = anstream::stdout().lock();
    if !dependents.is_empty() {
        let ids: Vec<&str> = dependents.iter().map(|d| d.as_str()).collect();
        writeln!(
            out,
            "Note: the revert does not undo {}, merged and depending on `{id}`.",
            ids.join(", ")
        )?;
    }
    if let Some(pid) = lock::holder(dir.path())? {
        return ask_live(&mut out, dir.path(), pid, Action::Revert, &id, None);
    }
    control::apply_offline(&dir, &plan, Action::Revert, id.as_str())?;
    writeln!(
        out,
        "Queued the revert of `{id}`; it lands once the checks pass on it."
    )?;
    drop(out);
    let options = Options {
        merge_only: true,
        ..Options::default()
    };
    let drained = cmd_run::drive(&ws, plan, None, target, options, cmd_run::Output::Lines);
    let state = dir.load_state()?.unwrap_or_default();
    let item = state.items.get(&id);
    let mut out = anstream::stdout().lock();
    match (item.map(|s| s.status), item.and_then(|s| s.revert.as_ref())) {
        (Some(Status::Reverted), Some(revert)) => {
            writeln!(
                out,
                "Reverted `{id}` as {}.",
                revert.commit.as_deref().unwrap_or_default()
            )?;
            drained
        }
        _ => {
            let events = crate::state::events::read_all(&dir.events_file()).unwrap_or_default();
            let why = events.iter().rev().find_map(|e| match &e.kind {
                crate::state::events::EventKind::RevertRefused { reason }
                    if e.id.as_ref() == Some(&id) =>
                {
                    Some(reason.clone())
                }
                _ => None,
            });
            drained?;
            Err(CliError::run_failed(format!(
                "the revert of `{id}` did not land: {}",
                why.unwrap_or_else(|| "see `orch status`".to_owned())
            )))
        }
    }
}

fn capitalize(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}
