//! Codex CLI (`codex`), against a stand-in of the OpenAI Responses API.

use std::ffi::OsString;

use crate::common::TestEnv;
use crate::common::model_api::{Api, ModelApi, cli_or_skip, path_with};
use crate::harness;

/// What Codex CLI needs to talk to the stand-in: it reads its provider
/// from `$CODEX_HOME/config.toml`, and a known model name gets it its usual
/// tools.
pub fn vars(env: &TestEnv, api: &ModelApi, bin: &std::path::Path) -> Vec<(&'static str, OsString)> {
    let codex_home = env.root().join("codex");
    std::fs::create_dir_all(&codex_home).unwrap();
    std::fs::write(
        codex_home.join("config.toml"),
        format!(
            "model = \"gpt-5\"\nmodel_provider = \"standin\"\n\n[model_providers.standin]\nname = \"stand-in\"\nbase_url = \"{}/v1\"\nenv_key = \"STANDIN_KEY\"\nwire_api = \"responses\"\n",
            api.url()
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
