//! A worker's counters: published once per batch (relaxed atomics that only that worker
//! writes) and summed by the reporter and the metrics endpoint.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::OnceLock;
use std::time::Instant;

/// Counts one worker publishes after each batch.
#[derive(Debug, Default)]
pub struct WorkerStats {
    /// Readings generated and handed to the delivery thread.
    pub generated: AtomicU64,
    /// Payload bytes of those readings.
    pub bytes: AtomicU64,
    /// Readings generated but never handed over (the delivery thread was gone).
    pub lost: AtomicU64,
    /// Alerts generated but never handed over.
    pub lost_alerts: AtomicU64,
    /// Readings dropped at generation (`run.on_backpressure: drop`), never handed over.
    pub dropped: AtomicU64,
    /// Alerts dropped with them.
    pub dropped_alerts: AtomicU64,
    /// Alerts generated (handed over with the readings that raised them).
    pub alerts: AtomicU64,
    /// Nanoseconds spent waiting for the delivery thread (backpressure).
    pub blocked_ns: AtomicU64,
    /// Batches handed to the delivery thread.
    pub batches: AtomicU64,
    /// When the worker made its last reading and stopped.
    ended: OnceLock<Instant>,
}

impl WorkerStats {
    /// Records that the worker has stopped generating (once; later calls are ignored).
    pub fn end(&self) {
        let _ = self.ended.set(Instant::now());
    }

    /// When the worker stopped generating, if it has.
    pub fn ended(&self) -> Option<Instant> {
        self.ended.get().copied()
    }

    /// Counts a batch of `messages` readings (`bytes` of payload) and their `alerts`.
    pub fn add_batch(&self, messages: u64, alerts: u64, bytes: u64) {
        self.generated.fetch_add(messages, Relaxed);
        self.alerts.fetch_add(alerts, Relaxed);
        self.bytes.fetch_add(bytes, Relaxed);
        self.batches.fetch_add(1, Relaxed);
    }

    /// Counts a batch dropped at generation.
    pub fn drop_batch(&self, messages: u64, alerts: u64) {
        self.dropped.fetch_add(messages, Relaxed);
        self.dropped_alerts.fetch_add(alerts, Relaxed);
    }

    /// Counts readings and alerts that could not be handed over.
    pub fn lose(&self, messages: u64, alerts: u64) {
        self.lost.fetch_add(messages, Relaxed);
        self.lost_alerts.fetch_add(alerts, Relaxed);
    }
}

/// Sums over all workers.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Generated {
    pub messages: u64,
    pub bytes: u64,
    pub lost: u64,
    pub lost_alerts: u64,
    pub blocked_ns: u64,
    pub alerts: u64,
    pub dropped: u64,
    pub dropped_alerts: u64,
    pub batches: u64,
}

impl Generated {
    pub fn sum(workers: &[std::sync::Arc<WorkerStats>]) -> Self {
        workers.iter().fold(Self::default(), |a, w| Self {
            messages: a.messages + w.generated.load(Relaxed),
            bytes: a.bytes + w.bytes.load(Relaxed),
            lost: a.lost + w.lost.load(Relaxed),
            lost_alerts: a.lost_alerts + w.lost_alerts.load(Relaxed),
            blocked_ns: a.blocked_ns + w.blocked_ns.load(Relaxed),
            alerts: a.alerts + w.alerts.load(Relaxed),
            dropped: a.dropped + w.dropped.load(Relaxed),
            dropped_alerts: a.dropped_alerts + w.dropped_alerts.load(Relaxed),
            batches: a.batches + w.batches.load(Relaxed),
        })
    }
}
