//! `--format protobuf`: the messages are the shipped `schema/reading.proto`, read back
//! with descriptors compiled from that file (protox, prost-reflect), never with structs
//! copied from it; and they carry the JSON messages' values, field for field, reading
//! for reading, alert for alert, dropouts, anomalies and the switch included. Also:
//! length-delimited stdout, `verify --format protobuf` on files and on a topic, and bad
//! values of the setting.

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use iotblast::config::settings::Format;
use iotblast::deliver::batch::Batch;
use iotblast::generate::encoder::Encoder;
use iotblast::generate::worker::Emitter;
use iotblast::model::environment::Environment;
use iotblast::model::{Fleet, FleetSpec, Sensor};
use iotblast::units::Count;
use iotblast::verify::protobuf as verify_pb;
use proptest::prelude::*;
use prost::Message as _;
use prost_reflect::{
    DescriptorPool, DynamicMessage, Kind, MessageDescriptor, ReflectMessage, Value as PValue,
};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message as _;
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value;

use crate::cluster::{unique, Cluster};
use crate::common::{label, run, summary_from, verify};

/// `schema/reading.proto`, compiled by protox.
fn pool() -> &'static DescriptorPool {
    static P: OnceLock<DescriptorPool> = OnceLock::new();
    P.get_or_init(|| {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/schema");
        protox::Compiler::new([dir])
            .expect("include path")
            .include_imports(true)
            .open_file("reading.proto")
            .expect("schema/reading.proto compiles")
            .descriptor_pool()
    })
}

fn descriptor(name: &str) -> MessageDescriptor {
    pool()
        .get_message_by_name(&format!("iotblast.v1.{name}"))
        .unwrap_or_else(|| panic!("iotblast.v1.{name} in reading.proto"))
}

/// Decodes `bytes` as message `name` of the shipped schema.
fn decode(name: &str, bytes: &[u8]) -> DynamicMessage {
    DynamicMessage::decode(descriptor(name), bytes)
        .unwrap_or_else(|e| panic!("not a {name}: {e}: {bytes:?}"))
}

/// A decoded message in the shape of its JSON counterpart, by the rules
/// `reading.proto` documents: field names are the JSON keys; an absent optional double
/// is `null`; an absent submessage (the anomaly) has no key; an enum value's name,
/// less the enum's prefix, in lower case, is the JSON string.
fn to_json(m: &DynamicMessage) -> Value {
    let mut out = serde_json::Map::new();
    for f in m.descriptor().fields() {
        let is_message = matches!(f.kind(), Kind::Message(_));
        if f.supports_presence() && !m.has_field(&f) {
            if !is_message {
                out.insert(f.name().to_owned(), Value::Null);
            }
            continue;
        }
        let v = m.get_field(&f);
        let json = match (f.kind(), v.as_ref()) {
            (Kind::Message(_), PValue::Message(sub)) => to_json(sub),
            (Kind::Enum(e), PValue::EnumNumber(n)) => {
                let value = e
                    .get_value(*n)
                    .unwrap_or_else(|| panic!("{n} in {}", e.name()));
                let prefix = format!("{}_", upper_snake(e.name()));
                let name = value
                    .name()
                    .strip_prefix(&prefix)
                    .expect("prefixed enum value");
                assert_ne!(name, "UNSPECIFIED", "{} is never written", f.name());
                Value::from(name.to_lowercase())
            }
            (_, PValue::String(s)) => Value::from(s.as_str()),
            (_, PValue::Bool(b)) => Value::from(*b),
            (_, PValue::U64(x)) => Value::from(*x),
            (_, PValue::U32(x)) => Value::from(*x),
            (_, PValue::I64(x)) => Value::from(*x),
            (_, PValue::I32(x)) => Value::from(*x),
            (_, PValue::F64(x)) => Value::from(*x),
            (k, v) => panic!("unexpected {k:?} {v:?}"),
        };
        out.insert(f.name().to_owned(), json);
    }
    Value::Object(out)
}

/// `AnomalyKind` → `ANOMALY_KIND`.
fn upper_snake(name: &str) -> String {
    let mut s = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            s.push('_');
        }
        s.push(c.to_ascii_uppercase());
    }
    s
}

