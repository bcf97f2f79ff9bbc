//! Value types with units, shared by the model and the configuration: durations
//! (`100ms`, `5m`), counts and rates with `k`/`m`/`g` suffixes (`10k`, `1.5m`), and
//! RFC 3339 times. Each reads the same way from a file, the environment and a flag,
//! and serialises back to the form a user would write.

use std::time::{Duration, UNIX_EPOCH};

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::ConfigError;

/// A duration written as `100ms`, `3s`, `5m` or `1h 30m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Dur(pub Duration);

impl Dur {
    pub const fn ms(ms: u64) -> Self {
        Dur(Duration::from_millis(ms))
    }

    pub const fn days(days: u64) -> Self {
        Dur(Duration::from_secs(days * 86_400))
    }
}

impl std::fmt::Display for Dur {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(self.0).to_string())
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        parse_duration("", &text)
            .map(Dur)
            .map_err(|e| serde::de::Error::custom(e.message))
    }
}

impl JsonSchema for Dur {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "string", "description": "e.g. 100ms, 3s, 5m, 1h 30m" })
    }
}

/// A count written as a number or with a `k`, `m` or `g` suffix (`10k`, `1.5m`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Count(pub u64);

impl Serialize for Count {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_count("", &NumberOrText::deserialize(d)?.0)
            .map(Count)
            .map_err(|e| serde::de::Error::custom(e.message))
    }
}

impl JsonSchema for Count {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Count".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": ["integer", "string"], "description": "e.g. 10000, 10k, 1m" })
    }
}

/// A rate in messages per second, written as a number or with a count suffix
/// (`2.5`, `50k`, `1.5m`).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Rate(pub f64);

impl Serialize for Rate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.0)
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_rate("", &NumberOrText::deserialize(d)?.0)
            .map(Rate)
            .map_err(|e| serde::de::Error::custom(e.message))
    }
}

impl JsonSchema for Rate {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Rate".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": ["number", "string"], "description": "messages per second, e.g. 500, 2.5, 50k" })
    }
}

/// A number or a string, as text: counts and rates accept both.
struct NumberOrText(String);

impl<'de> Deserialize<'de> for NumberOrText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(i64),
            Float(f64),
            Text(String),
        }
        Ok(NumberOrText(match Raw::deserialize(d)? {
            Raw::Int(i) => i.to_string(),
            Raw::Float(f) => f.to_string(),
            Raw::Text(t) => t,
        }))
    }
}

/// A UTC time written in RFC 3339 (`2026-01-01T00:00:00Z`), at or after 1970.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Time {
    /// Seconds since the Unix epoch.
    pub unix_s: i64,
}

impl Serialize for Time {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let t = UNIX_EPOCH + Duration::from_secs(self.unix_s as u64);
        s.serialize_str(&humantime::format_rfc3339(t).to_string())
    }
}

impl<'de> Deserialize<'de> for Time {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_rfc3339_weak(&text)
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|since| Time {
                unix_s: since.as_secs() as i64,
            })
            .ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "must be an RFC 3339 time after 1970 such as 2026-01-01T00:00:00Z, got '{text}'"
                ))
            })
    }
}

impl JsonSchema for Time {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Time".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "string", "description": "RFC 3339, UTC, e.g. 2026-01-01T00:00:00Z" })
    }
}

/// Parses `100ms`, `3s`, `5m`, `1h 30m`. A leading `-` is reported as negative rather
/// than as a syntax error, because that is what the user meant.
pub fn parse_duration(key: &str, text: &str) -> Result<Duration, ConfigError> {
    let t = text.trim();
    if t.starts_with('-') {
        return Err(ConfigError::new(
            key,
            format!("must not be negative, got '{text}'"),
        ));
    }
    humantime::parse_duration(t).map_err(|e| {
        ConfigError::new(
            key,
            format!("invalid duration '{text}' ({e}); use e.g. 100ms, 10s, 5m, 1h"),
        )
    })
}

