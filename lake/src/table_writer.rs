//! Writes sorted batches of one table as Parquet files and commits them in one Delta
//! commit, together with the markers that make the commit happen at most once.

use std::collections::VecDeque;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Date32Type, Field};
use delta_kernel::expressions::Scalar;
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties, TransactionError};
use deltalake::kernel::{Action, Add, Transaction};
use deltalake::logstore::object_store::path::Path;
use deltalake::logstore::object_store::ObjectStoreExt;
use deltalake::parquet::basic::{Compression, Encoding, ZstdLevel};
use deltalake::parquet::file::metadata::SortingColumn;
use deltalake::parquet::file::properties::{EnabledStatistics, WriterProperties};
use deltalake::parquet::schema::types::ColumnPath;
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::table::state::DeltaTableState;
use deltalake::writer::{DeltaWriter, RecordBatchWriter, WriteMode};
use deltalake::{DeltaTable, DeltaTableError};
use indexmap::IndexMap;
use kubetrail_schemas::table::{OFFSET_COLUMN, PARTITION_COLUMN};
use kubetrail_schemas::Table;
use tokio::task::JoinHandle;

use crate::custody::{origin_metadata, Origin};
use crate::tables::refresh;
use crate::{Lake, LakeError};

/// An application transaction recorded in the same commit as the data: a file's content
/// hash, or a Kafka partition's last offset. Its presence in a table means the data it
/// stands for is already there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitMarker {
    pub app_id: String,
    pub version: i64,
}

/// Files of one table written but not yet committed: invisible to readers until
/// [`TableWriter::commit`]; left behind for `vacuum` if the process dies first.
///
/// Each staged batch is encoded into its file on a blocking thread of its own, up to one
/// per core at a time, so that batches arriving together (every decoding worker's last batch of an
/// input, or several workers' at once on a machine with many cores) are encoded on every
/// core instead of one after the other. Their files are committed in the order the batches
/// were staged, and the commit waits for all of them.
pub struct TableWriter {
    table: Table,
    delta: DeltaTable,
    properties: WriterProperties,
    /// Batches being written, oldest first.
    writing: VecDeque<JoinHandle<Result<Vec<Add>, DeltaTableError>>>,
    most_writing: usize,
    staged: Vec<Add>,
    staged_rows: usize,
    known: KnownMarkers,
}

/// Marker versions as of one table version, read from the table or written by this writer.
///
/// delta-rs looks an app id up by replaying the log (newest commit first, down to the
/// checkpoint for an id the table does not hold), once per id. A Kafka ingester checks every
/// partition's marker before each commit: over 236 partitions that was hundreds of replays per
/// commit, most of a commit's CPU. While the table stays at the version they were read at, or
/// at the one this writer's own commit made on top of it, they are still the table's.
#[derive(Debug, Default)]
struct KnownMarkers {
    at: Option<u64>,
    versions: std::collections::HashMap<String, Option<i64>>,
}

impl TableWriter {
    pub async fn open(lake: &Lake, table: Table) -> Result<TableWriter, LakeError> {
        let delta = lake.open_or_create(table).await?;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        // On object storage a file's upload holds its slot while the store answers:
        // twice as many slots keep every core encoding meanwhile.
        let most_writing = match lake.local_dir() {
            Some(_) => cores,
            None => 2 * cores,
        };
        Ok(TableWriter {
            table,
            delta,
            properties: writer_properties(table),
            writing: VecDeque::new(),
            most_writing,
            staged: Vec::new(),
            staged_rows: 0,
            known: KnownMarkers::default(),
        })
    }

    pub fn table(&self) -> Table {
        self.table
    }

