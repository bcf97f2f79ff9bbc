//! Injected faults: which kinds exist, how often each is picked, and what each does to
//! a reading while it lasts.
//!
//! Every reading starts a new anomaly with probability `anomaly_rate` (a fresh one
//! replaces one still running), so the number of onsets is exactly binomial. The kind
//! is drawn by weight; spike, drift, stuck and dropout hit one analog sensor, chatter
//! hits the switch, and a battery-drain step hits the battery.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::ConfigError;

/// The kinds of anomaly, in the order of their weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// One reading jumping 50–95 % of the way to the sensor's range maximum.
    Spike,
    /// An offset that ramps up to 3–6 σ over 1–10 simulated minutes, then is
    /// recalibrated away.
    Drift,
    /// The value at onset repeats for 30 s to 5 minutes.
    Stuck,
    /// The value is `null` and the status `offline` for 3 s to a minute.
    Dropout,
    /// The switch toggles on every reading for 15 to 90 s.
    Chatter,
    /// The battery loses 5–20 % at once; rare by default (weight 0.002).
    BatteryDrain,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::Spike,
        Kind::Drift,
        Kind::Stuck,
        Kind::Dropout,
        Kind::Chatter,
        Kind::BatteryDrain,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Spike => "spike",
            Kind::Drift => "drift",
            Kind::Stuck => "stuck",
            Kind::Dropout => "dropout",
            Kind::Chatter => "chatter",
            Kind::BatteryDrain => "battery_drain",
        }
    }

    /// How long it lasts in simulated seconds, drawn uniformly from this range; `None`
    /// for the kinds that hit one reading. In readings that is the time over the
    /// sample interval, at least one: at the design's 3 s a drift lasts 20 to 200
    /// readings, at 1 minute 1 to 10, so an anomaly is as long at any sample interval.
    pub fn duration_s(self) -> Option<(f64, f64)> {
        match self {
            Kind::Spike | Kind::BatteryDrain => None,
            Kind::Drift => Some((60.0, 600.0)),
            Kind::Stuck => Some((30.0, 300.0)),
            Kind::Dropout => Some((3.0, 60.0)),
            Kind::Chatter => Some((15.0, 90.0)),
        }
    }

    /// Whether it affects one of the four analog sensors.
    pub fn hits_analog(self) -> bool {
        matches!(
            self,
            Kind::Spike | Kind::Drift | Kind::Stuck | Kind::Dropout
        )
    }
}

/// Largest anomaly weight: weights are relative, so any scale fits below it.
pub const MAX_WEIGHT: f64 = 1e6;

/// Relative weights of the anomaly kinds, each 0 to 1e6 (need not sum to 1; 0 turns a
/// kind off).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Weights {
    /// One reading jumping 50 to 95 % of the way to the sensor's range maximum.
    pub spike: f64,
    /// An offset ramping to 3 to 6 sd over 1 to 10 simulated minutes.
    pub drift: f64,
    /// The same value for 30 s to 5 minutes.
    pub stuck: f64,
    /// null values and status offline for 3 s to a minute.
    pub dropout: f64,
    /// The switch toggling on every reading for 15 to 90 s.
    pub chatter: f64,
    /// The battery losing 5 to 20 % at once.
    pub battery_drain: f64,
}

impl Default for Weights {
    /// Spikes are the commonest fault in the design; slow faults (drift, stuck) next.
    /// A battery that loses a fifth of its charge at once is rare: at the default rate
    /// about once per device per two simulated months of 3-second readings.
    fn default() -> Self {
        Self {
            spike: 0.35,
            drift: 0.15,
            stuck: 0.15,
            dropout: 0.15,
            chatter: 0.1,
            battery_drain: 0.002,
        }
    }
}

impl Weights {
    /// The weights in the order of `Kind::ALL`.
    pub fn as_array(&self) -> [f64; 6] {
        [
            self.spike,
            self.drift,
            self.stuck,
            self.dropout,
            self.chatter,
            self.battery_drain,
        ]
    }

    /// The weights from an array in the order of `Kind::ALL` (`as_array`'s inverse).
    #[cfg(test)]
    pub fn from_array([spike, drift, stuck, dropout, chatter, battery_drain]: [f64; 6]) -> Self {
        Self {
            spike,
            drift,
            stuck,
            dropout,
            chatter,
            battery_drain,
        }
    }

    pub fn validate(&self, key: &str) -> Result<(), ConfigError> {
        for (k, w) in Kind::ALL.iter().zip(self.as_array()) {
            if !(0.0..=MAX_WEIGHT).contains(&w) {
                return Err(ConfigError::new(
                    format!("{key}.{}", k.as_str()),
                    format!("must be a finite number from 0 to {MAX_WEIGHT}, got {w}"),
                ));
            }
        }
        if self.as_array().iter().sum::<f64>() <= 0.0 {
            return Err(ConfigError::new(key, "at least one weight must be above 0"));
        }
        Ok(())
    }

