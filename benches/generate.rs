//! Per-message cost of the hot loop: simulate a reading, encode it (and its alerts) into
//! a batch, with the full model (trends, anomalies, alerts) and with it turned off.
//! Also keeps the evidence for the hand-written decimal formatter (`write_fixed2`)
//! against `ryu`, the well-kept crate it replaces.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use iotblast::deliver::batch::Batch;
use iotblast::generate::encoder::write_fixed2;
use iotblast::generate::worker::Emitter;
use iotblast::model::{generate, round2, Fleet, FleetSlice, FleetSpec};

const DEVICES: u64 = 10_000;

fn fleet() -> Fleet {
    Fleet::new(FleetSpec::default(), 42)
}

/// The worker's order over its devices: every device's seq `n`, then `n + 1`.
struct Order(u64);

impl Order {
    #[inline]
    fn next(&mut self) -> (u64, u64) {
        let i = self.0;
        self.0 += 1;
        (i % DEVICES, i / DEVICES)
    }
}

fn generate_encode(c: &mut Criterion) {
    let fleet = fleet();
    let mut g = c.benchmark_group("hot_loop");
    g.throughput(Throughput::Elements(1));

    // The model alone: the shipped fleet slice the worker steps.
    let mut slice = FleetSlice::new(fleet.clone(), 0..DEVICES);
    let mut order = Order(0);
    g.bench_function("generate", |b| {
        b.iter(|| {
            let (device, seq) = order.next();
            black_box(slice.step(device, seq, 1_735_689_600_123))
        })
    });

    // The encoder alone, on one reading.
    let emitter = Emitter::new(fleet.clone(), 0..DEVICES, true);
    let r = FleetSlice::new(fleet.clone(), 0..DEVICES).step(0, 0, 1_735_689_600_123);
    let mut out = Vec::with_capacity(1 << 20);
    g.bench_function("encode", |b| {
        b.iter(|| {
            if out.len() > (1 << 20) - 1024 {
                out.clear();
            }
            emitter.encoder().encode(black_box(&r), &mut out);
        })
    });

    // The worker's per-message work, as the worker does it (`Emitter::emit`): reading,
    // payload, key and alerts into a reused batch; with the full model (the default)
    // and with trends and anomalies off.
    let quiet = FleetSpec::with_simulator(|s| {
        s.anomaly_rate = 0.0;
        s.trend_strength = 0.0;
    });
    for (name, spec) in [
        ("generate_encode_batch", FleetSpec::default()),
        ("generate_encode_batch_quiet", quiet),
    ] {
        let mut emitter = Emitter::new(Fleet::new(spec, 42), 0..DEVICES, true);
        let mut batch = Batch::new(emitter.encoder().batch_shape(1024, true), 0);
        let mut order = Order(0);
        g.bench_function(name, |b| {
            b.iter(|| {
                let (device, seq) = order.next();
                emitter.emit(device, seq, 1_735_689_600_123, 0, &mut batch);
                if batch.is_full() {
                    batch.clear();
                }
            })
        });
    }
    g.finish();
}

fn format_value(c: &mut Criterion) {
    let values: Vec<f64> = generate(&fleet(), 1000, 1)
        .iter()
        .flat_map(|r| r.values)
        .filter(|v| !v.is_nan())
        .collect();
    let mut g = c.benchmark_group("format_value");
    g.throughput(Throughput::Elements(values.len() as u64));
    g.bench_function("write_fixed2", |b| {
        b.iter_batched_ref(
            || Vec::with_capacity(values.len() * 16),
            |out| {
                for &v in &values {
                    write_fixed2(out, black_box(v));
                }
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("ryu", |b| {
        b.iter_batched_ref(
            || (Vec::with_capacity(values.len() * 16), ryu::Buffer::new()),
            |(out, buf)| {
                for &v in &values {
                    out.extend_from_slice(buf.format(round2(black_box(v))).as_bytes());
                }
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, generate_encode, format_value);
criterion_main!(benches);
