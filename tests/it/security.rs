//! Security against Apache Kafka's own listeners (`scripts/kafka.sh`, the shared
//! one-node cluster, topics of our own): SASL PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512,
//! TLS verified against the cluster's CA, mTLS and SASL_SSL each deliver every reading,
//! and `verify` with the same credentials reads exactly those back. A wrong password,
//! an unknown user, a CA that did not sign the brokers' certificates, a client that
//! speaks another protocol than its listener, a missing client certificate and a SASL
//! mechanism the brokers do not enable each fail within the connect timeout, exit 1,
//! with an error that says what is wrong and names the setting to change; a mechanism
//! that does not exist is bad input (exit 2). A two-minute SCRAM run delivers exactly.
//! No output shows a password, even at debug level.
//!
//! Security is set the ways users set it: `-X` librdkafka properties, the typed
//! `kafka.security.*` settings from the environment (`IOTBLAST_KAFKA_SECURITY_*`) or
//! from a settings file with a `password_file`.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::PKey;
use openssl::x509::extension::{BasicConstraints, KeyUsage};
use openssl::x509::{X509NameBuilder, X509};

use crate::cluster::{unique, Cluster};
use crate::common::{iotblast, java_partition, seqs_per_device, summary_from};

/// A wrong password: a marker that must never appear in any output.
const WRONG: &str = "marker-secret-7f3a9c";
/// Readings per delivery run.
const N: u64 = 2000;
/// The connect timeout of the runs that must fail.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// What a failing run may take beyond its connect timeout: process start-up, serving
/// librdkafka's queued events (`ERROR_EVENTS`) and exit, on a busy machine. Less than
/// a second connect timeout, so a run that waits for the brokers twice fails.
const MARGIN: Duration = Duration::from_millis(2500);

/// Environment variables for one iotblast process.
type Env = Vec<(&'static str, String)>;

fn cluster() -> &'static Cluster {
    Cluster::shared()
}

/// Owned strings from string literals.
fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// `-X` flags from `key=value` properties.
fn x(props: &[String]) -> Vec<String> {
    props
        .iter()
        .flat_map(|p| ["-X".to_owned(), p.clone()])
        .collect()
}

/// `-X` flags for SASL over `protocol` with `mechanism`, `user` and `password`.
fn sasl_flags(protocol: &str, mechanism: &str, user: &str, password: &str) -> Vec<String> {
    x(&[
        format!("security.protocol={protocol}"),
        format!("sasl.mechanism={mechanism}"),
        format!("sasl.username={user}"),
        format!("sasl.password={password}"),
    ])
}

/// The typed settings (`kafka.security.*`) for SASL over `protocol` with `mechanism`
/// and the cluster's SCRAM user, as environment variables; the password comes apart.
fn sasl_env(protocol: &str, mechanism: &str) -> Env {
    vec![
        ("IOTBLAST_KAFKA_SECURITY_PROTOCOL", protocol.to_owned()),
        (
            "IOTBLAST_KAFKA_SECURITY_SASL_MECHANISM",
            mechanism.to_owned(),
        ),
        (
            "IOTBLAST_KAFKA_SECURITY_USERNAME",
            cluster().get("SCRAM_USER").to_owned(),
        ),
    ]
}

/// The typed settings for TLS verified against the cluster's CA.
fn tls_env() -> Env {
    vec![
        ("IOTBLAST_KAFKA_SECURITY_PROTOCOL", "ssl".to_owned()),
        (
            "IOTBLAST_KAFKA_SECURITY_CA_LOCATION",
            cluster().get("CA_FILE").to_owned(),
        ),
    ]
}

/// Runs iotblast with `args` and `env`, checking that it does not panic.
fn run_with_env(args: &[String], env: &Env) -> Output {
    let mut c = iotblast();
    c.args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().expect("spawn iotblast");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    crate::common::assert_no_panic(&args, &out.stderr);
    out
}

/// A produce run of `N` readings to `topic` on `bootstrap` (alerts off), then `extra`.
fn produce_args(
    bootstrap: &str,
    topic: &str,
    connect_timeout: &str,
    extra: &[String],
) -> Vec<String> {
    let n = N.to_string();
    let mut v = strings(&["-b", bootstrap, "-t", topic, "--alerts-topic", ""]);
    v.extend(strings(&[
        "--devices",
        "100",
        "--messages",
        &n,
        "--partitions",
        "3",
        "--json",
        "-q",
        "--connect-timeout",
        connect_timeout,
    ]));
    v.extend_from_slice(extra);
    v
}

