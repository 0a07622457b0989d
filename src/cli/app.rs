//! The `orch` command: its clap arguments, the entry point and the dispatch
//! to one `cmd_*` module per subcommand.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::error::{CliError, ErrorKind};

use super::{
    cmd_clean, cmd_control, cmd_dash, cmd_demo, cmd_doctor, cmd_hooks, cmd_init, cmd_logs,
    cmd_merge, cmd_metrics, cmd_notify, cmd_pause, cmd_plan, cmd_run, cmd_status,
};

/// Run many AI coding agents on one repository, each in its own worktree, and
/// merge their work one branch at a time behind checks.
#[derive(Debug, Parser)]
#[command(name = "orch", version, propagate_version = true, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, clap::Args)]
pub struct GlobalArgs {
    /// Run as if orch was started in DIR
    #[arg(short = 'C', value_name = "DIR", global = true)]
    pub dir: Option<PathBuf>,
    /// Read the config from FILE instead of `.orchestrator.toml` at the repository root
    #[arg(long, value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
    /// Log more detail to stderr (can be repeated)
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a starter `.orchestrator.toml` and `plan.toml`, and keep `.orchestrator/` out of git
    Init(cmd_init::InitArgs),
    /// Run the whole loop on a scratch repository with a built-in demo agent
    Demo(cmd_demo::DemoArgs),
    /// Validate, show and convert the plan
    #[command(subcommand)]
    Plan(cmd_plan::PlanCommand),
    /// Start agents on ready tasks, each in its own branch and worktree
    Run(cmd_run::RunArgs),
    /// Merge finished tasks into the target through the merge queue, behind checks, without starting agents
    Merge(cmd_merge::MergeArgs),
    /// Show where every task stands (works while a run is live)
    Status(cmd_status::StatusArgs),
    /// Show an agent's captured output
    Logs(cmd_logs::LogsArgs),
    /// Watch the run in a terminal dashboard, and retry, cancel or resolve tasks from it
    Dash(cmd_dash::DashArgs),
    /// Run a failed, cancelled or conflicted task again
    Retry(cmd_control::ControlArgs),
    /// Cancel a task, stopping its agent
    Cancel(cmd_control::ControlArgs),
    /// Mark a failed, blocked, conflicted or cancelled task as done
    Resolve(cmd_control::ControlArgs),
    /// Approve a task waiting for a person's review; it lands once its checks pass
    Approve(cmd_control::ControlArgs),
    /// Reject a task waiting for a person's review; its agent runs again with the reason
    Reject(cmd_control::RejectArgs),
    /// Undo a merged task with a new commit on the target, through the merge queue and its checks
    Revert(cmd_control::ControlArgs),
    /// Launch nothing more for an agent, or for every agent, until a time or until resumed
    Pause(cmd_pause::PauseArgs),
    /// Let a paused agent, or every agent, launch again
    Resume(cmd_pause::ResumeArgs),
    /// Remove the worktrees and branches orch made, keeping any unmerged work
    Clean(cmd_clean::CleanArgs),
    /// Install, remove or list the git hooks that tie commits to tasks
    #[command(subcommand)]
    Hooks(cmd_hooks::HooksCommand),
    /// Check git, the config, the plan, the hooks, the worktrees and the state, and say what to fix
    Doctor(cmd_doctor::DoctorArgs),
    /// Print the run's Prometheus metrics from the state dir (for the textfile collector)
    Metrics(cmd_metrics::MetricsArgs),
    /// List notifications waiting or given up on, and send them again
    #[command(subcommand)]
    Notify(cmd_notify::NotifyCommand),
    /// Print shell completions (for example `orch completions bash > ~/.local/share/bash-completion/completions/orch`)
    Completions {
        /// The shell
        shell: clap_complete::Shell,
    },
    /// The demo agent `orch demo` runs (scripted edits, per task)
    #[command(name = "__demo-agent", hide = true)]
    DemoAgent,
    /// Run orch's part of a git hook (started by the hook shims)
    #[command(name = "__hook", hide = true)]
    Hook {
        name: String,
        #[arg(allow_hyphen_values = true, trailing_var_arg = true)]
        args: Vec<OsString>,
    },
    /// Supervise one agent attempt (started by `orch run`)
    #[command(name = "__supervise", hide = true)]
    Supervise {
        spec: PathBuf,
        /// An inherited pipe's write end, closed once `exit.json` is written
        #[arg(long)]
        done_fd: Option<i32>,
        /// An inherited pipe's read end: wait for a byte on it before
        /// starting, and end without a trace at its end
        #[arg(long)]
        go_fd: Option<i32>,
    },
    /// Submit and watch one attempt's cluster job (run by its supervisor)
    #[command(name = "__job", hide = true)]
    Job { spec: PathBuf },
    /// Run an agent confined on a cluster node (its job's command)
    #[command(name = "__confine", hide = true)]
    Confine {
        /// Say whether this machine can confine, and exit
        #[arg(long, conflicts_with_all = ["grant", "argv"])]
        probe: bool,
        /// What the agent may write (JSON)
        #[arg(required_unless_present = "probe")]
        grant: Option<String>,
        /// The agent's command, after `--`
        #[arg(last = true)]
        argv: Vec<OsString>,
    },
}

