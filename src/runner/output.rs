//! What an agent's output says besides its final message: that it hit a
//! rate or usage limit (and when that resets), the tokens and cost it
//! reports, and the session it ran in. Read at collection, from the
//! attempt's log and result file, where the agent's preset says
//! (`limit_exit_codes`, `limit_patterns`, `usage`, `session`; the result
//! file's `retry_after` works for every agent). It decides nothing: the
//! coordinator's judgement (`coordinator::judge`) does.
//!
//! JSON output is read as the objects that start at the beginning of a
//! line (one a line for JSON Lines, or one spanning lines, as Gemini CLI
//! prints it), in the first 256 KiB and the last 1 MiB of the log: a
//! session is named near the start (Codex CLI's `thread.started`), usage
//! and results at the end.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::time::SystemTime;

use serde_json::Value;

use crate::config::presets::{JsonField, UsagePaths};
use crate::runner::spec::{AgentResult, End, ExitRecord, ResultStatus, RetryAfter};
use crate::state::model::Usage;

/// How much of the start of the log is read.
const HEAD: u64 = 256 << 10;
/// How much of the end of the log is read.
const TAIL: u64 = 1 << 20;
/// How much of the end of the log limit patterns are looked for in.
const PATTERN_WINDOW: usize = 64 << 10;
/// The longest quote of what the agent said about its limit.
const SAID_CHARS: usize = 200;
/// The longest session id kept (the CLIs print UUIDs).
const SESSION_CHARS: usize = 128;

/// Where an agent's output says what this module reads (from its preset).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Spec {
    pub limit_exit_codes: Vec<i32>,
    pub limit_patterns: Vec<String>,
    pub usage: Option<UsagePaths>,
    pub session: Option<JsonField>,
}

/// What the output said.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reading {
    /// The attempt failed on a rate or usage limit.
    pub limit: Option<LimitHit>,
    pub usage: Option<Usage>,
    pub session: Option<String>,
}

/// An attempt that ended on a rate or usage limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitHit {
    /// What said so: the line of output (shortened), `exit code N`, or the
    /// result file's `retry_after`.
    pub said: String,
    /// When the limit resets, when the agent said.
    pub reset: Option<SystemTime>,
}

/// Reads the attempt whose output is `log`; `now` places reset times given
/// relative to it (`in 2 hours`, `5pm`).
pub fn read(
    spec: &Spec,
    log: &Path,
    exit: Option<&ExitRecord>,
    result: Option<&AgentResult>,
    now: SystemTime,
) -> Reading {
    let (head, tail) = read_ends(log);
    let objects: Vec<Value> = head
        .iter()
        .flat_map(|h| json_objects(h))
        .chain(json_objects(&tail))
        .collect();
    Reading {
        limit: exit.and_then(|e| limit(spec, &tail, e, result, now)),
        usage: spec.usage.as_ref().and_then(|u| usage(u, &objects)),
        session: spec
            .session
            .as_ref()
            .and_then(|field| last_string(&objects, &field.0))
            .filter(|id| plain_id(id)),
    }
}

/// Says whether a session named by the output reads as an id: it goes
/// into the next attempt's argv, so one that could read as an option
/// (`-…`), or holds spaces, control characters or a blob, is not kept
/// (the next attempt then starts a new session).
fn plain_id(id: &str) -> bool {
    id.len() <= SESSION_CHARS
        && !id.starts_with('-')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
}

