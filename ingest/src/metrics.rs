//! Counters of an ingester, served in the Prometheus text format.
//!
//! A handful of series at low update rates (per record at most), so a mutex around plain
//! maps is enough; no metrics framework is pulled in for it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use kubetrail_schemas::Table;

/// Upper bounds of the commit latency histogram, in seconds.
const COMMIT_BUCKETS: [f64; 10] = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
/// Upper bounds of the batch size histogram, in rows.
const BATCH_BUCKETS: [f64; 8] = [10.0, 100.0, 1e3, 1e4, 5e4, 1e5, 2.5e5, 1e6];

#[derive(Debug, Default)]
pub struct IngestMetrics {
    inner: Mutex<Series>,
}

#[derive(Debug, Default)]
struct Series {
    records: BTreeMap<String, u64>,
    rows: BTreeMap<Table, u64>,
    commits: BTreeMap<Table, u64>,
    commit_seconds: Histogram,
    batch_rows: Histogram,
    lag: BTreeMap<(String, i32), i64>,
    broker_errors: u64,
    rewinds: u64,
    expired: BTreeMap<(String, i32), u64>,
}

#[derive(Debug, Default)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, bounds: &[f64], value: f64) {
        if self.counts.is_empty() {
            self.counts = vec![0; bounds.len()];
        }
        for (i, b) in bounds.iter().enumerate() {
            if value <= *b {
                self.counts[i] += 1;
            }
        }
        self.sum += value;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, help: &str, bounds: &[f64]) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (i, b) in bounds.iter().enumerate() {
            let n = self.counts.get(i).copied().unwrap_or(0);
            let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {n}");
        }
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "{name}_sum {}\n{name}_count {}", self.sum, self.count);
    }
}

impl IngestMetrics {
    pub fn new() -> Arc<Self> {
        Arc::new(IngestMetrics::default())
    }

    fn with<R>(&self, f: impl FnOnce(&mut Series) -> R) -> R {
        // A panic elsewhere while holding the lock leaves plain counters, still usable.
        f(&mut self.inner.lock().unwrap_or_else(PoisonError::into_inner))
    }

    pub fn record_in(&self, topic: &str) {
        self.with(|s| match s.records.get_mut(topic) {
            Some(n) => *n += 1,
            None => {
                s.records.insert(topic.to_owned(), 1);
            }
        });
    }

    pub fn committed(&self, table: Table, rows: u64, latency: Duration) {
        self.with(|s| {
            *s.rows.entry(table).or_default() += rows;
            *s.commits.entry(table).or_default() += 1;
            s.commit_seconds
                .observe(&COMMIT_BUCKETS, latency.as_secs_f64());
        });
    }

    pub fn batch(&self, rows: usize) {
        self.with(|s| s.batch_rows.observe(&BATCH_BUCKETS, rows as f64));
    }

    pub fn lag(&self, topic: &str, partition: i32, lag: i64) {
        self.with(|s| {
            s.lag.insert((topic.to_owned(), partition), lag);
        });
    }

    pub fn forget_partition(&self, topic: &str, partition: i32) {
        self.with(|s| {
            s.lag.remove(&(topic.to_owned(), partition));
        });
    }

    pub fn broker_error(&self) {
        self.with(|s| s.broker_errors += 1);
    }

    pub fn rewind(&self) {
        self.with(|s| s.rewinds += 1);
    }

    /// Records of a partition that Kafka deleted before the lake held them.
    pub fn expired(&self, topic: &str, partition: i32, records: u64) {
        self.with(|s| *s.expired.entry((topic.to_owned(), partition)).or_default() += records);
    }

