//! The device model's parameters: what each simulated device measures, who it is and
//! where it stands. `simulate` turns these into readings.
//!
//! Identity (model, firmware, location) is a pure function of the device index, so the
//! same device looks the same in every run, on any core and in any instance.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::anomaly::Weights;
use crate::error::ConfigError;
use crate::trend::SimClock;

/// One analog sensor: its normal distribution, clamp range and status thresholds. Also
/// the settings' `device.thresholds.<sensor>` section, field for field.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SensorSpec {
    /// Mean of the normal distribution.
    pub mean: f64,
    /// Standard deviation of the normal distribution.
    pub sd: f64,
    /// Values below are clamped to this.
    pub min: f64,
    /// Values above are clamped to this.
    pub max: f64,
    /// At or above this value the status is `warning`.
    pub warning: f64,
    /// At or above this value the status is `error`.
    pub error: f64,
}

impl SensorSpec {
    fn validate(&self, name: &str) -> Result<(), ConfigError> {
        let key = |f: &str| format!("device.thresholds.{name}.{f}");
        if !(self.sd >= 0.0 && self.sd.is_finite()) {
            return Err(ConfigError::new(
                key("sd"),
                format!("must be >= 0, got {}", self.sd),
            ));
        }
        if self.min.is_nan() || self.max.is_nan() || self.min >= self.max {
            return Err(ConfigError::new(
                key("min"),
                format!("must be below max ({}), got {}", self.max, self.min),
            ));
        }
        if self.warning > self.error {
            return Err(ConfigError::new(
                key("warning"),
                format!(
                    "must not exceed error ({}), got {}",
                    self.error, self.warning
                ),
            ));
        }
        Ok(())
    }

    /// Status of a value against this sensor's thresholds.
    #[inline]
    pub fn status(&self, v: f64) -> Status {
        if v >= self.error {
            Status::Error
        } else if v >= self.warning {
            Status::Warning
        } else {
            Status::Normal
        }
    }
}

/// Health of one sensor value, in rising order of severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    Normal,
    Warning,
    Error,
    /// No value: the sensor dropped out.
    Offline,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Normal => "normal",
            Status::Warning => "warning",
            Status::Error => "error",
            Status::Offline => "offline",
        }
    }
}

/// The four analog sensors, in message order. The index is the position in
/// `Reading::values`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sensor {
    Temperature,
    Humidity,
    Pressure,
    Current,
}

impl Sensor {
    pub const ALL: [Sensor; 4] = [
        Sensor::Temperature,
        Sensor::Humidity,
        Sensor::Pressure,
        Sensor::Current,
    ];

    /// Its key in the message's `sensors` object.
    pub fn name(self) -> &'static str {
        match self {
            Sensor::Temperature => "temperature",
            Sensor::Humidity => "humidity",
            Sensor::Pressure => "pressure",
            Sensor::Current => "current",
        }
    }

    pub fn unit(self) -> &'static str {
        match self {
            Sensor::Temperature => "\u{b0}C",
            Sensor::Humidity => "%",
            Sensor::Pressure => "hPa",
            Sensor::Current => "A",
        }
    }
}

/// The whole fleet's description: sensors (from the design table), layout and device info.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetSpec {
    pub temperature: SensorSpec,
    pub humidity: SensorSpec,
    pub pressure: SensorSpec,
    pub current: SensorSpec,
    /// Probability that the switch reads `on`.
    pub switch_on_probability: f64,
    /// Building labels, used in turn; the n-th reuse of a label gets the suffix `-n+1`.
    pub buildings: Vec<String>,
    pub floors_per_building: u32,
    pub rooms_per_floor: u32,
    pub devices_per_room: u32,
    /// Device models, spread across the fleet by device index.
    pub models: Vec<String>,
    /// Firmware versions, spread across the fleet by device index.
    pub firmwares: Vec<String>,
    /// Share of fresh noise in each reading, in (0, 1]: the AR(1) coefficient is
    /// `1 - data_variation`. 1 makes readings independent.
    pub data_variation: f64,
    /// Mean readings the switch stays in its rarer state (off, when p > 0.5), >= 1.
    pub switch_dwell: f64,
    /// Scale of all trends, 0 disables them (and the switch/current coupling).
    pub trend_strength: f64,
    /// Simulated time between two readings of one device.
    pub sample_interval: Duration,
    /// Simulated seconds per real second of sample interval (e.g. 1440: a day per minute).
    pub time_scale: f64,
    /// Simulated Unix time of seq 0, in seconds.
    pub start_s: i64,
    /// Probability that a reading starts an anomaly.
    pub anomaly_rate: f64,
    /// Relative weights of the anomaly kinds.
    pub anomaly_weights: Weights,
}

