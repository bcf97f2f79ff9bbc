//! Why the brokers refused a client, in terms of the setting to change.
//!
//! A failed TLS handshake, a refused client certificate, a SASL mechanism the brokers do
//! not enable, wrong credentials, or a client that speaks another protocol than the
//! listener: librdkafka reports each as an error event or a `FAIL` log line, then
//! retries until the connect timeout, so start-up sees only a metadata request that
//! timed out or a transport failure. `ClientErrors` keeps those reports; if the brokers
//! never answer, [`diagnose`] turns one into an error that says what is wrong and names
//! the `kafka.security` setting that fixes it. [`rejected`] does the same for a
//! configuration librdkafka refuses when the client is created.
//!
//! The texts matched are librdkafka's (2.12) and OpenSSL's, which are not an API: a
//! report that matches nothing gives no diagnosis, and the error stays "could not reach
//! Kafka brokers", with librdkafka's own words.

use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use crate::error::{ConfigError, Error};

/// The client's security as librdkafka got it: the settings with `-X` on top.
#[derive(Debug, Clone, Default)]
pub struct Security {
    /// `security.protocol`, lower case.
    protocol: String,
    mechanism: Option<String>,
    username: Option<String>,
    ca_location: Option<String>,
    certificate_location: Option<String>,
}

impl Security {
    /// The security properties of `config`.
    pub fn of(config: &rdkafka::ClientConfig) -> Self {
        let get = |key: &str| config.get(key).map(str::to_owned);
        Self {
            protocol: get("security.protocol")
                .unwrap_or_else(|| "plaintext".into())
                .to_ascii_lowercase(),
            // librdkafka takes either spelling; the settings write the plural.
            mechanism: get("sasl.mechanisms").or_else(|| get("sasl.mechanism")),
            username: get("sasl.username"),
            ca_location: get("ssl.ca.location"),
            certificate_location: get("ssl.certificate.location"),
        }
    }

    fn tls(&self) -> bool {
        self.protocol.ends_with("ssl")
    }

    fn sasl(&self) -> bool {
        self.protocol.starts_with("sasl")
    }

    /// "kafka.security.protocol (now X)".
    fn protocol_setting(&self) -> String {
        format!("kafka.security.protocol (now {})", self.protocol)
    }
}

/// What a report says is wrong.
#[derive(Debug)]
pub struct Diagnosis {
    /// What went wrong, naming the brokers.
    pub problem: String,
    /// What to change, naming the setting.
    pub fix: String,
    /// Whether the report says so by itself. A guess from how a connection was closed
    /// is not, and holds only for the latest report (a broker that went down since
    /// closes connections too).
    pub definitive: bool,
}

/// What report `reason` (with error `code`, if it came as an error event) says about a
/// client with `security` that could not talk to `brokers`, if anything.
pub fn diagnose(
    code: Option<RDKafkaErrorCode>,
    reason: &str,
    security: &Security,
    brokers: &str,
) -> Option<Diagnosis> {
    let s = security;
    let found = |problem: String, fix: String| {
        Some(Diagnosis {
            problem,
            fix,
            definitive: true,
        })
    };
    if reason.contains("certificate verify failed") {
        let fix = match &s.ca_location {
            Some(ca) => format!(
                "their certificate is not signed by the CA in kafka.security.ca_location ('{ca}'); point it at the CA that signed the brokers' certificates"
            ),
            None => "their certificate is not signed by a CA in the system's trust store, and kafka.security.ca_location is not set; set it to the CA that signed the brokers' certificates".into(),
        };
        return found(
            format!("TLS certificate verification failed for Kafka brokers {brokers}"),
            fix,
        );
    }
    // The alert a TLS server sends when a client brings no certificate, or one it does
    // not trust: TLS 1.2 "bad certificate" (42) or "unknown ca" (48), TLS 1.3
    // "certificate required" (116). With TLS 1.3 it arrives after the handshake, on
    // the first read.
    if [
        "alert bad certificate",
        "alert unknown ca",
        "alert certificate required",
    ]
    .iter()
    .any(|a| reason.contains(a))
    {
        let fix = match &s.certificate_location {
            None => "the listener requires one (mTLS) and kafka.security.certificate_location is not set; set it and kafka.security.key_location to the client's certificate and key".to_owned(),
            Some(cert) => format!(
                "kafka.security.certificate_location ('{cert}') must hold a certificate signed by a CA the brokers trust, its key in kafka.security.key_location"
            ),
        };
        return found(
            format!("Kafka brokers {brokers} refused the TLS client certificate"),
            fix,
        );
    }
    if reason.contains("connecting to a PLAINTEXT broker listener?")
        || (reason.contains("in state SSL_HANDSHAKE") && reason.contains("Disconnected"))
    {
        return found(
            format!("the TLS handshake with Kafka brokers {brokers} failed, as the listener does not speak TLS"),
            format!("set {} to plaintext or sasl_plaintext to match it", s.protocol_setting()),
        );
    }
    if let Some(d) = sasl(code, reason, s, brokers) {
        return Some(d);
    }
    closed(reason, s, brokers)
}

