//! The delivery thread: drains every worker's channel into the sink and recycles batches.
//!
//! Runs once per batch. It takes one batch per worker per pass (round robin, so no
//! worker starves), polls the sink between passes so delivery callbacks are served
//! promptly, returns each batch the sink is done with to its worker, and when every
//! worker has finished it flushes the sink.

use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Select, TryRecvError};

use crate::deliver::batch::Batch;
use crate::deliver::handoff::DeliverySide;
use crate::deliver::Sink;
use crate::shutdown::Shutdown;

/// How long an idle pass waits for a batch before polling the sink again. Bounds how
/// late a delivery callback is served when no batches arrive.
const IDLE_WAIT: Duration = Duration::from_micros(500);

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
        sink.poll(&mut done);
        recycle(&mut done);
        if !progressed && !live.is_empty() {
            let _ = select.ready_timeout(IDLE_WAIT);
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
