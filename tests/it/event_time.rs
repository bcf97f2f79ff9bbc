//! `--event-time`: readings stamped with their simulated sample time (deterministic,
//! for backfilling history) or with the wall clock (the default).

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::common::{run, stdout_readings};

/// Each device's `(seq, timestamp)` pairs, in order.
type PerDevice = BTreeMap<String, Vec<(u64, i64)>>;

fn timestamps(args: &[&str]) -> (PerDevice, Vec<u8>) {
    let out = run(args);
    assert!(out.status.success(), "{out:?}");
    let mut per_device = PerDevice::new();
    for r in stdout_readings(&out) {
        per_device
            .entry(r["device_id"].as_str().unwrap().to_owned())
            .or_default()
            .push((r["seq"].as_u64().unwrap(), r["timestamp"].as_i64().unwrap()));
    }
    (per_device, out.stdout)
}

#[test]
fn simulated_event_time_writes_a_day_of_history_at_one_minute_samples() {
    let args = [
        "--sink",
        "stdout",
        "--devices",
        "10",
        "--messages",
        "14400",
        "--event-time",
        "simulated",
        "--start",
        "2026-01-01T00:00:00Z",
        "--sample-interval",
        "1m",
        "--seed",
        "5",
    ];
    let (per_device, bytes) = timestamps(&args);
    let start_ms = 1_767_225_600_000i64; // 2026-01-01T00:00:00Z
    assert_eq!(per_device.len(), 10);
    for (device, readings) in &per_device {
        assert_eq!(readings.len(), 1440, "{device}");
        for &(seq, ts) in readings {
            assert_eq!(ts, start_ms + seq as i64 * 60_000, "{device} seq {seq}");
        }
        let (first, last) = (readings[0].1, readings[1439].1);
        // 1,440 one-minute samples cover exactly one day.
        assert_eq!(last + 60_000 - first, 86_400_000, "{device}");
    }
    // Deterministic from the seed, timestamps included.
    let (_, again) = timestamps(&args);
    assert!(bytes == again, "two runs with one seed differ");
}

#[test]
fn wall_event_time_stamps_the_time_a_reading_was_made() {
    let now = || {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
    };
    let before = now();
    let (per_device, _) = timestamps(&[
        "--sink",
        "stdout",
        "--devices",
        "10",
        "--messages",
        "1000",
        "--sample-interval",
        "1m",
    ]);
    let after = now();
    for readings in per_device.values() {
        for &(_, ts) in readings {
            assert!(
                (before..=after).contains(&ts),
                "{ts} not in {before}..={after}"
            );
        }
    }
}

#[test]
fn realtime_paces_each_device_once_per_sample_interval() {
    let out = run(&[
        "--realtime",
        "--devices",
        "100",
        "--sample-interval",
        "200ms",
        "--duration",
        "2s",
        "--json",
        "-q",
    ]);
    let s = crate::common::summary_from(&out.stdout);
    // 100 devices, one reading each per 200 ms: 500 readings/s.
    assert_eq!(s["target_rate"].as_f64(), Some(500.0));
    // The schedule is never exceeded: at most one round per interval, plus the first.
    let sent = s["messages_sent"].as_u64().unwrap();
    assert!(sent <= 100 * (2000 / 200 + 1), "{sent}");
    assert!(matches!(out.status.code(), Some(0 | 4)), "{out:?}");
    // A rate and realtime pacing contradict each other.
    let out = run(&["--realtime", "--rate", "100", "--messages", "10"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--realtime"));
}
