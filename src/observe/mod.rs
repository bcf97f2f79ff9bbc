//! What a run tells its user: progress lines while it runs (`progress`), the summary
//! at the end (`report`), the run report file with its exact merge (`report_file`) and
//! its charts (`plot`), Prometheus metrics and health endpoints (`metrics`, `http`,
//! with librdkafka's statistics from `librdkafka`), and the log format (`logging`).
//! Reads the counters of `generate` and `deliver`; nothing here runs per message.

pub mod http;
pub mod librdkafka;
pub mod logging;
pub mod metrics;
pub mod plot;
pub mod progress;
pub mod report;
pub mod report_file;
