//! What can stop an ingest (bad records never do: they become dead letters).

use arrow::error::ArrowError;
use thiserror::Error;

use kubetrail_lake::LakeError;

#[derive(Debug, Error)]
pub enum IngestError {
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("building a batch: {0}")]
    Arrow(#[from] ArrowError),
    #[error("decoding stopped: {0}")]
    Worker(String),
    #[error("{0}")]
    Kafka(String),
    /// Another ingester committed one of this ingester's partitions: it lost the partition
    /// (a rebalance it has not seen yet, or a session that expired). Not fatal to a Kafka
    /// ingester, which drops what it had not committed and re-reads from the lake's markers.
    #[error("{0}")]
    Fenced(String),
    /// A Kafka commit that did not land (storage unreachable, a file that failed to write).
    /// Not fatal at once: the ingester drops what it held and reads it again, a few times.
    #[error("{0}")]
    CommitFailed(String),
}