/// A start-up request the brokers do not support at any version both sides know:
/// librdkafka's `UnsupportedFeature`. A KRaft controller's listener answers this to a
/// client's Metadata request, so a wrong port in `kafka.brokers` is the usual cause.
pub fn unsupported(source: &KafkaError, brokers: &str) -> Option<Diagnosis> {
    (source.rdkafka_error_code() == Some(RDKafkaErrorCode::UnsupportedFeature)).then(|| Diagnosis {
        problem: format!(
            "Kafka brokers {brokers} do not support the Metadata request every client starts with"
        ),
        fix: "a KRaft controller's listener answers so, not a broker's; point kafka.brokers (-b) at the brokers' client listeners".into(),
        definitive: true,
    })
}

/// A SASL handshake or authentication the brokers refused.
fn sasl(
    code: Option<RDKafkaErrorCode>,
    reason: &str,
    s: &Security,
    brokers: &str,
) -> Option<Diagnosis> {
    let mechanism = s.mechanism.as_deref().unwrap_or("(none)");
    let found = |problem: String, fix: String| {
        Some(Diagnosis {
            problem,
            fix,
            definitive: true,
        })
    };
    if reason.contains("mechanism handshake failed") {
        // "...: broker's supported mechanisms: PLAIN,SCRAM-SHA-512 (after 2ms in state
        // AUTH_HANDSHAKE)"; an empty list is a listener without SASL.
        let offered = reason
            .split_once("broker's supported mechanisms:")
            .map(|(_, rest)| rest.split(" (after").next().unwrap_or_default().trim())
            .unwrap_or_default();
        return if offered.is_empty() {
            found(
                format!("the listener of Kafka brokers {brokers} does not take SASL"),
                format!(
                    "set {} to plaintext or ssl to match it",
                    s.protocol_setting()
                ),
            )
        } else {
            found(
                format!("Kafka brokers {brokers} do not enable SASL mechanism {mechanism}"),
                format!("they offer {offered}; set kafka.security.sasl_mechanism to one of them"),
            )
        };
    }
    let auth = matches!(
        code,
        Some(RDKafkaErrorCode::Authentication | RDKafkaErrorCode::SaslAuthenticationFailed)
    );
    if auth || reason.contains("SASL authentication error") {
        let fix = match (mechanism, &s.username) {
            ("OAUTHBEARER", _) => {
                "check the sasl.oauthbearer.* properties in kafka.librdkafka".to_owned()
            }
            (_, Some(user)) => format!(
                "the brokers refused user '{user}' with {mechanism}; check kafka.security.username and kafka.security.password (or password_file)"
            ),
            (_, None) => {
                "kafka.security.username is not set; set it and kafka.security.password".into()
            }
        };
        return found(
            format!("authentication failed against Kafka brokers {brokers}"),
            fix,
        );
    }
    None
}

