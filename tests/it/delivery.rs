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
        "--json",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("embedded librdkafka mock cluster"),
        "{stderr}"
    );
    assert!(stderr.contains("records sent"), "{stderr}");
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
