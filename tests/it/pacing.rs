//! Pacing: `--rate` holds the run to the target rate.

use std::time::{Duration, Instant};

use crate::common::{run, summary_from};

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

#[test]
fn a_met_target_is_reported_as_met() {
    let out = run(&[
        "--sink",
        "null",
        "--devices",
        "100",
        "--rate",
        "1000",
        "--messages",
        "1000",
        "--json",
        "-q",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let s = summary_from(&out.stdout);
    assert_eq!(s["target_rate"].as_f64(), Some(1000.0));
    assert_eq!(s["target_missed"], false);
    let achieved = s["achieved_rate"].as_f64().unwrap();
    assert!((950.0..=1100.0).contains(&achieved), "achieved {achieved}");
}

#[test]
fn a_target_the_machine_cannot_reach_is_reported_missed_with_exit_4() {
    // 10^9 readings/s is far beyond any machine: the run must say so, not exit 0.
    let out = run(&[
        "--sink",
        "null",
        "--rate",
        "1000000000",
        "--duration",
        "1s",
        "--json",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("target rate missed: achieved"), "{stderr}");
    let s = summary_from(&out.stdout);
    assert_eq!(s["target_missed"], true);
    assert!(s["achieved_rate"].as_f64().unwrap() < 0.95e9);
    assert_eq!(s["stop_reason"], "duration");
}
