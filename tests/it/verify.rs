//! `iotblast verify`: exact counts of loss, duplicates and invalid messages, from the
//! stdout sink's NDJSON and from a real broker's topic (Apache Kafka), checked against runs
//! whose truth is known: a clean run, and the same readings with one deleted and ten
//! duplicated.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;

use crate::cluster::{unique, Cluster};
use crate::common::{java_partition, run, summary_from, verify};

const N: usize = 100_000;

/// `N` readings of 1000 devices from the stdout sink, one per line.
fn readings() -> Vec<String> {
    let out = run(&[
        "--sink",
        "stdout",
        "--devices",
        "1000",
        "--messages",
        "100000",
        "--seed",
        "11",
        "-q",
    ]);
    assert!(out.status.success());
    let lines: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(lines.len(), N);
    lines
}

/// The readings with line 50,000 deleted and lines 70,000..70,010 repeated at the end.
fn tampered(lines: &[String]) -> Vec<String> {
    let mut t: Vec<String> = lines.to_vec();
    t.remove(50_000);
    t.extend_from_slice(&lines[70_000..70_010]);
    t
}

fn n(report: &serde_json::Value, key: &str) -> u64 {
    report[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} in {report}"))
}

#[test]
fn a_file_of_readings_verifies_and_tampering_is_counted_exactly() {
    let lines = readings();
    let dir = tempfile::tempdir().unwrap();
    let clean = dir.path().join("clean.ndjson");
    std::fs::write(&clean, lines.join("\n") + "\n").unwrap();
    let (code, r) = verify(&["--file", clean.to_str().unwrap(), "--expect", "100k"]);
    assert_eq!(code, Some(0), "{r}");
    assert_eq!((n(&r, "readings"), n(&r, "devices")), (N as u64, 1000));
    assert_eq!(r["ok"], true);

    let bad = dir.path().join("tampered.ndjson");
    std::fs::write(&bad, tampered(&lines).join("\n")).unwrap();
    let (code, r) = verify(&["--file", bad.to_str().unwrap(), "--expect", "100000"]);
    assert_eq!(code, Some(5), "{r}");
    assert_eq!(
        (
            n(&r, "readings"),
            n(&r, "gaps"),
            n(&r, "duplicates"),
            n(&r, "reorders")
        ),
        (N as u64 - 1 + 10, 1, 10, 0),
        "{r}"
    );
    assert_eq!(r["ok"], false);
}

#[test]
fn a_topic_on_a_real_broker_verifies_and_tampering_is_counted_exactly() {
    let b = Cluster::shared().bootstrap();
    let (clean, alerts, tampered_topic) =
        (unique("v-clean"), unique("v-alerts"), unique("v-tampered"));
    let out = run(&[
        "-b",
        b,
        "-t",
        &clean,
        "--alerts-topic",
        &alerts,
        "--partitions",
        "3",
        "--devices",
        "1000",
        "--messages",
        "100000",
        "--seed",
        "11",
        "--json",
        "-q",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = summary_from(&out.stdout);
    let (code, r) = verify(&[
        "-b",
        b,
        "-t",
        &clean,
        "--alerts-topic",
        &alerts,
        "--expect",
        "100000",
        "--idle",
        "2s",
    ]);
    assert_eq!(code, Some(0), "{r}");
    assert_eq!(n(&r, "readings"), n(&summary, "messages_delivered"));
    assert_eq!(n(&r, "alerts"), n(&summary, "alerts_delivered"));
    assert_eq!((n(&r, "devices"), n(&r, "misplaced")), (1000, 0));
    assert!(r["e2e_latency_ms"]["p50"].as_u64().is_some(), "{r}");

    // The same readings, tampered, produced by the test itself with keys and
    // partitions as iotblast sets them.
    let config = ClientConfig::new().set("bootstrap.servers", b).clone();
    let admin: AdminClient<DefaultClientContext> = config.create().unwrap();
    let topic = NewTopic::new(&tampered_topic, 3, TopicReplication::Fixed(1));
    let created = futures_executor::block_on(admin.create_topics([&topic], &AdminOptions::new()));
    assert!(created.unwrap()[0].is_ok());
    let producer: BaseProducer = config.create().unwrap();
    for line in tampered(&readings()) {
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        let key = v["device_id"].as_str().unwrap().to_owned();
        let mut record = BaseRecord::to(&tampered_topic)
            .key(&key)
            .payload(&line)
            .partition(java_partition(key.as_bytes(), 3));
        while let Err((e, r)) = producer.send(record) {
            assert!(format!("{e}").contains("Queue full"), "{e}");
            producer.poll(Duration::from_millis(10));
            record = r;
        }
    }
    producer.flush(Duration::from_secs(30)).unwrap();
    let (code, r) = verify(&[
        "-b",
        b,
        "-t",
        &tampered_topic,
        "--alerts-topic",
        "",
        "--expect",
        "100000",
        "--idle",
        "2s",
    ]);
    assert_eq!(code, Some(5), "{r}");
    assert_eq!(
        (
            n(&r, "readings"),
            n(&r, "gaps"),
            n(&r, "duplicates"),
            n(&r, "invalid")
        ),
        (N as u64 - 1 + 10, 1, 10, 0),
        "{r}"
    );
}

#[test]
fn verify_refuses_bad_input_with_the_setting_named() {
    let cases: &[(&[&str], &str, i32)] = &[
        (&["verify"], "--brokers: verify needs brokers, or --file", 2),
        (
            &["verify", "--file", "/nonexistent/x"],
            "--file: cannot open /nonexistent/x",
            2,
        ),
        (
            &["verify", "--file", "-", "-b", "127.0.0.1:1"],
            "--brokers: has no effect with --file",
            2,
        ),
        (
            &["verify", "--file", "-", "--idle", "1ms"],
            "--idle: must be between 100ms and 1h",
            2,
        ),
        (
            &["verify", "--file", "-", "--expect", "lots"],
            "--expect: invalid count 'lots'",
            2,
        ),
        (
            &["verify", "-b", "127.0.0.1:1", "--connect-timeout", "1s"],
            "could not reach Kafka brokers 127.0.0.1:1 within 1s",
            1,
        ),
    ];
    for (args, want, code) in cases {
        let out = run(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(want), "{args:?}: {stderr}");
        assert_eq!(out.status.code(), Some(*code), "{args:?}: {stderr}");
    }
}
