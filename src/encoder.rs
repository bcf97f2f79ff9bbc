//! Encodes a reading as one JSON object, straight into a reused byte buffer.
//!
//! Runs per message: it only appends to the caller's `Vec<u8>`, which has its capacity
//! reserved up front, so it does not allocate. Configured strings (building labels,
//! models, firmware) are escaped once at startup with serde_json and copied verbatim.
//! The layout is fixed; `docs/schema/reading.schema.json` describes it.

use crate::device::{round_int, Fleet, Reading, SensorSpec};

/// Writes readings and keys for one fleet.
#[derive(Debug, Clone)]
pub struct Encoder {
    fleet: Fleet,
    buildings: Vec<Box<[u8]>>,
    models: Vec<Box<[u8]>>,
    firmwares: Vec<Box<[u8]>>,
}

fn escaped(list: &[String]) -> Vec<Box<[u8]>> {
    list.iter()
        .map(|s| {
            serde_json::to_vec(s)
                .expect("a String always serialises")
                .into_boxed_slice()
        })
        .collect()
}

impl Encoder {
    pub fn new(fleet: Fleet) -> Self {
        Self {
            buildings: escaped(&fleet.spec.buildings),
            models: escaped(&fleet.spec.models),
            firmwares: escaped(&fleet.spec.firmwares),
            fleet,
        }
    }

    pub fn fleet(&self) -> &Fleet {
        &self.fleet
    }

    /// Takes the four sensors' ranges and thresholds from `spec` (a live reload); the
    /// escaped label tables stay, since labels cannot change while running.
    pub fn set_thresholds(&mut self, spec: &crate::device::FleetSpec) {
        let s = &mut self.fleet.spec;
        s.temperature = spec.temperature;
        s.humidity = spec.humidity;
        s.pressure = spec.pressure;
        s.current = spec.current;
    }

    /// An upper bound on the length of one encoded reading, used to size batch buffers
    /// so that encoding never has to grow them.
    pub fn max_len(&self) -> usize {
        let longest = |l: &[Box<[u8]>]| l.iter().map(|s| s.len()).max().unwrap_or(0);
        // Fixed text and field names take 370 bytes; each number is at most 24 bytes.
        400 + self.fleet.id_width
            + longest(&self.buildings)
            + 21 // "-" and a building cycle number
            + longest(&self.models)
            + longest(&self.firmwares)
            + 12 * 24
    }

    /// The Kafka key of a device: its `device_id`, e.g. `device_000042`.
    #[inline]
    pub fn write_key(&self, device: u64, out: &mut Vec<u8>) {
        out.extend_from_slice(b"device_");
        write_padded(out, device, self.fleet.id_width);
    }

    /// Appends the JSON object of `r` to `out`.
    #[inline]
    pub fn encode(&self, r: &Reading, out: &mut Vec<u8>) {
        let spec = &self.fleet.spec;
        out.extend_from_slice(b"{\"device_id\":\"");
        self.write_key(r.device, out);
        out.extend_from_slice(b"\",\"seq\":");
        write_u64(out, r.seq);
        out.extend_from_slice(b",\"timestamp\":");
        write_i64(out, r.timestamp_ms);

        let loc = self.fleet.location(r.device);
        out.extend_from_slice(b",\"location\":{\"building\":");
        let label = &self.buildings[loc.building];
        if loc.building_cycle == 0 {
            out.extend_from_slice(label);
        } else {
            // Reuse of the label list: "A" becomes "A-2", "A-3", ...; insert before the closing quote.
            out.extend_from_slice(&label[..label.len() - 1]);
            out.push(b'-');
            write_u64(out, loc.building_cycle + 1);
            out.push(b'"');
        }
        out.extend_from_slice(b",\"floor\":");
        write_u64(out, loc.floor as u64);
        out.extend_from_slice(b",\"room\":\"");
        write_u64(out, loc.floor as u64);
        write_padded(out, loc.room as u64, 2);

        out.extend_from_slice(b"\"},\"sensors\":{\"temperature\":");
        analog(out, r.temperature, "\u{b0}C", &spec.temperature);
        out.extend_from_slice(b",\"humidity\":");
        analog(out, r.humidity, "%", &spec.humidity);
        out.extend_from_slice(b",\"pressure\":");
        analog(out, r.pressure, "hPa", &spec.pressure);
        out.extend_from_slice(if r.switch_on {
            b",\"switch_status\":{\"value\":true,\"status\":\"on\"}"
        } else {
            b",\"switch_status\":{\"value\":false,\"status\":\"off\"}"
        });
        out.extend_from_slice(b",\"current\":");
        analog(out, r.current, "A", &spec.current);

        let id = self.fleet.identity(r.device);
        out.extend_from_slice(b"},\"device_info\":{\"model\":");
        out.extend_from_slice(&self.models[id.model]);
        out.extend_from_slice(b",\"firmware\":");
        out.extend_from_slice(&self.firmwares[id.firmware]);
        out.extend_from_slice(b",\"battery\":");
        write_u64(out, r.battery as u64);
        out.extend_from_slice(b",\"signal_strength\":");
        write_i64(out, r.signal_dbm as i64);
        out.extend_from_slice(b"}}");
    }
}

