//! Small text helpers shared by messages and rendering.
//!
//! Plurals go through [`plural`] so that every count in every message reads
//! the same way (STYLE.md §5).

/// Renders an error and its causes on one line: `msg: cause: cause`.
///
/// For reasons and event fields; the CLI prints causes on lines of their
/// own.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Cuts `text` to at most `max` bytes (at a character boundary) and says
/// how much was cut: `… [cut: 1234 more bytes]`. Text that fits is returned as is.
pub fn cap(mut text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let cut = text.len() - end;
    text.truncate(end);
    text.push_str(&format!("… [cut: {cut} more bytes]"));
    text
}

/// Formats a count with the right noun: `1 task`, `3 tasks`.
pub fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Returns the candidate closest to `word`, if it is close enough to be a likely typo.
///
/// Close enough means equal after ignoring case, `_` and `-`, or within one
/// edit (two for words of seven letters or more).
pub fn near_miss<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let squashed = squash(word);
    let budget = if word.chars().count() >= 7 { 2 } else { 1 };
    let mut best: Option<(usize, &'a str)> = None;
    for candidate in candidates {
        let distance = if squash(candidate) == squashed {
            0
        } else {
            strsim::damerau_levenshtein(word, candidate)
        };
        if distance <= budget && best.is_none_or(|(d, _)| distance < d) {
            best = Some((distance, candidate));
        }
    }
    best.map(|(_, c)| c)
}

fn squash(word: &str) -> String {
    word.chars()
        .filter(|c| *c != '_' && *c != '-')
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// Formats a duration compactly: `850ms`, `12.3s`, `4m05s`.
pub fn duration(d: std::time::Duration) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_cuts_at_a_character_boundary_and_says_how_much() {
        assert_eq!(cap("short".to_owned(), 10), "short");
        assert_eq!(cap("abcdef".to_owned(), 4), "abcd… [cut: 2 more bytes]");
        assert_eq!(cap("ééé".to_owned(), 3), "é… [cut: 4 more bytes]");
    }

    #[test]
    fn plural_picks_the_noun() {
        assert_eq!(plural(0, "task", "tasks"), "0 tasks");
        assert_eq!(plural(1, "task", "tasks"), "1 task");
        assert_eq!(plural(2, "task", "tasks"), "2 tasks");
    }

    #[test]
    fn near_miss_catches_typos_not_neighbours() {
        let known = ["depends_on", "title", "task", "agent", "priority"];
        assert_eq!(near_miss("depnds_on", known), Some("depends_on"));
        assert_eq!(near_miss("dependsOn", known), Some("depends_on"));
        assert_eq!(near_miss("tilte", known), Some("title"));
        assert_eq!(near_miss("prioritty", known), Some("priority"));
        assert_eq!(near_miss("tags", known), None);
        assert_eq!(near_miss("story_points", known), None);
        assert_eq!(near_miss("context_scope", known), None);
    }
}
