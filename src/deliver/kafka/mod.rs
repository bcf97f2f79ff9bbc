//! Produces batches to Kafka with one rdkafka `BaseProducer`, owned by the delivery thread.
//! `settings` declares the `kafka:` section of the configuration; `mock` starts the
//! embedded mock cluster when no brokers are given; `diagnose` says which setting to
//! change when the brokers refuse the client; `authorized` asks whether this
//! principal may write the topic before anything is produced.
//!
//! Batches are enqueued by `produce_batch` (one librdkafka call per partition group)
//! without copying payloads: librdkafka points into the batch, which `reports` keeps
//! until every message of it has a delivery report, then returns to its worker.
//! `reports` also serves librdkafka's event queue. Backpressure (`QueueFull`) is a
//! state, not an error: serve delivery reports and retry from the refused message.
//! Shutdown always flushes, because dropping a producer purges its queue; whatever is
//! still queued after the flush timeout is purged and its delivery reports count it as
//! failed.

pub mod authorized;
pub mod diagnose;
pub mod isr;
pub mod mock;
pub mod produce_batch;
pub mod reports;
pub mod settings;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, DeliveryResult, Producer, ProducerContext, PurgeConfig};

use crate::deliver::batch::Batch;
use crate::deliver::kafka::diagnose::{diagnose, rejected, Security};
use crate::deliver::kafka::produce_batch::{partitioner_by_name, BatchProducer, Enqueued};
use crate::deliver::kafka::reports::{opaque, InFlight, MainQueue};
use crate::deliver::kafka::settings::KafkaSettings;
use crate::deliver::stats::{DeliveryStats, Throttle};
use crate::deliver::Sink;
use crate::error::{Error, TopicCreate, Unreachable};
use crate::shutdown::{Shutdown, StopReason};

pub use mock::MockGuard;

/// How long to wait for a delivery report when librdkafka's queue is full before
/// retrying; the wait ends at the first report.
const QUEUE_FULL_WAIT: Duration = Duration::from_millis(1);

/// Counts delivery reports and measures ack latency.
pub struct DeliveryContext {
    stats: Arc<DeliveryStats>,
    errors: ClientErrors,
    /// Which of the sink's producers this is the context of (`kafka.producers`).
    index: usize,
}

impl DeliveryContext {
    /// A context recording into `stats`, for the sink's first producer.
    pub fn new(stats: Arc<DeliveryStats>) -> Self {
        Self::of_producer(stats, 0)
    }

    /// A context recording into `stats`, for producer `index`.
    pub fn of_producer(stats: Arc<DeliveryStats>, index: usize) -> Self {
        Self {
            stats,
            errors: ClientErrors::default(),
            index,
        }
    }
}

impl ClientContext for DeliveryContext {
    fn error(&self, error: KafkaError, reason: &str) {
        // Each producer reports its own connections' errors; the others' are tagged
        // so two lines about one broker read as two clients, not a repeat.
        let tagged;
        let reason = match self.index {
            0 => reason,
            i => {
                tagged = format!("{reason} (producer {i})");
                &tagged
            }
        };
        if self.errors.record(&error, reason) {
            self.stats.with(|d| d.client_errors += 1);
        }
    }

    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        self.errors.log(level, fac, message);
    }

    fn stats(&self, statistics: rdkafka::Statistics) {
        let throttle = Throttle::of(&statistics);
        let retries = self.stats.set_client_statistics(self.index, statistics);
        self.stats.with(|d| {
            d.retries = d.retries.max(retries);
            d.throttled(throttle);
        });
    }
}

/// The librdkafka version the binary runs with, e.g. `2.12.1` (`--version`,
/// `iotblast_build_info`).
pub fn librdkafka_version() -> String {
    rdkafka::util::get_rdkafka_version().1
}

/// How long to serve librdkafka's queued error events after a failed start-up request.
pub const ERROR_EVENTS: Duration = Duration::from_millis(100);

/// What librdkafka reported, kept for start-up: error events and connection failures
/// (`FAIL` log lines). librdkafka retries a failed TLS handshake or authentication
/// until the connect timeout, so without these a wrong password or CA would look like
/// an unreachable cluster; `diagnose` reads them for what is wrong.
#[derive(Debug, Clone, Default)]
pub struct ClientErrors(Arc<std::sync::Mutex<Reported>>);

