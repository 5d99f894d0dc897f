//! A lake says that it is one (`_kubetrail/lake`), so that a writer pointed at a bucket
//! prefix or a directory that holds something else refuses, instead of mixing kubetrail's
//! tables into it (or, worse, vacuuming beside someone else's files).

use deltalake::logstore::object_store::{self, path::Path, ObjectStoreExt, PutMode, PutOptions};
use kubetrail_schemas::Table;

use crate::{Lake, LakeError};

const MARKER: &str = "_kubetrail/lake";

impl Lake {
    /// Makes sure the location is a kubetrail lake, or empty and now one; once per process.
    /// A lake written before the marker existed (only kubetrail's tables and `_kubetrail/`)
    /// gets it.
    pub(crate) async fn claim(&self) -> Result<(), LakeError> {
        self.claimed
            .get_or_try_init(|| self.claim_once())
            .await
            .map(|_| ())
    }

    async fn claim_once(&self) -> Result<(), LakeError> {
        let store = self.store()?;
        let marker = Path::from(MARKER);
        match store.head(&marker).await {
            Ok(_) => return Ok(()),
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(LakeError::storage(self.display(), e)),
        }
        let listing = match store.list_with_delimiter(None).await {
            Ok(listing) => listing,
            // A local directory that does not exist yet holds nothing.
            Err(object_store::Error::NotFound { .. }) => object_store::ListResult {
                common_prefixes: Vec::new(),
                objects: Vec::new(),
            },
            Err(e) => return Err(LakeError::storage(self.display(), e)),
        };
        let foreign: Vec<String> = listing
            .common_prefixes
            .iter()
            .map(|p| p.to_string())
            .chain(listing.objects.iter().map(|o| o.location.to_string()))
            .filter(|name| !is_lake_entry(name))
            .collect();
        if let Some(first) = foreign.first() {
            return Err(LakeError::Location(
                self.display(),
                format!(
                    "holds {} entr{} that are not part of a kubetrail lake (such as '{first}'); \
                     choose an empty location or an existing lake",
                    foreign.len(),
                    if foreign.len() == 1 { "y" } else { "ies" }
                ),
            ));
        }
        let options = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        let body = format!(
            "kubetrail lake, format 1, created {}\n",
            chrono::Utc::now().to_rfc3339()
        );
        match store.put_opts(&marker, body.into(), options).await {
            // Another writer claiming it at the same moment is as good.
            Ok(_) | Err(object_store::Error::AlreadyExists { .. }) => Ok(()),
            Err(e) => Err(LakeError::storage(self.display(), e)),
        }
    }
}

fn is_lake_entry(name: &str) -> bool {
    name == "_kubetrail" || Table::ALL.iter().any(|t| t.name() == name)
}
