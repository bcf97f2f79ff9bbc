//! Writes readings to stdout as newline-delimited JSON, and nothing else.
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

pub struct StdoutSink {
    out: BufWriter<RawStdout>,
    broken: Option<String>,
    stats: Arc<DeliveryStats>,
}

impl StdoutSink {
    pub fn new(stats: Arc<DeliveryStats>) -> Self {
        Self {
            // Not std's Stdout, which treats a closed descriptor as a sink.
            out: BufWriter::with_capacity(1 << 20, RawStdout::new()),
            broken: None,
            stats,
        }
    }

    fn write_batch(&mut self, batch: &Batch) -> std::io::Result<()> {
        for (_, payload) in batch.iter() {
            self.out.write_all(payload)?;
            self.out.write_all(b"\n")?;
        }
        self.out.flush()
    }
}

impl Sink for StdoutSink {
    fn send(&mut self, batch: &Batch, shutdown: &Shutdown) {
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
