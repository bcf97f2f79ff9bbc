//! Distributed runs: instances split the fleet exactly, and their run reports
//! (`--report-file`) merge into exact totals (`report merge`) and a chart (`report plot`).

use std::collections::BTreeSet;
use std::time::Duration;

use base64::Engine as _;
use hdrhistogram::serialization::Deserializer;
use hdrhistogram::Histogram;
use serde_json::Value;

use crate::common::{run, spawn, stdout_readings, summary_from, wait_with_limit};

fn device_ids(args: &[&str]) -> Vec<String> {
    let out = run(args);
    assert!(out.status.success(), "{args:?}: {out:?}");
    stdout_readings(&out)
        .iter()
        .map(|r| r["device_id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn three_instances_cover_the_fleet_exactly_without_overlap() {
    let fleet = [
        "--sink",
        "stdout",
        "--devices",
        "3000",
        "--messages",
        "3000",
        "--seed",
        "7",
        "-q",
    ];
    let whole: BTreeSet<String> = device_ids(&fleet).into_iter().collect();
    assert_eq!(whole.len(), 3000, "one reading per device in one run");
    let mut covered = BTreeSet::new();
    for i in 0..3 {
        let index = i.to_string();
        let mut args = fleet.to_vec();
        args.extend(["--instance-count", "3", "--instance-index", &index]);
        let ids = device_ids(&args);
        let mine: BTreeSet<String> = ids.iter().cloned().collect();
        assert_eq!(mine.len(), ids.len(), "instance {i} repeated a device");
        assert!(
            mine.is_disjoint(&covered),
            "instance {i} overlaps an earlier instance"
        );
        covered.extend(mine);
    }
    assert_eq!(covered, whole, "the three instances are the whole fleet");
}

/// The histogram a report carries under `histograms.<key>`.
fn histogram(report: &Value, key: &str) -> Histogram<u64> {
    let text = report["histograms"][key].as_str().expect(key);
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap();
    Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .unwrap()
}

#[test]
fn two_reports_merge_exactly_and_plot() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).display().to_string();
    let fleet = [
        "--devices",
        "1000",
        "--messages",
        "40000",
        "--seed",
        "3",
        // Paced to about a second, so each report has several intervals however fast
        // the machine generates (unpaced, a run ended inside one interval).
        "--rate",
        "40000",
        "--report-interval",
        "200ms",
        "--json",
        "-q",
    ];
    // Side by side, as a distributed run would be.
    let children: Vec<_> = (0..2)
        .map(|i| {
            let (index, file) = (i.to_string(), path(&format!("r{i}.json")));
            let mut args = fleet.to_vec();
            args.extend([
                "--instance-count",
                "2",
                "--instance-index",
                &index,
                "--report-file",
                &file,
            ]);
            spawn(&args)
        })
        .collect();
    let summaries: Vec<Value> = children
        .into_iter()
        .map(|c| {
            let (status, out, err) = wait_with_limit(c, Duration::from_secs(120));
            assert!(status.success(), "{}", String::from_utf8_lossy(&err));
            summary_from(&out)
        })
        .collect();
    let reports: Vec<Value> = (0..2)
        .map(|i| {
            let text = std::fs::read_to_string(path(&format!("r{i}.json"))).unwrap();
            serde_json::from_str(&text).unwrap()
        })
        .collect();
    for (r, s) in reports.iter().zip(&summaries) {
        assert_eq!(&r["summary"], s, "the report carries the run's own summary");
        assert!(r["intervals"].as_array().unwrap().len() >= 2);
    }

    let (p0, p1) = (path("r0.json"), path("r1.json"));
    let out = run(&["report", "merge", &p0, &p1, "--json"]);
    let merged = summary_from(&out.stdout);
    // The merged rate is over the union of the instances' generating windows. On a
    // loaded machine one child can start late enough that the windows barely overlap,
    // and then the fleet truly missed its rate: exit 4, not a passing merge.
    let mut windows: Vec<(f64, f64)> = reports
        .iter()
        .map(|r| {
            let start = r["started_unix_s"].as_f64().unwrap();
            (start, start + r["generation_s"].as_f64().unwrap())
        })
        .collect();
    windows.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (first, second) = (windows[0], windows[1]);
    let union = (first.1 - first.0) + (second.1 - second.0) - (first.1 - second.0).max(0.0);
    let achieved = merged["messages_sent"].as_f64().unwrap() / union;
    let reported = merged["achieved_rate"].as_f64().unwrap();
    assert!(
        (reported - achieved).abs() < 1e-6 * achieved,
        "{reported} vs {achieved}"
    );
    let missed = merged["target_missed"].as_bool().unwrap();
    assert_eq!(missed, achieved < 0.95 * 40000.0, "{merged}");
    assert_eq!(
        out.status.code(),
        Some(if missed { 4 } else { 0 }),
        "{out:?}"
    );
    for key in [
        "messages_sent",
        "messages_delivered",
        "messages_failed",
        "messages_in_doubt",
        "alerts_sent",
        "alerts_delivered",
        "bytes",
    ] {
        let sum: u64 = summaries.iter().map(|s| s[key].as_u64().unwrap()).sum();
        assert_eq!(merged[key].as_u64(), Some(sum), "{key}");
    }
    // The two instances together are one run of the whole fleet, in counts.
    let whole = summary_from(&run(&fleet).stdout);
    for key in ["messages_sent", "messages_delivered", "devices"] {
        assert_eq!(merged[key], whole[key], "{key}");
    }
    // The merged percentiles are those of the two histograms added by HdrHistogram.
    for (key, field) in [
        ("latency_us", "latency_ms"),
        ("ack_latency_us", "ack_latency_ms"),
    ] {
        let mut h = histogram(&reports[0], key);
        h.add(histogram(&reports[1], key)).unwrap();
        assert_eq!(h.len(), merged["messages_delivered"].as_u64().unwrap());
        let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        assert_eq!(merged[field]["p99"].as_f64(), Some(ms(0.99)), "{field}");
        assert_eq!(merged[field]["p50"].as_f64(), Some(ms(0.50)), "{field}");
    }
    // The same report twice would count its readings twice.
    let twice = run(&["report", "merge", &p0, &p0]);
    assert_eq!(twice.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&twice.stderr).contains("may be merged once"));

    let svg = path("run.svg");
    let out = run(&["report", "plot", &p0, &p1, "-o", &svg]);
    assert!(out.status.success(), "{out:?}");
    let text = std::fs::read_to_string(&svg).unwrap();
    let doc = roxmltree::Document::parse(&text).expect("the plot is well-formed XML");
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    let lines = doc
        .descendants()
        .filter(|n| n.tag_name().name() == "polyline")
        .count();
    // Per instance: achieved, p50, p99; merged: achieved and p99.
    assert!(lines >= 2 * 3 + 2, "{lines} lines");
    for label in [
        "instance 0 achieved",
        "instance 1 p99",
        "merged achieved",
        "merged p99",
    ] {
        assert!(text.contains(label), "{label} missing from the legend");
    }
}

