//! Wires the stages of a run together: configuration → generator threads (`generate`)
//! → hand-off and delivery thread (`deliver`) → progress, endpoints and summary
//! (`observe`). Nothing here runs per message.
//!
//! [`execute`] is the binary's whole job; [`run`] and [`run_live`] are the library's
//! entry points for one run. `reload` watches the configuration while a run goes on.

pub mod reload;
pub mod schedule;

use std::ops::Range;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::config::flags::{Command, ReportCommand};
use crate::config::settings::{log_level, Format, OnBackpressure};
use crate::config::{command, Invocation, Run, SinkKind, BATCH_LINGER};
use crate::deliver::kafka::{self, MockGuard};
use crate::deliver::stats::DeliveryStats;
use crate::deliver::stdout::{Framing, StdoutSink};
use crate::deliver::{handoff, thread as delivery, NullSink, Sink};
use crate::engine::schedule::{Driver, SearchReport};
use crate::error::Error;
use crate::generate::live::{Live, LiveSettings};
use crate::generate::stats::{Generated, WorkerStats};
use crate::generate::topology::{self, Plan, Quota};
use crate::generate::worker::Worker;
use crate::model::Fleet;
use crate::observe::http::{self, Endpoints};
use crate::observe::logging;
use crate::observe::metrics::{Identity, Metrics, Sources};
use crate::observe::progress::{self, Watched};
use crate::observe::report::{Finished, Summary};
use crate::observe::report_file::{self, RunReport};
use crate::shutdown::{AbortReport, Shutdown, StopReason};
use reload::Rebuild;

/// Runs what the command line asks for: a `config` subcommand, or a run with its
/// logging, signal handling and hot reload, printing the summary at the end.
pub fn execute(invocation: Invocation) -> Result<(), Error> {
    match &invocation.command {
        Some(Command::Config(c)) => return command::run(c.clone()),
        Some(Command::Verify(v)) => return crate::verify::run(&invocation, v),
        Some(Command::Report(ReportCommand::Merge { files, json })) => {
            return crate::observe::report_file::run_merge(files, *json)
        }
        Some(Command::Report(ReportCommand::Plot { files, output })) => {
            return crate::observe::plot::run_plot(files, output)
        }
        Some(Command::Healthcheck { url, timeout }) => {
            return crate::observe::http::healthcheck(url, timeout)
        }
        Some(Command::Completions { shell }) => return command::completions(*shell),
        Some(Command::Man) => return command::man(),
        None => {}
    }
    // The environment is read once: a reload re-applies this snapshot, so only the file
    // can change a running configuration.
    let env: Vec<(String, String)> = std::env::vars().collect();
    let (run, settings, warnings) = invocation.to_run(env.clone())?;
    logging::init(log_level(&settings.log.level).unwrap_or(log::LevelFilter::Info));
    for w in warnings {
        log::warn!("{w}");
    }
    let shutdown = Shutdown::new();
    shutdown.install_signal_handlers().map_err(Error::Signals)?;
    let live = Arc::new(Live::new(LiveSettings::of(&run.settings)));
    let (file, json) = (invocation.run.config.clone(), invocation.run.json);
    let rebuild: Rebuild = Box::new(move || invocation.settings(env.clone()).map(|(s, _)| s));
    let reloader = reload::spawn(
        file,
        rebuild,
        settings,
        Arc::clone(&live),
        Arc::clone(&shutdown),
        Box::new(logging::set_level),
    )?;
    let result = run_live(&run, Arc::clone(&shutdown), live);
    shutdown.request(StopReason::Messages);
    reloader.join();
    let summary = result?;
    summary.print(json, run.sink)?;
    summary.outcome()
}

/// Runs to completion and returns the summary. Progress lines go to stderr unless
/// `run.quiet`. Stops early when `shutdown` is requested.
pub fn run(run: &Run, shutdown: Arc<Shutdown>) -> Result<Summary, Error> {
    run_live(
        run,
        shutdown,
        Arc::new(Live::new(LiveSettings::of(&run.settings))),
    )
}

