//! The thread that drains the outbox while a run is live.
//!
//! It makes every try that is due, in event order, one at a time, then
//! sleeps until the next one is due, a new delivery wakes it, or a second
//! passes (a delivery `orch notify replay` put back is found that way). A
//! failed try waits the destination's next `retry` step, stretched by a
//! random 0 to 20 % so that many deliveries failing together do not all
//! come back at the same instant; once the steps are spent the delivery is
//! dead. The run never waits for it, except at the very end: every
//! delivery not tried yet gets its first try, and tries due within
//! [`Worker::finish`]'s grace are still made, so that `run.finished`
//! reaches a receiver that was up.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use super::outbox::{Delivery, List, Outbox, Try};
use super::send::{Destination, SendError};
use crate::state::Timestamp;

/// How long a worker sleeps at most before looking at the outbox again.
const POLL: Duration = Duration::from_secs(1);

/// The share by which a retry's wait is stretched at most.
pub const JITTER: f64 = 0.2;

enum Wake {
    New,
    /// Make the tries due before this instant, then stop.
    Finish(Instant),
}

/// A running worker.
#[derive(Debug)]
pub struct Worker {
    tx: mpsc::Sender<Wake>,
    handle: JoinHandle<()>,
}

impl Worker {
    /// Starts draining `outbox` to `destinations`.
    pub fn start(outbox: Outbox, destinations: Vec<Destination>) -> Worker {
        let (tx, rx) = mpsc::channel();
        let handle = std::thread::spawn(move || {
            drain(&outbox, &destinations, &rx, fastrand::Rng::new());
        });
        Worker { tx, handle }
    }

    /// Says a delivery was added.
    pub fn wake(&self) {
        let _ = self.tx.send(Wake::New);
    }

    /// Makes the tries due within `grace`, then stops; returns when done.
    pub fn finish(self, grace: Duration) {
        let _ = self.tx.send(Wake::Finish(Instant::now() + grace));
        let _ = self.handle.join();
    }
}

fn drain(
    outbox: &Outbox,
    destinations: &[Destination],
    rx: &mpsc::Receiver<Wake>,
    mut rng: fastrand::Rng,
) {
    let mut finish: Option<Instant> = None;
    loop {
        let pending = match outbox.list(List::Pending) {
            Ok(pending) => pending,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the notification outbox");
                Vec::new()
            }
        };
        let mut next_due: Option<SystemTime> = None;
        for delivery in pending {
            // Past the end's grace only first tries are still made: the
            // run's last events (`run.finished`) get one try each.
            if finish.is_some_and(|end| Instant::now() >= end) && !delivery.tries.is_empty() {
                continue;
            }
            if delivery.next.0 <= SystemTime::now() {
                if let Some(next) = attempt(outbox, destinations, delivery, &mut rng) {
                    next_due = Some(next_due.map_or(next, |d| d.min(next)));
                }
            } else {
                let next = delivery.next.0;
                next_due = Some(next_due.map_or(next, |d| d.min(next)));
            }
        }
        let wait = next_due
            .map(|at| at.duration_since(SystemTime::now()).unwrap_or_default())
            .unwrap_or(POLL)
            .min(POLL);
        if let Some(end) = finish {
            if Instant::now() >= end {
                return;
            }
            let due_in_time = next_due.is_some_and(|at| {
                at.duration_since(SystemTime::now()).unwrap_or_default()
                    < end.saturating_duration_since(Instant::now())
            });
            if !due_in_time {
                return;
            }
        }
        match rx.recv_timeout(wait) {
            Ok(Wake::New) | Err(RecvTimeoutError::Timeout) => {}
            Ok(Wake::Finish(end)) => finish = Some(end),
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// Makes one try; returns when the next is due if the delivery stays pending.
fn attempt(
    outbox: &Outbox,
    destinations: &[Destination],
    mut delivery: Delivery,
    rng: &mut fastrand::Rng,
) -> Option<SystemTime> {
    let now = SystemTime::now();
    let destination = destinations.iter().find(|d| d.name == delivery.destination);
    let result = match destination {
        Some(d) => d.send(&delivery, now),
        None => Err(SendError::NoDestination {
            name: delivery.destination.clone(),
        }),
    };
    let recorded = match result {
        Ok(()) => {
            delivery.tries.push(Try {
                at: Timestamp::at(now),
                error: None,
                wait_ms: None,
            });
            outbox.delivered(List::Pending, &delivery).map(|()| None)
        }
        Err(error) => {
            let failed = delivery.tries.len();
            let step = destination.and_then(|d| d.retry.get(failed)).copied();
            let wait = step.map(|s| s.mul_f64(1.0 + rng.f64() * JITTER));
            delivery.tries.push(Try {
                at: Timestamp::at(now),
                error: Some(crate::text::error_chain(&error)),
                wait_ms: wait.map(|w| w.as_millis() as u64),
            });
            match wait {
                Some(wait) => {
                    delivery.next = Timestamp::at(now + wait);
                    outbox
                        .put(List::Pending, &delivery)
                        .map(|()| Some(now + wait))
                }
                None => outbox
                    .put(List::Dead, &delivery)
                    .and_then(|()| outbox.remove(List::Pending, &delivery.id))
                    .map(|()| None),
            }
        }
    };
    recorded.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "cannot record a notification's try");
        None
    })
}

/// Sends dead (or pending) deliveries again now, once each, from this
/// thread; each ends delivered, or back in the dead list with the try
/// recorded. Returns the ids and how each went.
pub fn replay(
    outbox: &Outbox,
    destinations: &[Destination],
    deliveries: Vec<(List, Delivery)>,
) -> Vec<(String, Result<(), String>)> {
    let mut out = Vec::new();
    for (list, mut delivery) in deliveries {
        let now = SystemTime::now();
        let result = match destinations.iter().find(|d| d.name == delivery.destination) {
            Some(d) => d.send(&delivery, now),
            None => Err(SendError::NoDestination {
                name: delivery.destination.clone(),
            }),
        };
        let error = result.err().map(|e| crate::text::error_chain(&e));
        delivery.tries.push(Try {
            at: Timestamp::at(now),
            error: error.clone(),
            wait_ms: None,
        });
        let recorded = match &error {
            None => outbox.delivered(list, &delivery),
            Some(_) => outbox.put(List::Dead, &delivery).and_then(|()| match list {
                List::Pending => outbox.remove(List::Pending, &delivery.id),
                List::Dead => Ok(()),
            }),
        };
        let outcome = match (error, recorded) {
            (_, Err(e)) => Err(crate::text::error_chain(&e)),
            (Some(error), Ok(())) => Err(error),
            (None, Ok(())) => Ok(()),
        };
        out.push((delivery.id, outcome));
    }
    out
}
