//! Hot reload: re-reads the configuration when its file changes or on SIGHUP, and
//! applies what may change while running: rate, sensor distributions and thresholds,
//! trends, anomalies, sample interval and time scale, switch behaviour, log level.
//!
//! A reload rebuilds the settings exactly as startup did (defaults < file < the
//! environment captured at startup < the same flags), so flags keep winning. Anything
//! else that changed (fleet size, cores, brokers, topic, ...) needs a restart: the
//! reload is refused with a log line naming those keys, and the old configuration stays
//! in force. So does an invalid file. Both count as reload failures.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{unbounded, Receiver};
use notify::{EventKind, RecursiveMode, Watcher};
use yaml_serde::Value;

use crate::config::settings::Settings;
use crate::deliver::kafka::settings::is_secret_key;
use crate::error::{ConfigError, Error};
use crate::generate::live::{Live, LiveSettings};
use crate::model::spec::EventTime;
use crate::shutdown::Shutdown;

/// Setting paths that may change while running (prefixes).
const LIVE_PATHS: &[&str] = &[
    "run.rate",
    "device.thresholds.",
    "device.simulator.sample_interval",
    "device.simulator.time_scale",
    "device.simulator.data_variation",
    "device.simulator.anomaly_rate",
    "device.simulator.anomaly_weights.",
    "device.simulator.trend_enabled",
    "device.simulator.trend_strength",
    "device.simulator.switch_on_probability",
    "device.simulator.switch_dwell",
    "device.simulator.alert_hysteresis",
    "log.level",
];

/// How long to let a burst of file events (editors write, rename, chmod) settle.
const SETTLE: Duration = Duration::from_millis(100);

/// Rebuilds the settings from all layers.
pub type Rebuild = Box<dyn Fn() -> Result<Settings, ConfigError> + Send>;

/// Applies a new `log.level`, or says why it cannot.
pub type SetLogLevel = Box<dyn Fn(&str) -> Result<(), String> + Send>;

/// The running reloader; stops with the run's shutdown.
pub struct Reloader {
    handle: JoinHandle<()>,
}

impl Reloader {
    pub fn join(self) {
        let _ = self.handle.join();
    }
}

/// Starts watching `file` (if any) and SIGHUP. `current` are the settings in force.
/// `set_log_level` applies a new `log.level` (or refuses it, returning why).
pub fn spawn(
    file: Option<PathBuf>,
    rebuild: Rebuild,
    current: Settings,
    live: Arc<Live>,
    shutdown: Arc<Shutdown>,
    set_log_level: SetLogLevel,
) -> Result<Reloader, Error> {
    let hup = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&hup))
        .map_err(Error::Signals)?;
    let (events, watcher) = match &file {
        Some(f) => {
            let (rx, w) = watch(f).map_err(|source| Error::Watch {
                path: f.display().to_string(),
                source,
            })?;
            (Some(rx), Some(w))
        }
        None => (None, None),
    };
    let handle = std::thread::Builder::new()
        .name("iotblast-reload".into())
        .spawn(move || {
            let _watcher = watcher; // dropping it stops the events
            let mut current = current;
            while !shutdown.is_requested() {
                let changed = match &events {
                    Some(rx) => rx.recv_timeout(Duration::from_millis(100)).is_ok(),
                    None => {
                        std::thread::sleep(Duration::from_millis(100));
                        false
                    }
                };
                let hupped = hup.swap(false, Ordering::Relaxed);
                if !(changed || hupped) {
                    continue;
                }
                std::thread::sleep(SETTLE);
                if let Some(rx) = &events {
                    while rx.try_recv().is_ok() {}
                }
                let why = if hupped { "SIGHUP" } else { "file change" };
                match reload(&rebuild, &current, &live, set_log_level.as_ref()) {
                    Ok((next, changes)) => {
                        live.reloads.fetch_add(1, Ordering::Relaxed);
                        if changes.is_empty() {
                            log::info!("configuration reloaded ({why}): nothing changed");
                        } else {
                            log::info!("configuration reloaded ({why}): {}", changes.join(", "));
                        }
                        current = next;
                    }
                    Err(reason) => {
                        live.reload_failures.fetch_add(1, Ordering::Relaxed);
                        log::error!("configuration reload ({why}) refused, keeping the running configuration: {reason}");
                    }
                }
            }
        })
        .map_err(|source| Error::Thread {
            name: "iotblast-reload".into(),
            source,
        })?;
    Ok(Reloader { handle })
}

