//! The merge queue's chain of candidates, as the core sees it: which tasks
//! are on their way to the target, which of their commits are checked, and
//! which commit lands next. Pure: no I/O, no clock (the core passes `now`).
//!
//! ```text
//!  target ── L0 ── L1 ── L2 ── L3 ── L4 ── L5 ── L6 ── L7      links, each built on the one before
//!                         ▲                  ▲
//!                  check (slot 0)      check (slot 1, speculative: assumes L0..L2 pass)
//! ```
//!
//! Every link's commit holds the target plus every task up to it, so a
//! check of link `k`'s commit (a *point*) checks that whole prefix, and
//! landing it moves the target over all of them at once. Points are chosen
//! by [`Train::plan_checks`]:
//! - with no failure known, at batch ends: up to `batch` links a batch,
//!   cut early before a link that overlaps one already in the batch (the
//!   radar), one batch after the other, as many at once as there are free
//!   check worktrees (`max_parallel_checks`): the second batch is checked
//!   on top of the first while the first is checked, and so on;
//! - once a point failed, between the last passed point and the first
//!   failed one: the midpoint of the widest gap, again as many as there
//!   are free slots (a bisection, in parallel where it can be). Checks
//!   beyond the failure are stopped: they hold the culprit too.
//!
//! A failed point right after a passed one (or at the first link) names
//! its last link as the culprit ([`Train::culprit`]); the links after it
//! lose their commits and are built again without it. The landing point
//! is the furthest passed point before any failure whose links are all
//! clear to land ([`Train::landable`]). Results are keyed by commit: a
//! rebuilt link has a new commit, so no result ever outlives what it
//! checked.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Instant;

use crate::plan::FullId;

/// The chain.
#[derive(Debug, Default)]
pub struct Train {
    /// The target head the chain is built on (the head orch last landed, or
    /// the one the last build read); `None` until the first build.
    pub base: Option<String>,
    pub links: Vec<Link>,
    /// Bumped whenever links lose their commits: a build answer for an
    /// older epoch is stale.
    pub epoch: u64,
    /// The epoch of the build in flight.
    pub building: Option<u64>,
    /// The check runs in flight, including those asked to stop.
    pub checks: Vec<Run>,
    /// What the checks of each point's commit said.
    pub results: BTreeMap<String, Verdict>,
    /// The point being landed: its commit and how many links it holds.
    pub landing: Option<(String, usize)>,
    /// When the landing under way was asked for.
    pub landing_since: Option<Instant>,
    /// Review commands in flight: (task, review name).
    pub reviews: BTreeSet<(FullId, String)>,
}

/// One task on its way to the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub task: FullId,
    /// The undoing of the task's work (`orch revert`), not the work itself.
    pub revert: bool,
    /// Its commit in the chain, once built.
    pub commit: Option<String>,
    /// The branch tip it merged.
    pub tip: Option<String>,
    /// When it joined the chain (`merge_ms` of `task.merged`).
    pub joined: Instant,
}

/// A check run in flight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub slot: u32,
    pub commit: String,
    /// The commit it was built on: the target's head, or the point ahead.
    pub onto: String,
    /// The tasks it checks onto the target, in order; the last one's
    /// folder holds its logs.
    pub tasks: Vec<FullId>,
    /// `false` once asked to stop: its slot and folder stay taken until it ends.
    pub live: bool,
}

/// What a point's checks said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Passed,
    Failed {
        check: String,
        reason: String,
        log: Option<PathBuf>,
        passed: Vec<String>,
    },
}

impl Train {
    /// Returns the position of the link whose commit is `commit`.
    pub fn position(&self, commit: &str) -> Option<usize> {
        self.links
            .iter()
            .position(|l| l.commit.as_deref() == Some(commit))
    }

    /// Returns the position of a task's link.
    pub fn find(&self, task: &FullId) -> Option<usize> {
        self.links.iter().position(|l| &l.task == task)
    }

    /// Returns how many leading links have their commits.
    pub fn built(&self) -> usize {
        self.links
            .iter()
            .position(|l| l.commit.is_none())
            .unwrap_or(self.links.len())
    }

    fn verdict_at(&self, i: usize) -> Option<&Verdict> {
        self.links[i]
            .commit
            .as_ref()
            .and_then(|c| self.results.get(c))
    }

    fn passed_at(&self, i: usize) -> bool {
        self.verdict_at(i) == Some(&Verdict::Passed)
    }

