//! `orch demo`: a scratch repository, the example plan, and the built-in
//! demo agent (`orch __demo-agent`).
//!
//! The scratch repository holds a small real project (`wordstat`, POSIX sh:
//! a README, sources under `bin/` and `lib/`, a test script) from
//! `templates/demo/project/`, the plan and config from `templates/demo/`,
//! and a local git identity, so it works on a machine where git has none.
//! The run itself is the real one (`orch run`): nothing here is a shortcut
//! around the coordinator, the merge queue or the hooks.
//!
//! The demo agent is scripted by `templates/demo/agent.toml`: per task, what
//! to write and what to insert after an anchor line. It behaves like an
//! agent would: it reads its prompt, prints what it does, commits with the
//! task's title and leaves a summary in `ORCH_RESULT_FILE`. Two tasks show
//! the hand-backs: P2.M1.T1 and P2.M1.T2 insert at the same line of
//! `lib/format.sh`, so whichever merges second conflicts and the agent
//! keeps both sides; P2.M1.T3's first version of `lib/top.sh` fails
//! `sh test.sh` on the merged result, and the agent fixes it when the
//! check's failure comes back. A task the script does not know gets a note
//! file, so the agent also works on a plan someone edited.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;

use serde::Deserialize;

use crate::git::cmd;

/// The project's files: path, text, executable.
const PROJECT: &[(&str, &str, bool)] = &[
    (
        "README.md",
        include_str!("../templates/demo/project/README.md"),
        false,
    ),
    (
        "bin/wordstat",
        include_str!("../templates/demo/project/bin/wordstat"),
        true,
    ),
    (
        "lib/options.sh",
        include_str!("../templates/demo/project/lib/options.sh"),
        false,
    ),
    (
        "lib/format.sh",
        include_str!("../templates/demo/project/lib/format.sh"),
        false,
    ),
    (
        "lib/report.sh",
        include_str!("../templates/demo/project/lib/report.sh"),
        false,
    ),
    (
        "test.sh",
        include_str!("../templates/demo/project/test.sh"),
        true,
    ),
    (
        "tests/helpers.sh",
        include_str!("../templates/demo/project/tests/helpers.sh"),
        false,
    ),
    (
        "tests/test_format.sh",
        include_str!("../templates/demo/project/tests/test_format.sh"),
        false,
    ),
];

/// The demo's plan.
pub const PLAN: &str = include_str!("../templates/demo/plan.toml");
/// The demo's config; `{{ orch }}` is the `orch` binary, as a TOML string.
pub const CONFIG: &str = include_str!("../templates/demo/orchestrator.toml");
/// What the demo agent does per task.
const SCRIPT: &str = include_str!("../templates/demo/agent.toml");

