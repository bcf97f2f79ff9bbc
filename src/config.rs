//! The validated, frozen run configuration, and the parsers for its units.
//!
//! Flags are parsed in `cli`; this module holds what the engine runs on. Nothing
//! changes a `Config` after the threads start.

use std::net::SocketAddr;
use std::time::Duration;

use crate::device::FleetSpec;
use crate::error::ConfigError;

/// Upper bound on the fleet size: enough for any benchmark, small enough that per-device
/// state (a few bytes each) always fits in memory.
pub const MAX_DEVICES: u64 = 10_000_000;

/// Everything one run needs, checked and complete.
#[derive(Debug, Clone)]
pub struct Config {
    /// Number of simulated devices; device indices are `0..devices`.
    pub devices: u64,
    /// Number of generator threads.
    pub cores: usize,
    /// Seed of every random value; with the same seed, readings are identical.
    pub seed: u64,
    /// Whether `seed` was chosen at random (it is printed so the run can be repeated).
    pub seed_was_random: bool,
    /// Messages per batch handed from a worker to the delivery thread.
    pub batch_size: usize,
    /// Full batches a worker may have queued before it blocks (backpressure).
    pub batches_in_flight: usize,
    /// How long a partly filled batch may wait at low rates before it is shipped anyway.
    pub batch_linger: Duration,
    /// Total target rate in messages per second; `None` runs as fast as possible.
    pub rate: Option<f64>,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Stop after this many readings in total.
    pub messages: Option<u64>,
    /// How often a progress line is printed.
    pub report_interval: Duration,
    /// Print no progress lines (the summary is still returned).
    pub quiet: bool,
    /// How long shutdown waits for outstanding deliveries before counting them as failed.
    pub flush_timeout: Duration,
    /// Where the readings go.
    pub sink: SinkConfig,
    /// The device model: sensors, thresholds, layout and device info.
    pub fleet: FleetSpec,
    /// This process's slice of the fleet, `0..instance_count`.
    pub instance_index: u64,
    /// Processes sharing the fleet; each produces a contiguous slice of the devices.
    pub instance_count: u64,
    /// Where to serve Prometheus `/metrics`, if anywhere.
    pub metrics_address: Option<SocketAddr>,
    /// Where to serve `/healthz` and `/readyz`, if anywhere.
    pub http_address: Option<SocketAddr>,
}

impl Config {
    /// A config with the built-in defaults, for the given sink. Used by tests and benches.
    pub fn new(sink: SinkConfig) -> Self {
        Self {
            devices: 1000,
            cores: default_cores(),
            seed: 0,
            seed_was_random: false,
            batch_size: 1024,
            batches_in_flight: 4,
            batch_linger: Duration::from_millis(50),
            rate: None,
            duration: None,
            messages: None,
            report_interval: Duration::from_secs(5),
            quiet: false,
            flush_timeout: Duration::from_secs(30),
            sink,
            fleet: FleetSpec::default(),
            instance_index: 0,
            instance_count: 1,
            metrics_address: None,
            http_address: None,
        }
    }

    /// The devices this process simulates: its instance's slice of `0..devices`.
    pub fn instance_devices(&self) -> std::ops::Range<u64> {
        crate::topology::split(self.devices, self.instance_count as usize)
            [self.instance_index as usize]
            .clone()
    }

    /// Checks cross-field rules that single-flag parsing cannot see.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.devices == 0 || self.devices > MAX_DEVICES {
            return Err(ConfigError::new(
                "device.simulator.device_count",
                format!("must be between 1 and {MAX_DEVICES}, got {}", self.devices),
            ));
        }
        if self.cores == 0 || self.cores > 1024 {
            return Err(ConfigError::new(
                "device.simulator.worker_pool_size",
                format!("must be between 1 and 1024, got {}", self.cores),
            ));
        }
        if self.instance_count == 0 || self.instance_count > self.devices {
            return Err(ConfigError::new(
                "run.instance_count",
                format!(
                    "must be between 1 and the device count ({}), got {}",
                    self.devices, self.instance_count
                ),
            ));
        }
        if self.instance_index >= self.instance_count {
            return Err(ConfigError::new(
                "run.instance_index",
                format!(
                    "must be below run.instance_count ({}), got {}",
                    self.instance_count, self.instance_index
                ),
            ));
        }
        if self.batch_size == 0 || self.batch_size > 1_000_000 {
            return Err(ConfigError::new(
                "device.simulator.batch_size",
                format!("must be between 1 and 1000000, got {}", self.batch_size),
            ));
        }
        if self.batches_in_flight == 0 {
            return Err(ConfigError::new(
                "device.simulator.queue_buffer_size",
                "must be at least 1, got 0",
            ));
        }
        if let Some(rate) = self.rate {
            if !rate.is_finite() || rate <= 0.0 {
                return Err(ConfigError::new(
                    "run.rate",
                    format!("must be a positive number of messages per second, got {rate}"),
                ));
            }
        }
        if self.messages == Some(0) {
            return Err(ConfigError::new(
                "run.messages",
                "must be at least 1, got 0",
            ));
        }
        if self.duration == Some(Duration::ZERO) {
            return Err(ConfigError::new("run.duration", "must be greater than 0"));
        }
        if self.report_interval < Duration::from_millis(100) {
            return Err(ConfigError::new(
                "run.report_interval",
                format!(
                    "must be at least 100ms, got {}",
                    humantime::format_duration(self.report_interval)
                ),
            ));
        }
        if let SinkConfig::Kafka(k) = &self.sink {
            k.validate()?;
        }
        self.fleet.validate()
    }
}

