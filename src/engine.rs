//! Wires one run together: sink, topology, workers, delivery thread, progress, summary.
//!
//! The calling thread becomes the reporter: it prints progress, enforces `--duration`,
//! turns signals into a stop request, and waits for the delivery thread, which ends
//! after the last worker has finished and the sink has flushed.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::config::{Config, SinkConfig};
use crate::delivery;
use crate::device::Fleet;
use crate::encoder::Encoder;
use crate::error::Error;
use crate::handoff;
use crate::http;
use crate::live::{Live, LiveSettings};
use crate::metrics::{Metrics, Sources};
use crate::report::{self, Latency, Summary};
use crate::shutdown::Shutdown;
use crate::sink::{kafka, stdout::StdoutSink, NullSink, Sink};
use crate::stats::{DeliveryStats, Generated, WorkerStats};
use crate::topology::{self, Quota};
use crate::worker::Worker;

/// How often the reporter wakes to check for stop conditions.
const TICK: Duration = Duration::from_millis(20);

/// Runs to completion and returns the summary. Progress lines go to stderr unless
/// `config.quiet`. Stops early when `shutdown` is requested.
pub fn run(config: &Config, shutdown: Arc<Shutdown>) -> Result<Summary, Error> {
    run_live(config, shutdown, Arc::new(Live::new(live_settings(config))))
}

/// The live part of `config`, to start a `Live` from.
pub fn live_settings(config: &Config) -> LiveSettings {
    LiveSettings {
        rate: config.rate,
        fleet: config.fleet.clone(),
    }
}

