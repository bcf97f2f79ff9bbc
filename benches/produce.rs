//! Keeps the evidence for `deliver::produce_batch`, which replaces rust-rdkafka's
//! per-message `BaseProducer::send`: the same keyed batches, the same producer settings
//! and the same delivery callback, produced to a fresh mock cluster and flushed, once
//! message by message with `send` and once grouped by partition with
//! `rd_kafka_produce_batch`. `send` copies each payload, as rust-rdkafka always does;
//! the grouped path hands librdkafka pointers into the batches (which outlive the
//! flush here), as the sink does, so the comparison includes the saved copy.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use iotblast::config::settings::Format;
use iotblast::config::KafkaSettings;
use iotblast::deliver::batch::Batch;
use iotblast::deliver::kafka::produce_batch::{partitioner_by_name, BatchProducer, Enqueued};
use iotblast::deliver::kafka::DeliveryContext;
use iotblast::deliver::stats::DeliveryStats;
use iotblast::generate::worker::Emitter;
use iotblast::model::{Fleet, FleetSpec};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

const PARTITIONS: i32 = 12;
const BATCHES: usize = 64;

/// The worker's batches of 10k devices' readings, made by the shipped emitter.
fn batches() -> Vec<Batch> {
    let mut emitter = Emitter::new(
        Fleet::new(FleetSpec::default(), 1),
        0..10_000,
        false,
        Format::Json,
    );
    (0..BATCHES)
        .map(|b| {
            let mut batch = Batch::new(emitter.encoder().batch_shape(1024, false), 0);
            for i in 0..1024u64 {
                let n = b as u64 * 1024 + i;
                emitter.emit(n % 10_000, n / 10_000, 1_735_689_600_123, 0, &mut batch);
            }
            batch
        })
        .collect()
}

fn producer(
    mock: &MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
) -> BaseProducer<DeliveryContext> {
    mock.create_topic("bench", PARTITIONS, 1).unwrap();
    KafkaSettings::default()
        .client_config(&mock.bootstrap_servers())
        .unwrap()
        .create_with_context(DeliveryContext::new(Arc::new(DeliveryStats::default())))
        .unwrap()
}

fn produce(c: &mut Criterion) {
    let batches = batches();
    let mut g = c.benchmark_group("produce_to_mock");
    g.throughput(Throughput::Elements((BATCHES * 1024) as u64));
    g.sample_size(10);

    g.bench_function("base_producer_send", |b| {
        b.iter_custom(|iters| {
            let mock = MockCluster::new(1).unwrap();
            let producer = producer(&mock);
            let t = Instant::now();
            for _ in 0..iters {
                for batch in &batches {
                    for (key, payload) in batch.iter() {
                        let mut record = BaseRecord::with_opaque_to("bench", 0usize)
                            .key(key)
                            .payload(payload);
                        while let Err((_, r)) = producer.send(record) {
                            record = r;
                            producer.poll(Duration::from_micros(200));
                        }
                    }
                    producer.poll(Duration::ZERO);
                }
            }
            producer.flush(Duration::from_secs(60)).unwrap();
            t.elapsed()
        })
    });

    g.bench_function("produce_batch_grouped", |b| {
        b.iter_custom(|iters| {
            let mock = MockCluster::new(1).unwrap();
            let producer = producer(&mock);
            let partitioner = partitioner_by_name("murmur2_random").unwrap();
            let mut bp = BatchProducer::new(
                std::slice::from_ref(&producer),
                "bench",
                partitioner,
                PARTITIONS,
            )
            .unwrap();
            let t = Instant::now();
            for _ in 0..iters {
                for batch in &batches {
                    bp.load(batch.readings(), |_| 0);
                    let mut start = 0;
                    while let Enqueued::QueueFullAt(at) = bp.enqueue(start, |e| panic!("{e}")) {
                        start = at;
                        producer.poll(Duration::from_micros(200));
                    }
                    producer.poll(Duration::ZERO);
                }
            }
            producer.flush(Duration::from_secs(60)).unwrap();
            let elapsed = t.elapsed();
            drop(bp);
            elapsed
        })
    });
    g.finish();
}

criterion_group!(benches, produce);
criterion_main!(benches);
