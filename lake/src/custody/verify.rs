//! `lake verify`: that a table's files are the ones its commits recorded, and its log is
//! the one that was written.
//!
//! Each log entry is read as stored and hashed; its manifest must name the entry before
//! it by that hash and list exactly the files the entry adds. Every file the table holds
//! now is read whole and hashed against the manifest that added it, and every data file
//! under the table that no commit added is named.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use deltalake::logstore::object_store::path::Path;
use deltalake::logstore::object_store::{ObjectStore, ObjectStoreExt};
use futures::{StreamExt, TryStreamExt};
use kubetrail_schemas::Table;
use sha2::{Digest, Sha256};

use super::entries::{list_entries, parse_entry, read_entry};
use super::{sha256_hex, Manifest};
use crate::read_cache::is_data_file;
use crate::{Lake, LakeError};

/// What verifying one table found.
#[derive(Debug, Clone, Default)]
pub struct Verification {
    /// Log entries read and checked, first and last.
    pub entries: Option<(u64, u64)>,
    /// Live files re-hashed, and their bytes.
    pub files: usize,
    pub bytes: u64,
    /// Entries before the first manifest (a table written before kubetrail kept a chain),
    /// and the live files they added, which can be checked for presence only.
    pub unsealed_entries: u64,
    pub unsealed_files: usize,
    /// SHA-256 of the newest log entry: kept outside the lake, it holds that entry too.
    pub head: Option<String>,
    pub findings: Vec<Finding>,
}

/// One thing that is not as the custody chain recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// A live file whose bytes are not those its commit recorded.
    Modified {
        path: String,
        version: u64,
        recorded: (u64, String),
        found: (u64, String),
    },
    /// A live file that is gone.
    Missing { path: String, version: u64 },
    /// A data file under the table that no commit added.
    Unexpected {
        path: String,
        size: u64,
        modified: DateTime<Utc>,
    },
    /// A live file no log entry read added (the table's state says otherwise than its log).
    NotInLog { path: String },
    /// An entry whose manifest does not name the entry before it as it is now.
    BrokenLink { version: u64 },
    /// An entry without a manifest after the chain began: written by something else.
    Unsealed { version: u64 },
    /// An entry whose manifest and actions disagree, or that cannot be read.
    BadEntry { version: u64, reason: String },
    /// A log entry missing between others.
    MissingEntry { version: u64 },
    /// delta-rs cannot read the table (a damaged log or checkpoint).
    Unreadable { reason: String },
    /// The newest entry is not the one the caller noted.
    HeadChanged { expected: String, found: String },
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Finding::Modified {
                path,
                version,
                recorded,
                found,
            } => write!(
                f,
                "modified file {path} (added at version {version} as {} bytes, sha256 {}; now {} bytes, sha256 {})",
                recorded.0,
                short(&recorded.1),
                found.0,
                short(&found.1)
            ),
            Finding::Missing { path, version } => {
                write!(f, "missing file {path} (added at version {version})")
            }
            Finding::Unexpected {
                path,
                size,
                modified,
            } => {
                write!(
                    f,
                    "unexpected file {path} ({size} bytes, written {}): no commit added it",
                    modified.format("%Y-%m-%d %H:%M:%S UTC")
                )?;
                if Utc::now() - *modified < chrono::Duration::minutes(10) {
                    f.write_str(" (written minutes ago: a running ingest's file not yet committed? verify again)")?;
                }
                Ok(())
            }
            Finding::NotInLog { path } => write!(
                f,
                "file {path} is in the table but no log entry added it (a checkpoint disagrees with the log)"
            ),
            Finding::BrokenLink { version } => write!(
                f,
                "broken link at version {version}: log entry {} is not the one it was written after (rewritten or replaced)",
                version.saturating_sub(1)
            ),
            Finding::Unsealed { version } => write!(
                f,
                "log entry {version} has no custody manifest: it was not written by kubetrail"
            ),
            Finding::BadEntry { version, reason } => write!(f, "log entry {version}: {reason}"),
            Finding::MissingEntry { version } => write!(f, "log entry {version} is missing"),
            Finding::Unreadable { reason } => write!(f, "the table cannot be read: {reason}"),
            Finding::HeadChanged { expected, found } => write!(
                f,
                "the newest log entry hashes to {found}, not {expected}: the log changed since that head was noted"
            ),
        }
    }
}

fn short(hash: &str) -> &str {
    hash.get(..16).unwrap_or(hash)
}

