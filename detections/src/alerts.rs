//! The `alerts` table. A run's alerts are settled against it (an alert whose id the table
//! already holds, the same rule, entity and start from an earlier run, is not raised again),
//! then written in one Delta commit: new alerts inserted, updated ones (an entity that kept
//! matching) merged over their stored row by id.

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Int64Type};
use kubetrail_lake::{merge_rows, CommitMarker, Lake, LakeError, Origin, TableWriter};
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

/// What a run changes in the alerts table.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertChanges {
    /// Alerts the table does not hold yet, each once.
    pub new: Vec<Alert>,
    /// Alerts the table holds, as they read now.
    pub updated: Vec<Alert>,
}

impl AlertChanges {
    pub fn is_empty(&self) -> bool {
        self.new.is_empty() && self.updated.is_empty()
    }
}

/// The columns an update rewrites; the rest of an alert (its id, rule, entity, first
/// match and first detection) never changes.
const UPDATED_COLUMNS: [&str; 6] = [
    "last_seen",
    "event_count",
    "summary",
    "evidence",
    "window_end",
    "_ingested_at",
];

/// Settles a run's alerts against the table and writes them; returns what changed.
pub async fn write_alerts(
    lake: &Lake,
    session: &LakeSession,
    new: Vec<Alert>,
    updated: Vec<Alert>,
) -> Result<AlertChanges, AlertWriteError> {
    let changes = settle(session, new, updated).await?;
    let origin = Origin::Detection {
        window: session.window().map(|w| w.to_string()),
    };
    commit_alerts(lake, &changes, &[], &origin).await?;
    Ok(changes)
}

/// Drops the new alerts whose ids the table already holds, and repeats within the run.
pub async fn settle(
    session: &LakeSession,
    new: Vec<Alert>,
    updated: Vec<Alert>,
) -> Result<AlertChanges, AlertWriteError> {
    let existing = existing_ids(session, &new).await?;
    let mut seen: BTreeSet<String> = updated.iter().map(|a| a.alert_id.clone()).collect();
    let new = new
        .into_iter()
        .filter(|a| !existing.contains(&a.alert_id) && seen.insert(a.alert_id.clone()))
        .collect();
    Ok(AlertChanges { new, updated })
}

/// Writes the changes and `markers` in one Delta commit (a round of the scheduler and its
/// checkpoint land together or not at all); the markers alone when nothing changed.
pub async fn commit_alerts(
    lake: &Lake,
    changes: &AlertChanges,
    markers: &[CommitMarker],
    origin: &Origin,
) -> Result<(), AlertWriteError> {
    let origins = std::slice::from_ref(origin);
    let rows: Vec<Alert> = changes
        .new
        .iter()
        .chain(&changes.updated)
        .cloned()
        .collect();
    match alerts_batch(rows)? {
        Some(batch) => {
            merge_rows(
                lake,
                Table::Alerts,
                batch,
                "alert_id",
                &UPDATED_COLUMNS,
                markers,
                origins,
            )
            .await?;
        }
        None if !markers.is_empty() => {
            TableWriter::open(lake, Table::Alerts)
                .await?
                .commit(markers, origins)
                .await?;
        }
        None => {}
    }
    Ok(())
}

/// Alerts as a batch in the `alerts` table's schema, sorted by time (`None` for none): what
/// is written, and what `detect run` prints.
pub fn alerts_batch(alerts: Vec<Alert>) -> Result<Option<RecordBatch>, arrow::error::ArrowError> {
    let mut buffer = RowBuffer::<AlertColumns>::default();
    let provenance = Provenance {
        source: Arc::from("detections"),
        offset: 0,
        ingested_at: chrono::Utc::now().timestamp_micros(),
    };
    buffer.extend(&alerts, &provenance, 0);
    buffer.take_batch()
}

/// Alerts as the table holds them (rows of `SELECT *` on `alerts`).
pub fn alerts_from_batches(batches: &[RecordBatch]) -> Result<Vec<Alert>, String> {
    let mut out = Vec::new();
    for batch in batches {
        let column = |name: &str| {
            batch
                .column_by_name(name)
                .ok_or_else(|| format!("the alerts table has no column '{name}'"))
        };
        let number = |name: &str| -> Result<Vec<i64>, String> {
            let a = cast(column(name)?, &DataType::Int64).map_err(|e| e.to_string())?;
            let a = a.as_primitive::<Int64Type>();
            Ok((0..a.len())
                .map(|r| if a.is_null(r) { 0 } else { a.value(r) })
                .collect())
        };
        let text = |name: &str| -> Result<Vec<String>, String> {
            let a = cast(column(name)?, &DataType::Utf8).map_err(|e| e.to_string())?;
            let a = a.as_string::<i32>();
            Ok((0..a.len())
                .map(|r| {
                    if a.is_valid(r) {
                        a.value(r).to_owned()
                    } else {
                        String::new()
                    }
                })
                .collect())
        };
        let list = |name: &str| -> Result<Vec<Vec<String>>, String> {
            let a = column(name)?
                .as_list_opt::<i32>()
                .ok_or_else(|| format!("alerts column '{name}' is not a list"))?;
            let mut rows = Vec::with_capacity(a.len());
            for r in 0..a.len() {
                if a.is_null(r) {
                    rows.push(Vec::new());
                    continue;
                }
                let values = cast(&a.value(r), &DataType::Utf8).map_err(|e| e.to_string())?;
                let values = values.as_string::<i32>();
                rows.push(values.iter().flatten().map(str::to_owned).collect());
            }
            Ok(rows)
        };
        let [event_time, first_seen, last_seen, event_count, window_start, window_end, detected_at] =
            [
                "event_time",
                "first_seen",
                "last_seen",
                "event_count",
                "window_start",
                "window_end",
                "detected_at",
            ]
            .map(number);
        let [alert_id, rule_id, title, severity, entity, summary] = [
            "alert_id", "rule_id", "title", "severity", "entity", "summary",
        ]
        .map(text);
        let [mitre, tags, entity_values, evidence] =
            ["mitre", "tags", "entity_values", "evidence"].map(list);
        let (event_time, first_seen, last_seen, event_count) =
            (event_time?, first_seen?, last_seen?, event_count?);
        let (window_start, window_end, detected_at) = (window_start?, window_end?, detected_at?);
        let (alert_id, rule_id, title, severity, entity, summary) =
            (alert_id?, rule_id?, title?, severity?, entity?, summary?);
        let (mitre, tags, entity_values, evidence) = (mitre?, tags?, entity_values?, evidence?);
        for r in 0..batch.num_rows() {
            out.push(Alert {
                event_time: event_time[r],
                alert_id: alert_id[r].clone(),
                rule_id: rule_id[r].clone(),
                title: title[r].clone(),
                severity: severity[r].clone(),
                mitre: mitre[r].clone(),
                tags: tags[r].clone(),
                entity: entity[r].clone(),
                entity_values: entity_values[r].clone(),
                first_seen: first_seen[r],
                last_seen: last_seen[r],
                event_count: event_count[r],
                summary: summary[r].clone(),
                evidence: evidence[r].clone(),
                window_start: window_start[r],
                window_end: window_end[r],
                detected_at: detected_at[r],
            });
        }
    }
    Ok(out)
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
            let column = cast(batch.column(0), &DataType::Utf8)?;
            for id in column.as_string::<i32>().iter().flatten() {
                ids.insert(id.to_owned());
            }
        }
    }
    Ok(ids)
}
