//! Rates that change on their own while a run goes on: `--rate-profile` (ramp, step
//! and burst shapes over wall time) and `--find-max-rate` (a stepped search for the
//! highest rate a cluster sustains within a latency SLO).
//!
//! Both only publish a new fleet-wide target rate through `Live`, as a config reload
//! does: workers re-anchor their pacers at the change, so the schedule each reading's
//! latency is measured from (its due time) is the new rate's, and the latency stays
//! corrected for coordinated omission.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::config::settings::{RunSettings, MAX_RATE};
use crate::deliver::stats::DeliveryStats;
use crate::generate::live::Live;
use crate::units::{parse_duration, parse_rate};

/// Longest profile period or search step: a day.
pub const MAX_PERIOD: Duration = Duration::from_secs(86_400);
/// Most rates a step profile may list.
pub const MAX_STEPS: usize = 1_000;

/// A target rate that follows a shape over the run's wall time.
#[derive(Debug, Clone, PartialEq)]
pub enum RateProfile {
    /// `ramp:FROM..TO/OVER`: linear from FROM to TO over OVER, then TO.
    Ramp { from: f64, to: f64, over: Duration },
    /// `step:R1,R2,.../EACH`: each rate for EACH, then the last one.
    Step { rates: Vec<f64>, each: Duration },
    /// `burst:BASE,PEAK/EVERY,LENGTH`: BASE, with PEAK for the last LENGTH of every
    /// EVERY.
    Burst {
        base: f64,
        peak: f64,
        every: Duration,
        length: Duration,
    },
}

/// The setting's name, for errors.
const PROFILE_KEY: &str = "run.rate_profile";

fn profile_error(text: &str, why: &str) -> String {
    format!(
        "{why}; expected ramp:FROM..TO/OVER, step:R1,R2,.../EACH or burst:BASE,PEAK/EVERY,LENGTH (e.g. ramp:10k..200k/60s), got '{text}'"
    )
}

fn rate(text: &str) -> Result<f64, String> {
    let r = parse_rate(PROFILE_KEY, text.trim()).map_err(|e| e.message)?;
    if r > 0.0 && r <= MAX_RATE {
        Ok(r)
    } else {
        Err(format!(
            "rates must be above 0 and at most {MAX_RATE}, got {text}"
        ))
    }
}

fn period(text: &str) -> Result<Duration, String> {
    let d = parse_duration(PROFILE_KEY, text.trim()).map_err(|e| e.message)?;
    if d >= Duration::from_millis(100) && d <= MAX_PERIOD {
        Ok(d)
    } else {
        Err(format!("durations must be 100ms to 1d, got {text}"))
    }
}

impl FromStr for RateProfile {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let fail = |why: &str| profile_error(text, why);
        let (shape, rest) = text.split_once(':').ok_or_else(|| fail("no shape"))?;
        let (rates, times) = rest.split_once('/').ok_or_else(|| fail("no '/'"))?;
        let profile = match shape.trim() {
            "ramp" => {
                let (from, to) = rates.split_once("..").ok_or_else(|| fail("no '..'"))?;
                RateProfile::Ramp {
                    from: rate(from).map_err(|e| fail(&e))?,
                    to: rate(to).map_err(|e| fail(&e))?,
                    over: period(times).map_err(|e| fail(&e))?,
                }
            }
            "step" => {
                let rates = rates
                    .split(',')
                    .map(rate)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| fail(&e))?;
                if rates.len() > MAX_STEPS {
                    return Err(fail(&format!("at most {MAX_STEPS} rates")));
                }
                RateProfile::Step {
                    rates,
                    each: period(times).map_err(|e| fail(&e))?,
                }
            }
            "burst" => {
                let (base, peak) = rates.split_once(',').ok_or_else(|| fail("no ','"))?;
                let (every, length) = times.split_once(',').ok_or_else(|| fail("no ','"))?;
                let (every, length) = (
                    period(every).map_err(|e| fail(&e))?,
                    period(length).map_err(|e| fail(&e))?,
                );
                if length >= every {
                    return Err(fail("a burst must be shorter than its period"));
                }
                RateProfile::Burst {
                    base: rate(base).map_err(|e| fail(&e))?,
                    peak: rate(peak).map_err(|e| fail(&e))?,
                    every,
                    length,
                }
            }
            other => return Err(fail(&format!("unknown shape '{other}'"))),
        };
        Ok(profile)
    }
}

