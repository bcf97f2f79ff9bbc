//! Serves librdkafka's main event queue for the delivery thread, in place of
//! rust-rdkafka's `BaseProducer::poll`: delivery reports are taken an event at a time as
//! arrays (`rd_kafka_event_message_array`); errors, statistics and logs go to the
//! client context as rust-rdkafka would hand them on.
//!
//! It also keeps the batches librdkafka points into. Messages are enqueued without a
//! copy (see `produce_batch`), so each batch waits here, in a slot, until every one of
//! its messages has an outcome, and only then goes back to its worker. A message's
//! opaque names its slot and its index in the batch; its due time stays in the batch.
//!
//! Why not `BaseProducer::poll`: it builds a `BorrowedMessage` and clones an `Arc` per
//! report, then calls the context once per message, which took the stats mutex per
//! message. Here one event, the reports of one produce response, costs one clock read
//! and one lock. The latency stays exact per message: the messages of one event were
//! acknowledged by the same response, so they share its ack time, and each keeps its
//! own due time.

use std::ffi::CStr;
use std::os::raw::c_char;
use std::time::{Duration, Instant};

use rdkafka::bindings as rd;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, Producer, ProducerContext};

use crate::deliver::batch::{clock_us, Batch};
use crate::deliver::kafka::DeliveryContext;
use crate::deliver::stats::{Deliveries, DeliveryStats};

/// The producer's main event queue. Must be dropped before the producer.
pub struct MainQueue(*mut rd::rd_kafka_queue_t);

// SAFETY: librdkafka queues are thread-safe; this handle is used only by the delivery
// thread that owns the producer.
unsafe impl Send for MainQueue {}

impl MainQueue {
    /// The main queue of `producer`, where librdkafka puts delivery reports, errors,
    /// statistics and (rust-rdkafka redirects them here) logs.
    pub fn of<C: ProducerContext>(producer: &BaseProducer<C>) -> Self {
        // SAFETY: a live client; the reference is released in `drop`, before the
        // producer (see `KafkaSink`'s field order).
        Self(unsafe { rd::rd_kafka_queue_get_main(producer.client().native_ptr()) })
    }
}

impl Drop for MainQueue {
    fn drop(&mut self) {
        // SAFETY: obtained from rd_kafka_queue_get_main, released once, before the client.
        unsafe { rd::rd_kafka_queue_destroy(self.0) }
    }
}

/// A delivery opaque: bit 0 marks an alert, bits 1..32 the slot, bits 32.. the index of
/// the message among its batch's readings or alerts.
#[inline]
pub fn opaque(alert: bool, slot: u32, index: usize) -> usize {
    ((index as u64) << 32 | (slot as u64) << 1 | alert as u64) as usize
}

#[inline]
fn unpack(tag: usize) -> (bool, usize, usize) {
    let t = tag as u64;
    (t & 1 == 1, (t as u32 >> 1) as usize, (t >> 32) as usize)
}

struct Slot {
    batch: Option<Batch>,
    /// When the batch was handed to librdkafka (`clock_us`).
    sent: u32,
    /// Messages, readings and alerts, without an outcome yet.
    outstanding: usize,
}

/// The batches librdkafka holds pointers into, and the outcomes of their messages.
/// Dropped after the producer (see `KafkaSink`), so librdkafka never reads a freed batch.
pub struct InFlight {
    slots: Vec<Slot>,
    free: Vec<u32>,
    stats: std::sync::Arc<DeliveryStats>,
    /// Whether librdkafka timed out a message (`message.timeout.ms`) since the last
    /// `take_timed_out`.
    timed_out: bool,
    /// Reused for each event's messages.
    scratch: Vec<*const rd::rd_kafka_message_t>,
}

// SAFETY: the raw pointers in `scratch` are only valid, and only used, within one
// event's handling on the delivery thread.
unsafe impl Send for InFlight {}

impl InFlight {
    pub fn new(stats: std::sync::Arc<DeliveryStats>) -> Self {
        Self {
            slots: Vec::new(),
            free: Vec::new(),
            stats,
            timed_out: false,
            scratch: Vec::new(),
        }
    }

