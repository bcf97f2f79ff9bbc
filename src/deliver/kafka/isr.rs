//! Watches the in-sync replicas of the partitions produced to, so that a run can say
//! when the brokers refuse writes for want of replicas.
//!
//! With `acks=all`, a partition whose in-sync replicas (ISR) are fewer than its topic's
//! `min.insync.replicas` has its leader refuse every write with NOT_ENOUGH_REPLICAS.
//! librdkafka retries that until `message.timeout.ms` and then reports only the
//! timeout; the broker's error itself it logs at debug level only. The brokers'
//! metadata says the same directly: each partition's ISR. So once a second a thread of
//! its own reads the readings' and alerts' topics' metadata, with each topic's
//! `min.insync.replicas` (read once, at start), and records in the delivery stats
//! which partitions are below it and for how long. A timeout on such a partition is
//! counted with that reason (`reports`), and the summary's notes say what happened.
//!
//! The watcher runs only against real brokers with `acks=all`, and only if the brokers
//! answer DescribeConfigs for the topics: without a `min.insync.replicas` to compare
//! with, an ISR says nothing about refused writes.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, RecvTimeoutError, Sender};
use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;

use crate::deliver::stats::DeliveryStats;

/// How often the ISR is read.
const EVERY: Duration = Duration::from_secs(1);

/// A topic watched: whether it is the alerts topic, its name, its `min.insync.replicas`.
struct Watched {
    alert: bool,
    name: String,
    min_insync: usize,
}

/// The watcher thread; dropping this stops it.
pub struct IsrWatch {
    /// Dropping the sender wakes the thread, which then returns. It is not joined: it
    /// may be waiting on a metadata request to brokers that no longer answer, and the
    /// run's end must not wait for that.
    _stop: Sender<()>,
}

/// Starts watching `topics` (readings first, then alerts if any) with a client of
/// `config`, asking within `timeout`. The thread first asks each topic's
/// `min.insync.replicas` and ends at once if the brokers give none: asked here, a
/// cluster that does not answer DescribeConfigs would hold up the start of the run.
pub fn watch(
    config: &rdkafka::ClientConfig,
    topics: &[&str],
    timeout: Duration,
    stats: Arc<DeliveryStats>,
) -> Option<IsrWatch> {
    let admin: AdminClient<DefaultClientContext> = config.create().ok()?;
    let topics: Vec<String> = topics.iter().map(|t| (*t).to_owned()).collect();
    let (stop, stopped) = bounded::<()>(0);
    std::thread::Builder::new()
        .name("isr-watch".into())
        .spawn(move || {
            let watched: Vec<Watched> = topics
                .into_iter()
                .enumerate()
                .filter_map(|(i, name)| {
                    let min_insync = min_insync(&admin, &name, timeout)?;
                    Some(Watched {
                        alert: i > 0,
                        name,
                        min_insync,
                    })
                })
                .collect();
            if watched.is_empty() {
                return;
            }
            let mut last = Instant::now();
            let mut below = BTreeSet::new();
            loop {
                below_min_insync(&admin, &watched, timeout, &mut below);
                let now = Instant::now();
                stats.with(|d| {
                    if !below.is_empty() {
                        d.under_min_isr.seconds += now.duration_since(last).as_secs_f64();
                    }
                    d.under_min_isr.partitions = below.clone();
                });
                last = now;
                match stopped.recv_timeout(EVERY) {
                    Err(RecvTimeoutError::Timeout) => {}
                    _ => return,
                }
            }
        })
        .ok()?;
    Some(IsrWatch { _stop: stop })
}

/// `topic`'s `min.insync.replicas`, as the brokers report it.
fn min_insync(
    admin: &AdminClient<DefaultClientContext>,
    topic: &str,
    timeout: Duration,
) -> Option<usize> {
    let opts = AdminOptions::new().request_timeout(Some(timeout));
    let results = futures_executor::block_on(
        admin.describe_configs([&ResourceSpecifier::Topic(topic)], &opts),
    )
    .ok()?;
    let resource = results.into_iter().next()?.ok()?;
    resource
        .get("min.insync.replicas")?
        .value
        .as_deref()?
        .parse()
        .ok()
}

/// Updates `below`, the partitions (alerts topic or not, partition) whose ISR is below
/// their topic's `min.insync.replicas`. A topic whose metadata does not come keeps
/// what was last seen of it.
fn below_min_insync(
    admin: &AdminClient<DefaultClientContext>,
    watched: &[Watched],
    timeout: Duration,
    below: &mut BTreeSet<(bool, i32)>,
) {
    for w in watched {
        let Ok(md) = admin.inner().fetch_metadata(Some(&w.name), timeout) else {
            continue;
        };
        below.retain(|(alert, _)| *alert != w.alert);
        for t in md.topics().iter().filter(|t| t.name() == w.name) {
            for p in t.partitions() {
                if p.isr().len() < w.min_insync {
                    below.insert((w.alert, p.id()));
                }
            }
        }
    }
}
