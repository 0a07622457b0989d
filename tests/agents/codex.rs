//! Codex CLI (`codex`), against a stand-in of the OpenAI Responses API.

use std::ffi::OsString;

use std::time::Duration;

use crate::common::model_api::{Api, ModelApi, cli_or_skip, path_with};
use crate::common::{TestEnv, wait_until};
use crate::harness;

/// What Codex CLI needs to talk to the stand-in: it reads its provider
/// from `$CODEX_HOME/config.toml`, and a known model name gets it its usual
/// tools.
pub fn vars(env: &TestEnv, api: &ModelApi, bin: &std::path::Path) -> Vec<(&'static str, OsString)> {
    vars_at(env, &api.url(), bin)
}

/// As [`vars`], for a model API at `url` (`http://host:port`).
fn vars_at(env: &TestEnv, url: &str, bin: &std::path::Path) -> Vec<(&'static str, OsString)> {
    let codex_home = env.root().join("codex");
    std::fs::create_dir_all(&codex_home).unwrap();
    std::fs::write(
        codex_home.join("config.toml"),
        format!(
            "model = \"gpt-5\"\nmodel_provider = \"standin\"\n\n[model_providers.standin]\nname = \"stand-in\"\nbase_url = \"{url}/v1\"\nenv_key = \"STANDIN_KEY\"\nwire_api = \"responses\"\n"
        ),
    )
    .unwrap();
    vec![
        ("PATH", path_with(bin)),
        ("CODEX_HOME", codex_home.into()),
        ("STANDIN_KEY", "stand-in".into()),
    ]
}

#[test]
fn the_codex_preset_merges_a_fan_out_and_fan_in() {
    let test = "the_codex_preset_merges_a_fan_out_and_fan_in";
    let Some(bin) = cli_or_skip(test, "codex") else {
        return;
    };
    let env = TestEnv::new();
    env.init_repo();
    let api = ModelApi::start(Api::Responses, &harness::notes_script(), &env.root());
    env.write(".orchestrator.toml", &harness::config("codex"));
    env.write("plan.toml", harness::FAN_PLAN);
    let (out, per_task) = harness::run(&env, &vars(&env, &api, &bin), 4);
    harness::assert_fan_merged(&env, &api, "codex", &out, per_task);
}

/// Issue 13's leftover: Codex CLI 0.171 waits for a model API it cannot
/// reach forever ("Reconnecting... waiting for network", then again every
/// minute at most), whatever `request_max_retries` and `stream_max_retries`
/// say (docs/run.md). The attempt's `timeout` is what ends it: a failure,
/// retried after its backoff like any other timeout.
#[test]
fn codex_with_an_unreachable_api_ends_at_its_timeout_and_is_retried() {
    let test = "codex_with_an_unreachable_api_ends_at_its_timeout_and_is_retried";
    let Some(bin) = cli_or_skip(test, "codex") else {
        return;
    };
    let env = TestEnv::new();
    env.init_repo();
    // A port nothing listens on: every connection is refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = harness::config("codex").replace("timeout = \"5m\"", "timeout = \"4s\"");
    env.write(".orchestrator.toml", &config);
    env.write(
        "plan.toml",
        "[[task]]\nid = \"T1\"\ntitle = \"Start the notes\"\n",
    );
    let vars = vars_at(&env, &format!("http://127.0.0.1:{port}"), &bin);
    let mut run = env
        .orch()
        .arg("run")
        .envs(vars.iter().map(|(k, v)| (*k, v)))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let ended = wait_until(Duration::from_secs(120), || {
        run.try_wait().unwrap().is_some()
    });
    if !ended {
        let _ = run.kill();
    }
    let out = run.wait_with_output().unwrap();
    let shown = format!("{}{}", env.render(&out), harness::agent_logs(&env));
    assert!(ended, "the run did not end: {shown}");
    assert_eq!(out.status.code(), Some(1), "{shown}");
    assert_eq!(env.status_of("T1"), "failed", "{shown}");
    let attempts = env.state()["items"]["T1"]["attempts"].clone();
    let attempts = attempts.as_array().unwrap();
    assert_eq!(
        attempts.len(),
        2,
        "retried once (max_attempts = 2): {shown}"
    );
    for attempt in attempts {
        let outcome = &attempt["outcome"];
        assert_eq!(outcome["kind"], "failed", "{outcome}");
        assert!(
            outcome["reason"].as_str().unwrap().contains("timed out"),
            "{outcome}"
        );
    }
    assert_eq!(attempts[0]["outcome"]["retry"], true, "a passing failure");
    assert!(
        harness::agent_logs(&env).contains("Reconnecting..."),
        "codex said it was reconnecting: {shown}"
    );
}