/// Parses a count with an optional `k` (10^3), `m` (10^6) or `g` (10^9) suffix.
pub fn parse_count(key: &str, text: &str) -> Result<u64, ConfigError> {
    let t = text.trim().replace('_', "");
    if t.starts_with('-') {
        return Err(ConfigError::new(
            key,
            format!("must not be negative, got '{text}'"),
        ));
    }
    let (digits, mult) = match t.char_indices().last() {
        Some((i, 'k' | 'K')) => (&t[..i], 1_000),
        Some((i, 'm' | 'M')) => (&t[..i], 1_000_000),
        Some((i, 'g' | 'G')) => (&t[..i], 1_000_000_000),
        _ => (t.as_str(), 1),
    };
    let invalid = || {
        ConfigError::new(
            key,
            format!(
                "invalid count '{text}'; use a whole number, optionally with k, m or g (e.g. 10k)"
            ),
        )
    };
    if digits.contains('.') {
        let v: f64 = digits.parse().map_err(|_| invalid())?;
        let total = v * mult as f64;
        if total.fract() != 0.0 || !total.is_finite() || total > u64::MAX as f64 {
            return Err(invalid());
        }
        return Ok(total as u64);
    }
    let v: u64 = digits.parse().map_err(|_| invalid())?;
    v.checked_mul(mult).ok_or_else(invalid)
}

/// Parses a rate (messages per second), allowing count suffixes: `50k`, `1.5m`.
pub fn parse_rate(key: &str, text: &str) -> Result<f64, ConfigError> {
    let t = text.trim();
    if t.starts_with('-') {
        return Err(ConfigError::new(
            key,
            format!("must not be negative, got '{text}'"),
        ));
    }
    if let Ok(v) = t.parse::<f64>() {
        if v.is_finite() {
            return Ok(v);
        }
    }
    parse_count(key, t).map(|v| v as f64)
}

/// Checks that `v` lies in `lo..=hi`; the error names `key` and the range.
pub fn in_range<T: PartialOrd + std::fmt::Display>(
    key: &str,
    v: T,
    lo: T,
    hi: T,
) -> Result<(), ConfigError> {
    if v >= lo && v <= hi {
        Ok(())
    } else {
        Err(ConfigError::new(
            key,
            format!("must be between {lo} and {hi}, got {v}"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_accept_units_and_reject_negatives() {
        assert_eq!(
            parse_duration("d", "100ms").unwrap(),
            Duration::from_millis(100)
        );
        assert_eq!(parse_duration("d", "5m").unwrap(), Duration::from_secs(300));
        let e = parse_duration("--duration", "-5s").unwrap_err().to_string();
        assert!(e.contains("--duration") && e.contains("negative"), "{e}");
        let e = parse_duration("--duration", "ten").unwrap_err().to_string();
        assert!(e.contains("invalid duration 'ten'"), "{e}");
    }

    #[test]
    fn counts_accept_suffixes() {
        assert_eq!(parse_count("n", "10k").unwrap(), 10_000);
        assert_eq!(parse_count("n", "1m").unwrap(), 1_000_000);
        assert_eq!(parse_count("n", "1.5k").unwrap(), 1_500);
        assert_eq!(parse_count("n", "20_000").unwrap(), 20_000);
        assert!(parse_count("n", "1.0001k").is_err());
        assert!(parse_count("n", "-3")
            .unwrap_err()
            .to_string()
            .contains("negative"));
        assert!(parse_count("n", "x").is_err());
        assert_eq!(parse_rate("r", "2.5").unwrap(), 2.5);
        assert_eq!(parse_rate("r", "50k").unwrap(), 50_000.0);
    }

    #[test]
    fn times_round_trip_as_rfc3339() {
        let t: Time = yaml_serde::from_str("2026-01-01T00:00:00Z").unwrap();
        assert_eq!(t.unix_s, 1_767_225_600);
        assert_eq!(
            yaml_serde::to_string(&t).unwrap().trim(),
            "2026-01-01T00:00:00Z"
        );
        let e = yaml_serde::from_str::<Time>("yesterday").unwrap_err();
        assert!(e.to_string().contains("RFC 3339"), "{e}");
    }
}
