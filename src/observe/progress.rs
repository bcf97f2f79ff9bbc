//! The reporter: the calling thread of a run. It prints a progress line per interval,
//! writes the interval log (`run.interval_log`), enforces `run.duration`, turns signals
//! into a stop request, and returns when the delivery thread has finished (after the
//! last worker and the sink's flush).

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime};

use hdrhistogram::serialization::interval_log::{IntervalLogWriter, IntervalLogWriterBuilder, Tag};
use hdrhistogram::serialization::V2DeflateSerializer;
use serde::{Deserialize, Serialize};

use crate::config::Run;
use crate::deliver::stats::DeliveryStats;
use crate::generate::stats::{Generated, WorkerStats};
use crate::observe::report::{self, Latency, Warmup};
use crate::shutdown::{Shutdown, StopReason};

/// How often the reporter wakes to check for stop conditions.
const TICK: Duration = Duration::from_millis(20);

/// What the reporter reads and writes.
pub struct Watched<'a> {
    pub workers: &'a [Arc<WorkerStats>],
    pub deliveries: &'a DeliveryStats,
    pub shutdown: &'a Shutdown,
    /// Where one JSON line per interval goes, if anywhere.
    pub interval_log: Option<&'a mut dyn Write>,
    /// Where the HdrHistogram interval log of latency goes, if anywhere.
    pub hdr_log: Option<&'a mut dyn Write>,
    /// Where the intervals are kept for the run report (`run.report_file`), if anywhere:
    /// each with its latency histogram.
    pub intervals: Option<&'a mut Vec<IntervalRecord>>,
    /// The live settings (the rate may be reloaded) and this instance's share of the
    /// fleet, for each interval's target.
    pub live: &'a crate::generate::live::Live,
    pub share: f64,
    /// What changes the rate on its own (`run.rate_profile`, `run.find_max_rate`).
    pub driver: Option<&'a mut crate::engine::schedule::Driver>,
}

/// The HdrHistogram interval log: each interval's latency histograms (µs), tagged
/// `latency` (from when each reading was due) and `ack` (from its hand-off).
type HdrLog<'a, 'b, 'w> = IntervalLogWriter<'a, 'b, &'w mut dyn Write, V2DeflateSerializer>;

/// Cumulative counts at one instant; intervals are differences of two.
#[derive(Debug, Clone, Copy)]
struct Snapshot {
    at: Instant,
    generated: Generated,
    delivered: u64,
    failed: u64,
    in_doubt: u64,
    alerts_delivered: u64,
    alerts_failed: u64,
    bytes_delivered: u64,
}

/// One line of the interval log: what happened in one reporting interval.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IntervalRecord {
    /// Seconds since the run started, at the end of the interval.
    pub t_s: f64,
    pub interval_s: f64,
    pub readings_sent: u64,
    pub readings_delivered: u64,
    pub readings_failed: u64,
    pub readings_in_doubt: u64,
    pub alerts_sent: u64,
    pub alerts_delivered: u64,
    pub alerts_failed: u64,
    /// Readings generated per second in the interval.
    pub readings_per_sec: f64,
    /// The target rate of this instance at the end of the interval (its share of
    /// `run.rate`, as reloaded); null when unpaced.
    #[serde(default)]
    pub target_per_sec: Option<f64>,
    pub alerts_per_sec: f64,
    pub mb_per_sec: f64,
    /// Latency, from when each reading was due to its ack, of the readings acknowledged
    /// in the interval.
    pub latency_ms: Latency,
    /// Their ack latency, from the hand-off to librdkafka to the ack.
    pub ack_latency_ms: Latency,
    /// In the run report only: the interval's latency histogram (µs), HdrHistogram V2
    /// compressed, base64, so that instances' intervals merge exactly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_hdr: Option<String>,
}