/// Watches the file's directory (editors and ConfigMaps replace files by renaming) and
/// forwards the events that concern the file.
fn watch(file: &Path) -> notify::Result<(Receiver<()>, notify::RecommendedWatcher)> {
    let (tx, rx) = unbounded();
    let name = file.file_name().map(|n| n.to_owned());
    let dir = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        let Ok(event) = res else { return };
        let relevant = matches!(
            event.kind,
            EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_)
        ) && event
            .paths
            .iter()
            .any(|p| p.file_name() == name.as_deref() || p.ends_with("..data"));
        if relevant {
            let _ = tx.send(());
        }
    })?;
    watcher.watch(&dir, RecursiveMode::NonRecursive)?;
    Ok((rx, watcher))
}

/// Rebuilds, checks and applies. Returns the new settings and a description of the
/// changes, or why the reload was refused.
fn reload(
    rebuild: &Rebuild,
    current: &Settings,
    live: &Live,
    set_log_level: &dyn Fn(&str) -> Result<(), String>,
) -> Result<(Settings, Vec<String>), String> {
    let next = rebuild().map_err(|e| e.to_string())?;
    next.validate().map_err(|e| e.to_string())?;
    let changes = diff(current, &next);
    let restart: Vec<&str> = changes
        .iter()
        .map(|(path, _)| path.as_str())
        .filter(|p| !LIVE_PATHS.iter().any(|l| p.starts_with(l)))
        .collect();
    // Simulated event times must not jump: their clock is fixed for the run.
    let clock_fixed = next.device.simulator.event_time == EventTime::Simulated;
    let restart: Vec<&str> = restart
        .into_iter()
        .chain(changes.iter().map(|(p, _)| p.as_str()).filter(|p| {
            clock_fixed
                && (*p == "device.simulator.sample_interval" || *p == "device.simulator.time_scale")
        }))
        .collect();
    if !restart.is_empty() {
        return Err(format!(
            "{} cannot change while running; restart iotblast to apply",
            restart.join(", ")
        ));
    }
    if next.log.level != current.log.level {
        set_log_level(&next.log.level).map_err(|e| format!("log.level: {e}"))?;
    }
    live.publish(LiveSettings::of(&next));
    Ok((
        next,
        changes
            .into_iter()
            .map(|(p, d)| format!("{p} {d}"))
            .collect(),
    ))
}

/// Leaf paths whose shown values differ, with "old -> new".
fn diff_shown(a: &Settings, b: &Settings) -> Vec<(String, String)> {
    let (a, b) = (
        yaml_serde::to_value(a).expect("settings serialise"),
        yaml_serde::to_value(b).expect("settings serialise"),
    );
    let mut out = Vec::new();
    diff_values(&a, &b, "", &mut out);
    out
}

/// Leaf paths whose values differ, with "old -> new". Secret values are shown as
/// `***` (so the shown trees are equal there), and compared here on their own.
fn diff(a: &Settings, b: &Settings) -> Vec<(String, String)> {
    let mut out = diff_shown(a, b);
    let (pa, pb) = (&a.kafka.librdkafka, &b.kafka.librdkafka);
    for key in pa.keys().chain(pb.keys()) {
        if is_secret_key(key) && pa.get(key) != pb.get(key) {
            let path = format!("kafka.librdkafka.{key}");
            if !out.iter().any(|(p, _)| *p == path) {
                out.push((path, "*** -> ***".into()));
            }
        }
    }
    out
}

