//! Statistical checks of the model over simulated time: noise dynamics in seconds,
//! the shared environment's correlations, the alert rate and battery life at the
//! defaults. Each compares a measured statistic with the model's documented truth
//! (docs/data-model.md), never with a recorded output.

use std::time::Duration;

use crate::model::device::{generate, FleetSlice, Reading, BATTERY_DRAIN_S_PER_PERCENT};
use crate::model::device::{NOISE_SHARE, NOISE_TAU_S};
use crate::model::fleet::Fleet;
use crate::model::spec::{FleetSpec, Sensor};
use crate::units::{Count, Dur};

fn spec(tune: impl FnOnce(&mut crate::model::spec::SimulatorSpec)) -> FleetSpec {
    FleetSpec::with_simulator(tune)
}

fn interval(s: u64) -> Dur {
    Dur(Duration::from_secs(s))
}

/// The values of `sensor` in readings `0..seqs` of `device`, simulated on its own.
fn series(fleet: &Fleet, device: u64, seqs: u64, sensor: Sensor) -> Vec<f64> {
    let mut slice = FleetSlice::new(fleet.clone(), device..device + 1);
    (0..seqs)
        .map(|seq| slice.step(device, seq, 0).value(sensor))
        .collect()
}

/// Pearson correlation over the pairs where both values are present (dropouts are NaN).
fn correlation(xs: &[f64], ys: &[f64]) -> f64 {
    let pairs: Vec<(f64, f64)> = xs
        .iter()
        .zip(ys)
        .filter(|(x, y)| !x.is_nan() && !y.is_nan())
        .map(|(&x, &y)| (x, y))
        .collect();
    let n = pairs.len() as f64;
    let (mx, my) = (
        pairs.iter().map(|p| p.0).sum::<f64>() / n,
        pairs.iter().map(|p| p.1).sum::<f64>() / n,
    );
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (x, y) in pairs {
        sxy += (x - mx) * (y - my);
        sxx += (x - mx) * (x - mx);
        syy += (y - my) * (y - my);
    }
    sxy / (sxx * syy).sqrt()
}

#[test]
fn temperature_moves_slowly_at_a_three_second_interval() {
    // Default settings, 3 s samples, a simulated day of one device at a time.
    let f = Fleet::new(FleetSpec::default(), 3);
    for device in [0, 400, 999] {
        let xs = series(&f, device, 28_800, Sensor::Temperature);
        let lag1 = correlation(&xs[..xs.len() - 1], &xs[1..]);
        assert!(
            lag1 >= 0.95,
            "device {device}: lag-1 autocorrelation {lag1}"
        );
        let steps: Vec<f64> = xs.windows(2).map(|w| (w[1] - w[0]).abs()).collect();
        let big = steps.iter().filter(|&&d| d > 1.0).count() as f64 / steps.len() as f64;
        assert!(big < 0.01, "device {device}: {big} of steps exceed 1 °C");
    }
}

/// Two runs that differ only in the sample interval sample one process: the
/// correlation between readings a minute apart is the OU's, e^(-60 s / τ) for the
/// noise share, whether a minute is 20 readings or one.
#[test]
fn the_noise_is_one_process_in_simulated_seconds_at_any_sample_interval() {
    let devices = 4_000;
    let lag_corr = |interval_s: u64| {
        let f = Fleet::new(
            spec(|s| {
                s.anomaly_rate = 0.0;
                s.trend_strength = 0.0;
                s.data_variation = 1.0;
                s.sample_interval = interval(interval_s);
            }),
            9,
        );
        let lag = 60 / interval_s;
        let rs = generate(&f, devices, lag + 1);
        let at = |seq: u64, s: Sensor| -> Vec<f64> {
            let start = (seq * devices) as usize;
            rs[start..start + devices as usize]
                .iter()
                .map(|r| r.value(s))
                .collect()
        };
        Sensor::ALL.map(|s| correlation(&at(0, s), &at(lag, s)))
    };
    let (fine, coarse) = (lag_corr(3), lag_corr(60));
    for (i, sensor) in Sensor::ALL.into_iter().enumerate() {
        // With data_variation 1 a device's variance is its offset and its noise.
        let expected = 1.0 - NOISE_SHARE[i] + NOISE_SHARE[i] * (-60.0 / NOISE_TAU_S[i]).exp();
        for (name, got) in [("3 s", fine[i]), ("60 s", coarse[i])] {
            assert!(
                (got - expected).abs() < 0.04,
                "{sensor:?} at {name}: corr over 60 s {got}, expected {expected}"
            );
        }
    }
}

