//! Rates that change on their own: `--rate-profile` follows its shape interval by
//! interval, and `--find-max-rate` finds a rate on the embedded mock, judged against
//! what the mock's round-trip time makes possible.

use serde_json::Value;

use crate::common::{run, summary_from};

fn steps(s: &Value) -> &Vec<Value> {
    s["search"]["steps"].as_array().expect("search steps")
}

#[test]
fn find_max_rate_finds_a_rate_on_the_mock_and_prints_its_table() {
    let out = run(&[
        "--devices",
        "1000",
        "--find-max-rate",
        // Generous: the debug build on a busy 2-core machine, and what is tested is
        // the search, not the machine.
        "--latency-slo",
        "p99=1s",
        "--mock-rtt",
        "5ms",
        "--search-step",
        "1s",
        "--json",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // The table goes where the summary lines go: stdout, as kafka-producer-perf-test's.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("find-max-rate (p99=1s):  step"), "{stdout}");
    let s = summary_from(&out.stdout);
    assert_eq!(s["stop_reason"], "search done");
    let steps = steps(&s);
    let found = s["search"]["found"].as_f64().expect("a rate was found");
    assert!(stdout.contains(&format!("{found:.0} readings/s is the highest rate")));
    let mut best = 0.0f64;
    for step in steps {
        let (target, achieved) = (
            step["target"].as_f64().unwrap(),
            step["achieved"].as_f64().unwrap(),
        );
        // No reading can be acked faster than the mock's round trip.
        if let Some(p50) = step["p50_ms"].as_f64() {
            assert!(p50 >= 5.0, "p50 {p50} ms below the 5 ms RTT: {step}");
        }
        let q = step["latency_q_ms"].as_f64();
        let meets = achieved >= 0.95 * target && q.is_some_and(|q| q <= 1000.0);
        assert_eq!(step["passed"].as_bool(), Some(meets), "{step}");
        if meets {
            best = best.max(target);
        }
    }
    assert_eq!(found, best, "the result is the highest passing step");
    // The search stops once the bracket is tight: a failing step within 5 % above the
    // result, unless every step passed up to the rate cap.
    let lowest_fail = steps
        .iter()
        .filter(|s| s["passed"] == false)
        .map(|s| s["target"].as_f64().unwrap())
        .fold(f64::INFINITY, f64::min);
    assert!(
        lowest_fail > found && lowest_fail <= found * 1.05 + 1.0,
        "{lowest_fail} vs {found}"
    );
}

#[test]
fn no_rate_meets_an_slo_below_the_round_trip_time() {
    // p99 10 ms over a 20 ms round trip is impossible at any rate.
    let out = run(&[
        "--devices",
        "100",
        "--find-max-rate",
        "--latency-slo",
        "p99=10ms",
        "--rate",
        "40",
        "--mock-rtt",
        "20ms",
        "--search-step",
        "1s",
        "--json",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("no rate met p99=10ms"), "{stdout}");
    let s = summary_from(&out.stdout);
    assert!(s["search"]["found"].is_null());
    let steps = steps(&s);
    assert!(steps.iter().all(|s| s["passed"] == false));
    // Halving from 40/s down to 1/s.
    let targets: Vec<f64> = steps
        .iter()
        .map(|s| s["target"].as_f64().unwrap())
        .collect();
    assert_eq!(targets.first(), Some(&40.0));
    assert_eq!(targets.last(), Some(&1.0));
}

#[test]
fn a_step_profile_paces_each_interval_at_its_rate() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("intervals.jsonl");
    let out = run(&[
        "--devices",
        "100",
        "--rate-profile",
        "step:500,2000/2s",
        "--duration",
        "4s",
        "--report-interval",
        "500ms",
        "--interval-log",
        log.to_str().unwrap(),
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut checked = 0;
    for l in &lines {
        let (t, span) = (
            l["t_s"].as_f64().unwrap(),
            l["interval_s"].as_f64().unwrap(),
        );
        let expected = if t <= 2.0 { 500.0 } else { 2000.0 };
        // Whole intervals inside one step, after the first (startup) and away from
        // the switch, where the pacers re-anchor.
        let inside = (t - span > 0.4 && t <= 2.0) || (t - span >= 2.2 && t <= 3.95);
        if !inside {
            continue;
        }
        assert_eq!(l["target_per_sec"].as_f64(), Some(expected), "{l}");
        let got = l["readings_per_sec"].as_f64().unwrap();
        assert!(
            (got / expected - 1.0).abs() < 0.15,
            "{got}/s against {expected}/s: {l}"
        );
        checked += 1;
    }
    assert!(checked >= 4, "{lines:?}");
    let s = summary_from(&out.stdout);
    assert_eq!(
        s["target_missed"], false,
        "not judged against a changing target"
    );
}

#[test]
fn bad_schedules_name_their_setting() {
    // Errors name the flag that set the setting, or the setting when no flag did.
    for (args, key) in [
        (
            &["--rate-profile", "wave:1..2/1s"][..],
            "--rate-profile: unknown shape 'wave'",
        ),
        (
            &["--rate-profile", "ramp:1k..2k/60s", "--rate", "5"][..],
            "--rate-profile: sets the rate itself",
        ),
        (&["--find-max-rate"][..], "run.latency_slo"),
        (
            &["--find-max-rate", "--latency-slo", "p99"][..],
            "--latency-slo: no '='",
        ),
        (
            &[
                "--find-max-rate",
                "--latency-slo",
                "p99=1s",
                "--search-step",
                "2h",
            ][..],
            "--search-step",
        ),
        (
            &["--find-max-rate", "--latency-slo", "p99=1s", "--realtime"][..],
            "--find-max-rate: sets the rate itself",
        ),
    ] {
        let out = run(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(key), "{args:?}: {stderr}");
    }
}
