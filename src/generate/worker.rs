//! A generator thread: paces, simulates, encodes and batches the readings of its devices,
//! and the alerts they raise.
//!
//! This is the per-message hot loop. It owns everything it touches (its slice of the
//! fleet, encoder, batches, pacer, counters) and allocates nothing once running: device
//! states are allocated at start, batches come pre-allocated from the hand-off and
//! return to it. Readings go out in rounds, seq 0 for every device of the range, then
//! seq 1, and so on, so each device's seq is contiguous however the run ends. Shared
//! state (stop flag, counters, live settings) is touched once per batch.

use std::ops::Range;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::config::settings::Format;
use crate::deliver::batch::{clock_us, Batch};
use crate::deliver::handoff::{Take, WorkerSide};
use crate::generate::encoder::Encoder;
use crate::generate::live::Live;
use crate::generate::pacer::Pacer;
use crate::generate::stats::WorkerStats;
use crate::generate::topology::Quota;
use crate::model::{Fleet, FleetSlice, FleetSpec};
use crate::shutdown::Shutdown;

/// Unpaced, read the wall clock once per this many readings.
const CLOCK_EVERY: u32 = 32;

/// Longest single sleep while pacing, so a stop request is seen promptly.
const MAX_SLEEP: Duration = Duration::from_millis(50);

/// What waiting for the pacer ended with.
enum Wait {
    Due,
    Stop,
    /// The live settings changed: apply them, then wait again.
    Changed,
}

/// The per-message work of a worker: step a device, encode its reading and the alerts
/// it raises into a batch. Benchmarks drive it directly.
#[derive(Debug, Clone)]
pub struct Emitter {
    slice: FleetSlice,
    encoder: Encoder,
    /// Whether to encode alerts (the sink has somewhere to put them).
    alerts: bool,
}

impl Emitter {
    /// Emits the readings of `devices` of `fleet` in `format`, with alerts if `alerts`.
    pub fn new(fleet: Fleet, devices: Range<u64>, alerts: bool, format: Format) -> Self {
        Self {
            encoder: Encoder::new(&fleet, format),
            slice: FleetSlice::new(fleet, devices),
            alerts,
        }
    }

    pub fn encoder(&self) -> &Encoder {
        &self.encoder
    }

    /// Takes the live part of `spec` (a reload), between two readings.
    pub fn set_live(&mut self, spec: &FleetSpec) {
        self.slice.set_live(spec);
    }

    /// Steps `device` to `seq` and writes its reading, and any alerts, into `batch`,
    /// which must not be full; `due` (`clock_us`) is when the reading was due. The
    /// batch counts the alerts (`Batch::alerts`).
    #[inline]
    pub fn emit(&mut self, device: u64, seq: u64, timestamp_ms: i64, due: u32, batch: &mut Batch) {
        let reading = self.slice.step(device, seq, timestamp_ms);
        let encoder = &self.encoder;
        batch.push(due, |payload, key| {
            encoder.encode(&reading, payload);
            encoder.write_key(device, key);
        });
        if !self.alerts {
            return;
        }
        for sensor in reading.transitions() {
            let spec = self.slice.fleet().spec.thresholds.sensor(sensor);
            batch.push_alert(due, |payload, key| {
                encoder.encode_alert(&reading, sensor, spec, payload);
                encoder.write_key(device, key);
            });
        }
    }
}

/// One generator thread's setup; [`Worker::run`] consumes it.
pub struct Worker {
    pub devices: Range<u64>,
    /// The model; the worker steps its own copy.
    pub fleet: Fleet,
    pub quota: Option<Quota>,
    /// This worker's share of the fleet (its devices / all devices), and so of the rate.
    pub share: f64,
    /// Rate and model settings, which may change while running.
    pub live: Arc<Live>,
    /// How long a partial batch may wait before it is shipped.
    pub linger: Duration,
    pub handoff: WorkerSide,
    pub stats: Arc<WorkerStats>,
    pub shutdown: Arc<Shutdown>,
    /// Whether to encode alerts (the sink has an alerts topic).
    pub alerts: bool,
    /// Drop a full batch when the hand-off queue is full instead of waiting
    /// (`run.on_backpressure: drop`).
    pub drop_when_full: bool,
    /// How readings and alerts are encoded (`run.format`).
    pub format: Format,
    /// How long after a stop the worker may still wait for an empty batch: the flush
    /// timeout, the time the delivery side has to finish after a stop.
    pub stop_grace: Duration,
}

/// What a running worker keeps between readings.
struct Running {
    emitter: Emitter,
    pacer: Option<Pacer>,
    /// The live settings' version last applied.
    seen: Option<u64>,
    timestamp: i64,
    /// `clock_us` when the clock was last read.
    now: u32,
    /// When the next reading is due: its slot on the schedule, or now when unpaced.
    due: u32,
    since_clock: u32,
}

