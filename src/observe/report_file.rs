//! The run report (`run.report_file`) and `iotblast report merge`: one JSON file per
//! run with its summary, its latency histograms and its intervals, and the exact
//! merge of several instances' reports into the summary of the whole fleet.
//!
//! Why histograms and not percentiles: percentiles of instances cannot be combined
//! (the p99 of two p99s is not a p99). HdrHistograms add exactly, so the merged
//! report's percentiles are those of one histogram holding every instance's readings.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::deliver::stats::Deliveries;
use crate::error::{ConfigError, Error};
use crate::generate::topology::split;
use crate::observe::progress::IntervalRecord;
use crate::observe::report::{Latency, Summary, Warmup, MET_SHARE};

/// Names the format, so that a later, different one is refused rather than misread.
pub const FORMAT: &str = "iotblast-report/1";

/// Everything one run reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunReport {
    pub format: String,
    /// The iotblast version that wrote it.
    pub version: String,
    pub instance_index: u64,
    pub instance_count: u64,
    /// Wall-clock start of the run, Unix seconds.
    pub started_unix_s: f64,
    /// Seconds from the start until the last worker stopped generating.
    pub generation_s: f64,
    pub summary: Summary,
    /// Whole-run latency histograms, µs.
    pub histograms: Histograms,
    /// Every reporting interval, each with its own latency histogram.
    pub intervals: Vec<IntervalRecord>,
}

/// Latency histograms (µs), HdrHistogram V2 with deflate, base64.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Histograms {
    /// From when each reading was due to its ack (the summary's `latency_ms`).
    pub latency_us: String,
    /// From the hand-off to librdkafka to the ack (`ack_latency_ms`).
    pub ack_latency_us: String,
}

impl Histograms {
    /// The run's histograms.
    pub fn of(d: &Deliveries) -> Self {
        Self {
            latency_us: encode_histogram(&d.latency),
            ack_latency_us: encode_histogram(&d.ack_latency),
        }
    }
}

/// A histogram as base64 of its V2-deflate serialization.
pub fn encode_histogram(h: &Histogram<u64>) -> String {
    let mut bytes = Vec::new();
    V2DeflateSerializer::new()
        .serialize(h, &mut bytes)
        .expect("serialising to memory cannot fail");
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The histogram `text` encodes; `what` names it in the error.
pub fn decode_histogram(text: &str, what: &str) -> Result<Histogram<u64>, String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|e| format!("{what}: not base64: {e}"))?;
    Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(|e| format!("{what}: not an HdrHistogram: {e:?}"))
}

impl RunReport {
    /// Writes the report as one JSON document to `out` (`run.report_file`, created
    /// before the run so that a bad path fails first).
    pub fn write(&self, out: &mut impl std::io::Write, path: &Path) -> Result<(), Error> {
        let text = serde_json::to_string(self).expect("the report serialises");
        writeln!(out, "{text}")
            .and_then(|()| out.flush())
            .map_err(|e| {
                ConfigError::new(
                    "run.report_file",
                    format!("cannot write '{}': {e}", path.display()),
                )
                .into()
            })
    }

    /// Reads and checks a report file.
    pub fn read(path: &Path) -> Result<Self, Error> {
        let name = path.display().to_string();
        let bad = |m: String| Error::from(ConfigError::new(name.clone(), m));
        let text = std::fs::read_to_string(path).map_err(|e| bad(format!("cannot read: {e}")))?;
        let r: RunReport = serde_json::from_str(&text)
            .map_err(|e| bad(format!("not an iotblast run report: {e}")))?;
        if r.format != FORMAT {
            return Err(bad(format!(
                "report format {:?}, this iotblast reads {FORMAT:?}",
                r.format
            )));
        }
        Ok(r)
    }

    /// The wall-clock window `[start, end]` (Unix seconds) of the measured part of the
    /// run: after the warm-up, until the end of the flush.
    fn measured(&self) -> (f64, f64) {
        let w = self.summary.warmup.map_or(0.0, |w| w.seconds);
        let s = self.started_unix_s;
        (s + w, s + self.summary.elapsed_s)
    }
}

/// The merged reports: a summary of the whole fleet and its histograms.
pub struct Merged {
    pub summary: Summary,
    pub latency: Histogram<u64>,
    pub ack_latency: Histogram<u64>,
}

/// Adds the reports up exactly: counts are summed, histograms added, and rates taken
/// over the union of the instances' wall-clock windows (so K instances running side
/// by side have K times one instance's rate, and instances run one after another are
/// not credited with time none of them ran).
pub fn merge(reports: &[(PathBuf, RunReport)]) -> Result<Merged, Error> {
    if reports.is_empty() {
        return Err(ConfigError::new("report merge", "no report files given").into());
    }
    refuse_duplicates(reports)?;
    let (latency, ack_latency) = add_histograms(reports)?;
    Ok(Merged {
        summary: merged_summary(reports, &latency, &ack_latency),
        latency,
        ack_latency,
    })
}

