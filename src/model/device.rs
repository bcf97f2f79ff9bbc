//! Advances one device by one reading: sensor noise, switch, trends, anomalies, status.
//!
//! Each device carries a small state (`DeviceState`) that only its worker touches. Step
//! `seq` draws from its own RNG stream, seeded by hashing `(seed, device, seq)`, and the
//! initial state from the stream of `(seed, device, INIT)`. So a device's readings are
//! a pure function of `(seed, device, seq)` and the live settings: the same on any
//! core, in any instance, at any rate. Runs per message: no allocation, no locks.
//!
//! Model (see `docs/data-model.md`): each analog sensor is
//! `mean + sd·(shared + offset + noise + trend)`. The shared part comes from the
//! `Environment` (building climate, floor load, site weather), the offset is the
//! device's own constant, and the noise is an Ornstein-Uhlenbeck process in simulated
//! seconds, stepped exactly whatever the sample interval. The three have unit variance
//! and are mixed by variance shares that sum to 1, so with trends and anomalies off
//! the fleet-wide distribution is exactly N(mean, sd²) (then clamped and rounded).

use std::ops::Range;

use rand_core::Rng;
use rand_distr::{Distribution, StandardNormal, StandardUniform};
use rand_xoshiro::Xoshiro256PlusPlus;

use crate::model::anomaly::{self, Active, Kind};
use crate::model::environment::Environment;
use crate::model::fleet::{
    device_key, round2, round_int, seq_seed, stream_rng, stream_seed, Fleet, Identity, Location,
};
use crate::model::spec::{EventTime, FleetSpec, Sensor, Status};

/// The `seq` whose stream seeds a device's initial state; real readings never reach it.
const INIT: u64 = u64::MAX;

/// A spike goes a uniform share of the way from the value to the range maximum.
const SPIKE_SHARE: (f64, f64) = (0.5, 0.95);

/// Simulated seconds per 1 % of battery drain: a full battery lasts 25 days.
pub const BATTERY_DRAIN_S_PER_PERCENT: f64 = 6.0 * 3600.0;

/// Time constants of each analog sensor's own noise (temperature, humidity, pressure,
/// current): a room's air and a hygrometer settle over half an hour, a barometer's
/// reading and a machine's working load wander over minutes.
pub const NOISE_TAU_S: [f64; 4] = [30.0 * 60.0, 30.0 * 60.0, 5.0 * 60.0, 5.0 * 60.0];
/// Share of the device's own variance that is noise rather than a constant offset
/// (placement, calibration): a room's sensor reads steadily warmer or cooler than its
/// neighbours and wanders a little about that.
pub const NOISE_SHARE: [f64; 4] = [0.2, 0.2, 0.05, 0.2];
/// The device's own share of each sensor's variance is `data_variation` times this
/// while the shared environment is on: barometers are calibrated and share one
/// weather, so theirs is a tenth (an offset of 4.4 hPa sd at the defaults).
pub const OWN_SCALE: [f64; 4] = [1.0, 1.0, 0.1, 1.0];
/// Signal strength: an OU wobble of this many dBm around the device's base.
const SIGNAL_SD_DBM: f64 = 4.0;

/// What one device remembers between readings (64 bytes).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeviceState {
    /// Standardised OU noise of the four analog sensors.
    noise: [f32; 4],
    /// Standardised calibration offsets, drawn once.
    offset: [f32; 4],
    /// Standardised OU signal-strength wobble.
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

/// What a device's readings take from its index alone, worked out once per device:
/// its location and identity (each several divisions by the fleet's shape and label
/// counts, a u128 one among them) and its part of the stream seed (two of the three
/// mixes). 32 bytes, kept next to the device's state.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fixed {
    key: u64,
    building: u32,
    model: u32,
    firmware: u32,
    battery_phase_s: u32,
    /// Floors and rooms are below 1,000 (`SimulatorSpec::validate`).
    floor: u16,
    room: u16,
    signal_base: i16,
    battery_start: u8,
}

impl Fixed {
    /// The constants of `device` of `fleet`.
    pub fn new(fleet: &Fleet, device: u64) -> Self {
        let (l, id) = (fleet.location(device), fleet.identity(device));
        let narrow = |v: usize| u32::try_from(v).expect("fewer than 2^32 labels");
        Self {
            key: device_key(fleet.seed, device),
            building: narrow(l.building),
            model: narrow(id.model),
            firmware: narrow(id.firmware),
            battery_phase_s: id.battery_phase_s,
            floor: u16::try_from(l.floor).expect("floors are below 1,000"),
            room: u16::try_from(l.room).expect("rooms are below 1,000"),
            signal_base: id.signal_base,
            battery_start: id.battery_start,
        }
    }

