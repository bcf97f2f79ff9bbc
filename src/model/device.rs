//! Advances one device by one reading: sensor noise, switch, trends, anomalies, status.
//!
//! Each device carries a small state (`DeviceState`) that only its worker touches. Step
//! `seq` draws from its own RNG stream, seeded by hashing `(seed, device, seq)`, and the
//! initial state from the stream of `(seed, device, INIT)`. So a device's readings are
//! a pure function of `(seed, device, seq)` and the live settings: the same on any
//! core, in any instance, at any rate. Runs per message: no allocation, no locks.
//!
//! Model (see `docs/data-model.md`): each analog sensor is `mean + sd·z + trend`, with `z`
//! a variance-corrected AR(1) process, so with trends and anomalies off its stationary
//! distribution is exactly N(mean, sd²) (then clamped and rounded).

use std::ops::Range;

use rand_core::{Rng, SeedableRng};
use rand_distr::{Distribution, StandardNormal, StandardUniform};
use rand_xoshiro::Xoshiro256PlusPlus;

use crate::model::anomaly::{self, Active, Kind};
use crate::model::fleet::{round2, round_int, stream_seed, Fleet, Identity, Location};
use crate::model::spec::{EventTime, FleetSpec, Sensor, Status};
use crate::model::trend::TrendPoint;

/// The `seq` whose stream seeds a device's initial state; real readings never reach it.
const INIT: u64 = u64::MAX;

/// A spike goes a uniform share of the way from the value to the range maximum.
const SPIKE_SHARE: (f64, f64) = (0.5, 0.95);

/// Readings between two 1 % steps of battery drain.
pub const BATTERY_DRAIN_READINGS: u64 = 2_000;

/// Trend amplitudes in units of each sensor's sd, at `trend_strength` 1.
const TEMPERATURE_DAY_AMPLITUDE: f64 = 1.0;
const HUMIDITY_SEASON_AMPLITUDE: f64 = 1.0;
/// Relative humidity falls as the day warms: this share of the day swing, inverted.
const HUMIDITY_DAY_AMPLITUDE: f64 = 0.5;
/// Stationary sd of the weather's pressure swings.
const PRESSURE_WEATHER_SD: f64 = 0.5;
const CURRENT_LOAD_AMPLITUDE: f64 = 1.0;
/// Signal strength: AR(1) wobble of this many dBm around the device's base.
const SIGNAL_SD_DBM: f64 = 4.0;
const SIGNAL_PHI: f64 = 0.9;

/// What one device remembers between readings (40 bytes).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeviceState {
    /// Standardised AR(1) noise of the four analog sensors.
    z: [f32; 4],
    /// Standardised OU weather process (pressure trend).
    weather: f32,
    /// Standardised AR(1) signal-strength wobble.
    signal: f32,
    /// The switch chain's state, and the last switch value reported (chatter toggles it).
    switch_on: bool,
    switch_out: bool,
    /// Battery lost to drain anomalies, in percent.
    battery_drop: u8,
    /// Status each sensor reported last; `Normal` before the first reading.
    status: [Status; 4],
    anomaly: Option<Active>,
}

/// An anomaly as shown on the readings it affects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Label {
    pub kind: Kind,
    /// Index into `Sensor::ALL` for analog kinds.
    pub sensor: u8,
    /// Seq of the anomaly's first reading.
    pub since: u64,
}

impl Label {
    /// What it affects: a sensor name, `switch_status` or `battery`.
    pub fn target(&self) -> &'static str {
        match self.kind {
            Kind::Chatter => "switch_status",
            Kind::BatteryDrain => "battery",
            _ => Sensor::ALL[self.sensor as usize].name(),
        }
    }
}

