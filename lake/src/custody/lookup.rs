//! The custody records of given data files: what an evidence bundle carries about the
//! files its rows are in.

use std::collections::{BTreeSet, HashMap};

use deltalake::logstore::object_store::path::Path;
use kubetrail_schemas::Table;
use serde::Serialize;

use super::entries::{list_entries, parse_entry, read_entry};
use super::{sha256_hex, FileDigest, Origin, Writer};
use crate::{Lake, LakeError};

/// One table's custody at a moment: its log's newest entry, and the records of some files.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TableCustody {
    pub head: Option<Head>,
    pub files: Vec<SealedFile>,
    /// Files asked for that no sealed commit added (written before the custody chain).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unsealed: Vec<String>,
}

/// The newest entry of a table's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Head {
    pub version: u64,
    pub sha256: String,
}

/// A data file as the commit that added it recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SealedFile {
    #[serde(flatten)]
    pub file: FileDigest,
    /// The table version of that commit, and the SHA-256 of its log entry.
    pub version: u64,
    pub entry_sha256: String,
    pub origin: Vec<Origin>,
    pub writer: Writer,
}

/// The records of `files` of `table` (paths in the table, or URLs under it), found by
/// reading its log from the start.
pub async fn sealed_files(
    lake: &Lake,
    table: Table,
    files: &BTreeSet<String>,
) -> Result<TableCustody, LakeError> {
    let table_url = lake.table_url(table.name())?;
    let mut wanted: HashMap<Path, &str> = HashMap::new();
    for file in files {
        let relative = file.strip_prefix(table_url.as_str()).unwrap_or(file);
        let path = Path::from_url_path(relative)
            .map_err(|e| LakeError::Location(table.to_string(), format!("file {file}: {e}")))?;
        wanted.insert(path, file);
    }
    let delta = lake.delta_table(table_url)?;
    let store = delta.log_store().object_store(None);
    let storage = |e| LakeError::storage(table, e);
    let mut custody = TableCustody::default();
    for version in list_entries(store.as_ref())
        .await
        .map_err(storage)?
        .into_keys()
    {
        let bytes = read_entry(store.as_ref(), version).await.map_err(storage)?;
        let entry_sha256 = sha256_hex(&bytes);
        custody.head = Some(Head {
            version,
            sha256: entry_sha256.clone(),
        });
        let Some(manifest) = parse_entry(&bytes).ok().and_then(|e| e.manifest) else {
            continue;
        };
        for file in &manifest.files {
            let found = Path::from_url_path(&file.path)
                .ok()
                .and_then(|p| wanted.remove(&p));
            if found.is_some() {
                custody.files.push(SealedFile {
                    file: file.clone(),
                    version,
                    entry_sha256: entry_sha256.clone(),
                    origin: manifest.origin.clone(),
                    writer: manifest.writer.clone(),
                });
            }
        }
    }
    custody.unsealed = wanted.into_values().map(str::to_owned).collect();
    custody.unsealed.sort();
    Ok(custody)
}
