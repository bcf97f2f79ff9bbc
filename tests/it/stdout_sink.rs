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
fn closing_stdout_is_a_normal_stop_and_counts_the_rest_as_failed() {
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
    // `| head` is a normal way to end a stdout run: exit 0, not a failure.
    assert_eq!(
        status.code(),
        Some(0),
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

/// Runs `iotblast ARGS` through `sh -c` with shell redirections `redirect`, and returns
/// the exit status and stderr.
fn with_redirect(args: &str, redirect: &str) -> (Option<i32>, String) {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "'{}' {args} {redirect}",
            env!("CARGO_BIN_EXE_iotblast")
        ))
        .stdout(Stdio::null())
        .output()
        .expect("spawn sh");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn output_errors_end_the_run_cleanly_and_never_panic() {
    // `| head -1`: the reader leaves after one line.
    let (code, stderr) = with_redirect("--sink stdout --messages 20000", "| head -1");
    assert_eq!(code, Some(0), "{stderr}");
    // Closed at start: nothing could be written, so say so and exit 1 rather than count
    // readings as delivered into nowhere.
    let (code, stderr) = with_redirect("--sink stdout --messages 100", ">&-");
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("stdout is closed"), "{stderr}");
    // A full disk under the JSON summary is an error, not a panic.
    let (code, stderr) = with_redirect("--sink null --messages 1000 --json", "> /dev/full");
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("No space left"), "{stderr}");
    // Closed or full stderr: the run still ends normally.
    for redirect in ["2>&-", "2>/dev/full"] {
        let (code, stderr) = with_redirect("--sink null --messages 1000 --json", redirect);
        assert_eq!(code, Some(0), "{redirect}: {stderr}");
    }
    let (code, stderr) = with_redirect("config default", ">&-");
    assert_eq!(code, Some(1), "{stderr}");
    let (code, stderr) = with_redirect("config default", "> /dev/full");
    assert_eq!(code, Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
