//! The layered settings a run is built from: built-in defaults < YAML file (`--config`)
//! < `IOTBLAST_*` environment < flags.
//!
//! `Settings` mirrors the YAML layout. Its `Default` is the single source of truth for
//! defaults: `config default` renders it (with each field's `///` doc, via schemars),
//! `config print` shows the merged result, and the shipped files in `configs/` only
//! override. Layers are merged as YAML values; the merged value is then deserialised
//! once, with unknown keys rejected, and checked by [`Settings::to_config`].

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use yaml_serde::{Mapping, Value};

use crate::anomaly::Weights;
use crate::config::{self, Config, KafkaConfig, SinkConfig, MAX_DEVICES};
use crate::device::{FleetSpec, SensorSpec};
use crate::error::ConfigError;

/// Parses an optional `IP:port` setting.
fn socket_address(
    key: &str,
    value: &Option<String>,
) -> Result<Option<std::net::SocketAddr>, ConfigError> {
    value
        .as_deref()
        .map(|v| {
            v.trim().parse().map_err(|_| {
                ConfigError::new(
                    key,
                    format!("must be IP:port such as 0.0.0.0:9090, got '{v}'"),
                )
            })
        })
        .transpose()
}

/// Prefix of environment overrides: `IOTBLAST_` + the dotted path in upper snake case.
pub const ENV_PREFIX: &str = "IOTBLAST_";

/// Sections whose keys are free (passed through), so they are not checked against a schema.
const FREE_MAPS: &[&str] = &["kafka.librdkafka"];

/// Everything a run can be configured with.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Kafka connection, topic and producer.
    pub kafka: KafkaSettings,
    /// The simulated fleet.
    pub device: DeviceSettings,
    /// How fast and how long to run.
    pub run: RunSettings,
    /// Logging.
    pub log: LogSettings,
    /// The Prometheus metrics endpoint.
    pub metrics: MetricsSettings,
    /// The health endpoints.
    pub http: HttpSettings,
}

/// The Prometheus metrics endpoint.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSettings {
    /// IP:port to serve `/metrics` on (e.g. 0.0.0.0:9090); null serves nothing. Port 0
    /// picks a free port and logs it.
    pub address: Option<String>,
}

/// The health endpoints.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSettings {
    /// IP:port to serve `/healthz` (alive) and `/readyz` (producing) on (e.g.
    /// 0.0.0.0:8080); null serves nothing. May equal metrics.address.
    pub address: Option<String>,
}

/// Kafka connection, topic and producer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaSettings {
    /// Bootstrap servers, as a list or a comma-separated string. Empty: start librdkafka's
    /// in-process mock cluster (zero setup).
    pub brokers: Brokers,
    /// Topic names.
    pub topics: Topics,
    /// Create the readings topic if it is missing.
    pub create_topic: bool,
    /// Partitions of a topic that iotblast creates.
    pub partitions: i32,
    /// Replication factor of a topic that iotblast creates; -1 is the broker default.
    pub replication_factor: i32,
    /// Give up at startup if the brokers cannot be reached within this time.
    pub connect_timeout: Dur,
    /// How long shutdown waits for outstanding acks before counting them as failed.
    pub flush_timeout: Dur,
    /// Producer tuning; each maps to a librdkafka property.
    pub producer: ProducerSettings,
    /// TLS and SASL.
    pub security: SecuritySettings,
    /// Any librdkafka property, passed through verbatim; applied after everything above.
    pub librdkafka: BTreeMap<String, String>,
}

/// Topic names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Topics {
    /// Topic for the readings.
    pub device_data: String,
    /// Topic for alerts (status transitions); empty turns alerts off.
    pub alerts: String,
}

