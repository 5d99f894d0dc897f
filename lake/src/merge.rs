//! Rows that replace earlier versions of themselves: a Delta merge keyed on one column, for
//! the tables whose rows change after they are written (an alert updated while its activity
//! goes on). Event tables never change and are appended by [`crate::TableWriter`].

use arrow::array::RecordBatch;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::kernel::Transaction;
use kubetrail_schemas::table::PARTITION_COLUMN;
use kubetrail_schemas::Table;

use crate::custody::{origin_metadata, Origin};
use crate::table_writer::writer_properties;
use crate::{CommitMarker, Lake, LakeError};

/// What a merge did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MergeCounts {
    pub inserted: usize,
    pub updated: usize,
}

/// Writes `rows` into `table` in one Delta commit with `markers`, its custody manifest
/// naming `origins`: a row whose `key` is
/// already in the table (in the same `event_date` partition) replaces the stored row's
/// `update` columns; any other row is inserted whole. The partition is part of the match so
/// that the merge rewrites only the files of the days the rows belong to.
pub async fn merge_rows(
    lake: &Lake,
    table: Table,
    rows: RecordBatch,
    key: &str,
    update: &[&str],
    markers: &[CommitMarker],
    origins: &[Origin],
) -> Result<MergeCounts, LakeError> {
    let delta = lake.open_or_create(table).await?;
    let source = deltalake::datafusion::prelude::SessionContext::new()
        .read_batch(rows)
        .map_err(|e| LakeError::Arrow {
            table: table.to_string(),
            message: e.to_string(),
        })?;
    let txns = markers
        .iter()
        .map(|m| {
            Transaction::new_with_last_update(
                &m.app_id,
                m.version,
                Some(chrono::Utc::now().timestamp_millis()),
            )
        })
        .collect();
    let predicate = format!(
        "target.{key} = source.{key} AND target.{PARTITION_COLUMN} = source.{PARTITION_COLUMN}"
    );
    let columns: Vec<String> = table
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let (_, metrics) = delta
        .merge(source, predicate.as_str())
        .with_source_alias("source")
        .with_target_alias("target")
        .with_writer_properties(writer_properties(table))
        .with_commit_properties(
            CommitProperties::default()
                .with_application_transactions(txns)
                .with_metadata(origin_metadata(origins)),
        )
        .when_matched_update(|u| {
            update
                .iter()
                .fold(u, |u, c| u.update(*c, format!("source.{c}")))
        })
        .and_then(|m| {
            m.when_not_matched_insert(|i| {
                columns
                    .iter()
                    .fold(i, |i, c| i.set(c, format!("source.{c}")))
            })
        })
        .map_err(|e| LakeError::delta(table, e))?
        .await
        .map_err(|e| LakeError::delta(table, e))?;
    Ok(MergeCounts {
        inserted: metrics.num_target_rows_inserted,
        updated: metrics.num_target_rows_updated,
    })
}
