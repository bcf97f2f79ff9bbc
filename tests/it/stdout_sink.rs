//! The stdout sink: `--sink stdout` prints exactly the requested readings, and a reader
//! that closes stdout early stops the run with the rest counted as failed.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::{
    assert_schema_valid, run, seqs_per_device, spawn, stdout_readings, summary_from,
    wait_with_limit,
};

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
    assert_eq!(s["stop_reason"], "stdout closed");
    let sent = s["messages_sent"].as_u64().unwrap();
    assert!(s["messages_failed"].as_u64().unwrap() > 0);
    assert_eq!(
        s["messages_delivered"].as_u64().unwrap() + s["messages_failed"].as_u64().unwrap(),
        sent
    );
}