/// Producer tuning. Defaults favour throughput; see `src/sink/kafka.rs` for why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ProducerSettings {
    /// `client.id`.
    pub client_id: String,
    /// Messages per MessageSet (`batch.num.messages`; librdkafka's default is 10000).
    pub batch_size: u32,
    /// How long to wait to fill a MessageSet (`linger.ms`; librdkafka's default is 5ms).
    /// Also accepted as `batch_timeout`.
    #[serde(alias = "batch_timeout")]
    pub linger: Dur,
    /// `compression.type`: none, gzip, snappy, lz4 or zstd.
    pub compression_type: Compression,
    /// Retries of a failed produce request (`retries`; librdkafka's default 2147483647).
    pub max_retries: u32,
    /// Backoff between retries (`retry.backoff.ms`; librdkafka's default 100ms).
    pub retry_backoff: Dur,
    /// Acknowledgements required: -1 (all in-sync replicas), 0 or 1 (`acks`; default -1).
    pub required_acks: i32,
    /// Exactly-once, in-order delivery per partition (`enable.idempotence`). Needs
    /// `required_acks: -1`.
    pub idempotence: bool,
    /// How long a message may wait for delivery before it fails (`message.timeout.ms`;
    /// librdkafka's default 300s).
    pub timeout: Dur,
    /// Messages librdkafka may hold in its queue (`queue.buffering.max.messages`).
    pub channel_buffer_size: u32,
}

/// `compression.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    fn as_str(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

/// TLS and SASL. Secrets are never printed or logged.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SecuritySettings {
    /// `security.protocol`: plaintext, ssl, sasl_plaintext or sasl_ssl.
    pub protocol: Protocol,
    /// `sasl.mechanisms`: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512. Needs a sasl_* protocol.
    pub sasl_mechanism: Option<String>,
    /// `sasl.username`.
    pub username: Option<String>,
    /// `sasl.password`. Prefer IOTBLAST_KAFKA_SECURITY_PASSWORD or `password_file`.
    pub password: Option<Secret>,
    /// A file whose contents (trailing newline removed) are the SASL password.
    pub password_file: Option<PathBuf>,
    /// `ssl.ca.location`: CA certificate(s) to verify the brokers.
    pub ca_location: Option<PathBuf>,
    /// `ssl.certificate.location`: client certificate.
    pub certificate_location: Option<PathBuf>,
    /// `ssl.key.location`: client private key.
    pub key_location: Option<PathBuf>,
    /// `ssl.key.password`.
    pub key_password: Option<Secret>,
}

/// `security.protocol`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    #[default]
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl Protocol {
    fn as_str(self) -> &'static str {
        match self {
            Protocol::Plaintext => "plaintext",
            Protocol::Ssl => "ssl",
            Protocol::SaslPlaintext => "sasl_plaintext",
            Protocol::SaslSsl => "sasl_ssl",
        }
    }

    fn is_sasl(self) -> bool {
        matches!(self, Protocol::SaslPlaintext | Protocol::SaslSsl)
    }
}

/// The simulated fleet.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct DeviceSettings {
    /// Fleet size and generator threads.
    pub simulator: SimulatorSettings,
    /// Per-sensor distribution, clamp range and status thresholds.
    pub thresholds: Thresholds,
}

/// Fleet size and generator threads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SimulatorSettings {
    /// Number of simulated devices, 1 to 10m (`10k`, `1m` accepted).
    pub device_count: Count,
    /// Generator threads, each pinned to a core. Null: available cores minus one, at
    /// least 1. Also accepted as `cores`.
    #[serde(alias = "cores")]
    pub worker_pool_size: Option<usize>,
    /// Readings per batch handed from a worker to the delivery thread.
    pub batch_size: usize,
    /// Full batches a worker may queue before it waits for the delivery thread.
    pub queue_buffer_size: usize,
    /// Simulated time between two readings of one device; trends advance by this per
    /// reading. Does not pace the run (see run.rate).
    pub sample_interval: Dur,
    /// Speed-up of simulated time: each reading advances it by sample_interval ×
    /// time_scale (1440 shows a day in a minute of 1-second samples).
    pub time_scale: f64,
    /// Simulated time of every device's first reading (RFC 3339, UTC); sets where in
    /// the day and the year the trends start.
    pub start_time: String,
    /// Share of fresh noise per reading, in (0, 1]: each sensor follows
    /// x = (1 - v)·x_prev + noise, scaled so its sd stays the configured one. 1 makes
    /// readings independent; 0.3 is the design's 0.7·last + 0.3·new.
    pub data_variation: f64,
    /// Probability that a reading starts an anomaly (0 to 1).
    pub anomaly_rate: f64,
    /// Relative weights of the anomaly kinds.
    pub anomaly_weights: Weights,
    /// Turn the trends (day/night, season, weather, load) on or off.
    pub trend_enabled: bool,
    /// Scale of the trends; 1 gives each the amplitude in docs/data-model.md, 0 turns
    /// them off (like trend_enabled: false).
    pub trend_strength: f64,
    /// Long-run share of readings with the switch on (0 to 1).
    pub switch_on_probability: f64,
    /// Mean number of readings the switch stays in its rarer state (>= 1).
    pub switch_dwell: f64,
    /// Building labels, used in turn (e.g. ["A栋", "B栋"]).
    pub buildings: Vec<String>,
    /// Floors per building (1 to 999).
    pub floors_per_building: u32,
    /// Rooms per floor (1 to 999).
    pub rooms_per_floor: u32,
    /// Devices per room (1 to 999).
    pub devices_per_room: u32,
    /// Device models, spread across the fleet.
    pub models: Vec<String>,
    /// Firmware versions, spread across the fleet.
    pub firmwares: Vec<String>,
}