#[test]
fn a_report_file_that_cannot_be_written_fails_before_the_run() {
    let out = run(&[
        "--messages",
        "100",
        "--report-file",
        "/nonexistent/dir/r.json",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("run.report_file"), "{err}");
    let out = run(&["report", "merge", "/nonexistent.json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent.json"));
}

#[test]
fn an_instance_is_paced_and_judged_on_its_share_of_the_rate() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("r1.json").display().to_string();
    let out = run(&[
        "--devices",
        "1000",
        "--rate",
        "2000",
        "--duration",
        "2s",
        "--instance-count",
        "4",
        "--instance-index",
        "1",
        "--report-interval",
        "250ms",
        "--report-file",
        &file,
        "--json",
        "-q",
    ]);
    // 500 of 2000/s: judged against 500, not 2000 (which would be exit 4).
    assert!(out.status.success(), "{out:?}");
    let s = summary_from(&out.stdout);
    assert_eq!(s["target_rate"].as_f64(), Some(500.0));
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let intervals = report["intervals"].as_array().unwrap();
    assert!(intervals.len() >= 4);
    assert!(intervals
        .iter()
        .all(|i| i["target_per_sec"].as_f64() == Some(500.0)));
    let svg = dir.path().join("run.svg").display().to_string();
    assert!(run(&["report", "plot", &file, "-o", &svg]).status.success());
    assert!(std::fs::read_to_string(&svg)
        .unwrap()
        .contains("r1.json target"));
}