/// Checks one table: every log entry from `since` (all when `None`), and every live file
/// those entries added; `expect_head` is a head hash noted earlier that the newest entry
/// must still have, or have been followed by (it is then an entry's `prev`).
pub async fn verify(
    lake: &Lake,
    table: Table,
    since: Option<u64>,
    expect_head: Option<&str>,
) -> Result<Verification, LakeError> {
    let mut report = Verification::default();
    if let Some(dir) = lake.local_dir() {
        if !dir.join(table.name()).is_dir() {
            return Ok(report);
        }
    }
    // Not loaded: a log that delta-rs can no longer read is still walked, and said so.
    let delta = lake.delta_table(lake.table_url(table.name())?)?;
    let store = delta.log_store().object_store(None);
    let storage = |e: deltalake::logstore::object_store::Error| LakeError::storage(table, e);

    let entry_written = list_entries(store.as_ref()).await.map_err(storage)?;
    let entries: BTreeSet<u64> = entry_written.keys().copied().collect();
    let (Some(&first), Some(&latest)) = (entries.first(), entries.last()) else {
        return Ok(report);
    };
    for version in first..latest {
        if !entries.contains(&version) {
            report.findings.push(Finding::MissingEntry { version });
        }
    }
    let start = since.unwrap_or(first).max(first);

    // Walk the entries from `start`, each against the one before it.
    let mut written: HashMap<Path, (u64, u64, String)> = HashMap::new();
    let mut unsealed_adds: HashSet<Path> = HashSet::new();
    let mut replayed: HashSet<Path> = HashSet::new();
    let (mut prev, mut chained) = match start.checked_sub(1).filter(|v| entries.contains(v)) {
        Some(before) => {
            let bytes = read_entry(store.as_ref(), before).await.map_err(storage)?;
            let sealed = parse_entry(&bytes).is_ok_and(|e| e.manifest.is_some());
            (Some(sha256_hex(&bytes)), sealed)
        }
        None => (None, false),
    };
    for version in entries.range(start..) {
        let version = *version;
        let bytes = read_entry(store.as_ref(), version).await.map_err(storage)?;
        let hash = sha256_hex(&bytes);
        let follows_gap = version > first && !entries.contains(&(version - 1));
        match parse_entry(&bytes) {
            Err(reason) => report.findings.push(Finding::BadEntry { version, reason }),
            Ok(entry) => {
                for path in &entry.removes {
                    if let Ok(path) = Path::from_url_path(path) {
                        replayed.remove(&path);
                    }
                }
                replayed.extend(entry.adds.iter().map(|(path, _)| path.clone()));
                match entry.manifest {
                    Some(manifest) => {
                        let linked = match version {
                            0 => manifest.prev.is_none(),
                            _ if follows_gap || prev.is_none() => true,
                            _ => manifest.prev == prev,
                        };
                        if !linked {
                            report.findings.push(Finding::BrokenLink { version });
                        }
                        if let Some(reason) = disagreement(&entry.adds, &entry.removes, &manifest) {
                            report.findings.push(Finding::BadEntry { version, reason });
                        }
                        for file in manifest.files {
                            if let Ok(path) = Path::from_url_path(&file.path) {
                                written.insert(path, (version, file.size, file.sha256));
                            }
                        }
                        chained = true;
                    }
                    None if chained => report.findings.push(Finding::Unsealed { version }),
                    None => {
                        report.unsealed_entries += 1;
                        unsealed_adds.extend(entry.adds.into_iter().map(|(path, _)| path));
                    }
                }
            }
        }
        prev = Some(hash);
    }
    report.entries = Some((start, latest));
    report.head = prev.clone();
    if let (Some(expected), Some(found)) = (expect_head, &prev) {
        if expected != found && !is_some_prev(store.as_ref(), &entries, start, expected).await {
            report.findings.push(Finding::HeadChanged {
                expected: expected.to_owned(),
                found: found.clone(),
            });
        }
    }

    // The files the table holds now: replayed from the entries when all were read (a
    // checkpoint is not trusted over the log), and as delta-rs reads them, which must agree.
    let replay_whole = start == 0
        && !report
            .findings
            .iter()
            .any(|f| matches!(f, Finding::MissingEntry { .. } | Finding::BadEntry { .. }));
    let mut live: HashSet<Path> = match replay_whole {
        true => replayed,
        false => HashSet::new(),
    };
    // At the newest entry read: a commit landing meanwhile is for the next verify.
    let mut delta = delta;
    match delta.load_version(latest).await {
        Ok(()) => {
            let snapshot = delta.snapshot().map_err(|e| LakeError::delta(table, e))?;
            for file in snapshot.log_data().iter() {
                let path = file.object_store_path();
                if replay_whole && !live.contains(&path) {
                    report.findings.push(Finding::NotInLog {
                        path: path.to_string(),
                    });
                }
                live.insert(path);
            }
        }
        Err(e) => report.findings.push(Finding::Unreadable {
            reason: LakeError::delta(table, e).to_string(),
        }),
    }
    let mut to_hash = Vec::new();
    for path in &live {
        match written.get(path) {
            Some((version, size, sha256)) => {
                to_hash.push((path.clone(), *version, (*size, sha256.clone())));
            }
            None if unsealed_adds.contains(path) => report.unsealed_files += 1,
            // Added before the entries read: checked by an earlier verify, or before a
            // log cleanup took its entry.
            None => {}
        }
    }
    let hashing = 2 * std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut hashed = futures::stream::iter(to_hash)
        .map(|(path, version, recorded)| {
            let store = store.clone();
            async move {
                let found = hash_file(store, &path).await;
                (path, version, recorded, found)
            }
        })
        .buffer_unordered(hashing);
    while let Some((path, version, recorded, found)) = hashed.next().await {
        match found {
            Ok(found) => {
                report.files += 1;
                report.bytes += found.0;
                if found != recorded {
                    report.findings.push(Finding::Modified {
                        path: path.to_string(),
                        version,
                        recorded,
                        found,
                    });
                }
            }
            Err(deltalake::logstore::object_store::Error::NotFound { .. }) => {
                report.findings.push(Finding::Missing {
                    path: path.to_string(),
                    version,
                })
            }
            Err(e) => return Err(storage(e)),
        }
    }

    // Data files under the table that no entry read added. With entries left unread
    // (--since, or a log cleanup), only files written since the first entry read count.
    let written_after = match start == 0 {
        true => None,
        false => entry_written.get(&start).copied(),
    };
    let mut listing = store.list(None);
    while let Some(meta) = listing.try_next().await.map_err(storage)? {
        let path = meta.location;
        let known =
            written.contains_key(&path) || unsealed_adds.contains(&path) || live.contains(&path);
        let in_range = written_after.is_none_or(|t| meta.last_modified >= t);
        if is_data_file(&path) && !known && in_range {
            report.findings.push(Finding::Unexpected {
                path: path.to_string(),
                size: meta.size,
                modified: meta.last_modified,
            });
        }
    }
    report.findings.sort_by_key(|f| f.to_string());
    Ok(report)
}

