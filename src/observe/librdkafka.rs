//! librdkafka's statistics as Prometheus metrics: per broker (connection state, RTT,
//! throttling, request queues, bytes, errors), the producer queue, and batch sizes per
//! topic.
//!
//! The statistics arrive already parsed (rdkafka's `Statistics`) every
//! `statistics.interval.ms` (1 s by default); a scrape renders the latest report. RTT
//! and batch sizes are librdkafka's rolling windows over the last interval, so they are
//! gauges; a window with no samples in the interval exports nothing rather than a
//! made-up zero. librdkafka's own counters (bytes, errors) are exported as counters:
//! they only grow for the life of the client.
//!
//! Every series carries a `producer` label, the index of the librdkafka client it
//! describes: with `kafka.producers` above 1 each producer has its own connections,
//! queue and batches, and summing or averaging their rolling windows would be wrong.

use std::sync::Arc;

use prometheus::proto::{Counter, Gauge, LabelPair, Metric, MetricFamily, MetricType};
use rdkafka::statistics::{Broker, Statistics, Window};

/// The families for each producer's latest statistics report, by producer index.
pub fn families(all: &[(usize, Arc<Statistics>)]) -> Vec<MetricFamily> {
    let mut out = Families::default();
    for (producer, s) in all {
        out.producer = producer.to_string();
        report(&mut out, s);
    }
    out.families
}

/// One producer's series.
fn report(out: &mut Families, s: &Statistics) {
    // The internal broker is librdkafka's own bookkeeping, not a connection.
    let mut brokers: Vec<_> = s
        .brokers
        .values()
        .filter(|b| b.source != "internal")
        .collect();
    brokers.sort_by(|a, b| a.name.cmp(&b.name));
    out.gauge(
        "iotblast_librdkafka_brokers_up",
        "Brokers librdkafka is connected to (state UP); 0 means no connection to the cluster.",
        &[],
        brokers.iter().filter(|b| up(&b.state)).count() as f64,
    );
    for b in &brokers {
        broker(out, b);
    }
    for (name, help, v) in [
        (
            "iotblast_librdkafka_queue_messages",
            "Messages in librdkafka's producer queue (queued, in batches or in flight).",
            s.msg_cnt,
        ),
        (
            "iotblast_librdkafka_queue_bytes",
            "Bytes of the messages in librdkafka's producer queue.",
            s.msg_size,
        ),
        (
            "iotblast_librdkafka_queue_max_messages",
            "The producer queue's bound in messages (queue.buffering.max.messages).",
            s.msg_max,
        ),
        (
            "iotblast_librdkafka_queue_max_bytes",
            "The producer queue's bound in bytes (queue.buffering.max.kbytes).",
            s.msg_size_max,
        ),
    ] {
        out.gauge(name, help, &[], v as f64);
    }
    topics(out, s);
}

/// One broker connection's series.
fn broker(out: &mut Families, b: &Broker) {
    let l = [("broker", b.name.as_str())];
    out.gauge(
        "iotblast_librdkafka_broker_up",
        "1 while the connection to this broker is up (librdkafka state UP), else 0.",
        &l,
        if up(&b.state) { 1.0 } else { 0.0 },
    );
    // Two gauges rather than one with a `quantile` label: that label is reserved
    // for summaries, whose quantiles cover the metric's whole life.
    if let Some(rtt) = b.rtt.as_ref().filter(|w| w.cnt > 0) {
        out.gauge(
            "iotblast_librdkafka_broker_rtt_p50_seconds",
            "Median round-trip time of requests to this broker over the last statistics interval.",
            &l,
            rtt.p50 as f64 / 1e6,
        );
        out.gauge(
            "iotblast_librdkafka_broker_rtt_p99_seconds",
            "99th percentile round-trip time of requests to this broker over the last statistics interval.",
            &l,
            rtt.p99 as f64 / 1e6,
        );
    }
    if let Some(t) = b.throttle.as_ref().filter(|w| w.cnt > 0) {
        out.gauge(
            "iotblast_librdkafka_broker_throttle_max_seconds",
            "Longest throttle this broker asked for (a quota) over the last statistics interval.",
            &l,
            t.max as f64 / 1e3,
        );
    }
    out.gauge(
        "iotblast_librdkafka_broker_outbuf_requests",
        "Requests waiting to be sent to this broker.",
        &l,
        b.outbuf_cnt as f64,
    );
    out.gauge(
        "iotblast_librdkafka_broker_waitresp_requests",
        "Requests sent to this broker and waiting for a response (in flight).",
        &l,
        b.waitresp_cnt as f64,
    );
    for (name, help, v) in [
        (
            "iotblast_librdkafka_broker_tx_bytes_total",
            "Bytes sent to this broker.",
            b.txbytes,
        ),
        (
            "iotblast_librdkafka_broker_rx_bytes_total",
            "Bytes received from this broker.",
            b.rxbytes,
        ),
        (
            "iotblast_librdkafka_broker_tx_errors_total",
            "Requests to this broker that failed to send.",
            b.txerrs,
        ),
        (
            "iotblast_librdkafka_broker_rx_errors_total",
            "Responses from this broker that failed (errors, corrupt or unexpected).",
            b.rxerrs,
        ),
        (
            "iotblast_librdkafka_broker_request_timeouts_total",
            "Requests to this broker that timed out.",
            b.req_timeouts,
        ),
        (
            "iotblast_librdkafka_broker_retries_total",
            "Requests to this broker that were retried.",
            b.txretries,
        ),
    ] {
        out.counter(name, help, &l, v as f64);
    }
}

