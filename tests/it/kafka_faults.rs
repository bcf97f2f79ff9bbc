//! The fault matrix on three Apache Kafka nodes ([`Cluster::three`], issue #22): the
//! busiest leader killed, a rolling restart, two nodes down shorter and longer than
//! `message.timeout.ms`, a leader frozen past the broker session timeout, a byte-rate
//! quota, ACLs, topic shapes that differ from the settings, and a whole cluster that
//! stops answering.
//!
//! Every run produces readings and alerts to topics of replication factor 3 with
//! `min.insync.replicas=2`, with `acks=all` (iotblast's default, -1) and
//! `enable.idempotence=true`, at a paced rate. In each: the summary balances
//! (`sent == delivered + failed + in_doubt`, readings and alerts), the exit status is the
//! one README's table gives for what the summary reports, and `iotblast verify` and
//! Kafka's own console consumer (Java, sharing no code with iotblast or librdkafka)
//! count the same records. Where every message is confirmed, the topics hold each
//! exactly once. Assertions rest on counts, not on timing, except where a bound in
//! time is the behaviour under test (a frozen cluster, a second signal).
//!
//! Each test prints its figures on stderr (`--nocapture` shows them); docs/reliability.md
//! quotes them.

use std::collections::{HashMap, HashSet};
use std::process::Child;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cluster::{unique, Cluster, ConsoleRecord, PartitionState};
use crate::common::{
    assert_balanced, assert_no_panic, collect, http_get, metric, n, signal, summary_from, verify,
};

/// Partitions of each test topic: two led by each node.
const PARTITIONS: u32 = 6;

/// How long a test waits for iotblast to end before it fails.
const RUN_LIMIT: Duration = Duration::from_secs(240);

/// The readings and alerts topics of one test.
struct Topics {
    readings: String,
    alerts: String,
}

/// Creates a readings and an alerts topic named after `name`, both with replication
/// factor 3 and `min.insync.replicas=2`.
fn topics(c: &Cluster, name: &str) -> Topics {
    topics_needing(c, name, 2)
}

