//! What a run tells its user: progress lines while it runs (`progress`), the summary
//! at the end (`report`), Prometheus metrics and health endpoints (`metrics`, `http`),
//! and the log format (`logging`). Reads the counters of `generate` and `deliver`;
//! nothing here runs per message.

pub mod http;
pub mod logging;
pub mod metrics;
pub mod progress;
pub mod report;
