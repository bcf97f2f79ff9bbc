//! Property tests: every encoded reading parses and round-trips, whatever the configured
//! strings contain.

use iotblast::device::{Fleet, FleetSpec};
use iotblast::encoder::Encoder;
use proptest::prelude::*;
use serde_json::Value;

use crate::common::assert_schema_valid;

/// Strings with the characters JSON must escape, plus multi-byte text.
fn label() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just('"'),
            Just('\\'),
            Just('\n'),
            Just('\u{0}'),
            Just('\u{1f}'),
            Just('栋'),
            Just('é'),
            Just('😀'),
            prop::char::range('a', 'z'),
            any::<char>(),
        ],
        1..12,
    )
    .prop_map(|cs| cs.into_iter().collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn encoded_readings_round_trip(
        buildings in prop::collection::vec(label(), 1..4),
        models in prop::collection::vec(label(), 1..3),
        firmwares in prop::collection::vec(label(), 1..3),
        seed in any::<u64>(),
        device_count in 1u64..3_000_000,
        device_frac in 0.0f64..1.0,
        seq in 0u64..u64::MAX / 2,
        ts in 0i64..4_102_444_800_000,
        temperature_sd in 0.0f64..500.0,
    ) {
        let mut spec = FleetSpec { buildings, models, firmwares, ..FleetSpec::default() };
        spec.temperature.sd = temperature_sd;
        let fleet = Fleet::new(spec.clone(), seed, device_count);
        let device = ((device_count - 1) as f64 * device_frac) as u64;
        let encoder = Encoder::new(fleet.clone());
        let r = fleet.reading(device, seq, ts);
        let mut out = Vec::new();
        encoder.encode(&r, &mut out);
        prop_assert!(out.len() <= encoder.max_len());
        let v: Value = serde_json::from_slice(&out).expect("valid JSON");
        assert_schema_valid(&v);

        let loc = fleet.location(device);
        let mut building = spec.buildings[loc.building].clone();
        if loc.building_cycle > 0 {
            building.push_str(&format!("-{}", loc.building_cycle + 1));
        }
        let id = fleet.identity(device);
        prop_assert_eq!(&v["location"]["building"], &Value::from(building));
        prop_assert_eq!(&v["device_info"]["model"], &Value::from(spec.models[id.model].clone()));
        prop_assert_eq!(&v["device_info"]["firmware"], &Value::from(spec.firmwares[id.firmware].clone()));
        prop_assert_eq!(v["seq"].as_u64(), Some(seq));
        prop_assert_eq!(v["timestamp"].as_i64(), Some(ts));
        prop_assert_eq!(v["location"]["floor"].as_u64(), Some(loc.floor as u64));
        let s = &v["sensors"];
        prop_assert_eq!(s["temperature"]["value"].as_f64(), Some(r.temperature));
        prop_assert_eq!(s["humidity"]["value"].as_f64(), Some(r.humidity));
        prop_assert_eq!(s["pressure"]["value"].as_f64(), Some(r.pressure));
        prop_assert_eq!(s["current"]["value"].as_f64(), Some(r.current));
        prop_assert_eq!(s["switch_status"]["value"].as_bool(), Some(r.switch_on));
        prop_assert_eq!(
            s["temperature"]["status"].as_str(),
            Some(spec.temperature.status(r.temperature).as_str())
        );
        prop_assert_eq!(v["device_info"]["battery"].as_u64(), Some(r.battery as u64));
        prop_assert_eq!(v["device_info"]["signal_strength"].as_i64(), Some(r.signal_dbm as i64));
        let mut key = Vec::new();
        encoder.write_key(device, &mut key);
        prop_assert_eq!(v["device_id"].as_str(), Some(std::str::from_utf8(&key).unwrap()));
    }
}
