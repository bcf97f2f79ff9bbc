//! End to end against a real Kafka-protocol broker in its own process: Tansu.
//!
//! `scripts/test.sh` installs Tansu (cached) and points `TANSU_BIN` at it.

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use iotblast::generate::topology::Quota;

use crate::common::{
    assert_alert_schema_valid, assert_schema_valid, consume, java_partition, seqs_per_device,
    status_transitions,
};

/// A Tansu broker on a free loopback port, killed on drop.
pub struct Tansu {
    child: Child,
    pub bootstrap: String,
    options: Options,
    port: u16,
}

/// How to start a broker.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `--storage-engine`; `memory://tansu/` if empty. `sqlite://FILE` paths are
    /// relative to `dir`.
    pub storage: String,
    /// The broker's working directory (for sqlite storage); the test's if `None`.
    pub dir: Option<std::path::PathBuf>,
    /// `--authentication`: clients must authenticate with SASL/SCRAM.
    pub authentication: bool,
    /// The port to advertise instead of the listening one (a TLS proxy in front).
    pub advertised_port: Option<u16>,
}

/// The cached Tansu binary (`scripts/test.sh` installs it).
pub fn tansu_bin() -> String {
    std::env::var("TANSU_BIN").unwrap_or_else(|_| {
        let cached = format!(
            "{}/.cache/iotblast-tools/bin/tansu",
            std::env::var("HOME").unwrap_or_default()
        );
        assert!(
            std::path::Path::new(&cached).exists(),
            "Tansu not found: run scripts/test.sh, which installs it, or set TANSU_BIN"
        );
        cached
    })
}

/// A free loopback port.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Tansu {
    pub fn start() -> Self {
        Self::with(Options::default())
    }

    /// A broker started with `options` on a free port.
    pub fn with(options: Options) -> Self {
        let port = free_port();
        let child = spawn_broker(&options, port);
        Self {
            child,
            bootstrap: format!("127.0.0.1:{}", options.advertised_port.unwrap_or(port)),
            options,
            port,
        }
    }

    /// The port the broker listens on (behind a proxy, not the advertised one).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the broker (SIGKILL) and waits for it to exit.
    pub fn kill(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.signal("CONT");
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the broker again on the same port, storage and options.
    pub fn restart(&mut self) {
        self.kill();
        self.child = spawn_broker(&self.options, self.port);
    }
}

/// Starts Tansu on `port` and waits until it listens.
fn spawn_broker(o: &Options, port: u16) -> Child {
    let bin = tansu_bin();
    let url = format!("tcp://127.0.0.1:{port}");
    let advertised = format!("tcp://127.0.0.1:{}", o.advertised_port.unwrap_or(port));
    let storage = match o.storage.as_str() {
        "" => "memory://tansu/",
        s => s,
    };
    let mut cmd = Command::new(&bin);
    cmd.args(["broker", "--listener-url", &url])
        .args(["--advertised-listener-url", &advertised])
        .args(["--storage-engine", storage])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if o.authentication {
        cmd.arg("--authentication");
    }
    if let Some(dir) = &o.dir {
        cmd.current_dir(dir);
    }
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("could not start {bin}: {e}"));
    let t = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "Tansu did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    child
}

impl Tansu {
    /// Sends `signal` (e.g. "STOP", "CONT") to the broker process.
    pub fn signal(&self, signal: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{signal} failed");
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        self.kill();
    }
}