/// Per-sensor distribution, clamp range and status thresholds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Thresholds {
    /// °C.
    pub temperature: SensorSpec,
    /// %.
    pub humidity: SensorSpec,
    /// hPa.
    pub pressure: SensorSpec,
    /// A.
    pub current: SensorSpec,
}

/// How fast and how long to run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RunSettings {
    /// Total messages per second (`50k` accepted); 0 or null is as fast as possible.
    pub rate: Option<Count>,
    /// Stop after this long (e.g. 30s, 5m); null runs until stopped.
    pub duration: Option<Dur>,
    /// Stop after this many readings in total; null runs until stopped.
    pub messages: Option<Count>,
    /// Seed of all readings; null picks one at random and prints it.
    pub seed: Option<u64>,
    /// This process's slice of the fleet, 0 to instance_count - 1: instances with the
    /// same settings and seed split the devices into disjoint contiguous ranges.
    pub instance_index: u64,
    /// How many processes share the fleet. Devices, messages and rate describe the
    /// whole fleet; each instance produces its share.
    pub instance_count: u64,
    /// Interval between progress lines.
    pub report_interval: Dur,
}

/// Logging.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    /// error, warn, info, debug or trace. RUST_LOG, when set, takes precedence.
    pub level: String,
}

impl Default for KafkaSettings {
    fn default() -> Self {
        let k = KafkaConfig::default();
        Self {
            brokers: Brokers::default(),
            topics: Topics::default(),
            create_topic: k.create_topic,
            partitions: k.partitions,
            replication_factor: k.replication_factor,
            connect_timeout: Dur(k.connect_timeout),
            flush_timeout: Dur(Config::new(SinkConfig::Null).flush_timeout),
            producer: ProducerSettings::default(),
            security: SecuritySettings::default(),
            librdkafka: BTreeMap::new(),
        }
    }
}

impl Default for Topics {
    fn default() -> Self {
        let k = KafkaConfig::default();
        Self {
            device_data: k.topic,
            alerts: k.alerts_topic.unwrap_or_default(),
        }
    }
}

impl Default for ProducerSettings {
    /// Tuned for throughput; the remaining tuned properties are in
    /// `sink::kafka::PRODUCER_DEFAULTS`.
    fn default() -> Self {
        Self {
            client_id: "iotblast".into(),
            // Up to 10k messages (~5 MB of readings) per MessageSet, so a full linger is
            // not cut short by the count before `batch.size` (1 MB) is reached.
            batch_size: 10_000,
            // The most important throughput knob (librdkafka INTRODUCTION.md): the 5 ms
            // default sends many small requests under load; 20 ms costs at most 20 ms
            // of latency at low rates.
            linger: Dur(Duration::from_millis(20)),
            compression_type: Compression::None,
            max_retries: 2_147_483_647,
            retry_backoff: Dur(Duration::from_millis(100)),
            required_acks: -1,
            idempotence: false,
            timeout: Dur(Duration::from_secs(300)),
            // Together with the 32 MiB cap in PRODUCER_DEFAULTS, bounds librdkafka's queue.
            channel_buffer_size: 500_000,
        }
    }
}

impl ProducerSettings {
    /// These settings as librdkafka properties.
    pub fn properties(&self) -> Vec<(String, String)> {
        let ms = |d: &Dur| d.0.as_millis().to_string();
        vec![
            ("client.id".into(), self.client_id.clone()),
            ("batch.num.messages".into(), self.batch_size.to_string()),
            ("linger.ms".into(), ms(&self.linger)),
            (
                "compression.type".into(),
                self.compression_type.as_str().into(),
            ),
            ("retries".into(), self.max_retries.to_string()),
            ("retry.backoff.ms".into(), ms(&self.retry_backoff)),
            ("acks".into(), self.required_acks.to_string()),
            ("enable.idempotence".into(), self.idempotence.to_string()),
            ("message.timeout.ms".into(), ms(&self.timeout)),
            (
                "queue.buffering.max.messages".into(),
                self.channel_buffer_size.to_string(),
            ),
        ]
    }
}

