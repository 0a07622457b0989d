//! The order of the merge queue. Pure.
//!
//! One merge at a time, in the order tasks finished (the time they entered
//! `awaiting_merge`); a lower priority number breaks ties, then plan order.

use crate::lifecycle::Status;
use crate::plan::{FullId, Plan};
use crate::state::State;

/// Returns the task to merge next, if any waits.
pub fn next(plan: &Plan, state: &State) -> Option<FullId> {
    state
        .items
        .iter()
        .filter(|(_, s)| s.status == Status::AwaitingMerge)
        .filter_map(|(id, s)| {
            let idx = plan.lookup(id.as_str())?;
            let queued = s.queued.as_ref().map(|q| q.at);
            Some((queued, plan.item(idx).priority, idx, id))
        })
        .min()
        .map(|(_, _, _, id)| id.clone())
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
    }
}
