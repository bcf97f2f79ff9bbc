//! The published message formats, as `verify` reads them: typed views that borrow from
//! the payload, so parsing checks the schema (`docs/schema/*.schema.json`: required
//! fields, no unknown ones, types, enums) without allocating, and the few rules a type
//! cannot say (ranges, patterns, value/status agreement) are checked beside them.
//!
//! Readings in the encoder's own layout take `fast` instead; this parser decides every
//! other message and names what is wrong with it. `benches/verify.rs` measures
//! serde_json against simd-json on these types; serde_json with borrowed fields was
//! faster (perf/RESULTS.md), so it is the one used here.

use serde::Deserialize;

/// Why a message is invalid: a fixed text, so counting them never allocates.
pub type Invalid = &'static str;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reading<'a> {
    #[serde(borrow)]
    pub device_id: &'a str,
    pub seq: u64,
    pub timestamp: u64,
    #[serde(borrow)]
    pub location: Location<'a>,
    pub sensors: Sensors<'a>,
    #[serde(default)]
    pub anomaly: Option<Anomaly>,
    #[serde(borrow)]
    pub device_info: DeviceInfo<'a>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Location<'a> {
    /// Labels are configured text, which may hold escapes; `Cow` borrows when it can.
    #[serde(borrow)]
    pub building: std::borrow::Cow<'a, str>,
    pub floor: u32,
    #[serde(borrow)]
    pub room: &'a str,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sensors<'a> {
    #[serde(borrow)]
    pub temperature: Analog<'a>,
    #[serde(borrow)]
    pub humidity: Analog<'a>,
    #[serde(borrow)]
    pub pressure: Analog<'a>,
    pub switch_status: Switch,
    #[serde(borrow)]
    pub current: Analog<'a>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Analog<'a> {
    pub value: Option<f64>,
    #[serde(borrow)]
    pub unit: &'a str,
    pub status: Status,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Normal,
    Warning,
    Error,
    Offline,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Switch {
    pub value: bool,
    pub status: OnOff,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnOff {
    On,
    Off,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Anomaly {
    pub kind: AnomalyKind,
    pub target: Target,
    pub since_seq: u64,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnomalyKind {
    Spike,
    Drift,
    Stuck,
    Dropout,
    Chatter,
    BatteryDrain,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    Temperature,
    Humidity,
    Pressure,
    Current,
    SwitchStatus,
    Battery,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceInfo<'a> {
    #[serde(borrow)]
    pub model: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    pub firmware: std::borrow::Cow<'a, str>,
    pub battery: u8,
    pub signal_strength: i32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Alert<'a> {
    #[serde(borrow)]
    pub device_id: &'a str,
    pub sensor: AlertSensor,
    pub level: Status,
    pub previous: Status,
    pub value: Option<f64>,
    pub threshold: Option<f64>,
    #[serde(borrow)]
    pub unit: &'a str,
    pub timestamp: u64,
    pub seq: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertSensor {
    Temperature,
    Humidity,
    Pressure,
    Current,
}

impl AlertSensor {
    pub fn index(self) -> usize {
        self as usize
    }

    fn unit(self) -> &'static str {
        ["°C", "%", "hPa", "A"][self.index()]
    }
}

/// The device index in `device_000042`: `device_` and at least six digits.
pub fn device_index(id: &str) -> Result<u64, Invalid> {
    let digits = id
        .strip_prefix("device_")
        .filter(|d| d.len() >= 6 && d.len() <= 19 && d.bytes().all(|b| b.is_ascii_digit()))
        .ok_or("device_id is not device_ and six or more digits")?;
    digits.parse().map_err(|_| "device_id is out of range")
}

/// Parses and checks one reading.
pub fn reading(payload: &[u8]) -> Result<Reading<'_>, Invalid> {
    // One UTF-8 check of the whole message (vectorised for ASCII), after which
    // serde_json reads a `&str` and need not check each string again: ~9% faster.
    let text = std::str::from_utf8(payload).map_err(|_| "message is not UTF-8")?;
    let r: Reading = serde_json::from_str(text).map_err(|_| "reading does not match the schema")?;
    check_reading(&r)?;
    Ok(r)
}

/// Parses and checks one alert.
pub fn alert(payload: &[u8]) -> Result<Alert<'_>, Invalid> {
    let a: Alert =
        serde_json::from_slice(payload).map_err(|_| "alert does not match the schema")?;
    check_alert(&a)?;
    Ok(a)
}

/// The rules of `reading.schema.json` a type does not carry.
pub fn check_reading(r: &Reading) -> Result<(), Invalid> {
    let l = &r.location;
    // The floor number, then the room's number in at least two digits.
    let room_ok = l.room.bytes().all(|b| b.is_ascii_digit())
        && l.room.len() >= 3
        && l.room
            .strip_prefix(l.floor.to_string().as_str())
            .is_some_and(|r| r.len() >= 2);
    if l.building.is_empty() || l.floor == 0 || !room_ok {
        return Err("location is not a building, floor >= 1 and room <floor><nn>");
    }
    let s = &r.sensors;
    for (a, unit) in [
        (&s.temperature, "°C"),
        (&s.humidity, "%"),
        (&s.pressure, "hPa"),
        (&s.current, "A"),
    ] {
        if a.unit != unit {
            return Err("a sensor has the wrong unit");
        }
        if a.value.is_none() != (a.status == Status::Offline) {
            return Err("a sensor value is null but not offline, or offline with a value");
        }
    }
    if s.switch_status.value != (s.switch_status.status == OnOff::On) {
        return Err("switch_status value and status disagree");
    }
    if r.anomaly.as_ref().is_some_and(|a| a.since_seq > r.seq) {
        return Err("anomaly since_seq is after the reading's seq");
    }
    let d = &r.device_info;
    if d.model.is_empty() || d.firmware.is_empty() {
        return Err("device_info model or firmware is empty");
    }
    if d.battery > 100 || !(-110..=-30).contains(&d.signal_strength) {
        return Err("device_info battery or signal_strength out of range");
    }
    Ok(())
}

/// The rules of `alert.schema.json` a type does not carry.
pub fn check_alert(a: &Alert) -> Result<(), Invalid> {
    if a.unit != a.sensor.unit() {
        return Err("alert unit does not match its sensor");
    }
    let offline = a.level == Status::Offline;
    if offline != a.value.is_none() || offline != a.threshold.is_none() {
        return Err("alert value and threshold must be null exactly when offline");
    }
    if a.level == a.previous {
        return Err("alert level equals its previous level");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"device_id":"device_000001","seq":3,"timestamp":1796085910819,"location":{"building":"A","floor":1,"room":"101"},"sensors":{"temperature":{"value":18.18,"unit":"°C","status":"normal"},"humidity":{"value":59.92,"unit":"%","status":"normal"},"pressure":{"value":null,"unit":"hPa","status":"offline"},"switch_status":{"value":true,"status":"on"},"current":{"value":1.16,"unit":"A","status":"warning"}},"anomaly":{"kind":"dropout","target":"pressure","since_seq":2},"device_info":{"model":"IOT-SENSOR-V2","firmware":"1.3.0","battery":72,"signal_strength":-68}}"#;

    #[test]
    fn a_valid_reading_parses_and_each_broken_rule_is_named() {
        let r = reading(GOOD.as_bytes()).unwrap();
        assert_eq!((r.device_id, r.seq), ("device_000001", 3));
        let cases = [
            ("\"seq\":3", "\"seq\":-3", "schema"),
            ("\"seq\":3", "\"seq\":3,\"extra\":1", "schema"),
            ("\"status\":\"warning\"", "\"status\":\"bad\"", "schema"),
            ("\"room\":\"101\"", "\"room\":\"201\"", "location"),
            ("\"unit\":\"A\"", "\"unit\":\"mA\"", "wrong unit"),
            ("\"value\":null", "\"value\":1.0", "offline"),
            ("\"value\":true", "\"value\":false", "switch_status"),
            ("\"since_seq\":2", "\"since_seq\":4", "since_seq"),
            ("\"battery\":72", "\"battery\":101", "battery"),
        ];
        for (from, to, want) in cases {
            let bad = GOOD.replacen(from, to, 1);
            let err = reading(bad.as_bytes()).expect_err(to);
            assert!(err.contains(want), "{to}: {err}");
        }
        assert!(reading(&GOOD.as_bytes()[..40]).is_err());
    }

    #[test]
    fn alerts_and_device_ids_are_checked() {
        let good = r#"{"device_id":"device_000001","sensor":"current","level":"warning","previous":"normal","value":3.1,"threshold":3.0,"unit":"A","timestamp":1,"seq":7}"#;
        assert_eq!(alert(good.as_bytes()).unwrap().seq, 7);
        let offline = good
            .replace("\"warning\"", "\"offline\"")
            .replace("3.1", "null");
        assert!(alert(offline.as_bytes()).unwrap_err().contains("null"));
        assert!(alert(good.replace("\"A\"", "\"hPa\"").as_bytes()).is_err());
        assert_eq!(device_index("device_000042"), Ok(42));
        assert_eq!(device_index("device_1234567"), Ok(1_234_567));
        for bad in ["device_42", "dev_000042", "device_00004x", "device_"] {
            assert!(device_index(bad).is_err(), "{bad}");
        }
    }
}