    /// Starts writing one batch (already sorted by time) as one file per `event_date`;
    /// waits first for the oldest batch being written when as many are as there are cores.
    /// An error may be an earlier batch's: either way the staged set is incomplete, and
    /// the caller must not commit it.
    pub async fn stage(&mut self, batch: RecordBatch) -> Result<(), LakeError> {
        if self.writing.len() >= self.most_writing {
            self.wait_oldest().await?;
        }
        let writer = RecordBatchWriter::for_table(&self.delta)
            .map_err(|e| LakeError::delta(self.table, e))?
            .with_writer_properties(self.properties.clone());
        self.staged_rows += batch.num_rows();
        // Encoding is CPU work of a second or more per batch: on the blocking pool, not on
        // the runtime's workers, which would otherwise all be busy encoding while the
        // Kafka ingester's commits and its metrics endpoint wait for one.
        let runtime = tokio::runtime::Handle::current();
        self.writing.push_back(tokio::task::spawn_blocking(move || {
            runtime.block_on(write_files(writer, batch))
        }));
        Ok(())
    }

    async fn wait_oldest(&mut self) -> Result<(), LakeError> {
        let Some(oldest) = self.writing.pop_front() else {
            return Ok(());
        };
        let adds = oldest
            .await
            .map_err(|e| LakeError::WriteTask {
                table: self.table.to_string(),
                message: e.to_string(),
            })?
            .map_err(|e| LakeError::delta(self.table, e))?;
        self.staged.extend(adds);
        Ok(())
    }

    /// The table version this writer last saw.
    pub fn version(&self) -> u64 {
        self.delta.version().unwrap_or_default()
    }

    pub fn staged_rows(&self) -> usize {
        self.staged_rows
    }

    /// The version a marker's app id holds in the table, if any.
    pub async fn marker_version(&mut self, app_id: &str) -> Result<Option<i64>, LakeError> {
        let mut versions = self.marker_versions(&[app_id.to_owned()]).await?;
        Ok(versions.pop().flatten())
    }

    /// The versions several app ids hold, read from the table's latest snapshot, which
    /// the next [`TableWriter::commit`] builds on.
    pub async fn marker_versions(
        &mut self,
        app_ids: &[String],
    ) -> Result<Vec<Option<i64>>, LakeError> {
        let table = self.table;
        let log_store = self.delta.log_store();
        self.latest().await?;
        let at = self.version();
        if self.known.at != Some(at) {
            self.known = KnownMarkers {
                at: Some(at),
                versions: Default::default(),
            };
        }
        let snapshot = self
            .delta
            .snapshot()
            .map_err(|e| LakeError::delta(table, e))?;
        let mut versions = Vec::with_capacity(app_ids.len());
        for app_id in app_ids {
            let version = match self.known.versions.get(app_id) {
                Some(known) => *known,
                None => {
                    let read = snapshot
                        .transaction_version(log_store.as_ref(), app_id)
                        .await
                        .map_err(|e| LakeError::delta(table, e))?;
                    self.known.versions.insert(app_id.clone(), read);
                    read
                }
            };
            versions.push(version);
        }
        Ok(versions)
    }

