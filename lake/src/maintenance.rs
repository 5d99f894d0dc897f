//! Keeping the lake fast and bounded: compacting small files, removing files no version
//! needs any more, and dropping whole partitions past retention.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::NaiveDate;
use deltalake::datafusion::prelude::{col, lit};
use deltalake::datafusion::scalar::ScalarValue;
use deltalake::operations::optimize::OptimizeType;
use deltalake::operations::vacuum::VacuumMode;
use deltalake::{FilterOp, FilterValue};
use kubetrail_schemas::table::{PARTITION_COLUMN, TIME_COLUMN};
use kubetrail_schemas::Table;

use crate::table_writer::writer_properties;
use crate::{Lake, LakeError};

/// What `optimize` did to one table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OptimizeReport {
    pub partitions: u64,
    pub files_removed: u64,
    pub files_added: u64,
}

/// Which `event_date` partitions an operation covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Days {
    All,
    On(NaiveDate),
    /// Days before this one: partitions no longer written to (the ingester's own
    /// compaction, which leaves today and yesterday to late events).
    Before(NaiveDate),
}

impl Days {
    fn includes(self, day: &str) -> bool {
        let text = |d: NaiveDate| d.format("%Y-%m-%d").to_string();
        match self {
            Days::All => true,
            Days::On(d) => day == text(d),
            Days::Before(d) => day < text(d).as_str(),
        }
    }
}

/// Rewrites every partition of `table` in `days` that has more than one file into files
/// sorted by `event_time`. Readers keep seeing the old files until the new ones are
/// committed, in one commit per partition, so a query running meanwhile sees one version or
/// the other, never a mix.
pub async fn optimize(lake: &Lake, table: Table, days: Days) -> Result<OptimizeReport, LakeError> {
    let mut report = OptimizeReport::default();
    let Some(delta) = lake.open_table(table.name()).await? else {
        return Ok(report);
    };
    let files = files_per_partition(&delta).map_err(|e| LakeError::delta(table, e))?;
    let mut current = delta;
    for (day, count) in files {
        if count < 2 || !days.includes(&day) {
            continue;
        }
        let filters = [(
            PARTITION_COLUMN,
            FilterOp::Eq,
            FilterValue::Scalar(day.as_str()),
        )];
        // Z-order on one column is a sort by that column.
        let (optimized, metrics) = current
            .optimize()
            .with_type(OptimizeType::ZOrder(vec![TIME_COLUMN.to_owned()]))
            .with_filters(&filters)
            .with_writer_properties(writer_properties(table))
            .await
            .map_err(|e| LakeError::delta(table, e))?;
        current = optimized;
        report.partitions += 1;
        report.files_removed += metrics.num_files_removed;
        report.files_added += metrics.num_files_added;
    }
    Ok(report)
}

/// How long files replaced or never committed stay before `vacuum` deletes them: at least
/// Delta's floor of 7 days (a query reading an older version, or an ingest between staging
/// a file and committing it, may still need one), unless the operator forces it lower.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention(Duration);

impl Retention {
    pub const FLOOR: Duration = Duration::from_secs(7 * 24 * 3600);

    /// A retention of at least [`Retention::FLOOR`].
    pub fn new(period: Duration) -> Result<Retention, LakeError> {
        match period >= Retention::FLOOR {
            true => Ok(Retention(period)),
            false => Err(LakeError::RetentionBelowFloor {
                hours: period.as_secs() / 3600,
            }),
        }
    }

    /// Any retention, the floor waived: for a lake no one else is reading or writing.
    pub fn forced(period: Duration) -> Retention {
        Retention(period)
    }
}

/// Deletes data files that no table version younger than `retain` references, including
/// files staged by an ingest that died or discarded them. Returns how many were deleted.
pub async fn vacuum(lake: &Lake, table: Table, retain: Retention) -> Result<usize, LakeError> {
    let Some(delta) = lake.open_table(table.name()).await? else {
        return Ok(0);
    };
    let retain = chrono::Duration::from_std(retain.0)
        .map_err(|e| LakeError::Location(table.to_string(), format!("retention period: {e}")))?;
    let (_, metrics) = delta
        .vacuum()
        .with_retention_period(retain)
        // `Retention` has enforced the floor, or the operator waived it.
        .with_enforce_retention_duration(false)
        .with_mode(VacuumMode::Full)
        .await
        .map_err(|e| LakeError::delta(table, e))?;
    Ok(metrics.files_deleted.len())
}

/// Removes every partition whose day is before `cutoff`. Whole files go; nothing is
/// rewritten. Returns how many files were removed.
pub async fn drop_before(lake: &Lake, table: Table, cutoff: NaiveDate) -> Result<usize, LakeError> {
    let Some(delta) = lake.open_table(table.name()).await? else {
        return Ok(0);
    };
    let before = files_per_partition(&delta).map_err(|e| LakeError::delta(table, e))?;
    let cutoff_text = cutoff.format("%Y-%m-%d").to_string();
    let doomed: usize = before
        .iter()
        .filter(|(day, _)| day.as_str() < cutoff_text.as_str())
        .map(|(_, n)| n)
        .sum();
    if doomed == 0 {
        return Ok(0);
    }
    delta
        .delete()
        .with_predicate(
            col(PARTITION_COLUMN).lt(lit(ScalarValue::Date32(Some(days_since_epoch(cutoff))))),
        )
        .await
        .map_err(|e| LakeError::delta(table, e))?;
    Ok(doomed)
}

fn days_since_epoch(day: NaiveDate) -> i32 {
    (day - chrono::DateTime::UNIX_EPOCH.date_naive()).num_days() as i32
}

/// Files per `event_date`, read from the paths of the current version's files
/// (`…/event_date=YYYY-MM-DD/part-….parquet`).
fn files_per_partition(
    delta: &deltalake::DeltaTable,
) -> Result<BTreeMap<String, usize>, deltalake::DeltaTableError> {
    let prefix = format!("{PARTITION_COLUMN}=");
    let mut counts = BTreeMap::new();
    for uri in delta.get_file_uris()? {
        let day = uri
            .split('/')
            .find_map(|segment| segment.strip_prefix(&prefix))
            .unwrap_or_default()
            .to_owned();
        *counts.entry(day).or_insert(0) += 1;
    }
    Ok(counts)
}
