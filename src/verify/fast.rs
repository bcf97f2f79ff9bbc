//! A fast path for readings in the exact layout iotblast's encoder writes: the same
//! checks as `message::reading`, made by walking the fixed field order once instead
//! of a general JSON parse.
//!
//! Why hand-written: serde_json spends most of a reading in its ~45 strings (keys and
//! enum values), about 1.4 µs a reading on this machine, which holds verify's file rate
//! under 1M lines/s on one core. `benches/verify.rs` keeps the comparison.
//!
//! It only ever says "valid" or "not my layout". Anything it does not recognise (other
//! key order, whitespace, escapes in a label, a broken value) returns `None`, and the
//! caller runs the general parser, which gives the verdict and the reason. So the fast
//! path can make verify faster, never more lenient; a test feeds both paths the same
//! readings and mutations of them.

/// What the checker needs from a valid reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key<'a> {
    pub device_id: &'a str,
    pub seq: u64,
    pub timestamp: u64,
}

struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

const STATUSES: [&[u8]; 4] = [b"normal", b"warning", b"error", b"offline"];
const OFFLINE: usize = 3;
const KINDS: [&[u8]; 6] = [
    b"spike",
    b"drift",
    b"stuck",
    b"dropout",
    b"chatter",
    b"battery_drain",
];
const TARGETS: [&[u8]; 6] = [
    b"temperature",
    b"humidity",
    b"pressure",
    b"current",
    b"switch_status",
    b"battery",
];

impl<'a> Cursor<'a> {
    fn lit(&mut self, s: &[u8]) -> Option<()> {
        let rest = self.b.get(self.i..)?;
        rest.starts_with(s).then(|| self.i += s.len())
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
        self.i - start
    }

    /// A JSON non-negative integer (no sign, no leading zero) that fits a u64.
    fn uint(&mut self) -> Option<u64> {
        let start = self.i;
        let n = self.digits();
        let text = &self.b[start..self.i];
        if n == 0 || (n > 1 && text[0] == b'0') || n > 20 {
            return None;
        }
        std::str::from_utf8(text).ok()?.parse().ok()
    }

    /// A JSON integer, possibly negative, that fits an i64.
    fn int(&mut self) -> Option<i64> {
        let negative = self.lit(b"-").is_some();
        let v = i64::try_from(self.uint()?).ok()?;
        Some(if negative { -v } else { v })
    }

    /// A JSON number (any) or null; true for null.
    fn number_or_null(&mut self) -> Option<bool> {
        if self.lit(b"null").is_some() {
            return Some(true);
        }
        self.lit(b"-");
        let start = self.i;
        let n = self.digits();
        // At most 17 integer digits and a 2-digit exponent: always a finite f64, as
        // the parser requires; anything longer is left to it.
        if n == 0 || n > 17 || (n > 1 && self.b[start] == b'0') {
            return None;
        }
        if self.lit(b".").is_some() && self.digits() == 0 {
            return None;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if !(1..=2).contains(&self.digits()) {
                return None;
            }
        }
        Some(false)
    }

    /// A JSON string without escapes or control characters, after its opening quote
    /// was matched; returns its text. (The payload was checked to be UTF-8.)
    fn plain_string(&mut self) -> Option<&'a [u8]> {
        let start = self.i;
        loop {
            match self.peek()? {
                b'"' => break,
                b'\\' | 0..=0x1f => return None,
                _ => self.i += 1,
            }
        }
        let s = &self.b[start..self.i];
        self.i += 1;
        Some(s)
    }

    /// One of `options`, then a closing quote; returns its index.
    fn one_of(&mut self, options: &[&[u8]]) -> Option<usize> {
        let s = self.plain_string()?;
        options.iter().position(|o| *o == s)
    }

    /// `"<sensor>":{"value":V,"unit":"U","status":"S"}`, with null exactly when offline.
    fn analog(&mut self, name: &[u8], unit: &[u8]) -> Option<()> {
        self.lit(b"\"")?;
        self.lit(name)?;
        self.lit(b"\":{\"value\":")?;
        let null = self.number_or_null()?;
        self.lit(b",\"unit\":\"")?;
        self.lit(unit)?;
        self.lit(b"\",\"status\":\"")?;
        let status = self.one_of(&STATUSES)?;
        self.lit(b"}")?;
        (null == (status == OFFLINE)).then_some(())
    }
}

