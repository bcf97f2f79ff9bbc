//! Tansu, a Kafka-protocol broker in its own process: what security.rs still runs on
//! until it moves to Apache Kafka.
//!
//! `scripts/test.sh` installs Tansu (cached) and points `TANSU_BIN` at it.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::free_port;

/// A Tansu broker on a free loopback port, killed on drop.
pub struct Tansu {
    child: Child,
    pub bootstrap: String,
    options: Options,
    port: u16,
}

/// How to start a broker.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `--storage-engine`; `memory://tansu/` if empty. `sqlite://FILE` paths are
    /// relative to `dir`.
    pub storage: String,
    /// The broker's working directory (for sqlite storage); the test's if `None`.
    pub dir: Option<std::path::PathBuf>,
    /// `--authentication`: clients must authenticate with SASL/SCRAM.
    pub authentication: bool,
    /// The port to advertise instead of the listening one (a TLS proxy in front).
    pub advertised_port: Option<u16>,
}

/// The cached Tansu binary (`scripts/test.sh` installs it).
pub fn tansu_bin() -> String {
    std::env::var("TANSU_BIN").unwrap_or_else(|_| {
        let cached = format!(
            "{}/.cache/iotblast-tools/bin/tansu",
            std::env::var("HOME").unwrap_or_default()
        );
        assert!(
            std::path::Path::new(&cached).exists(),
            "Tansu not found: run scripts/test.sh, which installs it, or set TANSU_BIN"
        );
        cached
    })
}

impl Tansu {
    pub fn start() -> Self {
        Self::with(Options::default())
    }

    /// A broker started with `options` on a free port.
    pub fn with(options: Options) -> Self {
        let port = free_port();
        let child = spawn_broker(&options, port);
        Self {
            child,
            bootstrap: format!("127.0.0.1:{}", options.advertised_port.unwrap_or(port)),
            options,
            port,
        }
    }

    /// The port the broker listens on (behind a proxy, not the advertised one).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the broker (SIGKILL) and waits for it to exit.
    pub fn kill(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.signal("CONT");
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the broker again on the same port, storage and options.
    pub fn restart(&mut self) {
        self.kill();
        self.child = spawn_broker(&self.options, self.port);
    }
}

/// Starts Tansu on `port` and waits until it listens.
fn spawn_broker(o: &Options, port: u16) -> Child {
    let bin = tansu_bin();
    let url = format!("tcp://127.0.0.1:{port}");
    let advertised = format!("tcp://127.0.0.1:{}", o.advertised_port.unwrap_or(port));
    let storage = match o.storage.as_str() {
        "" => "memory://tansu/",
        s => s,
    };
    let mut cmd = Command::new(&bin);
    cmd.args(["broker", "--listener-url", &url])
        .args(["--advertised-listener-url", &advertised])
        .args(["--storage-engine", storage])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if o.authentication {
        cmd.arg("--authentication");
    }
    if let Some(dir) = &o.dir {
        cmd.current_dir(dir);
    }
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("could not start {bin}: {e}"));
    let t = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "Tansu did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    child
}

impl Tansu {
    /// Sends `signal` (e.g. "STOP", "CONT") to the broker process.
    pub fn signal(&self, signal: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{signal} failed");
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        self.kill();
    }
}