#[derive(Debug, Default)]
struct Reported {
    /// The latest reports with their error codes (none for a log line), oldest first.
    reports: VecDeque<(Option<RDKafkaErrorCode>, String)>,
    /// The previous call, to drop the second of a pair (see `record`).
    previous: Option<(String, Instant)>,
}

/// Reports kept: enough for every broker's latest failure at start-up.
const REPORTS_KEPT: usize = 32;

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
        // "All brokers are down" follows every specific failure and says less.
        let code = error.rdkafka_error_code();
        if code != Some(RDKafkaErrorCode::AllBrokersDown) {
            r.keep(code, reason);
        }
        true
    }

    /// Logs a librdkafka log line as rust-rdkafka's default context does, and keeps a
    /// connection failure (facility `FAIL`): librdkafka reports some failures only
    /// this way, such as a connection closed during its first request.
    pub fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        let level = match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => log::Level::Error,
            RDKafkaLogLevel::Warning => log::Level::Warn,
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => log::Level::Info,
            RDKafkaLogLevel::Debug => log::Level::Debug,
        };
        log::log!(target: "librdkafka", level, "librdkafka: {fac} {message}");
        if fac == "FAIL" {
            // "[thrd:host:port/id]: host:port/id: Disconnected ...": the thread says
            // nothing the rest does not.
            let reason = match message.split_once("]: ") {
                Some((thread, rest)) if thread.starts_with("[thrd:") => rest,
                _ => message,
            };
            let mut r = self.0.lock().unwrap_or_else(|p| p.into_inner());
            r.keep(None, reason);
        }
    }

    /// The error for brokers that did not answer in `timeout`, to a client with
    /// `security`: what the reports say is wrong (`diagnose`), else unreachable because
    /// of the latest report, or of `source` if there is none.
    pub fn connect_error(
        &self,
        brokers: &str,
        timeout: Duration,
        security: &Security,
        source: Unreachable,
    ) -> Error {
        if let Unreachable::Metadata(e) = &source {
            if let Some(d) = diagnose::unsupported(e, brokers) {
                return Error::Refused {
                    problem: d.problem,
                    fix: d.fix,
                    reason: e.to_string(),
                };
            }
        }
        let r = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let diagnosed = r
            .reports
            .iter()
            .rev()
            .enumerate()
            .find_map(|(i, (code, reason))| {
                diagnose(*code, reason, security, brokers)
                    .filter(|d| d.definitive || i == 0)
                    .map(|d| (d, reason))
            });
        if let Some((d, reason)) = diagnosed {
            return Error::Refused {
                problem: d.problem,
                fix: d.fix,
                reason: reason.clone(),
            };
        }
        Error::Unreachable {
            brokers: brokers.to_owned(),
            timeout,
            source: r
                .reports
                .back()
                .map_or(source, |(_, reason)| Unreachable::Reported(reason.clone())),
        }
    }
}

impl Reported {
    fn keep(&mut self, code: Option<RDKafkaErrorCode>, reason: &str) {
        if self.reports.len() == REPORTS_KEPT {
            self.reports.pop_front();
        }
        self.reports.push_back((code, reason.to_owned()));
    }
}

impl ProducerContext for DeliveryContext {
    /// See `reports::opaque`.
    type DeliveryOpaque = usize;

