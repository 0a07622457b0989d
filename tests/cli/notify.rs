//! Notifications end to end: a real HTTP receiver on the loopback that
//! fails the first deliveries and then accepts (or never answers), a
//! command destination, the dead-letter list and replay, and a coordinator
//! killed with deliveries pending.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{KeyInit, Mac};
use rustix::process::{Pid, Signal, kill_process};

use crate::common::{DEADLINE, TestEnv, wait_until};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// How the receiver answers.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// 500 to the first `n` requests, then 200.
    FailFirst(usize),
    /// 200.
    Accept,
    /// Reads the request and never answers.
    Hang,
}

/// One request the receiver got.
#[derive(Clone, Debug)]
struct Request {
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
    accepted: bool,
}

impl Request {
    fn id(&self) -> &str {
        &self.headers["webhook-id"]
    }
}

/// A webhook receiver on the loopback, on a thread of its own.
struct Receiver {
    port: u16,
    mode: Arc<Mutex<Mode>>,
    log: Arc<Mutex<Vec<Request>>>,
}

impl Receiver {
    fn start(mode: Mode) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mode = Arc::new(Mutex::new(mode));
        let log = Arc::new(Mutex::new(Vec::new()));
        let (m, l) = (Arc::clone(&mode), Arc::clone(&log));
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (m, l) = (Arc::clone(&m), Arc::clone(&l));
                std::thread::spawn(move || serve(stream, &m, &l));
            }
        });
        Receiver { port, mode, log }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    fn requests(&self) -> Vec<Request> {
        self.log.lock().unwrap().clone()
    }

    /// Returns how many times each id was accepted.
    fn accepted(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for r in self.requests().iter().filter(|r| r.accepted) {
            *out.entry(r.id().to_owned()).or_default() += 1;
        }
        out
    }
}

