//! Claude Code (`claude`), against a stand-in of the Anthropic Messages API.

use std::ffi::OsString;

use serde_json::json;

use crate::common::TestEnv;
use crate::common::model_api::{Api, ModelApi, cli_or_skip, path_with};
use crate::harness;

/// What Claude Code needs to talk to the stand-in, offline, with a fresh
/// home. Its `~/.claude` exists, as for anyone who ran Claude Code before:
/// the sandbox lets agents write only folders that exist when an attempt
/// starts, and Claude Code keeps its sessions there.
pub fn vars(env: &TestEnv, api: &ModelApi, bin: &std::path::Path) -> Vec<(&'static str, OsString)> {
    std::fs::create_dir_all(env.root().join("home/.claude")).unwrap();
    vec![
        ("PATH", path_with(bin)),
        ("HOME", env.root().join("home").into()),
        ("ANTHROPIC_BASE_URL", api.url().into()),
        ("ANTHROPIC_API_KEY", "stand-in".into()),
        ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1".into()),
        ("DISABLE_AUTOUPDATER", "1".into()),
    ]
}

#[test]
fn the_config_orch_init_writes_runs_claude_code_unattended() {
    let test = "the_config_orch_init_writes_runs_claude_code_unattended";
    let Some(bin) = cli_or_skip(test, "claude") else {
        return;
    };
    let env = TestEnv::new();
    env.init_repo();
    let api = ModelApi::start(Api::Anthropic, &harness::notes_script(), &env.root());
    let out = env.orch().arg("init").output().unwrap();
    assert!(out.status.success(), "{}", env.render(&out));
    env.write("plan.toml", harness::FAN_PLAN);
    env.edit_config("require_trailer = false", "require_trailer = true");
    let (out, per_task) = harness::run(&env, &vars(&env, &api, &bin), 4);
    harness::assert_fan_merged(&env, &api, "claude", &out, per_task);
}

#[test]
fn an_edit_only_agent_resolves_a_conflict_without_staging_it() {
    let test = "an_edit_only_agent_resolves_a_conflict_without_staging_it";
    let Some(bin) = cli_or_skip(test, "claude") else {
        return;
    };
    let env = TestEnv::new();
    env.init_repo();
    // Both tasks add `shared.txt`: the second to merge conflicts and is
    // handed back. The agent only edits (no shell, so no `git add`).
    let script = json!({
        "routes": [
            {"when": "Resolve the merge conflicts", "steps": [
                {"read": "shared.txt"},
                {"write": "shared.txt", "text": "line of T1\nline of T2\n"},
                {"say": "Kept both lines"}
            ]},
            {"when": "", "steps": [
                {"write": "shared.txt", "text": "line of {task}\n"},
                {"say": "Done {task}"}
            ]}
        ],
        "fallback": "Add a line"
    });
    let api = ModelApi::start(Api::Anthropic, &script, &env.root());
    env.write(
        ".orchestrator.toml",
        &format!(
            "{}\n[agents.claude]\ncommand = [\"claude\", \"-p\", \"--output-format\", \"json\", \"--permission-mode\", \"acceptEdits\"]\n",
            harness::config("claude").replace("max_attempts = 2", "max_attempts = 3")
        ),
    );
    env.write(
        "plan.toml",
        "[[task]]\nid = \"T1\"\ntitle = \"Left\"\n\n[[task]]\nid = \"T2\"\ntitle = \"Right\"\n",
    );
    let (out, _) = harness::run(&env, &vars(&env, &api, &bin), 2);
    assert!(out.status.success(), "{}", env.render(&out));
    assert_eq!(env.status_of("T1"), "merged");
    assert_eq!(env.status_of("T2"), "merged");
    let conflicted = env
        .events()
        .into_iter()
        .filter(|e| e["event"] == "merge.conflicted")
        .count();
    assert_eq!(conflicted, 1, "one task was handed back");
    assert_eq!(
        env.git(&env.repo(), ["show", "main:shared.txt"]),
        "line of T1\nline of T2\n"
    );
}