/// One reading of one device: everything a message says. Values are rounded to 2
/// decimals and clamped; a `NaN` value is a dropout (`null` in the message).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    pub device: u64,
    pub seq: u64,
    pub timestamp_ms: i64,
    pub location: Location,
    pub identity: Identity,
    /// Temperature, humidity, pressure, current (see `Sensor::ALL`).
    pub values: [f64; 4],
    pub status: [Status; 4],
    /// Each sensor's status in the device's previous reading; an alert is due where it differs.
    pub previous: [Status; 4],
    pub switch_on: bool,
    pub battery: u8,
    pub signal_dbm: i16,
    pub anomaly: Option<Label>,
}

impl Reading {
    #[inline]
    pub fn value(&self, s: Sensor) -> f64 {
        self.values[s as usize]
    }

    /// Sensors whose status changed with this reading.
    #[inline]
    pub fn transitions(&self) -> impl Iterator<Item = Sensor> + '_ {
        Sensor::ALL
            .into_iter()
            .filter(|&s| self.status[s as usize] != self.previous[s as usize])
    }
}

#[inline]
fn normal(rng: &mut Xoshiro256PlusPlus) -> f64 {
    StandardNormal.sample(rng)
}

#[inline]
fn uniform(rng: &mut Xoshiro256PlusPlus) -> f64 {
    StandardUniform.sample(rng)
}

impl Fleet {
    /// The state of `device` before its first reading, drawn from the stationary
    /// distributions so there is no warm-up.
    pub fn init_state(&self, device: u64) -> DeviceState {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(stream_seed(self.seed, device, INIT));
        let z = [0; 4].map(|_| normal(&mut rng) as f32);
        let switch_on = uniform(&mut rng) < self.spec.simulator.switch_on_probability;
        DeviceState {
            z,
            weather: normal(&mut rng) as f32,
            signal: normal(&mut rng) as f32,
            switch_on,
            switch_out: switch_on,
            battery_drop: 0,
            status: [Status::Normal; 4],
            anomaly: None,
        }
    }

    /// Advances `st` (the state of `device`) to reading `seq` and returns that reading.
    /// `trend` is `self.derived.clock.trend(seq)`, which the caller computes once per seq.
    #[inline]
    pub fn step(
        &self,
        st: &mut DeviceState,
        device: u64,
        seq: u64,
        trend: &TrendPoint,
        timestamp_ms: i64,
    ) -> Reading {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(stream_seed(self.seed, device, seq));
        self.advance_processes(st, &mut rng);
        let mut values = self.undisturbed(st, trend);

        // A new anomaly, possibly replacing one still running.
        if uniform(&mut rng) < self.spec.simulator.anomaly_rate {
            st.anomaly = Some(self.onset(&mut rng, st, seq, &values));
        }
        let active = st.anomaly.filter(|a| a.covers(seq));
        st.anomaly = active;
        st.switch_out = match active {
            Some(a) if a.kind == Kind::Chatter => !st.switch_out,
            _ => st.switch_on,
        };
        // With the load model on, no current flows while the switch is off.
        if self.derived.trend_strength > 0.0 && !st.switch_out {
            values[Sensor::Current as usize] = 0.0;
        }
        let status = self.finish_values(&mut values, active, seq);
        let previous = std::mem::replace(&mut st.status, status);

        let identity = self.identity(device);
        let drained = (seq / BATTERY_DRAIN_READINGS).min(100) as u8;
        let signal = round_int(identity.signal_base as f64 + SIGNAL_SD_DBM * st.signal as f64);
        Reading {
            device,
            seq,
            timestamp_ms,
            location: self.location(device),
            identity,
            values,
            status,
            previous,
            switch_on: st.switch_out,
            battery: identity
                .battery_start
                .saturating_sub(drained)
                .saturating_sub(st.battery_drop),
            signal_dbm: signal.clamp(-110, -30) as i16,
            anomaly: active.map(|a| Label {
                kind: a.kind,
                sensor: a.sensor,
                since: a.since,
            }),
        }
    }