impl IntervalRecord {
    /// What happened between two snapshots.
    fn between(
        last: &Snapshot,
        now: &Snapshot,
        started: Instant,
        latency_ms: Latency,
        ack_latency_ms: Latency,
    ) -> Self {
        let (g, lg) = (now.generated, last.generated);
        let span = now.at - last.at;
        let (readings_per_sec, mb_per_sec) =
            report::rates(g.messages - lg.messages, g.bytes - lg.bytes, span);
        Self {
            t_s: (now.at - started).as_secs_f64(),
            interval_s: span.as_secs_f64(),
            readings_sent: g.messages - lg.messages,
            readings_delivered: now.delivered - last.delivered,
            readings_failed: now.failed - last.failed,
            readings_in_doubt: now.in_doubt - last.in_doubt,
            alerts_sent: g.alerts - lg.alerts,
            alerts_delivered: now.alerts_delivered - last.alerts_delivered,
            alerts_failed: now.alerts_failed - last.alerts_failed,
            readings_per_sec,
            target_per_sec: None,
            alerts_per_sec: report::rates(g.alerts - lg.alerts, 0, span).0,
            mb_per_sec,
            latency_ms,
            ack_latency_ms,
            latency_hdr: None,
        }
    }
}

/// Reports until `delivery` has finished; the interval log ends with the last, partial
/// interval, so its lines add up to the summary's counts. Returns what the warm-up
/// (`run.warmup`) counted, if the run got past it.
pub fn until_done(
    run: &Run,
    started: Instant,
    w: &mut Watched<'_>,
    delivery: &JoinHandle<()>,
) -> Option<Warmup> {
    let mut serializer = V2DeflateSerializer::new();
    let mut hdr_out = w.hdr_log.take();
    let mut hdr = hdr_out.as_mut().and_then(|out| {
        let now = SystemTime::now() - started.elapsed();
        IntervalLogWriterBuilder::new()
            .add_comment("iotblast latency in microseconds: tag latency from when each reading was due, tag ack from its hand-off to librdkafka")
            .with_start_time(now)
            .with_base_time(now)
            .begin_log_with(out, &mut serializer)
            .map_err(|e| log::warn!("run.hdr_log: cannot write, no HDR log: {e}"))
            .ok()
    });
    let interval = run.settings.run.report_interval.0;
    let duration = run.settings.run.duration.map(|d| d.0);
    let warmup_for = run.settings.run.warmup.map(|d| d.0);
    let mut warmup = None;
    let k = &run.settings.kafka;
    let mut stall = Stall::new(k.flush_timeout.0.max(k.connect_timeout.0));
    let bar = progress_bar(run);
    let mut last = snapshot(w, started);
    let mut next_report = started + interval;
    while !delivery.is_finished() {
        thread::sleep(TICK);
        w.shutdown.take_signal();
        if duration.is_some_and(|d| started.elapsed() >= d) && !w.shutdown.is_requested() {
            w.shutdown.request(StopReason::Duration);
        }
        // One snapshot per tick serves both the stall check and the bar.
        let now = snapshot(w, Instant::now());
        if stall.stuck(&now) && !w.shutdown.is_requested() {
            // Brokers that refuse writes for want of in-sync replicas do answer: say so.
            let short = w.deliveries.with(|d| d.under_min_isr.partitions.len());
            let why = match short {
                0 => "the brokers are not answering".to_owned(),
                n => format!("{n} partitions have fewer in-sync replicas than min.insync.replicas, so the brokers refuse their writes (NOT_ENOUGH_REPLICAS) and librdkafka retries them"),
            };
            log::error!(
                "no delivery outcome for {} while messages are outstanding: {why}; stopping",
                humantime::format_duration(stall.limit)
            );
            w.shutdown.request(StopReason::Error);
        }
        drive(w, started);
        if warmup.is_none() && warmup_for.is_some_and(|d| started.elapsed() >= d) {
            warmup = Some(end_warmup(w, started));
        }
        if let Some((bar, unit)) = &bar {
            bar.set_position(match unit {
                BarUnit::Messages => now.generated.messages,
                BarUnit::Millis => started.elapsed().as_millis() as u64,
            });
        }
        if Instant::now() >= next_report {
            next_report += interval;
            last = match &bar {
                // Printed above the bar, so the bar stays whole.
                Some((bar, _)) => bar.suspend(|| report_interval(run, started, w, &mut hdr, last)),
                None => report_interval(run, started, w, &mut hdr, last),
            };
        }
    }
    if w.interval_log.is_some() || hdr.is_some() || w.intervals.is_some() {
        report_interval(run, started, w, &mut hdr, last);
    }
    if let Some((bar, _)) = bar {
        bar.finish_and_clear();
    }
    if warmup_for.is_some() && warmup.is_none() {
        log::warn!("the run ended within its warm-up; rates and latency include all of it");
    }
    warmup
}

