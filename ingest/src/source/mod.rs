//! Where records come from: files and stdin (plain or gzip), split into records.

pub mod framing;
pub mod input;

pub use framing::{Record, RecordHead, RecordReader, DEFAULT_MAX_RECORD_BYTES};
pub use input::{InputPath, NoProgress, Progress};
