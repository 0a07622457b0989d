//! `orch pause [AGENT|--all] [--until TIME]` and `orch resume [AGENT|--all]`.
//!
//! A pause stops launching for an agent (a preset's name, or `default` for
//! `agent.command`), or for every agent; running attempts go on. As with
//! `orch retry`, the command goes through the inbox when a run is live and
//! waits for its answer; without one, [`control::pause_offline`] changes
//! `state.json` under the run lock, and the next run keeps the pause.

use std::io::Write;
use std::time::{Duration, SystemTime};

use crate::cli::{GlobalArgs, Workspace};
use crate::coordinator::control;
use crate::error::CliError;
use crate::state::inbox::{self, Order};
use crate::state::lock;
use crate::state::model::Timestamp;

/// How long to wait for a live run to answer.
const REPLY_WAIT: Duration = Duration::from_secs(5);

#[derive(Debug, clap::Args)]
pub struct PauseArgs {
    /// The agent: a preset's name (`claude`, `codex` ...), or `default` for `agent.command`
    #[arg(required_unless_present = "all")]
    agent: Option<String>,
    /// Pause every agent
    #[arg(long, conflicts_with = "agent")]
    all: bool,
    /// Resume by itself then: `17:00`, `5pm`, `30m`, `2h`, or an RFC 3339 time (default: until `orch resume`)
    #[arg(long, value_name = "TIME")]
    until: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct ResumeArgs {
    /// The agent whose pause to lift
    #[arg(required_unless_present = "all")]
    agent: Option<String>,
    /// Lift every pause
    #[arg(long, conflicts_with = "agent")]
    all: bool,
}

pub fn pause(global: &GlobalArgs, args: PauseArgs) -> Result<(), CliError> {
    let ws = Workspace::discover(global)?;
    ws.require_repo()?;
    if let Some(agent) = &args.agent {
        control::check_agent(&ws.config, agent).map_err(|e| CliError::input(e.to_string()))?;
    }
    let now = SystemTime::now();
    let until = match &args.until {
        None => None,
        Some(text) => match crate::when::parse(text, now) {
            Some(at) if at > now => Some(Timestamp::at(at)),
            Some(_) => {
                return Err(CliError::input(format!("`--until {text}` is in the past")));
            }
            None => {
                return Err(CliError::input(format!(
                    "cannot read `--until {text}`: write a time like `17:00`, `5pm`, `30m` or `2026-01-01T17:00:00Z`"
                )));
            }
        },
    };
    let how = match until {
        Some(at) => format!("until {}", crate::when::local(at.0, now)),
        None => format!(
            "until `orch resume {}`",
            args.agent.as_deref().unwrap_or("--all")
        ),
    };
    let order = Order::Pause {
        agent: args.agent.clone(),
        until,
    };
    send(&ws, order, &how)
}

pub fn resume(global: &GlobalArgs, args: ResumeArgs) -> Result<(), CliError> {
    let ws = Workspace::discover(global)?;
    ws.require_repo()?;
    send(&ws, Order::Resume { agent: args.agent }, "")
}

/// Applies `order` through the live run, or to the state without one;
/// `how` ends the line that says it was done.
fn send(ws: &Workspace, order: Order, how: &str) -> Result<(), CliError> {
    let dir = ws.state_dir();
    let mut out = anstream::stdout().lock();
    let what = match &order {
        Order::Pause { agent, .. } => format!("Paused {}", named(agent.as_deref())),
        Order::Resume { agent } => format!("Resumed {}", named(agent.as_deref())),
        Order::Retry { .. }
        | Order::Cancel { .. }
        | Order::Resolve { .. }
        | Order::Approve { .. }
        | Order::Reject { .. }
        | Order::Revert { .. } => String::new(),
    };
    let how = if how.is_empty() {
        String::new()
    } else {
        format!(" {how}")
    };
    if let Some(pid) = lock::holder(dir.path())? {
        let sent = inbox::send_order(dir.path(), order)?;
        return match inbox::await_reply(&sent, REPLY_WAIT)? {
            Some(reply) if reply.ok => {
                writeln!(out, "{what}{how} (by the live run, pid {pid}).")?;
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
    control::pause_offline(&dir, &ws.config, &order)?;
    writeln!(out, "{what}{how}.")?;
    Ok(())
}

fn named(agent: Option<&str>) -> String {
    match agent {
        Some(agent) => format!("`{agent}`"),
        None => "every agent".to_owned(),
    }
}
