//! Codex CLI (`codex`), against a stand-in of the OpenAI Responses API.

use crate::common::TestEnv;
use crate::common::model_api::{Api, ModelApi, cli_or_skip, path_with};
use crate::harness;

#[test]
fn the_codex_preset_merges_a_fan_out_and_fan_in() {
    let test = "the_codex_preset_merges_a_fan_out_and_fan_in";
    let Some(bin) = cli_or_skip(test, "codex") else {
        return;
    };
    let env = TestEnv::new();
    env.init_repo();
    let api = ModelApi::start(Api::Responses, &harness::notes_script(), &env.root());
    // Codex reads its provider from `$CODEX_HOME/config.toml`; a known model
    // name gets it its usual tools.
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
    env.write(".orchestrator.toml", &harness::config("codex"));
    env.write("plan.toml", harness::FAN_PLAN);
    let vars = [
        ("PATH", path_with(&bin)),
        ("CODEX_HOME", codex_home.into()),
        ("STANDIN_KEY", "stand-in".into()),
    ];
    let (out, per_task) = harness::run(&env, &vars, 4);
    harness::assert_fan_merged(&env, &api, "codex", &out, per_task);
}
