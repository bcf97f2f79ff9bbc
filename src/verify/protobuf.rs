//! The Protobuf messages (`--format protobuf`), as `verify` reads them: decoded with
//! prost into structs that mirror `schema/reading.proto`, then turned into the same
//! checked views (`message::Reading`, `message::Alert`) the JSON parser gives, so every
//! rule after that (schema rules, key, partition, seq) is the same code for both
//! formats.
//!
//! Why prost with hand-written derive structs: decoding is a well-trodden library job
//! (bounds, varints, wire types, UTF-8, nesting limits), where a crate beats
//! hand-writing, while generating the structs at build time (prost-build, protox)
//! would add a build script and its dependencies for eight small messages. Their
//! agreement with the `.proto` is tested: `tests/it/protobuf.rs` decodes what protox
//! compiles from the shipped file and checks these structs read and write the same bytes.
//!
//! What proto3 cannot say is checked here as the JSON Schema says it: a submessage the
//! schema requires must be present, an enum must be one of its named values (never the
//! `*_UNSPECIFIED` zero), and numbers must fit their JSON ranges. Absent scalars read
//! as zero, as in any proto3 reader, and unknown fields are skipped (protobuf's forward
//! compatibility), where JSON's schema forbids extra keys. A message that does not
//! decode (truncated, garbage) is an invalid message with a reason, never a panic.

use std::borrow::Cow;

use prost::Message;

use crate::verify::message::{
    self, AlertSensor, Analog as AnalogView, AnomalyKind, Invalid, OnOff, Status, Target,
};

/// `iotblast.v1.Reading`.
#[derive(Clone, PartialEq, Message)]
pub struct Reading {
    #[prost(string, tag = "1")]
    pub device_id: String,
    #[prost(uint64, tag = "2")]
    pub seq: u64,
    #[prost(int64, tag = "3")]
    pub timestamp: i64,
    #[prost(message, optional, tag = "4")]
    pub location: Option<Location>,
    #[prost(message, optional, tag = "5")]
    pub sensors: Option<Sensors>,
    #[prost(message, optional, tag = "6")]
    pub device_info: Option<DeviceInfo>,
    #[prost(message, optional, tag = "7")]
    pub anomaly: Option<Anomaly>,
}

/// `iotblast.v1.Location`.
#[derive(Clone, PartialEq, Message)]
pub struct Location {
    #[prost(string, tag = "1")]
    pub building: String,
    #[prost(uint32, tag = "2")]
    pub floor: u32,
    #[prost(string, tag = "3")]
    pub room: String,
}

/// `iotblast.v1.Sensors`.
#[derive(Clone, PartialEq, Message)]
pub struct Sensors {
    #[prost(message, optional, tag = "1")]
    pub temperature: Option<Analog>,
    #[prost(message, optional, tag = "2")]
    pub humidity: Option<Analog>,
    #[prost(message, optional, tag = "3")]
    pub pressure: Option<Analog>,
    #[prost(message, optional, tag = "4")]
    pub switch_status: Option<SwitchStatus>,
    #[prost(message, optional, tag = "5")]
    pub current: Option<Analog>,
}

/// `iotblast.v1.Analog`. Enum fields are `int32` on the wire; they are mapped by the
/// numbers `reading.proto` gives them (see `status`).
#[derive(Clone, PartialEq, Message)]
pub struct Analog {
    #[prost(double, optional, tag = "1")]
    pub value: Option<f64>,
    #[prost(string, tag = "2")]
    pub unit: String,
    #[prost(int32, tag = "3")]
    pub status: i32,
}

/// `iotblast.v1.SwitchStatus`.
#[derive(Clone, PartialEq, Message)]
pub struct SwitchStatus {
    #[prost(bool, tag = "1")]
    pub value: bool,
    #[prost(int32, tag = "2")]
    pub status: i32,
}

/// `iotblast.v1.DeviceInfo`.
#[derive(Clone, PartialEq, Message)]
pub struct DeviceInfo {
    #[prost(string, tag = "1")]
    pub model: String,
    #[prost(string, tag = "2")]
    pub firmware: String,
    #[prost(uint32, tag = "3")]
    pub battery: u32,
    #[prost(sint32, tag = "4")]
    pub signal_strength: i32,
}

/// `iotblast.v1.Anomaly`.
#[derive(Clone, PartialEq, Message)]
pub struct Anomaly {
    #[prost(int32, tag = "1")]
    pub kind: i32,
    #[prost(int32, tag = "2")]
    pub target: i32,
    #[prost(uint64, tag = "3")]
    pub since_seq: u64,
}