/// Batch sizes per topic.
fn topics(out: &mut Families, s: &Statistics) {
    let mut topics: Vec<_> = s.topics.values().collect();
    topics.sort_by(|a, b| a.topic.cmp(&b.topic));
    for t in topics {
        let l = [("topic", t.topic.as_str())];
        if let Some(w) = sampled(&t.batchcnt) {
            out.gauge(
                "iotblast_librdkafka_batch_messages",
                "Average messages per produce batch (message set) over the last statistics interval.",
                &l,
                w.avg as f64,
            );
        }
        if let Some(w) = sampled(&t.batchsize) {
            out.gauge(
                "iotblast_librdkafka_batch_size_bytes",
                "Average size of a produce batch over the last statistics interval.",
                &l,
                w.avg as f64,
            );
        }
    }
}

/// Whether librdkafka's connection state is up.
fn up(state: &str) -> bool {
    state == "UP"
}

fn sampled(w: &Window) -> Option<&Window> {
    (w.cnt > 0).then_some(w)
}

/// Families in order of first use, each gathering its series, and the producer whose
/// series are being added.
#[derive(Default)]
struct Families {
    families: Vec<MetricFamily>,
    producer: String,
}

impl Families {
    fn gauge(&mut self, name: &str, help: &str, labels: &[(&str, &str)], v: f64) {
        let mut g = Gauge::default();
        g.set_value(v);
        let mut m = metric(&self.producer, labels);
        m.set_gauge(g);
        self.push(name, help, MetricType::GAUGE, m);
    }

    fn counter(&mut self, name: &str, help: &str, labels: &[(&str, &str)], v: f64) {
        let mut c = Counter::default();
        c.set_value(v);
        let mut m = metric(&self.producer, labels);
        m.set_counter(c);
        self.push(name, help, MetricType::COUNTER, m);
    }

    fn push(&mut self, name: &str, help: &str, kind: MetricType, m: Metric) {
        if let Some(f) = self.families.iter_mut().find(|f| f.name() == name) {
            f.mut_metric().push(m);
            return;
        }
        let mut f = MetricFamily::default();
        f.set_name(name.into());
        f.set_help(help.into());
        f.set_field_type(kind);
        f.set_metric(vec![m]);
        self.families.push(f);
    }
}

