//! Per-message cost of the hot loop: generate a reading, encode it into a batch.
//! Also keeps the evidence for the hand-written decimal formatter (`write_fixed2`)
//! against `ryu`, the well-kept crate it replaces.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use iotblast::batch::Batch;
use iotblast::device::{round2, Fleet, FleetSpec};
use iotblast::encoder::{write_fixed2, Encoder};

fn fleet() -> Fleet {
    Fleet::new(FleetSpec::default(), 42, 10_000)
}

fn generate_encode(c: &mut Criterion) {
    let fleet = fleet();
    let encoder = Encoder::new(fleet.clone());
    let mut g = c.benchmark_group("hot_loop");
    g.throughput(Throughput::Elements(1));

    let mut i = 0u64;
    g.bench_function("generate", |b| {
        b.iter(|| {
            i += 1;
            black_box(fleet.reading(i % 10_000, i / 10_000, 1_735_689_600_123))
        })
    });

    let mut i = 0u64;
    let mut out = Vec::with_capacity(1 << 20);
    g.bench_function("encode", |b| {
        let r = fleet.reading(42, 17, 1_735_689_600_123);
        b.iter(|| {
            i += 1;
            if out.len() > (1 << 20) - 1024 {
                out.clear();
            }
            encoder.encode(black_box(&r), &mut out);
        })
    });

    // The worker's per-message work: reading, payload and key into a reused batch.
    let mut i = 0u64;
    let mut batch = Batch::new(1024, encoder.max_len(), 13, 0);
    g.bench_function("generate_encode_batch", |b| {
        b.iter(|| {
            i += 1;
            let device = i % 10_000;
            let r = fleet.reading(device, i / 10_000, 1_735_689_600_123);
            batch.push(|p, k| {
                encoder.encode(&r, p);
                encoder.write_key(device, k);
            });
            if batch.is_full() {
                batch.clear();
            }
        })
    });
    g.finish();
}

fn format_value(c: &mut Criterion) {
    let fleet = fleet();
    let values: Vec<f64> = (0..1000u64)
        .map(|i| fleet.reading(i, 0, 0))
        .flat_map(|r| [r.temperature, r.humidity, r.pressure, r.current])
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
