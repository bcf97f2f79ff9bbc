//! Progress lines during the run and the summary at the end, in the style of Kafka's
//! `kafka-producer-perf-test`, plus the machine-readable JSON summary.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::config::{Run, SinkKind};
use crate::deliver::kafka::settings::KafkaSettings;
use crate::deliver::stats::DeliveryStats;
use crate::error::Error;
use crate::generate::live::Live;
use crate::generate::stats::Generated;
use crate::output;
use crate::shutdown::StopReason;

const MB: f64 = 1024.0 * 1024.0;

/// Share of the target rate a run must achieve not to have missed it.
pub const MET_SHARE: f64 = 0.95;

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    pub avg: f64,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Latency {
    /// From a histogram of microseconds.
    pub fn from_us(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Self {
            avg: h.mean() / 1000.0,
            p50: ms(h.value_at_quantile(0.50)),
            p95: ms(h.value_at_quantile(0.95)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
        }
    }
}

/// The outcome of a run. Invariant, for readings and for alerts apart:
/// `sent == delivered + failed + in_doubt`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    /// Readings generated and handed to the sink.
    pub messages_sent: u64,
    /// Readings the sink confirmed (Kafka acks, or written to stdout).
    pub messages_delivered: u64,
    /// Readings that failed, for any reason; see `errors`.
    pub messages_failed: u64,
    /// Readings whose fate the broker knows and the client does not (in flight when
    /// purged or timed out).
    pub messages_in_doubt: u64,
    /// Payload bytes delivered.
    pub bytes: u64,
    pub elapsed_s: f64,
    /// Delivered readings per second over the run after any warm-up, flush included.
    pub msgs_per_sec: f64,
    /// Delivered alerts per second over the whole run.
    pub alerts_per_sec: f64,
    /// Delivered readings and alerts per second: what the cluster took.
    pub total_per_sec: f64,
    pub mb_per_sec: f64,
    /// From when each reading was due (its slot on the `--rate` schedule, or when it
    /// was made if unpaced) to its ack: includes time waiting in the batch, behind
    /// backpressure and behind a late schedule.
    pub latency_ms: Latency,
    /// From the hand-off to librdkafka to the ack: what the cluster and client took.
    pub ack_latency_ms: Latency,
    pub devices: u64,
    /// Worker threads that ran.
    pub cores: usize,
    pub seed: u64,
    pub sink: String,
    /// Total time workers waited for the delivery thread (backpressure), summed over workers.
    pub blocked_s: f64,
    /// Why the run stopped: `messages`, `duration`, `signal`, `stdout closed` or `error`.
    pub stop_reason: StopReason,
    /// The target rate (`--rate`, as last reloaded), readings per second: this
    /// instance's share of it when `run.instance_count` > 1.
    pub target_rate: Option<f64>,
    /// Readings generated per second while generating (the final flush excluded).
    pub achieved_rate: f64,
    /// Whether the run achieved less than 95 % of the target rate (not judged, false,
    /// when a reload changed the rate during the run).
    pub target_missed: bool,
    /// Configuration reloads applied during the run.
    pub config_reloads: u64,
    /// Reloads refused (invalid file, or a change that needs a restart).
    pub config_reload_failures: u64,
    /// Alerts raised by status transitions and handed to the sink (0 when alerts are off).
    pub alerts_sent: u64,
    pub alerts_delivered: u64,
    pub alerts_failed: u64,
    pub alerts_in_doubt: u64,
    /// What the warm-up counted (null without one): included in the totals above, left
    /// out of the rates and the latency.
    pub warmup: Option<Warmup>,
    /// Failure reasons with counts.
    pub errors: BTreeMap<String, u64>,
    /// Readings dropped at generation because the delivery side was behind
    /// (`--on-backpressure drop`): never sent, so not in `messages_sent`.
    pub messages_dropped: u64,
    /// Alerts dropped with them.
    pub alerts_dropped: u64,
    /// Produce requests librdkafka retried, as of its last statistics report (1 s).
    pub retries: u64,
    /// Errors librdkafka reported (lost connections, brokers down, failed
    /// authentication); each was logged as it happened.
    pub client_errors: u64,
    /// Time the brokers throttled iotblast (the throttle time in their responses, as
    /// a quota such as `producer_byte_rate` imposes), summed over every response of
    /// every connection, s; connections are throttled side by side, so it can exceed
    /// `elapsed_s`.
    #[serde(default)]
    pub throttle_s: f64,
    /// The longest single throttle a broker asked for, ms.
    #[serde(default)]
    pub throttle_max_ms: u64,
    /// How long some partition produced to had fewer in-sync replicas than its topic's
    /// `min.insync.replicas`, so that with acks=all its leader refused writes
    /// (NOT_ENOUGH_REPLICAS), s; read from the brokers' metadata once a second.
    #[serde(default)]
    pub under_min_isr_s: f64,
    /// What went wrong, in words: the cause of a figure above, what it did to the run,
    /// what to change (see `notes`). Absent when there is nothing to explain.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// `run.find_max_rate`'s steps and result; absent for other runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search: Option<crate::engine::schedule::SearchReport>,
}