    /// Rows written so far to `table` (dead letters are a table too).
    pub fn rows_written(&self, table: Table) -> u64 {
        self.with(|s| s.rows.get(&table).copied().unwrap_or(0))
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        self.with(|s| {
            let mut out = String::new();
            counter_header(&mut out, "kubetrail_records_total", "Kafka records read");
            for (topic, n) in &s.records {
                let _ = writeln!(out, "kubetrail_records_total{{topic=\"{topic}\"}} {n}");
            }
            counter_header(
                &mut out,
                "kubetrail_rows_written_total",
                "Rows committed to the lake per table",
            );
            for (table, n) in &s.rows {
                let _ = writeln!(out, "kubetrail_rows_written_total{{table=\"{table}\"}} {n}");
            }
            counter_header(
                &mut out,
                "kubetrail_dead_letters_total",
                "Records that did not decode, committed to dead_letters",
            );
            let dead = s.rows.get(&Table::DeadLetters).copied().unwrap_or(0);
            let _ = writeln!(out, "kubetrail_dead_letters_total {dead}");
            counter_header(&mut out, "kubetrail_commits_total", "Delta commits per table");
            for (table, n) in &s.commits {
                let _ = writeln!(out, "kubetrail_commits_total{{table=\"{table}\"}} {n}");
            }
            s.commit_seconds.render(
                &mut out,
                "kubetrail_commit_seconds",
                "Time to write and commit one table's batch",
                &COMMIT_BUCKETS,
            );
            s.batch_rows.render(
                &mut out,
                "kubetrail_batch_rows",
                "Rows per batch handed to the lake writer",
                &BATCH_BUCKETS,
            );
            let _ = writeln!(
                out,
                "# HELP kubetrail_consumer_lag Records behind the partition's end\n# TYPE kubetrail_consumer_lag gauge"
            );
            for ((topic, partition), lag) in &s.lag {
                let _ = writeln!(
                    out,
                    "kubetrail_consumer_lag{{topic=\"{topic}\",partition=\"{partition}\"}} {lag}"
                );
            }
            counter_header(
                &mut out,
                "kubetrail_broker_errors_total",
                "Errors reported by the Kafka client (broker down, transport)",
            );
            let _ = writeln!(out, "kubetrail_broker_errors_total {}", s.broker_errors);
            counter_header(
                &mut out,
                "kubetrail_rewinds_total",
                "Times the ingester dropped what it had not committed and re-read it from \
                 the lake's markers (a partition taken over, or a commit that failed)",
            );
            let _ = writeln!(out, "kubetrail_rewinds_total {}", s.rewinds);
            counter_header(
                &mut out,
                "kubetrail_kafka_expired_records_total",
                "Records Kafka deleted (retention) before the lake held them; each range is \
                 a dead letter",
            );
            for ((topic, partition), n) in &s.expired {
                let _ = writeln!(
                    out,
                    "kubetrail_kafka_expired_records_total{{topic=\"{topic}\",partition=\"{partition}\"}} {n}"
                );
            }
            out
        })
    }
}

fn counter_header(out: &mut String, name: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
}

/// Binds `addr` now (so a taken port is reported at start) and answers `GET /metrics`
/// with these metrics in the background for as long as the runtime lives.
pub async fn serve(addr: SocketAddr, metrics: Arc<IngestMetrics>) -> std::io::Result<SocketAddr> {
    kubetrail_lake::metrics_endpoint::serve(addr, Arc::new(move || metrics.render())).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn scrapes_see_every_series_and_other_paths_are_404() {
        let metrics = IngestMetrics::new();
        metrics.record_in("audit");
        metrics.record_in("audit");
        metrics.committed(Table::K8sAudit, 120, Duration::from_millis(40));
        metrics.committed(Table::DeadLetters, 3, Duration::from_millis(20));
        metrics.batch(120);
        metrics.lag("audit", 2, 17);
        metrics.expired("audit", 1, 500);
        let addr = serve("127.0.0.1:0".parse().unwrap(), metrics.clone())
            .await
            .unwrap();
        let get = |path: &'static str| async move {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
                .await
                .unwrap();
            let mut body = String::new();
            s.read_to_string(&mut body).await.unwrap();
            body
        };
        let page = get("/metrics").await;
        for line in [
            "HTTP/1.1 200 OK",
            "kubetrail_records_total{topic=\"audit\"} 2",
            "kubetrail_rows_written_total{table=\"k8s_audit\"} 120",
            "kubetrail_dead_letters_total 3",
            "kubetrail_commits_total{table=\"k8s_audit\"} 1",
            "kubetrail_commit_seconds_bucket{le=\"0.05\"} 2",
            "kubetrail_commit_seconds_count 2",
            "kubetrail_batch_rows_bucket{le=\"100\"} 0",
            "kubetrail_batch_rows_bucket{le=\"1000\"} 1",
            "kubetrail_consumer_lag{topic=\"audit\",partition=\"2\"} 17",
            "kubetrail_kafka_expired_records_total{topic=\"audit\",partition=\"1\"} 500",
        ] {
            assert!(page.contains(line), "missing {line}:\n{page}");
        }
        assert!(get("/other").await.starts_with("HTTP/1.1 404"));
        // A port already taken is an error at start, naming the address.
        let e = serve(addr, metrics).await.unwrap_err().to_string();
        assert!(e.contains(&addr.to_string()), "{e}");
    }
}