    /// Unused while the sink runs: `reports::serve` takes every delivery report from
    /// the queue itself. rust-rdkafka's own poll sees reports only when the producer is
    /// dropped, after `KafkaSink::finish` has given every message an outcome.
    fn delivery(&self, _: &DeliveryResult<'_>, _: usize) {}
}

pub struct KafkaSink {
    // Fields drop in order: topic handles and the queues before `producers`, and the
    // batches librdkafka may still point into after them (`rd_kafka_destroy` returns
    // only when librdkafka's threads are done with them).
    batches: BatchProducer,
    alerts: Option<BatchProducer>,
    /// Each producer's main event queue, by producer index.
    queues: Vec<MainQueue>,
    /// `kafka.producers` clients; each owns the partitions `p` with
    /// `p mod producers.len()` equal to its index.
    producers: Vec<BaseProducer<DeliveryContext>>,
    in_flight: InFlight,
    stats: Arc<DeliveryStats>,
    flush_grace: Duration,
    /// Readings and alerts handed to this sink, to find those without a delivery report.
    handed: (u64, u64),
    /// librdkafka's queue limit (`queue.buffering.max.kbytes`) in bytes, all
    /// producers together.
    queue_bytes: usize,
    /// `enable.idempotence`, and whether a timeout has stopped the run (see
    /// `stop_on_idempotent_timeout`).
    idempotent: bool,
    stopped_on_timeout: bool,
    /// Reads the partitions' in-sync replicas while the run lasts (`isr`).
    _isr: Option<isr::IsrWatch>,
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
            let m = mock::start(k)?;
            (m.bootstrap, Some(m.guard), m.description)
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
    let shared = share_queue(&config, k.producers as usize);
    let producers = (0..k.producers as usize)
        .map(|i| {
            shared
                .create_with_context(DeliveryContext::of_producer(Arc::clone(&stats), i))
                .map_err(|e| rejected(e, "producer", Error::Producer))
        })
        .collect::<Result<Vec<BaseProducer<DeliveryContext>>, Error>>()?;