impl Summary {
    /// True when every reading and every alert is accounted for.
    pub fn is_balanced(&self) -> bool {
        self.messages_sent
            == self.messages_delivered + self.messages_failed + self.messages_in_doubt
            && self.alerts_sent == self.alerts_delivered + self.alerts_failed + self.alerts_in_doubt
    }

    /// Whether anything was not confirmed delivered.
    fn unconfirmed(&self) -> bool {
        self.messages_failed + self.messages_in_doubt + self.alerts_failed + self.alerts_in_doubt
            > 0
    }
}

/// What the warm-up counted (`run.warmup`): included in the totals, left out of the
/// rates and the latency.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Warmup {
    pub seconds: f64,
    pub messages_sent: u64,
    pub messages_delivered: u64,
    pub alerts_sent: u64,
    pub alerts_delivered: u64,
    pub bytes_delivered: u64,
}

/// What a finished run counted, to build its summary from.
pub struct Finished<'a> {
    pub run: &'a Run,
    pub generated: Generated,
    pub deliveries: &'a DeliveryStats,
    pub live: &'a Live,
    pub elapsed: Duration,
    /// How long generation took, until the last worker ended (the flush excluded).
    pub generation: Duration,
    /// Worker threads that ran.
    pub cores: usize,
    pub stop_reason: StopReason,
    /// The warm-up's counts, if the run had one and got past it.
    pub warmup: Option<Warmup>,
}

/// Delivered readings, alerts, both, and MB per second after the warm-up.
fn measured_rates(d: &crate::deliver::stats::Deliveries, f: &Finished<'_>) -> [f64; 4] {
    let w = f.warmup.unwrap_or_default();
    let span = f.elapsed.saturating_sub(Duration::from_secs_f64(w.seconds));
    let readings = d.delivered - w.messages_delivered;
    let alerts = d.alerts_delivered - w.alerts_delivered;
    let (per_sec, mb) = rates(readings, d.bytes_delivered - w.bytes_delivered, span);
    [
        per_sec,
        rates(alerts, 0, span).0,
        rates(readings + alerts, 0, span).0,
        mb,
    ]
}

