//! The core's side of the merge queue: tasks join the chain of candidates
//! (`train.rs`), which is built, checked (batches, speculation, bisection),
//! reviewed and landed through effects; each outcome is applied here, and
//! what a task's own trouble means is decided in `after_merge.rs`.
//!
//! ```text
//!  awaiting_merge ─ admit ─▶ merging (a link) ─ Build ─▶ built ─ Check ─▶ passed ─ Land ─▶ merged
//!                                 │                         │             │
//!                                 │ conflicts, policy,      │ failed:     │ review (command: held;
//!                                 │ branch moved            │ bisected    │ manual: awaiting_review)
//!                                 ▼                         ▼             ▼
//!                            after_merge::decide      the culprit ejected, the rest rebuilt
//! ```
//!
//! A task whose change a file in the target's checkout is in the way of
//! stays `merging` but leaves the chain (parked); it is asked about every
//! [`WAIT_PAUSE`] (`Effect::Probe`) and rejoins once nothing is in its way.
//! Its wait is said once per reason, and nothing is written meanwhile.
//! A task that merges cleanly onto the target but conflicts with the links
//! ahead of it is held out of the chain the same way, until none of those
//! is in it any more (landed or left); then it rejoins, and a conflict
//! with the target itself is handed back with real markers.

use std::collections::BTreeMap;

use super::after_merge::{self, AfterMerge, Next, Requeue, Stop};
use super::control::{self, PERSON};
use super::core::{
    CheckRequest, Effect, Halt, LandRequest, Now, Parked, PostMergeRequest, ProbeRequest,
    RadarRequest, ReviewRequest, RunState, WAIT_PAUSE,
};
use super::train::{Link, Run, Verdict};
use crate::lifecycle::{Status, Transition};
use crate::merge_queue::build::{BuildReport, LinkResult, LinkSpec, LinkWhat, Onto};
use crate::merge_queue::candidate::Checked;
use crate::merge_queue::review::Verdict as ReviewVerdict;
use crate::merge_queue::{
    LandBranch, LandLink, Landing, LinkLanded, MergeError, MergeOutcome, PostMergeError,
    WorktreeAfter,
};
use crate::plan::FullId;
use crate::runner::hook::HookError;
use crate::state::events::{EventKind, Merged};
use crate::state::inbox::{self, Action};
use crate::state::model::{
    Approvals, Candidate, CandidateCheck, LostHead, MergeProblem, Purpose, Queued, Radar, Timestamp,
};

/// How often the radar reads the branches of active tasks.
pub const RADAR_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);

impl RunState {
    /// Moves the merge queue on: tasks join the chain, links are built,
    /// checks start, reviews start, the furthest clear point lands.
    pub(super) fn maybe_merge(&mut self, now: Now) {
        if self.stopping.is_some() || self.halt.is_some() {
            self.wind_down();
            return;
        }
        if !self.env.merges() {
            return;
        }
        self.settle_rejections(now);
        if self.merge.pause_until.is_some_and(|until| now.mono < until) {
            return;
        }
        self.merge.pause_until = None;
        self.settle_failures(now);
        self.start_reviews();
        self.release_held(now);
        self.admit(now);
        self.request_build();
        self.start_checks();
        self.maybe_land(now);
        self.probe_parked(now);
        self.sync_candidates();
    }

    /// Puts every task waiting in the queue, then every revert asked for,
    /// at the end of the chain.
    fn admit(&mut self, now: Now) {
        for task in crate::merge_queue::queue::order(&self.env.plan, &self.state) {
            if self.merge.train.find(&task).is_some() || self.merge.parked.contains_key(&task) {
                continue;
            }
            let entry = self.entry(&task);
            let tip = entry.queued.as_ref().and_then(|q| q.tip.clone());
            let branch = entry
                .branch
                .clone()
                .unwrap_or_else(|| self.env.branch(&task));
            self.transition(&task, Transition::MergeStart);
            self.emit(
                Some(&task),
                EventKind::MergeStarted {
                    branch,
                    tip,
                    strategy: self.env.config.git.merge_strategy,
                },
            );
            self.join(task, false, now);
        }
        let reverts: Vec<FullId> = self
            .state
            .items
            .iter()
            .filter(|(_, s)| {
                s.status == Status::Merged && s.revert.as_ref().is_some_and(|r| r.commit.is_none())
            })
            .map(|(id, _)| id.clone())
            .filter(|id| self.merge.train.find(id).is_none())
            .collect();
        for task in reverts {
            self.join(task, true, now);
        }
    }

    /// Puts back at the end of the chain the held tasks whose tasks ahead
    /// have all landed or left it: built on the target as it is then, they
    /// either merge cleanly or conflict with the target itself, and go back
    /// to their agents with the conflicts in their files.
    fn release_held(&mut self, now: Now) {
        let free: Vec<FullId> = self
            .merge
            .held
            .iter()
            .filter(|(_, ahead)| ahead.iter().all(|t| self.merge.train.find(t).is_none()))
            .map(|(task, _)| task.clone())
            .collect();
        for task in free {
            self.merge.held.remove(&task);
            if self.status(&task) == Status::Merging {
                self.join(task, false, now);
            }
        }
    }

    /// Takes out of the chain a task that conflicts only with the tasks
    /// ahead of it: handing it back now would tell its agent of conflicts
    /// its worktree cannot show (the target does not hold their work yet),
    /// and giving it their work would land it with the task even if they
    /// never do. It waits, saying why once, for them to land or leave.
    fn hold(&mut self, task: &FullId, ahead: Vec<FullId>, files: &[String]) {
        let names = ahead
            .iter()
            .map(|t| format!("`{t}`"))
            .collect::<Vec<_>>()
            .join(", ");
        let files = files
            .iter()
            .take(10)
            .map(|f| format!("`{f}`"))
            .collect::<Vec<_>>()
            .join(", ");
        let reason = format!(
            "it conflicts in {files} with work ahead of it in the queue, not landed yet ({names}): it waits for that work to land or leave the queue, then merges again"
        );
        self.merge.held.insert(task.clone(), ahead);
        self.say_waiting(task, &reason);
    }

    fn join(&mut self, task: FullId, revert: bool, now: Now) {
        self.merge.train.links.push(Link {
            task,
            revert,
            commit: None,
            tip: None,
            joined: now.mono,
        });
    }

