//! Reading statistics: with trends and anomalies off, each sensor follows the design
//! table's mean and standard deviation.

use serde_json::Value;

use crate::common::{run, stdout_readings};

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
        // The processes are slow (the switch stays off 10 minutes at a time): hourly
        // samples let each device's 100 readings explore them, as 3 s samples do not.
        "--sample-interval",
        "1h",
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
