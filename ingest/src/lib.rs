//! kubetrail-ingest: from sources to the lake.
//!
//! ```text
//! source (file, stdin, gzip, Kafka) ─► framing ─► decode (schemas) ─► TableBatches ─► lake::TableWriter ─► Delta commit
//!                                                         (+ markers: content hash, or last offset per partition)
//! ```
//! Guarantees: a commit is atomic per table and carries a marker; data whose marker a
//! table already holds is never written again; a record that does not decode becomes a
//! dead letter with its raw bytes; memory is bounded by `BatchLimits`.

pub mod batch;
mod decode_pool;
pub mod error;
pub mod file;
pub mod kafka;
pub mod metrics;
mod records;
pub mod source;

pub use batch::{BatchLimits, TableBatches};
pub use error::IngestError;
pub use file::{ingest_file, ingest_one_file, FileIngest, FileIngester, InputReport};
pub use kafka::{ingest_kafka, KafkaIngest, KafkaReport, TopicSpec};
pub use metrics::IngestMetrics;
pub use source::{InputPath, NoProgress, Progress};