impl Summary {
    /// The summary of a finished run. Readings the workers could not hand over count
    /// as failed ("lost at handoff").
    pub fn collect(f: Finished<'_>) -> Self {
        let g = f.generated;
        let summary = f.deliveries.with(|d| {
            let mut errors = d.errors.clone();
            if g.lost > 0 {
                *errors.entry("lost at handoff".into()).or_default() += g.lost;
            }
            if g.lost_alerts > 0 {
                *errors.entry("alerts: lost at handoff".into()).or_default() += g.lost_alerts;
            }
            let [msgs_per_sec, alerts_per_sec, total_per_sec, mb_per_sec] = measured_rates(d, &f);
            // Each instance paces its share of the fleet's rate (its share of the devices).
            let share = crate::generate::topology::instance_share(f.run);
            let target_rate = f.live.get().0.rate.map(|r| r * share);
            let achieved_rate = rates(g.messages, 0, f.generation).0;
            Summary {
                messages_sent: g.messages,
                messages_delivered: d.delivered,
                messages_failed: d.failed + g.lost,
                messages_in_doubt: d.in_doubt,
                bytes: d.bytes_delivered,
                elapsed_s: f.elapsed.as_secs_f64(),
                msgs_per_sec,
                alerts_per_sec,
                total_per_sec,
                mb_per_sec,
                latency_ms: Latency::from_us(&d.latency),
                ack_latency_ms: Latency::from_us(&d.ack_latency),
                devices: f.run.devices(),
                cores: f.cores,
                seed: f.run.seed,
                sink: f.run.sink.name().into(),
                blocked_s: g.blocked_ns as f64 / 1e9,
                stop_reason: f.stop_reason,
                target_rate,
                achieved_rate,
                // One average cannot be judged against a target that changed mid-run.
                target_missed: f.live.rate_changes.load(Relaxed) == 0
                    && target_rate.is_some_and(|t| achieved_rate < MET_SHARE * t),
                config_reloads: f.live.reloads.load(Relaxed),
                config_reload_failures: f.live.reload_failures.load(Relaxed),
                alerts_sent: g.alerts,
                alerts_delivered: d.alerts_delivered,
                alerts_failed: d.alerts_failed + g.lost_alerts,
                alerts_in_doubt: d.alerts_in_doubt,
                warmup: f.warmup,
                errors,
                messages_dropped: g.dropped,
                alerts_dropped: g.dropped_alerts,
                retries: d.retries,
                client_errors: d.client_errors,
                throttle_s: d.throttle_ms as f64 / 1e3,
                throttle_max_ms: d.throttle_max_ms,
                under_min_isr_s: d.under_min_isr.seconds,
                notes: Vec::new(),
                search: None,
            }
        });
        let summary = Summary {
            notes: notes(&summary, &f.run.settings.kafka),
            ..summary
        };
        if !summary.is_balanced() {
            log::error!(
                "accounting mismatch: {} sent but {} delivered + {} failed + {} in doubt; alerts: {} sent but {} delivered + {} failed + {} in doubt",
                summary.messages_sent,
                summary.messages_delivered,
                summary.messages_failed,
                summary.messages_in_doubt,
                summary.alerts_sent,
                summary.alerts_delivered,
                summary.alerts_failed,
                summary.alerts_in_doubt
            );
        }
        summary
    }

    /// Prints the summary lines and the failure reasons where KPT prints its summary,
    /// a missed target on stderr, and, with `json`, the JSON summary as the last line
    /// of stdout (everything on stderr when stdout carries the readings). Fails only
    /// when the JSON summary cannot be written to stdout.
    pub fn print(&self, json: bool, sink: SinkKind) -> Result<(), Error> {
        let to_stderr = sink == SinkKind::Stdout;
        for line in summary_lines(self) {
            output::report(to_stderr, line);
        }
        if let (true, Some(target)) = (self.target_missed, self.target_rate) {
            let throttled = match self.throttle_s > 0.0 {
                true => "; the brokers throttled iotblast (see the note)",
                false => "",
            };
            output::err(format_args!(
                "target rate missed: achieved {:.1} of {target:.1} msg/s{throttled}",
                self.achieved_rate
            ));
        }
        for line in self.search.iter().flat_map(|s| s.lines()) {
            output::report(to_stderr, line);
        }
        for (reason, n) in &self.errors {
            if reason.contains("in doubt: ") {
                output::report(to_stderr, format_args!("  {n} {reason}"));
            } else {
                output::report(to_stderr, format_args!("  {n} failed: {reason}"));
            }
        }
        for note in &self.notes {
            output::report(to_stderr, format_args!("  note: {note}"));
        }
        if !json {
            return Ok(());
        }
        let line = serde_json::to_string(self).expect("summary serialises");
        if to_stderr {
            output::err(line);
            Ok(())
        } else {
            output::out(line)
        }
    }