impl Default for FleetSpec {
    /// The sensor table of the original design (seeds/002): temperature N(25,5) in
    /// -10..60, humidity N(60,10) in 0..100, pressure N(1013,20) in 950..1050,
    /// switch Bernoulli(0.8), current N(2.5,0.5) in 0..10. Thresholds sit about two and
    /// four standard deviations above the mean, and at the design's alarm points.
    fn default() -> Self {
        let s = |mean, sd, min, max, warning, error| SensorSpec {
            mean,
            sd,
            min,
            max,
            warning,
            error,
        };
        Self {
            temperature: s(25.0, 5.0, -10.0, 60.0, 35.0, 50.0),
            humidity: s(60.0, 10.0, 0.0, 100.0, 80.0, 90.0),
            pressure: s(1013.0, 20.0, 950.0, 1050.0, 1040.0, 1048.0),
            current: s(2.5, 0.5, 0.0, 10.0, 3.5, 8.0),
            switch_on_probability: 0.8,
            buildings: ["A", "B", "C", "D", "E", "F", "G", "H"]
                .map(String::from)
                .to_vec(),
            floors_per_building: 10,
            rooms_per_floor: 20,
            devices_per_room: 5,
            models: ["IOT-SENSOR-V1", "IOT-SENSOR-V2", "IOT-SENSOR-V3"]
                .map(String::from)
                .to_vec(),
            firmwares: ["1.2.3", "1.3.0", "2.0.1"].map(String::from).to_vec(),
            // The design's smoothing, `0.7 * last + 0.3 * new`.
            data_variation: 0.3,
            switch_dwell: 10.0,
            trend_strength: 1.0,
            // The design's sample interval.
            sample_interval: Duration::from_secs(3),
            time_scale: 1.0,
            // 2026-01-01T00:00:00Z.
            start_s: 1_767_225_600,
            // The design's anomaly rate.
            anomaly_rate: 0.01,
            anomaly_weights: Weights::default(),
        }
    }
}

impl FleetSpec {
    /// The spec of one analog sensor.
    #[inline]
    pub fn sensor(&self, s: Sensor) -> &SensorSpec {
        match s {
            Sensor::Temperature => &self.temperature,
            Sensor::Humidity => &self.humidity,
            Sensor::Pressure => &self.pressure,
            Sensor::Current => &self.current,
        }
    }

