//! Encodes a reading as one message, straight into a reused byte buffer: a JSON object
//! (written here) or, with `run.format: protobuf`, a Protobuf message (`protobuf`).
//!
//! The encoder knows the message layout and the fleet's labels, not the model: a
//! `Reading` carries everything a message says. Runs per message: it only appends to
//! the caller's `Vec<u8>`, which has its capacity reserved up front, so it does not
//! allocate. The format is fixed for the run, so the one `match` on it per message
//! always goes the same way. Configured strings (building labels, models, firmware) are
//! escaped once at startup with serde_json and copied verbatim. The layouts are fixed;
//! `docs/schema/reading.schema.json` and `docs/schema/alert.schema.json` describe them,
//! and `schema/reading.proto` the Protobuf ones.

use crate::config::settings::Format;
use crate::deliver::batch::Shape;
use crate::generate::protobuf::ProtobufEncoder;
use crate::model::{round_int, Fleet, Reading, Sensor, SensorSpec, Status};

/// Writes readings, alerts and keys for one fleet, in one format.
#[derive(Debug, Clone)]
pub struct Encoder {
    format: Format,
    protobuf: ProtobufEncoder,
    /// Digits in a device id (`device_000042`), the same for every id in a run.
    id_width: usize,
    /// Digits of a room's number after its floor (`305`; `3005` past 99 rooms a floor).
    room_digits: usize,
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
    /// An encoder of `format` for `fleet`'s labels and id width, which cannot change
    /// while running.
    pub fn new(fleet: &Fleet, format: Format) -> Self {
        let s = &fleet.spec.simulator;
        Self {
            format,
            protobuf: ProtobufEncoder::new(fleet),
            id_width: fleet.id_width,
            room_digits: fleet.room_digits(),
            buildings: escaped(&s.buildings),
            models: escaped(&s.models),
            firmwares: escaped(&s.firmwares),
        }
    }

    /// The format it writes.
    pub fn format(&self) -> Format {
        self.format
    }

    /// An upper bound on the length of one encoded reading, used to size batch buffers
    /// so that encoding never has to grow them.
    pub fn max_len(&self) -> usize {
        if self.format == Format::Protobuf {
            return self.protobuf.max_len();
        }
        let longest = |l: &[Box<[u8]>]| l.iter().map(|s| s.len()).max().unwrap_or(0);
        // Fixed text and field names take 370 bytes, an anomaly label 80; each number
        // is at most 24 bytes.
        480 + self.id_width
            + longest(&self.buildings)
            + longest(&self.models)
            + longest(&self.firmwares)
            + 13 * 24
    }

    /// An upper bound on the length of one encoded alert.
    pub fn max_alert_len(&self) -> usize {
        if self.format == Format::Protobuf {
            return self.protobuf.max_alert_len();
        }
        // Field names and the longest level, sensor and anomaly names: under 200 bytes.
        200 + self.id_width + 5 * 24
    }

    /// Buffer sizes for batches of `capacity` readings, with room for alerts if `alerts`.
    pub fn batch_shape(&self, capacity: usize, alerts: bool) -> Shape {
        Shape {
            capacity,
            max_len: self.max_len(),
            max_key: self.max_key(),
            max_alert_len: if alerts { self.max_alert_len() } else { 0 },
        }
    }

    /// Length of every key in this fleet.
    pub fn max_key(&self) -> usize {
        "device_".len() + self.id_width
    }

    /// The Kafka key of a device: its `device_id`, e.g. `device_000042`.
    #[inline]
    pub fn write_key(&self, device: u64, out: &mut Vec<u8>) {
        out.extend_from_slice(b"device_");
        write_padded(out, device, self.id_width);
    }

    /// Appends the message of `r` to `out`.
    #[inline]
    pub fn encode(&self, r: &Reading, out: &mut Vec<u8>) {
        match self.format {
            Format::Json => self.json(r, out),
            Format::Protobuf => self.protobuf.encode(r, out),
        }
    }

    /// Appends the alert for `sensor`'s status change in `r` to `out`; `spec` is the
    /// sensor's (live) thresholds.
    #[inline]
    pub fn encode_alert(&self, r: &Reading, sensor: Sensor, spec: &SensorSpec, out: &mut Vec<u8>) {
        match self.format {
            Format::Json => self.json_alert(r, sensor, spec, out),
            Format::Protobuf => self.protobuf.encode_alert(r, sensor, spec, out),
        }
    }

    /// Appends the JSON object of `r` to `out`.
    #[inline]
    fn json(&self, r: &Reading, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"device_id\":\"");
        self.write_key(r.device, out);
        out.extend_from_slice(b"\",\"seq\":");
        write_u64(out, r.seq);
        out.extend_from_slice(b",\"timestamp\":");
        write_i64(out, r.timestamp_ms);

        let loc = r.location;
        out.extend_from_slice(b",\"location\":{\"building\":");
        out.extend_from_slice(&self.buildings[loc.building]);
        out.extend_from_slice(b",\"floor\":");
        write_u64(out, loc.floor as u64);
        out.extend_from_slice(b",\"room\":\"");
        write_u64(out, loc.floor as u64);
        write_padded(out, loc.room as u64, self.room_digits);