impl Worker {
    /// Runs until the quota is met, a stop is requested or the delivery side goes away,
    /// and records when it stopped.
    pub fn run(self) {
        let stats = Arc::clone(&self.stats);
        self.generate();
        stats.end();
    }

    fn generate(mut self) {
        let Some(mut batch) = self.take() else { return };
        let emitter = Emitter::new(
            self.fleet.clone(),
            self.devices.clone(),
            self.alerts,
            self.format,
        );
        let mut r = Running {
            emitter,
            pacer: None,
            seen: None,
            timestamp: now_ms(),
            now: clock_us(Instant::now()),
            due: 0,
            since_clock: 0,
        };
        self.refresh(&mut r);
        'run: for seq in 0u64.. {
            let active = match &self.quota {
                Some(q) => q.active(&self.devices, seq),
                None => self.devices.clone(),
            };
            if active.is_empty() {
                break;
            }
            for device in active {
                if !self.wait_turn(&mut r, &mut batch) {
                    break 'run;
                }
                r.emitter.emit(device, seq, r.timestamp, r.due, &mut batch);
                if batch.is_full() {
                    if !self.ship(&mut batch) {
                        return;
                    }
                    if self.shutdown.is_requested() {
                        break 'run;
                    }
                    self.refresh(&mut r);
                }
            }
        }
        if !batch.is_empty() {
            self.ship(&mut batch);
        }
    }

    /// Waits for the next reading's slot when paced, and updates the timestamp. False
    /// when the run must stop.
    #[inline]
    fn wait_turn(&mut self, r: &mut Running, batch: &mut Batch) -> bool {
        let mut slot = None;
        while let Some(p) = r.pacer.as_mut() {
            match self.wait_until_due(p, batch, r.seen) {
                Wait::Due => {
                    slot = Some(p.due());
                    p.advance();
                    r.since_clock = CLOCK_EVERY;
                    break;
                }
                Wait::Stop => return false,
                Wait::Changed => self.refresh(r),
            }
        }
        // Unpaced, 32 readings take ~10 µs, far below the timestamp's 1 ms resolution,
        // so the clock is read once per 32; paced, every time.
        if r.since_clock >= CLOCK_EVERY {
            r.timestamp = now_ms();
            r.now = clock_us(Instant::now());
            r.since_clock = 0;
        }
        r.since_clock += 1;
        // Paced, a reading is due at its slot on the absolute schedule, however late it
        // is made: latency then includes any time the schedule fell behind (no
        // coordinated omission). Unpaced, it is due when it is made.
        r.due = slot.map_or(r.now, clock_us);
        true
    }

    /// Applies the live settings if they changed since the version last seen: a new
    /// rate re-anchors the pacer at now; the model's live part goes to the emitter.
    /// Called between readings, so the device/seq sequence is untouched.
    fn refresh(&self, r: &mut Running) {
        if r.seen == Some(self.live.version()) {
            return;
        }
        let (settings, version) = self.live.get();
        r.seen = Some(version);
        let rate = settings.rate.map(|rate| rate * self.share);
        if rate != r.pacer.as_ref().map(Pacer::rate) {
            r.pacer = rate.map(Pacer::new);
        }
        r.emitter.set_live(&settings.fleet);
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

    /// Swaps `batch` for an empty one and queues the full one, publishing its counts
    /// (so the counters advance at every ship, full or lingering). False if the
    /// delivery side is gone, in which case its readings and alerts are counted as lost.
    fn ship(&mut self, batch: &mut Batch) -> bool {
        let counts = (batch.len() as u64, batch.alerts().len() as u64);
        if self.drop_when_full && self.handoff.is_full() {
            // Dropped here, before it counts as generated: never sent, never delivered.
            self.stats.drop_batch(counts.0, counts.1);
            batch.clear();
            return true;
        }
        self.stats
            .add_batch(counts.0, counts.1, batch.bytes() as u64);
        let Some(empty) = self.take() else {
            self.stats.lose(counts.0, counts.1);
            batch.clear();
            return false;
        };
        let full = std::mem::replace(batch, empty);
        let t = Instant::now();
        let shipped = self.handoff.ship(full).is_none();
        self.add_blocked(t.elapsed());
        if !shipped {
            self.stats.lose(counts.0, counts.1);
        }
        shipped
    }

    fn take(&mut self) -> Option<Batch> {
        let t = Instant::now();
        let (shutdown, grace) = (&self.shutdown, self.stop_grace);
        match self.handoff.take(|| shutdown.past_grace(grace)) {
            Take::Ready(b) => Some(b),
            Take::AfterWait(b) => {
                self.add_blocked(t.elapsed());
                Some(b)
            }
            // Given up: the batch in hand counts as lost at the hand-off (failed).
            Take::Closed | Take::GaveUp => None,
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
}

/// Wall-clock milliseconds since the Unix epoch (the reading's `timestamp`).
#[inline]
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