    /// Takes the parts that may change while running (sensor thresholds, trends,
    /// anomalies, sample interval) from `next`; labels and layout stay.
    pub fn set_live(&mut self, next: &FleetSpec) {
        let labels = (
            std::mem::take(&mut self.buildings),
            std::mem::take(&mut self.models),
            std::mem::take(&mut self.firmwares),
        );
        let layout = (
            self.floors_per_building,
            self.rooms_per_floor,
            self.devices_per_room,
        );
        *self = next.clone();
        (self.buildings, self.models, self.firmwares) = labels;
        (
            self.floors_per_building,
            self.rooms_per_floor,
            self.devices_per_room,
        ) = layout;
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let sim = |f: &str| format!("device.simulator.{f}");
        let in_range = |key: &str, v: f64, lo: f64, hi: f64, lo_open: bool| {
            let ok = if lo_open { v > lo } else { v >= lo } && v <= hi;
            if ok {
                Ok(())
            } else {
                let bracket = if lo_open { "(" } else { "[" };
                Err(ConfigError::new(
                    sim(key),
                    format!("must be in {bracket}{lo}, {hi}], got {v}"),
                ))
            }
        };
        in_range("data_variation", self.data_variation, 0.0, 1.0, true)?;
        in_range("switch_dwell", self.switch_dwell, 1.0, 1e9, false)?;
        in_range("trend_strength", self.trend_strength, 0.0, 10.0, false)?;
        in_range("anomaly_rate", self.anomaly_rate, 0.0, 1.0, false)?;
        in_range("time_scale", self.time_scale, 0.0, 1e9, true)?;
        if self.sample_interval.is_zero() {
            return Err(ConfigError::new(
                sim("sample_interval"),
                "must be above 0, got 0s",
            ));
        }
        self.anomaly_weights.validate(&sim("anomaly_weights"))?;
        self.temperature.validate("temperature")?;
        self.humidity.validate("humidity")?;
        self.pressure.validate("pressure")?;
        self.current.validate("current")?;
        if !(0.0..=1.0).contains(&self.switch_on_probability) {
            return Err(ConfigError::new(
                "device.simulator.switch_on_probability",
                format!(
                    "must be between 0 and 1, got {}",
                    self.switch_on_probability
                ),
            ));
        }
        for (key, list) in [
            ("device.simulator.buildings", &self.buildings),
            ("device.simulator.models", &self.models),
            ("device.simulator.firmwares", &self.firmwares),
        ] {
            if list.is_empty() {
                return Err(ConfigError::new(key, "must list at least one value"));
            }
            if let Some(long) = list.iter().find(|s| s.len() > 64) {
                return Err(ConfigError::new(
                    key,
                    format!("values must be at most 64 bytes, got '{long}'"),
                ));
            }
        }
        for (key, v) in [
            (
                "device.simulator.floors_per_building",
                self.floors_per_building,
            ),
            ("device.simulator.rooms_per_floor", self.rooms_per_floor),
            ("device.simulator.devices_per_room", self.devices_per_room),
        ] {
            if !(1..=999).contains(&v) {
                return Err(ConfigError::new(
                    key,
                    format!("must be between 1 and 999, got {v}"),
                ));
            }
        }
        Ok(())
    }
}

/// Where a device is. `building_cycle` > 0 means the label list was reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    pub building: usize,
    pub building_cycle: u64,
    pub floor: u32,
    /// Room number within the floor, from 1.
    pub room: u32,
}

/// Static identity of a device, derived from its index alone (the same device in every run).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    pub model: usize,
    pub firmware: usize,
    pub battery_start: u8,
    pub signal_base: i16,
}

/// A ready-to-use fleet: the spec, the seed and the constants derived from them.
#[derive(Debug, Clone)]
pub struct Fleet {
    pub spec: FleetSpec,
    pub seed: u64,
    pub device_count: u64,
    /// Digits in a device id, so that every id in a run has the same width.
    pub id_width: usize,
    /// Per-reading constants derived from `spec`; rebuilt by `set_live`.
    pub derived: Derived,
}

/// Constants the per-reading step needs, computed once from the spec.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Derived {
    /// AR(1) coefficient of the sensor noise.
    pub phi: f64,
    /// Innovation scale `sqrt(1 - phi²)`, which keeps the stationary sd at 1.
    pub innovation: f64,
    /// Switch chain: P(off → on) and P(on → off) per reading.
    pub switch_up: f64,
    pub switch_down: f64,
    /// Weather (pressure OU process) decay and innovation per reading.
    pub weather_decay: f64,
    pub weather_innovation: f64,
    /// Cumulative anomaly kind probabilities.
    pub anomaly_cumulative: [f64; 6],
    pub clock: SimClock,
}

/// Mean reversion time of the weather's pressure swings: half a day.
const WEATHER_TAU_S: f64 = 12.0 * 3600.0;

impl Derived {
    pub fn new(s: &FleetSpec) -> Self {
        let phi = 1.0 - s.data_variation;
        // Two-state chain with stationary P(on) = p: up·(1-p) = down·p. The rarer state
        // lasts `switch_dwell` readings on average (1/its leaving probability).
        let p = s.switch_on_probability;
        let (switch_up, switch_down) = if p <= 0.0 {
            (0.0, 1.0)
        } else if p >= 1.0 {
            (1.0, 0.0)
        } else if p >= 0.5 {
            let up = 1.0 / s.switch_dwell;
            (up, up * (1.0 - p) / p)
        } else {
            let down = 1.0 / s.switch_dwell;
            (down * p / (1.0 - p), down)
        };
        let step_s = s.sample_interval.as_secs_f64() * s.time_scale;
        let weather_decay = (-step_s / WEATHER_TAU_S).exp();
        Self {
            phi,
            innovation: (1.0 - phi * phi).sqrt(),
            switch_up,
            switch_down,
            weather_decay,
            weather_innovation: (1.0 - weather_decay * weather_decay).sqrt(),
            anomaly_cumulative: s.anomaly_weights.cumulative(),
            clock: SimClock {
                start_s: s.start_s as f64,
                step_s,
            },
        }
    }
}

