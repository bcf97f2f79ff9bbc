//! iotblast: simulates a fleet of industrial IoT devices and produces their readings to
//! Kafka as fast as the hardware allows.
//!
//! The data path, one module per step, in the order a reading travels:
//!
//! `cli`/`config` → `topology` (cores × device ranges) → `worker` { `pacer` →
//! `simulate` (`device` parameters, `trend`, `anomaly`) → `encoder` (readings and
//! alerts) → `batch` } → `handoff` (SPSC) → `delivery` → `sink` (rdkafka, stdout,
//! null) → `stats` → `report`.
//!
//! Only `worker`, `pacer`, `simulate`, `trend`, `anomaly`, `encoder` and `batch` run per
//! message; they do not allocate, lock or touch shared atomics. Everything else runs
//! per batch or less.

pub mod anomaly;
pub mod batch;
pub mod cli;
pub mod config;
pub mod delivery;
pub mod device;
pub mod encoder;
pub mod engine;
pub mod error;
pub mod handoff;
pub mod http;
pub mod live;
pub mod metrics;
pub mod pacer;
pub mod reload;
pub mod report;
pub mod settings;
pub mod shutdown;
pub mod simulate;
pub mod sink;
pub mod stats;
pub mod topology;
pub mod trend;
pub mod worker;

pub use config::{Config, KafkaConfig, SinkConfig};
pub use engine::run;
pub use error::{ConfigError, Error};
pub use report::Summary;
pub use shutdown::Shutdown;
