//! `orch logs ID [--attempt N] [-f]`: an agent's captured output.

use std::io::{Read, Seek, SeekFrom, Write};
use std::time::Duration;

use crate::cli::{GlobalArgs, Workspace};
use crate::error::CliError;
use crate::plan::FullId;
use crate::runner::spec;

#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// The task or subtask
    id: String,
    /// Which attempt (default: the latest)
    #[arg(long, value_name = "N")]
    attempt: Option<u32>,
    /// Keep printing output as the agent writes it, until the attempt ends
    #[arg(short, long)]
    follow: bool,
}

pub fn run(global: &GlobalArgs, args: LogsArgs) -> Result<(), CliError> {
    let ws = Workspace::locate(global)?;
    let id = FullId::parse(&args.id)
        .map_err(|e| CliError::input(format!("invalid id `{}`: {e}", args.id)))?;
    let runs = ws.state_dir().unit_runs(&id);
    let attempt = match args.attempt {
        Some(n) => n,
        None => latest(&runs).ok_or_else(|| {
            CliError::input(format!("`{id}` has no runs yet"))
                .with_hint("`orch status` shows what has run")
        })?,
    };
    let dir = ws.state_dir().run_dir(&id, attempt);
    let log = dir.join(spec::LOG);
    if !dir.is_dir() {
        return Err(CliError::input(format!("`{id}` has no attempt {attempt}")));
    }
    let mut out = std::io::stdout().lock();
    let mut offset = copy_from(&log, 0, &mut out)?;
    if !args.follow {
        return Ok(());
    }
    loop {
        let ended = dir.join(spec::EXIT).exists();
        offset = copy_from(&log, offset, &mut out)?;
        if ended {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Returns the highest attempt number with a run folder.
fn latest(runs: &std::path::Path) -> Option<u32> {
    std::fs::read_dir(runs)
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
        .max()
}

/// Copies the log from `offset` to `out`; returns the new offset.
fn copy_from(log: &std::path::Path, offset: u64, out: &mut impl Write) -> Result<u64, CliError> {
    let mut file = match std::fs::File::open(log) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(offset),
        Err(e) => return Err(e.into()),
    };
    file.seek(SeekFrom::Start(offset))?;
    let mut buf = Vec::new();
    file.read_to_end(&mut buf)?;
    out.write_all(&buf)?;
    out.flush()?;
    Ok(offset + buf.len() as u64)
}