/// Refuses two reports of the same instance, which would count its readings twice.
fn refuse_duplicates(reports: &[(PathBuf, RunReport)]) -> Result<(), Error> {
    let mut seen: BTreeMap<(u64, u64), &Path> = BTreeMap::new();
    for (path, r) in reports {
        if let Some(other) = seen.insert((r.instance_index, r.instance_count), path) {
            return Err(ConfigError::new(
                path.display().to_string(),
                format!(
                    "is instance {} of {}, like '{}': each instance's report may be merged once",
                    r.instance_index,
                    r.instance_count,
                    other.display()
                ),
            )
            .into());
        }
    }
    Ok(())
}

/// Every report's histograms, added.
fn add_histograms(
    reports: &[(PathBuf, RunReport)],
) -> Result<(Histogram<u64>, Histogram<u64>), Error> {
    let mut latency = crate::deliver::stats::histogram();
    let mut ack_latency = crate::deliver::stats::histogram();
    for (path, r) in reports {
        let name = path.display().to_string();
        let add = |into: &mut Histogram<u64>, text: &str, what: &str| {
            decode_histogram(text, what)
                .and_then(|h| into.add(&h).map_err(|e| format!("{what}: {e:?}")))
                .map_err(|m| Error::from(ConfigError::new(name.clone(), m)))
        };
        add(
            &mut latency,
            &r.histograms.latency_us,
            "histograms.latency_us",
        )?;
        add(
            &mut ack_latency,
            &r.histograms.ack_latency_us,
            "histograms.ack_latency_us",
        )?;
    }
    Ok((latency, ack_latency))
}

/// The fleet's summary: counts summed, rates over the union of the windows.
fn merged_summary(
    reports: &[(PathBuf, RunReport)],
    latency: &Histogram<u64>,
    ack_latency: &Histogram<u64>,
) -> Summary {
    let first = &reports[0].1;
    let all: Vec<&Summary> = reports.iter().map(|(_, r)| &r.summary).collect();
    let sum = |f: fn(&Summary) -> u64| all.iter().map(|s| f(s)).sum::<u64>();
    let sum_f = |f: fn(&Summary) -> f64| all.iter().map(|s| f(s)).sum::<f64>();
    let windows = |f: fn(&RunReport) -> (f64, f64)| {
        union_seconds(reports.iter().map(|(_, r)| f(r)).collect())
    };
    let measured_s = windows(RunReport::measured);
    let generation_s = windows(|r| (r.started_unix_s, r.started_unix_s + r.generation_s));
    let elapsed_s = windows(|r| (r.started_unix_s, r.started_unix_s + r.summary.elapsed_s));
    let warmup = merged_warmup(&all);
    let w = warmup.unwrap_or_default();
    let delivered = sum(|s| s.messages_delivered);
    let alerts_delivered = sum(|s| s.alerts_delivered);
    let bytes = sum(|s| s.bytes);
    let per = |n: u64| n as f64 / measured_s.max(1e-9);
    let target_rate = all
        .iter()
        .map(|s| s.target_rate)
        .sum::<Option<f64>>()
        .filter(|_| all.iter().all(|s| s.target_rate.is_some()));
    let messages_sent = sum(|s| s.messages_sent);
    let achieved_rate = messages_sent as f64 / generation_s.max(1e-9);
    Summary {
        messages_sent,
        messages_delivered: delivered,
        messages_failed: sum(|s| s.messages_failed),
        messages_in_doubt: sum(|s| s.messages_in_doubt),
        bytes,
        elapsed_s,
        msgs_per_sec: per(delivered - w.messages_delivered),
        alerts_per_sec: per(alerts_delivered - w.alerts_delivered),
        total_per_sec: per(delivered + alerts_delivered
            - w.messages_delivered
            - w.alerts_delivered),
        mb_per_sec: per(bytes - w.bytes_delivered) / (1024.0 * 1024.0),
        latency_ms: Latency::from_us(latency),
        ack_latency_ms: Latency::from_us(ack_latency),
        devices: merged_devices(reports),
        cores: all.iter().map(|s| s.cores).sum(),
        seed: first.summary.seed,
        sink: first.summary.sink.clone(),
        blocked_s: sum_f(|s| s.blocked_s),
        // The most serious reason any instance stopped for.
        stop_reason: all.iter().map(|s| s.stop_reason).max().expect("non-empty"),
        target_rate,
        achieved_rate,
        target_missed: target_rate.is_some_and(|t| achieved_rate < MET_SHARE * t)
            && all.iter().all(|s| s.config_reloads == 0),
        config_reloads: sum(|s| s.config_reloads),
        config_reload_failures: sum(|s| s.config_reload_failures),
        alerts_sent: sum(|s| s.alerts_sent),
        alerts_delivered,
        alerts_failed: sum(|s| s.alerts_failed),
        alerts_in_doubt: sum(|s| s.alerts_in_doubt),
        warmup,
        errors: merged_errors(&all),
        messages_dropped: sum(|s| s.messages_dropped),
        alerts_dropped: sum(|s| s.alerts_dropped),
        retries: sum(|s| s.retries),
        client_errors: sum(|s| s.client_errors),
        throttle_s: sum_f(|s| s.throttle_s),
        throttle_max_ms: all.iter().map(|s| s.throttle_max_ms).max().unwrap_or(0),
        // Instances share the cluster: its partitions were short of replicas for as
        // long as the longest any instance saw.
        under_min_isr_s: all.iter().map(|s| s.under_min_isr_s).fold(0.0, f64::max),
        // Each instance's notes explain its own figures, not the fleet's sums.
        notes: Vec::new(),
        // Each instance searched its own share; their searches do not merge.
        search: None,
    }
}