impl Default for SimulatorSettings {
    fn default() -> Self {
        let c = Config::new(SinkConfig::Null);
        let f = c.fleet;
        Self {
            device_count: Count(c.devices),
            worker_pool_size: None,
            batch_size: c.batch_size,
            queue_buffer_size: c.batches_in_flight,
            sample_interval: Dur(f.sample_interval),
            time_scale: f.time_scale,
            start_time: humantime::format_rfc3339(
                std::time::UNIX_EPOCH + Duration::from_secs(f.start_s as u64),
            )
            .to_string(),
            data_variation: f.data_variation,
            anomaly_rate: f.anomaly_rate,
            anomaly_weights: f.anomaly_weights,
            trend_enabled: f.trend_strength > 0.0,
            trend_strength: f.trend_strength,
            switch_on_probability: f.switch_on_probability,
            switch_dwell: f.switch_dwell,
            buildings: f.buildings,
            floors_per_building: f.floors_per_building,
            rooms_per_floor: f.rooms_per_floor,
            devices_per_room: f.devices_per_room,
            models: f.models,
            firmwares: f.firmwares,
        }
    }
}

impl Default for Thresholds {
    fn default() -> Self {
        let f = FleetSpec::default();
        Self {
            temperature: f.temperature,
            humidity: f.humidity,
            pressure: f.pressure,
            current: f.current,
        }
    }
}

impl Default for RunSettings {
    fn default() -> Self {
        Self {
            rate: None,
            duration: None,
            messages: None,
            seed: None,
            instance_index: 0,
            instance_count: 1,
            report_interval: Dur(Config::new(SinkConfig::Null).report_interval),
        }
    }
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            level: "info".into(),
        }
    }
}

// ---------------------------------------------------------------------------------
// Value types: durations, counts, broker lists, secrets.

/// A duration written as `100ms`, `3s`, `5m` or `1h 30m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(self.0).to_string())
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        config::parse_duration("", &text)
            .map(Dur)
            .map_err(|e| serde::de::Error::custom(e.message))
    }
}

impl JsonSchema for Dur {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "string", "description": "e.g. 100ms, 3s, 5m, 1h 30m" })
    }
}

/// A count written as a number or with a `k`, `m` or `g` suffix (`10k`, `1.5m`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Count(pub u64);

impl Serialize for Count {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(i64),
            Float(f64),
            Text(String),
        }
        let text = match Raw::deserialize(d)? {
            Raw::Int(i) => i.to_string(),
            Raw::Float(f) => f.to_string(),
            Raw::Text(t) => t,
        };
        config::parse_count("", &text)
            .map(Count)
            .map_err(|e| serde::de::Error::custom(e.message))
    }
}

impl JsonSchema for Count {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Count".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": ["integer", "string"], "description": "e.g. 10000, 10k, 1m" })
    }
}

/// Bootstrap servers: a YAML list or one comma-separated string.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Brokers(pub Vec<String>);

impl Serialize for Brokers {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Brokers {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            List(Vec<String>),
            Text(String),
        }
        Ok(match Raw::deserialize(d)? {
            Raw::List(l) => Brokers::from_iter(l.iter().map(String::as_str)),
            Raw::Text(t) => Brokers::parse(&t),
        })
    }
}

impl Brokers {
    /// A comma-separated list (`host1:9092,host2:9092`), as in a flag or a YAML string.
    pub fn parse(list: &str) -> Self {
        Self::from_iter(list.split(','))
    }

    /// Trimmed entries, empty ones dropped.
    fn from_iter<'a>(entries: impl Iterator<Item = &'a str>) -> Self {
        Brokers(
            entries
                .map(str::trim)
                .filter(|b| !b.is_empty())
                .map(str::to_owned)
                .collect(),
        )
    }
}

impl JsonSchema for Brokers {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Brokers".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": ["array", "string"], "items": { "type": "string" } })
    }
}

