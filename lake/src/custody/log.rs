//! A table's log store that seals every commit with its custody manifest on the way to
//! storage. Every writer of a Delta table (ours, delta-rs's merge, optimize, delete,
//! vacuum) hands its log entry to the log store last, with its files already written: the
//! one place that sees every commit whole, and the version it will have.

use std::sync::Arc;

use bytes::Bytes;
use deltalake::kernel::transaction::TransactionError;
use deltalake::kernel::Version;
use deltalake::logstore::object_store::path::Path;
use deltalake::logstore::object_store::{ObjectStore, ObjectStoreExt};
use deltalake::logstore::{CommitOrBytes, LogStore, LogStoreConfig, LogStoreRef};
use deltalake::DeltaResult;
use serde_json::Value;
use uuid::Uuid;

use super::digests::{DigestingStore, Digests};
use super::{sha256_hex, FileDigest, Manifest, Origin, Writer, MANIFEST_KEY, ORIGIN_KEY};

/// Wraps a table's log store: data files written through it are digested, and each log
/// entry gets its [`Manifest`] before the inner store writes it.
pub(crate) struct CustodyLog {
    inner: LogStoreRef,
    store: Arc<dyn ObjectStore>,
    digests: Arc<Digests>,
}

impl CustodyLog {
    pub(crate) fn wrap(inner: LogStoreRef) -> LogStoreRef {
        let digests = Arc::new(Digests::default());
        let store = Arc::new(DigestingStore::new(
            inner.object_store(None),
            digests.clone(),
        ));
        Arc::new(CustodyLog {
            inner,
            store,
            digests,
        })
    }

    /// `entry` with its manifest in its commitInfo: the adds digested (from what was
    /// written, else read back), the removes listed, the writer's origins folded in, and
    /// the previous entry hashed.
    async fn seal(
        &self,
        version: Version,
        entry: &[u8],
    ) -> Result<(Bytes, Vec<Path>), TransactionError> {
        let mut lines: Vec<Value> = Vec::new();
        for line in entry.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            lines.push(
                serde_json::from_slice(line)
                    .map_err(|json_err| TransactionError::SerializeLogJson { json_err })?,
            );
        }
        let mut files = Vec::new();
        let mut digested = Vec::new();
        let mut replaced = Vec::new();
        for action in &lines {
            if let Some(add) = action.get("add") {
                let path = add.get("path").and_then(Value::as_str).unwrap_or_default();
                let size = add.get("size").and_then(Value::as_u64).unwrap_or_default();
                let (file, location) = self.digest(path, size).await?;
                files.push(file);
                digested.push(location);
            } else if let Some(path) = action.pointer("/remove/path").and_then(Value::as_str) {
                replaced.push(path.to_owned());
            }
        }
        let prev = match version.checked_sub(1) {
            None => None,
            Some(before) => match self.inner.read_commit_entry(before).await {
                Ok(Some(bytes)) => Some(sha256_hex(&bytes)),
                // Expired by log cleanup: the chain starts again here, and verify says so.
                Ok(None) => None,
                Err(e) => return Err(log_error(format!("reading log entry {before}: {e}"))),
            },
        };
        let info_at = match lines.iter().position(|a| a.get("commitInfo").is_some()) {
            Some(at) => at,
            None => {
                lines.push(serde_json::json!({ "commitInfo": {} }));
                lines.len() - 1
            }
        };
        let info = lines[info_at]
            .get_mut("commitInfo")
            .and_then(Value::as_object_mut)
            .ok_or_else(|| log_error("the commitInfo action is not an object".to_owned()))?;
        let origin: Vec<Origin> = info
            .remove(ORIGIN_KEY)
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_default();
        let manifest = Manifest {
            files,
            replaced,
            origin,
            writer: Writer::this_process(),
            prev,
        };
        info.insert(
            MANIFEST_KEY.to_owned(),
            serde_json::to_value(&manifest)
                .map_err(|json_err| TransactionError::SerializeLogJson { json_err })?,
        );
        let mut sealed = Vec::with_capacity(entry.len() + 256 * (manifest.files.len() + 1));
        for action in &lines {
            serde_json::to_writer(&mut sealed, action)
                .map_err(|json_err| TransactionError::SerializeLogJson { json_err })?;
            sealed.push(b'\n');
        }
        Ok((Bytes::from(sealed), digested))
    }

    /// A file the commit adds, digested as it was written; read back when it was written
    /// some other way (it is then hashed as stored, which is what verify compares with).
    async fn digest(&self, path: &str, size: u64) -> Result<(FileDigest, Path), TransactionError> {
        let location =
            Path::from_url_path(path).map_err(|e| log_error(format!("added file {path}: {e}")))?;
        let (size, sha256) = match self.digests.get(&location) {
            Some((written, sha256)) if written == size => (written, sha256),
            _ => {
                let bytes = self.store.get(&location).await?.bytes().await?;
                (bytes.len() as u64, sha256_hex(&bytes))
            }
        };
        let file = FileDigest {
            path: path.to_owned(),
            size,
            sha256,
        };
        Ok((file, location))
    }
}

