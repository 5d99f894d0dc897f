//! The lake's tables as the server queries them: loaded once, then brought up to date
//! before each query by reading only the log entries committed since (one listing of each
//! table's `_delta_log/` on object storage), so a query sees every commit that landed
//! before it started without the whole log being read again.

use deltalake::DeltaTable;
use kubetrail_lake::Lake;
use kubetrail_schemas::Table;
use tokio::sync::Mutex;

use std::sync::Arc;

use crate::{LakeSession, QueryError};

pub(crate) struct FreshTables {
    lake: Lake,
    tables: Mutex<Vec<(Table, Option<DeltaTable>)>>,
    /// The session over the tables at the versions it was built for: views and functions
    /// are registered again only when a table a view reads moved.
    session: Mutex<Option<Built>>,
}

/// A session and the table versions it was built over.
type Built = (Vec<Option<u64>>, Arc<LakeSession>);

impl FreshTables {
    pub(crate) async fn open(lake: &Lake) -> Result<FreshTables, QueryError> {
        lake.check_exists().await?;
        let mut tables = Vec::new();
        for table in Table::ALL {
            tables.push((table, lake.open_table(table.name()).await?));
        }
        Ok(FreshTables {
            lake: lake.clone(),
            tables: Mutex::new(tables),
            session: Mutex::new(None),
        })
    }

    /// A session over every table at its newest version.
    pub(crate) async fn session(&self) -> Result<Arc<LakeSession>, QueryError> {
        let tables = self.current().await?;
        let versions: Vec<Option<u64>> = tables
            .iter()
            .map(|(_, d)| d.as_ref().and_then(|d| d.version()))
            .collect();
        let mut cached = self.session.lock().await;
        let mut session = None;
        if let Some((at, built)) = cached.as_ref() {
            if *at == versions {
                return Ok(built.clone());
            }
            let moved: Vec<(Table, &DeltaTable)> = tables
                .iter()
                .zip(at.iter().zip(&versions))
                .filter(|(_, (was, is))| was != is)
                .filter_map(|((table, delta), _)| Some((*table, delta.as_ref()?)))
                .collect();
            session = built.with_tables_moved(&moved).await?;
        }
        let session = match session {
            Some(s) => Arc::new(s),
            None => Arc::new(LakeSession::from_tables(&self.lake, &tables, None).await?),
        };
        *cached = Some((versions, session.clone()));
        Ok(session)
    }

    /// Every table at its newest version (a table written since it was last seen
    /// included), as of now.
    async fn current(&self) -> Result<Vec<(Table, Option<DeltaTable>)>, QueryError> {
        let mut tables = self.tables.lock().await;
        // All at once: on object storage each is a request's round trip.
        let lake = &self.lake;
        futures::future::try_join_all(tables.iter_mut().map(|(table, delta)| async move {
            match delta {
                Some(d) => lake.refresh_table(table.name(), d).await?,
                None => *delta = lake.open_table(table.name()).await?,
            }
            Ok::<_, QueryError>(())
        }))
        .await?;
        Ok(tables.clone())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use kubetrail_ingest::{ingest_file, FileIngest, InputPath, NoProgress};

    use super::*;
    use crate::query_log::{self, QueryRecord};

    async fn ingest(lake: &Lake, sample: &str) {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../samples/data")
            .join(sample);
        let input = InputPath::File(path);
        ingest_file(lake, &input, &FileIngest::default(), Arc::new(NoProgress))
            .await
            .unwrap();
    }

    async fn count(session: &LakeSession, sql: &str) -> i64 {
        let batches = session.query(sql).await.unwrap();
        let column = batches[0].column(0).as_any();
        column
            .downcast_ref::<arrow::array::Int64Array>()
            .unwrap()
            .value(0)
    }

    #[tokio::test]
    async fn a_table_no_view_reads_moves_without_the_views_being_planned_again() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(&dir.path().join("lake").to_string_lossy()).unwrap();
        ingest(&lake, "k8s-audit.jsonl").await;
        let tables = FreshTables::open(&lake).await.unwrap();
        let first = tables.session().await.unwrap();
        let events = "SELECT count(*) FROM events";
        assert_eq!(count(&first, events).await, 466);
        let view = first.context().table_provider("events").await.unwrap();

        let record = QueryRecord::start("alice", "test", "test", "SELECT 1");
        query_log::append(&lake, &[record]).await.unwrap();
        let second = tables.session().await.unwrap();
        assert_eq!(count(&second, "SELECT count(*) FROM query_log").await, 1);
        assert_eq!(count(&second, events).await, 466);
        let kept = second.context().table_provider("events").await.unwrap();
        assert!(Arc::ptr_eq(&view, &kept), "the view was planned again");
        assert_eq!(first.tables().len(), second.tables().len());
        let logged = second.tables().iter().find(|t| t.name == "query_log");
        assert!(logged.is_some_and(|t| t.version.is_some() && t.files == 1));
        // The session before the commit still answers as it was planned.
        assert_eq!(count(&first, "SELECT count(*) FROM query_log").await, 0);

        // A table the view reads: built again, and the view sees the new rows.
        ingest(&lake, "gke-audit.jsonl").await;
        let third = tables.session().await.unwrap();
        assert_eq!(count(&third, events).await, 466 + 15);
        let rebuilt = third.context().table_provider("events").await.unwrap();
        assert!(!Arc::ptr_eq(&view, &rebuilt));
        assert_eq!(count(&third, "SELECT count(*) FROM query_log").await, 1);
    }
}