    /// Keeps `batch` until its `messages` (readings and alerts) all have outcomes;
    /// returns its slot.
    pub fn admit(&mut self, batch: Batch, messages: usize) -> u32 {
        let slot = Slot {
            batch: Some(batch),
            sent: clock_us(Instant::now()),
            outstanding: messages,
        };
        match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = slot;
                i
            }
            None => {
                self.slots.push(slot);
                (self.slots.len() - 1) as u32
            }
        }
    }

    /// The batch in `slot`.
    pub fn batch(&self, slot: u32) -> &Batch {
        self.slots[slot as usize]
            .batch
            .as_ref()
            .expect("an admitted slot holds its batch")
    }

    /// When the batch in `slot` was handed over.
    pub fn sent(&self, slot: u32) -> u32 {
        self.slots[slot as usize].sent
    }

    /// Counts `n` messages of `slot` as settled elsewhere (failed before librdkafka took
    /// them); the batch goes to `done` once nothing of it is outstanding.
    pub fn settle(&mut self, slot: u32, n: usize, done: &mut Vec<Batch>) {
        let s = &mut self.slots[slot as usize];
        s.outstanding -= n.min(s.outstanding);
        if s.outstanding == 0 {
            if let Some(b) = s.batch.take() {
                done.push(b);
                self.free.push(slot);
            }
        }
    }

    /// Batches still waiting for an outcome.
    pub fn len(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    /// Whether a message timed out since the last call.
    pub fn take_timed_out(&mut self) -> bool {
        std::mem::take(&mut self.timed_out)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Records the outcomes of one delivery-report event; finished batches go to `done`.
    fn reports(&mut self, event: *mut rd::rd_kafka_event_t, done: &mut Vec<Batch>) {
        // SAFETY: `event` is a live DR event; the array is filled with pointers valid
        // until the event is destroyed, which happens after this returns.
        let messages = unsafe {
            let count = rd::rd_kafka_event_message_count(event);
            self.scratch.clear();
            self.scratch.reserve(count);
            let n = rd::rd_kafka_event_message_array(event, self.scratch.as_mut_ptr(), count);
            self.scratch.set_len(n);
            std::mem::take(&mut self.scratch)
        };
        // One ack time for the event: one response acknowledged all of its messages.
        let now = clock_us(Instant::now());
        let stats = std::sync::Arc::clone(&self.stats);
        stats.with(|d| {
            for &m in &messages {
                // SAFETY: see above.
                let m = unsafe { &*m };
                let (alert, slot, index) = unpack(m._private as usize);
                self.timed_out |=
                    m.err == rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR__MSG_TIMED_OUT;
                self.record(d, m, (alert, slot, index), now);
                self.settle(slot as u32, 1, done);
            }
        });
        self.scratch = messages;
    }

    /// Records one message's outcome.
    #[inline]
    fn record(
        &self,
        d: &mut Deliveries,
        m: &rd::rd_kafka_message_t,
        (alert, slot, index): (bool, usize, usize),
        now: u32,
    ) {
        if m.err != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
            return failure(d, m, alert);
        }
        if alert {
            d.alerts_delivered += 1;
            return;
        }
        let s = &self.slots[slot];
        let due = s.batch.as_ref().map_or(now, |b| b.readings().due(index));
        let latency = now.wrapping_sub(due) as u64;
        let waited = s.sent.wrapping_sub(due).min(i32::MAX as u32) as u64;
        d.ok(m.len, Some((latency, latency.saturating_sub(waited))));
    }
}

/// Records a failed report: in doubt when librdkafka says the message may have reached
/// the broker (it was in flight when it timed out or was purged), else failed.
/// A timeout on a partition that `kafka::isr` saw below `min.insync.replicas` is
/// counted with that cause, which librdkafka does not report itself.
#[cold]
fn failure(d: &mut Deliveries, m: &rd::rd_kafka_message_t, alert: bool) {
    let mut reason = KafkaError::MessageProduction(RDKafkaErrorCode::from(m.err)).to_string();
    if m.err == rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR__MSG_TIMED_OUT
        && d.under_min_isr.partitions.contains(&(alert, m.partition))
    {
        reason.push_str(NOT_ENOUGH_REPLICAS);
    }
    // SAFETY: `m` is a valid message of a live event.
    let status = unsafe { rd::rd_kafka_message_status(m) };
    let possibly = status == rd::rd_kafka_msg_status_t::RD_KAFKA_MSG_STATUS_POSSIBLY_PERSISTED;
    match (possibly, alert) {
        (true, _) => d.in_doubt(alert, 1, &reason),
        (false, true) => d.alerts_failed(1, &reason),
        (false, false) => d.failed(1, &reason),
    }
}

/// Appended to the reason of a timeout on a partition short of in-sync replicas.
pub const NOT_ENOUGH_REPLICAS: &str = " after NOT_ENOUGH_REPLICAS: the partition's in-sync replicas were fewer than its min.insync.replicas, so its leader refused the write";

