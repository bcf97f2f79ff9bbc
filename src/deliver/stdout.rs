//! Writes readings to stdout, and nothing else: one a line (newline-delimited JSON), or
//! each preceded by its length as a varint (length-delimited Protobuf, as protobuf's
//! `writeDelimitedTo` writes a stream and `parseDelimitedFrom` reads it back).
//!
//! Each batch is flushed before it is counted as delivered. If stdout closes (a reader
//! such as `head` exits), the run stops and unwritten readings count as failed.

use std::io::{BufWriter, Write};
use std::sync::Arc;

use crate::deliver::batch::Batch;
use crate::deliver::stats::DeliveryStats;
use crate::deliver::Sink;
use crate::output::RawStdout;
use crate::shutdown::{Shutdown, StopReason};

/// How messages are told apart in the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Each message followed by `\n` (the payloads never contain one: JSON).
    Lines,
    /// Each message preceded by its length as a protobuf varint (binary payloads).
    LengthDelimited,
}

pub struct StdoutSink {
    out: BufWriter<RawStdout>,
    framing: Framing,
    broken: Option<String>,
    stats: Arc<DeliveryStats>,
}

impl StdoutSink {
    pub fn new(stats: Arc<DeliveryStats>, framing: Framing) -> Self {
        Self {
            // Not std's Stdout, which treats a closed descriptor as a sink.
            out: BufWriter::with_capacity(1 << 20, RawStdout::new()),
            framing,
            broken: None,
            stats,
        }
    }

    fn write_batch(&mut self, batch: &Batch) -> std::io::Result<()> {
        for (_, payload) in batch.iter() {
            match self.framing {
                Framing::Lines => {
                    self.out.write_all(payload)?;
                    self.out.write_all(b"\n")?;
                }
                Framing::LengthDelimited => {
                    let mut prefix = [0u8; 10];
                    let n = varint(payload.len() as u64, &mut prefix);
                    self.out.write_all(&prefix[..n])?;
                    self.out.write_all(payload)?;
                }
            }
        }
        self.out.flush()
    }
}

/// Writes `v` as a protobuf varint into `buf`; returns its length.
pub fn varint(mut v: u64, buf: &mut [u8; 10]) -> usize {
    let mut n = 0;
    while v >= 0x80 {
        buf[n] = v as u8 | 0x80;
        v >>= 7;
        n += 1;
    }
    buf[n] = v as u8;
    n + 1
}

impl Sink for StdoutSink {
    fn send(&mut self, batch: Batch, shutdown: &Shutdown, done: &mut Vec<Batch>) {
        self.write(&batch, shutdown);
        done.push(batch);
    }
}

impl StdoutSink {
    /// Writes `batch` and records its outcome.
    fn write(&mut self, batch: &Batch, shutdown: &Shutdown) {
        let n = batch.len() as u64;
        if let Some(reason) = &self.broken {
            self.stats.with(|d| d.failed(n, reason));
            return;
        }
        match self.write_batch(batch) {
            Ok(()) => {
                let bytes = batch.bytes() as u64;
                self.stats.with(|d| {
                    d.delivered += n;
                    d.bytes_delivered += bytes;
                });
            }
            Err(e) => {
                // Part of the batch may have reached the reader; we cannot know how
                // much, so the whole batch counts as failed rather than delivered.
                let reason = format!("stdout write failed: {e}");
                log::warn!("{reason}; stopping");
                self.stats.with(|d| d.failed(n, &reason));
                self.broken = Some(reason);
                shutdown.request(StopReason::StdoutClosed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_prefixes_are_protobuf_varints() {
        let mut buf = [0u8; 10];
        for (v, want) in [
            (0u64, &[0u8][..]),
            (127, &[0x7f]),
            (128, &[0x80, 1]),
            (300, &[0xac, 2]),
        ] {
            let n = varint(v, &mut buf);
            assert_eq!(&buf[..n], want, "{v}");
        }
        assert_eq!(varint(u64::MAX, &mut buf), 10);
    }
}
