//! What a merge's outcome means for its task. Pure.
//!
//! | outcome | decision |
//! | --- | --- |
//! | conflicts | conflicted; handed back to its agent (`on_conflict = "agent"`, attempts left) or waits for a person |
//! | conflicts with tasks ahead of it only (not landed yet) | held by the coordinator until they land or leave the chain; then as above if it still conflicts |
//! | a review rejected it | handed back to its agent with the review's text (`on_check_failure = "agent"`, attempts left), or failed |
//! | a policy rule or a check refused it | red; handed back to its agent (`on_check_failure = "agent"`, attempts left) or failed |
//! | the branch moved since it was queued | queued again at the new tip |
//! | the target branch is gone | queued again, and the run halts |
//! | the target lost the head orch last landed (moved under orch) | queued again, and the run halts naming the lost commit and its backup ref |
//! | the target already holds the branch, put there outside orch | failed: not a merge that passed policy |
//! | the run stopped during the merge | queued again |
//! | any other error | failed |

use std::path::PathBuf;

use crate::config::OnFailure;
use crate::merge_queue::MergeOutcome;

/// What decides besides the outcome.
#[derive(Debug, Clone, Copy)]
pub struct Rules<'a> {
    pub target: &'a str,
    pub on_conflict: OnFailure,
    pub on_check_failure: OnFailure,
    /// The task has attempts left for an agent to fix it.
    pub attempts_left: bool,
}

/// Who acts next on a task the merge refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// The task's agent runs again to fix it.
    Agent,
    /// A person must act: a conflicted task waits, a red one fails.
    Person,
}

/// A task going back to the merge queue, and what else that means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requeue {
    pub reason: String,
    /// The branch's new tip, when it moved.
    pub tip: Option<String>,
    /// Say why in a `merge.waiting` event (a new reason).
    pub announce_wait: bool,
    /// Say why in a `merge.requeued` event, naming the backup ref kept.
    pub announce_requeue: Option<Option<String>>,
    /// Nothing more starts or merges, for this reason.
    pub halt: Option<Stop>,
}

/// Why the run must stop starting and merging.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// The target branch is gone.
    TargetGone,
    /// The target lost `lost`, the head orch last landed, kept at `backup`.
    TargetRewound {
        lost: String,
        head: String,
        backup: String,
    },
}

impl Requeue {
    fn because(reason: String) -> Requeue {
        Requeue {
            reason,
            tip: None,
            announce_wait: false,
            announce_requeue: None,
            halt: None,
        }
    }
}

/// The decision on one merge outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterMerge {
    Conflicted {
        reason: String,
        files: Vec<String>,
        onto: String,
        next: Next,
    },
    Red {
        check: String,
        reason: String,
        log: Option<PathBuf>,
        /// Checks that passed before the red one.
        passed: Vec<String>,
        next: Next,
    },
    Rejected {
        by: String,
        reason: String,
        next: Next,
    },
    Requeued(Requeue),
    Failed {
        reason: String,
    },
}

