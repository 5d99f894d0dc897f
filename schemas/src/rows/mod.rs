//! Typed rows of each table and the buffer that turns them into sorted Arrow batches.
//!
//! A row struct's field names are its table's column names; `table::Table::schema` holds
//! the Arrow types. Each row type names the column each field fills and its kind
//! (`columns::table_columns!`); rows are appended to those columns as they are added to a
//! [`RowBuffer`]. A unit test checks fields and columns match both ways, so a field that
//! drifts from the schema fails the tests instead of silently going missing.

pub mod alert;
pub mod audit;
mod columns;
pub mod dead_letter;
pub mod flow;
pub mod query_log;
pub mod runtime;

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Date32Array, Int64Array, RecordBatch, StringBuilder,
    TimestampMicrosecondArray, UInt32Array,
};
use arrow::compute::{lexsort_to_indices, take_record_batch, SortColumn};
use arrow::datatypes::{DataType, Int64Type, TimeUnit, TimestampMicrosecondType};
use arrow::error::ArrowError;

use crate::table::{PARTITION_COLUMN, TIME_COLUMN};

pub use alert::{Alert, AlertColumns};
pub use audit::{AuditColumns, AuditEvent};
use columns::{with_room, Expected};
pub use columns::{AppendRow, TableColumns};
pub use dead_letter::{DeadLetter, DeadLetterBuffer};
pub use flow::{FlowColumns, FlowRecord};
pub use runtime::{RuntimeColumns, RuntimeEvent};

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
pub trait EventRow: Sized {
    /// Where rows of this type are appended, column by column.
    type Columns: TableColumns + AppendRow<Self>;
}

/// Rows of one table on their way to a record batch, already in columns.
#[derive(Debug)]
pub struct RowBuffer<C> {
    columns: C,
    rows: usize,
    /// Each source with the number of rows in a row that came from it: rows of one input
    /// share one, and a count per run spares a shared reference count per row.
    sources: Vec<(Arc<str>, usize)>,
    offsets: Vec<i64>,
    ingested: Vec<i64>,
    approx_bytes: usize,
    /// Where the first batch is cut, until its columns have been sized for it.
    first_batch: Option<BatchLimits>,
    /// The text a column may hold before the buffer is full: [`MOST_TEXT_BYTES`], less in
    /// tests.
    most_text: usize,
    /// Whether a column held `most_text` when last measured.
    text_full: bool,
}

/// When a table's rows are cut into a batch: bounded by rows and by input bytes, so memory
/// stays flat whatever the input size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    pub max_rows: usize,
    /// Input bytes behind the buffered rows.
    pub max_bytes: usize,
}

impl BatchLimits {
    /// Whether `rows` rows from `bytes` bytes of input make a batch.
    pub fn reached(self, rows: usize, bytes: usize) -> bool {
        rows > 0 && (rows >= self.max_rows || bytes >= self.max_bytes)
    }

    /// The largest `max_bytes` a setting may ask for: a table's batch is held in memory.
    pub const MOST_BYTES: usize = 1 << 30;
    /// The largest record a setting may let in. A buffer is cut once a column holds a
    /// GiB of text, measured at most 1,024 rows or a MiB of input late: that and one
    /// record more keep every text column below the 2 GiB its 32-bit offsets reach.
    pub const MOST_RECORD_BYTES: usize = 512 << 20;
}

/// The text one column of a buffer may hold before the buffer is full, whatever the
/// limits say: rows can hold more text than their input (a cluster name from the
/// settings on every row).
const MOST_TEXT_BYTES: usize = 1 << 30;

impl Default for BatchLimits {
    /// 250k rows or 128 MiB of input: files of tens of MB after zstd (good Parquet scan
    /// sizes), and a few hundred MB of memory at most per table while decoding.
    fn default() -> Self {
        BatchLimits {
            max_rows: 250_000,
            max_bytes: 128 << 20,
        }
    }
}

/// Rows of a first batch after which its columns are sized for the whole batch: enough for
/// their bytes per row to predict the rest, few enough that moving them costs nothing.
const SAMPLE_ROWS: usize = 4096;

