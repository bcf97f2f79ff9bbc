//! Produces batches to Kafka with one rdkafka `BaseProducer`, owned by the delivery thread.
//! `settings` declares the `kafka:` section of the configuration.
//!
//! Batches are enqueued by `produce_batch` (one librdkafka call per partition group);
//! librdkafka copies keys and payloads (`RD_KAFKA_MSG_F_COPY`), so a batch can be
//! recycled as soon as it is enqueued. Backpressure (`QueueFull`) is a state, not an
//! error: serve delivery reports and retry from the refused message. Shutdown always
//! flushes, because dropping a producer purges its queue; whatever is still queued
//! after the flush timeout is purged and its delivery reports count it as failed.

pub mod produce_batch;
pub mod settings;

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, DeliveryResult, Producer, ProducerContext, PurgeConfig};

use crate::deliver::batch::{clock_us, Batch};
use crate::deliver::kafka::produce_batch::{partitioner_by_name, BatchProducer, Enqueued};
use crate::deliver::kafka::settings::KafkaSettings;
use crate::deliver::stats::DeliveryStats;
use crate::deliver::Sink;
use crate::error::{Error, TopicCreate, Unreachable};
use crate::shutdown::Shutdown;

/// How long to serve delivery reports when librdkafka's queue is full before retrying.
const QUEUE_FULL_POLL: Duration = Duration::from_micros(200);

/// Keeps the embedded mock cluster alive for as long as the run uses it.
pub struct MockGuard(
    #[allow(dead_code)] MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
);

/// Counts delivery reports and measures ack latency.
pub struct DeliveryContext {
    stats: Arc<DeliveryStats>,
    errors: ClientErrors,
}

impl DeliveryContext {
    /// A context recording into `stats`.
    pub fn new(stats: Arc<DeliveryStats>) -> Self {
        Self {
            stats,
            errors: ClientErrors::default(),
        }
    }
}

impl ClientContext for DeliveryContext {
    fn error(&self, error: KafkaError, reason: &str) {
        if self.errors.record(&error, reason) {
            self.stats.with(|d| d.client_errors += 1);
        }
    }

    fn stats(&self, statistics: rdkafka::Statistics) {
        let retries = statistics
            .brokers
            .values()
            .map(|b| b.txretries)
            .sum::<u64>();
        self.stats.with(|d| d.retries = d.retries.max(retries));
        self.stats.set_client_statistics(statistics);
    }
}

/// The librdkafka version the binary runs with, e.g. `2.12.1` (`--version`,
/// `iotblast_build_info`).
pub fn librdkafka_version() -> String {
    rdkafka::util::get_rdkafka_version().1
}

/// How long to serve librdkafka's queued error events after a failed start-up request.
pub const ERROR_EVENTS: Duration = Duration::from_millis(100);

/// What librdkafka's error callback reported, kept for start-up: a failed
/// authentication (librdkafka retries it forever, so without this a wrong password
/// would look like an unreachable cluster), or else the last error, which says why a
/// cluster is unreachable (a name that does not resolve, a refused connection).
#[derive(Debug, Clone, Default)]
pub struct ClientErrors(Arc<std::sync::Mutex<Reported>>);

#[derive(Debug, Default)]
struct Reported {
    authentication: Option<String>,
    last: Option<String>,
    /// The previous call, to drop the second of a pair (see `record`).
    previous: Option<(String, Instant)>,
}

/// Two identical reports closer than this are one event reported twice.
const SAME_EVENT: Duration = Duration::from_millis(5);