/// A secret: read like a string, but shown as `***` by `Debug`, `Display` and when
/// serialised (so `config print` and logs never reveal it).
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The secret itself; only for handing to librdkafka.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("***")
    }
}

impl JsonSchema for Secret {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Secret".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "string", "writeOnly": true })
    }
}

// ---------------------------------------------------------------------------------
// Loading and merging.

impl Settings {
    /// Defaults, then `file` (if any), then the `IOTBLAST_*` variables in `env`.
    /// Returns the settings and warnings (unknown environment variables).
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(Settings, Vec<String>), ConfigError> {
        let mut merged = yaml_serde::to_value(Settings::default()).expect("defaults serialise");
        let defaults = merged.clone();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                ConfigError::new(path.display().to_string(), format!("cannot read: {e}"))
            })?;
            let layer = parse_yaml(path, &text)?;
            check_keys(&layer, &defaults, "")?;
            merge(&mut merged, layer);
        }
        let warnings = apply_env(&mut merged, &defaults, env);
        let settings = deserialize(merged)?;
        Ok((settings, warnings))
    }

    /// Parses one file on its own (over defaults, no environment), for `config check`.
    pub fn from_file(path: &Path) -> Result<Settings, ConfigError> {
        Settings::load(Some(path), std::iter::empty()).map(|(s, _)| s)
    }

    /// The effective settings as YAML, secrets shown as `***`.
    pub fn to_yaml(&self) -> String {
        yaml_serde::to_string(self).expect("settings serialise")
    }

    /// Checks every rule and builds the frozen engine config.
    pub fn to_config(&self) -> Result<Config, ConfigError> {
        let sim = &self.device.simulator;
        let run = &self.run;
        let k = &self.kafka;
        if sim.device_count.0 == 0 || sim.device_count.0 > MAX_DEVICES {
            return Err(ConfigError::new(
                "device.simulator.device_count",
                format!(
                    "must be between 1 and {MAX_DEVICES}, got {}",
                    sim.device_count.0
                ),
            ));
        }
        if let Some(0) = sim.worker_pool_size {
            return Err(ConfigError::new(
                "device.simulator.worker_pool_size",
                "must be at least 1, got 0 (leave it out for available cores minus one)",
            ));
        }
        if k.producer.idempotence && k.producer.required_acks != -1 {
            return Err(ConfigError::new(
                "kafka.producer.idempotence",
                format!(
                    "requires required_acks: -1 (all replicas), got required_acks: {}; set required_acks: -1 or idempotence: false",
                    k.producer.required_acks
                ),
            ));
        }
        if log_level(&self.log.level).is_none() {
            return Err(ConfigError::new(
                "log.level",
                format!(
                    "must be off, error, warn, info, debug or trace, got '{}'",
                    self.log.level
                ),
            ));
        }
        if ![-1, 0, 1].contains(&k.producer.required_acks) {
            return Err(ConfigError::new(
                "kafka.producer.required_acks",
                format!("must be -1 (all), 0 or 1, got {}", k.producer.required_acks),
            ));
        }
        let mut c = Config::new(SinkConfig::Kafka(KafkaConfig {
            brokers: (!k.brokers.0.is_empty()).then(|| k.brokers.0.join(",")),
            topic: k.topics.device_data.clone(),
            alerts_topic: (!k.topics.alerts.is_empty()).then(|| k.topics.alerts.clone()),
            partitions: k.partitions,
            replication_factor: k.replication_factor,
            create_topic: k.create_topic,
            properties: self.librdkafka_properties()?,
            connect_timeout: k.connect_timeout.0,
        }));
        c.devices = sim.device_count.0;
        c.cores = sim.worker_pool_size.unwrap_or_else(config::default_cores);
        c.batch_size = sim.batch_size;
        c.batches_in_flight = sim.queue_buffer_size;
        c.fleet = self.fleet_spec()?;
        c.rate = run.rate.map(|r| r.0 as f64).filter(|r| *r > 0.0);
        c.duration = run.duration.map(|d| d.0);
        c.messages = run.messages.map(|m| m.0);
        c.instance_index = run.instance_index;
        c.instance_count = run.instance_count;
        (c.seed, c.seed_was_random) = match run.seed {
            Some(s) => (s, false),
            None => (random_seed(), true),
        };
        c.report_interval = run.report_interval.0;
        c.flush_timeout = k.flush_timeout.0;
        c.metrics_address = socket_address("metrics.address", &self.metrics.address)?;
        c.http_address = socket_address("http.address", &self.http.address)?;
        c.validate()?;
        Ok(c)
    }

    /// The fleet description from `device`; checked by `FleetSpec::validate`.
    pub fn fleet_spec(&self) -> Result<FleetSpec, ConfigError> {
        let sim = &self.device.simulator;
        let start = humantime::parse_rfc3339_weak(&sim.start_time)
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .ok_or_else(|| {
                ConfigError::new(
                    "device.simulator.start_time",
                    format!(
                        "must be an RFC 3339 time after 1970 such as 2026-01-01T00:00:00Z, got '{}'",
                        sim.start_time
                    ),
                )
            })?;
        let t = &self.device.thresholds;
        Ok(FleetSpec {
            temperature: t.temperature,
            humidity: t.humidity,
            pressure: t.pressure,
            current: t.current,
            switch_on_probability: sim.switch_on_probability,
            buildings: sim.buildings.clone(),
            floors_per_building: sim.floors_per_building,
            rooms_per_floor: sim.rooms_per_floor,
            devices_per_room: sim.devices_per_room,
            models: sim.models.clone(),
            firmwares: sim.firmwares.clone(),
            data_variation: sim.data_variation,
            switch_dwell: sim.switch_dwell,
            trend_strength: if sim.trend_enabled {
                sim.trend_strength
            } else {
                0.0
            },
            sample_interval: sim.sample_interval.0,
            time_scale: sim.time_scale,
            start_s: start.as_secs() as i64,
            anomaly_rate: sim.anomaly_rate,
            anomaly_weights: sim.anomaly_weights,
        })
    }

    /// librdkafka properties from `kafka.producer`, `kafka.security` and
    /// `kafka.librdkafka`, in that order (later wins).
    pub fn librdkafka_properties(&self) -> Result<Vec<(String, String)>, ConfigError> {
        let s = &self.kafka.security;
        let mut props = self.kafka.producer.properties();
        props.push(("security.protocol".into(), s.protocol.as_str().into()));
        if let Some(m) = &s.sasl_mechanism {
            if !s.protocol.is_sasl() {
                return Err(ConfigError::new(
                    "kafka.security.sasl_mechanism",
                    format!(
                        "'{m}' needs protocol sasl_plaintext or sasl_ssl, got {}; set kafka.security.protocol",
                        s.protocol.as_str()
                    ),
                ));
            }
            props.push(("sasl.mechanisms".into(), m.clone()));
        } else if s.protocol.is_sasl() {
            return Err(ConfigError::new(
                "kafka.security.sasl_mechanism",
                format!(
                    "must be set with protocol {} (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)",
                    s.protocol.as_str()
                ),
            ));
        }
        if let Some(u) = &s.username {
            props.push(("sasl.username".into(), u.clone()));
        }
        match (&s.password, &s.password_file) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::new(
                    "kafka.security.password_file",
                    "conflicts with kafka.security.password; set only one",
                ))
            }
            (Some(pw), None) => props.push(("sasl.password".into(), pw.expose().to_owned())),
            (None, Some(path)) => {
                let pw = std::fs::read_to_string(path).map_err(|e| {
                    ConfigError::new(
                        "kafka.security.password_file",
                        format!("cannot read '{}': {e}", path.display()),
                    )
                })?;
                props.push((
                    "sasl.password".into(),
                    pw.trim_end_matches(['\n', '\r']).to_owned(),
                ));
            }
            (None, None) => {}
        }
        for (key, path) in [
            ("ssl.ca.location", &s.ca_location),
            ("ssl.certificate.location", &s.certificate_location),
            ("ssl.key.location", &s.key_location),
        ] {
            if let Some(p) = path {
                props.push((key.into(), p.display().to_string()));
            }
        }
        if let Some(kp) = &s.key_password {
            props.push(("ssl.key.password".into(), kp.expose().to_owned()));
        }
        props.extend(
            self.kafka
                .librdkafka
                .iter()
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        Ok(props)
    }
}

