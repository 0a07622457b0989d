//! `orch completions SHELL` (each shell's script: `doctor.rs`).

use std::process::Stdio;

use crate::common::TestEnv;

/// Issue 16: `orch completions bash | head -1` panicked on the closed pipe
/// (exit 101). The pipe here is closed before orch writes a byte.
#[test]
fn issue_16_completions_into_a_closed_pipe_end_quietly() {
    let env = TestEnv::new();
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = env
        .orch_in(&env.root())
        .args(["completions", "bash"])
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    insta::assert_snapshot!(env.render(&out), @"");
}
