//! Metrics: a real Prometheus scrapes the live coordinator, and
//! `promtool check metrics` reads `orch metrics`. Both come from Debian's
//! `prometheus` package, which `scripts/test` installs; without them these
//! tests say so loudly and check only what needs no Prometheus.

use std::io::Write;
use std::process::{Child, Command, Stdio};

use crate::common::{DEADLINE, TestEnv, wait_until};

/// Returns whether a program is on PATH; if not, says the test skips.
fn have(program: &str) -> bool {
    let found = Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !found {
        eprintln!(
            "\n*** SKIPPED: `{program}` is not installed (Debian's `prometheus` package; scripts/test installs it) ***\n"
        );
    }
    found
}

/// Returns a port free on the loopback now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Kills the Prometheus this test started when the test ends, however.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Asks Prometheus for the value of one series, if it has one.
fn query(port: u16, expr: &str) -> Option<String> {
    let url = format!("http://127.0.0.1:{port}/api/v1/query");
    let mut response = ureq::get(&url).query("query", expr).call().ok()?;
    let text = response.body_mut().read_to_string().ok()?;
    let body: serde_json::Value = serde_json::from_str(&text).ok()?;
    body["data"]["result"][0]["value"][1]
        .as_str()
        .map(str::to_owned)
}

#[test]
fn prometheus_scrapes_the_live_run_and_promtool_accepts_orch_metrics() {
    let env = TestEnv::new();
    env.init_repo();
    let gates = env.root().join("gates");
    std::fs::create_dir_all(&gates).unwrap();
    std::fs::write(gates.join("T1"), "").unwrap();
    std::fs::write(gates.join("T2"), "").unwrap();
    let port = free_port();
    env.configure(
        "gate.sh",
        &format!(
            "[agent.env]\nGATE_DIR = {:?}\n\n[metrics]\nlisten = \"127.0.0.1:{port}\"\n",
            gates.display().to_string()
        ),
    );
    env.write(
        "plan.toml",
        "[[task]]\nid = \"T1\"\n[[task]]\nid = \"T2\"\n[[task]]\nid = \"T3\"\ndepends_on = [\"T1\"]\n",
    );
    let run = env
        .orch()
        .arg("run")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let merged_two = || {
        env.events()
            .iter()
            .filter(|e| e["event"] == "task.merged")
            .count()
            == 2
    };
    assert!(wait_until(DEADLINE, merged_two), "T1 and T2 never merged");

    // The endpoint answers in the text format to a plain client; the task
    // gauges follow `state.json`'s writes, a moment behind the events.
    let scrape = || {
        ureq::get(&format!("http://127.0.0.1:{port}/metrics"))
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap()
    };
    assert!(
        wait_until(DEADLINE, || scrape()
            .contains("orch_tasks{status=\"merged\"} 2")),
        "{}",
        scrape()
    );
    assert!(scrape().contains("orch_agents_running 1"), "{}", scrape());

    if have("prometheus") {
        let web = free_port();
        let config = env.root().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: orch\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
            ),
        )
        .unwrap();
        let log = std::fs::File::create(env.root().join("prometheus.log")).unwrap();
        let _prometheus = Killed(
            Command::new("prometheus")
                .arg(format!("--config.file={}", config.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    env.root().join("tsdb").display()
                ))
                .arg(format!("--web.listen-address=127.0.0.1:{web}"))
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap(),
        );
        let scraped = wait_until(DEADLINE, || {
            query(web, "orch_tasks{status=\"merged\"}").as_deref() == Some("2")
        });
        let log = std::fs::read_to_string(env.root().join("prometheus.log")).unwrap_or_default();
        assert!(scraped, "Prometheus never saw 2 merged tasks:\n{log}");
        assert_eq!(
            query(web, "orch_attempts_total{outcome=\"succeeded\"}").as_deref(),
            Some("2")
        );
    }

    std::fs::write(gates.join("T3"), "").unwrap();
    let out = run.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", env.render(&out));

    let out = env.orch().arg("metrics").output().unwrap();
    assert!(out.status.success(), "{}", env.render(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("orch_tasks{status=\"merged\"} 3"), "{text}");
    assert!(
        text.contains("orch_merges_total{outcome=\"merged\"} 3"),
        "{text}"
    );
    if have("promtool") {
        let mut check = Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        check
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let checked = check.wait_with_output().unwrap();
        assert!(
            checked.status.success(),
            "promtool: {}{}",
            String::from_utf8_lossy(&checked.stdout),
            String::from_utf8_lossy(&checked.stderr)
        );
    }
}
