//! Produces batches to Kafka with one rdkafka `BaseProducer`, owned by the delivery thread.
//!
//! Batches are enqueued by `produce_batch` (one librdkafka call per partition group);
//! librdkafka copies keys and payloads (`RD_KAFKA_MSG_F_COPY`), so a batch can be
//! recycled as soon as it is enqueued. Backpressure (`QueueFull`) is a state, not an
//! error: serve delivery reports and retry from the refused message. Shutdown always
//! flushes, because dropping a producer purges its queue; whatever is still queued
//! after the flush timeout is purged and its delivery reports count it as failed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, DeliveryResult, Producer, ProducerContext, PurgeConfig};

use crate::batch::Batch;
use crate::config::KafkaConfig;
use crate::error::Error;
use crate::settings::ProducerSettings;
use crate::shutdown::Shutdown;
use crate::sink::produce_batch::{partitioner_by_name, BatchProducer, Enqueued};
use crate::sink::Sink;
use crate::stats::DeliveryStats;

/// Our librdkafka defaults that have no setting of their own, tuned for throughput.
/// The others (linger, batch.num.messages, ...) are `settings::ProducerSettings`'s
/// defaults. `kafka.librdkafka` and `-X` override any of them.
pub const PRODUCER_DEFAULTS: &[(&str, &str)] = &[
    ("batch.size", "1000000"),
    // Bound librdkafka's queue to 32 MiB (about 65k readings). The 1 GiB default lets a
    // slow cluster balloon the process, and a full queue only adds latency: against
    // the mock, 128 MiB and 32 MiB give the same throughput but p99 ack latency of
    // ~300 ms and ~120 ms, and 8 MiB starts to starve the broker thread. A full queue
    // pushes back (QueueFull) to the delivery thread and from there to the workers.
    // 32 MiB still holds 60 ms at 500 MB/s, ample for linger plus a real network's RTT.
    ("queue.buffering.max.kbytes", "32768"),
    // Java's default for keyed records: a device lands in the same partition as it would
    // from a Java producer, so pipelines mixing clients agree on placement.
    ("partitioner", "murmur2_random"),
];

/// How long to serve delivery reports when librdkafka's queue is full before retrying.
const QUEUE_FULL_POLL: Duration = Duration::from_micros(200);

/// Keeps the embedded mock cluster alive for as long as the run uses it.
pub struct MockGuard(
    #[allow(dead_code)] MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
);

/// Counts delivery reports and measures ack latency.
pub struct DeliveryContext {
    stats: Arc<DeliveryStats>,
    epoch: Instant,
}

impl DeliveryContext {
    /// A context recording into `stats`, with latencies measured from `epoch`.
    pub fn new(stats: Arc<DeliveryStats>, epoch: Instant) -> Self {
        Self { stats, epoch }
    }
}

impl ClientContext for DeliveryContext {
    fn error(&self, error: KafkaError, reason: &str) {
        log::warn!("librdkafka: {error}: {reason}");
    }
}

/// Delivery opaques carry the enqueue time in µs since `epoch`, shifted left by one; the
/// low bit marks an alert, so reports are told apart without a topic-name comparison.
const ALERT_BIT: usize = 1;

#[inline]
fn opaque(sent_us: usize, alert: bool) -> usize {
    (sent_us << 1) | usize::from(alert)
}

impl ProducerContext for DeliveryContext {
    /// See [`opaque`].
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, tag: usize) {
        let alert = tag & ALERT_BIT != 0;
        match result {
            Ok(_) if alert => self.stats.with(|d| d.alerts_delivered += 1),
            Ok(msg) => {
                let len = msg.payload_len();
                let sent_us = (tag >> 1) as u64;
                self.stats.with(|d| {
                    let now = d.clock.now_us(self.epoch);
                    d.ok(len, Some(now.saturating_sub(sent_us)));
                });
            }
            Err((e, _)) => {
                let reason = e.to_string();
                self.stats.with(|d| {
                    if alert {
                        d.alerts_failed(1, &reason)
                    } else {
                        d.failed(1, &reason)
                    }
                });
            }
        }
    }
}