/// The `log` filter for a `log.level` value.
pub fn log_level(level: &str) -> Option<log::LevelFilter> {
    level.trim().parse().ok()
}

/// A seed from the OS's randomness (std seeds `RandomState` from it).
pub fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(std::process::id() as u64);
    h.finish()
}

fn parse_yaml(path: &Path, text: &str) -> Result<Value, ConfigError> {
    let v: Value = yaml_serde::from_str(text).map_err(|e| {
        let at = e
            .location()
            .map(|l| format!(" at line {}, column {}", l.line(), l.column()))
            .unwrap_or_default();
        ConfigError::new(path.display().to_string(), format!("invalid YAML{at}: {e}"))
    })?;
    match v {
        Value::Null => Ok(Value::Mapping(Mapping::new())),
        Value::Mapping(_) => Ok(v),
        _ => Err(ConfigError::new(
            path.display().to_string(),
            "must be a YAML mapping (kafka:, device:, run:, log:)",
        )),
    }
}

/// Rejects keys the schema does not know, naming the path and the closest known key.
fn check_keys(layer: &Value, schema: &Value, path: &str) -> Result<(), ConfigError> {
    let (Value::Mapping(layer), Value::Mapping(known)) = (layer, schema) else {
        return Ok(());
    };
    if FREE_MAPS.contains(&path) {
        return Ok(());
    }
    for (key, value) in layer {
        let Some(name) = key.as_str() else {
            return Err(ConfigError::new(
                join(path, &format!("{key:?}")),
                "keys must be strings",
            ));
        };
        let here = join(path, name);
        match known.get(name).or_else(|| known.get(alias_of(&here)?)) {
            Some(sub) => check_keys(value, sub, &here)?,
            None => {
                let names = known.keys().filter_map(Value::as_str);
                let hint = suggest(name, names)
                    .map(|s| format!("; did you mean '{s}'?"))
                    .unwrap_or_default();
                return Err(ConfigError::new(here, format!("unknown key{hint}")));
            }
        }
    }
    Ok(())
}

