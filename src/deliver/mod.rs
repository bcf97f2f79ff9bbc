//! Delivery: the batch (the unit handed over), the SPSC hand-off from each worker, the
//! delivery thread, and the sinks it drains into: Kafka (a real cluster or the embedded
//! mock), stdout, null.
//!
//! This stage is payload-agnostic: it moves keyed byte strings and knows nothing of how
//! readings are made. A sink is owned by the delivery thread and records every message
//! it is handed as delivered or failed in `DeliveryStats`, so nothing is lost silently.

pub mod batch;
pub mod handoff;
pub mod kafka;
pub mod stats;
pub mod stdout;
pub mod thread;

use std::sync::Arc;
use std::time::Duration;

use crate::deliver::batch::Batch;
use crate::deliver::stats::DeliveryStats;
use crate::shutdown::Shutdown;

pub trait Sink: Send {
    /// Hands every message of `batch` on. Outcomes known at once are recorded now,
    /// the rest when their delivery reports arrive. Batches the sink no longer needs,
    /// this one or earlier ones, go to `done` to be reused.
    fn send(&mut self, batch: Batch, shutdown: &Shutdown, done: &mut Vec<Batch>);

    /// Serves pending delivery reports without blocking; finished batches go to `done`.
    /// A sink that finds the run cannot go on asks `shutdown` to stop it.
    fn poll(&mut self, _shutdown: &Shutdown, _done: &mut Vec<Batch>) {}

    /// Bytes of payload the sink may still read after `send` returns: a sink that does
    /// not copy keeps batches until their messages are delivered, and each worker's
    /// pool needs that many more batches.
    fn holds_bytes(&self) -> usize {
        0
    }

    /// Waits up to `timeout` for outstanding messages, then records the rest as failed.
    fn finish(&mut self, _timeout: Duration) {}
}

/// Counts messages as delivered without sending them: measures the generator alone.
pub struct NullSink {
    pub stats: Arc<DeliveryStats>,
}

impl Sink for NullSink {
    fn send(&mut self, batch: Batch, _: &Shutdown, done: &mut Vec<Batch>) {
        let (n, bytes) = (batch.len() as u64, batch.bytes() as u64);
        let alerts = batch.alerts().len() as u64;
        self.stats.with(|d| {
            d.delivered += n;
            d.bytes_delivered += bytes;
            d.alerts_delivered += alerts;
        });
        done.push(batch);
    }
}