    /// One step of the noise, weather, signal and switch processes. The draw order is
    /// part of the output's determinism: change it and every reading changes.
    #[inline]
    fn advance_processes(&self, st: &mut DeviceState, rng: &mut Xoshiro256PlusPlus) {
        let d = &self.derived;
        for z in &mut st.z {
            *z = (d.phi * *z as f64 + d.innovation * normal(rng)) as f32;
        }
        st.weather =
            (d.weather_decay * st.weather as f64 + d.weather_innovation * normal(rng)) as f32;
        st.signal = (SIGNAL_PHI * st.signal as f64
            + (1.0 - SIGNAL_PHI * SIGNAL_PHI).sqrt() * normal(rng)) as f32;
        let u = uniform(rng);
        st.switch_on = if st.switch_on {
            u >= d.switch_down
        } else {
            u < d.switch_up
        };
    }

    /// The analog values before anomalies: noise plus trends.
    #[inline]
    fn undisturbed(&self, st: &DeviceState, trend: &TrendPoint) -> [f64; 4] {
        let s = self.derived.trend_strength;
        let shapes = [
            TEMPERATURE_DAY_AMPLITUDE * trend.diurnal,
            HUMIDITY_SEASON_AMPLITUDE * trend.seasonal - HUMIDITY_DAY_AMPLITUDE * trend.diurnal,
            PRESSURE_WEATHER_SD * st.weather as f64,
            CURRENT_LOAD_AMPLITUDE * trend.load,
        ];
        let mut values = [0.0; 4];
        for (i, sensor) in Sensor::ALL.into_iter().enumerate() {
            let sp = self.spec.thresholds.sensor(sensor);
            values[i] = sp.mean + sp.sd * (st.z[i] as f64 + s * shapes[i]);
        }
        values
    }

    /// Applies the active anomaly, clamps and rounds `values`, and returns each
    /// sensor's status.
    #[inline]
    fn finish_values(
        &self,
        values: &mut [f64; 4],
        active: Option<Active>,
        seq: u64,
    ) -> [Status; 4] {
        let mut status = [Status::Normal; 4];
        for (i, sensor) in Sensor::ALL.into_iter().enumerate() {
            let sp = self.spec.thresholds.sensor(sensor);
            let hit = active.filter(|a| a.kind.hits_analog() && a.sensor as usize == i);
            let v = match hit {
                Some(a) => a.apply(seq, values[i], sp.sd, sp.max),
                None => Some(values[i]),
            };
            (values[i], status[i]) = match v {
                None => (f64::NAN, Status::Offline),
                Some(v) => {
                    let v = round2(v.clamp(sp.min, sp.max));
                    // A faulty sensor is at least suspect, whatever it reads.
                    let floor = if hit.is_some() {
                        Status::Warning
                    } else {
                        Status::Normal
                    };
                    (v, sp.status(v).max(floor))
                }
            };
        }
        status
    }

    /// Draws a new anomaly starting at `seq`; `values` are the undisturbed readings.
    fn onset(
        &self,
        rng: &mut Xoshiro256PlusPlus,
        st: &mut DeviceState,
        seq: u64,
        values: &[f64; 4],
    ) -> Active {
        let kind = anomaly::pick(&self.derived.anomaly_cumulative, uniform(rng));
        let sensor = (rng.next_u32() % 4) as u8;
        let (lo, hi) = kind.duration();
        let length = lo + (rng.next_u32() % (hi - lo + 1) as u32) as u16;
        let u = uniform(rng);
        let sp = self.spec.thresholds.sensor(Sensor::ALL[sensor as usize]);
        let param = match kind {
            Kind::Spike => SPIKE_SHARE.0 + (SPIKE_SHARE.1 - SPIKE_SHARE.0) * u,
            Kind::Drift => 3.0 + 3.0 * u,
            Kind::Stuck => values[sensor as usize].clamp(sp.min, sp.max),
            Kind::BatteryDrain => {
                st.battery_drop = st.battery_drop.saturating_add(5 + (u * 16.0) as u8);
                0.0
            }
            Kind::Dropout | Kind::Chatter => 0.0,
        };
        Active {
            kind,
            sensor,
            length,
            since: seq,
            param: param as f32,
        }
    }
}

