//! Prometheus metrics: the run's counters, gauges and ack latency, in the text format.
//!
//! Nothing on the data path touches this module. A scrape reads the same per-thread
//! counters the progress lines read (worker atomics, the delivery stats behind their
//! mutex, the reload counters) and brings the registered metrics up to date before
//! encoding them, so the hot loop pays nothing for metrics.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};

use hdrhistogram::Histogram as Hdr;
use prometheus::core::Collector;
use prometheus::proto::{Bucket, Histogram, Metric, MetricFamily, MetricType};
use prometheus::{Counter, Encoder, Gauge, IntCounter, IntGauge, Registry, TextEncoder};

use crate::deliver::stats::DeliveryStats;
use crate::generate::live::Live;
use crate::generate::stats::{Generated, WorkerStats};

/// Where a scrape reads from.
pub struct Sources {
    pub workers: Vec<Arc<WorkerStats>>,
    pub deliveries: Arc<DeliveryStats>,
    pub live: Arc<Live>,
}

/// The registered metrics, and the run's sources.
pub struct Metrics {
    registry: Registry,
    sources: Sources,
    counters: Counters,
    target_rate: Gauge,
    /// Serialises scrapes: counters advance by the difference since the last one.
    scrape: Mutex<()>,
}

struct Counters {
    readings_sent: IntCounter,
    readings_delivered: IntCounter,
    readings_failed: IntCounter,
    readings_in_doubt: IntCounter,
    alerts_sent: IntCounter,
    alerts_delivered: IntCounter,
    alerts_failed: IntCounter,
    alerts_in_doubt: IntCounter,
    bytes_delivered: IntCounter,
    readings_dropped: IntCounter,
    alerts_dropped: IntCounter,
    retries: IntCounter,
    client_errors: IntCounter,
    blocked_seconds: Counter,
    reloads: IntCounter,
    reload_failures: IntCounter,
}

/// Upper bounds (seconds) of the exported ack-latency histogram's buckets.
const LATENCY_BUCKETS: [f64; 16] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

/// A run's latency (µs in an HDR histogram) as a Prometheus histogram, so that
/// `histogram_quantile` works and instances aggregate.
fn latency_family(h: &Hdr<u64>, name: &str, help: &str) -> MetricFamily {
    let buckets = LATENCY_BUCKETS
        .iter()
        .map(|&le| {
            let mut b = Bucket::default();
            b.set_upper_bound(le);
            b.set_cumulative_count(h.count_between(0, (le * 1e6) as u64));
            b
        })
        .collect();
    let mut hist = Histogram::default();
    hist.set_bucket(buckets);
    hist.set_sample_count(h.len());
    hist.set_sample_sum(h.mean() * h.len() as f64 / 1e6);
    let mut m = Metric::default();
    m.set_histogram(hist);
    let mut f = MetricFamily::default();
    f.set_name(name.into());
    f.set_help(help.into());
    f.set_field_type(MetricType::HISTOGRAM);
    f.set_metric(vec![m]);
    f
}

/// Registers `metric`, built from static names that are known to be valid, and returns it.
fn registered<M: Collector + Clone + 'static>(r: &Registry, metric: prometheus::Result<M>) -> M {
    let m = metric.expect("valid static metric");
    r.register(Box::new(m.clone()))
        .expect("metric names are unique");
    m
}

impl Metrics {
    /// Registers every metric; `devices` and `workers` are fixed for the run.
    pub fn new(sources: Sources, devices: u64, workers: usize) -> Self {
        let r = Registry::new_custom(Some("iotblast".into()), None).expect("valid prefix");
        let counter = |name: &str, help: &str| registered(&r, IntCounter::new(name, help));
        let counters = Counters {
            readings_sent: counter(
                "readings_sent_total",
                "Readings generated and handed to the sink.",
            ),
            readings_delivered: counter(
                "readings_delivered_total",
                "Readings the sink confirmed (Kafka acks).",
            ),
            readings_failed: counter(
                "readings_failed_total",
                "Readings that failed, for any reason.",
            ),
            alerts_sent: counter(
                "alerts_sent_total",
                "Alerts (sensor status transitions) handed to the sink.",
            ),
            readings_in_doubt: counter(
                "readings_in_doubt_total",
                "Readings in flight when purged or timed out: maybe in the topic.",
            ),
            alerts_delivered: counter("alerts_delivered_total", "Alerts the sink confirmed."),
            alerts_failed: counter("alerts_failed_total", "Alerts that failed."),
            alerts_in_doubt: counter(
                "alerts_in_doubt_total",
                "Alerts in flight when purged or timed out: maybe in the topic.",
            ),
            bytes_delivered: counter(
                "bytes_delivered_total",
                "Payload bytes of delivered readings.",
            ),
            readings_dropped: counter(
                "readings_dropped_total",
                "Readings dropped at generation (--on-backpressure drop); never sent.",
            ),
            alerts_dropped: counter(
                "alerts_dropped_total",
                "Alerts dropped at generation with their readings; never sent.",
            ),
            retries: counter(
                "librdkafka_retries_total",
                "Produce requests librdkafka retried, from its statistics (every second).",
            ),
            client_errors: counter(
                "librdkafka_errors_total",
                "Errors librdkafka reported: lost connections, brokers down, failed authentication.",
            ),
            blocked_seconds: registered(
                &r,
                Counter::new(
                    "worker_blocked_seconds_total",
                    "Time workers waited for the delivery thread, summed over workers.",
                ),
            ),
            reloads: counter("config_reloads_total", "Configuration reloads applied."),
            reload_failures: counter(
                "config_reload_failures_total",
                "Configuration reloads refused: an invalid file, or a change needing a restart.",
            ),
        };
        registered(
            &r,
            IntGauge::new("devices", "Simulated devices in this process."),
        )
        .set(devices as i64);
        registered(&r, IntGauge::new("workers", "Generator threads.")).set(workers as i64);
        let target_rate = registered(
            &r,
            Gauge::new("target_rate", "Target readings per second; 0 is unlimited."),
        );
        Self {
            registry: r,
            sources,
            counters,
            target_rate,
            scrape: Mutex::new(()),
        }
    }

