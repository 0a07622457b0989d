//! `orch retry|cancel|resolve ID`.
//!
//! With a live run, the command goes through `.orchestrator/inbox/` and the
//! run applies it (within a second); this waits for its answer. Without
//! one, it is applied to `state.json` directly, under the run lock so that
//! no run starts meanwhile; a cancelled attempt whose supervisor outlived an
//! earlier run is stopped through its process group.

use std::io::Write;
use std::time::Duration;

use crate::cli::{GlobalArgs, Workspace};
use crate::coordinator::control;
use crate::error::{CliError, ErrorKind};
use crate::plan::FullId;
use crate::runner::folder::RunFolder;
use crate::state::events::EventLog;
use crate::state::inbox::{self, Action};
use crate::state::model::Timestamp;
use crate::state::{lock, store};

/// How long to wait for a live run to answer.
const REPLY_WAIT: Duration = Duration::from_secs(5);

#[derive(Debug, clap::Args)]
pub struct ControlArgs {
    /// The task or subtask
    id: String,
}

pub fn run(global: &GlobalArgs, action: Action, args: ControlArgs) -> Result<(), CliError> {
    let ws = Workspace::discover(global)?;
    ws.require_repo()?;
    let plan = ws.load_plan(None)?;
    let idx = plan
        .lookup(&args.id)
        .ok_or_else(|| CliError::input(format!("`{}` is not in the plan", args.id)))?;
    let id = plan.item(idx).id.clone();
    let dir = ws.state_dir();
    std::fs::create_dir_all(dir.path())?;
    let mut out = anstream::stdout().lock();
    if let Some(pid) = lock::holder(dir.path())? {
        let sent = inbox::send(dir.path(), action, &id)?;
        return match inbox::await_reply(&sent, REPLY_WAIT)? {
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
        };
    }
    let _lock = lock::acquire(dir.path())?;
    let mut state = dir.load_state()?.unwrap_or_default();
    let applied = control::apply(&plan, &mut state, action, id.as_str(), Timestamp::now())
        .map_err(|e| CliError::new(ErrorKind::Input, e))?;
    store::save(&dir.state_file(), &state)?;
    if let Ok(mut log) = EventLog::open(&dir.path().join(crate::state::events::FILE_NAME)) {
        for (item, kind) in applied.events {
            let _ = log.append(Some(&item), kind);
        }
    }
    for stop in &applied.stop {
        stop_orphan(&dir, &stop.unit, stop.attempt);
    }
    writeln!(out, "{} `{id}`.", capitalize(action.past()))?;
    Ok(())
}

/// Stops an agent whose supervisor outlived the run that started it.
fn stop_orphan(state_dir: &crate::state::StateDir, unit: &FullId, attempt: u32) {
    let folder = RunFolder::new(state_dir.run_dir(unit, attempt));
    if let Err(e) = folder.stop_orphan(Duration::from_secs(5)) {
        tracing::warn!(error = %e, unit = %unit, "cannot stop the attempt's processes");
    }
}

fn capitalize(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}