/// `iotblast.v1.Alert`.
#[derive(Clone, PartialEq, Message)]
pub struct Alert {
    #[prost(string, tag = "1")]
    pub device_id: String,
    #[prost(int32, tag = "2")]
    pub sensor: i32,
    #[prost(int32, tag = "3")]
    pub level: i32,
    #[prost(int32, tag = "4")]
    pub previous: i32,
    #[prost(double, optional, tag = "5")]
    pub value: Option<f64>,
    #[prost(double, optional, tag = "6")]
    pub threshold: Option<f64>,
    #[prost(string, tag = "7")]
    pub unit: String,
    #[prost(int64, tag = "8")]
    pub timestamp: i64,
    #[prost(uint64, tag = "9")]
    pub seq: u64,
}

const READING_SCHEMA: Invalid = "reading does not match the schema";
const ALERT_SCHEMA: Invalid = "alert does not match the schema";

/// Decodes one reading; its checked view is [`Reading::view`].
pub fn reading(payload: &[u8]) -> Result<Reading, Invalid> {
    Reading::decode(payload).map_err(|_| "message is not a protobuf Reading")
}

/// Decodes one alert; its checked view is [`Alert::view`].
pub fn alert(payload: &[u8]) -> Result<Alert, Invalid> {
    Alert::decode(payload).map_err(|_| "message is not a protobuf Alert")
}

impl Reading {
    /// The reading as the JSON parser would give it, checked by the same rules
    /// (`message::check_reading`).
    pub fn view(&self) -> Result<message::Reading<'_>, Invalid> {
        let (Some(l), Some(s), Some(d)) = (&self.location, &self.sensors, &self.device_info) else {
            return Err(READING_SCHEMA);
        };
        let (Some(t), Some(h), Some(p), Some(sw), Some(c)) = (
            &s.temperature,
            &s.humidity,
            &s.pressure,
            &s.switch_status,
            &s.current,
        ) else {
            return Err(READING_SCHEMA);
        };
        let switch_status = match sw.status {
            1 => OnOff::On,
            2 => OnOff::Off,
            _ => return Err(READING_SCHEMA),
        };
        let view = message::Reading {
            device_id: &self.device_id,
            seq: self.seq,
            timestamp: u64::try_from(self.timestamp).map_err(|_| READING_SCHEMA)?,
            location: message::Location {
                building: Cow::Borrowed(&l.building),
                floor: l.floor,
                room: &l.room,
            },
            sensors: message::Sensors {
                temperature: t.view()?,
                humidity: h.view()?,
                pressure: p.view()?,
                switch_status: message::Switch {
                    value: sw.value,
                    status: switch_status,
                },
                current: c.view()?,
            },
            anomaly: self.anomaly.as_ref().map(Anomaly::view).transpose()?,
            device_info: message::DeviceInfo {
                model: Cow::Borrowed(&d.model),
                firmware: Cow::Borrowed(&d.firmware),
                battery: u8::try_from(d.battery).map_err(|_| READING_SCHEMA)?,
                signal_strength: d.signal_strength,
            },
        };
        message::check_reading(&view)?;
        Ok(view)
    }
}

impl Analog {
    fn view(&self) -> Result<AnalogView<'_>, Invalid> {
        Ok(AnalogView {
            value: self.value,
            unit: &self.unit,
            status: status(self.status).ok_or(READING_SCHEMA)?,
        })
    }
}

impl Anomaly {
    fn view(&self) -> Result<message::Anomaly, Invalid> {
        use AnomalyKind as K;
        let kind = match self.kind {
            1 => K::Spike,
            2 => K::Drift,
            3 => K::Stuck,
            4 => K::Dropout,
            5 => K::Chatter,
            6 => K::BatteryDrain,
            _ => return Err(READING_SCHEMA),
        };
        let target = match self.target {
            1 => Target::Temperature,
            2 => Target::Humidity,
            3 => Target::Pressure,
            4 => Target::Current,
            5 => Target::SwitchStatus,
            6 => Target::Battery,
            _ => return Err(READING_SCHEMA),
        };
        Ok(message::Anomaly {
            kind,
            target,
            since_seq: self.since_seq,
        })
    }
}

impl Alert {
    /// The alert as the JSON parser would give it, checked by the same rules
    /// (`message::check_alert`).
    pub fn view(&self) -> Result<message::Alert<'_>, Invalid> {
        let sensor = match self.sensor {
            1 => AlertSensor::Temperature,
            2 => AlertSensor::Humidity,
            3 => AlertSensor::Pressure,
            4 => AlertSensor::Current,
            _ => return Err(ALERT_SCHEMA),
        };
        let view = message::Alert {
            device_id: &self.device_id,
            sensor,
            level: status(self.level).ok_or(ALERT_SCHEMA)?,
            previous: status(self.previous).ok_or(ALERT_SCHEMA)?,
            value: self.value,
            threshold: self.threshold,
            unit: &self.unit,
            timestamp: u64::try_from(self.timestamp).map_err(|_| ALERT_SCHEMA)?,
            seq: self.seq,
        };
        message::check_alert(&view)?;
        Ok(view)
    }
}

