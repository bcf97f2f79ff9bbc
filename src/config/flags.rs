//! The command line: subcommands, the few flags that are not settings (`--config`,
//! `--sink`, `--json`, `--quiet`), and one flag per setting from the table [`FLAGS`].
//!
//! A setting's flag is only its spelling: its help text and default are read from the
//! setting's declaration (its doc comment and `Default`), and its value goes into the
//! same layered build as the file and the environment (`layers`), as the last layer.
//! Errors about a value a flag set name the flag, as the user wrote it.

use std::path::PathBuf;

use clap::{
    Arg, ArgAction, ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum,
};

use crate::config::layers::{self, Override};
use crate::error::ConfigError;

/// Simulates a fleet of industrial IoT devices and produces their sensor readings to
/// Kafka as fast as the hardware allows.
///
/// Without brokers, readings go to an embedded librdkafka mock cluster, so the tool
/// runs with zero setup. Progress lines and the summary go to stdout, as
/// kafka-producer-perf-test prints them, and logs to stderr; `--json` adds a JSON
/// summary as the last line of stdout. With `--sink stdout`, everything but the
/// readings goes to stderr.
///
/// Settings come from four layers, each overriding the one before: built-in defaults
/// (`iotblast config default` prints them, documented) < a YAML file (`--config`) <
/// environment variables (IOTBLAST_ plus the dotted path in upper snake case, e.g.
/// IOTBLAST_DEVICE_SIMULATOR_DEVICE_COUNT=5000) < these flags.
///
/// Exit status: 0 when every reading was delivered, 1 on a runtime error, 2 on bad
/// flags or configuration, 3 when the run completed but some readings failed, 4 when
/// it missed its --rate, 5 when `verify` found a problem, 130 on a signal during
/// start-up or a second signal.
#[derive(Debug, Parser)]
#[command(
    name = "iotblast",
    version,
    about,
    long_about,
    max_term_width = 100,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

    #[command(flatten)]
    run: RunFlags,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Check, print or generate configuration files.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Read what a run produced, from a topic (from its beginning until it is idle) or
    /// from the stdout sink's output (NDJSON, or length-delimited Protobuf with --format
    /// protobuf), and check every message: schema, key, partition, and each device's seq
    /// for gaps (loss), duplicates and reordering. Reports the counts, the consume rate
    /// and end-to-end latency. Exit status 5 when it finds a problem or a count other
    /// than --expect.
    Verify(VerifyArgs),
    /// Merge or plot run reports (--report-file): exact totals and charts of distributed
    /// runs.
    #[command(subcommand)]
    Report(ReportCommand),
    /// Ask a running iotblast whether it is healthy: GET its /healthz (http.address);
    /// exit 0 on HTTP 200, 1 otherwise. For container health checks (no curl needed).
    Healthcheck {
        /// The endpoint to ask.
        #[arg(long, default_value = "http://127.0.0.1:8080/healthz")]
        url: String,
        /// Give up after this long (10ms to 1m).
        #[arg(long, value_name = "DUR", default_value = "2s")]
        timeout: String,
    },
    /// Print a shell completion script: `iotblast completions bash > /etc/bash_completion.d/iotblast`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff): `iotblast man > iotblast.1 && man ./iotblast.1`.
    Man,
}

/// `iotblast report ...`.
#[derive(Debug, Clone, Subcommand)]
pub enum ReportCommand {
    /// Add up several instances' run reports exactly (counts summed, histograms added,
    /// rates over the union of their wall-clock windows) and print the summary as a run
    /// prints its own. Exit status as for a run.
    Merge {
        /// Run reports written by --report-file, one per instance.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// Also print the merged summary as one JSON object on the last line of stdout.
        #[arg(long)]
        json: bool,
    },
    /// Draw throughput (achieved against target) and latency percentiles over time as
    /// SVG: one line per instance, plus the merged total.
    Plot {
        /// Run reports written by --report-file.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// The SVG file to write.
        #[arg(short = 'o', long = "output", value_name = "SVG")]
        output: PathBuf,
    },
}

