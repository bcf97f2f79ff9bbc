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
