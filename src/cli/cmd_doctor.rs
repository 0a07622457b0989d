//! `orch doctor`: what is wrong, and what to do about it.
//!
//! Exits 0 when nothing needs fixing (warnings included), 2 when something
//! stops orch from working (bad input, in the exit-code table's terms).

use std::io::Write;

use crate::cli::{GlobalArgs, Workspace, style};
use crate::config;
use crate::doctor::{self, Level, Subject};
use crate::error::CliError;
use crate::lifecycle::Status;
use crate::text::plural;

#[derive(Debug, clap::Args)]
pub struct DoctorArgs {}

pub fn run(global: &GlobalArgs, _args: DoctorArgs) -> Result<(), CliError> {
    let ws = Workspace::locate(global)?;
    ws.require_repo()?;
    let (config, optional) = match &global.config {
        Some(path) => (ws.cwd.join(path), false),
        None => (ws.root.join(config::FILE_NAME), true),
    };
    let findings = doctor::examine(&Subject {
        root: ws.root.clone(),
        config,
        config_optional: optional,
        cwd: ws.cwd.clone(),
    });
    let mut out = anstream::stdout().lock();
    for f in &findings {
        let (word, st) = match f.level {
            Level::Ok => ("ok", style::status(Status::Merged)),
            Level::Warn => ("warn", style::status(Status::Retrying)),
            Level::Error => ("error", style::status(Status::Failed)),
        };
        writeln!(out, "{st}{word:<5}{st:#} {:<9} {}", f.area, f.message)?;
        if let Some(fix) = &f.fix {
            writeln!(out, "                {d}fix:{d:#} {fix}", d = style::dim())?;
        }
    }
    let errors = findings.iter().filter(|f| f.level == Level::Error).count();
    let warnings = findings.iter().filter(|f| f.level == Level::Warn).count();
    if errors > 0 {
        return Err(CliError::input(format!(
            "{} and {} found",
            plural(errors, "problem", "problems"),
            plural(warnings, "warning", "warnings")
        )));
    }
    writeln!(
        out,
        "No problems{}.",
        if warnings > 0 {
            format!("; {}", plural(warnings, "warning", "warnings"))
        } else {
            String::new()
        }
    )?;
    Ok(())
}