/// A scratch repository that could not be made.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The repository's folder, or the one its worktrees go in, is in use.
    #[error("`{}` exists and is not empty; `orch demo` wants a new folder (its worktrees go beside it, in `<folder>.worktrees`)", path.display())]
    NotEmpty { path: PathBuf },
    #[error("cannot write `{}`", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Git(#[from] cmd::CommandError),
    #[error("cannot render the demo config")]
    Template(#[source] minijinja::Error),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> DemoError + '_ {
    move |source| DemoError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Creates the scratch repository in `dir` (new or empty), with the project
/// committed on `main`, then the plan and config committed on top.
pub fn create(dir: &Path, orch_exe: &Path) -> Result<(), DemoError> {
    let worktrees = dir.with_file_name(format!(
        "{}.worktrees",
        dir.file_name().unwrap_or_default().to_string_lossy()
    ));
    for path in [dir, worktrees.as_path()] {
        if std::fs::read_dir(path).is_ok_and(|mut entries| entries.next().is_some()) {
            return Err(DemoError::NotEmpty {
                path: path.to_owned(),
            });
        }
    }
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    cmd::run(dir, ["init", "--quiet", "--initial-branch=main"])?;
    cmd::run(dir, ["config", "user.name", "orch demo"])?;
    cmd::run(dir, ["config", "user.email", "demo@orch.invalid"])?;
    for (rel, text, executable) in PROJECT {
        write(&dir.join(rel), text, *executable)?;
    }
    cmd::run(dir, ["add", "--all"])?;
    cmd::run(dir, ["commit", "--quiet", "-m", "wordstat: the skeleton"])?;
    let exe = toml::Value::String(orch_exe.display().to_string()).to_string();
    let config = crate::templates::render(
        "orchestrator.toml",
        CONFIG,
        serde_json::json!({ "orch": exe }),
    )
    .map_err(DemoError::Template)?;
    write(&dir.join(crate::config::FILE_NAME), &config, false)?;
    write(&dir.join("plan.toml"), PLAN, false)?;
    cmd::run(dir, ["add", "--all"])?;
    cmd::run(dir, ["commit", "--quiet", "-m", "Plan the work for orch"])?;
    Ok(())
}

fn write(path: &Path, text: &str, executable: bool) -> Result<(), DemoError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io_err(parent))?;
    }
    std::fs::write(path, text).map_err(io_err(path))?;
    if executable {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
            .map_err(io_err(path))?;
    }
    Ok(())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Script {
    task: Vec<TaskScript>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TaskScript {
    id: String,
    seconds: f64,
    summary: String,
    #[serde(default)]
    write: Vec<FileText>,
    #[serde(default)]
    insert: Vec<Insert>,
    #[serde(default)]
    broken: Vec<FileText>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileText {
    path: String,
    text: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Insert {
    path: String,
    after: String,
    text: String,
}

/// Runs the demo agent in the current directory (a task worktree).
pub fn agent_main() -> ExitCode {
    match agent() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("demo agent: {}", crate::text::error_chain(&e));
            ExitCode::FAILURE
        }
    }
}

/// Why the demo agent could not do its task.
#[derive(Debug, thiserror::Error)]
enum AgentError {
    #[error("`ORCH_TASK_ID` is not set")]
    NoTask,
    #[error("cannot {what} `{path}`")]
    File {
        what: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the demo script is broken")]
    Script(#[source] toml::de::Error),
    #[error("cannot run git")]
    GitMissing(#[source] std::io::Error),
    #[error("`git {args}` failed: {stderr}")]
    Git { args: String, stderr: String },
    #[error("no line `{after}` in `{path}`")]
    NoLine { after: String, path: String },
}

impl AgentError {
    fn file(
        what: &'static str,
        path: impl Into<String>,
    ) -> impl FnOnce(std::io::Error) -> AgentError {
        let path = path.into();
        move |source| AgentError::File { what, path, source }
    }
}

fn agent() -> Result<(), AgentError> {
    let mut prompt = String::new();
    let _ = std::io::stdin().read_to_string(&mut prompt);
    let task = std::env::var("ORCH_TASK_ID").map_err(|_| AgentError::NoTask)?;
    let title = std::env::var("ORCH_TASK_TITLE").unwrap_or_else(|_| task.clone());
    let attempt = std::env::var("ORCH_ATTEMPT").unwrap_or_else(|_| "1".to_owned());
    say(&format!(
        "demo agent on {task}, attempt {attempt}: read a prompt of {} lines",
        prompt.lines().count()
    ));
    let unmerged = git(&["diff", "--name-only", "--diff-filter=U"])?;
    if !unmerged.trim().is_empty() {
        for file in unmerged.lines() {
            say(&format!(
                "resolving the conflict in {file}: keeping both sides"
            ));
            let text = std::fs::read_to_string(file).map_err(AgentError::file("read", file))?;
            std::fs::write(file, keep_both(&text)).map_err(AgentError::file("write", file))?;
            git(&["add", "--", file])?;
        }
        git(&["commit", "--quiet", "--no-edit"])?;
        return finish("Merged the target and kept both sides of the conflict.");
    }
    let script: Script = toml::from_str(SCRIPT).map_err(AgentError::Script)?;
    let Some(step) = script.task.iter().find(|t| t.id == task) else {
        let note = format!("notes/{task}.md");
        think(1.0);
        say(&format!("no script for {task}; writing {note}"));
        write_file(
            &note,
            &format!("# {title}\n\nThe demo agent has no script for this task.\n"),
        )?;
        return commit(
            &title,
            "Wrote a note: the demo agent has no script for this task.",
        );
    };
    think(step.seconds);
    let mut fixing = false;
    for file in &step.write {
        let broken = step.broken.iter().find(|b| b.path == file.path);
        match broken {
            Some(b) if !Path::new(&b.path).exists() => {
                say(&format!("writing {} (a first version)", b.path));
                write_file(&b.path, &b.text)?;
            }
            Some(_) => {
                say(&format!("fixing {} after the check failed", file.path));
                write_file(&file.path, &file.text)?;
                fixing = true;
            }
            None => {
                say(&format!("writing {}", file.path));
                write_file(&file.path, &file.text)?;
            }
        }
    }
    for ins in &step.insert {
        say(&format!("editing {} after `{}`", ins.path, ins.after));
        insert_after(ins)?;
    }
    if fixing {
        let message = format!("{title}: fix what the check found");
        return commit(
            &message,
            &format!("{} (fixed after the check failed)", step.summary),
        );
    }
    commit(&title, &step.summary)
}

fn say(line: &str) {
    println!("{line}");
}

/// Waits a while, printing what a thinking agent might.
fn think(seconds: f64) {
    let thoughts = [
        "reading the code",
        "planning the change",
        "checking the tests",
    ];
    let step = Duration::from_secs_f64(seconds.max(0.0) / thoughts.len() as f64);
    for thought in thoughts {
        say(thought);
        std::thread::sleep(step);
    }
}

fn git(args: &[&str]) -> Result<String, AgentError> {
    let out = Command::new("git")
        .args(args)
        .output()
        .map_err(AgentError::GitMissing)?;
    if !out.status.success() {
        return Err(AgentError::Git {
            args: args.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn write_file(path: &str, text: &str) -> Result<(), AgentError> {
    if let Some(parent) = Path::new(path).parent() {
        std::fs::create_dir_all(parent)
            .map_err(AgentError::file("create", parent.display().to_string()))?;
    }
    std::fs::write(path, text.trim_start_matches('\n')).map_err(AgentError::file("write", path))
}

fn insert_after(ins: &Insert) -> Result<(), AgentError> {
    let text = std::fs::read_to_string(&ins.path).map_err(AgentError::file("read", &ins.path))?;
    let mut out = String::new();
    let mut found = false;
    for line in text.split_inclusive('\n') {
        out.push_str(line);
        if !found && line.trim() == ins.after {
            out.push_str(ins.text.trim_matches('\n'));
            out.push('\n');
            found = true;
        }
    }
    if !found {
        return Err(AgentError::NoLine {
            after: ins.after.clone(),
            path: ins.path.clone(),
        });
    }
    std::fs::write(&ins.path, out).map_err(AgentError::file("write", &ins.path))
}

/// Resolves conflict markers by keeping our side, then theirs.
fn keep_both(text: &str) -> String {
    enum Part {
        Outside,
        Ours,
        Base,
        Theirs,
    }
    let mut part = Part::Outside;
    let mut out = String::new();
    for line in text.split_inclusive('\n') {
        match (&part, line) {
            (Part::Outside, l) if l.starts_with("<<<<<<< ") || l.trim_end() == "<<<<<<<" => {
                part = Part::Ours
            }
            (Part::Ours, l) if l.starts_with("|||||||") => part = Part::Base,
            (Part::Ours | Part::Base, l) if l.trim_end() == "=======" => part = Part::Theirs,
            (Part::Theirs, l) if l.starts_with(">>>>>>>") => part = Part::Outside,
            (Part::Base, _) => {}
            (_, l) => out.push_str(l),
        }
    }
    out
}

fn commit(title: &str, summary: &str) -> Result<(), AgentError> {
    git(&["add", "--all"])?;
    git(&["commit", "--quiet", "-m", title])?;
    say(&format!("committed: {title}"));
    finish(summary)
}

fn finish(summary: &str) -> Result<(), AgentError> {
    if let Ok(path) = std::env::var("ORCH_RESULT_FILE") {
        let result = serde_json::json!({"status": "done", "summary": summary});
        std::fs::write(&path, result.to_string()).map_err(AgentError::file("write", path))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_covers_the_plan() {
        let script: Script = toml::from_str(SCRIPT).unwrap();
        let plan =
            crate::plan::from_bytes(Path::new("plan.toml"), PLAN.as_bytes(), &Default::default())
                .unwrap();
        let tasks: Vec<&str> = plan
            .tasks()
            .iter()
            .map(|t| plan.item(*t).id.as_str())
            .collect();
        let scripted: Vec<&str> = script.task.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(tasks, scripted);
        assert!(tasks.len() >= 10);
    }

    #[test]
    fn conflicts_keep_both_sides() {
        let text = "a\n<<<<<<< HEAD\nours\n||||||| base\nold\n=======\ntheirs\n>>>>>>> main\nz\n";
        assert_eq!(keep_both(text), "a\nours\ntheirs\nz\n");
    }
}