/// Where readings are written.
#[derive(Debug, Clone)]
pub enum SinkConfig {
    /// Produce to Kafka: a real cluster, or the embedded mock cluster when `brokers` is `None`.
    Kafka(KafkaConfig),
    /// Newline-delimited JSON on stdout.
    Stdout,
    /// Generate and encode only; measures the generator.
    Null,
}

/// Producer settings for the Kafka sink.
#[derive(Debug, Clone)]
pub struct KafkaConfig {
    /// `bootstrap.servers`; `None` starts librdkafka's in-process mock cluster.
    pub brokers: Option<String>,
    /// Topic the readings go to.
    pub topic: String,
    /// Topic the alerts go to; `None` turns alerts off.
    pub alerts_topic: Option<String>,
    /// Partitions for a topic that iotblast creates.
    pub partitions: i32,
    /// Replication factor for a topic that iotblast creates; -1 means the broker default.
    pub replication_factor: i32,
    /// Create the topic if it is missing.
    pub create_topic: bool,
    /// librdkafka properties passed through verbatim (`-X key=value`); they override ours.
    pub properties: Vec<(String, String)>,
    /// How long to wait for the brokers before giving up at startup.
    pub connect_timeout: Duration,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            brokers: None,
            topic: "device-data".into(),
            alerts_topic: Some("alerts".into()),
            partitions: 12,
            replication_factor: -1,
            create_topic: true,
            properties: Vec::new(),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// Checks a topic name against Kafka's rules.
fn topic_name(key: &str, topic: &str) -> Result<(), ConfigError> {
    if topic.is_empty() || topic.len() > 249 {
        return Err(ConfigError::new(
            key,
            format!("must be 1 to 249 characters, got '{topic}'"),
        ));
    }
    if let Some(bad) = topic
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(ConfigError::new(
            key,
            format!(
                "'{topic}' contains '{bad}'; Kafka topic names allow only ASCII letters, digits, '.', '_' and '-'"
            ),
        ));
    }
    Ok(())
}

impl KafkaConfig {
    /// The topics produced to: readings, then alerts if on.
    pub fn topics(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.topic.as_str()).chain(self.alerts_topic.as_deref())
    }

    fn validate(&self) -> Result<(), ConfigError> {
        topic_name("kafka.topics.device_data", &self.topic)?;
        if let Some(alerts) = &self.alerts_topic {
            topic_name("kafka.topics.alerts", alerts)?;
            if *alerts == self.topic {
                return Err(ConfigError::new(
                    "kafka.topics.alerts",
                    format!("must differ from kafka.topics.device_data, both are '{alerts}'; leave it empty to turn alerts off"),
                ));
            }
        }
        if self.partitions < 1 {
            return Err(ConfigError::new(
                "kafka.partitions",
                format!("must be at least 1, got {}", self.partitions),
            ));
        }
        if self.replication_factor == 0 || self.replication_factor < -1 {
            return Err(ConfigError::new(
                "kafka.replication_factor",
                format!(
                    "must be -1 (broker default) or at least 1, got {}",
                    self.replication_factor
                ),
            ));
        }
        if let Some(b) = &self.brokers {
            if b.trim().is_empty() {
                return Err(ConfigError::new("kafka.brokers", "must not be empty"));
            }
        }
        if self.connect_timeout.is_zero() {
            return Err(ConfigError::new(
                "kafka.connect_timeout",
                "must be greater than 0",
            ));
        }
        Ok(())
    }
}

/// The default generator thread count: all cores but one, which is left for the
/// delivery thread and librdkafka's own threads; at least 1.
pub fn default_cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .saturating_sub(1)
        .max(1)
}