/// Like [`run`], with rate and model settings taken from `live`, which may change while
/// the run goes on (see `config::reload`).
pub fn run_live(run: &Run, shutdown: Arc<Shutdown>, live: Arc<Live>) -> Result<Summary, Error> {
    let instance = topology::instance_devices(run);
    let plan = plan(run, &instance);
    // Bad output files are found before anything connects.
    let mut interval_log = create_log("run.interval_log", &run.settings.run.interval_log)?;
    let mut hdr_log = create_log("run.hdr_log", &run.settings.run.hdr_log)?;
    let mut report_file = create_log("run.report_file", &run.settings.run.report_file)?;
    let mut intervals = Vec::new();
    let deliveries = Arc::new(DeliveryStats::default());
    let (sink, _mock) = open_sink(run, &deliveries)?;
    log_random_seed(run);
    let started = Instant::now();
    let started_unix_s = unix_now();
    let mut driver = schedule::driver_for(&run.settings.run);
    let mut workers = start_workers(run, &plan, &live, &shutdown, sink.holds_bytes())?;
    let endpoints =
        start_endpoints_or_stop(run, &mut workers, &deliveries, &live, &shutdown, &instance)?;
    let delivery = {
        let (shutdown, flush) = (Arc::clone(&shutdown), run.settings.kafka.flush_timeout.0);
        let sides = workers.sides;
        spawn("iotblast-delivery".into(), move || {
            delivery::run(sink, sides, flush, shutdown)
        })?
    };
    shutdown.on_abort(abort_report(&deliveries, &workers.stats));
    // From here on a signal stops the run cleanly (flush, summary); before, it exits.
    shutdown.started();
    let mut watched = Watched {
        workers: &workers.stats,
        deliveries: &deliveries,
        shutdown: &shutdown,
        interval_log: interval_log.as_mut().map(|f| f as &mut dyn std::io::Write),
        hdr_log: hdr_log.as_mut().map(|f| f as &mut dyn std::io::Write),
        intervals: report_file.is_some().then_some(&mut intervals),
        live: &live,
        share: topology::instance_share(run),
        driver: driver.as_mut(),
    };
    let warmup = progress::until_done(run, started, &mut watched, &delivery);
    let stats = workers.stats.clone();
    Workers {
        sides: Vec::new(),
        ..workers
    }
    .join()?;
    delivery
        .join()
        .map_err(|_| Error::Panicked("iotblast-delivery".into()))?;
    let elapsed = started.elapsed();
    let generation = generation_time(&stats, started, elapsed);
    // Stops the listeners (`Endpoints` stops on drop).
    drop(endpoints);
    let mut summary = Summary::collect(Finished {
        run,
        generated: Generated::sum(&stats),
        deliveries: &deliveries,
        live: &live,
        elapsed,
        generation,
        cores: plan.workers.len(),
        stop_reason: shutdown.reason().unwrap_or(StopReason::Messages),
        warmup,
    });
    summary.search = driver.and_then(Driver::into_search).map(SearchReport::from);
    if let (Some(out), Some(path)) = (report_file.as_mut(), &run.settings.run.report_file) {
        let parts = report_file::Parts {
            run,
            started_unix_s,
            generation_s: generation.as_secs_f64(),
            summary: &summary,
            histograms: deliveries.with(|d| report_file::Histograms::of(d)),
            intervals,
        };
        RunReport::from(parts).write(out, path)?;
    }
    Ok(summary)
}

/// Says which seed was picked, when none was given, so the run can be repeated.
fn log_random_seed(run: &Run) {
    if run.seed_was_random {
        log::info!(
            "seed {} (pass --seed {} to repeat this run)",
            run.seed,
            run.seed
        );
    }
}

/// Starts the endpoints; if they fail, stops the workers first. They are running and
/// no delivery thread drains them yet: closing their hand-offs wakes a worker blocked
/// on a full channel, so that they can be joined.
fn start_endpoints_or_stop(
    run: &Run,
    workers: &mut Workers,
    deliveries: &Arc<DeliveryStats>,
    live: &Arc<Live>,
    shutdown: &Arc<Shutdown>,
    instance: &Range<u64>,
) -> Result<Option<Endpoints>, Error> {
    start_endpoints(run, workers, deliveries, live, shutdown, instance).or_else(|e| {
        shutdown.request(StopReason::Error);
        let running = Workers {
            handles: std::mem::take(&mut workers.handles),
            stats: workers.stats.clone(),
            sides: Vec::new(),
        };
        workers.sides.clear();
        running.join()?;
        Err(e)
    })
}

/// Now, in Unix seconds: the run report's wall-clock start, which merges align on.
fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// How long generation took: until the last worker ended, before the final flush.
fn generation_time(stats: &[Arc<WorkerStats>], started: Instant, elapsed: Duration) -> Duration {
    stats
        .iter()
        .filter_map(|s| s.ended())
        .max()
        .map_or(elapsed, |t| t.saturating_duration_since(started))
}

