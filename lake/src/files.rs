//! Plain files under a location, beside (or instead of) Delta tables: what kubetrail writes
//! for other lakes to read, such as OCSF Parquet under a Security Lake bucket's `ext/`
//! prefix. The location is parsed, and its credentials found, as a lake's are.

use bytes::Bytes;
use deltalake::logstore::object_store::{path::Path, ObjectStoreExt, PutPayload};

use crate::{Lake, LakeError};

impl Lake {
    /// Writes `bytes` as the file `path` (relative, `/`-separated) under the root,
    /// replacing any file there; local directories on the way are made.
    pub async fn put_file(&self, path: &str, bytes: Bytes) -> Result<(), LakeError> {
        let location = format!("{}{path}", self.root());
        self.store()?
            .put(&Path::from(path), PutPayload::from_bytes(bytes))
            .await
            .map(|_| ())
            .map_err(|e| LakeError::storage(&location, e))
    }
}