    /// `Ok` when every reading and alert was delivered, the counts balance and the
    /// target rate, if any, was met. Undelivered messages outrank a missed target.
    pub fn outcome(&self) -> Result<(), Error> {
        if self.stop_reason == StopReason::StdoutClosed {
            // `| head` is a normal way to end a stdout run; what could not be written
            // is counted as failed, not delivered.
            Ok(())
        } else if self.unconfirmed() || !self.is_balanced() {
            Err(Error::Undelivered {
                readings: self.messages_failed + self.messages_in_doubt,
                alerts: self.alerts_failed + self.alerts_in_doubt,
            })
        } else if let Some(s) = self.search.as_ref().filter(|s| s.found.is_none()) {
            Err(Error::NoRateMetSlo { slo: s.slo.clone() })
        } else if let (true, Some(target)) = (self.target_missed, self.target_rate) {
            Err(Error::TargetMissed {
                achieved: self.achieved_rate,
                target,
            })
        } else {
            Ok(())
        }
    }
}

/// One progress line for an interval.
pub fn progress_line(
    messages: u64,
    bytes: u64,
    failed: u64,
    interval: Duration,
    latency: &Histogram<u64>,
) -> String {
    let secs = interval.as_secs_f64().max(1e-9);
    let l = Latency::from_us(latency);
    let mut line = format!(
        "{messages} records sent, {:.1} records/sec ({:.2} MB/sec), {:.1} ms avg latency, {:.1} ms max latency.",
        messages as f64 / secs,
        bytes as f64 / MB / secs,
        l.avg,
        l.max
    );
    if failed > 0 {
        line.push_str(&format!(" {failed} failed."));
    }
    line
}

/// The final summary, as two lines: the first exactly in `kafka-producer-perf-test`'s
/// format (so its parsers read it), the second with the outcome of every message.
pub fn summary_lines(s: &Summary) -> [String; 2] {
    let l = &s.latency_ms;
    // KPT prints its percentiles as whole milliseconds, truncated.
    let whole = |ms: f64| ms as u64;
    let kpt = format!(
        "{} records sent, {:.1} records/sec ({:.2} MB/sec), {:.2} ms avg latency, {:.2} ms max latency, {} ms 50th, {} ms 95th, {} ms 99th, {} ms 99.9th.",
        s.messages_sent,
        s.msgs_per_sec,
        s.mb_per_sec,
        l.avg,
        l.max,
        whole(l.p50),
        whole(l.p95),
        whole(l.p99),
        whole(l.p999)
    );
    let a = &s.ack_latency_ms;
    let mut outcome = format!(
        "{} delivered, {} failed, {} in doubt. Ack latency {:.2} ms avg, {:.0} ms 50th, {:.0} ms 99th.",
        s.messages_delivered, s.messages_failed, s.messages_in_doubt, a.avg, a.p50, a.p99
    );
    if s.messages_dropped > 0 {
        outcome.push_str(&format!(
            " {} readings and {} alerts dropped at generation (--on-backpressure drop).",
            s.messages_dropped, s.alerts_dropped
        ));
    }
    if s.retries + s.client_errors > 0 {
        outcome.push_str(&format!(
            " librdkafka: {} retries, {} errors.",
            s.retries, s.client_errors
        ));
    }
    if s.throttle_s > 0.0 {
        outcome.push_str(&format!(
            " Throttled by the brokers for {:.1} s, at most {} ms at once.",
            s.throttle_s, s.throttle_max_ms
        ));
    }
    if s.alerts_sent > 0 {
        outcome.push_str(&format!(
            " {} alerts sent, {} delivered, {} failed, {} in doubt.",
            s.alerts_sent, s.alerts_delivered, s.alerts_failed, s.alerts_in_doubt
        ));
    }
    [kpt, outcome]
}

