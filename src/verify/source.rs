//! Where `verify` reads from: a topic from its beginning until it has been idle, or a
//! file (or stdin) of readings as the stdout sink writes them: NDJSON, or
//! length-delimited Protobuf (each message preceded by its length as a varint).

use std::io::{BufRead, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use crate::deliver::kafka::diagnose::{rejected, Security};
use crate::deliver::kafka::settings::KafkaSettings;
use crate::deliver::kafka::{ClientErrors, ERROR_EVENTS};
use crate::error::{Error, Unreachable};
use crate::verify::check::{Checker, Origin};

/// The consumer's context: logs librdkafka's errors and keeps them (and connection
/// failures) to say why the brokers did not answer.
struct VerifyContext(ClientErrors);

impl ClientContext for VerifyContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        self.0.log(level, fac, message);
    }

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

/// The longest message `delimited` accepts. iotblast's are under a few kilobytes; a
/// larger length prefix means the stream is not length-delimited readings, and a
/// reader that believed it would hold on to that much memory.
pub const MAX_DELIMITED: u64 = 16 << 20;

/// Reads length-delimited Protobuf readings from `input` into `checker`, until the end
/// or `stop`. A message cut short by the end of the input, a prefix that is not a
/// varint and one above [`MAX_DELIMITED`] are each counted as one invalid message, and
/// end the read: after them the stream has no message boundaries left to find.
pub fn delimited(
    mut input: impl BufRead,
    checker: &mut Checker,
    stop: &AtomicBool,
) -> std::io::Result<Span> {
    let mut span = Span::default();
    let mut message = Vec::with_capacity(4096);
    span.saw(Instant::now());
    let mut n = 0u64;
    loop {
        let len = match length_prefix(&mut input)? {
            Prefix::End => break,
            Prefix::Bad => {
                checker.invalid("length prefix is not a varint");
                break;
            }
            Prefix::Len(len) if len > MAX_DELIMITED => {
                checker.invalid("length prefix is over 16 MiB");
                break;
            }
            Prefix::Len(len) => len,
        };
        message.clear();
        // `take` reads what is there, so a false length cannot make it allocate more.
        (&mut input).take(len).read_to_end(&mut message)?;
        if (message.len() as u64) < len {
            checker.invalid("message is cut short by the end of the input");
            break;
        }
        checker.reading(&message, Origin::default());
        n += 1;
        if n.is_multiple_of(65_536) && stop.load(Ordering::Relaxed) {
            break;
        }
    }
    span.saw(Instant::now());
    Ok(span)
}

/// What came where a length prefix was due.
enum Prefix {
    Len(u64),
    /// The input ended cleanly, between two messages.
    End,
    /// Over 10 bytes, or ended inside the varint.
    Bad,
}