    // Always set (PRODUCER_DEFAULTS or -X); librdkafka validated the name above.
    let name = config.get("partitioner").unwrap_or("consistent_random");
    let partitioner =
        partitioner_by_name(name).ok_or_else(|| Error::Partitioner(name.to_owned()))?;
    let handle = |topic: &str| -> Result<BatchProducer, Error> {
        // The first producer checks the cluster and the topic; the others learn the
        // topic's leaders from their own metadata requests.
        let partitions = ensure_topic(&producers[0], &config, &brokers, k, topic)?;
        BatchProducer::new(&producers, topic, partitioner, partitions)
    };
    let batches = handle(&k.topics.device_data)?;
    let alerts = k.alerts_topic().map(handle).transpose()?;
    // The mock cluster's replicas never fall behind.
    let isr = match mock.is_none() && k.acks_all() {
        true => {
            let topics: Vec<&str> = k.topics().collect();
            isr::watch(&config, &topics, k.connect_timeout.0, Arc::clone(&stats))
        }
        false => None,
    };
    Ok(Opened {
        sink: KafkaSink {
            batches,
            alerts,
            queues: producers.iter().map(MainQueue::of).collect(),
            queue_bytes: queue_bytes(&shared) * producers.len(),
            producers,
            in_flight: InFlight::new(Arc::clone(&stats)),
            stats,
            flush_grace: k.flush_timeout.0,
            handed: (0, 0),
            idempotent: k.idempotent(),
            stopped_on_timeout: false,
            _isr: isr,
        },
        description,
        mock,
    })
}

/// librdkafka's default `queue.buffering.max.kbytes`, in KiB.
const QUEUE_KBYTES: usize = 1_048_576;

/// librdkafka's default `queue.buffering.max.messages`.
const QUEUE_MESSAGES: usize = 100_000;

/// librdkafka's default `batch.size`, in bytes.
const BATCH_BYTES: usize = 1_000_000;

/// librdkafka's default `batch.num.messages`.
const BATCH_MESSAGES: usize = 10_000;

/// A producer's queue holds at least this many full MessageSets; see `share_queue`.
const BATCHES_PER_QUEUE: usize = 4;

/// `config` for one of `n` producers: each gets 1/n (rounded up) of the queue limits,
/// so that `kafka.producers` spreads the work without multiplying the memory the
/// queues may hold. Each producer carries about 1/n of the partitions, and so of the
/// traffic.
///
/// Why MessageSets are capped at a quarter of the queue: a queue that holds one
/// MessageSet or less fills before the set does, so every request waits out
/// `linger.ms` and the queue stays full until its ack. On the mock with 2 producers,
/// `queue.buffering.max.kbytes=2048` (1 MiB each against the 1 MB `batch.size`) gave
/// 0.20 M msgs/s where 4096 gave 1.35 M; with `batch.size` capped at a quarter of the
/// share, 2048 gave 1.46-1.50 M (perf/RESULTS.md, issue #14).
fn share_queue(config: &rdkafka::ClientConfig, n: usize) -> rdkafka::ClientConfig {
    let mut shared = config.clone();
    let get = |key, default| number(config, key, default);
    for (key, default, batch_key, batch_default, unit) in [
        (
            "queue.buffering.max.kbytes",
            QUEUE_KBYTES,
            "batch.size",
            BATCH_BYTES,
            1024,
        ),
        (
            "queue.buffering.max.messages",
            QUEUE_MESSAGES,
            "batch.num.messages",
            BATCH_MESSAGES,
            1,
        ),
    ] {
        let share = get(key, default).div_ceil(n.max(1)).max(1);
        shared.set(key, share.to_string());
        let batch = get(batch_key, batch_default);
        let cap = (share.saturating_mul(unit) / BATCHES_PER_QUEUE).max(1);
        if batch > cap {
            log::info!(
                "{batch_key} lowered from {batch} to {cap}: each producer's queue ({key}={share}) holds {BATCHES_PER_QUEUE} of them, so that requests need not wait for linger.ms; raise {key} for larger MessageSets"
            );
            shared.set(batch_key, cap.to_string());
        }
    }
    shared
}

/// The numeric property `key` of `config`, or librdkafka's `default` when unset.
fn number(config: &rdkafka::ClientConfig, key: &str, default: usize) -> usize {
    config
        .get(key)
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(default)
}

/// The producer's queue limit in bytes (`queue.buffering.max.kbytes`).
fn queue_bytes(config: &rdkafka::ClientConfig) -> usize {
    number(config, "queue.buffering.max.kbytes", QUEUE_KBYTES).saturating_mul(1024)
}

/// Fetches metadata within `connect_timeout` (so an unreachable cluster fails fast and
/// clearly), creates `topic` if it is missing and returns its partition count. An
/// existing topic is used as it is: a partition count or replication factor other than
/// the settings' is warned about, never changed.
fn ensure_topic(
    producer: &BaseProducer<DeliveryContext>,
    config: &rdkafka::ClientConfig,
    brokers: &str,
    k: &KafkaSettings,
    topic: &str,
) -> Result<i32, Error> {
    let errors = &producer.context().errors;
    let security = Security::of(config);
    let unreachable =
        |source| errors.connect_error(brokers, k.connect_timeout.0, &security, source);
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
    let listed = md.topics().iter().find(|t| t.name() == topic);
    if listed.is_some_and(|t| t.error().map(RDKafkaErrorCode::from).is_some_and(denied)) {
        return Err(write_denied(topic, brokers, "describe it"));
    }
    let existing = listed.filter(|t| t.error().is_none() && !t.partitions().is_empty());
    if let Some(t) = existing {
        warn_if_other_shape(t, k);
        let ids: Vec<i32> = md.brokers().iter().map(|b| b.id()).collect();
        may_write(producer, brokers, k, topic, &ids)?;
        return Ok(t.partitions().len() as i32);
    }
    if !k.create_topic {
        return Err(Error::TopicMissing {
            topic: topic.to_owned(),
            brokers: brokers.to_owned(),
        });
    }
    let live = md.brokers().len();
    if k.replication_factor > live as i32 {
        // Found before creating, as a setting the cluster cannot honour, rather than as
        // the broker's INVALID_REPLICATION_FACTOR.
        return Err(crate::error::ConfigError::new(
            "kafka.replication_factor (--replication-factor)",
            format!(
                "is {}, but the cluster at {brokers} has {live} brokers up, and a topic cannot have more replicas than brokers; lower it to {live} or less, or -1 for the brokers' default",
                k.replication_factor
            ),
        )
        .into());
    }
    match create_topic(config, k, topic) {
        Err(Error::TopicCreate {
            source: TopicCreate::Broker(code),
            ..
        }) if denied(code) => Err(creation_denied(producer, brokers, k, topic)),
        other => other.map(|()| k.partitions),
    }
}

/// Warns when an existing topic has another partition count or replication factor than
/// the settings ask for. Warned, not refused: they only shape a topic iotblast creates,
/// and a run against an existing topic is a normal way to benchmark it.
fn warn_if_other_shape(t: &rdkafka::metadata::MetadataTopic, k: &KafkaSettings) {
    let topic = t.name();
    let n = t.partitions().len();
    if n != k.partitions as usize {
        log::warn!(
            "topic '{topic}' already exists with {n} partitions, not kafka.partitions = {}; iotblast does not change an existing topic, so readings go to its {n} partitions",
            k.partitions
        );
    }
    // The least replicated partition: what the topic's durability rests on.
    let rf = t.partitions().iter().map(|p| p.replicas().len()).min();
    if let Some(rf) =
        rf.filter(|&rf| k.replication_factor != -1 && rf as i32 != k.replication_factor)
    {
        log::warn!(
            "topic '{topic}' already exists with replication factor {rf}, not kafka.replication_factor = {}; iotblast does not change an existing topic, so readings are kept on {rf} replicas",
            k.replication_factor
        );
    }
}

/// The longest wait for the brokers to say what this principal may do with a topic.
const ASK_AUTHORIZED: Duration = Duration::from_secs(3);

/// Fails when the brokers say that this principal may not write `topic`: without
/// this, credentials that may only read it (a consumer's) would fail every message of
/// the run, one by one.
fn may_write(
    producer: &BaseProducer<DeliveryContext>,
    brokers: &str,
    k: &KafkaSettings,
    topic: &str,
    ids: &[i32],
) -> Result<(), Error> {
    // A cluster answers in milliseconds; one that cannot should not hold up the start
    // for the whole connect timeout.
    let wait = k.connect_timeout.0.min(ASK_AUTHORIZED);
    match authorized::on_topic(producer, topic, wait, ids) {
        authorized::Operations::Listed(ops) if !authorized::allows_write(&ops) => {
            Err(Error::WriteDenied {
                topic: topic.to_owned(),
                brokers: brokers.to_owned(),
                detail: format!(
                    "the brokers say this principal may {} it, but not WRITE; grant it WRITE on the topic",
                    ops.join(", ")
                ),
            })
        }
        _ => Ok(()),
    }
}

/// Whether a topic error is the brokers refusing this principal the topic.
fn denied(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::TopicAuthorizationFailed | RDKafkaErrorCode::ClusterAuthorizationFailed
    )
}

