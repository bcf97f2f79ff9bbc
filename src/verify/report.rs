//! What `verify` found: counts, consume rate and end-to-end latency, as text or as one
//! JSON object, and whether it passes.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::verify::check::{Checker, Counts};

/// End-to-end latency percentiles in ms (read time minus the reading's timestamp).
#[derive(Debug, Clone, Serialize)]
pub struct E2eLatency {
    pub p50: u64,
    pub p95: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

/// The outcome of one `verify`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `kafka://BROKERS/TOPIC`, a file path, or `-` for stdin.
    pub source: String,
    pub readings: u64,
    pub alerts: u64,
    pub devices: u64,
    pub gaps: u64,
    pub duplicates: u64,
    pub reorders: u64,
    pub invalid: u64,
    /// Readings on another partition than their device's first (Kafka only).
    pub misplaced: u64,
    pub alert_duplicates: u64,
    pub alert_reorders: u64,
    /// Invalid messages by reason.
    pub invalid_reasons: BTreeMap<String, u64>,
    /// `--expect`, if given.
    pub expected: Option<u64>,
    /// From the first message read to the last.
    pub elapsed_s: f64,
    /// Messages (readings and alerts) read per second over `elapsed_s`.
    pub msgs_per_sec: f64,
    /// Kafka only; none from a file, whose lines were written at another time.
    pub e2e_latency_ms: Option<E2eLatency>,
    /// Readings stamped later than they were read (clocks out of step).
    pub timestamps_in_the_future: u64,
    /// Whether nothing was lost, duplicated, misplaced or invalid, and the count
    /// matched `expected`.
    pub ok: bool,
}

impl Report {
    /// The report over what `checker` saw in `elapsed_s`.
    pub fn new(
        source: String,
        checker: &Checker,
        elapsed_s: f64,
        expected: Option<u64>,
        kafka: bool,
    ) -> Self {
        let Counts {
            readings,
            alerts,
            devices,
            gaps,
            duplicates,
            reorders,
            invalid,
            misplaced,
            alert_duplicates,
            alert_reorders,
        } = checker.counts().clone();
        let h = &checker.latency_ms;
        let e2e_latency_ms = (kafka && !h.is_empty()).then(|| E2eLatency {
            p50: h.value_at_quantile(0.5),
            p95: h.value_at_quantile(0.95),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
        });
        let clean = gaps + duplicates + reorders + invalid + misplaced + alert_duplicates == 0;
        let msgs = readings + alerts + invalid;
        Self {
            source,
            readings,
            alerts,
            devices,
            gaps,
            duplicates,
            reorders,
            invalid,
            misplaced,
            alert_duplicates,
            alert_reorders,
            invalid_reasons: checker
                .reasons
                .iter()
                .map(|(k, v)| ((*k).to_owned(), *v))
                .collect(),
            expected,
            elapsed_s,
            msgs_per_sec: if elapsed_s > 0.0 {
                msgs as f64 / elapsed_s
            } else {
                0.0
            },
            e2e_latency_ms,
            timestamps_in_the_future: checker.from_the_future,
            ok: clean && expected.is_none_or(|n| n == readings),
        }
    }

    /// What failed, for the error message; empty if it passed.
    pub fn problems(&self) -> String {
        let mut p = Vec::new();
        for (n, what) in [
            (self.gaps, "missing"),
            (self.duplicates, "duplicated"),
            (self.reorders, "out of order"),
            (self.invalid, "invalid"),
            (self.misplaced, "on a second partition"),
            (self.alert_duplicates, "duplicated alerts"),
        ] {
            if n > 0 {
                p.push(format!("{n} {what}"));
            }
        }
        if let Some(e) = self.expected.filter(|&e| e != self.readings) {
            p.push(format!(
                "{} readings where {e} were expected",
                self.readings
            ));
        }
        p.join(", ")
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} readings from {} devices, {} alerts, read from {} in {:.2} s ({:.0} msg/s)",
            self.readings,
            self.devices,
            self.alerts,
            self.source,
            self.elapsed_s,
            self.msgs_per_sec
        )?;
        writeln!(
            f,
            "gaps {}, duplicates {}, reorders {}, invalid {}, misplaced {}; alerts: duplicates {}, reorders {}",
            self.gaps,
            self.duplicates,
            self.reorders,
            self.invalid,
            self.misplaced,
            self.alert_duplicates,
            self.alert_reorders
        )?;
        for (reason, n) in &self.invalid_reasons {
            writeln!(f, "  invalid: {n} × {reason}")?;
        }
        if let Some(l) = &self.e2e_latency_ms {
            writeln!(
                f,
                "end-to-end latency ms: p50 {}, p95 {}, p99 {}, p99.9 {}, max {}",
                l.p50, l.p95, l.p99, l.p999, l.max
            )?;
        }
        if self.timestamps_in_the_future > 0 {
            writeln!(
                f,
                "{} readings were stamped after they were read: clocks out of step",
                self.timestamps_in_the_future
            )?;
        }
        match self.ok {
            true => write!(f, "verify: ok"),
            false => write!(f, "verify: FAILED: {}", self.problems()),
        }
    }
}
