//! The declaration of every setting: one field each, with its doc comment (the help
//! text of its flag and of `config default`), its default (the `Default` impls, the only
//! place defaults live) and its bounds (`validate`, beside it). The file, environment and
//! flag layers (`layers`, `flags`) are derived from this tree; nothing copies it.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::deliver::kafka::settings::KafkaSettings;
use crate::engine::schedule::{RateProfile, Slo};
use crate::error::ConfigError;
use crate::model::FleetSpec;
use crate::units::{in_range, Count, Dur, Rate};

/// Upper bound of `run.rate`: far beyond what one process can produce.
pub const MAX_RATE: f64 = 1e9;
/// Upper bound of `run.messages`: 10^15, years at any rate one process reaches.
pub const MAX_MESSAGES: u64 = 1_000_000_000_000_000;

/// Everything a run can be configured with.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Kafka connection, topic and producer.
    pub kafka: KafkaSettings,
    /// The simulated fleet.
    pub device: FleetSpec,
    /// How fast and how long to run, and in what format.
    pub run: RunSettings,
    /// Logging.
    pub log: LogSettings,
    /// The Prometheus metrics endpoint.
    pub metrics: MetricsSettings,
    /// The health endpoints.
    pub http: HttpSettings,
}

/// How fast and how long to run, and in what format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RunSettings {
    /// Total messages per second, up to 1e9 (`50k` accepted); 0 or null is as fast as
    /// possible.
    pub rate: Option<Rate>,
    /// Pace by the sample interval (the design's "send every 3 s" mode): each device
    /// sends one reading per device.simulator.sample_interval of wall time, so the rate
    /// is devices / sample_interval, following reloads of the interval. Excludes
    /// run.rate.
    pub realtime: bool,
    /// Change the target rate while running: `ramp:FROM..TO/OVER` (linear from FROM to
    /// TO over OVER), `step:R1,R2,.../EACH` (each rate for EACH) or
    /// `burst:BASE,PEAK/EVERY,LENGTH` (PEAK for the last LENGTH of every EVERY). Rates
    /// are fleet-wide, above 0 and up to 1e9 (`50k` accepted); durations 100ms to 1d; at
    /// most 1000 steps. Ramps and steps hold their last rate until the run ends.
    /// Excludes run.rate, run.realtime and run.find_max_rate.
    pub rate_profile: Option<RateProfile>,
    /// Search for the highest rate that meets run.latency_slo, in steps of
    /// run.search_step: doubling from run.rate (or 1000/s) while steps pass, then
    /// bisecting until within 5 %, at most 40 steps. A step passes when it delivers 95 %
    /// of its target, none fail, and its latency quantile (from each reading's due time,
    /// so corrected for coordinated omission) is within the SLO. The first step warms
    /// up and is not judged. The run ends with the search and prints each step; exit
    /// status 4 when no rate met the SLO. Excludes run.instance_count > 1.
    pub find_max_rate: bool,
    /// The latency objective of run.find_max_rate, `pQ=DURATION` (e.g. p99=50ms; the
    /// quantile above p0 and below p100, the latency above 0 and up to 10m). Required
    /// by run.find_max_rate.
    pub latency_slo: Option<Slo>,
    /// Length of each run.find_max_rate step, 1s to 1h; its first 30 % is not measured
    /// while the pacers settle. After a failed step, generation pauses until what it
    /// left queued is delivered (at most three steps' time).
    pub search_step: Dur,
    /// Stop after this long (e.g. 30s, 5m; up to 365 days); null runs until stopped.
    pub duration: Option<Dur>,
    /// Stop after this many readings in total (up to 10^15); null runs until stopped.
    pub messages: Option<Count>,
    /// Seed of all readings, any 64-bit value (0 to 18446744073709551615); null picks
    /// one at random and prints it.
    pub seed: Option<u64>,
    /// This process's slice of the fleet, 0 to instance_count - 1: instances with the
    /// same settings and seed split the devices into disjoint contiguous ranges. `auto`
    /// reads it from JOB_COMPLETION_INDEX (a Kubernetes Indexed Job), else from the
    /// ordinal ending POD_NAME or HOSTNAME (a StatefulSet pod, `iotblast-2`).
    pub instance_index: u64,
    /// How many processes share the fleet, 1 to the device count. Devices, messages and
    /// rate describe the whole fleet; each instance produces its share.
    pub instance_count: u64,
    /// Warm-up (e.g. 10s, up to 1 day, shorter than run.duration): readings in it are
    /// sent and counted, but left out of the summary's rates and latency, which then
    /// describe the steady state. The summary reports the warm-up's own counts.
    pub warmup: Option<Dur>,
    /// Interval between progress lines, 100ms to 1 day.
    pub report_interval: Dur,
    /// File to write one JSON line per reporting interval to (readings and alerts sent,
    /// delivered, failed and in doubt; rates; ack-latency percentiles); the last line is
    /// the final partial interval, so the lines add up to the summary. Null writes none.
    pub interval_log: Option<std::path::PathBuf>,
    /// File to write an HdrHistogram interval log of ack latency to (microseconds; the
    /// standard format HdrHistogram's tools read), one histogram per reporting
    /// interval. Null writes none.
    pub hdr_log: Option<std::path::PathBuf>,
    /// File to write the full run report to at the end: the JSON summary, the latency
    /// histograms (HdrHistogram V2, compressed, base64) and every interval, for
    /// `iotblast report merge` (exact totals of distributed runs) and `report plot`.
    /// Null writes none.
    pub report_file: Option<std::path::PathBuf>,
    /// What a worker does when the delivery side is behind (its hand-off queue is
    /// full): `block` waits, so nothing is lost and the rate drops; `drop` discards the
    /// full batch at generation and counts its readings and alerts as dropped (never
    /// as sent), so the generator keeps its schedule and the data has gaps.
    pub on_backpressure: OnBackpressure,
    /// How each reading and alert is encoded, on Kafka and on the stdout sink: `json`
    /// (one JSON object, docs/schema/*.schema.json; one a line on stdout) or `protobuf`
    /// (one message of schema/reading.proto; on stdout each is preceded by its length
    /// as a varint, as protobuf's writeDelimitedTo writes them). `iotblast verify`
    /// reads the same setting.
    pub format: Format,
}

