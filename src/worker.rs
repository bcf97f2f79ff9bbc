//! A generator thread: paces, simulates, encodes and batches the readings of its devices,
//! and the alerts they raise.
//!
//! This is the per-message hot loop. It owns everything it touches (device states,
//! encoder, batches, pacer, counters) and allocates nothing once running: device states
//! are allocated at start, batches come pre-allocated from the handoff and return to it.
//! Readings go out in rounds, seq 0 for every device of the range, then seq 1, and so
//! on, so each device's seq is contiguous however the run ends, and the shared trend
//! point is computed once per round. Shared state (stop flag, counters) is touched once
//! per batch.

use std::ops::Range;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::batch::Batch;
use crate::encoder::Encoder;
use crate::handoff::{Take, WorkerSide};
use crate::live::Live;
use crate::pacer::Pacer;
use crate::shutdown::Shutdown;
use crate::simulate::DeviceState;
use crate::stats::WorkerStats;
use crate::topology::Quota;

/// Unpaced, read the wall clock once per this many readings.
const CLOCK_EVERY: u32 = 32;

/// What waiting for the pacer ended with.
enum Wait {
    Due,
    Stop,
    /// The live settings changed: apply them, then wait again.
    Changed,
}

/// Longest single sleep while pacing, so a stop request is seen promptly.
const MAX_SLEEP: Duration = Duration::from_millis(50);

pub struct Worker {
    pub devices: Range<u64>,
    pub encoder: Encoder,
    pub quota: Option<Quota>,
    /// This worker's share of the fleet (its devices / all devices), and so of the rate.
    pub share: f64,
    /// Rate and thresholds, which may change while running.
    pub live: Arc<Live>,
    /// How long a partial batch may wait before it is shipped.
    pub linger: Duration,
    pub handoff: WorkerSide,
    pub stats: Arc<WorkerStats>,
    pub shutdown: Arc<Shutdown>,
    /// Whether to encode alerts (the sink has an alerts topic).
    pub alerts: bool,
}

