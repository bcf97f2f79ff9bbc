//! `verify`'s hot path: checking a reading. Compares serde_json (borrowed fields) with
//! simd-json (serde API, on a scratch copy, since it parses in place) on the same typed
//! views, and both with the hand-written fast path for the encoder's layout
//! (`verify::fast`); then measures the whole per-line check over a fleet's NDJSON.
//! perf/RESULTS.md records the outcome: serde_json over simd-json for the general
//! parser, and the fast path in front of it. The `protobuf` cases measure the same for
//! `--format protobuf`: prost decoding into the same checked view, and a
//! length-delimited file.

use std::hint::black_box;
use std::sync::atomic::AtomicBool;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use iotblast::config::settings::Format;
use iotblast::generate::worker::Emitter;
use iotblast::model::{Fleet, FleetSlice, FleetSpec};
use iotblast::verify::check::Checker;
use iotblast::verify::fast;
use iotblast::verify::message::{self, Reading};
use iotblast::verify::protobuf;
use iotblast::verify::source;

const DEVICES: u64 = 1_000;
const LINES: u64 = 20_000;

/// `LINES` readings as the stdout sink writes them: one JSON object per line, or
/// with `Format::Protobuf` each message after its length as a varint.
fn stream(format: Format) -> Vec<u8> {
    let fleet = Fleet::new(FleetSpec::default(), 42);
    let emitter = Emitter::new(fleet.clone(), 0..DEVICES, false, format);
    let mut slice = FleetSlice::new(fleet, 0..DEVICES);
    let (mut out, mut message) = (Vec::new(), Vec::new());
    for i in 0..LINES {
        let r = slice.step(i % DEVICES, i / DEVICES, 1_735_689_600_123);
        message.clear();
        emitter.encoder().encode(&r, &mut message);
        match format {
            Format::Json => {
                out.extend_from_slice(&message);
                out.push(b'\n');
            }
            Format::Protobuf => {
                prost::encoding::encode_varint(message.len() as u64, &mut out);
                out.extend_from_slice(&message);
            }
        }
    }
    out
}

fn ndjson() -> Vec<u8> {
    stream(Format::Json)
}

/// The messages of a length-delimited stream.
fn frames(mut bytes: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let len = prost::encoding::decode_varint(&mut bytes).unwrap() as usize;
        out.push(&bytes[..len]);
        bytes = &bytes[len..];
    }
    out
}

fn parse(c: &mut Criterion) {
    let text = ndjson();
    let lines: Vec<&[u8]> = text
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let mut g = c.benchmark_group("verify_parse");
    g.throughput(Throughput::Elements(1));
    let mut i = 0;
    g.bench_function("serde_json", |b| {
        b.iter(|| {
            i = (i + 1) % lines.len();
            let r: Reading = serde_json::from_slice(black_box(lines[i])).unwrap();
            black_box(message::check_reading(&r).is_ok())
        })
    });
    // The shipped fast path for the encoder's own layout (`verify::fast`).
    g.bench_function("fast_path", |b| {
        b.iter(|| {
            i = (i + 1) % lines.len();
            black_box(fast::reading(black_box(lines[i])).is_some())
        })
    });
    // The floor: serde_json skipping the same text without building anything.
    g.bench_function("ignored_any", |b| {
        b.iter(|| {
            i = (i + 1) % lines.len();
            let r: serde::de::IgnoredAny = serde_json::from_slice(black_box(lines[i])).unwrap();
            black_box(r)
        })
    });
    let mut scratch = Vec::with_capacity(4096);
    g.bench_function("simd_json", |b| {
        b.iter(|| {
            i = (i + 1) % lines.len();
            scratch.clear();
            scratch.extend_from_slice(black_box(lines[i]));
            let r: Reading = simd_json::serde::from_slice(&mut scratch).unwrap();
            black_box(message::check_reading(&r).is_ok())
        })
    });
    let pb = stream(Format::Protobuf);
    let messages = frames(&pb);
    // `--format protobuf`: prost decoding, then the same checked view and rules.
    g.bench_function("protobuf", |b| {
        b.iter(|| {
            i = (i + 1) % messages.len();
            let r = protobuf::reading(black_box(messages[i])).unwrap();
            black_box(r.view().is_ok())
        })
    });
    g.finish();

    let mut g = c.benchmark_group("verify_lines");
    g.throughput(Throughput::Elements(LINES));
    g.sample_size(20);
    g.bench_function("file", |b| {
        b.iter(|| {
            let mut checker = Checker::default();
            source::lines(&text[..], &mut checker, &AtomicBool::new(false)).unwrap();
            assert_eq!(checker.counts().readings, LINES);
        })
    });
    g.bench_function("protobuf_file", |b| {
        b.iter(|| {
            let mut checker = Checker::new(Format::Protobuf);
            source::delimited(&pb[..], &mut checker, &AtomicBool::new(false)).unwrap();
            assert_eq!(checker.counts().readings, LINES);
        })
    });
    g.finish();
}

criterion_group!(benches, parse);
criterion_main!(benches);
