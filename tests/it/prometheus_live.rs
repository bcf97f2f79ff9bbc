//! The shipped rules and dashboard against live data: a real Prometheus server (Debian's
//! `prometheus` package, which `scripts/test.sh` installs) loads
//! `deploy/prometheus/rules.yml` and scrapes a real iotblast, producing to Apache Kafka, every
//! second. Every recording rule and every dashboard query must return data, and
//! killing the broker must fire `KafkaConnectionFailure`.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cluster::Cluster;
use crate::common::{free_port, signal, spawn, wait_with_limit};
use crate::deploy_monitoring::{dashboard_exprs, recording_rules};

/// A Prometheus server on a free loopback port, killed on drop.
struct Prometheus {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    /// Scrapes `target` every second and evaluates the shipped rules every second.
    fn start(target: &str) -> Self {
        let bin = which("prometheus");
        let dir = tempfile::tempdir().unwrap();
        let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/prometheus/rules.yml");
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: [{rules:?}]\nscrape_configs:\n  - job_name: iotblast\n    static_configs:\n      - targets: [{target:?}]\n",
        );
        std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
        let port = free_port();
        let child = Command::new(&bin)
            .arg(format!(
                "--config.file={}",
                dir.path().join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {bin}: {e}"));
        let p = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        };
        let t = Instant::now();
        while get(&format!("{}/-/ready", p.url), &[]).is_none() {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "Prometheus did not become ready"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        p
    }

    /// The result vector of an instant query.
    fn query(&self, expr: &str) -> Vec<Value> {
        let body = get(&format!("{}/api/v1/query", self.url), &[("query", expr)])
            .unwrap_or_else(|| panic!("Prometheus refused the query {expr}"));
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["status"], "success", "{expr}: {body}");
        v["data"]["result"].as_array().cloned().unwrap_or_default()
    }

    /// The names of the alerts firing now.
    fn firing(&self) -> Vec<String> {
        let body = get(&format!("{}/api/v1/alerts", self.url), &[]).expect("alerts");
        let v: Value = serde_json::from_str(&body).unwrap();
        v["data"]["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["state"] == "firing")
            .map(|a| a["labels"]["alertname"].as_str().unwrap().to_owned())
            .collect()
    }
}

/// The body of a 200 response, or `None`.
fn get(url: &str, query: &[(&str, &str)]) -> Option<String> {
    let mut req = ureq::get(url);
    for (k, v) in query {
        req = req.query(k, v);
    }
    let mut resp = req.call().ok()?;
    resp.body_mut().read_to_string().ok()
}

fn which(name: &str) -> String {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(name))
        .find(|p| p.is_file());
    found
        .unwrap_or_else(|| {
            panic!("{name} not found: scripts/test.sh installs it (Debian's prometheus package)")
        })
        .display()
        .to_string()
}

/// A dashboard query as Grafana sends it with every job and instance selected.
fn as_grafana_sends(expr: &str) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("$job", ".*")
        .replace("$instance", ".*")
}

/// Polls `check` until it returns an empty list of failures, or panics with them.
fn eventually(what: &str, limit: Duration, mut check: impl FnMut() -> Vec<String>) {
    let t = Instant::now();
    loop {
        let failing = check();
        if failing.is_empty() {
            return;
        }
        assert!(
            t.elapsed() < limit,
            "{what} after {limit:?}:\n  {}",
            failing.join("\n  ")
        );
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[test]
fn every_rule_and_panel_has_data_and_a_dead_broker_fires_kafka_connection_failure() {
    // A cluster of its own, since the test kills its broker.
    let cluster = Cluster::start(1);
    let addr = format!("127.0.0.1:{}", free_port());
    // Paced, so the paced-run rules have a target; long flush and connect timeouts, so
    // iotblast keeps running (and being scraped) while the broker is gone.
    let child = spawn(&[
        "-b",
        cluster.bootstrap(),
        "--devices",
        "1000",
        "--rate",
        "2000",
        "--duration",
        "5m",
        "--flush-timeout",
        "3m",
        "--metrics-address",
        &addr,
        "--http-address",
        &addr,
        "-q",
    ]);
    let prometheus = Prometheus::start(&addr);

    let rules = recording_rules();
    assert!(rules.len() >= 7, "{rules:?}");
    eventually(
        "recording rules without data",
        Duration::from_secs(90),
        || {
            rules
                .iter()
                .filter(|r| prometheus.query(r).is_empty())
                .cloned()
                .collect()
        },
    );
    let panels = dashboard_exprs();
    assert!(panels.len() >= 10, "{panels:?}");
    eventually(
        "dashboard queries without data",
        Duration::from_secs(60),
        || {
            panels
                .iter()
                .map(|e| as_grafana_sends(e))
                .filter(|e| prometheus.query(e).is_empty())
                .collect()
        },
    );
    // The live values are iotblast's own: one instance, its devices, its target.
    let value = |expr: &str| -> f64 {
        let r = prometheus.query(expr);
        r[0]["value"][1].as_str().unwrap().parse().unwrap()
    };
    assert_eq!(value("iotblast_devices"), 1000.0);
    assert_eq!(value("instance:iotblast_target_rate:share"), 2000.0);
    assert!(value("iotblast_librdkafka_brokers_up") >= 1.0);
    assert!(
        !prometheus
            .firing()
            .contains(&"KafkaConnectionFailure".to_owned()),
        "KafkaConnectionFailure fired while the broker was up"
    );

    cluster.kill(0);
    eventually(
        "KafkaConnectionFailure not firing with the broker killed",
        Duration::from_secs(90),
        || {
            let firing = prometheus.firing();
            if firing.contains(&"KafkaConnectionFailure".to_owned()) {
                vec![]
            } else {
                vec![format!("firing: {firing:?}")]
            }
        },
    );
    signal(child.id(), "KILL");
    let _ = wait_with_limit(child, Duration::from_secs(10));
}
