//! `orch notify list|replay`: the notification outbox (docs/notify.md).

use std::io::Write;
use std::time::SystemTime;

use crate::cli::{GlobalArgs, Workspace, json};
use crate::error::CliError;
use crate::notifications::{Delivery, Destination, List, Outbox, worker};
use crate::state::Timestamp;
use crate::state::lock::{self, LockError};
use crate::text::{duration, plural};

#[derive(Debug, clap::Subcommand)]
pub enum NotifyCommand {
    /// List the notifications waiting for their next try and those given up on
    List(ListArgs),
    /// Send notifications given up on (or waiting) again now
    Replay(ReplayArgs),
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Print JSON: `{"pending":[...],"dead":[...]}`, each as its outbox file has it
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// The notifications to send again, by id (as `orch notify list` shows them)
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    ids: Vec<String>,
    /// Send every notification given up on again
    #[arg(long)]
    all: bool,
}

pub fn run(global: &GlobalArgs, command: NotifyCommand) -> Result<(), CliError> {
    let ws = Workspace::discover(global)?;
    ws.require_repo()?;
    let outbox = Outbox::at(&ws.state_dir().outbox());
    match command {
        NotifyCommand::List(args) => list(&outbox, args),
        NotifyCommand::Replay(args) => replay(&ws, &outbox, args),
    }
}

#[derive(serde::Serialize)]
struct ListDoc {
    pending: Vec<Delivery>,
    dead: Vec<Delivery>,
}

fn list(outbox: &Outbox, args: ListArgs) -> Result<(), CliError> {
    let doc = ListDoc {
        pending: outbox.list(List::Pending).map_err(outbox_error)?,
        dead: outbox.list(List::Dead).map_err(outbox_error)?,
    };
    let mut out = anstream::stdout().lock();
    if args.json {
        json::write_pretty(&mut out, &doc)?;
        return Ok(());
    }
    if doc.pending.is_empty() && doc.dead.is_empty() {
        writeln!(out, "No notification is waiting or given up on.")?;
        return Ok(());
    }
    let now = SystemTime::now();
    if !doc.pending.is_empty() {
        writeln!(out, "Waiting ({}):", doc.pending.len())?;
        for d in &doc.pending {
            let when = match d.next.0.duration_since(now) {
                Ok(wait) if !wait.is_zero() => format!("next try in {}", duration(wait)),
                _ => "next try now".to_owned(),
            };
            writeln!(out, "  {}  {}  {when}{}", d.id, what(d), last_error(d))?;
        }
    }
    if !doc.dead.is_empty() {
        writeln!(
            out,
            "Given up on ({}; `orch notify replay ID` or `--all` sends again):",
            doc.dead.len()
        )?;
        for d in &doc.dead {
            writeln!(
                out,
                "  {}  {}  {}{}",
                d.id,
                what(d),
                plural(d.tries.len(), "try", "tries"),
                last_error(d)
            )?;
        }
    }
    Ok(())
}

/// Names the event of a delivery and the item it is about.
fn what(d: &Delivery) -> String {
    match d.data.get("id").and_then(|i| i.as_str()) {
        Some(id) => format!("{} {id} -> {}", d.event, d.destination),
        None => format!("{} -> {}", d.event, d.destination),
    }
}

fn last_error(d: &Delivery) -> String {
    d.tries
        .last()
        .and_then(|t| t.error.as_deref())
        .map(|e| format!("; last: {e}"))
        .unwrap_or_default()
}

fn outbox_error(e: crate::notifications::OutboxError) -> CliError {
    CliError::from(e)
}

fn replay(ws: &Workspace, outbox: &Outbox, args: ReplayArgs) -> Result<(), CliError> {
    let chosen: Vec<(List, Delivery)> = if args.all {
        outbox
            .list(List::Dead)
            .map_err(outbox_error)?
            .into_iter()
            .map(|d| (List::Dead, d))
            .collect()
    } else {
        args.ids
            .iter()
            .map(|id| outbox.find(id))
            .collect::<Result<_, _>>()
            .map_err(outbox_error)?
    };
    let mut err = anstream::stderr().lock();
    if chosen.is_empty() {
        writeln!(err, "No notification is given up on.")?;
        return Ok(());
    }
    let dir = ws.state_dir();
    std::fs::create_dir_all(dir.path())?;
    match lock::acquire(dir.path()) {
        Err(LockError::Held { pid, .. }) => {
            // The live run's worker makes the tries; sending from here too
            // could deliver twice.
            for (list, mut d) in chosen {
                d.next = Timestamp::at(SystemTime::now());
                outbox.put(List::Pending, &d).map_err(outbox_error)?;
                if list == List::Dead {
                    outbox.remove(List::Dead, &d.id).map_err(outbox_error)?;
                }
                let holder = pid.map_or("unknown".to_owned(), |p| p.to_string());
                writeln!(err, "Handed `{}` to the live run (pid {holder}).", d.id)?;
            }
            Ok(())
        }
        Err(e) => Err(e.into()),
        Ok(_lock) => {
            let destinations = ws
                .config
                .notify
                .iter()
                .enumerate()
                .map(|(n, c)| Destination::from_config(n, c))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| CliError::input(crate::text::error_chain(&e)))?;
            let results = worker::replay(outbox, &destinations, chosen);
            let failed = results.iter().filter(|(_, r)| r.is_err()).count();
            for (id, result) in &results {
                match result {
                    Ok(()) => writeln!(err, "Delivered `{id}`.")?,
                    Err(e) => writeln!(err, "Not delivered `{id}`: {e}; it stays given up on.")?,
                }
            }
            if failed > 0 {
                return Err(CliError::run_failed(format!(
                    "{} not delivered",
                    plural(failed, "notification", "notifications")
                )));
            }
            Ok(())
        }
    }
}
