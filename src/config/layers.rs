//! Builds `Settings` from its layers: built-in defaults < YAML file < `IOTBLAST_*`
//! environment < flags. Every layer is a YAML value tree merged over the one before;
//! the merged tree is deserialised once. So a setting's name, type and default are
//! only ever declared in `settings` (and the model's spec), and the layers follow.
//!
//! Keys are checked against the defaults' tree (unknown ones are rejected with the
//! closest known key). Text from the environment or a flag becomes a value by the
//! setting's type in the schema: taken literally where the setting is a string (so a
//! password of digits or one starting with `#` stays what it is), split on commas for
//! a list of labels, and read as a YAML scalar otherwise (numbers, booleans, null).

use std::path::Path;
use std::sync::OnceLock;

use yaml_serde::{Mapping, Value};

use crate::config::settings::Settings;
use crate::error::ConfigError;

/// Prefix of environment overrides: `IOTBLAST_` + the dotted path in upper snake case.
pub const ENV_PREFIX: &str = "IOTBLAST_";

/// Sections whose keys are free (passed through), so they are not checked against a schema.
const FREE_MAPS: &[&str] = &["kafka.librdkafka"];

/// One value set by the environment or a flag: a setting's dotted path and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    pub path: String,
    pub text: String,
}

/// Defaults, then `file` (if any), then the `IOTBLAST_*` variables in `env`, then
/// `flags`. Returns the settings and warnings (unknown environment variables).
pub fn load(
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
    flags: &[Override],
) -> Result<(Settings, Vec<String>), ConfigError> {
    let defaults = defaults_tree();
    let mut merged = defaults.clone();
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::new(path.display().to_string(), format!("cannot read: {e}"))
        })?;
        let layer = parse_yaml(path, &text)?;
        check_keys(&layer, defaults, "")?;
        merge(&mut merged, layer);
    }
    let env: Vec<(String, String)> = env.into_iter().collect();
    let (overrides, warnings) = env_overrides(env.iter().cloned());
    for o in overrides.iter().chain(flags) {
        set_path(&mut merged, &o.path, value_of(&o.path, &o.text));
    }
    resolve_auto_index(&mut merged, &env)?;
    Ok((deserialize(merged)?, warnings))
}

/// `run.instance_index: auto` takes the index from where an orchestrator puts it, so
/// that one manifest serves every pod: `JOB_COMPLETION_INDEX` (a Kubernetes Indexed
/// Job), else the ordinal that ends `POD_NAME` or `HOSTNAME` (a StatefulSet's pods are
/// `name-0`, `name-1`, ...).
fn resolve_auto_index(merged: &mut Value, env: &[(String, String)]) -> Result<(), ConfigError> {
    const PATH: &str = "run.instance_index";
    let is_auto = merged
        .get("run")
        .and_then(|r| r.get("instance_index"))
        .and_then(Value::as_str)
        .is_some_and(|s| s.trim() == "auto");
    if !is_auto {
        return Ok(());
    }
    let var = |name: &str| {
        env.iter()
            .rfind(|(k, _)| k == name)
            .map(|(_, v)| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let index = if let Some(v) = var("JOB_COMPLETION_INDEX") {
        v.parse::<u64>().map_err(|_| {
            ConfigError::new(
                PATH,
                format!("auto: JOB_COMPLETION_INDEX must be a whole number, got {v:?}"),
            )
        })?
    } else if let Some((name, v)) = ["POD_NAME", "HOSTNAME"]
        .iter()
        .find_map(|n| var(n).map(|v| (*n, v)))
    {
        v.rsplit_once('-')
            .and_then(|(_, ordinal)| ordinal.parse::<u64>().ok())
            .ok_or_else(|| {
                ConfigError::new(
                    PATH,
                    format!("auto: {name} ({v:?}) does not end in -N, a StatefulSet pod's ordinal"),
                )
            })?
    } else {
        return Err(ConfigError::new(
            PATH,
            "auto: none of JOB_COMPLETION_INDEX, POD_NAME or HOSTNAME is set",
        ));
    };
    set_path(merged, PATH, Value::Number(index.into()));
    Ok(())
}

/// The defaults as a value tree, built once.
fn defaults_tree() -> &'static Value {
    static T: OnceLock<Value> = OnceLock::new();
    T.get_or_init(|| yaml_serde::to_value(Settings::default()).expect("defaults serialise"))
}

/// Every settable leaf path (free maps excluded), in declaration order.
pub fn leaf_paths() -> Vec<String> {
    let mut out = Vec::new();
    collect_leaves(defaults_tree(), "", &mut out);
    out
}

fn collect_leaves(v: &Value, path: &str, out: &mut Vec<String>) {
    match v {
        Value::Mapping(m) if !FREE_MAPS.contains(&path) => {
            for (k, sub) in m {
                if let Some(k) = k.as_str() {
                    collect_leaves(sub, &join(path, k), out);
                }
            }
        }
        Value::Mapping(_) => {}
        _ => out.push(path.to_owned()),
    }
}

/// `device.simulator.device_count` → `IOTBLAST_DEVICE_SIMULATOR_DEVICE_COUNT`.
pub fn env_name(path: &str) -> String {
    format!("{ENV_PREFIX}{}", path.replace('.', "_").to_uppercase())
}

/// The `IOTBLAST_*` variables as overrides. Unknown names are returned as warnings, with
/// a suggestion, rather than errors: other tools may share the prefix.
fn env_overrides(env: impl IntoIterator<Item = (String, String)>) -> (Vec<Override>, Vec<String>) {
    let paths = leaf_paths();
    let names: Vec<String> = paths.iter().map(|p| env_name(p)).collect();
    let mut vars: Vec<(String, String)> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with(ENV_PREFIX))
        .collect();
    vars.sort();
    let (mut found, mut warnings) = (Vec::new(), Vec::new());
    for (name, text) in vars {
        match names.iter().position(|n| *n == name) {
            Some(i) => found.push(Override {
                path: paths[i].clone(),
                text,
            }),
            None => {
                // A shortened path (IOTBLAST_DEVICE_COUNT) is best matched by its tail.
                let tail = format!("_{}", &name[ENV_PREFIX.len()..]);
                let hint = names
                    .iter()
                    .find(|n| n.ends_with(&tail))
                    .map(String::as_str)
                    .or_else(|| suggest(&name, names.iter().map(String::as_str)))
                    .map(|s| format!("; did you mean {s}?"))
                    .unwrap_or_default();
                warnings.push(format!("ignoring {name}: not a setting{hint}"));
            }
        }
    }
    (found, warnings)
}

