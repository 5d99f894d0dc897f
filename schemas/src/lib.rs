//! kubetrail-schemas: the Arrow schema of every lake table and one decoder per source
//! format. Pure functions: no I/O, no async, no knowledge of Kafka.
//!
//! ```text
//! bytes of one record ─► Decoder (one per SourceFormat) ─► typed rows ─► RowBuffer ─► RecordBatch
//!                                     └─► Rejected (raw bytes + one-line reason) ─► DeadLetterBuffer
//! ```

pub mod decode;
pub mod format;
pub mod redact;
pub mod rows;
pub mod table;
pub mod time;

pub use decode::{DecodeError, DecodeOptions, Decoded, Decoder, Output, Rejected};
pub use format::SourceFormat;
pub use redact::{EnvValues, ObjectKind, Redactor};
pub use rows::{
    AuditEvent, BatchLimits, DeadLetter, DeadLetterBuffer, EventRow, FlowRecord, Provenance,
    RowBuffer, RuntimeEvent,
};
pub use table::Table;