fn diff_values(a: &Value, b: &Value, path: &str, out: &mut Vec<(String, String)>) {
    match (a, b) {
        (Value::Mapping(ma), Value::Mapping(mb)) => {
            let keys = ma.keys().chain(mb.keys().filter(|k| !ma.contains_key(*k)));
            for k in keys {
                let key = k.as_str().unwrap_or_default();
                let sub = if path.is_empty() {
                    key.to_owned()
                } else {
                    format!("{path}.{key}")
                };
                diff_values(
                    ma.get(k).unwrap_or(&Value::Null),
                    mb.get(k).unwrap_or(&Value::Null),
                    &sub,
                    out,
                );
            }
        }
        _ if a != b => {
            let show = |v: &Value| {
                yaml_serde::to_string(v)
                    .unwrap_or_default()
                    .trim()
                    .replace('\n', " ")
            };
            out.push((path.to_owned(), format!("{} -> {}", show(a), show(b))));
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::{Count, Dur, Rate, Time};

    fn live() -> Live {
        Live::new(LiveSettings::of(&Settings::default()))
    }

    fn rebuild_to(s: Settings) -> Rebuild {
        Box::new(move || Ok(s.clone()))
    }

    #[test]
    fn live_changes_apply_and_structural_ones_are_refused() {
        let current = Settings::default();
        let l = live();
        let ok_log = |_: &str| Ok(());

        let mut faster = current.clone();
        faster.run.rate = Some(Rate(5000.0));
        faster.device.thresholds.current.warning = 4.0;
        let (next, changes) = reload(&rebuild_to(faster), &current, &l, &ok_log).unwrap();
        assert_eq!(next.run.rate.unwrap().0, 5000.0);
        assert!(
            changes.iter().any(|c| c.starts_with("run.rate")),
            "{changes:?}"
        );
        let (published, version) = l.get();
        assert_eq!((published.rate, version), (Some(5000.0), 1));
        assert_eq!(published.fleet.thresholds.current.warning, 4.0);

        let mut bigger = current.clone();
        bigger.device.simulator.device_count = Count(5);
        let err = reload(&rebuild_to(bigger), &current, &l, &ok_log).unwrap_err();
        assert!(err.contains("device.simulator.device_count"), "{err}");
        assert!(err.contains("restart"), "{err}");
        assert_eq!(l.version(), 1, "nothing published");

        let broken: Rebuild = Box::new(|| {
            Err(ConfigError::new(
                "f.yaml",
                "invalid YAML at line 2, column 1",
            ))
        });
        assert!(reload(&broken, &current, &l, &ok_log)
            .unwrap_err()
            .contains("line 2"));
        assert_eq!(l.version(), 1);
    }

    #[test]
    fn the_signal_model_changes_live_but_its_layout_and_clock_start_do_not() {
        let current = Settings::default();
        let l = live();
        let ok_log = |_: &str| Ok(());
        let mut next = current.clone();
        let sim = &mut next.device.simulator;
        sim.anomaly_rate = 0.2;
        sim.trend_strength = 2.5;
        sim.sample_interval = Dur(Duration::from_secs(60));
        sim.anomaly_weights.stuck = 3.0;
        next.device.thresholds.temperature.sd = 7.0;
        reload(&rebuild_to(next), &current, &l, &ok_log).unwrap();
        let (published, _) = l.get();
        let f = &published.fleet.simulator;
        assert_eq!((f.anomaly_rate, f.trend_strength), (0.2, 2.5));
        assert_eq!(f.sample_interval.0, Duration::from_secs(60));
        assert_eq!(f.anomaly_weights.stuck, 3.0);
        assert_eq!(published.fleet.thresholds.temperature.sd, 7.0);

        for change in [
            |s: &mut Settings| {
                s.device.simulator.start_time = Time {
                    unix_s: 1_893_456_000,
                }
            },
            |s: &mut Settings| s.device.simulator.rooms_per_floor = 3,
            |s: &mut Settings| s.kafka.topics.alerts = "other".into(),
        ] {
            let mut next = current.clone();
            change(&mut next);
            let err = reload(&rebuild_to(next), &current, &l, &ok_log).unwrap_err();
            assert!(err.contains("restart"), "{err}");
        }
        assert_eq!(l.version(), 1);
    }

    #[test]
    fn simulated_event_time_fixes_the_clock_for_the_run() {
        let mut current = Settings::default();
        current.device.simulator.event_time = EventTime::Simulated;
        let l = live();
        let ok_log = |_: &str| Ok(());
        for change in [
            |s: &mut Settings| s.device.simulator.sample_interval = Dur(Duration::from_secs(60)),
            |s: &mut Settings| s.device.simulator.time_scale = 60.0,
            |s: &mut Settings| s.device.simulator.event_time = EventTime::Wall,
        ] {
            let mut next = current.clone();
            change(&mut next);
            let err = reload(&rebuild_to(next), &current, &l, &ok_log).unwrap_err();
            assert!(err.contains("restart"), "{err}");
        }
        // The rest of the model still changes live.
        let mut next = current.clone();
        next.device.simulator.anomaly_rate = 0.2;
        reload(&rebuild_to(next), &current, &l, &ok_log).unwrap();
        assert_eq!(l.version(), 1, "only the allowed change was published");
    }
}