/// What kind of text a setting takes, from its JSON schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextKind {
    /// A string setting: the text is the value, literally.
    Literal,
    /// A list of strings: comma-separated, or a YAML flow list `[a, b]`.
    List,
    /// Anything else: a YAML scalar (number, boolean, null) or, failing that, a string.
    Scalar,
}

/// The JSON schema of `Settings`, built once.
fn schema() -> &'static serde_json::Value {
    static SCHEMA: OnceLock<serde_json::Value> = OnceLock::new();
    SCHEMA.get_or_init(|| schemars::schema_for!(Settings).to_value())
}

/// The schema node of the setting at `path`, or `None` inside a free map.
fn leaf(path: &str) -> Option<&'static serde_json::Value> {
    let root = schema();
    let mut node = root;
    for part in path.split('.') {
        let here = non_null(root, node);
        if here
            .get("additionalProperties")
            .is_some_and(|a| a.is_object())
        {
            return None;
        }
        node = &here["properties"][part];
    }
    Some(node)
}

/// The JSON types a schema node allows (an `Option`'s null included).
fn types(node: &serde_json::Value) -> Vec<&str> {
    match &node["type"] {
        serde_json::Value::String(t) => vec![t.as_str()],
        serde_json::Value::Array(ts) => ts.iter().filter_map(|t| t.as_str()).collect(),
        _ => node
            .get("anyOf")
            .and_then(|a| a.as_array())
            .map(|alts| alts.iter().flat_map(|a| types(a)).collect())
            .unwrap_or_default(),
    }
}

/// How the text for the setting at `path` is read (free-map keys are literal).
pub fn text_kind(path: &str) -> TextKind {
    let Some(node) = leaf(path) else {
        return TextKind::Literal;
    };
    let types = types(non_null(schema(), node));
    let only = |t: &str| types.iter().all(|x| *x == t || *x == "null") && types.contains(&t);
    if only("string") || (types.contains(&"string") && types.contains(&"array")) {
        TextKind::Literal
    } else if only("array") {
        TextKind::List
    } else {
        TextKind::Scalar
    }
}

/// A setting's doc comment, from its declaration.
pub fn doc(path: &str) -> Option<String> {
    let node = leaf(path)?;
    let doc = node
        .get("description")
        .or_else(|| non_null(schema(), node).get("description"))?;
    doc.as_str().map(str::to_owned)
}

/// A setting's default as text, if it has one to show (not null, not empty).
pub fn default_text(path: &str) -> Option<String> {
    let mut node = defaults_tree();
    for part in path.split('.') {
        node = node.get(part)?;
    }
    match node {
        Value::Null => None,
        Value::Sequence(s) if s.is_empty() => None,
        Value::Sequence(s) => Some(
            s.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect::<Vec<_>>()
                .join(","),
        ),
        v => Some(
            yaml_serde::to_string(v)
                .ok()?
                .trim()
                .trim_matches('\'')
                .to_owned(),
        ),
    }
}

