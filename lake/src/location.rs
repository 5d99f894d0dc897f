//! Where the lake lives: the one parser of a lake location (a local directory or an
//! object-store URL) and the storage options that reach it.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use deltalake::logstore::object_store::ObjectStore;
use deltalake::DeltaTableBuilder;
use url::Url;

use crate::read_cache::{ReadCache, DEFAULT_READ_CACHE_BYTES};
use crate::LakeError;

/// The URL schemes a lake may live under. S3 is tested end to end; Google Cloud Storage
/// and Azure go through the same delta-rs storage layer.
const SCHEMES: &[&str] = &["file", "s3", "s3a", "gs", "az", "abfs", "abfss", "azure"];

/// `object_store` settings for the lake's storage (`[lake.storage]` in kubetrail.toml):
/// any key its S3, GCS or Azure builder takes (`aws_endpoint`, `aws_region`,
/// `google_service_account`, …), beside the standard `AWS_*` / `GOOGLE_*` / `AZURE_*`
/// environment variables, which delta-rs reads itself.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct StorageOptions(BTreeMap<String, String>);

impl StorageOptions {
    pub fn new(options: BTreeMap<String, String>) -> StorageOptions {
        StorageOptions(options)
    }

    fn with_defaults(&self) -> HashMap<String, String> {
        let mut options: HashMap<String, String> = self.0.clone().into_iter().collect();
        // An unreachable endpoint is named within seconds rather than after object_store's
        // default of ten retries over three minutes; a responder can raise them here.
        for (key, value) in [
            ("max_retries", "3"),
            ("retry_timeout", "30s"),
            ("connect_timeout", "5s"),
        ] {
            options
                .entry(key.to_owned())
                .or_insert_with(|| value.to_owned());
        }
        options
    }
}

/// Values are credentials more often than not; only the keys are shown.
impl fmt::Debug for StorageOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.keys()).finish()
    }
}

/// A lake: the root under which every table lives, and how to reach it. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Lake {
    root: Url,
    storage: Arc<StorageOptions>,
    /// Set once this process has seen that the location is a kubetrail lake.
    pub(crate) claimed: Arc<tokio::sync::OnceCell<()>>,
    /// Data-file reads on object storage, shared by every session over this lake.
    read_cache: Arc<ReadCache>,
}