impl fmt::Display for RateProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = |d: &Duration| humantime::format_duration(*d).to_string();
        match self {
            RateProfile::Ramp { from, to, over } => write!(f, "ramp:{from}..{to}/{}", d(over)),
            RateProfile::Step { rates, each } => {
                let rates: Vec<String> = rates.iter().map(f64::to_string).collect();
                write!(f, "step:{}/{}", rates.join(","), d(each))
            }
            RateProfile::Burst {
                base,
                peak,
                every,
                length,
            } => write!(f, "burst:{base},{peak}/{},{}", d(every), d(length)),
        }
    }
}

impl RateProfile {
    /// The fleet-wide target rate `t` into the run.
    pub fn rate_at(&self, t: Duration) -> f64 {
        match self {
            RateProfile::Ramp { from, to, over } => {
                let x = (t.as_secs_f64() / over.as_secs_f64()).min(1.0);
                from + (to - from) * x
            }
            RateProfile::Step { rates, each } => {
                let i = (t.as_secs_f64() / each.as_secs_f64()) as usize;
                rates[i.min(rates.len() - 1)]
            }
            RateProfile::Burst {
                base,
                peak,
                every,
                length,
            } => {
                let into = t.as_secs_f64() % every.as_secs_f64();
                if into >= (*every - *length).as_secs_f64() {
                    *peak
                } else {
                    *base
                }
            }
        }
    }

    /// The highest rate it ever asks for (the instance sizes for it).
    pub fn peak(&self) -> f64 {
        match self {
            RateProfile::Ramp { from, to, .. } => from.max(*to),
            RateProfile::Step { rates, .. } => rates.iter().cloned().fold(0.0, f64::max),
            RateProfile::Burst { base, peak, .. } => base.max(*peak),
        }
    }
}

/// A latency objective: a quantile of the latency from when each reading was due to
/// its ack, e.g. `p99=50ms`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Slo {
    /// In (0, 1), e.g. 0.99.
    pub quantile: f64,
    pub max: Duration,
}

impl FromStr for Slo {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let fail = |why: &str| {
            format!("{why}; expected pQ=DURATION such as p99=50ms or p99.9=200ms, got '{text}'")
        };
        let (q, max) = text.split_once('=').ok_or_else(|| fail("no '='"))?;
        let q: f64 = q
            .trim()
            .strip_prefix('p')
            .ok_or_else(|| fail("the quantile starts with p"))?
            .parse()
            .map_err(|_| fail("the quantile is not a number"))?;
        if !(q > 0.0 && q < 100.0) {
            return Err(fail("the quantile must be above p0 and below p100"));
        }
        let max = parse_duration("run.latency_slo", max.trim()).map_err(|e| fail(&e.message))?;
        if max.is_zero() || max > Duration::from_secs(600) {
            return Err(fail("the latency must be above 0 and at most 10m"));
        }
        Ok(Slo {
            quantile: q / 100.0,
            max,
        })
    }
}

impl fmt::Display for Slo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "p{}={}",
            self.quantile * 100.0,
            humantime::format_duration(self.max)
        )
    }
}

/// Settings carry profiles and SLOs as their text (`ramp:10k..200k/60s`,
/// `p99=50ms`); a bad one fails at load with the reason, naming the setting.
macro_rules! text_setting {
    ($t:ty, $name:literal, $what:literal) => {
        impl Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                String::deserialize(d)?
                    .parse()
                    .map_err(serde::de::Error::custom)
            }
        }

        impl schemars::JsonSchema for $t {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                $name.into()
            }
            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({ "type": "string", "description": $what })
            }
        }
    };
}

text_setting!(
    RateProfile,
    "RateProfile",
    "ramp:FROM..TO/OVER, step:R1,R2,.../EACH or burst:BASE,PEAK/EVERY,LENGTH"
);
text_setting!(Slo, "Slo", "pQ=DURATION, e.g. p99=50ms");