impl ClientErrors {
    /// Logs a librdkafka error and remembers it; false if it was the same event again.
    /// rust-rdkafka 0.39's `BaseProducer::poll` hands each error event to the context
    /// twice (once in `Client::poll_event`, once itself), so the second is dropped
    /// rather than logged and counted twice.
    pub fn record(&self, error: &KafkaError, reason: &str) -> bool {
        let mut r = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let text = format!("{error}: {reason}");
        if r.previous
            .as_ref()
            .is_some_and(|(t, at)| *t == text && at.elapsed() < SAME_EVENT)
        {
            return false;
        }
        log::warn!("librdkafka: {text}");
        r.previous = Some((text, Instant::now()));
        let auth = matches!(
            error.rdkafka_error_code(),
            Some(RDKafkaErrorCode::Authentication | RDKafkaErrorCode::SaslAuthenticationFailed)
        );
        if auth {
            r.authentication = Some(reason.to_owned());
        }
        // "All brokers are down" follows every specific failure and says less.
        if error.rdkafka_error_code() != Some(RDKafkaErrorCode::AllBrokersDown) {
            r.last = Some(reason.to_owned());
        }
        true
    }

    /// The error for brokers that did not answer in `timeout`: an authentication
    /// failure if one was reported, else unreachable because of `source`.
    pub fn unreachable(&self, brokers: &str, timeout: Duration, source: Unreachable) -> Error {
        let r = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match (&r.authentication, &r.last) {
            (Some(reason), _) => Error::Authentication {
                brokers: brokers.to_owned(),
                reason: reason.clone(),
            },
            (None, last) => Error::Unreachable {
                brokers: brokers.to_owned(),
                timeout,
                source: last.clone().map_or(source, Unreachable::Reported),
            },
        }
    }
}

/// A delivery opaque: bit 0 marks an alert (so reports are told apart without a
/// topic-name comparison); bits 1..=32 hold when the message was due (`clock_us`);
/// bits 33.. how long after that it was handed to librdkafka, in µs (saturating at
/// about 35 minutes, beyond the latency histograms' 10-minute range).
const ALERT_BIT: usize = 1;

#[inline]
fn opaque(alert: bool, due: u32, sent: u32) -> usize {
    let waited = sent.wrapping_sub(due).min(i32::MAX as u32) as usize;
    (waited << 33) | ((due as usize) << 1) | usize::from(alert)
}

/// `(alert, due, waited)` from an opaque.
#[inline]
fn unpack(tag: usize) -> (bool, u32, u64) {
    (tag & ALERT_BIT != 0, (tag >> 1) as u32, (tag >> 33) as u64)
}

