//! The `iotblast` binary as a user runs it: stdout sink, embedded mock, signals, bad input.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use rdkafka::mocking::MockCluster;
use serde_json::Value;

use crate::common::{assert_schema_valid, consume, seqs_per_device, without_timestamps};

fn iotblast() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_iotblast"));
    c.env("RUST_LOG", "info");
    c
}

fn run(args: &[&str]) -> Output {
    iotblast().args(args).output().expect("spawn iotblast")
}

/// Starts iotblast with stdout and stderr piped.
fn spawn(args: &[&str]) -> Child {
    iotblast()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn iotblast")
}

/// Reads a pipe to the end on a thread of its own (empty if the test took it already).
fn collect(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut v = Vec::new();
        if let Some(mut p) = pipe {
            p.read_to_end(&mut v).unwrap();
        }
        v
    })
}

fn stdout_readings(out: &Output) -> Vec<Value> {
    String::from_utf8(out.stdout.clone())
        .expect("utf-8 stdout")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("line is not JSON ({e}): {l}")))
        .collect()
}

/// The JSON summary: the last line of stdout (or of stderr with --sink stdout).
fn summary_from(text: &[u8]) -> Value {
    let text = String::from_utf8_lossy(text);
    let last = text.lines().last().expect("a summary line");
    serde_json::from_str(last).unwrap_or_else(|e| panic!("summary is not JSON ({e}): {last}"))
}

