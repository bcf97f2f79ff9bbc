//! The monitoring deployment in `deploy/`: Prometheus config and rules (promtool checks
//! them and runs their unit tests), the Grafana dashboard (the seed panels, every query
//! filtered by `$job`/`$instance`, real metric names only) and provisioning, and the
//! compose demo, checked without a Docker engine: against the Compose Specification's
//! schema (vendored in deploy/compose/), with every mounted file present and the
//! services, ports and iotblast's command agreeing with each other; the broker's
//! settings are run by the same Apache Kafka version, and iotblast produces to it.
//!
//! `dashboard_exprs` and `recording_rules` are shared with the live-Prometheus tests.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{http_get, iotblast, wait_with_limit};

/// The alerts the project's design documents name (seed 001, "关键告警规则").
const SEED_ALERTS: [&str; 8] = [
    "HighErrorRate",
    "HighSendLatency",
    "HighMemoryUsage",
    "HighCPUUsage",
    "HighQueueDepth",
    "KafkaConnectionFailure",
    "DeviceDataGenerationStopped",
    "LowBatchEfficiency",
];

/// The dashboard panels the design documents name, then the ones iotblast adds.
const SEED_PANELS: [&str; 10] = [
    "Messages Sent Rate",
    "Error Rate",
    "Send Latency (95th percentile)",
    "Active Devices",
    "Message Throughput Over Time",
    "Latency Distribution",
    "System Resources",
    "Queue Depth",
    "Device Data Generation",
    "Batch Processing Efficiency",
];
const EXTRA_PANELS: [&str; 5] = [
    "Broker RTT p50 / p99",
    "In-doubt and Failed",
    "Target vs Achieved Rate",
    "librdkafka Queue",
    "Hand-off Queue per Worker",
];

/// Every metric family iotblast serves on /metrics. Histograms also serve `_bucket`,
/// `_sum` and `_count`.
const METRICS: &[&str] = &[
    "iotblast_readings_sent_total",
    "iotblast_readings_delivered_total",
    "iotblast_readings_failed_total",
    "iotblast_readings_in_doubt_total",
    "iotblast_readings_dropped_total",
    "iotblast_alerts_sent_total",
    "iotblast_alerts_delivered_total",
    "iotblast_alerts_failed_total",
    "iotblast_alerts_in_doubt_total",
    "iotblast_alerts_dropped_total",
    "iotblast_bytes_delivered_total",
    "iotblast_batches_sent_total",
    "iotblast_librdkafka_retries_total",
    "iotblast_librdkafka_errors_total",
    "iotblast_worker_blocked_seconds_total",
    "iotblast_config_reloads_total",
    "iotblast_config_reload_failures_total",
    "iotblast_devices",
    "iotblast_workers",
    "iotblast_target_rate",
    "iotblast_instance_index",
    "iotblast_instances",
    "iotblast_build_info",
    "iotblast_handoff_queue_batches",
    "iotblast_handoff_queue_capacity_batches",
    "iotblast_librdkafka_queue_messages",
    "iotblast_librdkafka_queue_bytes",
    "iotblast_librdkafka_queue_max_messages",
    "iotblast_librdkafka_queue_max_bytes",
    "iotblast_librdkafka_brokers_up",
    "iotblast_librdkafka_broker_up",
    "iotblast_librdkafka_broker_rtt_p50_seconds",
    "iotblast_librdkafka_broker_rtt_p99_seconds",
    "iotblast_librdkafka_broker_outbuf_requests",
    "iotblast_librdkafka_broker_waitresp_requests",
    "iotblast_librdkafka_batch_messages",
    "iotblast_librdkafka_batch_size_bytes",
    "iotblast_librdkafka_broker_tx_bytes_total",
    "iotblast_librdkafka_broker_rx_bytes_total",
    "iotblast_librdkafka_broker_tx_errors_total",
    "iotblast_librdkafka_broker_rx_errors_total",
    "iotblast_librdkafka_broker_request_timeouts_total",
    "process_resident_memory_bytes",
    "process_virtual_memory_bytes",
    "process_cpu_seconds_total",
    "process_threads",
    "process_open_fds",
    "process_max_fds",
    "process_start_time_seconds",
];
const HISTOGRAMS: [&str; 2] = ["iotblast_latency_seconds", "iotblast_ack_latency_seconds"];

