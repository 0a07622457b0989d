//! Review commands (`[[policy.review]]` with `run`): a step after the
//! checks whose verdict gates the merge.
//!
//! The command runs with `sh -c` in the task's worktree under a supervisor
//! (own session and process group, `timeout`, capped log at
//! `reviews/<id>/<name>.log`), with the review prompt (`templates/prompts/
//! review.md`, holding the task and the diff that merging its branch
//! makes on the target) on stdin and in `$ORCH_PROMPT_FILE`. Its verdict
//! is the JSON it writes to `$ORCH_REVIEW_FILE` (`{"verdict": "approve" |
//! "reject", "summary": "..."}`), else its exit code: 0 approves, anything
//! else rejects, with the end of its output as the reason.

use std::path::PathBuf;

use serde::Deserialize;

use crate::config::Review;
use crate::git::cmd;
use crate::runner::prompt::{self, ItemView, ReviewContext};
use crate::state::StateDir;

use super::checks::{self, CheckEnd, CheckRun};
use super::outcome::MergeError;

/// What running one review command needs.
#[derive(Debug, Clone)]
pub struct ReviewJob {
    pub repo: PathBuf,
    pub state_dir: PathBuf,
    /// The task's worktree, where the command runs.
    pub worktree: PathBuf,
    pub review: Review,
    pub task: ItemView,
    pub branch: String,
    pub target: String,
    /// The task's commit in the chain, and the commit before it: the diff
    /// the review sees.
    pub commit: String,
    pub prev: String,
    /// `task` is the task's id.
    pub check_run: CheckRun,
}

/// A review's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Approve,
    Reject {
        reason: String,
    },
    /// It was asked to stop (the run is stopping).
    Stopped,
}

/// What a review command may write to `$ORCH_REVIEW_FILE`.
#[derive(Debug, Deserialize)]
struct Report {
    verdict: String,
    #[serde(default)]
    summary: Option<String>,
}

/// Runs the review command and returns its verdict. Blocking.
pub fn review(job: &ReviewJob) -> Result<Verdict, MergeError> {
    let name = job.review.name.as_str();
    let run = job.review.run.as_deref().unwrap_or("false");
    let state_dir = StateDir::at(&job.state_dir);
    let folder = state_dir.review_dir(&job.check_run.task, name);
    let io = |source| MergeError::Review {
        review: name.to_owned(),
        source,
    };
    std::fs::create_dir_all(&folder).map_err(io)?;
    let verdict_file = folder.join("verdict.json");
    crate::fsio::remove_if_present(&verdict_file).map_err(io)?;
    let diff = cmd::stdout(&job.repo, ["diff", "--no-color", &job.prev, &job.commit])?;
    let truncated = diff.len() > prompt::REVIEW_DIFF_BYTES;
    let diff = if truncated {
        let mut end = prompt::REVIEW_DIFF_BYTES;
        while !diff.is_char_boundary(end) {
            end -= 1;
        }
        diff[..end].to_owned()
    } else {
        diff
    };
    let context = ReviewContext {
        task: job.task.clone(),
        target: job.target.clone(),
        branch: job.branch.clone(),
        diff,
        truncated,
        diff_bytes: prompt::REVIEW_DIFF_BYTES,
        verdict_file: verdict_file.display().to_string(),
    };
    let text = prompt::render_review(&state_dir.templates(), &context)?;
    let prompt_file = folder.join("prompt.md");
    crate::fsio::write_atomically(&prompt_file, text.as_bytes()).map_err(io)?;
    let log = state_dir.review_log(&job.check_run.task, name);
    let command = checks::Command {
        run,
        timeout: job.review.timeout.0,
        folder: folder.clone(),
        log: log.clone(),
        env: vec![
            ("ORCH_TASK_ID".to_owned(), job.check_run.task.clone()),
            ("ORCH_REVIEW".to_owned(), name.to_owned()),
            (
                "ORCH_PROMPT_FILE".to_owned(),
                prompt_file.display().to_string(),
            ),
            (
                "ORCH_REVIEW_FILE".to_owned(),
                verdict_file.display().to_string(),
            ),
            ("ORCH_MERGE_COMMIT".to_owned(), job.commit.clone()),
            ("ORCH_TARGET".to_owned(), job.target.clone()),
        ],
        stdin: Some(prompt_file),
        commit: None,
    };
    let end = checks::run_command(&job.check_run, &command, &job.worktree).map_err(io)?;
    let report: Option<Report> = crate::fsio::read_json(&verdict_file).ok().flatten();
    Ok(verdict(end, report, || prompt::log_tail(&log, 30)))
}

/// Decides the verdict from the report, else from how the command ended.
fn verdict(
    end: CheckEnd,
    report: Option<Report>,
    tail: impl FnOnce() -> Option<String>,
) -> Verdict {
    if end == CheckEnd::Stopped {
        return Verdict::Stopped;
    }
    if let Some(report) = report {
        let approve = report.verdict.eq_ignore_ascii_case("approve");
        return if approve {
            Verdict::Approve
        } else {
            Verdict::Reject {
                reason: report
                    .summary
                    .filter(|s| !s.trim().is_empty())
                    .unwrap_or_else(|| format!("verdict `{}`", report.verdict)),
            }
        };
    }
    match end {
        CheckEnd::Passed => Verdict::Approve,
        CheckEnd::Failed(failure) => Verdict::Reject {
            reason: match tail() {
                Some(tail) => tail,
                None => format!("the review command failed: {failure}"),
            },
        },
        CheckEnd::Stopped => Verdict::Stopped,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merge_queue::checks::CheckFailure;

    #[test]
    fn the_report_decides_else_the_exit_code() {
        let report = |verdict: &str, summary: Option<&str>| {
            Some(Report {
                verdict: verdict.to_owned(),
                summary: summary.map(str::to_owned),
            })
        };
        let red = || CheckEnd::Failed(CheckFailure::Exited { code: 1 });
        let none = || None;
        let table = [
            (CheckEnd::Passed, report("approve", None), Verdict::Approve),
            (red(), report("Approve", None), Verdict::Approve),
            (
                CheckEnd::Passed,
                report("reject", Some("add a test")),
                Verdict::Reject {
                    reason: "add a test".to_owned(),
                },
            ),
            (
                CheckEnd::Passed,
                report("nope", None),
                Verdict::Reject {
                    reason: "verdict `nope`".to_owned(),
                },
            ),
            (CheckEnd::Passed, None, Verdict::Approve),
            (
                red(),
                None,
                Verdict::Reject {
                    reason: "the review command failed: exit code 1".to_owned(),
                },
            ),
            (CheckEnd::Stopped, report("approve", None), Verdict::Stopped),
        ];
        for (end, report, expected) in table {
            assert_eq!(verdict(end.clone(), report, none), expected, "{end:?}");
        }
        assert_eq!(
            verdict(red(), None, || Some("too many TODOs".to_owned())),
            Verdict::Reject {
                reason: "too many TODOs".to_owned()
            }
        );
    }
}
