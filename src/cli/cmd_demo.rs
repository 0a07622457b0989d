//! `orch demo [DIR]`: the whole loop on a scratch repository with the
//! built-in demo agent (see `crate::demo`), with the dashboard when stdout
//! is a terminal and progress lines otherwise; then the target's history.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use crate::cli::cmd_run::{self, Output};
use crate::cli::{GlobalArgs, Workspace};
use crate::coordinator::Options;
use crate::demo;
use crate::error::CliError;
use crate::git::cmd;

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Where to make the demo repository: a new or empty folder (default: a new folder in the temp dir)
    dir: Option<PathBuf>,
}

/// Returns how to call this `orch`: `orch` when that is what PATH finds, else its path.
fn invocation() -> String {
    let me = std::env::current_exe().and_then(|p| p.canonicalize()).ok();
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths).find_map(|dir| dir.join("orch").canonicalize().ok())
    });
    match (me, on_path) {
        (Some(me), Some(found)) if me == found => "orch".to_owned(),
        (Some(me), _) => me.display().to_string(),
        (None, _) => "orch".to_owned(),
    }
}

pub fn run(global: &GlobalArgs, args: DemoArgs) -> Result<(), CliError> {
    if let Some(config) = &global.config {
        return Err(CliError::input(format!(
            "`orch demo` writes its own config in the demo repository; `--config {}` would be ignored",
            config.display()
        ))
        .with_hint(
            "run `orch demo` without `--config`, then edit `.orchestrator.toml` in the demo repository and `orch run` there",
        ));
    }
    let dir = match args.dir {
        Some(dir) => std::env::current_dir()?.join(dir),
        None => tempfile::Builder::new()
            .prefix("orch-demo-")
            .tempdir()?
            .keep(),
    };
    eprintln!("Making a demo repository in `{}`.", dir.display());
    demo::create(&dir, &std::env::current_exe()?)?;
    let here = GlobalArgs {
        dir: Some(dir.clone()),
        config: None,
        verbose: global.verbose,
    };
    let ws = Workspace::discover(&here)?;
    let (plan, source) = ws.load_plan_source(None)?;
    let target = ws.target()?;
    cmd_run::offer_hooks(&ws);
    let output = if std::io::stdout().is_terminal() && std::io::stdin().is_terminal() {
        Output::Dashboard
    } else {
        Output::Lines
    };
    let result = cmd_run::drive(
        &ws,
        plan,
        Some(source),
        target.clone(),
        Options::default(),
        output,
    );
    let mut out = anstream::stdout().lock();
    writeln!(out)?;
    match cmd::stdout(&dir, ["log", "--graph", "--oneline", "--decorate", &target]) {
        Ok(log) => writeln!(out, "{log}")?,
        Err(e) => writeln!(out, "(cannot show the history: {e})")?,
    }
    writeln!(out)?;
    let orch = invocation();
    writeln!(
        out,
        "The demo repository is `{}`. To look around:",
        dir.display()
    )?;
    writeln!(out, "  cd {}", dir.display())?;
    writeln!(out, "  {orch} status             # every task, merged")?;
    writeln!(
        out,
        "  {orch} status P2.M1.T3    # the task whose first attempt failed the check"
    )?;
    writeln!(
        out,
        "  {orch} dash               # the dashboard, read-only now the run is over"
    )?;
    writeln!(
        out,
        "  git log --first-parent   # one merge per task; every commit has its Orch-Task trailer"
    )?;
    result
}
