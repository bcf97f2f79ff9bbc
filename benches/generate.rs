//! Per-message cost of the hot loop: simulate a reading, encode it (and its alerts) into
//! a batch, with the full model (trends, anomalies, alerts) and with it turned off.
//! Also keeps the evidence for the hand-written decimal formatter (`write_fixed2`)
//! against `ryu`, the well-kept crate it replaces.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use iotblast::batch::Batch;
use iotblast::device::{round2, Fleet, FleetSpec};
use iotblast::encoder::{write_fixed2, Encoder};
use iotblast::simulate::{generate, DeviceState, Reading};
use iotblast::trend::TrendPoint;

const DEVICES: u64 = 10_000;

fn fleet() -> Fleet {
    Fleet::new(FleetSpec::default(), 42, DEVICES)
}

/// The worker's loop over a fleet: device states, and the trend point once per round.
struct Sim {
    fleet: Fleet,
    states: Vec<DeviceState>,
    trend: TrendPoint,
    i: u64,
}

impl Sim {
    fn new(fleet: Fleet) -> Self {
        let states = (0..DEVICES).map(|d| fleet.init_state(d)).collect();
        Self {
            fleet,
            states,
            trend: TrendPoint::default(),
            i: 0,
        }
    }

    #[inline]
    fn next(&mut self) -> Reading {
        let (device, seq) = (self.i % DEVICES, self.i / DEVICES);
        self.i += 1;
        if device == 0 {
            self.trend = self.fleet.derived.clock.trend(seq);
        }
        let st = &mut self.states[device as usize];
        self.fleet
            .step(st, device, seq, &self.trend, 1_735_689_600_123)
    }
}

fn generate_encode(c: &mut Criterion) {
    let fleet = fleet();
    let encoder = Encoder::new(fleet.clone());
    let mut g = c.benchmark_group("hot_loop");
    g.throughput(Throughput::Elements(1));

    let mut sim = Sim::new(fleet.clone());
    g.bench_function("generate", |b| b.iter(|| black_box(sim.next())));

    let mut out = Vec::with_capacity(1 << 20);
    g.bench_function("encode", |b| {
        let r = Sim::new(fleet.clone()).next();
        b.iter(|| {
            if out.len() > (1 << 20) - 1024 {
                out.clear();
            }
            encoder.encode(black_box(&r), &mut out);
        })
    });

    // The worker's per-message work: reading, payload, key and alerts into a reused
    // batch; with the full model (the default) and with trends and anomalies off.
    let quiet = FleetSpec {
        anomaly_rate: 0.0,
        trend_strength: 0.0,
        ..FleetSpec::default()
    };
    for (name, spec) in [
        ("generate_encode_batch", FleetSpec::default()),
        ("generate_encode_batch_quiet", quiet),
    ] {
        let fleet = Fleet::new(spec, 42, DEVICES);
        let encoder = Encoder::new(fleet.clone());
        let mut sim = Sim::new(fleet);
        let mut batch = Batch::new(encoder.batch_shape(1024, true), 0);
        g.bench_function(name, |b| {
            b.iter(|| {
                let r = sim.next();
                batch.push(|p, k| {
                    encoder.encode(&r, p);
                    encoder.write_key(r.device, k);
                });
                for sensor in r.transitions() {
                    batch.push_alert(|p, k| {
                        encoder.encode_alert(&r, sensor, p);
                        encoder.write_key(r.device, k);
                    });
                }
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
