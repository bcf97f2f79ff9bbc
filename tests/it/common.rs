//! Helpers shared by the integration tests: the JSON Schema, consuming a topic back,
//! the per-device checks every end-to-end test makes, and running the `iotblast` binary
//! as a user would.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::net::TcpListener;
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value;

fn compile(file: &str) -> jsonschema::Validator {
    let path = format!("{}/docs/schema/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("schema file");
    let json: Value = serde_json::from_str(&text).expect("schema is JSON");
    jsonschema::validator_for(&json).expect("schema compiles")
}

/// The shipped reading schema, compiled once.
pub fn schema() -> &'static jsonschema::Validator {
    static S: OnceLock<jsonschema::Validator> = OnceLock::new();
    S.get_or_init(|| compile("reading.schema.json"))
}

/// The shipped alert schema, compiled once.
pub fn alert_schema() -> &'static jsonschema::Validator {
    static S: OnceLock<jsonschema::Validator> = OnceLock::new();
    S.get_or_init(|| compile("alert.schema.json"))
}

/// Panics with every violation if `v` does not match the reading schema.
pub fn assert_schema_valid(v: &Value) {
    let errors: Vec<String> = schema().iter_errors(v).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "schema violations {errors:?} in {v}");
}

/// Panics with every violation if `v` does not match the alert schema.
pub fn assert_alert_schema_valid(v: &Value) {
    let errors: Vec<String> = alert_schema()
        .iter_errors(v)
        .map(|e| e.to_string())
        .collect();
    assert!(
        errors.is_empty(),
        "alert schema violations {errors:?} in {v}"
    );
}

/// One consumed record.
pub struct Record {
    pub key: Option<String>,
    pub partition: i32,
    pub value: Value,
}

/// Reads `topic` from the beginning of all partitions until `expected` records arrived
/// (then lingers briefly to catch extras) or `timeout` passes.
pub fn consume(bootstrap: &str, topic: &str, expected: usize, timeout: Duration) -> Vec<Record> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "iotblast-tests")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let md = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let mut tpl = TopicPartitionList::new();
    for p in md.topics()[0].partitions() {
        tpl.add_partition_offset(topic, p.id(), Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).expect("assign");
    // The mock cluster keeps only the newest few segments per partition; a test that
    // reads back more than that would see "loss" that is really retention.
    for p in md.topics()[0].partitions() {
        let (low, _) = consumer
            .fetch_watermarks(topic, p.id(), Duration::from_secs(10))
            .expect("watermarks");
        assert_eq!(
            low,
            0,
            "partition {} was truncated; produce fewer records",
            p.id()
        );
    }
    let mut out = Vec::with_capacity(expected);
    let deadline = Instant::now() + timeout;
    let mut linger_until: Option<Instant> = None;
    while Instant::now() < linger_until.unwrap_or(deadline) {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => out.push(Record {
                key: m
                    .key()
                    .map(|k| String::from_utf8(k.to_vec()).expect("utf-8 key")),
                partition: m.partition(),
                value: serde_json::from_slice(m.payload().expect("payload")).expect("JSON payload"),
            }),
            Some(Err(e)) => panic!("consume error: {e}"),
            None => {}
        }
        if out.len() >= expected && linger_until.is_none() {
            linger_until = Some(Instant::now() + Duration::from_millis(500));
        }
    }
    out
}

/// Checks that each device's seqs are exactly `0..n` (no gap, no duplicate) and returns
/// the count per device.
pub fn seqs_per_device<'a>(readings: impl IntoIterator<Item = &'a Value>) -> BTreeMap<String, u64> {
    let mut seqs: HashMap<String, Vec<u64>> = HashMap::new();
    for v in readings {
        let id = v["device_id"].as_str().expect("device_id").to_owned();
        seqs.entry(id)
            .or_default()
            .push(v["seq"].as_u64().expect("seq"));
    }
    seqs.into_iter()
        .map(|(id, mut s)| {
            s.sort_unstable();
            let n = s.len() as u64;
            assert!(
                s.iter().copied().eq(0..n),
                "{id}: seqs are not contiguous from 0: {:?}",
                &s[..s.len().min(20)]
            );
            (id, n)
        })
        .collect()
}

/// The readings with the generation timestamp removed, sorted: comparable across runs.
pub fn without_timestamps(readings: impl IntoIterator<Item = Value>) -> Vec<String> {
    let mut v: Vec<String> = readings
        .into_iter()
        .map(|mut r| {
            r.as_object_mut().unwrap().remove("timestamp");
            r.to_string()
        })
        .collect();
    v.sort_unstable();
    v
}

/// The partition Kafka's Java producer picks for `key` (its default partitioner:
/// `toPositive(murmur2(key)) % partitions`), written out from the Java source as an
/// independent oracle for iotblast's placement.
pub fn java_partition(key: &[u8], partitions: i32) -> i32 {
    const M: u32 = 0x5bd1_e995;
    let mut h: u32 = 0x9747_b28c ^ key.len() as u32;
    let mut chunks = key.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M) ^ k;
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        for (i, b) in rest.iter().enumerate() {
            h ^= (*b as u32) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    ((h & 0x7fff_ffff) % partitions as u32) as i32
}

/// A status change seen in the readings: (device_id, seq, sensor, from, to).
pub type Transition = (String, u64, String, String, String);

