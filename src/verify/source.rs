//! Where `verify` reads from: a topic from its beginning until it has been idle, or a
//! file (or stdin) of NDJSON readings, the stdout sink's output.

use std::io::BufRead;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use crate::deliver::kafka::settings::KafkaSettings;
use crate::deliver::kafka::{ClientErrors, ERROR_EVENTS};
use crate::error::{Error, Unreachable};
use crate::verify::check::{Checker, Origin};

/// The consumer's context: logs librdkafka's errors and keeps an authentication failure.
struct VerifyContext(ClientErrors);

impl ClientContext for VerifyContext {
    fn error(&self, error: KafkaError, reason: &str) {
        self.0.record(&error, reason);
    }
}

impl ConsumerContext for VerifyContext {}

/// The time from the first message read to the last.
#[derive(Debug, Default, Clone, Copy)]
pub struct Span {
    first: Option<Instant>,
    last: Option<Instant>,
}

impl Span {
    fn saw(&mut self, at: Instant) {
        self.first.get_or_insert(at);
        self.last = Some(at);
    }

    pub fn seconds(&self) -> f64 {
        match (self.first, self.last) {
            (Some(a), Some(b)) => (b - a).as_secs_f64(),
            _ => 0.0,
        }
    }
}

/// Reads NDJSON readings from `input` line by line into `checker`, until the end or
/// `stop`. Empty lines are skipped.
pub fn lines(
    mut input: impl BufRead,
    checker: &mut Checker,
    stop: &AtomicBool,
) -> std::io::Result<Span> {
    let mut span = Span::default();
    let mut line = Vec::with_capacity(4096);
    let start = Instant::now();
    span.saw(start);
    let mut n = 0u64;
    while input.read_until(b'\n', &mut line)? > 0 {
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        if !text.is_empty() {
            checker.reading(text, Origin::default());
        }
        line.clear();
        n += 1;
        // A signal stops a long read too; checked every 64k lines, not per line.
        if n.is_multiple_of(65_536) && stop.load(Ordering::Relaxed) {
            break;
        }
    }
    span.saw(Instant::now());
    Ok(span)
}

/// The topics to read and how long to wait on an idle topic.
pub struct Topics<'a> {
    pub readings: &'a str,
    pub alerts: Option<&'a str>,
    pub idle: Duration,
}

/// Reads `topics` from their beginning into `checker` until no message has come for
/// `topics.idle`, or `stop`.
pub fn kafka(
    k: &KafkaSettings,
    brokers: &str,
    topics: &Topics,
    checker: &mut Checker,
    stop: &AtomicBool,
) -> Result<Span, Error> {
    let errors = ClientErrors::default();
    let consumer: BaseConsumer<VerifyContext> = k
        .consumer_config(brokers)?
        .create_with_context(VerifyContext(errors.clone()))
        .map_err(Error::Consumer)?;
    let mut assignment = TopicPartitionList::new();
    assign(
        &consumer,
        k,
        brokers,
        topics.readings,
        true,
        &errors,
        &mut assignment,
    )?;
    let alerts = match topics.alerts {
        Some(a) if assign(&consumer, k, brokers, a, false, &errors, &mut assignment)? => Some(a),
        _ => None,
    };
    consumer.assign(&assignment).map_err(Error::Consumer)?;

    let mut span = Span::default();
    let mut last = Instant::now();
    while !stop.load(Ordering::Relaxed) && last.elapsed() < topics.idle {
        let Some(polled) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let m = match polled {
            Ok(m) => m,
            Err(e) => {
                log::warn!("consumer: {e}");
                continue;
            }
        };
        last = Instant::now();
        span.saw(last);
        let origin = Origin {
            key: m.key(),
            partition: Some(m.partition()),
            read_at_ms: Some(wall_ms()),
        };
        let payload = m.payload().unwrap_or_default();
        if alerts.is_some_and(|a| a == m.topic()) {
            checker.alert(payload, origin);
        } else {
            checker.reading(payload, origin);
        }
    }
    Ok(span)
}

/// Adds every partition of `topic` from its beginning to `assignment`. A missing
/// topic is an error when `required`, else a warning and `false`.
fn assign(
    consumer: &BaseConsumer<VerifyContext>,
    k: &KafkaSettings,
    brokers: &str,
    topic: &str,
    required: bool,
    errors: &ClientErrors,
    assignment: &mut TopicPartitionList,
) -> Result<bool, Error> {
    let md = consumer
        .fetch_metadata(Some(topic), k.connect_timeout.0)
        .map_err(|e| {
            // Serve librdkafka's queued error events so the error says why.
            let until = Instant::now() + ERROR_EVENTS;
            while Instant::now() < until {
                // The context's `error` records each error event as it is served.
                let _ = consumer.poll(Duration::from_millis(10));
            }
            errors.unreachable(brokers, k.connect_timeout.0, Unreachable::Metadata(e))
        })?;
    let partitions = md
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())
        .map(|t| t.partitions().len())
        .unwrap_or(0);
    if partitions == 0 {
        if required {
            return Err(Error::NoTopic {
                topic: topic.to_owned(),
                brokers: brokers.to_owned(),
            });
        }
        log::warn!("alerts topic '{topic}' does not exist on {brokers}: alerts are not checked");
        return Ok(false);
    }
    for p in 0..partitions as i32 {
        assignment
            .add_partition_offset(topic, p, Offset::Beginning)
            .map_err(Error::Consumer)?;
    }
    Ok(true)
}

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
