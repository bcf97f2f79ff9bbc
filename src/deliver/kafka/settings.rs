//! The `kafka:` section: connection, topics, producer tuning and security, and the
//! librdkafka properties they become. Secrets are a type of their own that never
//! prints its value.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use rdkafka::config::RDKafkaLogLevel;
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::ConfigError;
use crate::units::{in_range, Dur};

/// Our librdkafka defaults that have no setting of their own, tuned for throughput.
/// The others (linger, batch.num.messages, ...) are `ProducerSettings`'s defaults.
/// `kafka.librdkafka` and `-X` override any of them.
pub const PRODUCER_DEFAULTS: &[(&str, &str)] = &[
    ("batch.size", "1000000"),
    // Bound librdkafka's queue to 16 MiB (about 33k readings). The 1 GiB default lets a
    // slow cluster balloon the process, and a full queue only adds latency. Payloads are
    // not copied, so the queue is the workers' batches, and each worker's pool is sized
    // to hold its share (engine::held_batches). Against the mock (10k devices, alerts
    // off, 3 rounds): 16, 24 and 32 MiB gave the same throughput (1.31-1.39 M msgs/s),
    // p99 latency of 32, 44 and 57 ms and peak RSS of 113, 130 and 142 MB. A full
    // queue pushes back (QueueFull) to the delivery thread and from there to the
    // workers. 16 MiB holds 25 ms at 650 MB/s: enough for linger plus a LAN's RTT; a
    // far cluster needs more (throughput is at most queue / round trip), so raise it
    // with -X for one.
    ("queue.buffering.max.kbytes", "16384"),
    // Java's default for keyed records: a device lands in the same partition as it would
    // from a Java producer, so pipelines mixing clients agree on placement.
    ("partitioner", "murmur2_random"),
    // Statistics once a second give the summary librdkafka's retry count; parsing
    // them costs well under a millisecond per second.
    ("statistics.interval.ms", "1000"),
];

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
    /// Partitions of a topic that iotblast creates, 1 to 10000.
    pub partitions: i32,
    /// Replication factor of a topic that iotblast creates, 1 to 100; -1 is the broker
    /// default.
    pub replication_factor: i32,
    /// librdkafka producers the delivery thread drives, 1 to 16. Each owns the
    /// partitions p with p mod N = its index, so a key still goes through one client in
    /// order, and has its own connections, I/O threads and 1/N of the queue limits
    /// (queue.buffering.max.kbytes and .messages). librdkafka copies every payload into
    /// its requests on one I/O thread per broker connection, which is the bottleneck of
    /// a single producer: the default of 2 was 1.2-1.25x one producer on a 2-core
    /// machine (perf/RESULTS.md). 1 gives one connection per broker, as most clients.
    pub producers: u32,
    /// Give up at startup if the brokers cannot be reached within this time (up to 1 day).
    pub connect_timeout: Dur,
    /// How long shutdown waits for outstanding acks before counting them as failed (up
    /// to 1 day).
    pub flush_timeout: Dur,
    /// The embedded mock cluster, started when `brokers` is empty.
    pub mock: MockSettings,
    /// Producer tuning; each maps to a librdkafka property.
    pub producer: ProducerSettings,
    /// TLS and SASL.
    pub security: SecuritySettings,
    /// Any librdkafka property, passed through verbatim; applied after everything above.
    /// Values of secret-looking keys (passwords, secrets, tokens, keys, OAuth) are
    /// shown as ***.
    pub librdkafka: Properties,
}

impl Default for KafkaSettings {
    fn default() -> Self {
        Self {
            brokers: Brokers::default(),
            topics: Topics::default(),
            create_topic: true,
            partitions: 12,
            replication_factor: -1,
            producers: 2,
            connect_timeout: Dur(Duration::from_secs(10)),
            flush_timeout: Dur(Duration::from_secs(30)),
            mock: MockSettings::default(),
            producer: ProducerSettings::default(),
            security: SecuritySettings::default(),
            librdkafka: Properties::default(),
        }
    }
}

