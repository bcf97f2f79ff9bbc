//! What devices share: the site's weather, each building's indoor climate and each
//! floor's electrical load, as standardised Ornstein-Uhlenbeck processes in simulated
//! seconds.
//!
//! Each process draws from its own RNG stream, seeded by `(seed, process, seq)` like a
//! device's, so every worker and every instance that steps the same process gets the
//! same values: two devices of one building see one climate even when different cores
//! or machines simulate them. A worker steps only the buildings and floors its devices
//! are in, once per round of readings: a few normal draws per round, not per reading.
//!
//! The time constants and shares are documented in `docs/data-model.md`.

use std::ops::Range;

use rand_distr::{Distribution, StandardNormal};
use rand_xoshiro::Xoshiro256PlusPlus;

use crate::model::fleet::{splitmix64, stream_rng, stream_seed, Derived, Fleet, Location};
use crate::model::trend::TrendPoint;

/// Mean reversion times of the site's weather: barometric pressure (fronts take days
/// to pass), outdoor temperature and outdoor humidity anomalies.
pub const WEATHER_TAU_S: [f64; 3] = [24.0 * 3600.0, 12.0 * 3600.0, 12.0 * 3600.0];
/// Mean reversion time of a building's own indoor climate (its HVAC response).
pub const CLIMATE_TAU_S: f64 = 2.0 * 3600.0;
/// Mean reversion time of a floor's (production line's) load.
pub const LOAD_TAU_S: f64 = 30.0 * 60.0;
/// Share of a building's climate variance that follows the outdoor weather; the rest
/// is the building's own.
pub const WEATHER_SHARE: f64 = 0.3;
/// A building's HVAC passes on a share of the day's outdoor swing, uniform in this
/// range (insulation and air conditioning damp it)...
pub const HVAC_GAIN: (f64, f64) = (0.5, 1.0);
/// ...and delays it by a number of hours uniform in this range (thermal mass).
pub const HVAC_LAG_H: (f64, f64) = (0.0, 2.0);

/// Salt that keeps the environment's streams apart from the devices' streams.
const STREAM_SALT: u64 = 0xE4B1_0C3A_7D52_9F61;
/// The `seq` whose stream seeds a process's initial state.
const INIT: u64 = u64::MAX;

/// An exact OU step over a fixed interval: `x' = decay·x + innovation·ε` keeps a unit
/// stationary variance for any interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ou {
    pub decay: f64,
    pub innovation: f64,
}

impl Ou {
    /// The step over `step_s` simulated seconds of a process with time constant `tau_s`.
    pub fn new(tau_s: f64, step_s: f64) -> Self {
        let decay = (-step_s / tau_s).exp();
        Self {
            decay,
            innovation: (1.0 - decay * decay).sqrt(),
        }
    }

    #[inline]
    pub fn step(&self, x: f64, e: f64) -> f64 {
        self.decay * x + self.innovation * e
    }
}

/// The shared part of one device's reading: standardised process values and trend
/// shapes, each indexed like `Sensor::ALL`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Shared {
    /// Unit-variance shared noise: building climate (temperature, humidity), site
    /// pressure, floor load (current).
    pub z: [f64; 4],
    /// Deterministic trend shapes, before `trend_strength`.
    pub shapes: [f64; 4],
}

/// The shared processes a worker's devices need, at the round it last stepped to.
#[derive(Debug, Clone)]
pub struct Environment {
    seed: u64,
    /// The seq the values are for; `None` before the first round.
    seq: Option<u64>,
    /// Pressure, outdoor temperature and outdoor humidity anomalies.
    weather: [f64; 3],
    buildings: Range<usize>,
    floors_per_building: usize,
    /// Each building's own climate process: temperature, humidity.
    climate: Vec<[f64; 2]>,
    /// Each building's HVAC response to the day: gain and lag in hours.
    hvac: Vec<(f64, f64)>,
    /// Floor indices (`floor_index`).
    floors: Range<usize>,
    load: Vec<f64>,
    trend: TrendPoint,
    /// Each building's indoor day shape at `seq`.
    day: Vec<f64>,
}

/// A floor's index across the site: `building × floors_per_building + floor - 1`.
#[inline]
fn floor_index(l: Location, floors_per_building: usize) -> usize {
    l.building * floors_per_building + l.floor as usize - 1
}

/// The stream of process `id` (0 the weather, then buildings, then floors) at `seq`.
fn process_rng(seed: u64, id: u64, seq: u64) -> Xoshiro256PlusPlus {
    stream_rng(stream_seed(seed ^ STREAM_SALT, id, seq))
}

#[inline]
fn normal(rng: &mut Xoshiro256PlusPlus) -> f64 {
    StandardNormal.sample(rng)
}