/// A guess from a connection the brokers closed before answering: what a TLS listener
/// does to a client without TLS (during its first request, ApiVersion), and what a
/// SASL listener does to a client that has not authenticated (at its first request
/// past ApiVersion).
fn closed(reason: &str, s: &Security, brokers: &str) -> Option<Diagnosis> {
    let closed = reason.contains("Disconnected") || reason.contains("connection closed by peer");
    let guess = |problem: String, fix: String| {
        Some(Diagnosis {
            problem,
            fix,
            definitive: false,
        })
    };
    if closed && reason.contains("in state APIVERSION_QUERY") && !s.tls() {
        return guess(
            format!("Kafka brokers {brokers} closed the connection during the first request (ApiVersion), as a TLS listener does to a client without TLS"),
            format!("set {} to ssl or sasl_ssl to match it", s.protocol_setting()),
        );
    }
    if closed && reason.contains("in state UP") && !s.sasl() {
        return guess(
            format!("Kafka brokers {brokers} closed the connection before answering metadata, as a SASL listener does to a client that has not authenticated"),
            format!(
                "set {} to sasl_plaintext or sasl_ssl, with kafka.security.sasl_mechanism and credentials, to match it",
                s.protocol_setting()
            ),
        );
    }
    None
}

/// The error for a client librdkafka would not create with `config`: a configuration
/// it rejects (an unsupported SASL mechanism, a CA or key file it cannot load) is bad
/// input, named by the setting it concerns; `client` is "producer" or "consumer".
pub fn rejected(e: KafkaError, client: &str, wrap: fn(KafkaError) -> Error) -> Error {
    let KafkaError::ClientCreation(message) = &e else {
        return wrap(e);
    };
    // librdkafka names the property first ("ssl.ca.location failed: ...") or the
    // mechanism ("Unsupported SASL mechanism: X").
    let key = [
        ("SASL mechanism", "kafka.security.sasl_mechanism"),
        ("ssl.ca.", "kafka.security.ca_location"),
        ("ssl.certificate.", "kafka.security.certificate_location"),
        ("ssl.key.", "kafka.security.key_location"),
    ]
    .iter()
    .find(|(text, _)| message.contains(text))
    .map_or("kafka.librdkafka", |(_, key)| key);
    ConfigError::new(
        key,
        format!("librdkafka rejected the {client} configuration: {message}"),
    )
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn security(protocol: &str) -> Security {
        Security {
            protocol: protocol.into(),
            ..Security::default()
        }
    }

    #[test]
    fn a_close_during_apiversion_points_a_plaintext_client_at_the_protocol() {
        let reason = "127.0.0.1:9093/bootstrap: Disconnected: connection closed by peer: receive 0 after POLLIN (after 2ms in state APIVERSION_QUERY)";
        let d = diagnose(None, reason, &security("plaintext"), "b:1").unwrap();
        assert!(!d.definitive);
        assert!(
            d.fix.contains("kafka.security.protocol (now plaintext)"),
            "{d:?}"
        );
        // A TLS client closed there is not a protocol mismatch of this kind.
        assert!(diagnose(None, reason, &security("ssl"), "b:1").is_none());
    }

    #[test]
    fn an_unrecognised_report_gives_no_diagnosis() {
        let reason = "127.0.0.1:1/bootstrap: Connect to ipv4#127.0.0.1:1 failed: Connection refused (after 0ms in state CONNECT)";
        assert!(diagnose(None, reason, &security("sasl_ssl"), "b:1").is_none());
    }

    #[test]
    fn the_mechanisms_a_broker_offers_are_named() {
        let mut s = security("sasl_plaintext");
        s.mechanism = Some("OAUTHBEARER".into());
        let reason = "SASL OAUTHBEARER mechanism handshake failed: Broker: Unsupported SASL mechanism: broker's supported mechanisms: PLAIN,SCRAM-SHA-512 (after 3ms in state AUTH_HANDSHAKE)";
        let d = diagnose(Some(RDKafkaErrorCode::Authentication), reason, &s, "b:1").unwrap();
        assert_eq!(
            d.fix,
            "they offer PLAIN,SCRAM-SHA-512; set kafka.security.sasl_mechanism to one of them"
        );
    }
}