/// Every sensor status change in `readings`, sorted, counting from `normal` before each
/// device's first reading (as the alert schema documents).
pub fn status_transitions<'a>(readings: impl Iterator<Item = &'a Value>) -> Vec<Transition> {
    let mut by_device: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for r in readings {
        let id = r["device_id"].as_str().expect("device_id").to_owned();
        by_device.entry(id).or_default().push(r);
    }
    let mut out = Vec::new();
    for (id, mut rs) in by_device {
        rs.sort_by_key(|r| r["seq"].as_u64());
        for sensor in ["temperature", "humidity", "pressure", "current"] {
            let mut last = "normal".to_owned();
            for r in &rs {
                let status = r["sensors"][sensor]["status"].as_str().unwrap().to_owned();
                if status != last {
                    out.push((
                        id.clone(),
                        r["seq"].as_u64().unwrap(),
                        sensor.to_owned(),
                        last,
                        status.clone(),
                    ));
                }
                last = status;
            }
        }
    }
    out.sort();
    out
}

/// The unsigned number at `key` of a JSON report or summary; panics naming it if absent.
pub fn n(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_else(|| panic!("{key} in {v}"))
}

/// A summary's `sent == delivered + failed + in_doubt`, for readings and for alerts.
pub fn assert_balanced(s: &Value) {
    for kind in ["messages", "alerts"] {
        let k = |what: &str| n(s, &format!("{kind}_{what}"));
        assert_eq!(
            k("sent"),
            k("delivered") + k("failed") + k("in_doubt"),
            "{kind}: {s}"
        );
    }
}

/// A free loopback port.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The `iotblast` binary under test, logging at info.
pub fn iotblast() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_iotblast"));
    c.env("RUST_LOG", "info");
    c
}

/// Runs iotblast with `args` to completion and returns its output.
/// Every run through these helpers is also checked never to panic, whatever its input.
pub fn run(args: &[&str]) -> Output {
    let out = iotblast().args(args).output().expect("spawn iotblast");
    assert_no_panic(args, &out.stderr);
    out
}

/// Fails if iotblast's stderr shows a panic: no input may cause one.
pub fn assert_no_panic(args: &[&str], stderr: &[u8]) {
    let text = String::from_utf8_lossy(stderr);
    assert!(!text.contains("panicked"), "{args:?} panicked:\n{text}");
}

/// Starts iotblast with stdout and stderr piped.
pub fn spawn(args: &[&str]) -> Child {
    spawn_command(iotblast(), args)
}

/// `spawn` with a command prepared by the caller (extra environment, say).
pub fn spawn_command(mut command: Command, args: &[&str]) -> Child {
    command
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn iotblast")
}

/// Reads a pipe to the end on a thread of its own (empty if the test took it already).
pub fn collect(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut v = Vec::new();
        if let Some(mut p) = pipe {
            p.read_to_end(&mut v).unwrap();
        }
        v
    })
}

/// The readings iotblast printed to stdout, one JSON object a line.
pub fn stdout_readings(out: &Output) -> Vec<Value> {
    String::from_utf8(out.stdout.clone())
        .expect("utf-8 stdout")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("line is not JSON ({e}): {l}")))
        .collect()
}

/// The JSON summary: the last line of stdout (or of stderr with --sink stdout).
pub fn summary_from(text: &[u8]) -> Value {
    let text = String::from_utf8_lossy(text);
    let last = text.lines().last().expect("a summary line");
    serde_json::from_str(last).unwrap_or_else(|e| panic!("summary is not JSON ({e}): {last}"))
}

/// Waits for `child` up to `limit`; kills it and panics if it is still running.
pub fn wait_with_limit(
    mut child: Child,
    limit: Duration,
) -> (std::process::ExitStatus, Vec<u8>, Vec<u8>) {
    let t = Instant::now();
    let o = collect(child.stdout.take());
    let e = collect(child.stderr.take());
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let (out, err) = (o.join().unwrap(), e.join().unwrap());
            assert_no_panic(&[], &err);
            return (status, out, err);
        }
        if t.elapsed() > limit {
            child.kill().unwrap();
            panic!("iotblast still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A hash of the (sorted, timestamp-free) readings, to compare runs at a glance.
pub fn digest(readings: &[String]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    readings.hash(&mut h);
    h.finish()
}

/// GET `path` from `addr` over plain HTTP/1.0; returns the status code and body.
pub fn http_get(addr: &str, path: &str) -> (u16, String) {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text[9..12].parse().expect("status code");
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// The value of an unlabelled metric in the Prometheus text format.
pub fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} missing in\n{text}"))
}

/// Runs `iotblast verify` with `args` and `--json`; returns its exit code and report.
pub fn verify(args: &[&str]) -> (Option<i32>, Value) {
    let mut all = vec!["verify", "--json"];
    all.extend_from_slice(args);
    let out = run(&all);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let text = String::from_utf8_lossy(&out.stdout);
    let Some(last) = text.lines().last() else {
        panic!("verify {args:?} printed no report: {stderr}");
    };
    let report = serde_json::from_str(last)
        .unwrap_or_else(|e| panic!("report is not JSON ({e}): {last}\n{stderr}"));
    (out.status.code(), report)
}

/// Sends `signal` (e.g. "TERM") to process `pid`.
pub fn signal(pid: u32, signal: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{signal} {pid} failed");
}

/// Configured labels for property tests: characters JSON must escape, multi-byte
/// text, up to `max_chars` of them (50 gives protobuf two-byte lengths now and then).
pub fn label(max_chars: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just('"'),
            Just('\\'),
            Just('\n'),
            Just('\u{0}'),
            Just('\u{1f}'),
            Just('栋'),
            Just('é'),
            Just('😀'),
            prop::char::range('a', 'z'),
            any::<char>(),
        ],
        1..max_chars,
    )
    .prop_map(|cs| cs.into_iter().collect())
}