/// The embedded mock cluster (librdkafka's, in-process), for zero-setup runs and for
/// checking latency and faults against known values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct MockSettings {
    /// Brokers in the mock cluster, 1 to 16.
    pub brokers: u32,
    /// Round-trip time every mock broker adds to each request, up to 60s.
    pub rtt: Dur,
}

impl Default for MockSettings {
    fn default() -> Self {
        Self {
            brokers: 1,
            rtt: Dur::ms(0),
        }
    }
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

impl Default for Topics {
    fn default() -> Self {
        Self {
            device_data: "device-data".into(),
            alerts: "alerts".into(),
        }
    }
}

/// Producer tuning. Defaults favour throughput; see `deliver/kafka` for why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ProducerSettings {
    /// `client.id`.
    pub client_id: String,
    /// Messages per MessageSet, 1 to 1000000 (`batch.num.messages`; librdkafka's
    /// default is 10000).
    pub batch_size: u32,
    /// How long to wait to fill a MessageSet (`linger.ms`; librdkafka's default is 5ms).
    /// Also accepted as `batch_timeout`.
    #[serde(alias = "batch_timeout")]
    pub linger: Dur,
    /// `compression.type`: none, gzip, snappy, lz4 or zstd.
    pub compression_type: Compression,
    /// Retries of a failed produce request, 0 to 2147483647 (`retries`; librdkafka's
    /// default 2147483647).
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
    /// Messages librdkafka may hold in its queue, 1 to 10000000
    /// (`queue.buffering.max.messages`; its memory is also capped at 16 MiB).
    pub channel_buffer_size: u32,
}

impl Default for ProducerSettings {
    /// Tuned for throughput; the remaining tuned properties are in
    /// `deliver::kafka::PRODUCER_DEFAULTS`.
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
            // Together with the 16 MiB cap in PRODUCER_DEFAULTS, bounds librdkafka's queue.
            channel_buffer_size: 500_000,
        }
    }
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

impl KafkaSettings {
    /// `bootstrap.servers`, or `None` for the embedded mock cluster.
    pub fn bootstrap(&self) -> Option<String> {
        (!self.brokers.0.is_empty()).then(|| self.brokers.0.join(","))
    }

    /// The alerts topic, or `None` when alerts are off.
    pub fn alerts_topic(&self) -> Option<&str> {
        Some(self.topics.alerts.as_str()).filter(|t| !t.is_empty())
    }