/// `iotblast verify --json` of `expect` readings in `topic` on `bootstrap`, then `extra`.
fn verify_args(
    bootstrap: &str,
    topic: &str,
    expect: u64,
    connect_timeout: &str,
    extra: &[String],
) -> Vec<String> {
    let expect = expect.to_string();
    let mut v = strings(&["verify", "--json", "-b", bootstrap, "-t", topic]);
    v.extend(strings(&[
        "--alerts-topic",
        "",
        "--expect",
        &expect,
        "--idle",
        "3s",
        "--connect-timeout",
        connect_timeout,
    ]));
    v.extend_from_slice(extra);
    v
}

/// Fails if a password of the cluster or the marker shows in `out`'s stdout or stderr.
fn assert_no_secret(what: &str, out: &Output) {
    let c = cluster();
    let secrets = [
        WRONG,
        c.get("SCRAM_PASSWORD"),
        c.get("NOACL_PASSWORD"),
        c.get("ADMIN_PASSWORD"),
    ];
    for (stream, bytes) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        let text = String::from_utf8_lossy(bytes);
        for secret in secrets {
            assert!(
                !text.contains(secret),
                "{what} leaked a password on {stream}:\n{text}"
            );
        }
    }
}

/// Checks a run's summary: every reading of `expected` (if given) delivered, none
/// failed or in doubt. Returns the readings delivered.
fn assert_all_delivered(what: &str, out: &Output, expected: Option<u64>) -> u64 {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{what}: {stderr}");
    let s = summary_from(&out.stdout);
    let sent = s["messages_sent"].as_u64().expect("messages_sent");
    if let Some(n) = expected {
        assert_eq!(sent, n, "{what}: {s}");
    }
    assert_eq!(s["messages_delivered"].as_u64(), Some(sent), "{what}: {s}");
    assert_eq!(
        (
            s["messages_failed"].as_u64(),
            s["messages_in_doubt"].as_u64()
        ),
        (Some(0), Some(0)),
        "{what}: {s}"
    );
    sent
}

/// Checks that `verify` read exactly `n` readings, with no gap, duplicate, reordering
/// or invalid message.
fn assert_verified(what: &str, out: &Output, n: u64) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{what}: {stderr}");
    let r = summary_from(&out.stdout);
    assert_eq!(r["readings"].as_u64(), Some(n), "{what}: {r}");
    for key in ["gaps", "duplicates", "reorders", "invalid", "misplaced"] {
        assert_eq!(r[key].as_u64(), Some(0), "{what}: {key} in {r}");
    }
    assert_eq!(r["ok"].as_bool(), Some(true), "{what}: {r}");
}

/// Produces `N` readings to a new topic on `bootstrap` with `flags` and `env`, checks
/// that all were delivered, then has `verify` read them back with the same security
/// and checks that it finds exactly `N`. Neither may print a password.
fn delivers_and_verifies(bootstrap: &str, name: &str, flags: &[String], env: &Env) {
    let topic = unique(name);
    let out = run_with_env(&produce_args(bootstrap, &topic, "30s", flags), env);
    assert_all_delivered(&format!("{name}: the run"), &out, Some(N));
    assert_no_secret("the run", &out);

    let out = run_with_env(&verify_args(bootstrap, &topic, N, "30s", flags), env);
    assert_verified(&format!("{name}: verify"), &out, N);
    assert_no_secret("verify", &out);
}

#[test]
fn sasl_plain_from_flags_delivers_every_reading_and_verify_reads_them_back() {
    let c = cluster();
    let x = sasl_flags(
        "SASL_PLAINTEXT",
        "PLAIN",
        c.get("SCRAM_USER"),
        c.get("SCRAM_PASSWORD"),
    );
    delivers_and_verifies(c.get("BOOTSTRAP_SASL"), "sec-plain", &x, &vec![]);
}

#[test]
fn scram_sha_256_from_flags_delivers_every_reading_and_verify_reads_them_back() {
    let c = cluster();
    let x = sasl_flags(
        "SASL_PLAINTEXT",
        "SCRAM-SHA-256",
        c.get("SCRAM_USER"),
        c.get("SCRAM_PASSWORD"),
    );
    delivers_and_verifies(c.get("BOOTSTRAP_SASL"), "sec-scram256", &x, &vec![]);
}

