//! Encodes a reading as one message, straight into a reused byte buffer: a JSON object
//! (written here) or, with `run.format: protobuf`, a Protobuf message (`protobuf`).
//!
//! The encoder knows the message layout and the fleet's labels, not the model: a
//! `Reading` carries everything a message says. Runs per message: it only appends to
//! the caller's `Vec<u8>`, which has its capacity reserved up front, so it does not
//! allocate. The format is fixed for the run, so the one `match` on it per message
//! always goes the same way. Configured strings (building labels, models, firmware) are
//! escaped once at startup with serde_json and, with the fixed text around them and
//! each sensor's unit and status, joined into fragments copied verbatim (`JsonParts`);
//! `text` writes them and the numbers. The layouts are fixed;
//! `docs/schema/reading.schema.json` and `docs/schema/alert.schema.json` describe them,
//! and `schema/reading.proto` the Protobuf ones.

use crate::config::settings::Format;
use crate::deliver::batch::Shape;
use crate::generate::protobuf::ProtobufEncoder;
use crate::generate::text::{Cursor, Frag, MAX_NUMBER, SLACK};
use crate::model::{Fleet, Reading, Sensor, SensorSpec, Status};

/// Writes readings, alerts and keys for one fleet, in one format.
#[derive(Debug, Clone)]
pub struct Encoder {
    format: Format,
    protobuf: ProtobufEncoder,
    /// Digits in a device id (`device_000042`), the same for every id in a run.
    id_width: usize,
    /// 10^id_width (or u64::MAX): every device below it has `id_width` digits at most.
    id_limit: u64,
    /// Digits of a room's number after its floor (`305`; `3005` past 99 rooms a floor).
    room_digits: usize,
    json: JsonParts,
}

/// The parts of a JSON reading that depend only on configured labels or on a sensor's
/// status, joined once at startup: a reading copies 8 of them where it wrote ~30
/// pieces. Every fixed piece after the device id's value is in one of these or in a
/// literal in `Encoder::json`.
#[derive(Debug, Clone)]
struct JsonParts {
    /// Per building: `,"location":{"building":"A","floor":`.
    buildings: Vec<Frag>,
    /// Per model: `"IOT-SENSOR-V1","firmware":`.
    models: Vec<Frag>,
    /// Per firmware: `"1.2.3","battery":`.
    firmwares: Vec<Frag>,
    /// From after analog sensor `i`'s value to the next value (or to the model): its
    /// unit, status and the next sensor's name, with the switch after pressure. Index
    /// `(i × 4 + status) × 2 + switch_on`.
    after: Vec<Frag>,
    /// The longest escaped building, model and firmware labels, added up.
    labels: usize,
}

/// The statuses in the order of their numbers (`Status as usize`).
const STATUSES: [Status; 4] = [
    Status::Normal,
    Status::Warning,
    Status::Error,
    Status::Offline,
];

/// A configured string as JSON, escaped once here with serde_json.
fn escaped(s: &str) -> String {
    serde_json::to_string(s).expect("a str always serialises")
}

impl JsonParts {
    fn new(fleet: &Fleet) -> Self {
        let s = &fleet.spec.simulator;
        let frags = |list: &[String], before: &str, after: &str| -> Vec<Frag> {
            let texts = list
                .iter()
                .map(|l| format!("{before}{}{after}", escaped(l)));
            texts.map(|t| Frag::new(t.as_bytes())).collect()
        };
        let longest = |l: &[String]| l.iter().map(|s| escaped(s).len()).max().unwrap_or(0);
        let mut after = Vec::with_capacity(32);
        for (i, sensor) in Sensor::ALL.into_iter().enumerate() {
            for (n, status) in STATUSES.into_iter().enumerate() {
                debug_assert_eq!(n, status as usize);
                for switch_on in [false, true] {
                    after.push(Frag::new(
                        after_value(sensor, i, status, switch_on).as_bytes(),
                    ));
                }
            }
        }
        Self {
            buildings: frags(&s.buildings, ",\"location\":{\"building\":", ",\"floor\":"),
            models: frags(&s.models, "", ",\"firmware\":"),
            firmwares: frags(&s.firmwares, "", ",\"battery\":"),
            after,
            labels: longest(&s.buildings) + longest(&s.models) + longest(&s.firmwares),
        }
    }

    #[inline(always)]
    fn after(&self, i: usize, status: Status, switch_on: bool) -> &Frag {
        &self.after[(i * 4 + status as usize) * 2 + switch_on as usize]
    }
}

/// The text from after `sensor`'s value (the `i`th analog) to the next value, or to the
/// device's model after the last.
fn after_value(sensor: Sensor, i: usize, status: Status, switch_on: bool) -> String {
    let (unit, status) = (sensor.unit(), status.as_str());
    let own = format!(",\"unit\":\"{unit}\",\"status\":\"{status}\"}}");
    let next = match sensor {
        Sensor::Pressure if switch_on => {
            ",\"switch_status\":{\"value\":true,\"status\":\"on\"},\"current\":{\"value\":".into()
        }
        Sensor::Pressure => {
            ",\"switch_status\":{\"value\":false,\"status\":\"off\"},\"current\":{\"value\":".into()
        }
        Sensor::Current => "},\"device_info\":{\"model\":".into(),
        _ => format!(",\"{}\":{{\"value\":", Sensor::ALL[i + 1].name()),
    };
    own + &next
}