impl Lake {
    /// Parses a lake location: a local path (relative or absolute; it need not exist yet)
    /// or a URL of one of the supported schemes. No I/O happens here.
    pub fn parse(location: &str, storage: StorageOptions) -> Result<Lake, LakeError> {
        let bad = |why: String| LakeError::Location(location.to_owned(), why);
        let root = match Url::parse(location) {
            // One letter is a Windows drive, not a scheme.
            Ok(url) if url.scheme().len() > 1 => {
                if !SCHEMES.contains(&url.scheme()) {
                    return Err(bad(format!(
                        "the '{}' scheme is not supported (local paths, {})",
                        url.scheme(),
                        SCHEMES[1..]
                            .iter()
                            .map(|s| format!("{s}://"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
                if url.scheme() != "file" && url.host_str().is_none_or(str::is_empty) {
                    return Err(bad("no bucket or container in the URL".into()));
                }
                directory_url(url)
            }
            _ => {
                if location.trim().is_empty() {
                    return Err(bad("empty".into()));
                }
                let absolute =
                    std::path::absolute(Path::new(location)).map_err(|e| bad(e.to_string()))?;
                Url::from_directory_path(&absolute)
                    .map_err(|_| bad("not an absolute path".into()))?
            }
        };
        Ok(Lake {
            root,
            storage: Arc::new(storage),
            claimed: Arc::default(),
            read_cache: Arc::new(ReadCache::new(DEFAULT_READ_CACHE_BYTES)),
        })
    }

    /// A lake at a location, with no storage options: a local directory in tests and the
    /// demo, or object storage configured by the environment alone.
    pub fn open(location: &str) -> Result<Lake, LakeError> {
        Lake::parse(location, StorageOptions::default())
    }

    /// The lake with at most `bytes` of data-file reads kept in memory (on object
    /// storage; a local disk has the page cache). 0 keeps none.
    pub fn with_read_cache(mut self, bytes: usize) -> Lake {
        self.read_cache = Arc::new(ReadCache::new(bytes));
        self
    }

    /// `store`, a store of this lake's, with its data-file reads kept in the lake's read
    /// cache; unchanged on a local disk or with no budget.
    pub fn cached_reads(&self, store: Arc<dyn ObjectStore>) -> Arc<dyn ObjectStore> {
        match self.local_dir().is_none() && self.read_cache.budget() > 0 {
            true => self.read_cache.wrap(store),
            false => store,
        }
    }

    /// Bytes of data-file reads the lake may keep in memory.
    pub fn read_cache_budget(&self) -> usize {
        self.read_cache.budget()
    }

    pub fn root(&self) -> &Url {
        &self.root
    }

    /// The lake's location as a user wrote it back: a path for a local lake, else its URL.
    pub fn display(&self) -> String {
        match self.local_dir() {
            Some(dir) => dir.display().to_string(),
            None => self.root.to_string(),
        }
    }

    /// The local directory of the lake; `None` on object storage.
    pub fn local_dir(&self) -> Option<std::path::PathBuf> {
        match self.root.scheme() {
            // Components again: the root URL's trailing `/` is no part of the directory's name.
            "file" => self
                .root
                .to_file_path()
                .ok()
                .map(|p| p.components().collect()),
            _ => None,
        }
    }

    pub fn table_url(&self, table: impl AsRef<str>) -> Result<Url, LakeError> {
        self.root
            .join(&format!("{}/", table.as_ref()))
            .map_err(|e| LakeError::Location(self.root.to_string(), e.to_string()))
    }

    /// A Delta table handle for `url` (under this lake), not loaded.
    pub(crate) fn table_builder(&self, url: Url) -> Result<DeltaTableBuilder, LakeError> {
        Ok(DeltaTableBuilder::from_url(url.clone())
            .map_err(|e| LakeError::delta(url, e))?
            .with_storage_options(self.storage.with_defaults()))
    }

    /// The storage options as delta-rs takes them, for readers that open tables themselves.
    pub fn storage_options(&self) -> HashMap<String, String> {
        self.storage.with_defaults()
    }

    /// The object store rooted at the lake, for the lake's own files (`_kubetrail/`).
    pub(crate) fn store(&self) -> Result<Arc<dyn ObjectStore>, LakeError> {
        Ok(self.log_store()?.object_store(None))
    }

    /// delta-rs's storage for the lake's root: its stores, at the root or the bucket.
    fn log_store(&self) -> Result<deltalake::logstore::LogStoreRef, LakeError> {
        ensure_handlers();
        self.table_builder(self.root.clone())?
            .build_storage()
            .map_err(|e| LakeError::storage(&self.root, e))
    }

    /// The store at the root of the lake's bucket, through which DataFusion scans address
    /// the lake's data files, with the lake's read cache; `None` for a local lake, which
    /// every process reads through its own file system.
    pub fn bucket_store(&self) -> Result<Option<Arc<dyn ObjectStore>>, LakeError> {
        if self.local_dir().is_some() {
            return Ok(None);
        }
        let bucket = self.log_store()?.root_object_store(None);
        Ok(Some(self.cached_reads(bucket)))
    }

    /// Fails with [`LakeError::NoLake`] unless the location holds something: the query
    /// side never creates a lake, and a mistyped location should say so, not show empty
    /// tables.
    pub async fn check_exists(&self) -> Result<(), LakeError> {
        if let Some(dir) = self.local_dir() {
            return match dir.is_dir() {
                true => Ok(()),
                false => Err(LakeError::NoLake(self.display())),
            };
        }
        let listing = self
            .store()?
            .list_with_delimiter(None)
            .await
            .map_err(|e| LakeError::storage(&self.root, e))?;
        match listing.common_prefixes.is_empty() && listing.objects.is_empty() {
            true => Err(LakeError::NoLake(self.display())),
            false => Ok(()),
        }
    }
}

/// Every table is a folder under the root, so the root must end in `/` for `join`.
fn directory_url(mut url: Url) -> Url {
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    url
}

/// delta-rs registers its cloud handlers from constructors that a linker may leave out
/// of a binary that names none of their symbols; registering again is harmless.
pub(crate) fn ensure_handlers() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        deltalake::aws::register_handlers(None);
        deltalake::gcp::register_handlers(None);
        deltalake::azure::register_handlers(None);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_local_paths_and_urls() {
        let lake = Lake::open("relative/lake").unwrap();
        assert_eq!(lake.root().scheme(), "file");
        assert!(lake.root().path().ends_with("/relative/lake/"));
        assert!(lake.local_dir().unwrap().is_absolute());

        let lake = Lake::open("s3://bucket/prefix/lake").unwrap();
        assert_eq!(lake.root().as_str(), "s3://bucket/prefix/lake/");
        assert_eq!(
            lake.table_url("k8s_audit").unwrap().as_str(),
            "s3://bucket/prefix/lake/k8s_audit/"
        );
        assert!(lake.local_dir().is_none());
        for url in [
            "gs://b/l",
            "az://c/l",
            "abfss://c@acct.dfs.core.windows.net/l",
            "file:///tmp/l",
        ] {
            Lake::open(url).unwrap();
        }
    }

    #[test]
    fn refuses_what_is_not_a_lake_location() {
        for (location, why) in [
            ("http://example.com/lake", "'http' scheme is not supported"),
            ("ftp://host/lake", "'ftp' scheme is not supported"),
            ("s3:///prefix", "no bucket"),
            ("", "empty"),
        ] {
            let e = Lake::open(location).unwrap_err().to_string();
            assert!(e.contains(why) && !e.contains('\n'), "{location}: {e}");
        }
    }

    #[test]
    fn storage_options_never_show_their_values() {
        let options = StorageOptions::new(BTreeMap::from([(
            "aws_secret_access_key".to_owned(),
            "hunter2".to_owned(),
        )]));
        let shown = format!("{:?}", Lake::parse("s3://b/l", options).unwrap());
        assert!(
            shown.contains("aws_secret_access_key") && !shown.contains("hunter2"),
            "{shown}"
        );
    }

    #[test]
    fn remote_defaults_bound_retries_unless_set() {
        let options =
            StorageOptions::new(BTreeMap::from([("max_retries".to_owned(), "7".to_owned())]));
        let merged = options.with_defaults();
        assert_eq!(merged["max_retries"], "7");
        assert_eq!(merged["connect_timeout"], "5s");
    }
}
