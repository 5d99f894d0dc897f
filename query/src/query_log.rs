//! `query_log`: the lake records who looked at the evidence. Each query (the server's,
//! `sql`'s, the shell's) becomes a row: user, client, interface, when, the SQL, rows and
//! bytes returned, how long, how it ended. The server hands records to a task that commits
//! them in batches, so a query never waits on a commit.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::TimestampMicrosecondArray;
use arrow::array::{ArrayRef, Date32Array, Int64Array, RecordBatch, StringArray};
use kubetrail_lake::{Lake, Origin, TableWriter};
use kubetrail_schemas::Table;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

use crate::window::rfc3339;
use crate::QueryError;

/// How a query ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// Refused before it ran: not read-only, or not valid SQL.
    Refused,
    Failed,
    /// Past its memory budget.
    OutOfMemory,
    Timeout,
    /// The client went away before the end.
    Cancelled,
}

impl Outcome {
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Refused => "refused",
            Outcome::Failed => "failed",
            Outcome::OutOfMemory => "out_of_memory",
            Outcome::Timeout => "timeout",
            Outcome::Cancelled => "cancelled",
        }
    }

    /// How a failed query ended, from its error.
    pub fn of_error(e: &QueryError) -> Outcome {
        match e {
            QueryError::ReadOnly(_) => Outcome::Refused,
            QueryError::Sql(d) => match d.find_root() {
                datafusion::error::DataFusionError::ResourcesExhausted(_) => Outcome::OutOfMemory,
                datafusion::error::DataFusionError::Plan(_)
                | datafusion::error::DataFusionError::SQL(..)
                | datafusion::error::DataFusionError::SchemaError(..) => Outcome::Refused,
                _ => Outcome::Failed,
            },
            _ => Outcome::Failed,
        }
    }
}

/// One query, as `query_log` holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryRecord {
    pub user: String,
    pub client: String,
    /// `flight-sql`, `sql` or `shell`.
    pub interface: &'static str,
    /// When it started, µs since the epoch.
    pub started_at: i64,
    pub sql: String,
    pub rows: u64,
    pub bytes: u64,
    pub millis: u64,
    pub outcome: Outcome,
    pub error: Option<String>,
}

impl QueryRecord {
    /// A query starting now.
    pub fn start(user: &str, client: &str, interface: &'static str, sql: &str) -> QueryRecord {
        QueryRecord {
            user: user.to_owned(),
            client: client.to_owned(),
            interface,
            started_at: chrono::Utc::now().timestamp_micros(),
            sql: sql.to_owned(),
            rows: 0,
            bytes: 0,
            millis: 0,
            outcome: Outcome::Ok,
            error: None,
        }
    }

    /// Ends the record of a query that answered with `batches` (held in memory, as `sql`
    /// and the shell hold them).
    pub fn answered(&mut self, batches: &[RecordBatch], started: Instant) {
        self.rows = batches.iter().map(|b| b.num_rows() as u64).sum();
        self.bytes = batches
            .iter()
            .map(|b| b.get_array_memory_size() as u64)
            .sum();
        self.finish(Outcome::Ok, None, started);
    }

    /// Ends the record of a query that failed: how, from its error.
    pub fn failed(&mut self, e: &QueryError, started: Instant) {
        let line = crate::shell::one_line(&e.to_string());
        self.finish(Outcome::of_error(e), Some(line), started);
    }

    /// Ends the record: how, and how long since `started`.
    pub fn finish(&mut self, outcome: Outcome, error: Option<String>, started: Instant) {
        self.outcome = outcome;
        self.error = error;
        self.millis = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    }
}

