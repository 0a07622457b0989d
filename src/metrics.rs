//! Prometheus metrics of a run, derived from its events and its state.
//!
//! One [`Metrics`] value turns [`Event`]s into counters, gauges and
//! histograms (the `prometheus-client` crate encodes them); nothing here
//! reads files or clocks on its own, so the live coordinator (which feeds
//! each event as it records it) and `orch metrics` (which replays
//! `events.jsonl`) give the same numbers for the same log. Durations come
//! from the events' own times and fields. [`serve`] answers scrapes on a
//! plain `std::net` listener on a thread of its own, so a scrape never
//! waits on the run and the run never waits on a scrape.
//!
//! The metric names and what they count are in `docs/metrics.md`.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::lifecycle::Status;
use crate::plan::{FullId, Kind, Plan};
use crate::state::State;
use crate::state::events::{Event, EventKind, Merged};
use crate::state::model::PauseCause;

/// The agent label of a task or subtask that picks no preset.
pub const DEFAULT_AGENT: &str = "default";

/// The content type of the exposition [`Metrics::encode`] writes.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The content type of the exposition [`Metrics::encode_text`] writes.
pub const TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AgentLabel {
    agent: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AttemptLabels {
    agent: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CheckLabel {
    check: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CheckResultLabels {
    check: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabel {
    event: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenLabels {
    agent: String,
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PauseLabels {
    agent: String,
    cause: String,
}

type FloatCounter = Counter<f64, AtomicU64>;

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

fn attempt_buckets() -> Histogram {
    Histogram::new([
        10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0, 10800.0,
    ])
}

fn check_buckets() -> Histogram {
    Histogram::new([
        0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0,
    ])
}

/// The metrics of a run, and what they need to remember between events.
pub struct Metrics {
    registry: Registry,
    tasks: Family<StatusLabel, Gauge>,
    merge_queue: Gauge,
    agents_running: Gauge,
    attempts_started: Family<AgentLabel, Counter>,
    attempts: Family<AttemptLabels, Counter>,
    attempt_seconds: Histograms<AgentLabel>,
    merges: Family<OutcomeLabel, Counter>,
    merge_seconds: Histogram,
    queue_wait_seconds: Histogram,
    checks: Family<CheckResultLabels, Counter>,
    check_seconds: Histograms<CheckLabel>,
    state_writes: Counter,
    state_write_bytes: Counter,
    events: Family<EventLabel, Counter>,
    tokens: Family<TokenLabels, Counter>,
    cost: Family<AgentLabel, FloatCounter>,
    paused: Family<AgentLabel, Gauge>,
    paused_until: Family<AgentLabel, Gauge>,
    pauses: Family<PauseLabels, Counter>,
    plan: Arc<Plan>,
    /// Open attempts: when each started, and its agent.
    open: HashMap<FullId, (SystemTime, String)>,
    /// Tasks waiting to merge: since when.
    queued: HashMap<FullId, SystemTime>,
    /// Tasks merging: when the merge or its last check ended.
    merge_step: HashMap<FullId, SystemTime>,
    /// Events come from the live run (`state_written` counts writes) rather
    /// than from a replayed log (`run.finished` carries them).
    live: bool,
}

impl Metrics {
    /// Returns empty metrics for a plan.
    pub fn new(plan: Arc<Plan>) -> Metrics {
        let mut registry = Registry::with_prefix("orch");
        let tasks = Family::<StatusLabel, Gauge>::default();
        registry.register("tasks", "Tasks by status", tasks.clone());
        let merge_queue = Gauge::default();
        registry.register(
            "merge_queue_length",
            "Tasks waiting to merge",
            merge_queue.clone(),
        );
        let agents_running = Gauge::default();
        registry.register(
            "agents_running",
            "Agent attempts under way",
            agents_running.clone(),
        );
        let attempts_started = Family::<AgentLabel, Counter>::default();
        registry.register(
            "attempts_started",
            "Agent attempts started, by agent",
            attempts_started.clone(),
        );
        let attempts = Family::<AttemptLabels, Counter>::default();
        registry.register(
            "attempts",
            "Agent attempts ended, by agent and outcome (succeeded, retried, failed, interrupted, cancelled)",
            attempts.clone(),
        );
        let attempt_seconds: Histograms<AgentLabel> =
            Family::new_with_constructor(attempt_buckets as fn() -> Histogram);
        registry.register(
            "attempt_duration_seconds",
            "How long agent attempts ran, by agent",
            attempt_seconds.clone(),
        );
        let merges = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "merges",
            "Merges ended, by outcome (merged, conflicted, failed, recovered)",
            merges.clone(),
        );
        let merge_seconds = Histogram::new([
            0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
        ]);
        registry.register(
            "merge_duration_seconds",
            "How long merges that landed took, checks included",
            merge_seconds.clone(),
        );
        let queue_wait_seconds =
            Histogram::new([1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 600.0, 1800.0, 3600.0]);
        registry.register(
            "merge_queue_wait_seconds",
            "How long tasks waited in the merge queue before their merge began",
            queue_wait_seconds.clone(),
        );
        let checks = Family::<CheckResultLabels, Counter>::default();
        registry.register(
            "checks",
            "Checks run on merge candidates, by check and result (passed, failed)",
            checks.clone(),
        );
        let check_seconds: Histograms<CheckLabel> =
            Family::new_with_constructor(check_buckets as fn() -> Histogram);
        registry.register(
            "check_duration_seconds",
            "How long each check took, from the end of the step before it",
            check_seconds.clone(),
        );
        let state_writes = Counter::default();
        registry.register("state_writes", "Writes of state.json", state_writes.clone());
        let state_write_bytes = Counter::default();
        registry.register(
            "state_write_bytes",
            "Bytes written to state.json",
            state_write_bytes.clone(),
        );
        let events = Family::<EventLabel, Counter>::default();
        registry.register("events", "Events recorded, by name", events.clone());
        let tokens = Family::<TokenLabels, Counter>::default();
        registry.register(
            "tokens",
            "Tokens agents reported, by agent and kind (input, output, cached)",
            tokens.clone(),
        );
        let cost = Family::<AgentLabel, FloatCounter>::default();
        registry.register(
            "cost_usd",
            "Cost agents reported, in US dollars, by agent",
            cost.clone(),
        );
        let paused = Family::<AgentLabel, Gauge>::default();
        registry.register(
            "agent_paused",
            "Whether nothing is launched for the agent (* for every agent): 1 while paused, else 0",
            paused.clone(),
        );
        let paused_until = Family::<AgentLabel, Gauge>::default();
        registry.register(
            "agent_paused_until_seconds",
            "Unix time at which the agent's pause ends by itself: 0 when it is not paused or is paused until a person resumes it",
            paused_until.clone(),
        );
        let pauses = Family::<PauseLabels, Counter>::default();
        registry.register(
            "agent_pauses",
            "Pauses of an agent, by agent and cause (limit, person)",
            pauses.clone(),
        );
        Metrics {
            registry,
            tasks,
            merge_queue,
            agents_running,
            attempts_started,
            attempts,
            attempt_seconds,
            merges,
            merge_seconds,
            queue_wait_seconds,
            checks,
            check_seconds,
            state_writes,
            state_write_bytes,
            events,
            tokens,
            cost,
            paused,
            paused_until,
            pauses,
            plan,
            open: HashMap::new(),
            queued: HashMap::new(),
            merge_step: HashMap::new(),
            live: false,
        }
    }

    /// Marks the events from now on as the live run's own: state writes
    /// are counted as they happen, not from `run.finished`.
    pub fn go_live(&mut self) {
        self.live = true;
    }

    /// Takes the plan the run goes on with.
    pub fn set_plan(&mut self, plan: Arc<Plan>) {
        self.plan = plan;
    }

    /// Returns the agent preset a task or subtask runs with.
    fn agent_of(&self, id: &FullId) -> String {
        let Some(idx) = self.plan.lookup(id.as_str()) else {
            return DEFAULT_AGENT.to_owned();
        };
        let item = self.plan.item(idx);
        let parent = item.parent.map(|p| self.plan.item(p));
        item.agent()
            .or_else(|| parent.and_then(|p| p.agent()))
            .unwrap_or(DEFAULT_AGENT)
            .to_owned()
    }

    fn is_task(&self, id: &FullId) -> bool {
        self.plan
            .lookup(id.as_str())
            .is_none_or(|i| self.plan.item(i).kind == Kind::Task)
    }

    /// Takes one event into account.
    pub fn observe(&mut self, e: &Event) {
        self.events
            .get_or_create(&EventLabel {
                event: e.kind.name().to_owned(),
            })
            .inc();
        let at = e.ts.0;
        match &e.kind {
            EventKind::AgentPaused {
                agent,
                until,
                cause,
                ..
            } => {
                let label = AgentLabel {
                    agent: agent.clone(),
                };
                let until = until.map_or(0, |u| {
                    let secs =
                        u.0.duration_since(SystemTime::UNIX_EPOCH)
                            .unwrap_or_default();
                    i64::try_from(secs.as_secs()).unwrap_or(i64::MAX)
                });
                self.paused.get_or_create(&label).set(1);
                self.paused_until.get_or_create(&label).set(until);
                let cause = match cause {
                    PauseCause::Limit => "limit",
                    PauseCause::Person => "person",
                };
                self.pauses
                    .get_or_create(&PauseLabels {
                        agent: agent.clone(),
                        cause: cause.to_owned(),
                    })
                    .inc();
            }
            EventKind::AgentResumed { agent, .. } => {
                let label = AgentLabel {
                    agent: agent.clone(),
                };
                self.paused.get_or_create(&label).set(0);
                self.paused_until.get_or_create(&label).set(0);
            }
            EventKind::TaskUsage { agent, usage, .. } => {
                for (kind, n) in [
                    ("input", usage.input_tokens),
                    ("output", usage.output_tokens),
                    ("cached", usage.cached_tokens),
                ] {
                    if let Some(n) = n {
                        self.tokens
                            .get_or_create(&TokenLabels {
                                agent: agent.clone(),
                                kind: kind.to_owned(),
                            })
                            .inc_by(n);
                    }
                }
                if let Some(cost) = usage.cost_usd {
                    self.cost
                        .get_or_create(&AgentLabel {
                            agent: agent.clone(),
                        })
                        .inc_by(cost);
                }
            }
            _ => {}
        }
        let Some(id) = e.id.as_ref() else {
            if let EventKind::RunFinished {
                state_writes,
                state_bytes,
                ..
            } = &e.kind
                && !self.live
            {
                self.state_writes.inc_by(*state_writes);
                self.state_write_bytes.inc_by(*state_bytes);
            }
            return;
        };
        match &e.kind {
            EventKind::TaskStarted { .. } => {
                let agent = self.agent_of(id);
                self.attempts_started
                    .get_or_create(&AgentLabel {
                        agent: agent.clone(),
                    })
                    .inc();
                self.open.insert(id.clone(), (at, agent));
            }
            EventKind::TaskCompleted { duration_ms, .. } => {
                self.close(id, at, "succeeded", duration_ms.map(Duration::from_millis));
                if self.is_task(id) {
                    self.queued.insert(id.clone(), at);
                }
            }
            EventKind::TaskRetrying { .. } => self.close(id, at, "retried", None),
            EventKind::TaskFailed {
                attempt: Some(_), ..
            } => self.close(id, at, "failed", None),
            EventKind::TaskFailed { attempt: None, .. } => {
                self.merge_step.remove(id);
                self.merge_outcome("failed");
            }
            EventKind::TaskInterrupted { limited: false, .. } => {
                self.close(id, at, "interrupted", None)
            }
            EventKind::TaskInterrupted { limited: true, .. } => self.close(id, at, "limited", None),
            EventKind::TaskCancelled { .. } => {
                if self.open.contains_key(id) {
                    self.close(id, at, "cancelled", None);
                }
                self.queued.remove(id);
            }
            EventKind::MergeStarted { .. } => {
                if let Some(since) = self.queued.remove(id) {
                    self.queue_wait_seconds.observe(seconds(since, at));
                }
                self.merge_step.insert(id.clone(), at);
            }
            EventKind::CheckPassed { check, .. } => self.check(id, check, "passed", at),
            EventKind::CheckFailed { check, .. } => self.check(id, check, "failed", at),
            EventKind::MergeConflicted { .. } => {
                self.merge_step.remove(id);
                self.merge_outcome("conflicted");
            }
            EventKind::TaskMerged { how, .. } => {
                self.merge_step.remove(id);
                self.queued.remove(id);
                match how {
                    Merged::Landed { merge_ms, .. } => {
                        self.merge_outcome("merged");
                        self.merge_seconds.observe(*merge_ms as f64 / 1000.0);
                    }
                    Merged::Recovered => self.merge_outcome("recovered"),
                }
            }
            _ => {}
        }
        self.agents_running.set(self.open.len() as i64);
    }

    /// Closes an open attempt with its outcome and duration.
    fn close(&mut self, id: &FullId, at: SystemTime, outcome: &str, took: Option<Duration>) {
        let (started, agent) = match self.open.remove(id) {
            Some((started, agent)) => (Some(started), agent),
            None => (None, self.agent_of(id)),
        };
        let took = took.or_else(|| started.and_then(|s| at.duration_since(s).ok()));
        if let Some(took) = took {
            self.attempt_seconds
                .get_or_create(&AgentLabel {
                    agent: agent.clone(),
                })
                .observe(took.as_secs_f64());
        }
        self.attempts
            .get_or_create(&AttemptLabels {
                agent,
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    fn merge_outcome(&self, outcome: &str) {
        self.merges
            .get_or_create(&OutcomeLabel {
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    fn check(&mut self, task: &FullId, check: &str, result: &str, at: SystemTime) {
        self.checks
            .get_or_create(&CheckResultLabels {
                check: check.to_owned(),
                result: result.to_owned(),
            })
            .inc();
        if let Some(since) = self.merge_step.insert(task.clone(), at) {
            self.check_seconds
                .get_or_create(&CheckLabel {
                    check: check.to_owned(),
                })
                .observe(seconds(since, at));
        }
    }

    /// Sets the task gauges from the state (statuses, the merge queue).
    pub fn set_state(&mut self, state: Option<&State>) {
        let mut counts = [0i64; Status::ALL.len()];
        for view in crate::state::task_views(&self.plan, state) {
            counts[view.status as usize] += 1;
        }
        for status in Status::ALL {
            self.tasks
                .get_or_create(&StatusLabel {
                    status: status.as_str().to_owned(),
                })
                .set(counts[status as usize]);
        }
        self.merge_queue.set(counts[Status::AwaitingMerge as usize]);
    }

    /// Counts one write of `state.json` by the live run.
    pub fn state_written(&mut self, bytes: u64) {
        self.state_writes.inc();
        self.state_write_bytes.inc_by(bytes);
    }

    /// Returns the metrics in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a `String` cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Returns the metrics in Prometheus's text format 0.0.4, which the
    /// textfile collector and `promtool check metrics` read.
    pub fn encode_text(&self) -> String {
        openmetrics_to_text(&self.encode())
    }
}

/// Rewrites OpenMetrics text as Prometheus text 0.0.4: a counter's `HELP`
/// and `TYPE` lines name its samples (`x_total`), and there is no `# EOF`.
/// Everything else (samples, labels, histograms) reads the same in both.
pub fn openmetrics_to_text(open: &str) -> String {
    let lines: Vec<&str> = open.lines().filter(|l| *l != "# EOF").collect();
    let counters: std::collections::HashSet<&str> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(open.len() + 64);
    for line in lines {
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        match renamed {
            Some(line) => out.push_str(&line),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

fn seconds(from: SystemTime, to: SystemTime) -> f64 {
    to.duration_since(from).unwrap_or_default().as_secs_f64()
}

/// Answers scrapes on `listener` from a thread of its own, until the
/// process ends: `GET /metrics` (or `/`) gets the metrics (OpenMetrics when
/// the scraper accepts it, as Prometheus does; text 0.0.4 otherwise),
/// anything else 404.
pub fn serve(listener: TcpListener, metrics: Arc<Mutex<Metrics>>) {
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            if let Err(e) = answer(stream, &metrics) {
                tracing::debug!(error = %e, "a metrics scrape failed");
            }
        }
    });
}

/// Reads one request's head and answers it, closing the connection.
fn answer(mut stream: TcpStream, metrics: &Mutex<Metrics>) -> io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let first = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(first).into_owned();
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = path.split('?').next().unwrap_or("");
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let openmetrics = head
        .lines()
        .any(|l| l.starts_with("accept:") && l.contains("application/openmetrics-text"));
    let (status, content_type, body) = match (method, path) {
        ("GET", "/metrics" | "/") => {
            let metrics = metrics
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if openmetrics {
                ("200 OK", OPENMETRICS, metrics.encode())
            } else {
                ("200 OK", TEXT, metrics.encode_text())
            }
        }
        _ => (
            "404 Not Found",
            "text/plain; charset=utf-8",
            "orch serves its metrics at /metrics\n".to_owned(),
        ),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes())?;
    stream.flush()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::plan::Rules;
    use crate::state::Timestamp;

    fn event(seq: u64, secs: u64, id: Option<&str>, kind: EventKind) -> Event {
        Event {
            seq,
            ts: Timestamp(SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)),
            id: id.map(|i| FullId::parse(i).unwrap()),
            kind,
        }
    }

    fn lines_with<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
        text.lines().filter(|l| l.starts_with(prefix)).collect()
    }

    #[test]
    fn attempts_merges_and_checks_are_counted_from_events() {
        let plan = crate::plan::from_bytes(
            Path::new("plan.toml"),
            b"[[task]]\nid = \"A\"\nagent = \"codex\"\n[[task]]\nid = \"B\"\n",
            &Rules::default(),
        )
        .unwrap();
        let mut m = Metrics::new(Arc::new(plan));
        let started = |attempt| EventKind::TaskStarted {
            attempt,
            title: String::new(),
            purpose: None,
            confined: false,
        };
        for e in [
            event(1, 0, Some("A"), started(1)),
            event(2, 0, Some("B"), started(1)),
            event(
                3,
                40,
                Some("B"),
                EventKind::TaskRetrying {
                    attempt: 1,
                    reason: "exit code 1".to_owned(),
                    retry_in_ms: 10,
                },
            ),
            event(
                4,
                90,
                Some("A"),
                EventKind::TaskCompleted {
                    attempt: 1,
                    commits: Some(1),
                    log: Vec::new(),
                    duration_ms: Some(90_000),
                },
            ),
            event(
                5,
                95,
                Some("A"),
                EventKind::MergeStarted {
                    branch: "orch/A".to_owned(),
                    tip: None,
                    strategy: crate::git::merge::MergeStrategy::Merge,
                },
            ),
            event(
                6,
                97,
                Some("A"),
                EventKind::CheckPassed {
                    check: "test".to_owned(),
                    candidate: None,
                    tasks: Vec::new(),
                },
            ),
            event(
                7,
                98,
                Some("A"),
                EventKind::TaskMerged {
                    commit: "m".to_owned(),
                    how: Merged::Landed {
                        onto: "t".to_owned(),
                        strategy: crate::git::merge::MergeStrategy::Merge,
                        backup: None,
                        branch_deleted: true,
                        merge_ms: 3000,
                    },
                },
            ),
        ] {
            m.observe(&e);
        }
        let mut state = State::default();
        state.items.insert(
            FullId::parse("A").unwrap(),
            crate::state::ItemState::new(Status::Merged),
        );
        state.items.insert(
            FullId::parse("B").unwrap(),
            crate::state::ItemState::new(Status::Retrying),
        );
        m.set_state(Some(&state));
        let text = m.encode();
        assert!(text.ends_with("# EOF\n"), "{text}");
        let mut attempts = lines_with(&text, "orch_attempts_total");
        attempts.sort();
        assert_eq!(
            attempts,
            [
                "orch_attempts_total{agent=\"codex\",outcome=\"succeeded\"} 1",
                "orch_attempts_total{agent=\"default\",outcome=\"retried\"} 1",
            ]
        );
        assert_eq!(
            lines_with(&text, "orch_agents_running"),
            ["orch_agents_running 0"]
        );
        assert!(text.contains("orch_tasks{status=\"merged\"} 1"), "{text}");
        assert!(text.contains("orch_tasks{status=\"retrying\"} 1"), "{text}");
        assert!(
            text.contains("orch_merges_total{outcome=\"merged\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("orch_merge_queue_wait_seconds_sum 5.0"),
            "queued at 90, merge began at 95: {text}"
        );
        assert!(
            text.contains("orch_check_duration_seconds_sum{check=\"test\"} 2.0"),
            "{text}"
        );
        assert!(
            text.contains("orch_attempt_duration_seconds_sum{agent=\"codex\"} 90.0"),
            "{text}"
        );
    }

    #[test]
    fn pauses_tokens_and_cost_are_counted_by_agent() {
        let plan = crate::plan::from_bytes(
            Path::new("plan.toml"),
            b"[[task]]\nid = \"A\"\n",
            &Rules::default(),
        )
        .unwrap();
        let mut m = Metrics::new(Arc::new(plan));
        let usage = |attempt, cost| EventKind::TaskUsage {
            attempt,
            agent: "claude".to_owned(),
            usage: crate::state::model::Usage {
                input_tokens: Some(100),
                output_tokens: Some(20),
                cached_tokens: None,
                cost_usd: Some(cost),
            },
        };
        let until = Timestamp(SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_600));
        for e in [
            event(
                1,
                0,
                Some("A"),
                EventKind::TaskStarted {
                    attempt: 1,
                    title: String::new(),
                    purpose: None,
                    confined: false,
                },
            ),
            event(2, 5, Some("A"), usage(1, 0.25)),
            event(
                3,
                5,
                Some("A"),
                EventKind::TaskInterrupted {
                    attempt: 1,
                    reason: "usage limit of `claude`".to_owned(),
                    limited: true,
                },
            ),
            event(
                4,
                5,
                Some("A"),
                EventKind::AgentPaused {
                    agent: "claude".to_owned(),
                    until: Some(until),
                    cause: PauseCause::Limit,
                    attempt: Some(1),
                    reason: None,
                },
            ),
            event(
                5,
                6,
                None,
                EventKind::AgentPaused {
                    agent: "*".to_owned(),
                    until: None,
                    cause: PauseCause::Person,
                    attempt: None,
                    reason: None,
                },
            ),
            event(6, 700, Some("A"), usage(2, 0.5)),
        ] {
            m.observe(&e);
        }
        let text = m.encode_text();
        let mut lines: Vec<&str> = text
            .lines()
            .filter(|l| {
                [
                    "orch_tokens",
                    "orch_cost",
                    "orch_agent_pause",
                    "orch_attempts_total",
                ]
                .iter()
                .any(|p| l.starts_with(p))
            })
            .collect();
        lines.sort();
        assert_eq!(
            lines,
            [
                "orch_agent_paused_until_seconds{agent=\"*\"} 0",
                "orch_agent_paused_until_seconds{agent=\"claude\"} 1800000600",
                "orch_agent_paused{agent=\"*\"} 1",
                "orch_agent_paused{agent=\"claude\"} 1",
                "orch_agent_pauses_total{agent=\"*\",cause=\"person\"} 1",
                "orch_agent_pauses_total{agent=\"claude\",cause=\"limit\"} 1",
                "orch_attempts_total{agent=\"default\",outcome=\"limited\"} 1",
                "orch_cost_usd_total{agent=\"claude\"} 0.75",
                "orch_tokens_total{agent=\"claude\",kind=\"input\"} 200",
                "orch_tokens_total{agent=\"claude\",kind=\"output\"} 40",
            ]
        );
        m.observe(&event(
            7,
            800,
            None,
            EventKind::AgentResumed {
                agent: "claude".to_owned(),
                cause: crate::state::events::ResumeCause::Time,
            },
        ));
        assert!(
            m.encode_text()
                .contains("orch_agent_paused{agent=\"claude\"} 0")
        );
    }
}
