//! What an attempt's end means for its item: the finish cascade. Pure.
//!
//! Rules, in order (the first that applies decides; docs/run.md "Deciding an
//! attempt" has the agent-facing table):
//! 1. no `exit.json`: the supervisor died with the attempt; interrupted;
//! 2. the agent was stopped: interrupted while the run stops, else a failure
//!    from outside orch, retried;
//! 3. any failure ([`classify`]) in a worktree that is gone: retried, the
//!    branch keeps what was committed;
//! 4. any other failure: as classified, an unreadable result file noted;
//! 5. a clean exit whose `post_agent` hook failed: retried;
//! 6. conflicts left unresolved, then conflict markers committed: retried;
//! 7. the leftovers could not be committed: not retried (a person must look);
//! 8. no commits where the item expects changes: retried;
//! 9. otherwise: success.

use std::time::Duration;

use crate::config::RetryConfig;
use crate::coordinator::collect::AttemptReport;
use crate::runner::classify::{self, Verdict};

/// Whether a failed attempt may be retried (while attempts remain).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retryable {
    Yes,
    No,
}

impl From<bool> for Retryable {
    fn from(retry: bool) -> Retryable {
        if retry { Retryable::Yes } else { Retryable::No }
    }
}

/// What decides besides the report.
#[derive(Debug, Clone, Copy)]
pub struct Rules<'a> {
    pub retry: &'a RetryConfig,
    /// The unit's time limit (named in timeout reasons).
    pub timeout: Duration,
    /// The run is stopping: a stopped agent was stopped by orch.
    pub stopping: bool,
    /// The item must commit something (`expect_changes`).
    pub expect_changes: bool,
}

/// The decision on one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judgement {
    /// Cut short by orch or a crash: the attempt does not count.
    Interrupted {
        reason: &'static str,
    },
    Failed {
        reason: String,
        retry: Retryable,
    },
    Succeeded,
}

