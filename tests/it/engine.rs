//! The library end to end against librdkafka's mock cluster: produce N readings,
//! consume them back, check every one.

use std::collections::HashMap;
use std::time::Duration;

use iotblast::deliver::kafka::settings::Brokers;
use iotblast::generate::topology::Quota;
use iotblast::units::{Count, Dur};
use iotblast::{Run, Settings, Shutdown, SinkKind};
use rdkafka::mocking::MockCluster;

use crate::common::{
    assert_alert_schema_valid, assert_schema_valid, consume, java_partition, seqs_per_device,
    status_transitions, Transition,
};

/// Settings for a run against `bootstrap` that produces to an existing `topic`, with
/// alerts off and a fixed seed; `tune` adjusts them.
fn kafka_run(bootstrap: String, topic: &str, tune: impl FnOnce(&mut Settings)) -> Run {
    let mut s = Settings::default();
    s.kafka.brokers = Brokers(vec![bootstrap]);
    s.kafka.topics.device_data = topic.into();
    s.kafka.topics.alerts = String::new();
    s.kafka.create_topic = false;
    s.run.seed = Some(11);
    tune(&mut s);
    let mut run = Run::new(s, SinkKind::Kafka).expect("valid settings");
    run.quiet = true;
    run
}

#[test]
fn every_reading_arrives_once_keyed_and_in_one_partition_per_device() {
    let mock = MockCluster::new(1).unwrap();
    mock.create_topic("it-readings", 6, 1).unwrap();
    mock.create_topic("it-alerts", 3, 1).unwrap();
    let n = 9_050u64;
    let run = kafka_run(mock.bootstrap_servers(), "it-readings", |s| {
        s.kafka.topics.alerts = "it-alerts".into();
        let sim = &mut s.device.simulator;
        sim.device_count = Count(300);
        sim.worker_pool_size = Some(2);
        sim.batch_size = 100;
        // Alerts are rare at the defaults; the design's rate gives plenty to check.
        sim.anomaly_rate = 0.03;
        s.run.messages = Some(Count(n));
    });

    let summary = iotblast::run(&run, Shutdown::new()).expect("run");
    assert_eq!(
        summary.stop_reason,
        iotblast::shutdown::StopReason::Messages
    );
    assert_eq!(summary.messages_sent, n);
    assert_eq!(summary.messages_delivered, n);
    assert_eq!(summary.messages_failed, 0);
    assert!(summary.latency_ms.max > 0.0, "ack latency was measured");

    let records = consume(
        &mock.bootstrap_servers(),
        "it-readings",
        n as usize,
        Duration::from_secs(60),
    );
    assert_eq!(records.len() as u64, n, "exactly N readings arrive");
    let mut partition_of: HashMap<String, i32> = HashMap::new();
    for r in &records {
        assert_schema_valid(&r.value);
        let id = r.value["device_id"].as_str().unwrap();
        assert_eq!(r.key.as_deref(), Some(id), "key == device_id");
        let p = *partition_of.entry(id.to_owned()).or_insert(r.partition);
        assert_eq!(
            p, r.partition,
            "{id} appeared in partitions {p} and {}",
            r.partition
        );
        // Placement matches a Java producer's, so mixed-client pipelines agree.
        assert_eq!(r.partition, java_partition(id.as_bytes(), 6), "{id}");
    }
    let counts = seqs_per_device(records.iter().map(|r| &r.value));
    let quota = Quota::new(n, 300);
    assert_eq!(counts.len(), 300);
    for (id, c) in counts {
        let index: u64 = id["device_".len()..].parse().unwrap();
        assert_eq!(c, quota.of(index), "{id}");
    }
    assert!(
        partition_of
            .values()
            .collect::<std::collections::HashSet<_>>()
            .len()
            > 1
    );

    // Alerts: one per status transition in the readings, each one validating against
    // the alert schema, keyed by device and matching the reading that raised it.
    let transitions = status_transitions(records.iter().map(|r| &r.value));
    assert!(transitions.len() > 100, "{} transitions", transitions.len());
    assert_eq!(summary.alerts_sent, transitions.len() as u64);
    assert_eq!(summary.alerts_delivered, summary.alerts_sent);
    assert_eq!(summary.alerts_failed, 0);
    let alerts = consume(
        &mock.bootstrap_servers(),
        "it-alerts",
        transitions.len(),
        Duration::from_secs(60),
    );
    let mut seen: Vec<Transition> = alerts
        .iter()
        .map(|a| {
            assert_alert_schema_valid(&a.value);
            let v = &a.value;
            assert_eq!(a.key.as_deref(), v["device_id"].as_str());
            (
                v["device_id"].as_str().unwrap().to_owned(),
                v["seq"].as_u64().unwrap(),
                v["sensor"].as_str().unwrap().to_owned(),
                v["previous"].as_str().unwrap().to_owned(),
                v["level"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen, transitions,
        "alerts are exactly the status transitions"
    );
}

#[test]
fn missing_topic_with_no_create_is_a_clear_error() {
    let mock = MockCluster::new(1).unwrap();
    let run = kafka_run(mock.bootstrap_servers(), "never-created", |s| {
        s.run.messages = Some(Count(10));
    });
    let err = iotblast::run(&run, Shutdown::new())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("topic 'never-created' does not exist"),
        "{err}"
    );
}

#[test]
fn a_dead_broker_fails_deliveries_visibly_and_stops_within_the_flush_timeout() {
    let mock = MockCluster::new(1).unwrap();
    mock.create_topic("it-down", 3, 1).unwrap();
    let run = kafka_run(mock.bootstrap_servers(), "it-down", |s| {
        s.device.simulator.device_count = Count(100);
        s.run.messages = Some(Count(5_000));
        s.kafka.flush_timeout = Dur(Duration::from_secs(2));
        // Fail fast rather than retrying for librdkafka's default 5 minutes.
        s.kafka
            .librdkafka
            .insert("message.timeout.ms".into(), "1500".into());
    });
    // Metadata works (for the startup check) but every produce request fails.
    mock.request_errors(
        rdkafka::types::RDKafkaApiKey::Produce,
        &[rdkafka::types::RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION; 5000],
    );
    let t = std::time::Instant::now();
    let summary = iotblast::run(&run, Shutdown::new()).expect("run");
    assert!(
        t.elapsed() < Duration::from_secs(20),
        "took {:?}",
        t.elapsed()
    );
    assert_eq!(summary.messages_sent, 5_000);
    assert!(summary.messages_failed > 0, "{summary:?}");
    assert_eq!(summary.messages_delivered + summary.messages_failed, 5_000);
    assert!(!summary.errors.is_empty());
}

/// `kafka.producers` splits the partitions between librdkafka clients: the run must
/// still deliver every reading once, each device in its one (Java-placed) partition,
/// and each device's readings in order, which holds only if one client owns each
/// partition.
#[test]
fn several_producers_deliver_every_reading_once_and_in_order_per_device() {
    let mock = MockCluster::new(1).unwrap();
    mock.create_topic("it-producers", 7, 1).unwrap();
    let n = 12_345u64;
    let run = kafka_run(mock.bootstrap_servers(), "it-producers", |s| {
        s.kafka.producers = 3;
        let sim = &mut s.device.simulator;
        sim.device_count = Count(500);
        sim.worker_pool_size = Some(2);
        sim.batch_size = 64;
        s.run.messages = Some(Count(n));
    });
    let summary = iotblast::run(&run, Shutdown::new()).expect("run");
    assert_eq!(
        (summary.messages_delivered, summary.messages_failed),
        (n, 0)
    );

    let records = consume(
        &mock.bootstrap_servers(),
        "it-producers",
        n as usize,
        Duration::from_secs(60),
    );
    assert_eq!(records.len() as u64, n, "exactly N readings arrive");
    // Records of one partition come back in offset order.
    let mut last: HashMap<String, (i32, u64)> = HashMap::new();
    for r in &records {
        let id = r.value["device_id"].as_str().unwrap();
        let seq = r.value["seq"].as_u64().unwrap();
        assert_eq!(r.partition, java_partition(id.as_bytes(), 7), "{id}");
        if let Some((p, before)) = last.insert(id.to_owned(), (r.partition, seq)) {
            assert_eq!(p, r.partition, "{id} moved partition");
            assert!(seq > before, "{id}: seq {seq} after {before}");
        }
    }
    let counts = seqs_per_device(records.iter().map(|r| &r.value));
    assert_eq!(counts.values().sum::<u64>(), n);
}