/// See [`RunSettings::format`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    #[default]
    Json,
    Protobuf,
}

/// See [`RunSettings::on_backpressure`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnBackpressure {
    #[default]
    Block,
    Drop,
}

impl Default for RunSettings {
    fn default() -> Self {
        Self {
            rate: None,
            realtime: false,
            rate_profile: None,
            find_max_rate: false,
            latency_slo: None,
            search_step: Dur(std::time::Duration::from_secs(10)),
            duration: None,
            messages: None,
            seed: None,
            instance_index: 0,
            instance_count: 1,
            report_interval: Dur(std::time::Duration::from_secs(5)),
            warmup: None,
            interval_log: None,
            hdr_log: None,
            report_file: None,
            on_backpressure: OnBackpressure::Block,
            format: Format::Json,
        }
    }
}

/// Logging.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    /// off, error, warn, info, debug or trace. RUST_LOG, when set, takes precedence.
    pub level: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            level: "info".into(),
        }
    }
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

impl MetricsSettings {
    /// `address`, parsed.
    pub fn socket(&self) -> Result<Option<std::net::SocketAddr>, ConfigError> {
        socket_address("metrics.address", &self.address)
    }
}

impl HttpSettings {
    /// `address`, parsed.
    pub fn socket(&self) -> Result<Option<std::net::SocketAddr>, ConfigError> {
        socket_address("http.address", &self.address)
    }
}

/// The `log` filter for a `log.level` value.
pub fn log_level(level: &str) -> Option<log::LevelFilter> {
    level.trim().parse().ok()
}

