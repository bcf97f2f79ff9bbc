//! Delivery and its accounting: a run on the embedded mock delivers everything it sends
//! and its summary says so; an unreachable broker fails fast and clearly.

use std::time::{Duration, Instant};

use crate::common::{run, summary_from};

#[test]
fn embedded_mock_run_delivers_everything_it_sends() {
    let out = run(&[
        "--devices",
        "10000",
        "--cores",
        "2",
        "--duration",
        "2s",
        // The design's anomaly rate: plenty of alerts to deliver (the default is rare).
        "--anomaly-rate",
        "0.01",
        "--json",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("embedded librdkafka mock cluster"),
        "{stderr}"
    );
    // Progress and summary lines go to stdout, as kafka-producer-perf-test prints them.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("records sent"), "{stdout}");
    let s = summary_from(&out.stdout);
    assert_eq!(s["stop_reason"], "duration");
    let sent = s["messages_sent"].as_u64().unwrap();
    assert!(sent > 0);
    assert_eq!(s["messages_delivered"].as_u64(), Some(sent));
    assert_eq!(s["messages_failed"].as_u64(), Some(0));
    // The embedded mock has an alerts topic too, and every alert reaches it.
    let alerts = s["alerts_sent"].as_u64().unwrap();
    assert!(alerts > sent / 100, "{alerts} alerts for {sent} readings");
    assert_eq!(s["alerts_delivered"].as_u64(), Some(alerts));
    for key in [
        "bytes",
        "elapsed_s",
        "msgs_per_sec",
        "mb_per_sec",
        "devices",
        "cores",
        "seed",
    ] {
        assert!(s.get(key).is_some(), "summary lacks {key}: {s}");
    }
    // Throughput for readings, for alerts, and in total, from the same delivered counts.
    let rate = |k: &str| s[k].as_f64().unwrap();
    let elapsed = rate("elapsed_s");
    assert!(
        (rate("alerts_per_sec") * elapsed - alerts as f64).abs() < 1.0,
        "{s}"
    );
    assert!(
        (rate("total_per_sec") - rate("msgs_per_sec") - rate("alerts_per_sec")).abs() < 1e-6,
        "{s}"
    );
    for key in ["avg", "p50", "p95", "p99", "p999", "max"] {
        assert!(
            s["latency_ms"][key].as_f64().is_some(),
            "latency lacks {key}"
        );
    }
    assert!(s["latency_ms"]["p99"].as_f64().unwrap() >= s["latency_ms"]["p50"].as_f64().unwrap());
}

#[test]
fn an_unreachable_broker_fails_fast_and_clearly() {
    let t = Instant::now();
    let out = run(&[
        "-b",
        "127.0.0.1:1",
        "--connect-timeout",
        "3s",
        "--duration",
        "5s",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        t.elapsed() < Duration::from_secs(15),
        "took {:?}",
        t.elapsed()
    );
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("could not reach Kafka brokers 127.0.0.1:1 within 3s"),
        "{stderr}"
    );
}

#[test]
fn messages_in_flight_at_the_flush_timeout_are_in_doubt_not_failed() {
    // Acks take 500 ms and the flush waits 200 ms: whatever was sent in the last
    // 300 ms is still in flight when it is purged. The broker may have written it, so
    // it is in doubt; the counts still balance, and the exit status says not all of
    // it was confirmed.
    let out = run(&[
        "--mock-rtt",
        "500ms",
        "--rate",
        "400",
        "--duration",
        "3s",
        "--devices",
        "100",
        "--flush-timeout",
        "200ms",
        "-X",
        "linger.ms=0",
        "--alerts-topic",
        "",
        "--json",
        "-q",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    let s = summary_from(&out.stdout);
    let n = |k: &str| s[k].as_u64().unwrap();
    assert!(n("messages_in_doubt") > 0, "{s}");
    assert_eq!(
        n("messages_sent"),
        n("messages_delivered") + n("messages_failed") + n("messages_in_doubt"),
        "{s}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("in doubt."), "{stdout}");
    assert!(
        s["errors"]
            .as_object()
            .unwrap()
            .keys()
            .any(|k| k.starts_with("in doubt: ") && k.contains("PurgeInflight")),
        "{s}"
    );
}

#[test]
fn a_warm_up_is_counted_but_left_out_of_the_rates() {
    let out = run(&[
        "--devices",
        "500",
        "--duration",
        "3s",
        "--warmup",
        "1s",
        "--json",
        "-q",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let s = summary_from(&out.stdout);
    let w = &s["warmup"];
    let n = |v: &serde_json::Value, k: &str| v[k].as_u64().unwrap();
    let seconds = w["seconds"].as_f64().unwrap();
    assert!((1.0..2.0).contains(&seconds), "{w}");
    assert!(n(w, "messages_sent") > 0 && n(w, "messages_sent") < n(&s, "messages_sent"));
    // The totals still hold everything; the rate covers only what came after.
    let after = (n(&s, "messages_delivered") - n(w, "messages_delivered")) as f64
        / (s["elapsed_s"].as_f64().unwrap() - seconds);
    let rate = s["msgs_per_sec"].as_f64().unwrap();
    assert!((rate - after).abs() < 1e-6 * after, "{rate} vs {after}");
    assert_eq!(
        n(&s, "messages_sent"),
        n(&s, "messages_delivered") + n(&s, "messages_failed") + n(&s, "messages_in_doubt")
    );
}

/// Payloads go to librdkafka without a copy, so a batch must not be refilled before its
/// last message is acknowledged. With acks slowed to 30 ms, small batches and two
/// workers, batches cycle through the pool many times while librdkafka still points
/// into them: every payload read back must still be exactly the reading the stdout sink
/// prints for the same seed.
#[test]
fn slow_acks_never_let_a_batch_be_refilled_under_librdkafka() {
    let mock = rdkafka::mocking::MockCluster::new(1).unwrap();
    mock.create_topic("zero-copy", 4, 1).unwrap();
    mock.broker_round_trip_time(1, Duration::from_millis(30))
        .unwrap();
    let n = 20_000;
    let common = [
        "--devices",
        "400",
        "--messages",
        "20000",
        "--seed",
        "11",
        "--cores",
        "2",
        "--batch-size",
        "64",
        "--alerts-topic",
        "",
    ];
    let bootstrap = mock.bootstrap_servers();
    let kafka = [
        &common[..],
        &["--brokers", &bootstrap, "--topic", "zero-copy", "--json"],
    ]
    .concat();
    let out = run(&kafka);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        summary_from(&out.stdout)["messages_delivered"].as_u64(),
        Some(n)
    );
    let read = crate::common::consume(&bootstrap, "zero-copy", n as usize, Duration::from_secs(60));
    let printed = run(&[&common[..], &["--sink", "stdout"]].concat());
    assert!(printed.status.success());
    let want = crate::common::without_timestamps(crate::common::stdout_readings(&printed));
    let got = crate::common::without_timestamps(read.into_iter().map(|r| r.value));
    assert_eq!(got.len(), want.len());
    assert!(
        got == want,
        "payloads read back differ from the readings made"
    );
}
