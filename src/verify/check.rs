//! Checks a stream of readings and alerts, message by message: schema, key, partition
//! and each device's `seq` sequence.
//!
//! A device's readings carry `seq` 0, 1, 2, ... and a topic is read from its beginning,
//! so for each device the checker keeps the next `seq` it expects and the ranges it
//! skipped (holes). A `seq` above the expected one opens a hole (loss, unless it is
//! filled later); one inside a hole fills it (a reordering: it came after a later
//! reading); any other `seq` below the expected one was seen before (a duplicate).
//! At the end, whatever is still in a hole is lost. Readings missing after a device's
//! last one leave no hole; `--expect N` finds them by the count.
//!
//! Alerts have no sequence of their own: per device and sensor their reading `seq`
//! rises, so an alert at the same `seq` as the last one is a duplicate and one below it
//! is out of order.

use std::collections::{BTreeMap, HashMap};

use hdrhistogram::Histogram;

use crate::config::settings::Format;
use crate::verify::fast::{self, Key};
use crate::verify::message::{self, Invalid};
use crate::verify::protobuf;

/// The largest device index verify tracks: the fleet's documented maximum
/// (`device.simulator.device_count` ≤ 10,000,000), so per-device state is bounded.
pub const MAX_DEVICE_INDEX: u64 = 10_000_000;

/// Where a message came from: its key and partition when read from Kafka.
#[derive(Debug, Clone, Copy, Default)]
pub struct Origin<'a> {
    pub key: Option<&'a [u8]>,
    pub partition: Option<i32>,
    /// When it was read, ms since the Unix epoch, for the end-to-end latency.
    pub read_at_ms: Option<u64>,
}

#[derive(Debug, Clone, Copy)]
struct Device {
    /// The next `seq` expected (one past the highest seen); 0 before the first reading.
    next: u64,
    readings: u64,
    /// The partition of the device's first reading; -1 before it or without Kafka.
    partition: i32,
    /// Per analog sensor, 1 + the `seq` of the last alert (0: none yet).
    alert_next: [u64; 4],
}

const NEW: Device = Device {
    next: 0,
    readings: 0,
    partition: -1,
    alert_next: [0; 4],
};

/// Counts, per kind of finding.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    pub readings: u64,
    pub alerts: u64,
    /// Distinct devices with at least one valid reading.
    pub devices: u64,
    /// Readings missing below some device's highest `seq`.
    pub gaps: u64,
    /// Readings whose `seq` was already seen for their device.
    pub duplicates: u64,
    /// Readings that arrived after a later one of their device.
    pub reorders: u64,
    /// Messages that do not parse or break a schema rule, the key rule included.
    pub invalid: u64,
    /// Readings on another partition than their device's first (Kafka only).
    pub misplaced: u64,
    pub alert_duplicates: u64,
    pub alert_reorders: u64,
}

/// The checker's state over one stream.
pub struct Checker {
    /// How the messages are encoded (`run.format`).
    format: Format,
    devices: Vec<Device>,
    /// Skipped `seq` ranges `[from, to)` per device index, in order; rarely any.
    holes: HashMap<u64, Vec<(u64, u64)>>,
    counts: Counts,
    /// Invalid messages per reason.
    pub reasons: BTreeMap<Invalid, u64>,
    /// End-to-end latency in ms: read time minus the reading's `timestamp`.
    pub latency_ms: Histogram<u64>,
    /// Readings whose `timestamp` is after the time they were read (clock skew).
    pub from_the_future: u64,
}

impl Default for Checker {
    fn default() -> Self {
        Self {
            format: Format::Json,
            devices: Vec::new(),
            holes: HashMap::new(),
            counts: Counts::default(),
            reasons: BTreeMap::new(),
            // 1 ms to 1 day at 3 significant digits: a fixed, small size.
            latency_ms: Histogram::new_with_bounds(1, 86_400_000, 3)
                .expect("constant histogram bounds are valid"),
            from_the_future: 0,
        }
    }
}

impl Checker {
    /// A checker of messages in `format`.
    pub fn new(format: Format) -> Self {
        Self {
            format,
            ..Self::default()
        }
    }