/// Plain words for what went wrong, from the summary's figures and the settings that
/// explain them. Each note names the cause, what it did to the run and what to change.
///
/// Why timeouts get a note of their own: librdkafka retries a broker's retriable
/// errors (NOT_ENOUGH_REPLICAS among them) until `message.timeout.ms` and then reports
/// only the timeout, so the failure reason alone cannot say what the cluster was doing.
fn notes(s: &Summary, k: &KafkaSettings) -> Vec<String> {
    let mut notes = Vec::new();
    if s.throttle_s > 0.0 {
        let mut note = format!(
            "the brokers throttled produce requests for {:.1} s in all (at most {} ms at once): a broker quota on this client (producer_byte_rate or request_percentage, set with kafka-configs for its client.id or user) held the rate back, not iotblast",
            s.throttle_s, s.throttle_max_ms
        );
        if s.target_missed {
            note.push_str("; that is why the target rate was missed");
        }
        notes.push(note);
    }
    // Readings and alerts, failed and in doubt alike.
    let count = |code: &str| -> u64 {
        s.errors
            .iter()
            .filter(|(reason, _)| reason.contains(code))
            .map(|(_, n)| n)
            .sum()
    };
    let timed_out = count("MessageTimedOut");
    if timed_out > 0 {
        notes.push(format!(
            "{timed_out} messages got no acknowledgement within message.timeout.ms ({}): with acks=all a partition's leader acknowledges a write only once min.insync.replicas in-sync replicas hold it, so a leader that is down or frozen, or cut off from its followers, stalls it (brokers whose in-sync replicas fell below min.insync.replicas answer NOT_ENOUGH_REPLICAS, which librdkafka retries until this timeout); what was in flight when it timed out is in doubt and may be in the topic; a longer message.timeout.ms rides out a longer outage",
            humantime::format_duration(k.message_timeout())
        ));
        if k.idempotent() {
            notes.push(
                "with enable.idempotence, librdkafka bumps the producer epoch after a timeout and would send the messages it is still retrying under new sequence numbers, which a broker cannot recognise as second copies (librdkafka issue #4953): so iotblast stopped the run at the first timeout and purged what librdkafka held, so that no reading is written twice; the purged readings are failed (never sent) or in doubt (sent, perhaps written once)".into(),
            );
        }
    }
    if s.under_min_isr_s > 0.0 {
        let timed_out = count("NOT_ENOUGH_REPLICAS");
        let outcome = match timed_out {
            0 => "librdkafka retried them until the replicas were back".to_owned(),
            n => format!(
                "{n} of them timed out first (message.timeout.ms) and are counted with that reason"
            ),
        };
        notes.push(format!(
            "for about {:.0} s some partitions had fewer in-sync replicas than their topic's min.insync.replicas (brokers down or behind), so with acks=all their leaders refused writes with NOT_ENOUGH_REPLICAS; {outcome}",
            s.under_min_isr_s
        ));
    }
    let not_enough = count("NotEnoughReplicas");
    if not_enough > 0 {
        notes.push(format!(
            "{not_enough} messages failed with NOT_ENOUGH_REPLICAS: the partition's in-sync replicas fell below the topic's min.insync.replicas, so with acks=all its leader refused them; writes succeed again once enough replicas rejoin the ISR"
        ));
    }
    let denied = count("TopicAuthorizationFailed");
    if denied > 0 {
        notes.push(format!(
            "{denied} messages failed with TOPIC_AUTHORIZATION_FAILED: the brokers do not let this principal write the topic; grant it WRITE (and DESCRIBE) on the topic"
        ));
    }
    notes
}