/// Parses an optional `IP:port` setting.
pub fn socket_address(
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

impl Settings {
    /// Checks every rule that one field's type cannot: bounds and cross-field rules.
    /// The error names the setting's path.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.device.validate()?;
        self.kafka.validate()?;
        self.run.validate(self.device.devices())?;
        self.run.validate_schedule()?;
        if self.run.realtime && self.run.target_rate().is_some() {
            return Err(ConfigError::new(
                "run.realtime",
                "paces by the sample interval and cannot be combined with run.rate",
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
        self.metrics.socket()?;
        self.http.socket()?;
        Ok(())
    }

    /// The effective settings as YAML, secrets shown as `***`.
    pub fn to_yaml(&self) -> String {
        yaml_serde::to_string(self).expect("settings serialise")
    }
}

impl RunSettings {
    /// What changes the rate on its own excludes anything else that sets it.
    fn validate_schedule(&self) -> Result<(), ConfigError> {
        let conflict = |key: &str, other: &str| {
            Err(ConfigError::new(
                key,
                format!("sets the rate itself and cannot be combined with {other}"),
            ))
        };
        if self.rate_profile.is_some() {
            if self.target_rate().is_some() {
                return conflict("run.rate_profile", "run.rate");
            }
            if self.realtime {
                return conflict("run.rate_profile", "run.realtime");
            }
            if self.find_max_rate {
                return conflict("run.rate_profile", "run.find_max_rate");
            }
        }
        if self.find_max_rate {
            if self.realtime {
                return conflict("run.find_max_rate", "run.realtime");
            }
            if self.instance_count > 1 {
                return Err(ConfigError::new(
                    "run.find_max_rate",
                    "judges the whole fleet's rate in one process and cannot be combined with run.instance_count > 1",
                ));
            }
            if self.latency_slo.is_none() {
                return Err(ConfigError::new(
                    "run.latency_slo",
                    "is required by run.find_max_rate, e.g. p99=50ms",
                ));
            }
        }
        in_range(
            "run.search_step",
            self.search_step,
            Dur(std::time::Duration::from_secs(1)),
            Dur(std::time::Duration::from_secs(3600)),
        )
    }

    fn validate(&self, devices: u64) -> Result<(), ConfigError> {
        if let Some(Rate(rate)) = self.rate {
            if !rate.is_finite() || !(0.0..=MAX_RATE).contains(&rate) {
                return Err(ConfigError::new(
                    "run.rate",
                    format!("must be between 0 and {MAX_RATE} messages per second, got {rate}"),
                ));
            }
        }
        if self.messages == Some(Count(0)) {
            return Err(ConfigError::new(
                "run.messages",
                "must be at least 1, got 0",
            ));
        }
        if let Some(d) = self.duration {
            if d.0.is_zero() {
                return Err(ConfigError::new("run.duration", "must be greater than 0"));
            }
            in_range("run.duration", d, Dur::ms(1), Dur::days(365))?;
        }
        if let Some(w) = self.warmup {
            in_range("run.warmup", w, Dur::ms(1), Dur::days(1))?;
            if self.duration.is_some_and(|d| w >= d) {
                return Err(ConfigError::new(
                    "run.warmup",
                    format!("must be shorter than run.duration, got {w}"),
                ));
            }
        }
        if let Some(Count(m)) = self.messages {
            in_range("run.messages", m, 1, MAX_MESSAGES)?;
        }
        in_range("run.instance_count", self.instance_count, 1, devices).map_err(|mut e| {
            e.message = format!(
                "must be between 1 and the device count ({devices}), got {}",
                self.instance_count
            );
            e
        })?;
        if self.instance_index >= self.instance_count {
            return Err(ConfigError::new(
                "run.instance_index",
                format!(
                    "must be below run.instance_count ({}), got {}",
                    self.instance_count, self.instance_index
                ),
            ));
        }
        if self.report_interval > Dur::days(1) {
            return Err(ConfigError::new(
                "run.report_interval",
                format!("must be at most 1d, got {}", self.report_interval),
            ));
        }
        if self.report_interval.0 < std::time::Duration::from_millis(100) {
            return Err(ConfigError::new(
                "run.report_interval",
                format!(
                    "must be at least 100ms, got {}",
                    humantime::format_duration(self.report_interval.0)
                ),
            ));
        }
        Ok(())
    }

    /// The target rate, `None` when unlimited (0 or unset).
    pub fn target_rate(&self) -> Option<f64> {
        self.rate.map(|r| r.0).filter(|r| *r > 0.0)
    }
}
