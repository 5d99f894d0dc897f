//! The lake: one Delta table per family under a root directory (or object-store URL).

pub mod maintenance;
mod merge;
mod table_writer;

use std::collections::HashMap;
use std::path::Path;

use deltalake::kernel::engine::arrow_conversion::TryIntoKernel;
use deltalake::kernel::transaction::CommitBuilder;
use deltalake::kernel::{Action, MetadataExt, StructField, StructType};
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::{DeltaTable, DeltaTableError};
use kubetrail_schemas::table::PARTITION_COLUMN;
use kubetrail_schemas::Table;
use thiserror::Error;
use url::Url;

pub use merge::{merge_rows, MergeCounts};
pub use table_writer::{CommitMarker, TableWriter};

#[derive(Debug, Error)]
pub enum LakeError {
    #[error("lake location '{0}': {1}")]
    Location(String, String),
    #[error("table {table}: {error}")]
    Delta {
        table: String,
        error: Box<DeltaTableError>,
    },
    #[error("table {table}: {message}")]
    Arrow { table: String, message: String },
    #[error("table {table}: the task writing a file ended without finishing it: {message}")]
    WriteTask { table: String, message: String },
    #[error("lake I/O: {0}")]
    Io(#[from] std::io::Error),
}

impl LakeError {
    pub(crate) fn delta(table: impl ToString, source: DeltaTableError) -> Self {
        LakeError::Delta {
            table: table.to_string(),
            error: Box::new(source),
        }
    }
}

/// Where the lake lives.
#[derive(Debug, Clone)]
pub struct Lake {
    root: Url,
}

impl Lake {
    /// A local directory (created if missing) or a URL.
    pub fn open(location: &str) -> Result<Lake, LakeError> {
        let root = match Url::parse(location) {
            Ok(url) if url.scheme().len() > 1 => url,
            // Not a URL (or a Windows drive letter): a local path.
            _ => {
                let path = Path::new(location);
                std::fs::create_dir_all(path)
                    .map_err(|e| LakeError::Location(location.to_owned(), e.to_string()))?;
                let abs = std::fs::canonicalize(path)
                    .map_err(|e| LakeError::Location(location.to_owned(), e.to_string()))?;
                Url::from_directory_path(&abs).map_err(|_| {
                    LakeError::Location(location.to_owned(), "not an absolute path".into())
                })?
            }
        };
        if root.scheme() != "file" && root.scheme() != "memory" {
            return Err(LakeError::Location(
                location.to_owned(),
                format!(
                    "the '{}' scheme is not supported by this build (local directories only)",
                    root.scheme()
                ),
            ));
        }
        Ok(Lake { root })
    }

    pub fn root(&self) -> &Url {
        &self.root
    }

    /// The local directory of the lake, for lake-level files such as the redaction key.
    pub fn local_dir(&self) -> Option<std::path::PathBuf> {
        self.root.to_file_path().ok()
    }

    pub fn table_url(&self, table: impl AsRef<str>) -> Result<Url, LakeError> {
        self.root
            .join(&format!("{}/", table.as_ref()))
            .map_err(|e| LakeError::Location(self.root.to_string(), e.to_string()))
    }

    /// Opens a table, or `None` if it was never written.
    pub async fn open_table(
        &self,
        table: impl AsRef<str>,
    ) -> Result<Option<DeltaTable>, LakeError> {
        let name = table.as_ref();
        let url = self.table_url(name)?;
        if let Ok(dir) = url.to_file_path() {
            if !dir.join("_delta_log").is_dir() {
                return Ok(None);
            }
        }
        let delta = DeltaTable::try_from_url(url)
            .await
            .map_err(|e| LakeError::delta(name, e))?;
        Ok(delta.version().is_some().then_some(delta))
    }

    /// Opens a table, creating it with its schema, partitioned by `event_date`, if needed.
    /// A table written by an older kubetrail gets the columns added since.
    pub async fn open_or_create(&self, table: Table) -> Result<DeltaTable, LakeError> {
        if let Some(t) = self.open_table(table.name()).await? {
            return self.add_new_columns(t, table).await;
        }
        let url = self.table_url(table.name())?;
        if let Ok(dir) = url.to_file_path() {
            std::fs::create_dir_all(dir)?;
        }
        // Built, not loaded: there is no log to load yet.
        let delta = deltalake::DeltaTableBuilder::from_url(url)
            .and_then(|b| b.build())
            .map_err(|e| LakeError::delta(table, e))?;
        let schema = kernel_schema(table)?;
        let created = delta
            .create()
            .with_table_name(table.name())
            .with_columns(schema.fields().cloned())
            .with_partition_columns([PARTITION_COLUMN])
            .with_configuration(table_properties())
            // Two ingesters creating the same table at once: the loser sees it exists.
            .with_save_mode(SaveMode::Ignore)
            .await;
        match created {
            Ok(t) => Ok(t),
            Err(e) => match self.open_table(table.name()).await? {
                Some(t) => Ok(t),
                None => Err(LakeError::delta(table, e)),
            },
        }
    }