    /// Checks one reading's payload. JSON takes the fast path if it is in the
    /// encoder's layout, else the general parser, which also names what is wrong;
    /// Protobuf is decoded into the same checked view.
    pub fn reading(&mut self, payload: &[u8], origin: Origin) {
        let checked = match self.format {
            Format::Json => match fast::reading(payload) {
                Some(k) => self.accept(k, origin),
                None => message::reading(payload).and_then(|r| self.accept(key(&r), origin)),
            },
            Format::Protobuf => protobuf::reading(payload)
                .and_then(|p| p.view().and_then(|r| self.accept(key(&r), origin))),
        };
        if let Err(reason) = checked {
            self.invalid(reason);
        }
    }

    /// Checks one alert's payload.
    pub fn alert(&mut self, payload: &[u8], origin: Origin) {
        let checked = match self.format {
            Format::Json => message::alert(payload).and_then(|a| self.accept_alert(&a, origin)),
            Format::Protobuf => protobuf::alert(payload)
                .and_then(|p| p.view().and_then(|a| self.accept_alert(&a, origin))),
        };
        if let Err(reason) = checked {
            self.invalid(reason);
        }
    }

    /// Counts a valid alert against its device's and sensor's last one.
    fn accept_alert(&mut self, a: &message::Alert, origin: Origin) -> Result<(), Invalid> {
        let dev = self.device(a.device_id, origin)?;
        let next = &mut self.devices[dev].alert_next[a.sensor.index()];
        let counts = &mut self.counts;
        match (a.seq + 1).cmp(next) {
            std::cmp::Ordering::Greater => *next = a.seq + 1,
            std::cmp::Ordering::Equal => counts.alert_duplicates += 1,
            std::cmp::Ordering::Less => counts.alert_reorders += 1,
        }
        counts.alerts += 1;
        Ok(())
    }

    /// Counts a message that is invalid for `reason`, such as one cut short.
    pub fn invalid(&mut self, reason: Invalid) {
        self.counts.invalid += 1;
        *self.reasons.entry(reason).or_default() += 1;
    }

    /// The device's index, after checking its id and the message key.
    fn device(&mut self, id: &str, origin: Origin) -> Result<usize, Invalid> {
        if origin.key.is_some_and(|k| k != id.as_bytes()) {
            return Err("key is not the device_id");
        }
        let index = message::device_index(id)?;
        if index >= MAX_DEVICE_INDEX {
            return Err("device index beyond the fleet maximum of 10000000");
        }
        let i = index as usize;
        if i >= self.devices.len() {
            self.devices.resize(i + 1, NEW);
        }
        Ok(i)
    }

    /// Counts a valid reading against its device's sequence.
    fn accept(&mut self, r: Key, origin: Origin) -> Result<(), Invalid> {
        let i = self.device(r.device_id, origin)?;
        let d = &mut self.devices[i];
        let c = &mut self.counts;
        c.readings += 1;
        if d.readings == 0 {
            c.devices += 1;
        }
        d.readings += 1;
        if let Some(p) = origin.partition {
            if d.partition < 0 {
                d.partition = p;
            } else if d.partition != p {
                c.misplaced += 1;
            }
        }
        if let Some(at) = origin.read_at_ms {
            match at.checked_sub(r.timestamp) {
                Some(ms) => self.latency_ms.saturating_record(ms.max(1)),
                None => self.from_the_future += 1,
            }
        }
        let seq = r.seq;
        if seq == d.next {
            d.next += 1;
        } else if seq > d.next {
            self.holes.entry(i as u64).or_default().push((d.next, seq));
            c.gaps += seq - d.next;
            d.next = seq + 1;
        } else if fill(self.holes.get_mut(&(i as u64)), seq) {
            c.gaps -= 1;
            c.reorders += 1;
        } else {
            c.duplicates += 1;
        }
        Ok(())
    }

    /// The counts so far.
    pub fn counts(&self) -> &Counts {
        &self.counts
    }
}

/// What the sequence checks need from a reading's checked view.
fn key<'a>(r: &message::Reading<'a>) -> Key<'a> {
    Key {
        device_id: r.device_id,
        seq: r.seq,
        timestamp: r.timestamp,
    }
}