/// What one search step measured over its measured window.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StepResult {
    /// Fleet-wide target rate, readings per second.
    pub target: f64,
    /// Readings delivered per second in the window.
    pub achieved: f64,
    /// The SLO's quantile and the p50 of the latency in the window, ms; null when
    /// nothing was delivered.
    pub latency_q_ms: Option<f64>,
    pub p50_ms: Option<f64>,
    /// Readings that failed or ended in doubt in the window.
    pub failed: u64,
    pub passed: bool,
}

/// A step passes when it delivers at least this share of its target...
pub const MIN_ACHIEVED: f64 = 0.95;
/// ...and the search stops once the passing and failing rates are this close.
pub const RESOLUTION: f64 = 1.05;
/// The first step's rate when `--rate` does not give one.
pub const FIRST_RATE: f64 = 1_000.0;
/// A search gives up after this many steps.
pub const MAX_SEARCH_STEPS: usize = 40;

/// The search: double the rate while steps pass, then bisect between the highest
/// passing and the lowest failing rate until they are within `RESOLUTION`. A first
/// step that fails halves instead, down to 1 reading/s.
#[derive(Debug, Clone)]
pub struct Search {
    pub slo: Slo,
    pub steps: Vec<StepResult>,
    /// Highest passing and lowest failing rate so far.
    pass: Option<f64>,
    fail: Option<f64>,
    next: Option<f64>,
}

impl Search {
    pub fn new(slo: Slo, first: f64) -> Self {
        Self {
            slo,
            steps: Vec::new(),
            pass: None,
            fail: None,
            next: Some(first.clamp(1.0, MAX_RATE)),
        }
    }

    /// The rate to try next; `None` once the search is over.
    pub fn next_rate(&self) -> Option<f64> {
        self.next
    }

    /// The highest rate that met the SLO, if any did.
    pub fn found(&self) -> Option<f64> {
        self.pass
    }

    /// Judges a step at `target` from its window: `delivered` readings and `failed`
    /// ones in `window`, with the window's latency histogram (µs).
    pub fn record(
        &mut self,
        target: f64,
        delivered: u64,
        failed: u64,
        window: Duration,
        latency_us: &Histogram<u64>,
    ) {
        let achieved = delivered as f64 / window.as_secs_f64();
        let ms =
            |q: f64| (!latency_us.is_empty()).then(|| latency_us.value_at_quantile(q) as f64 / 1e3);
        let latency_q_ms = ms(self.slo.quantile);
        let passed = failed == 0
            && achieved >= MIN_ACHIEVED * target
            && latency_q_ms.is_some_and(|l| l <= self.slo.max.as_secs_f64() * 1e3);
        self.steps.push(StepResult {
            target,
            achieved,
            latency_q_ms,
            p50_ms: ms(0.5),
            failed,
            passed,
        });
        if passed {
            self.pass = Some(self.pass.map_or(target, |p| p.max(target)));
        } else {
            self.fail = Some(self.fail.map_or(target, |f| f.min(target)));
        }
        self.next = self.choose();
    }

    fn choose(&self) -> Option<f64> {
        if self.steps.len() >= MAX_SEARCH_STEPS {
            return None;
        }
        match (self.pass, self.fail) {
            (Some(p), None) => (p < MAX_RATE).then(|| (p * 2.0).min(MAX_RATE)),
            (None, Some(f)) => (f > 1.0).then(|| (f / 2.0).max(1.0)),
            (Some(p), Some(f)) if f / p > RESOLUTION => Some((p * f).sqrt()),
            _ => None,
        }
    }
}

/// The search's outcome, in the summary (`search` in the JSON summary).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SearchReport {
    /// The latency objective, e.g. `p99=50ms`.
    pub slo: String,
    /// The highest fleet-wide rate that met it, readings per second; null if none did.
    pub found: Option<f64>,
    /// Every step, in the order run.
    pub steps: Vec<StepResult>,
}

impl From<Search> for SearchReport {
    fn from(s: Search) -> Self {
        Self {
            slo: s.slo.to_string(),
            found: s.found(),
            steps: s.steps,
        }
    }
}

