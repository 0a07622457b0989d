//! A stale `supervisor.json` whose pid now belongs to an unrelated process:
//! no command signals that process (issue 11).
//!
//! A coordinator and its supervisors were killed; later another program got
//! the recorded pid. `orch cancel` (no run live), `orch doctor`, `orch run`
//! (start-up recovery, which also stops checks left running) and `orch
//! merge` all read the run folders; none may touch the stranger.

use std::os::unix::process::CommandExt;
use std::process::{Child, Command};

use crate::common::TestEnv;

/// Starts a process that has nothing to do with orch, in a group of its own.
fn stranger() -> Child {
    Command::new("sleep")
        .arg("300")
        .process_group(0)
        .spawn()
        .unwrap()
}

/// Returns a process's start time in clock ticks since boot.
fn start_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = stat.rsplit_once(')').unwrap().1;
    rest.split_whitespace().nth(19).unwrap().parse().unwrap()
}

fn alive(child: &mut Child) -> bool {
    child.try_wait().unwrap().is_none()
}

/// Writes a state where `T1` runs attempt 1, and run and check folders
/// whose records name `pid` (as started before it: another process).
fn stale_records(env: &TestEnv, pid: u32, with_ticks: bool) {
    let state = r#"{"schema": 1, "target": "main", "items": {"T1": {"status": "running", "attempts": [{"number": 1, "started": "2026-01-01T00:00:00.000Z"}], "branch": "orch/T1"}}}"#;
    env.write(".orchestrator/state.json", state);
    let ticks = start_ticks(pid) - 1;
    let info = if with_ticks {
        format!(
            r#"{{"pid": {pid}, "start_ticks": {ticks}, "agent_pgid": {pid}, "agent_start_ticks": {ticks}, "started": "2026-01-01T00:00:00.000Z"}}"#
        )
    } else {
        format!(r#"{{"pid": {pid}, "agent_pgid": {pid}, "started": "2026-01-01T00:00:00.000Z"}}"#)
    };
    env.write(".orchestrator/runs/T1/1/supervisor.json", &info);
    env.write(".orchestrator/runs/T1/1/spec.json", "{}");
    env.write(".orchestrator/checks/T1/test/supervisor.json", &info);
}

#[test]
fn issue_11_a_reused_pid_is_never_signalled_by_any_command() {
    for with_ticks in [true, false] {
        let env = TestEnv::new();
        env.init_repo();
        env.configure("commit.sh", "");
        env.write("plan.toml", "[[task]]\nid = \"T1\"\ntitle = \"One\"\n");
        let mut stranger = stranger();
        let pid = stranger.id();
        stale_records(&env, pid, with_ticks);

        let doctor = env.orch().arg("doctor").output().unwrap();
        assert!(alive(&mut stranger), "doctor signalled it: {doctor:?}");
        let said = env.render(&doctor);
        assert!(
            said.contains("`T1` was running when the last run stopped (attempt 1); nothing of that attempt is left"),
            "doctor took the stranger for T1's supervisor:\n{said}"
        );

        let cancel = env.orch().args(["cancel", "T1"]).output().unwrap();
        assert!(cancel.status.success(), "{}", env.render(&cancel));
        assert!(alive(&mut stranger), "cancel signalled it");
        assert_eq!(env.status_of("T1"), "cancelled");

        stale_records(&env, pid, with_ticks);
        let run = env.orch().args(["run"]).output().unwrap();
        assert!(
            alive(&mut stranger),
            "run signalled it: {}",
            env.render(&run)
        );
        assert_eq!(env.status_of("T1"), "merged", "{}", env.render(&run));

        stale_records(&env, pid, with_ticks);
        let merge = env.orch().arg("merge").output().unwrap();
        assert!(
            alive(&mut stranger),
            "merge signalled it: {}",
            env.render(&merge)
        );

        stranger.kill().unwrap();
        stranger.wait().unwrap();
    }
}