    /// Returns the first point that failed.
    pub fn first_failure(&self) -> Option<usize> {
        (0..self.built()).find(|i| matches!(self.verdict_at(*i), Some(Verdict::Failed { .. })))
    }

    /// Returns the culprit: the first failed point when the point before
    /// it passed (or it is the first link), with what failed.
    pub fn culprit(&self) -> Option<(usize, Verdict)> {
        let f = self.first_failure()?;
        if f == 0 || self.passed_at(f - 1) {
            Some((f, self.verdict_at(f).cloned()?))
        } else {
            None
        }
    }

    /// Returns what the candidate of point `i` adds, and onto what: the
    /// links after the nearest point before it that is being checked or
    /// passed (the candidate it is checked on top of), else after the base.
    pub fn segment(&self, i: usize) -> (String, Vec<FullId>) {
        let live = self.live_points();
        let before = (0..i)
            .rev()
            .find(|p| live.contains(p) || self.passed_at(*p));
        let onto = match before {
            Some(p) => self.links[p].commit.clone().unwrap_or_default(),
            None => self.base.clone().unwrap_or_default(),
        };
        let from = before.map_or(0, |p| p + 1);
        let tasks = self.links[from..=i]
            .iter()
            .map(|l| l.task.clone())
            .collect();
        (onto, tasks)
    }

    /// Returns the slots taken by check runs (live or stopping).
    pub fn slots_taken(&self) -> BTreeSet<u32> {
        self.checks.iter().map(|r| r.slot).collect()
    }

    fn live_points(&self) -> BTreeSet<usize> {
        self.checks
            .iter()
            .filter(|r| r.live)
            .filter_map(|r| self.position(&r.commit))
            .collect()
    }

    /// Returns where new checks start: up to `free` points (module docs).
    /// `apart(batch, next)` says whether link `next` must not join a batch
    /// holding `batch` (the radar saw them change the same files); a point
    /// whose last task's folder a running check still uses is skipped.
    pub fn plan_checks(
        &self,
        free: usize,
        batch: usize,
        apart: impl Fn(&[Link], &Link) -> bool,
    ) -> Vec<usize> {
        if free == 0 {
            return Vec::new();
        }
        let busy: BTreeSet<&FullId> = self.checks.iter().filter_map(|r| r.tasks.last()).collect();
        let usable = |i: usize| !busy.contains(&self.links[i].task);
        let live = self.live_points();
        let mut new = Vec::new();
        if let Some(f) = self.first_failure() {
            let lo = (0..f).rev().find(|i| self.passed_at(*i));
            if self.culprit().is_some() {
                return new;
            }
            // Points are positions; -1 stands for the target itself.
            let mut points: Vec<i64> = vec![lo.map_or(-1, |l| l as i64), f as i64];
            points.extend(
                live.iter()
                    .filter(|p| lo.is_none_or(|l| **p > l) && **p < f)
                    .map(|p| *p as i64),
            );
            while new.len() < free {
                points.sort_unstable();
                let widest = points
                    .windows(2)
                    .filter(|w| w[1] - w[0] >= 2)
                    .filter(|w| usable((w[0] + (w[1] - w[0]) / 2) as usize))
                    .max_by_key(|w| (w[1] - w[0], -w[0]));
                let Some(w) = widest else { break };
                let m = w[0] + (w[1] - w[0]) / 2;
                points.push(m);
                new.push(m as usize);
            }
            return new;
        }
        let built = self.built();
        let mut known: Vec<usize> = live.into_iter().collect();
        known.extend((0..built).filter(|i| self.passed_at(*i)));
        known.sort_unstable();
        let mut start = 0;
        while start < built && new.len() < free {
            if let Some(p) = known.iter().find(|p| **p >= start) {
                start = p + 1;
                continue;
            }
            let mut end = start;
            while end + 1 < built
                && end + 1 - start < batch
                && !apart(&self.links[start..=end], &self.links[end + 1])
            {
                end += 1;
            }
            if !usable(end) {
                break;
            }
            new.push(end);
            start = end + 1;
        }
        new
    }

    /// Returns the point to land: the furthest passed point before any
    /// failure whose links are all `clear` to land.
    pub fn landable(&self, clear: impl Fn(&Link) -> bool) -> Option<usize> {
        if self.landing.is_some() {
            return None;
        }
        let end = self.first_failure().unwrap_or(self.built());
        let blocked = (0..end).find(|i| !clear(&self.links[*i])).unwrap_or(end);
        (0..blocked).rev().find(|i| self.passed_at(*i))
    }

