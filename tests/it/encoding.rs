//! Property tests: every encoded reading parses and round-trips, whatever the configured
//! strings contain.

use iotblast::config::settings::Format;
use iotblast::generate::encoder::Encoder;
use iotblast::model::{Fleet, FleetSpec, Sensor};
use iotblast::units::Count;
use proptest::prelude::*;
use serde_json::Value;

use crate::common::{assert_alert_schema_valid, assert_schema_valid, label};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn encoded_readings_round_trip(
        buildings in prop::collection::vec(label(12), 1..4),
        models in prop::collection::vec(label(12), 1..3),
        firmwares in prop::collection::vec(label(12), 1..3),
        seed in any::<u64>(),
        device_count in 1u64..3_000_000,
        device_frac in 0.0f64..1.0,
        seq in 0u64..u64::MAX / 2,
        ts in 0i64..4_102_444_800_000,
        temperature_sd in 0.0f64..500.0,
        anomaly_rate in 0.0f64..=1.0,
        steps in 1u64..40,
    ) {
        let mut spec = FleetSpec::with_simulator(|s| {
            s.buildings = buildings;
            s.models = models;
            s.firmwares = firmwares;
            s.anomaly_rate = anomaly_rate;
            s.device_count = Count(device_count);
        });
        spec.thresholds.temperature.sd = temperature_sd;
        let fleet = Fleet::new(spec.clone(), seed);
        let device = ((device_count - 1) as f64 * device_frac) as u64;
        let encoder = Encoder::new(&fleet, Format::Json);
        let sim = &spec.simulator;
        // A few consecutive readings, so anomalies that last (dropout, stuck) show up.
        let r = fleet.last_reading(device, seq..seq + steps, ts);
        let seq = r.seq;
        let mut out = Vec::new();
        encoder.encode(&r, &mut out);
        prop_assert!(out.len() <= encoder.max_len());
        let v: Value = serde_json::from_slice(&out).expect("valid JSON");
        assert_schema_valid(&v);

        let loc = fleet.location(device);
        let building = sim.buildings[loc.building].clone();
        let id = fleet.identity(device);
        prop_assert_eq!(&v["location"]["building"], &Value::from(building));
        prop_assert_eq!(&v["device_info"]["model"], &Value::from(sim.models[id.model].clone()));
        prop_assert_eq!(&v["device_info"]["firmware"], &Value::from(sim.firmwares[id.firmware].clone()));
        prop_assert_eq!(v["seq"].as_u64(), Some(seq));
        prop_assert_eq!(v["timestamp"].as_i64(), Some(ts));
        prop_assert_eq!(v["location"]["floor"].as_u64(), Some(loc.floor as u64));
        let s = &v["sensors"];
        for sensor in Sensor::ALL {
            let x = r.value(sensor);
            let json = &s[sensor.name()];
            if x.is_nan() {
                prop_assert!(json["value"].is_null());
            } else {
                prop_assert_eq!(json["value"].as_f64(), Some(x));
            }
            prop_assert_eq!(json["status"].as_str(), Some(r.status[sensor as usize].as_str()));
            // Every alert this reading could raise fits its bound and its schema.
            let mut alert = Vec::new();
            encoder.encode_alert(&r, sensor, spec.thresholds.sensor(sensor), &mut alert);
            prop_assert!(alert.len() <= encoder.max_alert_len());
            let a: Value = serde_json::from_slice(&alert).expect("valid alert JSON");
            assert_alert_schema_valid(&a);
            prop_assert_eq!(&a["device_id"], &v["device_id"]);
            prop_assert_eq!(&a["value"], &json["value"]);
            prop_assert_eq!(&a["level"], &json["status"]);
        }
        prop_assert_eq!(s["switch_status"]["value"].as_bool(), Some(r.switch_on));
        match r.anomaly {
            Some(a) => {
                prop_assert_eq!(v["anomaly"]["kind"].as_str(), Some(a.kind.as_str()));
                prop_assert_eq!(v["anomaly"]["target"].as_str(), Some(a.target()));
                prop_assert_eq!(v["anomaly"]["since_seq"].as_u64(), Some(a.since));
            }
            None => prop_assert!(v.get("anomaly").is_none()),
        }
        prop_assert_eq!(v["device_info"]["battery"].as_u64(), Some(r.battery as u64));
        prop_assert_eq!(v["device_info"]["signal_strength"].as_i64(), Some(r.signal_dbm as i64));
        let mut key = Vec::new();
        encoder.write_key(device, &mut key);
        prop_assert_eq!(v["device_id"].as_str(), Some(std::str::from_utf8(&key).unwrap()));
    }
}