/// Splits a length-delimited stream (varint length, message, ...).
fn frames(mut bytes: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let len = prost::encoding::decode_varint(&mut bytes).expect("varint length") as usize;
        assert!(len <= bytes.len(), "a message cut short");
        out.push(&bytes[..len]);
        bytes = &bytes[len..];
    }
    out
}

/// The same readings and alerts, encoded in both formats, compared as the JSON they
/// stand for; also: each protobuf message is canonical (prost-reflect re-encodes it to
/// the same bytes), verify's prost structs read it to a valid view, and it fits the
/// encoder's bound.
fn assert_same(json: &[u8], pb: &[u8], name: &str) -> Result<(), TestCaseError> {
    let j: Value = serde_json::from_slice(json).expect("JSON");
    let m = decode(name, pb);
    prop_assert_eq!(&to_json(&m), &j, "{}", name);
    prop_assert_eq!(m.encode_to_vec(), pb.to_vec());
    match name {
        "Reading" => {
            let r = verify_pb::reading(pb).unwrap();
            prop_assert!(r.view().is_ok(), "{:?}", r.view().err());
            prop_assert_eq!(r.encode_to_vec(), pb.to_vec());
        }
        _ => {
            let a = verify_pb::alert(pb).unwrap();
            prop_assert!(a.view().is_ok(), "{:?}", a.view().err());
            prop_assert_eq!(a.encode_to_vec(), pb.to_vec());
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn protobuf_and_json_encode_the_same_values(
        buildings in prop::collection::vec(label(50), 1..4),
        models in prop::collection::vec(label(50), 1..3),
        firmwares in prop::collection::vec(label(50), 1..3),
        seed in any::<u64>(),
        device_count in 1u64..3_000_000,
        device_frac in 0.0f64..1.0,
        seq in prop_oneof![0u64..3, 0u64..u64::MAX / 2],
        ts in prop_oneof![Just(0i64), 0i64..4_102_444_800_000],
        rooms in prop_oneof![Just(1u32), 1u32..200],
        temperature_sd in 0.0f64..500.0,
        anomaly_rate in 0.0f64..=1.0,
        steps in 1u64..40,
    ) {
        let mut spec = FleetSpec::with_simulator(|s| {
            s.buildings = buildings;
            s.models = models;
            s.firmwares = firmwares;
            s.anomaly_rate = anomaly_rate;
            s.device_count = Count(device_count);
            s.rooms_per_floor = rooms;
        });
        spec.thresholds.temperature.sd = temperature_sd;
        let fleet = Fleet::new(spec.clone(), seed);
        let device = ((device_count - 1) as f64 * device_frac) as u64;
        let (json, pb) = (Encoder::new(&fleet, Format::Json), Encoder::new(&fleet, Format::Protobuf));
        let mut st = fleet.init_state(device);
        let mut env = Environment::new(&fleet, device..device + 1);
        for s in seq..seq + steps {
            env.advance(&fleet, s);
            let r = fleet.step(&mut st, device, s, &env, ts);
            let (mut j, mut p) = (Vec::new(), Vec::new());
            json.encode(&r, &mut j);
            pb.encode(&r, &mut p);
            prop_assert!(p.len() <= pb.max_len(), "{} > {}", p.len(), pb.max_len());
            assert_same(&j, &p, "Reading")?;
            // Every alert this reading could raise, whether or not it does.
            for sensor in Sensor::ALL {
                let spec = spec.thresholds.sensor(sensor);
                let (mut j, mut p) = (Vec::new(), Vec::new());
                json.encode_alert(&r, sensor, spec, &mut j);
                pb.encode_alert(&r, sensor, spec, &mut p);
                prop_assert!(p.len() <= pb.max_alert_len());
                if r.status[sensor as usize] != r.previous[sensor as usize] {
                    assert_same(&j, &p, "Alert")?;
                }
            }
        }
    }
}

/// The workers' own path (`Emitter::emit` into batches) in both formats: the same
/// readings and alerts, with the same keys, message for message.
#[test]
fn the_emitter_writes_the_same_readings_and_alerts_in_both_formats() {
    let spec = FleetSpec::with_simulator(|s| s.anomaly_rate = 0.05);
    let batches = |format| {
        let mut e = Emitter::new(Fleet::new(spec.clone(), 9), 0..200, true, format);
        let mut batch = Batch::new(e.encoder().batch_shape(100_000, true), 0);
        for seq in 0..200 {
            for device in 0..200 {
                e.emit(device, seq, 1_767_225_600_000 + seq as i64, 0, &mut batch);
            }
        }
        batch
    };
    let (j, p) = (batches(Format::Json), batches(Format::Protobuf));
    assert_eq!(j.len(), 40_000);
    assert_eq!(j.alerts().len(), p.alerts().len());
    assert!(p.alerts().len() > 1000, "{} alerts", p.alerts().len());
    for (kind, (a, b)) in [
        ("Reading", (j.readings(), p.readings())),
        ("Alert", (j.alerts(), p.alerts())),
    ] {
        for ((jk, jv), (pk, pv)) in a.iter().zip(b.iter()) {
            assert_eq!(jk, pk);
            assert_same(jv, pv, kind).unwrap();
        }
    }
}

/// Every field of the JSON Schemas is a field of the same name in `reading.proto`,
/// and the other way round, at every level.
#[test]
fn the_proto_has_the_json_schemas_fields_and_no_others() {
    fn walk(root: &Value, schema: &Value, m: &MessageDescriptor, path: &str) {
        let schema = match schema.get("$ref").and_then(Value::as_str) {
            Some(r) => &root["$defs"][r.trim_start_matches("#/$defs/")],
            None => schema,
        };
        let props = schema["properties"].as_object().expect("properties");
        let mut want: Vec<&str> = props.keys().map(String::as_str).collect();
        let mut have: Vec<String> = m.fields().map(|f| f.name().to_owned()).collect();
        want.sort_unstable();
        have.sort_unstable();
        assert_eq!(have, want, "{path}");
        for f in m.fields() {
            if let Kind::Message(sub) = f.kind() {
                walk(
                    root,
                    &props[f.name()],
                    &sub,
                    &format!("{path}.{}", f.name()),
                );
            }
        }
    }
    for (file, name) in [
        ("reading.schema.json", "Reading"),
        ("alert.schema.json", "Alert"),
    ] {
        let path = format!("{}/docs/schema/{file}", env!("CARGO_MANIFEST_DIR"));
        let root: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        walk(&root, &root, &descriptor(name), name);
    }
}

/// `--sink stdout` with `--event-time simulated` in both formats.
fn stdout_run(format: &str) -> Vec<u8> {
    let out = run(&[
        "--sink",
        "stdout",
        "--format",
        format,
        "--devices",
        "500",
        "--messages",
        "50000",
        "--seed",
        "5",
        "--anomaly-rate",
        "0.05",
        "--event-time",
        "simulated",
        "-q",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// `(device_id, seq)` of a reading in its JSON form.
fn id(v: &Value) -> (String, u64) {
    (
        v["device_id"].as_str().unwrap().to_owned(),
        v["seq"].as_u64().unwrap(),
    )
}

#[test]
fn the_binary_writes_the_same_readings_as_json_and_as_length_delimited_protobuf() {
    let json = stdout_run("json");
    let pb = stdout_run("protobuf");
    let mut from_json = BTreeMap::new();
    for line in json.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let v: Value = serde_json::from_slice(line).unwrap();
        from_json.insert(id(&v), v);
    }
    let mut from_pb = BTreeMap::new();
    for f in frames(&pb) {
        let v = to_json(&decode("Reading", f));
        from_pb.insert(id(&v), v);
    }
    assert_eq!((from_json.len(), from_pb.len()), (50_000, 50_000));
    let (mut dropouts, mut anomalies, mut switched_off) = (0, 0, 0);
    for (k, j) in &from_json {
        assert_eq!(Some(j), from_pb.get(k), "{k:?}");
        let sensors = j["sensors"].as_object().unwrap();
        dropouts += sensors.values().filter(|s| s["value"].is_null()).count();
        anomalies += usize::from(j.get("anomaly").is_some());
        switched_off += usize::from(j["sensors"]["switch_status"]["value"] == false);
    }
    // The comparison covered what proto3 could get wrong: absent values, the optional
    // anomaly and a false switch (a zero left off the wire).
    assert!(
        dropouts > 50 && anomalies > 1000 && switched_off > 1000,
        "{dropouts} {anomalies} {switched_off}"
    );
    // And the binary is smaller.
    assert!(pb.len() * 2 < json.len(), "{} vs {}", pb.len(), json.len());
}

fn n(report: &Value, key: &str) -> u64 {
    report[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} in {report}"))
}

#[test]
fn verify_reads_length_delimited_protobuf_files_and_counts_damage_exactly() {
    let pb = stdout_run("protobuf");
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    let write = |name: &str, frames: &[&[u8]]| {
        let mut out = Vec::new();
        for f in frames {
            prost::encoding::encode_varint(f.len() as u64, &mut out);
            out.extend_from_slice(f);
        }
        std::fs::write(path(name), out).unwrap();
    };
    let all = frames(&pb);
    std::fs::write(path("clean.pb"), &pb).unwrap();
    let (code, r) = verify(&[
        "--format",
        "protobuf",
        "--file",
        &path("clean.pb"),
        "--expect",
        "50k",
    ]);
    assert_eq!(code, Some(0), "{r}");
    assert_eq!(
        (n(&r, "readings"), n(&r, "devices"), n(&r, "invalid")),
        (50_000, 500, 0)
    );

    // One reading deleted, ten repeated: counted as for JSON.
    let mut tampered: Vec<&[u8]> = all.clone();
    tampered.remove(25_000);
    tampered.extend_from_slice(&all[30_000..30_010]);
    write("tampered.pb", &tampered);
    let (code, r) = verify(&["--format", "protobuf", "--file", &path("tampered.pb")]);
    assert_eq!(code, Some(5), "{r}");
    assert_eq!(
        (n(&r, "readings"), n(&r, "gaps"), n(&r, "duplicates")),
        (50_009, 1, 10),
        "{r}"
    );

    // A garbage frame and a file cut inside its last message: one invalid each.
    let garbage: &[u8] = &[0xff; 9];
    let mut damaged: Vec<&[u8]> = all[..100].to_vec();
    damaged.push(garbage);
    damaged.extend_from_slice(&all[100..200]);
    write("damaged.pb", &damaged);
    let mut bytes = std::fs::read(path("damaged.pb")).unwrap();
    bytes.truncate(bytes.len() - 5);
    std::fs::write(path("damaged.pb"), bytes).unwrap();
    let (code, r) = verify(&["--format", "protobuf", "--file", &path("damaged.pb")]);
    assert_eq!(code, Some(5), "{r}");
    assert_eq!((n(&r, "readings"), n(&r, "invalid")), (199, 2), "{r}");

    // The format comes from the environment as well, as for a run; JSON lines read
    // as protobuf are invalid, not a crash.
    let out = crate::common::iotblast()
        .args(["verify", "--json", "--file", &path("clean.pb")])
        .env("IOTBLAST_RUN_FORMAT", "protobuf")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(path("lines.ndjson"), stdout_run("json")).unwrap();
    let (code, r) = verify(&["--format", "protobuf", "--file", &path("lines.ndjson")]);
    assert_eq!(code, Some(5), "{r}");
    assert!(n(&r, "invalid") >= 1, "{r}");
}

/// Every message of `topic`, as (key, partition, payload).
fn consume_raw(bootstrap: &str, topic: &str, expected: usize) -> Vec<(Vec<u8>, i32, Vec<u8>)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "iotblast-protobuf-tests")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let md = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in md.topics()[0].partitions() {
        tpl.add_partition_offset(topic, p.id(), Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut out = Vec::with_capacity(expected);
    let deadline = Instant::now() + Duration::from_secs(60);
    while out.len() < expected && Instant::now() < deadline {
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            let m = m.unwrap();
            out.push((
                m.key().unwrap().to_vec(),
                m.partition(),
                m.payload().unwrap().to_vec(),
            ));
        }
    }
    out
}

/// A run to Kafka in `format`, to the readings and alerts topics `<prefix><format>-r`
/// and `<prefix><format>-a`; returns its summary.
fn kafka_run(bootstrap: &str, prefix: &str, format: &str) -> Value {
    let (readings, alerts) = (format!("{prefix}{format}-r"), format!("{prefix}{format}-a"));
    let out = run(&[
        "-b",
        bootstrap,
        "-t",
        readings.as_str(),
        "--alerts-topic",
        alerts.as_str(),
        "--partitions",
        "3",
        "--format",
        format,
        "--devices",
        "200",
        "--messages",
        "20000",
        "--seed",
        "5",
        "--anomaly-rate",
        "0.05",
        "--event-time",
        "simulated",
        "--json",
        "-q",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    summary_from(&out.stdout)
}

#[test]
fn on_kafka_each_message_is_one_reading_or_alert_and_verify_reads_them() {
    let b = Cluster::shared().bootstrap();
    let prefix = unique("pb") + "-";
    let sj = kafka_run(b, &prefix, "json");
    let sp = kafka_run(b, &prefix, "protobuf");
    let alerts = n(&sp, "alerts_delivered");
    assert_eq!(alerts, n(&sj, "alerts_delivered"));
    assert!(alerts > 500, "{alerts} alerts");
    // Same readings and alerts, same keys, same partitions.
    for (topic, kind, count) in [("-r", "Reading", 20_000), ("-a", "Alert", alerts as usize)] {
        let as_map = |msgs: Vec<(Vec<u8>, i32, Vec<u8>)>, pb: bool| {
            let mut m = BTreeMap::new();
            for (key, partition, payload) in msgs {
                let v = if pb {
                    to_json(&decode(kind, &payload))
                } else {
                    serde_json::from_slice(&payload).unwrap()
                };
                assert_eq!(v["device_id"].as_str().unwrap().as_bytes(), key.as_slice());
                let k = (
                    key,
                    v["seq"].as_u64().unwrap(),
                    v.get("sensor").cloned().unwrap_or_default().to_string(),
                );
                m.insert(k, (partition, v));
            }
            m
        };
        let j = as_map(
            consume_raw(b, &format!("{prefix}json{topic}"), count),
            false,
        );
        let p = as_map(
            consume_raw(b, &format!("{prefix}protobuf{topic}"), count),
            true,
        );
        assert_eq!(j.len(), count);
        assert!(j == p, "{kind}s differ between the formats");
    }
    let (code, r) = verify(&[
        "-b",
        b,
        "-t",
        &format!("{prefix}protobuf-r"),
        "--alerts-topic",
        &format!("{prefix}protobuf-a"),
        "--format",
        "protobuf",
        "--expect",
        "20000",
        "--idle",
        "2s",
    ]);
    assert_eq!(code, Some(0), "{r}");
    assert_eq!(
        (n(&r, "alerts"), n(&r, "invalid"), n(&r, "misplaced")),
        (alerts, 0, 0),
        "{r}"
    );
    // Read as JSON, every protobuf message is invalid: the setting decides.
    let (code, r) = verify(&[
        "-b",
        b,
        "-t",
        &format!("{prefix}protobuf-r"),
        "--alerts-topic",
        "",
        "--idle",
        "2s",
    ]);
    assert_eq!(code, Some(5), "{r}");
    assert_eq!((n(&r, "readings"), n(&r, "invalid")), (0, 20_000), "{r}");
}

#[test]
fn a_bad_format_names_the_setting_and_exits_2() {
    let want = "unknown variant `xml`, expected `json` or `protobuf`";
    for (args, env, key) in [
        (&["--format", "xml", "--sink", "null"][..], None, "--format"),
        (
            &["verify", "--format", "xml", "--file", "-"][..],
            None,
            "--format",
        ),
        (&["--sink", "null"][..], Some("xml"), "run.format"),
    ] {
        let mut c = crate::common::iotblast();
        c.args(args);
        if let Some(v) = env {
            c.env("IOTBLAST_RUN_FORMAT", v);
        }
        let out = c.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(&format!("{key}: {want}")),
            "{args:?}: {stderr}"
        );
    }
    // `config print` shows it, `config default` documents it.
    let out = crate::common::iotblast()
        .args(["config", "print"])
        .env("IOTBLAST_RUN_FORMAT", "protobuf")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("format: protobuf"));
    let out = run(&["config", "default"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("schema/reading.proto") && text.contains("  format: json"),
        "{text}"
    );
}
