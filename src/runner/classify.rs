//! What an attempt's end means: success, a failure worth retrying, or not.
//!
//! Rules (docs/config.md, `[retry]`):
//! - exit 0 is success, unless the result file says `failed` or `blocked`;
//! - an exit code in `permanent_exit_codes` is never retried;
//! - a code in `transient_exit_codes`, a timeout, a death by signal, and any
//!   other non-zero code are retried while attempts remain, except that a
//!   result file with `"retry": false` stops retries for a plain failure;
//! - an agent that cannot be started (missing, not executable) is not retried;
//! - for an attempt run as a cluster job, the cluster's account comes first:
//!   a job killed at its time limit timed out; a node failure or a
//!   preemption is transient; an out-of-memory kill says so in the reason
//!   (and is retried like any kill); a job that could not be submitted, or
//!   whose node could not confine the agent, is not retried.

use std::path::Path;
use std::time::Duration;

use crate::config::RetryConfig;
use crate::runner::slurm::{self, JobEnd};
use crate::runner::spec::{AgentResult, End, ExitRecord, JobRecord, ResultStatus};
use crate::runner::terminate::signal_name;

/// The coordinator's reading of an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Success,
    Failure {
        reason: String,
        retry: bool,
    },
    /// Stopped on request: the coordinator decides (cancel or interrupt).
    Stopped,
}

/// Classifies one attempt's end.
pub fn classify(
    exit: &ExitRecord,
    result: Option<&AgentResult>,
    job: Option<&JobRecord>,
    retry: &RetryConfig,
    timeout: Duration,
) -> Verdict {
    if let Some(verdict) = job.and_then(|j| job_verdict(exit, j, timeout)) {
        return verdict;
    }
    let summary = result
        .and_then(|r| r.summary.as_deref())
        .map(|s| format!(": {}", first_line(s)))
        .unwrap_or_default();
    let wants_retry = result.and_then(|r| r.retry);
    match &exit.end {
        End::Exited { code: 0 } => match result.and_then(|r| r.status) {
            Some(ResultStatus::Failed) => Verdict::Failure {
                reason: format!("the agent reported failure{summary}"),
                retry: wants_retry.unwrap_or(true),
            },
            Some(ResultStatus::Blocked) => Verdict::Failure {
                reason: format!("the agent reported it is blocked{summary}"),
                retry: wants_retry.unwrap_or(false),
            },
            Some(ResultStatus::Done) | None => Verdict::Success,
        },
        End::Exited { code } if retry.permanent_exit_codes.contains(code) => Verdict::Failure {
            reason: format!("exit code {code}, which `retry.permanent_exit_codes` lists{summary}"),
            retry: false,
        },
        End::Exited { code } if retry.transient_exit_codes.contains(code) => Verdict::Failure {
            reason: format!("exit code {code} (transient){summary}"),
            retry: true,
        },
        End::Exited { code } => Verdict::Failure {
            reason: format!("exit code {code}{summary}"),
            retry: wants_retry.unwrap_or(true),
        },
        End::Signaled { signal } => Verdict::Failure {
            reason: format!("killed by {}", signal_name(*signal)),
            retry: true,
        },
        End::TimedOut => Verdict::Failure {
            reason: format!("timed out after {}", humantime::format_duration(timeout)),
            retry: true,
        },
        End::SpawnFailed { error, transient } => Verdict::Failure {
            reason: format!("cannot start the agent: {error}"),
            retry: *transient,
        },
        End::Stopped => Verdict::Stopped,
    }
}

/// Reads the cluster's account of a job, when it says more than the exit.
fn job_verdict(exit: &ExitRecord, job: &JobRecord, timeout: Duration) -> Option<Verdict> {
    if exit.end == End::Stopped {
        return None;
    }
    let id = job.id.as_deref().unwrap_or("?");
    let on = job
        .node
        .as_deref()
        .map(|n| format!(" on `{n}`"))
        .unwrap_or_default();
    if let Some(error) = &job.error {
        return Some(Verdict::Failure {
            reason: format!("cannot run the job: {error}"),
            retry: false,
        });
    }
    let state = job.state.as_deref().unwrap_or("?");
    Some(match slurm::job_end(job)? {
        JobEnd::Finished | JobEnd::Cancelled => return None,
        JobEnd::TimeLimit => Verdict::Failure {
            reason: format!(
                "timed out after {} (Slurm job {id}{on} reached its time limit)",
                humantime::format_duration(timeout)
            ),
            retry: true,
        },
        JobEnd::Lost => Verdict::Failure {
            reason: format!("Slurm job {id}{on} ended {state}, not by the agent (transient)"),
            retry: true,
        },
        JobEnd::OutOfMemory => Verdict::Failure {
            reason: format!(
                "out of memory: Slurm job {id}{on} was killed for exceeding its memory"
            ),
            retry: true,
        },
    })
}