impl Fleet {
    pub fn new(spec: FleetSpec, seed: u64, device_count: u64) -> Self {
        let digits = (device_count.saturating_sub(1)).max(1).ilog10() as usize + 1;
        Self {
            derived: Derived::new(&spec),
            spec,
            seed,
            device_count,
            id_width: digits.max(6),
        }
    }

    /// Applies the live part of `next` (see `FleetSpec::set_live`).
    pub fn set_live(&mut self, next: &FleetSpec) {
        self.spec.set_live(next);
        self.derived = Derived::new(&self.spec);
    }

    /// The building, floor and room of a device, from its index.
    #[inline]
    pub fn location(&self, device: u64) -> Location {
        let s = &self.spec;
        let room_slot = device / s.devices_per_room as u64;
        let room = (room_slot % s.rooms_per_floor as u64) as u32 + 1;
        let floor_slot = room_slot / s.rooms_per_floor as u64;
        let floor = (floor_slot % s.floors_per_building as u64) as u32 + 1;
        let building = floor_slot / s.floors_per_building as u64;
        let labels = s.buildings.len() as u64;
        Location {
            building: (building % labels) as usize,
            building_cycle: building / labels,
            floor,
            room,
        }
    }

    /// Model, firmware, starting battery and signal base of a device, from its index.
    #[inline]
    pub fn identity(&self, device: u64) -> Identity {
        let h = splitmix64(device ^ 0x1D5E_A5ED_u64);
        let s = &self.spec;
        Identity {
            model: (h % s.models.len() as u64) as usize,
            firmware: ((h >> 16) % s.firmwares.len() as u64) as usize,
            battery_start: 40 + ((h >> 32) % 61) as u8,
            signal_base: -40 - ((h >> 48) % 50) as i16,
        }
    }
}

/// Rounds to 2 decimals (half away from zero), the precision of every value in a message.
#[inline]
pub fn round2(v: f64) -> f64 {
    round_int(v * 100.0) as f64 / 100.0
}

/// Rounds half away from zero like `f64::round`, for |v| < 2^63, without the libm call
/// that `round` compiles to on baseline x86-64 (measurable in the per-message profile).
#[inline]
pub fn round_int(v: f64) -> i64 {
    (v + 0.5f64.copysign(v)) as i64
}

/// SplitMix64's finaliser: a fast, well-distributed 64-bit mix.
#[inline]
pub fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The seed of the RNG stream for one reading. Chained mixing keeps nearby
/// `(device, seq)` pairs from producing related streams.
#[inline]
pub fn stream_seed(seed: u64, device: u64, seq: u64) -> u64 {
    splitmix64(splitmix64(splitmix64(seed) ^ device) ^ seq)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_follows_thresholds() {
        let t = FleetSpec::default().temperature;
        assert_eq!(t.status(20.0), Status::Normal);
        assert_eq!(t.status(35.0), Status::Warning);
        assert_eq!(t.status(50.0), Status::Error);
    }

    #[test]
    fn location_walks_rooms_then_floors_then_buildings() {
        let f = Fleet::new(FleetSpec::default(), 0, 100_000);
        assert_eq!(
            f.location(0),
            Location {
                building: 0,
                building_cycle: 0,
                floor: 1,
                room: 1
            }
        );
        assert_eq!(f.location(5).room, 2);
        assert_eq!(f.location(100).floor, 2);
        let per_building = 5 * 20 * 10;
        assert_eq!(f.location(per_building).building, 1);
        let l = f.location(per_building * 9);
        assert_eq!((l.building, l.building_cycle), (1, 1));
    }

    #[test]
    fn id_width_grows_with_fleet() {
        assert_eq!(Fleet::new(FleetSpec::default(), 0, 1000).id_width, 6);
        assert_eq!(Fleet::new(FleetSpec::default(), 0, 1_000_000).id_width, 6);
        assert_eq!(Fleet::new(FleetSpec::default(), 0, 1_000_001).id_width, 7);
    }
}
