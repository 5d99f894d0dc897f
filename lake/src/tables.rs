//! Opening and creating the lake's Delta tables, each with its schema, partitioned by
//! `event_date`, and bringing a table written by an older kubetrail up to the current columns.

use std::collections::HashMap;
use std::io::ErrorKind;

use deltalake::kernel::engine::arrow_conversion::TryIntoKernel;
use deltalake::kernel::transaction::CommitBuilder;
use deltalake::kernel::{Action, MetadataExt, StructField, StructType};
use deltalake::logstore::object_store::path::Path;
use deltalake::logstore::object_store::{Error as ObjectStoreError, ObjectStoreExt};
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::{DeltaTable, DeltaTableError};
use kubetrail_schemas::table::PARTITION_COLUMN;
use kubetrail_schemas::Table;

use url::Url;

use crate::custody::CustodyLog;
use crate::location::ensure_handlers;
use crate::{Lake, LakeError};

impl Lake {
    /// Opens a table, or `None` if it was never written.
    pub async fn open_table(
        &self,
        table: impl AsRef<str>,
    ) -> Result<Option<DeltaTable>, LakeError> {
        let name = table.as_ref();
        let url = self.table_url(name)?;
        if let Some(dir) = self.local_dir() {
            if !dir.join(name).join("_delta_log").is_dir() {
                return Ok(None);
            }
        }
        let mut delta = self.delta_table(url)?;
        match delta.load().await {
            Ok(()) => Ok(delta.version().is_some().then_some(delta)),
            // On object storage, a table never written has no log to find.
            Err(DeltaTableError::NotATable(_)) => Ok(None),
            Err(e) => Err(LakeError::delta(name, e)),
        }
    }

    /// Brings a loaded table up to its newest version. Whether the log holds a version past
    /// the loaded one is asked with one look at the next entry (a stat, or a HEAD request),
    /// and the log is read only when it does: the table's full update (the engine's log
    /// segment, built again each time) cost about 0.7 ms a table when nothing had changed,
    /// on a local disk, and a listing of the log converts every entry's name.
    pub async fn refresh_table(
        &self,
        table: impl AsRef<str>,
        delta: &mut DeltaTable,
    ) -> Result<(), LakeError> {
        refresh(table.as_ref(), delta).await
    }

    /// Opens a table, creating it with its schema, partitioned by `event_date`, if needed.
    /// A table written by an older kubetrail gets the columns added since.
    pub async fn open_or_create(&self, table: Table) -> Result<DeltaTable, LakeError> {
        if let Some(t) = self.open_table(table.name()).await? {
            let t = self.add_new_columns(t, table).await?;
            return self.keep_whole_log(t, table).await;
        }
        self.claim().await?;
        let url = self.table_url(table.name())?;
        if let Some(dir) = self.local_dir() {
            std::fs::create_dir_all(dir.join(table.name()))?;
        }
        // Not loaded: there is no log to load yet.
        let delta = self.delta_table(url)?;
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

impl Lake {
    /// A handle on the table at `url` (under this lake), not loaded, whose commits are
    /// sealed with their custody manifests.
    pub(crate) fn delta_table(&self, url: Url) -> Result<DeltaTable, LakeError> {
        ensure_handlers();
        let log_store = self
            .table_builder(url.clone())?
            .build_storage()
            .map_err(|e| LakeError::delta(url, e))?;
        Ok(DeltaTable::new(CustodyLog::wrap(log_store)))
    }

    /// Tables created before the custody chain may drop log entries older than 30 days
    /// at a checkpoint (delta-rs's default), and the chain with them: turned off once.
    async fn keep_whole_log(
        &self,
        delta: DeltaTable,
        table: Table,
    ) -> Result<DeltaTable, LakeError> {
        let snapshot = delta.snapshot().map_err(|e| LakeError::delta(table, e))?;
        let (key, value) = KEEP_WHOLE_LOG;
        if snapshot
            .metadata()
            .configuration()
            .get(key)
            .map(String::as_str)
            == Some(value)
        {
            return Ok(delta);
        }
        let set = delta
            .set_tbl_properties()
            .with_properties(HashMap::from([(key.to_owned(), value.to_owned())]))
            .await;
        match set {
            Ok(t) => Ok(t),
            // Another writer changed the table meanwhile; the next open tries again.
            Err(e) => {
                tracing::debug!(%table, error = %e, "keeping the whole log: not this time");
                self.open_table(table.name())
                    .await?
                    .ok_or_else(|| LakeError::delta(table, e))
            }
        }
    }
}

/// Every log entry stays: the custody chain links each to the one before it.
const KEEP_WHOLE_LOG: (&str, &str) = ("delta.enableExpiredLogCleanup", "false");

fn kernel_schema(table: Table) -> Result<StructType, LakeError> {
    table
        .schema()
        .as_ref()
        .try_into_kernel()
        .map_err(|e| LakeError::delta(table, e.into()))
}

/// Statistics on the time and identity columns make file skipping work for the queries
/// responders run (a time window, one user, one pod, one IP); the whole log is kept.
fn table_properties() -> HashMap<String, Option<String>> {
    let (key, value) = KEEP_WHOLE_LOG;
    HashMap::from([
        (
            "delta.dataSkippingNumIndexedCols".to_owned(),
            Some("12".to_owned()),
        ),
        (key.to_owned(), Some(value.to_owned())),
    ])
}

/// Where a table's log keeps `version`'s entry, from the table's root.
pub(crate) fn log_entry(version: u64) -> String {
    format!("_delta_log/{version:020}.json")
}

/// [`Lake::refresh_table`], for the lake's own writers, which hold a table but not its lake.
pub(crate) async fn refresh(name: &str, delta: &mut DeltaTable) -> Result<(), LakeError> {
    let Some(loaded) = delta.version() else {
        return delta.load().await.map_err(|e| LakeError::delta(name, e));
    };
    // Versions follow one another and a commit's entry is never removed before older ones
    // are: the table moved exactly when the next entry exists.
    //
    // On a local disk the look is a stat made here. The object store hands each to a
    // blocking thread, and for a server, whose every query looks at every table, those
    // hand-offs cost more than the stats: 10 % of its CPU on small queries.
    let root = delta.log_store().root_url().clone();
    if let Ok(dir) = root.to_file_path() {
        let next = dir.join(log_entry(loaded + 1));
        if std::fs::symlink_metadata(next).is_err_and(|e| e.kind() == ErrorKind::NotFound) {
            return Ok(());
        }
    }
    let next = Path::from(log_entry(loaded + 1));
    let store = delta.log_store().object_store(None);
    match store.head(&next).await {
        Err(ObjectStoreError::NotFound { .. }) => Ok(()),
        Err(e) => Err(LakeError::delta(name, DeltaTableError::from(e))),
        Ok(_) => delta
            .update_incremental(None)
            .await
            .map_err(|e| LakeError::delta(name, e)),
    }
}
