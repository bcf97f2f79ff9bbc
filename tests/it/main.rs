//! iotblast's integration tests: one binary, helpers in `common`.

mod alloc_count;
mod binary;
mod common;
mod config;
mod encoding;
mod engine;
mod golden;
mod tansu;