/// Throughput in messages and MB per second.
pub fn rates(messages: u64, bytes: u64, elapsed: Duration) -> (f64, f64) {
    let secs = elapsed.as_secs_f64().max(1e-9);
    (messages as f64 / secs, bytes as f64 / MB / secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_summary() -> Summary {
        Summary {
            messages_sent: 1000,
            messages_delivered: 998,
            messages_failed: 2,
            messages_in_doubt: 0,
            bytes: 500_000,
            elapsed_s: 2.0,
            msgs_per_sec: 499.0,
            alerts_per_sec: 0.0,
            total_per_sec: 499.0,
            mb_per_sec: 0.24,
            latency_ms: Latency {
                avg: 12.345,
                p50: 11.9,
                p95: 20.2,
                p99: 30.7,
                p999: 41.0,
                max: 45.5,
            },
            ack_latency_ms: Latency::default(),
            devices: 10,
            cores: 1,
            seed: 1,
            sink: "kafka".into(),
            blocked_s: 0.0,
            stop_reason: StopReason::Messages,
            target_rate: None,
            achieved_rate: 500.0,
            target_missed: false,
            config_reloads: 0,
            config_reload_failures: 0,
            alerts_sent: 0,
            alerts_delivered: 0,
            alerts_failed: 0,
            alerts_in_doubt: 0,
            warmup: None,
            errors: BTreeMap::new(),
            messages_dropped: 0,
            alerts_dropped: 0,
            retries: 0,
            client_errors: 0,
            throttle_s: 0.0,
            throttle_max_ms: 0,
            under_min_isr_s: 0.0,
            notes: Vec::new(),
            search: None,
        }
    }

    #[test]
    fn notes_say_what_throttling_and_timeouts_mean() {
        let mut s = sample_summary();
        let mut k = KafkaSettings::default();
        assert!(notes(&s, &k).is_empty(), "nothing to explain");
        (s.throttle_s, s.throttle_max_ms, s.target_missed) = (2.5, 800, true);
        s.errors.insert(
            "in doubt: Message production error: MessageTimedOut (Local: Message timed out)".into(),
            3,
        );
        s.errors.insert(
            "alerts: Message production error: MessageTimedOut (Local: Message timed out)".into(),
            1,
        );
        // -X wins over kafka.producer, and delivery.timeout.ms is message.timeout.ms.
        k.librdkafka
            .insert("enable.idempotence".into(), "true".into());
        k.librdkafka
            .insert("delivery.timeout.ms".into(), "4000".into());
        let n = notes(&s, &k);
        assert_eq!(n.len(), 3, "{n:?}");
        assert!(
            n[0].contains("2.5 s in all (at most 800 ms at once)")
                && n[0].contains("not iotblast")
                && n[0].contains("that is why the target rate was missed"),
            "{n:?}"
        );
        assert!(
            n[1].starts_with("4 messages got no acknowledgement within message.timeout.ms (4s)"),
            "{n:?}"
        );
        assert!(n[2].contains("librdkafka issue #4953"), "{n:?}");
        k.librdkafka.clear();
        assert_eq!(notes(&s, &k).len(), 2, "no idempotence, no duplicates note");
    }

    #[test]
    fn latency_is_reported_in_ms() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3).unwrap();
        for us in 1..=1000 {
            h.record(us * 10).unwrap();
        }
        let l = Latency::from_us(&h);
        assert!((l.p50 - 5.0).abs() < 0.01, "{l:?}");
        assert!((l.max - 10.0).abs() < 0.01, "{l:?}");
        let line = progress_line(5000, 5 * 1024 * 1024, 0, Duration::from_secs(5), &h);
        // kafka-producer-perf-test's final line, field for field: `%d records sent,
        // %.1f records/sec (%.2f MB/sec), %.2f ms avg latency, %.2f ms max latency,
        // %d ms 50th, %d ms 95th, %d ms 99th, %d ms 99.9th.`
        let [kpt, outcome] = summary_lines(&sample_summary());
        assert_eq!(kpt, "1000 records sent, 499.0 records/sec (0.24 MB/sec), 12.35 ms avg latency, 45.50 ms max latency, 11 ms 50th, 20 ms 95th, 30 ms 99th, 41 ms 99.9th.");
        assert_eq!(
            outcome,
            "998 delivered, 2 failed, 0 in doubt. Ack latency 0.00 ms avg, 0 ms 50th, 0 ms 99th."
        );
        assert!(line.starts_with("5000 records sent, 1000.0 records/sec (1.00 MB/sec), 5.0 ms avg latency, 10.0 ms max latency."), "{line}");
    }
}
