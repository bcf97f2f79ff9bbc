//! The SPSC handoff between one worker and the delivery thread.
//!
//! Each worker has its own bounded channel of full batches and its own return channel
//! of empty ones. All batches are allocated here, up front: `in_flight` queued, one
//! being filled and one being sent. A worker that gets ahead blocks on the return
//! channel, which bounds memory and drops nothing.

use std::sync::atomic::{AtomicI64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender, TryRecvError};

use crate::deliver::batch::{Batch, Shape};

/// The worker's end: takes empty batches, ships full ones.
pub struct WorkerSide {
    full: Sender<Batch>,
    empty: Receiver<Batch>,
    spare: Vec<Batch>,
    depth: Arc<Depth>,
}

/// The delivery thread's end for one worker.
pub struct DeliverySide {
    /// The worker's index (`Batch::worker`).
    pub worker: usize,
    pub full: Receiver<Batch>,
    empty: Sender<Batch>,
    depth: Arc<Depth>,
}

/// How many full batches wait in one worker's channel, for the metrics endpoint.
///
/// Why a counter beside the channel rather than `len()` on a clone of one of its ends:
/// a cloned end keeps the channel connected, so a worker would never see the delivery
/// thread go (or the delivery thread a worker finish).
#[derive(Debug)]
pub struct Depth {
    queued: AtomicI64,
    /// The channel's bound, `in_flight`.
    pub capacity: usize,
}

impl Depth {
    /// Batches queued now. A batch is counted just before it is sent and uncounted as
    /// it is taken, so a reader between the two never sees a negative depth.
    pub fn queued(&self) -> u64 {
        self.queued.load(Relaxed).max(0) as u64
    }
}

/// Creates the channels for worker `worker` and pre-allocates its batches: `in_flight`
/// queued, one being filled, one being sent, and `held` more that the sink may keep
/// until their messages are delivered (`Sink::holds_bytes`).
pub fn channel(
    worker: usize,
    shape: Shape,
    in_flight: usize,
    held: usize,
) -> (WorkerSide, DeliverySide) {
    let pool = in_flight + 2 + held;
    let (full_tx, full_rx) = bounded(in_flight);
    let (empty_tx, empty_rx) = bounded(pool);
    let spare = (0..pool).map(|_| Batch::new(shape, worker)).collect();
    let depth = Arc::new(Depth {
        queued: AtomicI64::new(0),
        capacity: in_flight,
    });
    (
        WorkerSide {
            full: full_tx,
            empty: empty_rx,
            spare,
            depth: Arc::clone(&depth),
        },
        DeliverySide {
            worker,
            full: full_rx,
            empty: empty_tx,
            depth,
        },
    )
}

/// What taking an empty batch found.
pub enum Take {
    /// One was ready.
    Ready(Batch),
    /// One arrived after waiting (the delivery side was behind).
    AfterWait(Batch),
    /// The delivery side is gone.
    Closed,
    /// The wait was given up (see `take`).
    GaveUp,
}

/// How often a worker waiting for an empty batch asks whether to give up.
const GIVE_UP_CHECK: Duration = Duration::from_millis(10);

impl WorkerSide {
    /// An empty batch: a never-used one first, then a returned one, waiting if needed
    /// until `give_up()`. Why a worker must be able to give up: a batch comes back only
    /// once librdkafka is done with it, so when a broker stops answering every batch
    /// can be held, and the delivery thread flushes and purges them only after every
    /// worker has stopped.
    pub fn take(&mut self, give_up: impl Fn() -> bool) -> Take {
        if let Some(b) = self.spare.pop() {
            return Take::Ready(b);
        }
        match self.empty.try_recv() {
            Ok(b) => return Take::Ready(b),
            Err(TryRecvError::Disconnected) => return Take::Closed,
            Err(TryRecvError::Empty) => {}
        }
        loop {
            match self.empty.recv_timeout(GIVE_UP_CHECK) {
                Ok(b) => return Take::AfterWait(b),
                Err(RecvTimeoutError::Disconnected) => return Take::Closed,
                Err(RecvTimeoutError::Timeout) if give_up() => return Take::GaveUp,
                Err(RecvTimeoutError::Timeout) => {}
            }
        }
    }

    /// Whether `in_flight` batches are queued, so that shipping one would block.
    pub fn is_full(&self) -> bool {
        self.full.is_full()
    }

    /// Queues a full batch, blocking while `in_flight` batches are already queued.
    /// Gives the batch back if the delivery side is gone.
    pub fn ship(&mut self, batch: Batch) -> Option<Batch> {
        self.depth.queued.fetch_add(1, Relaxed);
        let refused = self.full.send(batch).err().map(|e| e.into_inner());
        if refused.is_some() {
            self.depth.queued.fetch_sub(1, Relaxed);
        }
        refused
    }
}

impl DeliverySide {
    /// A full batch if one is queued, uncounting it from the depth.
    pub fn try_take(&self) -> Result<Batch, TryRecvError> {
        let taken = self.full.try_recv();
        if taken.is_ok() {
            self.depth.queued.fetch_sub(1, Relaxed);
        }
        taken
    }

    /// The queue depth of this worker's channel, shared with the metrics.
    pub fn depth(&self) -> Arc<Depth> {
        Arc::clone(&self.depth)
    }

    /// Clears a sent batch and returns it to its worker. If the worker has finished,
    /// the batch is simply dropped.
    pub fn recycle(&self, mut batch: Batch) {
        batch.clear();
        let _ = self.empty.try_send(batch);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_circulate_without_new_allocations() {
        let (mut w, d) = channel(0, Shape::readings(4, 8, 4), 2, 0);
        // in_flight + 2 batches exist; after they are all out, take() waits for a return.
        for _ in 0..4 {
            let Take::Ready(b) = w.take(|| false) else {
                panic!("expected a spare batch")
            };
            let _ = b;
        }
        let t = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(50));
            d.recycle(Batch::new(Shape::readings(4, 8, 4), 0));
            d
        });
        assert!(matches!(w.take(|| false), Take::AfterWait(_)));
        let d = t.join().unwrap();
        drop(d);
        assert!(matches!(w.take(|| false), Take::Closed));
    }

    #[test]
    fn a_worker_waiting_for_an_empty_batch_can_give_up() {
        let (mut w, d) = channel(0, Shape::readings(4, 8, 4), 1, 0);
        while let Take::Ready(_) = w.take(|| true) {}
        // Every batch is out (held downstream) and none comes back: without giving up,
        // this would wait for as long as the delivery side lives.
        let asked = std::cell::Cell::new(0);
        let took = w.take(|| {
            asked.set(asked.get() + 1);
            asked.get() == 3
        });
        assert!(matches!(took, Take::GaveUp));
        assert_eq!(asked.get(), 3);
        drop(d);
    }

    #[test]
    fn ship_blocks_at_in_flight_and_fails_when_closed() {
        let (mut w, d) = channel(0, Shape::readings(1, 8, 4), 1, 0);
        let Take::Ready(b) = w.take(|| false) else {
            panic!()
        };
        assert!(w.ship(b).is_none());
        assert_eq!(d.full.len(), 1);
        drop(d);
        let Take::Ready(b) = w.take(|| false) else {
            panic!()
        };
        assert!(w.ship(b).is_some());
    }
}
