//! Enqueues a batch with one `rd_kafka_produce_batch` call per partition.
//!
//! Two costs dominate a naive per-message `BaseProducer::send` on keyed data spread over
//! many partitions: per message, a `CString` for the topic name, a topic lookup and a
//! partitioner call under librdkafka's locks; and, downstream, librdkafka walking each
//! partition's message list, whose nodes lie interleaved in memory with every other
//! partition's (one cache miss per message). So the batch is grouped by partition here,
//! with librdkafka's own partitioner function (so every key lands exactly where the
//! configured partitioner would put it), stably (so per-key order is kept), and each
//! group is enqueued with one call for that partition. `benches/produce.rs` compares
//! this path with `BaseProducer::send` on the same mock cluster.
//!
//! With several producers (`kafka.producers`), partition `p` belongs to producer
//! `p mod N`, so each key still goes through exactly one client and keeps its order;
//! each group is enqueued through its owner's topic handle.

use std::ffi::{c_void, CString};
use std::ptr;

use rdkafka::bindings as rd;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::{BaseProducer, Producer, ProducerContext};

use crate::deliver::batch::Messages;
use crate::error::Error;

/// librdkafka's partitioner signature (`rd_kafka_msg_partitioner_*`).
type PartitionerFn = unsafe extern "C" fn(
    *const rd::rd_kafka_topic_t,
    *const c_void,
    usize,
    i32,
    *mut c_void,
    *mut c_void,
) -> i32;

/// The built-in partitioner named by librdkafka's `partitioner` property.
pub fn partitioner_by_name(name: &str) -> Option<PartitionerFn> {
    Some(match name {
        "random" => rd::rd_kafka_msg_partitioner_random,
        "consistent" => rd::rd_kafka_msg_partitioner_consistent,
        "consistent_random" => rd::rd_kafka_msg_partitioner_consistent_random,
        "murmur2" => rd::rd_kafka_msg_partitioner_murmur2,
        "murmur2_random" => rd::rd_kafka_msg_partitioner_murmur2_random,
        "fnv1a" => rd::rd_kafka_msg_partitioner_fnv1a,
        "fnv1a_random" => rd::rd_kafka_msg_partitioner_fnv1a_random,
        _ => return None,
    })
}

/// A topic handle per producer, the partitioner and reused, partition-grouped message
/// arrays. Must be dropped before its producers.
pub struct BatchProducer {
    /// The topic's handle in each producer; partition `p` is enqueued through
    /// `rkts[p mod rkts.len()]`.
    rkts: Vec<*mut rd::rd_kafka_topic_t>,
    partitioner: PartitionerFn,
    partition_count: i32,
    /// Messages of the loaded batch, grouped by partition.
    messages: Vec<rd::rd_kafka_message_t>,
    /// `(partition, end)` of each group in `messages`, in order.
    groups: Vec<(i32, usize)>,
    /// Scratch for the counting sort: partition of each message, then group starts.
    partition_of: Vec<i32>,
    cursor: Vec<usize>,
}

// SAFETY: librdkafka topic handles are thread-safe; this one is only used from the
// delivery thread that owns the producer.
unsafe impl Send for BatchProducer {}

/// What one enqueue attempt left over.
pub enum Enqueued {
    /// Everything was enqueued or failed for good (reported through `failed`).
    All,
    /// librdkafka's queue filled up at this index of the loaded messages. After the
    /// first `QueueFull` in a call librdkafka refuses the rest, so retrying from here
    /// keeps per-key order.
    QueueFullAt(usize),
}

impl BatchProducer {
    pub fn new<C: ProducerContext>(
        producers: &[BaseProducer<C>],
        topic: &str,
        partitioner: PartitionerFn,
        partition_count: i32,
    ) -> Result<Self, Error> {
        let name = CString::new(topic).map_err(|_| Error::TopicHandle(topic.to_owned()))?;
        let n = partition_count.max(1) as usize;
        let mut this = Self {
            rkts: Vec::with_capacity(producers.len()),
            partitioner,
            partition_count: partition_count.max(1),
            messages: Vec::new(),
            groups: Vec::with_capacity(n),
            partition_of: Vec::new(),
            cursor: vec![0; n + 1],
        };
        for producer in producers {
            // SAFETY: the producer handle is valid for the producer's lifetime, which
            // outlives this handle (see `KafkaSink`'s field order).
            let rkt = unsafe {
                rd::rd_kafka_topic_new(
                    producer.client().native_ptr(),
                    name.as_ptr(),
                    ptr::null_mut(),
                )
            };
            if rkt.is_null() {
                // `this` destroys the handles made so far.
                return Err(Error::TopicHandle(topic.to_owned()));
            }
            this.rkts.push(rkt);
        }
        Ok(this)
    }