    #[inline]
    fn location(&self) -> Location {
        Location {
            building: self.building as usize,
            floor: self.floor as u32,
            room: self.room as u32,
        }
    }

    #[inline]
    fn identity(&self) -> Identity {
        Identity {
            model: self.model as usize,
            firmware: self.firmware as usize,
            battery_start: self.battery_start,
            signal_base: self.signal_base,
            battery_phase_s: self.battery_phase_s,
        }
    }
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
        let mut rng = stream_rng(stream_seed(self.seed, device, INIT));
        let noise = [0; 4].map(|_| normal(&mut rng) as f32);
        let offset = [0; 4].map(|_| normal(&mut rng) as f32);
        let switch_on = uniform(&mut rng) < self.spec.simulator.switch_on_probability;
        DeviceState {
            noise,
            offset,
            signal: normal(&mut rng) as f32,
            switch_on,
            switch_out: switch_on,
            battery_drop: 0,
            status: [Status::Normal; 4],
            anomaly: None,
        }
    }

    /// Advances `st` (the state of `device`) to reading `seq` and returns that reading.
    /// `env` must have been advanced to `seq`; the caller does it once per round.
    #[inline]
    pub fn step(
        &self,
        st: &mut DeviceState,
        device: u64,
        seq: u64,
        env: &Environment,
        timestamp_ms: i64,
    ) -> Reading {
        let fixed = Fixed::new(self, device);
        self.step_fixed(st, device, &fixed, seq, env, timestamp_ms)
    }

    /// `step`, with the device's constants (`Fixed`) already worked out.
    #[inline]
    pub fn step_fixed(
        &self,
        st: &mut DeviceState,
        device: u64,
        fixed: &Fixed,
        seq: u64,
        env: &Environment,
        timestamp_ms: i64,
    ) -> Reading {
        let mut rng = stream_rng(seq_seed(fixed.key, seq));
        self.advance_processes(st, &mut rng);
        let location = fixed.location();
        let mut values = self.undisturbed(st, env, location);

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
        let status = self.finish_values(&mut values, active, seq, &st.status);
        let previous = std::mem::replace(&mut st.status, status);

        let identity = fixed.identity();
        // Each device's drain ticks at its own phase, not the whole fleet at once.
        let drained = (self.derived.clock.elapsed_s(seq) + identity.battery_phase_s as f64)
            / BATTERY_DRAIN_S_PER_PERCENT;
        let signal = round_int(identity.signal_base as f64 + SIGNAL_SD_DBM * st.signal as f64);
        Reading {
            device,
            seq,
            timestamp_ms,
            location,
            identity,
            values,
            status,
            previous,
            switch_on: st.switch_out,
            battery: identity
                .battery_start
                .saturating_sub(drained.min(100.0) as u8)
                .saturating_sub(st.battery_drop),
            signal_dbm: signal.clamp(-110, -30) as i16,
            anomaly: active.map(|a| Label {
                kind: a.kind,
                sensor: a.sensor,
                since: a.since,
            }),
        }
    }

    /// The last of readings `seqs` of `device` alone, stepped from its initial state
    /// at `seqs.start` (which must be below `seqs.end`). For tests and tools.
    pub fn last_reading(&self, device: u64, seqs: Range<u64>, timestamp_ms: i64) -> Reading {
        let mut st = self.init_state(device);
        let mut env = Environment::new(self, device..device + 1);
        let mut last = None;
        for seq in seqs {
            env.advance(self, seq);
            last = Some(self.step(&mut st, device, seq, &env, timestamp_ms));
        }
        last.expect("seqs must not be empty")
    }

    /// One step of the noise, signal and switch processes. The draw order is part of
    /// the output's determinism: change it and every reading changes.
    #[inline]
    fn advance_processes(&self, st: &mut DeviceState, rng: &mut Xoshiro256PlusPlus) {
        let d = &self.derived;
        for (z, ou) in st.noise.iter_mut().zip(&d.noise) {
            *z = ou.step(*z as f64, normal(rng)) as f32;
        }
        st.signal = d.signal.step(st.signal as f64, normal(rng)) as f32;
        let u = uniform(rng);
        st.switch_on = if st.switch_on {
            u >= d.switch_down
        } else {
            u < d.switch_up
        };
    }

    /// The analog values before anomalies: shared environment, offset, noise, trends.
    #[inline]
    fn undisturbed(&self, st: &DeviceState, env: &Environment, location: Location) -> [f64; 4] {
        let d = &self.derived;
        let shared = env.shared(location);
        let mut values = [0.0; 4];
        for (i, sensor) in Sensor::ALL.into_iter().enumerate() {
            let sp = self.spec.thresholds.sensor(sensor);
            let [w_shared, w_offset, w_noise] = d.mix[i];
            let z = w_shared * shared.z[i]
                + w_offset * st.offset[i] as f64
                + w_noise * st.noise[i] as f64;
            values[i] = sp.mean + sp.sd * (z + d.trend_strength * shared.shapes[i]);
        }
        values
    }

    /// Applies the active anomaly, clamps and rounds `values`, and returns each
    /// sensor's status, given the statuses of the previous reading (hysteresis).
    #[inline]
    fn finish_values(
        &self,
        values: &mut [f64; 4],
        active: Option<Active>,
        seq: u64,
        previous: &[Status; 4],
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
                    let h = self.derived.hysteresis * sp.sd;
                    (v, sp.status_after(v, previous[i], h).max(floor))
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
        let length = match kind.duration_s() {
            Some((lo, hi)) => {
                let seconds = lo + (hi - lo) * uniform(rng);
                let readings = (seconds / self.derived.clock.step_s).round();
                readings.clamp(1.0, u16::MAX as f64) as u16
            }
            None => 1,
        };
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
/// the shared environment of the round in progress. Owned by one thread.
#[derive(Debug, Clone)]
pub struct FleetSlice {
    fleet: Fleet,
    first: u64,
    states: Vec<DeviceState>,
    /// Each device's constants; location, identity and seeds cannot be reloaded.
    fixed: Vec<Fixed>,
    env: Environment,
}

impl FleetSlice {
    /// The devices `devices` of `fleet`, in their initial state.
    pub fn new(fleet: Fleet, devices: Range<u64>) -> Self {
        let states = devices.clone().map(|d| fleet.init_state(d)).collect();
        let fixed = devices.clone().map(|d| Fixed::new(&fleet, d)).collect();
        let env = Environment::new(&fleet, devices.clone());
        Self {
            fleet,
            first: devices.start,
            states,
            fixed,
            env,
        }
    }

    pub fn fleet(&self) -> &Fleet {
        &self.fleet
    }

    /// Takes the live part of `spec` (a reload), between two readings. The environment
    /// keeps its state and steps with the new settings from the next round.
    pub fn set_live(&mut self, spec: &FleetSpec) {
        self.fleet.set_live(spec);
    }

    /// The next reading of `device`, which must be in this slice, for `seq`. Devices
    /// step in rounds (every device's seq `n`, then `n + 1`), so the shared environment
    /// is stepped once per round.
    #[inline]
    pub fn step(&mut self, device: u64, seq: u64, timestamp_ms: i64) -> Reading {
        self.env.advance(&self.fleet, seq);
        let timestamp_ms = match self.fleet.spec.simulator.event_time {
            EventTime::Wall => timestamp_ms,
            EventTime::Simulated => self.fleet.derived.clock.timestamp_ms(seq),
        };
        let i = (device - self.first) as usize;
        let (st, fixed) = (&mut self.states[i], &self.fixed[i]);
        self.fleet
            .step_fixed(st, device, fixed, seq, &self.env, timestamp_ms)
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
    #[test]
    fn per_device_memory_is_what_the_docs_say() {
        // docs/operations.md and deploy/prometheus/rules.yml: 96 bytes per device.
        assert_eq!(std::mem::size_of::<super::DeviceState>(), 64);
        assert_eq!(std::mem::size_of::<super::Fixed>(), 32);
    }

    use super::*;
    use crate::model::environment::{Environment, HVAC_GAIN, HVAC_LAG_H};
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
        // Device 7 alone, stepped with an environment of its own, gives the same
        // readings: its building's climate does not depend on who else is simulated.
        let mut st = f.init_state(7);
        let mut env = Environment::new(&f, 7..8);
        for seq in 0..50 {
            env.advance(&f, seq);
            let r = f.step(&mut st, 7, seq, &env, 0);
            assert_eq!(r, all[(seq * 100 + 7) as usize]);
        }
        assert_eq!(f.last_reading(7, 0..50, 0), all[49 * 100 + 7]);
        let other = Fleet::new(FleetSpec::default(), 43);
        assert_ne!(generate(&other, 100, 2), all[..200]);
    }

    /// With trends off every device is on its own: 100,000 independent devices, read
    /// after 20 steps of 10 simulated minutes, have exactly the configured
    /// distributions (then clamped and rounded).
    #[test]
    fn without_trends_and_anomalies_each_sensor_has_its_configured_distribution() {
        let mut spec = quiet();
        spec.simulator.sample_interval = crate::units::Dur(Duration::from_secs(600));
        let f = Fleet::new(spec, 1);
        let rs = generate(&f, 100_000, 20);
        let last: Vec<Reading> = rs.into_iter().filter(|r| r.seq == 19).collect();
        assert_eq!(last.len(), 100_000);
        for sensor in Sensor::ALL {
            let sp = f.spec.thresholds.sensor(sensor);
            let (m, sd) = mean_sd(&column(&last, sensor));
            assert!((m - sp.mean).abs() < 0.02 * sp.sd, "{sensor:?} mean {m}");
            assert!((sd / sp.sd - 1.0).abs() < 0.02, "{sensor:?} sd {sd}");
        }
        let on = last.iter().filter(|r| r.switch_on).count() as f64 / last.len() as f64;
        assert!((on - 0.8).abs() < 0.01, "switch mean {on}");
        // 1 % critical value of the one-sample KS statistic: 1.628 / sqrt(n).
        let critical = 1.628 / (last.len() as f64).sqrt();
        for sensor in Sensor::ALL {
            let mut xs = column(&last, sensor);
            let d = ks(&mut xs, f.spec.thresholds.sensor(sensor));
            assert!(d < critical, "{sensor:?}: KS {d} >= {critical}");
        }
    }

    #[test]
    fn ks_rejects_the_seeds_naive_smoothing() {
        // The seeds' `0.7 * last + 0.3 * new` shrinks sd to 0.42: KS must see it.
        let mut xs: Vec<f64> = generate(&Fleet::new(quiet(), 1), 20_000, 1)
            .iter()
            .map(|r| round2(25.0 + (r.value(Sensor::Temperature) - 25.0) * 0.42))
            .collect();
        let critical = 1.628 / (xs.len() as f64).sqrt();
        assert!(ks(&mut xs, &FleetSpec::default().thresholds.temperature) > 10.0 * critical);
    }

    #[test]
    fn the_switch_holds_its_state_for_the_configured_dwell() {
        // The rarer state (off) lasts switch_dwell simulated seconds on average, whatever
        // the sample interval: 30 s is 10 readings of 3 s, 1 reading of 30 s.
        for interval_s in [3, 30] {
            let mut spec = quiet();
            spec.simulator.switch_dwell = crate::units::Dur(Duration::from_secs(30));
            spec.simulator.sample_interval = crate::units::Dur(Duration::from_secs(interval_s));
            let f = Fleet::new(spec, 5);
            let rs = generate(&f, 500, 400);
            let (mut off_runs, mut off_total) = (0u64, 0u64);
            for d in 0..500usize {
                let mut prev = true;
                for seq in 0..400usize {
                    let on = rs[seq * 500 + d].switch_on;
                    if !on {
                        off_total += 1;
                        off_runs += u64::from(prev);
                    }
                    prev = on;
                }
            }
            // Sampled every Δ, a run of exponential length D shows as a geometric number
            // of readings with mean 1 / (p·(1 - e^(-Δ/(D·p)))).
            let mean_off = off_total as f64 / off_runs as f64;
            let rate = 1.0 / (30.0 * 0.8);
            let expected = 1.0 / (0.8 * (1.0 - (-rate * interval_s as f64).exp()));
            assert!(
                (mean_off / expected - 1.0).abs() < 0.1,
                "{interval_s} s: mean off dwell {mean_off} readings, expected {expected}"
            );
            let on = rs.iter().filter(|r| r.switch_on).count() as f64 / rs.len() as f64;
            assert!((on - 0.8).abs() < 0.03, "{interval_s} s: switch mean {on}");
        }
    }

    #[test]
    fn anomaly_onsets_are_binomial_in_the_rate() {
        let spec = FleetSpec::with_simulator(|s| {
            s.anomaly_rate = 0.02;
            // Every kind equally likely, so each shows up (drains are rare by default).
            s.anomaly_weights = crate::model::anomaly::Weights::from_array([1.0; 6]);
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
            s.anomaly_weights =
                crate::model::anomaly::Weights::from_array([1.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
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
        // Devices on their own (no shared weather), so the fleet mean is the day alone.
        let spec = FleetSpec::with_simulator(|s| {
            s.anomaly_rate = 0.0;
            s.data_variation = 1.0;
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
        // The outdoor day swings ±1 sd at strength 1, peaking at 15:00; each building's
        // HVAC passes on a share of it, later (HVAC_GAIN, HVAC_LAG_H).
        let (gain, lag) = (HVAC_GAIN, HVAC_LAG_H);
        let swing = max - min;
        assert!(
            (2.0 * 5.0 * gain.0 * 0.95..=2.0 * 5.0 * gain.1 * 1.05).contains(&swing),
            "peak-to-trough {swing}"
        );
        let peak = hourly.iter().position(|&x| x == max).unwrap() as f64;
        assert!(
            (15.0 + lag.0 - 1.0..=15.0 + lag.1 + 1.0).contains(&peak),
            "peak at hour {peak}"
        );
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