impl SearchReport {
    /// The per-step table and the result, as printed after the summary.
    pub fn lines(&self) -> Vec<String> {
        let ms = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.1}"));
        let quantile = self.slo.split('=').next().unwrap_or("q");
        let mut lines = vec![format!(
            "find-max-rate ({}): {:>5} {:>14} {:>14} {:>10} {:>10} {:>8}  result",
            self.slo,
            "step",
            "target/s",
            "achieved/s",
            "p50 ms",
            format!("{quantile} ms"),
            "failed"
        )];
        for (i, s) in self.steps.iter().enumerate() {
            lines.push(format!(
                "find-max-rate ({}): {:>5} {:>14.1} {:>14.1} {:>10} {:>10} {:>8}  {}",
                self.slo,
                i + 1,
                s.target,
                s.achieved,
                ms(s.p50_ms),
                ms(s.latency_q_ms),
                s.failed,
                if s.passed { "pass" } else { "fail" }
            ));
        }
        lines.push(match self.found {
            Some(r) => format!(
                "find-max-rate: {r:.0} readings/s is the highest rate that met {}",
                self.slo
            ),
            None => format!("find-max-rate: no rate met {}", self.slo),
        });
        lines
    }
}

/// How often a ramp may change the target: each change re-anchors every worker's
/// pacer, so a smooth ramp is a staircase of 100 ms steps.
const RAMP_TICK: Duration = Duration::from_millis(100);
/// The start of each search step that is not measured: the queue left by the step
/// before drains in it, and the pacers settle on the new rate.
pub const SETTLE_SHARE: f64 = 0.3;

/// Cumulative delivery counts and latency at one instant of a search step.
#[derive(Debug, Clone)]
pub struct Mark {
    at: Instant,
    delivered: u64,
    failed: u64,
    latency_us: Histogram<u64>,
}

impl Mark {
    fn now(deliveries: &DeliveryStats) -> Self {
        deliveries.with(|d| Mark {
            at: Instant::now(),
            delivered: d.delivered,
            failed: d.failed + d.in_doubt,
            latency_us: d.latency.clone(),
        })
    }
}

/// What changes the target rate while the run goes on.
#[derive(Debug)]
pub enum Driver {
    Profile {
        profile: RateProfile,
        /// The rate last published and when.
        last: Option<(f64, Instant)>,
    },
    Search(Box<Stepper>),
}

/// A search in progress: which step, and where in it.
#[derive(Debug)]
pub struct Stepper {
    search: Search,
    step: Duration,
    /// When the step in progress started, and its measuring mark once taken.
    started: Instant,
    mark: Option<Mark>,
    /// Whether the warm-up step (the first rate, not judged: connections, metadata
    /// and topic creation settle in it) is over.
    warm: bool,
    /// After a failed step: generation paused until the readings it left queued
    /// are delivered, so they do not count against the next step.
    draining: bool,
}

impl Driver {
    pub fn profile(profile: RateProfile) -> Self {
        Driver::Profile {
            profile,
            last: None,
        }
    }

    pub fn search(slo: Slo, first: f64, step: Duration) -> Self {
        Driver::Search(Box::new(Stepper {
            search: Search::new(slo, first),
            step,
            started: Instant::now(),
            mark: None,
            warm: false,
            draining: false,
        }))
    }

    /// The rate to start the run with.
    pub fn first_rate(&self) -> f64 {
        match self {
            Driver::Profile { profile, .. } => profile.rate_at(Duration::ZERO),
            Driver::Search(s) => s.search.next_rate().unwrap_or(FIRST_RATE),
        }
    }

    /// The search, once it is over or stopped.
    pub fn into_search(self) -> Option<Search> {
        match self {
            Driver::Search(s) => Some(s.search),
            Driver::Profile { .. } => None,
        }
    }

