//! What each fuzz target does with its input, shared with the replay test
//! (`tests/fuzz_corpus.rs`, which runs every saved input under `cargo test`).
//!
//! Every function must return normally for any input: errors are fine,
//! panics are bugs. Where an input is accepted, the result is checked too.

use std::path::Path;

use orch::config::Config;
use orch::plan::{self, Rules};

/// Plan text as TOML (by its name).
pub fn plan_toml(data: &[u8]) {
    let _ = plan::from_bytes(Path::new("plan.toml"), data, &Rules::default());
}

/// Plan text as JSON (by its name), hacky-hack backlogs included.
pub fn plan_json(data: &[u8]) {
    let _ = plan::from_bytes(Path::new("plan.json"), data, &Rules::default());
}

/// `.orchestrator.toml`; an accepted config also yields the plan rules.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(config) = Config::from_text(Path::new(".orchestrator.toml"), text) {
        let _ = config.plan_rules();
    }
}

/// A Taskmaster file; what the importer writes must be TOML (the plan in
/// it may still be refused, say for a cycle, as `orch plan import` does).
pub fn taskmaster(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(imported) = plan::taskmaster::convert(text, None) {
        if let Err(e) = imported.toml.parse::<toml::Table>() {
            panic!(
                "the importer wrote TOML that does not parse: {e}\n{}",
                imported.toml
            );
        }
        let _ = plan::from_bytes(
            Path::new("plan.toml"),
            imported.toml.as_bytes(),
            &Rules::default(),
        );
    }
}

/// `state.json`; an accepted state survives a write and a read unchanged.
pub fn state(data: &[u8]) {
    let path = Path::new("state.json");
    if let Ok(state) = orch::state::store::parse(path, data) {
        let again = serde_json::to_vec(&state).expect("a parsed state serializes");
        let back = orch::state::store::parse(path, &again).expect("a written state parses");
        assert_eq!(state, back, "state round-trip");
    }
}
