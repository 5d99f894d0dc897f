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
    /// are registered again only when a table moved.
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
        if let Some((at, session)) = cached.as_ref() {
            if *at == versions {
                return Ok(session.clone());
            }
        }
        let session = Arc::new(LakeSession::from_tables(&self.lake, &tables, None).await?);
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
