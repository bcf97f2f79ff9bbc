//! Prometheus metrics: the run's counters, gauges and ack latency, in the text format.
//!
//! Nothing on the data path touches this module. A scrape reads the same per-thread
//! counters the progress lines read (worker atomics, the delivery stats behind their
//! mutex, the reload counters) and brings the registered metrics up to date before
//! encoding them, so the hot loop pays nothing for metrics.
//!
//! Besides the run's own metrics (prefixed `iotblast_`), a scrape carries librdkafka's
//! latest statistics (`observe::librdkafka`) and the standard `process_*` metrics
//! (resident memory, CPU seconds, threads, file descriptors). `docs/metrics.md` lists
//! every one.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};

use hdrhistogram::Histogram as Hdr;
use prometheus::core::Collector;
use prometheus::proto::{Bucket, Histogram, Metric, MetricFamily, MetricType};
use prometheus::{
    Counter, Encoder, Gauge, IntCounter, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::deliver::handoff::Depth;
use crate::deliver::stats::DeliveryStats;
use crate::generate::live::Live;
use crate::generate::stats::{Generated, WorkerStats};

/// Where a scrape reads from.
pub struct Sources {
    pub workers: Vec<Arc<WorkerStats>>,
    pub deliveries: Arc<DeliveryStats>,
    pub live: Arc<Live>,
    /// Each worker's hand-off queue, in worker order.
    pub queues: Vec<Arc<Depth>>,
}

/// What a process is in the fleet: fixed for the run.
#[derive(Debug, Clone, Copy)]
pub struct Identity {
    /// Simulated devices in this process.
    pub devices: u64,
    /// Its share of the fleet, and so of the fleet's rate (`topology::instance_share`).
    pub share: f64,
    /// Generator threads.
    pub workers: usize,
    /// This instance's index and the instance count (`run.instance_index`, `_count`).
    pub instance_index: u64,
    pub instance_count: u64,
}

/// The registered metrics, and the run's sources.
pub struct Metrics {
    registry: Registry,
    /// `process_*`, unprefixed, as every Prometheus client names them.
    process: Registry,
    sources: Sources,
    counters: Counters,
    target_rate: Gauge,
    /// This instance's share of the fleet, and so of the target rate.
    share: f64,
    queued: IntGaugeVec,
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
    batches: IntCounter,
    readings_dropped: IntCounter,
    alerts_dropped: IntCounter,
    retries: IntCounter,
    client_errors: IntCounter,
    throttle_seconds: Counter,
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

impl Counters {
    /// Registers the run's counters in `r`.
    fn register(r: &Registry) -> Self {
        let counter = |name: &str, help: &str| registered(r, IntCounter::new(name, help));
        Counters {
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
            batches: counter(
                "batches_sent_total",
                "Batches of readings handed from the workers to the delivery thread.",
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
            throttle_seconds: registered(
                r,
                Counter::new(
                    "librdkafka_throttle_seconds_total",
                    "Time brokers throttled produce requests (a quota such as producer_byte_rate), summed over responses and connections, from librdkafka's statistics (every second).",
                ),
            ),
            blocked_seconds: registered(
                r,
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
        }
    }
}

/// Registers the gauges fixed for the run: what the process is in the fleet.
fn register_identity(r: &Registry, id: &Identity) {
    let gauge = |name: &str, help: &str, v: u64| {
        registered(r, IntGauge::new(name, help)).set(v as i64);
    };
    gauge("devices", "Simulated devices in this process.", id.devices);
    gauge("workers", "Generator threads.", id.workers as u64);
    gauge(
        "instance_index",
        "This process's slice of the fleet (run.instance_index), 0 to iotblast_instances - 1.",
        id.instance_index,
    );
    gauge(
        "instances",
        "Processes sharing the fleet (run.instance_count).",
        id.instance_count,
    );
    registered(
        r,
        IntGaugeVec::new(
            Opts::new(
                "build_info",
                "Always 1: the iotblast and librdkafka versions.",
            ),
            &["version", "librdkafka"],
        ),
    )
    .with_label_values(&[
        env!("CARGO_PKG_VERSION"),
        &crate::deliver::kafka::librdkafka_version(),
    ])
    .set(1);
}

/// Registers the hand-off queue gauges, the capacities set; returns the depths.
fn register_queues(r: &Registry, queues: &[Arc<Depth>]) -> IntGaugeVec {
    let capacity = registered(
            r,
            IntGaugeVec::new(
                Opts::new(
                    "handoff_queue_capacity_batches",
                    "Bound of each worker's hand-off queue to the delivery thread (device.simulator.queue_buffer_size).",
                ),
                &["worker"],
            ),
        );
    let queued = registered(
            r,
            IntGaugeVec::new(
                Opts::new(
                    "handoff_queue_batches",
                    "Full batches waiting in each worker's hand-off queue; at capacity, the worker blocks (or drops).",
                ),
                &["worker"],
            ),
        );
    for (i, q) in queues.iter().enumerate() {
        capacity
            .with_label_values(&[&i.to_string()])
            .set(q.capacity as i64);
    }
    queued
}

impl Metrics {
    /// Registers every metric.
    pub fn new(sources: Sources, id: Identity) -> Self {
        let r = Registry::new_custom(Some("iotblast".into()), None).expect("valid prefix");
        let counters = Counters::register(&r);
        register_identity(&r, &id);
        let queued = register_queues(&r, &sources.queues);
        let target_rate = registered(
            &r,
            Gauge::new(
                "target_rate",
                "Target readings per second of this instance (its share of run.rate); 0 is unlimited.",
            ),
        );
        let process = Registry::new();
        // Linux only: the collector reads /proc/self; elsewhere it exports nothing.
        let _ = process.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ));
        Self {
            registry: r,
            process,
            sources,
            counters,
            target_rate,
            share: id.share,
            queued,
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
        advance(&c.batches, g.batches);
        for (i, q) in self.sources.queues.iter().enumerate() {
            self.queued
                .with_label_values(&[&i.to_string()])
                .set(q.queued() as i64);
        }
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
            let throttle = d.throttle_ms as f64 / 1e3;
            c.throttle_seconds
                .inc_by((throttle - c.throttle_seconds.get()).max(0.0));
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
        self.target_rate
            .set(live.get().0.rate.map_or(0.0, |r| r * self.share));

        let mut families = self.registry.gather();
        families.extend(latency);
        let clients = self.sources.deliveries.client_statistics();
        families.extend(crate::observe::librdkafka::families(&clients));
        families.extend(self.process.gather());
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
                queues: vec![],
            },
            Identity {
                devices: 1000,
                share: 1.0,
                workers: 1,
                instance_index: 1,
                instance_count: 3,
            },
        );
        worker.add_batch(10, 3, 5000);
        deliveries.with(|d| {
            for _ in 0..7 {
                d.ok(500, Some((2000, 2000)));
            }
            d.failed(1, "timed out");
            d.throttled(crate::deliver::stats::Throttle {
                total_ms: 1500,
                max_ms: 700,
            });
        });
        let text = m.render();
        for line in [
            "iotblast_readings_sent_total 10",
            "iotblast_readings_delivered_total 7",
            "iotblast_readings_failed_total 1",
            "iotblast_readings_in_doubt_total 0",
            "iotblast_alerts_sent_total 3",
            "iotblast_bytes_delivered_total 3500",
            "iotblast_librdkafka_throttle_seconds_total 1.5",
            "iotblast_devices 1000",
            "iotblast_batches_sent_total 1",
            "iotblast_instance_index 1",
            "iotblast_instances 3",
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