impl Encoder {
    /// An encoder of `format` for `fleet`'s labels and id width, which cannot change
    /// while running.
    pub fn new(fleet: &Fleet, format: Format) -> Self {
        Self {
            format,
            protobuf: ProtobufEncoder::new(fleet),
            id_width: fleet.id_width,
            id_limit: 10u64.checked_pow(fleet.id_width as u32).unwrap_or(u64::MAX),
            room_digits: fleet.room_digits(),
            json: JsonParts::new(fleet),
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
        // Fixed text and field names take 370 bytes, an anomaly label 80; each number
        // is at most 24 bytes. `SLACK`: the JSON writer's cursor needs it (`text`).
        480 + self.id_width + self.json.labels + 13 * MAX_NUMBER + SLACK
    }

    /// An upper bound on the length of one encoded alert.
    pub fn max_alert_len(&self) -> usize {
        if self.format == Format::Protobuf {
            return self.protobuf.max_alert_len();
        }
        // Field names and the longest level, sensor and anomaly names: under 200 bytes.
        200 + self.id_width + 5 * MAX_NUMBER + SLACK
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
        // A device of the fleet has at most `id_width` digits, any u64 at most 20.
        let room = if device < self.id_limit {
            self.max_key()
        } else {
            7 + 20
        };
        // SAFETY: `put` and `padded` write exactly their text: 7 bytes, then the id's
        // digits or `id_width`, whichever is more. That is `max_key` for every device
        // of the fleet, so a batch's key buffer is never grown.
        let mut c = unsafe { Cursor::new(out, room) };
        c.put(b"device_");
        c.padded(device, self.id_width);
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
        // SAFETY: `max_len` bounds a reading's text, plus `SLACK` for the bytes the
        // cursor writes past it: 13 numbers of at most `MAX_NUMBER` bytes, the labels
        // and under 450 bytes of fixed text and anomaly names.
        let mut c = unsafe { Cursor::new(out, self.max_len()) };
        let p = &self.json;
        c.put(b"{\"device_id\":\"device_");
        c.padded(r.device, self.id_width);
        c.put(b"\",\"seq\":");
        c.u64(r.seq);
        c.put(b",\"timestamp\":");
        c.i64(r.timestamp_ms);
        let loc = r.location;
        c.frag(&p.buildings[loc.building]);
        c.u64(loc.floor as u64);
        c.put(b",\"room\":\"");
        c.u64(loc.floor as u64);
        c.padded(loc.room as u64, self.room_digits);
        c.put(b"\"},\"sensors\":{\"temperature\":{\"value\":");
        for i in 0..4 {
            c.value(r.values[i]);
            c.frag(p.after(i, r.status[i], r.switch_on));
        }
        c.frag(&p.models[r.identity.model]);
        c.frag(&p.firmwares[r.identity.firmware]);
        c.u64(r.battery as u64);
        c.put(b",\"signal_strength\":");
        c.i64(r.signal_dbm as i64);
        c.byte(b'}');
        if let Some(a) = &r.anomaly {
            c.put(b",\"anomaly\":{\"kind\":\"");
            c.put(a.kind.as_str().as_bytes());
            c.put(b"\",\"target\":\"");
            c.put(a.target().as_bytes());
            c.put(b"\",\"since_seq\":");
            c.u64(a.since);
            c.byte(b'}');
        }
        c.byte(b'}');
    }

    /// Appends the JSON object of the alert for `sensor`'s status change in `r`.
    #[inline]
    fn json_alert(&self, r: &Reading, sensor: Sensor, spec: &SensorSpec, out: &mut Vec<u8>) {
        let i = sensor as usize;
        let (level, previous) = (r.status[i], r.previous[i]);
        // SAFETY: `max_alert_len` bounds an alert's text plus `SLACK`: 5 numbers of at
        // most `MAX_NUMBER` bytes and under 200 bytes of fixed text and names.
        let mut c = unsafe { Cursor::new(out, self.max_alert_len()) };
        c.put(b"{\"device_id\":\"device_");
        c.padded(r.device, self.id_width);
        c.put(b"\",\"sensor\":\"");
        c.put(sensor.name().as_bytes());
        c.put(b"\",\"level\":\"");
        c.put(level.as_str().as_bytes());
        c.put(b"\",\"previous\":\"");
        c.put(previous.as_str().as_bytes());
        c.put(b"\",\"value\":");
        c.value(r.values[i]);
        // The threshold crossed: into warning or error, its own; back to normal, the
        // warning threshold the value fell below; offline has none.
        c.put(b",\"threshold\":");
        match level {
            Status::Error => c.fixed2(spec.error),
            Status::Warning | Status::Normal => c.fixed2(spec.warning),
            Status::Offline => c.put(b"null"),
        }
        c.put(b",\"unit\":\"");
        c.put(sensor.unit().as_bytes());
        c.put(b"\",\"timestamp\":");
        c.i64(r.timestamp_ms);
        c.put(b",\"seq\":");
        c.u64(r.seq);
        c.byte(b'}');
    }
}

/// Writes `v` rounded to 2 decimals, as the shortest of `12`, `12.5`, `12.25` that has
/// at least one decimal (`12.0`). Fixed-point integer formatting: `benches/generate.rs`
/// compares it with `ryu` on the same values, and it is faster because it never needs
/// the general shortest-round-trip search.
#[inline]
pub fn write_fixed2(out: &mut Vec<u8>, v: f64) {
    // SAFETY: a number is at most `MAX_NUMBER` bytes, and the cursor writes at most
    // `SLACK` past it.
    let mut c = unsafe { Cursor::new(out, MAX_NUMBER + SLACK) };
    c.fixed2(v);
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
