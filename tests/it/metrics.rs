//! The metrics and health endpoints: Prometheus `/metrics` with the running counts
//! (accepted by promtool), `/healthz` and `/readyz`.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::{http_get, metric, spawn, summary_from};

#[test]
fn metrics_and_health_endpoints_serve_the_running_counts() {
    let mut child = spawn(&[
        "--devices",
        "1000",
        "--rate",
        "5000",
        "--duration",
        "4s",
        "--metrics-address",
        "127.0.0.1:0",
        "--http-address",
        "127.0.0.1:0",
        "--json",
    ]);
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let (mut metrics_at, mut health_at) = (None, None);
    let mut line = String::new();
    while metrics_at.is_none() || health_at.is_none() {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "iotblast exited early"
        );
        let addr = line.rsplit("http://").next().unwrap().trim().to_owned();
        if line.contains("serving /metrics on") {
            metrics_at = Some(addr);
        } else if line.contains("serving /healthz and /readyz on") {
            health_at = Some(addr);
        }
    }
    let (metrics_at, health_at) = (metrics_at.unwrap(), health_at.unwrap());
    std::thread::sleep(Duration::from_millis(1500));
    let (status, first) = http_get(&metrics_at, "/metrics");
    assert_eq!(status, 200);
    let sent = metric(&first, "iotblast_readings_sent_total");
    assert!(sent > 1000.0, "{sent}");
    assert_eq!(metric(&first, "iotblast_devices"), 1000.0);
    assert_eq!(metric(&first, "iotblast_target_rate"), 5000.0);
    assert!(first.contains("iotblast_ack_latency_seconds_bucket{le=\"+Inf\"}"));
    // The real Prometheus tooling accepts the exposition.
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package; scripts/test.sh installs it)");
    {
        use std::io::Write;
        promtool
            .stdin
            .take()
            .unwrap()
            .write_all(first.as_bytes())
            .unwrap();
    }
    let checked = promtool.wait_with_output().unwrap();
    assert!(
        checked.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
    // docs/metrics.md documents every metric served.
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/metrics.md")).unwrap();
    for name in first
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
    {
        assert!(
            doc.contains(&format!("`{name}`")),
            "{name} is not in docs/metrics.md"
        );
    }
    assert_eq!(http_get(&health_at, "/healthz"), (200, "ok\n".into()));
    assert_eq!(http_get(&health_at, "/readyz").0, 200);
    assert_eq!(
        http_get(&health_at, "/metrics").0,
        404,
        "metrics live on their own address"
    );
    std::thread::sleep(Duration::from_millis(500));
    let later = metric(
        &http_get(&metrics_at, "/metrics").1,
        "iotblast_readings_sent_total",
    );
    assert!(later > sent, "counters advance: {sent} then {later}");

    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{rest}");
    let s = summary_from(&out.stdout);
    assert!(s["messages_sent"].as_f64().unwrap() >= later);
}

#[test]
fn counters_advance_between_full_batches_at_low_rates() {
    // At 300 readings/s a 1024-reading batch takes over 3 s to fill; the counters
    // must still move with every lingering partial batch, alerts included.
    let mut child = spawn(&[
        "--devices",
        "300",
        "--rate",
        "300",
        "--duration",
        "3s",
        // Alerts are rare at the defaults; the design's rate raises some every second.
        "--anomaly-rate",
        "0.05",
        "--metrics-address",
        "127.0.0.1:0",
    ]);
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let address = loop {
        line.clear();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "exited early");
        if line.contains("serving /metrics on") {
            break line.rsplit("http://").next().unwrap().trim().to_owned();
        }
    };
    std::thread::sleep(Duration::from_millis(1500));
    let (_, text) = http_get(&address, "/metrics");
    assert!(
        metric(&text, "iotblast_readings_sent_total") > 100.0,
        "{text}"
    );
    assert!(metric(&text, "iotblast_alerts_sent_total") > 0.0, "{text}");
    let mut rest = Vec::new();
    stderr.read_to_end(&mut rest).unwrap();
    assert!(child.wait().unwrap().success());
}