/// Parses `100ms`, `3s`, `5m`, `1h 30m`. A leading `-` is reported as negative rather
/// than as a syntax error, because that is what the user meant.
pub fn parse_duration(key: &str, text: &str) -> Result<Duration, ConfigError> {
    let t = text.trim();
    if t.starts_with('-') {
        return Err(ConfigError::new(
            key,
            format!("must not be negative, got '{text}'"),
        ));
    }
    humantime::parse_duration(t).map_err(|e| {
        ConfigError::new(
            key,
            format!("invalid duration '{text}' ({e}); use e.g. 100ms, 10s, 5m, 1h"),
        )
    })
}

/// Parses a count with an optional `k` (10^3), `m` (10^6) or `g` (10^9) suffix.
pub fn parse_count(key: &str, text: &str) -> Result<u64, ConfigError> {
    let t = text.trim().replace('_', "");
    if t.starts_with('-') {
        return Err(ConfigError::new(
            key,
            format!("must not be negative, got '{text}'"),
        ));
    }
    let (digits, mult) = match t.char_indices().last() {
        Some((i, 'k' | 'K')) => (&t[..i], 1_000),
        Some((i, 'm' | 'M')) => (&t[..i], 1_000_000),
        Some((i, 'g' | 'G')) => (&t[..i], 1_000_000_000),
        _ => (t.as_str(), 1),
    };
    let invalid = || {
        ConfigError::new(
            key,
            format!(
                "invalid count '{text}'; use a whole number, optionally with k, m or g (e.g. 10k)"
            ),
        )
    };
    if digits.contains('.') {
        let v: f64 = digits.parse().map_err(|_| invalid())?;
        let total = v * mult as f64;
        if total.fract() != 0.0 || !total.is_finite() || total > u64::MAX as f64 {
            return Err(invalid());
        }
        return Ok(total as u64);
    }
    let v: u64 = digits.parse().map_err(|_| invalid())?;
    v.checked_mul(mult).ok_or_else(invalid)
}

/// Parses a rate (messages per second), allowing count suffixes: `50k`, `1.5m`.
pub fn parse_rate(key: &str, text: &str) -> Result<f64, ConfigError> {
    let t = text.trim();
    if t.starts_with('-') {
        return Err(ConfigError::new(
            key,
            format!("must not be negative, got '{text}'"),
        ));
    }
    if let Ok(v) = t.parse::<f64>() {
        if v.is_finite() {
            return Ok(v);
        }
    }
    parse_count(key, t).map(|v| v as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_accept_units_and_reject_negatives() {
        assert_eq!(
            parse_duration("d", "100ms").unwrap(),
            Duration::from_millis(100)
        );
        assert_eq!(parse_duration("d", "5m").unwrap(), Duration::from_secs(300));
        let e = parse_duration("--duration", "-5s").unwrap_err().to_string();
        assert!(e.contains("--duration") && e.contains("negative"), "{e}");
        let e = parse_duration("--duration", "ten").unwrap_err().to_string();
        assert!(e.contains("invalid duration 'ten'"), "{e}");
    }

    #[test]
    fn counts_accept_suffixes() {
        assert_eq!(parse_count("n", "10k").unwrap(), 10_000);
        assert_eq!(parse_count("n", "1m").unwrap(), 1_000_000);
        assert_eq!(parse_count("n", "1.5k").unwrap(), 1_500);
        assert_eq!(parse_count("n", "20_000").unwrap(), 20_000);
        assert!(parse_count("n", "1.0001k").is_err());
        assert!(parse_count("n", "-3")
            .unwrap_err()
            .to_string()
            .contains("negative"));
        assert!(parse_count("n", "x").is_err());
        assert_eq!(parse_rate("r", "2.5").unwrap(), 2.5);
        assert_eq!(parse_rate("r", "50k").unwrap(), 50_000.0);
    }

    #[test]
    fn validation_names_the_offending_setting() {
        let mut c = Config::new(SinkConfig::Null);
        c.devices = 0;
        let e = c.validate().unwrap_err().to_string();
        assert!(
            e.starts_with("device.simulator.device_count:") && e.contains("got 0"),
            "{e}"
        );
        let mut c = Config::new(SinkConfig::Null);
        c.cores = 0;
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .starts_with("device.simulator.worker_pool_size:"));
        let c = Config::new(SinkConfig::Kafka(KafkaConfig {
            topic: "bad topic".into(),
            ..KafkaConfig::default()
        }));
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("contains ' '"));
    }
}
