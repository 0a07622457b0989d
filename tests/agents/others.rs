//! aider (OpenAI Chat Completions) and Gemini CLI (Gemini API), each
//! picked by the plan's tasks with `agent = "<preset>"`.

use crate::common::TestEnv;
use crate::common::model_api::{Api, ModelApi, cli_or_skip, path_with};
use crate::harness;

/// Returns the fan-out/fan-in plan with every task picking `preset`.
fn plan_picking(preset: &str) -> String {
    harness::FAN_PLAN.replace("\ntitle =", &format!("\nagent = \"{preset}\"\ntitle ="))
}

#[test]
fn the_aider_preset_merges_a_fan_out_and_fan_in() {
    let test = "the_aider_preset_merges_a_fan_out_and_fan_in";
    let Some(bin) = cli_or_skip(test, "aider") else {
        return;
    };
    let env = TestEnv::new();
    let repo = env.init_repo();
    // aider writes a placeholder identity into the repository's config when
    // git has none; a confined agent may not, and every user has one.
    env.git(&repo, ["config", "user.name", "Test Author"]);
    env.git(&repo, ["config", "user.email", "author@example.com"]);
    let api = ModelApi::start(Api::Chat, &harness::notes_script(), &env.root());
    env.write(
        ".orchestrator.toml",
        &harness::config("claude").replace("preset = \"claude\"\n", ""),
    );
    env.write("plan.toml", &plan_picking("aider"));
    let vars = [
        ("PATH", path_with(&bin)),
        ("OPENAI_API_BASE", format!("{}/v1", api.url()).into()),
        ("OPENAI_API_KEY", "stand-in".into()),
        // litellm would fetch model prices from the network at start.
        ("LITELLM_LOCAL_MODEL_COST_MAP", "True".into()),
    ];
    let (out, per_task) = harness::run(&env, &vars, 4);
    harness::assert_fan_merged(&env, &api, "aider", &out, per_task);
}

#[test]
fn the_gemini_preset_merges_a_fan_out_and_fan_in() {
    let test = "the_gemini_preset_merges_a_fan_out_and_fan_in";
    let Some(bin) = cli_or_skip(test, "gemini") else {
        return;
    };
    let env = TestEnv::new();
    env.init_repo();
    let api = ModelApi::start(Api::Gemini, &harness::notes_script(), &env.root());
    // Gemini CLI wants the API key chosen as its way to sign in.
    let settings = env.root().join("home/.gemini");
    std::fs::create_dir_all(&settings).unwrap();
    std::fs::write(
        settings.join("settings.json"),
        r#"{"security":{"auth":{"selectedType":"gemini-api-key"}}}"#,
    )
    .unwrap();
    env.write(
        ".orchestrator.toml",
        &harness::config("claude").replace("preset = \"claude\"\n", ""),
    );
    env.write("plan.toml", &plan_picking("gemini"));
    let vars = [
        ("PATH", path_with(&bin)),
        ("GOOGLE_GEMINI_BASE_URL", api.url().into()),
        ("GEMINI_API_KEY", "stand-in".into()),
    ];
    let (out, per_task) = harness::run(&env, &vars, 4);
    harness::assert_fan_merged(&env, &api, "gemini", &out, per_task);
}
