//! iotblast: simulates a fleet of industrial IoT devices and produces their readings to
//! Kafka as fast as the hardware allows.
//!
//! One folder per stage of the data path, in the order a reading travels (see
//! `docs/architecture.md` for the threads and channels):
//!
//! - `config`: file, environment and flag layers over settings each stage declares
//!   once; the checked, frozen [`config::Run`]; `config` subcommands.
//! - `model`: the fleet, its devices and sensors, trends and anomalies. Pure: no I/O,
//!   no threads.
//! - `generate`: worker threads that pace, step their slice of the fleet and encode
//!   readings into batches.
//! - `deliver`: batches, the SPSC hand-off, the delivery thread and the sinks (Kafka,
//!   stdout, null).
//! - `observe`: progress lines, the summary, metrics and HTTP endpoints, logging.
//! - `engine`: wires the stages together for one run, and hot-reloads the
//!   configuration while it goes on.
//! - `verify`: the consumer side: reads back what a run produced and checks it for
//!   loss, duplicates, reordering and schema errors.
//!
//! Dependencies point one way: `units`, `error`, `shutdown` and `output` at the bottom; `model`
//! and `deliver` (which know nothing of each other) above them; then `config`, which
//! assembles the settings they declare; `generate`, which makes readings with the model
//! and hands them to `deliver`; `observe`; and `engine` on top. Only the worker,
//! pacer, model step, encoder and batch code runs per message; it does not allocate,
//! lock or touch shared atomics.

pub mod config;
pub mod deliver;
pub mod engine;
pub mod error;
pub mod generate;
pub mod model;
pub mod observe;
pub mod output;
pub mod shutdown;
pub mod units;
pub mod verify;

pub use config::{Run, Settings, SinkKind};
pub use engine::{execute, run};
pub use error::{ConfigError, Error};
pub use observe::report::Summary;
pub use shutdown::Shutdown;
