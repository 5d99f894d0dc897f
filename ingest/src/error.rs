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
}
