//! Usage limits, tokens and cost, and resumed sessions, with the real CLIs:
//! the stand-in refuses a request as the provider does when a limit is hit,
//! reports usage with every reply, and logs every request, so a test can
//! see that a second conversation continues the first.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::TestEnv;
use crate::common::model_api::{Api, ModelApi, cli_or_skip};
use crate::harness;

/// The attempts of `id` in `state.json`.
fn attempts(env: &TestEnv, id: &str) -> Vec<Value> {
    env.state()["items"][id]["attempts"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The events named `name`.
fn named(env: &TestEnv, name: &str) -> Vec<Value> {
    env.events()
        .into_iter()
        .filter(|e| e["event"] == name)
        .collect()
}

/// A config with quick retries, a pause of one second after a limit that
/// names no reset time, and `extra`.
fn config(preset: &str, extra: &str) -> String {
    format!(
        "{}\n[retry.limit_pause]\ninitial = \"1s\"\nmax = \"2s\"\n\n{extra}",
        harness::config(preset)
    )
}

/// Asserts that `T1` merged after one attempt that hit the limit and paused
/// its agent for a while, then one that continued its session.
fn assert_paused_then_resumed(env: &TestEnv, cli: &str, out: &std::process::Output) {
    let shown = format!("{}{}", env.render(out), harness::agent_logs(env));
    assert!(out.status.success(), "{cli}: {shown}");
    assert_eq!(env.status_of("T1"), "merged", "{cli}: {shown}");
    let tries = attempts(env, "T1");
    assert_eq!(
        tries.len(),
        2,
        "{cli}: {tries:?}{}",
        harness::agent_logs(env)
    );
    assert_eq!(tries[0]["outcome"]["kind"], "interrupted", "{cli}");
    assert!(tries[0]["paused_until"].is_string(), "{cli}: {tries:?}");
    assert_eq!(tries[1]["outcome"]["kind"], "succeeded", "{cli}");
    assert_eq!(
        tries[1]["resumed"], true,
        "{cli}: the limited session goes on"
    );
    assert_eq!(tries[0]["session"], tries[1]["session"], "{cli}");
    let paused = named(env, "agent.paused");
    assert_eq!(paused.len(), 1, "{cli}: {paused:?}");
    assert_eq!(
        (&paused[0]["agent"], &paused[0]["cause"]),
        (&json!(cli), &json!("limit"))
    );
    let resumed = named(env, "agent.resumed");
    assert_eq!(resumed.len(), 1, "{cli}");
    assert_eq!(resumed[0]["cause"], "time", "{cli}: it resumed by itself");
    let started = named(env, "task.started");
    assert!(
        started[1]["seq"].as_u64() > resumed[0]["seq"].as_u64(),
        "{cli}: nothing launched while paused"
    );
    let usage = &tries[1]["usage"];
    assert!(usage["input_tokens"].as_u64() > Some(0), "{cli}: {usage}");
    assert!(usage["output_tokens"].as_u64() > Some(0), "{cli}: {usage}");
    eprintln!(
        "{cli}: limit paused for {} s; attempt 2 used {usage}",
        pause_seconds(&paused[0], &resumed[0])
    );
}

/// How long the agent was paused, from the events' own times.
fn pause_seconds(paused: &Value, resumed: &Value) -> f64 {
    let at = |e: &Value| {
        humantime::parse_rfc3339(e["ts"].as_str().unwrap())
            .unwrap()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
    };
    at(resumed).saturating_sub(at(paused)).as_secs_f64()
}

#[test]
fn claude_hits_its_usage_limit_pauses_and_resumes_without_spending_an_attempt() {
    let test = "claude_hits_its_usage_limit_pauses_and_resumes_without_spending_an_attempt";
    let Some(bin) = cli_or_skip(test, "claude") else {
        return;
    };
    let env = TestEnv::new();
    env.init_repo();
    // Claude Code's subscription limit, as the API said it: the reset in
    // Unix time after `|`; `x-should-retry: false` keeps Claude Code from
    // retrying on its own.
    let mut script = harness::notes_script();
    script["refuse"] = json!({
        "times": 1, "status": 429, "reset_in": 2,
        "headers": {"x-should-retry": "false"},
        "body": {"type": "error", "error": {"type": "rate_limit_error",
                 "message": "Claude AI usage limit reached|{reset_epoch}"}}
    });
    let api = ModelApi::start(Api::Anthropic, &script, &env.root());
    env.write(".orchestrator.toml", &config("claude", ""));
    env.write(
        "plan.toml",
        "[[task]]\nid = \"T1\"\ntitle = \"Start the notes\"\n",
    );
    let (out, _) = harness::run(&env, &crate::claude::vars(&env, &api, &bin), 1);
    assert_paused_then_resumed(&env, "claude", &out);
    let refused = api
        .requests()
        .into_iter()
        .find(|r| r["refused"] == true)
        .unwrap();
    let paused = &named(&env, "agent.paused")[0];
    let until = humantime::parse_rfc3339(paused["until"].as_str().unwrap()).unwrap();
    assert_eq!(
        until,
        std::time::UNIX_EPOCH + Duration::from_secs(refused["reset"].as_u64().unwrap()),
        "paused until the reset Claude Code reported"
    );
    let cost = attempts(&env, "T1")[1]["usage"]["cost_usd"].as_f64();
    assert!(cost > Some(0.0), "Claude Code reports its cost: {cost:?}");
    let status = env.run(["status"]);
    assert!(status.contains("tokens, $0.0"), "{status}");
}

#[test]
fn codex_hits_its_usage_limit_pauses_and_resumes_without_spending_an_attempt() {
    let test = "codex_hits_its_usage_limit_pauses_and_resumes_without_spending_an_attempt";
    let Some(bin) = cli_or_skip(test, "codex") else {
        return;
    };
    let env = TestEnv::new();
    env.init_repo();
    // The ChatGPT plan's limit, as the Responses API says it; Codex CLI
    // prints "try again at <h:mm PM>", to the minute, so a reset two
    // seconds away reads as one already come: the agent pauses for
    // `limit_pause` instead.
    let mut script = harness::notes_script();
    script["refuse"] = json!({
        "times": 1, "status": 429, "reset_in": 2,
        "body": {"error": {"type": "usage_limit_reached", "message": "The usage limit has been reached",
                 "plan_type": "plus", "resets_at": "{reset_epoch}", "resets_in_seconds": 2}}
    });
    let api = ModelApi::start(Api::Responses, &script, &env.root());
    env.write(".orchestrator.toml", &config("codex", ""));
    env.write(
        "plan.toml",
        "[[task]]\nid = \"T1\"\ntitle = \"Start the notes\"\n",
    );
    let vars = crate::codex::vars(&env, &api, &bin);
    let (out, _) = harness::run(&env, &vars, 1);
    assert_paused_then_resumed(&env, "codex", &out);
    let reason = attempts(&env, "T1")[0]["outcome"]["reason"].clone();
    assert!(
        reason.as_str().unwrap().contains("hit your usage limit"),
        "{reason}"
    );
}

#[test]
fn a_red_check_hands_back_to_claude_which_continues_its_session() {
    let test = "a_red_check_hands_back_to_claude_which_continues_its_session";
    let Some(bin) = cli_or_skip(test, "claude") else {
        return;
    };
    let env = TestEnv::new();
    env.init_repo();
    let script = json!({
        "routes": [
            {"when": "check `test` failed", "steps": [
                {"write": "notes/{task}.txt", "text": "notes of {task}, checked\n"},
                {"say": "Fixed what the check found"}
            ]},
            {"when": "", "steps": [
                {"write": "notes/{task}.txt", "text": "notes of {task}\n"},
                {"say": "Done {task}"}
            ]}
        ],
        "fallback": "Add the notes"
    });
    let api = ModelApi::start(Api::Anthropic, &script, &env.root());
    // The check fails the first time it runs, then passes.
    let (outside, _) = env.outside();
    let marker = outside.join("check-ran");
    let check = format!(
        "[[policy.checks]]\nname = \"test\"\nrun = \"if [ -e {m} ]; then exit 0; fi; touch {m}; echo 'notes lack a check mark'; exit 1\"\n",
        m = marker.display()
    );
    env.write(".orchestrator.toml", &config("claude", &check));
    env.write(
        "plan.toml",
        "[[task]]\nid = \"T1\"\ntitle = \"Start the notes\"\n",
    );
    let (out, _) = harness::run(&env, &crate::claude::vars(&env, &api, &bin), 1);
    let shown = format!("{}{}", env.render(&out), harness::agent_logs(&env));
    assert!(out.status.success(), "{shown}");
    assert_eq!(env.status_of("T1"), "merged", "{shown}");
    assert_eq!(
        env.git(&env.repo(), ["show", "main:notes/T1.txt"]),
        "notes of T1, checked\n"
    );
    let tries = attempts(&env, "T1");
    assert_eq!(tries.len(), 2, "{tries:?}{}", harness::agent_logs(&env));
    assert_eq!(tries[1]["purpose"], "check_failure");
    assert_eq!(tries[1]["resumed"], true);
    assert_eq!(tries[0]["session"], tries[1]["session"]);
    let prompt =
        std::fs::read_to_string(env.repo().join(".orchestrator/runs/T1/2/prompt.md")).unwrap();
    assert!(prompt.contains("check `test` failed"), "{prompt}");
    assert!(
        !prompt.contains("## How to work"),
        "only what changed: {prompt}"
    );
    // The hand-back's requests carry the first conversation: its prompt and
    // what the agent did then.
    let handed_back: Vec<String> = api
        .sent_by("T1")
        .into_iter()
        .filter(|body| body.contains("check `test` failed"))
        .collect();
    assert!(!handed_back.is_empty());
    for body in &handed_back {
        assert!(
            body.contains("Your task is `T1`"),
            "the first prompt is there"
        );
        assert!(body.contains("Done T1"), "the first answer is there");
    }
    let cost = |n: usize| tries[n]["usage"]["cost_usd"].as_f64().unwrap();
    assert!(cost(0) > 0.0 && cost(1) > 0.0, "{tries:?}");
    eprintln!(
        "claude: attempt 1 {} / attempt 2 (resumed, its own share) {}",
        tries[0]["usage"], tries[1]["usage"]
    );
}