    /// Called by the reporter on every tick, `elapsed` into the run, with the readings
    /// `sent` so far: publishes the next rate when it is due. Returns true when the
    /// search is over and the run should stop.
    pub fn tick(
        &mut self,
        elapsed: Duration,
        live: &Live,
        deliveries: &DeliveryStats,
        sent: u64,
    ) -> bool {
        match self {
            Driver::Profile { profile, last } => {
                let now = Instant::now();
                let rate = profile.rate_at(elapsed);
                let due = last.is_none_or(|(r, at)| r != rate && now - at >= RAMP_TICK);
                if due {
                    publish_rate(live, rate);
                    *last = Some((rate, now));
                }
                false
            }
            Driver::Search(s) => s.tick(live, deliveries, sent),
        }
    }
}

impl Stepper {
    fn tick(&mut self, live: &Live, deliveries: &DeliveryStats, sent: u64) -> bool {
        let Some(target) = self.search.next_rate() else {
            return true;
        };
        let now = Instant::now();
        let into = now - self.started;
        if self.draining {
            self.drain(live, deliveries, sent, target);
            return false;
        }
        if self.mark.is_none() && into.as_secs_f64() >= SETTLE_SHARE * self.step.as_secs_f64() {
            self.mark = Some(Mark::now(deliveries));
        }
        if into < self.step {
            return false;
        }
        self.started = now;
        if !self.warm {
            log::info!("find-max-rate: warm-up step at {target:.0}/s done");
            (self.warm, self.mark) = (true, None);
            return false;
        }
        let passed = self.judge(target, deliveries);
        match self.search.next_rate() {
            // A failed step may leave a queue behind: pause (1 reading/s) until it
            // drains.
            Some(_) if !passed => {
                self.draining = true;
                publish_rate(live, 1.0);
                false
            }
            Some(rate) => {
                publish_rate(live, rate);
                false
            }
            None => true,
        }
    }

    /// Ends a pause once what the failed step left queued is delivered (or after three
    /// steps' time), and starts the next step.
    fn drain(&mut self, live: &Live, deliveries: &DeliveryStats, sent: u64, target: f64) {
        let into = self.started.elapsed();
        let settled = deliveries.with(|d| d.delivered + d.failed + d.in_doubt);
        let queued = sent.saturating_sub(settled);
        if queued as f64 <= (0.01 * target).max(100.0) || into >= 3 * self.step {
            log::info!(
                "find-max-rate: drained in {:.1} s ({queued} readings still queued)",
                into.as_secs_f64()
            );
            (self.draining, self.started, self.mark) = (false, Instant::now(), None);
            publish_rate(live, target);
        }
    }

    /// Records the step that just ended at `target`, from its measuring mark to now;
    /// returns whether it passed.
    fn judge(&mut self, target: f64, deliveries: &DeliveryStats) -> bool {
        let to = Mark::now(deliveries);
        let from = self.mark.take().unwrap_or_else(|| to.clone());
        let mut window = to.latency_us.clone();
        // The window's latency: the whole run's histogram at its end less that at its
        // start (counts only grow, so this cannot fail).
        let _ = window.subtract(&from.latency_us);
        self.search.record(
            target,
            to.delivered - from.delivered,
            to.failed - from.failed,
            (to.at - from.at).max(Duration::from_millis(1)),
            &window,
        );
        let last = self.search.steps.last().expect("just recorded");
        log::info!(
            "find-max-rate: {:.1}/s achieved {:.1}/s, {} {} ms: {}",
            last.target,
            last.achieved,
            self.search.slo,
            last.latency_q_ms.map_or("-".into(), |l| format!("{l:.1}")),
            if last.passed { "pass" } else { "fail" }
        );
        last.passed
    }
}

/// The driver `run` asks for, if any: `run.rate_profile` or `run.find_max_rate`.
/// Created when the run starts, so that the first step is whole.
pub fn driver_for(run: &RunSettings) -> Option<Driver> {
    if let Some(profile) = &run.rate_profile {
        return Some(Driver::profile(profile.clone()));
    }
    let slo = run.latency_slo.filter(|_| run.find_max_rate)?;
    let first = run.target_rate().unwrap_or(FIRST_RATE);
    Some(Driver::search(slo, first, run.search_step.0))
}

