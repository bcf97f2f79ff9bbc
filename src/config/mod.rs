//! Configuration: every setting declared once, by the stage that uses it (`settings`
//! for the run, `model::FleetSpec` for the fleet, `deliver::kafka::settings` for
//! Kafka), built from its layers (`layers`: defaults < file < environment <
//! flags), checked, and frozen into a [`Run`] before any thread starts. `command`
//! serves `iotblast config ...`. Hot reload (`engine::reload`, publishing to
//! `generate::live`) is the only way a running configuration changes, and only in the
//! parts it names.

pub mod command;
pub mod flags;
pub mod layers;
pub mod render;
pub mod settings;

use std::time::Duration;

pub use crate::deliver::kafka::settings::KafkaSettings;
pub use flags::{Invocation, SinkKind};
pub use settings::Settings;

use crate::error::ConfigError;

/// How long a partly filled batch may wait at low rates before it is shipped anyway.
/// A reading's latency counts its wait here, so this is kept small beside librdkafka's
/// own `linger.ms` (20 ms) and a network's round trip: at 10k readings/s per worker a
/// batch still carries ~50 readings, so hand-offs stay at ~200 a second. (It was 50 ms,
/// which made `--find-max-rate` judge the tool's own batching more than the cluster.)
pub const BATCH_LINGER: Duration = Duration::from_millis(5);

/// A checked run: validated settings, the choices only the command line makes, and
/// the values the settings leave to the machine (seed, cores) resolved.
#[derive(Debug, Clone)]
pub struct Run {
    pub settings: Settings,
    /// Where readings go.
    pub sink: SinkKind,
    /// Print no progress lines (the summary is still returned).
    pub quiet: bool,
    /// Seed of every random value; with the same seed, readings are identical.
    pub seed: u64,
    /// Whether `seed` was chosen at random (it is printed so the run can be repeated).
    pub seed_was_random: bool,
    /// Generator threads.
    pub cores: usize,
}

impl Run {
    /// Validates `settings` and resolves what they leave open.
    pub fn new(settings: Settings, sink: SinkKind) -> Result<Self, ConfigError> {
        settings.validate()?;
        if sink == SinkKind::Kafka {
            // A property librdkafka rejects is bad input, found before anything starts.
            settings.kafka.check_with_librdkafka()?;
        }
        let (seed, seed_was_random) = match settings.run.seed {
            Some(s) => (s, false),
            None => (random_seed(), true),
        };
        let cores = settings
            .device
            .simulator
            .worker_pool_size
            .unwrap_or_else(default_cores);
        Ok(Self {
            settings,
            sink,
            quiet: false,
            seed,
            seed_was_random,
            cores,
        })
    }

    /// Number of devices in the whole fleet.
    pub fn devices(&self) -> u64 {
        self.settings.device.devices()
    }

    /// Whether alerts are generated: the Kafka sink with an alerts topic, or the null
    /// sink (which measures the full generator); stdout carries readings only.
    pub fn alerts(&self) -> bool {
        match self.sink {
            SinkKind::Kafka => self.settings.kafka.alerts_topic().is_some(),
            SinkKind::Stdout => false,
            SinkKind::Null => true,
        }
    }
}

