//! kubetrail-query: SQL over the lake with DataFusion. Reads the lake; never writes the
//! tables ingestion owns.
//!
//! ```text
//! lake (Delta tables) ─► LakeSession (tables + `events` view + UDFs) ─► sql / shell / tables
//!                                                                   ├─► output: table, csv, json, parquet
//!                                                                   └─► timeline: one entity across the streams
//! ```

pub mod cluster;
pub mod k8s_object;
pub mod ocsf;
pub mod output;
pub mod query_log;
mod read_only;
mod scan_filters;
pub mod server;
pub mod session;
pub mod shell;
pub mod summary;
pub mod timeline;
pub mod udf;
mod views;
pub mod window;

pub use output::{write_batches, OutputFormat};
pub use session::{LakeSession, QueryError, TableInfo};
pub use summary::{summarize, TableSummary};
pub use window::Window;
