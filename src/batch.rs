//! A batch: a fixed number of encoded messages in one contiguous buffer, plus keys.
//!
//! Batches are allocated once, filled by a worker, emptied by the delivery thread and
//! sent back for reuse, so the steady state allocates nothing. Buffers are sized from the
//! encoder's upper bound on message length, so pushing never grows them.

use std::time::Instant;

/// Up to `capacity` messages; message `i` is `payloads[ends[i-1]..ends[i]]` with key
/// `keys[key_ends[i-1]..key_ends[i]]`.
#[derive(Debug)]
pub struct Batch {
    payloads: Vec<u8>,
    ends: Vec<u32>,
    keys: Vec<u8>,
    key_ends: Vec<u32>,
    capacity: usize,
    /// When the first message went in; lets a worker ship a partial batch at low rates.
    started: Option<Instant>,
    /// Index of the worker that filled this batch.
    pub worker: usize,
}

impl Batch {
    /// A batch for `capacity` messages of at most `max_len` bytes and keys of at most `max_key` bytes.
    pub fn new(capacity: usize, max_len: usize, max_key: usize, worker: usize) -> Self {
        Self {
            payloads: Vec::with_capacity(capacity * max_len),
            ends: Vec::with_capacity(capacity),
            keys: Vec::with_capacity(capacity * max_key),
            key_ends: Vec::with_capacity(capacity),
            capacity,
            started: None,
            worker,
        }
    }

    /// Appends one message: `write` gets the payload buffer and the key buffer to append to.
    #[inline]
    pub fn push(&mut self, write: impl FnOnce(&mut Vec<u8>, &mut Vec<u8>)) {
        debug_assert!(!self.is_full());
        if self.ends.is_empty() {
            self.started = Some(Instant::now());
        }
        write(&mut self.payloads, &mut self.keys);
        self.ends.push(self.payloads.len() as u32);
        self.key_ends.push(self.keys.len() as u32);
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    #[inline]
    pub fn is_full(&self) -> bool {
        self.ends.len() >= self.capacity
    }

    /// Total payload bytes.
    pub fn bytes(&self) -> usize {
        self.payloads.len()
    }

    /// When the first message of this batch was pushed.
    pub fn started(&self) -> Option<Instant> {
        self.started
    }

    /// Empties the batch, keeping its buffers.
    pub fn clear(&mut self) {
        self.payloads.clear();
        self.ends.clear();
        self.keys.clear();
        self.key_ends.clear();
        self.started = None;
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

    /// Allocated bytes (for checking that buffers never grow).
    pub fn allocated(&self) -> usize {
        self.payloads.capacity() + self.keys.capacity() + 8 * self.capacity
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_iter_clear() {
        let mut b = Batch::new(2, 16, 4, 0);
        let cap = b.allocated();
        b.push(|p, k| {
            p.extend_from_slice(b"one");
            k.extend_from_slice(b"k1");
        });
        assert!(!b.is_full() && b.started().is_some());
        b.push(|p, k| {
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
}
