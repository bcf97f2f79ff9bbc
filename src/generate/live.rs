//! Settings that may change while a run is going: the target rate and the live part of
//! the device model (thresholds, trends, anomalies, sample interval; see `reload`).
//! The reloader publishes a new version; each worker notices it at its next
//! batch boundary (or while it sleeps for the pacer) and applies it between two
//! readings, so no reading is lost or repeated.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::config::settings::Settings;
use crate::model::FleetSpec;

/// The live part of the configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveSettings {
    /// Total target rate in messages per second; `None` is as fast as possible.
    pub rate: Option<f64>,
    /// The device model; `FleetSpec::set_live` says which parts apply while running.
    pub fleet: FleetSpec,
}

impl LiveSettings {
    /// The live part of `settings`.
    pub fn of(settings: &Settings) -> Self {
        Self {
            rate: if let Some(driver) = crate::engine::schedule::driver_for(&settings.run) {
                Some(driver.first_rate())
            } else if settings.run.realtime {
                // One reading per device per sample interval of wall time.
                let interval = settings.device.simulator.sample_interval.0.as_secs_f64();
                Some(settings.device.devices() as f64 / interval)
            } else {
                settings.run.target_rate()
            },
            fleet: settings.device.clone(),
        }
    }
}

/// Shared between the reloader (writer) and the workers (readers).
#[derive(Debug)]
pub struct Live {
    version: AtomicU64,
    current: Mutex<LiveSettings>,
    /// Reloads applied (including ones that changed nothing).
    pub reloads: AtomicU64,
    /// Reloads refused: invalid file, or a change that needs a restart.
    pub reload_failures: AtomicU64,
    /// Reloads that changed the target rate.
    pub rate_changes: AtomicU64,
}

impl Live {
    pub fn new(initial: LiveSettings) -> Self {
        Self {
            version: AtomicU64::new(0),
            current: Mutex::new(initial),
            reloads: AtomicU64::new(0),
            reload_failures: AtomicU64::new(0),
            rate_changes: AtomicU64::new(0),
        }
    }

    /// Changes with every `publish`; workers compare it once per batch.
    #[inline]
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// The current settings and their version.
    pub fn get(&self) -> (LiveSettings, u64) {
        let g = self.current.lock().unwrap_or_else(|p| p.into_inner());
        (g.clone(), self.version())
    }

    /// Replaces the settings; workers pick them up at their next check.
    pub fn publish(&self, next: LiveSettings) {
        let mut g = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if g.rate != next.rate {
            self.rate_changes.fetch_add(1, Ordering::Relaxed);
        }
        *g = next;
        self.version.fetch_add(1, Ordering::Release);
    }
}