#[test]
fn devices_in_one_building_share_the_weather_and_the_climate() {
    // Default settings, one-minute samples: a simulated day. Devices 0..125 are in
    // building A, 125..250 in B, and so on (125 per building).
    let buildings: [&[u64]; 3] = [&[0, 60, 124], &[125, 200, 249], &[700, 760]];
    for seed in [1, 2, 3] {
        let f = Fleet::new(spec(|s| s.sample_interval = interval(60)), seed);
        let take = |s: Sensor| -> Vec<Vec<Vec<f64>>> {
            buildings
                .map(|ds| ds.iter().map(|&d| series(&f, d, 1440, s)).collect())
                .to_vec()
        };
        let pressure = take(Sensor::Pressure);
        for (b, devices) in pressure.iter().enumerate() {
            for pair in devices.windows(2) {
                let r = correlation(&pair[0], &pair[1]);
                assert!(
                    r > 0.8,
                    "seed {seed}, building {b}: pressure correlation {r}"
                );
            }
        }
        let temperature = take(Sensor::Temperature);
        let (mut within, mut across) = (Vec::new(), Vec::new());
        for (b, devices) in temperature.iter().enumerate() {
            for (i, x) in devices.iter().enumerate() {
                for y in &devices[i + 1..] {
                    within.push(correlation(x, y));
                }
                for other in &temperature[b + 1..] {
                    across.extend(other.iter().map(|y| correlation(x, y)));
                }
            }
        }
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        let (w, a) = (mean(&within), mean(&across));
        assert!(
            w > a + 0.15,
            "seed {seed}: temperature correlation {w} within buildings, {a} across"
        );
    }
}

/// Alerts (status changes) per 1,000 readings of `devices` × `seqs` default readings.
fn alerts_per_thousand(fleet: &Fleet, devices: u64, seqs: u64) -> f64 {
    let rs = generate(fleet, devices, seqs);
    let alerts: usize = rs.iter().map(|r: &Reading| r.transitions().count()).sum();
    1000.0 * alerts as f64 / rs.len() as f64
}

#[test]
fn a_default_run_raises_at_most_one_alert_per_thousand_readings() {
    // The run: 1,000 devices, 200,000 readings.
    for seed in [1, 2, 3] {
        let f = Fleet::new(FleetSpec::default(), seed);
        let rate = alerts_per_thousand(&f, 1000, 200);
        assert!(rate <= 1.0, "seed {seed}: {rate} alerts per 1000 readings");
    }
    // And over a whole simulated day, through the afternoon's heat and the load peak.
    let f = Fleet::new(spec(|s| s.device_count = Count(50)), 4);
    let rate = alerts_per_thousand(&f, 50, 28_800);
    assert!(rate <= 1.0, "a day: {rate} alerts per 1000 readings");
}

/// With trends on (here at a negligible strength, so only the shared processes
/// remain) the fleet-wide distribution is still N(mean, sd²). Shared processes make a
/// fleet's readings at one moment dependent, so the sample is many seeds' fleets read
/// 30 simulated days apart, and the critical values count one sample per seed and
/// reading: the site's weather is the least replicated part.
#[test]
fn the_shared_environment_keeps_the_fleet_wide_distributions() {
    let (seeds, devices, seqs) = (100u64, 100u64, 20u64);
    let mut all: Vec<Reading> = Vec::new();
    for seed in 0..seeds {
        let f = Fleet::new(
            spec(|s| {
                s.anomaly_rate = 0.0;
                s.trend_strength = 1e-9;
                s.device_count = Count(devices);
                s.sample_interval = interval(30 * 86_400);
            }),
            seed,
        );
        all.extend(generate(&f, devices, seqs));
    }
    let n_eff = (seeds * seqs) as f64;
    let thresholds = FleetSpec::default().thresholds;
    for sensor in Sensor::ALL {
        let sp = thresholds.sensor(sensor);
        // With trends on no current flows while the switch is off (a documented share).
        let xs: Vec<f64> = all
            .iter()
            .filter(|r| sensor != Sensor::Current || r.switch_on)
            .map(|r| r.value(sensor))
            .collect();
        let n = xs.len() as f64;
        let mean = xs.iter().sum::<f64>() / n;
        let sd = (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
        assert!(
            (mean - sp.mean).abs() < 4.0 * sp.sd / n_eff.sqrt(),
            "{sensor:?} mean {mean}"
        );
        assert!((sd / sp.sd - 1.0).abs() < 0.1, "{sensor:?} sd {sd}");
    }
}

#[test]
fn batteries_drain_over_weeks_and_drain_faults_are_rare() {
    // Hourly readings for two weeks.
    let f = Fleet::new(spec(|s| s.sample_interval = interval(3600)), 6);
    let rs = generate(&f, 1000, 14 * 24 + 1);
    let per_day = 86_400.0 / BATTERY_DRAIN_S_PER_PERCENT;
    let mut empty_after_4h = 0;
    for r in &rs {
        let drained = (r.seq as f64 * 3600.0 / BATTERY_DRAIN_S_PER_PERCENT) as u8;
        // Never more than the steady drain, plus whatever a labelled drain fault took.
        let expected = r.identity.battery_start.saturating_sub(drained);
        assert!(r.battery <= expected);
        if r.seq == 4 && r.battery == 0 {
            empty_after_4h += 1;
        }
    }
    assert_eq!(
        empty_after_4h, 0,
        "batteries empty within 4 simulated hours"
    );
    // A full battery lasts weeks, not hours.
    assert!(
        (14.0..60.0).contains(&(100.0 / per_day)),
        "{per_day} % a day"
    );
    // A drain fault hits a device about once in two simulated months of 3 s readings.
    let d = Fleet::new(FleetSpec::default(), 0);
    let w = d.spec.simulator.anomaly_weights.as_array();
    let p_drain = d.spec.simulator.anomaly_rate * w[5] / w.iter().sum::<f64>();
    let per_device_day = p_drain * 86_400.0 / 3.0;
    assert!(
        per_device_day < 1.0 / 30.0,
        "{per_device_day} drain faults a day"
    );
}