/// Serves the queue: waits up to `wait` for the first event, then takes every event
/// that is ready. Returns how many events were served.
pub fn serve(
    queue: &MainQueue,
    context: &DeliveryContext,
    in_flight: &mut InFlight,
    wait: Duration,
    done: &mut Vec<Batch>,
) -> usize {
    // librdkafka waits in whole milliseconds: a shorter wait rounds up, so a caller
    // that has nothing to do but wait for a report sleeps instead of spinning.
    let mut timeout_ms = if wait.is_zero() {
        0
    } else {
        wait.as_millis().clamp(1, i32::MAX as u128) as i32
    };
    let mut served = 0;
    loop {
        // SAFETY: a live queue; the event is destroyed below.
        let event = unsafe { rd::rd_kafka_queue_poll(queue.0, timeout_ms) };
        if event.is_null() {
            return served;
        }
        served += 1;
        timeout_ms = 0;
        // SAFETY: a live event.
        match unsafe { rd::rd_kafka_event_type(event) } {
            rd::RD_KAFKA_EVENT_DR => in_flight.reports(event, done),
            rd::RD_KAFKA_EVENT_ERROR => error(context, event),
            rd::RD_KAFKA_EVENT_STATS => {
                // SAFETY: the JSON lives as long as the event.
                let json = unsafe { CStr::from_ptr(rd::rd_kafka_event_stats(event)) };
                context.stats_raw(json.to_bytes());
            }
            rd::RD_KAFKA_EVENT_LOG => log(context, event),
            // OAUTHBEARER token refreshes: rust-rdkafka consumes them unhandled for a
            // context without a token generator, as this one is.
            _ => {}
        }
        // SAFETY: destroyed once, after its last use.
        unsafe { rd::rd_kafka_event_destroy(event) };
    }
}

/// Hands an error event to the context, as rust-rdkafka does.
fn error(context: &DeliveryContext, event: *mut rd::rd_kafka_event_t) {
    // SAFETY: a live error event; the string lives as long as the event.
    let (code, reason) = unsafe {
        (
            rd::rd_kafka_event_error(event),
            text(rd::rd_kafka_event_error_string(event)),
        )
    };
    context.error(KafkaError::Global(code.into()), reason.trim());
}

/// Hands a log event to the context, as rust-rdkafka does.
fn log(context: &DeliveryContext, event: *mut rd::rd_kafka_event_t) {
    let (mut fac, mut msg, mut level) = (std::ptr::null(), std::ptr::null(), 0);
    // SAFETY: a live log event; the strings live as long as the event.
    if unsafe { rd::rd_kafka_event_log(event, &mut fac, &mut msg, &mut level) } != 0 {
        return;
    }
    let level = match level {
        0 => RDKafkaLogLevel::Emerg,
        1 => RDKafkaLogLevel::Alert,
        2 => RDKafkaLogLevel::Critical,
        3 => RDKafkaLogLevel::Error,
        4 => RDKafkaLogLevel::Warning,
        5 => RDKafkaLogLevel::Notice,
        6 => RDKafkaLogLevel::Info,
        _ => RDKafkaLogLevel::Debug,
    };
    // SAFETY: as above.
    let (fac, msg) = unsafe { (text(fac), text(msg)) };
    context.log(level, fac.trim(), msg.trim());
}

/// A C string from librdkafka, or "" for a null pointer.
unsafe fn text<'a>(p: *const c_char) -> std::borrow::Cow<'a, str> {
    if p.is_null() {
        "".into()
    } else {
        // SAFETY: the caller passes a NUL-terminated string that outlives 'a.
        unsafe { CStr::from_ptr(p) }.to_string_lossy()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deliver::batch::Shape;

    #[test]
    fn a_batch_is_released_only_when_every_message_is_settled_and_slots_are_reused() {
        let mut f = InFlight::new(std::sync::Arc::new(DeliveryStats::default()));
        let mut done = Vec::new();
        let a = f.admit(Batch::new(Shape::readings(4, 8, 4), 0), 3);
        let b = f.admit(Batch::new(Shape::readings(4, 8, 4), 1), 1);
        assert_eq!((a, b, f.len()), (0, 1, 2));
        f.settle(a, 2, &mut done);
        assert!(done.is_empty());
        f.settle(b, 1, &mut done);
        assert_eq!(done.iter().map(|b| b.worker).collect::<Vec<_>>(), [1]);
        f.settle(a, 1, &mut done);
        assert_eq!(done.len(), 2);
        assert!(f.is_empty());
        // A freed slot is reused rather than the table growing.
        let c = f.admit(Batch::new(Shape::readings(4, 8, 4), 0), 1);
        assert!(c <= 1 && f.len() == 1);
    }

    #[test]
    fn opaque_round_trips() {
        for (alert, slot, index) in [
            (false, 0, 0),
            (true, 7, 1023),
            (false, (1 << 31) - 1, 999_999),
        ] {
            assert_eq!(
                unpack(opaque(alert, slot, index)),
                (alert, slot as usize, index)
            );
        }
    }
}
