//! Security against a real broker: SASL/SCRAM (SHA-256 and SHA-512), TLS and SASL_SSL
//! deliver every reading and `verify` reads them back; a wrong password fails as an
//! authentication failure within the connect timeout; the password shows in no output;
//! the production example configures SCRAM over TLS without holding a password.
//!
//! Tansu 0.6.0 is the broker, and what it can and cannot do shapes these tests:
//! - SCRAM users are created over the Kafka protocol (`tansu user create`), so the broker
//!   first runs without `--authentication` on sqlite storage, then again with it.
//! - SASL PLAIN is not tested: Tansu 0.6.0 builds rsasl without the PLAIN mechanism and
//!   drops every PLAIN handshake (`NoSharedMechanism`).
//! - Tansu 0.6.0 cannot serve TLS (`--cert` and `--key` conflict, and its acceptor is
//!   never used), so TLS goes through a TLS-terminating proxy written here with the
//!   `openssl` crate, with a throwaway CA, and Tansu advertises the proxy's port.
//! - Tansu rejects librdkafka's re-authentication after its 60 s session lifetime, so
//!   every authenticated run here stays well under a minute.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::ssl::{ErrorCode, SslAcceptor, SslMethod, SslStream};
use openssl::x509::extension::{
    BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
};
use openssl::x509::{X509NameBuilder, X509};

use crate::common::{iotblast, summary_from};
use crate::tansu::{tansu_bin, Options, Tansu};

/// The user every test authenticates as, registered for both SCRAM mechanisms.
const USER: &str = "iotblast";
/// Its password: a marker that must never appear in any output.
const PASSWORD: &str = "marker-secret-7f3a9c";
/// A wrong password, carrying the same marker.
const WRONG: &str = "marker-secret-7f3a9c-wrong";
/// What the leak checks look for: part of both passwords.
const MARKER: &str = "7f3a9c";
/// Readings per run.
const N: u64 = 2000;

