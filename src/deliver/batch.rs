//! A batch: a fixed number of encoded readings in one contiguous buffer, plus keys, and
//! the alerts those readings raised.
//!
//! Batches are allocated once, filled by a worker, emptied by the delivery thread and
//! sent back for reuse, so the steady state allocates nothing. Buffers are sized from the
//! encoder's upper bound on message length, so pushing never grows them.

use std::sync::OnceLock;
use std::time::Instant;

/// The clock every due time, send time and ack time in delivery is measured on:
/// microseconds since the first call, as the low 32 bits (wrapping after ~71 minutes;
/// differences are taken wrapping, and latencies are capped well below that).
pub fn clock_us(at: Instant) -> u32 {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    let origin = *ORIGIN.get_or_init(Instant::now);
    at.saturating_duration_since(origin).as_micros() as u32
}

/// Up to `capacity` messages in one buffer; message `i` is `payloads[ends[i-1]..ends[i]]`
/// with key `keys[key_ends[i-1]..key_ends[i]]`.
#[derive(Debug)]
pub struct Messages {
    payloads: Vec<u8>,
    ends: Vec<u32>,
    keys: Vec<u8>,
    key_ends: Vec<u32>,
    /// When each message was due (`clock_us`): its slot on the rate schedule, or when it
    /// was made if unpaced. Latency is measured from here.
    dues: Vec<u32>,
    capacity: usize,
}

impl Messages {
    fn new(capacity: usize, max_len: usize, max_key: usize) -> Self {
        Self {
            payloads: Vec::with_capacity(capacity * max_len),
            ends: Vec::with_capacity(capacity),
            keys: Vec::with_capacity(capacity * max_key),
            key_ends: Vec::with_capacity(capacity),
            dues: Vec::with_capacity(capacity),
            capacity,
        }
    }

    #[inline]
    fn push(&mut self, due: u32, write: impl FnOnce(&mut Vec<u8>, &mut Vec<u8>)) {
        debug_assert!(self.ends.len() < self.capacity);
        write(&mut self.payloads, &mut self.keys);
        self.ends.push(self.payloads.len() as u32);
        self.key_ends.push(self.keys.len() as u32);
        self.dues.push(due);
    }

    /// When message `i` was due (`clock_us`).
    #[inline]
    pub fn due(&self, i: usize) -> u32 {
        self.dues[i]
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Total payload bytes.
    pub fn bytes(&self) -> usize {
        self.payloads.len()
    }

    fn clear(&mut self) {
        self.payloads.clear();
        self.ends.clear();
        self.keys.clear();
        self.key_ends.clear();
        self.dues.clear();
    }

    /// The messages as `(key, payload)` pairs.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&[u8], &[u8])> + '_ {
        (0..self.ends.len()).map(move |i| {
            let (p0, k0) = if i == 0 {
                (0, 0)
            } else {
                (self.ends[i - 1] as usize, self.key_ends[i - 1] as usize)
            };
            (
                &self.keys[k0..self.key_ends[i] as usize],
                &self.payloads[p0..self.ends[i] as usize],
            )
        })
    }

    fn allocated(&self) -> usize {
        self.payloads.capacity() + self.keys.capacity() + 12 * self.capacity
    }
}

/// Alerts one reading can raise at most (one per analog sensor).
pub const MAX_ALERTS_PER_READING: usize = 4;

/// Up to `capacity` readings, plus the alerts they raised, bound for their two topics.
#[derive(Debug)]
pub struct Batch {
    readings: Messages,
    alerts: Messages,
    /// When the first reading went in; lets a worker ship a partial batch at low rates.
    started: Option<Instant>,
    /// Index of the worker that filled this batch.
    pub worker: usize,
}

/// Sizes of a batch's buffers: messages, and upper bounds on payload and key lengths.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub capacity: usize,
    pub max_len: usize,
    pub max_key: usize,
    /// Upper bound on an alert's length; 0 when alerts are off.
    pub max_alert_len: usize,
}

impl Shape {
    /// Room for `capacity` readings and no alerts.
    pub fn readings(capacity: usize, max_len: usize, max_key: usize) -> Self {
        Self {
            capacity,
            max_len,
            max_key,
            max_alert_len: 0,
        }
    }
}