/// The canonical key for an accepted alias (the serde aliases above).
fn alias_of(path: &str) -> Option<&'static str> {
    match path {
        "kafka.producer.batch_timeout" => Some("linger"),
        "device.simulator.cores" => Some("worker_pool_size"),
        _ => None,
    }
}

/// The known name closest to `name`, if it is close enough to be a likely typo.
fn suggest<'a>(name: &str, known: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    known
        .map(|k| (strsim::jaro_winkler(name, k), k))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k)
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// Deep merge: mappings merge key by key; anything else in `layer` replaces `base`.
fn merge(base: &mut Value, layer: Value) {
    match (base, layer) {
        (Value::Mapping(b), Value::Mapping(l)) => {
            for (k, v) in l {
                match b.get_mut(&k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

/// Applies `IOTBLAST_<PATH>` variables. Each value is read as a YAML scalar (so `777`
/// is a number and `a:1,b:2` a string). Unknown `IOTBLAST_` names are returned as
/// warnings, with a suggestion, rather than errors: other tools share the prefix.
fn apply_env(
    merged: &mut Value,
    defaults: &Value,
    env: impl IntoIterator<Item = (String, String)>,
) -> Vec<String> {
    let mut paths = Vec::new();
    leaf_paths(defaults, "", &mut paths);
    let mut warnings = Vec::new();
    let mut vars: Vec<(String, String)> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with(ENV_PREFIX))
        .collect();
    vars.sort();
    for (name, raw) in vars {
        let Some(path) = paths.iter().find(|p| env_name(p) == name) else {
            let names: Vec<String> = paths.iter().map(|p| env_name(p)).collect();
            // A shortened path (IOTBLAST_DEVICE_COUNT) is best matched by its tail.
            let tail = format!("_{}", &name[ENV_PREFIX.len()..]);
            let hint = names
                .iter()
                .find(|n| n.ends_with(&tail))
                .map(String::as_str)
                .or_else(|| suggest(&name, names.iter().map(String::as_str)))
                .map(|s| format!("; did you mean {s}?"))
                .unwrap_or_default();
            warnings.push(format!("ignoring {name}: not a setting{hint}"));
            continue;
        };
        let value: Value = yaml_serde::from_str(&raw).unwrap_or(Value::String(raw.clone()));
        let value = match value {
            // A bare string that looks like YAML structure stays a string.
            Value::Mapping(_) | Value::Tagged(_) => Value::String(raw),
            v => v,
        };
        set_path(merged, path, value);
    }
    warnings
}

/// `device.simulator.device_count` → `IOTBLAST_DEVICE_SIMULATOR_DEVICE_COUNT`.
pub fn env_name(path: &str) -> String {
    format!("{ENV_PREFIX}{}", path.replace('.', "_").to_uppercase())
}

fn leaf_paths(v: &Value, path: &str, out: &mut Vec<String>) {
    match v {
        Value::Mapping(m) if !FREE_MAPS.contains(&path) => {
            for (k, sub) in m {
                if let Some(k) = k.as_str() {
                    leaf_paths(sub, &join(path, k), out);
                }
            }
        }
        Value::Mapping(_) => {}
        _ => out.push(path.to_owned()),
    }
}

fn set_path(root: &mut Value, path: &str, value: Value) {
    let mut node = root;
    for part in path.split('.') {
        let Value::Mapping(m) = node else { return };
        node = m
            .entry(Value::String(part.to_owned()))
            .or_insert(Value::Null);
    }
    *node = value;
}

fn deserialize(merged: Value) -> Result<Settings, ConfigError> {
    serde_path_to_error::deserialize(merged).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        ConfigError::new(path, inner)
    })
}

// ---------------------------------------------------------------------------------
// `config default`: the defaults as a commented YAML file.

/// The default settings as YAML, each key preceded by its `///` documentation.
pub fn default_yaml_commented() -> String {
    let schema = schemars::schema_for!(Settings);
    let root = schema.as_value();
    let defaults = yaml_serde::to_value(Settings::default()).expect("defaults serialise");
    let mut out = String::from(
        "# iotblast configuration: the built-in defaults, with what each setting does.\n\
         # Precedence: built-in defaults < this file (--config) < IOTBLAST_* environment < flags.\n\
         # Environment names are IOTBLAST_ plus the dotted path in upper snake case,\n\
         # e.g. IOTBLAST_DEVICE_SIMULATOR_DEVICE_COUNT=5000.\n",
    );
    render(root, root, &defaults, 0, &mut out);
    out
}

fn resolve<'a>(root: &'a serde_json::Value, s: &'a serde_json::Value) -> &'a serde_json::Value {
    match s.get("$ref").and_then(|r| r.as_str()) {
        Some(r) => r
            .strip_prefix("#/")
            .map(|p| p.split('/').fold(root, |v, part| &v[part]))
            .unwrap_or(s),
        None => s,
    }
}

fn render(
    root: &serde_json::Value,
    schema: &serde_json::Value,
    value: &Value,
    depth: usize,
    out: &mut String,
) {
    let schema = resolve(root, schema);
    let Value::Mapping(map) = value else { return };
    let indent = "  ".repeat(depth);
    for (k, v) in map {
        let Some(key) = k.as_str() else { continue };
        // The field's own doc wins over its type's (a `$ref` sibling in schemars 1).
        let field = &schema["properties"][key];
        let prop = resolve(root, field);
        let doc = field
            .get("description")
            .or_else(|| prop.get("description"))
            .and_then(|d| d.as_str())
            .unwrap_or("");
        if depth == 0 {
            out.push('\n');
        }
        for line in doc.lines() {
            out.push_str(&format!("{indent}# {line}\n"));
        }
        match v {
            Value::Mapping(m) if !m.is_empty() => {
                out.push_str(&format!("{indent}{key}:\n"));
                render(root, prop, v, depth + 1, out);
            }
            Value::Sequence(seq) if !seq.is_empty() => {
                out.push_str(&format!("{indent}{key}:\n"));
                for line in yaml_serde::to_string(v).expect("list serialises").lines() {
                    out.push_str(&format!("{indent}  {line}\n"));
                }
            }
            _ => {
                let scalar = yaml_serde::to_string(v).expect("scalar serialises");
                out.push_str(&format!("{indent}{key}: {}\n", scalar.trim_end()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_round_trip_through_yaml() {
        let text = default_yaml_commented();
        let back: Settings = yaml_serde::from_str(&text).expect("commented defaults parse");
        assert_eq!(back, Settings::default());
        assert!(text.contains("# Number of simulated devices"), "{text}");
        Settings::default().to_config().expect("defaults are valid");
    }

    #[test]
    fn env_names_follow_the_dotted_path() {
        assert_eq!(
            env_name("device.simulator.device_count"),
            "IOTBLAST_DEVICE_SIMULATOR_DEVICE_COUNT"
        );
    }

    #[test]
    fn secrets_never_show() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s} {s:?}"), "*** ***");
        assert_eq!(yaml_serde::to_string(&s).unwrap().trim(), "'***'");
    }
}