/// Whether the setting at `path` may be null (an `Option`).
fn nullable(path: &str) -> bool {
    leaf(path).is_some_and(|n| types(n).contains(&"null"))
}

/// `node` with `$ref` resolved and an `Option`'s null alternative dropped.
fn non_null<'a>(root: &'a serde_json::Value, node: &'a serde_json::Value) -> &'a serde_json::Value {
    let node = resolve(root, node);
    for key in ["anyOf", "oneOf"] {
        if let Some(alts) = node.get(key).and_then(|a| a.as_array()) {
            if let Some(alt) = alts.iter().find(|a| a["type"] != "null") {
                return resolve(root, alt);
            }
        }
    }
    node
}

/// Follows a local `$ref` (`#/$defs/Name`).
pub fn resolve<'a>(root: &'a serde_json::Value, s: &'a serde_json::Value) -> &'a serde_json::Value {
    match s.get("$ref").and_then(|r| r.as_str()) {
        Some(r) => r
            .strip_prefix("#/")
            .map(|p| p.split('/').fold(root, |v, part| &v[part]))
            .unwrap_or(s),
        None => s,
    }
}

/// The value `text` stands for at `path` (see [`TextKind`]). Empty text for a
/// setting that may be null (such as an unset environment override) is null.
fn value_of(path: &str, text: &str) -> Value {
    if text.is_empty() && nullable(path) {
        return Value::Null;
    }
    match text_kind(path) {
        TextKind::Literal => Value::String(text.to_owned()),
        TextKind::List if text.trim_start().starts_with('[') => {
            yaml_serde::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
        }
        TextKind::List => Value::Sequence(
            text.split(',')
                .map(|s| Value::String(s.trim().to_owned()))
                .collect(),
        ),
        TextKind::Scalar => match yaml_serde::from_str(text) {
            Ok(Value::Mapping(_) | Value::Tagged(_) | Value::Sequence(_)) | Err(_) => {
                Value::String(text.to_owned())
            }
            Ok(v) => v,
        },
    }
}

fn parse_yaml(path: &Path, text: &str) -> Result<Value, ConfigError> {
    let v: Value = yaml_serde::from_str(text).map_err(|e| {
        let at = e
            .location()
            .map(|l| format!(" at line {}, column {}", l.line(), l.column()))
            .unwrap_or_default();
        ConfigError::new(path.display().to_string(), format!("invalid YAML{at}: {e}"))
    })?;
    match v {
        Value::Null => Ok(Value::Mapping(Mapping::new())),
        Value::Mapping(_) => Ok(v),
        _ => Err(ConfigError::new(
            path.display().to_string(),
            "must be a YAML mapping (kafka:, device:, run:, log:)",
        )),
    }
}

/// Rejects keys the schema does not know, naming the path and the closest known key.
fn check_keys(layer: &Value, known: &Value, path: &str) -> Result<(), ConfigError> {
    let (Value::Mapping(layer), Value::Mapping(known)) = (layer, known) else {
        return Ok(());
    };
    if FREE_MAPS.contains(&path) {
        return Ok(());
    }
    for (key, value) in layer {
        let Some(name) = key.as_str() else {
            return Err(ConfigError::new(
                join(path, &format!("{key:?}")),
                "keys must be strings",
            ));
        };
        let here = join(path, name);
        match known.get(name).or_else(|| known.get(alias_of(&here)?)) {
            Some(sub) => check_keys(value, sub, &here)?,
            None => {
                let names = known.keys().filter_map(Value::as_str);
                let hint = suggest(name, names)
                    .map(|s| format!("; did you mean '{s}'?"))
                    .unwrap_or_default();
                return Err(ConfigError::new(here, format!("unknown key{hint}")));
            }
        }
    }
    Ok(())
}

/// The canonical key for an accepted alias (the serde aliases in the declarations).
fn alias_of(path: &str) -> Option<&'static str> {
    match path {
        "kafka.producer.batch_timeout" => Some("linger"),
        "device.simulator.cores" => Some("worker_pool_size"),
        _ => None,
    }
}