impl Worker {
    /// Runs until the quota is met, a stop is requested or the delivery side goes away.
    pub fn run(mut self) {
        let Some(mut batch) = self.take() else { return };
        let mut encoder = self.encoder.clone();
        let mut pacer = None;
        let mut seen = None;
        self.refresh(&mut seen, &mut pacer, &mut encoder);
        let first = self.devices.start;
        let mut states: Vec<DeviceState> = self
            .devices
            .clone()
            .map(|d| encoder.fleet().init_state(d))
            .collect();
        let mut timestamp = now_ms();
        let mut since_clock = 0u32;
        let mut alerts = 0u64;
        'run: for seq in 0u64.. {
            let active = match &self.quota {
                Some(q) => q.active(&self.devices, seq),
                None => self.devices.clone(),
            };
            if active.is_empty() {
                break;
            }
            // Shared by every device in the round. Recomputed after a live change
            // below, since the sample interval may have changed.
            let mut trend = encoder.fleet().derived.clock.trend(seq);
            let mut trend_version = seen;
            for device in active {
                while let Some(p) = pacer.as_mut() {
                    match self.wait_until_due(p, &mut batch, seen) {
                        Wait::Due => {
                            p.advance();
                            since_clock = CLOCK_EVERY;
                            break;
                        }
                        Wait::Stop => break 'run,
                        Wait::Changed => self.refresh(&mut seen, &mut pacer, &mut encoder),
                    }
                }
                // Unpaced, 32 readings take ~10 µs, far below the timestamp's 1 ms
                // resolution, so the clock is read once per 32; paced, every time.
                if since_clock >= CLOCK_EVERY {
                    timestamp = now_ms();
                    since_clock = 0;
                }
                since_clock += 1;
                if trend_version != seen {
                    trend = encoder.fleet().derived.clock.trend(seq);
                    trend_version = seen;
                }
                let st = &mut states[(device - first) as usize];
                let reading = encoder.fleet().step(st, device, seq, &trend, timestamp);
                batch.push(|payload, key| {
                    encoder.encode(&reading, payload);
                    encoder.write_key(device, key);
                });
                if self.alerts {
                    for sensor in reading.transitions() {
                        batch.push_alert(|payload, key| {
                            encoder.encode_alert(&reading, sensor, payload);
                            encoder.write_key(device, key);
                        });
                        alerts += 1;
                    }
                }
                if batch.is_full() {
                    self.stats.alerts.fetch_add(alerts, Relaxed);
                    alerts = 0;
                    if !self.ship(&mut batch) {
                        return;
                    }
                    if self.shutdown.is_requested() {
                        break 'run;
                    }
                    self.refresh(&mut seen, &mut pacer, &mut encoder);
                }
            }
        }
        self.stats.alerts.fetch_add(alerts, Relaxed);
        if !batch.is_empty() {
            self.ship(&mut batch);
        }
    }

    /// Applies the live settings if they changed since version `seen`: a new rate
    /// re-anchors the pacer at now; thresholds, trends, anomalies and the sample interval
    /// go to the encoder's fleet. Called between
    /// readings, so the device/seq sequence is untouched.
    fn refresh(&self, seen: &mut Option<u64>, pacer: &mut Option<Pacer>, encoder: &mut Encoder) {
        if *seen == Some(self.live.version()) {
            return;
        }
        let (settings, version) = self.live.get();
        *seen = Some(version);
        let rate = settings.rate.map(|r| r * self.share);
        if rate != pacer.as_ref().map(Pacer::rate) {
            *pacer = rate.map(Pacer::new);
        }
        encoder.set_live(&settings.fleet);
    }

    /// Sleeps until the pacer's next slot, shipping a partial batch that has waited
    /// longer than `linger`; returns early on a stop request or a live change.
    fn wait_until_due(&mut self, pacer: &Pacer, batch: &mut Batch, seen: Option<u64>) -> Wait {
        loop {
            let now = Instant::now();
            let due = pacer.due();
            if now >= due {
                return Wait::Due;
            }
            if self.shutdown.is_requested() {
                return Wait::Stop;
            }
            if seen != Some(self.live.version()) {
                return Wait::Changed;
            }
            let mut wake = due.min(now + MAX_SLEEP);
            if let Some(started) = batch.started() {
                let ship_at = started + self.linger;
                if now >= ship_at {
                    if !self.ship(batch) {
                        return Wait::Stop;
                    }
                    continue;
                }
                wake = wake.min(ship_at);
            }
            std::thread::sleep(wake - now);
        }
    }

    /// Swaps `batch` for an empty one and queues the full one. False if the delivery
    /// side is gone, in which case the readings are counted as lost.
    fn ship(&mut self, batch: &mut Batch) -> bool {
        let Some(empty) = self.take() else {
            self.stats
                .add_batch(batch.len() as u64, batch.bytes() as u64);
            self.lose(batch.len());
            batch.clear();
            return false;
        };
        let full = std::mem::replace(batch, empty);
        let (n, bytes) = (full.len() as u64, full.bytes() as u64);
        self.stats.add_batch(n, bytes);
        let t = Instant::now();
        let shipped = self.handoff.ship(full).is_none();
        self.add_blocked(t.elapsed());
        if !shipped {
            self.lose(n as usize);
        }
        shipped
    }

    fn take(&mut self) -> Option<Batch> {
        let t = Instant::now();
        match self.handoff.take() {
            Take::Ready(b) => Some(b),
            Take::AfterWait(b) => {
                self.add_blocked(t.elapsed());
                Some(b)
            }
            Take::Closed => None,
        }
    }

    fn add_blocked(&self, d: Duration) {
        // Only waits longer than a wake-up count as backpressure.
        if d > Duration::from_micros(20) {
            self.stats
                .blocked_ns
                .fetch_add(d.as_nanos() as u64, Relaxed);
        }
    }

    fn lose(&self, n: usize) {
        self.stats.lost.fetch_add(n as u64, Relaxed);
    }
}

/// Wall-clock milliseconds since the Unix epoch (the reading's `timestamp`).
#[inline]
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