impl<C: Default> Default for RowBuffer<C> {
    fn default() -> Self {
        RowBuffer {
            columns: C::default(),
            rows: 0,
            sources: Vec::new(),
            offsets: Vec::new(),
            ingested: Vec::new(),
            approx_bytes: 0,
            first_batch: None,
            most_text: MOST_TEXT_BYTES,
            text_full: false,
        }
    }
}

impl<C: TableColumns> RowBuffer<C> {
    /// A buffer whose batches are cut at `limits`. Its first batch's columns are sized
    /// from its first rows: grown by doubling instead, from empty to a batch of 250k audit
    /// rows, they were copied about twice over into memory faulted in for the copy
    /// (1.4–1.7 % of ingest's instructions for an input smaller than one batch).
    pub fn new(limits: BatchLimits) -> Self {
        RowBuffer {
            first_batch: Some(limits),
            ..RowBuffer::default()
        }
    }

    /// Adds the rows decoded from one input record of `raw_len` bytes.
    // Borrowed: moved out of their vector one by one, every audit event was copied once
    // more (callgrind: 0.5 % of ingest's instructions).
    pub fn extend<R>(&mut self, rows: &[R], provenance: &Provenance, raw_len: usize)
    where
        C: AppendRow<R>,
    {
        let before = self.rows;
        for row in rows {
            self.columns.append(row);
            self.rows += 1;
        }
        let n = self.rows - before;
        match self.sources.last_mut() {
            Some((source, count)) if Arc::ptr_eq(source, &provenance.source) => *count += n,
            _ if n > 0 => self.sources.push((provenance.source.clone(), n)),
            _ => {}
        }
        self.offsets
            .extend(std::iter::repeat_n(provenance.offset, n));
        self.ingested
            .extend(std::iter::repeat_n(provenance.ingested_at, n));
        let bytes_before = self.approx_bytes;
        self.approx_bytes += raw_len;
        // Measured after each 1024 rows and each MiB of input, not after every record (the
        // columns' lengths for every record cost 0.3 % of ingest's instructions): no more
        // than that and one record's rows come in between.
        if before >> 10 != self.rows >> 10 || bytes_before >> 20 != self.approx_bytes >> 20 {
            self.text_full = self.columns.largest_text() >= self.most_text;
        }
        if self.rows >= SAMPLE_ROWS {
            if let Some(limits) = self.first_batch.take() {
                self.make_room(limits);
            }
        }
    }

    /// Sizes the columns for the rows the batch is expected to reach: `max_rows`, or
    /// fewer when the input bytes per row so far say `max_bytes` comes first.
    fn make_room(&mut self, limits: BatchLimits) {
        let per_row = self.approx_bytes.div_ceil(self.rows).max(1);
        let rows = limits.max_rows.min(limits.max_bytes / per_row);
        if rows <= self.rows {
            return;
        }
        let expected = Expected {
            sample: self.rows,
            rows,
        };
        self.columns.make_room(expected);
        self.offsets.reserve(rows - self.rows);
        self.ingested.reserve(rows - self.rows);
    }

    pub fn len(&self) -> usize {
        self.rows
    }