        out.extend_from_slice(b"\"},\"sensors\":{");
        for s in [Sensor::Temperature, Sensor::Humidity, Sensor::Pressure] {
            analog(out, r, s);
            out.push(b',');
        }
        out.extend_from_slice(if r.switch_on {
            b"\"switch_status\":{\"value\":true,\"status\":\"on\"},"
        } else {
            b"\"switch_status\":{\"value\":false,\"status\":\"off\"},"
        });
        analog(out, r, Sensor::Current);

        let id = r.identity;
        out.extend_from_slice(b"},\"device_info\":{\"model\":");
        out.extend_from_slice(&self.models[id.model]);
        out.extend_from_slice(b",\"firmware\":");
        out.extend_from_slice(&self.firmwares[id.firmware]);
        out.extend_from_slice(b",\"battery\":");
        write_u64(out, r.battery as u64);
        out.extend_from_slice(b",\"signal_strength\":");
        write_i64(out, r.signal_dbm as i64);
        out.push(b'}');
        if let Some(a) = &r.anomaly {
            out.extend_from_slice(b",\"anomaly\":{\"kind\":\"");
            out.extend_from_slice(a.kind.as_str().as_bytes());
            out.extend_from_slice(b"\",\"target\":\"");
            out.extend_from_slice(a.target().as_bytes());
            out.extend_from_slice(b"\",\"since_seq\":");
            write_u64(out, a.since);
            out.push(b'}');
        }
        out.push(b'}');
    }

    /// Appends the JSON object of the alert for `sensor`'s status change in `r`.
    #[inline]
    fn json_alert(&self, r: &Reading, sensor: Sensor, spec: &SensorSpec, out: &mut Vec<u8>) {
        let i = sensor as usize;
        let (level, previous) = (r.status[i], r.previous[i]);
        out.extend_from_slice(b"{\"device_id\":\"");
        self.write_key(r.device, out);
        out.extend_from_slice(b"\",\"sensor\":\"");
        out.extend_from_slice(sensor.name().as_bytes());
        out.extend_from_slice(b"\",\"level\":\"");
        out.extend_from_slice(level.as_str().as_bytes());
        out.extend_from_slice(b"\",\"previous\":\"");
        out.extend_from_slice(previous.as_str().as_bytes());
        out.extend_from_slice(b"\",\"value\":");
        write_value(out, r.values[i]);
        // The threshold crossed: into warning or error, its own; back to normal, the
        // warning threshold the value fell below; offline has none.
        out.extend_from_slice(b",\"threshold\":");
        match level {
            Status::Error => write_fixed2(out, spec.error),
            Status::Warning | Status::Normal => write_fixed2(out, spec.warning),
            Status::Offline => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"unit\":\"");
        out.extend_from_slice(sensor.unit().as_bytes());
        out.extend_from_slice(b"\",\"timestamp\":");
        write_i64(out, r.timestamp_ms);
        out.extend_from_slice(b",\"seq\":");
        write_u64(out, r.seq);
        out.push(b'}');
    }
}

#[inline]
fn analog(out: &mut Vec<u8>, r: &Reading, s: Sensor) {
    out.push(b'"');
    out.extend_from_slice(s.name().as_bytes());
    out.extend_from_slice(b"\":{\"value\":");
    write_value(out, r.value(s));
    out.extend_from_slice(b",\"unit\":\"");
    out.extend_from_slice(s.unit().as_bytes());
    out.extend_from_slice(b"\",\"status\":\"");
    out.extend_from_slice(r.status[s as usize].as_str().as_bytes());
    out.extend_from_slice(b"\"}");
}

/// A value with 2 decimals, or `null` for a dropout (NaN).
#[inline]
fn write_value(out: &mut Vec<u8>, v: f64) {
    if v.is_nan() {
        out.extend_from_slice(b"null");
    } else {
        write_fixed2(out, v);
    }
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
    use crate::model::FleetSpec;
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
        let fleet = Fleet::new(FleetSpec::default(), 5);
        let enc = Encoder::new(&fleet, Format::Json);
        let r = fleet.last_reading(42, 17..18, 1_735_689_600_123);
        let mut out = Vec::new();
        enc.encode(&r, &mut out);
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["device_id"], "device_000042");
        assert_eq!(v["seq"], 17);
        assert_eq!(v["timestamp"], 1_735_689_600_123i64);
        assert_eq!(
            v["sensors"]["temperature"]["value"],
            r.value(Sensor::Temperature)
        );
        assert_eq!(v["sensors"]["temperature"]["unit"], "°C");
        assert_eq!(v["sensors"]["switch_status"]["value"], r.switch_on);
        assert_eq!(v["device_info"]["battery"], r.battery);
        // Device 42 of 1,000: building 0 holds 0..125 over 200 rooms, slot 42 × 200 / 125 = 67.
        assert_eq!(v["location"]["floor"], 4);
        assert_eq!(v["location"]["room"], "408");
        assert!(out.len() <= enc.max_len());
        let mut key = Vec::new();
        enc.write_key(42, &mut key);
        assert_eq!(key, b"device_000042");
    }
}
