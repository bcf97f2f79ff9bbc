//! Cost of handing a full batch to the delivery thread and getting an empty one back,
//! across two real threads, per batch and per message.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use iotblast::deliver::batch::Shape;
use iotblast::deliver::handoff::{self, Take};

fn handoff_round_trip(c: &mut Criterion) {
    let mut g = c.benchmark_group("handoff");
    for batch_size in [256usize, 1024] {
        g.throughput(Throughput::Elements(batch_size as u64));
        g.bench_function(format!("batch_{batch_size}"), |b| {
            b.iter_custom(|iters| {
                let (mut worker, delivery) =
                    handoff::channel(0, Shape::readings(batch_size, 512, 13), 4, 0);
                let drain = std::thread::spawn(move || {
                    while let Ok(batch) = delivery.full.recv() {
                        delivery.recycle(batch);
                    }
                });
                let t = Instant::now();
                for _ in 0..iters {
                    let batch = match worker.take(|| false) {
                        Take::Ready(b) | Take::AfterWait(b) => b,
                        Take::Closed | Take::GaveUp => unreachable!("drain thread is alive"),
                    };
                    assert!(worker.ship(batch).is_none());
                }
                let elapsed = t.elapsed();
                drop(worker);
                drain.join().unwrap();
                elapsed
            })
        });
    }
    g.finish();
}

/// What reading the clock for every delivery report costs: the delivery callback
/// calls `clock_us(Instant::now())` once per acknowledged reading.
fn delivery_clock(c: &mut Criterion) {
    let mut g = c.benchmark_group("delivery_clock");
    g.throughput(Throughput::Elements(1));
    g.bench_function("clock_us_now", |b| {
        b.iter(|| iotblast::deliver::batch::clock_us(std::hint::black_box(Instant::now())))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3));
    targets = handoff_round_trip, delivery_clock
}
criterion_main!(benches);
