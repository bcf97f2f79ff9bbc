//! `iotblast config default`: the built-in defaults as a commented YAML file, each key
//! preceded by its doc comment from the declaration (via schemars), so the file
//! documents every setting and loads back to exactly the defaults.

use yaml_serde::Value;

use crate::config::layers::resolve;
use crate::config::settings::Settings;

/// The default settings as YAML, each key preceded by its `///` documentation.
pub fn default_yaml_commented() -> String {
    let schema = schemars::schema_for!(Settings);
    let root = schema.as_value();
    let defaults = yaml_serde::to_value(Settings::default()).expect("defaults serialise");
    let mut out = String::from(
        "# iotblast configuration: the built-in defaults, with what each setting does.\n\
         # Precedence: built-in defaults < this file (--config) < IOTBLAST_* environment < flags.\n\
         # Environment names are IOTBLAST_ plus the dotted path in upper snake case,\n\
         # e.g. IOTBLAST_DEVICE_SIMULATOR_DEVICE_COUNT=5000.\n",
    );
    render(root, root, &defaults, 0, &mut out);
    out
}

fn render(
    root: &serde_json::Value,
    schema: &serde_json::Value,
    value: &Value,
    depth: usize,
    out: &mut String,
) {
    let schema = resolve(root, schema);
    let Value::Mapping(map) = value else { return };
    let indent = "  ".repeat(depth);
    for (k, v) in map {
        let Some(key) = k.as_str() else { continue };
        // The field's own doc wins over its type's (a `$ref` sibling in schemars 1).
        let field = &schema["properties"][key];
        let prop = resolve(root, field);
        let doc = field
            .get("description")
            .or_else(|| prop.get("description"))
            .and_then(|d| d.as_str())
            .unwrap_or("");
        if depth == 0 {
            out.push('\n');
        }
        for line in doc.lines() {
            out.push_str(&format!("{indent}# {line}\n"));
        }
        match v {
            Value::Mapping(m) if !m.is_empty() => {
                out.push_str(&format!("{indent}{key}:\n"));
                render(root, prop, v, depth + 1, out);
            }
            Value::Sequence(seq) if !seq.is_empty() => {
                out.push_str(&format!("{indent}{key}:\n"));
                for line in yaml_serde::to_string(v).expect("list serialises").lines() {
                    out.push_str(&format!("{indent}  {line}\n"));
                }
            }
            _ => {
                let scalar = yaml_serde::to_string(v).expect("scalar serialises");
                out.push_str(&format!("{indent}{key}: {}\n", scalar.trim_end()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_round_trip_through_yaml() {
        let text = default_yaml_commented();
        let back: Settings = yaml_serde::from_str(&text).expect("commented defaults parse");
        assert_eq!(back, Settings::default());
        assert!(text.contains("# Number of simulated devices"), "{text}");
        Settings::default().validate().expect("defaults are valid");
    }
}
