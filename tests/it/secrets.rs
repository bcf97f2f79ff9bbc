//! Guards secrets: a marker secret given through every input (flags, `-X` with and
//! without typos, the environment, YAML, a password file) never appears in any output
//! (stdout, stderr, logs at debug level, errors, `config print`, `config check`), and
//! nothing panics on the way.

use std::io::Write;

use crate::common::iotblast;

/// Digits and a leading `#`: a value that YAML would turn into a number or a comment.
const MARKER: &str = "#0123456789-m4rker-s3cret";

fn file(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new().suffix(".yaml").tempfile().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f
}

/// Environment variables for one case.
type Env<'a> = &'a [(&'a str, &'a str)];

/// Runs iotblast at debug log level and returns its whole output.
fn output(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut c = iotblast();
    c.args(args).env("RUST_LOG", "debug");
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().expect("spawn iotblast");
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), all)
}

#[test]
fn a_marker_secret_never_appears_in_any_output() {
    let yaml = file(&format!(
        "kafka:\n  security:\n    password: '{MARKER}'\n  librdkafka:\n    sasl.oauthbearer.client.secret: '{MARKER}'\n    ssl.key.password: '{MARKER}'\n"
    ));
    let yaml = yaml.path().to_str().unwrap();
    let bad_yaml = file(&format!(
        "kafka:\n  librdkafka:\n    sasl.password: '{MARKER}'\n    no.such.property: '1'\n"
    ));
    let bad_yaml = bad_yaml.path().to_str().unwrap();
    let pw_file = file(&format!("{MARKER}\n"));
    let pw_file = pw_file.path().to_str().unwrap();
    let x_password = format!("sasl.password={MARKER}");
    let x_typo = format!("sasl.pasword={MARKER}");
    let x_bad_value = format!("linger.ms={MARKER}");
    let run = ["--devices", "100", "--messages", "500", "--json"];
    let with = |extra: &[&str]| -> Vec<String> {
        run.iter().chain(extra).map(|s| s.to_string()).collect()
    };
    let env_pw = [("IOTBLAST_KAFKA_SECURITY_PASSWORD", MARKER)];
    let env_file = [("IOTBLAST_KAFKA_SECURITY_PASSWORD_FILE", pw_file)];
    let cases: Vec<(Vec<String>, Env)> = vec![
        (with(&[]), &env_pw),
        (with(&[]), &env_file),
        (with(&["--config", yaml]), &[]),
        (with(&["-X", &x_password]), &[]),
        (with(&["-X", &x_typo]), &[]),
        (with(&["-X", &x_bad_value]), &[]),
        (with(&["-X", MARKER]), &[]),
        (with(&["--sink", "null", "-X", &x_password]), &[]),
        (vec!["config".into(), "print".into()], &env_pw),
        (
            vec![
                "config".into(),
                "print".into(),
                "--config".into(),
                yaml.into(),
            ],
            &[],
        ),
        (vec!["config".into(), "check".into(), yaml.into()], &[]),
        (vec!["config".into(), "check".into(), bad_yaml.into()], &[]),
    ];
    for (args, env) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, all) = output(&args, env);
        assert!(code.is_some(), "{args:?} was killed by a signal:\n{all}");
        assert!(
            !all.contains("m4rker"),
            "{args:?} leaked the secret:\n{all}"
        );
        assert!(!all.contains("panicked"), "{args:?} panicked:\n{all}");
    }
}

#[test]
fn a_password_from_the_environment_is_taken_literally() {
    // A YAML reading would make this a number or (after '#') nothing at all.
    let (code, all) = output(
        &["config", "print"],
        &[("IOTBLAST_KAFKA_SECURITY_USERNAME", "#0123")],
    );
    assert_eq!(code, Some(0), "{all}");
    assert!(all.contains("username: '#0123'"), "{all}");
}