/// Judges one collected attempt.
pub fn judge(report: &AttemptReport, rules: Rules<'_>) -> Judgement {
    let Some(exit) = report.exit.as_ref() else {
        return Judgement::Interrupted {
            reason: "the supervisor ended without writing exit.json",
        };
    };
    let failed = |reason: String, retry: bool| Judgement::Failed {
        reason,
        retry: Retryable::from(retry),
    };
    if let Some(e) = &report.fetch_error
        && exit.end != crate::runner::spec::End::Stopped
    {
        return failed(
            format!(
                "cannot bring the job's work back: {}",
                crate::text::error_chain(e)
            ),
            true,
        );
    }
    match classify::classify(
        exit,
        report.result.as_ref(),
        report.job.as_ref(),
        rules.retry,
        rules.timeout,
    ) {
        Verdict::Stopped if rules.stopping => Judgement::Interrupted {
            reason: "stopped when the run was interrupted",
        },
        Verdict::Stopped => failed("stopped by a signal from outside orch".to_owned(), true),
        Verdict::Failure { .. } if report.worktree_gone.is_some() => {
            let gone = report.worktree_gone.clone().unwrap_or_default();
            failed(
                format!(
                    "the worktree `{}` is gone; the branch keeps what the agent committed",
                    gone.display()
                ),
                true,
            )
        }
        Verdict::Failure { reason, retry } => match &report.result_error {
            Some(e) => failed(
                format!("{reason} (the result file is unreadable: {e})"),
                retry,
            ),
            None => failed(reason, retry),
        },
        Verdict::Success => {
            if let Some(e) = &report.hook_error {
                return failed(crate::text::error_chain(e), true);
            }
            if !report.unresolved.is_empty() {
                return failed(
                    format!(
                        "conflicts left unresolved in {}",
                        report.unresolved.join(", ")
                    ),
                    true,
                );
            }
            if !report.markers.is_empty() {
                return failed(
                    format!("conflict markers left in {}", report.markers.join(", ")),
                    true,
                );
            }
            if let Some(e) = &report.commit_error {
                return failed(
                    format!(
                        "cannot commit what the agent left: {}",
                        crate::text::error_chain(e)
                    ),
                    false,
                );
            }
            if rules.expect_changes && report.commits == Some(0) {
                return failed(
                    "the agent exited 0 but changed nothing (set `expect_changes = false` on the task if that is right)".to_owned(),
                    true,
                );
            }
            Judgement::Succeeded
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::git::GitError;
    use crate::runner::spec::{AgentResult, End, ExitRecord, ResultStatus};
    use crate::state::Timestamp;

    fn exit(end: End) -> Option<ExitRecord> {
        Some(ExitRecord {
            end,
            started: Timestamp::now(),
            finished: Timestamp::now(),
            output_bytes: 0,
            log_truncated: false,
        })
    }

    fn clean() -> AttemptReport {
        AttemptReport {
            exit: exit(End::Exited { code: 0 }),
            commits: Some(1),
            ..AttemptReport::default()
        }
    }

    fn rules(retry: &RetryConfig) -> Rules<'_> {
        Rules {
            retry,
            timeout: Duration::from_secs(60),
            stopping: false,
            expect_changes: true,
        }
    }

    fn fail(reason: &str, retry: bool) -> Judgement {
        Judgement::Failed {
            reason: reason.to_owned(),
            retry: Retryable::from(retry),
        }
    }

    #[test]
    fn the_finish_cascade() {
        let retry = RetryConfig::default();
        let r = rules(&retry);
        let stopping = Rules {
            stopping: true,
            ..r
        };
        let unexpected = Rules {
            expect_changes: false,
            ..r
        };
        let with = |f: &dyn Fn(&mut AttemptReport)| {
            let mut report = clean();
            f(&mut report);
            report
        };
        let table: Vec<(&str, AttemptReport, Rules<'_>, Judgement)> = vec![
            ("clean exit with commits", clean(), r, Judgement::Succeeded),
            (
                "no exit.json",
                with(&|rep| rep.exit = None),
                r,
                Judgement::Interrupted {
                    reason: "the supervisor ended without writing exit.json",
                },
            ),
            (
                "stopped while the run stops",
                with(&|rep| rep.exit = exit(End::Stopped)),
                stopping,
                Judgement::Interrupted {
                    reason: "stopped when the run was interrupted",
                },
            ),
            (
                "stopped from outside",
                with(&|rep| rep.exit = exit(End::Stopped)),
                r,
                fail("stopped by a signal from outside orch", true),
            ),
            (
                "a failure in a worktree that is gone",
                with(&|rep| {
                    rep.exit = exit(End::Exited { code: 2 });
                    rep.worktree_gone = Some(PathBuf::from("wt/T1"));
                }),
                r,
                fail(
                    "the worktree `wt/T1` is gone; the branch keeps what the agent committed",
                    true,
                ),
            ),
            (
                "exit 1",
                with(&|rep| rep.exit = exit(End::Exited { code: 1 })),
                r,
                fail("exit code 1", true),
            ),
            (
                "exit 1 with an unreadable result file",
                with(&|rep| {
                    rep.exit = exit(End::Exited { code: 1 });
                    rep.result_error = Some(std::io::Error::other("bad json"));
                }),
                r,
                fail(
                    "exit code 1 (the result file is unreadable: bad json)",
                    true,
                ),
            ),
            (
                "a result file that says failed",
                with(&|rep| {
                    rep.result = Some(AgentResult {
                        status: Some(ResultStatus::Failed),
                        summary: None,
                        retry: Some(false),
                    })
                }),
                r,
                fail("the agent reported failure", false),
            ),
            (
                "post_agent failed",
                with(&|rep| {
                    rep.hook_error = Some(crate::runner::hook::HookError::Failed {
                        stage: "post_agent",
                        command: "make lint".to_owned(),
                        exit: crate::runner::hook::HookExit::Code(2),
                        log: PathBuf::from("x"),
                    })
                }),
                r,
                fail(
                    "post_agent hook `make lint` failed (exit code 2); log: x",
                    true,
                ),
            ),
            (
                "conflicts left unresolved",
                with(&|rep| rep.unresolved = vec!["a.txt".to_owned(), "b.txt".to_owned()]),
                r,
                fail("conflicts left unresolved in a.txt, b.txt", true),
            ),
            (
                "conflict markers committed",
                with(&|rep| rep.markers = vec!["a.txt".to_owned()]),
                r,
                fail("conflict markers left in a.txt", true),
            ),
            (
                "leftovers that cannot be committed",
                with(&|rep| {
                    rep.commit_error = Some(GitError::NoSuchBranch {
                        branch: "orch/T1".to_owned(),
                    })
                }),
                r,
                fail(
                    "cannot commit what the agent left: branch `orch/T1` does not exist",
                    false,
                ),
            ),
            (
                "no commits where changes are expected",
                with(&|rep| rep.commits = Some(0)),
                r,
                fail(
                    "the agent exited 0 but changed nothing (set `expect_changes = false` on the task if that is right)",
                    true,
                ),
            ),
            (
                "no commits where none are expected",
                with(&|rep| rep.commits = Some(0)),
                unexpected,
                Judgement::Succeeded,
            ),
            (
                "commits unknown (no base)",
                with(&|rep| rep.commits = None),
                r,
                Judgement::Succeeded,
            ),
        ];
        for (name, report, rules, expected) in table {
            assert_eq!(judge(&report, rules), expected, "{name}");
        }
    }
}
