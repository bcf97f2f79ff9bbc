//! `iotblast verify`: the consumer side of a benchmark. Reads what a run produced, from
//! a topic (from its beginning until it is idle) or from the stdout sink's output
//! (NDJSON, or length-delimited Protobuf with `run.format: protobuf`), and checks every
//! message: its schema, that its key is its `device_id`, that each device stays on one
//! partition, and each device's `seq` for loss, duplicates and reordering. Reports the
//! counts, the consume rate and end-to-end latency.
//!
//! It sits beside `engine` at the top: it uses `config` for the same connection
//! settings a run takes (file, environment, `-X`, SASL and TLS) and nothing of the
//! generating side.

pub mod check;
pub mod fast;
pub mod message;
pub mod protobuf;
pub mod report;
pub mod source;

use std::fs::File;
use std::io::{BufReader, Read};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use crate::config::flags::VerifyArgs;
use crate::config::settings::Format;
use crate::config::Invocation;
use crate::error::{ConfigError, Error};
use crate::observe::logging;
use crate::output;
use crate::units::{in_range, parse_count, parse_duration, Dur};
use crate::verify::check::Checker;
use crate::verify::report::Report;
use crate::verify::source::Topics;

/// Upper bound of `--idle`.
const MAX_IDLE: Duration = Duration::from_secs(3600);
/// Upper bound of `--expect`, as for `run.messages`.
const MAX_EXPECT: u64 = crate::config::settings::MAX_MESSAGES;
/// Read buffer for files and stdin.
const READ_BUFFER: usize = 1 << 20;

/// Runs `iotblast verify` with `args` and the settings `invocation` gives.
pub fn run(invocation: &Invocation, args: &VerifyArgs) -> Result<(), Error> {
    let expected = args
        .expect
        .as_deref()
        .map(|t| {
            let n = parse_count("--expect", t)?;
            in_range("--expect", n, 0, MAX_EXPECT).map(|_| n)
        })
        .transpose()?;
    let idle = parse_duration("--idle", &args.idle)?;
    in_range("--idle", Dur(idle), Dur::ms(100), Dur(MAX_IDLE))?;
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).map_err(Error::Signals)?;
    }
    let (source, span, checker, kafka) = match &args.file {
        Some(path) => {
            if let Some(flag) = invocation.spelled.iter().find(|f| *f != "--format") {
                return Err(ConfigError::new(flag.as_str(), "has no effect with --file").into());
            }
            // Only the format applies to a file: from --format, or the file and
            // environment layers as for a run.
            let format = invocation.settings(std::env::vars())?.0.run.format;
            let mut checker = Checker::new(format);
            let span = read_file(path, format, &mut checker, &stop)?;
            (path.clone(), span, checker, false)
        }
        None => {
            let (source, span, checker) = read_topic(invocation, idle, &stop)?;
            (source, span, checker, true)
        }
    };
    let report = Report::new(source, &checker, span.seconds(), expected, kafka);
    output::out(&report)?;
    if args.json {
        let line = serde_json::to_string(&report).expect("a report always serialises");
        output::out(line)?;
    }
    match report.ok {
        true => Ok(()),
        false => Err(Error::VerifyFailed(report.problems())),
    }
}

/// Checks the topics the settings name, from their beginning until idle for `idle`;
/// returns where it read, for how long, and what it found.
fn read_topic(
    invocation: &Invocation,
    idle: Duration,
    stop: &AtomicBool,
) -> Result<(String, source::Span, Checker), Error> {
    let (settings, warnings) = invocation.settings(std::env::vars())?;
    settings.validate()?;
    let mut checker = Checker::new(settings.run.format);
    logging::init(log::LevelFilter::Warn);
    for w in warnings {
        log::warn!("{w}");
    }
    let k = &settings.kafka;
    let brokers = k.bootstrap().ok_or_else(|| {
        ConfigError::new(
            "--brokers",
            "verify needs brokers, or --file (the embedded mock lives only inside a run)",
        )
    })?;
    let topics = Topics {
        readings: &k.topics.device_data,
        alerts: k.alerts_topic(),
        idle,
    };
    let span = source::kafka(k, &brokers, &topics, &mut checker, stop)?;
    Ok((
        format!("kafka://{brokers}/{}", topics.readings),
        span,
        checker,
    ))
}

/// Checks the readings in file `path` (`-`: stdin), one a line (JSON) or
/// length-delimited (Protobuf).
fn read_file(
    path: &str,
    format: Format,
    checker: &mut Checker,
    stop: &AtomicBool,
) -> Result<source::Span, Error> {
    let input: Box<dyn Read> = match path {
        "-" => Box::new(std::io::stdin().lock()),
        _ => Box::new(
            File::open(path)
                .map_err(|e| ConfigError::new("--file", format!("cannot open {path}: {e}")))?,
        ),
    };
    let input = BufReader::with_capacity(READ_BUFFER, input);
    let read = match format {
        Format::Json => source::lines(input, checker, stop),
        Format::Protobuf => source::delimited(input, checker, stop),
    };
    read.map_err(|source| Error::Input {
        path: path.to_owned(),
        source,
    })
}