/// `iotblast verify` flags that are not settings. The connection settings (-b, -t,
/// --alerts-topic, --connect-timeout, -X, --config and the environment) are a run's.
#[derive(Debug, Clone, Args)]
pub struct VerifyArgs {
    /// YAML settings file, as for a run: its kafka section (brokers, topics, security)
    /// and run.format.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Read readings as the stdout sink writes them (NDJSON, or length-delimited
    /// Protobuf with --format protobuf) from FILE, or stdin for `-`, instead of Kafka.
    #[arg(long, value_name = "FILE")]
    pub file: Option<String>,
    /// Fail unless exactly N readings were read (0 to 10^15; `100k` accepted).
    #[arg(long, value_name = "N")]
    pub expect: Option<String>,
    /// Stop reading a topic once no message has come for this long (100ms to 1h).
    #[arg(long, value_name = "DUR", default_value = "5s")]
    pub idle: String,
    /// Also print the report as one JSON object on the last line of stdout.
    #[arg(long)]
    pub json: bool,
}

/// The settings `verify` takes flags for: where to read and how to connect.
const VERIFY_SETTINGS: &[&str] = &[
    "kafka.brokers",
    "kafka.topics.device_data",
    "kafka.topics.alerts",
    "kafka.connect_timeout",
    "run.format",
];

#[derive(Debug, Clone, Subcommand)]
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

/// The flags of a run that are not settings: they choose what to read and how to report.
#[derive(Debug, Clone, Args)]
pub struct RunFlags {
    /// YAML settings file (see `iotblast config default`).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Where readings go.
    #[arg(long, value_enum, default_value_t = SinkKind::Kafka)]
    pub sink: SinkKind,

    /// Print the final summary as one JSON object on the last line of stdout
    /// (on stderr with --sink stdout, whose stdout carries only readings).
    #[arg(long)]
    pub json: bool,

    /// No progress lines.
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

/// Where readings go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SinkKind {
    /// Produce to Kafka (kafka.brokers, or the embedded mock cluster).
    Kafka,
    /// Readings on stdout: newline-delimited JSON, one reading per line, or with
    /// --format protobuf each message preceded by its length as a varint.
    Stdout,
    /// Generate and encode only: measures the generator.
    Null,
}

impl SinkKind {
    pub fn name(self) -> &'static str {
        match self {
            SinkKind::Kafka => "kafka",
            SinkKind::Stdout => "stdout",
            SinkKind::Null => "null",
        }
    }
}

/// A flag that sets one setting.
#[derive(Debug, Clone, Copy)]
pub struct Flag {
    pub long: &'static str,
    pub short: Option<char>,
    /// The setting's dotted path; also the flag's clap id.
    pub path: &'static str,
    pub value_name: &'static str,
    /// Another setting this flag sets too, with its text.
    pub implies: Option<(&'static str, &'static str)>,
}

const fn flag(long: &'static str, path: &'static str, value_name: &'static str) -> Flag {
    Flag {
        long,
        short: None,
        path,
        value_name,
        implies: None,
    }
}

const fn short(c: char, f: Flag) -> Flag {
    Flag {
        short: Some(c),
        ..f
    }
}

