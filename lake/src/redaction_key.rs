//! The redaction key that lakes written before 2026-12 kept inside themselves
//! (`_kubetrail/redaction.key`). Anyone who could read such a lake could test guesses
//! against its markers; the key now lives outside the lake, and this is only what moving
//! it out needs: reading it, and removing it once it is safe elsewhere.

use deltalake::logstore::object_store::{self, path::Path, ObjectStoreExt};

use crate::{Lake, LakeError};

const KEY: &str = "_kubetrail/redaction.key";

impl Lake {
    /// Where the old in-lake key is, as a user would write it.
    pub fn legacy_redaction_key_location(&self) -> String {
        format!("{}{KEY}", self.root())
    }

    /// The old in-lake key's text (hex), if this lake still holds one.
    pub async fn legacy_redaction_key(&self) -> Result<Option<String>, LakeError> {
        let location = self.legacy_redaction_key_location();
        let got = match self.store()?.get(&Path::from(KEY)).await {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(LakeError::storage(&location, e)),
        };
        let bytes = got
            .bytes()
            .await
            .map_err(|e| LakeError::storage(&location, e))?;
        String::from_utf8(bytes.to_vec())
            .map(|text| Some(text.trim().to_owned()))
            .map_err(|_| LakeError::Location(location, "the key is not text".into()))
    }

    /// Removes the old in-lake key (after it has been saved elsewhere).
    pub async fn remove_legacy_redaction_key(&self) -> Result<(), LakeError> {
        match self.store()?.delete(&Path::from(KEY)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(LakeError::storage(self.legacy_redaction_key_location(), e)),
        }
    }
}
