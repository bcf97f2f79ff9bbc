//! Encodes a reading or an alert as one Protobuf message of `schema/reading.proto`,
//! straight into a reused byte buffer: the `--format protobuf` sibling of the JSON
//! writer in `encoder`, which selects it.
//!
//! The wire format is written by hand (varints, fixed 64-bit doubles, length-delimited
//! strings and submessages) because a library encoder would need the reading copied
//! into its own structs first, strings included (`benches/generate.rs`, group
//! `encode_format`, measures prost doing that). A length-delimited field needs its
//! length before its bytes; every submessage here is a sum of field sizes known before
//! writing (configured labels are encoded once at startup, with their tag and length),
//! so each length is computed, then the bytes are written once, in order: no scratch
//! buffer, no patching, no allocation. Runs per message: it only appends to the
//! caller's `Vec<u8>`, whose capacity `max_len` bounds.
//!
//! Fields go in field-number order and scalars at their zero value are left out, as
//! proto3 serialisers do, so the bytes are the canonical encoding any protobuf library
//! writes for the same message (a test re-encodes decoded messages to check). Enum
//! numbers map the JSON strings as the `.proto` documents: `*_UNSPECIFIED` (0) is never
//! written. A value is written as the double its JSON text denotes, so both formats
//! carry the same numbers: JSON writes `v` in whole cents (`write_fixed2`), whose text
//! parses to `round2(v)`; a reading's values already are `round2` of themselves (the
//! model rounds them with it), so they are written as they are, and only configured
//! thresholds are rounded here. A dropout (`NaN`, JSON `null`) is an absent `optional
//! double`.

use crate::model::anomaly::Kind;
use crate::model::{round2, Fleet, Label, Reading, Sensor, SensorSpec, Status};

/// Wire types.
const VARINT: u8 = 0;
const I64: u8 = 1;
const LEN: u8 = 2;

/// The key of field `number` with wire type `wire`, for fields numbered below 16.
const fn tag(number: u8, wire: u8) -> u8 {
    (number << 3) | wire
}

/// Writes readings and alerts for one fleet in Protobuf.
#[derive(Debug, Clone)]
pub struct ProtobufEncoder {
    /// Digits in a device id (`device_000042`), the same for every id in a run.
    id_width: usize,
    /// Digits of a room's number after its floor.
    room_digits: usize,
    /// Each building label as a whole `Location.building` field: tag, length, UTF-8.
    buildings: Vec<Box<[u8]>>,
    /// Each model as a whole `DeviceInfo.model` field.
    models: Vec<Box<[u8]>>,
    /// Each firmware as a whole `DeviceInfo.firmware` field.
    firmwares: Vec<Box<[u8]>>,
}

/// `text` as a whole length-delimited field `number`.
fn string_field(number: u8, text: &str) -> Box<[u8]> {
    let mut out = vec![tag(number, LEN)];
    put_varint(&mut out, text.len() as u64);
    out.extend_from_slice(text.as_bytes());
    out.into_boxed_slice()
}

fn fields(number: u8, list: &[String]) -> Vec<Box<[u8]>> {
    list.iter().map(|s| string_field(number, s)).collect()
}

fn longest(list: &[Box<[u8]>]) -> usize {
    list.iter().map(|s| s.len()).max().unwrap_or(0)
}

impl ProtobufEncoder {
    /// An encoder for `fleet`'s labels and id width, which cannot change while running.
    pub fn new(fleet: &Fleet) -> Self {
        let s = &fleet.spec.simulator;
        Self {
            id_width: fleet.id_width,
            room_digits: fleet.room_digits(),
            buildings: fields(1, &s.buildings),
            models: fields(1, &s.models),
            firmwares: fields(2, &s.firmwares),
        }
    }

    /// An upper bound on the length of one encoded reading.
    pub fn max_len(&self) -> usize {
        // device_id: 2 + 7 + id digits. seq, timestamp: 11 each. location: 6 of tag
        // and length, floor 6, room 2 + 20 digits, plus the building field. sensors:
        // 2 + 4 analogs of 2 + 16 + a switch of 2 + 4 = 80. device_info: 6 of tag and
        // length, battery 6, signal 6, plus model and firmware. anomaly: 17. Sum: 180.
        192 + self.id_width
            + longest(&self.buildings)
            + longest(&self.models)
            + longest(&self.firmwares)
    }