/// Whether `hash` is the `prev` of an entry read: the head noted then is still in the log.
async fn is_some_prev(
    store: &dyn ObjectStore,
    entries: &BTreeSet<u64>,
    start: u64,
    hash: &str,
) -> bool {
    for version in entries.range(start..) {
        let Ok(bytes) = read_entry(store, *version).await else {
            continue;
        };
        if let Ok(Some(m)) = parse_entry(&bytes).map(|e| e.manifest) {
            if m.prev.as_deref() == Some(hash) {
                return true;
            }
        }
    }
    false
}

/// How an entry's actions differ from its manifest, if they do.
fn disagreement(
    adds: &[(Path, u64)],
    removes: &BTreeSet<String>,
    manifest: &Manifest,
) -> Option<String> {
    let recorded: HashMap<Path, u64> = manifest
        .files
        .iter()
        .filter_map(|f| Some((Path::from_url_path(&f.path).ok()?, f.size)))
        .collect();
    for (path, size) in adds {
        match recorded.get(path) {
            None => return Some(format!("adds {path}, which its manifest does not list")),
            Some(s) if s != size => {
                return Some(format!(
                    "adds {path} as {size} bytes, its manifest recorded {s}"
                ))
            }
            Some(_) => {}
        }
    }
    if recorded.len() != adds.len() {
        return Some("its manifest lists files the entry does not add".to_owned());
    }
    let replaced: BTreeSet<String> = manifest.replaced.iter().cloned().collect();
    if &replaced != removes {
        return Some("removes other files than its manifest lists".to_owned());
    }
    None
}

/// Size and SHA-256 of a file as stored, read as a stream.
async fn hash_file(
    store: Arc<dyn ObjectStore>,
    path: &Path,
) -> Result<(u64, String), deltalake::logstore::object_store::Error> {
    let mut stream = store.get(path).await?.into_stream();
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    while let Some(chunk) = stream.try_next().await? {
        size += chunk.len() as u64;
        hasher.update(&chunk);
    }
    Ok((size, hex::encode(hasher.finalize())))
}