/// Creates a readings and an alerts topic named after `name`, both with replication
/// factor 3 and `min.insync.replicas=min_insync`.
fn topics_needing(c: &Cluster, name: &str, min_insync: u32) -> Topics {
    let t = Topics {
        readings: unique(name),
        alerts: unique(&format!("{name}-alerts")),
    };
    let config = format!("min.insync.replicas={min_insync}");
    for topic in [&t.readings, &t.alerts] {
        c.create_topic(topic, PARTITIONS, 3, &[&config]);
    }
    // The fault starts from every partition on three replicas, all in sync, once the
    // new topic's leaders are elected.
    let t0 = Instant::now();
    loop {
        let partitions = c.describe(&t.readings);
        let ready = |p: &PartitionState| p.replicas.len() == 3 && p.isr.len() == 3 && p.leader >= 0;
        if partitions.iter().all(ready) {
            return t;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "{}: {partitions:?}",
            t.readings
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// An iotblast run in progress. Its output is read from the start, so that a run that
/// logs much while a fault lasts never blocks on a full pipe.
struct Running {
    child: Child,
    stdout: JoinHandle<Vec<u8>>,
    stderr: JoinHandle<Vec<u8>>,
    /// Where it serves /metrics.
    metrics: String,
}

/// A finished run.
struct Ended {
    code: Option<i32>,
    stdout: Vec<u8>,
    stderr: String,
}

impl Ended {
    fn summary(&self) -> Value {
        summary_from(&self.stdout)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

impl Running {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    /// One scrape of its /metrics, once the endpoint listens.
    fn scrape(&self) -> Option<String> {
        std::net::TcpStream::connect(&self.metrics).ok()?;
        Some(http_get(&self.metrics, "/metrics").1)
    }

    /// Waits until the brokers have acknowledged `readings`, so that a fault lands
    /// mid-run rather than during start-up (which can take seconds, for instance while
    /// a restarted node's transaction coordinator loads the producer ids that
    /// idempotence needs). Returns how long that took.
    fn await_deliveries(&mut self, readings: u64) -> Duration {
        let t = Instant::now();
        loop {
            let delivered = self
                .scrape()
                .map_or(0.0, |m| metric(&m, "iotblast_readings_delivered_total"));
            if delivered >= readings as f64 {
                return t.elapsed();
            }
            assert!(
                self.is_running(),
                "iotblast ended before {readings} deliveries"
            );
            assert!(
                t.elapsed() < Duration::from_secs(90),
                "{delivered} readings delivered after {:?}",
                t.elapsed()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits for the run to end, up to `limit`.
    fn finish(mut self, limit: Duration) -> Ended {
        let t = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            if t.elapsed() > limit {
                let _ = self.child.kill();
                panic!("iotblast still running after {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let stdout = self.stdout.join().expect("stdout reader");
        let stderr = self.stderr.join().expect("stderr reader");
        assert_no_panic(&[], &stderr);
        Ended {
            code: status.code(),
            stdout,
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }
    }
}

/// iotblast producing to `t` on `c`'s PLAINTEXT listener: 300 devices, acks=all (its
/// default) and idempotence, the JSON summary and /metrics on; `extra` sets the run's
/// length and rate.
fn produce(c: &Cluster, t: &Topics, extra: &[&str]) -> Running {
    let partitions = PARTITIONS.to_string();
    let metrics = format!("127.0.0.1:{}", crate::common::free_port());
    let mut args = vec![
        "-b",
        c.bootstrap(),
        "-t",
        &t.readings,
        "--alerts-topic",
        &t.alerts,
        "--partitions",
        &partitions,
        "--devices",
        "300",
        "-X",
        "enable.idempotence=true",
        "--metrics-address",
        &metrics,
        "--json",
        "-q",
    ];
    args.extend_from_slice(extra);
    let mut child = crate::common::spawn(&args);
    let stdout = collect(child.stdout.take());
    let stderr = collect(child.stderr.take());
    Running {
        child,
        stdout,
        stderr,
        metrics,
    }
}

/// Says how long a run took to get under way, for the report.
fn started(test: &str, after: Duration) {
    eprintln!(
        "kafka_faults::{test}: deliveries under way {:.1} s after the start",
        after.as_secs_f64()
    );
}

/// The exit status README's table gives for what the summary reports: 3 when anything
/// failed or is in doubt, else 4 when the run missed its `--rate`, else 0.
fn documented_exit(s: &Value) -> i32 {
    let unconfirmed = [
        "messages_failed",
        "messages_in_doubt",
        "alerts_failed",
        "alerts_in_doubt",
    ]
    .iter()
    .any(|k| n(s, k) > 0);
    match (
        unconfirmed,
        s["target_missed"].as_bool().expect("target_missed"),
    ) {
        (true, _) => 3,
        (false, true) => 4,
        (false, false) => 0,
    }
}

/// The run's figures, for the report (shown with `--nocapture`).
fn figures(test: &str, run: &Ended, s: &Value) {
    eprintln!(
        "kafka_faults::{test}: exit {:?}; readings sent {}, delivered {}, failed {}, in doubt {}; alerts sent {}, delivered {}, failed {}, in doubt {}; retries {}, client errors {}, throttle {:.1} s (max {} ms), achieved {:.0} of {} msg/s, blocked {:.1} s, elapsed {:.1} s, stop {}",
        run.code,
        n(s, "messages_sent"),
        n(s, "messages_delivered"),
        n(s, "messages_failed"),
        n(s, "messages_in_doubt"),
        n(s, "alerts_sent"),
        n(s, "alerts_delivered"),
        n(s, "alerts_failed"),
        n(s, "alerts_in_doubt"),
        n(s, "retries"),
        n(s, "client_errors"),
        s["throttle_s"].as_f64().unwrap_or(f64::NAN),
        s["throttle_max_ms"],
        s["achieved_rate"].as_f64().unwrap_or(f64::NAN),
        s["target_rate"],
        s["blocked_s"].as_f64().unwrap_or(f64::NAN),
        s["elapsed_s"].as_f64().unwrap_or(f64::NAN),
        s["stop_reason"],
    );
}

/// The balanced summary of a run whose exit status is the documented one.
fn checked(test: &str, run: &Ended) -> Value {
    let s = run.summary();
    figures(test, run, &s);
    assert_balanced(&s);
    assert_eq!(
        run.code,
        Some(documented_exit(&s)),
        "exit status against the summary {s}\n{}",
        run.stderr
    );
    s
}

/// The distinct messages among `records`, by (device, seq, sensor): a reading has no
/// sensor, an alert one. Checks on the way that each is keyed by its device and that
/// each device stays on one partition.
fn distinct(records: &[ConsoleRecord]) -> u64 {
    let mut seen = HashSet::new();
    let mut partition_of = HashMap::new();
    for r in records {
        let id = r.value["device_id"].as_str().expect("device_id");
        assert_eq!(r.key, id, "keyed by device: {:?}", r.value);
        let p = *partition_of.entry(id.to_owned()).or_insert(r.partition);
        assert_eq!(p, r.partition, "{id} stays on one partition");
        let seq = r.value["seq"].as_u64().expect("seq");
        seen.insert((
            id.to_owned(),
            seq,
            r.value["sensor"].as_str().map(str::to_owned),
        ));
    }
    seen.len() as u64
}

/// What the topics hold: every record, as `iotblast verify` counts it (with its
/// duplicates and gaps), after Kafka's console consumer read exactly as many, with as
/// many duplicates.
struct Held {
    readings: u64,
    duplicates: u64,
    gaps: u64,
    alerts: u64,
    alert_duplicates: u64,
}

fn held(c: &Cluster, t: &Topics) -> Held {
    let (_, r) = verify(&[
        "-b",
        c.bootstrap(),
        "-t",
        &t.readings,
        "--alerts-topic",
        &t.alerts,
        "--idle",
        "3s",
    ]);
    assert_eq!(
        (n(&r, "invalid"), n(&r, "misplaced")),
        (0, 0),
        "verify: {r}"
    );
    let idle = Duration::from_secs(5);
    let (readings, alerts) = std::thread::scope(|s| {
        let alerts = s.spawn(|| c.console_consume(&t.alerts, idle));
        let readings = c.console_consume(&t.readings, idle);
        (readings, alerts.join().expect("console consumer"))
    });
    let counted = |records: &[ConsoleRecord]| (records.len() as u64, distinct(records));
    assert_eq!(
        (counted(&readings), counted(&alerts)),
        (
            (n(&r, "readings"), n(&r, "readings") - n(&r, "duplicates")),
            (n(&r, "alerts"), n(&r, "alerts") - n(&r, "alert_duplicates"))
        ),
        "Kafka's console consumer against iotblast verify {r}"
    );
    let (readings, alerts) = (readings.len() as u64, alerts.len() as u64);
    Held {
        readings,
        duplicates: n(&r, "duplicates"),
        gaps: n(&r, "gaps"),
        alerts,
        alert_duplicates: n(&r, "alert_duplicates"),
    }
}

/// Every reading and alert the summary counts as delivered is in the topics exactly
/// once, and nothing else is (the run confirmed every message).
fn assert_exactly_once(c: &Cluster, t: &Topics, s: &Value) {
    assert_eq!(
        (n(s, "messages_failed"), n(s, "messages_in_doubt")),
        (0, 0),
        "{s}"
    );
    assert_eq!(
        (n(s, "alerts_failed"), n(s, "alerts_in_doubt")),
        (0, 0),
        "{s}"
    );
    let h = held(c, t);
    assert_eq!(
        (h.duplicates, h.gaps, h.alert_duplicates),
        (0, 0, 0),
        "no duplicate, no gap: {s}"
    );
    assert_eq!(
        (h.readings, h.alerts),
        (n(s, "messages_delivered"), n(s, "alerts_delivered")),
        "the topics hold what the summary delivered"
    );
}

/// Nodes frozen with SIGSTOP, thawed when dropped, even by a failed assertion.
struct Frozen<'a> {
    c: &'a Cluster,
    nodes: Vec<u32>,
}

impl<'a> Frozen<'a> {
    fn all(c: &'a Cluster) -> Self {
        let nodes: Vec<u32> = (0..c.brokers()).collect();
        for &i in &nodes {
            c.pause(i);
        }
        Frozen { c, nodes }
    }
}

impl Drop for Frozen<'_> {
    fn drop(&mut self) {
        for &i in &self.nodes {
            // Not `Cluster::resume`, which panics on failure: this may run in a panic.
            if let Some(pid) = self.c.pid(i) {
                let _ = std::process::Command::new("kill")
                    .args(["-CONT", &pid.to_string()])
                    .status();
            }
        }
    }
}

/// The nodes other than `keep`.
fn others(c: &Cluster, keep: u32) -> Vec<u32> {
    (0..c.brokers()).filter(|&i| i != keep).collect()
}

#[test]
fn killing_the_busiest_leader_mid_run_loses_and_duplicates_nothing() {
    let c = Cluster::three();
    let t = topics(&c, "kf-kill");
    let leader = c.busiest_leader(&t.readings);
    let mut run = produce(&c, &t, &["--messages", "40000", "--rate", "2000"]);
    started("killing_the_busiest_leader", run.await_deliveries(4000));
    c.kill(leader);
    let run = run.finish(RUN_LIMIT);
    let s = checked("killing_the_busiest_leader", &run);
    assert_eq!(n(&s, "messages_delivered"), 40_000, "{s}");
    assert_exactly_once(&c, &t, &s);
}

#[test]
fn a_rolling_restart_of_every_broker_loses_and_duplicates_nothing() {
    let c = Cluster::three();
    let t = topics(&c, "kf-rolling");
    // Stopped by a signal once every node has been round: a rolling restart takes as
    // long as the nodes take to start, which a fixed count could not follow.
    let mut run = produce(
        &c,
        &t,
        &[
            "--messages",
            "10000000",
            "--rate",
            "1000",
            "--flush-timeout",
            "90s",
        ],
    );
    started("a_rolling_restart", run.await_deliveries(2000));
    for i in 0..c.brokers() {
        // A controlled shutdown, as a rolling restart does it; the next node waits
        // until this one is back in every ISR.
        c.stop_broker(i);
        c.start_broker(i);
        c.await_healthy(Duration::from_secs(120));
    }
    std::thread::sleep(Duration::from_secs(2));
    assert!(run.is_running(), "the run outlasted the restarts");
    signal(run.pid(), "TERM");
    let run = run.finish(RUN_LIMIT);
    let s = checked("a_rolling_restart", &run);
    assert_eq!(s["stop_reason"], "signal", "{s}");
    assert!(n(&s, "messages_delivered") > 0, "{s}");
    assert_exactly_once(&c, &t, &s);
}

#[test]
fn two_brokers_down_for_ten_seconds_are_ridden_out_within_the_message_timeout() {
    // Two of three combined broker-controller nodes down is also the KRaft quorum
    // down: no controller can shrink an ISR, so the ISRs never fall below
    // min.insync.replicas and no broker answers NOT_ENOUGH_REPLICAS. The surviving
    // leader takes writes it cannot get acknowledged by a second replica, and the other
    // partitions have no live leader. With message.timeout.ms (300 s) longer than the
    // outage, librdkafka retries until the nodes are back.
    let c = Cluster::three();
    let t = topics(&c, "kf-two-down");
    let down = others(&c, c.busiest_leader(&t.readings));
    let mut run = produce(
        &c,
        &t,
        &[
            "--messages",
            "40000",
            "--rate",
            "2000",
            "--flush-timeout",
            "120s",
        ],
    );
    started(
        "two_brokers_down_for_ten_seconds",
        run.await_deliveries(4000),
    );
    let t0 = Instant::now();
    for &i in &down {
        c.kill(i);
    }
    std::thread::sleep(Duration::from_secs(10).saturating_sub(t0.elapsed()));
    c.start_brokers(&down);
    eprintln!(
        "kafka_faults::two_brokers_down_for_ten_seconds: nodes {down:?} down for {:.1} s, restart included",
        t0.elapsed().as_secs_f64()
    );
    let run = run.finish(RUN_LIMIT);
    let s = checked("two_brokers_down_for_ten_seconds", &run);
    assert_eq!(n(&s, "messages_delivered"), 40_000, "{s}");
    assert!(n(&s, "retries") > 0, "the retries show in the summary: {s}");
    assert_exactly_once(&c, &t, &s);
}

#[test]
fn two_brokers_down_past_the_message_timeout_fail_readings_with_their_reason() {
    let c = Cluster::three();
    let t = topics(&c, "kf-two-down-timeout");
    let down = others(&c, c.busiest_leader(&t.readings));
    let mut run = produce(
        &c,
        &t,
        &[
            "--messages",
            "30000",
            "--rate",
            "2000",
            "-X",
            "message.timeout.ms=4000",
            "--flush-timeout",
            "30s",
        ],
    );
    started(
        "two_brokers_down_past_the_message_timeout",
        run.await_deliveries(4000),
    );
    for &i in &down {
        c.kill(i);
    }
    std::thread::sleep(Duration::from_secs(10));
    c.start_brokers(&down);
    let run = run.finish(RUN_LIMIT);
    let s = checked("two_brokers_down_past_the_message_timeout", &run);
    assert_eq!(run.code, Some(3), "{}", run.stderr);
    let unconfirmed = n(&s, "messages_failed") + n(&s, "messages_in_doubt");
    assert!(unconfirmed > 0, "{s}");
    // librdkafka retries the brokers' errors until message.timeout.ms, then reports the
    // timeout: that is the reason counted, and a note says what it means. The rest
    // was purged when the first timeout stopped the run (idempotence).
    let reasons = s["errors"].as_object().expect("errors");
    assert!(
        reasons.keys().any(|r| r.contains("MessageTimedOut"))
            && reasons
                .keys()
                .all(|r| ["MessageTimedOut", "PurgeQueue", "PurgeInflight"]
                    .iter()
                    .any(|why| r.contains(why))),
        "every failure is a timeout, or purged after one: {s}"
    );
    assert_eq!(
        reasons.values().map(|v| v.as_u64().unwrap()).sum::<u64>(),
        unconfirmed + n(&s, "alerts_failed") + n(&s, "alerts_in_doubt"),
        "every unconfirmed message has its reason: {s}"
    );
    let notes: Vec<&str> = s["notes"]
        .as_array()
        .expect("notes")
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        notes.iter().any(|n| n.contains("message.timeout.ms (4s)")
            && n.contains("min.insync.replicas")
            && n.contains("in doubt")),
        "{notes:?}"
    );
    assert!(
        notes.iter().any(|n| n.contains("enable.idempotence")),
        "{notes:?}"
    );
    assert!(run.text().contains("  note: "), "{}", run.text());
    // With idempotence the first timeout stops the run and purges what librdkafka
    // holds, before its epoch bump could send a reading a second time.
    assert_eq!(s["stop_reason"], "error", "{s}");
    assert!(
        run.stderr
            .contains("a message timed out (message.timeout.ms) with enable.idempotence: stopping"),
        "{}",
        run.stderr
    );
    // Confirmed readings are in the topic once; failed ones never left the client;
    // those in doubt may be there, once.
    let h = held(&c, &t);
    assert_eq!(
        (h.duplicates, h.alert_duplicates),
        (0, 0),
        "duplicates in the topic against {s}"
    );
    let delivered = n(&s, "messages_delivered");
    assert!(
        delivered <= h.readings && h.readings <= delivered + n(&s, "messages_in_doubt"),
        "{} readings in the topic against {s}",
        h.readings
    );
    let alerts_delivered = n(&s, "alerts_delivered");
    assert!(
        alerts_delivered <= h.alerts && h.alerts <= alerts_delivered + n(&s, "alerts_in_doubt"),
        "{} alerts in the topic against {s}",
        h.alerts
    );
    eprintln!(
        "kafka_faults::two_brokers_down_past_the_message_timeout: topic holds {} readings ({} gaps), {} alerts",
        h.readings, h.gaps, h.alerts
    );
}

/// A run on topics with `min.insync.replicas=3` during which one node is down for 10 s:
/// it shuts down cleanly (SIGTERM), so the controller (a majority is up) moves its
/// leaderships and shrinks every ISR to two at once, below the minimum, and the
/// leaders refuse writes with NOT_ENOUGH_REPLICAS until the node is back in sync. (A
/// SIGKILLed node would first leave its partitions leaderless for the broker session
/// timeout, 9 s: timeouts in that window are plain timeouts.) Returns the ended run,
/// its summary and the topics.
fn one_down_below_min_insync(test: &str, extra: &[&str]) -> (Ended, Value, Topics) {
    let c = Cluster::three();
    let t = topics_needing(&c, test, 3);
    let down = c.busiest_leader(&t.readings);
    let mut args = vec!["--messages", "30000", "--rate", "2000"];
    args.extend_from_slice(extra);
    let mut run = produce(&c, &t, &args);
    started(test, run.await_deliveries(4000));
    let t0 = Instant::now();
    c.stop_broker(down);
    std::thread::sleep(Duration::from_secs(10).saturating_sub(t0.elapsed()));
    c.start_brokers(&[down]);
    eprintln!(
        "kafka_faults::{test}: node {down} down for {:.1} s, restart included",
        t0.elapsed().as_secs_f64()
    );
    let run = run.finish(RUN_LIMIT);
    let s = checked(test, &run);
    let notes: Vec<&str> = s["notes"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    assert!(
        s["under_min_isr_s"].as_f64().unwrap_or(0.0) >= 1.0
            && notes.iter().any(|n| n
                .contains("fewer in-sync replicas than their topic's min.insync.replicas")
                && n.contains("NOT_ENOUGH_REPLICAS")),
        "the summary says the partitions were short of in-sync replicas: {s}"
    );
    (run, s, t)
}

#[test]
fn one_broker_down_below_min_insync_replicas_is_ridden_out_and_named() {
    // The ISR below min.insync.replicas with the quorum up: the brokers answer
    // NOT_ENOUGH_REPLICAS, librdkafka retries within message.timeout.ms (300 s), and
    // everything arrives once; the summary says why deliveries stalled.
    let (_, s, t) =
        one_down_below_min_insync("kf-one-down-min-isr-3", &["--flush-timeout", "120s"]);
    assert_eq!(n(&s, "messages_delivered"), 30_000, "{s}");
    assert_exactly_once(&Cluster::three(), &t, &s);
}

#[test]
fn one_broker_down_below_min_insync_replicas_past_the_message_timeout_counts_not_enough_replicas() {
    // The same with message.timeout.ms shorter than the outage: the readings that time
    // out on partitions short of replicas are counted with NOT_ENOUGH_REPLICAS as their
    // cause, and the first timeout stops the run (idempotence) with nothing written
    // twice.
    let (run, s, t) = one_down_below_min_insync(
        "kf-one-down-min-isr-3-timeout",
        &["-X", "message.timeout.ms=4000", "--flush-timeout", "30s"],
    );
    assert_eq!(run.code, Some(3), "{}", run.stderr);
    assert_eq!(s["stop_reason"], "error", "{s}");
    let reasons = s["errors"].as_object().expect("errors");
    let named: u64 = reasons
        .iter()
        .filter(|(r, _)| r.contains("MessageTimedOut") && r.contains("after NOT_ENOUGH_REPLICAS"))
        .map(|(_, v)| v.as_u64().unwrap())
        .sum();
    assert!(named > 0, "timeouts counted with NOT_ENOUGH_REPLICAS: {s}");
    let h = held(&Cluster::three(), &t);
    assert_eq!(
        (h.duplicates, h.alert_duplicates),
        (0, 0),
        "duplicates in the topic against {s}"
    );
    let delivered = n(&s, "messages_delivered");
    assert!(
        delivered <= h.readings && h.readings <= delivered + n(&s, "messages_in_doubt"),
        "{} readings in the topic against {s}",
        h.readings
    );
}

#[test]
fn a_leader_frozen_past_the_broker_session_timeout_loses_and_duplicates_nothing() {
    let c = Cluster::three();
    let t = topics(&c, "kf-frozen-leader");
    let leader = c.busiest_leader(&t.readings);
    let mut run = produce(&c, &t, &["--messages", "40000", "--rate", "2000"]);
    started(
        "a_leader_frozen_past_the_session_timeout",
        run.await_deliveries(4000),
    );
    c.pause(leader);
    // Longer than broker.session.timeout.ms (Kafka's default, 9 s): the controller
    // fences the node and moves its leaderships while librdkafka's requests to it hang.
    std::thread::sleep(Duration::from_secs(12));
    c.resume(leader);
    let run = run.finish(RUN_LIMIT);
    let s = checked("a_leader_frozen_past_the_session_timeout", &run);
    assert_eq!(n(&s, "messages_delivered"), 40_000, "{s}");
    assert_exactly_once(&c, &t, &s);
}

/// The producer byte-rate quota of the throttling test, per broker, bytes per second.
const QUOTA: u64 = 100 * 1024;

#[test]
fn a_byte_rate_quota_shows_as_broker_throttling_not_as_an_iotblast_limit() {
    let c = Cluster::three();
    // Without a quota, nothing is throttled.
    let free = unique("kf-unthrottled");
    let run = produce(
        &c,
        &topics(&c, "kf-unthrottled"),
        &[
            "--messages",
            "6000",
            "--rate",
            "3000",
            "-X",
            &format!("client.id={free}"),
        ],
    )
    .finish(RUN_LIMIT);
    let s = checked("unthrottled", &run);
    assert_eq!(s["throttle_s"].as_f64(), Some(0.0), "{s}");

    let t = topics(&c, "kf-quota");
    let client = unique("kf-throttled");
    c.tool_ok(
        "configs",
        &[
            "--bootstrap-server",
            c.bootstrap(),
            "--alter",
            "--add-config",
            &format!("producer_byte_rate={QUOTA}"),
            "--entity-type",
            "clients",
            "--entity-name",
            &client,
        ],
    );
    // A small producer queue, so the final flush at the quota stays short.
    let mut run = produce(
        &c,
        &t,
        &[
            "--duration",
            "15s",
            "--rate",
            "3000",
            "-X",
            &format!("client.id={client}"),
            "-X",
            "queue.buffering.max.kbytes=2048",
        ],
    );
    started("a_byte_rate_quota", run.await_deliveries(1000));
    std::thread::sleep(Duration::from_secs(8));
    let scrape = run.scrape().expect("/metrics");
    let run = run.finish(RUN_LIMIT);
    let s = checked("a_byte_rate_quota", &run);
    assert!(
        metric(&scrape, "iotblast_librdkafka_throttle_seconds_total") > 0.0,
        "{scrape}"
    );
    assert!(
        scrape.contains("iotblast_librdkafka_broker_throttle_max_seconds{"),
        "{scrape}"
    );
    // Everything was delivered, but the brokers held the rate under the target.
    assert_eq!(
        (n(&s, "messages_failed"), n(&s, "messages_in_doubt")),
        (0, 0),
        "{s}"
    );
    assert_eq!(run.code, Some(4), "{}", run.stderr);
    let throttle = s["throttle_s"].as_f64().unwrap();
    assert!(throttle > 0.0 && n(&s, "throttle_max_ms") > 0, "{s}");
    // The known truth: Kafka lets a client id send at most QUOTA bytes per second to
    // each broker, measured over quota.window.num (11) windows of 1 s, so over the run
    // no more than QUOTA × (elapsed + 11 s) per broker, requests' overhead included.
    // Unthrottled, this run would have sent ~3000 × 15 readings of ~500 bytes (22 MB).
    let bound = c.brokers() as f64 * QUOTA as f64 * (s["elapsed_s"].as_f64().unwrap() + 11.0);
    assert!(
        (n(&s, "bytes") as f64) < bound,
        "{} payload bytes against the quota's bound of {bound}: {s}",
        n(&s, "bytes")
    );
    assert!(
        run.stderr.contains("target rate missed")
            && run.stderr.contains("the brokers throttled iotblast"),
        "{}",
        run.stderr
    );
    let text = run.text();
    assert!(text.contains("Throttled by the brokers for"), "{text}");
    assert!(
        text.contains("held the rate back, not iotblast")
            && text.contains("that is why the target rate was missed"),
        "{text}"
    );
    assert_exactly_once(&c, &t, &s);
}

#[test]
fn a_principal_without_write_or_create_is_refused_at_start_up_with_the_reason() {
    let c = Cluster::three();
    let (sasl, nobody) = (c.get("BOOTSTRAP_SASL"), c.get("NOACL_USER"));
    let (user, password) = (
        format!("sasl.username={nobody}"),
        format!("sasl.password={}", c.get("NOACL_PASSWORD")),
    );
    let grant = |topic: &str, operations: &[&str]| {
        let principal = format!("User:{nobody}");
        let mut args = vec![
            "--bootstrap-server",
            c.bootstrap(),
            "--add",
            "--allow-principal",
            &principal,
            "--topic",
            topic,
        ];
        for op in operations {
            args.extend(["--operation", op]);
        }
        c.tool_ok("acls", &args);
    };
    let connect_timeout = Duration::from_secs(5);
    let run = |topic: &str| {
        let t = Instant::now();
        let out = crate::common::run(&[
            "-b",
            sasl,
            "-t",
            topic,
            "--alerts-topic",
            "",
            "--messages",
            "1000",
            "--connect-timeout",
            "5s",
            "-X",
            "security.protocol=SASL_PLAINTEXT",
            "-X",
            "sasl.mechanism=SCRAM-SHA-512",
            "-X",
            &user,
            "-X",
            &password,
            "-q",
        ]);
        let took = t.elapsed();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(1), "{topic}: {stderr}");
        assert!(took < connect_timeout, "{topic}: took {took:?}");
        stderr
    };

    // No ACL at all. Kafka answers TOPIC_AUTHORIZATION_FAILED for a topic a principal
    // may not describe whether or not it exists, so an existing and a missing topic
    // get the same error, which names both remedies.
    let existing = unique("kf-acl");
    c.create_topic(&existing, 3, 3, &["min.insync.replicas=2"]);
    let missing = unique("kf-acl-missing");
    for topic in [&existing, &missing] {
        let err = run(topic);
        assert!(
            err.contains(&format!("not authorized to write topic '{topic}'"))
                && err.contains("grant this principal WRITE and DESCRIBE")
                && err.contains("if it is missing, CREATE as well"),
            "{err}"
        );
    }

    // Allowed to see the topic and read it (a consumer's credentials), not to write it.
    let readable = unique("kf-acl-readable");
    c.create_topic(&readable, 3, 3, &["min.insync.replicas=2"]);
    grant(&readable, &["Describe", "Read"]);
    let err = run(&readable);
    assert!(
        err.contains(&format!("not authorized to write topic '{readable}'"))
            && err.contains("but not WRITE"),
        "{err}"
    );
    assert!(
        c.console_consume(&readable, Duration::from_secs(3))
            .is_empty(),
        "nothing was produced"
    );

    // Allowed to see a missing topic, not to create it.
    let absent = unique("kf-acl-absent");
    grant(&absent, &["Describe"]);
    let err = run(&absent);
    assert!(
        err.contains(&format!(
            "not authorized to create topic '{absent}' on {sasl}: it does not exist"
        )),
        "{err}"
    );
}

#[test]
fn an_existing_topic_smaller_than_asked_warns_and_more_replicas_than_brokers_is_refused() {
    let c = Cluster::three();
    let run = |topic: &str, rf: &str| {
        let out = crate::common::run(&[
            "-b",
            c.bootstrap(),
            "-t",
            topic,
            "--alerts-topic",
            "",
            "--partitions",
            "6",
            "--replication-factor",
            rf,
            "--messages",
            "1000",
            "-q",
        ]);
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let small = unique("kf-small");
    c.create_topic(&small, 2, 1, &[]);
    let (code, err) = run(&small, "3");
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains(&format!(
            "topic '{small}' already exists with 2 partitions, not kafka.partitions = 6"
        )) && err.contains(&format!(
            "topic '{small}' already exists with replication factor 1, not kafka.replication_factor = 3"
        )),
        "{err}"
    );
    assert_eq!(c.describe(&small).len(), 2, "the topic is left as it was");

    // Bad input, found before anything is produced: exit 2, naming the setting and both
    // numbers.
    let wide = unique("kf-wide");
    let (code, err) = run(&wide, "4");
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "kafka.replication_factor (--replication-factor): is 4, but the cluster at {} has 3 brokers up",
            c.bootstrap()
        )),
        "{err}"
    );
    let listed = c.tool_ok("topics", &["--bootstrap-server", c.bootstrap(), "--list"]);
    assert!(!listed.lines().any(|l| l == wide), "not created: {listed}");
}

#[test]
fn a_cluster_that_stops_answering_ends_the_run_within_its_timeouts() {
    // A frozen cluster (SIGSTOP) answers nothing: without a bound, a run with a large
    // --messages would wait minutes behind librdkafka's full queue. It must notice (no
    // delivery outcome for the longer of the flush and connect timeouts), stop, and
    // settle every message as delivered, failed or in doubt within one flush timeout.
    let c = Cluster::three();
    let t = topics(&c, "kf-hung");
    let mut run = produce(
        &c,
        &t,
        &[
            "--messages",
            "50000000",
            "--rate",
            "5000",
            "--flush-timeout",
            "2s",
            "--connect-timeout",
            "2s",
        ],
    );
    started("a_cluster_that_stops_answering", run.await_deliveries(5000));
    let frozen = Frozen::all(&c);
    let t0 = Instant::now();
    let run = run.finish(Duration::from_secs(60));
    let took = t0.elapsed();
    drop(frozen);
    let s = checked("a_cluster_that_stops_answering", &run);
    assert_eq!(run.code, Some(3), "{}", run.stderr);
    assert!(
        took < Duration::from_secs(12),
        "took {took:?} after the cluster froze"
    );
    assert!(
        run.stderr.contains("the brokers are not answering"),
        "{}",
        run.stderr
    );
    assert_eq!(s["stop_reason"], "error", "{s}");
    assert!(n(&s, "messages_delivered") > 0, "{s}");
    eprintln!(
        "kafka_faults::a_cluster_that_stops_answering: ended {:.1} s after the freeze",
        took.as_secs_f64()
    );
}

#[test]
fn a_second_sigterm_while_the_flush_waits_on_a_frozen_cluster_exits_at_once() {
    let c = Cluster::three();
    let t = topics(&c, "kf-aborted");
    let mut run = produce(&c, &t, &["--messages", "10000000", "--rate", "2000"]);
    started("a_second_sigterm", run.await_deliveries(2000));
    let frozen = Frozen::all(&c);
    // The first signal stops generation and waits on the flush, which a frozen cluster
    // never completes; the second exits at once (130) and says what it abandons.
    signal(run.pid(), "TERM");
    std::thread::sleep(Duration::from_millis(500));
    assert!(run.is_running(), "the first signal waits on the flush");
    let t0 = Instant::now();
    signal(run.pid(), "TERM");
    let run = run.finish(Duration::from_secs(10));
    let took = t0.elapsed();
    drop(frozen);
    assert_eq!(run.code, Some(130), "{}", run.stderr);
    assert!(took < Duration::from_secs(3), "took {took:?}");
    let line = run
        .stderr
        .lines()
        .find(|l| l.contains("second signal, exiting now"))
        .unwrap_or_else(|| panic!("no abort report: {}", run.stderr));
    let in_doubt: u64 = line
        .split(" in doubt")
        .next()
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    assert!(in_doubt > 0, "messages were outstanding: {line}");
    eprintln!(
        "kafka_faults::a_second_sigterm: exit 130 {:.2} s after the second signal: {line}",
        took.as_secs_f64()
    );
}
