//! Apache Kafka for the end-to-end tests: clusters that `scripts/kafka.sh` runs from
//! Maven Central jars, one JVM per node, on loopback.
//!
//! - [`Cluster::shared`]: one node, shared by every test that needs a broker. Tests keep
//!   out of each other's way by producing to topics of their own ([`unique`]).
//! - [`Cluster::three`]: three nodes for the fault matrix. A test holds its guard for the
//!   whole run, since it kills, pauses and restarts nodes; the guard hands each test a
//!   healthy cluster (every node up, every partition fully replicated).
//!
//! `TEST_KAFKA_DIR=DIR` (one node) and `TEST_KAFKA3_DIR=DIR` (three nodes) point
//! the tests at clusters you keep running (`scripts/kafka.sh start --dir DIR`), so that
//! one test can be rerun without a start-up; otherwise each cluster starts on first use
//! and stops, its directory removed, when the test process exits (`--owner-pid`).
//! `scripts/test.sh` installs the jars; `docs/testing.md` says more.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A running cluster, as its `cluster.env` describes it.
#[derive(Debug)]
pub struct Cluster {
    pub dir: PathBuf,
    env: BTreeMap<String, String>,
}

/// `scripts/kafka.sh`, from the repository root.
pub fn kafka_sh() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/kafka.sh")
}

/// A name no other test, and no earlier run against a kept cluster, has used:
/// `prefix-<pid>-<n>`.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

