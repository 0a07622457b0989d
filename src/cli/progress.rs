//! Rendering run events: one line per event on stderr, or JSON lines.

use std::io::Write;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cli::style;
use crate::coordinator::Summary;
use crate::lifecycle::Status;
use crate::state::events::{Event, EventName};
use crate::text::plural;

/// Prints human progress lines to stderr.
pub struct Human {
    start: Instant,
}

impl Human {
    pub fn new() -> Human {
        Human {
            start: Instant::now(),
        }
    }

    pub fn event(&mut self, e: &Event) {
        let Some(line) = line(e) else { return };
        let elapsed = self.start.elapsed().as_secs();
        let mut err = anstream::stderr().lock();
        let _ = writeln!(
            err,
            "{d}[{:02}:{:02}]{d:#} {line}",
            elapsed / 60,
            elapsed % 60,
            d = style::dim()
        );
    }
}

fn text(e: &Event, key: &str) -> String {
    match e.fields.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    }
}

fn num(e: &Event, key: &str) -> Option<u64> {
    e.fields.get(key).and_then(Value::as_u64)
}

/// Formats a duration compactly: `850ms`, `12.3s`, `4m05s`.
pub fn duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        let s = d.as_secs();
        format!("{}m{:02}s", s / 60, s % 60)
    }
}

fn line(e: &Event) -> Option<String> {
    let id = e.id.as_ref().map(|i| i.to_string()).unwrap_or_default();
    let attempt = num(e, "attempt")
        .map(|n| format!("attempt {n}"))
        .unwrap_or_default();
    let word = |s: Status, w: &str| {
        let st = style::status(s);
        format!("{st}{w:<9}{st:#}")
    };
    Some(match e.event {
        EventName::RunStarted => format!(
            "Starting: {} on target `{}`{}.",
            plural(num(e, "tasks").unwrap_or(0) as usize, "task", "tasks"),
            text(e, "target"),
            if e.fields.get("no_merge") == Some(&Value::Bool(true)) {
                ", without merging"
            } else {
                ""
            }
        ),
        EventName::RunStopping => format!(
            "Stopping: waiting for {} to stop (press Ctrl-C again to kill at once).",
            plural(num(e, "agents").unwrap_or(0) as usize, "agent", "agents")
        ),
        EventName::TaskStarted => format!(
            "{} {id}  {attempt}: {}",
            word(Status::Running, "started"),
            text(e, "title")
        ),
        EventName::TaskCompleted => {
            let mut parts = vec![attempt];
            if let Some(ms) = num(e, "duration_ms") {
                parts.push(duration(Duration::from_millis(ms)));
            }
            if let Some(c) = num(e, "commits") {
                parts.push(plural(c as usize, "commit", "commits"));
            }
            format!(
                "{} {id}  {}",
                word(Status::AwaitingMerge, "done"),
                parts.join(", ")
            )
        }
        EventName::TaskRetrying => format!(
            "{} {id}  {attempt}: {}; next attempt in {}",
            word(Status::Retrying, "retrying"),
            text(e, "reason"),
            duration(Duration::from_millis(num(e, "retry_in_ms").unwrap_or(0)))
        ),
        EventName::TaskFailed => format!(
            "{} {id}  {attempt}: {}",
            word(Status::Failed, "failed"),
            text(e, "reason")
        ),
        EventName::TaskInterrupted => format!(
            "{} {id}  {attempt}: {}",
            word(Status::Pending, "stopped"),
            text(e, "reason")
        ),
        EventName::TaskBlocked => format!(
            "{} {id}: {}",
            word(Status::Blocked, "blocked"),
            text(e, "reason")
        ),
        EventName::TaskCancelled => format!("{} {id}", word(Status::Cancelled, "cancelled")),
        EventName::TaskResolved => format!("{} {id}", word(Status::Resolved, "resolved")),
        EventName::TaskRetried => format!("{} {id}", word(Status::Ready, "retry")),
        EventName::TaskMerged => format!(
            "{} {id}  {}",
            word(Status::Merged, "merged"),
            text(e, "commit")
        ),
        EventName::MergeConflicted => format!(
            "{} {id}: {}",
            word(Status::Conflicted, "conflict"),
            text(e, "reason")
        ),
        EventName::CheckFailed => format!(
            "{} {id}: check `{}` failed; log: {}",
            word(Status::Failed, "red"),
            text(e, "check"),
            text(e, "log")
        ),
        EventName::MergeWaiting => format!(
            "{} {id}: {}",
            word(Status::AwaitingMerge, "waiting"),
            text(e, "reason")
        ),
        _ => return None,
    })
}

/// Prints the one-line summary at the end of a run.
pub fn summary(s: &Summary) {
    let order = [
        Status::Merged,
        Status::AwaitingMerge,
        Status::Resolved,
        Status::Failed,
        Status::Blocked,
        Status::Conflicted,
        Status::Cancelled,
        Status::Retrying,
        Status::Running,
        Status::Ready,
        Status::Pending,
    ];
    let parts: Vec<String> = order
        .iter()
        .filter_map(|st| {
            s.counts
                .get(st)
                .map(|n| format!("{n} {}", st.as_str().replace('_', " ")))
        })
        .collect();
    let head = if s.interrupted {
        "Interrupted after"
    } else {
        "Finished in"
    };
    let mut err = anstream::stderr().lock();
    let _ = writeln!(
        err,
        "{h}{head} {}:{h:#} {} ({}).",
        duration(s.elapsed),
        if parts.is_empty() {
            "nothing to do".to_owned()
        } else {
            parts.join(", ")
        },
        plural(s.attempts as usize, "attempt", "attempts"),
        h = style::heading()
    );
}

/// Writes events as JSON lines on stdout.
pub fn json(e: &Event) {
    if let Ok(line) = serde_json::to_string(e) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
}
