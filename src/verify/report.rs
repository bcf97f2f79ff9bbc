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
    /// The checker's counts, as top-level fields of the JSON report.
    #[serde(flatten)]
    pub counts: Counts,
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
        let counts = checker.counts().clone();
        let c = &counts;
        let h = &checker.latency_ms;
        let e2e_latency_ms = (kafka && !h.is_empty()).then(|| E2eLatency {
            p50: h.value_at_quantile(0.5),
            p95: h.value_at_quantile(0.95),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
        });
        let clean =
            c.gaps + c.duplicates + c.reorders + c.invalid + c.misplaced + c.alert_duplicates == 0;
        let msgs = c.readings + c.alerts + c.invalid;
        let ok = clean && expected.is_none_or(|n| n == c.readings);
        Self {
            source,
            counts,
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
            ok,
        }
    }

    /// What failed, for the error message; empty if it passed.
    pub fn problems(&self) -> String {
        let c = &self.counts;
        let mut p = Vec::new();
        for (n, what) in [
            (c.gaps, "missing"),
            (c.duplicates, "duplicated"),
            (c.reorders, "out of order"),
            (c.invalid, "invalid"),
            (c.misplaced, "on a second partition"),
            (c.alert_duplicates, "duplicated alerts"),
        ] {
            if n > 0 {
                p.push(format!("{n} {what}"));
            }
        }
        if let Some(e) = self.expected.filter(|&e| e != c.readings) {
            p.push(format!("{} readings where {e} were expected", c.readings));
        }
        p.join(", ")
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.counts;
        writeln!(
            f,
            "{} readings from {} devices, {} alerts, read from {} in {:.2} s ({:.0} msg/s)",
            c.readings, c.devices, c.alerts, self.source, self.elapsed_s, self.msgs_per_sec
        )?;
        writeln!(
            f,
            "gaps {}, duplicates {}, reorders {}, invalid {}, misplaced {}; alerts: duplicates {}, reorders {}",
            c.gaps,
            c.duplicates,
            c.reorders,
            c.invalid,
            c.misplaced,
            c.alert_duplicates,
            c.alert_reorders
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