    /// The topics produced to: readings, then alerts if on.
    pub fn topics(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.topics.device_data.as_str()).chain(self.alerts_topic())
    }

    /// Whether the producer is idempotent: `kafka.producer.idempotence`, unless
    /// `kafka.librdkafka` (`-X`) sets `enable.idempotence`, which is applied after it.
    pub fn idempotent(&self) -> bool {
        match self.librdkafka.get("enable.idempotence") {
            Some(v) => v.trim() == "true",
            None => self.producer.idempotence,
        }
    }

    /// Whether every in-sync replica must acknowledge a write (`acks=all`):
    /// `kafka.producer.required_acks`, unless `kafka.librdkafka` sets `acks` or its
    /// alias `request.required.acks`.
    pub fn acks_all(&self) -> bool {
        match ["acks", "request.required.acks"]
            .iter()
            .find_map(|k| self.librdkafka.get(*k))
        {
            Some(v) => matches!(v.trim(), "-1" | "all"),
            None => self.producer.required_acks == -1,
        }
    }

    /// How long a message may wait for its acknowledgement: `kafka.producer.timeout`,
    /// unless `kafka.librdkafka` sets `message.timeout.ms` or its alias
    /// `delivery.timeout.ms` (both applied after it, `message.` last). An unreadable
    /// value is left to librdkafka, which rejects it at start-up.
    pub fn message_timeout(&self) -> Duration {
        ["message.timeout.ms", "delivery.timeout.ms"]
            .iter()
            .find_map(|k| self.librdkafka.get(*k))
            .and_then(|v| v.trim().parse().ok())
            .map_or(self.producer.timeout.0, Duration::from_millis)
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        topic_name("kafka.topics.device_data", &self.topics.device_data)?;
        if let Some(alerts) = self.alerts_topic() {
            topic_name("kafka.topics.alerts", alerts)?;
            if alerts == self.topics.device_data {
                return Err(ConfigError::new(
                    "kafka.topics.alerts",
                    format!("must differ from kafka.topics.device_data, both are '{alerts}'; leave it empty to turn alerts off"),
                ));
            }
        }
        in_range("kafka.partitions", self.partitions, 1, 10_000)?;
        in_range("kafka.producers", self.producers, 1, 16)?;
        if self.replication_factor == 0 || !(-1..=100).contains(&self.replication_factor) {
            return Err(ConfigError::new(
                "kafka.replication_factor",
                format!(
                    "must be -1 (broker default) or 1 to 100, got {}",
                    self.replication_factor
                ),
            ));
        }
        if self.connect_timeout.0.is_zero() {
            return Err(ConfigError::new(
                "kafka.connect_timeout",
                "must be greater than 0",
            ));
        }
        self.validate_timeouts()?;
        let p = &self.producer;
        if ![-1, 0, 1].contains(&p.required_acks) {
            return Err(ConfigError::new(
                "kafka.producer.required_acks",
                format!("must be -1 (all), 0 or 1, got {}", p.required_acks),
            ));
        }
        if p.idempotence && p.required_acks != -1 {
            return Err(ConfigError::new(
                "kafka.producer.idempotence",
                format!(
                    "requires required_acks: -1 (all replicas), got required_acks: {}; set required_acks: -1 or idempotence: false",
                    p.required_acks
                ),
            ));
        }
        self.validate_mock()?;
        self.validate_api_versions()?;
        self.security.validate()?;
        // Assembling the properties reads `security.password_file`: a missing file is a
        // configuration error now, not a failure once the run has started.
        self.librdkafka_properties().map(|_| ())
    }

    /// The producer's client config for `bootstrap`: our defaults, then every
    /// configured property on top.
    pub fn client_config(&self, bootstrap: &str) -> Result<rdkafka::ClientConfig, ConfigError> {
        let mut cfg = new_config();
        cfg.set("bootstrap.servers", bootstrap);
        for (key, value) in PRODUCER_DEFAULTS {
            cfg.set(*key, *value);
        }
        for (key, value) in self.librdkafka_properties()? {
            cfg.set(key, value);
        }
        Ok(cfg)
    }

    /// A consumer's client config for `bootstrap` (for `verify`): the connection and
    /// security settings and every `librdkafka` property, without the producer tuning.
    /// librdkafka itself warns about a producer-only property it then ignores.
    pub fn consumer_config(&self, bootstrap: &str) -> Result<rdkafka::ClientConfig, ConfigError> {
        let mut cfg = new_config();
        cfg.set("bootstrap.servers", bootstrap)
            .set("client.id", &self.producer.client_id)
            // librdkafka assigns partitions only within a group; verify commits nothing
            // and reads from the beginning, so the group's name does not matter.
            .set("group.id", "iotblast-verify")
            .set("enable.auto.commit", "false")
            // Some brokers (Tansu 0.6.0) hold every fetch for the full wait even with
            // data ready: at librdkafka's 500 ms default verify read 44k msg/s from a
            // local Tansu, at 10 ms 525k (scripts/bench-verify.sh). An idle wait this
            // short costs a few empty fetches per second.
            .set("fetch.wait.max.ms", "10")
            .set("enable.partition.eof", "false");
        for (key, value) in self.security.properties()? {
            cfg.set(key, value);
        }
        for (key, value) in &self.librdkafka.0 {
            cfg.set(key, value);
        }
        Ok(cfg)
    }

    /// Checks the producer properties with librdkafka itself, without creating a
    /// client, so a property it rejects is reported with librdkafka's own message.
    pub fn check_with_librdkafka(&self) -> Result<(), ConfigError> {
        let bootstrap = self.bootstrap();
        self.client_config(bootstrap.as_deref().unwrap_or("127.0.0.1:9092"))?
            .create_native_config()
            .map(|_| ())
            .map_err(|e| {
                // librdkafka's error carries the value too; a value may be a secret, so
                // only its message (which names the property) is shown.
                let reason = match e {
                    rdkafka::error::KafkaError::ClientConfig(_, message, _, _) => message,
                    other => other.to_string(),
                };
                ConfigError::new(
                    "kafka.librdkafka",
                    format!("librdkafka rejected the producer configuration: {reason}"),
                )
            })
    }

    /// Producer numbers and durations are within what librdkafka takes: milliseconds in
    /// an i32, which wrap past ~24.8 days, and its own maxima for the rest.
    fn validate_timeouts(&self) -> Result<(), ConfigError> {
        let p = &self.producer;
        in_range("kafka.producer.batch_size", p.batch_size, 1, 1_000_000)?;
        in_range(
            "kafka.producer.max_retries",
            p.max_retries,
            0,
            i32::MAX as u32,
        )?;
        in_range(
            "kafka.producer.channel_buffer_size",
            p.channel_buffer_size,
            1,
            10_000_000,
        )?;
        let d = |key, v, lo, hi| in_range(key, v, lo, hi);
        d(
            "kafka.connect_timeout",
            self.connect_timeout,
            Dur::ms(1),
            Dur::days(1),
        )?;
        d(
            "kafka.flush_timeout",
            self.flush_timeout,
            Dur::ms(0),
            Dur::days(1),
        )?;
        let p = &self.producer;
        d(
            "kafka.producer.linger",
            p.linger,
            Dur::ms(0),
            Dur::ms(900_000),
        )?;
        d(
            "kafka.producer.retry_backoff",
            p.retry_backoff,
            Dur::ms(1),
            Dur::ms(300_000),
        )?;
        d(
            "kafka.producer.timeout",
            p.timeout,
            Dur::ms(0),
            Dur::days(24),
        )
    }

    /// librdkafka asks the brokers which request versions they take.
    fn validate_api_versions(&self) -> Result<(), ConfigError> {
        // Without ApiVersion, librdkafka speaks the request versions of
        // broker.version.fallback (0.10.0 by default), which brokers from Kafka 4.0 on no
        // longer take (KIP-896): they close the connection on the first produce request,
        // and every reading of the run would end in doubt.
        if let Some(v) = self.librdkafka.get("api.version.request") {
            if matches!(v.to_ascii_lowercase().as_str(), "false" | "f" | "0") {
                return Err(ConfigError::new(
                    "kafka.librdkafka",
                    format!("api.version.request={v}: librdkafka would guess the brokers' request versions from broker.version.fallback instead of asking, and brokers from Kafka 4.0 on close the connection on the old versions it guesses, so nothing would be delivered; drop it (every broker since Kafka 0.10 answers the request)"),
                ));
            }
        }
        Ok(())
    }

    /// The mock cluster's settings are in range, apply (no brokers given), and are not
    /// bypassed by librdkafka's own `test.mock.*` properties.
    fn validate_mock(&self) -> Result<(), ConfigError> {
        in_range("kafka.mock.brokers", self.mock.brokers, 1, 16)?;
        in_range("kafka.mock.rtt", self.mock.rtt, Dur::ms(0), Dur::ms(60_000))?;
        if self.bootstrap().is_some() && self.mock != MockSettings::default() {
            return Err(ConfigError::new(
                "kafka.mock",
                "applies only to the embedded mock cluster; drop it or kafka.brokers",
            ));
        }
        if let Some(key) = self.librdkafka.keys().find(|k| k.starts_with("test.mock.")) {
            return Err(ConfigError::new(
                "kafka.librdkafka",
                format!(
                    "{key}: librdkafka's test.mock.* properties are not passed through, since iotblast runs the mock cluster itself; use kafka.mock.brokers (--mock-brokers) and kafka.mock.rtt (--mock-rtt)"
                ),
            ));
        }
        Ok(())
    }

    /// librdkafka properties from `producer`, `security` and `librdkafka`, in that
    /// order (later wins). Reads `security.password_file`.
    pub fn librdkafka_properties(&self) -> Result<Vec<(String, String)>, ConfigError> {
        let mut props = self.producer.properties();
        props.extend(self.security.properties()?);
        props.extend(self.librdkafka.iter().map(|(k, v)| (k.clone(), v.clone())));
        Ok(props)
    }
}

