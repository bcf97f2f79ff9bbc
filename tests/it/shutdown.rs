//! Shutdown on a signal: SIGTERM stops the run, flushes, and the summary accounts for
//! every reading the broker holds.

use std::io::{BufRead, BufReader};
use std::process::Command;
use std::time::{Duration, Instant};

use rdkafka::mocking::MockCluster;

use crate::common::{consume, seqs_per_device, spawn, summary_from, wait_with_limit};

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
    assert_eq!(s["stop_reason"], "signal");

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
fn a_signal_during_start_up_ends_the_run_at_once() {
    // An unreachable broker keeps start-up waiting for up to --connect-timeout (30 s);
    // SIGTERM must end that wait, not be queued behind it. Nothing was produced yet,
    // so the process exits at once with the shell's 130.
    let child = spawn(&[
        "-b",
        "127.0.0.1:1",
        "--connect-timeout",
        "30s",
        "--messages",
        "10",
    ]);
    std::thread::sleep(Duration::from_millis(1500));
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let t = Instant::now();
    let (status, _, stderr) = wait_with_limit(child, Duration::from_secs(10));
    let stderr = String::from_utf8_lossy(&stderr);
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "took {:?}",
        t.elapsed()
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}
