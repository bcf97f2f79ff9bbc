//! Command-line flags (raw, only syntax-checked by clap), the `config` subcommands, and
//! the last layer of the settings: flags override file and environment.

use std::path::PathBuf;

use clap::{Args as ClapArgs, Parser, Subcommand, ValueEnum};

use crate::config::{parse_count, parse_duration, parse_rate, Config, SinkConfig};
use crate::error::ConfigError;
use crate::settings::{Brokers, Count, Dur, Settings};

/// Simulates a fleet of industrial IoT devices and produces their sensor readings to
/// Kafka as fast as the hardware allows.
///
/// Without brokers, readings go to an embedded librdkafka mock cluster, so the tool
/// runs with zero setup. Progress lines and the summary go to stderr; `--json` adds a
/// JSON summary as the last line of stdout.
///
/// Settings come from four layers, each overriding the one before: built-in defaults
/// (`iotblast config default` prints them, documented) < a YAML file (`--config`) <
/// environment variables (IOTBLAST_ plus the dotted path in upper snake case, e.g.
/// IOTBLAST_DEVICE_SIMULATOR_DEVICE_COUNT=5000) < these flags.
///
/// Exit status: 0 when every reading was delivered, 1 on a runtime error, 2 on bad
/// flags or configuration, 3 when the run completed but some readings failed.
#[derive(Debug, Parser)]
#[command(
    name = "iotblast",
    version,
    about,
    long_about,
    max_term_width = 100,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub run: Args,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check, print or generate configuration files.
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate FILE (over the built-in defaults, without the environment); exits non-zero
    /// with the offending key and value if it is invalid.
    Check { file: PathBuf },
    /// Print the effective settings as YAML (defaults < --config FILE < environment),
    /// with secrets shown as ***.
    Print {
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Print the built-in defaults as a fully commented YAML file.
    Default,
}

/// The flags of a run. Each one, when given, overrides the file and the environment.
#[derive(Debug, Clone, ClapArgs)]
pub struct Args {
    /// YAML settings file (see `iotblast config default`).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Kafka bootstrap servers, comma-separated (host:port,...); kafka.brokers. Without
    /// any, an embedded librdkafka mock cluster is started in-process.
    #[arg(short = 'b', long, value_name = "LIST")]
    pub brokers: Option<String>,

    /// Topic for the readings; kafka.topics.device_data [default: device-data].
    #[arg(short = 't', long)]
    pub topic: Option<String>,

    /// Topic for alerts (sensor status transitions), "" for none; kafka.topics.alerts
    /// [default: alerts].
    #[arg(long, value_name = "TOPIC")]
    pub alerts_topic: Option<String>,

    /// Partitions when iotblast creates the topic; kafka.partitions [default: 12].
    #[arg(long, allow_negative_numbers = true)]
    pub partitions: Option<i32>,

    /// Replication factor when iotblast creates the topic, -1 for the broker default;
    /// kafka.replication_factor [default: -1].
    #[arg(long, allow_negative_numbers = true)]
    pub replication_factor: Option<i32>,

    /// Fail instead of creating the topic when it does not exist.
    #[arg(long)]
    pub no_create_topic: bool,

    /// librdkafka property passed through verbatim, e.g. -X compression.type=lz4
    /// (repeatable); applied after kafka.librdkafka.
    #[arg(short = 'X', value_name = "KEY=VALUE")]
    pub properties: Vec<String>,

    /// Give up if the brokers cannot be reached within this time at startup;
    /// kafka.connect_timeout [default: 10s].
    #[arg(long, value_name = "DUR", allow_hyphen_values = true)]
    pub connect_timeout: Option<String>,

    /// Where readings go.
    #[arg(long, value_enum, default_value_t = SinkKind::Kafka)]
    pub sink: SinkKind,

    /// Generator threads, each pinned to its own core; device.simulator.worker_pool_size
    /// [default: available cores - 1, at least 1].
    #[arg(short = 'c', long, value_name = "N", allow_negative_numbers = true)]
    pub cores: Option<i64>,

    /// Number of simulated devices (1 to 10m; k and m suffixes allowed);
    /// device.simulator.device_count [default: 1000].
    #[arg(short = 'd', long, value_name = "N", allow_hyphen_values = true)]
    pub devices: Option<String>,

    /// Seed for all readings; the same seed gives the same readings. Random if absent
    /// (and printed); run.seed.
    #[arg(long, value_name = "S")]
    pub seed: Option<u64>,