fn metric(producer: &str, labels: &[(&str, &str)]) -> Metric {
    let mut m = Metric::default();
    m.set_label(
        [("producer", producer)]
            .iter()
            .chain(labels)
            .map(|(k, v)| {
                let mut p = LabelPair::default();
                p.set_name((*k).into());
                p.set_value((*v).into());
                p
            })
            .collect(),
    );
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::{Encoder, TextEncoder};

    fn render(all: &[(usize, Arc<Statistics>)]) -> String {
        let mut out = Vec::new();
        TextEncoder::new().encode(&families(all), &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn brokers_queue_and_batches_are_exported() {
        // A trimmed librdkafka statistics report: one connected broker, one down, the
        // internal one, and a topic with batches.
        let json = r#"{"name":"p","client_id":"c","type":"producer","ts":1,"time":1,"age":1,
          "replyq":0,"msg_cnt":42,"msg_size":4200,"msg_max":100000,"msg_size_max":1048576,
          "tx":0,"tx_bytes":0,"rx":0,"rx_bytes":0,"txmsgs":0,"txmsg_bytes":0,"rxmsgs":0,
          "rxmsg_bytes":0,"simple_cnt":0,"metadata_cache_cnt":1,
          "brokers":{
            "b1":{"name":"127.0.0.1:9092/1","nodeid":1,"nodename":"127.0.0.1:9092","source":"learned",
              "state":"UP","stateage":1,"outbuf_cnt":2,"outbuf_msg_cnt":0,"waitresp_cnt":3,
              "waitresp_msg_cnt":0,"tx":10,"txbytes":1000,"txerrs":1,"txretries":4,"txidle":0,
              "req_timeouts":5,"rx":10,"rxbytes":500,"rxerrs":6,"rxcorriderrs":0,"rxpartial":0,
              "rxidle":0,"req":{},"zbuf_grow":0,"buf_grow":0,
              "rtt":{"min":1,"max":9000,"avg":2000,"sum":1,"cnt":10,"stddev":0,"hdrsize":0,
                "p50":1500,"p75":0,"p90":0,"p95":0,"p99":8000,"p99_99":0,"outofrange":0},
              "throttle":{"min":100,"max":250,"avg":175,"sum":350,"cnt":2,"stddev":0,"hdrsize":0,
                "p50":0,"p75":0,"p90":0,"p95":0,"p99":0,"p99_99":0,"outofrange":0},
              "toppars":{}},
            "b2":{"name":"127.0.0.1:9093/2","nodeid":2,"nodename":"127.0.0.1:9093","source":"learned",
              "state":"DOWN","stateage":1,"outbuf_cnt":0,"outbuf_msg_cnt":0,"waitresp_cnt":0,
              "waitresp_msg_cnt":0,"tx":0,"txbytes":0,"txerrs":0,"txretries":0,"txidle":0,
              "req_timeouts":0,"rx":0,"rxbytes":0,"rxerrs":0,"rxcorriderrs":0,"rxpartial":0,
              "rxidle":0,"req":{},"zbuf_grow":0,"buf_grow":0,
              "rtt":{"min":0,"max":0,"avg":0,"sum":0,"cnt":0,"stddev":0,"hdrsize":0,
                "p50":0,"p75":0,"p90":0,"p95":0,"p99":0,"p99_99":0,"outofrange":0},
              "toppars":{}},
            "i":{"name":":0/internal","nodeid":-1,"nodename":"","source":"internal",
              "state":"UP","stateage":1,"outbuf_cnt":0,"outbuf_msg_cnt":0,"waitresp_cnt":0,
              "waitresp_msg_cnt":0,"tx":0,"txbytes":0,"txerrs":0,"txretries":0,"txidle":0,
              "req_timeouts":0,"rx":0,"rxbytes":0,"rxerrs":0,"rxcorriderrs":0,"rxpartial":0,
              "rxidle":0,"req":{},"zbuf_grow":0,"buf_grow":0,"toppars":{}}},
          "topics":{"t":{"topic":"device-data","age":1,"metadata_age":1,
            "batchsize":{"min":0,"max":0,"avg":65000,"sum":0,"cnt":3,"stddev":0,"hdrsize":0,
              "p50":0,"p75":0,"p90":0,"p95":0,"p99":0,"p99_99":0,"outofrange":0},
            "batchcnt":{"min":0,"max":0,"avg":120,"sum":0,"cnt":3,"stddev":0,"hdrsize":0,
              "p50":0,"p75":0,"p90":0,"p95":0,"p99":0,"p99_99":0,"outofrange":0},
            "partitions":{}}}}"#;
        let s: Statistics = serde_json::from_str(json).unwrap();
        let s2 = s.clone();
        let text = render(&[(0, Arc::new(s))]);
        let b1 = "producer=\"0\",broker=\"127.0.0.1:9092/1\"";
        for line in [
            "iotblast_librdkafka_brokers_up{producer=\"0\"} 1".to_string(),
            format!("iotblast_librdkafka_broker_up{{{b1}}} 1"),
            "iotblast_librdkafka_broker_up{producer=\"0\",broker=\"127.0.0.1:9093/2\"} 0".into(),
            format!("iotblast_librdkafka_broker_rtt_p50_seconds{{{b1}}} 0.0015"),
            format!("iotblast_librdkafka_broker_rtt_p99_seconds{{{b1}}} 0.008"),
            format!("iotblast_librdkafka_broker_throttle_max_seconds{{{b1}}} 0.25"),
            format!("iotblast_librdkafka_broker_outbuf_requests{{{b1}}} 2"),
            format!("iotblast_librdkafka_broker_waitresp_requests{{{b1}}} 3"),
            format!("iotblast_librdkafka_broker_tx_bytes_total{{{b1}}} 1000"),
            format!("iotblast_librdkafka_broker_rx_bytes_total{{{b1}}} 500"),
            format!("iotblast_librdkafka_broker_tx_errors_total{{{b1}}} 1"),
            format!("iotblast_librdkafka_broker_rx_errors_total{{{b1}}} 6"),
            format!("iotblast_librdkafka_broker_request_timeouts_total{{{b1}}} 5"),
            format!("iotblast_librdkafka_broker_retries_total{{{b1}}} 4"),
            "iotblast_librdkafka_queue_messages{producer=\"0\"} 42".into(),
            "iotblast_librdkafka_queue_bytes{producer=\"0\"} 4200".into(),
            "iotblast_librdkafka_queue_max_messages{producer=\"0\"} 100000".into(),
            "iotblast_librdkafka_batch_messages{producer=\"0\",topic=\"device-data\"} 120".into(),
            "iotblast_librdkafka_batch_size_bytes{producer=\"0\",topic=\"device-data\"} 65000"
                .into(),
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
        // No connection to librdkafka's internal broker, and no RTT without samples.
        assert!(!text.contains("internal"), "{text}");
        assert!(
            !text.contains("rtt_p50_seconds{producer=\"0\",broker=\"127.0.0.1:9093/2\""),
            "{text}"
        );
        assert!(
            !text.contains("throttle_max_seconds{producer=\"0\",broker=\"127.0.0.1:9093/2\""),
            "{text}"
        );
        // The run's throttle total takes each report's windows once.
        assert_eq!(
            crate::deliver::stats::Throttle::of(&s2),
            crate::deliver::stats::Throttle {
                total_ms: 350,
                max_ms: 250
            }
        );
    }
}