fn log_error(msg: String) -> TransactionError {
    TransactionError::LogStoreError {
        source: msg.clone().into(),
        msg: format!("sealing the commit's custody manifest: {msg}"),
    }
}

#[async_trait::async_trait]
impl LogStore for CustodyLog {
    /// The inner store's name: delta-rs chooses how to hand over an entry by it (bytes
    /// for stores with conditional puts, a temporary file for the others).
    fn name(&self) -> String {
        self.inner.name()
    }

    async fn refresh(&self) -> DeltaResult<()> {
        self.inner.refresh().await
    }

    async fn read_commit_entry(&self, version: Version) -> DeltaResult<Option<Bytes>> {
        self.inner.read_commit_entry(version).await
    }

    async fn write_commit_entry(
        &self,
        version: Version,
        commit_or_bytes: CommitOrBytes,
        operation_id: Uuid,
    ) -> Result<(), TransactionError> {
        // Digests stay until the entry lands: a commit that lost its version is sealed
        // again for the next one.
        let (written, digested) = match commit_or_bytes {
            CommitOrBytes::LogBytes(entry) => {
                let (sealed, digested) = self.seal(version, &entry).await?;
                let written = self
                    .inner
                    .write_commit_entry(version, CommitOrBytes::LogBytes(sealed), operation_id)
                    .await;
                (written, digested)
            }
            // Stores that commit by copying a temporary file: a sealed copy of it is
            // committed instead, and goes once committed or refused (delta-rs keeps the
            // original for a retry at the next version, and removes it).
            CommitOrBytes::TmpCommit(tmp) => {
                let entry = self.store.get(&tmp).await?.bytes().await?;
                let (sealed, digested) = self.seal(version, &entry).await?;
                let sealed_tmp = Path::from(format!("{tmp}.sealed"));
                self.store.put(&sealed_tmp, sealed.into()).await?;
                let written = self
                    .inner
                    .write_commit_entry(
                        version,
                        CommitOrBytes::TmpCommit(sealed_tmp.clone()),
                        operation_id,
                    )
                    .await;
                let _ = self.store.delete(&sealed_tmp).await;
                (written, digested)
            }
        };
        if written.is_ok() {
            self.digests.forget(&digested);
        }
        written
    }

    async fn abort_commit_entry(
        &self,
        version: Version,
        commit_or_bytes: CommitOrBytes,
        operation_id: Uuid,
    ) -> Result<(), TransactionError> {
        self.inner
            .abort_commit_entry(version, commit_or_bytes, operation_id)
            .await
    }

    async fn get_latest_version(&self, start_version: Version) -> DeltaResult<Version> {
        self.inner.get_latest_version(start_version).await
    }

    fn object_store(&self, _operation_id: Option<Uuid>) -> Arc<dyn ObjectStore> {
        self.store.clone()
    }

    fn root_object_store(&self, operation_id: Option<Uuid>) -> Arc<dyn ObjectStore> {
        self.inner.root_object_store(operation_id)
    }

    fn config(&self) -> &LogStoreConfig {
        self.inner.config()
    }
}
