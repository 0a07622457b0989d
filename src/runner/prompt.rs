//! Prompts: minijinja templates from `templates/prompts/`, overridable by
//! files of the same name in `.orchestrator/templates/`.
//!
//! The context is [`PromptContext`]; unknown plan fields reach templates as
//! `task.extra`. A rendered prompt never has two blank lines in a row
//! ([`tidy`]), so sections a task leaves empty leave no gaps. Undefined variables are errors, so a broken override fails
//! the attempt with a message naming the template instead of sending the
//! agent a blank prompt.

use std::path::Path;

use serde::Serialize;
use serde_json::{Map, Value};

/// The prompt for one agent run per task.
pub const TASK: (&str, &str) = ("task.md", include_str!("../../templates/prompts/task.md"));
/// The prompt for one agent run per subtask.
pub const SUBTASK: (&str, &str) = (
    "subtask.md",
    include_str!("../../templates/prompts/subtask.md"),
);

/// The prompt for resolving merge conflicts with the target.
pub const CONFLICT: (&str, &str) = (
    "conflict.md",
    include_str!("../../templates/prompts/conflict.md"),
);
/// The prompt for fixing a check that failed on the merged result.
pub const CHECK_FAILURE: (&str, &str) = (
    "check_failure.md",
    include_str!("../../templates/prompts/check_failure.md"),
);

/// The prompt for addressing what a review rejected.
pub const REJECTED: (&str, &str) = (
    "rejected.md",
    include_str!("../../templates/prompts/rejected.md"),
);
/// The prompt a reviewer command gets (`[[policy.review]]`).
pub const REVIEW: (&str, &str) = (
    "review.md",
    include_str!("../../templates/prompts/review.md"),
);

/// The most bytes of the merged diff a review prompt holds.
pub const REVIEW_DIFF_BYTES: usize = 200 * 1024;

/// What a reviewer's prompt can use.
#[derive(Debug, Clone, Serialize)]
pub struct ReviewContext {
    pub task: ItemView,
    pub target: String,
    pub branch: String,
    /// What merging the task's branch changes, as `git diff` shows it.
    pub diff: String,
    /// The diff was cut at `diff_bytes`.
    pub truncated: bool,
    pub diff_bytes: usize,
    /// Where the reviewer may write its verdict.
    pub verdict_file: String,
}

/// Renders a reviewer's prompt, preferring an override in `override_dir`.
pub fn render_review(override_dir: &Path, context: &ReviewContext) -> Result<String, PromptError> {
    let (name, builtin) = REVIEW;
    let overridden = std::fs::read_to_string(override_dir.join(name)).ok();
    let source = overridden.as_deref().unwrap_or(builtin);
    crate::templates::render(name, source, context)
        .map(|text| tidy(&text))
        .map_err(|source| PromptError {
            name: name.to_owned(),
            source,
        })
}

/// The prompt for an attempt that continues the agent's earlier session:
/// only what changed since.
pub const RESUMED: (&str, &str) = (
    "resumed.md",
    include_str!("../../templates/prompts/resumed.md"),
);

/// An item as templates see it.
#[derive(Debug, Clone, Serialize)]
pub struct ItemView {
    pub id: String,
    pub kind: &'static str,
    pub title: String,
    pub description: Option<String>,
    pub priority: u8,
    pub acceptance: Vec<String>,
    pub context: Vec<String>,
    pub extra: Map<String, Value>,
}

/// A dependency and what its agent said about it.
#[derive(Debug, Clone, Serialize)]
pub struct DependencyView {
    pub id: String,
    pub title: String,
    pub status: String,
    pub summary: Option<String>,
}

/// How the previous attempt ended.
#[derive(Debug, Clone, Serialize)]
pub struct PreviousView {
    pub reason: String,
    pub log_tail: Option<String>,
}

/// What went wrong at the last merge, for the conflict and check prompts.
#[derive(Debug, Clone, Serialize)]
pub struct ProblemView {
    /// The files that conflict.
    pub files: Vec<String>,
    /// The failing check or policy rule.
    pub check: Option<String>,
    /// The review that rejected the work (`person` for a person).
    pub reviewer: Option<String>,
    pub reason: Option<String>,
    pub log_tail: Option<String>,
}

/// Everything a prompt template can use.
#[derive(Debug, Clone, Serialize)]
pub struct PromptContext {
    /// Set when the attempt fixes a conflict or a red check.
    pub problem: Option<ProblemView>,
    pub plan: PlanView,
    pub task: ItemView,
    pub subtask: Option<ItemView>,
    /// The phase and milestone the task is in, outermost first.
    pub parents: Vec<ItemView>,
    pub subtasks: Vec<ItemView>,
    /// Dependencies whose work is in the branch: merged or resolved tasks,
    /// and (for a subtask) the finished sibling steps it depends on.
    pub dependencies: Vec<DependencyView>,
    /// Optional dependencies that ended without being merged (failed,
    /// blocked or cancelled): their work is not in the branch.
    pub unmet_dependencies: Vec<DependencyView>,
    pub attempt: u32,
    pub previous: Option<PreviousView>,
    pub branch: String,
    pub target: String,
    /// Set when the branch kept the commits of earlier attempts while the
    /// target moved on: how many target commits it lacks.
    pub behind: Option<u32>,
    pub worktree: String,
    pub result_file: String,
    /// The agent runs in the sandbox (docs/run.md, "What an agent may write").
    pub confined: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlanView {
    pub title: Option<String>,
}

/// A template that could not be rendered.
#[derive(Debug, thiserror::Error)]
#[error("cannot render prompt template `{name}`")]
pub struct PromptError {
    pub name: String,
    #[source]
    pub source: minijinja::Error,
}

/// Renders a prompt, preferring an override in `override_dir`.
pub fn render(
    template: (&str, &str),
    override_dir: &Path,
    context: &PromptContext,
) -> Result<String, PromptError> {
    let (name, builtin) = template;
    let overridden = std::fs::read_to_string(override_dir.join(name)).ok();
    let source = overridden.as_deref().unwrap_or(builtin);
    crate::templates::render(name, source, context)
        .map(|text| tidy(&text))
        .map_err(|source| PromptError {
            name: match &overridden {
                Some(_) => override_dir.join(name).display().to_string(),
                None => name.to_owned(),
            },
            source,
        })
}

/// Collapses runs of blank lines into one, outside fenced blocks (a log
/// tail keeps its own), so that the sections a task leaves empty leave no
/// gaps, whatever the template.
pub fn tidy(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut fenced = false;
    let mut blank_before = true;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        }
        let blank = line.trim().is_empty();
        if blank && blank_before && !fenced {
            continue;
        }
        out.push_str(line);
        out.push('\n');
        blank_before = blank && !fenced;
    }
    while out.ends_with("\n\n") {
        out.pop();
    }
    out
}

/// Returns the last `lines` lines of a log file, if it has any.
pub fn log_tail(path: &Path, lines: usize) -> Option<String> {
    let bytes = std::fs::read(path).ok()?;
    let start = bytes.len().saturating_sub(16 * 1024);
    let text = String::from_utf8_lossy(&bytes[start..]);
    let all: Vec<&str> = text.lines().collect();
    let tail = all[all.len().saturating_sub(lines)..].join("\n");
    (!tail.trim().is_empty()).then_some(tail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_runs_collapse_outside_fences() {
        let text = "\n\nTitle\n\n\n\nBody\n\n```\nlog\n\n\nend\n```\n\n\nLast\n\n\n";
        assert_eq!(
            tidy(text),
            "Title\n\nBody\n\n```\nlog\n\n\nend\n```\n\nLast\n"
        );
    }
}