/// Environment variables for one iotblast process.
type Env = Vec<(&'static str, String)>;

/// A Tansu broker that requires SASL/SCRAM, with [`USER`] registered for SCRAM-SHA-256
/// and SCRAM-SHA-512, on sqlite storage in a directory of its own.
struct AuthBroker {
    tansu: Tansu,
    dir: tempfile::TempDir,
}

impl AuthBroker {
    /// Registers [`USER`] on an open broker, then starts it again with
    /// `--authentication` on the same storage (on another port), advertising
    /// `advertised_port` (a TLS proxy's) if given.
    fn start(advertised_port: Option<u16>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let options = Options {
            storage: "sqlite://auth.db".into(),
            dir: Some(dir.path().to_owned()),
            authentication: false,
            advertised_port: None,
        };
        let open = Tansu::with(options.clone());
        for mechanism in ["scram256", "scram512"] {
            let out = Command::new(tansu_bin())
                .args(["user", "create", "--broker"])
                .arg(format!("tcp://{}", open.bootstrap))
                .args(["--mechanism", mechanism, USER, PASSWORD])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "tansu user create --mechanism {mechanism}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        drop(open);
        let tansu = Tansu::with(Options {
            authentication: true,
            advertised_port,
            ..options
        });
        Self { tansu, dir }
    }
}

/// `-X` flags for SASL over `protocol` with `mechanism`, [`USER`] and `password`.
fn sasl_flags(protocol: &str, mechanism: &str, password: &str) -> Vec<String> {
    [
        format!("security.protocol={protocol}"),
        format!("sasl.mechanism={mechanism}"),
        format!("sasl.username={USER}"),
        format!("sasl.password={password}"),
    ]
    .into_iter()
    .flat_map(|p| ["-X".to_owned(), p])
    .collect()
}

/// The typed settings (`kafka.security.*`) for SASL with `mechanism` and [`USER`], as
/// environment variables; the password comes separately.
fn sasl_env(protocol: &str, mechanism: &str) -> Env {
    vec![
        ("IOTBLAST_KAFKA_SECURITY_PROTOCOL", protocol.to_owned()),
        (
            "IOTBLAST_KAFKA_SECURITY_SASL_MECHANISM",
            mechanism.to_owned(),
        ),
        ("IOTBLAST_KAFKA_SECURITY_USERNAME", USER.to_owned()),
    ]
}

/// Owned strings from string literals.
fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
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

/// A produce run of `N` readings to `topic` on `bootstrap`, then `security`.
fn produce_args(
    bootstrap: &str,
    topic: &str,
    connect_timeout: &str,
    security: &[String],
) -> Vec<String> {
    let n = N.to_string();
    let mut v = strings(&["-b", bootstrap, "-t", topic, "--alerts-topic", ""]);
    v.extend(strings(&[
        "--devices",
        "100",
        "--messages",
        &n,
        "--json",
        "-q",
    ]));
    v.extend(strings(&["--connect-timeout", connect_timeout]));
    v.extend_from_slice(security);
    v
}

/// `iotblast verify` of `N` readings in `topic` on `bootstrap`, then `security`.
fn verify_args(
    bootstrap: &str,
    topic: &str,
    connect_timeout: &str,
    security: &[String],
) -> Vec<String> {
    let n = N.to_string();
    let mut v = strings(&[
        "verify",
        "--json",
        "-b",
        bootstrap,
        "-t",
        topic,
        "--alerts-topic",
        "",
    ]);
    v.extend(strings(&[
        "--expect",
        &n,
        "--idle",
        "2s",
        "--connect-timeout",
        connect_timeout,
    ]));
    v.extend_from_slice(security);
    v
}

/// Fails if the password (or the wrong one) shows in `out`'s stdout or stderr.
fn assert_no_secret(what: &str, out: &Output) {
    for (stream, bytes) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        let text = String::from_utf8_lossy(bytes);
        assert!(
            !text.contains(MARKER),
            "{what} leaked the password on {stream}:\n{text}"
        );
    }
}

/// Produces `N` readings to `topic` with `security` (flags) and `env`, checks that all
/// were delivered, then has `verify` read them back under the same security and checks
/// that it finds exactly `N`, with no gap or duplicate. Neither may print the password.
fn delivers_and_verifies(bootstrap: &str, topic: &str, security: &[String], env: &Env) {
    let t = Instant::now();
    let out = run_with_env(&produce_args(bootstrap, topic, "5s", security), env);
    let took = t.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    // Under Tansu's 60 s session lifetime, after which re-authentication fails.
    assert!(took < Duration::from_secs(45), "took {took:?}: {stderr}");
    let s = summary_from(&out.stdout);
    assert_eq!(s["messages_delivered"].as_u64(), Some(N), "{s}\n{stderr}");
    assert_eq!(s["messages_failed"].as_u64(), Some(0), "{s}");
    assert_no_secret("the run", &out);

    let out = run_with_env(&verify_args(bootstrap, topic, "5s", security), env);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "verify: {stderr}");
    let r = summary_from(&out.stdout);
    assert_eq!(r["readings"].as_u64(), Some(N), "{r}");
    assert_eq!(
        (r["gaps"].as_u64(), r["duplicates"].as_u64()),
        (Some(0), Some(0)),
        "{r}"
    );
    assert_no_secret("verify", &out);
}

#[test]
fn scram_sha_256_from_flags_delivers_every_reading_and_verify_reads_them_back() {
    let b = AuthBroker::start(None);
    let x = sasl_flags("SASL_PLAINTEXT", "SCRAM-SHA-256", PASSWORD);
    delivers_and_verifies(&b.tansu.bootstrap, "scram-256", &x, &vec![]);
}

#[test]
fn scram_sha_512_from_settings_delivers_every_reading_and_verify_reads_them_back() {
    let b = AuthBroker::start(None);
    let mut env = sasl_env("sasl_plaintext", "SCRAM-SHA-512");
    env.push(("IOTBLAST_KAFKA_SECURITY_PASSWORD", PASSWORD.to_owned()));
    delivers_and_verifies(&b.tansu.bootstrap, "scram-512", &[], &env);
}

#[test]
fn a_wrong_password_is_an_authentication_failure_within_the_connect_timeout() {
    // librdkafka retries a failed authentication until the connect timeout; iotblast
    // must then say that authentication failed, not that the brokers were unreachable.
    let b = AuthBroker::start(None);
    let x = sasl_flags("SASL_PLAINTEXT", "SCRAM-SHA-256", WRONG);
    let mut outcomes = Vec::new();
    for (what, args) in [
        (
            "run",
            produce_args(&b.tansu.bootstrap, "wrong-pw", "3s", &x),
        ),
        (
            "verify",
            verify_args(&b.tansu.bootstrap, "wrong-pw", "3s", &x),
        ),
    ] {
        let t = Instant::now();
        let out = run_with_env(&args, &vec![]);
        let took = t.elapsed();
        assert_no_secret(what, &out);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        outcomes.push((what, out.status.code(), took, stderr));
    }
    for (what, code, took, stderr) in &outcomes {
        let ok = !matches!(code, Some(0) | None)
            && stderr.contains("authentication failed")
            && *took < Duration::from_secs(3 + 5);
        assert!(
            ok,
            "{what}: want a non-zero exit, 'authentication failed' on stderr, within 8 s; \
             all outcomes (what, exit code, time, stderr): {outcomes:#?}"
        );
    }
}