#[test]
fn scram_sha_512_from_settings_delivers_every_reading_and_verify_reads_them_back() {
    let c = cluster();
    let mut env = sasl_env("sasl_plaintext", "SCRAM-SHA-512");
    env.push((
        "IOTBLAST_KAFKA_SECURITY_PASSWORD",
        c.get("SCRAM_PASSWORD").to_owned(),
    ));
    delivers_and_verifies(c.get("BOOTSTRAP_SASL"), "sec-scram512", &[], &env);
}

#[test]
fn tls_verified_against_the_ca_delivers_every_reading_and_verify_reads_them_back() {
    // That the CA is really checked: a_ca_that_did_not_sign_... below.
    delivers_and_verifies(cluster().get("BOOTSTRAP_SSL"), "sec-tls", &[], &tls_env());
}

#[test]
fn mtls_with_a_client_certificate_delivers_every_reading_and_verify_reads_them_back() {
    // The listener requires the certificate (the_mtls_listener_refuses_... below), and
    // its principal is the one that holds the ACLs.
    let c = cluster();
    let mut env = tls_env();
    env.push((
        "IOTBLAST_KAFKA_SECURITY_CERTIFICATE_LOCATION",
        c.get("CLIENT_CERT").to_owned(),
    ));
    env.push((
        "IOTBLAST_KAFKA_SECURITY_KEY_LOCATION",
        c.get("CLIENT_KEY").to_owned(),
    ));
    delivers_and_verifies(c.get("BOOTSTRAP_MTLS"), "sec-mtls", &[], &env);
}

#[test]
fn sasl_ssl_scram_from_a_settings_file_and_a_password_file_delivers_every_reading() {
    // The production example's setup (configs/production.yaml): SCRAM-SHA-512 over TLS,
    // the CA and the password file named in a settings file.
    let c = cluster();
    let dir = tempfile::tempdir().unwrap();
    let password_file = dir.path().join("password");
    std::fs::write(&password_file, format!("{}\n", c.get("SCRAM_PASSWORD"))).unwrap();
    let settings = dir.path().join("iotblast.yaml");
    let yaml = format!(
        "kafka:\n  brokers: {}\n  security:\n    protocol: sasl_ssl\n    sasl_mechanism: SCRAM-SHA-512\n    username: {}\n    password_file: {}\n    ca_location: {}\n",
        c.get("BOOTSTRAP_SASL_SSL"),
        c.get("SCRAM_USER"),
        password_file.display(),
        c.get("CA_FILE"),
    );
    std::fs::write(&settings, yaml).unwrap();
    let topic = unique("sec-sasl-ssl");
    let n = N.to_string();
    let config = ["--config".to_owned(), settings.display().to_string()];
    let mut args = config.to_vec();
    args.extend(strings(&["-t", &topic, "--alerts-topic", ""]));
    args.extend(strings(&[
        "--devices",
        "100",
        "--messages",
        &n,
        "--json",
        "-q",
    ]));
    let out = run_with_env(&args, &vec![]);
    assert_all_delivered("the run", &out, Some(N));
    assert_no_secret("the run", &out);

    let mut args = strings(&["verify", "--json"]);
    args.extend_from_slice(&config);
    args.extend(strings(&["-t", &topic, "--alerts-topic", ""]));
    args.extend(strings(&["--expect", &n, "--idle", "3s"]));
    let out = run_with_env(&args, &vec![]);
    assert_verified("verify", &out, N);
    assert_no_secret("verify", &out);
}

/// How a run that must fail ended.
#[derive(Debug)]
struct Failed {
    what: String,
    code: Option<i32>,
    took: Duration,
    error: String,
}

