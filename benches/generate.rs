//! Per-message cost of the hot loop: simulate a reading, encode it (and its alerts) into
//! a batch, with the full model (trends, anomalies, alerts) and with it turned off.
//! Also keeps the evidence for the hand-written decimal formatter (`write_fixed2`)
//! against `ryu`, the well-kept crate it replaces, and for the hand-written Protobuf
//! encoder against JSON and against prost (`encode_format`), and for the JSON writer's
//! unchecked cursor (`generate::text`) against the `Vec::extend_from_slice` and `itoa`
//! writer it replaced, kept here as `vec_json` (`encode_json`), and for building each
//! stream's RNG directly (`model::stream_rng`) against rand_xoshiro's `seed_from_u64`,
//! which gives the same stream (`rng_seed`).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use iotblast::config::settings::Format;
use iotblast::deliver::batch::Batch;
use iotblast::generate::encoder::{write_fixed2, Encoder};
use iotblast::generate::protobuf::{kind_number, status_number, target_number};
use iotblast::generate::worker::Emitter;
use iotblast::model::{
    generate, round2, stream_rng, Fleet, FleetSlice, FleetSpec, Reading, Sensor,
};
use iotblast::verify::protobuf as pb;
use prost::Message;
use rand_core::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

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
    let emitter = Emitter::new(fleet.clone(), 0..DEVICES, true, Format::Json);
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
    // and with trends and anomalies off; and the default in Protobuf.
    let quiet = FleetSpec::with_simulator(|s| {
        s.anomaly_rate = 0.0;
        s.trend_strength = 0.0;
    });
    for (name, spec, format) in [
        ("generate_encode_batch", FleetSpec::default(), Format::Json),
        ("generate_encode_batch_quiet", quiet, Format::Json),
        (
            "generate_encode_batch_protobuf",
            FleetSpec::default(),
            Format::Protobuf,
        ),
    ] {
        let mut emitter = Emitter::new(Fleet::new(spec, 42), 0..DEVICES, true, format);
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

/// The readings the `encode_format` cases cycle through: 1,000 of the default fleet,
/// anomalies and dropouts included.
fn sample() -> (Fleet, Vec<Reading>) {
    let fleet = fleet();
    let mut readings = generate(&fleet, 100, 10);
    // A realistic timestamp, which both formats write (the model's 0 would be left
    // off the Protobuf wire).
    for r in &mut readings {
        r.timestamp_ms = 1_767_225_600_000 + r.seq as i64 * 3_000;
    }
    (fleet, readings)
}

/// A reading as prost structs (`verify::protobuf`, which mirror `schema/reading.proto`),
/// as code that encodes with prost would first build it: labels copied into `String`s.
fn to_prost(fleet: &Fleet, r: &Reading) -> pb::Reading {
    let s = &fleet.spec.simulator;
    let analog = |sensor: Sensor| {
        let v = r.value(sensor);
        Some(pb::Analog {
            value: (!v.is_nan()).then_some(v),
            unit: sensor.unit().to_owned(),
            status: status_number(r.status[sensor as usize]) as i32,
        })
    };
    let loc = r.location;
    pb::Reading {
        device_id: format!("device_{:0w$}", r.device, w = fleet.id_width),
        seq: r.seq,
        timestamp: r.timestamp_ms,
        location: Some(pb::Location {
            building: s.buildings[loc.building].clone(),
            floor: loc.floor,
            room: format!("{}{:0w$}", loc.floor, loc.room, w = fleet.room_digits()),
        }),
        sensors: Some(pb::Sensors {
            temperature: analog(Sensor::Temperature),
            humidity: analog(Sensor::Humidity),
            pressure: analog(Sensor::Pressure),
            switch_status: Some(pb::SwitchStatus {
                value: r.switch_on,
                status: if r.switch_on { 1 } else { 2 },
            }),
            current: analog(Sensor::Current),
        }),
        device_info: Some(pb::DeviceInfo {
            model: s.models[r.identity.model].clone(),
            firmware: s.firmwares[r.identity.firmware].clone(),
            battery: r.battery as u32,
            signal_strength: r.signal_dbm as i32,
        }),
        anomaly: r.anomaly.map(|a| pb::Anomaly {
            kind: kind_number(a.kind) as i32,
            target: target_number(&a) as i32,
            since_seq: a.since,
        }),
    }
}

/// One reading encoded: JSON, the hand-written Protobuf encoder, and prost (building
/// its structs from the reading and encoding them; and encoding prebuilt ones only).
fn encode_format(c: &mut Criterion) {
    let (fleet, readings) = sample();
    let mut g = c.benchmark_group("encode_format");
    g.throughput(Throughput::Elements(1));
    let mut out = Vec::with_capacity(1 << 20);
    let mut i = 0;
    for (name, format) in [("json", Format::Json), ("protobuf", Format::Protobuf)] {
        let encoder = Encoder::new(&fleet, format);
        g.bench_function(name, |b| {
            b.iter(|| {
                if out.len() > (1 << 20) - 1024 {
                    out.clear();
                }
                i = (i + 1) % readings.len();
                encoder.encode(black_box(&readings[i]), &mut out);
            })
        });
    }
    g.bench_function("prost_build_and_encode", |b| {
        b.iter(|| {
            if out.len() > (1 << 20) - 1024 {
                out.clear();
            }
            i = (i + 1) % readings.len();
            let m = to_prost(&fleet, black_box(&readings[i]));
            m.encode(&mut out).expect("room reserved");
        })
    });
    let built: Vec<pb::Reading> = readings.iter().map(|r| to_prost(&fleet, r)).collect();
    g.bench_function("prost_encode_prebuilt", |b| {
        b.iter(|| {
            if out.len() > (1 << 20) - 1024 {
                out.clear();
            }
            i = (i + 1) % built.len();
            black_box(&built[i])
                .encode(&mut out)
                .expect("room reserved");
        })
    });
    g.finish();
}

/// The JSON writer before `generate::text`: every piece through a checked
/// `extend_from_slice`, numbers through `itoa`. The reference for `encode_json`.
/// `labels`: buildings, models and firmwares, quoted once (`quoted_labels`).
fn vec_json(fleet: &Fleet, labels: &[Vec<Vec<u8>>; 3], r: &Reading, out: &mut Vec<u8>) {
    let num =
        |out: &mut Vec<u8>, v: i64| out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
    let padded = |out: &mut Vec<u8>, v: u64, w: usize| {
        let mut b = itoa::Buffer::new();
        let d = b.format(v).as_bytes();
        out.resize(out.len() + w.saturating_sub(d.len()), b'0');
        out.extend_from_slice(d);
    };
    out.extend_from_slice(b"{\"device_id\":\"device_");
    padded(out, r.device, fleet.id_width);
    out.extend_from_slice(b"\",\"seq\":");
    num(out, r.seq as i64);
    out.extend_from_slice(b",\"timestamp\":");
    num(out, r.timestamp_ms);
    let loc = r.location;
    out.extend_from_slice(b",\"location\":{\"building\":");
    out.extend_from_slice(&labels[0][loc.building]);
    out.extend_from_slice(b",\"floor\":");
    num(out, loc.floor as i64);
    out.extend_from_slice(b",\"room\":\"");
    num(out, loc.floor as i64);
    padded(out, loc.room as u64, fleet.room_digits());
    out.extend_from_slice(b"\"},\"sensors\":{");
    let analog = |out: &mut Vec<u8>, sensor: Sensor| {
        out.push(b'"');
        out.extend_from_slice(sensor.name().as_bytes());
        out.extend_from_slice(b"\":{\"value\":");
        let v = r.value(sensor);
        if v.is_nan() {
            out.extend_from_slice(b"null");
        } else {
            let cents = iotblast::model::round_int(v * 100.0);
            if cents < 0 {
                out.push(b'-');
            }
            let c = cents.unsigned_abs();
            out.extend_from_slice(itoa::Buffer::new().format(c / 100).as_bytes());
            let frac = (c % 100) as u8;
            out.push(b'.');
            out.push(b'0' + frac / 10);
            if !frac.is_multiple_of(10) {
                out.push(b'0' + frac % 10);
            }
        }
        out.extend_from_slice(b",\"unit\":\"");
        out.extend_from_slice(sensor.unit().as_bytes());
        out.extend_from_slice(b"\",\"status\":\"");
        out.extend_from_slice(r.status[sensor as usize].as_str().as_bytes());
        out.extend_from_slice(b"\"}");
    };
    for sensor in [Sensor::Temperature, Sensor::Humidity, Sensor::Pressure] {
        analog(out, sensor);
        out.push(b',');
    }
    out.extend_from_slice(if r.switch_on {
        b"\"switch_status\":{\"value\":true,\"status\":\"on\"},"
    } else {
        b"\"switch_status\":{\"value\":false,\"status\":\"off\"},"
    });
    analog(out, Sensor::Current);
    out.extend_from_slice(b"},\"device_info\":{\"model\":");
    out.extend_from_slice(&labels[1][r.identity.model]);
    out.extend_from_slice(b",\"firmware\":");
    out.extend_from_slice(&labels[2][r.identity.firmware]);
    out.extend_from_slice(b",\"battery\":");
    num(out, r.battery as i64);
    out.extend_from_slice(b",\"signal_strength\":");
    num(out, r.signal_dbm as i64);
    out.push(b'}');
    if let Some(a) = &r.anomaly {
        out.extend_from_slice(b",\"anomaly\":{\"kind\":\"");
        out.extend_from_slice(a.kind.as_str().as_bytes());
        out.extend_from_slice(b"\",\"target\":\"");
        out.extend_from_slice(a.target().as_bytes());
        out.extend_from_slice(b"\",\"since_seq\":");
        num(out, a.since as i64);
        out.push(b'}');
    }
    out.push(b'}');
}

fn quoted_labels(fleet: &Fleet) -> [Vec<Vec<u8>>; 3] {
    let s = &fleet.spec.simulator;
    let quote = |l: &[String]| l.iter().map(|x| serde_json::to_vec(x).unwrap()).collect();
    [quote(&s.buildings), quote(&s.models), quote(&s.firmwares)]
}

/// One JSON reading: the shipped cursor writer against the `Vec` writer it replaced.
/// Both must write the same bytes, checked first.
fn encode_json(c: &mut Criterion) {
    let (fleet, readings) = sample();
    let labels = quoted_labels(&fleet);
    let encoder = Encoder::new(&fleet, Format::Json);
    for r in &readings {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        encoder.encode(r, &mut a);
        vec_json(&fleet, &labels, r, &mut b);
        assert_eq!(a, b, "the two writers differ");
    }
    let mut g = c.benchmark_group("encode_json");
    g.throughput(Throughput::Elements(1));
    let mut out = Vec::with_capacity(1 << 20);
    let mut i = 0;
    g.bench_function("cursor", |b| {
        b.iter(|| {
            if out.len() > (1 << 20) - 1024 {
                out.clear();
            }
            i = (i + 1) % readings.len();
            encoder.encode(black_box(&readings[i]), &mut out);
        })
    });
    g.bench_function("vec_extend", |b| {
        b.iter(|| {
            if out.len() > (1 << 20) - 1024 {
                out.clear();
            }
            i = (i + 1) % readings.len();
            vec_json(&fleet, &labels, black_box(&readings[i]), &mut out);
        })
    });
    g.finish();
}

/// One reading's RNG, seeded and drawn from once (as every reading does), both ways.
fn rng_seed(c: &mut Criterion) {
    let mut g = c.benchmark_group("rng_seed");
    g.throughput(Throughput::Elements(1));
    let mut seed = 0u64;
    g.bench_function("seed_from_u64", |b| {
        b.iter(|| {
            seed = seed.wrapping_add(1);
            Xoshiro256PlusPlus::seed_from_u64(black_box(seed)).next_u64()
        })
    });
    g.bench_function("stream_rng", |b| {
        b.iter(|| {
            seed = seed.wrapping_add(1);
            stream_rng(black_box(seed)).next_u64()
        })
    });
    g.finish();
}

criterion_group!(
    benches,
    generate_encode,
    format_value,
    encode_format,
    encode_json,
    rng_seed
);
criterion_main!(benches);