impl Batch {
    /// An empty batch with buffers of `shape`, so pushing never grows them. Room for
    /// alerts is a quarter of the readings' (plus one reading's worth): alerts fire on
    /// status transitions only; a batch that runs out of alert room ships early.
    pub fn new(shape: Shape, worker: usize) -> Self {
        let alerts = if shape.max_alert_len == 0 {
            0
        } else {
            shape.capacity / 4 + MAX_ALERTS_PER_READING
        };
        Self {
            readings: Messages::new(shape.capacity, shape.max_len, shape.max_key),
            alerts: Messages::new(alerts, shape.max_alert_len, shape.max_key),
            started: None,
            worker,
        }
    }

    /// Appends one reading, due at `due` (`clock_us`): `write` gets the payload buffer
    /// and the key buffer to append to.
    #[inline]
    pub fn push(&mut self, due: u32, write: impl FnOnce(&mut Vec<u8>, &mut Vec<u8>)) {
        debug_assert!(!self.is_full());
        if self.readings.is_empty() {
            self.started = Some(Instant::now());
        }
        self.readings.push(due, write);
    }

    /// Appends one alert, due with the reading that raised it; at most
    /// `MAX_ALERTS_PER_READING` after each reading.
    #[inline]
    pub fn push_alert(&mut self, due: u32, write: impl FnOnce(&mut Vec<u8>, &mut Vec<u8>)) {
        self.alerts.push(due, write);
    }

    /// Readings in the batch.
    #[inline]
    pub fn len(&self) -> usize {
        self.readings.len()
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.readings.is_empty()
    }

    /// Full of readings, or without room for the alerts of one more reading.
    #[inline]
    pub fn is_full(&self) -> bool {
        self.readings.len() >= self.readings.capacity
            || (self.alerts.capacity > 0
                && self.alerts.len() + MAX_ALERTS_PER_READING > self.alerts.capacity)
    }

    /// Total payload bytes of the readings.
    pub fn bytes(&self) -> usize {
        self.readings.bytes()
    }

    /// When the first reading of this batch was pushed.
    pub fn started(&self) -> Option<Instant> {
        self.started
    }

    /// Empties the batch, keeping its buffers.
    pub fn clear(&mut self) {
        self.readings.clear();
        self.alerts.clear();
        self.started = None;
    }

    /// The readings as `(key, payload)` pairs.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&[u8], &[u8])> + '_ {
        self.readings.iter()
    }

    pub fn readings(&self) -> &Messages {
        &self.readings
    }

    pub fn alerts(&self) -> &Messages {
        &self.alerts
    }

    /// Allocated bytes (for checking that buffers never grow).
    pub fn allocated(&self) -> usize {
        self.readings.allocated() + self.alerts.allocated()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_iter_clear() {
        let shape = Shape {
            capacity: 2,
            max_len: 16,
            max_key: 4,
            max_alert_len: 0,
        };
        let mut b = Batch::new(shape, 0);
        let cap = b.allocated();
        b.push(0, |p, k| {
            p.extend_from_slice(b"one");
            k.extend_from_slice(b"k1");
        });
        assert!(!b.is_full() && b.started().is_some());
        b.push(0, |p, k| {
            p.extend_from_slice(b"second");
            k.extend_from_slice(b"k2");
        });
        assert!(b.is_full());
        let got: Vec<_> = b.iter().collect();
        assert_eq!(
            got,
            vec![(&b"k1"[..], &b"one"[..]), (&b"k2"[..], &b"second"[..])]
        );
        assert_eq!(b.bytes(), 9);
        b.clear();
        assert!(b.is_empty() && b.started().is_none());
        assert_eq!(b.allocated(), cap);
    }

    #[test]
    fn a_batch_ships_early_when_alert_room_runs_out() {
        let shape = Shape {
            capacity: 16,
            max_len: 8,
            max_key: 4,
            max_alert_len: 8,
        };
        let mut b = Batch::new(shape, 0);
        b.push(0, |p, _| p.push(b'r'));
        assert!(!b.is_full());
        // Room: 16 / 4 + 4 = 8 alerts; once fewer than 4 are left, the batch is full.
        for _ in 0..5 {
            b.push_alert(0, |p, _| p.push(b'a'));
        }
        assert!(b.is_full());
        assert_eq!((b.len(), b.alerts().len()), (1, 5));
        b.clear();
        assert!(b.alerts().is_empty() && !b.is_full());
    }
}
