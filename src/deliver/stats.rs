//! Delivery outcomes: counts, ack latency and failure reasons, recorded by the delivery
//! thread (the only thread that runs librdkafka's callbacks) behind a mutex that the
//! reporter and the metrics endpoint take once per interval or scrape.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use hdrhistogram::Histogram;

/// Latency histograms record microseconds from 1 µs to 10 minutes at 3 significant
/// digits: the run's, and the ones `report merge` and `report plot` add them into.
pub fn histogram() -> Histogram<u64> {
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
    /// Messages whose fate the broker knows and the client does not: in flight when
    /// they were purged or timed out, or with no delivery report at exit.
    pub in_doubt: u64,
    pub alerts_in_doubt: u64,
    pub bytes_delivered: u64,
    /// Whole-run latency from when each reading was due to its ack, µs.
    pub latency: Histogram<u64>,
    /// That latency since the last progress line, µs.
    pub interval: Histogram<u64>,
    /// Whole-run ack latency, from the hand-off to librdkafka to the ack, µs.
    pub ack_latency: Histogram<u64>,
    /// Ack latency since the last progress line, µs.
    pub ack_interval: Histogram<u64>,
    /// Failure reasons and how often each occurred.
    pub errors: BTreeMap<String, u64>,
    /// Requests librdkafka retried (the sum of its brokers' `txretries`), as of its
    /// last statistics report (`statistics.interval.ms`, 1 s by default).
    pub retries: u64,
    /// Errors librdkafka reported through its error callback (connection losses,
    /// authentication failures, all brokers down), each also logged.
    pub client_errors: u64,
    /// Time the brokers told the client to hold back (the `throttle_time_ms` of their
    /// responses: a quota such as `producer_byte_rate`), summed over every response
    /// of every connection, ms. Connections are throttled side by side, so the sum
    /// can exceed the run's wall time.
    pub throttle_ms: u64,
    /// The longest single throttle a broker asked for, ms.
    pub throttle_max_ms: u64,
    /// Partitions whose in-sync replicas are below `min.insync.replicas` (`kafka::isr`).
    pub under_min_isr: UnderMinIsr,
}

/// What `kafka::isr` last saw of partitions with too few in-sync replicas for
/// `acks=all`: their leaders refuse writes with NOT_ENOUGH_REPLICAS.
#[derive(Debug, Default, Clone)]
pub struct UnderMinIsr {
    /// (alerts topic or not, partition) below `min.insync.replicas` now.
    pub partitions: BTreeSet<(bool, i32)>,
    /// How long any partition was below, s.
    pub seconds: f64,
}

impl Default for Deliveries {
    fn default() -> Self {
        Self {
            delivered: 0,
            failed: 0,
            alerts_delivered: 0,
            alerts_failed: 0,
            in_doubt: 0,
            alerts_in_doubt: 0,
            bytes_delivered: 0,
            latency: histogram(),
            interval: histogram(),
            ack_latency: histogram(),
            ack_interval: histogram(),
            errors: BTreeMap::new(),
            retries: 0,
            client_errors: 0,
            throttle_ms: 0,
            throttle_max_ms: 0,
            under_min_isr: UnderMinIsr::default(),
        }
    }
}

impl Deliveries {
    #[inline]
    /// Counts a delivered reading of `bytes`, with its `(latency, ack latency)` in µs
    /// when known.
    pub fn ok(&mut self, bytes: usize, latencies_us: Option<(u64, u64)>) {
        self.delivered += 1;
        self.bytes_delivered += bytes as u64;
        if let Some((latency, ack)) = latencies_us {
            self.latency.saturating_record(latency.max(1));
            self.interval.saturating_record(latency.max(1));
            self.ack_latency.saturating_record(ack.max(1));
            self.ack_interval.saturating_record(ack.max(1));
        }
    }