fn serve(mut stream: TcpStream, mode: &Mutex<Mode>, log: &Mutex<Vec<Request>>) {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    let split = loop {
        let Ok(n) = stream.read(&mut buf) else { return };
        if n == 0 {
            return;
        }
        data.extend_from_slice(&buf[..n]);
        if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
    };
    let head = String::from_utf8_lossy(&data[..split]).into_owned();
    let headers: BTreeMap<String, String> = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .get("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    let mut body = data[split + 4..].to_vec();
    while body.len() < length {
        let Ok(n) = stream.read(&mut buf) else { return };
        if n == 0 {
            break;
        }
        body.extend_from_slice(&buf[..n]);
    }
    let accepted = {
        let mut mode = mode.lock().unwrap();
        match *mode {
            Mode::Hang => None,
            Mode::Accept => Some(true),
            Mode::FailFirst(0) => Some(true),
            Mode::FailFirst(n) => {
                *mode = Mode::FailFirst(n - 1);
                Some(false)
            }
        }
    };
    let Some(accepted) = accepted else {
        log.lock().unwrap().push(Request {
            headers,
            body,
            accepted: false,
        });
        std::thread::sleep(std::time::Duration::from_secs(5));
        return;
    };
    log.lock().unwrap().push(Request {
        headers,
        body,
        accepted,
    });
    let status = if accepted {
        "200 OK"
    } else {
        "500 Internal Server Error"
    };
    let _ = stream.write_all(
        format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").as_bytes(),
    );
}

/// Returns the delivery ids the events of these names should have, in event order.
fn expected_ids(env: &TestEnv, names: &[&str], destination: &str) -> Vec<String> {
    env.events()
        .iter()
        .filter(|e| names.contains(&e["event"].as_str().unwrap()))
        .map(|e| {
            let ts = e["ts"].as_str().unwrap();
            let ms = humantime::parse_rfc3339(ts)
                .unwrap()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis();
            format!("{:010}-{ms}-{destination}", e["seq"].as_u64().unwrap())
        })
        .collect()
}

/// Checks a request's Standard Webhooks signature with the secret.
fn signature_ok(r: &Request) -> bool {
    let key = STANDARD
        .decode(SECRET.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{}.{}.", r.id(), r.headers["webhook-timestamp"]).as_bytes());
    mac.update(&r.body);
    let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    r.headers.get("webhook-signature") == Some(&expected)
}

fn hook_config(url: &str, events: &str, retry: &str, timeout: &str) -> String {
    format!(
        "[[notify]]\nname = \"hook\"\nevents = {events}\nwebhook = {url:?}\nsecret = {SECRET:?}\ntimeout = {timeout:?}\nretry = {retry}\n"
    )
}

#[test]
fn webhooks_are_signed_retried_on_schedule_and_delivered_once_each_in_order() {
    let receiver = Receiver::start(Mode::FailFirst(3));
    let env = TestEnv::new();
    env.init_repo();
    env.configure(
        "commit.sh",
        &hook_config(
            &receiver.url(),
            r#"["task.merged", "run.finished"]"#,
            r#"["300ms", "300ms", "300ms"]"#,
            "5s",
        ),
    );
    env.write(
        "plan.toml",
        "[[task]]\nid = \"T1\"\n[[task]]\nid = \"T2\"\n",
    );
    let out = env.orch().arg("run").output().unwrap();
    assert!(out.status.success(), "{}", env.render(&out));

    let expected = expected_ids(&env, &["task.merged", "run.finished"], "hook");
    assert_eq!(expected.len(), 3);
    let accepted = receiver.accepted();
    assert_eq!(
        accepted.keys().cloned().collect::<Vec<_>>(),
        {
            let mut sorted = expected.clone();
            sorted.sort();
            sorted
        },
        "every delivery arrived"
    );
    assert!(accepted.values().all(|n| *n == 1), "{accepted:?}");

    let requests = receiver.requests();
    let mut first_seen: Vec<String> = Vec::new();
    for r in &requests {
        if !first_seen.iter().any(|id| id == r.id()) {
            first_seen.push(r.id().to_owned());
        }
    }
    assert_eq!(first_seen, expected, "first tries go out in event order");
    for r in &requests {
        assert!(signature_ok(r), "bad signature on {}", r.id());
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body["data"]["event"], body["type"]);
    }

    // Each failed try chose a wait within the schedule's jitter (300 ms
    // stretched by 0 to 20 %), and the next try came no sooner.
    let text =
        std::fs::read_to_string(env.repo().join(".orchestrator/outbox/delivered.jsonl")).unwrap();
    let mut retried = 0;
    for line in text.lines() {
        let delivered: serde_json::Value = serde_json::from_str(line).unwrap();
        let tries = delivered["tries"].as_array().unwrap();
        for pair in tries.windows(2) {
            let wait = pair[0]["wait_ms"].as_u64().unwrap();
            assert!((300..=360).contains(&wait), "{wait} ms: {line}");
            let at = |t: &serde_json::Value| {
                humantime::parse_rfc3339(t["at"].as_str().unwrap()).unwrap()
            };
            let gap = at(&pair[1]).duration_since(at(&pair[0])).unwrap();
            assert!(gap.as_millis() as u64 >= wait, "{gap:?} < {wait} ms");
            retried += 1;
        }
    }
    assert_eq!(retried, 3, "the three failures were retried: {text}");
}

#[test]
fn a_delivery_that_times_out_goes_dead_is_listed_and_replayed() {
    let receiver = Receiver::start(Mode::Hang);
    let env = TestEnv::new();
    env.init_repo();
    let received = env.root().join("received.jsonl");
    env.configure(
        "commit.sh",
        &format!(
            "{}\n[[notify]]\nevents = [\"run.finished\"]\ncommand = [\"tee\", \"-a\", {:?}]\n",
            hook_config(
                &receiver.url(),
                r#"["task.merged"]"#,
                r#"["100ms"]"#,
                "300ms"
            ),
            received.display().to_string()
        ),
    );
    env.write("plan.toml", "[[task]]\nid = \"T1\"\n");
    let out = env.orch().arg("run").output().unwrap();
    assert!(out.status.success(), "{}", env.render(&out));

    let ids = expected_ids(&env, &["task.merged"], "hook");
    let listed = env.run(["notify", "list"]);
    let shown = listed.replace(&ids[0], "[ID]");
    insta::assert_snapshot!(shown, @"
    Given up on (1; `orch notify replay ID` or `--all` sends again):
      [ID]  task.merged T1 -> hook  2 tries; last: timed out after 300ms
    ");
    let dead: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            env.repo()
                .join(format!(".orchestrator/outbox/dead/{}.json", ids[0])),
        )
        .unwrap(),
    )
    .unwrap();
    let tries = dead["tries"].as_array().unwrap();
    assert_eq!(tries.len(), 2, "the first try and one retry");
    assert_eq!(tries[0]["error"], "timed out after 300ms");

    // The command destination got `run.finished` on its stdin.
    let line = std::fs::read_to_string(&received).unwrap();
    let got: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
    assert_eq!(got["type"], "run.finished");

    receiver.set(Mode::Accept);
    let replayed = env.run(["notify", "replay", "--all"]);
    assert_eq!(
        replayed.replace(&ids[0], "[ID]"),
        "------- stderr -------\nDelivered `[ID]`.\n"
    );
    assert_eq!(receiver.accepted().get(&ids[0]), Some(&1));
    assert!(signature_ok(receiver.requests().last().unwrap()));
    insta::assert_snapshot!(env.run(["notify", "list"]), @"No notification is waiting or given up on.");
    insta::assert_snapshot!(env.run(["notify", "replay", "nope"]), @"
    ------- stderr -------
    error: no notification `nope` is waiting or given up on
    hint: `orch notify list` shows the ids
    [exit status: 2]
    ");
}

#[test]
fn deliveries_pending_when_the_coordinator_is_killed_are_made_once_each_after_restart() {
    let receiver = Receiver::start(Mode::FailFirst(usize::MAX));
    let env = TestEnv::new();
    env.init_repo();
    let gates = env.root().join("gates");
    std::fs::create_dir_all(&gates).unwrap();
    env.configure(
        "gate.sh",
        &format!(
            "[agent.env]\nGATE_DIR = {:?}\n\n{}",
            gates.display().to_string(),
            hook_config(
                &receiver.url(),
                r#"["run.started", "task.started", "task.merged"]"#,
                r#"["400ms", "400ms", "400ms", "400ms", "400ms", "400ms", "400ms", "400ms", "400ms", "400ms"]"#,
                "2s",
            )
        ),
    );
    env.write("plan.toml", "[[task]]\nid = \"T1\"\n");
    let mut run = env
        .orch()
        .arg("run")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pending = env.repo().join(".orchestrator/outbox/pending");
    let failed_twice = || {
        let requests = receiver.requests();
        let mut per_id: BTreeMap<String, usize> = BTreeMap::new();
        for r in &requests {
            *per_id.entry(r.id().to_owned()).or_default() += 1;
        }
        per_id.len() == 2 && per_id.values().all(|n| *n >= 2)
    };
    assert!(
        wait_until(DEADLINE, failed_twice),
        "the deliveries were not tried"
    );
    kill_process(Pid::from_raw(run.id() as i32).unwrap(), Signal::KILL).unwrap();
    run.wait().unwrap();
    // A kill during a rewrite of a delivery (its tries counted) may leave
    // the write's temp file; the outbox reads only `.json` files.
    let waiting = || {
        std::fs::read_dir(&pending)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "json")
            })
            .count()
    };
    assert_eq!(waiting(), 2, "both deliveries wait in the outbox");

    receiver.set(Mode::Accept);
    std::fs::write(gates.join("T1"), "").unwrap();
    let out = env.orch().arg("run").output().unwrap();
    assert!(out.status.success(), "{}", env.render(&out));

    let mut expected = expected_ids(
        &env,
        &["run.started", "task.started", "task.merged"],
        "hook",
    );
    expected.sort();
    let accepted = receiver.accepted();
    assert_eq!(accepted.keys().cloned().collect::<Vec<_>>(), expected);
    assert!(
        accepted.values().all(|n| *n == 1),
        "each id delivered once: {accepted:?}"
    );
    assert_eq!(waiting(), 0);
    assert!(receiver.requests().iter().all(signature_ok));
}
