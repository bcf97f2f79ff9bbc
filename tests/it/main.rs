//! iotblast's integration tests: one binary, one file per guarded behaviour, helpers in
//! `common`.

mod alloc_count;
mod bad_input;
mod cli_tools;
mod common;
mod config;
mod delivery;
mod determinism;
mod distributed;
mod encoding;
mod engine;
mod faults;
mod golden;
mod interval_log;
mod latency;
mod metrics;
mod pacing;
mod progress_bar;
mod secrets;
mod security;
mod shutdown;
mod statistics;
mod stdout_sink;
mod structure;
mod tansu;
mod verify;