    /// The index of the producer that owns `partition`.
    #[inline]
    pub fn owner(&self, partition: i32) -> usize {
        partition as usize % self.rkts.len()
    }

    /// The producer that owns the loaded message at `index`.
    pub fn owner_of(&self, index: usize) -> usize {
        self.owner(self.messages[index].partition)
    }

    /// Loads `batch`, grouped by partition (stable), message `i` carrying `opaque(i)`
    /// for its delivery report.
    pub fn load(&mut self, batch: &Messages, opaque: impl Fn(usize) -> usize) {
        let n = self.partition_count as usize;
        self.partition_of.clear();
        self.cursor.iter_mut().for_each(|c| *c = 0);
        for (key, _) in batch.iter() {
            // SAFETY: a valid topic handle and a key slice that outlives the call. The
            // built-in partitioners read the handle only for partition availability,
            // which every producer's handle of the topic answers alike.
            let p = unsafe {
                (self.partitioner)(
                    self.rkts[0],
                    key.as_ptr() as *const c_void,
                    key.len(),
                    self.partition_count,
                    ptr::null_mut(),
                    ptr::null_mut(),
                )
            };
            let p = p.clamp(0, self.partition_count - 1);
            self.partition_of.push(p);
            self.cursor[p as usize + 1] += 1;
        }
        self.groups.clear();
        for p in 0..n {
            self.cursor[p + 1] += self.cursor[p];
            if self.cursor[p + 1] > self.cursor[p] {
                self.groups.push((p as i32, self.cursor[p + 1]));
            }
        }
        let empty = rd::rd_kafka_message_t {
            err: rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR,
            rkt: ptr::null_mut(),
            partition: 0,
            payload: ptr::null_mut(),
            len: 0,
            key: ptr::null_mut(),
            key_len: 0,
            offset: 0,
            _private: ptr::null_mut(),
        };
        self.messages.clear();
        self.messages.resize(batch.len(), empty);
        for (i, ((key, payload), &p)) in batch.iter().zip(&self.partition_of).enumerate() {
            let slot = &mut self.cursor[p as usize];
            self.messages[*slot] = rd::rd_kafka_message_t {
                partition: p,
                payload: payload.as_ptr() as *mut c_void,
                len: payload.len(),
                key: key.as_ptr() as *mut c_void,
                key_len: key.len(),
                _private: opaque(i) as *mut c_void,
                ..empty
            };
            *slot += 1;
        }
    }

    /// Enqueues the loaded messages from index `start` on. Messages that fail for good
    /// are passed to `failed` with their error.
    pub fn enqueue(&mut self, start: usize, mut failed: impl FnMut(RDKafkaErrorCode)) -> Enqueued {
        let mut from = start;
        for &(partition, end) in &self.groups {
            if end <= from {
                continue;
            }
            let rkt = self.rkts[self.owner(partition)];
            let group = &mut self.messages[from..end];
            // SAFETY: `group` points into batch buffers that the caller keeps alive
            // and unchanged until each message's delivery report (`reports::InFlight`):
            // without RD_KAFKA_MSG_F_COPY librdkafka keeps the payload pointers. Keys are
            // always copied.
            unsafe {
                rd::rd_kafka_produce_batch(
                    rkt,
                    partition,
                    0,
                    group.as_mut_ptr(),
                    group.len() as i32,
                );
            }
            for (i, m) in group.iter().enumerate() {
                match m.err {
                    rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR => {}
                    rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR__QUEUE_FULL => {
                        return Enqueued::QueueFullAt(from + i)
                    }
                    err => failed(err.into()),
                }
            }
            from = end;
        }
        Enqueued::All
    }

    /// Messages loaded by the last `load`.
    pub fn len(&self) -> usize {
        self.messages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }
}

impl Drop for BatchProducer {
    fn drop(&mut self) {
        for &rkt in &self.rkts {
            // SAFETY: created by rd_kafka_topic_new and destroyed exactly once, before
            // its producer.
            unsafe { rd::rd_kafka_topic_destroy(rkt) }
        }
    }
}
