//! End-to-end tests of the `orch` binary, one module per command.

#[path = "../common/mod.rs"]
mod common;

mod clean;
mod completions;
mod crash;
mod dash;
mod demo;
mod doctor;
mod faults;
mod hooks;
mod hostile;
mod init;
mod live_plan;
mod merge;
mod metrics;
mod notify;
mod pause;
mod pid_reuse;
mod plan_check;
mod plan_graph;
mod plan_import;
mod plan_next;
mod plan_show;
mod plan_versions;
mod queue;
mod run;
mod run_control;
mod sandbox;
mod slurm;
mod state_writes;
mod status_logs;
mod trust;

/// Every file in this folder is compiled as a module (a forgotten one would never run).
#[test]
fn every_test_file_is_a_module() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cli");
    let main = std::fs::read_to_string(dir.join("main.rs")).unwrap();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let Some(module) = name.strip_suffix(".rs") else {
            continue;
        };
        if module != "main" {
            assert!(
                main.contains(&format!("mod {module};")),
                "tests/cli/{name} is not declared in main.rs"
            );
        }
    }
}