    /// Whether the rows in so far make a batch: they reached a limit, or a column holds a
    /// GiB of text.
    pub fn is_full(&self, limits: BatchLimits) -> bool {
        limits.reached(self.rows, self.approx_bytes) || self.text_full
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Builds one batch in the table's schema, sorted by `event_time`, and empties the buffer.
    pub fn take_batch(&mut self) -> Result<Option<RecordBatch>, ArrowError> {
        if self.rows == 0 {
            return Ok(None);
        }
        let full = C::TABLE.schema();
        let next = with_room(self.rows);
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(full.fields().len());
        let mut day_at = None;
        for field in full.fields() {
            let column = match field.name().as_str() {
                // Filled in from event_time below, so that the two can never disagree.
                PARTITION_COLUMN => {
                    day_at = Some(columns.len());
                    arrow::array::new_null_array(&DataType::Date32, 0)
                }
                "_source" => {
                    let bytes = self.sources.iter().map(|(s, n)| s.len() * n).sum();
                    let mut b = StringBuilder::with_capacity(self.rows, bytes);
                    for (source, n) in &self.sources {
                        (0..*n).for_each(|_| b.append_value(source));
                    }
                    Arc::new(b.finish()) as ArrayRef
                }
                "_offset" => Arc::new(Int64Array::from(std::mem::replace(
                    &mut self.offsets,
                    Vec::with_capacity(next),
                ))),
                "_ingested_at" => Arc::new(
                    TimestampMicrosecondArray::from(std::mem::replace(
                        &mut self.ingested,
                        Vec::with_capacity(next),
                    ))
                    .with_timezone("UTC"),
                ),
                name => self.columns.finish(name).ok_or_else(|| {
                    ArrowError::SchemaError(format!("{} rows have no {name}", C::TABLE))
                })?,
            };
            columns.push(column);
        }
        if let Some(at) = day_at {
            let times = full
                .index_of(TIME_COLUMN)
                .map(|i| columns[i].as_primitive::<TimestampMicrosecondType>())?;
            columns[at] = utc_days(times.values().iter().copied());
        }
        self.rows = 0;
        self.sources.clear();
        self.approx_bytes = 0;
        self.text_full = false;
        let batch = RecordBatch::try_new(full, columns)?;
        sort_by_time(&batch).map(Some)
    }
}

/// The UTC day of each microsecond timestamp, as `Date32`.
pub(crate) fn utc_days(micros: impl Iterator<Item = i64>) -> ArrayRef {
    const MICROS_PER_DAY: i64 = 86_400_000_000;
    Arc::new(Date32Array::from_iter_values(
        micros.map(|t| t.div_euclid(MICROS_PER_DAY) as i32),
    ))
}

/// Sorts a batch by `event_time`, then `_offset`, so that equal times keep input order.
pub fn sort_by_time(batch: &RecordBatch) -> Result<RecordBatch, ArrowError> {
    let times = batch.column_by_name(TIME_COLUMN);
    let offsets = batch.column_by_name("_offset");
    let indices = match (times.and_then(plain_i64s), offsets.map(plain_i64s)) {
        // The usual case, compared as plain integers: lexsort's comparators, dynamic per
        // column, cost several times more per comparison, and a Kafka worker's batch (runs
        // of many partitions, each in time order) always needs sorting.
        (Some(times), None) => time_order(times, None),
        (Some(times), Some(Some(offsets))) => time_order(times, Some(offsets)),
        (None, None) => return Ok(batch.clone()),
        // Nulls, or a column of another type: arrow orders them.
        _ => {
            let keys: Vec<SortColumn> = [times, offsets]
                .into_iter()
                .flatten()
                .map(|values| SortColumn {
                    values: values.clone(),
                    options: None,
                })
                .collect();
            Some(lexsort_to_indices(&keys, None)?)
        }
    };
    match indices {
        Some(indices) => take_record_batch(batch, &indices),
        // Inputs mostly arrive in time order (a file, or a worker's batch of one
        // partition's chunks): checking costs a pass over two columns, sorting a copy of
        // every column.
        None => Ok(batch.clone()),
    }
}

/// The row order by time, then offset, then position; `None` when the rows are in it.
fn time_order(times: &[i64], offsets: Option<&[i64]>) -> Option<UInt32Array> {
    let key = |i: usize| (times[i], offsets.map_or(0, |o| o[i]));
    if (1..times.len()).all(|i| key(i - 1) <= key(i)) {
        return None;
    }
    let mut order: Vec<(i64, i64, u32)> = (0..times.len())
        .map(|i| (times[i], offsets.map_or(0, |o| o[i]), i as u32))
        .collect();
    order.sort_unstable();
    Some(order.into_iter().map(|(_, _, i)| i).collect())
}

/// The values of a microsecond time or an `Int64` column without nulls.
fn plain_i64s(column: &ArrayRef) -> Option<&[i64]> {
    if column.null_count() > 0 {
        return None;
    }
    match column.data_type() {
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            Some(column.as_primitive::<TimestampMicrosecondType>().values())
        }
        DataType::Int64 => Some(column.as_primitive::<Int64Type>().values()),
        _ => None,
    }
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::fmt::Debug;

    use super::*;

    /// The field names of a row, from its derived `Debug` (which lists every field).
    fn field_names(row: &impl Debug) -> BTreeSet<String> {
        let text = format!("{row:?}");
        let inner = &text[text.find('{').unwrap() + 1..text.rfind('}').unwrap()];
        inner
            .split(", ")
            .map(|f| f.split(':').next().unwrap().trim().to_owned())
            .collect()
    }