#[test]
fn creates_the_topic_and_delivers_every_reading_to_a_real_broker() {
    let broker = Tansu::start();
    let n = 10_000u64;
    let out = Command::new(env!("CARGO_BIN_EXE_iotblast"))
        .args([
            "-b",
            &broker.bootstrap,
            "-t",
            "e2e-readings",
            "--alerts-topic",
            "e2e-alerts",
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
    for topic in ["e2e-readings", "e2e-alerts"] {
        assert!(
            stderr.contains(&format!("created topic '{topic}' with 3 partitions")),
            "{stderr}"
        );
    }
    let summary: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().last().unwrap()).unwrap();
    assert_eq!(summary["messages_delivered"].as_u64(), Some(n), "{summary}");
    assert_eq!(summary["messages_failed"].as_u64(), Some(0), "{summary}");

    let records = consume(
        &broker.bootstrap,
        "e2e-readings",
        n as usize,
        Duration::from_secs(60),
    );
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
    let alerts = consume(
        &broker.bootstrap,
        "e2e-alerts",
        transitions.len(),
        Duration::from_secs(60),
    );
    assert_eq!(alerts.len(), transitions.len());
    for a in &alerts {
        assert_alert_schema_valid(&a.value);
        assert_eq!(a.key.as_deref(), a.value["device_id"].as_str());
    }
}

#[test]
fn a_broker_that_stops_answering_ends_the_run_within_its_timeouts() {
    // A frozen broker (SIGSTOP) answers nothing: without a bound, a run with a large
    // --messages would wait minutes behind librdkafka's full queue. It must notice
    // (no delivery outcome for the longer of the flush and connect timeouts), stop, and
    // settle every message as delivered, failed or in doubt within one flush timeout.
    let tansu = Tansu::start();
    let child = crate::common::spawn(&[
        "-b",
        &tansu.bootstrap,
        "--topic",
        "hung-broker",
        "--alerts-topic",
        "",
        "--messages",
        "50000000",
        "--flush-timeout",
        "2s",
        "--connect-timeout",
        "2s",
        "--report-interval",
        "500ms",
        "--json",
    ]);
    std::thread::sleep(Duration::from_secs(3));
    tansu.signal("STOP");
    let t = Instant::now();
    let (status, stdout, stderr) = crate::common::wait_with_limit(child, Duration::from_secs(30));
    let took = t.elapsed();
    let text = String::from_utf8_lossy(&stderr);
    assert_eq!(status.code(), Some(3), "{text}");
    assert!(
        took < Duration::from_secs(12),
        "took {took:?} after the broker froze"
    );
    assert!(text.contains("the brokers are not answering"), "{text}");
    let s = crate::common::summary_from(&stdout);
    assert_eq!(s["stop_reason"], "error");
    let n = |k: &str| s[k].as_u64().unwrap();
    assert!(n("messages_delivered") > 0, "{s}");
    assert_eq!(
        n("messages_sent"),
        n("messages_delivered") + n("messages_failed") + n("messages_in_doubt"),
        "{s}"
    );
}

/// `sent == delivered + failed + in_doubt` for readings.
fn assert_balanced(s: &serde_json::Value) {
    let n = |k: &str| s[k].as_u64().unwrap();
    assert_eq!(
        n("messages_sent"),
        n("messages_delivered") + n("messages_failed") + n("messages_in_doubt"),
        "{s}"
    );
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
fn a_broker_frozen_for_three_seconds_still_gets_exactly_every_reading() {
    let tansu = Tansu::start();
    let child = paced_run(&tansu.bootstrap, "frozen", "40000", "10000", &[]);
    std::thread::sleep(Duration::from_millis(1500));
    tansu.signal("STOP");
    std::thread::sleep(Duration::from_secs(3));
    tansu.signal("CONT");
    let (status, stdout, stderr) = crate::common::wait_with_limit(child, Duration::from_secs(90));
    // The freeze may cost the target rate (exit 4), never a reading.
    assert!(
        matches!(status.code(), Some(0 | 4)),
        "{}",
        String::from_utf8_lossy(&stderr)
    );
    let s = crate::common::summary_from(&stdout);
    assert_balanced(&s);
    assert_eq!(s["messages_delivered"].as_u64(), Some(40_000), "{s}");
    assert_eq!(counted(&tansu.bootstrap, "frozen", 40_000), 40_000);
}

#[test]
fn a_broker_killed_and_restarted_on_disk_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut tansu = Tansu::with(Options {
        storage: "sqlite://tansu.db".into(),
        dir: Some(dir.path().to_owned()),
        ..Options::default()
    });
    let child = paced_run(
        &tansu.bootstrap,
        "restarted",
        "40000",
        "10000",
        &["-X", "enable.idempotence=true"],
    );
    std::thread::sleep(Duration::from_millis(1500));
    tansu.kill();
    std::thread::sleep(Duration::from_millis(1500));
    tansu.restart();
    let (status, stdout, stderr) = crate::common::wait_with_limit(child, Duration::from_secs(120));
    assert!(
        matches!(status.code(), Some(0 | 4)),
        "{}",
        String::from_utf8_lossy(&stderr)
    );
    let s = crate::common::summary_from(&stdout);
    assert_balanced(&s);
    assert_eq!(s["messages_delivered"].as_u64(), Some(40_000), "{s}");
    assert_eq!(counted(&tansu.bootstrap, "restarted", 40_000), 40_000);
}

#[test]
fn sigterm_mid_run_delivers_what_the_summary_says_and_a_second_one_exits_at_once() {
    let tansu = Tansu::start();
    let child = paced_run(&tansu.bootstrap, "stopped", "10000000", "10000", &[]);
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
    assert_eq!(counted(&tansu.bootstrap, "stopped", delivered), delivered);

    // With the broker frozen, the first signal waits on the flush; the second exits
    // at once (130) and says what it abandons.
    let child = paced_run(&tansu.bootstrap, "aborted", "10000000", "10000", &[]);
    std::thread::sleep(Duration::from_secs(2));
    tansu.signal("STOP");
    crate::common::signal(child.id(), "TERM");
    std::thread::sleep(Duration::from_millis(500));
    let t = Instant::now();
    crate::common::signal(child.id(), "TERM");
    let (status, _, stderr) = crate::common::wait_with_limit(child, Duration::from_secs(10));
    tansu.signal("CONT");
    let text = String::from_utf8_lossy(&stderr);
    assert_eq!(status.code(), Some(130), "{text}");
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "took {:?}",
        t.elapsed()
    );
    let line = text
        .lines()
        .find(|l| l.contains("second signal, exiting now"))
        .unwrap_or_else(|| panic!("no abort report: {text}"));
    let in_doubt: u64 = line
        .split(" in doubt")
        .next()
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    assert!(in_doubt > 0, "messages were outstanding: {line}");
}

#[test]
fn bad_input_against_a_live_broker_gets_a_specific_message_and_a_non_zero_exit() {
    let tansu = Tansu::start();
    let b = tansu.bootstrap.as_str();
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

    let (code, err, _) = run(&["-b", b, "-t", "no-such-topic", "--no-create-topic"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("topic 'no-such-topic' does not exist") && err.contains("--no-create-topic"),
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
            "big",
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
    let (code, err, _) = run(&["-b", b, "-t", "sized", "--partitions", "3"]);
    assert_eq!(code, Some(0), "{err}");
    let (code, err, _) = run(&["-b", b, "-t", "sized", "--partitions", "6"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("topic 'sized' already exists with 3 partitions, not kafka.partitions = 6"),
        "{err}"
    );
}
