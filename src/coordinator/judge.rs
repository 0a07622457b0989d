//! What an attempt's end means for its item: the finish cascade. Pure.
//!
//! Rules, in order (the first that applies decides; docs/run.md "Deciding an
//! attempt" has the agent-facing table):
//! 1. no `exit.json`: the supervisor died with the attempt; interrupted;
//! 2. the agent was stopped: interrupted while the run stops, else a failure
//!    from outside orch, retried;
//! 3. the worktree was switched off the task's branch, or the branch was
//!    deleted (whatever the exit, a limit's included): failed, not retried,
//!    saying which; orch committed nothing (a person must put the branch
//!    back before the task runs again);
//! 4. any failure on a rate or usage limit: limited (it does not count, and
//!    its agent pauses);
//! 5. a non-zero exit of an attempt asked to continue a session whose
//!    output names no session: the CLI refused to resume it; interrupted,
//!    and the next attempt starts a new session (a timeout or a signal is
//!    no refusal: such an attempt may just not have printed it yet);
//! 6. any failure ([`classify`]) in a worktree that is gone: retried, the
//!    branch keeps what was committed;
//! 7. any other failure: as classified, an unreadable result file noted;
//! 8. a clean exit whose `post_agent` hook failed: retried;
//! 9. conflicts left unresolved, then conflict markers committed: retried;
//! 10. the leftovers could not be committed: not retried (a person must look);
//! 11. no commits where the item expects changes: retried;
//! 12. otherwise: success.

use std::time::Duration;

use crate::config::RetryConfig;
use crate::coordinator::collect::{AttemptReport, OffBranch};
use crate::runner::classify::{self, Verdict};
use crate::runner::output::LimitHit;
use crate::runner::spec::End;

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
    /// The attempt was asked to continue an earlier session.
    pub resumed: bool,
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
    /// It failed on a rate or usage limit: it does not count, and its agent
    /// pauses.
    Limited(LimitHit),
    /// The CLI would not continue the session: it does not count, and the
    /// next attempt starts a new one.
    ResumeRefused,
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
    let verdict = classify::classify(
        exit,
        report.result.as_ref(),
        report.job.as_ref(),
        rules.retry,
        rules.timeout,
    );
    if let (Some(off), false) = (&report.off_branch, verdict == Verdict::Stopped) {
        return failed(off_branch_reason(off), false);
    }
    if let (Verdict::Failure { .. }, Some(hit)) = (&verdict, &report.limit) {
        return Judgement::Limited(hit.clone());
    }
    match verdict {
        Verdict::Stopped if rules.stopping => Judgement::Interrupted {
            reason: "stopped when the run was interrupted",
        },
        Verdict::Stopped => failed("stopped by a signal from outside orch".to_owned(), true),
        Verdict::Failure { .. }
            if rules.resumed
                && report.session.is_none()
                && matches!(exit.end, End::Exited { .. }) =>
        {
            Judgement::ResumeRefused
        }
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

/// Says how the worktree left its branch and what a person does about it.
fn off_branch_reason(off: &OffBranch) -> String {
    match off {
        OffBranch::Deleted { branch, worktree } => format!(
            "branch `{branch}` was deleted while the agent ran; orch committed nothing (what the agent left is still in `{}`); recreate the branch, then retry the task",
            worktree.display()
        ),
        OffBranch::Switched {
            branch,
            now,
            worktree,
        } => {
            let now = match now {
                Some(other) => format!("branch `{other}`"),
                None => "a detached HEAD".to_owned(),
            };
            format!(
                "the agent switched its worktree `{}` from `{branch}` to {now}; orch committed nothing there, and what it did is not on `{branch}`; switch the worktree back (`git switch {branch}`), then retry the task",
                worktree.display()
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::git::GitError;
    use crate::runner::spec::{AgentResult, ExitRecord, ResultStatus};
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
            resumed: false,
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
        let resumed = Rules { resumed: true, ..r };
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
                "the worktree switched to another branch",
                with(&|rep| {
                    rep.off_branch = Some(OffBranch::Switched {
                        branch: "orch/T1".to_owned(),
                        now: Some("elsewhere".to_owned()),
                        worktree: PathBuf::from("wt/T1"),
                    })
                }),
                r,
                fail(
                    "the agent switched its worktree `wt/T1` from `orch/T1` to branch `elsewhere`; orch committed nothing there, and what it did is not on `orch/T1`; switch the worktree back (`git switch orch/T1`), then retry the task",
                    false,
                ),
            ),
            (
                "the branch deleted under the agent, whatever its exit",
                with(&|rep| {
                    rep.exit = exit(End::Exited { code: 1 });
                    rep.off_branch = Some(OffBranch::Deleted {
                        branch: "orch/T1".to_owned(),
                        worktree: PathBuf::from("wt/T1"),
                    })
                }),
                r,
                fail(
                    "branch `orch/T1` was deleted while the agent ran; orch committed nothing (what the agent left is still in `wt/T1`); recreate the branch, then retry the task",
                    false,
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
                        retry_after: None,
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
                "a failure on a usage limit",
                with(&|rep| {
                    rep.exit = exit(End::Exited { code: 1 });
                    rep.limit = Some(LimitHit {
                        said: "usage limit reached".to_owned(),
                        reset: None,
                    });
                }),
                r,
                Judgement::Limited(LimitHit {
                    said: "usage limit reached".to_owned(),
                    reset: None,
                }),
            ),
            (
                "a limit hit after the agent left its branch: the branch decides",
                with(&|rep| {
                    rep.exit = exit(End::Exited { code: 1 });
                    rep.limit = Some(LimitHit {
                        said: "usage limit reached".to_owned(),
                        reset: None,
                    });
                    rep.off_branch = Some(OffBranch::Deleted {
                        branch: "orch/T1".to_owned(),
                        worktree: PathBuf::from("wt/T1"),
                    })
                }),
                r,
                fail(
                    "branch `orch/T1` was deleted while the agent ran; orch committed nothing (what the agent left is still in `wt/T1`); recreate the branch, then retry the task",
                    false,
                ),
            ),
            (
                "a limit named by an attempt that exited 0 is no limit",
                with(&|rep| {
                    rep.limit = Some(LimitHit {
                        said: "usage limit reached".to_owned(),
                        reset: None,
                    });
                }),
                r,
                Judgement::Succeeded,
            ),
            (
                "a resumed session whose output names none",
                with(&|rep| rep.exit = exit(End::Exited { code: 1 })),
                resumed,
                Judgement::ResumeRefused,
            ),
            (
                "a resumed session that failed in its session",
                with(&|rep| {
                    rep.exit = exit(End::Exited { code: 1 });
                    rep.session = Some("s-1".to_owned());
                }),
                resumed,
                fail("exit code 1", true),
            ),
            (
                "a resumed session that timed out before naming itself",
                with(&|rep| rep.exit = exit(End::TimedOut)),
                resumed,
                fail("timed out after 1m", true),
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