/// Runs iotblast with `args` and `env`, expecting it to fail; checks that it printed
/// no password and returns how it ended, with its last stderr line (the error).
fn failing(what: &str, args: &[String], env: &Env) -> Failed {
    let t = Instant::now();
    let out = run_with_env(args, env);
    let took = t.elapsed();
    assert_no_secret(what, &out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    Failed {
        what: what.to_owned(),
        code: out.status.code(),
        took,
        error: stderr.lines().last().unwrap_or_default().to_owned(),
    }
}

/// Checks that every outcome exited `code` within the connect timeout (plus
/// [`MARGIN`]) and that its error has every one of `want` and is not a bare transport
/// failure. All outcomes are shown when one fails.
fn assert_specific(outcomes: &[Failed], code: i32, want: &[&str]) {
    for f in outcomes {
        let ok = f.code == Some(code)
            && f.took < CONNECT_TIMEOUT + MARGIN
            && f.error.starts_with("iotblast: error: ")
            && want.iter().all(|w| f.error.contains(w))
            && !f.error.contains("could not reach")
            && !f.error.contains("BrokerTransportFailure");
        assert!(
            ok,
            "{}: want exit {code} within {:?} and an error with {want:?}; all outcomes: {outcomes:#?}",
            f.what,
            CONNECT_TIMEOUT + MARGIN
        );
    }
}

/// The connect timeout as a flag value.
fn timeout_flag() -> String {
    format!("{}s", CONNECT_TIMEOUT.as_secs())
}

/// A run and a `verify` against `bootstrap` with `flags` and `env`, both expected to
/// fail (the topic need not exist: both fail before they look for it).
fn run_and_verify_fail(name: &str, bootstrap: &str, flags: &[String], env: &Env) -> Vec<Failed> {
    let topic = unique(name);
    let t = timeout_flag();
    vec![
        failing(
            &format!("{name}: run"),
            &produce_args(bootstrap, &topic, &t, flags),
            env,
        ),
        failing(
            &format!("{name}: verify"),
            &verify_args(bootstrap, &topic, N, &t, flags),
            env,
        ),
    ]
}

#[test]
fn a_wrong_password_is_an_authentication_failure_within_the_connect_timeout() {
    // librdkafka retries a failed authentication until the connect timeout; iotblast
    // must then say that authentication failed, not that the brokers were unreachable.
    let c = cluster();
    let x = sasl_flags(
        "SASL_PLAINTEXT",
        "SCRAM-SHA-256",
        c.get("SCRAM_USER"),
        WRONG,
    );
    let mut outcomes = run_and_verify_fail("sec-wrong-pw", c.get("BOOTSTRAP_SASL"), &x, &vec![]);
    // The same from the typed settings, over TLS.
    let mut env = sasl_env("sasl_ssl", "SCRAM-SHA-512");
    env.push((
        "IOTBLAST_KAFKA_SECURITY_CA_LOCATION",
        c.get("CA_FILE").to_owned(),
    ));
    env.push(("IOTBLAST_KAFKA_SECURITY_PASSWORD", WRONG.to_owned()));
    let topic = unique("sec-wrong-pw");
    outcomes.push(failing(
        "settings, sasl_ssl: run",
        &produce_args(c.get("BOOTSTRAP_SASL_SSL"), &topic, &timeout_flag(), &[]),
        &env,
    ));
    let user = format!("refused user '{}'", c.get("SCRAM_USER"));
    assert_specific(
        &outcomes,
        1,
        &[
            "authentication failed against Kafka brokers",
            &user,
            "kafka.security.password",
        ],
    );
}

#[test]
fn an_unknown_user_is_an_authentication_failure_within_the_connect_timeout() {
    let c = cluster();
    let bootstrap = c.get("BOOTSTRAP_SASL");
    let user = unique("nobody-here");
    let mut outcomes = Vec::new();
    for mechanism in ["PLAIN", "SCRAM-SHA-512"] {
        let x = sasl_flags("SASL_PLAINTEXT", mechanism, &user, WRONG);
        let topic = unique("sec-unknown-user");
        outcomes.push(failing(
            &format!("{mechanism}: run"),
            &produce_args(bootstrap, &topic, &timeout_flag(), &x),
            &vec![],
        ));
    }
    let x = sasl_flags("SASL_PLAINTEXT", "SCRAM-SHA-256", &user, WRONG);
    let topic = unique("sec-unknown-user");
    outcomes.push(failing(
        "SCRAM-SHA-256: verify",
        &verify_args(bootstrap, &topic, N, &timeout_flag(), &x),
        &vec![],
    ));
    let refused = format!("refused user '{user}'");
    assert_specific(
        &outcomes,
        1,
        &[
            "authentication failed against Kafka brokers",
            &refused,
            "kafka.security.username",
        ],
    );
}

/// A CA certificate (PEM) of a new key, unrelated to the cluster's CA, in `dir`.
fn unrelated_ca(dir: &Path) -> PathBuf {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    let key = PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_nid(Nid::COMMONNAME, "iotblast test CA")
        .unwrap();
    let name = name.build();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    let mut serial = BigNum::new().unwrap();
    serial.rand(64, MsbOption::MAYBE_ZERO, false).unwrap();
    b.set_serial_number(&serial.to_asn1_integer().unwrap())
        .unwrap();
    b.set_subject_name(&name).unwrap();
    // Same subject as the cluster's CA, so only the signature tells them apart.
    b.set_issuer_name(&name).unwrap();
    b.set_pubkey(&key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(2).unwrap())
        .unwrap();
    b.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
        .unwrap();
    let usage = KeyUsage::new().critical().key_cert_sign().build().unwrap();
    b.append_extension(usage).unwrap();
    b.sign(&key, MessageDigest::sha256()).unwrap();
    let path = dir.join("unrelated-ca.pem");
    std::fs::write(&path, b.build().to_pem().unwrap()).unwrap();
    path
}

#[test]
fn a_ca_that_did_not_sign_the_brokers_certificate_fails_verification_within_the_connect_timeout() {
    let c = cluster();
    let dir = tempfile::tempdir().unwrap();
    let wrong_ca = unrelated_ca(dir.path()).display().to_string();
    let env: Env = vec![
        ("IOTBLAST_KAFKA_SECURITY_PROTOCOL", "ssl".to_owned()),
        ("IOTBLAST_KAFKA_SECURITY_CA_LOCATION", wrong_ca.clone()),
    ];
    let mut outcomes = run_and_verify_fail("sec-wrong-ca", c.get("BOOTSTRAP_SSL"), &[], &env);
    // The same over SASL_SSL, the CA from -X.
    let mut x = sasl_flags(
        "SASL_SSL",
        "SCRAM-SHA-256",
        c.get("SCRAM_USER"),
        c.get("SCRAM_PASSWORD"),
    );
    x.extend(self::x(&[format!("ssl.ca.location={wrong_ca}")]));
    let topic = unique("sec-wrong-ca");
    outcomes.push(failing(
        "sasl_ssl, -X: run",
        &produce_args(c.get("BOOTSTRAP_SASL_SSL"), &topic, &timeout_flag(), &x),
        &vec![],
    ));
    let named = format!("kafka.security.ca_location ('{wrong_ca}')");
    assert_specific(
        &outcomes,
        1,
        &["TLS certificate verification failed", &named],
    );
}

#[test]
fn a_plaintext_client_at_the_tls_listener_is_told_to_set_the_security_protocol() {
    // Kafka's TLS listener closes the connection on the plaintext ApiVersion request;
    // librdkafka reports only the disconnect.
    let c = cluster();
    let outcomes = run_and_verify_fail("sec-plain-at-tls", c.get("BOOTSTRAP_SSL"), &[], &vec![]);
    assert_specific(
        &outcomes,
        1,
        &[
            "closed the connection during the first request (ApiVersion)",
            "set kafka.security.protocol (now plaintext) to ssl or sasl_ssl",
        ],
    );
}

#[test]
fn a_tls_client_at_the_plaintext_listener_fails_the_handshake_naming_the_security_protocol() {
    let c = cluster();
    let outcomes = run_and_verify_fail("sec-tls-at-plain", c.bootstrap(), &[], &tls_env());
    assert_specific(
        &outcomes,
        1,
        &[
            "TLS handshake with Kafka brokers",
            "the listener does not speak TLS",
            "set kafka.security.protocol (now ssl) to plaintext or sasl_plaintext",
        ],
    );
}

#[test]
fn the_mtls_listener_refuses_a_client_without_a_certificate_naming_the_certificate_setting() {
    let c = cluster();
    let outcomes =
        run_and_verify_fail("sec-mtls-no-cert", c.get("BOOTSTRAP_MTLS"), &[], &tls_env());
    assert_specific(
        &outcomes,
        1,
        &[
            "refused the TLS client certificate",
            "kafka.security.certificate_location is not set",
        ],
    );
}

#[test]
fn every_other_listener_mismatch_names_the_security_protocol() {
    let c = cluster();
    let password = c.get("SCRAM_PASSWORD");
    let ca = format!("ssl.ca.location={}", c.get("CA_FILE"));
    let sasl = |protocol| {
        let mut f = sasl_flags(protocol, "SCRAM-SHA-256", c.get("SCRAM_USER"), password);
        f.extend(x(std::slice::from_ref(&ca)));
        f
    };
    let ssl = x(&["security.protocol=SSL".to_owned(), ca.clone()]);
    // (client, listener, flags, what the error must say)
    let cases = [
        (
            "plaintext",
            "BOOTSTRAP_SASL",
            vec![],
            "set kafka.security.protocol (now plaintext) to sasl_plaintext or sasl_ssl",
        ),
        (
            "ssl",
            "BOOTSTRAP_SASL_SSL",
            ssl,
            "set kafka.security.protocol (now ssl) to sasl_plaintext or sasl_ssl",
        ),
        (
            "sasl_plaintext",
            "BOOTSTRAP_SSL",
            sasl("SASL_PLAINTEXT"),
            "set kafka.security.protocol (now sasl_plaintext) to ssl or sasl_ssl",
        ),
        (
            "sasl_ssl",
            "BOOTSTRAP_SSL",
            sasl("SASL_SSL"),
            "set kafka.security.protocol (now sasl_ssl) to plaintext or ssl",
        ),
        (
            "sasl_plaintext",
            "BOOTSTRAP",
            sasl("SASL_PLAINTEXT"),
            "set kafka.security.protocol (now sasl_plaintext) to plaintext or ssl",
        ),
    ];
    let mut failures = Vec::new();
    for (client, listener, flags, want) in &cases {
        let topic = unique("sec-mismatch");
        let f = failing(
            &format!("{client} at {listener}"),
            &produce_args(c.get(listener), &topic, &timeout_flag(), flags),
            &vec![],
        );
        if !f.error.contains(want) {
            failures.push(format!("{}: want {want:?}", f.what));
        }
        assert_specific(std::slice::from_ref(&f), 1, &["kafka.security.protocol"]);
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn a_listener_that_refuses_the_metadata_request_is_named_not_called_unreachable() {
    // A KRaft controller's listener answers ApiVersion but supports no Metadata
    // version: librdkafka gives up with UnsupportedFeature, which must not read as an
    // unreachable cluster.
    let c = cluster();
    let outcomes = run_and_verify_fail("sec-controller", c.get("CONTROLLERS"), &[], &vec![]);
    assert_specific(
        &outcomes,
        1,
        &[
            "do not support the Metadata request",
            "point kafka.brokers (-b) at the brokers' client listeners",
        ],
    );
}

#[test]
fn old_request_versions_forced_by_api_version_request_false_are_bad_input() {
    // Kafka 4 closes the connection on the produce versions librdkafka guesses without
    // ApiVersion: refused before anything is sent, naming the property, exit 2.
    let c = cluster();
    let topic = unique("sec-old-versions");
    let flags = strings(&[
        "-X",
        "api.version.request=false",
        "-X",
        "broker.version.fallback=0.9.0",
    ]);
    let slow = "60s";
    let outcomes = [
        failing(
            "run",
            &produce_args(c.bootstrap(), &topic, slow, &flags),
            &vec![],
        ),
        failing(
            "verify",
            &verify_args(c.bootstrap(), &topic, N, slow, &flags),
            &vec![],
        ),
    ];
    for f in &outcomes {
        assert!(
            f.code == Some(2)
                // The setting: -X for the run's flag, kafka.librdkafka for verify's.
                && ["-X", "kafka.librdkafka"].iter().any(|key| f
                    .error
                    .contains(&format!("{key}: api.version.request=false: librdkafka would guess")))
                && f.took < Duration::from_secs(10),
            "{}: want exit 2 at once naming api.version.request; all: {outcomes:#?}",
            f.what
        );
    }
}

#[test]
fn a_sasl_mechanism_the_brokers_do_not_enable_is_named_with_those_they_offer() {
    // OAUTHBEARER is built into librdkafka but not enabled on the cluster's listeners;
    // librdkafka's unsecured JWT stands in for an identity provider.
    let c = cluster();
    let mut env = sasl_env("sasl_plaintext", "OAUTHBEARER");
    env.retain(|(k, _)| *k != "IOTBLAST_KAFKA_SECURITY_USERNAME");
    let flags = x(&strings(&[
        "enable.sasl.oauthbearer.unsecure.jwt=true",
        "sasl.oauthbearer.config=principal=iotblast",
    ]));
    let outcomes = run_and_verify_fail("sec-oauth", c.get("BOOTSTRAP_SASL"), &flags, &env);
    assert_specific(
        &outcomes,
        1,
        &[
            "do not enable SASL mechanism OAUTHBEARER",
            "set kafka.security.sasl_mechanism to one of them",
        ],
    );
    // What the brokers offer, in whatever order they list it.
    for f in &outcomes {
        let offered = f
            .error
            .split_once("they offer ")
            .and_then(|(_, rest)| rest.split(';').next())
            .unwrap_or_default();
        let mut offered: Vec<&str> = offered.split(',').collect();
        offered.sort_unstable();
        assert_eq!(
            offered,
            ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"],
            "{f:#?}"
        );
    }
}

#[test]
fn an_unknown_sasl_mechanism_is_bad_input_that_names_the_setting() {
    // Refused before any connection: exit 2 at once, however long the connect timeout.
    let c = cluster();
    let bootstrap = c.get("BOOTSTRAP_SASL");
    let topic = unique("sec-no-such-mechanism");
    let setting = |m: &str| {
        let mut env = sasl_env("sasl_plaintext", m);
        env.push(("IOTBLAST_KAFKA_SECURITY_PASSWORD", WRONG.to_owned()));
        env
    };
    let flags = |m: &str| sasl_flags("SASL_PLAINTEXT", m, "iotblast", WRONG);
    let slow = "60s";
    let cases = [
        (
            "setting FOO: run",
            produce_args(bootstrap, &topic, slow, &[]),
            setting("FOO"),
            "kafka.security.sasl_mechanism: 'FOO' is not a SASL mechanism iotblast supports",
        ),
        (
            "setting scram-sha-256: verify",
            verify_args(bootstrap, &topic, N, slow, &[]),
            setting("scram-sha-256"),
            "kafka.security.sasl_mechanism: 'scram-sha-256' must be written in upper case: SCRAM-SHA-256",
        ),
        (
            "-X FOO: run",
            produce_args(bootstrap, &topic, slow, &flags("FOO")),
            vec![],
            "kafka.security.sasl_mechanism: librdkafka rejected the producer configuration: Unsupported SASL mechanism: FOO",
        ),
        (
            "-X GSSAPI: verify",
            verify_args(bootstrap, &topic, N, slow, &flags("GSSAPI")),
            vec![],
            "kafka.security.sasl_mechanism: librdkafka rejected the consumer configuration: No provider for SASL mechanism GSSAPI",
        ),
    ];
    let outcomes: Vec<(Failed, &str)> = cases
        .iter()
        .map(|(what, args, env, want)| (failing(what, args, env), *want))
        .collect();
    for (f, want) in &outcomes {
        assert!(
            f.code == Some(2) && f.error.contains(want) && f.took < Duration::from_secs(10),
            "{}: want exit 2 at once and {want:?}; all: {outcomes:#?}",
            f.what
        );
    }
}

#[test]
fn a_two_minute_scram_run_delivers_exactly_and_an_independent_consumer_agrees() {
    // Tansu, the broker before Apache Kafka, dropped SCRAM sessions after 60 s.
    let c = cluster();
    let topic = unique("sec-scram-2m");
    let mut env = sasl_env("sasl_plaintext", "SCRAM-SHA-512");
    env.push((
        "IOTBLAST_KAFKA_SECURITY_PASSWORD",
        c.get("SCRAM_PASSWORD").to_owned(),
    ));
    let bootstrap = c.get("BOOTSTRAP_SASL");
    // Paced, so the topic stays small: 240k readings of 200 devices.
    let args = strings(&[
        "-b",
        bootstrap,
        "-t",
        &topic,
        "--alerts-topic",
        "",
        "--partitions",
        "3",
        "--devices",
        "200",
        "--rate",
        "2000",
        "--duration",
        "2m",
        "--connect-timeout",
        "30s",
        "--json",
        "-q",
    ]);
    let out = run_with_env(&args, &env);
    let n = assert_all_delivered("the 2-minute run", &out, None);
    let s = summary_from(&out.stdout);
    let elapsed = s["elapsed_s"].as_f64().unwrap();
    assert!(elapsed >= 119.0, "the run lasted {elapsed} s: {s}");
    // At least 95 % of the paced 240k (else it would have exited 4).
    assert!((228_000..=241_000).contains(&n), "{n} readings: {s}");
    assert_no_secret("the 2-minute run", &out);

    let out = run_with_env(&verify_args(bootstrap, &topic, n, "30s", &[]), &env);
    assert_verified("verify", &out, n);

    // Kafka's own Java console consumer, over PLAINTEXT: no code shared with iotblast
    // or librdkafka.
    let records = c.console_consume(&topic, Duration::from_secs(15));
    assert_eq!(records.len() as u64, n, "the console consumer's count");
    // Keyed by device, each on the partition a Java producer would have chosen.
    for r in &records {
        assert_eq!(
            r.value["device_id"].as_str(),
            Some(r.key.as_str()),
            "key of {:?}",
            r.value
        );
        assert_eq!(r.partition, java_partition(r.key.as_bytes(), 3), "{r:?}");
    }
    // Every device's seqs are exactly 0..k: no gap, no duplicate.
    let per_device = seqs_per_device(records.iter().map(|r| &r.value));
    assert_eq!(per_device.len(), 200);
    assert_eq!(per_device.values().sum::<u64>(), n);
}

#[test]
fn no_output_shows_a_password_even_at_debug_level() {
    // At debug level, with librdkafka's own security, broker and configuration debug
    // logs on, every log line of iotblast and librdkafka is in the output.
    let c = cluster();
    let bootstrap = c.get("BOOTSTRAP_SASL");
    let debug = x(&strings(&["debug=security,broker,conf"]));
    let with_debug = |mut env: Env| {
        env.push(("RUST_LOG", "debug".to_owned()));
        env
    };
    let mut env = sasl_env("sasl_plaintext", "SCRAM-SHA-256");
    env.push((
        "IOTBLAST_KAFKA_SECURITY_PASSWORD",
        c.get("SCRAM_PASSWORD").to_owned(),
    ));
    let topic = unique("sec-marker");
    let ok = run_with_env(
        &produce_args(bootstrap, &topic, "30s", &debug),
        &with_debug(env.clone()),
    );
    assert_all_delivered("a run at debug level", &ok, Some(N));
    let stderr = String::from_utf8_lossy(&ok.stderr);
    // The logs were on and covered the password property: librdkafka lists its
    // configuration, redacted, and the SCRAM exchange.
    assert!(
        stderr.contains("sasl.password = [redacted]") && stderr.contains("SASLSCRAM"),
        "no librdkafka debug logs in the output:\n{}",
        &stderr[..stderr.len().min(4000)]
    );
    assert_no_secret("a run at debug level", &ok);

    let verified = run_with_env(
        &verify_args(bootstrap, &topic, N, "30s", &debug),
        &with_debug(env.clone()),
    );
    assert_verified("verify at debug level", &verified, N);
    assert_no_secret("verify at debug level", &verified);

    // A wrong password, sent in the clear by PLAIN, from a flag.
    let x = sasl_flags("SASL_PLAINTEXT", "PLAIN", c.get("SCRAM_USER"), WRONG);
    let mut flags = debug.clone();
    flags.extend(x);
    let failed = failing(
        "a failed run at debug level",
        &produce_args(bootstrap, &topic, &timeout_flag(), &flags),
        &with_debug(vec![]),
    );
    assert_eq!(failed.code, Some(1), "{failed:#?}");

    let print = run_with_env(&strings(&["config", "print"]), &env);
    let text = String::from_utf8_lossy(&print.stdout);
    assert_eq!(
        print.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&print.stderr)
    );
    assert!(text.contains("password: '***'"), "{text}");
    assert_no_secret("config print", &print);
}

#[test]
fn the_production_example_sets_scram_over_tls_and_holds_no_password() {
    let path = Path::new("configs/production.yaml");
    let out = run_with_env(
        &strings(&["config", "check", "configs/production.yaml"]),
        &vec![],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("configs/production.yaml: ok"), "{stderr}");

    let text = std::fs::read_to_string(path).unwrap();
    assert!(
        !text
            .lines()
            .any(|l| l.trim_start().starts_with("password:")),
        "configs/production.yaml must not hold a password:\n{text}"
    );
    let (settings, _) =
        iotblast::config::layers::load(Some(path), std::iter::empty(), &[]).unwrap();
    let security = &settings.kafka.security;
    assert!(security.password.is_none() && security.password_file.is_none());

    // With the password from the environment, as deployed.
    let env = [(
        "IOTBLAST_KAFKA_SECURITY_PASSWORD".to_owned(),
        WRONG.to_owned(),
    )];
    let (settings, _) = iotblast::config::layers::load(Some(path), env, &[]).unwrap();
    let props = settings.kafka.librdkafka_properties().unwrap();
    for (key, value) in [
        ("security.protocol", "sasl_ssl"),
        ("sasl.mechanisms", "SCRAM-SHA-512"),
        ("sasl.password", WRONG),
    ] {
        assert!(
            props.iter().any(|(k, v)| k == key && v == value),
            "{key}={value} missing"
        );
    }
    assert!(props.iter().any(|(k, _)| k == "ssl.ca.location"), "no CA");
}