/// The known name closest to `name`, if it is close enough to be a likely typo.
pub fn suggest<'a>(name: &str, known: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    known
        .map(|k| (strsim::jaro_winkler(name, k), k))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k)
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// Deep merge: mappings merge key by key; anything else in `layer` replaces `base`.
fn merge(base: &mut Value, layer: Value) {
    match (base, layer) {
        (Value::Mapping(b), Value::Mapping(l)) => {
            for (k, v) in l {
                match b.get_mut(&k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

/// Sets the value at a dotted `path`; under a free map the rest of the path is one
/// key (librdkafka's own keys contain dots).
fn set_path(root: &mut Value, path: &str, value: Value) {
    let mut parts: Vec<&str> = Vec::new();
    let mut rest = path;
    while !rest.is_empty() {
        let here = parts.join(".");
        if FREE_MAPS.contains(&here.as_str()) {
            parts.push(rest);
            break;
        }
        let (part, tail) = rest.split_once('.').unwrap_or((rest, ""));
        parts.push(part);
        rest = tail;
    }
    let mut node = root;
    for part in parts {
        if !matches!(node, Value::Mapping(_)) {
            *node = Value::Mapping(Mapping::new());
        }
        let Value::Mapping(m) = node else { return };
        node = m
            .entry(Value::String(part.to_owned()))
            .or_insert(Value::Null);
    }
    *node = value;
}

/// Deserialises the merged tree; a type error names the setting's path.
fn deserialize(merged: Value) -> Result<Settings, ConfigError> {
    serde_path_to_error::deserialize(merged).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        // serde says "invalid value: integer `-2`, expected usize" for a negative count.
        let message = match inner.strip_prefix("invalid value: integer `-") {
            Some(rest) if rest.contains("expected u") => format!(
                "must not be negative, got -{}",
                rest.split('`').next().unwrap_or("")
            ),
            _ => inner,
        };
        ConfigError::new(path, message)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_auto_instance_index_comes_from_the_orchestrator() {
        let auto = |env: &[(&str, &str)]| {
            let o = Override {
                path: "run.instance_index".into(),
                text: "auto".into(),
            };
            let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
            load(None, env, &[o]).map(|(s, _)| s.run.instance_index)
        };
        // An Indexed Job's index wins over the pod name, which wins over the host name.
        assert_eq!(
            auto(&[("JOB_COMPLETION_INDEX", "2"), ("POD_NAME", "feed-7")]).unwrap(),
            2
        );
        assert_eq!(
            auto(&[("HOSTNAME", "box-9"), ("POD_NAME", "iotblast-feed-1")]).unwrap(),
            1
        );
        assert_eq!(auto(&[("HOSTNAME", "iotblast-feed-12")]).unwrap(), 12);
        for (env, says) in [
            (vec![], "none of JOB_COMPLETION_INDEX"),
            (
                vec![("HOSTNAME", "laptop")],
                "HOSTNAME (\"laptop\") does not end in -N",
            ),
            (vec![("JOB_COMPLETION_INDEX", "x")], "whole number"),
        ] {
            let e = auto(&env).unwrap_err();
            assert_eq!(e.key, "run.instance_index");
            assert!(e.message.contains(says), "{e}");
        }
    }

    #[test]
    fn librdkafka_keys_keep_their_dots() {
        let o = Override {
            path: "kafka.librdkafka.linger.ms".into(),
            text: "5".into(),
        };
        let (s, _) = load(None, std::iter::empty(), &[o]).unwrap();
        assert_eq!(
            s.kafka.librdkafka.get("linger.ms").map(String::as_str),
            Some("5")
        );
    }

    #[test]
    fn env_names_follow_the_dotted_path() {
        assert_eq!(
            env_name("device.simulator.device_count"),
            "IOTBLAST_DEVICE_SIMULATOR_DEVICE_COUNT"
        );
    }

    #[test]
    fn text_is_read_by_the_settings_type() {
        assert_eq!(text_kind("kafka.security.password"), TextKind::Literal);
        assert_eq!(text_kind("kafka.topics.device_data"), TextKind::Literal);
        assert_eq!(text_kind("kafka.brokers"), TextKind::Literal);
        assert_eq!(text_kind("run.duration"), TextKind::Literal);
        assert_eq!(text_kind("device.simulator.buildings"), TextKind::List);
        assert_eq!(text_kind("device.simulator.device_count"), TextKind::Scalar);
        assert_eq!(text_kind("run.seed"), TextKind::Scalar);
        assert_eq!(text_kind("kafka.librdkafka.linger.ms"), TextKind::Literal);
        assert_eq!(
            value_of("kafka.security.password", "0123"),
            Value::String("0123".into())
        );
        assert_eq!(
            value_of("kafka.security.password", "#x"),
            Value::String("#x".into())
        );
        let list: Value = yaml_serde::from_str("[A栋, B栋]").unwrap();
        assert_eq!(value_of("device.simulator.buildings", "A栋, B栋"), list);
        assert_eq!(value_of("device.simulator.buildings", "[A栋, B栋]"), list);
    }

    #[test]
    fn every_leaf_setting_has_a_known_text_kind_and_a_doc() {
        for path in leaf_paths() {
            let doc = leaf(&path).and_then(|n| n.get("description"));
            assert!(
                doc.and_then(|d| d.as_str()).is_some_and(|d| !d.is_empty()),
                "{path} has no doc comment"
            );
        }
        assert!(nullable("metrics.address") && !nullable("kafka.partitions"));
        assert_eq!(value_of("metrics.address", ""), Value::Null);
    }
}