/// Every flag that sets a setting. Adding a flag for a setting is one line here.
pub const FLAGS: &[Flag] = &[
    short('b', flag("brokers", "kafka.brokers", "LIST")),
    short('t', flag("topic", "kafka.topics.device_data", "TOPIC")),
    flag("alerts-topic", "kafka.topics.alerts", "TOPIC"),
    flag("partitions", "kafka.partitions", "N"),
    flag("replication-factor", "kafka.replication_factor", "N"),
    flag("producers", "kafka.producers", "N"),
    flag("connect-timeout", "kafka.connect_timeout", "DUR"),
    flag("flush-timeout", "kafka.flush_timeout", "DUR"),
    flag("mock-brokers", "kafka.mock.brokers", "N"),
    flag("mock-rtt", "kafka.mock.rtt", "DUR"),
    short('c', flag("cores", "device.simulator.worker_pool_size", "N")),
    short('d', flag("devices", "device.simulator.device_count", "N")),
    flag("batch-size", "device.simulator.batch_size", "N"),
    flag("buildings", "device.simulator.buildings", "LABELS"),
    flag("anomaly-rate", "device.simulator.anomaly_rate", "P"),
    Flag {
        implies: Some(("device.simulator.trend_enabled", "true")),
        ..flag("trend-strength", "device.simulator.trend_strength", "X")
    },
    flag("sample-interval", "device.simulator.sample_interval", "DUR"),
    flag("time-scale", "device.simulator.time_scale", "K"),
    flag(
        "event-time",
        "device.simulator.event_time",
        "wall|simulated",
    ),
    flag("start", "device.simulator.start_time", "TIME"),
    flag("seed", "run.seed", "S"),
    flag("rate", "run.rate", "N"),
    flag("rate-profile", "run.rate_profile", "SHAPE"),
    flag("latency-slo", "run.latency_slo", "pQ=DUR"),
    flag("search-step", "run.search_step", "DUR"),
    flag("duration", "run.duration", "DUR"),
    flag("warmup", "run.warmup", "DUR"),
    flag("messages", "run.messages", "N"),
    flag("report-interval", "run.report_interval", "DUR"),
    flag("on-backpressure", "run.on_backpressure", "block|drop"),
    flag("format", "run.format", "json|protobuf"),
    flag("interval-log", "run.interval_log", "FILE"),
    flag("hdr-log", "run.hdr_log", "FILE"),
    flag("report-file", "run.report_file", "FILE"),
    flag("instance-index", "run.instance_index", "I"),
    flag("instance-count", "run.instance_count", "K"),
    flag("metrics-address", "metrics.address", "ADDR"),
    flag("http-address", "http.address", "ADDR"),
];

/// `-X KEY=VALUE`: a librdkafka property, `kafka.librdkafka.KEY`.
const PROPERTY_ID: &str = "kafka.librdkafka";
/// `--no-create-topic`: `kafka.create_topic: false`.
const NO_CREATE_ID: &str = "kafka.create_topic";
/// Flags that turn a boolean setting on: `--realtime` is `run.realtime: true`.
const SWITCHES: &[(&str, &str)] = &[
    ("realtime", "run.realtime"),
    ("find-max-rate", "run.find_max_rate"),
];

/// The flags that set no setting of their own.
pub const INVOCATION_FLAGS: &[&str] = &["config", "sink", "json", "quiet", "help", "version"];

/// A parsed command line.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub command: Option<Command>,
    pub run: RunFlags,
    /// The settings the flags set, in the order of `FLAGS`, then `-X` in order.
    pub overrides: Vec<Override>,
    /// For each override, the flag that set it (`--devices`, `-X`).
    pub spelled: Vec<String>,
}

/// `--version`: iotblast's version and the librdkafka it runs with.
fn version() -> &'static str {
    static V: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    V.get_or_init(|| {
        format!(
            "{} (librdkafka {})",
            env!("CARGO_PKG_VERSION"),
            crate::deliver::kafka::librdkafka_version()
        )
    })
}

/// The whole command line: the derived part plus one argument per [`FLAGS`] entry.
pub fn command() -> clap::Command {
    let with_settings = FLAGS
        .iter()
        .fold(Cli::command().version(version()), |cmd, f| cmd.arg(f.arg()));
    with_settings
        .mut_subcommand("verify", |verify| {
            FLAGS
                .iter()
                .filter(|f| VERIFY_SETTINGS.contains(&f.path))
                .fold(verify, |cmd, f| cmd.arg(f.arg()))
                .arg(property_arg())
        })
        .arg(property_arg())
        .arg(
            Arg::new(NO_CREATE_ID)
                .long("no-create-topic")
                .action(ArgAction::SetTrue)
                .help("Fail instead of creating the topic when it does not exist [setting: kafka.create_topic: false]"),
        )
        .args(SWITCHES.iter().map(|&(long, id)| {
            Arg::new(id)
                .long(long)
                .action(ArgAction::SetTrue)
                .help(format!(
                    "{} [setting: {id}: true]",
                    layers::doc(id).unwrap_or_default().replace('\n', " ")
                ))
        }))
}

/// `-X KEY=VALUE`.
fn property_arg() -> Arg {
    Arg::new(PROPERTY_ID)
        .short('X')
        .value_name("KEY=VALUE")
        .action(ArgAction::Append)
        .help("librdkafka property passed through verbatim, e.g. -X compression.type=lz4 (repeatable); applied after kafka.librdkafka")
}

