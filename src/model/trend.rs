//! Simulated time and the slow trends that ride on it: the day/night cycle, the season
//! and the working-hours load.
//!
//! A reading's simulated time is `start + seq × sample_interval × time_scale`, so it is a
//! pure function of `seq` whatever the wall-clock rate. Every device shares the clock
//! (one plant, one time zone: UTC), so a worker computes the trend point once per round
//! of readings rather than once per reading.

use std::f64::consts::TAU;

const DAY_S: f64 = 86_400.0;
const YEAR_S: f64 = 365.0 * DAY_S;
/// Hour of the day's temperature peak (and trough 12 h later).
const TEMPERATURE_PEAK_HOUR: f64 = 15.0;
/// Hour of peak electrical load (working hours centre on it).
const LOAD_PEAK_HOUR: f64 = 13.0;
/// Day of the year of the humidity peak (mid-July, the wet season in the north).
const HUMIDITY_PEAK_DAY: f64 = 196.0;

/// The simulated clock: where it starts and how far one reading moves it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SimClock {
    /// Simulated Unix time of seq 0, in seconds.
    pub start_s: f64,
    /// Simulated seconds per reading: `sample_interval × time_scale`.
    pub step_s: f64,
}

/// The site-wide trend shapes at one simulated instant, each in -1..=1. The day's
/// temperature shape is each building's own (`SimClock::day_shape`).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct TrendPoint {
    /// Season: +1 in mid-July, -1 in mid-January.
    pub seasonal: f64,
    /// Electrical load: +1 at 13:00, -1 at 01:00.
    pub load: f64,
}

impl SimClock {
    /// Simulated Unix time of reading `seq`, in seconds.
    #[inline]
    pub fn at(&self, seq: u64) -> f64 {
        self.start_s + seq as f64 * self.step_s
    }

    /// Simulated Unix time of reading `seq`, in milliseconds: its `timestamp` with
    /// `event_time: simulated`.
    #[inline]
    pub fn timestamp_ms(&self, seq: u64) -> i64 {
        (self.at(seq) * 1000.0).round() as i64
    }

    /// Hour of the day (UTC) of reading `seq`, 0 to 24.
    #[inline]
    fn hour(&self, seq: u64) -> f64 {
        self.at(seq).rem_euclid(DAY_S) / 3600.0
    }

    /// The day/night cycle at reading `seq`, delayed by `lag_h` hours (a building's
    /// HVAC): +1 at 15:00 + lag, -1 twelve hours later.
    #[inline]
    pub fn day_shape(&self, seq: u64, lag_h: f64) -> f64 {
        (TAU * (self.hour(seq) - TEMPERATURE_PEAK_HOUR - lag_h) / 24.0).cos()
    }

    /// Whole simulated seconds from seq 0 to reading `seq`.
    #[inline]
    pub fn elapsed_s(&self, seq: u64) -> f64 {
        seq as f64 * self.step_s
    }

    /// The trend shapes at reading `seq`.
    pub fn trend(&self, seq: u64) -> TrendPoint {
        let day = self.at(seq).rem_euclid(YEAR_S) / DAY_S;
        TrendPoint {
            seasonal: (TAU * (day - HUMIDITY_PEAK_DAY) / 365.0).cos(),
            load: (TAU * (self.hour(seq) - LOAD_PEAK_HOUR) / 24.0).cos(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_day_peaks_at_three_in_the_afternoon() {
        // 2026-01-01T00:00:00Z, one reading per simulated hour.
        let c = SimClock {
            start_s: 1_767_225_600.0,
            step_s: 3600.0,
        };
        assert!((c.day_shape(15, 0.0) - 1.0).abs() < 1e-9);
        assert!((c.day_shape(3, 0.0) + 1.0).abs() < 1e-9);
        assert!(
            (c.day_shape(17, 2.0) - 1.0).abs() < 1e-9,
            "a 2 h lag peaks at 17:00"
        );
        assert!((c.trend(13).load - 1.0).abs() < 1e-9);
        assert!(c.trend(0).seasonal < -0.9, "January is the dry season");
        let (a, b) = (c.trend(15), c.trend(24 + 15));
        let same_day = (c.day_shape(15, 0.0) - c.day_shape(24 + 15, 0.0)).abs() < 1e-9;
        assert!(same_day && (a.load - b.load).abs() < 1e-9);
        assert!(b.seasonal > a.seasonal, "January warms towards July");
    }
}