    /// Commits everything staged with the markers, atomically, its custody manifest naming
    /// `origins`. With nothing staged, commits the markers alone (so that an input with no
    /// rows for this table is still recorded). Returns the new table version.
    ///
    /// After a commit Delta refused for a conflict (a commit moved one of its markers:
    /// another process's, or this one's own whose answer was lost before a retry) its
    /// files stay staged, for the caller to abandon; after any other failure nothing stays.
    pub async fn commit(
        &mut self,
        markers: &[CommitMarker],
        origins: &[Origin],
    ) -> Result<u64, LakeError> {
        while !self.writing.is_empty() {
            if let Err(e) = self.wait_oldest().await {
                self.discard();
                return Err(e);
            }
        }
        let adds = std::mem::take(&mut self.staged);
        let actions: Vec<Action> = adds.iter().cloned().map(Action::Add).collect();
        let rows = std::mem::take(&mut self.staged_rows);
        let txns = markers
            .iter()
            .map(|m| Transaction::new_with_last_update(&m.app_id, m.version, Some(now_millis())))
            .collect();
        let properties = CommitProperties::default()
            .with_application_transactions(txns)
            .with_metadata(origin_metadata(origins));
        let operation = DeltaOperation::Write {
            mode: SaveMode::Append,
            partition_by: Some(vec![PARTITION_COLUMN.to_owned()]),
            predicate: None,
        };
        let snapshot = self
            .delta
            .snapshot()
            .map_err(|e| LakeError::delta(self.table, e))?;
        let finalized = match CommitBuilder::from(properties)
            .with_actions(actions)
            .build(Some(snapshot), self.delta.log_store(), operation)
            .await
        {
            Ok(finalized) => finalized,
            Err(e) => {
                if let DeltaTableError::Transaction {
                    source: TransactionError::CommitConflict(_),
                } = &e
                {
                    self.staged = adds;
                    self.staged_rows = rows;
                    // Caught up with what landed first, so that committing again builds
                    // on it; the markers read before may have moved.
                    self.known = KnownMarkers::default();
                    if let Err(e) = self.delta.update_state().await {
                        tracing::debug!(table = %self.table, "after a conflict: {e}");
                    }
                }
                return Err(LakeError::delta(self.table, e));
            }
        };
        let version = finalized.version();
        // Landed right on top of the version the known markers were read at: the table's
        // markers are those, moved by this commit. Otherwise another commit came between.
        if self.known.at.is_some_and(|at| at + 1 == version as u64) {
            for m in markers {
                self.known
                    .versions
                    .insert(m.app_id.clone(), Some(m.version));
            }
            self.known.at = Some(version as u64);
        } else {
            self.known = KnownMarkers::default();
        }
        // The commit's own state is the table at its version: reading the log again for it
        // was one more listing (and on object storage a request) per commit.
        self.delta.state = Some(finalized.snapshot);
        Ok(version)
    }

