//! kubetrail-ingest: from sources to the lake.
//!
//! ```text
//! source (file, stdin, gzip) ─► framing ─► decode (schemas) ─► TableBatches ─► TableWriter ─► Delta commit
//!                                                                                  (+ marker: content hash)
//! ```
//! Guarantees: a commit is atomic per table and carries a marker; data whose marker a
//! table already holds is never written again; a record that does not decode becomes a
//! dead letter with its raw bytes; memory is bounded by `BatchLimits`.

pub mod batch;
pub mod file;
pub mod lake;
pub mod source;

pub use batch::{BatchLimits, TableBatches};
pub use file::{ingest_file, FileIngest, IngestError, InputReport};
pub use lake::{CommitMarker, Lake, LakeError, TableWriter};
pub use source::{InputPath, NoProgress, Progress};
