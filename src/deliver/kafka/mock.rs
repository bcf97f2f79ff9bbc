//! Starts the embedded mock cluster (librdkafka's, in process) when no brokers are
//! given: its brokers, their round-trip time and the run's topics.
//!
//! Each of those is a command librdkafka's mock thread serves from its op queue, and
//! that queue can lose its wake-up (librdkafka 2.12.1, `rdkafka_mock.c`): the mock
//! thread serves its ops, then drains the wake-up pipe. A command enqueued between
//! the two (the next one, sent the moment the previous one's reply arrives) has its
//! wake-up byte drained unread, and waits for the thread's one-second poll timeout.
//! Two runs started side by side hit it in about a third of starts, so `start` wakes
//! the thread through its sockets while a command is pending.

use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use rdkafka::error::KafkaError;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;

use crate::deliver::kafka::settings::KafkaSettings;
use crate::error::{Error, TopicCreate};

/// How long a mock command may take before its thread is woken; a served command
/// takes well under a millisecond.
const WAKE_AFTER: Duration = Duration::from_millis(5);

/// Keeps the embedded mock cluster alive for as long as the run uses it.
pub struct MockGuard(#[allow(dead_code)] MockCluster<'static, DefaultProducerContext>);

/// A started mock cluster.
pub struct Started {
    pub bootstrap: String,
    pub guard: MockGuard,
    /// What the run produces to, for its log line.
    pub description: String,
}

/// Starts the cluster of `kafka.mock` with the run's topics, each with
/// `kafka.partitions` partitions.
pub fn start(k: &KafkaSettings) -> Result<Started, Error> {
    let n = k.mock.brokers as i32;
    let mock = MockCluster::new(n).map_err(Error::MockCluster)?;
    let bootstrap = mock.bootstrap_servers();
    let listeners: Vec<SocketAddr> = bootstrap
        .split(',')
        .filter_map(|a| a.parse().ok())
        .collect();
    let command = |f: &dyn Fn() -> Result<(), KafkaError>| woken(&listeners, f);
    if !k.mock.rtt.0.is_zero() {
        for id in 1..=n {
            command(&|| mock.broker_round_trip_time(id, k.mock.rtt.0))
                .map_err(Error::MockCluster)?;
        }
    }
    for topic in k.topics() {
        command(&|| mock.create_topic(topic, k.partitions, 1)).map_err(|e| Error::TopicCreate {
            topic: topic.to_owned(),
            source: TopicCreate::Client(e),
        })?;
    }
    let description = format!(
        "embedded librdkafka mock cluster at {bootstrap} (no --brokers given; {n} broker(s), RTT {}, topics '{}' with {} partitions each)",
        k.mock.rtt,
        k.topics().collect::<Vec<_>>().join("', '"),
        k.partitions
    );
    Ok(Started {
        bootstrap,
        guard: MockGuard(mock),
        description,
    })
}

/// Runs mock command `f`; while it is pending past `WAKE_AFTER`, connects to the
/// mock's listeners (loopback), which wakes its thread to serve the command. The
/// mock accepts the connection and drops it when it closes, unread.
fn woken<T>(listeners: &[SocketAddr], f: &dyn Fn() -> T) -> T {
    let (done, pending) = mpsc::channel::<()>();
    std::thread::scope(|s| {
        s.spawn(move || {
            // Ends as soon as `done` is dropped, so a prompt command costs no wait.
            while let Err(RecvTimeoutError::Timeout) = pending.recv_timeout(WAKE_AFTER) {
                for addr in listeners {
                    drop(TcpStream::connect_timeout(addr, WAKE_AFTER));
                }
            }
        });
        let out = f();
        drop(done);
        out
    })
}

#[cfg(test)]
mod tests {
    use rdkafka::consumer::Consumer;
    use std::net::TcpListener;
    use std::time::Instant;

    use super::*;

    #[test]
    fn a_pending_command_gets_a_connection_to_each_listener() {
        let listeners: Vec<TcpListener> = (0..2)
            .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
            .collect();
        let addrs: Vec<SocketAddr> = listeners.iter().map(|l| l.local_addr().unwrap()).collect();
        for l in &listeners {
            l.set_nonblocking(true).unwrap();
        }
        // Stands for a command whose wake-up was lost: it ends only once its thread is
        // woken, here once every listener has been connected to (or after 10 s).
        let woke = woken(&addrs, &|| {
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut seen = vec![false; listeners.len()];
            while !seen.iter().all(|s| *s) && Instant::now() < deadline {
                for (l, s) in listeners.iter().zip(&mut seen) {
                    *s |= l.accept().is_ok();
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            seen
        });
        assert_eq!(woke, vec![true, true]);
    }

    #[test]
    fn the_mock_starts_with_the_runs_topics_and_partitions() {
        let k = KafkaSettings {
            partitions: 5,
            ..KafkaSettings::default()
        };
        let started = start(&k).unwrap();
        let consumer: rdkafka::consumer::BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &started.bootstrap)
            .create()
            .unwrap();
        let md = consumer
            .fetch_metadata(None, Duration::from_secs(10))
            .unwrap();
        for topic in k.topics() {
            let t = md.topics().iter().find(|t| t.name() == topic).unwrap();
            assert_eq!(t.partitions().len(), 5, "{topic}");
        }
        assert!(started.description.contains(&started.bootstrap));
    }
}