    /// Asks for the links not built yet, onto the last built one.
    fn request_build(&mut self) {
        let train = &self.merge.train;
        if train.building.is_some() || train.landing.is_some() {
            return;
        }
        let from = train.built();
        if from == train.links.len() {
            return;
        }
        let onto = match from {
            0 => Onto::Target {
                landed: self.state.landed.clone(),
            },
            n => Onto::Commit(train.links[n - 1].commit.clone().unwrap_or_default()),
        };
        let links: Vec<LinkSpec> = train.links[from..]
            .iter()
            .map(|l| self.link_spec(l))
            .collect();
        let epoch = train.epoch;
        self.merge.train.building = Some(epoch);
        self.effect(Effect::Build { epoch, onto, links });
    }

    fn link_spec(&self, link: &Link) -> LinkSpec {
        let s = self.state.items.get(&link.task);
        let what = if link.revert {
            LinkWhat::Revert {
                before: s.and_then(|s| s.merged_onto.clone()).unwrap_or_default(),
                after: s.and_then(|s| s.merge_commit.clone()).unwrap_or_default(),
            }
        } else {
            LinkWhat::Merge {
                branch: s
                    .and_then(|s| s.branch.clone())
                    .unwrap_or_else(|| self.env.branch(&link.task)),
                queued_tip: s
                    .and_then(|s| s.queued.as_ref())
                    .and_then(|q| q.tip.clone()),
                base: s.and_then(|s| s.base.clone()),
                merged_before: s.and_then(|s| s.merge_commit.clone()),
                worktree: s.and_then(|s| s.worktree.clone()),
            }
        };
        LinkSpec {
            task: link.task.to_string(),
            title: self.title_of(&link.task),
            what,
        }
    }

    /// Starts checks on the points `train.rs` picks, in free slots. With
    /// no checks configured, every built link passes at once.
    fn start_checks(&mut self) {
        if self.env.config.policy.checks.is_empty() {
            let train = &mut self.merge.train;
            if train.first_failure().is_none()
                && let Some(last) = train.built().checked_sub(1)
                && let Some(commit) = train.links[last].commit.clone()
            {
                train.results.insert(commit, Verdict::Passed);
            }
            return;
        }
        let max = self.env.config.merge.max_parallel_checks;
        let taken = self.merge.train.slots_taken();
        let free: Vec<u32> = (0..max).filter(|s| !taken.contains(s)).collect();
        let batch = self.env.config.merge.batch as usize;
        let state = &self.state;
        let apart = |batch: &[Link], next: &Link| {
            let Some(radar) = state.items.get(&next.task).and_then(|s| s.radar.as_ref()) else {
                return false;
            };
            batch.iter().any(|l| radar.overlaps.contains_key(&l.task))
        };
        let points = self.merge.train.plan_checks(free.len(), batch, apart);
        for (point, slot) in points.into_iter().zip(free) {
            let train = &self.merge.train;
            let Some(commit) = train.links[point].commit.clone() else {
                continue;
            };
            let (onto, tasks) = train.segment(point);
            let last = train.links[point].task.clone();
            self.merge.train.checks.push(Run {
                slot,
                commit: commit.clone(),
                onto: onto.clone(),
                tasks: tasks.clone(),
                live: true,
            });
            self.emit(
                Some(&last),
                EventKind::CheckStarted {
                    candidate: commit.clone(),
                    onto,
                    tasks: tasks.clone(),
                    slot,
                },
            );
            self.effect(Effect::Check(Box::new(CheckRequest {
                slot,
                commit,
                tasks,
            })));
        }
    }

    /// Returns the names of the reviews a task still needs, in order.
    fn reviews_needed(&self, task: &FullId, tip: Option<&str>) -> Vec<(String, bool)> {
        let approved = self
            .state
            .items
            .get(task)
            .and_then(|s| s.review.as_ref())
            .filter(|a| Some(a.tip.as_str()) == tip);
        self.env
            .config
            .policy
            .review
            .iter()
            .filter(|r| {
                approved.is_none_or(|a| {
                    let name = if r.manual { PERSON } else { r.name.as_str() };
                    !a.by.iter().any(|b| b == name)
                })
            })
            .map(|r| (r.name.clone(), r.manual))
            .collect()
    }

    /// Returns whether a link may land as far as reviews go.
    fn clear(&self, link: &Link) -> bool {
        link.revert
            || self
                .reviews_needed(&link.task, link.tip.as_deref())
                .is_empty()
    }

    /// For the links of the first passed point, starts the review commands
    /// they need; a link waiting for a person leaves the chain for
    /// `awaiting_review`, so that the tasks behind it go on.
    fn start_reviews(&mut self) {
        if self.env.config.policy.review.is_empty() {
            return;
        }
        let train = &self.merge.train;
        let end = train.first_failure().unwrap_or(train.built());
        let Some(point) = (0..end).find(|i| {
            train.links[*i]
                .commit
                .as_ref()
                .is_some_and(|c| train.results.get(c) == Some(&Verdict::Passed))
        }) else {
            return;
        };
        let links: Vec<Link> = train.links[..=point].to_vec();
        let mut prev = train.base.clone().unwrap_or_default();
        for link in links {
            let commit = link.commit.clone().unwrap_or_default();
            let this_prev = std::mem::replace(&mut prev, commit.clone());
            if link.revert {
                continue;
            }
            let Some((review, manual)) = self
                .reviews_needed(&link.task, link.tip.as_deref())
                .into_iter()
                .next()
            else {
                continue;
            };
            if manual {
                self.await_person(&link.task, &review);
                return;
            }
            let key = (link.task.clone(), review.clone());
            if self.merge.train.reviews.contains(&key) {
                continue;
            }
            let s = self.state.items.get(&link.task);
            let view = self
                .env
                .plan
                .lookup(link.task.as_str())
                .map(|i| super::starting::item_view(self.env.plan.item(i)));
            let (Some(worktree), Some(branch), Some(view)) = (
                s.and_then(|s| s.worktree.clone()),
                s.and_then(|s| s.branch.clone()),
                view,
            ) else {
                // Nowhere to run it: never a review passed over in silence.
                self.eject(&link.task);
                self.fail_merge(
                    &link.task,
                    format!("cannot run review `{review}`: the task has no worktree or branch"),
                );
                return;
            };
            self.merge.train.reviews.insert(key);
            self.emit(
                Some(&link.task),
                EventKind::ReviewStarted {
                    review: review.clone(),
                },
            );
            self.effect(Effect::Review(Box::new(ReviewRequest {
                task: link.task.clone(),
                view,
                review,
                worktree,
                branch,
                commit,
                prev: this_prev,
            })));
        }
    }