/// A worker's share of the fleet: the model, the state of each of its devices, and
/// the trend point of the round in progress. Owned by one thread.
#[derive(Debug, Clone)]
pub struct FleetSlice {
    fleet: Fleet,
    first: u64,
    states: Vec<DeviceState>,
    /// The trend point and the seq it was computed for.
    trend: Option<(u64, TrendPoint)>,
}

impl FleetSlice {
    /// The devices `devices` of `fleet`, in their initial state.
    pub fn new(fleet: Fleet, devices: Range<u64>) -> Self {
        let states = devices.clone().map(|d| fleet.init_state(d)).collect();
        Self {
            fleet,
            first: devices.start,
            states,
            trend: None,
        }
    }

    pub fn fleet(&self) -> &Fleet {
        &self.fleet
    }

    /// Takes the live part of `spec` (a reload), between two readings.
    pub fn set_live(&mut self, spec: &FleetSpec) {
        self.fleet.set_live(spec);
        self.trend = None;
    }

    /// The next reading of `device`, which must be in this slice, for `seq`. Devices
    /// step in rounds (every device's seq `n`, then `n + 1`), so the shared trend point
    /// is computed once per round.
    #[inline]
    pub fn step(&mut self, device: u64, seq: u64, timestamp_ms: i64) -> Reading {
        let trend = match self.trend {
            Some((s, t)) if s == seq => t,
            _ => {
                let t = self.fleet.derived.clock.trend(seq);
                self.trend = Some((seq, t));
                t
            }
        };
        let timestamp_ms = match self.fleet.spec.simulator.event_time {
            EventTime::Wall => timestamp_ms,
            EventTime::Simulated => self.fleet.derived.clock.timestamp_ms(seq),
        };
        let st = &mut self.states[(device - self.first) as usize];
        self.fleet.step(st, device, seq, &trend, timestamp_ms)
    }
}