    /// An upper bound on the length of one encoded alert.
    pub fn max_alert_len(&self) -> usize {
        // device_id 9 + id digits; sensor, level, previous 2 each; value and threshold
        // 9 each; unit 5; timestamp and seq 11 each: 60.
        64 + self.id_width
    }

    /// Appends the `Reading` message of `r` to `out`.
    #[inline]
    pub fn encode(&self, r: &Reading, out: &mut Vec<u8>) {
        self.device_id(1, r.device, out);
        put_uint(out, tag(2, VARINT), r.seq);
        put_uint(out, tag(3, VARINT), r.timestamp_ms as u64);
        self.location(r, out);
        sensors(r, out);
        self.device_info(r, out);
        if let Some(a) = &r.anomaly {
            anomaly(a, out);
        }
    }

    /// Appends the `Alert` message for `sensor`'s status change in `r` to `out`; `spec`
    /// is the sensor's (live) thresholds.
    #[inline]
    pub fn encode_alert(&self, r: &Reading, sensor: Sensor, spec: &SensorSpec, out: &mut Vec<u8>) {
        let i = sensor as usize;
        let level = r.status[i];
        self.device_id(1, r.device, out);
        out.extend_from_slice(&[
            tag(2, VARINT),
            sensor_number(sensor),
            tag(3, VARINT),
            status_number(level),
            tag(4, VARINT),
            status_number(r.previous[i]),
        ]);
        put_value(out, tag(5, I64), r.values[i]);
        // As in JSON: into warning or error, its own threshold; back to normal, the
        // warning threshold; offline has none. Configured, so rounded as JSON does.
        match level {
            Status::Error => put_value(out, tag(6, I64), round2(spec.error)),
            Status::Warning | Status::Normal => put_value(out, tag(6, I64), round2(spec.warning)),
            Status::Offline => {}
        }
        put_str(out, tag(7, LEN), sensor.unit());
        put_uint(out, tag(8, VARINT), r.timestamp_ms as u64);
        put_uint(out, tag(9, VARINT), r.seq);
    }

    /// `device_<id, zero-padded>` as string field `number`.
    #[inline]
    fn device_id(&self, number: u8, device: u64, out: &mut Vec<u8>) {
        let mut b = itoa::Buffer::new();
        let digits = b.format(device).as_bytes();
        let pad = self.id_width.saturating_sub(digits.len());
        put_len(out, tag(number, LEN), 7 + pad + digits.len());
        out.extend_from_slice(b"device_");
        out.resize(out.len() + pad, b'0');
        out.extend_from_slice(digits);
    }

    /// Field 4, `Location`: building, floor, and the room as text (`408`).
    #[inline]
    fn location(&self, r: &Reading, out: &mut Vec<u8>) {
        let loc = r.location;
        let building = &self.buildings[loc.building];
        let (mut f, mut n) = (itoa::Buffer::new(), itoa::Buffer::new());
        let floor = f.format(loc.floor).as_bytes();
        let room = n.format(loc.room).as_bytes();
        let pad = self.room_digits.saturating_sub(room.len());
        let room_len = floor.len() + pad + room.len();
        let len = building.len()
            + uint_size(loc.floor as u64)
            + 1
            + varint_len(room_len as u64)
            + room_len;
        put_len(out, tag(4, LEN), len);
        out.extend_from_slice(building);
        put_uint(out, tag(2, VARINT), loc.floor as u64);
        put_len(out, tag(3, LEN), room_len);
        out.extend_from_slice(floor);
        out.resize(out.len() + pad, b'0');
        out.extend_from_slice(room);
    }