    /// Takes a task whose checks passed out of the chain to wait for a person.
    fn await_person(&mut self, task: &FullId, review: &str) {
        let Some(i) = self.merge.train.find(task) else {
            return;
        };
        let (_, slots) = self.merge.train.remove(i);
        self.cancel_checks(slots);
        let entry = self.entry(task);
        // Its checks passed: what went wrong before is behind it, and a
        // problem recorded from now on is a person's rejection.
        entry.merge_problem = None;
        entry.reason = Some(format!(
            "waiting for review `{review}`: `orch approve {task}` or `orch reject {task} --reason ...`"
        ));
        self.transition(task, Transition::AwaitReview);
        self.emit(
            Some(task),
            EventKind::ReviewWaiting {
                review: review.to_owned(),
            },
        );
    }

    /// Hands back (or fails) the tasks a person rejected while they waited
    /// for review, live or before this run.
    fn settle_rejections(&mut self, now: Now) {
        let rejected: Vec<FullId> = self
            .state
            .items
            .iter()
            .filter(|(_, s)| {
                s.status == Status::AwaitingReview
                    && matches!(s.merge_problem, Some(MergeProblem::Review { .. }))
            })
            .map(|(id, _)| id.clone())
            .collect();
        for task in rejected {
            let Some(MergeProblem::Review { by, reason }) = self
                .state
                .items
                .get(&task)
                .and_then(|s| s.merge_problem.clone())
            else {
                continue;
            };
            self.decide(&task, MergeOutcome::Rejected { by, reason }, now);
        }
    }

    /// Lands the furthest point whose links are all clear.
    fn maybe_land(&mut self, now: Now) {
        if !self.merge.post_merge.is_empty() {
            return;
        }
        let Some(point) = self.merge.train.landable(|l| self.clear(l)) else {
            return;
        };
        let train = &self.merge.train;
        let Some(candidate) = train.links[point].commit.clone() else {
            return;
        };
        let onto = train.base.clone().unwrap_or_default();
        let mut prev = onto.clone();
        let mut links = Vec::new();
        for link in &train.links[..=point] {
            let commit = link.commit.clone().unwrap_or_default();
            let s = self.state.items.get(&link.task);
            let branch = (!link.revert).then(|| LandBranch {
                name: s
                    .and_then(|s| s.branch.clone())
                    .unwrap_or_else(|| self.env.branch(&link.task)),
                tip: link.tip.clone().unwrap_or_default(),
                worktree: s.and_then(|s| s.worktree.clone()),
            });
            links.push(LandLink {
                task: link.task.to_string(),
                commit: commit.clone(),
                prev: std::mem::replace(&mut prev, commit),
                branch,
            });
        }
        self.merge.train.landing = Some((candidate.clone(), point + 1));
        self.merge.train.landing_since = Some(now.mono);
        self.effect(Effect::Land(Box::new(LandRequest {
            onto,
            candidate,
            links,
        })));
    }

    /// Asks about the parked tasks whose pause is over.
    fn probe_parked(&mut self, now: Now) {
        let due: Vec<FullId> = self
            .merge
            .parked
            .iter()
            .filter(|(_, p)| !p.probing && now.mono >= p.until)
            .map(|(id, _)| id.clone())
            .collect();
        for task in due {
            if let Some(p) = self.merge.parked.get_mut(&task) {
                p.probing = true;
            }
            let s = self.state.items.get(&task);
            let request = ProbeRequest {
                title: self.title_of(&task),
                branch: s
                    .and_then(|s| s.branch.clone())
                    .unwrap_or_else(|| self.env.branch(&task)),
                base: s.and_then(|s| s.base.clone()),
                task,
            };
            self.effect(Effect::Probe(Box::new(request)));
        }
    }

    /// Keeps `candidates` in the state in step with the chain (written
    /// only when it changed).
    fn sync_candidates(&mut self) {
        let train = &self.merge.train;
        let mut out: Vec<Candidate> = Vec::new();
        for (i, link) in train.links.iter().enumerate() {
            let Some(commit) = &link.commit else { break };
            let check = if train.landing.as_ref().is_some_and(|(c, _)| c == commit) {
                Some(CandidateCheck::Landing)
            } else if let Some(run) = train.checks.iter().find(|r| r.live && &r.commit == commit) {
                Some(CandidateCheck::Running { slot: run.slot })
            } else {
                match train.results.get(commit) {
                    Some(Verdict::Passed) => Some(CandidateCheck::Passed),
                    Some(Verdict::Failed { .. }) => Some(CandidateCheck::Failed),
                    None => None,
                }
            };
            if let Some(check) = check {
                let (onto, tasks) = train.segment(i);
                out.push(Candidate {
                    commit: commit.clone(),
                    onto,
                    tasks,
                    check,
                });
            }
        }
        if self.state.candidates != out {
            self.state.candidates = out;
            self.touch();
        }
    }

    /// Stops the chain when the run stops or halts: everything in flight
    /// is asked to stop, and once nothing is, the tasks go back to the queue.
    fn wind_down(&mut self) {
        if !self.merge.train.idle() {
            return;
        }
        let (links, _) = self.merge.train.clear();
        for link in links.into_iter().filter(|l| !l.revert) {
            if self.status(&link.task) == Status::Merging {
                self.transition(&link.task, Transition::Requeue);
            }
        }
        let mut parked: Vec<FullId> = std::mem::take(&mut self.merge.parked).into_keys().collect();
        parked.extend(std::mem::take(&mut self.merge.held).into_keys());
        for task in parked {
            if self.status(&task) == Status::Merging {
                self.transition(&task, Transition::Requeue);
            }
        }
        self.sync_candidates();
    }

    fn cancel_checks(&mut self, slots: Vec<u32>) {
        for slot in slots {
            self.effect(Effect::CancelCheck { slot });
        }
    }