/// Every reading of devices `0..devices`, seq by seq, for `seqs` rounds: the order a
/// single worker produces them in. For tests, benches and tools.
pub fn generate(fleet: &Fleet, devices: u64, seqs: u64) -> Vec<Reading> {
    let mut slice = FleetSlice::new(fleet.clone(), 0..devices);
    let mut out = Vec::with_capacity((devices * seqs) as usize);
    for seq in 0..seqs {
        for d in 0..devices {
            out.push(slice.step(d, seq, 0));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::spec::{FleetSpec, SensorSpec};
    use std::time::Duration;

    fn quiet() -> FleetSpec {
        FleetSpec::with_simulator(|s| {
            s.anomaly_rate = 0.0;
            s.trend_strength = 0.0;
        })
    }

    fn column(rs: &[Reading], s: Sensor) -> Vec<f64> {
        rs.iter().map(|r| r.value(s)).collect()
    }

    fn mean_sd(xs: &[f64]) -> (f64, f64) {
        let n = xs.len() as f64;
        let mean = xs.iter().sum::<f64>() / n;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
        (mean, var.sqrt())
    }

    /// Φ, the standard normal CDF (Abramowitz–Stegun 7.1.26 erf, |error| < 1.5e-7).
    fn phi(x: f64) -> f64 {
        let z = x.abs() / std::f64::consts::SQRT_2;
        let t = 1.0 / (1.0 + 0.327_591_1 * z);
        let poly = t
            * (0.254_829_592
                + t * (-0.284_496_736
                    + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
        let erf = 1.0 - poly * (-z * z).exp();
        0.5 * (1.0 + erf.copysign(x))
    }

    /// Kolmogorov–Smirnov statistic of rounded, clamped samples against N(mean, sd²).
    /// A value `v` stands for the unrounded interval up to `v + 0.005`, so the model CDF
    /// is evaluated there; values at the clamp bounds carry the clamped tail mass and
    /// are compared only inside the range.
    fn ks(xs: &mut [f64], spec: &SensorSpec) -> f64 {
        xs.sort_by(f64::total_cmp);
        let n = xs.len() as f64;
        let mut d: f64 = 0.0;
        let mut i = 0;
        while i < xs.len() {
            let v = xs[i];
            let mut j = i;
            while j < xs.len() && xs[j] == v {
                j += 1;
            }
            if v > spec.min && v < spec.max {
                let below = phi((v - 0.005 - spec.mean) / spec.sd);
                let upto = phi((v + 0.005 - spec.mean) / spec.sd);
                d = d.max((i as f64 / n - below).abs());
                d = d.max((j as f64 / n - upto).abs());
            }
            i = j;
        }
        d
    }

    #[test]
    fn state_evolution_is_a_pure_function_of_seed_device_and_seq() {
        let f = Fleet::new(FleetSpec::default(), 42);
        let all = generate(&f, 100, 50);
        // Device 7 alone, stepped on its own, gives the same readings.
        let mut st = f.init_state(7);
        for seq in 0..50 {
            let r = f.step(&mut st, 7, seq, &f.derived.clock.trend(seq), 0);
            assert_eq!(r, all[(seq * 100 + 7) as usize]);
        }
        let other = Fleet::new(FleetSpec::default(), 43);
        assert_ne!(generate(&other, 100, 2), all[..200]);
    }

    /// 2000 devices × 100 readings, like the acceptance run. Thinned for KS:
    /// AR(1) with phi 0.7 makes readings 10 apart correlate by 0.03 only.
    #[test]
    fn without_trends_and_anomalies_each_sensor_has_its_configured_distribution() {
        let f = Fleet::new(quiet(), 1);
        let rs = generate(&f, 2000, 100);
        assert_eq!(rs.len(), 200_000);
        for sensor in [Sensor::Temperature, Sensor::Humidity, Sensor::Current] {
            let sp = f.spec.thresholds.sensor(sensor);
            let (m, sd) = mean_sd(&column(&rs, sensor));
            assert!((m - sp.mean).abs() < 0.05 * sp.sd, "{sensor:?} mean {m}");
            assert!((sd / sp.sd - 1.0).abs() < 0.1, "{sensor:?} sd {sd}");
        }
        // Pressure's range cuts its upper tail at +1.85 sd, which lowers its mean by
        // ~0.25 hPa: still well within 0.05 sd.
        let (m, _) = mean_sd(&column(&rs, Sensor::Pressure));
        assert!((m - 1013.0).abs() < 0.05 * 20.0, "pressure mean {m}");
        let on = rs.iter().filter(|r| r.switch_on).count() as f64 / rs.len() as f64;
        assert!((on - 0.8).abs() < 0.05 * 0.4, "switch mean {on}");

        let thin = generate(&f, 20_000, 100);
        let thin: Vec<&Reading> = thin.iter().filter(|r| r.seq % 10 == 0).collect();
        assert_eq!(thin.len(), 200_000);
        // 1 % critical value of the one-sample KS statistic: 1.628 / sqrt(n).
        let critical = 1.628 / (thin.len() as f64).sqrt();
        for sensor in Sensor::ALL {
            let mut xs: Vec<f64> = thin.iter().map(|r| r.value(sensor)).collect();
            let d = ks(&mut xs, f.spec.thresholds.sensor(sensor));
            assert!(d < critical, "{sensor:?}: KS {d} >= {critical}");
        }
    }

    #[test]
    fn ks_rejects_the_seeds_naive_smoothing() {
        // The seeds' `0.7 * last + 0.3 * new` shrinks sd to 0.42: KS must see it.
        let mut xs: Vec<f64> = generate(&Fleet::new(quiet(), 1), 2000, 10)
            .iter()
            .map(|r| round2(25.0 + (r.value(Sensor::Temperature) - 25.0) * 0.42))
            .collect();
        let critical = 1.628 / (xs.len() as f64).sqrt();
        assert!(ks(&mut xs, &FleetSpec::default().thresholds.temperature) > 10.0 * critical);
    }

    #[test]
    fn the_switch_holds_its_state_for_the_configured_dwell() {
        let f = Fleet::new(quiet(), 5);
        let rs = generate(&f, 500, 400);
        let (mut off_runs, mut off_total) = (0u64, 0u64);
        for d in 0..500usize {
            let mut prev = true;
            for seq in 0..400usize {
                let on = rs[seq * 500 + d].switch_on;
                if !on {
                    off_total += 1;
                    if prev {
                        off_runs += 1;
                    }
                }
                prev = on;
            }
        }
        let mean_off = off_total as f64 / off_runs as f64;
        assert!((mean_off - 10.0).abs() < 1.0, "mean off dwell {mean_off}");
    }

    #[test]
    fn anomaly_onsets_are_binomial_in_the_rate() {
        let spec = FleetSpec::with_simulator(|s| {
            s.anomaly_rate = 0.02;
        });
        let f = Fleet::new(spec, 11);
        let rs = generate(&f, 2000, 100);
        let onsets = rs
            .iter()
            .filter(|r| r.anomaly.is_some_and(|a| a.since == r.seq))
            .count() as f64;
        let n = rs.len() as f64;
        let sd = (n * 0.02 * 0.98).sqrt();
        assert!((onsets - n * 0.02).abs() < 4.0 * sd, "{onsets} onsets");
        // Every kind shows up, with its effect.
        for kind in Kind::ALL {
            assert!(
                rs.iter().any(|r| r.anomaly.is_some_and(|a| a.kind == kind)),
                "{kind:?}"
            );
        }
        for r in &rs {
            match r.anomaly {
                Some(a) if a.kind == Kind::Dropout => {
                    let i = a.sensor as usize;
                    assert!(r.values[i].is_nan());
                    assert_eq!(r.status[i], Status::Offline);
                }
                Some(a) if a.kind.hits_analog() => {
                    assert!(r.status[a.sensor as usize] >= Status::Warning, "{r:?}");
                }
                _ => assert!(r.values.iter().all(|v| !v.is_nan())),
            }
        }
    }

    #[test]
    fn spikes_stay_inside_the_range_without_piling_at_its_edge() {
        let spec = FleetSpec::with_simulator(|s| {
            s.anomaly_rate = 0.05;
            s.anomaly_weights = crate::model::anomaly::Weights {
                spike: 1.0,
                drift: 0.0,
                stuck: 0.0,
                dropout: 0.0,
                chatter: 0.0,
                battery_drain: 0.0,
            };
        });
        let f = Fleet::new(spec, 13);
        // Per sensor: [spiked, spiked at the maximum, undisturbed, undisturbed at it].
        let mut counts = [[0u32; 4]; 4];
        for r in generate(&f, 1000, 200) {
            for (i, sensor) in Sensor::ALL.into_iter().enumerate() {
                let sp = f.spec.thresholds.sensor(sensor);
                let v = r.values[i];
                assert!((sp.min..=sp.max).contains(&v), "{sensor:?} {v}");
                let spiked = r.anomaly.is_some_and(|a| a.sensor as usize == i);
                let c = &mut counts[i][if spiked { 0 } else { 2 }..];
                c[0] += 1;
                c[1] += u32::from(v >= sp.max - 0.01);
            }
        }
        // Multiplying the value put every pressure spike at 1050. A share of the
        // headroom adds nothing at the edge: only values already there stay there (the
        // seeds' pressure range ends 1.85 sd above the mean, so ~5 % of all readings
        // are clamped to it).
        for (i, [spiked, spiked_edge, plain, plain_edge]) in counts.into_iter().enumerate() {
            assert!(spiked > 1_000, "{i}: {spiked} spikes");
            let (spiked_share, plain_share) = (
                spiked_edge as f64 / spiked as f64,
                plain_edge as f64 / plain as f64,
            );
            assert!(
                spiked_share <= 1.5 * plain_share + 0.005,
                "{:?}: {spiked_share} of spikes at the maximum, {plain_share} of other readings",
                Sensor::ALL[i]
            );
        }
    }

    #[test]
    fn stuck_repeats_and_drift_ramps() {
        let spec = FleetSpec::with_simulator(|s| {
            s.anomaly_rate = 0.05;
        });
        let f = Fleet::new(spec, 2);
        let rs = generate(&f, 200, 300);
        let by_device = |d: u64| rs.iter().filter(move |r| r.device == d);
        let mut stuck_seen = false;
        let mut drift_seen = false;
        for d in 0..200 {
            let mut prev: Option<&Reading> = None;
            for r in by_device(d) {
                if let (Some(p), Some(a)) = (prev, r.anomaly) {
                    let same = p.anomaly.is_some_and(|b| b.since == a.since);
                    let i = a.sensor as usize;
                    if same && a.kind == Kind::Stuck {
                        assert_eq!(p.values[i], r.values[i]);
                        stuck_seen = true;
                    }
                    if same && a.kind == Kind::Drift && r.seq - a.since > 15 {
                        drift_seen |= r.values[i] > f.spec.thresholds.sensor(Sensor::ALL[i]).mean;
                    }
                }
                prev = Some(r);
            }
        }
        assert!(stuck_seen && drift_seen);
    }

    #[test]
    fn no_current_flows_while_the_switch_is_off() {
        let f = Fleet::new(FleetSpec::default(), 4);
        let rs = generate(&f, 500, 200);
        let mut off = 0;
        for r in &rs {
            let current_fault = r
                .anomaly
                .is_some_and(|a| a.kind.hits_analog() && a.sensor == Sensor::Current as u8);
            if !r.switch_on && !current_fault {
                assert_eq!(r.value(Sensor::Current), 0.0, "{r:?}");
                off += 1;
            }
        }
        assert!(off > 10_000, "{off}");
    }

    #[test]
    fn time_scale_shows_a_whole_day_of_temperature() {
        // 3 s samples at time scale 1200: one hour per reading, a day in 24 readings.
        let spec = FleetSpec::with_simulator(|s| {
            s.anomaly_rate = 0.0;
            s.time_scale = 1200.0;
            s.sample_interval = crate::units::Dur(Duration::from_secs(3));
        });
        let f = Fleet::new(spec, 8);
        let rs = generate(&f, 2000, 24);
        let hourly: Vec<f64> = (0..24)
            .map(|h| {
                let xs = &rs[h * 2000..(h + 1) * 2000];
                xs.iter().map(|r| r.value(Sensor::Temperature)).sum::<f64>() / 2000.0
            })
            .collect();
        let max = hourly.iter().cloned().fold(f64::MIN, f64::max);
        let min = hourly.iter().cloned().fold(f64::MAX, f64::min);
        let amplitude = TEMPERATURE_DAY_AMPLITUDE * 5.0;
        assert!(
            ((max - min) - 2.0 * amplitude).abs() < 0.15 * 2.0 * amplitude,
            "peak-to-trough {}",
            max - min
        );
        let peak = hourly.iter().position(|&x| x == max).unwrap();
        assert!((14..=16).contains(&peak), "peak at hour {peak}");
    }

    #[test]
    fn previous_status_chains_from_normal() {
        let f = Fleet::new(FleetSpec::default(), 3);
        let rs = generate(&f, 50, 200);
        for d in 0..50u64 {
            let mut last = [Status::Normal; 4];
            for r in rs.iter().filter(|r| r.device == d) {
                assert_eq!(r.previous, last);
                last = r.status;
            }
        }
        assert!(rs.iter().any(|r| r.transitions().count() > 0));
    }
}