#[test]
fn the_password_appears_in_no_output_of_a_run_a_failed_run_or_config_print() {
    let b = AuthBroker::start(None);
    // At debug level, so librdkafka's and iotblast's logs are in the output too.
    let debug = |mut env: Env| {
        env.push(("RUST_LOG", "debug".to_owned()));
        env
    };
    let mut env = sasl_env("sasl_plaintext", "SCRAM-SHA-256");
    env.push(("IOTBLAST_KAFKA_SECURITY_PASSWORD", PASSWORD.to_owned()));
    let ok = run_with_env(
        &produce_args(&b.tansu.bootstrap, "marker", "5s", &[]),
        &debug(env.clone()),
    );
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert_no_secret("a successful run", &ok);

    let x = sasl_flags("SASL_PLAINTEXT", "SCRAM-SHA-256", WRONG);
    let failed = run_with_env(
        &produce_args(&b.tansu.bootstrap, "marker", "2s", &x),
        &debug(vec![]),
    );
    assert_ne!(
        failed.status.code(),
        Some(0),
        "a wrong password was accepted"
    );
    assert_no_secret("a failed run", &failed);

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

/// A throwaway CA and a broker certificate it signed, for 127.0.0.1 and localhost.
struct Pki {
    /// The CA certificate (PEM), for `ssl.ca.location`.
    ca_file: PathBuf,
    acceptor: SslAcceptor,
    _dir: tempfile::TempDir,
}

fn new_key() -> PKey<Private> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap()
}

/// A certificate for `cn` and `key`, signed by `issuer` (self-signed if `None`); a CA
/// if `issuer` is `None`, else a server certificate for 127.0.0.1 and localhost.
fn certificate(cn: &str, key: &PKey<Private>, issuer: Option<(&X509, &PKey<Private>)>) -> X509 {
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_nid(Nid::COMMONNAME, cn).unwrap();
    let name = name.build();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    let mut serial = BigNum::new().unwrap();
    serial.rand(64, MsbOption::MAYBE_ZERO, false).unwrap();
    b.set_serial_number(&serial.to_asn1_integer().unwrap())
        .unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(issuer.map_or(&name, |(ca, _)| ca.subject_name()))
        .unwrap();
    b.set_pubkey(key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(2).unwrap())
        .unwrap();
    match issuer {
        None => {
            b.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
                .unwrap();
            let usage = KeyUsage::new()
                .critical()
                .key_cert_sign()
                .crl_sign()
                .build()
                .unwrap();
            b.append_extension(usage).unwrap();
        }
        Some((ca, _)) => {
            // librdkafka checks the host name (ssl.endpoint.identification.algorithm=https
            // by default), so the address the client dials must be in the SAN.
            let san = SubjectAlternativeName::new()
                .ip("127.0.0.1")
                .dns("localhost")
                .build(&b.x509v3_context(Some(ca), None))
                .unwrap();
            b.append_extension(san).unwrap();
            b.append_extension(BasicConstraints::new().build().unwrap())
                .unwrap();
            let usage = KeyUsage::new()
                .critical()
                .digital_signature()
                .build()
                .unwrap();
            b.append_extension(usage).unwrap();
            b.append_extension(ExtendedKeyUsage::new().server_auth().build().unwrap())
                .unwrap();
        }
    }
    b.sign(issuer.map_or(key, |(_, k)| k), MessageDigest::sha256())
        .unwrap();
    b.build()
}

impl Pki {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ca_key = new_key();
        let ca = certificate("iotblast-test-ca", &ca_key, None);
        let key = new_key();
        let cert = certificate("127.0.0.1", &key, Some((&ca, &ca_key)));
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, ca.to_pem().unwrap()).unwrap();
        let mut acceptor = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls()).unwrap();
        acceptor.set_private_key(&key).unwrap();
        acceptor.set_certificate(&cert).unwrap();
        acceptor.check_private_key().unwrap();
        Self {
            ca_file,
            acceptor: acceptor.build(),
            _dir: dir,
        }
    }
}

/// A TLS-terminating proxy: accepts TLS on `port` and pipes the plaintext to a plain
/// upstream port, one thread per connection. Stops accepting when dropped.
struct TlsProxy {
    port: u16,
    stop: Arc<AtomicBool>,
}

