//! kubetrail-lake: the Delta tables of the lake, on a local disk or object storage.
//!
//! ```text
//! Lake::parse(location, storage options)      the one place a lake location is read
//!   ├─ tables      open, create (schema, event_date partitions), add newer columns
//!   ├─ TableWriter stage Parquet files ─► one Delta commit with CommitMarkers (exactly once)
//!   ├─ merge_rows  rows that replace earlier versions of themselves (alerts)
//!   ├─ maintenance optimize, vacuum, retention
//!   ├─ custody     every commit sealed with a manifest chained to the entry before; verify
//!   └─ ReadCache   data-file reads on object storage kept in memory (files never change)
//! ```
//! Guarantees: a commit is atomic per table and carries its markers; commits from several
//! processes go through the store's put-if-absent (a local rename-if-absent, or S3's
//! `If-None-Match`), and one that loses the race is retried by delta-rs against the new
//! version, with a conflict if another commit moved one of its markers.

pub mod custody;
mod error;
mod files;
mod identity;
mod location;
pub mod maintenance;
mod merge;
pub mod metrics_endpoint;
mod read_cache;
mod redaction_key;
mod store_forwarding;
mod table_writer;
mod tables;

pub use custody::Origin;
pub use error::LakeError;
pub use location::{Lake, StorageOptions};
pub use merge::{merge_rows, MergeCounts};
pub use table_writer::{CommitMarker, TableWriter};