    /// Field 6, `DeviceInfo`: model, firmware, battery, signal strength.
    #[inline]
    fn device_info(&self, r: &Reading, out: &mut Vec<u8>) {
        let id = r.identity;
        let (model, firmware) = (&self.models[id.model], &self.firmwares[id.firmware]);
        let signal = zigzag(r.signal_dbm as i32);
        let len = model.len() + firmware.len() + uint_size(r.battery as u64) + uint_size(signal);
        put_len(out, tag(6, LEN), len);
        out.extend_from_slice(model);
        out.extend_from_slice(firmware);
        put_uint(out, tag(3, VARINT), r.battery as u64);
        put_uint(out, tag(4, VARINT), signal);
    }
}

/// Field 5, `Sensors`: the four analogs and the switch, in field order.
#[inline]
fn sensors(r: &Reading, out: &mut Vec<u8>) {
    let analog_len = |s: Sensor| 2 + analog_content(r, s);
    let switch_content = if r.switch_on { 4 } else { 2 };
    let len = analog_len(Sensor::Temperature)
        + analog_len(Sensor::Humidity)
        + analog_len(Sensor::Pressure)
        + 2
        + switch_content
        + analog_len(Sensor::Current);
    put_len(out, tag(5, LEN), len);
    analog(out, r, 1, Sensor::Temperature);
    analog(out, r, 2, Sensor::Humidity);
    analog(out, r, 3, Sensor::Pressure);
    out.extend_from_slice(&[tag(4, LEN), switch_content as u8]);
    if r.switch_on {
        out.extend_from_slice(&[tag(1, VARINT), 1, tag(2, VARINT), SWITCH_ON]);
    } else {
        out.extend_from_slice(&[tag(2, VARINT), SWITCH_OFF]);
    }
    analog(out, r, 5, Sensor::Current);
}

/// `SwitchState` numbers.
const SWITCH_ON: u8 = 1;
const SWITCH_OFF: u8 = 2;

/// The length of an `Analog`: the value if present (9), the unit, the status (2).
/// Always below 128, so its own length is one byte.
#[inline]
fn analog_content(r: &Reading, s: Sensor) -> usize {
    let value = if r.value(s).is_nan() { 0 } else { 9 };
    value + 2 + s.unit().len() + 2
}

/// Field `number` of `Sensors`: the `Analog` of `s`.
#[inline]
fn analog(out: &mut Vec<u8>, r: &Reading, number: u8, s: Sensor) {
    out.extend_from_slice(&[tag(number, LEN), analog_content(r, s) as u8]);
    put_value(out, tag(1, I64), r.value(s));
    put_str(out, tag(2, LEN), s.unit());
    out.extend_from_slice(&[tag(3, VARINT), status_number(r.status[s as usize])]);
}

/// Field 7, `Anomaly`: kind, target and the seq it started at.
#[inline]
fn anomaly(a: &Label, out: &mut Vec<u8>) {
    let len = 4 + uint_size(a.since);
    out.extend_from_slice(&[
        tag(7, LEN),
        len as u8,
        tag(1, VARINT),
        kind_number(a.kind),
        tag(2, VARINT),
        target_number(a),
    ]);
    put_uint(out, tag(3, VARINT), a.since);
}

/// `Status` numbers: the JSON strings `normal` … `offline` are 1 … 4.
#[inline]
pub fn status_number(s: Status) -> u8 {
    match s {
        Status::Normal => 1,
        Status::Warning => 2,
        Status::Error => 3,
        Status::Offline => 4,
    }
}

/// `Sensor` numbers: `temperature` … `current` are 1 … 4.
#[inline]
pub fn sensor_number(s: Sensor) -> u8 {
    match s {
        Sensor::Temperature => 1,
        Sensor::Humidity => 2,
        Sensor::Pressure => 3,
        Sensor::Current => 4,
    }
}

/// `AnomalyKind` numbers: `spike` … `battery_drain` are 1 … 6.
#[inline]
pub fn kind_number(k: Kind) -> u8 {
    match k {
        Kind::Spike => 1,
        Kind::Drift => 2,
        Kind::Stuck => 3,
        Kind::Dropout => 4,
        Kind::Chatter => 5,
        Kind::BatteryDrain => 6,
    }
}