/// The brokers refused to `what` topic `topic` (TOPIC_AUTHORIZATION_FAILED).
fn write_denied(topic: &str, brokers: &str, what: &str) -> Error {
    Error::WriteDenied {
        topic: topic.to_owned(),
        brokers: brokers.to_owned(),
        detail: format!(
            "the brokers refused to {what} (TOPIC_AUTHORIZATION_FAILED); Kafka does not tell a principal that may not describe a topic whether it exists: if it does, grant this principal WRITE and DESCRIBE on it; if it is missing, CREATE as well, or create it beforehand"
        ),
    }
}

/// Why creating a topic that the cluster's listing did not show was refused. Kafka
/// leaves out of a listing the topics a principal may not describe, and refuses to
/// create a topic, existing or not, without CREATE: so ask for this one topic by name,
/// which says which of the two it is. No broker creates a topic on a metadata request
/// from a principal it just refused CREATE.
fn creation_denied(
    producer: &BaseProducer<DeliveryContext>,
    brokers: &str,
    k: &KafkaSettings,
    topic: &str,
) -> Error {
    let md = producer
        .client()
        .fetch_metadata(Some(topic), k.connect_timeout.0);
    let error = md.as_ref().ok().and_then(|md| {
        md.topics()
            .iter()
            .find(|t| t.name() == topic)
            .and_then(|t| t.error())
    });
    match error.map(RDKafkaErrorCode::from) {
        Some(code) if denied(code) => write_denied(topic, brokers, "describe it and to create it"),
        _ => Error::CreateDenied {
            topic: topic.to_owned(),
            brokers: brokers.to_owned(),
        },
    }
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

/// How long to serve the delivery reports of a purge at exit.
const PURGE_REPORTS: Duration = Duration::from_secs(1);

impl KafkaSink {
    /// Serves every producer's events, waiting up to `wait` for the first on producer
    /// `on`'s queue (the others are only polled).
    fn serve(&mut self, on: usize, wait: Duration, done: &mut Vec<Batch>) -> usize {
        let mut served = 0;
        for (i, (queue, producer)) in self.queues.iter().zip(&self.producers).enumerate() {
            let wait = if i == on { wait } else { Duration::ZERO };
            served += reports::serve(queue, producer.context(), &mut self.in_flight, wait, done);
        }
        served
    }

    /// Enqueues the loaded readings (or alerts) of the batch in `slot`. Backpressure
    /// (`QueueFull`) is served by waiting for delivery reports and retrying from the
    /// refused message; messages that fail for good, or are still refused past the
    /// shutdown grace, are counted as failed here.
    fn enqueue(&mut self, alert: bool, slot: u32, shutdown: &Shutdown, done: &mut Vec<Batch>) {
        let stats = Arc::clone(&self.stats);
        let fail = |n: u64, reason: &str| match alert {
            true => stats.with(|d| d.alerts_failed(n, reason)),
            false => stats.with(|d| d.failed(n, reason)),
        };
        let mut start = 0;
        loop {
            let producer = match alert {
                true => self
                    .alerts
                    .as_mut()
                    .expect("alerts are loaded only with a topic"),
                false => &mut self.batches,
            };
            let mut refused = 0;
            let outcome = producer.enqueue(start, |err| {
                fail(1, &format!("not enqueued: {err}"));
                refused += 1;
            });
            let left = producer.len();
            self.in_flight.settle(slot, refused, done);
            let Enqueued::QueueFullAt(at) = outcome else {
                return;
            };
            // Wait on the producer whose queue is full: its reports make room.
            let full = producer.owner_of(at);
            start = at;
            self.serve(full, QUEUE_FULL_WAIT, done);
            if shutdown.past_grace(self.flush_grace) {
                let n = left - at;
                fail(
                    n as u64,
                    "not enqueued: producer queue still full at shutdown",
                );
                self.in_flight.settle(slot, n, done);
                return;
            }
        }
    }

    /// Waits up to `timeout` for every message to have a delivery report, serving them.
    fn flush(&mut self, timeout: Duration, done: &mut Vec<Batch>) -> Result<(), KafkaError> {
        let deadline = Instant::now() + timeout;
        loop {
            let mut pending = None;
            for (i, producer) in self.producers.iter().enumerate() {
                // SAFETY: a live producer handle. With the event API, librdkafka's
                // flush only waits for its message count to reach zero; serving the
                // queue is ours.
                let err =
                    unsafe { rdkafka::bindings::rd_kafka_flush(producer.client().native_ptr(), 0) };
                match RDKafkaErrorCode::from(err) {
                    RDKafkaErrorCode::NoError => {}
                    RDKafkaErrorCode::OperationTimedOut => {
                        pending.get_or_insert(i);
                    }
                    code => return Err(KafkaError::Flush(code)),
                }
            }
            let Some(on) = pending else { return Ok(()) };
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(KafkaError::Flush(RDKafkaErrorCode::OperationTimedOut));
            }
            // Short waits on one queue, so another producer's reports are not held up.
            self.serve(on, left.min(Duration::from_millis(10)), done);
            self.stop_on_idempotent_timeout(None);
        }
    }

    /// Ends the run at the first message librdkafka times out when it is idempotent.
    ///
    /// Why: after a timeout, librdkafka bumps the producer epoch and sends the
    /// messages it was still retrying under new sequence numbers, so a broker that
    /// wrote a first attempt cannot recognise the second as a duplicate (librdkafka
    /// issue #4953): readings counted as delivered could be in the topic twice. So at
    /// once, before the bump's retries go out, everything librdkafka holds is purged:
    /// queued messages fail, those in flight are in doubt (the broker may have written
    /// them, once), and the run stops (`shutdown`; none while flushing, when it is
    /// stopping already). Readings handed over after the purge are new to the brokers
    /// and are sent as usual.
    fn stop_on_idempotent_timeout(&mut self, shutdown: Option<&Shutdown>) {
        if !self.in_flight.take_timed_out() || !self.idempotent {
            return;
        }
        // Every timeout is another bump: purge each time, say so once.
        for producer in &self.producers {
            producer.purge(PurgeConfig::default().queue().inflight());
        }
        if !self.stopped_on_timeout {
            self.stopped_on_timeout = true;
            log::error!(
                "a message timed out (message.timeout.ms) with enable.idempotence: stopping, and purging what librdkafka holds, since it would send messages it already sent again under a new producer epoch, which the brokers cannot recognise as duplicates (librdkafka issue #4953); queued messages fail and those in flight are in doubt"
            );
        }
        if let Some(shutdown) = shutdown {
            shutdown.request(StopReason::Error);
        }
    }

    /// Whether every reading and alert handed over has an outcome.
    fn all_settled(&self) -> bool {
        let (readings, alerts) = self.handed;
        self.stats
            .with(|d| d.readings_settled() >= readings && d.alerts_settled() >= alerts)
    }
}

