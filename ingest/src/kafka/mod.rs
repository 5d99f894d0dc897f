//! `ingest kafka`: a consumer group's topics into the lake, each record exactly once.
//!
//! ```text
//! consumer thread: poll ─► frame into chunks ─► decoding workers (one per core): decode ─► TableBatches
//!   (rebalance callbacks run here)                                  └─► Stage(batch) ──► writer task: TableWriter
//!   └─ stage barrier (every worker stages, answers) ─► Commit(table, partition markers) ─► Delta commit
//! ```
//! The guarantee rests on the markers (see [`position`]): each table commit records, in the
//! same Delta commit, the last offset of every partition it covers; on assignment reading
//! resumes from the lake, not from Kafka's committed offsets; on revocation and shutdown
//! everything taken in is committed before the partitions are let go, and a commit's
//! markers cover exactly the records whose rows it publishes (see [`decoding`]). A record
//! that does not decode is a dead letter under the same protocol.

mod broker_failures;
pub mod client_options;
mod consumer;
mod decoding;
pub mod embedded;
pub mod position;
mod producer;
mod writer;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kubetrail_schemas::{DecodeOptions, SourceFormat, Table};
use tokio::sync::mpsc;

use crate::batch::BatchLimits;
use crate::error::IngestError;
use crate::metrics::IngestMetrics;
use kubetrail_lake::maintenance::{optimize, Days};
use kubetrail_lake::Lake;

pub use client_options::ClientOptions;
pub use producer::{produce, Produce, ProduceReport};
pub use writer::WriteError;

/// librdkafka's version and `builtin.features` (whether TLS, SASL and the compression
/// codecs are in this build).
pub fn librdkafka() -> (String, String) {
    let (_, version) = rdkafka::util::get_rdkafka_version();
    let features = rdkafka::ClientConfig::new()
        .create_native_config()
        .and_then(|config| config.get("builtin.features"))
        .unwrap_or_else(|e| format!("(not readable: {e})"));
    (version, features)
}

/// A topic to read and the format of its records (`None`: recognised per record).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    pub name: String,
    pub format: Option<SourceFormat>,
}

impl std::str::FromStr for TopicSpec {
    type Err = String;

    /// `NAME=FORMAT`, `NAME=auto` or just `NAME` (auto).
    fn from_str(s: &str) -> Result<Self, String> {
        let (name, format) = s.split_once('=').unwrap_or((s, "auto"));
        if name.is_empty() {
            return Err(format!(
                "'{s}': the topic name is empty (expected NAME=FORMAT)"
            ));
        }
        let format = match format {
            "auto" => None,
            f => Some(
                f.parse::<SourceFormat>()
                    .map_err(|e| format!("'{s}': {e}"))?,
            ),
        };
        Ok(TopicSpec {
            name: name.to_owned(),
            format,
        })
    }
}

/// How to consume.
#[derive(Debug, Clone)]
pub struct KafkaIngest {
    pub brokers: String,
    pub group: String,
    pub topics: Vec<TopicSpec>,
    pub decode: DecodeOptions,
    pub limits: BatchLimits,
    /// The longest a record waits before it is committed.
    pub linger: Duration,
    /// How often tables that receive no rows still have their markers moved forward,
    /// which bounds what the next owner re-reads after a crash.
    pub marker_interval: Duration,
    /// Stop once the lake holds every record the topics had (batch runs, the demo,
    /// tests) instead of waiting for more.
    pub until_caught_up: bool,
    /// librdkafka settings over ours (security, timeouts...).
    pub client_options: ClientOptions,
    /// How often to compact the small files of closed days (before yesterday, UTC);
    /// `None` leaves it to `kubetrail lake optimize`.
    pub compact_every: Option<Duration>,
}

impl KafkaIngest {
    pub fn new(brokers: &str, group: &str, topics: Vec<TopicSpec>) -> Self {
        KafkaIngest {
            brokers: brokers.to_owned(),
            group: group.to_owned(),
            topics,
            decode: DecodeOptions::default(),
            limits: BatchLimits::default(),
            // Seconds, not milliseconds: a responder querying live data waits at most this
            // long, and each commit is a small file that optimize compacts later.
            linger: Duration::from_secs(5),
            marker_interval: Duration::from_secs(60),
            until_caught_up: false,
            client_options: ClientOptions::default(),
            // Each linger commit is a file; a day of them is compacted once it is closed.
            compact_every: Some(Duration::from_secs(3600)),
        }
    }
}

/// What one ingester run wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KafkaReport {
    /// Records taken in (records replayed for tables that already held them included).
    pub records: u64,
    /// Rows committed per table, dead letters included.
    pub rows: BTreeMap<Table, u64>,
    pub commits: u64,
    /// Times this ingester dropped what it had not committed, to re-read it from the
    /// lake's markers: a partition it held was taken over, or a commit failed.
    pub rewinds: u64,
    /// Records Kafka deleted before the lake held them, each range a dead letter.
    pub expired: u64,
    /// From the first record taken in to the last commit: the reading rate without the
    /// group join (seconds, by the group's initial rebalance delay) or the idle end.
    pub reading: Option<Duration>,
}

/// Consumes until `shutdown` resolves (then flushes, commits and returns), until caught
/// up if asked, or until an error.
pub async fn ingest_kafka(
    lake: &Lake,
    options: KafkaIngest,
    metrics: Arc<IngestMetrics>,
    shutdown: impl Future<Output = ()>,
) -> Result<KafkaReport, IngestError> {
    if options.topics.is_empty() {
        return Err(IngestError::Kafka(
            "no topic to read (--topic NAME=FORMAT)".into(),
        ));
    }
    // Two requests in flight at most: the consumer blocks (and stops polling) beyond that.
    let (requests, inbox) = mpsc::channel(2);
    let options_compaction = options.compact_every;
    let stop = Arc::new(AtomicBool::new(false));
    let consumer = {
        let stop = stop.clone();
        let metrics = metrics.clone();
        std::thread::Builder::new()
            .name("kafka-consumer".into())
            .spawn(move || consumer::consume(options, requests, stop, metrics))?
    };
    let compaction =
        options_compaction.map(|every| tokio::spawn(compact_closed_days(lake.clone(), every)));
    let serving = writer::serve(lake.clone(), inbox, metrics);
    tokio::pin!(serving);
    tokio::select! {
        () = &mut serving => {}
        () = shutdown => {
            stop.store(true, Ordering::Relaxed);
            serving.await;
        }
    }
    if let Some(task) = compaction {
        task.abort();
    }
    // The writer ends when the consumer drops its sender, i.e. when the thread is done.
    tokio::task::spawn_blocking(move || consumer.join())
        .await
        .map_err(|e| IngestError::Worker(e.to_string()))?
        .map_err(|_| IngestError::Worker("the Kafka consumer thread panicked".into()))?
}

/// Compacts the days no ingester writes to any more, every `every`. A compaction that
/// loses a race with a late event's commit fails harmlessly and is tried again next time.
async fn compact_closed_days(lake: Lake, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let yesterday = chrono::Utc::now().date_naive() - chrono::Duration::days(1);
        for table in Table::INGESTED {
            match optimize(&lake, table, Days::Before(yesterday)).await {
                Ok(r) if r.partitions > 0 => tracing::info!(
                    %table,
                    partitions = r.partitions,
                    "compacted closed days: {} files -> {}",
                    r.files_removed,
                    r.files_added
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!(%table, "compacting closed days: {e}"),
            }
        }
    }
}
