//! The server's Prometheus metrics: queries by outcome, rows and bytes sent, queries running
//! now, memory they hold, and calls refused for want of a valid token.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use crate::query_log::{Outcome, QueryRecord};

const OUTCOMES: [Outcome; 6] = [
    Outcome::Ok,
    Outcome::Refused,
    Outcome::Failed,
    Outcome::OutOfMemory,
    Outcome::Timeout,
    Outcome::Cancelled,
];

#[derive(Debug, Default)]
pub(crate) struct ServerMetrics {
    queries: [AtomicU64; 6],
    rows: AtomicU64,
    bytes: AtomicU64,
    running: AtomicI64,
    unauthenticated: AtomicU64,
}

impl ServerMetrics {
    pub(crate) fn finished(&self, r: &QueryRecord) {
        let i = OUTCOMES.iter().position(|o| *o == r.outcome).unwrap_or(2);
        self.queries[i].fetch_add(1, Ordering::Relaxed);
        self.rows.fetch_add(r.rows, Ordering::Relaxed);
        self.bytes.fetch_add(r.bytes, Ordering::Relaxed);
    }

    pub(crate) fn started_running(&self) {
        self.running.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn stopped_running(&self) {
        self.running.fetch_sub(1, Ordering::Relaxed);
    }

    pub(crate) fn refused_call(&self) {
        self.unauthenticated.fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus text, with the memory the running queries hold now.
    pub(crate) fn render(self: &Arc<Self>, memory_in_use: usize) -> String {
        let mut out = String::new();
        let mut counter = |name: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        };
        counter(
            "kubetrail_server_queries_total",
            "Queries answered, by how they ended.",
        );
        for (o, n) in OUTCOMES.iter().zip(&self.queries) {
            let _ = writeln!(
                out,
                "kubetrail_server_queries_total{{outcome=\"{}\"}} {}",
                o.name(),
                n.load(Ordering::Relaxed)
            );
        }
        for (name, help, value) in [
            (
                "kubetrail_server_rows_total",
                "Rows sent to clients.",
                &self.rows,
            ),
            (
                "kubetrail_server_bytes_total",
                "Bytes of Arrow data sent to clients.",
                &self.bytes,
            ),
            (
                "kubetrail_server_unauthenticated_total",
                "Calls refused for want of a valid token.",
                &self.unauthenticated,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                value.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP kubetrail_server_queries_running Queries running now.\n# TYPE kubetrail_server_queries_running gauge\nkubetrail_server_queries_running {}",
            self.running.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP kubetrail_server_memory_bytes Memory the running queries hold.\n# TYPE kubetrail_server_memory_bytes gauge\nkubetrail_server_memory_bytes {memory_in_use}"
        );
        out
    }
}
