//! The delivery thread: drains every worker's channel into the sink and recycles batches.
//!
//! Runs once per batch. It takes one batch per worker per pass (round robin, so no
//! worker starves), polls the sink between passes so delivery callbacks are served
//! promptly, returns each batch the sink is done with to its worker, and when every
//! worker has finished it flushes the sink.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Select, TryRecvError};

use crate::deliver::batch::Batch;
use crate::deliver::handoff::DeliverySide;
use crate::deliver::Sink;
use crate::shutdown::Shutdown;

/// How long an idle pass waits for a batch before polling the sink again. Bounds how
/// late a delivery callback is served when no batches arrive.
const IDLE_WAIT: Duration = Duration::from_micros(500);

/// Batches further apart than this (or none for this long) and an idle pass blocks on
/// the channels; closer, and it naps (see `Idle`).
const BUSY: Duration = Duration::from_millis(2);

/// The shortest nap: below this a timer wake costs more than it saves.
const MIN_NAP: Duration = Duration::from_micros(20);

/// How an idle pass waits for the next batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wait {
    /// Sleep on a timer, registered with no channel.
    Nap(Duration),
    /// Block on the channels, woken by the next send or after `IDLE_WAIT`.
    Block,
}

/// Chooses between napping and blocking from when batches arrive.
///
/// Why nap: a thread blocked on a channel is woken by the sender, and on a VM that wake
/// is an inter-processor interrupt the worker pays: `perf` put 7 % of a one-core
/// null-sink run's worker samples in `futex_wake` → `try_to_wake_up`, one per batch. A
/// napping thread wakes on its own timer, on its own core, and the worker's send finds
/// no one to wake. The nap is twice the recent gap between batches, so one wake takes
/// about two batches. Measured A/B against the commit before (alternating null-sink
/// runs, median of the paired ratios): a nap of 3/4 of the gap (one wake per batch)
/// made two-core runs slower (0.86 over 6 rounds), timer wakes preempting a busy
/// worker; twice the gap gave 1.12 on one core and 1.03 on two over 8 rounds.
/// A batch, and a delivery report (whose ack time is read when it is served), waits at
/// most one nap, at most `IDLE_WAIT`: the same bound as a blocked pass's timeout, and
/// less than the four batches a worker's channel holds by default. When batches stop
/// coming (a paced run at a low rate, the end of a run) the pass blocks as before, so
/// an idle run does not tick.
#[derive(Debug)]
struct Idle {
    last: Instant,
    /// Moving average of the time between passes that took a batch.
    gap: Duration,
}

impl Idle {
    fn new(now: Instant) -> Self {
        Self {
            last: now,
            gap: BUSY,
        }
    }

    /// A pass took at least one batch at `now`.
    fn took_batch(&mut self, now: Instant) {
        let gap = now.saturating_duration_since(self.last).min(BUSY);
        self.gap = (self.gap * 7 + gap) / 8;
        self.last = now;
    }

    fn wait(&self, now: Instant) -> Wait {
        if now.saturating_duration_since(self.last) >= BUSY || self.gap >= BUSY {
            Wait::Block
        } else {
            Wait::Nap((self.gap * 2).clamp(MIN_NAP, IDLE_WAIT))
        }
    }
}

/// Delivers until all workers have hung up, then flushes for at most `flush_timeout`.
pub fn run(
    mut sink: Box<dyn Sink>,
    sides: Vec<DeliverySide>,
    flush_timeout: Duration,
    shutdown: Arc<Shutdown>,
) {
    let mut select = Select::new();
    for side in &sides {
        // Operation index == position in `sides`.
        select.recv(&side.full);
    }
    let mut live: Vec<usize> = (0..sides.len()).collect();
    let mut idle = Idle::new(Instant::now());
    // Batches the sink is done with, returned to their workers after each step.
    let mut done = Vec::new();
    let recycle = |done: &mut Vec<_>| {
        for batch in done.drain(..) {
            recycle_to(&sides, batch);
        }
    };
    while !live.is_empty() {
        let mut progressed = false;
        let mut i = 0;
        while i < live.len() {
            let side = &sides[live[i]];
            match side.try_take() {
                Ok(batch) => {
                    sink.send(batch, &shutdown, &mut done);
                    recycle(&mut done);
                    progressed = true;
                    i += 1;
                }
                Err(TryRecvError::Empty) => i += 1,
                Err(TryRecvError::Disconnected) => {
                    select.remove(live[i]);
                    live.swap_remove(i);
                }
            }
        }
        sink.poll(&shutdown, &mut done);
        recycle(&mut done);
        if progressed {
            idle.took_batch(Instant::now());
        } else if !live.is_empty() {
            match idle.wait(Instant::now()) {
                Wait::Nap(nap) => std::thread::sleep(nap),
                Wait::Block => {
                    let _ = select.ready_timeout(IDLE_WAIT);
                }
            }
        }
    }
    // A run that was stopped (signal, duration, stall) has one flush timeout from the
    // stop in all; a run that finished its messages gets a whole one to flush.
    sink.finish(shutdown.grace_left(flush_timeout));
}

/// Returns `batch` to the worker that filled it (dropped if that worker has finished).
fn recycle_to(sides: &[DeliverySide], batch: Batch) {
    match sides.iter().find(|s| s.worker == batch.worker) {
        Some(side) => side.recycle(batch),
        None => drop(batch),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steady(gap: Duration, batches: u32) -> (Idle, Instant) {
        let start = Instant::now();
        let mut idle = Idle::new(start);
        let mut now = start;
        for _ in 0..batches {
            now += gap;
            idle.took_batch(now);
        }
        (idle, now)
    }

    #[test]
    fn blocks_until_batches_come_often() {
        let start = Instant::now();
        assert_eq!(Idle::new(start).wait(start), Wait::Block);
        let (idle, now) = steady(Duration::from_millis(5), 50);
        assert_eq!(idle.wait(now), Wait::Block, "batches 5 ms apart");
    }

    #[test]
    fn naps_two_gaps_between_frequent_batches() {
        let gap = Duration::from_micros(200);
        let (idle, now) = steady(gap, 200);
        match idle.wait(now + Duration::from_micros(10)) {
            Wait::Nap(nap) => {
                let expected = gap * 2;
                assert!(nap.abs_diff(expected) < Duration::from_micros(5), "{nap:?}");
            }
            Wait::Block => panic!("blocked between batches 200 us apart"),
        }
        // Never shorter than MIN_NAP nor longer than IDLE_WAIT.
        let (fast, now) = steady(Duration::from_micros(5), 200);
        assert_eq!(fast.wait(now), Wait::Nap(MIN_NAP));
        let (slow, now) = steady(Duration::from_micros(1000), 200);
        assert_eq!(slow.wait(now), Wait::Nap(IDLE_WAIT));
    }

    #[test]
    fn blocks_again_when_batches_stop() {
        let (idle, now) = steady(Duration::from_micros(300), 200);
        assert_eq!(idle.wait(now + BUSY), Wait::Block);
    }
}