    /// Applies a build's report.
    pub(super) fn on_built(&mut self, epoch: u64, report: BuildReport, now: Now) {
        if self.merge.train.building == Some(epoch) {
            self.merge.train.building = None;
        }
        if epoch != self.merge.train.epoch || self.stopping.is_some() || self.halt.is_some() {
            return;
        }
        let onto = match report.onto {
            Ok(onto) => onto,
            Err(outcome) => {
                // Said once, for the first task; a halt winds the rest down.
                if let Some(first) = self.merge.train.links.iter().find(|l| !l.revert) {
                    let first = first.task.clone();
                    self.eject(&first);
                    self.decide(&first, outcome, now);
                }
                return;
            }
        };
        if self.merge.train.built() == 0 {
            self.merge.target_seen = Some(onto.clone());
            self.merge.train.base = Some(onto);
        }
        let mut ended: Vec<(FullId, MergeOutcome)> = Vec::new();
        let mut held: Vec<(FullId, Vec<FullId>, Vec<String>)> = Vec::new();
        let mut landed: Vec<(FullId, String, WorktreeAfter, bool, Option<PostMergeError>)> =
            Vec::new();
        for (task, result) in report.links {
            let Ok(id) = FullId::parse(&task) else {
                continue;
            };
            let Some(i) = self.merge.train.find(&id) else {
                continue;
            };
            match result {
                LinkResult::Built { commit, tip } => {
                    let link = &mut self.merge.train.links[i];
                    link.commit = Some(commit);
                    link.tip = tip;
                }
                LinkResult::Landed {
                    commit,
                    worktree,
                    branch_deleted,
                    cleanup,
                } => {
                    self.merge.train.links.remove(i);
                    landed.push((id, commit, worktree, branch_deleted, cleanup));
                }
                LinkResult::NothingToRevert => {
                    self.merge.train.links.remove(i);
                    let target = self.env.target.clone();
                    self.refuse_revert(
                        &id,
                        format!("`{target}` holds nothing of its work any more"),
                    );
                }
                LinkResult::Ended(MergeOutcome::ConflictsAhead { files, .. })
                    if i > 0 && !self.merge.train.links[i].revert =>
                {
                    let ahead = self.merge.train.links[..i]
                        .iter()
                        .map(|l| l.task.clone())
                        .collect();
                    self.merge.train.links.remove(i);
                    held.push((id, ahead, files));
                }
                LinkResult::Ended(outcome) => {
                    self.merge.train.links.remove(i);
                    ended.push((id, outcome));
                }
            }
        }
        for (task, commit, worktree, branch_deleted, cleanup) in landed {
            self.already_landed(&task, commit, worktree, branch_deleted, cleanup);
        }
        for (task, outcome) in ended {
            self.decide(&task, outcome, now);
        }
        for (task, ahead, files) in held {
            self.hold(&task, ahead, &files);
        }
    }

    /// Records a task the target already held (nothing was checked or
    /// moved; its worktree and branch were freed).
    fn already_landed(
        &mut self,
        task: &FullId,
        commit: String,
        worktree: WorktreeAfter,
        branch_deleted: bool,
        cleanup: Option<PostMergeError>,
    ) {
        let how = Merged::Landed {
            onto: commit.clone(),
            strategy: self.env.config.git.merge_strategy,
            backup: None,
            branch_deleted,
            merge_ms: 0,
        };
        self.mark_merged(task, commit, how, worktree, cleanup);
        self.effect(Effect::Flush);
    }

    /// What every landing records: the task merged at `commit`, its branch
    /// and worktree as the landing left them, the `task.merged` event and a
    /// failed clean-up hook.
    fn mark_merged(
        &mut self,
        task: &FullId,
        commit: String,
        how: Merged,
        worktree: WorktreeAfter,
        cleanup: Option<PostMergeError>,
    ) {
        let branch_deleted = matches!(
            how,
            Merged::Landed {
                branch_deleted: true,
                ..
            }
        );
        let entry = self.entry(task);
        entry.merge_commit = Some(commit.clone());
        entry.merge_problem = None;
        entry.reason = None;
        entry.queued = None;
        entry.radar = None;
        if branch_deleted {
            entry.branch = None;
        }
        match &worktree {
            WorktreeAfter::Removed => entry.worktree = None,
            WorktreeAfter::Detached(_) => self.flight.free.push_back(task.clone()),
            WorktreeAfter::Untouched => {}
        }
        self.transition(task, Transition::Merge);
        self.emit(Some(task), EventKind::TaskMerged { commit, how });
        if let Some(failure) = cleanup {
            self.emit(
                Some(task),
                EventKind::HookFailed {
                    reason: crate::text::error_chain(&failure),
                },
            );
        }
    }

    /// Applies a candidate's check results.
    pub(super) fn on_checked(&mut self, slot: u32, commit: &str, checked: Checked) {
        let train = &mut self.merge.train;
        let Some(run) = train
            .checks
            .iter()
            .position(|r| r.slot == slot && r.commit == commit)
            .map(|i| train.checks.remove(i))
        else {
            return;
        };
        let last = run.tasks.last().cloned();
        if !run.live || self.merge.train.position(commit).is_none() {
            return;
        }
        let Some(last) = last else { return };
        match checked {
            Checked::Stopped => {}
            Checked::Passed { checks } => {
                for check in checks {
                    self.emit(
                        Some(&last),
                        EventKind::CheckPassed {
                            check,
                            candidate: Some(commit.to_owned()),
                            tasks: run.tasks.clone(),
                        },
                    );
                }
                self.merge
                    .train
                    .results
                    .insert(commit.to_owned(), Verdict::Passed);
            }
            Checked::Failed {
                check,
                failure,
                log,
                passed,
            } => {
                for name in &passed {
                    self.emit(
                        Some(&last),
                        EventKind::CheckPassed {
                            check: name.clone(),
                            candidate: Some(commit.to_owned()),
                            tasks: run.tasks.clone(),
                        },
                    );
                }
                let reason = format!("check `{check}` failed: {failure}");
                self.emit(
                    Some(&last),
                    EventKind::CheckFailed {
                        check: check.clone(),
                        reason: reason.clone(),
                        log: Some(self.env.state_dir.show(&log)),
                        candidate: Some(commit.to_owned()),
                        tasks: run.tasks.clone(),
                    },
                );
                self.merge.train.results.insert(
                    commit.to_owned(),
                    Verdict::Failed {
                        check,
                        reason,
                        log: Some(log),
                        passed,
                    },
                );
            }
            Checked::Error(error) => {
                // The checks could not run at all: every task the
                // candidate holds fails, as one task's merge did.
                let Some(point) = self.merge.train.position(commit) else {
                    return;
                };
                let tasks: Vec<FullId> = self.merge.train.links[..=point]
                    .iter()
                    .map(|l| l.task.clone())
                    .collect();
                let reason = format!("merge failed: {}", crate::text::error_chain(&error));
                for task in tasks.into_iter().rev() {
                    self.eject(&task);
                    self.fail_merge(&task, reason.clone());
                }
            }
        }
    }