    /// A field added to a row without its column, or a column without its field, fails here.
    fn every_field_fills_its_column<R: EventRow + Debug>(row: R) {
        let fields = field_names(&row);
        let table = <R::Columns as TableColumns>::TABLE;
        let columns: BTreeSet<String> = table
            .event_schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .filter(|n| n != PARTITION_COLUMN)
            .collect();
        assert_eq!(fields, columns, "{table}");
        let mut built = R::Columns::default();
        built.append(&row);
        for name in &fields {
            let column = built
                .finish(name)
                .unwrap_or_else(|| panic!("no column {name}"));
            assert_eq!(column.len(), 1, "{name}");
            assert_eq!(
                column.data_type(),
                table.schema().field_with_name(name).unwrap().data_type()
            );
        }
        assert!(built.finish("no_such_column").is_none());
    }

    #[test]
    fn every_row_field_is_a_column_and_every_column_a_field() {
        every_field_fills_its_column(AuditEvent::default());
        every_field_fills_its_column(FlowRecord::default());
        every_field_fills_its_column(RuntimeEvent::default());
        every_field_fills_its_column(Alert {
            event_time: 0,
            alert_id: "a".into(),
            rule_id: "r".into(),
            title: "t".into(),
            severity: "high".into(),
            mitre: vec![],
            tags: vec![],
            entity: "e".into(),
            entity_values: vec![],
            first_seen: 0,
            last_seen: 0,
            event_count: 1,
            summary: "s".into(),
            evidence: vec![],
            window_start: 0,
            window_end: 0,
            detected_at: 0,
        });
    }

    #[test]
    fn a_batch_holds_every_value_of_its_rows_in_the_schema_types() {
        let mut buffer = RowBuffer::<AuditColumns>::default();
        let rows = vec![
            AuditEvent {
                event_time: 86_400_000_001,
                namespace: Some("shop".into()),
                user_groups: vec!["a".into(), "b".into()],
                response_code: Some(403),
                audit_format: "k8s".into(),
                ..AuditEvent::default()
            },
            AuditEvent {
                event_time: 5,
                stage_time: Some(7),
                audit_format: "eks".into(),
                ..AuditEvent::default()
            },
        ];
        buffer.extend(&rows, &test_support::provenance(), 100);
        let batch = buffer.take_batch().unwrap().unwrap();
        assert_eq!(batch.schema(), crate::Table::K8sAudit.schema());
        // Sorted by time; the day derived from it.
        let days = batch.column_by_name(PARTITION_COLUMN).unwrap();
        let days = days.as_any().downcast_ref::<Date32Array>().unwrap();
        assert_eq!(days.values(), &[0, 1]);
        let groups = batch.column_by_name("user_groups").unwrap();
        let groups = groups
            .as_any()
            .downcast_ref::<arrow::array::ListArray>()
            .unwrap();
        assert_eq!((groups.value_length(0), groups.value_length(1)), (0, 2));
        assert_eq!(batch.column_by_name("namespace").unwrap().null_count(), 1);
        assert!(buffer.take_batch().unwrap().is_none());
    }