    /// Forgets what is staged and deletes its files, waiting for those being written: for
    /// a caller that knows they will not be committed (the input is already in the table,
    /// another ingester owns the partition). Left behind, they would be files no commit
    /// added, which `lake verify` names. A file the table holds after all (a commit that
    /// landed with its answer lost) stays.
    pub async fn abandon(&mut self) {
        let mut files = std::mem::take(&mut self.staged);
        for writing in self.writing.drain(..) {
            if let Ok(Ok(adds)) = writing.await {
                files.extend(adds);
            }
        }
        self.staged_rows = 0;
        if files.is_empty() {
            return;
        }
        let held = match self.live_files().await {
            Ok(held) => held,
            Err(e) => {
                tracing::warn!(table = %self.table, error = %e, "abandoned files stay until vacuum");
                return;
            }
        };
        let store = self.delta.object_store();
        for add in files {
            let deleted = match Path::from_url_path(&add.path) {
                Ok(path) if held.contains(&path) => Ok(()),
                Ok(path) => store.delete(&path).await.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            if let Err(e) = deleted {
                tracing::warn!(table = %self.table, file = add.path, error = e, "an abandoned file stays until vacuum");
            }
        }
    }

    /// The table's latest version, read again if the log moved.
    async fn latest(&mut self) -> Result<&DeltaTableState, LakeError> {
        refresh(self.table.name(), &mut self.delta).await?;
        self.delta
            .snapshot()
            .map_err(|e| LakeError::delta(self.table, e))
    }

    /// The files the table's latest version holds.
    async fn live_files(&mut self) -> Result<std::collections::HashSet<Path>, LakeError> {
        Ok(self
            .latest()
            .await?
            .log_data()
            .iter()
            .map(|f| f.object_store_path())
            .collect())
    }

    /// Forgets staged files and those being written: batches not started are dropped, the
    /// others finish into files that stay on disk, unreferenced, until vacuum.
    pub fn discard(&mut self) {
        for writing in self.writing.drain(..) {
            writing.abort();
        }
        self.staged.clear();
        self.staged_rows = 0;
    }
}

impl Drop for TableWriter {
    fn drop(&mut self) {
        self.discard();
    }
}

/// Writes one batch as one file per `event_date` and returns the files.
async fn write_files(
    mut writer: RecordBatchWriter,
    batch: RecordBatch,
) -> Result<Vec<Add>, DeltaTableError> {
    // A batch sorted by time holds each day as one run of rows, handed to the day's
    // file as a slice; given the whole batch, the writer would copy every column per day.
    match day_runs(&batch) {
        Some(runs) => {
            for (day, start, len) in runs {
                let partition = IndexMap::from([(PARTITION_COLUMN.to_owned(), Scalar::Date(day))]);
                writer
                    .write_partition(batch.slice(start, len), &partition, WriteMode::Default)
                    .await?;
            }
        }
        None => writer.write(batch).await?,
    }
    writer.flush().await
}

/// The runs of rows of one `event_date` in a batch: (day, first row, rows). `None` when
/// the batch has no such column or a row without a day (the writer then says what is wrong).
fn day_runs(batch: &RecordBatch) -> Option<Vec<(i32, usize, usize)>> {
    let days = batch
        .column_by_name(PARTITION_COLUMN)?
        .as_primitive_opt::<Date32Type>()
        .filter(|c| c.null_count() == 0)?;
    let mut runs: Vec<(i32, usize, usize)> = Vec::new();
    for (row, &day) in days.values().iter().enumerate() {
        match runs.last_mut() {
            Some((last, _, len)) if *last == day => *len += 1,
            _ => runs.push((day, row, 1)),
        }
    }
    Some(runs)
}

/// Rows per Parquet row group.
pub const ROW_GROUP_ROWS: usize = 128 * 1024;

/// zstd level 1, row groups of [`ROW_GROUP_ROWS`], the sort order recorded in the file metadata,
/// times and offsets stored as differences, documents and ids written plain, statistics
/// where [`Table::keeps_statistics`] says, and bloom filters on the lookup columns.
pub(crate) fn writer_properties(table: Table) -> WriterProperties {
    // Level 1: compressing was 11 % of ingest's CPU at level 3, and level 1 left a day's
    // audit file no larger (29.2 MB against 30.0 MB on the 1M bench day); reading costs
    // the same at any level.
    let level = ZstdLevel::try_new(1).unwrap_or_default();
    let mut builder = WriterProperties::builder()
        .set_compression(Compression::ZSTD(level))
        // Row groups of 128k rows (the default is 1M): a writer holds a whole row group in
        // memory before it writes it, and a day's file of time-sorted row groups lets a
        // reader skip most of them by their statistics and scan the rest on every core.
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        // event_time is the first column of every file (event_date lives in the path).
        .set_sorting_columns(Some(vec![SortingColumn {
            column_idx: 0,
            descending: false,
            nulls_first: false,
        }]));
    // Times in a time-sorted file, and line numbers or Kafka offsets, grow in small steps:
    // as differences they take a byte or two instead of eight, and every query that
    // filters on time decodes a fraction of the bytes (a dictionary of near-unique values
    // only overflows and falls back to plain).
    for field in table.schema().fields() {
        let delta =
            matches!(field.data_type(), DataType::Timestamp(..)) || field.name() == OFFSET_COLUMN;
        if delta {
            let column = ColumnPath::from(field.name().as_str());
            builder = builder
                .set_column_dictionary_enabled(column.clone(), false)
                .set_column_encoding(column, Encoding::DELTA_BINARY_PACKED);
        }
    }
    for name in table.unique_columns() {
        builder = builder.set_column_dictionary_enabled(ColumnPath::from(*name), false);
    }
    for field in table.schema().fields() {
        if !table.keeps_statistics(field.name()) {
            builder = builder.set_column_statistics_enabled(leaf(field), EnabledStatistics::None);
        }
    }
    // A bloom filter per row group of each column looked up by exact value: the filter
    // is sized for a row group of distinct values and folded down to what was written
    // (a column of fifty verbs keeps a few hundred bytes), and a rule looking for a rare
    // `resource` or a timeline for one user reads only the row groups that may hold it.
    for name in table.lookup_columns() {
        builder = builder.set_column_bloom_filter_fpp(ColumnPath::from(name), BLOOM_FILTER_FPP);
    }
    builder.build()
}

/// The Parquet column that holds a field's values: a list's are under `name.list.element`.
fn leaf(field: &Field) -> ColumnPath {
    match field.data_type() {
        DataType::List(item) => ColumnPath::new(vec![
            field.name().clone(),
            "list".to_owned(),
            item.name().clone(),
        ]),
        _ => ColumnPath::from(field.name().as_str()),
    }
}

/// False positives of the lookup columns' bloom filters: one row group in a hundred read
/// for nothing, for ≈ 10 bits per distinct value.
const BLOOM_FILTER_FPP: f64 = 0.01;

fn now_millis() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Date32Array, Int64Array};
    use arrow::datatypes::{Field, Schema};

    use super::*;

    fn batch(days: Date32Array) -> RecordBatch {
        let schema = Schema::new(vec![Field::new(PARTITION_COLUMN, DataType::Date32, true)]);
        RecordBatch::try_new(Arc::new(schema), vec![Arc::new(days)]).unwrap()
    }

    /// Markers this writer knows are the table's only while no other commit came between.
    #[tokio::test]
    async fn markers_are_read_again_once_another_writer_committed() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(&dir.path().join("lake").to_string_lossy()).unwrap();
        let marker = |app_id: &str, version| CommitMarker {
            app_id: app_id.to_owned(),
            version,
        };
        let ids = ["a".to_owned(), "b".to_owned()];
        let mut mine = TableWriter::open(&lake, Table::Alerts).await.unwrap();
        assert_eq!(mine.marker_versions(&ids).await.unwrap(), [None, None]);
        mine.commit(&[marker("a", 1)], &[]).await.unwrap();
        assert_eq!(
            mine.known.at,
            Some(mine.version()),
            "its own commit is known"
        );
        assert_eq!(mine.marker_versions(&ids).await.unwrap(), [Some(1), None]);

        let mut other = TableWriter::open(&lake, Table::Alerts).await.unwrap();
        other
            .commit(&[marker("a", 2), marker("b", 7)], &[])
            .await
            .unwrap();
        assert_eq!(
            mine.marker_versions(&ids).await.unwrap(),
            [Some(2), Some(7)]
        );
        // A commit that lands on another's is not taken as on top of what it knew.
        other.commit(&[marker("b", 8)], &[]).await.unwrap();
        mine.commit(&[marker("a", 3)], &[]).await.unwrap();
        assert_eq!(
            mine.marker_versions(&ids).await.unwrap(),
            [Some(3), Some(8)]
        );
    }

    /// A reader's copy of a table follows the commits that land, several at once too, and
    /// stays as it is while none does (on a local disk, whether one did is a stat).
    #[tokio::test]
    async fn a_reader_follows_the_commits_that_land_and_only_them() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(&dir.path().join("lake").to_string_lossy()).unwrap();
        let marker = |version| CommitMarker {
            app_id: "a".to_owned(),
            version,
        };
        let name = Table::Alerts.name();
        let mut writer = TableWriter::open(&lake, Table::Alerts).await.unwrap();
        writer.commit(&[marker(1)], &[]).await.unwrap();
        let mut read = lake.open_table(name).await.unwrap().unwrap();
        assert_eq!(read.version(), Some(writer.version()));
        lake.refresh_table(name, &mut read).await.unwrap();
        assert_eq!(read.version(), Some(writer.version()), "nothing landed");
        writer.commit(&[marker(2)], &[]).await.unwrap();
        writer.commit(&[marker(3)], &[]).await.unwrap();
        lake.refresh_table(name, &mut read).await.unwrap();
        assert_eq!(read.version(), Some(writer.version()), "two landed");
    }

    #[test]
    fn a_batch_is_cut_into_runs_of_one_day_in_the_order_they_come() {
        let days = Date32Array::from(vec![7, 7, 8, 8, 8, 7]);
        assert_eq!(
            day_runs(&batch(days)),
            Some(vec![(7, 0, 2), (8, 2, 3), (7, 5, 1)])
        );
        // No day for a row, or no day column: the writer's own split, and its error.
        assert_eq!(
            day_runs(&batch(Date32Array::from(vec![Some(7), None]))),
            None
        );
        let schema = Schema::new(vec![Field::new("_offset", DataType::Int64, false)]);
        let other =
            RecordBatch::try_new(Arc::new(schema), vec![Arc::new(Int64Array::from(vec![1]))]);
        assert_eq!(day_runs(&other.unwrap()), None);
    }
}