impl Sink for KafkaSink {
    fn send(&mut self, batch: Batch, shutdown: &Shutdown, done: &mut Vec<Batch>) {
        let readings = batch.len();
        let alerts = match self.alerts {
            Some(_) => batch.alerts().len(),
            None => 0,
        };
        self.handed.0 += readings as u64;
        self.handed.1 += alerts as u64;
        let slot = self.in_flight.admit(batch, readings + alerts);
        let b = self.in_flight.batch(slot);
        self.batches.load(b.readings(), |i| opaque(false, slot, i));
        if let (Some(producer), true) = (&mut self.alerts, alerts > 0) {
            producer.load(b.alerts(), |i| opaque(true, slot, i));
        }
        self.enqueue(false, slot, shutdown, done);
        if alerts > 0 {
            self.enqueue(true, slot, shutdown, done);
        }
        self.serve(0, Duration::ZERO, done);
        self.stop_on_idempotent_timeout(Some(shutdown));
    }

    fn poll(&mut self, shutdown: &Shutdown, done: &mut Vec<Batch>) {
        self.serve(0, Duration::ZERO, done);
        self.stop_on_idempotent_timeout(Some(shutdown));
    }

    /// librdkafka points into a batch until its messages are delivered, and holds up to
    /// its queue limit of them.
    fn holds_bytes(&self) -> usize {
        self.queue_bytes
    }