/// Waits for `child` up to `limit`; kills it and panics if it is still running.
fn wait_with_limit(
    mut child: Child,
    limit: Duration,
) -> (std::process::ExitStatus, Vec<u8>, Vec<u8>) {
    let t = Instant::now();
    let o = collect(child.stdout.take());
    let e = collect(child.stderr.take());
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return (status, o.join().unwrap(), e.join().unwrap());
        }
        if t.elapsed() > limit {
            child.kill().unwrap();
            panic!("iotblast still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn stdout_sink_prints_exactly_the_requested_readings() {
    let out = run(&[
        "--sink",
        "stdout",
        "--devices",
        "1000",
        "--messages",
        "20000",
        "--seed",
        "7",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let readings = stdout_readings(&out);
    assert_eq!(readings.len(), 20_000);
    for r in &readings {
        assert_schema_valid(r);
    }
    let counts = seqs_per_device(&readings);
    assert_eq!(counts.len(), 1000);
    assert!(counts.values().all(|&n| n == 20));
}

#[test]
fn the_same_seed_gives_the_same_readings_whatever_the_cores() {
    let args = [
        "--sink",
        "stdout",
        "--devices",
        "500",
        "--messages",
        "50000",
        "--seed",
        "3",
    ];
    let one = run(&[&args[..], &["--cores", "1"]].concat());
    let two = run(&[&args[..], &["--cores", "2", "--batch-size", "77"]].concat());
    assert!(one.status.success() && two.status.success());
    let (a, b) = (
        without_timestamps(stdout_readings(&one)),
        without_timestamps(stdout_readings(&two)),
    );
    assert_eq!(a.len(), 50_000);
    assert_eq!(
        digest(&a),
        digest(&b),
        "readings differ between --cores 1 and --cores 2"
    );
    assert!(a == b);
    let other_seed = run(&[
        "--sink",
        "stdout",
        "--devices",
        "500",
        "--messages",
        "50000",
        "--seed",
        "4",
    ]);
    assert!(without_timestamps(stdout_readings(&other_seed)) != a);
}

/// A hash of the (sorted, timestamp-free) readings, to compare runs at a glance.
fn digest(readings: &[String]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    readings.hash(&mut h);
    h.finish()
}

#[test]
fn instances_split_the_fleet_into_disjoint_slices_that_add_up_to_one_process() {
    let args = [
        "--sink",
        "stdout",
        "--devices",
        "500",
        "--messages",
        "50000",
        "--seed",
        "3",
    ];
    let whole = without_timestamps(stdout_readings(&run(&args)));
    let mut union = Vec::new();
    let mut ranges = Vec::new();
    for i in ["0", "1", "2"] {
        let out = run(&[&args[..], &["--instance-index", i, "--instance-count", "3"]].concat());
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let readings = stdout_readings(&out);
        let devices: Vec<u64> = seqs_per_device(&readings)
            .keys()
            .map(|id| id["device_".len()..].parse().unwrap())
            .collect();
        let (lo, hi) = (devices[0], *devices.last().unwrap());
        assert_eq!(
            devices.len() as u64,
            hi - lo + 1,
            "instance {i}: contiguous devices"
        );
        ranges.push((lo, hi));
        union.extend(without_timestamps(readings));
    }
    assert_eq!(ranges, vec![(0, 166), (167, 333), (334, 499)]);
    union.sort_unstable();
    assert_eq!(digest(&union), digest(&whole));
    assert!(union == whole, "three instances differ from one process");
    let bad = run(&[
        "--sink",
        "stdout",
        "--instance-index",
        "3",
        "--instance-count",
        "3",
    ]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--instance-index"));
}

#[test]
fn pacing_does_not_change_the_readings() {
    let args = [
        "--sink",
        "stdout",
        "--devices",
        "100",
        "--messages",
        "3000",
        "--seed",
        "9",
    ];
    let fast = without_timestamps(stdout_readings(&run(&args)));
    let paced = without_timestamps(stdout_readings(&run(
        &[&args[..], &["--rate", "6000"]].concat()
    )));
    assert_eq!(fast.len(), 3000);
    assert!(fast == paced, "--rate changed the readings");
}

/// The acceptance run: with trends and anomalies off, every sensor has the
/// design table's mean and sd (within 0.05 sd and 10 %).
#[test]
fn quiet_readings_follow_the_design_table() {
    let out = run(&[
        "--sink",
        "stdout",
        "--devices",
        "2000",
        "--messages",
        "200000",
        "--seed",
        "1",
        "--anomaly-rate",
        "0",
        "--trend-strength",
        "0",
    ]);
    assert!(out.status.success());
    let readings = stdout_readings(&out);
    assert_eq!(readings.len(), 200_000);
    let stats = |f: &dyn Fn(&Value) -> f64| {
        let xs: Vec<f64> = readings.iter().map(f).collect();
        let n = xs.len() as f64;
        let mean = xs.iter().sum::<f64>() / n;
        let sd = (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
        (mean, sd)
    };
    for (sensor, mu, sigma, check_sd) in [
        ("temperature", 25.0, 5.0, true),
        ("humidity", 60.0, 10.0, true),
        ("current", 2.5, 0.5, true),
        // The 950..1050 range clamps pressure's upper tail; its mean still holds.
        ("pressure", 1013.0, 20.0, false),
    ] {
        let (m, sd) = stats(&|r| r["sensors"][sensor]["value"].as_f64().unwrap());
        assert!((m - mu).abs() < 0.05 * sigma, "{sensor} mean {m}");
        if check_sd {
            assert!((sd / sigma - 1.0).abs() < 0.1, "{sensor} sd {sd}");
        }
    }
    let (on, _) = stats(&|r| {
        f64::from(u8::from(
            r["sensors"]["switch_status"]["value"].as_bool().unwrap(),
        ))
    });
    assert!((on - 0.8).abs() < 0.05 * 0.4, "switch mean {on}");
    assert!(readings.iter().all(|r| r.get("anomaly").is_none()));
}

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
fn sigterm_stops_flushes_and_accounts_for_every_reading() {
    let mock = MockCluster::new(1).unwrap();
    mock.create_topic("it-sigterm", 8, 1).unwrap();
    let bootstrap = mock.bootstrap_servers();
    let mut child = spawn(&[
        "-b",
        &bootstrap,
        "-t",
        "it-sigterm",
        "--alerts-topic",
        "",
        "--no-create-topic",
        "--devices",
        "2000",
        "--cores",
        "2",
        "--rate",
        "4000",
        "--json",
    ]);
    // Wait until it is producing, then ask it to stop.
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("producing to") {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "iotblast exited early"
        );
    }
    std::thread::sleep(Duration::from_millis(1500));
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    child.stderr = Some(stderr.into_inner());
    let (status, stdout, stderr) = wait_with_limit(child, Duration::from_secs(30));
    assert!(
        status.success(),
        "exit {status}: {}",
        String::from_utf8_lossy(&stderr)
    );

    let s = summary_from(&stdout);
    let sent = s["messages_sent"].as_u64().unwrap();
    let delivered = s["messages_delivered"].as_u64().unwrap();
    assert!(sent > 2_000, "{s}");
    assert_eq!(delivered + s["messages_failed"].as_u64().unwrap(), sent);
    assert_eq!(
        delivered, sent,
        "nothing should fail on a healthy mock: {s}"
    );
    assert_eq!(s["stop_reason"], "signal received");

    // What the summary claims is what the broker holds: no loss, no duplicates.
    let records = consume(
        &bootstrap,
        "it-sigterm",
        delivered as usize,
        Duration::from_secs(60),
    );
    assert_eq!(records.len() as u64, delivered);
    let counts = seqs_per_device(records.iter().map(|r| &r.value));
    assert_eq!(counts.values().sum::<u64>(), delivered);
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
fn bad_input_gets_a_specific_error_and_a_non_zero_exit() {
    // Flag errors exit 2 (clap's convention); a property librdkafka rejects is found
    // when the producer is created and exits 1 with librdkafka's own message.
    for (args, code, want) in [
        (
            &["--devices", "0"][..],
            2,
            "--devices: must be between 1 and 10000000, got 0",
        ),
        (
            &["--cores", "0"][..],
            2,
            "--cores: must be at least 1, got 0",
        ),
        (
            &["--duration", "-5s"][..],
            2,
            "--duration: must not be negative",
        ),
        (
            &["--no-such-flag"][..],
            2,
            "unexpected argument '--no-such-flag'",
        ),
        (
            &["-X", "no.such.property=1"][..],
            1,
            "No such configuration property: \"no.such.property\"",
        ),
    ] {
        let out = run(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(want), "{args:?}: {stderr}");
        assert_eq!(out.status.code(), Some(code), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?} printed to stdout");
    }
}

#[test]
fn closing_stdout_stops_the_run_and_counts_the_rest_as_failed() {
    let mut child = spawn(&[
        "--sink",
        "stdout",
        "--devices",
        "100",
        "--json",
        "--batch-size",
        "64",
    ]);
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    for _ in 0..1000 {
        line.clear();
        out.read_line(&mut line).unwrap();
    }
    drop(out); // like `| head -1000`
    child.stdout = Some(
        Command::new("true")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap()
            .stdout
            .take()
            .unwrap(),
    );
    let (status, _, stderr) = wait_with_limit(child, Duration::from_secs(30));
    assert_eq!(
        status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&stderr)
    );
    let s = summary_from(&stderr);
    let sent = s["messages_sent"].as_u64().unwrap();
    assert!(s["messages_failed"].as_u64().unwrap() > 0);
    assert_eq!(
        s["messages_delivered"].as_u64().unwrap() + s["messages_failed"].as_u64().unwrap(),
        sent
    );
}

#[test]
fn rate_paces_the_run_to_the_target() {
    // 4000 readings at 2000/s must take about 2 s: never much less (the pacer holds back),
    // and not much more on an idle enough machine (it catches up after stalls).
    let t = Instant::now();
    let out = run(&[
        "--sink",
        "null",
        "--devices",
        "100",
        "--cores",
        "2",
        "--rate",
        "2000",
        "--messages",
        "4000",
        "--json",
        "-q",
    ]);
    let wall = t.elapsed();
    assert!(out.status.success());
    let s = summary_from(&out.stdout);
    assert_eq!(s["messages_delivered"].as_u64(), Some(4000));
    let elapsed = s["elapsed_s"].as_f64().unwrap();
    assert!(elapsed >= 1.95, "finished too early: {elapsed} s");
    assert!(wall < Duration::from_secs(10), "took {wall:?}");
}

/// GET `path` from `addr` over plain HTTP/1.0; returns the status code and body.
fn http_get(addr: &str, path: &str) -> (u16, String) {
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
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} missing in\n{text}"))
}

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
fn a_bad_or_busy_metrics_address_is_a_clear_error() {
    let bad = run(&[
        "--sink",
        "null",
        "--messages",
        "10",
        "--metrics-address",
        "localhost",
    ]);
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("--metrics-address: must be IP:port"), "{err}");

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let t = Instant::now();
    let busy = run(&[
        "--sink",
        "null",
        "--duration",
        "30s",
        "--http-address",
        &addr,
    ]);
    assert_eq!(busy.status.code(), Some(1));
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    let err = String::from_utf8_lossy(&busy.stderr);
    assert!(
        err.contains(&format!("http.address: cannot listen on {addr}")),
        "{err}"
    );
}