    /// Stops the checks a failure makes pointless, and takes the culprit
    /// of a red batch out of the chain once bisection has found it, handing
    /// it back with its check's output. Waits while a landing holds the
    /// failed point (its own checks passed: if it lands, so do they).
    fn settle_failures(&mut self, now: Now) {
        let train = &self.merge.train;
        if let (Some(f), Some((_, n))) = (train.first_failure(), &train.landing)
            && f < *n
        {
            return;
        }
        let slots = self.merge.train.stop_beyond_failure();
        self.cancel_checks(slots);
        while let Some((i, verdict)) = self.merge.train.culprit() {
            let (link, slots) = self.merge.train.remove(i);
            self.cancel_checks(slots);
            let Verdict::Failed {
                check,
                reason,
                log,
                passed,
            } = verdict
            else {
                continue;
            };
            if link.revert {
                self.refuse_revert(&link.task, format!("the checks fail with it: {reason}"));
                continue;
            }
            let log = log.unwrap_or_default();
            self.decide(
                &link.task,
                MergeOutcome::CheckFailed {
                    check,
                    failure: crate::merge_queue::checks::CheckFailure::CannotStart {
                        error: reason,
                    },
                    log,
                    passed,
                },
                now,
            );
        }
    }

    /// Applies a review command's verdict.
    pub(super) fn on_reviewed(
        &mut self,
        task: FullId,
        review: String,
        verdict: Result<ReviewVerdict, MergeError>,
        now: Now,
    ) {
        self.merge
            .train
            .reviews
            .remove(&(task.clone(), review.clone()));
        if self.status(&task) != Status::Merging || self.merge.train.find(&task).is_none() {
            return;
        }
        match verdict {
            Ok(ReviewVerdict::Stopped) => {}
            Ok(ReviewVerdict::Approve) => {
                let tip = self
                    .merge
                    .train
                    .find(&task)
                    .and_then(|i| self.merge.train.links[i].tip.clone())
                    .unwrap_or_default();
                let entry = self.entry(&task);
                match entry.review.as_mut().filter(|a| a.tip == tip) {
                    Some(a) => a.by.push(review.clone()),
                    None => {
                        entry.review = Some(Approvals {
                            tip,
                            by: vec![review.clone()],
                        })
                    }
                }
                self.emit(Some(&task), EventKind::ReviewApproved { by: review });
            }
            Ok(ReviewVerdict::Reject { reason }) => {
                self.eject(&task);
                self.decide(&task, MergeOutcome::Rejected { by: review, reason }, now);
            }
            Err(error) => {
                self.eject(&task);
                self.decide(&task, MergeOutcome::Failed { error }, now);
            }
        }
    }

    /// Takes a task's link out of the chain (the links after it are built again).
    fn eject(&mut self, task: &FullId) {
        if let Some(i) = self.merge.train.find(task) {
            let (_, slots) = self.merge.train.remove(i);
            self.cancel_checks(slots);
        }
    }

    /// Applies a landing's outcome.
    pub(super) fn on_landed(&mut self, landing: Landing, now: Now) {
        let Some((_, n)) = self.merge.train.landing.take() else {
            return;
        };
        let cancels = std::mem::take(&mut self.merge.cancels);
        match landing {
            Landing::Landed {
                took,
                hooks_in,
                links,
            } => {
                // `merge_ms` runs from a task joining the queue to the
                // target moving (the cleanup after it is not counted).
                let moved = self
                    .merge
                    .train
                    .landing_since
                    .map_or(now.mono, |since| since + took);
                let candidate = links.last().map(|l| l.commit.clone()).unwrap_or_default();
                let (chain, slots) = self.merge.train.landed(n, &candidate);
                self.cancel_checks(slots);
                self.merge.pause_until = None;
                self.merge.last_wait = None;
                self.merge.target_seen = Some(candidate.clone());
                self.state.landed = Some(candidate);
                let mut hooks = Vec::new();
                for (landed, link) in links.into_iter().zip(chain) {
                    let took = moved.saturating_duration_since(link.joined);
                    if link.revert {
                        self.record_revert(&link.task, &landed);
                    } else {
                        hooks.push((link.task.clone(), landed.commit.clone()));
                        self.record_landed(&link.task, landed, took);
                    }
                }
                for (task, received) in cancels {
                    let reply = inbox::Reply::refused(format!(
                        "cannot cancel `{task}`: its merge landed before it could be stopped; it is `{}`",
                        self.status(&task)
                    ));
                    self.effect(Effect::Reply { received, reply });
                }
                self.effect(Effect::Flush);
                if !hooks.is_empty() && !self.env.config.hooks.post_merge.is_empty() {
                    self.merge.post_merge = hooks.iter().map(|(t, _)| t.clone()).collect();
                    self.effect(Effect::PostMerge(Box::new(PostMergeRequest {
                        landed: hooks,
                        dir: hooks_in,
                    })));
                }
            }
            Landing::TargetMoved { head } => {
                let from = self.merge.train.base.clone().unwrap_or_default();
                let tasks: Vec<FullId> = self
                    .merge
                    .train
                    .links
                    .iter()
                    .map(|l| l.task.clone())
                    .collect();
                let slots = self.merge.train.invalidate_from(0);
                self.cancel_checks(slots);
                self.merge.train.base = None;
                self.merge.target_seen = Some(head.clone());
                if let Some(last) = tasks.last().cloned() {
                    self.emit(
                        Some(&last),
                        EventKind::MergeRebuilt {
                            tasks,
                            from,
                            onto: head,
                        },
                    );
                }
                self.answer_cancels(cancels, now);
            }
            Landing::Blocked { why, tasks } => {
                let reason = crate::text::error_chain(&why);
                let tasks: Vec<FullId> = tasks
                    .iter()
                    .filter_map(|t| FullId::parse(t).ok())
                    .filter(|t| self.merge.train.find(t).is_some_and(|i| i < n))
                    .collect();
                if tasks.is_empty() {
                    // Not one task's doing (a move cut short): merging
                    // pauses, and the tasks being landed say why, once.
                    let held: Vec<FullId> = self.merge.train.links
                        [..n.min(self.merge.train.links.len())]
                        .iter()
                        .filter(|l| !l.revert)
                        .map(|l| l.task.clone())
                        .collect();
                    for task in held {
                        self.say_waiting(&task, &reason);
                    }
                    self.merge.last_wait = Some(reason);
                    self.merge.pause_until = Some(now.mono + WAIT_PAUSE);
                } else {
                    for task in tasks {
                        self.park(&task, &reason, now);
                    }
                }
                self.answer_cancels(cancels, now);
            }
            Landing::Ended(outcome) => {
                let tasks: Vec<FullId> = self.merge.train.links
                    [..n.min(self.merge.train.links.len())]
                    .iter()
                    .map(|l| l.task.clone())
                    .collect();
                match outcome {
                    MergeOutcome::Interrupted => {}
                    MergeOutcome::TargetGone | MergeOutcome::TargetRewound { .. } => {
                        if let Some(first) = tasks.first() {
                            let first = first.clone();
                            self.eject(&first);
                            self.decide(&first, outcome, now);
                        }
                    }
                    other => {
                        let reason = match &other {
                            MergeOutcome::Failed { error } => crate::text::error_chain(error),
                            _ => "the landing failed".to_owned(),
                        };
                        for task in tasks.into_iter().rev() {
                            self.eject(&task);
                            if self.status(&task) == Status::Merged {
                                self.refuse_revert(&task, reason.clone());
                            } else {
                                self.fail_merge(&task, format!("merge failed: {reason}"));
                            }
                        }
                    }
                }
                self.answer_cancels(cancels, now);
            }
        }
    }

