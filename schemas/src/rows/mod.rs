//! Typed rows of each table and the buffer that turns them into sorted Arrow batches.
//!
//! A row struct's field names are its table's column names; `table::Table::schema` holds
//! the Arrow types. The buffer serializes rows against that schema in strict mode, so a
//! field that drifts from the schema fails the unit tests instead of silently going missing.

pub mod alert;
pub mod audit;
pub mod dead_letter;
pub mod flow;
pub mod runtime;

use std::sync::Arc;

use arrow::array::{
    ArrayRef, Date32Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow::compute::{cast, lexsort_to_indices, take_record_batch, SortColumn};
use arrow::datatypes::DataType;
use arrow::error::ArrowError;
use arrow::json::ReaderBuilder;
use serde::Serialize;

use crate::table::{Table, PARTITION_COLUMN, TIME_COLUMN};

pub use alert::Alert;
pub use audit::AuditEvent;
pub use dead_letter::{DeadLetter, DeadLetterBuffer};
pub use flow::FlowRecord;
pub use runtime::RuntimeEvent;

/// Where one input record came from. `source` is shared by every row of a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provenance {
    /// `kafka:<topic>/<partition>` or `file:<path>`.
    pub source: Arc<str>,
    /// Kafka offset or 1-based line number.
    pub offset: i64,
    /// Microseconds since the epoch, UTC.
    pub ingested_at: i64,
}

/// A row of a table with an event time: the three event tables and `alerts`.
pub trait EventRow: Serialize {
    const TABLE: Table;
    /// Microseconds since the epoch, UTC.
    fn event_time(&self) -> i64;
}

/// Rows of one table waiting to become a record batch.
#[derive(Debug)]
pub struct RowBuffer<R> {
    rows: Vec<R>,
    sources: Vec<Arc<str>>,
    offsets: Vec<i64>,
    ingested: Vec<i64>,
    approx_bytes: usize,
}

impl<R> Default for RowBuffer<R> {
    fn default() -> Self {
        RowBuffer {
            rows: Vec::new(),
            sources: Vec::new(),
            offsets: Vec::new(),
            ingested: Vec::new(),
            approx_bytes: 0,
        }
    }
}

impl<R: EventRow> RowBuffer<R> {
    /// Adds the rows decoded from one input record of `raw_len` bytes.
    pub fn extend(&mut self, rows: Vec<R>, provenance: &Provenance, raw_len: usize) {
        for row in rows {
            self.rows.push(row);
            self.sources.push(provenance.source.clone());
            self.offsets.push(provenance.offset);
            self.ingested.push(provenance.ingested_at);
        }
        self.approx_bytes += raw_len;
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Size of the input these rows came from: a cheap proxy for their memory.
    pub fn approx_bytes(&self) -> usize {
        self.approx_bytes
    }

    /// Builds one batch in the table's schema, sorted by `event_time`, and empties the buffer.
    pub fn take_batch(&mut self) -> Result<Option<RecordBatch>, ArrowError> {
        if self.rows.is_empty() {
            return Ok(None);
        }
        let event_schema = R::TABLE.event_schema();
        // The event schema without event_date: rows carry only event_time; the day is
        // derived here so that the two can never disagree.
        let row_fields: Vec<_> = event_schema
            .fields()
            .iter()
            .filter(|f| f.name() != PARTITION_COLUMN)
            .cloned()
            .collect();
        let row_schema = Arc::new(arrow::datatypes::Schema::new(row_fields));
        let mut decoder = ReaderBuilder::new(row_schema)
            .with_strict_mode(true)
            .build_decoder()?;
        decoder.serialize(&self.rows)?;
        let serialized = decoder
            .flush()?
            .ok_or_else(|| ArrowError::InvalidArgumentError("no rows serialized".into()))?;

        let full = R::TABLE.schema();
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(full.fields().len());
        for field in full.fields() {
            let column = match field.name().as_str() {
                PARTITION_COLUMN => {
                    let times = serialized
                        .column_by_name(TIME_COLUMN)
                        .ok_or_else(|| ArrowError::SchemaError("no event_time".into()))?;
                    utc_days(times)?
                }
                "_source" => Arc::new(StringArray::from_iter_values(
                    self.sources.iter().map(|s| s.as_ref()),
                )) as ArrayRef,
                "_offset" => Arc::new(Int64Array::from(std::mem::take(&mut self.offsets))),
                "_ingested_at" => Arc::new(
                    TimestampMicrosecondArray::from(std::mem::take(&mut self.ingested))
                        .with_timezone("UTC"),
                ),
                name => serialized
                    .column_by_name(name)
                    .ok_or_else(|| ArrowError::SchemaError(format!("column {name} missing")))?
                    .clone(),
            };
            columns.push(column);
        }
        self.rows.clear();
        self.sources.clear();
        self.approx_bytes = 0;
        let batch = RecordBatch::try_new(full, columns)?;
        sort_by_time(&batch).map(Some)
    }
}

/// The UTC day of each microsecond timestamp, as `Date32`.
pub(crate) fn utc_days(times: &ArrayRef) -> Result<ArrayRef, ArrowError> {
    const MICROS_PER_DAY: i64 = 86_400_000_000;
    let micros = cast(times, &DataType::Int64)?;
    let micros = micros
        .as_any()
        .downcast_ref::<Int64Array>()
        .ok_or_else(|| ArrowError::CastError("event_time is not an integer timestamp".into()))?;
    let days: Date32Array = micros
        .iter()
        .map(|t| t.map(|t| t.div_euclid(MICROS_PER_DAY) as i32))
        .collect();
    Ok(Arc::new(days))
}

/// Sorts a batch by `event_time`, then `_offset`, so that equal times keep input order.
pub fn sort_by_time(batch: &RecordBatch) -> Result<RecordBatch, ArrowError> {
    let keys: Vec<SortColumn> = [TIME_COLUMN, "_offset"]
        .iter()
        .filter_map(|name| batch.column_by_name(name))
        .map(|values| SortColumn {
            values: values.clone(),
            options: None,
        })
        .collect();
    if keys.is_empty() {
        return Ok(batch.clone());
    }
    let indices = lexsort_to_indices(&keys, None)?;
    take_record_batch(batch, &indices)
}

/// Serde helper: `Option<String>` fields that are null are skipped rather than written as
/// JSON null, which keeps serialization cheap for sparse rows.
pub(crate) fn is_none<T>(v: &Option<T>) -> bool {
    v.is_none()
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::*;

    pub fn provenance() -> Provenance {
        Provenance {
            source: Arc::from("file:test"),
            offset: 1,
            ingested_at: 1_700_000_000_000_000,
        }
    }
}