    /// Cumulative probabilities, for picking a kind with one uniform draw.
    pub fn cumulative(&self) -> [f64; 6] {
        let weights = self.as_array();
        let total: f64 = weights.iter().sum();
        let mut acc = 0.0;
        weights.map(|w| {
            acc += w / total;
            acc
        })
    }
}

/// Picks the kind for a uniform draw `u` in [0, 1) from cumulative probabilities.
#[inline]
pub fn pick(cumulative: &[f64; 6], u: f64) -> Kind {
    for (k, &c) in Kind::ALL.iter().zip(cumulative) {
        if u < c {
            return *k;
        }
    }
    // Rounding can leave the last cumulative value a hair below 1.
    *Kind::ALL
        .iter()
        .zip(cumulative)
        .rev()
        .find(|(_, &c)| c > 0.0)
        .map(|(k, _)| k)
        .unwrap_or(&Kind::Spike)
}

/// An anomaly in progress on one device. `Copy` and small: it lives in the device state.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Active {
    pub kind: Kind,
    /// Index of the analog sensor hit (see `device::Sensor`); unused for chatter and battery.
    pub sensor: u8,
    /// Readings it lasts in total.
    pub length: u16,
    /// Seq of its first reading.
    pub since: u64,
    /// Spike: the share of the way to the range's maximum. Drift: the final offset in
    /// σ. Stuck: the repeated value.
    pub param: f32,
}

impl Active {
    /// Whether it still applies at `seq`.
    #[inline]
    pub fn covers(&self, seq: u64) -> bool {
        seq.wrapping_sub(self.since) < self.length as u64
    }

    /// The analog value at `seq` given the undisturbed value `v`: `None` is a dropout.
    /// `sd` and `max` are the sensor's.
    ///
    /// A spike jumps `param` (0.5 to 0.95, uniform) of the way from the value to the
    /// sensor's range maximum: always inside the range and never piled up at its edge,
    /// as multiplying the value did (every pressure spike read exactly 1050).
    #[inline]
    pub fn apply(&self, seq: u64, v: f64, sd: f64, max: f64) -> Option<f64> {
        match self.kind {
            Kind::Spike => Some(v + (max - v).max(0.0) * self.param as f64),
            Kind::Drift => {
                let progress = (seq - self.since + 1) as f64 / self.length as f64;
                Some(v + self.param as f64 * sd * progress)
            }
            Kind::Stuck => Some(self.param as f64),
            Kind::Dropout => None,
            Kind::Chatter | Kind::BatteryDrain => Some(v),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_picked_by_weight() {
        let c = Weights::from_array([1.0, 0.0, 0.0, 0.0, 0.0, 3.0]).cumulative();
        assert_eq!(pick(&c, 0.0), Kind::Spike);
        assert_eq!(pick(&c, 0.24), Kind::Spike);
        assert_eq!(pick(&c, 0.26), Kind::BatteryDrain);
        assert_eq!(pick(&c, 0.999_999_999), Kind::BatteryDrain);
        let only_drift = Weights::from_array([0.0, 2.0, 0.0, 0.0, 0.0, 0.0]).cumulative();
        assert_eq!(pick(&only_drift, 0.7), Kind::Drift);
    }

    #[test]
    fn weights_must_be_non_negative_and_not_all_zero() {
        let err = Weights::from_array([0.0; 6])
            .validate("w")
            .unwrap_err()
            .to_string();
        assert!(err.contains("at least one weight"), "{err}");
        let err = Weights::from_array([1.0, -1.0, 0.0, 0.0, 0.0, 0.0])
            .validate("w")
            .unwrap_err()
            .to_string();
        assert!(err.contains("w.drift"), "{err}");
    }

    #[test]
    fn effects_follow_their_kind() {
        let a = |kind, param| Active {
            kind,
            sensor: 0,
            length: 10,
            since: 100,
            param,
        };
        // Temperature: sd 5, range max 60.
        assert_eq!(a(Kind::Spike, 0.5).apply(100, 20.0, 5.0, 60.0), Some(40.0));
        assert_eq!(a(Kind::Spike, 0.75).apply(100, -4.0, 5.0, 60.0), Some(44.0));
        // Already at or past the maximum: no further (the caller clamps).
        assert_eq!(a(Kind::Spike, 0.9).apply(100, 61.0, 5.0, 60.0), Some(61.0));
        assert_eq!(a(Kind::Drift, 4.0).apply(109, 25.0, 5.0, 60.0), Some(45.0));
        assert_eq!(a(Kind::Drift, 4.0).apply(104, 25.0, 5.0, 60.0), Some(35.0));
        assert_eq!(a(Kind::Stuck, 21.5).apply(105, 30.0, 5.0, 60.0), Some(21.5));
        assert_eq!(a(Kind::Dropout, 0.0).apply(105, 30.0, 5.0, 60.0), None);
        assert!(a(Kind::Stuck, 0.0).covers(109));
        assert!(!a(Kind::Stuck, 0.0).covers(110));
        assert!(!a(Kind::Stuck, 0.0).covers(99));
    }
}
