//! Guards `--interval-log`: one JSON line per reporting interval whose counts add up
//! exactly to the run's summary, and a file that cannot be created is bad input.

use crate::common::{run, summary_from};

/// A 2 s run against the embedded mock with 400 ms intervals, writing its log with
/// `flag`; returns the JSON summary and the log file's contents.
fn logged_run(flag: &str) -> (serde_json::Value, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.log");
    let out = run(&[
        "--devices",
        "500",
        "--duration",
        "2s",
        "--report-interval",
        "400ms",
        flag,
        path.to_str().unwrap(),
        "--json",
        "-q",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    (summary_from(&out.stdout), std::fs::read(&path).unwrap())
}

#[test]
fn interval_lines_add_up_to_the_summary() {
    let (s, log) = logged_run("--interval-log");
    let lines: Vec<serde_json::Value> = String::from_utf8(log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    assert!(lines.len() >= 4, "{} lines", lines.len());
    let total = |k: &str| lines.iter().map(|l| l[k].as_u64().unwrap()).sum::<u64>();
    assert_eq!(total("readings_sent"), s["messages_sent"].as_u64().unwrap());
    assert_eq!(
        total("readings_delivered"),
        s["messages_delivered"].as_u64().unwrap()
    );
    assert_eq!(total("alerts_sent"), s["alerts_sent"].as_u64().unwrap());
    assert_eq!(
        total("alerts_delivered"),
        s["alerts_delivered"].as_u64().unwrap()
    );
    // Time runs forward, and the acked intervals carry their latency.
    let t: Vec<f64> = lines.iter().map(|l| l["t_s"].as_f64().unwrap()).collect();
    assert!(t.windows(2).all(|w| w[0] < w[1]), "{t:?}");
    assert!(lines
        .iter()
        .any(|l| l["ack_latency_ms"]["p99"].as_f64().unwrap() > 0.0));
    // An unpaced run has no target.
    assert!(lines.iter().all(|l| l["target_per_sec"].is_null()));
}

#[test]
fn an_interval_log_that_cannot_be_created_is_bad_input() {
    let out = run(&[
        "--sink",
        "null",
        "--messages",
        "10",
        "--interval-log",
        "/nonexistent-dir/intervals.jsonl",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("run.interval_log: cannot create"),
        "{stderr}"
    );
}

#[test]
fn the_hdr_log_reads_back_with_hdrhistogram_and_counts_every_ack() {
    // Each interval has two histograms, tagged `latency` and `ack`; the latency ones
    // hold every acknowledged reading once.
    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
    use hdrhistogram::serialization::Deserializer;

    let (s, text) = logged_run("--hdr-log");
    let mut deserializer = Deserializer::new();
    let (mut intervals, mut acks, mut max_us) = (0, 0u64, 0u64);
    for entry in IntervalLogIterator::new(&text) {
        let LogEntry::Interval(h) = entry.expect("a valid interval log entry") else {
            continue;
        };
        if h.tag().map(|t| t.as_str()) == Some("latency") {
            let bytes = base64::Engine::decode(
                &base64::engine::general_purpose::STANDARD,
                h.encoded_histogram(),
            )
            .expect("base64");
            let hist: hdrhistogram::Histogram<u64> = deserializer
                .deserialize(&mut &bytes[..])
                .expect("a V2 histogram");
            intervals += 1;
            acks += hist.len();
            max_us = max_us.max(hist.max());
        }
    }
    assert!(intervals >= 4, "{intervals} latency intervals");
    // Every acknowledged reading is in exactly one interval.
    assert_eq!(acks, s["messages_delivered"].as_u64().unwrap());
    let summary_max_ms = s["latency_ms"]["max"].as_f64().unwrap();
    assert!((max_us as f64 / 1000.0 - summary_max_ms).abs() < 0.01 * summary_max_ms + 0.01);
}