/// Decides what a merge outcome means for its task.
pub fn decide(outcome: &MergeOutcome, rules: Rules<'_>) -> AfterMerge {
    let next = |policy: OnFailure| {
        if policy == OnFailure::Agent && rules.attempts_left {
            Next::Agent
        } else {
            Next::Person
        }
    };
    match outcome {
        // The coordinator holds a task conflicting only with the tasks
        // ahead of it until they land or leave (`merging.rs`); decided
        // here, it is a conflict like any other.
        MergeOutcome::Conflicts { files, onto } | MergeOutcome::ConflictsAhead { files, onto } => {
            AfterMerge::Conflicted {
                reason: format!(
                    "merging with `{}` conflicts in {}",
                    rules.target,
                    list(files)
                ),
                files: files.clone(),
                onto: onto.clone(),
                next: next(rules.on_conflict),
            }
        }
        MergeOutcome::Rejected { by, reason } => AfterMerge::Rejected {
            by: by.clone(),
            reason: reason.clone(),
            next: next(rules.on_check_failure),
        },
        MergeOutcome::Refused { refusals } => AfterMerge::Red {
            check: format!(
                "policy.{}",
                refusals.first().map(|r| r.rule).unwrap_or("policy")
            ),
            reason: refusals
                .iter()
                .map(|r| r.to_string())
                .collect::<Vec<_>>()
                .join("; "),
            log: None,
            passed: Vec::new(),
            next: next(rules.on_check_failure),
        },
        MergeOutcome::CheckFailed {
            check,
            failure,
            log,
            passed,
        } => AfterMerge::Red {
            check: check.clone(),
            reason: format!("check `{check}` failed: {failure}"),
            log: Some(log.clone()),
            passed: passed.clone(),
            next: next(rules.on_check_failure),
        },
        MergeOutcome::BranchMoved { tip, backup } => AfterMerge::Requeued(Requeue {
            tip: Some(tip.clone()),
            announce_requeue: Some(backup.clone()),
            ..Requeue::because(match backup {
                Some(kept) => format!(
                    "the branch was moved by hand, dropping commits; the old tip is kept as `{kept}`; queued again"
                ),
                None => "the branch moved after it was queued; queued again".to_owned(),
            })
        }),
        MergeOutcome::TargetGone => AfterMerge::Requeued(Requeue {
            announce_wait: true,
            halt: Some(Stop::TargetGone),
            ..Requeue::because(format!("target branch `{}` is gone", rules.target))
        }),
        MergeOutcome::TargetRewound { lost, head, backup } => AfterMerge::Requeued(Requeue {
            announce_wait: true,
            halt: Some(Stop::TargetRewound {
                lost: lost.clone(),
                head: head.clone(),
                backup: backup.clone(),
            }),
            ..Requeue::because(rewound_reason(rules.target, lost, head, backup))
        }),
        MergeOutcome::PutThereOutsideOrch { branch, tip } => AfterMerge::Failed {
            reason: format!(
                "the commits of `{branch}` (up to {}) are already on `{}`, put there outside orch (the target was moved onto the branch?); orch does not count that as a merge: check `{}`, then `orch resolve` the task if it is right",
                short(tip),
                rules.target,
                rules.target
            ),
        },
        MergeOutcome::Interrupted => AfterMerge::Requeued(Requeue::because(
            "the run stopped during the merge".to_owned(),
        )),
        MergeOutcome::Failed { error } => AfterMerge::Failed {
            reason: format!("merge failed: {}", crate::text::error_chain(error)),
        },
    }
}

/// Says that the target lost the head orch last landed, and where it is kept.
pub fn rewound_reason(target: &str, lost: &str, head: &str, backup: &str) -> String {
    format!(
        "`{target}` was moved to {}, which does not contain {}, the commit orch last merged onto it; orch stopped merging; the lost commit is kept as `{backup}`",
        short(head),
        lost
    )
}

/// Says what a person does about a target that lost `lost`, kept as
/// `backup` (`orch run`'s hint and `orch doctor`'s fix).
pub fn rewound_fix(target: &str, lost: &str, backup: &str) -> String {
    format!(
        "put it back (`git merge {lost}` on `{target}`), or, if the new history is what you want, drop the backup (`git update-ref -d {backup}`); then `orch run` carries on"
    )
}

fn short(oid: &str) -> &str {
    oid.get(..crate::git::refs::SHORT_ID).unwrap_or(oid)
}

