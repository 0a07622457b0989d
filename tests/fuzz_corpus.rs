//! Replays every saved fuzz input (the seeds in `fuzz/seeds/<target>/`, the
//! minimised corpus in `fuzz/corpus/<target>/`, and the crashes found and
//! fixed, kept in `fuzz/regressions/<target>/`) through the same function its
//! fuzz target calls, so a fixed crash stays fixed under `cargo test`
//! without nightly or cargo-fuzz. See `docs/benchmarks.md` for fuzzing.

use std::path::Path;

#[path = "../fuzz/src/lib.rs"]
mod targets;

type Target = fn(&[u8]);

const TARGETS: [(&str, Target); 5] = [
    ("plan_toml", targets::plan_toml),
    ("plan_json", targets::plan_json),
    ("config", targets::config),
    ("taskmaster", targets::taskmaster),
    ("state", targets::state),
];

#[test]
fn every_saved_fuzz_input_is_handled() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    for (name, run) in TARGETS {
        let mut replayed = 0;
        for dir in ["seeds", "corpus", "regressions"] {
            let Ok(entries) = std::fs::read_dir(root.join(dir).join(name)) else {
                continue;
            };
            for entry in entries {
                let path = entry.unwrap().path();
                let data = std::fs::read(&path).unwrap();
                let outcome = std::panic::catch_unwind(|| run(&data));
                assert!(outcome.is_ok(), "{name}: {} panicked", path.display());
                replayed += 1;
            }
        }
        assert!(
            replayed > 0,
            "{name}: no saved inputs under fuzz/corpus/{name}"
        );
    }
}