impl ProducerContext for DeliveryContext {
    /// See [`opaque`].
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, tag: usize) {
        let (alert, due, waited) = unpack(tag);
        match result {
            Ok(_) if alert => self.stats.with(|d| d.alerts_delivered += 1),
            Ok(msg) => {
                let len = msg.payload_len();
                // Read for every report (a vDSO call, ~25 ns): a clock shared across
                // reports would report near-zero latency at low rates, where reports
                // arrive one by one, far apart.
                let latency = clock_us(Instant::now()).wrapping_sub(due) as u64;
                let ack = latency.saturating_sub(waited);
                self.stats.with(|d| d.ok(len, Some((latency, ack))));
            }
            Err((e, msg)) => {
                let reason = e.to_string();
                // librdkafka knows whether the message may have reached the broker (it was
                // in flight when it timed out or was purged): such a message is in
                // doubt, not failed, since it may be in the topic.
                // SAFETY: `msg` is a valid message for the duration of this callback.
                let status = unsafe { rdkafka::bindings::rd_kafka_message_status(msg.ptr()) };
                let possibly = status
                    == rdkafka::bindings::rd_kafka_msg_status_t::RD_KAFKA_MSG_STATUS_POSSIBLY_PERSISTED;
                self.stats.with(|d| match (possibly, alert) {
                    (true, _) => d.in_doubt(alert, 1, &reason),
                    (false, true) => d.alerts_failed(1, &reason),
                    (false, false) => d.failed(1, &reason),
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
    stats: Arc<DeliveryStats>,
    flush_grace: Duration,
    /// Readings and alerts handed to this sink, to find those without a delivery report.
    handed: (u64, u64),
}

/// What `open` set up: the sink, a description for the log, and the mock cluster if any.
pub struct Opened {
    pub sink: KafkaSink,
    pub description: String,
    pub mock: Option<MockGuard>,
}

/// librdkafka's default `message.max.bytes`.
const MESSAGE_MAX_BYTES: usize = 1_000_000;

/// Connects (or starts the embedded mock), makes sure the topic exists and creates the
/// producer. `largest` bounds the size of one message (payload and key), which must fit
/// librdkafka's `message.max.bytes`.
pub fn open(k: &KafkaSettings, stats: Arc<DeliveryStats>, largest: usize) -> Result<Opened, Error> {
    let (brokers, mock, description) = match k.bootstrap() {
        Some(b) => (b.clone(), None, format!("Kafka at {b}")),
        None => {
            let n = k.mock.brokers as i32;
            let mock = MockCluster::new(n).map_err(Error::MockCluster)?;
            if !k.mock.rtt.0.is_zero() {
                for id in 1..=n {
                    mock.broker_round_trip_time(id, k.mock.rtt.0)
                        .map_err(Error::MockCluster)?;
                }
            }
            for topic in k.topics() {
                mock.create_topic(topic, k.partitions, 1)
                    .map_err(|e| Error::TopicCreate {
                        topic: topic.to_owned(),
                        source: TopicCreate::Client(e),
                    })?;
            }
            let b = mock.bootstrap_servers();
            let d = format!(
                "embedded librdkafka mock cluster at {b} (no --brokers given; {n} broker(s), RTT {}, topics '{}' with {} partitions each)",
                k.mock.rtt,
                k.topics().collect::<Vec<_>>().join("', '"),
                k.partitions
            );
            (b, Some(MockGuard(mock)), d)
        }
    };
    let config = k.client_config(&brokers)?;
    let limit = config
        .get("message.max.bytes")
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(MESSAGE_MAX_BYTES);
    if largest > limit {
        // Found before the first message, not as a failed delivery of the odd long one.
        return Err(crate::error::ConfigError::new(
            "message.max.bytes (-X or kafka.librdkafka)",
            format!(
                "is {limit} bytes, but a message can be up to {largest} bytes with these labels; raise it or shorten device.simulator's labels"
            ),
        )
        .into());
    }
    let producer: BaseProducer<DeliveryContext> = config
        .create_with_context(DeliveryContext::new(Arc::clone(&stats)))
        .map_err(Error::Producer)?;

    // Always set (PRODUCER_DEFAULTS or -X); librdkafka validated the name above.
    let name = config.get("partitioner").unwrap_or("consistent_random");
    let partitioner =
        partitioner_by_name(name).ok_or_else(|| Error::Partitioner(name.to_owned()))?;
    let handle = |topic: &str| -> Result<BatchProducer, Error> {
        let partitions = ensure_topic(&producer, &config, &brokers, k, topic)?;
        BatchProducer::new(&producer, topic, partitioner, partitions)
    };
    let batches = handle(&k.topics.device_data)?;
    let alerts = k.alerts_topic().map(handle).transpose()?;
    Ok(Opened {
        sink: KafkaSink {
            batches,
            alerts,
            producer,
            stats,
            flush_grace: k.flush_timeout.0,
            handed: (0, 0),
        },
        description,
        mock,
    })
}

/// Fetches metadata within `connect_timeout` (so an unreachable cluster fails fast and
/// clearly), creates `topic` if it is missing and returns its partition count.
fn ensure_topic(
    producer: &BaseProducer<DeliveryContext>,
    config: &rdkafka::ClientConfig,
    brokers: &str,
    k: &KafkaSettings,
    topic: &str,
) -> Result<i32, Error> {
    let errors = &producer.context().errors;
    let unreachable = |source| errors.unreachable(brokers, k.connect_timeout.0, source);
    // One request with the whole timeout: a retry loop of shorter ones would never
    // succeed against a cluster whose round trip is longer than the slice.
    let md = producer
        .client()
        .fetch_metadata(None, k.connect_timeout.0)
        .map_err(|e| {
            // librdkafka queues its error events until polled: serve them (poll serves
            // events until its timeout), so the error says why (a failed
            // authentication, a name that does not resolve).
            producer.poll(ERROR_EVENTS);
            unreachable(Unreachable::Metadata(e))
        })?;
    if md.brokers().is_empty() {
        producer.poll(ERROR_EVENTS);
        return Err(unreachable(Unreachable::NoBrokers));
    }
    let existing = md
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty());
    if let Some(t) = existing {
        let n = t.partitions().len() as i32;
        if n != k.partitions {
            // Warned, not refused: kafka.partitions only sizes a topic iotblast creates,
            // and a run against an existing topic is a normal way to benchmark it.
            log::warn!(
                "topic '{topic}' already exists with {n} partitions, not kafka.partitions = {}; iotblast does not change an existing topic, so readings go to its {n} partitions",
                k.partitions
            );
        }
        return Ok(n);
    }
    if !k.create_topic {
        return Err(Error::TopicMissing {
            topic: topic.to_owned(),
            brokers: brokers.to_owned(),
        });
    }
    create_topic(config, k, topic)?;
    Ok(k.partitions)
}

/// Creates topic `name` with an admin client on the producer's own `config`.
fn create_topic(
    config: &rdkafka::ClientConfig,
    k: &KafkaSettings,
    name: &str,
) -> Result<(), Error> {
    let fail = |source: TopicCreate| Error::TopicCreate {
        topic: name.to_owned(),
        source,
    };
    let admin: AdminClient<DefaultClientContext> =
        config.create().map_err(|e| fail(TopicCreate::Client(e)))?;
    let topic = NewTopic::new(
        name,
        k.partitions,
        TopicReplication::Fixed(k.replication_factor),
    );
    let opts = AdminOptions::new()
        .operation_timeout(Some(k.connect_timeout.0))
        .request_timeout(Some(k.connect_timeout.0));
    let results = futures_executor::block_on(admin.create_topics([&topic], &opts))
        .map_err(|e| fail(TopicCreate::Client(e)))?;
    for r in results {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => return Err(fail(TopicCreate::Broker(code))),
        }
    }
    log::info!("created topic '{name}' with {} partitions", k.partitions);
    Ok(())
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

/// How long to serve the delivery reports of a purge at exit.
const PURGE_REPORTS: Duration = Duration::from_secs(1);

impl KafkaSink {
    /// Whether every reading and alert handed over has an outcome.
    fn all_settled(&self) -> bool {
        let (readings, alerts) = self.handed;
        self.stats
            .with(|d| d.readings_settled() >= readings && d.alerts_settled() >= alerts)
    }
}

impl Sink for KafkaSink {
    fn send(&mut self, batch: &Batch, shutdown: &Shutdown) {
        let sent = clock_us(Instant::now());
        self.handed.0 += batch.len() as u64;
        let stats = &self.stats;
        self.batches
            .load(batch.readings(), |due| opaque(false, due, sent));
        enqueue(
            &mut self.batches,
            &self.producer,
            shutdown,
            self.flush_grace,
            |n, reason| stats.with(|d| d.failed(n, reason)),
        );
        if let Some(alerts) = &mut self.alerts {
            if !batch.alerts().is_empty() {
                self.handed.1 += batch.alerts().len() as u64;
                alerts.load(batch.alerts(), |due| opaque(true, due, sent));
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
                "flush did not complete within {}: {e}; what is still queued is purged (failed) and what is in flight is in doubt",
                humantime::format_duration(timeout),
            );
            self.producer
                .purge(PurgeConfig::default().queue().inflight());
            // Serve the purge's delivery reports, which record each message's outcome.
            // They are local and come at once; `flush` would also wait for requests
            // still out to a broker that may never answer.
            let deadline = Instant::now() + PURGE_REPORTS;
            while !self.all_settled() && Instant::now() < deadline {
                self.producer.poll(Duration::from_millis(10));
            }
        }
        // Only messages count: librdkafka's own queue length also holds other events.
        let (readings, alerts) = self.handed;
        self.stats.with(|d| {
            let reason = "no delivery report before exit";
            d.in_doubt(false, readings.saturating_sub(d.readings_settled()), reason);
            d.in_doubt(true, alerts.saturating_sub(d.alerts_settled()), reason);
        });
    }
}