    /// Columns kubetrail added after a table was created are added to it (nullable: the
    /// older files read as null there) before anything new is written; Delta readers find
    /// a file's columns by name, so the table takes the current column order. A table
    /// with columns this version does not know, or of other types, is refused: it was
    /// written by another version, and writing to it could lose them.
    async fn add_new_columns(
        &self,
        delta: DeltaTable,
        table: Table,
    ) -> Result<DeltaTable, LakeError> {
        let wanted = kernel_schema(table)?;
        let snapshot = delta.snapshot().map_err(|e| LakeError::delta(table, e))?;
        let stored = snapshot.schema();
        let mut foreign = Vec::new();
        for field in stored.fields() {
            match wanted.field(field.name()) {
                Some(w) if w.data_type() == field.data_type() => {}
                Some(w) => foreign.push(format!(
                    "{} is {} here, {} in this kubetrail",
                    field.name(),
                    field.data_type(),
                    w.data_type()
                )),
                None => foreign.push(format!("{} is unknown to this kubetrail", field.name())),
            }
        }
        if !foreign.is_empty() {
            return Err(LakeError::Arrow {
                table: table.to_string(),
                message: format!(
                    "written by another kubetrail version ({}); use a matching version or a new lake",
                    foreign.join("; ")
                ),
            });
        }
        let added: Vec<StructField> = wanted
            .fields()
            .filter(|f| stored.field(f.name()).is_none())
            .cloned()
            .collect();
        if added.is_empty() {
            return Ok(delta);
        }
        let metadata = snapshot
            .metadata()
            .clone()
            .with_schema(&wanted)
            .map_err(|e| LakeError::delta(table, e.into()))?;
        let names: Vec<String> = added.iter().map(|f| f.name().clone()).collect();
        let committed = CommitBuilder::default()
            .with_actions(vec![Action::Metadata(metadata)])
            .build(
                Some(snapshot),
                delta.log_store(),
                DeltaOperation::AddColumn { fields: added },
            )
            .await;
        // Whether this commit or another ingester's added them, the table read again says.
        let reopened = self.open_table(table.name()).await?;
        let complete = reopened
            .as_ref()
            .and_then(|t| t.snapshot().ok())
            .is_some_and(|s| names.iter().all(|n| s.schema().field(n).is_some()));
        match (reopened, committed) {
            (Some(t), committed) if complete => {
                if committed.is_ok() {
                    tracing::info!(%table, columns = names.join(", "), "added new columns");
                }
                Ok(t)
            }
            (_, Err(e)) => Err(LakeError::delta(table, e)),
            (_, Ok(_)) => Err(LakeError::Location(
                table.to_string(),
                format!(
                    "its new columns ({}) are not in the table",
                    names.join(", ")
                ),
            )),
        }
    }
}

fn kernel_schema(table: Table) -> Result<StructType, LakeError> {
    table
        .schema()
        .as_ref()
        .try_into_kernel()
        .map_err(|e| LakeError::delta(table, e.into()))
}

/// Statistics on the time and identity columns make file skipping work for the queries
/// responders run (a time window, one user, one pod, one IP).
fn table_properties() -> HashMap<String, Option<String>> {
    HashMap::from([(
        "delta.dataSkippingNumIndexedCols".to_owned(),
        Some("12".to_owned()),
    )])
}

impl Lake {
    /// The key of the keyed hash that stands in for secret values. Created with the lake
    /// and kept beside its tables (`_kubetrail/redaction.key`), so markers stay comparable
    /// across ingests; operators who want it elsewhere set `KUBETRAIL_REDACTION_KEY`.
    pub fn redaction_key(&self) -> Result<Vec<u8>, LakeError> {
        let Some(dir) = self.local_dir() else {
            return Err(LakeError::Location(
                self.root.to_string(),
                "set KUBETRAIL_REDACTION_KEY for a lake that is not a local directory".into(),
            ));
        };
        let path = dir.join("_kubetrail").join("redaction.key");
        match std::fs::read_to_string(&path) {
            Ok(text) => hex::decode(text.trim()).map_err(|e| {
                LakeError::Location(
                    path.display().to_string(),
                    format!("bad redaction key: {e}"),
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                getrandom::fill(&mut key)
                    .map_err(|e| LakeError::Location(path.display().to_string(), e.to_string()))?;
                std::fs::create_dir_all(dir.join("_kubetrail"))?;
                // Written to a temporary name and renamed, so a concurrent ingester never
                // reads half a key; if two race, both end up reading the winner's key.
                let tmp = path.with_extension(format!("tmp{}", std::process::id()));
                std::fs::write(&tmp, hex::encode(key))?;
                if std::fs::hard_link(&tmp, &path).is_err() && !path.exists() {
                    std::fs::rename(&tmp, &path)?;
                }
                let _ = std::fs::remove_file(&tmp);
                let text = std::fs::read_to_string(&path)?;
                hex::decode(text.trim()).map_err(|e| {
                    LakeError::Location(
                        path.display().to_string(),
                        format!("bad redaction key: {e}"),
                    )
                })
            }
            Err(e) => Err(e.into()),
        }
    }
}