/// Reads a varint length prefix (at most 10 bytes, as protobuf's).
fn length_prefix(input: &mut impl BufRead) -> std::io::Result<Prefix> {
    let mut v = 0u64;
    for i in 0..10 {
        let byte = loop {
            match input.fill_buf() {
                Ok(buf) => break buf.first().copied(),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        };
        let Some(byte) = byte else {
            return Ok(if i == 0 { Prefix::End } else { Prefix::Bad });
        };
        input.consume(1);
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte < 0x80 {
            return Ok(Prefix::Len(v));
        }
    }
    Ok(Prefix::Bad)
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
    let config = k.consumer_config(brokers)?;
    let security = Security::of(&config);
    let consumer: BaseConsumer<VerifyContext> = config
        .create_with_context(VerifyContext(errors.clone()))
        .map_err(|e| rejected(e, "consumer", Error::Consumer))?;
    let check = Check {
        k,
        brokers,
        errors: &errors,
        security: &security,
    };
    let mut assignment = TopicPartitionList::new();
    assign(&consumer, &check, topics.readings, true, &mut assignment)?;
    let alerts = match topics.alerts {
        Some(a) if assign(&consumer, &check, a, false, &mut assignment)? => Some(a),
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

/// What a metadata request at start-up needs to explain a failure.
struct Check<'a> {
    k: &'a KafkaSettings,
    brokers: &'a str,
    errors: &'a ClientErrors,
    security: &'a Security,
}

/// Adds every partition of `topic` from its beginning to `assignment`. A missing
/// topic is an error when `required`, else a warning and `false`.
fn assign(
    consumer: &BaseConsumer<VerifyContext>,
    check: &Check,
    topic: &str,
    required: bool,
    assignment: &mut TopicPartitionList,
) -> Result<bool, Error> {
    let &Check {
        k,
        brokers,
        errors,
        security,
    } = check;
    let md = consumer
        .fetch_metadata(Some(topic), k.connect_timeout.0)
        .map_err(|e| {
            // Serve librdkafka's queued error events so the error says why.
            let until = Instant::now() + ERROR_EVENTS;
            while Instant::now() < until {
                // The context's `error` records each error event as it is served.
                let _ = consumer.poll(Duration::from_millis(10));
            }
            errors.connect_error(
                brokers,
                k.connect_timeout.0,
                security,
                Unreachable::Metadata(e),
            )
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::settings::Format;
    use crate::generate::encoder::Encoder;
    use crate::model::{Fleet, FleetSlice, FleetSpec};

    /// 10 devices × 5 seqs of protobuf readings, length-delimited.
    fn stream() -> (Vec<u8>, Vec<usize>) {
        let fleet = Fleet::new(FleetSpec::default(), 3);
        let enc = Encoder::new(&fleet, Format::Protobuf);
        let mut slice = FleetSlice::new(fleet, 0..10);
        let (mut out, mut starts) = (Vec::new(), Vec::new());
        for seq in 0..5 {
            for device in 0..10 {
                let mut m = Vec::new();
                enc.encode(&slice.step(device, seq, 1_000), &mut m);
                starts.push(out.len());
                let mut prefix = [0u8; 10];
                let n = crate::deliver::stdout::varint(m.len() as u64, &mut prefix);
                out.extend_from_slice(&prefix[..n]);
                out.extend_from_slice(&m);
            }
        }
        (out, starts)
    }

    fn check(bytes: &[u8]) -> Checker {
        let mut c = Checker::new(Format::Protobuf);
        delimited(bytes, &mut c, &AtomicBool::new(false)).unwrap();
        c
    }

    #[test]
    fn a_delimited_stream_is_read_message_by_message() {
        let (bytes, starts) = stream();
        let c = check(&bytes);
        let n = c.counts();
        assert_eq!((n.readings, n.devices, n.gaps, n.invalid), (50, 10, 0, 0));
        // Dropping one whole message is a gap, not a broken stream.
        let (a, b) = (starts[12], starts[13]);
        let cut = [&bytes[..a], &bytes[b..]].concat();
        let n = check(&cut).counts().clone();
        assert_eq!((n.readings, n.gaps, n.invalid), (49, 1, 0));
    }

    #[test]
    fn truncated_and_garbage_streams_count_one_invalid_message() {
        let (bytes, starts) = stream();
        // Cut inside the last message: 49 good, the last one cut short.
        let c = check(&bytes[..bytes.len() - 3]);
        assert_eq!((c.counts().readings, c.counts().invalid), (49, 1));
        assert_eq!(c.reasons["message is cut short by the end of the input"], 1);
        // Cut inside a length prefix that continues (a 2-byte varint).
        let mut c = check(&[0x80]);
        assert_eq!(c.reasons["length prefix is not a varint"], 1);
        c = check(&[0xff; 11]);
        assert_eq!(c.counts().invalid, 1);
        // A huge length is refused, not allocated.
        c = check(&[0xff, 0xff, 0xff, 0xff, 0x0f, 1, 2, 3]);
        assert_eq!(c.reasons["length prefix is over 16 MiB"], 1);
        // A frame of garbage is one invalid message; the stream goes on after it.
        let mut g = bytes[..starts[1]].to_vec();
        g.extend_from_slice(&[5, 0xff, 0xff, 0xff, 0xff, 0xff]);
        g.extend_from_slice(&bytes[starts[1]..]);
        let c = check(&g);
        assert_eq!((c.counts().readings, c.counts().invalid), (50, 1));
        // NDJSON read as Protobuf is invalid, never a panic.
        let c = check(b"{\"device_id\":\"device_000001\"}\n{}\n");
        assert!(c.counts().invalid >= 1);
        assert_eq!(c.counts().readings, 0);
    }
}