/// The records as a `query_log` batch.
fn batch(records: &[QueryRecord]) -> Result<RecordBatch, QueryError> {
    let now = chrono::Utc::now().timestamp_micros();
    let day = |micros: i64| i32::try_from(micros.div_euclid(86_400_000_000)).unwrap_or(i32::MAX);
    let text = |f: &dyn Fn(&QueryRecord) -> Option<&str>| -> ArrayRef {
        Arc::new(records.iter().map(f).collect::<StringArray>())
    };
    let number = |f: &dyn Fn(&QueryRecord) -> u64| -> ArrayRef {
        Arc::new(
            records
                .iter()
                .map(|r| i64::try_from(f(r)).unwrap_or(i64::MAX))
                .collect::<Int64Array>(),
        )
    };
    let time = |values: Vec<i64>| -> ArrayRef {
        Arc::new(TimestampMicrosecondArray::from(values).with_timezone("UTC"))
    };
    let source = format!("query-log:{}", hostname());
    let columns: Vec<ArrayRef> = vec![
        time(records.iter().map(|r| r.started_at).collect()),
        Arc::new(Date32Array::from(
            records
                .iter()
                .map(|r| day(r.started_at))
                .collect::<Vec<i32>>(),
        )),
        text(&|r| Some(&r.user)),
        text(&|r| Some(&r.client)),
        text(&|r| Some(r.interface)),
        text(&|r| Some(&r.sql)),
        number(&|r| r.rows),
        number(&|r| r.bytes),
        number(&|r| r.millis),
        text(&|r| Some(r.outcome.name())),
        text(&|r| r.error.as_deref()),
        Arc::new(StringArray::from(vec![source.as_str(); records.len()])),
        // Microseconds since the epoch of the record's start: unique enough per source
        // to point at a row, as `_offset` does for the event tables.
        Arc::new(records.iter().map(|r| r.started_at).collect::<Int64Array>()),
        time(vec![now; records.len()]),
    ];
    Ok(RecordBatch::try_new(Table::QueryLog.schema(), columns)?)
}

/// The machine's name, for where a record was written and `sql`'s client.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown-host".into())
}

/// Who runs `sql` or the shell: the operating system's user (by name where the
/// environment says it, else `uid:N`).
pub fn local_user() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|u| !u.is_empty())
        .or_else(|| {
            let status = std::fs::read_to_string("/proc/self/status").ok()?;
            let uid = status.lines().find_map(|l| l.strip_prefix("Uid:"))?;
            Some(format!("uid:{}", uid.split_whitespace().next()?))
        })
        .unwrap_or_else(|| "unknown".into())
}

/// Where `sql` and the shell run: this machine.
pub fn local_client() -> String {
    format!("local:{}", hostname())
}

/// Commits `records` to `query_log` (made if missing), in one commit.
pub async fn append(lake: &Lake, records: &[QueryRecord]) -> Result<(), QueryError> {
    if records.is_empty() {
        return Ok(());
    }
    let mut writer = TableWriter::open(lake, Table::QueryLog).await?;
    writer.stage(batch(records)?).await?;
    let first = records
        .iter()
        .map(|r| r.started_at)
        .min()
        .unwrap_or_default();
    let last = records
        .iter()
        .map(|r| r.started_at)
        .max()
        .unwrap_or_default();
    let origin = Origin::Queries {
        count: records.len() as u64,
        first: rfc3339(first),
        last: rfc3339(last),
    };
    writer.commit(&[], &[origin]).await?;
    Ok(())
}

/// How often the server's records are committed, and how many wait at most.
const FLUSH_EVERY: Duration = Duration::from_secs(5);
const FLUSH_RECORDS: usize = 1000;

/// A task that commits the records it is sent, every few seconds, until every sender is
/// gone; then it commits what is left. A commit that fails is logged and its records kept
/// for the next.
pub(crate) fn spawn_writer(
    lake: Lake,
) -> (UnboundedSender<QueryRecord>, tokio::task::JoinHandle<()>) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let task = tokio::spawn(write_until_closed(lake, rx));
    (tx, task)
}

async fn write_until_closed(lake: Lake, mut rx: UnboundedReceiver<QueryRecord>) {
    let mut pending: Vec<QueryRecord> = Vec::new();
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    loop {
        let closed = tokio::select! {
            got = rx.recv() => match got {
                Some(r) => {
                    pending.push(r);
                    if pending.len() < FLUSH_RECORDS {
                        continue;
                    }
                    false
                }
                None => true,
            },
            _ = tick.tick() => false,
        };
        if !pending.is_empty() {
            match append(&lake, &pending).await {
                Ok(()) => pending.clear(),
                Err(e) => tracing::warn!(records = pending.len(), "query_log not written yet: {e}"),
            }
        }
        if closed {
            return;
        }
    }
}
