//! `orch retry|cancel|resolve ID`.
//!
//! With a live run, the command goes through `.orchestrator/inbox/` and the
//! run applies it (within a second); this waits for its answer. Without
//! one, [`control::apply_offline`] applies it to `state.json` under the run
//! lock and stops any attempt it cancelled.

use std::io::Write;
use std::time::Duration;

use crate::cli::{GlobalArgs, Workspace};
use crate::coordinator::control;
use crate::error::CliError;
use crate::state::inbox::{self, Action};
use crate::state::lock;

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
    control::apply_offline(&dir, &plan, action, id.as_str())?;
    writeln!(out, "{} `{id}`.", capitalize(action.past()))?;
    Ok(())
}

fn capitalize(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}