/// What a run abandons when a second signal ends it without its flush: every reading
/// and alert without a delivery report is in doubt.
fn abort_report(deliveries: &Arc<DeliveryStats>, workers: &[Arc<WorkerStats>]) -> AbortReport {
    let (d, w) = (Arc::clone(deliveries), workers.to_vec());
    Box::new(move || {
        let g = Generated::sum(&w);
        d.with(|d| {
            let failed = d.failed + g.lost;
            let alerts_failed = d.alerts_failed + g.lost_alerts;
            format!(
                "{} readings sent, {} delivered, {} failed, {} in doubt; {} alerts sent, {} delivered, {} failed, {} in doubt",
                g.messages,
                d.delivered,
                failed,
                g.messages.saturating_sub(d.delivered + failed),
                g.alerts,
                d.alerts_delivered,
                alerts_failed,
                g.alerts.saturating_sub(d.alerts_delivered + alerts_failed),
            )
        })
    })
}

/// Creates the log file setting `key` names, if set; one that cannot be created is
/// bad input.
fn create_log(
    key: &str,
    path: &Option<std::path::PathBuf>,
) -> Result<Option<std::io::BufWriter<std::fs::File>>, Error> {
    let Some(path) = path else { return Ok(None) };
    std::fs::File::create(path)
        .map(|f| Some(std::io::BufWriter::new(f)))
        .map_err(|e| {
            crate::error::ConfigError::new(key, format!("cannot create '{}': {e}", path.display()))
                .into()
        })
}

/// Splits this instance's devices over the worker threads and cores, logging how.
fn plan(run: &Run, instance: &Range<u64>) -> Plan {
    let core_ids: Vec<usize> = core_affinity::get_core_ids()
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.id)
        .collect();
    let r = &run.settings.run;
    if r.instance_count > 1 {
        log::info!(
            "instance {} of {}: devices {}..{} of {}",
            r.instance_index,
            r.instance_count,
            instance.start,
            instance.end,
            run.devices()
        );
    }
    let plan = topology::plan(instance.clone(), run.cores, &core_ids);
    for w in &plan.warnings {
        log::warn!("{w}");
    }
    plan
}

/// Opens the sink the run asked for. The mock cluster, if one was started, must
/// outlive the run.
fn open_sink(
    run: &Run,
    deliveries: &Arc<DeliveryStats>,
) -> Result<(Box<dyn Sink>, Option<MockGuard>), Error> {
    let stats = Arc::clone(deliveries);
    Ok(match run.sink {
        SinkKind::Kafka => {
            let fleet = Fleet::new(run.settings.device.clone(), run.seed);
            let encoder = crate::generate::encoder::Encoder::new(&fleet, run.settings.run.format);
            let largest = encoder.max_len().max(encoder.max_alert_len()) + encoder.max_key();
            let opened = kafka::open(&run.settings.kafka, stats, largest)?;
            log::info!("producing to {}", opened.description);
            (Box::new(opened.sink), opened.mock)
        }
        SinkKind::Stdout if crate::output::stdout_closed() => return Err(Error::StdoutClosed),
        SinkKind::Stdout => {
            let framing = match run.settings.run.format {
                Format::Json => Framing::Lines,
                Format::Protobuf => Framing::LengthDelimited,
            };
            (Box::new(StdoutSink::new(stats, framing)), None)
        }
        SinkKind::Null => (Box::new(NullSink { stats }), None),
    })
}

/// The running generator threads, their counters, and the delivery ends of their
/// hand-offs.
struct Workers {
    handles: Vec<JoinHandle<()>>,
    stats: Vec<Arc<WorkerStats>>,
    sides: Vec<handoff::DeliverySide>,
}

impl Workers {
    /// Waits for every worker; an error names one that panicked.
    fn join(self) -> Result<(), Error> {
        let mut panicked = None;
        for (i, w) in self.handles.into_iter().enumerate() {
            if w.join().is_err() {
                panicked = Some(format!("iotblast-worker-{i}"));
            }
        }
        panicked.map_or(Ok(()), |name| Err(Error::Panicked(name)))
    }
}

/// The most payload the batch pools of all workers together hold for a sink that keeps
/// batches until delivery: a larger librdkafka queue than this waits on the pool.
pub const MAX_HELD_BYTES: usize = 256 << 20;