/// Lets the rate driver, if any, publish its next rate; stops the run when its search
/// is over.
fn drive(w: &mut Watched<'_>, started: Instant) {
    if let Some(driver) = w.driver.as_deref_mut() {
        let sent = Generated::sum(w.workers).messages;
        let over = driver.tick(started.elapsed(), w.live, w.deliveries, sent);
        if over && !w.shutdown.is_requested() {
            w.shutdown.request(StopReason::SearchDone);
        }
    }
}

/// What a progress bar counts: readings for a `--messages` run, time for a `--duration` run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BarUnit {
    Messages,
    Millis,
}

/// What the progress bar of `run` counts, and to what total: only for a bounded run
/// whose stderr is a terminal (otherwise progress stays in plain lines), and not quiet.
fn bar_plan(run: &Run, stderr_is_terminal: bool) -> Option<(BarUnit, u64)> {
    if run.quiet || !stderr_is_terminal {
        return None;
    }
    let r = &run.settings.run;
    match (r.messages, r.duration) {
        (Some(m), _) => {
            // This instance's share of the fleet-wide count.
            let devices = crate::generate::topology::instance_devices(run);
            let quota = crate::generate::topology::Quota::new(m.0, run.devices());
            Some((BarUnit::Messages, quota.total(&devices)))
        }
        (None, Some(d)) => Some((BarUnit::Millis, d.0.as_millis() as u64)),
        (None, None) => None,
    }
}

/// A live progress bar on stderr (percent done, rate and ETA), per [`bar_plan`].
fn progress_bar(run: &Run) -> Option<(indicatif::ProgressBar, BarUnit)> {
    let (unit, total) = bar_plan(run, std::io::stderr().is_terminal())?;
    let template = match unit {
        BarUnit::Messages => {
            "{percent:>3}% [{bar:30}] {human_pos}/{human_len} readings, {readings_rate}, ETA {eta}"
        }
        BarUnit::Millis => "{percent:>3}% [{bar:30}] {elapsed} of the run, ETA {eta}",
    };
    let style = indicatif::ProgressStyle::with_template(template)
        .expect("a valid static template")
        .with_key(
            "readings_rate",
            |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{:.0}/s", state.per_sec());
            },
        )
        .progress_chars("=> ");
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(total),
        indicatif::ProgressDrawTarget::stderr(),
    );
    bar.set_style(style);
    Some((bar, unit))
}

/// Notices a cluster that stopped answering: messages outstanding and not one outcome
/// (delivered, failed, in doubt) for `limit`, the longer of the flush and connect
/// timeouts (so a slow but working cluster, whose acks take longer than a short flush
/// timeout, is not mistaken for a hung one). Without this a run with `--messages`
/// against a hung broker would wait for librdkafka's message timeout (minutes) behind
/// a full queue.
struct Stall {
    limit: Duration,
    settled: u64,
    since: Instant,
}

impl Stall {
    fn new(limit: Duration) -> Self {
        Self {
            limit,
            settled: 0,
            since: Instant::now(),
        }
    }

    /// Whether outcomes have not moved for `limit` while messages were outstanding.
    fn stuck(&mut self, s: &Snapshot) -> bool {
        let settled = s.delivered + s.failed + s.in_doubt;
        let outstanding = s.generated.messages > settled;
        if settled != self.settled || !outstanding {
            self.settled = settled;
            self.since = s.at;
            return false;
        }
        s.at.saturating_duration_since(self.since) >= self.limit
    }
}

/// Ends the warm-up: records its counts, and restarts the whole-run latency histogram
/// so the summary's latency leaves the warm-up out.
fn end_warmup(w: &Watched<'_>, started: Instant) -> Warmup {
    let s = snapshot(w, Instant::now());
    w.deliveries.with(|d| {
        d.latency.reset();
        d.ack_latency.reset();
    });
    Warmup {
        seconds: (s.at - started).as_secs_f64(),
        messages_sent: s.generated.messages,
        messages_delivered: s.delivered,
        alerts_sent: s.generated.alerts,
        alerts_delivered: s.alerts_delivered,
        bytes_delivered: s.bytes_delivered,
    }
}

