//! Typed errors for every way a run can fail before or while it runs.
//!
//! The binary maps these to exit codes; the library never exits or panics on bad input.

use std::time::Duration;

/// A setting that failed validation. `key` names the flag or config path, so the user
/// knows exactly what to change.
#[derive(Debug, thiserror::Error)]
#[error("{key}: {message}")]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// Everything that can stop a run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),

    #[error("could not reach Kafka brokers {brokers} within {}: {reason}", humantime::format_duration(*timeout))]
    Unreachable {
        brokers: String,
        timeout: Duration,
        reason: String,
    },

    #[error("topic '{topic}' does not exist on {brokers} and --no-create-topic was given")]
    TopicMissing { topic: String, brokers: String },

    #[error("could not create topic '{topic}': {reason}")]
    TopicCreate { topic: String, reason: String },

    #[error("librdkafka rejected the producer configuration: {0}")]
    Producer(String),

    #[error("could not start the embedded mock Kafka cluster: {0}")]
    MockCluster(String),

    #[error("could not start thread '{name}': {source}")]
    Thread {
        name: String,
        source: std::io::Error,
    },

    #[error("could not install signal handlers: {0}")]
    Signals(std::io::Error),

    #[error("cannot watch configuration file {path}: {reason}")]
    Watch { path: String, reason: String },

    #[error("{key}: cannot listen on {address}: {reason}")]
    Listen {
        key: &'static str,
        address: std::net::SocketAddr,
        reason: String,
    },

    #[error("thread '{0}' panicked")]
    Panicked(String),
}