/// Extra batches per worker for a sink that keeps them until their messages are
/// delivered: enough to fill `bytes` (at most `MAX_HELD_BYTES`) with readings of this
/// fleet's typical length, split over `workers`. Batches are allocated up front, but
/// their pages become resident only once filled.
fn held_batches(
    run: &Run,
    fleet: &Fleet,
    encoder: &crate::generate::encoder::Encoder,
    workers: usize,
    bytes: usize,
) -> usize {
    if bytes == 0 {
        return 0;
    }
    let mut typical = Vec::with_capacity(encoder.max_len());
    encoder.encode(&fleet.last_reading(0, 0..1, 0), &mut typical);
    let batch = run.settings.device.simulator.batch_size * typical.len().max(1);
    bytes
        .min(MAX_HELD_BYTES)
        .div_ceil(batch)
        .div_ceil(workers.max(1))
}

/// Starts one pinned worker per planned range.
fn start_workers(
    run: &Run,
    plan: &Plan,
    live: &Arc<Live>,
    shutdown: &Arc<Shutdown>,
    holds_bytes: usize,
) -> Result<Workers, Error> {
    let fleet = Fleet::new(run.settings.device.clone(), run.seed);
    let sim = &run.settings.device.simulator;
    let quota = run
        .settings
        .run
        .messages
        .map(|m| Quota::new(m.0, run.devices()));
    let alerts = run.alerts();
    let format = run.settings.run.format;
    let encoder = crate::generate::encoder::Encoder::new(&fleet, format);
    let shape = encoder.batch_shape(sim.batch_size, alerts);
    let held = held_batches(run, &fleet, &encoder, plan.workers.len(), holds_bytes);
    let mut w = Workers {
        handles: Vec::with_capacity(plan.workers.len()),
        stats: Vec::with_capacity(plan.workers.len()),
        sides: Vec::with_capacity(plan.workers.len()),
    };
    for wp in &plan.workers {
        let (side, delivery_side) = handoff::channel(wp.index, shape, sim.queue_buffer_size, held);
        w.sides.push(delivery_side);
        let stats = Arc::new(WorkerStats::default());
        w.stats.push(Arc::clone(&stats));
        let worker = Worker {
            devices: wp.devices.clone(),
            fleet: fleet.clone(),
            quota,
            share: (wp.devices.end - wp.devices.start) as f64 / run.devices() as f64,
            live: Arc::clone(live),
            linger: BATCH_LINGER,
            handoff: side,
            stats,
            shutdown: Arc::clone(shutdown),
            alerts,
            drop_when_full: run.settings.run.on_backpressure == OnBackpressure::Drop,
            format,
            stop_grace: run.settings.kafka.flush_timeout.0,
        };
        let core = wp.core;
        w.handles
            .push(spawn(format!("iotblast-worker-{}", wp.index), move || {
                if let Some(id) = core {
                    if !core_affinity::set_for_current(core_affinity::CoreId { id }) {
                        log::warn!("could not pin worker to core {id}; running unpinned");
                    }
                }
                worker.run();
            })?);
    }
    Ok(w)
}

/// Serves `/metrics`, `/healthz` and `/readyz` where the settings ask for them.
fn start_endpoints(
    run: &Run,
    workers: &Workers,
    deliveries: &Arc<DeliveryStats>,
    live: &Arc<Live>,
    shutdown: &Arc<Shutdown>,
    instance: &Range<u64>,
) -> Result<Option<Endpoints>, Error> {
    let s = &run.settings;
    let (metrics_address, http_address) = (s.metrics.socket()?, s.http.socket()?);
    if metrics_address.is_none() && http_address.is_none() {
        return Ok(None);
    }
    let metrics = Metrics::new(
        Sources {
            workers: workers.stats.clone(),
            deliveries: Arc::clone(deliveries),
            live: Arc::clone(live),
            queues: workers.sides.iter().map(|s| s.depth()).collect(),
        },
        Identity {
            devices: instance.end - instance.start,
            share: topology::instance_share(run),
            workers: workers.handles.len(),
            instance_index: run.settings.run.instance_index,
            instance_count: run.settings.run.instance_count,
        },
    );
    http::start(
        metrics_address,
        http_address,
        Arc::new(metrics),
        Arc::clone(shutdown),
    )
    .map(Some)
}

fn spawn(name: String, f: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>, Error> {
    thread::Builder::new()
        .name(name.clone())
        .spawn(f)
        .map_err(|source| Error::Thread { name, source })
}