impl ProducerSettings {
    /// These settings as librdkafka properties.
    pub fn properties(&self) -> Vec<(String, String)> {
        let ms = |d: &Dur| d.0.as_millis().to_string();
        [
            ("client.id", self.client_id.clone()),
            ("batch.num.messages", self.batch_size.to_string()),
            ("linger.ms", ms(&self.linger)),
            ("compression.type", self.compression_type.as_str().into()),
            ("retries", self.max_retries.to_string()),
            ("retry.backoff.ms", ms(&self.retry_backoff)),
            ("acks", self.required_acks.to_string()),
            ("enable.idempotence", self.idempotence.to_string()),
            ("message.timeout.ms", ms(&self.timeout)),
            (
                "queue.buffering.max.messages",
                self.channel_buffer_size.to_string(),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }
}

/// The SASL mechanisms iotblast's librdkafka is built with (no GSSAPI: it has no
/// Kerberos library). OAUTHBEARER takes its settings from `sasl.oauthbearer.*` in
/// `kafka.librdkafka`.
const SASL_MECHANISMS: &[&str] = &["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"];

/// Why `m` is not a mechanism: librdkafka would refuse it only when the client is
/// created, as a bare "Unsupported SASL mechanism".
fn unknown_mechanism(m: &str) -> String {
    let upper = m.to_ascii_uppercase();
    if SASL_MECHANISMS.contains(&upper.as_str()) {
        return format!("'{m}' must be written in upper case: {upper}");
    }
    format!(
        "'{m}' is not a SASL mechanism iotblast supports; use PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (or OAUTHBEARER, with sasl.oauthbearer.* in kafka.librdkafka)"
    )
}

impl SecuritySettings {
    fn validate(&self) -> Result<(), ConfigError> {
        match (&self.sasl_mechanism, self.protocol.is_sasl()) {
            (Some(m), false) => Err(ConfigError::new(
                "kafka.security.sasl_mechanism",
                format!(
                    "'{m}' needs protocol sasl_plaintext or sasl_ssl, got {}; set kafka.security.protocol",
                    self.protocol.as_str()
                ),
            )),
            (None, true) => Err(ConfigError::new(
                "kafka.security.sasl_mechanism",
                format!(
                    "must be set with protocol {} (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)",
                    self.protocol.as_str()
                ),
            )),
            (Some(m), true) if !SASL_MECHANISMS.contains(&m.as_str()) => {
                Err(ConfigError::new(
                    "kafka.security.sasl_mechanism",
                    unknown_mechanism(m),
                ))
            }
            _ if self.password.is_some() && self.password_file.is_some() => Err(ConfigError::new(
                "kafka.security.password_file",
                "conflicts with kafka.security.password; set only one",
            )),
            _ => Ok(()),
        }
    }

    /// These settings as librdkafka properties; reads `password_file`.
    fn properties(&self) -> Result<Vec<(String, String)>, ConfigError> {
        let mut props = vec![(
            "security.protocol".to_owned(),
            self.protocol.as_str().into(),
        )];
        let mut set = |k: &str, v: &str| props.push((k.to_owned(), v.to_owned()));
        if let Some(m) = &self.sasl_mechanism {
            set("sasl.mechanisms", m);
        }
        if let Some(u) = &self.username {
            set("sasl.username", u);
        }
        if let Some(pw) = &self.password {
            set("sasl.password", pw.expose());
        }
        if let Some(path) = &self.password_file {
            let pw = std::fs::read_to_string(path).map_err(|e| {
                ConfigError::new(
                    "kafka.security.password_file",
                    format!("cannot read '{}': {e}", path.display()),
                )
            })?;
            set("sasl.password", pw.trim_end_matches(['\n', '\r']));
        }
        for (key, path) in [
            ("ssl.ca.location", &self.ca_location),
            ("ssl.certificate.location", &self.certificate_location),
            ("ssl.key.location", &self.key_location),
        ] {
            if let Some(p) = path {
                set(key, &p.display().to_string());
            }
        }
        if let Some(kp) = &self.key_password {
            set("ssl.key.password", kp.expose());
        }
        Ok(props)
    }
}

/// An empty client config whose client logs at least at info level. rust-rdkafka sets
/// librdkafka's log level from `log`'s at creation (warn for `verify`), but librdkafka
/// reports some connection failures only as info-level `FAIL` lines (a connection
/// closed during its first request), which start-up needs to say what is wrong
/// (`diagnose`). `log`'s filter still decides which lines are shown.
fn new_config() -> rdkafka::ClientConfig {
    let mut cfg = rdkafka::ClientConfig::new();
    if (cfg.log_level as i32) < RDKafkaLogLevel::Info as i32 {
        cfg.set_log_level(RDKafkaLogLevel::Info);
    }
    cfg
}

/// Checks a topic name against Kafka's rules.
fn topic_name(key: &str, topic: &str) -> Result<(), ConfigError> {
    if topic == "." || topic == ".." {
        return Err(ConfigError::new(
            key,
            format!("'{topic}' is not a valid Kafka topic name"),
        ));
    }
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
            Raw::Text(t) => Brokers::from_iter(t.split(',')),
        })
    }
}

