//! Rendering run events: one line per event on stderr, or JSON lines.

use std::io::Write;
use std::time::Instant;

use crate::cli::style;
use crate::coordinator::Summary;
use crate::lifecycle::Status;
use crate::narrate;
use crate::state::events::Event;
use crate::text::{duration, plural};

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
        let Some(described) = narrate::describe(e) else {
            return;
        };
        let line = match described.word {
            Some((status, word)) => {
                let st = style::status(status);
                format!("{st}{word:<9}{st:#} {}", described.text)
            }
            None => described.text,
        };
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

/// Prints the one-line summary at the end of a run.
pub fn summary(s: &Summary) {
    let (head, rest) = summary_parts(s);
    let mut err = anstream::stderr().lock();
    let _ = writeln!(err, "{h}{head}{h:#} {rest}", h = style::heading());
}

/// Returns the summary as plain text (for the dashboard's header).
pub fn summary_text(s: &Summary) -> String {
    let (head, rest) = summary_parts(s);
    format!("{head} {rest}")
}

fn summary_parts(s: &Summary) -> (String, String) {
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
    let counts = if parts.is_empty() {
        "nothing to do".to_owned()
    } else {
        parts.join(", ")
    };
    (
        format!("{head} {}:", duration(s.elapsed)),
        format!(
            "{counts} ({}).",
            plural(s.attempts as usize, "attempt", "attempts")
        ),
    )
}

/// Writes events as JSON lines on stdout.
pub fn json(e: &Event) {
    if let Ok(line) = serde_json::to_string(e) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
}
