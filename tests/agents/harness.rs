//! What every CLI's test shares: the fan-out/fan-in plan, the model's
//! script for it, and the checks on what the run left.

use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::TestEnv;
use crate::common::model_api::ModelApi;

/// T1, then T2 and T3 on top of it, then T4 on top of both. No
/// descriptions: the prompts must still have no runs of blank lines.
pub const FAN_PLAN: &str = r#"[[task]]
id = "T1"
title = "Start the notes"

[[task]]
id = "T2"
title = "Left notes"
depends_on = ["T1"]

[[task]]
id = "T3"
title = "Right notes"
depends_on = ["T1"]

[[task]]
id = "T4"
title = "Join the notes"
depends_on = ["T2", "T3"]
"#;

/// The model writes the task's notes, commits them itself (where the CLI
/// runs commands and may commit), and says what it did.
pub fn notes_script() -> Value {
    json!({
        "routes": [{"when": "", "steps": [
            {"write": "notes/{task}.txt", "text": "notes of {task}\n"},
            {"run": "git add -A && git commit -q -m 'Add the notes of {task}'"},
            {"say": "Done {task}: wrote notes/{task}.txt"}
        ]}],
        "fallback": "Add the notes"
    })
}

/// The config of a run whose tasks use `preset`, with quick retries and
/// every commit required to carry its trailer.
pub fn config(preset: &str) -> String {
    format!(
        "[git]\ntarget = \"main\"\n\n[agent]\npreset = \"{preset}\"\nmax_parallel = 2\ntimeout = \"5m\"\ngrace = \"1s\"\n\n[retry]\nmax_attempts = 2\n\n[retry.backoff]\ninitial = \"10ms\"\nmax = \"50ms\"\njitter = false\n\n[policy]\nrequire_trailer = true\n"
    )
}

/// Runs `orch run` with the CLI's variables and returns its output and how
/// long each of the plan's `tasks` took on average.
pub fn run(env: &TestEnv, vars: &[(&str, std::ffi::OsString)], tasks: u32) -> (Output, Duration) {
    let start = Instant::now();
    let out = env
        .orch()
        .arg("run")
        .envs(vars.iter().map(|(k, v)| (*k, v)))
        .output()
        .unwrap();
    (out, start.elapsed() / tasks)
}

/// Returns every attempt's agent log, for a failure's message.
pub fn agent_logs(env: &TestEnv) -> String {
    let mut text = String::new();
    let runs = env.repo().join(".orchestrator/runs");
    let mut logs: Vec<_> = walk(&runs)
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n == "agent.log"))
        .collect();
    logs.sort();
    for log in logs {
        let body = std::fs::read_to_string(&log).unwrap_or_default();
        let tail: Vec<&str> = body.lines().rev().take(80).collect();
        text.push_str(&format!("\n--- {} (last lines)\n", log.display()));
        for line in tail.into_iter().rev() {
            text.push_str(line);
            text.push('\n');
        }
    }
    text
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// Checks what a fan-out/fan-in run of `cli` left: all four tasks merged,
/// their notes on `main` and nothing else, every commit with its trailer,
/// each dependency's final message in its dependents' prompts, the tokens
/// each task used (every CLI but aider reports them), and no runs of blank
/// lines in a prompt.
pub fn assert_fan_merged(
    env: &TestEnv,
    api: &ModelApi,
    cli: &str,
    out: &Output,
    per_task: Duration,
) {
    let repo = env.repo();
    let shown = format!("{}{}", env.render(out), agent_logs(env));
    assert!(out.status.success(), "{cli}: {shown}");
    for task in ["T1", "T2", "T3", "T4"] {
        assert_eq!(env.status_of(task), "merged", "{cli}: {task}: {shown}");
        let notes = env.git(&repo, ["show", &format!("main:notes/{task}.txt")]);
        assert_eq!(notes.trim(), format!("notes of {task}"), "{cli}");
    }
    let tree = env.git(&repo, ["ls-tree", "-r", "--name-only", "main"]);
    assert_eq!(
        tree.lines().collect::<Vec<_>>(),
        [
            "README.md",
            "notes/T1.txt",
            "notes/T2.txt",
            "notes/T3.txt",
            "notes/T4.txt"
        ],
        "{cli}: nothing but the work is committed"
    );
    let log = env.git(&repo, ["log", "--format=%H %s%n%b%x1e", "main"]);
    for commit in log.split('\x1e').map(str::trim).filter(|c| !c.is_empty()) {
        if commit.ends_with("initial commit") {
            continue;
        }
        assert!(
            commit.lines().any(|l| l.starts_with("Orch-Task: T")),
            "{cli}: a commit without its trailer: {commit}"
        );
    }
    for (dependent, dependency) in [("T2", "T1"), ("T4", "T2"), ("T4", "T3")] {
        let said = format!("Done {dependency}: wrote notes/{dependency}.txt");
        assert!(
            api.sent_by(dependent)
                .iter()
                .any(|body| body.contains(&said)),
            "{cli}: the prompt of {dependent} shows what the agent of {dependency} said"
        );
    }
    if cli != "aider" {
        let state = env.state();
        let mut total = 0;
        for task in ["T1", "T2", "T3", "T4"] {
            let attempts = state["items"][task]["attempts"].as_array().unwrap();
            let tokens = attempts.last().unwrap()["usage"]["input_tokens"].as_u64();
            assert!(
                tokens > Some(0),
                "{cli}: {task} records its tokens: {attempts:?}"
            );
            total += tokens.unwrap_or(0);
        }
        eprintln!("{cli}: {total} input tokens recorded for the 4 tasks");
    }
    let prompt = std::fs::read_to_string(repo.join(".orchestrator/runs/T1/1/prompt.md")).unwrap();
    assert!(
        !prompt.contains("\n\n\n"),
        "{cli}: blank lines in a row: {prompt}"
    );
    eprintln!("{cli}: {} ms per task", per_task.as_millis());
}