    /// Brings every metric up to date and renders them in the Prometheus text format.
    pub fn render(&self) -> String {
        let _one_at_a_time = self.scrape.lock().unwrap_or_else(|p| p.into_inner());
        let g = Generated::sum(&self.sources.workers);
        let c = &self.counters;
        let advance = |counter: &IntCounter, total: u64| {
            counter.inc_by(total.saturating_sub(counter.get()));
        };
        advance(&c.readings_sent, g.messages);
        advance(&c.alerts_sent, g.alerts);
        advance(&c.readings_dropped, g.dropped);
        advance(&c.alerts_dropped, g.dropped_alerts);
        let blocked = g.blocked_ns as f64 / 1e9;
        c.blocked_seconds
            .inc_by((blocked - c.blocked_seconds.get()).max(0.0));
        let latency = self.sources.deliveries.with(|d| {
            advance(&c.readings_delivered, d.delivered);
            advance(&c.readings_failed, d.failed + g.lost);
            advance(&c.alerts_delivered, d.alerts_delivered);
            advance(&c.alerts_failed, d.alerts_failed + g.lost_alerts);
            advance(&c.readings_in_doubt, d.in_doubt);
            advance(&c.alerts_in_doubt, d.alerts_in_doubt);
            advance(&c.bytes_delivered, d.bytes_delivered);
            advance(&c.retries, d.retries);
            advance(&c.client_errors, d.client_errors);
            [
                latency_family(
                    &d.latency,
                    "iotblast_latency_seconds",
                    "Latency of readings, from when each was due (its slot on the rate schedule, or when made) to its ack.",
                ),
                latency_family(
                    &d.ack_latency,
                    "iotblast_ack_latency_seconds",
                    "Ack latency of readings, from hand-off to librdkafka to the broker's acknowledgement.",
                ),
            ]
        });
        let live = &self.sources.live;
        advance(&c.reloads, live.reloads.load(Relaxed));
        advance(&c.reload_failures, live.reload_failures.load(Relaxed));
        self.target_rate.set(live.get().0.rate.unwrap_or(0.0));

        let mut families = self.registry.gather();
        families.extend(latency);
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&families, &mut out)
            .expect("the text encoder writes to memory");
        String::from_utf8(out).expect("the text format is UTF-8")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::live::LiveSettings;
    use crate::model::FleetSpec;

    #[test]
    fn a_scrape_reports_the_counters_as_they_are() {
        let worker = Arc::new(WorkerStats::default());
        let deliveries = Arc::new(DeliveryStats::default());
        let live = Arc::new(Live::new(LiveSettings {
            rate: Some(500.0),
            fleet: FleetSpec::default(),
        }));
        let m = Metrics::new(
            Sources {
                workers: vec![Arc::clone(&worker)],
                deliveries: Arc::clone(&deliveries),
                live: Arc::clone(&live),
            },
            1000,
            1,
        );
        worker.add_batch(10, 3, 5000);
        deliveries.with(|d| {
            for _ in 0..7 {
                d.ok(500, Some((2000, 2000)));
            }
            d.failed(1, "timed out");
        });
        let text = m.render();
        for line in [
            "iotblast_readings_sent_total 10",
            "iotblast_readings_delivered_total 7",
            "iotblast_readings_failed_total 1",
            "iotblast_readings_in_doubt_total 0",
            "iotblast_alerts_sent_total 3",
            "iotblast_bytes_delivered_total 3500",
            "iotblast_devices 1000",
            "iotblast_target_rate 500",
            "iotblast_ack_latency_seconds_bucket{le=\"0.001\"} 0",
            "iotblast_ack_latency_seconds_bucket{le=\"0.0025\"} 7",
            "iotblast_ack_latency_seconds_count 7",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
        // Counters follow the sources on the next scrape.
        worker.add_batch(5, 0, 100);
        assert!(m
            .render()
            .lines()
            .any(|l| l == "iotblast_readings_sent_total 15"));
    }
}