impl Environment {
    /// The processes devices `devices` of `fleet` share. Devices are laid out in
    /// building, then floor order, so a contiguous range touches a contiguous range of
    /// buildings and floors.
    pub fn new(fleet: &Fleet, devices: Range<u64>) -> Self {
        let floors_per_building = fleet.spec.simulator.floors_per_building as usize;
        let index = |l| floor_index(l, floors_per_building);
        let (first, last) = if devices.is_empty() {
            (fleet.location(0), fleet.location(0))
        } else {
            (
                fleet.location(devices.start),
                fleet.location(devices.end - 1),
            )
        };
        let buildings = first.building..last.building + 1;
        let floors = index(first)..index(last) + 1;
        let hvac = buildings
            .clone()
            .map(|b| {
                let h = splitmix64(fleet.seed ^ STREAM_SALT ^ b as u64);
                let within = |(lo, hi): (f64, f64), bits: u64| {
                    lo + (hi - lo) * (bits & 0xFFFF) as f64 / 65_535.0
                };
                (within(HVAC_GAIN, h), within(HVAC_LAG_H, h >> 16))
            })
            .collect();
        Self {
            seed: fleet.seed,
            seq: None,
            weather: [0.0; 3],
            climate: vec![[0.0; 2]; buildings.len()],
            day: vec![0.0; buildings.len()],
            hvac,
            buildings,
            floors_per_building,
            load: vec![0.0; floors.len()],
            floors,
            trend: TrendPoint::default(),
        }
    }

    /// Steps every process to reading `seq`: one step per round from the last one,
    /// or one step from the stationary initial state at the first round (as a device
    /// starts: seq 0 in a run).
    pub fn advance(&mut self, fleet: &Fleet, seq: u64) {
        if self.seq == Some(seq) {
            return;
        }
        let from = match self.seq {
            Some(s) if s < seq => s + 1,
            _ => {
                self.draw(INIT, None);
                seq
            }
        };
        let d = &fleet.derived;
        for s in from..=seq {
            self.draw(s, Some(d));
        }
        self.seq = Some(seq);
        self.trend = d.clock.trend(seq);
        for (day, &(gain, lag)) in self.day.iter_mut().zip(&self.hvac) {
            *day = gain * d.clock.day_shape(seq, lag);
        }
    }

    /// One step of every process with the draws of `seq`, or their stationary initial
    /// values when `step` is `None`.
    fn draw(&mut self, seq: u64, step: Option<&Derived>) {
        let next = |ou: Option<Ou>, x: f64, e: f64| ou.map_or(e, |ou| ou.step(x, e));
        let mut rng = process_rng(self.seed, 0, seq);
        for (i, w) in self.weather.iter_mut().enumerate() {
            *w = next(step.map(|d| d.weather[i]), *w, normal(&mut rng));
        }
        for (k, c) in self.climate.iter_mut().enumerate() {
            let mut rng = process_rng(self.seed, 1 + (self.buildings.start + k) as u64, seq);
            for x in c.iter_mut() {
                *x = next(step.map(|d| d.climate), *x, normal(&mut rng));
            }
        }
        for (k, l) in self.load.iter_mut().enumerate() {
            let mut rng = process_rng(self.seed, FLOOR_IDS + (self.floors.start + k) as u64, seq);
            *l = next(step.map(|d| d.load), *l, normal(&mut rng));
        }
    }

    /// What a device at `location` shares, at the round last stepped to.
    #[inline]
    pub fn shared(&self, location: Location) -> Shared {
        let b = location.building - self.buildings.start;
        let g = floor_index(location, self.floors_per_building) - self.floors.start;
        let (w, own) = (WEATHER_SHARE.sqrt(), (1.0 - WEATHER_SHARE).sqrt());
        let [pressure, outdoor_t, outdoor_h] = self.weather;
        let day = self.day[b];
        Shared {
            z: [
                w * outdoor_t + own * self.climate[b][0],
                w * outdoor_h + own * self.climate[b][1],
                pressure,
                self.load[g],
            ],
            shapes: [
                day,
                HUMIDITY_SEASON_AMPLITUDE * self.trend.seasonal - HUMIDITY_DAY_AMPLITUDE * day,
                0.0,
                self.trend.load,
            ],
        }
    }
}

/// Process ids from here on are floors; below it, the weather and the buildings. Any
/// building count the settings allow stays below it.
const FLOOR_IDS: u64 = 1 << 32;

/// Humidity's season and (inverted) day amplitudes, in units of its sd at
/// `trend_strength` 1: relative humidity falls as the day warms.
const HUMIDITY_SEASON_AMPLITUDE: f64 = 1.0;
const HUMIDITY_DAY_AMPLITUDE: f64 = 0.5;