/// A `Status` number as the JSON string it stands for; `None` for 0 (unspecified) and
/// numbers the schema does not name.
fn status(n: i32) -> Option<Status> {
    Some(match n {
        1 => Status::Normal,
        2 => Status::Warning,
        3 => Status::Error,
        4 => Status::Offline,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::settings::Format;
    use crate::generate::encoder::Encoder;
    use crate::model::{Fleet, FleetSlice, FleetSpec};

    fn fleet() -> Fleet {
        Fleet::new(FleetSpec::with_simulator(|s| s.anomaly_rate = 0.2), 7)
    }

    /// Encoded readings of 20 devices × 30 seqs, and their alerts.
    fn encoded() -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
        let fleet = fleet();
        let enc = Encoder::new(&fleet, Format::Protobuf);
        let mut slice = FleetSlice::new(fleet.clone(), 0..20);
        let (mut readings, mut alerts) = (Vec::new(), Vec::new());
        for seq in 0..30 {
            for device in 0..20 {
                let r = slice.step(device, seq, 1_767_225_600_000 + seq as i64);
                let mut out = Vec::new();
                enc.encode(&r, &mut out);
                readings.push(out);
                for s in r.transitions() {
                    let mut out = Vec::new();
                    enc.encode_alert(&r, s, fleet.spec.thresholds.sensor(s), &mut out);
                    alerts.push(out);
                }
            }
        }
        (readings, alerts)
    }

    #[test]
    fn encoded_messages_decode_to_valid_views() {
        let (readings, alerts) = encoded();
        for (i, bytes) in readings.iter().enumerate() {
            let r = reading(bytes).unwrap();
            let v = r.view().unwrap_or_else(|e| panic!("reading {i}: {e}"));
            assert_eq!(v.seq, i as u64 / 20);
            // Canonical: re-encoding gives the same bytes.
            assert_eq!(&r.encode_to_vec(), bytes);
        }
        assert!(!alerts.is_empty());
        for bytes in &alerts {
            let a = alert(bytes).unwrap();
            a.view().unwrap();
            assert_eq!(&a.encode_to_vec(), bytes);
        }
    }

    #[test]
    fn truncated_and_garbage_messages_are_invalid_never_a_panic() {
        let (readings, alerts) = encoded();
        let check = |bytes: &[u8]| reading(bytes).and_then(|r| r.view().map(|_| ()));
        let check_alert = |bytes: &[u8]| alert(bytes).and_then(|a| a.view().map(|_| ()));
        for bytes in readings.iter().take(40) {
            // Every proper prefix is refused: a cut inside a field fails to decode, a
            // cut between fields leaves a required part missing (the anomaly, last
            // and optional, aside: without it the prefix is a valid reading).
            for cut in 0..bytes.len() {
                let prefix = &bytes[..cut];
                let full_but_anomaly = reading(prefix).is_ok_and(|r| {
                    r.device_info.is_some() && r.anomaly.is_none() && bytes[cut] == 0x3a
                });
                if !full_but_anomaly {
                    assert!(check(prefix).is_err(), "prefix {cut} of {bytes:?}");
                }
            }
            // Flipped bytes decode to something or fail; neither panics.
            for i in 0..bytes.len() {
                let mut b = bytes.clone();
                b[i] ^= 0xff;
                let _ = check(&b);
            }
        }
        for bytes in &alerts {
            assert!(check_alert(&bytes[..bytes.len() - 1]).is_err());
        }
        assert_eq!(
            check(&[0xff; 12]).unwrap_err(),
            "message is not a protobuf Reading"
        );
        // An empty message decodes, but holds none of the required parts.
        assert_eq!(check(&[]).unwrap_err(), READING_SCHEMA);
    }

    #[test]
    fn unknown_enum_numbers_and_missing_parts_are_schema_errors() {
        let (readings, _) = encoded();
        let good = reading(&readings[0]).unwrap();
        let mut bad = good.clone();
        bad.sensors
            .as_mut()
            .unwrap()
            .humidity
            .as_mut()
            .unwrap()
            .status = 0;
        assert_eq!(bad.view().unwrap_err(), READING_SCHEMA);
        let mut bad = good.clone();
        bad.sensors
            .as_mut()
            .unwrap()
            .switch_status
            .as_mut()
            .unwrap()
            .status = 9;
        assert_eq!(bad.view().unwrap_err(), READING_SCHEMA);
        let mut bad = good.clone();
        bad.location = None;
        assert_eq!(bad.view().unwrap_err(), READING_SCHEMA);
        let mut bad = good.clone();
        bad.timestamp = -1;
        assert_eq!(bad.view().unwrap_err(), READING_SCHEMA);
        let mut bad = good.clone();
        bad.sensors.as_mut().unwrap().current.as_mut().unwrap().unit = "mA".into();
        assert_eq!(bad.view().unwrap_err(), "a sensor has the wrong unit");
        let mut bad = good;
        bad.device_info.as_mut().unwrap().battery = 101;
        assert!(bad.view().unwrap_err().contains("battery"));
    }
}
