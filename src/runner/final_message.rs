//! An agent's final message, read where its preset says it is
//! ([`FinalMessage`]): the last lines of its output, the file it wrote it
//! to, or a field of the JSON object its output ends with. It becomes the
//! summary shown to dependent tasks when the agent wrote no report.

use std::path::Path;

use crate::config::FinalMessage;

/// The longest summary kept, in characters; a longer one is cut with `…`.
pub const MAX_CHARS: usize = 2000;
/// How many of the last lines of output make the final message.
pub const OUTPUT_LINES: usize = 12;
/// How much of the end of the log is searched for a JSON object.
const JSON_WINDOW: usize = 1 << 20;

/// Reads the final message of an attempt whose output is in `log` and whose
/// `{last_message_file}` is `file`; `None` when there is none.
pub fn read(mode: &FinalMessage, log: &Path, file: &Path) -> Option<String> {
    let text = match mode {
        FinalMessage::Output => crate::runner::prompt::log_tail(log, OUTPUT_LINES)?,
        FinalMessage::File => std::fs::read_to_string(file).ok()?,
        FinalMessage::Json { field } => {
            let bytes = std::fs::read(log).ok()?;
            let start = bytes.len().saturating_sub(JSON_WINDOW);
            json_field(&String::from_utf8_lossy(&bytes[start..]), field)?
        }
    };
    shorten(text.trim())
}

/// Returns the string `field` of the last JSON object in `text` that has
/// one. An object starts at a line beginning with `{` and may span lines
/// (Gemini CLI prints it indented); lines after it (a warning on stderr)
/// are ignored.
pub fn json_field(text: &str, field: &str) -> Option<String> {
    let starts = text
        .match_indices('\n')
        .map(|(i, _)| i + 1)
        .chain(std::iter::once(0))
        .filter(|&i| text[i..].starts_with('{'));
    let mut starts: Vec<usize> = starts.collect();
    starts.sort_unstable();
    for &start in starts.iter().rev() {
        let mut values =
            serde_json::Deserializer::from_str(&text[start..]).into_iter::<serde_json::Value>();
        if let Some(Ok(value)) = values.next()
            && let Some(found) = value.get(field).and_then(|v| v.as_str())
        {
            return Some(found.to_owned());
        }
    }
    None
}

/// Returns `text` cut to [`MAX_CHARS`], or `None` when it is empty.
fn shorten(text: &str) -> Option<String> {
    if text.is_empty() {
        return None;
    }
    match text.char_indices().nth(MAX_CHARS) {
        Some((cut, _)) => Some(format!("{}…", &text[..cut])),
        None => Some(text.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_fields_are_found_in_what_ends_the_output() {
        let claude = "{\"type\":\"result\",\"result\":\"Done T1\",\"total_cost_usd\":0.1}\n";
        let gemini = "Warning: no colors\n{\n  \"session_id\": \"s\",\n  \"response\": \"Done T2\",\n  \"stats\": {}\n}\nLoaded cached credentials.\n";
        let table = [
            (claude, "result", Some("Done T1")),
            (gemini, "response", Some("Done T2")),
            (
                "{\"result\":\"first\"}\n{\"result\":\"second\"}\n",
                "result",
                Some("second"),
            ),
            ("{\"other\":1}\n", "result", None),
            ("{\"result\":42}\n", "result", None),
            ("no json at all\n", "result", None),
            ("{ broken\n", "result", None),
        ];
        for (text, field, want) in table {
            assert_eq!(json_field(text, field).as_deref(), want, "{text:?}");
        }
    }

    #[test]
    fn each_mode_reads_its_source() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("agent.log");
        let file = dir.path().join("last-message.md");
        let lines: Vec<String> = (1..=20).map(|n| format!("line {n}")).collect();
        std::fs::write(&log, lines.join("\n")).unwrap();
        let tail = read(&FinalMessage::Output, &log, &file).unwrap();
        assert!(
            tail.starts_with("line 9\n") && tail.ends_with("line 20"),
            "{tail}"
        );
        assert_eq!(read(&FinalMessage::File, &log, &file), None);
        std::fs::write(&file, "\n  Wrote the schema.  \n").unwrap();
        assert_eq!(
            read(&FinalMessage::File, &log, &file).as_deref(),
            Some("Wrote the schema.")
        );
        let json = FinalMessage::Json {
            field: "result".to_owned(),
        };
        assert_eq!(read(&json, &log, &file), None);
        std::fs::write(&file, "x".repeat(MAX_CHARS + 5)).unwrap();
        let long = read(&FinalMessage::File, &log, &file).unwrap();
        assert_eq!(long.chars().count(), MAX_CHARS + 1);
        assert!(long.ends_with('…'));
    }
}