    fn finish(&mut self, timeout: Duration) {
        // Workers are gone: batches that finish here are simply dropped.
        let mut done = Vec::new();
        if let Err(e) = self.flush(timeout, &mut done) {
            log::warn!(
                "flush did not complete within {}: {e}; what is still queued is purged (failed) and what is in flight is in doubt",
                humantime::format_duration(timeout),
            );
            for producer in &self.producers {
                producer.purge(PurgeConfig::default().queue().inflight());
            }
            // Serve the purge's delivery reports, which record each message's outcome.
            // They are local and come at once; a flush would also wait for requests
            // still out to a broker that may never answer.
            let deadline = Instant::now() + PURGE_REPORTS;
            while !self.all_settled() && Instant::now() < deadline {
                self.serve(0, Duration::from_millis(10), &mut done);
                done.clear();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_producer_gets_its_share_of_the_queue_limits() {
        let mut config = rdkafka::ClientConfig::new();
        config.set("queue.buffering.max.kbytes", "16384");
        let one = share_queue(&config, 1);
        assert_eq!(one.get("queue.buffering.max.kbytes"), Some("16384"));
        let three = share_queue(&config, 3);
        // Rounded up, so N shares hold at least the whole.
        assert_eq!(three.get("queue.buffering.max.kbytes"), Some("5462"));
        // Unset: librdkafka's own default is what is shared.
        assert_eq!(three.get("queue.buffering.max.messages"), Some("33334"));
    }

    #[test]
    fn a_message_set_is_at_most_a_quarter_of_a_producers_queue() {
        let mut config = rdkafka::ClientConfig::new();
        config.set("queue.buffering.max.kbytes", "2048");
        config.set("queue.buffering.max.messages", "8000");
        config.set("batch.size", "1000000");
        let two = share_queue(&config, 2);
        // 1024 KiB each: a quarter is 262144 bytes.
        assert_eq!(two.get("batch.size"), Some("262144"));
        // 4000 messages each; batch.num.messages unset (librdkafka's 10000) is capped too.
        assert_eq!(two.get("batch.num.messages"), Some("1000"));
        // Smaller sets than the cap are left alone.
        config.set("batch.size", "65536");
        config.set("batch.num.messages", "500");
        let two = share_queue(&config, 2);
        assert_eq!(two.get("batch.size"), Some("65536"));
        assert_eq!(two.get("batch.num.messages"), Some("500"));
    }
}