/// `Target` numbers: the four sensors 1 … 4, `switch_status` 5, `battery` 6.
#[inline]
pub fn target_number(a: &Label) -> u8 {
    match a.kind {
        Kind::Chatter => 5,
        Kind::BatteryDrain => 6,
        _ => sensor_number(Sensor::ALL[a.sensor as usize]),
    }
}

/// Bytes of a varint.
#[inline]
fn varint_len(v: u64) -> usize {
    // 1 for 0..=127, +1 per further 7 bits.
    ((64 - (v | 1).leading_zeros()) as usize).div_ceil(7)
}

#[inline]
fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Bytes of an implicit-presence scalar field: none at zero, as proto3 writes it.
#[inline]
fn uint_size(v: u64) -> usize {
    if v == 0 {
        0
    } else {
        1 + varint_len(v)
    }
}

/// An implicit-presence varint field: left out at zero.
#[inline]
fn put_uint(out: &mut Vec<u8>, key: u8, v: u64) {
    if v != 0 {
        out.push(key);
        put_varint(out, v);
    }
}

/// The key and length of a length-delimited field whose `len` bytes follow.
#[inline]
fn put_len(out: &mut Vec<u8>, key: u8, len: usize) {
    out.push(key);
    put_varint(out, len as u64);
}

/// A short string field (under 128 bytes).
#[inline]
fn put_str(out: &mut Vec<u8>, key: u8, s: &str) {
    debug_assert!(s.len() < 128);
    out.extend_from_slice(&[key, s.len() as u8]);
    out.extend_from_slice(s.as_bytes());
}

/// An `optional double` field: absent for a dropout (`NaN`), else `v`, which must be
/// on the 2-decimal grid (`round2(v) == v`), as the JSON text of it is.
#[inline]
fn put_value(out: &mut Vec<u8>, key: u8, v: f64) {
    debug_assert!(v.is_nan() || round2(v) == v, "{v} has more than 2 decimals");
    if !v.is_nan() {
        out.push(key);
        out.extend_from_slice(&v.to_le_bytes());
    }
}

/// `sint32`'s zigzag encoding: small magnitudes, either sign, in few bytes.
#[inline]
fn zigzag(v: i32) -> u64 {
    ((v << 1) ^ (v >> 31)) as u32 as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_zigzag_match_the_protobuf_encoding() {
        for (v, bytes) in [
            (0u64, &[0u8][..]),
            (1, &[1]),
            (127, &[0x7f]),
            (128, &[0x80, 1]),
            (300, &[0xac, 2]),
            (
                u64::MAX,
                &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1],
            ),
        ] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            assert_eq!(out, bytes, "{v}");
            assert_eq!(varint_len(v), bytes.len(), "{v}");
        }
        // From the protobuf encoding guide.
        assert_eq!(
            [0, -1, 1, -2, -110, i32::MIN].map(zigzag),
            [0, 1, 2, 3, 219, u32::MAX as u64]
        );
    }

    /// The double a JSON parser reads from `write_fixed2`'s text of `v`.
    fn json_double(v: f64) -> f64 {
        let mut text = Vec::new();
        crate::generate::encoder::write_fixed2(&mut text, v);
        std::str::from_utf8(&text).unwrap().parse().unwrap()
    }

    #[test]
    fn doubles_are_the_values_the_json_text_denotes() {
        for cents in -100_000i64..100_000 {
            // The model's values: `round2` of something, so `round2` of themselves,
            // and exactly what JSON's text of them reads back as.
            let v = round2(cents as f64 / 100.0 + 0.004);
            assert_eq!(round2(v), v, "{cents}");
            assert_eq!(json_double(v), v, "{cents}");
            // Configured thresholds, off the grid: `round2` is what JSON's text says.
            let off = cents as f64 / 100.0 + 0.003;
            assert_eq!(json_double(off), round2(off), "{off}");
        }
        for v in [1e12, -1e12, 1013.25, 0.005, -0.005] {
            assert_eq!(json_double(v), round2(v), "{v}");
        }
    }
}