    /// Takes a task whose change is blocked by the target's checkout out of
    /// the chain; it stays `merging` and says why once.
    fn park(&mut self, task: &FullId, reason: &str, now: Now) {
        self.eject(task);
        self.merge.parked.insert(
            task.clone(),
            Parked {
                until: now.mono + WAIT_PAUSE,
                probing: false,
            },
        );
        self.say_waiting(task, reason);
    }

    /// Records why a task waits to merge, with an event when the reason is new.
    fn say_waiting(&mut self, task: &FullId, reason: &str) {
        let text = format!("waiting to merge: {reason}");
        if self.state.items.get(task).and_then(|s| s.reason.as_deref()) == Some(text.as_str()) {
            return;
        }
        self.entry(task).reason = Some(text);
        self.emit(
            Some(task),
            EventKind::MergeWaiting {
                reason: reason.to_owned(),
            },
        );
    }

    /// Applies what a probe found of a parked task.
    pub(super) fn on_probed(&mut self, task: FullId, waiting: Option<String>, now: Now) {
        let Some(parked) = self.merge.parked.get_mut(&task) else {
            return;
        };
        parked.probing = false;
        match waiting {
            Some(reason) => {
                parked.until = now.mono + WAIT_PAUSE;
                self.say_waiting(&task, &reason);
            }
            None => {
                self.merge.parked.remove(&task);
                if self.status(&task) == Status::Merging {
                    self.join(task, false, now);
                }
            }
        }
    }

    /// Fails a task of the merge queue for `reason` (a merge that could not
    /// be carried out, not a red check: no agent is asked to fix it).
    fn fail_merge(&mut self, task: &FullId, reason: String) {
        if !matches!(self.status(task), Status::Merging | Status::AwaitingReview) {
            return;
        }
        self.entry(task).reason = Some(reason.clone());
        self.transition(task, Transition::CheckFailed);
        self.emit(
            Some(task),
            EventKind::TaskFailed {
                attempt: None,
                reason,
            },
        );
    }

    /// Records a task whose work landed.
    fn record_landed(&mut self, task: &FullId, landed: LinkLanded, took: std::time::Duration) {
        let LinkLanded {
            task: _,
            commit,
            prev,
            backup,
            branch_deleted,
            worktree,
            cleanup,
        } = landed;
        // `merge_ms` is whole milliseconds; a merge takes a few.
        tracing::debug!(task = %task, took_us = took.as_micros() as u64, "landed");
        let entry = self.entry(task);
        entry.merged_onto = Some(prev.clone());
        entry.revert = None;
        let how = Merged::Landed {
            onto: prev,
            strategy: self.env.config.git.merge_strategy,
            backup,
            branch_deleted,
            merge_ms: took.as_millis() as u64,
        };
        self.mark_merged(task, commit, how, worktree, cleanup);
    }

    /// Records a revert that landed.
    fn record_revert(&mut self, task: &FullId, landed: &LinkLanded) {
        let entry = self.entry(task);
        if let Some(revert) = entry.revert.as_mut() {
            revert.commit = Some(landed.commit.clone());
        }
        entry.reason = Some(format!("reverted by {}", landed.commit));
        self.transition(task, Transition::Revert);
        self.emit(
            Some(task),
            EventKind::TaskReverted {
                commit: landed.commit.clone(),
                onto: landed.prev.clone(),
            },
        );
    }

    /// Drops a revert that cannot land, saying why; the task stays merged.
    fn refuse_revert(&mut self, task: &FullId, reason: String) {
        self.entry(task).revert = None;
        self.emit(Some(task), EventKind::RevertRefused { reason });
    }

