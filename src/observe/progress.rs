//! The reporter: the calling thread of a run. It prints a progress line per interval,
//! enforces `run.duration`, turns signals into a stop request, and returns when the
//! delivery thread has finished (after the last worker and the sink's flush).

use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::config::Run;
use crate::deliver::stats::DeliveryStats;
use crate::generate::stats::{Generated, WorkerStats};
use crate::observe::report;
use crate::shutdown::{Shutdown, StopReason};

/// How often the reporter wakes to check for stop conditions.
const TICK: Duration = Duration::from_millis(20);

/// What the reporter reads.
pub struct Watched<'a> {
    pub workers: &'a [Arc<WorkerStats>],
    pub deliveries: &'a DeliveryStats,
    pub shutdown: &'a Shutdown,
}

/// Reports until `delivery` has finished.
pub fn until_done(run: &Run, started: Instant, w: &Watched<'_>, delivery: &JoinHandle<()>) {
    let interval = run.settings.run.report_interval.0;
    let duration = run.settings.run.duration.map(|d| d.0);
    let mut last = (Instant::now(), Generated::default(), 0u64);
    let mut next_report = started + interval;
    while !delivery.is_finished() {
        thread::sleep(TICK);
        w.shutdown.take_signal();
        if duration.is_some_and(|d| started.elapsed() >= d) && !w.shutdown.is_requested() {
            w.shutdown.request(StopReason::Duration);
        }
        let now = Instant::now();
        if now >= next_report {
            next_report += interval;
            let g = Generated::sum(w.workers);
            let (failed, line) = w.deliveries.with(|d| {
                let line = report::progress_line(
                    g.messages - last.1.messages,
                    g.bytes - last.1.bytes,
                    d.failed - last.2,
                    now - last.0,
                    &d.interval,
                );
                d.interval.reset();
                (d.failed, line)
            });
            if !run.quiet {
                crate::output::err(&line);
            }
            last = (now, g, failed);
        }
    }
}
