//! Asks the brokers what this principal may do with a topic (KIP-430's authorized
//! operations, through librdkafka's DescribeTopics), so that credentials without WRITE
//! fail at start-up with one clear error instead of as one failed message after
//! another for the whole run. rust-rdkafka does not wrap DescribeTopics, hence the FFI.
//!
//! The check only ever refuses on a clear answer: a broker too old to say (before
//! Kafka 2.3), an error or a timeout leaves the run to go ahead as before.

use std::ffi::{CStr, CString};
use std::time::Duration;

use rdkafka::bindings as rd;
use rdkafka::producer::{BaseProducer, Producer};

use crate::deliver::kafka::DeliveryContext;

/// What the brokers said this principal may do with a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operations {
    /// The brokers gave no answer that can be judged.
    Unknown,
    /// The operations they listed, by Kafka's names (`READ`, `WRITE`, ...).
    Listed(Vec<String>),
}

/// Whether operations the brokers listed include writing.
pub fn allows_write(ops: &[String]) -> bool {
    ops.iter().any(|o| o == "WRITE" || o == "ALL")
}

/// The operations `producer`'s principal may perform on `topic`, asked within `timeout`
/// of the cluster whose metadata listed `brokers` (their ids).
pub fn on_topic(
    producer: &BaseProducer<DeliveryContext>,
    topic: &str,
    timeout: Duration,
    brokers: &[i32],
) -> Operations {
    let Ok(name) = CString::new(topic) else {
        return Operations::Unknown;
    };
    let rk = producer.client().native_ptr();
    // librdkafka sends DescribeTopics to the controller named in the metadata. A
    // cluster that names none, or no broker it listed (librdkafka's own mock names 0,
    // its brokers count from 1), would hold the request for the whole timeout.
    // SAFETY: a live client handle; a zero timeout only reads the cached metadata.
    let controller = unsafe { rd::rd_kafka_controllerid(rk, 0) };
    if !brokers.contains(&controller) {
        return Operations::Unknown;
    }
    let ms = timeout.as_millis().clamp(1, i32::MAX as u128) as i32;
    // SAFETY: every handle is created here, used while live, and destroyed once below;
    // the result event owns the descriptions read from it until it is destroyed.
    unsafe {
        let options = rd::rd_kafka_AdminOptions_new(
            rk,
            rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_DESCRIBETOPICS,
        );
        let mut errstr = [0 as std::os::raw::c_char; 256];
        rd::rd_kafka_AdminOptions_set_request_timeout(
            options,
            ms,
            errstr.as_mut_ptr(),
            errstr.len(),
        );
        let error = rd::rd_kafka_AdminOptions_set_include_authorized_operations(options, 1);
        if !error.is_null() {
            rd::rd_kafka_error_destroy(error);
        }
        let mut names = [name.as_ptr()];
        let topics = rd::rd_kafka_TopicCollection_of_topic_names(names.as_mut_ptr(), 1);
        let queue = rd::rd_kafka_queue_new(rk);
        rd::rd_kafka_DescribeTopics(rk, topics, options, queue);
        // The request's own timeout ends it; the margin only covers the hand-back.
        let event = rd::rd_kafka_queue_poll(queue, ms.saturating_add(1000));
        let answer = if event.is_null() {
            Operations::Unknown
        } else {
            let answer = read(event);
            rd::rd_kafka_event_destroy(event);
            answer
        };
        rd::rd_kafka_queue_destroy(queue);
        rd::rd_kafka_TopicCollection_destroy(topics);
        rd::rd_kafka_AdminOptions_destroy(options);
        answer
    }
}

/// The one topic's operations from a DescribeTopics result event.
///
/// # Safety
/// `event` is a live event from `rd_kafka_DescribeTopics`.
unsafe fn read(event: *mut rd::rd_kafka_event_t) -> Operations {
    // SAFETY: as the caller promises; the pointers read live as long as the event.
    unsafe {
        if rd::rd_kafka_event_error(event) != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
            return Operations::Unknown;
        }
        let result = rd::rd_kafka_event_DescribeTopics_result(event);
        if result.is_null() {
            return Operations::Unknown;
        }
        let mut n = 0;
        let topics = rd::rd_kafka_DescribeTopics_result_topics(result, &mut n);
        if topics.is_null() || n != 1 {
            return Operations::Unknown;
        }
        let topic = *topics;
        if !rd::rd_kafka_TopicDescription_error(topic).is_null() {
            return Operations::Unknown;
        }
        let mut n = 0;
        let ops = rd::rd_kafka_TopicDescription_authorized_operations(topic, &mut n);
        // A broker that does not report operations sends none (null).
        if ops.is_null() || n == 0 {
            return Operations::Unknown;
        }
        let names = std::slice::from_raw_parts(ops, n)
            .iter()
            .map(|&op| {
                let name = rd::rd_kafka_AclOperation_name(op);
                match name.is_null() {
                    true => "UNKNOWN".to_owned(),
                    false => CStr::from_ptr(name).to_string_lossy().into_owned(),
                }
            })
            .collect();
        Operations::Listed(names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_or_all_allows_writing() {
        let ops = |ops: &[&str]| ops.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(!allows_write(&ops(&["READ", "DESCRIBE"])));
        assert!(allows_write(&ops(&["READ", "WRITE", "DESCRIBE"])));
        assert!(allows_write(&ops(&["ALL"])));
    }
}
