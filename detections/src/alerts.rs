//! The `alerts` table: new alerts are appended in one Delta commit; an alert whose id is
//! already there (the same rule, entity and bucket from an earlier run) is not written again.

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow::array::AsArray;
use kubetrail_ingest::{CommitMarker, Lake, LakeError, TableWriter};
use kubetrail_query::{LakeSession, QueryError};
use kubetrail_schemas::rows::{Alert, AlertColumns, Provenance, RowBuffer};
use kubetrail_schemas::Table;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum AlertWriteError {
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error("{0}")]
    Arrow(#[from] arrow::error::ArrowError),
}

/// Writes the alerts not already in the table; returns how many were new.
pub async fn write_alerts(
    lake: &Lake,
    session: &LakeSession,
    alerts: Vec<Alert>,
) -> Result<usize, AlertWriteError> {
    let fresh = fresh_alerts(session, alerts).await?;
    if fresh.is_empty() {
        return Ok(0);
    }
    let n = fresh.len();
    let mut writer = TableWriter::open(lake, Table::Alerts).await?;
    stage(&mut writer, fresh).await?;
    writer.commit(&[]).await?;
    Ok(n)
}

/// The alerts whose ids the table does not hold yet, each once.
pub async fn fresh_alerts(
    session: &LakeSession,
    alerts: Vec<Alert>,
) -> Result<Vec<Alert>, AlertWriteError> {
    if alerts.is_empty() {
        return Ok(alerts);
    }
    let existing = existing_ids(session, &alerts).await?;
    let mut seen = BTreeSet::new();
    Ok(alerts
        .into_iter()
        .filter(|a| !existing.contains(&a.alert_id) && seen.insert(a.alert_id.clone()))
        .collect())
}

/// Appends the alerts and moves `marker` in one Delta commit (a round of the scheduler
/// and its checkpoint land together or not at all).
pub async fn commit_alerts(
    writer: &mut TableWriter,
    fresh: Vec<Alert>,
    marker: CommitMarker,
) -> Result<(), AlertWriteError> {
    stage(writer, fresh).await?;
    writer.commit(&[marker]).await?;
    Ok(())
}

async fn stage(writer: &mut TableWriter, alerts: Vec<Alert>) -> Result<(), AlertWriteError> {
    if let Some(batch) = alerts_batch(alerts)? {
        writer.stage(batch).await?;
    }
    Ok(())
}

/// Alerts as a batch in the `alerts` table's schema, sorted by time (`None` for none): what
/// is written, and what `detect run` prints.
pub fn alerts_batch(
    alerts: Vec<Alert>,
) -> Result<Option<arrow::array::RecordBatch>, arrow::error::ArrowError> {
    let mut buffer = RowBuffer::<AlertColumns>::default();
    let provenance = Provenance {
        source: Arc::from("detections"),
        offset: 0,
        ingested_at: chrono::Utc::now().timestamp_micros(),
    };
    buffer.extend(&alerts, &provenance, 0);
    buffer.take_batch()
}

/// Which of the alerts' ids the table already holds. By id alone: a later window can see
/// an alert's bucket start later than the run that first raised it did.
async fn existing_ids(
    session: &LakeSession,
    alerts: &[Alert],
) -> Result<BTreeSet<String>, AlertWriteError> {
    let mut ids = BTreeSet::new();
    let wanted: Vec<String> = alerts
        .iter()
        .map(|a| format!("'{}'", a.alert_id.replace('\'', "''")))
        .collect();
    for chunk in wanted.chunks(1000) {
        let sql = format!(
            "SELECT alert_id FROM alerts WHERE alert_id IN ({})",
            chunk.join(", ")
        );
        for batch in session.query(&sql).await? {
            let column = arrow::compute::cast(batch.column(0), &arrow::datatypes::DataType::Utf8)?;
            for id in column.as_string::<i32>().iter().flatten() {
                ids.insert(id.to_owned());
            }
        }
    }
    Ok(ids)
}
