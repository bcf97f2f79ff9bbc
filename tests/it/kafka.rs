//! End to end against Apache Kafka: the one-node cluster the tests share
//! ([`Cluster::shared`]), each test on topics of its own. Faults that stop or freeze
//! brokers run on the three-node cluster, in `kafka_faults`.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use iotblast::generate::topology::Quota;

use crate::cluster::{unique, Cluster};
use crate::common::{
    assert_alert_schema_valid, assert_balanced, assert_schema_valid, consume, java_partition,
    seqs_per_device, status_transitions,
};

#[test]
fn creates_the_topic_and_delivers_every_reading_to_a_real_broker() {
    let broker = Cluster::shared().bootstrap();
    let (readings, alerts) = (unique("e2e-readings"), unique("e2e-alerts"));
    let n = 10_000u64;
    let out = Command::new(env!("CARGO_BIN_EXE_iotblast"))
        .args([
            "-b",
            broker,
            "-t",
            &readings,
            "--alerts-topic",
            &alerts,
            "--partitions",
            "3",
        ])
        .args([
            "--devices",
            "500",
            "--messages",
            &n.to_string(),
            "--seed",
            "5",
            "--cores",
            "2",
        ])
        .args(["--json", "-q"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    for topic in [&readings, &alerts] {
        assert!(
            stderr.contains(&format!("created topic '{topic}' with 3 partitions")),
            "{stderr}"
        );
    }
    let summary: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().last().unwrap()).unwrap();
    assert_eq!(summary["messages_delivered"].as_u64(), Some(n), "{summary}");
    assert_eq!(summary["messages_failed"].as_u64(), Some(0), "{summary}");

    let records = consume(broker, &readings, n as usize, Duration::from_secs(60));
    assert_eq!(records.len() as u64, n, "exactly N readings on the broker");
    for r in &records {
        assert_schema_valid(&r.value);
        let id = r.value["device_id"].as_str().unwrap();
        assert_eq!(r.key.as_deref(), Some(id));
        assert_eq!(r.partition, java_partition(id.as_bytes(), 3), "{id}");
    }
    let counts = seqs_per_device(records.iter().map(|r| &r.value));
    let quota = Quota::new(n, 500);
    assert_eq!(counts.len(), 500);
    for (id, c) in counts {
        assert_eq!(c, quota.of(id["device_".len()..].parse().unwrap()), "{id}");
    }

    // The alerts topic holds exactly one alert per status transition in the readings.
    let transitions = status_transitions(records.iter().map(|r| &r.value));
    assert_eq!(
        summary["alerts_delivered"].as_u64(),
        Some(transitions.len() as u64),
        "{summary}"
    );
    let alerts = consume(broker, &alerts, transitions.len(), Duration::from_secs(60));
    assert_eq!(alerts.len(), transitions.len());
    for a in &alerts {
        assert_alert_schema_valid(&a.value);
        assert_eq!(a.key.as_deref(), a.value["device_id"].as_str());
    }
}

/// What `iotblast verify` and the test's own consumer count in `topic`; both must
/// agree, with no gap or duplicate.
fn counted(bootstrap: &str, topic: &str, expected: u64) -> u64 {
    let (_, r) = crate::common::verify(&[
        "-b",
        bootstrap,
        "-t",
        topic,
        "--alerts-topic",
        "",
        "--idle",
        "3s",
    ]);
    assert_eq!(
        (r["duplicates"].as_u64(), r["invalid"].as_u64()),
        (Some(0), Some(0)),
        "{r}"
    );
    let own = consume(bootstrap, topic, expected as usize, Duration::from_secs(60));
    let readings = r["readings"].as_u64().unwrap();
    assert_eq!(
        readings,
        own.len() as u64,
        "verify and the test's consumer disagree"
    );
    readings
}

/// A paced run of `n` readings to `topic`, as a child process.
fn paced_run(bootstrap: &str, topic: &str, n: &str, rate: &str, extra: &[&str]) -> Child {
    let mut args = vec![
        "-b",
        bootstrap,
        "-t",
        topic,
        "--alerts-topic",
        "",
        "--partitions",
        "3",
        "--devices",
        "300",
        "--messages",
        n,
        "--rate",
        rate,
        "--json",
        "-q",
    ];
    args.extend_from_slice(extra);
    crate::common::spawn(&args)
}

#[test]
fn sigterm_mid_run_delivers_what_the_summary_says() {
    let broker = Cluster::shared().bootstrap();
    let topic = unique("stopped");
    let child = paced_run(broker, &topic, "10000000", "10000", &[]);
    std::thread::sleep(Duration::from_secs(2));
    crate::common::signal(child.id(), "TERM");
    let (status, stdout, stderr) = crate::common::wait_with_limit(child, Duration::from_secs(60));
    assert_eq!(
        status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&stderr)
    );
    let s = crate::common::summary_from(&stdout);
    assert_eq!(s["stop_reason"], "signal");
    assert_balanced(&s);
    let delivered = s["messages_delivered"].as_u64().unwrap();
    assert!(delivered > 0 && s["messages_in_doubt"] == 0, "{s}");
    assert_eq!(counted(broker, &topic, delivered), delivered);
}

#[test]
fn bad_input_against_a_live_broker_gets_a_specific_message_and_a_non_zero_exit() {
    let b = Cluster::shared().bootstrap();
    let (missing, big, sized) = (unique("no-such-topic"), unique("big"), unique("sized"));
    let base = [
        "--alerts-topic",
        "",
        "--messages",
        "1000",
        "--connect-timeout",
        "3s",
        "-q",
    ];
    let run = |extra: &[&str]| {
        let args: Vec<&str> = extra.iter().chain(base.iter()).copied().collect();
        let t = Instant::now();
        let out = crate::common::run(&args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        (out.status.code(), stderr, t.elapsed())
    };

    let (code, err, _) = run(&["-b", b, "-t", &missing, "--no-create-topic"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!("topic '{missing}' does not exist"))
            && err.contains("--no-create-topic"),
        "{err}"
    );

    // Labels at their 64-byte maximum make a reading longer than librdkafka's smallest
    // message.max.bytes (1000).
    let long = "B".repeat(64);
    let out = crate::common::iotblast()
        .args([
            "-b",
            b,
            "-t",
            &big,
            "--buildings",
            &long,
            "-X",
            "message.max.bytes=1000",
        ])
        .args(base)
        .env("IOTBLAST_DEVICE_SIMULATOR_MODELS", &long)
        .env("IOTBLAST_DEVICE_SIMULATOR_FIRMWARES", &long)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("message.max.bytes") && err.contains("is 1000 bytes"),
        "{err}"
    );

    let (code, err, took) = run(&["-b", "no-such-host.invalid:9092", "-t", "x"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("Failed to resolve 'no-such-host.invalid:9092'"),
        "{err}"
    );
    assert!(took < Duration::from_secs(8), "{took:?}");

    // An existing topic keeps its partitions; a different --partitions is warned about.
    let (code, err, _) = run(&["-b", b, "-t", &sized, "--partitions", "3"]);
    assert_eq!(code, Some(0), "{err}");
    let (code, err, _) = run(&["-b", b, "-t", &sized, "--partitions", "6"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains(&format!(
            "topic '{sized}' already exists with 3 partitions, not kafka.partitions = 6"
        )),
        "{err}"
    );
}