/// Publishes `rate` as the fleet-wide target, keeping the rest of the live settings.
fn publish_rate(live: &Live, rate: f64) {
    let (mut settings, _) = live.get();
    settings.rate = Some(rate);
    live.publish(settings);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_parse_and_follow_their_shape() {
        let ramp: RateProfile = "ramp:10k..200k/60s".parse().unwrap();
        assert_eq!(ramp.rate_at(Duration::ZERO), 10_000.0);
        assert_eq!(ramp.rate_at(Duration::from_secs(30)), 105_000.0);
        assert_eq!(ramp.rate_at(Duration::from_secs(90)), 200_000.0);
        let step: RateProfile = "step:50k,100k,150k/30s".parse().unwrap();
        assert_eq!(step.rate_at(Duration::from_secs(29)), 50_000.0);
        assert_eq!(step.rate_at(Duration::from_secs(30)), 100_000.0);
        assert_eq!(step.rate_at(Duration::from_secs(300)), 150_000.0);
        assert_eq!(step.peak(), 150_000.0);
        let burst: RateProfile = "burst:1k,20k/10s,2s".parse().unwrap();
        assert_eq!(burst.rate_at(Duration::from_secs(7)), 1_000.0);
        assert_eq!(burst.rate_at(Duration::from_millis(8_500)), 20_000.0);
        assert_eq!(burst.rate_at(Duration::from_secs(11)), 1_000.0);
        // Display gives back what parses to the same profile.
        for p in [ramp, step, burst] {
            assert_eq!(p.to_string().parse::<RateProfile>().unwrap(), p);
        }
    }

    #[test]
    fn bad_profiles_say_what_is_wrong() {
        for (text, why) in [
            ("wave:1..2/1s", "unknown shape"),
            ("ramp:10k/60s", "no '..'"),
            ("ramp:0..10k/60s", "above 0"),
            ("ramp:1..2e10/60s", "at most"),
            ("step:1k,2k/2d", "100ms to 1d"),
            ("burst:1k,2k/1s,1s", "shorter than its period"),
            ("ramp:1..2", "no '/'"),
        ] {
            let e = text.parse::<RateProfile>().unwrap_err();
            assert!(e.contains(why) && e.contains(text), "{text}: {e}");
        }
    }

    #[test]
    fn slos_parse() {
        let s: Slo = "p99=50ms".parse().unwrap();
        assert_eq!((s.quantile, s.max), (0.99, Duration::from_millis(50)));
        assert!(("p99.9=1s".parse::<Slo>().unwrap().quantile - 0.999).abs() < 1e-12);
        for bad in ["99=50ms", "p100=1s", "p99=0s", "p99=1h", "p99"] {
            assert!(bad.parse::<Slo>().is_err(), "{bad}");
        }
    }

    /// A cluster that sustains `capacity` with 2 ms latency and queues beyond it.
    fn measure(search: &mut Search, capacity: f64) {
        let target = search.next_rate().unwrap();
        let mut h = crate::deliver::stats::histogram();
        let (delivered, latency_us) = if target <= capacity {
            (target, 2_000)
        } else {
            (capacity, 900_000)
        };
        h.record_n(latency_us, 100).unwrap();
        search.record(target, delivered as u64, 0, Duration::from_secs(1), &h);
    }

    #[test]
    fn the_search_brackets_the_capacity_within_its_resolution() {
        for capacity in [3_700.0, 150_000.0, 2_345_678.0] {
            let mut s = Search::new("p99=50ms".parse().unwrap(), FIRST_RATE);
            while s.next_rate().is_some() {
                measure(&mut s, capacity);
            }
            let found = s.found().unwrap();
            assert!(found <= capacity, "{found} > {capacity}");
            assert!(
                found * RESOLUTION >= capacity,
                "{found} too low for {capacity}"
            );
            assert!(s.steps.len() < MAX_SEARCH_STEPS);
        }
        // Nothing passes: halving to 1/s, then no rate found.
        let mut s = Search::new("p99=50ms".parse().unwrap(), FIRST_RATE);
        while s.next_rate().is_some() {
            measure(&mut s, 0.5);
        }
        assert_eq!(s.found(), None);
        assert_eq!(s.steps.last().unwrap().target, 1.0);
    }
}