pub struct KafkaSink {
    // Declared before `producer`: fields drop in order, and topic handles must go first.
    batches: BatchProducer,
    alerts: Option<BatchProducer>,
    producer: BaseProducer<DeliveryContext>,
    epoch: Instant,
    stats: Arc<DeliveryStats>,
    flush_grace: Duration,
}

/// What `open` set up: the sink, a description for the log, and the mock cluster if any.
pub struct Opened {
    pub sink: KafkaSink,
    pub description: String,
    pub mock: Option<MockGuard>,
}

/// Builds the producer config: our defaults, then the configured properties on top.
pub fn client_config(brokers: &str, k: &KafkaConfig) -> ClientConfig {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", brokers);
    for (key, value) in PRODUCER_DEFAULTS {
        cfg.set(*key, *value);
    }
    for (key, value) in ProducerSettings::default().properties() {
        cfg.set(key, value);
    }
    for (key, value) in &k.properties {
        cfg.set(key, value);
    }
    cfg
}

/// Checks the producer properties with librdkafka itself, without creating a client,
/// so a property it rejects is reported with librdkafka's own message.
pub fn check_properties(k: &KafkaConfig) -> Result<(), Error> {
    client_config(k.brokers.as_deref().unwrap_or("127.0.0.1:9092"), k)
        .create_native_config()
        .map(|_| ())
        .map_err(|e| Error::Producer(e.to_string()))
}

/// Connects (or starts the embedded mock), makes sure the topic exists and creates the producer.
pub fn open(
    k: &KafkaConfig,
    stats: Arc<DeliveryStats>,
    flush_grace: Duration,
) -> Result<Opened, Error> {
    let (brokers, mock, description) = match &k.brokers {
        Some(b) => (b.clone(), None, format!("Kafka at {b}")),
        None => {
            let mock = MockCluster::new(1).map_err(|e| Error::MockCluster(e.to_string()))?;
            for topic in k.topics() {
                mock.create_topic(topic, k.partitions, 1)
                    .map_err(|e| Error::TopicCreate {
                        topic: topic.to_owned(),
                        reason: e.to_string(),
                    })?;
            }
            let b = mock.bootstrap_servers();
            let d = format!(
                "embedded librdkafka mock cluster at {b} (no --brokers given; 1 broker, topics '{}' with {} partitions each)",
                k.topics().collect::<Vec<_>>().join("', '"),
                k.partitions
            );
            (b, Some(MockGuard(mock)), d)
        }
    };
    let epoch = Instant::now();
    let config = client_config(&brokers, k);
    let producer: BaseProducer<DeliveryContext> = config
        .create_with_context(DeliveryContext::new(Arc::clone(&stats), epoch))
        .map_err(|e| Error::Producer(e.to_string()))?;

    // Always set (PRODUCER_DEFAULTS or -X); librdkafka validated the name above.
    let name = config.get("partitioner").unwrap_or("consistent_random");
    let partitioner = partitioner_by_name(name).ok_or_else(|| {
        Error::Producer(format!(
            "partitioner '{name}' is not one of librdkafka's built-in partitioners"
        ))
    })?;
    let handle = |topic: &str| -> Result<BatchProducer, Error> {
        let partitions = ensure_topic(&producer, &brokers, k, topic)?;
        BatchProducer::new(&producer, topic, partitioner, partitions).map_err(Error::Producer)
    };
    let batches = handle(&k.topic)?;
    let alerts = k.alerts_topic.as_deref().map(handle).transpose()?;
    Ok(Opened {
        sink: KafkaSink {
            batches,
            alerts,
            producer,
            epoch,
            stats,
            flush_grace,
        },
        description,
        mock,
    })
}

/// Fetches metadata within `connect_timeout` (so an unreachable cluster fails fast and
/// clearly), creates `topic` if it is missing and returns its partition count.
fn ensure_topic(
    producer: &BaseProducer<DeliveryContext>,
    brokers: &str,
    k: &KafkaConfig,
    topic: &str,
) -> Result<i32, Error> {
    let unreachable = |reason: String| Error::Unreachable {
        brokers: brokers.to_owned(),
        timeout: k.connect_timeout,
        reason,
    };
    let md = producer
        .client()
        .fetch_metadata(None, k.connect_timeout)
        .map_err(|e| unreachable(e.to_string()))?;
    if md.brokers().is_empty() {
        return Err(unreachable("the cluster reported no brokers".into()));
    }
    let existing = md
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty());
    if let Some(t) = existing {
        return Ok(t.partitions().len() as i32);
    }
    if !k.create_topic {
        return Err(Error::TopicMissing {
            topic: topic.to_owned(),
            brokers: brokers.to_owned(),
        });
    }
    create_topic(brokers, k, topic)?;
    Ok(k.partitions)
}