    #[test]
    fn batches_come_out_in_time_then_offset_order_whether_or_not_they_came_in_it() {
        let batch = |times: &[i64], offsets: &[Option<i64>]| {
            let schema = Arc::new(arrow::datatypes::Schema::new(vec![
                arrow::datatypes::Field::new(
                    TIME_COLUMN,
                    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                    false,
                ),
                arrow::datatypes::Field::new("_offset", DataType::Int64, true),
            ]));
            let times = TimestampMicrosecondArray::from(times.to_vec()).with_timezone("UTC");
            let offsets = Int64Array::from(offsets.to_vec());
            RecordBatch::try_new(schema, vec![Arc::new(times), Arc::new(offsets)]).unwrap()
        };
        let order = |b: &RecordBatch| -> Vec<(i64, Option<i64>)> {
            let t = b.column(0).as_primitive::<TimestampMicrosecondType>();
            let o = b.column(1).as_primitive::<Int64Type>();
            (0..b.num_rows())
                .map(|i| (t.value(i), o.is_valid(i).then(|| o.value(i))))
                .collect()
        };
        // In order already (ties broken by offset): kept as it is.
        let sorted = batch(&[1, 2, 2, 3], &[Some(9), Some(1), Some(2), Some(0)]);
        assert_eq!(order(&sort_by_time(&sorted).unwrap()), order(&sorted));
        // A tie out of offset order, a time out of order, a null offset: each sorted.
        for (times, offsets) in [
            (&[1, 2, 2][..], &[Some(0), Some(5), Some(4)][..]),
            (&[3, 1, 2][..], &[Some(0), Some(1), Some(2)][..]),
            (&[1, 1, 2][..], &[Some(1), None, Some(2)][..]),
            // Two partitions' runs, each in order, as a Kafka worker's batch holds them.
            (
                &[10, 20, 30, 5, 20, 25][..],
                &[Some(0), Some(1), Some(2), Some(0), Some(1), Some(2)][..],
            ),
        ] {
            let out = order(&sort_by_time(&batch(times, offsets)).unwrap());
            let mut expected = out.clone();
            expected.sort(); // an absent offset first, as the sort puts nulls

            assert_eq!(out, expected, "{times:?} {offsets:?}");
            assert_eq!(out.len(), times.len());
        }
    }

    #[test]
    fn a_second_batch_holds_only_its_own_rows() {
        let mut buffer = RowBuffer::<AuditColumns>::default();
        let row = |t: i64, groups: &[&'static str]| AuditEvent {
            event_time: t,
            verb: Some(format!("v{t}").into()),
            user_groups: groups.iter().map(|g| (*g).into()).collect(),
            response_code: Some(t as i32),
            audit_format: "k8s".into(),
            ..AuditEvent::default()
        };
        let provenance = test_support::provenance();
        buffer.extend(&[row(1, &["a", "b"]), row(2, &[])], &provenance, 10);
        let first = buffer.take_batch().unwrap().unwrap();
        buffer.extend(&[row(3, &["c"])], &provenance, 10);
        let second = buffer.take_batch().unwrap().unwrap();
        let verbs = |b: &RecordBatch| -> Vec<String> {
            let v = b.column_by_name("verb").unwrap().as_string::<i32>();
            v.iter().map(|s| s.unwrap().to_owned()).collect()
        };
        assert_eq!(verbs(&first), ["v1", "v2"]);
        assert_eq!(verbs(&second), ["v3"]);
        let groups = second
            .column_by_name("user_groups")
            .unwrap()
            .as_list::<i32>();
        assert_eq!(groups.value(0).as_string::<i32>().value(0), "c");
        assert_eq!(groups.value_length(0), 1);
        let codes = second.column_by_name("response_code").unwrap();
        assert_eq!(
            codes.as_primitive::<arrow::datatypes::Int32Type>().values(),
            &[3]
        );
        assert_eq!(second.num_rows(), 1);
    }

    /// A first batch is sized once its first rows are in, for `max_rows` or for the rows
    /// `max_bytes` of input make at the input bytes per row seen so far, and holds the
    /// same values as a buffer that grew as they came.
    #[test]
    fn a_first_batch_is_sized_from_its_first_rows_and_keeps_every_value() {
        let row = |i: usize| AuditEvent {
            event_time: i as i64,
            user_name: Some(format!("system:serviceaccount:ns-{i}:sa").into()),
            pod_ip: i.is_multiple_of(3).then(|| "10.0.0.1".into()),
            user_groups: vec!["system:authenticated".into(); i % 3],
            response_code: i.is_multiple_of(2).then_some(200),
            audit_format: "k8s".into(),
            ..AuditEvent::default()
        };
        let provenance = test_support::provenance();
        let rows = 3 * SAMPLE_ROWS;
        let by_rows = BatchLimits {
            max_rows: rows,
            max_bytes: usize::MAX,
        };
        let by_bytes = BatchLimits {
            max_rows: usize::MAX,
            max_bytes: 2 * SAMPLE_ROWS * 500,
        };
        let mut grown = RowBuffer::<AuditColumns>::default();
        let mut sized = RowBuffer::<AuditColumns>::new(by_rows);
        let mut sized_by_bytes = RowBuffer::<AuditColumns>::new(by_bytes);
        for i in 0..rows {
            for buffer in [&mut grown, &mut sized, &mut sized_by_bytes] {
                buffer.extend(&[row(i)], &provenance, 500);
            }
            if i + 1 == SAMPLE_ROWS {
                assert!(sized.offsets.capacity() >= rows);
                let room = sized_by_bytes.offsets.capacity();
                assert!((2 * SAMPLE_ROWS..rows).contains(&room), "{room}");
            }
        }
        let grown = grown.take_batch().unwrap().unwrap();
        assert_eq!(sized.take_batch().unwrap().unwrap(), grown);
        assert_eq!(sized_by_bytes.take_batch().unwrap().unwrap(), grown);
    }