/// Removes `seq` from `holes` if it lies in one; true if it did.
fn fill(holes: Option<&mut Vec<(u64, u64)>>, seq: u64) -> bool {
    let Some(holes) = holes else {
        return false;
    };
    let Some(at) = holes.iter().position(|&(a, b)| a <= seq && seq < b) else {
        return false;
    };
    let (a, b) = holes[at];
    match (seq == a, seq + 1 == b) {
        (true, true) => {
            holes.remove(at);
        }
        (true, false) => holes[at].0 = seq + 1,
        (false, true) => holes[at].1 = seq,
        (false, false) => {
            holes[at].1 = seq;
            holes.insert(at + 1, (seq + 1, b));
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(device: u64, seq: u64) -> String {
        format!(
            r#"{{"device_id":"device_{device:06}","seq":{seq},"timestamp":1000,"location":{{"building":"A","floor":1,"room":"101"}},"sensors":{{"temperature":{{"value":18.18,"unit":"°C","status":"normal"}},"humidity":{{"value":59.92,"unit":"%","status":"normal"}},"pressure":{{"value":1000.0,"unit":"hPa","status":"normal"}},"switch_status":{{"value":true,"status":"on"}},"current":{{"value":1.16,"unit":"A","status":"normal"}}}},"device_info":{{"model":"M","firmware":"1","battery":72,"signal_strength":-68}}}}"#
        )
    }

    fn check(seqs: &[(u64, u64)]) -> Counts {
        let mut c = Checker::default();
        for &(d, s) in seqs {
            c.reading(reading(d, s).as_bytes(), Origin::default());
        }
        c.counts().clone()
    }

    #[test]
    fn gaps_duplicates_and_reorders_are_told_apart_exactly() {
        let clean = check(&[(0, 0), (1, 0), (0, 1), (1, 1), (0, 2)]);
        assert_eq!((clean.readings, clean.devices, clean.gaps), (5, 2, 0));
        // 0 1 [2 3 missing] 4 5, then 3 arrives late, then 1 and 5 again.
        let c = check(&[(0, 0), (0, 1), (0, 4), (0, 5), (0, 3), (0, 1), (0, 5)]);
        assert_eq!((c.gaps, c.reorders, c.duplicates), (1, 1, 2));
        // A device whose first readings are missing has a gap from 0.
        let late = check(&[(7, 3), (7, 4), (7, 0)]);
        assert_eq!((late.gaps, late.reorders, late.duplicates), (2, 1, 0));
        // Filling a hole from its middle splits it; a second fill of the same seq is a duplicate.
        let mid = check(&[(0, 0), (0, 10), (0, 5), (0, 5), (0, 1), (0, 9)]);
        assert_eq!((mid.gaps, mid.reorders, mid.duplicates), (6, 3, 1));
    }

    #[test]
    fn keys_partitions_and_bad_payloads_are_counted() {
        let mut c = Checker::default();
        let r = reading(3, 0);
        let at = |key: &'static [u8], partition| Origin {
            key: Some(key),
            partition: Some(partition),
            read_at_ms: Some(1250),
        };
        c.reading(r.as_bytes(), at(b"device_000003", 2));
        c.reading(reading(3, 1).as_bytes(), at(b"device_000003", 5));
        c.reading(reading(3, 2).as_bytes(), at(b"device_000004", 2));
        c.reading(b"{not json", Origin::default());
        c.reading(reading(10_000_000, 0).as_bytes(), Origin::default());
        let n = c.counts();
        assert_eq!((n.readings, n.misplaced, n.invalid), (2, 1, 3));
        assert_eq!(c.reasons["key is not the device_id"], 1);
        assert_eq!(c.latency_ms.len(), 2);
        assert_eq!(c.latency_ms.max(), 250);
    }

    #[test]
    fn alert_repeats_are_duplicates_per_sensor() {
        let alert = |seq: u64, sensor: &str| {
            format!(
                r#"{{"device_id":"device_000001","sensor":"{sensor}","level":"warning","previous":"normal","value":3.1,"threshold":3.0,"unit":"{}","timestamp":1,"seq":{seq}}}"#,
                if sensor == "current" { "A" } else { "%" }
            )
        };
        let mut c = Checker::default();
        for (seq, sensor) in [
            (0, "current"),
            (0, "humidity"),
            (4, "current"),
            (4, "current"),
            (2, "current"),
        ] {
            c.alert(alert(seq, sensor).as_bytes(), Origin::default());
        }
        let n = c.counts();
        assert_eq!((n.alerts, n.alert_duplicates, n.alert_reorders), (5, 1, 1));
    }
}