fn create_topic(brokers: &str, k: &KafkaConfig, name: &str) -> Result<(), Error> {
    let fail = |reason: String| Error::TopicCreate {
        topic: name.to_owned(),
        reason,
    };
    let admin: AdminClient<DefaultClientContext> = client_config(brokers, k)
        .create()
        .map_err(|e| fail(e.to_string()))?;
    let topic = NewTopic::new(
        name,
        k.partitions,
        TopicReplication::Fixed(k.replication_factor),
    );
    let opts = AdminOptions::new()
        .operation_timeout(Some(k.connect_timeout))
        .request_timeout(Some(k.connect_timeout));
    let results = futures_executor::block_on(admin.create_topics([&topic], &opts))
        .map_err(|e| fail(e.to_string()))?;
    for r in results {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => return Err(fail(code.to_string())),
        }
    }
    log::info!("created topic '{name}' with {} partitions", k.partitions);
    Ok(())
}

impl KafkaSink {
    #[inline]
    fn now_us(&self) -> usize {
        self.epoch.elapsed().as_micros() as usize
    }
}

/// Enqueues everything `batches` has loaded. Backpressure (`QueueFull`) is served by
/// polling and retrying from the refused message; messages that fail for good, or are
/// still refused past the shutdown grace, go to `failed(count, reason)`.
fn enqueue(
    batches: &mut BatchProducer,
    producer: &BaseProducer<DeliveryContext>,
    shutdown: &Shutdown,
    flush_grace: Duration,
    failed: impl Fn(u64, &str),
) {
    let mut start = 0;
    while let Enqueued::QueueFullAt(at) = batches.enqueue(start, |err| {
        failed(1, &format!("not enqueued: {err}"));
    }) {
        start = at;
        // Short: rust-rdkafka's poll(t) always blocks for all of t, and every
        // microsecond in it is one the queue may already have room again.
        producer.poll(QUEUE_FULL_POLL);
        if shutdown.past_grace(flush_grace) {
            failed(
                (batches.len() - at) as u64,
                "not enqueued: producer queue still full at shutdown",
            );
            break;
        }
    }
}

impl Sink for KafkaSink {
    fn send(&mut self, batch: &Batch, shutdown: &Shutdown) {
        let sent_us = self.now_us();
        let stats = &self.stats;
        self.batches.load(batch.readings(), opaque(sent_us, false));
        enqueue(
            &mut self.batches,
            &self.producer,
            shutdown,
            self.flush_grace,
            |n, reason| stats.with(|d| d.failed(n, reason)),
        );
        if let Some(alerts) = &mut self.alerts {
            if !batch.alerts().is_empty() {
                alerts.load(batch.alerts(), opaque(sent_us, true));
                enqueue(
                    alerts,
                    &self.producer,
                    shutdown,
                    self.flush_grace,
                    |n, reason| stats.with(|d| d.alerts_failed(n, reason)),
                );
            }
        }
        self.producer.poll(Duration::ZERO);
    }

    fn poll(&mut self) {
        self.producer.poll(Duration::ZERO);
    }

    fn finish(&mut self, timeout: Duration) {
        if let Err(e) = self.producer.flush(timeout) {
            log::warn!(
                "flush did not complete within {}: {e}; {} messages still queued are purged and counted as failed",
                humantime::format_duration(timeout),
                self.producer.in_flight_count()
            );
            self.producer
                .purge(PurgeConfig::default().queue().inflight());
            // Serve the purge's delivery reports, which record the failures.
            let _ = self.producer.flush(Duration::from_secs(5));
        }
        let left = self.producer.in_flight_count();
        if left > 0 {
            self.stats
                .with(|d| d.failed(left as u64, "no delivery report before exit"));
        }
    }
}