/// Returns the start of the log (when the log is longer than what the end
/// holds) and its end, as text.
fn read_ends(log: &Path) -> (Option<String>, String) {
    let Ok(mut file) = std::fs::File::open(log) else {
        return (None, String::new());
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut read_at = |start: u64, count: u64| -> String {
        let mut bytes = Vec::new();
        if file.seek(SeekFrom::Start(start)).is_ok() {
            let _ = (&mut file).take(count).read_to_end(&mut bytes);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    };
    if len <= HEAD + TAIL {
        return (None, read_at(0, len));
    }
    let head = read_at(0, HEAD);
    (Some(head), read_at(len - TAIL, TAIL))
}

/// Returns the JSON objects that start at the beginning of a line of
/// `text`, in order.
pub fn json_objects(text: &str) -> Vec<Value> {
    let starts = std::iter::once(0)
        .chain(text.match_indices('\n').map(|(i, _)| i + 1))
        .filter(|&i| text[i..].starts_with('{'));
    let mut out = Vec::new();
    let mut covered = 0;
    for start in starts {
        if start < covered {
            continue;
        }
        let mut values = serde_json::Deserializer::from_str(&text[start..]).into_iter::<Value>();
        if let Some(Ok(value @ Value::Object(_))) = values.next() {
            covered = start + values.byte_offset();
            out.push(value);
        }
    }
    out
}

/// Returns the string `field` of the last object that has one.
fn last_string(objects: &[Value], field: &str) -> Option<String> {
    objects
        .iter()
        .rev()
        .find_map(|o| o.get(field)?.as_str())
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// Reads each figure at its path in the last object that has it.
fn usage(paths: &UsagePaths, objects: &[Value]) -> Option<Usage> {
    let figure = |path: &Option<String>| -> Option<f64> {
        let path = path.as_deref()?;
        objects.iter().rev().find_map(|o| sum_at(o, path))
    };
    let tokens = |path: &Option<String>| figure(path).map(|n| n.max(0.0).round() as u64);
    let usage = Usage {
        input_tokens: tokens(&paths.input_tokens),
        output_tokens: tokens(&paths.output_tokens),
        cached_tokens: tokens(&paths.cached_tokens),
        cost_usd: figure(&paths.cost_usd).filter(|c| c.is_finite() && *c >= 0.0),
    };
    (!usage.is_empty()).then_some(usage)
}

/// Returns the sum of the numbers at `path` in `value` (`*` stands for any
/// key or element), or `None` when the path reaches no number.
pub fn sum_at(value: &Value, path: &str) -> Option<f64> {
    let mut found = None;
    walk(value, &path.split('.').collect::<Vec<_>>(), &mut found);
    found
}

fn walk(value: &Value, path: &[&str], found: &mut Option<f64>) {
    let Some((first, rest)) = path.split_first() else {
        if let Some(n) = value.as_f64() {
            *found = Some(found.unwrap_or(0.0) + n);
        }
        return;
    };
    match (*first, value) {
        ("*", Value::Object(map)) => map.values().for_each(|v| walk(v, rest, found)),
        ("*", Value::Array(items)) => items.iter().for_each(|v| walk(v, rest, found)),
        (key, Value::Object(map)) => {
            if let Some(v) = map.get(key) {
                walk(v, rest, found);
            }
        }
        _ => {}
    }
}

/// Says whether a failed attempt hit a rate or usage limit, and when it
/// resets: the result file's `retry_after`, a limit exit code, or a limit
/// pattern in the end of the output (the first pattern that matches
/// decides, at its last match).
fn limit(
    spec: &Spec,
    tail: &str,
    exit: &ExitRecord,
    result: Option<&AgentResult>,
    now: SystemTime,
) -> Option<LimitHit> {
    let reported_failure = result
        .and_then(|r| r.status)
        .is_some_and(|s| matches!(s, ResultStatus::Failed | ResultStatus::Blocked));
    let code = match exit.end {
        End::Exited { code } => code,
        _ => return None,
    };
    if code == 0 && !reported_failure {
        return None;
    }
    if let Some(after) = result.and_then(|r| r.retry_after.as_ref()) {
        let reset = match after {
            RetryAfter::Seconds(n) => n
                .as_f64()
                .filter(|s| s.is_finite() && *s >= 0.0)
                .map(|s| now + std::time::Duration::from_secs_f64(s)),
            RetryAfter::Text(text) => crate::when::parse(text, now),
        };
        return Some(LimitHit {
            said: "the result file's `retry_after`".to_owned(),
            reset,
        });
    }
    let start = floor_char_boundary(tail, tail.len().saturating_sub(PATTERN_WINDOW));
    let window = &tail[start..];
    let matched = spec.limit_patterns.iter().find_map(|pattern| {
        let re = regex::Regex::new(pattern).ok()?;
        let caps = re.captures_iter(window).last()?;
        let whole = caps.get(0)?;
        let reset = caps
            .name("reset")
            .and_then(|r| crate::when::parse(r.as_str(), now));
        Some((line_of(window, whole.start(), whole.end()), reset))
    });
    match (matched, spec.limit_exit_codes.contains(&code)) {
        (Some((said, reset)), _) => Some(LimitHit { said, reset }),
        (None, true) => Some(LimitHit {
            said: format!("exit code {code}"),
            reset: None,
        }),
        (None, false) => None,
    }
}

/// Returns the line around `start..end` of `text`; a long one (a line of
/// JSON) is cut to the match and what follows it up to the end of its
/// string.
fn line_of(text: &str, start: usize, end: usize) -> String {
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[end..].find('\n').map_or(text.len(), |i| end + i);
    let line = text[line_start..line_end].trim();
    let line = if line.chars().count() > SAID_CHARS {
        let rest = &text[end..line_end];
        let string_end = rest.find('"').map_or(line_end, |i| end + i);
        text[start..string_end].trim()
    } else {
        line
    };
    match line.char_indices().nth(SAID_CHARS) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line.to_owned(),
    }
}

fn floor_char_boundary(text: &str, mut at: usize) -> usize {
    while !text.is_char_boundary(at) {
        at += 1;
    }
    at
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use crate::config::presets::builtin;
    use crate::state::Timestamp;

    fn exit(code: i32) -> ExitRecord {
        ExitRecord {
            end: End::Exited { code },
            started: Timestamp::now(),
            finished: Timestamp::now(),
            output_bytes: 0,
            log_truncated: false,
        }
    }

    fn spec_of(preset: &str) -> Spec {
        let p = &builtin()[preset];
        Spec {
            limit_exit_codes: p.limit_exit_codes.clone().unwrap_or_default(),
            limit_patterns: p.limit_patterns.clone().unwrap_or_default(),
            usage: p.usage.clone(),
            session: p.session.clone(),
        }
    }

    fn reading(preset: &str, output: &str, code: i32, now: SystemTime) -> Reading {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("agent.log");
        std::fs::write(&log, output).unwrap();
        read(&spec_of(preset), &log, Some(&exit(code)), None, now)
    }

    const RESET: u64 = 1_764_606_000;

    /// What each CLI printed against the stand-in of its API (tests/agents/).
    #[test]
    fn each_presets_limits_usage_and_session_as_its_cli_prints_them() {
        let now = UNIX_EPOCH + Duration::from_secs(RESET - 60);
        let claude_limit = format!(
            "{{\"type\":\"result\",\"is_error\":true,\"api_error_status\":429,\"result\":\"API Error: Request rejected (429) · Claude AI usage limit reached|{RESET}\",\"session_id\":\"s-1\",\"total_cost_usd\":0,\"usage\":{{\"input_tokens\":0,\"output_tokens\":0,\"cache_read_input_tokens\":0}}}}\n"
        );
        let r = reading("claude", &claude_limit, 1, now);
        let hit = r.limit.unwrap();
        assert_eq!(hit.reset, Some(UNIX_EPOCH + Duration::from_secs(RESET)));
        assert!(hit.said.contains("usage limit reached"), "{}", hit.said);
        assert_eq!(r.session.as_deref(), Some("s-1"));
        let subscription = "{\"type\":\"result\",\"is_error\":true,\"result\":\"You've hit your limit · resets 5pm (America/New_York)\",\"session_id\":\"s-4\"}\n";
        let hit = reading("claude", subscription, 1, now).limit.unwrap();
        assert_eq!(hit.reset, crate::when::parse("5pm", now));
        assert!(hit.reset.is_some());
        let rate = "{\"type\":\"result\",\"is_error\":true,\"api_error_status\":429,\"result\":\"API Error: Request rejected (429) · This request would exceed your rate limit\",\"session_id\":\"s-2\"}\n";
        assert_eq!(reading("claude", rate, 1, now).limit.unwrap().reset, None);
        let done = "{\"type\":\"result\",\"result\":\"Done\",\"session_id\":\"s-3\",\"total_cost_usd\":0.0024,\"usage\":{\"input_tokens\":100,\"output_tokens\":20,\"cache_read_input_tokens\":5}}\n";
        let r = reading("claude", done, 0, now);
        assert_eq!(r.limit, None);
        assert_eq!(
            r.usage,
            Some(Usage {
                input_tokens: Some(100),
                output_tokens: Some(20),
                cached_tokens: Some(5),
                cost_usd: Some(0.0024),
            })
        );
        let codex = "{\"type\":\"thread.started\",\"thread_id\":\"t-1\"}\n{\"type\":\"turn.started\"}\n{\"type\":\"error\",\"message\":\"You’ve hit your usage limit. Upgrade to Pro (https://chatgpt.com/explore/pro), visit https://chatgpt.com/settings/usage to purchase more credits or try again in 2 hours.\"}\n{\"type\":\"turn.failed\",\"error\":{\"message\":\"You’ve hit your usage limit. Upgrade to Pro or try again in 2 hours.\"}}\n";
        let r = reading("codex", codex, 1, now);
        assert_eq!(
            r.limit.unwrap().reset,
            Some(now + Duration::from_secs(7200))
        );
        assert_eq!(r.session.as_deref(), Some("t-1"));
        let codex_done = "{\"type\":\"thread.started\",\"thread_id\":\"t-2\"}\n{\"type\":\"turn.completed\",\"usage\":{\"input_tokens\":200,\"cached_input_tokens\":0,\"output_tokens\":40}}\n";
        let r = reading("codex", codex_done, 0, now);
        assert_eq!(r.usage.unwrap().input_tokens, Some(200));
        let gemini = "Warning\n{\n  \"session_id\": \"g-1\",\n  \"response\": \"Done\",\n  \"stats\": {\"models\": {\"a\": {\"tokens\": {\"prompt\": 100, \"candidates\": 20, \"cached\": 0}}, \"b\": {\"tokens\": {\"prompt\": 200, \"candidates\": 40, \"cached\": 10}}}}\n}\n";
        let r = reading("gemini", gemini, 0, now);
        assert_eq!(r.session.as_deref(), Some("g-1"));
        assert_eq!(
            r.usage,
            Some(Usage {
                input_tokens: Some(300),
                output_tokens: Some(60),
                cached_tokens: Some(10),
                cost_usd: None,
            })
        );
        let quota = "{\n  \"session_id\": \"g-2\",\n  \"error\": {\n    \"type\": \"Error\",\n    \"message\": \"You have exhausted your daily quota on this model.\",\n    \"code\": 429\n  }\n}\n";
        assert!(reading("gemini", quota, 1, now).limit.is_some());
    }

    #[test]
    fn a_limit_counts_only_for_an_attempt_that_failed() {
        let now = SystemTime::now();
        let said = "Claude AI usage limit reached|1764606000\n";
        assert!(reading("claude", said, 1, now).limit.is_some());
        assert_eq!(reading("claude", said, 0, now).limit, None, "exit 0");
        assert_eq!(reading("aider", said, 1, now).limit, None, "no patterns");
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("agent.log");
        std::fs::write(&log, "").unwrap();
        let result = |after: RetryAfter| AgentResult {
            status: Some(ResultStatus::Failed),
            summary: None,
            retry: None,
            retry_after: Some(after),
        };
        let seconds = result(RetryAfter::Seconds(2.into()));
        let hit = read(&Spec::default(), &log, Some(&exit(0)), Some(&seconds), now)
            .limit
            .unwrap();
        assert_eq!(hit.reset, Some(now + Duration::from_secs(2)));
        assert_eq!(hit.said, "the result file's `retry_after`");
        let text = result(RetryAfter::Text("soon".to_owned()));
        let hit = read(&Spec::default(), &log, Some(&exit(1)), Some(&text), now)
            .limit
            .unwrap();
        assert_eq!(hit.reset, None, "an unreadable time: the backoff decides");
        let coded = Spec {
            limit_exit_codes: vec![42],
            ..Spec::default()
        };
        let hit = read(&coded, &log, Some(&exit(42)), None, now)
            .limit
            .unwrap();
        assert_eq!(hit.said, "exit code 42");
    }

    /// A session id goes into the next attempt's argv (`--resume
    /// {session_id}`): what the output says is taken only when it reads as
    /// an id, never as an option or a blob.
    #[test]
    fn a_session_that_is_no_plain_id_is_not_kept() {
        let now = SystemTime::now();
        let said = |id: &str| {
            let line = serde_json::json!({"type": "result", "session_id": id}).to_string();
            reading("claude", &format!("{line}\n"), 0, now).session
        };
        let uuid = "0b7e8a52-4f7c-4d1e-9a51-3c1d2b9e7f10";
        assert_eq!(said(uuid).as_deref(), Some(uuid));
        assert_eq!(said("--dangerously-skip-permissions"), None, "an option");
        assert_eq!(said("s 1"), None, "a space");
        assert_eq!(said("s\u{0}1"), None, "a NUL");
        assert_eq!(said(&"a".repeat(SESSION_CHARS + 1)), None, "too long");
    }

    #[test]
    fn json_objects_and_paths() {
        let text = "noise {\"not\":1}\n{\"a\":1}\n{\n  \"b\": {\"x\": [1, 2]}\n}\n{ broken\n";
        let objects = json_objects(text);
        assert_eq!(objects.len(), 2);
        assert_eq!(sum_at(&objects[1], "b.x.*"), Some(3.0));
        assert_eq!(sum_at(&objects[1], "b.y"), None);
        assert_eq!(sum_at(&objects[0], "a"), Some(1.0));
    }
}