#[inline]
fn analog(out: &mut Vec<u8>, v: f64, unit: &str, spec: &SensorSpec) {
    out.extend_from_slice(b"{\"value\":");
    write_fixed2(out, v);
    out.extend_from_slice(b",\"unit\":\"");
    out.extend_from_slice(unit.as_bytes());
    out.extend_from_slice(b"\",\"status\":\"");
    out.extend_from_slice(spec.status(v).as_str().as_bytes());
    out.extend_from_slice(b"\"}");
}

#[inline]
fn write_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

#[inline]
fn write_i64(out: &mut Vec<u8>, v: i64) {
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

/// Writes `v` zero-padded to at least `width` digits.
#[inline]
fn write_padded(out: &mut Vec<u8>, v: u64, width: usize) {
    let mut b = itoa::Buffer::new();
    let digits = b.format(v).as_bytes();
    for _ in digits.len()..width {
        out.push(b'0');
    }
    out.extend_from_slice(digits);
}

/// Writes `v` rounded to 2 decimals, as the shortest of `12`, `12.5`, `12.25` that has
/// at least one decimal (`12.0`). Fixed-point integer formatting: `benches/generate.rs`
/// compares it with `ryu` on the same values, and it is faster because it never needs
/// the general shortest-round-trip search.
#[inline]
pub fn write_fixed2(out: &mut Vec<u8>, v: f64) {
    let cents = round_int(v * 100.0);
    if cents < 0 {
        out.push(b'-');
    }
    let c = cents.unsigned_abs();
    write_u64(out, c / 100);
    let frac = (c % 100) as u8;
    out.push(b'.');
    out.push(b'0' + frac / 10);
    if !frac.is_multiple_of(10) {
        out.push(b'0' + frac % 10);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::FleetSpec;
    use serde_json::Value;

    fn fixed(v: f64) -> String {
        let mut b = Vec::new();
        write_fixed2(&mut b, v);
        String::from_utf8(b).unwrap()
    }

    #[test]
    fn fixed2_is_short_and_exact() {
        assert_eq!(fixed(25.61), "25.61");
        assert_eq!(fixed(65.2), "65.2");
        assert_eq!(fixed(1013.0), "1013.0");
        assert_eq!(fixed(-0.5), "-0.5");
        assert_eq!(fixed(-9.99), "-9.99");
        assert_eq!(fixed(0.05), "0.05");
        assert_eq!(fixed(-0.001), "0.0");
        for cents in -100_000i64..100_000 {
            let v = cents as f64 / 100.0;
            assert_eq!(fixed(v).parse::<f64>().unwrap(), v, "{cents}");
        }
    }

    #[test]
    fn encodes_the_documented_layout() {
        let fleet = Fleet::new(FleetSpec::default(), 5, 1000);
        let enc = Encoder::new(fleet.clone());
        let r = fleet.reading(42, 17, 1_735_689_600_123);
        let mut out = Vec::new();
        enc.encode(&r, &mut out);
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["device_id"], "device_000042");
        assert_eq!(v["seq"], 17);
        assert_eq!(v["timestamp"], 1_735_689_600_123i64);
        assert_eq!(v["sensors"]["temperature"]["value"], r.temperature);
        assert_eq!(v["sensors"]["temperature"]["unit"], "°C");
        assert_eq!(v["sensors"]["switch_status"]["value"], r.switch_on);
        assert_eq!(v["device_info"]["battery"], r.battery);
        assert_eq!(v["location"]["room"], "109");
        assert!(out.len() <= enc.max_len());
        let mut key = Vec::new();
        enc.write_key(42, &mut key);
        assert_eq!(key, b"device_000042");
    }
}
