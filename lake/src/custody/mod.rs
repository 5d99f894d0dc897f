//! The custody chain: every commit to a kubetrail table carries a manifest of what it
//! added, where that came from, who wrote it, and the hash of the log entry before it.
//!
//! ```text
//! data file PUT ──► DigestingStore: SHA-256 and size of each Parquet file as it is written
//! log entry PUT ──► CustodyLog: the entry's adds looked up in those digests, the previous
//!                   entry hashed, a Manifest put into the entry's commitInfo, then written
//! lake verify   ──► walk the log: each entry's manifest against its adds and the entry
//!                   before it; re-hash every live file; list files no commit added
//! ```
//!
//! The manifest lives inside the Delta commit it describes, so it lands atomically with
//! the data or not at all, whoever commits: the table writer, a merge of alerts, a
//! compaction (which lists the files it replaced), a retention delete, a vacuum. The chain
//! links whole log entries (`prev` is the SHA-256 of the previous entry's bytes as stored),
//! so rewriting any entry but the newest breaks the next link; the newest is held by the
//! head hash `lake verify` prints, kept outside the lake (an evidence bundle, a ticket).

mod digests;
mod entries;

mod log;
pub mod lookup;
pub mod verify;

use serde::{Deserialize, Serialize};

pub(crate) use log::CustodyLog;

/// The commitInfo field holding a commit's manifest.
pub const MANIFEST_KEY: &str = "kubetrailCustody";

/// The commitInfo field a writer fills with the commit's [`Origin`]s, folded into the
/// manifest as it is sealed.
pub(crate) const ORIGIN_KEY: &str = "kubetrailOrigin";

/// What one commit added and replaced, where from, by whom, and the entry before it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Each data file the commit added.
    pub files: Vec<FileDigest>,
    /// Data files the commit removed from the table (a compaction's inputs, a retention's
    /// old days, alerts a merge rewrote).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replaced: Vec<String>,
    /// Where the rows came from, as the writer told.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub origin: Vec<Origin>,
    pub writer: Writer,
    /// SHA-256 of the previous log entry's bytes; `None` for a table's first entry.
    pub prev: Option<String>,
}

/// A data file as it was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileDigest {
    /// The path in the table, as the log's `add` action has it.
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

/// Where a commit's rows came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Origin {
    /// An input file (or stdin) read whole: its name as given, and its content's BLAKE3
    /// hash (what the ingest marker records; `b3sum` checks it).
    File {
        name: String,
        blake3: String,
        bytes: u64,
    },
    /// Records of one Kafka partition: offsets after `after` (exclusive; `None` from the
    /// partition's start) up to `last` (inclusive).
    Kafka {
        topic: String,
        partition: i32,
        after: Option<i64>,
        last: i64,
    },
    /// Alerts of a detection run, over a window of the lake (`None`: all of it).
    Detection { window: Option<String> },
    /// Records of queries against the lake: how many, and when the first and last began.
    Queries {
        count: u64,
        first: String,
        last: String,
    },
}

/// The commitInfo entries that hand a commit's origins to the seal.
pub(crate) fn origin_metadata(origins: &[Origin]) -> Vec<(String, serde_json::Value)> {
    match serde_json::to_value(origins) {
        Ok(value) if !origins.is_empty() => vec![(ORIGIN_KEY.to_owned(), value)],
        _ => Vec::new(),
    }
}

/// The process that sealed the commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Writer {
    pub kubetrail: String,
    pub host: String,
}

impl Writer {
    fn this_process() -> Writer {
        Writer {
            kubetrail: env!("CARGO_PKG_VERSION").to_owned(),
            host: host_name(),
        }
    }
}

/// The machine's name, as the kernel has it; `HOSTNAME` where there is no /proc.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Lower-case hex SHA-256 of `bytes`.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}
