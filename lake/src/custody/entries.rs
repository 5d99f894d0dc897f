//! Reading a table's Delta log entries as stored: what `verify` walks and an evidence
//! bundle looks its files up in.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use deltalake::logstore::object_store::path::Path;
use deltalake::logstore::object_store::{self, ObjectStore, ObjectStoreExt};
use futures::TryStreamExt;
use serde_json::Value;

use super::{Manifest, MANIFEST_KEY};

/// The versions of the commit entries in the log, with when each was written.
pub(super) async fn list_entries(
    store: &dyn ObjectStore,
) -> Result<BTreeMap<u64, DateTime<Utc>>, object_store::Error> {
    let mut entries = BTreeMap::new();
    let mut log = store.list(Some(&Path::from("_delta_log")));
    while let Some(meta) = log.try_next().await? {
        if let Some(version) = entry_version(&meta.location) {
            entries.insert(version, meta.last_modified);
        }
    }
    Ok(entries)
}

/// The version of a log entry's path (`_delta_log/00000000000000000012.json`).
fn entry_version(path: &Path) -> Option<u64> {
    let name = path.filename()?;
    let digits = name.strip_suffix(".json")?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

pub(super) async fn read_entry(
    store: &dyn ObjectStore,
    version: u64,
) -> Result<Bytes, object_store::Error> {
    let path = Path::from(crate::tables::log_entry(version));
    store.get(&path).await?.bytes().await
}

/// What an entry adds and removes, and its manifest.
pub(super) struct Entry {
    pub adds: Vec<(Path, u64)>,
    pub removes: BTreeSet<String>,
    pub manifest: Option<Manifest>,
}

pub(super) fn parse_entry(bytes: &[u8]) -> Result<Entry, String> {
    let mut entry = Entry {
        adds: Vec::new(),
        removes: BTreeSet::new(),
        manifest: None,
    };
    for line in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let action: Value =
            serde_json::from_slice(line).map_err(|e| format!("not a log entry: {e}"))?;
        if let Some(add) = action.get("add") {
            let path = add.get("path").and_then(Value::as_str).unwrap_or_default();
            let path = Path::from_url_path(path).map_err(|e| format!("added path {path}: {e}"))?;
            let size = add.get("size").and_then(Value::as_u64).unwrap_or_default();
            entry.adds.push((path, size));
        } else if let Some(path) = action.pointer("/remove/path").and_then(Value::as_str) {
            entry.removes.insert(path.to_owned());
        } else if let Some(manifest) = action.pointer(&format!("/commitInfo/{MANIFEST_KEY}")) {
            let manifest = serde_json::from_value(manifest.clone())
                .map_err(|e| format!("unreadable custody manifest: {e}"))?;
            entry.manifest = Some(manifest);
        }
    }
    Ok(entry)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_commit_entries_have_a_version() {
        assert_eq!(
            entry_version(&Path::from("_delta_log/00000000000000000012.json")),
            Some(12)
        );
        for other in [
            "_delta_log/00000000000000000010.checkpoint.parquet",
            "_delta_log/_last_checkpoint",
            "_delta_log/12.json",
            "_delta_log/_commit_abc.json.tmp",
        ] {
            assert_eq!(entry_version(&Path::from(other)), None, "{other}");
        }
    }
}
