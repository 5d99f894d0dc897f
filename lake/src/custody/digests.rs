//! SHA-256 of each data file as it is written, so that sealing a commit does not read its
//! files back (on object storage a second transfer of every byte).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use deltalake::logstore::object_store::path::Path;
use deltalake::logstore::object_store::{
    self, CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, UploadPart,
};
use futures::stream::BoxStream;
use sha2::{Digest, Sha256};

use crate::read_cache::is_data_file;

/// Digests of the data files written through a [`DigestingStore`] and not yet sealed into a
/// commit, by path in the table. A file written and never committed (an ingest that
/// discarded its batch) leaves its entry until the table handle goes.
#[derive(Debug, Default)]
pub(crate) struct Digests(Mutex<HashMap<Path, (u64, String)>>);

impl Digests {
    fn record(&self, path: Path, size: u64, sha256: String) {
        self.lock().insert(path, (size, sha256));
    }

    /// The size and digest of a file written here.
    pub(crate) fn get(&self, path: &Path) -> Option<(u64, String)> {
        self.lock().get(path).cloned()
    }

    /// Files now sealed into a commit.
    pub(crate) fn forget(&self, paths: &[Path]) {
        let mut digests = self.lock();
        for path in paths {
            digests.remove(path);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Path, (u64, String)>> {
        // A panic elsewhere while holding the map leaves it whole: each entry is one insert.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A table's store that digests every data file put through it, whole or in parts.
#[derive(Debug)]
pub(crate) struct DigestingStore {
    inner: Arc<dyn ObjectStore>,
    digests: Arc<Digests>,
}

impl DigestingStore {
    pub(crate) fn new(inner: Arc<dyn ObjectStore>, digests: Arc<Digests>) -> DigestingStore {
        DigestingStore { inner, digests }
    }
}

impl fmt::Display for DigestingStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

fn digest(payload: &PutPayload, hasher: &mut Sha256) -> u64 {
    for chunk in payload {
        hasher.update(chunk);
    }
    payload.content_length() as u64
}

crate::object_store_wrapper!(DigestingStore, pass reads {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        if !is_data_file(location) {
            return self.inner.put_opts(location, payload, opts).await;
        }
        let mut hasher = Sha256::new();
        let size = digest(&payload, &mut hasher);
        let result = self.inner.put_opts(location, payload, opts).await?;
        self.digests
            .record(location.clone(), size, hex::encode(hasher.finalize()));
        Ok(result)
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        let upload = self.inner.put_multipart_opts(location, opts).await?;
        if !is_data_file(location) {
            return Ok(upload);
        }
        Ok(Box::new(DigestingUpload {
            inner: upload,
            location: location.clone(),
            hasher: Sha256::new(),
            size: 0,
            digests: self.digests.clone(),
        }))
    }
});

/// Parts are digested in the order they are handed over, which is the file's order
/// whatever order their uploads finish in.
struct DigestingUpload {
    inner: Box<dyn MultipartUpload>,
    location: Path,
    hasher: Sha256,
    size: u64,
    digests: Arc<Digests>,
}

impl fmt::Debug for DigestingUpload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DigestingUpload")
            .field("location", &self.location)
            .field("size", &self.size)
            .finish()
    }
}

#[async_trait]
impl MultipartUpload for DigestingUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        self.size += digest(&data, &mut self.hasher);
        self.inner.put_part(data)
    }

    async fn complete(&mut self) -> object_store::Result<PutResult> {
        let result = self.inner.complete().await?;
        let sha256 = hex::encode(std::mem::take(&mut self.hasher).finalize());
        self.digests
            .record(self.location.clone(), self.size, sha256);
        Ok(result)
    }

    async fn abort(&mut self) -> object_store::Result<()> {
        self.inner.abort().await
    }
}

#[cfg(test)]
mod tests {
    use deltalake::logstore::object_store::memory::InMemory;
    use deltalake::logstore::object_store::ObjectStoreExt;

    use super::*;
    use crate::custody::sha256_hex;

    #[tokio::test]
    async fn data_files_are_digested_whole_or_in_parts_and_nothing_else_is() {
        let digests = Arc::new(Digests::default());
        let store = DigestingStore::new(Arc::new(InMemory::new()), digests.clone());
        let whole = Path::from("event_date=2025-01-01/part-1.parquet");
        store
            .put(&whole, b"PAR1 whole".to_vec().into())
            .await
            .unwrap();
        assert_eq!(digests.get(&whole), Some((10, sha256_hex(b"PAR1 whole"))));
        digests.forget(std::slice::from_ref(&whole));
        assert_eq!(digests.get(&whole), None, "forgotten once sealed");

        let parts = Path::from("event_date=2025-01-01/part-2.parquet");
        let mut upload = store.put_multipart(&parts).await.unwrap();
        upload.put_part(b"first ".to_vec().into()).await.unwrap();
        upload.put_part(b"second".to_vec().into()).await.unwrap();
        upload.complete().await.unwrap();
        assert_eq!(digests.get(&parts), Some((12, sha256_hex(b"first second"))));

        let log = Path::from("_delta_log/00000000000000000000.checkpoint.parquet");
        store.put(&log, b"x".to_vec().into()).await.unwrap();
        let other = Path::from("_kubetrail/lake");
        store.put(&other, b"x".to_vec().into()).await.unwrap();
        assert_eq!(digests.get(&log), None);
        assert_eq!(digests.get(&other), None);
    }
}
