//! The SPSC handoff between one worker and the delivery thread.
//!
//! Each worker has its own bounded channel of full batches and its own return channel
//! of empty ones. All batches are allocated here, up front: `in_flight` queued, one
//! being filled and one being sent. A worker that gets ahead blocks on the return
//! channel, which bounds memory and drops nothing.

use crossbeam_channel::{bounded, Receiver, Sender, TryRecvError};

use crate::deliver::batch::{Batch, Shape};

/// The worker's end: takes empty batches, ships full ones.
pub struct WorkerSide {
    full: Sender<Batch>,
    empty: Receiver<Batch>,
    spare: Vec<Batch>,
}

/// The delivery thread's end for one worker.
pub struct DeliverySide {
    pub full: Receiver<Batch>,
    empty: Sender<Batch>,
}

/// Creates the channels for worker `worker` and pre-allocates its batches.
pub fn channel(worker: usize, shape: Shape, in_flight: usize) -> (WorkerSide, DeliverySide) {
    let pool = in_flight + 2;
    let (full_tx, full_rx) = bounded(in_flight);
    let (empty_tx, empty_rx) = bounded(pool);
    let spare = (0..pool).map(|_| Batch::new(shape, worker)).collect();
    (
        WorkerSide {
            full: full_tx,
            empty: empty_rx,
            spare,
        },
        DeliverySide {
            full: full_rx,
            empty: empty_tx,
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
}

impl WorkerSide {
    /// An empty batch: a never-used one first, then a returned one, waiting if needed.
    pub fn take(&mut self) -> Take {
        if let Some(b) = self.spare.pop() {
            return Take::Ready(b);
        }
        match self.empty.try_recv() {
            Ok(b) => Take::Ready(b),
            Err(TryRecvError::Disconnected) => Take::Closed,
            Err(TryRecvError::Empty) => match self.empty.recv() {
                Ok(b) => Take::AfterWait(b),
                Err(_) => Take::Closed,
            },
        }
    }

    /// Whether `in_flight` batches are queued, so that shipping one would block.
    pub fn is_full(&self) -> bool {
        self.full.is_full()
    }

    /// Queues a full batch, blocking while `in_flight` batches are already queued.
    /// Gives the batch back if the delivery side is gone.
    pub fn ship(&mut self, batch: Batch) -> Option<Batch> {
        self.full.send(batch).err().map(|e| e.into_inner())
    }
}

impl DeliverySide {
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
        let (mut w, d) = channel(0, Shape::readings(4, 8, 4), 2);
        // in_flight + 2 batches exist; after they are all out, take() waits for a return.
        for _ in 0..4 {
            let Take::Ready(b) = w.take() else {
                panic!("expected a spare batch")
            };
            let _ = b;
        }
        let t = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(50));
            d.recycle(Batch::new(Shape::readings(4, 8, 4), 0));
            d
        });
        assert!(matches!(w.take(), Take::AfterWait(_)));
        let d = t.join().unwrap();
        drop(d);
        assert!(matches!(w.take(), Take::Closed));
    }

    #[test]
    fn ship_blocks_at_in_flight_and_fails_when_closed() {
        let (mut w, d) = channel(0, Shape::readings(1, 8, 4), 1);
        let Take::Ready(b) = w.take() else { panic!() };
        assert!(w.ship(b).is_none());
        assert_eq!(d.full.len(), 1);
        drop(d);
        let Take::Ready(b) = w.take() else { panic!() };
        assert!(w.ship(b).is_some());
    }
}