/// The selector every dashboard query puts on every metric.
const FILTER: &str = r#"{job=~"$job", instance=~"$instance""#;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn yaml(path: &str) -> Value {
    yaml_serde::from_str(&read(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn dashboard() -> Value {
    let path = "deploy/grafana/dashboards/iotblast.json";
    serde_json::from_str(&read(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Every rule of rules.yml, over all groups.
fn rules() -> Vec<Value> {
    let doc = yaml("deploy/prometheus/rules.yml");
    doc["groups"]
        .as_array()
        .expect("rules.yml has groups")
        .iter()
        .flat_map(|g| g["rules"].as_array().expect("a group has rules").clone())
        .collect()
}

/// The `expr` of every target of every dashboard panel, with its variables (`$job`,
/// `$instance`, `$__rate_interval`) as written.
pub fn dashboard_exprs() -> Vec<String> {
    dashboard()["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .map(|t| t["expr"].as_str().expect("a target has an expr").to_owned())
        .collect()
}

/// The names of the recording rules in rules.yml (e.g. `instance:iotblast_readings_sent:rate1m`).
pub fn recording_rules() -> Vec<String> {
    rules()
        .iter()
        .filter_map(|r| r["record"].as_str().map(str::to_owned))
        .collect()
}

/// The PromQL identifiers in `expr`: metric, rule, function and label names, with
/// quoted strings left out.
fn identifiers(expr: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let (bytes, mut i) = (expr.as_bytes(), 0);
    while i < bytes.len() {
        let c = bytes[i];
        if c == b'"' {
            i += 1 + expr[i + 1..].find('"').expect("closed string");
        } else if c.is_ascii_alphabetic() || c == b'_' {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || b"_:".contains(&bytes[i]))
            {
                i += 1;
            }
            out.push((start, &expr[start..i]));
            continue;
        }
        i += 1;
    }
    out
}

/// Whether `name` is a series iotblast serves.
fn is_metric(name: &str) -> bool {
    METRICS.contains(&name)
        || HISTOGRAMS.iter().any(|h| {
            name.strip_prefix(h)
                .is_some_and(|s| ["_bucket", "_sum", "_count"].contains(&s))
        })
}

/// The metric names `expr` selects (identifiers with iotblast's or the process prefix).
fn metrics_in(expr: &str) -> Vec<(usize, &str)> {
    identifiers(expr)
        .into_iter()
        .filter(|(_, id)| id.starts_with("iotblast_") || id.starts_with("process_"))
        .collect()
}

/// `docs/operations.md`'s headings as GitHub anchors (`# comments` in code blocks are
/// not headings).
fn operations_anchors() -> BTreeSet<String> {
    let mut in_code = false;
    read("docs/operations.md")
        .lines()
        .filter(|l| {
            in_code ^= l.starts_with("```");
            !in_code
        })
        .filter_map(|l| l.strip_prefix('#'))
        .map(|h| {
            h.trim_start_matches('#')
                .trim()
                .to_lowercase()
                .chars()
                .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
                .map(|c| if c == ' ' { '-' } else { c })
                .collect()
        })
        .collect()
}

fn promtool(args: &[&str], dir: &Path) -> String {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!("promtool: {e} (Debian's prometheus package; scripts/test.sh installs it)")
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

#[test]
fn promtool_accepts_the_rules_and_the_prometheus_config() {
    let dir = repo("deploy/prometheus");
    let rules = promtool(&["check", "rules", "rules.yml"], &dir);
    assert!(rules.contains("SUCCESS"), "{rules}");
    // rule_files is relative to the config file: rules.yml beside it is checked too.
    let config = promtool(&["check", "config", "prometheus.yml"], &dir);
    assert!(config.contains("1 rule files found"), "{config}");
}

#[test]
fn every_alert_fires_on_broken_series_and_stays_quiet_on_healthy_ones() {
    let out = promtool(
        &["test", "rules", "rules.test.yml"],
        &repo("deploy/prometheus"),
    );
    assert!(out.contains("SUCCESS"), "{out}");
    // Each alert is shown firing (a non-empty exp_alerts) and quiet (an empty one), and
    // each recording rule's value is checked.
    let tests = yaml("deploy/prometheus/rules.test.yml");
    let cases: Vec<&Value> = tests["tests"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|t| t["alert_rule_test"].as_array().into_iter().flatten())
        .collect();
    let alerts: Vec<String> = rules()
        .iter()
        .filter_map(|r| r["alert"].as_str().map(str::to_owned))
        .collect();
    for alert in &alerts {
        let of = |firing: bool| {
            cases.iter().any(|c| {
                c["alertname"] == alert.as_str()
                    && c["exp_alerts"]
                        .as_array()
                        .is_some_and(|a| a.is_empty() != firing)
            })
        };
        assert!(of(true), "rules.test.yml never shows {alert} firing");
        assert!(of(false), "rules.test.yml never shows {alert} quiet");
    }
    let checked: BTreeSet<&str> = tests["tests"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|t| t["promql_expr_test"].as_array().into_iter().flatten())
        .filter_map(|c| c["expr"].as_str())
        .collect();
    for record in recording_rules() {
        assert!(
            checked.contains(record.as_str()),
            "rules.test.yml never checks {record}'s value"
        );
    }
}

#[test]
fn the_rules_cover_the_seed_alerts_with_runbooks_and_use_real_metrics() {
    let rules = rules();
    let records = recording_rules();
    assert!(records.len() >= 7, "{records:?}");
    for r in &records {
        // Prometheus' naming convention, level:metric:operations.
        let parts: Vec<&str> = r.split(':').collect();
        assert!(
            parts.len() == 3 && parts.iter().all(|p| !p.is_empty()),
            "{r} is not level:metric:operations"
        );
    }
    let alerts: Vec<&Value> = rules.iter().filter(|r| r["alert"].is_string()).collect();
    assert!(alerts.len() >= 8);
    let names: Vec<&str> = alerts
        .iter()
        .map(|a| a["alert"].as_str().unwrap())
        .collect();
    for seed in SEED_ALERTS {
        assert!(names.contains(&seed), "alert {seed} missing from rules.yml");
    }
    let anchors = operations_anchors();
    for a in &alerts {
        let name = a["alert"].as_str().unwrap();
        let severity = a["labels"]["severity"].as_str().unwrap_or_default();
        assert!(
            ["critical", "warning"].contains(&severity),
            "{name}: severity {severity:?}"
        );
        for key in ["summary", "description"] {
            assert!(a["annotations"][key].is_string(), "{name} has no {key}");
        }
        let runbook = a["annotations"]["runbook"].as_str().unwrap_or_default();
        let anchor = runbook
            .strip_prefix("docs/operations.md#")
            .unwrap_or_else(|| panic!("{name}: runbook {runbook:?} is not docs/operations.md#…"));
        assert!(
            anchors.contains(anchor),
            "{name}: docs/operations.md has no heading for #{anchor}"
        );
    }
    // The broker-down alert must be quick: it has to fire before iotblast gives up.
    let kafka = alerts
        .iter()
        .find(|a| a["alert"] == "KafkaConnectionFailure")
        .unwrap();
    assert!(kafka["expr"]
        .as_str()
        .unwrap()
        .contains("iotblast_librdkafka_brokers_up == 0"));
    let for_ = kafka["for"].as_str().unwrap();
    let secs: u64 = for_
        .strip_suffix('s')
        .and_then(|s| s.parse().ok())
        .unwrap_or(u64::MAX);
    assert!(secs <= 20, "KafkaConnectionFailure for: {for_}");
    // Only series iotblast serves (and `up`), and only rules that exist.
    for r in &rules {
        let expr = r["expr"].as_str().unwrap();
        for (_, id) in identifiers(expr) {
            if id.contains(':') {
                assert!(
                    records.iter().any(|n| n == id),
                    "unknown rule {id} in {expr}"
                );
            } else if id.starts_with("iotblast_") || id.starts_with("process_") {
                assert!(is_metric(id), "iotblast serves no {id} (in {expr})");
            }
        }
    }
}

#[test]
fn the_dashboard_has_the_seed_panels_and_filters_every_query() {
    let d = dashboard();
    assert_eq!(d["uid"], "iotblast");
    assert!(d["schemaVersion"].as_u64().unwrap() >= 39);
    let vars = d["templating"]["list"].as_array().unwrap();
    let var = |name: &str| {
        vars.iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("no variable {name}"))
    };
    assert_eq!(var("datasource")["type"], "datasource");
    assert_eq!(var("datasource")["query"], "prometheus");
    for (name, query) in [
        ("job", "label_values(iotblast_build_info, job)"),
        (
            "instance",
            r#"label_values(iotblast_build_info{job=~"$job"}, instance)"#,
        ),
    ] {
        let v = var(name);
        assert_eq!(v["type"], "query", "{name}");
        assert_eq!(v["definition"], query, "{name}");
        assert_eq!(v["query"]["query"], query, "{name}");
        assert_eq!(v["multi"], true, "{name}");
        assert_eq!(v["includeAll"], true, "{name}");
        assert_eq!(v["allValue"], ".*", "{name}");
    }

    let panels = d["panels"].as_array().unwrap();
    assert!(panels.len() >= 10, "{} panels", panels.len());
    let titles: Vec<&str> = panels
        .iter()
        .map(|p| p["title"].as_str().unwrap())
        .collect();
    for t in SEED_PANELS.iter().chain(&EXTRA_PANELS) {
        assert!(titles.contains(t), "no panel {t:?} in {titles:?}");
    }
    let mut ids = BTreeSet::new();
    let mut cells = BTreeSet::new();
    for p in panels {
        let title = p["title"].as_str().unwrap();
        assert!(
            ids.insert(p["id"].as_u64().unwrap()),
            "{title}: duplicate id"
        );
        assert_eq!(p["datasource"]["uid"], "${datasource}", "{title}");
        let targets = p["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{title} has no query");
        for t in targets {
            assert_eq!(t["datasource"]["uid"], "${datasource}", "{title}");
        }
        // Panels tile the 24-column grid without overlapping.
        let g = &p["gridPos"];
        let [x, y, w, h] = ["x", "y", "w", "h"].map(|k| g[k].as_u64().unwrap());
        assert!(x + w <= 24, "{title} is wider than the grid");
        for cell in (x..x + w).flat_map(|cx| (y..y + h).map(move |cy| (cx, cy))) {
            assert!(
                cells.insert(cell),
                "{title} overlaps another panel at {cell:?}"
            );
        }
    }

    let exprs = dashboard_exprs();
    for expr in &exprs {
        let metrics = metrics_in(expr);
        assert!(!metrics.is_empty(), "no iotblast metric in {expr}");
        for (at, name) in metrics {
            assert!(is_metric(name), "iotblast serves no {name} (in {expr})");
            let rest = &expr[at + name.len()..];
            assert!(
                rest.strip_prefix(FILTER)
                    .is_some_and(|r| r.starts_with('}') || r.starts_with(", ")),
                "{name} is not filtered by {FILTER}}} in {expr}"
            );
        }
        // Raw metrics only: the dashboard works without the recording rules loaded.
        for (_, id) in identifiers(expr) {
            assert!(!id.contains(':'), "{expr} uses the recording rule {id}");
        }
        for (i, _) in expr.match_indices('$') {
            let var = expr[i + 1..]
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .next()
                .unwrap();
            assert!(
                ["job", "instance", "__rate_interval"].contains(&var),
                "${var} in {expr}: only $job, $instance and $__rate_interval may appear"
            );
        }
    }
}

/// The services of compose.yaml.
fn compose() -> Value {
    yaml("deploy/compose/compose.yaml")
}

/// The arguments a service's `command` passes (a list, as compose.yaml writes them).
fn command(service: &Value) -> Vec<String> {
    service["command"]
        .as_array()
        .expect("command is a list")
        .iter()
        .map(|a| a.as_str().expect("string argument").to_owned())
        .collect()
}

/// The value after `flag` in `args`, as `flag value` or `flag=value`.
fn flag(args: &[String], flag: &str) -> String {
    args.iter()
        .enumerate()
        .find_map(|(i, a)| {
            if a == flag {
                args.get(i + 1).cloned()
            } else {
                a.strip_prefix(&format!("{flag}=")).map(str::to_owned)
            }
        })
        .unwrap_or_else(|| panic!("no {flag} in {args:?}"))
}

#[test]
fn the_compose_file_is_valid_and_everything_it_mounts_exists() {
    let schema: Value =
        serde_json::from_str(&read("deploy/compose/compose-spec.json")).expect("schema JSON");
    let validator = jsonschema::validator_for(&schema).expect("compose-spec.json compiles");
    let c = compose();
    let errors: Vec<String> = validator
        .iter_errors(&c)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "compose.yaml: {errors:#?}");
    // The validation bites: a misspelt key is refused.
    let mut typo = c.clone();
    typo["services"]["iotblast"]["restrat"] = "always".into();
    assert!(!validator.is_valid(&typo), "the schema accepts anything");

    let base = repo("deploy/compose");
    let services = c["services"].as_object().unwrap();
    for (name, s) in services {
        if let Some(image) = s["image"].as_str().filter(|_| s["build"].is_null()) {
            let tag = image.rsplit_once(':').map(|(_, t)| t).unwrap_or_default();
            assert!(
                !tag.is_empty() && tag != "latest" && !tag.contains('/'),
                "{name}: pin {image} to a version"
            );
        }
        for dep in s["depends_on"].as_array().into_iter().flatten() {
            let dep = dep.as_str().unwrap();
            assert!(
                services.contains_key(dep),
                "{name} depends on unknown {dep}"
            );
        }
        for v in s["volumes"].as_array().into_iter().flatten() {
            let v = v.as_str().expect("short volume syntax");
            let source = v.split(':').next().unwrap();
            if source.starts_with('.') {
                let path = base.join(source);
                assert!(path.exists(), "{name} mounts {source}, which is missing");
            } else {
                assert!(
                    c["volumes"].get(source).is_some(),
                    "{name}: named volume {source} is not declared"
                );
            }
        }
    }
    let build = &services["iotblast"]["build"];
    let context = base.join(build["context"].as_str().unwrap());
    assert!(context
        .join(build["dockerfile"].as_str().unwrap())
        .is_file());

    // The services agree: iotblast produces to the listener Kafka advertises, serves
    // /metrics where Prometheus scrapes, and Grafana reads that Prometheus.
    let iotblast_args = command(&services["iotblast"]);
    assert_eq!(
        services["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"],
        format!("PLAINTEXT://{}", flag(&iotblast_args, "-b")).as_str()
    );
    let port = flag(&iotblast_args, "--metrics-address")
        .rsplit_once(':')
        .unwrap()
        .1
        .to_owned();
    let prometheus = yaml("deploy/prometheus/prometheus.yml");
    let targets = &prometheus["scrape_configs"][0]["static_configs"][0]["targets"];
    assert_eq!(prometheus["scrape_configs"][0]["job_name"], "iotblast");
    assert_eq!(targets[0], format!("iotblast:{port}").as_str());
    assert!(services["prometheus"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|v| v
            .as_str()
            .unwrap()
            .starts_with("../prometheus:/etc/prometheus")));
    let datasource = yaml("deploy/grafana/provisioning/datasources/prometheus.yml");
    assert_eq!(
        datasource["datasources"][0]["url"],
        "http://prometheus:9090"
    );
    let provider = yaml("deploy/grafana/provisioning/dashboards/iotblast.yml");
    let path = provider["providers"][0]["options"]["path"]
        .as_str()
        .unwrap();
    assert_eq!(path, "/var/lib/grafana/dashboards");
    let grafana_volumes: Vec<&str> = services["grafana"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        grafana_volumes.contains(&"../grafana/dashboards:/var/lib/grafana/dashboards:ro"),
        "{grafana_volumes:?}"
    );
    assert!(grafana_volumes.contains(&"../grafana/provisioning:/etc/grafana/provisioning:ro"));
}

#[test]
fn the_compose_iotblast_command_runs_and_serves_every_metric_and_health_on_one_port() {
    // compose.yaml's own arguments, run here for a few seconds: every flag and value must
    // be accepted, /metrics and /readyz must share the one port (prometheus.yml scrapes
    // it), and /metrics must serve every series the rules and the dashboard use.
    // Loopback only: the embedded mock broker stands in for `-b kafka:9092`, and a free
    // loopback port for 0.0.0.0:9090.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let compose_args = command(&compose()["services"]["iotblast"]);
    assert_eq!(flag(&compose_args, "-b"), "kafka:9092");
    let mut args = Vec::new();
    let mut it = compose_args.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-b" => drop(it.next()),
            "0.0.0.0:9090" => args.push(addr.clone()),
            _ => args.push(a),
        }
    }
    assert_eq!(args.iter().filter(|a| **a == addr).count(), 2, "{args:?}");
    let child = iotblast()
        .args(&args)
        .args(["--duration", "5s", "-q"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn iotblast");
    // librdkafka's statistics come once a second; wait for the first.
    let deadline = Instant::now() + Duration::from_secs(10);
    let metrics = loop {
        if std::net::TcpStream::connect(&addr).is_ok() {
            let (status, body) = http_get(&addr, "/metrics");
            if status == 200 && body.contains("iotblast_librdkafka_brokers_up{producer=\"0\"} 1") {
                break body;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no broker statistics on {addr}/metrics"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(metrics.contains("iotblast_target_rate 5000"), "{metrics}");
    let served: BTreeSet<&str> = metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();
    for &name in METRICS.iter().chain(&HISTOGRAMS) {
        let family = |s: &&str| *s == name || s.strip_prefix(name) == Some("_bucket");
        assert!(served.iter().any(family), "/metrics has no {name}");
    }
    assert_eq!(http_get(&addr, "/readyz").0, 200);
    let (status, _, stderr) = wait_with_limit(child, Duration::from_secs(60));
    // Every reading delivered: 0, or 4 if a machine busy with other tests could not
    // keep the paced 5000/s (a true verdict, not a failure of the compose arguments).
    assert!(
        matches!(status.code(), Some(0 | 4)),
        "{status}: {}",
        String::from_utf8_lossy(&stderr)
    );
}

/// The compose broker's server properties, as the apache/kafka image derives them from
/// its `KAFKA_*` variables: prefix dropped, lower case, `___` to `-`, `__` to `_`, `_`
/// to `.` (the image's kafka-propertiesSpec.json).
fn compose_broker_properties() -> Vec<(String, String)> {
    let env = &compose()["services"]["kafka"]["environment"];
    env.as_object()
        .expect("kafka's environment is a map")
        .iter()
        .filter_map(|(k, v)| {
            let name = k.strip_prefix("KAFKA_")?.to_lowercase();
            let name = name
                .replace("___", "-")
                .replace("__", "\0")
                .replace('_', ".")
                .replace("\0", "_");
            let value = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            Some((name, value))
        })
        .collect()
}

#[test]
fn the_compose_broker_settings_run_apache_kafka_and_iotblast_delivers_to_it() {
    // No Docker engine here: the same Kafka version the image carries (the jars of
    // scripts/kafka.sh) runs compose's own broker settings, with the host name `kafka`
    // and its ports moved to free loopback ports and the log dir to a temporary one.
    let props = compose_broker_properties();
    let get = |k: &str| {
        props
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("compose's broker sets no {k}"))
    };
    assert_eq!(get("process.roles"), "broker,controller");
    let image = compose()["services"]["kafka"]["image"]
        .as_str()
        .unwrap()
        .to_owned();
    let version = std::fs::read_to_string(repo("scripts/kafka.sh"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("KAFKA_VERSION=").map(str::to_owned))
        .expect("KAFKA_VERSION in scripts/kafka.sh");
    assert_eq!(
        image,
        format!("apache/kafka:{version}"),
        "the tests run {version}"
    );

    let dir = tempfile::tempdir().unwrap();
    let (client, controller) = (crate::common::free_port(), crate::common::free_port());
    let moved = |v: String| {
        v.replace("kafka:9092", &format!("127.0.0.1:{client}"))
            .replace("kafka:9093", &format!("127.0.0.1:{controller}"))
            .replace("://:9092", &format!("://127.0.0.1:{client}"))
            .replace("://:9093", &format!("://127.0.0.1:{controller}"))
    };
    let mut text = String::new();
    for (k, v) in &props {
        let v = if k == "log.dirs" {
            dir.path().join("data").display().to_string()
        } else {
            moved(v.clone())
        };
        text.push_str(&format!("{k}={v}\n"));
    }
    let config = dir.path().join("server.properties");
    std::fs::write(&config, text).unwrap();
    let cluster_id = compose()["services"]["kafka"]["environment"]["CLUSTER_ID"]
        .as_str()
        .expect("CLUSTER_ID: the image formats its log dir with it")
        .to_owned();
    let libs = Command::new(repo("scripts/kafka.sh"))
        .arg("install")
        .output()
        .unwrap();
    assert!(
        libs.status.success(),
        "{}",
        String::from_utf8_lossy(&libs.stderr)
    );
    let libs = String::from_utf8(libs.stdout).unwrap().trim().to_owned();
    let format = Command::new(repo("scripts/kafka.sh"))
        .args([
            "tool",
            "storage",
            "format",
            "--cluster-id",
            &cluster_id,
            "--config",
        ])
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        format.status.success(),
        "{}",
        String::from_utf8_lossy(&format.stderr)
    );
    let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
    let mut broker = Command::new("java")
        .args(["-Xmx512m", "-cp", &format!("{libs}/*"), "kafka.Kafka"])
        .arg(&config)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("java");
    let bootstrap = format!("127.0.0.1:{client}");
    let out = iotblast()
        .args([
            "-b",
            &bootstrap,
            "--messages",
            "2000",
            "--connect-timeout",
            "60s",
        ])
        .args(["--json", "-q"])
        .output()
        .unwrap();
    let _ = broker.kill();
    let _ = broker.wait();
    let server_log = std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default();
    assert!(
        out.status.success(),
        "{}\nbroker log:\n{server_log}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = crate::common::summary_from(&out.stdout);
    assert_eq!(summary["messages_delivered"], 2000, "{summary}");
}