/// Parses the process arguments, runs the command and returns the exit code.
pub fn main() -> ExitCode {
    run_with(std::env::args_os())
}

/// Runs orch with the given arguments (the first is the program name).
pub fn run_with(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                ErrorKind::Input.exit_code()
            } else {
                0
            });
        }
    };
    if let Command::Supervise {
        spec,
        done_fd,
        go_fd,
    } = &cli.command
    {
        return crate::runner::supervise::main(spec, *done_fd, *go_fd);
    }
    if let Command::Job { spec } = &cli.command {
        return crate::runner::slurm::job_main(spec);
    }
    if let Command::Confine { probe, grant, argv } = &cli.command {
        return match (probe, grant) {
            (false, Some(grant)) => crate::runner::node::main(grant, argv),
            _ => crate::runner::node::probe_main(),
        };
    }
    if let Command::Hook { name, args } = &cli.command {
        return crate::hooks::actions::main(name, args);
    }
    if let Command::DemoAgent = &cli.command {
        return crate::demo::agent_main();
    }
    init_tracing(cli.global.verbose);
    match dispatch(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let mut stderr = anstream::stderr().lock();
            let _ = err.print(&mut stderr);
            ExitCode::from(err.exit_code())
        }
    }
}

fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(anstream::AutoStream::choice(&std::io::stderr()) != anstream::ColorChoice::Never)
        .try_init();
}

fn dispatch(cli: Cli) -> Result<(), CliError> {
    use crate::state::inbox::Action;
    match cli.command {
        Command::Init(args) => cmd_init::run(&cli.global, args),
        Command::Demo(args) => cmd_demo::run(&cli.global, args),
        Command::Plan(command) => cmd_plan::run(&cli.global, command),
        Command::Run(args) => cmd_run::run(&cli.global, args),
        Command::Status(args) => cmd_status::run(&cli.global, args),
        Command::Merge(args) => cmd_merge::run(&cli.global, args),
        Command::Logs(args) => cmd_logs::run(&cli.global, args),
        Command::Dash(args) => cmd_dash::run(&cli.global, args),
        Command::Retry(args) => cmd_control::run(&cli.global, Action::Retry, args),
        Command::Cancel(args) => cmd_control::run(&cli.global, Action::Cancel, args),
        Command::Resolve(args) => cmd_control::run(&cli.global, Action::Resolve, args),
        Command::Approve(args) => cmd_control::run(&cli.global, Action::Approve, args),
        Command::Reject(args) => cmd_control::reject(&cli.global, args),
        Command::Revert(args) => cmd_control::revert(&cli.global, args),
        Command::Pause(args) => cmd_pause::pause(&cli.global, args),
        Command::Resume(args) => cmd_pause::resume(&cli.global, args),
        Command::Clean(args) => cmd_clean::run(&cli.global, args),
        Command::Hooks(command) => cmd_hooks::run(&cli.global, command),
        Command::Doctor(args) => cmd_doctor::run(&cli.global, args),
        Command::Metrics(args) => cmd_metrics::run(&cli.global, args),
        Command::Notify(command) => cmd_notify::run(&cli.global, command),
        Command::Completions { shell } => {
            // clap_complete lists hidden subcommands too; the internal ones
            // (`__supervise`, `__hook`, `__demo-agent`) stay out.
            let full = <Cli as clap::CommandFactory>::command();
            let mut shown = clap::Command::new("orch")
                .version(env!("CARGO_PKG_VERSION"))
                .args(full.get_arguments().cloned())
                .subcommands(full.get_subcommands().filter(|s| !s.is_hide_set()).cloned());
            // Generated whole, then written: `generate` panics when its
            // writer fails, and a closed pipe (`| head -1`) must end quietly.
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut shown, "orch", &mut script);
            std::io::Write::write_all(&mut std::io::stdout().lock(), &script)?;
            Ok(())
        }
        Command::Supervise { .. }
        | Command::Job { .. }
        | Command::Confine { .. }
        | Command::Hook { .. }
        | Command::DemoAgent => {
            unreachable!("handled before dispatch")
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn verify_app() {
        Cli::command().debug_assert();
    }
}
