//! Counters and latency histograms, owned per thread and merged rarely.
//!
//! Workers publish their counts once per batch (relaxed atomics that only they write).
//! Delivery outcomes are recorded by the delivery thread, the only thread that runs
//! librdkafka's callbacks, behind a mutex that the reporter takes once per interval.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

use hdrhistogram::Histogram;

/// Counts one worker publishes after each batch.
#[derive(Debug, Default)]
pub struct WorkerStats {
    /// Readings generated and handed to the delivery thread.
    pub generated: AtomicU64,
    /// Payload bytes of those readings.
    pub bytes: AtomicU64,
    /// Readings generated but never handed over (the delivery thread was gone).
    pub lost: AtomicU64,
    /// Alerts generated (handed over with the readings that raised them).
    pub alerts: AtomicU64,
    /// Nanoseconds spent waiting for the delivery thread (backpressure).
    pub blocked_ns: AtomicU64,
}

impl WorkerStats {
    pub fn add_batch(&self, messages: u64, bytes: u64) {
        self.generated.fetch_add(messages, Relaxed);
        self.bytes.fetch_add(bytes, Relaxed);
    }
}

/// Sums over all workers.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Generated {
    pub messages: u64,
    pub bytes: u64,
    pub lost: u64,
    pub blocked_ns: u64,
    pub alerts: u64,
}

impl Generated {
    pub fn sum(workers: &[std::sync::Arc<WorkerStats>]) -> Self {
        workers.iter().fold(Self::default(), |a, w| Self {
            messages: a.messages + w.generated.load(Relaxed),
            bytes: a.bytes + w.bytes.load(Relaxed),
            lost: a.lost + w.lost.load(Relaxed),
            blocked_ns: a.blocked_ns + w.blocked_ns.load(Relaxed),
            alerts: a.alerts + w.alerts.load(Relaxed),
        })
    }
}

/// Latency histograms record microseconds from 1 µs to 10 minutes at 3 significant digits.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("static histogram bounds are valid")
}

/// Delivery outcomes: counts, ack latency and the distinct errors seen.
#[derive(Debug)]
pub struct Deliveries {
    pub delivered: u64,
    pub failed: u64,
    /// Alerts, counted apart from readings.
    pub alerts_delivered: u64,
    pub alerts_failed: u64,
    pub bytes_delivered: u64,
    /// Whole-run ack latency, µs.
    pub latency: Histogram<u64>,
    /// Ack latency since the last progress line, µs.
    pub interval: Histogram<u64>,
    /// Failure reasons and how often each occurred.
    pub errors: BTreeMap<String, u64>,
    /// Clock for ack latency, read once per few reports.
    pub clock: CoarseClock,
}

/// A clock read once per `EVERY` calls. Delivery reports arrive in bursts of hundreds
/// (one per acknowledged MessageSet), served back to back in well under a microsecond
/// each, so the reuse costs at most a few µs of accuracy on latencies measured in ms,
/// and saves a clock read per message (visible in the delivery thread's profile).
#[derive(Debug, Default)]
pub struct CoarseClock {
    now_us: u64,
    uses: u32,
}

impl CoarseClock {
    const EVERY: u32 = 16;

    /// Microseconds since `epoch`, at most `EVERY - 1` calls old.
    #[inline]
    pub fn now_us(&mut self, epoch: std::time::Instant) -> u64 {
        if self.uses == 0 {
            self.now_us = epoch.elapsed().as_micros() as u64;
        }
        self.uses = (self.uses + 1) % Self::EVERY;
        self.now_us
    }
}

impl Default for Deliveries {
    fn default() -> Self {
        Self {
            delivered: 0,
            failed: 0,
            alerts_delivered: 0,
            alerts_failed: 0,
            bytes_delivered: 0,
            latency: histogram(),
            interval: histogram(),
            errors: BTreeMap::new(),
            clock: CoarseClock::default(),
        }
    }
}

impl Deliveries {
    #[inline]
    pub fn ok(&mut self, bytes: usize, latency_us: Option<u64>) {
        self.delivered += 1;
        self.bytes_delivered += bytes as u64;
        if let Some(us) = latency_us {
            let us = us.max(1);
            self.latency.saturating_record(us);
            self.interval.saturating_record(us);
        }
    }

    /// Counts `n` failed readings with a reason. Reasons are few and distinct, so the
    /// map stays small.
    pub fn failed(&mut self, n: u64, reason: &str) {
        if n == 0 {
            return;
        }
        self.failed += n;
        self.reason(n, reason);
    }

    /// Counts `n` failed alerts; their reasons are listed as `alerts: <reason>`.
    pub fn alerts_failed(&mut self, n: u64, reason: &str) {
        if n == 0 {
            return;
        }
        self.alerts_failed += n;
        self.reason(n, &format!("alerts: {reason}"));
    }

    fn reason(&mut self, n: u64, reason: &str) {
        match self.errors.get_mut(reason) {
            Some(c) => *c += n,
            None => {
                self.errors.insert(reason.to_owned(), n);
            }
        }
    }
}

/// Shared handle to the delivery outcomes.
#[derive(Debug, Default)]
pub struct DeliveryStats(Mutex<Deliveries>);

impl DeliveryStats {
    /// Runs `f` with the outcomes locked. A poisoned lock still holds valid counts.
    pub fn with<R>(&self, f: impl FnOnce(&mut Deliveries) -> R) -> R {
        let mut g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut g)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_counted_by_reason() {
        let s = DeliveryStats::default();
        s.with(|d| {
            d.ok(10, Some(1500));
            d.failed(2, "timed out");
            d.failed(1, "timed out");
            d.failed(0, "nothing");
        });
        s.with(|d| {
            assert_eq!((d.delivered, d.failed, d.bytes_delivered), (1, 3, 10));
            assert_eq!(d.errors.len(), 1);
            assert_eq!(d.errors["timed out"], 3);
            assert_eq!(d.latency.len(), 1);
        });
    }
}
