//! `kubetrail tables`: what the lake holds, per table.

use arrow::array::{Array, Int64Array, RecordBatch, TimestampMicrosecondArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, TimeUnit};

use crate::session::{LakeSession, QueryError};

/// Rows, files and time range of one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSummary {
    pub name: String,
    pub rows: i64,
    pub files: usize,
    /// Microseconds since the epoch, UTC.
    pub first: Option<i64>,
    pub last: Option<i64>,
}

pub async fn summarize(session: &LakeSession) -> Result<Vec<TableSummary>, QueryError> {
    let mut out = Vec::new();
    for info in session.tables() {
        let sql = format!(
            "SELECT count(*) AS n, min(event_time) AS first, max(event_time) AS last FROM {}",
            info.name
        );
        let batches = session.query(&sql).await?;
        let (rows, first, last) = read_summary(&batches)?;
        out.push(TableSummary {
            name: info.name.clone(),
            rows,
            files: info.files,
            first,
            last,
        });
    }
    Ok(out)
}

fn read_summary(batches: &[RecordBatch]) -> Result<(i64, Option<i64>, Option<i64>), QueryError> {
    let Some(b) = batches.iter().find(|b| b.num_rows() > 0) else {
        return Ok((0, None, None));
    };
    let n = cast(b.column(0), &DataType::Int64)?;
    let n = n
        .as_any()
        .downcast_ref::<Int64Array>()
        .map_or(0, |a| a.value(0));
    let ts = DataType::Timestamp(TimeUnit::Microsecond, None);
    let time = |i: usize| -> Result<Option<i64>, QueryError> {
        let c = cast(b.column(i), &ts)?;
        let c = c.as_any().downcast_ref::<TimestampMicrosecondArray>();
        Ok(c.and_then(|a| (!a.is_null(0)).then(|| a.value(0))))
    };
    Ok((n, time(1)?, time(2)?))
}