    /// Drops the commits of the links from `from` on (they are built
    /// again): asks the checks of those commits to stop, and returns their
    /// slots.
    pub fn invalidate_from(&mut self, from: usize) -> Vec<u32> {
        let from = from.min(self.links.len());
        let gone: BTreeSet<String> = self.links[from..]
            .iter_mut()
            .filter_map(|l| l.commit.take())
            .collect();
        if gone.is_empty() {
            return Vec::new();
        }
        self.epoch += 1;
        self.results.retain(|c, _| !gone.contains(c));
        self.stop_checks(|r| gone.contains(&r.commit))
    }

    /// Asks the live checks `which` picks to stop; returns their slots.
    pub fn stop_checks(&mut self, which: impl Fn(&Run) -> bool) -> Vec<u32> {
        let mut slots = Vec::new();
        for run in self.checks.iter_mut().filter(|r| r.live && which(r)) {
            run.live = false;
            slots.push(run.slot);
        }
        slots
    }

    /// Stops the checks of points after the first failure: they hold the
    /// culprit too. Returns their slots.
    pub fn stop_beyond_failure(&mut self) -> Vec<u32> {
        let Some(f) = self.first_failure() else {
            return Vec::new();
        };
        let beyond: BTreeSet<String> = self.links[f + 1..]
            .iter()
            .filter_map(|l| l.commit.clone())
            .collect();
        self.stop_checks(|r| beyond.contains(&r.commit))
    }

    /// Takes a link out of the chain; the links after it are built again.
    /// Returns the link and the slots of the checks to stop.
    pub fn remove(&mut self, i: usize) -> (Link, Vec<u32>) {
        let mut slots = self.invalidate_from(i);
        let link = self.links.remove(i);
        if let Some(commit) = &link.commit {
            self.results.remove(commit);
            slots.extend(self.stop_checks(|r| &r.commit == commit));
        }
        if i == 0 && self.links.is_empty() {
            self.epoch += 1;
        }
        (link, slots)
    }

    /// Drops the first `n` links, which landed at `commit`: the chain now
    /// starts there. Checks of points they cover are stopped (what they
    /// check has landed); returns the links and those slots.
    pub fn landed(&mut self, n: usize, commit: &str) -> (Vec<Link>, Vec<u32>) {
        let landed: Vec<Link> = self.links.drain(..n.min(self.links.len())).collect();
        let covered: BTreeSet<String> = landed.iter().filter_map(|l| l.commit.clone()).collect();
        self.results.retain(|c, _| !covered.contains(c));
        let slots = self.stop_checks(|r| covered.contains(&r.commit));
        self.base = Some(commit.to_owned());
        (landed, slots)
    }

    /// Empties the chain (the run stops, halts, or the target moved under
    /// it): every check is asked to stop. Returns the links and the slots.
    pub fn clear(&mut self) -> (Vec<Link>, Vec<u32>) {
        let slots = self.stop_checks(|_| true);
        self.epoch += 1;
        self.results.clear();
        (std::mem::take(&mut self.links), slots)
    }

    /// Returns whether nothing of the chain is in flight.
    pub fn idle(&self) -> bool {
        self.building.is_none()
            && self.checks.is_empty()
            && self.landing.is_none()
            && self.reviews.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: usize) -> Train {
        let now = Instant::now();
        Train {
            links: (0..n)
                .map(|i| Link {
                    task: FullId::parse(&format!("T{i}")).unwrap(),
                    revert: false,
                    commit: Some(format!("c{i}")),
                    tip: None,
                    joined: now,
                })
                .collect(),
            ..Train::default()
        }
    }

    fn pass(t: &mut Train, i: usize) {
        t.results.insert(format!("c{i}"), Verdict::Passed);
    }

    fn fail(t: &mut Train, i: usize) {
        t.results.insert(
            format!("c{i}"),
            Verdict::Failed {
                check: "test".to_owned(),
                reason: "exit code 1".to_owned(),
                log: None,
                passed: Vec::new(),
            },
        );
    }

    fn running(t: &mut Train, i: usize, slot: u32) {
        t.checks.push(Run {
            slot,
            commit: format!("c{i}"),
            onto: "base".to_owned(),
            tasks: vec![t.links[i].task.clone()],
            live: true,
        });
    }

