//! The dashboard in a real terminal: tmux runs `orch dash` beside a live
//! run, and `orch run --tui`; the screen is read with `capture-pane` and
//! keys are typed with `send-keys`.
//!
//! tmux is installed by `scripts/test` when missing; these tests fail
//! rather than skip without it, so that a green run means they ran.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use crate::common::{DEADLINE, TestEnv, wait_until};

/// A tmux server of our own (its socket in the test's temp dir) with one pane.
struct Tmux {
    socket: PathBuf,
}

impl Tmux {
    /// Starts `orch ARGS` (in the repository, with the test's sealed
    /// environment) in a detached `width`×`height` pane. The line
    /// that follows it prints the exit code and keeps the pane open.
    fn start(env: &TestEnv, args: &str, width: u16, height: u16) -> Tmux {
        let command = format!("'{}' {args}", env!("CARGO_BIN_EXE_orch"));
        let script = env.root().join("in-tmux.sh");
        let mut text = String::from("#!/bin/sh\n");
        for (key, value) in env.vars() {
            text.push_str(&format!("export {key}='{}'\n", value.to_string_lossy()));
        }
        text.push_str(&format!(
            "cd '{}'\n{command}\necho \"exited with $?\"\nsleep 600\n",
            env.repo().display()
        ));
        std::fs::write(&script, text).unwrap();
        let tmux = Tmux {
            socket: env.root().join("tmux.sock"),
        };
        let ok = tmux
            .cmd()
            .args([
                "new-session",
                "-d",
                "-x",
                &width.to_string(),
                "-y",
                &height.to_string(),
            ])
            .args(["sh", &script.display().to_string()])
            .status()
            .expect("tmux is needed for the dashboard tests; `scripts/test` installs it")
            .success();
        assert!(ok, "tmux did not start");
        tmux
    }

    fn cmd(&self) -> Command {
        let mut cmd = Command::new("tmux");
        cmd.arg("-S")
            .arg(&self.socket)
            .env("TERM", "xterm-256color");
        cmd
    }

    fn screen(&self) -> String {
        let out = self.cmd().args(["capture-pane", "-p"]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn keys(&self, keys: &[&str]) {
        for key in keys {
            assert!(
                self.cmd()
                    .args(["send-keys", key])
                    .status()
                    .unwrap()
                    .success()
            );
        }
    }

    /// Waits until the screen satisfies `test`; returns it.
    fn wait_for(&self, what: &str, test: impl Fn(&str) -> bool) -> String {
        let mut screen = String::new();
        let seen = wait_until(DEADLINE, || {
            screen = self.screen();
            test(&screen)
        });
        assert!(seen, "the screen never showed {what}:\n{screen}");
        screen
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd().arg("kill-server").status();
    }
}

/// Returns the screen line that shows `id` in the tree.
fn row<'a>(screen: &'a str, id: &str) -> Option<&'a str> {
    screen
        .lines()
        .find(|l| l.contains(&format!(" {id} ")) && l.starts_with('│'))
}

/// A background `orch run`, stopped (with its agents) if the test fails.
struct Run(Child);

impl Drop for Run {
    fn drop(&mut self) {
        if self.0.try_wait().unwrap().is_none() {
            let pid = rustix::process::Pid::from_raw(self.0.id() as i32).unwrap();
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::INT);
            let _ = self.0.wait();
        }
    }
}