impl Brokers {
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

/// Whether a librdkafka property's value may be a secret: passwords, secrets, tokens,
/// key material and OAuth settings. Such values are never shown.
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "password",
        "secret",
        "token",
        ".key",
        "sasl.oauthbearer.",
        "credential",
    ]
    .iter()
    .any(|part| k.contains(part))
}

/// librdkafka properties by key. Shown (`Debug`, serialised) with the values of
/// secret-looking keys replaced by `***`.
#[derive(Clone, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct Properties(pub BTreeMap<String, String>);

impl Properties {
    /// The properties with secret values replaced by `***`, for showing.
    fn shown(&self) -> BTreeMap<&str, &str> {
        self.0
            .iter()
            .map(|(k, v)| {
                let v = if is_secret_key(k) { "***" } else { v.as_str() };
                (k.as_str(), v)
            })
            .collect()
    }
}

impl std::ops::Deref for Properties {
    type Target = BTreeMap<String, String>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for Properties {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl fmt::Debug for Properties {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.shown().fmt(f)
    }
}

impl Serialize for Properties {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.shown().serialize(s)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_looking_properties_never_show() {
        let mut p = Properties::default();
        for (k, v) in [
            ("sasl.password", "m4rker"),
            ("ssl.key.password", "m4rker"),
            ("sasl.oauthbearer.client.secret", "m4rker"),
            ("linger.ms", "5"),
        ] {
            p.insert(k.into(), v.into());
        }
        let shown = format!("{p:?} {}", yaml_serde::to_string(&p).unwrap());
        assert!(
            !shown.contains("m4rker") && shown.contains("linger.ms"),
            "{shown}"
        );
        assert!(!is_secret_key("linger.ms") && is_secret_key("SASL.PASSWORD"));
    }

    #[test]
    fn secrets_never_show() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s} {s:?}"), "*** ***");
        assert_eq!(yaml_serde::to_string(&s).unwrap().trim(), "'***'");
    }

    #[test]
    fn topic_names_follow_kafkas_rules() {
        assert!(topic_name("t", "device-data.v1_x").is_ok());
        let e = topic_name("t", "bad topic").unwrap_err().to_string();
        assert!(e.contains("contains ' '"), "{e}");
        assert!(topic_name("t", "").is_err());
        assert!(topic_name("t", ".").is_err() && topic_name("t", "..").is_err());
    }
}
