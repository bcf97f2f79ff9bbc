//! Generator threads: each owns a contiguous slice of the fleet (`topology`), paces
//! itself (`pacer`), steps its devices and encodes their readings and alerts into
//! batches (`worker`, `encoder`, which writes JSON through `text` or, through `protobuf`,
//! Protobuf), and counts what it made (`stats`). `live` holds the settings a reload may
//! change while the workers run.

pub mod encoder;
pub mod live;
pub mod pacer;
pub mod protobuf;
pub mod stats;
pub mod text;
pub mod topology;
pub mod worker;
