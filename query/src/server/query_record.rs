//! What the lake keeps of each query: who asked what, from where, when, what came back and
//! how it ended. Records go to a task that writes them to the `query_log` table in
//! batches, so a query never waits on a commit.

use std::time::Instant;

use tonic::{Code, Status};

use super::service::Caller;

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

    pub(crate) fn from_status(status: &Status) -> Outcome {
        match status.code() {
            Code::PermissionDenied | Code::InvalidArgument => Outcome::Refused,
            Code::ResourceExhausted => Outcome::OutOfMemory,
            Code::DeadlineExceeded => Outcome::Timeout,
            Code::Cancelled => Outcome::Cancelled,
            _ => Outcome::Failed,
        }
    }
}

/// One query, as `query_log` holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryRecord {
    pub user: String,
    pub client: String,
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
    pub(crate) fn start(caller: &Caller, sql: &str) -> QueryRecord {
        QueryRecord {
            user: caller.user.clone(),
            client: caller.client.clone(),
            started_at: chrono::Utc::now().timestamp_micros(),
            sql: sql.to_owned(),
            rows: 0,
            bytes: 0,
            millis: 0,
            outcome: Outcome::Ok,
            error: None,
        }
    }

    pub(crate) fn refused(caller: &Caller, sql: &str, status: &Status) -> QueryRecord {
        let mut r = QueryRecord::start(caller, sql);
        r.outcome = Outcome::from_status(status);
        r.error = Some(status.message().to_owned());
        r
    }

    pub(crate) fn finish(&mut self, outcome: Outcome, started: Instant) {
        self.outcome = outcome;
        self.millis = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    }
}

/// Where records go: a line in the server's log, and the `query_log` writer.
#[derive(Clone)]
pub struct QueryRecorder {
    to_log: Option<tokio::sync::mpsc::UnboundedSender<QueryRecord>>,
}

impl QueryRecorder {
    pub(crate) fn new(to_log: Option<tokio::sync::mpsc::UnboundedSender<QueryRecord>>) -> Self {
        QueryRecorder { to_log }
    }

    pub(crate) fn record(&self, r: QueryRecord) {
        tracing::info!(
            user = r.user,
            client = r.client,
            outcome = r.outcome.name(),
            rows = r.rows,
            bytes = r.bytes,
            millis = r.millis,
            error = r.error.as_deref().unwrap_or(""),
            sql = r.sql,
            "query"
        );
        if let Some(tx) = &self.to_log {
            let _ = tx.send(r);
        }
    }
}