    /// A buffer is full at its row or byte limit, or once a column's text reaches what
    /// its offsets allow, however little input that text came from (a long cluster name
    /// from the settings on every row of tiny records).
    #[test]
    fn a_buffer_is_full_at_a_limit_or_when_its_text_outgrows_its_input() {
        let provenance = test_support::provenance();
        let row = |cluster: &str| AuditEvent {
            cluster: Some(cluster.to_owned().into()),
            audit_format: "k8s".into(),
            ..AuditEvent::default()
        };
        let limits = BatchLimits {
            max_rows: 3000,
            max_bytes: 3 << 20,
        };
        let mut by_rows = RowBuffer::<AuditColumns>::new(limits);
        let mut by_bytes = RowBuffer::<AuditColumns>::new(limits);
        assert!(!by_rows.is_full(limits), "empty");
        for _ in 0..2999 {
            by_rows.extend(&[row("c")], &provenance, 10);
        }
        by_bytes.extend(&[row("c")], &provenance, (3 << 20) - 1);
        assert!(!by_rows.is_full(limits) && !by_bytes.is_full(limits));
        by_rows.extend(&[row("c")], &provenance, 10);
        by_bytes.extend(&[row("c")], &provenance, 1);
        assert!(by_rows.is_full(limits) && by_bytes.is_full(limits));

        let unlimited = BatchLimits {
            max_rows: usize::MAX,
            max_bytes: usize::MAX,
        };
        let mut text = RowBuffer::<AuditColumns>::new(unlimited);
        text.most_text = 100 << 10;
        let cluster = "c".repeat(100);
        // 1024 rows of 10 bytes each bring 100 KiB of cluster names: full once measured,
        // by the 1024th row at the latest; emptied, it starts again.
        let mut rows = 0;
        while !text.is_full(unlimited) {
            text.extend(&[row(&cluster)], &provenance, 10);
            rows += 1;
            assert!(rows <= 1024, "never full");
        }
        assert_eq!(text.take_batch().unwrap().unwrap().num_rows(), rows);
        assert!(!text.is_full(unlimited));
    }

    #[test]
    fn each_row_keeps_the_source_and_offset_of_its_record() {
        let mut buffer = RowBuffer::<AuditColumns>::default();
        let row = |t: i64| AuditEvent {
            event_time: t,
            audit_format: "k8s".into(),
            ..AuditEvent::default()
        };
        let from = |source: &str, offset: i64| Provenance {
            source: Arc::from(source),
            offset,
            ingested_at: 0,
        };
        let a = from("file:a", 1);
        buffer.extend(&[row(1), row(2)], &a, 10);
        buffer.extend(&[], &from("file:none", 2), 10);
        buffer.extend(
            &[row(3)],
            &Provenance {
                offset: 3,
                ..a.clone()
            },
            10,
        );
        buffer.extend(&[row(4)], &from("kafka:t/0", 7), 10);
        buffer.extend(&[row(5)], &from("file:a", 4), 10);
        let batch = buffer.take_batch().unwrap().unwrap();
        let sources = batch.column_by_name("_source").unwrap().as_string::<i32>();
        let offsets = batch
            .column_by_name("_offset")
            .unwrap()
            .as_primitive::<Int64Type>();
        let got: Vec<(&str, i64)> = (0..batch.num_rows())
            .map(|i| (sources.value(i), offsets.value(i)))
            .collect();
        assert_eq!(
            got,
            [
                ("file:a", 1),
                ("file:a", 1),
                ("file:a", 3),
                ("kafka:t/0", 7),
                ("file:a", 4)
            ]
        );
        assert_eq!(buffer.approx_bytes, 0);
        assert!(buffer.take_batch().unwrap().is_none());
    }
}
