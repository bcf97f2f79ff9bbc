//! The device model: what a fleet is (`spec`, `fleet`), how a device advances from one
//! reading to the next (`device`), and the shared trends (`trend`) and labelled faults
//! (`anomaly`) on top. Pure: no I/O, no threads, no clocks; a reading is a function of
//! the seed, the device, its seq and the settings.

pub mod anomaly;
pub mod device;
pub mod environment;
pub mod fleet;
pub mod spec;
pub mod trend;

pub use device::{generate, DeviceState, FleetSlice, Label, Reading};
pub use fleet::{round2, round_int, stream_rng, Fleet, Identity, Location};
pub use spec::{FleetSpec, Sensor, SensorSpec, SimulatorSpec, Status, Thresholds, MAX_DEVICES};

#[cfg(test)]
mod statistics;