fn spawn_run(env: &TestEnv) -> Run {
    let child = env
        .orch()
        .args(["run", "--no-merge"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Run(child)
}

#[test]
fn dash_follows_a_live_run_and_cancels_a_task_through_the_inbox() {
    let env = TestEnv::new();
    env.init_repo();
    env.configure("hang.sh", "");
    env.write(
        "plan.toml",
        "[[task]]\nid = \"T1\"\ntitle = \"Schema\"\n[[task]]\nid = \"T2\"\ntitle = \"Model\"\n",
    );
    let mut run = spawn_run(&env);
    assert!(wait_until(DEADLINE, || env.agent_groups().len() == 2));
    let tmux = Tmux::start(&env, "dash", 80, 24);
    let screen = tmux.wait_for("both tasks running", |s| {
        row(s, "T1").is_some_and(|r| r.contains("running"))
            && row(s, "T2").is_some_and(|r| r.contains("running"))
    });
    assert!(screen.contains("live (pid "), "{screen}");

    // The selection follows the task started last until a key moves it.
    tmux.keys(&["g", "c"]);
    tmux.wait_for("the confirmation", |s| s.contains("Cancel `T1`?"));
    tmux.keys(&["y"]);
    tmux.wait_for("T1 cancelled", |s| {
        row(s, "T1").is_some_and(|r| r.contains("cancelled")) && s.contains("cancelled `T1`")
    });
    let status = env.orch().args(["status", "--json"]).output().unwrap();
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let items = status["items"].as_array().unwrap();
    assert_eq!(items[0]["id"], "T1");
    assert_eq!(items[0]["status"], "cancelled");
    assert_eq!(items[1]["status"], "running");

    // The run ends when T2 is cancelled from elsewhere; the dashboard says so.
    assert!(
        env.orch()
            .args(["cancel", "T2"])
            .status()
            .unwrap()
            .success()
    );
    assert!(wait_until(DEADLINE, || run.0.try_wait().unwrap().is_some()));
    tmux.wait_for("the run over", |s| {
        s.contains("last run finished") && row(s, "T2").is_some_and(|r| r.contains("cancelled"))
    });
    tmux.keys(&["q"]);
    let screen = tmux.wait_for("orch dash exit", |s| s.contains("exited with"));
    assert!(screen.contains("exited with 0"), "{screen}");
    assert!(
        !screen.contains("┌ plan"),
        "the terminal was restored:\n{screen}"
    );
    env.assert_no_agent_left();
}

#[test]
fn run_tui_shows_the_run_to_its_end_and_exits_with_its_code() {
    let env = TestEnv::new();
    env.init_repo();
    env.configure("slow.sh", "[agent.env]\nSLOW_SECONDS = \"1\"\n");
    env.write(
        "plan.toml",
        "[[task]]\nid = \"T1\"\n[[task]]\nid = \"T2\"\ndepends_on = [\"T1\"]\n",
    );
    let tmux = Tmux::start(&env, "run --tui", 80, 24);
    tmux.wait_for("T1 running", |s| {
        row(s, "T1").is_some_and(|r| r.contains("running"))
    });
    let screen = tmux.wait_for("the run's end", |s| s.contains("run ended: Finished"));
    assert!(
        row(&screen, "T2").is_some_and(|r| r.contains("merged")),
        "{screen}"
    );
    tmux.keys(&["q"]);
    let screen = tmux.wait_for("orch run exit", |s| s.contains("exited with"));
    assert!(screen.contains("Finished in"), "{screen}");
    assert!(screen.contains("exited with 0"), "{screen}");
    assert_eq!(env.status_of("T2"), "merged");
}

#[test]
fn run_tui_ctrl_c_stops_the_run_and_exits_130() {
    let env = TestEnv::new();
    env.init_repo();
    env.configure("hang.sh", "");
    env.write("plan.toml", "[[task]]\nid = \"T1\"\n");
    let tmux = Tmux::start(&env, "run --tui", 80, 24);
    tmux.wait_for("T1 running", |s| {
        row(s, "T1").is_some_and(|r| r.contains("running"))
    });
    tmux.keys(&["C-c"]);
    let screen = tmux.wait_for("orch run exit", |s| s.contains("exited with"));
    assert!(screen.contains("Stopping the run"), "{screen}");
    assert!(screen.contains("exited with 130"), "{screen}");
    env.assert_no_agent_left();
}

#[test]
fn dash_without_a_terminal_is_refused_with_a_pointer_to_status() {
    let env = TestEnv::new();
    env.init_repo();
    env.configure("hang.sh", "");
    env.write("plan.toml", "[[task]]\nid = \"T1\"\n");
    insta::assert_snapshot!(env.run(["dash"]), @"
    ------- stderr -------
    error: cannot use the terminal
      caused by: stdin and stdout must be a terminal
    hint: `orch status` prints the same information without a terminal
    [exit status: 2]
    ");
}
