//! The key of the keyed hash that stands in for secret values, kept with the lake
//! (`_kubetrail/redaction.key`) so that markers stay comparable across ingests and
//! ingesters; operators who want it elsewhere set `KUBETRAIL_REDACTION_KEY`.

use deltalake::logstore::object_store::{self, path::Path, ObjectStoreExt, PutMode, PutOptions};

use crate::{Lake, LakeError};

const KEY: &str = "_kubetrail/redaction.key";

impl Lake {
    /// Reads the key, creating it if the lake has none. Two ingesters creating it at once
    /// both end up with the one that was written first (put-if-absent, on a local disk as
    /// on object storage).
    pub async fn redaction_key(&self) -> Result<Vec<u8>, LakeError> {
        self.claim().await?;
        let store = self.store()?;
        let path = Path::from(KEY);
        let location = format!("{}{KEY}", self.root());
        let bad = |e: String| LakeError::Location(location.clone(), format!("redaction key: {e}"));
        let text = match store.get(&path).await {
            Ok(found) => found.bytes().await.map_err(|e| bad(e.to_string()))?,
            Err(object_store::Error::NotFound { .. }) => {
                let mut key = [0u8; 32];
                getrandom::fill(&mut key).map_err(|e| bad(e.to_string()))?;
                let options = PutOptions {
                    mode: PutMode::Create,
                    ..Default::default()
                };
                match store
                    .put_opts(&path, hex::encode(key).into(), options)
                    .await
                {
                    Ok(_) | Err(object_store::Error::AlreadyExists { .. }) => {}
                    Err(e) => return Err(LakeError::storage(&location, e)),
                }
                store
                    .get(&path)
                    .await
                    .map_err(|e| LakeError::storage(&location, e))?
                    .bytes()
                    .await
                    .map_err(|e| bad(e.to_string()))?
            }
            Err(e) => return Err(LakeError::storage(&location, e)),
        };
        let text = std::str::from_utf8(&text).map_err(|e| bad(e.to_string()))?;
        hex::decode(text.trim()).map_err(|e| bad(e.to_string()))
    }
}