/// Says why the agent `program` could not be started in `cwd`. A relative
/// path with a `/` is resolved in the task's worktree, made from the
/// target: when it is not there, the message names the worktree (the usual
/// cause is a script not committed to the target).
pub fn spawn_error(program: &str, cwd: &Path, error: &std::io::Error) -> String {
    let relative = program.contains('/') && Path::new(program).is_relative();
    if relative
        && error.kind() == std::io::ErrorKind::NotFound
        && cwd.join(program).symlink_metadata().is_err()
    {
        return format!(
            "`{program}` not found in the task's worktree `{}`; commit it, or use an absolute path",
            cwd.display()
        );
    }
    format!("`{program}`: {error}")
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("").trim()
}

/// Returns the wait before attempt `next` (2 or more): `initial * factor^(next-2)`,
/// at most `max`, scaled by `0.5 + 0.5 * random` when jitter is on.
pub fn backoff(cfg: &crate::config::Backoff, next: u32, random: f64) -> Duration {
    let exponent = next.saturating_sub(2).min(64) as i32;
    let raw = cfg.initial.0.as_secs_f64() * cfg.factor.powi(exponent);
    let capped = raw.min(cfg.max.0.as_secs_f64());
    let scaled = if cfg.jitter {
        capped * (0.5 + 0.5 * random.clamp(0.0, 1.0))
    } else {
        capped
    };
    Duration::from_secs_f64(scaled.max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Backoff, Dur};
    use crate::state::Timestamp;

    fn exit(end: End) -> ExitRecord {
        ExitRecord {
            end,
            started: Timestamp::now(),
            finished: Timestamp::now(),
            output_bytes: 0,
            log_truncated: false,
        }
    }

    fn result(status: Option<ResultStatus>, retry: Option<bool>) -> AgentResult {
        AgentResult {
            status,
            summary: Some("details\nmore".to_owned()),
            retry,
            retry_after: None,
        }
    }

    #[test]
    fn exit_classification_table() {
        let cfg = RetryConfig::default();
        let t = Duration::from_secs(60);
        let fail = |reason: &str, retry| Verdict::Failure {
            reason: reason.to_owned(),
            retry,
        };
        let cases = [
            (exit(End::Exited { code: 0 }), None, Verdict::Success),
            (
                exit(End::Exited { code: 0 }),
                Some(result(Some(ResultStatus::Done), None)),
                Verdict::Success,
            ),
            (
                exit(End::Exited { code: 0 }),
                Some(result(Some(ResultStatus::Failed), None)),
                fail("the agent reported failure: details", true),
            ),
            (
                exit(End::Exited { code: 0 }),
                Some(result(Some(ResultStatus::Blocked), None)),
                fail("the agent reported it is blocked: details", false),
            ),
            (
                exit(End::Exited { code: 2 }),
                None,
                fail(
                    "exit code 2, which `retry.permanent_exit_codes` lists",
                    false,
                ),
            ),
            (
                exit(End::Exited { code: 75 }),
                Some(result(None, Some(false))),
                fail("exit code 75 (transient): details", true),
            ),
            (
                exit(End::Exited { code: 1 }),
                None,
                fail("exit code 1", true),
            ),
            (
                exit(End::Exited { code: 1 }),
                Some(result(None, Some(false))),
                fail("exit code 1: details", false),
            ),
            (
                exit(End::Signaled { signal: 9 }),
                None,
                fail("killed by signal 9 (SIGKILL)", true),
            ),
            (exit(End::TimedOut), None, fail("timed out after 1m", true)),
            (
                exit(End::SpawnFailed {
                    error: "No such file or directory".to_owned(),
                    transient: false,
                }),
                None,
                fail("cannot start the agent: No such file or directory", false),
            ),
            (
                exit(End::SpawnFailed {
                    error: "Text file busy".to_owned(),
                    transient: true,
                }),
                None,
                fail("cannot start the agent: Text file busy", true),
            ),
            (exit(End::Stopped), None, Verdict::Stopped),
        ];
        for (e, r, want) in cases {
            assert_eq!(classify(&e, r.as_ref(), None, &cfg, t), want, "{e:?} {r:?}");
        }
    }

    #[test]
    fn the_clusters_account_comes_first() {
        let cfg = RetryConfig::default();
        let t = Duration::from_secs(60);
        let job = |state: &str, reason: Option<&str>| JobRecord {
            executor: "slurm".to_owned(),
            id: Some("12".to_owned()),
            node: Some("n1".to_owned()),
            state: Some(state.to_owned()),
            reason: reason.map(str::to_owned),
            ..JobRecord::default()
        };
        let fail = |reason: &str, retry| Verdict::Failure {
            reason: reason.to_owned(),
            retry,
        };
        let killed = exit(End::Exited { code: 143 });
        let cases = [
            (
                job("TIMEOUT", None),
                fail(
                    "timed out after 1m (Slurm job 12 on `n1` reached its time limit)",
                    true,
                ),
            ),
            (
                job("COMPLETING", Some("TimeLimit")),
                fail(
                    "timed out after 1m (Slurm job 12 on `n1` reached its time limit)",
                    true,
                ),
            ),
            (
                job("NODE_FAIL", None),
                fail(
                    "Slurm job 12 on `n1` ended NODE_FAIL, not by the agent (transient)",
                    true,
                ),
            ),
            (
                job("PREEMPTED", None),
                fail(
                    "Slurm job 12 on `n1` ended PREEMPTED, not by the agent (transient)",
                    true,
                ),
            ),
            (
                job("OUT_OF_MEMORY", None),
                fail(
                    "out of memory: Slurm job 12 on `n1` was killed for exceeding its memory",
                    true,
                ),
            ),
            (
                job("FAILED", Some("NonZeroExitCode")),
                fail("exit code 143", true),
            ),
            (
                JobRecord {
                    error: Some("cannot push".to_owned()),
                    ..JobRecord::default()
                },
                fail("cannot run the job: cannot push", false),
            ),
        ];
        for (j, want) in cases {
            assert_eq!(classify(&killed, None, Some(&j), &cfg, t), want, "{j:?}");
        }
        let stopped = exit(End::Stopped);
        assert_eq!(
            classify(&stopped, None, Some(&job("CANCELLED", None)), &cfg, t),
            Verdict::Stopped
        );
    }

    #[test]
    fn issue_18_a_relative_agent_missing_from_the_worktree_is_named_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let wt = dir.path();
        std::fs::write(wt.join("present.sh"), "#!/no/such/interpreter\n").unwrap();
        let enoent = || std::io::Error::from_raw_os_error(2);
        let shown = |program: &str| {
            spawn_error(program, wt, &enoent()).replace(&wt.display().to_string(), "$WT")
        };
        insta::assert_snapshot!(shown("./agent.sh"), @"`./agent.sh` not found in the task's worktree `$WT`; commit it, or use an absolute path");
        insta::assert_snapshot!(shown("scripts/agent.sh"), @"`scripts/agent.sh` not found in the task's worktree `$WT`; commit it, or use an absolute path");
        insta::assert_snapshot!(shown("./present.sh"), @"`./present.sh`: No such file or directory (os error 2)");
        insta::assert_snapshot!(shown("/abs/agent"), @"`/abs/agent`: No such file or directory (os error 2)");
        insta::assert_snapshot!(shown("claude"), @"`claude`: No such file or directory (os error 2)");
    }

    #[test]
    fn backoff_grows_and_caps() {
        let cfg = Backoff {
            initial: Dur(Duration::from_secs(30)),
            factor: 2.0,
            max: Dur(Duration::from_secs(100)),
            jitter: false,
        };
        assert_eq!(backoff(&cfg, 2, 0.3), Duration::from_secs(30));
        assert_eq!(backoff(&cfg, 3, 0.3), Duration::from_secs(60));
        assert_eq!(backoff(&cfg, 4, 0.3), Duration::from_secs(100));
        let jittered = Backoff {
            jitter: true,
            ..cfg
        };
        assert_eq!(backoff(&jittered, 2, 0.0), Duration::from_secs(15));
        assert_eq!(backoff(&jittered, 2, 1.0), Duration::from_secs(30));
    }
}
