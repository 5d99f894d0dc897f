//! What can go wrong with the lake, each in one line that names the table or location.

use deltalake::DeltaTableError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum LakeError {
    #[error("lake location '{0}': {1}")]
    Location(String, String),
    #[error("no lake at {0} (ingest something first, or pass --lake)")]
    NoLake(String),
    #[error("table {table}: {error}")]
    Delta {
        table: String,
        error: Box<DeltaTableError>,
    },
    #[error("table {table}: {message}")]
    Arrow { table: String, message: String },
    #[error("table {table}: the task writing a file ended without finishing it: {message}")]
    WriteTask { table: String, message: String },
    #[error("lake storage at {location}: {message}")]
    Storage { location: String, message: String },
    #[error("lake I/O: {0}")]
    Io(#[from] std::io::Error),
}

impl LakeError {
    pub(crate) fn delta(table: impl ToString, source: DeltaTableError) -> Self {
        LakeError::Delta {
            table: table.to_string(),
            error: Box::new(source),
        }
    }

    pub(crate) fn storage(location: impl ToString, error: impl ToString) -> Self {
        LakeError::Storage {
            location: location.to_string(),
            message: one_line(&error.to_string()),
        }
    }
}

/// object_store's errors nest their sources over several lines; a responder gets one.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