impl TlsProxy {
    /// Binds a loopback port, so a broker can advertise it before the proxy runs.
    fn bind() -> TcpListener {
        TcpListener::bind("127.0.0.1:0").unwrap()
    }

    /// Serves `listener`, forwarding to `upstream` on loopback.
    fn start(listener: TcpListener, upstream: u16, acceptor: SslAcceptor) -> Self {
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if stopped.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(client) = client else { continue };
                let acceptor = acceptor.clone();
                std::thread::spawn(move || {
                    // A connection that fails (a client giving up mid-handshake, the
                    // broker going away) just ends; the client sees it and retries.
                    let _ = pipe(client, upstream, &acceptor);
                });
            }
        });
        Self { port, stop }
    }
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wakes the accept loop so it sees `stop`.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Terminates TLS on `client` and copies bytes both ways between it and `upstream` until
/// either side closes. One thread serves both directions: both sockets get a short read
/// timeout (an `SslStream` resumes a read that timed out mid-record), and each side is
/// drained before turning to the other, since librdkafka sends many small TLS records.
fn pipe(client: TcpStream, upstream: u16, acceptor: &SslAcceptor) -> std::io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(10)))?;
    client.set_nodelay(true)?;
    let mut tls: SslStream<TcpStream> = acceptor.accept(client).map_err(std::io::Error::other)?;
    let mut up = TcpStream::connect(("127.0.0.1", upstream))?;
    up.set_nodelay(true)?;
    let tick = Some(Duration::from_millis(1));
    tls.get_ref().set_read_timeout(tick)?;
    up.set_read_timeout(tick)?;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        loop {
            match tls.ssl_read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => up.write_all(&buf[..n])?,
                Err(e) if e.code() == ErrorCode::WANT_READ => break,
                Err(e) => return Err(std::io::Error::other(e)),
            }
        }
        loop {
            match up.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => tls.write_all(&buf[..n])?,
                Err(e) if is_timeout(&e) => break,
                Err(e) => return Err(e),
            }
        }
    }
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

#[test]
fn tls_through_a_proxy_delivers_every_reading_and_verify_reads_them_back() {
    let pki = Pki::new();
    let listener = TlsProxy::bind();
    let proxy_port = listener.local_addr().unwrap().port();
    let tansu = Tansu::with(Options {
        advertised_port: Some(proxy_port),
        ..Options::default()
    });
    let _proxy = TlsProxy::start(listener, tansu.port(), pki.acceptor.clone());
    let x = vec![
        "-X".to_owned(),
        "security.protocol=SSL".to_owned(),
        "-X".to_owned(),
        format!("ssl.ca.location={}", pki.ca_file.display()),
    ];
    delivers_and_verifies(&tansu.bootstrap, "tls", &x, &vec![]);
}

#[test]
fn sasl_ssl_scram_from_settings_and_a_password_file_delivers_every_reading() {
    // The production example's setup (configs/production.yaml): SCRAM-SHA-512 over
    // TLS, the CA and password file from settings.
    let pki = Pki::new();
    let listener = TlsProxy::bind();
    let proxy_port = listener.local_addr().unwrap().port();
    let b = AuthBroker::start(Some(proxy_port));
    let _proxy = TlsProxy::start(listener, b.tansu.port(), pki.acceptor.clone());
    let password_file = b.dir.path().join("password");
    std::fs::write(&password_file, format!("{PASSWORD}\n")).unwrap();
    let mut env = sasl_env("sasl_ssl", "SCRAM-SHA-512");
    env.push((
        "IOTBLAST_KAFKA_SECURITY_CA_LOCATION",
        pki.ca_file.display().to_string(),
    ));
    env.push((
        "IOTBLAST_KAFKA_SECURITY_PASSWORD_FILE",
        password_file.display().to_string(),
    ));
    delivers_and_verifies(&b.tansu.bootstrap, "sasl-ssl", &[], &env);
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
        PASSWORD.to_owned(),
    )];
    let (settings, _) = iotblast::config::layers::load(Some(path), env, &[]).unwrap();
    let props = settings.kafka.librdkafka_properties().unwrap();
    for (key, value) in [
        ("security.protocol", "sasl_ssl"),
        ("sasl.mechanisms", "SCRAM-SHA-512"),
        ("sasl.password", PASSWORD),
    ] {
        assert!(
            props.iter().any(|(k, v)| k == key && v == value),
            "{key}={value} missing"
        );
    }
    assert!(props.iter().any(|(k, _)| k == "ssl.ca.location"), "no CA");
}