/// Parses the process's arguments; on a syntax error or `--help`, clap prints and
/// exits (status 2 for errors).
pub fn parse() -> Invocation {
    parse_from(std::env::args_os()).unwrap_or_else(|e| e.exit())
}

/// Parses `args` (the first is the program name).
pub fn parse_from<I, T>(args: I) -> Result<Invocation, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let m = command().try_get_matches_from(args)?;
    let mut cli = Cli::from_arg_matches(&m)?;
    let (overrides, spelled) = match m.subcommand() {
        Some(("verify", sub)) => overrides(sub),
        _ => overrides(&m),
    };
    if let Some(Command::Verify(v)) = &cli.command {
        cli.run.config = v.config.clone();
    }
    Ok(Invocation {
        command: cli.command,
        run: cli.run,
        overrides,
        spelled,
    })
}

/// The settings the command line set, and how each was spelled.
fn overrides(m: &ArgMatches) -> (Vec<Override>, Vec<String>) {
    let mut out = Vec::new();
    let mut push = |path: &str, text: &str, spelled: String| {
        out.push((
            Override {
                path: path.to_owned(),
                text: text.to_owned(),
            },
            spelled,
        ));
    };
    // `try_`: a subcommand's matches hold only the flags it defines.
    for f in FLAGS {
        if let Ok(Some(text)) = m.try_get_one::<String>(f.path) {
            push(f.path, text, format!("--{}", f.long));
            if let Some((path, text)) = f.implies {
                push(path, text, format!("--{}", f.long));
            }
        }
    }
    if let Ok(Some(true)) = m.try_get_one::<bool>(NO_CREATE_ID) {
        push(NO_CREATE_ID, "false", "--no-create-topic".into());
    }
    for &(long, id) in SWITCHES {
        if let Ok(Some(true)) = m.try_get_one::<bool>(id) {
            push(id, "true", format!("--{long}"));
        }
    }
    for p in m
        .try_get_many::<String>(PROPERTY_ID)
        .ok()
        .flatten()
        .into_iter()
        .flatten()
    {
        // A malformed entry goes through with an empty key and is refused by
        // `Invocation::check`, so the error is reported with the others.
        let (key, value) = p.split_once('=').unwrap_or(("", p));
        push(&format!("{PROPERTY_ID}.{}", key.trim()), value, "-X".into());
    }
    out.into_iter().unzip()
}

impl Flag {
    /// The clap argument, with help and default taken from the setting's declaration.
    fn arg(&self) -> Arg {
        let mut a = Arg::new(self.path)
            .long(self.long)
            .value_name(self.value_name)
            .allow_hyphen_values(true)
            .help(help(self.path));
        if let Some(c) = self.short {
            a = a.short(c);
        }
        a
    }
}

/// A setting's doc comment, its default and its path, as a flag's help text.
pub fn help(path: &str) -> String {
    let doc = layers::doc(path).unwrap_or_default().replace('\n', " ");
    match layers::default_text(path) {
        Some(d) => format!("{doc} [setting: {path}; default: {d}]"),
        None => format!("{doc} [setting: {path}]"),
    }
}

impl Invocation {
    /// The flag that set `path`, if one did.
    pub fn flag_for(&self, path: &str) -> Option<&str> {
        self.overrides
            .iter()
            .rposition(|o| o.path == path)
            .map(|i| self.spelled[i].as_str())
    }

    /// Refuses values no setting can take: an empty value for a flag (except the alerts
    /// topic, where "" turns alerts off) and a malformed `-X`.
    pub fn check(&self) -> Result<(), ConfigError> {
        for (o, flag) in self.overrides.iter().zip(&self.spelled) {
            if flag == "-X" && o.path == format!("{PROPERTY_ID}.") {
                // The entry is not echoed: it may hold a secret.
                return Err(ConfigError::new(
                    "-X",
                    "expected KEY=VALUE, got an entry without a key or '='",
                ));
            }
            if o.text.trim().is_empty() && o.path != "kafka.topics.alerts" && flag != "-X" {
                return Err(ConfigError::new(flag.as_str(), "must not be empty"));
            }
        }
        Ok(())
    }
}