/// Failure reasons with their counts summed.
/// The devices the instances simulated: a run's `devices` is its whole fleet, and each
/// instance had its slice of it.
fn merged_devices(reports: &[(PathBuf, RunReport)]) -> u64 {
    reports
        .iter()
        .map(|(_, r)| {
            let slices = split(r.summary.devices, r.instance_count.max(1) as usize);
            slices
                .get(r.instance_index as usize)
                .map_or(0, |s| s.end - s.start)
        })
        .sum()
}

fn merged_errors(all: &[&Summary]) -> BTreeMap<String, u64> {
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    for s in all {
        for (reason, n) in &s.errors {
            *errors.entry(reason.clone()).or_default() += n;
        }
    }
    errors
}

/// The warm-ups' counts summed, and the longest warm-up; none if any instance had none.
fn merged_warmup(all: &[&Summary]) -> Option<Warmup> {
    all.iter().try_fold(Warmup::default(), |acc, s| {
        s.warmup.map(|w| Warmup {
            seconds: acc.seconds.max(w.seconds),
            messages_sent: acc.messages_sent + w.messages_sent,
            messages_delivered: acc.messages_delivered + w.messages_delivered,
            alerts_sent: acc.alerts_sent + w.alerts_sent,
            alerts_delivered: acc.alerts_delivered + w.alerts_delivered,
            bytes_delivered: acc.bytes_delivered + w.bytes_delivered,
        })
    })
}

/// The length of the union of `[start, end]` windows.
pub fn union_seconds(mut windows: Vec<(f64, f64)>) -> f64 {
    windows.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut total = 0.0;
    let mut current: Option<(f64, f64)> = None;
    for (s, e) in windows {
        current = match current {
            Some((cs, ce)) if s <= ce => Some((cs, ce.max(e))),
            Some((cs, ce)) => {
                total += ce - cs;
                Some((s, e))
            }
            None => Some((s, e)),
        };
    }
    total + current.map_or(0.0, |(s, e)| e - s)
}

/// `iotblast report merge FILE...`: prints the merged summary as a run prints its own;
/// the exit status is a run's, judged on the merged counts.
pub fn run_merge(files: &[PathBuf], json: bool) -> Result<(), Error> {
    let reports = read_all(files)?;
    let merged = merge(&reports)?;
    let instances: Vec<String> = reports
        .iter()
        .map(|(p, r)| {
            format!(
                "{} (instance {} of {}, {} readings)",
                p.display(),
                r.instance_index,
                r.instance_count,
                r.summary.messages_sent
            )
        })
        .collect();
    crate::output::err(format_args!(
        "merged {} reports: {}",
        reports.len(),
        instances.join(", ")
    ));
    merged.summary.print(json, crate::config::SinkKind::Kafka)?;
    merged.summary.outcome()
}

/// Reads every file, in the order given.
pub fn read_all(files: &[PathBuf]) -> Result<Vec<(PathBuf, RunReport)>, Error> {
    files
        .iter()
        .map(|p| RunReport::read(p).map(|r| (p.clone(), r)))
        .collect()
}

/// The run's report, from what the engine has at the end.
pub struct Parts<'a> {
    pub run: &'a crate::config::Run,
    pub started_unix_s: f64,
    pub generation_s: f64,
    pub summary: &'a Summary,
    pub histograms: Histograms,
    pub intervals: Vec<IntervalRecord>,
}

impl From<Parts<'_>> for RunReport {
    fn from(p: Parts<'_>) -> Self {
        RunReport {
            format: FORMAT.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            instance_index: p.run.settings.run.instance_index,
            instance_count: p.run.settings.run.instance_count,
            started_unix_s: p.started_unix_s,
            generation_s: p.generation_s,
            summary: p.summary.clone(),
            histograms: p.histograms,
            intervals: p.intervals,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_united_not_added() {
        assert_eq!(union_seconds(vec![(0.0, 10.0), (5.0, 12.0)]), 12.0);
        assert_eq!(union_seconds(vec![(20.0, 25.0), (0.0, 10.0)]), 15.0);
        assert_eq!(
            union_seconds(vec![(0.0, 10.0), (0.0, 10.0), (1.0, 2.0)]),
            10.0
        );
        assert_eq!(union_seconds(vec![]), 0.0);
    }

    #[test]
    fn a_histogram_survives_the_round_trip() {
        let mut h = crate::deliver::stats::histogram();
        for v in [1, 10, 100, 1000, 123_456] {
            h.record(v).unwrap();
        }
        let back = decode_histogram(&encode_histogram(&h), "h").unwrap();
        assert_eq!(back, h);
        assert!(decode_histogram("!!", "h")
            .unwrap_err()
            .contains("not base64"));
    }
}