    /// Starts the interval histograms afresh (after a progress line).
    pub fn reset_interval(&mut self) {
        self.interval.reset();
        self.ack_interval.reset();
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

    /// Counts `n` readings, or alerts, whose fate is unknown; their reasons are listed as
    /// `in doubt: <reason>`.
    pub fn in_doubt(&mut self, alert: bool, n: u64, reason: &str) {
        if n == 0 {
            return;
        }
        if alert {
            self.alerts_in_doubt += n;
            self.reason(n, &format!("alerts in doubt: {reason}"));
        } else {
            self.in_doubt += n;
            self.reason(n, &format!("in doubt: {reason}"));
        }
    }

    /// Readings with an outcome: delivered, failed or in doubt.
    pub fn readings_settled(&self) -> u64 {
        self.delivered + self.failed + self.in_doubt
    }

    /// Alerts with an outcome.
    pub fn alerts_settled(&self) -> u64 {
        self.alerts_delivered + self.alerts_failed + self.alerts_in_doubt
    }

    /// Adds the throttling in one statistics report of one producer.
    pub fn throttled(&mut self, t: Throttle) {
        self.throttle_ms += t.total_ms;
        self.throttle_max_ms = self.throttle_max_ms.max(t.max_ms);
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

/// The throttling in one librdkafka statistics report, over all its brokers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Throttle {
    pub total_ms: u64,
    pub max_ms: u64,
}

impl Throttle {
    /// From a report's per-broker `throttle` windows. librdkafka rolls each window
    /// over when it emits a report, so a window holds only the responses since the
    /// last report: summing reports counts every response once.
    pub fn of(s: &rdkafka::Statistics) -> Self {
        s.brokers
            .values()
            .filter_map(|b| b.throttle.as_ref().filter(|w| w.cnt > 0))
            .fold(Self::default(), |t, w| Self {
                total_ms: t.total_ms + w.sum.max(0) as u64,
                max_ms: t.max_ms.max(w.max.max(0) as u64),
            })
    }
}

/// Shared handle to the delivery outcomes, and librdkafka's latest statistics.
#[derive(Debug, Default)]
pub struct DeliveryStats {
    outcomes: Mutex<Deliveries>,
    /// The last report of each producer's librdkafka statistics callback (every
    /// `statistics.interval.ms`), by producer index, for the metrics endpoint. Apart from the outcomes so
    /// that a scrape reading it never holds up the delivery callbacks.
    client: Mutex<Vec<Option<Arc<rdkafka::Statistics>>>>,
}

impl DeliveryStats {
    /// Runs `f` with the outcomes locked. A poisoned lock still holds valid counts.
    pub fn with<R>(&self, f: impl FnOnce(&mut Deliveries) -> R) -> R {
        let mut g = self.outcomes.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut g)
    }

    /// Keeps producer `producer`'s latest librdkafka statistics; returns the requests
    /// all producers have retried (their brokers' `txretries`).
    pub fn set_client_statistics(&self, producer: usize, s: rdkafka::Statistics) -> u64 {
        let mut all = self.client.lock().unwrap_or_else(|p| p.into_inner());
        if all.len() <= producer {
            all.resize(producer + 1, None);
        }
        all[producer] = Some(Arc::new(s));
        // Each producer's counts only grow, so their sum does too.
        all.iter()
            .flatten()
            .map(|s| s.brokers.values().map(|b| b.txretries).sum::<u64>())
            .sum()
    }

    /// librdkafka's latest statistics of each producer that has reported any, with the
    /// producer's index.
    pub fn client_statistics(&self) -> Vec<(usize, Arc<rdkafka::Statistics>)> {
        let all = self.client.lock().unwrap_or_else(|p| p.into_inner());
        all.iter()
            .enumerate()
            .filter_map(|(i, s)| s.clone().map(|s| (i, s)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_counted_by_reason() {
        let s = DeliveryStats::default();
        s.with(|d| {
            d.ok(10, Some((1500, 1000)));
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