    /// Applies the decision on one task's merge outcome (`after_merge.rs`).
    pub(super) fn decide(&mut self, task: &FullId, outcome: MergeOutcome, now: Now) {
        if self.status(task) == Status::Merged {
            let reason = match &outcome {
                MergeOutcome::Conflicts { files, .. } => format!(
                    "reverting `{task}` conflicts with `{}` in {}",
                    self.env.target,
                    files
                        .iter()
                        .map(|f| format!("`{f}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                MergeOutcome::Failed { error } => crate::text::error_chain(error),
                _ => "the revert could not be built".to_owned(),
            };
            self.refuse_revert(task, reason);
            return;
        }
        if !matches!(self.status(task), Status::Merging | Status::AwaitingReview) {
            return;
        }
        let rules = after_merge::Rules {
            target: &self.env.target,
            on_conflict: self.env.config.merge.on_conflict,
            on_check_failure: self.env.config.merge.on_check_failure,
            attempts_left: self.attempts_left(task),
        };
        match after_merge::decide(&outcome, rules) {
            AfterMerge::Conflicted {
                reason,
                files,
                onto,
                next,
            } => {
                let entry = self.entry(task);
                entry.merge_problem = Some(MergeProblem::Conflicts {
                    files: files.clone(),
                });
                entry.reason = Some(reason.clone());
                self.transition(task, Transition::Conflict);
                self.emit(
                    Some(task),
                    EventKind::MergeConflicted {
                        files,
                        onto,
                        reason: reason.clone(),
                    },
                );
                match next {
                    Next::Agent => self.hand_back(task, Purpose::Conflict, now),
                    Next::Person => {
                        self.entry(task).reason = Some(format!(
                            "{reason}; waiting for a person: fix the branch and `orch retry {task}`, or `orch resolve {task}`"
                        ));
                    }
                }
            }
            AfterMerge::Red {
                check,
                reason,
                log,
                passed: _,
                next,
            } => {
                let shown = log.as_ref().map(|l| self.env.state_dir.show(l));
                let reason = match &outcome {
                    MergeOutcome::CheckFailed {
                        failure: crate::merge_queue::checks::CheckFailure::CannotStart { error },
                        ..
                    } => error.clone(),
                    _ => reason,
                };
                let full = match &shown {
                    Some(log) => format!("{reason}; log: {log}"),
                    None => reason.clone(),
                };
                if log.is_none() {
                    self.emit(
                        Some(task),
                        EventKind::CheckFailed {
                            check: check.clone(),
                            reason: reason.clone(),
                            log: None,
                            candidate: None,
                            tasks: Vec::new(),
                        },
                    );
                }
                let entry = self.entry(task);
                entry.merge_problem = Some(MergeProblem::Check {
                    name: check,
                    reason,
                    log,
                });
                entry.reason = Some(full.clone());
                match next {
                    Next::Agent => self.hand_back(task, Purpose::CheckFailure, now),
                    Next::Person => {
                        self.transition(task, Transition::CheckFailed);
                        self.emit(
                            Some(task),
                            EventKind::TaskFailed {
                                attempt: None,
                                reason: full,
                            },
                        );
                    }
                }
            }
            AfterMerge::Rejected { by, reason, next } => {
                if self.status(task) == Status::Merging {
                    self.emit(
                        Some(task),
                        EventKind::ReviewRejected {
                            by: by.clone(),
                            reason: reason.clone(),
                        },
                    );
                }
                let full = format!("review `{by}` rejected it: {reason}");
                let entry = self.entry(task);
                entry.merge_problem = Some(MergeProblem::Review { by, reason });
                entry.reason = Some(full.clone());
                entry.review = None;
                match next {
                    Next::Agent => self.hand_back(task, Purpose::Review, now),
                    Next::Person => {
                        self.transition(task, Transition::CheckFailed);
                        self.emit(
                            Some(task),
                            EventKind::TaskFailed {
                                attempt: None,
                                reason: full,
                            },
                        );
                    }
                }
            }
            AfterMerge::Requeued(Requeue {
                reason,
                tip,
                announce_wait,
                announce_requeue,
                halt,
            }) => {
                self.requeue(task, &reason, tip.clone(), now);
                if announce_wait {
                    self.emit(
                        Some(task),
                        EventKind::MergeWaiting {
                            reason: reason.clone(),
                        },
                    );
                }
                if let Some(backup) = announce_requeue {
                    self.emit(
                        Some(task),
                        EventKind::MergeRequeued {
                            reason: reason.clone(),
                            tip: tip.unwrap_or_default(),
                            backup,
                        },
                    );
                }
                match halt {
                    Some(Stop::TargetGone) => self.halt_target_gone(),
                    Some(Stop::TargetRewound { lost, backup, .. }) => {
                        self.halt_target_rewound(lost, backup)
                    }
                    None => {}
                }
            }
            AfterMerge::Failed { reason } => {
                self.entry(task).reason = Some(reason.clone());
                self.transition(task, Transition::CheckFailed);
                self.emit(
                    Some(task),
                    EventKind::TaskFailed {
                        attempt: None,
                        reason,
                    },
                );
            }
        }
    }

    /// Stops starting and merging because the target branch is gone.
    pub(super) fn halt_target_gone(&mut self) {
        if self.halt.is_none() {
            self.halt = Some(Halt::TargetGone {
                last: self.merge.target_seen.clone(),
            });
        }
    }

    /// Stops starting and merging because the target lost `lost`, the head
    /// orch last landed; the state remembers it was reported.
    pub(super) fn halt_target_rewound(&mut self, lost: String, backup: String) {
        self.state.lost = Some(LostHead {
            commit: lost.clone(),
            backup: backup.clone(),
        });
        self.touch();
        if self.halt.is_none() {
            self.halt = Some(Halt::TargetRewound { lost, backup });
        }
    }

    /// Applies a person's cancel of a task of the merge queue: deferred
    /// while a landing that holds it is under way (the command is kept and
    /// answered when the landing ends: `None`), else the task leaves the
    /// chain and the command is given back to be applied at once.
    pub(super) fn cancel_in_queue(
        &mut self,
        received: inbox::Received,
        task: &FullId,
    ) -> Option<inbox::Received> {
        let in_landing = self
            .merge
            .train
            .landing
            .as_ref()
            .zip(self.merge.train.find(task))
            .is_some_and(|((_, n), i)| i < *n);
        if in_landing {
            if !self
                .merge
                .cancels
                .iter()
                .any(|(_, c)| c.path == received.path)
            {
                self.merge.cancels.push((task.clone(), received));
                self.effect(Effect::StopLanding);
            }
            return None;
        }
        self.eject(task);
        self.merge.parked.remove(task);
        self.merge.held.remove(task);
        Some(received)
    }

    /// Applies people's cancels of tasks whose landing ended without them.
    fn answer_cancels(&mut self, cancels: Vec<(FullId, inbox::Received)>, now: Now) {
        for (task, received) in cancels {
            self.eject(&task);
            let applied = control::apply(
                &self.env.plan,
                &mut self.state,
                Action::Cancel,
                task.as_str(),
                Timestamp::at(now.wall),
            );
            let reply = match applied {
                Ok(applied) => {
                    self.touch_all();
                    self.flight.views = crate::state::task_views(&self.env.plan, Some(&self.state));
                    for (id, kind) in applied.events {
                        self.emit(Some(&id), kind);
                    }
                    inbox::Reply::ok(format!("{} `{task}`", Action::Cancel.past()))
                }
                Err(e) => inbox::Reply::refused(e.to_string()),
            };
            self.effect(Effect::Reply { received, reply });
        }
    }

    /// Ends a landing's `post_merge` hooks.
    pub(super) fn on_post_merged(&mut self, failures: Vec<(FullId, HookError)>) {
        self.merge.post_merge.clear();
        for (task, failure) in failures {
            self.emit(
                Some(&task),
                EventKind::HookFailed {
                    reason: crate::text::error_chain(&failure),
                },
            );
        }
    }

    /// Asks the radar to read the branches of active tasks, every
    /// [`RADAR_INTERVAL`].
    pub(super) fn maybe_scan(&mut self, now: Now) {
        if self.merge.radar_busy || self.merge.radar_due.is_some_and(|due| now.mono < due) {
            return;
        }
        let requests: Vec<RadarRequest> = self
            .state
            .items
            .iter()
            .filter(|(id, s)| {
                crate::merge_queue::radar::watches(s.status)
                    && s.branch.is_some()
                    && self.unit_of(id) == crate::lifecycle::Unit::Task
            })
            .map(|(id, s)| RadarRequest {
                task: id.clone(),
                branch: s.branch.clone().unwrap_or_default(),
                known: s.radar.as_ref().map(|r| r.tip.clone()),
            })
            .collect();
        self.merge.radar_due = Some(now.mono + RADAR_INTERVAL);
        if !requests.is_empty() {
            self.merge.radar_busy = true;
            self.effect(Effect::Radar(requests));
        }
    }

    /// Applies what the radar read: new paths for tasks whose branch moved,
    /// and the overlaps between active tasks, each new one said once.
    pub(super) fn on_radar(
        &mut self,
        seen: Vec<(FullId, crate::merge_queue::radar::Reading)>,
        now: Now,
    ) {
        self.merge.radar_busy = false;
        self.merge.radar_due = Some(now.mono + RADAR_INTERVAL);
        for (task, read) in seen {
            let Some((tip, changes)) = read else { continue };
            let current = self.state.items.get(&task).and_then(|s| s.radar.as_ref());
            if current.is_some_and(|r| r.tip == tip && r.changes == changes) {
                continue;
            }
            let overlaps = current.map(|r| r.overlaps.clone()).unwrap_or_default();
            self.entry(&task).radar = Some(Radar {
                tip,
                changes,
                overlaps,
            });
        }
        let active: BTreeMap<FullId, Vec<String>> = self
            .state
            .items
            .iter()
            .filter(|(_, s)| crate::merge_queue::radar::watches(s.status))
            .filter_map(|(id, s)| Some((id.clone(), s.radar.as_ref()?.changes.clone())))
            .collect();
        let found = crate::merge_queue::radar::overlaps(&active);
        for task in active.keys() {
            let now_overlaps = found.get(task).cloned().unwrap_or_default();
            let before = self
                .state
                .items
                .get(task)
                .and_then(|s| s.radar.as_ref())
                .map(|r| r.overlaps.clone())
                .unwrap_or_default();
            if before == now_overlaps {
                continue;
            }
            for (other, paths) in &now_overlaps {
                // Each pair is said once, by the first of the two, and
                // again when it overlaps on more paths.
                let grew = before
                    .get(other)
                    .is_none_or(|b| paths.iter().any(|p| !b.contains(p)));
                if task < other && grew {
                    self.emit(
                        Some(task),
                        EventKind::RadarOverlap {
                            other: other.clone(),
                            paths: paths.clone(),
                        },
                    );
                }
            }
            if let Some(radar) = self.entry(task).radar.as_mut() {
                radar.overlaps = now_overlaps;
            }
        }
        if self.env.config.scheduling.avoid_overlap {
            self.hold_overlapping();
        }
    }

    /// Marks the ready tasks `[scheduling] avoid_overlap` holds back.
    pub(super) fn hold_overlapping(&mut self) {
        let held = crate::merge_queue::radar::held_back(&self.env.plan, &self.state);
        let plan = &self.env.plan;
        for (t, &task) in plan.tasks().iter().enumerate() {
            if let Some(view) = self.flight.views.get_mut(t) {
                view.overlaps = held.get(&task).copied();
            }
        }
    }

    /// Puts a merging task back in the queue (at a new branch tip when it moved).
    fn requeue(&mut self, task: &FullId, reason: &str, tip: Option<String>, now: Now) {
        let entry = self.entry(task);
        entry.reason = Some(format!("waiting to merge: {reason}"));
        if let Some(tip) = tip {
            entry.queued = Some(Queued {
                at: Timestamp::at(now.wall),
                tip: Some(tip),
            });
        }
        if self.status(task) == Status::Merging {
            self.transition(task, Transition::Requeue);
        }
    }

    fn attempts_left(&self, task: &FullId) -> bool {
        let used = self
            .state
            .items
            .get(task)
            .map_or(0, |s| s.counted_attempts());
        used < self.env.config.retry.max_attempts
    }

    /// Runs the task's agent again to fix a conflict, a red check or what a
    /// review found.
    fn hand_back(&mut self, task: &FullId, purpose: Purpose, now: Now) {
        self.transition(task, Transition::HandBack);
        let number = self.open_attempt_for(task, Some(purpose), now);
        self.emit(
            Some(task),
            EventKind::TaskStarted {
                attempt: number,
                title: self.title_of(task),
                purpose: Some(purpose),
                confined: self.env.sandbox.confinement.confines(),
            },
        );
        self.begin_provision(task.clone(), number);
    }

    /// Called when a task enters `awaiting_merge`: it joins the queue.
    pub(super) fn enqueue(&mut self, task: &FullId, tip: Option<String>, now: Now) {
        self.entry(task).queued = Some(Queued {
            at: Timestamp::at(now.wall),
            tip,
        });
    }

    /// Returns whether the merge queue has work left: tasks waiting, in the
    /// chain, parked, awaiting a review, or reverts asked for.
    pub(super) fn queue_has_work(&self) -> bool {
        !self.merge.train.links.is_empty()
            || !self.merge.parked.is_empty()
            || !self.merge.held.is_empty()
            || self.state.items.values().any(|s| {
                matches!(s.status, Status::AwaitingMerge | Status::AwaitingReview)
                    || (s.status == Status::Merged
                        && s.revert.as_ref().is_some_and(|r| r.commit.is_none()))
            })
    }

    /// Returns whether anything of the merge queue is in flight.
    pub(super) fn queue_busy(&self) -> bool {
        !self.merge.train.idle()
            || !self.merge.post_merge.is_empty()
            || self.merge.parked.values().any(|p| p.probing)
    }
}
