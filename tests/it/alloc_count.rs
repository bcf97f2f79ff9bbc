//! A counting global allocator and the zero-allocation regression test for the hot loop.
//!
//! Counts are per thread, so tests running in parallel do not disturb each other.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use iotblast::config::settings::Format;
use iotblast::deliver::handoff;
use iotblast::generate::encoder::Encoder;
use iotblast::generate::live::{Live, LiveSettings};
use iotblast::generate::stats::WorkerStats;
use iotblast::generate::topology::Quota;
use iotblast::generate::worker::Worker;
use iotblast::model::{Fleet, FleetSpec};
use iotblast::Shutdown;

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
    static TRACKED: Cell<bool> = const { Cell::new(false) };
}

/// Set once the worker is past warm-up; allocations on the tracked thread count from then on.
static ARMED: AtomicBool = AtomicBool::new(false);
/// The armed window is global, so the tests that use it take turns.
static SERIAL: Mutex<()> = Mutex::new(());

fn bump() {
    // try_with: the slots may already be gone while a thread is being torn down.
    if ARMED.load(Ordering::Relaxed) && TRACKED.try_with(|t| t.get()).unwrap_or(false) {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        bump();
        unsafe { System.alloc(l) }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        bump();
        unsafe { System.alloc_zeroed(l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        bump();
        unsafe { System.realloc(p, l, new) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Batches drained before the count starts. By then the worker has used every code
/// path once: the drain starts late, so the worker has filled every spare batch,
/// blocked on a full channel and waited for a returned batch.
const WARM_UP_BATCHES: u64 = 20;

/// Runs one worker over 1000 devices for `messages` readings in `format`, with a thread draining and
/// recycling its batches; returns the worker thread's allocations after warm-up and
/// the number of readings generated in that window.
fn steady_state_allocations(messages: u64, rate: Option<f64>, format: Format) -> (u64, u64) {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    // Escaping-heavy labels must not cost allocations either, nor must the full model:
    // trends over a fast simulated day, frequent anomalies of every kind, alerts.
    let spec = FleetSpec::with_simulator(|s| {
        s.buildings = vec!["A栋".into(), "say \"hi\"\\\n".into()];
        s.anomaly_rate = 0.05;
        s.time_scale = 600.0;
    });
    let live = Arc::new(Live::new(LiveSettings {
        rate,
        fleet: spec.clone(),
    }));
    let fleet = Fleet::new(spec, 3);
    let batch_size = 256;
    let shape = Encoder::new(&fleet, format).batch_shape(batch_size, true);
    let (side, delivery) = handoff::channel(0, shape, 2, 0);
    let worker = Worker {
        devices: 0..1000,
        fleet,
        quota: Some(Quota::new(messages, 1000)),
        share: 1.0,
        live,
        linger: Duration::from_millis(5),
        handoff: side,
        stats: Arc::new(WorkerStats::default()),
        shutdown: Shutdown::new(),
        alerts: true,
        drop_when_full: false,
        format,
        stop_grace: Duration::from_secs(1),
    };
    let drain = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        let (mut n, mut batches, mut armed_at, mut alerts) = (0, 0, None, 0);
        while let Ok(b) = delivery.full.recv() {
            n += b.len() as u64;
            alerts += b.alerts().len() as u64;
            batches += 1;
            if batches == WARM_UP_BATCHES {
                armed_at = Some(n);
                ARMED.store(true, Ordering::SeqCst);
            }
            delivery.recycle(b);
        }
        ARMED.store(false, Ordering::SeqCst);
        assert!(alerts > n / 100, "the model raised only {alerts} alerts");
        (n, armed_at.expect("run long enough to pass warm-up"))
    });
    TRACKED.with(|t| t.set(true));
    let before = ALLOCATIONS.with(|c| c.get());
    worker.run();
    let allocations = ALLOCATIONS.with(|c| c.get()) - before;
    TRACKED.with(|t| t.set(false));
    let (drained, armed_at) = drain.join().unwrap();
    assert_eq!(drained, messages);
    (allocations, messages - armed_at)
}

#[test]
fn steady_state_generate_encode_batch_allocates_nothing_per_message() {
    let (allocations, readings) = steady_state_allocations(300_000, None, Format::Json);
    eprintln!("{allocations} allocations over {readings} steady-state readings");
    assert!(readings > 250_000);
    assert_eq!(
        allocations, 0,
        "{allocations} allocations over {readings} readings"
    );
}

#[test]
fn paced_worker_allocates_nothing_per_message() {
    // Pacing adds sleeps and partial-batch shipping; neither may allocate.
    let (allocations, readings) = steady_state_allocations(30_000, Some(300_000.0), Format::Json);
    assert!(readings > 20_000);
    assert_eq!(
        allocations, 0,
        "{allocations} allocations over {readings} paced readings"
    );
}

#[test]
fn steady_state_protobuf_encoding_allocates_nothing_per_message() {
    let (allocations, readings) = steady_state_allocations(300_000, None, Format::Protobuf);
    assert!(readings > 250_000);
    assert_eq!(
        allocations, 0,
        "{allocations} allocations over {readings} protobuf readings"
    );
}
