//! Command-line flags (raw, only syntax-checked by clap) and their conversion into a
//! validated [`Config`].

use clap::{Parser, ValueEnum};

use crate::config::{
    self, parse_count, parse_duration, parse_rate, Config, KafkaConfig, SinkConfig,
};
use crate::error::ConfigError;

/// Simulates a fleet of industrial IoT devices and produces their sensor readings to
/// Kafka as fast as the hardware allows.
///
/// Without --brokers, readings go to an embedded librdkafka mock cluster, so the tool
/// runs with zero setup. Progress lines and the summary go to stderr; `--json` adds a
/// JSON summary as the last line of stdout.
///
/// Exit status: 0 when every reading was delivered, 1 on a runtime error, 2 on bad
/// flags, 3 when the run completed but some readings failed (see the summary).
#[derive(Debug, Parser)]
#[command(name = "iotblast", version, about, long_about, max_term_width = 100)]
pub struct Args {
    /// Kafka bootstrap servers, comma-separated (host:port,...). Without it, an embedded
    /// librdkafka mock cluster is started in-process.
    #[arg(short = 'b', long, value_name = "LIST")]
    pub brokers: Option<String>,

    /// Topic for the readings.
    #[arg(short = 't', long, default_value = "device-data")]
    pub topic: String,

    /// Partitions when iotblast creates the topic.
    #[arg(long, default_value_t = 12, allow_negative_numbers = true)]
    pub partitions: i32,

    /// Replication factor when iotblast creates the topic; -1 uses the broker default.
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub replication_factor: i32,

    /// Fail instead of creating the topic when it does not exist.
    #[arg(long)]
    pub no_create_topic: bool,

    /// librdkafka property passed through verbatim, e.g. -X compression.type=lz4 (repeatable).
    #[arg(short = 'X', value_name = "KEY=VALUE")]
    pub properties: Vec<String>,

    /// Give up if the brokers cannot be reached within this time at startup.
    #[arg(
        long,
        default_value = "10s",
        value_name = "DUR",
        allow_hyphen_values = true
    )]
    pub connect_timeout: String,

    /// Where readings go.
    #[arg(long, value_enum, default_value_t = SinkKind::Kafka)]
    pub sink: SinkKind,

    /// Generator threads, each pinned to its own core [default: available cores - 1, at least 1].
    #[arg(short = 'c', long, value_name = "N", allow_negative_numbers = true)]
    pub cores: Option<i64>,

    /// Number of simulated devices (1 to 10m; k and m suffixes allowed).
    #[arg(
        short = 'd',
        long,
        default_value = "1000",
        value_name = "N",
        allow_hyphen_values = true
    )]
    pub devices: String,

    /// Seed for all readings; the same seed gives the same readings. Random if absent (and printed).
    #[arg(long, value_name = "S")]
    pub seed: Option<u64>,

    /// Messages per batch handed from a worker to the delivery thread.
    #[arg(long, default_value_t = 1024, value_name = "N")]
    pub batch_size: usize,

    /// Total target rate in messages/s (k and m suffixes allowed); 0 or absent is as fast as possible.
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub rate: Option<String>,

    /// Stop after this long (e.g. 30s, 5m). Without --duration or --messages, run until Ctrl-C.
    #[arg(long, value_name = "DUR", allow_hyphen_values = true)]
    pub duration: Option<String>,

    /// Stop after this many readings in total (k and m suffixes allowed).
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub messages: Option<String>,

    /// Interval between progress lines.
    #[arg(
        long,
        default_value = "5s",
        value_name = "DUR",
        allow_hyphen_values = true
    )]
    pub report_interval: String,

    /// How long shutdown waits for outstanding deliveries before counting them as failed.
    #[arg(
        long,
        default_value = "30s",
        value_name = "DUR",
        allow_hyphen_values = true
    )]
    pub flush_timeout: String,

    /// Building labels, comma-separated (e.g. "A栋,B栋"); reused with a -2, -3 suffix when the fleet needs more.
    #[arg(long, value_name = "LABELS", value_delimiter = ',')]
    pub buildings: Option<Vec<String>>,

    /// Print the final summary as one JSON object on the last line of stdout
    /// (on stderr with --sink stdout, whose stdout carries only readings).
    #[arg(long)]
    pub json: bool,

    /// No progress lines.
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SinkKind {
    /// Produce to Kafka (--brokers, or the embedded mock cluster).
    Kafka,
    /// Newline-delimited JSON on stdout, one reading per line.
    Stdout,
    /// Generate and encode only: measures the generator.
    Null,
}

impl Args {
    /// Checks every flag and builds the frozen config.
    pub fn into_config(self) -> Result<Config, ConfigError> {
        let sink = match self.sink {
            SinkKind::Kafka => {
                let mut properties = Vec::with_capacity(self.properties.len());
                for p in &self.properties {
                    match p.split_once('=') {
                        Some((k, v)) if !k.trim().is_empty() => {
                            properties.push((k.trim().to_owned(), v.to_owned()))
                        }
                        _ => {
                            return Err(ConfigError::new(
                                "-X",
                                format!("expected KEY=VALUE, got '{p}'"),
                            ))
                        }
                    }
                }
                SinkConfig::Kafka(KafkaConfig {
                    brokers: self.brokers.clone(),
                    topic: self.topic.clone(),
                    partitions: self.partitions,
                    replication_factor: self.replication_factor,
                    create_topic: !self.no_create_topic,
                    properties,
                    connect_timeout: parse_duration("--connect-timeout", &self.connect_timeout)?,
                })
            }
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
                if other == SinkKind::Stdout {
                    SinkConfig::Stdout
                } else {
                    SinkConfig::Null
                }
            }
        };
        let mut c = Config::new(sink);
        c.devices = parse_count("--devices", &self.devices)?;
        c.cores = match self.cores {
            None => config::default_cores(),
            Some(n) if n >= 1 => n as usize,
            Some(n) => {
                return Err(ConfigError::new(
                    "--cores",
                    format!("must be at least 1, got {n}"),
                ))
            }
        };
        (c.seed, c.seed_was_random) = match self.seed {
            Some(s) => (s, false),
            None => (random_seed(), true),
        };
        c.batch_size = self.batch_size;
        c.rate = match &self.rate {
            None => None,
            Some(r) => Some(parse_rate("--rate", r)?).filter(|r| *r != 0.0),
        };
        c.duration = self
            .duration
            .as_deref()
            .map(|d| parse_duration("--duration", d))
            .transpose()?;
        c.messages = self
            .messages
            .as_deref()
            .map(|m| parse_count("--messages", m))
            .transpose()?;
        c.report_interval = parse_duration("--report-interval", &self.report_interval)?;
        c.flush_timeout = parse_duration("--flush-timeout", &self.flush_timeout)?;
        c.quiet = self.quiet;
        if let Some(b) = self.buildings {
            c.fleet.buildings = b;
        }
        c.validate()?;
        Ok(c)
    }
}

/// A seed from the OS's randomness (std seeds `RandomState` from it).
fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(std::process::id() as u64);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(args: &[&str]) -> Result<Config, String> {
        let mut v = vec!["iotblast"];
        v.extend_from_slice(args);
        Args::try_parse_from(v)
            .map_err(|e| e.to_string())?
            .into_config()
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
        assert_eq!(k.properties, vec![("acks".to_owned(), "1".to_owned())]);
        assert_eq!(k.brokers.as_deref(), Some("127.0.0.1:9092"));
        assert!(config(&[]).unwrap().seed_was_random);
    }
}