fn snapshot(w: &Watched<'_>, at: Instant) -> Snapshot {
    let generated = Generated::sum(w.workers);
    w.deliveries.with(|d| Snapshot {
        at,
        generated,
        delivered: d.delivered,
        failed: d.failed,
        in_doubt: d.in_doubt,
        alerts_delivered: d.alerts_delivered,
        alerts_failed: d.alerts_failed,
        bytes_delivered: d.bytes_delivered,
    })
}

/// Prints the progress line and logs the interval since `last`; returns the new snapshot.
fn report_interval(
    run: &Run,
    started: Instant,
    w: &mut Watched<'_>,
    hdr: &mut Option<HdrLog<'_, '_, '_>>,
    last: Snapshot,
) -> Snapshot {
    let now = snapshot(w, Instant::now());
    let (g, lg) = (now.generated, last.generated);
    let span = now.at - last.at;
    let (line, latency, ack, histograms) = w.deliveries.with(|d| {
        let line = report::progress_line(
            g.messages - lg.messages,
            g.bytes - lg.bytes,
            now.failed - last.failed,
            span,
            &d.interval,
        );
        let (latency, ack) = (
            Latency::from_us(&d.interval),
            Latency::from_us(&d.ack_interval),
        );
        // Copied out, so compressing them does not hold up the delivery thread.
        let histograms = (hdr.is_some() || w.intervals.is_some())
            .then(|| (d.interval.clone(), d.ack_interval.clone()));
        d.reset_interval();
        (line, latency, ack, histograms)
    });
    if let (Some(log), Some((h, a))) = (hdr.as_mut(), histograms.as_ref()) {
        let start = last.at - started;
        let written = log
            .write_histogram(h, start, span, Tag::new("latency"))
            .and_then(|()| log.write_histogram(a, start, span, Tag::new("ack")));
        if let Err(e) = written {
            log::warn!("run.hdr_log: cannot write, no more HDR intervals: {e:?}");
            *hdr = None;
        }
    }
    if !run.quiet {
        crate::output::report(run.sink == crate::config::SinkKind::Stdout, &line);
    }
    let record = IntervalRecord {
        target_per_sec: w.live.get().0.rate.map(|r| r * w.share),
        ..IntervalRecord::between(&last, &now, started, latency, ack)
    };
    if let Some(log) = w.interval_log.as_mut() {
        let text = serde_json::to_string(&record).expect("the record serialises");
        if let Err(e) = writeln!(log, "{text}").and_then(|()| log.flush()) {
            log::warn!("run.interval_log: cannot write, no more interval lines: {e}");
            w.interval_log = None;
        }
    }
    if let (Some(kept), Some((h, _))) = (w.intervals.as_mut(), histograms) {
        kept.push(IntervalRecord {
            latency_hdr: Some(crate::observe::report_file::encode_histogram(&h)),
            ..record
        });
    }
    now
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Settings, SinkKind};
    use crate::units::{Count, Dur};

    fn run(tune: impl FnOnce(&mut Settings)) -> Run {
        let mut s = Settings::default();
        tune(&mut s);
        Run::new(s, SinkKind::Null).unwrap()
    }

    #[test]
    fn a_bar_only_for_bounded_runs_on_a_terminal() {
        let messages = run(|s| s.run.messages = Some(Count(5000)));
        assert_eq!(bar_plan(&messages, true), Some((BarUnit::Messages, 5000)));
        assert_eq!(
            bar_plan(&messages, false),
            None,
            "not a terminal: plain lines"
        );
        let timed = run(|s| s.run.duration = Some(Dur::ms(3000)));
        assert_eq!(bar_plan(&timed, true), Some((BarUnit::Millis, 3000)));
        assert_eq!(bar_plan(&run(|_| {}), true), None, "unbounded");
        let mut quiet = messages.clone();
        quiet.quiet = true;
        assert_eq!(bar_plan(&quiet, true), None);
        // An instance's bar counts its own share.
        let shared = run(|s| {
            s.device.simulator.device_count = Count(3000);
            s.run.messages = Some(Count(3000));
            s.run.instance_count = 3;
            s.run.instance_index = 1;
        });
        assert_eq!(bar_plan(&shared, true), Some((BarUnit::Messages, 1000)));
    }
}