/// The reading in `payload` if it is valid and in the encoder's layout; `None` if it is
/// not in that layout, whether valid or not.
pub fn reading(payload: &[u8]) -> Option<Key<'_>> {
    let text = std::str::from_utf8(payload).ok()?;
    let mut c = Cursor {
        b: text.as_bytes(),
        i: 0,
    };
    c.lit(b"{\"device_id\":\"")?;
    let device_id = c.plain_string()?;
    c.lit(b",\"seq\":")?;
    let seq = c.uint()?;
    c.lit(b",\"timestamp\":")?;
    let timestamp = c.uint()?;
    c.lit(b",\"location\":{\"building\":\"")?;
    if c.plain_string()?.is_empty() {
        return None;
    }
    c.lit(b",\"floor\":")?;
    let floor = u32::try_from(c.uint()?).ok().filter(|&f| f >= 1)?;
    c.lit(b",\"room\":\"")?;
    let room = c.plain_string()?;
    let floor_text = floor.to_string();
    let room_ok = room.len() >= floor_text.len() + 2
        && room.starts_with(floor_text.as_bytes())
        && room.iter().all(u8::is_ascii_digit);
    if !room_ok {
        return None;
    }
    c.lit(b"},\"sensors\":{")?;
    c.analog(b"temperature", "°C".as_bytes())?;
    c.lit(b",")?;
    c.analog(b"humidity", b"%")?;
    c.lit(b",")?;
    c.analog(b"pressure", b"hPa")?;
    if c.lit(b",\"switch_status\":{\"value\":true,\"status\":\"on\"},")
        .is_none()
    {
        c.lit(b",\"switch_status\":{\"value\":false,\"status\":\"off\"},")?;
    }
    c.analog(b"current", b"A")?;
    c.lit(b"},\"device_info\":{\"model\":\"")?;
    if c.plain_string()?.is_empty() {
        return None;
    }
    c.lit(b",\"firmware\":\"")?;
    if c.plain_string()?.is_empty() {
        return None;
    }
    c.lit(b",\"battery\":")?;
    c.uint().filter(|&b| b <= 100)?;
    c.lit(b",\"signal_strength\":")?;
    c.int().filter(|s| (-110..=-30).contains(s))?;
    c.lit(b"}")?;
    if c.lit(b",\"anomaly\":{\"kind\":\"").is_some() {
        c.one_of(&KINDS)?;
        c.lit(b",\"target\":\"")?;
        c.one_of(&TARGETS)?;
        c.lit(b",\"since_seq\":")?;
        c.uint().filter(|&s| s <= seq)?;
        c.lit(b"}")?;
    }
    c.lit(b"}")?;
    if c.i != c.b.len() {
        return None;
    }
    Some(Key {
        device_id: std::str::from_utf8(device_id).ok()?,
        seq,
        timestamp,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::settings::Format;
    use crate::generate::worker::Emitter;
    use crate::model::{Fleet, FleetSlice, FleetSpec};
    use crate::verify::message;

    /// Readings from the real encoder, anomalies and dropouts included.
    fn readings() -> Vec<Vec<u8>> {
        let mut spec = FleetSpec::default();
        spec.simulator.anomaly_rate = 0.2;
        let fleet = Fleet::new(spec, 9);
        let emitter = Emitter::new(fleet.clone(), 0..50, false, Format::Json);
        let mut slice = FleetSlice::new(fleet, 0..50);
        let mut out = Vec::new();
        for i in 0..4000u64 {
            let r = slice.step(i % 50, i / 50, 1_735_689_600_123 + i as i64);
            let mut line = Vec::new();
            emitter.encoder().encode(&r, &mut line);
            out.push(line);
        }
        out
    }

    /// The fast path agrees with the general parser: when it accepts, the parser
    /// accepts the same key; when the parser rejects, the fast path does too.
    fn agree(payload: &[u8]) {
        let general = message::reading(payload);
        if let Some(k) = reading(payload) {
            let r = general.unwrap_or_else(|e| {
                panic!(
                    "fast path accepted what the parser rejects ({e}): {}",
                    String::from_utf8_lossy(payload)
                )
            });
            assert_eq!(
                (k.device_id, k.seq, k.timestamp),
                (r.device_id, r.seq, r.timestamp)
            );
        }
    }

    #[test]
    fn every_encoded_reading_takes_the_fast_path_and_agrees() {
        let all = readings();
        let anomalous = all
            .iter()
            .filter(|r| r.windows(9).any(|w| w == b"\"anomaly\""))
            .count();
        assert!(anomalous > 100, "the sample covers anomalies: {anomalous}");
        for r in &all {
            assert!(reading(r).is_some(), "{}", String::from_utf8_lossy(r));
            agree(r);
        }
    }

    #[test]
    fn no_mutation_makes_the_fast_path_more_lenient_than_the_parser() {
        // Every single-byte change to a sample of readings, through a fixed set of
        // replacement bytes that matter to JSON and to the checks.
        let subs = b"0159-.e\"\\ {}[],:natfx";
        let all = readings();
        for r in all.iter().step_by(97) {
            for i in 0..r.len() {
                for &b in subs {
                    let mut m = r.clone();
                    m[i] = b;
                    agree(&m);
                }
                let mut cut = r.clone();
                cut.remove(i);
                agree(&cut);
            }
        }
    }
}
