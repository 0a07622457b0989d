//! The order of the merge queue. Pure.
//!
//! In the order tasks finished (the time they entered `awaiting_merge`); a
//! lower priority number breaks ties, then plan order. The coordinator
//! puts the tasks of [`order`] in its chain of candidates in that order; the
//! dashboard shows the same [`order`], so the queue it shows is the order
//! tasks join the chain.

use crate::lifecycle::Status;
use crate::plan::{FullId, ItemIdx, Plan, Priority};
use crate::state::State;
use crate::state::model::Timestamp;

/// Where a waiting task stands in the queue: lower merges first. A task with
/// no queue time (a state written before it was recorded) goes first.
type Place = (Option<Timestamp>, Priority, ItemIdx);

/// Returns the task to merge next, if any waits.
pub fn next(plan: &Plan, state: &State) -> Option<FullId> {
    waiting(plan, state).min().map(|(_, id)| id.clone())
}

/// Returns every task waiting to merge, in the order they will merge.
pub fn order(plan: &Plan, state: &State) -> Vec<FullId> {
    let mut waiting: Vec<(Place, &FullId)> = waiting(plan, state).collect();
    waiting.sort_unstable();
    waiting.into_iter().map(|(_, id)| id.clone()).collect()
}

/// Returns the tasks in `awaiting_merge` that the plan has, with their places.
fn waiting<'a>(plan: &'a Plan, state: &'a State) -> impl Iterator<Item = (Place, &'a FullId)> {
    state
        .items
        .iter()
        .filter(|(_, s)| s.status == Status::AwaitingMerge)
        .filter_map(|(id, s)| {
            let idx = plan.lookup(id.as_str())?;
            let queued = s.queued.as_ref().map(|q| q.at);
            Some(((queued, plan.item(idx).priority, idx), id))
        })
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::plan::Rules;
    use crate::state::ItemState;
    use crate::state::model::{Queued, Timestamp};

    #[test]
    fn finish_order_then_priority_then_plan_order() {
        let plan = crate::plan::from_bytes(
            Path::new("plan.toml"),
            b"[[task]]\nid = \"A\"\n[[task]]\nid = \"B\"\npriority = 0\n[[task]]\nid = \"C\"\n",
            &Rules::default(),
        )
        .unwrap();
        let at = |secs| {
            Some(Queued {
                at: Timestamp(SystemTime::UNIX_EPOCH + Duration::from_secs(secs)),
                tip: None,
            })
        };
        let mut state = State::default();
        for (id, when) in [("A", 5), ("B", 5), ("C", 1)] {
            let mut s = ItemState::new(Status::AwaitingMerge);
            s.queued = at(when);
            state.items.insert(FullId::parse(id).unwrap(), s);
        }
        let names = |ids: Vec<FullId>| {
            ids.iter()
                .map(|i| i.as_str().to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(order(&plan, &state)), ["C", "B", "A"]);
        assert_eq!(next(&plan, &state).unwrap().as_str(), "C");
        state
            .items
            .get_mut(&FullId::parse("C").unwrap())
            .unwrap()
            .status = Status::Merged;
        assert_eq!(
            next(&plan, &state).unwrap().as_str(),
            "B",
            "same time: priority 0 first"
        );
        state
            .items
            .get_mut(&FullId::parse("B").unwrap())
            .unwrap()
            .status = Status::Merging;
        assert_eq!(next(&plan, &state).unwrap().as_str(), "A");
        assert_eq!(names(order(&plan, &state)), ["A"]);
    }

    #[test]
    fn next_is_the_head_of_the_order() {
        let plan = crate::plan::from_bytes(
            Path::new("plan.toml"),
            b"[[task]]\nid = \"A\"\n[[task]]\nid = \"B\"\npriority = 1\n[[task]]\nid = \"C\"\npriority = 1\n[[task]]\nid = \"D\"\npriority = 0\n[[task]]\nid = \"E\"\n",
            &Rules::default(),
        )
        .unwrap();
        let mut state = State::default();
        for (id, when) in [
            ("A", Some(3)),
            ("B", Some(2)),
            ("C", Some(2)),
            ("D", Some(9)),
            ("E", None),
        ] {
            let mut s = ItemState::new(Status::AwaitingMerge);
            s.queued = when.map(|secs| Queued {
                at: Timestamp(SystemTime::UNIX_EPOCH + Duration::from_secs(secs)),
                tip: None,
            });
            state.items.insert(FullId::parse(id).unwrap(), s);
        }
        let mut merged = Vec::new();
        while let Some(id) = next(&plan, &state) {
            assert_eq!(order(&plan, &state).first(), Some(&id));
            state.items.get_mut(&id).unwrap().status = Status::Merged;
            merged.push(id.as_str().to_owned());
        }
        assert_eq!(merged, ["E", "B", "C", "A", "D"], "unrecorded time first");
        assert!(order(&plan, &state).is_empty());
    }
}