    /// Messages per batch handed from a worker to the delivery thread;
    /// device.simulator.batch_size [default: 1024].
    #[arg(long, value_name = "N")]
    pub batch_size: Option<usize>,

    /// Total target rate in messages/s (k and m suffixes allowed); 0 is as fast as
    /// possible; run.rate.
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub rate: Option<String>,

    /// Stop after this long (e.g. 30s, 5m); run.duration. Without a duration or a
    /// message count, run until Ctrl-C.
    #[arg(long, value_name = "DUR", allow_hyphen_values = true)]
    pub duration: Option<String>,

    /// Stop after this many readings in total (k and m suffixes allowed); run.messages.
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub messages: Option<String>,

    /// Interval between progress lines; run.report_interval [default: 5s].
    #[arg(long, value_name = "DUR", allow_hyphen_values = true)]
    pub report_interval: Option<String>,

    /// How long shutdown waits for outstanding deliveries before counting them as
    /// failed; kafka.flush_timeout [default: 30s].
    #[arg(long, value_name = "DUR", allow_hyphen_values = true)]
    pub flush_timeout: Option<String>,

    /// Building labels, comma-separated (e.g. "A栋,B栋"); device.simulator.buildings.
    #[arg(long, value_name = "LABELS", value_delimiter = ',')]
    pub buildings: Option<Vec<String>>,

    /// Probability that a reading starts an anomaly (0 to 1);
    /// device.simulator.anomaly_rate [default: 0.01].
    #[arg(long, value_name = "P", allow_negative_numbers = true)]
    pub anomaly_rate: Option<f64>,

    /// Scale of the day/season/weather/load trends, 0 for none;
    /// device.simulator.trend_strength [default: 1].
    #[arg(long, value_name = "X", allow_negative_numbers = true)]
    pub trend_strength: Option<f64>,

    /// Simulated time between a device's readings; device.simulator.sample_interval
    /// [default: 3s].
    #[arg(long, value_name = "DUR", allow_hyphen_values = true)]
    pub sample_interval: Option<String>,

    /// Speed-up of simulated time (1440: a day per minute of 1 s samples);
    /// device.simulator.time_scale [default: 1].
    #[arg(long, value_name = "K", allow_negative_numbers = true)]
    pub time_scale: Option<f64>,

    /// This process's slice of the fleet when --instance-count processes share it;
    /// run.instance_index [default: 0].
    #[arg(long, value_name = "I")]
    pub instance_index: Option<u64>,

    /// Processes sharing one fleet; each produces a disjoint contiguous slice of the
    /// devices, and --devices, --messages and --rate describe the whole fleet;
    /// run.instance_count [default: 1].
    #[arg(long, value_name = "K")]
    pub instance_count: Option<u64>,

    /// Serve Prometheus metrics at http://ADDR/metrics (e.g. 0.0.0.0:9090; port 0 picks
    /// one and logs it); metrics.address.
    #[arg(long, value_name = "ADDR")]
    pub metrics_address: Option<String>,

    /// Serve /healthz and /readyz at ADDR (e.g. 0.0.0.0:8080); http.address.
    #[arg(long, value_name = "ADDR")]
    pub http_address: Option<String>,

    /// Print the final summary as one JSON object on the last line of stdout
    /// (on stderr with --sink stdout, whose stdout carries only readings).
    #[arg(long)]
    pub json: bool,