/// Like [`run`], with rate and thresholds taken from `live`, which may change while
/// the run goes on (see `reload`).
pub fn run_live(
    config: &Config,
    shutdown: Arc<Shutdown>,
    live: Arc<Live>,
) -> Result<Summary, Error> {
    config.validate()?;
    let fleet = Fleet::new(config.fleet.clone(), config.seed, config.devices);
    let encoder = Encoder::new(fleet);
    let core_ids: Vec<usize> = core_affinity::get_core_ids()
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.id)
        .collect();
    // This process's slice of the fleet (all of it unless instances share the fleet).
    let instance = config.instance_devices();
    let plan = topology::plan(instance.clone(), config.cores, &core_ids);
    if config.instance_count > 1 {
        log::info!(
            "instance {} of {}: devices {}..{} of {}",
            config.instance_index,
            config.instance_count,
            instance.start,
            instance.end,
            config.devices
        );
    }
    for w in &plan.warnings {
        log::warn!("{w}");
    }

    let deliveries = Arc::new(DeliveryStats::default());
    let OpenSink {
        sink,
        name: sink_name,
        mock: _mock,
    } = open_sink(config, &deliveries)?;
    if config.seed_was_random {
        log::info!(
            "seed {} (pass --seed {} to repeat this run)",
            config.seed,
            config.seed
        );
    }

    let quota = config.messages.map(|m| Quota::new(m, config.devices));
    let alerts = match &config.sink {
        SinkConfig::Kafka(k) => k.alerts_topic.is_some(),
        SinkConfig::Stdout => false,
        SinkConfig::Null => true,
    };
    let shape = encoder.batch_shape(config.batch_size, alerts);
    let started = Instant::now();
    let mut delivery_sides = Vec::with_capacity(plan.workers.len());
    let mut workers: Vec<JoinHandle<()>> = Vec::with_capacity(plan.workers.len());
    let mut worker_stats = Vec::with_capacity(plan.workers.len());
    for wp in &plan.workers {
        let (side, delivery_side) = handoff::channel(wp.index, shape, config.batches_in_flight);
        delivery_sides.push(delivery_side);
        let stats = Arc::new(WorkerStats::default());
        worker_stats.push(Arc::clone(&stats));
        let share = (wp.devices.end - wp.devices.start) as f64 / config.devices as f64;
        let worker = Worker {
            devices: wp.devices.clone(),
            encoder: encoder.clone(),
            quota,
            share,
            live: Arc::clone(&live),
            linger: config.batch_linger,
            handoff: side,
            stats,
            shutdown: Arc::clone(&shutdown),
            alerts,
        };
        let core = wp.core;
        workers.push(spawn(format!("iotblast-worker-{}", wp.index), move || {
            if let Some(id) = core {
                if !core_affinity::set_for_current(core_affinity::CoreId { id }) {
                    log::warn!("could not pin worker to core {id}; running unpinned");
                }
            }
            worker.run();
        })?);
    }
    let mut endpoints = if config.metrics_address.is_some() || config.http_address.is_some() {
        let metrics = Metrics::new(
            Sources {
                workers: worker_stats.clone(),
                deliveries: Arc::clone(&deliveries),
                live: Arc::clone(&live),
            },
            instance.end - instance.start,
            plan.workers.len(),
        );
        match http::start(
            config.metrics_address,
            config.http_address,
            Arc::new(metrics),
            Arc::clone(&shutdown),
        ) {
            Ok(e) => Some(e),
            Err(e) => {
                // Workers are running: stop them cleanly before reporting the error.
                shutdown.request("could not start the HTTP endpoints");
                for w in workers {
                    let _ = w.join();
                }
                return Err(e);
            }
        }
    } else {
        None
    };
    let delivery = {
        let shutdown = Arc::clone(&shutdown);
        let flush_timeout = config.flush_timeout;
        spawn("iotblast-delivery".into(), move || {
            delivery::run(sink, delivery_sides, flush_timeout, shutdown)
        })?
    };

    // Report until the delivery thread is done.
    let mut last = (Instant::now(), Generated::default(), 0u64);
    let mut next_report = started + config.report_interval;
    while !delivery.is_finished() {
        thread::sleep(TICK);
        shutdown.take_signal();
        if let Some(d) = config.duration {
            if started.elapsed() >= d && !shutdown.is_requested() {
                shutdown.request("duration reached");
            }
        }
        let now = Instant::now();
        if now >= next_report {
            next_report += config.report_interval;
            let g = Generated::sum(&worker_stats);
            let (failed, line) = deliveries.with(|d| {
                let line = report::progress_line(
                    g.messages - last.1.messages,
                    g.bytes - last.1.bytes,
                    d.failed - last.2,
                    now - last.0,
                    &d.interval,
                );
                d.interval.reset();
                (d.failed, line)
            });
            if !config.quiet {
                eprintln!("{line}");
            }
            last = (now, g, failed);
        }
    }

    let mut panicked = None;
    for (i, w) in workers.into_iter().enumerate() {
        if w.join().is_err() {
            panicked = Some(format!("iotblast-worker-{i}"));
        }
    }
    if delivery.join().is_err() {
        panicked = Some("iotblast-delivery".into());
    }
    if let Some(name) = panicked {
        return Err(Error::Panicked(name));
    }
    let elapsed = started.elapsed();
    if let Some(e) = endpoints.as_mut() {
        e.stop();
    }

    let g = Generated::sum(&worker_stats);
    let summary = deliveries.with(|d| {
        let mut errors = d.errors.clone();
        if g.lost > 0 {
            *errors.entry("lost at handoff".into()).or_default() += g.lost;
        }
        let (msgs_per_sec, mb_per_sec) = report::rates(d.delivered, d.bytes_delivered, elapsed);
        Summary {
            messages_sent: g.messages,
            messages_delivered: d.delivered,
            messages_failed: d.failed + g.lost,
            bytes: d.bytes_delivered,
            elapsed_s: elapsed.as_secs_f64(),
            msgs_per_sec,
            mb_per_sec,
            latency_ms: Latency::from_us(&d.latency),
            devices: config.devices,
            cores: plan.workers.len(),
            seed: config.seed,
            sink: sink_name.into(),
            blocked_s: g.blocked_ns as f64 / 1e9,
            stop_reason: shutdown.reason(),
            config_reloads: live.reloads.load(Relaxed),
            config_reload_failures: live.reload_failures.load(Relaxed),
            alerts_sent: g.alerts,
            alerts_delivered: d.alerts_delivered,
            alerts_failed: d.alerts_failed,
            errors,
        }
    });
    if !summary.is_balanced() {
        log::error!(
            "accounting mismatch: {} sent but {} delivered + {} failed; alerts: {} sent but {} delivered + {} failed",
            summary.messages_sent,
            summary.messages_delivered,
            summary.messages_failed,
            summary.alerts_sent,
            summary.alerts_delivered,
            summary.alerts_failed
        );
    }
    Ok(summary)
}

/// An open sink, named for the summary.
struct OpenSink {
    sink: Box<dyn Sink>,
    name: &'static str,
    /// The embedded mock cluster, if one was started; must outlive the run.
    mock: Option<kafka::MockGuard>,
}

fn open_sink(config: &Config, deliveries: &Arc<DeliveryStats>) -> Result<OpenSink, Error> {
    let stats = Arc::clone(deliveries);
    let (sink, name, mock): (Box<dyn Sink>, _, _) = match &config.sink {
        SinkConfig::Kafka(k) => {
            let opened = kafka::open(k, stats, config.flush_timeout)?;
            log::info!("producing to {}", opened.description);
            (Box::new(opened.sink), "kafka", opened.mock)
        }
        SinkConfig::Stdout => (Box::new(StdoutSink::new(stats)), "stdout", None),
        SinkConfig::Null => (Box::new(NullSink { stats }), "null", None),
    };
    Ok(OpenSink { sink, name, mock })
}

fn spawn(name: String, f: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>, Error> {
    thread::Builder::new()
        .name(name.clone())
        .spawn(f)
        .map_err(|source| Error::Thread { name, source })
}