impl Invocation {
    /// All layers as settings: defaults, `--config`, the environment `env` and the
    /// flags. Also returns warnings about the environment.
    pub fn settings(
        &self,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(Settings, Vec<String>), ConfigError> {
        self.check()?;
        layers::load(self.run.config.as_deref(), env, &self.overrides).map_err(|e| self.named(e))
    }

    /// The checked run, with the settings it came from and the environment warnings.
    pub fn to_run(
        &self,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(Run, Settings, Vec<String>), ConfigError> {
        let (settings, warnings) = self.settings(env)?;
        if self.run.sink != SinkKind::Kafka {
            let name = self.run.sink.name();
            if let Some(flag) = self.flag_for("kafka.brokers") {
                return Err(ConfigError::new(
                    flag,
                    format!("has no effect with --sink {name}; drop it or use --sink kafka"),
                ));
            }
            if self.spelled.iter().any(|s| s == "-X") {
                return Err(ConfigError::new(
                    "-X",
                    format!("librdkafka properties have no effect with --sink {name}"),
                ));
            }
        }
        let mut run = Run::new(settings.clone(), self.run.sink).map_err(|e| self.named(e))?;
        run.quiet = self.run.quiet;
        Ok((run, settings, warnings))
    }

    /// `e` with its key replaced by the flag that set that setting, if one did.
    fn named(&self, mut e: ConfigError) -> ConfigError {
        if let Some(flag) = self.flag_for(&e.key) {
            e.key = flag.to_owned();
        } else if e.key == "kafka.librdkafka" && self.spelled.iter().any(|s| s == "-X") {
            e.key = "-X".into();
        }
        e
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

/// A seed from the OS's randomness (std seeds `RandomState` from it).
pub fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(std::process::id() as u64);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Run, String> {
        let inv = flags::parse_from(std::iter::once("iotblast").chain(args.iter().copied()))
            .map_err(|e| e.to_string())?;
        inv.to_run(std::iter::empty())
            .map(|(r, _, _)| r)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn bad_values_name_the_flag() {
        let cases: &[(&[&str], &str)] = &[
            (
                &["--devices", "0"],
                "--devices: must be between 1 and 10000000, got 0",
            ),
            (
                &["--cores", "0"],
                "--cores: must be between 1 and 1024, got 0",
            ),
            (&["--cores", "-2"], "--cores: must not be negative, got -2"),
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
                "-X: expected KEY=VALUE, got an entry without a key or '='",
            ),
            (
                &["--sink", "null", "-b", "h:1"],
                "--brokers: has no effect with --sink null",
            ),
            (
                &["--partitions", "0"],
                "--partitions: must be between 1 and 10000, got 0",
            ),
            (
                &["--batch-size", "0"],
                "--batch-size: must be between 1 and 1000000, got 0",
            ),
            (
                &["--report-interval", "1ms"],
                "--report-interval: must be at least 100ms",
            ),
            (&["--brokers", ""], "--brokers: must not be empty"),
            (
                &["--duration", "2s", "--warmup", "5s"],
                "--warmup: must be shorter than run.duration, got 5s",
            ),
            (&["--buildings", " "], "--buildings: must not be empty"),
            (&["--buildings", "A,,B"], "--buildings: values must not be empty"),
            (&["--topic", ".."], "--topic: '..' is not a valid Kafka topic name"),
            (
                &["--partitions", "2147483647"],
                "--partitions: must be between 1 and 10000",
            ),
            (
                &["--connect-timeout", "25days"],
                "--connect-timeout: must be between 1ms and 1day",
            ),
            (
                &["-X", "no.such.property=1"],
                "-X: librdkafka rejected the producer configuration: No such configuration property",
            ),
            (
                &["--batch-size", "1000000"],
                "device.simulator.queue_buffer_size: (queue_buffer_size + 2) × batch_size must be at most 1048576",
            ),
        ];
        for (args, want) in cases {
            let err = run(args).expect_err(want);
            assert!(err.contains(want), "{args:?}: got {err}, want {want}");
        }
    }

    #[test]
    fn flags_reach_the_run() {
        let r = run(&[
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
            "--no-create-topic",
            "--flush-timeout",
            "3s",
        ])
        .unwrap();
        let s = &r.settings;
        assert_eq!(
            (r.devices(), r.cores, r.seed, r.seed_was_random),
            (10_000, 3, 7, false)
        );
        assert_eq!(s.run.target_rate(), None);
        assert_eq!(s.run.messages.map(|m| m.0), Some(1_000_000));
        assert_eq!(s.device.simulator.buildings, vec!["A栋", "B栋"]);
        assert_eq!(
            s.kafka.librdkafka.get("acks").map(String::as_str),
            Some("1")
        );
        assert_eq!(s.kafka.bootstrap().as_deref(), Some("127.0.0.1:9092"));
        assert!(!s.kafka.create_topic);
        assert_eq!(s.kafka.flush_timeout.0, Duration::from_secs(3));
        assert!(run(&[]).unwrap().seed_was_random);
    }

    #[test]
    fn every_flag_sets_a_documented_setting_or_is_an_invocation_flag() {
        let paths = layers::leaf_paths();
        for arg in flags::command().get_arguments() {
            let id = arg.get_id().as_str();
            let known = paths.iter().any(|p| p == id)
                || id == "kafka.librdkafka"
                || flags::INVOCATION_FLAGS.contains(&id);
            assert!(known, "flag {id} maps to no setting");
            if paths.iter().any(|p| p == id) {
                let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
                assert!(help.contains(&format!("setting: {id}")), "{id}: {help}");
                if flags::FLAGS.iter().any(|f| f.path == id) {
                    let doc = layers::doc(id).expect("a documented setting");
                    assert!(help.starts_with(&doc.replace('\n', " ")), "{id}: {help}");
                }
            }
        }
        // Every flag's setting exists, so adding one is a line in FLAGS.
        for f in flags::FLAGS {
            assert!(
                paths.iter().any(|p| p == f.path),
                "{} -> {}",
                f.long,
                f.path
            );
        }
    }
}