    /// No progress lines.
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

/// A setting a flag set: `(settings path, flag)`.
pub type FlagSet = (&'static str, &'static str);

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SinkKind {
    /// Produce to Kafka (kafka.brokers, or the embedded mock cluster).
    Kafka,
    /// Newline-delimited JSON on stdout, one reading per line.
    Stdout,
    /// Generate and encode only: measures the generator.
    Null,
}

impl Args {
    /// All layers as settings: defaults, `--config`, the environment `env` and these
    /// flags. Also returns which settings the flags set, and environment warnings.
    pub fn settings(
        &self,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(Settings, Vec<FlagSet>, Vec<String>), ConfigError> {
        let (mut settings, warnings) = Settings::load(self.config.as_deref(), env)?;
        let flags = self.apply(&mut settings)?;
        Ok((settings, flags, warnings))
    }

    /// Builds the frozen config from all layers (see [`Args::settings`]). Returns it with
    /// the effective settings and warnings about the environment.
    pub fn into_config(
        self,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(Config, Settings, Vec<String>), ConfigError> {
        let (settings, flags, warnings) = self.settings(env)?;
        let mut config = settings.to_config().map_err(|mut e| {
            // An error about a value a flag set names the flag, as the user wrote it.
            if let Some((_, flag)) = flags.iter().find(|(path, _)| *path == e.key) {
                e.key = (*flag).to_owned();
            }
            e
        })?;
        config.quiet = self.quiet;
        match self.sink {
            SinkKind::Kafka => {}
            other => {
                let name = if other == SinkKind::Stdout {
                    "stdout"
                } else {
                    "null"
                };
                if self.brokers.is_some() {
                    return Err(ConfigError::new(
                        "--brokers",
                        format!("has no effect with --sink {name}; drop it or use --sink kafka"),
                    ));
                }
                if !self.properties.is_empty() {
                    return Err(ConfigError::new(
                        "-X",
                        format!("librdkafka properties have no effect with --sink {name}"),
                    ));
                }
                config.sink = if other == SinkKind::Stdout {
                    SinkConfig::Stdout
                } else {
                    SinkConfig::Null
                };
            }
        }
        Ok((config, settings, warnings))
    }

    /// Writes the given flags over `settings`; returns `(settings path, flag)` for each.
    fn apply(&self, s: &mut Settings) -> Result<Vec<FlagSet>, ConfigError> {
        let mut set = Vec::new();
        let mut mark = |path, flag| set.push((path, flag));
        if let Some(b) = &self.brokers {
            s.kafka.brokers = Brokers::parse(b);
            if s.kafka.brokers.0.is_empty() {
                return Err(ConfigError::new(
                    "--brokers",
                    "must list at least one host:port",
                ));
            }
            mark("kafka.brokers", "--brokers");
        }
        if let Some(t) = &self.topic {
            s.kafka.topics.device_data = t.clone();
            mark("kafka.topics.device_data", "--topic");
        }
        if let Some(t) = &self.alerts_topic {
            s.kafka.topics.alerts = t.clone();
            mark("kafka.topics.alerts", "--alerts-topic");
        }
        if let Some(p) = self.partitions {
            s.kafka.partitions = p;
            mark("kafka.partitions", "--partitions");
        }
        if let Some(r) = self.replication_factor {
            s.kafka.replication_factor = r;
            mark("kafka.replication_factor", "--replication-factor");
        }
        if self.no_create_topic {
            s.kafka.create_topic = false;
        }
        for p in &self.properties {
            match p.split_once('=') {
                Some((k, v)) if !k.trim().is_empty() => {
                    s.kafka.librdkafka.insert(k.trim().to_owned(), v.to_owned());
                }
                _ => {
                    return Err(ConfigError::new(
                        "-X",
                        format!("expected KEY=VALUE, got '{p}'"),
                    ))
                }
            }
        }
        if let Some(d) = &self.connect_timeout {
            s.kafka.connect_timeout = Dur(parse_duration("--connect-timeout", d)?);
            mark("kafka.connect_timeout", "--connect-timeout");
        }
        if let Some(d) = &self.flush_timeout {
            s.kafka.flush_timeout = Dur(parse_duration("--flush-timeout", d)?);
        }
        if let Some(n) = self.cores {
            if n < 1 {
                return Err(ConfigError::new(
                    "--cores",
                    format!("must be at least 1, got {n}"),
                ));
            }
            s.device.simulator.worker_pool_size = Some(n as usize);
            mark("device.simulator.worker_pool_size", "--cores");
        }
        if let Some(d) = &self.devices {
            s.device.simulator.device_count = Count(parse_count("--devices", d)?);
            mark("device.simulator.device_count", "--devices");
        }
        if let Some(b) = self.batch_size {
            s.device.simulator.batch_size = b;
            mark("device.simulator.batch_size", "--batch-size");
        }
        if let Some(b) = &self.buildings {
            s.device.simulator.buildings = b.clone();
            mark("device.simulator.buildings", "--buildings");
        }
        let sim = &mut s.device.simulator;
        if let Some(r) = self.anomaly_rate {
            sim.anomaly_rate = r;
            mark("device.simulator.anomaly_rate", "--anomaly-rate");
        }
        if let Some(t) = self.trend_strength {
            sim.trend_strength = t;
            sim.trend_enabled = true;
            mark("device.simulator.trend_strength", "--trend-strength");
        }
        if let Some(d) = &self.sample_interval {
            sim.sample_interval = Dur(parse_duration("--sample-interval", d)?);
            mark("device.simulator.sample_interval", "--sample-interval");
        }
        if let Some(k) = self.time_scale {
            sim.time_scale = k;
            mark("device.simulator.time_scale", "--time-scale");
        }
        if let Some(i) = self.instance_index {
            s.run.instance_index = i;
            mark("run.instance_index", "--instance-index");
        }
        if let Some(k) = self.instance_count {
            s.run.instance_count = k;
            mark("run.instance_count", "--instance-count");
        }
        if let Some(a) = &self.metrics_address {
            s.metrics.address = Some(a.clone());
            mark("metrics.address", "--metrics-address");
        }
        if let Some(a) = &self.http_address {
            s.http.address = Some(a.clone());
            mark("http.address", "--http-address");
        }
        if let Some(seed) = self.seed {
            s.run.seed = Some(seed);
        }
        if let Some(r) = &self.rate {
            let rate = parse_rate("--rate", r)?;
            // Counts are whole messages per second; a fractional rate rounds up to 1/s
            // rather than silently meaning "unlimited".
            s.run.rate = Some(Count(if rate > 0.0 { rate.ceil() as u64 } else { 0 }));
            mark("run.rate", "--rate");
        }
        if let Some(d) = &self.duration {
            s.run.duration = Some(Dur(parse_duration("--duration", d)?));
            mark("run.duration", "--duration");
        }
        if let Some(m) = &self.messages {
            s.run.messages = Some(Count(parse_count("--messages", m)?));
            mark("run.messages", "--messages");
        }
        if let Some(r) = &self.report_interval {
            s.run.report_interval = Dur(parse_duration("--report-interval", r)?);
            mark("run.report_interval", "--report-interval");
        }
        Ok(set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(args: &[&str]) -> Result<Config, String> {
        let mut v = vec!["iotblast"];
        v.extend_from_slice(args);
        let cli = Cli::try_parse_from(v).map_err(|e| e.to_string())?;
        cli.run
            .into_config(std::iter::empty())
            .map(|(c, _, _)| c)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn bad_values_name_the_flag() {
        let cases: &[(&[&str], &str)] = &[
            (
                &["--devices", "0"],
                "--devices: must be between 1 and 10000000, got 0",
            ),
            (&["--cores", "0"], "--cores: must be at least 1, got 0"),
            (&["--cores", "-2"], "--cores: must be at least 1, got -2"),
            (
                &["--duration", "-5s"],
                "--duration: must not be negative, got '-5s'",
            ),
            (&["--duration", "0s"], "--duration: must be greater than 0"),
            (&["--messages", "0"], "--messages: must be at least 1"),
            (&["--rate", "-10"], "--rate: must not be negative"),
            (&["--devices", "lots"], "--devices: invalid count 'lots'"),
            (
                &["-X", "linger.ms"],
                "-X: expected KEY=VALUE, got 'linger.ms'",
            ),
            (
                &["--sink", "null", "-b", "h:1"],
                "--brokers: has no effect with --sink null",
            ),
            (
                &["--partitions", "0"],
                "--partitions: must be at least 1, got 0",
            ),
            (
                &["--batch-size", "0"],
                "--batch-size: must be between 1 and 1000000, got 0",
            ),
            (
                &["--report-interval", "1ms"],
                "--report-interval: must be at least 100ms",
            ),
        ];
        for (args, want) in cases {
            let err = config(args).expect_err(want);
            assert!(err.contains(want), "{args:?}: got {err}, want {want}");
        }
    }

    #[test]
    fn flags_reach_the_config() {
        let c = config(&[
            "--devices",
            "10k",
            "--cores",
            "3",
            "--rate",
            "0",
            "--messages",
            "1m",
            "--seed",
            "7",
            "-X",
            "acks=1",
            "-b",
            "127.0.0.1:9092",
            "--buildings",
            "A栋,B栋",
        ])
        .unwrap();
        assert_eq!(
            (c.devices, c.cores, c.seed, c.seed_was_random),
            (10_000, 3, 7, false)
        );
        assert_eq!((c.rate, c.messages), (None, Some(1_000_000)));
        assert_eq!(c.fleet.buildings, vec!["A栋", "B栋"]);
        let SinkConfig::Kafka(k) = c.sink else {
            panic!("kafka sink expected")
        };
        assert_eq!(
            k.properties.iter().rev().find(|(key, _)| key == "acks"),
            Some(&("acks".to_owned(), "1".to_owned()))
        );
        assert_eq!(k.brokers.as_deref(), Some("127.0.0.1:9092"));
        assert!(config(&[]).unwrap().seed_was_random);
    }
}
