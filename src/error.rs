//! Typed errors for every way a run can fail before, while or after it runs, each with
//! its cause kept as a typed source. The binary prints the chain once (`Error::chain`)
//! and exits with `Error::exit_code`; the library never exits or panics on bad input.

use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};

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

/// Why the brokers could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum Unreachable {
    #[error(transparent)]
    Metadata(KafkaError),
    #[error("the cluster reported no brokers")]
    NoBrokers,
    /// What librdkafka last reported (name resolution, connection refused, TLS), more
    /// specific than the timed-out request.
    #[error("{0}")]
    Reported(String),
}

/// Why a topic could not be created.
#[derive(Debug, thiserror::Error)]
pub enum TopicCreate {
    #[error(transparent)]
    Client(KafkaError),
    #[error(transparent)]
    Broker(RDKafkaErrorCode),
}

/// Everything that can stop a run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),

    #[error("could not reach Kafka brokers {brokers} within {}", humantime::format_duration(*timeout))]
    Unreachable {
        brokers: String,
        timeout: Duration,
        #[source]
        source: Unreachable,
    },

    /// The brokers refused the client for a reason a setting explains: a failed
    /// authentication or TLS handshake, a mechanism or protocol the listener does not
    /// take (`deliver::kafka::diagnose`).
    #[error("{problem}: {fix} (librdkafka: {reason})")]
    Refused {
        problem: String,
        fix: String,
        reason: String,
    },

    #[error("topic '{topic}' does not exist on {brokers}")]
    NoTopic { topic: String, brokers: String },

    #[error("librdkafka could not create the consumer")]
    Consumer(#[source] KafkaError),

    #[error("cannot read {path}")]
    Input {
        path: String,
        #[source]
        source: std::io::Error,
    },

    #[error("verify found {0}")]
    VerifyFailed(String),

    /// `iotblast healthcheck` got no 200 from the endpoint.
    #[error("unhealthy: {url}: {reason}")]
    Unhealthy { url: String, reason: String },

    #[error("topic '{topic}' does not exist on {brokers} and --no-create-topic was given")]
    TopicMissing { topic: String, brokers: String },

    /// The brokers refused this principal the topic (TOPIC_AUTHORIZATION_FAILED).
    #[error("not authorized to write topic '{topic}' on {brokers}: {detail}")]
    WriteDenied {
        topic: String,
        brokers: String,
        detail: String,
    },

    /// The topic is missing and the brokers refused to create it.
    #[error("not authorized to create topic '{topic}' on {brokers}: it does not exist, and the brokers refused to create it (TOPIC_AUTHORIZATION_FAILED); create it beforehand, or grant this principal CREATE on the topic or the cluster")]
    CreateDenied { topic: String, brokers: String },

    #[error("could not create topic '{topic}'")]
    TopicCreate {
        topic: String,
        #[source]
        source: TopicCreate,
    },

    #[error("librdkafka rejected the producer configuration")]
    Producer(#[source] KafkaError),

    #[error("librdkafka could not create a handle for topic '{0}'")]
    TopicHandle(String),

    #[error("partitioner '{0}' is not one of librdkafka's built-in partitioners")]
    Partitioner(String),

    #[error("could not start the embedded mock Kafka cluster")]
    MockCluster(#[source] KafkaError),

    #[error("could not start thread '{name}'")]
    Thread {
        name: String,
        #[source]
        source: std::io::Error,
    },

    #[error("could not install signal handlers")]
    Signals(#[source] std::io::Error),

    #[error("cannot watch configuration file {path}")]
    Watch {
        path: String,
        #[source]
        source: notify::Error,
    },

    #[error("{key}: cannot listen on {address}")]
    Listen {
        key: &'static str,
        address: std::net::SocketAddr,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    #[error("cannot write to stdout")]
    Output(#[source] std::io::Error),

    #[error("stdout is closed")]
    StdoutClosed,

    #[error("thread '{0}' panicked")]
    Panicked(String),

    #[error(
        "{readings} readings and {alerts} alerts were not confirmed delivered (see the summary)"
    )]
    Undelivered { readings: u64, alerts: u64 },

    #[error("target rate missed: achieved {achieved:.1} of {target:.1} msg/s")]
    TargetMissed { achieved: f64, target: f64 },

    /// `run.find_max_rate` found no rate that met `run.latency_slo`.
    #[error("find-max-rate: no rate met {slo}")]
    NoRateMetSlo { slo: String },
}

impl Error {
    /// The process exit status for this error: 2 for bad flags or configuration, 3 for
    /// a run that completed with undelivered messages, 4 for one that missed its target
    /// rate, 5 for a `verify` that found loss, duplicates or invalid messages, 1 for
    /// anything else. README's exit status table lists the same (and 130,
    /// which the signal handlers exit with themselves).
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Config(_) => 2,
            Error::Undelivered { .. } => 3,
            Error::TargetMissed { .. } | Error::NoRateMetSlo { .. } => 4,
            Error::VerifyFailed(_) => 5,
            _ => 1,
        }
    }

    /// Whether the error still needs printing: a run with undelivered messages or a
    /// missed target has already said so with its summary, whose JSON form must stay
    /// the last line.
    pub fn needs_message(&self) -> bool {
        !matches!(
            self,
            Error::Undelivered { .. }
                | Error::TargetMissed { .. }
                | Error::NoRateMetSlo { .. }
                | Error::VerifyFailed(_)
        )
    }

    /// The error and its causes, joined by ": ", for printing once at the top.
    pub fn chain(&self) -> String {
        let mut text = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            let part = cause.to_string();
            // A transparent wrapper repeats its inner error's text; print it once.
            if !text.contains(&part) {
                text.push_str(": ");
                text.push_str(&part);
            }
            source = cause.source();
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chain_prints_every_cause_once() {
        let e = Error::Thread {
            name: "iotblast-worker-0".into(),
            source: std::io::Error::other("no more threads"),
        };
        assert_eq!(
            e.chain(),
            "could not start thread 'iotblast-worker-0': no more threads"
        );
        assert_eq!(e.exit_code(), 1);
        let c: Error = ConfigError::new("--devices", "must be between 1 and 10").into();
        assert_eq!(
            (c.chain().as_str(), c.exit_code()),
            ("--devices: must be between 1 and 10", 2)
        );
    }
}