    fn never(_: &[Link], _: &Link) -> bool {
        false
    }

    #[test]
    fn batches_are_checked_one_on_top_of_the_other() {
        let table: Vec<(usize, usize, usize, Vec<usize>)> = vec![
            // links, batch, free slots, points
            (20, 8, 2, vec![7, 15]),
            (20, 8, 3, vec![7, 15, 19]),
            (3, 8, 2, vec![2]),
            (5, 1, 2, vec![0, 1]),
            (5, 1, 1, vec![0]),
            (0, 8, 2, vec![]),
            (20, 8, 0, vec![]),
        ];
        for (n, batch, free, expected) in table {
            assert_eq!(
                chain(n).plan_checks(free, batch, never),
                expected,
                "{n} links, batch {batch}, {free} free"
            );
        }
    }

    #[test]
    fn new_batches_start_after_the_points_already_checked() {
        let mut t = chain(12);
        running(&mut t, 2, 0);
        assert_eq!(
            t.plan_checks(1, 8, never),
            [10],
            "the next batch starts at 3"
        );
        pass(&mut t, 10);
        assert_eq!(t.plan_checks(1, 8, never), [11]);
        let mut t = chain(6);
        t.links[4].commit = None;
        t.links[5].commit = None;
        assert_eq!(
            t.plan_checks(2, 8, never),
            [3],
            "only built links are checked"
        );
    }

    #[test]
    fn overlapping_tasks_go_in_different_batches() {
        let t = chain(6);
        let apart = |batch: &[Link], next: &Link| {
            next.task.as_str() == "T2" && batch.iter().any(|l| l.task.as_str() == "T0")
        };
        assert_eq!(t.plan_checks(3, 8, apart), [1, 5]);
    }

    #[test]
    fn a_red_batch_is_bisected_in_parallel_where_slots_allow() {
        let mut t = chain(8);
        fail(&mut t, 7);
        assert_eq!(t.plan_checks(1, 8, never), [3]);
        assert_eq!(t.plan_checks(2, 8, never), [3, 1]);
        running(&mut t, 3, 0);
        assert_eq!(t.plan_checks(1, 8, never), [1], "the widest gap left");
        pass(&mut t, 3);
        t.checks.clear();
        assert_eq!(
            t.plan_checks(1, 8, never),
            [5],
            "between the pass and the failure"
        );
        fail(&mut t, 5);
        assert_eq!(t.plan_checks(1, 8, never), [4]);
        pass(&mut t, 4);
        let (culprit, verdict) = t.culprit().unwrap();
        assert_eq!(culprit, 5);
        assert!(matches!(verdict, Verdict::Failed { .. }));
        assert!(
            t.plan_checks(2, 8, never).is_empty(),
            "the culprit is known"
        );
        let mut first = chain(3);
        fail(&mut first, 0);
        assert_eq!(first.culprit().map(|c| c.0), Some(0));
    }

    #[test]
    fn the_furthest_passed_point_before_a_failure_lands_once_clear() {
        let mut t = chain(8);
        pass(&mut t, 2);
        pass(&mut t, 5);
        fail(&mut t, 6);
        pass(&mut t, 7);
        assert_eq!(t.landable(|_| true), Some(5), "never past a failure");
        assert_eq!(
            t.landable(|l| l.task.as_str() != "T4"),
            Some(2),
            "T4 waits for its review"
        );
        assert_eq!(t.landable(|l| l.task.as_str() != "T0"), None);
        t.landing = Some(("c5".to_owned(), 6));
        assert_eq!(t.landable(|_| true), None, "one landing at a time");
    }

    #[test]
    fn a_removed_link_takes_the_commits_after_it_with_it() {
        let mut t = chain(5);
        pass(&mut t, 1);
        running(&mut t, 3, 1);
        fail(&mut t, 4);
        let epoch = t.epoch;
        let (link, slots) = t.remove(2);
        assert_eq!(link.task.as_str(), "T2");
        assert_eq!(slots, [1]);
        assert!(!t.checks[0].live, "asked to stop, its slot still taken");
        assert_eq!(t.built(), 2);
        assert!(t.epoch > epoch);
        assert_eq!(t.results.len(), 1, "only c1's pass is left");
        let (landed, _) = t.landed(2, "c1");
        assert_eq!(landed.len(), 2);
        assert_eq!(t.base.as_deref(), Some("c1"));
        assert!(t.results.is_empty());
    }
}