/// Names up to ten files, then how many more.
fn list(files: &[String]) -> String {
    let shown: Vec<String> = files.iter().take(10).map(|f| format!("`{f}`")).collect();
    let more = files.len().saturating_sub(10);
    if more > 0 {
        format!("{} and {more} more", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merge_queue::checks::CheckFailure;

    fn rules() -> Rules<'static> {
        Rules {
            target: "main",
            on_conflict: OnFailure::Agent,
            on_check_failure: OnFailure::Agent,
            attempts_left: true,
        }
    }

    #[test]
    fn conflicts_go_back_to_the_agent_while_it_may_fix_them() {
        let outcome = MergeOutcome::Conflicts {
            files: vec!["a.txt".to_owned()],
            onto: "abc".to_owned(),
        };
        let table = [
            (OnFailure::Agent, true, Next::Agent),
            (OnFailure::Agent, false, Next::Person),
            (OnFailure::Stop, true, Next::Person),
        ];
        for (policy, left, expected) in table {
            let r = Rules {
                on_conflict: policy,
                attempts_left: left,
                ..rules()
            };
            assert_eq!(
                decide(&outcome, r),
                AfterMerge::Conflicted {
                    reason: "merging with `main` conflicts in `a.txt`".to_owned(),
                    files: vec!["a.txt".to_owned()],
                    onto: "abc".to_owned(),
                    next: expected,
                }
            );
        }
        let many: Vec<String> = (0..12).map(|i| format!("f{i}")).collect();
        let AfterMerge::Conflicted { reason, .. } = decide(
            &MergeOutcome::Conflicts {
                files: many,
                onto: "abc".to_owned(),
            },
            rules(),
        ) else {
            panic!("expected a conflict");
        };
        assert!(reason.ends_with("`f9` and 2 more"), "{reason}");
    }

    #[test]
    fn a_rejection_goes_back_to_the_agent_with_the_text_or_fails() {
        let outcome = MergeOutcome::Rejected {
            by: "lead".to_owned(),
            reason: "add a test".to_owned(),
        };
        for (policy, left, expected) in [
            (OnFailure::Agent, true, Next::Agent),
            (OnFailure::Stop, true, Next::Person),
            (OnFailure::Agent, false, Next::Person),
        ] {
            let r = Rules {
                on_check_failure: policy,
                attempts_left: left,
                ..rules()
            };
            assert_eq!(
                decide(&outcome, r),
                AfterMerge::Rejected {
                    by: "lead".to_owned(),
                    reason: "add a test".to_owned(),
                    next: expected,
                }
            );
        }
    }

    #[test]
    fn a_red_check_is_fixed_by_the_agent_or_fails() {
        let outcome = MergeOutcome::CheckFailed {
            check: "test".to_owned(),
            failure: CheckFailure::Exited { code: 1 },
            log: PathBuf::from("checks/T1/test.log"),
            passed: vec!["lint".to_owned()],
        };
        for (policy, left, expected) in [
            (OnFailure::Agent, true, Next::Agent),
            (OnFailure::Stop, true, Next::Person),
            (OnFailure::Agent, false, Next::Person),
        ] {
            let r = Rules {
                on_check_failure: policy,
                attempts_left: left,
                ..rules()
            };
            assert_eq!(
                decide(&outcome, r),
                AfterMerge::Red {
                    check: "test".to_owned(),
                    reason: "check `test` failed: exit code 1".to_owned(),
                    log: Some(PathBuf::from("checks/T1/test.log")),
                    passed: vec!["lint".to_owned()],
                    next: expected,
                }
            );
        }
    }

    #[test]
    fn requeues_name_their_cause() {
        let moved = decide(
            &MergeOutcome::BranchMoved {
                tip: "def".to_owned(),
                backup: Some("refs/orch/backup/T1/1".to_owned()),
            },
            rules(),
        );
        assert_eq!(
            moved,
            AfterMerge::Requeued(Requeue {
                reason: "the branch was moved by hand, dropping commits; the old tip is kept as `refs/orch/backup/T1/1`; queued again".to_owned(),
                tip: Some("def".to_owned()),
                announce_wait: false,
                announce_requeue: Some(Some("refs/orch/backup/T1/1".to_owned())),
                halt: None,
            })
        );
        let gone = decide(&MergeOutcome::TargetGone, rules());
        assert!(matches!(
            gone,
            AfterMerge::Requeued(Requeue { halt: Some(Stop::TargetGone), announce_wait: true, ref reason, .. })
                if reason == "target branch `main` is gone"
        ));
        let stopped = decide(&MergeOutcome::Interrupted, rules());
        assert!(matches!(
            stopped,
            AfterMerge::Requeued(Requeue { halt: None, announce_wait: false, ref reason, .. })
                if reason == "the run stopped during the merge"
        ));
    }

    #[test]
    fn a_target_moved_under_orch_halts_and_a_tip_put_there_fails() {
        let rewound = decide(
            &MergeOutcome::TargetRewound {
                lost: "1111111111111111111111111111111111111111".to_owned(),
                head: "2222222222222222222222222222222222222222".to_owned(),
                backup: "refs/orch/backup/@target/main/1".to_owned(),
            },
            rules(),
        );
        let AfterMerge::Requeued(Requeue {
            halt: Some(Stop::TargetRewound { backup, .. }),
            reason,
            announce_wait: true,
            ..
        }) = rewound
        else {
            panic!("expected a halt: {rewound:?}");
        };
        assert_eq!(backup, "refs/orch/backup/@target/main/1");
        assert_eq!(
            reason,
            "`main` was moved to 222222222, which does not contain 1111111111111111111111111111111111111111, the commit orch last merged onto it; orch stopped merging; the lost commit is kept as `refs/orch/backup/@target/main/1`"
        );
        let outside = decide(
            &MergeOutcome::PutThereOutsideOrch {
                branch: "orch/T1".to_owned(),
                tip: "3333333333333333333333333333333333333333".to_owned(),
            },
            rules(),
        );
        assert!(
            matches!(&outside, AfterMerge::Failed { reason } if reason.contains("already on `main`, put there outside orch")),
            "{outside:?}"
        );
    }
}