impl Cluster {
    /// The one-node cluster every end-to-end test shares.
    pub fn shared() -> &'static Cluster {
        static SHARED: OnceLock<Cluster> = OnceLock::new();
        SHARED.get_or_init(|| Cluster::kept_or_started("TEST_KAFKA_DIR", 1))
    }

    /// The three-node cluster of the fault matrix, held for the whole of one test.
    pub fn three() -> MutexGuard<'static, Cluster> {
        static THREE: OnceLock<Mutex<Cluster>> = OnceLock::new();
        let guard = THREE
            .get_or_init(|| Mutex::new(Cluster::kept_or_started("TEST_KAFKA3_DIR", 3)))
            .lock()
            // A test that failed mid-fault poisons the lock; the next one still gets
            // the cluster, and brings every node back first.
            .unwrap_or_else(|e| e.into_inner());
        guard.all_up();
        guard
    }

    fn kept_or_started(var: &str, brokers: u32) -> Cluster {
        match std::env::var(var) {
            Ok(dir) if !dir.is_empty() => Cluster::load(PathBuf::from(dir)),
            _ => Cluster::start(brokers),
        }
    }

    /// Starts a throwaway cluster of `brokers` nodes, stopped and removed when this
    /// process exits.
    pub fn start(brokers: u32) -> Cluster {
        let dir = std::env::temp_dir().join(unique(&format!("iotblast-kafka{brokers}")));
        let out = Command::new(kafka_sh())
            .args(["start", "--brokers", &brokers.to_string()])
            .arg("--dir")
            .arg(&dir)
            .args(["--owner-pid", &std::process::id().to_string()])
            .stdout(Stdio::null())
            .output()
            .expect("run scripts/kafka.sh");
        assert!(
            out.status.success(),
            "scripts/kafka.sh start --brokers {brokers} failed (scripts/test.sh installs Java's Kafka jars):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Cluster::load(dir)
    }

    /// A cluster that `scripts/kafka.sh start --dir DIR` runs.
    pub fn load(dir: PathBuf) -> Cluster {
        let text = std::fs::read_to_string(dir.join("cluster.env")).unwrap_or_else(|e| {
            panic!("{}/cluster.env: {e}", dir.display());
        });
        let env = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Cluster { dir, env }
    }

    /// A `cluster.env` value, e.g. `BOOTSTRAP_SASL` or `SCRAM_PASSWORD`.
    pub fn get(&self, key: &str) -> &str {
        self.env
            .get(key)
            .unwrap_or_else(|| panic!("no {key} in {}/cluster.env", self.dir.display()))
    }

    /// The PLAINTEXT bootstrap list (no authentication; a super user).
    pub fn bootstrap(&self) -> &str {
        self.get("BOOTSTRAP")
    }

    /// The number of nodes.
    pub fn brokers(&self) -> u32 {
        self.get("BROKERS").parse().expect("BROKERS")
    }

    /// Runs `scripts/kafka.sh COMMAND --dir DIR ARGS`, panicking with its stderr on failure.
    fn script(&self, command: &str, args: &[&str]) {
        let out = Command::new(kafka_sh())
            .arg(command)
            .arg("--dir")
            .arg(&self.dir)
            .args(args)
            .stdout(Stdio::null())
            .output()
            .expect("run scripts/kafka.sh");
        assert!(
            out.status.success(),
            "scripts/kafka.sh {command} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// SIGKILLs node `i`.
    pub fn kill(&self, i: u32) {
        self.script("kill", &["--broker", &i.to_string()]);
    }

    /// Starts node `i` again on its log dir; returns once it answers metadata.
    pub fn start_broker(&self, i: u32) {
        self.script("start-broker", &["--broker", &i.to_string()]);
    }

    /// SIGSTOPs node `i`.
    pub fn pause(&self, i: u32) {
        self.script("pause", &["--broker", &i.to_string()]);
    }

    /// SIGCONTs node `i`.
    pub fn resume(&self, i: u32) {
        self.script("resume", &["--broker", &i.to_string()]);
    }

    /// The pid of node `i`, if it runs.
    pub fn pid(&self, i: u32) -> Option<u32> {
        std::fs::read_to_string(self.dir.join(format!("broker-{i}/pid")))
            .ok()
            .and_then(|p| p.trim().parse().ok())
            .filter(|p| Path::new(&format!("/proc/{p}")).exists())
    }

    /// Resumes paused nodes, starts stopped ones and waits until the cluster is healthy
    /// ([`Cluster::await_healthy`]), so a test begins where no earlier fault reaches.
    pub fn all_up(&self) {
        let mut stopped = Vec::new();
        for i in 0..self.brokers() {
            match self.pid(i) {
                Some(pid) => {
                    let _ = Command::new("kill")
                        .args(["-CONT", &pid.to_string()])
                        .status();
                }
                None => stopped.push(i),
            }
        }
        // Together: with a majority of the KRaft voters down, no node finishes starting
        // until enough others are up to elect a controller.
        self.start_brokers(&stopped);
        self.await_healthy(HEALTHY_WITHIN);
    }

    /// Starts the stopped nodes `nodes` side by side; returns once each answers metadata.
    pub fn start_brokers(&self, nodes: &[u32]) {
        std::thread::scope(|s| {
            for &i in nodes {
                s.spawn(move || self.start_broker(i));
            }
        });
    }

    /// SIGTERMs node `i`, a controlled shutdown (it hands its partitions' leadership to
    /// the others first), and waits for it to exit: SIGKILL after 60 s.
    pub fn stop_broker(&self, i: u32) {
        let pid = self
            .pid(i)
            .unwrap_or_else(|| panic!("node {i} is not running"));
        crate::common::signal(pid, "TERM");
        let t = Instant::now();
        while Path::new(&format!("/proc/{pid}")).exists() {
            if t.elapsed() > Duration::from_secs(60) {
                crate::common::signal(pid, "KILL");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits up to `within` until no partition of any topic is under-replicated (its
    /// ISR short of its replicas, which includes a partition without a leader): every
    /// node that holds a replica is up and caught up.
    pub fn await_healthy(&self, within: Duration) {
        let t = Instant::now();
        let mut last = Vec::new();
        while t.elapsed() < within {
            match self.partitions(None) {
                Ok(all) => {
                    last = all
                        .into_iter()
                        .filter(|(_, p)| p.leader < 0 || p.isr.len() < p.replicas.len())
                        .map(|(t, p)| {
                            format!(
                                "{t}-{}: leader {}, replicas {:?}, isr {:?}",
                                p.partition, p.leader, p.replicas, p.isr
                            )
                        })
                        .collect();
                    if last.is_empty() {
                        return;
                    }
                }
                Err(e) => last = vec![format!("metadata: {e}")],
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        panic!(
            "the cluster in {} was not healthy within {within:?}; under-replicated: {last:?}",
            self.dir.display()
        );
    }

    /// Every partition of `topic`, from the cluster's metadata. A topic just created
    /// may take a moment to reach every broker's metadata: retried for up to 10 s.
    pub fn describe(&self, topic: &str) -> Vec<PartitionState> {
        let t = Instant::now();
        loop {
            match self.partitions(Some(topic)) {
                Ok(all) if !all.is_empty() => return all.into_iter().map(|(_, p)| p).collect(),
                other if t.elapsed() > Duration::from_secs(10) => {
                    panic!("metadata of {topic}: {other:?}")
                }
                _ => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    /// The partitions of `topic` (of every topic if `None`) with their topic's name, as
    /// a metadata request answers (librdkafka, in this process: a Kafka tool's JVM
    /// would take seconds per call, and the harness asks often).
    fn partitions(&self, topic: Option<&str>) -> Result<Vec<(String, PartitionState)>, String> {
        use rdkafka::consumer::{BaseConsumer, Consumer};
        let client: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", self.bootstrap())
            .create()
            .map_err(|e| e.to_string())?;
        let md = client
            .fetch_metadata(topic, Duration::from_secs(10))
            .map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        for t in md.topics() {
            if let Some(e) = t.error() {
                return Err(format!("{}: {e:?}", t.name()));
            }
            for p in t.partitions() {
                out.push((
                    t.name().to_owned(),
                    PartitionState {
                        partition: p.id(),
                        leader: p.leader(),
                        replicas: p.replicas().to_vec(),
                        isr: p.isr().to_vec(),
                    },
                ));
            }
        }
        Ok(out)
    }

    /// The node that leads the most partitions of `topic`, the lowest-numbered on a tie.
    pub fn busiest_leader(&self, topic: &str) -> u32 {
        let mut led = BTreeMap::<i32, usize>::new();
        for p in self.describe(topic) {
            *led.entry(p.leader).or_default() += 1;
        }
        let most = led.values().copied().max().expect("partitions");
        let node = led.iter().find(|(_, &n)| n == most).map(|(&l, _)| l);
        u32::try_from(node.expect("a leader")).expect("a live leader")
    }

    /// Runs one of Kafka's own tools (`scripts/kafka.sh tool NAME ARGS`) to completion.
    pub fn tool(&self, name: &str, args: &[&str]) -> Output {
        Command::new(kafka_sh())
            .args(["tool", name])
            .args(args)
            .output()
            .expect("run scripts/kafka.sh tool")
    }

    /// Runs a tool and panics with its output unless it succeeds; returns its stdout.
    pub fn tool_ok(&self, name: &str, args: &[&str]) -> String {
        let out = self.tool(name, args);
        assert!(
            out.status.success(),
            "kafka {name} {args:?}:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Creates `topic` with Kafka's own `kafka-topics`, with `configs` as `key=value`.
    pub fn create_topic(&self, topic: &str, partitions: u32, replication: u32, configs: &[&str]) {
        let (p, r) = (partitions.to_string(), replication.to_string());
        let mut args = vec![
            "--bootstrap-server",
            self.bootstrap(),
            "--create",
            "--topic",
            topic,
            "--partitions",
            &p,
            "--replication-factor",
            &r,
        ];
        for c in configs {
            args.extend(["--config", c]);
        }
        self.tool_ok("topics", &args);
    }

    /// Every record of `topic`, read by Kafka's own console consumer (Java: no code
    /// shared with iotblast or librdkafka) until `idle` passes without one. Each record
    /// is (partition, key, value).
    pub fn console_consume(&self, topic: &str, idle: Duration) -> Vec<ConsoleRecord> {
        let idle_ms = idle.as_millis().to_string();
        let out = self.tool(
            "console-consumer",
            &[
                "--bootstrap-server",
                self.bootstrap(),
                "--topic",
                topic,
                "--from-beginning",
                "--timeout-ms",
                &idle_ms,
                "--formatter-property",
                "print.partition=true",
                "--formatter-property",
                "print.key=true",
                "--formatter-property",
                "key.separator=\t",
            ],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        let records: Vec<ConsoleRecord> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|line| {
                let mut f = line.splitn(3, '\t');
                let partition = f
                    .next()
                    .and_then(|p| p.strip_prefix("Partition:"))
                    .and_then(|p| p.parse().ok())
                    .unwrap_or_else(|| panic!("console consumer line {line:?}"));
                let key = f.next().unwrap_or_default().to_string();
                let value = serde_json::from_str(f.next().unwrap_or_default())
                    .unwrap_or_else(|e| panic!("console consumer value {line:?}: {e}"));
                ConsoleRecord {
                    partition,
                    key,
                    value,
                }
            })
            .collect();
        // The consumer ends on its idle timeout and says how many it processed: the
        // lines must be all of them.
        assert!(
            stderr.contains(&format!("Processed a total of {} messages", records.len())),
            "console consumer of {topic}: {stderr}"
        );
        records
    }
}

/// How long [`Cluster::all_up`] waits for a healthy cluster after faults.
const HEALTHY_WITHIN: Duration = Duration::from_secs(180);

/// One partition: its leader, replicas and in-sync replicas (node ids).
#[derive(Debug, Clone)]
pub struct PartitionState {
    pub partition: i32,
    /// -1 when it has none.
    pub leader: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
}

/// One record as Kafka's console consumer printed it.
#[derive(Debug)]
pub struct ConsoleRecord {
    pub partition: i32,
    pub key: String,
    pub value: Value,
}
